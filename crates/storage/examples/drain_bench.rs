//! A long outage's backlog through `SledStore` alone, with this process's
//! resident memory per phase: what the store itself holds while a
//! backlog is stored, reopened and drained (the daemon's figure is
//! BENCHMARKS.md's "Long outage"; this one leaves the daemon out).
//!
//! 1. **store**: two clients' `--messages` in all are accepted by 100
//!    tasks, due at once, nothing claimed (the upstream is down);
//! 2. **reopen**: the store is closed and opened again (timed);
//! 3. **drain**: claims of up to 64 at a time, 256 sends at once, each
//!    an attempt accepted upstream (as the daemon's dispatcher does),
//!    until every message is submitted.
//!
//! Every 100 ms a sampler reads `VmRSS` from `/proc/self/status`; the
//! peak of each phase is printed, and during the drain every 2 s the RSS
//! with the memtable's entries and the checkpoints so far.
//!
//! ```text
//! cargo run --release -p tern-storage --example drain_bench -- --messages 1000000
//! ```
//!
//! `--dir` sets the parent of the temporary directory; `--memtable-mib`
//! and `--cache-mib` the store's memtable bound and sled's page cache;
//! `--receipts 1` ends each message with a receipt after its attempt, as
//! the daemon's drain does (a second write per message).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_storage::{now_ms, Attempt, NewMessage, Outcome, ReceiptUpdate, SledStore, StoreOptions};

const USAGE: &str =
    "usage: drain_bench [--messages N] [--dir PATH] [--memtable-mib N] [--cache-mib N] [--receipts 0|1]";

struct Args {
    messages: u64,
    dir: Option<PathBuf>,
    memtable_mib: Option<usize>,
    cache_mib: Option<u64>,
    /// Also end each message with a receipt, as the daemon's drain does.
    receipts: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        messages: 200_000,
        dir: None,
        memtable_mib: None,
        cache_mib: None,
        receipts: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| USAGE.to_owned())?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("not a number: {value}"))
        };
        match flag.as_str() {
            "--messages" => args.messages = number()?,
            "--dir" => args.dir = Some(PathBuf::from(&value)),
            "--memtable-mib" => args.memtable_mib = Some(number()? as usize),
            "--cache-mib" => args.cache_mib = Some(number()?),
            "--receipts" => args.receipts = number()? != 0,
            _ => return Err(USAGE.to_owned()),
        }
    }
    Ok(args)
}

/// Resident memory of this process, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// The peak RSS since the last [`Peak::take`].
struct Peak {
    peak: Arc<AtomicU64>,
    running: Arc<AtomicBool>,
}

impl Peak {
    fn start() -> Self {
        let peak = Arc::new(AtomicU64::new(0));
        let running = Arc::new(AtomicBool::new(true));
        let (p, r) = (peak.clone(), running.clone());
        std::thread::spawn(move || {
            while r.load(Ordering::Relaxed) {
                p.fetch_max(rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Self { peak, running }
    }

    fn take(&self) -> u64 {
        let now = rss_kib();
        self.peak.swap(now, Ordering::Relaxed).max(now)
    }
}

impl Drop for Peak {
    fn drop(&mut self) {
        self.running.store(false, Ordering::Relaxed);
    }
}

fn options(args: &Args) -> StoreOptions {
    let mut options = StoreOptions::default();
    if let Some(mib) = args.memtable_mib {
        options.memtable_bytes = mib << 20;
    }
    if let Some(mib) = args.cache_mib {
        options.cache_bytes = mib << 20;
    }
    options
}

fn message(n: u64) -> NewMessage {
    NewMessage {
        client: if n % 2 == 0 { "one" } else { "two" }.to_owned(),
        pdu: Bytes::from(vec![0x42; 80]),
        receipt_requested: false,
        not_before_ms: now_ms(),
        expires_ms: None,
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

async fn store_backlog(store: Arc<SledStore>, total: u64) -> Result<(), String> {
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (store, issued) = (store.clone(), issued.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return Ok::<(), String>(());
                }
                store
                    .accept(message(n), now_ms())
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

async fn drain(
    store: Arc<SledStore>,
    total: u64,
    receipts: bool,
    peak: &Peak,
) -> Result<(), String> {
    let permits = Arc::new(tokio::sync::Semaphore::new(256));
    let sent = Arc::new(AtomicU64::new(0));
    let mut claimed = 0;
    let mut report = Instant::now();
    while claimed < total {
        let free = permits.available_permits().max(1);
        let batch = store
            .claim_ready(now_ms(), free.min(64))
            .await
            .map_err(|e| e.to_string())?;
        if report.elapsed() >= Duration::from_secs(2) {
            report = Instant::now();
            println!(
                "  drain: {claimed} claimed, RSS {} KiB (peak {} KiB), memtable {} entries, {} checkpoints",
                rss_kib(),
                peak.peak.load(Ordering::Relaxed),
                store.memtable_len(),
                store.commit_stats().checkpoints.load(Ordering::Relaxed),
            );
        }
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        claimed += batch.len() as u64;
        for record in batch {
            let permit = permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let (store, sent) = (store.clone(), sent.clone());
            tokio::spawn(async move {
                let attempt = Attempt {
                    upstream: "up".to_owned(),
                    at_ms: now_ms(),
                    status: Some(0),
                    upstream_ids: vec![format!("{:x}", record.id.as_u64())],
                    failure: None,
                };
                if let Err(e) = store
                    .record_attempt(record.id, attempt, None, now_ms())
                    .await
                {
                    eprintln!("attempt: {e}");
                }
                if receipts {
                    let update = ReceiptUpdate {
                        outcome: Some(Outcome {
                            stat: "DELIVRD".to_owned(),
                            err: 0,
                            vendor_code: None,
                        }),
                        ..ReceiptUpdate::default()
                    };
                    if let Err(e) = store.record_receipt(record.id, update, now_ms()).await {
                        eprintln!("receipt: {e}");
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
                drop(permit);
            });
        }
    }
    let _ = permits.acquire_many(256).await;
    Ok(())
}

fn run(args: &Args) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting tokio: {e}"))?;
    let mut temp = tempfile::Builder::new();
    temp.prefix("tern-drain-bench-");
    let temp = match &args.dir {
        Some(dir) => temp.tempdir_in(dir),
        None => temp.tempdir(),
    }
    .map_err(|e| format!("temp dir: {e}"))?;
    let path = temp.path().join("store");
    let peak = Peak::start();

    let started = Instant::now();
    let (store, _) = SledStore::open(&path, options(args)).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    runtime.block_on(store_backlog(store.clone(), args.messages))?;
    println!(
        "store: {} messages in {:.1} s, peak RSS {} KiB",
        args.messages,
        started.elapsed().as_secs_f64(),
        peak.take()
    );
    drop(store);
    std::thread::sleep(Duration::from_secs(1));
    println!("closed: RSS {} KiB", rss_kib());

    let opened = Instant::now();
    let (store, _) = SledStore::open(&path, options(args)).map_err(|e| e.to_string())?;
    let store = Arc::new(store);
    println!(
        "reopen: {:.2} s, {} ready, peak RSS {} KiB",
        opened.elapsed().as_secs_f64(),
        store.ready_len(),
        peak.take()
    );

    let draining = Instant::now();
    runtime.block_on(drain(store.clone(), args.messages, args.receipts, &peak))?;
    println!(
        "drain: {} messages in {:.1} s, peak RSS {} KiB, {} left ready",
        args.messages,
        draining.elapsed().as_secs_f64(),
        peak.take(),
        store.ready_len()
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drain_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
