//! Routing conditions end to end: the real `tern` binary between a test
//! client and SMSC simulators.
//!
//! - A route chosen by priority_flag: priority 1 reaches one simulator,
//!   priority 0 the other.
//! - A route chosen by a time window, with the real clock: the window is
//!   built around the current local time in Madrid, and a window that
//!   excludes it comes first and must be passed over.
//! - A weighted split (3:1) over 2 000 messages within ±5 % of each share.
//! - `tern route-test` explains its choice; `tern check-config` refuses bad
//!   routing values at their file, line and column.

use tern_testkit as common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use common::{client, submit_sm, wait_until, Daemon, TempDir};
use tern_codec::{Body, CommandStatus, PriorityFlag, RegisteredDelivery};
use tern_sim::smsc::{Recorded, SimConfig, SimHandle, Simulator};

/// A config with one client ("acme"/"pw"), `upstreams` (TOML) and `routes`.
fn config(port: u16, admin: u16, upstreams: &str, routes: &str) -> String {
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
{routes}
"#
    )
}

/// One `[[upstream]]` on the simulator.
fn upstream(name: &str, sim: &SimHandle) -> String {
    format!(
        r#"
[[upstream]]
name = "{name}"
profile = "generic"
host = "127.0.0.1"
port = {port}
system_id = "tern"
password = "x"
"#,
        port = sim.addr().port()
    )
}

/// A simulator recording what it accepts.
async fn recording() -> SimHandle {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.start_recording();
    sim
}

async fn bound(sim: &SimHandle) {
    wait_until(
        "tern binds to the simulator",
        Duration::from_secs(10),
        || async { !sim.sessions("tern").is_empty() },
    )
    .await;
}

/// The texts the simulator accepted.
fn accepted(sim: &SimHandle) -> Vec<String> {
    sim.recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Submit { text, .. } => Some(String::from_utf8_lossy(&text).into_owned()),
            Recorded::ReceiptAcked { .. } => None,
        })
        .collect()
}

/// Submits `text` to 34600000001 with `priority`; Tern must accept it.
async fn submit(handle: &tern_session::SessionHandle, text: &str, priority: u8) {
    let mut sm = submit_sm("34600000001", text, RegisteredDelivery::NONE);
    sm.priority_flag = PriorityFlag(priority);
    let resp = handle.request(Body::SubmitSm(sm)).await.expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
}

/// Waits until the simulators together accepted `n` messages.
async fn arrived(sims: &[&SimHandle], n: usize, within: Duration) {
    wait_until("every message reached a simulator", within, || async {
        sims.iter().map(|s| accepted(s).len()).sum::<usize>() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_is_chosen_by_priority_flag() {
    let (urgent, normal) = (recording().await, recording().await);
    let (port, admin) = (0, 0);
    let upstreams = format!("{}{}", upstream("a", &urgent), upstream("b", &normal));
    let routes = r#"
[[route]]
name = "urgent"
prefixes = ["34"]
priority_flags = [1]
upstreams = ["a"]

[[route]]
name = "normal"
prefixes = ["34"]
upstreams = ["b"]
"#;
    let mut daemon = Daemon::start("routing-priority", &config(port, admin, &upstreams, routes));
    let port = daemon.client_port();
    bound(&urgent).await;
    bound(&normal).await;
    let session = client(port, "acme", "pw").bind().await;
    for k in 0..5 {
        submit(&session.handle, &format!("urgent {k}"), 1).await;
        submit(&session.handle, &format!("normal {k}"), 0).await;
    }
    arrived(&[&urgent, &normal], 10, Duration::from_secs(30)).await;
    let to_a: HashSet<String> = accepted(&urgent).into_iter().collect();
    let to_b: HashSet<String> = accepted(&normal).into_iter().collect();
    assert_eq!(
        to_a,
        (0..5).map(|k| format!("urgent {k}")).collect(),
        "priority 1 goes to a"
    );
    assert_eq!(
        to_b,
        (0..5).map(|k| format!("normal {k}")).collect(),
        "priority 0 goes to b"
    );
}

/// "HH:MM" of `minutes` after midnight, wrapped to one day.
fn hhmm(minutes: i32) -> String {
    let m = minutes.rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_is_chosen_by_time_window_with_the_real_clock() {
    // Local time in Madrid now; the "open" window runs from an hour ago to
    // two hours on, on today's local day (so it also checks that days are
    // Madrid's days); the "closed" window is later today and comes first.
    let now = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::get("Europe/Madrid").expect("zone in the bundled tzdb"));
    let minute = i32::from(now.hour()) * 60 + i32::from(now.minute());
    let today = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        [now.weekday().to_monday_zero_offset() as usize];
    // An open window starting before midnight opened yesterday.
    let opened = if minute < 60 {
        ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
            [now.weekday().to_monday_zero_offset() as usize]
    } else {
        today
    };
    let (closed_sim, open_sim) = (recording().await, recording().await);
    let (port, admin) = (0, 0);
    let upstreams = format!("{}{}", upstream("a", &closed_sim), upstream("b", &open_sim));
    let routes = format!(
        r#"
[[route]]
name = "later"
prefixes = ["34"]
time_window = {{ days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], from = "{}", to = "{}", time_zone = "Europe/Madrid" }}
upstreams = ["a"]

[[route]]
name = "now"
prefixes = ["34"]
time_window = {{ days = ["{opened}"], from = "{}", to = "{}", time_zone = "Europe/Madrid" }}
upstreams = ["b"]
"#,
        hhmm(minute + 180),
        hhmm(minute + 240),
        hhmm(minute - 60),
        hhmm(minute + 120),
    );
    let mut daemon = Daemon::start("routing-window", &config(port, admin, &upstreams, &routes));
    let port = daemon.client_port();
    bound(&closed_sim).await;
    bound(&open_sim).await;
    let session = client(port, "acme", "pw").bind().await;
    for k in 0..3 {
        submit(&session.handle, &format!("now {k}"), 0).await;
    }
    arrived(&[&closed_sim, &open_sim], 3, Duration::from_secs(30)).await;
    assert_eq!(accepted(&open_sim).len(), 3, "the open window's route");
    assert!(
        accepted(&closed_sim).is_empty(),
        "the closed window's route"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_split_follows_the_weights_over_2000_messages() {
    let (three, one) = (recording().await, recording().await);
    let (port, admin) = (0, 0);
    let upstreams = format!("{}{}", upstream("three", &three), upstream("one", &one));
    let routes = r#"
[[route]]
name = "split"
strategy = "weighted"
upstreams = [{ name = "three", weight = 3 }, { name = "one", weight = 1 }]
"#;
    let mut daemon = Daemon::start("routing-weighted", &config(port, admin, &upstreams, routes));
    let port = daemon.client_port();
    bound(&three).await;
    bound(&one).await;
    let session = client(port, "acme", "pw").bind().await;
    let n = 2_000;
    for k in 0..n {
        submit(&session.handle, &format!("split {k}"), 0).await;
    }
    arrived(&[&three, &one], n, Duration::from_secs(120)).await;
    let (a, b) = (accepted(&three).len(), accepted(&one).len());
    assert_eq!(a + b, n, "every message once");
    // Shares 1 500 and 500, each within ±5 % of itself (75 and 25
    // messages): the stricter reading of "within ±5 %".
    assert!(a.abs_diff(1_500) <= 75, "weight 3 took {a} of {n}");
    assert!(b.abs_diff(500) <= 25, "weight 1 took {b} of {n}");
}

/// A config with a priority route, a time-window route and a default.
const ROUTE_TEST: &str = r#"
[[client]]
system_id = "acme"
passwords = ["pw"]

[[upstream]]
name = "fast"
host = "127.0.0.1"
port = 2776
system_id = "tern"
password = "x"

[[upstream]]
name = "cheap"
host = "127.0.0.1"
port = 2777
system_id = "tern"
password = "x"

[[route]]
name = "urgent"
prefixes = ["346"]
priority_flags = [1, 2, 3]
upstreams = ["fast", "cheap"]

[[route]]
name = "office-hours"
prefixes = ["34"]
clients = ["acme"]
time_window = { days = ["mon", "tue", "wed", "thu", "fri"], from = "08:00", to = "20:00", time_zone = "Europe/Madrid" }
upstreams = ["cheap", "fast"]

[[route]]
name = "default"
strategy = "weighted"
upstreams = [{ name = "fast", weight = 1 }, { name = "cheap", weight = 3 }]
"#;

/// `tern route-test --config FILE ARGS`: (exit code, stdout, stderr).
fn route_test(file: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(common::TERN)
        .arg("route-test")
        .arg("--config")
        .arg(file)
        .args(args)
        .output()
        .expect("run tern route-test");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn route_test_prints_the_route_the_order_and_why() {
    let dir = TempDir::new("route-test");
    let path = dir.write("tern.toml", ROUTE_TEST);

    // Priority 1 to a 346 number: the urgent route, first try.
    let (code, out, err) = route_test(
        &path,
        &[
            "--client",
            "acme",
            "--to",
            "+34600111222",
            "--priority",
            "1",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("route: urgent\n"), "{out}");
    assert!(
        out.contains("  matched: prefix 346; priority_flags 1,2,3\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  upstream order: fast (priority 0, weight 1), cheap (priority 1, weight 1)\n"
        ),
        "{out}"
    );
    assert!(!out.contains("skipped"), "{out}");

    // Priority 0 on a Wednesday at 10:30 in Madrid (summer time): the
    // urgent route is skipped for its priority, office hours match.
    let (code, out, err) = route_test(
        &path,
        &[
            "--client",
            "acme",
            "--to",
            "34600111222",
            "--at",
            "2026-07-01T08:30:00Z",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("skipped: urgent (prefix 346): priority_flags 1,2,3 does not hold\n"),
        "{out}"
    );
    assert!(out.contains("route: office-hours\n"), "{out}");
    assert!(
        out.contains("  matched: prefix 34; clients acme; time_window mon,tue,wed,thu,fri 08:00-20:00 Europe/Madrid\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  upstream order: cheap (priority 0, weight 1), fast (priority 1, weight 1)\n"
        ),
        "{out}"
    );

    // The same at 20:30 in Madrid: both skipped, the weighted default.
    let (code, out, err) = route_test(
        &path,
        &[
            "--client",
            "acme",
            "--to",
            "34600111222",
            "--at",
            "2026-07-01T18:30:00Z",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("skipped: office-hours (prefix 34): time_window mon,tue,wed,thu,fri 08:00-20:00 Europe/Madrid does not hold\n"),
        "{out}"
    );
    assert!(out.contains("route: default\n"), "{out}");
    assert!(out.contains("  matched: any destination\n"), "{out}");
    assert!(out.contains("  strategy: Weighted\n"), "{out}");
    assert!(
        out.contains(
            "  upstream order: cheap (priority 1, weight 3), fast (priority 0, weight 1)\n"
        ),
        "{out}"
    );
}

#[test]
fn check_config_shows_each_routes_conditions() {
    let dir = TempDir::new("config-route-conditions");
    let path = dir.write("tern.toml", ROUTE_TEST);
    let (code, out, err) = common::check_config(&path, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("  when: priority_flags 1,2,3\n"), "{out}");
    assert!(
        out.contains(
            "  when: clients acme; time_window mon,tue,wed,thu,fri 08:00-20:00 Europe/Madrid\n"
        ),
        "{out}"
    );
}

#[test]
fn route_test_says_no_route_and_exits_non_zero() {
    let dir = TempDir::new("route-test-none");
    let text = ROUTE_TEST.replace("name = \"default\"", "name = \"uk\"\nprefixes = [\"44\"]");
    let path = dir.write("tern.toml", &text);
    let (code, out, err) = route_test(
        &path,
        &["--client", "acme", "--to", "33600111222", "--priority", "1"],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("no route"), "{out}");
    // Bad flags are refused by the parser, not taken as zero.
    let (code, _, err) = route_test(&path, &["--client", "acme", "--to", "1", "--at", "noon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("RFC 3339"), "{err}");
}

#[test]
fn check_config_refuses_bad_routing_values_at_their_place() {
    let dir = TempDir::new("config-routing");
    let path = dir.write(
        "routes.toml",
        r#"[[upstream]]
name = "up"
host = "h"
port = 1
system_id = "tern"
password = "x"

[[route]]
name = "zone"
time_window = { from = "08:00", to = "20:00", time_zone = "Europe/Madird" }
upstreams = ["up"]

[[route]]
name = "day"
time_window = { days = ["mon", "funday"], from = "25:00" }
upstreams = ["up"]

[[route]]
name = "split"
strategy = "weighted"
upstreams = [{ name = "up", weight = 0 }]

[[route]]
name = "pattern"
source = "pattern:+34 6*"
priority_flags = [1, 4]
upstreams = ["up"]
"#,
    );
    let (code, out, err) = common::check_config(&path, &[]);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:10:59: time_window: unknown time zone \"Europe/Madird\""),
        format!("{file}:15:32: time_window: day \"funday\": expected mon, tue"),
        format!("{file}:15:50: time_window: from \"25:00\": expected a local time"),
        format!("{file}:21:13: route \"split\": strategy \"weighted\" needs weights that add up to more than 0"),
        format!("{file}:25:10: source \"pattern:+34 6*\": ' ' cannot appear in a source address"),
        format!("{file}:26:22: route \"pattern\": priority_flags: 4 is not a priority_flag (0 to 3)"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}
