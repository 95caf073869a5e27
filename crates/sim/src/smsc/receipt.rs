//! The deliver_sm PDUs the simulator originates: delivery receipts for
//! accepted submits, and MO messages.
//!
//! A receipt goes from the handset back to the submitter, so its source is
//! the submit's destination and its destination the submit's source. Its
//! text is the standard layout written by `tern_codec::receipt`; its TLVs
//! are those Telesign sends (`receipted_message_id`, `message_state`, and
//! `network_error_code` when undelivered).

use std::time::{SystemTime, UNIX_EPOCH};

use tern_codec::pdu::DeliverSm;
use tern_codec::receipt::{Receipt, ReceiptDate, ReceiptError, Stat};
use tern_codec::text::{self, Encoding, Unrepresentable};
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{
    Address, COctetString, DataCoding, EsmClass, FieldError, MessageState, ReceiptRequest,
    ShortMessage, Tlv,
};

use super::behaviour::{chance, ReceiptBehaviour, ReceiptForm};

/// Why a deliver_sm could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A receipt date could not be written (a clock outside 2000–2099).
    #[error("receipt date: {0}")]
    Date(#[from] ReceiptError),
    /// A field does not fit its SMPP limit.
    #[error("{field}: {source}")]
    Field {
        /// Which field.
        field: &'static str,
        /// Why.
        source: FieldError,
    },
    /// The MO text cannot be written in GSM 7-bit nor UCS-2.
    #[error("MO text: {0}")]
    Text(#[from] tern_codec::text::TextError),
}

fn field(field: &'static str) -> impl FnOnce(FieldError) -> BuildError {
    move |source| BuildError::Field { field, source }
}

/// What the simulator remembers of an accepted submit until its receipt.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    /// The id given in the submit response.
    pub(crate) id: String,
    /// The submit's source address: the receipt's destination.
    pub(crate) source: Address<21>,
    /// The submit's destination: the receipt's source.
    pub(crate) destination: Address<21>,
    /// When it was accepted, for `submit date`.
    pub(crate) submitted_ms: i64,
    /// The first characters of the text, for `text:`, when readable.
    pub(crate) preview: String,
    /// Which receipts the submit asked for.
    pub(crate) request: ReceiptRequest,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The first characters of a message's text in printable ASCII, for the
/// receipt's `text:` field: decoded per data_coding where the simulator
/// knows how, `?` for anything else.
pub(crate) fn preview(data_coding: DataCoding, octets: &[u8]) -> String {
    let encoding = match data_coding {
        DataCoding::UCS2 => Encoding::Ucs2,
        DataCoding::LATIN1 => Encoding::Latin1,
        _ => Encoding::Gsm7Unpacked,
    };
    let head = &octets[..octets
        .len()
        .min(2 * tern_codec::receipt::TEXT_PREVIEW_CHARS)];
    text::decode(head, encoding)
        .unwrap_or_default()
        .chars()
        .take(tern_codec::receipt::TEXT_PREVIEW_CHARS)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The receipt for `accepted`, or `None` when the submit did not ask for
/// one with this outcome (`registered_delivery` on failure only, say).
pub(crate) fn receipt(
    accepted: &Accepted,
    behaviour: &ReceiptBehaviour,
) -> Result<Option<DeliverSm>, BuildError> {
    let undelivered = chance(behaviour.undeliverable_fraction);
    let wanted = match accepted.request {
        ReceiptRequest::None => false,
        ReceiptRequest::Always => true,
        ReceiptRequest::OnFailure => undelivered,
        ReceiptRequest::OnSuccess => !undelivered,
    };
    if !wanted {
        return Ok(None);
    }
    let (stat, state, err) = if undelivered {
        (
            Stat::Undeliverable,
            MessageState::UNDELIVERABLE,
            behaviour.undeliverable_err,
        )
    } else {
        (Stat::Delivered, MessageState::DELIVERED, 0)
    };
    let mut pdu = DeliverSm {
        source: accepted.destination.clone(),
        destination: accepted.source.clone(),
        esm_class: EsmClass::DELIVERY_RECEIPT,
        ..DeliverSm::default()
    };
    if matches!(behaviour.form, ReceiptForm::Text | ReceiptForm::Both) {
        let text = Receipt::canonical(
            accepted.id.clone(),
            stat,
            ReceiptDate::from_unix_millis(accepted.submitted_ms, false)?,
            ReceiptDate::from_unix_millis(now_ms(), false)?,
        )
        .with_err(err)
        .with_text(&accepted.preview);
        pdu.short_message = ShortMessage::new(text.to_bytes()).map_err(field("short_message"))?;
    }
    if matches!(behaviour.form, ReceiptForm::Tlvs | ReceiptForm::Both) {
        pdu.tlvs.push(
            Tlv::receipted_message_id(accepted.id.as_bytes())
                .map_err(field("receipted_message_id"))?,
        );
        pdu.tlvs.push(Tlv::MessageState(state));
        if undelivered {
            pdu.tlvs.push(Tlv::NetworkErrorCode(NetworkErrorCode {
                network_type: NetworkErrorCode::GSM,
                error_code: err,
            }));
        }
    }
    Ok(Some(pdu))
}

/// An MO message from `from` to `to`: GSM 7-bit when the text allows,
/// UCS-2 otherwise.
pub(crate) fn mo(from: &str, to: &str, body: &str) -> Result<DeliverSm, BuildError> {
    let (octets, coding) = match text::encode(body, Encoding::Gsm7Unpacked, Unrepresentable::Error)
    {
        Ok(octets) => (octets, DataCoding::DEFAULT),
        Err(_) => (
            text::encode(body, Encoding::Ucs2, Unrepresentable::Error)?,
            DataCoding::UCS2,
        ),
    };
    Ok(DeliverSm {
        source: address(from).map_err(field("source_addr"))?,
        destination: address(to).map_err(field("destination_addr"))?,
        data_coding: coding,
        short_message: ShortMessage::new(octets).map_err(field("short_message"))?,
        ..DeliverSm::default()
    })
}

/// An address: international ISDN when all digits, alphanumeric otherwise.
fn address(addr: &str) -> Result<Address<21>, FieldError> {
    let digits = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_digit());
    let (ton, npi) = if digits {
        (tern_codec::Ton::INTERNATIONAL, tern_codec::Npi::ISDN)
    } else {
        (tern_codec::Ton::ALPHANUMERIC, tern_codec::Npi::UNKNOWN)
    };
    Ok(Address::new(ton, npi, COctetString::try_from(addr)?))
}

/// A data_sm address (65 octets) in a deliver_sm (21): kept when it fits,
/// empty otherwise (the receipt still matches by id).
pub(crate) fn narrow(address: &Address<65>) -> Address<21> {
    Address::new(
        address.ton,
        address.npi,
        COctetString::new(address.addr.as_bytes().to_vec()).unwrap_or_default(),
    )
}
