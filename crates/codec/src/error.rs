//! Decoding and building errors.
//!
//! Each error names the field it is about and knows the `command_status` a
//! server answers it with, so the session layer never inspects message text to
//! pick a status (see STYLE: classify causes by type).

use crate::CommandStatus;

/// A field of a PDU body, named as in the specification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Field {
    SystemId,
    Password,
    SystemType,
    InterfaceVersion,
    AddrTon,
    AddrNpi,
    AddressRange,
    ServiceType,
    SourceAddrTon,
    SourceAddrNpi,
    SourceAddr,
    DestAddrTon,
    DestAddrNpi,
    DestinationAddr,
    EsmeAddrTon,
    EsmeAddrNpi,
    EsmeAddr,
    EsmClass,
    ProtocolId,
    PriorityFlag,
    ScheduleDeliveryTime,
    ValidityPeriod,
    RegisteredDelivery,
    ReplaceIfPresentFlag,
    DataCoding,
    SmDefaultMsgId,
    SmLength,
    ShortMessage,
    MessageId,
    FinalDate,
    MessageState,
    ErrorCode,
    NumberOfDests,
    DestFlag,
    DlName,
    NoUnsuccess,
    ErrorStatusCode,
    /// The optional-parameter (TLV) part of the body.
    Tlvs,
}

impl Field {
    /// The field's name in the specification.
    pub const fn name(self) -> &'static str {
        match self {
            Self::SystemId => "system_id",
            Self::Password => "password",
            Self::SystemType => "system_type",
            Self::InterfaceVersion => "interface_version",
            Self::AddrTon => "addr_ton",
            Self::AddrNpi => "addr_npi",
            Self::AddressRange => "address_range",
            Self::ServiceType => "service_type",
            Self::SourceAddrTon => "source_addr_ton",
            Self::SourceAddrNpi => "source_addr_npi",
            Self::SourceAddr => "source_addr",
            Self::DestAddrTon => "dest_addr_ton",
            Self::DestAddrNpi => "dest_addr_npi",
            Self::DestinationAddr => "destination_addr",
            Self::EsmeAddrTon => "esme_addr_ton",
            Self::EsmeAddrNpi => "esme_addr_npi",
            Self::EsmeAddr => "esme_addr",
            Self::EsmClass => "esm_class",
            Self::ProtocolId => "protocol_id",
            Self::PriorityFlag => "priority_flag",
            Self::ScheduleDeliveryTime => "schedule_delivery_time",
            Self::ValidityPeriod => "validity_period",
            Self::RegisteredDelivery => "registered_delivery",
            Self::ReplaceIfPresentFlag => "replace_if_present_flag",
            Self::DataCoding => "data_coding",
            Self::SmDefaultMsgId => "sm_default_msg_id",
            Self::SmLength => "sm_length",
            Self::ShortMessage => "short_message",
            Self::MessageId => "message_id",
            Self::FinalDate => "final_date",
            Self::MessageState => "message_state",
            Self::ErrorCode => "error_code",
            Self::NumberOfDests => "number_of_dests",
            Self::DestFlag => "dest_flag",
            Self::DlName => "dl_name",
            Self::NoUnsuccess => "no_unsuccess",
            Self::ErrorStatusCode => "error_status_code",
            Self::Tlvs => "optional parameters",
        }
    }

    /// The status a server answers when this field's value is invalid.
    ///
    /// A body that ends in the middle of a field is a length problem instead
    /// ([`DecodeError::Truncated`] answers `ESME_RINVCMDLEN`).
    pub const fn invalid_status(self) -> CommandStatus {
        match self {
            Self::SystemId => CommandStatus::InvalidSystemId,
            Self::Password => CommandStatus::InvalidPassword,
            Self::SystemType => CommandStatus::InvalidSystemType,
            Self::InterfaceVersion | Self::AddrTon | Self::AddrNpi | Self::AddressRange => {
                CommandStatus::BindFailed
            }
            Self::ServiceType => CommandStatus::InvalidServiceType,
            Self::SourceAddrTon => CommandStatus::InvalidSourceTon,
            Self::SourceAddrNpi => CommandStatus::InvalidSourceNpi,
            Self::SourceAddr => CommandStatus::InvalidSourceAddress,
            Self::DestAddrTon | Self::EsmeAddrTon => CommandStatus::InvalidDestinationTon,
            Self::DestAddrNpi | Self::EsmeAddrNpi => CommandStatus::InvalidDestinationNpi,
            Self::DestinationAddr | Self::EsmeAddr => CommandStatus::InvalidDestinationAddress,
            Self::EsmClass => CommandStatus::InvalidEsmClass,
            Self::PriorityFlag => CommandStatus::InvalidPriorityFlag,
            Self::ScheduleDeliveryTime => CommandStatus::InvalidScheduleTime,
            Self::ValidityPeriod => CommandStatus::InvalidExpiry,
            Self::RegisteredDelivery => CommandStatus::InvalidRegisteredDelivery,
            Self::ReplaceIfPresentFlag => CommandStatus::InvalidReplaceIfPresent,
            Self::DataCoding => CommandStatus::InvalidDataCoding,
            Self::SmDefaultMsgId => CommandStatus::InvalidDefaultMessageId,
            Self::SmLength | Self::ShortMessage => CommandStatus::InvalidMessageLength,
            Self::MessageId => CommandStatus::InvalidMessageId,
            Self::NumberOfDests => CommandStatus::InvalidNumberOfDestinations,
            Self::DestFlag => CommandStatus::InvalidDestinationFlag,
            Self::DlName => CommandStatus::InvalidDistributionListName,
            Self::Tlvs => CommandStatus::InvalidTlvStream,
            Self::ProtocolId
            | Self::FinalDate
            | Self::MessageState
            | Self::ErrorCode
            | Self::NoUnsuccess
            | Self::ErrorStatusCode => CommandStatus::InvalidParameterLength,
        }
    }
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a PDU body could not be decoded. The header was fine: the session can
/// answer and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The body ends before `field` is complete (or, for a C-octet string,
    /// before its NUL terminator).
    #[error("{field}: the PDU ends before the field is complete")]
    Truncated {
        /// The field being read.
        field: Field,
    },
    /// A C-octet string has no NUL within its maximum length.
    #[error("{field}: longer than {max} octets (NUL included)")]
    TooLong {
        /// The field being read.
        field: Field,
        /// The specification's maximum, NUL included.
        max: usize,
    },
    /// A time field is neither empty nor 16 characters (SMPP 3.4 §7.1.1).
    #[error("{field}: a time is empty or exactly 16 characters, got {len}")]
    TimeLength {
        /// `schedule_delivery_time`, `validity_period` or `final_date`.
        field: Field,
        /// The length found, NUL excluded.
        len: usize,
    },
    /// `sm_length` above 254 (SMPP 3.4 §5.2.21).
    #[error("sm_length is {0}, the maximum is 254")]
    SmLengthTooLarge(u8),
    /// `short_message` and the `message_payload` TLV are both present (SMPP
    /// 3.4 §5.3.2.32 allows one or the other).
    #[error("short_message and message_payload are both present")]
    ShortMessageAndPayload,
    /// A field holds a value the specification does not allow.
    #[error("{field}: invalid value {value}")]
    InvalidValue {
        /// The field being read.
        field: Field,
        /// The value found.
        value: u32,
    },
    /// A body was present where the operation has none.
    #[error("{command} has no body, found {len} octets")]
    UnexpectedBody {
        /// The operation's name.
        command: &'static str,
        /// Octets found after the header.
        len: usize,
    },
    /// The TLV part ends inside a tag, a length or a value.
    #[error("optional parameters: TLV at offset {offset} runs past the end of the PDU")]
    TlvTruncated {
        /// Offset of the broken TLV from the start of the TLV part.
        offset: usize,
    },
    /// A known TLV has the wrong length for its type.
    #[error("TLV 0x{tag:04X}: length {len}, expected {expected}")]
    TlvLength {
        /// The tag.
        tag: u16,
        /// The length found.
        len: usize,
        /// What the specification allows.
        expected: &'static str,
    },
}

impl DecodeError {
    /// The `command_status` a server answers this error with.
    pub const fn command_status(&self) -> CommandStatus {
        match self {
            Self::Truncated { .. } | Self::UnexpectedBody { .. } => {
                CommandStatus::InvalidCommandLength
            }
            Self::TooLong { field, .. } | Self::InvalidValue { field, .. } => {
                field.invalid_status()
            }
            Self::TimeLength { field, .. } => field.invalid_status(),
            Self::SmLengthTooLarge(_) | Self::ShortMessageAndPayload => {
                CommandStatus::InvalidMessageLength
            }
            Self::TlvTruncated { .. } => CommandStatus::InvalidTlvStream,
            Self::TlvLength { .. } => CommandStatus::InvalidParameterLength,
        }
    }

    /// The field the error is about.
    pub const fn field(&self) -> Option<Field> {
        match self {
            Self::Truncated { field }
            | Self::TooLong { field, .. }
            | Self::TimeLength { field, .. }
            | Self::InvalidValue { field, .. } => Some(*field),
            Self::SmLengthTooLarge(_) => Some(Field::SmLength),
            Self::ShortMessageAndPayload => Some(Field::ShortMessage),
            Self::TlvTruncated { .. } | Self::TlvLength { .. } => Some(Field::Tlvs),
            Self::UnexpectedBody { .. } => None,
        }
    }
}

/// A value that does not fit the field it is meant for (building PDUs).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Longer than the field's maximum (NUL included for C-octet strings).
    #[error("{len} octets do not fit a field of at most {max} octets (NUL included)")]
    TooLong {
        /// Octets given, terminator included.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A C-octet string may not contain NUL.
    #[error("a C-octet string cannot contain NUL (at offset {0})")]
    InteriorNul(usize),
    /// A time string must be empty or 16 characters.
    #[error("a time is empty or exactly 16 characters, got {0}")]
    TimeLength(usize),
}
