//! Interoperability with Rusmpp, an independent SMPP implementation.
//!
//! For every operation both crates know, each test states the field values
//! once (plain numbers and strings, spec tag numbers written out here), then:
//!
//! 1. builds the PDU with Rusmpp, encodes it with Rusmpp's codec, decodes the
//!    octets with [`tern_codec::Pdu::decode`] and checks every field against
//!    the stated values;
//! 2. builds the same PDU with Tern, encodes it with [`Pdu::to_bytes`],
//!    decodes it with Rusmpp and checks every field against the same values;
//! 3. compares the two encodings octet for octet, or, where the crates
//!    legitimately differ, asserts the exact difference and says why.
//!
//! A round trip through one crate can pass with a shared mistake; a PDU that
//! two independent implementations agree on octet for octet cannot. Known
//! differences (SMPP 3.4 against SMPP 5.0 limits, bodies omitted from error
//! responses) are pinned by their own tests at the end, so a change on either
//! side shows up here.
//!
//! The last test carries PDUs both ways over a loopback TCP connection,
//! Rusmpp's `CommandCodec` on one end and Tern's `SmppCodec` on the other.

#![cfg(feature = "tokio-codec")]

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use rusmpp as r;
use tern_codec as t;
use tokio_util::codec::{Decoder, Encoder, FramedRead, FramedWrite};

use r::tlvs::{
    MessageDeliveryRequestTlvValue as RDeliveryReq,
    MessageDeliveryResponseTlvValue as RDeliveryResp,
    MessageSubmissionRequestTlvValue as RSubmissionReq,
    MessageSubmissionResponseTlvValue as RSubmissionResp, TlvTag, TlvValue,
};
use r::types::{AnyOctetString, COctetString as RStr, EmptyOrFullCOctetString, OctetString};
use r::values::{
    DestAddress, DistributionListName, ErrorCodeNetworkType, MessagePayload, ServiceType,
    SmeAddress, UnsuccessSme, UserMessageReference,
};
use t::pdu::{
    AlertNotification, Bind, BindResp, CancelSm, DataSm, DeliverSm, Destination, Outbind, QuerySm,
    QuerySmResp, ReplaceSm, SmResp, SubmitMulti, SubmitMultiResp, SubmitSm, Unsuccess,
};
use t::{Body, Frame, Pdu, SmppCodec};

// ---------------------------------------------------------------------------
// Command ids and statuses from SMPP 3.4 §5.1.2 and §5.1.3, written out so
// that neither crate's tables are the reference.

const BIND_RECEIVER: u32 = 0x0000_0001;
const BIND_TRANSMITTER: u32 = 0x0000_0002;
const QUERY_SM: u32 = 0x0000_0003;
const SUBMIT_SM: u32 = 0x0000_0004;
const DELIVER_SM: u32 = 0x0000_0005;
const UNBIND: u32 = 0x0000_0006;
const REPLACE_SM: u32 = 0x0000_0007;
const CANCEL_SM: u32 = 0x0000_0008;
const BIND_TRANSCEIVER: u32 = 0x0000_0009;
const OUTBIND: u32 = 0x0000_000B;
const ENQUIRE_LINK: u32 = 0x0000_0015;
const SUBMIT_MULTI: u32 = 0x0000_0021;
const ALERT_NOTIFICATION: u32 = 0x0000_0102;
const DATA_SM: u32 = 0x0000_0103;
const RESP: u32 = 0x8000_0000;
const GENERIC_NACK: u32 = 0x8000_0000;
/// SMPP 5.0 query_broadcast_sm: Rusmpp knows it, Tern carries it as unknown.
const QUERY_BROADCAST_SM: u32 = 0x0000_0112;
/// In the range SMPP 3.4 §5.1.2 reserves for SMSC vendors.
const VENDOR_COMMAND: u32 = 0x0001_0200;

const ESME_ROK: u32 = 0x00;
const ESME_RINVCMDID: u32 = 0x03;
const ESME_RINVPASWD: u32 = 0x0E;
const ESME_RINVDSTADR: u32 = 0x0B;
const ESME_RSUBMITFAIL: u32 = 0x45;
const ESME_RTHROTTLED: u32 = 0x58;
const ESME_RDELIVERYFAILURE: u32 = 0xFE;
/// Vendor range 0x400–0x4FF (OVH's "bind throttled").
const VENDOR_STATUS: u32 = 0x0000_0400;

// ---------------------------------------------------------------------------
// Optional parameters as the tests state them.

/// A TLV, with its tag taken from SMPP 3.4 §5.3.2 (not from either crate).
#[derive(Debug, Clone, Copy)]
enum P {
    UserMessageReference(u16),
    SourcePort(u16),
    DestinationPort(u16),
    SarMsgRefNum(u16),
    SarTotalSegments(u8),
    SarSegmentSeqnum(u8),
    MessagePayload(&'static [u8]),
    ReceiptedMessageId(&'static str),
    MessageState(u8),
    NetworkErrorCode(u8, u16),
    ScInterfaceVersion(u8),
    MsAvailabilityStatus(u8),
    AdditionalStatusInfoText(&'static str),
    DeliveryFailureReason(u8),
    /// A tag neither crate types, e.g. OVH's 0x1401.
    Vendor(u16, &'static [u8]),
}

impl P {
    fn tag(self) -> u16 {
        match self {
            P::UserMessageReference(_) => 0x0204,
            P::SourcePort(_) => 0x020A,
            P::DestinationPort(_) => 0x020B,
            P::SarMsgRefNum(_) => 0x020C,
            P::SarTotalSegments(_) => 0x020E,
            P::SarSegmentSeqnum(_) => 0x020F,
            P::MessagePayload(_) => 0x0424,
            P::ReceiptedMessageId(_) => 0x001E,
            P::MessageState(_) => 0x0427,
            P::NetworkErrorCode(..) => 0x0423,
            P::ScInterfaceVersion(_) => 0x0210,
            P::MsAvailabilityStatus(_) => 0x0422,
            P::AdditionalStatusInfoText(_) => 0x001D,
            P::DeliveryFailureReason(_) => 0x0425,
            P::Vendor(tag, _) => tag,
        }
    }

    /// The value as Tern types it.
    fn tern(self) -> t::Tlv {
        use t::Tlv as T;
        match self {
            P::UserMessageReference(v) => T::UserMessageReference(v),
            P::SourcePort(v) => T::SourcePort(v),
            P::DestinationPort(v) => T::DestinationPort(v),
            P::SarMsgRefNum(v) => T::SarMsgRefNum(v),
            P::SarTotalSegments(v) => T::SarTotalSegments(v),
            P::SarSegmentSeqnum(v) => T::SarSegmentSeqnum(v),
            P::MessagePayload(v) => T::message_payload(Bytes::from_static(v)).expect("fits u16"),
            P::ReceiptedMessageId(v) => T::receipted_message_id(v.as_bytes()).expect("valid id"),
            P::MessageState(v) => T::MessageState(t::MessageState(v)),
            P::NetworkErrorCode(network_type, error_code) => {
                T::NetworkErrorCode(t::tlv::NetworkErrorCode {
                    network_type,
                    error_code,
                })
            }
            P::ScInterfaceVersion(v) => T::ScInterfaceVersion(v),
            P::MsAvailabilityStatus(v) => T::MsAvailabilityStatus(v),
            // A C-octet string on the wire: the NUL is part of the value.
            P::AdditionalStatusInfoText(v) => {
                T::AdditionalStatusInfoText(Bytes::from([v.as_bytes(), b"\0"].concat()))
            }
            P::DeliveryFailureReason(v) => T::DeliveryFailureReason(v),
            P::Vendor(tag, value) => T::Other {
                tag,
                value: Bytes::from_static(value),
            },
        }
    }

    /// The value as Rusmpp decodes it (its context-free `TlvValue`).
    fn rusmpp(self) -> TlvValue {
        match self {
            P::UserMessageReference(v) => {
                TlvValue::UserMessageReference(UserMessageReference::new(v))
            }
            P::SourcePort(v) => TlvValue::SourcePort(v),
            P::DestinationPort(v) => TlvValue::DestPort(v),
            P::SarMsgRefNum(v) => TlvValue::SarMsgRefNum(v),
            P::SarTotalSegments(v) => TlvValue::SarTotalSegments(v),
            P::SarSegmentSeqnum(v) => TlvValue::SarSegmentSeqnum(v),
            P::MessagePayload(v) => TlvValue::MessagePayload(payload(v)),
            P::ReceiptedMessageId(v) => TlvValue::ReceiptedMessageId(rstr(v)),
            P::MessageState(v) => TlvValue::MessageState(v.into()),
            P::NetworkErrorCode(network_type, error_code) => {
                TlvValue::NetworkErrorCode(r::values::NetworkErrorCode::new(
                    ErrorCodeNetworkType::from(network_type),
                    error_code,
                ))
            }
            P::ScInterfaceVersion(v) => TlvValue::ScInterfaceVersion(v.into()),
            P::MsAvailabilityStatus(v) => TlvValue::MsAvailabilityStatus(v.into()),
            P::AdditionalStatusInfoText(v) => TlvValue::AdditionalStatusInfoText(rstr(v)),
            P::DeliveryFailureReason(v) => TlvValue::DeliveryFailureReason(v.into()),
            P::Vendor(tag, value) => TlvValue::Other {
                tag: TlvTag::from(tag),
                value: AnyOctetString::from_static_slice(value),
            },
        }
    }

    /// For Rusmpp's submit_sm, submit_multi and data_sm builders.
    fn submission_request(self) -> RSubmissionReq {
        match self {
            P::UserMessageReference(v) => {
                RSubmissionReq::UserMessageReference(UserMessageReference::new(v))
            }
            P::SourcePort(v) => RSubmissionReq::SourcePort(v),
            P::DestinationPort(v) => RSubmissionReq::DestPort(v),
            P::SarMsgRefNum(v) => RSubmissionReq::SarMsgRefNum(v),
            P::SarTotalSegments(v) => RSubmissionReq::SarTotalSegments(v),
            P::SarSegmentSeqnum(v) => RSubmissionReq::SarSegmentSeqnum(v),
            P::MessagePayload(v) => RSubmissionReq::MessagePayload(payload(v)),
            P::Vendor(tag, value) => RSubmissionReq::Other {
                tag: TlvTag::from(tag),
                value: AnyOctetString::from_static_slice(value),
            },
            other => panic!("{other:?} is not a submission TLV in Rusmpp"),
        }
    }

    /// For Rusmpp's deliver_sm builder.
    fn delivery_request(self) -> RDeliveryReq {
        match self {
            P::UserMessageReference(v) => {
                RDeliveryReq::UserMessageReference(UserMessageReference::new(v))
            }
            P::SourcePort(v) => RDeliveryReq::SourcePort(v),
            P::DestinationPort(v) => RDeliveryReq::DestPort(v),
            P::SarMsgRefNum(v) => RDeliveryReq::SarMsgRefNum(v),
            P::SarTotalSegments(v) => RDeliveryReq::SarTotalSegments(v),
            P::SarSegmentSeqnum(v) => RDeliveryReq::SarSegmentSeqnum(v),
            P::MessagePayload(v) => RDeliveryReq::MessagePayload(payload(v)),
            P::ReceiptedMessageId(v) => RDeliveryReq::ReceiptedMessageId(rstr(v)),
            P::MessageState(v) => RDeliveryReq::MessageState(v.into()),
            P::NetworkErrorCode(network_type, error_code) => {
                RDeliveryReq::NetworkErrorCode(r::values::NetworkErrorCode::new(
                    ErrorCodeNetworkType::from(network_type),
                    error_code,
                ))
            }
            P::Vendor(tag, value) => RDeliveryReq::Other {
                tag: TlvTag::from(tag),
                value: AnyOctetString::from_static_slice(value),
            },
            other => panic!("{other:?} is not a delivery TLV in Rusmpp"),
        }
    }

    /// For Rusmpp's deliver_sm_resp and data_sm_resp builders.
    fn delivery_response(self) -> RDeliveryResp {
        match self {
            P::AdditionalStatusInfoText(v) => RDeliveryResp::AdditionalStatusInfoText(rstr(v)),
            P::DeliveryFailureReason(v) => RDeliveryResp::DeliveryFailureReason(v.into()),
            P::NetworkErrorCode(network_type, error_code) => {
                RDeliveryResp::NetworkErrorCode(r::values::NetworkErrorCode::new(
                    ErrorCodeNetworkType::from(network_type),
                    error_code,
                ))
            }
            P::Vendor(tag, value) => RDeliveryResp::Other {
                tag: TlvTag::from(tag),
                value: AnyOctetString::from_static_slice(value),
            },
            other => panic!("{other:?} is not a delivery response TLV in Rusmpp"),
        }
    }

    /// For Rusmpp's submit_sm_resp and submit_multi_resp builders.
    fn submission_response(self) -> RSubmissionResp {
        match self {
            P::AdditionalStatusInfoText(v) => RSubmissionResp::AdditionalStatusInfoText(rstr(v)),
            P::DeliveryFailureReason(v) => RSubmissionResp::DeliveryFailureReason(v.into()),
            P::NetworkErrorCode(network_type, error_code) => {
                RSubmissionResp::NetworkErrorCode(r::values::NetworkErrorCode::new(
                    ErrorCodeNetworkType::from(network_type),
                    error_code,
                ))
            }
            P::Vendor(tag, value) => RSubmissionResp::Other {
                tag: TlvTag::from(tag),
                value: AnyOctetString::from_static_slice(value),
            },
            other => panic!("{other:?} is not a submission response TLV in Rusmpp"),
        }
    }
}

/// Tern decoded exactly these TLVs, in this order.
fn assert_tern_tlvs(got: &t::Tlvs, want: &[P]) {
    let tags: Vec<u16> = got.iter().map(t::Tlv::tag).collect();
    let want_tags: Vec<u16> = want.iter().map(|p| p.tag()).collect();
    assert_eq!(tags, want_tags, "tern: TLV tags");
    for (got, want) in got.iter().zip(want) {
        assert_eq!(got, &want.tern(), "tern: TLV 0x{:04X}", want.tag());
    }
}

/// Rusmpp decoded exactly these TLVs, in this order.
fn assert_rusmpp_tlvs(got: &[r::tlvs::Tlv], want: &[P]) {
    let tags: Vec<u16> = got.iter().map(|tlv| u16::from(tlv.tag())).collect();
    let want_tags: Vec<u16> = want.iter().map(|p| p.tag()).collect();
    assert_eq!(tags, want_tags, "rusmpp: TLV tags");
    for (got, want) in got.iter().zip(want) {
        assert_eq!(
            got.value(),
            Some(&want.rusmpp()),
            "rusmpp: TLV 0x{:04X}",
            want.tag()
        );
    }
}

// ---------------------------------------------------------------------------
// Small builders and the two codecs.

fn rstr<const MIN: usize, const MAX: usize>(s: &str) -> RStr<MIN, MAX> {
    s.parse().expect("test string fits the Rusmpp field")
}

fn rtime(s: &str) -> EmptyOrFullCOctetString<17> {
    s.parse().expect("test time is empty or 16 characters")
}

fn roctets(octets: &[u8]) -> OctetString<0, 255> {
    OctetString::from_slice(octets).expect("test short_message fits")
}

fn payload(octets: &'static [u8]) -> MessagePayload {
    MessagePayload::new(AnyOctetString::from_static_slice(octets))
}

fn tstr<const MAX: usize>(s: &str) -> t::COctetString<MAX> {
    t::COctetString::try_from(s).expect("test string fits the Tern field")
}

fn ttime(s: &str) -> t::TimeString {
    t::TimeString::try_from(s).expect("test time is empty or 16 characters")
}

fn taddr<const MAX: usize>((ton, npi, addr): Addr) -> t::Address<MAX> {
    t::Address::new(t::Ton(ton), t::Npi(npi), tstr(addr))
}

fn tshort(octets: &'static [u8]) -> t::ShortMessage {
    t::ShortMessage::new(Bytes::from_static(octets)).expect("test short_message fits")
}

fn ttlvs(tlvs: &[P]) -> t::Tlvs {
    tlvs.iter().map(|p| p.tern()).collect()
}

/// TON, NPI, digits.
type Addr = (u8, u8, &'static str);

/// Encodes with Rusmpp's tokio codec, as a Rusmpp peer would send it.
fn rusmpp_encode(command: &r::Command) -> Bytes {
    let mut dst = BytesMut::new();
    r::tokio_codec::CommandCodec::new()
        .encode(command, &mut dst)
        .expect("rusmpp encodes");
    dst.freeze()
}

/// Decodes one whole frame with Rusmpp's tokio codec and checks it used every octet.
fn rusmpp_decode(wire: &[u8]) -> r::Command {
    let mut src = BytesMut::from(wire);
    let command = r::tokio_codec::CommandCodec::new()
        .decode(&mut src)
        .expect("rusmpp decodes")
        .expect("a whole frame");
    assert!(src.is_empty(), "rusmpp left {} octets unread", src.len());
    command
}

fn tern_decode(wire: Bytes) -> Pdu {
    Pdu::decode(wire).expect("tern decodes")
}

fn assert_tern_header(pdu: &Pdu, command_id: u32, status: u32, sequence: u32) {
    assert_eq!(pdu.command_id().code(), command_id, "tern: command_id");
    assert_eq!(pdu.command_status.code(), status, "tern: command_status");
    assert_eq!(pdu.sequence_number, sequence, "tern: sequence_number");
}

fn assert_rusmpp_header(command: &r::Command, command_id: u32, status: u32, sequence: u32) {
    assert_eq!(u32::from(command.id()), command_id, "rusmpp: command_id");
    assert_eq!(
        u32::from(command.status()),
        status,
        "rusmpp: command_status"
    );
    assert_eq!(
        command.sequence_number(),
        sequence,
        "rusmpp: sequence_number"
    );
}

fn rcommand(status: u32, sequence: u32, pdu: impl Into<r::Pdu>) -> r::Command {
    r::Command::new(r::CommandStatus::from(status), sequence, pdu)
}

fn tpdu(status: u32, sequence: u32, body: Body) -> Pdu {
    Pdu {
        sequence_number: sequence,
        command_status: t::CommandStatus::from_code(status),
        body,
    }
}

/// The body of a Tern PDU, or a panic naming what came instead.
macro_rules! tern_body {
    ($pdu:expr, $variant:ident) => {
        match &$pdu.body {
            Body::$variant(body) => body,
            other => panic!(
                concat!("tern: expected ", stringify!($variant), ", got {:?}"),
                other
            ),
        }
    };
}

/// The body of a Rusmpp command, or a panic naming what came instead.
macro_rules! rusmpp_body {
    ($command:expr, $variant:ident) => {
        match $command.pdu() {
            Some(r::Pdu::$variant(body)) => body,
            other => panic!(
                concat!("rusmpp: expected ", stringify!($variant), ", got {:?}"),
                other
            ),
        }
    };
}

// ---------------------------------------------------------------------------
// Session management: bind, outbind, unbind, enquire_link, generic_nack.

struct BindFields {
    system_id: &'static str,
    password: &'static str,
    system_type: &'static str,
    interface_version: u8,
    addr: Addr,
}

macro_rules! bind_test {
    ($name:ident, $rtype:ident, $variant:ident, $id:expr, $fields:expr) => {
        #[test]
        fn $name() {
            let f: BindFields = $fields;
            let sequence = 0x0000_0101;

            let rusmpp_pdu = r::pdus::$rtype::builder()
                .system_id(rstr(f.system_id))
                .password(rstr(f.password))
                .system_type(rstr(f.system_type))
                .interface_version(f.interface_version.into())
                .addr_ton(f.addr.0.into())
                .addr_npi(f.addr.1.into())
                .address_range(rstr(f.addr.2))
                .build();
            let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

            // Rusmpp → Tern.
            let pdu = tern_decode(rusmpp_wire.clone());
            assert_tern_header(&pdu, $id, ESME_ROK, sequence);
            let bind = tern_body!(pdu, $variant);
            assert_eq!(bind.system_id, f.system_id);
            assert_eq!(bind.password, f.password);
            assert_eq!(bind.system_type, f.system_type);
            assert_eq!(bind.interface_version.0, f.interface_version);
            assert_eq!(bind.addr_ton.0, f.addr.0);
            assert_eq!(bind.addr_npi.0, f.addr.1);
            assert_eq!(bind.address_range, f.addr.2);

            // Tern → Rusmpp.
            let tern_wire = tpdu(
                ESME_ROK,
                sequence,
                Body::$variant(Bind {
                    system_id: tstr(f.system_id),
                    password: tstr(f.password),
                    system_type: tstr(f.system_type),
                    interface_version: t::InterfaceVersion(f.interface_version),
                    addr_ton: t::Ton(f.addr.0),
                    addr_npi: t::Npi(f.addr.1),
                    address_range: tstr(f.addr.2),
                }),
            )
            .to_bytes();
            let command = rusmpp_decode(&tern_wire);
            assert_rusmpp_header(&command, $id, ESME_ROK, sequence);
            let bind = rusmpp_body!(command, $variant);
            assert_eq!(bind.system_id.as_str(), f.system_id);
            assert_eq!(bind.password.as_str(), f.password);
            assert_eq!(bind.system_type.as_str(), f.system_type);
            assert_eq!(u8::from(bind.interface_version), f.interface_version);
            assert_eq!(u8::from(bind.addr_ton), f.addr.0);
            assert_eq!(u8::from(bind.addr_npi), f.addr.1);
            assert_eq!(bind.address_range.as_str(), f.addr.2);

            assert_eq!(tern_wire, rusmpp_wire);
        }
    };
}

bind_test!(
    bind_transmitter,
    BindTransmitter,
    BindTransmitter,
    BIND_TRANSMITTER,
    BindFields {
        system_id: "tern-eu-1",
        password: "s3cr3t!",
        system_type: "NSMS",
        interface_version: 0x34,
        addr: (0, 0, ""),
    }
);

bind_test!(
    bind_receiver,
    BindReceiver,
    BindReceiver,
    BIND_RECEIVER,
    BindFields {
        system_id: "tern-mo",
        password: "12345678",
        system_type: "VMA",
        interface_version: 0x34,
        addr: (1, 1, "^33[67]"),
    }
);

bind_test!(
    bind_transceiver,
    BindTransceiver,
    BindTransceiver,
    BIND_TRANSCEIVER,
    BindFields {
        system_id: "123456789012345",
        password: "pw",
        system_type: "",
        interface_version: 0x50,
        addr: (2, 8, "0612"),
    }
);

macro_rules! bind_resp_test {
    ($name:ident, $rtype:ident, $variant:ident, $id:expr, $system_id:expr, $version:expr) => {
        #[test]
        fn $name() {
            let system_id: &str = $system_id;
            let version: u8 = $version;
            let tlvs = [P::ScInterfaceVersion(version)];
            let sequence = 0x0000_0102;

            let rusmpp_pdu = r::pdus::$rtype::builder()
                .system_id(rstr(system_id))
                .sc_interface_version(Some(version.into()))
                .build();
            let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

            let pdu = tern_decode(rusmpp_wire.clone());
            assert_tern_header(&pdu, $id | RESP, ESME_ROK, sequence);
            let resp = tern_body!(pdu, $variant);
            assert_eq!(resp.id.as_ref().expect("system_id present"), system_id);
            assert_eq!(resp.tlvs.sc_interface_version(), Some(&version));
            assert_tern_tlvs(&resp.tlvs, &tlvs);

            let tern_wire = tpdu(
                ESME_ROK,
                sequence,
                Body::$variant(BindResp {
                    id: Some(tstr(system_id)),
                    tlvs: ttlvs(&tlvs),
                }),
            )
            .to_bytes();
            let command = rusmpp_decode(&tern_wire);
            assert_rusmpp_header(&command, $id | RESP, ESME_ROK, sequence);
            let resp = rusmpp_body!(command, $variant);
            assert_eq!(resp.system_id.as_str(), system_id);
            assert_eq!(resp.sc_interface_version().map(u8::from), Some(version));

            assert_eq!(tern_wire, rusmpp_wire);
        }
    };
}

bind_resp_test!(
    bind_transmitter_resp,
    BindTransmitterResp,
    BindTransmitterResp,
    BIND_TRANSMITTER,
    "SMSC-EU1",
    0x34
);
bind_resp_test!(
    bind_receiver_resp,
    BindReceiverResp,
    BindReceiverResp,
    BIND_RECEIVER,
    "OVH",
    0x34
);
bind_resp_test!(
    bind_transceiver_resp,
    BindTransceiverResp,
    BindTransceiverResp,
    BIND_TRANSCEIVER,
    "smsc.example",
    0x50
);

#[test]
fn outbind() {
    let (system_id, password, sequence) = ("SMSC-EU1", "0utb1nd", 0x0000_0103);

    let rusmpp_pdu = r::pdus::Outbind::builder()
        .system_id(rstr(system_id))
        .password(rstr(password))
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, OUTBIND, ESME_ROK, sequence);
    let outbind = tern_body!(pdu, Outbind);
    assert_eq!(outbind.system_id, system_id);
    assert_eq!(outbind.password, password);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::Outbind(Outbind {
            system_id: tstr(system_id),
            password: tstr(password),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, OUTBIND, ESME_ROK, sequence);
    let outbind = rusmpp_body!(command, Outbind);
    assert_eq!(outbind.system_id.as_str(), system_id);
    assert_eq!(outbind.password.as_str(), password);

    assert_eq!(tern_wire, rusmpp_wire);
}

/// unbind(+resp), enquire_link(+resp), generic_nack, cancel_sm_resp and
/// replace_sm_resp: a header and no body (SMPP 3.4 §4.2, §4.3, §4.9.2,
/// §4.10.2, §4.11). Statuses and sequence numbers differ per case so a
/// mixed-up header field cannot pass.
#[test]
fn bodiless_operations() {
    let cases: [(u32, u32, u32, Body, r::Pdu); 7] = [
        (UNBIND, ESME_ROK, 7, Body::Unbind, r::Pdu::Unbind),
        (
            UNBIND | RESP,
            ESME_ROK,
            7,
            Body::UnbindResp,
            r::Pdu::UnbindResp,
        ),
        (
            ENQUIRE_LINK,
            ESME_ROK,
            0x7FFF_FFFF,
            Body::EnquireLink,
            r::Pdu::EnquireLink,
        ),
        (
            ENQUIRE_LINK | RESP,
            ESME_ROK,
            0x7FFF_FFFF,
            Body::EnquireLinkResp,
            r::Pdu::EnquireLinkResp,
        ),
        (
            GENERIC_NACK,
            ESME_RINVCMDID,
            42,
            Body::GenericNack,
            r::Pdu::GenericNack,
        ),
        (
            CANCEL_SM | RESP,
            ESME_ROK,
            43,
            Body::CancelSmResp,
            r::Pdu::CancelSmResp,
        ),
        (
            REPLACE_SM | RESP,
            ESME_RTHROTTLED,
            44,
            Body::ReplaceSmResp,
            r::Pdu::ReplaceSmResp,
        ),
    ];
    for (id, status, sequence, tern_body, rusmpp_pdu) in cases {
        let rusmpp_wire = rusmpp_encode(&rcommand(status, sequence, rusmpp_pdu.clone()));
        assert_eq!(rusmpp_wire.len(), 16, "rusmpp: 0x{id:08X} is a bare header");

        let pdu = tern_decode(rusmpp_wire.clone());
        assert_tern_header(&pdu, id, status, sequence);
        assert_eq!(pdu.body, tern_body);

        let tern_wire = tpdu(status, sequence, tern_body).to_bytes();
        let command = rusmpp_decode(&tern_wire);
        assert_rusmpp_header(&command, id, status, sequence);
        assert_eq!(command.pdu(), Some(&rusmpp_pdu));

        assert_eq!(tern_wire, rusmpp_wire, "0x{id:08X}");
    }
}

// ---------------------------------------------------------------------------
// submit_sm and deliver_sm (SMPP 3.4 §4.4.1, §4.6.1): one layout.

struct SmFields {
    service_type: &'static str,
    source: Addr,
    destination: Addr,
    esm_class: u8,
    protocol_id: u8,
    priority_flag: u8,
    schedule_delivery_time: &'static str,
    validity_period: &'static str,
    registered_delivery: u8,
    replace_if_present_flag: u8,
    data_coding: u8,
    sm_default_msg_id: u8,
    short_message: &'static [u8],
    tlvs: &'static [P],
}

fn tern_sm(f: &SmFields) -> SubmitSm {
    SubmitSm {
        service_type: tstr(f.service_type),
        source: taddr(f.source),
        destination: taddr(f.destination),
        esm_class: t::EsmClass(f.esm_class),
        protocol_id: f.protocol_id,
        priority_flag: t::PriorityFlag(f.priority_flag),
        schedule_delivery_time: ttime(f.schedule_delivery_time),
        validity_period: ttime(f.validity_period),
        registered_delivery: t::RegisteredDelivery(f.registered_delivery),
        replace_if_present_flag: f.replace_if_present_flag,
        data_coding: t::DataCoding(f.data_coding),
        sm_default_msg_id: f.sm_default_msg_id,
        short_message: tshort(f.short_message),
        tlvs: ttlvs(f.tlvs),
    }
}

fn assert_tern_address<const MAX: usize>(got: &t::Address<MAX>, (ton, npi, addr): Addr) {
    assert_eq!(
        (got.ton.0, got.npi.0),
        (ton, npi),
        "tern: TON/NPI of {addr}"
    );
    assert_eq!(got.addr, addr);
}

fn assert_tern_sm(got: &SubmitSm, f: &SmFields) {
    assert_eq!(got.service_type, f.service_type);
    assert_tern_address(&got.source, f.source);
    assert_tern_address(&got.destination, f.destination);
    assert_eq!(got.esm_class.0, f.esm_class);
    assert_eq!(got.protocol_id, f.protocol_id);
    assert_eq!(got.priority_flag.0, f.priority_flag);
    assert_eq!(
        got.schedule_delivery_time.as_bytes(),
        f.schedule_delivery_time.as_bytes()
    );
    assert_eq!(got.validity_period.as_bytes(), f.validity_period.as_bytes());
    assert_eq!(got.registered_delivery.0, f.registered_delivery);
    assert_eq!(got.replace_if_present_flag, f.replace_if_present_flag);
    assert_eq!(got.data_coding.0, f.data_coding);
    assert_eq!(got.sm_default_msg_id, f.sm_default_msg_id);
    assert_eq!(got.short_message.as_bytes(), f.short_message);
    assert_tern_tlvs(&got.tlvs, f.tlvs);
}

/// Rusmpp's SubmitSm and DeliverSm have the same builder and fields.
macro_rules! rusmpp_sm {
    ($rtype:ident, $f:expr, $tlv:ident) => {{
        let f: &SmFields = $f;
        r::pdus::$rtype::builder()
            .service_type(ServiceType::new(rstr(f.service_type)))
            .source_addr_ton(f.source.0.into())
            .source_addr_npi(f.source.1.into())
            .source_addr(rstr(f.source.2))
            .dest_addr_ton(f.destination.0.into())
            .dest_addr_npi(f.destination.1.into())
            .destination_addr(rstr(f.destination.2))
            .esm_class(f.esm_class.into())
            .protocol_id(f.protocol_id)
            .priority_flag(f.priority_flag.into())
            .schedule_delivery_time(rtime(f.schedule_delivery_time))
            .validity_period(rtime(f.validity_period))
            .registered_delivery(f.registered_delivery.into())
            .replace_if_present_flag(f.replace_if_present_flag.into())
            .data_coding(f.data_coding.into())
            .sm_default_msg_id(f.sm_default_msg_id)
            .short_message(roctets(f.short_message))
            .tlvs(f.tlvs.iter().map(|p| p.$tlv()).collect())
            .build()
    }};
}

macro_rules! assert_rusmpp_sm {
    ($got:expr, $f:expr) => {{
        let (got, f): (_, &SmFields) = ($got, $f);
        assert_eq!(got.service_type.value().as_str(), f.service_type);
        assert_eq!(u8::from(got.source_addr_ton), f.source.0);
        assert_eq!(u8::from(got.source_addr_npi), f.source.1);
        assert_eq!(got.source_addr.as_str(), f.source.2);
        assert_eq!(u8::from(got.dest_addr_ton), f.destination.0);
        assert_eq!(u8::from(got.dest_addr_npi), f.destination.1);
        assert_eq!(got.destination_addr.as_str(), f.destination.2);
        assert_eq!(u8::from(got.esm_class), f.esm_class);
        assert_eq!(got.protocol_id, f.protocol_id);
        assert_eq!(u8::from(got.priority_flag), f.priority_flag);
        assert_eq!(
            got.schedule_delivery_time.as_str(),
            f.schedule_delivery_time
        );
        assert_eq!(got.validity_period.as_str(), f.validity_period);
        assert_eq!(u8::from(got.registered_delivery), f.registered_delivery);
        assert_eq!(
            u8::from(got.replace_if_present_flag),
            f.replace_if_present_flag
        );
        assert_eq!(u8::from(got.data_coding), f.data_coding);
        assert_eq!(got.sm_default_msg_id, f.sm_default_msg_id);
        assert_eq!(usize::from(got.sm_length()), f.short_message.len());
        assert_eq!(got.short_message().as_ref(), f.short_message);
        assert_rusmpp_tlvs(got.tlvs(), f.tlvs);
    }};
}

/// "Привет, это Tern" in UCS-2 (UTF-16BE).
const UCS2_TEXT: &[u8] = &[
    0x04, 0x1F, 0x04, 0x40, 0x04, 0x38, 0x04, 0x32, 0x04, 0x35, 0x04, 0x42, 0x00, 0x2C, 0x00, 0x20,
    0x04, 0x4D, 0x04, 0x42, 0x04, 0x3E, 0x00, 0x20, 0x00, 0x54, 0x00, 0x65, 0x00, 0x72, 0x00, 0x6E,
];

const LONG_TEXT: &[u8] = b"This message is longer than one short_message can hold, so it \
travels in message_payload with sm_length zero, as SMPP 3.4 section 5.3.2.32 describes. \
Tern must forward it unchanged to upstreams that accept payloads and split it into parts \
for those that do not; either way the octets here must arrive exactly as sent.";

const SUBMIT_SM_TEXT: SmFields = SmFields {
    service_type: "CMT",
    source: (1, 1, "33612345678"),
    destination: (1, 1, "447700900123"),
    esm_class: 0x03,
    protocol_id: 0x00,
    priority_flag: 1,
    schedule_delivery_time: "000000001000000R",
    validity_period: "240612153000004+",
    registered_delivery: 0x11,
    replace_if_present_flag: 1,
    data_coding: 0x08,
    sm_default_msg_id: 0,
    short_message: UCS2_TEXT,
    tlvs: &[
        P::UserMessageReference(0x1234),
        P::SourcePort(9200),
        P::DestinationPort(2948),
        P::SarMsgRefNum(0xBEEF),
        P::SarTotalSegments(3),
        P::SarSegmentSeqnum(2),
        P::Vendor(0x1401, b"carrier=208-01"),
    ],
};

const SUBMIT_SM_PAYLOAD: SmFields = SmFields {
    service_type: "",
    source: (5, 0, "TernAlerts"),
    destination: (1, 1, "447700900123"),
    esm_class: 0x00,
    protocol_id: 0x00,
    priority_flag: 0,
    schedule_delivery_time: "",
    validity_period: "000001000000000R",
    registered_delivery: 0x01,
    replace_if_present_flag: 0,
    data_coding: 0x00,
    sm_default_msg_id: 0,
    short_message: b"",
    tlvs: &[P::MessagePayload(LONG_TEXT), P::UserMessageReference(7)],
};

const RECEIPT_TEXT: &[u8] = b"id:5f3c2a9e-0001 sub:001 dlvrd:001 submit date:2406121530 \
done date:2406121531 stat:DELIVRD err:000 text:Privet, eto Tern";

const DELIVER_SM_RECEIPT: SmFields = SmFields {
    service_type: "",
    source: (1, 1, "447700900123"),
    destination: (1, 1, "33612345678"),
    esm_class: 0x04,
    protocol_id: 0x00,
    priority_flag: 0,
    schedule_delivery_time: "",
    validity_period: "",
    registered_delivery: 0,
    replace_if_present_flag: 0,
    data_coding: 0x00,
    sm_default_msg_id: 0,
    short_message: RECEIPT_TEXT,
    tlvs: &[
        P::ReceiptedMessageId("5f3c2a9e-0001"),
        P::MessageState(2),
        P::NetworkErrorCode(3, 0),
        P::Vendor(0x1401, b"outgoing-77\0"),
    ],
};

const DELIVER_SM_MO: SmFields = SmFields {
    service_type: "WAP",
    source: (1, 1, "447700900123"),
    destination: (3, 0, "36180"),
    esm_class: 0x00,
    protocol_id: 0x00,
    priority_flag: 0,
    schedule_delivery_time: "",
    validity_period: "",
    registered_delivery: 0,
    replace_if_present_flag: 0,
    data_coding: 0x00,
    sm_default_msg_id: 0,
    short_message: b"",
    tlvs: &[
        P::MessagePayload(LONG_TEXT),
        P::SarMsgRefNum(0x0102),
        P::SarTotalSegments(2),
        P::SarSegmentSeqnum(1),
        P::SourcePort(2948),
        P::DestinationPort(9200),
        P::UserMessageReference(0xFFFF),
    ],
};

fn submit_sm_case(f: &SmFields, sequence: u32) {
    let rusmpp_wire = rusmpp_encode(&rcommand(
        ESME_ROK,
        sequence,
        rusmpp_sm!(SubmitSm, f, submission_request),
    ));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, SUBMIT_SM, ESME_ROK, sequence);
    assert_tern_sm(tern_body!(pdu, SubmitSm), f);

    let tern_wire = tpdu(ESME_ROK, sequence, Body::SubmitSm(tern_sm(f))).to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, SUBMIT_SM, ESME_ROK, sequence);
    assert_rusmpp_sm!(rusmpp_body!(command, SubmitSm), f);

    assert_eq!(tern_wire, rusmpp_wire);
}

fn deliver_sm_case(f: &SmFields, sequence: u32) {
    let rusmpp_wire = rusmpp_encode(&rcommand(
        ESME_ROK,
        sequence,
        rusmpp_sm!(DeliverSm, f, delivery_request),
    ));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, DELIVER_SM, ESME_ROK, sequence);
    assert_tern_sm(tern_body!(pdu, DeliverSm), f);

    let tern_wire = tpdu(ESME_ROK, sequence, Body::DeliverSm(tern_sm(f))).to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, DELIVER_SM, ESME_ROK, sequence);
    assert_rusmpp_sm!(rusmpp_body!(command, DeliverSm), f);

    assert_eq!(tern_wire, rusmpp_wire);
}

#[test]
fn submit_sm_with_short_message_and_tlvs() {
    submit_sm_case(&SUBMIT_SM_TEXT, 0x0000_0201);
}

#[test]
fn submit_sm_with_message_payload() {
    submit_sm_case(&SUBMIT_SM_PAYLOAD, 0x0000_0202);
}

#[test]
fn deliver_sm_receipt() {
    deliver_sm_case(&DELIVER_SM_RECEIPT, 0x0000_0203);

    // The receipt's own accessors see what Rusmpp sent.
    let wire = rusmpp_encode(&rcommand(
        ESME_ROK,
        9,
        rusmpp_sm!(DeliverSm, &DELIVER_SM_RECEIPT, delivery_request),
    ));
    let pdu = tern_decode(wire);
    let sm: &DeliverSm = tern_body!(pdu, DeliverSm);
    assert!(sm.esm_class.is_receipt());
    assert_eq!(sm.tlvs.receipted_message_id(), Some(&b"5f3c2a9e-0001"[..]));
    assert_eq!(sm.tlvs.message_state(), Some(&t::MessageState::DELIVERED));
    assert_eq!(
        sm.tlvs.network_error_code(),
        Some(&t::tlv::NetworkErrorCode {
            network_type: 3,
            error_code: 0
        })
    );
}

#[test]
fn deliver_sm_mo_with_payload_sar_and_ports() {
    deliver_sm_case(&DELIVER_SM_MO, 0x0000_0204);

    let wire = rusmpp_encode(&rcommand(
        ESME_ROK,
        10,
        rusmpp_sm!(DeliverSm, &DELIVER_SM_MO, delivery_request),
    ));
    let pdu = tern_decode(wire);
    let sm: &DeliverSm = tern_body!(pdu, DeliverSm);
    assert_eq!(sm.text_octets(), LONG_TEXT);
    assert_eq!(
        sm.tlvs.sar(),
        Some(t::tlv::Sar {
            reference: 0x0102,
            total: 2,
            sequence: 1
        })
    );
}

// ---------------------------------------------------------------------------
// Responses carrying a message id (SMPP 3.4 §4.4.2, §4.6.2, §4.7.2).

macro_rules! sm_resp_test {
    ($name:ident, $rtype:ident, $variant:ident, $id:expr, $tlv:ident, $status:expr, $message_id:expr, $tlvs:expr) => {
        #[test]
        fn $name() {
            let (status, message_id, tlvs): (u32, &str, &[P]) = ($status, $message_id, $tlvs);
            let sequence = 0x0000_0301;

            let rusmpp_pdu = r::pdus::$rtype::builder()
                .message_id(rstr(message_id))
                .tlvs(tlvs.iter().map(|p| p.$tlv()).collect())
                .build();
            let rusmpp_wire = rusmpp_encode(&rcommand(status, sequence, rusmpp_pdu));

            let pdu = tern_decode(rusmpp_wire.clone());
            assert_tern_header(&pdu, $id | RESP, status, sequence);
            let resp = tern_body!(pdu, $variant);
            assert_eq!(resp.id.as_ref().expect("message_id present"), message_id);
            assert_tern_tlvs(&resp.tlvs, tlvs);

            let tern_wire = tpdu(
                status,
                sequence,
                Body::$variant(SmResp {
                    id: Some(tstr(message_id)),
                    tlvs: ttlvs(tlvs),
                }),
            )
            .to_bytes();
            let command = rusmpp_decode(&tern_wire);
            assert_rusmpp_header(&command, $id | RESP, status, sequence);
            let resp = rusmpp_body!(command, $variant);
            assert_eq!(resp.message_id().as_str(), message_id);
            assert_rusmpp_tlvs(resp.tlvs(), tlvs);

            assert_eq!(tern_wire, rusmpp_wire);
        }
    };
}

sm_resp_test!(
    submit_sm_resp,
    SubmitSmResp,
    SubmitSmResp,
    SUBMIT_SM,
    submission_response,
    ESME_ROK,
    "5f3c2a9e-0001",
    &[]
);

// SMPP 5.0 lets submit_sm_resp carry TLVs; a vendor one must pass through.
sm_resp_test!(
    submit_sm_resp_with_tlvs,
    SubmitSmResp,
    SubmitSmResp,
    SUBMIT_SM,
    submission_response,
    ESME_ROK,
    "0A1B2C3D4E5F",
    &[
        P::AdditionalStatusInfoText("accepted, 2 parts"),
        P::Vendor(0x1402, b"\x00\x02"),
    ]
);

// deliver_sm_resp's message_id is unused and set to NULL (§4.6.2).
sm_resp_test!(
    deliver_sm_resp,
    DeliverSmResp,
    DeliverSmResp,
    DELIVER_SM,
    delivery_response,
    ESME_ROK,
    "",
    &[]
);

sm_resp_test!(
    data_sm_resp_delivery_failure,
    DataSmResp,
    DataSmResp,
    DATA_SM,
    delivery_response,
    ESME_RDELIVERYFAILURE,
    "d-77",
    &[
        P::DeliveryFailureReason(1),
        P::NetworkErrorCode(3, 27),
        P::AdditionalStatusInfoText("absent subscriber"),
    ]
);

// ---------------------------------------------------------------------------
// submit_multi (SMPP 3.4 §4.5).

#[test]
fn submit_multi_with_sme_and_distribution_list_destinations() {
    let sequence = 0x0000_0401;
    let source: Addr = (5, 0, "Tern");
    let sme_1: Addr = (1, 1, "447700900123");
    let dl_name = "staff-paris";
    let sme_2: Addr = (2, 8, "0612345678");
    let text: &[u8] = b"Meeting moved to 15:00, room 4.";
    let tlvs = [P::UserMessageReference(99), P::Vendor(0x1401, b"batch-12")];
    let (esm_class, protocol_id, priority_flag) = (0x03, 0x00, 2);
    let (schedule, validity) = ("", "241231235959000+");
    let (registered_delivery, replace, data_coding, default_msg) = (0x01, 0, 0x03, 0);

    let rusmpp_pdu = r::pdus::SubmitMulti::builder()
        .service_type(ServiceType::new(rstr("CMT")))
        .source_addr_ton(source.0.into())
        .source_addr_npi(source.1.into())
        .source_addr(rstr(source.2))
        .dest_address(vec![
            DestAddress::SmeAddress(SmeAddress::new(
                sme_1.0.into(),
                sme_1.1.into(),
                rstr(sme_1.2),
            )),
            DestAddress::DistributionListName(DistributionListName::new(rstr(dl_name))),
            DestAddress::SmeAddress(SmeAddress::new(
                sme_2.0.into(),
                sme_2.1.into(),
                rstr(sme_2.2),
            )),
        ])
        .esm_class(esm_class.into())
        .protocol_id(protocol_id)
        .priority_flag(priority_flag.into())
        .schedule_delivery_time(rtime(schedule))
        .validity_period(rtime(validity))
        .registered_delivery(registered_delivery.into())
        .replace_if_present_flag(replace.into())
        .data_coding(data_coding.into())
        .sm_default_msg_id(default_msg)
        .short_message(roctets(text))
        .tlvs(tlvs.iter().map(|p| p.submission_request()).collect())
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, SUBMIT_MULTI, ESME_ROK, sequence);
    let multi = tern_body!(pdu, SubmitMulti);
    assert_eq!(multi.service_type, "CMT");
    assert_tern_address(&multi.source, source);
    assert_eq!(multi.destinations.len(), 3);
    match &multi.destinations[..] {
        [Destination::Sme(a), Destination::DistributionList(dl), Destination::Sme(b)] => {
            assert_tern_address(a, sme_1);
            assert_eq!(dl, dl_name);
            assert_tern_address(b, sme_2);
        }
        other => panic!("tern: destinations {other:?}"),
    }
    assert_eq!(multi.esm_class.0, esm_class);
    assert_eq!(multi.protocol_id, protocol_id);
    assert_eq!(multi.priority_flag.0, priority_flag);
    assert_eq!(multi.schedule_delivery_time.as_bytes(), schedule.as_bytes());
    assert_eq!(multi.validity_period.as_bytes(), validity.as_bytes());
    assert_eq!(multi.registered_delivery.0, registered_delivery);
    assert_eq!(multi.replace_if_present_flag, replace);
    assert_eq!(multi.data_coding.0, data_coding);
    assert_eq!(multi.sm_default_msg_id, default_msg);
    assert_eq!(multi.short_message.as_bytes(), text);
    assert_tern_tlvs(&multi.tlvs, &tlvs);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::SubmitMulti(SubmitMulti {
            service_type: tstr("CMT"),
            source: taddr(source),
            destinations: vec![
                Destination::Sme(taddr(sme_1)),
                Destination::DistributionList(tstr(dl_name)),
                Destination::Sme(taddr(sme_2)),
            ],
            esm_class: t::EsmClass(esm_class),
            protocol_id,
            priority_flag: t::PriorityFlag(priority_flag),
            schedule_delivery_time: ttime(schedule),
            validity_period: ttime(validity),
            registered_delivery: t::RegisteredDelivery(registered_delivery),
            replace_if_present_flag: replace,
            data_coding: t::DataCoding(data_coding),
            sm_default_msg_id: default_msg,
            short_message: tshort(text),
            tlvs: ttlvs(&tlvs),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, SUBMIT_MULTI, ESME_ROK, sequence);
    let multi = rusmpp_body!(command, SubmitMulti);
    assert_eq!(multi.service_type.value().as_str(), "CMT");
    assert_eq!(
        (
            u8::from(multi.source_addr_ton),
            u8::from(multi.source_addr_npi)
        ),
        (source.0, source.1)
    );
    assert_eq!(multi.source_addr.as_str(), source.2);
    match multi.dest_address() {
        [DestAddress::SmeAddress(a), DestAddress::DistributionListName(dl), DestAddress::SmeAddress(b)] =>
        {
            assert_eq!(
                (
                    u8::from(a.dest_addr_ton),
                    u8::from(a.dest_addr_npi),
                    a.destination_addr.as_str()
                ),
                sme_1
            );
            assert_eq!(dl.dl_name.as_str(), dl_name);
            assert_eq!(
                (
                    u8::from(b.dest_addr_ton),
                    u8::from(b.dest_addr_npi),
                    b.destination_addr.as_str()
                ),
                sme_2
            );
        }
        other => panic!("rusmpp: destinations {other:?}"),
    }
    assert_eq!(u8::from(multi.esm_class), esm_class);
    assert_eq!(multi.protocol_id, protocol_id);
    assert_eq!(u8::from(multi.priority_flag), priority_flag);
    assert_eq!(multi.schedule_delivery_time.as_str(), schedule);
    assert_eq!(multi.validity_period.as_str(), validity);
    assert_eq!(u8::from(multi.registered_delivery), registered_delivery);
    assert_eq!(u8::from(multi.replace_if_present_flag), replace);
    assert_eq!(u8::from(multi.data_coding), data_coding);
    assert_eq!(multi.sm_default_msg_id, default_msg);
    assert_eq!(multi.short_message().as_ref(), text);
    assert_rusmpp_tlvs(multi.tlvs(), &tlvs);

    assert_eq!(tern_wire, rusmpp_wire);
}

#[test]
fn submit_multi_resp_with_unsuccess_entries() {
    let sequence = 0x0000_0402;
    let message_id = "m-1001";
    let unsuccess: [(Addr, u32); 3] = [
        ((2, 8, "0612345678"), ESME_RINVDSTADR),
        ((1, 1, "447700900999"), ESME_RSUBMITFAIL),
        ((1, 1, "33699999999"), VENDOR_STATUS),
    ];

    let rusmpp_pdu = r::pdus::SubmitMultiResp::builder()
        .message_id(rstr(message_id))
        .unsuccess_sme(
            unsuccess
                .iter()
                .map(|&((ton, npi, addr), status)| {
                    UnsuccessSme::new(
                        ton.into(),
                        npi.into(),
                        rstr(addr),
                        r::CommandStatus::from(status),
                    )
                })
                .collect(),
        )
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, SUBMIT_MULTI | RESP, ESME_ROK, sequence);
    let resp = tern_body!(pdu, SubmitMultiResp);
    assert_eq!(
        resp.message_id.as_ref().expect("message_id present"),
        message_id
    );
    assert_eq!(resp.unsuccess.len(), unsuccess.len());
    for (got, &(addr, status)) in resp.unsuccess.iter().zip(&unsuccess) {
        assert_tern_address(&got.address, addr);
        assert_eq!(got.error_status_code.code(), status);
    }
    assert!(resp.tlvs.is_empty());

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::SubmitMultiResp(SubmitMultiResp {
            message_id: Some(tstr(message_id)),
            unsuccess: unsuccess
                .iter()
                .map(|&(addr, status)| Unsuccess {
                    address: taddr(addr),
                    error_status_code: t::CommandStatus::from_code(status),
                })
                .collect(),
            tlvs: t::Tlvs::new(),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, SUBMIT_MULTI | RESP, ESME_ROK, sequence);
    let resp = rusmpp_body!(command, SubmitMultiResp);
    assert_eq!(resp.message_id.as_str(), message_id);
    assert_eq!(usize::from(resp.no_unsuccess()), unsuccess.len());
    for (got, &((ton, npi, addr), status)) in resp.unsuccess_sme().iter().zip(&unsuccess) {
        assert_eq!(
            (
                u8::from(got.dest_addr_ton),
                u8::from(got.dest_addr_npi),
                got.destination_addr.as_str()
            ),
            (ton, npi, addr)
        );
        assert_eq!(u32::from(got.error_status_code), status);
    }
    assert!(resp.tlvs().is_empty());

    assert_eq!(tern_wire, rusmpp_wire);
}

// ---------------------------------------------------------------------------
// data_sm (SMPP 3.4 §4.7.1).

#[test]
fn data_sm_with_payload_ports_and_vendor_tlv() {
    let sequence = 0x0000_0501;
    let (service_type, source, destination): (&str, Addr, Addr) =
        ("WAP", (1, 1, "33612345678"), (1, 1, "447700900123"));
    let (esm_class, registered_delivery, data_coding) = (0x00, 0x01, 0x04);
    // A WAP push: WSP header then WBXML, binary and with NULs.
    let tlvs = [
        P::SourcePort(9200),
        P::DestinationPort(2948),
        P::MessagePayload(b"\x01\x06\x04\x03\xAE\x81\xEA\x00\x02\x05\x6A\x00\x45\xC6\x0C\x03"),
        P::UserMessageReference(0x0A0B),
        P::Vendor(0x1401, b"\x00\x01\x02"),
    ];

    let rusmpp_pdu = r::pdus::DataSm::builder()
        .service_type(ServiceType::new(rstr(service_type)))
        .source_addr_ton(source.0.into())
        .source_addr_npi(source.1.into())
        .source_addr(rstr(source.2))
        .dest_addr_ton(destination.0.into())
        .dest_addr_npi(destination.1.into())
        .destination_addr(rstr(destination.2))
        .esm_class(esm_class.into())
        .registered_delivery(registered_delivery.into())
        .data_coding(data_coding.into())
        .tlvs(tlvs.iter().map(|p| p.submission_request()).collect())
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, DATA_SM, ESME_ROK, sequence);
    let data = tern_body!(pdu, DataSm);
    assert_eq!(data.service_type, service_type);
    assert_tern_address(&data.source, source);
    assert_tern_address(&data.destination, destination);
    assert_eq!(data.esm_class.0, esm_class);
    assert_eq!(data.registered_delivery.0, registered_delivery);
    assert_eq!(data.data_coding.0, data_coding);
    assert_tern_tlvs(&data.tlvs, &tlvs);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::DataSm(DataSm {
            service_type: tstr(service_type),
            source: taddr(source),
            destination: taddr(destination),
            esm_class: t::EsmClass(esm_class),
            registered_delivery: t::RegisteredDelivery(registered_delivery),
            data_coding: t::DataCoding(data_coding),
            tlvs: ttlvs(&tlvs),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, DATA_SM, ESME_ROK, sequence);
    let data = rusmpp_body!(command, DataSm);
    assert_eq!(data.service_type.value().as_str(), service_type);
    assert_eq!(
        (
            u8::from(data.source_addr_ton),
            u8::from(data.source_addr_npi),
            data.source_addr.as_str()
        ),
        source
    );
    assert_eq!(
        (
            u8::from(data.dest_addr_ton),
            u8::from(data.dest_addr_npi),
            data.destination_addr.as_str()
        ),
        destination
    );
    assert_eq!(u8::from(data.esm_class), esm_class);
    assert_eq!(u8::from(data.registered_delivery), registered_delivery);
    assert_eq!(u8::from(data.data_coding), data_coding);
    assert_rusmpp_tlvs(data.tlvs(), &tlvs);

    assert_eq!(tern_wire, rusmpp_wire);
}

// ---------------------------------------------------------------------------
// query_sm, cancel_sm, replace_sm (SMPP 3.4 §4.8–§4.10).

#[test]
fn query_sm() {
    let (sequence, message_id, source): (u32, &str, Addr) =
        (0x0000_0601, "5f3c2a9e-0001", (1, 1, "33612345678"));

    let rusmpp_pdu = r::pdus::QuerySm::builder()
        .message_id(rstr(message_id))
        .source_addr_ton(source.0.into())
        .source_addr_npi(source.1.into())
        .source_addr(rstr(source.2))
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, QUERY_SM, ESME_ROK, sequence);
    let query = tern_body!(pdu, QuerySm);
    assert_eq!(query.message_id, message_id);
    assert_tern_address(&query.source, source);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::QuerySm(QuerySm {
            message_id: tstr(message_id),
            source: taddr(source),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, QUERY_SM, ESME_ROK, sequence);
    let query = rusmpp_body!(command, QuerySm);
    assert_eq!(query.message_id.as_str(), message_id);
    assert_eq!(
        (
            u8::from(query.source_addr_ton),
            u8::from(query.source_addr_npi),
            query.source_addr.as_str()
        ),
        source
    );

    assert_eq!(tern_wire, rusmpp_wire);
}

#[test]
fn query_sm_resp() {
    let sequence = 0x0000_0602;
    let (message_id, final_date, message_state, error_code) =
        ("5f3c2a9e-0001", "240612153112000+", 5, 27);

    let rusmpp_pdu = r::pdus::QuerySmResp::builder()
        .message_id(rstr(message_id))
        .final_date(rtime(final_date))
        .message_state(message_state.into())
        .error_code(error_code)
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, QUERY_SM | RESP, ESME_ROK, sequence);
    let resp = tern_body!(pdu, QuerySmResp);
    assert_eq!(resp.message_id, message_id);
    assert_eq!(resp.final_date.as_bytes(), final_date.as_bytes());
    assert_eq!(resp.message_state, t::MessageState::UNDELIVERABLE);
    assert_eq!(resp.error_code, error_code);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::QuerySmResp(QuerySmResp {
            message_id: tstr(message_id),
            final_date: ttime(final_date),
            message_state: t::MessageState(message_state),
            error_code,
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, QUERY_SM | RESP, ESME_ROK, sequence);
    let resp = rusmpp_body!(command, QuerySmResp);
    assert_eq!(resp.message_id.as_str(), message_id);
    assert_eq!(resp.final_date.as_str(), final_date);
    assert_eq!(u8::from(resp.message_state), message_state);
    assert_eq!(resp.error_code, error_code);

    assert_eq!(tern_wire, rusmpp_wire);
}

#[test]
fn cancel_sm() {
    let sequence = 0x0000_0701;
    let (service_type, message_id, source, destination): (&str, &str, Addr, Addr) = (
        "CMT",
        "5f3c2a9e-0001",
        (1, 1, "33612345678"),
        (1, 1, "447700900123"),
    );

    let rusmpp_pdu = r::pdus::CancelSm::builder()
        .service_type(ServiceType::new(rstr(service_type)))
        .message_id(rstr(message_id))
        .source_addr_ton(source.0.into())
        .source_addr_npi(source.1.into())
        .source_addr(rstr(source.2))
        .dest_addr_ton(destination.0.into())
        .dest_addr_npi(destination.1.into())
        .destination_addr(rstr(destination.2))
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, CANCEL_SM, ESME_ROK, sequence);
    let cancel = tern_body!(pdu, CancelSm);
    assert_eq!(cancel.service_type, service_type);
    assert_eq!(cancel.message_id, message_id);
    assert_tern_address(&cancel.source, source);
    assert_tern_address(&cancel.destination, destination);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::CancelSm(CancelSm {
            service_type: tstr(service_type),
            message_id: tstr(message_id),
            source: taddr(source),
            destination: taddr(destination),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, CANCEL_SM, ESME_ROK, sequence);
    let cancel = rusmpp_body!(command, CancelSm);
    assert_eq!(cancel.service_type.value().as_str(), service_type);
    assert_eq!(cancel.message_id.as_str(), message_id);
    assert_eq!(
        (
            u8::from(cancel.source_addr_ton),
            u8::from(cancel.source_addr_npi),
            cancel.source_addr.as_str()
        ),
        source
    );
    assert_eq!(
        (
            u8::from(cancel.dest_addr_ton),
            u8::from(cancel.dest_addr_npi),
            cancel.destination_addr.as_str()
        ),
        destination
    );

    assert_eq!(tern_wire, rusmpp_wire);
}

fn replace_sm_case(short_message: &'static [u8], message_payload: Option<&'static [u8]>) {
    let sequence = 0x0000_0801;
    let (message_id, source): (&str, Addr) = ("5f3c2a9e-0001", (1, 1, "33612345678"));
    let (schedule, validity, registered_delivery, default_msg) =
        ("240612170000000+", "000002000000000R", 0x01, 3);
    let tlvs: Vec<P> = message_payload.map(P::MessagePayload).into_iter().collect();

    let rusmpp_pdu = r::pdus::ReplaceSm::builder()
        .message_id(rstr(message_id))
        .source_addr_ton(source.0.into())
        .source_addr_npi(source.1.into())
        .source_addr(rstr(source.2))
        .schedule_delivery_time(rtime(schedule))
        .validity_period(rtime(validity))
        .registered_delivery(registered_delivery.into())
        .sm_default_msg_id(default_msg)
        .short_message(roctets(short_message))
        .message_payload(message_payload.map(payload))
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, REPLACE_SM, ESME_ROK, sequence);
    let replace = tern_body!(pdu, ReplaceSm);
    assert_eq!(replace.message_id, message_id);
    assert_tern_address(&replace.source, source);
    assert_eq!(
        replace.schedule_delivery_time.as_bytes(),
        schedule.as_bytes()
    );
    assert_eq!(replace.validity_period.as_bytes(), validity.as_bytes());
    assert_eq!(replace.registered_delivery.0, registered_delivery);
    assert_eq!(replace.sm_default_msg_id, default_msg);
    assert_eq!(replace.short_message.as_bytes(), short_message);
    assert_tern_tlvs(&replace.tlvs, &tlvs);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::ReplaceSm(ReplaceSm {
            message_id: tstr(message_id),
            source: taddr(source),
            schedule_delivery_time: ttime(schedule),
            validity_period: ttime(validity),
            registered_delivery: t::RegisteredDelivery(registered_delivery),
            sm_default_msg_id: default_msg,
            short_message: tshort(short_message),
            tlvs: ttlvs(&tlvs),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, REPLACE_SM, ESME_ROK, sequence);
    let replace = rusmpp_body!(command, ReplaceSm);
    assert_eq!(replace.message_id.as_str(), message_id);
    assert_eq!(
        (
            u8::from(replace.source_addr_ton),
            u8::from(replace.source_addr_npi),
            replace.source_addr.as_str()
        ),
        source
    );
    assert_eq!(replace.schedule_delivery_time.as_str(), schedule);
    assert_eq!(replace.validity_period.as_str(), validity);
    assert_eq!(u8::from(replace.registered_delivery), registered_delivery);
    assert_eq!(replace.sm_default_msg_id, default_msg);
    assert_eq!(replace.short_message().as_ref(), short_message);
    assert_eq!(
        replace.message_payload().map(|p| p.value.as_ref()),
        message_payload
    );

    assert_eq!(tern_wire, rusmpp_wire);
}

#[test]
fn replace_sm_with_short_message() {
    replace_sm_case(b"Updated: meeting at 16:00.", None);
}

/// SMPP 5.0 §4.4.4 allows message_payload in replace_sm; both crates carry it.
#[test]
fn replace_sm_with_message_payload() {
    replace_sm_case(b"", Some(LONG_TEXT));
}

// ---------------------------------------------------------------------------
// alert_notification (SMPP 3.4 §4.12): 65-octet addresses.

#[test]
fn alert_notification() {
    let sequence = 0x0000_0901;
    let source: Addr = (1, 1, "447700900123");
    // An IP address with NPI 14 (Internet), longer than the 21 octets of
    // most address fields.
    let esme: Addr = (0, 14, "push-proxy.example.net:2948");
    let availability = 0;
    let tlvs = [P::MsAvailabilityStatus(availability)];

    let rusmpp_pdu = r::pdus::AlertNotification::builder()
        .source_addr_ton(source.0.into())
        .source_addr_npi(source.1.into())
        .source_addr(rstr(source.2))
        .esme_addr_ton(esme.0.into())
        .esme_addr_npi(esme.1.into())
        .esme_addr(rstr(esme.2))
        .ms_availability_status(Some(availability.into()))
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, ALERT_NOTIFICATION, ESME_ROK, sequence);
    let alert = tern_body!(pdu, AlertNotification);
    assert_tern_address(&alert.source, source);
    assert_tern_address(&alert.esme, esme);
    assert_tern_tlvs(&alert.tlvs, &tlvs);

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::AlertNotification(AlertNotification {
            source: taddr(source),
            esme: taddr(esme),
            tlvs: ttlvs(&tlvs),
        }),
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, ALERT_NOTIFICATION, ESME_ROK, sequence);
    let alert = rusmpp_body!(command, AlertNotification);
    assert_eq!(
        (
            u8::from(alert.source_addr_ton),
            u8::from(alert.source_addr_npi),
            alert.source_addr.as_str()
        ),
        source
    );
    assert_eq!(
        (
            u8::from(alert.esme_addr_ton),
            u8::from(alert.esme_addr_npi),
            alert.esme_addr.as_str()
        ),
        esme
    );
    assert_eq!(
        alert.ms_availability_status().map(u8::from),
        Some(availability)
    );

    assert_eq!(tern_wire, rusmpp_wire);
}

// ---------------------------------------------------------------------------
// Operations one side does not type: both must carry them unchanged.

#[test]
fn vendor_command_passes_through_both() {
    let (sequence, body): (u32, &[u8]) = (0x0000_0A01, b"\x01\x02vendor body\x00\xFF");

    let rusmpp_wire = rusmpp_encode(&rcommand(
        ESME_ROK,
        sequence,
        r::Pdu::Other {
            command_id: r::CommandId::from(VENDOR_COMMAND),
            body: AnyOctetString::from_static_slice(body),
        },
    ));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, VENDOR_COMMAND, ESME_ROK, sequence);
    assert_eq!(
        pdu.body,
        Body::Unknown {
            command_id: VENDOR_COMMAND,
            body: Bytes::from_static(body)
        }
    );

    let tern_wire = tpdu(
        ESME_ROK,
        sequence,
        Body::Unknown {
            command_id: VENDOR_COMMAND,
            body: Bytes::from_static(body),
        },
    )
    .to_bytes();
    let command = rusmpp_decode(&tern_wire);
    assert_rusmpp_header(&command, VENDOR_COMMAND, ESME_ROK, sequence);
    match command.pdu() {
        Some(r::Pdu::Other { body: got, .. }) => assert_eq!(got.as_ref(), body),
        other => panic!("rusmpp: expected Other, got {other:?}"),
    }

    assert_eq!(tern_wire, rusmpp_wire);
}

/// query_broadcast_sm is SMPP 5.0; Tern does not type it but must carry it
/// byte for byte (a broker forwards what it does not understand).
#[test]
fn smpp5_query_broadcast_sm_is_carried_unchanged() {
    let sequence = 0x0000_0A02;
    let rusmpp_pdu = r::pdus::QueryBroadcastSm::new(
        rstr("bc-42"),
        1u8.into(),
        1u8.into(),
        rstr("33612345678"),
        Some(UserMessageReference::new(0x0102)),
    );
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, sequence, rusmpp_pdu));

    let pdu = tern_decode(rusmpp_wire.clone());
    assert_tern_header(&pdu, QUERY_BROADCAST_SM, ESME_ROK, sequence);
    let Body::Unknown { command_id, body } = &pdu.body else {
        panic!("tern: expected Unknown, got {:?}", pdu.body);
    };
    assert_eq!(*command_id, QUERY_BROADCAST_SM);
    // message_id, source TON/NPI/addr, then user_message_reference (0x0204).
    assert_eq!(
        &body[..],
        b"bc-42\0\x01\x0133612345678\0\x02\x04\x00\x02\x01\x02"
    );

    // Re-encoding the unknown body gives Rusmpp back its own PDU.
    let tern_wire = pdu.to_bytes();
    assert_eq!(tern_wire, rusmpp_wire);
    let command = rusmpp_decode(&tern_wire);
    let query = rusmpp_body!(command, QueryBroadcastSm);
    assert_eq!(query.message_id.as_str(), "bc-42");
}

// ---------------------------------------------------------------------------
// Where the two legitimately differ. Each test pins the exact difference.

/// SMPP 3.4 §4.1.2/§4.4.2 (and the matching clauses of §4.1.4, §4.1.6,
/// §4.5.2, §4.6.2, §4.7.2): the body of these responses "is not returned if
/// the command_status field contains a non-zero value". Tern's error
/// responses ([`Pdu::error_response`]) are a bare header; Rusmpp always
/// writes the body, so its error response carries one NUL (an empty
/// `system_id`/`message_id`) and, for submit_multi_resp, a zero
/// `no_unsuccess`. Both read the other's form: Tern keeps "absent" (`None`)
/// apart from "empty" (`Some("")`) so it re-encodes what it received, and
/// Rusmpp decodes a bare response header to a command without a body.
#[test]
fn error_responses_omit_the_body_in_tern_and_not_in_rusmpp() {
    let cases: [(u32, u32, u32, r::Pdu, &[u8]); 6] = [
        (
            BIND_TRANSMITTER,
            ESME_RINVPASWD,
            1,
            r::pdus::BindTransmitterResp::default().into(),
            b"\0",
        ),
        (
            BIND_RECEIVER,
            ESME_RINVPASWD,
            2,
            r::pdus::BindReceiverResp::default().into(),
            b"\0",
        ),
        (
            BIND_TRANSCEIVER,
            VENDOR_STATUS,
            3,
            r::pdus::BindTransceiverResp::default().into(),
            b"\0",
        ),
        (
            SUBMIT_SM,
            ESME_RTHROTTLED,
            4,
            r::pdus::SubmitSmResp::default().into(),
            b"\0",
        ),
        (
            DATA_SM,
            ESME_RDELIVERYFAILURE,
            5,
            r::pdus::DataSmResp::default().into(),
            b"\0",
        ),
        // message_id NUL, no_unsuccess 0.
        (
            SUBMIT_MULTI,
            ESME_RTHROTTLED,
            6,
            r::pdus::SubmitMultiResp::default().into(),
            b"\0\0",
        ),
    ];
    for (request, status, sequence, rusmpp_pdu, rusmpp_body) in cases {
        let id = request | RESP;
        let tern_pdu = Pdu::error_response(
            t::CommandId::from_code(request),
            sequence,
            t::CommandStatus::from_code(status),
        )
        .expect("requests are answered");
        let tern_wire = tern_pdu.to_bytes();
        let rusmpp_wire = rusmpp_encode(&rcommand(status, sequence, rusmpp_pdu));

        // Same header apart from command_length; Rusmpp adds the body.
        assert_eq!(
            tern_wire.len(),
            16,
            "tern: 0x{id:08X} error response is a header"
        );
        assert_eq!(&tern_wire[..4], &16u32.to_be_bytes());
        assert_eq!(
            &rusmpp_wire[..4],
            &(16 + rusmpp_body.len() as u32).to_be_bytes()
        );
        assert_eq!(
            &tern_wire[4..16],
            &rusmpp_wire[4..16],
            "0x{id:08X}: id, status, sequence"
        );
        assert_eq!(&rusmpp_wire[16..], rusmpp_body, "0x{id:08X}: rusmpp body");

        // Rusmpp reads Tern's bare header as a command without a body.
        let command = rusmpp_decode(&tern_wire);
        assert_rusmpp_header(&command, id, status, sequence);
        assert_eq!(command.pdu(), None, "0x{id:08X}");

        // Tern reads Rusmpp's body as present and empty, and gives it back.
        let pdu = tern_decode(rusmpp_wire.clone());
        assert_tern_header(&pdu, id, status, sequence);
        match &pdu.body {
            Body::BindTransmitterResp(b)
            | Body::BindReceiverResp(b)
            | Body::BindTransceiverResp(b) => {
                assert_eq!(b.id.as_ref().map(t::COctetString::len), Some(0));
                assert!(b.tlvs.is_empty());
            }
            Body::SubmitSmResp(b) | Body::DataSmResp(b) => {
                assert_eq!(b.id.as_ref().map(t::COctetString::len), Some(0));
                assert!(b.tlvs.is_empty());
            }
            Body::SubmitMultiResp(b) => {
                assert_eq!(b.message_id.as_ref().map(t::COctetString::len), Some(0));
                assert!(b.unsuccess.is_empty() && b.tlvs.is_empty());
            }
            other => panic!("tern: unexpected body {other:?}"),
        }
        assert_eq!(
            pdu.to_bytes(),
            rusmpp_wire,
            "0x{id:08X}: tern re-encodes as received"
        );
    }
}

/// SMPP 3.4 §4.7.1 gives data_sm's source_addr and destination_addr 65
/// octets (64 characters); Rusmpp follows SMPP 5.0 §4.2.2.1, which cut them
/// to 21. Tern accepts and writes the 3.4 length, so a long data_sm address
/// from Tern is refused by Rusmpp's decoder. Tern is right for 3.4 peers.
#[test]
fn data_sm_long_addresses_are_smpp34_and_rusmpp_refuses_them() {
    let long: Addr = (0, 14, "wap-gateway-07.operator.example.net");
    assert!(long.2.len() > 20 && long.2.len() < 65);
    let data = DataSm {
        service_type: tstr("WAP"),
        source: taddr(long),
        destination: taddr((1, 1, "447700900123")),
        esm_class: t::EsmClass(0),
        registered_delivery: t::RegisteredDelivery(0),
        data_coding: t::DataCoding(0x04),
        tlvs: ttlvs(&[P::MessagePayload(b"\x01\x06")]),
    };
    let tern_wire = tpdu(ESME_ROK, 77, Body::DataSm(data)).to_bytes();

    // Tern reads its own long address back.
    let pdu = tern_decode(tern_wire.clone());
    assert_tern_address(&tern_body!(pdu, DataSm).source, long);

    // Rusmpp looks for the NUL within 21 octets and gives up.
    let mut src = BytesMut::from(&tern_wire[..]);
    let result = r::tokio_codec::CommandCodec::new().decode(&mut src);
    match result {
        Err(r::tokio_codec::DecodeError::Decode(error)) => assert!(
            matches!(
                error.kind(),
                r::decode::DecodeErrorKind::COctetStringDecodeError(
                    r::decode::COctetStringDecodeError::NotNullTerminated
                )
            ),
            "rusmpp: {error:?}"
        ),
        other => panic!("rusmpp now accepts 64-character data_sm addresses: {other:?}"),
    }
}

/// SMPP 3.4 §5.2.21 bounds sm_length to 0–254; SMPP 5.0 allows 255, and so
/// does Rusmpp's `OctetString<0, 255>`. Tern refuses 255 on decode with
/// ESME_RINVMSGLEN and cannot build it.
#[test]
fn short_message_of_255_octets_is_smpp5_only() {
    let text = [b'x'; 255];
    let rusmpp_pdu = r::pdus::SubmitSm::builder()
        .source_addr(rstr("33612345678"))
        .destination_addr(rstr("447700900123"))
        .short_message(roctets(&text))
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, 78, rusmpp_pdu));

    match Pdu::decode(rusmpp_wire) {
        Err(t::PduError::Malformed(malformed)) => {
            assert_eq!(malformed.error, t::DecodeError::SmLengthTooLarge(255));
            assert_eq!(malformed.command_status().code(), 0x01, "ESME_RINVMSGLEN");
            let response = malformed.response().expect("submit_sm is answered");
            assert_eq!(response.command_id().code(), SUBMIT_SM | RESP);
            assert_eq!(response.sequence_number, 78);
        }
        other => panic!("tern accepted sm_length 255: {other:?}"),
    }
    assert!(t::ShortMessage::new(text.to_vec()).is_err());
}

/// source_telematics_id (0x0010) is one octet in SMPP 3.4 §5.3.2.11 and two
/// in SMPP 5.0 §4.8.4.57; Rusmpp types it as `u16`. Tern keeps the value as
/// received, so it reads a 5.0 peer's two octets and forwards them intact,
/// while Tern's one-octet (3.4) value fails Rusmpp's decoder.
#[test]
fn source_telematics_id_width_differs_between_versions() {
    let rusmpp_pdu = r::pdus::DataSm::builder()
        .source_addr(rstr("33612345678"))
        .destination_addr(rstr("447700900123"))
        .tlvs(vec![RSubmissionReq::SourceTelematicsId(0x0102)])
        .build();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, 79, rusmpp_pdu));
    assert_eq!(
        &rusmpp_wire[rusmpp_wire.len() - 6..],
        b"\x00\x10\x00\x02\x01\x02"
    );

    let decoded = Pdu::decode(rusmpp_wire.clone()).expect("both widths are read");
    let Body::DataSm(data) = &decoded.body else {
        panic!("{decoded:?}")
    };
    assert_eq!(
        data.tlvs.source_telematics_id().map(|v| v.as_ref()),
        Some(&[0x01, 0x02][..])
    );
    assert_eq!(decoded.to_bytes(), rusmpp_wire, "forwarded intact");

    let data = DataSm {
        source: taddr((1, 1, "33612345678")),
        destination: taddr((1, 1, "447700900123")),
        tlvs: [t::Tlv::SourceTelematicsId(Bytes::from_static(&[5]))]
            .into_iter()
            .collect(),
        ..DataSm::default()
    };
    let tern_wire = tpdu(ESME_ROK, 80, Body::DataSm(data)).to_bytes();
    assert_eq!(&tern_wire[tern_wire.len() - 5..], b"\x00\x10\x00\x01\x05");
    // Rusmpp wants two octets inside a value of one (it bounds the value by
    // its length field, so this holds wherever the TLV sits).
    let mut src = BytesMut::from(&tern_wire[..]);
    match r::tokio_codec::CommandCodec::new().decode(&mut src) {
        Err(r::tokio_codec::DecodeError::Decode(error)) => {
            assert!(
                matches!(error.kind(), r::decode::DecodeErrorKind::UnexpectedEof),
                "rusmpp: {error:?}"
            )
        }
        other => panic!("rusmpp now reads a one-octet source_telematics_id: {other:?}"),
    }
}

/// SMPP 3.4 §5.2.12: esm_class 0x00 is "default mode, default message
/// type". Rusmpp's `EsmClass::default()` is 0x08 (its `Ansi41Specific`
/// defaults to "delivery acknowledgement"), so a submit_sm built from
/// Rusmpp's defaults says it carries an SME delivery acknowledgement. Tern's
/// default is 0x00; the two default PDUs differ in that one octet only.
#[test]
fn default_esm_class_differs_rusmpp_sets_the_delivery_ack_bit() {
    let tern_wire = tpdu(ESME_ROK, 81, Body::SubmitSm(SubmitSm::default())).to_bytes();
    let rusmpp_wire = rusmpp_encode(&rcommand(ESME_ROK, 81, r::pdus::SubmitSm::default()));

    // Header, service_type NUL, source TON/NPI/NUL, destination TON/NPI/NUL.
    let esm_class_at = 16 + 1 + 3 + 3;
    assert_eq!(tern_wire.len(), rusmpp_wire.len());
    let differing: Vec<usize> = (0..tern_wire.len())
        .filter(|&i| tern_wire[i] != rusmpp_wire[i])
        .collect();
    assert_eq!(differing, [esm_class_at]);
    assert_eq!(tern_wire[esm_class_at], 0x00);
    assert_eq!(rusmpp_wire[esm_class_at], 0x08);

    let pdu = tern_decode(rusmpp_wire);
    let sm = tern_body!(pdu, SubmitSm);
    assert_eq!(sm.esm_class.message_type(), 0x08);
    assert!(
        sm.esm_class.is_receipt(),
        "tern reads it as an acknowledgement"
    );
}

// ---------------------------------------------------------------------------
// Over a real socket.

/// PDUs both ways over loopback TCP: Rusmpp's `CommandCodec` writing to
/// Tern's `SmppCodec` on one direction, Tern writing to Rusmpp on the other,
/// concurrently. Large payloads make frames span reads; the stream must end
/// cleanly when the writer closes.
#[tokio::test]
async fn loopback_tcp_both_directions() {
    const ROUNDS: u32 = 60;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local address");
    let (client, accepted) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = accepted.expect("accept");
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();

    let mut rusmpp_out = FramedWrite::new(client_write, r::tokio_codec::CommandCodec::new());
    let mut tern_in = FramedRead::new(server_read, SmppCodec::new());
    let mut tern_out = FramedWrite::new(server_write, SmppCodec::new());
    let mut rusmpp_in = FramedRead::new(client_read, r::tokio_codec::CommandCodec::new());

    // Sequence numbers run 1.. in the order sent; kind = sequence % 4.
    let rusmpp_command = |sequence: u32| -> r::Command {
        match sequence % 4 {
            0 => rcommand(ESME_ROK, sequence, r::Pdu::EnquireLink),
            1 => rcommand(
                ESME_ROK,
                sequence,
                rusmpp_sm!(SubmitSm, &SUBMIT_SM_TEXT, submission_request),
            ),
            2 => rcommand(
                ESME_ROK,
                sequence,
                rusmpp_sm!(DeliverSm, &DELIVER_SM_RECEIPT, delivery_request),
            ),
            _ => rcommand(
                ESME_ROK,
                sequence,
                rusmpp_sm!(SubmitSm, &SUBMIT_SM_PAYLOAD, submission_request),
            ),
        }
    };
    let tern_pdu = |sequence: u32| -> Pdu {
        match sequence % 4 {
            0 => tpdu(ESME_ROK, sequence, Body::EnquireLinkResp),
            1 => tpdu(
                ESME_ROK,
                sequence,
                Body::SubmitSmResp(SmResp::with_id(tstr("5f3c2a9e-0001"))),
            ),
            2 => tpdu(ESME_ROK, sequence, Body::DeliverSm(tern_sm(&DELIVER_SM_MO))),
            _ => tpdu(ESME_RTHROTTLED, sequence, Body::GenericNack),
        }
    };

    let rusmpp_sends = async {
        for sequence in 1..=ROUNDS * 4 {
            rusmpp_out
                .send(rusmpp_command(sequence))
                .await
                .expect("rusmpp sends");
        }
        SinkExt::<r::Command>::close(&mut rusmpp_out)
            .await
            .expect("rusmpp closes");
    };
    let tern_receives = async {
        for sequence in 1..=ROUNDS * 4 {
            let frame = tern_in
                .next()
                .await
                .expect("a frame")
                .expect("framing holds");
            let Frame::Pdu(pdu) = frame else {
                panic!("tern: malformed frame {frame:?}");
            };
            match sequence % 4 {
                0 => {
                    assert_tern_header(&pdu, ENQUIRE_LINK, ESME_ROK, sequence);
                    assert_eq!(pdu.body, Body::EnquireLink);
                }
                1 => {
                    assert_tern_header(&pdu, SUBMIT_SM, ESME_ROK, sequence);
                    assert_tern_sm(tern_body!(pdu, SubmitSm), &SUBMIT_SM_TEXT);
                }
                2 => {
                    assert_tern_header(&pdu, DELIVER_SM, ESME_ROK, sequence);
                    assert_tern_sm(tern_body!(pdu, DeliverSm), &DELIVER_SM_RECEIPT);
                }
                _ => {
                    assert_tern_header(&pdu, SUBMIT_SM, ESME_ROK, sequence);
                    assert_tern_sm(tern_body!(pdu, SubmitSm), &SUBMIT_SM_PAYLOAD);
                }
            }
        }
        assert!(
            tern_in.next().await.is_none(),
            "tern: stream ends after the last PDU"
        );
    };
    let tern_sends = async {
        for sequence in 1..=ROUNDS * 4 {
            tern_out.send(tern_pdu(sequence)).await.expect("tern sends");
        }
        SinkExt::<Pdu>::close(&mut tern_out)
            .await
            .expect("tern closes");
    };
    let rusmpp_receives = async {
        for sequence in 1..=ROUNDS * 4 {
            let command = rusmpp_in
                .next()
                .await
                .expect("a frame")
                .expect("rusmpp decodes");
            match sequence % 4 {
                0 => {
                    assert_rusmpp_header(&command, ENQUIRE_LINK | RESP, ESME_ROK, sequence);
                    assert_eq!(command.pdu(), Some(&r::Pdu::EnquireLinkResp));
                }
                1 => {
                    assert_rusmpp_header(&command, SUBMIT_SM | RESP, ESME_ROK, sequence);
                    let resp = rusmpp_body!(command, SubmitSmResp);
                    assert_eq!(resp.message_id().as_str(), "5f3c2a9e-0001");
                }
                2 => {
                    assert_rusmpp_header(&command, DELIVER_SM, ESME_ROK, sequence);
                    assert_rusmpp_sm!(rusmpp_body!(command, DeliverSm), &DELIVER_SM_MO);
                }
                _ => {
                    assert_rusmpp_header(&command, GENERIC_NACK, ESME_RTHROTTLED, sequence);
                    assert_eq!(command.pdu(), Some(&r::Pdu::GenericNack));
                }
            }
        }
        assert!(
            rusmpp_in.next().await.is_none(),
            "rusmpp: stream ends after the last PDU"
        );
    };

    tokio::join!(rusmpp_sends, tern_receives, tern_sends, rusmpp_receives);
}
