//! `tern run`: the node. Wires the parts in one direction:
//!
//! ```text
//! client sessions ─▶ intake ─▶ store ─▶ dispatcher ─▶ router ─▶ upstreams
//!       ▲                        │                                  │
//!       └──── outbox ◀── store ◀─┴────────── receipts ◀─────────────┘
//! ```
//!
//! Intake answers a submit once it is durable; the dispatcher claims due
//! messages and records each outcome; receipts are stored before they are
//! acknowledged upstream; the outbox keeps what a client is owed until it
//! answers deliver_sm_resp.
//!
//! Each of the four stages ([`intake::Intake`], [`dispatch::Dispatch`],
//! [`receipts::Receipts`], [`outbox::Outbox`]) owns its tasks on a
//! `TaskTracker` of its own, and one stage reaches another only through a
//! typed handle on the [`node::Node`] they share: `node.dispatch().wake()`
//! (a message may be due), `node.outbox().news(client)` (a client is owed
//! something). Tasks of no stage run on the node's tracker
//! ([`node::Node::tasks`]): no task is started any other way
//! (`tests/tracked_tasks.rs`).
//!
//! Shutdown runs in the order that loses nothing: stop accepting and unbind
//! clients (their in-flight submits are stored and answered first), stop
//! claiming messages and let sends in flight get their upstream answers,
//! unbind upstreams, let the receipts being handled be stored, flush the
//! store; then wait briefly for what is left of every task.

mod admin;
mod auth;
mod cluster;
mod crash;
mod data_sm;
mod dispatch;
mod error;
mod handles;
mod http;
mod intake;
mod listeners;
mod maintenance;
mod mo;
mod multi;
mod node;
mod outbox;
mod receipts;
mod reload;
mod transaction;
mod upstreams;
mod writing;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_session::abuse::BindGuard;
use tern_session::smsc::{BoundSession, SmscConfig, SmscServer};
use tern_storage::{RedisOptions, RedisStore, RedisTopology, SledStore, Store};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use auth::Accounts;
pub use error::{DaemonError, UpstreamError};
pub use listeners::Listeners;
pub use reload::{ReloadStatus, Reloader};

use crate::admin::Metrics;
use crate::config::{Backend, Config};
use crate::notify;

/// How long shutdown waits for each stage: client submits to be stored,
/// then sends to be answered upstream.
const DRAIN_DEADLINE: Duration = upstreams::DRAIN_DEADLINE;

/// How long shutdown waits for the receipts being stored once the
/// upstreams unbound, and at its end for what is left of the stages' tasks
/// (acknowledgements of deliveries answered while it ran).
const LEFTOVERS: Duration = Duration::from_secs(2);

/// Runs a node with `config` on `listeners` (bound from the same config,
/// see [`Listeners::bind`]) until `shutdown`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), DaemonError> {
    listeners.check(&config)?;
    let Listeners {
        clients: client_sockets,
        admin: admin_socket,
        http: http_sockets,
        simulators: simulator_sockets,
    } = listeners;
    crash::init()?;
    let simulators = crate::sandbox::start(&config, simulator_sockets)?;
    let metrics = Arc::new(Metrics::new());
    let (store, cluster) = open_store(&config, &metrics).await?;
    // Every task of the node that no stage owns (listeners, reloads, the
    // cluster's leases, the watchdog); shutdown waits for them last.
    let tasks = TaskTracker::new();
    let gate = slot_gate(cluster.clone(), &tasks);

    let (inbound_tx, inbound) = mpsc::channel(1024);
    // Upstreams stop last, on their own token: sends in flight at shutdown
    // still get their answers.
    let upstreams_stop = CancellationToken::new();
    let mut upstream_set =
        upstreams::UpstreamSet::new(inbound_tx, upstreams_stop.clone(), gate, tasks.clone())
            .with_simulators(simulators.addresses());
    let (running, _) = upstream_set.apply(&config.upstreams)?;
    let routing = reload::routing_for(&config, running)?;
    let accounts = Accounts::new(config.clients.clone()).counting(metrics.clone());
    let node = node::Node::new(
        store,
        routing,
        accounts.clone(),
        metrics.clone(),
        cluster.clone(),
        tasks.clone(),
    );
    // Cancelled when this node can no longer be sure of its membership in
    // a shared store: it stops as on SIGTERM, and exits with an error.
    let fatal = CancellationToken::new();
    let cluster_stop = CancellationToken::new();
    let cluster_task = cluster.map(|cluster| spawn_cluster(&node, cluster, &cluster_stop, &fatal));

    let work_stop = CancellationToken::new();
    let stages = spawn_work(&node, inbound, &config, &work_stop);
    let hangups = reload::hangups();
    let (server, mut sessions) =
        serve_clients(&config, client_sockets, accounts, &shutdown, &tasks)?;

    let config = Arc::new(config);
    let reloader = Arc::new(Reloader::new(
        node.clone(),
        server.clone(),
        upstream_set,
        config.clone(),
    ));
    let admin_stop = CancellationToken::new();
    if let Some(socket) = admin_socket {
        let source = Arc::new(admin::Source::new(node.clone(), reloader.clone()));
        let token = config.admin_token.as_ref().map(|t| t.expose().to_owned());
        let stop = admin_stop.clone();
        serve_admin(socket, metrics.clone(), source, token, stop, &tasks);
    }
    // The HTTP API answers until the node drained; submits get 503 from
    // the moment shutdown starts.
    let http_stop = CancellationToken::new();
    http::start(
        &config,
        http_sockets,
        node.clone(),
        server.clone(),
        shutdown.clone(),
        http_stop.clone(),
    )
    .await?;
    spawn_reloads(&reloader, hangups, &shutdown, &tasks);
    let watchdog_stop = CancellationToken::new();
    spawn_watchdog(&node, &watchdog_stop);
    notify::ready("serving");

    let intake = intake::Intake::new(node.clone());
    loop {
        tokio::select! {
            Some(bound) = sessions.recv() => intake.serve(bound),
            () = shutdown.cancelled() => break,
            () = fatal.cancelled() => {
                shutdown.cancel();
                break;
            }
        }
    }

    info!("shutting down: unbinding clients");
    notify::stopping();
    intake.drain(DRAIN_DEADLINE).await;
    // Shutdown, second stage: stop claiming messages (and the outbox, the
    // MO sweep, the housekeeping), then let the sends in flight get their
    // upstream answers.
    work_stop.cancel();
    stages.dispatch.drain(DRAIN_DEADLINE).await;
    unbind_upstreams(&node, upstreams_stop).await;
    stages.receipts.drain(LEFTOVERS).await;
    admin_stop.cancel();
    http_stop.cancel();
    flush_and_leave(&node, cluster_stop, cluster_task).await?;
    simulators.stop();
    wait_leftovers(stages.outbox, tasks, watchdog_stop).await;
    if fatal.is_cancelled() {
        return Err(DaemonError::LostMembership {
            node: config.node_id,
        });
    }
    info!("stopped");
    Ok(())
}

/// Reloads on each SIGHUP `hangups` receives and on each change of the
/// config file, until `shutdown`.
fn spawn_reloads(
    reloader: &Arc<Reloader>,
    hangups: Option<tokio::signal::unix::Signal>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) {
    tasks.spawn(reload::on_sighup(
        reloader.clone(),
        hangups,
        shutdown.clone(),
    ));
    tasks.spawn(reload::watch_file(reloader.clone(), shutdown.clone()));
}

/// On a shared store, the upstream session slots as leases, renewed on
/// `tasks`.
fn slot_gate(
    cluster: Option<cluster::Cluster>,
    tasks: &TaskTracker,
) -> Option<Arc<dyn tern_router::upstream::SlotGate>> {
    cluster.map(|c| {
        let gate: Arc<dyn tern_router::upstream::SlotGate> =
            Arc::new(cluster::LeaseGate::new(c, tasks.clone()));
        gate
    })
}

/// Shutdown, after the stages drained: the store's final flush, then on a
/// shared store leaving the membership (`stop` ends `cluster_task`), so
/// other nodes need not wait for it.
async fn flush_and_leave(
    node: &node::Node,
    stop: CancellationToken,
    cluster_task: Option<JoinHandle<()>>,
) -> Result<(), DaemonError> {
    node.store()
        .flush()
        .await
        .map_err(|source| DaemonError::Store {
            what: "final flush of the store".to_owned(),
            source,
        })?;
    stop.cancel();
    if let Some(task) = cluster_task {
        let _ = task.await;
    }
    Ok(())
}

/// Shutdown, last: the outbox writes the acknowledgements of deliveries
/// answered while it ran, the watchdog stops (`watchdog`), and what is left
/// of the node's other tasks ends; each waited for up to [`LEFTOVERS`].
async fn wait_leftovers(outbox: outbox::Outbox, tasks: TaskTracker, watchdog: CancellationToken) {
    outbox.finished(LEFTOVERS).await;
    watchdog.cancel();
    tasks.close();
    if tokio::time::timeout(LEFTOVERS, tasks.wait()).await.is_err() {
        warn!("tasks still running after {LEFTOVERS:?} at the end of shutdown; going on");
    }
}

/// Starts the tasks that keep this node a member of a shared store: its
/// lease (cancelling `fatal` if it is lost), the upstream binds other nodes
/// hold, and the outbox events they publish. Returns the lease task, which
/// leaves the membership when `stop` is cancelled.
fn spawn_cluster(
    node: &Arc<node::Node>,
    cluster: cluster::Cluster,
    stop: &CancellationToken,
    fatal: &CancellationToken,
) -> JoinHandle<()> {
    let tasks = node.tasks();
    tasks.spawn(cluster::outbox_events(
        node.clone(),
        cluster.clone(),
        stop.clone(),
    ));
    tasks.spawn(cluster::watch_binds(
        node.clone(),
        cluster.clone(),
        stop.clone(),
    ));
    tasks.spawn(cluster::run(
        node.clone(),
        cluster,
        stop.clone(),
        fatal.clone(),
    ))
}

/// The stages that own tasks of their own, for shutdown to drain in
/// order.
struct Stages {
    receipts: receipts::Receipts,
    dispatch: dispatch::Dispatch,
    outbox: outbox::Outbox,
}

/// Starts the node's work: receipts from upstreams, the dispatch stage,
/// the outbox, the MO sweep and the housekeeping, all but receipts until
/// `stop`. Returns the stages shutdown drains.
fn spawn_work(
    node: &Arc<node::Node>,
    inbound: mpsc::Receiver<tern_router::upstream::UpstreamRequest>,
    config: &Config,
    stop: &CancellationToken,
) -> Stages {
    let receipts = receipts::Receipts::start(node.clone(), inbound);
    let dispatch = dispatch::Dispatch::start(node.clone(), stop.clone());
    let outbox = outbox::Outbox::start(node.clone(), stop.clone());
    node.tasks().spawn(mo::sweep(node.clone(), stop.clone()));
    node.tasks().spawn(maintenance::run(
        node.clone(),
        maintenance::Ages {
            retention: config.retention,
            unmatched_grace: config.unmatched_grace,
            outbox_max_age: config.outbox_max_age,
        },
        stop.clone(),
    ));
    Stages {
        receipts,
        dispatch,
        outbox,
    }
}

/// Serves SMPP on every client listener (`sockets`, in the order of
/// `config.listeners`) until `shutdown`. Returns the server (reload changes
/// its accounts and limits) and the sessions that bound, for intake.
fn serve_clients(
    config: &Config,
    sockets: Vec<TcpListener>,
    accounts: Accounts,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(Arc<SmscServer<Accounts>>, mpsc::Receiver<BoundSession>), DaemonError> {
    let smsc = SmscConfig {
        system_id: config.system_id.clone(),
        session: config.client_sessions.clone(),
        ..SmscConfig::default()
    };
    let server = match &config.bind_guard {
        Some(guard) => SmscServer::with_guard(
            smsc,
            accounts,
            BindGuard::new(guard.clone()).map_err(DaemonError::BindGuard)?,
        ),
        None => SmscServer::new(smsc, accounts),
    };
    let (sessions_tx, sessions) = mpsc::channel(64);
    for (listener, socket) in config.listeners.iter().zip(sockets) {
        let tls = listeners::acceptor(listener)?;
        let address = socket.local_addr().unwrap_or(listener.address);
        info!(%address, tls = tls.is_some(), "accepting clients");
        tasks.spawn(
            server
                .clone()
                .serve(socket, tls, sessions_tx.clone(), shutdown.clone()),
        );
    }
    Ok((server, sessions))
}

/// Serves the admin listener (metrics, health, JSON) until `stop`. A
/// failure is logged, as the node still moves messages without it.
fn serve_admin(
    socket: TcpListener,
    metrics: Arc<Metrics>,
    source: Arc<admin::Source>,
    token: Option<String>,
    stop: CancellationToken,
    tasks: &TaskTracker,
) {
    if let Ok(address) = socket.local_addr() {
        info!(%address, "admin listener (metrics, health, JSON)");
    }
    tasks.spawn(async move {
        if let Err(err) = crate::admin::serve_guarded(socket, metrics, source, token, stop).await {
            warn!(%err, "admin listener failed");
        }
    });
}

/// Feeds systemd's watchdog while the runtime runs this task in time and
/// the store answers, so a wedged node is restarted; through shutdown,
/// until `stop`.
fn spawn_watchdog(node: &Arc<node::Node>, stop: &CancellationToken) {
    let (watched, stop) = (node.clone(), stop.clone());
    let watchdog = notify::watchdog(move || {
        let node = watched.clone();
        async move {
            node.store()
                .get(tern_storage::TernId::from_u64(0))
                .await
                .is_ok()
        }
    });
    node.tasks().spawn(async move {
        tokio::select! {
            () = watchdog => {}
            () = stop.cancelled() => {}
        }
    });
}

/// Shutdown, third stage: unbind the upstreams, waiting up to two seconds
/// for their sessions to close, so upstreams see a clean unbind.
async fn unbind_upstreams(node: &node::Node, stop: CancellationToken) {
    info!("unbinding upstreams");
    stop.cancel();
    let deadline = Instant::now() + Duration::from_secs(2);
    let bound = || -> usize {
        let routing = node.routing();
        routing.router.upstreams().iter().map(|u| u.bound()).sum()
    };
    while bound() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Opens the configured store; on Redis, also joins the other nodes.
/// On sled, `metrics` is told each sync of the store's log.
async fn open_store(
    config: &Config,
    metrics: &Metrics,
) -> Result<(Store, Option<cluster::Cluster>), DaemonError> {
    let store_error = |what: String| move |source| DaemonError::Store { what, source };
    match &config.backend {
        Backend::Sled => {
            let mut options = config.store.clone();
            options.sync_observer = Some(metrics.store_sync_observer());
            let (store, recovery) =
                SledStore::open(&config.store_path, options).map_err(store_error(format!(
                    "opening the store at {}",
                    config.store_path.display()
                )))?;
            info!(path = %config.store_path.display(), requeued = recovery.requeued, "store open");
            Ok((Store::Sled(store), None))
        }
        Backend::Redis(redis) => {
            let addresses = redis.connect_addresses();
            let topology = if redis.cluster {
                RedisTopology::Cluster(addresses)
            } else {
                RedisTopology::Single(addresses.into_iter().next().unwrap_or_default())
            };
            let where_ = redis.addresses.join(", ");
            let store = RedisStore::connect(RedisOptions {
                topology,
                node: config.node_id,
                prefix: redis.prefix.clone(),
                durability: redis.durability,
                tls_ca: redis.tls_ca.as_ref().map(|ca| ca.pem.clone()),
            })
            .await
            .map_err(store_error(format!("opening the Redis store at {where_}")))?;
            // Join first: a second process with this node id is refused
            // before it could take the running node's claimed messages.
            let coordinator = store.coordinator();
            coordinator
                .join(redis.lease_ttl)
                .await
                .map_err(store_error(format!(
                    "joining as node {} on {where_}",
                    config.node_id
                )))?;
            let recovery = store.recover().await.map_err(store_error(format!(
                "recovering node {}'s messages on {where_}",
                config.node_id
            )))?;
            info!(
                redis = %where_,
                node = config.node_id,
                requeued = recovery.requeued,
                "store open (Redis), node joined"
            );
            Ok((
                Store::Redis(store),
                Some(cluster::Cluster {
                    coordinator,
                    lease_ttl: redis.lease_ttl,
                    node: config.node_id,
                    bound_elsewhere: Arc::default(),
                }),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// Shutdown's last step waits for a task on the node's tracker to end
    /// (here a store write still going), and stops the watchdog, which
    /// would run forever.
    #[tokio::test]
    async fn shutdown_waits_for_the_nodes_tasks_and_stops_the_watchdog() {
        let tasks = TaskTracker::new();
        let ended = Arc::new(AtomicBool::new(false));
        let flag = ended.clone();
        tasks.spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            flag.store(true, Ordering::SeqCst);
        });
        let watchdog = CancellationToken::new();
        let stop = watchdog.clone();
        let watchdog_ended = tasks.spawn(async move { stop.cancelled().await });
        wait_leftovers(outbox::Outbox::idle(), tasks, watchdog).await;
        assert!(
            ended.load(Ordering::SeqCst),
            "returned before the task ended"
        );
        assert!(watchdog_ended.is_finished(), "the watchdog still runs");
    }
}
