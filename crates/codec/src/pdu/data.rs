//! data_sm (SMPP 3.4 §4.7) and alert_notification (§4.12): the two PDUs
//! whose addresses may be 64 characters long.

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::octets::COctetString;
use crate::tlv::Tlvs;
use crate::values::{Address, DataCoding, EsmClass, RegisteredDelivery};
use crate::wire::{put_address, put_c_str, Reader, DESTINATION, SOURCE};

/// data_sm (§4.7.1): a message whose text travels in `message_payload`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct DataSm {
    /// SMS application service.
    pub service_type: COctetString<6>,
    /// Originator (up to 64 characters).
    pub source: Address<65>,
    /// Recipient (up to 64 characters).
    pub destination: Address<65>,
    /// Mode, type and UDHI.
    pub esm_class: EsmClass,
    /// Which receipts are requested.
    pub registered_delivery: RegisteredDelivery,
    /// Alphabet of `message_payload`.
    pub data_coding: DataCoding,
    /// Optional parameters: the text, SAR, ports, receipts' TLVs…
    pub tlvs: Tlvs,
}

impl DataSm {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            service_type: r.c_str(Field::ServiceType)?,
            source: r.address(SOURCE)?,
            destination: r.address(DESTINATION)?,
            esm_class: EsmClass(r.u8(Field::EsmClass)?),
            registered_delivery: RegisteredDelivery(r.u8(Field::RegisteredDelivery)?),
            data_coding: DataCoding(r.u8(Field::DataCoding)?),
            tlvs: Tlvs::decode(r.rest())?,
        })
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.service_type.encoded_len()
            + self.source.encoded_len()
            + self.destination.encoded_len()
            + 3
            + self.tlvs.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.service_type);
        put_address(dst, &self.source);
        put_address(dst, &self.destination);
        dst.put_u8(self.esm_class.0);
        dst.put_u8(self.registered_delivery.0);
        dst.put_u8(self.data_coding.0);
        self.tlvs.encode(dst);
    }
}

/// alert_notification (§4.12.1): a subscriber became reachable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AlertNotification {
    /// The subscriber.
    pub source: Address<65>,
    /// The ESME that asked to be told (set_dpf).
    pub esme: Address<65>,
    /// `ms_availability_status` and others.
    pub tlvs: Tlvs,
}

impl AlertNotification {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        Ok(Self {
            source: r.address(SOURCE)?,
            esme: r.address([Field::EsmeAddrTon, Field::EsmeAddrNpi, Field::EsmeAddr])?,
            tlvs: Tlvs::decode(r.rest())?,
        })
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.source.encoded_len() + self.esme.encoded_len() + self.tlvs.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_address(dst, &self.source);
        put_address(dst, &self.esme);
        self.tlvs.encode(dst);
    }
}
