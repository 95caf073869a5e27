//! Tern's one error vocabulary.
//!
//! Every vendor code (a `command_status`, a receipt's `stat` and `err`, the
//! `message_state` and `network_error_code` TLVs) becomes a [`Canonical`]: a
//! final [`FinalState`], a [`Reason`] and whether it is [`Class::Temporary`]
//! or [`Class::Permanent`]. Clients receive standard SMPP 3.4 receipts whose
//! `err` is the reason's three-digit code:
//!
//! | err | reason | |
//! |---|---|---|
//! | 000 | no error | |
//! | 001 | unknown subscriber | GSM MAP (3GPP TS 29.002) |
//! | 013 | call barred (operator barring) | GSM MAP |
//! | 027 | absent subscriber | GSM MAP |
//! | 031 | subscriber busy | GSM MAP |
//! | 032 | delivery failure (memory full, equipment) | GSM MAP |
//! | 034 | system failure (network) | GSM MAP |
//! | 900 | expired | Tern |
//! | 901 | rejected by the vendor (no more precise reason given) | Tern |
//! | 902 | blacklisted, STOP, blocked by the subscriber | Tern |
//! | 903 | content or spam refused | Tern |
//! | 904 | no credit | Tern |
//! | 905 | throttled | Tern |
//! | 906 | invalid destination | Tern |
//! | 907 | no route | Tern |
//! | 908 | sender not allowed | Tern |
//! | 909 | invalid message (coding, length, parameters) | Tern |
//! | 910 | upstream account or configuration (credentials, registration) | Tern |
//! | 999 | unknown | Tern |
//!
//! The GSM MAP codes also travel in `network_error_code` (network type 3).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A message's final (or latest) state, as receipts spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum FinalState {
    /// Delivered to the handset.
    Delivrd,
    /// Validity ran out.
    Expired,
    /// Deleted (cancelled).
    Deleted,
    /// Not deliverable.
    Undeliv,
    /// Accepted on the subscriber's behalf.
    Acceptd,
    /// The vendor does not know.
    Unknown,
    /// Refused.
    Rejectd,
    /// In transit (intermediate).
    Enroute,
    /// Skipped (SMPP 5.0).
    Skipped,
}

impl FinalState {
    /// The `stat` text of a receipt.
    pub const fn stat(self) -> &'static str {
        match self {
            Self::Delivrd => "DELIVRD",
            Self::Expired => "EXPIRED",
            Self::Deleted => "DELETED",
            Self::Undeliv => "UNDELIV",
            Self::Acceptd => "ACCEPTD",
            Self::Unknown => "UNKNOWN",
            Self::Rejectd => "REJECTD",
            Self::Enroute => "ENROUTE",
            Self::Skipped => "SKIPPED",
        }
    }

    /// The `message_state` value (SMPP 3.4 §5.2.28, 5.0 for SKIPPED).
    pub const fn message_state(self) -> u8 {
        match self {
            Self::Enroute => 1,
            Self::Delivrd => 2,
            Self::Expired => 3,
            Self::Deleted => 4,
            Self::Undeliv => 5,
            Self::Acceptd => 6,
            Self::Unknown => 7,
            Self::Rejectd => 8,
            Self::Skipped => 9,
        }
    }

    /// Every state.
    pub const ALL: [FinalState; 9] = [
        Self::Delivrd,
        Self::Expired,
        Self::Deleted,
        Self::Undeliv,
        Self::Acceptd,
        Self::Unknown,
        Self::Rejectd,
        Self::Enroute,
        Self::Skipped,
    ];

    /// The state a `message_state` value names (the inverse of
    /// [`FinalState::message_state`]); `None` for 0 (SCHEDULED) and unknown values.
    pub fn from_message_state(value: u8) -> Option<FinalState> {
        Self::ALL.into_iter().find(|s| s.message_state() == value)
    }

    /// Intermediate states are relayed only to clients that asked for them.
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Enroute | Self::Acceptd)
    }
}

/// Why a message ended as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// No error.
    None,
    /// MAP 1.
    UnknownSubscriber,
    /// MAP 13.
    CallBarred,
    /// MAP 27.
    AbsentSubscriber,
    /// MAP 31.
    SubscriberBusy,
    /// MAP 32.
    DeliveryFailure,
    /// MAP 34.
    SystemFailure,
    /// Validity ran out.
    Expired,
    /// The vendor refused without a more precise reason.
    RejectedByVendor,
    /// Blacklisted, STOP, blocked by the subscriber.
    Blacklisted,
    /// Content or spam refused.
    ContentRejected,
    /// No credit at the vendor.
    NoCredit,
    /// Too fast for the vendor.
    Throttled,
    /// The destination is not a valid number.
    InvalidDestination,
    /// No route to the destination.
    NoRoute,
    /// The sender id is not allowed.
    SenderNotAllowed,
    /// The message itself is invalid (coding, length, parameters).
    InvalidMessage,
    /// Tern's account at the vendor (credentials, registration, IP).
    UpstreamConfiguration,
    /// The vendor does not say.
    Unknown,
}

impl Reason {
    /// Every reason, in code order.
    pub const ALL: [Reason; 19] = [
        Self::None,
        Self::UnknownSubscriber,
        Self::CallBarred,
        Self::AbsentSubscriber,
        Self::SubscriberBusy,
        Self::DeliveryFailure,
        Self::SystemFailure,
        Self::Expired,
        Self::RejectedByVendor,
        Self::Blacklisted,
        Self::ContentRejected,
        Self::NoCredit,
        Self::Throttled,
        Self::InvalidDestination,
        Self::NoRoute,
        Self::SenderNotAllowed,
        Self::InvalidMessage,
        Self::UpstreamConfiguration,
        Self::Unknown,
    ];

    /// The three-digit `err` of client receipts.
    pub const fn err(self) -> u16 {
        match self {
            Self::None => 0,
            Self::UnknownSubscriber => 1,
            Self::CallBarred => 13,
            Self::AbsentSubscriber => 27,
            Self::SubscriberBusy => 31,
            Self::DeliveryFailure => 32,
            Self::SystemFailure => 34,
            Self::Expired => 900,
            Self::RejectedByVendor => 901,
            Self::Blacklisted => 902,
            Self::ContentRejected => 903,
            Self::NoCredit => 904,
            Self::Throttled => 905,
            Self::InvalidDestination => 906,
            Self::NoRoute => 907,
            Self::SenderNotAllowed => 908,
            Self::InvalidMessage => 909,
            Self::UpstreamConfiguration => 910,
            Self::Unknown => 999,
        }
    }

    /// Whether `err` is a GSM MAP code (sent as `network_error_code` type 3).
    pub const fn is_gsm_map(self) -> bool {
        let err = self.err();
        err > 0 && err < 900
    }
}

/// Whether trying again (later, or elsewhere) can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Try again later or through another upstream.
    Temporary,
    /// Final: no failover.
    Permanent,
}

/// Whom a refusal concerns, beside its [`Class`].
///
/// A temporary code may say "later" (the vendor is busy, the handset is
/// off) or "not here" (this vendor has no route, no tariff, does not carry
/// this coding, does not know this sender). Both let another upstream try;
/// only the first lets this one try again, and only the first says
/// anything about the upstream's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// The message itself, or the moment: the class alone says what to do.
    #[default]
    Message,
    /// This upstream only: the next upstream of the route is tried at once
    /// (for a receipt: the message is sent again through it), this one is
    /// not tried again for the message, and its circuit breaker does not
    /// count the refusal (the vendor answered; it is healthy).
    Upstream,
}

/// One normalised outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Canonical {
    /// The state a client receipt reports.
    pub state: FinalState,
    /// Why.
    pub reason: Reason,
    /// Whether trying again can help.
    pub class: Class,
}

impl Canonical {
    /// The receipt `err` text, three digits.
    pub fn err_text(&self) -> String {
        format!("{:03}", self.reason.err())
    }
}

macro_rules! from_str_via_serde {
    ($t:ty, $what:literal) => {
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t>::deserialize(
                    serde::de::value::StrDeserializer::<serde::de::value::Error>::new(s),
                )
                .map_err(|_| format!(concat!("unknown ", $what, " {:?}"), s))
            }
        }
    };
}

from_str_via_serde!(Reason, "reason");
from_str_via_serde!(Class, "class");
from_str_via_serde!(FinalState, "state");

impl fmt::Display for FinalState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.stat())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_three_digit_and_map_where_documented() {
        let mut seen = std::collections::HashSet::new();
        for reason in Reason::ALL {
            assert!(reason.err() <= 999);
            assert!(seen.insert(reason.err()), "{reason:?}");
        }
        assert_eq!(Reason::AbsentSubscriber.err(), 27);
        assert_eq!(Reason::UnknownSubscriber.err(), 1);
        assert!(Reason::CallBarred.is_gsm_map());
        assert!(!Reason::Throttled.is_gsm_map());
        assert!(!Reason::None.is_gsm_map());
    }

    #[test]
    fn message_state_values_round_trip() {
        for state in FinalState::ALL {
            assert_eq!(
                FinalState::from_message_state(state.message_state()),
                Some(state)
            );
        }
        assert_eq!(FinalState::from_message_state(2), Some(FinalState::Delivrd));
        assert_eq!(FinalState::from_message_state(0), None);
        assert_eq!(FinalState::from_message_state(10), None);
    }

    #[test]
    fn names_parse_as_profiles_write_them() {
        assert_eq!("absent_subscriber".parse(), Ok(Reason::AbsentSubscriber));
        assert_eq!("temporary".parse(), Ok(Class::Temporary));
        assert_eq!("UNDELIV".parse(), Ok(FinalState::Undeliv));
        assert!("absent".parse::<Reason>().is_err());
        let c = Canonical {
            state: FinalState::Undeliv,
            reason: Reason::AbsentSubscriber,
            class: Class::Temporary,
        };
        assert_eq!(c.err_text(), "027");
    }
}
