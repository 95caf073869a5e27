//! What the store keeps about a message and about what is owed to clients.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::id::{IdFormat, TernId};

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
    /// Why the attempt was given up (a refusal, no answer, or the upstream
    /// cannot carry the message), for `tern trace`; `None` when accepted.
    /// Ids of an attempt given up are kept for the receipts of the parts
    /// it had accepted (the message's parts are those of the accepted one).
    pub failure: Option<String>,
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
    // Fields below were added after the first stored layout ([`v1`]); a
    // record written before them reads with them empty (see
    // [`MessageRecord::from_stored`]). New fields go at the end, here.
    /// What the receipts said about each part of the accepted attempt, in
    /// part order; empty until the first receipt. The message is final
    /// once every awaited part is.
    pub parts: Vec<PartState>,
    /// Every receipt upstreams sent about this message, as received, in
    /// order of arrival (repeats and late ones included): the answer to
    /// "what did the vendor say?".
    pub received: Vec<ReceivedReceipt>,
    /// Every receipt queued for the client, in order: the answer to "where
    /// is my receipt?".
    pub relayed: Vec<RelayedReceipt>,
    /// The submit_multi this message is one destination of; `None` for a
    /// message submitted alone (submit_sm, data_sm). Added after layout v2.
    pub multi: Option<MultiLink>,
    /// The form the client was given this message's id in: its receipts
    /// and query_sm answers use this one, even after a reload changed the
    /// account's `id_format`. Same layout as [`Self::multi`].
    pub id_format: IdFormat,
}

/// How one destination of a submit_multi is tied to the id its client was
/// given: each destination is a message of its own (routed, retried and
/// ended alone), and the submission's id is the first destination's own
/// id, so finding the submission is one read of that record, on either
/// backend, with no other key to keep in step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultiLink {
    /// The id the client was given for the whole submission.
    pub submission: TernId,
    /// On the submission's own record (the first destination): every
    /// destination's message id in the order submitted, itself first.
    /// Empty on the other destinations' records.
    pub members: Vec<TernId>,
}

impl MessageRecord {
    /// Whether this record, as stored now, is still `read`: the record a
    /// caller read and decided a change from, without a lease that keeps
    /// other nodes out (see `Store::record_decided_receipt`). When the
    /// client took each relayed receipt is left out: it is kept beside the
    /// record, and a read may have folded it in or not.
    pub fn unchanged_since(&self, read: &MessageRecord) -> bool {
        // Every field named: a field added later must be weighed here.
        let MessageRecord {
            id,
            client,
            pdu,
            receipt_requested,
            state,
            attempts,
            outcome,
            accepted_ms,
            updated_ms,
            not_before_ms,
            expires_ms,
            dedup_key,
            parts,
            received,
            relayed,
            multi,
            id_format,
        } = self;
        let relayed_same = relayed.len() == read.relayed.len()
            && relayed.iter().zip(&read.relayed).all(|(now, then)| {
                (now.outbox_seq, now.part, &now.stat, now.err, now.queued_ms)
                    == (
                        then.outbox_seq,
                        then.part,
                        &then.stat,
                        then.err,
                        then.queued_ms,
                    )
            });
        relayed_same
            && *id == read.id
            && *state == read.state
            && *updated_ms == read.updated_ms
            && *not_before_ms == read.not_before_ms
            && *parts == read.parts
            && *received == read.received
            && *attempts == read.attempts
            && *outcome == read.outcome
            && *expires_ms == read.expires_ms
            && *multi == read.multi
            && *client == read.client
            && *pdu == read.pdu
            && *receipt_requested == read.receipt_requested
            && *accepted_ms == read.accepted_ms
            && *dedup_key == read.dedup_key
            && *id_format == read.id_format
    }
}

impl MessageRecord {
    /// The id the client knows this message by: the submission's for a
    /// destination of a submit_multi, else its own. Receipts and query_sm
    /// answers name this one.
    pub fn client_id(&self) -> TernId {
        self.multi.as_ref().map_or(self.id, |m| m.submission)
    }

    /// Every destination of the submit_multi whose id this record's is,
    /// in order (itself first); `None` when it is not a submission's id.
    pub fn submission_members(&self) -> Option<&[TernId]> {
        self.multi
            .as_ref()
            .filter(|m| m.submission == self.id && !m.members.is_empty())
            .map(|m| m.members.as_slice())
    }
}

/// One part of a message as sent upstream, and what its receipts said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartState {
    /// The upstream the part went to.
    pub upstream: String,
    /// The upstream's id for it.
    pub upstream_id: String,
    /// Whether the message waits for this part's receipt: a vendor that
    /// splits a payload itself reports only one part (Telesign: the first).
    pub awaited: bool,
    /// The latest outcome its receipts reported (canonical).
    pub outcome: Option<Outcome>,
    /// Whether that outcome is final (not ENROUTE, ACCEPTD).
    pub is_final: bool,
    /// When its latest receipt came (ms since the Unix epoch); 0 before.
    pub updated_ms: u64,
}

/// A receipt as an upstream sent it, kept for the message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceivedReceipt {
    /// The upstream it came from.
    pub upstream: String,
    /// The message id it named, as written.
    pub upstream_id: String,
    /// Which part (0-based, in the accepted attempt's order), when known.
    pub part: Option<u32>,
    /// Its `stat`, as written.
    pub vendor_stat: Option<String>,
    /// Its `err`, as written.
    pub vendor_err: Option<String>,
    /// Its `network_error_code` TLV: network type and error code.
    pub network_error: Option<(u8, u16)>,
    /// What it means in Tern's vocabulary.
    pub canonical: Outcome,
    /// Whether that is a final state.
    pub is_final: bool,
    /// When it arrived (ms since the Unix epoch).
    pub received_ms: u64,
    /// Its vendor-specific TLVs (tag, value), as received.
    pub vendor_tlvs: Vec<(u16, Vec<u8>)>,
}

/// A receipt Tern queued for its client, kept for the message's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayedReceipt {
    /// Its place in the client's outbox (set by the store when queued).
    pub outbox_seq: u64,
    /// Which part it reports (per-part receipts), or `None` for the message.
    pub part: Option<u32>,
    /// The `stat` the client is told.
    pub stat: String,
    /// The three-digit `err` the client is told.
    pub err: u16,
    /// When it went into the outbox (ms since the Unix epoch).
    pub queued_ms: u64,
    /// When the client answered its deliver_sm with ESME_ROK; `None` while
    /// it waits in the outbox (no receiver bound, or not answered yet).
    pub acked_ms: Option<u64>,
}

/// What a receipt changes, stored in one atomic write (see
/// `SledStore::record_receipt`): nothing is acknowledged upstream, and
/// nothing owed to the client is lost, unless all of it is on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptUpdate {
    /// The upstream receipt, appended to [`MessageRecord::received`].
    pub received: Option<ReceivedReceipt>,
    /// The parts' states after it, replacing [`MessageRecord::parts`].
    pub parts: Option<Vec<PartState>>,
    /// Ends the message with this outcome (ignored if it is final already).
    pub outcome: Option<Outcome>,
    /// A receipt for the client: the deliver_sm goes into its outbox and
    /// the entry (with its outbox place) into [`MessageRecord::relayed`].
    pub relay: Option<(OutboxItem, RelayedReceipt)>,
    /// Sends the message again: back into the ready queue, not before this
    /// time (ms since the Unix epoch), unless it is final. A failed receipt
    /// that the route resubmits on does this instead of ending it, in the
    /// same write that keeps the receipt, so a crash never loses both.
    pub requeue_at_ms: Option<u64>,
}

/// Stored layouts of [`MessageRecord`] older than the current one.
///
/// Records are postcard-encoded, which is not self-describing: a field
/// added at the end makes an older record end early, so it no longer
/// decodes as the current struct. Each older layout is kept here verbatim
/// and converted, so a store written by an older Tern keeps working.
pub(crate) mod v1 {
    use bytes::Bytes;
    use serde::Deserialize;

    use super::{Attempt, Outcome, State};
    use crate::id::{IdFormat, TernId};

    /// The first layout: no parts, no receipt history.
    #[derive(Debug, Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub(crate) struct MessageRecord {
        pub(crate) id: TernId,
        pub(crate) client: String,
        pub(crate) pdu: Bytes,
        pub(crate) receipt_requested: bool,
        pub(crate) state: State,
        pub(crate) attempts: Vec<Attempt>,
        pub(crate) outcome: Option<Outcome>,
        pub(crate) accepted_ms: u64,
        pub(crate) updated_ms: u64,
        pub(crate) not_before_ms: u64,
        pub(crate) expires_ms: Option<u64>,
        pub(crate) dedup_key: Option<Bytes>,
    }

    impl From<MessageRecord> for super::MessageRecord {
        fn from(old: MessageRecord) -> Self {
            Self {
                id: old.id,
                client: old.client,
                pdu: old.pdu,
                receipt_requested: old.receipt_requested,
                state: old.state,
                attempts: old.attempts,
                outcome: old.outcome,
                accepted_ms: old.accepted_ms,
                updated_ms: old.updated_ms,
                not_before_ms: old.not_before_ms,
                expires_ms: old.expires_ms,
                dedup_key: old.dedup_key,
                parts: Vec::new(),
                received: Vec::new(),
                relayed: Vec::new(),
                multi: None,
                id_format: IdFormat::Hex,
            }
        }
    }
}

/// The second layout: parts and receipt history, no submit_multi link.
pub(crate) mod v2 {
    use bytes::Bytes;
    use serde::Deserialize;

    use super::{Attempt, Outcome, PartState, ReceivedReceipt, RelayedReceipt, State};
    use crate::id::{IdFormat, TernId};

    /// [`super::MessageRecord`] before [`super::MessageRecord::multi`].
    #[derive(Debug, Deserialize)]
    #[cfg_attr(test, derive(serde::Serialize))]
    pub(crate) struct MessageRecord {
        pub(crate) id: TernId,
        pub(crate) client: String,
        pub(crate) pdu: Bytes,
        pub(crate) receipt_requested: bool,
        pub(crate) state: State,
        pub(crate) attempts: Vec<Attempt>,
        pub(crate) outcome: Option<Outcome>,
        pub(crate) accepted_ms: u64,
        pub(crate) updated_ms: u64,
        pub(crate) not_before_ms: u64,
        pub(crate) expires_ms: Option<u64>,
        pub(crate) dedup_key: Option<Bytes>,
        pub(crate) parts: Vec<PartState>,
        pub(crate) received: Vec<ReceivedReceipt>,
        pub(crate) relayed: Vec<RelayedReceipt>,
    }

    impl From<MessageRecord> for super::MessageRecord {
        fn from(old: MessageRecord) -> Self {
            Self {
                id: old.id,
                client: old.client,
                pdu: old.pdu,
                receipt_requested: old.receipt_requested,
                state: old.state,
                attempts: old.attempts,
                outcome: old.outcome,
                accepted_ms: old.accepted_ms,
                updated_ms: old.updated_ms,
                not_before_ms: old.not_before_ms,
                expires_ms: old.expires_ms,
                dedup_key: old.dedup_key,
                parts: old.parts,
                received: old.received,
                relayed: old.relayed,
                multi: None,
                id_format: IdFormat::Hex,
            }
        }
    }
}

impl MessageRecord {
    /// Reads a stored record, whichever layout wrote it: the current one,
    /// else the second ([`v2`]), else the first ([`v1`]); an older layout
    /// must account for every octet (a current record damaged at its end
    /// is an error, not an old record).
    pub fn from_stored(bytes: &[u8]) -> Result<MessageRecord, StoreError> {
        match postcard::from_bytes::<MessageRecord>(bytes) {
            Ok(record) => Ok(record),
            Err(current) => {
                if let Ok((old, [])) = postcard::take_from_bytes::<v2::MessageRecord>(bytes) {
                    return Ok(old.into());
                }
                match postcard::take_from_bytes::<v1::MessageRecord>(bytes) {
                    Ok((old, [])) => Ok(old.into()),
                    _ => Err(StoreError::Decode {
                        what: "message record",
                        reason: current.to_string(),
                    }),
                }
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn old_record() -> v1::MessageRecord {
        v1::MessageRecord {
            id: TernId::from_u64(0x0001_0000_0000_002A),
            client: "acme".to_owned(),
            pdu: Bytes::from_static(b"\x00\x01"),
            receipt_requested: true,
            state: State::Final,
            attempts: vec![Attempt {
                upstream: "ovh".to_owned(),
                at_ms: 5,
                status: Some(0),
                upstream_ids: vec!["a1".to_owned(), "a2".to_owned()],
                failure: None,
            }],
            outcome: Some(Outcome {
                stat: "DELIVRD".to_owned(),
                err: 0,
                vendor_code: None,
            }),
            accepted_ms: 1,
            updated_ms: 9,
            not_before_ms: 1,
            expires_ms: Some(100),
            dedup_key: None,
        }
    }

    #[test]
    fn a_record_of_the_first_layout_reads_with_an_empty_history() {
        let bytes = postcard::to_stdvec(&old_record()).expect("encodes");
        // The current layout alone cannot read it: that is why v1 is kept.
        assert!(postcard::from_bytes::<MessageRecord>(&bytes).is_err());
        let record = MessageRecord::from_stored(&bytes).expect("an old record reads");
        assert_eq!(record.client, "acme");
        assert_eq!(record.state, State::Final);
        assert_eq!(record.attempts[0].upstream_ids, ["a1", "a2"]);
        assert_eq!(record.expires_ms, Some(100));
        assert!(record.parts.is_empty() && record.received.is_empty() && record.relayed.is_empty());
    }

    #[test]
    fn the_current_layout_round_trips_with_its_history() {
        let mut record: MessageRecord = old_record().into();
        record.parts.push(PartState {
            upstream: "ovh".to_owned(),
            upstream_id: "a1".to_owned(),
            awaited: true,
            outcome: record.outcome.clone(),
            is_final: true,
            updated_ms: 7,
        });
        record.received.push(ReceivedReceipt {
            upstream: "ovh".to_owned(),
            upstream_id: "A1".to_owned(),
            part: Some(0),
            vendor_stat: Some("DELIVRD".to_owned()),
            vendor_err: Some("000".to_owned()),
            network_error: Some((3, 0)),
            canonical: Outcome {
                stat: "DELIVRD".to_owned(),
                err: 0,
                vendor_code: Some("ovh stat:DELIVRD err:000".to_owned()),
            },
            is_final: true,
            received_ms: 7,
            vendor_tlvs: vec![(0x1401, b"214".to_vec())],
        });
        record.relayed.push(RelayedReceipt {
            outbox_seq: 12,
            part: None,
            stat: "DELIVRD".to_owned(),
            err: 0,
            queued_ms: 8,
            acked_ms: None,
        });
        let bytes = postcard::to_stdvec(&record).expect("encodes");
        assert_eq!(MessageRecord::from_stored(&bytes).expect("reads"), record);
    }

    #[test]
    fn a_record_of_the_second_layout_reads_as_no_submit_multi() {
        let old: MessageRecord = old_record().into();
        let v2 = v2::MessageRecord {
            id: old.id,
            client: old.client.clone(),
            pdu: old.pdu.clone(),
            receipt_requested: old.receipt_requested,
            state: old.state,
            attempts: old.attempts.clone(),
            outcome: old.outcome.clone(),
            accepted_ms: old.accepted_ms,
            updated_ms: old.updated_ms,
            not_before_ms: old.not_before_ms,
            expires_ms: old.expires_ms,
            dedup_key: None,
            parts: Vec::new(),
            received: Vec::new(),
            relayed: vec![RelayedReceipt {
                outbox_seq: 3,
                part: None,
                stat: "DELIVRD".to_owned(),
                err: 0,
                queued_ms: 8,
                acked_ms: None,
            }],
        };
        let bytes = postcard::to_stdvec(&v2).expect("encodes");
        assert!(postcard::from_bytes::<MessageRecord>(&bytes).is_err());
        let record = MessageRecord::from_stored(&bytes).expect("a v2 record reads");
        assert_eq!(record.relayed.len(), 1);
        assert_eq!(record.multi, None);
        assert_eq!(record.client_id(), record.id);
    }

    /// A DELIVRD receipt relayed to the client at outbox place `seq`.
    fn delivered(seq: u64, queued_ms: u64, acked_ms: Option<u64>) -> RelayedReceipt {
        RelayedReceipt {
            outbox_seq: seq,
            part: None,
            stat: "DELIVRD".to_owned(),
            err: 0,
            queued_ms,
            acked_ms,
        }
    }

    /// A decided receipt is refused when its record changed since it was
    /// read (`Store::record_decided_receipt`); only when the client took a
    /// relayed receipt, kept beside the record, does not count.
    #[test]
    fn a_record_is_unchanged_since_a_read_but_for_its_acknowledgement_times() {
        let mut read: MessageRecord = old_record().into();
        read.relayed.push(delivered(3, 9, None));
        let mut now = read.clone();
        assert!(now.unchanged_since(&read));
        now.relayed[0].acked_ms = Some(12);
        assert!(now.unchanged_since(&read), "taken by the client since");
        let changes: [fn(&mut MessageRecord); 6] = [
            |r| r.state = State::Submitted,
            |r| r.updated_ms += 1,
            |r| r.relayed[0].outbox_seq = 4,
            |r| r.attempts[0].upstream_ids.push("a3".to_owned()),
            |r| r.outcome = None,
            |r| {
                r.parts.push(PartState {
                    upstream: "ovh".to_owned(),
                    upstream_id: "a1".to_owned(),
                    awaited: true,
                    outcome: None,
                    is_final: false,
                    updated_ms: 10,
                })
            },
        ];
        for (n, change) in changes.iter().enumerate() {
            let mut now = read.clone();
            change(&mut now);
            assert!(!now.unchanged_since(&read), "change {n} not seen");
        }
    }

    #[test]
    fn a_destination_of_a_submit_multi_names_its_submission() {
        let mut lead: MessageRecord = old_record().into();
        let other_id = TernId::from_u64(lead.id.as_u64() + 1);
        lead.multi = Some(MultiLink {
            submission: lead.id,
            members: vec![lead.id, other_id],
        });
        let bytes = postcard::to_stdvec(&lead).expect("encodes");
        let lead = MessageRecord::from_stored(&bytes).expect("reads");
        assert_eq!(lead.submission_members(), Some(&[lead.id, other_id][..]));
        let mut other = lead.clone();
        other.id = other_id;
        other.multi = Some(MultiLink {
            submission: lead.id,
            members: Vec::new(),
        });
        assert_eq!(other.client_id(), lead.id);
        assert_eq!(other.submission_members(), None);
    }

    #[test]
    fn a_damaged_current_record_is_an_error_not_an_old_one() {
        let mut record: MessageRecord = old_record().into();
        record.relayed.push(delivered(1, 1, Some(2)));
        let bytes = postcard::to_stdvec(&record).expect("encodes");
        // Cut inside the history: the first layout would read the head and
        // leave octets over, so it is refused too.
        assert!(MessageRecord::from_stored(&bytes[..bytes.len() - 3]).is_err());
    }
}
