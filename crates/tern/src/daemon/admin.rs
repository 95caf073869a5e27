//! What the node tells the admin listener: readiness, sessions, upstreams,
//! queues, one message's story, the config in force (without secrets) and
//! how the last reload went.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Value};
use tern_router::breaker::BreakerState;
use tern_storage::{MessageRecord, State, TernId};

use super::node::Node;
use super::reload::Reloader;
use crate::admin::{AdminSource, Metrics, Readiness};
use crate::config::{ClientAccount, Config};

/// Held receipts listed by `/api/unmatched` at most.
const UNMATCHED_LISTED: usize = 1_000;

/// The node as the admin listener sees it.
#[derive(Debug)]
pub struct Source {
    node: Arc<Node>,
    reloader: Arc<Reloader>,
}

impl Source {
    /// A view of `node`.
    pub fn new(node: Arc<Node>, reloader: Arc<Reloader>) -> Self {
        Self { node, reloader }
    }
}

impl AdminSource for Source {
    fn readiness(&self) -> Readiness {
        let routing = self.node.routing();
        Readiness {
            // Reading a key proves the store answers; it was opened (and
            // verified) before the listeners started. A full store answers
            // reads but refuses every write: not ready.
            store: wait(self.node.store().get(TernId::from_u64(0))).is_ok()
                && !self.node.store().is_full(),
            // The admin listener starts after every client listener bound.
            listeners: true,
            upstreams_bound: routing.router.upstreams().iter().map(|u| u.bound()).sum(),
        }
    }

    fn sessions(&self) -> Value {
        let accounts = self.node.accounts().current();
        let clients: Vec<Value> = self
            .node
            .clients()
            .iter()
            .map(|s| {
                let account = accounts.iter().find(|a| a.system_id == s.account);
                json!({
                    "account": s.account,
                    "bind_type": s.bind_type.name(),
                    "peer": s.handle.peer().map(|p| p.to_string()),
                    "in_flight": s.handle.in_flight(),
                    // What the account may do, as configured now.
                    "limits": account.map(client_limits),
                })
            })
            .collect();
        Value::Array(clients)
    }

    fn upstreams(&self) -> Value {
        let now = Instant::now();
        let routing = self.node.routing();
        let upstreams: Vec<Value> = routing
            .router
            .upstreams()
            .iter()
            .map(|u| {
                json!({
                    "name": u.name(),
                    "profile": u.profile().name,
                    "bound": u.bound(),
                    "pool_size": u.pool_size(),
                    "breaker": breaker(u.breaker().state()),
                    "available": u.is_available(now),
                    "in_flight": u.in_flight(),
                    "load": u.load(),
                    // Messages per second the account's pacer allows now
                    // (null: unpaced, no limit known or learnt yet).
                    "pace": u.pacer().map(|p| p.pace()).filter(|p| p.is_finite()),
                    // Several nodes: the session slots this node holds,
                    // and whether another node holds some.
                    "held_slots": self.node.cluster().map(|_| u.held_slots()),
                    "bound_elsewhere": self
                        .node
                        .cluster()
                        .as_ref()
                        .map(|c| c.bound_elsewhere.load().contains(u.name())),
                })
            })
            .collect();
        Value::Array(upstreams)
    }

    fn queues(&self) -> Value {
        match wait(self.node.store().queue_depths()) {
            Ok(depths) => json!({
                "ready": depths.ready,
                "in_flight": depths.in_flight,
                "outbox": depths.outbox,
                "unmatched": depths.unmatched,
            }),
            Err(err) => json!({ "error": err.to_string() }),
        }
    }

    fn unmatched(&self) -> Value {
        match wait(self.node.store().held_receipts(UNMATCHED_LISTED)) {
            Ok(held) => Value::Array(
                held.iter()
                    .map(|r| {
                        json!({
                            "upstream": r.upstream,
                            "upstream_id": r.upstream_id,
                            "received_ms": r.received_ms,
                        })
                    })
                    .collect(),
            ),
            Err(err) => json!({ "error": err.to_string() }),
        }
    }

    /// `/api/messages/{id}`: `id` in either form a client may hold (hex,
    /// or decimal for `id_format = "decimal"` clients); 16 digits 0-9,
    /// which both forms read, are the one of the two that is stored (hex
    /// if both are). The answer adds `client_id`, the id as its client
    /// sees it.
    fn message(&self, id: &str) -> Option<Value> {
        let store = self.node.store();
        let id: TernId = tern_storage::IdFormat::Hex
            .resolve(id.trim(), |id| matches!(wait(store.get(id)), Ok(Some(_))))?;
        let record = wait(store.get(id)).ok()??;
        let mut message = message_json(&record);
        let client_id = record.id_format.render(record.client_id());
        if let Some(fields) = message.as_object_mut() {
            fields.insert("client_id".to_owned(), Value::from(client_id.as_str()));
        }
        // A submit_multi's id: each destination's own story too, in order.
        if let Some(members) = record.submission_members() {
            let destinations: Vec<Value> = members
                .iter()
                .map(|m| match wait(store.get(*m)) {
                    Ok(Some(r)) => message_json(&r),
                    _ => json!({ "id": m.to_string(), "state": "purged" }),
                })
                .collect();
            message["destinations"] = Value::Array(destinations);
        }
        Some(message)
    }

    fn config(&self) -> Value {
        config_json(&self.reloader.current())
    }

    fn reload(&self) -> Value {
        serde_json::to_value(self.reloader.status()).unwrap_or(Value::Null)
    }

    fn preview(&self, path: &str, text: &str) -> Value {
        match self.reloader.preview(std::path::Path::new(path), text) {
            Ok(changes) => json!({ "valid": true, "changes": changes }),
            Err(errors) => json!({ "valid": false, "errors": errors }),
        }
    }

    fn refresh(&self, metrics: &Metrics) {
        // A store that does not answer leaves the last figures in place;
        // the watchdog and the failed writes say it louder.
        if let Ok(depths) = wait(self.node.store().queue_depths()) {
            metrics.set_ready_age(depths.oldest_ready_ms, tern_storage::now_ms());
            metrics.set_queue("ready", depths.ready);
            metrics.set_queue("in_flight", depths.in_flight);
            metrics.set_queue("outbox", depths.outbox);
            metrics.set_queue("unmatched", depths.unmatched);
        }
        metrics.set_redis_round_trips(self.node.store().redis_round_trips());
        let clients = self.node.clients();
        metrics.set_sessions("client", "bound", clients.len());
        let routing = self.node.routing();
        let upstreams = routing.router.upstreams();
        metrics.set_sessions(
            "upstream",
            "bound",
            upstreams.iter().map(|u| u.bound()).sum(),
        );
        metrics.set_in_flight(upstreams.iter().map(|u| u.in_flight()).sum());
        metrics.set_upstreams(
            upstreams
                .iter()
                .map(|u| (u.name(), u.bound(), breaker(u.breaker().state()))),
        );
        self.refresh_outbox_ages(metrics);
        metrics.set_store_full(self.node.store().is_full());
        if let Ok(Some(size)) = wait(self.node.store().size_on_disk()) {
            metrics.set_store_size(size);
        }
    }
}

impl Source {
    /// Sets `tern_outbox_age_seconds`: one seek per client with something
    /// owed (the oldest item comes first), so a scrape stays cheap however
    /// long the outboxes are. A store that does not answer leaves them out.
    fn refresh_outbox_ages(&self, metrics: &Metrics) {
        let Ok(clients) = wait(self.node.store().outbox_clients()) else {
            return;
        };
        let now = tern_storage::now_ms();
        let ages: Vec<(String, f64)> = clients
            .into_iter()
            .filter_map(|client| {
                let oldest = wait(self.node.store().outbox_pending(&client, None, 1)).ok()?;
                let (_, item) = oldest.first()?;
                let age = now.saturating_sub(item.stored_ms) as f64 / 1_000.0;
                Some((client, age))
            })
            .collect();
        metrics.set_outbox_ages(ages.iter().map(|(c, a)| (c.as_str(), *a)));
    }
}

/// Waits for a store read. The admin listener calls every method of
/// [`AdminSource`] on tokio's blocking pool (see its doc), so this holds a
/// pool thread while the read runs, never a runtime worker.
fn wait<F: std::future::Future>(read: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(read)
}

/// A breaker's state in one word.
fn breaker(state: BreakerState) -> &'static str {
    match state {
        BreakerState::Closed { .. } => "closed",
        BreakerState::Open { .. } => "open",
        BreakerState::HalfOpen => "half_open",
    }
}

/// One message's story: what the client sent, where it went, what came
/// back. The PDU is given in hex so `tern decode` can read it.
pub fn message_json(record: &MessageRecord) -> Value {
    let state = match record.state {
        State::Queued => "queued",
        State::InFlight => "in_flight",
        State::Submitted => "submitted",
        State::Final => "final",
    };
    let attempts: Vec<Value> = record
        .attempts
        .iter()
        .map(|a| {
            json!({
                "upstream": a.upstream,
                "at_ms": a.at_ms,
                "status": a.status,
                "upstream_ids": a.upstream_ids,
                "failure": a.failure,
            })
        })
        .collect();
    let outcome = |o: &tern_storage::Outcome| {
        json!({
            "stat": o.stat,
            "err": o.err,
            "vendor": o.vendor_code,
        })
    };
    // What each part's receipts said (empty until the first receipt).
    let parts: Vec<Value> = record
        .parts
        .iter()
        .map(|p| {
            json!({
                "upstream": p.upstream,
                "upstream_id": p.upstream_id,
                "awaited": p.awaited,
                "outcome": p.outcome.as_ref().map(outcome),
                "final": p.is_final,
                "updated_ms": p.updated_ms,
            })
        })
        .collect();
    // Every receipt as the upstreams sent it, and as relayed to the client.
    let received: Vec<Value> = record
        .received
        .iter()
        .map(|r| {
            json!({
                "upstream": r.upstream,
                "upstream_id": r.upstream_id,
                "part": r.part,
                "vendor_stat": r.vendor_stat,
                "vendor_err": r.vendor_err,
                "network_error": r.network_error.map(|(network_type, code)| json!({
                    "type": network_type,
                    "code": code,
                })),
                "canonical": outcome(&r.canonical),
                "final": r.is_final,
                "received_ms": r.received_ms,
                "vendor_tlvs": r.vendor_tlvs.iter().map(|(tag, value)| json!({
                    "tag": format!("0x{tag:04X}"),
                    "value": value.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let relayed: Vec<Value> = record
        .relayed
        .iter()
        .map(|r| {
            json!({
                "outbox_seq": r.outbox_seq,
                "part": r.part,
                "stat": r.stat,
                "err": r.err,
                "queued_ms": r.queued_ms,
                "acked_ms": r.acked_ms,
            })
        })
        .collect();
    json!({
        "id": record.id.to_string(),
        "client": record.client,
        "state": state,
        "accepted_ms": record.accepted_ms,
        "expires_ms": record.expires_ms,
        "receipt_requested": record.receipt_requested,
        "attempts": attempts,
        "parts": parts,
        "receipts_received": received,
        "receipts_relayed": relayed,
        "outcome": record.outcome.as_ref().map(outcome),
        "updated_ms": record.updated_ms,
        "not_before_ms": record.not_before_ms,
        "pdu": record.pdu.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "destination": tern_router::receipt::client_submit(record)
            .map(|sm| String::from_utf8_lossy(sm.destination.addr.as_bytes()).into_owned()),
        "submission": record.multi.as_ref().map(|m| m.submission.to_string()),
    })
}

/// A client account's limits as the admin API shows them: the bind types
/// it may use, sessions bound at once, submits per second (account and
/// session) and submits unanswered at once; null where there is no limit.
fn client_limits(account: &ClientAccount) -> Value {
    json!({
        "binds": account.binds.names(),
        "max_binds": account.max_binds,
        "rate": account.rate.map(|r| r.get()),
        "session_rate": account.session_rate.map(|r| r.get()),
        "window": account.window.map(|w| w.get()),
    })
}

/// The config in force, for operators: never a password or key.
pub fn config_json(config: &Config) -> Value {
    json!({
        "source": config.source.display().to_string(),
        "node": config.node_id,
        "store": match &config.backend {
            crate::config::Backend::Sled => json!({
                "backend": "sled",
                "path": config.store_path.display().to_string(),
                "durability": format!("{:?}", config.store.durability),
            }),
            crate::config::Backend::Redis(r) => json!({
                "backend": "redis",
                "addresses": r.addresses,
                "cluster": r.cluster,
                "prefix": r.prefix,
                "durability": format!("{:?}", r.durability),
                "lease_ttl_ms": r.lease_ttl.as_millis() as u64,
                "tls_ca": r.tls_ca.as_ref().map(|ca| ca.path.display().to_string()),
            }),
        },
        "listeners": config.listeners.iter().map(|l| json!({
            "address": l.address.to_string(),
            "tls": l.tls.is_some(),
        })).collect::<Vec<_>>(),
        "accounts": config.clients.iter().map(|c| json!({
            "system_id": c.system_id,
            "passwords": c.passwords.len(),
            "allowed_ips": c.allowed_ips.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "max_binds": c.max_binds,
            "rate": c.rate.map(|r| r.get()),
            "session_rate": c.session_rate.map(|r| r.get()),
            "binds": c.binds.names(),
            "window": c.window.map(|w| w.get()),
        })).collect::<Vec<_>>(),
        "upstreams": config.upstreams.iter().map(|u| json!({
            "name": u.name,
            "host": u.host,
            "port": u.port,
            "system_id": u.bind.system_id.to_string(),
            "profile": u.profile.name,
            "sessions": u.sessions,
            "rate": u.rate,
            "tls": u.tls.is_some(),
        })).collect::<Vec<_>>(),
        "routes": config.table.rules().iter().map(|r| json!({
            "name": r.name,
            "prefixes": r.prefixes,
            "upstreams": r.upstreams.iter().map(|u| u.name.clone()).collect::<Vec<_>>(),
            "strategy": format!("{:?}", r.strategy),
        })).collect::<Vec<_>>(),
    })
}
