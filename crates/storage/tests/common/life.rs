//! A message's life on one Redis server, step by step as the daemon
//! makes it, for the tests that count what it costs the server.

use bytes::Bytes;
use tern_storage::{
    Attempt, HeldUnder, IdFormat, NewMessage, OutboxItem, Outcome, ReceiptUpdate, ReceiptWrite,
    RedisStore, RelayedReceipt, State,
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
pub async fn sent_and_receipted(store: &RedisStore, id: tern_storage::TernId, n: usize) {
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
        .record_receipt_unless_held(id, update, 3, under)
        .await
        .expect("receipt stored");
    assert!(
        matches!(written, ReceiptWrite::Stored(Some(_))),
        "{written:?}"
    );
}
