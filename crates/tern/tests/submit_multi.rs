//! submit_multi from clients, end to end on the real `tern` binary: one id
//! for the submission, one message per accepted destination sent to the
//! sim crate's simulator (receipts on), refused destinations listed in
//! unsuccess_sme with their precise status, one receipt per destination
//! naming the one id with that destination as its source, query_sm and
//! cancel_sm on the id, `tern trace` showing every destination, and
//! distribution lists: refused with ESME_RINVDESTFLAG unless configured,
//! expanded into their members when they are.

use tern_testkit as common;

use std::collections::BTreeSet;
use std::process::{Command, Output};
use std::time::Duration;

use common::{
    alphanumeric, client, expect_deliver_sm, international, query_sm, receipted_id, wait_until,
    Admin, Daemon, Launch, TERN,
};
use serde_json::Value;
use tern_codec::pdu::{CancelSm, DeliverSm, Destination, SubmitMulti, SubmitMultiResp, Unsuccess};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, MessageState, Npi, Pdu, RegisteredDelivery,
    ShortMessage, Ton,
};
use tern_session::esme::UpstreamSession;
use tern_sim::smsc::{Recorded, SimConfig, SimHandle, Simulator};

const WAIT: Duration = Duration::from_secs(15);

/// Tern with one client ("acme", with the distribution list "team") and
/// one upstream at `upstream_port` behind a route for numbers starting 34
/// or 12: a number of 16 digits starting 12 has a route, so only the
/// address check refuses it.
/// Returns it with its client and admin ports.
fn start_tern(label: &str, upstream_port: u16) -> (Daemon, u16, u16) {
    start_tern_with(label, upstream_port, "")
}

/// [`start_tern`] with more configuration text (another upstream, say).
fn start_tern_with(label: &str, upstream_port: u16, more: &str) -> (Daemon, u16, u16) {
    let config = format!(
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
distribution_lists = {{ team = ["34600000011", "+34600000012"] }}
[[upstream]]
name = "sim"
host = "127.0.0.1"
port = {upstream_port}
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34", "12"]
upstreams = ["sim"]
{more}
"#
    );
    let mut daemon = Daemon::start(&format!("submit-multi-{label}"), &config);
    let listening = daemon.listening();
    (daemon, listening.client_port(), listening.admin_port())
}

fn sme(number: &str) -> Destination {
    Destination::Sme(international(number))
}

fn list(name: &str) -> Destination {
    Destination::DistributionList(COctetString::try_from(name).expect("short"))
}

fn multi(destinations: Vec<Destination>, text: &str) -> SubmitMulti {
    SubmitMulti {
        source: alphanumeric("Acme"),
        destinations,
        registered_delivery: RegisteredDelivery::ALWAYS,
        short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..SubmitMulti::default()
    }
}

/// Sends a submit_multi; its response's status and body.
async fn submit_multi(
    client: &UpstreamSession,
    m: SubmitMulti,
) -> (CommandStatus, SubmitMultiResp) {
    let resp: Pdu = client
        .handle
        .request(Body::SubmitMulti(m))
        .await
        .expect("answered");
    let Body::SubmitMultiResp(body) = resp.body else {
        panic!("not a submit_multi_resp: {resp:?}")
    };
    (resp.command_status, body)
}

fn id_of(resp: &SubmitMultiResp) -> String {
    resp.message_id
        .as_ref()
        .and_then(|id| id.to_str())
        .expect("a message id")
        .to_owned()
}

/// A refused destination as unsuccess_sme lists it.
fn refused(address: Address<21>, status: CommandStatus) -> Unsuccess {
    Unsuccess {
        address,
        error_status_code: status,
    }
}

/// The receipt's "id:" field.
fn text_id(receipt: &DeliverSm) -> String {
    String::from_utf8_lossy(receipt.short_message.as_bytes())
        .split_whitespace()
        .find_map(|w| w.strip_prefix("id:"))
        .unwrap_or("-")
        .to_owned()
}

fn stat(receipt: &DeliverSm) -> String {
    String::from_utf8_lossy(receipt.short_message.as_bytes())
        .split_whitespace()
        .find_map(|w| w.strip_prefix("stat:"))
        .unwrap_or("-")
        .to_owned()
}

fn source(receipt: &DeliverSm) -> String {
    String::from_utf8_lossy(receipt.source.addr.as_bytes()).into_owned()
}

/// The destinations the simulator accepted a message for, with `text`.
fn sent_to(sim: &SimHandle, text: &str) -> Vec<String> {
    let mut to: Vec<String> = sim
        .recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Submit {
                text: t,
                destination,
                ..
            } if t == text.as_bytes() => Some(destination),
            _ => None,
        })
        .collect();
    to.sort();
    to
}

/// Runs `tern trace` off the async runtime's threads.
async fn trace(id: &str, admin: u16) -> Output {
    let args = vec![
        id.to_owned(),
        "--admin".to_owned(),
        format!("127.0.0.1:{admin}"),
    ];
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
async fn three_destinations_one_invalid_two_sent_and_two_receipts_with_the_one_id() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.start_recording();
    let (_tern, port, admin) = start_tern("three", sim.addr().port());
    wait_until("tern binds to the simulator", WAIT, || async {
        !sim.sessions("tern").is_empty()
    })
    .await;
    let mut acme = client(port, "acme", "pw").bind().await;

    let (status, resp) = submit_multi(
        &acme,
        multi(
            vec![sme("34600000001"), sme("12ab"), sme("34600000002")],
            "to three",
        ),
    )
    .await;
    assert_eq!(status, CommandStatus::Ok, "{resp:?}");
    assert_eq!(
        resp.unsuccess,
        vec![refused(
            international("12ab"),
            CommandStatus::InvalidDestinationAddress
        )],
        "only the invalid one is refused, with ESME_RINVDSTADR"
    );
    let id = id_of(&resp);
    assert_eq!(id.len(), 16, "one Tern id, as submit_sm gets: {id}");

    // Exactly two messages, to the two valid destinations.
    wait_until("two messages reach the simulator", WAIT, || async {
        sent_to(&sim, "to three").len() >= 2
    })
    .await;
    let mut receipts = Vec::new();
    for _ in 0..2 {
        receipts.push(expect_deliver_sm(&mut acme, WAIT).await);
    }
    assert_eq!(sent_to(&sim, "to three"), ["34600000001", "34600000002"]);
    // Two receipts, each naming the one id, one per destination.
    for receipt in &receipts {
        assert_eq!(receipted_id(receipt), id, "receipted_message_id");
        assert_eq!(text_id(receipt), id, "the receipt text's id:");
        assert_eq!(stat(receipt), "DELIVRD");
    }
    let sources: BTreeSet<String> = receipts.iter().map(source).collect();
    assert_eq!(
        sources,
        BTreeSet::from(["34600000001".to_owned(), "34600000002".to_owned()]),
        "one receipt per destination, as its source"
    );

    // query_sm on the id: every destination delivered.
    assert_eq!(
        query_sm(&acme.handle, &id).await,
        (CommandStatus::Ok, Some(MessageState::DELIVERED))
    );

    // trace shows both destinations with their own history.
    let out = trace(&id, admin).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("2 destinations")
            && stdout.contains("Destination 1 of 2: 34600000001")
            && stdout.contains("Destination 2 of 2: 34600000002"),
        "{stdout}"
    );
    assert!(
        stdout.matches("DELIVRD err 000").count() >= 2,
        "each destination's outcome: {stdout}"
    );

    // Counted like submits: one submit_multi, two destinations stored, one
    // refused.
    let metrics = Admin::at(admin).text("/metrics").await;
    for line in [
        r#"tern_submit_multis_total{client="acme",status="ESME_ROK"} 1"#,
        r#"tern_submit_multi_destinations_total{client="acme",status="ESME_ROK"} 2"#,
        r#"tern_submit_multi_destinations_total{client="acme",status="ESME_RINVDSTADR"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_lists_are_refused_unless_configured_and_refusals_say_why() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.start_recording();
    let (_tern, port, _) = start_tern("lists", sim.addr().port());
    wait_until("tern binds to the simulator", WAIT, || async {
        !sim.sessions("tern").is_empty()
    })
    .await;
    let acme = client(port, "acme", "pw").bind().await;

    // An unknown list is refused with ESME_RINVDESTFLAG; the configured
    // one goes to its members; a number no route covers gets what a
    // submit_sm to it would; one that is not a number is refused.
    let (status, resp) = submit_multi(
        &acme,
        multi(
            vec![
                list("friends"),
                list("team"),
                sme("4915100000000"),
                sme("1234567890123456"),
            ],
            "to the team",
        ),
    )
    .await;
    assert_eq!(status, CommandStatus::Ok, "{resp:?}");
    let name = Address::new(
        Ton::UNKNOWN,
        Npi::UNKNOWN,
        COctetString::try_from("friends").expect("short"),
    );
    assert_eq!(
        resp.unsuccess,
        vec![
            refused(name, CommandStatus::InvalidDestinationFlag),
            refused(
                international("4915100000000"),
                CommandStatus::InvalidDestinationAddress
            ),
            // Routed, but not a number any upstream could carry (E.164
            // has at most 15 digits).
            refused(
                international("1234567890123456"),
                CommandStatus::InvalidDestinationAddress
            ),
        ]
    );
    wait_until("the list's members reach the simulator", WAIT, || async {
        sent_to(&sim, "to the team").len() >= 2
    })
    .await;
    assert_eq!(sent_to(&sim, "to the team"), ["34600000011", "34600000012"]);

    // Nothing accepted: the status all share, else ESME_RSUBMITFAIL, with
    // each destination still listed.
    let (status, resp) = submit_multi(&acme, multi(vec![sme("12ab"), sme("x")], "none")).await;
    assert_eq!(status, CommandStatus::InvalidDestinationAddress);
    assert_eq!(resp.unsuccess.len(), 2);
    let (status, resp) =
        submit_multi(&acme, multi(vec![sme("12ab"), list("friends")], "none")).await;
    assert_eq!(status, CommandStatus::SubmitFailed);
    assert_eq!(resp.unsuccess.len(), 2);
    // More destinations than SMPP allows.
    let (status, _) = submit_multi(
        &acme,
        multi((0..255).map(|_| sme("34600000001")).collect(), "too many"),
    )
    .await;
    assert_eq!(status, CommandStatus::InvalidNumberOfDestinations);
    // None at all (number_of_dests 0): the same status.
    let resp = acme
        .handle
        .request(Body::SubmitMulti(multi(Vec::new(), "to nobody")))
        .await
        .expect("answered");
    assert_eq!(
        resp.command_status,
        CommandStatus::InvalidNumberOfDestinations,
        "{resp:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(sent_to(&sim, "none").is_empty() && sent_to(&sim, "too many").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_sm_on_the_id_cancels_every_held_destination() {
    // The route's upstream is down: it is at port 0, where no connection
    // is ever accepted, so the messages wait in Tern's queue. Another
    // upstream, which no route uses, is bound: with none bound at all the
    // dispatcher would not claim them (a long outage's pause), and this
    // test is about messages that were tried, found no upstream, and wait
    // for a retry.
    let down = 0;
    let bystander = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let other = format!(
        "[[upstream]]\nname = \"bystander\"\nhost = \"127.0.0.1\"\nport = {}\n\
         system_id = \"tern\"\npassword = \"x\"\n",
        bystander.addr().port()
    );
    let (mut tern, port, admin) = start_tern_with("cancel", down, &other);
    let acme = client(port, "acme", "pw").bind().await;

    let (status, resp) = submit_multi(
        &acme,
        multi(vec![sme("34600000001"), sme("34600000002")], "held"),
    )
    .await;
    assert_eq!(status, CommandStatus::Ok, "{resp:?}");
    assert!(resp.unsuccess.is_empty());
    let id = id_of(&resp);
    assert_eq!(
        query_sm(&acme.handle, &id).await,
        (CommandStatus::Ok, Some(MessageState::ENROUTE))
    );

    // Held: each destination was tried, found no upstream, and waits for
    // its retry (a claim in progress is not cancellable, so wait for this).
    Admin::at(admin)
        .until(
            &format!("/api/messages/{id}"),
            WAIT,
            "both destinations held for a retry",
            |m| {
                m["destinations"].as_array().is_some_and(|d| {
                    d.len() == 2
                        && d.iter().all(|d| {
                            d["state"] == "queued"
                                && d["attempts"].as_array().is_some_and(|a| !a.is_empty())
                        })
                })
            },
        )
        .await;
    // The destinations' tie to the id survives a restart.
    tern.signal("TERM");
    tern.restart(&Launch::new().silent());
    drop(acme);
    let mut acme = client(port, "acme", "pw").bind().await;
    assert_eq!(
        query_sm(&acme.handle, &id).await,
        (CommandStatus::Ok, Some(MessageState::ENROUTE))
    );
    let cancel = CancelSm {
        message_id: COctetString::try_from(id.as_str()).expect("short"),
        ..CancelSm::default()
    };
    // With a destination: only that one of the submission's.
    let first_only = CancelSm {
        destination: international("34600000001"),
        ..cancel.clone()
    };
    let status = |resp: Result<Pdu, _>| resp.expect("answered").command_status;
    assert_eq!(
        status(acme.handle.request(Body::CancelSm(first_only)).await),
        CommandStatus::Ok
    );
    let receipt = expect_deliver_sm(&mut acme, WAIT).await;
    assert_eq!(
        (receipted_id(&receipt), stat(&receipt), source(&receipt)),
        (id.clone(), "DELETED".to_owned(), "34600000001".to_owned())
    );
    // One destination still waits: the submission is not final.
    assert_eq!(
        query_sm(&acme.handle, &id).await,
        (CommandStatus::Ok, Some(MessageState::ENROUTE))
    );
    // The id alone: every destination not yet sent (the other one).
    assert_eq!(
        status(acme.handle.request(Body::CancelSm(cancel.clone())).await),
        CommandStatus::Ok
    );
    let receipt = expect_deliver_sm(&mut acme, WAIT).await;
    assert_eq!(
        (receipted_id(&receipt), stat(&receipt), source(&receipt)),
        (id.clone(), "DELETED".to_owned(), "34600000002".to_owned())
    );
    assert_eq!(
        query_sm(&acme.handle, &id).await,
        (CommandStatus::Ok, Some(MessageState::DELETED))
    );
    assert_eq!(
        status(acme.handle.request(Body::CancelSm(cancel)).await),
        CommandStatus::CancelFailed,
        "nothing left"
    );

    // The admin API (and so `tern trace`) lists both destinations.
    let stored = Admin::at(admin).get(&format!("/api/messages/{id}")).await;
    let destinations: Vec<&Value> = stored["destinations"]
        .as_array()
        .expect("destinations")
        .iter()
        .collect();
    assert_eq!(destinations.len(), 2);
    for (d, to) in destinations.iter().zip(["34600000001", "34600000002"]) {
        assert_eq!(d["destination"], Value::from(to));
        assert_eq!(d["outcome"]["stat"], Value::from("DELETED"));
        assert_eq!(d["submission"], Value::from(id.as_str()));
    }
    // A destination's own id was never given to the client: not queryable.
    let own = destinations[1]["id"].as_str().expect("an id");
    assert_ne!(own, id);
    assert_eq!(
        query_sm(&acme.handle, own).await.0,
        CommandStatus::QueryFailed
    );
}

#[test]
fn a_bad_distribution_list_is_refused_at_its_value() {
    let dir = common::TempDir::new("config-distribution-lists");
    let path = dir.write(
        "lists.toml",
        "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n\
         distribution_lists = { team = [\"34600000001\", \"12ab\"], empty = [] }\n",
    );
    let (code, out, err) = common::check_config(&path, &[]);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:4:47: client.distribution_lists \"team\": member \"12ab\" is not a phone number"),
        format!("{file}:4:56: client.distribution_lists \"empty\": a list needs at least one member"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    let path = dir.write(
        "good.toml",
        "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n\
         distribution_lists = { team = [\"34600000001\", \"+34600000002\"] }\n",
    );
    let (code, out, err) = common::check_config(&path, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("distribution list \"team\" (submit_multi): 2 member(s)"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_transaction_mode_a_destination_its_upstream_refuses_is_listed() {
    let mut upstream = common::bare_smsc(tern_session::smsc::SmscConfig::default()).await;
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[client]]
system_id = "txn"
passwords = ["pw"]
submit_mode = "transaction"
transaction_timeout = "5s"
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
"#,
        upstream_port = upstream.port
    );
    let mut daemon = Daemon::start("submit-multi-transaction", &config);
    let port = daemon.client_port();
    let mut tern = tokio::time::timeout(WAIT, upstream.sessions.recv())
        .await
        .expect("tern binds its upstream")
        .expect("session");
    let txn = client(port, "txn", "pw").bind().await;
    let pending = {
        let handle = txn.handle.clone();
        let m = multi(vec![sme("34600000001"), sme("34600000002")], "txn");
        tokio::spawn(async move { handle.request(Body::SubmitMulti(m)).await })
    };
    // The upstream takes one and refuses the other for good (0x0A: sender
    // not allowed, permanent in the generic profile).
    for _ in 0..2 {
        let (sm, responder) = tokio::time::timeout(WAIT, common::next_submit(&mut tern.requests))
            .await
            .expect("tern forwards each destination")
            .expect("session open");
        if sm.destination.addr.to_str() == Some("34600000002") {
            let _ = responder.reject(CommandStatus::InvalidSourceAddress).await;
        } else {
            common::accept_submit(responder, "up-1").await;
        }
    }
    let resp = tokio::time::timeout(WAIT, pending)
        .await
        .expect("answered in time")
        .expect("task")
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    let Body::SubmitMultiResp(body) = resp.body else {
        panic!("not a submit_multi_resp: {resp:?}")
    };
    assert_eq!(
        body.unsuccess,
        vec![refused(
            international("34600000002"),
            CommandStatus::InvalidSourceAddress
        )]
    );
}
