//! Delivering what clients are owed (receipts) to their receiving
//! sessions; an item leaves the outbox only when the client answered
//! deliver_sm_resp with ESME_ROK, so nothing is lost while a client is away.

use std::sync::Arc;
use std::time::Duration;

use tern_codec::Pdu;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::node::Node;

/// Items taken per client and round.
const BATCH: usize = 256;

/// Runs until `shutdown`: rounds over every client owed something, all
/// clients at once; waits for news only when a round left nothing behind.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let mut behind = false;
    loop {
        if !behind {
            tokio::select! {
                () = node.outbox.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => return,
            }
        } else if shutdown.is_cancelled() {
            return;
        }
        let Ok(clients) = node.store.outbox_clients() else {
            behind = false;
            continue;
        };
        let rounds = clients.iter().map(|client| deliver(&node, client));
        behind = futures::future::join_all(rounds)
            .await
            .into_iter()
            .any(|full| full);
    }
}

/// Sends one batch of what `client` is owed, spread over its receiving
/// sessions (each session's window paces its share); each item leaves the
/// outbox only once the client has taken it. True when the batch was full,
/// i.e. more may be waiting.
async fn deliver(node: &Node, client: &str) -> bool {
    let sessions = node.receivers(client);
    if sessions.is_empty() {
        return false;
    }
    let Ok(items) = node.store.outbox_pending(client, BATCH) else {
        return false;
    };
    let full = items.len() == BATCH;
    let deliveries = items.into_iter().enumerate().map(|(n, (seq, item))| {
        let session = sessions[n % sessions.len()].clone();
        async move {
            let Ok(pdu) = Pdu::decode(item.pdu.clone()) else {
                // Undecodable: drop rather than block the outbox forever.
                let _ = node.store.outbox_ack(client, seq).await;
                return;
            };
            let stat = receipt_stat(&pdu.body);
            match session.request(pdu.body).await {
                Ok(resp) if resp.command_status.is_ok() => {
                    let _ = node.store.outbox_ack(client, seq).await;
                    node.metrics.receipt_relayed(client, stat);
                    let accepted = item
                        .message
                        .and_then(|id| node.store.get(id).ok().flatten())
                        .map(|record| record.accepted_ms);
                    if let Some(accepted) = accepted {
                        let ms = tern_storage::now_ms().saturating_sub(accepted);
                        node.metrics.observe_receipt(Duration::from_millis(ms));
                    }
                }
                other => debug!(client, ?other, "deliver_sm not taken; kept for later"),
            }
        }
    });
    futures::future::join_all(deliveries).await;
    full
}

/// The `stat:` of a receipt's text ("-" for anything else), for metrics.
fn receipt_stat(body: &tern_codec::Body) -> &'static str {
    let tern_codec::Body::DeliverSm(sm) = body else {
        return "-";
    };
    let text = sm.short_message.as_bytes();
    let Some(at) = text.windows(5).position(|w| w == b"stat:") else {
        return "-";
    };
    let stat = &text[at + 5..];
    tern_router::FinalState::ALL
        .iter()
        .find(|s| stat.starts_with(s.stat().as_bytes()))
        .map_or("-", |s| s.stat())
}
