//! Several Tern nodes as one broker on one Redis server: the real binary,
//! three times, each with its own listener and admin port, all on one
//! Redis store, all sending to one simulator account that allows a single
//! bind (as Mensatek does).
//!
//! What must hold: the nodes together never bind that account twice (the
//! session slot is a lease); a client's receipts reach it on whichever node
//! it is bound to, whichever node the upstream sent them to, and each
//! once when it is bound to several nodes; a node killed with SIGKILL while
//! traffic flows loses nothing acknowledged (its claimed messages and its
//! slot move to the others).

use tern_testkit as common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::redis::{Redis, RedisCluster};
use common::{client, submit_sm, Admin, Daemon, Launch, TempDir};
use tern_codec::{Body, CommandStatus, RegisteredDelivery};
use tern_session::esme::UpstreamSession;
use tern_session::BindType;
use tern_sim::smsc::{Account, SimConfig, SimHandle, Simulator};

/// The simulator account every node binds with; one bind at a time.
const ACCOUNT: &str = "tern";

/// Lease time of the nodes: short, so a killed node's slot and messages
/// move within the test's time.
const LEASE: &str = "2s";

/// One node: its process and ports.
struct Node {
    daemon: Daemon,
    port: u16,
    admin: Admin,
}

/// Where the nodes keep their store.
enum Store<'a> {
    Server(&'a Redis),
    Cluster(&'a RedisCluster),
}

impl Store<'_> {
    /// The `[storage.redis]` lines naming it.
    fn lines(&self) -> String {
        match self {
            Store::Server(redis) => format!("addresses = [\"{}\"]", redis.address()),
            Store::Cluster(cluster) => format!(
                "addresses = [{}]\ncluster = true",
                cluster
                    .addresses()
                    .iter()
                    .map(|a| format!("\"{a}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

fn config(id: u16, store: &Store<'_>, prefix: &str, sim: u16) -> String {
    format!(
        r#"
[node]
id = {id}
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
backend = "redis"
[storage.redis]
{store}
prefix = "{prefix}"
lease_ttl = "{LEASE}"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[client]]
system_id = "txn"
passwords = ["pw"]
submit_mode = "transaction"
transaction_timeout = "{TRANSACTION_TIMEOUT_S}s"
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
        store = store.lines(),
    )
}

async fn simulator() -> Arc<SimHandle> {
    let sim = Simulator::start(SimConfig {
        accounts: vec![Account {
            system_id: ACCOUNT.to_owned(),
            password: "pw".to_owned(),
            max_binds: Some(1),
        }],
        redelivery_delay: Duration::from_millis(200),
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    sim.start_recording();
    Arc::new(sim)
}

fn start_nodes(label: &str, store: Store<'_>, sim: &SimHandle, count: u16) -> Vec<Node> {
    (1..=count)
        .map(|id| {
            let text = config(id, &store, label, sim.addr().port());
            let mut daemon = Launch::new().start(TempDir::new(&format!("{label}-{id}")), &text);
            Node {
                port: daemon.client_port(),
                admin: daemon.admin(),
                daemon,
            }
        })
        .collect()
}

/// Bound sessions of upstream "sim" on `node`, from its admin API.
async fn bound(node: &Node) -> u64 {
    node.admin.get("/api/upstreams").await[0]["bound"]
        .as_u64()
        .expect("bound")
}

/// Waits until exactly one of `nodes` has bound the simulator; its index.
async fn holder(nodes: &[&Node]) -> usize {
    common::wait_for(
        "one node bound to the simulator",
        Duration::from_secs(20),
        || async {
            let mut found = Vec::new();
            for (i, node) in nodes.iter().enumerate() {
                if bound(node).await > 0 {
                    found.push(i);
                }
            }
            (found.len() == 1).then(|| found[0])
        },
    )
    .await
}

/// Samples the simulator's sessions of the account until `stop`: the most
/// seen bound at once.
fn watch_binds(sim: &Arc<SimHandle>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    let sim = sim.clone();
    tokio::spawn(async move {
        let mut most = 0;
        while !stop.load(Ordering::Relaxed) {
            most = most.max(sim.sessions(ACCOUNT).len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        most
    })
}

/// Takes receipts from `session` until `stop`, counting each receipted id.
fn collect(
    mut session: UpstreamSession,
    seen: Arc<std::sync::Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if let Some(sm) =
                common::next_deliver_sm(&mut session, Duration::from_millis(100)).await
            {
                let id = common::receipted_id(&sm);
                *seen
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(id)
                    .or_default() += 1;
            }
        }
    })
}

fn receipt() -> RegisteredDelivery {
    RegisteredDelivery::ALWAYS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_reach_a_client_on_any_node_once_and_one_bind_serves_all_nodes() {
    let redis = Redis::start("relay");
    let sim = simulator().await;
    let nodes = start_nodes("cluster-relay", Store::Server(&redis), &sim, 3);
    let all: Vec<&Node> = nodes.iter().collect();
    let h = holder(&all).await;
    let stop = Arc::new(AtomicBool::new(false));
    let binds = watch_binds(&sim, stop.clone());

    // The client submits on a node that does not hold the bind, and takes
    // receipts on all three at once.
    let submitter = &nodes[(h + 1) % 3];
    let tx = client(submitter.port, "acme", "pw")
        .bind_type(BindType::Transmitter)
        .bind()
        .await;
    let seen = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let mut receivers = Vec::new();
    for node in &nodes {
        let rx = client(node.port, "acme", "pw")
            .bind_type(BindType::Receiver)
            .bind()
            .await;
        receivers.push(collect(rx, seen.clone(), stop.clone()));
    }
    let mut ids = HashSet::new();
    for n in 0..60 {
        let sm = submit_sm("+34600000001", format!("relay {n}"), receipt());
        ids.insert(common::submit_id(&tx.handle, sm).await);
    }
    common::wait_until(
        "a receipt for every message",
        Duration::from_secs(30),
        || {
            let seen = seen.clone();
            let ids = ids.clone();
            async move {
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                ids.iter().all(|id| seen.contains_key(id))
            }
        },
    )
    .await;
    // A moment more, for any second copy to show up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    {
        let twice: Vec<(String, usize)> = seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, n)| (id.clone(), *n))
            .collect();
        let mut stories = Vec::new();
        for (id, _) in &twice {
            stories.push(nodes[0].admin.get(&format!("/api/messages/{id}")).await);
        }
        assert!(
            twice.is_empty(),
            "a client bound to three nodes gets each receipt once: {twice:?}; the stories: {stories:#?}"
        );
        let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
        assert!(seen.keys().all(|id| ids.contains(id)), "only its own ids");
    }
    stop.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.await;
    }
    let most = binds.await.expect("watcher");
    assert_eq!(most, 1, "the account allows one bind; the nodes held one");
    assert_eq!(sim.stats().binds_refused, 0, "no node tried a second bind");
    for (i, node) in nodes.iter().enumerate() {
        let expected = u64::from(i == h);
        assert_eq!(
            bound(node).await,
            expected,
            "node {i}: only the holder is bound"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_reaches_a_client_bound_only_to_a_node_without_the_upstream() {
    let redis = Redis::start("away");
    receipts_cross_nodes("cluster-away", Store::Server(&redis)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_too_a_receipt_crosses_nodes() {
    let redis = RedisCluster::start("rc");
    receipts_cross_nodes("cluster-rc", Store::Cluster(&redis)).await;
}

/// Two nodes; the client bound (TRX) only to the one without the upstream
/// bind: every receipt comes in on the other node and must cross.
async fn receipts_cross_nodes(label: &str, store: Store<'_>) {
    let sim = simulator().await;
    let nodes = start_nodes(label, store, &sim, 2);
    let all: Vec<&Node> = nodes.iter().collect();
    let h = holder(&all).await;
    // Client bound (TRX) only to the node that does not hold the upstream:
    // every receipt comes in on the other node.
    let other = &nodes[1 - h];
    // Both nodes say so at their admin API.
    other
        .admin
        .until(
            "/api/upstreams",
            Duration::from_secs(10),
            "the other node sees the slot held elsewhere",
            |u| u[0]["bound_elsewhere"] == true && u[0]["held_slots"] == 0,
        )
        .await;
    let held = nodes[h].admin.get("/api/upstreams").await;
    assert_eq!(held[0]["held_slots"], 1, "{held}");
    let config = other.admin.get("/api/config").await;
    assert_eq!(config["store"]["backend"], "redis", "{config}");
    let mut trx = client(other.port, "acme", "pw").bind().await;
    let mut ids = HashSet::new();
    for n in 0..20 {
        let sm = submit_sm("+34600000002", format!("away {n}"), receipt());
        ids.insert(common::submit_id(&trx.handle, sm).await);
    }
    let mut got = HashSet::new();
    while got.len() < ids.len() {
        let id = common::next_receipt(&mut trx, Duration::from_secs(20)).await;
        assert!(ids.contains(&id), "a receipt for one of its messages: {id}");
        got.insert(id);
    }
    let submits = sim
        .recorded()
        .iter()
        .filter(|r| matches!(r, tern_sim::smsc::Recorded::Submit { .. }))
        .count();
    assert_eq!(submits, 20, "each message went upstream once");

    // A transaction-mode submit on this node is sent by the other one,
    // which hands it no verdict: it learns from the store that the message
    // went, and answers then rather than at its timeout.
    let txn = client(other.port, "txn", "pw").bind().await;
    let started = std::time::Instant::now();
    let sm = submit_sm("+34600000002", "transaction across nodes", receipt());
    common::submit_id(&txn.handle, sm).await;
    assert!(
        started.elapsed() < Duration::from_secs(TRANSACTION_TIMEOUT_S / 2),
        "answered at the timeout, not when the other node sent it: {:?}",
        started.elapsed()
    );
}

/// The transaction-mode client's timeout: long, so that an answer well
/// before it can only come from seeing the message sent.
const TRANSACTION_TIMEOUT_S: u64 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_traffic_loses_nothing_and_its_slot_moves() {
    let redis = Redis::start("kill");
    let sim = simulator().await;
    let mut nodes = start_nodes("cluster-kill", Store::Server(&redis), &sim, 3);
    let all: Vec<&Node> = nodes.iter().collect();
    let h = holder(&all).await;
    let stop = Arc::new(AtomicBool::new(false));
    let binds = watch_binds(&sim, stop.clone());
    let survivors: Vec<usize> = (0..3).filter(|i| *i != h).collect();

    // Submits and receipts on the two nodes that survive; the holder of
    // the upstream bind is killed while they flow.
    let seen = Arc::new(std::sync::Mutex::new(HashMap::new()));
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for &i in &survivors {
        let rx = client(nodes[i].port, "acme", "pw")
            .bind_type(BindType::Receiver)
            .bind()
            .await;
        receivers.push(collect(rx, seen.clone(), stop.clone()));
        senders.push(
            client(nodes[i].port, "acme", "pw")
                .bind_type(BindType::Transmitter)
                .bind()
                .await,
        );
    }
    let acked = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let submitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for (k, tx) in senders.into_iter().enumerate() {
        let acked = acked.clone();
        let submitted = submitted.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..150 {
                let sm = submit_sm("+34600000003", format!("kill {k}-{n}"), receipt());
                let resp = tx
                    .handle
                    .request(Body::SubmitSm(sm))
                    .await
                    .expect("answered");
                if resp.command_status == CommandStatus::Ok {
                    acked
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(common::message_id(&resp));
                }
                submitted.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    common::wait_until("traffic under way", Duration::from_secs(20), || {
        let submitted = submitted.clone();
        async move { submitted.load(Ordering::Relaxed) >= 100 }
    })
    .await;
    nodes[h].daemon.signal("KILL");
    let _ = nodes[h].daemon.wait(Duration::from_secs(10));
    for t in tasks {
        t.await.expect("sender");
    }
    let acked: HashSet<String> = acked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(
        acked.len(),
        300,
        "the surviving nodes accepted every submit"
    );

    // The slot moves to a survivor within the lease time.
    let left: Vec<&Node> = survivors.iter().map(|&i| &nodes[i]).collect();
    holder(&left).await;
    common::wait_until(
        "a receipt for every acknowledged message",
        Duration::from_secs(60),
        || {
            let seen = seen.clone();
            let acked = acked.clone();
            async move {
                let seen = seen.lock().unwrap_or_else(|p| p.into_inner());
                acked.iter().all(|id| seen.contains_key(id))
            }
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for r in receivers {
        let _ = r.await;
    }
    let most = binds.await.expect("watcher");
    assert_eq!(most, 1, "never two binds, the kill included");
    assert_eq!(sim.stats().binds_refused, 0, "no node tried a second bind");
    let dups: usize = seen
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .map(|n| n - 1)
        .sum();
    eprintln!("killed node {h}: 300 acknowledged, all receipted, {dups} receipts twice");
}

/// Two nodes, two config entries on one Infobip account (4 sessions per
/// account): the entries share the 4 out (2 each) and every slot is a lease
/// held by one node, so the nodes together never bind a fifth session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_and_two_entries_on_one_infobip_account_never_bind_a_fifth_session() {
    let redis = Redis::start("account");
    let sim = Simulator::start(SimConfig {
        accounts: vec![Account {
            system_id: ACCOUNT.to_owned(),
            password: "pw".to_owned(),
            max_binds: Some(4),
        }],
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let store = Store::Server(&redis);
    let second = format!(
        "sessions = 4\nprofile = \"infobip\"\n[[upstream]]\nname = \"sim2\"\nprofile = \"infobip\"\n\
         host = \"127.0.0.1\"\nport = {}\nsystem_id = \"{ACCOUNT}\"\npassword = \"pw\"\nsessions = 4\n",
        sim.addr().port()
    );
    let _nodes: Vec<Daemon> = (1..=2)
        .map(|id| {
            let text = config(id, &store, "account", sim.addr().port())
                .replace("sessions = 1\n", &second)
                .replace("upstreams = [\"sim\"]", "upstreams = [\"sim\", \"sim2\"]");
            Launch::new().start(TempDir::new(&format!("cluster-account-{id}")), &text)
        })
        .collect();
    common::wait_until(
        "the account's 4 sessions bind",
        Duration::from_secs(20),
        || async { sim.sessions(ACCOUNT).len() == 4 },
    )
    .await;
    // Leases last 2 s: time for any node to try a slot beyond them.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(sim.most_bound(ACCOUNT), 4, "the account's 4, no more");
    assert_eq!(sim.stats().binds_over_cap, 0, "no node tried a fifth bind");
}

/// Session slots of upstream "sim" held by each of `nodes` (admin API).
async fn held_slots(nodes: &[&Node]) -> Vec<u64> {
    let mut held = Vec::new();
    for node in nodes {
        let upstreams = node.admin.get("/api/upstreams").await;
        held.push(upstreams[0]["held_slots"].as_u64().expect("held_slots"));
    }
    held
}

/// Three nodes, one upstream of three sessions: the sessions spread, one
/// per node, instead of all staying with the node that started first (it
/// took all three before the others joined, and hands two over). When a
/// node is killed, its slot goes to a survivor within about the lease time,
/// and the account never has more than its three binds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_sessions_spread_one_per_node_and_a_killed_nodes_slot_moves() {
    let redis = Redis::start("spread");
    let sim = Simulator::start(SimConfig {
        accounts: vec![Account {
            system_id: ACCOUNT.to_owned(),
            password: "pw".to_owned(),
            max_binds: Some(3),
        }],
        ..SimConfig::default()
    })
    .await
    .expect("simulator");
    let sim = Arc::new(sim);
    let store = Store::Server(&redis);
    let mut nodes: Vec<Node> = (1..=3)
        .map(|id| {
            let text = config(id, &store, "spread", sim.addr().port())
                .replace("sessions = 1\n", "sessions = 3\n");
            let mut daemon =
                Launch::new().start(TempDir::new(&format!("cluster-spread-{id}")), &text);
            Node {
                port: daemon.client_port(),
                admin: daemon.admin(),
                daemon,
            }
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let binds = watch_binds(&sim, stop.clone());
    let all: Vec<&Node> = nodes.iter().collect();
    common::wait_for(
        "each node holds one of the three slots",
        Duration::from_secs(30),
        || async {
            let held = held_slots(&all).await;
            (held == [1, 1, 1] && sim.sessions(ACCOUNT).len() == 3).then_some(())
        },
    )
    .await;
    // Settled: two lease times later nobody has moved (no flapping).
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(held_slots(&all).await, [1, 1, 1], "the spread holds");

    let killed = std::time::Instant::now();
    nodes[0].daemon.signal("KILL");
    let _ = nodes[0].daemon.wait(Duration::from_secs(10));
    let left: Vec<&Node> = nodes[1..].iter().collect();
    let held = common::wait_for(
        "a survivor takes the killed node's slot",
        Duration::from_secs(20),
        || async {
            let held = held_slots(&left).await;
            (held.iter().sum::<u64>() == 3 && sim.sessions(ACCOUNT).len() == 3).then_some(held)
        },
    )
    .await;
    let took = killed.elapsed();
    eprintln!("the killed node's slot was bound again after {took:?}: {held:?}");
    // Its lease expires at most a lease time (2 s) after the kill; the
    // survivors count the pool's nodes and try the slot every 0.5 s.
    assert!(
        took < Duration::from_secs(2 * 2),
        "taken over within about the lease time, not {took:?}"
    );
    let mut sorted = held.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [1, 2],
        "one survivor took it, within its share of 2"
    );
    stop.store(true, Ordering::Relaxed);
    assert!(
        binds.await.expect("watcher") <= 3,
        "never more than 3 binds"
    );
    assert_eq!(sim.stats().binds_refused, 0, "no node tried a fourth bind");
}
