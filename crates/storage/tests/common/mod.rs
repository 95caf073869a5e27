//! What the storage suite runs against: sled in a temporary directory, a
//! Redis server, and a three-primary Redis Cluster, each behind
//! [`Backend`], so one behavioural test runs on all three.
//!
//! The Redis servers are started by the tests themselves, once per test
//! binary, on free loopback ports, with `appendonly yes` and `appendfsync
//! always` in a temporary directory. Each test keeps its keys under its own
//! prefix, so tests share the servers without seeing each other. Each
//! server runs under a small shell that kills it when the test process
//! ends (its standard input, a pipe from this process, closes): statics
//! are never dropped, so Drop alone would leave them running.
//!
//! Without `redis-server` the Redis tests fail, saying how to install it.

#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tern_storage::{
    Durability, RedisDurability, RedisOptions, RedisStore, RedisTopology, SledStore, Store,
    StoreOptions, Verification,
};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        TempDir(std::env::temp_dir().join(format!(
            "tern-store-{name}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        )))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
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
        topology: RedisTopology::Cluster(cluster.iter().map(RedisServer::address).collect()),
        prefix: prefix(name),
    }
}

fn single() -> &'static RedisServer {
    static SINGLE: OnceLock<RedisServer> = OnceLock::new();
    SINGLE.get_or_init(|| RedisServer::start(&[]))
}

fn cluster() -> &'static [RedisServer] {
    static CLUSTER: OnceLock<Vec<RedisServer>> = OnceLock::new();
    CLUSTER.get_or_init(start_cluster)
}

/// A `redis-server` child on a loopback port, killed when this is dropped
/// or when the test process ends.
pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    pub pid: u32,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

/// The message every Redis test fails with when the server is missing.
const INSTALL: &str =
    "redis-server is not installed: the Redis storage tests need it (apt-get install redis-server)";

/// A port free now, with its cluster bus port (+10000) free too.
fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds a loopback port");
        let port = listener.local_addr().expect("has an address").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn redis_cli(port: u16, args: &[&str]) -> Option<String> {
    let out = Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

impl RedisServer {
    /// Starts a server with the suite's persistence and `extra` options.
    pub fn start(extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("tern-redis-{}-{port}", std::process::id()));
        Self::launch(port, dir, extra, true)
    }

    /// Starts a server on `port` with its files in `dir` (kept: a restart
    /// on the same directory reads the append-only file back).
    pub fn start_at(port: u16, dir: PathBuf, extra: &[&str]) -> Self {
        Self::launch(port, dir, extra, false)
    }

    fn launch(port: u16, dir: PathBuf, extra: &[&str], remove_dir: bool) -> Self {
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!("{INSTALL}");
        }
        std::fs::create_dir_all(&dir).expect("creates the Redis directory");
        let port_text = port.to_string();
        let mut args: Vec<&str> = vec![
            "--port",
            &port_text,
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().expect("a UTF-8 temp dir"),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            "redis.log",
        ];
        args.extend_from_slice(extra);
        // The shell prints the server's pid, then waits for its standard
        // input to close (this process ended or dropped it) and kills it.
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"redis-server "$@" & pid=$!; echo $pid; read _ignored; kill -9 $pid 2>/dev/null;
                   wait $pid 2>/dev/null; if [ -n "$TERN_REDIS_RM" ]; then rm -rf "$TERN_REDIS_RM"; fi"#,
            )
            .arg("sh")
            .env(
                "TERN_REDIS_RM",
                if remove_dir {
                    dir.as_os_str()
                } else {
                    std::ffi::OsStr::new("")
                },
            )
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}: {e}"));
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(out) = watchdog.stdout.take() {
            BufReader::new(out)
                .read_line(&mut line)
                .expect("reads the server's pid");
        }
        let pid: u32 = line.trim().parse().expect("the watchdog prints a pid");
        let server = Self {
            port,
            dir,
            pid,
            watchdog,
            stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_cli(port, &["ping"]).as_deref().map(str::trim) != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not answer within 10 s (see {}/redis.log)",
                server.dir.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    pub fn address(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the server (a crash): nothing is flushed on the way out.
    pub fn crash(mut self) -> (u16, PathBuf) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.pid.to_string())
            .status();
        self.stdin.take();
        let _ = self.watchdog.wait();
        (self.port, self.dir.clone())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // Closing its input makes the watchdog kill the server.
        self.stdin.take();
        let _ = self.watchdog.wait();
    }
}

/// Three primaries on loopback, joined into one cluster covering every slot.
fn start_cluster() -> Vec<RedisServer> {
    let servers: Vec<RedisServer> = (0..3)
        .map(|_| {
            RedisServer::start(&[
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ])
        })
        .collect();
    let nodes: Vec<String> = servers
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    let mut args = vec!["--cluster", "create"];
    args.extend(nodes.iter().map(String::as_str));
    args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
    let created = redis_cli(servers[0].port, &args);
    assert!(created.is_some(), "redis-cli --cluster create failed");
    let deadline = Instant::now() + Duration::from_secs(20);
    for server in &servers {
        while !redis_cli(server.port, &["cluster", "info"])
            .is_some_and(|info| info.contains("cluster_state:ok"))
        {
            assert!(
                Instant::now() < deadline,
                "the Redis cluster did not come up within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    servers
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
