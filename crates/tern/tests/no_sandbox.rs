//! The daemon built without the `sandbox` feature (no SMSC simulator linked
//! in), as the real binary: it still relays to a real upstream, and
//! everything that would need the simulator says what is missing instead of
//! failing on an unknown key or subcommand.
//!
//! The binary under test is built with the features of the test run, so
//! these tests only exist in a run without the feature. CI runs them with
//! `cargo test -p tern --no-default-features --test no_sandbox` (.ci/run);
//! in the default build this file is empty, and run.rs and cli.rs test the
//! sandbox itself. The test process may still use the simulator (a
//! dev-dependency) as the upstream the daemon cannot tell from a vendor.
#![cfg(not(feature = "sandbox"))]

use tern_testkit as common;

use std::process::Command;
use std::time::Duration;

use common::{
    check_config, client, next_receipt, submit_id, submit_sm, wait_until, Daemon, Launch, TempDir,
    TERN,
};
use tern_codec::RegisteredDelivery;
use tern_sim::smsc::{SimConfig, Simulator};

/// How long a command that only explains itself may take.
const LIMIT: Duration = Duration::from_secs(20);

/// Runs `tern ARGS` in a scratch directory until it exits (at most
/// [`LIMIT`]): its exit code and everything it wrote.
fn tern(label: &str, args: &[&str]) -> (Option<i32>, String) {
    let dir = TempDir::new(label);
    let mut command = Command::new(TERN);
    command.args(args).current_dir(dir.path());
    let mut run = Launch::new().captured().start_command(dir, command);
    let status = run.wait(LIMIT);
    (status.code(), run.output())
}

/// `tern run` with no file would start the embedded default, whose
/// upstreams are simulators: it refuses, as for a bad configuration (78),
/// naming the missing simulator, the option to use instead and the
/// feature to build with, and starts nothing (no store is made).
#[test]
fn run_without_a_config_explains_what_is_missing() {
    let dir = TempDir::new("no-sandbox-run");
    let store = dir.join("data");
    let mut run = Launch::new().captured().start_embedded(dir);
    let status = run.wait(LIMIT);
    let output = run.output();
    assert_eq!(status.code(), Some(78), "{output}");
    assert!(output.contains("no sandbox simulator"), "{output}");
    assert!(output.contains("tern run --config FILE"), "{output}");
    assert!(output.contains("--features sandbox"), "{output}");
    assert!(!store.exists(), "a refused run opened a store");
}

/// The same for `route-test`, whose default is that configuration too.
#[test]
fn route_test_without_a_config_explains_what_is_missing() {
    let (code, output) = tern(
        "no-sandbox-route-test",
        &["route-test", "--client", "demo", "--to", "34600000001"],
    );
    assert_eq!(code, Some(78), "{output}");
    assert!(output.contains("no sandbox simulator"), "{output}");
    assert!(output.contains("tern route-test --config FILE"), "{output}");
}

/// `tern sim` and `tern bench` are listed, say they are not in this build,
/// and fail whatever their arguments, rather than being unknown to clap.
#[test]
fn simulator_commands_explain_themselves() {
    let (code, help) = tern("no-sandbox-help", &["--help"]);
    assert_eq!(code, Some(0), "{help}");
    for command in ["sim", "bench"] {
        let listed = help
            .lines()
            .find(|line| line.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("{command} not in --help: {help}"));
        assert!(listed.contains("Not in this build"), "{listed}");

        let (code, output) = tern(
            &format!("no-sandbox-{command}"),
            &[command, "--port", "0", "--anything"],
        );
        assert_eq!(code, Some(2), "{output}");
        assert!(
            output.contains(&format!("`tern {command}` runs the sandbox simulator")),
            "{output}"
        );
        assert!(output.contains("--features sandbox"), "{output}");
    }
}

/// A file with a `[[simulator]]` section is refused by `check-config` (and
/// so by `run`), with the section's file, line and column.
#[test]
fn a_simulator_section_is_refused_where_it_is() {
    let dir = TempDir::new("no-sandbox-check");
    let file = dir.write(
        "tern.toml",
        r#"[[listener]]
address = "127.0.0.1:2775"
[storage]
path = "data"
[[simulator]]
name = "sandbox-a"
address = "127.0.0.1:12776"
[[client]]
system_id = "acme"
passwords = ["pw"]
"#,
    );
    let (code, stdout, stderr) = check_config(&file, &[]);
    assert_eq!(code, 78, "{stdout}{stderr}");
    let expected = format!(
        "{}:7:11: simulator sandbox-a: this build of tern has no sandbox simulator",
        file.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

/// Without the simulator the daemon is still the whole broker: a message
/// from a client goes to a real upstream and its receipt comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_relays_to_a_real_upstream() {
    let upstream = Simulator::start(SimConfig::default())
        .await
        .expect("upstream starts");
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "vendor"
host = "127.0.0.1"
port = {upstream_port}
system_id = "tern"
password = "x"
[[route]]
name = "everything"
upstreams = ["vendor"]
"#,
        upstream_port = upstream.addr().port(),
    );
    let mut daemon = Daemon::start("no-sandbox-relay", &config);
    let port = daemon.client_port();
    wait_until("tern binds upstream", Duration::from_secs(10), || async {
        !upstream.sessions("tern").is_empty()
    })
    .await;
    let mut session = client(port, "acme", "pw").bind().await;
    let id = submit_id(
        &session.handle,
        submit_sm("34600000001", "hello", RegisteredDelivery::ALWAYS),
    )
    .await;
    assert_eq!(
        next_receipt(&mut session, Duration::from_secs(10)).await,
        id,
        "the receipt carries the id Tern gave"
    );
}
