//! A route chosen by time window through the engine, with the clock
//! injected: the same router sends to the office-hours upstream or the
//! other one as its clock moves across a daylight-saving change in Madrid.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tern_codec::pdu::SubmitSm;
use tern_codec::{Address, CommandStatus, Npi, ShortMessage, Ton};
use tern_router::breaker::BreakerConfig;
use tern_router::engine::{Clock, Router, RouterConfig, SendOutcome};
use tern_router::strategy::Strategy;
use tern_router::table::{RouteUpstream, Rule, Table, TimeWindow};
use tern_router::upstream::{Upstream, UpstreamConfig, UpstreamRequest};
use tern_router::Profile;
use tern_session::backoff::BackoffConfig;
use tern_session::esme::BindParams;
use tern_session::SessionConfig;
use tern_sim::smsc::{SimConfig, SimHandle, Simulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

fn generic() -> Profile {
    Profile::builtin("generic").expect("listed").expect("valid")
}

async fn sim() -> SimHandle {
    Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts")
}

/// An upstream on `sim`, one session, receipts acknowledged and ignored.
fn upstream(name: &str, sim: &SimHandle, shutdown: &CancellationToken) -> Arc<Upstream> {
    let (tx, mut rx) = mpsc::channel::<UpstreamRequest>(16);
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let _ = r.request.responder.reject(CommandStatus::Ok).await;
        }
    });
    let config = UpstreamConfig {
        name: name.to_owned(),
        host: "127.0.0.1".to_owned(),
        port: sim.addr().port(),
        tls: None,
        bind: BindParams::new("tern", "secret").expect("short"),
        sessions: 1,
        session: SessionConfig {
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
        account_window: None,
        bind_cap: None,
        breaker: BreakerConfig {
            threshold: 100,
            cool_down: Duration::from_secs(60),
        },
        profile: Arc::new(generic()),
        start_after: Vec::new(),
        gate: None,
    };
    Upstream::start(config, tx, shutdown.clone())
}

async fn bound(up: &Upstream) {
    let started = tokio::time::Instant::now();
    while up.bound() == 0 {
        assert!(started.elapsed() < WAIT, "{} never bound", up.name());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn rule(name: &str, upstream: &str, window: Option<TimeWindow>) -> Rule {
    Rule {
        name: name.to_owned(),
        clients: None,
        prefixes: vec!["34".to_owned()],
        source: None,
        data_codings: None,
        service_type: None,
        priority_flags: None,
        udh: None,
        flash: None,
        time_window: window,
        upstreams: vec![RouteUpstream {
            name: upstream.to_owned(),
            priority: 0,
            weight: 1,
        }],
        strategy: Strategy::Failover,
        resubmit_on: Vec::new(),
    }
}

fn message() -> SubmitSm {
    SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Tern".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "34600000001".try_into().expect("short"),
        ),
        short_message: ShortMessage::new(&b"hello"[..]).expect("short"),
        ..SubmitSm::default()
    }
}

#[tokio::test]
async fn the_injected_clock_picks_the_time_window_route_across_daylight_saving() {
    let shutdown = CancellationToken::new();
    let _cancel = shutdown.clone().drop_guard();
    let (office_sim, other_sim) = (sim().await, sim().await);
    let office = upstream("office", &office_sim, &shutdown);
    let other = upstream("other", &other_sim, &shutdown);
    bound(&office).await;
    bound(&other).await;
    let weekdays = ["mon", "tue", "wed", "thu", "fri"]
        .iter()
        .map(|d| TimeWindow::day(d).expect("a day"))
        .fold(0, |mask, bit| mask | bit);
    let window = TimeWindow::new(weekdays, 8 * 60, 20 * 60, "Europe/Madrid").expect("valid");
    let table = Table::compile(vec![
        rule("office-hours", "office", Some(window)),
        rule("rest", "other", None),
    ])
    .expect("valid");
    let seconds = Arc::new(AtomicI64::new(0));
    let clock = {
        let seconds = Arc::clone(&seconds);
        Clock::from_fn(move || {
            jiff::Timestamp::from_second(seconds.load(Ordering::SeqCst)).expect("in range")
        })
    };
    let router = Router::new(
        table,
        vec![office, other],
        vec![],
        generic(),
        RouterConfig::default(),
    )
    .with_clock(clock);
    // Madrid moves to summer time on Sunday 2026-03-29 at 01:00 UTC.
    for (instant, expected) in [
        // Friday 08:30 CET.
        ("2026-03-27T07:30:00Z", "office"),
        // Friday 07:30 CET: not yet.
        ("2026-03-27T06:30:00Z", "other"),
        // Saturday noon: not a listed day.
        ("2026-03-28T11:00:00Z", "other"),
        // Monday 08:30 CEST (07:30 at the winter offset).
        ("2026-03-30T06:30:00Z", "office"),
        // Monday 20:30 CEST (19:30 at the winter offset): closed.
        ("2026-03-30T18:30:00Z", "other"),
    ] {
        let at: jiff::Timestamp = instant.parse().expect("instant");
        seconds.store(at.as_second(), Ordering::SeqCst);
        match router.send("acme", &message(), 1).await {
            SendOutcome::Submitted { upstream, .. } => {
                assert_eq!(upstream, expected, "at {instant}")
            }
            other => panic!("at {instant}: {other:?}"),
        }
    }
}
