//! Tern's message store: everything Tern must not forget.
//!
//! Records of accepted messages (the client's PDU, attempts, upstream ids,
//! state and outcome), the indexes that find them again (upstream id in any
//! form, the client's duplicate-protection key), the queues that drive the
//! router (ready with not-before times, expiry, retention), the per-client
//! outboxes of receipts and MO, receipts held until their message is
//! known, and parts of long MO messages held until the whole message is
//! there ([`mo`]).
//!
//! [`Store`] is the one interface: every method that touches stored data
//! is async, reads included, and no Redis round trip blocks a runtime
//! thread. Behind it, [`SledStore`] (the embedded default) and
//! [`RedisStore`] (several nodes on one Redis) only persist and index.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
mod commit;
pub mod dedup;
mod error;
mod held;
pub mod id;
pub mod inspect;
pub mod keys;
mod mark;
mod memtable;
pub mod mo;
pub mod record;
pub mod redis_store;
mod sled_store;
mod transition;
pub mod upstream_id;
mod wal;

pub use backend::{HeldUnder, ReceiptWrite, Store};
pub use commit::{CommitStats, SyncObserver};
pub use error::StoreError;
pub use id::{IdFormat, IdText, TernId};
pub use mo::{HeldMo, MoGroup, MoPart};
pub use record::{
    Attempt, MessageRecord, MultiLink, OutboxItem, Outcome, PartState, ReceiptUpdate,
    ReceivedReceipt, RelayedReceipt, State, UnmatchedReceipt,
};
pub use redis_store::{RedisDurability, RedisOptions, RedisStore, RedisTopology};
pub use sled_store::{
    now_ms, Accepted, Durability, NewMessage, QueueDepths, QueuedChange, Recovery, Replacement,
    SharedStore, SledStore, StoreOptions, Verification, DEFAULT_MEMTABLE_BYTES,
};
