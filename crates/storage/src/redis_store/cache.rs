//! The records of the messages this node is sending, kept in memory from
//! the claim until they leave its hands (final, or back in the ready
//! queue), with the upstream ids that find them.
//!
//! The node that claimed a message is the one that records its attempt
//! and, holding the bind its upstream answers on, usually its receipt. So
//! the record it would read back is the one it wrote last: kept here, a
//! step needs no read, and finding a message by an upstream id this node
//! indexed needs none either. Each write built on a kept record is still
//! fenced: it applies only if the stored record is exactly the one kept
//! (its octets), and when another node changed it meanwhile the script
//! returns the record as it is and the step is computed again on it. What
//! a kept record can miss is only another node's change made after this
//! node's last write, as a read racing that change could miss it too.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::error::StoreError;
use crate::id::TernId;
use crate::record::{MessageRecord, State};
use crate::upstream_id::normalise;

/// Records kept at most (about 1 kB each with their octets): 20 MB at
/// worst, under the daemon's memory bound with 10 000 messages in flight.
const LIMIT: usize = 20_000;

#[derive(Debug, Default)]
struct Inner {
    /// A record's stored octets (the fence of the next write) and the
    /// record.
    records: HashMap<TernId, (Vec<u8>, MessageRecord)>,
    /// (upstream, normalised id) → message, for the kept records.
    ids: HashMap<(String, String), TernId>,
    /// Ids in the order kept, for the bound (may name ids gone since).
    order: VecDeque<TernId>,
}

/// See the module's documentation.
#[derive(Debug, Default)]
pub(super) struct Cache(Mutex<Inner>);

impl Cache {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `record` (stored as `raw`) while this node is sending it (in
    /// flight or submitted); forgets it otherwise.
    pub(super) fn keep(&self, record: MessageRecord, raw: Vec<u8>) {
        if !matches!(record.state, State::InFlight | State::Submitted) {
            self.forget(record.id);
            return;
        }
        let mut inner = self.inner();
        let id = record.id;
        for attempt in &record.attempts {
            for upstream_id in &attempt.upstream_ids {
                inner
                    .ids
                    .insert((attempt.upstream.clone(), normalise(upstream_id)), id);
            }
        }
        if inner.records.insert(id, (raw, record)).is_none() {
            inner.order.push_back(id);
        }
        while inner.records.len() > LIMIT {
            let Some(old) = inner.order.pop_front() else {
                break;
            };
            remove(&mut inner, old);
        }
    }

    /// Refreshes a kept record after a read (a record not kept stays so).
    pub(super) fn refresh(&self, record: &MessageRecord, raw: &[u8]) {
        let mut inner = self.inner();
        if let Some(kept) = inner.records.get_mut(&record.id) {
            *kept = (raw.to_vec(), record.clone());
        }
    }

    /// Forgets `id`'s record and its upstream ids.
    pub(super) fn forget(&self, id: TernId) {
        let mut inner = self.inner();
        remove(&mut inner, id);
        // The order keeps the id until it reaches the front or is
        // compacted: forgetting stays O(1).
        if inner.order.len() > 2 * LIMIT {
            let Inner { records, order, .. } = &mut *inner;
            order.retain(|kept| records.contains_key(kept));
        }
    }

    /// The kept record of `id` and its octets.
    pub(super) fn get(&self, id: TernId) -> Option<(Vec<u8>, MessageRecord)> {
        self.inner().records.get(&id).cloned()
    }

    /// The kept message `form` (normalised) of `upstream` finds.
    pub(super) fn lookup(&self, upstream: &str, form: &str) -> Option<TernId> {
        self.inner()
            .ids
            .get(&(upstream.to_owned(), form.to_owned()))
            .copied()
    }
}

/// Removes `id`'s record and the upstream ids that point to it; whether
/// it was kept.
fn remove(inner: &mut Inner, id: TernId) -> bool {
    let Some((_, record)) = inner.records.remove(&id) else {
        return false;
    };
    for attempt in &record.attempts {
        for upstream_id in &attempt.upstream_ids {
            let key = (attempt.upstream.clone(), normalise(upstream_id));
            if inner.ids.get(&key) == Some(&id) {
                inner.ids.remove(&key);
            }
        }
    }
    true
}

/// A record read back from its octets (kept records are decoded once).
pub(super) fn decoded(raw: Vec<u8>) -> Result<(Vec<u8>, MessageRecord), StoreError> {
    let record = super::stored::decode(&raw)?;
    Ok((raw, record))
}
