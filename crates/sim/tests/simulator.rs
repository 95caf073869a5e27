//! The simulator over real loopback sockets, driven by the session
//! engine's ESME side: id formats, misbehaviour knobs, receipts, MO.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use futures::future::join_all;
use tern_codec::pdu::{DeliverSm, SmResp};
use tern_codec::receipt::{Receipt, Stat};
use tern_codec::tlv::NetworkErrorCode;
use tern_codec::{Body, CommandStatus, MessageState, Pdu, RegisteredDelivery};
use tern_session::esme::UpstreamSession;
use tern_session::{BindType, CloseReason, RequestError, SessionHandle};
use tern_sim::{
    Account, Behaviour, IdFormat, ReceiptBehaviour, ReceiptForm, Reject, SimConfig, Simulator,
};

/// Sends `n` submits at once (the session window paces them) and returns
/// every answer.
async fn submit_many(handle: &SessionHandle, n: usize, registered: RegisteredDelivery) -> Vec<Pdu> {
    let requests = (0..n).map(|i| handle.request(submit(&format!("message {i}"), registered)));
    tokio::time::timeout(WAIT, join_all(requests))
        .await
        .expect("answers in time")
        .into_iter()
        .map(|answer| answer.expect("answered"))
        .collect()
}

fn message_id(pdu: &Pdu) -> String {
    match &pdu.body {
        Body::SubmitSmResp(SmResp { id: Some(id), .. }) => id.to_string(),
        other => panic!("not a submit_sm_resp with an id: {other:?}"),
    }
}

fn deliver_sm(pdu: &Pdu) -> &DeliverSm {
    match &pdu.body {
        Body::DeliverSm(sm) => sm,
        other => panic!("not a deliver_sm: {other:?}"),
    }
}

#[tokio::test]
async fn each_id_format_gives_ids_of_its_shape_unique_over_1000_submits() {
    type Shape = fn(&str) -> bool;
    let formats: [(IdFormat, Shape); 3] = [
        (IdFormat::Decimal, |id| {
            !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) && id.parse::<u64>().is_ok()
        }),
        (IdFormat::Hex, |id| {
            !id.is_empty()
                && id.len() <= 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        }),
        (IdFormat::Hex32, |id| {
            id.len() == 32
                && id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }),
    ];
    for (format, shape) in formats {
        let sim = sim_with(format, Behaviour::default()).await;
        let session = bind(&sim, BindType::Transmitter).await;
        let answers = submit_many(&session.handle, 1000, RegisteredDelivery::NONE).await;
        let ids: Vec<String> = answers
            .iter()
            .map(|pdu| {
                assert_eq!(pdu.command_status, CommandStatus::Ok);
                message_id(pdu)
            })
            .collect();
        for id in &ids {
            assert!(shape(id), "{format:?} id `{id}` has the wrong shape");
        }
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), 1000, "{format:?} ids repeat");
        assert_eq!(sim.stats().responses_with(CommandStatus::Ok), 1000);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_reject_fraction_of_one_refuses_every_submit_with_its_status() {
    let status = CommandStatus::from_code(0x45A);
    let sim = sim(Behaviour {
        reject: Some(Reject {
            fraction: 1.0,
            status,
        }),
        ..Behaviour::default()
    })
    .await;
    let session = bind(&sim, BindType::Transceiver).await;
    let answers = submit_many(&session.handle, 100, RegisteredDelivery::ALWAYS).await;
    assert!(answers.iter().all(|pdu| pdu.command_status == status));
    let stats = sim.stats();
    assert_eq!(stats.submits, 100);
    assert_eq!(stats.responses_with(status), 100);
    assert_eq!(stats.responses_total(), 100);
    assert_eq!(stats.receipts_queued, 0, "refused messages get no receipt");

    // A change at run time applies to the next submit.
    sim.update_behaviour(|b| b.reject = None)
        .expect("valid behaviour");
    let answers = submit_many(&session.handle, 1, RegisteredDelivery::NONE).await;
    assert_eq!(answers[0].command_status, CommandStatus::Ok);
}

#[tokio::test]
async fn over_the_throttle_rate_submits_get_throttled() {
    let sim = sim(Behaviour {
        throttle_per_second: Some(50),
        ..Behaviour::default()
    })
    .await;
    let session = bind_with(&sim, BindType::Transmitter, session_config(300)).await;
    let answers = submit_many(&session.handle, 300, RegisteredDelivery::NONE).await;
    let throttled = answers
        .iter()
        .filter(|p| p.command_status == CommandStatus::Throttled)
        .count() as u64;
    let ok = answers
        .iter()
        .filter(|p| p.command_status == CommandStatus::Ok)
        .count() as u64;
    assert_eq!(ok + throttled, 300, "only OK and ESME_RTHROTTLED expected");
    assert!(throttled > 0, "a burst of 300 at 50/s must be throttled");
    assert!(ok >= 1, "the first submits are within the rate");
    let stats = sim.stats();
    assert_eq!(stats.responses_with(CommandStatus::Throttled), throttled);
    assert_eq!(stats.responses_with(CommandStatus::Ok), ok);
}

#[tokio::test]
async fn a_small_window_with_slow_answers_fills_the_queue() {
    let sim = sim(Behaviour {
        window: Some(5),
        response_delay: Duration::from_secs(1),
        ..Behaviour::default()
    })
    .await;
    let session = bind(&sim, BindType::Transmitter).await;
    let answers = submit_many(&session.handle, 20, RegisteredDelivery::NONE).await;
    let ok = answers
        .iter()
        .filter(|p| p.command_status == CommandStatus::Ok)
        .count();
    let full = answers
        .iter()
        .filter(|p| p.command_status == CommandStatus::MessageQueueFull)
        .count();
    assert_eq!((ok, full), (5, 15));
}

#[tokio::test]
async fn a_dropped_submit_is_never_answered() {
    let sim = sim(Behaviour {
        drop_fraction: 1.0,
        ..Behaviour::default()
    })
    .await;
    let mut config = session_config(10);
    config.response_timeout = Duration::from_millis(300);
    let session = bind_with(&sim, BindType::Transmitter, config).await;
    let answer = session
        .handle
        .request(submit("lost", RegisteredDelivery::NONE))
        .await;
    assert!(
        matches!(answer, Err(RequestError::Timeout { .. })),
        "{answer:?}"
    );
    assert_eq!(sim.stats().dropped, 1);
    assert_eq!(sim.stats().responses_total(), 0);
}

#[tokio::test]
async fn the_simulator_unbinds_a_session_after_the_configured_time() {
    let sim = sim(Behaviour {
        unbind_after: Some(Duration::from_millis(300)),
        ..Behaviour::default()
    })
    .await;
    let session = bind(&sim, BindType::Transceiver).await;
    tokio::time::timeout(WAIT, session.handle.closed())
        .await
        .expect("unbound in time");
    assert_eq!(
        session.handle.close_reason(),
        Some(CloseReason::PeerUnbound)
    );
    assert_eq!(sim.stats().unbinds_sent, 1);
}

#[tokio::test]
async fn the_simulator_drops_a_connection_after_the_configured_time_or_on_command() {
    let sim = sim(Behaviour {
        disconnect_after: Some(Duration::from_millis(300)),
        ..Behaviour::default()
    })
    .await;
    let session = bind(&sim, BindType::Transceiver).await;
    tokio::time::timeout(WAIT, session.handle.closed())
        .await
        .expect("dropped in time");
    assert_eq!(session.handle.close_reason(), Some(CloseReason::PeerClosed));

    sim.update_behaviour(|b| b.disconnect_after = None)
        .expect("valid");
    let session = bind(&sim, BindType::Transceiver).await;
    until_sessions(&sim, 1).await;
    assert_eq!(sim.disconnect(Some(ACCOUNT)), 1);
    tokio::time::timeout(WAIT, session.handle.closed())
        .await
        .expect("dropped in time");
    assert_eq!(session.handle.close_reason(), Some(CloseReason::PeerClosed));
    assert_eq!(sim.stats().disconnects, 2);
}

#[tokio::test]
async fn garbage_on_command_breaks_the_clients_framing() {
    let sim = sim(Behaviour::default()).await;
    let session = bind(&sim, BindType::Transceiver).await;
    until_sessions(&sim, 1).await;
    // command_length 0xFFFFFFFF: beyond any maximum, so framing is lost.
    assert_eq!(
        sim.send_garbage(Some(ACCOUNT), b"\xFF\xFF\xFF\xFFgarbage"),
        1
    );
    tokio::time::timeout(WAIT, session.handle.closed())
        .await
        .expect("closed in time");
    assert!(
        matches!(session.handle.close_reason(), Some(CloseReason::Framing(_))),
        "{:?}",
        session.handle.close_reason()
    );
    assert_eq!(sim.stats().garbage_sent, 1);
}

#[tokio::test]
async fn a_receipt_waits_for_a_receiver_to_bind() {
    let sim = sim(Behaviour::default()).await;
    let tx = bind(&sim, BindType::Transmitter).await;
    let answer = tx
        .handle
        .request(submit("hello receipt", RegisteredDelivery::ALWAYS))
        .await
        .expect("answered");
    let id = message_id(&answer);
    until(|| sim.queued(ACCOUNT) == 1).await;
    // Nobody can take it yet: a transmitter does not receive.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(sim.stats().receipts_sent, 0);
    assert_eq!(sim.queued(ACCOUNT), 1);

    let mut rx = bind(&sim, BindType::Receiver).await;
    let request = next_request(&mut rx).await;
    let sm = deliver_sm(&request.pdu);
    assert!(sm.esm_class.is_receipt());
    assert_eq!(sm.tlvs.receipted_message_id(), Some(id.as_bytes()));
    assert_eq!(sm.tlvs.message_state(), Some(&MessageState::DELIVERED));
    let text = Receipt::parse(sm.short_message.as_bytes()).expect("receipt text");
    assert_eq!(text.id, id);
    assert_eq!(text.status(), Some(Stat::Delivered));
    assert_eq!(text.err.as_deref(), Some("000"));
    assert_eq!(text.text.as_deref(), Some("hello receipt"));
    // From the handset back to the submitter.
    assert_eq!(sm.source.addr, "34600000001");
    assert_eq!(sm.destination.addr, "34911111111");
    request
        .responder
        .respond(CommandStatus::Ok, Body::DeliverSmResp(SmResp::default()))
        .await
        .expect("answered");
    until(|| sim.stats().receipts_acked == 1).await;
    assert_eq!(sim.queued(ACCOUNT), 0);
}

/// Submits one message asking for a receipt on `trx`, acknowledges the
/// receipt, and returns the message id and the receipt.
async fn receipt_for(trx: &mut UpstreamSession) -> (String, Pdu) {
    let answer = trx
        .handle
        .request(submit("x", RegisteredDelivery::ALWAYS))
        .await
        .expect("answered");
    let request = next_request(trx).await;
    let pdu = request.pdu.clone();
    request
        .responder
        .respond(CommandStatus::Ok, Body::DeliverSmResp(SmResp::default()))
        .await
        .expect("answered");
    (message_id(&answer), pdu)
}

#[tokio::test]
async fn receipt_forms_and_undelivered_receipts() {
    let sim = sim(Behaviour {
        receipts: ReceiptBehaviour {
            form: ReceiptForm::Text,
            ..ReceiptBehaviour::default()
        },
        ..Behaviour::default()
    })
    .await;
    let mut trx = bind(&sim, BindType::Transceiver).await;
    let (id, pdu) = receipt_for(&mut trx).await;
    let sm = deliver_sm(&pdu);
    assert!(sm.tlvs.is_empty(), "text only: {:?}", sm.tlvs);
    assert_eq!(
        Receipt::parse(sm.short_message.as_bytes())
            .expect("text")
            .id,
        id
    );

    sim.update_behaviour(|b| b.receipts.form = ReceiptForm::Tlvs)
        .expect("valid");
    let (id, pdu) = receipt_for(&mut trx).await;
    let sm = deliver_sm(&pdu);
    assert!(sm.short_message.is_empty(), "TLVs only");
    assert_eq!(sm.tlvs.receipted_message_id(), Some(id.as_bytes()));

    sim.update_behaviour(|b| {
        b.receipts = ReceiptBehaviour {
            form: ReceiptForm::Both,
            undeliverable_fraction: 1.0,
            undeliverable_err: 27,
            ..ReceiptBehaviour::default()
        }
    })
    .expect("valid");
    let (id, pdu) = receipt_for(&mut trx).await;
    let sm = deliver_sm(&pdu);
    let text = Receipt::parse(sm.short_message.as_bytes()).expect("text");
    assert_eq!(text.id, id);
    assert_eq!(text.status(), Some(Stat::Undeliverable));
    assert_eq!(text.err.as_deref(), Some("027"));
    assert_eq!(sm.tlvs.message_state(), Some(&MessageState::UNDELIVERABLE));
    assert_eq!(
        sm.tlvs.network_error_code(),
        Some(&NetworkErrorCode {
            network_type: NetworkErrorCode::GSM,
            error_code: 27
        })
    );
}

#[tokio::test]
async fn a_refused_receipt_is_delivered_again_after_the_redelivery_delay() {
    let sim = Simulator::start(SimConfig {
        redelivery_delay: Duration::from_millis(100),
        ..SimConfig::default()
    })
    .await
    .expect("starts");
    let mut trx = bind(&sim, BindType::Transceiver).await;
    let answer = trx
        .handle
        .request(submit("again", RegisteredDelivery::ALWAYS))
        .await
        .expect("answered");
    let first = next_request(&mut trx).await;
    first
        .responder
        .reject(CommandStatus::SystemError)
        .await
        .expect("answered");
    let second = next_request(&mut trx).await;
    assert_eq!(
        deliver_sm(&second.pdu).tlvs.receipted_message_id(),
        Some(message_id(&answer).as_bytes())
    );
    second
        .responder
        .respond(CommandStatus::Ok, Body::DeliverSmResp(SmResp::default()))
        .await
        .expect("answered");
    until(|| sim.stats().receipts_acked == 1).await;
    let stats = sim.stats();
    assert_eq!((stats.receipts_sent, stats.deliveries_refused), (2, 1));
}

#[tokio::test]
async fn injected_mo_reaches_the_receivers_round_robin() {
    let sim = sim(Behaviour::default()).await;
    let mut a = bind(&sim, BindType::Receiver).await;
    let mut b = bind(&sim, BindType::Transceiver).await;
    let _tx = bind(&sim, BindType::Transmitter).await;
    until_sessions(&sim, 3).await;
    for text in ["hello", "Привет", "three", "four"] {
        sim.inject_mo(ACCOUNT, "34600111222", "12345", text)
            .expect("queued");
    }
    let mut got = Vec::new();
    for turn in 0..4 {
        let session = if turn % 2 == 0 { &mut a } else { &mut b };
        let request = next_request(session).await;
        let sm = deliver_sm(&request.pdu).clone();
        request
            .responder
            .respond(CommandStatus::Ok, Body::DeliverSmResp(SmResp::default()))
            .await
            .expect("answered");
        assert!(!sm.esm_class.is_receipt());
        assert_eq!(sm.source.addr, "34600111222");
        assert_eq!(sm.destination.addr, "12345");
        let encoding = if sm.data_coding == tern_codec::DataCoding::UCS2 {
            tern_codec::text::Encoding::Ucs2
        } else {
            tern_codec::text::Encoding::Gsm7Unpacked
        };
        got.push(tern_codec::text::decode(sm.short_message.as_bytes(), encoding).expect("text"));
    }
    got.sort();
    let mut want = vec!["hello", "Привет", "three", "four"];
    want.sort();
    assert_eq!(got, want);
    until(|| sim.stats().mo_acked == 4).await;
    assert_eq!(sim.stats().mo_injected, 4);
}

#[tokio::test]
async fn configured_accounts_refuse_other_credentials() {
    let sim = Simulator::start(SimConfig {
        accounts: vec![Account {
            system_id: ACCOUNT.to_owned(),
            password: "right".to_owned(),
            max_binds: None,
        }],
        ..SimConfig::default()
    })
    .await
    .expect("starts");
    let stream = tokio::net::TcpStream::connect(sim.addr())
        .await
        .expect("connect");
    let params = tern_session::esme::BindParams::new(ACCOUNT, "wrong").expect("short");
    let err = tern_session::esme::bind(stream, None, &params, session_config(1))
        .await
        .expect_err("refused");
    assert!(
        matches!(
            err,
            tern_session::esme::ConnectError::Refused(CommandStatus::InvalidPassword)
        ),
        "{err}"
    );
    assert_eq!(sim.stats().binds_refused, 1);
    assert_eq!(sim.stats().binds, 0);
}

#[tokio::test]
async fn a_bind_beyond_the_accounts_cap_is_refused_counted_and_the_most_bound_kept() {
    let sim = Simulator::start(SimConfig {
        accounts: vec![Account {
            system_id: ACCOUNT.to_owned(),
            password: "right".to_owned(),
            max_binds: Some(2),
        }],
        ..SimConfig::default()
    })
    .await
    .expect("starts");
    let params = tern_session::esme::BindParams::new(ACCOUNT, "right").expect("short");
    let mut bound = Vec::new();
    for _ in 0..2 {
        let stream = tokio::net::TcpStream::connect(sim.addr())
            .await
            .expect("connect");
        bound.push(
            tern_session::esme::bind(stream, None, &params, session_config(1))
                .await
                .expect("within the cap"),
        );
    }
    let stream = tokio::net::TcpStream::connect(sim.addr())
        .await
        .expect("connect");
    let err = tern_session::esme::bind(stream, None, &params, session_config(1))
        .await
        .expect_err("a third is refused");
    assert!(
        matches!(
            err,
            tern_session::esme::ConnectError::Refused(CommandStatus::BindFailed)
        ),
        "{err}"
    );
    let stats = sim.stats();
    assert_eq!((stats.binds_over_cap, stats.binds_refused), (1, 1));
    assert_eq!(sim.most_bound(ACCOUNT), 2);
    // One unbinds: its place is free again, and the most stays 2.
    let first = bound.remove(0);
    first.handle.unbind().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let third = loop {
        let stream = tokio::net::TcpStream::connect(sim.addr())
            .await
            .expect("connect");
        match tern_session::esme::bind(stream, None, &params, session_config(1)).await {
            Ok(session) => break session,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("the freed place was not given back: {err}"),
        }
    };
    assert_eq!(sim.most_bound(ACCOUNT), 2);
    drop(third);
}

#[tokio::test]
async fn out_of_range_knobs_are_refused_and_the_old_behaviour_stays() {
    let sim = sim(Behaviour::default()).await;
    let err = sim.update_behaviour(|b| b.drop_fraction = 1.5);
    assert!(err.is_err());
    assert_eq!(sim.behaviour(), Behaviour::default());
    let started = Simulator::start(SimConfig {
        behaviour: Behaviour {
            throttle_per_second: Some(0),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await;
    assert!(started.is_err());
}

#[tokio::test]
async fn bind_responses_announce_the_version_unless_told_not_to() {
    // Announced: the session takes TLVs.
    let plain = sim(Behaviour::default()).await;
    let session = bind(&plain, BindType::Transceiver).await;
    assert_eq!(
        session.handle.peer_version(),
        tern_codec::InterfaceVersion::V34
    );
    // Not announced: SMPP 3.4 §5.3.2.25, the client assumes 3.3.
    let quiet = Simulator::start(SimConfig {
        announce_interface_version: false,
        ..SimConfig::default()
    })
    .await
    .expect("starts");
    let session = bind(&quiet, BindType::Transceiver).await;
    assert_eq!(
        session.handle.peer_version(),
        tern_codec::InterfaceVersion::V33
    );
}
