//! The SMSC role: Tern facing its client applications.
//!
//! A listener accepts connections (a semaphore caps how many are open; a
//! failing `accept` backs off instead of ending the listener), each
//! connection becomes a session, and the session must bind within the
//! session-init time. The [`Authenticator`] decides each bind; the server
//! refuses a bind type the account does not allow (never a failed bind for
//! the guard), counts binds per account, keeps each account's submit rate
//! and window shared by its sessions, and answers with Tern's own system_id and, for
//! 3.4+ peers, `sc_interface_version`. Only bound sessions reach the
//! application.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_codec::pdu::{Bind, BindResp};
use tern_codec::{Body, COctetString, CommandStatus, InterfaceVersion, Tlv};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

use crate::abuse::{BindGuard, Verdict};
use crate::config::SessionConfig;
use crate::ops::{BindType, BindTypes, Role};
use crate::session::{self, CloseReason, Requests, SessionHandle};
use crate::throttle::{InboundWindow, RateLimit};
use crate::tls::MaybeTlsStream;

/// A password, kept out of `Debug` output and logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The password itself, for comparison.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// What a client presented in its bind.
#[derive(Debug, Clone)]
pub struct BindRequest {
    /// Transmitter, receiver or transceiver.
    pub bind_type: BindType,
    /// The account name.
    pub system_id: String,
    /// The password given.
    pub password: Password,
    /// The client's system_type.
    pub system_type: String,
    /// The SMPP version it speaks.
    pub interface_version: InterfaceVersion,
    /// Where it connects from.
    pub peer: Option<SocketAddr>,
}

impl BindRequest {
    fn from_pdu(bind_type: BindType, bind: &Bind, peer: Option<SocketAddr>) -> Self {
        Self {
            bind_type,
            system_id: bind.system_id.to_string(),
            password: Password::new(bind.password.to_string()),
            system_type: bind.system_type.to_string(),
            interface_version: bind.interface_version,
            peer,
        }
    }
}

/// A bind the authenticator accepted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Admission {
    /// The account the session belongs to (bind counts and the account rate
    /// are kept per account).
    pub account: String,
    /// How many sessions the account may have bound at once.
    pub max_binds: Option<usize>,
    /// Submits per second this one session may send.
    pub session_rate: Option<NonZeroU32>,
    /// Submits per second all the account's sessions together may send.
    pub account_rate: Option<NonZeroU32>,
    /// Submits all the account's sessions together may have unanswered
    /// at once; past it a submit is answered `ESME_RMSGQFUL`.
    pub account_window: Option<NonZeroUsize>,
    /// The bind types the account may bind as; another is refused with
    /// `ESME_RBINDFAIL`.
    pub bind_types: BindTypes,
    /// Which of the account's credentials the bind used, as the
    /// authenticator chooses to tag it (opaque here): lets the application
    /// end exactly the sessions whose password stopped being valid.
    pub credential: u64,
}

/// Why the server refused a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The bind guard: too many failed binds from this address or for
    /// this system_id.
    LockedOut,
    /// The authenticator said no, with this status.
    Authenticator(CommandStatus),
    /// The account's credentials were right, but it may not bind as this
    /// type. Not a failed bind for the guard: no password was guessed.
    BindType,
    /// The account has `max_binds` sessions bound already.
    MaxBinds,
}

/// Decides binds: credentials, source address, allowed bind types.
pub trait Authenticator: Send + Sync + 'static {
    /// Accepts the bind, or says which status to refuse it with
    /// (`ESME_RINVSYSID`, `ESME_RINVPASWD`, `ESME_RBINDFAIL`, …). The bind
    /// types the account allows travel in the [`Admission`]: the server
    /// checks them, so that such a refusal is not counted as a failed
    /// credential.
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus>;

    /// Told of every refused bind, once it was answered, so that the
    /// application can count refusals by cause. Does nothing unless
    /// implemented.
    fn refused(&self, _bind: &BindRequest, _refusal: Refusal) {}
}

/// The SMSC side's settings.
#[derive(Debug, Clone)]
pub struct SmscConfig {
    /// Tern's system_id in bind responses.
    pub system_id: COctetString<16>,
    /// Settings of each session.
    pub session: SessionConfig,
    /// Connections open at once; further ones wait in the accept queue.
    pub max_connections: usize,
    /// The status a bind refused by the bind guard gets (OVH answers 0x400;
    /// the specification's choice is `ESME_RBINDFAIL`).
    pub locked_out_status: CommandStatus,
    /// Whether bind responses to 3.4+ clients carry `sc_interface_version`.
    /// Always in Tern; off only in a simulator playing an SMSC that omits
    /// it (SMPP 3.4 §5.3.2.25: its clients must then assume no TLVs).
    pub announce_interface_version: bool,
}

impl Default for SmscConfig {
    fn default() -> Self {
        Self {
            // Four octets always fit the 16-octet field.
            system_id: COctetString::try_from("tern").unwrap_or_default(),
            session: SessionConfig::default(),
            max_connections: 10_000,
            locked_out_status: CommandStatus::BindFailed,
            announce_interface_version: true,
        }
    }
}

/// A session that has bound.
#[derive(Debug)]
pub struct BoundSession {
    /// The session.
    pub handle: SessionHandle,
    /// Requests from the client (submits, and enquire_link never: the
    /// engine answers those).
    pub requests: Requests,
    /// The account it bound as.
    pub account: String,
    /// How it bound.
    pub bind_type: BindType,
    /// The client's SMPP version.
    pub interface_version: InterfaceVersion,
    /// The authenticator's tag for the credential used
    /// ([`Admission::credential`]).
    pub credential: u64,
}

/// Bound sessions per account.
#[derive(Debug, Default)]
struct BindCounts(Mutex<HashMap<String, usize>>);

impl BindCounts {
    /// Takes a slot unless the account is at its limit.
    fn try_take(&self, account: &str, max: Option<usize>) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(account.to_owned()).or_insert(0);
        if max.is_some_and(|max| *count >= max) {
            return false;
        }
        *count += 1;
        true
    }

    fn give_back(&self, account: &str) {
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = counts.get_mut(account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(account);
            }
        }
    }

    fn get(&self, account: &str) -> usize {
        let counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(account).copied().unwrap_or(0)
    }
}

/// Accepts connections on `listener` until `shutdown`: at most
/// `max_connections` open at once (the permit handed to `on_connection` is
/// held for the connection's life), Nagle off, and a failing `accept` (out
/// of descriptors, say) backs off instead of ending the listener or
/// spinning, and is logged once (see [`AcceptBackoff`]). Shared by
/// [`SmscServer::serve`] and the simulator.
pub async fn accept_loop<F>(
    listener: &TcpListener,
    max_connections: usize,
    shutdown: &CancellationToken,
    mut on_connection: F,
) where
    F: FnMut(TcpStream, SocketAddr, OwnedSemaphorePermit),
{
    let limit = Arc::new(Semaphore::new(max_connections.max(1)));
    let mut backoff = AcceptBackoff::new(listener.local_addr().ok());
    loop {
        let permit = tokio::select! {
            permit = limit.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => return,
            },
            () = shutdown.cancelled() => return,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff.succeeded();
                let _ = stream.set_nodelay(true);
                on_connection(stream, peer, permit);
            }
            Err(err) => {
                let delay = backoff.failed(&err);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        }
    }
}

/// `EMFILE`: this process is out of descriptors (`ulimit -n`). The same
/// number on Linux, the BSDs and macOS.
const EMFILE: i32 = 24;
/// `ENFILE`: the whole system is out of descriptors.
const ENFILE: i32 = 23;

/// How an accept loop rides out failing accepts.
///
/// Out of descriptors, `accept` fails at once for as long as the pending
/// connection waits in the kernel's queue: retrying at once would spin a
/// core and log a line per try (hundreds a second), and giving up would
/// leave the port dead once descriptors free up. So each failure in a row
/// sleeps longer (10 ms doubling to 1 s: short enough that a freed
/// descriptor is used within a second), the first failure is logged as a
/// warning, and further ones are only counted: one reminder with the count
/// every [`REMIND_EVERY`](Self::REMIND_EVERY) while it lasts, and one line
/// when accepting works again. A connection the peer aborted before it was
/// accepted is that connection's problem: retried at once, not logged.
#[derive(Debug)]
pub struct AcceptBackoff {
    listener: Option<SocketAddr>,
    delay: Duration,
    /// Failures since the last line logged.
    unlogged: u64,
    /// Failures in the current run, and when it started.
    run: Option<(u64, tokio::time::Instant)>,
    /// When a failure was last logged; `None` before any.
    logged_at: Option<tokio::time::Instant>,
    /// Whether the current run's failures were logged (then its end is).
    run_logged: bool,
}

impl AcceptBackoff {
    /// The first delay after a failure.
    const FIRST: Duration = Duration::from_millis(10);
    /// The longest delay.
    const MAX: Duration = Duration::from_secs(1);
    /// How often a run of failures is logged again (with its count).
    pub const REMIND_EVERY: Duration = Duration::from_secs(60);

    /// For the listener on `listener` (named in the log lines).
    pub fn new(listener: Option<SocketAddr>) -> Self {
        Self {
            listener,
            delay: Self::FIRST,
            unlogged: 0,
            run: None,
            logged_at: None,
            run_logged: false,
        }
    }

    /// Records a failed accept; returns how long to wait before the next.
    pub fn failed(&mut self, err: &std::io::Error) -> Duration {
        use std::io::ErrorKind;
        if matches!(
            err.kind(),
            ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
        ) {
            tracing::debug!(%err, "a connection went before it was accepted");
            return Duration::ZERO;
        }
        let now = tokio::time::Instant::now();
        let (failures, _) = self.run.get_or_insert((0, now));
        *failures += 1;
        let first_of_run = *failures == 1;
        self.unlogged += 1;
        let due = self
            .logged_at
            .is_none_or(|at| now.duration_since(at) >= Self::REMIND_EVERY);
        if due {
            let listener = self
                .listener
                .map_or_else(|| "-".to_owned(), |a| a.to_string());
            let cause = match err.raw_os_error() {
                Some(EMFILE) => "out of file descriptors (ulimit -n)",
                Some(ENFILE) => "the system is out of file descriptors",
                _ => "accept failed",
            };
            let unlogged = self.unlogged;
            if first_of_run {
                warn!(%listener, %err, "{cause}: new connections wait in the kernel's queue; retrying with a growing delay up to 1 s, logged again at most once a minute");
            } else {
                warn!(%listener, %err, unlogged, "{cause}: still failing ({unlogged} failed accepts since the last line)");
            }
            self.logged_at = Some(now);
            self.unlogged = 0;
            self.run_logged = true;
        }
        let delay = self.delay;
        self.delay = (self.delay * 2).min(Self::MAX);
        delay
    }

    /// Records a successful accept: ends a run of failures (logged once,
    /// with how long it lasted).
    pub fn succeeded(&mut self) {
        self.delay = Self::FIRST;
        let run = self.run.take();
        if let (Some((failures, since)), true) = (run, self.run_logged) {
            self.run_logged = false;
            let listener = self
                .listener
                .map_or_else(|| "-".to_owned(), |a| a.to_string());
            info!(%listener, failures, lasted = ?since.elapsed(), "accepting connections again");
        }
    }
}

/// The SMSC side: accepts connections and runs bind handshakes.
pub struct SmscServer<A> {
    config: SmscConfig,
    auth: Arc<A>,
    binds: Arc<BindCounts>,
    /// Slows down and locks out repeated failed binds.
    guard: Option<BindGuard>,
    /// One limiter per account, shared by its sessions.
    account_limits: Mutex<HashMap<String, Arc<RateLimit>>>,
    /// One window of unanswered submits per account, shared by its
    /// sessions.
    account_windows: Mutex<HashMap<String, Arc<InboundWindow>>>,
}

impl<A> std::fmt::Debug for SmscServer<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmscServer")
            .field("config", &self.config)
            .finish()
    }
}

impl<A: Authenticator> SmscServer<A> {
    /// A server deciding binds with `auth`.
    pub fn new(config: SmscConfig, auth: A) -> Arc<Self> {
        Self::build(config, auth, None)
    }

    /// A server that also delays and locks out repeated failed binds.
    pub fn with_guard(config: SmscConfig, auth: A, guard: BindGuard) -> Arc<Self> {
        Self::build(config, auth, Some(guard))
    }

    fn build(config: SmscConfig, auth: A, guard: Option<BindGuard>) -> Arc<Self> {
        Arc::new(Self {
            config,
            auth: Arc::new(auth),
            binds: Arc::default(),
            guard,
            account_limits: Mutex::default(),
            account_windows: Mutex::default(),
        })
    }

    /// The account's shared limiter at `rate`, made anew when the rate changed.
    /// The inbound limits a session admitted as `admission` runs under:
    /// its own rate and its account's shared one. Public so that a reload
    /// can give bound sessions their account's new rates.
    pub fn limits_for(&self, admission: &Admission) -> Vec<Arc<RateLimit>> {
        admission
            .session_rate
            .map(|rate| Arc::new(RateLimit::per_second(rate)))
            .into_iter()
            .chain(
                admission
                    .account_rate
                    .map(|rate| self.account_limit(&admission.account, rate)),
            )
            .collect()
    }

    fn account_limit(&self, account: &str, rate: NonZeroU32) -> Arc<RateLimit> {
        let mut limits = self
            .account_limits
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match limits.get(account) {
            Some(limit) if limit.rate() == rate => limit.clone(),
            _ => {
                let limit = Arc::new(RateLimit::per_second(rate));
                limits.insert(account.to_owned(), limit.clone());
                limit
            }
        }
    }

    /// The window of unanswered submits a session admitted as `admission`
    /// takes a slot of for each submit: its account's, shared by the
    /// account's sessions and kept across reloads (a new limit applies to
    /// the slots already held). Public so that a reload can change it.
    pub fn window_for(&self, admission: &Admission) -> Option<Arc<InboundWindow>> {
        let limit = admission.account_window?;
        let mut windows = self
            .account_windows
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let window = windows
            .entry(admission.account.clone())
            .or_insert_with(|| InboundWindow::new(limit));
        window.set_limit(limit);
        Some(window.clone())
    }

    /// What the bind guard says about this attempt.
    async fn guard_allows(&self, bind: &BindRequest) -> bool {
        let (Some(guard), Some(peer)) = (&self.guard, bind.peer) else {
            return true;
        };
        match guard.check(peer.ip(), &bind.system_id, std::time::Instant::now()) {
            Verdict::Allow => true,
            Verdict::Delay(delay) => {
                tokio::time::sleep(delay).await;
                true
            }
            Verdict::Refuse { .. } => false,
        }
    }

    /// Sessions of `account` bound now.
    pub fn bound_count(&self, account: &str) -> usize {
        self.binds.get(account)
    }

    /// Accepts connections on `listener` until `shutdown`, over TLS when
    /// `tls` is given, sending each bound session to `sessions`. On shutdown
    /// every session bound through it is unbound.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<TlsAcceptor>,
        sessions: mpsc::Sender<BoundSession>,
        shutdown: CancellationToken,
    ) {
        let server = self.clone();
        let stop = shutdown.clone();
        accept_loop(
            &listener,
            self.config.max_connections,
            &stop,
            move |stream, peer, permit| {
                let server = server.clone();
                let sessions = sessions.clone();
                let shutdown = shutdown.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let Some(io) = server.secure(stream, peer, tls.as_ref()).await else {
                        return;
                    };
                    if let Some(bound) = server.handshake(io, Some(peer)).await {
                        let handle = bound.handle.clone();
                        if sessions.send(bound).await.is_err() {
                            handle.close();
                        }
                        tokio::select! {
                            () = handle.closed() => {}
                            () = shutdown.cancelled() => handle.unbind().await,
                        }
                    }
                    drop(permit);
                });
            },
        )
        .await;
    }
    /// Completes the TLS handshake, if any, within the session-init time.
    async fn secure(
        &self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<&TlsAcceptor>,
    ) -> Option<MaybeTlsStream<TcpStream>> {
        let Some(acceptor) = tls else {
            return Some(MaybeTlsStream::Plain(stream));
        };
        let init = self.config.session.session_init_timeout;
        match tokio::time::timeout(init, MaybeTlsStream::accept(acceptor, stream)).await {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(err)) => {
                info!(%peer, %err, "TLS handshake failed");
                None
            }
            Err(_) => {
                info!(%peer, "TLS handshake not finished within {init:?}");
                None
            }
        }
    }

    /// Runs a session over an accepted stream until it binds; `None` when it
    /// closed or did not bind within the session-init time.
    pub async fn handshake<S>(&self, io: S, peer: Option<SocketAddr>) -> Option<BoundSession>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (handle, mut requests) =
            session::spawn(io, Role::Smsc, self.config.session.clone(), peer);
        let span = handle.span().clone();
        let init = self.config.session.session_init_timeout;
        let bound = tokio::time::timeout(init, self.await_bind(&handle, &mut requests))
            .instrument(span.clone())
            .await;
        match bound {
            Ok(Some((admission, bind_type, interface_version))) => Some(BoundSession {
                handle,
                requests,
                account: admission.account,
                bind_type,
                interface_version,
                credential: admission.credential,
            }),
            Ok(None) => None,
            Err(_) => {
                info!(parent: &span, "no bind within {init:?}; closing");
                handle.close_with(CloseReason::SessionInitTimeout);
                None
            }
        }
    }

    /// Tells the bind guard how an attempt went.
    fn record(&self, bind: &BindRequest, success: bool) {
        if let (Some(guard), Some(peer)) = (&self.guard, bind.peer) {
            if success {
                guard.record_success(peer.ip(), &bind.system_id);
            } else {
                guard.record_failure(peer.ip(), &bind.system_id, std::time::Instant::now());
            }
        }
    }

    /// Answers binds until one succeeds or the session ends.
    async fn await_bind(
        &self,
        handle: &SessionHandle,
        requests: &mut Requests,
    ) -> Option<(Admission, BindType, InterfaceVersion)> {
        while let Some(request) = requests.recv().await {
            let bind_type = BindType::of(request.pdu.command_id());
            let (
                Some(bind_type),
                Body::BindTransmitter(bind)
                | Body::BindReceiver(bind)
                | Body::BindTransceiver(bind),
            ) = (bind_type, &request.pdu.body)
            else {
                // The engine's operation matrix only lets binds through before
                // bind; anything else here is a bug, refused all the same.
                let _ = request
                    .responder
                    .reject(CommandStatus::InvalidBindStatus)
                    .await;
                continue;
            };
            let bind_request = BindRequest::from_pdu(bind_type, bind, handle.peer());
            if !self.guard_allows(&bind_request).await {
                crate::warn_limited!("bind refused: too many failed binds", system_id = %bind_request.system_id);
                let _ = request
                    .responder
                    .reject(self.config.locked_out_status)
                    .await;
                self.auth.refused(&bind_request, Refusal::LockedOut);
                continue;
            }
            let verdict = match self.auth.authenticate(&bind_request) {
                Err(status) => Err((status, Refusal::Authenticator(status))),
                Ok(admission) if !admission.bind_types.contains(bind_type) => {
                    // Right credentials, wrong type: refused without a word
                    // to the bind guard, which counts guessed passwords.
                    crate::warn_limited!("bind refused: the account may not bind as this type", system_id = %bind_request.system_id,
                        bind_type = bind_type.name(),
                        peer = %bind_request.peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
                        allowed = %admission.bind_types.names().join(","));
                    let _ = request.responder.reject(CommandStatus::BindFailed).await;
                    self.auth.refused(&bind_request, Refusal::BindType);
                    continue;
                }
                Ok(admission) => {
                    if self.binds.try_take(&admission.account, admission.max_binds) {
                        Ok(admission)
                    } else {
                        Err((CommandStatus::BindFailed, Refusal::MaxBinds))
                    }
                }
            };
            match verdict {
                Ok(admission) => {
                    self.record(&bind_request, true);
                    let version = bind.interface_version;
                    handle.set_inbound_limits(self.limits_for(&admission));
                    handle.set_inbound_window(self.window_for(&admission));
                    handle.set_bound(bind_type, &bind_request.system_id, version);
                    let binds = self.binds.clone();
                    let account = admission.account.clone();
                    let watched = handle.clone();
                    tokio::spawn(async move {
                        watched.closed().await;
                        binds.give_back(&account);
                    });
                    let mut resp = BindResp::with_id(self.config.system_id.clone());
                    if version.supports_tlvs() && self.config.announce_interface_version {
                        resp.tlvs
                            .push(Tlv::ScInterfaceVersion(InterfaceVersion::V34.0));
                    }
                    let body = match bind_type {
                        BindType::Transmitter => Body::BindTransmitterResp(resp),
                        BindType::Receiver => Body::BindReceiverResp(resp),
                        BindType::Transceiver => Body::BindTransceiverResp(resp),
                    };
                    if request
                        .responder
                        .respond(CommandStatus::Ok, body)
                        .await
                        .is_err()
                    {
                        return None;
                    }
                    return Some((admission, bind_type, version));
                }
                Err((status, refusal)) => {
                    self.record(&bind_request, false);
                    // Never log the password: the request's Debug redacts it.
                    crate::warn_limited!("bind refused", system_id = %bind_request.system_id, %status);
                    let _ = request.responder.reject(status).await;
                    self.auth.refused(&bind_request, refusal);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_of_descriptors() -> std::io::Error {
        std::io::Error::from_raw_os_error(EMFILE)
    }

    #[tokio::test(start_paused = true)]
    async fn failing_accepts_wait_longer_each_time_and_are_logged_once_a_minute() {
        let mut backoff = AcceptBackoff::new(None);
        let delays: Vec<u64> = (0..9)
            .map(|_| backoff.failed(&out_of_descriptors()).as_millis() as u64)
            .collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        // The first failure was logged; the eight after it only counted.
        let first = backoff.logged_at.expect("logged");
        assert_eq!(backoff.unlogged, 8);
        tokio::time::advance(Duration::from_secs(30)).await;
        backoff.failed(&out_of_descriptors());
        assert_eq!(backoff.logged_at, Some(first), "not again within a minute");
        tokio::time::advance(Duration::from_secs(31)).await;
        backoff.failed(&out_of_descriptors());
        assert!(backoff.logged_at > Some(first), "a reminder after a minute");
        assert_eq!(backoff.unlogged, 0);
        // Accepting again ends the run: the next failure waits 10 ms.
        backoff.succeeded();
        assert!(backoff.run.is_none());
        assert_eq!(backoff.failed(&out_of_descriptors()), AcceptBackoff::FIRST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_aborted_before_accept_is_retried_at_once_and_not_logged() {
        let mut backoff = AcceptBackoff::new(None);
        let aborted = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(backoff.failed(&aborted), Duration::ZERO);
        assert!(backoff.run.is_none() && backoff.logged_at.is_none());
    }
}
