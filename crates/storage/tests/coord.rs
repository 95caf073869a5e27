//! Coordination between nodes sharing one Redis store (`redis_store::coord`),
//! on one server and on a three-primary cluster: leases, membership,
//! requeueing a dead node's claims, outbox notifications. Each node is its
//! own `RedisStore` on the same prefix with its own node id, as separate
//! processes would be. TTLs are a few hundred milliseconds, and every wait
//! has a deadline.

#[macro_use]
mod common;

use common::Redis;

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tern_storage::redis_store::coord::Coordinator;
use tern_storage::{
    now_ms, NewMessage, OutboxItem, ReceiptUpdate, ReceiptWrite, RedisStore, RedisTopology,
    RelayedReceipt, StoreError, TernId,
};

/// Polls `check` every 20 ms until it is true; false if `within` passed.
async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn message(client: &str) -> NewMessage {
    NewMessage {
        client: client.to_owned(),
        pdu: Bytes::from_static(b"submit"),
        receipt_requested: true,
        not_before_ms: now_ms(),
        expires_ms: None,
        dedup: None,
        id_format: tern_storage::IdFormat::Hex,
    }
}

fn item(n: u8) -> OutboxItem {
    OutboxItem {
        pdu: Bytes::from(vec![n]),
        message: None,
        stored_ms: u64::from(n),
    }
}

async fn a_lease_has_one_holder_and_renewal_keeps_it(b: &Redis) {
    let (a, other) = (
        b.open_redis(1).await.coordinator(),
        b.open_redis(2).await.coordinator(),
    );
    let ttl = Duration::from_millis(800);
    assert!(a.acquire("router", ttl).await.expect("acquire"));
    assert!(!other.acquire("router", ttl).await.expect("acquire"));
    assert_eq!(a.holder("router").await.expect("holder"), Some(1));
    // Renewing within the TTL keeps it well past the first expiry.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(a.acquire("router", ttl).await.expect("renew"));
        assert!(!other.acquire("router", ttl).await.expect("acquire"));
    }
    assert_eq!(a.holder("router").await.expect("holder"), Some(1));
    // Another lease is independent.
    assert!(other.acquire("purger", ttl).await.expect("acquire"));
}

async fn an_expired_lease_goes_to_the_other_node(b: &Redis) {
    let (a, other) = (
        b.open_redis(1).await.coordinator(),
        b.open_redis(2).await.coordinator(),
    );
    let ttl = Duration::from_millis(300);
    let taken = Instant::now();
    assert!(a.acquire("router", ttl).await.expect("acquire"));
    assert!(!other.acquire("router", ttl).await.expect("acquire"));
    let handed_over = eventually(Duration::from_secs(3), || async {
        other.acquire("router", ttl).await.expect("acquire")
    })
    .await;
    assert!(handed_over, "the lease never expired");
    assert!(
        taken.elapsed() >= Duration::from_millis(250),
        "taken over after {:?}, before the TTL",
        taken.elapsed()
    );
    assert_eq!(other.holder("router").await.expect("holder"), Some(2));
    // The old holder can neither take it back nor release it.
    assert!(!a.acquire("router", ttl).await.expect("acquire"));
    a.release("router").await.expect("release");
    assert_eq!(a.holder("router").await.expect("holder"), Some(2));
}

async fn a_released_lease_is_free_at_once(b: &Redis) {
    let (a, other) = (
        b.open_redis(1).await.coordinator(),
        b.open_redis(2).await.coordinator(),
    );
    let long = Duration::from_secs(30);
    assert!(a.acquire("router", long).await.expect("acquire"));
    other.release("router").await.expect("release");
    assert_eq!(a.holder("router").await.expect("holder"), Some(1));
    a.release("router").await.expect("release");
    assert_eq!(a.holder("router").await.expect("holder"), None);
    assert!(other.acquire("router", long).await.expect("acquire"));
    assert_eq!(a.holder("router").await.expect("holder"), Some(2));
    other.release("router").await.expect("release");
}

async fn holders_reads_many_leases_at_once(b: &Redis) {
    let (a, other) = (
        b.open_redis(1).await.coordinator(),
        b.open_redis(2).await.coordinator(),
    );
    let ttl = Duration::from_secs(5);
    assert!(a.acquire("x", ttl).await.expect("acquire"));
    assert!(other.acquire("y", ttl).await.expect("acquire"));
    assert_eq!(
        a.holders(&["x", "y", "z", "x"]).await.expect("holders"),
        vec![Some(1), Some(2), None, Some(1)]
    );
    assert!(a.holders(&[]).await.expect("holders").is_empty());
    // Membership is a lease too.
    other.join(ttl).await.expect("joins");
    assert_eq!(
        a.holders(&["node:1", "node:2"]).await.expect("holders"),
        vec![None, Some(2)]
    );
}

async fn join_refuses_a_live_duplicate_and_takes_over_after_expiry(b: &Redis) {
    let ttl = Duration::from_millis(400);
    let first = b.open_redis(7).await.coordinator();
    first.join(ttl).await.expect("joins");
    first.join(ttl).await.expect("joining again is a renewal");
    // The first process stays alive: it renews every 100 ms.
    let renewing = {
        let first = first.clone();
        tokio::spawn(async move {
            loop {
                assert!(first.renew(ttl).await.expect("renews"), "lost membership");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let second = b.open_redis(7).await.coordinator();
    assert_ne!(first.owner(), second.owner());
    let started = Instant::now();
    match second.join(ttl).await {
        Err(StoreError::NodeIdInUse(7)) => {}
        other => panic!("a live duplicate joined: {other:?}"),
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1_300) && waited < Duration::from_secs(3),
        "waited {waited:?}, not TTL + 1 s"
    );
    // The first process dies (no more renewals): its membership expires,
    // and the restarted one gets in within the TTL.
    renewing.abort();
    let _ = renewing.await;
    let started = Instant::now();
    second.join(ttl).await.expect("joins after the expiry");
    assert!(started.elapsed() < Duration::from_millis(1_300));
    assert_eq!(second.holder("node:7").await.expect("holder"), Some(7));
    assert!(second.renew(ttl).await.expect("renews"));
    // The old process learns it lost its membership, and cannot end the new one's.
    assert!(!first.renew(ttl).await.expect("renew"));
    first.leave().await.expect("leave");
    assert_eq!(second.holder("node:7").await.expect("holder"), Some(7));
    second.leave().await.expect("leave");
    assert_eq!(second.holder("node:7").await.expect("holder"), None);
    assert!(!second.renew(ttl).await.expect("renew"));
}

async fn orphans_of_a_dead_node_go_back_to_the_ready_queue(b: &Redis) {
    let (dead, live, survivor) = (
        b.open_redis(1).await,
        b.open_redis(2).await,
        b.open_redis(3).await,
    );
    // Long enough that node 1 is still a member when the survivor first
    // looks, after six accepts and two claims on a loaded machine (300 ms
    // ran out there, and the first look found its messages orphaned).
    let short = Duration::from_secs(2);
    let long = Duration::from_secs(30);
    dead.coordinator().join(short).await.expect("joins");
    live.coordinator().join(long).await.expect("joins");
    survivor.coordinator().join(long).await.expect("joins");

    let mut orphaned = Vec::new();
    for client in ["acme", "beta", "gamma"] {
        orphaned.push(
            dead.accept(message(client), now_ms())
                .await
                .expect("accept")
                .id,
        );
    }
    let claimed = dead.claim_ready(now_ms(), 10).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    let mut kept = Vec::new();
    for client in ["acme", "delta"] {
        kept.push(
            live.accept(message(client), now_ms())
                .await
                .expect("accept")
                .id,
        );
    }
    assert_eq!(
        live.claim_ready(now_ms(), 10).await.expect("claim").len(),
        2
    );

    // While node 1 is a member, nothing is an orphan.
    assert_eq!(survivor.requeue_orphans().await.expect("requeue"), 0);
    // Node 1 dies: no renewal, its membership runs out.
    let coordinator = survivor.coordinator();
    let expired = eventually(Duration::from_secs(10), || async {
        coordinator
            .holder("node:1")
            .await
            .expect("holder")
            .is_none()
    })
    .await;
    assert!(expired, "node 1's membership did not expire");

    assert_eq!(survivor.requeue_orphans().await.expect("requeue"), 3);
    assert_eq!(survivor.requeue_orphans().await.expect("requeue"), 0);
    let mut taken: Vec<_> = survivor
        .claim_ready(now_ms(), 10)
        .await
        .expect("claim")
        .iter()
        .map(|r| r.id)
        .collect();
    taken.sort();
    orphaned.sort();
    assert_eq!(taken, orphaned);
    // Node 2's claims stayed with node 2, and node 3's own are not orphans.
    let depths = survivor.queue_depths().await.expect("depths");
    assert_eq!((depths.ready, depths.in_flight), (0, 5));
    assert_eq!(survivor.requeue_orphans().await.expect("requeue"), 0);
    for id in kept {
        live.finish(
            id,
            tern_storage::Outcome {
                stat: "DELIVRD".to_owned(),
                err: 0,
                vendor_code: None,
            },
            now_ms(),
        )
        .await
        .expect("node 2 still owns what it claimed");
    }
    assert!(survivor.verify().await.expect("verifies").is_consistent());
}

async fn outbox_events_tell_another_node_which_client_has_mail(b: &Redis) {
    let (sender, listener) = (b.open_redis(1).await, b.open_redis(2).await);
    let mut events = listener
        .coordinator()
        .outbox_events()
        .await
        .expect("subscribes");
    sender.outbox_push("acme", &item(1)).await.expect("push");
    let got = tokio::time::timeout(Duration::from_secs(3), events.recv()).await;
    assert_eq!(got.expect("in time").as_deref(), Some("acme"));

    // A receipt relayed to a client notifies too.
    let id = sender
        .accept(message("beta"), now_ms())
        .await
        .expect("accept")
        .id;
    let update = ReceiptUpdate {
        received: None,
        parts: None,
        outcome: None,
        relay: Some((
            item(2),
            RelayedReceipt {
                outbox_seq: 0,
                part: None,
                stat: "DELIVRD".to_owned(),
                err: 0,
                queued_ms: now_ms(),
                acked_ms: None,
            },
        )),
        requeue_at_ms: None,
    };
    sender
        .record_receipt(id, update, now_ms())
        .await
        .expect("receipt");
    let got = tokio::time::timeout(Duration::from_secs(3), events.recv()).await;
    assert_eq!(got.expect("in time").as_deref(), Some("beta"));
    // Nothing else was announced.
    let quiet = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
}

async fn outbox_events_resume_after_the_connection_drops(b: &Redis) {
    let (sender, listener) = (b.open_redis(1).await, b.open_redis(2).await);
    let mut events = listener
        .coordinator()
        .outbox_events()
        .await
        .expect("subscribes");
    sender.outbox_push("acme", &item(1)).await.expect("push");
    let got = tokio::time::timeout(Duration::from_secs(3), events.recv()).await;
    assert_eq!(got.expect("in time").as_deref(), Some("acme"));

    // The server drops the subscription, as on a restart or a network cut.
    // It is found by its name (tests run in parallel on the same servers).
    let name = format!("name={}:outbox:2", b.prefix);
    let addresses = match &b.topology {
        RedisTopology::Single(address) => vec![address.clone()],
        RedisTopology::Cluster(addresses) => addresses.clone(),
    };
    let mut killed = 0;
    for address in addresses {
        let client = redis::Client::open(address).expect("address");
        let mut conn = client.get_connection().expect("connects");
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut conn)
            .expect("lists");
        for line in list.lines() {
            let mut fields = line.split(' ');
            if !fields.clone().any(|f| f == name) {
                continue;
            }
            let id = fields
                .find_map(|f| f.strip_prefix("id="))
                .expect("an id field");
            killed += redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query::<u64>(&mut conn)
                .expect("kills");
        }
    }
    assert_eq!(killed, 1, "the one subscription was not found");

    // Pushes made while it resubscribes may go unannounced; one made after
    // it is back is announced.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut resumed = false;
    while !resumed && Instant::now() < deadline {
        sender.outbox_push("beta", &item(2)).await.expect("push");
        let got = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
        resumed = matches!(got, Ok(Some(name)) if name == "beta");
    }
    assert!(resumed, "no event after the connection dropped");
}

/// The nodes of a session pool: counted once they say so, uncounted when
/// their word expires (a killed node) or at once when they leave; reading
/// without saying does not count the reader.
async fn a_pool_counts_the_nodes_that_say_they_run_it(b: &Redis) {
    let (a, other) = (
        b.open_redis(1).await.coordinator(),
        b.open_redis(2).await.coordinator(),
    );
    let (short, long) = (Duration::from_millis(300), Duration::from_secs(30));
    assert_eq!(a.pool_members("sim", long, false).await.expect("count"), 0);
    assert_eq!(a.pool_members("sim", long, true).await.expect("count"), 1);
    assert_eq!(
        a.pool_members("sim", long, true).await.expect("count"),
        1,
        "once"
    );
    assert_eq!(
        other.pool_members("sim", short, true).await.expect("count"),
        2
    );
    assert_eq!(
        other
            .pool_members("other", long, false)
            .await
            .expect("count"),
        0
    );
    // `other` stops saying so: it drops out when its word expires.
    let expired = eventually(Duration::from_secs(3), || async {
        a.pool_members("sim", long, false).await.expect("count") == 1
    })
    .await;
    assert!(expired, "an expired word still counts");
    // A node that leaves drops out at once, however long its word was.
    other.join(long).await.expect("joins");
    assert_eq!(
        other.pool_members("sim", long, true).await.expect("count"),
        2
    );
    other.leave().await.expect("leaves");
    assert_eq!(a.pool_members("sim", long, false).await.expect("count"), 1);
}

/// What a sweep listed as a dead node's claim goes back only while it is
/// still that: not once another sweep put it back and a live node claimed
/// it again, nor once the dead node came back (same id) and claimed it
/// afresh. Otherwise two nodes send it.
async fn a_listed_orphan_claimed_again_meanwhile_stays_with_its_new_claimer(b: &Redis) {
    let (dead, live, sweeper) = (
        b.open_redis(1).await,
        b.open_redis(2).await,
        b.open_redis(3).await,
    );
    let (short, long) = (Duration::from_millis(300), Duration::from_secs(30));
    dead.coordinator().join(short).await.expect("joins");
    live.coordinator().join(long).await.expect("joins");
    sweeper.coordinator().join(long).await.expect("joins");
    let first = dead
        .accept(message("acme"), now_ms())
        .await
        .expect("accept")
        .id;
    assert_eq!(
        dead.claim_ready(now_ms(), 10).await.expect("claim").len(),
        1
    );
    let coordinator = sweeper.coordinator();
    let expired = eventually(Duration::from_secs(10), || async {
        coordinator
            .holder("node:1")
            .await
            .expect("holder")
            .is_none()
    })
    .await;
    assert!(expired, "node 1's membership did not expire");

    // One sweep puts it back and node 2 claims it; a second sweep, which
    // listed it as node 1's before, comes to it now.
    assert_eq!(live.requeue_orphans().await.expect("requeue"), 1);
    assert_eq!(
        live.claim_ready(now_ms(), 10).await.expect("claim").len(),
        1
    );
    assert!(!sweeper.requeue_orphan(1, first).await.expect("requeue"));
    let depths = sweeper.queue_depths().await.expect("depths");
    assert_eq!((depths.ready, depths.in_flight), (0, 1), "still node 2's");

    // Node 1 restarts (a new process, the same id), joins and claims.
    let back = b.open_redis(1).await;
    back.coordinator().join(long).await.expect("joins again");
    let fresh = back
        .accept(message("beta"), now_ms())
        .await
        .expect("accept")
        .id;
    assert_eq!(
        back.claim_ready(now_ms(), 10).await.expect("claim").len(),
        1
    );
    assert!(!sweeper.requeue_orphan(1, fresh).await.expect("requeue"));
    let depths = sweeper.queue_depths().await.expect("depths");
    assert_eq!((depths.ready, depths.in_flight), (0, 2), "still node 1's");
    let done = tern_storage::Outcome {
        stat: "DELIVRD".to_owned(),
        err: 0,
        vendor_code: None,
    };
    live.finish(first, done.clone(), now_ms())
        .await
        .expect("node 2 owns it");
    back.finish(fresh, done, now_ms())
        .await
        .expect("node 1 owns it");
    assert!(sweeper.verify().await.expect("verifies").is_consistent());
}

/// Nodes 1 and 2 on `b`, and a message node 1 accepted.
async fn two_nodes_and_a_message(b: &Redis) -> (RedisStore, RedisStore, TernId) {
    let (first, second) = (b.open_redis(1).await, b.open_redis(2).await);
    let id = first
        .accept(message("acme"), now_ms())
        .await
        .expect("accept")
        .id;
    (first, second, id)
}

/// A node's change built on a record another node changed since is
/// refused by its fence and computed again on the record as it is: node 1
/// keeps the record it claimed (its next steps need no read), node 2 ends
/// the message, and node 1's own end, computed from the record it kept,
/// must not overwrite node 2's outcome. The fence is the record's
/// generation (`redis_store/stored.rs`): without its check node 1's end
/// is written over node 2's, DELIVRD over EXPIRED.
async fn a_change_built_on_a_record_changed_since_is_computed_again(b: &Redis) {
    let (first, second, id) = two_nodes_and_a_message(b).await;
    assert_eq!(
        first.claim_ready(now_ms(), 10).await.expect("claim").len(),
        1
    );
    let outcome = |stat: &str| tern_storage::Outcome {
        stat: stat.to_owned(),
        err: 0,
        vendor_code: None,
    };
    second
        .finish(id, outcome("EXPIRED"), now_ms())
        .await
        .expect("node 2 ends it");
    first
        .finish(id, outcome("DELIVRD"), now_ms())
        .await
        .expect("node 1's end, computed again, writes nothing");
    let record = second.get(id).await.expect("reads").expect("kept");
    assert_eq!(
        record.outcome.map(|o| o.stat).as_deref(),
        Some("EXPIRED"),
        "node 2's end stands"
    );
    assert!(second.verify().await.expect("verifies").is_consistent());
}

/// A receipt's update is decided by the daemon from the record it read,
/// holding only its own node's lock (no lease round trip): node 1 reads
/// the message, node 2 then records a receipt for it, and node 1's
/// receipt, decided from its read, must come back `Changed` (nothing
/// written) so that it is decided again, instead of being applied to
/// node 2's record (its parts' states would replace node 2's, its relay
/// be owed twice). Fails (`Stored`) when a decided receipt is applied to
/// the record as it is now, as an outcome Tern decided itself is.
async fn a_receipt_decided_from_a_record_changed_since_is_refused(b: &Redis) {
    let (first, second, id) = two_nodes_and_a_message(b).await;
    let ending = |stat: &str| ReceiptUpdate {
        outcome: Some(tern_storage::Outcome {
            stat: stat.to_owned(),
            err: 0,
            vendor_code: None,
        }),
        ..ReceiptUpdate::default()
    };
    let read = first.get(id).await.expect("node 1 reads").expect("kept");
    second
        .record_receipt(id, ending("UNDELIV"), now_ms())
        .await
        .expect("node 2's receipt");
    let written = first
        .record_decided_receipt(&read, ending("DELIVRD"), now_ms(), None)
        .await
        .expect("node 1's receipt");
    assert_eq!(written, ReceiptWrite::Changed, "decided from a stale read");
    // Read again, it is decided from what node 2 wrote, and written.
    let record = first.get(id).await.expect("reads").expect("kept");
    assert_eq!(
        record.outcome.as_ref().map(|o| o.stat.as_str()),
        Some("UNDELIV"),
        "node 2's end stands"
    );
    let written = first
        .record_decided_receipt(&record, ReceiptUpdate::default(), now_ms(), None)
        .await
        .expect("node 1's receipt, decided again");
    assert_eq!(written, ReceiptWrite::Stored(None));
    assert!(second.verify().await.expect("verifies").is_consistent());
}

on_every_redis!(
    a_change_built_on_a_record_changed_since_is_computed_again,
    a_receipt_decided_from_a_record_changed_since_is_refused,
    a_listed_orphan_claimed_again_meanwhile_stays_with_its_new_claimer,
    a_pool_counts_the_nodes_that_say_they_run_it,
    a_lease_has_one_holder_and_renewal_keeps_it,
    an_expired_lease_goes_to_the_other_node,
    a_released_lease_is_free_at_once,
    holders_reads_many_leases_at_once,
    join_refuses_a_live_duplicate_and_takes_over_after_expiry,
    orphans_of_a_dead_node_go_back_to_the_ready_queue,
    outbox_events_tell_another_node_which_client_has_mail,
    outbox_events_resume_after_the_connection_drops,
);

/// EVALSHA calls the server has answered, from its `INFO commandstats`.
fn scripts_run(server: &common::RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]).expect("INFO");
    stats
        .lines()
        .find_map(|line| line.trim().strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |calls| calls.parse().expect("a count"))
}

/// A Redis server of the test's own (so that no other test's scripts are
/// counted), and the coordinators of nodes 1 and 2 on it.
async fn two_coordinators_alone(label: &str) -> (common::RedisServer, Coordinator, Coordinator) {
    let server = common::RedisServer::start(label);
    let b = Redis {
        topology: RedisTopology::Single(server.address()),
        prefix: label.replace('_', "-"),
    };
    let (a, other) = (
        b.open_redis(1).await.coordinator(),
        b.open_redis(2).await.coordinator(),
    );
    (server, a, other)
}

/// A free lease is taken with a plain `SET … NX PX`, not a script (a
/// message's lease is taken once per receipt, and a script costs the
/// server several times the CPU): on a server of its own, so that no
/// other test's scripts are counted. A held lease still goes through the
/// script, which extends it for its holder and refuses it to another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_lease_is_taken_without_a_script() {
    let (server, a, other) = two_coordinators_alone("free_lease").await;
    let ttl = Duration::from_secs(30);
    let before = scripts_run(&server);
    for n in 0..50 {
        let name = format!("message:{n}");
        assert!(a.acquire(&name, ttl).await.expect("acquire"));
        assert_eq!(a.holder(&name).await.expect("holder"), Some(1));
    }
    let scripts = scripts_run(&server) - before;
    assert!(scripts < 50, "{scripts} scripts for 50 free leases");
    // Held: extended for its holder, refused to another.
    assert!(a.acquire("message:0", ttl).await.expect("renew"));
    assert!(!other.acquire("message:0", ttl).await.expect("acquire"));
    assert_eq!(other.holder("message:0").await.expect("holder"), Some(1));
}

/// Leases released together share one script call (a `del_if` group each
/// in the store's gathered writes), instead of one script call each: a
/// message's lease is released once per receipt. On a server of its own,
/// so that no other test's scripts are counted. Each is still released
/// only by its holder. Fails (200 calls) when `release` runs its own
/// script again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_released_together_share_a_script_call() {
    const LEASES: usize = 200;
    let (server, a, other) = two_coordinators_alone("gathered_release").await;
    let ttl = Duration::from_secs(30);
    let names: Vec<String> = (0..LEASES).map(|n| format!("message:{n}")).collect();
    for name in &names {
        assert!(a.acquire(name, ttl).await.expect("acquire"));
    }
    // Not the holder: nothing changes.
    other.release(&names[0]).await.expect("release");
    assert_eq!(a.holder(&names[0]).await.expect("holder"), Some(1));
    let before = scripts_run(&server);
    let releases: Vec<_> = names
        .iter()
        .map(|name| {
            let (a, name) = (a.clone(), name.clone());
            tokio::spawn(async move { a.release(&name).await.expect("release") })
        })
        .collect();
    for release in releases {
        release.await.expect("release task");
    }
    let scripts = scripts_run(&server) - before;
    assert!(
        scripts < LEASES as u64 / 2,
        "{scripts} script calls for {LEASES} releases"
    );
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let holders = a.holders(&refs).await.expect("holders");
    assert!(holders.iter().all(Option::is_none), "{holders:?}");
}
