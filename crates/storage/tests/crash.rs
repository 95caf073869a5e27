//! Crash test: a child process writes at full speed and reports each write
//! only once the store has acknowledged it; the parent kills it with SIGKILL
//! at a random moment, reopens the store and checks that
//!
//! - every acknowledged write is there (accepts, submissions with their
//!   upstream ids, finishes, outbox items);
//! - the indexes agree with the records (`verify`);
//! - the queues hold exactly the unfinished messages.
//!
//! Rounds accumulate in one store, so recovery is also tested on a store
//! that has crashed before. `TERN_CRASH_ROUNDS` sets the number of rounds
//! (default 12; a soak run can use hundreds). Then half as many rounds run
//! on a second store in `fast` mode with a sync interval longer than any
//! round: a process crash must lose nothing there either, since what the
//! log holds unsynced is still in the kernel's page cache.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::Rng;
use tern_storage::{
    Attempt, Durability, NewMessage, OutboxItem, Outcome, SledStore, State, StoreOptions, TernId,
};

const CHILD_DIR: &str = "TERN_CRASH_CHILD_DIR";
/// Set for a child that opens its store in fast mode.
const CHILD_FAST: &str = "TERN_CRASH_CHILD_FAST";
const WRITERS: usize = 8;

fn main() {
    match std::env::var_os(CHILD_DIR) {
        Some(dir) => child(PathBuf::from(dir)),
        None => parent(),
    }
}

/// The writer. Runs until killed (or, as a safety net, for 60 s).
fn child(dir: PathBuf) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (store, _) = SledStore::open(&dir, options(std::env::var_os(CHILD_FAST).is_some()))
            .expect("child opens the store");
        let store = Arc::new(store);
        let out = Arc::new(Mutex::new(std::io::stdout()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut tasks = Vec::new();
        for writer in 0..WRITERS {
            let (store, out) = (store.clone(), out.clone());
            tasks.push(tokio::spawn(async move {
                let report = |line: String| {
                    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                    let _ = writeln!(out, "{line}");
                    let _ = out.flush();
                };
                let mut n: u64 = 0;
                while Instant::now() < deadline {
                    n += 1;
                    let now = tern_storage::now_ms();
                    let msg = NewMessage {
                        client: format!("client{}", writer % 3),
                        pdu: Bytes::from(vec![writer as u8; 40]),
                        receipt_requested: true,
                        not_before_ms: now,
                        expires_ms: None,
                        dedup: None,
                        id_format: tern_storage::IdFormat::Hex,
                    };
                    let id = store.accept(msg, now).await.expect("accept").id;
                    report(format!("A {id}"));
                    if n % 3 == 0 {
                        // Only writer 0 claims: the store has one claimer.
                        if writer == 0 {
                            let claimed = store.claim_ready(now, 8).await.expect("claim");
                            for record in &claimed {
                                report(format!("C {}", record.id));
                            }
                            for record in claimed {
                                let upstream_id = format!("{:x}", record.id.as_u64() ^ 0xFFFF);
                                let attempt = Attempt {
                                    upstream: "up".to_owned(),
                                    at_ms: now,
                                    status: Some(0),
                                    upstream_ids: vec![upstream_id.clone()],
                                    failure: None,
                                };
                                store
                                    .record_attempt(record.id, attempt, None, now)
                                    .await
                                    .expect("attempt");
                                report(format!("S {} {upstream_id}", record.id));
                                if record.id.counter() % 2 == 0 {
                                    let outcome = Outcome {
                                        stat: "DELIVRD".to_owned(),
                                        err: 0,
                                        vendor_code: None,
                                    };
                                    store.finish(record.id, outcome, now).await.expect("finish");
                                    report(format!("F {}", record.id));
                                }
                            }
                        }
                    }
                    if n % 5 == 0 {
                        let client = format!("client{}", writer % 3);
                        let item = OutboxItem {
                            pdu: Bytes::from_static(b"receipt"),
                            message: Some(id),
                            stored_ms: now,
                        };
                        let seq = store.outbox_push(&client, &item).await.expect("outbox");
                        report(format!("O {client} {seq}"));
                    }
                }
            }));
        }
        for task in tasks {
            let _ = task.await;
        }
    });
}

/// What the child reported as acknowledged.
#[derive(Default)]
struct Acked {
    accepted: BTreeSet<TernId>,
    submitted: BTreeMap<TernId, String>,
    /// Claimed (in memory only: the claim writes nothing).
    claimed: BTreeSet<TernId>,
    finished: BTreeSet<TernId>,
    outbox: BTreeSet<(String, u64)>,
    /// Ids and outbox places acknowledged twice, in this round or across
    /// rounds: a number handed out again after a crash, which overwrites
    /// what had been acknowledged under it.
    reused: Vec<String>,
}

impl Acked {
    fn read(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let id = |w: &str| w.parse::<TernId>().expect("the child prints ids");
        match words.as_slice() {
            // The guards record the id or place; only one seen before goes
            // on to the arm, a new one falls through to `_`.
            ["A", i] if !self.accepted.insert(id(i)) => {
                self.reused.push(format!("id {i}"));
            }
            ["S", i, up] => {
                self.submitted.insert(id(i), (*up).to_owned());
            }
            ["C", i] => {
                self.claimed.insert(id(i));
            }
            ["F", i] => {
                self.finished.insert(id(i));
            }
            ["O", client, seq]
                if !self
                    .outbox
                    .insert(((*client).to_owned(), seq.parse().expect("seq"))) =>
            {
                self.reused.push(format!("outbox place {client}/{seq}"));
            }
            // A line cut by the kill was never acknowledged to us.
            _ => {}
        }
    }
}

/// Durable, or fast with a sync interval no round reaches.
fn options(fast: bool) -> StoreOptions {
    StoreOptions {
        node: 9,
        durability: if fast {
            Durability::Fast {
                interval: Duration::from_secs(10),
            }
        } else {
            Durability::Durable
        },
        ..StoreOptions::default()
    }
}

fn parent() {
    let rounds: usize = std::env::var("TERN_CRASH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(12);
    rounds_of_kills(rounds, false);
    rounds_of_kills(rounds.div_ceil(2), true);
}

fn rounds_of_kills(rounds: usize, fast: bool) {
    let mode = if fast { "fast" } else { "durable" };
    // Removed on drop, also when a round fails.
    let tmp = tempfile::Builder::new()
        .prefix(&format!("tern-crash-{mode}-"))
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path().join("store");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let mut rng = rand::rng();
    let started = Instant::now();
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().expect("own path"))
            .env(CHILD_DIR, &dir)
            .envs(fast.then_some((CHILD_FAST, "1")))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("piped");
        let sink = acked.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap_or_else(|p| p.into_inner()).read(&line);
            }
        });
        if round == 0 {
            // The first writer creates the store: on a loaded machine
            // (beside a build) that took longer than the wait below, and
            // the round was killed before any acknowledgement, which the
            // check takes for a writer that wrote nothing. Later rounds
            // may be killed anywhere, during the store's open included.
            let deadline = Instant::now() + Duration::from_secs(30);
            while acked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .accepted
                .is_empty()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(150..600)));
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap");
        assert!(
            !status.success(),
            "round {round}: the writer was killed, not finished"
        );
        reader.join().expect("reader");
        // Every third round the next writer starts straight after the kill,
        // with no clean open and close in between (as a daemon restarted by
        // systemd would): two crashes in a row. The next check covers both.
        if round % 3 == 1 && round + 1 < rounds {
            continue;
        }
        check(
            &dir,
            options(fast),
            &acked.lock().unwrap_or_else(|p| p.into_inner()),
            round,
        );
    }
    let acked = acked.lock().unwrap_or_else(|p| p.into_inner());
    println!(
        "crash: {rounds} SIGKILL rounds, {mode} mode, in {:.1?}: {} accepts, {} submissions, {} finishes, {} outbox items acknowledged, all present and consistent",
        started.elapsed(),
        acked.accepted.len(),
        acked.submitted.len(),
        acked.finished.len(),
        acked.outbox.len()
    );
}

fn check(dir: &Path, options: StoreOptions, acked: &Acked, round: usize) {
    let (store, recovery) = SledStore::open(dir, options)
        .unwrap_or_else(|e| panic!("round {round}: the store reopens after SIGKILL: {e}"));
    let verification = store.verify().expect("verify");
    assert!(
        verification.is_consistent(),
        "round {round}: {:#?}",
        verification.problems
    );
    assert!(
        !acked.accepted.is_empty(),
        "round {round}: the writer acknowledged nothing"
    );
    assert!(
        acked.reused.is_empty(),
        "round {round}: handed out again after a crash: {:?}",
        acked.reused
    );
    for id in &acked.accepted {
        let record = store.get(*id).expect("read");
        assert!(
            record.is_some(),
            "round {round}: acknowledged accept {id} lost"
        );
    }
    for (id, upstream_id) in &acked.submitted {
        assert_eq!(
            store.lookup_upstream("up", upstream_id).expect("lookup"),
            Some(*id),
            "round {round}: submission of {id} lost"
        );
        let state = store.get(*id).expect("read").expect("present").state;
        assert!(
            matches!(state, State::Submitted | State::Final),
            "round {round}: {id} is {state:?}"
        );
    }
    // A message claimed and not (known to be) attempted when the child was
    // killed: the claim was in memory only, so it is waiting again (or its
    // attempt was written and the report of it cut by the kill), never in
    // flight with nobody sending it.
    for id in acked
        .claimed
        .difference(&acked.submitted.keys().copied().collect())
    {
        let state = store.get(*id).expect("read").expect("present").state;
        assert!(
            matches!(state, State::Queued | State::Submitted | State::Final),
            "round {round}: claimed {id} is {state:?}"
        );
    }
    for id in &acked.finished {
        let state = store.get(*id).expect("read").expect("present").state;
        assert_eq!(state, State::Final, "round {round}: finish of {id} lost");
    }
    let mut pending: BTreeMap<&str, BTreeSet<u64>> = BTreeMap::new();
    for (client, seq) in &acked.outbox {
        let seqs = pending.entry(client.as_str()).or_insert_with(|| {
            let items = store
                .outbox_pending(client, None, usize::MAX)
                .expect("outbox");
            items.into_iter().map(|(s, _)| s).collect()
        });
        assert!(
            seqs.contains(seq),
            "round {round}: outbox item {client}/{seq} lost"
        );
    }
    // Queues hold exactly the unfinished messages: after recovery nothing is
    // in flight, every queued record has one ready entry and no other
    // record has any, and the rest of the unfinished are submitted.
    assert_eq!(
        verification.in_flight, 0,
        "round {round}: in flight after recovery"
    );
    assert_eq!(
        store.ready_len(),
        verification.queued,
        "round {round}: ready queue vs queued records"
    );
    assert_eq!(
        verification.unfinished,
        verification.queued + verification.submitted,
        "round {round}"
    );
    assert!(recovery.requeued <= verification.queued, "round {round}");
}
