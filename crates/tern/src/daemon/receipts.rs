//! Requests from upstreams: receipts are matched to their message, stored
//! with the canonical outcome and queued for the client, and only then
//! acknowledged; a receipt for a message not known yet is held.
//!
//! Every receipt is kept in the message's history. A message Tern split
//! into parts upstream ends only when every part it waits for is final
//! (all parts, or the one a vendor that splits payloads itself reports),
//! and its client gets one receipt for its one id, unless its account asks
//! for one per part.
//!
//! A final failed receipt that the message's route resubmits on (see
//! `Router::resubmits`) does not end it: the message goes back to the queue
//! and the dispatcher sends it through the next upstream of its route,
//! leaving out those that already took it. The client hears only the final
//! outcome, under Tern's id; receipts about the attempt left behind stay in
//! the history.

use std::sync::Arc;

use bytes::Bytes;
use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandStatus, Pdu, Tlv};
use tern_router::canonical::Canonical;
use tern_router::engine::{may_resubmit, Router};
use tern_router::receipt::{read_receipt, ReceiptReadError, UpstreamReceipt};
use tern_router::relay::combined;
use tern_router::upstream::UpstreamRequest;
use tern_router::Scope;
use tern_storage::upstream_id::{candidates, normalise};
use tern_storage::{
    now_ms, MessageRecord, OutboxItem, Outcome, PartState, ReceiptUpdate, ReceivedReceipt, State,
    StoreError, TernId, UnmatchedReceipt,
};
use tokio::sync::mpsc;
use tracing::debug;

use super::node::Node;
use super::relay::{canonical_of, client_relay, client_submit, stored_outcome, PartOf};

/// Handles upstream requests until the channel closes.
pub async fn run(node: Arc<Node>, mut inbound: mpsc::Receiver<UpstreamRequest>) {
    while let Some(UpstreamRequest { upstream, request }) = inbound.recv().await {
        let node = node.clone();
        tokio::spawn(async move {
            let status = match handle(&node, &upstream, &request.pdu).await {
                Ok(status) => status,
                Err(err) => {
                    tern_session::warn_limited!("storing a receipt failed; the upstream will send it again", %err);
                    CommandStatus::ReceiverTemporaryError
                }
            };
            super::crash::point("receipts.after_store");
            let body = Body::DeliverSmResp(SmResp::with_id(Default::default()));
            let _ = request.responder.respond(status, body).await;
            super::crash::point("receipts.after_resp");
        });
    }
}

/// Returns the status to answer the upstream with.
async fn handle(node: &Node, upstream: &str, pdu: &Pdu) -> Result<CommandStatus, StoreError> {
    let Body::DeliverSm(sm) = &pdu.body else {
        return Ok(CommandStatus::InvalidCommandId);
    };
    let routing = node.routing();
    let profile = routing.profile(upstream);
    let read = read_receipt(profile, sm);
    // A receipt saying the vendor throttled the message (OVH err 55)
    // slows the upstream like a throttled submit.
    if let Ok(receipt) = &read {
        if receipt.canonical.reason == tern_router::canonical::Reason::Throttled {
            let upstreams = routing.router.upstreams();
            if let Some(up) = upstreams.iter().find(|u| u.name() == upstream) {
                up.receipt_throttled();
            }
        }
    }
    match read {
        Ok(receipt) => match node.lookup(upstream, &receipt.upstream_id)? {
            Some(id) if apply(node, id, upstream, &receipt).await? == Applied::Done => {
                node.metrics
                    .receipt(upstream, receipt.canonical.state.stat());
                Ok(CommandStatus::Ok)
            }
            // No message has the id yet, or the message's record does not
            // have the attempt that gave it (the id index is written before
            // the record on a shared store).
            _ => {
                debug!(
                    upstream,
                    id = receipt.upstream_id,
                    "receipt before its submit_sm_resp: held"
                );
                let held = UnmatchedReceipt {
                    upstream: upstream.to_owned(),
                    upstream_id: receipt.upstream_id.clone(),
                    pdu: pdu.to_bytes(),
                    received_ms: now_ms(),
                };
                node.store.hold_unmatched(&held).await?;
                super::crash::point("receipts.after_hold");
                node.metrics.receipt_unmatched(upstream);
                // The dispatcher may have recorded the submit_sm_resp between
                // the lookup above and the hold: it looks for held receipts
                // after recording, this side looks again after holding, so
                // one of the two sees the other. Taking a held receipt is
                // atomic, so only one of them applies it.
                settle_held(node, upstream, &receipt.upstream_id).await?;
                Ok(CommandStatus::Ok)
            }
        },
        // Not a receipt: an MO, routed to a client by the MO rules.
        Err(ReceiptReadError::NotAReceipt(_)) => super::mo::receive(node, upstream, pdu, sm).await,
        Err(err) => {
            tern_session::warn_limited!("unreadable receipt acknowledged and dropped", upstream, %err);
            Ok(CommandStatus::Ok)
        }
    }
}

/// Whether a receipt was applied to its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// Recorded (and relayed, if the client is owed it), or the message is
    /// gone.
    Done,
    /// The message is being sent and its record does not yet have the
    /// attempt this receipt is about: nothing was written. The caller holds
    /// the receipt; the dispatcher applies it once the attempt is recorded
    /// (or the maintenance sweep does, within a second).
    NotYet,
}

/// Records a receipt against its message and decides what the client is
/// owed, in one store write (see [`decide`]). Receipts for the same part
/// still held from before the submit_sm_resp was recorded go first: they
/// came first (an ENROUTE held, then its DELIVRD matching once the
/// dispatcher recorded the submit but before it settled the held one),
/// and applied after a final one they would be history only, never
/// relayed.
async fn apply(
    node: &Node,
    id: TernId,
    upstream: &str,
    receipt: &UpstreamReceipt,
) -> Result<Applied, StoreError> {
    let _held = node.lock_message(id).await;
    super::crash::point("receipts.after_match");
    settle_held_locked(node, id, upstream, &receipt.upstream_id).await?;
    apply_locked(node, id, upstream, receipt).await
}

/// [`apply`] for a caller that holds the message's lock.
async fn apply_locked(
    node: &Node,
    id: TernId,
    upstream: &str,
    receipt: &UpstreamReceipt,
) -> Result<Applied, StoreError> {
    let Some(record) = node.store.get(id)? else {
        return Ok(Applied::Done);
    };
    let routing = node.routing();
    let any_base = routing.profile(upstream).message_id.receipt_id_any_base;
    if matches!(record.state, State::InFlight | State::Queued)
        && !knows(&record, upstream, &receipt.upstream_id, any_base)
    {
        return Ok(Applied::NotYet);
    }
    let (per_part, vendor_tlvs) = node
        .accounts
        .current()
        .iter()
        .find(|a| a.system_id == record.client)
        .map_or((false, false), |a| (a.receipts_per_part, a.vendor_tlvs));
    let parts = parts_of(&record, |name| {
        routing.profile(name).long_messages.receipts_for == tern_router::profile::ReceiptsFor::First
    });
    let now = now_ms();
    let mut update = decide(
        &record,
        parts,
        upstream,
        receipt,
        Receiving {
            per_part,
            any_base,
            now,
        },
    );
    if resubmit_instead(
        &routing.router,
        &record,
        upstream,
        receipt,
        &mut update,
        now,
    ) {
        debug!(%id, upstream, reason = ?receipt.canonical.reason, "failed receipt: sent again through the next upstream");
    }
    if vendor_tlvs {
        if let Some((item, _)) = update.relay.as_mut() {
            with_vendor_tlvs(item, &record, upstream, receipt);
        }
    }
    if record.state == State::Final {
        // Already ended (a repeat, a late part): kept in the history only;
        // the client gets one receipt per message id.
        debug!(%id, upstream, "receipt for a message already final; not relayed again");
    }
    let queued = node.store.record_receipt(id, update, now).await?;
    if queued.is_some() {
        node.outbox_news(&record.client);
    }
    Ok(Applied::Done)
}

/// Whether one of the record's attempts gave `upstream_id` at `upstream`.
fn knows(record: &MessageRecord, upstream: &str, upstream_id: &str, any_base: bool) -> bool {
    let wanted = if any_base {
        candidates(upstream_id)
    } else {
        vec![normalise(upstream_id)]
    };
    record.attempts.iter().any(|a| {
        a.upstream == upstream
            && a.upstream_ids
                .iter()
                .any(|u| wanted.contains(&normalise(u)))
    })
}

/// The upstreams that took the message (accepted a whole attempt), in
/// order, each once: a resubmission leaves them out. An attempt given up
/// midway (some parts accepted, then a refusal) does not count: the
/// message goes again whole, and that upstream may take it then.
pub fn used_upstreams(record: &MessageRecord) -> Vec<String> {
    let mut used: Vec<String> = Vec::new();
    for attempt in record
        .attempts
        .iter()
        .filter(|a| !a.upstream_ids.is_empty() && a.failure.is_none())
    {
        if !used.contains(&attempt.upstream) {
            used.push(attempt.upstream.clone());
        }
    }
    used
}

/// Turns an `update` that would end `record` with a failure into a
/// resubmission when its route says so: no outcome, no client receipt,
/// back into the queue now. The receipt that completed the message says
/// why, and whether its code concerns this vendor only; when the failure
/// came from another part, only its reason is known. Returns whether it
/// did.
fn resubmit_instead(
    router: &Router,
    record: &MessageRecord,
    upstream: &str,
    receipt: &UpstreamReceipt,
    update: &mut ReceiptUpdate,
    now: u64,
) -> bool {
    let Some(whole) = update.outcome.as_ref().and_then(canonical_of) else {
        return false;
    };
    // Nearly every outcome is DELIVRD: it pays no decode of the client's
    // submit, no copy of the receipt and no route lookup.
    if !may_resubmit(&whole) {
        return false;
    }
    let Some(submit) = client_submit(record) else {
        return false;
    };
    let said = if (whole.state, whole.reason) == (receipt.canonical.state, receipt.canonical.reason)
    {
        receipt.clone()
    } else {
        UpstreamReceipt {
            canonical: whole,
            scope: Scope::Message,
            ..receipt.clone()
        }
    };
    if !router.resubmits(
        &record.client,
        &submit,
        upstream,
        &said,
        &used_upstreams(record),
    ) {
        return false;
    }
    update.outcome = None;
    update.relay = None;
    update.requeue_at_ms = Some(now);
    true
}

/// Adds the vendor's own receipt TLVs to a client receipt, for a client
/// that asked for them: those of this receipt, else of the latest receipt
/// from the same upstream that had some (a split message may end on a
/// part whose receipt carries none).
fn with_vendor_tlvs(
    item: &mut OutboxItem,
    record: &MessageRecord,
    upstream: &str,
    receipt: &UpstreamReceipt,
) {
    let tlvs = if receipt.vendor_tlvs.is_empty() {
        record
            .received
            .iter()
            .rev()
            .find(|r| r.upstream == upstream && !r.vendor_tlvs.is_empty())
            .map_or(&[][..], |r| r.vendor_tlvs.as_slice())
    } else {
        receipt.vendor_tlvs.as_slice()
    };
    if tlvs.is_empty() {
        return;
    }
    let Ok(Pdu {
        body: Body::DeliverSm(mut sm),
        ..
    }) = Pdu::decode(item.pdu.clone())
    else {
        return;
    };
    for (tag, value) in tlvs {
        sm.tlvs.push(Tlv::Other {
            tag: *tag,
            value: Bytes::copy_from_slice(value),
        });
    }
    item.pdu = Pdu::new(0, Body::DeliverSm(sm)).to_bytes();
}

/// How the client of a message wants its receipts, and the clock.
#[derive(Debug, Clone, Copy)]
struct Receiving {
    /// The client account asked for one receipt per part of a split message
    /// (`receipts_per_part`), instead of one for the message.
    per_part: bool,
    /// The upstream's receipts may write its ids in another base.
    any_base: bool,
    /// Now, ms since the Unix epoch.
    now: u64,
}

/// The parts of the message's accepted attempt: as the record knows them,
/// or fresh (nothing heard yet) when the record has none or they belong
/// to an earlier attempt. `first_only(upstream)` says the upstream's
/// vendor reports only the first part of what it split itself.
fn parts_of(record: &MessageRecord, first_only: impl Fn(&str) -> bool) -> Vec<PartState> {
    let Some(attempt) = record
        .attempts
        .iter()
        .rev()
        .find(|a| !a.upstream_ids.is_empty() && a.failure.is_none())
    else {
        return Vec::new();
    };
    let known = record.parts.len() == attempt.upstream_ids.len()
        && record
            .parts
            .iter()
            .zip(&attempt.upstream_ids)
            .all(|(p, id)| p.upstream == attempt.upstream && p.upstream_id == *id);
    if known {
        return record.parts.clone();
    }
    let first = first_only(&attempt.upstream);
    attempt
        .upstream_ids
        .iter()
        .enumerate()
        .map(|(i, id)| PartState {
            upstream: attempt.upstream.clone(),
            upstream_id: id.clone(),
            awaited: i == 0 || !first,
            outcome: None,
            is_final: false,
            updated_ms: 0,
        })
        .collect()
}

/// Whether a receipt is for a part placed by an attempt given up after
/// it (a later part refused): the message's fate is its accepted
/// attempt's.
fn abandoned(record: &MessageRecord, upstream: &str, receipt: &UpstreamReceipt) -> bool {
    let id = normalise(&receipt.upstream_id);
    record.attempts.iter().any(|a| {
        a.failure.is_some()
            && a.upstream == upstream
            && a.upstream_ids.iter().any(|u| normalise(u) == id)
    })
}

/// Whether a receipt's id names this part (case, leading zeros and, for
/// vendors whose profile says so, the base aside).
fn names(part: &PartState, upstream: &str, id: &str, any_base: bool) -> bool {
    if part.upstream != upstream {
        return false;
    }
    let own = normalise(&part.upstream_id);
    if any_base {
        candidates(id).contains(&own)
    } else {
        normalise(id) == own
    }
}

/// What one receipt changes. Every receipt goes into the history. Then:
///
/// - a message already final changes no more;
/// - a part already final keeps its end (a repeat, or an intermediate
///   state arriving late);
/// - a message Tern split ends when every awaited part is final, with the
///   worst of them (a failed part fails the message: see
///   [`combined`]), and its client gets one receipt for its one id; or, for
///   a client that asked for per-part receipts, one per part as each part
///   changes, with the SAR TLVs saying which;
/// - intermediate states (ENROUTE, ACCEPTD) go to clients that asked for
///   them, once per state for the message.
fn decide(
    record: &MessageRecord,
    mut parts: Vec<PartState>,
    upstream: &str,
    receipt: &UpstreamReceipt,
    how: Receiving,
) -> ReceiptUpdate {
    let canonical = receipt.canonical;
    let vendor = format!(
        "{upstream} stat:{} err:{}",
        receipt.vendor_stat.as_deref().unwrap_or("-"),
        receipt.vendor_err.as_deref().unwrap_or("-")
    );
    let outcome = stored_outcome(&canonical, Some(vendor.clone()));
    let index = parts
        .iter()
        .position(|p| names(p, upstream, &receipt.upstream_id, how.any_base));
    let mut update = ReceiptUpdate {
        received: Some(history_entry(upstream, receipt, index, &outcome, how.now)),
        ..ReceiptUpdate::default()
    };
    // Ended, or being sent again after a failed receipt (queued, in
    // flight), or a part of an attempt given up (the message went again
    // under a new reference): a receipt about an attempt left behind is
    // kept in the history, it decides nothing.
    if matches!(record.state, State::Final | State::Queued | State::InFlight)
        || (index.is_none() && abandoned(record, upstream, receipt))
    {
        return update;
    }
    let intermediate_once = |update: &mut ReceiptUpdate| {
        let told = record
            .relayed
            .iter()
            .any(|r| r.part.is_none() && r.stat == canonical.state.stat());
        if !told {
            update.relay = client_relay(record, &canonical, Some(&vendor), None);
        }
    };
    let Some(index) = index else {
        let current = record
            .attempts
            .iter()
            .rev()
            .find(|a| !a.upstream_ids.is_empty())
            .map(|a| a.upstream.as_str());
        if current != Some(upstream) {
            // From an upstream the message was resubmitted away from.
            return update;
        }
        // An id of this message that is none of the accepted attempt's
        // parts as recorded: it speaks for the whole message.
        if canonical.state.is_final() {
            update.outcome = Some(outcome);
            update.relay = client_relay(record, &canonical, Some(&vendor), None);
        } else {
            intermediate_once(&mut update);
        }
        return update;
    };
    let part = &mut parts[index];
    if part.is_final {
        return update;
    }
    let changed = part
        .outcome
        .as_ref()
        .is_none_or(|o| o.stat != outcome.stat || o.err != outcome.err);
    part.outcome = Some(outcome);
    part.is_final = canonical.state.is_final();
    part.updated_ms = how.now;
    let (whole, whole_vendor) = whole_outcome(&parts);
    if parts.len() > 1 && how.per_part {
        if changed {
            let of = PartOf {
                index: index as u32,
                total: parts.len() as u32,
            };
            update.relay = client_relay(record, &canonical, Some(&vendor), Some(of));
        }
        if let Some(whole) = whole {
            update.outcome = Some(stored_outcome(&whole, whole_vendor));
        }
    } else if let Some(whole) = whole {
        update.relay = client_relay(record, &whole, whole_vendor.as_deref(), None);
        update.outcome = Some(stored_outcome(&whole, whole_vendor));
    } else if !canonical.state.is_final() {
        intermediate_once(&mut update);
    }
    // Otherwise a final part while others are still open: wait for them.
    update.parts = Some(parts);
    update
}

/// The receipt as it goes into the message's history: every receipt is
/// kept there, whatever it decides, so `tern trace` shows what each
/// upstream said and when.
fn history_entry(
    upstream: &str,
    receipt: &UpstreamReceipt,
    index: Option<usize>,
    outcome: &Outcome,
    now: u64,
) -> ReceivedReceipt {
    ReceivedReceipt {
        upstream: upstream.to_owned(),
        upstream_id: receipt.upstream_id.clone(),
        part: index.map(|i| i as u32),
        vendor_stat: receipt.vendor_stat.clone(),
        vendor_err: receipt.vendor_err.clone(),
        network_error: receipt
            .network_error
            .map(|n| (n.network_type, n.error_code)),
        canonical: outcome.clone(),
        is_final: receipt.canonical.state.is_final(),
        received_ms: now,
        vendor_tlvs: receipt.vendor_tlvs.clone(),
    }
}

/// The outcome of the whole message from its awaited parts, once every one
/// is final (the worst of them, see [`combined`]), with the vendor code of
/// the part that outcome comes from, so the client's receipt carries the
/// vendor's words for the failure it reports.
fn whole_outcome(parts: &[PartState]) -> (Option<Canonical>, Option<String>) {
    let awaited: Vec<&PartState> = parts.iter().filter(|p| p.awaited).collect();
    let whole = combined(
        &awaited
            .iter()
            .map(|p| {
                p.outcome
                    .as_ref()
                    .and_then(canonical_of)
                    .filter(|_| p.is_final)
            })
            .collect::<Vec<_>>(),
    );
    let whole_vendor = whole.and_then(|w| {
        awaited
            .iter()
            .filter_map(|p| p.outcome.as_ref())
            .find(|o| o.stat == w.state.stat() && o.err == w.reason.err())
            .and_then(|o| o.vendor_code.clone())
    });
    (whole, whole_vendor)
}

/// Applies the receipts held for `upstream_id`, if any came early and
/// their message is known now, in the order they came. Under the message's
/// lock, each held receipt is read, applied (one durable write), and only
/// then removed: a second task finds nothing left to apply, and a crash in
/// between leaves the receipt held, to be applied by the next caller or the
/// housekeeping sweep, never lost. Returns whether any was applied.
pub async fn settle_held(
    node: &Node,
    upstream: &str,
    upstream_id: &str,
) -> Result<bool, StoreError> {
    let Some(id) = node.lookup(upstream, upstream_id)? else {
        return Ok(false);
    };
    let _held = node.lock_message(id).await;
    settle_held_locked(node, id, upstream, upstream_id).await
}

/// [`settle_held`] for a caller that holds message `id`'s lock.
async fn settle_held_locked(
    node: &Node,
    id: TernId,
    upstream: &str,
    upstream_id: &str,
) -> Result<bool, StoreError> {
    let any_base = node
        .routing()
        .profile(upstream)
        .message_id
        .receipt_id_any_base;
    let mut applied = false;
    // One at a time, oldest first: a receipt held meanwhile (its handler
    // looked before the submit was recorded) is applied in its turn.
    while let Some(held) = node.store.peek_unmatched(upstream, upstream_id, any_base)? {
        let receipt = Pdu::decode(held.pdu.clone())
            .ok()
            .and_then(|pdu| match pdu.body {
                Body::DeliverSm(sm) => read_receipt(node.routing().profile(upstream), &sm).ok(),
                _ => None,
            });
        if let Some(receipt) = receipt {
            if apply_locked(node, id, upstream, &receipt).await? == Applied::NotYet {
                // Still held, and those behind it: the dispatcher settles
                // them once the attempt is recorded, or the sweep does.
                break;
            }
            node.metrics
                .receipt(upstream, receipt.canonical.state.stat());
            super::crash::point("receipts.after_held_apply");
        }
        if node.take_held(upstream, upstream_id).await?.is_none() {
            // Taken by another node between the peek and here.
            break;
        }
        super::crash::point("receipts.after_held_take");
        applied = true;
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_codec::pdu::SubmitSm;
    use tern_codec::{Address, Npi, RegisteredDelivery, ShortMessage, Ton};
    use tern_router::{Canonical, Class, FinalState, Reason};
    use tern_storage::{Attempt, RelayedReceipt};

    fn record(ids: &[&str], registered_delivery: u8) -> MessageRecord {
        let submit = SubmitSm {
            source: Address::new(
                Ton::ALPHANUMERIC,
                Npi::UNKNOWN,
                "Acme".try_into().expect("short"),
            ),
            destination: Address::new(
                Ton::INTERNATIONAL,
                Npi::ISDN,
                "3360".try_into().expect("short"),
            ),
            registered_delivery: RegisteredDelivery(registered_delivery),
            short_message: ShortMessage::new(b"hello".to_vec()).expect("short"),
            ..SubmitSm::default()
        };
        MessageRecord {
            id: TernId::from_u64(0x42),
            client: "acme".to_owned(),
            pdu: tern_codec::Pdu::new(1, tern_codec::Body::SubmitSm(submit)).to_bytes(),
            receipt_requested: true,
            state: State::Submitted,
            attempts: vec![Attempt {
                upstream: "up".to_owned(),
                at_ms: 1,
                status: Some(0),
                upstream_ids: ids.iter().map(|s| (*s).to_owned()).collect(),
                failure: None,
            }],
            outcome: None,
            accepted_ms: 1,
            updated_ms: 1,
            not_before_ms: 1,
            expires_ms: None,
            dedup_key: None,
            parts: Vec::new(),
            received: Vec::new(),
            relayed: Vec::new(),
            multi: None,
            id_format: tern_storage::IdFormat::Hex,
        }
    }

    fn receipt(id: &str, state: FinalState, reason: Reason) -> UpstreamReceipt {
        UpstreamReceipt {
            upstream_id: id.to_owned(),
            canonical: Canonical {
                state,
                reason,
                class: Class::Permanent,
            },
            vendor_stat: Some(state.stat().to_owned()),
            vendor_err: Some("000".to_owned()),
            network_error: None,
            scope: Scope::Message,
            vendor_tlvs: Vec::new(),
        }
    }

    const HOW: Receiving = Receiving {
        per_part: false,
        any_base: false,
        now: 10,
    };

    /// What the store does with an update (`record_receipt`).
    fn store(record: &mut MessageRecord, update: ReceiptUpdate) {
        record.received.extend(update.received);
        if let Some(parts) = update.parts {
            record.parts = parts;
        }
        if let Some(outcome) = update.outcome {
            if record.state != State::Final {
                record.state = State::Final;
                record.outcome = Some(outcome);
            }
        }
        if let Some((_, entry)) = update.relay {
            record.relayed.push(RelayedReceipt {
                outbox_seq: record.relayed.len() as u64,
                ..entry
            });
        }
    }

    fn step(
        record: &mut MessageRecord,
        receipt: &UpstreamReceipt,
        how: Receiving,
        first_only: bool,
    ) -> ReceiptUpdate {
        let parts = parts_of(record, |_| first_only);
        let update = decide(record, parts, "up", receipt, how);
        store(record, update.clone());
        update
    }

    /// A node over a fresh sled store, with the client `acme` and no
    /// upstreams (receipts read with the generic profile).
    fn test_node(dir: &std::path::Path) -> Arc<Node> {
        let text = "[[listener]]\naddress = \"127.0.0.1:0\"\n\
                    [[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n";
        let config = crate::config::Config::from_text(std::path::Path::new("test.toml"), text)
            .expect("config");
        let routing = super::super::reload::routing_for(&config, Vec::new()).expect("routing");
        let (store, _) = tern_storage::SledStore::open(dir, tern_storage::StoreOptions::default())
            .expect("store");
        Node::new(
            tern_storage::Store::Sled(store),
            routing,
            super::super::auth::Accounts::new(config.clients.clone()),
            Arc::new(crate::admin::Metrics::new()),
            None,
        )
    }

    /// A generic receipt for upstream id `id`, encoded.
    fn receipt_pdu(id: &str, stat: &str) -> Pdu {
        let text = format!(
            "id:{id} sub:001 dlvrd:000 submit date:2601010000 done date:2601010000 stat:{stat} err:000"
        );
        let sm = tern_codec::pdu::DeliverSm {
            esm_class: tern_codec::EsmClass::DELIVERY_RECEIPT,
            short_message: ShortMessage::new(text.into_bytes()).expect("short"),
            ..tern_codec::pdu::DeliverSm::default()
        };
        Pdu::new(7, Body::DeliverSm(sm))
    }

    /// An ENROUTE held before the submit_sm_resp was recorded, then the
    /// final receipt matching once it was, before the dispatcher settled
    /// the held one: the ENROUTE still goes first, so the client that
    /// asked for it gets it (applied after the final one, it would be
    /// history only).
    #[tokio::test]
    async fn a_receipt_still_held_for_its_id_is_applied_before_a_later_one() {
        let dir = std::env::temp_dir().join(format!(
            "tern-held-order-{}-{}",
            std::process::id(),
            now_ms()
        ));
        let node = test_node(&dir);
        let submit = record(&[], 0x11).pdu;
        let accepted = node
            .store
            .accept(
                tern_storage::NewMessage {
                    client: "acme".to_owned(),
                    pdu: submit,
                    receipt_requested: true,
                    not_before_ms: 0,
                    expires_ms: None,
                    dedup: None,
                    id_format: tern_storage::IdFormat::Hex,
                },
                now_ms(),
            )
            .await
            .expect("accept");
        let claimed = node.store.claim_ready(now_ms(), 1).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        // The ENROUTE comes before the submit_sm_resp is recorded: held.
        let enroute = receipt_pdu("4711", "ENROUTE");
        assert_eq!(
            handle(&node, "up", &enroute).await.expect("handled"),
            CommandStatus::Ok
        );
        // The dispatcher records the submit_sm_resp; the DELIVRD matches
        // before it settles what is held.
        node.store
            .record_attempt(
                accepted.id,
                Attempt {
                    upstream: "up".to_owned(),
                    at_ms: now_ms(),
                    status: Some(0),
                    upstream_ids: vec!["4711".to_owned()],
                    failure: None,
                },
                None,
                now_ms(),
            )
            .await
            .expect("record");
        let delivered = receipt_pdu("4711", "DELIVRD");
        assert_eq!(
            handle(&node, "up", &delivered).await.expect("handled"),
            CommandStatus::Ok
        );
        let owed: Vec<String> = node
            .store
            .outbox_pending("acme", None, 10)
            .expect("outbox")
            .into_iter()
            .map(|(_, item)| match Pdu::decode(item.pdu).map(|p| p.body) {
                Ok(Body::DeliverSm(sm)) => {
                    String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned()
                }
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(owed.len(), 2, "{owed:?}");
        assert!(owed[0].contains("stat:ENROUTE"), "{owed:?}");
        assert!(owed[1].contains("stat:DELIVRD"), "{owed:?}");
        assert!(node
            .store
            .peek_unmatched("up", "4711", false)
            .expect("peek")
            .is_none());
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_split_message_ends_with_its_worst_part_once_every_part_is_final() {
        let mut r = record(&["A1", "A2"], 1);
        let first = step(
            &mut r,
            &receipt("a1", FinalState::Delivrd, Reason::None),
            HOW,
            false,
        );
        assert_eq!(
            (first.outcome, first.relay),
            (None, None),
            "part 2 is still open"
        );
        assert_eq!(first.received.and_then(|x| x.part), Some(0));
        let second = step(
            &mut r,
            &receipt("A2", FinalState::Undeliv, Reason::AbsentSubscriber),
            HOW,
            false,
        );
        let outcome = second.outcome.expect("final");
        assert_eq!((outcome.stat.as_str(), outcome.err), ("UNDELIV", 27));
        let (_, relayed) = second.relay.expect("one receipt for the message");
        assert_eq!(
            (relayed.stat.as_str(), relayed.err, relayed.part),
            ("UNDELIV", 27, None)
        );
        assert_eq!(r.received.len(), 2);
        // A repeat after the end: history only.
        let repeat = step(
            &mut r,
            &receipt("A2", FinalState::Undeliv, Reason::AbsentSubscriber),
            HOW,
            false,
        );
        assert!(repeat.received.is_some() && repeat.relay.is_none() && repeat.outcome.is_none());
        assert_eq!(r.received.len(), 3);
    }

    #[test]
    fn a_vendor_reporting_one_part_ends_the_message_on_that_part() {
        let mut r = record(&["T1", "T2"], 1);
        let update = step(
            &mut r,
            &receipt("T1", FinalState::Delivrd, Reason::None),
            HOW,
            true,
        );
        assert!(!r.parts[1].awaited);
        assert_eq!(update.outcome.map(|o| o.stat), Some("DELIVRD".to_owned()));
        assert!(update.relay.is_some());
    }

    #[test]
    fn a_final_part_keeps_its_end_against_a_late_intermediate() {
        let mut r = record(&["B1", "B2"], 0x11);
        step(
            &mut r,
            &receipt("B1", FinalState::Undeliv, Reason::UnknownSubscriber),
            HOW,
            false,
        );
        let late = step(
            &mut r,
            &receipt("B1", FinalState::Enroute, Reason::None),
            HOW,
            false,
        );
        assert!(late.relay.is_none() && late.parts.is_none());
        assert!(r.parts[0].is_final);
        assert_eq!(r.parts[0].outcome.as_ref().map(|o| o.err), Some(1));
    }

    #[test]
    fn per_part_receipts_say_which_part_and_the_message_ends_with_the_worst() {
        let how = Receiving {
            per_part: true,
            ..HOW
        };
        let mut r = record(&["P1", "P2"], 1);
        let one = step(
            &mut r,
            &receipt("P1", FinalState::Delivrd, Reason::None),
            how,
            false,
        );
        let (item, entry) = one.relay.expect("part 1's receipt");
        assert_eq!(entry.part, Some(0));
        assert!(one.outcome.is_none());
        let pdu = tern_codec::Pdu::decode(item.pdu).expect("decodes");
        let tern_codec::Body::DeliverSm(sm) = pdu.body else {
            panic!("{pdu:?}")
        };
        let sar = sm.tlvs.sar().expect("SAR");
        assert_eq!((sar.reference, sar.total, sar.sequence), (0x42, 2, 1));
        let two = step(
            &mut r,
            &receipt("P2", FinalState::Expired, Reason::Expired),
            how,
            false,
        );
        assert_eq!(two.relay.map(|(_, e)| e.part), Some(Some(1)));
        assert_eq!(two.outcome.map(|o| o.stat), Some("EXPIRED".to_owned()));
    }

    #[test]
    fn an_intermediate_state_goes_once_and_only_to_clients_that_asked() {
        let mut asked = record(&["E1"], 0x11);
        let first = step(
            &mut asked,
            &receipt("E1", FinalState::Enroute, Reason::None),
            HOW,
            false,
        );
        assert_eq!(first.relay.map(|(_, e)| e.stat), Some("ENROUTE".to_owned()));
        let again = step(
            &mut asked,
            &receipt("E1", FinalState::Enroute, Reason::None),
            HOW,
            false,
        );
        assert!(again.relay.is_none(), "the same state is not told twice");
        let mut not_asked = record(&["E2"], 1);
        let none = step(
            &mut not_asked,
            &receipt("E2", FinalState::Acceptd, Reason::None),
            HOW,
            false,
        );
        assert!(none.relay.is_none() && none.outcome.is_none());
        let done = step(
            &mut not_asked,
            &receipt("E2", FinalState::Delivrd, Reason::None),
            HOW,
            false,
        );
        assert_eq!(done.relay.map(|(_, e)| e.stat), Some("DELIVRD".to_owned()));
    }

    #[test]
    fn receipts_about_an_attempt_left_behind_are_history_only() {
        // Resubmitted after "up"'s failed receipt: queued again.
        let mut r = record(&["A1", "A2"], 1);
        r.state = State::Queued;
        let late = step(
            &mut r,
            &receipt("A2", FinalState::Undeliv, Reason::AbsentSubscriber),
            HOW,
            false,
        );
        assert!(late.received.is_some());
        assert!(late.outcome.is_none() && late.relay.is_none() && late.parts.is_none());
        // Sent again through "other": a receipt from "up" naming none of
        // the new attempt's parts does not speak for the message.
        r.state = State::Submitted;
        r.attempts.push(Attempt {
            upstream: "other".to_owned(),
            at_ms: 2,
            status: Some(0),
            upstream_ids: vec!["B1".to_owned()],
            failure: None,
        });
        let parts = parts_of(&r, |_| false);
        let update = decide(
            &r,
            parts,
            "up",
            &receipt("A9", FinalState::Undeliv, Reason::AbsentSubscriber),
            HOW,
        );
        assert!(update.outcome.is_none() && update.relay.is_none());
        assert_eq!(used_upstreams(&r), ["up", "other"]);
    }
}
