//! The session engine: one SMPP connection, either role, over any byte
//! stream (TCP, TLS, an in-memory duplex in tests).
//!
//! Each session runs a reader task and a writer task that share a small
//! [`Shared`]: the table of requests in flight, the window (a semaphore: a
//! full window makes [`SessionHandle::request`] wait, it never drops), the
//! sequence counter and the bind state. Requests from the peer that the
//! engine does not answer itself (enquire_link, unbind, illegal operations,
//! malformed PDUs) go to the application as [`Request`]s; the reader never
//! waits for the application: when its queue is full the peer is answered
//! `ESME_RMSGQFUL`. A [`Responder`] dropped unanswered answers
//! `ESME_RSYSERR`, so the peer's window never leaks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use arc_swap::{ArcSwap, ArcSwapOption};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tern_codec::{
    Body, CodecError, CommandId, CommandStatus, Frame, InterfaceVersion, Pdu, SmppCodec,
};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::config::SessionConfig;
use crate::observer::{NoopObserver, SessionObserver};
use crate::ops::{check_inbound, check_outbound, BindType, Role, SessionState};
use crate::sequence::SequenceNumbers;
use crate::throttle::{try_acquire_all, AdaptiveRate, InboundWindow, RateLimit, WindowSlot};

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// This side closed it (unbind, shutdown, or [`SessionHandle::close`]).
    Local,
    /// The peer unbound; we answered and closed.
    PeerUnbound,
    /// The peer closed the connection.
    PeerClosed,
    /// Nothing arrived within the inactivity limit.
    Inactivity,
    /// An enquire_link got no answer within the response timeout.
    KeepaliveTimeout,
    /// No bind within the session-init time (SMSC role).
    SessionInitTimeout,
    /// The stream could not be framed any more (answered with generic_nack).
    Framing(String),
    /// The transport failed.
    Io(std::io::ErrorKind),
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The session is closed or closing.
    #[error("session closed")]
    Closed,
    /// No response within the response timeout.
    #[error("no response to {command_id} (sequence {sequence}) in time")]
    Timeout {
        /// What was sent.
        command_id: CommandId,
        /// Its sequence number.
        sequence: u32,
    },
    /// The window stayed full for longer than the caller would wait.
    #[error("{command_id} not sent: the window stayed full")]
    WindowFull {
        /// What was not sent.
        command_id: CommandId,
    },
    /// The operation is not allowed in the session's bind state.
    #[error("{command_id} is not allowed now: {status}")]
    NotAllowed {
        /// What was refused.
        command_id: CommandId,
        /// The status a peer would have answered.
        status: CommandStatus,
    },
}

/// Counters every session keeps, whatever observer is installed.
#[derive(Debug, Default)]
pub struct SessionStats {
    /// Requests sent.
    pub requests_sent: AtomicU64,
    /// Responses matched to a request.
    pub responses_received: AtomicU64,
    /// Responses that matched nothing in flight (late or bogus): dropped.
    pub late_responses: AtomicU64,
    /// Requests whose waiter timed out.
    pub timeouts: AtomicU64,
    /// Malformed PDUs received.
    pub malformed: AtomicU64,
    /// Peer requests refused because the application's queue was full.
    pub queue_full: AtomicU64,
    /// Peer submits refused with `ESME_RTHROTTLED`.
    pub throttled: AtomicU64,
    /// Peer submits refused with `ESME_RMSGQFUL` because the account's
    /// window of unanswered submits was full.
    pub window_full: AtomicU64,
}

struct Pending {
    reply: oneshot::Sender<Pdu>,
    command_id: CommandId,
    sent_at: Instant,
    /// Held until the response arrives or the waiter gives up: the window
    /// slot. `None` for the unbind, which is sent whatever the window.
    _permit: Option<OwnedSemaphorePermit>,
    /// Likewise the account's window slot, when the account has one.
    _account: Option<OwnedSemaphorePermit>,
}

/// What the reader, the writer and every handle share.
struct Shared {
    role: Role,
    config: SessionConfig,
    peer: Option<SocketAddr>,
    state: Mutex<SessionState>,
    /// `None` once the session is closed, so nothing is added after the
    /// final sweep.
    pending: Mutex<Option<HashMap<u32, Pending>>>,
    window: Arc<Semaphore>,
    sequence: SequenceNumbers,
    outbound: mpsc::Sender<Pdu>,
    peer_version: AtomicU8,
    closed: CancellationToken,
    close_reason: Mutex<Option<CloseReason>>,
    /// Milliseconds since `started` at which the last PDU arrived.
    last_inbound_ms: AtomicU64,
    started: Instant,
    stats: SessionStats,
    /// SMSC role: limits every submit from the peer must pass (session
    /// first, account last; see `throttle::try_acquire_all`).
    inbound_limits: ArcSwap<Vec<Arc<RateLimit>>>,
    /// SMSC role: the account's window of unanswered submits, shared by
    /// its sessions; a submit past it is answered `ESME_RMSGQFUL`.
    inbound_window: ArcSwapOption<InboundWindow>,
    /// Peer requests handed to the application and not answered yet: an
    /// unbind waits for them, so a submit being stored still gets its
    /// response before the session closes.
    inbound_open: AtomicUsize,
    /// ESME role: paces our submits to the upstream's rate.
    pacer: OnceLock<Arc<AdaptiveRate>>,
    /// ESME role: requests in flight over every session of the vendor
    /// account (OVH: 10 per account), shared by those sessions.
    account_window: OnceLock<Arc<Semaphore>>,
    observer: Arc<dyn SessionObserver>,
    span: tracing::Span,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while holding it; the data
    // (a state enum, a map) is still consistent enough to shut down with.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn state(&self) -> SessionState {
        *lock(&self.state)
    }

    fn set_state(&self, state: SessionState) {
        *lock(&self.state) = state;
    }

    /// Ends the session once: records why, fails every waiter.
    fn close(&self, reason: CloseReason) {
        {
            let mut slot = lock(&self.close_reason);
            if slot.is_some() {
                return;
            }
            debug!(parent: &self.span, ?reason, "session closing");
            self.observer.closed(&reason);
            *slot = Some(reason);
        }
        self.set_state(SessionState::Closed);
        // Dropping the senders wakes every waiter with `Closed`.
        lock(&self.pending).take();
        self.window.close();
        self.closed.cancel();
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_inbound_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_inbound_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    async fn send(&self, pdu: Pdu) -> Result<(), RequestError> {
        self.outbound
            .send(pdu)
            .await
            .map_err(|_| RequestError::Closed)
    }
}

/// Removes a request's entry (and so its window slot) when the request
/// future ends for any reason. A response that arrives later finds nothing
/// and is counted as late.
struct ForgetOnDrop<'a> {
    shared: &'a Shared,
    sequence: u32,
}

impl Drop for ForgetOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(map) = lock(&self.shared.pending).as_mut() {
            map.remove(&self.sequence);
        }
    }
}

/// A cheap, clonable handle on a running session.
#[derive(Clone)]
pub struct SessionHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SessionHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionHandle")
            .field("role", &self.shared.role)
            .field("peer", &self.shared.peer)
            .field("state", &self.shared.state())
            .finish()
    }
}

/// Peer requests for the application, in arrival order; `None` once the
/// session has ended.
pub type Requests = mpsc::Receiver<Request>;

/// Starts a session over `io`. Returns the handle and the stream of peer
/// requests the application must answer.
pub fn spawn<S>(
    io: S,
    role: Role,
    config: SessionConfig,
    peer: Option<SocketAddr>,
) -> (SessionHandle, Requests)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    spawn_observed(io, role, config, peer, Arc::new(NoopObserver))
}

/// [`spawn`] with metrics hooks.
pub fn spawn_observed<S>(
    io: S,
    role: Role,
    config: SessionConfig,
    peer: Option<SocketAddr>,
    observer: Arc<dyn SessionObserver>,
) -> (SessionHandle, Requests)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let (out_tx, out_rx) = mpsc::channel(config.outbound_queue.max(1));
    let (req_tx, req_rx) = mpsc::channel(config.event_queue.max(1));
    let span = tracing::info_span!(
        "smpp",
        ?role,
        peer = %peer.map_or_else(|| "-".to_owned(), |p| p.to_string()),
        system_id = tracing::field::Empty,
        bind = tracing::field::Empty,
    );
    let shared = Arc::new(Shared {
        role,
        peer,
        state: Mutex::new(SessionState::Open),
        pending: Mutex::new(Some(HashMap::new())),
        window: Arc::new(Semaphore::new(config.window.max(1))),
        sequence: SequenceNumbers::default(),
        outbound: out_tx,
        peer_version: AtomicU8::new(InterfaceVersion::V34.0),
        closed: CancellationToken::new(),
        close_reason: Mutex::new(None),
        last_inbound_ms: AtomicU64::new(0),
        started: Instant::now(),
        stats: SessionStats::default(),
        inbound_limits: ArcSwap::from_pointee(Vec::new()),
        inbound_window: ArcSwapOption::empty(),
        inbound_open: AtomicUsize::new(0),
        pacer: OnceLock::new(),
        account_window: OnceLock::new(),
        observer,
        span: span.clone(),
        config,
    });
    let reader = FramedRead::new(
        read,
        SmppCodec::new().with_max_command_length(shared.config.max_command_length),
    );
    let writer = FramedWrite::new(write, SmppCodec::new());
    tokio::spawn(read_loop(shared.clone(), reader, req_tx).instrument(span.clone()));
    tokio::spawn(write_loop(shared.clone(), writer, out_rx).instrument(span.clone()));
    let handle = SessionHandle { shared };
    if let Some(interval) = handle.shared.config.enquire_link_interval {
        tokio::spawn(keepalive(handle.clone(), interval).instrument(span));
    }
    (handle, req_rx)
}

impl SessionHandle {
    /// Sends a request and waits for its response. Waits first for a window
    /// slot. A response with an error status is still `Ok`: the caller reads
    /// `command_status`.
    pub async fn request(&self, body: Body) -> Result<Pdu, RequestError> {
        self.request_within(body, None).await
    }

    /// [`request`](Self::request), giving up with [`RequestError::WindowFull`]
    /// when no window slot frees up within `wait` (the router then tries
    /// another upstream rather than queue behind a slow one).
    pub async fn request_within(
        &self,
        body: Body,
        wait: Option<Duration>,
    ) -> Result<Pdu, RequestError> {
        let shared = &self.shared;
        let command_id = body.command_id();
        check_outbound(shared.role, shared.state(), command_id)
            .map_err(|status| RequestError::NotAllowed { command_id, status })?;
        let submission = is_submission(command_id);
        let pacer = submission.then(|| shared.pacer.get()).flatten();
        let account_window = submission.then(|| shared.account_window.get()).flatten();
        // The pacer first: messages queue for their turn there, not for a
        // window slot (a slot wait is bounded by `wait`, a pacing wait is
        // the upstream's rate). Then the window slots (the session's, the
        // account's); when they were not free at once, the message waited
        // and is paced once more, so slots freeing together never send a
        // burst.
        let paced = async {
            if let Some(pacer) = pacer {
                pacer.acquire().await;
            }
        };
        // Biased: an unpaced request passes at once, without registering
        // (and dropping) a waiter on the close token each time.
        tokio::select! {
            biased;
            () = paced => {}
            () = shared.closed.cancelled() => return Err(RequestError::Closed),
        }
        let at_once = (|| {
            let permit = shared.window.clone().try_acquire_owned().ok()?;
            let account = match account_window {
                Some(window) => Some(window.clone().try_acquire_owned().ok()?),
                None => None,
            };
            Some((permit, account))
        })();
        let (permit, account) = match at_once {
            Some(slots) => slots,
            None => {
                let slots = async {
                    let permit = shared
                        .window
                        .clone()
                        .acquire_owned()
                        .await
                        .map_err(|_| RequestError::Closed)?;
                    let account = match account_window {
                        Some(window) => Some(
                            window
                                .clone()
                                .acquire_owned()
                                .await
                                .map_err(|_| RequestError::Closed)?,
                        ),
                        None => None,
                    };
                    Ok::<_, RequestError>((permit, account))
                };
                let slots = async {
                    match wait {
                        Some(wait) => tokio::time::timeout(wait, slots)
                            .await
                            .map_err(|_| RequestError::WindowFull { command_id })?,
                        None => slots.await,
                    }
                };
                let slots = tokio::select! {
                    slots = slots => slots?,
                    () = shared.closed.cancelled() => return Err(RequestError::Closed),
                };
                if let Some(pacer) = pacer {
                    tokio::select! {
                        () = pacer.acquire() => {}
                        () = shared.closed.cancelled() => return Err(RequestError::Closed),
                    }
                }
                slots
            }
        };
        let sequence = shared.sequence.next();
        let (reply, response) = oneshot::channel();
        {
            let mut pending = lock(&shared.pending);
            let map = pending.as_mut().ok_or(RequestError::Closed)?;
            map.insert(
                sequence,
                Pending {
                    reply,
                    command_id,
                    sent_at: Instant::now(),
                    _permit: Some(permit),
                    _account: account,
                },
            );
            shared.observer.in_flight(map.len());
        }
        // From here on, however this future ends (answered, timed out, or
        // dropped by a caller's select!), the entry and its window slot go.
        let _forget = ForgetOnDrop { shared, sequence };
        shared.send(Pdu::new(sequence, body)).await?;
        shared.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
        shared.observer.request_sent(command_id);
        match tokio::time::timeout(shared.config.response_timeout, response).await {
            Ok(Ok(pdu)) => {
                if let Some(pacer) = pacer {
                    match pdu.command_status {
                        CommandStatus::Throttled | CommandStatus::MessageQueueFull => {
                            pacer.on_throttled()
                        }
                        CommandStatus::Ok => pacer.on_success(),
                        _ => {}
                    }
                }
                Ok(pdu)
            }
            Ok(Err(_)) => Err(RequestError::Closed),
            Err(_) => {
                shared.stats.timeouts.fetch_add(1, Ordering::Relaxed);
                shared.observer.request_timed_out(command_id);
                Err(RequestError::Timeout {
                    command_id,
                    sequence,
                })
            }
        }
    }

    /// Unbinds gracefully: stops new requests, waits (up to the close grace)
    /// for those in flight, sends unbind, waits for unbind_resp, closes.
    pub async fn unbind(&self) {
        let shared = &self.shared;
        if !matches!(shared.state(), SessionState::Bound(_)) {
            shared.close(CloseReason::Local);
            return;
        }
        shared.set_state(SessionState::Unbinding);
        let grace = shared.config.close_grace;
        // The peer's requests in our hands get their answers first.
        let deadline = Instant::now() + grace;
        while shared.inbound_open.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Taking every window slot means nothing is in flight any more.
        let slots = u32::try_from(shared.config.window.max(1)).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(grace, shared.window.acquire_many(slots)).await;
        let sequence = shared.sequence.next();
        let (reply, response) = oneshot::channel();
        let registered = lock(&shared.pending)
            .as_mut()
            .map(|map| {
                map.insert(
                    sequence,
                    Pending {
                        reply,
                        command_id: CommandId::Unbind,
                        sent_at: Instant::now(),
                        _permit: None,
                        _account: None,
                    },
                )
            })
            .is_some();
        if registered && shared.send(Pdu::new(sequence, Body::Unbind)).await.is_ok() {
            let wait = shared.config.response_timeout.min(grace);
            let _ = tokio::time::timeout(wait, response).await;
        }
        shared.close(CloseReason::Local);
    }

    /// Closes at once; requests in flight fail with [`RequestError::Closed`].
    pub fn close(&self) {
        self.shared.close(CloseReason::Local);
    }

    /// Closes with a specific reason (the SMSC layer's session-init timer).
    pub(crate) fn close_with(&self, reason: CloseReason) {
        self.shared.close(reason);
    }

    /// Resolves once the session has ended.
    pub async fn closed(&self) {
        self.shared.closed.cancelled().await;
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Why the session ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        lock(&self.shared.close_reason).clone()
    }

    /// The bind state.
    pub fn state(&self) -> SessionState {
        self.shared.state()
    }

    /// Records a successful bind: its type, the peer's system_id and version
    /// (a 3.3 peer gets no TLVs from now on).
    pub fn set_bound(&self, bind: BindType, system_id: &str, peer_version: InterfaceVersion) {
        self.shared
            .peer_version
            .store(peer_version.0, Ordering::Relaxed);
        self.shared.set_state(SessionState::Bound(bind));
        self.shared.span.record("system_id", system_id);
        self.shared.span.record("bind", bind.name());
        info!(parent: &self.shared.span, version = peer_version.0, "bound");
    }

    /// The peer's version as the bind settled it: what its bind response
    /// announced, or the version assumed when it announced none. Whether
    /// TLVs reach the peer at all follows from it (a 3.3 peer gets none:
    /// the encoder leaves them out), so whoever builds PDUs asks here first.
    pub fn peer_version(&self) -> InterfaceVersion {
        InterfaceVersion(self.shared.peer_version.load(Ordering::Relaxed))
    }

    /// SMSC role: the rate limits each submit from the peer must pass,
    /// session limit first, shared account limit last. Set after bind, and
    /// again when a reload changes the account's rates.
    pub fn set_inbound_limits(&self, limits: Vec<Arc<RateLimit>>) {
        self.shared.inbound_limits.store(Arc::new(limits));
    }

    /// SMSC role: the account window every submit from the peer takes a
    /// slot of until it is answered (`None`: no account window). A reload
    /// may change it; submits already open keep their slots.
    pub fn set_inbound_window(&self, window: Option<Arc<InboundWindow>>) {
        self.shared.inbound_window.store(window);
    }

    /// ESME role: paces submits to the upstream's rate and slows down when
    /// it answers `ESME_RTHROTTLED` or `ESME_RMSGQFUL`. Set once; shared by
    /// every session of one upstream account.
    pub fn set_pacer(&self, pacer: Arc<AdaptiveRate>) {
        let _ = self.shared.pacer.set(pacer);
    }

    /// ESME role: a window shared by every session of the vendor account
    /// (OVH allows 10 in flight per account, whatever the sessions): each
    /// submit holds a slot of it as well as one of the session's. Set once.
    pub fn set_account_window(&self, window: Arc<Semaphore>) {
        let _ = self.shared.account_window.set(window);
    }

    /// Which role this session plays.
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// The peer's address, when known.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.shared.peer
    }

    /// The session's settings.
    pub fn config(&self) -> &SessionConfig {
        &self.shared.config
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        lock(&self.shared.pending).as_ref().map_or(0, HashMap::len)
    }

    /// The session's counters.
    pub fn stats(&self) -> &SessionStats {
        &self.shared.stats
    }

    /// The tracing span of this session, for the layers above.
    pub fn span(&self) -> &tracing::Span {
        &self.shared.span
    }
}

/// A request from the peer, for the application to answer.
#[derive(Debug)]
pub struct Request {
    /// The PDU as received.
    pub pdu: Pdu,
    /// Answers it.
    pub responder: Responder,
}

/// Answers one peer request. Dropped unanswered, it answers `ESME_RSYSERR`.
pub struct Responder {
    shared: Arc<Shared>,
    command_id: CommandId,
    sequence: u32,
    answered: bool,
    /// The account window slot a submit holds until it is answered (given
    /// back when the responder goes, after the answer was queued).
    _window: Option<WindowSlot>,
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("command_id", &self.command_id)
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl Responder {
    /// Answers with `status` and `body` (the matching `*_resp`).
    pub async fn respond(mut self, status: CommandStatus, body: Body) -> Result<(), RequestError> {
        self.answered = true;
        let pdu = Pdu {
            sequence_number: self.sequence,
            command_status: status,
            body,
        };
        self.shared.send(pdu).await
    }

    /// Answers with an error status and the response's empty form.
    pub async fn reject(mut self, status: CommandStatus) -> Result<(), RequestError> {
        self.answered = true;
        match Pdu::error_response(self.command_id, self.sequence, status) {
            Some(pdu) => self.shared.send(pdu).await,
            None => Ok(()),
        }
    }

    /// Leaves the request unanswered on purpose, without the `ESME_RSYSERR`
    /// a dropped responder sends. Only for simulating a broken peer.
    pub fn ignore(mut self) {
        self.answered = true;
    }

    /// The sequence number being answered.
    pub fn sequence(&self) -> u32 {
        self.sequence
    }

    /// The handle of the session the request came on.
    pub fn session(&self) -> SessionHandle {
        SessionHandle {
            shared: self.shared.clone(),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        // After `respond`/`reject` sent the answer (they consume the
        // responder), or here when it was never answered.
        self.shared.inbound_open.fetch_sub(1, Ordering::AcqRel);
        if self.answered {
            return;
        }
        if let Some(pdu) =
            Pdu::error_response(self.command_id, self.sequence, CommandStatus::SystemError)
        {
            crate::warn_limited!("request dropped unanswered", parent: &self.shared.span, command = %self.command_id);
            if let Err(mpsc::error::TrySendError::Full(pdu)) = self.shared.outbound.try_send(pdu) {
                let outbound = self.shared.outbound.clone();
                tokio::spawn(async move {
                    let _ = outbound.send(pdu).await;
                });
            }
        }
    }
}

async fn read_loop<R>(
    shared: Arc<Shared>,
    mut reader: FramedRead<R, SmppCodec>,
    requests: mpsc::Sender<Request>,
) where
    R: AsyncRead + Send + Unpin,
{
    // One waiter on the close token for the session's life, not one
    // registered and dropped per PDU read.
    let closed = shared.closed.cancelled();
    tokio::pin!(closed);
    // Likewise one inactivity timer, moved only when it fires early (a
    // frame came since it was set), not one registered in tokio's timer
    // wheel and removed again for each frame waited for.
    let limit = shared.config.inactivity_timeout;
    let mut since = Instant::now();
    let idle = tokio::time::sleep(limit.unwrap_or(Duration::MAX));
    tokio::pin!(idle);
    let reason = loop {
        let next = tokio::select! {
            biased;
            () = &mut closed => break CloseReason::Local,
            () = &mut idle, if limit.is_some() => {
                let limit = limit.unwrap_or(Duration::MAX);
                if since.elapsed() >= limit {
                    break CloseReason::Inactivity;
                }
                idle.as_mut().reset(since + limit);
                continue;
            }
            next = reader.next() => next,
        };
        let frame = match next {
            None => break CloseReason::PeerClosed,
            Some(Err(CodecError::Frame(err))) => {
                crate::warn_limited!("unframeable input; closing", %err);
                let nack =
                    Pdu::generic_nack(err.sequence_number().unwrap_or(0), err.command_status());
                let _ = shared.send(nack).await;
                break CloseReason::Framing(err.to_string());
            }
            Some(Err(CodecError::Io(err))) => break CloseReason::Io(err.kind()),
            Some(Ok(frame)) => frame,
        };
        shared.touch();
        match frame {
            Frame::Malformed(malformed) => {
                shared.stats.malformed.fetch_add(1, Ordering::Relaxed);
                shared.observer.malformed(malformed.command_status());
                debug!(%malformed, "malformed PDU");
                if let Some(resp) = malformed.response() {
                    let _ = shared.send(resp).await;
                }
            }
            Frame::Pdu(pdu) => {
                if let Some(reason) = dispatch(&shared, pdu, &requests).await {
                    break reason;
                }
            }
        }
        // The limit runs from here, as the wait for the next frame starts.
        since = Instant::now();
    };
    // Let the writer flush what is queued (an unbind_resp, a generic_nack).
    tokio::task::yield_now().await;
    shared.close(reason);
}

/// Handles one PDU; `Some` ends the session.
async fn dispatch(
    shared: &Arc<Shared>,
    pdu: Pdu,
    requests: &mpsc::Sender<Request>,
) -> Option<CloseReason> {
    let command_id = pdu.command_id();
    if command_id.is_response() {
        complete(shared, pdu);
        return None;
    }
    let sequence = pdu.sequence_number;
    match command_id {
        CommandId::EnquireLink => {
            let _ = shared.send(Pdu::new(sequence, Body::EnquireLinkResp)).await;
            return None;
        }
        CommandId::Unbind
            if matches!(
                shared.state(),
                SessionState::Bound(_) | SessionState::Unbinding
            ) =>
        {
            shared.set_state(SessionState::Unbinding);
            let _ = shared.send(Pdu::new(sequence, Body::UnbindResp)).await;
            return Some(CloseReason::PeerUnbound);
        }
        _ => {}
    }
    if let Err(status) = check_inbound(shared.role, shared.state(), command_id) {
        debug!(command = %command_id, %status, "refused by bind state");
        if let Some(resp) = Pdu::error_response(command_id, sequence, status) {
            let _ = shared.send(resp).await;
        }
        return None;
    }
    let mut window = None;
    if is_submission(command_id) {
        // The window before the rates: a submit refused for the window
        // spends no rate cell.
        if let Some(account) = shared.inbound_window.load().as_ref() {
            match account.try_take() {
                Some(slot) => window = Some(slot),
                None => {
                    shared.stats.window_full.fetch_add(1, Ordering::Relaxed);
                    if let Some(resp) =
                        Pdu::error_response(command_id, sequence, CommandStatus::MessageQueueFull)
                    {
                        let _ = shared.send(resp).await;
                    }
                    return None;
                }
            }
        }
        let limits = shared.inbound_limits.load();
        if !limits.is_empty() && !try_acquire_all(limits.iter().map(Arc::as_ref)) {
            shared.stats.throttled.fetch_add(1, Ordering::Relaxed);
            if let Some(resp) = Pdu::error_response(command_id, sequence, CommandStatus::Throttled)
            {
                let _ = shared.send(resp).await;
            }
            return None;
        }
    }
    shared.inbound_open.fetch_add(1, Ordering::AcqRel);
    let request = Request {
        pdu,
        responder: Responder {
            shared: shared.clone(),
            command_id,
            sequence,
            answered: false,
            _window: window,
        },
    };
    match requests.try_send(request) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(mut request)) => {
            shared.stats.queue_full.fetch_add(1, Ordering::Relaxed);
            request.responder.answered = true;
            if let Some(resp) =
                Pdu::error_response(command_id, sequence, CommandStatus::MessageQueueFull)
            {
                let _ = shared.send(resp).await;
            }
        }
        Err(mpsc::error::TrySendError::Closed(request)) => {
            // Nobody listens: the responder's drop answers ESME_RSYSERR.
            drop(request);
        }
    }
    None
}

/// Operations that carry a message and count against a rate.
fn is_submission(command_id: CommandId) -> bool {
    matches!(
        command_id,
        CommandId::SubmitSm | CommandId::SubmitMulti | CommandId::DataSm
    )
}

/// Hands a response to the request waiting for it, or counts it as late.
fn complete(shared: &Shared, pdu: Pdu) {
    let entry = lock(&shared.pending)
        .as_mut()
        .and_then(|map| map.remove(&pdu.sequence_number));
    match entry {
        Some(pending) => {
            if let Some(bind) = BindType::of(pending.command_id) {
                if pdu.command_status.is_ok() {
                    // Bound from this very PDU on: an SMSC may deliver queued
                    // receipts right behind its bind response, before the
                    // waiter has run.
                    shared.set_state(SessionState::Bound(bind));
                }
            }
            shared
                .stats
                .responses_received
                .fetch_add(1, Ordering::Relaxed);
            shared.observer.response_received(
                pending.command_id,
                pdu.command_status,
                pending.sent_at.elapsed(),
            );
            let _ = pending.reply.send(pdu);
        }
        None => {
            shared.stats.late_responses.fetch_add(1, Ordering::Relaxed);
            shared.observer.late_response(pdu.command_id());
            debug!(command = %pdu.command_id(), sequence = pdu.sequence_number, "response matches nothing in flight; dropped");
        }
    }
}

async fn write_loop<W>(
    shared: Arc<Shared>,
    mut writer: FramedWrite<W, SmppCodec>,
    mut queue: mpsc::Receiver<Pdu>,
) where
    W: AsyncWrite + Send + Unpin,
{
    // One waiter on the close token for the writer's life (see read_loop).
    let closed = shared.closed.cancelled();
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            pdu = queue.recv() => {
                let Some(pdu) = pdu else { break };
                let version = InterfaceVersion(shared.peer_version.load(Ordering::Relaxed));
                writer.encoder_mut().set_peer_version(version);
                // Batch whatever else is queued into one flush, and what
                // the tasks woken with this PDU's sender queue once they
                // ran: the writer yields once before it writes. Tasks are
                // often woken together (a log group answers its writers
                // at once, a claim hands out a batch), and the task that
                // queues first wakes the writer straight after it (tokio's
                // LIFO slot), so without the yield each of them cost a
                // write system call of its own, and the peer a read.
                let write = async {
                    let mut result = writer.feed(pdu).await;
                    let mut yielded = false;
                    while result.is_ok() {
                        match queue.try_recv() {
                            Ok(more) => result = writer.feed(more).await,
                            Err(_) if yielded => break,
                            Err(_) => {
                                yielded = true;
                                tokio::task::yield_now().await;
                            }
                        }
                    }
                    result.and(writer.flush().await)
                };
                match closing_bounded(&shared, write).await {
                    Some(Ok(())) => {}
                    Some(Err(err)) => {
                        debug!(%err, "write failed");
                        shared.close(CloseReason::Io(io_kind(&err)));
                        break;
                    }
                    None => {
                        debug!("peer took nothing within the close grace; dropping what is queued");
                        break;
                    }
                }
            }
            () = &mut closed => {
                let drain = async {
                    while let Ok(pdu) = queue.try_recv() {
                        if writer.feed(pdu).await.is_err() {
                            break;
                        }
                    }
                    let _ = writer.flush().await;
                };
                let _ = tokio::time::timeout(shared.config.close_grace, drain).await;
                break;
            }
        }
    }
    // The queue goes first, so requests waiting for room in it fail now.
    drop(queue);
    let _ = tokio::time::timeout(shared.config.close_grace, writer.get_mut().shutdown()).await;
}

/// Runs a write to the peer; once the session is closed, allows it the
/// close grace to finish (an unbind_resp may be in it) and then gives up
/// (`None`). A peer that stopped reading never lets a write finish, and
/// the writer must not keep the connection, its queue and the requests
/// waiting for room in that queue alive for as long as the peer lives.
async fn closing_bounded<F: std::future::Future>(shared: &Shared, write: F) -> Option<F::Output> {
    tokio::pin!(write);
    tokio::select! {
        out = &mut write => return Some(out),
        () = shared.closed.cancelled() => {}
    }
    tokio::time::timeout(shared.config.close_grace, write)
        .await
        .ok()
}

fn io_kind(err: &CodecError) -> std::io::ErrorKind {
    match err {
        CodecError::Io(e) => e.kind(),
        CodecError::Frame(_) => std::io::ErrorKind::InvalidData,
    }
}

/// Sends enquire_link whenever nothing has arrived for `interval`; a peer
/// that does not answer within the response timeout is taken for dead.
///
/// The probe takes a window slot like any request, so with the window full
/// of requests the silent peer will never answer it would first wait for
/// those to time out, and then behind every other request queued for a
/// slot: found dead only after several response timeouts. So the response
/// timeout runs from the moment the probe is due, slot wait included, and
/// when it passes with nothing at all arrived from the peer (no answer to
/// the probe nor to anything else in flight), the peer is dead; anything
/// arrived meanwhile shows it alive.
async fn keepalive(handle: SessionHandle, interval: Duration) {
    let shared = &handle.shared;
    loop {
        let idle = shared.idle_for();
        if idle < interval {
            tokio::select! {
                () = tokio::time::sleep(interval - idle) => continue,
                () = shared.closed.cancelled() => return,
            }
        }
        let limit = shared.config.response_timeout;
        let probe = tokio::time::timeout(limit, handle.request(Body::EnquireLink)).await;
        match probe {
            Ok(Ok(_)) => {}
            Err(_) if shared.idle_for() < limit => {
                // No slot in time, but the peer answered something.
            }
            Err(_) | Ok(Err(RequestError::Timeout { .. })) => {
                warn!(
                    silent_for = ?shared.idle_for(),
                    "enquire_link unanswered (nothing from the peer for longer than the enquire_link interval and the response timeout); closing"
                );
                shared.close(CloseReason::KeepaliveTimeout);
                return;
            }
            Ok(Err(RequestError::Closed)) => return,
            Ok(Err(RequestError::NotAllowed { .. })) => {
                // Unbinding: nothing more to keep alive.
                return;
            }
            Ok(Err(RequestError::WindowFull { .. })) => {}
        }
    }
}
