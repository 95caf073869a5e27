//! Tern's codec against Rusmpp's, on the same PDUs, in the same run.
//!
//! Each criterion group holds one operation on one PDU with a function per
//! library ("decode/submit_sm" → "tern", "rusmpp"), so the pair prints side
//! by side. Both libraries are driven through `tokio_util`'s `Decoder` and
//! `Encoder` traits, the way a `FramedRead`/`FramedWrite` drives them:
//!
//! - decode: `Decoder::decode` on a `BytesMut` holding exactly one whole PDU
//!   (for Tern that is `SmppCodec::decode_frame`: length check, `split_to`,
//!   `freeze`, body decode). The buffer is built outside the timed section,
//!   already in the shared state a read buffer is in after its first frame
//!   was split off, so neither library pays a one-off promotion the stream
//!   would amortise. Dropping the decoded PDU is inside the timed section;
//!   the read buffer outlives it, as in a stream, so freeing the buffer's
//!   memory is not.
//! - encode: into one `BytesMut` reused across iterations and cleared each
//!   time, from a borrowed PDU (`Pdu::encode(&self)` for Tern, which is what
//!   `SmppCodec::encode_pdu` calls; `Encoder<&Command>` for Rusmpp), so
//!   neither clones its input.
//!
//! Setup checks that both libraries encode each PDU to the same octets, so
//! the pair measures the same work.
//!
//! Run: `cargo bench -p tern-codec --bench codec -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use rusmpp::tlvs::MessageDeliveryRequestTlvValue;
use rusmpp::tokio_codec::CommandCodec;
use rusmpp::types::{COctetString as RStr, OctetString};
use rusmpp::values::{ErrorCodeNetworkType, MessageState, NetworkErrorCode, ServiceType};
use tern_codec::pdu::{Body, DeliverSm, SubmitSm};
use tern_codec::tlv::{NetworkErrorCode as TernNetworkErrorCode, Tlv};
use tern_codec::{
    Address, COctetString, CommandStatus, DataCoding, EsmClass, Npi, Pdu, RegisteredDelivery,
    ShortMessage, SmppCodec, Ton,
};
use tokio_util::codec::{Decoder, Encoder};

/// 100 characters of the GSM 7-bit default alphabet, one octet each.
const TEXT: &[u8] = b"Your Tern verification code is 482915. It expires in 10 minutes. Do not share it with anyone, ever!!";

const RECEIPT: &[u8] = b"id:5f3c2a9e-0001 sub:001 dlvrd:001 submit date:2406121530 \
done date:2406121531 stat:DELIVRD err:000 text:Your Tern verificat";

const MESSAGE_ID: &str = "5f3c2a9e-0001";
const SOURCE: &str = "33612345678";
const DESTINATION: &str = "447700900123";

/// One PDU as both libraries hold it, and its wire form.
struct Case {
    name: &'static str,
    tern: Pdu,
    rusmpp: rusmpp::Command,
    wire: Bytes,
}

fn rstr<const MIN: usize, const MAX: usize>(s: &str) -> RStr<MIN, MAX> {
    s.parse().expect("fits")
}

fn tstr<const MAX: usize>(s: &str) -> COctetString<MAX> {
    COctetString::try_from(s).expect("fits")
}

fn international<const MAX: usize>(digits: &str) -> Address<MAX> {
    Address::new(Ton::INTERNATIONAL, Npi::ISDN, tstr(digits))
}

/// submit_sm: international numbers, registered_delivery 1, 100 GSM
/// characters in short_message, no TLVs.
fn submit_sm() -> Case {
    let tern = Pdu::new(
        0x0102_0304,
        Body::SubmitSm(SubmitSm {
            source: international(SOURCE),
            destination: international(DESTINATION),
            registered_delivery: RegisteredDelivery::ALWAYS,
            data_coding: DataCoding::DEFAULT,
            short_message: ShortMessage::new(Bytes::from_static(TEXT)).expect("fits"),
            ..SubmitSm::default()
        }),
    );
    let rusmpp = rusmpp::Command::new(
        rusmpp::CommandStatus::EsmeRok,
        0x0102_0304,
        rusmpp::pdus::SubmitSm::builder()
            .service_type(ServiceType::null())
            .source_addr_ton(rusmpp::values::Ton::International)
            .source_addr_npi(rusmpp::values::Npi::Isdn)
            .source_addr(rstr(SOURCE))
            .dest_addr_ton(rusmpp::values::Ton::International)
            .dest_addr_npi(rusmpp::values::Npi::Isdn)
            .destination_addr(rstr(DESTINATION))
            // Rusmpp's default esm_class is 0x08, not the specification's 0x00.
            .esm_class(0u8.into())
            .registered_delivery(1u8.into())
            .short_message(OctetString::from_static_slice(TEXT).expect("fits"))
            .build(),
    );
    case("submit_sm", tern, rusmpp)
}

/// deliver_sm receipt: esm_class 0x04, the usual receipt text, and
/// receipted_message_id, message_state, network_error_code.
fn deliver_sm_receipt() -> Case {
    let tern = Pdu::new(
        0x0000_BEEF,
        Body::DeliverSm(DeliverSm {
            source: international(DESTINATION),
            destination: international(SOURCE),
            esm_class: EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(Bytes::from_static(RECEIPT)).expect("fits"),
            tlvs: [
                Tlv::receipted_message_id(MESSAGE_ID.as_bytes()).expect("fits"),
                Tlv::MessageState(tern_codec::MessageState::DELIVERED),
                Tlv::NetworkErrorCode(TernNetworkErrorCode {
                    network_type: TernNetworkErrorCode::GSM,
                    error_code: 0,
                }),
            ]
            .into_iter()
            .collect(),
            ..DeliverSm::default()
        }),
    );
    let rusmpp = rusmpp::Command::new(
        rusmpp::CommandStatus::EsmeRok,
        0x0000_BEEF,
        rusmpp::pdus::DeliverSm::builder()
            .service_type(ServiceType::null())
            .source_addr_ton(rusmpp::values::Ton::International)
            .source_addr_npi(rusmpp::values::Npi::Isdn)
            .source_addr(rstr(DESTINATION))
            .dest_addr_ton(rusmpp::values::Ton::International)
            .dest_addr_npi(rusmpp::values::Npi::Isdn)
            .destination_addr(rstr(SOURCE))
            .esm_class(0x04u8.into())
            .short_message(OctetString::from_static_slice(RECEIPT).expect("fits"))
            .tlvs(vec![
                MessageDeliveryRequestTlvValue::ReceiptedMessageId(rstr(MESSAGE_ID)),
                MessageDeliveryRequestTlvValue::MessageState(MessageState::Delivered),
                MessageDeliveryRequestTlvValue::NetworkErrorCode(NetworkErrorCode::new(
                    ErrorCodeNetworkType::Gsm,
                    0,
                )),
            ])
            .build(),
    );
    case("deliver_sm_receipt", tern, rusmpp)
}

fn enquire_link() -> Case {
    let tern = Pdu::new(0x7FFF_FFFF, Body::EnquireLink);
    let rusmpp = rusmpp::Command::new(
        rusmpp::CommandStatus::EsmeRok,
        0x7FFF_FFFF,
        rusmpp::Pdu::EnquireLink,
    );
    case("enquire_link", tern, rusmpp)
}

/// Checks that both libraries put the same octets on the wire.
fn case(name: &'static str, tern: Pdu, rusmpp: rusmpp::Command) -> Case {
    assert_eq!(tern.command_status, CommandStatus::Ok);
    let wire = tern.to_bytes();
    let mut theirs = BytesMut::new();
    CommandCodec::new()
        .encode(&rusmpp, &mut theirs)
        .expect("rusmpp encodes");
    assert_eq!(
        wire, theirs,
        "{name}: both libraries must encode the same PDU"
    );
    Case {
        name,
        tern,
        rusmpp,
        wire,
    }
}

/// A read buffer holding one whole PDU, in the state a `FramedRead` buffer
/// is in mid-stream: shared (`split_off` promotes it), with the only
/// reference ours.
fn stream_buffer(wire: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(wire.len());
    buf.extend_from_slice(wire);
    drop(buf.split_off(wire.len()));
    buf
}

fn decode(c: &mut Criterion, case: &Case) {
    let mut group = c.benchmark_group(format!("decode/{}", case.name));

    let mut tern = SmppCodec::new();
    // Sanity: what is timed decodes to the PDU we built.
    match tern.decode(&mut stream_buffer(&case.wire)) {
        Ok(Some(tern_codec::Frame::Pdu(pdu))) => assert_eq!(pdu, case.tern),
        other => panic!("tern: {other:?}"),
    }
    group.bench_function("tern", |b| {
        b.iter_batched(
            || stream_buffer(&case.wire),
            |mut buf| {
                drop(black_box(tern.decode(black_box(&mut buf))));
                buf
            },
            BatchSize::SmallInput,
        )
    });

    let mut rusmpp = CommandCodec::new();
    match rusmpp.decode(&mut stream_buffer(&case.wire)) {
        Ok(Some(command)) => assert_eq!(command, case.rusmpp),
        other => panic!("rusmpp: {other:?}"),
    }
    group.bench_function("rusmpp", |b| {
        b.iter_batched(
            || stream_buffer(&case.wire),
            |mut buf| {
                drop(black_box(rusmpp.decode(black_box(&mut buf))));
                buf
            },
            BatchSize::SmallInput,
        )
    });

    group.finish();
}

fn encode(c: &mut Criterion, case: &Case) {
    let mut group = c.benchmark_group(format!("encode/{}", case.name));
    let mut buf = BytesMut::with_capacity(1024);
    let mut rusmpp = CommandCodec::new();

    // Sanity: what is timed writes the PDU's octets.
    case.tern.encode(&mut buf);
    assert_eq!(buf, case.wire, "tern");
    buf.clear();
    rusmpp
        .encode(&case.rusmpp, &mut buf)
        .expect("rusmpp encodes");
    assert_eq!(buf, case.wire, "rusmpp");

    group.bench_function("tern", |b| {
        b.iter(|| {
            buf.clear();
            black_box(&case.tern).encode(&mut buf);
            black_box(&buf);
        })
    });
    group.bench_function("rusmpp", |b| {
        b.iter(|| {
            buf.clear();
            rusmpp
                .encode(black_box(&case.rusmpp), &mut buf)
                .expect("rusmpp encodes");
            black_box(&buf);
        })
    });

    group.finish();
}

fn benches(c: &mut Criterion) {
    for case in [submit_sm(), deliver_sm_receipt(), enquire_link()] {
        decode(c, &case);
        encode(c, &case);
    }
}

criterion_group!(codec, benches);
criterion_main!(codec);
