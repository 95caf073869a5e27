//! The real `tern run` as a child process that cleans up after itself, and
//! the other ways the tests run the binary (`check-config`, signals).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::TempDir;

/// The `tern` binary Cargo built for this test run: `Command::new(TERN)`,
/// `format!("{TERN}")`. Found beside the test executable
/// (`target/<profile>/deps/<test>` → `target/<profile>/tern`): Cargo builds
/// a package's binaries before its integration tests, but tells only that
/// package's own tests where (`CARGO_BIN_EXE_tern`, at compile time), and
/// this crate is not that package.
pub const TERN: TernBinary = TernBinary;

/// See [`TERN`].
#[derive(Debug, Clone, Copy)]
pub struct TernBinary;

impl TernBinary {
    /// The binary's path; panics, saying why, when it is not there.
    pub fn path(self) -> &'static Path {
        static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
        PATH.get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's own path");
            let profile = exe
                .parent()
                .and_then(Path::parent)
                .expect("a test executable under target/<profile>/deps");
            let tern = profile.join(format!("tern{}", std::env::consts::EXE_SUFFIX));
            assert!(
                tern.is_file(),
                "{} not found: run the tests with `cargo test -p tern`, which builds it",
                tern.display()
            );
            tern
        })
    }
}

impl AsRef<OsStr> for TernBinary {
    fn as_ref(&self) -> &OsStr {
        self.path().as_os_str()
    }
}

impl AsRef<Path> for TernBinary {
    fn as_ref(&self) -> &Path {
        self.path()
    }
}

impl fmt::Display for TernBinary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path().display())
    }
}

/// Where one of the daemon's output streams goes.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Null,
    Inherit,
    Piped,
    /// Appended to [`LOG`] in the daemon's directory.
    Log,
}

/// The file in the daemon's directory where it says where it listens
/// (`tern run --listening-file`).
pub const LISTENING: &str = "listening";

/// The file in the daemon's directory that [`Launch::log_file`] fills.
pub const LOG: &str = "tern.log";

impl Sink {
    fn stdio(self, dir: &Path) -> Stdio {
        match self {
            Sink::Null => Stdio::null(),
            Sink::Inherit => Stdio::inherit(),
            Sink::Piped => Stdio::piped(),
            Sink::Log => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(LOG))
                .map(Stdio::from)
                .unwrap_or_else(|e| panic!("the daemon's log in {}: {e}", dir.display())),
        }
    }
}

/// How a test starts the daemon. The default, `RUST_LOG=warn` with stdout
/// dropped and stderr passed through, keeps a passing test quiet and lets
/// a failing one show what the daemon complained about; a test that reads
/// the log, or must not drown in it, says so here.
#[derive(Debug, Clone)]
pub struct Launch {
    rust_log: String,
    stdout: Sink,
    stderr: Sink,
    env: Vec<(String, OsString)>,
}

impl Default for Launch {
    fn default() -> Self {
        Launch {
            rust_log: "warn".to_owned(),
            stdout: Sink::Null,
            stderr: Sink::Inherit,
            env: Vec::new(),
        }
    }
}

impl Launch {
    pub fn new() -> Launch {
        Launch::default()
    }

    /// The daemon's `RUST_LOG` filter instead of `warn`.
    pub fn rust_log(mut self, filter: &str) -> Launch {
        filter.clone_into(&mut self.rust_log);
        self
    }

    /// Pipes stdout and stderr, for a test that reads what the daemon
    /// logged: [`Daemon::output`] once it exited, or the child's pipes.
    /// Nothing reads the pipes meanwhile, so a daemon that logs more than
    /// a pipe holds (64 KiB; a line per message at `info` fills it within
    /// a few hundred messages) blocks in its next log write, and its
    /// submits stall: such a test uses [`Launch::log_file`].
    pub fn captured(mut self) -> Launch {
        self.stdout = Sink::Piped;
        self.stderr = Sink::Piped;
        self
    }

    /// Appends stdout and stderr to [`LOG`] in the daemon's directory,
    /// across restarts, for a test that reads it back
    /// ([`Daemon::log_lines`]) or keeps it when it fails.
    pub fn log_file(mut self) -> Launch {
        self.stdout = Sink::Log;
        self.stderr = Sink::Log;
        self
    }

    /// Drops stdout and stderr both.
    pub fn silent(mut self) -> Launch {
        self.stdout = Sink::Null;
        self.stderr = Sink::Null;
        self
    }

    /// One more environment variable for the daemon.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Launch {
        self.env.push((key.to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Writes `config` as `tern.toml` into `dir` and runs
    /// `tern run --config` on it; its relative paths (the store's `data`)
    /// land in `dir` too.
    pub fn start(&self, dir: TempDir, config: &str) -> Daemon {
        let path = dir.write("tern.toml", config);
        let child = self.spawn(run_command(&path), dir.path());
        Daemon { child, dir }
    }

    /// `tern run` with no file, i.e. the embedded default configuration,
    /// with `dir` as its working directory (where that default keeps its
    /// store).
    pub fn start_embedded(&self, dir: TempDir) -> Daemon {
        let mut command = Command::new(TERN);
        command
            .arg("run")
            .arg("--listening-file")
            .arg(dir.join(LISTENING))
            .current_dir(dir.path());
        let child = self.spawn(command, dir.path());
        Daemon { child, dir }
    }

    /// Starts `command` with these settings, for a daemon started some
    /// other way (through a shell, say). It must end up as the tern process
    /// itself (`exec`), so that signals and the kill on drop reach tern.
    pub fn start_command(&self, dir: TempDir, command: Command) -> Daemon {
        let child = self.spawn(command, dir.path());
        Daemon { child, dir }
    }

    fn spawn(&self, mut command: Command, dir: &Path) -> Child {
        command
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(self.stdout.stdio(dir))
            .stderr(self.stderr.stdio(dir))
            .spawn()
            .expect("start tern")
    }
}

/// `tern run --config FILE`.
///
/// It writes where it listens to [`LISTENING`] beside the file (see
/// [`Daemon::listening`]), removed first so that a restart's wait reads
/// the new process's addresses, not the old one's.
fn run_command(config: &Path) -> Command {
    let listening = config.with_file_name(LISTENING);
    let _ = std::fs::remove_file(&listening);
    let mut command = Command::new(TERN);
    command
        .args(["run", "--config"])
        .arg(config)
        .arg("--listening-file")
        .arg(listening);
    command
}

/// A running `tern run`. Killed on drop, and its scratch directory removed
/// after it, so a failing test leaves no daemon behind holding its ports
/// or its store.
#[derive(Debug)]
pub struct Daemon {
    pub child: Child,
    pub dir: TempDir,
}

impl Daemon {
    /// The daemon on `config` with the default [`Launch`], in a scratch
    /// directory named by `label` (see [`TempDir::new`]).
    pub fn start(label: &str, config: &str) -> Daemon {
        Launch::new().start(TempDir::new(label), config)
    }

    /// The file the daemon runs on; a reload test rewrites it.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("tern.toml")
    }

    /// Sends the daemon `SIG<name>` (`HUP`, `TERM`…).
    pub fn signal(&self, name: &str) {
        signal(&self.child, name);
    }

    /// Waits for the daemon to exit, at most `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tern did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Everything the daemon wrote, stdout then stderr: call it once the
    /// daemon exited (it reads to the end), on a [`Launch::captured`] one.
    pub fn output(&mut self) -> String {
        let mut out = String::new();
        if let Some(mut s) = self.child.stdout.take() {
            let _ = s.read_to_string(&mut out);
        }
        if let Some(mut s) = self.child.stderr.take() {
            let _ = s.read_to_string(&mut out);
        }
        out
    }

    /// Once the daemon has exited cleanly (30 s at most), starts it again
    /// on the same file and store, as an operator's restart does.
    pub fn restart(&mut self, launch: &Launch) {
        let status = self.wait(Duration::from_secs(30));
        assert!(status.success(), "{status}");
        self.respawn(launch);
    }

    /// Where the daemon listens, once it has bound (10 s at most): a
    /// config may say port 0, and the daemon picks. Panics if the daemon
    /// exits first.
    pub fn listening(&mut self) -> Listening {
        Listening::wait(&self.dir.join(LISTENING), &mut self.child)
    }

    /// Writes `config` as the daemon's file, for a reload: each listener
    /// it gives port 0 keeps the address the file has now, which says
    /// port 0 too unless a restart pinned it ([`Daemon::respawn`]), so
    /// the listeners read as unchanged, as they are. Written whole, then
    /// renamed over it: the daemon's file watch never reads half of it.
    pub fn write_config(&mut self, config: &str) {
        let path = self.config_path();
        let now = std::fs::read_to_string(&path).expect("the daemon's config");
        let pinned = Listening::in_config(&now).pin(config);
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, pinned).expect("write the daemon's config");
        std::fs::rename(&tmp, &path).expect("rename the daemon's config");
    }

    /// The port of the first client listener ([`Daemon::listening`]).
    pub fn client_port(&mut self) -> u16 {
        self.listening().client_port()
    }

    /// The admin listener ([`Daemon::listening`]); panics if there is none.
    pub fn admin(&mut self) -> crate::Admin {
        crate::Admin(self.listening().admin.expect("an [admin] listener"))
    }

    /// SIGKILL (what `Child::kill` sends on Unix), and reaped: a crash,
    /// as far as the store is concerned. Harmless if it already exited.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon again on the same file and store at once, without
    /// waiting for the old process: call it after [`Daemon::kill`], or
    /// once it exited.
    ///
    /// It comes back on the ports it had: each listener the file gives
    /// port 0 is first written with the port the last run bound
    /// ([`Listening::pin`]), so clients that keep reconnecting, and
    /// other nodes' configs, find it where it was. Reusing ports this
    /// daemon held is no guess at a free one; the kernel's TIME_WAIT hold
    /// on a port that had connections keeps other sockets' automatic
    /// binds off it meanwhile.
    pub fn respawn(&mut self, launch: &Launch) {
        self.pin_ports();
        self.child = launch.spawn(run_command(&self.config_path()), self.dir.path());
    }

    /// Writes the ports of the last run into the config ([`Listening::pin`]),
    /// if it listened.
    fn pin_ports(&self) {
        let Ok(listening) = std::fs::read_to_string(self.dir.join(LISTENING)) else {
            return;
        };
        let path = self.config_path();
        let config = std::fs::read_to_string(&path).expect("the daemon's config");
        let pinned = Listening::parse(&listening).pin(&config);
        if pinned != config {
            std::fs::write(&path, pinned).expect("rewrite the daemon's config");
        }
    }

    /// Starts it again if it exited on its own; returns the exit status it
    /// had, `None` while it runs.
    pub fn revive(&mut self, launch: &Launch) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok()??;
        self.respawn(launch);
        Some(status)
    }

    /// The lines of [`LOG`] (see [`Launch::log_file`]) that mention
    /// `needle`, at most `n`, joined.
    pub fn log_lines(&self, needle: &str, n: usize) -> String {
        let log = std::fs::read_to_string(self.dir.join(LOG)).unwrap_or_default();
        log.lines()
            .filter(|l| l.contains(needle))
            .take(n)
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends `SIG<name>` to `child` through kill(1): the tests forbid unsafe
/// code, and so a libc call.
pub fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Runs `tern check-config FILE` with `env` added to the environment:
/// (exit code, or -1 if a signal ended it; stdout; stderr).
pub fn check_config(file: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(TERN)
        .arg("check-config")
        .arg(file)
        .envs(env.iter().copied())
        .output()
        .expect("run tern check-config");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Where a daemon listens, as `tern run --listening-file` wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listening {
    /// One per `[[listener]]`, in the config's order.
    pub clients: Vec<std::net::SocketAddr>,
    /// The `[admin]` listener.
    pub admin: Option<std::net::SocketAddr>,
    /// One per `[[http_listener]]`, in the config's order.
    pub http: Vec<std::net::SocketAddr>,
    /// One per `[[simulator]]`, in the config's order.
    pub simulators: Vec<std::net::SocketAddr>,
}

impl Listening {
    /// Reads `file`, which `child` (a `tern run --listening-file FILE`)
    /// writes once it has bound (10 s at most), for a test that starts
    /// tern its own way. Panics if the daemon exits first.
    pub fn wait(file: &Path, child: &mut Child) -> Listening {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(text) = std::fs::read_to_string(file) {
                return Listening::parse(&text);
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tern exited ({status}) before it listened");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "tern did not write {} within 10 s",
                file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn parse(text: &str) -> Listening {
        let mut listening = Listening::default();
        for line in text.lines() {
            let (kind, address) = line
                .split_once(' ')
                .unwrap_or_else(|| panic!("a listening line: {line:?}"));
            let address = address
                .parse()
                .unwrap_or_else(|e| panic!("an address in {line:?}: {e}"));
            match kind {
                "client" => listening.clients.push(address),
                "admin" => listening.admin = Some(address),
                "http" => listening.http.push(address),
                "simulator" => listening.simulators.push(address),
                _ => {}
            }
        }
        listening
    }

    /// The first client listener's port.
    pub fn client_port(&self) -> u16 {
        self.clients.first().expect("a [[listener]]").port()
    }

    /// The first HTTP listener's port.
    pub fn http_port(&self) -> u16 {
        self.http.first().expect("an [[http_listener]]").port()
    }

    /// The admin listener's port.
    pub fn admin_port(&self) -> u16 {
        self.admin.expect("an [admin] listener").port()
    }

    /// `config` with each listener address that says port 0 (`address =
    /// "HOST:0"` under `[[listener]]`, `[admin]` or `[[http_listener]]`)
    /// given the address here for that listener, in order: the config a
    /// restart runs on to come back where clients look for it.
    /// `[[simulator]]` addresses are left as they are: the daemon points
    /// its upstreams at wherever a simulator binds.
    pub fn pin(&self, config: &str) -> String {
        let (mut clients, mut admin, mut http) = (
            self.clients.iter(),
            self.admin.as_slice().iter(),
            self.http.iter(),
        );
        let mut out = String::with_capacity(config.len());
        for (section, line) in listener_lines(config) {
            let list = match section {
                "[[listener]]" => &mut clients,
                "[admin]" => &mut admin,
                "[[http_listener]]" => &mut http,
                _ => {
                    out.push_str(line);
                    continue;
                }
            };
            let Some(value) = address_value(line) else {
                out.push_str(line);
                continue;
            };
            // A listener this one does not have keeps port 0.
            match list.next() {
                Some(address) if value.ends_with(":0") => {
                    out.push_str(&format!("address = \"{address}\"\n"));
                }
                _ => out.push_str(line),
            }
        }
        out
    }

    /// The listener addresses `config` names (ports 0 as they are), as a
    /// [`Listening`] to [`Listening::pin`] another config with.
    fn in_config(config: &str) -> Listening {
        let mut listening = Listening::default();
        for (section, line) in listener_lines(config) {
            let Some(address) = address_value(line).and_then(|v| v.parse().ok()) else {
                continue;
            };
            match section {
                "[[listener]]" => listening.clients.push(address),
                "[admin]" => listening.admin = Some(address),
                "[[http_listener]]" => listening.http.push(address),
                _ => {}
            }
        }
        listening
    }
}

/// Each line of `config` (its end kept) with the section it is in: the
/// last `[...]` header above it, "" before any.
fn listener_lines(config: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut section = "";
    config.split_inclusive('\n').map(move |line| {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            section = trimmed;
        }
        (section, line)
    })
}

/// The value of an `address = "..."` line, unquoted.
fn address_value(line: &str) -> Option<&str> {
    let value = line
        .trim()
        .strip_prefix("address")?
        .trim_start()
        .strip_prefix('=')?;
    Some(value.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "[[listener]]\naddress = \"127.0.0.1:7000\"\n\
                          [[listener]]\naddress = \"127.0.0.1:0\"\n\
                          [[simulator]]\nname = \"s\"\naddress = \"127.0.0.1:0\"\n\
                          [admin]\naddress = \"127.0.0.1:0\"\n";

    /// A restart's config: each listener on port 0 gets the port bound for
    /// it (the second client listener the second client address), fixed
    /// ports and simulators stay.
    #[test]
    fn pin_fills_each_port_0_listener_with_its_own_address() {
        let listening = Listening::parse(
            "client 127.0.0.1:7000\nclient 127.0.0.1:40001\nadmin 127.0.0.1:40002\n\
             simulator 127.0.0.1:40003\n",
        );
        let pinned = listening.pin(CONFIG);
        assert_eq!(
            pinned,
            CONFIG
                .replacen("127.0.0.1:0", "127.0.0.1:40001", 1)
                .replace(
                    "[admin]\naddress = \"127.0.0.1:0\"",
                    "[admin]\naddress = \"127.0.0.1:40002\""
                )
        );
        // A reload's config keeps what the file says: port 0 stays 0.
        assert_eq!(Listening::in_config(CONFIG).pin(CONFIG), CONFIG);
        assert_eq!(Listening::in_config(&pinned).pin(CONFIG), pinned);
    }
}
