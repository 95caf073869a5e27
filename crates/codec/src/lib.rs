//! The SMPP wire format for Tern: PDUs, TLVs, command statuses, text
//! codings and segmentation, delivery receipt text, SMPP time. No I/O: the
//! optional `tokio-codec` feature adds a `tokio_util` codec and nothing else.
//!
//! Decoding is zero-copy over [`bytes::Bytes`]; every field type carries the
//! specification's limit, every decoding error names its field and the
//! `command_status` to answer with, and foreign data (unknown commands, vendor
//! TLVs, vendor statuses) passes through unchanged.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod command_id;
mod error;
mod framing;
mod header;
mod octets;
pub mod pdu;
pub mod receipt;
mod status;
pub mod text;
pub mod time;
pub mod tlv;
mod values;
mod wire;

pub use command_id::CommandId;
pub use error::{DecodeError, Field, FieldError};
pub use framing::{CodecError, Frame, FrameError, SmppCodec, DEFAULT_MAX_COMMAND_LENGTH};
pub use header::{Header, HEADER_LEN};
pub use octets::{COctetString, ShortMessage, TimeString};
pub use pdu::{Body, Malformed, Pdu, PduError};
pub use status::CommandStatus;
pub use tlv::{Tlv, Tlvs};
pub use values::{
    Address, DataCoding, EsmClass, InterfaceVersion, MessageState, Npi, PriorityFlag,
    ReceiptRequest, RegisteredDelivery, Ton,
};
