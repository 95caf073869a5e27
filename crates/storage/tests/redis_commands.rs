//! What a message's life costs a Redis server in commands and request
//! octets, read from the server's own `INFO` (a server per test, so only
//! the test's own commands count). A test binary of its own: its 400
//! lives at once would load the machine under the timing of the round-trip
//! tests (a kept look serves for 200 ms, `redis_round_trips.rs`).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::life::{lives, message};
use common::{info_stat, open_on, RedisServer};
use tern_storage::redis_store::layout::{client_shard, Layout};
use tern_storage::{Attempt, OutboxItem, Outcome, ReceiptUpdate, ReceiptWrite, State};

/// Messages in flight at once: enough that each step's writes gather.
const MESSAGES: usize = 400;

/// Calls per command the server has answered, from its `INFO
/// commandstats` (a script's calls counted under their own commands, the
/// script under `evalsha`).
fn all_commands(server: &RedisServer) -> HashMap<String, u64> {
    let stats = server.cli(&["INFO", "commandstats"]).expect("INFO");
    stats
        .lines()
        .filter_map(|line| {
            let (name, rest) = line
                .trim()
                .strip_prefix("cmdstat_")?
                .split_once(":calls=")?;
            Some((name.to_owned(), rest.split(',').next()?.parse().ok()?))
        })
        .collect()
}

/// Every command the server has run (scripts' calls included, the
/// scripts themselves and `INFO` left out).
fn commands(server: &RedisServer) -> HashMap<String, u64> {
    all_commands(server)
        .into_iter()
        .filter(|(name, _)| !matches!(name.as_str(), "evalsha" | "info" | "script|load"))
        .collect()
}

/// A message's whole life on Redis (accepted, claimed, sent, receipted,
/// its receipt read and acknowledged by the client), gathered over 400
/// messages, runs at most 14 commands per message on the server, and its
/// writes to records, queues, indexes and the outbox at most 5: the
/// writes of one call to one key are one command (`lua::APPLY` holds them
/// back), and the outbox is read with one HMGET a call. Before, a
/// message cost 31 commands here (22 of them such writes: 4 SETs of its
/// record, 6 ZADDs, 7 ZREMs, 3 HSETs, …), each a `redis.call` whose cost
/// to the server is several times the command's; after, 11 to 12 (2.5 to
/// 3, as the writes happen to gather). And the
/// request octets a life are at most those of the record once per write
/// of it and 2.5 KiB (see `stored.rs`). On a server of its own, so only
/// this test's commands and octets count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_messages_life_is_a_few_commands_on_the_server() {
    // Octets of each message's PDU, about what a 160-character text makes
    // with its addresses and TLVs.
    const PDU: usize = 400;
    let server = RedisServer::start("life_commands");
    let store = Arc::new(open_on(&server, "life").await);
    let before = commands(&server);
    let input = info_stat(&server, "total_net_input_bytes");
    let ids = lives(&store, MESSAGES, Some(PDU)).await;
    let after = commands(&server);
    let input = info_stat(&server, "total_net_input_bytes") - input;
    let input = input / MESSAGES as u64;
    println!("request octets per life: {input}");
    // The record goes to the server once per write of it (accept, claim,
    // attempt, receipt), each write's fence being its generation: with
    // the record's octets as the fence it went twice in three of them,
    // 4 750 octets a life here instead of 3 390.
    let bound = 4 * PDU as u64 + 2560;
    assert!(
        input <= bound,
        "{input} request octets a life, over {bound}"
    );
    let ran: HashMap<&str, u64> = after
        .iter()
        .map(|(name, n)| (name.as_str(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    let n = MESSAGES as f64;
    let per = |names: &[&str]| -> f64 {
        names
            .iter()
            .map(|c| ran.get(c).copied().unwrap_or(0))
            .sum::<u64>() as f64
            / n
    };
    let all: Vec<&str> = ran.keys().copied().collect();
    let writes = [
        "set", "mset", "zadd", "zrem", "hset", "hdel", "sadd", "srem", "del",
    ];
    println!("commands for {MESSAGES} lives: {ran:?}");
    assert!(
        per(&all) <= 14.0,
        "{:.1} commands a message: {ran:?}",
        per(&all)
    );
    assert!(
        per(&writes) <= 5.0,
        "{:.1} writes a message: {ran:?}",
        per(&writes)
    );
    // On one server a claim's records come in the script that finds their
    // ids in the ready queues, so the record's fence is the whole check:
    // no `ZSCORE` of the id in its queue (one a message before).
    assert_eq!(
        ran.get("zscore"),
        None,
        "member checks in claims on one server: {ran:?}"
    );
    for id in &ids {
        let record = store.get(*id).await.expect("reads").expect("there");
        assert_eq!(record.state, State::Final);
        assert!(record.relayed[0].acked_ms.is_some());
    }
    // `verify` found every record by its key (`SCAN`): one server keeps no
    // set of every id, which cost each accept a write and each purge
    // another. The retention queues, named the same way, are there.
    let check = store.verify().await.expect("verifies");
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(check.finished, MESSAGES);
    let keys = |pattern: &str| server.cli(&["KEYS", pattern]).expect("KEYS");
    assert!(keys("life:{t*}:retention").contains("retention"));
    assert_eq!(keys("life:{t*}:all").trim(), "", "a set of every id");
}

/// A store written before kept a set of every id on one server too: the
/// first open drops it, so its members (nothing removes them any more)
/// do not stay for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_stores_set_of_every_id_goes_at_open() {
    let server = RedisServer::start("old_id_sets");
    for shard in [0, 7, 15] {
        let key = format!("old:{{t{shard}}}:all");
        server
            .cli(&["SADD", &key, "00000000000000a7"])
            .expect("SADD");
    }
    let kept = server.cli(&["KEYS", "old:*"]).expect("KEYS");
    assert_eq!(kept.lines().count(), 3, "{kept}");
    let _store = open_on(&server, "old").await;
    let left = server.cli(&["KEYS", "old:{t*}:all"]).expect("KEYS");
    assert_eq!(left.trim(), "", "left after the open: {left}");
}

/// Writes of one step that come while a call of that step is out wait
/// for it and go together in the next call: every call costs the server
/// a script run of its own (its arguments made into Lua values, its
/// effects wrapped for the append-only file) and Tern a request and an
/// answer, whatever it carries. The server pauses writes, so the first
/// accept's call stays out while nine more come, 20 ms apart: two calls
/// in all. With four calls of a step out at once, as before, the next
/// three went alone: five calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_come_while_a_call_is_out_go_in_the_next() {
    let server = RedisServer::start("one_call_out");
    let store = Arc::new(open_on(&server, "one_call_out").await);
    // Reserves the shard's block of ids (a write the pause would hold).
    store.accept(message(0), 1).await.expect("accepted");
    let calls = || all_commands(&server).get("evalsha").copied().unwrap_or(0);
    let before = calls();
    server
        .cli(&["CLIENT", "PAUSE", "500", "WRITE"])
        .expect("pauses writes");
    let mut accepts = Vec::new();
    for n in 1..=10 {
        let store = store.clone();
        accepts.push(tokio::spawn(async move {
            store.accept(message(n), 1).await.expect("accepted")
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for accept in accepts {
        accept.await.expect("accept task");
    }
    let spent = calls() - before;
    assert_eq!(spent, 2, "script calls for 10 accepts");
}

/// A receipt adds its client to the shard's set of clients with an outbox
/// whether or not its write applies (a notice: once per call, not once
/// per message), so a client may be listed with nothing owed; the read of
/// its outbox that finds nothing takes it out, and one with an item owed
/// stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_listed_with_nothing_owed_leaves_the_list_when_read() {
    let server = RedisServer::start("outbox_notice");
    let store = open_on(&server, "notice").await;
    let layout = Layout::new("notice").expect("a prefix");
    let listed = String::from_utf8(layout.outbox_clients(client_shard("ghost"))).expect("text");
    server.cli(&["SADD", &listed, "ghost"]).expect("SADD");
    let item = OutboxItem {
        pdu: Bytes::from_static(b"deliver_sm"),
        message: None,
        stored_ms: 1,
    };
    store.outbox_push("acme", &item).await.expect("stored");
    let mut clients = store.outbox_clients().await.expect("lists");
    clients.sort();
    assert_eq!(clients, ["acme", "ghost"]);
    for client in ["acme", "ghost"] {
        store.outbox_pending(client, None, 10).await.expect("reads");
    }
    assert_eq!(store.outbox_clients().await.expect("lists"), ["acme"]);
}

/// Two receipts of one message decided from the same read and gathered
/// into one batch of writes: the script runs a call's checks before its
/// writes, so the writer puts the second in a call of its own, whose
/// check then sees the first's record and refuses it (`Changed`: the
/// daemon reads and decides again). In one call both passed their checks
/// against the record as it was, and the second overwrote the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receipts_of_one_message_in_one_batch_are_not_both_written() {
    let server = RedisServer::start("one_batch");
    let store = Arc::new(open_on(&server, "one_batch").await);
    let mut ids = Vec::new();
    for n in 0..2 {
        ids.push(store.accept(message(n), 1).await.expect("accepted").id);
    }
    let claimed = store.claim_ready(2, 2).await.expect("claims");
    assert_eq!(claimed.len(), 2);
    for (n, id) in ids.iter().enumerate() {
        let attempt = Attempt {
            upstream: "up".to_owned(),
            at_ms: 2,
            status: Some(0),
            upstream_ids: vec![format!("U{n}")],
            failure: None,
        };
        store
            .record_attempt_seeing_held(*id, attempt, None, 2, true)
            .await
            .expect("attempt recorded");
    }
    let ending = |stat: &str| ReceiptUpdate {
        outcome: Some(Outcome {
            stat: stat.to_owned(),
            err: 0,
            vendor_code: None,
        }),
        ..ReceiptUpdate::default()
    };
    let other = store.get(ids[0]).await.expect("reads").expect("there");
    let read = store.get(ids[1]).await.expect("reads").expect("there");
    // The other message's receipt goes out first and waits on the paused
    // server; the two come meanwhile and gather in the next batch.
    server
        .cli(&["CLIENT", "PAUSE", "300", "WRITE"])
        .expect("pauses writes");
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .record_decided_receipt(&other, ending("DELIVRD"), 3, None)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut racing = Vec::new();
    for stat in ["DELIVRD", "UNDELIV"] {
        let (store, read, update) = (store.clone(), read.clone(), ending(stat));
        racing.push(tokio::spawn(async move {
            store.record_decided_receipt(&read, update, 3, None).await
        }));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = first.await.expect("task").expect("written");
    assert!(matches!(first, ReceiptWrite::Stored(_)), "{first:?}");
    let mut written = Vec::new();
    for race in racing {
        written.push(race.await.expect("task").expect("answered"));
    }
    let stored = written
        .iter()
        .filter(|w| matches!(w, ReceiptWrite::Stored(_)))
        .count();
    assert_eq!(stored, 1, "{written:?}");
    assert!(written.contains(&ReceiptWrite::Changed), "{written:?}");
}
