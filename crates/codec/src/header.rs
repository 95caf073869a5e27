//! The 16-octet PDU header (SMPP 3.4 §3.2).

use crate::{CommandId, CommandStatus};

/// Octets in a PDU header; also the smallest valid `command_length`.
pub const HEADER_LEN: usize = 16;

/// A decoded header. `command_length` is kept because a header is also what
/// we report when the body could not be decoded; a [`Pdu`](crate::Pdu) derives
/// its length from its body instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total PDU length, header included.
    pub command_length: u32,
    /// The operation.
    pub command_id: CommandId,
    /// Zero in requests; the outcome in responses.
    pub command_status: CommandStatus,
    /// Correlates a response with its request.
    pub sequence_number: u32,
}

impl Header {
    /// Reads a header from the first 16 octets of `src`, or `None` if fewer are present.
    pub fn peek(src: &[u8]) -> Option<Header> {
        let word = |at: usize| -> Option<u32> {
            let bytes: [u8; 4] = src.get(at..at + 4)?.try_into().ok()?;
            Some(u32::from_be_bytes(bytes))
        };
        Some(Header {
            command_length: word(0)?,
            command_id: CommandId::from_code(word(4)?),
            command_status: CommandStatus::from_code(word(8)?),
            sequence_number: word(12)?,
        })
    }
}
