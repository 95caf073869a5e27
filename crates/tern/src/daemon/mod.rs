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
mod data_sm;
mod dispatch;
mod intake;
mod maintenance;
mod mo;
mod multi;
mod node;
mod outbox;
mod receipts;
mod relay;
mod reload;
mod transaction;
mod upstreams;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tern_session::abuse::BindGuard;
use tern_session::smsc::{SmscConfig, SmscServer};
use tern_storage::{RedisOptions, RedisStore, RedisTopology, SledStore, Store};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use auth::Accounts;
pub use reload::{ReloadStatus, Reloader};

use crate::admin::Metrics;
use crate::config::{Backend, Config};
use crate::notify;

/// How long shutdown waits for each stage: client submits to be stored,
/// then sends to be answered upstream.
const DRAIN_DEADLINE: Duration = upstreams::DRAIN_DEADLINE;

/// Runs a node with `config` until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let simulators = crate::sandbox::start(&config).await?;

    let (store, cluster) = open_store(&config).await?;
    let gate = cluster.clone().map(|c| {
        let gate: Arc<dyn tern_router::upstream::SlotGate> = Arc::new(cluster::LeaseGate::new(c));
        gate
    });

    let metrics = Arc::new(Metrics::new());
    let (inbound_tx, inbound) = mpsc::channel(1024);
    // Upstreams stop last, on their own token: sends in flight at shutdown
    // still get their answers.
    let upstreams_stop = CancellationToken::new();
    let mut upstream_set = upstreams::UpstreamSet::new(inbound_tx, upstreams_stop.clone(), gate);
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
    let cluster_task = cluster.map(|cluster| {
        tokio::spawn(cluster::outbox_events(
            node.clone(),
            cluster.clone(),
            cluster_stop.clone(),
        ));
        tokio::spawn(cluster::watch_binds(
            node.clone(),
            cluster.clone(),
            cluster_stop.clone(),
        ));
        tokio::spawn(cluster::run(
            node.clone(),
            cluster,
            cluster_stop.clone(),
            fatal.clone(),
        ))
    });

    let work_stop = CancellationToken::new();
    let sends = TaskTracker::new();
    tokio::spawn(receipts::run(node.clone(), inbound));
    let dispatcher = tokio::spawn(dispatch::run(
        node.clone(),
        work_stop.clone(),
        sends.clone(),
    ));
    tokio::spawn(outbox::run(node.clone(), work_stop.clone()));
    tokio::spawn(mo::sweep(node.clone(), work_stop.clone()));
    tokio::spawn(maintenance::run(
        node.clone(),
        maintenance::Ages {
            retention: config.retention,
            unmatched_grace: config.unmatched_grace,
            outbox_max_age: config.outbox_max_age,
        },
        work_stop.clone(),
    ));

    let smsc = SmscConfig {
        system_id: config.system_id.clone(),
        session: config.client_sessions.clone(),
        ..SmscConfig::default()
    };
    let server = match &config.bind_guard {
        Some(guard) => SmscServer::with_guard(
            smsc,
            accounts,
            BindGuard::new(guard.clone()).context("[bind_guard]")?,
        ),
        None => SmscServer::new(smsc, accounts),
    };
    let (sessions_tx, mut sessions) = mpsc::channel(64);
    for listener in &config.listeners {
        let socket = TcpListener::bind(listener.address)
            .await
            .with_context(|| format!("listening on {}", listener.address))?;
        let tls = match &listener.tls {
            Some(tls) => Some(
                tls.load()
                    .with_context(|| format!("TLS of listener {}", listener.address))?,
            ),
            None => None,
        };
        info!(address = %listener.address, tls = tls.is_some(), "accepting clients");
        tokio::spawn(
            server
                .clone()
                .serve(socket, tls, sessions_tx.clone(), shutdown.clone()),
        );
    }
    drop(sessions_tx);

    let config = Arc::new(config);
    let reloader = Arc::new(Reloader::new(
        node.clone(),
        server.clone(),
        upstream_set,
        config.clone(),
    ));
    let admin_stop = CancellationToken::new();
    if let Some(address) = config.admin {
        let socket = TcpListener::bind(address)
            .await
            .with_context(|| format!("admin listener on {address}"))?;
        info!(%address, "admin listener (metrics, health, JSON)");
        let source = Arc::new(admin::Source::new(node.clone(), reloader.clone()));
        let stop = admin_stop.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            if let Err(err) = crate::admin::serve(socket, metrics, source, stop).await {
                warn!(%err, "admin listener failed");
            }
        });
    }
    tokio::spawn(reload::on_sighup(reloader.clone(), shutdown.clone()));
    tokio::spawn(reload::watch_file(reloader.clone(), shutdown.clone()));
    {
        let node = node.clone();
        tokio::spawn(notify::watchdog(move || {
            let node = node.clone();
            // The runtime ran this task in time, and the store answers.
            async move { node.store.get(tern_storage::TernId::from_u64(0)).is_ok() }
        }));
    }
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
    let deadline = Instant::now() + DRAIN_DEADLINE;
    // The listeners unbind every client session on `shutdown`; each
    // session's submits finish storing and are answered before its task ends.
    intake.close();
    if tokio::time::timeout_at(deadline.into(), intake.wait())
        .await
        .is_err()
    {
        warn!("client sessions still open after {DRAIN_DEADLINE:?}; going on");
    }
    info!("waiting for sends in flight");
    work_stop.cancel();
    let _ = dispatcher.await;
    sends.close();
    let deadline = Instant::now() + DRAIN_DEADLINE;
    if tokio::time::timeout_at(deadline.into(), sends.wait())
        .await
        .is_err()
    {
        warn!("sends still unanswered after {DRAIN_DEADLINE:?}; they will be sent again at the next start");
    }
    info!("unbinding upstreams");
    upstreams_stop.cancel();
    let deadline = Instant::now() + Duration::from_secs(2);
    let bound = || -> usize {
        let routing = node.routing();
        routing.router.upstreams().iter().map(|u| u.bound()).sum()
    };
    while bound() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin_stop.cancel();
    node.store.flush().context("final flush of the store")?;
    cluster_stop.cancel();
    if let Some(task) = cluster_task {
        // Leaves the membership, so other nodes need not wait for it.
        let _ = task.await;
    }
    simulators.stop();
    if fatal.is_cancelled() {
        anyhow::bail!("stopped: this node lost its membership in the shared store");
    }
    info!("stopped");
    Ok(())
}

/// Opens the configured store; on Redis, also joins the other nodes.
async fn open_store(config: &Config) -> anyhow::Result<(Store, Option<cluster::Cluster>)> {
    match &config.backend {
        Backend::Sled => {
            let (store, recovery) = SledStore::open(&config.store_path, config.store.clone())
                .with_context(|| format!("opening the store at {}", config.store_path.display()))?;
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
            .with_context(|| format!("opening the Redis store at {where_}"))?;
            // Join first: a second process with this node id is refused
            // before it could take the running node's claimed messages.
            let coordinator = store.coordinator();
            coordinator
                .join(redis.lease_ttl)
                .await
                .with_context(|| format!("joining as node {} on {where_}", config.node_id))?;
            let recovery = store
                .recover()
                .await
                .with_context(|| format!("recovering node {}'s messages", config.node_id))?;
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
