//! The receipts Tern sends its clients.
//!
//! A client sees Tern as its SMSC, so its receipts carry Tern's message id
//! and Tern's one vocabulary: the standard SMPP 3.4 text (Appendix B) with
//! the canonical `stat` and three-digit `err`, and the TLVs
//! `receipted_message_id`, `message_state` and, for GSM MAP reasons,
//! `network_error_code` (type 3). The vendor's own code travels in
//! [`VENDOR_CODE_TLV`] so a client (or an operator reading a capture) can
//! still see what the upstream said. A 3.3 client gets the text alone: the
//! session's codec drops TLVs for it.
//!
//! [`client_relay`] builds it for a stored message, with the entry its
//! history keeps; [`client_receipt`] builds the deliver_sm itself.

use bytes::Bytes;
use tern_codec::pdu::{DeliverSm, SubmitSm};
use tern_codec::receipt::{Receipt, ReceiptDate, Stat};
use tern_codec::tlv::{NetworkErrorCode, Sar};
use tern_codec::{
    Address, Body, EsmClass, MessageState, Pdu, ReceiptRequest, RegisteredDelivery, ShortMessage,
    Tlv,
};
use tern_storage::{MessageRecord, OutboxItem, RelayedReceipt};

use crate::adapt::{receipt_text, ClientText};
use crate::canonical::{Canonical, FinalState, Reason};

/// Tag of the TLV carrying the upstream's own code ("ovh stat:UNDELIV
/// err:053"), in the range SMPP 3.4 §5.3.2 leaves to SMSC vendors.
pub const VENDOR_CODE_TLV: u16 = 0x1520;

/// What a client receipt is built from.
#[derive(Debug, Clone)]
pub struct ClientReceipt<'a> {
    /// The id Tern gave the client.
    pub tern_id: &'a str,
    /// The client's original source: the receipt's destination.
    pub client_source: Address<21>,
    /// The client's original destination: the receipt's source.
    pub client_destination: Address<21>,
    /// When Tern accepted the message (ms since the Unix epoch).
    pub submitted_ms: i64,
    /// When it reached this state.
    pub done_ms: i64,
    /// The start of the original text (20 characters are kept).
    pub text: &'a str,
    /// The outcome.
    pub canonical: Canonical,
    /// What the upstream said, for [`VENDOR_CODE_TLV`].
    pub vendor_code: Option<&'a str>,
}

/// Whether a client whose message asked `registered_delivery` gets a receipt
/// for this outcome (SMPP 3.4 §5.2.17).
pub fn wanted(registered_delivery: RegisteredDelivery, canonical: &Canonical) -> bool {
    if !canonical.state.is_final() {
        return registered_delivery.intermediate();
    }
    let delivered = canonical.state == FinalState::Delivrd;
    match registered_delivery.receipt() {
        ReceiptRequest::None => false,
        ReceiptRequest::Always => true,
        ReceiptRequest::OnFailure => !delivered,
        ReceiptRequest::OnSuccess => delivered,
    }
}

fn millis_date(ms: i64) -> Option<ReceiptDate> {
    ReceiptDate::from_unix_millis(ms, false).ok()
}

/// Builds the deliver_sm for a client receipt.
pub fn client_receipt(input: &ClientReceipt<'_>) -> DeliverSm {
    let state = input.canonical.state;
    let stat = Stat::parse(state.stat());
    let err = input.canonical.reason.err();
    let text = match (millis_date(input.submitted_ms), millis_date(input.done_ms)) {
        (Some(submitted), Some(done)) => {
            Receipt::canonical_bytes(input.tern_id, &stat, submitted, done, err, input.text)
        }
        // Dates outside the two-digit years: the id, state and error still go.
        _ => Bytes::from(format!(
            "id:{} stat:{} err:{err:03}",
            input.tern_id,
            state.stat()
        )),
    };
    let mut sm = DeliverSm {
        source: input.client_destination.clone(),
        destination: input.client_source.clone(),
        esm_class: if state.is_final() {
            EsmClass::DELIVERY_RECEIPT
        } else {
            EsmClass::INTERMEDIATE_NOTIFICATION
        },
        short_message: ShortMessage::new(text.slice(..text.len().min(ShortMessage::MAX)))
            .unwrap_or_default(),
        ..DeliverSm::default()
    };
    if let Ok(id) = Tlv::receipted_message_id(input.tern_id.as_bytes()) {
        sm.tlvs.push(id);
    }
    sm.tlvs
        .push(Tlv::MessageState(MessageState(state.message_state())));
    if input.canonical.reason.is_gsm_map() {
        sm.tlvs.push(Tlv::NetworkErrorCode(NetworkErrorCode {
            network_type: NetworkErrorCode::GSM,
            error_code: err,
        }));
    }
    if let Some(vendor) = input.vendor_code {
        sm.tlvs.push(Tlv::Other {
            tag: VENDOR_CODE_TLV,
            value: Bytes::copy_from_slice(vendor.as_bytes()),
        });
    }
    sm
}

/// The outcome of a message Tern ended itself (validity expired in its
/// queue, no route after every retry), for its receipt.
pub fn ended_by_tern(reason: Reason) -> Canonical {
    Canonical {
        state: match reason {
            Reason::Expired => FinalState::Expired,
            _ => FinalState::Undeliv,
        },
        reason,
        class: crate::canonical::Class::Permanent,
    }
}

/// The client's submit_sm, as stored.
pub fn client_submit(record: &MessageRecord) -> Option<SubmitSm> {
    match Pdu::decode(record.pdu.clone()).ok()?.body {
        Body::SubmitSm(sm) => Some(sm),
        _ => None,
    }
}

/// Which part of a message Tern split a per-part receipt reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartOf {
    /// 0-based, in the order the parts were sent.
    pub index: u32,
    /// How many parts.
    pub total: u32,
}

/// The client receipt for `canonical`, encoded for the client's outbox,
/// and its entry in the message's history; `None` when the client's submit
/// did not ask for a receipt with this outcome (SMPP 3.4 §5.2.17). A
/// per-part receipt carries the SAR TLVs (the message's reference, the part
/// count, the part's number), which say which part it is in standard
/// fields. `vendor_tlvs` (the vendor's own receipt TLVs, for a client that
/// asked for them) go last. The id, in receipted_message_id and the text's
/// "id:", is in the form the client was given it (kept on the record, so a
/// reload that changes the account's `id_format` does not change the ids
/// of messages it already answered). `now` is the receipt's done date.
pub fn client_relay(
    record: &MessageRecord,
    canonical: &Canonical,
    vendor_code: Option<&str>,
    part: Option<PartOf>,
    vendor_tlvs: &[(u16, Vec<u8>)],
    now: u64,
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
    for (tag, value) in vendor_tlvs {
        receipt.tlvs.push(Tlv::Other {
            tag: *tag,
            value: Bytes::copy_from_slice(value),
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
