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

use bytes::Bytes;
use tern_codec::pdu::DeliverSm;
use tern_codec::receipt::{Receipt, ReceiptDate, Stat};
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{
    Address, EsmClass, MessageState, ReceiptRequest, RegisteredDelivery, ShortMessage, Tlv,
};

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

/// The outcome of a message Tern split into parts, once every part is
/// final: the first failure if any part failed, else delivered. `None` while
/// a part is still open.
pub fn combined(parts: &[Option<Canonical>]) -> Option<Canonical> {
    let finals: Vec<Canonical> = parts
        .iter()
        .map(|part| part.filter(|c| c.state.is_final()))
        .collect::<Option<_>>()?;
    finals
        .iter()
        .find(|c| c.state != FinalState::Delivrd)
        .or(finals.first())
        .copied()
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
        (Some(submitted), Some(done)) => Receipt::canonical(input.tern_id, stat, submitted, done)
            .with_err(err)
            .with_text(input.text)
            .to_bytes(),
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
