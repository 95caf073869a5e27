//! The one error type of the text module.
//!
//! Every variant names what was wrong and where (character index for text,
//! octet offset for data), so callers classify by variant, never by message.

use super::Encoding;
use thiserror::Error;

/// Why text could not be encoded, data decoded, or parts split or reassembled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TextError {
    /// The coding has no code for this character and the policy was `Error`.
    #[error("character {ch:?} at position {position} has no representation in {encoding}")]
    Unrepresentable {
        /// The offending character.
        ch: char,
        /// Its index in the text, counted in characters.
        position: usize,
        /// The coding that lacks it.
        encoding: Encoding,
    },

    /// An octet that is not a code of the coding (a septet above 0x7F, a
    /// non-ASCII octet in IA5).
    #[error("octet 0x{value:02X} at offset {position} is not a valid {encoding} code")]
    InvalidOctet {
        /// The octet.
        value: u8,
        /// Its offset in the data.
        position: usize,
        /// The coding it was read as.
        encoding: Encoding,
    },

    /// UCS-2 data must be a whole number of 16-bit units.
    #[error("UCS-2 data has odd length {len}")]
    OddLength {
        /// Length of the data in octets.
        len: usize,
    },

    /// A UTF-16 surrogate without its partner.
    #[error("unpaired UTF-16 surrogate 0x{unit:04X} at offset {position}")]
    UnpairedSurrogate {
        /// The surrogate code unit.
        unit: u16,
        /// Its offset in the data, in octets.
        position: usize,
    },

    /// Fill bits before packed septets are 0 to 6.
    #[error("fill bits must be 0 to 6, got {fill_bits}")]
    InvalidFillBits {
        /// The value given.
        fill_bits: u8,
    },

    /// A septet count that needs more bits than the data holds.
    #[error("{septets} septets do not fit in {octets} octets")]
    SeptetsExceedData {
        /// Septets asked for.
        septets: usize,
        /// Octets available.
        octets: usize,
    },

    /// A concatenation header numbers parts with one octet.
    #[error("text needs {parts} parts; at most 255 can be concatenated")]
    TooManyParts {
        /// Parts the text would need.
        parts: usize,
    },

    /// UDHI was set but there is not even a UDH length octet.
    #[error("short_message is empty although UDHI announces a user data header")]
    MissingUdh,

    /// The UDH length octet points past the end of the data.
    #[error("UDH length {udhl} exceeds the {available} octets that follow it")]
    UdhLengthExceedsData {
        /// The UDHL value.
        udhl: usize,
        /// Octets present after the UDHL octet.
        available: usize,
    },

    /// An information element runs past the end of the UDH.
    #[error("information element 0x{iei:02X} at UDH offset {offset} runs past the end of the UDH")]
    ElementTruncated {
        /// Its identifier (0 when even that is missing).
        iei: u8,
        /// Offset of the element within the UDH, counted after the UDHL octet.
        offset: usize,
    },

    /// The elements do not fit the one-octet UDH length.
    #[error("UDH body of {len} octets does not fit the one-octet UDH length")]
    UdhTooLong {
        /// Length of all elements together.
        len: usize,
    },

    /// A concatenation element with the wrong length.
    #[error("concatenation element 0x{iei:02X} has length {len}, expected {expected}")]
    BadConcatElement {
        /// 0x00 or 0x08.
        iei: u8,
        /// Its actual data length.
        len: usize,
        /// The length the spec gives it.
        expected: usize,
    },

    /// Part numbers outside 1..=total, or a total of zero.
    #[error("invalid concatenation numbers: part {sequence} of {total}")]
    BadConcatNumbers {
        /// Total parts announced.
        total: u8,
        /// Sequence number announced.
        sequence: u8,
    },

    /// `reassemble` was given nothing.
    #[error("no parts to reassemble")]
    NoParts,

    /// Several parts were given but one carries neither a concatenation UDH
    /// nor SAR values.
    #[error("part {index} of a multi-part message carries no concatenation info")]
    MissingConcatInfo {
        /// Index of the part in the input.
        index: usize,
    },

    /// A part whose reference, total or kind of header differs from the
    /// first part's: it belongs to another message.
    #[error("part {index} belongs to another message (reference, total or header kind differs)")]
    ConcatMismatch {
        /// Index of the part in the input.
        index: usize,
    },

    /// The same sequence number twice.
    #[error("part {sequence} was received twice")]
    DuplicatePart {
        /// The repeated sequence number.
        sequence: u8,
    },

    /// A gap in the sequence numbers.
    #[error("part {sequence} of {total} is missing")]
    MissingPart {
        /// The first missing sequence number.
        sequence: u8,
        /// Total parts announced.
        total: u8,
    },
}
