//! Property tests: any PDU value encodes and decodes back to itself; any
//! byte string either decodes or returns an error, without panicking; and
//! whatever decodes encodes back to the very same octets.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use tern_codec::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, Destination, Outbind, QuerySm,
    QuerySmResp, ReplaceSm, SmResp, SubmitMulti, SubmitMultiResp, SubmitSm, Unsuccess,
};
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{
    Address, Body, COctetString, CommandId, CommandStatus, DataCoding, EsmClass, Frame,
    InterfaceVersion, MessageState, Npi, Pdu, PriorityFlag, RegisteredDelivery, ShortMessage,
    SmppCodec, TimeString, Tlv, Tlvs, Ton,
};

fn c_str<const N: usize>() -> impl Strategy<Value = COctetString<N>> {
    proptest::collection::vec(1u8..=255, 0..N)
        .prop_map(|v| COctetString::new(v).expect("non-NUL octets within the limit"))
}

fn address<const N: usize>() -> impl Strategy<Value = Address<N>> {
    (any::<u8>(), any::<u8>(), c_str::<N>()).prop_map(|(t, n, a)| Address::new(Ton(t), Npi(n), a))
}

fn time() -> impl Strategy<Value = TimeString> {
    prop_oneof![
        Just(TimeString::empty()),
        proptest::collection::vec(1u8..=255, 16)
            .prop_map(|v| TimeString::new(v).expect("16 non-NUL octets")),
    ]
}

fn short_message() -> impl Strategy<Value = ShortMessage> {
    proptest::collection::vec(any::<u8>(), 0..=254)
        .prop_map(|v| ShortMessage::new(v).expect("within 254"))
}

fn octets(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn tlv() -> impl Strategy<Value = Tlv> {
    prop_oneof![
        any::<u8>().prop_map(|v| Tlv::MessageState(MessageState(v))),
        any::<u16>().prop_map(Tlv::UserMessageReference),
        any::<u16>().prop_map(Tlv::SarMsgRefNum),
        any::<u8>().prop_map(Tlv::SarTotalSegments),
        any::<u32>().prop_map(Tlv::QosTimeToLive),
        (any::<u8>(), any::<u16>()).prop_map(|(network_type, error_code)| {
            Tlv::NetworkErrorCode(NetworkErrorCode {
                network_type,
                error_code,
            })
        }),
        octets(300).prop_map(Tlv::MessagePayload),
        octets(66).prop_map(Tlv::ReceiptedMessageId),
        // Tags this codec does not type: vendor TLVs.
        (
            prop_oneof![0x1400u16..=0x14FF, 0x0410u16..=0x0412],
            octets(40)
        )
            .prop_map(|(tag, value)| Tlv::Other { tag, value }),
    ]
}

fn tlvs() -> impl Strategy<Value = Tlvs> {
    proptest::collection::vec(tlv(), 0..5).prop_map(Tlvs::from)
}

prop_compose! {
    fn submit_sm(one_text_field: bool)(
        service_type in c_str::<6>(),
        source in address::<21>(),
        destination in address::<21>(),
        flags in any::<[u8; 8]>(),
        schedule in time(),
        validity in time(),
        short_message in short_message(),
        mut tlvs in tlvs(),
    ) -> SubmitSm {
        if one_text_field && !short_message.is_empty() {
            tlvs.remove(tern_codec::tlv::tags::MESSAGE_PAYLOAD);
        }
        SubmitSm {
            service_type,
            source,
            destination,
            esm_class: EsmClass(flags[0]),
            protocol_id: flags[1],
            priority_flag: PriorityFlag(flags[2]),
            schedule_delivery_time: schedule,
            validity_period: validity,
            registered_delivery: RegisteredDelivery(flags[3]),
            replace_if_present_flag: flags[4],
            data_coding: DataCoding(flags[5]),
            sm_default_msg_id: flags[6],
            short_message,
            tlvs,
        }
    }
}

fn bind() -> impl Strategy<Value = Bind> {
    (
        c_str::<16>(),
        c_str::<9>(),
        c_str::<13>(),
        any::<[u8; 3]>(),
        c_str::<41>(),
    )
        .prop_map(
            |(system_id, password, system_type, b, address_range)| Bind {
                system_id,
                password,
                system_type,
                interface_version: InterfaceVersion(b[0]),
                addr_ton: Ton(b[1]),
                addr_npi: Npi(b[2]),
                address_range,
            },
        )
}

fn sm_resp() -> impl Strategy<Value = SmResp> {
    prop_oneof![
        Just(SmResp::default()),
        (c_str::<65>(), tlvs()).prop_map(|(id, tlvs)| SmResp { id: Some(id), tlvs }),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        bind().prop_map(Body::BindTransmitter),
        bind().prop_map(Body::BindReceiver),
        bind().prop_map(Body::BindTransceiver),
        (proptest::option::of(c_str::<16>()), tlvs()).prop_map(|(id, tlvs)| {
            // With TLVs the id is always on the wire, if only as an empty string.
            let id = if tlvs.is_empty() {
                id
            } else {
                Some(id.unwrap_or_default())
            };
            Body::BindTransceiverResp(BindResp { id, tlvs })
        }),
        (c_str::<16>(), c_str::<9>()).prop_map(|(system_id, password)| Body::Outbind(Outbind {
            system_id,
            password
        })),
        submit_sm(true).prop_map(Body::SubmitSm),
        submit_sm(false).prop_map(Body::DeliverSm),
        sm_resp().prop_map(|r| Body::SubmitSmResp(normalise(r))),
        sm_resp().prop_map(|r| Body::DeliverSmResp(normalise(r))),
        sm_resp().prop_map(|r| Body::DataSmResp(normalise(r))),
        (
            c_str::<6>(),
            address::<21>(),
            proptest::collection::vec(
                prop_oneof![
                    address::<21>().prop_map(Destination::Sme),
                    c_str::<21>().prop_map(Destination::DistributionList),
                ],
                1..5
            ),
            submit_sm(true),
        )
            .prop_map(|(service_type, source, destinations, sm)| {
                Body::SubmitMulti(SubmitMulti {
                    service_type,
                    source,
                    destinations,
                    esm_class: sm.esm_class,
                    protocol_id: sm.protocol_id,
                    priority_flag: sm.priority_flag,
                    schedule_delivery_time: sm.schedule_delivery_time,
                    validity_period: sm.validity_period,
                    registered_delivery: sm.registered_delivery,
                    replace_if_present_flag: sm.replace_if_present_flag,
                    data_coding: sm.data_coding,
                    sm_default_msg_id: sm.sm_default_msg_id,
                    short_message: sm.short_message,
                    tlvs: sm.tlvs,
                })
            }),
        (
            c_str::<65>(),
            proptest::collection::vec(
                (address::<21>(), any::<u32>()).prop_map(|(address, code)| Unsuccess {
                    address,
                    error_status_code: CommandStatus::from_code(code),
                }),
                0..4
            ),
            tlvs(),
        )
            .prop_map(
                |(id, unsuccess, tlvs)| Body::SubmitMultiResp(SubmitMultiResp {
                    message_id: Some(id),
                    unsuccess,
                    tlvs,
                })
            ),
        (
            c_str::<6>(),
            address::<65>(),
            address::<65>(),
            any::<[u8; 3]>(),
            tlvs()
        )
            .prop_map(|(service_type, source, destination, b, tlvs)| Body::DataSm(
                DataSm {
                    service_type,
                    source,
                    destination,
                    esm_class: EsmClass(b[0]),
                    registered_delivery: RegisteredDelivery(b[1]),
                    data_coding: DataCoding(b[2]),
                    tlvs,
                }
            )),
        (c_str::<65>(), address::<21>())
            .prop_map(|(message_id, source)| Body::QuerySm(QuerySm { message_id, source })),
        (c_str::<65>(), time(), any::<[u8; 2]>()).prop_map(|(message_id, final_date, b)| {
            Body::QuerySmResp(QuerySmResp {
                message_id,
                final_date,
                message_state: MessageState(b[0]),
                error_code: b[1],
            })
        }),
        (
            c_str::<6>(),
            c_str::<65>(),
            address::<21>(),
            address::<21>()
        )
            .prop_map(
                |(service_type, message_id, source, destination)| Body::CancelSm(CancelSm {
                    service_type,
                    message_id,
                    source,
                    destination,
                })
            ),
        (
            c_str::<65>(),
            address::<21>(),
            time(),
            time(),
            any::<[u8; 2]>(),
            short_message()
        )
            .prop_map(|(message_id, source, s, v, b, short_message)| {
                Body::ReplaceSm(ReplaceSm {
                    message_id,
                    source,
                    schedule_delivery_time: s,
                    validity_period: v,
                    registered_delivery: RegisteredDelivery(b[0]),
                    sm_default_msg_id: b[1],
                    short_message,
                    tlvs: Tlvs::new(),
                })
            }),
        (address::<65>(), address::<65>(), tlvs()).prop_map(|(source, esme, tlvs)| {
            Body::AlertNotification(AlertNotification { source, esme, tlvs })
        }),
        Just(Body::EnquireLink),
        Just(Body::EnquireLinkResp),
        Just(Body::Unbind),
        Just(Body::UnbindResp),
        Just(Body::GenericNack),
        Just(Body::CancelSmResp),
        Just(Body::ReplaceSmResp),
        (0x0000_0200u32..0x0000_0300, octets(64))
            .prop_map(|(command_id, body)| Body::Unknown { command_id, body }),
    ]
}

/// An absent id with TLVs is encoded as an empty id, so it decodes as one.
fn normalise(mut r: SmResp) -> SmResp {
    if r.id.is_none() && !r.tlvs.is_empty() {
        r.id = Some(COctetString::empty());
    }
    r
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_pdu_round_trips(seq in any::<u32>(), status in any::<u32>(), body in body()) {
        let pdu = Pdu {
            sequence_number: seq,
            command_status: CommandStatus::from_code(status),
            body,
        };
        let bytes = pdu.to_bytes();
        prop_assert_eq!(bytes.len(), pdu.encoded_len());
        let decoded = Pdu::decode(bytes.clone()).expect("what we encode decodes");
        prop_assert_eq!(&decoded, &pdu);
        prop_assert_eq!(decoded.to_bytes(), bytes);
    }

    #[test]
    fn any_bytes_decode_or_fail_cleanly(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        match Pdu::decode(Bytes::from(data.clone())) {
            Ok(pdu) => prop_assert_eq!(pdu.to_bytes(), Bytes::from(data.clone())),
            Err(e) => { let _ = e.command_status(); }
        }
    }

    /// Random bodies under every known command id: whatever decodes
    /// re-encodes to the same octets; whatever fails has a status.
    #[test]
    fn random_bodies_under_known_ids(
        which in 0..CommandId::ALL_KNOWN.len(),
        seq in any::<u32>(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let id = CommandId::ALL_KNOWN[which];
        let mut frame = Vec::with_capacity(16 + body.len());
        frame.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&id.code().to_be_bytes());
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(&seq.to_be_bytes());
        frame.extend_from_slice(&body);
        let mut buf = BytesMut::from(&frame[..]);
        match SmppCodec::new().decode_frame(&mut buf) {
            Ok(Some(Frame::Pdu(pdu))) => prop_assert_eq!(pdu.to_bytes(), Bytes::from(frame.clone())),
            Ok(Some(Frame::Malformed(m))) => {
                prop_assert_eq!(m.header.sequence_number, seq);
                prop_assert_ne!(m.command_status(), CommandStatus::Ok);
                if let Some(resp) = m.response() {
                    prop_assert_eq!(resp.sequence_number, seq);
                }
            }
            other => prop_assert!(false, "a whole frame was given: {:?}", other),
        }
        prop_assert!(buf.is_empty());
    }

    /// A stream cut into arbitrary chunks yields the same frames as whole.
    #[test]
    fn chunking_does_not_change_frames(
        bodies in proptest::collection::vec(body(), 1..6),
        cuts in proptest::collection::vec(1usize..40, 1..50),
    ) {
        let pdus: Vec<Pdu> = bodies.into_iter().enumerate()
            .map(|(i, body)| Pdu::new(i as u32 + 1, body)).collect();
        let mut stream = BytesMut::new();
        for pdu in &pdus {
            pdu.encode(&mut stream);
        }
        let stream = stream.freeze();
        let codec = SmppCodec::new();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        let mut at = 0;
        let mut cut = cuts.iter().cycle();
        while at < stream.len() {
            let end = (at + cut.next().copied().unwrap_or(1)).min(stream.len());
            buf.extend_from_slice(&stream[at..end]);
            at = end;
            while let Some(frame) = codec.decode_frame(&mut buf).expect("valid stream") {
                got.push(frame);
            }
        }
        let expected: Vec<Frame> = pdus.into_iter().map(Frame::Pdu).collect();
        prop_assert_eq!(got, expected);
    }
}
