//! Delivering what clients are owed (receipts) to their receiving
//! sessions; an item leaves the outbox only when the client answered
//! deliver_sm_resp with ESME_ROK, so nothing is lost while a client is away.

use std::sync::Arc;
use std::time::Duration;

use tern_codec::Pdu;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::node::Node;

/// Runs until `shutdown`.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = node.outbox.notified() => {}
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
        let Ok(clients) = node.store.outbox_clients() else {
            continue;
        };
        for client in clients {
            let Some(session) = node.receiver(&client) else {
                continue;
            };
            let Ok(items) = node.store.outbox_pending(&client, 256) else {
                continue;
            };
            // Sent together: the session's window paces them; each leaves the
            // outbox only once the client has taken it.
            let deliveries = items.into_iter().map(|(seq, item)| {
                let (node, session, client) = (&node, session.clone(), client.as_str());
                async move {
                    let Ok(pdu) = Pdu::decode(item.pdu.clone()) else {
                        // Undecodable: drop rather than block the outbox forever.
                        let _ = node.store.outbox_ack(client, seq).await;
                        return;
                    };
                    match session.request(pdu.body).await {
                        Ok(resp) if resp.command_status.is_ok() => {
                            let _ = node.store.outbox_ack(client, seq).await;
                        }
                        other => debug!(client, ?other, "deliver_sm not taken; kept for later"),
                    }
                }
            });
            futures::future::join_all(deliveries).await;
        }
    }
}
