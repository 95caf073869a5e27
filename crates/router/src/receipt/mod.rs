//! Every decision about a delivery receipt, as pure functions: values in, a
//! decision out, no store, no clock, no I/O. The daemon
//! (`tern/src/daemon/receipts.rs`) reads the record, calls these, and
//! writes what they decide.
//!
//! A receipt's path, in order:
//!
//! - [`read`]: an upstream's deliver_sm read through its vendor profile into
//!   Tern's vocabulary ([`read_receipt`]), or an MO, or unreadable;
//! - [`matching`]: which attempt and which part of the message the
//!   receipt's id names (case, leading zeros and, where the profile says
//!   so, the base aside), and which upstreams already took the message;
//! - [`parts`]: the parts of the accepted attempt and the outcome over
//!   them (the worst, once every awaited part is final);
//! - [`decide`]: what one receipt changes in its message's record
//!   ([`on_receipt`]): history, parts, the end, a resubmission, and the
//!   receipt its client is owed;
//! - [`client`]: the receipt a client gets, in Tern's id and vocabulary
//!   ([`client_relay`] for a stored message, [`client_receipt`] for the PDU);
//! - [`stored`]: an outcome in the store's form and back.
//!
//! Two layers stay outside, each because others use it too: the SMPP
//! receipt text itself (`id:… stat:… err:…`, its dates and `err` radix) is
//! `tern_codec::receipt`, a wire format the simulator and the command line
//! read and write as well; the message record, the update a receipt makes
//! and the normal forms of upstream ids are `tern_storage`'s, because the
//! store indexes ids by those forms and applies the update in one write.

pub mod client;
pub mod decide;
pub mod matching;
pub mod parts;
pub mod read;
pub mod stored;

pub use client::{
    client_receipt, client_relay, client_submit, ended_by_tern, wanted, ClientReceipt, PartOf,
    VENDOR_CODE_TLV,
};
pub use decide::{on_receipt, Decision, Receiving};
pub use matching::used_upstreams;
pub use parts::combined;
pub use read::{read_held, read_receipt, ReceiptReadError, UpstreamReceipt};
pub use stored::{canonical_of, stored_outcome};

#[cfg(test)]
pub(crate) mod fixtures;
