//! Message rates, in both roles, and the client account window.
//!
//! - [`RateLimit`] (a governor GCRA limiter) bounds what a client may send
//!   us (SMSC role: [`RateLimit::try_acquire`] is `false` for an excess
//!   submit, which the session answers `ESME_RTHROTTLED`), and paces what we
//!   send a provider (ESME role: [`RateLimit::acquire`] waits). Upstream
//!   profiles carry such limits; OVHcloud, for instance, allows 20 messages
//!   per second per connection, and Tern must never exceed a profile's rate.
//! - [`AdaptiveRate`] paces an upstream session and slows down on its own when
//!   the provider answers `ESME_RTHROTTLED` or `ESME_RMSGQFUL` anyway
//!   (multiplicative decrease, additive recovery up to the configured rate).
//!   It paces below the vendor's stated limit ([`with_margin`]), and with no
//!   limit known it sends unpaced until the first throttle, then paces from
//!   what the upstream accepted ([`AdaptiveConfig::unknown_ceiling`]).
//! - [`InboundWindow`] bounds how many submits a client account has
//!   unanswered at once (SMSC role; one past it is answered `ESME_RMSGQFUL`).
//!
//! The rates read the clock through `tokio::time`, so they follow a paused test
//! clock and are exact under `#[tokio::test(start_paused = true)]`. That is
//! also why [`RateLimit::acquire`] waits with `tokio::time::sleep` rather
//! than governor's `until_ready`, which sleeps on a `futures-timer` thread
//! against the real clock.
//!
//! Burst: [`RateLimit::per_second`] allows a burst of `n` (lenient towards
//! clients). To pace towards an upstream that counts per second, prefer
//! [`RateLimit::with_burst`] with a burst of 1, which spaces messages evenly.

use std::collections::VecDeque;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

/// Governor clock on top of `tokio::time::Instant`, measured from the
/// limiter's creation, so limits follow tokio's (possibly paused) clock.
#[derive(Debug, Clone, Copy)]
struct TokioClock {
    /// Time zero of this limiter.
    origin: Instant,
}

impl Clock for TokioClock {
    type Instant = Nanos;

    fn now(&self) -> Nanos {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        Nanos::new(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX))
    }
}

/// The governor limiter type behind [`RateLimit`].
type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Nanos>>;

/// A fixed message rate (GCRA: `per_second` steady rate, `burst` cells that
/// may be spent at once after a pause). Thread-safe and lock-free; share one
/// per account behind an `Arc`, hold one per session.
pub struct RateLimit {
    /// The GCRA state.
    limiter: Limiter,
    /// The limiter's clock, to turn a refusal into a wait.
    clock: TokioClock,
    /// Steady rate, for logs and metrics.
    per_second: NonZeroU32,
    /// Burst size, for logs and metrics.
    burst: NonZeroU32,
}

impl std::fmt::Debug for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl RateLimit {
    /// `n` messages per second, with a burst of `n`.
    pub fn per_second(n: NonZeroU32) -> Self {
        Self::with_burst(n, n)
    }

    /// `per_second` messages per second, at most `burst` at once.
    pub fn with_burst(per_second: NonZeroU32, burst: NonZeroU32) -> Self {
        let clock = TokioClock {
            origin: Instant::now(),
        };
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: RateLimiter::direct_with_clock(quota, clock),
            clock,
            per_second,
            burst,
        }
    }

    /// Takes one message's worth of capacity if available now. `false` means
    /// over the limit: answer the submit `ESME_RTHROTTLED`.
    pub fn try_acquire(&self) -> bool {
        self.limiter.check().is_ok()
    }

    /// Waits until one message's worth of capacity is available and takes it.
    /// Cancel-safe: capacity is only taken when the future completes.
    pub async fn acquire(&self) {
        loop {
            match self.limiter.check() {
                Ok(()) => return,
                Err(not_until) => {
                    tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
                }
            }
        }
    }

    /// The steady rate.
    pub fn rate(&self) -> NonZeroU32 {
        self.per_second
    }

    /// The burst size.
    pub fn burst(&self) -> NonZeroU32 {
        self.burst
    }
}

/// Takes one message's worth from every limiter in `limits`, in order, and
/// returns `true` only if all allowed it.
///
/// Governor cannot check several limiters atomically, nor give capacity back.
/// So this stops at the first refusal, and the limiters before it keep the
/// capacity they gave. Consequences, which are the reason for the order:
/// - an admitted message has taken from every limiter, so no limiter is ever
///   exceeded;
/// - a refusal can cost the limiters before the refusing one a cell
///   (under-admission, never over-admission).
///
/// Pass the narrowest limiter first and the shared one last (the session's,
/// then the account's): a session over its own limit then never drains the
/// account its sibling sessions share, and when the account refuses, only
/// the refused session loses a cell of its own.
pub fn try_acquire_all<'a>(limits: impl IntoIterator<Item = &'a RateLimit>) -> bool {
    limits.into_iter().all(RateLimit::try_acquire)
}

/// The most submits a client account may have unanswered at once, over
/// all its sessions (SMSC role). A submit past it is answered
/// `ESME_RMSGQFUL` at once instead of waiting in a queue: the client learns
/// it is ahead of Tern and slows down, and Tern holds no work it did not
/// promise to take. The limit can change while submits are open (a
/// reload): those keep their slots, new ones see the new limit.
#[derive(Debug)]
pub struct InboundWindow {
    /// Slots in all.
    limit: AtomicUsize,
    /// Slots held by unanswered submits.
    open: AtomicUsize,
}

impl InboundWindow {
    /// A window of `limit` slots, all free.
    pub fn new(limit: NonZeroUsize) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicUsize::new(limit.get()),
            open: AtomicUsize::new(0),
        })
    }

    /// The limit now.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit; slots held stay held.
    pub fn set_limit(&self, limit: NonZeroUsize) {
        self.limit.store(limit.get(), Ordering::Relaxed);
    }

    /// Submits unanswered now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Takes a slot, held until the [`WindowSlot`] is dropped; `None` when
    /// every slot is held.
    pub fn try_take(self: &Arc<Self>) -> Option<WindowSlot> {
        let mut open = self.open.load(Ordering::Relaxed);
        loop {
            if open >= self.limit() {
                return None;
            }
            match self.open.compare_exchange_weak(
                open,
                open + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(WindowSlot(self.clone())),
                Err(now) => open = now,
            }
        }
    }
}

/// One submit's slot in an [`InboundWindow`], given back on drop (when
/// the submit has been answered).
#[derive(Debug)]
pub struct WindowSlot(Arc<InboundWindow>);

impl Drop for WindowSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Slowest rate an [`AdaptiveRate`] may be configured with (one message per
/// 1000 s): keeps every interval representable and every wait finite.
pub const MIN_ADAPTIVE_RATE: f64 = 0.001;

/// The rate to pace at so that a vendor allowing `limit` messages per
/// second never counts more than `limit` in any one second of its own:
/// the lower of 90 % of the limit and the limit less one (and half the
/// limit below 2/s).
///
/// Why a margin at all: messages leave evenly spaced but arrive with
/// jitter (scheduling, TCP, a window slot freeing late), and the vendor
/// counts arrivals. Paced at `r` with arrival delays varying by up to `D`,
/// a one-second window holds at most `(1 + D)·r + 1` arrivals; at
/// `r = limit − 1` (or 0.9·limit) that stays within the limit for `D` up to
/// one interval (55 ms at OVH's 20/s), where pacing exactly at the limit
/// shows the vendor 21 in a second as soon as one message is late.
pub fn with_margin(limit: f64) -> f64 {
    (limit * 0.9).min(limit - 1.0).max(limit * 0.5)
}

/// How an [`AdaptiveRate`] reacts to the upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveConfig {
    /// The highest rate to pace at, in messages per second (for a vendor's
    /// limit, [`with_margin`] of it): the starting rate and the ceiling of
    /// recovery. Never exceeded. Infinite when no limit is known: then the
    /// pacer sends unpaced until the upstream first throttles, and recovers
    /// without a ceiling (see [`AdaptiveConfig::unknown_ceiling`]).
    pub max_per_second: f64,
    /// Floor of the decrease, so that pacing never stalls completely.
    pub min_per_second: f64,
    /// Messages per second added back per successful response (additive
    /// increase): recovery is gradual, so we do not slam straight back into
    /// the limit the provider just enforced. Unused with no ceiling known:
    /// the rate then grows back with time (see [`Recovery`]).
    pub increase_per_success: f64,
    /// The vendor's limit per session (after margin), when it states one:
    /// the pacer, shared by the account's sessions, never goes faster than
    /// this times the sessions bound now (see
    /// [`AdaptiveRate::session_bound`]).
    pub per_session: Option<f64>,
    /// Throttle signals within this period after a decrease are ignored:
    /// every message already in flight when the provider started refusing
    /// comes back throttled, and that is one congestion event, not many.
    pub decrease_holdoff: Duration,
}

impl AdaptiveConfig {
    /// Defaults for a profile rate of `max_per_second`: floor at 1 msg/s (or
    /// the rate itself if lower), recovery of 1 % of the rate per success,
    /// one decrease per second at most.
    pub fn new(max_per_second: f64) -> Self {
        Self {
            max_per_second,
            min_per_second: max_per_second.min(1.0),
            increase_per_success: max_per_second / 100.0,
            decrease_holdoff: Duration::from_secs(1),
            per_session: None,
        }
    }

    /// No rate known for the upstream: unpaced until it first throttles.
    /// The upstream's limit is then learnt from what it accepted in the
    /// last second (halved), and recovered towards with time (see
    /// [`Recovery`]), halving again at each throttle, and unpaced again once
    /// the rate has grown [`UNPACED_AFTER`] times without a throttle: a
    /// vendor that throttled for a moment is not paced for ever.
    pub fn unknown_ceiling() -> Self {
        Self {
            max_per_second: f64::INFINITY,
            min_per_second: 1.0,
            increase_per_success: 0.01,
            decrease_holdoff: Duration::from_secs(1),
            per_session: None,
        }
    }

    /// Checks every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), AdaptiveConfigError> {
        let rate_ok = |r: f64| r.is_finite() && r >= MIN_ADAPTIVE_RATE;
        let ceiling_ok = self.max_per_second == f64::INFINITY || rate_ok(self.max_per_second);
        if !ceiling_ok {
            return Err(AdaptiveConfigError::InvalidMax(self.max_per_second));
        }
        if !rate_ok(self.min_per_second) || self.min_per_second > self.max_per_second {
            return Err(AdaptiveConfigError::InvalidMin {
                min: self.min_per_second,
                max: self.max_per_second,
            });
        }
        if !(self.increase_per_success.is_finite() && self.increase_per_success > 0.0) {
            return Err(AdaptiveConfigError::InvalidIncrease(
                self.increase_per_success,
            ));
        }
        if let Some(per_session) = self.per_session {
            if !rate_ok(per_session) {
                return Err(AdaptiveConfigError::InvalidPerSession(per_session));
            }
        }
        Ok(())
    }
}

/// Why an [`AdaptiveConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AdaptiveConfigError {
    /// The ceiling is not a usable rate.
    #[error("adaptive rate `max_per_second` ({0}) must be a rate of at least 0.001 messages per second (or infinite: none known)")]
    InvalidMax(f64),
    /// The floor is not a usable rate, or above the ceiling.
    #[error("adaptive rate `min_per_second` ({min}) must be at least 0.001 and at most `max_per_second` ({max})")]
    InvalidMin {
        /// The configured floor.
        min: f64,
        /// The configured ceiling.
        max: f64,
    },
    /// Recovery would never happen or is undefined.
    #[error("adaptive rate `increase_per_success` ({0}) must be a finite number > 0, or the rate would never recover")]
    InvalidIncrease(f64),
    /// The per-session rate is not a usable rate.
    #[error("adaptive rate `per_session` ({0}) must be a finite rate of at least 0.001 messages per second")]
    InvalidPerSession(f64),
}

/// With no ceiling known, a pacer that has grown this many times past the
/// rate it fell to, without another throttle, sends unpaced again.
pub const UNPACED_AFTER: f64 = 4.0;

/// Recovery of a pacer with no ceiling known, from its last decrease: the
/// rate grows by `step` per second from `from`.
///
/// Why by time and not per success: a rate learnt from a short sample may
/// be tiny (1/s), and a per-success step proportional to it recovers in
/// minutes, while every claimed message waits its turn in the pacer. By
/// time, a vendor that throttles at L/s is back at L within about five
/// seconds of each halving (a few refusals per cycle), and one that
/// throttled for a moment is unpaced again within about fifteen.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Recovery {
    /// The rate right after the decrease.
    from: f64,
    /// When the decrease happened.
    at: Instant,
    /// Messages per second added per second: a fifth of `from`, at least 1.
    step: f64,
}

impl Recovery {
    fn starting(from: f64, at: Instant) -> Self {
        Self {
            from,
            at,
            step: (from * 0.2).max(1.0),
        }
    }

    /// The rate at `now`, or `None` once it is time to send unpaced.
    fn rate(&self, now: Instant) -> Option<f64> {
        let grown = self.from + self.step * now.saturating_duration_since(self.at).as_secs_f64();
        (grown < self.from * UNPACED_AFTER).then_some(grown)
    }
}

/// Mutable part of an [`AdaptiveRate`].
#[derive(Debug)]
struct AdaptiveState {
    /// Current rate in messages per second, within `[min, max]` (infinite:
    /// unpaced, no limit known and no throttle seen yet).
    rate: f64,
    /// When recent messages were accepted (the last second's), to learn
    /// the upstream's rate at its first throttle when none is known.
    accepted: VecDeque<Instant>,
    /// Sessions bound now, for the per-session limit.
    sessions: usize,
    /// With no ceiling known, how the rate grows back after a decrease.
    recovery: Option<Recovery>,
    /// The config's per-session limit.
    per_session: Option<f64>,
    /// Send time handed to the latest `acquire`; the next one is at least one
    /// interval (at the current rate) later.
    last_slot: Option<Instant>,
    /// When the rate was last decreased, for the hold-off.
    last_decrease: Option<Instant>,
    /// The part of the account's rate this process may use, in (0, 1]:
    /// less than 1 when other Tern nodes hold some of the account's
    /// sessions (see [`AdaptiveRate::set_share`]).
    share: f64,
}

/// Paces an upstream (ESME-role) session at a rate that halves when the
/// provider signals throttling and creeps back up as messages succeed.
///
/// Pacing is done here rather than with governor because governor's quota is
/// fixed at construction: each [`acquire`](Self::acquire) waits for the next
/// send time (`last + 1/rate`, or now if idle), so messages are spaced evenly
/// without bursts and a rate change applies to the very next message.
/// The state mutex is never held while waiting.
#[derive(Debug)]
pub struct AdaptiveRate {
    /// Validated configuration.
    config: AdaptiveConfig,
    /// Current rate and the last send time.
    state: Mutex<AdaptiveState>,
    /// The queue of waiters: the one holding it waits for the next slot.
    turn: tokio::sync::Mutex<()>,
}

impl AdaptiveRate {
    /// Starts at `config.max_per_second`.
    pub fn new(config: AdaptiveConfig) -> Result<Self, AdaptiveConfigError> {
        config.validate()?;
        Ok(Self {
            state: Mutex::new(AdaptiveState {
                rate: config.max_per_second,
                accepted: VecDeque::new(),
                sessions: 0,
                recovery: None,
                per_session: config.per_session,
                last_slot: None,
                last_decrease: None,
                share: 1.0,
            }),
            config,
            turn: tokio::sync::Mutex::new(()),
        })
    }

    /// Waits for this message's send time: one interval (at the pace of
    /// the moment) after the previous message, waiters served in order.
    /// Cancel-safe: a caller that gives up takes no slot.
    pub async fn acquire(&self) {
        // Unpaced (no rate known and no throttle yet, or recovered): go at
        // once, without queueing for a turn. Every submission passes here,
        // and with hundreds in flight a turn taken by each costs a task
        // wake-up per message for nothing (BENCHMARKS.md, session 7).
        {
            let mut state = self.lock();
            let now = Instant::now();
            state.recover(now);
            if state.pace().is_infinite() {
                state.last_slot = Some(now);
                return;
            }
        }
        // One waiter at a time, in arrival order; the slot is worked out
        // when its turn comes, at the rate of that moment, so a backlog
        // follows the rate as it recovers (or drops) instead of keeping
        // slots reserved at an old rate.
        let _turn = self.turn.lock().await;
        loop {
            let now = Instant::now();
            let slot = {
                let mut state = self.lock();
                state.recover(now);
                state.next_slot(now)
            };
            if slot <= now {
                self.lock().last_slot = Some(now);
                return;
            }
            tokio::time::sleep_until(slot).await;
        }
    }

    /// The provider answered `ESME_RTHROTTLED` or `ESME_RMSGQFUL` (or a code
    /// its profile calls a throttle): halve the rate, not below the floor,
    /// at most once per hold-off period. With no rate known yet, the rate
    /// becomes half of what the upstream accepted over the last second.
    /// The next message waits a whole interval at the new rate.
    pub fn on_throttled(&self) {
        let now = Instant::now();
        let changed = {
            let mut state = self.lock();
            let held_off = state
                .last_decrease
                .is_some_and(|at| now.saturating_duration_since(at) < self.config.decrease_holdoff);
            if held_off {
                None
            } else {
                state.recover(now);
                let before = state.rate;
                if before.is_infinite() {
                    state.trim(now);
                    let learnt = state.accepted.len() as f64 / 2.0;
                    state.rate = learnt.max(self.config.min_per_second);
                } else {
                    state.rate = (before / 2.0).max(self.config.min_per_second);
                }
                if self.config.max_per_second.is_infinite() {
                    state.recovery = Some(Recovery::starting(state.rate, now));
                }
                state.last_decrease = Some(now);
                // The next message waits a whole interval at the new rate.
                state.last_slot = Some(state.last_slot.map_or(now, |last| last.max(now)));
                Some((before, state.rate))
            }
        };
        if let Some((before, after)) = changed {
            tracing::info!(before, after, "upstream throttled us: slowing down");
        }
    }

    /// A message was accepted: add `increase_per_success`, up to the
    /// ceiling. With no ceiling known the rate grows with time instead
    /// ([`Recovery`]), and the acceptance is counted for the next lesson.
    pub fn on_success(&self) {
        let now = Instant::now();
        let mut state = self.lock();
        if self.config.max_per_second.is_infinite() {
            state.recover(now);
            state.accepted.push_back(now);
            state.trim(now);
        } else {
            state.rate =
                (state.rate + self.config.increase_per_success).min(self.config.max_per_second);
        }
    }

    /// A session of the account bound: with a per-session limit, the
    /// account may go that much faster.
    pub fn session_bound(&self) {
        self.lock().sessions += 1;
    }

    /// A session of the account ended.
    pub fn session_ended(&self) {
        let mut state = self.lock();
        state.sessions = state.sessions.saturating_sub(1);
    }

    /// The rate messages are spaced at now: the current rate, within the
    /// per-session limit times the sessions bound, times the share.
    pub fn pace(&self) -> f64 {
        self.lock().pace()
    }

    /// Uses only `share` of the rate from the next message on: several
    /// nodes sending for one vendor account each pace at their part (the
    /// account's sessions they hold over the sessions it has), so together
    /// they keep the account's rate. Clamped to [0.001, 1].
    pub fn set_share(&self, share: f64) {
        let share = if share.is_finite() { share } else { 1.0 };
        self.lock().share = share.clamp(0.001, 1.0);
    }

    /// The part of the rate in use (see [`AdaptiveRate::set_share`]).
    pub fn share(&self) -> f64 {
        self.lock().share
    }

    /// The current rate in messages per second, for logs and metrics.
    pub fn current_rate(&self) -> f64 {
        self.lock().rate
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &AdaptiveConfig {
        &self.config
    }

    /// The state; each update is a single assignment, so a poisoned lock
    /// still holds a consistent value and is used as is.
    fn lock(&self) -> std::sync::MutexGuard<'_, AdaptiveState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AdaptiveState {
    /// When the next message may go: one interval at the current pace
    /// after the last, not before `now`.
    fn next_slot(&self, now: Instant) -> Instant {
        let rate = self.pace();
        match self.last_slot {
            None => now,
            Some(_) if rate.is_infinite() => now,
            Some(last) => last
                .checked_add(interval(rate))
                .map_or(now, |next| next.max(now)),
        }
    }

    /// See [`AdaptiveRate::pace`].
    fn pace(&self) -> f64 {
        let mut rate = self.rate;
        if let Some(per_session) = self.per_session {
            rate = rate.min(per_session * self.sessions.max(1) as f64);
        }
        rate * self.share
    }

    /// With no ceiling known, the rate recovered by `now` since the last
    /// decrease (unpaced again once grown enough).
    fn recover(&mut self, now: Instant) {
        if let Some(recovery) = self.recovery {
            match recovery.rate(now) {
                Some(rate) => self.rate = rate,
                None => {
                    self.rate = f64::INFINITY;
                    self.recovery = None;
                }
            }
        }
    }

    /// Forgets acceptances older than one second.
    fn trim(&mut self, now: Instant) {
        while self
            .accepted
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= Duration::from_secs(1))
        {
            self.accepted.pop_front();
        }
    }
}

/// Spacing between messages at `rate` per second; rates are validated to be
/// at least [`MIN_ADAPTIVE_RATE`], so this is at most 1000 s.
fn interval(rate: f64) -> Duration {
    Duration::try_from_secs_f64(1.0 / rate.max(MIN_ADAPTIVE_RATE))
        .unwrap_or(Duration::from_secs(1_000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn nz(n: u32) -> NonZeroU32 {
        NonZeroU32::new(n).expect("non-zero")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn an_inbound_window_refuses_past_its_limit_until_a_slot_is_given_back() {
        let window = InboundWindow::new(NonZeroUsize::new(2).expect("non-zero"));
        let first = window.try_take().expect("first slot");
        let _second = window.try_take().expect("second slot");
        assert!(window.try_take().is_none(), "a third submit is refused");
        drop(first);
        assert_eq!(window.open(), 1);
        let _third = window.try_take().expect("a slot given back is free again");
        window.set_limit(NonZeroUsize::new(1).expect("non-zero"));
        assert!(
            window.try_take().is_none(),
            "held slots count against a lowered limit"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn try_acquire_allows_the_burst_then_refuses_until_replenished() {
        let limit = RateLimit::per_second(nz(5));
        for _ in 0..5 {
            assert!(limit.try_acquire());
        }
        assert!(!limit.try_acquire());
        tokio::time::advance(ms(199)).await;
        assert!(!limit.try_acquire());
        tokio::time::advance(ms(1)).await;
        assert!(limit.try_acquire());
        assert!(!limit.try_acquire());
        assert_eq!((limit.rate(), limit.burst()), (nz(5), nz(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_paces_at_the_rate() {
        let limit = RateLimit::per_second(nz(10));
        let start = Instant::now();
        for _ in 0..10 {
            limit.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the burst is free");
        for _ in 0..20 {
            limit.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn burst_of_one_spaces_every_message() {
        let limit = RateLimit::with_burst(nz(20), nz(1));
        let start = Instant::now();
        for _ in 0..21 {
            limit.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        assert!(!limit.try_acquire());
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_from_many_tasks_shares_the_rate() {
        let limit = Arc::new(RateLimit::with_burst(nz(10), nz(1)));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let limit = Arc::clone(&limit);
                tokio::spawn(async move {
                    for _ in 0..5 {
                        limit.acquire().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task finished");
        }
        // 20 messages at 10/s, the first one free.
        assert_eq!(start.elapsed(), ms(1_900));
    }

    #[tokio::test(start_paused = true)]
    async fn a_share_of_the_rate_spaces_messages_by_the_share() {
        let pacer = AdaptiveRate::new(AdaptiveConfig::new(10.0)).expect("valid");
        let start = Instant::now();
        for _ in 0..11 {
            pacer.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1), "10/s whole");
        pacer.set_share(0.5);
        let start = Instant::now();
        for _ in 0..10 {
            pacer.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2), "5/s with half");
        pacer.set_share(0.0);
        assert_eq!(pacer.share(), 0.001, "never a stall forever");
        pacer.set_share(f64::NAN);
        assert_eq!(pacer.share(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn all_or_nothing_semantics_of_try_acquire_all() {
        let session = RateLimit::per_second(nz(2));
        let account = RateLimit::per_second(nz(3));
        assert!(try_acquire_all([&session, &account]));
        assert!(try_acquire_all([&session, &account]));
        // The session is exhausted: refused, and the account is not touched.
        assert!(!try_acquire_all([&session, &account]));
        assert!(account.try_acquire(), "account kept its third cell");
        // The account is exhausted (by sibling sessions): refused, and the
        // session's replenished cell is spent.
        tokio::time::advance(ms(500)).await;
        while account.try_acquire() {}
        assert!(!try_acquire_all([&session, &account]));
        assert!(!session.try_acquire(), "documented: not given back");
        assert!(try_acquire_all([]), "no limits, no limit");
    }

    fn adaptive(max: f64) -> AdaptiveRate {
        AdaptiveRate::new(AdaptiveConfig {
            max_per_second: max,
            min_per_second: 1.0,
            increase_per_success: 0.5,
            decrease_holdoff: Duration::ZERO,
            per_session: None,
        })
        .expect("valid config")
    }

    #[test]
    fn the_margin_keeps_below_the_limit() {
        assert_eq!(with_margin(20.0), 18.0, "10 % below");
        assert_eq!(with_margin(10.0), 9.0);
        assert_eq!(with_margin(5.0), 4.0, "one below");
        assert_eq!(with_margin(1.0), 0.5, "half of a tiny limit");
        for limit in [1.0, 2.0, 3.0, 7.0, 20.0, 100.0, 1000.0] {
            let paced = with_margin(limit);
            assert!(paced < limit && paced > 0.0, "{limit}: {paced}");
        }
    }

    /// The most send times of `times` within any one second.
    fn most_in_one_second(times: &[Instant]) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn paced_with_margin_a_late_message_never_makes_the_limit_plus_one() {
        let pacer = AdaptiveRate::new(AdaptiveConfig::new(with_margin(20.0))).expect("valid");
        let mut arrivals = Vec::new();
        for k in 0..60 {
            pacer.acquire().await;
            // Every seventh message is 50 ms late on the wire.
            let late = if k % 7 == 0 { ms(50) } else { Duration::ZERO };
            arrivals.push(Instant::now() + late);
        }
        arrivals.sort();
        assert!(
            most_in_one_second(&arrivals) <= 20,
            "{}",
            most_in_one_second(&arrivals)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_ceiling_it_is_unpaced_until_throttled_then_learns_the_rate() {
        let pacer = AdaptiveRate::new(AdaptiveConfig::unknown_ceiling()).expect("valid");
        let start = Instant::now();
        for _ in 0..10 {
            pacer.acquire().await;
            pacer.on_success();
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "unpaced");
        assert!(pacer.current_rate().is_infinite());
        // The upstream took 10 in the last second, then throttled: half.
        pacer.acquire().await;
        pacer.on_throttled();
        let after_throttle = Instant::now();
        assert_eq!(pacer.current_rate(), 5.0);
        // The next waits a whole interval at the new rate, the one after a
        // little less: the rate grows back as time passes.
        assert_eq!(timed(&pacer).await, ms(200));
        let second = timed(&pacer).await;
        assert!(second > ms(180) && second < ms(200), "{second:?}");
        // Additive increase with time: a fifth of the learnt rate (at
        // least 1/s) per second, whatever the number of successes.
        tokio::time::advance(ms(600)).await;
        pacer.on_success();
        let grown = 5.0 + 1.0 * (Instant::now() - after_throttle).as_secs_f64();
        assert!(
            (pacer.current_rate() - grown).abs() < 1e-6,
            "{} against {grown}",
            pacer.current_rate()
        );
        // Multiplicative decrease from there.
        tokio::time::advance(Duration::from_secs(2)).await;
        pacer.on_success();
        let before = pacer.current_rate();
        pacer.on_throttled();
        assert_eq!(pacer.current_rate(), before / 2.0);
        // No throttle for long enough: unpaced again, and the next lesson
        // comes from the acceptances of the second before it.
        tokio::time::advance(Duration::from_secs(60)).await;
        pacer.on_success();
        assert!(pacer.current_rate().is_infinite());
        assert_eq!(timed(&pacer).await, Duration::ZERO);
        assert_eq!(timed(&pacer).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_behind_a_tiny_learnt_rate_drains_within_seconds() {
        // A throttle with almost nothing accepted (just after a restart)
        // teaches 1/s: 30 waiting messages must not take 30 s and more.
        let pacer = AdaptiveRate::new(AdaptiveConfig::unknown_ceiling()).expect("valid");
        pacer.on_throttled();
        assert_eq!(pacer.current_rate(), 1.0);
        let start = Instant::now();
        for _ in 0..30 {
            pacer.acquire().await;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_with_nothing_accepted_falls_to_the_floor() {
        let pacer = AdaptiveRate::new(AdaptiveConfig::unknown_ceiling()).expect("valid");
        pacer.on_throttled();
        assert_eq!(pacer.current_rate(), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_per_session_rate_counts_the_sessions_bound() {
        let pacer = AdaptiveRate::new(AdaptiveConfig {
            per_session: Some(10.0),
            ..AdaptiveConfig::new(40.0)
        })
        .expect("valid");
        assert_eq!(pacer.pace(), 10.0, "none bound: as for one");
        pacer.session_bound();
        pacer.session_bound();
        assert_eq!(pacer.pace(), 20.0);
        for _ in 0..5 {
            pacer.session_bound();
        }
        assert_eq!(pacer.pace(), 40.0, "never above the account's");
        for _ in 0..6 {
            pacer.session_ended();
        }
        assert_eq!(pacer.pace(), 10.0);
        pacer.acquire().await;
        assert_eq!(timed(&pacer).await, ms(100));
    }

    /// Acquires once and returns the virtual time it took.
    async fn timed(rate: &AdaptiveRate) -> Duration {
        let start = Instant::now();
        rate.acquire().await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_paces_k_messages_in_k_over_n_seconds() {
        let rate = adaptive(10.0);
        let start = Instant::now();
        for _ in 0..31 {
            rate.acquire().await;
        }
        // The first is immediate, then one every 100 ms.
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_does_not_save_up_a_burst_while_idle() {
        let rate = adaptive(10.0);
        rate.acquire().await;
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(timed(&rate).await, Duration::ZERO);
        assert_eq!(timed(&rate).await, ms(100));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_doubles_the_spacing() {
        let rate = adaptive(10.0);
        rate.acquire().await;
        assert_eq!(timed(&rate).await, ms(100));
        rate.on_throttled();
        assert_eq!(rate.current_rate(), 5.0);
        assert_eq!(timed(&rate).await, ms(200));
        assert_eq!(timed(&rate).await, ms(200));
        rate.on_throttled();
        assert_eq!(timed(&rate).await, ms(400));
    }

    #[tokio::test(start_paused = true)]
    async fn throttled_never_goes_below_the_floor() {
        let rate = adaptive(10.0);
        for _ in 0..20 {
            rate.on_throttled();
        }
        assert_eq!(rate.current_rate(), 1.0);
        rate.acquire().await;
        assert_eq!(timed(&rate).await, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn throttle_signals_within_the_holdoff_count_once() {
        let rate = AdaptiveRate::new(AdaptiveConfig {
            decrease_holdoff: Duration::from_secs(1),
            ..AdaptiveConfig::new(16.0)
        })
        .expect("valid config");
        for _ in 0..10 {
            rate.on_throttled(); // a whole window coming back throttled
        }
        assert_eq!(rate.current_rate(), 8.0);
        tokio::time::advance(ms(999)).await;
        rate.on_throttled();
        assert_eq!(rate.current_rate(), 8.0);
        tokio::time::advance(ms(1)).await;
        rate.on_throttled();
        assert_eq!(rate.current_rate(), 4.0);
    }

    #[tokio::test(start_paused = true)]
    async fn successes_recover_gradually_up_to_the_ceiling() {
        let rate = adaptive(10.0);
        rate.on_throttled();
        rate.on_throttled();
        assert_eq!(rate.current_rate(), 2.5);
        rate.on_success();
        assert_eq!(rate.current_rate(), 3.0);
        for _ in 0..3 {
            rate.on_success();
        }
        assert_eq!(rate.current_rate(), 4.5);
        rate.acquire().await;
        // 1 / 4.5 s, rounded up to the timer's millisecond.
        let spacing = timed(&rate).await;
        assert!(spacing >= ms(222) && spacing <= ms(223), "{spacing:?}");
        for _ in 0..100 {
            rate.on_success();
        }
        assert_eq!(rate.current_rate(), 10.0);
        assert_eq!(timed(&rate).await, ms(100));
    }

    #[tokio::test(start_paused = true)]
    async fn adaptive_shares_slots_between_tasks() {
        let rate = Arc::new(adaptive(20.0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..5)
            .map(|_| {
                let rate = Arc::clone(&rate);
                tokio::spawn(async move {
                    for _ in 0..4 {
                        rate.acquire().await;
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("task finished");
        }
        assert_eq!(start.elapsed(), ms(950));
    }

    #[test]
    fn adaptive_defaults_are_valid_and_bad_configs_rejected() {
        let ok = AdaptiveConfig::new(20.0);
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.min_per_second, 1.0);
        assert_eq!(AdaptiveConfig::new(0.5).validate(), Ok(()));
        assert_eq!(AdaptiveConfig::unknown_ceiling().validate(), Ok(()));
        for max in [0.0, -1.0, f64::NAN, f64::NEG_INFINITY, 0.0001] {
            let bad = AdaptiveConfig {
                max_per_second: max,
                ..ok
            };
            assert!(
                matches!(bad.validate(), Err(AdaptiveConfigError::InvalidMax(_))),
                "{max}"
            );
        }
        let bad = AdaptiveConfig {
            min_per_second: 30.0,
            ..ok
        };
        assert_eq!(
            bad.validate(),
            Err(AdaptiveConfigError::InvalidMin {
                min: 30.0,
                max: 20.0
            })
        );
        assert!(AdaptiveRate::new(bad).is_err());
        for inc in [0.0, -0.5, f64::NAN] {
            let bad = AdaptiveConfig {
                increase_per_success: inc,
                ..ok
            };
            assert!(matches!(
                bad.validate(),
                Err(AdaptiveConfigError::InvalidIncrease(_))
            ));
        }
        let msg = AdaptiveConfigError::InvalidMin {
            min: 30.0,
            max: 20.0,
        }
        .to_string();
        assert!(
            msg.contains("min_per_second") && msg.contains("30"),
            "{msg}"
        );
    }
}
