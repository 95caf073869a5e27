//! A Redis server (or a three-primary Redis Cluster) of the test's own on
//! loopback ports, persisting as Tern requires (`appendonly yes`,
//! `appendfsync always`), in a temp directory. Killed with the test
//! process: a small shell watches this process's end of a pipe and kills
//! the server (and removes its directory) when it closes, so a failed test
//! leaves no server behind, nor does a server kept in a static.
//!
//! The server binds its port itself; when the port is taken it exits, and
//! the launcher tries another ([`Redis::start`]). Nothing probes for free
//! ports. TCP, not a unix socket: Tern's Redis addresses are
//! `redis://host:port`, and a cluster's nodes find each other over TCP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::TempDir;

const INSTALL: &str =
    "redis-server and redis-cli are needed: apt-get install -y redis-server redis-tools";

/// A running redis-server.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    /// The TLS port, when started with [`Redis::start_tls`].
    pub tls_port: Option<u16>,
    /// The server's process id (to stop it with SIGSTOP, say).
    pub pid: u32,
    /// The password `redis-cli` gives, when the server requires one.
    password: Option<String>,
    /// Its data and log; removed on drop, after the server is gone.
    dir: TempDir,
    watchdog: Child,
    stdin: Option<ChildStdin>,
    /// The arguments it was started with beyond port and directory, for
    /// [`Redis::restart`].
    extra: Vec<String>,
    /// Watchdogs of servers killed by [`Redis::kill`], closed on drop.
    retired: Vec<(Child, Option<ChildStdin>)>,
}

/// Lowest port tried.
const LOW: u32 = 10_000;
/// How many ports from `LOW`: up to 21 999, so a cluster bus port
/// (+10 000) stays below 32 768 too.
const SPAN: u32 = 12_000;

/// A port to try, not probed: the server binds it and the launcher tries
/// the next on a clash ([`Redis::launch`]). redis-server cannot bind port
/// 0 and say which port it got (`--port 0` turns TCP off), so the ports
/// are walked instead: below the kernel's ephemeral range (32 768 and
/// up), where the local ends of outgoing connections land, each at most
/// once per test process, from a start that differs between processes.
fn candidate_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7_919) % SPAN;
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    u16::try_from(LOW + (start + n) % SPAN).unwrap_or(10_000)
}

/// Whether process `pid` runs (and is not a zombie its parent has yet to
/// reap).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// A Redis Cluster of three primaries on loopback, slots assigned.
#[derive(Debug)]
pub struct RedisCluster {
    pub servers: Vec<Redis>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers and joins them
    /// (`redis-cli --cluster create`); waits until the cluster is ok.
    pub fn start(label: &str) -> RedisCluster {
        let servers: Vec<Redis> = (0..3)
            .map(|n| {
                Redis::launch(
                    &format!("{label}-{n}"),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                    None,
                    None,
                )
            })
            .collect();
        let nodes: Vec<String> = servers
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(nodes.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "0", "--cluster-yes"]);
        assert!(
            servers[0].cli(&args).is_some(),
            "redis-cli --cluster create failed"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        for server in &servers {
            while !server
                .cli(&["cluster", "info"])
                .is_some_and(|info| info.contains("cluster_state:ok"))
            {
                assert!(
                    Instant::now() < deadline,
                    "the Redis cluster did not come up within 20 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        RedisCluster { servers }
    }

    /// Every primary's address, as a node's config lists them.
    pub fn addresses(&self) -> Vec<String> {
        self.servers.iter().map(Redis::address).collect()
    }
}

impl Redis {
    /// Starts a server in a fresh temp directory.
    pub fn start(label: &str) -> Redis {
        Redis::launch(label, &[], None, None)
    }

    /// A server that also serves TLS (certificate and key files, PEM) on a
    /// port of its own, and requires `password` on both.
    pub fn start_tls(label: &str, cert: &Path, key: &Path, password: &str) -> Redis {
        Redis::launch(label, &[], Some((cert, key)), Some(password))
    }

    /// Starts a redis-server on a port it binds itself, trying again on
    /// another when that one is taken: nothing probes for a free port
    /// first, so nothing can take it between a probe and the bind. The
    /// ports are drawn below the kernel's ephemeral range (32 768 and up),
    /// where the local ends of outgoing connections land, and low enough
    /// that a cluster bus port (+10 000) stays below it too.
    fn launch(
        label: &str,
        extra: &[&str],
        tls: Option<(&Path, &Path)>,
        password: Option<&str>,
    ) -> Redis {
        const TRIES: usize = 20;
        let mut last = String::new();
        for _ in 0..TRIES {
            let port = candidate_port();
            let tls_port = tls.map(|_| candidate_port());
            let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
            if let (Some((cert, key)), Some(tls_port)) = (tls, tls_port) {
                args.extend(
                    [
                        "--tls-port",
                        &tls_port.to_string(),
                        "--tls-cert-file",
                        cert.to_str().expect("a UTF-8 path"),
                        "--tls-key-file",
                        key.to_str().expect("a UTF-8 path"),
                        "--tls-auth-clients",
                        "no",
                    ]
                    .map(str::to_owned),
                );
            }
            if let Some(password) = password {
                args.extend(["--requirepass".to_owned(), password.to_owned()]);
            }
            let mut server = Redis::spawn(label, port, &args);
            server.tls_port = tls_port;
            server.password = password.map(str::to_owned);
            match server.wait_up() {
                Ok(()) => return server,
                Err(why) => last = why,
            }
        }
        panic!("redis-server did not start in {TRIES} tries: {last} ({INSTALL})");
    }

    /// The server under its watchdog, not yet known to be up.
    fn spawn(label: &str, port: u16, extra: &[String]) -> Redis {
        let dir = TempDir::new(&format!("redis-{label}"));
        let (watchdog, stdin, pid) = Redis::watch(dir.path(), port, extra);
        Redis {
            port,
            tls_port: None,
            pid,
            password: None,
            dir,
            watchdog,
            stdin,
            extra: extra.to_vec(),
            retired: Vec::new(),
        }
    }

    /// Starts redis-server on `port` with its files in `dir`, under a
    /// watchdog shell; returns the watchdog, its input and the server's pid.
    fn watch(dir: &Path, port: u16, extra: &[String]) -> (Child, Option<ChildStdin>, u32) {
        // The shell prints the server's pid, then waits for its standard
        // input to close (this process dropped it, or ended: a server in a
        // static is never dropped) and kills the server and removes its
        // directory.
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"redis-server "$@" & pid=$!; echo $pid; read _ignored; kill -9 $pid 2>/dev/null;
                   wait $pid 2>/dev/null; rm -rf "$TERN_REDIS_DIR""#,
            )
            .arg("sh")
            .env("TERN_REDIS_DIR", dir)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                "redis.log",
            ])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{INSTALL}: {e}"));
        let stdin = watchdog.stdin.take();
        let mut line = String::new();
        if let Some(out) = watchdog.stdout.take() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        (watchdog, stdin, line.trim().parse().unwrap_or(0))
    }

    /// SIGKILLs the server, a crash: nothing is flushed on the way out.
    /// Returns once it is gone; [`Redis::restart`] starts it again.
    pub fn kill(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.pid.to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(self.pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts the server again on its port and files after [`Redis::kill`]
    /// (`appendfsync always`: what it acknowledged is back), and waits
    /// until it answers.
    pub fn restart(&mut self) {
        let (watchdog, stdin, pid) = Redis::watch(self.dir.path(), self.port, &self.extra);
        let old = std::mem::replace(&mut self.watchdog, watchdog);
        let old_stdin = std::mem::replace(&mut self.stdin, stdin);
        self.retired.push((old, old_stdin));
        self.pid = pid;
        if let Err(why) = self.wait_up() {
            panic!("redis-server did not come back: {why}");
        }
    }

    /// Waits (10 s at most) until the server on `port` is this one (its
    /// `process_id`: another server may hold the port); `Err` if it exited
    /// first, having failed to bind, say.
    fn wait_up(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let me = format!("process_id:{}", self.pid);
        loop {
            if self
                .cli(&["info", "server"])
                .is_some_and(|info| info.lines().any(|l| l.trim() == me))
            {
                return Ok(());
            }
            if !alive(self.pid) {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let why = log.lines().last().unwrap_or("no log").to_owned();
                return Err(format!("port {}: {why}", self.port));
            }
            if Instant::now() >= deadline {
                return Err(format!("port {}: no answer within 10 s", self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn address(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// What `redis-cli` printed for `args`, if it succeeded.
    pub fn cli(&self, args: &[&str]) -> Option<String> {
        let mut command = Command::new("redis-cli");
        if let Some(password) = &self.password {
            command.args(["--no-auth-warning", "-a", password]);
        }
        let out = command
            .arg("-p")
            .arg(self.port.to_string())
            .args(args)
            .stderr(Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        // Closing its input makes the watchdog kill the server.
        self.stdin.take();
        let _ = self.watchdog.wait();
        for (mut watchdog, stdin) in self.retired.drain(..) {
            drop(stdin);
            let _ = watchdog.wait();
        }
    }
}
