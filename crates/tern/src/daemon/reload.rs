//! Hot reload: SIGHUP, `systemctl reload` (which sends SIGHUP) and a watch
//! on the config file re-read the configuration, validate it whole, and put
//! it in force for the next message. A file with any error changes nothing:
//! the error goes to the log, the `tern_reload_failed` metric and
//! `/api/reload`, and the running config stays.
//!
//! What a reload changes: routes, profiles, router settings and rates for
//! the next message; upstreams (see [`super::upstreams`]); accounts for the
//! next bind. Bound client sessions stay bound and get their account's new
//! rates and window, unless the account was removed, the password they
//! bound with is no longer listed (a rotation lists both), or the account's
//! `binds` no longer lists the type they bound as: those are unbound. Listeners, the store, the
//! node, the admin listener, logging and simulators take effect at restart;
//! a reload says so.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tern_router::engine::Router;
use tern_router::upstream::Upstream;
use tern_session::smsc::SmscServer;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::auth::Accounts;
use super::error::DaemonError;
use super::node::{Node, Routing};
use super::upstreams::UpstreamSet;
use crate::config::diff::{diff, Change};
use crate::config::Config;
use crate::notify;

/// The routing for `config` over running `upstreams`.
pub fn routing_for(config: &Config, upstreams: Vec<Arc<Upstream>>) -> Result<Routing, DaemonError> {
    let generic = config
        .profiles
        .get("generic")
        .cloned()
        .ok_or(DaemonError::NoGenericProfile)?;
    let profiles = config
        .upstreams
        .iter()
        .map(|s| (s.name.clone(), s.profile.clone()))
        .collect();
    Ok(Routing {
        router: Router::new(
            config.table.clone(),
            upstreams,
            Vec::new(),
            generic.clone(),
            config.router.clone(),
        )
        // Time-window routes follow the wall clock.
        .with_clock(tern_router::engine::Clock::system()),
        profiles,
        generic: Arc::new(generic),
    })
}

/// How the last reload went, for `/api/reload` and `tern status`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// Configs put in force since start (the first is 1).
    pub generation: u64,
    /// When the last attempt ended (seconds since the Unix epoch).
    pub at: Option<u64>,
    /// Whether it succeeded.
    pub ok: bool,
    /// Why not.
    pub error: Option<String>,
    /// What it changed.
    pub changes: Vec<Change>,
}

/// Applies new configurations to a running node, one at a time.
#[derive(Debug)]
pub struct Reloader {
    node: Arc<Node>,
    server: Arc<SmscServer<Accounts>>,
    upstreams: tokio::sync::Mutex<UpstreamSet>,
    current: Mutex<Arc<Config>>,
    status: Mutex<ReloadStatus>,
    /// The file's content as last read (applied or refused), so the file
    /// watch does not read again what a SIGHUP already did.
    last_read: Mutex<Option<Vec<u8>>>,
}

impl Reloader {
    /// A reloader for a node started with `config`.
    pub fn new(
        node: Arc<Node>,
        server: Arc<SmscServer<Accounts>>,
        upstreams: UpstreamSet,
        config: Arc<Config>,
    ) -> Self {
        // What the running config was compiled from, not the file as it is
        // now: a file changed since the daemon read it must still look
        // changed to the watch.
        let last_read = config
            .source
            .is_file()
            .then(|| config.source_text.0.clone());
        Self {
            last_read: Mutex::new(last_read),
            node,
            server,
            upstreams: tokio::sync::Mutex::new(upstreams),
            current: Mutex::new(config),
            status: Mutex::new(ReloadStatus {
                generation: 1,
                at: Some(unix_now()),
                ok: true,
                ..ReloadStatus::default()
            }),
        }
    }

    /// The config in force.
    pub fn current(&self) -> Arc<Config> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// How the last reload went.
    pub fn status(&self) -> ReloadStatus {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Where the running config came from, unless it was the embedded one.
    pub fn path(&self) -> Option<PathBuf> {
        let source = self.current().source.clone();
        source.is_file().then_some(source)
    }

    /// Re-reads the config file and applies it, telling systemd, the log
    /// and the metrics how it went.
    pub async fn reload(&self, why: &str) -> ReloadStatus {
        let Some(path) = self.path() else {
            warn!(
                why,
                "reload asked, but the daemon runs on its embedded default: nothing to re-read"
            );
            return self.status();
        };
        notify::reloading();
        let outcome = match std::fs::read(&path) {
            Err(err) => Err(format!("{}: cannot read the file: {err}", path.display())),
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                *self.last_read.lock().unwrap_or_else(|p| p.into_inner()) = Some(bytes);
                match Config::from_text(&path, &text) {
                    Ok(config) => self.apply(config).await,
                    Err(errors) => Err(format!("{errors}")),
                }
            }
        };
        let metrics = self.node.metrics();
        let status = {
            let mut status = self.status.lock().unwrap_or_else(|p| p.into_inner());
            status.at = Some(unix_now());
            match outcome {
                Ok(changes) => {
                    status.generation += 1;
                    status.ok = true;
                    status.error = None;
                    info!(
                        why,
                        generation = status.generation,
                        changes = %changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "),
                        "configuration reloaded"
                    );
                    status.changes = changes;
                }
                Err(err) => {
                    status.ok = false;
                    error!(why, path = %path.display(), "reload refused, running config unchanged:\n{err}");
                    status.error = Some(err);
                    status.changes = Vec::new();
                }
            }
            status.clone()
        };
        metrics.reload(status.ok);
        metrics.set_config_generation(status.generation);
        notify::ready(if status.ok {
            "serving; config reloaded"
        } else {
            "serving; last reload refused"
        });
        status
    }

    /// Puts `config` in force; `Err` leaves everything as it was.
    async fn apply(&self, config: Config) -> Result<Vec<Change>, String> {
        let old = self.current();
        let changes = diff(&old, &config);
        for change in changes.iter().filter(|c| c.restart) {
            warn!(%change, "not applied by a reload");
        }
        let mut upstreams = self.upstreams.lock().await;
        let (running, _) = upstreams
            .apply(&config.upstreams)
            .map_err(|e| e.to_string())?;
        let routing = routing_for(&config, running).map_err(|e| e.to_string())?;
        self.node.set_routing(routing);
        upstreams.drain_replaced();
        drop(upstreams);

        let accounts = self.node.accounts();
        accounts.replace(config.clients.clone());
        for session in self.node.clients() {
            if !accounts.still_valid(&session.account, session.credential) {
                info!(
                    account = session.account,
                    "account removed or its password changed: unbinding its session"
                );
                let handle = session.handle.clone();
                self.node
                    .tasks()
                    .spawn(async move { handle.unbind().await });
            } else if !accounts.allows(&session.account, session.bind_type) {
                // Its submits in our hands are answered first (`unbind`
                // waits for them); a peer that does not answer the unbind
                // is closed after the grace.
                warn!(
                    account = session.account,
                    bind_type = session.bind_type.name(),
                    peer = %session.handle.peer().map_or_else(|| "-".to_owned(), |p| p.to_string()),
                    "the account may no longer bind as this type: unbinding its session"
                );
                let handle = session.handle.clone();
                self.node
                    .tasks()
                    .spawn(async move { handle.unbind().await });
            } else if let Some(account) = accounts
                .current()
                .iter()
                .find(|a| a.system_id == session.account)
            {
                let admission = accounts.admission(account, session.credential);
                session
                    .handle
                    .set_inbound_limits(self.server.limits_for(&admission));
                session
                    .handle
                    .set_inbound_window(self.server.window_for(&admission));
            }
        }
        self.node.dispatch().wake();
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
        Ok(changes)
    }

    /// What reloading `text` (as the file at `path`) would change, without
    /// applying it: `tern check-config --diff` asks the running daemon, so
    /// the candidate is read with the daemon's environment and files.
    pub fn preview(&self, path: &Path, text: &str) -> Result<Vec<Change>, String> {
        let candidate = Config::from_text(path, text).map_err(|e| format!("{e}"))?;
        Ok(diff(&self.current(), &candidate))
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Listens for SIGHUP from now on. The daemon takes this before it serves
/// clients: a signal sent once a client could bind (a test, a deploy
/// script) is then never missed, however long the rest of the start takes.
pub fn hangups() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(err) => {
            warn!(%err, "cannot listen for SIGHUP; reload by file change only");
            None
        }
    }
}

/// Reloads on each SIGHUP `hangups` (from [`hangups`]) receives, until
/// `shutdown`.
pub async fn on_sighup(
    reloader: Arc<Reloader>,
    hangups: Option<tokio::signal::unix::Signal>,
    shutdown: CancellationToken,
) {
    let Some(mut hangups) = hangups else {
        return;
    };
    loop {
        tokio::select! {
            Some(()) = hangups.recv() => {
                reloader.reload("SIGHUP").await;
            }
            () = shutdown.cancelled() => return,
        }
    }
}

/// How often the config file is looked at.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Reloads when the config file's content changes and then stays the same
/// for one more look (an editor that writes in several steps, or a deploy
/// that copies files one by one, is read once, when it is done).
pub async fn watch_file(reloader: Arc<Reloader>, shutdown: CancellationToken) {
    let Some(path) = reloader.path() else {
        return;
    };
    let mut seen = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            () = shutdown.cancelled() => return,
        }
        let now = std::fs::read(&path).ok();
        let last_read = reloader
            .last_read
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if now.is_some() && now != last_read && now == seen {
            // Changed, and unchanged since the last look: settled.
            reloader.reload("config file changed").await;
        }
        seen = now;
    }
}
