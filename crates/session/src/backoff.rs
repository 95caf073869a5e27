//! Reconnect delays for upstream (ESME-role) sessions: validated, capped,
//! jittered exponential backoff, reset after a successful bind.
//!
//! Why it exists: upstreams drop us on purpose (OVHcloud unbinds every
//! session every 24 h and expects an automatic reconnect) and by accident
//! (network loss, SMSC restarts). Reconnecting in a tight loop would hammer a
//! provider that is already in trouble, and OVHcloud answers too many binds
//! with `ESME_RBINDTHROTTLED` (0x400); every Tern session of a pool
//! reconnecting at the same instant after the 24 h unbind is the same
//! problem. So delays grow geometrically, are capped, and are randomised.
//!
//! Scheme ("full jitter" over a fraction of the delay). For attempt `n`
//! (counted from 0 since the last [`Backoff::reset`]):
//!
//! ```text
//! ceiling(n) = min(max, initial * multiplier^n)
//! floor(n)   = max(ceiling(n) * (1 - jitter), min(1 ms, ceiling(n)))
//! delay(n)   = uniform in [floor(n), ceiling(n)]
//! ```
//!
//! With `jitter = 0` the sequence is exact (`1 s, 2 s, 4 s, 8 s, …, max`);
//! with `jitter = 1` it is AWS-style full jitter, except that the delay never
//! drops below 1 ms (or the ceiling, if that is smaller).
//!
//! Invariants: every delay is in `[floor(n), ceiling(n)]`, hence never zero
//! and never above `max`; a [`BackoffConfig`] that fails
//! [`BackoffConfig::validate`] never builds a [`Backoff`]; no arithmetic here
//! can panic (overflow saturates at `max`).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Smallest delay a jittered draw may produce, so that `jitter = 1.0` can
/// never turn into an immediate (hot-loop) reconnect.
const MIN_JITTERED_DELAY: Duration = Duration::from_millis(1);

/// Nanoseconds per second, for exact integer conversions.
const NANOS_PER_SEC: u128 = 1_000_000_000;

/// How reconnect delays grow. Checked by [`BackoffConfig::validate`] before
/// any [`Backoff`] is built from it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackoffConfig {
    /// Delay before the first reconnect attempt (the ceiling of attempt 0).
    /// Must be positive: a zero delay would reconnect in a tight loop.
    pub initial: Duration,
    /// Cap on every delay, so a long outage still gets retried regularly.
    pub max: Duration,
    /// Growth factor per attempt; `1.0` gives a constant delay. Must be
    /// finite and at least 1, or delays would shrink or be undefined.
    pub multiplier: f64,
    /// Fraction of each delay that is randomised, in `0.0..=1.0`: the delay
    /// is drawn from `[ceiling * (1 - jitter), ceiling]`. Spreads the
    /// reconnects of many sessions dropped at the same moment.
    pub jitter: f64,
}

/// Why a [`BackoffConfig`] was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BackoffError {
    /// `initial` is zero.
    #[error(
        "backoff `initial` must be greater than zero, or reconnects would spin in a tight loop"
    )]
    ZeroInitial,
    /// `max` is below `initial`.
    #[error("backoff `max` ({max:?}) must be at least `initial` ({initial:?}), or the cap would undercut the first delay")]
    MaxBelowInitial {
        /// The configured cap.
        max: Duration,
        /// The configured first delay.
        initial: Duration,
    },
    /// `multiplier` is below 1, NaN or infinite.
    #[error("backoff `multiplier` ({multiplier}) must be a finite number >= 1.0, or delays would shrink or be undefined")]
    InvalidMultiplier {
        /// The configured multiplier.
        multiplier: f64,
    },
    /// `jitter` is outside `0.0..=1.0` or NaN.
    #[error("backoff `jitter` ({jitter}) must be between 0.0 and 1.0: it is the fraction of each delay that is randomised")]
    InvalidJitter {
        /// The configured jitter.
        jitter: f64,
    },
}

impl BackoffConfig {
    /// Checks every field; returns the first problem found.
    pub fn validate(&self) -> Result<(), BackoffError> {
        if self.initial.is_zero() {
            return Err(BackoffError::ZeroInitial);
        }
        if self.max < self.initial {
            return Err(BackoffError::MaxBelowInitial {
                max: self.max,
                initial: self.initial,
            });
        }
        if !(self.multiplier.is_finite() && self.multiplier >= 1.0) {
            return Err(BackoffError::InvalidMultiplier {
                multiplier: self.multiplier,
            });
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(BackoffError::InvalidJitter {
                jitter: self.jitter,
            });
        }
        Ok(())
    }

    /// The inclusive range `(floor, ceiling)` that the delay of attempt
    /// `attempt` (0-based since the last reset) is drawn from. Public so that
    /// callers can log or document the schedule; meaningful only for a
    /// configuration that passes [`validate`](Self::validate).
    pub fn delay_bounds(&self, attempt: u32) -> (Duration, Duration) {
        let ceiling = self.ceiling(attempt);
        if self.jitter <= 0.0 {
            return (ceiling, ceiling);
        }
        let scaled = scale(ceiling, 1.0 - self.jitter.min(1.0));
        let floor = scaled.max(MIN_JITTERED_DELAY.min(ceiling)).min(ceiling);
        (floor, ceiling)
    }

    /// `min(max, initial * multiplier^attempt)`, saturating at `max`.
    fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let factor = self.multiplier.powi(exponent);
        let nanos = self.initial.as_nanos() as f64 * factor;
        // NaN and infinity both map to the cap.
        if nanos.is_nan() || nanos >= self.max.as_nanos() as f64 {
            return self.max;
        }
        duration_from_nanos(nanos).clamp(self.initial.min(self.max), self.max)
    }
}

/// `d * factor` for a finite `factor >= 0`, rounded to the nanosecond.
fn scale(d: Duration, factor: f64) -> Duration {
    duration_from_nanos(d.as_nanos() as f64 * factor)
}

/// Converts a nanosecond count held in an `f64` to a `Duration`, rounding to
/// the nearest nanosecond; negative and NaN give zero, huge values saturate.
/// Integer arithmetic keeps whole seconds exact (no `from_secs_f64` drift).
fn duration_from_nanos(nanos: f64) -> Duration {
    if nanos.is_nan() || nanos <= 0.0 {
        return Duration::ZERO;
    }
    // `as` from f64 to u128 saturates; it cannot wrap or panic.
    let total = nanos.round() as u128;
    let secs = u64::try_from(total / NANOS_PER_SEC).unwrap_or(u64::MAX);
    let sub = u32::try_from(total % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, sub)
}

/// Reconnect delay generator for one upstream session.
///
/// The random source is a type parameter so that tests (and anyone who needs
/// reproducible schedules) can inject a seeded RNG; production code uses
/// [`Backoff::new`], seeded from the thread RNG so that sessions started at
/// the same time still draw different delays.
#[derive(Debug, Clone)]
pub struct Backoff<R = StdRng> {
    /// Validated at construction; never changes afterwards.
    config: BackoffConfig,
    /// Delays handed out since construction or the last [`reset`](Self::reset);
    /// the exponent of the next ceiling.
    attempts: u32,
    /// Source of the jitter.
    rng: R,
}

impl Backoff<StdRng> {
    /// A backoff with a fresh random seed.
    pub fn new(config: BackoffConfig) -> Result<Self, BackoffError> {
        Self::with_rng(config, StdRng::from_rng(&mut rand::rng()))
    }

    /// A backoff whose jitter is reproducible from `seed`.
    pub fn seeded(config: BackoffConfig, seed: u64) -> Result<Self, BackoffError> {
        Self::with_rng(config, StdRng::seed_from_u64(seed))
    }
}

impl<R: Rng> Backoff<R> {
    /// A backoff drawing its jitter from `rng`.
    pub fn with_rng(config: BackoffConfig, rng: R) -> Result<Self, BackoffError> {
        config.validate()?;
        Ok(Self {
            config,
            attempts: 0,
            rng,
        })
    }

    /// The delay to wait before the next reconnect attempt; counts the attempt.
    /// Always within [`BackoffConfig::delay_bounds`] of the attempt number,
    /// so never zero and never above `max`.
    pub fn next_delay(&mut self) -> Duration {
        let (floor, ceiling) = self.config.delay_bounds(self.attempts);
        self.attempts = self.attempts.saturating_add(1);
        if floor >= ceiling {
            // No jitter (or nothing to randomise): exact, and no RNG draw.
            return ceiling;
        }
        self.rng.random_range(floor..=ceiling)
    }

    /// Starts over from `initial`. Call after a successful bind, so that the
    /// next outage (such as OVHcloud's daily unbind) starts with a short delay.
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// Delays handed out since construction or the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The (validated) configuration.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn config(initial: Duration, max: Duration, multiplier: f64, jitter: f64) -> BackoffConfig {
        BackoffConfig {
            initial,
            max,
            multiplier,
            jitter,
        }
    }

    #[test]
    fn grows_geometrically_without_jitter_and_caps_at_max() {
        let mut b = Backoff::seeded(config(secs(1), secs(60), 2.0, 0.0), 7).expect("valid config");
        let got: Vec<_> = (0..9).map(|_| b.next_delay()).collect();
        let want: Vec<_> = [1, 2, 4, 8, 16, 32, 60, 60, 60]
            .into_iter()
            .map(secs)
            .collect();
        assert_eq!(got, want);
        assert_eq!(b.attempts(), 9);
    }

    #[test]
    fn fractional_steps_are_exact_to_the_nanosecond() {
        let cfg = config(Duration::from_millis(100), secs(10), 1.5, 0.0);
        let mut b = Backoff::seeded(cfg, 0).expect("valid config");
        let got: Vec<_> = (0..4).map(|_| b.next_delay()).collect();
        let want: Vec<_> = [100, 150, 225]
            .into_iter()
            .map(Duration::from_millis)
            .chain([Duration::from_micros(337_500)])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn multiplier_one_gives_a_constant_delay() {
        let mut b = Backoff::seeded(config(secs(5), secs(5), 1.0, 0.0), 1).expect("valid config");
        for _ in 0..20 {
            assert_eq!(b.next_delay(), secs(5));
        }
    }

    #[test]
    fn huge_attempt_counts_saturate_at_max_without_panicking() {
        let cfg = config(secs(1), Duration::MAX, 10.0, 0.5);
        let (lo, hi) = cfg.delay_bounds(u32::MAX);
        assert_eq!(hi, Duration::MAX);
        assert!(lo <= hi && lo > Duration::ZERO);
        let mut b = Backoff::seeded(cfg, 3).expect("valid config");
        b.attempts = u32::MAX;
        assert!(b.next_delay() > Duration::ZERO);
        assert_eq!(b.attempts(), u32::MAX);
    }

    #[test]
    fn reset_starts_over_from_initial() {
        let mut b = Backoff::seeded(config(secs(1), secs(60), 2.0, 0.0), 7).expect("valid config");
        for _ in 0..5 {
            b.next_delay();
        }
        assert_eq!(b.next_delay(), secs(32));
        b.reset();
        assert_eq!(b.attempts(), 0);
        assert_eq!(b.next_delay(), secs(1));
        assert_eq!(b.next_delay(), secs(2));
    }

    #[test]
    fn same_seed_same_schedule_and_jitter_actually_varies() {
        let cfg = config(secs(1), secs(30), 2.0, 0.5);
        let mut a = Backoff::seeded(cfg.clone(), 42).expect("valid config");
        let mut b = Backoff::seeded(cfg, 42).expect("valid config");
        let xs: Vec<_> = (0..10).map(|_| a.next_delay()).collect();
        let ys: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert_eq!(xs, ys);
        // Ten draws at the 30 s cap with half of it randomised: not all equal.
        let mut capped =
            Backoff::seeded(config(secs(30), secs(30), 1.0, 0.5), 9).expect("valid config");
        let draws: Vec<_> = (0..10).map(|_| capped.next_delay()).collect();
        assert!(draws.iter().any(|d| *d != draws[0]), "{draws:?}");
    }

    #[test]
    fn jitter_stays_within_bounds_over_many_draws() {
        let cfg = config(secs(1), secs(60), 2.0, 0.3);
        let mut b = Backoff::seeded(cfg, 1234).expect("valid config");
        let (mut lowest, mut highest) = (Duration::MAX, Duration::ZERO);
        for _ in 0..10_000 {
            b.reset();
            // Attempt 6 has ceiling 60 s (64 s capped): delays in [42 s, 60 s].
            for _ in 0..6 {
                b.next_delay();
            }
            let d = b.next_delay();
            lowest = lowest.min(d);
            highest = highest.max(d);
        }
        assert!(lowest >= secs(42), "{lowest:?}");
        assert!(highest <= secs(60), "{highest:?}");
        // The draws cover most of the range, so jitter is really applied.
        assert!(
            lowest < secs(44) && highest > secs(58),
            "{lowest:?}..{highest:?}"
        );
    }

    #[test]
    fn full_jitter_never_yields_zero() {
        let cfg = config(Duration::from_millis(10), secs(1), 2.0, 1.0);
        assert_eq!(
            cfg.delay_bounds(0),
            (Duration::from_millis(1), Duration::from_millis(10))
        );
        // Below 1 ms the floor is the ceiling itself.
        let tiny = config(Duration::from_nanos(1), Duration::from_nanos(1), 1.0, 1.0);
        assert_eq!(
            tiny.delay_bounds(0),
            (Duration::from_nanos(1), Duration::from_nanos(1))
        );
        let mut b = Backoff::seeded(cfg, 5).expect("valid config");
        for _ in 0..1_000 {
            assert!(b.next_delay() >= Duration::from_millis(1));
        }
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_reason() {
        let ok = config(secs(1), secs(60), 2.0, 0.2);
        assert_eq!(ok.validate(), Ok(()));

        let zero = BackoffConfig {
            initial: Duration::ZERO,
            ..ok
        };
        assert_eq!(zero.validate(), Err(BackoffError::ZeroInitial));
        assert!(Backoff::new(zero).is_err());

        let below = BackoffConfig { max: secs(0), ..ok };
        assert_eq!(
            below.validate(),
            Err(BackoffError::MaxBelowInitial {
                max: secs(0),
                initial: secs(1)
            })
        );
        let msg = below.validate().expect_err("invalid config").to_string();
        assert!(msg.contains("max") && msg.contains("initial"), "{msg}");

        for multiplier in [0.5, 0.0, -2.0, f64::NAN, f64::INFINITY] {
            let bad = BackoffConfig { multiplier, ..ok };
            assert!(
                matches!(bad.validate(), Err(BackoffError::InvalidMultiplier { .. })),
                "{multiplier}"
            );
        }
        for jitter in [-0.1, 1.01, f64::NAN, f64::INFINITY] {
            let bad = BackoffConfig { jitter, ..ok };
            assert!(
                matches!(bad.validate(), Err(BackoffError::InvalidJitter { .. })),
                "{jitter}"
            );
            assert!(Backoff::seeded(bad, 0).is_err());
        }
        let msg = BackoffConfig { jitter: 2.0, ..ok }
            .validate()
            .expect_err("invalid config")
            .to_string();
        assert!(msg.contains("jitter") && msg.contains('2'), "{msg}");
    }

    fn valid_config() -> impl Strategy<Value = BackoffConfig> {
        (
            1u64..=10_000_000_000,
            0u64..=100_000_000_000,
            1.0f64..=10.0,
            0.0f64..=1.0,
        )
            .prop_map(|(initial, extra, multiplier, jitter)| BackoffConfig {
                initial: Duration::from_nanos(initial),
                max: Duration::from_nanos(initial + extra),
                multiplier,
                jitter,
            })
    }

    proptest! {
        #[test]
        fn every_delay_is_within_the_documented_bounds(
            cfg in valid_config(),
            attempts in 0u32..80,
            seed in any::<u64>(),
        ) {
            prop_assert_eq!(cfg.validate(), Ok(()));
            let mut b = Backoff::seeded(cfg.clone(), seed).expect("valid config");
            let mut previous_ceiling = Duration::ZERO;
            for n in 0..attempts {
                let d = b.next_delay();
                // Independent formula, in f64 seconds, with rounding slack.
                let ceiling = (cfg.initial.as_secs_f64() * cfg.multiplier.powi(n as i32))
                    .min(cfg.max.as_secs_f64());
                let floor = (ceiling * (1.0 - cfg.jitter)).max(0.001f64.min(ceiling));
                let slack = 1e-9 * (1.0 + ceiling * 1e-6);
                prop_assert!(d > Duration::ZERO);
                prop_assert!(d <= cfg.max);
                prop_assert!(d.as_secs_f64() <= ceiling + slack, "{:?} > {}", d, ceiling);
                prop_assert!(d.as_secs_f64() + slack >= floor, "{:?} < {}", d, floor);
                let (lo, hi) = cfg.delay_bounds(n);
                prop_assert!(lo <= d && d <= hi);
                prop_assert!(hi >= previous_ceiling, "ceilings never shrink");
                previous_ceiling = hi;
            }
            prop_assert_eq!(b.attempts(), attempts);
        }
    }
}
