//! Failed-bind guard for the SMSC role: slows down, then locks out, sources
//! and accounts that keep failing authentication.
//!
//! Why: a bind carries a system_id and a password, so an open SMPP port is a
//! password-guessing target. Providers defend themselves the same way
//! (OVHcloud refuses binds with `ESME_RBINDTHROTTLED`, vendor status 0x400,
//! "too many bind authentication"); Tern does it towards its own clients.
//! This module only returns a [`Verdict`]; the session maps it to a status
//! (e.g. 0x400 or `ESME_RBINDFAIL`) and applies the delay.
//!
//! Rules, evaluated separately for the source IP and for the system_id:
//! - failures are counted in a fixed window that opens at the first failure
//!   and lasts [`GuardConfig::window`]; when it has passed, the count restarts;
//! - from [`GuardConfig::delay_after`] failures on, the next attempts are
//!   answered [`Verdict::Delay`], growing by `delay_step` per further failure
//!   and capped at `max_delay`: a sequential guesser is slowed down;
//! - at [`GuardConfig::lock_after`] failures the key is locked for `lock_for`:
//!   [`Verdict::Refuse`] until then, without checking the password, which also
//!   stops guessers that use many connections in parallel. Failures reported
//!   while locked are ignored (the lock is not extended), and when it ends the
//!   key starts afresh;
//! - a caller gets the stricter of the IP's and the system_id's verdicts, so
//!   rotating system_ids from one address and spreading one system_id over
//!   many addresses are both caught.
//!
//! Invariants: at most [`GuardConfig::max_tracked`] keys are held, whatever
//! the peer sends (entries whose rule has expired go first, then those that
//! expire soonest); IPv6 sources are keyed by their /64 prefix (one
//! subscriber's allocation, so rotating addresses inside it gains nothing);
//! system_ids are keyed on at most [`MAX_SYSTEM_ID_KEY`] bytes. Passwords are
//! never seen here. Time is passed in, so the rules are testable without
//! sleeping; the internal mutex is never held across an await or a log call.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Longest system_id prefix used as a key. SMPP 3.4 allows 15 octets; the
/// margin tolerates vendor variants while bounding the memory per key.
pub const MAX_SYSTEM_ID_KEY: usize = 64;

/// Upper bound on every configured period, so that `now + period` can never
/// overflow an `Instant`.
const MAX_PERIOD: Duration = Duration::from_secs(366 * 24 * 3600);

/// Thresholds of the guard. Checked by [`GuardConfig::validate`] (and by
/// [`BindGuard::new`]) so that a bad file never yields a guard that is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardConfig {
    /// How long failures are remembered, counted from the first failure of a
    /// series.
    pub window: Duration,
    /// Failures within the window after which attempts are delayed.
    pub delay_after: u32,
    /// Delay added per failure from `delay_after` on; zero disables delays.
    pub delay_step: Duration,
    /// Cap on the delay, so a legitimate client that mistyped its password is
    /// never kept waiting longer than this.
    pub max_delay: Duration,
    /// Failures within the window after which the key is locked out. Equal to
    /// `delay_after` means no delay stage.
    pub lock_after: u32,
    /// How long a lock-out lasts.
    pub lock_for: Duration,
    /// Most keys (IPs plus system_ids) remembered at once: bounds memory
    /// against attackers that rotate system_ids or addresses.
    pub max_tracked: usize,
}

/// Why a [`GuardConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardConfigError {
    /// A period is zero where that would disable the rule silently.
    #[error("bind guard `{field}` must be greater than zero, or the rule would never apply")]
    ZeroPeriod {
        /// The field's name.
        field: &'static str,
    },
    /// A period is absurdly long.
    #[error("bind guard `{field}` ({value:?}) must not exceed 366 days")]
    PeriodTooLong {
        /// The field's name.
        field: &'static str,
        /// The configured value.
        value: Duration,
    },
    /// `delay_after` is zero, which would delay every first bind.
    #[error("bind guard `delay_after` must be at least 1, or every client would be delayed before failing once")]
    ZeroDelayAfter,
    /// `lock_after` is below `delay_after`.
    #[error("bind guard `lock_after` ({lock_after}) must be at least `delay_after` ({delay_after}): lock-out is the stage after delays")]
    LockBeforeDelay {
        /// The configured lock threshold.
        lock_after: u32,
        /// The configured delay threshold.
        delay_after: u32,
    },
    /// `max_delay` is below `delay_step`.
    #[error(
        "bind guard `max_delay` ({max_delay:?}) must be at least `delay_step` ({delay_step:?})"
    )]
    MaxDelayBelowStep {
        /// The configured cap.
        max_delay: Duration,
        /// The configured step.
        delay_step: Duration,
    },
    /// `max_tracked` cannot hold one attempt's two keys.
    #[error("bind guard `max_tracked` ({0}) must be at least 2: each attempt is tracked by IP and by system_id")]
    TooFewTracked(usize),
}

impl GuardConfig {
    /// Checks every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), GuardConfigError> {
        for (field, value) in [
            ("window", self.window),
            ("lock_for", self.lock_for),
            ("max_delay", self.max_delay),
        ] {
            if value > MAX_PERIOD {
                return Err(GuardConfigError::PeriodTooLong { field, value });
            }
        }
        if self.window.is_zero() {
            return Err(GuardConfigError::ZeroPeriod { field: "window" });
        }
        if self.lock_for.is_zero() {
            return Err(GuardConfigError::ZeroPeriod { field: "lock_for" });
        }
        if self.delay_after == 0 {
            return Err(GuardConfigError::ZeroDelayAfter);
        }
        if self.lock_after < self.delay_after {
            return Err(GuardConfigError::LockBeforeDelay {
                lock_after: self.lock_after,
                delay_after: self.delay_after,
            });
        }
        if self.max_delay < self.delay_step {
            return Err(GuardConfigError::MaxDelayBelowStep {
                max_delay: self.max_delay,
                delay_step: self.delay_step,
            });
        }
        if self.max_tracked < 2 {
            return Err(GuardConfigError::TooFewTracked(self.max_tracked));
        }
        Ok(())
    }
}

/// What to do with a bind attempt, decided before its password is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Authenticate normally.
    Allow,
    /// Wait this long, then authenticate: slows a guesser down.
    Delay(Duration),
    /// Refuse without authenticating until this instant (OVHcloud's
    /// equivalent answer is status 0x400, `ESME_RBINDTHROTTLED`).
    Refuse {
        /// When the lock-out ends.
        until: Instant,
    },
}

impl Verdict {
    /// The stricter of two verdicts: a refusal over a delay over an
    /// allowance; the later refusal, the longer delay.
    pub fn stricter(self, other: Verdict) -> Verdict {
        match (self, other) {
            (Verdict::Refuse { until: a }, Verdict::Refuse { until: b }) => {
                Verdict::Refuse { until: a.max(b) }
            }
            (refuse @ Verdict::Refuse { .. }, _) | (_, refuse @ Verdict::Refuse { .. }) => refuse,
            (Verdict::Delay(a), Verdict::Delay(b)) => Verdict::Delay(a.max(b)),
            (delay @ Verdict::Delay(_), Verdict::Allow)
            | (Verdict::Allow, delay @ Verdict::Delay(_)) => delay,
            (Verdict::Allow, Verdict::Allow) => Verdict::Allow,
        }
    }
}

/// What failures are counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A source address, IPv6 reduced to its /64.
    Ip(IpAddr),
    /// A system_id, cut to [`MAX_SYSTEM_ID_KEY`] bytes.
    SystemId(Box<str>),
}

impl Key {
    fn ip(ip: IpAddr) -> Self {
        let ip = match ip {
            IpAddr::V4(_) => ip,
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        };
        Key::Ip(ip)
    }

    fn system_id(system_id: &str) -> Self {
        let mut end = system_id.len().min(MAX_SYSTEM_ID_KEY);
        while !system_id.is_char_boundary(end) {
            end -= 1;
        }
        Key::SystemId(system_id.get(..end).unwrap_or_default().into())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Ip(IpAddr::V6(ip)) => write!(f, "ip {ip}/64"),
            Key::Ip(ip) => write!(f, "ip {ip}"),
            // Debug formatting escapes whatever bytes a peer put there.
            Key::SystemId(id) => write!(f, "system_id {id:?}"),
        }
    }
}

/// Failure history of one key.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Failures since `window_start`.
    failures: u32,
    /// First failure of the current series; the window ends `window` later.
    window_start: Instant,
    /// End of the lock-out, once `lock_after` was reached.
    locked_until: Option<Instant>,
    /// This entry's position in [`State::by_expiry`].
    slot: Slot,
}

/// Position in the expiry index: when the entry stops mattering, then an
/// insertion counter that makes slots unique.
type Slot = (Instant, u64);

impl Entry {
    /// When this entry stops influencing verdicts and may be dropped.
    fn expiry(&self, config: &GuardConfig) -> Instant {
        match self.locked_until {
            Some(until) => until,
            None => later(self.window_start, config.window),
        }
    }

    fn verdict(&self, config: &GuardConfig, now: Instant) -> Verdict {
        if now >= self.expiry(config) {
            return Verdict::Allow;
        }
        if let Some(until) = self.locked_until {
            return Verdict::Refuse { until };
        }
        if self.failures < config.delay_after || config.delay_step.is_zero() {
            return Verdict::Allow;
        }
        let steps = self.failures - config.delay_after + 1;
        let delay = config
            .delay_step
            .checked_mul(steps)
            .unwrap_or(config.max_delay)
            .min(config.max_delay);
        Verdict::Delay(delay)
    }
}

/// `at + d`, for periods bounded by [`MAX_PERIOD`]; saturates at `at` on
/// (practically impossible) overflow rather than panicking.
fn later(at: Instant, d: Duration) -> Instant {
    at.checked_add(d).unwrap_or(at)
}

/// Everything behind the mutex.
#[derive(Debug, Default)]
struct State {
    /// History per key.
    entries: HashMap<Key, Entry>,
    /// The same keys ordered by expiry: the front is what to drop first.
    by_expiry: BTreeMap<Slot, Key>,
    /// Makes slots unique.
    next_seq: u64,
}

impl State {
    /// Drops every entry whose rules no longer apply at `now`.
    fn purge_expired(&mut self, now: Instant) {
        while let Some(entry) = self.by_expiry.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.entries.remove(&key);
        }
    }

    /// Makes room for one more key: expired entries first, then those that
    /// would expire soonest. Returns how many live entries were evicted.
    fn make_room(&mut self, now: Instant, max_tracked: usize) -> usize {
        self.purge_expired(now);
        let mut evicted = 0;
        while self.entries.len() >= max_tracked {
            let Some((_, key)) = self.by_expiry.pop_first() else {
                break;
            };
            self.entries.remove(&key);
            evicted += 1;
        }
        evicted
    }

    /// Counts one failure against `key`. Returns whether this failure started
    /// a lock-out, and how many live entries had to be evicted.
    fn record(&mut self, config: &GuardConfig, key: Key, now: Instant) -> (bool, usize) {
        let mut evicted = 0;
        let mut entry = match self.entries.remove(&key) {
            Some(entry) => {
                self.by_expiry.remove(&entry.slot);
                entry
            }
            None => {
                evicted = self.make_room(now, config.max_tracked);
                Entry {
                    failures: 0,
                    window_start: now,
                    locked_until: None,
                    slot: (now, 0),
                }
            }
        };
        let mut locked_now = false;
        let locked = entry.locked_until.is_some_and(|until| now < until);
        if !locked {
            if now >= entry.expiry(config) {
                entry.failures = 0;
                entry.window_start = now;
                entry.locked_until = None;
            }
            entry.failures = entry.failures.saturating_add(1);
            if entry.failures >= config.lock_after {
                entry.locked_until = Some(later(now, config.lock_for));
                locked_now = true;
            }
        }
        entry.slot = (entry.expiry(config), self.next_seq);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.by_expiry.insert(entry.slot, key.clone());
        self.entries.insert(key, entry);
        (locked_now, evicted)
    }
}

/// Tracks failed binds per source IP and per system_id; shared by all the
/// listener's sessions (`&self` methods, internally locked).
#[derive(Debug)]
pub struct BindGuard {
    /// Validated thresholds.
    config: GuardConfig,
    /// Histories; the lock is held only for map operations, never across an
    /// await or while logging.
    state: Mutex<State>,
}

impl BindGuard {
    /// A guard with no history.
    pub fn new(config: GuardConfig) -> Result<Self, GuardConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// The verdict for a bind attempt from `ip` for `system_id` at `now`:
    /// the stricter of the two keys' verdicts. Call before checking the
    /// password; this does not count as an attempt.
    pub fn check(&self, ip: IpAddr, system_id: &str, now: Instant) -> Verdict {
        let (ip, id) = (Key::ip(ip), Key::system_id(system_id));
        let mut state = self.lock();
        state.purge_expired(now);
        let verdict_of = |key: &Key| {
            state
                .entries
                .get(key)
                .map_or(Verdict::Allow, |e| e.verdict(&self.config, now))
        };
        verdict_of(&ip).stricter(verdict_of(&id))
    }

    /// Counts a failed authentication from `ip` for `system_id` at `now`.
    pub fn record_failure(&self, ip: IpAddr, system_id: &str, now: Instant) {
        let (ip, id) = (Key::ip(ip), Key::system_id(system_id));
        let (ip_locked, id_locked, evicted) = {
            let mut state = self.lock();
            let (ip_locked, ip_evicted) = state.record(&self.config, ip.clone(), now);
            let (id_locked, id_evicted) = state.record(&self.config, id.clone(), now);
            (ip_locked, id_locked, ip_evicted + id_evicted)
        };
        for (locked, key) in [(ip_locked, &ip), (id_locked, &id)] {
            if locked {
                tracing::warn!(
                    %key,
                    failures = self.config.lock_after,
                    lock_for = ?self.config.lock_for,
                    "too many failed binds: locked out"
                );
            }
        }
        if evicted > 0 {
            tracing::debug!(
                evicted,
                max_tracked = self.config.max_tracked,
                "bind guard full: forgot the histories closest to expiry"
            );
        }
    }

    /// Forgets the history of `ip` and of `system_id` after a successful
    /// bind, so a client that once mistyped is not penalised later. Note that
    /// a successful bind from an address clears that address's counter, but
    /// not the counters of other system_ids tried from it.
    pub fn record_success(&self, ip: IpAddr, system_id: &str) {
        let (ip, id) = (Key::ip(ip), Key::system_id(system_id));
        let mut state = self.lock();
        for key in [ip, id] {
            if let Some(entry) = state.entries.remove(&key) {
                state.by_expiry.remove(&entry.slot);
            }
        }
    }

    /// Number of keys currently remembered (at most `max_tracked`).
    pub fn tracked(&self) -> usize {
        self.lock().entries.len()
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &GuardConfig {
        &self.config
    }

    /// The state; a panic elsewhere cannot leave it inconsistent in a way
    /// that matters (each update is a few map operations), so poisoning is
    /// ignored rather than propagated into every later bind.
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const SEC: Duration = Duration::from_secs(1);

    fn config() -> GuardConfig {
        GuardConfig {
            window: Duration::from_secs(60),
            delay_after: 3,
            delay_step: SEC,
            max_delay: Duration::from_secs(3),
            lock_after: 6,
            lock_for: Duration::from_secs(600),
            max_tracked: 1_000,
        }
    }

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))
    }

    fn guard() -> BindGuard {
        BindGuard::new(config()).expect("valid config")
    }

    fn fail(g: &BindGuard, addr: IpAddr, id: &str, now: Instant, times: u32) {
        for _ in 0..times {
            g.record_failure(addr, id, now);
        }
    }

    #[test]
    fn allows_until_delay_threshold() {
        let (g, t) = (guard(), Instant::now());
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Allow);
        fail(&g, ip(1), "alice", t, 2);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Allow);
    }

    #[test]
    fn delays_grow_per_failure_and_are_capped() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "alice", t, 3);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Delay(SEC));
        fail(&g, ip(1), "alice", t, 1);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Delay(2 * SEC));
        fail(&g, ip(1), "alice", t, 1);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Delay(3 * SEC));
        let wide = BindGuard::new(GuardConfig {
            lock_after: 100,
            ..config()
        })
        .expect("valid config");
        fail(&wide, ip(1), "alice", t, 50);
        assert_eq!(wide.check(ip(1), "alice", t), Verdict::Delay(3 * SEC));
    }

    #[test]
    fn zero_step_means_no_delay_stage() {
        let g = BindGuard::new(GuardConfig {
            delay_step: Duration::ZERO,
            ..config()
        })
        .expect("valid config");
        let t = Instant::now();
        fail(&g, ip(1), "alice", t, 5);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Allow);
        fail(&g, ip(1), "alice", t, 1);
        assert!(matches!(g.check(ip(1), "alice", t), Verdict::Refuse { .. }));
    }

    #[test]
    fn locks_out_after_lock_threshold_until_lock_expires() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "alice", t, 6);
        let until = t + Duration::from_secs(600);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Refuse { until });
        assert_eq!(
            g.check(ip(1), "alice", until - SEC),
            Verdict::Refuse { until }
        );
        // After the lock-out the key starts afresh: no leftover delay.
        assert_eq!(g.check(ip(1), "alice", until), Verdict::Allow);
        g.record_failure(ip(1), "alice", until);
        assert_eq!(g.check(ip(1), "alice", until), Verdict::Allow);
    }

    #[test]
    fn failures_while_locked_do_not_extend_the_lock() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "alice", t, 6);
        fail(&g, ip(1), "alice", t + Duration::from_secs(300), 20);
        let until = t + Duration::from_secs(600);
        assert_eq!(
            g.check(ip(1), "alice", t + Duration::from_secs(301)),
            Verdict::Refuse { until }
        );
        assert_eq!(g.check(ip(1), "alice", until), Verdict::Allow);
    }

    #[test]
    fn failures_outside_the_window_do_not_accumulate() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "alice", t, 2);
        let next = t + Duration::from_secs(60);
        assert_eq!(g.check(ip(1), "alice", next), Verdict::Allow);
        fail(&g, ip(1), "alice", next, 2);
        assert_eq!(g.check(ip(1), "alice", next), Verdict::Allow);
        // Five failures, but never three inside one window: never delayed.
        let later = next + Duration::from_secs(61);
        g.record_failure(ip(1), "alice", later);
        assert_eq!(g.check(ip(1), "alice", later), Verdict::Allow);
    }

    #[test]
    fn delay_ends_with_the_window() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "alice", t, 4);
        assert_eq!(
            g.check(ip(1), "alice", t + Duration::from_secs(59)),
            Verdict::Delay(2 * SEC)
        );
        assert_eq!(
            g.check(ip(1), "alice", t + Duration::from_secs(60)),
            Verdict::Allow
        );
        assert_eq!(g.tracked(), 0, "expired entries are dropped");
    }

    #[test]
    fn success_clears_both_counters() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "alice", t, 5);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Delay(3 * SEC));
        g.record_success(ip(1), "alice");
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Allow);
        assert_eq!(g.tracked(), 0);
        g.record_failure(ip(1), "alice", t);
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Allow);
    }

    #[test]
    fn success_for_another_account_does_not_unlock_the_target() {
        let (g, t) = (guard(), Instant::now());
        fail(&g, ip(1), "victim", t, 6);
        g.record_success(ip(1), "mallory");
        assert_eq!(g.check(ip(1), "mallory", t), Verdict::Allow);
        assert!(matches!(
            g.check(ip(2), "victim", t),
            Verdict::Refuse { .. }
        ));
    }

    #[test]
    fn rotating_system_ids_from_one_ip_locks_the_ip_only() {
        let (g, t) = (guard(), Instant::now());
        for n in 0..6 {
            g.record_failure(ip(1), &format!("user{n}"), t);
        }
        assert!(matches!(
            g.check(ip(1), "someone-else", t),
            Verdict::Refuse { .. }
        ));
        // The system_ids tried each failed once: usable from elsewhere.
        assert_eq!(g.check(ip(2), "user0", t), Verdict::Allow);
    }

    #[test]
    fn one_system_id_from_many_ips_locks_the_system_id_only() {
        let (g, t) = (guard(), Instant::now());
        for n in 0..6 {
            g.record_failure(ip(n), "alice", t);
        }
        assert!(matches!(
            g.check(ip(99), "alice", t),
            Verdict::Refuse { .. }
        ));
        assert_eq!(g.check(ip(0), "bob", t), Verdict::Allow);
    }

    #[test]
    fn verdict_is_the_stricter_of_ip_and_system_id() {
        let (g, t) = (guard(), Instant::now());
        // ip(1): 5 failures (delay 3 s); "alice": 3 of them (delay 1 s).
        fail(&g, ip(1), "x", t, 2);
        fail(&g, ip(1), "alice", t, 3);
        assert_eq!(g.check(ip(1), "bob", t), Verdict::Delay(3 * SEC));
        assert_eq!(g.check(ip(3), "alice", t), Verdict::Delay(SEC));
        assert_eq!(g.check(ip(1), "alice", t), Verdict::Delay(3 * SEC));
        fail(&g, ip(4), "carol", t, 6);
        let until = t + Duration::from_secs(600);
        assert_eq!(g.check(ip(4), "alice", t), Verdict::Refuse { until });
        assert_eq!(g.check(ip(1), "carol", t), Verdict::Refuse { until });
    }

    #[test]
    fn stricter_orders_verdicts() {
        let t = Instant::now();
        let r1 = Verdict::Refuse { until: t };
        let r2 = Verdict::Refuse { until: t + SEC };
        let d1 = Verdict::Delay(SEC);
        let d2 = Verdict::Delay(2 * SEC);
        assert_eq!(r1.stricter(r2), r2);
        assert_eq!(r2.stricter(r1), r2);
        assert_eq!(d2.stricter(r1), r1);
        assert_eq!(Verdict::Allow.stricter(r1), r1);
        assert_eq!(d1.stricter(d2), d2);
        assert_eq!(Verdict::Allow.stricter(d1), d1);
        assert_eq!(d1.stricter(Verdict::Allow), d1);
        assert_eq!(Verdict::Allow.stricter(Verdict::Allow), Verdict::Allow);
    }

    #[test]
    fn memory_stays_bounded_when_rotating_ids_and_addresses() {
        let g = BindGuard::new(GuardConfig {
            max_tracked: 100,
            ..config()
        })
        .expect("valid config");
        let t = Instant::now();
        for n in 0..10_000u32 {
            g.record_failure(ip(n), &format!("random-{n}"), t);
            assert!(g.tracked() <= 100);
        }
        assert_eq!(g.tracked(), 100);
        // Once their window has passed, everything is forgotten.
        g.check(ip(0), "x", t + Duration::from_secs(60));
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn eviction_keeps_live_lockouts_over_younger_noise() {
        let g = BindGuard::new(GuardConfig {
            max_tracked: 50,
            ..config()
        })
        .expect("valid config");
        let t = Instant::now();
        fail(&g, ip(1), "victim", t, 6);
        let noise = t + SEC;
        for n in 0..5_000u32 {
            g.record_failure(ip(1_000 + n), &format!("noise-{n}"), noise);
        }
        assert!(g.tracked() <= 50);
        assert!(matches!(
            g.check(ip(2), "victim", noise),
            Verdict::Refuse { .. }
        ));
        assert!(matches!(g.check(ip(1), "x", noise), Verdict::Refuse { .. }));
    }

    #[test]
    fn eviction_drops_expired_entries_first() {
        let g = BindGuard::new(GuardConfig {
            max_tracked: 4,
            ..config()
        })
        .expect("valid config");
        let t = Instant::now();
        fail(&g, ip(1), "old", t, 3);
        let t2 = t + Duration::from_secs(30);
        fail(&g, ip(2), "live", t2, 3);
        // At t + 60 s "old" has expired, "live" has not: adding two keys must
        // drop the expired pair and keep the live one.
        let t3 = t + Duration::from_secs(60);
        g.record_failure(ip(3), "new", t3);
        assert_eq!(g.tracked(), 4);
        assert_eq!(g.check(ip(9), "live", t3), Verdict::Delay(SEC));
        assert_eq!(g.check(ip(2), "y", t3), Verdict::Delay(SEC));
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        let (g, t) = (guard(), Instant::now());
        for n in 0..6u16 {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, n, n, n, n);
            g.record_failure(IpAddr::V6(addr), &format!("u{n}"), t);
        }
        let same_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 2, 9, 9, 9, 9));
        let other_64 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 3, 0, 0, 0, 1));
        assert!(matches!(g.check(same_64, "z", t), Verdict::Refuse { .. }));
        assert_eq!(g.check(other_64, "z", t), Verdict::Allow);

        fail(&g, ip(7), "a", t, 3);
        let mapped = IpAddr::V6(Ipv4Addr::from(0x0a00_0007).to_ipv6_mapped());
        assert_eq!(g.check(mapped, "b", t), Verdict::Delay(SEC));
    }

    #[test]
    fn long_system_ids_are_keyed_by_a_bounded_prefix() {
        let (g, t) = (guard(), Instant::now());
        let base = "é".repeat(40); // 80 bytes, cut on a char boundary
        for n in 0..3 {
            g.record_failure(ip(n), &format!("{base}{n}"), t);
        }
        assert_eq!(
            g.check(ip(50), &format!("{base}zzz"), t),
            Verdict::Delay(SEC)
        );
        assert_eq!(g.check(ip(50), "é", t), Verdict::Allow);
    }

    #[test]
    fn concurrent_failures_are_all_counted() {
        let g = Arc::new(
            BindGuard::new(GuardConfig {
                lock_after: 80,
                ..config()
            })
            .expect("valid config"),
        );
        let t = Instant::now();
        let handles: Vec<_> = (0..8)
            .map(|n| {
                let g = Arc::clone(&g);
                std::thread::spawn(move || fail(&g, ip(n), "shared", t, 10))
            })
            .collect();
        for h in handles {
            h.join().expect("thread finished");
        }
        assert!(matches!(
            g.check(ip(100), "shared", t),
            Verdict::Refuse { .. }
        ));
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<BindGuard>();
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_reason() {
        let ok = config();
        assert_eq!(ok.validate(), Ok(()));
        let cases = [
            (
                GuardConfig {
                    window: Duration::ZERO,
                    ..ok
                },
                GuardConfigError::ZeroPeriod { field: "window" },
            ),
            (
                GuardConfig {
                    lock_for: Duration::ZERO,
                    ..ok
                },
                GuardConfigError::ZeroPeriod { field: "lock_for" },
            ),
            (
                GuardConfig {
                    lock_for: Duration::MAX,
                    ..ok
                },
                GuardConfigError::PeriodTooLong {
                    field: "lock_for",
                    value: Duration::MAX,
                },
            ),
            (
                GuardConfig {
                    delay_after: 0,
                    ..ok
                },
                GuardConfigError::ZeroDelayAfter,
            ),
            (
                GuardConfig {
                    lock_after: 2,
                    ..ok
                },
                GuardConfigError::LockBeforeDelay {
                    lock_after: 2,
                    delay_after: 3,
                },
            ),
            (
                GuardConfig {
                    max_delay: Duration::from_millis(10),
                    ..ok
                },
                GuardConfigError::MaxDelayBelowStep {
                    max_delay: Duration::from_millis(10),
                    delay_step: SEC,
                },
            ),
            (
                GuardConfig {
                    max_tracked: 1,
                    ..ok
                },
                GuardConfigError::TooFewTracked(1),
            ),
        ];
        for (cfg, want) in cases {
            assert_eq!(cfg.validate(), Err(want.clone()));
            assert_eq!(BindGuard::new(cfg).expect_err("invalid config"), want);
        }
        let msg = GuardConfigError::LockBeforeDelay {
            lock_after: 2,
            delay_after: 3,
        }
        .to_string();
        assert!(
            msg.contains("lock_after") && msg.contains("delay_after"),
            "{msg}"
        );
    }
}
