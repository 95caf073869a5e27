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

use super::{decode, keys, now_ms, Ops, SledStore, StoreError};
use crate::backend::ReceiptWrite;
use crate::id::TernId;
use crate::record::{MessageRecord, ReceiptUpdate, RelayedReceipt};
use crate::transition;

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
        let record = self.require(id)?;
        self.receipt_on(record, update, now_ms).await
    }

    /// [`SledStore::record_receipt`] of an update decided from `read`:
    /// nothing is written if the record changed since
    /// ([`ReceiptWrite::Changed`], see `Store::record_decided_receipt`).
    pub async fn record_decided_receipt(
        &self,
        read: &MessageRecord,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> Result<ReceiptWrite, StoreError> {
        let record = self.require(read.id)?;
        if !record.unchanged_since(read) {
            return Ok(ReceiptWrite::Changed);
        }
        Ok(ReceiptWrite::Stored(
            self.receipt_on(record, update, now_ms).await?,
        ))
    }

    async fn receipt_on(
        &self,
        record: MessageRecord,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        let id = record.id;
        let seq = match update.relay {
            Some(_) => Some(self.sequence().await?),
            None => None,
        };
        let queued_at = record.not_before_ms;
        let mut change = transition::receipt(record, update, seq, now_ms);
        let releasing = self.settle_claim(queued_at, &mut change);
        let mut batch = Ops::default();
        Self::stage(&mut batch, change)?;
        self.write_releasing(id, releasing, batch, false).await?;
        Ok(seq)
    }

    /// The outbox place of a receipt a client just took, recorded against
    /// its message (items that are about no message record nothing).
    pub(super) fn ack_ops(&self, client: &str, seq: u64, ops: &mut Ops) -> Result<(), StoreError> {
        let key = keys::owned_with(keys::OUTBOX, client, &seq.to_be_bytes());
        let Some(value) = self.read_key(&key)? else {
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
        for entry in self.view.scan_prefix(&prefix) {
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
        for entry in self.view.scan_prefix(keys::relay_acks(id)) {
            let (key, _) = entry?;
            ops.remove(&key[..]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::State;
    use crate::record::{Attempt, OutboxItem, Outcome, ReceivedReceipt};
    use crate::sled_store::{NewMessage, StoreOptions};
    use crate::transition::RECEIVED_LIMIT;

    /// A store in a fresh directory, removed when the returned guard drops.
    fn store(name: &str) -> (SledStore, tempfile::TempDir) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("tern-history-{name}-"))
            .tempdir()
            .expect("temp dir");
        let (store, _) =
            SledStore::open(dir.path().join("store"), StoreOptions::default()).expect("opens");
        (store, dir)
    }

    async fn submitted(store: &SledStore) -> TernId {
        let accepted = store
            .accept(
                NewMessage {
                    client: "acme".to_owned(),
                    pdu: Bytes::from_static(b"pdu"),
                    receipt_requested: true,
                    not_before_ms: 1,
                    expires_ms: Some(1_000_000),
                    dedup: None,
                    id_format: crate::IdFormat::Hex,
                },
                1,
            )
            .await
            .expect("accepted");
        let claimed = store.claim_ready(2, 1).await.expect("claimed");
        assert_eq!(claimed.len(), 1);
        let attempt = Attempt {
            upstream: "up".to_owned(),
            at_ms: 2,
            status: Some(0),
            upstream_ids: vec!["U1".to_owned()],
            failure: None,
        };
        store
            .record_attempt(accepted.id, attempt, None, 2)
            .await
            .expect("recorded");
        accepted.id
    }

    fn delivered() -> Outcome {
        Outcome {
            stat: "DELIVRD".to_owned(),
            err: 0,
            vendor_code: Some("up stat:DELIVRD err:000".to_owned()),
        }
    }

    fn received(at: u64) -> ReceivedReceipt {
        ReceivedReceipt {
            upstream: "up".to_owned(),
            upstream_id: "U1".to_owned(),
            part: Some(0),
            vendor_stat: Some("DELIVRD".to_owned()),
            vendor_err: Some("000".to_owned()),
            network_error: None,
            canonical: delivered(),
            is_final: true,
            received_ms: at,
            vendor_tlvs: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_receipt_ends_the_message_and_queues_the_clients_in_one_write() {
        let (store, _dir) = store("ends");
        let id = submitted(&store).await;
        let entry = RelayedReceipt {
            outbox_seq: 0,
            part: None,
            stat: "DELIVRD".to_owned(),
            err: 0,
            queued_ms: 5,
            acked_ms: Some(1),
        };
        let item = OutboxItem {
            pdu: Bytes::from_static(b"deliver_sm"),
            message: Some(id),
            stored_ms: 5,
        };
        let update = ReceiptUpdate {
            received: Some(received(5)),
            parts: None,
            outcome: Some(delivered()),
            relay: Some((item.clone(), entry)),
            requeue_at_ms: None,
        };
        let seq = store
            .record_receipt(id, update, 5)
            .await
            .expect("stored")
            .expect("queued");
        let record = store.get(id).expect("reads").expect("there");
        assert_eq!(record.state, State::Final);
        assert_eq!(record.outcome, Some(delivered()));
        assert_eq!(record.received, vec![received(5)]);
        // The store sets the place, and nothing is taken yet.
        assert_eq!(record.relayed[0].outbox_seq, seq);
        assert_eq!(record.relayed[0].acked_ms, None);
        assert_eq!(
            store.outbox_pending("acme", None, 10).expect("outbox"),
            vec![(seq, item)]
        );
        // Out of the queues, into retention: the store still agrees with itself.
        assert!(store.verify().expect("verifies").is_consistent());

        // The client takes it: the time shows in the record.
        store.outbox_ack("acme", seq).await.expect("acked");
        let record = store.get(id).expect("reads").expect("there");
        assert!(record.relayed[0].acked_ms.is_some());
        assert!(store
            .outbox_pending("acme", None, 10)
            .expect("outbox")
            .is_empty());

        // Purged with its message.
        assert_eq!(store.purge_finished(u64::MAX, 10).await.expect("purged"), 1);
        assert_eq!(store.view.scan_prefix(keys::relay_acks(id)).count(), 0);
    }

    #[tokio::test]
    async fn an_upstream_resending_for_ever_does_not_grow_the_record_for_ever() {
        let (store, _dir) = store("limit");
        let id = submitted(&store).await;
        for at in 0..RECEIVED_LIMIT as u64 + 10 {
            let update = ReceiptUpdate {
                received: Some(received(at)),
                ..ReceiptUpdate::default()
            };
            store.record_receipt(id, update, at).await.expect("stored");
        }
        let record = store.get(id).expect("reads").expect("there");
        assert_eq!(record.received.len(), RECEIVED_LIMIT);
        assert_eq!(record.received[0].received_ms, 0, "the first stays");
        assert_eq!(
            record.received.last().map(|r| r.received_ms),
            Some(RECEIVED_LIMIT as u64 + 9),
            "the latest is there"
        );
    }

    #[tokio::test]
    async fn a_receipt_that_resubmits_puts_the_message_back_in_the_queue_with_its_history() {
        let (store, _dir) = store("requeue");
        let id = submitted(&store).await;
        let update = ReceiptUpdate {
            received: Some(received(5)),
            requeue_at_ms: Some(6),
            ..ReceiptUpdate::default()
        };
        store.record_receipt(id, update, 5).await.expect("stored");
        let record = store.get(id).expect("reads").expect("there");
        assert_eq!(record.state, State::Queued);
        assert_eq!(record.not_before_ms, 6);
        assert_eq!(record.received, vec![received(5)]);
        assert!(store.verify().expect("verifies").is_consistent());
        // Not before its time; then claimed, with its first attempt kept.
        assert!(store.claim_ready(5, 10).await.expect("claims").is_empty());
        let claimed = store.claim_ready(6, 10).await.expect("claims");
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].attempts.len(), 1);
        // A final message stays final.
        store.finish(id, delivered(), 7).await.expect("finished");
        let update = ReceiptUpdate {
            requeue_at_ms: Some(8),
            ..ReceiptUpdate::default()
        };
        store.record_receipt(id, update, 8).await.expect("stored");
        let record = store.get(id).expect("reads").expect("there");
        assert_eq!(record.state, State::Final);
        assert!(store.claim_ready(9, 10).await.expect("claims").is_empty());
    }
}
