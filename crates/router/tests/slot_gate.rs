//! Session slots granted from outside the pool (what several Tern nodes
//! sharing a vendor account use): a slot binds only while it is held,
//! unbinds at once when the hold is lost, and the pool's pacer runs at the
//! part of the account's rate its held slots make.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tern_router::breaker::BreakerConfig;
use tern_router::upstream::{GateFuture, SlotGate, Upstream, UpstreamConfig};
use tern_router::Profile;
use tern_session::backoff::BackoffConfig;
use tern_session::esme::BindParams;
use tern_session::throttle::{AdaptiveConfig, AdaptiveRate};
use tern_session::SessionConfig;
use tern_sim::smsc::{SimConfig, SimHandle, Simulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

/// Grants the slots the test allows; keeps each hold's "lost" token so the
/// test can take a slot away, and counts releases.
#[derive(Debug, Default)]
struct TestGate {
    allowed: Mutex<HashSet<usize>>,
    holds: Mutex<HashMap<usize, CancellationToken>>,
    released: Mutex<Vec<usize>>,
}

impl TestGate {
    fn allow(&self, slot: usize) {
        self.allowed.lock().expect("lock").insert(slot);
    }

    /// Takes `slot` away as a lost lease would.
    fn revoke(&self, slot: usize) {
        self.allowed.lock().expect("lock").remove(&slot);
        if let Some(lost) = self.holds.lock().expect("lock").remove(&slot) {
            lost.cancel();
        }
    }
}

/// The gate as the pool sees it (the test keeps its own `Arc`).
#[derive(Debug)]
struct Shared(Arc<TestGate>);

impl SlotGate for Shared {
    fn hold(
        &self,
        _upstream: &str,
        slot: usize,
        _pool_size: usize,
        stop: CancellationToken,
    ) -> GateFuture<Option<CancellationToken>> {
        let gate = self.0.clone();
        Box::pin(async move {
            loop {
                if gate.allowed.lock().expect("lock").contains(&slot) {
                    let lost = CancellationToken::new();
                    gate.holds.lock().expect("lock").insert(slot, lost.clone());
                    return Some(lost);
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    () = stop.cancelled() => return None,
                }
            }
        })
    }

    fn release(&self, _upstream: &str, slot: usize) -> GateFuture<()> {
        self.0.released.lock().expect("lock").push(slot);
        Box::pin(async {})
    }
}

fn config(port: u16, gate: Arc<TestGate>, pacer: Arc<AdaptiveRate>) -> UpstreamConfig {
    UpstreamConfig {
        name: "shared".to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        tls: None,
        bind: BindParams::new("tern", "secret").expect("short"),
        sessions: 2,
        session: SessionConfig {
            enquire_link_interval: None,
            inactivity_timeout: None,
            ..SessionConfig::default()
        },
        backoff: BackoffConfig {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            multiplier: 2.0,
            jitter: 0.2,
        },
        pacer: Some(pacer),
        account_window: None,
        bind_cap: None,
        breaker: BreakerConfig::default(),
        profile: Arc::new(Profile::builtin("generic").expect("listed").expect("valid")),
        start_after: Vec::new(),
        gate: Some(Arc::new(Shared(gate))),
    }
}

async fn until(what: &str, check: impl Fn() -> bool) {
    let started = tokio::time::Instant::now();
    while !check() {
        assert!(started.elapsed() < WAIT, "not within {WAIT:?}: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

#[tokio::test]
async fn slots_bind_only_while_held_and_the_pacer_follows_the_held_share() {
    let sim = sim().await;
    let gate = Arc::new(TestGate::default());
    let pacer = Arc::new(AdaptiveRate::new(AdaptiveConfig::new(10.0)).expect("valid"));
    let shutdown = CancellationToken::new();
    let (tx, _rx) = mpsc::channel(16);
    let up = Upstream::start(
        config(sim.addr().port(), gate.clone(), pacer.clone()),
        tx,
        shutdown.clone(),
    );

    // Nothing granted: nothing binds.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!((up.bound(), up.held_slots()), (0, 0));
    assert!(sim.sessions("tern").is_empty());

    gate.allow(0);
    until("slot 0 bound", || up.bound() == 1).await;
    assert_eq!(up.held_slots(), 1);
    assert_eq!(
        pacer.share(),
        0.5,
        "one slot of two: half the account's rate"
    );

    gate.allow(1);
    until("both slots bound", || up.bound() == 2).await;
    assert_eq!(pacer.share(), 1.0);

    // Slot 0 lost: its session unbinds and the slot is released; the
    // other stays, at half the rate again.
    gate.revoke(0);
    until("slot 0 unbound", || {
        up.bound() == 1 && sim.sessions("tern").len() == 1
    })
    .await;
    until("slot 0 released", || {
        gate.released.lock().expect("lock").contains(&0)
    })
    .await;
    assert_eq!(up.held_slots(), 1);
    assert_eq!(pacer.share(), 0.5);

    shutdown.cancel();
    until("every slot released at shutdown", || {
        gate.released.lock().expect("lock").len() == 2
    })
    .await;
}

#[tokio::test]
async fn retiring_a_slot_waits_until_its_gate_is_released() {
    let sim = sim().await;
    let gate = Arc::new(TestGate::default());
    gate.allow(0);
    gate.allow(1);
    let pacer = Arc::new(AdaptiveRate::new(AdaptiveConfig::new(10.0)).expect("valid"));
    let (tx, _rx) = mpsc::channel(16);
    let up = Upstream::start(
        config(sim.addr().port(), gate.clone(), pacer),
        tx,
        CancellationToken::new(),
    );
    until("both bound", || up.bound() == 2).await;
    up.retire_slot(1, tokio::time::Instant::now() + WAIT).await;
    assert!(
        gate.released.lock().expect("lock").contains(&1),
        "a replacement slot may take the lease as soon as retire_slot returns"
    );
    assert_eq!(up.held_slots(), 1);
}
