//! The sled store's memtable (src/memtable.rs), on a real store on disk:
//!
//! - a message's whole life reaches sled as its final state only: the
//!   keys that came and went (ready, in flight, outbox) never do;
//! - reads see the memtable over sled, and a checkpoint changes no answer;
//! - a store killed with SIGKILL comes back from its log: claimed messages
//!   ready again, held receipts, outbox items and duplicate keys there;
//!   a whole message life killed before its checkpoint comes back to its
//!   net state, which is all the open's checkpoint writes into sled;
//! - the duplicate check needs no checkpoint and holds across a restart;
//! - the memtable's bound asks for a checkpoint by itself;
//! - claims, attempts and acknowledgements wait for no sync of their own.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TempDir;
use tern_storage::keys;
use tern_storage::{
    Attempt, NewMessage, OutboxItem, Outcome, ReceiptUpdate, RelayedReceipt, SledStore, State,
    StoreOptions, TernId, UnmatchedReceipt,
};

fn open(dir: &TempDir, options: StoreOptions) -> SledStore {
    SledStore::open(&dir.0, options).expect("opens").0
}

fn message(at: u64, dedup: Option<&'static [u8]>) -> NewMessage {
    NewMessage {
        client: "acme".to_owned(),
        pdu: Bytes::from_static(b"a submit_sm of some forty octets, or so."),
        receipt_requested: true,
        not_before_ms: at,
        expires_ms: Some(at + 3_600_000),
        dedup: dedup.map(|key| (Bytes::from_static(key), Duration::from_secs(600))),
        id_format: tern_storage::IdFormat::Hex,
    }
}

fn attempt(upstream_id: &str) -> Attempt {
    Attempt {
        upstream: "up".to_owned(),
        at_ms: 2,
        status: Some(0),
        upstream_ids: vec![upstream_id.to_owned()],
        failure: None,
    }
}

fn delivered() -> Outcome {
    Outcome {
        stat: "DELIVRD".to_owned(),
        err: 0,
        vendor_code: None,
    }
}

fn item(id: TernId) -> OutboxItem {
    OutboxItem {
        pdu: Bytes::from_static(b"deliver_sm"),
        message: Some(id),
        stored_ms: 3,
    }
}

/// The keys sled itself holds that name `id` (its record, queue entries,
/// acknowledgement keys), and every upstream-id and outbox key.
fn sled_keys_of(store: &SledStore, id: TernId) -> BTreeSet<Vec<u8>> {
    let mut found = BTreeSet::new();
    for prefix in [
        keys::MESSAGE,
        keys::READY,
        keys::IN_FLIGHT,
        keys::EXPIRY,
        keys::RETENTION,
        keys::RELAY_ACK,
    ] {
        for key in store.sled_keys(&[prefix]).expect("sled reads") {
            if keys::trailing_id(&key) == Some(id) || key.starts_with(&keys::relay_acks(id)) {
                found.insert(key);
            }
        }
    }
    for prefix in [keys::UPSTREAM_ID, keys::OUTBOX] {
        found.extend(store.sled_keys(&[prefix]).expect("sled reads"));
    }
    found
}

#[tokio::test]
async fn a_message_life_reaches_sled_as_its_final_record_and_retention_key_only() {
    let dir = TempDir::new("memtable-life");
    let store = open(&dir, StoreOptions::default());
    let stats = store.commit_stats();
    // Accept, claim, attempt (upstream id indexed), receipt (one for the
    // client, in its outbox), the client's acknowledgement, finish.
    let id = store.accept(message(1, None), 1).await.expect("accepts").id;
    assert_eq!(store.claim_ready(2, 10).await.expect("claims").len(), 1);
    store
        .record_attempt(id, attempt("U1"), None, 2)
        .await
        .expect("attempt");
    let relayed = RelayedReceipt {
        outbox_seq: 0,
        part: None,
        stat: "ENROUTE".to_owned(),
        err: 0,
        queued_ms: 3,
        acked_ms: None,
    };
    let update = ReceiptUpdate {
        relay: Some((item(id), relayed)),
        ..ReceiptUpdate::default()
    };
    let seq = store
        .record_receipt(id, update, 3)
        .await
        .expect("receipt")
        .expect("queued for the client");
    store.outbox_ack("acme", seq).await.expect("acked");
    store.finish(id, delivered(), 4).await.expect("finished");
    // Six groups applied, none of it in sled yet: the applier writes to the
    // memtable only.
    assert!(
        sled_keys_of(&store, id).is_empty(),
        "nothing of the message in sled before a checkpoint"
    );
    let before = stats.sled_keys.load(Ordering::Relaxed);
    store.checkpoint().await.expect("checkpoint");
    let written = stats.sled_keys.load(Ordering::Relaxed) - before;

    let record = store.get(id).expect("reads").expect("kept");
    assert_eq!(record.state, State::Final);
    let expected: BTreeSet<Vec<u8>> = [
        keys::message(id),
        keys::timed(keys::RETENTION, 4, id),
        // The two index entries that outlive the sending: a late receipt
        // finds the message by its upstream id, and its history keeps when
        // the client took its receipt.
        keys::owned_with(keys::UPSTREAM_ID, "up", b"u1"),
        keys::relay_ack(id, seq),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        sled_keys_of(&store, id),
        expected,
        "sled holds the final record, its retention key and the two indexes; \
         no ready, in-flight, expiry or outbox key"
    );
    // Those four and the sequence's high-water mark (written with the
    // first number): the keys that came and went cost sled nothing.
    assert_eq!(written, 5, "keys the checkpoint wrote into sled");
    assert_eq!(store.memtable_len(), 0, "the memtable is empty after it");
    // accept 3 + the mark, claim none (in memory), attempt 4 (record,
    // upstream id, the ready entry the claim left, the retention entry of
    // its send), receipt 2, ack 2, finish 5 (that entry out, its own in).
    assert_eq!(
        stats.applied_keys.load(Ordering::Relaxed),
        17,
        "what the applier applied"
    );
}

/// Issue 19: a message's common life is four log groups applied to the
/// memtable (accept, attempt, receipt with the client's outbox item, the
/// client's acknowledgement), two of them synced (accept, receipt). The
/// claim writes nothing: it is kept in memory (`sled_store/claims.rs`),
/// and the attempt removes the ready entry it left.
#[tokio::test]
async fn a_message_life_is_four_log_groups_and_its_claim_writes_none() {
    let dir = TempDir::new("memtable-groups");
    let store = open(&dir, StoreOptions::default());
    let stats = store.commit_stats();
    // The sequence's first block is written with the first number: before
    // the counting starts (the message is not due during the test).
    store
        .accept(message(1_000_000, None), 1)
        .await
        .expect("first");
    let counts = || {
        (
            stats.writes.load(Ordering::Relaxed),
            stats.flushes.load(Ordering::Relaxed),
            stats.syncs.load(Ordering::Relaxed),
            stats.applied_keys.load(Ordering::Relaxed),
        )
    };
    let start = counts();
    let id = store.accept(message(1, None), 1).await.expect("accepts").id;
    let accepted = counts();
    let claimed = store.claim_ready(2, 10).await.expect("claims");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].state, State::InFlight);
    assert_eq!(counts(), accepted, "the claim wrote or applied something");
    assert_eq!(
        store.get(id).expect("reads").map(|r| r.state),
        Some(State::InFlight)
    );
    store
        .record_attempt(id, attempt("U1"), None, 2)
        .await
        .expect("attempt");
    let relayed = RelayedReceipt {
        outbox_seq: 0,
        part: None,
        stat: "DELIVRD".to_owned(),
        err: 0,
        queued_ms: 3,
        acked_ms: None,
    };
    let update = ReceiptUpdate {
        outcome: Some(delivered()),
        relay: Some((item(id), relayed)),
        ..ReceiptUpdate::default()
    };
    let seq = store
        .record_receipt(id, update, 3)
        .await
        .expect("receipt")
        .expect("queued for the client");
    store.outbox_ack_many("acme", &[seq]).await.expect("acked");
    let end = counts();
    assert_eq!(end.0 - start.0, 4, "writes in the message's life");
    assert_eq!(end.1 - start.1, 4, "log groups in the message's life");
    assert!(
        end.2 - start.2 >= 2,
        "the accept and the receipt are synced"
    );
    assert_eq!(
        store.get(id).expect("reads").map(|r| r.state),
        Some(State::Final)
    );
    assert_eq!(store.ready_len(), 1, "only the message not yet due");
    let v = store.verify().expect("verifies");
    assert!(v.is_consistent(), "{:?}", v.problems);
    assert_eq!((v.queued, v.in_flight, v.finished), (1, 0, 1));
}

/// The claim and the writes that release claims run at once (the daemon's
/// dispatcher claims while earlier sends record their attempts): a message
/// is never handed to two sends at once, and none is left behind. Each
/// message is claimed, put back for a retry at its own time (the same
/// ready key, often below where the claim stands) or a later one, claimed
/// again and submitted: exactly two claims each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_racing_their_releases_hand_each_message_out_once_at_a_time() {
    const N: usize = 600;
    let dir = TempDir::new("claims-race");
    let store = std::sync::Arc::new(open(&dir, StoreOptions::default()));
    let mut ids = BTreeSet::new();
    for n in 0..N {
        let at = (n % 4) as u64;
        ids.insert(
            store
                .accept(message(at, None), 0)
                .await
                .expect("accepts")
                .id,
        );
    }
    let claims: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<TernId, usize>>> =
        std::sync::Arc::default();
    let submitted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sends = tokio::task::JoinSet::new();
    while submitted.load(Ordering::Relaxed) < N && Instant::now() < deadline {
        let batch = store.claim_ready(10, 64).await.expect("claims");
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        for record in batch {
            *claims.lock().expect("lock").entry(record.id).or_default() += 1;
            let (store, submitted) = (store.clone(), submitted.clone());
            sends.spawn(async move {
                if record.attempts.is_empty() {
                    // Back at its own time (the same key) or a little later.
                    let retry_at = record.not_before_ms + record.id.counter() % 2 * 5;
                    store
                        .record_attempt(record.id, attempt_failed(), Some(retry_at), 10)
                        .await
                        .expect("retry");
                } else {
                    let upstream_id = format!("U{}", record.id.as_u64());
                    store
                        .record_attempt(record.id, attempt(&upstream_id), None, 10)
                        .await
                        .expect("attempt");
                    submitted.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    }
    while sends.join_next().await.is_some() {}
    let claims = claims.lock().expect("lock").clone();
    let twice: Vec<_> = claims.iter().filter(|(_, n)| **n != 2).collect();
    assert!(twice.is_empty(), "claimed other than twice: {twice:?}");
    assert_eq!(claims.len(), N, "every message claimed");
    for id in &ids {
        let record = store.get(*id).expect("reads").expect("kept");
        assert_eq!(record.state, State::Submitted, "{id}");
        assert_eq!(record.attempts.len(), 2, "{id}");
    }
    assert_eq!(store.ready_len(), 0);
    let v = store.verify().expect("verifies");
    assert!(v.is_consistent(), "{:?}", v.problems);
}

#[tokio::test]
async fn reads_see_the_memtable_over_sled_and_a_checkpoint_changes_no_answer() {
    let dir = TempDir::new("memtable-reads");
    let store = open(&dir, StoreOptions::default());
    let a = store.accept(message(1, None), 1).await.expect("a").id;
    let b = store.accept(message(5, None), 1).await.expect("b").id;
    let first = store.outbox_push("acme", &item(a)).await.expect("push");
    let second = store.outbox_push("acme", &item(b)).await.expect("push");
    store.checkpoint().await.expect("checkpoint");
    assert_eq!(store.sled_keys(&[keys::READY]).expect("sled").len(), 2);
    assert_eq!(store.sled_keys(&[keys::OUTBOX]).expect("sled").len(), 2);

    // `a` claimed (in memory only: its ready key and record stay, and it
    // reads as in flight), the first outbox item taken (in the memtable
    // only).
    let claimed = store.claim_ready(2, 10).await.expect("claims");
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![a]);
    store.outbox_ack("acme", first).await.expect("acked");
    assert_eq!(
        store.sled_keys(&[keys::READY]).expect("sled").len(),
        2,
        "sled still holds both ready keys"
    );

    let answers = |store: &SledStore| {
        let depths = store.queue_depths();
        (
            store.get(a).expect("reads").map(|r| r.state),
            store.get(b).expect("reads").map(|r| r.state),
            store
                .outbox_pending("acme", None, 10)
                .expect("outbox")
                .into_iter()
                .map(|(seq, _)| seq)
                .collect::<Vec<_>>(),
            (depths.ready, depths.in_flight, depths.outbox),
            store.ready_len(),
            store.expired(u64::MAX, 10).expect("expiry").len(),
            store.verify().expect("verifies").problems,
        )
    };
    let seen = answers(&store);
    assert_eq!(seen.0, Some(State::InFlight), "the memtable's newer record");
    assert_eq!(seen.1, Some(State::Queued));
    assert_eq!(
        seen.2,
        vec![second],
        "the taken item is hidden from the scan"
    );
    assert_eq!(seen.3, (1, 1, 1), "only `b` is ready: `a`'s key is hidden");
    assert_eq!(seen.4, 1);
    assert_eq!(seen.5, 2);
    assert!(seen.6.is_empty(), "consistent: {:?}", seen.6);
    // Nothing is due for `b` before 5; `a` is not claimed twice.
    assert!(store.claim_ready(4, 10).await.expect("claims").is_empty());

    store.checkpoint().await.expect("checkpoint");
    assert_eq!(answers(&store), seen, "the same answers from sled");
    assert_eq!(
        store.sled_keys(&[keys::READY]).expect("sled").len(),
        2,
        "`a`'s ready key stays until its next write"
    );
    assert_eq!(store.sled_keys(&[keys::OUTBOX]).expect("sled").len(), 1);
}

const CHILD: &str = "TERN_MEMTABLE_CHILD_DIR";

/// The child of [`a_store_killed_with_sigkill_comes_back_from_its_log`]:
/// writes, says so, and waits to be killed. A no-op in a normal run.
#[tokio::test]
async fn child_writes_and_waits_to_be_killed() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let (store, _) = SledStore::open(&dir, StoreOptions::default()).expect("child opens");
    // Claimed, sent, waiting: in flight when killed.
    let flying = store.accept(message(1, None), 1).await.expect("accept").id;
    let sent = store.accept(message(1, None), 1).await.expect("accept").id;
    assert_eq!(store.claim_ready(2, 10).await.expect("claims").len(), 2);
    store
        .record_attempt(sent, attempt("U7"), None, 2)
        .await
        .expect("attempt");
    let queued = store.accept(message(9, None), 1).await.expect("accept").id;
    let deduplicated = store
        .accept(message(1, Some(b"ref-1")), 1)
        .await
        .expect("accept")
        .id;
    let seq = store.outbox_push("acme", &item(sent)).await.expect("push");
    let early = UnmatchedReceipt {
        upstream: "up".to_owned(),
        upstream_id: "EARLY".to_owned(),
        pdu: Bytes::from_static(b"deliver_sm"),
        received_ms: 3,
    };
    store.hold_unmatched(&early).await.expect("held");
    assert_eq!(store.commit_stats().checkpoints.load(Ordering::Relaxed), 0);
    println!("wrote {flying} {sent} {queued} {deduplicated} {seq}");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

#[test]
fn a_store_killed_with_sigkill_comes_back_from_its_log() {
    let dir = TempDir::new("memtable-kill");
    let words = common::run_child_until_killed(
        "child_writes_and_waits_to_be_killed",
        CHILD,
        &dir.0,
        "wrote ",
    );
    let id = |w: &str| w.parse::<TernId>().expect("an id");
    let (flying, sent, queued, deduplicated) =
        (id(&words[0]), id(&words[1]), id(&words[2]), id(&words[3]));
    let seq: u64 = words[4].parse().expect("a place");

    let (store, recovery) = SledStore::open(&dir.0, StoreOptions::default()).expect("reopens");
    // Claims are in memory only: nothing was in flight in the log, and
    // the claimed, unsent message is simply ready again.
    assert_eq!(recovery.requeued, 0);
    let state = |id| store.get(id).expect("reads").expect("kept").state;
    assert_eq!(state(flying), State::Queued);
    assert_eq!(state(sent), State::Submitted);
    assert_eq!(state(queued), State::Queued);
    assert_eq!(state(deduplicated), State::Queued);
    assert_eq!(
        store.lookup_upstream("up", "u7").expect("lookup"),
        Some(sent)
    );
    assert_eq!(
        store
            .outbox_pending("acme", None, 10)
            .expect("outbox")
            .into_iter()
            .map(|(seq, _)| seq)
            .collect::<Vec<_>>(),
        vec![seq]
    );
    let held = store.held_receipts(10).expect("held");
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].upstream_id, "EARLY");
    assert_eq!(store.ready_len(), 3, "flying, queued and deduplicated");
    assert!(store.verify().expect("verifies").is_consistent());
    // The open's checkpoint put it all in sled, and emptied the log.
    assert_eq!(store.memtable_len(), 0);
    assert!(!store.sled_keys(&[keys::MESSAGE]).expect("sled").is_empty());
    // The duplicate key came back too.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let again = runtime
        .block_on(store.accept(message(1, Some(b"ref-1")), 2))
        .expect("accept");
    assert_eq!((again.id, again.duplicate), (deduplicated, true));
}

/// Runs one message's whole common life (accept, claim, attempt, final
/// receipt with the client's outbox item, the client's acknowledgement)
/// without a checkpoint, prints its id, outbox place and the checkpoints
/// taken, and waits to be killed: run by
/// [`a_whole_life_killed_before_its_checkpoint_is_replayed_to_its_net_state`].
#[tokio::test]
async fn child_lives_one_life_and_waits_to_be_killed() {
    let Some(dir) = std::env::var_os(CHILD) else {
        return;
    };
    let (store, _) = SledStore::open(&dir, StoreOptions::default()).expect("child opens");
    let id = store.accept(message(1, None), 1).await.expect("accept").id;
    assert_eq!(store.claim_ready(2, 10).await.expect("claims").len(), 1);
    store
        .record_attempt(id, attempt("U9"), None, 2)
        .await
        .expect("attempt");
    let relayed = RelayedReceipt {
        outbox_seq: 0,
        part: None,
        stat: "DELIVRD".to_owned(),
        err: 0,
        queued_ms: 3,
        acked_ms: None,
    };
    let update = ReceiptUpdate {
        outcome: Some(delivered()),
        relay: Some((item(id), relayed)),
        ..ReceiptUpdate::default()
    };
    let seq = store
        .record_receipt(id, update, 3)
        .await
        .expect("receipt")
        .expect("queued for the client");
    store.outbox_ack_many("acme", &[seq]).await.expect("acked");
    // The acknowledgement waits for no sync: this one (durable) syncs the
    // log over it, as the next accept or receipt would in the daemon.
    store.flush().expect("synced");
    let checkpoints = store.commit_stats().checkpoints.load(Ordering::Relaxed);
    println!("lived {id} {seq} {checkpoints}");
    tokio::time::sleep(Duration::from_secs(60)).await;
}

/// Point 1 of issue 19: a message's whole life is applied to the memtable
/// only, and sled receives its net state at a checkpoint. Killed with
/// SIGKILL after the life and before any checkpoint, the store comes back
/// from its log to the same net state: the message final with its
/// outcome and the client's acknowledgement time, found by its upstream
/// id, no ready, expiry or outbox key left (in sled or counted), and the
/// open's checkpoint writes only the keys that outlive the life.
#[test]
fn a_whole_life_killed_before_its_checkpoint_is_replayed_to_its_net_state() {
    let dir = TempDir::new("memtable-life-kill");
    let words = common::run_child_until_killed(
        "child_lives_one_life_and_waits_to_be_killed",
        CHILD,
        &dir.0,
        "lived ",
    );
    let id: TernId = words[0].parse().expect("an id");
    let seq: u64 = words[1].parse().expect("a place");
    assert_eq!(words[2], "0", "the life was applied before any checkpoint");

    let (store, recovery) = SledStore::open(&dir.0, StoreOptions::default()).expect("reopens");
    assert_eq!(recovery.requeued, 0);
    let record = store.get(id).expect("reads").expect("kept");
    assert_eq!(record.state, State::Final);
    assert_eq!(
        record.outcome.as_ref().map(|o| o.stat.as_str()),
        Some("DELIVRD")
    );
    assert_eq!(record.relayed.len(), 1);
    assert_eq!(record.relayed[0].outbox_seq, seq);
    assert!(
        record.relayed[0].acked_ms.is_some(),
        "the client's acknowledgement came back from the log"
    );
    assert_eq!(store.lookup_upstream("up", "u9").expect("lookup"), Some(id));
    assert!(store
        .outbox_pending("acme", None, 10)
        .expect("outbox")
        .is_empty());
    let depths = store.queue_depths();
    assert_eq!(
        (depths.ready, depths.in_flight, depths.outbox),
        (0, 0, 0),
        "nothing of the life left in a counted queue"
    );
    assert!(store.verify().expect("verifies").is_consistent());
    // The open replayed the log and checkpointed it: sled holds the net
    // state, and nothing of the keys that came and went.
    assert_eq!(store.memtable_len(), 0);
    let expected: BTreeSet<Vec<u8>> = [
        keys::message(id),
        keys::timed(keys::RETENTION, 3, id),
        keys::owned_with(keys::UPSTREAM_ID, "up", b"u9"),
        keys::relay_ack(id, seq),
    ]
    .into_iter()
    .collect();
    assert_eq!(sled_keys_of(&store, id), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_duplicate_check_needs_no_checkpoint_and_holds_across_a_restart() {
    let dir = TempDir::new("memtable-dedup");
    let store = std::sync::Arc::new(open(&dir, StoreOptions::default()));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.accept(message(1, Some(b"ref-9")), 1).await })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("joins").expect("accepts"));
    }
    let ids: BTreeSet<TernId> = answers.iter().map(|a| a.id).collect();
    assert_eq!(ids.len(), 1, "one id for every resubmission: {answers:?}");
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
    assert_eq!(store.ready_len(), 1, "stored once");
    assert_eq!(
        store.commit_stats().checkpoints.load(Ordering::Relaxed),
        0,
        "no checkpoint per deduplicated submit"
    );
    let first = answers[0].id;
    drop(answers);
    let store = std::sync::Arc::into_inner(store).expect("the only handle");
    drop(store);

    let store = open(&dir, StoreOptions::default());
    let again = store
        .accept(message(1, Some(b"ref-9")), 2)
        .await
        .expect("accepts");
    assert_eq!((again.id, again.duplicate), (first, true));
    let other = store
        .accept(message(1, Some(b"ref-10")), 2)
        .await
        .expect("accepts");
    assert!(!other.duplicate);
}

#[tokio::test]
async fn the_memtable_bound_asks_for_a_checkpoint() {
    // The same writes under the default bound and under a small one.
    async fn fill(bound: usize) -> (u64, usize, usize) {
        let dir = TempDir::new("memtable-bound");
        let store = open(
            &dir,
            StoreOptions {
                memtable_bytes: bound,
                ..StoreOptions::default()
            },
        );
        for n in 0..400 {
            store.accept(message(n, None), n).await.expect("accepts");
        }
        // The checkpoint runs beside the writers: wait for it, bounded.
        let deadline = Instant::now() + Duration::from_secs(10);
        let checkpoints = || store.commit_stats().checkpoints.load(Ordering::Relaxed);
        while checkpoints() == 0 && bound < 1 << 20 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let in_sled = store.sled_keys(&[keys::MESSAGE]).expect("sled").len();
        (checkpoints(), in_sled, store.memtable_len())
    }
    let (checkpoints, in_sled, _) = fill(tern_storage::DEFAULT_MEMTABLE_BYTES).await;
    assert_eq!(
        (checkpoints, in_sled),
        (0, 0),
        "400 messages stay in memory"
    );
    let (checkpoints, in_sled, in_memory) = fill(64 << 10).await;
    assert!(checkpoints >= 1, "the bound asked for a checkpoint");
    assert!(in_sled > 0, "records reached sled");
    assert!(
        in_memory < 400 * 3,
        "the memtable was emptied at least once: {in_memory} keys in memory"
    );
}

/// The bound holds while a checkpoint runs: writers faster than the
/// checkpoints (here 64 at once, in fast mode, against a bound of 32 KiB
/// whose checkpoints flush sled and sync its file) wait for the running
/// checkpoint once the next memtable is full, instead of filling it past
/// the bound (what draining a long outage's backlog did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memtable_bound_holds_while_a_checkpoint_runs() {
    const BOUND: usize = 32 << 10;
    const WRITERS: u64 = 64;
    let dir = TempDir::new("memtable-bound-held");
    let store = std::sync::Arc::new(open(
        &dir,
        StoreOptions {
            memtable_bytes: BOUND,
            durability: tern_storage::Durability::Fast {
                interval: Duration::from_secs(1),
            },
            ..StoreOptions::default()
        },
    ));
    let stats = store.commit_stats();
    // The bound asks for a checkpoint at most every 250 ms (`ASK_EVERY`
    // in commit.rs), and one round can take less than that on a fast
    // guest: write rounds until two checkpoints finished (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for round in 0..40 {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..150 {
                        let at = (round * WRITERS + w) * 1_000 + n;
                        store.accept(message(at, None), n).await.expect("accepts");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.expect("writer");
        }
        if stats.checkpoints.load(Ordering::Relaxed) >= 2 || std::time::Instant::now() > deadline {
            break;
        }
    }
    let peak = stats.memtable_peak_checkpointing.load(Ordering::Relaxed) as usize;
    let checkpoints = stats.checkpoints.load(Ordering::Relaxed);
    println!("{checkpoints} checkpoints; while one ran, the active memtable at most {peak} octets");
    assert!(
        checkpoints >= 2,
        "the bound asked for checkpoints: {checkpoints}"
    );
    // One accept is four keys, about 700 estimated octets: at most one
    // group of every writer's accept past the bound.
    let one_group = WRITERS as usize * 1_024;
    assert!(
        peak <= BOUND + one_group,
        "the active memtable reached {peak} octets, bound {BOUND} plus one group {one_group}"
    );
}

/// In durable mode an outbox acknowledgement waits for its application
/// only: the groups are not synced one by one (a lost acknowledgement
/// means the item is delivered again), while every accept is synced
/// before it returns. A claim writes nothing at all.
#[tokio::test]
async fn acknowledgements_do_not_sync_the_log_each_and_claims_write_nothing() {
    let dir = TempDir::new("lazy-sync");
    let store = open(&dir, StoreOptions::default());
    let stats = store.commit_stats();
    let mut ids = Vec::new();
    for _ in 0..100 {
        let syncs = stats.syncs.load(Ordering::Relaxed);
        ids.push(store.accept(message(0, None), 0).await.expect("accept").id);
        assert!(
            stats.syncs.load(Ordering::Relaxed) > syncs,
            "an accept returned before a sync"
        );
    }
    let (groups, syncs, writes) = (
        stats.flushes.load(Ordering::Relaxed),
        stats.syncs.load(Ordering::Relaxed),
        stats.writes.load(Ordering::Relaxed),
    );
    // One message per claim (no group) and one item per acknowledgement:
    // 200 groups, each waiting for the last.
    for n in 0..100u64 {
        assert_eq!(store.claim_ready(1, 1).await.expect("claim").len(), 1);
        let seq = store
            .outbox_push("acme", &item(ids[n as usize]))
            .await
            .expect("push");
        store.outbox_ack("acme", seq).await.expect("ack");
    }
    let groups = stats.flushes.load(Ordering::Relaxed) - groups;
    let syncs = stats.syncs.load(Ordering::Relaxed) - syncs;
    let writes = stats.writes.load(Ordering::Relaxed) - writes;
    assert_eq!(
        writes, 200,
        "pushes and acknowledgements only: a claim wrote"
    );
    // The pushes (durable) are synced each: 100. The acknowledgements
    // ride on them, or on a timed sync when the machine is slow; one sync
    // per group would be 200.
    assert!(groups >= 200, "{groups} groups");
    assert!(syncs < 170, "{syncs} syncs for {groups} groups");
}

/// An attempt returns once applied, as a claim does: one lost in a power
/// cut leaves its message in flight in the log, and recovery sends it
/// again. So a run of attempts rides on the logger's lazy syncs (at most
/// one per `LAZY_SYNC`), not one sync each.
#[tokio::test]
async fn attempts_do_not_sync_the_log_each() {
    let dir = TempDir::new("lazy-attempt");
    let store = open(&dir, StoreOptions::default());
    let stats = store.commit_stats();
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids.push(store.accept(message(0, None), 0).await.expect("accept").id);
    }
    assert_eq!(store.claim_ready(1, 100).await.expect("claims").len(), 100);
    let (groups, syncs) = (
        stats.flushes.load(Ordering::Relaxed),
        stats.syncs.load(Ordering::Relaxed),
    );
    // One attempt per group, each waiting for the last.
    for (n, id) in ids.iter().enumerate() {
        store
            .record_attempt(*id, attempt(&format!("U{n}")), None, 2)
            .await
            .expect("attempt");
    }
    let groups = stats.flushes.load(Ordering::Relaxed) - groups;
    let syncs = stats.syncs.load(Ordering::Relaxed) - syncs;
    assert!(groups >= 100, "{groups} groups");
    // Durable attempts would be synced each: 100.
    assert!(syncs < 60, "{syncs} syncs for {groups} groups");
    let record = store.get(ids[99]).expect("reads").expect("kept");
    assert_eq!(record.state, State::Submitted, "applied on return");
}

/// A claim resumes where the previous one stopped (it removed every key
/// before), so it does not step again over the removed ready keys sled
/// still holds until the next checkpoint. A message made ready below that
/// point since (scheduled earlier than the last one claimed, or put back
/// for a retry) is still claimed.
#[tokio::test]
async fn a_message_ready_below_where_the_last_claim_stopped_is_claimed() {
    let dir = TempDir::new("claim-resume");
    let store = open(&dir, StoreOptions::default());
    let at_100 = store
        .accept(message(100, None), 0)
        .await
        .expect("accept")
        .id;
    let at_300 = store
        .accept(message(300, None), 0)
        .await
        .expect("accept")
        .id;
    let claimed = |now| {
        let store = &store;
        async move {
            let ids: Vec<TernId> = store
                .claim_ready(now, 10)
                .await
                .expect("claim")
                .iter()
                .map(|r| r.id)
                .collect();
            ids
        }
    };
    assert_eq!(claimed(200).await, vec![at_100]);
    let at_50 = store.accept(message(50, None), 0).await.expect("accept").id;
    assert_eq!(claimed(200).await, vec![at_50], "an earlier message missed");
    assert_eq!(claimed(200).await, Vec::<TernId>::new());
    // Put back for a retry at 120: above the last claim's stop (50), and
    // found there like any key after it.
    store
        .record_attempt(at_50, attempt_failed(), Some(120), 200)
        .await
        .expect("retry");
    assert_eq!(claimed(200).await, vec![at_50]);
    assert_eq!(claimed(400).await, vec![at_300]);
}

fn attempt_failed() -> Attempt {
    Attempt {
        status: Some(0x58),
        failure: Some("throttled".to_owned()),
        upstream_ids: Vec::new(),
        ..attempt("unused")
    }
}
