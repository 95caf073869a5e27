//! `StoreOptions::sync_observer` (src/commit.rs): told once per
//! `fdatasync` of the write-ahead log, whichever of the logger's three
//! sync points made it, and never for a group that is not synced.
//!
//! - durable mode: every durable write is synced, and the observer sees
//!   exactly the syncs the committer counts;
//! - a claim (an applied-only write) is synced by the lazy sync once the
//!   log goes quiet, and the observer sees that one too;
//! - fast mode with an interval no test reaches: writes are not synced
//!   and the observer is not called, until a flush and the close.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TempDir;
use tern_storage::{Attempt, Durability, NewMessage, SledStore, StoreOptions, SyncObserver};

/// What the observer was told: how many syncs, and their total time.
#[derive(Default)]
struct Seen {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl Seen {
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

fn open(dir: &TempDir, durability: Durability) -> (SledStore, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let told = seen.clone();
    let options = StoreOptions {
        durability,
        sync_observer: Some(SyncObserver::new(move |took: Duration| {
            told.calls.fetch_add(1, Ordering::SeqCst);
            told.nanos
                .fetch_add(took.as_nanos() as u64, Ordering::SeqCst);
        })),
        ..StoreOptions::default()
    };
    let (store, _) = SledStore::open(&dir.0, options).expect("opens");
    (store, seen)
}

fn message(n: u64) -> NewMessage {
    NewMessage {
        client: "acme".to_owned(),
        pdu: Bytes::from(format!("submit_sm number {n}")),
        receipt_requested: false,
        not_before_ms: 1,
        expires_ms: None,
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

fn syncs(store: &SledStore) -> u64 {
    store.commit_stats().syncs.load(Ordering::SeqCst)
}

#[tokio::test]
async fn each_durable_write_is_one_sync_the_observer_is_told_of() {
    let dir = TempDir::new("sync-observer-durable");
    let (store, seen) = open(&dir, Durability::Durable);
    // The first accept also makes the sequence's block durable.
    store.accept(message(0), 1).await.expect("accepts");
    let before = seen.calls();
    assert!(before >= 1, "a durable accept is synced");
    for n in 1..=20 {
        // One at a time: each is its own group, and its own sync.
        store.accept(message(n), 1).await.expect("accepts");
    }
    assert_eq!(seen.calls(), before + 20, "one sync per durable write");
    assert_eq!(seen.calls(), syncs(&store), "the observer sees every sync");
    assert!(
        seen.nanos.load(Ordering::SeqCst) > 0,
        "a sync takes some time"
    );
}

#[tokio::test]
async fn the_lazy_sync_of_an_attempt_is_observed_too() {
    let dir = TempDir::new("sync-observer-lazy");
    let (store, seen) = open(&dir, Durability::Durable);
    let id = store.accept(message(0), 1).await.expect("accepts").id;
    // A claim writes nothing on sled (the claimed ids are kept in memory).
    assert_eq!(store.claim_ready(2, 10).await.expect("claims").len(), 1);
    let before = seen.calls();
    // An attempt waits for its application only; the logger syncs it once
    // the log has been quiet for LAZY_SYNC (10 ms).
    let attempt = Attempt {
        upstream: "up".to_owned(),
        at_ms: 2,
        status: Some(0),
        upstream_ids: vec!["U1".to_owned()],
        failure: None,
    };
    store
        .record_attempt(id, attempt, None, 2)
        .await
        .expect("records the attempt");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.calls() == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        seen.calls(),
        before + 1,
        "the attempt's group was synced once"
    );
    assert_eq!(seen.calls(), syncs(&store), "the observer sees every sync");
}

#[tokio::test]
async fn writes_not_synced_are_not_observed_until_a_flush_and_the_close() {
    let dir = TempDir::new("sync-observer-fast");
    let (store, seen) = open(
        &dir,
        Durability::Fast {
            // Longer than the test: only a flush or the close syncs.
            interval: Duration::from_secs(3600),
        },
    );
    // The sequence's block is durable in every mode: one sync.
    store.accept(message(0), 1).await.expect("accepts");
    let before = seen.calls();
    for n in 1..=20 {
        store.accept(message(n), 1).await.expect("accepts");
    }
    assert_eq!(store.claim_ready(2, 100).await.expect("claims").len(), 21);
    assert_eq!(seen.calls(), before, "applied-only groups are not synced");
    assert_eq!(seen.calls(), syncs(&store));

    store.accept(message(21), 1).await.expect("accepts");
    store.flush().expect("flushes");
    assert_eq!(seen.calls(), before + 1, "a flush is one sync");
    store.accept(message(22), 1).await.expect("accepts");
    drop(store);
    assert_eq!(
        seen.calls(),
        before + 2,
        "the close syncs what was left unsynced"
    );
}
