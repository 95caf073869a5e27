//! The malformed-input table: each broken PDU gives the error the session
//! acts on and the status it answers with (SMPP 3.4 §5.1.3).

use bytes::{Bytes, BytesMut};
use tern_codec::{
    Body, CommandId, CommandStatus, DecodeError, Field, Frame, FrameError, Pdu, PduError, SmppCodec,
};

fn pdu_bytes(id: u32, seq: u32, body: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + body.len());
    v.extend_from_slice(&(16 + body.len() as u32).to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(body);
    v
}

/// submit_sm body pieces up to (not including) sm_length, with the given addresses and times.
fn submit_head(source: &[u8], dest: &[u8], schedule: &[u8], validity: &[u8]) -> Vec<u8> {
    let mut v = vec![0]; // service_type ""
    v.extend_from_slice(&[1, 1]);
    v.extend_from_slice(source);
    v.push(0);
    v.extend_from_slice(&[1, 1]);
    v.extend_from_slice(dest);
    v.push(0);
    v.extend_from_slice(&[0, 0, 0]);
    v.extend_from_slice(schedule);
    v.push(0);
    v.extend_from_slice(validity);
    v.push(0);
    v.extend_from_slice(&[1, 0, 0, 0]);
    v
}

fn decode_err(bytes: Vec<u8>) -> DecodeError {
    match Pdu::decode(Bytes::from(bytes)) {
        Err(PduError::Malformed(m)) => m.error,
        other => panic!("expected a malformed body, got {other:?}"),
    }
}

/// One row: the body decodes to `error`, answered with `status`.
fn row(id: u32, body: Vec<u8>, error: DecodeError, status: CommandStatus) {
    let got = decode_err(pdu_bytes(id, 9, &body));
    assert_eq!(got, error);
    assert_eq!(got.command_status(), status, "status for {got}");
}

#[test]
fn header_problems() {
    // Truncated header: not a PDU; a stream waits for more.
    let err = Pdu::decode(Bytes::from_static(&[0, 0, 0, 16, 0, 0])).expect_err("too short");
    assert_eq!(err.command_status(), CommandStatus::InvalidCommandLength);
    let mut buf = BytesMut::from(&[0u8, 0, 0, 16, 0, 0][..]);
    assert_eq!(SmppCodec::new().decode_frame(&mut buf), Ok(None));

    // Truncated body: the header promises more than there is.
    let mut bytes = pdu_bytes(0x15, 1, &[]);
    bytes[3] = 20;
    assert_eq!(
        Pdu::decode(Bytes::from(bytes.clone())),
        Err(PduError::LengthMismatch {
            command_length: 20,
            actual: 16
        })
    );
    let mut buf = BytesMut::from(&bytes[..]);
    assert_eq!(SmppCodec::new().decode_frame(&mut buf), Ok(None));

    // command_length 0, 15 and 2^31.
    for (len, expected) in [
        (0u32, "TooShort"),
        (15, "TooShort"),
        (0x8000_0000, "TooLong"),
    ] {
        let mut bytes = pdu_bytes(0x15, 5, &[]);
        bytes[..4].copy_from_slice(&len.to_be_bytes());
        let mut buf = BytesMut::from(&bytes[..]);
        let capacity = buf.capacity();
        let err = SmppCodec::new()
            .decode_frame(&mut buf)
            .expect_err("impossible length");
        match (&err, expected) {
            (FrameError::TooShort { .. }, "TooShort") | (FrameError::TooLong { .. }, "TooLong") => {
            }
            _ => panic!("length {len}: got {err:?}"),
        }
        assert_eq!(err.command_status(), CommandStatus::InvalidCommandLength);
        assert_eq!(err.sequence_number(), Some(5));
        assert_eq!(
            buf.capacity(),
            capacity,
            "nothing reserved for length {len}"
        );
    }
}

#[test]
fn an_oversized_length_is_refused_on_its_first_four_octets() {
    let mut buf = BytesMut::from(&[0x00u8, 0x01, 0x00, 0x01][..]); // 65 537 > 64 KiB
    assert_eq!(
        SmppCodec::new().decode_frame(&mut buf),
        Err(FrameError::TooLong {
            command_length: 65_537,
            max: 65_536,
            sequence_number: None
        })
    );
    let codec = SmppCodec::new().with_max_command_length(1024);
    let mut buf = BytesMut::from(&pdu_bytes(0x15, 1, &[0; 1100])[..]);
    assert!(matches!(
        codec.decode_frame(&mut buf),
        Err(FrameError::TooLong { max: 1024, .. })
    ));
}

#[test]
fn body_problems() {
    // Missing C-string terminator: the body ends first.
    row(
        0x02,
        b"abc".to_vec(),
        DecodeError::Truncated {
            field: Field::SystemId,
        },
        CommandStatus::InvalidCommandLength,
    );
    // No terminator within the field's maximum.
    row(
        0x02,
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ\0".to_vec(),
        DecodeError::TooLong {
            field: Field::SystemId,
            max: 16,
        },
        CommandStatus::InvalidSystemId,
    );
    let mut bind = b"sys\0ABCDEFGHIJ\0".to_vec();
    bind.extend_from_slice(&[0; 8]);
    row(
        0x09,
        bind,
        DecodeError::TooLong {
            field: Field::Password,
            max: 9,
        },
        CommandStatus::InvalidPassword,
    );
    let long_addr = [b'1'; 21];
    let mut body = submit_head(&long_addr, b"1", b"", b"");
    body.extend_from_slice(&[0]);
    row(
        0x04,
        body,
        DecodeError::TooLong {
            field: Field::SourceAddr,
            max: 21,
        },
        CommandStatus::InvalidSourceAddress,
    );
    let mut body = submit_head(b"1", &long_addr, b"", b"");
    body.extend_from_slice(&[0]);
    row(
        0x04,
        body,
        DecodeError::TooLong {
            field: Field::DestinationAddr,
            max: 21,
        },
        CommandStatus::InvalidDestinationAddress,
    );
    // Time fields are 1 or 17 octets.
    let mut body = submit_head(b"1", b"2", b"26112112", b"");
    body.push(0);
    row(
        0x04,
        body,
        DecodeError::TimeLength {
            field: Field::ScheduleDeliveryTime,
            len: 8,
        },
        CommandStatus::InvalidScheduleTime,
    );
    let mut body = submit_head(b"1", b"2", b"", b"1R");
    body.push(0);
    row(
        0x04,
        body,
        DecodeError::TimeLength {
            field: Field::ValidityPeriod,
            len: 2,
        },
        CommandStatus::InvalidExpiry,
    );
    // sm_length above 254, and beyond the end of the PDU.
    let mut body = submit_head(b"1", b"2", b"", b"");
    body.push(255);
    body.extend_from_slice(&[b'x'; 255]);
    row(
        0x04,
        body,
        DecodeError::SmLengthTooLarge(255),
        CommandStatus::InvalidMessageLength,
    );
    let mut body = submit_head(b"1", b"2", b"", b"");
    body.push(10);
    body.extend_from_slice(b"short");
    row(
        0x04,
        body,
        DecodeError::Truncated {
            field: Field::ShortMessage,
        },
        CommandStatus::InvalidCommandLength,
    );
    // A TLV whose length runs past the PDU.
    let mut body = submit_head(b"1", b"2", b"", b"");
    body.extend_from_slice(&[2, b'h', b'i']);
    body.extend_from_slice(&[0x04, 0x24, 0x00, 0x40, b'x']);
    row(
        0x04,
        body,
        DecodeError::TlvTruncated { offset: 0 },
        CommandStatus::InvalidTlvStream,
    );
    // A typed TLV of the wrong size.
    let mut body = submit_head(b"1", b"2", b"", b"");
    body.extend_from_slice(&[0]);
    body.extend_from_slice(&[0x02, 0x04, 0x00, 0x01, 0x42]);
    row(
        0x04,
        body,
        DecodeError::TlvLength {
            tag: 0x0204,
            len: 1,
            expected: "2",
        },
        CommandStatus::InvalidParameterLength,
    );
    // An operation without a body, with one.
    row(
        0x15,
        vec![0],
        DecodeError::UnexpectedBody {
            command: "enquire_link",
            len: 1,
        },
        CommandStatus::InvalidCommandLength,
    );
}

#[test]
fn short_message_and_message_payload_together() {
    let mut body = submit_head(b"1", b"2", b"", b"");
    body.extend_from_slice(&[2, b'h', b'i']);
    body.extend_from_slice(&[0x04, 0x24, 0x00, 0x02, b'h', b'i']);
    row(
        0x04,
        body.clone(),
        DecodeError::ShortMessageAndPayload,
        CommandStatus::InvalidMessageLength,
    );
    // What an upstream delivers is read anyway: a receipt is still a receipt.
    let pdu = Pdu::decode(Bytes::from(pdu_bytes(0x05, 9, &body))).expect("deliver_sm is tolerated");
    assert!(matches!(pdu.body, Body::DeliverSm(_)));
}

#[test]
fn submit_multi_destinations() {
    let mut body = vec![0, 1, 1, b'1', 0, 0];
    body.extend_from_slice(&[0; 12]);
    row(
        0x21,
        body,
        DecodeError::InvalidValue {
            field: Field::NumberOfDests,
            value: 0,
        },
        CommandStatus::InvalidNumberOfDestinations,
    );
    let mut body = vec![0, 1, 1, b'1', 0, 1, 3];
    body.extend_from_slice(&[0; 12]);
    row(
        0x21,
        body,
        DecodeError::InvalidValue {
            field: Field::DestFlag,
            value: 3,
        },
        CommandStatus::InvalidDestinationFlag,
    );
}

#[test]
fn unknown_command_ids_are_reported_with_their_sequence() {
    let pdu = Pdu::decode(Bytes::from(pdu_bytes(0x0000_0999, 0x1234, b"junk"))).expect("kept");
    assert_eq!(pdu.command_id(), CommandId::Other(0x999));
    assert_eq!(pdu.sequence_number, 0x1234);
    let nack = Pdu::error_response(
        pdu.command_id(),
        pdu.sequence_number,
        CommandStatus::InvalidCommandId,
    )
    .expect("answered");
    assert_eq!(
        nack,
        Pdu::generic_nack(0x1234, CommandStatus::InvalidCommandId)
    );
}

#[test]
fn a_malformed_request_is_answered_with_its_own_response() {
    let mut buf = BytesMut::from(&pdu_bytes(0x04, 31, b"abc")[..]);
    let Ok(Some(Frame::Malformed(m))) = SmppCodec::new().decode_frame(&mut buf) else {
        panic!("expected a malformed frame");
    };
    assert_eq!(m.header.sequence_number, 31);
    let resp = m.response().expect("submit_sm is answered");
    assert_eq!(resp.command_id(), CommandId::SubmitSmResp);
    assert_eq!(resp.command_status, CommandStatus::InvalidCommandLength);
    assert_eq!(resp.sequence_number, 31);
    assert_eq!(resp.encoded_len(), 16, "error responses carry no body");

    // A malformed response is not answered.
    let mut buf = BytesMut::from(&pdu_bytes(0x8000_0004, 32, b"abc")[..]);
    let Ok(Some(Frame::Malformed(m))) = SmppCodec::new().decode_frame(&mut buf) else {
        panic!("expected a malformed frame");
    };
    assert_eq!(m.response(), None);
}
