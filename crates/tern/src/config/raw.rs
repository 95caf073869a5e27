//! The configuration file as written: serde types with `deny_unknown_fields`
//! so a misspelt key is an error, and `Spanned` where a later check must
//! point at the line (names and references).

use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// This node.
    #[serde(default)]
    pub node: RawNode,
    /// Where clients connect.
    #[serde(default, rename = "listener")]
    pub listeners: Vec<RawListener>,
    /// Where HTTP API clients connect (the same keys as `[[listener]]`).
    #[serde(default, rename = "http_listener")]
    pub http_listeners: Vec<RawListener>,
    /// The message store.
    #[serde(default)]
    pub storage: RawStorage,
    /// Extra vendor profile files, relative to this file.
    #[serde(default)]
    pub profiles: Vec<Spanned<String>>,
    /// Client accounts.
    #[serde(default, rename = "client")]
    pub clients: Vec<RawClient>,
    /// Upstream SMSCs.
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<RawUpstream>,
    /// Routes, in order.
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
    /// MO rules, in order: the first that matches names the client.
    #[serde(default, rename = "mo_route")]
    pub mo_routes: Vec<RawMoRoute>,
    /// Failover settings.
    #[serde(default)]
    pub router: RawRouter,
    /// Sandbox SMSCs started in-process (the simulator from crates/sim).
    #[serde(default, rename = "simulator")]
    pub simulators: Vec<RawSimulator>,
    /// The admin HTTP listener (metrics, health, JSON).
    pub admin: Option<RawAdmin>,
    /// Logging.
    #[serde(default)]
    pub log: RawLog,
    /// Slowing down and locking out repeated failed binds.
    #[serde(default)]
    pub bind_guard: RawBindGuard,
    /// Timers and limits of every client session.
    #[serde(default)]
    pub client_sessions: RawClientSessions,
}

/// `[client_sessions]`: how Tern, as the SMSC, treats each client session.
/// Unset values keep the defaults of `tern_session::SessionConfig`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawClientSessions {
    /// deliver_sm (receipts, MO) Tern keeps in flight to one session.
    pub window: Option<Spanned<usize>>,
    /// How long Tern waits for a deliver_sm_resp ("30s").
    pub response_timeout: Option<Spanned<String>>,
    /// enquire_link after this long without traffic ("30s", or "off").
    pub enquire_link_interval: Option<Spanned<String>>,
    /// Close a session silent for this long ("120s", or "off").
    pub inactivity_timeout: Option<Spanned<String>>,
    /// Close a connection that has not bound within this long ("10s").
    pub bind_timeout: Option<Spanned<String>>,
    /// Largest command_length accepted from a client, octets.
    pub max_command_length: Option<Spanned<usize>>,
}

/// `[bind_guard]`: on unless `enabled = false`. Failures are counted per
/// source address and per system_id.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawBindGuard {
    /// Off with `false`.
    pub enabled: Option<bool>,
    /// How long failures are remembered ("60s").
    pub window: Option<Spanned<String>>,
    /// Failures after which each further attempt waits a little longer.
    pub delay_after: Option<u32>,
    /// Failures after which binds are refused outright for `lock_for`.
    pub lock_after: Option<u32>,
    /// How long a lock-out lasts ("60s").
    pub lock_for: Option<Spanned<String>>,
}

/// `[admin]`: present means on.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// `host:port`; loopback unless the operator says otherwise.
    pub address: Option<Spanned<String>>,
    /// The token the console and the API ask for (a secret: literal,
    /// "env:NAME" or "file:/path"); required off loopback.
    pub token: Option<Spanned<String>>,
}

/// `[log]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawLog {
    /// "text" (default) or "json".
    pub format: Option<Spanned<Choice<LogFormat>>>,
    /// A tracing filter such as "info" or "tern=debug,info"; `RUST_LOG`
    /// wins when set.
    pub level: Option<String>,
}

/// `[[simulator]]`: a sandbox upstream for trying Tern without a vendor.
/// Parsed in every build, so that a build without the `sandbox` feature
/// refuses the section for what it is (crate::sandbox) rather than for a key
/// it does not know; only the name and address are read there.
#[derive(Debug, Deserialize)]
#[cfg_attr(not(feature = "sandbox"), allow(dead_code))]
#[serde(deny_unknown_fields)]
pub struct RawSimulator {
    /// Its name in logs.
    pub name: String,
    /// `host:port` it listens on.
    pub address: Spanned<String>,
    /// Share of submits refused (0.0–1.0) with `reject_status`.
    #[serde(default)]
    pub reject_fraction: f64,
    /// The status refused submits get (default ESME_RSYSERR, temporary).
    #[serde(default = "system_error")]
    pub reject_status: u32,
    /// Delay before its receipts ("1s").
    pub receipt_delay: Option<Spanned<String>>,
    /// TLS certificate chain (PEM); with `tls_key`, the simulator serves
    /// SMPP over TLS only, like the vendors that require it.
    pub tls_cert: Option<Spanned<String>>,
    /// TLS private key (PEM).
    pub tls_key: Option<Spanned<String>>,
    /// Lowest TLS version offered: "1.2" (default) or "1.3" (OVHcloud-like).
    pub tls_min_version: Option<Spanned<String>>,
    /// Highest TLS version offered: "1.3" (default) or "1.2" (Telesign-like).
    pub tls_max_version: Option<Spanned<String>>,
}

fn system_error() -> u32 {
    0x08
}

/// `[node]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    /// Node id in message ids (0–65535).
    #[serde(default)]
    pub id: u16,
    /// Tern's system_id in bind responses.
    pub system_id: Option<Spanned<String>>,
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawListener {
    /// `host:port`.
    pub address: Spanned<String>,
    /// TLS certificate chain (PEM); with `key`, the listener is TLS.
    pub tls_cert: Option<Spanned<String>>,
    /// TLS private key (PEM).
    pub tls_key: Option<Spanned<String>>,
    /// Minimum TLS version: "1.2" or "1.3".
    pub tls_min_version: Option<Spanned<String>>,
}

/// `[storage]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    /// "sled" (default: a directory of this machine) or "redis" (shared by
    /// several nodes; needs `[storage.redis]`).
    pub backend: Option<Spanned<Choice<StorageBackend>>>,
    /// The Redis store, when `backend = "redis"`.
    pub redis: Option<Spanned<RawRedis>>,
    /// Directory of the store.
    pub path: Option<Spanned<String>>,
    /// "durable" (default) or "fast".
    pub durability: Option<Spanned<Choice<StoreDurability>>>,
    /// How often fast mode syncs the store's log while writes come in
    /// ("200ms"): what a power loss may take.
    pub flush_interval: Option<Spanned<String>>,
    /// How long finished messages are kept ("7d").
    pub retention: Option<Spanned<String>>,
    /// How long a receipt that matches no message is kept for inspection
    /// ("1h"): one may come before its submit_sm_resp is recorded.
    pub unmatched_grace: Option<Spanned<String>>,
    /// How long a receipt or MO waits for its client before it is dropped
    /// ("7d", as OVH retries).
    pub outbox_max_age: Option<Spanned<String>>,
}

/// `[storage.redis]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    /// `redis://host:port` of the server, or seed addresses of a cluster
    /// (with `cluster = true`; give every primary, the persistence check
    /// covers the addresses given).
    pub addresses: Vec<Spanned<String>>,
    /// A Redis Cluster (slots discovered from the addresses).
    #[serde(default)]
    pub cluster: bool,
    /// Prefix of every key ("tern").
    pub prefix: Option<Spanned<String>>,
    /// ACL user name.
    pub username: Option<Spanned<String>>,
    /// Password: literal, "env:NAME" or "file:/path".
    pub password: Option<Spanned<String>>,
    /// For `rediss://` addresses: a PEM file of the CA certificates the
    /// servers' certificates must chain to (relative to this file); the
    /// system's roots without it.
    pub tls_ca: Option<Spanned<String>>,
    /// "appendfsync-always" (default) or "wait".
    pub durability: Option<Spanned<Choice<RedisDurability>>>,
    /// Replicas a write must reach with `durability = "wait"`.
    pub wait_replicas: Option<u32>,
    /// How long a write waits for them ("1s").
    pub wait_timeout: Option<Spanned<String>>,
    /// How long a node's membership and its upstream session leases last
    /// without renewal ("10s"): how soon another node takes over from a
    /// node that died.
    pub lease_ttl: Option<Spanned<String>>,
}

/// `[[client]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClient {
    /// The bind's system_id.
    pub system_id: Spanned<String>,
    /// Accepted passwords (two during a rotation); each literal, or
    /// "env:NAME", or "file:/path".
    pub passwords: Vec<Spanned<String>>,
    /// Source addresses allowed to bind; empty for any.
    #[serde(default)]
    pub allowed_ips: Vec<Spanned<String>>,
    /// Sessions bound at once.
    pub max_binds: Option<usize>,
    /// Submits per second per session.
    pub session_rate: Option<u32>,
    /// Submits per second for the account.
    pub rate: Option<u32>,
    /// One receipt per part of a message Tern splits upstream, instead of
    /// one for the message once every part is final.
    #[serde(default)]
    pub receipts_per_part: bool,
    /// Receipts carry the upstream vendor's own receipt TLVs as received
    /// (Telesign's MCC, MNC and price).
    #[serde(default)]
    pub vendor_tlvs: bool,
    /// Deliver a concatenated MO as one message once all its parts came.
    #[serde(default)]
    pub mo_reassemble: bool,
    /// How long MO parts wait for the rest before they go as they are
    /// ("10m" unless set).
    pub mo_reassembly_timeout: Option<Spanned<String>>,
    /// "store_and_forward" (default: a submit is answered once stored) or
    /// "transaction" (once an upstream answered it).
    pub submit_mode: Option<Spanned<Choice<SubmitMode>>>,
    /// Transaction mode: how long a submit waits for the upstream before
    /// it is answered as in store-and-forward mode ("10s").
    pub transaction_timeout: Option<Spanned<String>>,
    /// How the client sees Tern's message ids: "hex" (default, 16 digits)
    /// or "decimal" (the 64-bit value, at most 20 digits).
    pub id_format: Option<Spanned<Choice<IdFormat>>>,
    /// Bind types the account may use: any of "transmitter", "receiver",
    /// "transceiver" (all three unless set).
    pub binds: Option<Spanned<Vec<Spanned<Choice<BindName>>>>>,
    /// Submits of the account unanswered at once, over all its sessions;
    /// past it a submit is answered ESME_RMSGQFUL (no limit unless set).
    pub window: Option<Spanned<usize>>,
    /// submit_multi distribution lists (dest_flag 2) this client may name:
    /// list name to member numbers.
    #[serde(default)]
    pub distribution_lists: std::collections::BTreeMap<Spanned<String>, Vec<Spanned<String>>>,
    /// HTTP API credentials (two during a rotation); each literal, or
    /// "env:NAME", or "file:/path": a bearer token, or basic auth's
    /// password with the system_id as user name.
    #[serde(default)]
    pub http_tokens: Vec<Spanned<String>>,
    /// The secret HTTP API receipt webhooks are signed with
    /// (HMAC-SHA256); literal, "env:NAME" or "file:/path".
    pub webhook_secret: Option<Spanned<String>>,
    /// Where callback URLs may point: host names, addresses or networks.
    #[serde(default)]
    pub callback_allow: Vec<Spanned<String>>,
    /// The callback URL of HTTP submits that give none.
    pub callback_url: Option<Spanned<String>>,
    /// A PEM file of CAs trusted for https callbacks besides the public
    /// roots, for webhook receivers with a private CA's certificate.
    pub webhook_ca: Option<Spanned<String>>,
}

/// `[[upstream]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// Name used in routes.
    pub name: Spanned<String>,
    /// Host name (resolved at each connect); with `port`, or else
    /// `simulator`.
    pub host: Option<Spanned<String>>,
    /// Port.
    pub port: Option<u16>,
    /// A `[[simulator]]` by name, instead of `host` and `port`: the
    /// upstream goes wherever that simulator listens, port 0 included.
    pub simulator: Option<Spanned<String>>,
    /// Vendor profile name (built-in or from `profiles`).
    #[serde(default = "generic")]
    pub profile: Spanned<String>,
    /// Bind credentials.
    pub system_id: Spanned<String>,
    /// Literal, "env:NAME" or "file:/path".
    pub password: Spanned<String>,
    /// Bind system_type.
    #[serde(default)]
    pub system_type: String,
    /// "transmitter", "receiver" or "transceiver" (default).
    pub bind: Option<Spanned<Choice<BindName>>>,
    /// Sessions wanted (capped by the profile).
    pub sessions: Option<usize>,
    /// Requests in flight per session: the profile's window unless set
    /// (no more than it), else 10.
    pub window: Option<Spanned<usize>>,
    /// Messages per second for the account (never above the profile's).
    pub rate: Option<Spanned<f64>>,
    /// The vendor account this entry uses, when other entries use it too
    /// from other hosts (Infobip's primary, secondary and TLS endpoints):
    /// entries naming one account share its caps. Default: the entry's
    /// host, port and system_id.
    pub account: Option<Spanned<String>>,
    /// Use TLS.
    #[serde(default)]
    pub tls: bool,
    /// Minimum TLS version; default from the profile, else "1.2".
    pub tls_min_version: Option<Spanned<String>>,
    /// Extra CA (PEM) to trust.
    pub tls_ca: Option<Spanned<String>>,
    /// SNI and verification name, when not `host`.
    pub tls_server_name: Option<String>,
    /// The vendor's name for this data centre, sent as service_type in
    /// every submit_sm so that receipts come back here (Telesign: values
    /// from its support); only for profiles that route receipts so.
    pub receipt_data_centre: Option<Spanned<String>>,
}

fn generic() -> Spanned<String> {
    Spanned::new(0..0, "generic".to_owned())
}

/// One upstream of a route: a name, or a table with priority and weight.
/// (Untagged enums cannot carry spans; errors find the name in the route's
/// `upstreams` array instead.)
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRouteUpstream {
    /// Just the name: priority by position, weight 1.
    Name(String),
    /// Name, priority and weight.
    Full {
        /// The upstream.
        name: String,
        /// Lower first.
        priority: Option<u32>,
        /// Share.
        weight: Option<u32>,
    },
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Name in logs.
    pub name: Spanned<String>,
    /// Client system_ids; empty for all.
    #[serde(default)]
    pub clients: Vec<Spanned<String>>,
    /// Destination prefixes; empty for all.
    #[serde(default)]
    pub prefixes: Vec<Spanned<String>>,
    /// Exact source, or "alphanumeric", "numeric", `"prefix:<p>"`.
    pub source: Option<Spanned<String>>,
    /// data_coding values.
    pub data_codings: Option<Vec<u8>>,
    /// service_type.
    pub service_type: Option<String>,
    /// "failover" (default), "weighted", "least_cost", "least_loaded".
    pub strategy: Option<Spanned<Choice<RouteStrategy>>>,
    /// Where to send.
    pub upstreams: Spanned<Vec<RawRouteUpstream>>,
    /// Receipt reasons that re-send through the next upstream.
    #[serde(default)]
    pub resubmit_on: Vec<Spanned<String>>,
    /// priority_flag values (0 to 3); absent for any.
    pub priority_flags: Option<Vec<Spanned<i64>>>,
    /// esm_class UDHI bit set (true) or clear (false); absent for either.
    pub udh: Option<bool>,
    /// Flash (message class 0) or not; absent for either.
    pub flash: Option<bool>,
    /// When the route applies; absent for always.
    pub time_window: Option<Spanned<RawTimeWindow>>,
}

/// A route's `time_window`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeWindow {
    /// Local days the window opens on ("mon" .. "sun"); absent for every day.
    pub days: Option<Vec<Spanned<String>>>,
    /// Local opening time, "HH:MM" ("00:00" when absent).
    pub from: Option<Spanned<String>>,
    /// Local closing time, "HH:MM", excluded ("24:00" when absent).
    pub to: Option<Spanned<String>>,
    /// IANA time zone name ("UTC" when absent).
    pub time_zone: Option<Spanned<String>>,
}

/// `[router]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRouter {
    /// Upstreams tried per send.
    pub max_attempts: Option<usize>,
    /// Give up a send after ("60s").
    pub deadline: Option<Spanned<String>>,
    /// Wait for a window slot at most ("1s").
    pub window_wait: Option<Spanned<String>>,
    /// First retry delay ("5s").
    pub retry_initial: Option<Spanned<String>>,
    /// Longest retry delay ("10m").
    pub retry_max: Option<Spanned<String>>,
}

/// `[[mo_route]]`: which client an MO message goes to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMoRoute {
    /// Name in logs.
    pub name: Spanned<String>,
    /// Prefixes of the MO's destination_addr (the short code or long
    /// number); empty for any.
    #[serde(default)]
    pub destinations: Vec<Spanned<String>>,
    /// Upstreams the MO may come from; empty for any.
    #[serde(default)]
    pub upstreams: Vec<Spanned<String>>,
    /// The client account it goes to.
    pub client: Spanned<String>,
}

/// A setting whose values are a fixed set, the serde enum `E`. A value
/// outside the set is kept as written rather than failing the parse, so
/// that compiling reports it at its line with what the set is, and goes
/// on to report every other problem of the file too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice<E> {
    /// One of the set.
    Known(E),
    /// Anything else, as written.
    Unknown(String),
}

impl<'de, E: serde::de::DeserializeOwned> Deserialize<'de> for Choice<E> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let known = E::deserialize(
            serde::de::value::StrDeserializer::<serde::de::value::Error>::new(&text),
        );
        Ok(match known {
            Ok(value) => Choice::Known(value),
            Err(_) => Choice::Unknown(text),
        })
    }
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines (the default).
    Text,
    /// One JSON object a line.
    Json,
}

/// `[storage] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageBackend {
    /// sled in `storage.path` (the default).
    Sled,
    /// `[storage.redis]`.
    Redis,
}

/// `[storage] durability` (sled).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreDurability {
    /// Every write flushed before it is answered (the default).
    Durable,
    /// Flushed every `flush_interval`.
    Fast,
}

/// `[storage.redis] durability`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RedisDurability {
    /// The server's `appendfsync always` (the default).
    AppendfsyncAlways,
    /// WAIT for replicas (a single server only).
    Wait,
}

/// A client's `submit_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitMode {
    /// Answered once stored (the default).
    StoreAndForward,
    /// Answered with the upstream's answer.
    Transaction,
}

/// A client's `id_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdFormat {
    /// 16 hexadecimal digits (the default).
    Hex,
    /// Decimal digits.
    Decimal,
}

/// A bind type: an upstream's `bind`, each of a client's `binds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindName {
    /// bind_transmitter.
    Transmitter,
    /// bind_receiver.
    Receiver,
    /// bind_transceiver.
    Transceiver,
}

/// A route's `strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteStrategy {
    /// In priority order (the default).
    Failover,
    /// Spread by weight.
    Weighted,
    /// The cheapest first.
    LeastCost,
    /// The least loaded first.
    LeastLoaded,
}
