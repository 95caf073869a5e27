//! bind_transmitter / bind_receiver / bind_transceiver, their responses, and
//! outbind (SMPP 3.4 §4.1).

use bytes::BufMut;

use crate::error::{DecodeError, Field};
use crate::octets::COctetString;
use crate::values::{InterfaceVersion, Npi, Ton};
use crate::wire::{put_c_str, Reader};

use super::IdResp;

/// The body of the three bind requests (§4.1.1, §4.1.3, §4.1.5).
///
/// `Debug` leaves the password out, so logging a PDU never leaks it.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bind {
    /// Identifies the ESME to the SMSC (max 15 characters).
    pub system_id: COctetString<16>,
    /// Authenticates it (max 8 characters; Telesign's passwords are 9 octets with the NUL).
    pub password: COctetString<9>,
    /// The kind of ESME; some vendors route on it (Infobip's `NSMS` for flash).
    pub system_type: COctetString<13>,
    /// The SMPP version the ESME speaks: 0x33, 0x34 or 0x50.
    pub interface_version: InterfaceVersion,
    /// TON of `address_range`.
    pub addr_ton: Ton,
    /// NPI of `address_range`.
    pub addr_npi: Npi,
    /// Addresses served by a receiver (a regular expression by convention).
    pub address_range: COctetString<41>,
}

impl Bind {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let bind = Self {
            system_id: r.c_str(Field::SystemId)?,
            password: r.c_str(Field::Password)?,
            system_type: r.c_str(Field::SystemType)?,
            interface_version: InterfaceVersion(r.u8(Field::InterfaceVersion)?),
            addr_ton: Ton(r.u8(Field::AddrTon)?),
            addr_npi: Npi(r.u8(Field::AddrNpi)?),
            address_range: r.c_str(Field::AddressRange)?,
        };
        super::no_trailing(r, "bind")?;
        Ok(bind)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.system_id.encoded_len()
            + self.password.encoded_len()
            + self.system_type.encoded_len()
            + 3
            + self.address_range.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.system_id);
        put_c_str(dst, &self.password);
        put_c_str(dst, &self.system_type);
        dst.put_u8(self.interface_version.0);
        dst.put_u8(self.addr_ton.0);
        dst.put_u8(self.addr_npi.0);
        put_c_str(dst, &self.address_range);
    }
}

/// The body of the three bind responses (§4.1.2, §4.1.4, §4.1.6): the SMSC's
/// `system_id`, and `sc_interface_version` among the TLVs (Tern adds it for
/// 3.4+ peers only).
pub type BindResp = IdResp<16>;

/// outbind (§4.1.7): the SMSC asks the ESME to bind as a receiver.
/// `Debug` leaves the password out.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Outbind {
    /// The SMSC's id.
    pub system_id: COctetString<16>,
    /// Password the ESME checks.
    pub password: COctetString<9>,
}

impl Outbind {
    pub(crate) fn decode(mut r: Reader) -> Result<Self, DecodeError> {
        let outbind = Self {
            system_id: r.c_str(Field::SystemId)?,
            password: r.c_str(Field::Password)?,
        };
        super::no_trailing(r, "outbind")?;
        Ok(outbind)
    }

    pub(crate) fn encoded_len(&self) -> usize {
        self.system_id.encoded_len() + self.password.encoded_len()
    }

    pub(crate) fn encode(&self, dst: &mut impl BufMut) {
        put_c_str(dst, &self.system_id);
        put_c_str(dst, &self.password);
    }
}

/// Stands in for a password in `Debug` output.
struct Redacted(usize);

impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} octets, redacted>", self.0)
    }
}

impl std::fmt::Debug for Bind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bind")
            .field("system_id", &self.system_id)
            .field("password", &Redacted(self.password.len()))
            .field("system_type", &self.system_type)
            .field("interface_version", &self.interface_version)
            .field("addr_ton", &self.addr_ton)
            .field("addr_npi", &self.addr_npi)
            .field("address_range", &self.address_range)
            .finish()
    }
}

impl std::fmt::Debug for Outbind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbind")
            .field("system_id", &self.system_id)
            .field("password", &Redacted(self.password.len()))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_password() {
        let bind = Bind {
            system_id: "tern".try_into().expect("short"),
            password: "s3cr3t".try_into().expect("short"),
            ..Bind::default()
        };
        let shown = format!("{bind:?}");
        assert!(
            shown.contains("tern") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        let outbind = Outbind {
            system_id: "smsc".try_into().expect("short"),
            password: "hunter2".try_into().expect("short"),
        };
        assert!(!format!("{outbind:#?}").contains("hunter2"));
    }
}
