//! `command_status` values (SMPP 3.4 §5.1.3, SMPP 5.0 §4.7.6).
//!
//! Every status the specifications name has a variant, so code matches on
//! meaning rather than on numbers. Two escape hatches keep foreign values
//! intact: [`CommandStatus::Vendor`] for the range 0x400–0x4FF, which the
//! specification reserves for SMSC vendors and which Tern's upstreams fill with
//! different meanings (OVH's 0x400 is "bind throttled", the Russian provider's
//! 0x400 is "unknown data coding"), and [`CommandStatus::Other`] for anything
//! else. Interpreting vendor codes is the router's job, from the vendor profile.
//!
//! `from_code(x).code() == x` for every `u32`, so a status always round-trips.

macro_rules! statuses {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $name:literal; )*) => {
        /// The status carried in a PDU header.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandStatus {
            $( $(#[$doc])* $variant, )*
            /// 0x400–0x4FF: reserved for SMSC vendor-specific errors; meaning
            /// depends on the peer and is looked up in its vendor profile.
            Vendor(u32),
            /// A value the specifications do not define.
            Other(u32),
        }

        impl CommandStatus {
            /// The numeric value sent on the wire.
            pub const fn code(self) -> u32 {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Vendor(code) | Self::Other(code) => code,
                }
            }

            /// The status for a numeric value; total and the inverse of [`code`](Self::code).
            pub const fn from_code(code: u32) -> Self {
                match code {
                    $( $code => Self::$variant, )*
                    0x400..=0x4FF => Self::Vendor(code),
                    _ => Self::Other(code),
                }
            }

            /// The specification's name (`ESME_R…`), or `None` for vendor and unknown codes.
            pub const fn name(self) -> Option<&'static str> {
                match self {
                    $( Self::$variant => Some($name), )*
                    Self::Vendor(_) | Self::Other(_) => None,
                }
            }

            /// Every named status, in code order (tests and documentation tables).
            pub const ALL_NAMED: &'static [CommandStatus] = &[$( Self::$variant, )*];
        }
    };
}

statuses! {
    /// No error.
    Ok = 0x0000_0000, "ESME_ROK";
    /// Message length is invalid.
    InvalidMessageLength = 0x0000_0001, "ESME_RINVMSGLEN";
    /// Command length is invalid.
    InvalidCommandLength = 0x0000_0002, "ESME_RINVCMDLEN";
    /// Invalid command id.
    InvalidCommandId = 0x0000_0003, "ESME_RINVCMDID";
    /// Incorrect bind status for the given command.
    InvalidBindStatus = 0x0000_0004, "ESME_RINVBNDSTS";
    /// ESME already in bound state.
    AlreadyBound = 0x0000_0005, "ESME_RALYBND";
    /// Invalid priority flag.
    InvalidPriorityFlag = 0x0000_0006, "ESME_RINVPRTFLG";
    /// Invalid registered delivery flag.
    InvalidRegisteredDelivery = 0x0000_0007, "ESME_RINVREGDLVFLG";
    /// System error.
    SystemError = 0x0000_0008, "ESME_RSYSERR";
    /// Invalid source address.
    InvalidSourceAddress = 0x0000_000A, "ESME_RINVSRCADR";
    /// Invalid destination address.
    InvalidDestinationAddress = 0x0000_000B, "ESME_RINVDSTADR";
    /// Message id is invalid.
    InvalidMessageId = 0x0000_000C, "ESME_RINVMSGID";
    /// Bind failed.
    BindFailed = 0x0000_000D, "ESME_RBINDFAIL";
    /// Invalid password.
    InvalidPassword = 0x0000_000E, "ESME_RINVPASWD";
    /// Invalid system id.
    InvalidSystemId = 0x0000_000F, "ESME_RINVSYSID";
    /// cancel_sm failed.
    CancelFailed = 0x0000_0011, "ESME_RCANCELFAIL";
    /// replace_sm failed.
    ReplaceFailed = 0x0000_0013, "ESME_RREPLACEFAIL";
    /// Message queue full.
    MessageQueueFull = 0x0000_0014, "ESME_RMSGQFUL";
    /// Invalid service type.
    InvalidServiceType = 0x0000_0015, "ESME_RINVSERTYP";
    /// Invalid number of destinations.
    InvalidNumberOfDestinations = 0x0000_0033, "ESME_RINVNUMDESTS";
    /// Invalid distribution list name.
    InvalidDistributionListName = 0x0000_0034, "ESME_RINVDLNAME";
    /// Destination flag is invalid (submit_multi).
    InvalidDestinationFlag = 0x0000_0040, "ESME_RINVDESTFLAG";
    /// Invalid "submit with replace" request.
    InvalidSubmitWithReplace = 0x0000_0042, "ESME_RINVSUBREP";
    /// Invalid esm_class field data.
    InvalidEsmClass = 0x0000_0043, "ESME_RINVESMCLASS";
    /// Cannot submit to distribution list.
    CannotSubmitToDistributionList = 0x0000_0044, "ESME_RCNTSUBDL";
    /// submit_sm or submit_multi failed.
    SubmitFailed = 0x0000_0045, "ESME_RSUBMITFAIL";
    /// Invalid source address TON.
    InvalidSourceTon = 0x0000_0048, "ESME_RINVSRCTON";
    /// Invalid source address NPI.
    InvalidSourceNpi = 0x0000_0049, "ESME_RINVSRCNPI";
    /// Invalid destination address TON.
    InvalidDestinationTon = 0x0000_0050, "ESME_RINVDSTTON";
    /// Invalid destination address NPI.
    InvalidDestinationNpi = 0x0000_0051, "ESME_RINVDSTNPI";
    /// Invalid system_type field.
    InvalidSystemType = 0x0000_0053, "ESME_RINVSYSTYP";
    /// Invalid replace_if_present flag.
    InvalidReplaceIfPresent = 0x0000_0054, "ESME_RINVREPFLAG";
    /// Invalid number of messages.
    InvalidNumberOfMessages = 0x0000_0055, "ESME_RINVNUMMSGS";
    /// Throttling error: the ESME exceeded its allowed message rate.
    Throttled = 0x0000_0058, "ESME_RTHROTTLED";
    /// Invalid scheduled delivery time.
    InvalidScheduleTime = 0x0000_0061, "ESME_RINVSCHED";
    /// Invalid message validity period (expiry time).
    InvalidExpiry = 0x0000_0062, "ESME_RINVEXPIRY";
    /// Predefined message invalid or not found.
    InvalidDefaultMessageId = 0x0000_0063, "ESME_RINVDFTMSGID";
    /// ESME receiver temporary application error.
    ReceiverTemporaryError = 0x0000_0064, "ESME_RX_T_APPN";
    /// ESME receiver permanent application error.
    ReceiverPermanentError = 0x0000_0065, "ESME_RX_P_APPN";
    /// ESME receiver reject message error.
    ReceiverRejectError = 0x0000_0066, "ESME_RX_R_APPN";
    /// query_sm request failed.
    QueryFailed = 0x0000_0067, "ESME_RQUERYFAIL";
    /// Error in the optional part of the PDU body (TLV stream).
    InvalidTlvStream = 0x0000_00C0, "ESME_RINVOPTPARSTREAM";
    /// Optional parameter (TLV) not allowed.
    TlvNotAllowed = 0x0000_00C1, "ESME_ROPTPARNOTALLWD";
    /// Invalid parameter length.
    InvalidParameterLength = 0x0000_00C2, "ESME_RINVPARLEN";
    /// Expected optional parameter (TLV) missing.
    MissingTlv = 0x0000_00C3, "ESME_RMISSINGOPTPARAM";
    /// Invalid optional parameter (TLV) value.
    InvalidTlvValue = 0x0000_00C4, "ESME_RINVOPTPARAMVAL";
    /// Delivery failure (data_sm_resp, submit in transaction mode).
    DeliveryFailure = 0x0000_00FE, "ESME_RDELIVERYFAILURE";
    /// Unknown error.
    UnknownError = 0x0000_00FF, "ESME_RUNKNOWNERR";
    /// SMPP 5.0: ESME not authorised to use the specified service_type.
    ServiceTypeUnauthorised = 0x0000_0100, "ESME_RSERTYPUNAUTH";
    /// SMPP 5.0: ESME prohibited from using the specified operation.
    Prohibited = 0x0000_0101, "ESME_RPROHIBITED";
    /// SMPP 5.0: specified service_type is unavailable.
    ServiceTypeUnavailable = 0x0000_0102, "ESME_RSERTYPUNAVAIL";
    /// SMPP 5.0: specified service_type is denied.
    ServiceTypeDenied = 0x0000_0103, "ESME_RSERTYPDENIED";
    /// SMPP 5.0: invalid data coding scheme.
    InvalidDataCoding = 0x0000_0104, "ESME_RINVDCS";
    /// SMPP 5.0: source address subunit is invalid.
    InvalidSourceSubunit = 0x0000_0105, "ESME_RINVSRCADDRSUBUNIT";
    /// SMPP 5.0: destination address subunit is invalid.
    InvalidDestinationSubunit = 0x0000_0106, "ESME_RINVDSTADDRSUBUNIT";
    /// SMPP 5.0: broadcast frequency interval is invalid.
    InvalidBroadcastFrequency = 0x0000_0107, "ESME_RINVBCASTFREQINT";
    /// SMPP 5.0: broadcast alias name is invalid.
    InvalidBroadcastAlias = 0x0000_0108, "ESME_RINVBCASTALIAS_NAME";
    /// SMPP 5.0: broadcast area format is invalid.
    InvalidBroadcastAreaFormat = 0x0000_0109, "ESME_RINVBCASTAREAFMT";
    /// SMPP 5.0: number of broadcast areas is invalid.
    InvalidNumberOfBroadcastAreas = 0x0000_010A, "ESME_RINVNUMBCAST_AREAS";
    /// SMPP 5.0: broadcast content type is invalid.
    InvalidBroadcastContentType = 0x0000_010B, "ESME_RINVBCASTCNTTYPE";
    /// SMPP 5.0: broadcast message class is invalid.
    InvalidBroadcastMessageClass = 0x0000_010C, "ESME_RINVBCASTMSGCLASS";
    /// SMPP 5.0: broadcast_sm operation failed.
    BroadcastFailed = 0x0000_010D, "ESME_RBCASTFAIL";
    /// SMPP 5.0: query_broadcast_sm operation failed.
    BroadcastQueryFailed = 0x0000_010E, "ESME_RBCASTQUERYFAIL";
    /// SMPP 5.0: cancel_broadcast_sm operation failed.
    BroadcastCancelFailed = 0x0000_010F, "ESME_RBCASTCANCELFAIL";
    /// SMPP 5.0: number of repeated broadcasts is invalid.
    InvalidBroadcastRepetitions = 0x0000_0110, "ESME_RINVBCAST_REP";
    /// SMPP 5.0: broadcast service group is invalid.
    InvalidBroadcastServiceGroup = 0x0000_0111, "ESME_RINVBCASTSRVGRP";
    /// SMPP 5.0: broadcast channel indicator is invalid.
    InvalidBroadcastChannel = 0x0000_0112, "ESME_RINVBCASTCHANIND";
}

impl CommandStatus {
    /// True for `ESME_ROK`.
    pub const fn is_ok(self) -> bool {
        self.code() == 0
    }
}

impl From<u32> for CommandStatus {
    fn from(code: u32) -> Self {
        Self::from_code(code)
    }
}

impl From<CommandStatus> for u32 {
    fn from(status: CommandStatus) -> Self {
        status.code()
    }
}

impl std::fmt::Display for CommandStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:08X})", self.code()),
            None => write!(f, "0x{:08X}", self.code()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CommandStatus;

    #[test]
    fn named_codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for status in CommandStatus::ALL_NAMED {
            assert_eq!(CommandStatus::from_code(status.code()), *status);
            assert!(seen.insert(status.code()), "duplicate code {status}");
        }
        // 48 statuses in SMPP 3.4 §5.1.3, 19 more (0x100–0x112) in SMPP 5.0.
        assert_eq!(CommandStatus::ALL_NAMED.len(), 48 + 19);
    }

    #[test]
    fn vendor_range_and_unknown_codes_are_kept() {
        assert_eq!(
            CommandStatus::from_code(0x400),
            CommandStatus::Vendor(0x400)
        );
        assert_eq!(
            CommandStatus::from_code(0x45A),
            CommandStatus::Vendor(0x45A)
        );
        assert_eq!(
            CommandStatus::from_code(0x4FF),
            CommandStatus::Vendor(0x4FF)
        );
        assert_eq!(CommandStatus::from_code(0x500), CommandStatus::Other(0x500));
        assert_eq!(CommandStatus::from_code(0x09), CommandStatus::Other(0x09));
        assert_eq!(CommandStatus::Vendor(0x401).code(), 0x401);
        assert_eq!(CommandStatus::Vendor(0x401).name(), None);
    }

    #[test]
    fn spec_values_by_name() {
        assert_eq!(CommandStatus::Throttled.code(), 0x58);
        assert_eq!(CommandStatus::MessageQueueFull.code(), 0x14);
        assert_eq!(
            CommandStatus::InvalidTlvStream.name(),
            Some("ESME_RINVOPTPARSTREAM")
        );
        assert_eq!(
            CommandStatus::InvalidCommandLength.to_string(),
            "ESME_RINVCMDLEN (0x00000002)"
        );
    }
}
