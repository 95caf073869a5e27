//! Tern's sandbox and yardstick: an SMSC simulator and an ESME load
//! generator, both on the `tern-session` engine over real sockets.
//!
//! - [`smsc`]: [`Simulator`] answers submits with message ids in a vendor's
//!   format, sends delivery receipts (text, TLVs or both) to the submitter's
//!   receiving sessions, injects MO messages, and misbehaves on demand
//!   (rejects, throttling, a small window, slow or missing answers, unbinds,
//!   disconnects, garbage) through a [`Behaviour`] changed at run time.
//! - [`load`]: [`load::run`] binds N sessions, keeps W submits in flight on
//!   each, waits for receipts and reports throughput and latency
//!   percentiles as a table or one JSON line.
//!
//! Every wait in both is bounded: the load generator by a message count and
//! a deadline, the simulator by its session timers and a shutdown grace.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod load;
pub mod smsc;

pub use load::{LoadConfig, LoadError, LoadReport};
pub use smsc::{
    Account, Behaviour, BehaviourError, IdFormat, ReceiptBehaviour, ReceiptForm, Recorded, Reject,
    SimConfig, SimError, SimHandle, SimSnapshot, Simulator,
};
