//! Client receipts: Tern's id and vocabulary in the standard SMPP 3.4 form.

use tern_codec::pdu::DeliverSm;
use tern_codec::receipt::Receipt;
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{Address, Body, InterfaceVersion, Npi, Pdu, RegisteredDelivery, SmppCodec, Ton};
use tern_router::receipt::{
    client_receipt, combined, ended_by_tern, wanted, ClientReceipt, VENDOR_CODE_TLV,
};
use tern_router::{Canonical, Class, FinalState, Reason};

fn addr(ton: u8, npi: u8, a: &str) -> Address<21> {
    Address::new(Ton(ton), Npi(npi), a.try_into().expect("short"))
}

fn outcome(state: FinalState, reason: Reason) -> Canonical {
    Canonical {
        state,
        reason,
        class: Class::Permanent,
    }
}

fn build(canonical: Canonical, vendor: Option<&str>) -> DeliverSm {
    client_receipt(&ClientReceipt {
        tern_id: "0001000000000abc",
        client_source: addr(5, 0, "Tern"),
        client_destination: addr(1, 1, "34600000001"),
        // 2026-11-21 12:00 and 12:05 UTC.
        submitted_ms: 1_795_262_400_000,
        done_ms: 1_795_262_700_000,
        text: "Your code is 123456, valid for ten minutes",
        canonical,
        vendor_code: vendor,
    })
}

#[test]
fn a_delivered_receipt_in_the_standard_form_with_terns_id() {
    let sm = build(outcome(FinalState::Delivrd, Reason::None), None);
    let text = String::from_utf8(sm.short_message.as_bytes().to_vec()).expect("ascii");
    assert_eq!(
        text,
        "id:0001000000000abc sub:001 dlvrd:001 submit date:2611211200 done date:2611211205 stat:DELIVRD err:000 text:Your code is 123456,"
    );
    assert!(sm.esm_class.is_receipt());
    // The receipt goes from the handset back to the client's sender.
    assert_eq!(
        (sm.source.addr.to_string(), sm.destination.addr.to_string()),
        ("34600000001".to_owned(), "Tern".to_owned())
    );
    assert_eq!(
        sm.tlvs.receipted_message_id(),
        Some(&b"0001000000000abc"[..])
    );
    assert_eq!(sm.tlvs.message_state().map(|s| s.0), Some(2));
    assert!(sm.tlvs.network_error_code().is_none());
}

#[test]
fn a_network_reason_travels_as_a_gsm_network_error_code_and_the_vendor_code_along() {
    let sm = build(
        outcome(FinalState::Undeliv, Reason::AbsentSubscriber),
        Some("telesign stat:UNDELIV err:407"),
    );
    let parsed = Receipt::parse(sm.short_message.as_bytes()).expect("standard text");
    assert_eq!(
        (parsed.stat.as_deref(), parsed.err.as_deref()),
        (Some("UNDELIV"), Some("027"))
    );
    assert_eq!(
        sm.tlvs.network_error_code(),
        Some(&NetworkErrorCode {
            network_type: NetworkErrorCode::GSM,
            error_code: 27
        })
    );
    let vendor = sm.tlvs.get(VENDOR_CODE_TLV).expect("vendor code TLV");
    assert_eq!(
        vendor,
        &tern_codec::Tlv::Other {
            tag: VENDOR_CODE_TLV,
            value: bytes::Bytes::from_static(b"telesign stat:UNDELIV err:407")
        }
    );
}

#[test]
fn terns_own_reasons_have_no_network_error_code() {
    let sm = build(outcome(FinalState::Undeliv, Reason::Blacklisted), None);
    let parsed = Receipt::parse(sm.short_message.as_bytes()).expect("standard text");
    assert_eq!(parsed.err.as_deref(), Some("902"));
    assert!(sm.tlvs.network_error_code().is_none());
}

#[test]
fn a_3_3_client_gets_the_text_alone() {
    let sm = build(
        outcome(FinalState::Expired, Reason::Expired),
        Some("ovh err:801"),
    );
    let mut out = bytes::BytesMut::new();
    let mut codec = SmppCodec::new();
    codec.set_peer_version(InterfaceVersion::V33);
    codec.encode_pdu(Pdu::new(1, Body::DeliverSm(sm.clone())), &mut out);
    let decoded = Pdu::decode(out.freeze()).expect("valid");
    let Body::DeliverSm(got) = decoded.body else {
        panic!("{decoded:?}")
    };
    assert!(got.tlvs.is_empty());
    assert_eq!(got.short_message, sm.short_message);
}

#[test]
fn which_receipts_a_client_asked_for() {
    let delivered = outcome(FinalState::Delivrd, Reason::None);
    let failed = outcome(FinalState::Undeliv, Reason::Unknown);
    let enroute = Canonical {
        state: FinalState::Enroute,
        reason: Reason::None,
        class: Class::Temporary,
    };
    assert!(!wanted(RegisteredDelivery::NONE, &failed));
    assert!(
        wanted(RegisteredDelivery::ALWAYS, &delivered)
            && wanted(RegisteredDelivery::ALWAYS, &failed)
    );
    assert!(
        !wanted(RegisteredDelivery::ON_FAILURE, &delivered)
            && wanted(RegisteredDelivery::ON_FAILURE, &failed)
    );
    assert!(
        wanted(RegisteredDelivery(3), &delivered) && !wanted(RegisteredDelivery(3), &failed),
        "5.0 success only"
    );
    assert!(
        !wanted(RegisteredDelivery::ALWAYS, &enroute),
        "intermediate only when asked"
    );
    assert!(wanted(RegisteredDelivery(0x11), &enroute));
}

#[test]
fn a_split_message_gets_one_receipt_with_the_worst_outcome() {
    let delivered = outcome(FinalState::Delivrd, Reason::None);
    let absent = outcome(FinalState::Undeliv, Reason::AbsentSubscriber);
    let enroute = Canonical {
        state: FinalState::Enroute,
        reason: Reason::None,
        class: Class::Temporary,
    };
    assert_eq!(
        combined(&[Some(delivered), None]),
        None,
        "a part not reported yet"
    );
    assert_eq!(
        combined(&[Some(delivered), Some(enroute)]),
        None,
        "a part still on its way"
    );
    assert_eq!(
        combined(&[Some(delivered), Some(delivered)]),
        Some(delivered)
    );
    assert_eq!(
        combined(&[Some(delivered), Some(absent), Some(delivered)]),
        Some(absent)
    );
    assert_eq!(combined(&[]), None);
}

#[test]
fn messages_tern_ends_itself_get_receipts_too() {
    assert_eq!(ended_by_tern(Reason::Expired).state, FinalState::Expired);
    assert_eq!(ended_by_tern(Reason::NoRoute).state, FinalState::Undeliv);
    let sm = build(ended_by_tern(Reason::NoRoute), None);
    let parsed = Receipt::parse(sm.short_message.as_bytes()).expect("standard text");
    assert_eq!(
        (parsed.stat.as_deref(), parsed.err.as_deref()),
        (Some("UNDELIV"), Some("907"))
    );
}
