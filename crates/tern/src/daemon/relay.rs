//! Turning an outcome into a client receipt in the client's outbox.

use tern_codec::pdu::SubmitSm;
use tern_codec::{Body, Pdu};
use tern_router::relay::{client_receipt, wanted, ClientReceipt};
use tern_router::Canonical;
use tern_storage::{now_ms, MessageRecord, OutboxItem, Outcome, StoreError};

use super::node::Node;

/// The client's submit_sm, as stored.
pub fn client_submit(record: &MessageRecord) -> Option<SubmitSm> {
    match Pdu::decode(record.pdu.clone()).ok()?.body {
        Body::SubmitSm(sm) => Some(sm),
        _ => None,
    }
}

/// The store's form of an outcome.
pub fn stored_outcome(canonical: &Canonical, vendor_code: Option<String>) -> Outcome {
    Outcome {
        stat: canonical.state.stat().to_owned(),
        err: canonical.reason.err(),
        vendor_code,
    }
}

/// Queues a receipt for the message's client if its submit asked for one.
pub async fn queue_receipt(
    node: &Node,
    record: &MessageRecord,
    canonical: &Canonical,
    vendor_code: Option<&str>,
) -> Result<(), StoreError> {
    let Some(submit) = client_submit(record) else {
        return Ok(());
    };
    if !wanted(submit.registered_delivery, canonical) {
        return Ok(());
    }
    let text = String::from_utf8_lossy(submit.short_message.as_bytes()).into_owned();
    let id = record.id.to_string();
    let receipt = client_receipt(&ClientReceipt {
        tern_id: &id,
        client_source: submit.source.clone(),
        client_destination: submit.destination.clone(),
        submitted_ms: record.accepted_ms as i64,
        done_ms: now_ms() as i64,
        text: &text,
        canonical: *canonical,
        vendor_code,
    });
    let item = OutboxItem {
        // Sequence number 0: the outbox sets the real one when it sends.
        pdu: Pdu::new(0, Body::DeliverSm(receipt)).to_bytes(),
        message: Some(record.id),
        stored_ms: now_ms(),
    };
    node.store.outbox_push(&record.client, &item).await?;
    node.outbox.notify_one();
    Ok(())
}
