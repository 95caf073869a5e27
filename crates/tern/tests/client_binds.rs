//! What a client account may do, end to end on the real binary with the
//! project's own ESME session as the client: the bind types its `binds`
//! lists (others refused ESME_RBINDFAIL and counted in
//! `tern_binds_refused_total`), before and after a reload that takes one
//! away (bound sessions of that type are unbound); its `rate` (submits past
//! it answered ESME_RTHROTTLED) and its `window` (submits unanswered at
//! once over all its sessions; past it ESME_RMSGQFUL at once); and its
//! limits as `/api/sessions` and `tern status` show them.

use tern_testkit as common;

use common::metrics::sample;

use std::process::Command;
use std::time::Duration;

use common::{accept_submit, bare_smsc, client, next_submit, submit_sm, Admin, Daemon, TERN};
use tern_codec::{Body, CommandStatus, Pdu, RegisteredDelivery};
use tern_session::esme::{ConnectError, UpstreamSession};
use tern_session::smsc::{BoundSession, SmscConfig};
use tern_session::{BindType, Responder, SessionHandle};

const TYPES: [BindType; 3] = [
    BindType::Transmitter,
    BindType::Receiver,
    BindType::Transceiver,
];

/// A daemon config: a listener, the admin listener, a sandbox upstream and
/// one route, then the `[[client]]` tables given.
fn config(clients: &str) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
[[simulator]]
name = "sandbox"
address = "127.0.0.1:0"
[[upstream]]
name = "sandbox"
simulator = "sandbox"
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["sandbox"]
{clients}
"#
    )
}

/// Where the daemon took its listeners.
struct Ports {
    client: u16,
    admin: u16,
}

fn start(label: &str, clients: &str) -> (Daemon, Ports) {
    let mut daemon = Daemon::start(&format!("client-binds-{label}"), &config(clients));
    let listening = daemon.listening();
    let ports = Ports {
        client: listening.client_port(),
        admin: listening.admin_port(),
    };
    (daemon, ports)
}

/// Binds `system_id` as `bind_type`, each bind bounded in time.
async fn try_bind(
    port: u16,
    system_id: &str,
    bind_type: BindType,
) -> Result<UpstreamSession, ConnectError> {
    client(port, system_id, "pw")
        .bind_type(bind_type)
        .within(Duration::from_secs(10))
        .try_bind()
        .await
}

/// The bind is refused with ESME_RBINDFAIL.
async fn refused(port: u16, system_id: &str, bind_type: BindType) {
    match try_bind(port, system_id, bind_type).await {
        Err(ConnectError::Refused(status)) => assert_eq!(
            status,
            CommandStatus::BindFailed,
            "{system_id} as {}",
            bind_type.name()
        ),
        Err(other) => panic!("{system_id} as {}: {other}", bind_type.name()),
        Ok(_) => panic!("{system_id} bound as {}", bind_type.name()),
    }
}

fn refused_metric(client: &str) -> String {
    format!("tern_binds_refused_total{{client=\"{client}\",reason=\"bind_type\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bind_type_binds_only_where_the_account_lists_it() {
    let mut clients = String::new();
    for t in TYPES {
        clients.push_str(&format!(
            "[[client]]\nsystem_id = \"{}\"\npasswords = [\"pw\"]\nbinds = [\"{}\"]\n",
            t.name(),
            t.name()
        ));
    }
    clients.push_str("[[client]]\nsystem_id = \"any\"\npasswords = [\"pw\"]\n");
    let (_daemon, ports) = start("types", &clients);
    let admin = Admin::at(ports.admin);

    let mut bound = Vec::new();
    for account in TYPES {
        for asked in TYPES {
            if asked == account {
                let session = try_bind(ports.client, account.name(), asked)
                    .await
                    .unwrap_or_else(|e| panic!("{} as itself: {e}", account.name()));
                bound.push(session);
            } else {
                refused(ports.client, account.name(), asked).await;
            }
        }
    }
    // No `binds`: all three.
    for asked in TYPES {
        let session = try_bind(ports.client, "any", asked)
            .await
            .unwrap_or_else(|e| panic!("any as {}: {e}", asked.name()));
        bound.push(session);
    }

    // Two refusals per restricted account, counted as such; none for the
    // account that takes every type. Twice as many as its sessions, and
    // still no lock-out: the bind guard does not count them.
    let metrics = admin.text("/metrics").await;
    for t in TYPES {
        assert_eq!(
            sample(&metrics, &refused_metric(t.name())),
            Some(2.0),
            "{metrics}"
        );
    }
    assert_eq!(sample(&metrics, &refused_metric("any")), None, "{metrics}");
    for session in &bound {
        assert!(!session.handle.is_closed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_receiver_unbinds_receivers_and_refuses_new_ones() {
    let account =
        |binds: &str| format!("[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n{binds}\n");
    let (mut daemon, ports) = start("reload", &account(""));
    let admin = Admin::at(ports.admin);
    let receiver = try_bind(ports.client, "acme", BindType::Receiver)
        .await
        .expect("a receiver binds while all types are allowed");
    let transmitter = try_bind(ports.client, "acme", BindType::Transmitter)
        .await
        .expect("a transmitter binds");

    daemon.write_config(&config(&account(
        r#"binds = ["transmitter", "transceiver"]"#,
    )));
    daemon.signal("HUP");
    admin
        .until(
            "/api/reload",
            Duration::from_secs(10),
            "the reload applied",
            |status| status["generation"].as_u64() == Some(2),
        )
        .await;

    tokio::time::timeout(Duration::from_secs(10), receiver.handle.closed())
        .await
        .expect("the bound receiver is unbound by the reload");
    assert_eq!(
        receiver.handle.close_reason(),
        Some(tern_session::CloseReason::PeerUnbound),
        "Tern unbound it (rather than dropping the connection)"
    );
    assert!(!transmitter.handle.is_closed(), "the transmitter stays");
    common::submit_id(
        &transmitter.handle,
        submit_sm("34600000001", "still here", RegisteredDelivery::NONE),
    )
    .await;

    refused(ports.client, "acme", BindType::Receiver).await;
    try_bind(ports.client, "acme", BindType::Transmitter)
        .await
        .expect("a new transmitter still binds");
    let metrics = admin.text("/metrics").await;
    assert_eq!(
        sample(&metrics, &refused_metric("acme")),
        Some(1.0),
        "{metrics}"
    );
    daemon.signal("TERM");
    assert!(daemon.wait(Duration::from_secs(30)).success());
}

/// Sends a submit without waiting for its answer.
fn submit(handle: &SessionHandle, n: u32) -> tokio::task::JoinHandle<Pdu> {
    let handle = handle.clone();
    let sm = submit_sm(
        &format!("3460000{n:04}"),
        "limits",
        RegisteredDelivery::NONE,
    );
    tokio::spawn(async move { handle.request(Body::SubmitSm(sm)).await.expect("answered") })
}

async fn answer(pending: tokio::task::JoinHandle<Pdu>) -> Pdu {
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the client is answered")
        .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_over_the_account_rate_are_answered_throttled() {
    let (_daemon, ports) = start(
        "rate",
        "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\nrate = 5\n",
    );
    let session = client(ports.client, "acme", "pw").window(40).bind().await;
    // Forty at once against five a second: the burst of five passes, most
    // of the rest cannot have earned a cell yet.
    let pending: Vec<_> = (0..40).map(|n| submit(&session.handle, n)).collect();
    let (mut ok, mut throttled) = (0, 0);
    for p in pending {
        let resp = answer(p).await;
        match resp.command_status {
            CommandStatus::Ok => ok += 1,
            CommandStatus::Throttled => {
                assert!(matches!(resp.body, Body::SubmitSmResp(_)), "{resp:?}");
                throttled += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(ok >= 5, "the burst passes: {ok} accepted");
    assert!(throttled > 0, "none of 40 throttled at 5/s");
    assert_eq!(CommandStatus::Throttled.code(), 0x58);
}

/// The daemon in transaction mode against a bare upstream the test answers
/// by hand, so submits stay unanswered as long as the test wants.
fn window_config(upstream: u16) -> String {
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
passwords = ["pw"]
submit_mode = "transaction"
transaction_timeout = "20s"
window = 3
binds = ["transmitter", "transceiver"]
max_binds = 4
rate = 500
session_rate = 200
[[upstream]]
name = "raw"
host = "127.0.0.1"
port = {upstream}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["raw"]
"#
    )
}

/// The submit Tern forwards upstream, with its responder.
async fn forwarded(tern: &mut BoundSession) -> Responder {
    let (_, responder) =
        tokio::time::timeout(Duration::from_secs(10), next_submit(&mut tern.requests))
            .await
            .expect("tern forwards the submit")
            .expect("session open");
    responder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_past_the_account_window_are_answered_queue_full_at_once() {
    let mut upstream = bare_smsc(SmscConfig::default()).await;
    let mut daemon = Daemon::start("client-binds-window", &window_config(upstream.port));
    let port = daemon.client_port();
    let mut tern = tokio::time::timeout(Duration::from_secs(20), upstream.sessions.recv())
        .await
        .expect("tern binds its upstream")
        .expect("session");
    // Two sessions of one account: the window is the account's.
    let first = client(port, "acme", "pw").bind().await;
    let second = client(port, "acme", "pw").bind().await;

    // Three submits wait for the upstream's answer: the window is full.
    let mut pending = vec![submit(&first.handle, 1), submit(&first.handle, 2)];
    let mut held = vec![forwarded(&mut tern).await, forwarded(&mut tern).await];
    pending.push(submit(&second.handle, 3));
    held.push(forwarded(&mut tern).await);

    // The fourth, on either session, is answered at once, not queued.
    for session in [&second, &first] {
        let resp = answer(submit(&session.handle, 4)).await;
        assert_eq!(
            resp.command_status,
            CommandStatus::MessageQueueFull,
            "{resp:?}"
        );
        assert_eq!(resp.command_status.code(), 0x14);
        assert!(matches!(resp.body, Body::SubmitSmResp(_)), "{resp:?}");
    }
    assert!(
        pending.iter().all(|p| !p.is_finished()),
        "the three in the window still wait for the upstream"
    );

    // Answered upstream, they are answered to the client, and their slots
    // are free again.
    for (n, responder) in held.into_iter().enumerate() {
        accept_submit(responder, &format!("up-{n}")).await;
    }
    for p in pending {
        assert_eq!(answer(p).await.command_status, CommandStatus::Ok);
    }
    let again = submit(&second.handle, 5);
    accept_submit(forwarded(&mut tern).await, "up-5").await;
    assert_eq!(answer(again).await.command_status, CommandStatus::Ok);

    limits_are_shown(daemon.admin()).await;
}

/// With `acme` of [`window_config`] bound, `/api/sessions` and `tern status`
/// show the account's limits beside each session.
async fn limits_are_shown(admin: Admin) {
    let sessions = admin.get("/api/sessions").await;
    let listed = sessions.as_array().expect("an array of sessions");
    assert_eq!(listed.len(), 2, "{sessions}");
    for session in listed {
        assert_eq!(
            session["limits"],
            serde_json::json!({
                "binds": ["transmitter", "transceiver"],
                "max_binds": 4,
                "rate": 500,
                "session_rate": 200,
                "window": 3,
            }),
            "{sessions}"
        );
    }

    let admin_addr = admin.0.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(TERN)
            .args(["status", "--admin", &admin_addr])
            .output()
            .expect("tern status runs")
    })
    .await
    .expect("task");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let header = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("ACCOUNT"))
        .unwrap_or_else(|| panic!("a sessions header: {stdout}"));
    let columns: Vec<&str> = header
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        columns[4..],
        [
            "BINDS ALLOWED",
            "MAX BINDS",
            "RATE",
            "SESSION RATE",
            "WINDOW"
        ],
        "{stdout}"
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("acme"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{stdout}");
    for row in rows {
        assert_eq!(
            row[4..],
            ["transmitter,transceiver", "4", "500", "200", "3"],
            "{stdout}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_of_an_account_that_allows_it_is_kept_by_an_unrelated_reload() {
    let account = |window: &str| {
        format!(
            "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\nbinds = [\"receiver\", \"transmitter\"]\n{window}\n"
        )
    };
    let (mut daemon, ports) = start("keep", &account(""));
    let admin = Admin::at(ports.admin);
    let receiver = try_bind(ports.client, "acme", BindType::Receiver)
        .await
        .expect("a receiver binds");
    daemon.write_config(&config(&account("window = 9")));
    daemon.signal("HUP");
    admin
        .until(
            "/api/sessions",
            Duration::from_secs(10),
            "the new window in force",
            |s| s[0]["limits"]["window"].as_u64() == Some(9),
        )
        .await;
    // The reload is in force; give an unbind it might have sent time to
    // arrive.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !receiver.handle.is_closed(),
        "an allowed receiver stays bound"
    );
}
