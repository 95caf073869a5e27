//! Reload, shutdown and the admin listener, on the real binary: SIGHUP with
//! a valid change reroutes the next message while the client session stays
//! bound; a broken file changes nothing and says why; a password removed
//! from an account ends the sessions that used it, one kept in a rotation
//! list does not; a file change is picked up without a signal; SIGTERM
//! drains and exits 0; `/metrics` moves with traffic; no password appears in
//! the logs or the API.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tern_codec::pdu::{SmResp, SubmitSm};
use tern_codec::{Address, Body, CommandStatus, Npi, RegisteredDelivery, ShortMessage, Ton};
use tern_session::esme::{self, BindParams, UpstreamSession};
use tern_session::SessionConfig;
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The passwords in these configs: none may show up in logs or the API.
const SECRETS: [&str; 4] = ["pwOld773", "pwNew884", "pwGone99", "upSec116"];

struct Ports {
    client: u16,
    admin: u16,
    a: u16,
    b: u16,
}

/// A config with two sandbox upstreams, `primary` on sim a and `secondary`
/// on sim b, and the one route sending to `route_to`.
fn config(ports: &Ports, route_to: &str, acme_passwords: &str) -> String {
    let Ports {
        client,
        admin,
        a,
        b,
    } = ports;
    format!(
        r#"
[[listener]]
address = "127.0.0.1:{client}"
[admin]
address = "127.0.0.1:{admin}"
[storage]
path = "data"
[[simulator]]
name = "a"
address = "127.0.0.1:{a}"
receipt_delay = "50ms"
[[simulator]]
name = "b"
address = "127.0.0.1:{b}"
receipt_delay = "50ms"
[[client]]
system_id = "acme"
passwords = [{acme_passwords}]
[[client]]
system_id = "beta"
passwords = ["pwGone99"]
[[upstream]]
name = "primary"
host = "127.0.0.1"
port = {a}
system_id = "tern"
password = "upSec116"
[[upstream]]
name = "secondary"
host = "127.0.0.1"
port = {b}
system_id = "tern"
password = "upSec116"
[[route]]
name = "all"
upstreams = ["{route_to}"]
"#
    )
}

struct Daemon {
    child: Child,
    dir: PathBuf,
    admin: SocketAddr,
}

impl Daemon {
    fn start(name: &str, text: &str, admin: u16) -> Daemon {
        let dir = std::env::temp_dir().join(format!("tern-reload-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tern.toml");
        std::fs::write(&path, text).expect("config");
        let child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["run", "--config"])
            .arg(&path)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tern");
        Daemon {
            child,
            dir,
            admin: ([127, 0, 0, 1], admin).into(),
        }
    }

    /// Starts the daemon again on the same file and store, once the last
    /// one has exited.
    fn restart(&mut self) {
        let status = self.wait(Duration::from_secs(30));
        assert!(status.success(), "{status}");
        self.child = Command::new(env!("CARGO_BIN_EXE_tern"))
            .args(["run", "--config"])
            .arg(self.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tern");
    }

    fn path(&self) -> PathBuf {
        self.dir.join("tern.toml")
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    async fn get(&self, path: &str) -> Value {
        let mut last = None;
        for _ in 0..100 {
            match tern::admin::get_json(self.admin, path).await {
                Ok(value) => return value,
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("admin {path} never answered: {last:?}");
    }

    async fn text(&self, path: &str) -> String {
        tern::admin::get(self.admin, path)
            .await
            .expect("admin answers")
            .text()
    }

    /// Waits until the reload generation is `n`; returns the status.
    async fn generation(&self, n: u64) -> Value {
        for _ in 0..200 {
            let status = self.get("/api/reload").await;
            if status["generation"].as_u64() == Some(n) {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("generation {n} never reached");
    }

    /// Waits until an attempt at a reload has ended after `since` (unix s).
    async fn reload_after(&self, since: u64) -> Value {
        for _ in 0..200 {
            let status = self.get("/api/reload").await;
            if status["at"].as_u64().is_some_and(|at| at >= since)
                && (status["ok"] == Value::Bool(false) || status["generation"].as_u64() > Some(1))
            {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no reload ended");
    }

    /// Waits until both upstreams are bound.
    async fn ready(&self) {
        for _ in 0..200 {
            let upstreams = self.get("/api/upstreams").await;
            if upstreams
                .as_array()
                .is_some_and(|a| a.iter().all(|u| u["bound"].as_u64() >= Some(1)))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("upstreams never bound");
    }

    /// Waits for exit, at most `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tern did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the daemon logged (after it exited).
    fn output(&mut self) -> String {
        use std::io::Read;
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = self.child.stderr.take() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ports() -> Ports {
    Ports {
        client: free_port(),
        admin: free_port(),
        a: free_port(),
        b: free_port(),
    }
}

async fn bind(port: u16, system_id: &str, password: &str) -> UpstreamSession {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(addr).await {
            let params = BindParams::new(system_id, password).expect("short");
            let config = SessionConfig {
                enquire_link_interval: None,
                ..SessionConfig::default()
            };
            return esme::bind(stream, Some(addr), &params, config)
                .await
                .expect("bound to tern");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tern never listened on {port}");
}

fn submit_sm() -> SubmitSm {
    submit_sm_with(RegisteredDelivery::NONE)
}

fn submit_sm_with(registered_delivery: RegisteredDelivery) -> SubmitSm {
    SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Acme".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "34600000001".try_into().expect("short"),
        ),
        registered_delivery,
        short_message: ShortMessage::new(b"hello".to_vec()).expect("short"),
        ..SubmitSm::default()
    }
}

/// Submits one message and returns Tern's id.
async fn submit(session: &UpstreamSession) -> String {
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm()))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
        panic!("no id: {resp:?}")
    };
    id.to_string()
}

/// The upstream that took message `id`.
async fn upstream_of(daemon: &Daemon, id: &str) -> String {
    for _ in 0..200 {
        let message = daemon.get(&format!("/api/messages/{id}")).await;
        if let Some(attempt) = message["attempts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["status"].as_u64() == Some(0)))
        {
            return attempt["upstream"].as_str().unwrap_or("").to_owned();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {id} never submitted upstream");
}

/// The value of the first sample of a metric whose line starts with `name`.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn write(path: &Path, text: &str) {
    // Written whole then renamed, as deploy tools do: the watch never sees
    // half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reroutes_the_next_message_and_a_broken_file_changes_nothing() {
    let ports = ports();
    let passwords = r#""pwOld773""#;
    let mut daemon = Daemon::start(
        "reroute",
        &config(&ports, "primary", passwords),
        ports.admin,
    );
    daemon.ready().await;
    let session = bind(ports.client, "acme", "pwOld773").await;

    let first = submit(&session).await;
    assert_eq!(upstream_of(&daemon, &first).await, "primary");
    let metrics = daemon.text("/metrics").await;
    let submits_before = sample(&metrics, "tern_submits_total{").expect("tern_submits_total");

    // A valid change: the same session's next message goes elsewhere.
    write(&daemon.path(), &config(&ports, "secondary", passwords));
    daemon.signal("HUP");
    let status = daemon.generation(2).await;
    assert_eq!(status["ok"], Value::Bool(true), "{status}");
    let changes = status["changes"].to_string();
    assert!(changes.contains("route all"), "{changes}");
    let second = submit(&session).await;
    assert_eq!(upstream_of(&daemon, &second).await, "secondary");
    assert!(
        !session.handle.is_closed(),
        "the client session stayed bound"
    );

    // A broken file: nothing changes, the error names file and line.
    let since = unix_now();
    write(
        &daemon.path(),
        &config(&ports, "primary", passwords).replace("[[route]]", "[[route]]\nbogus = 1"),
    );
    daemon.signal("HUP");
    let status = daemon.reload_after(since).await;
    assert_eq!(status["ok"], Value::Bool(false), "{status}");
    assert_eq!(status["generation"].as_u64(), Some(2), "{status}");
    let error = status["error"].as_str().expect("error");
    assert!(
        error.contains("tern.toml:") && error.contains("bogus"),
        "{error}"
    );
    let third = submit(&session).await;
    assert_eq!(
        upstream_of(&daemon, &third).await,
        "secondary",
        "the running config stayed"
    );

    let metrics = daemon.text("/metrics").await;
    assert_eq!(
        sample(&metrics, "tern_reloads_total{result=\"error\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&metrics, "tern_reloads_total{result=\"ok\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&metrics, "tern_reload_failed"), Some(1.0));
    let submits_after = sample(&metrics, "tern_submits_total{").expect("tern_submits_total");
    assert_eq!(submits_after, submits_before + 2.0, "{metrics}");
    assert!(
        sample(&metrics, "tern_upstream_submits_total{").is_some_and(|v| v >= 1.0),
        "{metrics}"
    );

    // No password in the API.
    let mut api = String::new();
    for path in [
        "/api/config",
        "/api/sessions",
        "/api/upstreams",
        "/api/reload",
    ] {
        api.push_str(&daemon.get(path).await.to_string());
    }
    api.push_str(
        &daemon
            .get(&format!("/api/messages/{first}"))
            .await
            .to_string(),
    );
    for secret in SECRETS {
        assert!(!api.contains(secret), "{secret} in the admin API: {api}");
    }

    // check-config --diff asks the running daemon, which applies nothing.
    let candidate = daemon.dir.join("candidate.toml");
    std::fs::write(
        &candidate,
        config(&ports, "primary", r#""pwOld773", "pwNew884""#).replace(
            "[[client]]\nsystem_id = \"beta\"",
            "[[client]]\nsystem_id = \"gamma\"",
        ),
    )
    .expect("candidate");
    let out = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["check-config", "--diff", "--admin"])
        .arg(daemon.admin.to_string())
        .arg(&candidate)
        .output()
        .expect("check-config");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(
        lines,
        [
            "~ account acme: passwords",
            "+ account gamma",
            "- account beta",
            "~ route all: upstreams",
        ],
        "{stdout}"
    );
    for secret in SECRETS {
        assert!(!stdout.contains(secret), "{secret} printed by --diff");
    }
    assert_eq!(
        daemon.get("/api/reload").await["generation"].as_u64(),
        Some(2)
    );

    // SIGTERM: the client is unbound, the daemon exits 0, and nothing it
    // logged names a password.
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
    tokio::time::timeout(Duration::from_secs(5), session.handle.closed())
        .await
        .expect("the client session was closed");
    let log = daemon.output();
    assert!(log.contains("configuration reloaded"), "{log}");
    assert!(log.contains("reload refused"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    for secret in SECRETS {
        assert!(!log.contains(secret), "{secret} in the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_rotation_keeps_sessions_and_a_removed_password_ends_them() {
    let ports = ports();
    let mut daemon = Daemon::start(
        "rotate",
        &config(&ports, "primary", r#""pwOld773""#),
        ports.admin,
    );
    daemon.ready().await;
    let old = bind(ports.client, "acme", "pwOld773").await;
    let beta = bind(ports.client, "beta", "pwGone99").await;

    // Rotation starts: both passwords valid; beta's account is removed.
    let rotating = config(&ports, "primary", r#""pwOld773", "pwNew884""#).replace(
        "[[client]]\nsystem_id = \"beta\"\npasswords = [\"pwGone99\"]\n",
        "",
    );
    write(&daemon.path(), &rotating);
    daemon.signal("HUP");
    daemon.generation(2).await;
    let new = bind(ports.client, "acme", "pwNew884").await;
    tokio::time::timeout(Duration::from_secs(5), beta.handle.closed())
        .await
        .expect("the removed account's session was unbound");
    submit(&old).await;
    assert!(
        !old.handle.is_closed(),
        "a password still listed keeps its session"
    );

    // Rotation ends: the old password goes, and with it its session.
    write(&daemon.path(), &config(&ports, "primary", r#""pwNew884""#));
    daemon.signal("HUP");
    daemon.generation(3).await;
    tokio::time::timeout(Duration::from_secs(5), old.handle.closed())
        .await
        .expect("the session bound with the removed password was unbound");
    submit(&new).await;
    assert!(!new.handle.is_closed());

    let sessions = daemon.get("/api/sessions").await;
    let accounts: Vec<&str> = sessions
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|s| s["account"].as_str())
        .collect();
    assert_eq!(accounts, ["acme"], "{sessions}");
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_file_is_reloaded_without_a_signal() {
    let ports = ports();
    let passwords = r#""pwOld773""#;
    let mut daemon = Daemon::start("watch", &config(&ports, "primary", passwords), ports.admin);
    daemon.ready().await;
    let session = bind(ports.client, "acme", "pwOld773").await;
    write(&daemon.path(), &config(&ports, "secondary", passwords));
    daemon.generation(2).await;
    let id = submit(&session).await;
    assert_eq!(upstream_of(&daemon, &id).await, "secondary");
    // The same content again is not a change: no further reload.
    write(&daemon.path(), &config(&ports, "secondary", passwords));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        daemon.get("/api/reload").await["generation"].as_u64(),
        Some(2)
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

/// Acknowledges Tern's deliver_sm and returns the receipted id.
async fn take_receipt(request: tern_session::Request) -> String {
    let Body::DeliverSm(sm) = &request.pdu.body else {
        panic!("{:?}", request.pdu)
    };
    let id =
        String::from_utf8_lossy(sm.tlvs.receipted_message_id().expect("receipted id")).into_owned();
    request
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("ack");
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_in_the_middle_of_traffic_loses_nothing_it_acknowledged() {
    // The upstream runs outside the daemon, as a vendor's SMSC does: the
    // receipts it owes survive Tern's restart and come when Tern binds again.
    let sim = tern_sim::smsc::Simulator::start(tern_sim::smsc::SimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        behaviour: tern_sim::smsc::Behaviour {
            receipts: tern_sim::smsc::ReceiptBehaviour {
                delay: Duration::from_millis(50),
                ..Default::default()
            },
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("simulator");
    let ports = ports();
    let text = config(&ports, "primary", r#""pwOld773""#)
        .replace(
            &format!("port = {}\n", ports.a),
            &format!("port = {}\n", sim.addr().port()),
        )
        .replace(
            &format!("port = {}\nsystem_id = \"tern\"", ports.b),
            // Its own account at the simulator, so each upstream's receipts
            // come back over its own sessions.
            &format!("port = {}\nsystem_id = \"tern2\"", sim.addr().port()),
        );
    let mut daemon = Daemon::start("drain", &text, ports.admin);
    daemon.ready().await;
    let mut session = bind(ports.client, "acme", "pwOld773").await;

    // 400 submits, 64 at a time; SIGTERM once 100 are answered.
    const N: usize = 400;
    let handle = session.handle.clone();
    let submits = tokio::spawn(async move {
        let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(64));
        let mut tasks = Vec::new();
        for _ in 0..N {
            let Ok(permit) = gate.clone().acquire_owned().await else {
                break;
            };
            let handle = handle.clone();
            tasks.push(tokio::spawn(async move {
                let resp = handle
                    .request(Body::SubmitSm(submit_sm_with(RegisteredDelivery::ALWAYS)))
                    .await;
                drop(permit);
                match resp {
                    Ok(resp) if resp.command_status == CommandStatus::Ok => match resp.body {
                        Body::SubmitSmResp(SmResp { id: Some(id), .. }) => Some(id.to_string()),
                        _ => None,
                    },
                    _ => None,
                }
            }));
        }
        let mut ok = Vec::new();
        for task in tasks {
            if let Ok(Some(id)) = task.await {
                ok.push(id);
            }
        }
        ok
    });
    let mut receipted = std::collections::HashSet::new();
    let mut duplicates = 0;
    let mut signalled = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if !signalled {
            let metrics = daemon.text("/metrics").await;
            let answered: f64 = metrics
                .lines()
                .filter(|l| l.starts_with("tern_submits_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if answered >= 100.0 {
                daemon.signal("TERM");
                signalled = true;
            }
        }
        match tokio::time::timeout_at(
            deadline.min(tokio::time::Instant::now() + Duration::from_millis(20)),
            session.requests.recv(),
        )
        .await
        {
            Ok(Some(request)) => {
                if !receipted.insert(take_receipt(request).await) {
                    duplicates += 1;
                }
            }
            Ok(None) => break,
            Err(_) => assert!(tokio::time::Instant::now() < deadline, "never unbound"),
        }
    }
    assert!(signalled);
    let acknowledged = submits.await.expect("submits");
    assert!(
        acknowledged.len() >= 100,
        "{} acknowledged",
        acknowledged.len()
    );

    // The same store again: whatever was acknowledged and not yet
    // receipted is sent and receipted now.
    daemon.restart();
    daemon.ready().await;
    let mut session = bind(ports.client, "acme", "pwOld773").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !acknowledged.iter().all(|id| receipted.contains(id)) {
        let Ok(request) = tokio::time::timeout_at(deadline, session.requests.recv()).await else {
            let missing: Vec<&String> = acknowledged
                .iter()
                .filter(|id| !receipted.contains(*id))
                .collect();
            let first = daemon.get(&format!("/api/messages/{}", missing[0])).await;
            panic!(
                "{} of {} acknowledged messages never receipted; the first: {first}",
                missing.len(),
                acknowledged.len()
            )
        };
        let request = request.expect("session open");
        if !receipted.insert(take_receipt(request).await) {
            duplicates += 1;
        }
    }
    // At-least-once: a receipt owed when the first daemon stopped may come
    // twice; report it.
    println!(
        "{} acknowledged, {} receipted, {duplicates} duplicate receipts",
        acknowledged.len(),
        receipted.len()
    );
}

/// The upstream entries of a config over two external simulators.
fn upstreams_config(ports: &Ports, x: u16, y: u16, one_extra: &str, with_two: bool) -> String {
    let two = if with_two {
        format!(
            "[[upstream]]\nname = \"two\"\nhost = \"127.0.0.1\"\nport = {y}\nsystem_id = \"tern\"\npassword = \"pw2\"\n"
        )
    } else {
        String::new()
    };
    format!(
        r#"
[[listener]]
address = "127.0.0.1:{client}"
[admin]
address = "127.0.0.1:{admin}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pwOld773"]
[[upstream]]
name = "one"
host = "127.0.0.1"
port = {x}
system_id = "tern"
password = "pw1"
profile = "mensatek"
{one_extra}
{two}
[[route]]
name = "all"
upstreams = ["one"]
"#,
        client = ports.client,
        admin = ports.admin,
    )
}

async fn until<F: Fn() -> bool>(what: &str, check: F) {
    for _ in 0..400 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: not within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_binds_added_upstreams_drains_removed_ones_and_rebinds_changed_ones_one_at_a_time()
{
    use tern_sim::smsc::{Account, SimConfig, Simulator};
    // Mensatek allows one session per credential: the simulator refuses a
    // second bind, and counts it.
    let start = |system_id: &str, password: &str| {
        Simulator::start(SimConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            accounts: vec![Account {
                system_id: system_id.to_owned(),
                password: password.to_owned(),
                max_binds: Some(1),
            }],
            ..SimConfig::default()
        })
    };
    let x = start("tern", "pw1").await.expect("sim x");
    let y = start("tern", "pw2").await.expect("sim y");
    let ports = ports();
    let (xp, yp) = (x.addr().port(), y.addr().port());
    let mut daemon = Daemon::start(
        "pools",
        &upstreams_config(&ports, xp, yp, "", false),
        ports.admin,
    );
    daemon.ready().await;
    let session = bind(ports.client, "acme", "pwOld773").await;
    assert_eq!(x.stats().binds, 1);

    // Added: `two` binds. Changed: `one` gets a rate, so its pool is
    // replaced; the new one binds only after the old one unbound.
    write(
        &daemon.path(),
        &upstreams_config(&ports, xp, yp, "rate = 50", true),
    );
    daemon.signal("HUP");
    let status = daemon.generation(2).await;
    let changes = status["changes"].to_string();
    assert!(
        changes.contains("upstream one") && changes.contains("upstream two"),
        "{changes}"
    );
    until("two bound", || y.sessions("tern").len() == 1).await;
    until("one bound again", || {
        x.stats().binds == 2 && x.sessions("tern").len() == 1
    })
    .await;
    assert_eq!(
        x.stats().binds_refused,
        0,
        "never two binds at once for one"
    );
    let id = submit(&session).await;
    assert_eq!(upstream_of(&daemon, &id).await, "one");

    // Removed: `two` unbinds; `one` is untouched.
    write(
        &daemon.path(),
        &upstreams_config(&ports, xp, yp, "rate = 50", false),
    );
    daemon.signal("HUP");
    daemon.generation(3).await;
    until("two unbound", || y.sessions("tern").is_empty()).await;
    assert_eq!(
        x.stats().binds,
        2,
        "an unchanged upstream keeps its session"
    );
    let upstreams = daemon.get("/api/upstreams").await;
    let names: Vec<&str> = upstreams
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|u| u["name"].as_str())
        .collect();
    assert_eq!(names, ["one"]);
    assert!(!session.handle.is_closed());
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_level_and_message() {
    let ports = ports();
    let text = format!(
        "[log]\nformat = \"json\"\n{}",
        config(&ports, "primary", r#""pwOld773""#)
    );
    let mut daemon = Daemon::start("json", &text, ports.admin);
    daemon.ready().await;
    let session = bind(ports.client, "acme", "pwOld773").await;
    submit(&session).await;
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
    let log = daemon.output();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 5, "{log}");
    for line in &lines {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(value["level"].is_string(), "{line}");
        assert!(value["fields"]["message"].is_string(), "{line}");
    }
    assert!(log.contains("\"stopped\""), "{log}");
}

/// `tern run` with no file: the embedded default (config/tern.toml) on its
/// fixed ports, the store in ./data of the working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_default_serves_a_bind_a_submit_and_a_receipt() {
    let dir = std::env::temp_dir().join(format!("tern-embedded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .arg("run")
        .current_dir(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tern");
    let mut daemon = Daemon {
        child,
        dir: dir.clone(),
        admin: ([127, 0, 0, 1], 9775).into(),
    };
    daemon.ready().await;
    let mut session = bind(2775, "demo", "demo").await;
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm_with(RegisteredDelivery::ALWAYS)))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
        panic!("no id: {resp:?}")
    };
    // The sandbox upstreams send receipts a second after each submit.
    let request = tokio::time::timeout(Duration::from_secs(20), session.requests.recv())
        .await
        .expect("a receipt within 20 s")
        .expect("session open");
    assert_eq!(take_receipt(request).await, id.to_string());
    assert!(dir.join("data").is_dir(), "the store is in ./data");
    let metrics = daemon.text("/metrics").await;
    assert_eq!(
        sample(
            &metrics,
            "tern_submits_total{client=\"demo\",status=\"ESME_ROK\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_messages_and_untaken_receipts_leave_the_store_after_their_age() {
    let ports = ports();
    let text = config(&ports, "primary", r#""pwOld773""#).replace(
        "[storage]\npath = \"data\"",
        "[storage]\npath = \"data\"\nretention = \"2s\"\noutbox_max_age = \"2s\"",
    );
    let daemon = Daemon::start("ages", &text, ports.admin);
    daemon.ready().await;
    // A transmitter cannot take receipts: the receipt waits in the outbox.
    let addr: SocketAddr = ([127, 0, 0, 1], ports.client).into();
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut params = BindParams::new("acme", "pwOld773").expect("short");
    params.bind_type = tern_session::BindType::Transmitter;
    let session = esme::bind(stream, Some(addr), &params, SessionConfig::default())
        .await
        .expect("bound");
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm_with(RegisteredDelivery::ALWAYS)))
        .await
        .expect("answered");
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
        panic!("no id: {resp:?}")
    };
    let path = format!("/api/messages/{id}");
    until_async("the receipt waits in the outbox", || async {
        daemon.get("/api/queues").await["outbox"].as_u64() == Some(1)
    })
    .await;
    assert_eq!(daemon.get(&path).await["state"], "final");

    // Past the outbox age the receipt is dropped and counted; past the
    // retention the message is gone.
    until_async("the outbox emptied", || async {
        daemon.get("/api/queues").await["outbox"].as_u64() == Some(0)
    })
    .await;
    let metrics = daemon.text("/metrics").await;
    assert_eq!(sample(&metrics, "tern_outbox_expired_total"), Some(1.0));
    until_async("the message purged", || async {
        tern::admin::get(daemon.admin, &path)
            .await
            .is_ok_and(|r| r.status == 404)
    })
    .await;
}

async fn until_async<F, Fut>(what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within 10 s");
}
