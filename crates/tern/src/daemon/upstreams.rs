//! The running upstream pools, kept in step with the config across reloads.
//!
//! A reload compares each configured upstream with the one running under
//! the same name: unchanged ones keep their sessions (and their breaker
//! state); added ones start binding; removed ones drain; changed ones are
//! replaced one session at a time: slot k of the new pool binds only once
//! slot k of the old pool has drained and unbound, so the account never has
//! more sessions than before (a vendor that allows one bind never sees two),
//! and slot k+1 of the old pool drains only once slot k of the new one is
//! bound, so a pool of two or more always has a session (up to
//! [`NEW_BIND_WAIT`] for a new bind the vendor is slow to take).
//! Draining a session means: no new message goes there (the router no
//! longer lists its pool), its requests in flight get their answers (up to
//! [`DRAIN_DEADLINE`]), then it unbinds with the handshake.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tern_router::account::{Account, AccountLimits, BindCap};
use tern_router::upstream::{SlotGate, Upstream, UpstreamConfig, UpstreamRequest};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::UpstreamTls;
use tern_session::SessionConfig;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::error::UpstreamError;
use crate::config::UpstreamSpec;

/// The longest a drained upstream waits for answers before it unbinds.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// How long a rolling replacement waits for a new session to bind before
/// it retires the next old one regardless (a new bind the vendor refuses
/// must not keep the old pool forever).
const NEW_BIND_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Running {
    spec: UpstreamSpec,
    upstream: Arc<Upstream>,
    stop: CancellationToken,
}

/// A pool taken out of service, and the gates of the pool replacing it
/// (none when it was removed), slot by slot.
#[derive(Debug)]
struct Replaced {
    old: Running,
    gates: Vec<CancellationToken>,
    /// The pool that takes over (none for a removed upstream).
    new: Option<Arc<Upstream>>,
}

/// What a reload did to the upstreams.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct UpstreamChanges {
    /// Started.
    pub added: Vec<String>,
    /// Draining, then unbound.
    pub removed: Vec<String>,
    /// Rebinding with new settings once the old pool has drained.
    pub changed: Vec<String>,
}

/// The running pools by name.
#[derive(Debug)]
pub struct UpstreamSet {
    inbound: mpsc::Sender<UpstreamRequest>,
    shutdown: CancellationToken,
    running: HashMap<String, Running>,
    /// Pools taken out of service by the last `apply`, drained by
    /// `drain_replaced` once the router no longer lists them.
    replaced: Vec<Replaced>,
    /// Session slot leases, when other nodes share the upstreams.
    gate: Option<Arc<dyn SlotGate>>,
    /// The vendor accounts the pools use.
    accounts: Accounts,
    /// Where replaced pools drain.
    tasks: TaskTracker,
    /// Where each running `[[simulator]]` listens, by name: an upstream
    /// that names one connects there (see [`UpstreamSet::with_simulators`]).
    simulators: HashMap<String, std::net::SocketAddr>,
}

/// The vendor accounts of the running upstreams, by key, and their bind
/// caps, by key.
#[derive(Debug, Default)]
struct Accounts {
    accounts: HashMap<String, Arc<Account>>,
    caps: HashMap<String, BindCap>,
    /// Sessions each entry sharing a bind cap starts with, by entry name.
    shares: HashMap<String, usize>,
}

/// A pool ready to start (everything that can fail is done).
struct Prepared {
    spec: UpstreamSpec,
    config: UpstreamConfig,
}

impl UpstreamSet {
    /// No pools yet; each will forward its upstream's requests to `inbound`
    /// and stop at `shutdown`; replaced pools drain on `tasks`.
    /// With a `gate`, each session slot binds only while this node holds
    /// it (several nodes on one store).
    pub fn new(
        inbound: mpsc::Sender<UpstreamRequest>,
        shutdown: CancellationToken,
        gate: Option<Arc<dyn SlotGate>>,
        tasks: TaskTracker,
    ) -> Self {
        Self {
            tasks,
            gate,
            inbound,
            shutdown,
            running: HashMap::new(),
            replaced: Vec::new(),
            accounts: Accounts::default(),
            simulators: HashMap::new(),
        }
    }

    /// Points every upstream that names a `[[simulator]]` at the address
    /// that simulator bound, in this `apply` and every later one (a
    /// reload): the configured address may say port 0, and only the
    /// running simulator knows its port.
    pub fn with_simulators(mut self, bound: Vec<(String, std::net::SocketAddr)>) -> Self {
        self.simulators = bound.into_iter().collect();
        self
    }

    /// `spec` as it connects: a simulator's upstream at the address the
    /// simulator bound. One naming a simulator that is not running (added
    /// by a reload: simulators start only with the node) keeps its
    /// configured address.
    fn wired(&self, spec: &UpstreamSpec) -> UpstreamSpec {
        let mut spec = spec.clone();
        if let Some(address) = spec.simulator.as_ref().and_then(|s| self.simulators.get(s)) {
            spec.host = address.ip().to_string();
            spec.port = address.port();
        }
        spec
    }

    /// Brings the pools to `specs` and returns them in config order. Fails
    /// without changing anything when a pool cannot be prepared (e.g. its
    /// TLS files are unreadable).
    pub fn apply(
        &mut self,
        specs: &[UpstreamSpec],
    ) -> Result<(Vec<Arc<Upstream>>, UpstreamChanges), UpstreamError> {
        let specs: Vec<UpstreamSpec> = specs.iter().map(|s| self.wired(s)).collect();
        let specs = specs.as_slice();
        let accounts = accounts(specs, &self.accounts)?;
        let mut prepared = Vec::new();
        for spec in specs {
            match self.running.get(&spec.name) {
                Some(running) if running.spec == *spec => {}
                _ => prepared.push(prepare(spec, &accounts)?),
            }
        }
        self.accounts = accounts;
        let mut changes = UpstreamChanges::default();
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let removed: Vec<String> = self
            .running
            .keys()
            .filter(|name| !names.contains(&name.as_str()))
            .cloned()
            .collect();
        for name in removed {
            if let Some(old) = self.running.remove(&name) {
                info!(upstream = name, "upstream removed: draining");
                self.replaced.push(Replaced {
                    old,
                    gates: Vec::new(),
                    new: None,
                });
                changes.removed.push(name);
            }
        }
        for Prepared { spec, mut config } in prepared {
            config.gate = self.gate.clone();
            let name = spec.name.clone();
            let mut replaced = None;
            if let Some(old) = self.running.remove(&name) {
                info!(
                    upstream = name,
                    "upstream changed: rebinding one session at a time"
                );
                let gates: Vec<CancellationToken> = (0..config.sessions.max(1))
                    .map(|_| CancellationToken::new())
                    .collect();
                config.start_after = gates.clone();
                replaced = Some((old, gates));
                changes.changed.push(name.clone());
            } else {
                changes.added.push(name.clone());
            }
            let stop = self.shutdown.child_token();
            let upstream = Upstream::start(config, self.inbound.clone(), stop.clone());
            if let Some((old, gates)) = replaced {
                self.replaced.push(Replaced {
                    old,
                    gates,
                    new: Some(upstream.clone()),
                });
            }
            self.running.insert(
                name,
                Running {
                    spec,
                    upstream,
                    stop,
                },
            );
        }
        let ordered = specs
            .iter()
            .filter_map(|s| self.running.get(&s.name).map(|r| r.upstream.clone()))
            .collect();
        Ok((ordered, changes))
    }

    /// Drains the pools the last `apply` replaced; call it once the router
    /// that no longer lists them is in force, so nothing new is sent there.
    pub fn drain_replaced(&mut self) {
        for replaced in self.replaced.drain(..) {
            self.tasks.spawn(drain(replaced));
        }
    }

    /// Every running pool, in no particular order.
    pub fn all(&self) -> Vec<Arc<Upstream>> {
        self.running.values().map(|r| r.upstream.clone()).collect()
    }
}

/// Retires the old pool slot by slot, opening the new pool's gate for each
/// slot once the old session in it has answered what it had in flight and
/// unbound, and waiting for the new session to be bound before the next
/// old one goes: with two or more sessions, the upstream always has one.
async fn drain(Replaced { old, gates, new }: Replaced) {
    let slots = old.upstream.pool_size().max(gates.len());
    for slot in 0..slots {
        if slot < old.upstream.pool_size() {
            let deadline = tokio::time::Instant::now() + DRAIN_DEADLINE;
            old.upstream.retire_slot(slot, deadline).await;
        }
        if let Some(gate) = gates.get(slot) {
            gate.cancel();
            if let Some(new) = &new {
                let wanted = slot + 1;
                let waited = tokio::time::timeout(NEW_BIND_WAIT, async {
                    while new.bound() < wanted {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                })
                .await;
                if waited.is_err() {
                    warn!(
                        upstream = old.spec.name,
                        slot, "the new session did not bind in time; replacing the next one anyway"
                    );
                }
            }
        }
    }
    old.stop.cancel();
    info!(upstream = old.spec.name, "old sessions drained and unbound");
}

/// The vendor accounts of `specs` (see [`tern_router::account`]): each
/// account once, with the sessions of all its entries, reusing `running`'s
/// account where its limits did not change (so its pacer keeps what it
/// learnt, and the sessions of entries that did not change share it).
/// Bind caps likewise, by account (and server and port, where the vendor
/// counts per server and port).
fn accounts(specs: &[UpstreamSpec], running: &Accounts) -> Result<Accounts, UpstreamError> {
    let mut next = Accounts::default();
    for spec in specs {
        if next.accounts.contains_key(&spec.account) {
            continue;
        }
        let entries: Vec<&UpstreamSpec> =
            specs.iter().filter(|s| s.account == spec.account).collect();
        let limits = &spec.profile.limits;
        let mut sessions: usize = entries.iter().map(|s| s.sessions).sum();
        if let (Some(cap), false) = (limits.sessions_per_credential, limits.per_server_port) {
            sessions = sessions.min(cap as usize);
        }
        // The lowest rate any entry of the account asks for.
        let rate = entries.iter().filter_map(|s| s.rate).min_by(f64::total_cmp);
        let wanted = AccountLimits::new(limits, rate, sessions);
        let account = match running.accounts.get(&spec.account) {
            Some(old) if old.limits == wanted => old.clone(),
            _ => Arc::new(
                Account::new(spec.account.clone(), wanted).map_err(|source| {
                    UpstreamError::Rate {
                        upstream: spec.name.clone(),
                        account: spec.account.clone(),
                        source,
                    }
                })?,
            ),
        };
        next.accounts.insert(spec.account.clone(), account);
    }
    for spec in specs {
        let limits = &spec.profile.limits;
        let Some(cap) = limits.sessions_per_credential else {
            continue;
        };
        let key = bind_key(spec);
        if next.caps.contains_key(&key) {
            continue;
        }
        let cap = match running.caps.get(&key) {
            Some(old) if old.sessions == cap as usize => old.clone(),
            _ => BindCap::new(key.clone(), cap as usize),
        };
        let sharing: Vec<&UpstreamSpec> = specs.iter().filter(|s| bind_key(s) == key).collect();
        for (name, share) in shares(&sharing, cap.sessions) {
            next.shares.insert(name, share);
        }
        next.caps.insert(key, cap);
    }
    Ok(next)
}

/// How many of a cap's `cap` sessions each of `entries` starts: one each
/// in config order, round after round, up to what each asks for, so that
/// two entries asking for 4 of Infobip's 4 start 2 each rather than one
/// taking all (at least 1 each: a slot beyond the cap waits for a permit).
fn shares(entries: &[&UpstreamSpec], cap: usize) -> Vec<(String, usize)> {
    let mut given = vec![0usize; entries.len()];
    let mut left = cap;
    while left > 0 {
        let before = left;
        for (k, entry) in entries.iter().enumerate() {
            if left > 0 && given[k] < entry.sessions {
                given[k] += 1;
                left -= 1;
            }
        }
        if left == before {
            break;
        }
    }
    entries
        .iter()
        .zip(given)
        .map(|(entry, n)| (entry.name.clone(), n.max(1)))
        .collect()
}

/// The key of `spec`'s bind cap: its account, and its server and port
/// when the vendor counts sessions per server and port (Mensatek).
fn bind_key(spec: &UpstreamSpec) -> String {
    if spec.profile.limits.per_server_port {
        format!("{}@{}:{}", spec.account, spec.host, spec.port)
    } else {
        spec.account.clone()
    }
}

/// The pool configuration for `spec`: loads TLS, takes its account's
/// pacer, window and bind cap.
fn prepare(spec: &UpstreamSpec, accounts: &Accounts) -> Result<Prepared, UpstreamError> {
    let account = accounts
        .accounts
        .get(&spec.account)
        .ok_or_else(|| UpstreamError::NoAccount {
            upstream: spec.name.clone(),
            account: spec.account.clone(),
        })?;
    let pacer = Some(account.pacer.clone());
    let account_window = account.window.clone();
    let bind_cap = accounts.caps.get(&bind_key(spec)).cloned();
    let tls = match &spec.tls {
        Some(tls) => Some(UpstreamTls {
            connector: tls.load().map_err(|source| UpstreamError::Tls {
                upstream: spec.name.clone(),
                source,
            })?,
            server_name: tls.server_name.clone(),
        }),
        None => None,
    };
    // The vendor's timers: its enquire_link interval, and never a longer
    // wait for an answer than the vendor's own response timer.
    let session = spec.profile.timers.session_config(SessionConfig {
        window: spec.window,
        ..SessionConfig::default()
    });
    Ok(Prepared {
        spec: spec.clone(),
        config: UpstreamConfig {
            name: spec.name.clone(),
            host: spec.host.clone(),
            port: spec.port,
            tls,
            bind: spec.bind.clone(),
            sessions: accounts
                .shares
                .get(&spec.name)
                .copied()
                .unwrap_or(spec.sessions),
            session,
            backoff: BackoffConfig {
                initial: Duration::from_millis(500),
                max: Duration::from_secs(30),
                multiplier: 2.0,
                jitter: 0.3,
            },
            pacer,
            account_window,
            bind_cap,
            breaker: Default::default(),
            profile: spec.profile.clone(),
            start_after: Vec::new(),
            gate: None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tern_router::Profile;
    use tern_session::esme::BindParams;

    fn spec(name: &str, profile: &str, host: &str, sessions: usize) -> UpstreamSpec {
        let profile = Profile::builtin(profile).expect("listed").expect("valid");
        UpstreamSpec {
            name: name.to_owned(),
            host: host.to_owned(),
            port: 2775,
            simulator: None,
            profile: Arc::new(profile),
            bind: BindParams::new("tern", "x").expect("short"),
            sessions,
            window: 10,
            rate: None,
            account: "acct".to_owned(),
            tls: None,
        }
    }

    #[test]
    fn a_cap_is_shared_out_one_session_each_round_after_round() {
        let a = spec("a", "infobip", "h1", 4);
        let b = spec("b", "infobip", "h2", 4);
        let c = spec("c", "infobip", "h3", 1);
        let got = shares(&[&a, &b, &c], 4);
        assert_eq!(got, vec![("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]);
        // Less asked than the cap: each gets what it asked.
        assert_eq!(shares(&[&c], 4), vec![("c".into(), 1)]);
        // More entries than the cap: each starts one slot, which waits.
        assert_eq!(shares(&[&a, &b], 1), vec![("a".into(), 1), ("b".into(), 1)]);
    }

    #[test]
    fn mensatek_counts_per_server_and_port_infobip_per_account() {
        let m1 = spec("m1", "mensatek", "smpp01", 1);
        let m2 = spec("m2", "mensatek", "smpp02", 1);
        assert_ne!(bind_key(&m1), bind_key(&m2), "one session per server");
        let i1 = spec("i1", "infobip", "smpp1", 4);
        let i2 = spec("i2", "infobip", "smpp-ssl", 4);
        assert_eq!(bind_key(&i1), bind_key(&i2), "4 per account, any host");
        let accounts = accounts(&[i1, i2, m1, m2], &Accounts::default()).expect("valid");
        assert_eq!(accounts.accounts.len(), 1, "one account named acct");
        assert_eq!(accounts.caps.len(), 3);
        assert_eq!(accounts.shares.get("i1"), Some(&2));
        assert_eq!(accounts.shares.get("m2"), Some(&1));
    }
}
