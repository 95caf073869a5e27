//! `SmppCodec::decode_frame` over a byte stream that arrives in chunks.
//!
//! Input layout: `data[0..3]` pick the configured maximum `command_length`,
//! `data[3..5]` seed the chunk sizes, the rest is the stream. The stream is
//! appended to one `BytesMut` a chunk at a time, and after each chunk
//! `decode_frame` is called until it returns `Ok(None)` or `Err`.
//!
//! Properties, checked against a model that reads `command_length` itself:
//! - never panics; the maximum is clamped to at least 16;
//! - a frame is exactly one `command_length` of octets, 16 <= len <= max,
//!   split off the front of the buffer; `Ok(None)` consumes nothing and is
//!   only returned when no whole frame is buffered; `Err` is returned exactly
//!   when the buffered `command_length` is below 16 or above the maximum, and
//!   the error's kind, length and sequence number match the header;
//! - `Frame::Pdu(p)`: `p` re-encodes to the frame's octets and equals
//!   `Pdu::decode(frame)`;
//! - `Frame::Malformed(m)`: `m.response()` / `m.command_status()` do not
//!   panic, and `Pdu::decode(frame)` fails with the same `Malformed`.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use tern_codec::{Frame, FrameError, Pdu, PduError, SmppCodec, HEADER_LEN};

/// Upper bound on the configured maximum: a real deployment uses 64 KiB, and
/// a much larger maximum only makes the fuzzer reserve memory by design.
const MAX_MAX: usize = 1 << 17;

fuzz_target!(|data: &[u8]| {
    if data.len() < 5 {
        return;
    }
    let requested = (usize::from(data[0]) << 16 | usize::from(data[1]) << 8 | usize::from(data[2]))
        % (MAX_MAX + 1);
    let codec = SmppCodec::new().with_max_command_length(requested);
    let max = codec.max_command_length();
    assert_eq!(max, requested.max(HEADER_LEN), "maximum not clamped to the header");

    // Chunk sizes from a xorshift seeded by the input: 1..=cap octets, where
    // the cap is small for most seeds so frames straddle chunk boundaries.
    let mut rng = u32::from(u16::from_be_bytes([data[3], data[4]])) | 0x1_0000;
    let cap = match data[3] & 3 {
        0 => 1,
        1 => 7,
        2 => 64,
        _ => 4096,
    };
    let stream = &data[5..];

    let mut buf = BytesMut::new();
    let mut fed = 0; // octets of `stream` appended to `buf`
    let mut consumed = 0; // octets of `stream` split off as frames
    while fed < stream.len() {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        let chunk = (1 + rng as usize % cap).min(stream.len() - fed);
        buf.extend_from_slice(&stream[fed..fed + chunk]);
        fed += chunk;
        loop {
            assert_eq!(&buf[..], &stream[consumed..fed], "buffer lost or reordered octets");
            let pending = &stream[consumed..fed];
            let expect = model(pending, max);
            match codec.decode_frame(&mut buf) {
                Ok(None) => {
                    assert_eq!(buf.len(), pending.len(), "Ok(None) consumed octets");
                    assert_eq!(expect, Model::NeedMore, "Ok(None) with {}", hex(pending));
                    break;
                }
                Err(err) => {
                    let _ = err.command_status();
                    let _ = err.sequence_number();
                    check_error(&err, pending, max);
                    assert_eq!(expect, Model::Error, "unexpected {err:?}");
                    return;
                }
                Ok(Some(frame)) => {
                    let len = pending.len() - buf.len();
                    assert_eq!(expect, Model::Frame(len), "frame of {len} octets");
                    assert!((HEADER_LEN..=max).contains(&len), "frame of {len} > max {max}");
                    let octets = &pending[..len];
                    consumed += len;
                    check_frame(frame, octets);
                }
            }
        }
    }
    // Everything that could be framed was: what is left is a partial frame.
    assert_eq!(model(&stream[consumed..], max), Model::NeedMore);
});

#[derive(Debug, PartialEq, Eq)]
enum Model {
    NeedMore,
    Error,
    Frame(usize),
}

/// What a correct decoder does with `pending` buffered.
fn model(pending: &[u8], max: usize) -> Model {
    let Some(prefix) = pending.get(..4) else {
        return Model::NeedMore;
    };
    let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
    if len < HEADER_LEN || len > max {
        Model::Error
    } else if pending.len() < len {
        Model::NeedMore
    } else {
        Model::Frame(len)
    }
}

fn check_error(err: &FrameError, pending: &[u8], max: usize) {
    let word = |at: usize| {
        pending
            .get(at..at + 4)
            .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    };
    let command_length = word(0).expect("error before 4 octets");
    let sequence_number = word(12);
    let expected = if (command_length as usize) < HEADER_LEN {
        FrameError::TooShort { command_length, sequence_number }
    } else {
        FrameError::TooLong { command_length, max, sequence_number }
    };
    assert_eq!(*err, expected);
}

fn check_frame(frame: Frame, octets: &[u8]) {
    let direct = Pdu::decode(Bytes::copy_from_slice(octets));
    match frame {
        Frame::Pdu(pdu) => {
            let encoded = pdu.to_bytes();
            assert!(
                encoded[..] == octets[..],
                "frame does not re-encode to its octets\n  frame:  {}\n  output: {}\n  pdu: {pdu:?}",
                hex(octets),
                hex(&encoded),
            );
            assert_eq!(direct, Ok(pdu), "Pdu::decode disagrees with decode_frame");
        }
        Frame::Malformed(m) => {
            let _ = m.command_status();
            if let Some(resp) = m.response() {
                let _ = resp.to_bytes();
            }
            assert_eq!(m.header.command_length as usize, octets.len());
            assert_eq!(
                direct,
                Err(PduError::Malformed(m)),
                "Pdu::decode disagrees with decode_frame"
            );
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
