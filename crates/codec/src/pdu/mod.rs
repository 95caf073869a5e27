//! Protocol data units: the header fields a PDU owns, and its body.
//!
//! A [`Pdu`] holds the sequence number, the status and a [`Body`]; the
//! command id is derived from the body variant and `command_length` from the
//! encoded body, so neither can disagree with what is sent. Unknown command
//! ids decode to [`Body::Unknown`] and encode back unchanged; the session
//! answers them with `generic_nack` `ESME_RINVCMDID`.

mod bind;
mod data;
mod multi;
mod query;
mod resp;
mod sm;

use bytes::{BufMut, Bytes, BytesMut};

pub use bind::{Bind, BindResp, Outbind};
pub use data::{AlertNotification, DataSm};
pub use multi::{Destination, SubmitMulti, SubmitMultiResp, Unsuccess};
pub use query::{CancelSm, QuerySm, QuerySmResp, ReplaceSm};
pub use resp::IdResp;
pub use sm::{DeliverSm, SmResp, SubmitSm};

use crate::error::{DecodeError, Field};
use crate::header::{Header, HEADER_LEN};
use crate::tlv::Tlvs;
use crate::wire::Reader;
use crate::{CommandId, CommandStatus};

macro_rules! bodies {
    (
        with_body { $( $(#[$doc:meta])* $variant:ident($ty:ty), )* }
        empty { $( $(#[$edoc:meta])* $empty:ident, )* }
    ) => {
        /// What a PDU says, by operation. Variant names match [`CommandId`].
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Body {
            $( $(#[$doc])* $variant($ty), )*
            $( $(#[$edoc])* $empty, )*
            /// A command id this codec does not know, body kept as received.
            /// Only the decoder makes these, for ids outside [`CommandId`]'s
            /// known set.
            Unknown {
                /// The command id from the header.
                command_id: u32,
                /// The body octets.
                body: Bytes,
            },
        }

        impl Body {
            /// The command id of this body.
            pub fn command_id(&self) -> CommandId {
                match self {
                    $( Self::$variant(_) => CommandId::$variant, )*
                    $( Self::$empty => CommandId::$empty, )*
                    Self::Unknown { command_id, .. } => CommandId::from_code(*command_id),
                }
            }

            /// Octets of the body on the wire.
            pub fn encoded_len(&self) -> usize {
                match self {
                    $( Self::$variant(b) => b.encoded_len(), )*
                    $( Self::$empty => 0, )*
                    Self::Unknown { body, .. } => body.len(),
                }
            }

            fn encode(&self, dst: &mut impl BufMut) {
                match self {
                    $( Self::$variant(b) => b.encode(dst), )*
                    $( Self::$empty => {}, )*
                    Self::Unknown { body, .. } => dst.put_slice(body),
                }
            }
        }
    };
}

bodies! {
    with_body {
        /// bind_transmitter (§4.1.1).
        BindTransmitter(Bind),
        /// bind_transmitter_resp (§4.1.2).
        BindTransmitterResp(BindResp),
        /// bind_receiver (§4.1.3).
        BindReceiver(Bind),
        /// bind_receiver_resp (§4.1.4).
        BindReceiverResp(BindResp),
        /// bind_transceiver (§4.1.5).
        BindTransceiver(Bind),
        /// bind_transceiver_resp (§4.1.6).
        BindTransceiverResp(BindResp),
        /// outbind (§4.1.7).
        Outbind(Outbind),
        /// submit_sm (§4.4.1).
        SubmitSm(SubmitSm),
        /// submit_sm_resp (§4.4.2).
        SubmitSmResp(SmResp),
        /// submit_multi (§4.5.1).
        SubmitMulti(SubmitMulti),
        /// submit_multi_resp (§4.5.2).
        SubmitMultiResp(SubmitMultiResp),
        /// deliver_sm (§4.6.1): MO messages and receipts.
        DeliverSm(DeliverSm),
        /// deliver_sm_resp (§4.6.2).
        DeliverSmResp(SmResp),
        /// data_sm (§4.7.1).
        DataSm(DataSm),
        /// data_sm_resp (§4.7.2).
        DataSmResp(SmResp),
        /// query_sm (§4.8.1).
        QuerySm(QuerySm),
        /// query_sm_resp (§4.8.2).
        QuerySmResp(QuerySmResp),
        /// cancel_sm (§4.9.1).
        CancelSm(CancelSm),
        /// replace_sm (§4.10.1).
        ReplaceSm(ReplaceSm),
        /// alert_notification (§4.12.1).
        AlertNotification(AlertNotification),
    }
    empty {
        /// unbind (§4.2.1).
        Unbind,
        /// unbind_resp (§4.2.2).
        UnbindResp,
        /// generic_nack (§4.3.1).
        GenericNack,
        /// cancel_sm_resp (§4.9.2).
        CancelSmResp,
        /// replace_sm_resp (§4.10.2).
        ReplaceSmResp,
        /// enquire_link (§4.11.1).
        EnquireLink,
        /// enquire_link_resp (§4.11.2).
        EnquireLinkResp,
    }
}

impl Body {
    /// Decodes the body of a PDU whose header announced `command_id`.
    pub fn decode(command_id: CommandId, body: Bytes) -> Result<Body, DecodeError> {
        use CommandId as C;
        let r = Reader::new(body);
        Ok(match command_id {
            C::BindTransmitter => Body::BindTransmitter(Bind::decode(r)?),
            C::BindReceiver => Body::BindReceiver(Bind::decode(r)?),
            C::BindTransceiver => Body::BindTransceiver(Bind::decode(r)?),
            C::BindTransmitterResp => {
                Body::BindTransmitterResp(BindResp::decode(r, Field::SystemId)?)
            }
            C::BindReceiverResp => Body::BindReceiverResp(BindResp::decode(r, Field::SystemId)?),
            C::BindTransceiverResp => {
                Body::BindTransceiverResp(BindResp::decode(r, Field::SystemId)?)
            }
            C::Outbind => Body::Outbind(Outbind::decode(r)?),
            C::SubmitSm => Body::SubmitSm(SubmitSm::decode(r, true)?),
            C::SubmitSmResp => Body::SubmitSmResp(SmResp::decode(r, Field::MessageId)?),
            C::SubmitMulti => Body::SubmitMulti(SubmitMulti::decode(r)?),
            C::SubmitMultiResp => Body::SubmitMultiResp(SubmitMultiResp::decode(r)?),
            C::DeliverSm => Body::DeliverSm(DeliverSm::decode(r, false)?),
            C::DeliverSmResp => Body::DeliverSmResp(SmResp::decode(r, Field::MessageId)?),
            C::DataSm => Body::DataSm(DataSm::decode(r)?),
            C::DataSmResp => Body::DataSmResp(SmResp::decode(r, Field::MessageId)?),
            C::QuerySm => Body::QuerySm(QuerySm::decode(r)?),
            C::QuerySmResp => Body::QuerySmResp(QuerySmResp::decode(r)?),
            C::CancelSm => Body::CancelSm(CancelSm::decode(r)?),
            C::ReplaceSm => Body::ReplaceSm(ReplaceSm::decode(r)?),
            C::AlertNotification => Body::AlertNotification(AlertNotification::decode(r)?),
            C::Unbind => empty(r, C::Unbind, Body::Unbind)?,
            C::UnbindResp => empty(r, C::UnbindResp, Body::UnbindResp)?,
            C::GenericNack => empty(r, C::GenericNack, Body::GenericNack)?,
            C::CancelSmResp => empty(r, C::CancelSmResp, Body::CancelSmResp)?,
            C::ReplaceSmResp => empty(r, C::ReplaceSmResp, Body::ReplaceSmResp)?,
            C::EnquireLink => empty(r, C::EnquireLink, Body::EnquireLink)?,
            C::EnquireLinkResp => empty(r, C::EnquireLinkResp, Body::EnquireLinkResp)?,
            C::Other(command_id) => Body::Unknown {
                command_id,
                body: r.rest(),
            },
        })
    }

    /// The optional parameters, for bodies that have them.
    pub fn tlvs(&self) -> Option<&Tlvs> {
        match self {
            Body::BindTransmitterResp(b)
            | Body::BindReceiverResp(b)
            | Body::BindTransceiverResp(b) => Some(&b.tlvs),
            Body::SubmitSm(b) | Body::DeliverSm(b) => Some(&b.tlvs),
            Body::SubmitSmResp(b) | Body::DeliverSmResp(b) | Body::DataSmResp(b) => Some(&b.tlvs),
            Body::SubmitMulti(b) => Some(&b.tlvs),
            Body::SubmitMultiResp(b) => Some(&b.tlvs),
            Body::DataSm(b) => Some(&b.tlvs),
            Body::ReplaceSm(b) => Some(&b.tlvs),
            Body::AlertNotification(b) => Some(&b.tlvs),
            _ => None,
        }
    }

    /// The optional parameters, mutably, for bodies that have them.
    pub fn tlvs_mut(&mut self) -> Option<&mut Tlvs> {
        match self {
            Body::BindTransmitterResp(b)
            | Body::BindReceiverResp(b)
            | Body::BindTransceiverResp(b) => Some(&mut b.tlvs),
            Body::SubmitSm(b) | Body::DeliverSm(b) => Some(&mut b.tlvs),
            Body::SubmitSmResp(b) | Body::DeliverSmResp(b) | Body::DataSmResp(b) => {
                Some(&mut b.tlvs)
            }
            Body::SubmitMulti(b) => Some(&mut b.tlvs),
            Body::SubmitMultiResp(b) => Some(&mut b.tlvs),
            Body::DataSm(b) => Some(&mut b.tlvs),
            Body::ReplaceSm(b) => Some(&mut b.tlvs),
            Body::AlertNotification(b) => Some(&mut b.tlvs),
            _ => None,
        }
    }
}

/// Operations with no body: any octet after the header is a length error.
fn empty(r: Reader, id: CommandId, body: Body) -> Result<Body, DecodeError> {
    no_trailing(r, id.name())?;
    Ok(body)
}

/// Checks that a body without optional parameters was read to its end.
fn no_trailing(r: Reader, command: &'static str) -> Result<(), DecodeError> {
    match r.remaining() {
        0 => Ok(()),
        len => Err(DecodeError::UnexpectedBody { command, len }),
    }
}

/// A protocol data unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pdu {
    /// Correlates a response with its request (1..=0x7FFFFFFF in practice;
    /// the session layer allocates them, the codec carries any value).
    pub sequence_number: u32,
    /// Zero in requests; the outcome in responses.
    pub command_status: CommandStatus,
    /// The operation and its fields.
    pub body: Body,
}

impl Pdu {
    /// A request (or a successful response) with status `ESME_ROK`.
    pub fn new(sequence_number: u32, body: Body) -> Self {
        Self {
            sequence_number,
            command_status: CommandStatus::Ok,
            body,
        }
    }

    /// A `generic_nack` with the given status.
    pub fn generic_nack(sequence_number: u32, status: CommandStatus) -> Self {
        Self {
            sequence_number,
            command_status: status,
            body: Body::GenericNack,
        }
    }

    /// The response to a request `command_id` that failed with `status`:
    /// the matching `*_resp` with no body where the specification allows it,
    /// `generic_nack` for unknown commands, and `None` for operations that are
    /// not answered (outbind, alert_notification, responses).
    pub fn error_response(
        command_id: CommandId,
        sequence_number: u32,
        status: CommandStatus,
    ) -> Option<Self> {
        use CommandId as C;
        let body = match command_id.response()? {
            C::BindTransmitterResp => Body::BindTransmitterResp(BindResp::default()),
            C::BindReceiverResp => Body::BindReceiverResp(BindResp::default()),
            C::BindTransceiverResp => Body::BindTransceiverResp(BindResp::default()),
            C::SubmitSmResp => Body::SubmitSmResp(SmResp::default()),
            C::SubmitMultiResp => Body::SubmitMultiResp(SubmitMultiResp::default()),
            C::DeliverSmResp => Body::DeliverSmResp(SmResp::default()),
            C::DataSmResp => Body::DataSmResp(SmResp::default()),
            C::QuerySmResp => Body::QuerySmResp(QuerySmResp::default()),
            C::CancelSmResp => Body::CancelSmResp,
            C::ReplaceSmResp => Body::ReplaceSmResp,
            C::UnbindResp => Body::UnbindResp,
            C::EnquireLinkResp => Body::EnquireLinkResp,
            _ => Body::GenericNack,
        };
        Some(Self {
            sequence_number,
            command_status: status,
            body,
        })
    }

    /// The command id, derived from the body.
    pub fn command_id(&self) -> CommandId {
        self.body.command_id()
    }

    /// Octets on the wire, header included: the `command_length` it will carry.
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + self.body.encoded_len()
    }

    /// Appends the PDU to `dst`.
    ///
    /// The length is known before a byte is written, so `dst` grows once
    /// and the fields are copied into that slice: no capacity check per
    /// field, and the terminating NULs land on the zero fill.
    pub fn encode(&self, dst: &mut BytesMut) {
        let len = self.encoded_len();
        let start = dst.len();
        dst.resize(start + len, 0);
        let mut out: &mut [u8] = &mut dst[start..];
        let mut header = [0u8; HEADER_LEN];
        // Bodies are bounded by their field types well below 4 GiB.
        header[0..4].copy_from_slice(&(len as u32).to_be_bytes());
        header[4..8].copy_from_slice(&self.command_id().code().to_be_bytes());
        header[8..12].copy_from_slice(&self.command_status.code().to_be_bytes());
        header[12..16].copy_from_slice(&self.sequence_number.to_be_bytes());
        out.put_slice(&header);
        self.body.encode(&mut out);
        debug_assert!(out.is_empty(), "encoded_len disagrees with encode");
    }

    /// The PDU as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut dst = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut dst);
        dst.freeze()
    }

    /// Decodes a PDU from a body and the header that announced it.
    pub fn decode_body(header: &Header, body: Bytes) -> Result<Self, Malformed> {
        match Body::decode(header.command_id, body) {
            Ok(body) => Ok(Self {
                sequence_number: header.sequence_number,
                command_status: header.command_status,
                body,
            }),
            Err(error) => Err(Malformed {
                header: *header,
                error,
            }),
        }
    }

    /// Decodes one complete PDU: `frame` must hold exactly `command_length` octets.
    pub fn decode(frame: Bytes) -> Result<Self, PduError> {
        let header = Header::peek(&frame).ok_or(PduError::Frame(crate::FrameError::TooShort {
            command_length: frame.len() as u32,
            sequence_number: None,
        }))?;
        crate::framing::check_length(
            header.command_length,
            u32::MAX as usize,
            Some(header.sequence_number),
        )
        .map_err(PduError::Frame)?;
        if header.command_length as usize != frame.len() {
            return Err(PduError::LengthMismatch {
                command_length: header.command_length,
                actual: frame.len(),
            });
        }
        Self::decode_body(&header, frame.slice(HEADER_LEN..)).map_err(PduError::Malformed)
    }
}

/// A PDU whose header was readable but whose body was not. The session
/// answers it ([`Malformed::response`]) and reads on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} (sequence {}): {error}", header.command_id, header.sequence_number)]
pub struct Malformed {
    /// The header as received.
    pub header: Header,
    /// What was wrong with the body.
    pub error: DecodeError,
}

impl Malformed {
    /// The status to answer with.
    pub fn command_status(&self) -> CommandStatus {
        self.error.command_status()
    }

    /// The answer a server sends: the matching `*_resp` with the error
    /// status, or `None` when the malformed PDU was itself a response or an
    /// unanswered operation.
    pub fn response(&self) -> Option<Pdu> {
        Pdu::error_response(
            self.header.command_id,
            self.header.sequence_number,
            self.command_status(),
        )
    }
}

/// Why a complete buffer is not a PDU ([`Pdu::decode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PduError {
    /// The header's length is impossible.
    #[error(transparent)]
    Frame(crate::FrameError),
    /// The header's length and the buffer's disagree.
    #[error("command_length {command_length} but {actual} octets given")]
    LengthMismatch {
        /// From the header.
        command_length: u32,
        /// The buffer's length.
        actual: usize,
    },
    /// The body could not be decoded.
    #[error(transparent)]
    Malformed(Malformed),
}

impl PduError {
    /// The status a server answers with.
    pub fn command_status(&self) -> CommandStatus {
        match self {
            Self::Frame(_) | Self::LengthMismatch { .. } => CommandStatus::InvalidCommandLength,
            Self::Malformed(m) => m.command_status(),
        }
    }
}
