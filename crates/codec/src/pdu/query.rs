//! Operations on a message already submitted: query_sm (SMPP 3.4 §4.8),
//! cancel_sm (§4.9) and replace_sm (§4.10). The Russian provider polls with
//! query_sm; OVH supports none of them.

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::octets::{COctetString, ShortMessage, TimeString};
use crate::tlv::Tlvs;
use crate::values::{Address, MessageState, RegisteredDelivery};
use crate::wire::{
    put_address, put_c_str, put_short_message, put_time, Reader, DESTINATION, SOURCE,
};

/// query_sm (§4.8.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct QuerySm {
    /// The SMSC's id of the message.
    pub message_id: COctetString<65>,
    /// The originator it was submitted with.
    pub source: Address<21>,
}

impl QuerySm {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let query = Self {
            message_id: r.c_str(Field::MessageId)?,
            source: r.address(SOURCE)?,
        };
        super::no_trailing(r, "query_sm")?;
        Ok(query)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.message_id.encoded_len() + self.source.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.message_id);
        put_address(dst, &self.source);
    }
}

/// query_sm_resp (§4.8.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct QuerySmResp {
    /// The id queried.
    pub message_id: COctetString<65>,
    /// When the message reached a final state; empty if it has not.
    pub final_date: TimeString,
    /// Its state.
    pub message_state: MessageState,
    /// Network error code for a failed delivery.
    pub error_code: u8,
}

impl QuerySmResp {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let resp = Self {
            message_id: r.c_str(Field::MessageId)?,
            final_date: r.time(Field::FinalDate)?,
            message_state: MessageState(r.u8(Field::MessageState)?),
            error_code: r.u8(Field::ErrorCode)?,
        };
        super::no_trailing(r, "query_sm_resp")?;
        Ok(resp)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.message_id.encoded_len() + self.final_date.inner().encoded_len() + 2
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.message_id);
        put_time(dst, &self.final_date);
        dst.put_u8(self.message_state.0);
        dst.put_u8(self.error_code);
    }
}

/// cancel_sm (§4.9.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CancelSm {
    /// Cancel messages of this service type (when `message_id` is empty).
    pub service_type: COctetString<6>,
    /// The message to cancel; empty to cancel by addresses.
    pub message_id: COctetString<65>,
    /// Originator.
    pub source: Address<21>,
    /// Recipient.
    pub destination: Address<21>,
}

impl CancelSm {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let cancel = Self {
            service_type: r.c_str(Field::ServiceType)?,
            message_id: r.c_str(Field::MessageId)?,
            source: r.address(SOURCE)?,
            destination: r.address(DESTINATION)?,
        };
        super::no_trailing(r, "cancel_sm")?;
        Ok(cancel)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.service_type.encoded_len()
            + self.message_id.encoded_len()
            + self.source.encoded_len()
            + self.destination.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.service_type);
        put_c_str(dst, &self.message_id);
        put_address(dst, &self.source);
        put_address(dst, &self.destination);
    }
}

/// replace_sm (§4.10.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ReplaceSm {
    /// The message to replace.
    pub message_id: COctetString<65>,
    /// The originator it was submitted with.
    pub source: Address<21>,
    /// New delivery time.
    pub schedule_delivery_time: TimeString,
    /// New validity.
    pub validity_period: TimeString,
    /// New receipt request.
    pub registered_delivery: RegisteredDelivery,
    /// Canned message index.
    pub sm_default_msg_id: u8,
    /// New text.
    pub short_message: ShortMessage,
    /// Optional parameters (SMPP 5.0 allows message_payload here).
    pub tlvs: Tlvs,
}

impl ReplaceSm {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let replace = Self {
            message_id: r.c_str(Field::MessageId)?,
            source: r.address(SOURCE)?,
            schedule_delivery_time: r.time(Field::ScheduleDeliveryTime)?,
            validity_period: r.time(Field::ValidityPeriod)?,
            registered_delivery: RegisteredDelivery(r.u8(Field::RegisteredDelivery)?),
            sm_default_msg_id: r.u8(Field::SmDefaultMsgId)?,
            short_message: r.short_message()?,
            tlvs: Tlvs::decode(r.rest())?,
        };
        if !replace.short_message.is_empty() && replace.tlvs.message_payload().is_some() {
            return Err(DecodeError::ShortMessageAndPayload);
        }
        Ok(replace)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.message_id.encoded_len()
            + self.source.encoded_len()
            + self.schedule_delivery_time.inner().encoded_len()
            + self.validity_period.inner().encoded_len()
            + 3
            + self.short_message.len()
            + self.tlvs.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.message_id);
        put_address(dst, &self.source);
        put_time(dst, &self.schedule_delivery_time);
        put_time(dst, &self.validity_period);
        dst.put_u8(self.registered_delivery.0);
        dst.put_u8(self.sm_default_msg_id);
        put_short_message(dst, &self.short_message);
        self.tlvs.encode(dst);
    }
}
