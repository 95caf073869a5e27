//! Turning an outcome into a client receipt in the client's outbox, and
//! recording it in the message's history (so `tern trace` can say where a
//! receipt is: queued, or taken by the client and when).

use tern_codec::pdu::SubmitSm;
use tern_codec::tlv::Sar;
use tern_codec::{Body, Pdu};
use tern_router::adapt::{receipt_text, ClientText};
use tern_router::relay::{client_receipt, wanted, ClientReceipt};
use tern_router::{Canonical, FinalState, Reason};
use tern_storage::{
    now_ms, MessageRecord, OutboxItem, Outcome, ReceiptUpdate, RelayedReceipt, StoreError,
};

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

/// An outcome read back from the store. The class is not stored (no
/// client receipt carries it), so it reads as permanent; `None` for a stat
/// or err Tern does not write.
pub fn canonical_of(outcome: &Outcome) -> Option<Canonical> {
    Some(Canonical {
        state: outcome.stat.parse::<FinalState>().ok()?,
        reason: Reason::ALL.into_iter().find(|r| r.err() == outcome.err)?,
        class: tern_router::Class::Permanent,
    })
}

/// Which part of a message Tern split a per-part receipt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartOf {
    /// 0-based, in the order the parts were sent.
    pub index: u32,
    /// How many parts.
    pub total: u32,
}

/// The client receipt for `canonical` and its history entry, or `None`
/// when the client's submit did not ask for a receipt with this outcome
/// (SMPP 3.4 §5.2.17). A per-part receipt carries the SAR TLVs (the
/// message's reference, the part count, the part's number), which say which
/// part it is in standard fields. The id, in receipted_message_id and the
/// text's "id:", is in the form the client was given it (kept on the
/// record, so a reload that changes the account's `id_format` does not
/// change the ids of messages it already answered).
pub fn client_relay(
    record: &MessageRecord,
    canonical: &Canonical,
    vendor_code: Option<&str>,
    part: Option<PartOf>,
) -> Option<(OutboxItem, RelayedReceipt)> {
    let submit = client_submit(record)?;
    if !wanted(submit.registered_delivery, canonical) {
        return None;
    }
    // Clients' data_coding 0 is GSM 7-bit unless the router says otherwise.
    let text = receipt_text(&submit, &ClientText::default());
    // The id the client was given (a submit_multi's, for its destinations),
    // in the form it was given.
    let id = record.id_format.render(record.client_id());
    let now = now_ms();
    let mut receipt = client_receipt(&ClientReceipt {
        tern_id: &id,
        client_source: submit.source.clone(),
        client_destination: submit.destination.clone(),
        submitted_ms: record.accepted_ms as i64,
        done_ms: now as i64,
        text: &text,
        canonical: *canonical,
        vendor_code,
    });
    if let Some(part) = part {
        receipt.tlvs.set_sar(Sar {
            // The reference Tern tied the parts with upstream (dispatch).
            reference: (record.id.counter() & 0xFFFF) as u16,
            total: u8::try_from(part.total).unwrap_or(u8::MAX),
            sequence: u8::try_from(part.index + 1).unwrap_or(u8::MAX),
        });
    }
    let item = OutboxItem {
        // Sequence number 0: the outbox sets the real one when it sends.
        pdu: Pdu::new(0, Body::DeliverSm(receipt)).to_bytes(),
        message: Some(record.id),
        stored_ms: now,
    };
    let entry = RelayedReceipt {
        // The store gives the outbox place when it queues the item.
        outbox_seq: 0,
        part: part.map(|p| p.index),
        stat: canonical.state.stat().to_owned(),
        err: canonical.reason.err(),
        queued_ms: now,
        acked_ms: None,
    };
    Some((item, entry))
}

/// Queues a receipt for an outcome Tern decided itself (a refusal, an
/// expiry, no route) if the client's submit asked for one, and records it
/// in the message's history. The caller owns the message for this step
/// (the store's rule: one task updates a message at a time).
pub async fn queue_receipt(
    node: &Node,
    record: &MessageRecord,
    canonical: &Canonical,
    vendor_code: Option<&str>,
) -> Result<(), StoreError> {
    let Some(relay) = client_relay(record, canonical, vendor_code, None) else {
        return Ok(());
    };
    let update = ReceiptUpdate {
        relay: Some(relay),
        ..ReceiptUpdate::default()
    };
    node.store
        .record_receipt(record.id, update, now_ms())
        .await?;
    node.outbox_news(&record.client);
    Ok(())
}
