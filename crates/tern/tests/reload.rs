//! Reload, shutdown and the admin listener, on the real binary: SIGHUP with
//! a valid change reroutes the next message while the client session stays
//! bound; a broken file changes nothing and says why; a password removed
//! from an account ends the sessions that used it, one kept in a rotation
//! list does not; a file change is picked up without a signal; SIGTERM
//! drains and exits 0; `/metrics` moves with traffic; no password appears in
//! the logs or the API.

use tern_testkit as common;

use common::metrics::sample;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    accept_deliver_sm, client, message_id, next_receipt, receipted_id, submit_id, wait_until,
    Admin, Daemon, Launch, TempDir, TERN,
};
use serde_json::Value;
use tern_codec::pdu::{SmResp, SubmitSm};
use tern_codec::{Body, CommandStatus, RegisteredDelivery};
use tern_session::esme::UpstreamSession;
use tern_session::SessionConfig;

/// The passwords in these configs: none may show up in logs or the API.
const SECRETS: [&str; 4] = ["pwOld773", "pwNew884", "pwGone99", "upSec116"];

/// Where a daemon took its client and admin listeners.
struct Ports {
    client: u16,
    admin: u16,
}

/// A config with two sandbox upstreams, `primary` on sim a and `secondary`
/// on sim b, and the one route sending to `route_to`.
fn config(route_to: &str, acme_passwords: &str) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
[[simulator]]
name = "a"
address = "127.0.0.1:0"
receipt_delay = "50ms"
[[simulator]]
name = "b"
address = "127.0.0.1:0"
receipt_delay = "50ms"
[[client]]
system_id = "acme"
passwords = [{acme_passwords}]
[[client]]
system_id = "beta"
passwords = ["pwGone99"]
[[upstream]]
name = "primary"
simulator = "a"
system_id = "tern"
password = "upSec116"
[[upstream]]
name = "secondary"
simulator = "b"
system_id = "tern"
password = "upSec116"
[[route]]
name = "all"
upstreams = ["{route_to}"]
"#
    )
}

/// The daemon on `text`, logging at info with its output kept for
/// [`Daemon::output`]: the tests read what it logged.
fn start_daemon(name: &str, text: &str) -> Daemon {
    Launch::new()
        .rust_log("info")
        .captured()
        .start(TempDir::new(&format!("reload-{name}")), text)
}

/// Waits until the reload generation is `n`; returns the status.
async fn generation(admin: &Admin, n: u64) -> Value {
    admin
        .until(
            "/api/reload",
            Duration::from_secs(10),
            &format!("generation {n}"),
            |status| status["generation"].as_u64() == Some(n),
        )
        .await
}

/// Waits until an attempt at a reload has failed after `since` (unix s).
/// Only a failure counts: `since` is in whole seconds, so the success
/// before it may carry the same second (CI once returned that one).
async fn failed_reload_after(admin: &Admin, since: u64) -> Value {
    admin
        .until(
            "/api/reload",
            Duration::from_secs(10),
            "a failed reload",
            |status| {
                status["at"].as_u64().is_some_and(|at| at >= since)
                    && status["ok"] == Value::Bool(false)
            },
        )
        .await
}

/// Waits until both upstreams are bound.
async fn ready(admin: &Admin) {
    admin
        .until(
            "/api/upstreams",
            Duration::from_secs(10),
            "upstreams bound",
            |upstreams| {
                upstreams
                    .as_array()
                    .is_some_and(|a| a.iter().all(|u| u["bound"].as_u64() >= Some(1)))
            },
        )
        .await;
}

/// Where `daemon` listens, and its admin API.
fn ports(daemon: &mut Daemon) -> (Ports, Admin) {
    let listening = daemon.listening();
    let ports = Ports {
        client: listening.client_port(),
        admin: listening.admin_port(),
    };
    let admin = Admin::at(ports.admin);
    (ports, admin)
}

async fn bind(port: u16, system_id: &str, password: &str) -> UpstreamSession {
    client(port, system_id, password).bind().await
}

fn submit_sm() -> SubmitSm {
    submit_sm_with(RegisteredDelivery::NONE)
}

fn submit_sm_with(registered_delivery: RegisteredDelivery) -> SubmitSm {
    common::submit_sm("34600000001", "hello", registered_delivery)
}

/// Submits one message and returns Tern's id.
async fn submit(session: &UpstreamSession) -> String {
    submit_id(&session.handle, submit_sm()).await
}

/// The upstream that took message `id`.
async fn upstream_of(admin: &Admin, id: &str) -> String {
    let took = |message: &Value| {
        message["attempts"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["status"].as_u64() == Some(0)))
            .map(|attempt| attempt["upstream"].as_str().unwrap_or("").to_owned())
    };
    let message = admin
        .until(
            &format!("/api/messages/{id}"),
            Duration::from_secs(10),
            &format!("message {id} submitted upstream"),
            |message| took(message).is_some(),
        )
        .await;
    took(&message).unwrap_or_default()
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

/// A SIGHUP sent the moment the daemon has written where it listens (as a
/// supervisor reading the listening file may send one) does not end it:
/// SIGHUP's handler is in place before the file is written, and the
/// daemon goes on to serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_as_soon_as_the_listening_file_is_written_does_not_end_the_daemon() {
    let mut daemon = start_daemon("early-hup", &config("primary", r#""pwOld773""#));
    let (_, admin) = ports(&mut daemon);
    daemon.signal("HUP");
    ready(&admin).await;
    assert!(
        daemon.child.try_wait().expect("wait").is_none(),
        "the daemon ended on a SIGHUP sent as it started"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reroutes_the_next_message_and_a_broken_file_changes_nothing() {
    let passwords = r#""pwOld773""#;
    let mut daemon = start_daemon("reroute", &config("primary", passwords));
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    let session = bind(ports.client, "acme", "pwOld773").await;

    let first = submit(&session).await;
    assert_eq!(upstream_of(&admin, &first).await, "primary");
    let metrics = admin.text("/metrics").await;
    let submits_before = sample(&metrics, "tern_submits_total{").expect("tern_submits_total");

    // A valid change: the same session's next message goes elsewhere.
    write(&daemon.config_path(), &config("secondary", passwords));
    daemon.signal("HUP");
    let status = generation(&admin, 2).await;
    assert_eq!(status["ok"], Value::Bool(true), "{status}");
    let changes = status["changes"].to_string();
    assert!(changes.contains("route all"), "{changes}");
    let second = submit(&session).await;
    assert_eq!(upstream_of(&admin, &second).await, "secondary");
    assert!(
        !session.handle.is_closed(),
        "the client session stayed bound"
    );

    // A broken file: nothing changes, the error names file and line.
    let since = unix_now();
    write(
        &daemon.config_path(),
        &config("primary", passwords).replace("[[route]]", "[[route]]\nbogus = 1"),
    );
    daemon.signal("HUP");
    let status = failed_reload_after(&admin, since).await;
    assert_eq!(status["generation"].as_u64(), Some(2), "{status}");
    let error = status["error"].as_str().expect("error");
    assert!(
        error.contains("tern.toml:") && error.contains("bogus"),
        "{error}"
    );
    let third = submit(&session).await;
    assert_eq!(
        upstream_of(&admin, &third).await,
        "secondary",
        "the running config stayed"
    );

    let metrics = admin.text("/metrics").await;
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
        api.push_str(&admin.get(path).await.to_string());
    }
    api.push_str(
        &admin
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
        config("primary", r#""pwOld773", "pwNew884""#).replace(
            "[[client]]\nsystem_id = \"beta\"",
            "[[client]]\nsystem_id = \"gamma\"",
        ),
    )
    .expect("candidate");
    let out = Command::new(TERN)
        .args(["check-config", "--diff", "--admin"])
        .arg(admin.0.to_string())
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
        admin.get("/api/reload").await["generation"].as_u64(),
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
    let mut daemon = start_daemon("rotate", &config("primary", r#""pwOld773""#));
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    let old = bind(ports.client, "acme", "pwOld773").await;
    let beta = bind(ports.client, "beta", "pwGone99").await;

    // Rotation starts: both passwords valid; beta's account is removed.
    let rotating = config("primary", r#""pwOld773", "pwNew884""#).replace(
        "[[client]]\nsystem_id = \"beta\"\npasswords = [\"pwGone99\"]\n",
        "",
    );
    write(&daemon.config_path(), &rotating);
    daemon.signal("HUP");
    generation(&admin, 2).await;
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
    write(&daemon.config_path(), &config("primary", r#""pwNew884""#));
    daemon.signal("HUP");
    generation(&admin, 3).await;
    tokio::time::timeout(Duration::from_secs(5), old.handle.closed())
        .await
        .expect("the session bound with the removed password was unbound");
    submit(&new).await;
    assert!(!new.handle.is_closed());

    let sessions = admin.get("/api/sessions").await;
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
    let passwords = r#""pwOld773""#;
    let mut daemon = start_daemon("watch", &config("primary", passwords));
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    let session = bind(ports.client, "acme", "pwOld773").await;
    write(&daemon.config_path(), &config("secondary", passwords));
    generation(&admin, 2).await;
    let id = submit(&session).await;
    assert_eq!(upstream_of(&admin, &id).await, "secondary");
    // The same content again is not a change: no further reload.
    write(&daemon.config_path(), &config("secondary", passwords));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        admin.get("/api/reload").await["generation"].as_u64(),
        Some(2)
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

/// A file changed while the daemon is still starting (here: as soon as it
/// wrote its listening file, before it serves) is a change: the daemon
/// compares the file with the text it started on, not with the file as it
/// found it once its watch began, so the new config is put in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_changed_while_the_daemon_starts_is_reloaded() {
    let passwords = r#""pwOld773""#;
    let mut daemon = start_daemon("early-change", &config("primary", passwords));
    let (ports, admin) = ports(&mut daemon);
    daemon.write_config(&config("secondary", passwords));
    generation(&admin, 2).await;
    ready(&admin).await;
    let session = bind(ports.client, "acme", "pwOld773").await;
    let id = submit(&session).await;
    assert_eq!(upstream_of(&admin, &id).await, "secondary");
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

/// Acknowledges Tern's deliver_sm and returns the receipted id.
async fn take_receipt(request: tern_session::Request) -> String {
    receipted_id(&accept_deliver_sm(request).await)
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
    let text = config("primary", r#""pwOld773""#)
        .replace(
            "simulator = \"a\"\n",
            &format!("host = \"127.0.0.1\"\nport = {}\n", sim.addr().port()),
        )
        .replace(
            "simulator = \"b\"\nsystem_id = \"tern\"",
            // Its own account at the simulator, so each upstream's receipts
            // come back over its own sessions.
            &format!(
                "host = \"127.0.0.1\"\nport = {}\nsystem_id = \"tern2\"",
                sim.addr().port()
            ),
        );
    let mut daemon = start_daemon("drain", &text);
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
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
            let metrics = admin.text("/metrics").await;
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
    daemon.restart(&Launch::new().silent());
    ready(&admin).await;
    let mut session = bind(ports.client, "acme", "pwOld773").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !acknowledged.iter().all(|id| receipted.contains(id)) {
        let Ok(request) = tokio::time::timeout_at(deadline, session.requests.recv()).await else {
            let missing: Vec<&String> = acknowledged
                .iter()
                .filter(|id| !receipted.contains(*id))
                .collect();
            let first = admin.get(&format!("/api/messages/{}", missing[0])).await;
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
fn upstreams_config(x: u16, y: u16, one_extra: &str, with_two: bool) -> String {
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
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
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
"#
    )
}

/// Waits (10 s at most) until `check` holds on an upstream simulator.
async fn until(what: &str, check: impl Fn() -> bool) {
    wait_until(what, Duration::from_secs(10), || async { check() }).await;
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
    let (xp, yp) = (x.addr().port(), y.addr().port());
    let mut daemon = start_daemon("pools", &upstreams_config(xp, yp, "", false));
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    let session = bind(ports.client, "acme", "pwOld773").await;
    assert_eq!(x.stats().binds, 1);

    // Added: `two` binds. Changed: `one` gets a rate, so its pool is
    // replaced; the new one binds only after the old one unbound.
    write(
        &daemon.config_path(),
        &upstreams_config(xp, yp, "rate = 50", true),
    );
    daemon.signal("HUP");
    let status = generation(&admin, 2).await;
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
    assert_eq!(upstream_of(&admin, &id).await, "one");

    // Removed: `two` unbinds; `one` is untouched.
    write(
        &daemon.config_path(),
        &upstreams_config(xp, yp, "rate = 50", false),
    );
    daemon.signal("HUP");
    generation(&admin, 3).await;
    until("two unbound", || y.sessions("tern").is_empty()).await;
    assert_eq!(
        x.stats().binds,
        2,
        "an unchanged upstream keeps its session"
    );
    let upstreams = admin.get("/api/upstreams").await;
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
    let text = format!(
        "[log]\nformat = \"json\"\n{}",
        config("primary", r#""pwOld773""#)
    );
    let mut daemon = start_daemon("json", &text);
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
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
    let mut daemon = Launch::new()
        .captured()
        .start_embedded(TempDir::new("embedded"));
    let admin = Admin::at(9775);
    ready(&admin).await;
    let mut session = bind(2775, "demo", "demo").await;
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm_with(RegisteredDelivery::ALWAYS)))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    let id = message_id(&resp);
    // The sandbox upstreams send receipts a second after each submit.
    assert_eq!(
        next_receipt(&mut session, Duration::from_secs(20)).await,
        id
    );
    assert!(daemon.dir.join("data").is_dir(), "the store is in ./data");
    let metrics = admin.text("/metrics").await;
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
    let text = config("primary", r#""pwOld773""#).replace(
        "[storage]\npath = \"data\"",
        "[storage]\npath = \"data\"\nretention = \"2s\"\noutbox_max_age = \"2s\"",
    );
    let mut daemon = start_daemon("ages", &text);
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    // A transmitter cannot take receipts: the receipt waits in the outbox.
    let session = client(ports.client, "acme", "pwOld773")
        .bind_type(tern_session::BindType::Transmitter)
        .session_config(SessionConfig::default())
        .bind()
        .await;
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm_with(RegisteredDelivery::ALWAYS)))
        .await
        .expect("answered");
    let id = message_id(&resp);
    let path = format!("/api/messages/{id}");
    // Sent without asking for a receipt: no receipt ever ends it.
    let silent = format!("/api/messages/{}", submit(&session).await);
    wait_until(
        "the receipt waits in the outbox",
        Duration::from_secs(10),
        || async { admin.get("/api/queues").await["outbox"].as_u64() == Some(1) },
    )
    .await;
    assert_eq!(admin.get(&path).await["state"], "final");

    // Past the outbox age the receipt is dropped and counted; past the
    // retention the message is gone.
    wait_until("the outbox emptied", Duration::from_secs(10), || async {
        admin.get("/api/queues").await["outbox"].as_u64() == Some(0)
    })
    .await;
    let metrics = admin.text("/metrics").await;
    assert_eq!(sample(&metrics, "tern_outbox_expired_total"), Some(1.0));
    wait_until("the message purged", Duration::from_secs(10), || async {
        tern::admin::get(admin.0, &path)
            .await
            .is_ok_and(|r| r.status == 404)
    })
    .await;
    wait_until(
        "the message sent without a receipt purged too",
        Duration::from_secs(10),
        || async {
            tern::admin::get(admin.0, &silent)
                .await
                .is_ok_and(|r| r.status == 404)
        },
    )
    .await;
}

/// Finished messages past their retention, and receipts a client never
/// took past the outbox age, leave the store in the round that finds them
/// due, however many there are. Rounds come every 10 s at these ages (half
/// the shortest, at most 10 s); with one batch of 500 per round, at most 50
/// a second left, so these 4 000 took 80 s past their age (and a broker
/// relaying more than 50 a second kept everything for ever). Now every
/// round goes on while it finds a whole batch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_past_its_retention_leaves_in_one_round_not_a_batch_a_round() {
    use futures::StreamExt;
    const MESSAGES: usize = 4_000;
    const RETENTION: Duration = Duration::from_secs(20);
    let text = config("primary", r#""pwOld773""#).replace(
        "[storage]\npath = \"data\"",
        "[storage]\npath = \"data\"\nretention = \"20s\"\noutbox_max_age = \"20s\"",
    );
    // Not `start_daemon`: its info log goes to a pipe read only at the end,
    // which thousands of messages would fill.
    let mut daemon = Launch::new().start(TempDir::new("reload-retention"), &text);
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    // A transmitter cannot take receipts: all 4 000 wait in its outbox.
    let session = client(ports.client, "acme", "pwOld773")
        .bind_type(tern_session::BindType::Transmitter)
        .window(100)
        .bind()
        .await;
    let ids: Vec<String> = futures::stream::iter(0..MESSAGES)
        .map(|_| submit_id(&session.handle, submit_sm_with(RegisteredDelivery::ALWAYS)))
        .buffered(100)
        .collect()
        .await;
    let (first, last) = (&ids[0], &ids[MESSAGES - 1]);
    // Every message finishes with its receipt from the simulator (50 ms).
    for id in [first, last] {
        let path = format!("/api/messages/{id}");
        wait_until("the message final", Duration::from_secs(30), || async {
            admin.get(&path).await["state"] == "final"
        })
        .await;
    }

    // Due 20 s after they finished; the first round after that takes them
    // all (two rounds' time allowed, and 5 s for a slow machine).
    let path = format!("/api/messages/{last}");
    wait_until(
        "the last message purged",
        RETENTION + Duration::from_secs(25),
        || async {
            tern::admin::get(admin.0, &path)
                .await
                .is_ok_and(|r| r.status == 404)
        },
    )
    .await;
    let first = format!("/api/messages/{first}");
    assert_eq!(
        tern::admin::get(admin.0, &first)
            .await
            .map(|r| r.status)
            .ok(),
        Some(404)
    );
    // The receipts were stored as the messages finished: the same round
    // (or the next) drops them all.
    wait_until("the outbox emptied", Duration::from_secs(15), || async {
        admin.get("/api/queues").await["outbox"].as_u64() == Some(0)
    })
    .await;
    let metrics = admin.text("/metrics").await;
    assert_eq!(
        sample(&metrics, "tern_outbox_expired_total"),
        Some(MESSAGES as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_pool_of_two_is_rebound_one_session_at_a_time() {
    use tern_sim::smsc::{Account, SimConfig, Simulator};
    // The account allows two sessions; a third bind would be refused.
    let z = Simulator::start(SimConfig {
        listen: ([127, 0, 0, 1], 0).into(),
        accounts: vec![Account {
            system_id: "tern".to_owned(),
            password: "pw1".to_owned(),
            max_binds: Some(2),
        }],
        ..SimConfig::default()
    })
    .await
    .expect("sim");
    // Every connection reaches the simulator 300 ms late, so a new session
    // takes that long to bind: long enough to see a gap if the next old
    // session went before the new one was bound.
    let zp = slow_connect_proxy(z.addr(), Duration::from_millis(300)).await;
    let text = |extra: &str| {
        upstreams_config(zp, zp, extra, false).replace(
            "profile = \"mensatek\"",
            "profile = \"generic\"\nsessions = 2",
        )
    };
    let mut daemon = start_daemon("rolling", &text(""));
    let (ports, admin) = ports(&mut daemon);
    ready(&admin).await;
    until("two bound", || z.sessions("tern").len() == 2).await;
    let session = bind(ports.client, "acme", "pwOld773").await;

    write(&daemon.config_path(), &text("rate = 40"));
    daemon.signal("HUP");
    generation(&admin, 2).await;
    // Watch the account while the pool is replaced: never more than two,
    // and there is always a session bound (the second old one serves while
    // the first new one binds).
    let mut most = 0;
    let mut least = usize::MAX;
    for _ in 0..5000 {
        let bound = z.sessions("tern").len();
        most = most.max(bound);
        least = least.min(bound);
        if z.stats().binds == 4 && bound == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(z.stats().binds, 4, "both sessions rebound");
    assert_eq!(z.stats().binds_refused, 0);
    assert!(most <= 2, "{most} sessions at once");
    assert!(least >= 1, "the upstream was never left without a session");
    let id = submit(&session).await;
    assert_eq!(upstream_of(&admin, &id).await, "one");
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

/// A loopback port that forwards each connection to `to` after `delay`:
/// an upstream slow to take a new bind.
async fn slow_connect_proxy(to: std::net::SocketAddr, delay: Duration) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("proxy listens");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    port
}
