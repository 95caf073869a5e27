//! submit_multi and submit_multi_resp (SMPP 3.4 §4.5).

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::octets::{COctetString, ShortMessage, TimeString};
use crate::status::CommandStatus;
use crate::tlv::Tlvs;
use crate::values::{Address, DataCoding, EsmClass, PriorityFlag, RegisteredDelivery};
use crate::wire::{
    put_address, put_c_str, put_short_message, put_time, Reader, DESTINATION, SOURCE,
};

/// One entry of `dest_address` (§4.5.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    /// `dest_flag` 1: an SME address.
    Sme(Address<21>),
    /// `dest_flag` 2: the name of a distribution list kept by the SMSC.
    DistributionList(COctetString<21>),
}

/// submit_multi (§4.5.1): one message to up to 255 destinations.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SubmitMulti {
    /// SMS application service.
    pub service_type: COctetString<6>,
    /// Originator.
    pub source: Address<21>,
    /// Recipients; `number_of_dests` is their count, so at most 255 are
    /// encoded (more is a caller bug: the encoder stops at 255).
    pub destinations: Vec<Destination>,
    /// Mode, type and UDHI.
    pub esm_class: EsmClass,
    /// GSM TP-Protocol-Identifier.
    pub protocol_id: u8,
    /// Priority.
    pub priority_flag: PriorityFlag,
    /// When to deliver.
    pub schedule_delivery_time: TimeString,
    /// When to give up.
    pub validity_period: TimeString,
    /// Which receipts are requested.
    pub registered_delivery: RegisteredDelivery,
    /// Replace a pending message.
    pub replace_if_present_flag: u8,
    /// Alphabet.
    pub data_coding: DataCoding,
    /// Canned message index.
    pub sm_default_msg_id: u8,
    /// Up to 254 octets of text.
    pub short_message: ShortMessage,
    /// Optional parameters.
    pub tlvs: Tlvs,
}

const MAX_DESTS: usize = u8::MAX as usize;

impl SubmitMulti {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let service_type = r.c_str(Field::ServiceType)?;
        let source = r.address(SOURCE)?;
        let count = r.u8(Field::NumberOfDests)?;
        if count == 0 {
            return Err(DecodeError::InvalidValue {
                field: Field::NumberOfDests,
                value: 0,
            });
        }
        let mut destinations = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            destinations.push(match r.u8(Field::DestFlag)? {
                1 => Destination::Sme(r.address(DESTINATION)?),
                2 => Destination::DistributionList(r.c_str(Field::DlName)?),
                flag => {
                    return Err(DecodeError::InvalidValue {
                        field: Field::DestFlag,
                        value: u32::from(flag),
                    })
                }
            });
        }
        let multi = Self {
            service_type,
            source,
            destinations,
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
        if !multi.short_message.is_empty() && multi.tlvs.message_payload().is_some() {
            return Err(DecodeError::ShortMessageAndPayload);
        }
        Ok(multi)
    }

    fn sent_destinations(&self) -> &[Destination] {
        &self.destinations[..self.destinations.len().min(MAX_DESTS)]
    }

    pub(crate) fn encoded_len(&self) -> usize {
        let dests: usize = self
            .sent_destinations()
            .iter()
            .map(|d| {
                1 + match d {
                    Destination::Sme(addr) => addr.encoded_len(),
                    Destination::DistributionList(name) => name.encoded_len(),
                }
            })
            .sum();
        self.service_type.encoded_len()
            + self.source.encoded_len()
            + 1
            + dests
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
        let dests = self.sent_destinations();
        dst.put_u8(dests.len() as u8);
        for dest in dests {
            match dest {
                Destination::Sme(addr) => {
                    dst.put_u8(1);
                    put_address(dst, addr);
                }
                Destination::DistributionList(name) => {
                    dst.put_u8(2);
                    put_c_str(dst, name);
                }
            }
        }
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
}

/// One entry of `unsuccess_sme` (§4.5.2.1): a destination the SMSC refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Unsuccess {
    /// The refused destination.
    pub address: Address<21>,
    /// Why.
    pub error_status_code: CommandStatus,
}

/// submit_multi_resp (§4.5.2).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct SubmitMultiResp {
    /// The SMSC's id for the message; `None` when the body is absent.
    pub message_id: Option<COctetString<65>>,
    /// Destinations that were refused (at most 255 are encoded).
    pub unsuccess: Vec<Unsuccess>,
    /// Optional parameters (SMPP 5.0).
    pub tlvs: Tlvs,
}

impl SubmitMultiResp {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        if r.remaining() == 0 {
            return Ok(Self::default());
        }
        let message_id = Some(r.c_str(Field::MessageId)?);
        let count = r.u8(Field::NoUnsuccess)?;
        let mut unsuccess = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            unsuccess.push(Unsuccess {
                address: r.address(DESTINATION)?,
                error_status_code: CommandStatus::from_code(r.u32(Field::ErrorStatusCode)?),
            });
        }
        Ok(Self {
            message_id,
            unsuccess,
            tlvs: Tlvs::decode(r.rest())?,
        })
    }

    fn sent_unsuccess(&self) -> &[Unsuccess] {
        &self.unsuccess[..self.unsuccess.len().min(MAX_DESTS)]
    }

    fn has_body(&self) -> bool {
        self.message_id.is_some() || !self.unsuccess.is_empty() || !self.tlvs.is_empty()
    }

    pub(crate) fn encoded_len(&self) -> usize {
        if !self.has_body() {
            return 0;
        }
        self.message_id
            .as_ref()
            .map_or(1, COctetString::encoded_len)
            + 1
            + self
                .sent_unsuccess()
                .iter()
                .map(|u| u.address.encoded_len() + 4)
                .sum::<usize>()
            + self.tlvs.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        if !self.has_body() {
            return;
        }
        put_c_str(
            dst,
            self.message_id.as_ref().unwrap_or(&COctetString::empty()),
        );
        let unsuccess = self.sent_unsuccess();
        dst.put_u8(unsuccess.len() as u8);
        for u in unsuccess {
            put_address(dst, &u.address);
            dst.put_u32(u.error_status_code.code());
        }
        self.tlvs.encode(dst);
    }
}
