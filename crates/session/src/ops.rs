//! Which operation is legal in which bind state, for each role, in one place
//! (SMPP 3.4 §2.3 and §4: the operation matrix).
//!
//! The SMSC role is Tern facing its clients; the ESME role is Tern facing an
//! upstream. "Inbound" is what the peer sends us.

use tern_codec::{CommandId, CommandStatus};

/// Which side of the protocol this session plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// We are the SMSC: the peer is an ESME (a client application).
    Smsc,
    /// We are the ESME: the peer is an SMSC (an upstream).
    Esme,
}

/// How the ESME bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BindType {
    /// Sends messages only.
    Transmitter,
    /// Receives messages (receipts, MO) only.
    Receiver,
    /// Both.
    Transceiver,
}

impl BindType {
    /// The bind request for this type.
    pub const fn command_id(self) -> CommandId {
        match self {
            Self::Transmitter => CommandId::BindTransmitter,
            Self::Receiver => CommandId::BindReceiver,
            Self::Transceiver => CommandId::BindTransceiver,
        }
    }

    /// The bind type a bind request asks for.
    pub const fn of(command_id: CommandId) -> Option<Self> {
        match command_id {
            CommandId::BindTransmitter => Some(Self::Transmitter),
            CommandId::BindReceiver => Some(Self::Receiver),
            CommandId::BindTransceiver => Some(Self::Transceiver),
            _ => None,
        }
    }

    /// May the ESME submit (submit_sm, submit_multi, data_sm, query/cancel/replace)?
    pub const fn can_send(self) -> bool {
        matches!(self, Self::Transmitter | Self::Transceiver)
    }

    /// May the ESME receive deliver_sm and data_sm?
    pub const fn can_receive(self) -> bool {
        matches!(self, Self::Receiver | Self::Transceiver)
    }

    /// The name used in logs and configuration.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Transmitter => "transmitter",
            Self::Receiver => "receiver",
            Self::Transceiver => "transceiver",
        }
    }
}

/// A set of bind types: those an account may bind as. Binds of other types
/// are refused with `ESME_RBINDFAIL` before a session slot is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BindTypes(u8);

impl BindTypes {
    /// Every type: what an account allows unless it says otherwise.
    pub const ALL: Self = Self(0b111);
    /// No type at all (the start of a set built one type at a time).
    pub const NONE: Self = Self(0);

    const fn bit(bind_type: BindType) -> u8 {
        match bind_type {
            BindType::Transmitter => 1,
            BindType::Receiver => 2,
            BindType::Transceiver => 4,
        }
    }

    /// The set with `bind_type` added.
    pub const fn with(self, bind_type: BindType) -> Self {
        Self(self.0 | Self::bit(bind_type))
    }

    /// Whether `bind_type` is in the set.
    pub const fn contains(self, bind_type: BindType) -> bool {
        self.0 & Self::bit(bind_type) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The names of the types in the set, in the order transmitter,
    /// receiver, transceiver.
    pub fn names(self) -> Vec<&'static str> {
        [
            BindType::Transmitter,
            BindType::Receiver,
            BindType::Transceiver,
        ]
        .into_iter()
        .filter(|t| self.contains(*t))
        .map(BindType::name)
        .collect()
    }
}

impl Default for BindTypes {
    fn default() -> Self {
        Self::ALL
    }
}

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Connected, not bound yet.
    Open,
    /// Bound with this type.
    Bound(BindType),
    /// An unbind is under way: no new requests.
    Unbinding,
    /// Gone.
    Closed,
}

/// Operations an ESME originates towards the SMSC.
const fn esme_submits(id: CommandId) -> bool {
    matches!(
        id,
        CommandId::SubmitSm
            | CommandId::SubmitMulti
            | CommandId::QuerySm
            | CommandId::CancelSm
            | CommandId::ReplaceSm
    )
}

/// Operations the SMSC originates towards an ESME.
const fn smsc_delivers(id: CommandId) -> bool {
    matches!(id, CommandId::DeliverSm | CommandId::AlertNotification)
}

/// Checks a request the ESME sends (inbound in the SMSC role, outbound in
/// the ESME role) against the session state. `Err` carries the status the
/// SMSC answers with.
pub const fn check_esme_request(state: SessionState, id: CommandId) -> Result<(), CommandStatus> {
    match (state, id) {
        (_, CommandId::EnquireLink) => Ok(()),
        (
            SessionState::Open,
            CommandId::BindTransmitter | CommandId::BindReceiver | CommandId::BindTransceiver,
        ) => Ok(()),
        (
            SessionState::Bound(_),
            CommandId::BindTransmitter | CommandId::BindReceiver | CommandId::BindTransceiver,
        ) => Err(CommandStatus::AlreadyBound),
        (SessionState::Bound(_), CommandId::Unbind) => Ok(()),
        (SessionState::Bound(bind), CommandId::DataSm) => {
            // data_sm flows both ways: from a transmitter as a submission.
            if bind.can_send() {
                Ok(())
            } else {
                Err(CommandStatus::InvalidBindStatus)
            }
        }
        (SessionState::Bound(bind), id) if esme_submits(id) => {
            if bind.can_send() {
                Ok(())
            } else {
                Err(CommandStatus::InvalidBindStatus)
            }
        }
        (_, CommandId::Other(_)) => Err(CommandStatus::InvalidCommandId),
        _ => Err(CommandStatus::InvalidBindStatus),
    }
}

/// Checks a request the SMSC sends (outbound in the SMSC role, inbound in
/// the ESME role). `Err` carries the status the ESME answers with.
pub const fn check_smsc_request(state: SessionState, id: CommandId) -> Result<(), CommandStatus> {
    match (state, id) {
        (_, CommandId::EnquireLink) => Ok(()),
        (SessionState::Open, CommandId::Outbind) => Ok(()),
        (SessionState::Bound(_), CommandId::Unbind) => Ok(()),
        (SessionState::Bound(bind), CommandId::DataSm) => {
            if bind.can_receive() {
                Ok(())
            } else {
                Err(CommandStatus::InvalidBindStatus)
            }
        }
        (SessionState::Bound(bind), id) if smsc_delivers(id) => {
            if bind.can_receive() {
                Ok(())
            } else {
                Err(CommandStatus::InvalidBindStatus)
            }
        }
        (_, CommandId::Other(_)) => Err(CommandStatus::InvalidCommandId),
        _ => Err(CommandStatus::InvalidBindStatus),
    }
}

/// Checks a request arriving from the peer of a session playing `role`.
pub const fn check_inbound(
    role: Role,
    state: SessionState,
    id: CommandId,
) -> Result<(), CommandStatus> {
    match role {
        Role::Smsc => check_esme_request(state, id),
        Role::Esme => check_smsc_request(state, id),
    }
}

/// Checks a request this session wants to send.
pub const fn check_outbound(
    role: Role,
    state: SessionState,
    id: CommandId,
) -> Result<(), CommandStatus> {
    match role {
        Role::Smsc => check_smsc_request(state, id),
        Role::Esme => check_esme_request(state, id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TX: SessionState = SessionState::Bound(BindType::Transmitter);
    const RX: SessionState = SessionState::Bound(BindType::Receiver);
    const TRX: SessionState = SessionState::Bound(BindType::Transceiver);

    #[test]
    fn a_receiver_may_not_submit_and_a_transmitter_may_not_receive() {
        assert_eq!(
            check_inbound(Role::Smsc, RX, CommandId::SubmitSm),
            Err(CommandStatus::InvalidBindStatus)
        );
        assert_eq!(check_inbound(Role::Smsc, TX, CommandId::SubmitSm), Ok(()));
        assert_eq!(
            check_inbound(Role::Smsc, TRX, CommandId::SubmitMulti),
            Ok(())
        );
        assert_eq!(
            check_outbound(Role::Smsc, TX, CommandId::DeliverSm),
            Err(CommandStatus::InvalidBindStatus)
        );
        assert_eq!(check_outbound(Role::Smsc, RX, CommandId::DeliverSm), Ok(()));
        assert_eq!(
            check_inbound(Role::Esme, TX, CommandId::DeliverSm),
            Err(CommandStatus::InvalidBindStatus)
        );
        assert_eq!(check_inbound(Role::Esme, TRX, CommandId::DeliverSm), Ok(()));
    }

    #[test]
    fn commands_before_bind() {
        assert_eq!(
            check_inbound(Role::Smsc, SessionState::Open, CommandId::SubmitSm),
            Err(CommandStatus::InvalidBindStatus)
        );
        assert_eq!(
            check_inbound(Role::Smsc, SessionState::Open, CommandId::BindTransceiver),
            Ok(())
        );
        assert_eq!(
            check_inbound(Role::Smsc, SessionState::Open, CommandId::EnquireLink),
            Ok(())
        );
        assert_eq!(
            check_inbound(Role::Smsc, SessionState::Open, CommandId::Unbind),
            Err(CommandStatus::InvalidBindStatus)
        );
        assert_eq!(
            check_inbound(Role::Smsc, TRX, CommandId::BindTransmitter),
            Err(CommandStatus::AlreadyBound)
        );
        assert_eq!(
            check_inbound(Role::Smsc, TRX, CommandId::Other(0x999)),
            Err(CommandStatus::InvalidCommandId)
        );
    }
}
