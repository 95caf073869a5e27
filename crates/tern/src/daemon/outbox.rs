//! Delivering what clients are owed (receipts) to their receiving
//! sessions; an item leaves the outbox only when the client answered
//! deliver_sm_resp with ESME_ROK, so nothing is lost while a client is away.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_codec::Pdu;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::cluster::Cluster;
use super::node::Node;

/// How often every client's outbox is listed on a shared store (between,
/// only those notifications named).
const FULL_SCAN: Duration = Duration::from_secs(1);

/// Items taken per client and round.
const BATCH: usize = 256;

/// First wait after a client failed to take a delivery; doubles per
/// failure in a row, up to [`RETRY_MAX`].
const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between tries for a client that keeps refusing.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// A client that refused or did not answer: when to try it again.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    failures: u32,
    until: Instant,
}

/// Runs until `shutdown`: rounds over every client owed something, all
/// clients at once; waits for news only when a round left nothing behind.
/// A client that answers a deliver_sm with an error (or not at all) is
/// tried again after a wait that doubles with each failing round.
pub async fn run(node: Arc<Node>, shutdown: CancellationToken) {
    let mut behind = false;
    let mut backoff: HashMap<String, Backoff> = HashMap::new();
    let mut receivers_seen = 0;
    let mut last_full = Instant::now() - FULL_SCAN;
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
        // On a shared store, listing every client's outbox is one read per
        // shard; between full listings (each second, which also retries
        // clients whose backoff ended) only the clients the notifications
        // named are looked at.
        let full = node.cluster.is_none() || last_full.elapsed() >= FULL_SCAN;
        let clients = if !full {
            node.take_outbox_news()
        } else {
            last_full = Instant::now();
            node.take_outbox_news();
            match node.store.outbox_clients() {
                Ok(clients) => clients,
                Err(_) => {
                    behind = false;
                    continue;
                }
            }
        };
        let receivers = node.receivers_bound.load(Ordering::Relaxed);
        if receivers != receivers_seen {
            // A session bound to receive: whoever failed may take it now.
            receivers_seen = receivers;
            backoff.clear();
        }
        let now = Instant::now();
        let due: Vec<&String> = clients
            .iter()
            .filter(|c| backoff.get(*c).is_none_or(|b| b.until <= now))
            .collect();
        let rounds = due.iter().map(|client| deliver(&node, client));
        let results = futures::future::join_all(rounds).await;
        behind = false;
        for (client, round) in due.into_iter().zip(results) {
            behind |= round.full && !round.failed;
            if round.full && !round.failed {
                // More waiting: look at this client again next round.
                node.outbox_news(client);
            }
            if round.failed {
                let failures = backoff.get(client).map_or(0, |b| b.failures) + 1;
                let wait = RETRY_INITIAL
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(RETRY_MAX);
                debug!(
                    client,
                    failures,
                    ?wait,
                    "client did not take its deliveries; waiting"
                );
                backoff.insert(
                    client.clone(),
                    Backoff {
                        failures,
                        until: Instant::now() + wait,
                    },
                );
            } else if round.sent {
                backoff.remove(client);
            }
        }
        if full {
            // Only a full listing tells which clients have nothing left.
            backoff.retain(|client, _| clients.contains(client));
        }
    }
}

/// How one client's round went.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    /// Something was sent.
    sent: bool,
    /// The batch was full: more may be waiting.
    full: bool,
    /// A deliver_sm was refused or unanswered.
    failed: bool,
}

/// Sends one batch of what `client` is owed, spread over its receiving
/// sessions (each session's window paces its share); each item leaves the
/// outbox only once the client has taken it.
async fn deliver(node: &Node, client: &str) -> Round {
    let sessions = node.receivers(client);
    if let Some(cluster) = &node.cluster {
        // On a shared store one node delivers a client's outbox at a time
        // (the others would send the same items); a node with no receiver
        // of that client lets another take over at once.
        let lease = Cluster::outbox_lease(client);
        if sessions.is_empty() {
            if let Err(err) = cluster.coordinator.release(&lease).await {
                debug!(client, %err, "releasing the outbox lease failed; it expires");
            }
            return Round::default();
        }
        match cluster.coordinator.acquire(&lease, cluster.lease_ttl).await {
            Ok(true) => {}
            Ok(false) => return Round::default(),
            Err(err) => {
                debug!(client, %err, "outbox lease not taken; trying later");
                return Round::default();
            }
        }
    }
    if sessions.is_empty() {
        return Round::default();
    }
    let Ok(items) = node.store.outbox_pending(client, BATCH) else {
        return Round::default();
    };
    let full = items.len() == BATCH;
    let sent = !items.is_empty();
    let deliveries = items.into_iter().enumerate().map(|(n, (seq, item))| {
        let session = sessions[n % sessions.len()].clone();
        async move {
            let Ok(pdu) = Pdu::decode(item.pdu.clone()) else {
                // Undecodable: drop rather than block the outbox forever.
                let _ = node.store.outbox_ack(client, seq).await;
                return true;
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
                    true
                }
                other => {
                    debug!(client, ?other, "deliver_sm not taken; kept for later");
                    false
                }
            }
        }
    });
    let taken = futures::future::join_all(deliveries).await;
    Round {
        sent,
        full,
        failed: taken.iter().any(|ok| !ok),
    }
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
