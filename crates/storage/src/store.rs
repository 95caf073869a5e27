//! The store as the rest of Tern sees it: a trait, so the router and the
//! daemon do not depend on sled, and a Redis backend (several nodes as one
//! broker) can stand beside it.
//!
//! Every write returns once it counts as done for the store's durability
//! (on disk in `durable` mode); reads see every write that has returned.
//! One claimer at a time calls [`MessageStore::claim_ready`]; each message
//! is updated by one task at a time (the one that claimed it). A message
//! still waiting to be sent has no such task: cancel and replace change it
//! only under the claim's own exclusion, so it is either claimed or
//! changed, never both.

use std::future::Future;
use std::time::Duration;

use crate::error::StoreError;
use crate::id::TernId;
use crate::mo::{HeldMo, MoGroup, MoPart};
use crate::record::{Attempt, MessageRecord, OutboxItem, Outcome, ReceiptUpdate, UnmatchedReceipt};
use crate::sled_store::{Accepted, NewMessage, QueuedChange, Replacement, SledStore};

/// Everything Tern keeps, behind one interface.
pub trait MessageStore: Send + Sync + 'static {
    /// Accepts a message (see [`SledStore::accept`]).
    fn accept(
        &self,
        message: NewMessage,
        now_ms: u64,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send;
    /// Accepts a submit_multi's destinations in one write (see
    /// [`SledStore::accept_multi`]).
    fn accept_multi(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<TernId>, StoreError>> + Send;
    /// The record of `id`.
    fn get(&self, id: TernId) -> Result<Option<MessageRecord>, StoreError>;
    /// Claims due messages for sending.
    fn claim_ready(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send;
    /// Records an attempt; indexes the upstream ids it was given.
    fn record_attempt(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Ends a message.
    fn finish(
        &self,
        id: TernId,
        outcome: Outcome,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The message an upstream id belongs to (case and leading zeros aside).
    fn lookup_upstream(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError>;
    /// The same, also across hex and decimal (a vendor setting).
    fn lookup_upstream_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError>;
    /// Messages whose validity ended.
    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<TernId>, StoreError>;
    /// Stores something owed to a client.
    fn outbox_push(
        &self,
        client: &str,
        item: &OutboxItem,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// What a client is owed (after place `after`, when given), oldest
    /// first.
    fn outbox_pending(
        &self,
        client: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxItem)>, StoreError>;
    /// Removes what a client acknowledged.
    fn outbox_ack(
        &self,
        client: &str,
        seq: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Removes many things a client acknowledged, in one write.
    fn outbox_ack_many(
        &self,
        client: &str,
        seqs: &[u64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Clients with something owed.
    fn outbox_clients(&self) -> Result<Vec<String>, StoreError>;
    /// Holds a receipt that matched nothing yet, after any others held for
    /// the same upstream id.
    fn hold_unmatched(
        &self,
        receipt: &UnmatchedReceipt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Takes the oldest receipt held for an upstream id.
    fn take_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> impl Future<Output = Result<Option<UnmatchedReceipt>, StoreError>> + Send;
    /// Removes held receipts past their grace period.
    fn expire_unmatched(
        &self,
        now_ms: u64,
        grace: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UnmatchedReceipt>, StoreError>> + Send;
    /// Removes finished messages past retention.
    fn purge_finished(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
    /// Ends a message still waiting to be sent (see
    /// [`SledStore::cancel_queued`]).
    fn cancel_queued<F>(
        &self,
        id: TernId,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
    ) -> impl Future<Output = Result<QueuedChange, StoreError>> + Send
    where
        F: FnOnce(&MessageRecord) -> bool + Send;
    /// Ends every waiting message a check accepts (see
    /// [`SledStore::cancel_queued_matching`]).
    fn cancel_queued_matching<F>(
        &self,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send
    where
        F: FnMut(&MessageRecord) -> bool + Send;
    /// Changes a message still waiting to be sent (see
    /// [`SledStore::replace_queued`]).
    fn replace_queued<F>(
        &self,
        id: TernId,
        change: F,
        now_ms: u64,
    ) -> impl Future<Output = Result<QueuedChange, StoreError>> + Send
    where
        F: FnOnce(&MessageRecord) -> Option<Replacement> + Send;
    /// Holds one part of a long MO message (see [`SledStore::mo_part_hold`]).
    fn mo_part_hold(
        &self,
        group: &MoGroup,
        part: &MoPart,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<HeldMo, StoreError>> + Send;
    /// Releases a held MO group into its client's outbox (see
    /// [`SledStore::mo_group_release`]).
    fn mo_group_release<F>(
        &self,
        group: &MoGroup,
        build: F,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send
    where
        F: FnOnce(&HeldMo) -> Vec<OutboxItem> + Send;
    /// Held MO groups past their deadline.
    fn mo_groups_due(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldMo>, StoreError>;
    /// Stores what a receipt changed, with the client's receipt, in one
    /// write (see [`SledStore::record_receipt`]).
    fn record_receipt(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;
}

impl MessageStore for SledStore {
    fn accept(
        &self,
        message: NewMessage,
        now_ms: u64,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send {
        SledStore::accept(self, message, now_ms)
    }
    fn accept_multi(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<TernId>, StoreError>> + Send {
        SledStore::accept_multi(self, messages, now_ms)
    }
    fn get(&self, id: TernId) -> Result<Option<MessageRecord>, StoreError> {
        SledStore::get(self, id)
    }
    fn claim_ready(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send {
        SledStore::claim_ready(self, now_ms, limit)
    }
    fn record_attempt(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::record_attempt(self, id, attempt, retry_at_ms, now_ms)
    }
    fn finish(
        &self,
        id: TernId,
        outcome: Outcome,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::finish(self, id, outcome, now_ms)
    }
    fn lookup_upstream(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        SledStore::lookup_upstream(self, upstream, upstream_id)
    }
    fn lookup_upstream_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        SledStore::lookup_upstream_any_base(self, upstream, upstream_id)
    }
    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<TernId>, StoreError> {
        SledStore::expired(self, now_ms, limit)
    }
    fn outbox_push(
        &self,
        client: &str,
        item: &OutboxItem,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        SledStore::outbox_push(self, client, item)
    }
    fn outbox_pending(
        &self,
        client: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        SledStore::outbox_pending(self, client, after, limit)
    }
    fn outbox_ack(
        &self,
        client: &str,
        seq: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::outbox_ack(self, client, seq)
    }
    fn outbox_ack_many(
        &self,
        client: &str,
        seqs: &[u64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::outbox_ack_many(self, client, seqs)
    }
    fn outbox_clients(&self) -> Result<Vec<String>, StoreError> {
        SledStore::outbox_clients(self)
    }
    fn hold_unmatched(
        &self,
        receipt: &UnmatchedReceipt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        SledStore::hold_unmatched(self, receipt)
    }
    fn take_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> impl Future<Output = Result<Option<UnmatchedReceipt>, StoreError>> + Send {
        SledStore::take_unmatched(self, upstream, upstream_id)
    }
    fn expire_unmatched(
        &self,
        now_ms: u64,
        grace: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UnmatchedReceipt>, StoreError>> + Send {
        SledStore::expire_unmatched(self, now_ms, grace, limit)
    }
    fn purge_finished(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        SledStore::purge_finished(self, before_ms, limit)
    }
    fn cancel_queued<F>(
        &self,
        id: TernId,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
    ) -> impl Future<Output = Result<QueuedChange, StoreError>> + Send
    where
        F: FnOnce(&MessageRecord) -> bool + Send,
    {
        SledStore::cancel_queued(self, id, accept, outcome, now_ms)
    }
    fn cancel_queued_matching<F>(
        &self,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send
    where
        F: FnMut(&MessageRecord) -> bool + Send,
    {
        SledStore::cancel_queued_matching(self, accept, outcome, now_ms, limit)
    }
    fn replace_queued<F>(
        &self,
        id: TernId,
        change: F,
        now_ms: u64,
    ) -> impl Future<Output = Result<QueuedChange, StoreError>> + Send
    where
        F: FnOnce(&MessageRecord) -> Option<Replacement> + Send,
    {
        SledStore::replace_queued(self, id, change, now_ms)
    }
    fn mo_part_hold(
        &self,
        group: &MoGroup,
        part: &MoPart,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<HeldMo, StoreError>> + Send {
        SledStore::mo_part_hold(self, group, part, deadline_ms)
    }
    fn mo_group_release<F>(
        &self,
        group: &MoGroup,
        build: F,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send
    where
        F: FnOnce(&HeldMo) -> Vec<OutboxItem> + Send,
    {
        SledStore::mo_group_release(self, group, build)
    }
    fn mo_groups_due(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldMo>, StoreError> {
        SledStore::mo_groups_due(self, now_ms, limit)
    }
    fn record_receipt(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        SledStore::record_receipt(self, id, update, now_ms)
    }
}
