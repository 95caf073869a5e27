//! `tern run` end to end: the real binary, sandbox upstreams in-process, a
//! client over a real socket. Every submit is answered with Tern's id and
//! every receipt comes back with that id, whichever upstream took it.

use tern_testkit as common;

use std::collections::HashSet;
use std::time::Duration;

use common::{
    client, deliver_sm_before, international, message_id, next_deliver_sm, next_receipt, query_sm,
    receipted_id, submit_id, Daemon,
};
use tern_codec::pdu::SubmitSm;
use tern_codec::{Body, CommandStatus, RegisteredDelivery, ShortMessage};
use tern_session::esme;
use tern_session::SessionConfig;

/// How long a test waits for one receipt it expects.
const RECEIPT_WAIT: Duration = Duration::from_secs(10);

fn start() -> Daemon {
    start_with("100ms")
}

/// Upstream receipts come `delay` after each submit; "0s" races them
/// against Tern's own bookkeeping of the submit_sm_resp.
fn start_with(delay: &str) -> Daemon {
    start_with_clients(delay, "")
}

/// [`start_with`], with more `[[client]]` tables. Every port is 0: the
/// upstreams name their simulators, and go wherever those bound.
fn start_with_clients(delay: &str, clients: &str) -> Daemon {
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[simulator]]
name = "a"
address = "127.0.0.1:0"
reject_fraction = 0.5
receipt_delay = "{delay}"
[[simulator]]
name = "b"
address = "127.0.0.1:0"
receipt_delay = "{delay}"
[[client]]
system_id = "acme"
passwords = ["pw"]
{clients}
[[upstream]]
name = "primary"
simulator = "a"
system_id = "tern"
password = "x"
[[upstream]]
name = "secondary"
simulator = "b"
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = ["primary", "secondary"]
[router]
retry_initial = "200ms"
"#
    );
    Daemon::start("run", &config)
}

/// Binds to Tern as the test client (transceiver, `window` in flight).
async fn bind(port: u16, window: usize) -> esme::UpstreamSession {
    client(port, "acme", "pw").window(window).bind().await
}

/// A submit with a receipt requested.
fn submit_sm(text: &str) -> SubmitSm {
    common::submit_sm("34600000001", text, RegisteredDelivery::ALWAYS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_are_answered_with_tern_ids_and_every_receipt_comes_back() {
    let mut daemon = start();
    let port = daemon.client_port();
    let mut client = bind(port, 10).await;

    const N: usize = 20;
    let mut ids = HashSet::new();
    for i in 0..N {
        let id = submit_id(&client.handle, submit_sm(&format!("message {i}"))).await;
        assert_eq!(id.len(), 16, "Tern's ids are 16 hex digits: {id}");
        assert!(ids.insert(id), "ids are unique");
    }

    let mut receipted = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receipted.len() < N {
        let sm = deliver_sm_before(&mut client, deadline)
            .await
            .unwrap_or_else(|| panic!("only {} of {N} receipts in 30 s", receipted.len()));
        assert!(sm.esm_class.is_receipt());
        let id = receipted_id(&sm);
        assert!(ids.contains(&id), "a receipt for an id Tern gave: {id}");
        let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
        assert!(
            text.contains(&format!("id:{id}")) && text.contains("stat:DELIVRD"),
            "{text}"
        );
        receipted.insert(id);
    }
    assert_eq!(receipted, ids, "one receipt per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_wrong_password_is_refused() {
    let mut daemon = start();
    let port = daemon.client_port();
    let refused = client(port, "acme", "wrong")
        .session_config(SessionConfig::default())
        .try_bind()
        .await;
    assert!(
        matches!(
            refused,
            Err(esme::ConnectError::Refused(CommandStatus::InvalidPassword))
        ),
        "{refused:?}"
    );
}

/// `allowed_ips` takes addresses and networks; a bind from anywhere else is
/// refused (ESME_RBINDFAIL), whatever the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_binds_only_from_its_allowed_networks() {
    let mut daemon = start_with_clients(
        "100ms",
        r#"
[[client]]
system_id = "lan"
passwords = ["pw"]
allowed_ips = ["10.9.9.9", "127.0.0.0/8"]
[[client]]
system_id = "office"
passwords = ["pw"]
allowed_ips = ["10.0.0.0/8", "::1", "192.168.0.0/16"]
"#,
    );
    let port = daemon.client_port();
    let lan = client(port, "lan", "pw")
        .session_config(SessionConfig::default())
        .try_bind()
        .await;
    assert!(lan.is_ok(), "127.0.0.1 is in 127.0.0.0/8: {lan:?}");
    let office = client(port, "office", "pw")
        .session_config(SessionConfig::default())
        .try_bind()
        .await;
    assert!(
        matches!(
            office,
            Err(esme::ConnectError::Refused(CommandStatus::BindFailed))
        ),
        "127.0.0.1 is in none of office's networks: {office:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_tern_splits_brings_back_one_receipt() {
    let mut daemon = start();
    let port = daemon.client_port();
    let mut client = bind(port, 10).await;
    // 300 GSM characters: two parts upstream (153 + 147), one id for the client.
    let sm = common::submit_sm("34600000001", [b'x'; 300], RegisteredDelivery::ALWAYS);
    let resp = client
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    let id = message_id(&resp);
    let mut receipts = 0;
    let quiet = Duration::from_secs(3);
    while let Some(sm) = next_deliver_sm(&mut client, quiet).await {
        assert_eq!(sm.tlvs.receipted_message_id(), Some(id.as_bytes()));
        receipts += 1;
    }
    assert_eq!(receipts, 1, "one receipt for the one id, not one per part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_racing_their_submit_sm_resp_all_come_back() {
    let mut daemon = start_with("0s");
    let port = daemon.client_port();
    let mut client = bind(port, 50).await;
    const N: usize = 400;
    let mut senders = Vec::new();
    for i in 0..N {
        let handle = client.handle.clone();
        senders.push(tokio::spawn(async move {
            let sm = SubmitSm {
                destination: international("34600000001"),
                registered_delivery: RegisteredDelivery::ALWAYS,
                short_message: ShortMessage::new(format!("race {i}").into_bytes()).expect("short"),
                ..SubmitSm::default()
            };
            handle.request(Body::SubmitSm(sm)).await
        }));
    }
    let mut ids = HashSet::new();
    for sender in senders {
        let resp = sender.await.expect("task").expect("answered");
        ids.insert(message_id(&resp));
    }
    let mut receipted = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receipted.len() < N {
        let sm = deliver_sm_before(&mut client, deadline)
            .await
            .unwrap_or_else(|| panic!("only {} of {N} receipts in 30 s", receipted.len()));
        receipted.insert(receipted_id(&sm));
    }
    assert_eq!(receipted, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_sm_answers_from_the_store_and_unsupported_commands_are_refused() {
    let mut daemon = start();
    let port = daemon.client_port();
    let mut client = bind(port, 10).await;
    let id = submit_id(&client.handle, submit_sm("query me")).await;
    assert_eq!(next_receipt(&mut client, RECEIPT_WAIT).await, id);
    // Tern records the outcome before relaying the receipt.
    assert_eq!(
        query_sm(&client.handle, &id).await,
        (CommandStatus::Ok, Some(tern_codec::MessageState::DELIVERED))
    );
    // An id Tern never gave.
    assert_eq!(
        query_sm(&client.handle, "00000000ffffffff").await.0,
        CommandStatus::QueryFailed
    );
    // (submit_multi is tested in submit_multi.rs.)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_no_route_covers_is_refused_at_once() {
    let mut daemon = start();
    let port = daemon.client_port();
    let client = bind(port, 10).await;
    let mut sm = submit_sm("to nowhere");
    sm.destination.addr = "447700900000".try_into().expect("short");
    let resp = client
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    assert_eq!(
        resp.command_status,
        CommandStatus::InvalidDestinationAddress
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_wait_for_a_client_that_is_not_bound() {
    let mut daemon = start();
    let port = daemon.client_port();
    // A transmitter gets no receipts; it submits and leaves.
    let sender = client(port, "acme", "pw")
        .bind_type(tern_session::BindType::Transmitter)
        .session_config(SessionConfig::default())
        .bind()
        .await;
    let id = submit_id(&sender.handle, submit_sm("while you were away")).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the receipt reaches Tern meanwhile
    sender.handle.unbind().await;
    // Later the client binds to receive: the receipt is there for it.
    let mut receiver = bind(port, 10).await;
    assert_eq!(next_receipt(&mut receiver, RECEIPT_WAIT).await, id);
}

/// A client that sends nothing and answers Tern's enquire_link (the
/// session engine does) but sends none of its own.
async fn silent_client(port: u16) -> esme::UpstreamSession {
    client(port, "acme", "pw")
        .session_config(SessionConfig {
            enquire_link_interval: None,
            inactivity_timeout: None,
            ..SessionConfig::default()
        })
        .bind()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_session_timers_come_from_the_configuration() {
    // Not probed: silent past the inactivity timeout, the session is closed
    // (the defaults, 30 s and 120 s, would keep it for minutes).
    let mut daemon = start_with_clients(
        "100ms",
        "[client_sessions]\nenquire_link_interval = \"off\"\ninactivity_timeout = \"1s\"\n",
    );
    let port = daemon.client_port();
    let silent = silent_client(port).await;
    tokio::time::timeout(Duration::from_secs(5), silent.handle.closed())
        .await
        .expect("Tern closes a session silent past inactivity_timeout");

    // Probed every 300 ms: the same silence never reaches the timeout.
    let mut daemon = start_with_clients(
        "100ms",
        "[client_sessions]\nenquire_link_interval = \"300ms\"\ninactivity_timeout = \"1s\"\n",
    );
    let port = daemon.client_port();
    let probed = silent_client(port).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        !probed.handle.is_closed(),
        "a client answering Tern's enquire_link stays bound"
    );
}
