//! Compiling a [`RawConfig`] into a [`Config`].

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use tern_codec::COctetString;
use tern_router::account::AccountLimits;
use tern_router::engine::RouterConfig;
use tern_router::profile::BindKind;
use tern_router::strategy::Strategy;
use tern_router::table::{RouteUpstream, Rule, SourceMatch, Table, TimeWindow};
use tern_router::{Profile, ProfileSet, Reason};
use tern_session::esme::BindParams;
use tern_session::throttle::MIN_ADAPTIVE_RATE;
use tern_session::{BindType, SessionConfig};
use tern_storage::{Durability, StoreOptions};
use toml::Spanned;

use super::raw::{BindName, Choice, RawClient, RawClientSessions, RawConfig, RawRouteUpstream};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", file.display())]
pub struct ConfigError {
    /// The file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// Every problem found; the file is refused if there is any.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A password or other secret: never shown in `Debug`, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

/// Where clients connect.
#[derive(Debug, Clone)]
pub struct Listener {
    /// The address.
    pub address: SocketAddr,
    /// Certificate and key files, when TLS.
    pub tls: Option<tern_session::tls::ServerTls>,
}

/// A client account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAccount {
    /// Its system_id.
    pub system_id: String,
    /// Accepted passwords.
    pub passwords: Vec<Secret>,
    /// Allowed source addresses and networks; empty for any.
    pub allowed_ips: Vec<IpNet>,
    /// Sessions bound at once.
    pub max_binds: Option<usize>,
    /// Submits per second per session.
    pub session_rate: Option<NonZeroU32>,
    /// Submits per second for the account.
    pub rate: Option<NonZeroU32>,
    /// Receipts of a message Tern splits upstream: one per part (each with
    /// the SAR TLVs saying which) rather than one for the message, sent
    /// once every part is final with the worst part's outcome.
    pub receipts_per_part: bool,
    /// Receipts carry the upstream vendor's own receipt TLVs as received
    /// (Telesign's MCC 0x0410, MNC 0x0411, price 0x0412): clients that
    /// bill or report by network ask for them; others are not sent tags
    /// they never asked for.
    pub vendor_tlvs: bool,
    /// MO: the parts of a concatenated message are held until all came
    /// and delivered as one message.
    pub mo_reassemble: bool,
    /// MO: how long parts wait for the rest before they go as they are.
    pub mo_reassembly_timeout: Duration,
    /// Transaction mode, with how long a submit waits for the upstream's
    /// answer; `None`: store-and-forward (answered once stored).
    pub transaction: Option<Duration>,
    /// The bind types the account may use; a bind of another type is
    /// refused with ESME_RBINDFAIL, and a reload that takes a type away
    /// unbinds the sessions bound as it.
    pub binds: tern_session::BindTypes,
    /// Submits of the account unanswered at once over all its sessions;
    /// past it a submit is answered ESME_RMSGQFUL. `None`: no account
    /// window (each session's request queue still bounds it).
    pub window: Option<std::num::NonZeroUsize>,
    /// The MO rules whose messages go to this account. They travel with
    /// the account, so a reload swaps both at once and a rule never names
    /// an account that is gone; `MoRoute::order` keeps their place among
    /// all rules.
    pub mo_routes: Vec<MoRoute>,
    /// How the client is shown Tern's message ids (submit and data_sm
    /// responses, receipts, query_sm answers); ids it sends are read in
    /// either form.
    pub id_format: tern_storage::IdFormat,
    /// submit_multi distribution lists (dest_flag 2) the client may name,
    /// each expanded into its members as if listed one by one; a list not
    /// here is refused with ESME_RINVDESTFLAG for that destination.
    pub distribution_lists: std::collections::BTreeMap<String, Vec<tern_codec::Address<21>>>,
    /// HTTP API credentials (`http_tokens`): each a bearer token, or basic
    /// auth's password under the system_id. Two during a rotation; none
    /// means the account cannot use the HTTP API. No two accounts share
    /// one, so a bearer token alone names its account.
    pub http_tokens: Vec<Secret>,
    /// The secret receipt webhooks of HTTP submits are signed with
    /// (`webhook_secret`); none: the account's submits may not ask for a
    /// callback.
    pub webhook_secret: Option<Secret>,
    /// Where callback URLs may point (`callback_allow`): nothing else is
    /// ever called, so the API cannot be used to reach internal addresses.
    pub callback_allow: Vec<CallbackHost>,
    /// The callback URL of HTTP submits that give none (`callback_url`).
    pub callback_url: Option<String>,
    /// Extra CAs for https callbacks (`webhook_ca`), read at load; `None`:
    /// the public roots only.
    pub webhook_ca: Option<WebhookCa>,
}

/// An account's `webhook_ca`: the PEM file as read at load, and the TLS
/// client configuration built from it once (its CAs beside the bundled
/// public roots), so each webhook call only connects. Equal when the file
/// read is (path and content), which is what a reload compares.
#[derive(Clone)]
pub struct WebhookCa {
    /// The file.
    pub file: PemFile,
    /// What https callbacks of the account connect with.
    pub tls: Arc<tokio_rustls::rustls::ClientConfig>,
}

impl PartialEq for WebhookCa {
    fn eq(&self, other: &Self) -> bool {
        self.file == other.file
    }
}

impl Eq for WebhookCa {}

impl std::fmt::Debug for WebhookCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebhookCa({})", self.file.path.display())
    }
}

/// One `callback_allow` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackHost {
    /// A host name, matched exactly (case aside) and never resolved here:
    /// a URL naming an address must match a network entry.
    Name(String),
    /// An address or network.
    Net(IpNet),
}

impl ClientAccount {
    /// `url` as a callback of this account: `http://` or `https://` to a
    /// host its `callback_allow` lists (the same check for both); else
    /// why not.
    pub fn callback(&self, url: &str) -> Result<url::Url, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url:?} is not a URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("{url:?}: callbacks are http:// or https://"));
        }
        let allowed = match parsed.host() {
            Some(url::Host::Domain(name)) => self
                .callback_allow
                .iter()
                .any(|h| matches!(h, CallbackHost::Name(n) if n.eq_ignore_ascii_case(name))),
            Some(url::Host::Ipv4(ip)) => self.callback_net(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.callback_net(IpAddr::V6(ip)),
            None => false,
        };
        if allowed {
            Ok(parsed)
        } else {
            Err(format!(
                "{url:?}: its host is not in the account's callback_allow"
            ))
        }
    }

    fn callback_net(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.callback_allow
            .iter()
            .any(|h| matches!(h, CallbackHost::Net(net) if net.contains(&ip)))
    }
}

/// One `[[mo_route]]`: MO messages it matches go to the account that
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoRoute {
    /// Its name in logs.
    pub name: String,
    /// Its place among all MO rules in the file: the first that matches
    /// wins, whichever account it belongs to.
    pub order: usize,
    /// Prefixes of the MO's destination_addr; empty for any.
    pub destinations: Vec<String>,
    /// Upstreams the MO may come from; empty for any.
    pub upstreams: Vec<String>,
}

impl MoRoute {
    /// Whether an MO from `upstream` to `destination` matches.
    pub fn matches(&self, upstream: &str, destination: &str) -> bool {
        (self.upstreams.is_empty() || self.upstreams.iter().any(|u| u == upstream))
            && (self.destinations.is_empty()
                || self
                    .destinations
                    .iter()
                    .any(|p| destination.starts_with(p.as_str())))
    }
}

/// One `allowed_ips` entry: an address (that host only) or a network in
/// CIDR form. A network with host bits set ("10.1.2.3/8") is refused: it is
/// most likely a typo, and which hosts it meant is a guess.
fn allowed_net(text: &str) -> Result<IpNet, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip.to_canonical()));
    }
    let net: IpNet = text.parse().map_err(|_| {
        format!("{text:?} is not an IP address or network (\"10.0.0.5\", \"10.0.0.0/24\", \"2001:db8::/32\")")
    })?;
    if net != net.trunc() {
        return Err(format!(
            "{text:?} has host bits set; the network is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Requests in flight per upstream session when neither the upstream nor
/// its profile says (SMPP 3.4 leaves it to the parties; 10 is the common
/// default of SMSCs).
pub const DEFAULT_UPSTREAM_WINDOW: usize = 10;

/// How long MO parts wait for the rest unless the account says otherwise.
pub const DEFAULT_MO_REASSEMBLY_TIMEOUT: Duration = Duration::from_secs(600);

/// An upstream, ready to start.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamSpec {
    /// Its name.
    pub name: String,
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The `[[simulator]]` it points at, by name: `host` and `port` are
    /// then that simulator's configured address, and the daemon connects
    /// to where it actually bound (port 0 takes any free port).
    pub simulator: Option<String>,
    /// Its vendor profile.
    pub profile: Arc<Profile>,
    /// The bind.
    pub bind: BindParams,
    /// Sessions (after the profile's cap).
    pub sessions: usize,
    /// Requests in flight per session (after the profile's cap).
    pub window: usize,
    /// Messages per second for the account (at most the profile's).
    pub rate: Option<f64>,
    /// The vendor account it uses: the configured `account`, or
    /// `host:port/system_id`. Entries with one account share its caps
    /// (tern_router::account).
    pub account: String,
    /// TLS settings, when used.
    pub tls: Option<tern_session::tls::ClientTls>,
}

/// A sandbox SMSC to start in-process (only with the `sandbox` feature).
#[cfg(feature = "sandbox")]
#[derive(Debug, Clone)]
pub struct SimulatorSpec {
    /// Its name.
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// How it behaves.
    pub behaviour: tern_sim::smsc::Behaviour,
    /// TLS certificate and version range, when it serves over TLS.
    pub tls: Option<tern_sim::smsc::SimTls>,
}

/// The octets of a config file. Its `Debug` shows only their number: the
/// file holds passwords that `Config`'s `Debug` otherwise hides.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceText(pub Vec<u8>);

impl std::fmt::Debug for SourceText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} octets>", self.0.len())
    }
}

/// The configuration the daemon runs with.
#[derive(Debug)]
pub struct Config {
    /// The file it came from.
    pub source: PathBuf,
    /// The text it was compiled from: the reload's file watch compares the
    /// file with this, so a change written after the daemon read its
    /// config, but before the watch started, is still seen.
    pub source_text: SourceText,
    /// Node id in message ids.
    pub node_id: u16,
    /// Tern's system_id.
    pub system_id: COctetString<16>,
    /// Client listeners.
    pub listeners: Vec<Listener>,
    /// HTTP API listeners (`[[http_listener]]`), apart from the admin one.
    pub http_listeners: Vec<Listener>,
    /// Store directory.
    pub store_path: PathBuf,
    /// Store options.
    pub store: StoreOptions,
    /// sled or Redis.
    pub backend: Backend,
    /// How long finished messages are kept.
    pub retention: Duration,
    /// How long unmatched receipts are kept.
    pub unmatched_grace: Duration,
    /// How long the outbox keeps what a client has not taken.
    pub outbox_max_age: Duration,
    /// Vendor profiles, built-in and from files.
    pub profiles: ProfileSet,
    /// Client accounts.
    pub clients: Vec<ClientAccount>,
    /// Upstreams.
    pub upstreams: Vec<UpstreamSpec>,
    /// Routes.
    pub table: Table,
    /// Failover settings.
    pub router: RouterConfig,
    /// Sandbox SMSCs to start first.
    #[cfg(feature = "sandbox")]
    pub simulators: Vec<SimulatorSpec>,
    /// The admin HTTP listener, when configured.
    pub admin: Option<SocketAddr>,
    /// The token every admin request must carry (`[admin] token`); `None`
    /// only on a loopback listener, where the host's users are trusted.
    pub admin_token: Option<Secret>,
    /// Logging.
    pub log: LogSettings,
    /// The failed-bind guard of the client listeners (`None`: off).
    pub bind_guard: Option<tern_session::abuse::GuardConfig>,
    /// Timers and limits of every client session (`[client_sessions]`).
    pub client_sessions: SessionConfig,
}

/// How the daemon logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines instead of text.
    pub json: bool,
    /// The tracing filter ("info" unless set).
    pub level: String,
}

/// Which store a node runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// sled in `store_path` (the default).
    Sled,
    /// A Redis server or cluster shared with other nodes.
    Redis(RedisSettings),
}

/// `[storage.redis]`, checked.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// `redis://` (or `rediss://`) addresses, credentials not included.
    pub addresses: Vec<String>,
    /// A Redis Cluster.
    pub cluster: bool,
    /// Key prefix.
    pub prefix: String,
    /// ACL user.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// CA certificates for `rediss://`, when not the system's.
    pub tls_ca: Option<PemFile>,
    /// When a write counts as done.
    pub durability: tern_storage::RedisDurability,
    /// Membership and upstream lease time.
    pub lease_ttl: Duration,
}

/// A PEM file read at load: `Debug` shows its path, not its content.
#[derive(Clone, PartialEq, Eq)]
pub struct PemFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its content.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for PemFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemFile({})", self.path.display())
    }
}

impl RedisSettings {
    /// The addresses with the credentials in them, percent-encoded, as the
    /// Redis client reads them. Never log these.
    pub fn connect_addresses(&self) -> Vec<String> {
        let userinfo = match (&self.username, &self.password) {
            (None, None) => return self.addresses.clone(),
            (user, password) => format!(
                "{}:{}@",
                percent_encode(user.as_deref().unwrap_or("")),
                percent_encode(password.as_ref().map_or("", |p| p.expose()))
            ),
        };
        self.addresses
            .iter()
            .map(|a| match a.split_once("://") {
                Some((scheme, rest)) => format!("{scheme}://{userinfo}{rest}"),
                None => a.clone(),
            })
            .collect()
    }
}

/// RFC 3986 percent-encoding of everything but unreserved characters.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where the admin listener goes when `[admin]` gives no address.
pub const DEFAULT_ADMIN: &str = "127.0.0.1:9775";

/// Finds line and column of byte offsets in one file's text.
struct Locator<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<ConfigError>,
}

impl Locator<'_> {
    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            message: message.into(),
        });
    }

    fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        match value {
            None => default,
            Some(v) => humantime::parse_duration(v.get_ref()).unwrap_or_else(|e| {
                self.at(
                    v.span(),
                    format!(
                        "{what}: {:?} is not a duration ({e}); write e.g. \"30s\" or \"5m\"",
                        v.get_ref()
                    ),
                );
                default
            }),
        }
    }

    /// A duration that must not be zero.
    fn positive_duration(
        &mut self,
        value: &Option<Spanned<String>>,
        default: Duration,
        what: &str,
    ) -> Duration {
        let duration = self.duration(value, default, what);
        match value {
            Some(v) if duration.is_zero() => {
                self.at(v.span(), format!("{what}: must be more than 0s"));
                default
            }
            _ => duration,
        }
    }

    /// A duration, or "off" for none; "0s" is refused as ambiguous.
    fn optional_duration(
        &mut self,
        value: &Option<Spanned<String>>,
        default: Option<Duration>,
        what: &str,
    ) -> Option<Duration> {
        match value {
            None => default,
            Some(v) if v.get_ref().trim() == "off" => None,
            Some(v) => match humantime::parse_duration(v.get_ref()) {
                Ok(duration) if !duration.is_zero() => Some(duration),
                Ok(_) => {
                    self.at(
                        v.span(),
                        format!("{what}: write \"off\" for none, or a duration above 0s"),
                    );
                    default
                }
                Err(e) => {
                    self.at(
                        v.span(),
                        format!(
                            "{what}: {:?} is not a duration ({e}); write e.g. \"30s\", or \"off\"",
                            v.get_ref()
                        ),
                    );
                    default
                }
            },
        }
    }

    /// `path` as written in the file: relative to the file's folder.
    fn relative(&self, path: impl AsRef<Path>) -> PathBuf {
        self.file.parent().unwrap_or(Path::new(".")).join(path)
    }

    /// A `host:port` address of a `what` section, or an error at its place
    /// ending in `example`.
    fn socket_address(
        &mut self,
        value: &Spanned<String>,
        what: &str,
        example: &str,
    ) -> Option<SocketAddr> {
        let parsed = value.get_ref().parse::<SocketAddr>().ok();
        if parsed.is_none() {
            self.at(
                value.span(),
                format!(
                    "{what} address {:?}: expected host:port{example}",
                    value.get_ref()
                ),
            );
        }
        parsed
    }

    /// A TLS version (`what`: the key), in any spelling
    /// [`tern_session::tls::TlsVersion`] reads, or an error at its place.
    fn tls_version(
        &mut self,
        value: &Spanned<String>,
        what: &str,
    ) -> Option<tern_session::tls::TlsVersion> {
        let parsed = value.get_ref().parse().ok();
        if parsed.is_none() {
            self.at(
                value.span(),
                format!("{what} {:?}: expected \"1.2\" or \"1.3\"", value.get_ref()),
            );
        }
        parsed
    }

    /// One of a fixed set, or an error at its place naming the key
    /// (`what`), the value as written and the set (`expected`).
    fn known<E: Copy>(
        &mut self,
        value: &Spanned<Choice<E>>,
        what: &str,
        expected: &str,
    ) -> Option<E> {
        match value.get_ref() {
            Choice::Known(known) => Some(*known),
            Choice::Unknown(text) => {
                self.at(
                    value.span(),
                    format!("{what} {text:?}: expected {expected}"),
                );
                None
            }
        }
    }

    /// [`Locator::known`] for a setting that may be left out: `default`
    /// then, and when the value is none of the set.
    fn choice<E: Copy>(
        &mut self,
        value: &Option<Spanned<Choice<E>>>,
        default: E,
        what: &str,
        expected: &str,
    ) -> E {
        value
            .as_ref()
            .and_then(|v| self.known(v, what, expected))
            .unwrap_or(default)
    }

    /// A secret: literal, "env:NAME" or "file:/path" (relative to the config).
    fn secret(&mut self, value: &Spanned<String>, what: &str) -> Secret {
        let raw = value.get_ref();
        if let Some(name) = raw.strip_prefix("env:") {
            return match std::env::var(name) {
                Ok(v) => Secret(v),
                Err(_) => {
                    self.at(
                        value.span(),
                        format!("{what}: environment variable {name} is not set"),
                    );
                    Secret(String::new())
                }
            };
        }
        if let Some(path) = raw.strip_prefix("file:") {
            let path = self.relative(path);
            return match std::fs::read_to_string(&path) {
                Ok(v) => Secret(v.trim_end_matches(['\r', '\n']).to_owned()),
                Err(e) => {
                    self.at(
                        value.span(),
                        format!("{what}: cannot read {}: {e}", path.display()),
                    );
                    Secret(String::new())
                }
            };
        }
        Secret(raw.clone())
    }
}

impl Config {
    /// Reads and compiles `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 1,
                column: 1,
                message: format!("cannot read the file: {e}"),
            }])
        })?;
        Config::from_text(path, &text)
    }

    /// Compiles the text of `file`.
    pub fn from_text(file: &Path, text: &str) -> Result<Config, ConfigErrors> {
        let mut loc = Locator {
            file,
            text,
            errors: Vec::new(),
        };
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                loc.at(e.span().unwrap_or(0..0), e.message());
                return Err(ConfigErrors(loc.errors));
            }
        };
        let config = compile(raw, &mut loc);
        if loc.errors.is_empty() {
            config.ok_or_else(|| ConfigErrors(Vec::new()))
        } else {
            Err(ConfigErrors(loc.errors))
        }
    }
}

/// A `[[simulator]]`'s TLS keys: both files or neither, versions that
/// parse, and a range that is not empty. Paths are relative to the file;
/// they are read when the simulator starts, as a listener's are.
#[cfg(feature = "sandbox")]
fn simulator_tls(
    sim: &super::raw::RawSimulator,
    loc: &mut Locator<'_>,
) -> Option<tern_sim::smsc::SimTls> {
    let mut version = |value: &Option<Spanned<String>>, what: &str| {
        let v = value.as_ref()?;
        loc.tls_version(v, what).map(|version| (version, v.span()))
    };
    let min = version(&sim.tls_min_version, "tls_min_version");
    let max = version(&sim.tls_max_version, "tls_max_version");
    let (cert, key) = match (&sim.tls_cert, &sim.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            let stray = [&sim.tls_min_version, &sim.tls_max_version]
                .into_iter()
                .flatten()
                .next();
            if let Some(stray) = stray {
                loc.at(
                    stray.span(),
                    format!(
                        "simulator {}: a TLS version without tls_cert and tls_key",
                        sim.name
                    ),
                );
            }
            return None;
        }
        (Some(one), None) | (None, Some(one)) => {
            loc.at(
                one.span(),
                format!(
                    "simulator {}: a TLS simulator needs both tls_cert and tls_key",
                    sim.name
                ),
            );
            return None;
        }
    };
    let mut tls =
        tern_sim::smsc::SimTls::new(loc.relative(cert.get_ref()), loc.relative(key.get_ref()));
    if let Some((min, _)) = min {
        tls.min_version = min;
    }
    if let Some((max, _)) = max {
        tls.max_version = max;
    }
    if tls.min_version > tls.max_version {
        let span = max.or(min).map_or(cert.span(), |(_, span)| span);
        loc.at(
            span,
            format!(
                "simulator {}: tls_min_version {} is above tls_max_version {}",
                sim.name, tls.min_version, tls.max_version
            ),
        );
    }
    Some(tls)
}

/// The `[[simulator]]` sections: an address that parses, a behaviour the
/// simulator accepts, TLS keys that go together.
#[cfg(feature = "sandbox")]
fn simulators(raw: &[super::raw::RawSimulator], loc: &mut Locator<'_>) -> Vec<SimulatorSpec> {
    let mut simulators = Vec::new();
    for sim in raw {
        let Some(address) = loc.socket_address(&sim.address, "simulator", "") else {
            continue;
        };
        let mut behaviour = tern_sim::smsc::Behaviour::default();
        if sim.reject_fraction > 0.0 {
            behaviour.reject = Some(tern_sim::smsc::Reject {
                fraction: sim.reject_fraction,
                status: tern_codec::CommandStatus::from_code(sim.reject_status),
            });
        }
        behaviour.receipts.delay = loc.duration(
            &sim.receipt_delay,
            Duration::from_millis(500),
            "simulator.receipt_delay",
        );
        if let Err(e) = behaviour.validate() {
            loc.at(sim.address.span(), format!("simulator {}: {e}", sim.name));
        }
        let tls = simulator_tls(sim, loc);
        simulators.push(SimulatorSpec {
            name: sim.name.clone(),
            address,
            behaviour,
            tls,
        });
    }
    simulators
}

/// Without the `sandbox` feature there is no simulator to start, so each
/// `[[simulator]]` section is an error at its address, saying so.
#[cfg(not(feature = "sandbox"))]
fn refuse_simulators(raw: &[super::raw::RawSimulator], loc: &mut Locator<'_>) {
    for sim in raw {
        let missing = crate::sandbox::Missing {
            needs: crate::sandbox::Needs::Section,
        };
        loc.at(
            sim.address.span(),
            format!("simulator {}: {missing}", sim.name),
        );
    }
}

/// Whether an upstream's `host` is this machine ("localhost" or a loopback
/// address): plain TCP there never crosses a network.
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Compiles every section in the order the file's errors are reported:
/// node, listeners, storage, profiles, clients, upstreams, MO routes,
/// routes, router, simulators, admin, log, bind guard, client sessions.
fn compile(raw: RawConfig, loc: &mut Locator<'_>) -> Option<Config> {
    let system_id = node_system_id(&raw, loc);
    let (listeners, http_listeners) = (
        listeners(&raw.listeners, "listener", loc),
        listeners(&raw.http_listeners, "http_listener", loc),
    );
    let storage = storage(&raw, loc);
    let profiles = profiles(&raw, loc)?;
    let mut clients = clients(&raw, loc);
    let (upstreams, service_types) = upstreams(&raw, &profiles, loc);
    mo_routes(&raw, &mut clients, loc);
    let table = routes(&raw, &clients, loc)?;
    let router = router(&raw, service_types, loc);
    #[cfg(feature = "sandbox")]
    let simulators = simulators(&raw.simulators, loc);
    #[cfg(not(feature = "sandbox"))]
    refuse_simulators(&raw.simulators, loc);
    let (admin, admin_token) = admin(&raw, loc);
    let log = log(&raw, loc);
    let bind_guard = bind_guard(&raw, loc);
    let client_sessions = client_sessions(&raw.client_sessions, loc);
    Some(Config {
        source: loc.file.to_path_buf(),
        source_text: SourceText(loc.text.as_bytes().to_vec()),
        bind_guard,
        client_sessions,
        admin,
        admin_token,
        log,
        node_id: raw.node.id,
        system_id,
        listeners,
        http_listeners,
        store_path: storage.path,
        store: StoreOptions {
            node: raw.node.id,
            durability: storage.durability,
            ..StoreOptions::default()
        },
        backend: storage.backend,
        retention: storage.retention,
        unmatched_grace: storage.unmatched_grace,
        outbox_max_age: storage.outbox_max_age,
        profiles,
        clients,
        upstreams,
        table,
        router,
        #[cfg(feature = "sandbox")]
        simulators,
    })
}

/// `[node] system_id`: "tern" unless set, at most 15 characters.
fn node_system_id(raw: &RawConfig, loc: &mut Locator<'_>) -> COctetString<16> {
    match &raw.node.system_id {
        None => COctetString::try_from("tern").unwrap_or_default(),
        Some(id) => COctetString::try_from(id.get_ref().as_str()).unwrap_or_else(|e| {
            loc.at(id.span(), format!("node.system_id: {e}"));
            COctetString::empty()
        }),
    }
}

/// The `[[listener]]` (or `[[http_listener]]`: `what`) sections; one whose
/// address does not parse is left out (its error is reported).
fn listeners(raw: &[super::raw::RawListener], what: &str, loc: &mut Locator<'_>) -> Vec<Listener> {
    let mut listeners = Vec::new();
    for l in raw {
        let example = ", e.g. \"127.0.0.1:2775\"";
        let Some(address) = loc.socket_address(&l.address, what, example) else {
            continue;
        };
        let tls = listener_tls(l, loc);
        listeners.push(Listener { address, tls });
    }
    listeners
}

/// A listener's TLS keys: both files or neither; paths relative to the file.
fn listener_tls(
    l: &super::raw::RawListener,
    loc: &mut Locator<'_>,
) -> Option<tern_session::tls::ServerTls> {
    match (&l.tls_cert, &l.tls_key) {
        (None, None) => None,
        (Some(cert), Some(key)) => {
            let mut tls = tern_session::tls::ServerTls::new(
                loc.relative(cert.get_ref()),
                loc.relative(key.get_ref()),
            );
            if let Some(v) = &l.tls_min_version {
                if let Some(version) = loc.tls_version(v, "tls_min_version") {
                    tls.min_version = version;
                }
            }
            Some(tls)
        }
        (Some(one), None) | (None, Some(one)) => {
            loc.at(one.span(), "a TLS listener needs both tls_cert and tls_key");
            None
        }
    }
}

/// `[storage]`, checked: what [`Config`] spreads over several fields.
struct StorageSection {
    path: PathBuf,
    durability: Durability,
    backend: Backend,
    retention: Duration,
    unmatched_grace: Duration,
    outbox_max_age: Duration,
}

/// `[storage]`: the path relative to the file, durability, backend and
/// the retention times.
fn storage(raw: &RawConfig, loc: &mut Locator<'_>) -> StorageSection {
    let path = raw
        .storage
        .path
        .as_ref()
        .map_or_else(|| PathBuf::from("./data"), |p| loc.relative(p.get_ref()));
    let durability = storage_durability(raw, loc);
    let backend = storage_backend(raw, loc);
    let retention = loc.duration(
        &raw.storage.retention,
        Duration::from_secs(7 * 24 * 3600),
        "storage.retention",
    );
    let unmatched_grace = loc.duration(
        &raw.storage.unmatched_grace,
        Duration::from_secs(3600),
        "storage.unmatched_grace",
    );
    let outbox_max_age = loc.duration(
        &raw.storage.outbox_max_age,
        Duration::from_secs(7 * 24 * 3600),
        "storage.outbox_max_age",
    );
    StorageSection {
        path,
        durability,
        backend,
        retention,
        unmatched_grace,
        outbox_max_age,
    }
}

/// `storage.durability`: "durable" unless set; "fast" flushes every
/// `flush_interval`.
fn storage_durability(raw: &RawConfig, loc: &mut Locator<'_>) -> Durability {
    use super::raw::StoreDurability;
    match loc.choice(
        &raw.storage.durability,
        StoreDurability::Durable,
        "storage.durability",
        "\"durable\" or \"fast\"",
    ) {
        StoreDurability::Durable => Durability::Durable,
        StoreDurability::Fast => Durability::Fast {
            interval: loc.duration(
                &raw.storage.flush_interval,
                Duration::from_millis(200),
                "storage.flush_interval",
            ),
        },
    }
}

/// The built-in profiles and the `profiles` files (relative to the file);
/// `None` only if the built-in ones do not load.
fn profiles(raw: &RawConfig, loc: &mut Locator<'_>) -> Option<ProfileSet> {
    let mut profiles = match ProfileSet::builtin() {
        Ok(set) => set,
        Err(e) => {
            loc.at(0..0, format!("built-in profiles: {e}"));
            return None;
        }
    };
    for file in &raw.profiles {
        let path = loc.relative(file.get_ref());
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                if let Err(e) = profiles.add_user(&path.display().to_string(), &text) {
                    // The profile file's own position is in the message.
                    loc.at(file.span(), e.to_string());
                }
            }
            Err(e) => loc.at(
                file.span(),
                format!("cannot read profile {}: {e}", path.display()),
            ),
        }
    }
    Some(profiles)
}

/// The `[[client]]` accounts (their MO routes are added later).
fn clients(raw: &RawConfig, loc: &mut Locator<'_>) -> Vec<ClientAccount> {
    let mut clients: Vec<ClientAccount> = Vec::new();
    for c in &raw.clients {
        if clients
            .iter()
            .any(|k| k.system_id == *c.system_id.get_ref())
        {
            loc.at(
                c.system_id.span(),
                format!("client {:?} is defined twice", c.system_id.get_ref()),
            );
        }
        clients.push(client_account(c, loc));
    }
    http_tokens(raw, &mut clients, loc);
    for (c, account) in raw.clients.iter().zip(clients.iter_mut()) {
        webhooks(c, account, loc);
    }
    clients
}

/// Reads each account's `http_tokens` (literal, env: or file:): none
/// empty, none given to two accounts, since a bearer token alone says
/// which account a request is from. Each problem at the token.
fn http_tokens(raw: &RawConfig, clients: &mut [ClientAccount], loc: &mut Locator<'_>) {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (c, account) in raw.clients.iter().zip(clients.iter_mut()) {
        for written in &c.http_tokens {
            let before = loc.errors.len();
            let token = loc.secret(written, "client http token");
            if loc.errors.len() > before {
                continue;
            }
            let owner = seen.iter().find(|(t, _)| t == token.expose());
            if token.expose().is_empty() {
                loc.at(
                    written.span(),
                    format!("client {:?}: an HTTP token is empty", account.system_id),
                );
            } else if let Some((_, owner)) = owner {
                loc.at(
                    written.span(),
                    format!(
                        "client {:?}: this HTTP token is also client {owner:?}'s; a token must name one account",
                        account.system_id
                    ),
                );
            } else {
                seen.push((token.expose().to_owned(), account.system_id.clone()));
                account.http_tokens.push(token);
            }
        }
    }
}

/// An account's receipt webhooks: the secret (required by the other two
/// keys), the allow-list (names, addresses or networks) and a default
/// callback URL the allow-list admits.
fn webhooks(c: &RawClient, account: &mut ClientAccount, loc: &mut Locator<'_>) {
    if let Some(written) = &c.webhook_secret {
        let before = loc.errors.len();
        let secret = loc.secret(written, "client webhook_secret");
        if loc.errors.len() == before && secret.expose().is_empty() {
            loc.at(written.span(), "client webhook_secret: empty");
        }
        account.webhook_secret = Some(secret);
    }
    for entry in &c.callback_allow {
        let text = entry.get_ref().trim();
        let host = if text.parse::<IpAddr>().is_ok() || text.contains('/') {
            allowed_net(text).map(CallbackHost::Net)
        } else if !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
        {
            Ok(CallbackHost::Name(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "callback_allow {text:?}: expected a host name, an address or a network"
            ))
        };
        match host {
            Ok(host) => account.callback_allow.push(host),
            Err(message) => loc.at(entry.span(), message),
        }
    }
    if let Some(file) = &c.webhook_ca {
        account.webhook_ca = webhook_ca(file, loc);
    }
    let stray = c
        .callback_url
        .as_ref()
        .map(Spanned::span)
        .or_else(|| c.callback_allow.first().map(Spanned::span))
        .or_else(|| c.webhook_ca.as_ref().map(Spanned::span));
    if let (None, Some(span)) = (&c.webhook_secret, stray) {
        loc.at(
            span,
            format!(
                "client {:?}: callbacks need a webhook_secret to sign them",
                account.system_id
            ),
        );
    }
    if let Some(url) = &c.callback_url {
        match account.callback(url.get_ref()) {
            Ok(_) => account.callback_url = Some(url.get_ref().clone()),
            Err(message) => loc.at(url.span(), format!("callback_url: {message}")),
        }
    }
}

/// `webhook_ca`: a PEM file with at least one CA certificate, read and
/// turned into the TLS configuration of the account's https callbacks at
/// load, so a missing or bad file is an error at the key, not a failed
/// receipt later.
fn webhook_ca(file: &Spanned<String>, loc: &mut Locator<'_>) -> Option<WebhookCa> {
    let path = loc.relative(file.get_ref());
    let read = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()));
    let built = read.and_then(|pem| {
        let tls = tern_session::tls::ClientTls {
            extra_ca_pem: Some(path.clone()),
            ..Default::default()
        };
        let tls = tls.config().map_err(|e| e.to_string())?;
        Ok(WebhookCa {
            file: PemFile { path, pem },
            tls,
        })
    });
    built
        .map_err(|why| loc.at(file.span(), format!("webhook_ca: {why}")))
        .ok()
}

/// One `[[client]]`, each value checked at its line.
fn client_account(c: &RawClient, loc: &mut Locator<'_>) -> ClientAccount {
    if c.passwords.is_empty() {
        loc.at(
            c.system_id.span(),
            format!("client {:?} has no password", c.system_id.get_ref()),
        );
    }
    let passwords = c
        .passwords
        .iter()
        .map(|p| loc.secret(p, "client password"))
        .collect();
    let allowed_ips = c
        .allowed_ips
        .iter()
        .filter_map(|ip| match allowed_net(ip.get_ref()) {
            Ok(net) => Some(net),
            Err(message) => {
                loc.at(ip.span(), message);
                None
            }
        })
        .collect();
    let mo_reassembly_timeout = loc.duration(
        &c.mo_reassembly_timeout,
        DEFAULT_MO_REASSEMBLY_TIMEOUT,
        "client.mo_reassembly_timeout",
    );
    if let (Some(at), true) = (&c.mo_reassembly_timeout, mo_reassembly_timeout.is_zero()) {
        loc.at(
            at.span(),
            "client.mo_reassembly_timeout: must be more than 0s (parts wait that long for the rest)",
        );
    }
    let transaction = submit_mode(c, loc);
    let (binds, window) = (client_binds(c, loc), client_window(c, loc));
    ClientAccount {
        system_id: c.system_id.get_ref().clone(),
        passwords,
        allowed_ips,
        max_binds: c.max_binds,
        session_rate: c.session_rate.and_then(NonZeroU32::new),
        rate: c.rate.and_then(NonZeroU32::new),
        receipts_per_part: c.receipts_per_part,
        vendor_tlvs: c.vendor_tlvs,
        mo_reassemble: c.mo_reassemble,
        mo_reassembly_timeout,
        transaction,
        binds,
        window,
        mo_routes: Vec::new(),
        id_format: id_format(c, loc),
        distribution_lists: distribution_lists(c, loc),
        // Read with every account's at hand (`http_tokens`).
        http_tokens: Vec::new(),
        webhook_secret: None,
        callback_allow: Vec::new(),
        callback_url: None,
        webhook_ca: None,
    }
}

/// The `[[upstream]]` entries, and the receipt data centres the router
/// sends as service_type (by upstream name).
fn upstreams(
    raw: &RawConfig,
    profiles: &ProfileSet,
    loc: &mut Locator<'_>,
) -> (Vec<UpstreamSpec>, Vec<(String, COctetString<6>)>) {
    let mut upstreams: Vec<UpstreamSpec> = Vec::new();
    let mut service_types = Vec::new();
    for u in &raw.upstreams {
        let name = u.name.get_ref();
        if upstreams.iter().any(|k| k.name == *name) {
            loc.at(u.name.span(), format!("upstream {name:?} is defined twice"));
        }
        let Some(profile) = profiles.get(u.profile.get_ref()) else {
            loc.at(
                u.profile.span(),
                format!(
                    "unknown profile {:?}; known: {}",
                    u.profile.get_ref(),
                    profiles.names().collect::<Vec<_>>().join(", ")
                ),
            );
            continue;
        };
        let Some(endpoint) = upstream_endpoint(u, &raw.simulators, loc) else {
            continue;
        };
        let Some(bind) = upstream_bind(u, profile, loc) else {
            continue;
        };
        if let Some(value) = receipt_data_centre(u, profile, loc) {
            service_types.push((name.clone(), value));
        }
        upstreams.push(upstream(u, endpoint, profile, bind, loc));
    }
    (upstreams, service_types)
}

/// Where an upstream connects, as configured.
struct Endpoint {
    host: String,
    port: u16,
    /// The `[[simulator]]` named instead of `host` and `port`.
    simulator: Option<String>,
}

/// An upstream's `host` and `port`, or the `[[simulator]]` it names
/// instead (whose configured address stands in until the daemon knows
/// where it bound); `None`, with the error, when it gives neither, both,
/// or a simulator no section defines.
fn upstream_endpoint(
    u: &super::raw::RawUpstream,
    simulators: &[super::raw::RawSimulator],
    loc: &mut Locator<'_>,
) -> Option<Endpoint> {
    let name = u.name.get_ref();
    match (&u.simulator, &u.host, u.port) {
        (None, Some(host), Some(port)) => Some(Endpoint {
            host: host.get_ref().clone(),
            port,
            simulator: None,
        }),
        (None, _, _) => {
            loc.at(
                u.name.span(),
                format!("upstream {name}: give host and port, or simulator = \"NAME\""),
            );
            None
        }
        (Some(sim), None, None) => {
            let Some(section) = simulators.iter().find(|s| s.name == *sim.get_ref()) else {
                let known: Vec<&str> = simulators.iter().map(|s| s.name.as_str()).collect();
                loc.at(
                    sim.span(),
                    format!(
                        "upstream {name}: no [[simulator]] named {:?}; defined: {}",
                        sim.get_ref(),
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
                return None;
            };
            // An address that does not parse is the simulator section's
            // own error; this one need not say it again.
            let address: SocketAddr = section.address.get_ref().parse().ok()?;
            Some(Endpoint {
                host: address.ip().to_string(),
                port: address.port(),
                simulator: Some(sim.get_ref().clone()),
            })
        }
        (Some(sim), _, _) => {
            loc.at(
                sim.span(),
                format!("upstream {name}: give simulator, or host and port, not both"),
            );
            None
        }
    }
}

/// The vendor account of an upstream that names none: its address and
/// system_id, or for a simulator its name (its port may be 0 until it
/// binds, which would make every such upstream one account). The one rule
/// for compiling and for `check-config --diff`.
pub(super) fn default_account(
    simulator: Option<&str>,
    host: &str,
    port: u16,
    system_id: impl std::fmt::Display,
) -> String {
    match simulator {
        Some(sim) => format!("simulator {sim}/{system_id}"),
        None => format!("{host}:{port}/{system_id}"),
    }
}

/// An upstream's bind: credentials that fit SMPP, a bind type its profile
/// takes, the system_type; `None` when the credentials do not fit.
fn upstream_bind(
    u: &super::raw::RawUpstream,
    profile: &Profile,
    loc: &mut Locator<'_>,
) -> Option<BindParams> {
    let name = u.name.get_ref();
    let password = loc.secret(&u.password, "upstream password");
    if let Err(e) = COctetString::<16>::try_from(u.system_id.get_ref().as_str()) {
        loc.at(
            u.system_id.span(),
            format!("upstream {name}: system_id: {e} (SMPP allows 15 characters)"),
        );
        return None;
    }
    // The error never repeats the password itself.
    if let Err(e) = COctetString::<9>::try_from(password.expose()) {
        loc.at(
            u.password.span(),
            format!("upstream {name}: password: {e} (SMPP allows 8 characters)"),
        );
        return None;
    }
    let mut bind = BindParams::new(u.system_id.get_ref(), password.expose()).ok()?;
    bind.bind_type = upstream_bind_type(u, profile, loc);
    if let Ok(system_type) = COctetString::try_from(u.system_type.as_str()) {
        bind.system_type = system_type;
    }
    // A bind response without sc_interface_version: no TLVs (3.3)
    // unless the vendor's document says its SMSC takes them anyway.
    if profile.version.tlvs_without_interface_version {
        bind.peer_version_if_unannounced = tern_codec::InterfaceVersion::V34;
    }
    Some(bind)
}

/// An upstream's `bind`: transceiver unless set, and one its profile takes.
fn upstream_bind_type(
    u: &super::raw::RawUpstream,
    profile: &Profile,
    loc: &mut Locator<'_>,
) -> BindType {
    let bind_type = bind_type(loc.choice(&u.bind, BindName::Transceiver, "bind", BIND_NAMES));
    // The vendor's document lists the bind types it takes (Mensatek:
    // transceiver only): another would be refused at every bind.
    let kind = match bind_type {
        BindType::Transmitter => BindKind::Transmitter,
        BindType::Receiver => BindKind::Receiver,
        BindType::Transceiver => BindKind::Transceiver,
    };
    if !profile.bind_types.contains(&kind) {
        let span = u.bind.as_ref().map_or(u.profile.span(), |b| b.span());
        let allowed: Vec<&str> = profile.bind_types.iter().map(|b| b.as_str()).collect();
        loc.at(
            span,
            format!(
                "upstream {}: bind {:?}: profile {:?} takes only {allowed:?}",
                u.name.get_ref(),
                kind.as_str(),
                profile.name
            ),
        );
    }
    bind_type
}

/// An upstream's `receipt_data_centre`, for profiles that route receipts
/// by the submit's service_type.
fn receipt_data_centre(
    u: &super::raw::RawUpstream,
    profile: &Profile,
    loc: &mut Locator<'_>,
) -> Option<COctetString<6>> {
    let centre = u.receipt_data_centre.as_ref()?;
    let name = u.name.get_ref();
    if profile.system_type.submit_service_type.is_none() {
        loc.at(
            centre.span(),
            format!(
                "upstream {name}: receipt_data_centre: profile {:?} does not route receipts by the submit's service_type",
                profile.name
            ),
        );
        return None;
    }
    COctetString::<6>::try_from(centre.get_ref().as_str())
        .map_err(|e| {
            loc.at(
                centre.span(),
                format!(
                    "upstream {name}: receipt_data_centre: {e} (service_type allows 5 characters)"
                ),
            );
        })
        .ok()
}

/// The rest of an `[[upstream]]` once its bind is known: window, TLS,
/// sessions, rate and account, each within its profile's limits.
fn upstream(
    u: &super::raw::RawUpstream,
    endpoint: Endpoint,
    profile: &Profile,
    bind: BindParams,
    loc: &mut Locator<'_>,
) -> UpstreamSpec {
    let window = upstream_window(u, profile, loc);
    let tls = upstream_tls(u, &endpoint.host, profile, loc);
    let cap = profile
        .limits
        .sessions_per_credential
        .map_or(usize::MAX, |n| n as usize);
    let sessions = u.sessions.unwrap_or(1).clamp(1, cap.max(1));
    let rate = upstream_rate(u, profile, sessions, loc);
    let account = match &u.account {
        Some(a) if a.get_ref().trim().is_empty() => {
            loc.at(
                a.span(),
                "account \"\": name the vendor account, or leave it out",
            );
            String::new()
        }
        Some(a) => a.get_ref().clone(),
        None => default_account(
            endpoint.simulator.as_deref(),
            &endpoint.host,
            endpoint.port,
            u.system_id.get_ref(),
        ),
    };
    UpstreamSpec {
        account,
        name: u.name.get_ref().clone(),
        host: endpoint.host,
        port: endpoint.port,
        simulator: endpoint.simulator,
        profile: Arc::new(profile.clone()),
        bind,
        sessions,
        window,
        rate,
        tls,
    }
}

/// An upstream's `window`. A vendor's window is a limit of its account:
/// asking for more is an error, not a silent cap (it would be refused at
/// runtime).
fn upstream_window(u: &super::raw::RawUpstream, profile: &Profile, loc: &mut Locator<'_>) -> usize {
    let profile_window = profile.limits.window.map(|w| w as usize);
    match (u.window.as_ref(), profile_window) {
        (Some(w), _) if *w.get_ref() == 0 => {
            loc.at(
                w.span(),
                "window 0: at least 1 request must be allowed in flight",
            );
            1
        }
        (Some(w), Some(max)) if *w.get_ref() > max => {
            loc.at(
                w.span(),
                format!(
                    "window {}: profile {:?} allows at most {max} per session",
                    w.get_ref(),
                    profile.name
                ),
            );
            max
        }
        (Some(w), _) => *w.get_ref(),
        (None, Some(max)) => max,
        (None, None) => DEFAULT_UPSTREAM_WINDOW,
    }
}

/// An upstream's TLS settings: required by some profiles, with the
/// vendor's minimum version unless the entry names a higher one.
fn upstream_tls(
    u: &super::raw::RawUpstream,
    host: &str,
    profile: &Profile,
    loc: &mut Locator<'_>,
) -> Option<tern_session::tls::ClientTls> {
    // A vendor that requires TLS refuses plain TCP at every bind. Plain
    // TCP to this machine stays allowed: the peer there is a simulator,
    // or a local TLS tunnel that carries the session on encrypted.
    if profile.tls.required && !u.tls && !is_loopback(host) {
        loc.at(
            u.profile.span(),
            format!(
                "upstream {}: profile {:?} requires TLS (the vendor refuses plain TCP): set tls = true",
                u.name.get_ref(),
                profile.name
            ),
        );
    }
    let profile_min = profile.tls.minimum.map(|m| match m {
        tern_router::profile::TlsMinimum::V12 => tern_session::tls::TlsVersion::Tls12,
        tern_router::profile::TlsMinimum::V13 => tern_session::tls::TlsVersion::Tls13,
    });
    if !u.tls {
        return None;
    }
    let mut tls = tern_session::tls::ClientTls::default();
    // The vendor's minimum unless the entry names one; a lower one than
    // the vendor's would offer what the vendor refuses.
    if let Some(min) = profile_min {
        tls.min_version = min;
    }
    if let Some(v) = &u.tls_min_version {
        match loc.tls_version(v, "tls_min_version") {
            Some(version) if profile_min.is_some_and(|min| version < min) => loc.at(
                v.span(),
                format!(
                    "tls_min_version {:?}: profile {:?} requires TLS {} at least",
                    v.get_ref(),
                    profile.name,
                    profile.tls.minimum.map_or("", |m| m.as_str())
                ),
            ),
            Some(version) => tls.min_version = version,
            None => {}
        }
    }
    tls.extra_ca_pem = u.tls_ca.as_ref().map(|p| loc.relative(p.get_ref()));
    tls.server_name = u.tls_server_name.clone();
    Some(tls)
}

/// An upstream's `rate`: at least the adaptive floor, at most the
/// vendor's for that many sessions. Above the vendor's rate the account
/// gets throttled or suspended: an error, not a silent cap.
fn upstream_rate(
    u: &super::raw::RawUpstream,
    profile: &Profile,
    sessions: usize,
    loc: &mut Locator<'_>,
) -> Option<f64> {
    let rate = u.rate.as_ref()?;
    let (r, span) = (*rate.get_ref(), rate.span());
    let vendor = AccountLimits::new(&profile.limits, None, sessions).vendor_rate();
    if !(r.is_finite() && r >= MIN_ADAPTIVE_RATE) {
        loc.at(
            span,
            format!("rate {r}: expected at least {MIN_ADAPTIVE_RATE} messages per second"),
        );
    } else if let Some(max) = vendor.filter(|max| r > *max) {
        loc.at(
            span,
            format!(
                "rate {r}: profile {:?} allows at most {max} messages per second with {sessions} session(s)",
                profile.name
            ),
        );
    }
    Some(r)
}

/// The `[[route]]` rules compiled into a table; `None` when the table
/// refuses them (each error pointed at its route).
fn routes(raw: &RawConfig, clients: &[ClientAccount], loc: &mut Locator<'_>) -> Option<Table> {
    let rules = raw
        .routes
        .iter()
        .map(|r| route_rule(raw, r, clients, loc))
        .collect();
    match Table::compile(rules) {
        Ok(t) => Some(t.named(loc.file.display().to_string())),
        Err(errors) => {
            for e in errors {
                table_error(raw, &e, loc);
            }
            None
        }
    }
}

/// Points a table error at the route, prefix or upstream list it is about.
fn table_error(raw: &RawConfig, e: &tern_router::table::TableError, loc: &mut Locator<'_>) {
    let needle = match e {
        tern_router::table::TableError::BadPrefix { prefix, .. } => format!("\"{prefix}\""),
        tern_router::table::TableError::NoUpstream(rule) => format!("\"{rule}\""),
        tern_router::table::TableError::ZeroWeights(rule) => {
            // Point at the route's upstreams array.
            if let Some(r) = raw.routes.iter().find(|r| r.name.get_ref() == rule) {
                loc.at(r.upstreams.span(), e.to_string());
                return;
            }
            format!("\"{rule}\"")
        }
    };
    let at = loc.text.find(&needle).unwrap_or(0);
    loc.at(at..at, e.to_string());
}

/// One `[[route]]` as a table rule, its names checked against the
/// upstreams and clients of the file.
fn route_rule(
    raw: &RawConfig,
    r: &super::raw::RawRoute,
    clients: &[ClientAccount],
    loc: &mut Locator<'_>,
) -> Rule {
    let strategy = route_strategy(r, loc);
    let upstreams = route_upstreams(raw, r, loc);
    for client in &r.clients {
        if !clients.iter().any(|c| c.system_id == *client.get_ref()) {
            loc.at(
                client.span(),
                format!(
                    "route {:?}: unknown client {:?}",
                    r.name.get_ref(),
                    client.get_ref()
                ),
            );
        }
    }
    let source = r.source.as_ref().and_then(|s| route_source(s, loc));
    let resubmit_on = r
        .resubmit_on
        .iter()
        .filter_map(|reason| match reason.get_ref().parse::<Reason>() {
            Ok(reason) => Some(reason),
            Err(e) => {
                loc.at(reason.span(), e);
                None
            }
        })
        .collect();
    if r.upstreams.get_ref().is_empty() {
        loc.at(
            r.name.span(),
            format!("route {:?} has no upstream", r.name.get_ref()),
        );
    }
    Rule {
        name: r.name.get_ref().clone(),
        clients: (!r.clients.is_empty())
            .then(|| r.clients.iter().map(|c| c.get_ref().clone()).collect()),
        prefixes: r.prefixes.iter().map(|p| p.get_ref().clone()).collect(),
        source,
        data_codings: r.data_codings.clone(),
        service_type: r.service_type.clone(),
        priority_flags: route_priority_flags(r, loc),
        udh: r.udh,
        flash: r.flash,
        time_window: r
            .time_window
            .as_ref()
            .and_then(|w| route_time_window(w, loc)),
        upstreams,
        strategy,
        resubmit_on,
    }
}

/// A route's `strategy`: failover unless set.
fn route_strategy(r: &super::raw::RawRoute, loc: &mut Locator<'_>) -> Strategy {
    use super::raw::RouteStrategy;
    match loc.choice(
        &r.strategy,
        RouteStrategy::Failover,
        "strategy",
        "failover, weighted, least_cost or least_loaded",
    ) {
        RouteStrategy::Failover => Strategy::Failover,
        RouteStrategy::Weighted => Strategy::Weighted,
        RouteStrategy::LeastCost => Strategy::LeastCost,
        RouteStrategy::LeastLoaded => Strategy::LeastLoaded,
    }
}

/// A route's `upstreams`: names (priority in list order, weight 1) or
/// tables; an unknown name is an error at its place in the array.
fn route_upstreams(
    raw: &RawConfig,
    r: &super::raw::RawRoute,
    loc: &mut Locator<'_>,
) -> Vec<RouteUpstream> {
    let list = r.upstreams.span();
    let mut upstreams = Vec::new();
    for (i, u) in r.upstreams.get_ref().iter().enumerate() {
        let (name, priority, weight) = match u {
            RawRouteUpstream::Name(n) => (n, i as u32, 1),
            RawRouteUpstream::Full {
                name,
                priority,
                weight,
            } => (name, priority.unwrap_or(i as u32), weight.unwrap_or(1)),
        };
        if !raw.upstreams.iter().any(|k| k.name.get_ref() == name) {
            // Point at the name inside the route's upstreams array.
            let quoted = format!("\"{name}\"");
            let at = loc
                .text
                .get(list.clone())
                .and_then(|t| t.find(&quoted))
                .map_or(list.start, |o| list.start + o);
            loc.at(
                at..at,
                format!("route {:?}: unknown upstream {name:?}", r.name.get_ref()),
            );
        }
        upstreams.push(RouteUpstream {
            name: name.clone(),
            priority,
            weight,
        });
    }
    upstreams
}

/// `[router]` over the router defaults, with the receipt data centres.
fn router(
    raw: &RawConfig,
    service_types: Vec<(String, COctetString<6>)>,
    loc: &mut Locator<'_>,
) -> RouterConfig {
    let defaults = RouterConfig::default();
    RouterConfig {
        max_attempts: raw.router.max_attempts.unwrap_or(defaults.max_attempts),
        deadline: loc.duration(&raw.router.deadline, defaults.deadline, "router.deadline"),
        window_wait: loc.duration(
            &raw.router.window_wait,
            defaults.window_wait,
            "router.window_wait",
        ),
        retry_initial: loc.duration(
            &raw.router.retry_initial,
            defaults.retry_initial,
            "router.retry_initial",
        ),
        retry_max: loc.duration(
            &raw.router.retry_max,
            defaults.retry_max,
            "router.retry_max",
        ),
        submit_service_types: service_types,
        ..defaults
    }
}

/// `[admin]`: `None` without the section, the default address when it
/// names none; and its token. A listener off loopback without a token is
/// refused: anyone who reaches it could read every message's trace.
fn admin(raw: &RawConfig, loc: &mut Locator<'_>) -> (Option<SocketAddr>, Option<Secret>) {
    let Some(section) = raw.admin.as_ref() else {
        return (None, None);
    };
    let address = match &section.address {
        None => DEFAULT_ADMIN.parse().ok(),
        Some(address) => {
            loc.socket_address(address, "admin", &format!(", e.g. \"{DEFAULT_ADMIN}\""))
        }
    };
    let token = section
        .token
        .as_ref()
        .map(|t| (t, loc.secret(t, "admin token")));
    if let Some((spanned, secret)) = &token {
        if secret.expose().is_empty() {
            loc.at(spanned.span(), "admin token: must not be empty".to_owned());
        }
    }
    if let (Some(addr), None, Some(spanned)) = (address, &token, &section.address) {
        if !addr.ip().is_loopback() {
            loc.at(
                spanned.span(),
                format!(
                    "admin address {addr} is not loopback: set [admin] token \
                     (e.g. token = \"env:TERN_ADMIN_TOKEN\") so the console and the API ask for it"
                ),
            );
        }
    }
    (address, token.map(|(_, secret)| secret))
}

/// `[log]`: text at "info" unless set.
fn log(raw: &RawConfig, loc: &mut Locator<'_>) -> LogSettings {
    use super::raw::LogFormat;
    let format = loc.choice(
        &raw.log.format,
        LogFormat::Text,
        "log.format",
        "\"text\" or \"json\"",
    );
    let json = format == LogFormat::Json;
    LogSettings {
        json,
        level: raw.log.level.clone().unwrap_or_else(|| "info".to_owned()),
    }
}

/// `[bind_guard]`: on unless `enabled = false`, its times checked together.
fn bind_guard(raw: &RawConfig, loc: &mut Locator<'_>) -> Option<tern_session::abuse::GuardConfig> {
    let guard = &raw.bind_guard;
    if guard.enabled == Some(false) {
        return None;
    }
    let config = tern_session::abuse::GuardConfig {
        window: loc.duration(&guard.window, Duration::from_secs(60), "bind_guard.window"),
        delay_after: guard.delay_after.unwrap_or(5),
        delay_step: Duration::from_millis(250),
        max_delay: Duration::from_secs(2),
        lock_after: guard.lock_after.unwrap_or(20),
        lock_for: loc.duration(
            &guard.lock_for,
            Duration::from_secs(60),
            "bind_guard.lock_for",
        ),
        max_tracked: 10_000,
    };
    if let Err(e) = config.validate() {
        let span = guard
            .window
            .as_ref()
            .or(guard.lock_for.as_ref())
            .map_or(0..0, |s| s.span());
        loc.at(span, format!("[bind_guard]: {e}"));
    }
    Some(config)
}

/// `[storage] backend` and `[storage.redis]`.
fn storage_backend(raw: &RawConfig, loc: &mut Locator<'_>) -> Backend {
    use super::raw::StorageBackend;
    let redis = raw.storage.redis.as_ref();
    match raw.storage.backend.as_ref() {
        None => {
            if let Some(r) = redis {
                loc.at(
                    r.span(),
                    "[storage.redis] is set but storage.backend is not \"redis\"",
                );
            }
            Backend::Sled
        }
        Some(b) if *b.get_ref() == Choice::Known(StorageBackend::Sled) => {
            if let Some(r) = redis {
                loc.at(
                    r.span(),
                    "[storage.redis] is set but storage.backend is \"sled\"",
                );
            }
            Backend::Sled
        }
        Some(b) if *b.get_ref() == Choice::Known(StorageBackend::Redis) => match redis {
            Some(r) => Backend::Redis(redis_settings(r, loc)),
            None => {
                loc.at(
                    b.span(),
                    "storage.backend = \"redis\" needs [storage.redis] with addresses",
                );
                Backend::Sled
            }
        },
        Some(b) => {
            loc.known(b, "storage.backend", "\"sled\" or \"redis\"");
            Backend::Sled
        }
    }
}

/// `[storage.redis]`, each value checked at its line.
fn redis_settings(raw: &Spanned<super::raw::RawRedis>, loc: &mut Locator<'_>) -> RedisSettings {
    let span = raw.span();
    let raw = raw.get_ref();
    let addresses = redis_addresses(raw, span, loc);
    let prefix = match &raw.prefix {
        Some(p) if p.get_ref().is_empty() || p.get_ref().contains(['{', '}']) => {
            loc.at(
                p.span(),
                "storage.redis.prefix must be non-empty and without { or }",
            );
            "tern".to_owned()
        }
        Some(p) => p.get_ref().clone(),
        None => "tern".to_owned(),
    };
    let durability = redis_durability(raw, loc);
    let lease_ttl = loc.duration(
        &raw.lease_ttl,
        Duration::from_secs(10),
        "storage.redis.lease_ttl",
    );
    if lease_ttl < Duration::from_secs(1) {
        if let Some(t) = &raw.lease_ttl {
            loc.at(t.span(), "storage.redis.lease_ttl must be at least 1s");
        }
    }
    RedisSettings {
        addresses,
        cluster: raw.cluster,
        prefix,
        username: raw.username.as_ref().map(|u| u.get_ref().clone()),
        password: raw
            .password
            .as_ref()
            .map(|p| loc.secret(p, "storage.redis.password")),
        tls_ca: raw.tls_ca.as_ref().and_then(|file| redis_tls_ca(file, loc)),
        durability,
        lease_ttl,
    }
}

/// `storage.redis.addresses`: `redis://` or `rediss://`, no credentials
/// (an address with them is never repeated back), several only for a
/// cluster.
fn redis_addresses(
    raw: &super::raw::RawRedis,
    span: Range<usize>,
    loc: &mut Locator<'_>,
) -> Vec<String> {
    let mut addresses = Vec::new();
    for a in &raw.addresses {
        let text = a.get_ref();
        let credentials = text.contains('@');
        if credentials {
            loc.at(
                a.span(),
                "put credentials in storage.redis.username/password, not in the address",
            );
        }
        if text.starts_with("redis://") || text.starts_with("rediss://") {
            addresses.push(text.clone());
        } else {
            let shown = if credentials {
                "storage.redis address".to_owned()
            } else {
                format!("{text:?}")
            };
            loc.at(
                a.span(),
                format!("{shown}: expected an address like \"redis://127.0.0.1:6379\""),
            );
        }
    }
    if raw.addresses.is_empty() {
        loc.at(span, "storage.redis.addresses is empty");
    } else if !raw.cluster && raw.addresses.len() > 1 {
        loc.at(
            span,
            "several storage.redis.addresses are for a cluster: set cluster = true",
        );
    }
    addresses
}

/// `storage.redis.durability`: "appendfsync-always" unless set; "wait"
/// only on a single server.
fn redis_durability(
    raw: &super::raw::RawRedis,
    loc: &mut Locator<'_>,
) -> tern_storage::RedisDurability {
    use super::raw::RedisDurability;
    let chosen = loc.choice(
        &raw.durability,
        RedisDurability::AppendfsyncAlways,
        "storage.redis.durability",
        "\"appendfsync-always\" or \"wait\"",
    );
    match (chosen, &raw.durability) {
        (RedisDurability::AppendfsyncAlways, _) | (_, None) => {
            tern_storage::RedisDurability::AppendFsyncAlways
        }
        (RedisDurability::Wait, Some(at)) => {
            if raw.cluster {
                loc.at(
                    at.span(),
                    "durability = \"wait\" is for a single server; a cluster needs \"appendfsync-always\"",
                );
            }
            tern_storage::RedisDurability::Wait {
                replicas: raw.wait_replicas.unwrap_or(1),
                timeout: loc.duration(
                    &raw.wait_timeout,
                    Duration::from_secs(1),
                    "storage.redis.wait_timeout",
                ),
            }
        }
    }
}

/// `storage.redis.tls_ca`: a PEM file with a certificate, read at load.
fn redis_tls_ca(file: &Spanned<String>, loc: &mut Locator<'_>) -> Option<PemFile> {
    let path = loc.relative(file.get_ref());
    match std::fs::read(&path) {
        Ok(pem) if String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") => {
            Some(PemFile { path, pem })
        }
        Ok(_) => {
            loc.at(
                file.span(),
                format!(
                    "storage.redis.tls_ca: {} holds no PEM certificate",
                    path.display()
                ),
            );
            None
        }
        Err(e) => {
            loc.at(
                file.span(),
                format!("storage.redis.tls_ca: cannot read {}: {e}", path.display()),
            );
            None
        }
    }
}

/// A route's `source`: "alphanumeric", "numeric", "prefix:<p>",
/// "pattern:<p>" (`*` and `?` wildcards), else an exact address.
fn route_source(s: &Spanned<String>, loc: &mut Locator<'_>) -> Option<SourceMatch> {
    let text = s.get_ref().as_str();
    Some(match text {
        "alphanumeric" => SourceMatch::Alphanumeric,
        "numeric" => SourceMatch::Numeric,
        other => {
            if let Some(p) = other.strip_prefix("prefix:") {
                SourceMatch::Prefix(p.to_owned())
            } else if let Some(p) = other.strip_prefix("pattern:") {
                match SourceMatch::pattern(p) {
                    Ok(m) => m,
                    Err(e) => {
                        loc.at(s.span(), format!("source {text:?}: {e}"));
                        return None;
                    }
                }
            } else {
                SourceMatch::Exact(other.to_owned())
            }
        }
    })
}

/// A route's `priority_flags` as a mask: SMPP 3.4 defines 0 to 3.
fn route_priority_flags(r: &super::raw::RawRoute, loc: &mut Locator<'_>) -> Option<u8> {
    let values = r.priority_flags.as_ref()?;
    if values.is_empty() {
        loc.at(
            r.name.span(),
            format!(
                "route {:?}: priority_flags is empty: the route would never match",
                r.name.get_ref()
            ),
        );
    }
    let mut mask = 0u8;
    for v in values {
        match u8::try_from(*v.get_ref()) {
            Ok(p) if p <= 3 => mask |= 1 << p,
            _ => loc.at(
                v.span(),
                format!(
                    "route {:?}: priority_flags: {} is not a priority_flag (0 to 3)",
                    r.name.get_ref(),
                    v.get_ref()
                ),
            ),
        }
    }
    Some(mask)
}

/// A route's `time_window`: days, "HH:MM" bounds and an IANA zone, each
/// error pointing at its value.
fn route_time_window(
    w: &Spanned<super::raw::RawTimeWindow>,
    loc: &mut Locator<'_>,
) -> Option<TimeWindow> {
    let raw = w.get_ref();
    let mut ok = true;
    let days = match &raw.days {
        None => 0x7F,
        Some(days) => {
            let mut mask = 0u8;
            for d in days {
                match TimeWindow::day(d.get_ref()) {
                    Some(bit) => mask |= bit,
                    None => {
                        ok = false;
                        loc.at(
                            d.span(),
                            format!(
                                "time_window: day {:?}: expected mon, tue, wed, thu, fri, sat or sun",
                                d.get_ref()
                            ),
                        );
                    }
                }
            }
            mask
        }
    };
    let mut clock = |v: &Option<Spanned<String>>, default: u16, what: &str| match v {
        None => default,
        Some(v) => TimeWindow::clock(v.get_ref()).unwrap_or_else(|| {
            ok = false;
            loc.at(
                v.span(),
                format!(
                    "time_window: {what} {:?}: expected a local time \"HH:MM\" from 00:00 to 24:00",
                    v.get_ref()
                ),
            );
            default
        }),
    };
    let from = clock(&raw.from, 0, "from");
    let to = clock(&raw.to, 1440, "to");
    if !ok {
        return None;
    }
    let zone = raw
        .time_zone
        .as_ref()
        .map_or("UTC", |z| z.get_ref().as_str());
    match TimeWindow::new(days, from, to, zone) {
        Ok(window) => Some(window),
        Err(e) => {
            let span = match (&e, &raw.time_zone) {
                (tern_router::table::WindowError::Zone(_), Some(z)) => z.span(),
                _ => w.span(),
            };
            loc.at(span, format!("time_window: {e}"));
            None
        }
    }
}

/// Compiles the `[[mo_route]]` rules into the accounts they name.
fn mo_routes(raw: &RawConfig, clients: &mut [ClientAccount], loc: &mut Locator<'_>) {
    let mut names: Vec<&str> = Vec::new();
    for (order, r) in raw.mo_routes.iter().enumerate() {
        let name = r.name.get_ref();
        if names.contains(&name.as_str()) {
            loc.at(r.name.span(), format!("mo_route {name:?} is defined twice"));
        }
        names.push(name);
        for prefix in &r.destinations {
            let p = prefix.get_ref();
            // destination_addr holds at most 20 characters (SMPP 3.4 §5.2.9).
            if p.is_empty() || p.len() > 20 || !p.bytes().all(|b| b.is_ascii_digit()) {
                loc.at(
                    prefix.span(),
                    format!(
                        "mo_route {name:?}: destination prefix {p:?}: expected 1 to 20 digits (a short code or the start of a number)"
                    ),
                );
            }
        }
        for upstream in &r.upstreams {
            if !raw
                .upstreams
                .iter()
                .any(|u| u.name.get_ref() == upstream.get_ref())
            {
                loc.at(
                    upstream.span(),
                    format!(
                        "mo_route {name:?}: unknown upstream {:?}",
                        upstream.get_ref()
                    ),
                );
            }
        }
        let route = MoRoute {
            name: name.clone(),
            order,
            destinations: r.destinations.iter().map(|d| d.get_ref().clone()).collect(),
            upstreams: r.upstreams.iter().map(|u| u.get_ref().clone()).collect(),
        };
        match clients
            .iter_mut()
            .find(|c| c.system_id == *r.client.get_ref())
        {
            Some(account) => account.mo_routes.push(route),
            None => loc.at(
                r.client.span(),
                format!("mo_route {name:?}: unknown client {:?}", r.client.get_ref()),
            ),
        }
    }
}

/// How long a transaction-mode submit waits for its upstream unless set:
/// well inside the 30 s most clients wait for a response.
const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's `submit_mode`: `Some(timeout)` for transaction mode.
fn submit_mode(c: &RawClient, loc: &mut Locator<'_>) -> Option<Duration> {
    use super::raw::SubmitMode;
    let mode = loc.choice(
        &c.submit_mode,
        SubmitMode::StoreAndForward,
        "client.submit_mode",
        "\"store_and_forward\" or \"transaction\"",
    );
    let transaction = mode == SubmitMode::Transaction;
    match (&c.transaction_timeout, transaction) {
        (Some(at), false) => {
            loc.at(
                at.span(),
                "client.transaction_timeout: only for submit_mode = \"transaction\"",
            );
            None
        }
        (_, false) => None,
        (timeout, true) => Some(loc.positive_duration(
            timeout,
            DEFAULT_TRANSACTION_TIMEOUT,
            "client.transaction_timeout",
        )),
    }
}

/// A client's `id_format`: hex unless set.
fn id_format(c: &RawClient, loc: &mut Locator<'_>) -> tern_storage::IdFormat {
    use super::raw::IdFormat;
    match loc.choice(
        &c.id_format,
        IdFormat::Hex,
        "client.id_format",
        "\"hex\" or \"decimal\"",
    ) {
        IdFormat::Hex => tern_storage::IdFormat::Hex,
        IdFormat::Decimal => tern_storage::IdFormat::Decimal,
    }
}

/// A client's `distribution_lists`, each name and member checked at its
/// line: a name fits submit_multi's dl_name (1 to 20 octets), a member is
/// a number every upstream could carry (see
/// [`tern_router::adapt::check_destination`]), sent as an international
/// number (TON 1, NPI 1).
fn distribution_lists(
    c: &RawClient,
    loc: &mut Locator<'_>,
) -> std::collections::BTreeMap<String, Vec<tern_codec::Address<21>>> {
    let mut lists = std::collections::BTreeMap::new();
    for (name, members) in &c.distribution_lists {
        if name.get_ref().is_empty() || name.get_ref().len() > 20 {
            loc.at(
                name.span(),
                format!(
                    "client.distribution_lists {:?}: a list name is 1 to 20 characters (submit_multi's dl_name)",
                    name.get_ref()
                ),
            );
        }
        if members.is_empty() {
            loc.at(
                name.span(),
                format!(
                    "client.distribution_lists {:?}: a list needs at least one member",
                    name.get_ref()
                ),
            );
        }
        let mut addresses = Vec::with_capacity(members.len());
        for member in members {
            let address = COctetString::try_from(member.get_ref().clone())
                .ok()
                .map(|addr| {
                    tern_codec::Address::new(
                        tern_codec::Ton::INTERNATIONAL,
                        tern_codec::Npi::ISDN,
                        addr,
                    )
                })
                .filter(|a| tern_router::adapt::check_destination(a).is_ok());
            match address {
                Some(address) => addresses.push(address),
                None => loc.at(
                    member.span(),
                    format!(
                        "client.distribution_lists {:?}: member {:?} is not a phone number (digits, an optional leading '+', at most 15 digits)",
                        name.get_ref(),
                        member.get_ref()
                    ),
                ),
            }
        }
        lists.insert(name.get_ref().clone(), addresses);
    }
    lists
}

/// Smallest `max_command_length` accepted: a submit_sm with a full
/// 254-octet short_message, its longest addresses and some TLVs.
const MIN_COMMAND_LENGTH: usize = 1024;
/// Largest: a 64 KiB message_payload and the rest of its PDU.
const MAX_COMMAND_LENGTH: usize = 1 << 17;

/// The bind types, as an error about a bind type lists them.
const BIND_NAMES: &str = "\"transmitter\", \"receiver\" or \"transceiver\"";

/// The session's bind type of a configured one.
fn bind_type(name: BindName) -> BindType {
    match name {
        BindName::Transmitter => BindType::Transmitter,
        BindName::Receiver => BindType::Receiver,
        BindName::Transceiver => BindType::Transceiver,
    }
}

/// A client's `binds`: the bind types it may use, all three unless set.
/// An empty list or an unknown name is an error at its place.
fn client_binds(c: &RawClient, loc: &mut Locator<'_>) -> tern_session::BindTypes {
    use tern_session::BindTypes;
    let Some(list) = &c.binds else {
        return BindTypes::ALL;
    };
    if list.get_ref().is_empty() {
        loc.at(
            list.span(),
            "client.binds: an empty list allows no bind at all; list \"transmitter\", \"receiver\" and/or \"transceiver\", or leave binds out for all three",
        );
        return BindTypes::ALL;
    }
    let mut binds = BindTypes::NONE;
    for name in list.get_ref() {
        if let Some(name) = loc.known(name, "client.binds", BIND_NAMES) {
            binds = binds.with(bind_type(name));
        }
    }
    binds
}

/// A client's `window`: at least 1 when set.
fn client_window(c: &RawClient, loc: &mut Locator<'_>) -> Option<std::num::NonZeroUsize> {
    let window = c.window.as_ref()?;
    let limit = std::num::NonZeroUsize::new(*window.get_ref());
    if limit.is_none() {
        loc.at(
            window.span(),
            "client.window 0: at least 1 submit must be allowed unanswered; leave window out for no account window",
        );
    }
    limit
}

/// `[client_sessions]` over the session defaults, each value checked at
/// its line.
fn client_sessions(raw: &RawClientSessions, loc: &mut Locator<'_>) -> SessionConfig {
    let defaults = SessionConfig::default();
    let window = match &raw.window {
        Some(w) if *w.get_ref() == 0 => {
            loc.at(
                w.span(),
                "client_sessions.window 0: at least 1 deliver_sm must be allowed in flight",
            );
            defaults.window
        }
        Some(w) => *w.get_ref(),
        None => defaults.window,
    };
    let max_command_length = match &raw.max_command_length {
        Some(m) if !(MIN_COMMAND_LENGTH..=MAX_COMMAND_LENGTH).contains(m.get_ref()) => {
            loc.at(
                m.span(),
                format!(
                    "client_sessions.max_command_length {}: must be {MIN_COMMAND_LENGTH} to {MAX_COMMAND_LENGTH} octets",
                    m.get_ref()
                ),
            );
            defaults.max_command_length
        }
        Some(m) => *m.get_ref(),
        None => defaults.max_command_length,
    };
    let enquire_link_interval = loc.optional_duration(
        &raw.enquire_link_interval,
        defaults.enquire_link_interval,
        "client_sessions.enquire_link_interval",
    );
    let inactivity_timeout = loc.optional_duration(
        &raw.inactivity_timeout,
        defaults.inactivity_timeout,
        "client_sessions.inactivity_timeout",
    );
    // A session answers Tern's enquire_link, so with the probe sent first
    // an idle but healthy client is never closed for silence.
    if let (Some(probe), Some(silence), Some(at)) = (
        enquire_link_interval,
        inactivity_timeout,
        raw.inactivity_timeout.as_ref(),
    ) {
        if silence <= probe {
            loc.at(
                at.span(),
                format!(
                    "client_sessions.inactivity_timeout {}: must be longer than enquire_link_interval ({}), or an idle healthy client is closed before it is probed",
                    humantime::format_duration(silence),
                    humantime::format_duration(probe)
                ),
            );
        }
    }
    SessionConfig {
        window,
        response_timeout: loc.positive_duration(
            &raw.response_timeout,
            defaults.response_timeout,
            "client_sessions.response_timeout",
        ),
        enquire_link_interval,
        inactivity_timeout,
        session_init_timeout: loc.positive_duration(
            &raw.bind_timeout,
            defaults.session_init_timeout,
            "client_sessions.bind_timeout",
        ),
        max_command_length,
        ..defaults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        addresses: &[&str],
        username: Option<&str>,
        password: Option<&str>,
    ) -> RedisSettings {
        RedisSettings {
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
            cluster: addresses.len() > 1,
            prefix: "tern".to_owned(),
            username: username.map(str::to_owned),
            password: password.map(|p| Secret(p.to_owned())),
            tls_ca: None,
            durability: tern_storage::RedisDurability::AppendFsyncAlways,
            lease_ttl: Duration::from_secs(10),
        }
    }

    /// What the Redis client does to the user and password of a URL
    /// (`percent_encoding::percent_decode`), to check the round trip.
    fn percent_decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    /// The errors of `text` as `tern check-config` prints them, one a line.
    fn errors(text: &str) -> Vec<String> {
        Config::from_text(Path::new("t.toml"), text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn without_credentials_the_addresses_are_unchanged() {
        let addresses = ["redis://10.0.0.5:7000", "rediss://10.0.0.6:7000"];
        assert_eq!(
            settings(&addresses, None, None).connect_addresses(),
            addresses
        );
    }

    #[test]
    fn credentials_are_percent_encoded_into_every_address() {
        let redis = settings(
            &["redis://10.0.0.5:7000", "rediss://10.0.0.6:7000"],
            Some("ops@eu"),
            Some("p@ss:w/rd%"),
        );
        assert_eq!(
            redis.connect_addresses(),
            [
                "redis://ops%40eu:p%40ss%3Aw%2Frd%25@10.0.0.5:7000",
                "rediss://ops%40eu:p%40ss%3Aw%2Frd%25@10.0.0.6:7000",
            ]
        );
        // The user information splits at the one '@' and ':' left, and
        // decodes back to what was configured.
        let address = &redis.connect_addresses()[0];
        let userinfo = address
            .strip_prefix("redis://")
            .and_then(|rest| rest.split_once('@'))
            .map(|(userinfo, _)| userinfo)
            .expect("user information");
        let (user, password) = userinfo.split_once(':').expect("user:password");
        assert_eq!(percent_decode(user), "ops@eu");
        assert_eq!(percent_decode(password), "p@ss:w/rd%");
        // The addresses shown stay without them.
        assert_eq!(redis.addresses[0], "redis://10.0.0.5:7000");
    }

    #[test]
    fn a_password_alone_goes_with_an_empty_user() {
        let redis = settings(&["redis://127.0.0.1:6379"], None, Some("p@ss:w/rd%"));
        assert_eq!(
            redis.connect_addresses(),
            ["redis://:p%40ss%3Aw%2Frd%25@127.0.0.1:6379"]
        );
    }

    #[test]
    fn percent_encode_keeps_only_unreserved_characters() {
        assert_eq!(percent_encode("Az09-._~"), "Az09-._~");
        assert_eq!(
            percent_encode("p@ss:w/rd% #?&+é"),
            "p%40ss%3Aw%2Frd%25%20%23%3F%26%2B%C3%A9"
        );
        assert_eq!(percent_encode(""), "");
    }
    /// Every fixed-set setting with a value outside its set is reported at
    /// its own line and column, all in one pass (the parse does not stop at
    /// the first), naming the key, the value and the set.
    #[test]
    fn every_bad_choice_is_reported_at_its_place() {
        let text = r#"
[log]
format = "yaml"
[storage]
durability = "lazy"
[[client]]
system_id = "acme"
passwords = ["p"]
submit_mode = "sync"
id_format = "octal"
binds = ["transceiver", "both"]
[[upstream]]
name = "a"
host = "127.0.0.1"
port = 1000
system_id = "tern"
password = "p"
bind = "rx"
[[route]]
name = "all"
upstreams = ["a"]
strategy = "random"
"#;
        assert_eq!(
            errors(text),
            [
                r#"t.toml:5:14: storage.durability "lazy": expected "durable" or "fast""#,
                r#"t.toml:9:15: client.submit_mode "sync": expected "store_and_forward" or "transaction""#,
                r#"t.toml:11:25: client.binds "both": expected "transmitter", "receiver" or "transceiver""#,
                r#"t.toml:10:13: client.id_format "octal": expected "hex" or "decimal""#,
                r#"t.toml:18:8: bind "rx": expected "transmitter", "receiver" or "transceiver""#,
                r#"t.toml:22:12: strategy "random": expected failover, weighted, least_cost or least_loaded"#,
                r#"t.toml:3:10: log.format "yaml": expected "text" or "json""#,
            ]
        );
    }
    /// An upstream goes to `host` and `port`, or to the `[[simulator]]`
    /// it names, whose configured address stands in (port 0 here: the
    /// daemon points it at the port the simulator bound) and whose name
    /// keys its account, so two port-0 simulators are two accounts.
    #[cfg(feature = "sandbox")]
    #[test]
    fn an_upstream_names_a_simulator_or_gives_host_and_port() {
        let base = "[[simulator]]\nname = \"a\"\naddress = \"127.0.0.1:0\"\n\
                    [[simulator]]\nname = \"b\"\naddress = \"127.0.0.1:0\"\n\
                    [[route]]\nname = \"all\"\nupstreams = [\"up\"]\n\
                    [[upstream]]\nname = \"up\"\nsystem_id = \"tern\"\npassword = \"p\"\n";
        let config = Config::from_text(Path::new("t.toml"), &format!("{base}simulator = \"b\"\n"))
            .expect("valid");
        let up = &config.upstreams[0];
        assert_eq!(up.simulator.as_deref(), Some("b"));
        assert_eq!((up.host.as_str(), up.port), ("127.0.0.1", 0));
        assert_eq!(up.account, "simulator b/tern");
        assert_eq!(
            errors(&format!("{base}simulator = \"c\"\n")),
            [r#"t.toml:14:13: upstream up: no [[simulator]] named "c"; defined: a, b"#]
        );
        assert_eq!(
            errors(&format!(
                "{base}simulator = \"a\"\nhost = \"127.0.0.1\"\nport = 1\n"
            )),
            ["t.toml:14:13: upstream up: give simulator, or host and port, not both"]
        );
        assert_eq!(
            errors(&format!("{base}host = \"127.0.0.1\"\n")),
            [r#"t.toml:11:8: upstream up: give host and port, or simulator = "NAME""#]
        );
    }
    /// A listener, admin or simulator address that is no `host:port` is
    /// an error at its value, naming the section.
    #[test]
    fn a_bad_address_is_reported_with_its_section() {
        let text = "[[listener]]\naddress = \"localhost\"\n[admin]\naddress = \"9775\"\n";
        assert_eq!(
            errors(text),
            [
                r#"t.toml:2:11: listener address "localhost": expected host:port, e.g. "127.0.0.1:2775""#,
                r#"t.toml:4:11: admin address "9775": expected host:port, e.g. "127.0.0.1:9775""#,
            ]
        );
    }
    /// A TLS version that is none of 1.2 and 1.3 is an error at its value,
    /// on a listener as on an upstream.
    #[test]
    fn a_bad_tls_version_is_reported_where_it_is() {
        let text = r#"[[listener]]
address = "127.0.0.1:2775"
tls_cert = "c.pem"
tls_key = "k.pem"
tls_min_version = "1.1"
[[upstream]]
name = "a"
host = "127.0.0.1"
port = 1000
system_id = "tern"
password = "p"
tls = true
tls_min_version = "ssl3"
"#;
        assert_eq!(
            errors(text),
            [
                r#"t.toml:5:19: tls_min_version "1.1": expected "1.2" or "1.3""#,
                r#"t.toml:13:19: tls_min_version "ssl3": expected "1.2" or "1.3""#,
            ]
        );
    }

    /// HTTP tokens: read like passwords (env:, file:), none empty, none
    /// given to two accounts; an `[[http_listener]]` address that does not
    /// parse and a TLS key without its certificate are errors at their
    /// place, as on `[[listener]]`.
    #[test]
    fn http_tokens_and_listeners_are_checked_where_they_are() {
        let text = r#"[[http_listener]]
address = "localhost"
[[http_listener]]
address = "127.0.0.1:8080"
tls_key = "k.pem"
[[client]]
system_id = "acme"
passwords = ["pw"]
http_tokens = ["shared", ""]
[[client]]
system_id = "beta"
passwords = ["pw"]
http_tokens = ["env:TERN_TEST_NO_SUCH_VARIABLE", "shared"]
"#;
        assert_eq!(
            errors(text),
            [
                r#"t.toml:2:11: http_listener address "localhost": expected host:port, e.g. "127.0.0.1:2775""#,
                r#"t.toml:5:11: a TLS listener needs both tls_cert and tls_key"#,
                r#"t.toml:9:26: client "acme": an HTTP token is empty"#,
                r#"t.toml:13:16: client http token: environment variable TERN_TEST_NO_SUCH_VARIABLE is not set"#,
                r#"t.toml:13:50: client "beta": this HTTP token is also client "acme"'s; a token must name one account"#,
            ]
        );
        let good = "[[http_listener]]\naddress = \"127.0.0.1:8080\"\n\
                    [[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n\
                    http_tokens = [\"one\", \"two\"]\n";
        let config = Config::from_text(Path::new("t.toml"), good).expect("valid");
        assert_eq!(config.http_listeners.len(), 1);
        let tokens: Vec<&str> = config.clients[0]
            .http_tokens
            .iter()
            .map(Secret::expose)
            .collect();
        assert_eq!(tokens, ["one", "two"]);
    }

    /// Webhook keys: the allow-list's entries parse (names, addresses,
    /// networks), callbacks need a secret, and a default callback URL must
    /// be one the allow-list admits; each error at its place.
    #[test]
    fn webhook_keys_are_checked_where_they_are() {
        let text = r#"[[client]]
system_id = "acme"
passwords = ["pw"]
webhook_secret = "s"
callback_allow = ["hooks.example", "10.0.0.0/8", "10.1.2.3/8", "bad host!"]
callback_url = "http://elsewhere.example/hook"
[[client]]
system_id = "beta"
passwords = ["pw"]
callback_allow = ["127.0.0.1"]
"#;
        assert_eq!(
            errors(text),
            [
                r#"t.toml:5:50: "10.1.2.3/8" has host bits set; the network is 10.0.0.0/8"#,
                r#"t.toml:5:64: callback_allow "bad host!": expected a host name, an address or a network"#,
                r#"t.toml:6:16: callback_url: "http://elsewhere.example/hook": its host is not in the account's callback_allow"#,
                r#"t.toml:10:19: client "beta": callbacks need a webhook_secret to sign them"#,
            ]
        );
        let good = "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n\
                    webhook_secret = \"s\"\ncallback_allow = [\"Hooks.Example\", \"10.0.0.0/8\"]\n\
                    callback_url = \"http://hooks.example:8080/r\"\n";
        let config = Config::from_text(Path::new("t.toml"), good).expect("valid");
        let acme = &config.clients[0];
        assert_eq!(
            acme.callback_url.as_deref(),
            Some("http://hooks.example:8080/r")
        );
        assert!(acme.callback("http://10.9.8.7/r").is_ok());
        assert!(
            acme.callback("http://[::ffff:10.9.8.7]/r").is_ok(),
            "IPv4-mapped"
        );
        assert!(acme.callback("http://11.0.0.1/r").is_err());
        assert!(acme.callback("http://hooks.example.evil/r").is_err());
        assert!(acme.callback("https://hooks.example/r").is_ok());
        assert!(
            acme.callback("https://hooks.example.evil/r").is_err(),
            "the allow-list holds for https too"
        );
        assert!(acme.callback("ftp://hooks.example/r").is_err());
    }

    /// `webhook_ca`: read at load into the TLS configuration of the
    /// account's https callbacks; a file that cannot be read or holds no
    /// certificate is an error at the key.
    #[test]
    fn webhook_ca_is_read_at_load_and_errors_are_at_the_key() {
        let dir = tern_testkit::TempDir::new("webhook-ca");
        let empty = dir.write("empty.pem", "no certificate here\n");
        let ca = rcgen::generate_simple_self_signed(vec!["hooks.example".to_owned()])
            .expect("certificate");
        let good = dir.write("ca.pem", &ca.cert.pem());
        let client = |name: &str, file: &Path| {
            format!(
                "[[client]]\nsystem_id = \"{name}\"\npasswords = [\"pw\"]\n\
                 webhook_secret = \"s\"\nwebhook_ca = \"{}\"\n",
                file.display()
            )
        };
        let text = [
            client("acme", &dir.path().join("missing.pem")),
            client("beta", &empty),
        ]
        .concat();
        let found = errors(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0].starts_with("t.toml:5:14: webhook_ca: cannot read "),
            "{found:?}"
        );
        assert!(
            found[1].starts_with("t.toml:10:14: webhook_ca: "),
            "{found:?}"
        );
        let config = Config::from_text(Path::new("t.toml"), &client("acme", &good)).expect("valid");
        let loaded = config.clients[0].webhook_ca.as_ref().expect("read");
        assert_eq!(loaded.file.path, good);
        assert_eq!(loaded.file.pem, ca.cert.pem().as_bytes());
        // Callbacks need the secret, the CA as much as the other keys.
        let stray =
            "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\nwebhook_ca = \"x.pem\"\n";
        assert!(
            errors(stray)
                .iter()
                .any(|e| e.contains("callbacks need a webhook_secret")),
            "{:?}",
            errors(stray)
        );
    }
}
