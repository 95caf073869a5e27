//! Faults of the peers around Tern (issue 22, points 3 and 7), on the real
//! binary over loopback sockets.
//!
//! - A silent upstream: a connection that stops answering without closing
//!   (a proxy in this test drops every packet both ways and keeps both
//!   sockets open) is found dead by enquire_link within its interval plus
//!   the response timeout, and nothing acknowledged to a client is lost:
//!   each message reaches the second upstream, or the first once it is
//!   reachable again. Delivery is at-least-once: a submit the silent
//!   upstream took before its answer was dropped is sent again elsewhere,
//!   and only such submits (at most Tern's window towards it) may arrive
//!   twice. The test's bound on the detection is the interval (1 s) plus
//!   the response timeout (1 s) plus 1 s of slack.
//! - Out of descriptors: Tern under a low `ulimit -n` (started through
//!   util-linux `prlimit`) fills its descriptors with client sessions; the
//!   next connection waits in the kernel's queue while Tern's accept loop
//!   backs off, logging it once; the sessions already bound keep submitting
//!   and getting receipts; once sessions close, new binds succeed again.

use tern_testkit as common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, submit_sm, wait_for, wait_until, Admin, TempDir, LISTENING, TERN};
use tern_codec::{Body, CommandStatus, RegisteredDelivery};
use tern_session::esme::{self, BindParams, UpstreamSession};
use tern_session::{SessionConfig, SessionHandle};
use tern_sim::smsc::{Behaviour, Recorded, SimConfig, SimHandle, Simulator};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

// ------------------------------------------------------- the freezing proxy

/// A TCP proxy between Tern and an upstream that can go silent: frozen, it
/// reads and discards what either side sends and keeps both sockets open,
/// as a network that drops packets does (no FIN, no RST reaches anyone).
/// Each connection that lost a byte stays mute; on [`resume`] those are
/// closed (as a real peer's stack would reset them once the network is
/// back) and new connections are forwarded again.
///
/// [`resume`]: FreezingProxy::resume
struct FreezingProxy {
    port: u16,
    frozen: watch::Sender<bool>,
    /// Connections that lost bytes while frozen: closed on resume.
    muted: Arc<Mutex<Vec<CancellationToken>>>,
    _stop: tokio_util::sync::DropGuard,
}

impl FreezingProxy {
    async fn start(upstream: u16) -> FreezingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let (frozen, _) = watch::channel(false);
        let muted = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let proxy = FreezingProxy {
            port,
            frozen,
            muted: muted.clone(),
            _stop: stop.clone().drop_guard(),
        };
        let frozen = proxy.frozen.subscribe();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = stop.cancelled() => return,
                };
                let Ok((inbound, _)) = accepted else { continue };
                let link = Link {
                    frozen: frozen.clone(),
                    mute: Arc::new(AtomicBool::new(false)),
                    close: stop.child_token(),
                    muted: muted.clone(),
                };
                tokio::spawn(link.run(inbound, upstream));
            }
        });
        proxy
    }

    /// Drops every packet from now on, both ways, on every connection.
    fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    /// Forwards again; the connections muted meanwhile are closed.
    fn resume(&self) {
        self.frozen.send_replace(false);
        for link in self.muted.lock().expect("lock").drain(..) {
            link.cancel();
        }
    }
}

/// One proxied connection.
#[derive(Clone)]
struct Link {
    frozen: watch::Receiver<bool>,
    /// Set once a byte was dropped: the stream is broken for good.
    mute: Arc<AtomicBool>,
    /// Closes both sockets.
    close: CancellationToken,
    muted: Arc<Mutex<Vec<CancellationToken>>>,
}

impl Link {
    fn frozen(&self) -> bool {
        *self.frozen.borrow()
    }

    fn go_mute(&self) {
        if !self.mute.swap(true, Ordering::SeqCst) {
            self.muted.lock().expect("lock").push(self.close.clone());
        }
    }

    async fn run(self, inbound: TcpStream, upstream: u16) {
        if self.frozen() {
            // A connection made while frozen reaches nothing.
            self.go_mute();
            let (read, _write) = inbound.into_split();
            self.clone().discard(read).await;
            return;
        }
        let Ok(outbound) = TcpStream::connect(("127.0.0.1", upstream)).await else {
            return;
        };
        let (in_read, in_write) = inbound.into_split();
        let (out_read, out_write) = outbound.into_split();
        let there = tokio::spawn(self.clone().pump(in_read, out_write));
        let back = tokio::spawn(self.clone().pump(out_read, in_write));
        let _ = there.await;
        let _ = back.await;
    }

    /// Copies `from` to `to` until either side closes (then closes both),
    /// discarding while frozen.
    async fn pump(self, mut from: OwnedReadHalf, mut to: OwnedWriteHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = tokio::select! {
                read = from.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                },
                () = self.close.cancelled() => return,
            };
            if self.frozen() || self.mute.load(Ordering::SeqCst) {
                self.go_mute();
                continue;
            }
            if to.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        if self.mute.load(Ordering::SeqCst) {
            // Dropped packets carry no FIN either: hold the other side
            // open until the proxy resumes.
            self.close.cancelled().await;
        } else {
            self.close.cancel();
        }
    }

    /// Reads and drops everything until closed.
    async fn discard(self, mut from: OwnedReadHalf) {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            tokio::select! {
                read = from.read(&mut buf) => if matches!(read, Ok(0) | Err(_)) {
                    self.close.cancelled().await;
                    return;
                },
                () = self.close.cancelled() => return,
            }
        }
    }
}

// ------------------------------------------------------ a silent upstream

/// Tern's enquire_link interval and response timeout towards the silent
/// upstream (its profile's `[timers]`, whole seconds).
const INTERVAL: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// What the bound allows beyond interval + response timeout: the admin API
/// is polled every 50 ms, on a loaded 2-core machine. Less than one more
/// response timeout, so a probe that waited for a window slot behind the
/// submits the silent link never answers (as it once did) fails the test.
const SLACK: Duration = Duration::from_secs(1);

/// Tern's window towards the silent upstream: how many submits can be in
/// flight on it when it freezes, and so how many may arrive twice.
const WINDOW: usize = 10;

/// Texts the simulators accepted, with how many times.
fn accepted(sims: &[&SimHandle]) -> Vec<HashMap<String, usize>> {
    sims.iter()
        .map(|sim| {
            let mut texts = HashMap::new();
            for entry in sim.recorded() {
                if let Recorded::Submit { text, .. } = entry {
                    *texts
                        .entry(String::from_utf8_lossy(&text).into_owned())
                        .or_insert(0) += 1;
                }
            }
            texts
        })
        .collect()
}

/// The `bound` count `/api/upstreams` shows for `name`.
async fn bound(admin: &Admin, name: &str) -> Option<u64> {
    let upstreams = admin.get("/api/upstreams").await;
    upstreams.as_array()?.iter().find(|u| u["name"] == name)?["bound"].as_u64()
}

/// Submits `text`; its id if Tern answered `ESME_ROK`.
async fn submit(handle: &SessionHandle, text: &str) -> Option<String> {
    let sm = submit_sm("34600000001", text, RegisteredDelivery::NONE);
    let resp = tokio::time::timeout(Duration::from_secs(10), handle.request(Body::SubmitSm(sm)))
        .await
        .ok()?
        .ok()?;
    (resp.command_status == CommandStatus::Ok).then(|| common::message_id(&resp))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_found_dead_by_enquire_link_and_nothing_acknowledged_is_lost() {
    // The first upstream answers each submit after 300 ms, so that when
    // the link freezes it holds submits it took whose answers the frozen
    // link then drops: those go to the second upstream as well.
    let first = Simulator::start(SimConfig {
        behaviour: Behaviour {
            response_delay: Duration::from_millis(300),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let second = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    first.start_recording();
    second.start_recording();
    let proxy = FreezingProxy::start(first.addr().port()).await;
    let dir = TempDir::new("faults-silent-upstream");
    // Both upstreams on quick timers; the route tries the silent one first.
    dir.write(
        "quick.toml",
        &format!(
            "name = \"quick\"\ndescription = \"short timers for the test\"\n\
             versions = [\"3.4\"]\nbind_types = [\"transceiver\"]\n[timers]\n\
             enquire_link_secs = {}\nresponse_timeout_secs = {}\n",
            INTERVAL.as_secs(),
            RESPONSE_TIMEOUT.as_secs()
        ),
    );
    let config = format!(
        r#"profiles = ["quick.toml"]
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
[router]
retry_initial = "200ms"
retry_max = "1s"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "silent"
profile = "quick"
host = "127.0.0.1"
port = {silent}
system_id = "tern"
password = "x"
window = {WINDOW}
[[upstream]]
name = "healthy"
profile = "quick"
host = "127.0.0.1"
port = {healthy}
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34"]
strategy = "failover"
upstreams = ["silent", "healthy"]
"#,
        silent = proxy.port,
        healthy = second.addr().port(),
    );
    let mut daemon = common::Launch::new().start(dir, &config);
    let (port, admin) = (daemon.client_port(), daemon.admin());
    for name in ["silent", "healthy"] {
        wait_until(
            &format!("tern bound to {name}"),
            Duration::from_secs(15),
            || async { bound(&admin, name).await == Some(1) },
        )
        .await;
    }
    let session = client(port, "acme", "pw").window(4).bind().await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = CancellationToken::new();
    // One client submitting all along, a message every 20 ms.
    let submitter = {
        let (handle, acked, stop) = (session.handle.clone(), acked.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.is_cancelled() {
                let text = format!("silent-{n}");
                n += 1;
                if submit(&handle, &text).await.is_some() {
                    acked.lock().expect("lock").push(text);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    // Traffic flows through the silent upstream first.
    wait_until(
        "the first upstream takes messages",
        Duration::from_secs(15),
        || async { accepted(&[&first])[0].len() >= 20 },
    )
    .await;

    proxy.freeze();
    let frozen_at = Instant::now();
    let bound_limit = INTERVAL + RESPONSE_TIMEOUT + SLACK;
    wait_for(
        "tern to declare the silent upstream's session down",
        Duration::from_secs(30),
        || async { (bound(&admin, "silent").await == Some(0)).then_some(()) },
    )
    .await;
    let detected = frozen_at.elapsed();
    assert!(
        detected <= bound_limit,
        "the silent session was declared down {detected:?} after the freeze; \
         the bound is interval {INTERVAL:?} + response timeout {RESPONSE_TIMEOUT:?} + slack {SLACK:?}"
    );
    // Messages keep flowing, to the second upstream.
    let before = accepted(&[&second])[0].len();
    wait_until(
        "the second upstream takes the traffic",
        Duration::from_secs(15),
        || async { accepted(&[&second])[0].len() >= before + 20 },
    )
    .await;

    // The network comes back: Tern binds again through the proxy.
    proxy.resume();
    wait_until(
        "tern bound to the first upstream again",
        Duration::from_secs(30),
        || async { bound(&admin, "silent").await == Some(1) },
    )
    .await;
    stop.cancel();
    submitter.await.expect("submitter");
    let acked = acked.lock().expect("lock").clone();
    assert!(
        acked.len() >= 60,
        "only {} messages acknowledged",
        acked.len()
    );

    // Every acknowledged message reached an upstream.
    let records = wait_for(
        "every acknowledged message at an upstream",
        Duration::from_secs(60),
        || {
            let acked = &acked;
            let (first, second) = (&first, &second);
            async move {
                let records = accepted(&[first, second]);
                acked
                    .iter()
                    .all(|t| records.iter().any(|r| r.contains_key(t)))
                    .then_some(records)
            }
        },
    )
    .await;
    // At-least-once: a text taken twice was taken by the silent upstream,
    // whose answer the frozen link dropped; at most a window of them.
    let twice: Vec<&String> = acked
        .iter()
        .filter(|t| {
            records
                .iter()
                .map(|r| r.get(*t).copied().unwrap_or(0))
                .sum::<usize>()
                > 1
        })
        .collect();
    for text in &twice {
        assert!(
            records[0].contains_key(*text),
            "{text} arrived twice but never at the silent upstream"
        );
    }
    assert!(
        twice.len() <= WINDOW,
        "{} duplicates: more than the silent session's window had in flight ({twice:?})",
        twice.len()
    );
    eprintln!(
        "silent upstream: declared down after {detected:?} (bound {bound_limit:?}); \
         {} acknowledged, {} at the first upstream, {} at the second, {} sent twice",
        acked.len(),
        records[0].len(),
        records[1].len(),
        twice.len()
    );
}

// ------------------------------------------------------ out of descriptors

/// Tern's descriptor limit: its own needs (runtime, store, listeners, log,
/// the upstream session: about 17) and room for a few dozen client
/// sessions.
const NOFILE: u32 = 48;
/// How long a bind may take before the test calls it failed: Tern answers
/// a bind on loopback in milliseconds once it has accepted the connection.
const BIND_WAIT: Duration = Duration::from_secs(3);

/// `tern run` under `prlimit --nofile`, its output in a file; killed on
/// drop. The tests forbid unsafe code, so no `setrlimit` in a `pre_exec`.
struct Limited {
    daemon: common::Daemon,
    log: std::path::PathBuf,
}

impl Limited {
    fn start(dir: TempDir, config: &str, nofile: u32) -> Limited {
        let path = dir.write("tern.toml", config);
        let log = dir.join(common::LOG);
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}"))
            .arg("--")
            .arg(TERN)
            .args(["run", "--config"])
            .arg(&path)
            .arg("--listening-file")
            .arg(dir.join(LISTENING))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        // prlimit execs tern: the child is tern, for signals and the kill
        // on drop.
        let daemon = common::Launch::new()
            .rust_log("warn,tern_session::smsc=info")
            .log_file()
            .start_command(dir, command);
        Limited { daemon, log }
    }

    fn alive(&mut self) -> bool {
        self.daemon.child.try_wait().expect("wait").is_none()
    }

    /// CPU time (user and system) the process has used so far, from
    /// `/proc/PID/stat` (prlimit execs tern, so the child is tern).
    fn cpu_time(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.daemon.child.id()))
            .expect("/proc/PID/stat");
        // The fields after the command name, which is in parentheses and
        // may hold spaces: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: u64 =
            fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
        let hz = Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| {
                String::from_utf8_lossy(&out.stdout)
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(100);
        Duration::from_millis(ticks * 1000 / hz.max(1))
    }

    fn log_lines(&self, containing: &str) -> Vec<String> {
        read_log(&self.log)
            .lines()
            .filter(|l| l.contains(containing))
            .map(str::to_owned)
            .collect()
    }
}

fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// A bind to Tern on `port` within [`BIND_WAIT`]; `None` when the
/// connection was made (the kernel queues it) but no bind answer came.
async fn try_bind(port: u16, bind_type: tern_session::BindType) -> Option<UpstreamSession> {
    let stream = tokio::time::timeout(BIND_WAIT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("the kernel takes the connection in time")
        .expect("the kernel takes the connection");
    let mut params = BindParams::new("acme", "pw").expect("short");
    params.bind_type = bind_type;
    let config = SessionConfig {
        enquire_link_interval: None,
        ..SessionConfig::default()
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    tokio::time::timeout(BIND_WAIT, esme::bind(stream, Some(addr), &params, config))
        .await
        .ok()?
        .ok()
}

/// Submits a message asking for a receipt on `session` and waits for it.
async fn submit_and_get_receipt(session: &mut UpstreamSession, text: &str) {
    let sm = submit_sm("34600000001", text, RegisteredDelivery::ALWAYS);
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        session.handle.request(Body::SubmitSm(sm)),
    )
    .await
    .expect("submit answered in time")
    .expect("submit answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    let id = common::message_id(&resp);
    let receipt = common::next_receipt(session, Duration::from_secs(15)).await;
    assert_eq!(receipt, id, "the receipt is for the message just sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loop_backs_off_logs_once_and_recovers() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "up"
host = "127.0.0.1"
port = {up}
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = ["up"]
"#,
        up = sim.addr().port()
    );
    let mut tern = Limited::start(TempDir::new("faults-nofile"), &config, NOFILE);
    let listening = tern.daemon.listening();
    let (port, admin_port) = (listening.client_port(), listening.admin_port());
    wait_until(
        "tern bound to the simulator",
        Duration::from_secs(15),
        || async { !sim.sessions("tern").is_empty() },
    )
    .await;
    common::connect(port).await;
    // A receiving session bound before the descriptors run out.
    let mut keeper = try_bind(port, tern_session::BindType::Transceiver)
        .await
        .expect("the first bind");
    submit_and_get_receipt(&mut keeper, "before").await;

    // Bind until Tern has no descriptor left for the next connection.
    let mut sessions = Vec::new();
    loop {
        assert!(
            sessions.len() < NOFILE as usize,
            "{} sessions bound under a limit of {NOFILE} descriptors",
            sessions.len()
        );
        match try_bind(port, tern_session::BindType::Transmitter).await {
            Some(session) => sessions.push(session),
            None => break,
        }
    }
    assert!(!sessions.is_empty(), "no bind at all before the limit");
    let bound = sessions.len() + 1;
    // One more connection waits in the kernel's queue meanwhile, so Tern
    // keeps failing to accept it; and one on the admin listener.
    let _waiting = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("queued by the kernel");
    let _scraper = TcpStream::connect(("127.0.0.1", admin_port))
        .await
        .expect("queued by the kernel");

    // Bound sessions keep working: submits answered, receipts delivered.
    submit_and_get_receipt(&mut keeper, "while out of descriptors").await;
    let resp = tokio::time::timeout(
        Duration::from_secs(10),
        sessions[0].handle.request(Body::SubmitSm(submit_sm(
            "34600000002",
            "from a transmitter",
            RegisteredDelivery::NONE,
        ))),
    )
    .await
    .expect("answered in time")
    .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    // Long enough out of descriptors for a per-attempt log to show: the
    // delays grow 10 ms, 20 ms… to 1 s, so 3 s is some ten attempts. Tern
    // has nothing else to do meanwhile: an accept loop retrying without a
    // pause would burn a core, a back-off barely any CPU.
    let cpu_before = tern.cpu_time();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = tern.cpu_time().saturating_sub(cpu_before);
    assert!(tern.alive(), "tern exited out of descriptors");
    assert!(
        cpu < Duration::from_millis(500),
        "tern used {cpu:?} of CPU in 3 s out of descriptors: the accept loop spins"
    );
    // Once per listener: the clients' and the admin one.
    let warned = tern.log_lines("out of file descriptors");
    for listener in [port, admin_port] {
        let lines = warned
            .iter()
            .filter(|l| l.contains(&format!("listener=127.0.0.1:{listener} ")))
            .count();
        assert_eq!(
            lines,
            1,
            "the back-off of the listener on {listener} is logged once, not per attempt:\n{}",
            warned.join("\n")
        );
    }
    assert_eq!(warned.len(), 2, "{}", warned.join("\n"));

    // Descriptors come back: the next bind succeeds.
    for session in sessions.drain(..6) {
        session.handle.unbind().await;
    }
    let again = try_bind(port, tern_session::BindType::Transmitter).await;
    assert!(again.is_some(), "no bind once descriptors were free again");
    submit_and_get_receipt(&mut keeper, "after").await;
    let health = tokio::time::timeout(
        Duration::from_secs(10),
        tern::admin::get(([127, 0, 0, 1], admin_port).into(), "/health"),
    )
    .await
    .expect("the admin listener answers in time")
    .expect("the admin listener answers");
    assert_eq!(health.text(), "ok\n");
    wait_until(
        "tern logs that it accepts again",
        Duration::from_secs(5),
        || async { !tern.log_lines("accepting connections again").is_empty() },
    )
    .await;
    assert!(tern.alive());
    eprintln!(
        "out of descriptors: {bound} sessions bound under nofile={NOFILE}; {cpu:?} of CPU in 3 s; log: {}",
        warned.join(" | ")
    );
}
