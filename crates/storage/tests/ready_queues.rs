//! The ready queues of a Redis store written before they were per client:
//! one sorted set per shard over all its clients. A node's recovery moves
//! their ids into their clients' queues, and they drain fairly and oldest
//! first. (The sled case is a unit test in `sled_store/ready.rs`.)

#[macro_use]
mod common;

use common::Redis;

use bytes::Bytes;
use tern_storage::redis_store::layout::{client_shard, Layout};
use tern_storage::{NewMessage, RedisTopology, TernId};

fn message(client: &str, at: u64) -> NewMessage {
    NewMessage {
        client: client.to_owned(),
        pdu: Bytes::from_static(b"pdu"),
        receipt_requested: false,
        not_before_ms: at,
        expires_ms: None,
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

/// Runs `f` on a connection that reaches every key of the deployment.
fn raw<T>(b: &Redis, f: impl FnOnce(&mut dyn redis::ConnectionLike) -> T) -> T {
    match &b.topology {
        RedisTopology::Single(address) => {
            let client = redis::Client::open(address.as_str()).expect("address");
            f(&mut client.get_connection().expect("connects"))
        }
        RedisTopology::Cluster(addresses) => {
            let client = redis::cluster::ClusterClient::new(addresses.clone()).expect("addresses");
            f(&mut client.get_connection().expect("connects"))
        }
    }
}

async fn a_store_with_one_ready_set_per_shard_recovers_into_client_queues(b: &Redis) {
    let layout = Layout::new(&b.prefix).expect("prefix");
    let mut ids: Vec<(&str, TernId)> = Vec::new();
    {
        let store = b.open_redis(1).await;
        for (n, client) in ["alpha", "alpha", "alpha", "bravo"].into_iter().enumerate() {
            let at = n as u64;
            let id = store
                .accept(message(client, at), at)
                .await
                .expect("accept")
                .id;
            ids.push((client, id));
        }
    }
    // Back to the layout of older stores.
    raw(b, |conn| {
        for (client, id) in &ids {
            let shard = client_shard(client);
            let m = id.to_string();
            let at: f64 = redis::cmd("ZSCORE")
                .arg(layout.ready(client))
                .arg(&m)
                .query(conn)
                .expect("scored");
            let run = |cmd: &mut redis::Cmd, conn: &mut dyn redis::ConnectionLike| {
                cmd.query::<i64>(conn).expect("runs");
            };
            run(redis::cmd("ZREM").arg(layout.ready(client)).arg(&m), conn);
            run(
                redis::cmd("ZADD")
                    .arg(layout.legacy_ready(shard))
                    .arg(at)
                    .arg(&m),
                conn,
            );
            run(redis::cmd("DEL").arg(layout.ready_clients(shard)), conn);
        }
    });
    let store = b.open_redis(1).await;
    assert_eq!(store.ready_len().await.expect("len"), 4);
    for (client, _) in &ids {
        let left: usize = raw(b, |conn| {
            redis::cmd("ZCARD")
                .arg(layout.legacy_ready(client_shard(client)))
                .query(conn)
                .expect("zcard")
        });
        assert_eq!(left, 0, "the old set is empty");
    }
    let first = store.claim_ready(100, 2).await.expect("claim");
    let first: Vec<_> = first.iter().map(|r| r.id).collect();
    assert_eq!(first, vec![ids[0].1, ids[3].1], "one of each client");
    let rest = store.claim_ready(100, 10).await.expect("claim");
    let rest: Vec<_> = rest.iter().map(|r| r.id).collect();
    assert_eq!(rest, vec![ids[1].1, ids[2].1], "alpha's oldest first");
    assert!(store.verify().await.expect("verify").is_consistent());
}

on_every_redis!(a_store_with_one_ready_set_per_shard_recovers_into_client_queues);
