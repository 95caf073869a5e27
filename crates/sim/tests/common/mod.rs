//! Test fixtures: a simulator on 127.0.0.1:0, ESME sessions bound to it
//! with the session engine, submit bodies.

#![allow(dead_code)]

use std::time::Duration;

use tern_codec::pdu::SubmitSm;
use tern_codec::{Address, Body, Npi, RegisteredDelivery, ShortMessage, Ton};
use tern_session::esme::{self, BindParams, UpstreamSession};
use tern_session::{BindType, Request, SessionConfig};
use tern_sim::{Behaviour, IdFormat, SimConfig, SimHandle, Simulator};
use tokio::net::TcpStream;

/// Bounds every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// The account the tests bind as (any is accepted without configured accounts).
pub const ACCOUNT: &str = "acct";

pub async fn sim_with(id_format: IdFormat, behaviour: Behaviour) -> SimHandle {
    Simulator::start(SimConfig {
        id_format,
        behaviour,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

pub async fn sim(behaviour: Behaviour) -> SimHandle {
    sim_with(IdFormat::Decimal, behaviour).await
}

pub fn session_config(window: usize) -> SessionConfig {
    SessionConfig {
        window,
        response_timeout: Duration::from_secs(5),
        enquire_link_interval: None,
        inactivity_timeout: None,
        close_grace: Duration::from_secs(1),
        ..SessionConfig::default()
    }
}

pub async fn bind_with(
    sim: &SimHandle,
    bind_type: BindType,
    config: SessionConfig,
) -> UpstreamSession {
    let addr = sim.addr();
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let mut params = BindParams::new(ACCOUNT, "secret").expect("short credentials");
    params.bind_type = bind_type;
    tokio::time::timeout(WAIT, esme::bind(stream, Some(addr), &params, config))
        .await
        .expect("bind in time")
        .expect("bind accepted")
}

pub async fn bind(sim: &SimHandle, bind_type: BindType) -> UpstreamSession {
    bind_with(sim, bind_type, session_config(50)).await
}

/// Waits until the simulator has registered `n` sessions of the test account.
pub async fn until_sessions(sim: &SimHandle, n: usize) {
    until(|| sim.sessions(ACCOUNT).len() == n).await;
}

/// Polls `done` every 10 ms, failing the test after [`WAIT`].
pub async fn until(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("condition reached in time");
}

pub fn submit(text: &str, registered: RegisteredDelivery) -> Body {
    Body::SubmitSm(SubmitSm {
        source: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "34911111111".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "34600000001".try_into().expect("short"),
        ),
        registered_delivery: registered,
        short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..SubmitSm::default()
    })
}

/// The next request from the simulator on a receiving session.
pub async fn next_request(session: &mut UpstreamSession) -> Request {
    tokio::time::timeout(WAIT, session.requests.recv())
        .await
        .expect("a deliver_sm in time")
        .expect("session still open")
}
