//! Damaged store files, end to end with the real binary (issue 22, point 6).
//!
//! - A write-ahead log cut mid-record at its tail (a power cut while a group
//!   was written): the next start names the repair in its log (file and
//!   offset), keeps every whole record, and every acknowledged message is
//!   still sent once the upstream comes up.
//! - A checksum that fails in the middle of the log, and a flipped byte in
//!   sled's data file: the daemon refuses to start, exit status 65, naming
//!   the file (sled 0.34 would otherwise open on whatever came before the
//!   damage, silently).
//! - `tern check-store` on a healthy store, a store a daemon holds, a torn
//!   tail (and `--repair`), and a damaged sled file.

use tern_testkit as common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, submit_id, submit_sm, wait_until, Daemon, HeldPort, TERN};
use tern_codec::RegisteredDelivery;
use tern_sim::smsc::{Recorded, SimConfig, Simulator};

/// Messages accepted while the upstream is down.
const N: usize = 20;

/// One client ("acme"/"pw") and one upstream at `upstream`, where nothing
/// listens until the test starts a simulator there.
fn config(upstream: u16) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
durability = "durable"
[[client]]
system_id = "acme"
passwords = ["pw"]
[router]
retry_initial = "200ms"
retry_max = "1s"
[[upstream]]
name = "up"
profile = "generic"
host = "127.0.0.1"
port = {upstream}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["up"]
"#
    )
}

/// A daemon on a fresh store that accepted `N` messages ("m0".."m19")
/// with its upstream down, and the upstream's port, held.
async fn daemon_with_stored_messages(label: &str) -> (Daemon, HeldPort) {
    let upstream = HeldPort::new();
    let mut daemon = Daemon::start(label, &config(upstream.port));
    let port = daemon.client_port();
    let session = client(port, "acme", "pw").bind().await;
    for n in 0..N {
        let sm = submit_sm("34600000001", format!("m{n}"), RegisteredDelivery::NONE);
        submit_id(&session.handle, sm).await;
    }
    session.handle.close();
    (daemon, upstream)
}

fn store(daemon: &Daemon) -> PathBuf {
    daemon.dir.join("data")
}

/// SIGKILL, reaped.
fn kill(daemon: &mut Daemon) {
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().expect("reaped");
}

/// SIGTERM, and a clean exit (30 s at most).
fn stop(daemon: &mut Daemon) {
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}

/// The newest log file, and where each of its whole records starts and
/// ends (the format of crates/storage/src/wal.rs: length, CRC, payload,
/// up to a header of zeros).
fn wal_records(store: &Path) -> (PathBuf, Vec<(usize, usize)>) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(store.join("wal"))
        .expect("the log's directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    files.sort();
    let file = files.pop().expect("a log file");
    let bytes = std::fs::read(&file).expect("read the log");
    let mut records = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() && bytes[at..at + 8].iter().any(|b| *b != 0) {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        records.push((at, at + 8 + len));
        at += 8 + len;
    }
    (file, records)
}

/// Cuts the log after its whole records with the first half of a copy of
/// the last one: the file ends mid-record, as when the machine stopped
/// while a group was written. Returns the file and where the tear starts.
fn tear_the_tail(store: &Path) -> (PathBuf, usize) {
    let (file, records) = wal_records(store);
    let &(start, end) = records.last().expect("acknowledged writes are in the log");
    let bytes = std::fs::read(&file).expect("read");
    let mut torn = bytes[..end].to_vec();
    torn.extend_from_slice(&bytes[start..start + (end - start) / 2]);
    std::fs::write(&file, &torn).expect("write");
    (file, end)
}

/// `tern check-store` with `args`: its status and standard output.
fn check_store(args: &[&str], store: &Path) -> (ExitStatus, String) {
    let out = Command::new(TERN)
        .arg("check-store")
        .args(args)
        .arg(store)
        .output()
        .expect("run tern check-store");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

/// Starts the daemon again on its file and store, its log lines collected.
fn start_again(daemon: &mut Daemon) -> Arc<Mutex<Vec<String>>> {
    let mut child = Command::new(TERN)
        .args(["run", "--config"])
        .arg(daemon.config_path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tern");
    let lines = Arc::new(Mutex::new(Vec::new()));
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
    }
    daemon.child = child;
    lines
}

/// What the daemon logged so far, without colour codes.
fn logged(lines: &Mutex<Vec<String>>) -> String {
    let text = lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An SGR sequence: ESC [ … m.
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_log_tail_is_repaired_named_and_every_acknowledged_message_is_sent() {
    let (mut daemon, upstream) = daemon_with_stored_messages("store-torn").await;
    kill(&mut daemon);
    let (file, offset) = tear_the_tail(&store(&daemon));
    let lines = start_again(&mut daemon);
    wait_until(
        "the log names the repair",
        Duration::from_secs(20),
        || async { logged(&lines).contains("torn tail repaired") },
    )
    .await;
    let log = logged(&lines);
    let line = log
        .lines()
        .find(|l| l.contains("torn tail repaired"))
        .expect("the line");
    assert!(line.contains(&file.display().to_string()), "{line}");
    assert!(line.contains(&format!("offset={offset}")), "{line}");
    assert!(line.contains("cut short"), "{line}");

    let sim = Simulator::start_on(SimConfig::default(), upstream.listen())
        .expect("the upstream comes up");
    sim.start_recording();
    let texts = || -> Vec<String> {
        sim.recorded()
            .into_iter()
            .filter_map(|r| match r {
                Recorded::Submit { text, .. } => Some(String::from_utf8_lossy(&text).into_owned()),
                Recorded::ReceiptAcked { .. } => None,
            })
            .collect()
    };
    wait_until(
        "every acknowledged message reaches the upstream",
        Duration::from_secs(30),
        || async { texts().iter().collect::<HashSet<_>>().len() >= N },
    )
    .await;
    let sent: HashSet<String> = texts().into_iter().collect();
    let wanted: HashSet<String> = (0..N).map(|n| format!("m{n}")).collect();
    assert_eq!(sent, wanted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checksum_failing_mid_log_stops_the_start_naming_file_and_offset() {
    let (mut daemon, _upstream) = daemon_with_stored_messages("store-midlog").await;
    kill(&mut daemon);
    let (file, records) = wal_records(&store(&daemon));
    assert!(records.len() > 2, "{records:?}");
    // A byte of the first record's payload: whole records follow it.
    let mut bytes = std::fs::read(&file).expect("read");
    bytes[records[0].0 + 10] ^= 0xff;
    std::fs::write(&file, &bytes).expect("write");
    let (status, report) = check_store(&["--repair"], &store(&daemon));
    assert_eq!(status.code(), Some(1), "not repairable: {report}");
    let place = format!("damaged {} at offset 0: checksum mismatch", file.display());
    assert!(report.contains(&place), "{report}");

    let lines = start_again(&mut daemon);
    let status = daemon.wait(Duration::from_secs(30));
    let log = logged(&lines);
    assert_eq!(status.code(), Some(65), "{log}");
    assert!(log.contains(&file.display().to_string()), "{log}");
    assert!(log.contains("offset 0"), "{log}");
    assert!(log.contains("checksum mismatch"), "{log}");
    assert!(log.contains("tern check-store"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_sleds_file_stops_the_start_naming_the_file() {
    let (mut daemon, _upstream) = daemon_with_stored_messages("store-sled").await;
    // A clean stop: everything is in sled, checkpointed; the log is empty.
    stop(&mut daemon);
    let db = store(&daemon).join("db");
    let mut bytes = std::fs::read(&db).expect("read");
    bytes[100] ^= 0xff;
    std::fs::write(&db, &bytes).expect("write");

    let (status, report) = check_store(&[], &store(&daemon));
    assert_eq!(status.code(), Some(1), "{report}");
    assert!(report.contains(&db.display().to_string()), "{report}");
    assert!(report.contains("DAMAGED"), "{report}");

    let lines = start_again(&mut daemon);
    let status = daemon.wait(Duration::from_secs(30));
    let log = logged(&lines);
    assert_eq!(status.code(), Some(65), "{log}");
    assert!(log.contains(&db.display().to_string()), "{log}");
    assert!(log.contains("damaged store file"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_store_counts_a_healthy_store_and_names_a_torn_tail_until_repaired() {
    let (mut daemon, _upstream) = daemon_with_stored_messages("store-check").await;
    let data = store(&daemon);
    // A store a daemon holds is refused.
    let (status, report) = check_store(&[], &data);
    assert_eq!(status.code(), Some(2), "{report}");
    assert!(report.contains("in use"), "{report}");

    // Killed: the messages may be only in the log; the counts include it.
    kill(&mut daemon);
    let (status, report) = check_store(&[], &data);
    assert_eq!(status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("messages {N} ")), "{report}");
    assert!(report.contains("outbox items 0"), "{report}");
    assert!(report.contains("healthy"), "{report}");

    let (file, offset) = tear_the_tail(&data);
    let torn_size = std::fs::metadata(&file).expect("size").len();
    let (status, report) = check_store(&[], &data);
    assert_eq!(status.code(), Some(1), "{report}");
    let place = format!("{} at offset {offset}", file.display());
    assert!(report.contains(&format!("damaged {place}")), "{report}");
    assert!(report.contains(&format!("messages {N} ")), "{report}");
    assert_eq!(
        std::fs::metadata(&file).expect("size").len(),
        torn_size,
        "without --repair nothing changes"
    );

    let (status, report) = check_store(&["--repair"], &data);
    assert_eq!(status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("repaired {place}")), "{report}");
    assert_eq!(std::fs::metadata(&file).expect("size").len(), offset as u64);
    let (status, report) = check_store(&[], &data);
    assert_eq!(status.code(), Some(0), "{report}");
    assert!(report.contains(&format!("messages {N} ")), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_byte_in_sleds_conf_stops_the_start_naming_it() {
    let (mut daemon, _upstream) = daemon_with_stored_messages("store-conf").await;
    stop(&mut daemon);
    let conf = store(&daemon).join("conf");
    let mut bytes = std::fs::read(&conf).expect("read");
    bytes[5] ^= 0x01;
    std::fs::write(&conf, &bytes).expect("write");

    let (status, report) = check_store(&[], &store(&daemon));
    assert_eq!(status.code(), Some(1), "{report}");
    assert!(report.contains("`conf` file"), "{report}");

    let lines = start_again(&mut daemon);
    let status = daemon.wait(Duration::from_secs(30));
    let log = logged(&lines);
    assert_eq!(status.code(), Some(65), "{log}");
    assert!(log.contains("`conf` file"), "{log}");
    assert!(log.contains(&store(&daemon).display().to_string()), "{log}");
}
