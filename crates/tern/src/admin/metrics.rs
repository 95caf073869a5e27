//! The node's Prometheus metrics: one [`Metrics`] value, created once at
//! start-up, shared as `Arc<Metrics>` by every task that counts something and
//! by the admin listener that exposes it.
//!
//! Invariants:
//! - Every metric is registered exactly once, in [`Metrics::new`], under the
//!   `tern_` prefix; the pub fields are handles onto the same atomics the
//!   registry encodes, so updating a field is all a call site has to do.
//! - Counters are registered without the `_total` suffix: the encoder appends
//!   it to each sample, so `submits` is scraped as `tern_submits_total`.
//! - Gauges that describe state owned elsewhere (queue depths, sessions, store
//!   size) are written by [`AdminSource::refresh`](super::AdminSource::refresh)
//!   just before each scrape, never maintained incrementally, so they cannot
//!   drift from the truth.

use std::fmt::Write as _;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A family of histograms: the constructor is a plain `fn` so the family's
/// type can be named in a struct field.
pub type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

/// Upper bounds of the submit latency buckets, in seconds: 100 µs to 10 s,
/// three per decade (1, 2.5, 5). A broker answers from its own store, so most
/// answers land in the sub-millisecond buckets; the upper ones show a store
/// that stalls or an upstream that is waited on.
pub const SUBMIT_LATENCY_BUCKETS: [f64; 16] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Upper bounds of the receipt latency buckets, in seconds: 10 ms to one day.
/// Receipts come back in seconds on a good route and in hours on a bad one, so
/// the bounds follow human units (minutes, hours) operators alert on.
pub const RECEIPT_LATENCY_BUCKETS: [f64; 17] = [
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1_800.0, 3_600.0, 7_200.0,
    21_600.0, 43_200.0, 86_400.0,
];

/// Label set `{client, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientStatus {
    /// The client account (system_id) the answer went to.
    pub client: String,
    /// `ok` or the command status name returned to the client.
    pub status: String,
}

/// Label set `{upstream, status}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamStatus {
    /// The upstream's configured name.
    pub upstream: String,
    /// `ok` or the command status name the upstream answered.
    pub status: String,
}

/// Label set `{upstream}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    /// The upstream's configured name.
    pub upstream: String,
}

/// Label set `{upstream, state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamState {
    /// The upstream the receipt came from.
    pub upstream: String,
    /// The canonical receipt state name (`DELIVRD`, `UNDELIV`, ...).
    pub state: String,
}

/// Label set `{client, state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientState {
    /// The client the receipt was relayed to.
    pub client: String,
    /// The canonical receipt state name.
    pub state: String,
}

/// Label set `{queue}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabel {
    /// `ready`, `outbox` or `unmatched`.
    pub queue: String,
}

/// Label set `{side, state}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabel {
    /// `client` (sessions we serve) or `upstream` (sessions we open).
    pub side: String,
    /// The session state counted, e.g. `bound`.
    pub state: String,
}

/// Label set `{upstream, state}` of the breaker gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BreakerLabel {
    /// The upstream's configured name.
    pub upstream: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
}

/// Label set `{client}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientLabel {
    /// The client account (system_id).
    pub client: String,
}

/// A gauge holding seconds, with a fraction.
pub type SecondsGauge = Gauge<f64, AtomicU64>;

/// Label set `{client, reason}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientReason {
    /// The configured account the bind named, or `unknown` (a system_id
    /// no account has: not a label, or anyone could make up series).
    pub client: String,
    /// Why: `system_id`, `password`, `address`, `bind_type`, `max_binds`
    /// or `locked_out`.
    pub reason: String,
}

/// Label set `{result}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or `error`.
    pub result: String,
}

/// Every metric the node exports. Cheap to update from any task: each field
/// is a handle onto atomics (or a lock held for one observation).
pub struct Metrics {
    /// Owns the registrations; only read when encoding a scrape.
    registry: Registry,
    /// `tern_submits_total{client, status}`: submit_sm answered to clients.
    pub submits: Family<ClientStatus, Counter>,
    /// `tern_submit_multis_total{client, status}`: submit_multi answered to
    /// clients (status of the response itself).
    pub submit_multis: Family<ClientStatus, Counter>,
    /// `tern_submit_multi_destinations_total{client, status}`: their
    /// destinations, `ESME_ROK` for each stored, else the status listed
    /// for it in unsuccess_sme.
    pub submit_multi_destinations: Family<ClientStatus, Counter>,
    /// `tern_upstream_submits_total{upstream, status}`: submit_sm answered by
    /// upstreams.
    pub upstream_submits: Family<UpstreamStatus, Counter>,
    /// `tern_failovers_total{upstream}`: messages given up on an upstream and
    /// routed elsewhere, labelled with the upstream given up.
    pub failovers: Family<UpstreamLabel, Counter>,
    /// `tern_retries_total`: messages put back on the retry queue.
    pub retries: Counter,
    /// `tern_receipts_total{upstream, state}`: receipts received.
    pub receipts: Family<UpstreamState, Counter>,
    /// `tern_receipts_relayed_total{client, state}`: receipts delivered to
    /// clients.
    pub receipts_relayed: Family<ClientState, Counter>,
    /// `tern_receipts_unmatched_total{upstream}`: receipts whose message id
    /// matched no stored message (yet).
    pub receipts_unmatched: Family<UpstreamLabel, Counter>,
    /// `tern_mo_total{upstream}`: mobile-originated messages received.
    pub mo: Family<UpstreamLabel, Counter>,
    /// `tern_outbox_expired_total`: deliveries to clients dropped because
    /// they waited longer than the outbox keeps them.
    pub outbox_expired: Counter,
    /// `tern_outbox_ack_writes_total`: store writes that removed what
    /// clients acknowledged (the outbox gathers many answers per write).
    pub outbox_ack_writes: Counter,
    /// `tern_queue_depth{queue}`: set on each scrape.
    pub queue_depth: Family<QueueLabel, Gauge>,
    /// `tern_sessions{side, state}`: set on each scrape.
    pub sessions: Family<SessionLabel, Gauge>,
    /// `tern_in_flight`: requests sent upstream and not answered yet.
    pub in_flight: Gauge,
    /// `tern_submit_latency_seconds`: client submit_sm to submit_sm_resp.
    pub submit_latency: Histogram,
    /// `tern_upstream_latency_seconds{upstream}`: upstream submit_sm to its
    /// submit_sm_resp.
    pub upstream_latency: HistogramFamily<UpstreamLabel>,
    /// `tern_receipt_latency_seconds`: accepting a message to storing its
    /// receipt for the client (observed where the receipts stage has the
    /// record in hand, not at delivery, which would read it again).
    pub receipt_latency: Histogram,
    /// `tern_reloads_total{result}`: configuration reloads attempted.
    pub reloads: Family<ResultLabel, Counter>,
    /// `tern_config_generation`: bumped by each applied configuration.
    pub config_generation: Gauge,
    /// `tern_reload_failed`: 1 while the last reload attempt failed, so an
    /// alert can fire on a bad file that is not in force.
    pub reload_failed: Gauge,
    /// `tern_store_size_bytes`: on-disk size of the store, set on each scrape.
    pub store_size_bytes: Gauge,
    /// `tern_orphans_requeued_total`: messages claimed by a node that left
    /// a shared store, put back in the ready queue by this node.
    pub orphans_requeued: Counter,
    /// `tern_binds_refused_total{client, reason}`: client binds refused.
    pub binds_refused: Family<ClientReason, Counter>,
    /// `tern_store_full`: 1 while the store refuses writes for want of disk
    /// space (submits answered ESME_RMSGQFUL, receipts not acknowledged),
    /// 0 otherwise; set on each scrape.
    pub store_full: Gauge,
    /// `tern_upstream_sessions_bound{upstream}`: sessions bound on this
    /// node, set on each scrape (0 for an upstream that is down here).
    pub upstream_sessions: Family<UpstreamLabel, Gauge>,
    /// `tern_upstream_breaker{upstream, state}`: 1 for the state each
    /// upstream's breaker is in, 0 for the other two; set on each scrape.
    pub upstream_breaker: Family<BreakerLabel, Gauge>,
    /// `tern_ready_age_seconds`: how long due messages may have waited in
    /// the ready queue; see [`Metrics::set_ready_age`].
    pub ready_age: SecondsGauge,
    /// `tern_outbox_age_seconds{client}`: age of the oldest item each
    /// client is owed (a client not taking its receipts), set on each scrape.
    pub outbox_age: Family<ClientLabel, SecondsGauge>,
    /// `tern_store_write_latency_seconds`: a message handed to the store to
    /// the store saying it is durable (group commit and its fsync on sled,
    /// the round trip to an fsyncing Redis).
    pub store_write_latency: Histogram,
    /// `tern_store_sync_seconds`: each `fdatasync` of the sled store's
    /// write-ahead log, told by the store ([`Metrics::store_sync_observer`]).
    /// The disk's own share of [`Metrics::store_write_latency`]. Empty on
    /// Redis: the server syncs its append-only file itself, and its cost
    /// shows in the write latency only.
    pub store_sync: Histogram,
    /// `tern_lease_renewals_total{result}`: renewals of this node's
    /// membership lease on a shared store: `ok`, `error` (the store did
    /// not answer) or `lost` (another node holds it; this node stops).
    pub lease_renewals: Family<ResultLabel, Counter>,
    /// `tern_redis_round_trips_total{step}`: round trips to Redis by step
    /// of a message's life (see `tern_storage::redis_store::Step`), copied
    /// from the store on each scrape; none on sled.
    pub redis_round_trips: Family<StepLabel, Counter>,
}

/// Label set `{step}`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabel {
    /// A step of a message's life: `accept`, `claim`, `attempt`…
    pub step: String,
}

fn submit_histogram() -> Histogram {
    Histogram::new(SUBMIT_LATENCY_BUCKETS)
}

impl Metrics {
    /// Creates and registers every metric, all at zero.
    pub fn new() -> Self {
        let mut metrics = Self {
            submits: Family::default(),
            submit_multis: Family::default(),
            submit_multi_destinations: Family::default(),
            upstream_submits: Family::default(),
            failovers: Family::default(),
            retries: Counter::default(),
            receipts: Family::default(),
            receipts_relayed: Family::default(),
            receipts_unmatched: Family::default(),
            mo: Family::default(),
            outbox_expired: Counter::default(),
            outbox_ack_writes: Counter::default(),
            queue_depth: Family::default(),
            sessions: Family::default(),
            in_flight: Gauge::default(),
            submit_latency: submit_histogram(),
            upstream_latency: Family::new_with_constructor(submit_histogram as fn() -> Histogram),
            receipt_latency: Histogram::new(RECEIPT_LATENCY_BUCKETS),
            reloads: Family::default(),
            config_generation: Gauge::default(),
            reload_failed: Gauge::default(),
            store_size_bytes: Gauge::default(),
            orphans_requeued: Counter::default(),
            binds_refused: Family::default(),
            store_full: Gauge::default(),
            upstream_sessions: Family::default(),
            upstream_breaker: Family::default(),
            ready_age: SecondsGauge::default(),
            outbox_age: Family::default(),
            store_write_latency: submit_histogram(),
            store_sync: submit_histogram(),
            lease_renewals: Family::default(),
            redis_round_trips: Family::default(),
            registry: Registry::with_prefix("tern"),
        };
        // Registered in this order, which is the order they are encoded in.
        metrics.register_submissions();
        metrics.register_deliveries();
        metrics.register_load();
        metrics.register_operations();
        metrics.register_health();
        // Series an alert takes `increase()` of exist from the start at 0,
        // so the first event counts (a series born at 1 has no increase).
        for result in ["ok", "error"] {
            let _ = metrics.reloads.get_or_create(&result_label(result));
        }
        for result in ["ok", "error", "lost"] {
            let _ = metrics.lease_renewals.get_or_create(&result_label(result));
        }
        metrics
    }

    /// Submissions: what clients sent and how they were answered, what
    /// upstreams answered, and messages moved or retried.
    fn register_submissions(&mut self) {
        self.registry.register(
            "submits",
            "submit_sm answered to clients, by client and status",
            self.submits.clone(),
        );
        self.registry.register(
            "submit_multis",
            "submit_multi answered to clients, by client and status",
            self.submit_multis.clone(),
        );
        self.registry.register(
            "submit_multi_destinations",
            "Destinations of clients' submit_multi, by client and status (ESME_ROK: stored)",
            self.submit_multi_destinations.clone(),
        );
        self.registry.register(
            "upstream_submits",
            "submit_sm answered by upstreams, by upstream and status",
            self.upstream_submits.clone(),
        );
        self.registry.register(
            "failovers",
            "Messages moved away from an upstream, by the upstream given up",
            self.failovers.clone(),
        );
        self.registry.register(
            "retries",
            "Messages put back on the retry queue",
            self.retries.clone(),
        );
    }

    /// Deliveries towards clients: receipts from upstreams and relayed,
    /// receipts nothing matched, MO, and what the outbox gave up.
    fn register_deliveries(&mut self) {
        self.registry.register(
            "receipts",
            "Delivery receipts received from upstreams, by upstream and state",
            self.receipts.clone(),
        );
        self.registry.register(
            "receipts_relayed",
            "Delivery receipts relayed to clients, by client and state",
            self.receipts_relayed.clone(),
        );
        self.registry.register(
            "receipts_unmatched",
            "Delivery receipts that matched no stored message, by upstream",
            self.receipts_unmatched.clone(),
        );
        self.registry.register(
            "mo",
            "Mobile-originated messages received, by upstream",
            self.mo.clone(),
        );
        self.registry.register(
            "outbox_expired",
            "Deliveries to clients dropped after waiting too long in the outbox",
            self.outbox_expired.clone(),
        );
        self.registry.register(
            "outbox_ack_writes",
            "Store writes that removed deliveries clients acknowledged",
            self.outbox_ack_writes.clone(),
        );
    }

    /// Load and latency: queues, sessions, requests in flight and the time
    /// each leg of a message takes.
    fn register_load(&mut self) {
        self.registry.register(
            "queue_depth",
            "Messages waiting, by queue",
            self.queue_depth.clone(),
        );
        self.registry.register(
            "sessions",
            "SMPP sessions, by side and state",
            self.sessions.clone(),
        );
        self.registry.register(
            "in_flight",
            "Requests sent upstream and not answered yet",
            self.in_flight.clone(),
        );
        self.registry.register(
            "submit_latency_seconds",
            "Time from a client's submit_sm to its submit_sm_resp",
            self.submit_latency.clone(),
        );
        self.registry.register(
            "upstream_latency_seconds",
            "Time from submit_sm sent upstream to its submit_sm_resp, by upstream",
            self.upstream_latency.clone(),
        );
        self.registry.register(
            "receipt_latency_seconds",
            "Time from accepting a message to queuing its delivery receipt for the client",
            self.receipt_latency.clone(),
        );
    }

    /// The node's own state: reloads and the configuration in force, the
    /// store, shared-store takeovers and refused binds.
    fn register_operations(&mut self) {
        self.registry.register(
            "reloads",
            "Configuration reloads, by result",
            self.reloads.clone(),
        );
        self.registry.register(
            "config_generation",
            "Generation of the configuration in force",
            self.config_generation.clone(),
        );
        self.registry.register(
            "reload_failed",
            "1 when the last configuration reload failed",
            self.reload_failed.clone(),
        );
        self.registry.register(
            "store_size_bytes",
            "On-disk size of the message store",
            self.store_size_bytes.clone(),
        );
        self.registry.register(
            "orphans_requeued",
            "Messages of a node that left a shared store, requeued by this node",
            self.orphans_requeued.clone(),
        );
        self.registry.register(
            "store_full",
            "1 while the message store refuses writes for want of disk space",
            self.store_full.clone(),
        );
        self.registry.register(
            "binds_refused",
            "Client binds refused, by account and reason",
            self.binds_refused.clone(),
        );
    }

    /// What alerts watch: upstream sessions and breakers, how long messages
    /// wait on either side, the store's write latency and the cluster lease.
    fn register_health(&mut self) {
        self.registry.register(
            "upstream_sessions_bound",
            "Upstream sessions bound on this node, by upstream",
            self.upstream_sessions.clone(),
        );
        self.registry.register(
            "upstream_breaker",
            "1 for the state each upstream's circuit breaker is in (closed, open, half_open)",
            self.upstream_breaker.clone(),
        );
        self.registry.register(
            "ready_age_seconds",
            "Seconds the oldest due message in the ready queue has waited (0 when none is due)",
            self.ready_age.clone(),
        );
        self.registry.register(
            "outbox_age_seconds",
            "Age of the oldest receipt or MO each client is owed, by client",
            self.outbox_age.clone(),
        );
        self.registry.register(
            "store_write_latency_seconds",
            "Time for the store to make an accepted message durable (commit and fsync)",
            self.store_write_latency.clone(),
        );
        self.registry.register(
            "store_sync_seconds",
            "Time of each fdatasync of the store's write-ahead log (sled; no samples on Redis, \
             whose server syncs its own file)",
            self.store_sync.clone(),
        );
        self.registry.register(
            "lease_renewals",
            "Renewals of this node's membership lease on a shared store, by result (ok, error, lost)",
            self.lease_renewals.clone(),
        );
        self.registry.register(
            "redis_round_trips",
            "Round trips to the Redis store, by step of a message's life (accept, claim, attempt, receipt...)",
            self.redis_round_trips.clone(),
        );
    }

    /// Encodes every metric in the Prometheus text format 0.0.4, the body
    /// served for `text/plain` scrapes (see [`Metrics::encode_openmetrics`]
    /// for the other one).
    pub fn encode(&self) -> String {
        openmetrics_to_prometheus(&self.encode_openmetrics())
    }

    /// Encodes every metric in the OpenMetrics 1.0 text format, ending in
    /// `# EOF`, for scrapers that ask for `application/openmetrics-text`.
    pub fn encode_openmetrics(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        // Writing into a String cannot fail and no registered metric refuses
        // to encode, so an error here is a bug: keep what was written rather
        // than fail the scrape.
        if let Err(err) = text::encode(&mut out, &self.registry) {
            tracing::error!(target: "tern::admin", %err, "encoding metrics failed");
        }
        out
    }

    /// Counts one client bind refused for `reason`.
    pub fn bind_refused(&self, client: &str, reason: &str) {
        self.binds_refused
            .get_or_create(&ClientReason {
                client: client.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts one submit_sm answered to `client` with `status` (`ok` or the
    /// command status name).
    pub fn submit(&self, client: &str, status: &str) {
        self.submits
            .get_or_create(&ClientStatus {
                client: client.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// Counts one submit_multi answered to `client` with `status`, and
    /// its destinations: each `(status, count)` of `destinations`.
    pub fn submit_multi(&self, client: &str, status: &str, destinations: &[(&str, u64)]) {
        let label = |status: &str| ClientStatus {
            client: client.to_owned(),
            status: status.to_owned(),
        };
        self.submit_multis.get_or_create(&label(status)).inc();
        for (status, n) in destinations {
            self.submit_multi_destinations
                .get_or_create(&label(status))
                .inc_by(*n);
        }
    }

    /// Counts one submit_sm answered by `upstream` with `status`.
    pub fn upstream_submit(&self, upstream: &str, status: &str) {
        self.upstream_submits
            .get_or_create(&UpstreamStatus {
                upstream: upstream.to_owned(),
                status: status.to_owned(),
            })
            .inc();
    }

    /// Counts one message given up on `upstream`.
    pub fn failover(&self, upstream: &str) {
        self.failovers
            .get_or_create(&upstream_label(upstream))
            .inc();
    }

    /// Counts one message put back on the retry queue.
    pub fn retry(&self) {
        self.retries.inc();
    }

    /// Counts one store write of a client's gathered acknowledgements.
    pub fn outbox_ack_write(&self) {
        self.outbox_ack_writes.inc();
    }

    /// Counts one receipt received from `upstream` in canonical `state`.
    pub fn receipt(&self, upstream: &str, state: &str) {
        self.receipts
            .get_or_create(&UpstreamState {
                upstream: upstream.to_owned(),
                state: state.to_owned(),
            })
            .inc();
    }

    /// Counts one receipt relayed to `client` in canonical `state`.
    pub fn receipt_relayed(&self, client: &str, state: &str) {
        self.receipts_relayed
            .get_or_create(&ClientState {
                client: client.to_owned(),
                state: state.to_owned(),
            })
            .inc();
    }

    /// Counts one receipt from `upstream` that matched no stored message.
    pub fn receipt_unmatched(&self, upstream: &str) {
        self.receipts_unmatched
            .get_or_create(&upstream_label(upstream))
            .inc();
    }

    /// Counts one mobile-originated message from `upstream`.
    pub fn mo_received(&self, upstream: &str) {
        self.mo.get_or_create(&upstream_label(upstream)).inc();
    }

    /// Counts `n` outbox entries dropped as expired.
    pub fn outbox_expire(&self, n: u64) {
        self.outbox_expired.inc_by(n);
    }

    /// Sets the depth of queue `name` (`ready`, `outbox`, `unmatched`).
    pub fn set_queue(&self, name: &str, depth: usize) {
        self.queue_depth
            .get_or_create(&QueueLabel {
                queue: name.to_owned(),
            })
            .set(gauge_value(depth));
    }

    /// Sets how many sessions on `side` (`client`/`upstream`) are in `state`.
    pub fn set_sessions(&self, side: &str, state: &str, count: usize) {
        self.sessions
            .get_or_create(&SessionLabel {
                side: side.to_owned(),
                state: state.to_owned(),
            })
            .set(gauge_value(count));
    }

    /// Sets how many requests await an upstream's answer.
    pub fn set_in_flight(&self, count: usize) {
        self.in_flight.set(gauge_value(count));
    }

    /// Records one client submit_sm → submit_sm_resp time.
    pub fn observe_submit(&self, elapsed: Duration) {
        self.submit_latency.observe(elapsed.as_secs_f64());
    }

    /// Records one upstream submit_sm → submit_sm_resp time.
    pub fn observe_upstream(&self, upstream: &str, elapsed: Duration) {
        self.upstream_latency
            .get_or_create(&upstream_label(upstream))
            .observe(elapsed.as_secs_f64());
    }

    /// Records one accept → receipt relayed time.
    pub fn observe_receipt(&self, elapsed: Duration) {
        self.receipt_latency.observe(elapsed.as_secs_f64());
    }

    /// Records a reload attempt: counts it by result and raises or clears
    /// `tern_reload_failed`.
    pub fn reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.reloads.get_or_create(&result_label(result)).inc();
        self.reload_failed.set(i64::from(!ok));
    }

    /// Sets the generation of the configuration in force.
    pub fn set_config_generation(&self, generation: u64) {
        self.config_generation.set(gauge_value(generation));
    }

    /// Counts messages taken over from a node that left.
    pub fn orphans_requeued(&self, n: usize) {
        self.orphans_requeued.inc_by(n as u64);
    }

    /// Sets the store's on-disk size.
    pub fn set_store_size(&self, bytes: u64) {
        self.store_size_bytes.set(gauge_value(bytes));
    }

    /// Sets whether the store is full.
    pub fn set_store_full(&self, full: bool) {
        self.store_full.set(i64::from(full));
    }

    /// Sets each upstream's bound sessions and breaker state from
    /// `(name, bound, breaker)`, forgetting upstreams a reload removed.
    pub fn set_upstreams<'a>(
        &self,
        upstreams: impl IntoIterator<Item = (&'a str, usize, &'a str)>,
    ) {
        self.upstream_sessions.clear();
        self.upstream_breaker.clear();
        for (name, bound, breaker) in upstreams {
            // At 0 from the first scrape: see `Metrics::new`.
            let _ = self.receipts_unmatched.get_or_create(&upstream_label(name));
            let _ = self.failovers.get_or_create(&upstream_label(name));
            self.upstream_sessions
                .get_or_create(&upstream_label(name))
                .set(gauge_value(bound));
            for state in ["closed", "open", "half_open"] {
                self.upstream_breaker
                    .get_or_create(&BreakerLabel {
                        upstream: name.to_owned(),
                        state: state.to_owned(),
                    })
                    .set(i64::from(state == breaker));
            }
        }
    }

    /// Sets `tern_ready_age_seconds`: how long the oldest due message in
    /// the ready queue has waited at `now_ms`, from when the first one was
    /// due (`oldest_ready_ms`, the queue is ordered by due time); 0 when the
    /// queue is empty or its first message is not due yet. It grows while
    /// nothing is sent (no upstream bound, a stalled dispatcher), which is
    /// what to alert on.
    pub fn set_ready_age(&self, oldest_ready_ms: Option<u64>, now_ms: u64) {
        let waited = oldest_ready_ms.map_or(0, |due| now_ms.saturating_sub(due));
        self.ready_age.set(waited as f64 / 1_000.0);
    }

    /// Sets the age of the oldest item owed to each client from
    /// `(client, seconds)`, forgetting clients owed nothing now.
    pub fn set_outbox_ages<'a>(&self, ages: impl IntoIterator<Item = (&'a str, f64)>) {
        self.outbox_age.clear();
        for (client, seconds) in ages {
            self.outbox_age
                .get_or_create(&ClientLabel {
                    client: client.to_owned(),
                })
                .set(seconds);
        }
    }

    /// Sets `tern_redis_round_trips_total` to the store's own counts (each
    /// only grows: the counter takes the difference).
    pub fn set_redis_round_trips<'a>(&self, counts: impl IntoIterator<Item = (&'a str, u64)>) {
        for (step, count) in counts {
            let counter = self.redis_round_trips.get_or_create(&StepLabel {
                step: step.to_owned(),
            });
            counter.inc_by(count.saturating_sub(counter.get()));
        }
    }

    /// Records one durable store write's time.
    pub fn observe_store_write(&self, elapsed: Duration) {
        self.store_write_latency.observe(elapsed.as_secs_f64());
    }

    /// What the sled store calls after each sync of its log
    /// (`StoreOptions::sync_observer`): one observation of
    /// `tern_store_sync_seconds`, on the store's logger thread, no
    /// allocation.
    pub fn store_sync_observer(&self) -> tern_storage::SyncObserver {
        let histogram = self.store_sync.clone();
        tern_storage::SyncObserver::new(move |took| histogram.observe(took.as_secs_f64()))
    }

    /// Counts one membership lease renewal by `result` (`ok`, `error`,
    /// `lost`).
    pub fn lease_renewal(&self, result: &str) {
        self.lease_renewals
            .get_or_create(&result_label(result))
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Kept short on purpose: the derived form would print every label set of
/// every family, which is what `/metrics` is for.
impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prefix", &"tern")
            .finish_non_exhaustive()
    }
}

fn upstream_label(upstream: &str) -> UpstreamLabel {
    UpstreamLabel {
        upstream: upstream.to_owned(),
    }
}

fn result_label(result: &str) -> ResultLabel {
    ResultLabel {
        result: result.to_owned(),
    }
}

/// Gauges are `i64`; a count beyond that is not a real state, so saturate
/// instead of wrapping negative.
fn gauge_value<N: TryInto<i64>>(n: N) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

/// Rewrites OpenMetrics text into the Prometheus text format 0.0.4.
///
/// The two differ in what this registry produces in only two ways:
/// OpenMetrics names a counter family without `_total` in `# HELP`/`# TYPE`
/// while its samples carry it (0.0.4 wants the family named as its samples),
/// and OpenMetrics ends with `# EOF` and may carry `# UNIT` lines, which 0.0.4
/// does not know. Sample lines are identical and pass through untouched.
pub fn openmetrics_to_prometheus(openmetrics: &str) -> String {
    let counters: Vec<&str> = openmetrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let descriptor = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|kind| line.strip_prefix(kind).map(|rest| (kind, rest)));
        if let Some((kind, rest)) = descriptor {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(&name) {
                // Writing into a String cannot fail.
                let _ = writeln!(out, "{kind}{name}_total {tail}");
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let value = line.strip_prefix(name_and_labels)?.strip_prefix(' ')?;
            value.parse().ok()
        })
    }

    #[test]
    fn redis_round_trips_follow_the_stores_counts_by_step() {
        let metrics = Metrics::new();
        metrics.set_redis_round_trips([("accept", 5), ("receipt", 2)]);
        metrics.set_redis_round_trips([("accept", 7), ("receipt", 2)]);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"tern_redis_round_trips_total{step="accept"}"#),
            Some(7.0)
        );
        assert_eq!(
            sample(&text, r#"tern_redis_round_trips_total{step="receipt"}"#),
            Some(2.0)
        );
    }

    #[test]
    fn counters_are_named_as_their_samples_in_prometheus_text() {
        let metrics = Metrics::new();
        metrics.submit("acme", "ok");
        metrics.retry();
        let text = metrics.encode();
        assert!(
            text.contains("# TYPE tern_submits_total counter\n"),
            "{text}"
        );
        assert!(text.contains("# HELP tern_submits_total submit_sm answered"));
        assert!(text.contains("# TYPE tern_retries_total counter\n"));
        assert!(!text.contains("# TYPE tern_submits counter"));
        assert!(!text.contains("# EOF"));
        assert_eq!(
            sample(&text, r#"tern_submits_total{client="acme",status="ok"}"#),
            Some(1.0)
        );
        assert_eq!(sample(&text, "tern_retries_total"), Some(1.0));
    }

    #[test]
    fn openmetrics_keeps_its_own_shape() {
        let metrics = Metrics::new();
        metrics.failover("up-a");
        let text = metrics.encode_openmetrics();
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(text.contains("# TYPE tern_failovers counter\n"));
        assert_eq!(
            sample(&text, r#"tern_failovers_total{upstream="up-a"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn histograms_have_every_bucket_sum_and_count() {
        let metrics = Metrics::new();
        metrics.observe_submit(Duration::from_micros(300));
        metrics.observe_submit(Duration::from_secs(60));
        metrics.observe_upstream("up-a", Duration::from_millis(20));
        metrics.observe_receipt(Duration::from_secs(90));
        let text = metrics.encode();
        let buckets = text
            .lines()
            .filter(|l| l.starts_with("tern_submit_latency_seconds_bucket{"))
            .count();
        assert_eq!(buckets, SUBMIT_LATENCY_BUCKETS.len() + 1);
        assert_eq!(
            sample(&text, r#"tern_submit_latency_seconds_bucket{le="0.0005"}"#),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"tern_submit_latency_seconds_bucket{le="+Inf"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "tern_submit_latency_seconds_count"),
            Some(2.0)
        );
        let sum = sample(&text, "tern_submit_latency_seconds_sum").expect("sum");
        assert!((sum - 60.0003).abs() < 1e-9, "{sum}");
        assert_eq!(
            sample(
                &text,
                r#"tern_upstream_latency_seconds_bucket{le="0.025",upstream="up-a"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"tern_receipt_latency_seconds_bucket{le="60.0"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"tern_receipt_latency_seconds_bucket{le="300.0"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn gauges_set_and_saturate() {
        let metrics = Metrics::new();
        metrics.set_queue("ready", 7);
        metrics.set_sessions("upstream", "bound", 2);
        metrics.set_store_size(u64::MAX);
        metrics.reload(false);
        let text = metrics.encode();
        assert_eq!(
            sample(&text, r#"tern_queue_depth{queue="ready"}"#),
            Some(7.0)
        );
        assert_eq!(
            sample(&text, r#"tern_sessions{side="upstream",state="bound"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, "tern_store_size_bytes"),
            Some(i64::MAX as f64)
        );
        assert_eq!(sample(&text, "tern_reload_failed"), Some(1.0));
        assert_eq!(
            sample(&text, r#"tern_reloads_total{result="error"}"#),
            Some(1.0)
        );
        metrics.reload(true);
        assert_eq!(sample(&metrics.encode(), "tern_reload_failed"), Some(0.0));
        assert_eq!(sample(&text, "tern_store_full"), Some(0.0));
        metrics.set_store_full(true);
        assert_eq!(sample(&metrics.encode(), "tern_store_full"), Some(1.0));
    }

    #[test]
    fn counters_alerts_take_increase_of_exist_at_zero() {
        let metrics = Metrics::new();
        metrics.set_upstreams([("up-a", 0, "open")]);
        let text = metrics.encode();
        for series in [
            r#"tern_reloads_total{result="ok"}"#,
            r#"tern_reloads_total{result="error"}"#,
            r#"tern_lease_renewals_total{result="error"}"#,
            r#"tern_lease_renewals_total{result="lost"}"#,
            r#"tern_receipts_unmatched_total{upstream="up-a"}"#,
            r#"tern_failovers_total{upstream="up-a"}"#,
        ] {
            assert_eq!(sample(&text, series), Some(0.0), "{series}\n{text}");
        }
        assert_eq!(
            sample(
                &text,
                r#"tern_upstream_breaker{upstream="up-a",state="open"}"#
            ),
            Some(1.0)
        );
        // An upstream a reload removed leaves the gauges.
        metrics.set_upstreams([("up-b", 1, "closed")]);
        let text = metrics.encode();
        assert!(!text.contains(r#"tern_upstream_sessions_bound{upstream="up-a"}"#));
        assert_eq!(
            sample(&text, r#"tern_upstream_sessions_bound{upstream="up-b"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.submit("we\"ird\\name", "ok");
        let text = metrics.encode();
        assert!(
            text.contains(r#"tern_submits_total{client="we\"ird\\name",status="ok"} 1"#),
            "{text}"
        );
    }
}
