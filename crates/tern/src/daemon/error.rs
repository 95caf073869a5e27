//! Why a node could not start, could not apply a configuration, or stopped
//! with an error. Each variant names the thing it is about (the address,
//! the upstream, the store) and keeps the error underneath as its source,
//! so the binary's edge can print the whole chain and pick an exit status
//! from it (a damaged store is told apart from a busy port).

use std::net::SocketAddr;

use tern_session::abuse::GuardConfigError;
use tern_session::throttle::AdaptiveConfigError;
use tern_session::tls::TlsError;
use tern_storage::StoreError;

/// Why the daemon failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// `TERN_CRASH_AT` names no crash point (a test-only variable).
    #[error(transparent)]
    CrashPoint(#[from] super::crash::CrashPointError),
    /// A sandbox simulator could not start (boxed: the simulator's error
    /// is large, and every `Result` of the daemon would carry its size).
    #[error(transparent)]
    Sandbox(Box<crate::sandbox::SandboxError>),
    /// A listener's address could not be bound (in use, not local, no
    /// permission).
    #[error("{kind} listener on {address}: {source}")]
    Bind {
        /// Which listener: `client`, `admin`.
        kind: &'static str,
        /// The configured address.
        address: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The sockets passed to [`super::run`] do not match the configuration.
    #[error(
        "{given} client listener socket(s) given for {configured} [[listener]] section(s); \
         admin socket given: {admin_given}, [admin] configured: {admin_configured}"
    )]
    Listeners {
        /// `[[listener]]` sections.
        configured: usize,
        /// Client sockets given.
        given: usize,
        /// Whether `[admin]` is configured.
        admin_configured: bool,
        /// Whether an admin socket was given.
        admin_given: bool,
    },
    /// The HTTP sockets passed to [`super::run`] do not match the
    /// configuration.
    #[error("{given} HTTP listener socket(s) given for {configured} [[http_listener]] section(s)")]
    HttpListeners {
        /// `[[http_listener]]` sections.
        configured: usize,
        /// HTTP sockets given.
        given: usize,
    },
    /// The simulator sockets passed to [`super::run`] do not match the
    /// configuration.
    #[error("{given} simulator socket(s) given for {configured} [[simulator]] section(s)")]
    SimulatorListeners {
        /// `[[simulator]]` sections (0 in a build without the sandbox).
        configured: usize,
        /// Simulator sockets given.
        given: usize,
    },
    /// `tern run --listening-file` could not be written.
    #[error("writing the listening file {path}: {source}")]
    ListeningFile {
        /// The file named.
        path: std::path::PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// A client listener's TLS certificate or key could not be loaded.
    #[error("TLS of listener {address}: {source}")]
    ListenerTls {
        /// The listener's configured address.
        address: SocketAddr,
        /// Which file, and what was wrong with it.
        #[source]
        source: TlsError,
    },
    /// `[bind_guard]` holds limits the guard cannot work with.
    #[error("[bind_guard]: {0}")]
    BindGuard(#[source] GuardConfigError),
    /// An upstream could not be prepared.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The configuration has no `generic` vendor profile to fall back on.
    #[error("the generic profile is missing")]
    NoGenericProfile,
    /// The store could not be opened, joined, recovered or flushed.
    #[error("{what}: {source}")]
    Store {
        /// What was done, naming the store (its path or Redis addresses).
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// This node can no longer be sure of its membership in a shared
    /// store: it stopped as on SIGTERM, and exits with an error.
    #[error("stopped: node {node} lost its membership in the shared store")]
    LostMembership {
        /// This node's id.
        node: u16,
    },
}

impl From<crate::sandbox::SandboxError> for DaemonError {
    fn from(err: crate::sandbox::SandboxError) -> Self {
        DaemonError::Sandbox(Box::new(err))
    }
}

impl DaemonError {
    /// Whether a store file is damaged: the binary exits EX_DATAERR on it,
    /// as restarting cannot help until an operator looked.
    pub fn store_damaged(&self) -> bool {
        matches!(
            self,
            DaemonError::Store {
                source: StoreError::Damaged { .. },
                ..
            }
        )
    }
}

/// Why an upstream could not be prepared (at start, or at a reload, which
/// then changes nothing).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Its account's rate settings are unusable.
    #[error("upstream {upstream}: rate of account {account}: {source}")]
    Rate {
        /// The `[[upstream]]` name.
        upstream: String,
        /// Its vendor account.
        account: String,
        /// What the adaptive rate said.
        #[source]
        source: AdaptiveConfigError,
    },
    /// Its vendor account was not prepared with the others (a bug: every
    /// upstream's account is).
    #[error("upstream {upstream}: account {account} not prepared")]
    NoAccount {
        /// The `[[upstream]]` name.
        upstream: String,
        /// Its vendor account.
        account: String,
    },
    /// Its TLS settings could not be loaded.
    #[error("upstream {upstream} TLS: {source}")]
    Tls {
        /// The `[[upstream]]` name.
        upstream: String,
        /// Which file, and what was wrong with it.
        #[source]
        source: TlsError,
    },
}
