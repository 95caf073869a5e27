//! A message's life on one Redis server, step by step as the daemon
//! makes it, for the tests that count what it costs the server.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_storage::{
    Attempt, HeldUnder, IdFormat, NewMessage, OutboxItem, Outcome, ReceiptUpdate, ReceiptWrite,
    RedisStore, RelayedReceipt, State, TernId,
};

/// A message of client "acme", the `n`th.
pub fn message(n: usize) -> NewMessage {
    NewMessage {
        client: "acme".to_owned(),
        pdu: Bytes::from(format!("submit_sm {n}")),
        receipt_requested: true,
        not_before_ms: 1,
        expires_ms: Some(u64::MAX / 2),
        dedup: None,
        id_format: IdFormat::Hex,
    }
}

/// A DELIVRD outcome.
pub fn delivered() -> Outcome {
    Outcome {
        stat: "DELIVRD".to_owned(),
        err: 0,
        vendor_code: None,
    }
}

/// Sends one claimed message and stores its receipt, as the daemon's
/// dispatcher and receipt handler do: the attempt with its upstream id
/// and the look at receipts held for it, then the lookup by that id, the
/// record, and the receipt with the client's (written unless receipts are
/// held before it).
pub async fn sent_and_receipted(store: &RedisStore, id: TernId, n: usize) {
    let upstream_id = format!("U{n:06}");
    let attempt = Attempt {
        upstream: "up".to_owned(),
        at_ms: 2,
        status: Some(0),
        upstream_ids: vec![upstream_id.clone()],
        failure: None,
    };
    let held = store
        .record_attempt_seeing_held(id, attempt, None, 2, true)
        .await
        .expect("attempt recorded");
    assert!(!held, "no receipt came before its submit_sm_resp");
    let found = store
        .lookup_upstream("up", &upstream_id)
        .await
        .expect("looks up")
        .expect("found");
    assert_eq!(found, id);
    let record = store.get(id).await.expect("reads").expect("there");
    assert_eq!(record.state, State::Submitted);
    let update = ReceiptUpdate {
        outcome: Some(delivered()),
        relay: Some((
            OutboxItem {
                pdu: Bytes::from_static(b"deliver_sm"),
                message: Some(id),
                stored_ms: 3,
            },
            RelayedReceipt {
                outbox_seq: 0,
                part: None,
                stat: "DELIVRD".to_owned(),
                err: 0,
                queued_ms: 3,
                acked_ms: None,
            },
        )),
        ..ReceiptUpdate::default()
    };
    let under = HeldUnder {
        upstream: "up",
        upstream_id: &upstream_id,
        any_base: true,
    };
    let written = store
        .record_decided_receipt(&record, update, 3, Some(under))
        .await
        .expect("receipt stored");
    assert!(
        matches!(written, ReceiptWrite::Stored(Some(_))),
        "{written:?}"
    );
}

/// `messages` lives at once, as the daemon's stages make them: all
/// accepted (each PDU `pdu` octets long when given), claimed, sent and
/// receipted ([`sent_and_receipted`]), and the client's receipts taken
/// and acknowledged ([`all_taken`]). Returns the ids, in the order the
/// messages were made.
pub async fn lives(store: &Arc<RedisStore>, messages: usize, pdu: Option<usize>) -> Vec<TernId> {
    let ids = receipted(store, messages, pdu).await;
    all_taken(store, messages).await;
    ids
}

/// [`lives`] up to the receipts in the client's outbox, not taken yet.
pub async fn receipted(
    store: &Arc<RedisStore>,
    messages: usize,
    pdu: Option<usize>,
) -> Vec<TernId> {
    let accepts: Vec<_> = (0..messages)
        .map(|n| {
            let store = store.clone();
            let mut m = message(n);
            if let Some(octets) = pdu {
                m.pdu = Bytes::from(vec![b'x'; octets]);
            }
            tokio::spawn(async move { store.accept(m, 1).await.expect("accepted").id })
        })
        .collect();
    let mut ids = Vec::new();
    for accept in accepts {
        ids.push(accept.await.expect("accept task"));
    }
    let mut claimed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while claimed.len() < messages {
        assert!(
            Instant::now() < deadline,
            "claimed {} in 30 s",
            claimed.len()
        );
        claimed.extend(store.claim_ready(2, 100).await.expect("claims"));
    }
    let numbers: HashMap<_, _> = ids.iter().enumerate().map(|(n, id)| (*id, n)).collect();
    let sends: Vec<_> = claimed
        .iter()
        .map(|record| {
            let (store, id, n) = (store.clone(), record.id, numbers[&record.id]);
            tokio::spawn(async move { sent_and_receipted(&store, id, n).await })
        })
        .collect();
    for send in sends {
        send.await.expect("send task");
    }
    ids
}

/// The client takes its `messages` receipts, acknowledged in batches as
/// the outbox does.
pub async fn all_taken(store: &RedisStore, messages: usize) {
    let mut taken = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while taken < messages {
        assert!(Instant::now() < deadline, "took {taken} in 30 s");
        let items = store
            .outbox_pending("acme", None, 100)
            .await
            .expect("outbox");
        let seqs: Vec<u64> = items.iter().map(|(seq, _)| *seq).collect();
        store
            .outbox_ack_many("acme", &seqs)
            .await
            .expect("acknowledged");
        taken += seqs.len();
    }
}
