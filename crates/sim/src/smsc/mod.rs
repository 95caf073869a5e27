//! The SMSC simulator: an upstream for Tern (and its tests) to talk to.
//!
//! [`Simulator::start`] listens on a loopback (or given) address and runs
//! the session engine's SMSC side behind it. Binds are accepted for the
//! configured [`Account`]s, or for any credentials when none are
//! configured. Submits are answered per the current [`Behaviour`];
//! receipts and injected MO messages go to the account's receiving
//! sessions through a bounded per-account queue (`outbox.rs`). Everything
//! is observable through [`SimHandle`]: counters, queued deliveries, bound
//! sessions; and steerable: behaviour, disconnects, garbage.
//!
//! Files: `behaviour` (knobs), `ids` (message id formats), `session` (one
//! bound session), `receipt` (the deliver_sm PDUs), `outbox` (delivery
//! queues), `stats` (counters), `journal` (which messages and receipts
//! went through, when a test asks), `tap` (raw writes for garbage), `tls`
//! (serving over TLS in a chosen version range, like OVHcloud or Telesign).

mod behaviour;
mod ids;
mod journal;
mod outbox;
mod receipt;
mod session;
mod stats;
mod tap;
mod tls;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tern_codec::{Body, COctetString, CommandStatus, FieldError};
use tern_session::smsc::{
    accept_loop, Admission, Authenticator, BindRequest, SmscConfig, SmscServer,
};
use tern_session::tls::MaybeTlsStream;
use tern_session::{BindType, SessionConfig, SessionHandle};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use behaviour::{Behaviour, BehaviourError, ReceiptBehaviour, ReceiptForm, Reject};
pub use ids::IdFormat;
pub use journal::{Arrival, Recorded};
pub use receipt::BuildError;
pub use stats::SimSnapshot;
pub use tls::{SimTls, SimTlsError};

use behaviour::BehaviourCell;
use ids::IdGenerator;
use journal::Journal;
use outbox::{Item, Kind, Outboxes};
use stats::SimStats;
use tap::{Junk, Tap};
use tls::Handshake;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An account the simulator accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The bind's system_id.
    pub system_id: String,
    /// The bind's password.
    pub password: String,
    /// Sessions it may have bound at once; `None` for no limit.
    pub max_binds: Option<usize>,
}

/// How to start a simulator.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Where to listen; port 0 picks a free one (see [`SimHandle::addr`]).
    pub listen: SocketAddr,
    /// The simulator's system_id in bind responses (at most 15 octets).
    pub system_id: String,
    /// Accepted accounts; empty accepts any system_id and password.
    pub accounts: Vec<Account>,
    /// The shape of message ids.
    pub id_format: IdFormat,
    /// The behaviour at start; change it with [`SimHandle::set_behaviour`].
    pub behaviour: Behaviour,
    /// Receipts and MO messages kept per account while no receiver is
    /// bound (or receivers are slow); beyond it new ones are discarded and
    /// counted.
    pub outbox_limit: usize,
    /// How long a receipt or MO refused by the receiver (an error
    /// deliver_sm_resp) waits before it is sent again.
    pub redelivery_delay: Duration,
    /// Settings of every session (its `window` bounds the simulator's own
    /// deliver_sm in flight per session).
    pub session: SessionConfig,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long [`SimHandle::shutdown`] waits for sessions to unbind.
    pub shutdown_grace: Duration,
    /// Serve SMPP over TLS only (no plain connections), like the vendors
    /// that require it; `None` serves plain TCP.
    pub tls: Option<SimTls>,
    /// Whether bind responses carry `sc_interface_version`. Off plays an
    /// SMSC that omits it (seen at Telesign): a client must then assume
    /// SMPP 3.3 and no TLVs unless it knows better (SMPP 3.4 §5.3.2.25).
    pub announce_interface_version: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            system_id: "tern-sim".to_owned(),
            accounts: Vec::new(),
            id_format: IdFormat::default(),
            behaviour: Behaviour::default(),
            outbox_limit: 100_000,
            redelivery_delay: Duration::from_secs(1),
            session: SessionConfig {
                window: 100,
                ..SessionConfig::default()
            },
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(5),
            tls: None,
            announce_interface_version: true,
        }
    }
}

/// Why the simulator could not start or do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A behaviour knob is out of range.
    #[error("behaviour: {0}")]
    Behaviour(#[from] BehaviourError),
    /// The system_id does not fit the bind response.
    #[error("system_id `{value}`: {source}")]
    SystemId {
        /// As configured.
        value: String,
        /// Why it does not fit.
        source: FieldError,
    },
    /// The listening socket could not be opened.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// An MO message could not be built (address too long, text too long).
    #[error("MO message: {0}")]
    Mo(#[from] BuildError),
    /// The TLS settings cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] SimTlsError),
    /// The account's delivery queue is full.
    #[error("delivery queue of `{account}` is full")]
    QueueFull {
        /// The account.
        account: String,
    },
}

/// Starts simulators.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Validates `config`, listens, and serves until [`SimHandle::shutdown`]
    /// (or until the handle is dropped).
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        // Before binding the port: a bad certificate is a start-up error.
        config.behaviour.validate()?;
        config.tls.as_ref().map(SimTls::handshake).transpose()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SimError::Listen {
                    addr: config.listen,
                    source,
                })?;
        Simulator::start_on(config, listener)
    }

    /// Serves on `listener`, already bound by the caller (`config.listen`
    /// is not read), as [`Simulator::start`] does: for a caller that binds
    /// every socket first and says where they are before anything starts,
    /// as `tern run --listening-file` does with its `[[simulator]]`s.
    pub fn start_on(config: SimConfig, listener: TcpListener) -> Result<SimHandle, SimError> {
        config.behaviour.validate()?;
        let tls = config.tls.as_ref().map(SimTls::handshake).transpose()?;
        let system_id =
            COctetString::<16>::try_from(config.system_id.as_str()).map_err(|source| {
                SimError::SystemId {
                    value: config.system_id.clone(),
                    source,
                }
            })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: config.listen,
            source,
        })?;
        let stats = Arc::new(SimStats::default());
        let journal = Arc::new(Journal::default());
        let binds = Arc::new(BindTally::default());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let inner = Arc::new(Inner {
            behaviour: BehaviourCell::new(config.behaviour),
            ids: IdGenerator::new(config.id_format),
            outboxes: Outboxes::new(
                config.outbox_limit,
                config.redelivery_delay,
                stats.clone(),
                journal.clone(),
                tasks.clone(),
                shutdown.clone(),
            ),
            stats: stats.clone(),
            journal,
            binds: binds.clone(),
            sessions: Mutex::default(),
            next_session: AtomicU64::new(1),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
        });
        let server = SmscServer::new(
            SmscConfig {
                system_id,
                session: config.session.clone(),
                max_connections: config.max_connections,
                announce_interface_version: config.announce_interface_version,
                ..SmscConfig::default()
            },
            SimAuth {
                accounts: config.accounts,
                stats,
                binds,
            },
        );
        let init = config.session.session_init_timeout;
        tasks.spawn(accept(
            inner.clone(),
            server,
            listener,
            config.max_connections,
            tls.map(|handshake| (handshake, init)),
        ));
        info!(%addr, tls = config.tls.is_some(), "simulator listening");
        Ok(SimHandle {
            addr,
            inner,
            grace: config.shutdown_grace,
        })
    }
}

/// Accepts the configured accounts, or anyone when there are none.
struct SimAuth {
    accounts: Vec<Account>,
    stats: Arc<SimStats>,
    binds: Arc<BindTally>,
}

/// Sessions bound per account, now and at most, as a vendor counts them
/// to refuse a bind beyond its cap (Infobip: 4 per account). Taken when a
/// bind is admitted, given back when its session ends.
#[derive(Debug, Default)]
struct BindTally {
    /// Per account: (bound now, most bound at once).
    accounts: Mutex<HashMap<String, (usize, usize)>>,
    /// When each bind request arrived, admitted or refused: how far apart
    /// a client's binds come is what a vendor judges a bind storm by.
    attempts: Mutex<Vec<Instant>>,
}

impl BindTally {
    /// Takes a session for `account` unless `max` are bound.
    fn try_take(&self, account: &str, max: Option<usize>) -> bool {
        let mut accounts = lock(&self.accounts);
        let (now, most) = accounts.entry(account.to_owned()).or_default();
        if max.is_some_and(|max| *now >= max) {
            return false;
        }
        *now += 1;
        *most = (*most).max(*now);
        true
    }

    fn give_back(&self, account: &str) {
        if let Some((now, _)) = lock(&self.accounts).get_mut(account) {
            *now = now.saturating_sub(1);
        }
    }

    fn most(&self, account: &str) -> usize {
        lock(&self.accounts)
            .get(account)
            .map_or(0, |(_, most)| *most)
    }
}

impl SimAuth {
    fn decide(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        if self.accounts.is_empty() {
            self.binds.try_take(&bind.system_id, None);
            return Ok(Admission {
                account: bind.system_id.clone(),
                max_binds: None,
                session_rate: None,
                account_rate: None,
                credential: 0,
                ..Admission::default()
            });
        }
        let account = self
            .accounts
            .iter()
            .find(|a| a.system_id == bind.system_id)
            .ok_or(CommandStatus::InvalidSystemId)?;
        if account.password != bind.password.expose() {
            return Err(CommandStatus::InvalidPassword);
        }
        if !self.binds.try_take(&account.system_id, account.max_binds) {
            SimStats::bump(&self.stats.binds_over_cap);
            return Err(CommandStatus::BindFailed);
        }
        Ok(Admission {
            account: account.system_id.clone(),
            // Counted and refused here (`BindTally`), so that the refusals
            // and the most bound at once can be reported.
            max_binds: None,
            // The simulator throttles by its own behaviour knob, which
            // can change at run time; the engine's limits stay off.
            session_rate: None,
            account_rate: None,
            credential: 0,
            ..Admission::default()
        })
    }
}

impl Authenticator for SimAuth {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        lock(&self.binds.attempts).push(Instant::now());
        let verdict = self.decide(bind);
        if verdict.is_err() {
            SimStats::bump(&self.stats.binds_refused);
        }
        verdict
    }
}

/// A bound session, for commands that act on sessions.
#[derive(Debug)]
struct Live {
    account: String,
    bind_type: BindType,
    handle: SessionHandle,
    junk: Arc<Junk>,
}

/// What the simulator's tasks share.
#[derive(Debug)]
pub(crate) struct Inner {
    behaviour: BehaviourCell,
    stats: Arc<SimStats>,
    journal: Arc<Journal>,
    binds: Arc<BindTally>,
    ids: IdGenerator,
    outboxes: Outboxes,
    sessions: Mutex<HashMap<u64, Live>>,
    next_session: AtomicU64,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Inner {
    fn register(
        &self,
        account: &str,
        bind_type: BindType,
        handle: &SessionHandle,
        junk: Arc<Junk>,
    ) -> u64 {
        let id = self.next_session.fetch_add(1, Ordering::Relaxed);
        let live = Live {
            account: account.to_owned(),
            bind_type,
            handle: handle.clone(),
            junk,
        };
        lock(&self.sessions).insert(id, live);
        id
    }

    fn unregister(&self, id: u64) {
        if let Some(live) = lock(&self.sessions).remove(&id) {
            self.binds.give_back(&live.account);
        }
    }

    /// Sessions of `account` (all accounts when `None`).
    fn matching(&self, account: Option<&str>) -> Vec<(SessionHandle, Arc<Junk>)> {
        lock(&self.sessions)
            .values()
            .filter(|live| account.is_none_or(|a| a == live.account))
            .map(|live| (live.handle.clone(), live.junk.clone()))
            .collect()
    }
}

/// Accepts connections until shutdown; each becomes a session that must
/// bind within the session-init time. With `tls`, the handshake comes
/// first and must itself finish within that time, so a silent peer cannot
/// hold a connection slot.
async fn accept(
    inner: Arc<Inner>,
    server: Arc<SmscServer<SimAuth>>,
    listener: TcpListener,
    max_connections: usize,
    tls: Option<(Handshake, Duration)>,
) {
    let shutdown = inner.shutdown.clone();
    accept_loop(
        &listener,
        max_connections,
        &shutdown,
        |stream, peer, permit| {
            SimStats::bump(&inner.stats.connections);
            let inner = inner.clone();
            let server = server.clone();
            let tls = tls.clone();
            inner.tasks.clone().spawn(async move {
                let junk = Arc::new(Junk::default());
                let io = match tls {
                    None => MaybeTlsStream::Plain(stream),
                    Some((handshake, limit)) => {
                        let secured = tokio::select! {
                            secured = tokio::time::timeout(limit, handshake(stream)) => secured,
                            () = inner.shutdown.cancelled() => return,
                        };
                        match secured {
                            Ok(Ok(io)) => {
                                SimStats::bump(&inner.stats.tls_handshakes);
                                info!(
                                    %peer,
                                    version = ?io.negotiated_version(),
                                    suite = io.cipher_suite_name().unwrap_or_default(),
                                    "TLS established"
                                );
                                io
                            }
                            Ok(Err(err)) => {
                                SimStats::bump(&inner.stats.tls_failures);
                                warn!(%peer, %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                SimStats::bump(&inner.stats.tls_failures);
                                warn!(%peer, "TLS handshake not finished within {limit:?}");
                                return;
                            }
                        }
                    }
                };
                let bound = tokio::select! {
                    bound = server.handshake(Tap::new(io, junk.clone()), Some(peer)) => bound,
                    () = inner.shutdown.cancelled() => None,
                };
                if let Some(bound) = bound {
                    session::run(inner, bound, junk).await;
                }
                drop(permit);
            });
        },
    )
    .await;
}

/// A running simulator. Dropping it stops the simulator without waiting;
/// [`SimHandle::shutdown`] waits for sessions to unbind.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    inner: Arc<Inner>,
    grace: Duration,
}

impl SimHandle {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A copy of the counters.
    pub fn stats(&self) -> SimSnapshot {
        self.inner.stats.snapshot()
    }

    /// The behaviour in force.
    pub fn behaviour(&self) -> Behaviour {
        Behaviour::clone(&self.inner.behaviour.load())
    }

    /// Installs a new behaviour; it applies from the next submit (session
    /// timers from the next bind). An invalid one is refused and the old
    /// one stays.
    pub fn set_behaviour(&self, behaviour: Behaviour) -> Result<(), BehaviourError> {
        behaviour.validate()?;
        self.inner.behaviour.store(behaviour);
        Ok(())
    }

    /// Changes some knobs of the behaviour in force.
    pub fn update_behaviour(
        &self,
        change: impl FnOnce(&mut Behaviour),
    ) -> Result<(), BehaviourError> {
        let mut behaviour = self.behaviour();
        change(&mut behaviour);
        self.set_behaviour(behaviour)
    }

    /// Sends an MO message from `from` to `to` to the receiving sessions of
    /// `system_id` (kept until one binds). GSM 7-bit when the text allows,
    /// UCS-2 otherwise.
    pub fn inject_mo(
        &self,
        system_id: &str,
        from: &str,
        to: &str,
        text: &str,
    ) -> Result<(), SimError> {
        let pdu = receipt::mo(from, to, text)?;
        let item = Item {
            kind: Kind::Mo,
            due: Instant::now(),
            pdu,
            attempts: 0,
            receipt_of: None,
        };
        if !self.inner.outboxes.get(system_id).push(item) {
            return Err(SimError::QueueFull {
                account: system_id.to_owned(),
            });
        }
        SimStats::bump(&self.inner.stats.mo_injected);
        Ok(())
    }

    /// Sessions of `system_id` bound now, by bind type.
    pub fn sessions(&self, system_id: &str) -> Vec<BindType> {
        lock(&self.inner.sessions)
            .values()
            .filter(|live| live.account == system_id && !live.handle.is_closed())
            .map(|live| live.bind_type)
            .collect()
    }

    /// Receipts and MO messages waiting for `system_id` (not yet sent, or
    /// sent and put back after going unanswered).
    pub fn queued(&self, system_id: &str) -> usize {
        self.inner.outboxes.queued(system_id)
    }

    /// Drops the connections of `system_id`'s sessions (every session when
    /// `None`) without unbind; returns how many.
    pub fn disconnect(&self, system_id: Option<&str>) -> usize {
        let sessions = self.inner.matching(system_id);
        for (handle, _) in &sessions {
            SimStats::bump(&self.inner.stats.disconnects);
            handle.close();
        }
        sessions.len()
    }

    /// Unbinds `system_id`'s sessions (every session when `None`) now, as
    /// an SMSC going down for maintenance does; returns how many. The
    /// unbinds run in the background: each session ends once its peer
    /// answers (or the close grace passes). Counted in `unbinds_sent`.
    pub fn unbind(&self, system_id: Option<&str>) -> usize {
        let sessions = self.inner.matching(system_id);
        for (handle, _) in &sessions {
            SimStats::bump(&self.inner.stats.unbinds_sent);
            let handle = handle.clone();
            self.inner.tasks.spawn(async move { handle.unbind().await });
        }
        sessions.len()
    }

    /// Starts recording which submits the simulator accepts and which
    /// receipts its receivers acknowledge (see [`Recorded`]), forgetting
    /// any earlier record. Off until called; the record grows with the
    /// traffic, so this is for tests of bounded length.
    pub fn start_recording(&self) {
        self.inner.journal.start();
    }

    /// What was recorded since [`SimHandle::start_recording`], in order;
    /// empty if it was never called.
    pub fn recorded(&self) -> Vec<Recorded> {
        self.inner.journal.snapshot()
    }

    /// Every submit that arrived since [`SimHandle::start_recording`],
    /// refused or not, with its arrival time: a vendor counts arrivals in
    /// its own one-second window, and so can a test.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.inner.journal.arrivals()
    }

    /// When each bind request arrived since the start, admitted or
    /// refused, in order.
    pub fn bind_attempts(&self) -> Vec<Instant> {
        lock(&self.inner.binds.attempts).clone()
    }

    /// The most sessions `system_id` had bound at once since the start.
    pub fn most_bound(&self, system_id: &str) -> usize {
        self.inner.binds.most(system_id)
    }

    /// Writes `octets` raw on the connections of `system_id`'s sessions
    /// (every session when `None`), followed by an enquire_link (the engine
    /// writes only whole PDUs, so the junk rides in front of one). Returns
    /// how many sessions.
    pub fn send_garbage(&self, system_id: Option<&str>, octets: &[u8]) -> usize {
        let sessions = self.inner.matching(system_id);
        for (handle, junk) in &sessions {
            SimStats::bump(&self.inner.stats.garbage_sent);
            junk.arm(octets);
            let handle = handle.clone();
            self.inner.tasks.spawn(async move {
                // The peer will most likely close instead of answering.
                let _ = handle.request(Body::EnquireLink).await;
            });
        }
        sessions.len()
    }

    /// Stops accepting, unbinds every session (waiting up to the shutdown
    /// grace), then closes what is left.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(self.grace, self.inner.tasks.wait())
            .await
            .is_err()
        {
            warn!("simulator tasks still running after the grace period; closing sessions");
            for (handle, _) in self.inner.matching(None) {
                handle.close();
            }
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.inner.shutdown.cancel();
    }
}
