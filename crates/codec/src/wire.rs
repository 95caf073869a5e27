//! Reading and writing body fields. Internal: the PDU modules describe their
//! layout with these calls and the checks live here, once.

use bytes::{Buf, BufMut, Bytes};

use crate::error::{DecodeError, Field};
use crate::octets::{COctetString, ShortMessage, TimeString};
use crate::values::{Address, Npi, Ton};

/// Field names of a source address.
pub(crate) const SOURCE: [Field; 3] = [
    Field::SourceAddrTon,
    Field::SourceAddrNpi,
    Field::SourceAddr,
];
/// Field names of a destination address.
pub(crate) const DESTINATION: [Field; 3] = [
    Field::DestAddrTon,
    Field::DestAddrNpi,
    Field::DestinationAddr,
];

/// A cursor over a PDU body. Every read is bounds-checked and names its field.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(body: Bytes) -> Self {
        Self { buf: body }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::Truncated { field });
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::Truncated { field });
        }
        Ok(self.buf.get_u32())
    }

    /// A C-octet string of at most `MAX` octets, NUL included. No terminator
    /// within `MAX` octets is `TooLong`; the body ending first is `Truncated`.
    pub(crate) fn c_str<const MAX: usize>(
        &mut self,
        field: Field,
    ) -> Result<COctetString<MAX>, DecodeError> {
        let window = &self.buf[..self.buf.len().min(MAX)];
        match window.iter().position(|&b| b == 0) {
            Some(nul) => {
                let value = self.buf.split_to(nul);
                self.buf.advance(1);
                Ok(COctetString::from_checked(value))
            }
            None if self.buf.len() < MAX => Err(DecodeError::Truncated { field }),
            None => Err(DecodeError::TooLong { field, max: MAX }),
        }
    }

    /// A time field: empty or 16 characters (SMPP 3.4 §7.1.1).
    pub(crate) fn time(&mut self, field: Field) -> Result<TimeString, DecodeError> {
        let value = self.c_str::<17>(field)?;
        match value.len() {
            0 | TimeString::LEN => Ok(TimeString::from_checked(value)),
            len => Err(DecodeError::TimeLength { field, len }),
        }
    }

    /// An address: its TON, NPI and digits, each named for errors.
    pub(crate) fn address<const MAX: usize>(
        &mut self,
        [ton, npi, addr]: [Field; 3],
    ) -> Result<Address<MAX>, DecodeError> {
        Ok(Address {
            ton: Ton(self.u8(ton)?),
            npi: Npi(self.u8(npi)?),
            addr: self.c_str(addr)?,
        })
    }

    /// `sm_length` then `short_message`.
    pub(crate) fn short_message(&mut self) -> Result<ShortMessage, DecodeError> {
        let len = self.u8(Field::SmLength)?;
        if usize::from(len) > ShortMessage::MAX {
            return Err(DecodeError::SmLengthTooLarge(len));
        }
        if self.buf.len() < usize::from(len) {
            return Err(DecodeError::Truncated {
                field: Field::ShortMessage,
            });
        }
        Ok(ShortMessage::from_checked(
            self.buf.split_to(usize::from(len)),
        ))
    }

    /// What is left: the TLV part.
    pub(crate) fn rest(self) -> Bytes {
        self.buf
    }
}

pub(crate) fn put_c_str<const MAX: usize>(dst: &mut impl BufMut, value: &COctetString<MAX>) {
    dst.put_slice(value.as_bytes());
    dst.put_u8(0);
}

pub(crate) fn put_address<const MAX: usize>(dst: &mut impl BufMut, value: &Address<MAX>) {
    dst.put_u8(value.ton.0);
    dst.put_u8(value.npi.0);
    put_c_str(dst, &value.addr);
}

pub(crate) fn put_time(dst: &mut impl BufMut, value: &TimeString) {
    put_c_str(dst, value.inner());
}

pub(crate) fn put_short_message(dst: &mut impl BufMut, value: &ShortMessage) {
    // ShortMessage holds at most 254 octets, so the length fits a u8.
    dst.put_u8(value.len() as u8);
    dst.put_slice(value.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_str_distinguishes_truncation_from_overlength() {
        let mut r = Reader::new(Bytes::from_static(b"abc"));
        assert_eq!(
            r.c_str::<16>(Field::SystemId),
            Err(DecodeError::Truncated {
                field: Field::SystemId
            })
        );
        let mut r = Reader::new(Bytes::from_static(b"0123456789abcdefXYZ\0"));
        assert_eq!(
            r.c_str::<16>(Field::SystemId),
            Err(DecodeError::TooLong {
                field: Field::SystemId,
                max: 16
            })
        );
        let mut r = Reader::new(Bytes::from_static(b"0123456789abcde\0rest"));
        assert_eq!(r.c_str::<16>(Field::SystemId).map(|s| s.len()), Ok(15));
        assert_eq!(r.rest(), Bytes::from_static(b"rest"));
    }
}
