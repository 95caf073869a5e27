//! Records and receipts for the unit tests of this module.

use tern_codec::pdu::SubmitSm;
use tern_codec::{Address, Body, Npi, Pdu, RegisteredDelivery, ShortMessage, Ton};
use tern_storage::{Attempt, IdFormat, MessageRecord, State, TernId};

use super::UpstreamReceipt;
use crate::canonical::{Canonical, Class, FinalState, Reason, Scope};

/// An attempt `upstream` accepted whole, with its ids for the parts.
pub fn attempt(upstream: &str, ids: &[&str]) -> Attempt {
    Attempt {
        upstream: upstream.to_owned(),
        at_ms: 1,
        status: Some(0),
        upstream_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
        failure: None,
    }
}

/// An attempt given up after `upstream` accepted the parts `ids`.
pub fn given_up(upstream: &str, ids: &[&str]) -> Attempt {
    Attempt {
        status: Some(0x45),
        failure: Some("part 2 refused".to_owned()),
        ..attempt(upstream, ids)
    }
}

/// Client acme's submit to 3360, asking `registered_delivery`.
pub fn submit(registered_delivery: u8) -> SubmitSm {
    SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Acme".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "3360".try_into().expect("short"),
        ),
        registered_delivery: RegisteredDelivery(registered_delivery),
        short_message: ShortMessage::new(b"hello".to_vec()).expect("short"),
        ..SubmitSm::default()
    }
}

/// A message "up" accepted with the parts `ids`, asking for final receipts.
pub fn record(ids: &[&str]) -> MessageRecord {
    record_asking(ids, 1)
}

/// [`record`], asking `registered_delivery`.
pub fn record_asking(ids: &[&str], registered_delivery: u8) -> MessageRecord {
    MessageRecord {
        id: TernId::from_u64(0x42),
        client: "acme".to_owned(),
        pdu: Pdu::new(1, Body::SubmitSm(submit(registered_delivery))).to_bytes(),
        receipt_requested: true,
        state: State::Submitted,
        attempts: vec![attempt("up", ids)],
        outcome: None,
        accepted_ms: 1,
        updated_ms: 1,
        not_before_ms: 1,
        expires_ms: None,
        dedup_key: None,
        parts: Vec::new(),
        received: Vec::new(),
        relayed: Vec::new(),
        multi: None,
        id_format: IdFormat::Hex,
    }
}

/// A receipt for upstream id `id` with this outcome.
pub fn receipt(id: &str, state: FinalState, reason: Reason) -> UpstreamReceipt {
    UpstreamReceipt {
        upstream_id: id.to_owned(),
        canonical: Canonical {
            state,
            reason,
            class: Class::Permanent,
        },
        vendor_stat: Some(state.stat().to_owned()),
        vendor_err: Some("000".to_owned()),
        network_error: None,
        scope: Scope::Message,
        vendor_tlvs: Vec::new(),
    }
}
