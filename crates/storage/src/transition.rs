//! The rules of each change to a message's record, written once.
//!
//! Each step of a message's life (accepted, attempt recorded, ended,
//! cancelled or replaced while waiting, receipt stored) is a pure function
//! from the record as it is, the event and the time to a [`Change`]: the
//! record as it becomes and the index edits that go with it (queues, the
//! upstream-id index, the client's outbox). A backend only persists and
//! indexes a `Change`: sled puts it into one write group of its log, Redis
//! into one fenced script call (applied only if the record is still the
//! one the change was computed from). So the two backends cannot drift
//! apart on what a step means, and each rule can be tested without a
//! store (see the tests below).

use crate::record::{
    Attempt, MessageRecord, OutboxItem, Outcome, ReceiptUpdate, ReceivedReceipt, State,
};
use crate::sled_store::Replacement;
use crate::upstream_id::normalise;

/// Receipts kept per message as received (a message has a handful: one per
/// part, and intermediate states). Past it, the latest replaces the one
/// before it, so the first ones and the last one stay: an upstream
/// resending a receipt for ever does not grow the record for ever.
pub(crate) const RECEIVED_LIMIT: usize = 64;

/// One edit of an index that goes with a record's change. Times are the
/// entry's score (ms since the Unix epoch); each backend maps an edit to
/// its own keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Edit {
    /// Into the ready queue, due at this time.
    ReadyAdd(u64),
    /// Out of the ready queue (its entry was due at this time).
    ReadyRemove(u64),
    /// Out of the in-flight set (claimed messages, requeued at recovery).
    InFlightRemove,
    /// Into the expiry queue, at the end of its validity.
    ExpiryAdd(u64),
    /// Out of the expiry queue (its entry was at this time).
    ExpiryRemove(u64),
    /// Into the retention queue at this time, purged a retention later:
    /// when it ended, or when an upstream accepted it (a message no
    /// receipt ends, one sent without asking for one, is kept a retention
    /// from then, not for ever).
    RetentionAdd(u64),
    /// Out of the retention queue (its entry was at this time).
    RetentionRemove(u64),
    /// The upstream id (normalised form) now finds this message.
    UpstreamId {
        /// The upstream's name.
        upstream: String,
        /// The id, in the form [`normalise`] gives.
        form: String,
    },
    /// An item into the message's client's outbox, at this place.
    Outbox {
        /// Its place in the outbox.
        seq: u64,
        /// What the client is owed.
        item: OutboxItem,
    },
}

/// What one step does: the record as it becomes, and the index edits that
/// must land with it, in one atomic write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Change {
    /// The new record.
    pub(crate) record: MessageRecord,
    /// The index edits, in order.
    pub(crate) edits: Vec<Edit>,
}

/// Why a step does not apply to the record as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TransitionError {
    /// Cancel and replace apply to a message still waiting to be sent.
    #[error("the message is no longer waiting to be sent ({0:?})")]
    NotQueued(State),
    /// The message has ended already: nothing more to end.
    #[error("the message has ended already")]
    Final,
}

impl Change {
    fn of(record: MessageRecord) -> Self {
        Self {
            record,
            edits: Vec::with_capacity(4),
        }
    }

    /// Ends the message: final with `outcome`, out of every queue, into
    /// retention.
    fn end(&mut self, outcome: Outcome, now_ms: u64) {
        let sent = self.record.state == State::Submitted;
        self.leave_retention();
        let record = &mut self.record;
        self.edits.push(Edit::InFlightRemove);
        self.edits.push(Edit::ReadyRemove(record.not_before_ms));
        match record.expires_ms {
            // A message accepted upstream left the expiry queue then.
            Some(expires) if !sent => self.edits.push(Edit::ExpiryRemove(expires)),
            _ => {}
        }
        self.edits.push(Edit::RetentionAdd(now_ms));
        record.state = State::Final;
        record.outcome = Some(outcome);
        record.updated_ms = now_ms;
    }

    /// Back into the ready queue, not before `at_ms`; a message that was
    /// accepted upstream (sent again after a failed receipt) waits again,
    /// so it is back in the expiry queue too.
    fn requeue(&mut self, at_ms: u64) {
        let sent = self.record.state == State::Submitted;
        self.leave_retention();
        let record = &mut self.record;
        self.edits.push(Edit::InFlightRemove);
        self.edits.push(Edit::ReadyRemove(record.not_before_ms));
        self.edits.push(Edit::ReadyAdd(at_ms));
        match record.expires_ms {
            Some(expires) if sent => self.edits.push(Edit::ExpiryAdd(expires)),
            _ => {}
        }
        record.state = State::Queued;
        record.not_before_ms = at_ms;
    }

    /// A message accepted upstream is in the retention queue from the
    /// attempt that sent it (see [`attempt`]); ending it or sending it
    /// again takes that entry out.
    fn leave_retention(&mut self) {
        if self.record.state != State::Submitted {
            return;
        }
        let accepted = self
            .record
            .attempts
            .iter()
            .rev()
            .find(|a| a.failure.is_none() && !a.upstream_ids.is_empty());
        if let Some(sent) = accepted {
            self.edits.push(Edit::RetentionRemove(sent.at_ms));
        }
    }
}

/// Whether a message whose retention entry came due may leave the store:
/// one that ended, or one accepted upstream and never ended since (its
/// receipt was not asked for, or never came). A message waiting or being
/// sent again is never removed: only the stale entry goes.
pub(crate) fn purgeable(record: &MessageRecord) -> bool {
    matches!(record.state, State::Final | State::Submitted)
}

/// A message just accepted: into the ready queue at its time, and into the
/// expiry queue if its validity ends.
pub(crate) fn accept(record: MessageRecord) -> Change {
    let mut change = Change::of(record);
    change
        .edits
        .push(Edit::ReadyAdd(change.record.not_before_ms));
    if let Some(expires) = change.record.expires_ms {
        change.edits.push(Edit::ExpiryAdd(expires));
    }
    change
}

/// An attempt recorded. When the upstream accepted it (ids given, no
/// failure), the message is submitted; otherwise it goes back to the ready
/// queue at `retry_at_ms`, or stays in flight for the caller to finish it.
/// Every upstream id given is indexed either way (the ids of an attempt
/// given up still find the parts it had accepted).
pub(crate) fn attempt(
    record: MessageRecord,
    attempt: Attempt,
    retry_at_ms: Option<u64>,
    now_ms: u64,
) -> Change {
    let mut change = Change::of(record);
    for upstream_id in &attempt.upstream_ids {
        change.edits.push(Edit::UpstreamId {
            upstream: attempt.upstream.clone(),
            form: normalise(upstream_id),
        });
    }
    let accepted = attempt.failure.is_none() && !attempt.upstream_ids.is_empty();
    if accepted {
        change.edits.push(Edit::InFlightRemove);
        change.edits.push(Edit::RetentionAdd(attempt.at_ms));
        // No longer waiting: its validity is the upstream's to keep now.
        // Left in the expiry queue, it was found by every look for waiting
        // messages to end as expired, and a thousand of them hid the
        // waiting ones behind them.
        if let Some(expires) = change.record.expires_ms {
            change.edits.push(Edit::ExpiryRemove(expires));
        }
        change.record.state = State::Submitted;
    } else if let Some(at) = retry_at_ms {
        change.edits.push(Edit::InFlightRemove);
        change.record.state = State::Queued;
        change.record.not_before_ms = at;
        change.edits.push(Edit::ReadyAdd(at));
    }
    change.record.attempts.push(attempt);
    change.record.updated_ms = now_ms;
    change
}

/// Ends a message with `outcome`: final, out of every queue, into
/// retention. A message final already keeps its outcome
/// ([`TransitionError::Final`], which callers take as done).
pub(crate) fn finish(
    record: MessageRecord,
    outcome: Outcome,
    now_ms: u64,
) -> Result<Change, TransitionError> {
    if record.state == State::Final {
        return Err(TransitionError::Final);
    }
    let mut change = Change::of(record);
    change.end(outcome, now_ms);
    Ok(change)
}

/// Ends a message still waiting to be sent (cancel_sm), as [`finish`]
/// does; a message being sent, sent or ended is left alone.
pub(crate) fn cancel(
    record: MessageRecord,
    outcome: Outcome,
    now_ms: u64,
) -> Result<Change, TransitionError> {
    if record.state != State::Queued {
        return Err(TransitionError::NotQueued(record.state));
    }
    let mut change = Change::of(record);
    change.end(outcome, now_ms);
    Ok(change)
}

/// Changes a message still waiting to be sent (replace_sm): its PDU and
/// times; its queue entries move to the new times.
pub(crate) fn replace(
    record: MessageRecord,
    new: Replacement,
    now_ms: u64,
) -> Result<Change, TransitionError> {
    if record.state != State::Queued {
        return Err(TransitionError::NotQueued(record.state));
    }
    let mut change = Change::of(record);
    let record = &mut change.record;
    change.edits.push(Edit::ReadyRemove(record.not_before_ms));
    change.edits.push(Edit::ReadyAdd(new.not_before_ms));
    if let Some(expires) = record.expires_ms {
        change.edits.push(Edit::ExpiryRemove(expires));
    }
    if let Some(expires) = new.expires_ms {
        change.edits.push(Edit::ExpiryAdd(expires));
    }
    record.pdu = new.pdu;
    record.receipt_requested = new.receipt_requested;
    record.not_before_ms = new.not_before_ms;
    record.expires_ms = new.expires_ms;
    record.updated_ms = now_ms;
    Ok(change)
}

/// What a receipt changes: the upstream receipt into the history, the
/// parts' states, the message's end (a message final already keeps its
/// outcome), a resubmission (back into the ready queue, unless final) and
/// the receipt owed to the client, into its outbox at `seq` (the backend's
/// next place; needed exactly when the update relays).
pub(crate) fn receipt(
    record: MessageRecord,
    update: ReceiptUpdate,
    seq: Option<u64>,
    now_ms: u64,
) -> Change {
    let mut change = Change::of(record);
    if let Some(received) = update.received {
        keep_received(&mut change.record.received, received);
    }
    if let Some(parts) = update.parts {
        change.record.parts = parts;
    }
    if let Some(outcome) = update.outcome {
        if change.record.state != State::Final {
            change.end(outcome, now_ms);
        }
    }
    if let Some(at) = update.requeue_at_ms {
        if change.record.state != State::Final {
            change.requeue(at);
        }
    }
    if let (Some((item, mut entry)), Some(seq)) = (update.relay, seq) {
        entry.outbox_seq = seq;
        entry.acked_ms = None;
        change.record.relayed.push(entry);
        change.edits.push(Edit::Outbox { seq, item });
    }
    change.record.updated_ms = now_ms;
    change
}

/// Appends a receipt to the history, within [`RECEIVED_LIMIT`].
fn keep_received(history: &mut Vec<ReceivedReceipt>, received: ReceivedReceipt) {
    if history.len() >= RECEIVED_LIMIT {
        history.pop();
    }
    history.push(received);
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::id::{IdFormat, TernId};
    use crate::record::RelayedReceipt;

    fn queued() -> MessageRecord {
        MessageRecord {
            id: TernId::from_u64(7),
            client: "acme".to_owned(),
            pdu: Bytes::from_static(b"pdu"),
            receipt_requested: true,
            state: State::Queued,
            attempts: Vec::new(),
            outcome: None,
            accepted_ms: 1,
            updated_ms: 1,
            not_before_ms: 10,
            expires_ms: Some(100),
            dedup_key: None,
            parts: Vec::new(),
            received: Vec::new(),
            relayed: Vec::new(),
            multi: None,
            id_format: IdFormat::Hex,
        }
    }

    fn in_flight() -> MessageRecord {
        MessageRecord {
            state: State::InFlight,
            ..queued()
        }
    }

    fn delivered() -> Outcome {
        Outcome {
            stat: "DELIVRD".to_owned(),
            err: 0,
            vendor_code: None,
        }
    }

    fn sent(ids: &[&str], failure: Option<&str>) -> Attempt {
        Attempt {
            upstream: "up".to_owned(),
            at_ms: 20,
            status: Some(0),
            upstream_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
            failure: failure.map(str::to_owned),
        }
    }

    #[test]
    fn an_accepted_attempt_submits_and_indexes_each_id_normalised() {
        let change = attempt(in_flight(), sent(&["00Ab", "c1"], None), Some(50), 20);
        assert_eq!(change.record.state, State::Submitted);
        assert_eq!(change.record.not_before_ms, 10, "no retry when accepted");
        assert_eq!(change.record.attempts.len(), 1);
        assert_eq!(change.record.updated_ms, 20);
        assert_eq!(
            change.edits,
            vec![
                Edit::UpstreamId {
                    upstream: "up".to_owned(),
                    form: normalise("00Ab"),
                },
                Edit::UpstreamId {
                    upstream: "up".to_owned(),
                    form: normalise("c1"),
                },
                Edit::InFlightRemove,
                Edit::RetentionAdd(20),
                Edit::ExpiryRemove(100),
            ]
        );
    }

    #[test]
    fn a_refused_attempt_retries_at_its_time_or_stays_in_flight() {
        let change = attempt(in_flight(), sent(&[], Some("refused")), Some(50), 20);
        assert_eq!(change.record.state, State::Queued);
        assert_eq!(change.record.not_before_ms, 50);
        assert_eq!(change.edits, vec![Edit::InFlightRemove, Edit::ReadyAdd(50)]);
        let change = attempt(in_flight(), sent(&[], Some("refused")), None, 20);
        assert_eq!(change.record.state, State::InFlight);
        assert!(change.edits.is_empty());
    }

    #[test]
    fn finishing_leaves_every_queue_once_and_never_twice() {
        let change = finish(in_flight(), delivered(), 30).expect("ends");
        assert_eq!(change.record.state, State::Final);
        assert_eq!(change.record.outcome, Some(delivered()));
        assert_eq!(
            change.edits,
            vec![
                Edit::InFlightRemove,
                Edit::ReadyRemove(10),
                Edit::ExpiryRemove(100),
                Edit::RetentionAdd(30),
            ]
        );
        assert_eq!(
            finish(change.record, delivered(), 31),
            Err(TransitionError::Final)
        );
    }

    #[test]
    fn cancel_and_replace_apply_only_to_a_waiting_message() {
        assert_eq!(
            cancel(in_flight(), delivered(), 30),
            Err(TransitionError::NotQueued(State::InFlight))
        );
        let change = cancel(queued(), delivered(), 30).expect("cancels");
        assert_eq!(change.record.state, State::Final);
        let new = Replacement {
            pdu: Bytes::from_static(b"new"),
            receipt_requested: false,
            not_before_ms: 40,
            expires_ms: None,
        };
        assert_eq!(
            replace(in_flight(), new.clone(), 30),
            Err(TransitionError::NotQueued(State::InFlight))
        );
        let change = replace(queued(), new, 30).expect("replaces");
        assert_eq!(change.record.pdu, Bytes::from_static(b"new"));
        assert_eq!(change.record.expires_ms, None);
        assert_eq!(
            change.edits,
            vec![
                Edit::ReadyRemove(10),
                Edit::ReadyAdd(40),
                Edit::ExpiryRemove(100),
            ]
        );
    }

    #[test]
    fn a_final_receipt_ends_the_message_and_queues_the_clients_receipt() {
        let record = attempt(in_flight(), sent(&["a"], None), None, 20).record;
        let item = OutboxItem {
            pdu: Bytes::from_static(b"deliver_sm"),
            message: Some(record.id),
            stored_ms: 30,
        };
        let entry = RelayedReceipt {
            outbox_seq: 0,
            part: None,
            stat: "DELIVRD".to_owned(),
            err: 0,
            queued_ms: 30,
            acked_ms: Some(1),
        };
        let update = ReceiptUpdate {
            outcome: Some(delivered()),
            relay: Some((item.clone(), entry)),
            ..ReceiptUpdate::default()
        };
        let change = receipt(record, update, Some(9), 30);
        assert_eq!(change.record.state, State::Final);
        assert_eq!(change.record.relayed[0].outbox_seq, 9);
        assert_eq!(change.record.relayed[0].acked_ms, None);
        assert_eq!(change.edits.last(), Some(&Edit::Outbox { seq: 9, item }));
        // A resubmission after the end does nothing to the queues.
        let update = ReceiptUpdate {
            requeue_at_ms: Some(60),
            ..ReceiptUpdate::default()
        };
        let again = receipt(change.record, update, None, 40);
        assert_eq!(again.record.state, State::Final);
        assert!(again.edits.is_empty());
    }

    #[test]
    fn a_resubmitting_receipt_requeues_a_message_not_yet_final() {
        let record = attempt(in_flight(), sent(&["a"], None), None, 20).record;
        let update = ReceiptUpdate {
            requeue_at_ms: Some(60),
            ..ReceiptUpdate::default()
        };
        let change = receipt(record, update, None, 40);
        assert_eq!(change.record.state, State::Queued);
        assert_eq!(change.record.not_before_ms, 60);
        assert_eq!(
            change.edits,
            vec![
                Edit::RetentionRemove(20),
                Edit::InFlightRemove,
                Edit::ReadyRemove(10),
                Edit::ReadyAdd(60),
                Edit::ExpiryAdd(100),
            ],
            "sent again, it is no longer kept from its first send, and waits \
             within its validity again"
        );
    }

    #[test]
    fn a_message_accepted_upstream_is_kept_from_its_send_until_it_ends() {
        let submitted = attempt(in_flight(), sent(&["a"], None), None, 25).record;
        let change = finish(submitted, delivered(), 30).expect("ends");
        assert_eq!(
            change.edits.first(),
            Some(&Edit::RetentionRemove(20)),
            "the entry its send made (at the attempt's time) goes"
        );
        assert_eq!(change.edits.last(), Some(&Edit::RetentionAdd(30)));
        assert!(
            !change.edits.contains(&Edit::ExpiryRemove(100)),
            "it left the expiry queue when it was sent: {:?}",
            change.edits
        );
    }

    #[test]
    fn only_a_message_ended_or_left_with_its_upstream_may_be_purged() {
        let submitted = attempt(in_flight(), sent(&["a"], None), None, 20).record;
        let ended = finish(in_flight(), delivered(), 30).expect("ends").record;
        assert!(
            purgeable(&submitted),
            "no receipt ends it: kept a retention"
        );
        assert!(purgeable(&ended));
        assert!(!purgeable(&queued()), "waiting to be sent");
        assert!(!purgeable(&in_flight()), "being sent");
    }
}
