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
//! Shutdown runs in the order that loses nothing: stop accepting and unbind
//! clients (their in-flight submits are stored and answered first), stop
//! claiming messages and let sends in flight get their upstream answers,
//! unbind upstreams, flush the store.

mod admin;
mod auth;
mod cluster;
mod crash;
mod data_sm;
mod dispatch;
mod error;
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
    let gate = cluster.clone().map(|c| {
        let gate: Arc<dyn tern_router::upstream::SlotGate> = Arc::new(cluster::LeaseGate::new(c));
        gate
    });

    let (inbound_tx, inbound) = mpsc::channel(1024);
    // Upstreams stop last, on their own token: sends in flight at shutdown
    // still get their answers.
    let upstreams_stop = CancellationToken::new();
    let mut upstream_set = upstreams::UpstreamSet::new(inbound_tx, upstreams_stop.clone(), gate)
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
    );
    // Cancelled when this node can no longer be sure of its membership in
    // a shared store: it stops as on SIGTERM, and exits with an error.
    let fatal = CancellationToken::new();
    let cluster_stop = CancellationToken::new();
    let cluster_task = cluster.map(|cluster| spawn_cluster(&node, cluster, &cluster_stop, &fatal));

    let work_stop = CancellationToken::new();
    let sends = TaskTracker::new();
    let dispatcher = spawn_work(&node, inbound, &config, &work_stop, &sends);
    let (server, mut sessions) = serve_clients(&config, client_sockets, accounts, &shutdown)?;

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
        serve_admin(socket, metrics.clone(), source, token, admin_stop.clone());
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
    tokio::spawn(reload::on_sighup(reloader.clone(), shutdown.clone()));
    tokio::spawn(reload::watch_file(reloader.clone(), shutdown.clone()));
    spawn_watchdog(&node);
    notify::ready("serving");

    let intake = TaskTracker::new();
    loop {
        tokio::select! {
            Some(bound) = sessions.recv() => {
                intake.spawn(intake::serve_client(node.clone(), bound, intake.clone()));
            }
            () = shutdown.cancelled() => break,
            () = fatal.cancelled() => {
                shutdown.cancel();
                break;
            }
        }
    }

    info!("shutting down: unbinding clients");
    notify::stopping();
    drain_clients(intake).await;
    drain_sends(work_stop, dispatcher, sends).await;
    unbind_upstreams(&node, upstreams_stop).await;
    admin_stop.cancel();
    http_stop.cancel();
    node.store
        .flush()
        .await
        .map_err(|source| DaemonError::Store {
            what: "final flush of the store".to_owned(),
            source,
        })?;
    cluster_stop.cancel();
    if let Some(task) = cluster_task {
        // Leaves the membership, so other nodes need not wait for it.
        let _ = task.await;
    }
    simulators.stop();
    if fatal.is_cancelled() {
        return Err(DaemonError::LostMembership {
            node: config.node_id,
        });
    }
    info!("stopped");
    Ok(())
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
    tokio::spawn(cluster::outbox_events(
        node.clone(),
        cluster.clone(),
        stop.clone(),
    ));
    tokio::spawn(cluster::watch_binds(
        node.clone(),
        cluster.clone(),
        stop.clone(),
    ));
    tokio::spawn(cluster::run(
        node.clone(),
        cluster,
        stop.clone(),
        fatal.clone(),
    ))
}

/// Starts the node's work: receipts from upstreams, the dispatcher (whose
/// sends join `sends`), the outbox, the MO sweep and the housekeeping.
/// Returns the dispatcher, which shutdown waits for before it waits for the
/// sends: no send starts after that.
fn spawn_work(
    node: &Arc<node::Node>,
    inbound: mpsc::Receiver<tern_router::upstream::UpstreamRequest>,
    config: &Config,
    stop: &CancellationToken,
    sends: &TaskTracker,
) -> JoinHandle<()> {
    tokio::spawn(receipts::run(node.clone(), inbound));
    let dispatcher = tokio::spawn(dispatch::run(node.clone(), stop.clone(), sends.clone()));
    tokio::spawn(outbox::run(node.clone(), stop.clone()));
    tokio::spawn(mo::sweep(node.clone(), stop.clone()));
    tokio::spawn(maintenance::run(
        node.clone(),
        maintenance::Ages {
            retention: config.retention,
            unmatched_grace: config.unmatched_grace,
            outbox_max_age: config.outbox_max_age,
        },
        stop.clone(),
    ));
    dispatcher
}

/// Serves SMPP on every client listener (`sockets`, in the order of
/// `config.listeners`) until `shutdown`. Returns the server (reload changes
/// its accounts and limits) and the sessions that bound, for intake.
fn serve_clients(
    config: &Config,
    sockets: Vec<TcpListener>,
    accounts: Accounts,
    shutdown: &CancellationToken,
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
        tokio::spawn(
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
) {
    if let Ok(address) = socket.local_addr() {
        info!(%address, "admin listener (metrics, health, JSON)");
    }
    tokio::spawn(async move {
        if let Err(err) = crate::admin::serve_guarded(socket, metrics, source, token, stop).await {
            warn!(%err, "admin listener failed");
        }
    });
}

/// Feeds systemd's watchdog while the runtime runs this task in time and
/// the store answers, so a wedged node is restarted.
fn spawn_watchdog(node: &Arc<node::Node>) {
    let node = node.clone();
    tokio::spawn(notify::watchdog(move || {
        let node = node.clone();
        async move {
            node.store
                .get(tern_storage::TernId::from_u64(0))
                .await
                .is_ok()
        }
    }));
}

/// Shutdown, first stage: the listeners unbind every client session on
/// `shutdown`; each session's submits finish storing and are answered
/// before its task ends. Waits up to [`DRAIN_DEADLINE`] for them.
async fn drain_clients(intake: TaskTracker) {
    let deadline = Instant::now() + DRAIN_DEADLINE;
    intake.close();
    if tokio::time::timeout_at(deadline.into(), intake.wait())
        .await
        .is_err()
    {
        warn!("client sessions still open after {DRAIN_DEADLINE:?}; going on");
    }
}

/// Shutdown, second stage: stop claiming messages, then wait up to
/// [`DRAIN_DEADLINE`] for the sends in flight to get their upstream
/// answers. One left unanswered is sent again at the next start.
async fn drain_sends(stop: CancellationToken, dispatcher: JoinHandle<()>, sends: TaskTracker) {
    info!("waiting for sends in flight");
    stop.cancel();
    let _ = dispatcher.await;
    sends.close();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    if tokio::time::timeout_at(deadline.into(), sends.wait())
        .await
        .is_err()
    {
        warn!("sends still unanswered after {DRAIN_DEADLINE:?}; they will be sent again at the next start");
    }
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
