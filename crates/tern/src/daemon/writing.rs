//! The attempts this node is writing: the upstream ids a submit_sm_resp
//! gave, from the moment the dispatcher has them until the store has
//! recorded them.
//!
//! Why: a vendor's receipt often comes a few milliseconds after its
//! submit_sm_resp, while the dispatcher's write of that attempt is still
//! out (on Redis with `appendfsync always` every round trip waits for an
//! fsync). Such a receipt finds no message, and was held, then taken back
//! and applied once the attempt's write saw it: about nine round trips
//! instead of one (BENCHMARKS.md, session 12). With this table a receipt
//! first asks whether this node is writing an attempt under its id; if so
//! it waits for that write (bounded) and is applied as if it had come
//! after. Waiting before the lookup, not after one that found nothing,
//! also spares Redis a read: the lookup then finds the record the write
//! kept (`tern_storage`'s `redis_store/cache.rs`) instead of asking the
//! server for an index entry not made yet (an HGET, about one a message
//! on a 4 × 100 bench). A receipt that matches nothing asks again (its
//! submit_sm_resp may have been read after it). A receipt for another
//! node's send, one with no entry, or one whose wait runs out takes the
//! held path as before, so nothing depends on this table for correctness:
//! it only saves the detour.
//!
//! An entry stays for [`RECENT`] after its write returned: a receipt whose
//! lookup went out before the write landed, and came back empty after the
//! write had returned, would otherwise find no entry and be held (about a
//! thousand of 20 000 receipts per `tern bench` run on Redis); it finds
//! the finished entry and looks its message up again instead.
//!
//! Ids are kept in the store's normal form
//! ([`tern_storage::upstream_id::normalise`]) and looked up under every
//! form the store would match a receipt's id by
//! ([`tern_storage::upstream_id::forms`]), so the table matches exactly
//! what the store would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tern_storage::upstream_id;
use tokio::sync::watch;

/// (upstream, upstream id in its normal form).
type Key = (String, String);

/// How long an entry stays after its write returned (see the module's
/// doc): well over a lookup's round trip.
const RECENT: Duration = Duration::from_secs(2);

/// An entry: its write's generation (so a guard marks only its own
/// entry), a receiver that closes when the write returns, and when it
/// returned.
#[derive(Debug)]
struct Entry {
    generation: u64,
    done: watch::Receiver<()>,
    returned: Option<Instant>,
}

/// The attempts being written on this node, and those written in the
/// last [`RECENT`] (see the module's doc).
#[derive(Debug, Default)]
pub struct AttemptWrites {
    out: Mutex<Table>,
    next: AtomicU64,
}

/// The entries, and when those whose write returned were last removed:
/// under one lock, taken once per attempt.
#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Key, Entry>,
    swept: Option<Instant>,
}

/// One attempt's write being out; its ids leave the table when it is
/// dropped, whether the write succeeded, failed or the task was cancelled,
/// and whoever waits on them is woken.
#[derive(Debug)]
pub struct AttemptWrite<'a> {
    table: &'a AttemptWrites,
    keys: Vec<Key>,
    generation: u64,
    /// Dropped after the keys are removed: closes the waiters' receivers.
    _done: watch::Sender<()>,
}

impl AttemptWrites {
    /// Notes that the attempt giving `ids` at `upstream` is about to be
    /// written; keep the guard until the write returns.
    pub(super) fn enter(&self, upstream: &str, ids: &[String]) -> AttemptWrite<'_> {
        let (done, receiver) = watch::channel(());
        let generation = self.next.fetch_add(1, Ordering::Relaxed);
        let keys: Vec<Key> = ids
            .iter()
            .map(|id| (upstream.to_owned(), upstream_id::normalise(id)))
            .collect();
        let now = Instant::now();
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        if out
            .swept
            .is_none_or(|at| now.duration_since(at) >= RECENT / 4)
        {
            out.swept = Some(now);
            out.entries
                .retain(|_, e| e.returned.is_none_or(|at| now.duration_since(at) < RECENT));
        }
        for key in &keys {
            let entry = Entry {
                generation,
                done: receiver.clone(),
                returned: None,
            };
            out.entries.insert(key.clone(), entry);
        }
        drop(out);
        AttemptWrite {
            table: self,
            keys,
            generation,
            _done: done,
        }
    }

    /// If an attempt under `id` at `upstream` is being written here, waits
    /// up to `limit` for its write to return. True when one was and it
    /// returned, or one returned in the last [`RECENT`] (the caller looks
    /// its message up again); false when none was or the wait ran out.
    pub(super) async fn wait(
        &self,
        upstream: &str,
        id: &str,
        any_base: bool,
        limit: Duration,
    ) -> bool {
        let receiver = {
            let out = self.out.lock().unwrap_or_else(|p| p.into_inner());
            upstream_id::forms(id, any_base)
                .into_iter()
                .find_map(|form| {
                    out.entries
                        .get(&(upstream.to_owned(), form))
                        .map(|entry| entry.done.clone())
                })
        };
        let Some(mut receiver) = receiver else {
            return false;
        };
        // Nothing is ever sent: `changed` ends with an error exactly when
        // the guard's sender is dropped.
        matches!(
            tokio::time::timeout(limit, receiver.changed()).await,
            Ok(Err(_))
        )
    }

    /// Entries whose write is still out.
    #[cfg(test)]
    fn len(&self) -> usize {
        let out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        out.entries
            .values()
            .filter(|e| e.returned.is_none())
            .count()
    }

    /// Entries kept, returned or not.
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.out
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .len()
    }
}

impl Drop for AttemptWrite<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut out = self.table.out.lock().unwrap_or_else(|p| p.into_inner());
        for key in &self.keys {
            if let Some(entry) = out.entries.get_mut(key) {
                if entry.generation == self.generation {
                    entry.returned = Some(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn nothing_entered_means_no_wait() {
        let table = AttemptWrites::default();
        let started = std::time::Instant::now();
        assert!(!table.wait("up", "42", false, LONG).await);
        assert!(started.elapsed() < LONG);
    }

    #[tokio::test]
    async fn a_waiter_is_released_when_the_guard_drops_and_the_entry_leaves() {
        let table = AttemptWrites::default();
        let guard = table.enter("up", &["00AB".to_owned(), "cd".to_owned()]);
        assert_eq!(table.len(), 2);
        let started = std::time::Instant::now();
        // The write returns 100 ms later: the waiter waits for it, no more.
        let write = async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            drop(guard);
        };
        let ((), released) = tokio::join!(write, table.wait("up", "ab", false, LONG));
        assert!(released);
        assert!(started.elapsed() >= Duration::from_millis(100), "waited");
        assert!(started.elapsed() < LONG, "released when the guard dropped");
        assert_eq!(table.len(), 0, "no entry left behind");
        // Another upstream's id, or a number in the other base without
        // any_base, is not the same attempt.
        let table = AttemptWrites::default();
        let _guard = table.enter("up", &["171".to_owned()]);
        assert!(!table.wait("other", "171", false, LONG).await);
        assert!(!table.wait("up", "ab", false, LONG).await);
    }

    /// A receipt whose lookup came back empty just after the write
    /// returned (its guard gone) is still told to look again, at once,
    /// instead of being held; the entry leaves once [`RECENT`] has passed,
    /// at a later `enter`.
    #[tokio::test]
    async fn a_write_that_just_returned_still_sends_its_receipt_to_look_again() {
        let table = AttemptWrites::default();
        drop(table.enter("up", &["5".to_owned()]));
        assert_eq!(table.len(), 0, "nothing being written");
        let started = std::time::Instant::now();
        assert!(table.wait("up", "5", false, LONG).await, "look again");
        assert!(started.elapsed() < LONG, "no wait for a returned write");
        assert!(!table.wait("up", "6", false, LONG).await);
        // Long after: swept at the next enter.
        let old = Instant::now() - RECENT - Duration::from_millis(1);
        {
            let mut out = table.out.lock().expect("not poisoned");
            for entry in out.entries.values_mut() {
                entry.returned = Some(old);
            }
            out.swept = Some(old);
        }
        let _other = table.enter("up", &["7".to_owned()]);
        assert_eq!(table.kept(), 1, "the old entry left");
        assert!(!table.wait("up", "5", false, LONG).await);
    }

    #[tokio::test]
    async fn any_base_finds_the_id_in_the_other_base() {
        let table = AttemptWrites::default();
        let guard = table.enter("up", &["171".to_owned()]);
        let write = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            drop(guard);
        };
        let ((), released) = tokio::join!(write, table.wait("up", "AB", true, LONG));
        assert!(released);
    }

    #[tokio::test]
    async fn the_wait_is_bounded_and_an_error_path_drop_still_leaves_no_entry() {
        let table = AttemptWrites::default();
        let guard = table.enter("up", &["7".to_owned()]);
        assert!(
            !table
                .wait("up", "7", false, Duration::from_millis(30))
                .await,
            "ran out while the write was out"
        );
        // A write that fails returns early; its guard goes with it.
        fn failing_write(_guard: AttemptWrite<'_>) -> Result<(), ()> {
            Err(())
        }
        assert!(failing_write(guard).is_err());
        assert_eq!(table.len(), 0);
    }

    #[tokio::test]
    async fn a_newer_write_under_the_same_id_keeps_its_entry_when_an_older_drops() {
        let table = AttemptWrites::default();
        let older = table.enter("up", &["9".to_owned()]);
        let newer = table.enter("up", &["9".to_owned()]);
        drop(older);
        assert_eq!(table.len(), 1);
        drop(newer);
        assert_eq!(table.len(), 0);
    }
}
