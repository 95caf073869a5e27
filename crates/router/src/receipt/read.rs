//! Reading an upstream's delivery receipt into Tern's vocabulary.
//!
//! Which message: the `receipted_message_id` TLV, else the text's `id`.
//! Which state: the `message_state` TLV, else the text's `stat` (with the
//! vendor's own spellings from its profile). TLVs win where both are given.
//! Why: the vendor's `err` table in its profile (the code read in the
//! profile's radix), else, for a vendor whose `err` is a GSM MAP code
//! (`receipts.err_is_gsm_map`), that code, else a GSM `network_error_code`
//! (the MAP code names the reason), else what the state alone implies.
//!
//! A table entry may name the state its code implies (Mensatek's
//! "delivered" codes), but never makes a final receipt intermediate: a
//! vendor that writes `stat:UNDELIV` with a "pending" code has still ended
//! the message, and Tern must not wait for a receipt that will not come.

use bytes::Bytes;
use tern_codec::pdu::DeliverSm;
use tern_codec::receipt::{ErrRadix, Receipt};
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{Body, Pdu};

use crate::canonical::{Canonical, Class, FinalState, Reason, Scope};
use crate::profile::{Profile, Radix};

/// A receipt, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamReceipt {
    /// The upstream's id of the message it is about.
    pub upstream_id: String,
    /// What it means.
    pub canonical: Canonical,
    /// The `stat` as the vendor wrote it, if in the text.
    pub vendor_stat: Option<String>,
    /// The `err` as the vendor wrote it, if in the text.
    pub vendor_err: Option<String>,
    /// The `network_error_code` TLV, if any.
    pub network_error: Option<NetworkErrorCode>,
    /// Whether the vendor's code says the failure concerns this vendor
    /// only (its profile entry's `scope`): another upstream may deliver.
    pub scope: Scope,
    /// Vendor-specific TLVs as received: tags 0x1400–0x3FFF (OVH's
    /// outgoing id) and those the profile lists (Telesign's MCC, MNC and
    /// price). Kept with the message for `tern trace`, relayed to clients
    /// that ask for them; Tern's own vendor-code TLV is not among them.
    pub vendor_tlvs: Vec<(u16, Vec<u8>)>,
}

impl UpstreamReceipt {
    /// Final receipts end the message; intermediate ones (ENROUTE,
    /// ACCEPTD) only update it.
    pub fn is_final(&self) -> bool {
        self.canonical.state.is_final()
    }

    /// Whether it says the vendor throttled the message (OVH err 55): the
    /// upstream is slowed as for a throttled submit.
    pub fn throttles(&self) -> bool {
        self.canonical.reason == Reason::Throttled
    }
}

/// A deliver_sm that cannot be read as a receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptReadError {
    /// Not marked as a receipt and no receipt TLV: an MO message.
    #[error("not a receipt (esm_class 0x{0:02X}, no receipted_message_id)")]
    NotAReceipt(u8),
    /// No message id in the TLVs or the text.
    #[error("receipt without a message id")]
    NoId,
    /// No state in the TLVs or the text.
    #[error("receipt without a state (message_state or stat)")]
    NoState,
}

/// What a GSM MAP error code (3GPP TS 29.002, §17.6 "MAP error codes")
/// means, in `network_error_code` or in the `err` of a vendor whose codes
/// are MAP codes. Codes without a reason of their own take the nearest one.
fn map_reason(code: u32) -> (Reason, Class) {
    match code {
        // unknownSubscriber; unidentifiedSubscriber.
        1 | 5 => (Reason::UnknownSubscriber, Class::Permanent),
        // absentSubscriberSM; absentSubscriber; messageWaitingListFull
        // (the network already holds messages for an absent handset).
        6 | 27 | 33 => (Reason::AbsentSubscriber, Class::Temporary),
        // illegalSubscriber, bearer/teleservice not provisioned, callBarred:
        // this subscriber may not receive SMS.
        9 | 10 | 11 | 13 => (Reason::CallBarred, Class::Permanent),
        // illegalEquipment; facilityNotSupported.
        12 | 21 => (Reason::DeliveryFailure, Class::Permanent),
        // subscriberBusyForMT-SMS.
        31 => (Reason::SubscriberBusy, Class::Temporary),
        // sm-DeliveryFailure (memory full, equipment not SM-equipped, …).
        32 => (Reason::DeliveryFailure, Class::Temporary),
        // systemFailure; dataMissing; unexpectedDataValue.
        34..=36 => (Reason::SystemFailure, Class::Temporary),
        _ => (Reason::Unknown, Class::Temporary),
    }
}

/// What a state implies when nothing more precise is given.
fn state_default(state: FinalState) -> (Reason, Class) {
    match state {
        FinalState::Delivrd => (Reason::None, Class::Permanent),
        FinalState::Enroute | FinalState::Acceptd => (Reason::None, Class::Temporary),
        FinalState::Expired => (Reason::Expired, Class::Permanent),
        FinalState::Deleted | FinalState::Rejectd | FinalState::Skipped => {
            (Reason::RejectedByVendor, Class::Permanent)
        }
        FinalState::Undeliv | FinalState::Unknown => (Reason::Unknown, Class::Permanent),
    }
}

/// Reads a receipt from `profile`'s upstream.
pub fn read_receipt(
    profile: &Profile,
    sm: &DeliverSm,
) -> Result<UpstreamReceipt, ReceiptReadError> {
    let tlv_id = sm
        .tlvs
        .receipted_message_id()
        .map(|id| String::from_utf8_lossy(id).trim().to_owned());
    if !sm.esm_class.is_receipt() && tlv_id.is_none() {
        return Err(ReceiptReadError::NotAReceipt(sm.esm_class.0));
    }
    let text = Receipt::parse(sm.text_octets()).ok();
    let upstream_id = tlv_id
        .filter(|id| !id.is_empty())
        .or_else(|| text.as_ref().map(|t| t.id.clone()))
        .ok_or(ReceiptReadError::NoId)?;
    let vendor_stat = text.as_ref().and_then(|t| t.stat.clone());
    let vendor_err = text.as_ref().and_then(|t| t.err.clone());
    let mut state = sm
        .tlvs
        .message_state()
        .and_then(|s| FinalState::from_message_state(s.0))
        .or_else(|| vendor_stat.as_deref().and_then(|s| profile.stat(s)))
        .ok_or(ReceiptReadError::NoState)?;
    let network_error = sm.tlvs.network_error_code().copied();
    let radix = match profile.receipts.err_radix {
        Radix::Hex => ErrRadix::Hex,
        Radix::Decimal => ErrRadix::Decimal,
    };
    let code = text.as_ref().and_then(|t| t.err_code(radix).ok().flatten());
    let entry = code.and_then(|code| profile.receipt_error(code));
    let failed = |state: FinalState| {
        !matches!(
            state,
            FinalState::Delivrd | FinalState::Enroute | FinalState::Acceptd
        )
    };
    // The err as a MAP code, for vendors whose err is one (0: no error,
    // which says nothing about a failure).
    let map_err = code
        .filter(|&c| profile.receipts.err_is_gsm_map && c != 0)
        .map(map_reason);
    let (reason, class, scope) = match entry {
        Some(e) => {
            // The entry's state, unless it would make a final receipt
            // intermediate (see the module doc).
            let applied = e
                .state
                .filter(|implied| implied.is_final() || !state.is_final());
            if let Some(implied) = applied {
                state = implied;
            }
            // An entry whose state was taken says what the code means whole
            // (Mensatek err 29, "cancelled": DELETED, no error): its reason
            // stands. A "no error" code met under a failure `stat` says
            // nothing about the failure: fall back.
            if applied.is_none() && e.reason == Reason::None && failed(state) {
                let (reason, class) =
                    network_reason(network_error).unwrap_or_else(|| state_default(state));
                (reason, class, Scope::Message)
            } else {
                (e.reason, e.class, e.scope)
            }
        }
        None => {
            let (reason, class) = map_err
                .or_else(|| network_reason(network_error))
                .filter(|_| state != FinalState::Delivrd)
                .unwrap_or_else(|| state_default(state));
            (reason, class, Scope::Message)
        }
    };
    Ok(UpstreamReceipt {
        upstream_id,
        canonical: Canonical {
            state,
            reason,
            class,
        },
        vendor_stat,
        vendor_err,
        network_error,
        scope,
        vendor_tlvs: sm
            .tlvs
            .iter()
            .filter_map(|tlv| match tlv {
                tern_codec::Tlv::Other { tag, value }
                    if (0x1400..=0x3FFF).contains(tag)
                        || profile.receipts.vendor_tlvs.contains(tag) =>
                {
                    Some((*tag, value.to_vec()))
                }
                _ => None,
            })
            .collect(),
    })
}

/// A receipt held before its message was known, read again from the
/// deliver_sm kept with it; `None` if it no longer reads as one.
pub fn read_held(profile: &Profile, pdu: &Bytes) -> Option<UpstreamReceipt> {
    match Pdu::decode(pdu.clone()).ok()?.body {
        Body::DeliverSm(sm) => read_receipt(profile, &sm).ok(),
        _ => None,
    }
}

fn network_reason(code: Option<NetworkErrorCode>) -> Option<(Reason, Class)> {
    code.filter(|c| c.network_type == NetworkErrorCode::GSM && c.error_code != 0)
        .map(|c| map_reason(u32::from(c.error_code)))
}
