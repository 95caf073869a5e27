//! Housekeeping in the background, in small batches so the hot path never
//! waits on it: finished messages leave the store after the retention time
//! (and those no receipt ended, that long after they were sent),
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

/// Entries removed per store call. A round calls again while a call
/// finds a whole batch, so a round removes everything due: with one batch
/// per round, at most 50 finished messages a second left the store (500
/// every 10 s), and a broker relaying more than that kept every message
/// past its retention, on disk and in sled's memory, for ever. Each call is
/// one write group, so the hot path's writes never wait behind more.
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
        if let Err(err) = round(&node, ages, &shutdown).await {
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
pub async fn round(
    node: &Node,
    ages: Ages,
    shutdown: &CancellationToken,
) -> Result<(), tern_storage::StoreError> {
    let now = now_ms();
    purge_finished(node, now, ages.retention, shutdown).await?;
    expire_unmatched(node, now, ages.unmatched_grace, shutdown).await?;
    expire_outboxes(node, now, ages.outbox_max_age, shutdown).await
}

/// Calls `batch` (one store call, returning how many entries it took)
/// until one takes less than [`BATCH`] or the daemon stops, yielding
/// between calls; returns how many were taken in all.
async fn in_batches<F, Fut>(
    shutdown: &CancellationToken,
    mut batch: F,
) -> Result<usize, tern_storage::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, tern_storage::StoreError>>,
{
    let mut taken = 0;
    loop {
        let n = batch().await?;
        taken += n;
        if n < BATCH || shutdown.is_cancelled() {
            return Ok(taken);
        }
        tokio::task::yield_now().await;
    }
}

/// Removes every message past its retention (ended that long ago, or sent
/// that long ago and never ended: the store's `purge_finished`).
async fn purge_finished(
    node: &Node,
    now: u64,
    retention: Duration,
    shutdown: &CancellationToken,
) -> Result<(), tern_storage::StoreError> {
    let before = now.saturating_sub(retention.as_millis() as u64);
    let purged = in_batches(shutdown, || node.store().purge_finished(before, BATCH)).await?;
    if purged > 0 {
        info!(purged, "finished messages past their retention removed");
    }
    Ok(())
}

/// Drops every receipt held past its grace period.
async fn expire_unmatched(
    node: &Node,
    now: u64,
    grace: Duration,
    shutdown: &CancellationToken,
) -> Result<(), tern_storage::StoreError> {
    in_batches(shutdown, || async {
        let expired = node.store().expire_unmatched(now, grace, BATCH).await?;
        let n = expired.len();
        for held in expired {
            tern_session::warn_limited!(
                "a receipt matched no message within its grace period; dropped",
                upstream = held.upstream,
                upstream_id = held.upstream_id,
                received_ms = held.received_ms
            );
        }
        Ok(n)
    })
    .await?;
    Ok(())
}

/// Drops what clients never took from their outboxes past the outbox age,
/// a batch per store write, until a batch finds an item young enough to
/// keep (a client that never reads and gets more than 50 receipts a second
/// would otherwise outgrow one batch a round for ever).
async fn expire_outboxes(
    node: &Node,
    now: u64,
    max_age: Duration,
    shutdown: &CancellationToken,
) -> Result<(), tern_storage::StoreError> {
    let too_old = now.saturating_sub(max_age.as_millis() as u64);
    for client in node.store().outbox_clients().await? {
        let client = client.as_str();
        in_batches(shutdown, || async move {
            let pending = node.store().outbox_pending(client, None, BATCH).await?;
            // Oldest first: stop at the first item young enough to keep.
            let expired: Vec<u64> = pending
                .into_iter()
                .take_while(|(_, item)| item.stored_ms < too_old)
                .map(|(seq, item)| {
                    tern_session::warn_limited!("client never took this receipt or MO; dropped after the outbox age", client,
                        message = ?item.message.map(|id| id.to_string()),
                        stored_ms = item.stored_ms);
                    seq
                })
                .collect();
            node.store().outbox_ack_many(client, &expired).await?;
            node.metrics().outbox_expire(expired.len() as u64);
            Ok(expired.len())
        })
        .await?;
    }
    Ok(())
}
