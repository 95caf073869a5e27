//! Transaction mode end to end (`submit_mode = "transaction"`): the real
//! `tern` binary answers a client's submit only once the upstream — here a
//! bare SMSC the test answers by hand — has answered it, with the
//! upstream's verdict in SMPP terms, and a refusal answered that way has
//! no receipt. Past `transaction_timeout` the submit is answered as in
//! store-and-forward mode and the outcome comes as a receipt. A
//! store-and-forward client on the same daemon is answered at once.

use tern_testkit as common;

use std::time::{Duration, Instant};

use common::{
    accept_submit, bare_smsc, client, expect_deliver_sm, message_id, next_deliver_sm, next_submit,
    receipted_id, submit_sm, Daemon,
};
use tern_codec::{Body, CommandStatus, Pdu, RegisteredDelivery};
use tern_session::smsc::{BoundSession, SmscConfig};
use tern_session::{Responder, SessionHandle};

const TIMEOUT: Duration = Duration::from_secs(2);

fn config(client_port: u16, upstream_port: u16) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:{client_port}"
[storage]
path = "data"
[[client]]
system_id = "txn"
passwords = ["pw"]
submit_mode = "transaction"
transaction_timeout = "2s"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "raw"
host = "127.0.0.1"
port = {upstream_port}
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = ["raw"]
"#
    )
}

/// Sends a submit with receipts requested without waiting for its answer.
fn submit(handle: &SessionHandle, to: &str) -> tokio::task::JoinHandle<Pdu> {
    let handle = handle.clone();
    let sm = submit_sm(to, "transaction", RegisteredDelivery::ALWAYS);
    tokio::spawn(async move { handle.request(Body::SubmitSm(sm)).await.expect("answered") })
}

/// The submit Tern forwards to the bare upstream, with its responder.
async fn forwarded(tern: &mut BoundSession) -> Responder {
    let (_, responder) =
        tokio::time::timeout(Duration::from_secs(10), next_submit(&mut tern.requests))
            .await
            .expect("tern forwards the submit")
            .expect("session open");
    responder
}

async fn answer(pending: tokio::task::JoinHandle<Pdu>) -> Pdu {
    tokio::time::timeout(Duration::from_secs(10), pending)
        .await
        .expect("the client is answered")
        .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_submit_is_answered_with_the_upstreams_verdict() {
    let mut upstream = bare_smsc(SmscConfig::default()).await;
    let mut daemon = Daemon::start("transaction", &config(0, upstream.port));
    let port = daemon.client_port();
    let mut tern = tokio::time::timeout(Duration::from_secs(20), upstream.sessions.recv())
        .await
        .expect("tern binds its upstream")
        .expect("session");
    let mut txn = client(port, "txn", "pw").bind().await;

    // Taken upstream: the answer waits for the upstream's.
    let pending = submit(&txn.handle, "34600000001");
    let responder = forwarded(&mut tern).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "answered before the upstream answered"
    );
    accept_submit(responder, "up-1").await;
    let resp = answer(pending).await;
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    assert!(!message_id(&resp).is_empty());

    // Refused for good upstream (0x0A: sender not allowed, permanent in the
    // generic profile): the client gets the same refusal, and no receipt.
    let pending = submit(&txn.handle, "34600000002");
    let responder = forwarded(&mut tern).await;
    let _ = responder.reject(CommandStatus::InvalidSourceAddress).await;
    let resp = answer(pending).await;
    assert_eq!(resp.command_status, CommandStatus::InvalidSourceAddress);
    assert!(
        next_deliver_sm(&mut txn, Duration::from_secs(1))
            .await
            .is_none(),
        "a refusal answered in the response has no receipt"
    );

    // No upstream answer within transaction_timeout: answered ESME_ROK as
    // in store-and-forward mode; the refusal that comes later is a receipt.
    let started = Instant::now();
    let pending = submit(&txn.handle, "34600000003");
    let responder = forwarded(&mut tern).await;
    let resp = answer(pending).await;
    assert!(started.elapsed() >= TIMEOUT - Duration::from_millis(100));
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    let id = message_id(&resp);
    let _ = responder.reject(CommandStatus::InvalidSourceAddress).await;
    let receipt = expect_deliver_sm(&mut txn, Duration::from_secs(10)).await;
    assert_eq!(receipted_id(&receipt), id);

    // A store-and-forward client is answered while the upstream still
    // holds its submit.
    let acme = client(port, "acme", "pw").bind().await;
    let pending = submit(&acme.handle, "34600000004");
    let resp = answer(pending).await;
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    accept_submit(forwarded(&mut tern).await, "up-4").await;
}
