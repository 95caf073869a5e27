//! Receipts in each vendor's form (from the seeds) read into the canonical
//! vocabulary. Expectations come from the seeds' words.

use bytes::Bytes;
use tern_codec::pdu::DeliverSm;
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{EsmClass, MessageState, ShortMessage, Tlv};
use tern_router::receipt::{read_receipt, ReceiptReadError};
use tern_router::{Class, FinalState, Profile, Reason};

fn profile(name: &str) -> Profile {
    Profile::builtin(name).expect("listed").expect("valid")
}

fn receipt(text: &str) -> DeliverSm {
    DeliverSm {
        esm_class: EsmClass::DELIVERY_RECEIPT,
        short_message: ShortMessage::new(Bytes::copy_from_slice(text.as_bytes())).expect("short"),
        ..DeliverSm::default()
    }
}

fn read(vendor: &str, sm: &DeliverSm) -> (String, FinalState, Reason, Class) {
    let r = read_receipt(&profile(vendor), sm).unwrap_or_else(|e| panic!("{vendor}: {e}"));
    (
        r.upstream_id,
        r.canonical.state,
        r.canonical.reason,
        r.canonical.class,
    )
}

#[test]
fn ovh_stop_blacklist_and_the_receipted_message_id_tlv() {
    // Seed 002, PTT 53: "Blacklisted (a STOP response sent by the recipient
    // to block the sender)". receipted_message_id wins over the text id.
    let mut sm = receipt("id:111 sub:001 dlvrd:000 submit date:2611211200 done date:2611211201 stat:UNDELIV err:053 text:hello");
    sm.tlvs
        .push(Tlv::receipted_message_id(b"abc-999").expect("short"));
    assert_eq!(
        read("ovh", &sm),
        (
            "abc-999".to_owned(),
            FinalState::Undeliv,
            Reason::Blacklisted,
            Class::Permanent
        )
    );
    // PTT 0 "No Error" on a delivered receipt.
    let sm = receipt("id:112 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:hello");
    assert_eq!(read("ovh", &sm).1, FinalState::Delivrd);
    assert_eq!(read("ovh", &sm).2, Reason::None);
}

#[test]
fn telesign_hex_err_and_message_state_tlv() {
    // Seed 003: err is hexadecimal; 0x4A3 "Message expired before delivery";
    // message_state 3 is EXPIRED. The 32-hex id comes in the TLV.
    let id = "0123456789ABCDEF0123456789ABCDEF";
    let mut sm = receipt(&format!("id:{id} sub:001 dlvrd:000 submit date:2611211200 done date:2611211210 stat:EXPIRED err:4A3 text:"));
    sm.tlvs
        .push(Tlv::receipted_message_id(id.as_bytes()).expect("short"));
    sm.tlvs.push(Tlv::MessageState(MessageState::EXPIRED));
    assert_eq!(
        read("telesign", &sm),
        (
            id.to_owned(),
            FinalState::Expired,
            Reason::Expired,
            Class::Permanent
        )
    );
    // 0x407 "Absent subscriber error": worth another try.
    let mut sm = receipt(&format!("id:{id} sub:001 dlvrd:000 submit date:2611211200 done date:2611211210 stat:UNDELIV err:407 text:"));
    sm.tlvs.push(Tlv::MessageState(MessageState::UNDELIVERABLE));
    let (_, state, reason, class) = read("telesign", &sm);
    assert_eq!(
        (state, reason, class),
        (
            FinalState::Undeliv,
            Reason::AbsentSubscriber,
            Class::Temporary
        )
    );
}

#[test]
fn tlvs_win_over_the_text() {
    // The text says DELIVRD, the TLV says UNDELIVERABLE: the TLV wins.
    let mut sm = receipt("id:1 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:x");
    sm.tlvs.push(Tlv::MessageState(MessageState::UNDELIVERABLE));
    assert_eq!(read("generic", &sm).1, FinalState::Undeliv);
}

#[test]
fn infobip_spells_unknown_as_delivery_unknown() {
    // Seed 004: stat "DELIVERY UNKNOWN" and the key "dlvrld".
    let sm = receipt("id:77 sub:001 dlvrld:000 submit date:2611211200 done date:2611211201 stat:DELIVERY UNKNOWN err:000 text:");
    let (id, state, _, _) = read("infobip", &sm);
    assert_eq!((id.as_str(), state), ("77", FinalState::Unknown));
    let sm = receipt("id:78 sub:001 dlvrld:000 submit date:2611211200 done date:2611211201 stat:REJECTED err:000 text:");
    assert_eq!(read("infobip", &sm).1, FinalState::Rejectd);
}

#[test]
fn mensatek_codes_name_the_reason() {
    // Seed 000 (Spanish): err 50 "no such phone" is permanent; 131 memory
    // full is temporary; 11 is a delivered code. Mensatek writes "dlvr".
    let sm = receipt("id:9001 sub:001 dlvr:000 submit date:2611211200 done date:2611211201 stat:UNDELIV err:050 text:");
    assert_eq!(read("mensatek", &sm).2, Reason::UnknownSubscriber);
    assert_eq!(read("mensatek", &sm).3, Class::Permanent);
    let sm = receipt("id:9002 sub:001 dlvr:000 submit date:2611211200 done date:2611211201 stat:UNDELIV err:131 text:");
    assert_eq!(
        (read("mensatek", &sm).2, read("mensatek", &sm).3),
        (Reason::DeliveryFailure, Class::Temporary)
    );
    let sm = receipt("id:9003 sub:001 dlvr:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:011 text:");
    assert_eq!(read("mensatek", &sm).1, FinalState::Delivrd);
}

#[test]
fn seed001_receipt_with_a_capital_text_key() {
    // Seed 001: "... stat: err: Text:" with 10-digit dates.
    let sm = receipt("id:4455 sub:001 dlvrd:001 submit date:2611211200 done date:2611211205 stat:DELIVRD err:000 Text:Привет");
    let (id, state, reason, _) = read("seed001", &sm);
    assert_eq!(
        (id.as_str(), state, reason),
        ("4455", FinalState::Delivrd, Reason::None)
    );
}

#[test]
fn a_gsm_network_error_code_names_the_reason_when_the_vendor_table_does_not() {
    let mut sm = receipt("id:5 sub:001 dlvrd:000 submit date:2611211200 done date:2611211201 stat:UNDELIV err:000 text:");
    sm.tlvs.push(Tlv::NetworkErrorCode(NetworkErrorCode {
        network_type: NetworkErrorCode::GSM,
        error_code: 27,
    }));
    let (_, state, reason, class) = read("generic", &sm);
    assert_eq!(
        (state, reason, class),
        (
            FinalState::Undeliv,
            Reason::AbsentSubscriber,
            Class::Temporary
        )
    );
    assert_eq!(reason.err(), 27);
}

#[test]
fn intermediate_receipts_are_not_final() {
    let sm = receipt("id:6 sub:001 dlvrd:000 submit date:2611211200 done date:2611211201 stat:ENROUTE err:000 text:");
    let r = read_receipt(&profile("generic"), &sm).expect("readable");
    assert!(!r.is_final());
}

#[test]
fn an_mo_message_is_not_a_receipt() {
    let mo = DeliverSm {
        short_message: ShortMessage::new(&b"id:looks like one but is not flagged"[..])
            .expect("short"),
        ..DeliverSm::default()
    };
    assert_eq!(
        read_receipt(&profile("generic"), &mo),
        Err(ReceiptReadError::NotAReceipt(0))
    );
    let nonsense = receipt("hello there");
    assert_eq!(
        read_receipt(&profile("generic"), &nonsense),
        Err(ReceiptReadError::NoId)
    );
}

#[test]
fn vendor_tlvs_are_kept_as_received_and_standard_ones_are_not() {
    // Seed 002: OVH adds its own outgoing id (0x1401) to its receipts; a
    // Telesign receipt may carry MCC/MNC and price in vendor TLVs too.
    let mut sm = receipt("id:111 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:hello");
    sm.tlvs.push(Tlv::MessageState(MessageState(2)));
    sm.tlvs.push(Tlv::Other {
        tag: 0x1401,
        value: Bytes::from_static(b"ovh-111\0"),
    });
    sm.tlvs.push(Tlv::Other {
        tag: 0x1502,
        value: Bytes::from_static(&[0x00, 0xD6]),
    });
    let r = read_receipt(&profile("ovh"), &sm).expect("a receipt");
    assert_eq!(
        r.vendor_tlvs,
        vec![(0x1401, b"ovh-111\0".to_vec()), (0x1502, vec![0x00, 0xD6])]
    );
}
