//! What one receipt changes in its message's record.
//!
//! Every receipt is kept in the message's history. A message Tern split
//! into parts upstream ends only when every part it waits for is final
//! (see [`super::parts`]), and its client gets one receipt for its one id,
//! unless its account asks for one per part.
//!
//! A final failed receipt that the message's route resubmits on (see
//! `Router::resubmits`) does not end it: the message goes back to the
//! queue and the dispatcher sends it through the next upstream of its
//! route, leaving out those that already took it. The client hears only
//! the final outcome, under Tern's id; receipts about the attempt left
//! behind stay in the history.

use tern_codec::pdu::SubmitSm;
use tern_storage::{MessageRecord, Outcome, PartState, ReceiptUpdate, ReceivedReceipt, State};

use super::client::{client_relay, client_submit, PartOf};
use super::matching::{abandoned, current_upstream, knows, names, used_upstreams};
use super::parts::{parts_of, whole_outcome};
use super::read::UpstreamReceipt;
use super::stored::{canonical_of, stored_outcome};
use crate::canonical::{Canonical, Scope};
use crate::engine::may_resubmit;

/// Where a receipt came from, how its message's client wants receipts, and
/// the clock: what a decision needs beyond the record and the receipt.
#[derive(Debug, Clone, Copy)]
pub struct Receiving<'a> {
    /// The upstream that sent it.
    pub upstream: &'a str,
    /// The upstream's receipts may write its ids in another base (its
    /// profile's `message_id.receipt_id_any_base`).
    pub any_base: bool,
    /// The client account asked for one receipt per part of a split message
    /// (`receipts_per_part`), instead of one for the message.
    pub per_part: bool,
    /// The client account asked for the vendor's own receipt TLVs
    /// (`vendor_tlvs`).
    pub vendor_tlvs: bool,
    /// Now, ms since the Unix epoch.
    pub now: u64,
}

/// What to do with a receipt for a known message.
// Not boxed: it is made once per receipt and its update moves straight
// into the store write; `NotYet` is the rare case.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The message is being sent and its record does not yet have the
    /// attempt this receipt is about: write nothing, hold the receipt until
    /// the attempt is recorded.
    NotYet,
    /// Write this update, in one store write.
    Record {
        /// The update.
        update: ReceiptUpdate,
        /// The receipt failed the message and its route sends it again
        /// (the update requeues it instead of ending it).
        resubmitted: bool,
    },
}

/// Decides what `receipt` changes in `record` (see the module doc).
/// `first_only(upstream)` says that upstream's vendor reports only the first
/// part of what it split itself; `resubmits(submit, receipt, used)` says
/// whether the message's route sends it again after this failed receipt,
/// leaving out the upstreams `used` (`Router::resubmits`).
pub fn on_receipt(
    record: &MessageRecord,
    receipt: &UpstreamReceipt,
    how: &Receiving<'_>,
    first_only: impl Fn(&str) -> bool,
    resubmits: impl FnOnce(&SubmitSm, &UpstreamReceipt, &[String]) -> bool,
) -> Decision {
    if matches!(record.state, State::InFlight | State::Queued)
        && !knows(record, how.upstream, &receipt.upstream_id, how.any_base)
    {
        return Decision::NotYet;
    }
    let mut update = decide(record, parts_of(record, first_only), receipt, how);
    let resubmitted = resubmit_instead(record, receipt, &mut update, how.now, resubmits);
    Decision::Record {
        update,
        resubmitted,
    }
}

/// What one receipt changes. Every receipt goes into the history. Then:
///
/// - a message already final changes no more;
/// - a part already final keeps its end (a repeat, or an intermediate
///   state arriving late);
/// - a message Tern split ends when every awaited part is final, with the
///   worst of them (a failed part fails the message: see
///   [`super::parts::combined`]), and its client gets one receipt for its
///   one id; or, for a client that asked for per-part receipts, one per
///   part as each part changes, with the SAR TLVs saying which;
/// - intermediate states (ENROUTE, ACCEPTD) go to clients that asked for
///   them, once per state for the message.
fn decide(
    record: &MessageRecord,
    mut parts: Vec<PartState>,
    receipt: &UpstreamReceipt,
    how: &Receiving<'_>,
) -> ReceiptUpdate {
    let upstream = how.upstream;
    let canonical = receipt.canonical;
    let vendor = format!(
        "{upstream} stat:{} err:{}",
        receipt.vendor_stat.as_deref().unwrap_or("-"),
        receipt.vendor_err.as_deref().unwrap_or("-")
    );
    let extra = if how.vendor_tlvs {
        vendor_tlvs(record, upstream, receipt)
    } else {
        &[]
    };
    let relay = |canonical: &Canonical, vendor: Option<&str>, part: Option<PartOf>| {
        client_relay(record, canonical, vendor, part, extra, how.now)
    };
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
        || (index.is_none() && abandoned(record, upstream, &receipt.upstream_id))
    {
        return update;
    }
    let intermediate_once = |update: &mut ReceiptUpdate| {
        let told = record
            .relayed
            .iter()
            .any(|r| r.part.is_none() && r.stat == canonical.state.stat());
        if !told {
            update.relay = relay(&canonical, Some(&vendor), None);
        }
    };
    let Some(index) = index else {
        if current_upstream(record) != Some(upstream) {
            // From an upstream the message was resubmitted away from.
            return update;
        }
        // An id of this message that is none of the accepted attempt's
        // parts as recorded: it speaks for the whole message.
        if canonical.state.is_final() {
            update.outcome = Some(outcome);
            update.relay = relay(&canonical, Some(&vendor), None);
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
            update.relay = relay(&canonical, Some(&vendor), Some(of));
        }
        if let Some(whole) = whole {
            update.outcome = Some(stored_outcome(&whole, whole_vendor));
        }
    } else if let Some(whole) = whole {
        update.relay = relay(&whole, whole_vendor.as_deref(), None);
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

/// The vendor's own receipt TLVs a client receipt carries, for a client
/// that asked for them: those of this receipt, else of the latest receipt
/// from the same upstream that had some (a split message may end on a
/// part whose receipt carries none).
fn vendor_tlvs<'r>(
    record: &'r MessageRecord,
    upstream: &str,
    receipt: &'r UpstreamReceipt,
) -> &'r [(u16, Vec<u8>)] {
    if !receipt.vendor_tlvs.is_empty() {
        return &receipt.vendor_tlvs;
    }
    record
        .received
        .iter()
        .rev()
        .find(|r| r.upstream == upstream && !r.vendor_tlvs.is_empty())
        .map_or(&[][..], |r| r.vendor_tlvs.as_slice())
}

/// Turns an `update` that would end `record` with a failure into a
/// resubmission when its route says so: no outcome, no client receipt,
/// back into the queue now. The receipt that completed the message says
/// why, and whether its code concerns this vendor only; when the failure
/// came from another part, only its reason is known. Returns whether it
/// did.
fn resubmit_instead(
    record: &MessageRecord,
    receipt: &UpstreamReceipt,
    update: &mut ReceiptUpdate,
    now: u64,
    resubmits: impl FnOnce(&SubmitSm, &UpstreamReceipt, &[String]) -> bool,
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
    if !resubmits(&submit, &said, &used_upstreams(record)) {
        return false;
    }
    update.outcome = None;
    update.relay = None;
    update.requeue_at_ms = Some(now);
    true
}

#[cfg(test)]
mod tests;
