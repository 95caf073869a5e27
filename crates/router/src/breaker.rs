//! The circuit breaker of one upstream.
//!
//! An upstream that fails binds, times out or answers temporary errors
//! `threshold` times in a row is skipped (open) for a cool-down; then one
//! message probes it (half open): success puts it back (closed), failure
//! opens it again. Time is passed in, so tests need no sleeping.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When to open and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open the circuit.
    pub threshold: u32,
    /// How long it stays open before a probe.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            cool_down: Duration::from_secs(30),
        }
    }
}

/// Where the circuit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Traffic flows; counts failures in a row.
    Closed {
        /// Failures so far.
        failures: u32,
    },
    /// Skipped until then.
    Open {
        /// When a probe is allowed.
        until: Instant,
    },
    /// One probe is out; everything else waits for its outcome.
    HalfOpen,
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<BreakerState>,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(config: BreakerConfig) -> Self {
        Self {
            config,
            state: Mutex::new(BreakerState::Closed { failures: 0 }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        *self.lock()
    }

    /// Whether a message may go to this upstream now. After the cool-down
    /// the first caller gets the probe; others are refused until it ends.
    pub fn allows(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } if now >= until => {
                *state = BreakerState::HalfOpen;
                true
            }
            BreakerState::Open { .. } | BreakerState::HalfOpen => false,
        }
    }

    /// Whether it would allow traffic now, without taking the probe.
    pub fn is_available(&self, now: Instant) -> bool {
        match *self.lock() {
            BreakerState::Closed { .. } => true,
            BreakerState::Open { until } => now >= until,
            BreakerState::HalfOpen => false,
        }
    }

    /// The upstream answered (any answer that is not a temporary failure).
    pub fn record_success(&self) {
        *self.lock() = BreakerState::Closed { failures: 0 };
    }

    /// A bind failure, a timeout or a temporary error.
    pub fn record_failure(&self, now: Instant) {
        let mut state = self.lock();
        *state = match *state {
            BreakerState::Closed { failures } if failures + 1 < self.config.threshold => {
                BreakerState::Closed {
                    failures: failures + 1,
                }
            }
            _ => BreakerState::Open {
                until: now + self.config.cool_down,
            },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_probes_after_the_cool_down_and_closes_on_success() {
        let b = CircuitBreaker::new(BreakerConfig {
            threshold: 3,
            cool_down: Duration::from_secs(10),
        });
        let t0 = Instant::now();
        b.record_failure(t0);
        b.record_failure(t0);
        assert!(b.allows(t0), "two failures: still closed");
        b.record_success();
        b.record_failure(t0);
        b.record_failure(t0);
        assert!(b.allows(t0), "a success resets the count");
        b.record_failure(t0);
        assert!(!b.allows(t0), "open");
        assert!(!b.allows(t0 + Duration::from_secs(9)));
        assert!(b.allows(t0 + Duration::from_secs(10)), "the probe");
        assert!(
            !b.allows(t0 + Duration::from_secs(10)),
            "one probe at a time"
        );
        b.record_success();
        assert_eq!(b.state(), BreakerState::Closed { failures: 0 });
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let b = CircuitBreaker::new(BreakerConfig {
            threshold: 1,
            cool_down: Duration::from_secs(5),
        });
        let t0 = Instant::now();
        b.record_failure(t0);
        let t1 = t0 + Duration::from_secs(5);
        assert!(b.allows(t1));
        b.record_failure(t1);
        assert_eq!(
            b.state(),
            BreakerState::Open {
                until: t1 + Duration::from_secs(5)
            }
        );
        assert!(!b.is_available(t1 + Duration::from_secs(4)));
        assert!(b.is_available(t1 + Duration::from_secs(5)));
    }
}
