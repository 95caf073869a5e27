//! Limits over real sockets: message rates per session and per account in
//! the SMSC role, pacing towards a throttling upstream in the ESME role, and
//! the failed-bind guard.

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandStatus, Pdu};
use tern_session::abuse::{BindGuard, GuardConfig};
use tern_session::esme::{self, ConnectError};
use tern_session::smsc::{SmscConfig, SmscServer};
use tern_session::throttle::{AdaptiveConfig, AdaptiveRate};
use tern_session::BindType;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn rate(n: u32) -> Option<NonZeroU32> {
    NonZeroU32::new(n)
}

/// Sends `n` submits back to back on `raw` and counts the answers by status.
async fn burst(raw: &mut Raw, first_seq: u32, n: u32) -> (usize, usize) {
    for i in 0..n {
        raw.send(Pdu::new(first_seq + i, submit("burst"))).await;
    }
    let (mut ok, mut throttled) = (0, 0);
    for _ in 0..n {
        match raw.recv().await.expect("answer").command_status {
            CommandStatus::Ok => ok += 1,
            CommandStatus::Throttled => throttled += 1,
            other => panic!("unexpected {other}"),
        }
    }
    (ok, throttled)
}

#[tokio::test]
async fn submits_over_the_session_rate_are_throttled() {
    let mut srv = server_with(
        Accounts {
            session_rate: rate(5),
            ..Accounts::default()
        },
        fast_session(),
    )
    .await;
    let mut raw = Raw::connect(srv.addr).await;
    raw.bind(BindType::Transmitter).await;
    let bound = srv.sessions.recv().await.expect("session");
    let handle = bound.handle.clone();
    answer_all(bound);
    let (ok, throttled) = burst(&mut raw, 10, 20).await;
    // A burst of 5 is allowed at 5/s; a sixth may replenish while we send.
    assert!((5..=7).contains(&ok), "ok {ok}");
    assert_eq!(ok + throttled, 20);
    assert_eq!(
        handle
            .stats()
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed),
        throttled as u64
    );
}

#[tokio::test]
async fn the_account_rate_is_shared_by_its_sessions() {
    let mut srv = server_with(
        Accounts {
            account_rate: rate(6),
            ..Accounts::default()
        },
        fast_session(),
    )
    .await;
    let mut a = Raw::connect(srv.addr).await;
    a.bind(BindType::Transmitter).await;
    answer_all(srv.sessions.recv().await.expect("session"));
    let mut b = Raw::connect(srv.addr).await;
    b.bind(BindType::Transmitter).await;
    answer_all(srv.sessions.recv().await.expect("session"));
    let (ok_a, _) = burst(&mut a, 10, 10).await;
    let (ok_b, _) = burst(&mut b, 10, 10).await;
    assert!(
        (6..=8).contains(&(ok_a + ok_b)),
        "both sessions together: {}",
        ok_a + ok_b
    );
    assert!(
        ok_b < 3,
        "the second session finds the account's budget spent: {ok_b}"
    );
}

#[tokio::test]
async fn a_throttling_upstream_slows_the_pacer_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut raw = Raw::accept(&listener).await;
        raw.answer_bind().await;
        while let Some(pdu) = raw.recv().await {
            let resp = Pdu {
                command_status: CommandStatus::Throttled,
                ..Pdu::new(pdu.sequence_number, Body::SubmitSmResp(SmResp::default()))
            };
            raw.send(resp).await;
        }
    });
    let stream = TcpStream::connect(addr).await.expect("connect");
    let upstream = esme::bind(
        stream,
        Some(addr),
        &params(BindType::Transceiver, "pass"),
        fast_session(),
    )
    .await
    .expect("bound");
    let pacer = Arc::new(AdaptiveRate::new(AdaptiveConfig::new(100.0)).expect("valid"));
    upstream.handle.set_pacer(pacer.clone());
    assert_eq!(pacer.current_rate(), 100.0);
    let resp = upstream
        .handle
        .request(submit("x"))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Throttled);
    assert!(
        pacer.current_rate() < 100.0,
        "slowed to {}",
        pacer.current_rate()
    );
}

async fn guarded_server(config: GuardConfig) -> std::net::SocketAddr {
    guarded_server_for(config, Accounts::default()).await
}

async fn guarded_server_for(config: GuardConfig, accounts: Accounts) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let smsc = SmscServer::with_guard(
        SmscConfig {
            session: fast_session(),
            locked_out_status: CommandStatus::Vendor(0x400),
            ..SmscConfig::default()
        },
        accounts,
        BindGuard::new(config).expect("valid guard"),
    );
    let (tx, mut sessions) = mpsc::channel(8);
    tokio::spawn(smsc.serve(listener, None, tx, CancellationToken::new()));
    tokio::spawn(async move { while sessions.recv().await.is_some() {} });
    addr
}

async fn try_bind(addr: std::net::SocketAddr, password: &str) -> Result<(), CommandStatus> {
    try_bind_as(addr, BindType::Transmitter, password).await
}

async fn try_bind_as(
    addr: std::net::SocketAddr,
    bind_type: BindType,
    password: &str,
) -> Result<(), CommandStatus> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    match esme::bind(
        stream,
        Some(addr),
        &params(bind_type, password),
        fast_session(),
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(ConnectError::Refused(status)) => Err(status),
        Err(other) => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn repeated_failed_binds_are_locked_out_with_the_configured_status() {
    let addr = guarded_server(GuardConfig {
        window: Duration::from_secs(60),
        delay_after: 2,
        delay_step: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
        lock_after: 3,
        lock_for: Duration::from_secs(60),
        max_tracked: 100,
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            try_bind(addr, "wrong").await,
            Err(CommandStatus::InvalidPassword)
        );
    }
    // Locked: even the right password is refused, with OVH's 0x400.
    assert_eq!(
        try_bind(addr, "pass").await,
        Err(CommandStatus::Vendor(0x400))
    );
}

#[tokio::test]
async fn failed_binds_are_slowed_down_before_the_lock_out() {
    let step = Duration::from_millis(300);
    let addr = guarded_server(GuardConfig {
        window: Duration::from_secs(60),
        delay_after: 1,
        delay_step: step,
        max_delay: step,
        lock_after: 10,
        lock_for: Duration::from_secs(60),
        max_tracked: 100,
    })
    .await;
    assert_eq!(
        try_bind(addr, "wrong").await,
        Err(CommandStatus::InvalidPassword)
    );
    let started = tokio::time::Instant::now();
    assert_eq!(
        try_bind(addr, "pass").await,
        Ok(()),
        "a delay, not a refusal"
    );
    assert!(
        started.elapsed() >= step,
        "the second attempt waited {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_bind_type_the_account_does_not_allow_is_refused_but_never_locks_it_out() {
    let addr = guarded_server_for(
        GuardConfig {
            window: Duration::from_secs(60),
            delay_after: 1,
            delay_step: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            lock_after: 2,
            lock_for: Duration::from_secs(60),
            max_tracked: 100,
        },
        Accounts {
            bind_types: tern_session::BindTypes::NONE.with(BindType::Transmitter),
            ..Accounts::default()
        },
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            try_bind_as(addr, BindType::Receiver, "pass").await,
            Err(CommandStatus::BindFailed)
        );
    }
    // More refusals than `lock_after`, yet the allowed type still binds:
    // right credentials of the wrong type are no password guessing.
    assert_eq!(
        try_bind_as(addr, BindType::Transmitter, "pass").await,
        Ok(())
    );
}
