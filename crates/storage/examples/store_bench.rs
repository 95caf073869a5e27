//! Acknowledged writes per second through `SledStore::accept`.
//!
//! Opens a fresh store in a temporary directory (removed at the end), runs
//! `--writers` tokio tasks on a multi-thread runtime that each call
//! `accept` in a loop until `--messages` writes were issued in total, and
//! prints the wall time for all acknowledged writes, messages per second,
//! per-write latency, the group-commit counters, the CPU time and the
//! octets written to storage per message (from `/proc/self`), and the load
//! average before and after. Stops after `--deadline-secs` (60 by default)
//! whatever happens.
//!
//! ```text
//! cargo run --release -p tern-storage --example store_bench -- \
//!     --writers 64 --messages 200000 --mode durable
//! cargo run --release -p tern-storage --example store_bench -- \
//!     --writers 64 --messages 200000 --mode fast --interval-ms 100
//! cargo run --release -p tern-storage --example store_bench -- \
//!     --mode fsync --messages 2000
//! ```
//!
//! Modes: `durable` (`Durability::Durable`, each write returns once a flush
//! covering it finished), `fast` (`Durability::Fast`, sled flushes every
//! `--interval-ms`, 100 by default; writes return at once, the committer is
//! unused so its counters stay 0; the final flush is timed separately) and
//! `fsync` (no store: `--messages` rounds of a 4 KiB write and
//! `fdatasync`, appending to a growing file and then overwriting one block
//! in place, to show the disk's flush latency).
//!
//! Two more modes drive sled directly, without `SledStore`, to show where
//! `durable` mode's time goes. Each write is what `accept` writes (a
//! 170-octet record under `m`+id and an empty ready entry under
//! `r`+time+id, ids from `generate_id`) and is acknowledged after a flush
//! by one committer thread that serves every write queued meanwhile:
//! - `sled-per-write`: each writer calls `apply_batch` itself, then waits
//!   for the committer's flush (what `SledStore` did at first);
//! - `sled-merged`: each writer hands its writes to the committer, which
//!   applies everything queued as one `apply_batch`, flushes once and
//!   answers them all (what `commit.rs` does, less its separate syncer).
//!
//! And `sled-ceiling`: what sled alone can take on this machine, the upper
//! bound of any store on it. One thread, no tokio, no flush at all: the
//! same two keys per message, applied in batches of 1 000 messages (sled's
//! cheapest way in). A store that must also encode records, answer
//! writers and make writes durable cannot go faster than this.
//!
//! `--fdatasync` (sled modes only) makes the committer also `fdatasync`
//! sled's log file after each flush: sled 0.34's flush only issues
//! `sync_file_range`, which neither flushes the disk's write cache nor
//! commits the file's size.
//!
//! `--backend redis --redis redis://127.0.0.1:6379` measures `RedisStore`
//! instead (mode `durable` only): a single server, which must run with
//! `appendonly yes` and `appendfsync always` (the store checks). The keys
//! go under a fresh prefix and are left there: use a scratch server.
//! Messages go to 16 clients in turn (`bench0`…`bench15`), so they spread
//! over the store's shards as a real mix of clients would.
//!
//! `--dir` puts the temporary directory under another parent (the default
//! is the system temporary directory).

/// The daemon's allocator (see crates/tern/src/main.rs), so the store is
/// measured as it runs there. sled allocates on every insert; under
/// glibc's malloc the same runs were 1.5 to 2 times slower.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_storage::{
    now_ms, Durability, NewMessage, RedisDurability, RedisOptions, RedisStore, RedisTopology,
    SledStore, StoreOptions,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Durable,
    Fast,
    Fsync,
    SledPerWrite,
    SledMerged,
    SledCeiling,
}

#[derive(Debug)]
struct Args {
    writers: usize,
    messages: u64,
    mode: Mode,
    interval_ms: u64,
    deadline: Duration,
    threads: Option<usize>,
    dir: Option<PathBuf>,
    fdatasync: bool,
    redis: Option<String>,
}

const USAGE: &str = "usage: store_bench [--writers N] [--messages N] \
[--mode durable|fast|fsync|sled-per-write|sled-merged|sled-ceiling] [--interval-ms MS] [--deadline-secs S] [--threads N] [--dir PATH] [--fdatasync] \
[--backend sled|redis] [--redis redis://HOST:PORT]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        writers: 1,
        messages: 2_000,
        mode: Mode::Durable,
        interval_ms: 100,
        deadline: Duration::from_secs(60),
        threads: None,
        dir: None,
        fdatasync: false,
        redis: None,
    };
    let mut backend = "sled".to_owned();
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn number<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse().map_err(|_| format!("{flag}: not a number: {v}"))
        }
        match flag.as_str() {
            "--writers" => args.writers = number(&flag, value()?)?,
            "--messages" => args.messages = number(&flag, value()?)?,
            "--interval-ms" => args.interval_ms = number(&flag, value()?)?,
            "--deadline-secs" => args.deadline = Duration::from_secs(number(&flag, value()?)?),
            "--threads" => args.threads = Some(number(&flag, value()?)?),
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "--fdatasync" => args.fdatasync = true,
            "--backend" => backend = value()?,
            "--redis" => args.redis = Some(value()?),
            "--mode" => {
                args.mode = match value()?.as_str() {
                    "durable" => Mode::Durable,
                    "fast" => Mode::Fast,
                    "fsync" => Mode::Fsync,
                    "sled-per-write" => Mode::SledPerWrite,
                    "sled-merged" => Mode::SledMerged,
                    "sled-ceiling" => Mode::SledCeiling,
                    other => return Err(format!("--mode: see --help, not {other}")),
                }
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            // `cargo bench` passes this to every target; ignore it.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    match backend.as_str() {
        "sled" => args.redis = None,
        "redis" if args.redis.is_some() && args.mode == Mode::Durable => {}
        "redis" => return Err("--backend redis needs --redis ADDR and mode durable".to_owned()),
        other => return Err(format!("--backend: sled or redis, not {other}")),
    }
    if args.writers == 0 || args.messages == 0 {
        return Err("--writers and --messages must be at least 1".to_owned());
    }
    Ok(args)
}

/// A fresh directory, removed (with whatever is in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(parent: Option<&Path>) -> std::io::Result<Self> {
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = parent.join(format!("tern-store-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// A submit_sm as a client would send it: 120 octets, a 72-character
/// GSM text to a French mobile, receipt requested.
fn sample_pdu() -> Bytes {
    let text = b"Your verification code is 482913. It expires in 10 minutes. Do not share";
    let mut body = Vec::new();
    body.push(0); // service_type ""
    body.extend_from_slice(&[5, 0]); // source ton alphanumeric, npi unknown
    body.extend_from_slice(b"TERN\0");
    body.extend_from_slice(&[1, 1]); // destination ton international, npi isdn
    body.extend_from_slice(b"33612345678\0");
    body.extend_from_slice(&[0, 0, 0]); // esm_class, protocol_id, priority
    body.extend_from_slice(&[0, 0]); // schedule_delivery_time, validity_period
    body.extend_from_slice(&[1, 0, 0, 0]); // registered_delivery, replace, dcs, default msg
    body.push(text.len() as u8);
    body.extend_from_slice(text);
    let mut pdu = Vec::with_capacity(16 + body.len());
    pdu.extend_from_slice(&((16 + body.len()) as u32).to_be_bytes());
    pdu.extend_from_slice(&4u32.to_be_bytes()); // submit_sm
    pdu.extend_from_slice(&0u32.to_be_bytes());
    pdu.extend_from_slice(&1u32.to_be_bytes());
    pdu.extend_from_slice(&body);
    Bytes::from(pdu)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Octets this process has had written to storage so far (Linux).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|io| {
            io.lines()
                .find_map(|l| l.strip_prefix("write_bytes: ").map(str::to_owned))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// CPU seconds (user, system) this process has used so far (Linux).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the whole line, in clock
    // ticks (100 per second on Linux).
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let dir = match TempDir::new(args.dir.as_deref()) {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("creating a temporary directory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match args.mode {
        Mode::Fsync => fsync_bench(&args, &dir.0),
        Mode::SledCeiling => sled_ceiling(&args, &dir.0),
        _ => store_bench(&args, &dir.0),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `--messages` messages of two keys each straight into sled, 1 000 per
/// `apply_batch`, one thread, never flushed until the end (the flush is
/// timed apart): sled's own ceiling on this machine.
fn sled_ceiling(args: &Args, dir: &Path) -> Result<(), String> {
    const BATCH: u64 = 1_000;
    let db = sled::Config::new()
        .path(dir.join("ceiling"))
        .flush_every_ms(None)
        // As the store opens it.
        .mode(sled::Mode::HighThroughput)
        .open()
        .map_err(|e| format!("opening sled: {e}"))?;
    let record = vec![0x42u8; 170];
    let load_before = loadavg();
    let (user0, system0) = cpu_seconds();
    let deadline = Instant::now() + args.deadline;
    let start = Instant::now();
    let mut n: u64 = 0;
    while n < args.messages && Instant::now() < deadline {
        let mut batch = sled::Batch::default();
        for _ in 0..BATCH.min(args.messages - n) {
            let mut key = vec![b'm'];
            key.extend_from_slice(&n.to_be_bytes());
            batch.insert(key, record.as_slice());
            let mut ready = vec![b'r'];
            ready.extend_from_slice(&now_ms().to_be_bytes());
            ready.extend_from_slice(&n.to_be_bytes());
            batch.insert(ready, &[][..]);
            n += 1;
        }
        db.apply_batch(batch)
            .map_err(|e| format!("apply_batch: {e}"))?;
    }
    let applied = start.elapsed().as_secs_f64();
    let flush_start = Instant::now();
    db.flush().map_err(|e| format!("flush: {e}"))?;
    let flush = flush_start.elapsed().as_secs_f64();
    let (user1, system1) = cpu_seconds();
    println!(
        "mode=sled-ceiling messages={n} seconds={applied:.3} msgs_per_s={:.0} final_flush_s={flush:.3} \
         cpu_us_per_msg={:.1} load_before=[{load_before}] load_after=[{}]",
        n as f64 / applied,
        (user1 - user0 + system1 - system0) * 1e6 / n.max(1) as f64,
        loadavg(),
    );
    Ok(())
}

/// `--messages` rounds of writing 4 KiB and `fdatasync`: appending to a
/// growing file (the file's size changes each time, as a log's does), then
/// overwriting one block of a file whose size stays (only the data and the
/// disk's write cache).
fn fsync_bench(args: &Args, dir: &Path) -> Result<(), String> {
    for probe in ["append+fdatasync", "overwrite+fdatasync"] {
        let load_before = loadavg();
        let path = dir.join("fsync-probe");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("creating the probe file: {e}"))?;
        let block = vec![0x5au8; 4096];
        if probe.starts_with("overwrite") {
            file.write_all(&block)
                .map_err(|e| format!("writing: {e}"))?;
            file.sync_all().map_err(|e| format!("fsync: {e}"))?;
        }
        let mut latencies = Vec::with_capacity(args.messages as usize);
        let deadline = Instant::now() + args.deadline;
        let start = Instant::now();
        for _ in 0..args.messages {
            if Instant::now() >= deadline {
                break;
            }
            let t = Instant::now();
            if probe.starts_with("overwrite") {
                std::os::unix::fs::FileExt::write_all_at(&file, &block, 0)
                    .map_err(|e| format!("writing: {e}"))?;
            } else {
                file.write_all(&block)
                    .map_err(|e| format!("writing: {e}"))?;
            }
            file.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
            latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
        }
        let seconds = start.elapsed().as_secs_f64();
        let rounds = latencies.len();
        latencies.sort_unstable();
        println!(
            "mode=fsync probe={probe} rounds={rounds} seconds={seconds:.3} per_s={:.0} p50_us={} \
             p99_us={} max_us={} load_before=[{load_before}] load_after=[{}]",
            rounds as f64 / seconds,
            percentile(&latencies, 0.50),
            percentile(&latencies, 0.99),
            latencies.last().copied().unwrap_or(0),
            loadavg(),
        );
        drop(file);
        std::fs::remove_file(&path).map_err(|e| format!("removing the probe file: {e}"))?;
    }
    Ok(())
}

type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;
type Writes = Vec<(Vec<u8>, Vec<u8>)>;

/// sled driven directly, acknowledged by a group-committing thread.
struct RawSled {
    db: sled::Db,
    merged: bool,
    queue: std::sync::mpsc::Sender<(Writes, Waiter)>,
    flushes: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
}

impl RawSled {
    fn open(path: &Path, merged: bool, fdatasync: bool) -> Result<Self, String> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(256 * 1024 * 1024)
            .mode(sled::Mode::HighThroughput)
            .flush_every_ms(None)
            .open()
            .map_err(|e| format!("opening sled: {e}"))?;
        // sled 0.34 keeps its log in `db`; another descriptor's fdatasync
        // covers the same file.
        let log = if fdatasync {
            Some(
                std::fs::File::open(path.join("db"))
                    .map_err(|e| format!("opening sled's log: {e}"))?,
            )
        } else {
            None
        };
        let (queue, jobs) = std::sync::mpsc::channel::<(Writes, Waiter)>();
        let flushes = Arc::new(AtomicU64::new(0));
        let writes = Arc::new(AtomicU64::new(0));
        let (thread_db, thread_flushes, thread_writes) =
            (db.clone(), flushes.clone(), writes.clone());
        std::thread::Builder::new()
            .name("bench-commit".to_owned())
            .spawn(move || {
                while let Ok(first) = jobs.recv() {
                    let group: Vec<(Writes, Waiter)> =
                        std::iter::once(first).chain(jobs.try_iter()).collect();
                    let mut batch = sled::Batch::default();
                    let mut any = false;
                    for (writes, _) in &group {
                        for (k, v) in writes {
                            batch.insert(k.as_slice(), v.as_slice());
                            any = true;
                        }
                    }
                    let outcome = if any {
                        thread_db.apply_batch(batch).map_err(|e| e.to_string())
                    } else {
                        Ok(())
                    }
                    .and_then(|()| thread_db.flush().map(drop).map_err(|e| e.to_string()))
                    .and_then(|()| match &log {
                        Some(log) => log.sync_data().map_err(|e| e.to_string()),
                        None => Ok(()),
                    });
                    thread_flushes.fetch_add(1, Ordering::Relaxed);
                    thread_writes.fetch_add(group.len() as u64, Ordering::Relaxed);
                    for (_, waiter) in group {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })
            .map_err(|e| format!("starting the committer: {e}"))?;
        Ok(Self {
            db,
            merged,
            queue,
            flushes,
            writes,
        })
    }

    async fn accept(&self, record: &[u8], now: u64) -> Result<(), String> {
        let id = self.db.generate_id().map_err(|e| e.to_string())?;
        let mut message = vec![b'm'];
        message.extend_from_slice(&id.to_be_bytes());
        let mut ready = vec![b'r'];
        ready.extend_from_slice(&now.to_be_bytes());
        ready.extend_from_slice(&id.to_be_bytes());
        let mut writes = vec![(message, record.to_vec()), (ready, Vec::new())];
        if !self.merged {
            let mut batch = sled::Batch::default();
            for (k, v) in writes.drain(..) {
                batch.insert(k, v);
            }
            self.db.apply_batch(batch).map_err(|e| e.to_string())?;
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .send((writes, tx))
            .map_err(|_| "the committer has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the committer has stopped".to_owned())?
    }
}

/// What the writers write to.
enum Target {
    Store(Box<SledStore>),
    Raw(RawSled),
    Redis(Box<RedisStore>),
}

/// Spreads the bench's messages over clients, hence over Redis shards.
static NEXT_CLIENT: AtomicU64 = AtomicU64::new(0);

impl Target {
    async fn accept(&self, pdu: &Bytes, record: &[u8]) -> Result<(), String> {
        let now = now_ms();
        match self {
            Target::Store(store) => {
                let message = NewMessage {
                    client: "bench".to_owned(),
                    pdu: pdu.clone(),
                    receipt_requested: true,
                    not_before_ms: now,
                    expires_ms: None,
                    dedup: None,
                    id_format: tern_storage::IdFormat::Hex,
                };
                store
                    .accept(message, now)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Target::Raw(raw) => raw.accept(record, now).await,
            Target::Redis(store) => {
                let n = NEXT_CLIENT.fetch_add(1, Ordering::Relaxed) % 16;
                let message = NewMessage {
                    client: format!("bench{n}"),
                    pdu: pdu.clone(),
                    receipt_requested: true,
                    not_before_ms: now,
                    expires_ms: None,
                    dedup: None,
                    id_format: tern_storage::IdFormat::Hex,
                };
                store
                    .accept(message, now)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    }

    fn flush(&self) -> Result<(), String> {
        match self {
            Target::Store(store) => store.flush().map_err(|e| e.to_string()),
            Target::Raw(raw) => raw.db.flush().map(drop).map_err(|e| e.to_string()),
            // Every acknowledged write is already fsynced by the server.
            Target::Redis(_) => Ok(()),
        }
    }

    /// Flushes, writes and `fdatasync`s the committer did (the raw modes
    /// sync in their flush, or not at all).
    fn commit_counts(&self) -> (u64, u64, u64) {
        match self {
            Target::Store(store) => {
                let stats = store.commit_stats();
                (
                    stats.flushes.load(Ordering::Relaxed),
                    stats.writes.load(Ordering::Relaxed),
                    stats.syncs.load(Ordering::Relaxed),
                )
            }
            Target::Raw(raw) => (
                raw.flushes.load(Ordering::Relaxed),
                raw.writes.load(Ordering::Relaxed),
                0,
            ),
            Target::Redis(_) => (0, 0, 0),
        }
    }
}

fn store_bench(args: &Args, dir: &Path) -> Result<(), String> {
    let durability = match args.mode {
        Mode::Fast => Durability::Fast {
            interval: Duration::from_millis(args.interval_ms),
        },
        _ => Durability::Durable,
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.threads {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .build()
        .map_err(|e| format!("starting tokio: {e}"))?;

    let store_dir = dir.join("store");
    let target = match (&args.redis, args.mode) {
        (Some(address), _) => Target::Redis(Box::new(
            runtime
                .block_on(RedisStore::open(RedisOptions {
                    topology: RedisTopology::Single(address.clone()),
                    node: 0,
                    prefix: format!("bench-{}-{}", std::process::id(), now_ms()),
                    durability: RedisDurability::AppendFsyncAlways,
                    tls_ca: None,
                }))
                .map_err(|e| format!("opening the Redis store: {e}"))?
                .0,
        )),
        (None, Mode::SledPerWrite | Mode::SledMerged) => Target::Raw(RawSled::open(
            &store_dir,
            args.mode == Mode::SledMerged,
            args.fdatasync,
        )?),
        (None, _) => Target::Store(Box::new(
            SledStore::open(
                &store_dir,
                StoreOptions {
                    durability,
                    ..StoreOptions::default()
                },
            )
            .map_err(|e| format!("opening the store: {e}"))?
            .0,
        )),
    };
    let store = Arc::new(target);
    let pdu = sample_pdu();
    // About what postcard makes of a `MessageRecord` holding `pdu`.
    let record: Arc<[u8]> = std::iter::repeat_n(0x6du8, 50)
        .chain(pdu.iter().copied())
        .collect();
    let issued = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let total = args.messages;
    let deadline = Instant::now() + args.deadline;
    let load_before = loadavg();

    let written_before = written_bytes();
    let cpu_before = cpu_seconds();
    let start = Instant::now();
    let (latencies, timed_out) = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(args.writers);
        for _ in 0..args.writers {
            let store = store.clone();
            let (pdu, record) = (pdu.clone(), record.clone());
            let (issued, acked, failed) = (issued.clone(), acked.clone(), failed.clone());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while issued.fetch_add(1, Ordering::Relaxed) < total && Instant::now() < deadline {
                    let t = Instant::now();
                    match store.accept(&pdu, &record).await {
                        Ok(_) => {
                            latencies.push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                            acked.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => {
                            if failed.fetch_add(1, Ordering::Relaxed) == 0 {
                                eprintln!("accept failed: {e}");
                            }
                        }
                    }
                }
                latencies
            }));
        }
        // A write that never returns must not hang the run.
        let joined = tokio::time::timeout_at((deadline + Duration::from_secs(5)).into(), async {
            let mut all = Vec::new();
            for task in tasks {
                match task.await {
                    Ok(mut latencies) => all.append(&mut latencies),
                    Err(e) => eprintln!("writer task failed: {e}"),
                }
            }
            all
        })
        .await;
        match joined {
            Ok(all) => (all, false),
            Err(_) => (Vec::new(), true),
        }
    });
    let seconds = start.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds();
    let written = written_bytes().saturating_sub(written_before);
    let acked = acked.load(Ordering::Relaxed);
    let failed = failed.load(Ordering::Relaxed);

    let flush_ms = if args.mode == Mode::Fast {
        let t = Instant::now();
        store.flush().map_err(|e| format!("final flush: {e}"))?;
        let flush = t.elapsed().as_secs_f64();
        format!(
            " final_flush_ms={:.1} msgs_per_s_incl_final_flush={:.0}",
            flush * 1e3,
            acked as f64 / (seconds + flush)
        )
    } else {
        String::new()
    };
    let (flushes, writes, syncs) = store.commit_counts();
    let per_flush = if flushes == 0 {
        0.0
    } else {
        writes as f64 / flushes as f64
    };
    let mut latencies = latencies;
    latencies.sort_unstable();
    println!(
        "mode={} writers={} messages={acked} seconds={seconds:.3} msgs_per_s={:.0} \
         flushes={flushes} writes={writes} writes_per_flush={per_flush:.1} syncs={syncs} \
         p50_us={} p99_us={} cpu_us_per_msg={:.0} (user {:.2} s, sys {:.2} s) \
         disk_octets_per_msg={} failed={failed}{}{flush_ms} load_before=[{load_before}] load_after=[{}]",
        match args.mode {
            Mode::Fast => format!("fast({}ms)", args.interval_ms),
            Mode::SledPerWrite | Mode::SledMerged => format!(
                "{}{}",
                if args.mode == Mode::SledMerged { "sled-merged" } else { "sled-per-write" },
                if args.fdatasync { "+fdatasync" } else { "" }
            ),
            _ if args.redis.is_some() => "redis-durable".to_owned(),
            _ => "durable".to_owned(),
        },
        args.writers,
        acked as f64 / seconds,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        ((cpu_after.0 - cpu_before.0) + (cpu_after.1 - cpu_before.1)) * 1e6 / acked.max(1) as f64,
        cpu_after.0 - cpu_before.0,
        cpu_after.1 - cpu_before.1,
        written / acked.max(1),
        if timed_out || acked + failed < total {
            " STOPPED_AT_DEADLINE"
        } else {
            ""
        },
        loadavg(),
    );
    // Close sled before its directory goes; don't leave a runtime thread
    // blocked on a hung write behind.
    drop(store);
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}
