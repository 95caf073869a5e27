//! The cost of finding a message by its upstream id in a store of 1 M.
//!
//! Setup (outside every measurement): a fresh store in a temporary
//! directory (removed at the end), `Durability::Fast` with a 1 s interval,
//! filled through the public API with 1 000 000 messages, each `accept`ed
//! and then given an attempt at upstream "ovh" with one decimal upstream id
//! (`record_attempt`), by one task per core on a multi-thread runtime. The
//! fill time is printed.
//!
//! Measured, for random stored messages:
//! - `decimal_hit`: the id as it was indexed (found under the first form);
//! - `hex_of_decimal_hit`: the same number in upper-case hexadecimal, as a
//!   receipt might report it (the first form misses, the second finds it);
//! - `miss`: a number never stored, between stored ones (every form is
//!   tried and misses);
//! - `candidates_only`: `upstream_id::candidates` for a decimal id, the
//!   string work a lookup does before it reads sled.
//!
//! Run: `cargo bench -p tern-storage --bench store`. Under `cargo test`
//! (no `--bench` argument) the store holds 10 000 messages so the target
//! stays quick; `TERN_BENCH_MESSAGES` sets the count either way.

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use tern_storage::{
    now_ms, upstream_id, Attempt, Durability, NewMessage, SledStore, StoreOptions, TernId,
};

const UPSTREAM: &str = "ovh";
/// Upstream ids are `BASE + STEP * i`: ten decimal digits, and a
/// hexadecimal form (0xEE6B2800…) that always holds letters, so it can
/// never be mistaken for another stored decimal id.
const BASE: u64 = 4_000_000_000;
const STEP: u64 = 7;
/// `BASE + STEP * i + MISS_OFFSET` is never stored, but sorts among the
/// stored ids, so a miss searches a random leaf like a hit does.
const MISS_OFFSET: u64 = 3;
const QUERIES: usize = 1 << 16;

fn upstream_number(i: u64) -> u64 {
    BASE + STEP * i
}

fn message_count() -> u64 {
    if let Ok(n) = std::env::var("TERN_BENCH_MESSAGES") {
        return n.parse().expect("TERN_BENCH_MESSAGES is a number");
    }
    if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        10_000
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// A fresh directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "tern-store-lookup-bench-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create the temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            eprintln!("could not remove {}: {e}", self.0.display());
        }
    }
}

/// Fills `store` with `count` submitted messages; returns their ids, in
/// upstream-id order.
fn fill(store: &Arc<SledStore>, count: u64) -> Vec<TernId> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start tokio");
    let tasks = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    // 120 octets, like a submit_sm with a short text.
    let pdu = Bytes::from(vec![0x42u8; 120]);
    let mut ids = vec![TernId::from_u64(0); count as usize];
    runtime.block_on(async {
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let store = store.clone();
                let pdu = pdu.clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    for i in (task..count).step_by(tasks as usize) {
                        let now = now_ms();
                        let message = NewMessage {
                            client: "bench".to_owned(),
                            pdu: pdu.clone(),
                            receipt_requested: true,
                            not_before_ms: now,
                            expires_ms: None,
                            dedup: None,
                            id_format: tern_storage::IdFormat::Hex,
                        };
                        let id = store.accept(message, now).await.expect("accept").id;
                        let attempt = Attempt {
                            upstream: UPSTREAM.to_owned(),
                            at_ms: now,
                            status: Some(0),
                            upstream_ids: vec![upstream_number(i).to_string()],
                            failure: None,
                        };
                        store
                            .record_attempt(id, attempt, None, now)
                            .await
                            .expect("record_attempt");
                        done.push((i, id));
                    }
                    done
                })
            })
            .collect();
        for handle in handles {
            for (i, id) in handle.await.expect("fill task") {
                ids[i as usize] = id;
            }
        }
    });
    ids
}

fn lookup(c: &mut Criterion) {
    let count = message_count();
    let dir = TempDir::new();
    let (store, _) = SledStore::open(
        dir.0.join("store"),
        StoreOptions {
            durability: Durability::Fast {
                interval: Duration::from_secs(1),
            },
            ..StoreOptions::default()
        },
    )
    .expect("open the store");
    let store = Arc::new(store);
    let load_before = loadavg();
    let started = Instant::now();
    let ids = fill(&store, count);
    let filled = started.elapsed();
    store.flush().expect("flush after filling");
    eprintln!(
        "filled {count} messages in {:.1} s ({:.0}/s; accept + record_attempt each), \
         then the flush took {:.1} s; load before [{load_before}] after [{}]",
        filled.as_secs_f64(),
        count as f64 / filled.as_secs_f64(),
        (started.elapsed() - filled).as_secs_f64(),
        loadavg(),
    );

    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let picks: Vec<u64> = (0..QUERIES).map(|_| rng.random_range(0..count)).collect();
    let decimal: Vec<String> = picks
        .iter()
        .map(|&i| upstream_number(i).to_string())
        .collect();
    let hex: Vec<String> = picks
        .iter()
        .map(|&i| format!("{:X}", upstream_number(i)))
        .collect();
    let misses: Vec<String> = picks
        .iter()
        .map(|&i| (upstream_number(i) + MISS_OFFSET).to_string())
        .collect();
    // Every query finds what it should, so the figures measure the right path.
    for (n, &i) in picks.iter().enumerate() {
        let want = Some(ids[i as usize]);
        assert_eq!(
            store
                .lookup_upstream(UPSTREAM, &decimal[n])
                .expect("lookup"),
            want
        );
        assert_eq!(
            store.lookup_upstream(UPSTREAM, &hex[n]).expect("lookup"),
            want
        );
        assert_eq!(
            store.lookup_upstream(UPSTREAM, &misses[n]).expect("lookup"),
            None
        );
    }

    let mut group = c.benchmark_group(format!("lookup_upstream/{count}"));
    for (name, queries) in [
        ("decimal_hit", &decimal),
        ("hex_of_decimal_hit", &hex),
        ("miss", &misses),
    ] {
        let mut next = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                next = (next + 1) % QUERIES;
                black_box(store.lookup_upstream(UPSTREAM, black_box(&queries[next])))
            })
        });
    }
    let mut next = 0;
    group.bench_function("candidates_only", |b| {
        b.iter(|| {
            next = (next + 1) % QUERIES;
            black_box(upstream_id::candidates(black_box(&decimal[next])))
        })
    });
    group.finish();
    eprintln!("load after measuring [{}]", loadavg());
    // Close sled before its directory goes.
    drop(store);
    drop(dir);
}

criterion_group!(benches, lookup);
criterion_main!(benches);
