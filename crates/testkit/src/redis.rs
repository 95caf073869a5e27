//! A Redis server (or a three-primary Redis Cluster) of the test's own on
//! loopback ports, persisting as Tern
//! requires (`appendonly yes`, `appendfsync always`), for the tests of
//! several nodes on one store. Killed with the test process: a small shell
//! watches this process's end of a pipe and kills the server when it
//! closes, so a failed test leaves no server behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, TempDir};

const INSTALL: &str =
    "redis-server and redis-cli are needed: apt-get install -y redis-server redis-tools";

/// A running redis-server.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    /// The TLS port, when started with [`Redis::start_tls`].
    pub tls_port: Option<u16>,
    /// The password `redis-cli` gives, when the server requires one.
    password: Option<String>,
    /// Its data and log; removed on drop, after the server is gone.
    dir: TempDir,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

/// A port free now whose cluster bus port (+10 000) is free too.
fn cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
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
                    cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
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
        Redis::launch(label, free_port(), &[], None)
    }

    /// A server that also serves TLS (certificate and key files, PEM) on a
    /// port of its own, and requires `password` on both.
    pub fn start_tls(label: &str, cert: &Path, key: &Path, password: &str) -> Redis {
        let tls_port = free_port();
        let (tls_text, cert, key) = (
            tls_port.to_string(),
            cert.to_str().expect("a UTF-8 path").to_owned(),
            key.to_str().expect("a UTF-8 path").to_owned(),
        );
        let mut redis = Redis::launch(
            label,
            free_port(),
            &[
                "--tls-port",
                &tls_text,
                "--tls-cert-file",
                &cert,
                "--tls-key-file",
                &key,
                "--tls-auth-clients",
                "no",
                "--requirepass",
                password,
            ],
            Some(password),
        );
        redis.tls_port = Some(tls_port);
        redis
    }

    fn launch(label: &str, port: u16, extra: &[&str], password: Option<&str>) -> Redis {
        let dir = TempDir::new(&format!("redis-{label}"));
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"redis-server "$@" & pid=$!; echo $pid; read _ignored; kill -9 $pid 2>/dev/null;
                   wait $pid 2>/dev/null"#,
            )
            .arg("sh")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(dir.path())
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
        let server = Redis {
            port,
            tls_port: None,
            password: password.map(str::to_owned),
            dir,
            watchdog,
            stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.cli(&["ping"]).as_deref().map(str::trim) != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not answer within 10 s ({INSTALL}; see {}/redis.log)",
                server.dir.path().display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
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
    }
}
