//! The dispatcher: claims due messages from the store, sends each through
//! the router, records the outcome. One claimer; sends run concurrently
//! up to a bound.

use std::sync::Arc;
use std::time::Duration;

use tern_router::engine::{concat_reference, AttemptReport, SendOutcome};
use tern_router::receipt::{client_submit, ended_by_tern, stored_outcome, used_upstreams};
use tern_router::{Canonical, Reason};
use tern_storage::{now_ms, Attempt, MessageRecord, QueuedChange, StoreError};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, info_span, warn, Instrument};

use super::node::Node;
use super::receipts::{queue_receipt, settle_held};
use super::transaction::{client_status, Verdict};

/// Messages sent at once.
const CONCURRENCY: usize = 256;

/// The dispatch stage: the claiming loop and the sends it starts, all on
/// its own tracker, so shutdown stops the claims first and then waits for
/// the sends' upstream answers.
#[derive(Debug)]
pub struct Dispatch {
    claimer: JoinHandle<()>,
    sends: TaskTracker,
}

impl Dispatch {
    /// Starts claiming due messages of `node` (woken by its
    /// [`super::handles::DispatchHandle`]) until `stop`.
    pub fn start(node: Arc<Node>, stop: CancellationToken) -> Self {
        let sends = TaskTracker::new();
        let claimer = sends.spawn(run(node, stop, sends.clone()));
        Self { claimer, sends }
    }

    /// Shutdown, second stage (after the `stop` given to [`Dispatch::start`]
    /// was cancelled): waits for the claiming loop to end, so no send
    /// starts after this, then up to `deadline` for the sends in flight to
    /// get their upstream answers. One left unanswered is sent again at the
    /// next start.
    pub async fn drain(self, deadline: Duration) {
        info!("waiting for sends in flight");
        let _ = self.claimer.await;
        self.sends.close();
        let until = std::time::Instant::now() + deadline;
        if tokio::time::timeout_at(until.into(), self.sends.wait())
            .await
            .is_err()
        {
            warn!("sends still unanswered after {deadline:?}; they will be sent again at the next start");
        }
    }
}

/// Claims and sends until `shutdown`; each send runs on `sends`, so
/// shutdown can wait for the upstream answers of those in flight.
async fn run(node: Arc<Node>, shutdown: CancellationToken, sends: TaskTracker) {
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        tokio::select! {
            () = node.dispatch().woken() => {}
            () = tokio::time::sleep(Duration::from_millis(200)) => {}
            () = shutdown.cancelled() => return,
        }
        while !shutdown.is_cancelled() {
            if nothing_bound(&node) {
                if let Err(err) = end_expired(&node).await {
                    tern_session::warn_limited!("ending expired messages failed", %err);
                }
                break;
            }
            // Room first (`Store::claim_room`): on Redis a claim of the
            // odd permit a send just freed costs as much as a full one.
            let size = node.store().claim_size();
            match permits
                .acquire_many(node.store().claim_room().max(1) as u32)
                .await
            {
                Ok(room) => drop(room),
                Err(_) => return,
            }
            let free = permits.available_permits().max(1);
            let batch = match claim(&node, free.min(size)).await {
                Ok(batch) => batch,
                Err(err) => {
                    tern_session::warn_limited!("claiming from the store failed", %err);
                    break;
                }
            };
            if batch.is_empty() {
                break;
            }
            super::crash::point("dispatch.after_claim");
            for record in batch {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let node = node.clone();
                let span = info_span!("message", id = %record.id, client = %record.client);
                // Boxed: the task then holds a pointer, not the whole send
                // (router, session request, store writes), which tokio
                // would copy into the task and again when it ends.
                sends.spawn(
                    async move {
                        if let Err(err) = Box::pin(send(&node, record)).await {
                            tern_session::warn_limited!("recording a send failed", %err);
                        }
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    }
}

/// Whether no upstream has a session bound on this node: then nothing is
/// claimed. Every send would fail and put its message back a retry delay
/// later, so a long outage would churn through the whole backlog, scatter
/// its order over the retry delays, and leave much of it due up to
/// `retry_max` after the upstreams return. Waiting keeps each message at
/// its place (due when accepted), and the backlog goes out oldest first as
/// soon as one session binds. An open circuit is not "unbound": its probe
/// needs a message. A message whose validity ends meanwhile is ended at
/// its time all the same ([`end_expired`]).
fn nothing_bound(node: &Node) -> bool {
    let routing = node.routing();
    let upstreams = routing.router.upstreams();
    !upstreams.is_empty() && upstreams.iter().all(|u| u.bound() == 0)
}

/// Messages looked at per pass of [`end_expired`]. Only waiting messages
/// are in the expiry queue (one accepted upstream leaves it), so each pass
/// ends up to this many; more wait for the next pass. A store written
/// before that rule may hold entries of messages already sent: they are
/// looked at and left, and go with those messages' retention.
const EXPIRED_BATCH: usize = 1024;

/// Ends the waiting messages whose validity has run out, while nothing is
/// claimed (no upstream bound): EXPIRED, with the receipt (or the
/// transaction-mode answer) to the client at about the validity's end,
/// instead of when an upstream returns. Each end is the store's cancel of
/// a queued message, so a message claimed meanwhile (an upstream bound
/// since) is left to its send, which checks validity itself.
async fn end_expired(node: &Node) -> Result<(), StoreError> {
    let now = now_ms();
    let ids = node.store().expired(now, EXPIRED_BATCH).await?;
    if ids.is_empty() {
        return Ok(());
    }
    let canonical = ended_by_tern(Reason::Expired);
    let outcome = stored_outcome(&canonical, None);
    for id in ids {
        // A refused write (a full store) is tried at the next pass.
        let change = node
            .store()
            .cancel_queued(id, |_| true, outcome.clone(), now)
            .await?;
        if let QueuedChange::Done(record) = change {
            refuse(node, &record, &canonical, None).await?;
        }
    }
    Ok(())
}

/// Claims up to `limit` due messages. On a shared store, leaves those whose
/// route's upstreams are bound only on other nodes to those nodes (a
/// vendor allowing one bind has it on one node).
async fn claim(node: &Node, limit: usize) -> Result<Vec<MessageRecord>, tern_storage::StoreError> {
    let Some(cluster) = node.cluster() else {
        return node.store().claim_ready(now_ms(), limit).await;
    };
    let routing = node.routing();
    let elsewhere = cluster.bound_elsewhere.load_full();
    node.store()
        .claim_ready_where(now_ms(), limit, move |record| {
            client_submit(record).is_none_or(|submit| {
                routing
                    .router
                    .serves_here(&record.client, &submit, |u| elsewhere.contains(u))
            })
        })
        .await
}

async fn send(node: &Node, record: MessageRecord) -> Result<(), tern_storage::StoreError> {
    let now = now_ms();
    if record.expires_ms.is_some_and(|at| at <= now) {
        return end(node, &record, Reason::Expired).await;
    }
    let Some(submit) = client_submit(&record) else {
        return end(node, &record, Reason::InvalidMessage).await;
    };
    // After an attempt that left parts accepted at an upstream, the message
    // goes under a new concatenation reference.
    let placed = record
        .attempts
        .iter()
        .filter(|a| !a.upstream_ids.is_empty())
        .count();
    let reference = concat_reference((record.id.counter() & 0xFFFF) as u16, placed);
    let routing = node.routing();
    let started = std::time::Instant::now();
    // A failed receipt may have sent it again: not to an upstream that
    // already took it.
    let outcome = routing
        .router
        .send_skipping(&record.client, &submit, reference, &used_upstreams(&record))
        .await;
    count(node, &outcome, started.elapsed());
    match outcome {
        SendOutcome::Submitted {
            upstream,
            upstream_ids,
            attempts,
            ..
        } => record_submitted(node, &record, &upstream, &upstream_ids, &attempts, now).await,
        SendOutcome::Rejected {
            canonical,
            status,
            attempts,
        } => {
            // The vendor's own answer, when one answered: a message Tern
            // refused to send (no upstream can carry it) has none.
            let vendor = attempts
                .last()
                .filter(|a| a.status.is_some())
                .map(|a| format!("{} {status}", a.upstream));
            info!(id = %record.id, %status, reason = ?canonical.reason, "refused for good");
            for attempt in &attempts {
                while_full(|| {
                    node.store()
                        .record_attempt(record.id, stored(attempt, now), None, now)
                })
                .await?;
            }
            while_full(|| {
                node.store()
                    .finish(record.id, stored_outcome(&canonical, vendor.clone()), now)
            })
            .await?;
            refuse(node, &record, &canonical, vendor.as_deref()).await
        }
        SendOutcome::Retry { attempts, .. } => {
            let sends = sends_so_far(&record) + 1;
            let retry_at = now + routing.router.retry_delay(sends).as_millis() as u64;
            node.metrics().retry();
            record_given_up(node, &record, &attempts, now).await?;
            let attempt = match attempts.last() {
                Some(last) => stored(last, now),
                None => Attempt {
                    upstream: NO_UPSTREAM.to_owned(),
                    at_ms: now,
                    status: None,
                    upstream_ids: Vec::new(),
                    failure: Some(
                        "no upstream of the route available (none bound, or circuits open)"
                            .to_owned(),
                    ),
                },
            };
            while_full(|| {
                node.store()
                    .record_attempt(record.id, attempt.clone(), Some(retry_at), now)
            })
            .await
        }
        SendOutcome::NoRoute { .. } => end(node, &record, Reason::NoRoute).await,
    }
}

/// The upstream of an attempt recorded when no upstream of the route was
/// available: nothing was sent anywhere (cancel_sm relies on it).
pub(super) const NO_UPSTREAM: &str = "-";

/// Sends the message has had: every attempt of one send is recorded with
/// the send's time, so one per distinct time.
fn sends_so_far(record: &MessageRecord) -> u32 {
    let mut times: Vec<u64> = record.attempts.iter().map(|a| a.at_ms).collect();
    times.dedup();
    times.len() as u32
}

/// An attempt as the store keeps it; one given up always says why.
fn stored(attempt: &AttemptReport, now: u64) -> Attempt {
    Attempt {
        upstream: attempt.upstream.clone(),
        at_ms: now,
        status: attempt.status,
        upstream_ids: attempt.upstream_ids.clone(),
        failure: Some(
            attempt
                .failure
                .clone()
                .unwrap_or_else(|| "given up".to_owned()),
        ),
    }
}

/// Records a send the upstream took: the attempts given up on the way,
/// then this one with its upstream ids, and settles receipts held for
/// them if the write saw any.
async fn record_submitted(
    node: &Node,
    record: &MessageRecord,
    upstream: &str,
    upstream_ids: &[String],
    attempts: &[AttemptReport],
    now: u64,
) -> Result<(), StoreError> {
    // Until the attempt is written, a receipt under these ids waits
    // for the write instead of being held (`writing.rs`); the guard
    // leaves the table however this ends.
    let writing = node.attempt_writes().enter(upstream, upstream_ids);
    super::crash::point("dispatch.after_submit_resp");
    super::crash::stall("dispatch.after_submit_resp").await;
    info!(%upstream, ids = ?upstream_ids, "submitted");
    record_given_up(node, record, attempts, now).await?;
    let attempt = Attempt {
        upstream: upstream.to_owned(),
        at_ms: now,
        status: Some(0),
        upstream_ids: upstream_ids.to_vec(),
        failure: None,
    };
    // Whether a receipt came before this submit_sm_resp: the
    // store looks in the attempt's own write.
    let any_base = node
        .routing()
        .profile(upstream)
        .message_id
        .receipt_id_any_base;
    let held = while_full(|| {
        node.store()
            .record_attempt_seeing_held(record.id, attempt.clone(), None, now, any_base)
    })
    .await?;
    drop(writing);
    super::crash::point("dispatch.after_attempt");
    // After the store knows: a submit that starts waiting later
    // finds it submitted (`intake`).
    node.transactions().settle(record.id, Verdict::Sent);
    if held {
        for id in upstream_ids {
            settle_held(node, upstream, id).await?;
        }
    }
    Ok(())
}

/// Records the attempts of one send given up before its last, so `tern
/// trace` shows every upstream tried and why each was left, and receipts
/// for parts an abandoned attempt had placed are known as such.
async fn record_given_up(
    node: &Node,
    record: &MessageRecord,
    attempts: &[AttemptReport],
    now: u64,
) -> Result<(), tern_storage::StoreError> {
    let Some((_, given_up)) = attempts.split_last() else {
        return Ok(());
    };
    for attempt in given_up {
        while_full(|| {
            node.store()
                .record_attempt(record.id, stored(attempt, now), None, now)
        })
        .await?;
    }
    Ok(())
}

/// Runs a store write that records what an upstream answered, again and
/// again while the store is full ([`StoreError::Full`]), until it is
/// written or fails otherwise. That answer (the upstream's message ids
/// above all) exists only in memory: given up, the message would stay
/// claimed with no id its receipts could match, and be sent a second time
/// at the next start. The store's own probe notices space returning; this
/// only waits for it, at most [`FULL_RETRY_MAX`] between tries.
async fn while_full<T, F, Fut>(mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(20);
    loop {
        match write().await {
            Err(StoreError::Full { .. }) => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(FULL_RETRY_MAX);
            }
            other => return other,
        }
    }
}

/// The longest wait between two tries of [`while_full`].
const FULL_RETRY_MAX: Duration = Duration::from_secs(1);

/// Counts what the upstreams answered and how long the last one took.
fn count(node: &Node, outcome: &SendOutcome, elapsed: std::time::Duration) {
    let attempts = match outcome {
        SendOutcome::Submitted { attempts, .. }
        | SendOutcome::Rejected { attempts, .. }
        | SendOutcome::Retry { attempts, .. } => attempts.as_slice(),
        SendOutcome::NoRoute { .. } => &[],
    };
    let submitted = matches!(outcome, SendOutcome::Submitted { .. });
    for (n, attempt) in attempts.iter().enumerate() {
        let status = match attempt.status {
            Some(code) => tern_codec::CommandStatus::from_code(code)
                .name()
                .unwrap_or("vendor")
                .to_owned(),
            None => "no_answer".to_owned(),
        };
        node.metrics().upstream_submit(&attempt.upstream, &status);
        // Given up for the next upstream in the same send.
        if n + 1 < attempts.len() {
            node.metrics().failover(&attempt.upstream);
        }
    }
    if let (true, Some(last)) = (submitted, attempts.last()) {
        node.metrics().observe_upstream(&last.upstream, elapsed);
    }
}

/// Ends a message Tern gives up itself, with its receipt.
async fn end(
    node: &Node,
    record: &MessageRecord,
    reason: Reason,
) -> Result<(), tern_storage::StoreError> {
    let canonical = ended_by_tern(reason);
    // Claimed, it is sent by nobody until it is finished.
    let now = now_ms();
    while_full(|| {
        node.store()
            .finish(record.id, stored_outcome(&canonical, None), now)
    })
    .await?;
    refuse(node, record, &canonical, None).await
}

/// Tells a message's end to the client: in its submit's answer when a
/// transaction-mode submit still waits for it (then no receipt: the
/// client never had the id), else in a receipt if it asked for one. The
/// store already holds the end, so a submit that starts waiting after
/// this finds the message final (`intake`).
async fn refuse(
    node: &Node,
    record: &MessageRecord,
    canonical: &Canonical,
    vendor_code: Option<&str>,
) -> Result<(), tern_storage::StoreError> {
    let status = client_status(canonical, node.routing().router.config().no_route_status);
    if node
        .transactions()
        .settle(record.id, Verdict::Refused(status))
    {
        return Ok(());
    }
    queue_receipt(node, record, canonical, vendor_code).await
}
