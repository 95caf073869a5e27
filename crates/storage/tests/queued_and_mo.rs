//! Changes to messages still waiting to be sent (cancel_sm, replace_sm) and
//! MO parts held for reassembly, on every backend (sled on disk, a Redis
//! server, a Redis Cluster; see `common`): what each
//! operation changes and leaves, that a waiting message is either claimed
//! by the dispatcher or changed by a client but never both, and that held
//! parts survive a restart and leave exactly once.

#[macro_use]
mod common;

use common::{Backend, TestStore};

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use tern_storage::{
    Attempt, HeldMo, MessageRecord, MoGroup, MoPart, NewMessage, OutboxItem, Outcome, QueuedChange,
    Replacement, State, Store, StoreError, TernId,
};

fn message(client: &str, pdu: &'static [u8], at: u64, expires: Option<u64>) -> NewMessage {
    NewMessage {
        client: client.to_owned(),
        pdu: Bytes::from_static(pdu),
        receipt_requested: true,
        not_before_ms: at,
        expires_ms: expires,
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

fn deleted() -> Outcome {
    Outcome {
        stat: "DELETED".to_owned(),
        err: 0,
        vendor_code: None,
    }
}

/// Through the interface the daemon uses.
async fn cancel_any(store: &Store, id: TernId) -> Result<QueuedChange, StoreError> {
    store.cancel_queued(id, |_| true, deleted(), 2_000).await
}

async fn record(store: &Store, id: TernId) -> MessageRecord {
    store.get(id).await.expect("reads").expect("exists")
}

async fn a_scheduled_message_is_cancelled_once_and_never_claimed<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let id = store
        .accept(message("acme", b"later", 60_000, Some(90_000)), 1_000)
        .await
        .expect("accepted")
        .id;

    let change = store
        .cancel_queued(id, |r| r.client == "acme", deleted(), 2_000)
        .await
        .expect("store answers");
    let QueuedChange::Done(ended) = change else {
        panic!("{change:?}")
    };
    assert_eq!(ended.state, State::Final);
    assert_eq!(ended.outcome, Some(deleted()));
    assert_eq!(
        record(&store, id).await,
        *ended,
        "what it returns is what it stored"
    );
    // Off every queue: not claimed at its time, not listed as expiring.
    assert!(store
        .claim_ready(100_000, 10)
        .await
        .expect("claims")
        .is_empty());
    assert!(store.expired(100_000, 10).await.expect("reads").is_empty());
    // Cancelling again finds it ended.
    assert_eq!(
        store
            .cancel_queued(id, |_| true, deleted(), 3_000)
            .await
            .expect("store answers"),
        QueuedChange::NotQueued(State::Final)
    );
    assert!(store.check().await.is_consistent());
}

async fn the_callers_check_and_unknown_ids_change_nothing<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let id = store
        .accept(message("acme", b"mine", 60_000, None), 1_000)
        .await
        .expect("accepted")
        .id;
    let before = record(&store, id).await;
    assert_eq!(
        store
            .cancel_queued(id, |r| r.client == "other", deleted(), 2_000)
            .await
            .expect("answers"),
        QueuedChange::Refused
    );
    assert_eq!(
        store
            .replace_queued(id, |_| None, 2_000)
            .await
            .expect("answers"),
        QueuedChange::Refused
    );
    assert_eq!(record(&store, id).await, before);
    let unknown = TernId::new(5, 999_999).expect("in range");
    assert_eq!(
        cancel_any(&store, unknown).await.expect("answers"),
        QueuedChange::NotFound
    );
}

async fn claimed_messages_cannot_be_cancelled_but_a_retry_waiting_can<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let id = store
        .accept(message("acme", b"now", 1_000, None), 1_000)
        .await
        .expect("accepted")
        .id;
    assert_eq!(store.claim_ready(1_000, 10).await.expect("claims").len(), 1);
    assert_eq!(
        store
            .cancel_queued(id, |_| true, deleted(), 1_500)
            .await
            .expect("answers"),
        QueuedChange::NotQueued(State::InFlight)
    );
    // The upstream refused for now: back in the queue until 30 s.
    let attempt = Attempt {
        upstream: "ovh".to_owned(),
        at_ms: 2_000,
        status: Some(0x58),
        upstream_ids: Vec::new(),
        failure: None,
    };
    store
        .record_attempt(id, attempt, Some(30_000), 2_000)
        .await
        .expect("recorded");
    assert!(matches!(
        store
            .cancel_queued(id, |_| true, deleted(), 3_000)
            .await
            .expect("answers"),
        QueuedChange::Done(_)
    ));
    assert!(store
        .claim_ready(40_000, 10)
        .await
        .expect("claims")
        .is_empty());
    assert!(store.check().await.is_consistent());
}

async fn a_replaced_message_keeps_its_id_and_moves_to_its_new_times<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let id = store
        .accept(message("acme", b"old text", 60_000, Some(90_000)), 1_000)
        .await
        .expect("accepted")
        .id;
    let change = store
        .replace_queued(
            id,
            |r| {
                assert_eq!(r.pdu.as_ref(), b"old text");
                Some(Replacement {
                    pdu: Bytes::from_static(b"new text"),
                    receipt_requested: false,
                    not_before_ms: 5_000,
                    expires_ms: Some(20_000),
                })
            },
            2_000,
        )
        .await
        .expect("answers");
    assert!(matches!(change, QueuedChange::Done(ref r) if r.id == id));
    assert!(store.check().await.is_consistent());
    // Due at the new time, with the new text; the old expiry is gone.
    assert!(store
        .claim_ready(4_999, 10)
        .await
        .expect("claims")
        .is_empty());
    assert_eq!(store.expired(90_000, 10).await.expect("reads"), vec![id]);
    let claimed = store.claim_ready(5_000, 10).await.expect("claims");
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].pdu.as_ref(), b"new text");
    assert!(!claimed[0].receipt_requested);
    assert_eq!(claimed[0].expires_ms, Some(20_000));
}

async fn replacing_a_message_being_sent_is_refused_as_not_queued<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let id = store
        .accept(message("acme", b"x", 1_000, None), 1_000)
        .await
        .expect("accepted")
        .id;
    store.claim_ready(1_000, 10).await.expect("claims");
    let change = store
        .replace_queued(
            id,
            |r| {
                Some(Replacement {
                    pdu: Bytes::from_static(b"y"),
                    receipt_requested: r.receipt_requested,
                    not_before_ms: r.not_before_ms,
                    expires_ms: r.expires_ms,
                })
            },
            2_000,
        )
        .await
        .expect("answers");
    assert_eq!(change, QueuedChange::NotQueued(State::InFlight));
    assert_eq!(record(&store, id).await.pdu.as_ref(), b"x");
}

async fn cancel_by_match_ends_only_what_the_check_accepts<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let mut ids = Vec::new();
    for (client, pdu) in [
        ("acme", &b"to-a"[..]),
        ("acme", b"to-b"),
        ("beta", b"to-a"),
        ("acme", b"to-a"),
    ] {
        let m = NewMessage {
            pdu: Bytes::copy_from_slice(pdu),
            ..message(client, b"", 60_000, None)
        };
        ids.push(store.accept(m, 1_000).await.expect("accepted").id);
    }
    // One already being sent is not touched even though it matches.
    let sent = store
        .accept(message("acme", b"to-a", 1_000, None), 1_000)
        .await
        .expect("accepted")
        .id;
    assert_eq!(store.claim_ready(1_000, 10).await.expect("claims").len(), 1);

    let ended = store
        .cancel_queued_matching(
            |r| r.client == "acme" && r.pdu.as_ref() == b"to-a",
            deleted(),
            2_000,
            100,
        )
        .await
        .expect("answers");
    let ended: HashSet<TernId> = ended.iter().map(|r| r.id).collect();
    assert_eq!(ended, HashSet::from([ids[0], ids[3]]));
    assert_eq!(record(&store, ids[1]).await.state, State::Queued);
    assert_eq!(record(&store, ids[2]).await.state, State::Queued);
    assert_eq!(record(&store, sent).await.state, State::InFlight);
    // The limit bounds one call.
    let ended = store
        .cancel_queued_matching(|_| true, deleted(), 3_000, 1)
        .await
        .expect("answers");
    assert_eq!(ended.len(), 1);
    assert!(store.check().await.is_consistent());
}

/// The dispatcher's claim and clients' cancels and replaces, all at once on
/// the same messages: every message ends up claimed or changed, never both,
/// and a claimed message is exactly the old or exactly the new one.
async fn claim_and_cancel_or_replace_never_both_get_a_message<B: Backend>(b: &B) {
    let store = Arc::new(b.open_with(5, true).await);
    const N: usize = 300;
    let mut ids = Vec::new();
    for _ in 0..N {
        let id = store
            .accept(message("acme", b"old", 1_000, None), 1_000)
            .await
            .expect("accepted")
            .id;
        ids.push(id);
    }

    let claimer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut claimed = Vec::new();
            while claimed.len() < N {
                let batch = store.claim_ready(2_000, 7).await.expect("claims");
                if batch.is_empty() {
                    tokio::task::yield_now().await;
                    // Everything left was cancelled: stop once nothing is ready.
                    if store.ready_count().await == 0 {
                        break;
                    }
                }
                claimed.extend(batch);
            }
            claimed
        })
    };
    let mut changers = Vec::new();
    for (n, id) in ids.iter().copied().enumerate() {
        let store = store.clone();
        changers.push(tokio::spawn(async move {
            let change = if n % 2 == 0 {
                store.cancel_queued(id, |_| true, deleted(), 1_500).await
            } else {
                store
                    .replace_queued(
                        id,
                        |r| {
                            Some(Replacement {
                                pdu: Bytes::from_static(b"new"),
                                receipt_requested: r.receipt_requested,
                                not_before_ms: r.not_before_ms,
                                expires_ms: r.expires_ms,
                            })
                        },
                        1_500,
                    )
                    .await
            };
            (n, id, change.expect("store answers"))
        }));
    }
    let mut changes = Vec::new();
    for changer in changers {
        changes.push(changer.await.expect("task"));
    }
    // Replaced messages stay queued: the claimer takes them too.
    let claimed = claimer.await.expect("task");
    let claimed_pdus: std::collections::HashMap<TernId, Bytes> =
        claimed.iter().map(|r| (r.id, r.pdu.clone())).collect();
    assert_eq!(claimed_pdus.len(), claimed.len(), "claimed once each");

    let (mut cancelled, mut late) = (0, 0);
    for (n, id, change) in changes {
        match (n % 2 == 0, change) {
            (true, QueuedChange::Done(r)) => {
                cancelled += 1;
                assert_eq!(r.state, State::Final);
                assert!(
                    !claimed_pdus.contains_key(&id),
                    "{id} cancelled and claimed"
                );
            }
            (false, QueuedChange::Done(_)) => {
                assert_eq!(claimed_pdus.get(&id).map(|b| b.as_ref()), Some(&b"new"[..]));
            }
            (true, QueuedChange::NotQueued(State::InFlight)) => {
                late += 1;
                assert!(claimed_pdus.contains_key(&id));
            }
            (false, QueuedChange::NotQueued(State::InFlight)) => {
                late += 1;
                assert_eq!(claimed_pdus.get(&id).map(|b| b.as_ref()), Some(&b"old"[..]));
            }
            (_, other) => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(
        claimed.len() + cancelled,
        N,
        "every message claimed or cancelled"
    );
    assert!(cancelled + late > 0);
    let v = store.check().await;
    assert!(v.is_consistent(), "{:?}", v.problems);
    assert_eq!((v.in_flight, v.finished), (claimed.len(), cancelled));
}

fn group(reference: u16) -> MoGroup {
    MoGroup {
        client: "acme".to_owned(),
        source: "34600111222".to_owned(),
        destination: "7777".to_owned(),
        scheme: 0,
        reference,
        total: 3,
    }
}

fn part(sequence: u8) -> MoPart {
    MoPart {
        upstream: "ovh".to_owned(),
        sequence,
        pdu: Bytes::from(format!("part {sequence}")),
        received_ms: 1_000 + u64::from(sequence),
    }
}

fn item(text: &str) -> OutboxItem {
    OutboxItem {
        pdu: Bytes::copy_from_slice(text.as_bytes()),
        message: None,
        stored_ms: 9_000,
    }
}

fn sequences(held: &HeldMo) -> Vec<u8> {
    held.parts.iter().map(|p| p.sequence).collect()
}

async fn mo_parts_are_held_in_any_order_and_released_once<B: Backend>(b: &B) {
    let store = b.open(5).await;
    let g = group(42);
    let held = store
        .mo_part_hold(&g, &part(3), 60_000)
        .await
        .expect("held");
    assert_eq!((sequences(&held), held.deadline_ms), (vec![3], 60_000));
    assert!(!held.is_complete());
    // A later part does not move the deadline; a resent part replaces its copy.
    let held = store
        .mo_part_hold(&g, &part(1), 99_000)
        .await
        .expect("held");
    assert_eq!((sequences(&held), held.deadline_ms), (vec![1, 3], 60_000));
    let held = store
        .mo_part_hold(&g, &part(1), 99_000)
        .await
        .expect("held");
    assert_eq!(sequences(&held), vec![1, 3]);
    // Another reference is another group.
    let other = store
        .mo_part_hold(&group(43), &part(2), 70_000)
        .await
        .expect("held");
    assert_eq!(sequences(&other), vec![2]);
    let held = store
        .mo_part_hold(&g, &part(2), 99_000)
        .await
        .expect("held");
    assert!(held.is_complete());
    assert_eq!(held.parts, vec![part(1), part(2), part(3)]);

    assert!(store
        .mo_group_release(&g, |held| {
            assert!(held.is_complete());
            vec![item("whole")]
        })
        .await
        .expect("released"));
    assert!(
        !store
            .mo_group_release(&g, |_| vec![item("whole again")])
            .await
            .expect("answers"),
        "a group leaves once"
    );
    let owed: Vec<Bytes> = store
        .outbox_pending("acme", None, 10)
        .await
        .expect("reads")
        .into_iter()
        .map(|(_, i)| i.pdu)
        .collect();
    assert_eq!(owed, vec![Bytes::from_static(b"whole")]);
    // Only the other group is left, due at its own deadline.
    assert!(store
        .mo_groups_due(69_999, 10)
        .await
        .expect("reads")
        .is_empty());
    let due = store.mo_groups_due(70_000, 10).await.expect("reads");
    assert_eq!(due.len(), 1);
    assert_eq!((due[0].group.reference, sequences(&due[0])), (43, vec![2]));
}

async fn held_mo_parts_survive_a_restart_and_go_out_at_their_deadline<B: Backend>(b: &B) {
    {
        let store = b.open(5).await;
        store
            .mo_part_hold(&group(7), &part(2), 5_000)
            .await
            .expect("held");
        store
            .mo_part_hold(&group(8), &part(1), 4_000)
            .await
            .expect("held");
    }
    let store = b.open(5).await;
    let due = store.mo_groups_due(10_000, 10).await.expect("reads");
    let refs: Vec<u16> = due.iter().map(|h| h.group.reference).collect();
    assert_eq!(refs, vec![8, 7], "oldest deadline first");
    assert_eq!(due[1].parts, vec![part(2)]);
    // A part arrives after the deadline was read and before the release:
    // the release sees it, so it goes out too rather than being dropped.
    store
        .mo_part_hold(&group(7), &part(3), 5_000)
        .await
        .expect("held");
    // Released as they are: one outbox item per part.
    assert!(store
        .mo_group_release(&due[1].group, |held| {
            held.parts
                .iter()
                .map(|p| item(&p.sequence.to_string()))
                .collect()
        })
        .await
        .expect("released"));
    assert_eq!(
        store.mo_groups_due(10_000, 10).await.expect("reads").len(),
        1
    );
    let owed: Vec<Bytes> = store
        .outbox_pending("acme", None, 10)
        .await
        .expect("reads")
        .into_iter()
        .map(|(_, i)| i.pdu)
        .collect();
    assert_eq!(
        owed,
        vec![Bytes::from_static(b"2"), Bytes::from_static(b"3")]
    );
}

async fn impossible_mo_keys_are_refused<B: Backend>(b: &B) {
    let store = b.open(5).await;
    for sequence in [0, 4] {
        let refused = store.mo_part_hold(&group(1), &part(sequence), 1_000).await;
        assert!(
            matches!(refused, Err(StoreError::BadKey { .. })),
            "{refused:?}"
        );
    }
    let mut g = group(1);
    g.source = "346\0".to_owned();
    assert!(matches!(
        store.mo_part_hold(&g, &part(1), 1_000).await,
        Err(StoreError::BadKey { what: "source", .. })
    ));
    assert!(store
        .mo_groups_due(u64::MAX, 10)
        .await
        .expect("reads")
        .is_empty());
}

/// submit_multi: every destination is a message of its own, queued and
/// claimable alone, tied to the submission's id (the first's), and the
/// tie survives a restart.
async fn a_submit_multis_destinations_are_stored_together_and_survive_a_restart<B: Backend>(b: &B) {
    let ids = {
        let store = b.open(5).await;
        store
            .accept_multi(
                vec![
                    message("acme", b"one", 1_000, None),
                    message("acme", b"two", 1_000, Some(90_000)),
                    message("acme", b"three", 1_000, None),
                ],
                1_000,
            )
            .await
            .expect("accepted")
    };
    assert_eq!(ids.len(), 3);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 3, "one id each");
    let store = b.open(5).await;
    let lead = record(&store, ids[0]).await;
    assert_eq!(lead.submission_members(), Some(ids.as_slice()));
    for (id, pdu) in ids.iter().zip([&b"one"[..], b"two", b"three"]) {
        let r = record(&store, *id).await;
        assert_eq!(r.client_id(), ids[0], "each names the submission");
        assert_eq!(r.pdu, Bytes::copy_from_slice(pdu));
        assert_eq!(r.state, State::Queued);
    }
    assert_eq!(record(&store, ids[1]).await.submission_members(), None);
    assert_eq!(
        store.expired(100_000, 10).await.expect("reads"),
        vec![ids[1]]
    );
    let claimed = store.claim_ready(2_000, 10).await.expect("claims");
    let claimed: HashSet<TernId> = claimed.iter().map(|r| r.id).collect();
    assert_eq!(claimed, ids.iter().copied().collect());
    assert!(store.check().await.is_consistent());
}

on_every_backend!(
    a_submit_multis_destinations_are_stored_together_and_survive_a_restart,
    a_scheduled_message_is_cancelled_once_and_never_claimed,
    the_callers_check_and_unknown_ids_change_nothing,
    claimed_messages_cannot_be_cancelled_but_a_retry_waiting_can,
    a_replaced_message_keeps_its_id_and_moves_to_its_new_times,
    replacing_a_message_being_sent_is_refused_as_not_queued,
    cancel_by_match_ends_only_what_the_check_accepts,
    claim_and_cancel_or_replace_never_both_get_a_message,
    mo_parts_are_held_in_any_order_and_released_once,
    held_mo_parts_survive_a_restart_and_go_out_at_their_deadline,
    impossible_mo_keys_are_refused,
);
