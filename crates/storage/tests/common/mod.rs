//! What the storage suite runs against: sled in a temporary directory, a
//! Redis server, and a three-primary Redis Cluster, each behind
//! [`Backend`], so one behavioural test runs on all three.
//!
//! The Redis servers are started by the tests themselves, once per test
//! binary, with the launcher of crates/testkit (`appendonly yes`,
//! `appendfsync always`, a temporary directory, killed with the test
//! process). Each test keeps its keys under its own prefix, so tests share
//! the servers without seeing each other.
//!
//! Without `redis-server` the Redis tests fail, saying how to install it.

#![allow(dead_code)]

pub mod life;

use std::future::Future;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

pub use tern_testkit::redis::{Redis as RedisServer, RedisCluster};

use tern_storage::{
    Durability, RedisDurability, RedisOptions, RedisStore, RedisTopology, SledStore, Store,
    StoreOptions, Verification,
};

/// A store path that does not exist yet, `.0`, inside a fresh temp
/// directory removed on drop (with the store in it).
pub struct TempDir(pub PathBuf, tern_testkit::TempDir);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = tern_testkit::TempDir::new(&format!("store-{name}"));
        TempDir(dir.join("store"), dir)
    }
}

/// What the suite needs of a [`Store`] beyond its interface: the
/// backend's own consistency check and queue count.
pub trait TestStore {
    /// The store's own consistency check.
    fn check(&self) -> impl Future<Output = Verification> + Send;
    /// Messages in the ready queue.
    fn ready_count(&self) -> impl Future<Output = usize> + Send;
}

impl TestStore for Store {
    async fn check(&self) -> Verification {
        self.verify().await.expect("verifies")
    }
    async fn ready_count(&self) -> usize {
        self.queue_depths().await.expect("counts").ready
    }
}

/// Where a test's store lives; opening it again is a restart.
pub trait Backend: Send + Sync {
    /// Opens the store as node `node`; `fast` asks for the quickest
    /// durability the backend has (sled's interval flush; Redis ignores it).
    fn open_with(&self, node: u16, fast: bool) -> impl Future<Output = Store> + Send;
    /// Opens the store as node `node`, durable.
    fn open(&self, node: u16) -> impl Future<Output = Store> + Send {
        self.open_with(node, false)
    }
}

/// sled in a temporary directory.
pub struct Sled(pub TempDir);

pub fn sled(name: &str) -> Sled {
    Sled(TempDir::new(name))
}

impl Backend for Sled {
    async fn open_with(&self, node: u16, fast: bool) -> Store {
        let durability = if fast {
            Durability::Fast {
                interval: Duration::from_millis(50),
            }
        } else {
            Durability::Durable
        };
        SledStore::open(
            &self.0 .0,
            StoreOptions {
                node,
                durability,
                ..StoreOptions::default()
            },
        )
        .map(|(store, _)| Store::Sled(store))
        .expect("opens")
    }
}

/// A store on one of the suite's Redis deployments, under its own prefix.
pub struct Redis {
    pub topology: RedisTopology,
    pub prefix: String,
}

impl Redis {
    /// The Redis store itself, as node `node` (for what only Redis has,
    /// such as coordination between nodes).
    pub async fn open_redis(&self, node: u16) -> RedisStore {
        RedisStore::open(RedisOptions {
            topology: self.topology.clone(),
            node,
            prefix: self.prefix.clone(),
            durability: RedisDurability::AppendFsyncAlways,
            tls_ca: None,
        })
        .await
        .expect("opens")
        .0
    }
}

impl Backend for Redis {
    async fn open_with(&self, node: u16, _fast: bool) -> Store {
        Store::Redis(self.open_redis(node).await)
    }
}

fn prefix(name: &str) -> String {
    format!("test-{name}-{}", rand::random::<u32>())
}

/// A store on `server` (one a test started for itself, so that what the
/// server counts is the test's alone) under `prefix`, durable, as node 1.
pub async fn open_on(server: &RedisServer, prefix: &str) -> RedisStore {
    Redis {
        topology: RedisTopology::Single(server.address()),
        prefix: prefix.to_owned(),
    }
    .open_redis(1)
    .await
}

/// What `server` answered for one field of `INFO stats`.
pub fn info_stat(server: &RedisServer, field: &str) -> u64 {
    let stats = server.cli(&["INFO", "stats"]).expect("INFO");
    let field = format!("{field}:");
    stats
        .lines()
        .find_map(|line| line.trim().strip_prefix(field.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .expect("the field in INFO stats")
}

/// A store on the suite's single Redis server.
pub fn redis_single(name: &str) -> Redis {
    let server = single();
    Redis {
        topology: RedisTopology::Single(server.address()),
        prefix: prefix(name),
    }
}

/// A store on the suite's Redis Cluster.
pub fn redis_cluster(name: &str) -> Redis {
    let cluster = cluster();
    Redis {
        topology: RedisTopology::Cluster(cluster.addresses()),
        prefix: prefix(name),
    }
}

fn single() -> &'static RedisServer {
    static SINGLE: OnceLock<RedisServer> = OnceLock::new();
    SINGLE.get_or_init(|| RedisServer::start("storage"))
}

fn cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| RedisCluster::start("storage-cluster"))
}

/// Generates, for each named generic test `async fn name<B: Backend>(b: &B)`,
/// one `#[tokio::test]` per backend: `sled::name`, `redis_single::name`,
/// `redis_cluster::name`.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::sled(stringify!($name))).await
                }
            )*
        }
        mod redis_single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::redis_single(stringify!($name))).await
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::redis_cluster(stringify!($name))).await
                }
            )*
        }
    };
}

/// Generates, for each named test `async fn name(b: &Redis)`, one
/// `#[tokio::test]` per Redis deployment: `redis_single::name` and
/// `redis_cluster::name` (for what only the Redis backend has, such as
/// coordination between nodes). Several nodes are several stores opened
/// on the same [`Redis`] (same prefix) with different node ids.
#[macro_export]
macro_rules! on_every_redis {
    ($($name:ident),* $(,)?) => {
        mod redis_single {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::redis_single(stringify!($name))).await
                }
            )*
        }
        mod redis_cluster {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::common::redis_cluster(stringify!($name))).await
                }
            )*
        }
    };
}

/// Runs the test `child` of this test binary in a child process with the
/// environment variable `env` set to `dir`, waits (up to 60 s) for the
/// line it prints starting with `prefix`, then kills it with SIGKILL and
/// reaps it: the words of that line after the prefix. The crash tests
/// reopen what the child left.
pub fn run_child_until_killed(
    child: &str,
    env: &str,
    dir: &std::path::Path,
    prefix: &str,
) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let mut process = Command::new(std::env::current_exe().expect("test binary"))
        .args([child, "--exact", "--nocapture"])
        .env(env, dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("child starts");
    let stdout = process.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = prefix.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix(wanted.as_str()) {
                let _ = tx.send(rest.split_whitespace().map(str::to_owned).collect());
            }
        }
    });
    let words = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("the child {child} printed no line {prefix:?}"));
    process.kill().expect("SIGKILL");
    process.wait().expect("reaped");
    words
}
