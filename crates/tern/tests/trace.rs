//! `tern trace ID` against the real daemon: a client sends a message Tern
//! splits in two, an SMSC in this process answers each part with its own
//! id and a receipt, the client takes Tern's receipt, and `tern trace`
//! must tell the whole story with the right upstream and ids: attempts
//! with the upstream id of each part, each part's receipt as received,
//! the receipt relayed and when the client took it, the outcome. An
//! unknown id exits 1; an admin endpoint that is not there exits 2.

use tern_testkit as common;

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{
    accept_submit, bare_smsc, client, expect_deliver_sm, message_id, next_submit, Admin, BareSmsc,
    Daemon, TERN,
};
use tern_codec::pdu::DeliverSm;
use tern_codec::{Body, EsmClass, RegisteredDelivery, ShortMessage, Tlv};
use tern_session::smsc::SmscConfig;

/// An SMSC that answers every submit with the id `TRC-<n>` and then sends
/// a DELIVRD receipt for it. Stops when the guard drops.
async fn smsc() -> (u16, tokio_util::sync::DropGuard) {
    let BareSmsc {
        port,
        mut sessions,
        stop,
    } = bare_smsc(SmscConfig::default()).await;
    let counter = Arc::new(AtomicU64::new(1));
    tokio::spawn(async move {
        while let Some(mut bound) = sessions.recv().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                while let Some((submit, responder)) = next_submit(&mut bound.requests).await {
                    let id = format!("TRC-{}", counter.fetch_add(1, Ordering::Relaxed));
                    accept_submit(responder, &id).await;
                    let text = format!(
                        "id:{id} sub:001 dlvrd:001 submit date:2601010000 done date:2601010001 stat:DELIVRD err:000 text:"
                    );
                    let mut receipt = DeliverSm {
                        source: submit.destination.clone(),
                        destination: submit.source.clone(),
                        esm_class: EsmClass::DELIVERY_RECEIPT,
                        short_message: ShortMessage::new(text.into_bytes()).expect("fits"),
                        ..DeliverSm::default()
                    };
                    receipt
                        .tlvs
                        .push(Tlv::receipted_message_id(id.as_bytes()).expect("fits"));
                    let handle = bound.handle.clone();
                    tokio::spawn(async move {
                        let _ = handle.request(Body::DeliverSm(receipt)).await;
                    });
                }
            });
        }
    });
    (port, stop)
}

fn start_tern(client_port: u16, admin_port: u16, upstream_port: u16) -> Daemon {
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{client_port}"
[admin]
address = "127.0.0.1:{admin_port}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "carrier-x"
host = "127.0.0.1"
port = {upstream_port}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["carrier-x"]
"#
    );
    Daemon::start(&format!("trace-{client_port}"), &config)
}

/// Runs `tern trace` off the async runtime's threads.
async fn trace(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(TERN)
            .arg("trace")
            .args(args)
            .output()
            .expect("run tern trace")
    })
    .await
    .expect("task")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_tells_where_a_receipt_went_with_the_upstream_and_its_ids() {
    let (upstream, _smsc) = smsc().await;
    let (port, admin) = (0, 0);
    let mut _tern = start_tern(port, admin, upstream);
    let (port, admin) = (_tern.client_port(), _tern.admin().0.port());
    let mut client = client(port, "acme", "pw").bind().await;

    // 300 characters: two parts upstream, one id for the client.
    let sm = common::submit_sm("34600000001", [b'z'; 300], RegisteredDelivery::ALWAYS);
    let resp = client
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    let id = message_id(&resp);

    expect_deliver_sm(&mut client, Duration::from_secs(10)).await;

    // The client's answer is recorded just after it is sent: wait for it.
    Admin::at(admin)
        .until(
            &format!("/api/messages/{id}"),
            Duration::from_secs(5),
            "the client's acknowledgement recorded",
            |m| m["receipts_relayed"][0]["acked_ms"].is_u64(),
        )
        .await;

    let admin_arg = format!("127.0.0.1:{admin}");
    let out = trace(vec![id.clone(), "--admin".into(), admin_arg.clone()]).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{:?}: {text}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Each section, in order, with the upstream and its ids.
    let sections = [
        format!("Message {id}   client acme   state final"),
        "Route and attempts (1)".to_owned(),
        "upstream carrier-x  0x00000000 ESME_ROK  upstream ids: part 1 = TRC-1, part 2 = TRC-2"
            .to_owned(),
        "Parts (2)".to_owned(),
        "1. carrier-x TRC-1  final: DELIVRD err 000 (carrier-x stat:DELIVRD err:000)".to_owned(),
        "2. carrier-x TRC-2  final: DELIVRD err 000 (carrier-x stat:DELIVRD err:000)".to_owned(),
        "Receipts received (2)".to_owned(),
        "Receipts relayed to the client (1)".to_owned(),
        "stat:DELIVRD err:000  outbox #".to_owned(),
        "taken by the client".to_owned(),
        "Outcome".to_owned(),
        "DELIVRD err 000 (carrier-x stat:DELIVRD err:000)".to_owned(),
    ];
    let mut from = 0;
    for section in &sections {
        let at = text[from..]
            .find(section.as_str())
            .unwrap_or_else(|| panic!("{section:?} missing (or out of order) in:\n{text}"));
        from += at + section.len();
    }
    for part in ["TRC-1", "TRC-2"] {
        assert!(
            text.contains(&format!("from carrier-x  id {part}")),
            "the receipt for {part} as received:\n{text}"
        );
    }
    assert!(!text.contains("NOT YET TAKEN"), "{text}");

    // --json: the daemon's JSON, whole.
    let out = trace(vec![
        id.clone(),
        "--admin".into(),
        admin_arg.clone(),
        "--json".into(),
    ])
    .await;
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["id"], id.as_str());
    assert_eq!(json["attempts"][0]["upstream"], "carrier-x");
    assert_eq!(
        json["attempts"][0]["upstream_ids"],
        serde_json::json!(["TRC-1", "TRC-2"])
    );
    let received = json["receipts_received"].as_array().expect("received");
    assert_eq!(received.len(), 2);
    assert!(received
        .iter()
        .all(|r| r["upstream"] == "carrier-x" && r["vendor_stat"] == "DELIVRD"));
    assert_eq!(json["receipts_relayed"][0]["stat"], "DELIVRD");

    // An id Tern never gave: exit 1.
    let out = trace(vec!["00000000ffffffff".into(), "--admin".into(), admin_arg]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no message 00000000ffffffff"));

    // Nothing listening: exit 2.
    let out = trace(vec![
        id,
        "--admin".into(),
        // Port 1: privileged, nothing listens there on a test machine.
        "127.0.0.1:1".to_owned(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
