//! How the simulator treats what it receives: the misbehaviour knobs.
//!
//! A [`Behaviour`] is read once per submit (and once per session for the
//! session timers), so a change through
//! [`SimHandle::set_behaviour`](crate::SimHandle::set_behaviour) applies to
//! the next submit on every session without restarting anything. The knobs
//! are checked in a fixed order: drop, throttle, window, reject, accept.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tern_codec::CommandStatus;

/// Refuse a fraction of submits with one status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reject {
    /// Share of submits refused, 0.0–1.0, drawn at random per submit.
    pub fraction: f64,
    /// The status they get (`ESME_RSUBMITFAIL`, a vendor code, …).
    pub status: CommandStatus,
}

/// What a receipt carries, because vendors differ: most send only the
/// text, some only TLVs, Telesign both (VENDORS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ReceiptForm {
    /// `id:… stat:… err:…` in short_message, no TLVs.
    Text,
    /// `receipted_message_id` and `message_state` (and `network_error_code`
    /// when undelivered), empty short_message.
    Tlvs,
    /// Both.
    #[default]
    Both,
}

/// How delivery receipts are produced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReceiptBehaviour {
    /// Time between the `submit_sm_resp` and the receipt being due.
    pub delay: Duration,
    /// Text, TLVs or both.
    pub form: ReceiptForm,
    /// Share of receipts that say `UNDELIV` instead of `DELIVRD`, 0.0–1.0.
    pub undeliverable_fraction: f64,
    /// The `err` (and GSM `network_error_code`) of an `UNDELIV` receipt;
    /// 27 is MAP "absent subscriber".
    pub undeliverable_err: u16,
}

impl Default for ReceiptBehaviour {
    fn default() -> Self {
        Self {
            delay: Duration::ZERO,
            form: ReceiptForm::Both,
            undeliverable_fraction: 0.0,
            undeliverable_err: 27,
        }
    }
}

/// The simulator's behaviour towards submits and sessions. The default is
/// a well-behaved SMSC: every submit accepted at once, receipts `DELIVRD`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Behaviour {
    /// Share of submits never answered (the responder is kept, so the
    /// engine does not answer `ESME_RSYSERR` for us), 0.0–1.0.
    pub drop_fraction: f64,
    /// Submits per second per session; beyond it `ESME_RTHROTTLED`. Per
    /// session, as vendors state their limits (OVH: 20/s per connection);
    /// one second of burst is allowed.
    pub throttle_per_second: Option<u32>,
    /// Unanswered submits a session may have; beyond it `ESME_RMSGQFUL`.
    /// Only bites with a `response_delay`: without one nothing stays
    /// unanswered.
    pub window: Option<usize>,
    /// Refuse a fraction of submits.
    pub reject: Option<Reject>,
    /// Every answer to a submit waits this long.
    pub response_delay: Duration,
    /// The simulator unbinds each session this long after it bound.
    pub unbind_after: Option<Duration>,
    /// The simulator drops each session's connection, without unbind, this
    /// long after it bound.
    pub disconnect_after: Option<Duration>,
    /// Delivery receipts.
    pub receipts: ReceiptBehaviour,
}

/// A knob set out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BehaviourError {
    /// A fraction is not within 0.0–1.0 (or is NaN).
    #[error("{field} must be between 0.0 and 1.0, not {value}")]
    Fraction {
        /// Which knob.
        field: &'static str,
        /// What it was set to.
        value: f64,
    },
    /// A rate or window of zero would refuse everything; use `reject` for that.
    #[error("{field} must be at least 1")]
    Zero {
        /// Which knob.
        field: &'static str,
    },
}

impl Behaviour {
    /// Checks every knob's range; a behaviour is only installed valid.
    pub fn validate(&self) -> Result<(), BehaviourError> {
        let fraction = |field, value: f64| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(BehaviourError::Fraction { field, value })
            }
        };
        fraction("drop_fraction", self.drop_fraction)?;
        if let Some(reject) = &self.reject {
            fraction("reject.fraction", reject.fraction)?;
        }
        fraction(
            "receipts.undeliverable_fraction",
            self.receipts.undeliverable_fraction,
        )?;
        if self.throttle_per_second == Some(0) {
            return Err(BehaviourError::Zero {
                field: "throttle_per_second",
            });
        }
        if self.window == Some(0) {
            return Err(BehaviourError::Zero { field: "window" });
        }
        Ok(())
    }
}

/// The installed behaviour, shared by every session. Readers take a cheap
/// `Arc` clone so a writer never waits for a submit being handled.
#[derive(Debug, Default)]
pub(crate) struct BehaviourCell(RwLock<Arc<Behaviour>>);

impl BehaviourCell {
    pub(crate) fn new(behaviour: Behaviour) -> Self {
        Self(RwLock::new(Arc::new(behaviour)))
    }

    pub(crate) fn load(&self) -> Arc<Behaviour> {
        // A poisoned lock still holds a whole Arc: keep using it.
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn store(&self, behaviour: Behaviour) {
        *self
            .0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(behaviour);
    }
}

/// True with probability `fraction` (already validated to 0.0–1.0).
pub(crate) fn chance(fraction: f64) -> bool {
    fraction >= 1.0 || (fraction > 0.0 && rand::random::<f64>() < fraction)
}
