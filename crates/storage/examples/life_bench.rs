//! Whole message lives through `SledStore`, and a restart's replay.
//!
//! `--mode life` (the default): `--writers` tokio tasks each run message
//! lives until `--messages` were accepted in all: accept, claim, attempt
//! with an upstream id, a final receipt with an item for the client's
//! outbox, the client's acknowledgement (four write groups, as in the
//! daemon: the claim writes nothing, see `sled_store/claims.rs`). Prints lives per second, the CPU per life (from `/proc/self`,
//! including the checkpoint that writes what the lives left into sled, and
//! without it), the keys applied to the memtable and written into sled per
//! life, and the committer's counters (`CommitStats`, whose fields tell what
//! reached sled where the store counts it).
//!
//! `--mode restart`: a child process (this program again) accepts
//! `--messages` messages with `--writers` writers and is killed with
//! SIGKILL once they are acknowledged, without a clean close; then the
//! store is opened here, its log replayed, and the open is timed, with
//! the size of the log it replayed.
//!
//! ```text
//! cargo run --release -p tern-storage --example life_bench -- \
//!     --writers 64 --messages 100000
//! cargo run --release -p tern-storage --example life_bench -- \
//!     --mode restart --writers 64 --messages 1000000
//! ```
//!
//! `--memtable-mib` sets `StoreOptions::memtable_bytes` (where the store
//! has it); `--dir` the parent of the temporary directory; `--clients` how
//! many client accounts the messages are spread over (1 by default: one
//! ready queue; with more, each life's ready entry sits below another
//! client's in sled, so the memtable asks sled whether it holds it).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_storage::{
    now_ms, Attempt, NewMessage, OutboxItem, Outcome, ReceiptUpdate, RelayedReceipt, SledStore,
    StoreOptions,
};

const CHILD: &str = "TERN_LIFE_BENCH_CHILD";

#[derive(Debug, Clone)]
struct Args {
    restart: bool,
    writers: usize,
    messages: u64,
    memtable_mib: Option<usize>,
    dir: Option<PathBuf>,
    clients: u64,
}

const USAGE: &str = "usage: life_bench [--mode life|restart] [--writers N] [--messages N] \
[--memtable-mib N] [--dir PATH] [--clients N]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        restart: false,
        writers: 64,
        messages: 50_000,
        memtable_mib: None,
        dir: None,
        clients: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|_| format!("not a number: {v}"));
        match flag.as_str() {
            "--mode" => args.restart = value()? == "restart",
            "--writers" => args.writers = number(value()?)? as usize,
            "--messages" => args.messages = number(value()?)?,
            "--memtable-mib" => args.memtable_mib = Some(number(value()?)? as usize),
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--clients" => args.clients = number(value()?)?.max(1),
            "--bench" => {}
            _ => return Err(USAGE.to_owned()),
        }
    }
    Ok(args)
}

fn options(args: &Args) -> StoreOptions {
    let mut options = StoreOptions::default();
    if let Some(mib) = args.memtable_mib {
        options.memtable_bytes = mib << 20;
    }
    options
}

/// The client account of message `n` of a run over `clients` accounts.
fn client_of(n: u64, clients: u64) -> String {
    format!("bench{}", n % clients)
}

fn message(client: String) -> NewMessage {
    NewMessage {
        client,
        pdu: Bytes::from(vec![0x42; 120]),
        receipt_requested: true,
        not_before_ms: 0,
        expires_ms: Some(now_ms() + 86_400_000),
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

/// User and system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |n: usize| {
        fields
            .get(n)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .filter_map(Result::ok)
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    })
}

/// One life; returns false when something failed (printed once).
async fn life(store: &SledStore, n: u64, clients: u64) -> Result<(), String> {
    let now = now_ms();
    let id = store
        .accept(message(client_of(n, clients)), now)
        .await
        .map_err(|e| e.to_string())?
        .id;
    for record in store.claim_ready(now, 4).await.map_err(|e| e.to_string())? {
        let attempt = Attempt {
            upstream: "up".to_owned(),
            at_ms: now,
            status: Some(0),
            upstream_ids: vec![format!("{:x}", record.id.as_u64() ^ n)],
            failure: None,
        };
        store
            .record_attempt(record.id, attempt, None, now)
            .await
            .map_err(|e| e.to_string())?;
        let item = OutboxItem {
            pdu: Bytes::from(vec![0x44; 160]),
            message: Some(record.id),
            stored_ms: now,
        };
        let relayed = RelayedReceipt {
            outbox_seq: 0,
            part: None,
            stat: "DELIVRD".to_owned(),
            err: 0,
            queued_ms: now,
            acked_ms: None,
        };
        let update = ReceiptUpdate {
            outcome: Some(Outcome {
                stat: "DELIVRD".to_owned(),
                err: 0,
                vendor_code: None,
            }),
            relay: Some((item, relayed)),
            ..ReceiptUpdate::default()
        };
        let seq = store
            .record_receipt(record.id, update, now)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(seq) = seq {
            store
                .outbox_ack(&record.client, seq)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    let _ = id;
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))
}

/// Runs `work` on `writers` tasks until `total` were counted.
fn run_writers(
    store: &Arc<SledStore>,
    writers: usize,
    total: u64,
    clients: u64,
    accept_only: bool,
) -> Result<(), String> {
    let runtime = runtime()?;
    let issued = Arc::new(AtomicU64::new(0));
    runtime.block_on(async {
        let mut tasks: Vec<tokio::task::JoinHandle<Result<(), String>>> = Vec::new();
        for _ in 0..writers {
            let (store, issued) = (store.clone(), issued.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let n = issued.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return Ok(());
                    }
                    if accept_only {
                        store
                            .accept(message(client_of(n, clients)), now_ms())
                            .await
                            .map_err(|e| e.to_string())?;
                    } else {
                        life(&store, n, clients).await?;
                    }
                }
            }));
        }
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    })
}

fn temp_dir(args: &Args) -> Result<PathBuf, String> {
    let parent = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let dir = parent.join(format!(
        "tern-life-bench-{}-{}",
        std::process::id(),
        now_ms()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

fn lives(args: &Args) -> Result<(), String> {
    let dir = temp_dir(args)?;
    let (store, _) =
        SledStore::open(dir.join("store"), options(args)).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    let cpu = cpu_seconds();
    let start = Instant::now();
    run_writers(&store, args.writers, args.messages, args.clients, false)?;
    let seconds = start.elapsed().as_secs_f64();
    let lived = cpu_seconds() - cpu;
    // The lives are not over for the store until sled holds them: a
    // checkpoint writes what is left of them (in the daemon, one every
    // few tens of thousands of lives, on its own thread).
    runtime()?
        .block_on(store.checkpoint())
        .map_err(|e| e.to_string())?;
    let cpu = cpu_seconds() - cpu;
    let stats = store.commit_stats();
    let per_life = |n: u64| n as f64 / args.messages as f64;
    println!(
        "life writers={} clients={} messages={} seconds={seconds:.2} lives_per_s={:.0} \
         cpu_us_per_life={:.0} (before the checkpoint {:.0}) applied_keys_per_life={:.2} \
         sled_keys_per_life={:.2}",
        args.writers,
        args.clients,
        args.messages,
        args.messages as f64 / seconds,
        cpu * 1e6 / args.messages as f64,
        lived * 1e6 / args.messages as f64,
        per_life(stats.applied_keys.load(Ordering::Relaxed)),
        per_life(stats.sled_keys.load(Ordering::Relaxed)),
    );
    println!("{:?}", store.commit_stats());
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn child(dir: &Path, args: &Args) -> Result<(), String> {
    let (store, _) = SledStore::open(dir, options(args)).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    run_writers(&store, args.writers, args.messages, args.clients, true)?;
    println!("accepted {:?}", store.commit_stats());
    let _ = std::io::stdout().flush();
    std::thread::sleep(Duration::from_secs(600));
    Ok(())
}

fn restart(args: &Args) -> Result<(), String> {
    let dir = temp_dir(args)?;
    let store = dir.join("store");
    let fill = Instant::now();
    let mut child = Command::new(std::env::current_exe().map_err(|e| e.to_string())?)
        .args(std::env::args().skip(1))
        .env(CHILD, &store)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting the child: {e}"))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let fill = fill.elapsed().as_secs_f64();
    child.kill().map_err(|e| e.to_string())?;
    child.wait().map_err(|e| e.to_string())?;
    let log = dir_bytes(&store.join("wal"));
    let start = Instant::now();
    let (opened, recovery) = SledStore::open(&store, options(args)).map_err(|e| e.to_string())?;
    let open = start.elapsed().as_secs_f64();
    println!(
        "restart messages={} fill_s={fill:.1} log_mib={:.1} open_s={open:.2} requeued={} \
         ready={} sled_dir_mib={:.0}",
        args.messages,
        log as f64 / (1 << 20) as f64,
        recovery.requeued,
        opened.ready_len(),
        opened.size_on_disk().unwrap_or(0) as f64 / (1 << 20) as f64,
    );
    print!("child: {line}");
    drop(opened);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match std::env::var_os(CHILD) {
        Some(dir) => child(Path::new(&dir), &args),
        None if args.restart => restart(&args),
        None => lives(&args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
