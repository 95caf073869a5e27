//! `id_format` per client, end to end on the real binary: a client with
//! `id_format = "decimal"` is given its ids in decimal (submit_sm_resp,
//! data_sm_resp), gets them back in that form (the receipt's
//! receipted_message_id and its text's "id:", query_sm_resp), and may name
//! a message in either form (query_sm, cancel_sm, replace_sm); a hex client
//! of the same daemon still sees hex. The upstream is the sim crate's
//! simulator, which receipts every message DELIVRD. The node id is 7, so
//! decimal ids have 16 digits, as many as hex ids: a hex client's query
//! with a decimal id is then read by both forms, and the lookup decides.

use tern_testkit as common;

use std::time::Duration;

use common::{
    client, expect_deliver_sm, query_sm, receipted_id, submit_id, wait_until, Admin, Daemon,
};
use tern_codec::pdu::{CancelSm, DataSm, ReplaceSm, SmResp};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, MessageState, Npi, RegisteredDelivery,
    ShortMessage, TimeString, Tlv, Tlvs, Ton,
};
use tern_session::SessionHandle;
use tern_sim::smsc::{SimConfig, Simulator};

/// One minute from now, as an SMPP relative time: a message scheduled so
/// still waits in Tern's queue, where it may be cancelled or replaced.
const IN_A_MINUTE: &str = "000000000100000R";

/// The hex form of a decimal id (what a hex client would have been given).
fn hex_of(decimal: &str) -> String {
    let value: u64 = decimal.parse().expect("a decimal id");
    format!("{value:016x}")
}

/// The decimal form of a hex id.
fn decimal_of(hex: &str) -> String {
    u64::from_str_radix(hex, 16).expect("a hex id").to_string()
}

fn is_decimal_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn is_hex_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// query_sm for `id`: the status and the query_sm_resp's message_id and
/// state.
async fn query(
    handle: &SessionHandle,
    id: &str,
) -> (CommandStatus, Option<(String, MessageState)>) {
    common::query_sm_answer(handle, id).await
}

async fn cancel(handle: &SessionHandle, id: &str) -> CommandStatus {
    let cancel = CancelSm {
        message_id: COctetString::try_from(id).expect("short"),
        ..CancelSm::default()
    };
    handle
        .request(Body::CancelSm(cancel))
        .await
        .expect("answered")
        .command_status
}

async fn replace(handle: &SessionHandle, id: &str, text: &str) -> CommandStatus {
    let replace = ReplaceSm {
        message_id: COctetString::try_from(id).expect("short"),
        short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..ReplaceSm::default()
    };
    handle
        .request(Body::ReplaceSm(replace))
        .await
        .expect("answered")
        .command_status
}

/// A submit that waits a minute in Tern's queue, without a receipt.
fn scheduled(to: &str, text: &str) -> tern_codec::pdu::SubmitSm {
    tern_codec::pdu::SubmitSm {
        schedule_delivery_time: TimeString::new(IN_A_MINUTE.as_bytes().to_vec()).expect("time"),
        ..common::submit_sm(to, text, RegisteredDelivery::NONE)
    }
}

fn data_sm(to: &str, text: &str) -> DataSm {
    let mut tlvs = Tlvs::default();
    tlvs.push(Tlv::message_payload(text.as_bytes().to_vec()).expect("fits"));
    DataSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            COctetString::try_from("Acme").expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            COctetString::try_from(to).expect("short"),
        ),
        tlvs,
        ..DataSm::default()
    }
}

/// A daemon on node 7 (so decimal ids have 16 digits) with `clients` and
/// one route to the simulator at `sim_port`.
fn config(port: u16, admin_port: u16, sim_port: u16, clients: &str) -> String {
    format!(
        r#"
[node]
id = 7
[[listener]]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{admin_port}"
[storage]
path = "data"
{clients}
[[upstream]]
name = "sim"
host = "127.0.0.1"
port = {sim_port}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["sim"]
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decimal_client_gets_decimal_ids_everywhere_and_a_hex_client_hex() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let clients = r#"
[[client]]
system_id = "dec"
passwords = ["pw"]
id_format = "decimal"
[[client]]
system_id = "hex"
passwords = ["pw"]
"#;
    let config = config(0, 0, sim.addr().port(), clients);
    let mut daemon = Daemon::start("id-format", &config);
    let (port, admin_port) = (daemon.client_port(), daemon.admin().0.port());
    wait_until(
        "tern binds to the simulator",
        Duration::from_secs(10),
        || async { !sim.sessions("tern").is_empty() },
    )
    .await;
    let mut dec = client(port, "dec", "pw").bind().await;
    let mut hex = client(port, "hex", "pw").bind().await;
    let within = Duration::from_secs(10);

    // The decimal client: a decimal id, and the same id in its receipt.
    let id = submit_id(
        &dec.handle,
        common::submit_sm("34600000001", "decimal", RegisteredDelivery::ALWAYS),
    )
    .await;
    assert!(is_decimal_id(&id), "submit_sm_resp id {id:?} is decimal");
    let receipt = expect_deliver_sm(&mut dec, within).await;
    assert_eq!(receipted_id(&receipt), id, "receipted_message_id");
    let text = String::from_utf8_lossy(receipt.short_message.as_bytes()).into_owned();
    assert!(
        text.starts_with(&format!("id:{id} ")),
        "the receipt text names the decimal id: {text:?}"
    );
    // query_sm in either form; the answer in the client's.
    let (status, answer) = query(&dec.handle, &id).await;
    assert_eq!(status, CommandStatus::Ok);
    assert_eq!(answer, Some((id.clone(), MessageState::DELIVERED)));
    let (status, answer) = query(&dec.handle, &hex_of(&id)).await;
    assert_eq!(status, CommandStatus::Ok, "query_sm with the hex form");
    assert_eq!(answer, Some((id.clone(), MessageState::DELIVERED)));

    // The hex client of the same daemon: hex, as before.
    let hex_id = submit_id(
        &hex.handle,
        common::submit_sm("34600000002", "hex", RegisteredDelivery::ALWAYS),
    )
    .await;
    assert!(is_hex_id(&hex_id), "submit_sm_resp id {hex_id:?} is hex");
    let receipt = expect_deliver_sm(&mut hex, within).await;
    assert_eq!(receipted_id(&receipt), hex_id);
    let text = String::from_utf8_lossy(receipt.short_message.as_bytes()).into_owned();
    assert!(text.starts_with(&format!("id:{hex_id} ")), "{text:?}");
    // Its decimal form has 16 digits (node 7), so it reads as hex too, as
    // another id: the lookup finds the client's message under the decimal
    // reading.
    let hex_as_decimal = decimal_of(&hex_id);
    assert_eq!(hex_as_decimal.len(), 16);
    assert_eq!(
        query_sm(&hex.handle, &hex_as_decimal).await,
        (CommandStatus::Ok, Some(MessageState::DELIVERED)),
        "a hex client's query_sm with the decimal form"
    );
    let (_, answer) = query(&hex.handle, &hex_as_decimal).await;
    assert_eq!(answer.map(|(id, _)| id), Some(hex_id.clone()));
    // Ids are still the client's own: neither form names another's message.
    assert_eq!(
        query_sm(&hex.handle, &id).await.0,
        CommandStatus::QueryFailed
    );
    assert_eq!(
        query_sm(&dec.handle, &hex_id).await.0,
        CommandStatus::QueryFailed
    );

    // data_sm_resp in the client's form too.
    let resp = dec
        .handle
        .request(Body::DataSm(data_sm("34600000003", "data")))
        .await
        .expect("answered");
    let Body::DataSmResp(SmResp {
        id: Some(data_id), ..
    }) = &resp.body
    else {
        panic!("data_sm_resp with an id: {resp:?}")
    };
    assert!(is_decimal_id(&data_id.to_string()), "{data_id:?}");

    // cancel_sm and replace_sm take either form.
    let waiting = submit_id(&dec.handle, scheduled("34600000004", "first")).await;
    assert_eq!(
        replace(&dec.handle, &hex_of(&waiting), "second").await,
        CommandStatus::Ok,
        "replace_sm with the hex form"
    );
    assert_eq!(
        replace(&dec.handle, &waiting, "third").await,
        CommandStatus::Ok,
        "replace_sm with the decimal form"
    );
    assert_eq!(
        cancel(&dec.handle, &hex_of(&waiting)).await,
        CommandStatus::Ok,
        "cancel_sm with the hex form"
    );
    // A receipt Tern makes itself (here: cancelled) uses the client's form.
    let other = submit_id(
        &dec.handle,
        tern_codec::pdu::SubmitSm {
            registered_delivery: RegisteredDelivery::ALWAYS,
            ..scheduled("34600000005", "other")
        },
    )
    .await;
    assert_eq!(cancel(&dec.handle, &other).await, CommandStatus::Ok);
    let receipt = expect_deliver_sm(&mut dec, within).await;
    assert_eq!(receipted_id(&receipt), other, "the cancel's receipt");
    assert_eq!(
        cancel(&dec.handle, "not-an-id").await,
        CommandStatus::InvalidMessageId
    );

    // The admin API (and so `tern trace`) takes the decimal form, and says
    // which form the client was given.
    let admin = Admin::at(admin_port);
    let message = admin.get(&format!("/api/messages/{id}")).await;
    assert_eq!(message["id"], hex_of(&id).as_str(), "{message}");
    assert_eq!(message["client_id"], id.as_str(), "{message}");
    let trace = std::process::Command::new(common::TERN)
        .args(["trace", &id, "--admin", &format!("127.0.0.1:{admin_port}")])
        .output()
        .expect("tern trace runs");
    let out = String::from_utf8_lossy(&trace.stdout);
    assert!(
        trace.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&trace.stderr)
    );
    assert!(out.contains(&format!("client's id   {id}")), "{out}");
}

/// The form a client was given is the form it gets back, even after a
/// reload changed its account's `id_format`: the record keeps the form, so
/// the receipt and query_sm answer of a message accepted before the reload
/// name it as the client was told, while new messages get the new form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_of_id_format_leaves_ids_already_given_in_their_form() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    // Port 0 in the file, also when rewritten: the listeners stay as bound.
    let with_format = |format: &str| {
        let client = format!(
            "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\nid_format = \"{format}\"\n"
        );
        config(0, 0, sim.addr().port(), &client)
    };
    let mut daemon = Daemon::start("id-format-reload", &with_format("decimal"));
    let (port, admin_port) = (daemon.client_port(), daemon.admin().0.port());
    let mut acme = client(port, "acme", "pw").bind().await;
    let within = Duration::from_secs(10);

    // Waits in Tern's queue a minute, and asks for a receipt.
    let before = submit_id(
        &acme.handle,
        tern_codec::pdu::SubmitSm {
            registered_delivery: RegisteredDelivery::ALWAYS,
            ..scheduled("34600000006", "before")
        },
    )
    .await;
    assert!(is_decimal_id(&before), "{before:?}");

    std::fs::write(daemon.config_path(), with_format("hex")).expect("config rewritten");
    daemon.signal("HUP");
    Admin::at(admin_port)
        .until("/api/reload", within, "the reload applied", |status| {
            status["generation"].as_u64() == Some(2)
        })
        .await;

    // New messages: the new form.
    let after = submit_id(
        &acme.handle,
        common::submit_sm("34600000007", "after", RegisteredDelivery::NONE),
    )
    .await;
    assert!(is_hex_id(&after), "after the reload: {after:?}");
    // The message accepted before: answered in the form it was given, by
    // either form.
    for asked in [before.clone(), hex_of(&before)] {
        let (status, answer) = query(&acme.handle, &asked).await;
        assert_eq!(status, CommandStatus::Ok, "query_sm {asked}");
        assert_eq!(answer.map(|(id, _)| id), Some(before.clone()), "{asked}");
    }
    // Its receipt (cancelled) names it as the client was told.
    assert_eq!(cancel(&acme.handle, &before).await, CommandStatus::Ok);
    let receipt = expect_deliver_sm(&mut acme, within).await;
    assert_eq!(receipted_id(&receipt), before, "the receipt's id");
    let text = String::from_utf8_lossy(receipt.short_message.as_bytes()).into_owned();
    assert!(text.starts_with(&format!("id:{before} ")), "{text:?}");
}
