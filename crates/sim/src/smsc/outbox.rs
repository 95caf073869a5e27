//! Per-account delivery: receipts and MO messages wait in a bounded queue
//! until due, then go as deliver_sm to one of the account's receiving
//! sessions (RX or TRX), round robin; with none bound they wait until one
//! binds. A session that is unbinding takes no new requests, so it counts
//! as gone: items falling due meanwhile wait for the next receiver.
//!
//! One worker task per account takes items in queue order. Each item is
//! due at a time fixed when queued; a change of the receipt delay applies
//! to items queued after it and never lets an item overtake an earlier
//! one. A deliver_sm that gets no answer (the session closed, the response
//! timed out) goes back to the front of the queue; one answered with an
//! error status goes to the back, due again after the redelivery delay (as
//! SMSCs retry deliveries for days). Either way up to [`MAX_ATTEMPTS`]
//! tries, then it is given up and counted.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tern_codec::pdu::DeliverSm;
use tern_codec::Body;
use tern_session::{RequestError, SessionHandle, SessionState};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::journal::{Journal, Recorded};
use super::stats::SimStats;

/// Tries per item before it is given up.
pub(crate) const MAX_ATTEMPTS: u32 = 10;

/// deliver_sm requests in flight per account: bounds the tasks a worker
/// spawns when receivers are slow (each session's window bounds the wire).
const IN_FLIGHT_PER_ACCOUNT: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Receipt or MO: which counters an item moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Receipt,
    Mo,
}

/// One deliver_sm waiting to go.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) kind: Kind,
    pub(crate) due: Instant,
    pub(crate) pdu: DeliverSm,
    pub(crate) attempts: u32,
    /// For a receipt, the id of the message it reports (for the journal).
    pub(crate) receipt_of: Option<String>,
}

/// The receiving sessions of an account, in bind order.
#[derive(Debug, Default)]
struct Receivers {
    list: Vec<(u64, SessionHandle)>,
    /// Round-robin position.
    next: usize,
}

/// One account's queue and receivers.
#[derive(Debug)]
pub(crate) struct Outbox {
    /// The account it delivers to (for the journal).
    account: String,
    queue: Mutex<VecDeque<Item>>,
    receivers: Mutex<Receivers>,
    /// Woken when an item is queued or a receiver binds.
    changed: Notify,
    in_flight: Arc<Semaphore>,
    limit: usize,
    /// Wait before sending again an item the receiver refused.
    redelivery_delay: Duration,
}

impl Outbox {
    fn new(account: &str, limit: usize, redelivery_delay: Duration) -> Self {
        Self {
            account: account.to_owned(),
            queue: Mutex::default(),
            receivers: Mutex::default(),
            changed: Notify::new(),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_PER_ACCOUNT)),
            limit: limit.max(1),
            redelivery_delay,
        }
    }

    /// Queues an item; false when the queue is full (the item is dropped).
    pub(crate) fn push(&self, item: Item) -> bool {
        {
            let mut queue = lock(&self.queue);
            if queue.len() >= self.limit {
                return false;
            }
            queue.push_back(item);
        }
        self.changed.notify_one();
        true
    }

    /// Puts back an item that got no answer, first in line.
    fn retry_now(&self, item: Item) {
        lock(&self.queue).push_front(item);
        self.changed.notify_one();
    }

    /// Puts back an item the receiver refused, last in line and due after
    /// the redelivery delay. Past the limit all the same: it was counted
    /// in when first queued.
    fn retry_later(&self, mut item: Item) {
        item.due = Instant::now() + self.redelivery_delay;
        lock(&self.queue).push_back(item);
        self.changed.notify_one();
    }

    /// Items waiting.
    pub(crate) fn queued(&self) -> usize {
        lock(&self.queue).len()
    }

    pub(crate) fn add_receiver(&self, id: u64, handle: SessionHandle) {
        lock(&self.receivers).list.push((id, handle));
        self.changed.notify_one();
    }

    pub(crate) fn remove_receiver(&self, id: u64) {
        lock(&self.receivers).list.retain(|(i, _)| *i != id);
    }

    /// The next bound receiver, round robin; forgets closed ones, skips
    /// those unbinding (they refuse new requests, and trying them would use
    /// up an item's tries in a moment).
    fn pick(&self) -> Option<SessionHandle> {
        let mut receivers = lock(&self.receivers);
        receivers.list.retain(|(_, h)| !h.is_closed());
        let bound: Vec<usize> = (0..receivers.list.len())
            .filter(|&i| matches!(receivers.list[i].1.state(), SessionState::Bound(_)))
            .collect();
        if bound.is_empty() {
            return None;
        }
        let turn = receivers.next % bound.len();
        receivers.next = turn + 1;
        Some(receivers.list[bound[turn]].1.clone())
    }
}

/// Every account's outbox, created on first use with its worker.
#[derive(Debug)]
pub(crate) struct Outboxes {
    map: Mutex<HashMap<String, Arc<Outbox>>>,
    limit: usize,
    redelivery_delay: Duration,
    stats: Arc<SimStats>,
    journal: Arc<Journal>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Outboxes {
    pub(crate) fn new(
        limit: usize,
        redelivery_delay: Duration,
        stats: Arc<SimStats>,
        journal: Arc<Journal>,
        tasks: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            map: Mutex::default(),
            limit,
            redelivery_delay,
            stats,
            journal,
            tasks,
            shutdown,
        }
    }

    /// The outbox of `account`, starting its worker the first time.
    pub(crate) fn get(&self, account: &str) -> Arc<Outbox> {
        let mut map = lock(&self.map);
        if let Some(outbox) = map.get(account) {
            return outbox.clone();
        }
        let outbox = Arc::new(Outbox::new(account, self.limit, self.redelivery_delay));
        map.insert(account.to_owned(), outbox.clone());
        self.tasks.spawn(work(
            outbox.clone(),
            self.stats.clone(),
            self.journal.clone(),
            self.tasks.clone(),
            self.shutdown.clone(),
        ));
        outbox
    }

    /// Items waiting for `account`.
    pub(crate) fn queued(&self, account: &str) -> usize {
        lock(&self.map).get(account).map_or(0, |o| o.queued())
    }
}

/// The account's worker: takes due items in order and hands each to a
/// receiver, until shutdown.
async fn work(
    outbox: Arc<Outbox>,
    stats: Arc<SimStats>,
    journal: Arc<Journal>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let front = lock(&outbox.queue).front().map(|item| item.due);
        let Some(due) = front else {
            tokio::select! {
                () = outbox.changed.notified() => continue,
                () = shutdown.cancelled() => return,
            }
        };
        if due > Instant::now() {
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = shutdown.cancelled() => return,
            }
        }
        let Some(receiver) = outbox.pick() else {
            tokio::select! {
                () = outbox.changed.notified() => continue,
                () = shutdown.cancelled() => return,
            }
        };
        let permit = tokio::select! {
            permit = outbox.in_flight.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
        let Some(item) = lock(&outbox.queue).pop_front() else {
            continue;
        };
        let outbox = outbox.clone();
        let stats = stats.clone();
        let journal = journal.clone();
        tasks.spawn(async move {
            deliver(&outbox, &stats, &journal, receiver, item).await;
            drop(permit);
        });
    }
}

/// Sends one item and counts the outcome; puts it back when unanswered.
async fn deliver(
    outbox: &Outbox,
    stats: &SimStats,
    journal: &Journal,
    receiver: SessionHandle,
    mut item: Item,
) {
    let (sent, acked) = counters(stats, item.kind);
    SimStats::bump(sent);
    match receiver.request(Body::DeliverSm(item.pdu.clone())).await {
        Ok(resp) if resp.command_status.is_ok() => {
            SimStats::bump(acked);
            if let Some(message_id) = item.receipt_of {
                journal.push(Recorded::ReceiptAcked {
                    account: outbox.account.clone(),
                    message_id,
                });
            }
        }
        Ok(resp) => {
            SimStats::bump(&stats.deliveries_refused);
            item.attempts += 1;
            if item.attempts < MAX_ATTEMPTS {
                debug!(status = %resp.command_status, attempts = item.attempts, "deliver_sm refused; retried later");
                outbox.retry_later(item);
            } else {
                debug!(status = %resp.command_status, "deliver_sm refused; given up");
                SimStats::bump(&stats.deliveries_failed);
            }
        }
        // Refused before it was sent (the session began unbinding after it
        // was picked): not a try; it waits for a bound receiver.
        Err(RequestError::NotAllowed { .. }) => outbox.retry_now(item),
        Err(err) => {
            item.attempts += 1;
            if item.attempts < MAX_ATTEMPTS {
                debug!(%err, attempts = item.attempts, "deliver_sm unanswered; queued again");
                outbox.retry_now(item);
            } else {
                debug!(%err, "deliver_sm unanswered; given up");
                SimStats::bump(&stats.deliveries_failed);
            }
        }
    }
}

fn counters(stats: &SimStats, kind: Kind) -> (&AtomicU64, &AtomicU64) {
    match kind {
        Kind::Receipt => (&stats.receipts_sent, &stats.receipts_acked),
        Kind::Mo => (&stats.mo_sent, &stats.mo_acked),
    }
}
