//! A node among several on one Redis store: its membership, taking over the
//! messages of nodes that died, and hearing that a client's outbox grew on
//! another node.
//!
//! Membership is a lease renewed every third of its time. A node that
//! cannot renew it for half of its time stops (exit status 1, systemd
//! restarts it): past that point other nodes may already treat its claimed
//! messages as orphans and send them, and a node that went on would send
//! them too. Sending twice is allowed by the contract (at least once);
//! losing is not, and nothing here drops a message: orphans go back to the
//! shared ready queue.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tern_router::upstream::{GateFuture, SlotGate};
use tern_storage::redis_store::coord::Coordinator;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

use super::node::Node;

/// What a node on a shared store needs to work with the others.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Leases, membership and notifications on the shared store.
    pub coordinator: Coordinator,
    /// How long a lease lasts without renewal.
    pub lease_ttl: Duration,
    /// This node's id.
    pub node: u16,
    /// Upstreams with a session slot held by another node (see
    /// [`watch_binds`]).
    pub bound_elsewhere: Arc<ArcSwap<HashSet<String>>>,
}

impl Cluster {
    /// The lease naming who delivers `client`'s outbox: one node at a time,
    /// so a client bound to several nodes gets each item once.
    pub fn outbox_lease(client: &str) -> String {
        format!("outbox:{client}")
    }
}

/// Keeps this node's membership and takes over orphans until `shutdown`;
/// cancels `fatal` when the membership is lost.
///
/// The two run side by side, not in turn: a sweep for orphans costs a
/// round trip per shard and claiming node (some 60 with three nodes), and
/// under load it outlasted the lease, so a renewal that waited for it came
/// after the lease had expired and every node stopped
/// (`tests/cluster_load.rs`).
pub async fn run(
    node: Arc<Node>,
    cluster: Cluster,
    shutdown: CancellationToken,
    fatal: CancellationToken,
) {
    let lost = CancellationToken::new();
    tokio::join!(
        keep_membership(&node, &cluster, &shutdown, [&lost, &fatal]),
        take_orphans(&node, &cluster, &shutdown, &lost),
    );
    if lost.is_cancelled() {
        return;
    }
    if let Err(err) = cluster.coordinator.leave().await {
        warn!(%err, "leaving the cluster failed; the membership expires by itself");
    }
}

/// Renews this node's membership every third of its lease until
/// `shutdown`; cancels `lost` (the orphan sweep and the node's `fatal`, at
/// once: a sweep under way must not delay the stop) and returns when it is
/// lost.
async fn keep_membership(
    node: &Node,
    cluster: &Cluster,
    shutdown: &CancellationToken,
    lost: [&CancellationToken; 2],
) {
    let every = cluster.lease_ttl / 3;
    let mut last_renewed = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
        }
        match cluster.coordinator.renew(cluster.lease_ttl).await {
            Ok(true) => {
                last_renewed = Instant::now();
                node.metrics().lease_renewal("ok");
            }
            Ok(false) => {
                node.metrics().lease_renewal("lost");
                error!("this node's membership lease was taken over; stopping");
                lost.iter().for_each(|t| t.cancel());
                return;
            }
            Err(err) => {
                node.metrics().lease_renewal("error");
                warn!(%err, "renewing this node's membership failed");
                if last_renewed.elapsed() > cluster.lease_ttl / 2 {
                    error!(
                        "membership not renewed for half of its lease time; stopping before \
                         other nodes take over its messages"
                    );
                    lost.iter().for_each(|t| t.cancel());
                    return;
                }
            }
        }
    }
}

/// Every third of the lease, puts back in the ready queue the messages
/// claimed by nodes whose membership ended, until `shutdown` or `lost`.
async fn take_orphans(
    node: &Node,
    cluster: &Cluster,
    shutdown: &CancellationToken,
    lost: &CancellationToken,
) {
    let every = cluster.lease_ttl / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return,
            () = lost.cancelled() => return,
        }
        match node.store().requeue_orphans().await {
            Ok(0) => {}
            Ok(n) => {
                info!(
                    messages = n,
                    "took over messages claimed by a node that left"
                );
                node.metrics().orphans_requeued(n);
                node.dispatch().wake();
            }
            Err(err) => warn!(%err, "looking for orphaned messages failed"),
        }
    }
}

/// How often the slot holders of other nodes are read: a message for an
/// upstream bound only elsewhere is left to that node, so this view must
/// follow slots that move.
const BINDS_INTERVAL: Duration = Duration::from_millis(500);

/// Keeps [`Cluster::bound_elsewhere`] current until `shutdown`.
pub async fn watch_binds(node: Arc<Node>, cluster: Cluster, shutdown: CancellationToken) {
    loop {
        let routing = node.routing();
        let mut names = Vec::new();
        let mut owners = Vec::new();
        for upstream in routing.router.upstreams() {
            for slot in 0..upstream.pool_size() {
                names.push(LeaseGate::lease(upstream.name(), slot));
                owners.push(upstream.name().to_owned());
            }
        }
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match cluster.coordinator.holders(&names).await {
            Ok(holders) => {
                let elsewhere: HashSet<String> = owners
                    .into_iter()
                    .zip(holders)
                    .filter(|(_, holder)| holder.is_some_and(|h| h != cluster.node))
                    .map(|(name, _)| name)
                    .collect();
                cluster.bound_elsewhere.store(Arc::new(elsewhere));
            }
            Err(err) => warn!(%err, "reading session slot holders failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(BINDS_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Wakes the outbox when another node put something in the outbox of a
/// client bound here, until `shutdown`. Without it the outbox still polls
/// every second; this makes relays across nodes as prompt as on one.
pub async fn outbox_events(node: Arc<Node>, cluster: Cluster, shutdown: CancellationToken) {
    let mut events = loop {
        match cluster.coordinator.outbox_events().await {
            Ok(events) => break events,
            Err(err) => {
                warn!(%err, "subscribing to outbox events failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    };
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(client) => {
                    if !node.receivers(&client).is_empty() {
                        node.outbox().news(&client);
                    }
                }
                None => return,
            },
            () = shutdown.cancelled() => return,
        }
    }
}

/// Upstream session slots as leases on the shared store: slot k of an
/// upstream is bound by one node at a time, so the nodes together never
/// hold more binds than the vendor allows (the pool's size, capped by the
/// profile). The lease is named after the upstream's configured name, which
/// every node must give the same account.
///
/// Each node holds at most its share of a pool, ceil(slots / nodes running
/// it), so the sessions, and with them the sending, the receipts and the
/// outbox deliveries, spread over the nodes instead of all going to the
/// node that started first. A node over its share (another joined) hands
/// its extra slots over: the session unbinds, then the lease is released,
/// and only a node under its share takes it. A node never takes a slot at
/// its share, so a slot handed over does not come back (no flapping).
#[derive(Debug)]
pub struct LeaseGate {
    shares: Arc<Shares>,
    /// Where the renewal of each slot held runs.
    tasks: TaskTracker,
}

/// What a node's gate knows of its pools: what it holds and how many nodes
/// share each pool.
#[derive(Debug)]
struct Shares {
    cluster: Cluster,
    state: Mutex<ShareState>,
}

#[derive(Debug, Default)]
struct ShareState {
    /// Per upstream: slots held or being taken, counted against the share.
    counted: HashMap<String, usize>,
    /// Per slot lease asked for: its renewal (stopped by `release`), its
    /// upstream, and whether it is counted.
    slots: HashMap<String, SlotState>,
    /// Per upstream: how many nodes run its pool, as last read.
    members: HashMap<String, Members>,
}

#[derive(Debug)]
struct SlotState {
    renewal: CancellationToken,
    upstream: String,
    counted: bool,
}

#[derive(Debug, Clone, Copy)]
struct Members {
    nodes: usize,
    read: Instant,
    said: Instant,
}

impl Shares {
    /// How often a waiting slot tries its lease, and how old the count of
    /// a pool's nodes may be: often enough that a slot freed by a node
    /// leaving is taken well within the lease time.
    fn retry(&self) -> Duration {
        (self.cluster.lease_ttl / 4).min(Duration::from_millis(500))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ShareState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This node's share of `upstream`'s `pool_size` slots: ceil(slots /
    /// nodes running the pool), from a count at most `retry` old. Says
    /// every third of the lease that this node runs the pool. A count that
    /// cannot be read keeps the last one (at first, this node alone: a
    /// node on its own must be able to bind).
    async fn share(&self, upstream: &str, pool_size: usize) -> usize {
        let now = Instant::now();
        let known = self.state().members.get(upstream).copied();
        let nodes = match known {
            Some(m) if now.duration_since(m.read) < self.retry() => m.nodes,
            _ => {
                let say =
                    known.is_none_or(|m| now.duration_since(m.said) >= self.cluster.lease_ttl / 3);
                let ttl = self.cluster.lease_ttl;
                let coordinator = &self.cluster.coordinator;
                match coordinator.pool_members(upstream, ttl, say).await {
                    Ok(nodes) => {
                        let said = match known {
                            Some(m) if !say => m.said,
                            _ => now,
                        };
                        let read = Members {
                            nodes,
                            read: now,
                            said,
                        };
                        self.state().members.insert(upstream.to_owned(), read);
                        nodes
                    }
                    Err(err) => {
                        warn!(%upstream, %err, "counting the nodes of a session pool failed");
                        known.map_or(1, |m| m.nodes)
                    }
                }
            }
        };
        pool_size.div_ceil(nodes.max(1))
    }

    /// Counts `lease` against `upstream`'s share if the node is under it.
    fn reserve(&self, upstream: &str, lease: &str, share: usize) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        let counted = state.counted.entry(upstream.to_owned()).or_default();
        match state.slots.get_mut(lease) {
            Some(slot) if !slot.counted && *counted < share => {
                slot.counted = true;
                *counted += 1;
                true
            }
            _ => false,
        }
    }

    /// Stops counting `lease` (lost, handed over, or released).
    fn uncount(&self, lease: &str) {
        let mut state = self.state();
        let state = &mut *state;
        if let Some(slot) = state.slots.get_mut(lease).filter(|s| s.counted) {
            slot.counted = false;
            if let Some(n) = state.counted.get_mut(&slot.upstream) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// Whether `lease` should be handed over: the node holds more of its
    /// upstream than `share`. Uncounts it if so, in the same lock, so of
    /// several slots over the share only the excess goes.
    fn hand_over(&self, lease: &str, share: usize) -> bool {
        let over = {
            let state = self.state();
            state.slots.get(lease).is_some_and(|slot| {
                slot.counted && state.counted.get(&slot.upstream).copied().unwrap_or(0) > share
            })
        };
        if over {
            self.uncount(lease);
        }
        over
    }
}

impl LeaseGate {
    /// Slots as leases of `cluster`; their renewals run on `tasks`.
    pub fn new(cluster: Cluster, tasks: TaskTracker) -> Self {
        Self {
            shares: Arc::new(Shares {
                cluster,
                state: Mutex::default(),
            }),
            tasks,
        }
    }

    fn lease(upstream: &str, slot: usize) -> String {
        format!("upstream:{upstream}:{slot}")
    }
}

impl SlotGate for LeaseGate {
    fn hold(
        &self,
        upstream: &str,
        slot: usize,
        pool_size: usize,
        stop: CancellationToken,
    ) -> GateFuture<Option<CancellationToken>> {
        let lease = Self::lease(upstream, slot);
        let upstream = upstream.to_owned();
        let shares = self.shares.clone();
        let renewal = CancellationToken::new();
        let tasks = self.tasks.clone();
        shares.state().slots.insert(
            lease.clone(),
            SlotState {
                renewal: renewal.clone(),
                upstream: upstream.clone(),
                counted: false,
            },
        );
        Box::pin(async move {
            let ttl = shares.cluster.lease_ttl;
            loop {
                let share = shares.share(&upstream, pool_size).await;
                if shares.reserve(&upstream, &lease, share) {
                    match shares.cluster.coordinator.acquire(&lease, ttl).await {
                        Ok(true) => break,
                        Ok(false) => {}
                        Err(err) => warn!(%lease, %err, "taking a session slot lease failed"),
                    }
                    shares.uncount(&lease);
                }
                tokio::select! {
                    () = tokio::time::sleep(shares.retry()) => {}
                    () = stop.cancelled() => return None,
                }
            }
            let lost = CancellationToken::new();
            let held = Held {
                upstream,
                pool_size,
                lease,
            };
            tasks.spawn(keep(shares, held, renewal, lost.clone()));
            Some(lost)
        })
    }

    fn release(&self, upstream: &str, slot: usize) -> GateFuture<()> {
        let lease = Self::lease(upstream, slot);
        self.shares.uncount(&lease);
        if let Some(slot) = self.shares.state().slots.remove(&lease) {
            slot.renewal.cancel();
        }
        let cluster = self.shares.cluster.clone();
        Box::pin(async move {
            if let Err(err) = cluster.coordinator.release(&lease).await {
                warn!(%lease, %err, "releasing a session slot lease failed; it expires");
            }
        })
    }
}

/// A slot lease this node holds.
#[derive(Debug)]
struct Held {
    upstream: String,
    pool_size: usize,
    lease: String,
}

/// Renews a held slot lease every third of its time until `renewal` is
/// cancelled (by `release`, once the session has unbound); cancels `lost`
/// when it was taken over, or could not be renewed for half of its time
/// (the session then unbinds while the lease is still ours, so two binds
/// never overlap), or when the node holds more than its share and hands
/// this slot over (renewing it still until the session has unbound, for
/// the same reason).
async fn keep(
    shares: Arc<Shares>,
    held: Held,
    renewal: CancellationToken,
    lost: CancellationToken,
) {
    let ttl = shares.cluster.lease_ttl;
    let lease = &held.lease;
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(ttl / 3) => {}
            () = renewal.cancelled() => return,
        }
        if !lost.is_cancelled() {
            let share = shares.share(&held.upstream, held.pool_size).await;
            if shares.hand_over(lease, share) {
                info!(%lease, share, "more session slots held here than this node's share; handing one over");
                lost.cancel();
            }
        }
        match shares.cluster.coordinator.acquire(lease, ttl).await {
            Ok(true) => renewed = Instant::now(),
            Ok(false) => {
                warn!(%lease, "session slot lease taken by another node");
                shares.uncount(lease);
                lost.cancel();
                return;
            }
            Err(err) => {
                warn!(%lease, %err, "renewing a session slot lease failed");
                if renewed.elapsed() > ttl / 2 {
                    shares.uncount(lease);
                    lost.cancel();
                    return;
                }
            }
        }
    }
}
