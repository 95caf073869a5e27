//! Framing over a real byte stream (`tokio::io::duplex`) with tiny and large
//! buffers: PDUs split anywhere reassemble, a malformed body is an item the
//! stream survives, an impossible length ends the stream.

use futures::{SinkExt, StreamExt};
use tern_codec::pdu::SmResp;
use tern_codec::{Body, CodecError, CommandStatus, Frame, FrameError, Pdu, SmppCodec};
use tokio::io::AsyncWriteExt;
use tokio_util::codec::{FramedRead, FramedWrite};

fn sample() -> Vec<Pdu> {
    vec![
        Pdu::new(1, Body::EnquireLink),
        Pdu::new(
            2,
            Body::SubmitSmResp(SmResp::with_id("abc".try_into().expect("short"))),
        ),
        Pdu::generic_nack(3, CommandStatus::InvalidCommandId),
        Pdu::new(4, Body::Unbind),
    ]
}

async fn round_trip(buffer: usize) {
    let (client, server) = tokio::io::duplex(buffer);
    let writer = tokio::spawn(async move {
        let mut sink = FramedWrite::new(client, SmppCodec::new());
        for pdu in sample() {
            sink.send(pdu).await.expect("write");
        }
    });
    let frames: Vec<Frame> = FramedRead::new(server, SmppCodec::new())
        .map(|f| f.expect("valid stream"))
        .collect()
        .await;
    writer.await.expect("writer");
    let expected: Vec<Frame> = sample().into_iter().map(Frame::Pdu).collect();
    assert_eq!(frames, expected);
}

#[tokio::test]
async fn pdus_split_at_every_octet_reassemble() {
    round_trip(1).await;
}

#[tokio::test]
async fn pdus_in_one_large_buffer_split() {
    round_trip(64 * 1024).await;
}

#[tokio::test]
async fn a_malformed_body_does_not_end_the_stream() {
    let (mut client, server) = tokio::io::duplex(7);
    let writer = tokio::spawn(async move {
        let mut bytes = Pdu::new(1, Body::EnquireLink).to_bytes().to_vec();
        // A bind_transmitter whose system_id has no terminator.
        bytes.extend_from_slice(&[
            0, 0, 0, 19, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2, b'a', b'b', b'c',
        ]);
        bytes.extend_from_slice(&Pdu::new(3, Body::EnquireLink).to_bytes());
        client.write_all(&bytes).await.expect("write");
    });
    let frames: Vec<Frame> = FramedRead::new(server, SmppCodec::new())
        .map(|f| f.expect("framing is intact"))
        .collect()
        .await;
    writer.await.expect("writer");
    assert_eq!(frames.len(), 3);
    assert_eq!(frames[0], Frame::Pdu(Pdu::new(1, Body::EnquireLink)));
    let Frame::Malformed(m) = &frames[1] else {
        panic!("second frame should be malformed: {:?}", frames[1]);
    };
    assert_eq!(m.header.sequence_number, 2);
    assert_eq!(m.command_status(), CommandStatus::InvalidCommandLength);
    assert_eq!(frames[2], Frame::Pdu(Pdu::new(3, Body::EnquireLink)));
}

#[tokio::test]
async fn an_impossible_length_ends_the_stream_after_the_pdus_before_it() {
    let (mut client, server) = tokio::io::duplex(1024);
    let writer = tokio::spawn(async move {
        let mut bytes = Pdu::new(1, Body::EnquireLink).to_bytes().to_vec();
        bytes.extend_from_slice(&[
            0x7F, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 9,
        ]);
        bytes.extend_from_slice(&Pdu::new(3, Body::EnquireLink).to_bytes());
        client.write_all(&bytes).await.expect("write");
    });
    let mut read = FramedRead::new(server, SmppCodec::new());
    assert_eq!(
        read.next().await.map(|r| r.ok()),
        Some(Some(Frame::Pdu(Pdu::new(1, Body::EnquireLink))))
    );
    match read.next().await {
        Some(Err(CodecError::Frame(FrameError::TooLong {
            command_length: 0x7FFF_FFFF,
            sequence_number: Some(9),
            ..
        }))) => {}
        other => panic!("expected a TooLong error, got {other:?}"),
    }
    assert!(
        read.next().await.is_none(),
        "the stream ends after a framing error"
    );
    writer.await.expect("writer");
}
