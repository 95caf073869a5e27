//! Writes the seed corpus: `cargo run --example gen_seeds` (from fuzz/).
//!
//! `seeds/decode_pdu/<name>` holds one PDU each; `seeds/framing/<name>` holds
//! the 5-octet framing prefix (maximum 64 KiB, chunk seed) and then several
//! PDUs back to back. Each PDU is decoded again before it is written, so a
//! seed that stops round-tripping fails here instead of in the fuzzer.

use std::fs;
use std::path::Path;

use bytes::Bytes;
use tern_codec::pdu::{Bind, DataSm, DeliverSm, Destination, SubmitMulti, SubmitSm};
use tern_codec::tlv::{NetworkErrorCode, Tlv, Tlvs};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, DataCoding, EsmClass, InterfaceVersion,
    MessageState, Npi, Pdu, RegisteredDelivery, ShortMessage, TimeString, Ton,
};

fn s<const MAX: usize>(v: &str) -> COctetString<MAX> {
    COctetString::try_from(v).expect("seed field fits")
}

fn addr<const MAX: usize>(ton: Ton, npi: Npi, v: &str) -> Address<MAX> {
    Address::new(ton, npi, s(v))
}

fn seeds() -> Vec<(&'static str, Pdu)> {
    let bind = Body::BindTransceiver(Bind {
        system_id: s("tern"),
        password: s("secret"),
        system_type: s("SMPP"),
        interface_version: InterfaceVersion::V34,
        addr_ton: Ton::UNKNOWN,
        addr_npi: Npi::UNKNOWN,
        address_range: s(""),
    });

    let mut submit_tlvs = Tlvs::new();
    submit_tlvs.push(Tlv::UserMessageReference(0x1234));
    submit_tlvs.push(Tlv::SarMsgRefNum(7));
    submit_tlvs.push(Tlv::SarTotalSegments(2));
    submit_tlvs.push(Tlv::SarSegmentSeqnum(1));
    submit_tlvs.push(Tlv::Other { tag: 0x1401, value: Bytes::from_static(b"ovh\0") });
    let submit = Body::SubmitSm(SubmitSm {
        service_type: s(""),
        source: addr(Ton::ALPHANUMERIC, Npi::UNKNOWN, "Tern"),
        destination: addr(Ton::INTERNATIONAL, Npi::ISDN, "33612345678"),
        esm_class: EsmClass::DEFAULT.with_udhi(true),
        protocol_id: 0,
        priority_flag: Default::default(),
        schedule_delivery_time: TimeString::try_from("260101120000000+").expect("time"),
        validity_period: TimeString::try_from("000001000000000R").expect("time"),
        registered_delivery: RegisteredDelivery(1),
        replace_if_present_flag: 0,
        data_coding: DataCoding(8),
        sm_default_msg_id: 0,
        short_message: ShortMessage::new(&b"\x05\x00\x03\x2a\x02\x01\x00H\x00i"[..]).expect("sm"),
        tlvs: submit_tlvs,
    });

    let receipt_text = b"id:4242 sub:001 dlvrd:001 submit date:2601011200 done date:2601011201 stat:DELIVRD err:000 text:Hi";
    let mut receipt_tlvs = Tlvs::new();
    receipt_tlvs.push(Tlv::receipted_message_id(b"4242").expect("id"));
    receipt_tlvs.push(Tlv::MessageState(MessageState::DELIVERED));
    receipt_tlvs.push(Tlv::NetworkErrorCode(NetworkErrorCode { network_type: 3, error_code: 0 }));
    let receipt = Body::DeliverSm(DeliverSm {
        source: addr(Ton::INTERNATIONAL, Npi::ISDN, "33612345678"),
        destination: addr(Ton::ALPHANUMERIC, Npi::UNKNOWN, "Tern"),
        esm_class: EsmClass(0x04),
        short_message: ShortMessage::new(&receipt_text[..]).expect("sm"),
        tlvs: receipt_tlvs,
        ..Default::default()
    });

    let mut multi_tlvs = Tlvs::new();
    multi_tlvs.push(Tlv::message_payload(Bytes::from(vec![b'x'; 300])).expect("payload"));
    let multi = Body::SubmitMulti(SubmitMulti {
        source: addr(Ton::NATIONAL, Npi::ISDN, "0612345678"),
        destinations: vec![
            Destination::Sme(addr(Ton::INTERNATIONAL, Npi::ISDN, "33600000001")),
            Destination::DistributionList(s("friends")),
            Destination::Sme(addr(Ton::INTERNATIONAL, Npi::ISDN, "33600000002")),
        ],
        registered_delivery: RegisteredDelivery(1),
        tlvs: multi_tlvs,
        ..Default::default()
    });

    let mut data_tlvs = Tlvs::new();
    data_tlvs.push(Tlv::message_payload(Bytes::from_static(b"hello from data_sm")).expect("payload"));
    data_tlvs.push(Tlv::SourcePort(9200));
    data_tlvs.push(Tlv::DestinationPort(2948));
    let data_sm = Body::DataSm(DataSm {
        service_type: s("WAP"),
        source: addr(Ton::INTERNATIONAL, Npi::ISDN, "33612345678"),
        destination: addr(Ton::NETWORK_SPECIFIC, Npi::UNKNOWN, "36665"),
        esm_class: EsmClass::DEFAULT,
        registered_delivery: RegisteredDelivery(0),
        data_coding: DataCoding(4),
        tlvs: data_tlvs,
    });

    vec![
        ("bind_transceiver", Pdu::new(1, bind)),
        ("submit_sm_tlvs", Pdu::new(2, submit)),
        ("deliver_sm_receipt", Pdu::new(3, receipt)),
        ("submit_multi", Pdu::new(4, multi)),
        ("enquire_link", Pdu::new(5, Body::EnquireLink)),
        ("data_sm", Pdu::new(6, data_sm)),
        (
            "submit_sm_resp_error",
            Pdu::error_response(tern_codec::CommandId::SubmitSm, 7, CommandStatus::from_code(0x58))
                .expect("submit_sm is answered"),
        ),
        ("unknown_command", Pdu::new(8, Body::Unknown { command_id: 0x0000_0111, body: Bytes::from_static(b"\x01\x02") })),
    ]
}

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let pdus = seeds();
    let dir = root.join("decode_pdu");
    fs::create_dir_all(&dir)?;
    let mut all = Vec::new();
    for (name, pdu) in &pdus {
        let wire = pdu.to_bytes();
        assert_eq!(Pdu::decode(wire.clone()).as_ref(), Ok(pdu), "{name} does not round-trip");
        fs::write(dir.join(name), &wire)?;
        all.push(wire);
    }
    // Framing seeds: max 0x010000 (64 KiB), chunk seed, then PDUs in a row.
    let dir = root.join("framing");
    fs::create_dir_all(&dir)?;
    let stream = |prefix: [u8; 5], parts: &[usize]| {
        let mut v = prefix.to_vec();
        for &i in parts {
            v.extend_from_slice(&all[i]);
        }
        v
    };
    fs::write(dir.join("all_small_chunks"), stream([1, 0, 0, 0x01, 0x37], &[0, 1, 2, 3, 4, 5]))?;
    fs::write(dir.join("all_big_chunks"), stream([1, 0, 0, 0x03, 0x99], &[0, 1, 2, 3, 4, 5, 6, 7]))?;
    fs::write(dir.join("one_octet_chunks"), stream([1, 0, 0, 0x00, 0x01], &[4, 1, 4]))?;
    // A tight maximum (200): the submit_multi with its 300-octet payload is TooLong.
    fs::write(dir.join("tight_max"), stream([0, 0, 200, 0x02, 0x42], &[0, 4, 3]))?;
    // A malformed submit_sm (short_message truncated) followed by enquire_link.
    let mut bad = all[1][..40].to_vec();
    bad[..4].copy_from_slice(&40u32.to_be_bytes());
    let mut malformed = vec![1, 0, 0, 0x02, 0x10];
    malformed.extend_from_slice(&bad);
    malformed.extend_from_slice(&all[4]);
    fs::write(dir.join("malformed_then_enquire_link"), malformed)?;
    println!("wrote {} + 5 seeds under {}", pdus.len(), root.display());
    Ok(())
}
