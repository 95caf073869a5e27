//! The store a node runs on, chosen by its configuration: sled on one
//! machine, or Redis shared by several nodes. [`Store`] is the one
//! interface the daemon, the admin API and the tools use; each method is
//! one `match` onto the backend's own method, and each backend only
//! persists and indexes.
//!
//! Every method that touches stored data is `async`, reads included, and
//! none blocks a runtime thread on the network: Redis's reads are async
//! round trips on the same multiplexed connections as its writes, each
//! bounded in time (a stuck server is an error, not a hung task). sled's
//! reads are plain calls made inside the async method, on the calling
//! runtime thread: a point read or a scan bounded by its `limit`, served
//! from sled's page cache (and from any in-memory layer kept over sled) in
//! microseconds, like any other in-memory lookup a task makes between
//! awaits. A read that misses the cache reads a page from the local disk,
//! as a page fault would; handing every read to a blocking thread would
//! cost more (a thread hand-off each) than those rare misses do. The
//! unbounded sled reads (`verify`, `size_on_disk`) serve tests, tools and
//! the admin listener, which runs them on tokio's blocking pool.
//!
//! Every write returns once it counts as done for the store's durability
//! (on disk in `durable` mode); reads see every write that has returned.
//! One claimer at a time calls [`Store::claim_ready`]; each message is
//! updated by one task at a time (the one that claimed it). A message
//! still waiting to be sent has no such task: cancel and replace change it
//! only under the claim's own exclusion, so it is either claimed or
//! changed, never both.

use std::time::Duration;

use crate::error::StoreError;
use crate::id::TernId;
use crate::mo::{HeldMo, MoGroup, MoPart};
use crate::record::{Attempt, MessageRecord, OutboxItem, Outcome, ReceiptUpdate, UnmatchedReceipt};
use crate::redis_store::coord::Coordinator;
use crate::redis_store::RedisStore;
use crate::sled_store::{
    Accepted, NewMessage, QueueDepths, QueuedChange, Replacement, SledStore, Verification,
};

/// Where receipts for one upstream id may be held: a receipt's write
/// checks that none is ([`Store::record_decided_receipt`]).
#[derive(Debug, Clone, Copy)]
pub struct HeldUnder<'a> {
    /// The upstream that sent the receipt.
    pub upstream: &'a str,
    /// Its id for the message, as it sent it.
    pub upstream_id: &'a str,
    /// Whether the upstream's ids are matched across hex and decimal.
    pub any_base: bool,
}

/// What became of [`Store::record_decided_receipt`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptWrite {
    /// Stored; the client's outbox place when it is owed a receipt.
    Stored(Option<u64>),
    /// Nothing written: receipts for the same upstream id are held from
    /// before, and go first.
    HeldFirst,
    /// Nothing written: another node wrote the record after the caller
    /// read it. The caller reads it again and decides again.
    Changed,
}

/// A node's store: one of the two backends.
// One per process, behind the node's `Arc`: the variants' sizes do not
// matter, and boxing one would only add an indirection to every call.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Store {
    /// sled, in a directory of this machine (the default).
    Sled(SledStore),
    /// Redis (one server or a cluster), shared with other nodes.
    Redis(RedisStore),
}

/// The same expression on whichever backend this is. Redis's side is
/// boxed: see [`redis!`].
macro_rules! each {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            Store::Sled($s) => $body,
            Store::Redis($s) => redis!($body),
        }
    };
}

/// The same read on whichever backend: sled's in-memory read as it is,
/// Redis's awaited (boxed: see [`redis!`]).
macro_rules! read {
    ($store:expr, $s:ident => $body:expr) => {
        match $store {
            Store::Sled($s) => $body,
            Store::Redis($s) => redis!($body.await),
        }
    };
}

/// A Redis call awaited in a box of its own. Why: a `Store` method's
/// future holds whichever backend's future it awaits, so unboxed it is as
/// large as Redis's (a round trip's state: `Store::get` took 1 064 octets
/// for a read that on sled is a lookup in memory). The daemon's futures
/// hold those in turn, and each is moved into place when it starts:
/// receipts' `handle` came to 5.9 KB and a dispatcher's `send` to 7 KB,
/// copied on every message (`memmove` under tokio's `Core::poll` was 3.8 %
/// of the runtime workers' samples at 4 × 100 on sled). One allocation
/// per Redis call costs nothing beside its round trip.
macro_rules! redis {
    ($call:expr) => {
        Box::pin(async move { $call }).await
    };
}

impl Store {
    /// Which backend, for logs and `tern status`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sled(_) => "sled",
            Store::Redis(_) => "redis",
        }
    }

    /// The most messages one claim should take. A claim on Redis costs
    /// two round trips whatever its size, each waiting for the server's
    /// fsync (`appendfsync always`), so the dispatcher's rate there is
    /// about this many messages per two fsyncs: 64 held it to about a
    /// quarter of sled's. sled's claim is a read in memory, and smaller
    /// claims start the first sends sooner.
    pub fn claim_size(&self) -> usize {
        match self {
            Store::Sled(_) => 64,
            Store::Redis(_) => 256,
        }
    }

    /// The free send slots the dispatcher waits for before it claims: on
    /// Redis half a claim, since a claim taking the odd slot a send just
    /// freed costs as much as a full one (two round trips for one
    /// message); on sled one, a claim there being a read in memory.
    pub fn claim_room(&self) -> usize {
        match self {
            Store::Sled(_) => 1,
            Store::Redis(_) => 128,
        }
    }

    /// Round trips to Redis so far by step of a message's life (the
    /// `tern_redis_round_trips_total` metric); none on sled. Not async:
    /// counters in memory.
    pub fn redis_round_trips(&self) -> Vec<(&'static str, u64)> {
        match self {
            Store::Sled(_) => Vec::new(),
            Store::Redis(s) => s
                .round_trips()
                .into_iter()
                .map(|(step, n)| (step.name(), n))
                .collect(),
        }
    }

    /// Coordination with the other nodes, on a shared (Redis) store.
    pub fn coordinator(&self) -> Option<Coordinator> {
        match self {
            Store::Sled(_) => None,
            Store::Redis(s) => Some(s.coordinator()),
        }
    }

    /// Puts back in the ready queue the messages of nodes that left a
    /// shared store (see [`RedisStore::requeue_orphans`]); none on sled.
    pub async fn requeue_orphans(&self) -> Result<usize, StoreError> {
        match self {
            Store::Sled(_) => Ok(0),
            Store::Redis(s) => redis!(s.requeue_orphans().await),
        }
    }

    /// Whether the store refuses writes for want of space (see
    /// [`SledStore::is_full`]). Redis reports a server at its `maxmemory`
    /// per write ([`StoreError::Full`]) and keeps no such state: false.
    /// Not async: a flag in memory, no stored data.
    pub fn is_full(&self) -> bool {
        match self {
            Store::Sled(s) => s.is_full(),
            Store::Redis(_) => false,
        }
    }

    /// While full, one small write to see whether space returned (see
    /// [`SledStore::probe_space`]); nothing on Redis.
    pub async fn probe_space(&self) -> Result<(), StoreError> {
        match self {
            Store::Sled(s) => s.probe_space().await,
            Store::Redis(_) => Ok(()),
        }
    }

    /// Accepts a message: durable when this returns.
    pub async fn accept(&self, message: NewMessage, now_ms: u64) -> Result<Accepted, StoreError> {
        each!(self, s => s.accept(message, now_ms).await)
    }

    /// Accepts a submit_multi's destinations, all in one write (see
    /// [`SledStore::accept_multi`]).
    pub async fn accept_multi(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> Result<Vec<TernId>, StoreError> {
        each!(self, s => s.accept_multi(messages, now_ms).await)
    }

    /// The record of `id`.
    pub async fn get(&self, id: TernId) -> Result<Option<MessageRecord>, StoreError> {
        read!(self, s => s.get(id))
    }

    /// Claims due messages for sending.
    pub async fn claim_ready(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        each!(self, s => s.claim_ready(now_ms, limit).await)
    }

    /// Claims due messages that `keep` accepts, leaving the others in the
    /// ready queue for another node. sled has one node, which takes all.
    pub async fn claim_ready_where<F>(
        &self,
        now_ms: u64,
        limit: usize,
        keep: F,
    ) -> Result<Vec<MessageRecord>, StoreError>
    where
        F: Fn(&MessageRecord) -> bool + Send,
    {
        match self {
            Store::Sled(s) => s.claim_ready(now_ms, limit).await,
            Store::Redis(s) => redis!(s.claim_ready_where(now_ms, limit, keep).await),
        }
    }

    /// Records an attempt and indexes the upstream ids it was given.
    pub async fn record_attempt(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        each!(self, s => s.record_attempt(id, attempt, retry_at_ms, now_ms).await)
    }

    /// [`Store::record_attempt`], and whether a receipt is held under one
    /// of the attempt's upstream ids (`any_base`: in either base), which
    /// the caller then applies: it came before this submit_sm_resp was
    /// recorded. On one Redis server the look is part of the attempt's
    /// script, so a send costs no read of held receipts.
    pub async fn record_attempt_seeing_held(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
        any_base: bool,
    ) -> Result<bool, StoreError> {
        match self {
            Store::Sled(s) => {
                let (upstream, ids) = (attempt.upstream.clone(), attempt.upstream_ids.clone());
                s.record_attempt(id, attempt, retry_at_ms, now_ms).await?;
                for upstream_id in &ids {
                    if s.peek_unmatched(&upstream, upstream_id, any_base)?
                        .is_some()
                    {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Store::Redis(s) => {
                redis!(
                    s.record_attempt_seeing_held(id, attempt, retry_at_ms, now_ms, any_base)
                        .await
                )
            }
        }
    }

    /// Ends a message.
    pub async fn finish(
        &self,
        id: TernId,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        each!(self, s => s.finish(id, outcome, now_ms).await)
    }

    /// The message an upstream id belongs to.
    pub async fn lookup_upstream(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        read!(self, s => s.lookup_upstream(upstream, upstream_id))
    }

    /// The same, also across hex and decimal.
    pub async fn lookup_upstream_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        read!(self, s => s.lookup_upstream_any_base(upstream, upstream_id))
    }

    /// Messages whose validity ended while they waited.
    pub async fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<TernId>, StoreError> {
        read!(self, s => s.expired(now_ms, limit))
    }

    /// Queues an item for a client.
    pub async fn outbox_push(&self, client: &str, item: &OutboxItem) -> Result<u64, StoreError> {
        each!(self, s => s.outbox_push(client, item).await)
    }

    /// Up to `limit` items a client is owed (after place `after`, when
    /// given), oldest first.
    pub async fn outbox_pending(
        &self,
        client: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        read!(self, s => s.outbox_pending(client, after, limit))
    }

    /// Removes an item the client acknowledged.
    pub async fn outbox_ack(&self, client: &str, seq: u64) -> Result<(), StoreError> {
        each!(self, s => s.outbox_ack(client, seq).await)
    }

    /// Removes many items a client acknowledged, in one write.
    pub async fn outbox_ack_many(&self, client: &str, seqs: &[u64]) -> Result<(), StoreError> {
        each!(self, s => s.outbox_ack_many(client, seqs).await)
    }

    /// Clients with something in their outbox.
    pub async fn outbox_clients(&self) -> Result<Vec<String>, StoreError> {
        read!(self, s => s.outbox_clients())
    }

    /// Holds a receipt that matched nothing yet, after any others held for
    /// the same upstream id.
    pub async fn hold_unmatched(&self, receipt: &UnmatchedReceipt) -> Result<(), StoreError> {
        each!(self, s => s.hold_unmatched(receipt).await)
    }

    /// Takes the oldest receipt held for this upstream id.
    pub async fn take_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        each!(self, s => s.take_unmatched(upstream, upstream_id).await)
    }

    /// The same, also across bases.
    pub async fn take_unmatched_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        each!(self, s => s.take_unmatched_any_base(upstream, upstream_id).await)
    }

    /// Whether any receipt may be held (false only when none is): a
    /// caller looking for held receipts skips its look-ups when it is
    /// false. Always true on Redis, shared with other nodes.
    pub fn may_hold_unmatched(&self) -> bool {
        match self {
            Store::Sled(s) => s.may_hold_unmatched(),
            Store::Redis(_) => true,
        }
    }

    /// The oldest receipt held for this upstream id, left in place.
    pub async fn peek_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
        any_base: bool,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        read!(self, s => s.peek_unmatched(upstream, upstream_id, any_base))
    }

    /// Up to `limit` held receipts, left in place.
    pub async fn held_receipts(&self, limit: usize) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        read!(self, s => s.held_receipts(limit))
    }

    /// Removes and returns held receipts older than `grace`.
    pub async fn expire_unmatched(
        &self,
        now_ms: u64,
        grace: Duration,
        limit: usize,
    ) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        each!(self, s => s.expire_unmatched(now_ms, grace, limit).await)
    }

    /// Removes finished messages older than `before_ms`.
    pub async fn purge_finished(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        each!(self, s => s.purge_finished(before_ms, limit).await)
    }

    /// Cancels a message still waiting, if `accept` agrees.
    pub async fn cancel_queued<F>(
        &self,
        id: TernId,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<QueuedChange, StoreError>
    where
        F: FnOnce(&MessageRecord) -> bool + Send,
    {
        each!(self, s => s.cancel_queued(id, accept, outcome, now_ms).await)
    }

    /// Cancels waiting messages that `accept` picks.
    pub async fn cancel_queued_matching<F>(
        &self,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>
    where
        F: FnMut(&MessageRecord) -> bool + Send,
    {
        each!(self, s => s.cancel_queued_matching(accept, outcome, now_ms, limit).await)
    }

    /// Replaces a message still waiting.
    pub async fn replace_queued<F>(
        &self,
        id: TernId,
        change: F,
        now_ms: u64,
    ) -> Result<QueuedChange, StoreError>
    where
        F: FnOnce(&MessageRecord) -> Option<Replacement> + Send,
    {
        each!(self, s => s.replace_queued(id, change, now_ms).await)
    }

    /// Holds one part of a concatenated MO.
    pub async fn mo_part_hold(
        &self,
        group: &MoGroup,
        part: &MoPart,
        deadline_ms: u64,
    ) -> Result<HeldMo, StoreError> {
        each!(self, s => s.mo_part_hold(group, part, deadline_ms).await)
    }

    /// Releases a held MO group into its client's outbox, once.
    pub async fn mo_group_release<F>(&self, group: &MoGroup, build: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&HeldMo) -> Vec<OutboxItem> + Send,
    {
        each!(self, s => s.mo_group_release(group, build).await)
    }

    /// Held MO groups whose wait is over.
    pub async fn mo_groups_due(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<HeldMo>, StoreError> {
        read!(self, s => s.mo_groups_due(now_ms, limit))
    }

    /// Stores what a receipt changed, with the client's receipt.
    pub async fn record_receipt(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        each!(self, s => s.record_receipt(id, update, now_ms).await)
    }

    /// Stores a receipt's update that the caller decided from the record
    /// it read (which parts are final, whether the client is owed a
    /// receipt), holding only this node's lock on the message: on a shared
    /// store another node may have written the record since, and then
    /// nothing is written ([`ReceiptWrite::Changed`]: read and decide
    /// again), so no node's decision overwrites another's without a lease
    /// round trip per receipt. On sled this node is the only writer, but
    /// its tasks that do not take the message's lock (the dispatcher's)
    /// may have written it.
    ///
    /// With `held`, nothing is written either while receipts for the same
    /// upstream id are held from before ([`ReceiptWrite::HeldFirst`]: the
    /// caller applies those first). On one Redis server the look at the
    /// held receipts is part of the receipt's script: a receipt costs one
    /// round trip, not a read and a write.
    pub async fn record_decided_receipt(
        &self,
        read: &MessageRecord,
        update: ReceiptUpdate,
        now_ms: u64,
        held: Option<HeldUnder<'_>>,
    ) -> Result<ReceiptWrite, StoreError> {
        match self {
            Store::Sled(s) => {
                if let Some(held) = held {
                    if s.peek_unmatched(held.upstream, held.upstream_id, held.any_base)?
                        .is_some()
                    {
                        return Ok(ReceiptWrite::HeldFirst);
                    }
                }
                s.record_decided_receipt(read, update, now_ms).await
            }
            Store::Redis(s) => redis!(s.record_decided_receipt(read, update, now_ms, held).await),
        }
    }

    /// How many entries each queue holds.
    pub async fn queue_depths(&self) -> Result<QueueDepths, StoreError> {
        match self {
            Store::Sled(s) => Ok(s.queue_depths()),
            Store::Redis(s) => redis!(s.queue_depths().await),
        }
    }

    /// Every record checked against the queues (for tests and tools).
    pub async fn verify(&self) -> Result<Verification, StoreError> {
        read!(self, s => s.verify())
    }

    /// Octets on this machine's disk; none for Redis (the server's own
    /// metrics tell).
    pub async fn size_on_disk(&self) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Sled(s) => s.size_on_disk().map(Some),
            Store::Redis(_) => Ok(None),
        }
    }

    /// Makes every write durable (sled in `fast` mode); Redis answers each
    /// write under its durability policy, so there is nothing to flush.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            Store::Sled(s) => s.flush(),
            Store::Redis(_) => Ok(()),
        }
    }
}
