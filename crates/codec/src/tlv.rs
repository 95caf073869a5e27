//! Optional parameters, TLVs (SMPP 3.4 §5.3).
//!
//! The specification's parameters decode to typed variants; every other tag
//! (SMPP 5.0 additions, vendor tags such as OVH's 0x1401/0x1402 or Telesign's
//! 0x0410–0x0412) is kept as [`Tlv::Other`]. Order is preserved, and a typed
//! value encodes to exactly the octets it was decoded from, so a decoded PDU
//! encodes back to the same bytes.
//!
//! String-valued parameters (`receipted_message_id`,
//! `additional_status_info_text`) keep their raw octets, terminator and all:
//! SMSCs in the field send them with and without the NUL, and a broker must
//! read both and forward either unchanged. Their accessors strip the NUL.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, FieldError};
use crate::values::MessageState;

/// `network_error_code` (SMPP 3.4 §5.3.2.31): the network type and its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetworkErrorCode {
    /// 1 ANSI-136, 2 IS-95, 3 GSM, 4+ reserved (SMPP 5.0 adds more).
    pub network_type: u8,
    /// The network's error code (GSM MAP codes for type 3).
    pub error_code: u16,
}

impl NetworkErrorCode {
    /// The network type of GSM MAP error codes (3GPP TS 29.002).
    pub const GSM: u8 = 3;
}

/// `sar_msg_ref_num`, `sar_total_segments`, `sar_segment_seqnum` together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sar {
    /// Reference shared by all parts of one message.
    pub reference: u16,
    /// Number of parts.
    pub total: u8,
    /// This part's number, from 1.
    pub sequence: u8,
}

/// How a TLV value is read and written. Fixed-size values check their length.
trait TlvValue: Sized {
    const EXPECTED: &'static str;
    fn read(value: Bytes) -> Option<Self>;
    fn len(&self) -> usize;
    fn put(&self, dst: &mut impl BufMut);
}

impl TlvValue for u8 {
    const EXPECTED: &'static str = "1";
    fn read(value: Bytes) -> Option<Self> {
        (value.len() == 1).then(|| value[0])
    }
    fn len(&self) -> usize {
        1
    }
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_u8(*self);
    }
}

impl TlvValue for u16 {
    const EXPECTED: &'static str = "2";
    fn read(value: Bytes) -> Option<Self> {
        Some(u16::from_be_bytes(value.as_ref().try_into().ok()?))
    }
    fn len(&self) -> usize {
        2
    }
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_u16(*self);
    }
}

impl TlvValue for u32 {
    const EXPECTED: &'static str = "4";
    fn read(value: Bytes) -> Option<Self> {
        Some(u32::from_be_bytes(value.as_ref().try_into().ok()?))
    }
    fn len(&self) -> usize {
        4
    }
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_u32(*self);
    }
}

impl TlvValue for MessageState {
    const EXPECTED: &'static str = "1";
    fn read(value: Bytes) -> Option<Self> {
        u8::read(value).map(MessageState)
    }
    fn len(&self) -> usize {
        1
    }
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.0);
    }
}

impl TlvValue for NetworkErrorCode {
    const EXPECTED: &'static str = "3";
    fn read(value: Bytes) -> Option<Self> {
        let [network_type, hi, lo]: [u8; 3] = value.as_ref().try_into().ok()?;
        Some(Self {
            network_type,
            error_code: u16::from_be_bytes([hi, lo]),
        })
    }
    fn len(&self) -> usize {
        3
    }
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_u8(self.network_type);
        dst.put_u16(self.error_code);
    }
}

impl TlvValue for Bytes {
    const EXPECTED: &'static str = "any";
    fn read(value: Bytes) -> Option<Self> {
        Some(value)
    }
    fn len(&self) -> usize {
        // A value cannot be longer than the 16-bit length field; `Tlv::encode`
        // writes no more than this many octets.
        self.as_ref().len().min(usize::from(u16::MAX))
    }
    fn put(&self, dst: &mut impl BufMut) {
        dst.put_slice(&self[..TlvValue::len(self)]);
    }
}

macro_rules! tlv_table {
    ($( $(#[$doc:meta])* $variant:ident = $tag:literal, $konst:ident, $accessor:ident: $ty:ty; )*) => {
        /// Tags of the parameters this codec types.
        pub mod tags {
            $( #[doc = concat!("`", stringify!($accessor), "`")] pub const $konst: u16 = $tag; )*
        }

        /// One optional parameter.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Tlv {
            $( $(#[$doc])* #[doc = concat!("\n\nTag ", stringify!($tag), ".")] $variant($ty), )*
            /// Any other tag, value kept as received.
            Other {
                /// The tag.
                tag: u16,
                /// The value octets.
                value: Bytes,
            },
        }

        impl Tlv {
            /// The tag sent on the wire.
            pub fn tag(&self) -> u16 {
                match self {
                    $( Self::$variant(_) => $tag, )*
                    Self::Other { tag, .. } => *tag,
                }
            }

            /// Types a known tag; keeps an unknown one as `Other`.
            fn from_wire(tag: u16, value: Bytes) -> Result<Self, DecodeError> {
                match tag {
                    $( $tag => {
                        let len = value.len();
                        <$ty as TlvValue>::read(value).map(Self::$variant).ok_or(
                            DecodeError::TlvLength { tag, len, expected: <$ty as TlvValue>::EXPECTED },
                        )
                    } )*
                    _ => Ok(Self::Other { tag, value }),
                }
            }

            fn value_len(&self) -> usize {
                match self {
                    $( Self::$variant(v) => TlvValue::len(v), )*
                    Self::Other { value, .. } => TlvValue::len(value),
                }
            }

            fn put_value(&self, dst: &mut impl BufMut) {
                match self {
                    $( Self::$variant(v) => TlvValue::put(v, dst), )*
                    Self::Other { value, .. } => TlvValue::put(value, dst),
                }
            }
        }

        impl Tlvs {
            $(
                #[doc = concat!("The first `", stringify!($accessor), "`, if present.")]
                pub fn $accessor(&self) -> Option<&$ty> {
                    self.0.iter().find_map(|t| match t {
                        Tlv::$variant(v) => Some(v),
                        _ => None,
                    })
                }
            )*
        }
    };
}

tlv_table! {
    /// Subunit the message is for (1 MS display, 2 mobile equipment, 3 SIM, 4 external).
    DestAddrSubunit = 0x0005, DEST_ADDR_SUBUNIT, dest_addr_subunit: u8;
    /// Network type of the destination.
    DestNetworkType = 0x0006, DEST_NETWORK_TYPE, dest_network_type: u8;
    /// Bearer type of the destination.
    DestBearerType = 0x0007, DEST_BEARER_TYPE, dest_bearer_type: u8;
    /// Telematics id of the destination.
    DestTelematicsId = 0x0008, DEST_TELEMATICS_ID, dest_telematics_id: u16;
    /// Subunit the message came from.
    SourceAddrSubunit = 0x000D, SOURCE_ADDR_SUBUNIT, source_addr_subunit: u8;
    /// Network type of the source.
    SourceNetworkType = 0x000E, SOURCE_NETWORK_TYPE, source_network_type: u8;
    /// Bearer type of the source.
    SourceBearerType = 0x000F, SOURCE_BEARER_TYPE, source_bearer_type: u8;
    /// Telematics id of the source: one octet in SMPP 3.4, two in 5.0, so
    /// kept as received.
    SourceTelematicsId = 0x0010, SOURCE_TELEMATICS_ID, source_telematics_id: Bytes;
    /// Seconds the message may live in the network.
    QosTimeToLive = 0x0017, QOS_TIME_TO_LIVE, qos_time_to_live: u32;
    /// 0 default/WDP, 1 WCMP.
    PayloadType = 0x0019, PAYLOAD_TYPE, payload_type: u8;
    /// Free text explaining a status (raw octets; see the module notes).
    AdditionalStatusInfoText = 0x001D, ADDITIONAL_STATUS_INFO_TEXT, additional_status_info_text_raw: Bytes;
    /// The SMSC message id a receipt is about (raw octets; see the module notes).
    ReceiptedMessageId = 0x001E, RECEIPTED_MESSAGE_ID, receipted_message_id_raw: Bytes;
    /// Message waiting indication.
    MsMsgWaitFacilities = 0x0030, MS_MSG_WAIT_FACILITIES, ms_msg_wait_facilities: u8;
    /// Privacy level.
    PrivacyIndicator = 0x0201, PRIVACY_INDICATOR, privacy_indicator: u8;
    /// Source subaddress.
    SourceSubaddress = 0x0202, SOURCE_SUBADDRESS, source_subaddress: Bytes;
    /// Destination subaddress.
    DestSubaddress = 0x0203, DEST_SUBADDRESS, dest_subaddress: Bytes;
    /// The ESME's own reference for the message (dedup key for Tern).
    UserMessageReference = 0x0204, USER_MESSAGE_REFERENCE, user_message_reference: u16;
    /// User response code.
    UserResponseCode = 0x0205, USER_RESPONSE_CODE, user_response_code: u8;
    /// Application port of the source (WAP, SMS ports).
    SourcePort = 0x020A, SOURCE_PORT, source_port: u16;
    /// Application port of the destination.
    DestinationPort = 0x020B, DESTINATION_PORT, destination_port: u16;
    /// Concatenation: reference of the message.
    SarMsgRefNum = 0x020C, SAR_MSG_REF_NUM, sar_msg_ref_num: u16;
    /// Language of the text.
    LanguageIndicator = 0x020D, LANGUAGE_INDICATOR, language_indicator: u8;
    /// Concatenation: number of parts.
    SarTotalSegments = 0x020E, SAR_TOTAL_SEGMENTS, sar_total_segments: u8;
    /// Concatenation: this part's number, from 1.
    SarSegmentSeqnum = 0x020F, SAR_SEGMENT_SEQNUM, sar_segment_seqnum: u8;
    /// The SMPP version the SMSC supports (in bind responses).
    ScInterfaceVersion = 0x0210, SC_INTERFACE_VERSION, sc_interface_version: u8;
    /// Callback number presentation.
    CallbackNumPresInd = 0x0302, CALLBACK_NUM_PRES_IND, callback_num_pres_ind: u8;
    /// Callback number alpha tag.
    CallbackNumAtag = 0x0303, CALLBACK_NUM_ATAG, callback_num_atag: Bytes;
    /// Number of messages waiting.
    NumberOfMessages = 0x0304, NUMBER_OF_MESSAGES, number_of_messages: u8;
    /// Callback number.
    CallbackNum = 0x0381, CALLBACK_NUM, callback_num: Bytes;
    /// Delivery pending flag result.
    DpfResult = 0x0420, DPF_RESULT, dpf_result: u8;
    /// Ask for an alert when the subscriber is available.
    SetDpf = 0x0421, SET_DPF, set_dpf: u8;
    /// Availability of the subscriber (alert_notification).
    MsAvailabilityStatus = 0x0422, MS_AVAILABILITY_STATUS, ms_availability_status: u8;
    /// Network-specific error for a failed delivery.
    NetworkErrorCode = 0x0423, NETWORK_ERROR_CODE, network_error_code: NetworkErrorCode;
    /// The message text when it does not fit short_message.
    MessagePayload = 0x0424, MESSAGE_PAYLOAD, message_payload: Bytes;
    /// Why a transaction-mode delivery failed.
    DeliveryFailureReason = 0x0425, DELIVERY_FAILURE_REASON, delivery_failure_reason: u8;
    /// More messages follow for the same destination.
    MoreMessagesToSend = 0x0426, MORE_MESSAGES_TO_SEND, more_messages_to_send: u8;
    /// The state a receipt reports.
    MessageState = 0x0427, MESSAGE_STATE, message_state: MessageState;
    /// USSD service operation.
    UssdServiceOp = 0x0501, USSD_SERVICE_OP, ussd_service_op: Bytes;
    /// Display time.
    DisplayTime = 0x1201, DISPLAY_TIME, display_time: u8;
    /// Alerting tone.
    SmsSignal = 0x1203, SMS_SIGNAL, sms_signal: u16;
    /// Validity on the handset.
    MsValidity = 0x1204, MS_VALIDITY, ms_validity: u8;
    /// Alert the subscriber on delivery (zero-length in 3.4).
    AlertOnMessageDelivery = 0x130C, ALERT_ON_MESSAGE_DELIVERY, alert_on_message_delivery: Bytes;
    /// ITS reply type.
    ItsReplyType = 0x1380, ITS_REPLY_TYPE, its_reply_type: u8;
    /// ITS session info.
    ItsSessionInfo = 0x1383, ITS_SESSION_INFO, its_session_info: Bytes;
}

impl Tlv {
    /// `message_payload`, checked against the 16-bit length field.
    pub fn message_payload(value: impl Into<Bytes>) -> Result<Tlv, FieldError> {
        let value = value.into();
        if value.len() > usize::from(u16::MAX) {
            return Err(FieldError::TooLong {
                len: value.len(),
                max: usize::from(u16::MAX),
            });
        }
        Ok(Tlv::MessagePayload(value))
    }

    /// `receipted_message_id` as the specification writes it: a C-octet
    /// string of at most 65 octets.
    pub fn receipted_message_id(id: &[u8]) -> Result<Tlv, FieldError> {
        if let Some(at) = id.iter().position(|&b| b == 0) {
            return Err(FieldError::InteriorNul(at));
        }
        if id.len() + 1 > 65 {
            return Err(FieldError::TooLong {
                len: id.len() + 1,
                max: 65,
            });
        }
        let mut value = BytesMut::with_capacity(id.len() + 1);
        value.put_slice(id);
        value.put_u8(0);
        Ok(Tlv::ReceiptedMessageId(value.freeze()))
    }

    /// Octets on the wire: tag, length and value.
    pub fn encoded_len(&self) -> usize {
        4 + self.value_len()
    }

    /// Writes tag, length and value.
    pub fn encode(&self, dst: &mut impl BufMut) {
        dst.put_u16(self.tag());
        // `value_len` never exceeds u16::MAX (see `TlvValue for Bytes`).
        dst.put_u16(self.value_len() as u16);
        self.put_value(dst);
    }
}

/// The optional parameters of one PDU, in the order they came.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Tlvs(Vec<Tlv>);

impl Tlvs {
    /// No parameters (allocates nothing).
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Decodes the TLV part of a body. Every TLV must fit inside it.
    pub(crate) fn decode(mut buf: Bytes) -> Result<Self, DecodeError> {
        let total = buf.len();
        let mut tlvs = Vec::new();
        while !buf.is_empty() {
            let offset = total - buf.len();
            if buf.len() < 4 {
                return Err(DecodeError::TlvTruncated { offset });
            }
            let tag = buf.get_u16();
            let len = usize::from(buf.get_u16());
            if buf.len() < len {
                return Err(DecodeError::TlvTruncated { offset });
            }
            tlvs.push(Tlv::from_wire(tag, buf.split_to(len))?);
        }
        Ok(Self(tlvs))
    }

    /// Octets of all parameters on the wire.
    pub fn encoded_len(&self) -> usize {
        self.0.iter().map(Tlv::encoded_len).sum()
    }

    /// Writes every parameter in order.
    pub fn encode(&self, dst: &mut impl BufMut) {
        for tlv in &self.0 {
            tlv.encode(dst);
        }
    }

    /// Appends a parameter.
    pub fn push(&mut self, tlv: Tlv) {
        self.0.push(tlv);
    }

    /// Removes every parameter with this tag; returns how many there were.
    pub fn remove(&mut self, tag: u16) -> usize {
        let before = self.0.len();
        self.0.retain(|t| t.tag() != tag);
        before - self.0.len()
    }

    /// Drops all parameters (for a 3.3 peer).
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// The first parameter with this tag.
    pub fn get(&self, tag: u16) -> Option<&Tlv> {
        self.0.iter().find(|t| t.tag() == tag)
    }

    /// The parameters in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Tlv> {
        self.0.iter()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `receipted_message_id` without its NUL terminator, however it was sent.
    pub fn receipted_message_id(&self) -> Option<&[u8]> {
        self.receipted_message_id_raw().map(|raw| strip_nul(raw))
    }

    /// `additional_status_info_text` without its NUL terminator.
    pub fn additional_status_info_text(&self) -> Option<&[u8]> {
        self.additional_status_info_text_raw()
            .map(|raw| strip_nul(raw))
    }

    /// The three SAR parameters, when all are present.
    pub fn sar(&self) -> Option<Sar> {
        Some(Sar {
            reference: *self.sar_msg_ref_num()?,
            total: *self.sar_total_segments()?,
            sequence: *self.sar_segment_seqnum()?,
        })
    }

    /// Sets the three SAR parameters, replacing any present.
    pub fn set_sar(&mut self, sar: Sar) {
        self.remove(tags::SAR_MSG_REF_NUM);
        self.remove(tags::SAR_TOTAL_SEGMENTS);
        self.remove(tags::SAR_SEGMENT_SEQNUM);
        self.push(Tlv::SarMsgRefNum(sar.reference));
        self.push(Tlv::SarTotalSegments(sar.total));
        self.push(Tlv::SarSegmentSeqnum(sar.sequence));
    }
}

impl From<Vec<Tlv>> for Tlvs {
    fn from(tlvs: Vec<Tlv>) -> Self {
        Self(tlvs)
    }
}

impl FromIterator<Tlv> for Tlvs {
    fn from_iter<I: IntoIterator<Item = Tlv>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Tlvs {
    type Item = &'a Tlv;
    type IntoIter = std::slice::Iter<'a, Tlv>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

fn strip_nul(raw: &[u8]) -> &[u8] {
    match raw.iter().position(|&b| b == 0) {
        Some(nul) => &raw[..nul],
        None => raw,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(tlvs: &Tlvs) -> Vec<u8> {
        let mut dst = BytesMut::new();
        tlvs.encode(&mut dst);
        assert_eq!(dst.len(), tlvs.encoded_len());
        dst.to_vec()
    }

    #[test]
    fn typed_and_vendor_tlvs_round_trip_in_order() {
        let wire: &[u8] = &[
            0x04, 0x27, 0x00, 0x01, 0x02, // message_state DELIVERED
            0x14, 0x01, 0x00, 0x03, b'a', b'b', 0, // OVH outgoing_id, kept raw
            0x04, 0x23, 0x00, 0x03, 0x03, 0x00, 0x1B, // network_error_code GSM 27
            0x00, 0x1E, 0x00, 0x02, b'4', b'2', // receipted_message_id without NUL
        ];
        let tlvs = Tlvs::decode(Bytes::copy_from_slice(wire)).expect("valid stream");
        assert_eq!(tlvs.len(), 4);
        assert_eq!(tlvs.message_state(), Some(&MessageState::DELIVERED));
        assert_eq!(
            tlvs.network_error_code(),
            Some(&NetworkErrorCode {
                network_type: 3,
                error_code: 27
            })
        );
        assert_eq!(tlvs.receipted_message_id(), Some(&b"42"[..]));
        assert_eq!(
            tlvs.get(0x1401),
            Some(&Tlv::Other {
                tag: 0x1401,
                value: Bytes::from_static(b"ab\0")
            })
        );
        assert_eq!(encode(&tlvs), wire);
    }

    #[test]
    fn wrong_length_for_a_typed_tlv_is_invalid_parameter_length() {
        let err = Tlvs::decode(Bytes::from_static(&[0x04, 0x27, 0x00, 0x02, 0x02, 0x00]))
            .expect_err("message_state is one octet");
        assert_eq!(
            err,
            DecodeError::TlvLength {
                tag: 0x0427,
                len: 2,
                expected: "1"
            }
        );
        assert_eq!(
            err.command_status(),
            crate::CommandStatus::InvalidParameterLength
        );
    }

    #[test]
    fn a_tlv_running_past_the_end_is_an_invalid_stream() {
        for wire in [&[0x04, 0x24, 0x00, 0x05, 1, 2][..], &[0x04, 0x24, 0x00][..]] {
            let err = Tlvs::decode(Bytes::copy_from_slice(wire)).expect_err("truncated");
            assert_eq!(err, DecodeError::TlvTruncated { offset: 0 });
            assert_eq!(err.command_status(), crate::CommandStatus::InvalidTlvStream);
        }
    }

    #[test]
    fn sar_accessors() {
        let mut tlvs = Tlvs::new();
        tlvs.set_sar(Sar {
            reference: 0x1234,
            total: 3,
            sequence: 2,
        });
        assert_eq!(
            tlvs.sar(),
            Some(Sar {
                reference: 0x1234,
                total: 3,
                sequence: 2
            })
        );
        assert_eq!(
            encode(&tlvs),
            [0x02, 0x0C, 0, 2, 0x12, 0x34, 0x02, 0x0E, 0, 1, 3, 0x02, 0x0F, 0, 1, 2]
        );
    }
}
