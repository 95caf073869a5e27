//! Chaos: the "no loss" contract (DESIGN.md, Contracts) on the real binary
//! while things break at random moments.
//!
//! Each round starts two simulator upstreams in this process (so they
//! outlive the daemon, as a vendor's SMSC does: receipts they owe survive
//! Tern's death and come when it binds again), each with its own account,
//! both in one failover route, receipts on; then the daemon as a child
//! process on a durable store in a temp dir; then two client transceivers
//! that submit continuously (a bounded window, receipts requested), each
//! message with a unique text (`chaos-<round>-<n>`) so what the simulators
//! took can be matched to what the clients were acknowledged. Meanwhile, at
//! random moments: Tern is killed with SIGKILL and started again on the same
//! store; an upstream throttles or answers temporary errors (ESME_RSYSERR,
//! ESME_RTHROTTLED) for a while; an upstream drops its connections or
//! unbinds; a client disconnects or unbinds (and binds again).
//!
//! Then the faults stop and the round settles (bounded), and the test
//! asserts: (1) every submit acknowledged ESME_ROK reached an upstream at
//! least once (its text is in a simulator's record of accepted submits);
//! (2) every receipt an upstream had acknowledged by Tern reached a client,
//! and every acknowledged message has a DELIVRD receipt at a client;
//! (3) duplicates (a text accepted upstream more than once, a receipt
//! delivered more than once) are at-least-once delivery, so they are counted
//! and printed, not failed; (4) nothing is stuck: Tern's ready, in-flight and
//! outbox queues are empty, every acknowledged message is final and
//! DELIVRD, and every receipt Tern still holds unmatched (`/api/unmatched`)
//! is for an upstream id Tern never learnt (see [`check_round`]).
//!
//! Two tests, both run in CI: receipts 100–250 ms after the submit_sm_resp,
//! and receipts 0–20 ms after it, racing Tern's own bookkeeping of the
//! response (the second found receipt losses in the daemon, described on
//! it).
//! In the short rounds an upstream circuit breaker left open by the last
//! faults (a 30 s cool-down, not configurable) is skipped by one more kill at
//! the end of the chaos; the soak lets the breakers cool down instead.
//!
//! Knobs: `TERN_CHAOS_SEED` replays a fault schedule (the seed is printed
//! at the start; the schedule — which fault, where, when — is replayed, the
//! thread interleaving of course is not); `TERN_CHAOS_ROUNDS` sets the
//! number of rounds (6 unless set: about 45 s in debug on 2 cores);
//! `TERN_CHAOS_SOAK=1` makes each round longer and busier (20 s of faults,
//! up to 4000 messages) and defaults to 20 rounds, e.g.
//! `TERN_CHAOS_SOAK=1 cargo test -p tern --test chaos -- --nocapture`. Everything is on loopback and every wait is
//! bounded. When a round fails, its temp dir (config, store, daemon log) is
//! kept and its path printed.

use tern_testkit::{Admin, Daemon, Launch, TempDir};

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::Value;
use tern_codec::pdu::{SmResp, SubmitSm};
use tern_codec::{Address, Body, CommandStatus, Npi, RegisteredDelivery, ShortMessage, Ton};
use tern_session::esme::{self, BindParams};
use tern_session::{RequestError, SessionConfig, SessionHandle};
use tern_sim::smsc::{
    Account, Behaviour, ReceiptBehaviour, Recorded, Reject, SimConfig, SimHandle, Simulator,
};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The client account the test binds as.
const CLIENT: &str = "chaos";
const CLIENT_PASSWORD: &str = "chaosPw1";
/// Client sessions bound at once, and submits each keeps in flight.
const CLIENTS: usize = 2;
const WINDOW: usize = 8;
/// How long a round may take to settle once the faults stop. Above the
/// upstream circuit breaker's 30 s cool-down: when both upstreams answered
/// errors at the end of the chaos, both breakers are open and messages wait
/// that long for a probe.
const SETTLE: Duration = Duration::from_secs(75);

/// How hard and how long.
#[derive(Debug, Clone, Copy)]
struct Settings {
    seed: u64,
    rounds: u32,
    /// Faults are injected this long per round.
    chaos: Duration,
    /// Messages submitted per round at most, spread over `chaos`.
    messages: u64,
    /// The upstreams' receipt delays a round draws from, in ms.
    receipt_delays: &'static [u64],
    /// Let open circuit breakers cool down on their own while settling
    /// (30 s, not configurable) instead of ending the chaos with a kill
    /// that starts Tern with closed ones.
    cool_down: bool,
}

impl Settings {
    fn from_env(receipt_delays: &'static [u64]) -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let soak = var("TERN_CHAOS_SOAK").is_some_and(|v| v != "0");
        let seed = var("TERN_CHAOS_SEED").map_or_else(
            || {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    ^ u64::from(std::process::id())
            },
            |v| {
                let v = v.trim();
                v.strip_prefix("0x")
                    .map_or_else(|| v.parse(), |hex| u64::from_str_radix(hex, 16))
                    .unwrap_or_else(|e| panic!("TERN_CHAOS_SEED `{v}`: {e}"))
            },
        );
        let rounds = var("TERN_CHAOS_ROUNDS").map_or(if soak { 20 } else { 6 }, |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("TERN_CHAOS_ROUNDS `{v}`: {e}"))
        });
        if soak {
            Settings {
                seed,
                rounds,
                chaos: Duration::from_secs(20),
                messages: 4000,
                receipt_delays,
                cool_down: true,
            }
        } else {
            Settings {
                seed,
                rounds,
                chaos: Duration::from_secs(6),
                messages: 600,
                receipt_delays,
                cool_down: false,
            }
        }
    }
}

/// splitmix64: a fault schedule replayable from one printed number, without
/// a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (`lo` when empty).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            lo
        } else {
            lo + self.next() % (hi - lo)
        }
    }

    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }

    /// Uniform in 0.0..1.0.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One upstream: its simulator and the account Tern binds with there.
struct Upstream {
    name: &'static str,
    account: &'static str,
    password: &'static str,
    sim: SimHandle,
}

/// The daemon (testkit's [`Daemon`], its log in `tern.log`, its dir kept
/// when the test fails) and what a round needs of it: its admin API, a
/// readiness that means both upstreams bound, and a count of its starts.
struct Node {
    daemon: Daemon,
    launch: Launch,
    admin: Admin,
    /// Times started.
    starts: u32,
}

impl Node {
    /// Started on `config`, whose listeners say port 0: a restart comes
    /// back on the ports this first start bound ([`Daemon::respawn`]),
    /// where the clients keep reconnecting.
    fn new(config: &str) -> Node {
        // Receipts held before their submit_sm_resp are logged (debug).
        let launch = Launch::new()
            .rust_log("info,tern::daemon::receipts=debug")
            .log_file();
        let dir = TempDir::new("chaos").keep_on_panic();
        let mut daemon = launch.start(dir, config);
        Node {
            admin: daemon.admin(),
            daemon,
            launch,
            starts: 1,
        }
    }

    /// SIGKILL, and reaped.
    fn kill(&mut self) {
        self.daemon.kill();
    }

    /// Started again on the same store.
    fn spawn(&mut self) {
        self.daemon.respawn(&self.launch);
        self.starts += 1;
    }

    /// Started again if it exited on its own (a start that raced the old
    /// process for its ports, say); returns the exit status it had.
    fn revive(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.daemon.revive(&self.launch)?;
        self.starts += 1;
        Some(status)
    }

    async fn get(&self, path: &str) -> Option<Value> {
        tern::admin::get_json(self.admin.0, path).await.ok()
    }

    /// Waits (bounded) until the admin answers and both upstreams are bound.
    async fn ready(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.revive() {
                eprintln!("chaos: tern exited on its own ({status}); started again");
            }
            if let Some(upstreams) = self.get("/api/upstreams").await {
                if upstreams.as_array().is_some_and(|a| {
                    a.len() == 2 && a.iter().all(|u| u["bound"].as_u64() >= Some(1))
                }) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "tern not ready within {within:?}; log in {}",
                self.daemon.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The lines of the daemon's log that mention `needle`, at most `n`.
    fn log_lines(&self, needle: &str, n: usize) -> String {
        self.daemon.log_lines(needle, n)
    }
}

fn config(upstreams: &[Upstream]) -> String {
    let mut text = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
durability = "durable"
[[client]]
system_id = "{CLIENT}"
passwords = ["{CLIENT_PASSWORD}"]
[router]
retry_initial = "200ms"
retry_max = "2s"
[[route]]
name = "all"
strategy = "failover"
upstreams = ["{}", "{}"]
"#,
        upstreams[0].name, upstreams[1].name
    );
    for up in upstreams {
        text.push_str(&format!(
            "[[upstream]]\nname = \"{}\"\nhost = \"127.0.0.1\"\nport = {}\nsystem_id = \"{}\"\npassword = \"{}\"\n",
            up.name,
            up.sim.addr().port(),
            up.account,
            up.password
        ));
    }
    text
}

/// What the clients saw, shared by their tasks.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// Text → Tern's id, for every submit answered ESME_ROK.
    acked: HashMap<String, String>,
    /// Tern's id → text.
    text_of: HashMap<String, String>,
    /// Submits answered with an error status, by status.
    refused: BTreeMap<u32, u64>,
    /// Submits that got no answer (the session died under them): Tern may
    /// or may not have stored them, the client cannot know.
    unanswered: u64,
    /// Tern's id → the `stat` of every receipt a client took for it.
    receipts: HashMap<String, Vec<String>>,
    /// Client binds (first ones and re-binds).
    binds: u64,
    /// Answers no SMPP peer should give (ESME_ROK without an id, one
    /// text acknowledged twice): asserted empty.
    anomalies: Vec<String>,
}

/// A client's current session, for the faults that end it.
type Current = Arc<Mutex<Option<SessionHandle>>>;

/// The submit of message `text`, receipt requested.
fn submit_sm(text: &str) -> SubmitSm {
    SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Chaos".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "34600000001".try_into().expect("short"),
        ),
        registered_delivery: RegisteredDelivery::ALWAYS,
        short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..SubmitSm::default()
    }
}

/// Hands out message numbers, paced so a round's messages spread over its
/// chaos time (a client that was away catches up, its window bounding the
/// burst), until the round's cap or `stop`.
struct Tickets {
    next: AtomicU64,
    cap: u64,
    start: Instant,
    interval: Duration,
    stop: CancellationToken,
}

impl Tickets {
    async fn take(&self) -> Option<u64> {
        if self.stop.is_cancelled() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if n >= self.cap {
            return None;
        }
        let at = self.start + self.interval.saturating_mul(n as u32);
        tokio::select! {
            () = tokio::time::sleep_until(at) => Some(n),
            () = self.stop.cancelled() => None,
        }
    }
}

/// One client: binds (again after every loss, until `end`), keeps `WINDOW`
/// submits in flight while tickets last, and takes every receipt.
async fn client(
    port: u16,
    round: u32,
    ledger: Arc<Mutex<Ledger>>,
    tickets: Arc<Tickets>,
    current: Current,
    end: CancellationToken,
) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    while !end.is_cancelled() {
        let session = async {
            let stream = TcpStream::connect(addr).await.ok()?;
            let params = BindParams::new(CLIENT, CLIENT_PASSWORD).expect("short");
            let config = SessionConfig {
                window: WINDOW,
                enquire_link_interval: None,
                close_grace: Duration::from_secs(1),
                ..SessionConfig::default()
            };
            tokio::time::timeout(
                Duration::from_secs(5),
                esme::bind(stream, Some(addr), &params, config),
            )
            .await
            .ok()?
            .ok()
        }
        .await;
        let Some(mut session) = session else {
            // Tern is down or starting: try again shortly.
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = end.cancelled() => {}
            }
            continue;
        };
        lock(&ledger).binds += 1;
        *lock(&current) = Some(session.handle.clone());
        let handle = session.handle.clone();

        // Receipts: every deliver_sm is taken and acknowledged. One that
        // is taken but whose acknowledgement never reaches Tern comes
        // again: that is a duplicate, and the outbox check at the end
        // proves Tern did get an acknowledgement for each.
        let receipts = {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                while let Some(request) = session.requests.recv().await {
                    if let Body::DeliverSm(sm) = &request.pdu.body {
                        let id = sm
                            .tlvs
                            .receipted_message_id()
                            .map(|id| String::from_utf8_lossy(id).into_owned())
                            .unwrap_or_default();
                        let text = String::from_utf8_lossy(sm.short_message.as_bytes());
                        let stat = text
                            .split_whitespace()
                            .find_map(|f| f.strip_prefix("stat:"))
                            .unwrap_or("-")
                            .to_owned();
                        lock(&ledger).receipts.entry(id).or_default().push(stat);
                    }
                    let _ = request
                        .responder
                        .respond(
                            CommandStatus::Ok,
                            Body::DeliverSmResp(SmResp::with_id(Default::default())),
                        )
                        .await;
                }
            })
        };

        let workers: Vec<_> = (0..WINDOW)
            .map(|_| {
                let (handle, ledger, tickets) = (handle.clone(), ledger.clone(), tickets.clone());
                tokio::spawn(async move {
                    loop {
                        // A number taken while the session died is simply
                        // never used: texts need not be contiguous.
                        let n = tokio::select! {
                            n = tickets.take() => n,
                            () = handle.closed() => None,
                        };
                        let Some(n) = n else {
                            return;
                        };
                        let text = format!("chaos-{round}-{n}");
                        let answer = handle.request(Body::SubmitSm(submit_sm(&text))).await;
                        let mut ledger = lock(&ledger);
                        match answer {
                            Ok(resp) if resp.command_status == CommandStatus::Ok => {
                                let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body
                                else {
                                    ledger
                                        .anomalies
                                        .push(format!("ESME_ROK without an id for {text}"));
                                    continue;
                                };
                                let id = id.to_string();
                                if let Some(other) = ledger.text_of.insert(id.clone(), text.clone())
                                {
                                    ledger
                                        .anomalies
                                        .push(format!("id {id} given to {other} and {text}"));
                                }
                                if ledger.acked.insert(text.clone(), id).is_some() {
                                    ledger.anomalies.push(format!("{text} acknowledged twice"));
                                }
                            }
                            Ok(resp) => {
                                *ledger
                                    .refused
                                    .entry(resp.command_status.code())
                                    .or_default() += 1;
                            }
                            // The session is unbinding: the submit never
                            // left, and nothing more will.
                            Err(RequestError::NotAllowed { .. }) => return,
                            Err(_) => ledger.unanswered += 1,
                        }
                    }
                })
            })
            .collect();

        tokio::select! {
            () = handle.closed() => {}
            () = end.cancelled() => handle.unbind().await,
        }
        *lock(&current) = None;
        for worker in workers {
            let _ = worker.await;
        }
        // Bounded: the request channel ends with the session.
        let _ = tokio::time::timeout(Duration::from_secs(10), receipts).await;
    }
}

/// The faults, by name, as counted and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// SIGKILL, then the daemon started again on the same store.
    Kill,
    /// An upstream accepts only a few submits per second per session.
    Throttle,
    /// An upstream answers a share of submits ESME_RSYSERR or ESME_RTHROTTLED.
    TemporaryErrors,
    /// An upstream drops its connections without unbind.
    UpstreamDrop,
    /// An upstream unbinds its sessions.
    UpstreamUnbind,
    /// A client's connection drops.
    ClientDrop,
    /// A client unbinds.
    ClientUnbind,
}

const FAULTS: [(Fault, u64); 7] = [
    (Fault::Kill, 3),
    (Fault::Throttle, 2),
    (Fault::TemporaryErrors, 3),
    (Fault::UpstreamDrop, 2),
    (Fault::UpstreamUnbind, 2),
    (Fault::ClientDrop, 2),
    (Fault::ClientUnbind, 1),
];

fn pick(rng: &mut Rng) -> Fault {
    let total: u64 = FAULTS.iter().map(|(_, w)| w).sum();
    let mut at = rng.range(0, total);
    for (fault, weight) in FAULTS {
        if at < weight {
            return fault;
        }
        at -= weight;
    }
    Fault::Kill
}

/// Totals over the rounds, printed at the end.
#[derive(Debug, Default)]
struct Totals {
    acknowledged: usize,
    refused: u64,
    unanswered: u64,
    upstream_submits: usize,
    upstream_duplicates: usize,
    receipts: usize,
    receipt_duplicates: usize,
    receipts_for_unknown_ids: usize,
    unmatched_left: u64,
    client_binds: u64,
    daemon_starts: u32,
    faults: BTreeMap<String, u64>,
    settle: Duration,
}

/// Receipts come 100–250 ms after the submit_sm_resp: by then Tern has
/// nearly always recorded the upstream id, so receipts match at once (the
/// other case is the ignored test below).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_rounds_lose_nothing_tern_acknowledged() {
    chaos(Settings::from_env(&[100, 250])).await;
}

/// Receipts come 0–20 ms after the submit_sm_resp, so many arrive before
/// Tern has recorded the upstream id and are held until it has, the path
/// where a kill still loses receipts (found by this test; the daemon fix is
/// outside this file). The scenario, replayable with the printed seed:
///
/// 1. Tern sends a message upstream; the upstream answers and, at once,
///    sends its receipt.
/// 2. The receipt handler (`daemon/receipts.rs`) finds no message for the
///    upstream id yet, holds the receipt (durable), and acknowledges it
///    upstream — directly, or after its second lookup found the id but
///    `take_held` found nothing because the dispatcher had taken it.
/// 3. The dispatcher (`daemon/dispatch.rs`) records the submit_sm_resp,
///    then `take_held` removes the held receipt (`SledStore::take_forms`:
///    removed in memory, then a durable write), then `apply_held` records it
///    against the message in a later, separate write.
/// 4. SIGKILL between the two writes of step 3: after restart the message
///    is `submitted` with its upstream id, the held receipt is gone, the
///    receipt is not in its history, and the upstream will not send it
///    again. The message never ends; its client never gets a receipt.
///
/// A kill after the dispatcher recorded the submit_sm_resp but before it
/// took the held receipt leaves the receipt held for a message that is
/// known: nothing applies held receipts at start, so the same loss follows
/// (or, if the upstream had not been answered and sends the receipt again,
/// a held copy kept for nothing until it expires).
///
/// Both were seen within a few 3-round runs: the failure names the message
/// (`submitted`, an upstream id, no receipt) and says Tern acknowledged its
/// receipt upstream; in the kept store the held receipt was gone in some
/// cases (first window) and still held under that upstream id in others
/// (second window).
///
/// Both windows are closed now (`receipts::settle_held`: applied, then
/// removed, under the message's lock; a 1 s sweep applies held receipts
/// whose message became known).
///
/// The test was kept ignored a while longer because a count failed in some
/// rounds: more receipts held than receipts the upstream had sent, Tern had
/// acknowledged, for ids Tern never learnt (16 against 13; 4 against 3).
/// The count was the wrong measure: it can be exceeded with nothing lost.
/// A receipt held just before a kill was never acknowledged upstream, so it
/// is not among those counted; and one held for a message that learnt its
/// id meanwhile (written before the kill) waits for the sweep. In the one
/// failing round looked at (4 against 3), the held receipts listed by
/// `/api/unmatched` (added for this) were all for the three ids Tern never
/// learnt, and the store kept after the round held just those three: the
/// fourth had been applied. So the test now checks receipt by receipt what
/// the count stood for: each receipt still held is for an id Tern never
/// learnt, or is applied within a few seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_with_receipts_racing_their_submit_resp_loses_nothing() {
    chaos(Settings::from_env(&[0, 20])).await;
}

async fn chaos(settings: Settings) {
    println!(
        "chaos: seed {} (replay with TERN_CHAOS_SEED={}), {} rounds of {:?}, up to {} messages each",
        settings.seed, settings.seed, settings.rounds, settings.chaos, settings.messages
    );
    let mut rng = Rng(settings.seed);
    let mut totals = Totals::default();
    let started = std::time::Instant::now();
    for round in 1..=settings.rounds {
        let round_started = std::time::Instant::now();
        run_round(round, &settings, &mut rng, &mut totals).await;
        println!(
            "chaos: round {round} passed in {:.1?}",
            round_started.elapsed()
        );
    }
    println!(
        "chaos: {} rounds in {:.1?}: {} acknowledged ({} refused, {} unanswered), {} accepted upstream \
         ({} duplicates), {} receipts at clients ({} duplicates, {} for ids no client was told), \
         {} receipts left unmatched (for ids Tern never learnt), {} client binds, {} daemon starts, \
         longest settle {:.1?}, faults {:?}",
        settings.rounds,
        started.elapsed(),
        totals.acknowledged,
        totals.refused,
        totals.unanswered,
        totals.upstream_submits,
        totals.upstream_duplicates,
        totals.receipts,
        totals.receipt_duplicates,
        totals.receipts_for_unknown_ids,
        totals.unmatched_left,
        totals.client_binds,
        totals.daemon_starts,
        totals.settle,
        totals.faults,
    );
}

/// The base behaviour of both upstreams this round: well-behaved, receipts
/// after `delay` (zero makes receipts race Tern's own bookkeeping of the
/// submit_sm_resp, which Tern must hold and match).
fn base(delay: Duration) -> Behaviour {
    Behaviour {
        receipts: ReceiptBehaviour {
            delay,
            ..ReceiptBehaviour::default()
        },
        ..Behaviour::default()
    }
}

async fn run_round(round: u32, settings: &Settings, rng: &mut Rng, totals: &mut Totals) {
    let delays = settings.receipt_delays;
    let receipt_delay = Duration::from_millis(delays[rng.range(0, delays.len() as u64) as usize]);
    let mut upstreams = Vec::new();
    for (name, account, password) in [("alpha", "tern-a", "pwA1"), ("beta", "tern-b", "pwB2")] {
        let sim = Simulator::start(SimConfig {
            accounts: vec![Account {
                system_id: account.to_owned(),
                password: password.to_owned(),
                max_binds: None,
            }],
            behaviour: base(receipt_delay),
            redelivery_delay: Duration::from_millis(200),
            ..SimConfig::default()
        })
        .await
        .expect("simulator");
        sim.start_recording();
        upstreams.push(Upstream {
            name,
            account,
            password,
            sim,
        });
    }
    let mut daemon = Node::new(&config(&upstreams));
    let client_port = daemon.daemon.client_port();
    daemon.ready(Duration::from_secs(30)).await;

    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = CancellationToken::new();
    let end = CancellationToken::new();
    let tickets = Arc::new(Tickets {
        next: AtomicU64::new(0),
        cap: settings.messages,
        start: Instant::now(),
        interval: settings.chaos / settings.messages.max(1) as u32,
        stop: stop.clone(),
    });
    let currents: Vec<Current> = (0..CLIENTS).map(|_| Current::default()).collect();
    let clients: Vec<_> = currents
        .iter()
        .map(|current| {
            tokio::spawn(client(
                client_port,
                round,
                ledger.clone(),
                tickets.clone(),
                current.clone(),
                end.clone(),
            ))
        })
        .collect();

    // The faults.
    let mut faults: BTreeMap<Fault, u64> = BTreeMap::new();
    // When each upstream's misbehaviour ends.
    let mut reverts: [Option<Instant>; 2] = [None, None];
    let chaos_start = Instant::now();
    let chaos_end = chaos_start + settings.chaos;
    // At least one SIGKILL per round, the fault the contract is mostly
    // about: at this moment unless the schedule brought one earlier.
    let sure_kill = chaos_start + settings.chaos.mul_f64(0.2 + 0.6 * rng.unit());
    let mut log = Vec::new();
    loop {
        let pause = rng.millis(150, 900);
        if Instant::now() + pause >= chaos_end {
            break;
        }
        tokio::time::sleep(pause).await;
        let sure = !faults.contains_key(&Fault::Kill) && Instant::now() >= sure_kill;
        for (i, at) in reverts.iter_mut().enumerate() {
            if at.is_some_and(|at| at <= Instant::now()) {
                upstreams[i]
                    .sim
                    .set_behaviour(base(receipt_delay))
                    .expect("valid");
                *at = None;
            }
        }
        if let Some(status) = daemon.revive() {
            log.push(format!("tern exited on its own ({status}); started again"));
        }
        let fault = if sure { Fault::Kill } else { pick(rng) };
        let target = rng.range(0, 2) as usize;
        let up = &upstreams[target];
        let what = match fault {
            Fault::Kill => {
                daemon.kill();
                tokio::time::sleep(rng.millis(0, 400)).await;
                daemon.spawn();
                "SIGKILL, started again".to_owned()
            }
            Fault::Throttle => {
                let rate = rng.range(2, 20) as u32;
                let lasts = rng.millis(300, 2500);
                up.sim
                    .set_behaviour(Behaviour {
                        throttle_per_second: Some(rate),
                        ..base(receipt_delay)
                    })
                    .expect("valid");
                reverts[target] = Some(Instant::now() + lasts);
                format!("{} throttles at {rate}/s for {lasts:?}", up.name)
            }
            Fault::TemporaryErrors => {
                let status = if rng.range(0, 2) == 0 {
                    CommandStatus::SystemError
                } else {
                    CommandStatus::Throttled
                };
                let fraction = 0.3 + 0.7 * rng.unit();
                let lasts = rng.millis(300, 2500);
                up.sim
                    .set_behaviour(Behaviour {
                        reject: Some(Reject { fraction, status }),
                        ..base(receipt_delay)
                    })
                    .expect("valid");
                reverts[target] = Some(Instant::now() + lasts);
                format!(
                    "{} answers {:.0}% {status} for {lasts:?}",
                    up.name,
                    fraction * 100.0
                )
            }
            Fault::UpstreamDrop => {
                let n = up.sim.disconnect(Some(up.account));
                format!("{} drops {n} connections", up.name)
            }
            Fault::UpstreamUnbind => {
                let n = up.sim.unbind(Some(up.account));
                format!("{} unbinds {n} sessions", up.name)
            }
            Fault::ClientDrop | Fault::ClientUnbind => {
                let handle = lock(&currents[target]).clone();
                match handle {
                    Some(handle) if fault == Fault::ClientDrop => {
                        handle.close();
                        format!("client {target} drops its connection")
                    }
                    Some(handle) => {
                        tokio::spawn(async move { handle.unbind().await });
                        format!("client {target} unbinds")
                    }
                    None => format!("client {target} was not bound"),
                }
            }
        };
        *faults.entry(fault).or_default() += 1;
        log.push(what);
    }
    for up in &upstreams {
        up.sim.set_behaviour(base(receipt_delay)).expect("valid");
    }
    // An upstream that answered temporary errors at the end has its
    // circuit breaker open for 30 s; in the short (CI) rounds one more
    // kill ends the chaos instead, so the round settles in seconds. The
    // soak waits for the cool-down, which the settle bound allows.
    let open = match daemon.get("/api/upstreams").await {
        Some(upstreams) => upstreams
            .as_array()
            .is_none_or(|a| a.iter().any(|u| u["breaker"] != "closed")),
        None => true,
    };
    if !faults.contains_key(&Fault::Kill) || (open && !settings.cool_down) {
        daemon.kill();
        daemon.spawn();
        *faults.entry(Fault::Kill).or_default() += 1;
        log.push("SIGKILL at the end of the chaos, started again".to_owned());
    }
    println!(
        "chaos: round {round} (receipt delay {receipt_delay:?}): {}",
        log.join("; ")
    );

    // Settle: the faults have stopped; the clients stop submitting but
    // stay bound.
    stop.cancel();
    let settle_started = Instant::now();
    daemon.ready(Duration::from_secs(30)).await;
    let deadline = settle_started + SETTLE;
    let mut last = String::new();
    let mut told = settle_started;
    loop {
        let done = settled(&daemon, &upstreams, &ledger).await;
        match done {
            Ok(()) => break,
            Err(why) => last = why,
        }
        if told.elapsed() >= Duration::from_secs(10) {
            told = Instant::now();
            println!(
                "chaos: round {round} settling for {:.0?}: {last}",
                settle_started.elapsed()
            );
        }
        if Instant::now() >= deadline {
            break;
        }
        if let Some(status) = daemon.revive() {
            println!("chaos: tern exited on its own while settling ({status}); started again");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let settle = settle_started.elapsed();
    // The checks, whether it settled or not: they say what is missing.
    let report = check_round(round, &daemon, &upstreams, &ledger, &last, settle).await;

    end.cancel();
    for client in clients {
        let _ = tokio::time::timeout(Duration::from_secs(15), client).await;
    }
    daemon.kill();
    for up in upstreams {
        up.sim.shutdown().await;
    }
    let ledger = lock(&ledger);
    totals.acknowledged += ledger.acked.len();
    totals.refused += ledger.refused.values().sum::<u64>();
    totals.unanswered += ledger.unanswered;
    totals.client_binds += ledger.binds;
    totals.daemon_starts += daemon.starts;
    totals.upstream_submits += report.upstream_submits;
    totals.upstream_duplicates += report.upstream_duplicates;
    totals.receipts += report.receipts;
    totals.receipt_duplicates += report.receipt_duplicates;
    totals.receipts_for_unknown_ids += report.receipts_for_unknown_ids;
    totals.unmatched_left += report.unmatched;
    totals.settle = totals.settle.max(settle);
    for (fault, n) in faults {
        *totals.faults.entry(format!("{fault:?}")).or_default() += n;
    }
}

/// Why the round has not settled yet, or `Ok` once every acknowledged
/// message has a receipt at a client, the simulators owe nothing, and
/// Tern's queues are empty.
async fn settled(
    daemon: &Node,
    upstreams: &[Upstream],
    ledger: &Mutex<Ledger>,
) -> Result<(), String> {
    let waiting = {
        let ledger = lock(ledger);
        ledger
            .acked
            .values()
            .filter(|id| !ledger.receipts.contains_key(*id))
            .count()
    };
    if waiting > 0 {
        return Err(format!("{waiting} acknowledged messages without a receipt"));
    }
    for up in upstreams {
        let queued = up.sim.queued(up.account);
        if queued > 0 {
            return Err(format!("{} still owes {queued} receipts", up.name));
        }
    }
    // Twice, 100 ms apart: the queues are counted one after the other, not
    // in one snapshot, so a message moving from in flight back to ready
    // (an unanswered submit still retried) can be missed by one reading.
    for pause in [Duration::ZERO, Duration::from_millis(100)] {
        tokio::time::sleep(pause).await;
        let Some(queues) = daemon.get("/api/queues").await else {
            return Err("the admin API does not answer".to_owned());
        };
        for queue in ["ready", "in_flight", "outbox"] {
            if queues[queue].as_u64() != Some(0) {
                return Err(format!("Tern's queues are not empty: {queues}"));
            }
        }
    }
    Ok(())
}

/// What a round's checks counted.
struct RoundReport {
    upstream_submits: usize,
    upstream_duplicates: usize,
    receipts: usize,
    receipt_duplicates: usize,
    receipts_for_unknown_ids: usize,
    unmatched: u64,
}

/// The text of the submit_sm a message's admin JSON carries (hex `pdu`).
fn stored_text(message: &Value) -> Option<String> {
    let hex = message["pdu"].as_str()?;
    let octets: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    match tern_codec::Pdu::decode(octets.into()).ok()?.body {
        Body::SubmitSm(sm) => Some(String::from_utf8_lossy(sm.text_octets()).into_owned()),
        _ => None,
    }
}

/// A few entries of `items`, for a failure message.
fn some<T: std::fmt::Debug>(items: &[T]) -> String {
    format!(
        "{:?}{}",
        &items[..items.len().min(5)],
        if items.len() > 5 { " …" } else { "" }
    )
}

/// The assertions of one round; see the file's doc for what and why.
async fn check_round(
    round: u32,
    daemon: &Node,
    upstreams: &[Upstream],
    ledger: &Mutex<Ledger>,
    unsettled: &str,
    settle: Duration,
) -> RoundReport {
    // A copy: the clients still take (duplicate) receipts meanwhile, and a
    // lock is never held across the admin requests below.
    let ledger = lock(ledger).clone();
    assert!(
        ledger.anomalies.is_empty(),
        "round {round}: {}",
        ledger.anomalies.join("; ")
    );
    // What reached the upstreams: text → how many times accepted, and
    // (upstream, its id) → text.
    let mut copies: HashMap<String, usize> = HashMap::new();
    let mut text_at: HashMap<(usize, String), String> = HashMap::new();
    let mut receipts_acked = Vec::new();
    for (i, up) in upstreams.iter().enumerate() {
        for entry in up.sim.recorded() {
            match entry {
                Recorded::Submit {
                    message_id, text, ..
                } => {
                    let text = String::from_utf8_lossy(&text).into_owned();
                    *copies.entry(text.clone()).or_default() += 1;
                    text_at.insert((i, message_id), text);
                }
                Recorded::ReceiptAcked { message_id, .. } => receipts_acked.push((i, message_id)),
            }
        }
    }
    let upstream_submits: usize = copies.values().sum();
    let upstream_duplicates = upstream_submits - copies.len();

    let story = |id: &str| {
        let id = id.to_owned();
        async move {
            let message = daemon.get(&format!("/api/messages/{id}")).await;
            format!(
                "{id}: {}\n  log: {}",
                message.map_or_else(|| "unknown to the admin API".to_owned(), |m| m.to_string()),
                daemon.log_lines(&id, 20)
            )
        }
    };

    // (1) Every acknowledged submit reached an upstream at least once.
    let mut lost: Vec<(&String, &String)> = ledger
        .acked
        .iter()
        .filter(|(text, _)| !copies.contains_key(*text))
        .collect();
    lost.sort();
    if let Some((text, id)) = lost.first() {
        panic!(
            "round {round}: {} of {} acknowledged messages never reached an upstream \
             (not settled: {unsettled}); e.g. {}; the first, `{text}`, is {}",
            lost.len(),
            ledger.acked.len(),
            some(&lost),
            story(id).await
        );
    }

    // (2) Every receipt an upstream had acknowledged by Tern reached a
    // client, and every acknowledged message got a DELIVRD receipt (the
    // simulators only deliver; any other stat means Tern ended a message
    // itself).
    let mut missing: Vec<&String> = Vec::new();
    for (i, message_id) in &receipts_acked {
        let text = text_at.get(&(*i, message_id.clone())).unwrap_or_else(|| {
            panic!(
                "a receipt for a message {} never accepted",
                upstreams[*i].name
            )
        });
        if let Some(id) = ledger.acked.get(text) {
            if !ledger.receipts.contains_key(id) {
                missing.push(id);
            }
        }
    }
    for id in ledger.acked.values() {
        if !ledger.receipts.contains_key(id) && !missing.contains(&id) {
            missing.push(id);
        }
    }
    missing.sort();
    if let Some(id) = missing.first() {
        // What the upstreams did with it: which ids they gave it, and
        // whether Tern acknowledged their receipts.
        let text = &ledger.text_of[*id];
        let upstream: Vec<String> = text_at
            .iter()
            .filter(|(_, t)| *t == text)
            .map(|((i, upstream_id), _)| {
                let acked = receipts_acked.contains(&(*i, upstream_id.clone()));
                format!(
                    "{} id {upstream_id}, receipt acknowledged by Tern: {acked}",
                    upstreams[*i].name
                )
            })
            .collect();
        let queues = daemon.get("/api/queues").await.unwrap_or(Value::Null);
        let sims: Vec<String> = upstreams
            .iter()
            .map(|up| {
                format!(
                    "{}: {} receipts queued, {:?}",
                    up.name,
                    up.sim.queued(up.account),
                    up.sim.stats()
                )
            })
            .collect();
        panic!(
            "round {round}: {} of {} acknowledged messages have no receipt at a client \
             after {settle:?} (not settled: {unsettled}); e.g. {}; the first, `{text}`, went \
             upstream as {upstream:?}; Tern's queues {queues}; the upstreams {sims:?}; it is {}",
            missing.len(),
            ledger.acked.len(),
            some(&missing),
            story(id).await
        );
    }
    let not_delivered: Vec<(&String, &Vec<String>)> = ledger
        .acked
        .values()
        .filter_map(|id| ledger.receipts.get_key_value(id))
        .filter(|(_, stats)| stats.iter().any(|s| s != "DELIVRD"))
        .collect();
    if let Some((id, _)) = not_delivered.first() {
        panic!(
            "round {round}: {} messages got a receipt other than DELIVRD: {}; the first is {}",
            not_delivered.len(),
            some(&not_delivered),
            story(id).await
        );
    }
    for up in upstreams {
        let stats = up.sim.stats();
        assert_eq!(
            stats.deliveries_failed, 0,
            "round {round}: {} gave up receipts Tern refused or left unanswered 10 times: {stats:?}",
            up.name
        );
        assert_eq!(
            stats.receipts_discarded, 0,
            "round {round}: {}'s receipt queue overflowed: {stats:?}",
            up.name
        );
    }

    // (3) Duplicates: counted, not failed.
    let receipts: usize = ledger.receipts.values().map(Vec::len).sum();
    let receipt_duplicates: usize = ledger
        .receipts
        .values()
        .map(|r| r.len().saturating_sub(1))
        .sum();
    let receipts_for_unknown_ids = ledger
        .receipts
        .keys()
        .filter(|id| !ledger.text_of.contains_key(*id))
        .count();

    // (4) Nothing stuck.
    let queues = daemon.get("/api/queues").await.unwrap_or(Value::Null);
    for queue in ["ready", "in_flight", "outbox"] {
        assert_eq!(
            queues[queue].as_u64(),
            Some(0),
            "round {round}: Tern's `{queue}` queue is not empty after {settle:?}: {queues}"
        );
    }
    let mut ids: Vec<&String> = ledger.acked.values().collect();
    ids.sort();
    let mut messages: HashMap<&String, Value> = HashMap::new();
    for id in ids {
        let message = daemon
            .get(&format!("/api/messages/{id}"))
            .await
            .unwrap_or_else(|| panic!("round {round}: message {id} unknown to the admin API"));
        assert_eq!(
            (
                message["state"].as_str(),
                message["outcome"]["stat"].as_str()
            ),
            (Some("final"), Some("DELIVRD")),
            "round {round}: acknowledged message {id} ({}) is not final and delivered: {message}",
            ledger.text_of[id]
        );
        messages.insert(id, message);
    }
    // Messages whose id no client was told (the session died before the
    // answer) are known by their receipts: their text is in the stored PDU.
    let mut tern_of: HashMap<String, String> = ledger.acked.clone();
    let mut unknown: Vec<&String> = ledger
        .receipts
        .keys()
        .filter(|id| !ledger.text_of.contains_key(*id))
        .collect();
    unknown.sort();
    for id in unknown {
        let message = daemon
            .get(&format!("/api/messages/{id}"))
            .await
            .unwrap_or_else(|| panic!("round {round}: receipted message {id} unknown"));
        let text = stored_text(&message)
            .unwrap_or_else(|| panic!("round {round}: no submit_sm stored: {message}"));
        tern_of.insert(text, id.clone());
        messages.insert(id, message);
    }
    // What became of each receipt Tern acknowledged upstream: applied to
    // its message; for an upstream id Tern never learnt (the upstream
    // accepted a submit whose response Tern never recorded — killed first,
    // or the connection dropped under it — so Tern sent the message again);
    // or learnt and yet never applied, which would be a receipt lost.
    let mut foreign = Vec::new();
    let mut unapplied = Vec::new();
    let mut unclassified = 0;
    for (i, upstream_id) in &receipts_acked {
        let name = upstreams[*i].name;
        let Some(id) = text_at
            .get(&(*i, upstream_id.clone()))
            .and_then(|text| tern_of.get(text))
        else {
            // A message whose id no client was told and of which no
            // receipt reached a client: nothing to look it up by.
            unclassified += 1;
            continue;
        };
        let message = &messages[id];
        let has = |list: &str, ids: &dyn Fn(&Value) -> bool| {
            message[list].as_array().is_some_and(|a| {
                a.iter()
                    .any(|entry| entry["upstream"].as_str() == Some(name) && ids(entry))
            })
        };
        let learnt = has("attempts", &|a| {
            a["upstream_ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(upstream_id)))
        });
        let applied = has("receipts_received", &|r| {
            r["upstream_id"].as_str() == Some(upstream_id)
        });
        match (learnt, applied) {
            (false, _) => foreign.push((name, upstream_id, id)),
            (true, false) => unapplied.push((name, upstream_id, id)),
            (true, true) => {}
        }
    }
    if let Some((_, _, id)) = unapplied.first() {
        panic!(
            "round {round}: {} receipts acknowledged upstream for ids Tern had recorded were \
             never applied: {}; the first message is {}",
            unapplied.len(),
            some(&unapplied),
            story(id).await
        );
    }
    // Every receipt Tern still holds must be for an upstream id it never
    // learnt. One whose message has that id is a receipt Tern could apply:
    // after a kill between holding it and answering the upstream, the
    // message may have learnt the id meanwhile, and the held receipt waits
    // for the sweep that applies such receipts (each second). Past that,
    // it would be kept for nothing and lost to its client.
    let learnt_ids = |name: &str, upstream_id: &str| -> Option<String> {
        let i = upstreams.iter().position(|u| u.name == name)?;
        let id = tern_of.get(text_at.get(&(i, upstream_id.to_owned()))?)?;
        let message = messages.get(id)?;
        let learnt = message["attempts"].as_array().is_some_and(|a| {
            a.iter().any(|entry| {
                entry["upstream"].as_str() == Some(name)
                    && entry["upstream_ids"]
                        .as_array()
                        .is_some_and(|ids| ids.iter().any(|x| x.as_str() == Some(upstream_id)))
            })
        });
        learnt.then(|| id.clone())
    };
    let sweep_deadline = Instant::now() + Duration::from_secs(5);
    let held = loop {
        let held = daemon
            .get("/api/unmatched")
            .await
            .unwrap_or_else(|| panic!("round {round}: /api/unmatched did not answer"));
        let mut held_for_known = Vec::new();
        for receipt in held.as_array().into_iter().flatten() {
            let (Some(name), Some(upstream_id)) = (
                receipt["upstream"].as_str(),
                receipt["upstream_id"].as_str(),
            ) else {
                panic!("round {round}: a held receipt without upstream or id: {receipt}");
            };
            assert!(
                upstreams.iter().any(|u| u.name == name),
                "round {round}: a receipt held for an unknown upstream: {receipt}"
            );
            if let Some(id) = learnt_ids(name, upstream_id) {
                held_for_known.push((name.to_owned(), upstream_id.to_owned(), id));
            }
        }
        let Some((_, _, id)) = held_for_known.first() else {
            break held;
        };
        if Instant::now() >= sweep_deadline {
            panic!(
                "round {round}: {} receipts still held unmatched 5 s after the round settled, \
                 for upstream ids Tern had recorded: {:?}; the first message is {}",
                held_for_known.len(),
                held_for_known,
                story(id).await
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    // For the report: receipts still held, against those the upstream had
    // sent and Tern acknowledged for ids it never learnt. Held can be more:
    // a receipt held just before a kill was never acknowledged upstream.
    let unmatched = held.as_array().map_or(0, Vec::len) as u64;
    println!(
        "chaos: round {round}: {} acknowledged, refused {:?}, {} unanswered; {} accepted upstream \
         ({upstream_duplicates} duplicates); {receipts} receipts at clients ({receipt_duplicates} \
         duplicates, {receipts_for_unknown_ids} for ids no client was told); {unmatched} left \
         unmatched ({} receipts acknowledged for ids Tern never learnt, {unclassified} for messages \
         no client was told of); {} client binds, {} daemon starts; settled in {settle:.1?}",
        ledger.acked.len(),
        ledger.refused,
        ledger.unanswered,
        upstream_submits,
        foreign.len(),
        ledger.binds,
        daemon.starts,
    );
    RoundReport {
        upstream_submits,
        upstream_duplicates,
        receipts,
        receipt_duplicates,
        receipts_for_unknown_ids,
        unmatched,
    }
}
