//! submit_sm and deliver_sm (SMPP 3.4 §4.4.1, §4.6.1), which share a layout,
//! and the responses that carry a message id: submit_sm_resp, deliver_sm_resp
//! and data_sm_resp.

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::octets::{COctetString, ShortMessage, TimeString};
use crate::tlv::Tlvs;
use crate::values::{Address, DataCoding, EsmClass, PriorityFlag, RegisteredDelivery};
use crate::wire::{
    put_address, put_c_str, put_short_message, put_time, Reader, DESTINATION, SOURCE,
};

use super::IdResp;

/// A short message: the body of `submit_sm` and of `deliver_sm`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SubmitSm {
    /// SMS application service (max 5 characters); empty for the default.
    pub service_type: COctetString<6>,
    /// Originator.
    pub source: Address<21>,
    /// Recipient.
    pub destination: Address<21>,
    /// Mode, type (receipt or not) and the UDHI flag.
    pub esm_class: EsmClass,
    /// GSM TP-Protocol-Identifier.
    pub protocol_id: u8,
    /// Priority.
    pub priority_flag: PriorityFlag,
    /// When to deliver; empty for now. Must be empty in deliver_sm.
    pub schedule_delivery_time: TimeString,
    /// When to give up; empty for the SMSC default. Must be empty in deliver_sm.
    pub validity_period: TimeString,
    /// Which receipts are requested.
    pub registered_delivery: RegisteredDelivery,
    /// Replace a pending message with the same source and destination.
    pub replace_if_present_flag: u8,
    /// Alphabet of `short_message` / `message_payload`.
    pub data_coding: DataCoding,
    /// Index of a canned message; 0 for none.
    pub sm_default_msg_id: u8,
    /// Up to 254 octets of text (UDH first when UDHI is set).
    pub short_message: ShortMessage,
    /// Optional parameters, in the order received.
    pub tlvs: Tlvs,
}

/// deliver_sm has the layout of submit_sm (§4.6.1).
pub type DeliverSm = SubmitSm;

impl SubmitSm {
    /// Decodes the body. `one_text_field` refuses `short_message` together
    /// with `message_payload` (§5.3.2.32). Tern checks it for what clients
    /// submit and not for what upstreams deliver: a receipt from a careless
    /// SMSC is still a receipt.
    pub(crate) fn decode(mut r: Reader, one_text_field: bool) -> Result<Self, DecodeError> {
        let sm = Self {
            service_type: r.c_str(Field::ServiceType)?,
            source: r.address(SOURCE)?,
            destination: r.address(DESTINATION)?,
            esm_class: EsmClass(r.u8(Field::EsmClass)?),
            protocol_id: r.u8(Field::ProtocolId)?,
            priority_flag: PriorityFlag(r.u8(Field::PriorityFlag)?),
            schedule_delivery_time: r.time(Field::ScheduleDeliveryTime)?,
            validity_period: r.time(Field::ValidityPeriod)?,
            registered_delivery: RegisteredDelivery(r.u8(Field::RegisteredDelivery)?),
            replace_if_present_flag: r.u8(Field::ReplaceIfPresentFlag)?,
            data_coding: DataCoding(r.u8(Field::DataCoding)?),
            sm_default_msg_id: r.u8(Field::SmDefaultMsgId)?,
            short_message: r.short_message()?,
            tlvs: Tlvs::decode(r.rest())?,
        };
        if one_text_field && !sm.short_message.is_empty() && sm.tlvs.message_payload().is_some() {
            return Err(DecodeError::ShortMessageAndPayload);
        }
        Ok(sm)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.service_type.encoded_len()
            + self.source.encoded_len()
            + self.destination.encoded_len()
            + 3
            + self.schedule_delivery_time.inner().encoded_len()
            + self.validity_period.inner().encoded_len()
            + 5
            + self.short_message.len()
            + self.tlvs.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.service_type);
        put_address(dst, &self.source);
        put_address(dst, &self.destination);
        dst.put_u8(self.esm_class.0);
        dst.put_u8(self.protocol_id);
        dst.put_u8(self.priority_flag.0);
        put_time(dst, &self.schedule_delivery_time);
        put_time(dst, &self.validity_period);
        dst.put_u8(self.registered_delivery.0);
        dst.put_u8(self.replace_if_present_flag);
        dst.put_u8(self.data_coding.0);
        dst.put_u8(self.sm_default_msg_id);
        put_short_message(dst, &self.short_message);
        self.tlvs.encode(dst);
    }

    /// The message octets wherever they are: `message_payload` if present,
    /// otherwise `short_message`.
    pub fn text_octets(&self) -> &[u8] {
        match self.tlvs.message_payload() {
            Some(payload) => payload,
            None => self.short_message.as_bytes(),
        }
    }
}

/// The body of submit_sm_resp, deliver_sm_resp and data_sm_resp
/// (§4.4.2, §4.6.2, §4.7.2): the message id the SMSC gave (empty in
/// deliver_sm_resp) and, in 5.0, TLVs.
pub type SmResp = IdResp<65>;
