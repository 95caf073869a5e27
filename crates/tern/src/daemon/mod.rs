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

mod auth;
mod dispatch;
mod intake;
mod node;
mod outbox;
mod receipts;
mod relay;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tern_router::engine::Router;
use tern_router::upstream::{Upstream, UpstreamConfig};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::UpstreamTls;
use tern_session::smsc::{SmscConfig, SmscServer};
use tern_session::throttle::{AdaptiveConfig, AdaptiveRate};
use tern_session::SessionConfig;
use tern_sim::smsc::{SimConfig, Simulator};
use tern_storage::SledStore;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use auth::Accounts;

use crate::config::Config;

/// Runs a node with `config` until `shutdown`.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut simulators = Vec::new();
    for sim in &config.simulators {
        let handle = Simulator::start(SimConfig {
            listen: sim.address,
            behaviour: sim.behaviour.clone(),
            ..SimConfig::default()
        })
        .await
        .with_context(|| format!("starting simulator {} on {}", sim.name, sim.address))?;
        info!(name = sim.name, address = %handle.addr(), "sandbox simulator started");
        simulators.push(handle);
    }

    let (store, recovery) = SledStore::open(&config.store_path, config.store.clone())
        .with_context(|| format!("opening the store at {}", config.store_path.display()))?;
    info!(path = %config.store_path.display(), requeued = recovery.requeued, "store open");

    let (inbound_tx, inbound) = mpsc::channel(1024);
    let mut upstreams = Vec::new();
    let mut profiles = HashMap::new();
    for spec in &config.upstreams {
        let pacer = match spec.rate {
            Some(rate) => Some(Arc::new(
                AdaptiveRate::new(AdaptiveConfig::new(rate))
                    .with_context(|| format!("upstream {} rate", spec.name))?,
            )),
            None => None,
        };
        let tls = match &spec.tls {
            Some(tls) => Some(UpstreamTls {
                connector: tls
                    .load()
                    .with_context(|| format!("upstream {} TLS", spec.name))?,
                server_name: tls.server_name.clone(),
            }),
            None => None,
        };
        let limits = &spec.profile.limits;
        let timers = &spec.profile.timers;
        let session = SessionConfig {
            window: limits.window.map_or(10, |w| w as usize),
            enquire_link_interval: Some(Duration::from_secs(
                timers.enquire_link_secs.unwrap_or(30),
            )),
            ..SessionConfig::default()
        };
        upstreams.push(Upstream::start(
            UpstreamConfig {
                name: spec.name.clone(),
                host: spec.host.clone(),
                port: spec.port,
                tls,
                bind: spec.bind.clone(),
                sessions: spec.sessions,
                session,
                backoff: BackoffConfig {
                    initial: Duration::from_millis(500),
                    max: Duration::from_secs(30),
                    multiplier: 2.0,
                    jitter: 0.3,
                },
                pacer,
                breaker: Default::default(),
                profile: spec.profile.clone(),
            },
            inbound_tx.clone(),
            shutdown.clone(),
        ));
        profiles.insert(spec.name.clone(), spec.profile.clone());
    }
    let generic = config
        .profiles
        .get("generic")
        .cloned()
        .context("the generic profile is missing")?;
    let router = Router::new(
        config.table.clone(),
        upstreams,
        Vec::new(),
        generic,
        config.router.clone(),
    );
    let node = node::Node::new(store, router, profiles);

    tokio::spawn(receipts::run(node.clone(), inbound));
    tokio::spawn(dispatch::run(node.clone(), shutdown.clone()));
    tokio::spawn(outbox::run(node.clone(), shutdown.clone()));

    let server = SmscServer::new(
        SmscConfig {
            system_id: config.system_id.clone(),
            ..SmscConfig::default()
        },
        Accounts(config.clients.clone()),
    );
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
    loop {
        tokio::select! {
            Some(bound) = sessions.recv() => {
                tokio::spawn(intake::serve_client(node.clone(), bound));
            }
            () = shutdown.cancelled() => break,
        }
    }
    info!("shutting down");
    // Give sessions a moment to unbind, then make sure everything is on disk.
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.store.flush().context("final flush of the store")?;
    drop(simulators);
    Ok(())
}
