//! `tern run` end to end: the real binary, sandbox upstreams in-process, a
//! client over a real socket. Every submit is answered with Tern's id and
//! every receipt comes back with that id, whichever upstream took it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tern_codec::pdu::{SmResp, SubmitSm};
use tern_codec::{Address, Body, CommandStatus, Npi, RegisteredDelivery, ShortMessage, Ton};
use tern_session::esme::{self, BindParams};
use tern_session::SessionConfig;
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Daemon {
    child: Child,
    dir: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start(client_port: u16) -> Daemon {
    start_with(client_port, "100ms")
}

/// Upstream receipts come `delay` after each submit; "0s" races them
/// against Tern's own bookkeeping of the submit_sm_resp.
fn start_with(client_port: u16, delay: &str) -> Daemon {
    let dir = std::env::temp_dir().join(format!("tern-run-{}-{client_port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (a, b) = (free_port(), free_port());
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{client_port}"
[storage]
path = "data"
[[simulator]]
name = "a"
address = "127.0.0.1:{a}"
reject_fraction = 0.5
receipt_delay = "{delay}"
[[simulator]]
name = "b"
address = "127.0.0.1:{b}"
receipt_delay = "{delay}"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "primary"
host = "127.0.0.1"
port = {a}
system_id = "tern"
password = "x"
[[upstream]]
name = "secondary"
host = "127.0.0.1"
port = {b}
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
    let path = dir.join("tern.toml");
    std::fs::write(&path, config).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_tern"))
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tern");
    Daemon { child, dir }
}

async fn connect(port: u16) -> TcpStream {
    for _ in 0..100 {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("tern never listened on {port}");
}

/// Binds to Tern as the test client (transceiver, `window` in flight).
async fn client(port: u16, window: usize) -> esme::UpstreamSession {
    let stream = connect(port).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let params = BindParams::new("acme", "pw").expect("short");
    let config = SessionConfig {
        window,
        enquire_link_interval: None,
        ..SessionConfig::default()
    };
    esme::bind(stream, Some(addr), &params, config)
        .await
        .expect("bound to tern")
}

/// A submit with a receipt requested.
fn submit_sm(text: &str) -> SubmitSm {
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
        registered_delivery: RegisteredDelivery::ALWAYS,
        short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..SubmitSm::default()
    }
}

/// Acknowledges a deliver_sm from Tern.
async fn ack(request: tern_session::Request) {
    request
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("ack");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_are_answered_with_tern_ids_and_every_receipt_comes_back() {
    let port = free_port();
    let _daemon = start(port);
    let mut client = client(port, 10).await;

    const N: usize = 20;
    let mut ids = HashSet::new();
    for i in 0..N {
        let sm = submit_sm(&format!("message {i}"));
        let resp = client
            .handle
            .request(Body::SubmitSm(sm))
            .await
            .expect("answered");
        assert_eq!(resp.command_status, CommandStatus::Ok);
        let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
            panic!("no id")
        };
        let id = id.to_string();
        assert_eq!(id.len(), 16, "Tern's ids are 16 hex digits: {id}");
        assert!(ids.insert(id), "ids are unique");
    }

    let mut receipted = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receipted.len() < N {
        let request = tokio::time::timeout_at(deadline, client.requests.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {N} receipts in 30 s", receipted.len()))
            .expect("session open");
        let Body::DeliverSm(sm) = &request.pdu.body else {
            panic!("{:?}", request.pdu)
        };
        assert!(sm.esm_class.is_receipt());
        let id = String::from_utf8_lossy(
            sm.tlvs
                .receipted_message_id()
                .expect("receipted_message_id"),
        )
        .into_owned();
        assert!(ids.contains(&id), "a receipt for an id Tern gave: {id}");
        let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
        assert!(
            text.contains(&format!("id:{id}")) && text.contains("stat:DELIVRD"),
            "{text}"
        );
        receipted.insert(id);
        ack(request).await;
    }
    assert_eq!(receipted, ids, "one receipt per message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_with_a_wrong_password_is_refused() {
    let port = free_port();
    let _daemon = start(port);
    let stream = connect(port).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let params = BindParams::new("acme", "wrong").expect("short");
    let refused = esme::bind(stream, Some(addr), &params, SessionConfig::default()).await;
    assert!(
        matches!(
            refused,
            Err(esme::ConnectError::Refused(CommandStatus::InvalidPassword))
        ),
        "{refused:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_tern_splits_brings_back_one_receipt() {
    let port = free_port();
    let _daemon = start(port);
    let mut client = client(port, 10).await;
    // 300 GSM characters: two parts upstream (153 + 147), one id for the client.
    let mut sm = SubmitSm {
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
        registered_delivery: RegisteredDelivery::ALWAYS,
        ..SubmitSm::default()
    };
    sm.tlvs
        .push(tern_codec::Tlv::message_payload(vec![b'x'; 300]).expect("fits"));
    let resp = client
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
        panic!("no id")
    };
    let mut receipts = 0;
    let quiet = Duration::from_secs(3);
    while let Ok(Some(request)) = tokio::time::timeout(quiet, client.requests.recv()).await {
        let Body::DeliverSm(sm) = &request.pdu.body else {
            panic!("{:?}", request.pdu)
        };
        assert_eq!(sm.tlvs.receipted_message_id(), Some(id.as_bytes()));
        receipts += 1;
        ack(request).await;
    }
    assert_eq!(receipts, 1, "one receipt for the one id, not one per part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_racing_their_submit_sm_resp_all_come_back() {
    let port = free_port();
    let _daemon = start_with(port, "0s");
    let mut client = client(port, 50).await;
    const N: usize = 400;
    let mut senders = Vec::new();
    for i in 0..N {
        let handle = client.handle.clone();
        senders.push(tokio::spawn(async move {
            let sm = SubmitSm {
                destination: Address::new(
                    Ton::INTERNATIONAL,
                    Npi::ISDN,
                    "34600000001".try_into().expect("short"),
                ),
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
        let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
            panic!("no id")
        };
        ids.insert(id.to_string());
    }
    let mut receipted = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while receipted.len() < N {
        let request = tokio::time::timeout_at(deadline, client.requests.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} of {N} receipts in 30 s", receipted.len()))
            .expect("session open");
        let Body::DeliverSm(sm) = &request.pdu.body else {
            panic!("{:?}", request.pdu)
        };
        receipted.insert(
            String::from_utf8_lossy(sm.tlvs.receipted_message_id().expect("id")).into_owned(),
        );
        ack(request).await;
    }
    assert_eq!(receipted, ids);
}

/// Waits for one deliver_sm from Tern, acknowledges it, returns its
/// receipted_message_id.
async fn next_receipt(client: &mut esme::UpstreamSession) -> String {
    let request = tokio::time::timeout(Duration::from_secs(10), client.requests.recv())
        .await
        .expect("a receipt in time")
        .expect("session open");
    let Body::DeliverSm(sm) = &request.pdu.body else {
        panic!("{:?}", request.pdu)
    };
    let id = String::from_utf8_lossy(sm.tlvs.receipted_message_id().expect("id")).into_owned();
    ack(request).await;
    id
}

async fn submit_id(client: &esme::UpstreamSession, sm: SubmitSm) -> String {
    let resp = client
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = resp.body else {
        panic!("no id")
    };
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_sm_answers_from_the_store_and_unsupported_commands_are_refused() {
    let port = free_port();
    let _daemon = start(port);
    let mut client = client(port, 10).await;
    let id = submit_id(&client, submit_sm("query me")).await;
    assert_eq!(next_receipt(&mut client).await, id);
    // Tern records the outcome before relaying the receipt.
    let query = tern_codec::pdu::QuerySm {
        message_id: id.as_str().try_into().expect("short"),
        ..Default::default()
    };
    let resp = client
        .handle
        .request(Body::QuerySm(query))
        .await
        .expect("answered");
    let Body::QuerySmResp(answer) = resp.body else {
        panic!("{resp:?}")
    };
    assert_eq!(
        (resp.command_status, answer.message_state),
        (CommandStatus::Ok, tern_codec::MessageState::DELIVERED)
    );
    // An id Tern never gave.
    let query = tern_codec::pdu::QuerySm {
        message_id: "00000000ffffffff".try_into().expect("short"),
        ..Default::default()
    };
    let resp = client
        .handle
        .request(Body::QuerySm(query))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::QueryFailed);
    // data_sm is not offered yet: a precise refusal, not silence.
    let resp = client
        .handle
        .request(Body::DataSm(Default::default()))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::InvalidCommandId);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_no_route_covers_is_refused_at_once() {
    let port = free_port();
    let _daemon = start(port);
    let client = client(port, 10).await;
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
    let port = free_port();
    let _daemon = start(port);
    // A transmitter gets no receipts; it submits and leaves.
    let stream = connect(port).await;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut params = BindParams::new("acme", "pw").expect("short");
    params.bind_type = tern_session::BindType::Transmitter;
    let sender = esme::bind(stream, Some(addr), &params, SessionConfig::default())
        .await
        .expect("bound");
    let id = submit_id(&sender, submit_sm("while you were away")).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the receipt reaches Tern meanwhile
    sender.handle.unbind().await;
    // Later the client binds to receive: the receipt is there for it.
    let mut receiver = client(port, 10).await;
    assert_eq!(next_receipt(&mut receiver).await, id);
}
