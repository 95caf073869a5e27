//! A receipt's path through the daemon: an upstream's deliver_sm is read,
//! matched to its message, decided on, stored with what its client is owed
//! and queued for the client, and only then acknowledged; a receipt for a
//! message not known yet is held. Every decision is the router's
//! (`tern_router::receipt`: reading, matching, the outcome over the parts,
//! resubmission, the client's receipt); this file reads the session and
//! the store, calls those functions, and writes what they decide.

use std::sync::Arc;

use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandStatus, Pdu};
use tern_router::receipt::{
    client_relay, on_receipt, read_held, read_receipt, Decision, ReceiptReadError, Receiving,
    UpstreamReceipt,
};
use tern_router::upstream::UpstreamRequest;
use tern_router::Canonical;
use tern_storage::{
    now_ms, HeldUnder, MessageRecord, ReceiptUpdate, ReceiptWrite, State, StoreError, TernId,
    UnmatchedReceipt,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::node::Node;

/// The receipts stage: the loop reading what upstreams send and the task
/// handling each request, on one tracker it owns.
#[derive(Debug)]
pub struct Receipts {
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl Receipts {
    /// Handles the requests upstreams send on `inbound` (receipts and MO)
    /// until [`Receipts::drain`].
    pub fn start(node: Arc<Node>, inbound: mpsc::Receiver<UpstreamRequest>) -> Self {
        let (stop, tasks) = (CancellationToken::new(), TaskTracker::new());
        tasks.spawn(run(node, inbound, stop.clone(), tasks.clone()));
        Self { stop, tasks }
    }

    /// Shutdown, after the upstreams unbound (nothing more comes): stops
    /// reading, and waits up to `deadline` for the requests being handled
    /// to be stored, before the store's final flush. One cut short was not
    /// acknowledged, so its upstream sends it again.
    pub async fn drain(self, deadline: std::time::Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("upstream requests still being handled after {deadline:?}; going on");
        }
    }
}

/// Handles upstream requests until the channel closes or `stop`; each on
/// `tasks`.
async fn run(
    node: Arc<Node>,
    mut inbound: mpsc::Receiver<UpstreamRequest>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let received = tokio::select! {
            received = inbound.recv() => received,
            () = stop.cancelled() => None,
        };
        let Some(UpstreamRequest { upstream, request }) = received else {
            return;
        };
        let node = node.clone();
        tasks.spawn(async move {
            // Boxed: the task holds a pointer, not the whole handling
            // (lookups, the record, the store write), which tokio would
            // copy into the task and again when it ends.
            let status = match Box::pin(handle(&node, &upstream, &request.pdu)).await {
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
    let receipt = match read_receipt(routing.profile(upstream), sm) {
        Ok(receipt) => receipt,
        // Not a receipt: an MO, routed to a client by the MO rules.
        Err(ReceiptReadError::NotAReceipt(_)) => {
            return super::mo::receive(node, upstream, pdu, sm).await
        }
        Err(err) => {
            tern_session::warn_limited!("unreadable receipt acknowledged and dropped", upstream, %err);
            return Ok(CommandStatus::Ok);
        }
    };
    if receipt.throttles() {
        let upstreams = routing.router.upstreams();
        if let Some(up) = upstreams.iter().find(|u| u.name() == upstream) {
            up.receipt_throttled();
        }
    }
    // If this node is writing the attempt that gave the receipt's id (a
    // vendor's receipt often comes before that write returns), the receipt
    // waits for the write and is applied as usual: no hold, no settling,
    // and on Redis the lookup then finds the record the write kept, where
    // before the write it asked the server for an index entry not made yet.
    let any_base = routing.profile(upstream).message_id.receipt_id_any_base;
    let writes = node.attempt_writes();
    writes
        .wait(upstream, &receipt.upstream_id, any_base, WRITE_WAIT)
        .await;
    if matched(node, upstream, &receipt).await? {
        return Ok(CommandStatus::Ok);
    }
    // No message has the id yet, or the message's record does not have the
    // attempt that gave it (the id index is written before the record on a
    // shared store). The dispatcher may have entered the attempt's write
    // since the look above (its submit_sm_resp was read after this
    // receipt): wait for that one too.
    if writes
        .wait(upstream, &receipt.upstream_id, any_base, WRITE_WAIT)
        .await
        && matched(node, upstream, &receipt).await?
    {
        return Ok(CommandStatus::Ok);
    }
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
    node.store().hold_unmatched(&held).await?;
    super::crash::point("receipts.after_hold");
    node.metrics().receipt_unmatched(upstream);
    // The dispatcher may have recorded the submit_sm_resp between the
    // lookup above and the hold: it looks for held receipts after
    // recording, this side looks again after holding, so one of the two
    // sees the other. Taking a held receipt is atomic, so only one of them
    // applies it.
    settle_held(node, upstream, &receipt.upstream_id).await?;
    Ok(CommandStatus::Ok)
}

/// How long a receipt waits for this node's write of its attempt
/// (`writing.rs`) before it is held as before: well under an upstream's
/// response timeout, well over a store write.
const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Looks the receipt's message up and applies the receipt to it; false
/// when no message has the id or its record lacks the attempt (nothing
/// written).
async fn matched(
    node: &Node,
    upstream: &str,
    receipt: &UpstreamReceipt,
) -> Result<bool, StoreError> {
    let Some(id) = node.lookup(upstream, &receipt.upstream_id).await? else {
        return Ok(false);
    };
    if apply(node, id, upstream, receipt).await? != Applied::Done {
        return Ok(false);
    }
    node.metrics()
        .receipt(upstream, receipt.canonical.state.stat());
    Ok(true)
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
    /// Nothing written: receipts for the same upstream id are held from
    /// before, and go first ([`Held::Check`]).
    HeldFirst,
}

/// Records a receipt against its message and what the client is owed, in
/// one store write. Receipts for the same part still held from before the
/// submit_sm_resp was recorded go first: they came first (an ENROUTE held,
/// then its DELIVRD matching once the dispatcher recorded the submit but
/// before it settled the held one), and applied after a final one they
/// would be history only, never relayed.
///
/// Only this node's lock is taken for the common receipt: its write is
/// refused when another node wrote the message after this read, and it is
/// then decided again, so it costs no lease round trip. Settling held
/// receipts takes the message's lease: each is read, applied and then
/// taken, and two nodes doing that at once would apply it twice.
async fn apply(
    node: &Node,
    id: TernId,
    upstream: &str,
    receipt: &UpstreamReceipt,
) -> Result<Applied, StoreError> {
    let mut guard = node.lock_local(id).await;
    super::crash::point("receipts.after_match");
    // Written only if nothing is held from before (the store looks in the
    // same write); else those go first, then this one.
    match apply_locked(node, id, upstream, receipt, Held::Check).await? {
        Applied::HeldFirst => {
            node.lease_message(&mut guard, id).await;
            settle_held_locked(node, id, upstream, &receipt.upstream_id).await?;
            apply_locked(node, id, upstream, receipt, Held::Settled).await
        }
        applied => Ok(applied),
    }
}

/// Whether [`apply_locked`] must first make sure no receipt for the same
/// upstream id is held from before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Check, in the receipt's write: [`Applied::HeldFirst`] if one is.
    Check,
    /// The held ones were applied already, or this is one of them.
    Settled,
}

/// How many times a receipt is decided again when another node keeps
/// writing its message between the read and the write; each time is one
/// write of that other node's, so this is never reached in practice.
const DECIDE_TRIES: usize = 16;

/// [`apply`] for a caller that holds the message's lock: reads the record,
/// decides, and writes the update; again from a fresh read when another
/// node wrote the message in between.
async fn apply_locked(
    node: &Node,
    id: TernId,
    upstream: &str,
    receipt: &UpstreamReceipt,
    held: Held,
) -> Result<Applied, StoreError> {
    for _ in 0..DECIDE_TRIES {
        if let Some(applied) = decide_and_write(node, id, upstream, receipt, held).await? {
            return Ok(applied);
        }
    }
    Err(StoreError::KeptChanging {
        id,
        tries: DECIDE_TRIES,
    })
}

/// One try of [`apply_locked`]: reads the record, the client's account and
/// the profiles, lets `on_receipt` decide, and writes its update. `None`:
/// another node wrote the record after this read; nothing was written.
async fn decide_and_write(
    node: &Node,
    id: TernId,
    upstream: &str,
    receipt: &UpstreamReceipt,
    held: Held,
) -> Result<Option<Applied>, StoreError> {
    let Some(record) = node.store().get(id).await? else {
        return Ok(Some(Applied::Done));
    };
    let routing = node.routing();
    let (per_part, vendor_tlvs) = node
        .accounts()
        .current()
        .iter()
        .find(|a| a.system_id == record.client)
        .map_or((false, false), |a| (a.receipts_per_part, a.vendor_tlvs));
    let how = Receiving {
        upstream,
        any_base: routing.profile(upstream).message_id.receipt_id_any_base,
        per_part,
        vendor_tlvs,
        now: now_ms(),
    };
    let first_only = |name: &str| {
        routing.profile(name).long_messages.receipts_for == tern_router::profile::ReceiptsFor::First
    };
    let resubmits =
        |submit: &tern_codec::pdu::SubmitSm, said: &UpstreamReceipt, used: &[String]| {
            routing
                .router
                .resubmits(&record.client, submit, upstream, said, used)
        };
    let Decision::Record {
        update,
        resubmitted,
    } = on_receipt(&record, receipt, &how, first_only, resubmits)
    else {
        return Ok(Some(Applied::NotYet));
    };
    let under = match held {
        Held::Settled => None,
        Held::Check => Some(HeldUnder {
            upstream,
            upstream_id: &receipt.upstream_id,
            any_base: how.any_base,
        }),
    };
    let queued = match node
        .store()
        .record_decided_receipt(&record, update, how.now, under)
        .await?
    {
        ReceiptWrite::Stored(queued) => queued,
        ReceiptWrite::HeldFirst => return Ok(Some(Applied::HeldFirst)),
        ReceiptWrite::Changed => {
            debug!(%id, upstream, "message written by another node since it was read; deciding again");
            return Ok(None);
        }
    };
    if resubmitted {
        debug!(%id, upstream, reason = ?receipt.canonical.reason, "failed receipt: sent again through the next upstream");
    }
    if record.state == State::Final {
        // Already ended (a repeat, a late part): kept in the history only;
        // the client gets one receipt per message id.
        debug!(%id, upstream, "receipt for a message already final; not relayed again");
    }
    if let Some(place) = queued {
        queued_for_client(node, &record, place, how.now);
    }
    Ok(Some(Applied::Done))
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
    // Nothing held (the common case): no look-up, no lock.
    if !node.store().may_hold_unmatched() {
        return Ok(false);
    }
    let Some(id) = node.lookup(upstream, upstream_id).await? else {
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
    while let Some(held) = node
        .store()
        .peek_unmatched(upstream, upstream_id, any_base)
        .await?
    {
        if let Some(receipt) = read_held(node.routing().profile(upstream), &held.pdu) {
            if apply_locked(node, id, upstream, &receipt, Held::Settled).await? == Applied::NotYet {
                // Still held, and those behind it: the dispatcher settles
                // them once the attempt is recorded, or the sweep does.
                break;
            }
            node.metrics()
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

/// Queues a receipt for an outcome Tern decided itself (a refusal, an
/// expiry, no route, a cancel) if the client's submit asked for one, and
/// records it in the message's history. The caller owns the message for
/// this step (the store's rule: one task updates a message at a time).
pub async fn queue_receipt(
    node: &Node,
    record: &MessageRecord,
    canonical: &Canonical,
    vendor_code: Option<&str>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let Some(relay) = client_relay(record, canonical, vendor_code, None, &[], now) else {
        return Ok(());
    };
    let update = ReceiptUpdate {
        relay: Some(relay),
        ..ReceiptUpdate::default()
    };
    if let Some(place) = node.store().record_receipt(record.id, update, now).await? {
        queued_for_client(node, record, place, now);
    }
    Ok(())
}

/// A receipt for `record` is stored in its client's outbox at `place`:
/// tells the outbox where, and observes `tern_receipt_latency_seconds` here, where the
/// record is in hand. (Observed at delivery, it cost the outbox a read
/// and decode of the whole record per receipt a client took: 5.9 % of
/// the runtime workers' samples at 4 sessions x window 100.)
fn queued_for_client(node: &Node, record: &MessageRecord, place: u64, now: u64) {
    node.outbox().stored(&record.client, place);
    let waited = now.saturating_sub(record.accepted_ms);
    node.metrics()
        .observe_receipt(std::time::Duration::from_millis(waited));
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use tern_codec::pdu::SubmitSm;
    use tern_codec::{Address, Npi, RegisteredDelivery, ShortMessage, Ton};
    use tern_storage::Attempt;

    /// Client acme's submit, asking for every receipt (final and
    /// intermediate), encoded.
    fn submit_pdu() -> bytes::Bytes {
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
            registered_delivery: RegisteredDelivery(0x11),
            short_message: ShortMessage::new(b"hello".to_vec()).expect("short"),
            ..SubmitSm::default()
        };
        Pdu::new(1, Body::SubmitSm(submit)).to_bytes()
    }

    /// A node over a fresh sled store, with the client `acme` and no
    /// upstreams (receipts read with the generic profile).
    pub(in crate::daemon) fn test_node(dir: &std::path::Path) -> Arc<Node> {
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
            tokio_util::task::TaskTracker::new(),
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
        let submit = submit_pdu();
        let accepted = node
            .store()
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
        let claimed = node.store().claim_ready(now_ms(), 1).await.expect("claim");
        assert_eq!(claimed.len(), 1);
        // The ENROUTE comes before the submit_sm_resp is recorded: held.
        let enroute = receipt_pdu("4711", "ENROUTE");
        assert_eq!(
            handle(&node, "up", &enroute).await.expect("handled"),
            CommandStatus::Ok
        );
        // The dispatcher records the submit_sm_resp; the DELIVRD matches
        // before it settles what is held.
        node.store()
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
            .store()
            .outbox_pending("acme", None, 10)
            .await
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
            .store()
            .peek_unmatched("up", "4711", false)
            .await
            .expect("peek")
            .is_none());
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Shutdown's receipts step stops reading what upstreams send and
    /// waits for the requests being handled (here one still storing) to
    /// end before the store's final flush.
    #[tokio::test]
    async fn drain_stops_reading_and_waits_for_the_requests_being_handled() {
        let dir = tern_testkit::TempDir::new("receipts-drain");
        let node = test_node(dir.path());
        let (upstreams, inbound) = mpsc::channel(1);
        let receipts = Receipts::start(node, inbound);
        let stored = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stored.clone();
        receipts.tasks.spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        receipts.drain(std::time::Duration::from_secs(5)).await;
        assert!(
            stored.load(std::sync::atomic::Ordering::SeqCst),
            "returned before the request was handled"
        );
        assert!(upstreams.is_closed(), "still reading from the upstreams");
    }
}
