//! Crash points: Tern stopped exactly between each pair of the pipeline's
//! steps loses nothing (DESIGN.md, Contracts).
//!
//! chaos.rs kills Tern at random moments and finds a window by luck; here
//! each window is hit on purpose. `TERN_CRASH_AT=NAME[:N]` makes the daemon
//! abort (no destructor, no flush: as a SIGKILL there) the Nth time it
//! passes the named point (`daemon/crash.rs`). Two gaps no line of Tern's
//! own sits in are hit from outside instead, with SIGKILL: the upstream
//! holding its first submit_sm_resp (sent, not answered), and the client
//! holding its first deliver_sm_resp (written, not answered).
//!
//! Each case: an upstream written here (over `common::bare_smsc`) that
//! records every submit reaching it and every receipt Tern answered
//! ESME_ROK, and sends a receipt again until Tern answers it, as a vendor's
//! SMSC does; Tern on a durable sled store in a temp dir, with the crash
//! point set; a client that submits a few messages one after another,
//! receipts requested, and takes its receipts. Tern must die by abort at
//! the point (or is killed), and is started again on the same store
//! without it. Then, within a bound: every submit the client got ESME_ROK
//! for reached the upstream at least once, and every such message, and
//! every message whose receipt the upstream got a deliver_sm_resp for,
//! has a receipt at the client (matched by the message text, which Tern
//! copies into the receipt's `text:`, so messages whose answer the crash
//! cut off count too). Duplicates are allowed and counted, losses are not.
//!
//! The upstream answers submits and sends receipts 150 ms later, so they
//! match at once; in the "receipt first" cases it sends the receipt and
//! waits for Tern's deliver_sm_resp before answering the submit, so Tern
//! must hold the receipt and apply it once the submit_sm_resp is recorded.
//!
//! Three test functions share the cases out; cargo runs them at once.

use tern_testkit as common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{bare_smsc, submit_sm, wait_for, Admin, Listening, TempDir, LISTENING, TERN};
use tern_codec::pdu::{DeliverSm, SmResp};
use tern_codec::{Body, COctetString, CommandStatus, EsmClass, RegisteredDelivery, ShortMessage};
use tern_session::smsc::{BoundSession, SmscConfig};
use tern_session::{Request, SessionConfig, SessionHandle};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Messages each case submits, one after another.
const MESSAGES: usize = 4;
/// How long the upstream waits between a submit_sm_resp and its receipt.
const RECEIPT_DELAY: Duration = Duration::from_millis(150);
/// How long Tern may take to reach its crash point.
const CRASH_WITHIN: Duration = Duration::from_secs(20);
/// How long the restarted Tern may take to make good on everything.
const SETTLE_WITHIN: Duration = Duration::from_secs(30);
/// SIGABRT, the signal `std::process::abort` ends a process with.
const SIGABRT: i32 = 6;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

// ----------------------------------------------------------------- cases

/// How a case stops Tern.
#[derive(Debug, Clone, Copy)]
enum Stop {
    /// `TERN_CRASH_AT` set to this.
    At(&'static str),
    /// SIGKILL while the upstream holds the first submit unanswered.
    KillWhileUpstreamHoldsResp,
    /// SIGKILL while the client holds the first deliver_sm unanswered.
    KillWhileClientHoldsResp,
}

#[derive(Debug, Clone, Copy)]
struct Case {
    stop: Stop,
    /// The upstream sends each receipt before it answers the submit.
    receipt_first: bool,
}

const fn at(point: &'static str) -> Case {
    Case {
        stop: Stop::At(point),
        receipt_first: false,
    }
}

const fn held(point: &'static str) -> Case {
    Case {
        stop: Stop::At(point),
        receipt_first: true,
    }
}

/// Submit and send: the client's submit stored and answered, claimed,
/// sent upstream and answered there, recorded.
const SUBMIT_AND_SEND: [Case; 7] = [
    // The second submit: the first went through every step before it.
    at("intake.after_accept:2"),
    at("intake.after_resp:2"),
    at("dispatch.after_claim"),
    Case {
        stop: Stop::KillWhileUpstreamHoldsResp,
        receipt_first: false,
    },
    at("dispatch.after_submit_resp"),
    at("dispatch.after_attempt"),
    // The second message: the first one's receipt has come meanwhile.
    at("dispatch.after_attempt:2"),
];

/// The receipt from the upstream: matched, stored, answered; and the held
/// path, a receipt before its submit_sm_resp is recorded.
const RECEIPTS: [Case; 8] = [
    at("receipts.after_match"),
    at("receipts.after_store"),
    at("receipts.after_resp"),
    held("receipts.after_hold"),
    held("receipts.after_store"),
    // Recorded, the held receipt not yet applied: the sweep applies it.
    held("dispatch.after_attempt"),
    held("receipts.after_held_apply"),
    held("receipts.after_held_take"),
];

/// The client's receipt: written, answered, acknowledged in the store.
const DELIVERY: [Case; 4] = [
    Case {
        stop: Stop::KillWhileClientHoldsResp,
        receipt_first: false,
    },
    at("outbox.after_resp"),
    at("outbox.after_ack"),
    at("outbox.after_ack:2"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_submit_steps_loses_nothing() {
    run_cases("submit", &SUBMIT_AND_SEND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_receipt_steps_loses_nothing() {
    run_cases("receipt", &RECEIPTS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_delivery_steps_loses_nothing() {
    run_cases("delivery", &DELIVERY).await;
}

/// Every `crash::point("…")` in the daemon's source is run by a case
/// above: a point added without a case fails here.
#[test]
fn every_crash_point_in_the_daemon_has_a_case() {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/daemon")];
    let mut files = Vec::new();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src/daemon") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut in_source = HashSet::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read");
        for piece in text.split("crash::point(\"").skip(1) {
            let name = piece.split('"').next().expect("a name");
            in_source.insert(name.to_owned());
        }
    }
    assert!(in_source.len() >= 13, "{in_source:?}");
    let run: HashSet<String> = SUBMIT_AND_SEND
        .iter()
        .chain(&RECEIPTS)
        .chain(&DELIVERY)
        .filter_map(|case| match case.stop {
            Stop::At(value) => Some(value.split(':').next().expect("name").to_owned()),
            _ => None,
        })
        .collect();
    let missing: Vec<&String> = in_source.difference(&run).collect();
    assert!(
        missing.is_empty(),
        "crash points without a case: {missing:?}"
    );
    let unknown: Vec<&String> = run.difference(&in_source).collect();
    assert!(unknown.is_empty(), "cases for no crash point: {unknown:?}");
}

/// A name outside the daemon's list is refused at start, naming the
/// variable: a misspelt point fails at once instead of never crashing.
#[test]
fn an_unknown_crash_point_stops_the_start() {
    let dir = TempDir::new("crash-unknown");
    let config = dir.write("tern.toml", &config());
    let out = Command::new(TERN)
        .args(["run", "--config"])
        .arg(&config)
        .env("TERN_CRASH_AT", "dispatch.after_atempt")
        .env("RUST_LOG", "warn")
        .current_dir(dir.path())
        .output()
        .expect("run tern");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("TERN_CRASH_AT") && stderr.contains("no such crash point"),
        "{stderr}"
    );
}

async fn run_cases(group: &str, cases: &[Case]) {
    let started = Instant::now();
    for (n, case) in cases.iter().enumerate() {
        let case_started = Instant::now();
        let report = run_case(&format!("{group}{n}"), *case).await;
        println!(
            "crash points: {:?}{}: {report} ({:.1?})",
            case.stop,
            if case.receipt_first {
                ", receipt first"
            } else {
                ""
            },
            case_started.elapsed()
        );
    }
    println!(
        "crash points: {} cases of `{group}` in {:.1?}",
        cases.len(),
        started.elapsed()
    );
}

// -------------------------------------------------------------- the case

fn config() -> String {
    r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
durability = "durable"
[[client]]
system_id = "acme"
passwords = ["pw"]
[router]
retry_initial = "200ms"
retry_max = "2s"
"#
    .to_owned()
}

fn upstream_config(port: u16) -> String {
    format!(
        r#"
[[upstream]]
name = "up"
host = "127.0.0.1"
port = {port}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["up"]
"#
    )
}

/// Starts `tern run` in `dir` (its config there), stderr to `log`.
fn spawn(dir: &TempDir, log: &str, crash_at: Option<&str>) -> Child {
    let log = std::fs::File::create(dir.join(log)).expect("log");
    let mut command = Command::new(TERN);
    command
        .args(["run", "--config"])
        .arg(dir.join("tern.toml"))
        .arg("--listening-file")
        .arg(dir.join(LISTENING))
        // An abort may leave a core file: in the scratch dir, if any.
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .env_remove("TERN_CRASH_AT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    if let Some(point) = crash_at {
        command.env("TERN_CRASH_AT", point);
    }
    command.spawn().expect("start tern")
}

/// Kills and reaps the child on drop, so a failing case leaves no daemon.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What a case saw, for its line in the output.
struct Report {
    acked: usize,
    upstream_submits: usize,
    upstream_duplicates: usize,
    receipts: usize,
    receipt_duplicates: usize,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} acknowledged, {} submits upstream ({} duplicates), \
             {} receipts at the client ({} duplicates)",
            self.acked,
            self.upstream_submits,
            self.upstream_duplicates,
            self.receipts,
            self.receipt_duplicates
        )
    }
}

async fn run_case(label: &str, case: Case) -> Report {
    let upstream = Upstream::start(case).await;
    let dir = TempDir::new(&format!("crash-{label}"));
    let text = config() + &upstream_config(upstream.port);
    dir.write("tern.toml", &text);
    let crash_at = match case.stop {
        Stop::At(point) => Some(point),
        _ => None,
    };
    let mut daemon = Reaped(spawn(&dir, "first.log", crash_at));
    // The restart comes back on the ports this run bound: the client
    // keeps reconnecting to its port across the crash.
    let listening = Listening::wait(&dir.join(LISTENING), &mut daemon.0);
    dir.write("tern.toml", &listening.pin(&text));
    let (client_port, admin_port) = (listening.client_port(), listening.admin_port());
    let client = Client::start(client_port, label, case);

    stop(&mut daemon.0, &dir, case, &upstream, &client).await;
    // Started again on the same store, no crash point.
    daemon = Reaped(spawn(&dir, "second.log", None));
    let deadline = tokio::time::Instant::now() + SETTLE_WITHIN;
    let lost = loop {
        let lost = losses(&client.ledger(), &upstream.seen());
        match lost {
            None => break None,
            Some(_) if tokio::time::Instant::now() >= deadline => break lost,
            Some(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let ledger = client.ledger();
    let seen = upstream.seen();
    if let Some(lost) = lost {
        let log = |name| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        panic!(
            "{:?}: lost after {SETTLE_WITHIN:?}: {lost}; client: {ledger}; upstream: {seen:?}; \
             first run: {}; second run: {}",
            case.stop,
            log("first.log"),
            log("second.log")
        );
    }
    // Nothing stuck either: a message stored whose answer the crash cut
    // off is sent all the same, and every receipt is taken.
    let admin = Admin::at(admin_port);
    let queues = wait_for("Tern's queues empty", SETTLE_WITHIN, || async {
        let queues = admin.get("/api/queues").await;
        ["ready", "in_flight", "outbox"]
            .iter()
            .all(|q| queues[*q].as_u64() == Some(0))
            .then_some(queues)
    });
    tokio::time::timeout(SETTLE_WITHIN + Duration::from_secs(5), queues)
        .await
        .unwrap_or_else(|_| panic!("{:?}: the admin API did not answer", case.stop));
    drop(daemon);
    client.stop().await;
    // The case proves something only if the client had an answer.
    assert!(
        !ledger.acked.is_empty(),
        "{:?}: no submit was acknowledged: {ledger}",
        case.stop
    );
    let upstream_submits = seen.arrived.len();
    let distinct: HashSet<&String> = seen.arrived.iter().collect();
    let receipts: usize = ledger.receipts.values().sum();
    Report {
        acked: ledger.acked.len(),
        upstream_submits,
        upstream_duplicates: upstream_submits - distinct.len(),
        receipts,
        receipt_duplicates: receipts - ledger.receipts.len(),
    }
}

/// Waits for Tern to abort at the case's crash point (checking it did, and
/// said where), or kills it once the upstream or the client holds its
/// answer.
async fn stop(daemon: &mut Child, dir: &TempDir, case: Case, upstream: &Upstream, client: &Client) {
    match case.stop {
        Stop::At(point) => {
            let status = wait_exit(daemon, CRASH_WITHIN).await.unwrap_or_else(|| {
                let ledger = client.ledger();
                panic!("{point}: not reached within {CRASH_WITHIN:?}; {ledger}")
            });
            let log = std::fs::read_to_string(dir.join("first.log")).unwrap_or_default();
            let name = point.split(':').next().expect("name");
            assert_eq!(
                status.signal(),
                Some(SIGABRT),
                "{point}: tern ended {status}, not by abort: {log}"
            );
            assert!(
                log.contains(&format!("crash point {name} reached")),
                "{point}: {log}"
            );
        }
        Stop::KillWhileUpstreamHoldsResp => {
            within(
                CRASH_WITHIN,
                "the upstream holds a submit",
                upstream.holding.notified(),
            )
            .await;
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
        Stop::KillWhileClientHoldsResp => {
            within(
                CRASH_WITHIN,
                "the client holds a deliver_sm",
                client.holding.notified(),
            )
            .await;
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// What is missing, or `None` when nothing is: an acknowledged submit the
/// upstream never got; a receipt owed to the client (its submit was
/// acknowledged, or the upstream had it answered) that the client never
/// took.
fn losses(ledger: &Ledger, seen: &Seen) -> Option<String> {
    let arrived: HashSet<&String> = seen.arrived.iter().collect();
    let mut submits: Vec<&String> = ledger
        .acked
        .iter()
        .filter(|t| !arrived.contains(t))
        .collect();
    let mut owed: HashSet<&String> = ledger.acked.iter().collect();
    owed.extend(seen.acked.iter().filter_map(|id| seen.text_of.get(id)));
    let mut receipts: Vec<&String> = owed
        .into_iter()
        .filter(|t| !ledger.receipts.contains_key(*t))
        .collect();
    if submits.is_empty() && receipts.is_empty() && ledger.tried == MESSAGES {
        return None;
    }
    submits.sort();
    receipts.sort();
    Some(format!(
        "acknowledged submits never upstream {submits:?}; receipts never at the client \
         {receipts:?}; {} of {MESSAGES} submits tried",
        ledger.tried
    ))
}

async fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("wait") {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

async fn within(limit: Duration, what: &str, f: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(limit, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {limit:?}"));
}

// ------------------------------------------------------------ the client

/// What the client saw.
#[derive(Debug, Default, Clone)]
struct Ledger {
    /// Texts of the submits answered ESME_ROK.
    acked: Vec<String>,
    /// Submits sent so far (answered or not: each is sent once).
    tried: usize,
    /// Receipts the client took (answered ESME_ROK), by the text they
    /// carry, with how many times.
    receipts: HashMap<String, usize>,
}

impl std::fmt::Display for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acknowledged {:?}, {} tried, receipts {:?}",
            self.acked, self.tried, self.receipts
        )
    }
}

/// A client that binds (again after every loss), submits the case's
/// messages one after another, and takes its receipts.
struct Client {
    ledger: Arc<Mutex<Ledger>>,
    /// Told when the client holds a deliver_sm unanswered.
    holding: Arc<Notify>,
    end: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    fn start(port: u16, label: &str, case: Case) -> Client {
        let ledger = Arc::new(Mutex::new(Ledger::default()));
        let holding = Arc::new(Notify::new());
        let end = CancellationToken::new();
        let hold = matches!(case.stop, Stop::KillWhileClientHoldsResp);
        let task = tokio::spawn(client_loop(
            port,
            label.to_owned(),
            ledger.clone(),
            hold.then(|| holding.clone()),
            end.clone(),
        ));
        Client {
            ledger,
            holding,
            end,
            task,
        }
    }

    fn ledger(&self) -> Ledger {
        lock(&self.ledger).clone()
    }

    async fn stop(self) {
        self.end.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

async fn client_loop(
    port: u16,
    label: String,
    ledger: Arc<Mutex<Ledger>>,
    mut hold: Option<Arc<Notify>>,
    end: CancellationToken,
) {
    while !end.is_cancelled() {
        let bind = common::client(port, "acme", "pw")
            .session_config(SessionConfig {
                enquire_link_interval: None,
                close_grace: Duration::from_secs(1),
                ..SessionConfig::default()
            })
            .within(Duration::from_secs(5));
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
        let session = match stream {
            Ok(stream) => bind.try_bind_over(stream).await.ok(),
            Err(_) => None,
        };
        let Some(mut session) = session else {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = end.cancelled() => {}
            }
            continue;
        };
        let handle = session.handle.clone();
        let receipts = {
            let ledger = ledger.clone();
            let hold = hold.take();
            tokio::spawn(async move {
                let mut hold = hold;
                while let Some(request) = session.requests.recv().await {
                    take_receipt(request, &ledger, &mut hold).await;
                }
                hold
            })
        };
        submit_all(&handle, &label, &ledger).await;
        tokio::select! {
            () = handle.closed() => {}
            () = end.cancelled() => handle.unbind().await,
        }
        if let Ok(Ok(left)) = tokio::time::timeout(Duration::from_secs(10), receipts).await {
            hold = left;
        }
    }
}

/// Submits the messages not tried yet, one after another, until one gets
/// no answer (the session died under it: it is not sent again).
async fn submit_all(handle: &SessionHandle, label: &str, ledger: &Mutex<Ledger>) {
    loop {
        let n = {
            let mut ledger = lock(ledger);
            if ledger.tried >= MESSAGES {
                return;
            }
            ledger.tried += 1;
            ledger.tried
        };
        let text = format!("{label}-{n}");
        let sm = submit_sm("34600000001", &text, RegisteredDelivery::ALWAYS);
        let answer =
            tokio::time::timeout(Duration::from_secs(10), handle.request(Body::SubmitSm(sm))).await;
        match answer {
            Ok(Ok(resp)) if resp.command_status == CommandStatus::Ok => {
                lock(ledger).acked.push(text);
            }
            Ok(Ok(resp)) => panic!("{text} refused: {resp:?}"),
            _ => return,
        }
    }
}

/// How long the client waits before answering its second receipt.
const SECOND_ACK_AFTER: Duration = Duration::from_millis(300);

/// Takes one deliver_sm (or, the first time with `hold`, keeps it
/// unanswered and says so).
async fn take_receipt(request: Request, ledger: &Mutex<Ledger>, hold: &mut Option<Arc<Notify>>) {
    let Body::DeliverSm(sm) = &request.pdu.body else {
        let _ = request
            .responder
            .reject(CommandStatus::InvalidCommandId)
            .await;
        return;
    };
    if let Some(holding) = hold.take() {
        request.responder.ignore();
        holding.notify_one();
        return;
    }
    let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
    let text = text
        .split_once("text:")
        .map_or(String::new(), |(_, t)| t.to_owned());
    if lock(ledger).receipts.len() == 1 {
        // Tern writes the acknowledgements that come together in one
        // batch; on a loaded machine all four receipts came at once, were
        // written in one, and the case `outbox.after_ack:2` never met its
        // second. The first is written long before the rest come now.
        tokio::time::sleep(SECOND_ACK_AFTER).await;
    }
    let taken = request
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await;
    if taken.is_ok() {
        *lock(ledger).receipts.entry(text).or_default() += 1;
    }
}

// ---------------------------------------------------------- the upstream

/// What reached the upstream.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// The text of every submit that reached it, answered or not.
    arrived: Vec<String>,
    /// Its ids, by the text they were given to.
    text_of: HashMap<String, String>,
    /// Ids whose receipt Tern answered ESME_ROK.
    acked: Vec<String>,
}

/// The upstream's shared state.
#[derive(Debug, Default)]
struct State {
    seen: Seen,
    next_id: u64,
    /// Receipts not yet answered ESME_ROK: sent (again) to the next
    /// session, as an SMSC keeps a receipt until its receiver takes it.
    owed: VecDeque<String>,
    /// The first submit is kept unanswered (while this is set).
    hold_first: bool,
}

/// An upstream written for these cases: see the file's doc.
struct Upstream {
    port: u16,
    state: Arc<Mutex<State>>,
    /// Told when the first submit is held unanswered.
    holding: Arc<Notify>,
    _stop: tokio_util::sync::DropGuard,
}

impl Upstream {
    async fn start(case: Case) -> Upstream {
        let mut smsc = bare_smsc(SmscConfig::default()).await;
        let state = Arc::new(Mutex::new(State {
            hold_first: matches!(case.stop, Stop::KillWhileUpstreamHoldsResp),
            ..State::default()
        }));
        let holding = Arc::new(Notify::new());
        let (st, h) = (state.clone(), holding.clone());
        let receipt_first = case.receipt_first;
        tokio::spawn(async move {
            while let Some(session) = smsc.sessions.recv().await {
                tokio::spawn(serve(session, st.clone(), h.clone(), receipt_first));
            }
        });
        Upstream {
            port: smsc.port,
            state,
            holding,
            _stop: smsc.stop,
        }
    }

    fn seen(&self) -> Seen {
        lock(&self.state).seen.clone()
    }
}

/// Serves one session Tern bound: submits, and the receipts owed.
async fn serve(
    mut session: BoundSession,
    state: Arc<Mutex<State>>,
    holding: Arc<Notify>,
    receipt_first: bool,
) {
    let handle = session.handle.clone();
    let news = Arc::new(Notify::new());
    tokio::spawn(send_owed(handle.clone(), state.clone(), news.clone()));
    while let Some(request) = session.requests.recv().await {
        let Body::SubmitSm(sm) = &request.pdu.body else {
            let _ = request
                .responder
                .reject(CommandStatus::InvalidCommandId)
                .await;
            continue;
        };
        let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
        let (id, hold) = {
            let mut state = lock(&state);
            state.next_id += 1;
            let id = format!("u{}", state.next_id);
            state.seen.arrived.push(text.clone());
            state.seen.text_of.insert(id.clone(), text);
            (id, std::mem::take(&mut state.hold_first))
        };
        if hold {
            request.responder.ignore();
            holding.notify_one();
            continue;
        }
        let (state, news, handle) = (state.clone(), news.clone(), handle.clone());
        tokio::spawn(async move {
            if receipt_first {
                // The receipt, and Tern's answer to it, before the
                // submit_sm_resp: Tern cannot know the id yet.
                deliver(&handle, &state, id.clone()).await;
            }
            let resp = SmResp::with_id(COctetString::try_from(id.as_str()).expect("short"));
            let answered = request
                .responder
                .respond(CommandStatus::Ok, Body::SubmitSmResp(resp))
                .await;
            if !receipt_first && answered.is_ok() {
                tokio::time::sleep(RECEIPT_DELAY).await;
                lock(&state).owed.push_back(id);
                news.notify_one();
            }
        });
    }
}

/// Sends the receipts owed, one at a time, until the session ends.
async fn send_owed(handle: SessionHandle, state: Arc<Mutex<State>>, news: Arc<Notify>) {
    loop {
        let next = lock(&state).owed.pop_front();
        match next {
            Some(id) => {
                if !deliver(&handle, &state, id).await {
                    if handle.is_closed() {
                        return;
                    }
                    // Refused: a while later, as an SMSC retries.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            None => tokio::select! {
                () = news.notified() => {}
                () = tokio::time::sleep(Duration::from_millis(50)) => {}
                () = handle.closed() => return,
            },
        }
    }
}

/// Sends the receipt of `id`; records it when Tern answers ESME_ROK, owes
/// it again otherwise. Returns whether Tern took it.
async fn deliver(handle: &SessionHandle, state: &Mutex<State>, id: String) -> bool {
    let answer = tokio::time::timeout(
        Duration::from_secs(10),
        handle.request(Body::DeliverSm(receipt(&id))),
    )
    .await;
    let mut state = lock(state);
    match answer {
        Ok(Ok(resp)) if resp.command_status == CommandStatus::Ok => {
            state.seen.acked.push(id);
            true
        }
        _ => {
            state.owed.push_back(id);
            false
        }
    }
}

/// A DELIVRD receipt for upstream id `id`, in the SMPP 3.4 text form.
fn receipt(id: &str) -> DeliverSm {
    let text = format!(
        "id:{id} sub:001 dlvrd:001 submit date:2611220300 done date:2611220301 \
         stat:DELIVRD err:000 text:-"
    );
    DeliverSm {
        esm_class: EsmClass::DELIVERY_RECEIPT,
        short_message: ShortMessage::new(text.into_bytes()).expect("short"),
        ..DeliverSm::default()
    }
}
