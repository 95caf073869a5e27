//! The upstream ids of the attempts this node is writing, so that a
//! receipt for one of them waits for the write instead of asking the
//! server.
//!
//! An upstream often sends its receipt before this node's write of the
//! attempt it answers has returned: the writes of a step gather for a
//! call (`writer.rs`), and under load a call takes longer than an
//! upstream's receipt. The receipt's lookup of its upstream id then
//! missed the kept records (`cache.rs`, filled once the write returns)
//! and asked the server (an HGET, a round trip of its own) for an index
//! entry that was not there yet either: a 4 × 100 bench made about one
//! such HGET a message. A lookup of an id being written here waits for
//! the write (bounded), then finds it among the kept records.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use crate::upstream_id::normalise;

/// (upstream, normalised id) of each attempt being written, with a
/// receiver that learns when its write ends (its sender is dropped).
#[derive(Debug, Default)]
pub(super) struct Writing(Mutex<HashMap<(String, String), watch::Receiver<()>>>);

/// An attempt's write under way: its ids leave [`Writing`] when it drops.
pub(super) struct Guard<'a> {
    writing: &'a Writing,
    keys: Vec<(String, String)>,
    /// Dropped after the ids left: wakes the lookups that wait.
    done: watch::Sender<()>,
}

impl Writing {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), watch::Receiver<()>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Notes that an attempt with `ids` of `upstream` is being written
    /// until the guard drops.
    pub(super) fn begin(&self, upstream: &str, ids: &[String]) -> Guard<'_> {
        let (done, rx) = watch::channel(());
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (upstream.to_owned(), normalise(id)))
            .collect();
        let mut map = self.map();
        for key in &keys {
            map.insert(key.clone(), rx.clone());
        }
        Guard {
            writing: self,
            keys,
            done,
        }
    }

    /// Waits until the write of an attempt with id `form` (normalised) of
    /// `upstream` ends, at most `bound`; whether one was under way.
    pub(super) async fn wait(&self, upstream: &str, form: &str, bound: Duration) -> bool {
        let found = self
            .map()
            .get(&(upstream.to_owned(), form.to_owned()))
            .cloned();
        let Some(mut rx) = found else {
            return false;
        };
        // Nothing is ever sent: `changed` fails once the write's guard
        // (the sender) is gone.
        let _ = tokio::time::timeout(bound, async { while rx.changed().await.is_ok() {} }).await;
        true
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let mut map = self.writing.map();
        for key in &self.keys {
            // A later write of the same id owns the entry now.
            if map
                .get(key)
                .is_some_and(|rx| rx.same_channel(&self.done.subscribe()))
            {
                map.remove(key);
            }
        }
    }
}
