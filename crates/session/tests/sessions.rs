//! Both roles over real loopback sockets: binds, keep-alive, timers,
//! window, unbind, reconnect, bind-state rules, malformed input.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::*;
use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandId, CommandStatus, Pdu};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::{self, ConnectError, EsmeClient};
use tern_session::{BindType, CloseReason, RequestError, SessionConfig, SessionState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

async fn esme_bind(
    addr: std::net::SocketAddr,
    bind_type: BindType,
    password: &str,
) -> Result<esme::UpstreamSession, ConnectError> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    esme::bind(
        stream,
        Some(addr),
        &params(bind_type, password),
        fast_session(),
    )
    .await
}

#[tokio::test]
async fn every_bind_type_binds_and_gets_terns_system_id() {
    let mut srv = server().await;
    for bind_type in [
        BindType::Transmitter,
        BindType::Receiver,
        BindType::Transceiver,
    ] {
        let upstream = esme_bind(srv.addr, bind_type, "pass")
            .await
            .expect("bind accepted");
        assert_eq!(upstream.peer_system_id, "tern");
        assert_eq!(upstream.handle.state(), SessionState::Bound(bind_type));
        let bound = tokio::time::timeout(WAIT, srv.sessions.recv())
            .await
            .expect("in time")
            .expect("session");
        assert_eq!(bound.bind_type, bind_type);
        assert_eq!(bound.account, "user");
        assert_eq!(bound.handle.state(), SessionState::Bound(bind_type));
    }
}

#[tokio::test]
async fn a_3_4_client_is_told_the_server_version_and_a_3_3_client_is_not() {
    let srv = server().await;
    let mut raw = Raw::connect(srv.addr).await;
    let resp = raw.bind(BindType::Transceiver).await;
    let Body::BindTransceiverResp(r) = &resp.body else {
        panic!("{resp:?}")
    };
    assert_eq!(r.tlvs.sc_interface_version(), Some(&0x34));

    let mut raw = Raw::connect(srv.addr).await;
    let bind = tern_codec::pdu::Bind {
        system_id: "user".try_into().expect("short"),
        password: "pass".try_into().expect("short"),
        interface_version: tern_codec::InterfaceVersion::V33,
        ..Default::default()
    };
    raw.send(Pdu::new(1, Body::BindTransmitter(bind))).await;
    let resp = raw.recv().await.expect("response");
    let Body::BindTransmitterResp(r) = &resp.body else {
        panic!("{resp:?}")
    };
    assert!(r.tlvs.is_empty(), "a 3.3 peer gets no TLVs");
}

#[tokio::test]
async fn bad_credentials_and_addresses_are_refused_with_their_status() {
    let srv = server().await;
    let err = esme_bind(srv.addr, BindType::Transceiver, "wrong")
        .await
        .expect_err("refused");
    assert!(
        matches!(err, ConnectError::Refused(CommandStatus::InvalidPassword)),
        "{err}"
    );
    // During a password rotation both passwords are valid.
    esme_bind(srv.addr, BindType::Transceiver, "old-pass")
        .await
        .expect("old password still valid");

    let stream = TcpStream::connect(srv.addr).await.expect("connect");
    let mut p = params(BindType::Transmitter, "pass");
    p.system_id = "nobody".try_into().expect("short");
    let err = esme::bind(stream, None, &p, fast_session())
        .await
        .expect_err("unknown system_id");
    assert!(
        matches!(err, ConnectError::Refused(CommandStatus::InvalidSystemId)),
        "{err}"
    );

    let srv = server_with(
        Accounts {
            allowed_ip: Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))),
            ..Accounts::default()
        },
        fast_session(),
    )
    .await;
    let err = esme_bind(srv.addr, BindType::Transmitter, "pass")
        .await
        .expect_err("address not allowed");
    assert!(
        matches!(err, ConnectError::Refused(CommandStatus::BindFailed)),
        "{err}"
    );
}

#[tokio::test]
async fn the_bind_count_per_account_is_enforced_and_released() {
    let srv = server_with(
        Accounts {
            max_binds: Some(1),
            ..Accounts::default()
        },
        fast_session(),
    )
    .await;
    let first = esme_bind(srv.addr, BindType::Transceiver, "pass")
        .await
        .expect("first bind");
    let err = esme_bind(srv.addr, BindType::Transceiver, "pass")
        .await
        .expect_err("over the limit");
    assert!(
        matches!(err, ConnectError::Refused(CommandStatus::BindFailed)),
        "{err}"
    );
    assert_eq!(srv.server.bound_count("user"), 1);
    first.handle.unbind().await;
    // The server notices the unbind and gives the slot back.
    for _ in 0..100 {
        if srv.server.bound_count("user") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    esme_bind(srv.addr, BindType::Transceiver, "pass")
        .await
        .expect("slot released");
}

#[tokio::test]
async fn a_connection_that_does_not_bind_in_time_is_closed() {
    let mut config = fast_session();
    config.session_init_timeout = Duration::from_millis(200);
    let srv = server_with(Accounts::default(), config).await;
    let mut stream = TcpStream::connect(srv.addr).await.expect("connect");
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buf))
        .await
        .expect("closed in time");
    assert_eq!(read.expect("clean close"), 0);
}

#[tokio::test]
async fn enquire_link_is_answered_before_and_after_bind() {
    let srv = server().await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.send(Pdu::new(7, Body::EnquireLink)).await;
    assert_eq!(raw.recv().await, Some(Pdu::new(7, Body::EnquireLinkResp)));
    raw.bind(BindType::Transmitter).await;
    raw.send(Pdu::new(8, Body::EnquireLink)).await;
    assert_eq!(raw.recv().await, Some(Pdu::new(8, Body::EnquireLinkResp)));
}

#[tokio::test]
async fn an_idle_session_sends_enquire_link_and_a_silent_peer_is_dropped() {
    let mut config = fast_session();
    config.enquire_link_interval = Some(Duration::from_millis(100));
    config.response_timeout = Duration::from_millis(200);
    let srv = server_with(Accounts::default(), config).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.bind(BindType::Transceiver).await;
    let probe = raw.recv().await.expect("an enquire_link");
    assert_eq!(probe.command_id(), CommandId::EnquireLink);
    // Answered: the session stays; the next probe comes.
    raw.send(Pdu::new(probe.sequence_number, Body::EnquireLinkResp))
        .await;
    let probe = raw.recv().await.expect("another enquire_link");
    assert_eq!(probe.command_id(), CommandId::EnquireLink);
    // Not answered: the server closes.
    assert_eq!(raw.recv().await, None, "a silent peer is dropped");
}

#[tokio::test]
async fn a_response_that_comes_too_late_times_out_the_waiter_and_is_counted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.answer_bind().await;
        let submit = raw.recv().await.expect("submit");
        tokio::time::sleep(Duration::from_millis(700)).await;
        raw.send(Pdu::new(
            submit.sequence_number,
            Body::SubmitSmResp(SmResp::default()),
        ))
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    let upstream = esme_bind(addr, BindType::Transceiver, "pass")
        .await
        .expect("bound");
    let err = upstream
        .handle
        .request(submit("late"))
        .await
        .expect_err("no answer in 500 ms");
    assert!(
        matches!(
            err,
            RequestError::Timeout {
                command_id: CommandId::SubmitSm,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        upstream.handle.in_flight(),
        0,
        "the window slot is given back"
    );
    peer.await.expect("peer");
    assert_eq!(
        upstream
            .handle
            .stats()
            .late_responses
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn a_full_window_makes_the_sender_wait_and_the_peer_never_sees_more() {
    const WINDOW: usize = 3;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let peer = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.answer_bind().await;
        let mut unanswered = Vec::new();
        let mut max_outstanding = 0;
        for _ in 0..10 {
            // Take what arrives; answer only when nothing more comes.
            while let Ok(Some(pdu)) =
                tokio::time::timeout(Duration::from_millis(100), raw.recv()).await
            {
                unanswered.push(pdu.sequence_number);
            }
            max_outstanding = max_outstanding.max(unanswered.len());
            let Some(seq) = unanswered.pop() else { break };
            raw.send(Pdu::new(
                seq,
                Body::SubmitSmResp(SmResp::with_id("x".try_into().expect("short"))),
            ))
            .await;
        }
        let _ = seen_tx.send(max_outstanding);
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let config = SessionConfig {
        window: WINDOW,
        response_timeout: Duration::from_secs(10),
        ..fast_session()
    };
    let upstream = esme::bind(
        stream,
        Some(addr),
        &params(BindType::Transceiver, "pass"),
        config,
    )
    .await
    .expect("bound");
    let mut senders = Vec::new();
    for i in 0..10 {
        let handle = upstream.handle.clone();
        senders.push(tokio::spawn(async move {
            handle.request(submit(&format!("m{i}"))).await
        }));
    }
    for sender in senders {
        let resp = sender.await.expect("task").expect("answered eventually");
        assert_eq!(resp.command_status, CommandStatus::Ok);
    }
    assert_eq!(
        seen.recv().await,
        Some(WINDOW),
        "at most the window in flight, and the window used"
    );
    peer.await.expect("peer");
}

#[tokio::test]
async fn unbind_either_way_ends_both_sides() {
    let mut srv = server().await;
    let upstream = esme_bind(srv.addr, BindType::Transceiver, "pass")
        .await
        .expect("bound");
    let bound = srv.sessions.recv().await.expect("session");
    upstream.handle.unbind().await;
    tokio::time::timeout(WAIT, bound.handle.closed())
        .await
        .expect("server side closed");
    assert_eq!(bound.handle.close_reason(), Some(CloseReason::PeerUnbound));
    assert_eq!(upstream.handle.close_reason(), Some(CloseReason::Local));

    let upstream = esme_bind(srv.addr, BindType::Transceiver, "pass")
        .await
        .expect("bound");
    let bound = srv.sessions.recv().await.expect("session");
    bound.handle.unbind().await;
    tokio::time::timeout(WAIT, upstream.handle.closed())
        .await
        .expect("client side closed");
    assert_eq!(
        upstream.handle.close_reason(),
        Some(CloseReason::PeerUnbound)
    );
}

#[tokio::test]
async fn the_client_reconnects_after_the_peer_unbinds_or_drops() {
    let mut srv = server().await;
    let client = EsmeClient {
        host: "localhost".to_owned(),
        port: srv.addr.port(),
        tls: None,
        params: params(BindType::Transceiver, "pass"),
        session: fast_session(),
        backoff: BackoffConfig {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            multiplier: 2.0,
            jitter: 0.5,
        },
        pacer: None,
        account_window: None,
    };
    let (tx, mut upstreams) = mpsc::channel(4);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(client.run(tx, shutdown.clone()));

    let first = tokio::time::timeout(WAIT, upstreams.recv())
        .await
        .expect("bound")
        .expect("session");
    let server_side = srv.sessions.recv().await.expect("server session");
    server_side.handle.unbind().await; // as OVH does every 24 hours
    let second = tokio::time::timeout(WAIT, upstreams.recv())
        .await
        .expect("rebound")
        .expect("session");
    assert!(first.handle.is_closed());
    let server_side = srv.sessions.recv().await.expect("server session");
    server_side.handle.close(); // a dropped connection
    let third = tokio::time::timeout(WAIT, upstreams.recv())
        .await
        .expect("rebound")
        .expect("session");
    assert!(second.handle.is_closed());
    assert_eq!(
        third.handle.state(),
        SessionState::Bound(BindType::Transceiver)
    );

    shutdown.cancel();
    tokio::time::timeout(WAIT, run)
        .await
        .expect("stops")
        .expect("task")
        .expect("valid backoff");
    assert!(
        third.handle.is_closed(),
        "shutdown unbinds the live session"
    );
}

#[tokio::test]
async fn bind_state_rules_are_enforced_on_the_server() {
    let srv = server().await;
    let mut raw = Raw::connect(srv.addr).await;
    // Before bind.
    raw.send(Pdu::new(2, submit("too early"))).await;
    let resp = raw.recv().await.expect("answer");
    assert_eq!(
        (resp.command_id(), resp.command_status, resp.sequence_number),
        (CommandId::SubmitSmResp, CommandStatus::InvalidBindStatus, 2)
    );
    // A receiver may not submit.
    raw.bind(BindType::Receiver).await;
    raw.send(Pdu::new(3, submit("not allowed"))).await;
    let resp = raw.recv().await.expect("answer");
    assert_eq!(
        (resp.command_id(), resp.command_status),
        (CommandId::SubmitSmResp, CommandStatus::InvalidBindStatus)
    );
    // Bound twice.
    let again = raw.bind(BindType::Transmitter).await;
    assert_eq!(again.command_status, CommandStatus::AlreadyBound);
    // Unknown command ids get generic_nack.
    raw.send(Pdu {
        sequence_number: 4,
        command_status: CommandStatus::Ok,
        body: Body::Unknown {
            command_id: 0x0000_0999,
            body: bytes::Bytes::new(),
        },
    })
    .await;
    assert_eq!(
        raw.recv().await,
        Some(Pdu::generic_nack(4, CommandStatus::InvalidCommandId))
    );
}

#[tokio::test]
async fn a_transmitter_may_not_be_sent_deliver_sm() {
    let mut srv = server().await;
    let _client = esme_bind(srv.addr, BindType::Transmitter, "pass")
        .await
        .expect("bound");
    let bound = srv.sessions.recv().await.expect("session");
    let err = bound
        .handle
        .request(Body::DeliverSm(Default::default()))
        .await
        .expect_err("not allowed");
    assert!(
        matches!(
            err,
            RequestError::NotAllowed {
                status: CommandStatus::InvalidBindStatus,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_pdu_is_answered_and_other_sessions_are_unaffected() {
    let mut srv = server().await;
    let mut bad = Raw::connect(srv.addr).await;
    bad.bind(BindType::Transceiver).await;
    let good = esme_bind(srv.addr, BindType::Transceiver, "pass")
        .await
        .expect("bound");
    let _bad_session = srv.sessions.recv().await.expect("session");
    let mut good_server_side = srv.sessions.recv().await.expect("session");
    tokio::spawn(async move {
        while let Some(req) = good_server_side.requests.recv().await {
            let id = "ok".try_into().expect("short");
            let _ = req
                .responder
                .respond(CommandStatus::Ok, Body::SubmitSmResp(SmResp::with_id(id)))
                .await;
        }
    });

    // A submit_sm whose destination has no terminator, then garbage length.
    let stream = bad.0.get_mut();
    stream
        .write_all(&[
            0, 0, 0, 20, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 1, b'x',
        ])
        .await
        .expect("write");
    let resp = bad.recv().await.expect("answer");
    assert_eq!(
        (resp.command_id(), resp.command_status, resp.sequence_number),
        (
            CommandId::SubmitSmResp,
            CommandStatus::InvalidCommandLength,
            9
        )
    );
    let stream = bad.0.get_mut();
    stream
        .write_all(&[0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 10])
        .await
        .expect("write");
    let resp = bad.recv().await.expect("generic_nack before the close");
    assert_eq!(
        resp,
        Pdu::generic_nack(10, CommandStatus::InvalidCommandLength)
    );
    assert_eq!(
        bad.recv().await,
        None,
        "unframeable input closes the session"
    );

    let resp = good
        .handle
        .request(submit("still fine"))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
}

#[tokio::test]
async fn a_full_application_queue_answers_message_queue_full() {
    let mut config = fast_session();
    config.event_queue = 1;
    let mut srv = server_with(Accounts::default(), config).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.bind(BindType::Transmitter).await;
    let _bound = srv.sessions.recv().await.expect("session"); // never reads its requests
    raw.send(Pdu::new(2, submit("queued"))).await;
    raw.send(Pdu::new(3, submit("refused"))).await;
    let resp = raw.recv().await.expect("answer");
    assert_eq!(
        (resp.sequence_number, resp.command_status),
        (3, CommandStatus::MessageQueueFull)
    );
}

#[tokio::test]
async fn a_session_with_no_traffic_is_closed_after_the_inactivity_limit() {
    let mut config = fast_session();
    config.inactivity_timeout = Some(Duration::from_millis(200));
    let mut srv = server_with(Accounts::default(), config).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.bind(BindType::Transceiver).await;
    let bound = srv.sessions.recv().await.expect("session");
    assert_eq!(raw.recv().await, None, "the server closes an idle session");
    assert_eq!(bound.handle.close_reason(), Some(CloseReason::Inactivity));
}

/// The inactivity limit runs from the last PDU, not from the session's
/// start: a peer sending an enquire_link every 60 ms stays bound past
/// several 200 ms limits, and is closed one limit after it falls silent.
#[tokio::test]
async fn a_session_with_traffic_outlives_the_inactivity_limit() {
    let mut config = fast_session();
    config.inactivity_timeout = Some(Duration::from_millis(200));
    let mut srv = server_with(Accounts::default(), config).await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.bind(BindType::Transceiver).await;
    let bound = srv.sessions.recv().await.expect("session");
    for n in 0..12 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        raw.send(Pdu::new(10 + n, Body::EnquireLink)).await;
        let resp = raw.recv().await.expect("answered: still open");
        assert_eq!(resp.command_id(), CommandId::EnquireLinkResp);
    }
    assert!(
        !bound.handle.is_closed(),
        "closed while the peer was talking"
    );
    let silent = std::time::Instant::now();
    assert_eq!(raw.recv().await, None, "closed once silent");
    assert_eq!(bound.handle.close_reason(), Some(CloseReason::Inactivity));
    assert!(
        silent.elapsed() >= Duration::from_millis(150),
        "{:?}",
        silent.elapsed()
    );
}

#[tokio::test]
async fn unbind_waits_for_requests_in_flight_before_unbinding() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (order_tx, mut order) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.answer_bind().await;
        let submit = raw.recv().await.expect("submit");
        // Answer late, but within the close grace.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let id = "late-but-fine".try_into().expect("short");
        raw.send(Pdu::new(
            submit.sequence_number,
            Body::SubmitSmResp(SmResp::with_id(id)),
        ))
        .await;
        let _ = order_tx.send("submit answered");
        let unbind = raw.recv().await.expect("unbind");
        assert_eq!(unbind.command_id(), CommandId::Unbind);
        let _ = order_tx.send("unbind received");
        raw.send(Pdu::new(unbind.sequence_number, Body::UnbindResp))
            .await;
    });
    let upstream = esme_bind(addr, BindType::Transceiver, "pass")
        .await
        .expect("bound");
    let handle = upstream.handle.clone();
    let in_flight = tokio::spawn(async move { handle.request(submit("in flight")).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    upstream.handle.unbind().await;
    let resp = in_flight
        .await
        .expect("task")
        .expect("answered before the unbind");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    assert_eq!(order.recv().await, Some("submit answered"));
    assert_eq!(order.recv().await, Some("unbind received"));
    assert_eq!(upstream.handle.close_reason(), Some(CloseReason::Local));
}

#[tokio::test]
async fn a_deliver_sm_right_behind_the_bind_response_is_accepted() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        let bind = raw.recv().await.expect("bind");
        // Both in one write, as an SMSC flushing queued receipts at bind does.
        let mut both = Pdu::new(
            bind.sequence_number,
            Body::BindReceiverResp(Default::default()),
        )
        .to_bytes()
        .to_vec();
        both.extend_from_slice(&Pdu::new(90, Body::DeliverSm(Default::default())).to_bytes());
        raw.0.get_mut().write_all(&both).await.expect("write");
        raw.recv().await.expect("deliver_sm_resp")
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut upstream = esme::bind(
        stream,
        Some(addr),
        &params(BindType::Receiver, "pass"),
        fast_session(),
    )
    .await
    .expect("bound");
    let request = tokio::time::timeout(WAIT, upstream.requests.recv())
        .await
        .expect("in time")
        .unwrap_or_else(|| {
            panic!(
                "the deliver_sm reaches the application; closed: {:?}",
                upstream.handle.close_reason()
            )
        });
    request
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("respond");
    let resp = peer.await.expect("peer");
    assert_eq!(
        (resp.sequence_number, resp.command_status),
        (90, CommandStatus::Ok)
    );
}

#[tokio::test]
async fn a_request_abandoned_by_its_caller_frees_its_window_slot() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.answer_bind().await;
        // Never answers; reports what it receives.
        while let Some(pdu) = raw.recv().await {
            let _ = seen_tx.send(pdu.command_id());
        }
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let config = SessionConfig {
        window: 1,
        response_timeout: Duration::from_secs(30),
        ..fast_session()
    };
    let upstream = esme::bind(
        stream,
        Some(addr),
        &params(BindType::Transceiver, "pass"),
        config,
    )
    .await
    .expect("bound");
    let abandoned = tokio::time::timeout(
        Duration::from_millis(100),
        upstream.handle.request(submit("a")),
    )
    .await;
    assert!(abandoned.is_err(), "the caller gave up");
    assert_eq!(upstream.handle.in_flight(), 0, "its entry went with it");
    // The single window slot is free: the next request goes out at once.
    let handle = upstream.handle.clone();
    let _second = tokio::spawn(async move { handle.request(submit("b")).await });
    assert_eq!(seen.recv().await, Some(CommandId::SubmitSm));
    let second = tokio::time::timeout(WAIT, seen.recv())
        .await
        .expect("sent without waiting 30 s");
    assert_eq!(second, Some(CommandId::SubmitSm));
}

#[tokio::test]
async fn one_server_listens_on_several_addresses_and_counts_binds_across_them() {
    let server = tern_session::smsc::SmscServer::new(
        tern_session::smsc::SmscConfig {
            session: fast_session(),
            ..Default::default()
        },
        Accounts {
            max_binds: Some(1),
            ..Accounts::default()
        },
    );
    let (tx, mut sessions) = mpsc::channel(4);
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut addrs = Vec::new();
    for _ in 0..2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        addrs.push(listener.local_addr().expect("addr"));
        tokio::spawn(
            server
                .clone()
                .serve(listener, None, tx.clone(), shutdown.clone()),
        );
    }
    let first = esme_bind(addrs[0], BindType::Transceiver, "pass")
        .await
        .expect("first address");
    assert!(sessions.recv().await.is_some());
    // The account's single bind is taken, whichever address the next comes to.
    let err = esme_bind(addrs[1], BindType::Transceiver, "pass")
        .await
        .expect_err("over the account's limit");
    assert!(
        matches!(err, ConnectError::Refused(CommandStatus::BindFailed)),
        "{err}"
    );
    first.handle.unbind().await;
    for _ in 0..100 {
        if server.bound_count("user") == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    esme_bind(addrs[1], BindType::Transceiver, "pass")
        .await
        .expect("second address");
    shutdown.cancel();
}

#[tokio::test]
async fn a_silent_peer_is_dropped_in_time_even_with_the_window_full_of_unanswered_requests() {
    // A peer that binds and then answers nothing, while the application
    // keeps a window of 1 full with submits (four of them queued for the
    // slot): the enquire_link waits behind them, yet the session closes
    // within the interval plus the response timeout, not after each
    // queued submit has had its own response timeout.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let peer = tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.answer_bind().await;
        // Read and drop everything until Tern closes.
        while raw.recv().await.is_some() {}
    });
    let mut config = fast_session();
    config.window = 1;
    config.enquire_link_interval = Some(Duration::from_millis(200));
    config.response_timeout = Duration::from_millis(400);
    let stream = TcpStream::connect(addr).await.expect("connect");
    let upstream = esme::bind(
        stream,
        Some(addr),
        &params(BindType::Transceiver, "pass"),
        config,
    )
    .await
    .expect("bound");
    let bound_at = tokio::time::Instant::now();
    for _ in 0..4 {
        let handle = upstream.handle.clone();
        tokio::spawn(async move {
            loop {
                let submit = Body::SubmitSm(Default::default());
                if let Err(RequestError::Closed) = handle.request(submit).await {
                    return;
                }
            }
        });
    }
    tokio::time::timeout(WAIT, upstream.handle.closed())
        .await
        .expect("closed in time");
    let took = bound_at.elapsed();
    assert_eq!(
        upstream.handle.close_reason(),
        Some(CloseReason::KeepaliveTimeout)
    );
    // 200 ms + 400 ms, and 300 ms for a loaded machine: less than one
    // more response timeout.
    assert!(
        took < Duration::from_millis(900),
        "closed {took:?} after the peer went silent"
    );
    peer.await.expect("peer");
}

/// A real socket that counts the writes made on it.
struct CountedWrites {
    inner: TcpStream,
    writes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CountedWrites {
    fn counted(&self, done: &std::task::Poll<std::io::Result<usize>>) {
        if matches!(done, std::task::Poll::Ready(Ok(_))) {
            self.writes
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

impl tokio::io::AsyncRead for CountedWrites {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for CountedWrites {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let done = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.counted(&done);
        done
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let done = std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.counted(&done);
        done
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Requests queued by tasks that run one after the other (woken together,
/// as a log group's writers are) go out in one write: the writer, woken by
/// the first, waits for the others' turn before it writes. One worker
/// thread, so the first task's wake-up of the writer takes tokio's LIFO
/// slot, as it does in the daemon.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn requests_queued_by_tasks_woken_together_go_out_in_one_write() {
    const TASKS: usize = 8;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stream, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (mut peer, _) = accepted.expect("accept");
    let writes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let io = CountedWrites {
        inner: stream.expect("connect"),
        writes: writes.clone(),
    };
    let (handle, _requests) =
        tern_session::spawn(io, tern_session::Role::Esme, fast_session(), Some(addr));
    let start = std::sync::Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (handle, start) = (handle.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.notified().await;
            // Unanswered: the peer only reads. The request is written
            // before it times out.
            let _ = handle.request(Body::EnquireLink).await;
        }));
    }
    // Every task waits on the start before it is given.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Woken from a worker, as the daemon's tasks are (from here, the
    // runtime thread could run out of woken tasks before this thread had
    // woken them all).
    tokio::spawn(async move { start.notify_waiters() })
        .await
        .expect("start");
    let mut read = Vec::new();
    let mut buf = [0u8; 1024];
    while read.len() < TASKS * 16 {
        let n = tokio::time::timeout(Duration::from_secs(5), peer.read(&mut buf))
            .await
            .expect("the requests arrive in time")
            .expect("read");
        assert!(n > 0, "connection closed after {} octets", read.len());
        read.extend_from_slice(&buf[..n]);
    }
    assert_eq!(read.len(), TASKS * 16, "{TASKS} enquire_links");
    assert_eq!(
        writes.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "{TASKS} requests queued one task after the other: one write"
    );
    for task in tasks {
        task.await.expect("task");
    }
}
