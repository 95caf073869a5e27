//! data_sm from a client, end to end: the real `tern` binary takes it as
//! the submit_sm it stands for (stored, routed, sent to a simulator
//! upstream with its text, receipted with Tern's id) and answers it with
//! data_sm_resp; what a submit_sm cannot carry is refused with a precise
//! status. (submit_multi: see `submit_multi.rs`.)

use tern_testkit as common;

use std::time::Duration;

use common::{client, international, next_receipt, wait_until, Daemon};
use tern_codec::pdu::{DataSm, SmResp, SubmitSm};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, Npi, RegisteredDelivery, Tlv, Tlvs, Ton,
};
use tern_sim::smsc::{Recorded, SimConfig, Simulator};

fn data_sm(destination: &str, text: &str) -> DataSm {
    let mut tlvs = Tlvs::default();
    tlvs.push(Tlv::message_payload(text.as_bytes().to_vec()).expect("fits"));
    DataSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            COctetString::new("ACME").expect("fits"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            COctetString::new(destination.to_owned()).expect("fits 64"),
        ),
        registered_delivery: RegisteredDelivery::ALWAYS,
        tlvs,
        ..DataSm::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_sm_is_sent_and_receipted_like_a_submit_sm() {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.start_recording();
    let port = 0;
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{port}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "sim"
host = "127.0.0.1"
port = {sim_port}
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = ["sim"]
"#,
        sim_port = sim.addr().port(),
    );
    let mut daemon = Daemon::start("data-sm", &config);
    let port = daemon.client_port();
    wait_until(
        "tern binds to the simulator",
        Duration::from_secs(10),
        || async { !sim.sessions("tern").is_empty() },
    )
    .await;
    let mut session = client(port, "acme", "pw").bind().await;

    let text = "a long-form text that came in message_payload";
    let resp = session
        .handle
        .request(Body::DataSm(data_sm("34600000001", text)))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    let Body::DataSmResp(SmResp { id: Some(id), .. }) = &resp.body else {
        panic!("a data_sm is answered with data_sm_resp and an id: {resp:?}");
    };
    let id = id.to_string();
    assert_eq!(
        next_receipt(&mut session, Duration::from_secs(10)).await,
        id,
        "the receipt carries the id data_sm_resp gave"
    );
    let sent: Vec<Vec<u8>> = sim
        .recorded()
        .into_iter()
        .filter_map(|entry| match entry {
            Recorded::Submit { text, .. } => Some(text),
            Recorded::ReceiptAcked { .. } => None,
        })
        .collect();
    assert_eq!(
        sent,
        vec![text.as_bytes().to_vec()],
        "the upstream got the text once"
    );

    // A 21-digit destination fits data_sm (64) but not submit_sm (20).
    let resp = session
        .handle
        .request(Body::DataSm(data_sm(&"3".repeat(21), "too long")))
        .await
        .expect("answered");
    assert_eq!(
        resp.command_status,
        CommandStatus::InvalidDestinationAddress
    );
    // A destination no route covers: the same answer as for a submit_sm.
    let resp = session
        .handle
        .request(Body::DataSm(data_sm("4915100000000", "no route")))
        .await
        .expect("answered");
    let as_submit = session
        .handle
        .request(Body::SubmitSm(SubmitSm {
            destination: international("4915100000000"),
            ..SubmitSm::default()
        }))
        .await
        .expect("answered");
    assert_ne!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    assert_eq!(resp.command_status, as_submit.command_status);
}
