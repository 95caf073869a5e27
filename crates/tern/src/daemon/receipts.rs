//! Requests from upstreams: receipts are matched to their message, stored
//! with the canonical outcome and queued for the client, and only then
//! acknowledged; a receipt for a message not known yet is held.
//!
//! Every receipt is kept in the message's history. A message Tern split
//! into parts upstream ends only when every part it waits for is final
//! (all parts, or the one a vendor that splits payloads itself reports),
//! and its client gets one receipt for its one id, unless its account asks
//! for one per part.

use std::sync::Arc;

use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandStatus, Pdu};
use tern_router::receipt::{read_receipt, ReceiptReadError, UpstreamReceipt};
use tern_router::relay::combined;
use tern_router::upstream::UpstreamRequest;
use tern_storage::upstream_id::{candidates, normalise};
use tern_storage::{
    now_ms, MessageRecord, PartState, ReceiptUpdate, ReceivedReceipt, State, StoreError, TernId,
    UnmatchedReceipt,
};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::node::Node;
use super::relay::{canonical_of, client_relay, stored_outcome, PartOf};

/// Handles upstream requests until the channel closes.
pub async fn run(node: Arc<Node>, mut inbound: mpsc::Receiver<UpstreamRequest>) {
    while let Some(UpstreamRequest { upstream, request }) = inbound.recv().await {
        let node = node.clone();
        tokio::spawn(async move {
            let status = match handle(&node, &upstream, &request.pdu).await {
                Ok(status) => status,
                Err(err) => {
                    warn!(%err, "storing a receipt failed; the upstream will send it again");
                    CommandStatus::ReceiverTemporaryError
                }
            };
            let body = Body::DeliverSmResp(SmResp::with_id(Default::default()));
            let _ = request.responder.respond(status, body).await;
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
    match read_receipt(profile, sm) {
        Ok(receipt) => match node.lookup(upstream, &receipt.upstream_id)? {
            Some(id) => {
                node.metrics
                    .receipt(upstream, receipt.canonical.state.stat());
                apply(node, id, upstream, &receipt).await?;
                Ok(CommandStatus::Ok)
            }
            None => {
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
                node.metrics.receipt_unmatched(upstream);
                // The dispatcher may have recorded the submit_sm_resp between
                // the lookup above and the hold: it looks for held receipts
                // after recording, this side looks again after holding, so
                // one of the two sees the other. Applying twice is harmless
                // (a final message is not relayed again).
                if node.lookup(upstream, &receipt.upstream_id)?.is_some() {
                    if let Some(held) = node.take_held(upstream, &receipt.upstream_id).await? {
                        apply_held(node, upstream, held).await?;
                    }
                }
                Ok(CommandStatus::Ok)
            }
        },
        // Not a receipt: an MO, routed to a client by the MO rules.
        Err(ReceiptReadError::NotAReceipt(_)) => super::mo::receive(node, upstream, pdu, sm).await,
        Err(err) => {
            warn!(upstream, %err, "unreadable receipt acknowledged and dropped");
            Ok(CommandStatus::Ok)
        }
    }
}

/// Records a receipt against its message and decides what the client is
/// owed, in one store write (see [`decide`]).
async fn apply(
    node: &Node,
    id: TernId,
    upstream: &str,
    receipt: &UpstreamReceipt,
) -> Result<(), StoreError> {
    let _held = node.lock_message(id).await;
    let Some(record) = node.store.get(id)? else {
        return Ok(());
    };
    let routing = node.routing();
    let per_part = node
        .accounts
        .current()
        .iter()
        .find(|a| a.system_id == record.client)
        .is_some_and(|a| a.receipts_per_part);
    let any_base = routing.profile(upstream).message_id.receipt_id_any_base;
    let parts = parts_of(&record, |name| {
        routing.profile(name).long_messages.receipts_for == "first"
    });
    let now = now_ms();
    let update = decide(
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
    if record.state == State::Final {
        // Already ended (a repeat, a late part): kept in the history only;
        // the client gets one receipt per message id.
        debug!(%id, upstream, "receipt for a message already final; not relayed again");
    }
    let queued = node.store.record_receipt(id, update, now).await?;
    if queued.is_some() {
        node.outbox.notify_one();
    }
    Ok(())
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
        .find(|a| !a.upstream_ids.is_empty())
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
        received: Some(ReceivedReceipt {
            upstream: upstream.to_owned(),
            upstream_id: receipt.upstream_id.clone(),
            part: index.map(|i| i as u32),
            vendor_stat: receipt.vendor_stat.clone(),
            vendor_err: receipt.vendor_err.clone(),
            network_error: receipt
                .network_error
                .map(|n| (n.network_type, n.error_code)),
            canonical: outcome.clone(),
            is_final: canonical.state.is_final(),
            received_ms: how.now,
        }),
        ..ReceiptUpdate::default()
    };
    if record.state == State::Final {
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
    // The vendor code of the part the message's outcome comes from.
    let whole_vendor = whole.and_then(|w| {
        awaited
            .iter()
            .filter_map(|p| p.outcome.as_ref())
            .find(|o| o.stat == w.state.stat() && o.err == w.reason.err())
            .and_then(|o| o.vendor_code.clone())
    });
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

/// A held receipt whose message is now known.
pub async fn apply_held(
    node: &Node,
    upstream: &str,
    held: UnmatchedReceipt,
) -> Result<(), StoreError> {
    let Ok(pdu) = Pdu::decode(held.pdu) else {
        return Ok(());
    };
    let Body::DeliverSm(sm) = &pdu.body else {
        return Ok(());
    };
    let routing = node.routing();
    let Ok(receipt) = read_receipt(routing.profile(upstream), sm) else {
        return Ok(());
    };
    if let Some(id) = node.lookup(upstream, &receipt.upstream_id)? {
        node.metrics
            .receipt(upstream, receipt.canonical.state.stat());
        apply(node, id, upstream, &receipt).await?;
    }
    Ok(())
}
