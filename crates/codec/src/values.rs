//! One-octet field values (SMPP 3.4 §5.2) and addresses.
//!
//! Each is a newtype over the octet with named constants rather than a closed
//! enum: peers send values the specification reserves, and a broker must carry
//! them through unchanged. Methods read the bit fields the router needs.

use crate::octets::COctetString;

macro_rules! octet_value {
    ($(#[$doc:meta])* $name:ident { $( $(#[$cdoc:meta])* $konst:ident = $val:literal ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
        pub struct $name(pub u8);

        impl $name {
            $( $(#[$cdoc])* pub const $konst: $name = $name($val); )*
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                Self(value)
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                value.0
            }
        }
    };
}

octet_value! {
    /// Type of number (SMPP 3.4 §5.2.5).
    Ton {
        /// Unknown.
        UNKNOWN = 0,
        /// International (E.164, without a leading +).
        INTERNATIONAL = 1,
        /// National.
        NATIONAL = 2,
        /// Network specific: shortcodes at OVH.
        NETWORK_SPECIFIC = 3,
        /// Subscriber number.
        SUBSCRIBER_NUMBER = 4,
        /// Alphanumeric sender id.
        ALPHANUMERIC = 5,
        /// Abbreviated.
        ABBREVIATED = 6,
    }
}

octet_value! {
    /// Numbering plan indicator (SMPP 3.4 §5.2.6).
    Npi {
        /// Unknown.
        UNKNOWN = 0,
        /// ISDN (E.163/E.164).
        ISDN = 1,
        /// Data (X.121).
        DATA = 3,
        /// Telex (F.69).
        TELEX = 4,
        /// Land mobile (E.212).
        LAND_MOBILE = 6,
        /// National.
        NATIONAL = 8,
        /// Private.
        PRIVATE = 9,
        /// ERMES.
        ERMES = 10,
        /// Internet (IP).
        INTERNET = 14,
        /// WAP client id.
        WAP = 18,
    }
}

octet_value! {
    /// `interface_version` (SMPP 3.4 §5.2.4). Values up to 0x33 mean 3.3 or earlier.
    InterfaceVersion {
        /// SMPP 3.3.
        V33 = 0x33,
        /// SMPP 3.4.
        V34 = 0x34,
        /// SMPP 5.0.
        V50 = 0x50,
    }
}

impl InterfaceVersion {
    /// Whether a peer of this version understands TLVs. A 3.3 peer gets none
    /// back (SMPP 3.4 §2.8 and §5.2.4).
    pub const fn supports_tlvs(self) -> bool {
        self.0 >= 0x34
    }
}

octet_value! {
    /// `esm_class` (SMPP 3.4 §5.2.12): messaging mode, message type, GSM features.
    EsmClass {
        /// Default mode, normal message.
        DEFAULT = 0x00,
        /// Message type: SMSC delivery receipt (in deliver_sm).
        DELIVERY_RECEIPT = 0x04,
        /// Message type: SME delivery acknowledgement.
        SME_DELIVERY_ACK = 0x08,
        /// Message type: SME manual/user acknowledgement.
        SME_MANUAL_ACK = 0x10,
        /// Message type: conversation abort (Korean CDMA).
        CONVERSATION_ABORT = 0x18,
        /// Message type: intermediate delivery notification.
        INTERMEDIATE_NOTIFICATION = 0x20,
        /// GSM feature: short_message starts with a user data header.
        UDHI = 0x40,
        /// GSM feature: reply path.
        REPLY_PATH = 0x80,
    }
}

impl EsmClass {
    const TYPE_MASK: u8 = 0x3C;

    /// Messaging mode, bits 1–0 (default, datagram, forward/transaction, store and forward).
    pub const fn mode(self) -> u8 {
        self.0 & 0x03
    }

    /// The message type bits (5–2) alone.
    pub const fn message_type(self) -> u8 {
        self.0 & Self::TYPE_MASK
    }

    /// A receipt or an intermediate notification rather than a user message.
    pub const fn is_receipt(self) -> bool {
        matches!(self.message_type(), 0x04 | 0x08 | 0x10 | 0x20)
    }

    /// The short message starts with a user data header.
    pub const fn udhi(self) -> bool {
        self.0 & Self::UDHI.0 != 0
    }

    /// The same class with the UDHI bit set or cleared.
    pub const fn with_udhi(self, on: bool) -> Self {
        if on {
            Self(self.0 | Self::UDHI.0)
        } else {
            Self(self.0 & !Self::UDHI.0)
        }
    }
}

octet_value! {
    /// `registered_delivery` (SMPP 3.4 §5.2.17): which receipts are requested.
    RegisteredDelivery {
        /// No receipt.
        NONE = 0x00,
        /// SMSC receipt on success and on failure.
        ALWAYS = 0x01,
        /// SMSC receipt on failure only.
        ON_FAILURE = 0x02,
        /// Intermediate notification requested (bit 4).
        INTERMEDIATE = 0x10,
    }
}

/// Which SMSC delivery receipts a `registered_delivery` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReceiptRequest {
    /// None.
    None,
    /// On final success and on failure.
    Always,
    /// On failure only.
    OnFailure,
    /// On success only (SMPP 5.0, value 3).
    OnSuccess,
}

impl RegisteredDelivery {
    /// The SMSC delivery receipt bits (1–0).
    pub const fn receipt(self) -> ReceiptRequest {
        match self.0 & 0x03 {
            0 => ReceiptRequest::None,
            1 => ReceiptRequest::Always,
            2 => ReceiptRequest::OnFailure,
            _ => ReceiptRequest::OnSuccess,
        }
    }

    /// Whether intermediate notifications are requested (bit 4).
    pub const fn intermediate(self) -> bool {
        self.0 & 0x10 != 0
    }
}

octet_value! {
    /// `data_coding` (SMPP 3.4 §5.2.19). Which alphabet 0x00 means is the
    /// SMSC's choice, so mapping to a text encoding is the vendor profile's job.
    DataCoding {
        /// SMSC default alphabet (GSM 03.38 at most vendors).
        DEFAULT = 0x00,
        /// IA5 (CCITT T.50) / ASCII.
        IA5 = 0x01,
        /// Octet unspecified (8-bit binary).
        BINARY = 0x02,
        /// Latin 1 (ISO-8859-1).
        LATIN1 = 0x03,
        /// Octet unspecified (8-bit binary).
        BINARY_04 = 0x04,
        /// JIS (X 0208-1990).
        JIS = 0x05,
        /// Cyrillic (ISO-8859-5).
        CYRILLIC = 0x06,
        /// Latin/Hebrew (ISO-8859-8).
        HEBREW = 0x07,
        /// UCS2 (ISO/IEC-10646), UTF-16BE in practice.
        UCS2 = 0x08,
        /// Flash message in the default alphabet (message class 0).
        FLASH_DEFAULT = 0x10,
        /// Flash message in UCS2 (message class 0).
        FLASH_UCS2 = 0x18,
    }
}

octet_value! {
    /// `priority_flag` (SMPP 3.4 §5.2.14).
    PriorityFlag {
        /// Lowest priority.
        LOWEST = 0,
        /// Level 1.
        LEVEL_1 = 1,
        /// Level 2.
        LEVEL_2 = 2,
        /// Highest priority.
        HIGHEST = 3,
    }
}

octet_value! {
    /// `message_state` (SMPP 3.4 §5.2.28), in `query_sm_resp` and the TLV 0x0427.
    MessageState {
        /// SMPP 5.0: scheduled.
        SCHEDULED = 0,
        /// In transit.
        ENROUTE = 1,
        /// Delivered.
        DELIVERED = 2,
        /// Validity period expired.
        EXPIRED = 3,
        /// Deleted.
        DELETED = 4,
        /// Undeliverable.
        UNDELIVERABLE = 5,
        /// Accepted (manually read on behalf of the subscriber).
        ACCEPTED = 6,
        /// Unknown state.
        UNKNOWN = 7,
        /// Rejected.
        REJECTED = 8,
        /// SMPP 5.0: skipped.
        SKIPPED = 9,
    }
}

impl MessageState {
    /// True for states after which nothing more will happen to the message.
    pub const fn is_final(self) -> bool {
        matches!(self.0, 2..=5 | 7..=9)
    }
}

/// An address with its type of number and numbering plan; `MAX` is the
/// address field's limit, NUL included (21 in most PDUs, 65 in data_sm and
/// alert_notification).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Address<const MAX: usize> {
    /// Type of number.
    pub ton: Ton,
    /// Numbering plan.
    pub npi: Npi,
    /// The address digits or alphanumeric id.
    pub addr: COctetString<MAX>,
}

impl<const MAX: usize> Address<MAX> {
    /// An address from its parts.
    pub fn new(ton: Ton, npi: Npi, addr: COctetString<MAX>) -> Self {
        Self { ton, npi, addr }
    }

    pub(crate) fn encoded_len(&self) -> usize {
        2 + self.addr.encoded_len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn esm_class_bits() {
        let receipt = EsmClass(0x04);
        assert!(receipt.is_receipt());
        assert!(!EsmClass::DEFAULT.is_receipt());
        assert!(EsmClass(0x43).udhi());
        assert_eq!(EsmClass::DEFAULT.with_udhi(true), EsmClass(0x40));
        assert_eq!(EsmClass(0x43).mode(), 3);
    }

    #[test]
    fn registered_delivery_bits() {
        assert_eq!(RegisteredDelivery(0x11).receipt(), ReceiptRequest::Always);
        assert!(RegisteredDelivery(0x11).intermediate());
        assert_eq!(
            RegisteredDelivery(0x02).receipt(),
            ReceiptRequest::OnFailure
        );
        assert_eq!(RegisteredDelivery(0x00).receipt(), ReceiptRequest::None);
    }

    #[test]
    fn tlv_support_by_version() {
        assert!(!InterfaceVersion::V33.supports_tlvs());
        assert!(!InterfaceVersion(0x00).supports_tlvs());
        assert!(InterfaceVersion::V34.supports_tlvs());
        assert!(InterfaceVersion::V50.supports_tlvs());
    }
}
