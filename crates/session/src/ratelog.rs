//! Warnings that cannot flood the log.
//!
//! A warning written once per message or per PDU (a store that refuses
//! writes, a client sending malformed PDUs, receipts that match nothing, a
//! throttled upstream) repeats as fast as traffic comes: a full disk once
//! wrote 54 671 lines in 18 s, hiding everything else and filling the disk
//! that holds the log. So such a warning goes through [`warn_limited!`]:
//! the first of a kind (its key, the message text) is logged with its
//! fields, the repeats within [`INTERVAL`] are only counted, and one line
//! says how many there were ("… and 54 670 more in the last 10 s"), at the
//! first repeat after the interval or at the next [`flush`], whichever
//! comes first. The daemon calls [`flush`] every second, so a flood that
//! stops is still summed up.
//!
//! The key is the message text, so each call site is counted apart and the
//! set of keys is bounded by the code, not by the traffic.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How often a repeated warning is summed up at most.
pub const INTERVAL: Duration = Duration::from_secs(10);

/// What to do with one occurrence of a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Log this occurrence with its fields.
    pub log: bool,
    /// First log a summary: this many occurrences of the key were left out
    /// since the last line about it.
    pub summary: Option<u64>,
}

#[derive(Debug)]
struct Entry {
    /// When the last line about the key was written.
    since: Instant,
    /// Occurrences left out since.
    suppressed: u64,
}

/// The counting, with the clock injected so tests need not wait.
#[derive(Debug)]
pub struct RateLog<C> {
    interval: Duration,
    clock: C,
    entries: Mutex<HashMap<&'static str, Entry>>,
}

impl<C: Fn() -> Instant> RateLog<C> {
    /// One line per key per `interval` at most, reading time from `clock`.
    pub fn new(interval: Duration, clock: C) -> Self {
        Self {
            interval,
            clock,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one occurrence of `key` and says what to write.
    pub fn admit(&self, key: &'static str) -> Decision {
        let now = (self.clock)();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get_mut(key) {
            Some(entry) if now.duration_since(entry.since) < self.interval => {
                entry.suppressed += 1;
                Decision {
                    log: false,
                    summary: None,
                }
            }
            Some(entry) => {
                let summary = (entry.suppressed > 0).then_some(entry.suppressed);
                *entry = Entry {
                    since: now,
                    suppressed: 0,
                };
                Decision { log: true, summary }
            }
            None => {
                entries.insert(
                    key,
                    Entry {
                        since: now,
                        suppressed: 0,
                    },
                );
                Decision {
                    log: true,
                    summary: None,
                }
            }
        }
    }

    /// The keys whose interval has passed with occurrences left out, with
    /// their counts; each is reset, so it is reported once. Keys quiet
    /// for a whole interval are forgotten.
    pub fn due(&self) -> Vec<(&'static str, u64)> {
        let now = (self.clock)();
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut due = Vec::new();
        entries.retain(|key, entry| {
            if now.duration_since(entry.since) < self.interval {
                return true;
            }
            if entry.suppressed == 0 {
                return false;
            }
            due.push((*key, entry.suppressed));
            *entry = Entry {
                since: now,
                suppressed: 0,
            };
            true
        });
        due
    }

    /// The interval, for the summary's wording.
    pub fn interval(&self) -> Duration {
        self.interval
    }
}

type Global = RateLog<fn() -> Instant>;

fn global() -> &'static Global {
    static GLOBAL: OnceLock<Global> = OnceLock::new();
    GLOBAL.get_or_init(|| RateLog::new(INTERVAL, Instant::now as fn() -> Instant))
}

/// Counts one occurrence of the warning `key` in the process-wide log
/// limiter; writes the summary line when one is due. True when the caller
/// should log this occurrence. Use [`warn_limited!`] rather than this.
pub fn admit(key: &'static str) -> bool {
    let global = global();
    let decision = global.admit(key);
    if let Some(more) = decision.summary {
        summarise(key, more, global.interval());
    }
    decision.log
}

/// Writes the summaries that are due: the daemon calls it every second,
/// so the count of a flood that stopped is not left unsaid.
pub fn flush() {
    let global = global();
    for (key, more) in global.due() {
        summarise(key, more, global.interval());
    }
}

fn summarise(key: &'static str, more: u64, interval: Duration) {
    tracing::warn!(
        key,
        more,
        "{key} … and {more} more in the last {} s",
        interval.as_secs()
    );
}

/// `tracing::warn!` for warnings that repeat per message or per PDU: the
/// first is logged with its fields, repeats within [`INTERVAL`] are
/// counted and summed up in one line (see the module). The message text
/// comes first and is the key; the fields follow as in `tracing::warn!`:
///
/// ```
/// let err = "disk full";
/// tern_session::warn_limited!("store refused a message", %err, client = "acme");
/// ```
#[macro_export]
macro_rules! warn_limited {
    ($msg:literal $(, $($field:tt)+)?) => {
        if $crate::ratelog::admit($msg) {
            $crate::ratelog::__tracing::warn!($($($field)+ ,)? $msg);
        }
    };
}

#[doc(hidden)]
pub use tracing as __tracing;

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn clocked() -> (Arc<Mutex<Instant>>, RateLog<impl Fn() -> Instant>) {
        let now = Arc::new(Mutex::new(Instant::now()));
        let read = now.clone();
        let log = RateLog::new(Duration::from_secs(10), move || {
            *read.lock().expect("clock")
        });
        (now, log)
    }

    fn advance(now: &Mutex<Instant>, by: Duration) {
        let mut now = now.lock().expect("clock");
        *now += by;
    }

    const LOG: Decision = Decision {
        log: true,
        summary: None,
    };
    const QUIET: Decision = Decision {
        log: false,
        summary: None,
    };

    #[test]
    fn once_then_a_summary_with_the_count_after_the_interval() {
        let (now, log) = clocked();
        assert_eq!(log.admit("refused"), LOG);
        for _ in 0..54_670 {
            assert_eq!(log.admit("refused"), QUIET);
        }
        advance(&now, Duration::from_secs(9));
        assert_eq!(log.admit("refused"), QUIET);
        assert!(log.due().is_empty(), "not before the interval");
        advance(&now, Duration::from_secs(1));
        assert_eq!(
            log.admit("refused"),
            Decision {
                log: true,
                summary: Some(54_671),
            }
        );
        // A new window: counted from zero.
        advance(&now, Duration::from_secs(1));
        assert_eq!(log.admit("refused"), QUIET);
        advance(&now, Duration::from_secs(10));
        assert_eq!(log.due(), vec![("refused", 1)]);
        assert!(log.due().is_empty(), "reported once");
    }

    #[test]
    fn keys_are_counted_apart_and_quiet_ones_forgotten() {
        let (now, log) = clocked();
        assert_eq!(log.admit("a"), LOG);
        assert_eq!(log.admit("b"), LOG);
        assert_eq!(log.admit("a"), QUIET);
        advance(&now, Duration::from_secs(10));
        assert_eq!(log.due(), vec![("a", 1)]);
        advance(&now, Duration::from_secs(10));
        assert!(log.due().is_empty());
        // Both forgotten after a quiet interval: logged again at once.
        assert_eq!(log.admit("a"), LOG);
        assert_eq!(log.admit("b"), LOG);
    }
}
