//! The store's behaviour, on every backend (a real on-disk sled database, a
//! Redis server, a Redis Cluster; see `common`): each index and queue,
//! duplicate protection, id-form tolerance, the unmatched-receipt grace
//! period, retention, recovery; and, for sled, refusing what is not a store.

#[macro_use]
mod common;

use common::{Backend, TempDir, TestStore};

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use tern_storage::{
    Attempt, Durability, HeldUnder, NewMessage, OutboxItem, Outcome, ReceiptUpdate, ReceiptWrite,
    SledStore, State, Store, StoreError, StoreOptions, TernId, UnmatchedReceipt,
};

fn open(dir: &TempDir) -> SledStore {
    SledStore::open(
        &dir.0,
        StoreOptions {
            node: 3,
            ..StoreOptions::default()
        },
    )
    .expect("opens")
    .0
}

fn message(client: &str, at: u64) -> NewMessage {
    NewMessage {
        client: client.to_owned(),
        pdu: Bytes::from_static(
            b"\x00\x00\x00\x10\x00\x00\x00\x04\x00\x00\x00\x00\x00\x00\x00\x01",
        ),
        receipt_requested: true,
        not_before_ms: at,
        expires_ms: None,
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

fn accepted_attempt(upstream: &str, ids: &[&str]) -> Attempt {
    Attempt {
        upstream: upstream.to_owned(),
        at_ms: 1_000,
        status: Some(0),
        upstream_ids: ids.iter().map(|s| s.to_string()).collect(),
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

async fn accepted_messages_are_kept_with_unique_ids_of_this_node<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let a = store
        .accept(message("acme", 1_000), 1_000)
        .await
        .expect("accept");
    let b = store
        .accept(message("acme", 1_000), 1_000)
        .await
        .expect("accept");
    assert_ne!(a.id, b.id);
    assert_eq!(a.id.node(), 3);
    let record = store.get(a.id).await.expect("read").expect("present");
    assert_eq!(
        (record.client.as_str(), record.state, record.accepted_ms),
        ("acme", State::Queued, 1_000)
    );
    assert!(store.check().await.is_consistent());
}

async fn ids_are_never_reused_after_a_restart<B: Backend>(b: &B) {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..3 {
        let store = b.open(3).await;
        for _ in 0..50 {
            let id = store
                .accept(message("acme", 0), 0)
                .await
                .expect("accept")
                .id;
            assert!(seen.insert(id), "{id} handed out twice");
        }
    }
}

async fn the_ready_queue_respects_not_before_and_claims_once<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let now = store
        .accept(message("acme", 1_000), 1_000)
        .await
        .expect("accept")
        .id;
    let later = store
        .accept(message("acme", 5_000), 1_000)
        .await
        .expect("accept")
        .id;
    let claimed = store.claim_ready(1_000, 10).await.expect("claim");
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![now]);
    assert_eq!(claimed[0].state, State::InFlight);
    assert!(
        store
            .claim_ready(1_000, 10)
            .await
            .expect("claim")
            .is_empty(),
        "claimed once"
    );
    let claimed = store.claim_ready(5_000, 10).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![later]
    );
    assert!(store.check().await.is_consistent());
}

/// After an outage, client `alpha` has a backlog of 1 000 and `bravo` then
/// submits 10: claims of 16 at a time (as a dispatcher with few free
/// permits makes) share out between the two (8 each, then bravo's last 2
/// first in the next claim), so bravo's 10 are among the first 24, and
/// each client's messages come out oldest first.
async fn the_ready_queues_are_fair_between_clients_and_oldest_first_within_each<B: Backend>(b: &B) {
    const BACKLOG: u64 = 1_000;
    const CLAIM: usize = 16;
    let store = b.open(3).await;
    let mut alpha = Vec::new();
    for at in 0..BACKLOG {
        let id = store
            .accept(message("alpha", at), at)
            .await
            .expect("accept");
        alpha.push(id.id);
    }
    let mut bravo = Vec::new();
    for n in 0..10 {
        let at = BACKLOG + n;
        let id = store
            .accept(message("bravo", at), at)
            .await
            .expect("accept");
        bravo.push(id.id);
    }
    let mut order = Vec::new();
    // Bounded: every claim takes at least one message until none is left.
    for _ in 0..=BACKLOG as usize + 10 {
        let claimed = store.claim_ready(100_000, CLAIM).await.expect("claim");
        if claimed.is_empty() {
            break;
        }
        assert!(claimed.len() <= CLAIM);
        order.extend(claimed.into_iter().map(|r| (r.client, r.id)));
    }
    let of = |client: &str| -> Vec<TernId> {
        order
            .iter()
            .filter(|(c, _)| c == client)
            .map(|(_, id)| *id)
            .collect()
    };
    assert_eq!(
        of("alpha"),
        alpha,
        "alpha's backlog oldest first, all of it"
    );
    assert_eq!(of("bravo"), bravo, "bravo's oldest first, all of it");
    let last_bravo = order
        .iter()
        .rposition(|(c, _)| c == "bravo")
        .expect("bravo claimed");
    assert!(
        last_bravo < CLAIM + CLAIM / 2,
        "bravo's 10 shared into the first claims of {CLAIM}, not behind alpha's {BACKLOG}: the last was claimed {last_bravo}th"
    );
    assert!(store.check().await.is_consistent());
}

async fn a_failed_attempt_is_retried_after_its_backoff<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    store.claim_ready(0, 1).await.expect("claim");
    let failed = Attempt {
        upstream: "ovh".to_owned(),
        at_ms: 10,
        status: Some(0x58),
        upstream_ids: vec![],
        failure: None,
    };
    store
        .record_attempt(id, failed, Some(60_000), 10)
        .await
        .expect("record");
    assert!(store
        .claim_ready(59_999, 10)
        .await
        .expect("claim")
        .is_empty());
    let again = store.claim_ready(60_000, 10).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts.len(), 1);
    assert!(store.check().await.is_consistent());
}

async fn a_failed_receipt_that_resubmits_requeues_the_message<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    store.claim_ready(0, 1).await.expect("claim");
    store
        .record_attempt(id, accepted_attempt("ovh", &["A1"]), None, 10)
        .await
        .expect("record");
    // The receipt is kept and the message goes back to the queue, in one
    // write.
    let update = ReceiptUpdate {
        requeue_at_ms: Some(20),
        ..ReceiptUpdate::default()
    };
    store.record_receipt(id, update, 15).await.expect("receipt");
    let record = store.get(id).await.expect("get").expect("there");
    assert_eq!(record.state, State::Queued);
    assert!(store.claim_ready(19, 10).await.expect("claim").is_empty());
    let again = store.claim_ready(20, 10).await.expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempts.len(), 1, "the first attempt stays");
    store
        .record_attempt(id, accepted_attempt("telesign", &["B1"]), None, 30)
        .await
        .expect("record");
    let record = store.get(id).await.expect("get").expect("there");
    assert_eq!(record.state, State::Submitted);
    assert_eq!(record.attempts.len(), 2);
    assert!(store.check().await.is_consistent());
}

async fn a_given_up_attempt_indexes_its_parts_but_submits_nothing<B: Backend>(b: &B) {
    // Part 1 accepted, part 2 refused: the message goes elsewhere, and a
    // receipt for part 1 must still find it.
    let store = b.open(3).await;
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    store.claim_ready(0, 1).await.expect("claim");
    let partial = Attempt {
        failure: Some("ESME_RSUBMITFAIL at part 2".to_owned()),
        ..accepted_attempt("a", &["A1"])
    };
    store
        .record_attempt(id, partial, Some(60_000), 10)
        .await
        .expect("record");
    let record = store.get(id).await.expect("read").expect("present");
    assert_eq!(
        record.state,
        State::Queued,
        "not submitted: part 2 never went"
    );
    assert_eq!(
        store.lookup_upstream("a", "A1").await.expect("lookup"),
        Some(id)
    );
    assert_eq!(store.claim_ready(60_000, 10).await.expect("claim").len(), 1);
    assert!(store.check().await.is_consistent());
}

async fn upstream_ids_are_found_in_any_form<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    store.claim_ready(0, 1).await.expect("claim");
    store
        .record_attempt(
            id,
            accepted_attempt("telesign", &["00AB12", "777"]),
            None,
            5,
        )
        .await
        .expect("record");
    let record = store.get(id).await.expect("read").expect("present");
    assert_eq!(record.state, State::Submitted);
    for form in ["00AB12", "ab12", "AB12", "777", "0777"] {
        assert_eq!(
            store
                .lookup_upstream("telesign", form)
                .await
                .expect("lookup"),
            Some(id),
            "form {form}"
        );
    }
    // Across bases only when asked: "43794" is 0xAB12, "309" is 0x777.
    for form in ["43794", "309"] {
        assert_eq!(
            store
                .lookup_upstream("telesign", form)
                .await
                .expect("lookup"),
            None,
            "form {form}"
        );
        assert_eq!(
            store
                .lookup_upstream_any_base("telesign", form)
                .await
                .expect("lookup"),
            Some(id),
            "form {form}"
        );
    }
    assert_eq!(
        store.lookup_upstream("ovh", "ab12").await.expect("lookup"),
        None,
        "per upstream"
    );
    assert_eq!(
        store
            .lookup_upstream("telesign", "ab13")
            .await
            .expect("lookup"),
        None
    );
}

async fn a_resubmission_within_the_window_gets_the_first_id<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let with_key = |at: u64| NewMessage {
        dedup: Some((Bytes::from_static(b"umr:42"), Duration::from_secs(60))),
        id_format: tern_storage::IdFormat::Hex,
        ..message("acme", at)
    };
    let first = store.accept(with_key(1_000), 1_000).await.expect("accept");
    let again = store.accept(with_key(2_000), 2_000).await.expect("accept");
    assert!(!first.duplicate);
    assert_eq!((again.id, again.duplicate), (first.id, true));
    // Another client's key is its own.
    let other = store
        .accept(
            NewMessage {
                client: "other".to_owned(),
                ..with_key(2_000)
            },
            2_000,
        )
        .await
        .expect("accept");
    assert!(!other.duplicate);
    // After the window, a new message.
    let late = store
        .accept(with_key(70_000), 70_000)
        .await
        .expect("accept");
    assert!(!late.duplicate);
    assert_ne!(late.id, first.id);
    assert_eq!(
        store.claim_ready(70_000, 10).await.expect("claim").len(),
        3,
        "duplicates are not sent again"
    );
}

async fn concurrent_resubmissions_store_one_message<B: Backend>(b: &B) {
    let store = std::sync::Arc::new(b.open(3).await);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let m = NewMessage {
                dedup: Some((Bytes::from_static(b"same"), Duration::from_secs(60))),
                id_format: tern_storage::IdFormat::Hex,
                ..message("acme", 0)
            };
            store.accept(m, 0).await.expect("accept")
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        ids.insert(t.await.expect("task").id);
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(store.claim_ready(0, 100).await.expect("claim").len(), 1);
}

async fn expiry_lists_what_ran_out_and_finish_takes_it_off<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let short = store
        .accept(
            NewMessage {
                expires_ms: Some(10_000),
                ..message("acme", 0)
            },
            0,
        )
        .await
        .expect("accept")
        .id;
    let long = store
        .accept(
            NewMessage {
                expires_ms: Some(90_000),
                ..message("acme", 0)
            },
            0,
        )
        .await
        .expect("accept")
        .id;
    assert_eq!(
        store.expired(9_999, 10).await.expect("expired"),
        Vec::<TernId>::new()
    );
    assert_eq!(
        store.expired(10_000, 10).await.expect("expired"),
        vec![short]
    );
    let outcome = Outcome {
        stat: "EXPIRED".to_owned(),
        err: 0,
        vendor_code: None,
    };
    store
        .finish(short, outcome.clone(), 10_000)
        .await
        .expect("finish");
    assert_eq!(
        store.expired(100_000, 10).await.expect("expired"),
        vec![long]
    );
    let record = store.get(short).await.expect("read").expect("present");
    assert_eq!(
        (record.state, record.outcome),
        (State::Final, Some(outcome))
    );
    assert!(store.check().await.is_consistent());
}

async fn outboxes_keep_order_per_client_until_acknowledged<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let item = |n: u8| OutboxItem {
        pdu: Bytes::from(vec![n]),
        message: None,
        stored_ms: u64::from(n),
    };
    let a1 = store.outbox_push("acme", &item(1)).await.expect("push");
    store.outbox_push("beta", &item(9)).await.expect("push");
    let a2 = store.outbox_push("acme", &item(2)).await.expect("push");
    let pending = store
        .outbox_pending("acme", None, 10)
        .await
        .expect("pending");
    assert_eq!(
        pending
            .iter()
            .map(|(s, i)| (*s, i.pdu[0]))
            .collect::<Vec<_>>(),
        vec![(a1, 1), (a2, 2)]
    );
    // A client whose name is a prefix of another's sees only its own.
    assert!(store
        .outbox_pending("acm", None, 10)
        .await
        .expect("pending")
        .is_empty());
    // A deliverer with items in flight reads only what came after them.
    let a3 = store.outbox_push("acme", &item(3)).await.expect("push");
    let shared = &store;
    let after = |seq| async move {
        shared
            .outbox_pending("acme", seq, 10)
            .await
            .expect("pending")
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
    };
    assert_eq!(after(None).await, vec![a1, a2, a3]);
    assert_eq!(after(Some(a1)).await, vec![a2, a3]);
    assert_eq!(after(Some(a2)).await, vec![a3]);
    assert!(after(Some(a3)).await.is_empty());
    assert!(after(Some(u64::MAX)).await.is_empty());
    assert_eq!(
        store
            .outbox_pending("acme", Some(a1), 1)
            .await
            .expect("pending")
            .len(),
        1
    );
    assert!(store
        .outbox_pending("acm", None, 10)
        .await
        .expect("pending")
        .is_empty());
    store.outbox_ack("acme", a3).await.expect("ack");
    assert_eq!(
        store.outbox_clients().await.expect("clients"),
        vec!["acme", "beta"]
    );
    store.outbox_ack("acme", a1).await.expect("ack");
    assert_eq!(
        store
            .outbox_pending("acme", None, 10)
            .await
            .expect("pending")
            .len(),
        1
    );
    drop(store);
    let store = b.open(3).await;
    assert_eq!(
        store
            .outbox_pending("acme", None, 10)
            .await
            .expect("pending")[0]
            .0,
        a2,
        "outboxes survive a restart"
    );
}

/// The queue depths say when the first message in the ready queue was (or
/// will be) due, the age operators alert on (`tern_ready_age_seconds`).
async fn the_oldest_ready_message_is_reported_with_the_depths<B: Backend>(b: &B) {
    let store = b.open(3).await;
    assert_eq!(
        store.queue_depths().await.expect("depths").oldest_ready_ms,
        None
    );
    store.accept(message("acme", 500), 0).await.expect("accept");
    store.accept(message("acme", 200), 0).await.expect("accept");
    assert_eq!(
        store.queue_depths().await.expect("depths").oldest_ready_ms,
        Some(200)
    );
    assert_eq!(store.claim_ready(300, 10).await.expect("claim").len(), 1);
    assert_eq!(
        store.queue_depths().await.expect("depths").oldest_ready_ms,
        Some(500)
    );
    assert_eq!(store.claim_ready(600, 10).await.expect("claim").len(), 1);
    assert_eq!(
        store.queue_depths().await.expect("depths").oldest_ready_ms,
        None
    );
}

/// Acknowledgements gathered by the outbox go in one call: each item is
/// removed as by one `outbox_ack`, places already gone are skipped, and
/// a client whose outbox empties is no longer listed.
async fn many_acknowledgements_remove_each_item<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    let item = |n: u8| OutboxItem {
        pdu: Bytes::from(vec![n]),
        message: Some(id),
        stored_ms: u64::from(n),
    };
    let mut seqs = Vec::new();
    for n in 0..5 {
        seqs.push(store.outbox_push("acme", &item(n)).await.expect("push"));
    }
    store.outbox_push("beta", &item(9)).await.expect("push");
    store.outbox_ack_many("acme", &[]).await.expect("nothing");
    // The first, third and fifth, and a place that was never there.
    store
        .outbox_ack_many("acme", &[seqs[0], seqs[2], seqs[4], u64::MAX])
        .await
        .expect("ack");
    let store = &store;
    let left = |client| async move {
        store
            .outbox_pending(client, None, 10)
            .await
            .expect("pending")
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>()
    };
    assert_eq!(left("acme").await, vec![seqs[1], seqs[3]]);
    assert_eq!(
        left("beta").await.len(),
        1,
        "another client's outbox untouched"
    );
    // Acknowledged twice (a retry of the batch): nothing more happens.
    store
        .outbox_ack_many("acme", &[seqs[0], seqs[1], seqs[3]])
        .await
        .expect("ack");
    assert!(left("acme").await.is_empty());
    assert_eq!(store.outbox_clients().await.expect("clients"), vec!["beta"]);
}

async fn an_early_receipt_is_held_for_its_grace_period<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let receipt = |id: &str, at: u64| UnmatchedReceipt {
        upstream: "telesign".to_owned(),
        upstream_id: id.to_owned(),
        pdu: Bytes::from_static(b"deliver_sm"),
        received_ms: at,
    };
    store
        .hold_unmatched(&receipt("0A", 1_000))
        .await
        .expect("hold");
    store
        .hold_unmatched(&receipt("FF", 5_000))
        .await
        .expect("hold");
    // The submit_sm_resp arrives: the receipt is found under another form
    // (case and zeros always; another base only when the vendor needs it).
    assert!(store
        .take_unmatched("telesign", "10")
        .await
        .expect("take")
        .is_none());
    let taken = store
        .take_unmatched_any_base("telesign", "10")
        .await
        .expect("take")
        .expect("held");
    assert_eq!(taken.upstream_id, "0A");
    assert!(
        store
            .take_unmatched("telesign", "0a")
            .await
            .expect("take")
            .is_none(),
        "taken once"
    );
    // The other never matches: it goes when its grace ends, not before.
    let grace = Duration::from_secs(10);
    assert!(store
        .expire_unmatched(14_999, grace, 10)
        .await
        .expect("expire")
        .is_empty());
    let expired = store
        .expire_unmatched(15_000, grace, 10)
        .await
        .expect("expire");
    assert_eq!(
        expired
            .iter()
            .map(|r| r.upstream_id.as_str())
            .collect::<Vec<_>>(),
        vec!["FF"]
    );
    assert!(store
        .take_unmatched("telesign", "ff")
        .await
        .expect("take")
        .is_none());
    // The same receipt again (the upstream sent it twice): its grace runs
    // from the last arrival, and one expiry ends it.
    for at in [20_000, 26_000] {
        store
            .hold_unmatched(&receipt("77", at))
            .await
            .expect("hold");
    }
    assert!(
        store
            .expire_unmatched(30_000, grace, 10)
            .await
            .expect("expire")
            .is_empty(),
        "the first arrival's grace does not end the second's"
    );
    let expired = store
        .expire_unmatched(36_000, grace, 10)
        .await
        .expect("expire");
    assert_eq!(expired.len(), 1, "{expired:?}");
    assert_eq!(expired[0].received_ms, 26_000);
    assert!(store
        .expire_unmatched(40_000, grace, 10)
        .await
        .expect("expire")
        .is_empty());
}

/// An intermediate receipt and the final one, both before the
/// submit_sm_resp was recorded: each was acknowledged, so both stay held,
/// and they come out in the order they came (holding only the latest lost
/// the ENROUTE a client had asked for).
async fn every_receipt_held_for_one_id_is_kept_in_arrival_order<B: Backend>(b: &B) {
    let store = b.open(3).await;
    // Nothing held: on sled, the callers that look for held receipts after
    // each submit_sm_resp and before each receipt skip their look-ups
    // (Redis, shared with other nodes, always looks).
    let sled = store.backend() == "sled";
    assert_eq!(store.may_hold_unmatched(), !sled, "nothing held yet");
    let receipt = |stat: &str, at: u64| UnmatchedReceipt {
        upstream: "mensatek".to_owned(),
        upstream_id: "700005".to_owned(),
        // A header (its sequence number differs between receipts), then
        // the body.
        pdu: Bytes::from([&at.to_be_bytes()[..], &[0; 8], stat.as_bytes()].concat()),
        received_ms: at,
    };
    let (enroute, delivered) = (receipt("ENROUTE", 1_000), receipt("DELIVRD", 1_005));
    for r in [&enroute, &delivered] {
        store.hold_unmatched(r).await.expect("hold");
    }
    assert!(store.may_hold_unmatched(), "held");
    // Held across a restart.
    drop(store);
    let store = b.open(3).await;
    assert!(store.may_hold_unmatched(), "still held after a restart");
    let peeked = store
        .peek_unmatched("mensatek", "700005", false)
        .await
        .expect("peek");
    assert_eq!(peeked.as_ref(), Some(&enroute), "the first held, peeked");
    for want in [&enroute, &delivered] {
        let taken = store
            .take_unmatched("mensatek", "700005")
            .await
            .expect("take")
            .expect("held");
        assert_eq!(&taken, want);
    }
    assert!(store
        .take_unmatched("mensatek", "700005")
        .await
        .expect("take")
        .is_none());
    assert_eq!(store.may_hold_unmatched(), !sled, "every held one taken");
    // Unmatched for good: both go when the last one's grace ends.
    for r in [&enroute, &delivered] {
        store.hold_unmatched(r).await.expect("hold");
    }
    assert!(store.may_hold_unmatched(), "held again");
    let grace = Duration::from_secs(10);
    assert!(store
        .expire_unmatched(11_004, grace, 10)
        .await
        .expect("expire")
        .is_empty());
    let expired = store
        .expire_unmatched(11_005, grace, 10)
        .await
        .expect("expire");
    assert_eq!(expired, [enroute, delivered]);
    assert_eq!(store.may_hold_unmatched(), !sled, "every held one expired");
    assert!(store
        .peek_unmatched("mensatek", "700005", false)
        .await
        .expect("peek")
        .is_none());
}

async fn finished_messages_are_purged_after_retention_with_their_indexes<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let old = store
        .accept(
            NewMessage {
                dedup: Some((Bytes::from_static(b"k1"), Duration::from_secs(3600))),
                id_format: tern_storage::IdFormat::Hex,
                ..message("acme", 0)
            },
            0,
        )
        .await
        .expect("accept")
        .id;
    let recent = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    let open_one = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    store.claim_ready(0, 3).await.expect("claim");
    store
        .record_attempt(old, accepted_attempt("ovh", &["111"]), None, 1)
        .await
        .expect("attempt");
    store
        .record_attempt(recent, accepted_attempt("ovh", &["222"]), None, 1)
        .await
        .expect("attempt");
    store.finish(old, delivered(), 1_000).await.expect("finish");
    store
        .finish(recent, delivered(), 50_000)
        .await
        .expect("finish");
    assert_eq!(store.purge_finished(10_000, 100).await.expect("purge"), 1);
    assert!(store.get(old).await.expect("read").is_none());
    assert_eq!(
        store.lookup_upstream("ovh", "111").await.expect("lookup"),
        None,
        "its index entry went too"
    );
    assert_eq!(
        store.lookup_upstream("ovh", "222").await.expect("lookup"),
        Some(recent)
    );
    assert!(
        store.get(open_one).await.expect("read").is_some(),
        "unfinished messages are never purged"
    );
    let v = store.check().await;
    assert!(v.is_consistent(), "{:?}", v.problems);
    assert_eq!((v.messages, v.finished, v.unfinished), (2, 1, 1));
}

/// A message sent without asking for a receipt (or whose receipt never
/// comes) is never final: it is kept a retention from its send, then goes
/// with every entry of it. One sent again meanwhile is waiting, and stays.
async fn a_message_no_receipt_ends_is_purged_a_retention_after_its_send<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let mut ids = Vec::new();
    for _ in 0..2 {
        let new = NewMessage {
            receipt_requested: false,
            expires_ms: Some(900_000),
            ..message("acme", 0)
        };
        ids.push(store.accept(new, 0).await.expect("accept").id);
    }
    let (silent, again) = (ids[0], ids[1]);
    store.claim_ready(0, 2).await.expect("claim");
    for (id, upstream_id) in [(silent, "S1"), (again, "S2")] {
        store
            .record_attempt(id, accepted_attempt("ovh", &[upstream_id]), None, 1_000)
            .await
            .expect("attempt");
    }
    // The second one's receipt sends it again: waiting, not purgeable.
    let update = ReceiptUpdate {
        requeue_at_ms: Some(950_000),
        ..ReceiptUpdate::default()
    };
    store
        .record_receipt(again, update, 1_500)
        .await
        .expect("receipt");

    assert_eq!(
        store.purge_finished(1_000, 100).await.expect("purge"),
        0,
        "not yet"
    );
    store.purge_finished(10_000, 100).await.expect("purge");
    assert!(
        store.get(silent).await.expect("read").is_none(),
        "kept for ever before"
    );
    assert_eq!(
        store.lookup_upstream("ovh", "S1").await.expect("lookup"),
        None
    );
    let waiting = store.get(again).await.expect("read").expect("kept");
    assert_eq!(waiting.state, State::Queued);
    let v = store.check().await;
    assert!(
        v.is_consistent(),
        "its expiry entry went too: {:?}",
        v.problems
    );
    assert_eq!((v.messages, v.queued), (1, 1));
}

/// Only a message waiting to be sent is in the expiry queue: one accepted
/// upstream leaves it (its validity is the upstream's to keep), so a look
/// for waiting messages to end finds the waiting ones and not a backlog
/// of sent ones before them; one sent again after a failed receipt waits
/// again, and is back in it.
async fn a_message_sent_upstream_leaves_the_expiry_queue_until_it_waits_again<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let mut ids = Vec::new();
    for at in [0, 1] {
        let new = NewMessage {
            expires_ms: Some(10_000 + at),
            ..message("acme", at)
        };
        ids.push(store.accept(new, at).await.expect("accept").id);
    }
    let (sent, waiting) = (ids[0], ids[1]);
    assert_eq!(store.claim_ready(0, 1).await.expect("claim").len(), 1);
    store
        .record_attempt(sent, accepted_attempt("ovh", &["E1"]), None, 1_000)
        .await
        .expect("attempt");
    assert_eq!(
        store.expired(20_000, 1).await.expect("expired"),
        vec![waiting],
        "the sent message no longer comes first"
    );
    let update = ReceiptUpdate {
        requeue_at_ms: Some(2_000),
        ..ReceiptUpdate::default()
    };
    store
        .record_receipt(sent, update, 1_500)
        .await
        .expect("receipt");
    assert_eq!(
        store.expired(20_000, 10).await.expect("expired"),
        vec![sent, waiting],
        "waiting again, it can expire again"
    );
    assert!(store.check().await.is_consistent());
}

async fn in_flight_messages_go_back_to_ready_at_restart<B: Backend>(b: &B) {
    {
        let store = b.open(3).await;
        for _ in 0..3 {
            store.accept(message("acme", 0), 0).await.expect("accept");
        }
        assert_eq!(store.claim_ready(0, 2).await.expect("claim").len(), 2);
    }
    let store = b.open(3).await;
    assert_eq!(store.check().await.in_flight, 0, "requeued at open");
    assert_eq!(store.claim_ready(0, 10).await.expect("claim").len(), 3);
}

/// sled keeps claims in memory only (`sled_store/claims.rs`): a claimed
/// message keeps its ready entry in the store, so the open has nothing in
/// flight to put back (it still does for stores written before, see the
/// unit test `an_in_flight_entry_of_an_older_store_is_ready_again_at_open`),
/// and the claimed messages are ready again.
#[test]
fn sled_claims_leave_nothing_in_flight_to_requeue_at_open() {
    let dir = TempDir::new("recovery-count");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    {
        let store = open(&dir);
        runtime.block_on(async {
            for _ in 0..3 {
                store.accept(message("acme", 0), 0).await.expect("accept");
            }
            assert_eq!(store.claim_ready(0, 2).await.expect("claim").len(), 2);
        });
    }
    let (store, recovery) = SledStore::open(&dir.0, StoreOptions::default()).expect("reopen");
    assert_eq!(recovery.requeued, 0);
    assert_eq!(store.ready_len(), 3);
    let claimed = runtime.block_on(store.claim_ready(0, 10)).expect("claim");
    assert_eq!(claimed.len(), 3, "the two claimed before are ready again");
}

#[test]
fn a_directory_that_is_not_a_store_is_refused_and_left_alone() {
    let dir = TempDir::new("not-a-store");
    std::fs::create_dir_all(&dir.0).expect("mkdir");
    std::fs::write(dir.0.join("notes.txt"), "precious").expect("write");
    let err = SledStore::open(&dir.0, StoreOptions::default()).expect_err("refused");
    assert!(
        matches!(err, StoreError::NotAStore { .. } | StoreError::Open { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains(&dir.0.display().to_string()),
        "names the path: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join("notes.txt")).expect("kept"),
        "precious"
    );
}

/// A first start killed after sled created its files but before Tern's
/// format mark reached disk leaves a directory of sled's files with
/// nothing in them to recover. The next start must finish creating the
/// store: refusing it ("not a Tern message store") would leave a daemon
/// that systemd restarts in vain until someone deletes the directory.
#[tokio::test]
async fn a_first_open_cut_short_is_finished_by_the_next_open() {
    let dir = TempDir::new("cut-short");
    drop(
        ::sled::Config::new()
            .path(&dir.0)
            .open()
            .expect("sled creates its files"),
    );
    // As killed before sled wrote a page: its files, empty.
    for entry in std::fs::read_dir(&dir.0).expect("lists") {
        let path = entry.expect("entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        match name.as_deref() {
            Some("db") => std::fs::write(&path, b"").expect("empties db"),
            Some(n) if n.starts_with("snap.") => std::fs::remove_file(&path).expect("removes"),
            _ => {}
        }
    }
    let store = open(&dir);
    let accepted = store.accept(message("acme", 0), 0).await.expect("accepts");
    assert!(store.get(accepted.id).expect("reads").is_some());
}

#[test]
fn a_corrupt_store_is_an_error_naming_its_path() {
    let dir = TempDir::new("corrupt");
    {
        let _ = open(&dir);
    }
    // Overwrite every data file with garbage.
    for entry in walk(&dir.0) {
        let len = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        if len > 0 {
            std::fs::write(&entry, vec![0xA5; len as usize]).expect("scribble");
        }
    }
    match SledStore::open(&dir.0, StoreOptions::default()) {
        Err(err) => assert!(
            err.to_string().contains(&dir.0.display().to_string()),
            "{err}"
        ),
        Ok(_) => panic!("a scribbled store opened"),
    }
}

fn wal_files(dir: &std::path::Path) -> Vec<PathBuf> {
    walk(&dir.join("wal"))
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect()
}

/// A clean close leaves sled complete and the write-ahead log empty; a log
/// found at open is replayed, and one that cannot be read stops the open
/// with the log file's path rather than open a store missing writes.
#[tokio::test]
async fn the_write_ahead_log_is_emptied_at_close_and_a_damaged_one_refused() {
    let dir = TempDir::new("wal");
    let store = open(&dir);
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    drop(store);
    assert!(wal_files(&dir.0).is_empty(), "{:?}", wal_files(&dir.0));
    let store = open(&dir);
    assert!(store.get(id).expect("read").is_some());
    drop(store);

    // Two records, the first with a wrong checksum: not a torn tail.
    let record = |payload: &[u8], crc: u32| {
        let mut bytes = (payload.len() as u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&crc.to_le_bytes());
        bytes.extend_from_slice(payload);
        bytes
    };
    let damaged = dir.0.join("wal").join("0000000000000001.wal");
    let mut bytes = record(b"\x00\x01\x00\x00\x00k", 12345);
    let whole = b"\x00\x01\x00\x00\x00j";
    bytes.extend(record(whole, crc32fast::hash(whole)));
    std::fs::write(&damaged, bytes).expect("write");
    match SledStore::open(&dir.0, StoreOptions::default()) {
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains(&damaged.display().to_string()), "{text}");
            assert!(text.contains("checksum"), "{text}");
        }
        Ok(_) => panic!("a store with a damaged log opened"),
    }
    // Cut to the damaged record alone, it is a torn write: dropped.
    let bytes = std::fs::read(&damaged).expect("read");
    std::fs::write(&damaged, &bytes[..bytes.len() - 8 - whole.len()]).expect("cut");
    let store = open(&dir);
    assert!(store.get(id).expect("read").is_some());
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("readable").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[tokio::test]
async fn fast_mode_syncs_the_log_on_its_interval_not_per_write() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = TempDir::new("fast");
    let (store, _) = SledStore::open(
        &dir.0,
        StoreOptions {
            durability: Durability::Fast {
                interval: Duration::from_millis(300),
            },
            ..StoreOptions::default()
        },
    )
    .expect("opens");
    for _ in 0..100 {
        store.accept(message("acme", 0), 0).await.expect("accept");
    }
    let stats = store.commit_stats();
    let (groups, syncs) = (stats.flushes.load(Relaxed), stats.syncs.load(Relaxed));
    // One group a write, since each waited for the last; the only sync
    // wanted at once is the sequence block's high-water mark (durable in
    // every mode), plus at most one interval's pass on a slow machine.
    assert!(groups >= 100, "{groups} groups");
    assert!(syncs <= 3, "{syncs} syncs for {groups} groups");
    // Applied before the call returned: every later read sees them.
    assert_eq!(store.claim_ready(0, 1000).await.expect("claim").len(), 100);
    // Gone quiet, the log is synced within the interval all the same.
    let synced_before = stats.syncs.load(Relaxed);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        stats.syncs.load(Relaxed) > synced_before,
        "the unsynced tail was never synced"
    );
}

/// The outbox's gathered acknowledgements cost one write, not one each.
#[tokio::test]
async fn many_acknowledgements_are_one_write() {
    use std::sync::atomic::Ordering::Relaxed;
    let dir = TempDir::new("ack-many");
    let store = open(&dir);
    let item = OutboxItem {
        pdu: Bytes::from_static(b"x"),
        message: None,
        stored_ms: 0,
    };
    let mut seqs = Vec::new();
    for _ in 0..50 {
        seqs.push(store.outbox_push("acme", &item).await.expect("push"));
    }
    let before = store.commit_stats().writes.load(Relaxed);
    store.outbox_ack_many("acme", &seqs).await.expect("ack");
    assert_eq!(store.commit_stats().writes.load(Relaxed) - before, 1);
    assert!(store
        .outbox_pending("acme", None, 100)
        .expect("pending")
        .is_empty());
}

/// A message's whole life through [`Store`] alone, as the daemon sees any
/// backend: accept, claim, submit, find by upstream id, receipt to the
/// outbox, finish.
async fn life_of_a_message(store: &Store) {
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;
    let claimed = store.claim_ready(0, 10).await.expect("claim");
    assert_eq!(claimed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    store
        .record_attempt(id, accepted_attempt("infobip", &["9F"]), None, 1)
        .await
        .expect("attempt");
    assert_eq!(
        store
            .lookup_upstream("infobip", "009f")
            .await
            .expect("lookup"),
        Some(id)
    );
    assert_eq!(
        store
            .lookup_upstream_any_base("infobip", "159")
            .await
            .expect("lookup"),
        Some(id)
    );
    let item = OutboxItem {
        pdu: Bytes::from_static(b"dlr"),
        message: Some(id),
        stored_ms: 2,
    };
    let seq = store.outbox_push("acme", &item).await.expect("push");
    store.finish(id, delivered(), 3).await.expect("finish");
    assert_eq!(
        store.get(id).await.expect("read").expect("present").state,
        State::Final
    );
    assert_eq!(
        store
            .outbox_pending("acme", None, 10)
            .await
            .expect("pending"),
        vec![(seq, item)]
    );
    store.outbox_ack("acme", seq).await.expect("ack");
    assert!(store.outbox_clients().await.expect("clients").is_empty());
}

/// A receipt written with the look at held receipts: refused (nothing
/// written) while a receipt for the same upstream id is held from before,
/// in any form the upstream's base rule allows; stored once none is. The
/// attempt's look says whether one is held, and its write is made either
/// way.
async fn a_receipt_waits_for_those_held_before_it<B: Backend>(b: &B) {
    let store = b.open(3).await;
    let id = store
        .accept(message("acme", 1), 1)
        .await
        .expect("accept")
        .id;
    assert_eq!(store.claim_ready(10, 1).await.expect("claim").len(), 1);
    let held = UnmatchedReceipt {
        upstream: "up".to_owned(),
        upstream_id: "0A".to_owned(),
        pdu: Bytes::from_static(b"deliver_sm"),
        received_ms: 5,
    };
    store.hold_unmatched(&held).await.expect("hold");
    // Held under "0a": the same id in decimal is "10", seen only across
    // bases.
    let seen = store
        .record_attempt_seeing_held(id, accepted_attempt("up", &["10"]), None, 6, false)
        .await
        .expect("attempt");
    assert!(!seen, "not across bases unless asked");
    let seen = store
        .record_attempt_seeing_held(id, accepted_attempt("up", &["10"]), None, 6, true)
        .await
        .expect("attempt");
    assert!(seen, "held under the other base");
    let record = store.get(id).await.expect("get").expect("there");
    assert_eq!(record.state, State::Submitted);
    assert_eq!(record.attempts.len(), 2, "both attempts written");
    assert_eq!(
        store.lookup_upstream("up", "10").await.expect("lookup"),
        Some(id)
    );

    let update = || ReceiptUpdate {
        outcome: Some(delivered()),
        ..ReceiptUpdate::default()
    };
    let under = |any_base| HeldUnder {
        upstream: "up",
        upstream_id: "10",
        any_base,
    };
    let written = store
        .record_decided_receipt(&record, update(), 7, Some(under(true)))
        .await
        .expect("receipt");
    assert_eq!(written, ReceiptWrite::HeldFirst);
    let record = store.get(id).await.expect("get").expect("there");
    assert_eq!(record.state, State::Submitted, "nothing written");
    let written = store
        .record_decided_receipt(&record, update(), 7, Some(under(false)))
        .await
        .expect("receipt");
    assert_eq!(
        written,
        ReceiptWrite::Stored(None),
        "not held in its own base"
    );
    let record = store.get(id).await.expect("get").expect("there");
    assert_eq!(record.state, State::Final);
    // Once taken, nothing is in the way.
    assert!(store
        .take_unmatched_any_base("up", "10")
        .await
        .expect("take")
        .is_some());
    let again = store
        .record_decided_receipt(&record, update(), 8, Some(under(true)))
        .await
        .expect("receipt");
    assert_eq!(again, ReceiptWrite::Stored(None));
    assert!(!store
        .record_attempt_seeing_held(id, accepted_attempt("up", &["11"]), None, 9, true)
        .await
        .expect("attempt"));
}

async fn the_store_serves_its_one_interface<B: Backend>(b: &B) {
    life_of_a_message(&b.open(3).await).await;
}

on_every_backend!(
    accepted_messages_are_kept_with_unique_ids_of_this_node,
    ids_are_never_reused_after_a_restart,
    the_ready_queue_respects_not_before_and_claims_once,
    the_ready_queues_are_fair_between_clients_and_oldest_first_within_each,
    a_failed_attempt_is_retried_after_its_backoff,
    a_failed_receipt_that_resubmits_requeues_the_message,
    a_given_up_attempt_indexes_its_parts_but_submits_nothing,
    upstream_ids_are_found_in_any_form,
    a_resubmission_within_the_window_gets_the_first_id,
    concurrent_resubmissions_store_one_message,
    expiry_lists_what_ran_out_and_finish_takes_it_off,
    outboxes_keep_order_per_client_until_acknowledged,
    many_acknowledgements_remove_each_item,
    the_oldest_ready_message_is_reported_with_the_depths,
    an_early_receipt_is_held_for_its_grace_period,
    every_receipt_held_for_one_id_is_kept_in_arrival_order,
    a_receipt_waits_for_those_held_before_it,
    finished_messages_are_purged_after_retention_with_their_indexes,
    a_message_no_receipt_ends_is_purged_a_retention_after_its_send,
    a_message_sent_upstream_leaves_the_expiry_queue_until_it_waits_again,
    in_flight_messages_go_back_to_ready_at_restart,
    the_store_serves_its_one_interface,
);

#[test]
fn a_store_reopens_at_once_after_it_was_dropped() {
    // sled's background flusher may hold the file lock a moment after the
    // store is dropped; open waits for it instead of failing (a restart
    // right after a stop must work).
    let dir = TempDir::new("reopen-at-once");
    for round in 0..20 {
        let store = open(&dir);
        assert!(
            store.verify().expect("verify").is_consistent(),
            "round {round}"
        );
        drop(store);
    }
}

/// Sends `signal` (STOP, CONT) to a process.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("runs kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

/// A Redis server that stops answering (SIGSTOP: its socket stays open,
/// nothing comes back) makes each kind of read (a script, one command,
/// several in turn) fail within the read timeout instead of hanging its
/// task; once it answers again, the same connections serve reads, in step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_read_without_an_answer_fails_in_time_and_the_store_recovers() {
    let server = common::RedisServer::start("stopped-server");
    let redis = common::Redis {
        topology: tern_storage::RedisTopology::Single(server.address()),
        prefix: "stuck".to_owned(),
    };
    let store = redis.open(1).await;
    let id = store
        .accept(message("acme", 0), 0)
        .await
        .expect("accept")
        .id;

    signal(server.pid, "STOP");
    // Bounded well past the store's own 5 s: without the store's timeout
    // this outer one fires and the test fails.
    let reads = tokio::time::timeout(Duration::from_secs(30), async {
        tokio::join!(
            store.get(id),
            store.lookup_upstream_any_base("infobip", "9f"),
            store.queue_depths(),
        )
    })
    .await;
    signal(server.pid, "CONT");
    let (record, lookup, depths) = reads.expect("every read returned while Redis was stopped");
    for err in [record.err(), lookup.err(), depths.err()] {
        assert!(
            matches!(err, Some(StoreError::Redis { .. })),
            "a stopped server is an error: {err:?}"
        );
    }

    // The late answers are read and dropped: each read gets its own.
    for _ in 0..20 {
        let record = tokio::time::timeout(Duration::from_secs(10), store.get(id))
            .await
            .expect("answers once Redis runs again")
            .expect("reads")
            .expect("present");
        assert_eq!(record.id, id);
    }
}

/// A fake Redis on a loopback port that accepts every connection and
/// answers `+OK` to each command (the client's handshake), except that
/// from the first command naming `stuck_at` on it answers nothing; with
/// an empty `stuck_at` it never answers at all.
async fn stuck_server(stuck_at: &'static str) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds a loopback port");
    let address = format!("redis://{}", listener.local_addr().expect("has an address"));
    let server = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut stuck = stuck_at.is_empty();
                while let Ok(n) = socket.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    stuck = stuck || text.contains(stuck_at);
                    if !stuck {
                        // One answer per command: each starts an array.
                        let commands = text.split("\r\n").filter(|l| l.starts_with('*')).count();
                        let _ = socket.write_all(&b"+OK\r\n".repeat(commands)).await;
                    }
                }
            }));
        }
    });
    (address, server)
}

/// Opening a Redis store on an address that accepts connections but never
/// answers (a hung server, a wrong service behind the port), or that
/// answers the connection's handshake and then hangs on the first real
/// command, fails within the store's timeout instead of hanging the
/// daemon's start.
#[tokio::test]
async fn opening_a_redis_store_on_a_server_that_never_answers_fails_in_time() {
    let fsync = tern_storage::RedisDurability::AppendFsyncAlways;
    // Under WAIT nothing is checked at open: the connections come first.
    let wait = tern_storage::RedisDurability::Wait {
        replicas: 1,
        timeout: Duration::from_secs(1),
    };
    for (stuck_at, durability) in [("", fsync), ("CONFIG", fsync), ("", wait)] {
        let (address, server) = stuck_server(stuck_at).await;
        let opened = tokio::time::timeout(
            Duration::from_secs(30),
            tern_storage::RedisStore::open(tern_storage::RedisOptions {
                topology: tern_storage::RedisTopology::Single(address),
                node: 1,
                prefix: "silent".to_owned(),
                durability,
                tls_ca: None,
            }),
        )
        .await;
        server.abort();
        let err = opened
            .unwrap_or_else(|_| {
                panic!("open returned while the server hung (at {stuck_at:?}, {durability:?})")
            })
            .expect_err("a server that does not answer is refused");
        assert!(matches!(err, StoreError::Redis { .. }), "{err:?}");
    }
}

/// A `Store` call on sled carries no Redis state: the Redis side of each
/// method is boxed (`backend.rs`, `redis!`), so the future the daemon
/// holds (and moves into place for every message) is about sled's own.
/// Unboxed, `get` was 1 064 octets for a lookup in memory and
/// `claim_ready` 1 672.
#[test]
fn a_store_call_on_sled_carries_no_redis_state() {
    let dir = TempDir::new("future-sizes");
    let store = Store::Sled(open(&dir));
    let Store::Sled(sled) = &store else {
        unreachable!("opened as sled");
    };
    let get = store.get(TernId::from_u64(1));
    assert!(
        std::mem::size_of_val(&get) <= 64,
        "{}",
        std::mem::size_of_val(&get)
    );
    let claim = store.claim_ready(0, 1);
    let sled_claim = sled.claim_ready(0, 1);
    assert!(
        std::mem::size_of_val(&claim) <= std::mem::size_of_val(&sled_claim) + 64,
        "{} against sled's {}",
        std::mem::size_of_val(&claim),
        std::mem::size_of_val(&sled_claim)
    );
}

/// `tern check-store` counts what sled holds after a clean close, where
/// records are packed sixteen to a sled key: every message, none twice.
#[tokio::test]
async fn inspect_counts_the_records_a_checkpoint_packed_into_sled() {
    let dir = TempDir::new("inspect-packed");
    {
        let store = open(&dir);
        for n in 0..37 {
            store.accept(message("acme", n), n).await.expect("accepts");
        }
    }
    let report = tern_storage::inspect::inspect(&dir.0, false).expect("inspects");
    assert_eq!(report.queued, 37, "{report:?}");
    assert_eq!(report.wal_records, 0, "all of it in sled: {report:?}");
}

/// A store written before records were packed (format 1), or before the
/// ready queues were (format 2), opens, its records read, and is marked
/// format 3, so an older Tern refuses it rather than read packed keys as
/// none; a format this code does not know is refused.
#[tokio::test]
async fn a_store_of_an_older_format_opens_and_is_marked_three_and_an_unknown_one_is_refused() {
    let dir = TempDir::new("format-mark");
    let id = {
        let store = open(&dir);
        store
            .accept(message("acme", 0), 0)
            .await
            .expect("accepts")
            .id
    };
    let sled_at = || {
        ::sled::Config::new()
            .path(&dir.0)
            .flush_every_ms(None)
            .open()
            .expect("sled opens")
    };
    let mark = |value: &[u8]| {
        let db = sled_at();
        db.insert(b"zformat", value).expect("marks");
        db.flush().expect("flushes");
    };
    for older in [&b"tern-storage/1"[..], b"tern-storage/2"] {
        mark(older);
        {
            let store = open(&dir);
            assert!(store.get(id).expect("reads").is_some(), "its message");
        }
        assert_eq!(
            sled_at().get(b"zformat").expect("reads").as_deref(),
            Some(&b"tern-storage/3"[..])
        );
    }
    mark(b"tern-storage/4");
    match SledStore::open(&dir.0, StoreOptions::default()) {
        Err(StoreError::NotAStore { reason, .. }) => assert!(reason.contains("format"), "{reason}"),
        Err(other) => panic!("refused, but not as another format: {other}"),
        Ok(_) => panic!("a store of an unknown format opened"),
    }
}
