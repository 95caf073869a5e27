//! Upstreams that cannot carry a message, against simulators on loopback:
//! one that refuses to carry it is sent nothing and uses up no attempt;
//! when none of the route can, the message ends with each one's reason.

use std::sync::Arc;
use std::time::Duration;

use tern_codec::pdu::SubmitSm;
use tern_codec::{Address, CommandStatus, DataCoding, Npi, ShortMessage, Ton};
use tern_router::breaker::BreakerConfig;
use tern_router::engine::{Router, RouterConfig, SendOutcome};
use tern_router::strategy::Strategy;
use tern_router::table::{RouteUpstream, Rule, Table};
use tern_router::upstream::{Upstream, UpstreamConfig, UpstreamRequest};
use tern_router::{FinalState, Profile, Reason};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::BindParams;
use tern_session::SessionConfig;
use tern_sim::smsc::{SimConfig, SimHandle, Simulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

fn profile(name: &str) -> Arc<Profile> {
    Arc::new(Profile::builtin(name).expect("listed").expect("valid"))
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// An upstream with `profile` bound to `port`, one session.
fn upstream(
    name: &str,
    profile: Arc<Profile>,
    port: u16,
    stop: &CancellationToken,
) -> Arc<Upstream> {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(UpstreamRequest { request, .. }) = rx.recv().await {
            let _ = request.responder.reject(CommandStatus::Ok).await;
        }
    });
    let config = UpstreamConfig {
        name: name.to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        tls: None,
        bind: BindParams::new("tern", "secret").expect("short"),
        sessions: 1,
        session: SessionConfig {
            window: 10,
            response_timeout: Duration::from_millis(500),
            enquire_link_interval: None,
            inactivity_timeout: None,
            ..SessionConfig::default()
        },
        backoff: BackoffConfig {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            multiplier: 2.0,
            jitter: 0.2,
        },
        pacer: None,
        breaker: BreakerConfig {
            threshold: 100,
            cool_down: Duration::from_secs(60),
        },
        profile,
        start_after: Vec::new(),
        gate: None,
        account_window: None,
        bind_cap: None,
    };
    Upstream::start(config, tx, stop.clone())
}

async fn bound(up: &Upstream) {
    let started = tokio::time::Instant::now();
    while up.bound() == 0 {
        assert!(started.elapsed() < WAIT, "{} never bound", up.name());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn router(upstreams: Vec<Arc<Upstream>>, max_attempts: usize) -> Router {
    let rule = Rule {
        name: "all".to_owned(),
        clients: None,
        prefixes: vec!["3".to_owned()],
        source: None,
        data_codings: None,
        service_type: None,
        priority_flags: None,
        udh: None,
        flash: None,
        time_window: None,
        upstreams: upstreams
            .iter()
            .enumerate()
            .map(|(i, u)| RouteUpstream {
                name: u.name().to_owned(),
                priority: i as u32,
                weight: 1,
            })
            .collect(),
        strategy: Strategy::Failover,
        resubmit_on: vec![],
    };
    Router::new(
        Table::compile(vec![rule]).expect("valid"),
        upstreams,
        vec![],
        (*profile("generic")).clone(),
        RouterConfig {
            max_attempts,
            ..RouterConfig::default()
        },
    )
}

fn binary() -> SubmitSm {
    SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Tern".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "33612345678".try_into().expect("short"),
        ),
        data_coding: DataCoding(0x04),
        short_message: ShortMessage::new(&[0x01u8, 0x02, 0xFF][..]).expect("short"),
        ..SubmitSm::default()
    }
}

#[tokio::test]
async fn an_upstream_that_cannot_carry_it_uses_up_no_attempt() {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let (ovh_sim, binary_sim) = (sim().await, sim().await);
    let ovh = upstream("ovh", profile("ovh"), ovh_sim.addr().port(), &stop);
    // A generic SMSC that takes 8-bit data.
    let mut takes_binary = (*profile("generic")).clone();
    takes_binary.coding.accepted.push(0x04);
    let other = upstream(
        "binary",
        Arc::new(takes_binary),
        binary_sim.addr().port(),
        &stop,
    );
    bound(&ovh).await;
    bound(&other).await;
    // One attempt allowed: OVH, first in the route, is sent nothing.
    let router = router(vec![ovh, other], 1);
    match router.send("acme", &binary(), 7).await {
        SendOutcome::Submitted {
            upstream, attempts, ..
        } => {
            assert_eq!(upstream, "binary");
            let failure = attempts[0].failure.as_deref().unwrap_or_default();
            assert!(
                attempts[0].upstream == "ovh" && failure.contains("ovh cannot carry it"),
                "{attempts:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(ovh_sim.stats().submits, 0);
    assert_eq!(binary_sim.stats().submits, 1);
}

#[tokio::test]
async fn a_message_no_upstream_can_carry_ends_even_with_none_bound() {
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    // Nothing listens: no session at either, and still the answer is final.
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    };
    let ovh = upstream("ovh", profile("ovh"), free(), &stop);
    let generic = upstream("generic", profile("generic"), free(), &stop);
    let router = router(vec![ovh, generic], 3);
    match router.send("acme", &binary(), 7).await {
        SendOutcome::Rejected {
            canonical,
            status,
            attempts,
        } => {
            assert_eq!(canonical.state, FinalState::Rejectd);
            assert_eq!(canonical.reason, Reason::InvalidMessage);
            assert_eq!(status, CommandStatus::InvalidDataCoding);
            let names: Vec<&str> = attempts.iter().map(|a| a.upstream.as_str()).collect();
            assert_eq!(names, ["ovh", "generic"]);
            assert!(attempts.iter().all(|a| a
                .failure
                .as_deref()
                .unwrap_or_default()
                .contains("data_coding 0x04")));
        }
        other => panic!("{other:?}"),
    }
}
