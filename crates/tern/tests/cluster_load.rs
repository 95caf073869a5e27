//! Three Tern nodes on one Redis server carry 5 000 messages while one of
//! them, the holder of the upstream bind, is killed with SIGKILL mid-run
//! and started again on the same node id.
//!
//! What must hold: every message a node acknowledged (`ESME_ROK`) is
//! receipted to its client, on whichever node the client is bound to. A
//! client whose submit went unanswered sends it again on its next bind, as
//! a client does. Copies are allowed only where the contracts allow them
//! ("they may be sent twice, never lost"; a receipt whose acknowledgement
//! was lost is delivered again), and they are counted and bounded.
//!
//! The daemons listen on port 0 and report their ports
//! (`--listening-file`); the restarted node gets new ones.

use tern_testkit as common;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{client, submit_sm, Admin, Daemon, Launch, TempDir};
use tern_codec::{Body, CommandStatus, RegisteredDelivery};
use tern_session::esme::UpstreamSession;
use tern_session::BindType;
use tern_sim::smsc::{Account, SimConfig, Simulator};
use tokio::sync::watch;

/// Messages in the run, spread over the three nodes.
const MESSAGES: usize = 5_000;

/// Acknowledged messages after which the holder of the bind is killed.
const KILL_AFTER: usize = 1_500;

/// Submits each client keeps in flight.
const SUBMIT_WINDOW: usize = 20;

/// deliver_sm Tern keeps in flight to one client session
/// (`[client_sessions] window`).
const DELIVER_WINDOW: usize = 10;

/// The most receipts delivered twice that the contracts allow here: the
/// killed node's messages in hand may be sent again by another node (the
/// dispatcher sends 256 at once and claims 64 at a time), and the
/// deliveries it had out to the client, whose acknowledgements may not
/// have been written yet (an item stays in flight until its
/// acknowledgement is stored, at most 1 024 per client: `outbox.rs`), are
/// delivered again.
const MOST_COPIES: usize = 256 + 64 + 1_024;

/// The whole run, kill and restart included, must end within this.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The simulator account every node binds with; one bind at a time, so
/// the kill also moves the upstream slot.
const ACCOUNT: &str = "tern";

/// A node's config. Its membership lease is 4 s: a node stops when it has
/// not renewed for half of it, and with three debug nodes, the simulator
/// and the load on two shared cores, a 2 s lease lost a node now and then
/// (a renewal over a second late; a run at load 5 in session 16), which
/// is the stop working as meant, not what this test is about.
fn config(id: usize, redis: &Redis, sim: u16) -> String {
    format!(
        r#"
[node]
id = {id}
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[client_sessions]
window = {DELIVER_WINDOW}
[storage]
backend = "redis"
[storage.redis]
addresses = ["{redis}"]
prefix = "load"
lease_ttl = "4s"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "sim"
host = "127.0.0.1"
port = {sim}
system_id = "{ACCOUNT}"
password = "pw"
sessions = 1
[[route]]
name = "all"
upstreams = ["sim"]
"#,
        redis = redis.address(),
    )
}

/// Receipts seen, per message id, over every receiver session.
type Seen = Arc<Mutex<HashMap<String, usize>>>;

/// Takes receipts from `session` until it closes or `stop`, counting each
/// receipted id.
fn receive(
    mut session: UpstreamSession,
    seen: Seen,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !*stop.borrow() {
            let next =
                tokio::time::timeout(Duration::from_millis(100), session.requests.recv()).await;
            match next {
                Err(_) => continue,
                Ok(None) => return,
                Ok(Some(request)) => {
                    let sm = common::accept_deliver_sm(request).await;
                    let id = common::receipted_id(&sm);
                    *seen
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .entry(id)
                        .or_default() += 1;
                }
            }
        }
    })
}

/// Sends `numbers` through the node whose client port `port` holds,
/// `SUBMIT_WINDOW` at a time, until each was acknowledged. When the
/// session breaks (its node was killed), waits for the port to change
/// (the node restarted) and sends the unanswered ones again there.
fn send(
    numbers: Vec<usize>,
    mut port: watch::Receiver<u16>,
    acked: Arc<Mutex<HashSet<String>>>,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        let deadline = Instant::now() + RUN_LIMIT;
        let mut pending: VecDeque<usize> = numbers.into();
        while !pending.is_empty() {
            if Instant::now() >= deadline {
                return Err(format!("{} messages left unsent", pending.len()));
            }
            let at = *port.borrow_and_update();
            let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", at)).await else {
                // The node is down: it was killed, and its restart will
                // say its new port; or it stopped, and nothing will.
                if tokio::time::timeout(Duration::from_secs(30), port.changed())
                    .await
                    .is_err()
                {
                    return Err(format!("nothing listens on port {at}, nor anywhere new"));
                }
                continue;
            };
            let session = client(at, "acme", "pw")
                .bind_type(BindType::Transmitter)
                .window(SUBMIT_WINDOW)
                .within(Duration::from_secs(10))
                .try_bind_over(stream)
                .await;
            let Ok(session) = session else {
                let _ = tokio::time::timeout(Duration::from_secs(30), port.changed()).await;
                continue;
            };
            while !pending.is_empty() {
                let batch: Vec<usize> = pending.drain(..SUBMIT_WINDOW.min(pending.len())).collect();
                let answers = futures::future::join_all(batch.iter().map(|n| {
                    let sm = submit_sm(
                        "+34600000004",
                        format!("load {n}"),
                        RegisteredDelivery::ALWAYS,
                    );
                    session.handle.request(Body::SubmitSm(sm))
                }))
                .await;
                let mut broken = false;
                for (n, answer) in batch.into_iter().zip(answers) {
                    match answer {
                        Ok(resp) if resp.command_status == CommandStatus::Ok => {
                            acked
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(common::message_id(&resp));
                        }
                        Ok(_) => pending.push_back(n),
                        Err(_) => {
                            broken = true;
                            pending.push_back(n);
                        }
                    }
                }
                if broken {
                    let _ = tokio::time::timeout(Duration::from_secs(30), port.changed()).await;
                    break;
                }
            }
        }
        Ok(())
    })
}

/// Bound sessions of upstream "sim" on the node at `admin`.
async fn bound(admin: &Admin) -> u64 {
    admin.get("/api/upstreams").await[0]["bound"]
        .as_u64()
        .expect("bound")
}

/// Why the test gave up waiting: how many acknowledged messages have no
/// receipt, the story of a few (from a running node's admin API), and
/// each node's state and last log lines.
async fn unreceipted(nodes: &mut [Daemon], missing: &[String]) -> String {
    let mut why = format!("{} acknowledged messages lack a receipt", missing.len());
    let mut running = None;
    for (i, node) in nodes.iter_mut().enumerate() {
        let status = node.child.try_wait().ok().flatten();
        if status.is_none() {
            running = Some(i);
        }
        why.push_str(&format!(
            "\n== node {i}: exited {status:?}; log:\n{}",
            node.log_lines("", 20)
        ));
    }
    if let Some(i) = running {
        let admin = nodes[i].admin();
        for id in missing.iter().take(3) {
            let story = admin.get(&format!("/api/messages/{id}")).await;
            why.push_str(&format!("\n{id}: {story}"));
        }
        why.push_str(&format!("\nqueues: {}", admin.get("/api/queues").await));
        why.push_str(&format!(
            "\nupstreams: {}",
            admin.get("/api/upstreams").await
        ));
    }
    why
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_messages_through_three_nodes_survive_a_kill_and_restart() {
    let started = Instant::now();
    let redis = Redis::start("load");
    let sim = Simulator::start(SimConfig {
        accounts: vec![Account {
            system_id: ACCOUNT.to_owned(),
            password: "pw".to_owned(),
            max_binds: Some(1),
        }],
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let mut nodes: Vec<Daemon> = (1..=3)
        .map(|id| {
            let text = config(id, &redis, sim.addr().port());
            Launch::new()
                .log_file()
                .start(TempDir::new(&format!("cluster-load-{id}")), &text)
        })
        .collect();
    let admins: Vec<Admin> = nodes.iter_mut().map(Daemon::admin).collect();
    let victim = common::wait_for(
        "one node bound to the simulator",
        Duration::from_secs(20),
        || async {
            let mut found = Vec::new();
            for (i, admin) in admins.iter().enumerate() {
                if bound(admin).await > 0 {
                    found.push(i);
                }
            }
            (found.len() == 1).then(|| found[0])
        },
    )
    .await;

    let seen: Seen = Arc::default();
    let (stop, stopped) = watch::channel(false);
    let mut receivers = Vec::new();
    let mut ports = Vec::new();
    let mut senders = Vec::new();
    let acked = Arc::new(Mutex::new(HashSet::new()));
    for (i, node) in nodes.iter_mut().enumerate() {
        let port = node.client_port();
        let rx = client(port, "acme", "pw")
            .bind_type(BindType::Receiver)
            .bind()
            .await;
        receivers.push(receive(rx, seen.clone(), stopped.clone()));
        let (tell, port) = watch::channel(port);
        ports.push(tell);
        let share = (0..MESSAGES).filter(|n| n % 3 == i).collect();
        senders.push(send(share, port, acked.clone()));
    }

    common::wait_until("traffic under way", Duration::from_secs(60), || {
        let acked = acked.clone();
        async move { acked.lock().unwrap_or_else(|p| p.into_inner()).len() >= KILL_AFTER }
    })
    .await;
    let node = &mut nodes[victim];
    node.kill();
    node.respawn(&Launch::new().log_file());
    // It joins once its old membership lease (4 s) runs out.
    let port = node.client_port();
    let rx = client(port, "acme", "pw")
        .bind_type(BindType::Receiver)
        .bind()
        .await;
    receivers.push(receive(rx, seen.clone(), stopped.clone()));
    ports[victim].send_replace(port);

    for sender in senders {
        if let Err(why) = sender.await.expect("sender") {
            panic!("{why}; {}", unreceipted(&mut nodes, &[]).await);
        }
    }
    let acked: HashSet<String> = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert!(acked.len() >= MESSAGES, "{} acknowledged", acked.len());
    let limit = Instant::now()
        + RUN_LIMIT
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(30));
    loop {
        let missing: Vec<String> = {
            let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
            acked
                .iter()
                .filter(|id| !seen.contains_key(*id))
                .cloned()
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        if Instant::now() >= limit {
            panic!("{}", unreceipted(&mut nodes, &missing).await);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A moment more, for copies to show up.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send_replace(true);
    for r in receivers {
        let _ = r.await;
    }
    // The nodes carried the load to the end: none stopped by itself (a
    // node that cannot renew its membership in time stops).
    for (i, node) in nodes.iter_mut().enumerate() {
        let status = node.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "node {i} exited ({status:?}) during the run; its log:\n{}",
            node.log_lines("", 40)
        );
    }
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
    let copies: usize = seen.values().map(|n| n - 1).sum();
    let unanswered = seen.keys().filter(|id| !acked.contains(*id)).count();
    eprintln!(
        "killed node {victim}: {} acknowledged, all receipted, {copies} receipts more than once, \
         {unanswered} receipts for submits whose answer was lost, {:?}",
        acked.len(),
        started.elapsed()
    );
    assert!(
        copies <= MOST_COPIES,
        "{copies} receipts delivered again: more than the {MOST_COPIES} the kill can explain"
    );
    assert!(
        unanswered <= SUBMIT_WINDOW,
        "{unanswered} messages stored whose submit went unanswered: more than one window"
    );
}

/// Other nodes (alive, by their membership leases) with messages claimed
/// in every shard, so that one sweep for orphans takes thousands of round
/// trips, longer than the node's lease.
const CLAIMING_NODES: u32 = 1_000;

/// A node renews its membership while a sweep for orphans runs: the sweep
/// asks each shard for each claiming node in turn, and when the renewal
/// waited for it, a slow sweep (a busy Redis, many nodes) let the lease
/// run out and the node stopped, "membership lease taken over".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_membership_through_a_long_sweep_for_orphans() {
    let redis = Redis::start("sweep");
    let prefix = "sweep";
    // Keys as the store lays them out (`redis_store::layout`): each
    // shard's in-flight set, scored by the claiming node, and the
    // membership leases.
    let script = format!(
        "for n = 2, {last} do \
           redis.call('SET', '{prefix}:{{l}}:lease:node:' .. n, n .. ':alive', 'PX', 600000) \
           for shard = 0, 15 do \
             redis.call('ZADD', '{prefix}:{{t' .. shard .. '}}:flight', n, 'claimed-by-' .. n) \
           end \
         end return 1",
        last = CLAIMING_NODES + 1
    );
    assert!(redis.cli(&["EVAL", &script, "0"]).is_some(), "seeded");
    let text = config(1, &redis, 9)
        .replace("prefix = \"load\"", &format!("prefix = \"{prefix}\""))
        .replace("lease_ttl = \"4s\"", "lease_ttl = \"1s\"");
    assert!(
        text.contains("lease_ttl = \"1s\""),
        "the short lease is set"
    );
    let mut node = Launch::new()
        .log_file()
        .start(TempDir::new("cluster-sweep"), &text);
    let admin = node.admin();
    let renewed = |metrics: &str| {
        common::sample(metrics, "tern_lease_renewals_total{result=\"ok\"}").unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    // Twelve renewals, a third of a second apart: four seconds, several
    // sweeps' worth.
    while renewed(&admin.text("/metrics").await) < 12.0 {
        let status = node.child.try_wait().expect("try_wait");
        assert!(
            status.is_none(),
            "the node stopped ({status:?}); its log:\n{}",
            node.log_lines("", 20)
        );
        assert!(Instant::now() < deadline, "12 renewals not within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let claimed = redis.cli(&["ZCARD", &format!("{prefix}:{{t0}}:flight")]);
    assert_eq!(
        claimed.as_deref().map(str::trim),
        Some(CLAIMING_NODES.to_string().as_str()),
        "the live nodes' claims stay theirs"
    );
}
