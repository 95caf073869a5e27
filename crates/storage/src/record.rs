//! What the store keeps about a message and about what is owed to clients.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::id::TernId;

/// Where a message is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// Durable and waiting in the ready queue (possibly not before a time).
    Queued,
    /// Claimed by a router task and being sent; re-queued at restart.
    InFlight,
    /// An upstream accepted it; waiting for its receipt.
    Submitted,
    /// Nothing more will happen.
    Final,
}

/// One try at one upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    /// The upstream's name in the configuration.
    pub upstream: String,
    /// When it was sent (ms since the Unix epoch).
    pub at_ms: u64,
    /// The upstream's `command_status`, once answered.
    pub status: Option<u32>,
    /// The upstream's ids for the parts it accepted.
    pub upstream_ids: Vec<String>,
}

/// How a message ended, in Tern's one vocabulary (the router fills it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The final state as a receipt `stat` (DELIVRD, UNDELIV, EXPIRED, …).
    pub stat: String,
    /// The canonical three-digit error.
    pub err: u16,
    /// The vendor's own code, for logs and the store.
    pub vendor_code: Option<String>,
}

/// Everything Tern must not forget about one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRecord {
    /// Tern's id, given to the client.
    pub id: TernId,
    /// The client account that submitted it.
    pub client: String,
    /// The client's PDU as received (submit_sm, data_sm…), encoded: every
    /// field the client gave, exactly.
    pub pdu: Bytes,
    /// Whether the client asked for a receipt.
    pub receipt_requested: bool,
    /// Where it is.
    pub state: State,
    /// Every try, in order.
    pub attempts: Vec<Attempt>,
    /// How it ended, once final.
    pub outcome: Option<Outcome>,
    /// When Tern accepted it (ms since the Unix epoch).
    pub accepted_ms: u64,
    /// When it changed last.
    pub updated_ms: u64,
    /// Not to be sent before (scheduled delivery, retry backoff).
    pub not_before_ms: u64,
    /// Given up at (validity period); `None` for the default.
    pub expires_ms: Option<u64>,
    /// The duplicate-protection key it was accepted under, if any.
    pub dedup_key: Option<Bytes>,
}

/// Something owed to a client: a receipt or an MO message, to be sent as
/// deliver_sm and kept until the client answers deliver_sm_resp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxItem {
    /// The deliver_sm to send, encoded (sequence number set at send time).
    pub pdu: Bytes,
    /// The message it is about, for a receipt.
    pub message: Option<TernId>,
    /// When it was stored (ms since the Unix epoch).
    pub stored_ms: u64,
}

/// A receipt that matched no message yet: it may have come before the
/// `submit_sm_resp` that tells which message it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmatchedReceipt {
    /// The upstream it came from.
    pub upstream: String,
    /// Its message id, as sent.
    pub upstream_id: String,
    /// The deliver_sm, encoded.
    pub pdu: Bytes,
    /// When it arrived (ms since the Unix epoch).
    pub received_ms: u64,
}
