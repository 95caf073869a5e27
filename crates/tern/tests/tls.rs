//! TLS end to end, against the real `tern` binary: a client binds to Tern
//! over TLS, Tern submits to one upstream that speaks only TLS 1.3 (like
//! OVHcloud) and to one that speaks only TLS 1.2 (like Telesign), and the
//! receipts come back through TLS both ways. An upstream whose TLS range
//! does not reach the floor Tern was configured with is never bound: the
//! handshake fails, the daemon says so, and messages routed only there stay
//! queued for a retry instead of being sent in the clear or elsewhere.
//!
//! Certificates come from a CA made per test with rcgen; nothing on disk is
//! shared between tests. Upstream simulators run inside the test process so
//! their counters (handshakes, binds, submits) can be read; the
//! `[[simulator]]` TLS keys are checked through `tern check-config` and a
//! daemon-run sandbox.

use tern_testkit as common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    check_config, client, connect, deliver_sm_before, expect_deliver_sm, query_sm, receipted_id,
    submit_id, Launch, Pki, TempDir,
};
use tern_codec::pdu::SubmitSm;
use tern_codec::{Body, CommandStatus, MessageState, RegisteredDelivery};
use tern_session::esme::UpstreamSession;
use tern_session::tls::{ClientTls, MaybeTlsStream, TlsVersion};
use tern_session::SessionConfig;
use tern_sim::smsc::{SimConfig, SimHandle, SimTls, Simulator};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// Bounds every single wait.
const WAIT: Duration = Duration::from_secs(10);

/// One test's scratch directory (certificates, configuration, store).
fn scratch(name: &str) -> TempDir {
    TempDir::new(&format!("tls-{name}"))
}

/// TLS settings of a simulator offering exactly `min..=max`, with the
/// test's server certificate.
fn sim_tls(pki: &Pki, min: TlsVersion, max: TlsVersion) -> SimTls {
    SimTls {
        min_version: min,
        max_version: max,
        ..SimTls::new(&pki.cert, &pki.key)
    }
}

/// A client trusting only the test's CA, with floor `min`.
fn client_tls(pki: &Pki, min: TlsVersion) -> ClientTls {
    ClientTls {
        min_version: min,
        extra_ca_pem: Some(pki.ca.clone()),
        use_webpki_roots: false,
        server_name: Some("localhost".to_owned()),
        ..ClientTls::default()
    }
}

/// An upstream simulator serving only TLS in `min..=max`, accepting any
/// bind; its receipts come 100 ms after each submit.
async fn tls_simulator(pki: &Pki, min: TlsVersion, max: TlsVersion) -> SimHandle {
    let mut config = SimConfig {
        tls: Some(sim_tls(pki, min, max)),
        ..SimConfig::default()
    };
    config.behaviour.receipts.delay = Duration::from_millis(100);
    Simulator::start(config).await.expect("simulator starts")
}

/// The daemon under test, with its client port and what it logged: its
/// stdout and stderr are collected so a test can check what it said.
struct Daemon {
    tern: common::Daemon,
    port: u16,
    log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `tern run` on `config` (written into `dir`, which the daemon
    /// keeps until it stops); its client listener says port 0, and `port`
    /// is the one it took.
    fn start(dir: TempDir, config: &str) -> Daemon {
        let mut tern = Launch::new()
            .env("NO_COLOR", "1")
            .captured()
            .start(dir, config);
        let log = Arc::new(Mutex::new(String::new()));
        // Wherever the logger writes: both streams, line by line.
        let stdout = tern
            .child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = tern
            .child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let sink = log.clone();
            // Ends at EOF, i.e. when the daemon exits.
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("tern: {line}");
                    let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
                    log.push_str(&strip_ansi(&line));
                    log.push('\n');
                }
            });
        }
        let port = tern.client_port();
        Daemon { tern, port, log }
    }

    async fn connect(&self) -> TcpStream {
        connect(self.port).await
    }

    /// What the daemon logged so far.
    fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits (at most `WAIT`) until a log line contains every one of
    /// `needles`; returns that line.
    async fn logged(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if let Some(line) = log
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
            {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {needles:?} in:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Drops terminal colour sequences (ESC [ … letter), should the logger
/// add them despite NO_COLOR.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Binds to Tern over TLS (trusting the test CA) as a transceiver; returns
/// the session and the TLS version the listener negotiated.
async fn tls_client(daemon: &Daemon, pki: &Pki) -> (UpstreamSession, Option<TlsVersion>) {
    let tls = client_tls(pki, TlsVersion::Tls12);
    let connector = tls.load().expect("client TLS");
    let name = tls.server_name_for("127.0.0.1").expect("name");
    let stream = daemon.connect().await;
    let io = tokio::time::timeout(WAIT, MaybeTlsStream::connect(&connector, name, stream))
        .await
        .expect("handshake in time")
        .expect("TLS to Tern's listener");
    let version = io.negotiated_version();
    let session = client(daemon.port, "acme", "pw")
        .within(WAIT)
        .try_bind_over(io)
        .await
        .expect("bound over TLS");
    (session, version)
}

/// A plain-TCP client of Tern.
async fn plain_client(daemon: &Daemon) -> UpstreamSession {
    client(daemon.port, "acme", "pw")
        .within(WAIT)
        .try_bind()
        .await
        .expect("bound")
}

/// A submit to `to` with a receipt requested.
fn submit(to: &str, text: &str) -> SubmitSm {
    common::submit_sm(to, text, RegisteredDelivery::ALWAYS)
}

/// Submits (waiting at most `WAIT`) and returns Tern's message id; the
/// answer must be `ESME_ROK`.
async fn submit_within(client: &UpstreamSession, sm: SubmitSm) -> String {
    tokio::time::timeout(WAIT, submit_id(&client.handle, sm))
        .await
        .expect("answered in time")
}

/// The TLS version a fresh client with floor `min` gets from the server at
/// `addr`, or the handshake error.
async fn probe(pki: &Pki, addr: SocketAddr, min: TlsVersion) -> Result<TlsVersion, String> {
    let tls = client_tls(pki, min);
    let connector = tls.load().expect("client TLS");
    let name = tls.server_name_for("127.0.0.1").expect("name");
    let stream = TcpStream::connect(addr).await.expect("connect");
    match tokio::time::timeout(WAIT, MaybeTlsStream::connect(&connector, name, stream))
        .await
        .expect("handshake ends in time")
    {
        Ok(io) => Ok(io.negotiated_version().expect("a TLS version")),
        Err(err) => Err(err.to_string()),
    }
}

/// Waits until `check` holds on the simulator's counters (at most `WAIT`).
async fn until(sim: &SimHandle, what: &str, check: impl Fn(&tern_sim::SimSnapshot) -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check(&sim.stats()) {
        assert!(
            Instant::now() < deadline,
            "{what}: simulator counters {:?}",
            sim.stats()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn upstream(name: &str, port: u16, min: &str, ca: &Path) -> String {
    upstream_at(
        name,
        &format!("host = \"127.0.0.1\"\nport = {port}"),
        min,
        ca,
    )
}

/// [`upstream`] reached as `at` says (`simulator = "NAME"`, say).
fn upstream_at(name: &str, at: &str, min: &str, ca: &Path) -> String {
    format!(
        r#"
[[upstream]]
name = "{name}"
{at}
system_id = "tern"
password = "x"
tls = true
tls_min_version = "{min}"
tls_ca = "{ca}"
tls_server_name = "localhost"
"#,
        ca = ca.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_and_receipts_travel_over_tls_to_a_tls13_and_a_tls12_upstream() {
    let dir = scratch("both");
    let pki = Pki::new(&dir);
    let ovh = tls_simulator(&pki, TlsVersion::Tls13, TlsVersion::Tls13).await;
    let telesign = tls_simulator(&pki, TlsVersion::Tls12, TlsVersion::Tls12).await;
    // The simulators offer what they claim: a client offering 1.2 and
    // 1.3 gets 1.3 from the OVH-like one and 1.2 from the Telesign-like
    // one, which refuses a client with a 1.3 floor.
    assert_eq!(
        probe(&pki, ovh.addr(), TlsVersion::Tls12).await,
        Ok(TlsVersion::Tls13)
    );
    assert_eq!(
        probe(&pki, telesign.addr(), TlsVersion::Tls12).await,
        Ok(TlsVersion::Tls12)
    );
    assert!(probe(&pki, telesign.addr(), TlsVersion::Tls13)
        .await
        .is_err());
    // The probes' own handshakes, so Tern's can be told apart below.
    let probed = (ovh.stats().tls_handshakes, telesign.stats().tls_handshakes);
    assert_eq!(
        (ovh.stats().tls_failures, telesign.stats().tls_failures),
        (0, 1),
        "only the 1.3-floor probe of the 1.2-only simulator failed"
    );

    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
{ovh}
{telesign}
[[route]]
name = "france"
prefixes = ["33"]
upstreams = ["ovh"]
[[route]]
name = "usa"
prefixes = ["1"]
upstreams = ["telesign"]
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
        ovh = upstream("ovh", ovh.addr().port(), "1.3", &pki.ca),
        telesign = upstream("telesign", telesign.addr().port(), "1.2", &pki.ca),
    );
    let daemon = Daemon::start(dir, &config);
    let (mut client, version) = tls_client(&daemon, &pki).await;
    // The listener's floor is 1.2; a client offering both gets the best.
    assert_eq!(version, Some(TlsVersion::Tls13));
    // Both upstreams bind over TLS before anything is sent to them.
    until(&ovh, "TLS 1.3 upstream bound", |s| {
        s.tls_handshakes > probed.0 && s.binds >= 1
    })
    .await;
    until(&telesign, "TLS 1.2 upstream bound", |s| {
        s.tls_handshakes > probed.1 && s.binds >= 1
    })
    .await;

    let mut ids = HashSet::new();
    ids.insert(submit_within(&client, submit("33612345678", "bonjour")).await);
    ids.insert(submit_within(&client, submit("14155550100", "hello")).await);
    assert_eq!(ids.len(), 2, "two distinct ids");

    // Each upstream got its own message over its own TLS session…
    until(&ovh, "the French message reached OVH", |s| s.submits == 1).await;
    until(&telesign, "the US message reached Telesign", |s| {
        s.submits == 1
    })
    .await;

    // …and both receipts come back to the client through Tern's listener.
    let mut receipted = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receipted.len() < ids.len() {
        let sm = deliver_sm_before(&mut client, deadline)
            .await
            .unwrap_or_else(|| panic!("only {} of 2 receipts", receipted.len()));
        assert!(sm.esm_class.is_receipt());
        let id = receipted_id(&sm);
        let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
        assert!(ids.contains(&id), "a receipt for an id Tern gave: {id}");
        assert!(text.contains("stat:DELIVRD"), "{text}");
        receipted.insert(id);
    }
    assert_eq!(receipted, ids);
    // Tern acknowledged each upstream receipt over the same TLS sessions.
    until(&ovh, "OVH receipt acknowledged", |s| s.receipts_acked == 1).await;
    until(&telesign, "Telesign receipt acknowledged", |s| {
        s.receipts_acked == 1
    })
    .await;
    // Tern's own handshakes all succeeded: no failure beyond the probe's.
    assert_eq!(
        (ovh.stats().tls_failures, telesign.stats().tls_failures),
        (0, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_below_the_tls_floor_is_never_bound_and_its_messages_wait() {
    let dir = scratch("floor");
    let pki = Pki::new(&dir);
    // Tern requires 1.3 of "ovh", but this one stops at 1.2.
    let old = tls_simulator(&pki, TlsVersion::Tls12, TlsVersion::Tls12).await;
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
{ovh}
[[route]]
name = "france"
prefixes = ["33"]
upstreams = ["ovh"]
[router]
retry_initial = "200ms"
"#,
        ovh = upstream("ovh", old.addr().port(), "1.3", &pki.ca),
    );
    let daemon = Daemon::start(dir, &config);
    let mut client = plain_client(&daemon).await;

    // The daemon says why, naming the upstream's address and TLS.
    let upstream_port = old.addr().port().to_string();
    let line = daemon
        .logged(&[
            "connect failed",
            "TLS handshake",
            "ProtocolVersion",
            &upstream_port,
        ])
        .await;
    eprintln!("the daemon logged: {line}");
    until(&old, "Tern tried TLS and gave up", |s| {
        s.connections >= 1 && s.tls_failures >= 1
    })
    .await;

    // Store-and-forward (DESIGN.md, data flow 2): the submit is answered
    // ESME_ROK once durable, whether or not an upstream is bound…
    let id = submit_within(&client, submit("33612345678", "never in the clear")).await;
    // …and then waits in the retry queue: no receipt, no final state…
    let quiet = Duration::from_secs(3);
    if let Ok(Some(request)) = tokio::time::timeout(quiet, client.requests.recv()).await {
        panic!("nothing can have been delivered, got {:?}", request.pdu);
    }
    let answer = tokio::time::timeout(WAIT, query_sm(&client.handle, &id))
        .await
        .expect("answered in time");
    assert_eq!(answer, (CommandStatus::Ok, Some(MessageState::ENROUTE)));
    // …while nothing ever bound or reached the upstream below the floor.
    let stats = old.stats();
    assert_eq!((stats.binds, stats.submits), (0, 0), "{stats:?}");
    assert!(stats.tls_failures >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_bind_on_a_tls_listener_is_never_answered() {
    let dir = scratch("plain");
    let pki = Pki::new(&dir);
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
tls_min_version = "1.3"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
    );
    let daemon = Daemon::start(dir, &config);
    // SMPP in the clear: what TLS reads is no ClientHello, so the
    // connection ends, at most with a TLS alert record, never a bind_resp.
    let mut stream = daemon.connect().await;
    let bind = tern_codec::Pdu::new(
        1,
        Body::BindTransceiver(tern_codec::pdu::Bind {
            system_id: "acme".try_into().expect("short"),
            password: "pw".try_into().expect("short"),
            interface_version: tern_codec::InterfaceVersion::V34,
            ..Default::default()
        }),
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, &bind.to_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(
        answer.is_empty() || answer[0] == 0x15,
        "only a TLS alert (content type 21) may come back, got {answer:02x?} ({read:?})"
    );
    // A client whose floor the listener meets gets 1.3.
    assert_eq!(
        probe(
            &pki,
            ([127, 0, 0, 1], daemon.port).into(),
            TlsVersion::Tls12
        )
        .await,
        Ok(TlsVersion::Tls13)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tls_handshake_is_dropped_at_the_session_init_time() {
    let dir = scratch("stall");
    let pki = Pki::new(&dir);
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
    );
    let daemon = Daemon::start(dir, &config);
    // A TLS record header announcing a 512-octet ClientHello, and then
    // nothing: the handshake can neither finish nor fail.
    let mut stall = daemon.connect().await;
    tokio::io::AsyncWriteExt::write_all(&mut stall, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let started = Instant::now();
    // Meanwhile a proper TLS client binds and submits.
    let (client, _) = tls_client(&daemon, &pki).await;
    let resp = tokio::time::timeout(WAIT, client.handle.request(Body::EnquireLink))
        .await
        .expect("answered in time")
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    // The listener's handshakes share the session-init limit of binds.
    let init = SessionConfig::default().session_init_timeout;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(init + WAIT, stall.read_to_end(&mut rest))
        .await
        .expect("the stalled connection is closed");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= init - Duration::from_secs(1),
        "closed after {elapsed:?}, before the {init:?} limit ({read:?})"
    );
    assert!(!client.handle.is_closed(), "the good client is still bound");
}

/// Runs `tern check-config` on `text`; returns the exit code and stderr.
fn check(dir: &TempDir, text: &str) -> (i32, String) {
    let (code, _, stderr) = check_config(&dir.write("check.toml", text), &[]);
    (code, stderr)
}

#[test]
fn simulator_tls_keys_are_checked_with_their_line() {
    let dir = scratch("check");
    let sim = |keys: &str| {
        format!(
            "[storage]\npath = \"data\"\n\n[[simulator]]\nname = \"ovh\"\naddress = \"127.0.0.1:0\"\n{keys}\n"
        )
    };
    let (code, err) = check(
        &dir,
        &sim("tls_cert = \"s.pem\"\ntls_key = \"s.key\"\ntls_min_version = \"1.3\""),
    );
    assert_eq!(code, 0, "{err}");

    let (code, err) = check(&dir, &sim("tls_cert = \"s.pem\""));
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("check.toml:7:") && err.contains("needs both tls_cert and tls_key"),
        "{err}"
    );

    let (code, err) = check(
        &dir,
        &sim("tls_cert = \"s.pem\"\ntls_key = \"s.key\"\ntls_min_version = \"1.3\"\ntls_max_version = \"1.2\""),
    );
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("check.toml:10:") && err.contains("above tls_max_version"),
        "{err}"
    );

    let (code, err) = check(
        &dir,
        &sim("tls_cert = \"s.pem\"\ntls_key = \"s.key\"\ntls_max_version = \"1.1\""),
    );
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("check.toml:9:") && err.contains("tls_max_version \"1.1\""),
        "{err}"
    );

    let (code, err) = check(&dir, &sim("tls_min_version = \"1.3\""));
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("without tls_cert and tls_key"), "{err}");
}

// Reads the compiled simulators, which only a build with them has.
#[cfg(feature = "sandbox")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulator_tls_keys_compile_to_settings_a_simulator_serves() {
    let dir = scratch("compile");
    let pki = Pki::new(&dir);
    let text = format!(
        r#"
[storage]
path = "data"
[[simulator]]
name = "ovh-like"
address = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
tls_min_version = "TLSv1.3"
[[simulator]]
name = "telesign-like"
address = "127.0.0.1:0"
tls_cert = "server.pem"
tls_key = "server.key"
tls_max_version = "1.2"
[[simulator]]
name = "plain"
address = "127.0.0.1:0"
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
    );
    let path = dir.write("sims.toml", &text);
    let config = tern::config::Config::from_text(&path, &text).expect("valid");
    let tls: Vec<_> = config.simulators.iter().map(|s| s.tls.clone()).collect();
    // Relative paths are resolved against the file's directory.
    assert_eq!(
        tls,
        vec![
            Some(sim_tls(&pki, TlsVersion::Tls13, TlsVersion::Tls13)),
            Some(sim_tls(&pki, TlsVersion::Tls12, TlsVersion::Tls12)),
            None
        ]
    );
    // What the daemon hands the simulator serves exactly that range.
    for (spec, expected) in config
        .simulators
        .iter()
        .zip([TlsVersion::Tls13, TlsVersion::Tls12])
    {
        let sim = Simulator::start(SimConfig {
            tls: spec.tls.clone(),
            ..SimConfig::default()
        })
        .await
        .expect("starts");
        assert_eq!(
            probe(&pki, sim.addr(), TlsVersion::Tls12).await,
            Ok(expected),
            "{}",
            spec.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandbox_simulator_from_the_config_serves_its_tls_range() {
    let dir = scratch("sandbox");
    let pki = Pki::new(&dir);
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[simulator]]
name = "telesign-like"
address = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
tls_max_version = "1.2"
[[client]]
system_id = "acme"
passwords = ["pw"]
{up}
[[route]]
name = "usa"
prefixes = ["1"]
upstreams = ["sandbox"]
"#,
        cert = pki.cert.display(),
        key = pki.key.display(),
        up = upstream_at("sandbox", "simulator = \"telesign-like\"", "1.2", &pki.ca),
    );
    let mut daemon = Daemon::start(dir, &config);
    let mut client = plain_client(&daemon).await;
    let addr: SocketAddr = daemon.tern.listening().simulators[0];
    assert_eq!(
        probe(&pki, addr, TlsVersion::Tls12).await,
        Ok(TlsVersion::Tls12)
    );
    assert!(probe(&pki, addr, TlsVersion::Tls13).await.is_err());
    // Tern itself goes through it: a message and its receipt.
    let id = submit_within(&client, submit("14155550100", "sandboxed")).await;
    let sm = expect_deliver_sm(&mut client, Duration::from_secs(20)).await;
    assert_eq!(sm.tlvs.receipted_message_id(), Some(id.as_bytes()));
}

/// A node's config on a Redis store at `address`, with `extra` lines in
/// `[storage.redis]`; one client `acme`, one upstream simulator.
fn redis_node(address: &str, extra: &str, sim: &SimHandle) -> String {
    format!(
        r#"
[node]
id = 7
[[listener]]
address = "127.0.0.1:0"
[storage]
backend = "redis"
[storage.redis]
addresses = ["{address}"]
prefix = "tls-test"
password = "env:TERN_TEST_REDIS_PW"
lease_ttl = "2s"
{extra}
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "sim"
host = "127.0.0.1"
port = {sim_port}
system_id = "tern"
password = "pw"
[[route]]
name = "all"
upstreams = ["sim"]
"#,
        sim_port = sim.addr().port(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_over_tls_with_a_password_carries_a_message_and_its_receipt() {
    let dir = scratch("redis");
    let pki = Pki::new(&dir);
    let password = "s3cret:pw@/%";
    let redis = common::redis::Redis::start_tls("tls", &pki.cert, &pki.key, password);
    let tls_port = redis.tls_port.expect("a TLS port");
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator");
    let address = format!("rediss://127.0.0.1:{tls_port}");

    // Trusting the system's roots only, the node refuses to start: the
    // server's certificate comes from the test's own CA.
    let mut refused = Launch::new()
        .captured()
        .env("TERN_TEST_REDIS_PW", password)
        .start(scratch("redis-untrusted"), &redis_node(&address, "", &sim));
    let status = refused.wait(WAIT * 3);
    let log = refused.output();
    assert!(!status.success(), "{log}");
    assert!(log.contains("opening the Redis store"), "{log}");
    assert!(
        log.contains("UnknownIssuer"),
        "refused for its certificate: {log}"
    );
    assert!(!log.contains("s3cret"), "the password never shows: {log}");

    // With tls_ca naming the CA, it stores over TLS and works end to end.
    let ca = pki.ca.to_str().expect("a UTF-8 path").replace('\\', "/");
    let mut node = Launch::new().env("TERN_TEST_REDIS_PW", password).start(
        scratch("redis-trusted"),
        &redis_node(&address, &format!("tls_ca = \"{ca}\""), &sim),
    );
    let mut trx = client(node.client_port(), "acme", "pw")
        .within(WAIT * 3)
        .bind()
        .await;
    let sm = common::submit_sm("+34600000009", "over TLS", RegisteredDelivery::ALWAYS);
    let id = submit_id(&trx.handle, sm).await;
    let receipt = expect_deliver_sm(&mut trx, WAIT * 2).await;
    assert_eq!(receipted_id(&receipt), id);
    // The message is in Redis, under the node's prefix.
    let keys = redis
        .cli(&["--scan", "--pattern", "tls-test:*"])
        .unwrap_or_default();
    assert!(
        keys.lines().count() > 3,
        "the store's keys are in Redis: {keys}"
    );
}
