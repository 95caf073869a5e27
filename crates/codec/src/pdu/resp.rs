//! Responses whose body is one C-octet string id and optional TLVs:
//! bind_*_resp (`system_id`) and submit_sm_resp, deliver_sm_resp,
//! data_sm_resp (`message_id`).

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::octets::COctetString;
use crate::tlv::Tlvs;
use crate::wire::{put_c_str, Reader};

/// An id of at most `MAX` octets (NUL included) and TLVs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct IdResp<const MAX: usize> {
    /// `system_id` or `message_id`. `None` when the body is absent, as SMSCs
    /// answer errors (§4.4.2: "the body is not returned if command_status is
    /// non-zero"). Keeping absent apart from empty makes the PDU re-encode
    /// to the octets it came from.
    pub id: Option<COctetString<MAX>>,
    /// Optional parameters.
    pub tlvs: Tlvs,
}

impl<const MAX: usize> IdResp<MAX> {
    /// A response carrying `id`.
    pub fn with_id(id: COctetString<MAX>) -> Self {
        Self {
            id: Some(id),
            tlvs: Tlvs::new(),
        }
    }

    pub(crate) fn decode(mut r: Reader, field: Field) -> Result<Self, DecodeError> {
        if r.remaining() == 0 {
            return Ok(Self::default());
        }
        let id = Some(r.c_str(field)?);
        Ok(Self {
            id,
            tlvs: Tlvs::decode(r.rest())?,
        })
    }

    fn has_body(&self) -> bool {
        self.id.is_some() || !self.tlvs.is_empty()
    }

    pub(crate) fn encoded_len(&self) -> usize {
        if !self.has_body() {
            return 0;
        }
        self.id.as_ref().map_or(1, COctetString::encoded_len) + self.tlvs.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        if !self.has_body() {
            return;
        }
        match &self.id {
            Some(id) => put_c_str(dst, id),
            None => put_c_str(dst, &COctetString::<MAX>::empty()),
        }
        self.tlvs.encode(dst);
    }
}
