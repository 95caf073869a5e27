//! Framing: splitting a byte stream into PDUs.
//!
//! Only a `command_length` that cannot be right (below 16, above the
//! configured maximum) is a framing error: the stream can no longer be
//! trusted and, since a `FramedRead` ends after its decoder's first error,
//! the session answers `generic_nack ESME_RINVCMDLEN` and closes. A body that
//! does not decode is an *item*, [`Frame::Malformed`], so one bad submit_sm
//! costs one error response, not the session.
//!
//! The length is checked as soon as its four octets arrive, before anything
//! is reserved: a peer announcing 2 GiB gets an error, not an allocation.

use bytes::{Buf, Bytes, BytesMut};

use crate::header::{Header, HEADER_LEN};
use crate::pdu::{Malformed, Pdu};
use crate::values::InterfaceVersion;
use crate::CommandStatus;

/// The default maximum `command_length`: 64 KiB, room for a full
/// `message_payload` and its headers.
pub const DEFAULT_MAX_COMMAND_LENGTH: usize = 64 * 1024;

/// A `command_length` the stream cannot recover from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than a header.
    #[error("command_length {command_length} is below the 16-octet header")]
    TooShort {
        /// The length announced.
        command_length: u32,
        /// The sequence number, if the header had arrived whole.
        sequence_number: Option<u32>,
    },
    /// Above the configured maximum.
    #[error("command_length {command_length} exceeds the maximum of {max}")]
    TooLong {
        /// The length announced.
        command_length: u32,
        /// The configured maximum.
        max: usize,
        /// The sequence number, if the header had arrived whole.
        sequence_number: Option<u32>,
    },
}

impl FrameError {
    /// The status of the `generic_nack` sent before closing.
    pub const fn command_status(&self) -> CommandStatus {
        CommandStatus::InvalidCommandLength
    }

    /// The same error, with the sequence number once known.
    fn with_sequence_number(self, sequence: Option<u32>) -> Self {
        match self {
            Self::TooShort { command_length, .. } => Self::TooShort {
                command_length,
                sequence_number: sequence,
            },
            Self::TooLong {
                command_length,
                max,
                ..
            } => Self::TooLong {
                command_length,
                max,
                sequence_number: sequence,
            },
        }
    }

    /// The sequence number to answer with, if it was read (0 otherwise, as
    /// the specification's generic_nack allows).
    pub const fn sequence_number(&self) -> Option<u32> {
        match self {
            Self::TooShort {
                sequence_number, ..
            }
            | Self::TooLong {
                sequence_number, ..
            } => *sequence_number,
        }
    }
}

/// Checks a `command_length` against the header size and `max`.
pub(crate) fn check_length(
    command_length: u32,
    max: usize,
    sequence_number: Option<u32>,
) -> Result<usize, FrameError> {
    let len = command_length as usize;
    if len < HEADER_LEN {
        return Err(FrameError::TooShort {
            command_length,
            sequence_number,
        });
    }
    if len > max {
        return Err(FrameError::TooLong {
            command_length,
            max,
            sequence_number,
        });
    }
    Ok(len)
}

/// What the decoder yields for each PDU-sized frame.
///
/// `Pdu` is the large and the common variant; boxing it would cost an
/// allocation per PDU to shrink the rare `Malformed`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A PDU that decoded.
    Pdu(Pdu),
    /// A frame whose body did not decode; answer it and go on.
    Malformed(Malformed),
}

/// Errors that end a framed stream.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// An impossible `command_length`.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The transport failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The SMPP codec for `tokio_util::codec::{FramedRead, FramedWrite, Framed}`.
#[derive(Debug, Clone)]
pub struct SmppCodec {
    /// Largest `command_length` accepted, header included.
    max_command_length: usize,
    /// The peer's version: TLVs are not sent to a 3.3 peer.
    peer_version: InterfaceVersion,
}

impl Default for SmppCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl SmppCodec {
    /// A codec with the default maximum, talking to a 3.4 peer.
    pub const fn new() -> Self {
        Self {
            max_command_length: DEFAULT_MAX_COMMAND_LENGTH,
            peer_version: InterfaceVersion::V34,
        }
    }

    /// Sets the largest `command_length` accepted (at least the header's 16).
    pub fn with_max_command_length(mut self, max: usize) -> Self {
        self.max_command_length = max.max(HEADER_LEN);
        self
    }

    /// The largest `command_length` accepted.
    pub fn max_command_length(&self) -> usize {
        self.max_command_length
    }

    /// Records the peer's `interface_version` once the bind says it.
    pub fn set_peer_version(&mut self, version: InterfaceVersion) {
        self.peer_version = version;
    }

    /// The peer's version as last set.
    pub fn peer_version(&self) -> InterfaceVersion {
        self.peer_version
    }

    /// Splits one frame off `src` if a whole one is there.
    pub fn decode_frame(&self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        let Some(prefix) = src.get(..4) else {
            return Ok(None);
        };
        let command_length = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
        let len = check_length(command_length, self.max_command_length, None).map_err(|err| {
            // The sequence number, if it has arrived, lets the generic_nack answer it.
            err.with_sequence_number(Header::peek(src).map(|h| h.sequence_number))
        })?;
        if src.len() < len {
            // Bounded by the maximum checked above.
            src.reserve(len - src.len());
            return Ok(None);
        }
        let Some(header) = Header::peek(src) else {
            // Unreachable: `len` is at least HEADER_LEN. Kept total anyway.
            return Err(FrameError::TooShort {
                command_length,
                sequence_number: None,
            });
        };
        let body = if len == HEADER_LEN {
            // enquire_link, unbind, most responses: no body to share, so no
            // need to turn the read buffer into shared storage.
            src.advance(HEADER_LEN);
            Bytes::new()
        } else {
            let mut frame = src.split_to(len);
            frame.advance(HEADER_LEN);
            frame.freeze()
        };
        Ok(Some(match Pdu::decode_body(&header, body) {
            Ok(pdu) => Frame::Pdu(pdu),
            Err(malformed) => Frame::Malformed(malformed),
        }))
    }

    /// Appends `pdu`, dropping its TLVs for a 3.3 peer.
    pub fn encode_pdu(&self, mut pdu: Pdu, dst: &mut BytesMut) {
        if !self.peer_version.supports_tlvs() {
            if let Some(tlvs) = pdu.body.tlvs_mut() {
                tlvs.clear();
            }
        }
        pdu.encode(dst);
    }

    /// Appends a borrowed `pdu` (one kept for a retry, say); only a 3.3 peer
    /// with TLVs to drop costs a copy. Not an `Encoder<&Pdu>`: a second
    /// `Encoder` impl would make `flush()` on every `FramedWrite` ambiguous.
    pub fn encode_pdu_ref(&self, pdu: &Pdu, dst: &mut BytesMut) {
        let has_tlvs = pdu.body.tlvs().is_some_and(|tlvs| !tlvs.is_empty());
        if has_tlvs && !self.peer_version.supports_tlvs() {
            self.encode_pdu(pdu.clone(), dst);
        } else {
            pdu.encode(dst);
        }
    }
}

#[cfg(feature = "tokio-codec")]
mod tokio_codec {
    use bytes::BytesMut;
    use tokio_util::codec::{Decoder, Encoder};

    use super::{CodecError, Frame, SmppCodec};
    use crate::pdu::Pdu;

    impl Decoder for SmppCodec {
        type Item = Frame;
        type Error = CodecError;

        fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, CodecError> {
            Ok(self.decode_frame(src)?)
        }
    }

    impl Encoder<Pdu> for SmppCodec {
        type Error = CodecError;

        fn encode(&mut self, pdu: Pdu, dst: &mut BytesMut) -> Result<(), CodecError> {
            self.encode_pdu(pdu, dst);
            Ok(())
        }
    }
}
