//! Golden vectors: every PDU written out field by field by hand (SMPP 3.4 §4),
//! decoded and compared with the value it means, then encoded back and
//! compared octet for octet. The `command_length` of each vector is a literal
//! counted by hand; the helper checks it against the pieces so a miscount
//! shows up as such rather than as a codec bug.

use bytes::Bytes;
use tern_codec::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, Destination, Outbind, QuerySm,
    QuerySmResp, ReplaceSm, SmResp, SubmitMulti, SubmitMultiResp, SubmitSm, Unsuccess,
};
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{
    Address, Body, COctetString, CommandId, CommandStatus, DataCoding, EsmClass, InterfaceVersion,
    MessageState, Npi, Pdu, RegisteredDelivery, ShortMessage, SmppCodec, TimeString, Tlv, Ton,
};

/// A C-octet string on the wire.
fn c(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

/// Header + body pieces; `len` is the hand-counted command_length.
fn wire(len: u32, id: u32, status: u32, seq: u32, body: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&len.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&status.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    for piece in body {
        v.extend_from_slice(piece);
    }
    assert_eq!(
        v.len(),
        len as usize,
        "hand-counted command_length is wrong"
    );
    v
}

fn s<const N: usize>(v: &str) -> COctetString<N> {
    COctetString::try_from(v).expect("test value fits")
}

fn addr<const N: usize>(ton: u8, npi: u8, digits: &str) -> Address<N> {
    Address::new(Ton(ton), Npi(npi), s(digits))
}

/// Decodes `bytes`, compares with `expected`, re-encodes, compares octets.
fn check(bytes: Vec<u8>, expected: Pdu) {
    let decoded = Pdu::decode(Bytes::from(bytes.clone())).expect("vector decodes");
    assert_eq!(decoded, expected);
    assert_eq!(expected.encoded_len(), bytes.len());
    assert_eq!(expected.to_bytes().as_ref(), &bytes[..], "encoding differs");
}

fn pdu(seq: u32, status: CommandStatus, body: Body) -> Pdu {
    Pdu {
        sequence_number: seq,
        command_status: status,
        body,
    }
}

#[test]
fn empty_bodies() {
    check(
        wire(16, 0x0000_0015, 0, 1, &[]),
        pdu(1, CommandStatus::Ok, Body::EnquireLink),
    );
    check(
        wire(16, 0x8000_0015, 0, 1, &[]),
        pdu(1, CommandStatus::Ok, Body::EnquireLinkResp),
    );
    check(
        wire(16, 0x8000_0000, 3, 7, &[]),
        pdu(7, CommandStatus::InvalidCommandId, Body::GenericNack),
    );
    check(
        wire(16, 0x0000_0006, 0, 2, &[]),
        pdu(2, CommandStatus::Ok, Body::Unbind),
    );
    check(
        wire(16, 0x8000_0006, 0, 2, &[]),
        pdu(2, CommandStatus::Ok, Body::UnbindResp),
    );
    check(
        wire(16, 0x8000_0008, 0, 3, &[]),
        pdu(3, CommandStatus::Ok, Body::CancelSmResp),
    );
    check(
        wire(16, 0x8000_0007, 0x13, 4, &[]),
        pdu(4, CommandStatus::ReplaceFailed, Body::ReplaceSmResp),
    );
}

fn bind_fields(version: u8) -> (Vec<Vec<u8>>, Bind) {
    // The field values of the SMPP 3.4 specification's bind example.
    let pieces = vec![
        c("SMPP3TEST"),            // system_id, 10
        c("secret08"),             // password, 9
        c("SUBMIT1"),              // system_type, 8
        vec![version, 0x01, 0x01], // interface_version, addr_ton, addr_npi
        c(""),                     // address_range, 1
    ];
    let bind = Bind {
        system_id: s("SMPP3TEST"),
        password: s("secret08"),
        system_type: s("SUBMIT1"),
        interface_version: InterfaceVersion(version),
        addr_ton: Ton::INTERNATIONAL,
        addr_npi: Npi::ISDN,
        address_range: COctetString::empty(),
    };
    (pieces, bind)
}

#[test]
fn binds_of_every_kind_and_version() {
    for version in [0x33, 0x34, 0x50] {
        let (pieces, bind) = bind_fields(version);
        let pieces: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        check(
            wire(47, 0x0000_0002, 0, 1, &pieces),
            pdu(1, CommandStatus::Ok, Body::BindTransmitter(bind.clone())),
        );
        check(
            wire(47, 0x0000_0001, 0, 1, &pieces),
            pdu(1, CommandStatus::Ok, Body::BindReceiver(bind.clone())),
        );
        check(
            wire(47, 0x0000_0009, 0, 1, &pieces),
            pdu(1, CommandStatus::Ok, Body::BindTransceiver(bind)),
        );
    }
}

#[test]
fn bind_responses() {
    let mut resp = BindResp::with_id(s("TERN"));
    resp.tlvs.push(Tlv::ScInterfaceVersion(0x34));
    check(
        wire(
            26,
            0x8000_0009,
            0,
            1,
            &[&c("TERN"), &[0x02, 0x10, 0x00, 0x01, 0x34]],
        ),
        pdu(1, CommandStatus::Ok, Body::BindTransceiverResp(resp)),
    );
    check(
        wire(21, 0x8000_0002, 0, 1, &[&c("TERN")]),
        pdu(
            1,
            CommandStatus::Ok,
            Body::BindTransmitterResp(BindResp::with_id(s("TERN"))),
        ),
    );
    // A refused bind: no body at all.
    check(
        wire(16, 0x8000_0001, 0x0E, 1, &[]),
        pdu(
            1,
            CommandStatus::InvalidPassword,
            Body::BindReceiverResp(BindResp::default()),
        ),
    );
}

#[test]
fn outbind() {
    check(
        wire(24, 0x0000_000B, 0, 9, &[&c("SMSC"), &c("pw")]),
        pdu(
            9,
            CommandStatus::Ok,
            Body::Outbind(Outbind {
                system_id: s("SMSC"),
                password: s("pw"),
            }),
        ),
    );
}

#[test]
fn submit_sm_with_relative_validity_and_a_tlv() {
    let bytes = wire(
        75,
        0x0000_0004,
        0,
        0x7FFF_FFFF,
        &[
            &c(""),                                // service_type
            &[0x05, 0x00],                         // source TON alphanumeric, NPI unknown
            &c("Tern"),                            // source_addr
            &[0x01, 0x01],                         // dest TON international, NPI ISDN
            &c("34600000001"),                     // destination_addr
            &[0x00, 0x00, 0x00],                   // esm_class, protocol_id, priority_flag
            &c(""),                                // schedule_delivery_time: now
            &c("000001000000000R"),                // validity_period: one day
            &[0x01, 0x00, 0x00, 0x00], // registered_delivery, replace, data_coding, default id
            &[0x05],                   // sm_length
            b"Hello",                  // short_message
            &[0x02, 0x04, 0x00, 0x02, 0x00, 0x42], // user_message_reference = 0x42
        ],
    );
    let mut sm = SubmitSm {
        source: addr(5, 0, "Tern"),
        destination: addr(1, 1, "34600000001"),
        validity_period: TimeString::try_from("000001000000000R").expect("16 chars"),
        registered_delivery: RegisteredDelivery::ALWAYS,
        short_message: ShortMessage::new(&b"Hello"[..]).expect("short"),
        ..SubmitSm::default()
    };
    sm.tlvs.push(Tlv::UserMessageReference(0x42));
    check(
        bytes,
        pdu(0x7FFF_FFFF, CommandStatus::Ok, Body::SubmitSm(sm)),
    );
}

#[test]
fn submit_sm_resp_with_and_without_body() {
    check(
        wire(23, 0x8000_0004, 0, 5, &[&c("abc123")]),
        pdu(
            5,
            CommandStatus::Ok,
            Body::SubmitSmResp(SmResp::with_id(s("abc123"))),
        ),
    );
    check(
        wire(16, 0x8000_0004, 0x58, 5, &[]),
        pdu(
            5,
            CommandStatus::Throttled,
            Body::SubmitSmResp(SmResp::default()),
        ),
    );
    // A vendor status (OVH's 0x401, data coding unsupported) passes through.
    check(
        wire(16, 0x8000_0004, 0x401, 5, &[]),
        pdu(
            5,
            CommandStatus::Vendor(0x401),
            Body::SubmitSmResp(SmResp::default()),
        ),
    );
}

#[test]
fn deliver_sm_receipt_with_typed_and_vendor_tlvs() {
    let bytes = wire(
        91,
        0x0000_0005,
        0,
        77,
        &[
            &c(""),
            &[0x01, 0x01],
            &c("34600000001"),
            &[0x05, 0x00],
            &c("Tern"),
            &[0x04, 0x00, 0x00], // esm_class: SMSC delivery receipt
            &c(""),
            &c(""),
            &[0x00, 0x00, 0x00, 0x00],
            &[25],
            b"id:7 stat:DELIVRD err:000",
            &[0x00, 0x1E, 0x00, 0x02, b'7', 0x00], // receipted_message_id "7"
            &[0x04, 0x27, 0x00, 0x01, 0x02],       // message_state DELIVERED
            &[0x14, 0x01, 0x00, 0x03, b'x', b'y', 0x00], // OVH outgoing_id
        ],
    );
    let mut sm = SubmitSm {
        source: addr(1, 1, "34600000001"),
        destination: addr(5, 0, "Tern"),
        esm_class: EsmClass::DELIVERY_RECEIPT,
        short_message: ShortMessage::new(&b"id:7 stat:DELIVRD err:000"[..]).expect("short"),
        ..SubmitSm::default()
    };
    sm.tlvs
        .push(Tlv::receipted_message_id(b"7").expect("short id"));
    sm.tlvs.push(Tlv::MessageState(MessageState::DELIVERED));
    sm.tlvs.push(Tlv::Other {
        tag: 0x1401,
        value: Bytes::from_static(b"xy\0"),
    });
    let expected = pdu(77, CommandStatus::Ok, Body::DeliverSm(sm));
    if let Body::DeliverSm(sm) = &expected.body {
        assert!(sm.esm_class.is_receipt());
        assert_eq!(sm.tlvs.receipted_message_id(), Some(&b"7"[..]));
    }
    check(bytes, expected);
    check(
        wire(17, 0x8000_0005, 0, 77, &[&c("")]),
        pdu(
            77,
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(COctetString::empty())),
        ),
    );
}

#[test]
fn submit_multi_and_its_response() {
    let bytes = wire(
        70,
        0x0000_0021,
        0,
        3,
        &[
            &c(""),
            &[0x01, 0x01],
            &c("447700900000"),
            &[0x02], // number_of_dests
            &[0x01, 0x01, 0x01],
            &c("447700900001"), // dest_flag 1: SME address
            &[0x02],
            &c("friends"), // dest_flag 2: distribution list
            &[0x00, 0x00, 0x00],
            &c(""),
            &c(""),
            &[0x00, 0x00, 0x00, 0x00],
            &[0x02],
            b"Hi",
        ],
    );
    let multi = SubmitMulti {
        source: addr(1, 1, "447700900000"),
        destinations: vec![
            Destination::Sme(addr(1, 1, "447700900001")),
            Destination::DistributionList(s("friends")),
        ],
        short_message: ShortMessage::new(&b"Hi"[..]).expect("short"),
        ..SubmitMulti::default()
    };
    check(bytes, pdu(3, CommandStatus::Ok, Body::SubmitMulti(multi)));

    let bytes = wire(
        39,
        0x8000_0021,
        0,
        3,
        &[
            &c("m1"),
            &[0x01], // no_unsuccess
            &[0x01, 0x01],
            &c("447700900001"),
            &[0x00, 0x00, 0x00, 0x0B], // ESME_RINVDSTADR
        ],
    );
    let resp = SubmitMultiResp {
        message_id: Some(s("m1")),
        unsuccess: vec![Unsuccess {
            address: addr(1, 1, "447700900001"),
            error_status_code: CommandStatus::InvalidDestinationAddress,
        }],
        ..SubmitMultiResp::default()
    };
    check(
        bytes,
        pdu(3, CommandStatus::Ok, Body::SubmitMultiResp(resp)),
    );
}

#[test]
fn data_sm_and_its_response() {
    let bytes = wire(
        42,
        0x0000_0103,
        0,
        11,
        &[
            &c(""),
            &[0x01, 0x01],
            &c("1234"),
            &[0x01, 0x01],
            &c("5678"),
            &[0x00, 0x01, 0x08], // esm_class, registered_delivery, data_coding UCS2
            &[0x04, 0x24, 0x00, 0x04, 0x00, 0x48, 0x00, 0x69], // message_payload "Hi"
        ],
    );
    let mut data = DataSm {
        source: addr(1, 1, "1234"),
        destination: addr(1, 1, "5678"),
        registered_delivery: RegisteredDelivery::ALWAYS,
        data_coding: DataCoding::UCS2,
        ..DataSm::default()
    };
    data.tlvs
        .push(Tlv::message_payload(&b"\x00H\x00i"[..]).expect("short payload"));
    check(bytes, pdu(11, CommandStatus::Ok, Body::DataSm(data)));
    check(
        wire(19, 0x8000_0103, 0, 11, &[&c("d1")]),
        pdu(
            11,
            CommandStatus::Ok,
            Body::DataSmResp(SmResp::with_id(s("d1"))),
        ),
    );
}

#[test]
fn query_cancel_replace() {
    check(
        wire(
            26,
            0x0000_0003,
            0,
            20,
            &[&c("q1"), &[0x01, 0x01], &c("1234")],
        ),
        pdu(
            20,
            CommandStatus::Ok,
            Body::QuerySm(QuerySm {
                message_id: s("q1"),
                source: addr(1, 1, "1234"),
            }),
        ),
    );
    check(
        wire(
            38,
            0x8000_0003,
            0,
            20,
            &[&c("q1"), &c("261121120000000+"), &[0x02, 0x00]],
        ),
        pdu(
            20,
            CommandStatus::Ok,
            Body::QuerySmResp(QuerySmResp {
                message_id: s("q1"),
                final_date: TimeString::try_from("261121120000000+").expect("16 chars"),
                message_state: MessageState::DELIVERED,
                error_code: 0,
            }),
        ),
    );
    check(
        wire(
            34,
            0x0000_0008,
            0,
            21,
            &[
                &c(""),
                &c("q1"),
                &[0x01, 0x01],
                &c("1234"),
                &[0x01, 0x01],
                &c("5678"),
            ],
        ),
        pdu(
            21,
            CommandStatus::Ok,
            Body::CancelSm(CancelSm {
                service_type: COctetString::empty(),
                message_id: s("q1"),
                source: addr(1, 1, "1234"),
                destination: addr(1, 1, "5678"),
            }),
        ),
    );
    check(
        wire(
            34,
            0x0000_0007,
            0,
            22,
            &[
                &c("q1"),
                &[0x01, 0x01],
                &c("1234"),
                &c(""),
                &c(""),
                &[0x01, 0x00],
                &[0x03],
                b"New",
            ],
        ),
        pdu(
            22,
            CommandStatus::Ok,
            Body::ReplaceSm(ReplaceSm {
                message_id: s("q1"),
                source: addr(1, 1, "1234"),
                registered_delivery: RegisteredDelivery::ALWAYS,
                short_message: ShortMessage::new(&b"New"[..]).expect("short"),
                ..ReplaceSm::default()
            }),
        ),
    );
}

#[test]
fn alert_notification() {
    let mut alert = AlertNotification {
        source: addr(1, 1, "1234"),
        esme: addr(1, 1, "5678"),
        ..AlertNotification::default()
    };
    alert.tlvs.push(Tlv::MsAvailabilityStatus(0));
    check(
        wire(
            35,
            0x0000_0102,
            0,
            30,
            &[
                &[0x01, 0x01],
                &c("1234"),
                &[0x01, 0x01],
                &c("5678"),
                &[0x04, 0x22, 0x00, 0x01, 0x00],
            ],
        ),
        pdu(30, CommandStatus::Ok, Body::AlertNotification(alert)),
    );
}

#[test]
fn unknown_commands_pass_through_and_are_answered_with_generic_nack() {
    let bytes = wire(19, 0x0000_0111, 0, 40, &[&[1, 2, 3]]);
    let expected = pdu(
        40,
        CommandStatus::Ok,
        Body::Unknown {
            command_id: 0x111,
            body: Bytes::from_static(&[1, 2, 3]),
        },
    );
    assert_eq!(expected.command_id(), CommandId::Other(0x111));
    check(bytes, expected);
    let nack = Pdu::error_response(CommandId::Other(0x111), 40, CommandStatus::InvalidCommandId)
        .expect("requests are answered");
    assert_eq!(
        nack.to_bytes().as_ref(),
        &wire(16, 0x8000_0000, 3, 40, &[])[..]
    );
}

#[test]
fn network_error_code_tlv() {
    let mut sm = SubmitSm::default();
    sm.tlvs.push(Tlv::NetworkErrorCode(NetworkErrorCode {
        network_type: NetworkErrorCode::GSM,
        error_code: 27,
    }));
    let pdu = pdu(1, CommandStatus::Ok, Body::DeliverSm(sm));
    let bytes = pdu.to_bytes();
    assert_eq!(
        &bytes[bytes.len() - 7..],
        &[0x04, 0x23, 0x00, 0x03, 0x03, 0x00, 0x1B]
    );
}

#[test]
fn a_3_3_peer_gets_no_tlvs() {
    let mut resp = BindResp::with_id(s("TERN"));
    resp.tlvs.push(Tlv::ScInterfaceVersion(0x34));
    let pdu = pdu(1, CommandStatus::Ok, Body::BindTransceiverResp(resp));

    let mut out = bytes::BytesMut::new();
    let mut codec = SmppCodec::new();
    codec.set_peer_version(InterfaceVersion::V33);
    codec.encode_pdu(pdu.clone(), &mut out);
    assert_eq!(&out[..], &wire(21, 0x8000_0009, 0, 1, &[&c("TERN")])[..]);

    out.clear();
    codec.encode_pdu_ref(&pdu, &mut out);
    assert_eq!(out.len(), 21, "borrowed or owned, a 3.3 peer gets no TLVs");

    out.clear();
    codec.set_peer_version(InterfaceVersion::V34);
    codec.encode_pdu(pdu, &mut out);
    assert_eq!(out.len(), 26, "a 3.4 peer gets sc_interface_version");
}
