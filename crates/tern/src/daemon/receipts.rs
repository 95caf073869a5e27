//! Requests from upstreams: receipts are matched to their message, stored
//! with the canonical outcome and queued for the client, and only then
//! acknowledged; a receipt for a message not known yet is held.

use std::sync::Arc;

use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandStatus, Pdu};
use tern_router::receipt::{read_receipt, ReceiptReadError, UpstreamReceipt};
use tern_router::upstream::UpstreamRequest;
use tern_storage::{now_ms, State, StoreError, TernId, UnmatchedReceipt};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::node::Node;
use super::relay::{queue_receipt, stored_outcome};

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
    let Some(profile) = node.profiles.get(upstream) else {
        return Ok(CommandStatus::SystemError);
    };
    match read_receipt(profile, sm) {
        Ok(receipt) => match node.lookup(upstream, &receipt.upstream_id)? {
            Some(id) => {
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
        // MO is not routed to clients yet: refuse it temporarily so the
        // upstream keeps it rather than Tern dropping it.
        Err(ReceiptReadError::NotAReceipt(_)) => Ok(CommandStatus::ReceiverTemporaryError),
        Err(err) => {
            warn!(upstream, %err, "unreadable receipt acknowledged and dropped");
            Ok(CommandStatus::Ok)
        }
    }
}

/// Records a receipt against its message and queues the client's.
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
    if record.state == State::Final {
        // Already ended (another part of a split message, or a repeat):
        // the client gets one receipt per message id.
        debug!(%id, upstream, "receipt for a message already final; not relayed again");
        return Ok(());
    }
    let vendor = format!(
        "{upstream} stat:{} err:{}",
        receipt.vendor_stat.as_deref().unwrap_or("-"),
        receipt.vendor_err.as_deref().unwrap_or("-")
    );
    if receipt.is_final() {
        node.store
            .finish(
                id,
                stored_outcome(&receipt.canonical, Some(vendor.clone())),
                now_ms(),
            )
            .await?;
    }
    queue_receipt(node, &record, &receipt.canonical, Some(&vendor)).await
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
    let (Body::DeliverSm(sm), Some(profile)) = (&pdu.body, node.profiles.get(upstream)) else {
        return Ok(());
    };
    let Ok(receipt) = read_receipt(profile, sm) else {
        return Ok(());
    };
    if let Some(id) = node.lookup(upstream, &receipt.upstream_id)? {
        apply(node, id, upstream, &receipt).await?;
    }
    Ok(())
}
