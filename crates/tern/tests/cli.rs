//! The operator tools end to end: `tern send`, `tern sim`, `tern status`
//! and `tern bench`, each run as the real binary against a real daemon
//! (also the real binary) over loopback sockets. Every wait is bounded:
//! the tools by their own `--timeout`/`--deadline`, the helpers here by
//! attempt counts.

use tern_testkit as common;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{signal, Daemon, TERN};

/// A running `tern run` and the port its client listener took.
struct Running {
    daemon: Daemon,
    port: u16,
}

/// Starts the daemon with a client `acme`/`pw` on a port of its choosing,
/// `body` appended to the configuration (upstreams, route, admin…), and
/// waits until the client port accepts.
fn daemon(name: &str, body: &str) -> Running {
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
{body}
"#
    );
    let mut daemon = Daemon::start(&format!("cli-{name}"), &config);
    let port = daemon.client_port();
    wait_for_port(port);
    Running { daemon, port }
}

fn wait_for_port(port: u16) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    for _ in 0..200 {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listened on {port}");
}

/// `[[upstream]] primary` at `at` (`host = ...` and `port = ...`, or
/// `simulator = ...`) with `profile`, and a route for everything through
/// it.
fn upstream(at: &str, profile: &str) -> String {
    format!(
        r#"
[[upstream]]
name = "primary"
profile = "{profile}"
{at}
system_id = "tern"
password = "x"
[[route]]
name = "everything"
upstreams = ["primary"]
"#
    )
}

/// An in-process sandbox upstream of the daemon and the route to it.
fn in_process_simulator() -> String {
    format!(
        r#"
[[simulator]]
name = "sandbox"
address = "127.0.0.1:0"
receipt_delay = "100ms"
{}"#,
        upstream(SANDBOX, "generic")
    )
}

/// An upstream's way to the in-process simulator `sandbox`.
const SANDBOX: &str = "simulator = \"sandbox\"";

/// An upstream's way to a [`Sim`] process.
fn at_port(port: u16) -> String {
    format!("host = \"127.0.0.1\"\nport = {port}")
}

/// Runs `tern send` to the daemon as `acme`; the password comes from the
/// environment unless `args` gives one.
fn send(daemon: &Running, args: &[&str]) -> Output {
    Command::new(TERN)
        .arg("send")
        .args(["--port", &daemon.port.to_string()])
        .args(["--system-id", "acme", "--to", "34600000001"])
        .args(["--timeout", "30s"])
        .args(args)
        .env("TERN_PASSWORD", "pw")
        .env("RUST_LOG", "warn")
        .output()
        .expect("tern send runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn send_through_tern_prints_the_id_and_the_delivered_receipt() {
    let daemon = daemon("send", &in_process_simulator());
    let out = send(&daemon, &["--text", "hello from the cli test"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("message id: "))
        .unwrap_or_else(|| panic!("an id: {stdout}"))
        .trim()
        .to_owned();
    assert_eq!(id.len(), 16, "Tern's ids are 16 hex digits: {id}");
    assert!(
        stdout.contains(&format!("receipt for {id}: stat DELIVRD")),
        "{stdout}"
    );
    assert!(stdout.contains("receipted_message_id="), "{stdout}");
}

#[test]
fn a_wrong_password_names_the_bind_status_and_not_the_password() {
    let daemon = daemon("badpw", &in_process_simulator());
    let secret = "Wr0ngPw";
    let out = send(&daemon, &["--text", "hi", "--password", secret]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("ESME_RINVPASWD"), "{stderr}");
    assert!(!stdout.contains(secret) && !stderr.contains(secret));
}

/// A `tern sim` child process; interrupted (and then killed) on drop.
struct Sim {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// The port it took (it listens on port 0 and says which).
    port: u16,
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let mut child = Command::new(TERN)
            .arg("sim")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--receipt-delay", "100ms"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tern sim");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("tern sim prints its address");
        let port = first
            .split_once("listening on 127.0.0.1:")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("an address on 127.0.0.1: {first}"));
        Sim { child, lines, port }
    }

    /// SIGINT, then everything it printed until it exited.
    fn stop(self) -> String {
        signal(&self.child, "INT");
        let mut printed = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(10)) {
            printed.push(line);
        }
        printed.join("\n")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn send_through_tern_to_a_tern_sim_process() {
    let sim = Sim::start(&["--profile", "mensatek"]);
    let daemon = daemon("simproc", &upstream(&at_port(sim.port), "mensatek"));
    let out = send(&daemon, &["--text", "hola"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("stat DELIVRD"), "{stdout}");
    drop(daemon);
    let counters = sim.stop();
    assert!(counters.contains("tern sim: stopped"), "{counters}");
    assert!(counters.contains("submits 1 "), "{counters}");
}

#[test]
fn an_undelivered_message_exits_1_with_the_vendor_error_normalised() {
    let sim = Sim::start(&["--profile", "ovh", "--undeliverable-fraction", "1"]);
    let daemon = daemon("undeliv", &upstream(&at_port(sim.port), "ovh"));
    let out = send(&daemon, &["--text", "to a phone that is off"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    // OVH's PTT 3 "Unreachable Destination" is MAP 027, absent subscriber.
    assert!(stdout.contains("stat UNDELIV err 027"), "{stdout}");
    drop(daemon);
    drop(sim);
}

#[test]
fn status_without_an_admin_endpoint_exits_2_naming_the_address() {
    let _daemon = daemon("noadmin", &in_process_simulator());
    // Port 0 can be named but never connected to: refused at once.
    let admin = "127.0.0.1:0".to_owned();
    let out = Command::new(TERN)
        .args(["status", "--admin", &admin])
        .output()
        .expect("tern status runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&admin), "{}", text(&out.stderr));
}

#[test]
fn status_shows_the_upstreams_of_a_running_daemon() {
    let body = format!(
        r#"
[admin]
address = "127.0.0.1:0"
[[simulator]]
name = "sandbox"
address = "127.0.0.1:0"
{}"#,
        upstream(SANDBOX, "ovh")
    );
    let mut daemon = daemon("admin", &body);
    let admin = daemon.daemon.admin().0.to_string();
    let status = || {
        Command::new(TERN)
            .args(["status", "--admin", &admin])
            .output()
            .expect("tern status runs")
    };
    // Ready once the upstream is bound: a few attempts, each bounded.
    let mut out = status();
    for _ in 0..50 {
        if out.status.code() == Some(0) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        out = status();
    }
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("READY"), "{stdout}");
    let row = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("primary"))
        .unwrap_or_else(|| panic!("an upstream row: {stdout}"));
    assert!(row.contains("ovh") && row.contains("1/1"), "{row}");

    let out = Command::new(TERN)
        .args(["status", "--json", "--admin", &admin])
        .output()
        .expect("tern status runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(json["upstreams"][0]["name"], "primary");
    assert_eq!(json["ready"]["ready"], true);
}

#[test]
fn a_bench_with_http_reports_the_http_run_beside_the_smpp_one() {
    let out = Command::new(TERN)
        .args(["bench", "--http", "--messages", "300", "--sessions", "2"])
        .args([
            "--window",
            "5",
            "--no-receipts",
            "--json",
            "--deadline",
            "90s",
        ])
        .env("RUST_LOG", "warn")
        .output()
        .expect("tern bench runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let http = &report["http"];
    assert_eq!(http["concurrency"], 10, "sessions × window: {http}");
    assert_eq!(http["accepted"], 300, "{http}");
    assert_eq!(http["completed"], true, "{http}");
    assert!(
        http["submits_per_s"].as_f64().unwrap_or(0.0) > 0.0,
        "{http}"
    );
    assert!(http["tern_cpu_us_per_message"].is_f64(), "{http}");
    assert_eq!(report["through_tern"]["accepted"], 300);
    assert_eq!(report["completed"], true);
}

#[test]
fn a_small_bench_reports_both_throughputs_and_their_ratio() {
    let out = Command::new(TERN)
        .args(["bench", "--messages", "2000", "--sessions", "2", "--json"])
        .args(["--deadline", "90s"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("tern bench runs");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    for run in ["direct", "through_tern"] {
        let r = &report[run];
        assert!(r["submits_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{run}");
        assert!(r["receipts_per_s"].as_f64().unwrap_or(0.0) > 0.0, "{run}");
        assert_eq!(r["accepted"], 2000, "{run}");
        assert_eq!(
            r["receipts_matched"], 2000,
            "{run}: one receipt per message"
        );
    }
    assert!(report["ratio"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(report["tern"]["peak_rss_mb"].as_f64().unwrap_or(0.0) > 0.0);
    let cpu_s = report["tern"]["cpu_s"]
        .as_f64()
        .expect("Tern's CPU during (b)");
    // Read from the exited daemon before it is reaped: it includes the
    // stop (the store's last checkpoint), so it is never below `cpu_s`.
    let through_stop = report["tern"]["cpu_s_through_stop"]
        .as_f64()
        .expect("Tern's CPU through its stop");
    assert!(through_stop >= cpu_s, "{through_stop} < {cpu_s}");
    assert_eq!(report["completed"], true);
}
