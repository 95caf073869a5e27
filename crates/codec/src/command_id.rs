//! `command_id` values (SMPP 3.4 §5.1.2).
//!
//! A [`Pdu`](crate::Pdu) never stores its command id: it is derived from the
//! body variant, so the two cannot disagree. This type exists for headers seen
//! before (or instead of) a successful decode, for logs and for the operation
//! tables of the session layer.

macro_rules! command_ids {
    ($( $variant:ident = $code:literal, $name:literal; )*) => {
        /// A command id as it appears in a PDU header.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum CommandId {
            $( #[doc = concat!("`", $name, "`")] $variant, )*
            /// A command this codec does not know (SMPP 5.0 broadcast
            /// operations, vendor extensions, garbage). Carried through as is.
            Other(u32),
        }

        impl CommandId {
            /// The numeric value sent on the wire.
            pub const fn code(self) -> u32 {
                match self {
                    $( Self::$variant => $code, )*
                    Self::Other(code) => code,
                }
            }

            /// The command id for a numeric value; total, inverse of [`code`](Self::code).
            pub const fn from_code(code: u32) -> Self {
                match code {
                    $( $code => Self::$variant, )*
                    _ => Self::Other(code),
                }
            }

            /// The specification's name, e.g. `submit_sm`.
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$variant => $name, )*
                    Self::Other(_) => "unknown",
                }
            }

            /// Every known command id.
            pub const ALL_KNOWN: &'static [CommandId] = &[$( Self::$variant, )*];
        }
    };
}

command_ids! {
    GenericNack = 0x8000_0000, "generic_nack";
    BindReceiver = 0x0000_0001, "bind_receiver";
    BindReceiverResp = 0x8000_0001, "bind_receiver_resp";
    BindTransmitter = 0x0000_0002, "bind_transmitter";
    BindTransmitterResp = 0x8000_0002, "bind_transmitter_resp";
    QuerySm = 0x0000_0003, "query_sm";
    QuerySmResp = 0x8000_0003, "query_sm_resp";
    SubmitSm = 0x0000_0004, "submit_sm";
    SubmitSmResp = 0x8000_0004, "submit_sm_resp";
    DeliverSm = 0x0000_0005, "deliver_sm";
    DeliverSmResp = 0x8000_0005, "deliver_sm_resp";
    Unbind = 0x0000_0006, "unbind";
    UnbindResp = 0x8000_0006, "unbind_resp";
    ReplaceSm = 0x0000_0007, "replace_sm";
    ReplaceSmResp = 0x8000_0007, "replace_sm_resp";
    CancelSm = 0x0000_0008, "cancel_sm";
    CancelSmResp = 0x8000_0008, "cancel_sm_resp";
    BindTransceiver = 0x0000_0009, "bind_transceiver";
    BindTransceiverResp = 0x8000_0009, "bind_transceiver_resp";
    Outbind = 0x0000_000B, "outbind";
    EnquireLink = 0x0000_0015, "enquire_link";
    EnquireLinkResp = 0x8000_0015, "enquire_link_resp";
    SubmitMulti = 0x0000_0021, "submit_multi";
    SubmitMultiResp = 0x8000_0021, "submit_multi_resp";
    AlertNotification = 0x0000_0102, "alert_notification";
    DataSm = 0x0000_0103, "data_sm";
    DataSmResp = 0x8000_0103, "data_sm_resp";
}

/// Bit that marks a response (SMPP 3.4 §5.1.2.1).
const RESPONSE_BIT: u32 = 0x8000_0000;

impl CommandId {
    /// True for responses (`generic_nack` included).
    pub const fn is_response(self) -> bool {
        self.code() & RESPONSE_BIT != 0
    }

    /// The response that answers this request, if the request has one.
    ///
    /// `outbind` and `alert_notification` are not answered; responses answer
    /// nothing. For an unknown request the answer is `generic_nack`.
    pub const fn response(self) -> Option<CommandId> {
        match self {
            Self::Outbind | Self::AlertNotification => None,
            Self::Other(code) if code & RESPONSE_BIT == 0 => Some(Self::GenericNack),
            _ if self.is_response() => None,
            _ => Some(Self::from_code(self.code() | RESPONSE_BIT)),
        }
    }
}

impl From<u32> for CommandId {
    fn from(code: u32) -> Self {
        Self::from_code(code)
    }
}

impl std::fmt::Display for CommandId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Other(code) => write!(f, "unknown command 0x{code:08X}"),
            known => f.write_str(known.name()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CommandId;

    #[test]
    fn known_ids_round_trip() {
        for id in CommandId::ALL_KNOWN {
            assert_eq!(CommandId::from_code(id.code()), *id);
        }
        assert_eq!(CommandId::from_code(0x111), CommandId::Other(0x111));
    }

    #[test]
    fn responses() {
        assert_eq!(
            CommandId::SubmitSm.response(),
            Some(CommandId::SubmitSmResp)
        );
        assert_eq!(CommandId::DataSm.response(), Some(CommandId::DataSmResp));
        assert_eq!(CommandId::Outbind.response(), None);
        assert_eq!(CommandId::AlertNotification.response(), None);
        assert_eq!(CommandId::SubmitSmResp.response(), None);
        assert_eq!(
            CommandId::Other(0x77).response(),
            Some(CommandId::GenericNack)
        );
        assert!(CommandId::GenericNack.is_response());
    }
}
