//! What the end-to-end tests share: the real `tern run` as a child process
//! that cleans up after itself, clients that bind to it over real sockets,
//! the messages they send and the receipts they take, the admin listener,
//! and a bare SMSC for tests that script an upstream PDU by PDU.
//!
//! Every wait here is bounded, as the tests promise: a helper that waits
//! either takes its limit or states it, and panics naming what it waited
//! for, so a hung daemon fails a test instead of hanging the suite.

// Each file in tests/ is a crate of its own that compiles this module anew
// and uses only part of it: what one file leaves unused, another needs.
#![allow(dead_code)]

mod ports;
pub mod redis;

use std::ffi::{OsStr, OsString};
use std::future::Future;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use tern_codec::pdu::{DeliverSm, QuerySm, SmResp, SubmitSm};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, MessageState, Npi, Pdu, RegisteredDelivery,
    ShortMessage, Tlv, Ton,
};
use tern_session::esme::{self, BindParams, ConnectError, UpstreamSession};
use tern_session::smsc::{
    Admission, Authenticator, BindRequest, BoundSession, SmscConfig, SmscServer,
};
use tern_session::{BindType, Request, Requests, Responder, SessionConfig, SessionHandle};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The binary under test, as Cargo built it for this test run.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

pub use ports::free_port;

// ------------------------------------------------------------ scratch dirs

/// A scratch directory, `tern-<label>-<pid>` under the system's temp dir,
/// removed with all it holds on drop. A leftover of the same name (a run
/// killed before its drops) is removed first, so no test starts on a stale
/// store.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// The tests of one file run at once in one process: `label` must tell
    /// them apart (the test's name, or a port it took).
    pub fn new(label: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("tern-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` in the directory; returns its path.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// -------------------------------------------------------------- the daemon

/// Where one of the daemon's output streams goes.
#[derive(Debug, Clone, Copy)]
enum Sink {
    Null,
    Inherit,
    Piped,
}

impl Sink {
    fn stdio(self) -> Stdio {
        match self {
            Sink::Null => Stdio::null(),
            Sink::Inherit => Stdio::inherit(),
            Sink::Piped => Stdio::piped(),
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
    pub fn captured(mut self) -> Launch {
        self.stdout = Sink::Piped;
        self.stderr = Sink::Piped;
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
        let child = self.spawn(run_command(&path));
        Daemon { child, dir }
    }

    /// `tern run` with no file, i.e. the embedded default configuration,
    /// with `dir` as its working directory (where that default keeps its
    /// store).
    pub fn start_embedded(&self, dir: TempDir) -> Daemon {
        let mut command = Command::new(TERN);
        command.arg("run").current_dir(dir.path());
        let child = self.spawn(command);
        Daemon { child, dir }
    }

    /// Starts `command` with these settings, for a daemon started some
    /// other way (through a shell, say). It must end up as the tern process
    /// itself (`exec`), so that signals and the kill on drop reach tern.
    pub fn start_command(&self, dir: TempDir, command: Command) -> Daemon {
        let child = self.spawn(command);
        Daemon { child, dir }
    }

    fn spawn(&self, mut command: Command) -> Child {
        command
            .env("RUST_LOG", &self.rust_log)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(self.stdout.stdio())
            .stderr(self.stderr.stdio())
            .spawn()
            .expect("start tern")
    }
}

fn run_command(config: &Path) -> Command {
    let mut command = Command::new(TERN);
    command.args(["run", "--config"]).arg(config);
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
        self.child = launch.spawn(run_command(&self.config_path()));
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

// ------------------------------------------------------------------- waits

/// How often the waits below look again.
const POLL: Duration = Duration::from_millis(50);

/// Polls `check` every 50 ms until it gives a value; panics naming `what`
/// after `within`. The limit is counted in polls, so a slow check (an HTTP
/// round trip) stretches the wait instead of eating into it.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let polls = (within.as_millis() / POLL.as_millis()).max(1);
    for _ in 0..polls {
        if let Some(value) = check().await {
            return value;
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("{what}: not within {within:?}");
}

/// [`wait_for`] a condition.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(what, within, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await;
}

/// Connects to Tern's client listener on `port`, retrying while the daemon
/// starts (5 s at most): tests start it and connect at once.
pub async fn connect(port: u16) -> TcpStream {
    wait_for(
        &format!("tern listening on port {port}"),
        Duration::from_secs(5),
        || async move { TcpStream::connect(("127.0.0.1", port)).await.ok() },
    )
    .await
}

// ----------------------------------------------------------------- clients

/// A client about to bind to Tern on `port`: a transceiver with the
/// engine's session defaults but no enquire_link, so nothing crosses the
/// wire that the test did not send.
pub fn client(port: u16, system_id: &str, password: &str) -> ClientBind {
    ClientBind {
        port,
        params: BindParams::new(system_id, password).expect("short"),
        config: SessionConfig {
            enquire_link_interval: None,
            ..SessionConfig::default()
        },
        within: None,
    }
}

/// The bind [`client`] prepares; each setting is one some test needs.
#[derive(Debug)]
pub struct ClientBind {
    port: u16,
    params: BindParams,
    config: SessionConfig,
    within: Option<Duration>,
}

impl ClientBind {
    /// Submits this session keeps in flight.
    pub fn window(mut self, window: usize) -> ClientBind {
        self.config.window = window;
        self
    }

    pub fn bind_type(mut self, bind_type: BindType) -> ClientBind {
        self.params.bind_type = bind_type;
        self
    }

    /// Replaces the session settings whole (with the engine's defaults,
    /// say, enquire_link included).
    pub fn session_config(mut self, config: SessionConfig) -> ClientBind {
        self.config = config;
        self
    }

    /// Bounds the bind exchange itself, for tests that put a limit on
    /// every answer.
    pub fn within(mut self, limit: Duration) -> ClientBind {
        self.within = Some(limit);
        self
    }

    /// Connects (see [`connect`]) and binds; must succeed.
    pub async fn bind(self) -> UpstreamSession {
        self.try_bind().await.expect("bound to tern")
    }

    /// Connects and binds; the refusal, if Tern refuses.
    pub async fn try_bind(self) -> Result<UpstreamSession, ConnectError> {
        let stream = connect(self.port).await;
        self.try_bind_over(stream).await
    }

    /// Binds over a connection the test made itself (TLS, say).
    pub async fn try_bind_over<S>(self, io: S) -> Result<UpstreamSession, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let bind = esme::bind(io, Some(addr), &self.params, self.config);
        match self.within {
            Some(limit) => tokio::time::timeout(limit, bind)
                .await
                .expect("bind answered in time"),
            None => bind.await,
        }
    }
}

// ---------------------------------------------------------------- messages

/// An alphanumeric sender id, as "Acme" is.
pub fn alphanumeric(name: &str) -> Address<21> {
    Address::new(
        Ton::ALPHANUMERIC,
        Npi::UNKNOWN,
        COctetString::try_from(name).expect("short"),
    )
}

/// An international E.164 number.
pub fn international(number: &str) -> Address<21> {
    Address::new(
        Ton::INTERNATIONAL,
        Npi::ISDN,
        COctetString::try_from(number).expect("short"),
    )
}

/// A submit from "Acme" to `to`, as the test clients send them. Up to 160
/// octets the text is the short_message; a longer one goes whole in
/// message_payload, which is how a client hands Tern a message to split.
pub fn submit_sm(
    to: &str,
    text: impl AsRef<[u8]>,
    registered_delivery: RegisteredDelivery,
) -> SubmitSm {
    let text = text.as_ref();
    let mut sm = SubmitSm {
        source: alphanumeric("Acme"),
        destination: international(to),
        registered_delivery,
        ..SubmitSm::default()
    };
    if text.len() <= 160 {
        sm.short_message = ShortMessage::new(text.to_vec()).expect("short");
    } else {
        sm.tlvs
            .push(Tlv::message_payload(text.to_vec()).expect("fits"));
    }
    sm
}

/// Tern's message id in a submit_sm_resp; panics if it has none.
pub fn message_id(resp: &Pdu) -> String {
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = &resp.body else {
        panic!("no message id in {resp:?}")
    };
    id.to_string()
}

/// Submits `sm`, which Tern must accept (`ESME_ROK`); returns its id.
pub async fn submit_id(handle: &SessionHandle, sm: SubmitSm) -> String {
    let resp = handle.request(Body::SubmitSm(sm)).await.expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    message_id(&resp)
}

/// Asks Tern for the state of message `id` (query_sm): the answer's status
/// and, if it is a query_sm_resp, its message_state.
pub async fn query_sm(handle: &SessionHandle, id: &str) -> (CommandStatus, Option<MessageState>) {
    let query = QuerySm {
        message_id: COctetString::try_from(id).expect("short"),
        ..QuerySm::default()
    };
    let resp = handle
        .request(Body::QuerySm(query))
        .await
        .expect("answered");
    let state = match resp.body {
        Body::QuerySmResp(answer) => Some(answer.message_state),
        _ => None,
    };
    (resp.command_status, state)
}

// ---------------------------------------------------------------- receipts

/// Answers a deliver_sm from Tern `ESME_ROK`: only then is a receipt or an
/// MO taken, and Tern stops offering it.
pub async fn ack(request: Request) {
    request
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("ack");
}

/// The id a receipt is for, from its receipted_message_id TLV.
pub fn receipted_id(sm: &DeliverSm) -> String {
    String::from_utf8_lossy(
        sm.tlvs
            .receipted_message_id()
            .expect("receipted_message_id"),
    )
    .into_owned()
}

/// The deliver_sm `request` carries, acknowledged.
pub async fn accept_deliver_sm(request: Request) -> DeliverSm {
    let Body::DeliverSm(sm) = request.pdu.body.clone() else {
        panic!("not a deliver_sm: {:?}", request.pdu)
    };
    ack(request).await;
    sm
}

/// The next deliver_sm Tern sends `session` before `deadline`,
/// acknowledged; `None` if none came, or the session closed.
pub async fn deliver_sm_before(
    session: &mut UpstreamSession,
    deadline: tokio::time::Instant,
) -> Option<DeliverSm> {
    let request = tokio::time::timeout_at(deadline, session.requests.recv())
        .await
        .ok()??;
    Some(accept_deliver_sm(request).await)
}

/// [`deliver_sm_before`] with a limit from now.
pub async fn next_deliver_sm(session: &mut UpstreamSession, within: Duration) -> Option<DeliverSm> {
    deliver_sm_before(session, tokio::time::Instant::now() + within).await
}

/// The next deliver_sm within `within`, which must come; acknowledged.
pub async fn expect_deliver_sm(session: &mut UpstreamSession, within: Duration) -> DeliverSm {
    next_deliver_sm(session, within)
        .await
        .unwrap_or_else(|| panic!("no deliver_sm from tern within {within:?}"))
}

/// The id of the next receipt within `within`; acknowledged.
pub async fn next_receipt(session: &mut UpstreamSession, within: Duration) -> String {
    receipted_id(&expect_deliver_sm(session, within).await)
}

// ------------------------------------------------------------------- admin

/// Tern's admin listener, read as an operator's tools read it.
#[derive(Debug, Clone, Copy)]
pub struct Admin(pub SocketAddr);

impl Admin {
    pub fn at(port: u16) -> Admin {
        Admin(([127, 0, 0, 1], port).into())
    }

    /// GETs `path` as JSON, retrying while the listener starts (5 s).
    pub async fn get(&self, path: &str) -> Value {
        let mut last = None;
        for _ in 0..100 {
            match tern::admin::get_json(self.0, path).await {
                Ok(value) => return value,
                Err(err) => last = Some(err),
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("admin {path} never answered: {last:?}");
    }

    /// The body of `path` as text (`/metrics`).
    pub async fn text(&self, path: &str) -> String {
        tern::admin::get(self.0, path)
            .await
            .expect("admin answers")
            .text()
    }

    /// Polls `path` until `check` holds on its JSON (see [`wait_for`]);
    /// returns that JSON. The daemon records what it did just after doing
    /// it, so a test reads the admin API this way, not once.
    pub async fn until(
        &self,
        path: &str,
        within: Duration,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let check = &check;
        wait_for(what, within, move || async move {
            let value = self.get(path).await;
            check(&value).then_some(value)
        })
        .await
    }
}

// --------------------------------------------------------------- bare SMSC

/// Accepts every bind: a fake upstream trusts Tern, the tests are about
/// what comes after the bind.
#[derive(Debug)]
pub struct AnyBind;

impl Authenticator for AnyBind {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        Ok(Admission {
            account: bind.system_id.clone(),
            ..Admission::default()
        })
    }
}

/// An SMSC built from the session engine in the test process, for tests
/// that must send Tern exactly the PDUs they want and see exactly what Tern
/// sends (the simulator decides too much on its own for that).
#[derive(Debug)]
pub struct BareSmsc {
    /// Where Tern's `[[upstream]]` should point.
    pub port: u16,
    /// Each session Tern binds, for the test to serve.
    pub sessions: mpsc::Receiver<BoundSession>,
    /// Stops the server when dropped.
    pub stop: DropGuard,
}

/// The next submit_sm Tern sends a [`BareSmsc`] session, with the
/// responder that answers it; anything else is refused
/// `ESME_RINVCMDID`, as an SMSC that only takes submits refuses it. `None`
/// once the session ended.
pub async fn next_submit(requests: &mut Requests) -> Option<(SubmitSm, Responder)> {
    while let Some(request) = requests.recv().await {
        match request.pdu.body {
            Body::SubmitSm(sm) => return Some((sm, request.responder)),
            _ => {
                let _ = request
                    .responder
                    .reject(CommandStatus::InvalidCommandId)
                    .await;
            }
        }
    }
    None
}

/// Accepts a submit under the SMSC's own message `id`. A failure to answer
/// means Tern went away, which the test notices elsewhere.
pub async fn accept_submit(responder: Responder, id: &str) {
    let resp = SmResp::with_id(COctetString::try_from(id).expect("id fits"));
    let _ = responder
        .respond(CommandStatus::Ok, Body::SubmitSmResp(resp))
        .await;
}

/// Starts a [`BareSmsc`] on a free loopback port, accepting any bind.
pub async fn bare_smsc(config: SmscConfig) -> BareSmsc {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = SmscServer::new(config, AnyBind);
    let (sessions_tx, sessions) = mpsc::channel(8);
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(listener, None, sessions_tx, stop.clone()));
    BareSmsc {
        port,
        sessions,
        stop: stop.drop_guard(),
    }
}
