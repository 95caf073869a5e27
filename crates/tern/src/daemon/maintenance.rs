//! Housekeeping in the background, in small batches so the hot path never
//! waits on it: finished messages leave the store after the retention time,
//! receipts that matched nothing leave after their grace period (logged and
//! counted: "where is my receipt?" starts there), and receipts or MO a
//! client never took leave the outbox after the configured age.

use std::sync::Arc;
use std::time::Duration;

use tern_storage::now_ms;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::node::Node;

/// How often the store is tidied, at most: more often when an age is
/// short, so nothing outlives its age by more than half of it.
const INTERVAL: Duration = Duration::from_secs(10);

/// Entries removed per kind and round; more wait for the next round.
const BATCH: usize = 500;

/// What the housekeeping keeps, and for how long.
#[derive(Debug, Clone, Copy)]
pub struct Ages {
    /// Finished messages.
    pub retention: Duration,
    /// Receipts that matched no message.
    pub unmatched_grace: Duration,
    /// Items a client has not taken from its outbox.
    pub outbox_max_age: Duration,
}

/// How often held receipts are checked against messages known since: the
/// check is cheap when little is held, and a receipt waiting here is a
/// receipt its client waits for.
const HELD_INTERVAL: Duration = Duration::from_secs(1);

/// Tidies until `shutdown`.
pub async fn run(node: Arc<Node>, ages: Ages, shutdown: CancellationToken) {
    let shortest = ages
        .retention
        .min(ages.unmatched_grace)
        .min(ages.outbox_max_age);
    let interval = (shortest / 2).clamp(Duration::from_millis(100), INTERVAL);
    let tick = interval.min(HELD_INTERVAL);
    let mut last_round = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(tick) => {}
            () = shutdown.cancelled() => return,
        }
        // The counts of repeated warnings left out, once their interval
        // is over, also when the flood stopped.
        tern_session::ratelog::flush();
        // A full store notices space returning even when nothing else
        // writes (clients told to wait); the probe logs nothing itself:
        // the store logs the change of state.
        let _ = node.store().probe_space().await;
        if let Err(err) = settle_held(&node).await {
            tern_session::warn_limited!("applying held receipts failed; trying again later", %err);
        }
        if last_round.elapsed() < interval {
            continue;
        }
        last_round = tokio::time::Instant::now();
        if let Err(err) = round(&node, ages).await {
            warn!(%err, "store housekeeping failed; trying again later");
        }
    }
}

/// Applies receipts held for a message that is known by now: a crash
/// between recording a submit_sm_resp and applying what came before it
/// leaves them here.
async fn settle_held(node: &Node) -> Result<(), tern_storage::StoreError> {
    for held in node.store().held_receipts(BATCH).await? {
        if super::receipts::settle_held(node, &held.upstream, &held.upstream_id).await? {
            info!(
                upstream = held.upstream,
                upstream_id = held.upstream_id,
                "a receipt held for a message known since was applied"
            );
        }
    }
    Ok(())
}

/// One round of every kind of tidying.
pub async fn round(node: &Node, ages: Ages) -> Result<(), tern_storage::StoreError> {
    let now = now_ms();
    let before = now.saturating_sub(ages.retention.as_millis() as u64);
    let purged = node.store().purge_finished(before, BATCH).await?;
    if purged > 0 {
        info!(purged, "finished messages past their retention removed");
    }

    for held in node
        .store()
        .expire_unmatched(now, ages.unmatched_grace, BATCH)
        .await?
    {
        tern_session::warn_limited!(
            "a receipt matched no message within its grace period; dropped",
            upstream = held.upstream,
            upstream_id = held.upstream_id,
            received_ms = held.received_ms
        );
    }

    let too_old = now.saturating_sub(ages.outbox_max_age.as_millis() as u64);
    for client in node.store().outbox_clients().await? {
        // Oldest first: stop at the first item young enough to keep.
        for (seq, item) in node.store().outbox_pending(&client, None, BATCH).await? {
            if item.stored_ms >= too_old {
                break;
            }
            node.store().outbox_ack(&client, seq).await?;
            node.metrics().outbox_expire(1);
            tern_session::warn_limited!("client never took this receipt or MO; dropped after the outbox age", client,
                message = ?item.message.map(|id| id.to_string()),
                stored_ms = item.stored_ms);
        }
    }
    Ok(())
}
