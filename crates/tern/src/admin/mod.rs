//! The admin side of a node: an HTTP listener for probes, Prometheus scrapes
//! and read-only JSON views, and the small client `tern status` uses to read
//! them.
//!
//! The listener knows nothing about the node's internals. It asks an
//! [`AdminSource`] (implemented by the daemon) for each answer and reads the
//! shared [`Metrics`]; so it can be started, tested and shut down on its own.
//! Nothing here changes the node's state: every route is a `GET`.
//! With `[admin] token` set (required off loopback) every route asks for
//! the token, as a bearer token or as basic auth's password.
//!
//! Routes:
//!
//! | route                   | answer                                        |
//! |-------------------------|-----------------------------------------------|
//! | `/`                     | the operator console (HTML, see [`console`])  |
//! | `/health`               | `200 ok` while the runtime answers (liveness) |
//! | `/ready`                | 200 or 503 with [`Readiness`] and `ready`     |
//! | `/metrics`              | Prometheus text (OpenMetrics if asked for)    |
//! | `/api/sessions`         | [`AdminSource::sessions`]                     |
//! | `/api/upstreams`        | [`AdminSource::upstreams`]                    |
//! | `/api/queues`           | [`AdminSource::queues`]                       |
//! | `/api/unmatched`        | [`AdminSource::unmatched`]                    |
//! | `/api/messages/{id}`    | [`AdminSource::message`], 404 when unknown    |
//! | `/api/config`           | [`AdminSource::config`]                       |
//! | `/api/reload`           | [`AdminSource::reload`]                       |

mod client;
pub mod console;
mod http;
pub mod metrics;

use serde::Serialize;

pub use client::{
    get, get_json, post_json, AdminClientError, AdminResponse, ADMIN_TOKEN_ENV, CLIENT_TIMEOUT,
};
pub(crate) use http::{base64_decode, same_secret};
pub use http::{serve, serve_guarded, SHUTDOWN_GRACE};
pub use metrics::Metrics;

/// What the running node tells the admin listener; the daemon implements it.
///
/// The methods are synchronous and may be slow (a store scan, a lock): the
/// listener calls them on tokio's blocking pool, never on a runtime worker.
/// They must not change the node's state: a scrape or a probe is a read.
pub trait AdminSource: Send + Sync + 'static {
    /// Whether the node can take traffic, for `/ready`.
    fn readiness(&self) -> Readiness;
    /// Client and upstream sessions, for `/api/sessions`.
    fn sessions(&self) -> serde_json::Value;
    /// Upstreams with their health and counters, for `/api/upstreams`.
    fn upstreams(&self) -> serde_json::Value;
    /// Queue depths and oldest entries, for `/api/queues`.
    fn queues(&self) -> serde_json::Value;
    /// Receipts held because no message had their upstream id yet (a
    /// bounded list, by upstream and id), for `/api/unmatched`.
    fn unmatched(&self) -> serde_json::Value;
    /// One stored message by id, for `/api/messages/{id}`; `None` answers 404.
    fn message(&self, id: &str) -> Option<serde_json::Value>;
    /// A summary of the configuration in force; must never contain
    /// passwords or key material, since the listener serves it as is.
    fn config(&self) -> serde_json::Value;
    /// The last reload's status, for `/api/reload`.
    fn reload(&self) -> serde_json::Value;
    /// Sets the gauges that mirror state owned elsewhere (queue depths and
    /// ages, sessions, upstream sessions and breakers, store size,
    /// in-flight); called before each `/metrics`
    /// encode so a scrape never shows stale values.
    fn refresh(&self, metrics: &Metrics);
    /// What putting the config `text` (as the file at `path`) in force would
    /// change, for `tern check-config --diff`; the daemon reads it with its
    /// own environment and files, as a reload would. Not applied.
    fn preview(&self, path: &str, text: &str) -> serde_json::Value {
        let _ = (path, text);
        serde_json::json!({ "error": "this node offers no previews" })
    }
}

/// The parts of the node that must be up before it takes traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// The message store is open and writable: false while it is full
    /// (writes refused for want of disk space, `tern_store_full`).
    pub store: bool,
    /// Every client listener is bound.
    pub listeners: bool,
    /// Upstream sessions currently bound; with none, every accepted message
    /// would only wait, so the node is not ready.
    pub upstreams_bound: usize,
}

impl Readiness {
    /// True when the node can accept and deliver traffic.
    pub fn ready(&self) -> bool {
        self.store && self.listeners && self.upstreams_bound > 0
    }
}
