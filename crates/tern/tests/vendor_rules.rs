//! Vendor rules in force end to end: the real `tern` binary between a test
//! client and the SMSC simulator, which counts what a vendor counts.
//!
//! - An upstream that throttles (10/s per session, `ESME_RTHROTTLED`) with
//!   no rate in the config: Tern learns the rate, every message arrives,
//!   and few submits are refused.
//! - OVH with no rate in the config: the profile's 20/s per connection,
//!   with margin, so the vendor never counts more than 20 in any second.
//! - Two config entries on one Infobip account: the account's 4 sessions,
//!   never a fifth bind.
//! - A throttle is not a failure: the circuit breaker stays closed.

use tern_testkit as common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{client, submit_sm, wait_until, Admin, Daemon};
use tern_codec::{Body, CommandStatus, RegisteredDelivery};
use tern_sim::smsc::{
    Account, Arrival, Behaviour, ReceiptBehaviour, ReceiptForm, Recorded, Reject, SimConfig,
    SimHandle, Simulator,
};

/// A config with one client ("acme"/"pw") and `upstreams` (TOML), routing
/// every destination starting with 34 to `route`.
fn config(port: u16, admin: u16, upstreams: &str, route: &str) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:{port}"
[admin]
address = "127.0.0.1:{admin}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
{upstreams}
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = [{route}]
"#
    )
}

/// One `[[upstream]]` on the simulator.
fn upstream(name: &str, profile: &str, sim: &SimHandle, extra: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "{name}"
profile = "{profile}"
host = "127.0.0.1"
port = {port}
system_id = "tern"
password = "x"
{extra}
"#,
        port = sim.addr().port()
    )
}

/// A config whose route `spain` spreads messages over `upstreams` by weight.
fn weighted_config(port: u16, admin: u16, upstreams: &str, names: &[&str]) -> String {
    let route: Vec<String> = names
        .iter()
        .map(|n| format!("{{ name = \"{n}\", weight = 1 }}"))
        .collect();
    config(port, admin, upstreams, &route.join(", ")).replace(
        "name = \"spain\"",
        "name = \"spain\"\nstrategy = \"weighted\"",
    )
}

/// The texts the simulator accepted.
fn accepted(sim: &SimHandle) -> HashSet<Vec<u8>> {
    sim.recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Submit { text, .. } => Some(text),
            Recorded::ReceiptAcked { .. } => None,
        })
        .collect()
}

/// Submits `n` messages through Tern (each answered `ESME_ROK`) and waits,
/// up to `within`, for the simulator to have accepted every one.
async fn send_all(port: u16, sim: &SimHandle, n: usize, within: Duration) {
    let session = client(port, "acme", "pw").bind().await;
    let texts: HashSet<Vec<u8>> = (0..n)
        .map(|k| format!("message {k}").into_bytes())
        .collect();
    for text in &texts {
        let sm = submit_sm("34600000001", text, RegisteredDelivery::NONE);
        let resp = session
            .handle
            .request(Body::SubmitSm(sm))
            .await
            .expect("answered");
        assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    }
    wait_until("every message reached the upstream", within, || async {
        accepted(sim).is_superset(&texts)
    })
    .await;
}

/// The most arrivals within any one second.
fn most_in_one_second(arrivals: &[Arrival]) -> usize {
    let mut times: Vec<Instant> = arrivals.iter().map(|a| a.at).collect();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[i..]
                .iter()
                .take_while(|t| t.duration_since(times[i]) < Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// The most submits surely unanswered at once, when every answer takes
/// `delay`: at each arrival, those that arrived less than `delay` (less a
/// 100 ms allowance for the answer on its way) before it.
fn most_in_flight(arrivals: &[Arrival], delay: Duration) -> usize {
    let held = delay - Duration::from_millis(100);
    let mut times: Vec<Instant> = arrivals.iter().map(|a| a.at).collect();
    times.sort();
    (0..times.len())
        .map(|i| {
            times[..=i]
                .iter()
                .filter(|t| times[i].duration_since(**t) < held)
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// A simulator started with `config`, recording what it receives.
async fn recording(config: SimConfig) -> SimHandle {
    let sim = Simulator::start(config).await.expect("simulator starts");
    sim.start_recording();
    sim
}

async fn bound(sim: &SimHandle, within: Duration) {
    wait_until("tern binds to the simulator", within, || async {
        !sim.sessions("tern").is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_upstream_with_no_rate_configured_gets_every_message_and_few_refusals() {
    let sim = recording(SimConfig {
        behaviour: Behaviour {
            throttle_per_second: Some(10),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await;
    let (port, admin) = (0, 0);
    let text = config(
        port,
        admin,
        &upstream("throttler", "generic", &sim, ""),
        "\"throttler\"",
    );
    let mut daemon = Daemon::start("rules-throttle", &text);
    let (port, admin) = (daemon.client_port(), daemon.admin().0.port());
    bound(&sim, Duration::from_secs(10)).await;
    let n = 100;
    send_all(port, &sim, n, Duration::from_secs(90)).await;
    let arrivals = sim.arrivals();
    let refused = arrivals
        .iter()
        .filter(|a| a.status == CommandStatus::Throttled)
        .count();
    assert!(
        refused * 10 <= arrivals.len(),
        "{refused} of {} submits refused with ESME_RTHROTTLED (at most 10 %)",
        arrivals.len()
    );
    let upstreams = Admin::at(admin).get("/api/upstreams").await;
    assert_eq!(upstreams[0]["breaker"], "closed", "{upstreams}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ovh_with_no_rate_configured_never_sees_more_than_20_in_a_second() {
    let sim = recording(SimConfig {
        behaviour: Behaviour {
            throttle_per_second: Some(20),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await;
    let (port, admin) = (0, 0);
    let text = config(port, admin, &upstream("ovh", "ovh", &sim, ""), "\"ovh\"");
    let mut daemon = Daemon::start("rules-ovh", &text);
    let port = daemon.client_port();
    bound(&sim, Duration::from_secs(10)).await;
    send_all(port, &sim, 60, Duration::from_secs(60)).await;
    let arrivals = sim.arrivals();
    assert_eq!(arrivals.len(), 60, "each message sent once");
    assert!(
        arrivals.iter().all(|a| a.status == CommandStatus::Ok),
        "not one refused"
    );
    let most = most_in_one_second(&arrivals);
    assert!(most <= 20, "OVH counted {most} submits in one second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_entries_on_one_infobip_account_never_bind_a_fifth_session() {
    let sim = recording(SimConfig {
        accounts: vec![Account {
            system_id: "tern".to_owned(),
            password: "x".to_owned(),
            max_binds: Some(4),
        }],
        ..SimConfig::default()
    })
    .await;
    let (port, admin) = (0, 0);
    // Same host, port and system_id: one account, whatever the entries.
    let upstreams = format!(
        "{}{}",
        upstream("primary", "infobip", &sim, "sessions = 4"),
        upstream("secondary", "infobip", &sim, "sessions = 4"),
    );
    let text = config(port, admin, &upstreams, "\"primary\", \"secondary\"");
    let mut daemon = Daemon::start("rules-infobip", &text);
    let (port, admin) = (daemon.client_port(), daemon.admin().0.port());
    wait_until(
        "the account's 4 sessions bind",
        Duration::from_secs(20),
        || async { sim.sessions("tern").len() == 4 },
    )
    .await;
    // Time for any fifth bind to be tried (reconnects start at 500 ms).
    tokio::time::sleep(Duration::from_secs(3)).await;
    send_all(port, &sim, 10, Duration::from_secs(30)).await;
    let stats = sim.stats();
    assert_eq!(
        sim.most_bound("tern"),
        4,
        "the account's 4 sessions, no more"
    );
    assert_eq!(
        stats.binds_over_cap, 0,
        "no bind beyond the account's cap was tried"
    );
    // Shared out, not first come first served: 2 each.
    let upstreams = Admin::at(admin).get("/api/upstreams").await;
    for k in 0..2 {
        assert_eq!(upstreams[k]["bound"], 2, "{upstreams}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_added_by_reload_on_a_full_infobip_account_waits_for_a_place() {
    let sim = recording(SimConfig {
        accounts: vec![Account {
            system_id: "tern".to_owned(),
            password: "x".to_owned(),
            max_binds: Some(4),
        }],
        ..SimConfig::default()
    })
    .await;
    // Port 0 in the file, also when rewritten: the listeners stay as bound.
    let (port, admin) = (0, 0);
    let primary = upstream("primary", "infobip", &sim, "sessions = 4");
    let mut daemon = Daemon::start(
        "rules-infobip-reload",
        &config(port, admin, &primary, "\"primary\""),
    );
    let (client_port, admin_api) = (daemon.client_port(), daemon.admin());
    wait_until(
        "the account's 4 sessions bind",
        Duration::from_secs(20),
        || async { sim.sessions("tern").len() == 4 },
    )
    .await;
    // The primary entry is unchanged and keeps its 4; the new one must not
    // bind beside them.
    let both = format!(
        "{primary}{}",
        upstream("secondary", "infobip", &sim, "sessions = 4")
    );
    let path = daemon.config_path();
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        config(port, admin, &both, "\"secondary\", \"primary\""),
    )
    .expect("write");
    std::fs::rename(&tmp, &path).expect("rename");
    daemon.signal("HUP");
    admin_api
        .until(
            "/api/reload",
            Duration::from_secs(10),
            "generation 2",
            |status| status["generation"].as_u64() == Some(2),
        )
        .await;
    // Time for any bind beyond the cap to be tried.
    tokio::time::sleep(Duration::from_secs(3)).await;
    send_all(client_port, &sim, 10, Duration::from_secs(30)).await;
    assert_eq!(
        sim.most_bound("tern"),
        4,
        "the account's 4 sessions, no more"
    );
    assert_eq!(
        sim.stats().binds_over_cap,
        0,
        "no bind beyond the cap was tried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttle_does_not_open_the_circuit_breaker() {
    // Every submit throttled for now: far more than the breaker's 5
    // failures in a row.
    let sim = recording(SimConfig {
        behaviour: Behaviour {
            reject: Some(Reject {
                fraction: 1.0,
                status: CommandStatus::Throttled,
            }),
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await;
    let (port, admin) = (0, 0);
    let text = config(
        port,
        admin,
        // Retried soon from the queue, so that five sends throttled to
        // the end (each 1 + 8 submits) come quickly: five failures would
        // open the breaker.
        &upstream(
            "throttler",
            "generic",
            &sim,
            "rate = 1000\n[router]\nretry_initial = \"200ms\"\nretry_max = \"1s\"",
        ),
        "\"throttler\"",
    );
    let mut daemon = Daemon::start("rules-breaker", &text);
    let (port, admin) = (daemon.client_port(), daemon.admin().0.port());
    bound(&sim, Duration::from_secs(10)).await;
    let session = client(port, "acme", "pw").bind().await;
    let sm = submit_sm("34600000001", "held back", RegisteredDelivery::NONE);
    let resp = session
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    wait_until(
        "the upstream throttled it more than 5 × 9 times",
        Duration::from_secs(60),
        || async { sim.arrivals().len() > 50 },
    )
    .await;
    let upstreams = Admin::at(admin).get("/api/upstreams").await;
    assert_eq!(upstreams[0]["breaker"], "closed", "{upstreams}");
    assert_eq!(upstreams[0]["available"], true, "{upstreams}");
    // Once the upstream takes it, the message goes: never given up.
    sim.set_behaviour(Behaviour::default()).expect("valid");
    wait_until("the message arrives", Duration::from_secs(60), || async {
        accepted(&sim).contains(b"held back".as_slice())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ovh_receipt_with_err_55_slows_the_upstream() {
    // OVH's DLR code 55: "Sender Temporarily Ratelimited".
    let sim = Simulator::start(SimConfig {
        behaviour: Behaviour {
            receipts: ReceiptBehaviour {
                form: ReceiptForm::Text,
                undeliverable_fraction: 1.0,
                undeliverable_err: 55,
                ..ReceiptBehaviour::default()
            },
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let (port, admin) = (0, 0);
    let text = config(port, admin, &upstream("ovh", "ovh", &sim, ""), "\"ovh\"");
    let mut daemon = Daemon::start("rules-dlr55", &text);
    let (port, admin) = (daemon.client_port(), daemon.admin().0.port());
    bound(&sim, Duration::from_secs(10)).await;
    let admin = Admin::at(admin);
    admin
        .until(
            "/api/upstreams",
            Duration::from_secs(10),
            "OVH paced at 18/s (20 per connection, with margin)",
            |u| u[0]["pace"] == 18.0,
        )
        .await;
    let mut session = client(port, "acme", "pw").bind().await;
    let sm = submit_sm("34600000001", "rate limited", RegisteredDelivery::ALWAYS);
    common::submit_id(&session.handle, sm).await;
    common::next_receipt(&mut session, Duration::from_secs(20)).await;
    let upstreams = admin.get("/api/upstreams").await;
    let pace = upstreams[0]["pace"].as_f64().expect("paced");
    assert!(pace < 18.0, "the receipt slowed the pacer: {upstreams}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ovh_zones_of_one_account_keep_10_in_flight_together() {
    // Two zones (two SMSCs), one account named in the config; every answer
    // takes a second, so messages pile up in flight.
    let delay = Duration::from_secs(1);
    let mut zones = Vec::new();
    for _ in 0..2 {
        let sim = Simulator::start(SimConfig {
            behaviour: Behaviour {
                response_delay: delay,
                ..Behaviour::default()
            },
            ..SimConfig::default()
        })
        .await
        .expect("simulator starts");
        sim.start_recording();
        zones.push(sim);
    }
    let (port, admin) = (0, 0);
    let upstreams = format!(
        "{}{}",
        upstream("zone1", "ovh", &zones[0], "account = \"ovh-main\""),
        upstream("zone2", "ovh", &zones[1], "account = \"ovh-main\""),
    );
    let text = weighted_config(port, admin, &upstreams, &["zone1", "zone2"]);
    let mut daemon = Daemon::start("rules-ovh-zones", &text);
    let port = daemon.client_port();
    for zone in &zones {
        bound(zone, Duration::from_secs(10)).await;
    }
    let session = client(port, "acme", "pw").bind().await;
    let n = 40;
    for k in 0..n {
        let sm = submit_sm("34600000001", format!("zone {k}"), RegisteredDelivery::NONE);
        common::submit_id(&session.handle, sm).await;
    }
    wait_until(
        "every message reached a zone",
        Duration::from_secs(60),
        || async { zones.iter().map(|z| accepted(z).len()).sum::<usize>() >= n },
    )
    .await;
    let arrivals: Vec<Arrival> = zones.iter().flat_map(|z| z.arrivals()).collect();
    assert!(
        zones.iter().all(|z| !z.arrivals().is_empty()),
        "both zones used"
    );
    let most = most_in_flight(&arrivals, delay);
    assert!(
        most <= 10,
        "{most} in flight over the account's zones (OVH allows 10)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tern_waits_for_an_answer_no_longer_than_the_vendors_response_timer() {
    // A vendor whose response timer is 1 s never answers: past that timer
    // it counts the submit failed, so Tern gives up on it then (not at its
    // own 30 s) and the next upstream of the route gets the message.
    let silent = Simulator::start(SimConfig {
        behaviour: Behaviour {
            drop_fraction: 1.0,
            ..Behaviour::default()
        },
        ..SimConfig::default()
    })
    .await
    .expect("simulator starts");
    let good = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    good.start_recording();
    let dir = common::TempDir::new("rules-response-timer");
    dir.write(
        "quick.toml",
        "name = \"quick\"\ndescription = \"answers within 1 s or the vendor counts it failed\"\n\
         versions = [\"3.4\"]\nbind_types = [\"transceiver\"]\n[timers]\nresponse_timeout_secs = 1\n",
    );
    let (port, admin) = (0, 0);
    let upstreams =
        upstream("quick", "quick", &silent, "") + &upstream("good", "generic", &good, "");
    let text = format!(
        "profiles = [\"quick.toml\"]\n{}",
        config(port, admin, &upstreams, "\"quick\", \"good\"")
    );
    let mut daemon = common::Launch::new().start(dir, &text);
    let port = daemon.client_port();
    bound(&silent, Duration::from_secs(10)).await;
    bound(&good, Duration::from_secs(10)).await;
    let session = client(port, "acme", "pw").bind().await;
    let sm = submit_sm("34600000001", b"on time", RegisteredDelivery::NONE);
    let resp = session
        .handle
        .request(Body::SubmitSm(sm))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    // Tern's own timeout is 30 s: well within it, the second upstream has
    // the message only if the first was given up at the vendor's 1 s.
    wait_until(
        "the next upstream got the message",
        Duration::from_secs(10),
        || async { accepted(&good).contains(b"on time".as_slice()) },
    )
    .await;
}
