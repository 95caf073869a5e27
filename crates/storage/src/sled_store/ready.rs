//! The ready queues, one per client, and the claim that takes from them
//! in turn: fair between clients, oldest first within each.
//!
//! A message's place is `keys::ready` (`q` client NUL not_before id). The
//! claim shares its limit out between the clients with messages due, so a
//! client's new message never waits behind another client's backlog (after
//! a long outage, say). Stores written before kept one queue over all
//! clients (`keys::LEGACY_READY`); open moves its entries
//! ([`migrate_legacy_ready`]).

use std::collections::BTreeMap;
use std::ops::Bound;

use super::claims::Claim;
use super::{keys, MessageRecord, Ops, SledStore, State, StoreError};
use crate::memtable::{prefix_end, Scan, View};

/// The claim's place in the ready queues, one per client.
#[derive(Debug, Default)]
pub(super) struct ClaimCursors {
    /// Each client queue that may hold keys (`keys::owner_of` of its keys)
    /// → where the next scan of it starts: after the last key a claim
    /// removed there (every key it visits is removed), or lower if an
    /// insert came below that point since. Without it each claim stepped
    /// over every ready key removed since the last checkpoint that sled
    /// still holds, which a backlog made quadratic. A queue found empty
    /// leaves the map; an insert brings it back (`View::take_lowest`).
    pub(super) queues: BTreeMap<Vec<u8>, Bound<Vec<u8>>>,
    /// The queue served first by the last claim: the next claim starts
    /// with the one after it, so with a limit smaller than the number of
    /// clients every client still gets its turn.
    pub(super) last_first: Option<Vec<u8>>,
}

impl ClaimCursors {
    /// Takes in the lowest keys inserted since the last claim: a queue
    /// resumes at an insert below its place, and a queue new to the claim
    /// starts at its insert.
    fn absorb(&mut self, inserted: BTreeMap<Vec<u8>, Vec<u8>>) {
        for (queue, lowest) in inserted {
            match self.queues.get_mut(&queue) {
                Some(Bound::Included(at) | Bound::Excluded(at)) if lowest > *at => {}
                Some(from) => *from = Bound::Included(lowest),
                None => {
                    self.queues.insert(queue, Bound::Included(lowest));
                }
            }
        }
    }

    /// The queues in this claim's order: from the one after the last
    /// claim's first, round the ring.
    fn in_turn(&self) -> Vec<(Vec<u8>, Bound<Vec<u8>>)> {
        let mut order: Vec<_> = self.queues.clone().into_iter().collect();
        if let Some(last) = &self.last_first {
            let after = order.partition_point(|(queue, _)| queue <= last);
            order.rotate_left(after);
        }
        order
    }
}

/// One client's queue during a claim.
struct Turn<'a> {
    queue: Vec<u8>,
    scan: Scan<'a>,
    /// The last key of this queue due at the claim's time.
    until: Vec<u8>,
    /// The last key stepped past for good (taken, claimed already, or
    /// naming no message waiting there).
    last: Option<Vec<u8>>,
    /// The first key of a claim being released (see `Claim::Releasing`):
    /// the next claim starts there again, whatever this one took after it.
    hold: Option<Vec<u8>>,
    /// Nothing due is left (a key not yet due was seen, or the end).
    done: bool,
    /// The queue has no key left at all.
    empty: bool,
}

/// Legacy ready entries moved per checkpoint at open: a store written
/// before the per-client queues with a million messages waiting moves
/// them in bounded memory.
pub(super) const LEGACY_CHUNK: usize = 50_000;

/// The writes that move up to `limit` entries of the single ready queue of
/// older stores (`keys::LEGACY_READY`) into their clients' queues, or
/// `None` when none is left. Replayed or repeated after a crash, it moves
/// what is left: each entry is removed and its client's entry inserted in
/// one group, and an entry whose message is gone is just removed.
pub(super) fn migrate_legacy_ready(view: &View, limit: usize) -> Result<Option<Ops>, StoreError> {
    let mut ops = Ops::default();
    let mut moved = 0;
    for entry in view.scan_prefix([keys::LEGACY_READY]).take(limit) {
        let (key, _) = entry?;
        ops.remove(&key[..]);
        moved += 1;
        let (Some(id), Some(at)) = (keys::trailing_id(&key), keys::time_of(&key)) else {
            continue;
        };
        if let Some(bytes) = view.get(&keys::message(id))? {
            let record = MessageRecord::from_stored(&bytes)?;
            ops.insert(keys::ready(&record.client, at, id), []);
        }
    }
    Ok((moved > 0).then_some(ops))
}

/// Every client's ready queue that holds a key (its prefix up to the
/// NUL), one seek per client: the claim's starting set at open.
pub(super) fn ready_queues(view: &View) -> Result<BTreeMap<Vec<u8>, Bound<Vec<u8>>>, StoreError> {
    let mut queues = BTreeMap::new();
    let mut from = Bound::Included(vec![keys::READY]);
    loop {
        let Some(entry) = view.range(from, prefix_end(&[keys::READY])).next() else {
            return Ok(queues);
        };
        let (key, _) = entry?;
        let Some(owner) = keys::owner_of(&key) else {
            return Ok(queues);
        };
        from = prefix_end(owner);
        queues.insert(owner.to_vec(), Bound::Included(owner.to_vec()));
    }
}

impl SledStore {
    /// Claims up to `limit` messages that are due at `now`, marking them in
    /// flight, in memory only: nothing is written (`claims.rs`), and each
    /// message's next write removes its ready entry and releases the
    /// claim. One claimer at a time (the router's dispatcher). A message
    /// cancelled or replaced at the same moment is either claimed as it
    /// was before the change or not at all (see `queue_lock`).
    ///
    /// Fair between clients, oldest first within each: every client has
    /// its own ready queue, and the claim shares `limit` out between the
    /// queues with messages due (rounds of an equal share each, what one
    /// leaves unused going to the others), starting one queue further
    /// round the ring each time. So after an outage a client's new message
    /// goes out within a claim or two, however long another client's
    /// backlog.
    pub async fn claim_ready(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let _queue = self.queue_lock.lock().await;
        let order = {
            let mut cursors = self.claim_from.lock().unwrap_or_else(|p| p.into_inner());
            cursors.absorb(self.view.take_lowest());
            cursors.in_turn()
        };
        let mut turns: Vec<Turn<'_>> = order
            .into_iter()
            .map(|(queue, from)| Turn {
                // A queue gives at most `limit`: a first page of that many
                // (a claim of one, the common case under load, reads one
                // entry, not a page of 32 of a long queue).
                scan: self.view.range_paged(from, prefix_end(&queue), limit),
                until: keys::ready_until(&queue, now_ms),
                queue,
                last: None,
                hold: None,
                done: false,
                empty: false,
            })
            .collect();
        let mut claimed = Vec::new();
        let mut first = None;
        loop {
            let open = turns.iter().filter(|t| !t.done).count();
            let left = limit.saturating_sub(claimed.len());
            if open == 0 || left == 0 {
                break;
            }
            let share = left.div_ceil(open);
            for turn in turns.iter_mut().filter(|t| !t.done) {
                let before = claimed.len();
                while claimed.len() - before < share.min(left) && claimed.len() < limit {
                    let Some(key) = self.next_due(turn)? else {
                        break;
                    };
                    if let Some(record) = self.claimable(turn, key, now_ms)? {
                        claimed.push(record);
                    }
                }
                if claimed.len() > before && first.is_none() {
                    first = Some(turn.queue.clone());
                }
                if claimed.len() - before < share.min(left) {
                    turn.done = true;
                }
            }
        }
        // Every key up to each queue's `last` is claimed, being sent, or
        // named no message waiting there: nothing to claim there again
        // (a releasing write's new key comes back through `take_lowest`).
        // On an error above, the places stay at this claim's start.
        let mut cursors = self.claim_from.lock().unwrap_or_else(|p| p.into_inner());
        for turn in turns {
            if let Some(hold) = turn.hold {
                cursors.queues.insert(turn.queue, Bound::Included(hold));
            } else if turn.empty {
                cursors.queues.remove(&turn.queue);
            } else if let Some(last) = turn.last {
                cursors.queues.insert(turn.queue, Bound::Excluded(last));
            }
        }
        if first.is_some() {
            cursors.last_first = first;
        }
        Ok(claimed)
    }

    /// The message a due ready `key` names, claimed (in memory: nothing
    /// is written, see `claims.rs`), or `None` when there is nothing to
    /// claim there: a message claimed already, or an entry the scan saw
    /// before a write removed it (its record no longer queued at that
    /// time).
    fn claimable(
        &self,
        turn: &mut Turn<'_>,
        key: Vec<u8>,
        now_ms: u64,
    ) -> Result<Option<MessageRecord>, StoreError> {
        let Some(id) = keys::trailing_id(&key) else {
            turn.last = Some(key);
            return Ok(None);
        };
        // The claim first, then the record: a release removes the claim
        // only after its write is applied, so an entry seen unclaimed
        // here is either still there or already gone from the record.
        match self.claims.of(id) {
            Some(Claim::Releasing) => {
                turn.hold.get_or_insert(key);
                return Ok(None);
            }
            Some(Claim::Held) => {
                turn.last = Some(key);
                return Ok(None);
            }
            None => {}
        }
        let at = keys::ready_time(&key);
        turn.last = Some(key);
        let Some(mut record) = self.get(id)? else {
            return Ok(None);
        };
        if record.state != State::Queued || Some(record.not_before_ms) != at {
            return Ok(None);
        }
        self.claims.hold(id);
        record.state = State::InFlight;
        record.updated_ms = now_ms;
        Ok(Some(record))
    }

    /// The next key of a client's queue due by the claim's time, or `None`
    /// (and the turn is over) at the first key not yet due or the queue's
    /// end.
    fn next_due(&self, turn: &mut Turn<'_>) -> Result<Option<Vec<u8>>, StoreError> {
        if turn.done {
            return Ok(None);
        }
        match turn.scan.next().transpose()? {
            Some((key, _)) if key.as_ref() <= turn.until.as_slice() => Ok(Some(key.to_vec())),
            Some(_) => {
                turn.done = true;
                Ok(None)
            }
            None => {
                turn.done = true;
                turn.empty = true;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::sled_store::{NewMessage, StoreOptions};

    fn message(client: &str, at: u64) -> NewMessage {
        NewMessage {
            client: client.to_owned(),
            pdu: Bytes::from_static(b"pdu"),
            receipt_requested: false,
            not_before_ms: at,
            expires_ms: None,
            dedup: None,
            id_format: crate::IdFormat::Hex,
        }
    }

    /// A claim of one message from a long queue copies one entry out of
    /// the view, not a first page of 32 (under load the dispatcher claims
    /// one or two at a time, from a queue of hundreds).
    #[tokio::test]
    async fn a_claim_of_one_reads_one_entry_of_a_long_queue() {
        let temp = tempfile::Builder::new()
            .prefix("tern-ready-page-")
            .tempdir()
            .expect("temp dir");
        let (store, _) =
            SledStore::open(temp.path().join("store"), StoreOptions::default()).expect("opens");
        for _ in 0..100 {
            store
                .accept(message("alpha", 1), 1)
                .await
                .expect("accepted");
        }
        for claims in 1..=3 {
            let before = store.view.paged.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(store.claim_ready(2, 1).await.expect("claim").len(), 1);
            let read = store.view.paged.load(std::sync::atomic::Ordering::Relaxed) - before;
            assert_eq!(read, 1, "claim {claims} read {read} entries");
        }
    }

    /// A claim's scan reads keys a page at a time, so it may hold the
    /// ready entry of a message whose claim was released since (its
    /// attempt removed the entry, maybe put one back for a retry at
    /// another time): that entry is not claimed again.
    #[tokio::test]
    async fn a_ready_entry_read_before_its_message_moved_on_is_not_claimed() {
        let temp = tempfile::Builder::new()
            .prefix("tern-ready-stale-")
            .tempdir()
            .expect("temp dir");
        let (store, _) =
            SledStore::open(temp.path().join("store"), StoreOptions::default()).expect("opens");
        let sent = store.accept(message("alpha", 1), 1).await.expect("a").id;
        let retried = store.accept(message("alpha", 1), 1).await.expect("b").id;
        assert_eq!(store.claim_ready(2, 10).await.expect("claim").len(), 2);
        let seen = [
            keys::ready("alpha", 1, sent),
            keys::ready("alpha", 1, retried),
        ];
        let attempt = |ids: Vec<String>, failure: Option<&str>| crate::Attempt {
            upstream: "up".to_owned(),
            at_ms: 2,
            status: Some(0),
            upstream_ids: ids,
            failure: failure.map(str::to_owned),
        };
        store
            .record_attempt(sent, attempt(vec!["U1".to_owned()], None), None, 2)
            .await
            .expect("submitted");
        store
            .record_attempt(retried, attempt(Vec::new(), Some("busy")), Some(5), 2)
            .await
            .expect("retry");
        let queue = keys::owner_of(&seen[0]).expect("a queue").to_vec();
        let mut turn = Turn {
            scan: store
                .view
                .range(Bound::Included(queue.clone()), prefix_end(&queue)),
            until: keys::ready_until(&queue, 10),
            queue,
            last: None,
            hold: None,
            done: false,
            empty: false,
        };
        for key in seen {
            let claimed = store.claimable(&mut turn, key, 10).expect("reads");
            assert!(claimed.is_none(), "claimed again: {claimed:?}");
        }
        // The retry's own entry is claimed when due.
        let again = store.claim_ready(10, 10).await.expect("claim");
        assert_eq!(
            again.iter().map(|r| r.id).collect::<Vec<_>>(),
            vec![retried]
        );
    }

    /// A store written before the per-client queues (its waiting messages
    /// in the one `r` queue) opens with them in their clients' queues, and
    /// they drain fairly and oldest first.
    #[tokio::test]
    async fn a_store_with_the_single_ready_queue_opens_with_every_message_in_its_client_queue() {
        let temp = tempfile::Builder::new()
            .prefix("tern-ready-legacy-")
            .tempdir()
            .expect("temp dir");
        let path = temp.path().join("store");
        let mut ids = Vec::new();
        {
            let (store, _) = SledStore::open(&path, StoreOptions::default()).expect("opens");
            let mut legacy = Ops::default();
            for (n, client) in ["alpha", "alpha", "alpha", "bravo"].into_iter().enumerate() {
                let at = n as u64;
                let accepted = store.accept(message(client, at), at).await.expect("accept");
                // Back to the layout of older stores.
                legacy.remove(keys::ready(client, at, accepted.id));
                legacy.insert(keys::timed(keys::LEGACY_READY, at, accepted.id), []);
                ids.push((client, accepted.id));
            }
            store.write(legacy).await.expect("write");
            assert_eq!(store.ready_len(), 0, "nothing in the new queues");
        }
        let (store, _) = SledStore::open(&path, StoreOptions::default()).expect("reopens");
        assert_eq!(store.ready_len(), 4);
        assert!(store
            .sled_keys(&[keys::LEGACY_READY])
            .expect("sled")
            .is_empty());
        let first = store.claim_ready(100, 2).await.expect("claim");
        let first: Vec<_> = first.iter().map(|r| r.id).collect();
        assert_eq!(first, vec![ids[0].1, ids[3].1], "one of each client");
        let rest = store.claim_ready(100, 10).await.expect("claim");
        let rest: Vec<_> = rest.iter().map(|r| r.id).collect();
        assert_eq!(rest, vec![ids[1].1, ids[2].1], "alpha's oldest first");
        assert!(store.verify().expect("verify").is_consistent());
    }
}
