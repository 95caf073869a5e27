//! A Redis server of the test's own on a loopback port, persisting as Tern
//! requires (`appendonly yes`, `appendfsync always`), for the tests of
//! several nodes on one store. Killed with the test process: a small shell
//! watches this process's end of a pipe and kills the server when it
//! closes, so a failed test leaves no server behind.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

const INSTALL: &str =
    "redis-server and redis-cli are needed: apt-get install -y redis-server redis-tools";

/// A running redis-server.
#[derive(Debug)]
pub struct Redis {
    pub port: u16,
    dir: PathBuf,
    watchdog: Child,
    stdin: Option<ChildStdin>,
}

impl Redis {
    /// Starts a server in a fresh directory under the target's temp dir.
    pub fn start(label: &str) -> Redis {
        let port = free_port();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("redis-{label}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates the Redis directory");
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg(
                r#"redis-server "$@" & pid=$!; echo $pid; read _ignored; kill -9 $pid 2>/dev/null;
                   wait $pid 2>/dev/null"#,
            )
            .arg("sh")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
            .arg(&dir)
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
            dir,
            watchdog,
            stdin,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.cli(&["ping"]).as_deref().map(str::trim) != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {port} did not answer within 10 s ({INSTALL}; see {}/redis.log)",
                server.dir.display()
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
        let out = Command::new("redis-cli")
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
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
