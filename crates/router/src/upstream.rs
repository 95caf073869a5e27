//! One upstream: its pool of bound sessions, its circuit breaker and its
//! pacer.
//!
//! The pool never holds more sessions than the vendor allows (the profile's
//! sessions per credential: Mensatek 1, Infobip 4), each kept bound by its
//! own reconnecting client. One pacer is shared by every session of the
//! upstream account, so the vendor's rate holds across sessions. Requests the
//! upstream sends (receipts, MO) are forwarded, tagged with the upstream's
//! name, to whoever handles them.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tern_session::backoff::{BackoffConfig, BackoffError};
use tern_session::esme::{BindParams, EsmeClient, UpstreamSession, UpstreamTls};
use tern_session::throttle::AdaptiveRate;
use tern_session::{Request, SessionConfig, SessionHandle};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::account::BindCap;
use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::profile::Profile;

/// A request from an upstream (deliver_sm, data_sm), for the receipt and
/// MO handling.
#[derive(Debug)]
pub struct UpstreamRequest {
    /// Which upstream sent it.
    pub upstream: Arc<str>,
    /// The request and its responder.
    pub request: Request,
}

/// How to reach and use one upstream.
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    /// Its name in routes and logs.
    pub name: String,
    /// Host name, resolved at every connect.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS, when used.
    pub tls: Option<UpstreamTls>,
    /// The bind.
    pub bind: BindParams,
    /// Sessions wanted; capped by the profile's limit.
    pub sessions: usize,
    /// Each session's settings.
    pub session: SessionConfig,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Pacing shared by every session of the vendor account (see
    /// [`crate::account`]); it slows down when the vendor throttles.
    pub pacer: Option<Arc<AdaptiveRate>>,
    /// Requests in flight over every session of the vendor account, when
    /// the vendor counts them per account (OVH: 10).
    pub account_window: Option<Arc<Semaphore>>,
    /// Sessions the vendor account may have bound at once, shared with the
    /// other entries of the account: a slot binds only holding a permit.
    pub bind_cap: Option<BindCap>,
    /// When to stop trying it for a while.
    pub breaker: BreakerConfig,
    /// What the vendor is like.
    pub profile: Arc<Profile>,
    /// Gates, one per session slot: slot k binds only once `start_after[k]`
    /// is cancelled (a slot without a gate binds at once). A reloaded
    /// upstream replaces the old pool one session at a time this way, so
    /// the account never has more sessions than the vendor allows.
    pub start_after: Vec<CancellationToken>,
    /// Permission to bind each slot, when several nodes share the account
    /// (see [`SlotGate`]); `None` on a node of its own.
    pub gate: Option<Arc<dyn SlotGate>>,
}

/// Boxed future of a [`SlotGate`] (the trait is used as `dyn`).
pub type GateFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Permission for a session slot to bind, granted from outside the pool.
///
/// Several Tern nodes using one vendor account must not bind more sessions
/// together than the vendor allows (Mensatek: one per credential). Each
/// slot is then held by one node at a time, and the node's slot binds only
/// while it holds it.
pub trait SlotGate: Send + Sync + std::fmt::Debug {
    /// Waits until this node holds slot `slot` of `upstream`'s
    /// `pool_size` slots, or `stop`. The token returned is cancelled when
    /// the hold is lost or given up (to another node, for its share): the
    /// session must then unbind at once, before another node may bind.
    /// `None` when `stop` came first.
    fn hold(
        &self,
        upstream: &str,
        slot: usize,
        pool_size: usize,
        stop: CancellationToken,
    ) -> GateFuture<Option<CancellationToken>>;

    /// Gives the slot up once its session has unbound.
    fn release(&self, upstream: &str, slot: usize) -> GateFuture<()>;
}

/// A running upstream.
#[derive(Debug)]
pub struct Upstream {
    name: Arc<str>,
    profile: Arc<Profile>,
    breaker: CircuitBreaker,
    window: usize,
    sessions: Mutex<Vec<SessionHandle>>,
    next: AtomicUsize,
    /// Sessions the pool keeps (after the profile's cap).
    pool_size: usize,
    /// Each slot's stop token and its session while bound, so one slot can
    /// be retired on its own (see [`Upstream::retire_slot`]).
    slots: Vec<Slot>,
    /// Slots this node holds, when a [`SlotGate`] grants them.
    held: Arc<AtomicUsize>,
    /// Bound with the profile's flash system_type (Infobip's `NSMS`).
    flash: bool,
    /// The account's pacer, slowed by throttles the engine reads.
    pacer: Option<Arc<AdaptiveRate>>,
}

/// One session slot of a pool: its reconnecting client's stop token, the
/// session it has bound now, and whether its task has ended (session
/// unbound, gate released).
#[derive(Debug)]
struct Slot {
    stop: CancellationToken,
    session: Mutex<Option<SessionHandle>>,
    ended: CancellationToken,
}

impl Upstream {
    /// Starts the pool: one reconnecting client per allowed session.
    pub fn start(
        config: UpstreamConfig,
        inbound: mpsc::Sender<UpstreamRequest>,
        shutdown: CancellationToken,
    ) -> Arc<Upstream> {
        let cap = config
            .profile
            .limits
            .sessions_per_credential
            .map_or(usize::MAX, |n| n as usize);
        let pool_size = config.sessions.clamp(1, cap.max(1));
        let flash = config
            .profile
            .system_type
            .flash
            .as_deref()
            .is_some_and(|f| config.bind.system_type.as_bytes() == f.as_bytes());
        let upstream = Arc::new(Upstream {
            name: config.name.as_str().into(),
            profile: config.profile.clone(),
            breaker: CircuitBreaker::new(config.breaker),
            window: config.session.window.max(1),
            sessions: Mutex::new(Vec::new()),
            next: AtomicUsize::new(0),
            pool_size,
            held: Arc::new(AtomicUsize::new(0)),
            flash,
            pacer: config.pacer.clone(),
            slots: (0..pool_size)
                .map(|_| Slot {
                    stop: shutdown.child_token(),
                    session: Mutex::new(None),
                    ended: CancellationToken::new(),
                })
                .collect(),
        });
        for slot in 0..pool_size {
            let client = EsmeClient {
                host: config.host.clone(),
                port: config.port,
                tls: config.tls.clone(),
                params: config.bind.clone(),
                session: config.session.clone(),
                backoff: config.backoff.clone(),
                pacer: config.pacer.clone(),
                account_window: config.account_window.clone(),
            };
            let (tx, rx) = mpsc::channel(1);
            let bind_cap = config.bind_cap.clone();
            let name = config.name.clone();
            let stop = upstream.slots[slot].stop.clone();
            let ended = upstream.slots[slot].ended.clone();
            let start_after = config.start_after.get(slot).cloned();
            let gate = config.gate.clone();
            let held = upstream.held.clone();
            tokio::spawn(async move {
                if let Some(after) = start_after {
                    tokio::select! {
                        () = after.cancelled() => {}
                        () = stop.cancelled() => {
                            ended.cancel();
                            return;
                        }
                    }
                }
                // Held while the slot's client runs: the account's other
                // slots, of this entry or another, wait for it.
                let _bind_permit = match bind_cap {
                    None => None,
                    Some(cap) => tokio::select! {
                        // Told once, while the slot waits.
                        permit = async {
                            if cap.permits.available_permits() == 0 {
                                info!(
                                    upstream = %name,
                                    slot,
                                    account = %cap.key,
                                    sessions = cap.sessions,
                                    "the vendor account has all its sessions bound; this slot waits"
                                );
                            }
                            cap.permits.clone().acquire_owned().await
                        } => permit.ok(),
                        () = stop.cancelled() => {
                            ended.cancel();
                            return;
                        }
                    },
                };
                let outcome = match gate {
                    None => client.run(tx, stop).await,
                    Some(gate) => {
                        let held = Held {
                            slots: held,
                            pool_size,
                            pacer: client.pacer.clone(),
                        };
                        run_gated(client, tx, &name, slot, gate.as_ref(), &held, stop).await
                    }
                };
                if let Err(err) = outcome {
                    warn!(upstream = %name, %err, "upstream client cannot run");
                }
                ended.cancel();
            });
            tokio::spawn(upstream.clone().adopt(slot, rx, inbound.clone()));
        }
        upstream
    }

    /// Takes each session the client binds into the pool until it closes,
    /// forwarding what the upstream sends.
    async fn adopt(
        self: Arc<Self>,
        slot: usize,
        mut bound: mpsc::Receiver<UpstreamSession>,
        inbound: mpsc::Sender<UpstreamRequest>,
    ) {
        while let Some(UpstreamSession {
            handle,
            mut requests,
            ..
        }) = bound.recv().await
        {
            self.lock().push(handle.clone());
            if let Some(pacer) = &self.pacer {
                pacer.session_bound();
            }
            *self.slots[slot]
                .session
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(handle.clone());
            while let Some(request) = requests.recv().await {
                let forwarded = UpstreamRequest {
                    upstream: self.name.clone(),
                    request,
                };
                // Nobody listening: the request's responder answers
                // ESME_RSYSERR and the upstream delivers it again later.
                let _ = inbound.send(forwarded).await;
            }
            handle.closed().await;
            if let Some(pacer) = &self.pacer {
                pacer.session_ended();
            }
            self.lock().retain(|s| !s.is_closed());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SessionHandle>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its profile.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Its circuit breaker.
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The vendor throttled a message sent here (a submit answer or a
    /// receipt whose code its profile calls `throttled`): the account's
    /// pacer slows down. Not a failure: the breaker is left alone.
    pub fn throttled(&self) {
        if let Some(pacer) = &self.pacer {
            pacer.on_throttled();
        }
    }

    /// A receipt from the vendor says it throttled a message (OVH err 55):
    /// the pacer slows down if it paces at a known or learnt rate. An
    /// unpaced one is left to the submit answers to teach: a receipt comes
    /// long after its submit, so what the upstream accepted in the last
    /// second says nothing of the rate that was throttled.
    pub fn receipt_throttled(&self) {
        if let Some(pacer) = self.pacer.as_ref().filter(|p| p.current_rate().is_finite()) {
            pacer.on_throttled();
        }
    }

    /// The account's pacer.
    pub fn pacer(&self) -> Option<&Arc<AdaptiveRate>> {
        self.pacer.as_ref()
    }

    /// Sessions the pool keeps (the profile may cap what was asked).
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    /// Session slots this node holds from its [`SlotGate`] (0 without one).
    pub fn held_slots(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }

    /// Bound sessions now.
    pub fn bound(&self) -> usize {
        self.lock().iter().filter(|s| !s.is_closed()).count()
    }

    /// A bound session with room in its window, round robin; `None` when
    /// none is bound.
    pub fn session(&self) -> Option<SessionHandle> {
        let sessions = self.lock();
        let n = sessions.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let in_turn = || {
            (0..n)
                .map(|k| &sessions[(start + k) % n])
                .filter(|s| !s.is_closed())
        };
        in_turn()
            .find(|s| s.in_flight() < self.window)
            .or_else(|| in_turn().next())
            .cloned()
    }

    /// Whether its sessions are bound with the profile's flash system_type:
    /// then it carries flash messages only, and only those (Infobip `NSMS`).
    pub fn is_flash(&self) -> bool {
        self.flash
    }

    /// Whether TLVs reach the vendor over every session bound now, as their
    /// bind responses said (a session of an SMSC that announced no
    /// `sc_interface_version` may take none). False with no session bound.
    pub fn takes_tlvs(&self) -> bool {
        let sessions = self.lock();
        let mut open = sessions.iter().filter(|s| !s.is_closed()).peekable();
        open.peek().is_some() && open.all(|s| s.peer_version().supports_tlvs())
    }

    /// Whether a message may go here now: a session bound and the circuit closed.
    pub fn is_available(&self, now: Instant) -> bool {
        self.bound() > 0 && self.breaker.is_available(now)
    }

    /// Takes slot `slot` out of service: waits (up to `deadline`) until its
    /// session has no request in flight, then unbinds it with the handshake
    /// and stops it reconnecting. The router must no longer list this pool,
    /// so nothing new is sent meanwhile. Returns once the session is closed
    /// or the deadline passed.
    pub async fn retire_slot(&self, slot: usize, deadline: tokio::time::Instant) {
        let Some(slot) = self.slots.get(slot) else {
            return;
        };
        let session = slot
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(session) = &session {
            while session.in_flight() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        slot.stop.cancel();
        if let Some(session) = session {
            let _ = tokio::time::timeout_at(deadline, session.closed()).await;
        }
        // Its gate released too, so the slot that replaces it may take it.
        let _ = tokio::time::timeout_at(deadline, slot.ended.cancelled()).await;
    }

    /// Requests awaiting this upstream's answer, over every session.
    pub fn in_flight(&self) -> usize {
        self.lock().iter().map(SessionHandle::in_flight).sum()
    }

    /// Requests in flight over the pool's capacity, 0.0 to 1.0.
    pub fn load(&self) -> f64 {
        let sessions = self.lock();
        let in_flight: usize = sessions.iter().map(SessionHandle::in_flight).sum();
        let capacity = (sessions.len().max(1) * self.window) as f64;
        in_flight as f64 / capacity
    }
}

/// The slots of one pool this node holds, and the pacer that follows them:
/// holding k of n slots, the node sends at k/n of the account's rate, so
/// the nodes together keep the vendor's rate for the account.
struct Held {
    slots: Arc<AtomicUsize>,
    pool_size: usize,
    pacer: Option<Arc<AdaptiveRate>>,
}

impl Held {
    fn took(&self) {
        let now = self.slots.fetch_add(1, Ordering::Relaxed) + 1;
        self.pace(now);
    }

    fn let_go(&self) {
        let now = self.slots.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        self.pace(now);
    }

    fn pace(&self, held: usize) {
        // With no slot held the pacer is unused; it keeps its last share.
        if let (Some(pacer), true) = (&self.pacer, held > 0) {
            pacer.set_share(held as f64 / self.pool_size.max(1) as f64);
        }
    }
}

/// Runs a slot's client only while `gate` grants the slot: waits for the
/// hold, binds, unbinds at once when the hold is lost, releases it once
/// unbound, and waits for it again, until `stop`.
async fn run_gated(
    client: EsmeClient,
    sessions: mpsc::Sender<UpstreamSession>,
    name: &str,
    slot: usize,
    gate: &dyn SlotGate,
    held: &Held,
    stop: CancellationToken,
) -> Result<(), BackoffError> {
    loop {
        let Some(lost) = gate.hold(name, slot, held.pool_size, stop.clone()).await else {
            return Ok(());
        };
        held.took();
        info!(upstream = %name, slot, "session slot held; binding");
        let session_stop = stop.child_token();
        let run = client.clone().run(sessions.clone(), session_stop.clone());
        tokio::pin!(run);
        let outcome = tokio::select! {
            outcome = &mut run => outcome,
            () = lost.cancelled() => {
                warn!(upstream = %name, slot, "session slot lost or handed to another node; unbinding");
                session_stop.cancel();
                run.await
            }
        };
        held.let_go();
        gate.release(name, slot).await;
        if stop.is_cancelled() || outcome.is_err() {
            return outcome;
        }
    }
}
