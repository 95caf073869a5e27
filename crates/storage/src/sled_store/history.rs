//! A message's receipts: what each part's receipt said, every receipt as
//! received and as relayed, and when the client took each relayed one.
//!
//! A receipt changes the record (history, parts, maybe its end) and the
//! client's outbox together, in one atomic write: a crash never leaves a
//! message final without the receipt its client is owed, so a receipt the
//! upstream sends again after a crash finds nothing half done.
//!
//! The client's acknowledgement is written under its own key (`k` id seq)
//! rather than into the record: the outbox takes it while a receipt for
//! another part may be updating the record, and a second read-modify-write
//! of the record there could lose one of the two. [`SledStore::get`] folds
//! the acknowledgements into [`RelayedReceipt::acked_ms`].

use super::{decode, encode, keys, now_ms, Ops, SledStore, StoreError};
use crate::id::TernId;
use crate::record::{MessageRecord, ReceiptUpdate, RelayedReceipt, State};

impl SledStore {
    /// Stores what a receipt changed, atomically: the upstream receipt in
    /// the history, the parts' states, the message's end (out of every
    /// queue, into retention, as [`SledStore::finish`] does; a message
    /// already final keeps its outcome) and the receipt owed to the client,
    /// put in its outbox. Returns the outbox place of that receipt.
    pub async fn record_receipt(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut record = self.require(id)?;
        let mut batch = Ops::default();
        if let Some(received) = update.received {
            record.received.push(received);
        }
        if let Some(parts) = update.parts {
            record.parts = parts;
        }
        if let Some(outcome) = update.outcome {
            if record.state != State::Final {
                batch.remove(keys::in_flight(id));
                batch.remove(keys::timed(keys::READY, record.not_before_ms, id));
                if let Some(expires) = record.expires_ms {
                    batch.remove(keys::timed(keys::EXPIRY, expires, id));
                }
                batch.insert(keys::timed(keys::RETENTION, now_ms, id), []);
                record.state = State::Final;
                record.outcome = Some(outcome);
            }
        }
        let mut queued = None;
        if let Some((item, mut entry)) = update.relay {
            let seq = self.db.generate_id()?;
            batch.insert(
                keys::owned_with(keys::OUTBOX, &record.client, &seq.to_be_bytes()),
                encode(&item)?,
            );
            entry.outbox_seq = seq;
            entry.acked_ms = None;
            record.relayed.push(entry);
            queued = Some(seq);
        }
        record.updated_ms = now_ms;
        batch.insert(keys::message(id), encode(&record)?);
        self.write(batch).await?;
        Ok(queued)
    }

    /// The outbox place of a receipt a client just took, recorded against
    /// its message (items that are about no message record nothing).
    pub(super) fn ack_ops(&self, client: &str, seq: u64, ops: &mut Ops) -> Result<(), StoreError> {
        let key = keys::owned_with(keys::OUTBOX, client, &seq.to_be_bytes());
        let Some(value) = self.db.get(&key)? else {
            return Ok(());
        };
        let item: crate::record::OutboxItem = decode("outbox item", &value)?;
        if let Some(message) = item.message {
            ops.insert(keys::relay_ack(message, seq), now_ms().to_be_bytes());
        }
        Ok(())
    }

    /// Fills in when the client took each relayed receipt, from the
    /// acknowledgement keys. Reads nothing when none is outstanding.
    pub(super) fn merge_acks(&self, record: &mut MessageRecord) -> Result<(), StoreError> {
        if record.relayed.iter().all(|r| r.acked_ms.is_some()) {
            return Ok(());
        }
        let prefix = keys::relay_acks(record.id);
        for entry in self.db.scan_prefix(&prefix) {
            let (key, value) = entry?;
            let (Some(seq), Ok(at)) = (
                key.get(prefix.len()..)
                    .and_then(|s| <[u8; 8]>::try_from(s).ok()),
                <[u8; 8]>::try_from(value.as_ref()),
            ) else {
                continue;
            };
            let seq = u64::from_be_bytes(seq);
            if let Some(relayed) = record
                .relayed
                .iter_mut()
                .find(|r: &&mut RelayedReceipt| r.outbox_seq == seq)
            {
                relayed.acked_ms = Some(u64::from_be_bytes(at));
            }
        }
        Ok(())
    }

    /// Removes a purged message's acknowledgement keys.
    pub(super) fn purge_acks(&self, id: TernId, ops: &mut Ops) -> Result<(), StoreError> {
        for entry in self.db.scan_prefix(keys::relay_acks(id)) {
            let (key, _) = entry?;
            ops.remove(key);
        }
        Ok(())
    }
}
