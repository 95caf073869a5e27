//! The sled store's queue depths come from counts it keeps beside the
//! queues (src/memtable/counts.rs), not from scans: these tests hold the
//! kept counts against a full scan of the queues' keys after a mix of
//! every write that touches them (accepts, some scheduled, some
//! deduplicated; claims; attempts accepted and failed with a retry;
//! finals, twice; cancels; replaces; expiry; outbox pushes and
//! acknowledgements; held receipts held, rewritten and taken), across
//! checkpoints
//! (removals over keys sled holds), after a SIGKILL (the log replayed and
//! messages in flight put back in the ready queue), and after a clean
//! close.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::TempDir;
use tern_storage::{
    Attempt, NewMessage, OutboxItem, Outcome, QueueDepths, QueuedChange, Replacement, SledStore,
    StoreOptions, TernId, UnmatchedReceipt,
};

const CHILD: &str = "TERN_QUEUE_COUNTS_CHILD_DIR";
const CLIENTS: [&str; 3] = ["alpha", "bravo", "charlie"];

fn message(
    client: &str,
    at: u64,
    expires: Option<u64>,
    dedup: Option<&'static [u8]>,
) -> NewMessage {
    NewMessage {
        client: client.to_owned(),
        pdu: Bytes::from_static(b"a submit_sm"),
        receipt_requested: true,
        not_before_ms: at,
        expires_ms: expires,
        dedup: dedup.map(|key| (Bytes::from_static(key), Duration::from_secs(600))),
        id_format: tern_storage::IdFormat::Hex,
    }
}

fn attempt(upstream_id: Option<String>, at_ms: u64) -> Attempt {
    Attempt {
        upstream: "up".to_owned(),
        at_ms,
        status: Some(if upstream_id.is_some() { 0 } else { 0x58 }),
        failure: upstream_id.is_none().then(|| "throttled".to_owned()),
        upstream_ids: upstream_id.into_iter().collect(),
    }
}

fn outcome(stat: &str) -> Outcome {
    Outcome {
        stat: stat.to_owned(),
        err: 0,
        vendor_code: None,
    }
}

fn item(id: TernId, at: u64) -> OutboxItem {
    OutboxItem {
        pdu: Bytes::from_static(b"deliver_sm"),
        message: Some(id),
        stored_ms: at,
    }
}

/// Asserts that the kept counts are what a scan counts, and returns them.
fn same_as_a_scan(store: &SledStore, when: &str) -> QueueDepths {
    let (scanned, per_client) = store.queue_depths_scanned().expect("scans");
    assert_eq!(
        store.queue_depths(),
        scanned,
        "{when}: kept against scanned"
    );
    assert_eq!(
        store.ready_per_client(),
        per_client,
        "{when}: ready per client, kept against scanned"
    );
    assert_eq!(store.ready_len(), scanned.ready, "{when}");
    let verified = store.verify().expect("verifies");
    assert!(verified.is_consistent(), "{when}: {:?}", verified.problems);
    scanned
}

/// One round of every kind of write that touches a counted queue, at
/// times from `t`; checks the counts against a scan after each step.
async fn mixed_writes(store: &SledStore, t: u64) {
    let mut ids = Vec::new();
    for n in 0..30u64 {
        let client = CLIENTS[n as usize % CLIENTS.len()];
        // Every fifth scheduled for much later, every seventh expiring
        // soon.
        let at = if n % 5 == 4 { t + 1_000_000 } else { t + n };
        let expires = (n % 7 == 6).then_some(t + 50);
        ids.push(
            store
                .accept(message(client, at, expires, None), t)
                .await
                .expect("accept")
                .id,
        );
    }
    // A duplicate stores nothing.
    let key: &'static [u8] = if t == 0 { b"ref-0" } else { b"ref-1" };
    store
        .accept(message("alpha", t, None, Some(key)), t)
        .await
        .expect("accept");
    store
        .accept(message("alpha", t, None, Some(key)), t)
        .await
        .expect("again");
    same_as_a_scan(store, "accepted");
    // What follows removes keys sled holds (tombstones), and keys only the
    // memtable holds.
    store.checkpoint().await.expect("checkpoint");
    same_as_a_scan(store, "checkpointed");

    let claimed = store.claim_ready(t + 100, 12).await.expect("claims");
    assert_eq!(claimed.len(), 12);
    same_as_a_scan(store, "claimed");
    for (n, record) in claimed.iter().enumerate() {
        let id = record.id;
        match n % 4 {
            // Accepted upstream: submitted, then (some) final.
            0 => {
                store
                    .record_attempt(
                        id,
                        attempt(Some(format!("U{t}-{n}")), t + 101),
                        None,
                        t + 101,
                    )
                    .await
                    .expect("attempt");
                if n % 8 == 0 {
                    store
                        .finish(id, outcome("DELIVRD"), t + 102)
                        .await
                        .expect("final");
                }
            }
            // Throttled: back in the ready queue later.
            1 => store
                .record_attempt(id, attempt(None, t + 101), Some(t + 150), t + 101)
                .await
                .expect("attempt"),
            // Given up while in flight, and a second final (no change).
            2 => {
                store
                    .finish(id, outcome("UNDELIV"), t + 102)
                    .await
                    .expect("final");
                store
                    .finish(id, outcome("UNDELIV"), t + 103)
                    .await
                    .expect("again");
            }
            // Still in flight.
            _ => {}
        }
        same_as_a_scan(store, "attempted");
    }
    // Cancel and replace waiting messages (scheduled ones: never claimed).
    let scheduled: Vec<TernId> = ids.iter().skip(4).step_by(5).copied().collect();
    let cancelled = store
        .cancel_queued(scheduled[0], |_| true, outcome("DELETED"), t + 110)
        .await
        .expect("cancel");
    assert!(matches!(cancelled, QueuedChange::Done(_)), "{cancelled:?}");
    let replaced = store
        .replace_queued(
            scheduled[1],
            |_| {
                Some(Replacement {
                    pdu: Bytes::from_static(b"a replaced submit_sm"),
                    receipt_requested: false,
                    not_before_ms: t + 2_000_000,
                    expires_ms: None,
                })
            },
            t + 110,
        )
        .await
        .expect("replace");
    assert!(matches!(replaced, QueuedChange::Done(_)), "{replaced:?}");
    same_as_a_scan(store, "cancelled and replaced");
    // Expiry: what is due to expire ends, wherever it was.
    for id in store.expired(t + 60, 100).expect("expired") {
        store
            .finish(id, outcome("EXPIRED"), t + 60)
            .await
            .expect("final");
    }
    same_as_a_scan(store, "expired");

    // Outboxes and held receipts, some items checkpointed before they go.
    let mut seqs = Vec::new();
    for (n, id) in ids.iter().take(6).enumerate() {
        let client = CLIENTS[n % CLIENTS.len()];
        seqs.push((
            client,
            store
                .outbox_push(client, &item(*id, t))
                .await
                .expect("push"),
        ));
    }
    for n in 0..3 {
        let receipt = UnmatchedReceipt {
            upstream: "up".to_owned(),
            upstream_id: format!("EARLY-{t}-{n}"),
            pdu: Bytes::from_static(b"deliver_sm"),
            received_ms: t + n,
        };
        store.hold_unmatched(&receipt).await.expect("held");
    }
    // A second receipt for the same id rewrites its key: still one.
    let again = UnmatchedReceipt {
        upstream: "up".to_owned(),
        upstream_id: format!("EARLY-{t}-1"),
        pdu: Bytes::from_static(b"another deliver_sm"),
        received_ms: t + 5,
    };
    store.hold_unmatched(&again).await.expect("held");
    store.checkpoint().await.expect("checkpoint");
    for (client, seq) in seqs.iter().step_by(2) {
        store.outbox_ack(client, *seq).await.expect("ack");
        // Acknowledged twice: the second removes nothing.
        store.outbox_ack(client, *seq).await.expect("ack again");
    }
    let taken = store
        .take_unmatched("up", &format!("EARLY-{t}-0"))
        .await
        .expect("take");
    assert!(taken.is_some());
    let depths = same_as_a_scan(store, "outbox and held receipts");
    assert!(
        depths.ready > 0 && depths.in_flight > 0 && depths.outbox > 0 && depths.unmatched > 0,
        "every queue counted holds something: {depths:?}"
    );
}

/// The child of [`counts_stay_exact_across_writes_a_sigkill_and_a_restart`]:
/// writes, says so, and waits to be killed. A no-op in a normal run.
#[tokio::test]
async fn child_writes_and_waits_to_be_killed() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let (store, _) = SledStore::open(&dir, StoreOptions::default()).expect("child opens");
    mixed_writes(&store, 0).await;
    let depths = store.queue_depths();
    println!(
        "wrote {} {} {} {}",
        depths.ready, depths.in_flight, depths.outbox, depths.unmatched
    );
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[tokio::test]
async fn counts_stay_exact_across_writes_a_sigkill_and_a_restart() {
    let dir = TempDir::new("queue-counts");
    let wrote = common::run_child_until_killed(
        "child_writes_and_waits_to_be_killed",
        CHILD,
        &dir.0,
        "wrote ",
    );
    let before: Vec<usize> = wrote.iter().map(|n| n.parse().expect("a count")).collect();

    // The log replayed; what was in flight is ready again. A claim writes
    // nothing on sled (`claims.rs`): its ready entry is still there, so
    // there is nothing to move back.
    let (store, recovery) = SledStore::open(&dir.0, StoreOptions::default()).expect("reopens");
    let depths = same_as_a_scan(&store, "reopened after SIGKILL");
    assert_eq!(recovery.requeued, 0);
    assert_eq!(depths.in_flight, 0);
    assert_eq!(
        depths.ready,
        before[0] + before[1],
        "in flight back to ready"
    );
    assert_eq!((depths.outbox, depths.unmatched), (before[2], before[3]));

    // Another round on the recovered store, then a clean close.
    mixed_writes(&store, 10_000_000).await;
    let after = store.queue_depths();
    drop(store);
    let (store, _) = SledStore::open(&dir.0, StoreOptions::default()).expect("reopens");
    let reopened = same_as_a_scan(&store, "reopened after a clean close");
    assert_eq!(reopened.ready, after.ready + after.in_flight);
    assert_eq!(reopened.outbox, after.outbox);
}
