//! Failover against simulator upstreams on loopback: the engine picks,
//! adapts, reads each answer through the vendor's profile and fails over
//! exactly when it should.

use std::sync::Arc;
use std::time::Duration;

use tern_codec::pdu::SubmitSm;
use tern_codec::{Address, CommandStatus, Npi, ShortMessage, Ton};
use tern_router::breaker::{BreakerConfig, BreakerState};
use tern_router::engine::{Router, RouterConfig, SendOutcome};
use tern_router::strategy::Strategy;
use tern_router::table::{RouteUpstream, Rule, Table};
use tern_router::upstream::{Upstream, UpstreamConfig};
use tern_router::{Class, Profile, Reason, Scope};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::BindParams;
use tern_session::SessionConfig;
use tern_sim::smsc::{Behaviour, ReceiptBehaviour, Reject, SimConfig, SimHandle, Simulator};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

fn generic() -> Profile {
    Profile::builtin("generic").expect("listed").expect("valid")
}

async fn sim(behaviour: Behaviour) -> SimHandle {
    Simulator::start(SimConfig {
        behaviour,
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts")
}

fn rejecting(status: CommandStatus) -> Behaviour {
    Behaviour {
        reject: Some(Reject {
            fraction: 1.0,
            status,
        }),
        ..Behaviour::default()
    }
}

/// Where an upstream that is down stays down: port 0 can be named but
/// no connection to it is ever accepted.
const DOWN: u16 = 0;

/// A loopback socket on a port of the kernel's choosing, bound but not
/// listening: connections to it are refused, as to an upstream that is
/// down, until the test listens on it, and no other socket can take the
/// port meanwhile. Nothing probes for a free port.
fn held_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    socket
        .bind(([127, 0, 0, 1], 0).into())
        .expect("bind 127.0.0.1:0");
    let port = socket.local_addr().expect("addr").port();
    (socket, port)
}

struct Net {
    shutdown: CancellationToken,
}

impl Drop for Net {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn upstream(net: &Net, name: &str, port: u16, breaker: BreakerConfig) -> Arc<Upstream> {
    upstream_with_window(net, name, port, breaker, 10)
}

/// The configuration every test upstream starts from: the generic
/// profile, one session, quick reconnects, no keep-alive.
fn upstream_config(name: &str, port: u16, breaker: BreakerConfig, window: usize) -> UpstreamConfig {
    UpstreamConfig {
        name: name.to_owned(),
        host: "127.0.0.1".to_owned(),
        port,
        tls: None,
        bind: BindParams::new("tern", "secret").expect("short"),
        sessions: 1,
        session: SessionConfig {
            window,
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
        breaker,
        profile: Arc::new(generic()),
        start_after: Vec::new(),
        gate: None,
    }
}

fn upstream_with_window(
    net: &Net,
    name: &str,
    port: u16,
    breaker: BreakerConfig,
    window: usize,
) -> Arc<Upstream> {
    let (tx, mut rx) = mpsc::channel(16);
    // Receipts are not this test's business: acknowledge them.
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let tern_router::upstream::UpstreamRequest { request, .. } = r;
            let _ = request.responder.reject(CommandStatus::Ok).await;
        }
    });
    Upstream::start(
        upstream_config(name, port, breaker, window),
        tx,
        net.shutdown.clone(),
    )
}

async fn bound(up: &Upstream) {
    let started = tokio::time::Instant::now();
    while up.bound() == 0 {
        assert!(started.elapsed() < WAIT, "{} never bound", up.name());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn router(upstreams: Vec<Arc<Upstream>>, strategy: Strategy) -> Router {
    router_with(upstreams, strategy, RouterConfig::default())
}

fn router_with(upstreams: Vec<Arc<Upstream>>, strategy: Strategy, config: RouterConfig) -> Router {
    let rule = Rule {
        name: "spain".to_owned(),
        clients: None,
        prefixes: vec!["34".to_owned()],
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
        strategy,
        resubmit_on: vec![Reason::AbsentSubscriber],
    };
    Router::new(
        Table::compile(vec![rule]).expect("valid"),
        upstreams,
        vec![],
        generic(),
        config,
    )
}

fn message(destination: &str) -> SubmitSm {
    SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Tern".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            destination.try_into().expect("short"),
        ),
        short_message: ShortMessage::new(&b"hello"[..]).expect("short"),
        ..SubmitSm::default()
    }
}

fn wide_breaker() -> BreakerConfig {
    BreakerConfig {
        threshold: 100,
        cool_down: Duration::from_secs(60),
    }
}

#[tokio::test]
async fn a_primary_that_is_down_fails_over_to_the_secondary() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let secondary_sim = sim(Behaviour::default()).await;
    let primary = upstream(&net, "primary", DOWN, wide_breaker());
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&secondary).await;
    let router = router(vec![primary, secondary], Strategy::Failover);
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Submitted {
            upstream,
            upstream_ids,
            ..
        } => {
            assert_eq!(upstream, "secondary");
            assert_eq!(upstream_ids.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(secondary_sim.stats().submits, 1);
}

async fn fails_over_on(status: CommandStatus) {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let primary_sim = sim(rejecting(status)).await;
    let secondary_sim = sim(Behaviour::default()).await;
    let primary = upstream(&net, "primary", primary_sim.addr().port(), wide_breaker());
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary, secondary], Strategy::Failover);
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Submitted {
            upstream, attempts, ..
        } => {
            assert_eq!(upstream, "secondary", "{status}");
            assert_eq!(attempts[0].upstream, "primary");
            assert_eq!(attempts[0].status, Some(status.code()));
        }
        other => panic!("{status}: {other:?}"),
    }
    assert_eq!(
        (primary_sim.stats().submits, secondary_sim.stats().submits),
        (1, 1)
    );
}

#[tokio::test]
async fn a_throttling_primary_fails_over() {
    fails_over_on(CommandStatus::Throttled).await;
}

/// A throttled part goes again to the same upstream once its pacer has
/// slowed down, and the throttle is no failure: the breaker stays closed
/// even at a threshold of one.
#[tokio::test]
async fn a_throttled_part_is_sent_again_once_paced_and_the_breaker_stays_closed() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    // One submit per second, then ESME_RTHROTTLED.
    let primary_sim = sim(Behaviour {
        throttle_per_second: Some(1),
        ..Behaviour::default()
    })
    .await;
    let secondary_sim = sim(Behaviour::default()).await;
    let (tx, _rx) = mpsc::channel(16);
    let pacer = Arc::new(
        tern_session::throttle::AdaptiveRate::new(
            tern_session::throttle::AdaptiveConfig::unknown_ceiling(),
        )
        .expect("valid"),
    );
    let breaker = BreakerConfig {
        threshold: 1,
        cool_down: Duration::from_secs(60),
    };
    let primary = Upstream::start(
        UpstreamConfig {
            pacer: Some(pacer.clone()),
            ..upstream_config("primary", primary_sim.addr().port(), breaker, 10)
        },
        tx,
        net.shutdown.clone(),
    );
    let secondary = upstream(&net, "secondary", secondary_sim.addr().port(), breaker);
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary.clone(), secondary], Strategy::Failover);
    for n in 0..2 {
        match router.send("acme", &message("34600000001"), 1).await {
            SendOutcome::Submitted {
                upstream, attempts, ..
            } => {
                assert_eq!(upstream, "primary", "message {n}");
                assert_eq!(attempts.len(), 1, "{attempts:?}");
            }
            other => panic!("{other:?}"),
        }
    }
    let stats = primary_sim.stats();
    assert!(
        stats.responses_with(CommandStatus::Throttled) >= 1,
        "{stats:?}"
    );
    assert_eq!(secondary_sim.stats().submits, 0);
    assert!(pacer.current_rate().is_finite(), "the pacer learnt a rate");
    assert!(matches!(
        primary.breaker().state(),
        BreakerState::Closed { failures: 0 }
    ));
}

#[tokio::test]
async fn a_temporary_error_fails_over() {
    fails_over_on(CommandStatus::SystemError).await;
}

#[tokio::test]
async fn a_permanent_error_ends_the_message_with_no_failover() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let primary_sim = sim(rejecting(CommandStatus::InvalidDestinationAddress)).await;
    let secondary_sim = sim(Behaviour::default()).await;
    let primary = upstream(&net, "primary", primary_sim.addr().port(), wide_breaker());
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary, secondary], Strategy::Failover);
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Rejected {
            canonical, status, ..
        } => {
            assert_eq!(status, CommandStatus::InvalidDestinationAddress);
            assert_eq!(
                (canonical.reason, canonical.class),
                (Reason::InvalidDestination, Class::Permanent)
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        secondary_sim.stats().submits,
        0,
        "no failover after a permanent error"
    );
}

#[tokio::test]
async fn with_every_upstream_down_the_message_waits_and_goes_once_one_is_back() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let (held, port) = held_port();
    let only = upstream(&net, "only", port, wide_breaker());
    let router = router(vec![only.clone()], Strategy::Failover);
    assert!(matches!(
        router.send("acme", &message("34600000001"), 1).await,
        SendOutcome::Retry { .. }
    ));
    let back = Simulator::start_on(SimConfig::default(), held.listen(1024).expect("listen"))
        .expect("the upstream comes back");
    bound(&only).await;
    assert!(matches!(
        router.send("acme", &message("34600000001"), 1).await,
        SendOutcome::Submitted { .. }
    ));
    assert_eq!(back.stats().submits, 1);
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_closes_after_a_good_probe() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let primary_sim = sim(rejecting(CommandStatus::SystemError)).await;
    let secondary_sim = sim(Behaviour::default()).await;
    let cool_down = Duration::from_millis(400);
    let primary = upstream(
        &net,
        "primary",
        primary_sim.addr().port(),
        BreakerConfig {
            threshold: 2,
            cool_down,
        },
    );
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary.clone(), secondary], Strategy::Failover);
    for _ in 0..2 {
        assert!(matches!(
            router.send("acme", &message("34600000001"), 1).await,
            SendOutcome::Submitted { .. }
        ));
    }
    assert!(matches!(
        primary.breaker().state(),
        BreakerState::Open { .. }
    ));
    // Open: the primary is skipped entirely.
    router.send("acme", &message("34600000001"), 1).await;
    assert_eq!(primary_sim.stats().submits, 2);
    // It recovers; after the cool-down one probe goes to it and closes the circuit.
    primary_sim
        .set_behaviour(Behaviour::default())
        .expect("valid");
    tokio::time::sleep(cool_down).await;
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Submitted { upstream, .. } => assert_eq!(upstream, "primary"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        primary.breaker().state(),
        BreakerState::Closed { failures: 0 }
    );
}

#[tokio::test]
async fn a_message_no_rule_matches_has_no_route() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let only = upstream(&net, "only", DOWN, wide_breaker());
    let router = router(vec![only], Strategy::Failover);
    assert_eq!(
        router.send("acme", &message("4477000000"), 1).await,
        SendOutcome::NoRoute {
            status: CommandStatus::InvalidDestinationAddress
        }
    );
    // The status is the operator's choice.
    let config = RouterConfig {
        no_route_status: CommandStatus::Vendor(0x4A2),
        ..RouterConfig::default()
    };
    let other = upstream(&net, "other", DOWN, wide_breaker());
    let router = router_with(vec![other], Strategy::Failover, config);
    assert_eq!(
        router.send("acme", &message("4477000000"), 1).await,
        SendOutcome::NoRoute {
            status: CommandStatus::Vendor(0x4A2)
        }
    );
}

#[tokio::test]
async fn the_pool_never_binds_more_than_the_vendor_allows() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let sim = sim(Behaviour::default()).await;
    let mut profile = generic();
    profile.limits.sessions_per_credential = Some(1);
    let (tx, _rx) = mpsc::channel(1);
    let up = Upstream::start(
        UpstreamConfig {
            sessions: 4,
            profile: Arc::new(profile),
            ..upstream_config("mensatek-like", sim.addr().port(), wide_breaker(), 10)
        },
        tx,
        net.shutdown.clone(),
    );
    bound(&up).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(up.pool_size(), 1);
    assert_eq!(sim.stats().binds, 1, "one bind where the vendor allows one");
}

#[tokio::test]
async fn a_window_that_stays_full_fails_over() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let slow = sim(Behaviour {
        response_delay: Duration::from_millis(400),
        ..Behaviour::default()
    })
    .await;
    let fast = sim(Behaviour::default()).await;
    let primary = upstream_with_window(&net, "primary", slow.addr().port(), wide_breaker(), 1);
    let secondary = upstream(&net, "secondary", fast.addr().port(), wide_breaker());
    bound(&primary).await;
    bound(&secondary).await;
    let config = RouterConfig {
        window_wait: Duration::from_millis(50),
        ..RouterConfig::default()
    };
    let router = Arc::new(router_with(
        vec![primary, secondary],
        Strategy::Failover,
        config,
    ));
    // The first message takes the primary's only window slot for 400 ms.
    let first = {
        let router = router.clone();
        tokio::spawn(async move { router.send("acme", &message("34600000001"), 1).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    match router.send("acme", &message("34600000002"), 2).await {
        SendOutcome::Submitted {
            upstream, attempts, ..
        } => {
            assert_eq!(upstream, "secondary");
            assert!(
                attempts[0]
                    .failure
                    .as_deref()
                    .is_some_and(|f| f.contains("window")),
                "{attempts:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    match first.await.expect("task") {
        SendOutcome::Submitted { upstream, .. } => assert_eq!(upstream, "primary"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_upstream_is_tried_past_the_send_deadline() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let slow_failure = sim(Behaviour {
        response_delay: Duration::from_millis(300),
        reject: Some(Reject {
            fraction: 1.0,
            status: CommandStatus::SystemError,
        }),
        ..Behaviour::default()
    })
    .await;
    let fine = sim(Behaviour::default()).await;
    let primary = upstream(&net, "primary", slow_failure.addr().port(), wide_breaker());
    let secondary = upstream(&net, "secondary", fine.addr().port(), wide_breaker());
    bound(&primary).await;
    bound(&secondary).await;
    let config = RouterConfig {
        deadline: Duration::from_millis(100),
        ..RouterConfig::default()
    };
    let router = router_with(vec![primary, secondary], Strategy::Failover, config);
    assert!(matches!(
        router.send("acme", &message("34600000001"), 1).await,
        SendOutcome::Retry { .. }
    ));
    assert_eq!(
        fine.stats().submits,
        0,
        "the deadline passed before the secondary's turn"
    );
}

#[tokio::test]
async fn the_retry_delay_doubles_up_to_its_cap() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let only = upstream(&net, "only", DOWN, wide_breaker());
    let config = RouterConfig {
        retry_initial: Duration::from_secs(5),
        retry_max: Duration::from_secs(60),
        ..RouterConfig::default()
    };
    let router = router_with(vec![only], Strategy::Failover, config);
    let delays: Vec<u64> = (1..=6).map(|n| router.retry_delay(n).as_secs()).collect();
    assert_eq!(delays, vec![5, 10, 20, 40, 60, 60]);
    assert_eq!(router.retry_delay(u32::MAX), Duration::from_secs(60));
}

#[tokio::test]
async fn a_failed_receipt_with_a_chosen_reason_goes_again_through_the_next_upstream() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    // The primary accepts, then reports the subscriber absent (GSM MAP 27).
    let primary_sim = sim(Behaviour {
        receipts: ReceiptBehaviour {
            undeliverable_fraction: 1.0,
            undeliverable_err: 27,
            ..ReceiptBehaviour::default()
        },
        ..Behaviour::default()
    })
    .await;
    let secondary_sim = sim(Behaviour::default()).await;
    let (tx, mut inbound) = mpsc::channel(16);
    // The primary's profile resubmits on a busy subscriber, besides what
    // the rule lists.
    let mut config = upstream_config("primary", primary_sim.addr().port(), wide_breaker(), 10);
    let mut profile = generic();
    profile.receipts.resubmit_on = vec![Reason::SubscriberBusy];
    config.profile = Arc::new(profile);
    let primary = Upstream::start(config, tx, net.shutdown.clone());
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary.clone(), secondary], Strategy::Failover);
    let mut msg = message("34600000001");
    msg.registered_delivery = tern_codec::RegisteredDelivery::ALWAYS;
    let SendOutcome::Submitted {
        rule,
        upstream,
        upstream_ids,
        ..
    } = router.send("acme", &msg, 1).await
    else {
        panic!("the primary accepts");
    };
    assert_eq!(upstream, "primary");

    let delivered = tokio::time::timeout(WAIT, inbound.recv())
        .await
        .expect("in time")
        .expect("a receipt");
    let tern_codec::Body::DeliverSm(sm) = &delivered.request.pdu.body else {
        panic!("{:?}", delivered.request.pdu)
    };
    let receipt = tern_router::receipt::read_receipt(primary.profile(), sm).expect("a receipt");
    delivered
        .request
        .responder
        .respond(
            CommandStatus::Ok,
            tern_codec::Body::DeliverSmResp(Default::default()),
        )
        .await
        .expect("acknowledged");
    assert!(receipt.upstream_id.eq_ignore_ascii_case(&upstream_ids[0]));
    // The generic profile reads err 27 as GSM MAP: absent subscriber.
    assert_eq!(receipt.canonical.reason, Reason::AbsentSubscriber);
    assert_eq!(rule, "spain");
    let used = [upstream.clone()];
    assert!(
        router.resubmits("acme", &msg, &upstream, &receipt, &used),
        "the rule re-sends on absent subscriber"
    );

    match router.send_skipping("acme", &msg, 1, &used).await {
        SendOutcome::Submitted { upstream, .. } => assert_eq!(upstream, "secondary"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (primary_sim.stats().submits, secondary_sim.stats().submits),
        (1, 1)
    );
    // Not again once every upstream of the route took it.
    let both = ["primary".to_owned(), "secondary".to_owned()];
    assert!(!router.resubmits("acme", &msg, "secondary", &receipt, &both));
    // Other reasons, or a delivered receipt, send nothing again.
    let with = |state, reason, class| tern_router::receipt::UpstreamReceipt {
        canonical: tern_router::Canonical {
            state,
            reason,
            class,
        },
        ..receipt.clone()
    };
    let delivered = with(
        tern_router::FinalState::Delivrd,
        Reason::None,
        Class::Permanent,
    );
    assert!(!router.resubmits("acme", &msg, &upstream, &delivered, &used));
    let blacklisted = with(
        tern_router::FinalState::Undeliv,
        Reason::Blacklisted,
        Class::Permanent,
    );
    assert!(!router.resubmits("acme", &msg, &upstream, &blacklisted, &used));
    // A code the vendor's profile marks as concerning it only (scope
    // "upstream"), whatever the route lists: another vendor may deliver.
    let not_here = tern_router::receipt::UpstreamReceipt {
        scope: Scope::Upstream,
        ..with(
            tern_router::FinalState::Undeliv,
            Reason::NoRoute,
            Class::Temporary,
        )
    };
    assert!(router.resubmits("acme", &msg, &upstream, &not_here, &used));
    let not_listed = with(
        tern_router::FinalState::Undeliv,
        Reason::NoRoute,
        Class::Temporary,
    );
    assert!(!router.resubmits("acme", &msg, &upstream, &not_listed, &used));
    // The profile's own list: from the primary, not from the secondary
    // (whose profile does not list it).
    let busy = with(
        tern_router::FinalState::Undeliv,
        Reason::SubscriberBusy,
        Class::Temporary,
    );
    assert!(router.resubmits("acme", &msg, &upstream, &busy, &used));
    assert!(!router.resubmits("acme", &msg, "secondary", &busy, &["secondary".to_owned()]));
}

/// An upstream with a built-in vendor profile.
fn vendor_upstream(net: &Net, name: &str, port: u16, profile: &str) -> Arc<Upstream> {
    let (tx, mut rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Some(r) = rx.recv().await {
            let tern_router::upstream::UpstreamRequest { request, .. } = r;
            let _ = request.responder.reject(CommandStatus::Ok).await;
        }
    });
    // A breaker that opens at the first failure: a refusal that concerns
    // one vendor must not count as one.
    let breaker = BreakerConfig {
        threshold: 1,
        cool_down: Duration::from_secs(60),
    };
    let mut config = upstream_config(name, port, breaker, 10);
    config.profile = Arc::new(Profile::builtin(profile).expect("listed").expect("valid"));
    Upstream::start(config, tx, net.shutdown.clone())
}

/// `profile`'s upstream refuses with `code`, one that concerns that vendor
/// only (a coding it does not carry): the next upstream takes the message
/// in the same send, and the refusing one stays healthy.
async fn a_vendor_refusal_fails_over(profile: &str, code: u32) {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let status = CommandStatus::from_code(code);
    let primary_sim = sim(rejecting(status)).await;
    let secondary_sim = sim(Behaviour::default()).await;
    let primary = vendor_upstream(&net, "primary", primary_sim.addr().port(), profile);
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary.clone(), secondary], Strategy::Failover);
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Submitted {
            upstream, attempts, ..
        } => {
            assert_eq!(upstream, "secondary", "{profile} 0x{code:X}");
            assert_eq!(attempts[0].status, Some(code));
        }
        other => panic!("{profile} 0x{code:X}: {other:?}"),
    }
    assert_eq!(
        (primary_sim.stats().submits, secondary_sim.stats().submits),
        (1, 1)
    );
    assert_eq!(
        primary.breaker().state(),
        BreakerState::Closed { failures: 0 }
    );
}

#[tokio::test]
async fn ovh_refusing_the_data_coding_fails_over() {
    // "ESME_RUNSDATACODING 0x00000401 Data Coding unsupported".
    a_vendor_refusal_fails_over("ovh", 0x401).await;
}

#[tokio::test]
async fn seed001_refusing_the_coding_or_the_length_fails_over() {
    // 0x0400 "Кодировка не распознана"; 0x0401 "160 байт".
    a_vendor_refusal_fails_over("seed001", 0x400).await;
    a_vendor_refusal_fails_over("seed001", 0x401).await;
}

#[tokio::test]
async fn telesign_refusing_an_unregistered_sender_fails_over() {
    // 0x4C2: the sender id cannot be used (not whitelisted) at Telesign.
    a_vendor_refusal_fails_over("telesign", 0x4C2).await;
}

#[tokio::test]
async fn an_invalid_destination_at_a_vendor_ends_the_message_with_no_failover() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    // Telesign 0x0B, "Invalid Destination Address": about the message.
    let primary_sim = sim(rejecting(CommandStatus::InvalidDestinationAddress)).await;
    let secondary_sim = sim(Behaviour::default()).await;
    let primary = vendor_upstream(&net, "primary", primary_sim.addr().port(), "telesign");
    let secondary = upstream(
        &net,
        "secondary",
        secondary_sim.addr().port(),
        wide_breaker(),
    );
    bound(&primary).await;
    bound(&secondary).await;
    let router = router(vec![primary, secondary], Strategy::Failover);
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Rejected { canonical, .. } => assert_eq!(
            (canonical.reason, canonical.class),
            (Reason::InvalidDestination, Class::Permanent)
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(secondary_sim.stats().submits, 0);
}

#[tokio::test]
async fn when_every_upstream_refuses_what_only_it_cannot_take_the_message_ends() {
    let net = Net {
        shutdown: CancellationToken::new(),
    };
    let status = CommandStatus::from_code(0x401);
    let one_sim = sim(rejecting(status)).await;
    let two_sim = sim(rejecting(status)).await;
    let one = vendor_upstream(&net, "one", one_sim.addr().port(), "ovh");
    let two = vendor_upstream(&net, "two", two_sim.addr().port(), "ovh");
    bound(&one).await;
    bound(&two).await;
    let router = router(vec![one, two], Strategy::Failover);
    // No later try changes a coding neither carries: it ends now, rather
    // than waiting in the retry queue until it expires.
    match router.send("acme", &message("34600000001"), 1).await {
        SendOutcome::Rejected {
            canonical,
            status,
            attempts,
        } => {
            assert_eq!(status.code(), 0x401);
            assert_eq!(
                (canonical.state, canonical.reason, canonical.class),
                (
                    tern_router::FinalState::Rejectd,
                    Reason::InvalidMessage,
                    Class::Permanent
                )
            );
            assert_eq!(attempts.len(), 2);
        }
        other => panic!("{other:?}"),
    }
}
