//! [`MessageStore`] for [`RedisStore`]: each method is the inherent one.

use std::future::Future;
use std::time::Duration;

use super::RedisStore;
use crate::error::StoreError;
use crate::id::TernId;
use crate::mo::{HeldMo, MoGroup, MoPart};
use crate::record::{Attempt, MessageRecord, OutboxItem, Outcome, ReceiptUpdate, UnmatchedReceipt};
use crate::sled_store::{Accepted, NewMessage, QueuedChange, Replacement};
use crate::store::MessageStore;

impl MessageStore for RedisStore {
    fn accept(
        &self,
        message: NewMessage,
        now_ms: u64,
    ) -> impl Future<Output = Result<Accepted, StoreError>> + Send {
        RedisStore::accept(self, message, now_ms)
    }
    fn accept_multi(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> impl Future<Output = Result<Vec<TernId>, StoreError>> + Send {
        RedisStore::accept_multi(self, messages, now_ms)
    }
    fn get(&self, id: TernId) -> Result<Option<MessageRecord>, StoreError> {
        RedisStore::get(self, id)
    }
    fn claim_ready(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<MessageRecord>, StoreError>> + Send {
        RedisStore::claim_ready(self, now_ms, limit)
    }
    fn record_attempt(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        RedisStore::record_attempt(self, id, attempt, retry_at_ms, now_ms)
    }
    fn finish(
        &self,
        id: TernId,
        outcome: Outcome,
        now_ms: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        RedisStore::finish(self, id, outcome, now_ms)
    }
    fn lookup_upstream(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        RedisStore::lookup_upstream(self, upstream, upstream_id)
    }
    fn lookup_upstream_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        RedisStore::lookup_upstream_any_base(self, upstream, upstream_id)
    }
    fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<TernId>, StoreError> {
        RedisStore::expired(self, now_ms, limit)
    }
    fn outbox_push(
        &self,
        client: &str,
        item: &OutboxItem,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        RedisStore::outbox_push(self, client, item)
    }
    fn outbox_pending(
        &self,
        client: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        RedisStore::outbox_pending(self, client, after, limit)
    }
    fn outbox_ack(
        &self,
        client: &str,
        seq: u64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        RedisStore::outbox_ack(self, client, seq)
    }
    fn outbox_ack_many(
        &self,
        client: &str,
        seqs: &[u64],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        RedisStore::outbox_ack_many(self, client, seqs)
    }
    fn outbox_clients(&self) -> Result<Vec<String>, StoreError> {
        RedisStore::outbox_clients(self)
    }
    fn hold_unmatched(
        &self,
        receipt: &UnmatchedReceipt,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        RedisStore::hold_unmatched(self, receipt)
    }
    fn take_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> impl Future<Output = Result<Option<UnmatchedReceipt>, StoreError>> + Send {
        RedisStore::take_unmatched(self, upstream, upstream_id)
    }
    fn expire_unmatched(
        &self,
        now_ms: u64,
        grace: Duration,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<UnmatchedReceipt>, StoreError>> + Send {
        RedisStore::expire_unmatched(self, now_ms, grace, limit)
    }
    fn purge_finished(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send {
        RedisStore::purge_finished(self, before_ms, limit)
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
        RedisStore::cancel_queued(self, id, accept, outcome, now_ms)
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
        RedisStore::cancel_queued_matching(self, accept, outcome, now_ms, limit)
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
        RedisStore::replace_queued(self, id, change, now_ms)
    }
    fn mo_part_hold(
        &self,
        group: &MoGroup,
        part: &MoPart,
        deadline_ms: u64,
    ) -> impl Future<Output = Result<HeldMo, StoreError>> + Send {
        RedisStore::mo_part_hold(self, group, part, deadline_ms)
    }
    fn mo_group_release<F>(
        &self,
        group: &MoGroup,
        build: F,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send
    where
        F: FnOnce(&HeldMo) -> Vec<OutboxItem> + Send,
    {
        RedisStore::mo_group_release(self, group, build)
    }
    fn mo_groups_due(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldMo>, StoreError> {
        RedisStore::mo_groups_due(self, now_ms, limit)
    }
    fn record_receipt(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send {
        RedisStore::record_receipt(self, id, update, now_ms)
    }
}
