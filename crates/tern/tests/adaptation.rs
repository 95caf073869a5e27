//! What Tern sends each vendor, end to end: the real `tern` binary between a
//! client and SMSCs in this test process (the simulator, or a bare SMSC
//! where the test must see every PDU or answer each part its own way).
//!
//! - A bind response without `sc_interface_version` (SMPP 3.4 §5.3.2.25:
//!   no TLVs): a long text reaches Telesign whole, as UDH parts.
//! - A message no upstream of its route can carry ends with a failure
//!   receipt, and the trace names each upstream's reason.
//! - A split message whose second part is refused goes again, every part,
//!   under a new concatenation reference; the client gets one receipt.
//! - Infobip flash: class 0 messages over the `NSMS` session only, others
//!   never over it, and a long flash message refused.

use tern_testkit as common;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    accept_submit, client, expect_deliver_sm, next_deliver_sm, next_submit, submit_id, submit_sm,
    Admin, Daemon, TERN,
};
use serde_json::Value;
use tern_codec::pdu::{DeliverSm, SubmitSm};
use tern_codec::{Body, CommandStatus, DataCoding, EsmClass, RegisteredDelivery, ShortMessage};
use tern_session::smsc::{
    Admission, Authenticator, BindRequest, BoundSession, SmscConfig, SmscServer,
};
use tern_sim::smsc::{ReceiptBehaviour, Recorded, SimConfig, SimHandle, Simulator};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(15);

/// A Tern configuration: client `acme`, an admin listener, quick retries,
/// and the given upstreams and routes.
fn start_tern(label: &str, client_port: u16, admin_port: u16, rest: &str) -> Daemon {
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{client_port}"
[admin]
address = "127.0.0.1:{admin_port}"
[storage]
path = "data"
durability = "fast"
flush_interval = "20ms"
[[client]]
system_id = "acme"
passwords = ["pw"]
[router]
retry_initial = "200ms"
{rest}
"#
    );
    Daemon::start(&format!("adaptation-{label}"), &config)
}

fn upstream(name: &str, profile: &str, port: u16, system_type: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "{name}"
profile = "{profile}"
host = "127.0.0.1"
port = {port}
system_id = "tern"
password = "x"
system_type = "{system_type}"
"#
    )
}

async fn sim(config: SimConfig) -> SimHandle {
    let sim = Simulator::start(config).await.expect("simulator starts");
    sim.start_recording();
    sim
}

/// What the simulator accepted, as (message id, octets).
fn accepted(sim: &SimHandle) -> Vec<(String, Vec<u8>)> {
    sim.recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Submit {
                message_id, text, ..
            } => Some((message_id, text)),
            _ => None,
        })
        .collect()
}

/// (reference, total, sequence) of an 8-bit-reference concatenation UDH.
type Concat8 = (u8, u8, u8);

/// An 8-bit-reference concatenation UDH at the start of `octets`, and the
/// user data after it.
fn udh8(octets: &[u8]) -> Option<(Concat8, &[u8])> {
    match octets {
        [0x05, 0x00, 0x03, reference, total, sequence, rest @ ..] => {
            Some(((*reference, *total, *sequence), rest))
        }
        _ => None,
    }
}

/// The text of UDH parts, in sequence order, checking they are one
/// message: one reference, sequences 1..=total, none empty.
fn reassemble(parts: &[Vec<u8>]) -> (u8, Vec<u8>) {
    let mut read: Vec<(Concat8, &[u8])> = parts
        .iter()
        .map(|p| udh8(p).unwrap_or_else(|| panic!("not a UDH part: {p:02X?}")))
        .collect();
    read.sort_by_key(|((_, _, sequence), _)| *sequence);
    let reference = read[0].0 .0;
    let total = u8::try_from(read.len()).expect("few parts");
    let mut text = Vec::new();
    for (n, ((r, t, s), data)) in read.into_iter().enumerate() {
        assert_eq!(
            (r, t, usize::from(s)),
            (reference, total, n + 1),
            "parts of one message"
        );
        assert!(!data.is_empty(), "part {s} is empty");
        text.extend_from_slice(data);
    }
    (reference, text)
}

async fn message(admin: &Admin, id: &str) -> Value {
    admin.get(&format!("/api/messages/{id}")).await
}

/// `tern trace ID`, as an operator runs it.
async fn trace(admin_port: u16, id: &str) -> String {
    let args = vec![
        "trace".to_owned(),
        id.to_owned(),
        "--admin".to_owned(),
        format!("127.0.0.1:{admin_port}"),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new(TERN)
            .args(args)
            .output()
            .expect("run tern trace")
    })
    .await
    .expect("task");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The `key:` field of a receipt's text.
fn field(sm: &DeliverSm, key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
    let at = text.find(&format!("{key}:"))? + key.len() + 1;
    text[at..].split(' ').next().map(str::to_owned)
}

// ---------------------------------------------------------------------
// Point 6: no sc_interface_version, no TLVs.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_versionless_bind_resp_gets_the_whole_text_as_udh_parts() {
    let sim = sim(SimConfig {
        announce_interface_version: false,
        ..SimConfig::default()
    })
    .await;
    let (port, admin_port) = (0, 0);
    let rest = upstream("telesign", "telesign", sim.addr().port(), "")
        + r#"
[[route]]
name = "all"
upstreams = ["telesign"]
"#;
    let mut tern = start_tern("versionless", port, admin_port, &rest);
    let port = tern.client_port();
    let mut session = client(port, "acme", "pw").bind().await;

    // 400 characters: a message_payload from the client; Telesign's profile
    // would send it on as one message_payload, but this SMSC announced no
    // version, so no TLV may go to it.
    let text: String = (0..400)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let id = submit_id(
        &session.handle,
        submit_sm("14155550100", text.as_bytes(), RegisteredDelivery::ALWAYS),
    )
    .await;
    let parts = common::wait_for("three parts at the simulator", WAIT, || {
        let got = accepted(&sim);
        async move { (got.len() >= 3).then_some(got) }
    })
    .await;
    let octets: Vec<Vec<u8>> = parts.into_iter().map(|(_, octets)| octets).collect();
    assert_eq!(octets.len(), 3, "153 + 153 + 94 characters");
    let (_, whole) = reassemble(&octets);
    assert_eq!(whole, text.as_bytes(), "the whole text, in order");

    // And the client hears that it was delivered.
    let receipt = expect_deliver_sm(&mut session, WAIT).await;
    assert_eq!(field(&receipt, "id").as_deref(), Some(id.as_str()));
    assert_eq!(field(&receipt, "stat").as_deref(), Some("DELIVRD"));
}

// ---------------------------------------------------------------------
// Point 9: a message nobody can carry ends.
// ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_no_upstream_of_the_route_can_carry_ends_with_a_failure_receipt() {
    let ovh = sim(SimConfig::default()).await;
    let generic = sim(SimConfig::default()).await;
    let (port, admin_port) = (0, 0);
    // OVH: "Data Coding Scheme: GSM 03.38, UCS-2" only; the generic
    // profile takes GSM and UCS-2 too. Neither carries 8-bit data.
    let rest = upstream("ovh", "ovh", ovh.addr().port(), "")
        + &upstream("generic", "generic", generic.addr().port(), "")
        + r#"
[[route]]
name = "all"
upstreams = ["ovh", "generic"]
"#;
    let mut tern = start_tern("binary", port, admin_port, &rest);
    let (port, admin_port) = (tern.client_port(), tern.admin().0.port());
    let admin = Admin::at(admin_port);
    let mut session = client(port, "acme", "pw").bind().await;

    let mut binary = submit_sm(
        "33612345678",
        [0x01u8, 0x02, 0x03, 0xFF],
        RegisteredDelivery::ALWAYS,
    );
    binary.data_coding = DataCoding(0x04);
    let id = submit_id(&session.handle, binary).await;

    let receipt = expect_deliver_sm(&mut session, WAIT).await;
    assert_eq!(field(&receipt, "id").as_deref(), Some(id.as_str()));
    assert_eq!(field(&receipt, "stat").as_deref(), Some("REJECTD"));
    assert_eq!(field(&receipt, "err").as_deref(), Some("909"));

    let record = message(&admin, &id).await;
    assert_eq!(record["state"], "final", "{record:#}");
    // No vendor answered: none is named as if it had.
    assert!(record["outcome"]["vendor"].is_null(), "{record:#}");
    let attempts = record["attempts"].as_array().cloned().unwrap_or_default();
    for name in ["ovh", "generic"] {
        let attempt = attempts
            .iter()
            .find(|a| a["upstream"] == name)
            .unwrap_or_else(|| panic!("no attempt at {name}: {record:#}"));
        let failure = attempt["failure"].as_str().unwrap_or_default();
        assert!(
            failure.contains(&format!("{name} cannot carry it"))
                && failure.contains("data_coding 0x04"),
            "{name}: {failure:?}"
        );
    }
    let shown = trace(admin_port, &id).await;
    assert!(
        shown.contains("ovh cannot carry it: data_coding 0x04")
            && shown.contains("generic cannot carry it: data_coding 0x04"),
        "{shown}"
    );
    // Nothing reached either upstream.
    assert!(accepted(&ovh).is_empty() && accepted(&generic).is_empty());
    assert_eq!(ovh.stats().submits + generic.stats().submits, 0);
}

// ---------------------------------------------------------------------
// Point 10: a split message that fails over goes again under a new
// reference.
// ---------------------------------------------------------------------

/// An SMSC that accepts the first part of each message and refuses the
/// second with ESME_RSUBMITFAIL (temporary: the next upstream is tried),
/// `refusals` times, then accepts everything; its ids are `A1`, `A2`, …. It
/// keeps what it got and the session to send receipts over.
struct RefusesPartTwo {
    port: u16,
    got: Arc<Mutex<Vec<SubmitSm>>>,
    session: Arc<Mutex<Option<tern_session::SessionHandle>>>,
    _stop: tokio_util::sync::DropGuard,
}

async fn refuses_part_two(refusals: usize) -> RefusesPartTwo {
    let common::BareSmsc {
        port,
        mut sessions,
        stop,
    } = common::bare_smsc(SmscConfig::default()).await;
    let got: Arc<Mutex<Vec<SubmitSm>>> = Arc::default();
    let session: Arc<Mutex<Option<tern_session::SessionHandle>>> = Arc::default();
    let (g, s) = (got.clone(), session.clone());
    tokio::spawn(async move {
        while let Some(mut bound) = sessions.recv().await {
            *s.lock().expect("lock") = Some(bound.handle.clone());
            let g = g.clone();
            tokio::spawn(async move {
                let mut refused = 0;
                while let Some((submit, responder)) = next_submit(&mut bound.requests).await {
                    let sequence = udh8(submit.short_message.as_bytes()).map(|(n, _)| n.2);
                    let n = {
                        let mut got = g.lock().expect("lock");
                        got.push(submit);
                        got.len()
                    };
                    if sequence == Some(2) && refused < refusals {
                        refused += 1;
                        let _ = responder.reject(CommandStatus::SubmitFailed).await;
                    } else {
                        accept_submit(responder, &format!("A{n}")).await;
                    }
                }
            });
        }
    });
    RefusesPartTwo {
        port,
        got,
        session,
        _stop: stop,
    }
}

/// An UNDELIV receipt for `id`, as a standard SMSC writes it.
fn undeliv(id: &str) -> DeliverSm {
    let text = format!(
        "id:{id} sub:001 dlvrd:000 submit date:2401011200 done date:2401011201 stat:UNDELIV err:001 text:"
    );
    DeliverSm {
        esm_class: EsmClass::DELIVERY_RECEIPT,
        short_message: ShortMessage::new(text.into_bytes()).expect("short"),
        ..DeliverSm::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_message_refused_midway_goes_again_under_a_new_reference() {
    let a = refuses_part_two(usize::MAX).await;
    // B delivers, its receipts a second after each part: after A's.
    let b = sim(SimConfig {
        behaviour: tern_sim::smsc::Behaviour {
            receipts: ReceiptBehaviour {
                delay: Duration::from_secs(1),
                ..ReceiptBehaviour::default()
            },
            ..Default::default()
        },
        ..SimConfig::default()
    })
    .await;
    let (port, admin_port) = (0, 0);
    let rest = upstream("a", "generic", a.port, "")
        + &upstream("b", "generic", b.addr().port(), "")
        + r#"
[[route]]
name = "all"
strategy = "failover"
upstreams = ["a", "b"]
"#;
    let mut tern = start_tern("split", port, admin_port, &rest);
    let (port, admin_port) = (tern.client_port(), tern.admin().0.port());
    let admin = Admin::at(admin_port);
    let mut session = client(port, "acme", "pw").bind().await;
    common::wait_until("a bound", WAIT, || {
        let bound = a.session.lock().expect("lock").is_some();
        async move { bound }
    })
    .await;
    common::wait_until("b bound", WAIT, || {
        let bound = !b.sessions("tern").is_empty();
        async move { bound }
    })
    .await;

    let text: String = (0..300)
        .map(|i| char::from(b'A' + (i % 26) as u8))
        .collect();
    let id = submit_id(
        &session.handle,
        submit_sm("33612345678", text.as_bytes(), RegisteredDelivery::ALWAYS),
    )
    .await;
    let at_b = common::wait_for("both parts at b", WAIT, || {
        let got = accepted(&b);
        async move { (got.len() >= 2).then_some(got) }
    })
    .await;
    let at_a = a.got.lock().expect("lock").clone();
    assert_eq!(at_a.len(), 2, "part 1 accepted, part 2 refused at a");
    let (a_reference, _) = udh8(at_a[0].short_message.as_bytes()).expect("UDH");
    let b_octets: Vec<Vec<u8>> = at_b.iter().map(|(_, o)| o.clone()).collect();
    let (b_reference, whole) = reassemble(&b_octets);
    assert_eq!(whole, text.as_bytes(), "every part again at b");
    assert_ne!(
        a_reference.0, b_reference,
        "a new concatenation reference at b"
    );

    // A's part 1 is reported undelivered: it belongs to an attempt given
    // up, and decides nothing.
    admin
        .until(&format!("/api/messages/{id}"), WAIT, "submitted", |m| {
            m["state"] == "submitted"
        })
        .await;
    let a_session = a.session.lock().expect("lock").clone().expect("bound");
    let resp = a_session
        .request(Body::DeliverSm(undeliv("A1")))
        .await
        .expect("tern answers");
    assert_eq!(resp.command_status, CommandStatus::Ok);

    let receipt = expect_deliver_sm(&mut session, WAIT).await;
    assert_eq!(field(&receipt, "id").as_deref(), Some(id.as_str()));
    assert_eq!(
        field(&receipt, "stat").as_deref(),
        Some("DELIVRD"),
        "B's parts decide"
    );
    assert!(
        next_deliver_sm(&mut session, Duration::from_secs(2))
            .await
            .is_none(),
        "one receipt for the message"
    );
    let record = message(&admin, &id).await;
    let parts = record["parts"].as_array().cloned().unwrap_or_default();
    assert_eq!(parts.len(), 2, "{record:#}");
    assert!(parts.iter().all(|p| p["upstream"] == "b"), "{record:#}");
}

// ---------------------------------------------------------------------
// Point 8: Infobip flash over NSMS.
// ---------------------------------------------------------------------

/// Accepts every bind, naming the session by system_id and system_type.
struct BySystemType;

impl Authenticator for BySystemType {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        Ok(Admission {
            account: format!("{}/{}", bind.system_id, bind.system_type),
            ..Admission::default()
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infobip_flash_goes_over_the_nsms_session_and_a_long_one_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let smsc_port = listener.local_addr().expect("addr").port();
    let (tx, mut sessions) = mpsc::channel::<BoundSession>(8);
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    tokio::spawn(
        SmscServer::new(SmscConfig::default(), BySystemType).serve(listener, None, tx, stop),
    );
    // (session's account, submit) as they arrive.
    let got: Arc<Mutex<Vec<(String, SubmitSm)>>> = Arc::default();
    let g = got.clone();
    tokio::spawn(async move {
        let mut n = 0u32;
        while let Some(mut bound) = sessions.recv().await {
            let g = g.clone();
            n += 1;
            let base = n * 1000;
            tokio::spawn(async move {
                let mut k = base;
                while let Some((submit, responder)) = next_submit(&mut bound.requests).await {
                    k += 1;
                    g.lock()
                        .expect("lock")
                        .push((bound.account.clone(), submit));
                    accept_submit(responder, &k.to_string()).await;
                }
            });
        }
    });

    let (port, admin_port) = (0, 0);
    let rest = upstream("infobip", "infobip", smsc_port, "")
        + &upstream("infobip-flash", "infobip", smsc_port, "NSMS")
        + r#"
[[route]]
name = "normal-first"
prefixes = ["4219001"]
strategy = "failover"
upstreams = ["infobip", "infobip-flash"]
[[route]]
name = "flash-first"
prefixes = ["4219002"]
strategy = "failover"
upstreams = ["infobip-flash", "infobip"]
"#;
    let mut tern = start_tern("flash", port, admin_port, &rest);
    let (port, admin_port) = (tern.client_port(), tern.admin().0.port());
    let mut session = client(port, "acme", "pw").bind().await;

    // Each to the route that lists the other kind of session first.
    let mut flash = submit_sm("421900100001", "Flash!", RegisteredDelivery::ALWAYS);
    flash.data_coding = DataCoding(0x10);
    submit_id(&session.handle, flash).await;
    let normal = submit_sm("421900200002", "Normal", RegisteredDelivery::ALWAYS);
    submit_id(&session.handle, normal).await;

    let arrived = common::wait_for("both messages at the SMSC", WAIT, || {
        let got = got.lock().expect("lock").clone();
        async move { (got.len() >= 2).then_some(got) }
    })
    .await;
    let at = |text: &[u8]| {
        arrived
            .iter()
            .find(|(_, sm)| sm.short_message.as_bytes() == text)
            .unwrap_or_else(|| panic!("{text:?} never arrived: {arrived:?}"))
    };
    let (account, sm) = at(b"Flash!");
    assert_eq!(account, "tern/NSMS", "flash over the NSMS session");
    // "exactly the same as for normal SMS": Infobip makes it flash.
    assert_eq!(sm.data_coding, DataCoding(0));
    let (account, _) = at(b"Normal");
    assert_eq!(account, "tern/", "a normal message never over NSMS");

    // "Long SMS feature is not supported for Flash notifications."
    let mut long = submit_sm("421900100003", "x".repeat(200), RegisteredDelivery::ALWAYS);
    long.data_coding = DataCoding(0x10);
    let id = submit_id(&session.handle, long).await;
    let receipt = expect_deliver_sm(&mut session, WAIT).await;
    assert_eq!(field(&receipt, "id").as_deref(), Some(id.as_str()));
    assert_eq!(field(&receipt, "stat").as_deref(), Some("REJECTD"));
    assert_eq!(field(&receipt, "err").as_deref(), Some("909"));
    assert_eq!(got.lock().expect("lock").len(), 2, "nothing of it was sent");
    let shown = trace(admin_port, &id).await;
    assert!(
        shown.contains("a flash message must fit one part"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_message_refused_midway_and_retried_later_goes_under_a_new_reference() {
    // One upstream: part 2 refused once, so the message waits for its
    // retry and goes again, whole, to the same upstream.
    let a = refuses_part_two(1).await;
    let (port, admin_port) = (0, 0);
    let rest = upstream("a", "generic", a.port, "")
        + r#"
[[route]]
name = "all"
upstreams = ["a"]
"#;
    let mut tern = start_tern("retried", port, admin_port, &rest);
    let (port, admin_port) = (tern.client_port(), tern.admin().0.port());
    let admin = Admin::at(admin_port);
    let mut session = client(port, "acme", "pw").bind().await;
    let text: String = (0..300)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let id = submit_id(
        &session.handle,
        submit_sm("33612345678", text.as_bytes(), RegisteredDelivery::ALWAYS),
    )
    .await;
    let got = common::wait_for("the second attempt's parts", WAIT, || {
        let got = a.got.lock().expect("lock").clone();
        async move { (got.len() >= 4).then_some(got) }
    })
    .await;
    let octets: Vec<Vec<u8>> = got
        .iter()
        .map(|sm| sm.short_message.as_bytes().to_vec())
        .collect();
    let (first, _) = udh8(&octets[0]).expect("UDH");
    let (second, whole) = reassemble(&octets[2..4]);
    assert_eq!(whole, text.as_bytes(), "every part again");
    assert_ne!(first.0, second, "a new reference for the retry");
    let record = admin
        .until(&format!("/api/messages/{id}"), WAIT, "submitted", |m| {
            m["state"] == "submitted"
        })
        .await;
    let parts = record["parts"].as_array().cloned().unwrap_or_default();
    let ids: Vec<&str> = parts
        .iter()
        .filter_map(|p| p["upstream_id"].as_str())
        .collect();
    assert!(ids.is_empty() || ids == ["A3", "A4"], "{record:#}");
    // The first attempt's part 1 failing decides nothing.
    let a_session = a.session.lock().expect("lock").clone().expect("bound");
    let resp = a_session
        .request(Body::DeliverSm(undeliv("A1")))
        .await
        .expect("tern answers");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    assert!(
        next_deliver_sm(&mut session, Duration::from_secs(1))
            .await
            .is_none(),
        "no receipt for a part of an attempt given up"
    );
}
