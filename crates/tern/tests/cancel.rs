//! cancel_sm and replace_sm end to end, on the real binary over real
//! sockets: a message still waiting in Tern's queue can be cancelled (it
//! ends DELETED and never reaches the upstream) or replaced (the upstream
//! gets the new text under the same id); one already sent, or another
//! client's, cannot. The upstream is a bare SMSC built here from the
//! session engine: it records every text it is given and sends a DELIVRD
//! receipt for each.

use tern_testkit as common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    accept_submit, alphanumeric, bare_smsc, client, expect_deliver_sm, international, next_submit,
    query_sm, receipted_id, submit_id, wait_until, Admin, BareSmsc, Daemon,
};
use serde_json::Value;
use tern_codec::pdu::{CancelSm, DeliverSm, ReplaceSm, SubmitSm};
use tern_codec::{
    Body, COctetString, CommandStatus, EsmClass, MessageState, RegisteredDelivery, ShortMessage,
    TimeString, Tlv,
};
use tern_session::esme::UpstreamSession;
use tern_session::smsc::{BoundSession, SmscConfig};

/// The texts the upstream was given, in order.
type Received = Arc<Mutex<Vec<String>>>;

/// Answers every submit with a new id and a DELIVRD receipt for it.
async fn upstream(mut bound: BoundSession, received: Received) {
    let mut next = 1u32;
    while let Some((sm, responder)) = next_submit(&mut bound.requests).await {
        let text = String::from_utf8_lossy(sm.text_octets()).into_owned();
        received.lock().expect("lock").push(text);
        let id = format!("up{next}");
        next += 1;
        accept_submit(responder, &id).await;
        let handle = bound.handle.clone();
        tokio::spawn(async move {
            let text = format!(
                "id:{id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011200 stat:DELIVRD err:000 text:"
            );
            let mut receipt = DeliverSm {
                esm_class: EsmClass::DELIVERY_RECEIPT,
                short_message: ShortMessage::new(text.into_bytes()).expect("fits"),
                ..DeliverSm::default()
            };
            receipt
                .tlvs
                .push(Tlv::receipted_message_id(id.as_bytes()).expect("short"));
            receipt
                .tlvs
                .push(Tlv::MessageState(MessageState::DELIVERED));
            let _ = handle.request(Body::DeliverSm(receipt)).await;
        });
    }
}

struct Setup {
    _daemon: Daemon,
    port: u16,
    admin: Admin,
    received: Received,
    _stop: tokio_util::sync::DropGuard,
}

/// Tern with the bare upstream behind one route, and two clients.
async fn setup(name: &str) -> Setup {
    let BareSmsc {
        port: raw_port,
        mut sessions,
        stop,
    } = bare_smsc(SmscConfig::default()).await;
    let received = Received::default();
    {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(bound) = sessions.recv().await {
                tokio::spawn(upstream(bound, received.clone()));
            }
        });
    }

    let (port, admin) = (0, 0);
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{admin}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[client]]
system_id = "beta"
passwords = ["pw"]
[[upstream]]
name = "raw"
host = "127.0.0.1"
port = {raw_port}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["raw"]
"#
    );
    let mut daemon = Daemon::start(&format!("cancel-{name}"), &config);
    Setup {
        port: daemon.client_port(),
        admin: daemon.admin(),
        _daemon: daemon,
        received,
        _stop: stop,
    }
}

async fn bind(port: u16, system_id: &str) -> UpstreamSession {
    client(port, system_id, "pw").bind().await
}

/// A submit from "Acme" to `to`, at `schedule` (SMPP time; "" for now).
fn submit_sm(to: &str, text: &str, schedule: &str, receipt: bool) -> SubmitSm {
    let registered_delivery = if receipt {
        RegisteredDelivery::ALWAYS
    } else {
        RegisteredDelivery::NONE
    };
    SubmitSm {
        schedule_delivery_time: TimeString::new(schedule.as_bytes().to_vec()).expect("time"),
        ..common::submit_sm(to, text, registered_delivery)
    }
}

/// One minute from now, and one second, as SMPP relative times.
const IN_A_MINUTE: &str = "000000000100000R";
const IN_A_SECOND: &str = "000000000001000R";
const IN_TWO_SECONDS: &str = "000000000002000R";

async fn submit(client: &UpstreamSession, sm: SubmitSm) -> String {
    submit_id(&client.handle, sm).await
}

async fn cancel_id(client: &UpstreamSession, id: &str) -> CommandStatus {
    let cancel = CancelSm {
        message_id: COctetString::try_from(id).expect("short"),
        ..CancelSm::default()
    };
    client
        .handle
        .request(Body::CancelSm(cancel))
        .await
        .expect("answered")
        .command_status
}

fn replace_sm(id: &str, text: &str, schedule: &str) -> ReplaceSm {
    ReplaceSm {
        message_id: COctetString::try_from(id).expect("short"),
        schedule_delivery_time: TimeString::new(schedule.as_bytes().to_vec()).expect("time"),
        registered_delivery: RegisteredDelivery::ALWAYS,
        short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..ReplaceSm::default()
    }
}

async fn replace(client: &UpstreamSession, replace: ReplaceSm) -> CommandStatus {
    client
        .handle
        .request(Body::ReplaceSm(replace))
        .await
        .expect("answered")
        .command_status
}

async fn query(client: &UpstreamSession, id: &str) -> MessageState {
    query_sm(&client.handle, id)
        .await
        .1
        .expect("a query_sm_resp")
}

/// The next receipt for the client: (receipted id, stat), acknowledged.
async fn next_receipt(client: &mut UpstreamSession) -> (String, String) {
    let sm = expect_deliver_sm(client, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned();
    let stat = text
        .split_whitespace()
        .find_map(|w| w.strip_prefix("stat:"))
        .unwrap_or("-")
        .to_owned();
    (receipted_id(&sm), stat)
}

/// Waits until the upstream was given `text`.
async fn upstream_gets(received: &Received, text: &str) {
    wait_until(
        &format!("the upstream getting {text:?}"),
        Duration::from_secs(10),
        || async { upstream_got(received, text) },
    )
    .await;
}

fn upstream_got(received: &Received, text: &str) -> bool {
    received.lock().expect("lock").iter().any(|t| t == text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_message_is_cancelled_and_never_sent() {
    let setup = setup("scheduled").await;
    let mut acme = bind(setup.port, "acme").await;
    let beta = bind(setup.port, "beta").await;

    let id = submit(
        &acme,
        submit_sm("34600000001", "cancel me", IN_A_MINUTE, true),
    )
    .await;
    assert_eq!(query(&acme, &id).await, MessageState::ENROUTE);
    // Not beta's to cancel or replace; a malformed id is not an id at all.
    assert_eq!(cancel_id(&beta, &id).await, CommandStatus::CancelFailed);
    assert_eq!(
        replace(&beta, replace_sm(&id, "hijack", "")).await,
        CommandStatus::ReplaceFailed
    );
    assert_eq!(
        cancel_id(&acme, "not-an-id").await,
        CommandStatus::InvalidMessageId
    );
    assert_eq!(
        cancel_id(&acme, "00000000ffffffff").await,
        CommandStatus::CancelFailed
    );

    assert_eq!(cancel_id(&acme, &id).await, CommandStatus::Ok);
    assert_eq!(
        next_receipt(&mut acme).await,
        (id.clone(), "DELETED".to_owned())
    );
    assert_eq!(query(&acme, &id).await, MessageState::DELETED);
    assert_eq!(cancel_id(&acme, &id).await, CommandStatus::CancelFailed);
    let stored = setup.admin.get(&format!("/api/messages/{id}")).await;
    assert_eq!(stored["state"], Value::from("final"));
    assert_eq!(stored["outcome"]["stat"], Value::from("DELETED"));
    assert_eq!(stored["attempts"], Value::Array(Vec::new()), "never sent");

    // One due in two seconds, cancelled now: its time passes, it stays unsent,
    // while a message submitted after it goes through.
    let soon = submit(
        &acme,
        submit_sm("34600000001", "cancel me soon", IN_TWO_SECONDS, false),
    )
    .await;
    assert_eq!(cancel_id(&acme, &soon).await, CommandStatus::Ok);
    submit(&acme, submit_sm("34600000001", "control", "", false)).await;
    upstream_gets(&setup.received, "control").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!upstream_got(&setup.received, "cancel me soon"));
    assert!(!upstream_got(&setup.received, "cancel me"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sent_messages_stay_and_queued_ones_are_replaced_or_cancelled_by_address() {
    let setup = setup("replace").await;
    let mut acme = bind(setup.port, "acme").await;

    // Delivered: too late for either.
    let sent = submit(&acme, submit_sm("34600000001", "sent now", "", true)).await;
    assert_eq!(
        next_receipt(&mut acme).await,
        (sent.clone(), "DELIVRD".to_owned())
    );
    assert_eq!(cancel_id(&acme, &sent).await, CommandStatus::CancelFailed);
    assert_eq!(
        replace(&acme, replace_sm(&sent, "too late", "")).await,
        CommandStatus::ReplaceFailed
    );

    // Replaced while scheduled: the new text goes, at the new time, same id.
    let id = submit(
        &acme,
        submit_sm("34600000001", "old text", IN_A_MINUTE, false),
    )
    .await;
    assert_eq!(
        replace(&acme, replace_sm(&id, "new text", IN_A_SECOND)).await,
        CommandStatus::Ok
    );
    upstream_gets(&setup.received, "new text").await;
    assert!(!upstream_got(&setup.received, "old text"));
    // The replace asked for a receipt; it carries the original id.
    assert_eq!(next_receipt(&mut acme).await, (id, "DELIVRD".to_owned()));

    // Cancel by addresses: every waiting message from Acme to that number.
    let mut to_two = Vec::new();
    for text in ["a", "b"] {
        let sm = submit_sm("34600000002", text, IN_A_MINUTE, false);
        to_two.push(submit(&acme, sm).await);
    }
    let to_three = submit(&acme, submit_sm("34600000003", "c", IN_A_MINUTE, false)).await;
    let by_address = CancelSm {
        source: alphanumeric("Acme"),
        destination: international("34600000002"),
        ..CancelSm::default()
    };
    let status = |resp: Result<tern_codec::Pdu, _>| resp.expect("answered").command_status;
    assert_eq!(
        status(
            acme.handle
                .request(Body::CancelSm(by_address.clone()))
                .await
        ),
        CommandStatus::Ok
    );
    for id in &to_two {
        assert_eq!(query(&acme, id).await, MessageState::DELETED);
    }
    assert_eq!(query(&acme, &to_three).await, MessageState::ENROUTE);
    assert_eq!(
        status(acme.handle.request(Body::CancelSm(by_address)).await),
        CommandStatus::CancelFailed,
        "nothing left to cancel"
    );
    let no_destination = CancelSm {
        source: alphanumeric("Acme"),
        ..CancelSm::default()
    };
    assert_eq!(
        status(acme.handle.request(Body::CancelSm(no_destination)).await),
        CommandStatus::InvalidDestinationAddress
    );
}
