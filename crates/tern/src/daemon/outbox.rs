//! Delivering what clients are owed (receipts, MO) to their receiving
//! sessions; an item leaves the outbox only when the client answered
//! deliver_sm_resp with ESME_ROK, so nothing is lost while a client is away.
//!
//! Delivery is a pipeline, not rounds: each client has up to
//! [`IN_FLIGHT`] items out at once (its sessions' windows pace them), and
//! new items go out as soon as they are stored, without waiting for the
//! ones before them to be answered. Per client the outbox keeps the places
//! in flight and a cursor, the last place read, so a look reads only what
//! came since. Places are handed out before items are stored, so an item
//! can land just behind the cursor (two receipts stored at once). So news
//! of an item (sent once it is stored) also schedules a read from the
//! earliest place the news named [`RESCAN`] later (from the oldest item
//! when news named none), which finds any item the cursor passed: none
//! waits longer than that for its first send. A refusal starts the cursor
//! over too.
//!
//! Acknowledgements are written in batches: a client's answers gather
//! while its previous batch is being written (and for the moment the
//! outbox lets news gather), then go in one store write. An item stays
//! "in flight" until its acknowledgement is written, so it is never read
//! and sent again meanwhile. A crash before the write only means the
//! client gets those items again at the next start (at least once).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use tern_codec::Pdu;
use tern_session::RequestError;
use tern_storage::OutboxItem;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::cluster::Cluster;
use super::handles::Since;
use super::node::Node;

/// How often every client's outbox is listed (between, only the clients
/// with news or room are looked at).
const FULL_SCAN: Duration = Duration::from_secs(1);

/// How long after news of an item its client's outbox is read again from
/// the earliest place news named (many news coalesce into one such read).
const RESCAN: Duration = Duration::from_millis(20);

/// While deliveries are out, how long news gathers before a look.
const GATHER: Duration = Duration::from_millis(1);

/// Items read per client and look.
const BATCH: usize = 256;

/// Items out per client at once, over all its receiving sessions.
const IN_FLIGHT: usize = 1024;

/// First wait after a client failed to take a delivery; doubles per
/// failure in a row, up to [`RETRY_MAX`].
const RETRY_INITIAL: Duration = Duration::from_secs(1);
/// Longest wait between tries for a client that keeps refusing.
const RETRY_MAX: Duration = Duration::from_secs(60);

/// What the outbox knows of one client's deliveries.
#[derive(Debug, Default)]
struct Client {
    /// Places sent and not answered (or answered, ack not yet stored).
    in_flight: HashSet<u64>,
    /// The last place read; `None` reads from the oldest.
    cursor: Option<u64>,
    /// A read from behind the cursor that news asked for.
    rescan: Option<Rescan>,
    /// The last look stopped for want of room: look again when items end.
    capped: bool,
    /// Refusals in a row, and when to try again.
    failures: u32,
    until: Option<Instant>,
    /// Places the client took whose acknowledgement is not written yet
    /// (still in `in_flight`).
    acked: Vec<u64>,
    /// A batch of acknowledgements is being written for this client.
    acking: bool,
}

impl Client {
    fn waiting(&self, now: Instant) -> bool {
        self.until.is_some_and(|until| until > now)
    }

    /// Notes news from `since`: a read from there is due [`RESCAN`] after
    /// the first news not yet read.
    fn news(&mut self, since: Since, now: Instant) {
        self.rescan = Some(match self.rescan {
            Some(asked) => Rescan {
                from: asked.from.earliest(since),
                ..asked
            },
            None => Rescan {
                at: now + RESCAN,
                from: since,
            },
        });
    }

    /// Whether the read news asked for is due by `now`.
    fn rescan_due(&self, now: Instant) -> bool {
        self.rescan.is_some_and(|asked| asked.at <= now)
    }

    /// Once the read the news asked for is due, moves the cursor back to
    /// just before the earliest place news named (`None`, the oldest item,
    /// when some news named none).
    fn rescan_if_due(&mut self, now: Instant) {
        if !self.rescan_due(now) {
            return;
        }
        let from = self.rescan.take().map(|asked| asked.from);
        self.cursor = match (from, self.cursor) {
            (Some(Since::Place(place)), Some(cursor)) => {
                place.checked_sub(1).map(|before| before.min(cursor))
            }
            _ => None,
        };
    }
}

/// A read of a client's outbox from behind its cursor, asked for by news:
/// when it is due, and from where.
#[derive(Debug, Clone, Copy)]
struct Rescan {
    at: Instant,
    from: Since,
}

/// One delivery's end.
struct Delivered {
    client: String,
    seq: u64,
    taken: bool,
}

/// One batch of acknowledgements written (or not).
struct AckWritten {
    client: String,
    seqs: Vec<u64>,
}

/// Batches of acknowledgements being written, polled by the outbox's task.
type AckWrites = FuturesUnordered<BoxFuture<'static, AckWritten>>;

/// Deliveries out, polled by the outbox's own task: each is first polled
/// in the order it was added, so a session's deliver_sm go out in the
/// order the items were stored (its window's permits are taken in turn).
type Deliveries = FuturesUnordered<BoxFuture<'static, Delivered>>;

/// The outbox stage: its loop and, after shutdown, the task that
/// acknowledges the deliveries still out, on one tracker it owns.
#[derive(Debug)]
pub struct Outbox {
    tasks: TaskTracker,
}

impl Outbox {
    /// Delivers what `node`'s clients are owed (woken by its
    /// [`super::handles::OutboxHandle`]) until `stop`.
    pub fn start(node: Arc<Node>, stop: CancellationToken) -> Self {
        let tasks = TaskTracker::new();
        tasks.spawn(run(node, stop, tasks.clone()));
        Self { tasks }
    }

    /// An outbox stage with no task, for tests of shutdown.
    #[cfg(test)]
    pub fn idle() -> Self {
        Self {
            tasks: TaskTracker::new(),
        }
    }

    /// Waits up to `deadline` (after `stop`) for the acknowledgements of
    /// deliveries answered during shutdown to be written; what is left
    /// unwritten is delivered again at the next start.
    pub async fn finished(self, deadline: Duration) {
        self.tasks.close();
        let _ = tokio::time::timeout(deadline, self.tasks.wait()).await;
    }
}

/// Runs until `shutdown`. Deliveries already out then go on in a task of
/// their own on `tasks` (an answered one is still acknowledged); an item
/// whose answer never came stays in the outbox for the next start.
async fn run(node: Arc<Node>, shutdown: CancellationToken, tasks: TaskTracker) {
    let mut clients: HashMap<String, Client> = HashMap::new();
    let mut deliveries = Deliveries::new();
    let mut acks = AckWrites::new();
    let mut receivers_seen = 0;
    let mut last_full: Option<Instant> = None;
    // Clients to look at in the next pass besides the news.
    let mut again: HashSet<String> = HashSet::new();
    loop {
        if again.is_empty() {
            tokio::select! {
                () = node.outbox().woken() => {}
                Some(done) = deliveries.next(), if !deliveries.is_empty() => {
                    ended(&mut clients, done);
                }
                Some(done) = acks.next(), if !acks.is_empty() => {
                    written(&mut clients, &mut again, done);
                }
                () = tokio::time::sleep_until(next_look(&clients).into()) => {}
                () = shutdown.cancelled() => break,
            }
            if !deliveries.is_empty() {
                // Busy: let news and answers gather for a moment (the
                // deliveries going on meanwhile), so a look reads many new
                // items rather than one per receipt stored.
                let gather = tokio::time::sleep(GATHER);
                tokio::pin!(gather);
                loop {
                    tokio::select! {
                        () = &mut gather => break,
                        Some(done) = deliveries.next(), if !deliveries.is_empty() => {
                            ended(&mut clients, done);
                        }
                        Some(done) = acks.next(), if !acks.is_empty() => {
                            written(&mut clients, &mut again, done);
                        }
                    }
                }
            }
        } else if shutdown.is_cancelled() {
            break;
        }
        while let Some(Some(done)) = deliveries.next().now_or_never() {
            ended(&mut clients, done);
        }
        while let Some(Some(done)) = acks.next().now_or_never() {
            written(&mut clients, &mut again, done);
        }
        write_acks(&node, &mut clients, &mut acks);
        let receivers = node.outbox().receivers_bound();
        if receivers != receivers_seen {
            // A session bound to receive: whoever failed may take it now.
            receivers_seen = receivers;
            for client in clients.values_mut() {
                client.failures = 0;
                client.until = None;
            }
        }
        // Everyone, now and then (a restart, a backoff that ended);
        // otherwise those with news, room, or a read from the oldest due.
        let full = last_full.is_none_or(|at| at.elapsed() >= FULL_SCAN);
        let now = Instant::now();
        let mut look: HashSet<String> = HashSet::new();
        for (name, since) in node.outbox().take_news() {
            clients.entry(name.clone()).or_default().news(since, now);
            look.insert(name);
        }
        look.extend(again.drain());
        look.extend(
            clients
                .iter()
                .filter(|(_, c)| c.rescan_due(now))
                .map(|(name, _)| name.clone()),
        );
        if full {
            last_full = Some(Instant::now());
            match node.store().outbox_clients().await {
                Ok(listed) => {
                    clients.retain(|name, c| listed.contains(name) || !c.in_flight.is_empty());
                    look.extend(listed);
                }
                Err(err) => debug!(%err, "listing outboxes failed; trying later"),
            }
        }
        for name in look {
            let client = clients.entry(name.clone()).or_default();
            if client.waiting(now) {
                // Read from the oldest once the wait ends anyway.
                client.rescan = None;
                continue;
            }
            let mut done = Vec::new();
            if send_more(&node, &name, client, &mut deliveries, &mut done).await {
                again.insert(name);
            }
            for done in done {
                ended(&mut clients, done);
            }
        }
    }
    tasks.spawn(finish(node, clients, deliveries, acks));
}

/// After shutdown: writes the acknowledgements gathered or being written,
/// and acknowledges each delivery still out as it is answered, while the
/// process lives.
async fn finish(
    node: Arc<Node>,
    clients: HashMap<String, Client>,
    mut deliveries: Deliveries,
    mut acks: AckWrites,
) {
    let gathered = async {
        for (name, client) in &clients {
            if !client.acked.is_empty() {
                let _ = node.store().outbox_ack_many(name, &client.acked).await;
            }
        }
        while acks.next().await.is_some() {}
    };
    let late = async {
        while let Some(done) = deliveries.next().await {
            if done.taken {
                let _ = node.store().outbox_ack(&done.client, done.seq).await;
            }
        }
    };
    tokio::join!(gathered, late);
}

/// Starts one store write of the acknowledgements each client gathered,
/// for every client with none being written already (those gather until
/// theirs is written: the slower the store, the larger the batch).
///
/// Each write is a task of its own; `acks` only collects its end. Polled
/// by the outbox's loop alone, a write moved only while the loop waited in
/// its `select!`, not while it awaited a read of an outbox or the listing
/// of clients: on Redis (a read and a write per batch, each a round trip)
/// the acknowledgements fell seconds behind, the items stayed out, the
/// client's [`IN_FLIGHT`] filled, and receipts reached the client only
/// once the dispatcher had sent everything.
fn write_acks(node: &Arc<Node>, clients: &mut HashMap<String, Client>, acks: &mut AckWrites) {
    for (name, client) in clients.iter_mut() {
        if client.acking || client.acked.is_empty() {
            continue;
        }
        client.acking = true;
        let seqs = std::mem::take(&mut client.acked);
        let written = ack_task(node.clone(), name.clone(), seqs.clone());
        let client = name.clone();
        acks.push(
            async move {
                // A write that panicked leaves its items stored: they are
                // sent again later, as after a failed write.
                written.await.unwrap_or(AckWritten { client, seqs })
            }
            .boxed(),
        );
    }
}

/// Writes one batch of a client's acknowledgements, as a task.
fn ack_task(
    node: Arc<Node>,
    client: String,
    seqs: Vec<u64>,
) -> tokio::task::JoinHandle<AckWritten> {
    let tasks = node.tasks().clone();
    tasks.spawn(async move {
        node.metrics().outbox_ack_write();
        if let Err(err) = node.store().outbox_ack_many(&client, &seqs).await {
            // Still stored: the client gets them again later.
            debug!(client, %err, "acknowledgements not written; sent again later");
        }
        super::crash::point("outbox.after_ack");
        AckWritten { client, seqs }
    })
}

/// Notes a batch of acknowledgements written: those items are no longer
/// out, which may make room for more.
fn written(clients: &mut HashMap<String, Client>, again: &mut HashSet<String>, done: AckWritten) {
    let Some(client) = clients.get_mut(&done.client) else {
        return;
    };
    client.acking = false;
    for seq in &done.seqs {
        client.in_flight.remove(seq);
    }
    let room = client.capped && client.in_flight.len() <= IN_FLIGHT - BATCH;
    if room {
        client.capped = false;
    }
    // Room for more, or answers gathered meanwhile for the next batch.
    if room || !client.acked.is_empty() {
        again.insert(done.client);
    }
}

/// When the outbox must look again at the latest: the next listing, or an
/// earlier read from the oldest item that news asked for.
fn next_look(clients: &HashMap<String, Client>) -> Instant {
    let listing = Instant::now() + FULL_SCAN;
    clients
        .values()
        .filter_map(|c| c.rescan.map(|asked| asked.at))
        .fold(listing, Instant::min)
}

/// Notes one delivery's end: a taken item joins its client's gathered
/// acknowledgements; a refusal starts (or lengthens) the client's backoff
/// and reads its outbox from the oldest item again when it ends.
fn ended(clients: &mut HashMap<String, Client>, done: Delivered) {
    let Some(client) = clients.get_mut(&done.client) else {
        return;
    };
    let now = Instant::now();
    if done.taken {
        // Out until its acknowledgement is written (`written`).
        client.acked.push(done.seq);
        if !client.waiting(now) {
            client.failures = 0;
            client.until = None;
        }
        return;
    }
    client.in_flight.remove(&done.seq);
    if !client.waiting(now) {
        client.failures += 1;
        let wait = RETRY_INITIAL
            .saturating_mul(1 << (client.failures - 1).min(16))
            .min(RETRY_MAX);
        debug!(
            client = done.client,
            failures = client.failures,
            ?wait,
            "client did not take its deliveries; waiting"
        );
        client.until = Some(now + wait);
        client.cursor = None;
    }
}

/// Sends what `name` is owed beyond what is out, spread over its
/// receiving sessions. Returns whether more may be waiting now. The
/// deliveries that end while it reads the outbox go into `done`.
async fn send_more(
    node: &Arc<Node>,
    name: &str,
    client: &mut Client,
    deliveries: &mut Deliveries,
    done: &mut Vec<Delivered>,
) -> bool {
    client.rescan_if_due(Instant::now());
    let sessions = node.receivers(name);
    // Receipts of HTTP submits with a callback go to it (http::webhook).
    let hooks = super::http::webhook::Hooks::of(node, name);
    if let Some(cluster) = node.cluster() {
        // On a shared store one node delivers a client's outbox at a time
        // (the others would send the same items); a node with no receiver
        // of that client lets another take over at once.
        let lease = Cluster::outbox_lease(name);
        if sessions.is_empty() && hooks.is_none() {
            if let Err(err) = cluster.coordinator.release(&lease).await {
                debug!(client = name, %err, "releasing the outbox lease failed; it expires");
            }
            return false;
        }
        match cluster.coordinator.acquire(&lease, cluster.lease_ttl).await {
            Ok(true) => {}
            Ok(false) => return false,
            Err(err) => {
                debug!(client = name, %err, "outbox lease not taken; trying later");
                return false;
            }
        }
    }
    if sessions.is_empty() && hooks.is_none() {
        return false;
    }
    let room = IN_FLIGHT.saturating_sub(client.in_flight.len()).min(BATCH);
    if room == 0 {
        client.capped = true;
        return false;
    }
    let Ok(items) = reading(
        node.store().outbox_pending(name, client.cursor, room),
        deliveries,
        done,
    )
    .await
    else {
        return false;
    };
    let full = items.len() == room;
    for (n, (seq, item)) in items.into_iter().enumerate() {
        client.cursor = Some(client.cursor.map_or(seq, |c| c.max(seq)));
        let call = match &hooks {
            Some(hooks) => super::http::webhook::route(node, hooks, &item).await,
            None => None,
        };
        // An SMPP receipt waits for a receiver (the next look after one
        // binds reads from the oldest item again).
        if (call.is_none() && sessions.is_empty()) || !client.in_flight.insert(seq) {
            continue;
        }
        let session = sessions.get(n % sessions.len().max(1)).cloned();
        let (node, name, hooks) = (node.clone(), name.to_owned(), hooks.clone());
        deliveries.push(
            async move {
                let taken = match (call, hooks, session) {
                    (Some(Some(call)), Some(hooks), _) => {
                        super::http::webhook::deliver(&node, &name, &hooks, call).await
                    }
                    // A callback no longer allowed: dropped (logged).
                    (Some(None), _, _) => true,
                    (None, _, Some(session)) => deliver(&node, &name, &session, item).await,
                    _ => false,
                };
                Delivered {
                    client: name,
                    seq,
                    taken,
                }
            }
            .boxed(),
        );
    }
    if full && client.in_flight.len() >= IN_FLIGHT {
        client.capped = true;
        return false;
    }
    full
}

/// Awaits `read` while polling the deliveries out, whose ends go into
/// `done`. A delivery moves only when polled: one waiting for its
/// session's window takes a permit, and one answered counts as ended, only
/// then. Left unpolled while the loop waited for each read of an outbox
/// (a round trip on Redis, tens of ms on a busy server), the deliveries
/// crawled: about 1 000 a second reached the client during a 4 × 100
/// bench while 3 000 receipts a second were stored, and the rest came in
/// a burst once the dispatcher had sent everything.
async fn reading<T>(
    read: impl std::future::Future<Output = T>,
    deliveries: &mut Deliveries,
    done: &mut Vec<Delivered>,
) -> T {
    tokio::pin!(read);
    loop {
        tokio::select! {
            biased;
            answer = &mut read => return answer,
            Some(ended) = deliveries.next(), if !deliveries.is_empty() => done.push(ended),
        }
    }
}

/// Sends one item. Returns whether the client took it (ESME_ROK), or it
/// is to go anyway; either way the outbox's task then removes it from the
/// store with the batch of acknowledgements it gathers.
async fn deliver(
    node: &Node,
    client: &str,
    session: &tern_session::SessionHandle,
    item: OutboxItem,
) -> bool {
    let Ok(pdu) = Pdu::decode(item.pdu.clone()) else {
        // Undecodable: drop rather than block the outbox forever.
        return true;
    };
    let stat = receipt_stat(&pdu.body);
    match session.request(pdu.body).await {
        Ok(resp) if resp.command_status.is_ok() => {
            super::crash::point("outbox.after_resp");
            node.metrics().receipt_relayed(client, stat);
            true
        }
        Err(RequestError::Timeout { .. }) => {
            // A client that does not answer within the response timeout
            // is taken for gone (it may have stopped reading its socket):
            // its session is closed, so its window's deliveries come back
            // to the outbox and nothing more is written to a socket nobody
            // reads. It gets them all when it binds again.
            if !session.is_closed() {
                warn!(
                    client,
                    timeout = ?session.config().response_timeout,
                    "deliver_sm unanswered within the response timeout; closing the session, its deliveries stay in the outbox"
                );
                session.close();
            }
            false
        }
        other => {
            debug!(client, ?other, "deliver_sm not taken; kept for later");
            false
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// While the outbox reads its store, the deliveries out go on: one
    /// that ends meanwhile is counted (its acknowledgement then gathers)
    /// before the read returns. Awaiting the read alone, none is.
    #[tokio::test]
    async fn deliveries_go_on_while_the_outbox_reads() {
        let mut deliveries = Deliveries::new();
        for seq in 0..3 {
            deliveries.push(
                async move {
                    Delivered {
                        client: "acme".to_owned(),
                        seq,
                        taken: true,
                    }
                }
                .boxed(),
            );
        }
        let mut done = Vec::new();
        let read = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            7
        };
        assert_eq!(reading(read, &mut deliveries, &mut done).await, 7);
        let seqs: Vec<u64> = done.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert!(deliveries.is_empty());
    }

    /// News of an item stored behind the cursor moves the cursor back to
    /// just before the earliest place named, once the read is due, not to
    /// the oldest item: with 1 000 items out, a read from the oldest read
    /// them all again to find the one or two new ones. News naming no
    /// place (another node, a receiver bound) still reads from the oldest.
    #[test]
    fn a_read_news_asked_for_starts_at_the_earliest_place_named() {
        let now = Instant::now();
        let mut client = Client {
            cursor: Some(900),
            ..Client::default()
        };
        client.news(Since::Place(450), now);
        client.news(Since::Place(700), now);
        client.rescan_if_due(now);
        assert_eq!(client.cursor, Some(900), "not due yet");
        client.rescan_if_due(now + RESCAN);
        assert_eq!(client.cursor, Some(449), "from the earliest place named");
        assert!(client.rescan.is_none());

        // A place after the cursor: the read from the cursor finds it.
        client.news(Since::Place(1000), now);
        client.rescan_if_due(now + RESCAN);
        assert_eq!(client.cursor, Some(449));

        client.news(Since::Place(460), now);
        client.news(Since::Oldest, now);
        client.rescan_if_due(now + RESCAN);
        assert_eq!(client.cursor, None, "news naming no place: the oldest");

        let mut first = Client {
            cursor: Some(10),
            ..Client::default()
        };
        first.news(Since::Place(0), now);
        first.rescan_if_due(now + RESCAN);
        assert_eq!(first.cursor, None, "place 0 is the oldest");
    }

    /// A batch of acknowledgements is written while nobody polls the
    /// outbox loop's `acks` (the loop awaiting a read of an outbox or the
    /// listing of clients): the write is a task of its own. Polled only
    /// through `acks`, as before, it never starts here.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acknowledgements_are_written_while_the_loop_is_busy() {
        let dir = tern_testkit::TempDir::new("outbox-acks");
        let node = super::super::receipts::tests::test_node(dir.path());
        let item = OutboxItem {
            pdu: bytes::Bytes::from_static(b"deliver_sm"),
            message: None,
            stored_ms: 1,
        };
        let seq = node
            .store()
            .outbox_push("acme", &item)
            .await
            .expect("stored");
        let mut clients: HashMap<String, Client> = HashMap::new();
        let client = clients.entry("acme".to_owned()).or_default();
        client.in_flight.insert(seq);
        client.acked.push(seq);
        let mut acks = AckWrites::new();
        write_acks(&node, &mut clients, &mut acks);
        assert_eq!(acks.len(), 1);
        let mut left = 1;
        for _ in 0..500 {
            left = node
                .store()
                .outbox_pending("acme", None, 10)
                .await
                .expect("reads")
                .len();
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(left, 0, "the acknowledgement is not written");
        // Its end still reaches the loop.
        let done = acks.next().await.expect("the write's end");
        assert_eq!(
            (done.client.as_str(), done.seqs.as_slice()),
            ("acme", &[seq][..])
        );
    }
}
