//! The admin listener over real sockets: a fake `AdminSource`, `serve` on
//! 127.0.0.1:0, and every route read back with the crate's own client (or a
//! raw request where the client cannot say it: other methods, Accept).
//! `/metrics` is checked with a strict Prometheus text-format parser written
//! here, so a change in the encoder that Prometheus would refuse fails a test.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tern::admin::{get, get_json, serve, AdminClientError, AdminSource, Metrics, Readiness};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------- fake node

/// A node whose answers the tests set and whose calls they count.
struct FakeNode {
    readiness: Mutex<Readiness>,
    config: Value,
    /// How many times `/metrics` asked for a refresh.
    refreshes: AtomicUsize,
    /// How long `queues()` takes, to hold a request open across shutdown.
    queues_delay: Mutex<Duration>,
}

impl AdminSource for FakeNode {
    fn readiness(&self) -> Readiness {
        self.readiness.lock().expect("lock").clone()
    }
    fn sessions(&self) -> Value {
        json!({ "clients": [{ "system_id": "acme", "state": "bound" }], "upstreams": [] })
    }
    fn upstreams(&self) -> Value {
        json!([{ "name": "up-a", "bound": true, "health": "ok" }])
    }
    fn queues(&self) -> Value {
        let delay = *self.queues_delay.lock().expect("lock");
        std::thread::sleep(delay);
        json!({ "ready": 3, "outbox": 1, "unmatched": 0 })
    }
    fn unmatched(&self) -> Value {
        json!([{ "upstream": "up-a", "upstream_id": "x-1", "received_ms": 1 }])
    }
    fn message(&self, id: &str) -> Option<Value> {
        match id {
            "m-1" => Some(json!({ "id": "m-1", "state": "DELIVRD" })),
            "boom" => panic!("the fake store failed"),
            _ => None,
        }
    }
    fn config(&self) -> Value {
        self.config.clone()
    }
    fn reload(&self) -> Value {
        json!({ "generation": 4, "ok": true })
    }
    fn refresh(&self, metrics: &Metrics) {
        let n = self.refreshes.fetch_add(1, Ordering::SeqCst) + 1;
        metrics.set_queue("ready", n * 10);
        metrics.set_sessions("upstream", "bound", 2);
        metrics.set_in_flight(5);
    }
}

/// One running listener and the handles the tests poke.
struct Admin {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    node: Arc<FakeNode>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(upstreams_bound: usize) -> Admin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let metrics = Arc::new(Metrics::new());
    let node = Arc::new(FakeNode {
        readiness: Mutex::new(Readiness {
            store: true,
            listeners: true,
            upstreams_bound,
        }),
        config: json!({
            "node": "tern-1",
            "clients": [{ "system_id": "acme", "password": "<redacted>" }],
            "upstreams": ["up-a", "up-b"],
            "note": "ünïcode ✓",
            "limits": { "window": 10, "rate": 50.5 }
        }),
        refreshes: AtomicUsize::new(0),
        queues_delay: Mutex::new(Duration::ZERO),
    });
    let shutdown = CancellationToken::new();
    let source: Arc<dyn AdminSource> = node.clone();
    let task = tokio::spawn(serve(
        listener,
        Arc::clone(&metrics),
        source,
        shutdown.clone(),
    ));
    Admin {
        addr,
        metrics,
        node,
        shutdown,
        task,
    }
}

impl Admin {
    async fn stop(self) {
        self.shutdown.cancel();
        let result = tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .expect("serve ends promptly after shutdown")
            .expect("serve task did not panic");
        result.expect("serve ends without error");
    }
}

/// Sends `request` as is and returns the whole raw response.
async fn raw_request(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("response within 5 s")
        .expect("read response");
    String::from_utf8(response).expect("utf-8 response")
}

// ------------------------------------------- strict Prometheus text parser

/// A sample's labels, in the order written.
type Labels = Vec<(String, String)>;

/// One sample line.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

/// A parsed exposition in the Prometheus text format 0.0.4.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the sample with exactly this name and label set.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut want: Vec<(&str, &str)> = labels.to_vec();
        want.sort_unstable();
        self.samples
            .iter()
            .find(|s| {
                let mut have: Vec<(&str, &str)> = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                have.sort_unstable();
                s.name == name && have == want
            })
            .map(|s| s.value)
    }

    fn count(&self, name: &str) -> usize {
        self.samples.iter().filter(|s| s.name == name).count()
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("value {text:?} is not a float")),
    }
}

/// Parses `{k="v",...}` at the start of `rest`; returns the labels and what
/// follows the closing brace.
fn parse_labels(rest: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    let mut rest = rest.strip_prefix('{').ok_or("labels must open with {")?;
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest.split_once('=').ok_or("label without =")?;
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = after
            .strip_prefix('"')
            .ok_or("label value must be quoted")?
            .char_indices();
        let mut value = String::new();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label value")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("raw newline in label value".into()),
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        };
        if labels.iter().any(|(k, _): &(String, String)| k == name) {
            return Err(format!("label {name} repeated"));
        }
        labels.push((name.to_owned(), value));
        rest = &after[1 + end + 1..];
        if let Some(after_comma) = rest.strip_prefix(',') {
            rest = after_comma;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after label {name}"));
        }
    }
}

/// The family a sample belongs to, given the TYPE lines seen.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Result<&'a str, String> {
    if let Some(kind) = types.get(name) {
        return match kind.as_str() {
            "counter" | "gauge" | "untyped" => Ok(name),
            other => Err(format!("sample {name} named like its {other} family")),
        };
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if types.get(base).map(String::as_str) == Some("histogram") {
                return Ok(base);
            }
        }
    }
    Err(format!("sample {name} has no TYPE line"))
}

/// Parses `text` strictly as the Prometheus text format 0.0.4 and checks the
/// shape Prometheus relies on: every line well formed, a TYPE before each
/// family's samples, each family's lines contiguous, counters named
/// `*_total`, histograms with ascending cumulative buckets ending in `+Inf`
/// equal to `_count`.
fn parse_prometheus(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("exposition must end with a newline".into());
    }
    let mut exposition = Exposition::default();
    let mut helps = HashSet::new();
    let mut finished_families = HashSet::new();
    let mut current_family: Option<String> = None;
    for (number, line) in text.lines().enumerate() {
        let at = |msg: String| format!("line {}: {msg}: {line:?}", number + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match words.next() {
                Some("HELP") => {
                    let name = words.next().ok_or_else(|| at("HELP without name".into()))?;
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    let help = words.next().unwrap_or_default();
                    if help.contains('\\')
                        && help.replace("\\\\", "").replace("\\n", "").contains('\\')
                    {
                        return Err(at("bad escape in HELP".into()));
                    }
                    if !helps.insert(name.to_owned()) {
                        return Err(at(format!("second HELP for {name}")));
                    }
                }
                Some("TYPE") => {
                    let name = words.next().ok_or_else(|| at("TYPE without name".into()))?;
                    let kind = words.next().ok_or_else(|| at("TYPE without type".into()))?;
                    if !is_metric_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    if kind == "counter" && !name.ends_with("_total") {
                        return Err(at(format!("counter {name} not named *_total")));
                    }
                    if exposition.types.contains_key(name) {
                        return Err(at(format!("second TYPE for {name}")));
                    }
                    if exposition
                        .samples
                        .iter()
                        .any(|s| family_of(&s.name, &exposition.types).ok() == Some(name))
                    {
                        return Err(at(format!("TYPE for {name} after its samples")));
                    }
                    exposition.types.insert(name.to_owned(), kind.to_owned());
                }
                _ => {} // a plain comment
            }
            continue;
        }
        let name_end = line
            .find(['{', ' '])
            .ok_or_else(|| at("sample without value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..]).map_err(at)?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let rest = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("value must follow one space".into()))?;
        let mut fields = rest.split(' ');
        let value = parse_value(fields.next().unwrap_or_default()).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {timestamp:?}")))?;
        }
        if fields.next().is_some() {
            return Err(at("trailing fields".into()));
        }
        let family = family_of(name, &exposition.types).map_err(at)?.to_owned();
        if current_family.as_deref() != Some(family.as_str()) {
            if finished_families.contains(&family) {
                return Err(at(format!("family {family} is not contiguous")));
            }
            if let Some(previous) = current_family.replace(family.clone()) {
                finished_families.insert(previous);
            }
        }
        exposition.samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    check_histograms(&exposition)?;
    Ok(exposition)
}

fn check_histograms(exposition: &Exposition) -> Result<(), String> {
    for (family, kind) in &exposition.types {
        if kind != "histogram" {
            continue;
        }
        // Group bucket samples by their labels without `le`.
        let mut series: HashMap<Labels, Vec<(f64, f64)>> = HashMap::new();
        for sample in exposition
            .samples
            .iter()
            .filter(|s| s.name == format!("{family}_bucket"))
        {
            let le = sample
                .labels
                .iter()
                .find(|(k, _)| k == "le")
                .ok_or_else(|| format!("{family}_bucket without le"))?;
            let bound = parse_value(&le.1)?;
            let mut rest: Vec<_> = sample
                .labels
                .iter()
                .filter(|(k, _)| k != "le")
                .cloned()
                .collect();
            rest.sort();
            series.entry(rest).or_default().push((bound, sample.value));
        }
        for (labels, buckets) in series {
            for pair in buckets.windows(2) {
                if pair[0].0 >= pair[1].0 || pair[0].1 > pair[1].1 {
                    return Err(format!(
                        "{family}{labels:?}: buckets not ascending: {pair:?}"
                    ));
                }
            }
            let last = buckets.last().ok_or("no buckets")?;
            if last.0 != f64::INFINITY {
                return Err(format!("{family}{labels:?}: no +Inf bucket"));
            }
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let count = exposition
                .value(&format!("{family}_count"), &pairs)
                .ok_or_else(|| format!("{family}{labels:?}: no _count"))?;
            exposition
                .value(&format!("{family}_sum"), &pairs)
                .ok_or_else(|| format!("{family}{labels:?}: no _sum"))?;
            if count != last.1 {
                return Err(format!(
                    "{family}{labels:?}: +Inf {} != count {count}",
                    last.1
                ));
            }
        }
    }
    Ok(())
}

async fn scrape(addr: SocketAddr) -> Exposition {
    let response = get(addr, "/metrics").await.expect("scrape");
    assert_eq!(response.status, 200);
    assert_eq!(
        response.content_type.as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = response.text();
    parse_prometheus(&text).unwrap_or_else(|err| panic!("{err}\n--- exposition ---\n{text}"))
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn the_parser_refuses_what_prometheus_refuses() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\n";
    assert!(parse_prometheus(ok).is_ok());
    for bad in [
        "# TYPE a counter\na_total 1\n", // family named without _total
        "# TYPE a_total counter\na_total{k=\"v} 1\n", // unterminated label value
        "# TYPE a_total counter\na_total 1 2 3\n", // trailing fields
        "# TYPE a_total counter\na_total one\n", // not a float
        "# TYPE 1a gauge\n1a 1\n",       // bad name
        "b 1\n",                         // no TYPE
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\nh_sum 1\n", // no +Inf
        "# TYPE g gauge\ng 1\n# TYPE f gauge\nf 1\ng 2\n", // not contiguous
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

#[tokio::test]
async fn health_answers_ok() {
    let admin = start(1).await;
    let response = get(admin.addr, "/health").await.expect("health");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "ok\n");
    assert_eq!(
        response.content_type.as_deref(),
        Some("text/plain; charset=utf-8")
    );
    admin.stop().await;
}

#[tokio::test]
async fn ready_follows_the_source() {
    let admin = start(0).await;

    let response = get(admin.addr, "/ready").await.expect("ready");
    assert_eq!(response.status, 503);
    assert_eq!(
        response.json().expect("json"),
        json!({ "store": true, "listeners": true, "upstreams_bound": 0, "ready": false })
    );
    match get_json(admin.addr, "/ready").await {
        Err(AdminClientError::Status { status: 503, .. }) => {}
        other => panic!("expected a 503 status error, got {other:?}"),
    }

    admin.node.readiness.lock().expect("lock").upstreams_bound = 2;
    let body = get_json(admin.addr, "/ready").await.expect("ready");
    assert_eq!(
        body,
        json!({ "store": true, "listeners": true, "upstreams_bound": 2, "ready": true })
    );

    admin.node.readiness.lock().expect("lock").store = false;
    let response = get(admin.addr, "/ready").await.expect("ready");
    assert_eq!(response.status, 503);
    assert_eq!(response.json().expect("json")["store"], json!(false));
    admin.stop().await;
}

#[tokio::test]
async fn metrics_parse_and_counters_move() {
    let admin = start(1).await;

    let before = scrape(admin.addr).await;
    assert_eq!(
        before.value(
            "tern_submits_total",
            &[("client", "acme"), ("status", "ok")]
        ),
        None,
        "no series before the first submit"
    );
    assert_eq!(before.value("tern_retries_total", &[]), Some(0.0));

    for _ in 0..3 {
        admin.metrics.submit("acme", "ok");
    }
    admin.metrics.submit("acme", "ESME_RTHROTTLED");
    admin.metrics.upstream_submit("up-a", "ok");
    admin.metrics.failover("up-b");
    admin.metrics.retry();
    admin.metrics.receipt("up-a", "DELIVRD");
    admin.metrics.receipt_relayed("acme", "DELIVRD");
    admin.metrics.receipt_unmatched("up-a");
    admin.metrics.mo_received("up-a");
    admin.metrics.outbox_expire(2);
    admin.metrics.reload(true);
    admin.metrics.set_config_generation(4);
    admin.metrics.observe_submit(Duration::from_micros(400));
    admin.metrics.observe_submit(Duration::from_millis(30));
    admin
        .metrics
        .observe_upstream("up-a", Duration::from_millis(12));
    admin.metrics.observe_receipt(Duration::from_secs(42));

    let after = scrape(admin.addr).await;
    let counters = [
        (
            "tern_submits_total",
            vec![("client", "acme"), ("status", "ok")],
            3.0,
        ),
        (
            "tern_submits_total",
            vec![("client", "acme"), ("status", "ESME_RTHROTTLED")],
            1.0,
        ),
        (
            "tern_upstream_submits_total",
            vec![("upstream", "up-a"), ("status", "ok")],
            1.0,
        ),
        ("tern_failovers_total", vec![("upstream", "up-b")], 1.0),
        ("tern_retries_total", vec![], 1.0),
        (
            "tern_receipts_total",
            vec![("upstream", "up-a"), ("state", "DELIVRD")],
            1.0,
        ),
        (
            "tern_receipts_relayed_total",
            vec![("client", "acme"), ("state", "DELIVRD")],
            1.0,
        ),
        (
            "tern_receipts_unmatched_total",
            vec![("upstream", "up-a")],
            1.0,
        ),
        ("tern_mo_total", vec![("upstream", "up-a")], 1.0),
        ("tern_outbox_expired_total", vec![], 2.0),
        ("tern_reloads_total", vec![("result", "ok")], 1.0),
        ("tern_config_generation", vec![], 4.0),
        ("tern_reload_failed", vec![], 0.0),
    ];
    for (name, labels, want) in &counters {
        assert_eq!(after.value(name, labels), Some(*want), "{name}{labels:?}");
    }
    for counter in [
        "tern_submits_total",
        "tern_upstream_submits_total",
        "tern_failovers_total",
        "tern_retries_total",
        "tern_receipts_total",
        "tern_receipts_relayed_total",
        "tern_receipts_unmatched_total",
        "tern_mo_total",
        "tern_outbox_expired_total",
        "tern_reloads_total",
    ] {
        assert_eq!(
            after.types.get(counter).map(String::as_str),
            Some("counter")
        );
    }

    // Histograms: every bucket, +Inf, _sum and _count.
    for histogram in [
        "tern_submit_latency_seconds",
        "tern_upstream_latency_seconds",
        "tern_receipt_latency_seconds",
    ] {
        assert_eq!(
            after.types.get(histogram).map(String::as_str),
            Some("histogram")
        );
    }
    assert_eq!(after.count("tern_submit_latency_seconds_bucket"), 17);
    assert_eq!(
        after.value("tern_submit_latency_seconds_count", &[]),
        Some(2.0)
    );
    assert_eq!(
        after.value("tern_submit_latency_seconds_bucket", &[("le", "0.0005")]),
        Some(1.0)
    );
    assert_eq!(
        after.value("tern_submit_latency_seconds_bucket", &[("le", "0.05")]),
        Some(2.0)
    );
    assert_eq!(
        after.value(
            "tern_upstream_latency_seconds_bucket",
            &[("upstream", "up-a"), ("le", "+Inf")]
        ),
        Some(1.0)
    );
    assert_eq!(
        after.value("tern_receipt_latency_seconds_bucket", &[("le", "30.0")]),
        Some(0.0)
    );
    assert_eq!(
        after.value("tern_receipt_latency_seconds_bucket", &[("le", "60.0")]),
        Some(1.0)
    );
    let sum = after
        .value("tern_receipt_latency_seconds_sum", &[])
        .expect("sum");
    assert!((sum - 42.0).abs() < 1e-9, "{sum}");
    admin.stop().await;
}

#[tokio::test]
async fn each_scrape_refreshes_the_gauges() {
    let admin = start(1).await;
    let first = scrape(admin.addr).await;
    assert_eq!(
        first.value("tern_queue_depth", &[("queue", "ready")]),
        Some(10.0)
    );
    assert_eq!(
        first.value("tern_sessions", &[("side", "upstream"), ("state", "bound")]),
        Some(2.0)
    );
    assert_eq!(first.value("tern_in_flight", &[]), Some(5.0));
    let second = scrape(admin.addr).await;
    assert_eq!(
        second.value("tern_queue_depth", &[("queue", "ready")]),
        Some(20.0)
    );
    assert_eq!(admin.node.refreshes.load(Ordering::SeqCst), 2);

    // Other routes do not refresh.
    get(admin.addr, "/health").await.expect("health");
    get_json(admin.addr, "/api/queues").await.expect("queues");
    assert_eq!(admin.node.refreshes.load(Ordering::SeqCst), 2);
    admin.stop().await;
}

#[tokio::test]
async fn openmetrics_when_asked_for() {
    let admin = start(1).await;
    admin.metrics.submit("acme", "ok");
    let response = raw_request(
        admin.addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/openmetrics-text; version=1.0.0; charset=utf-8"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(body.contains("# TYPE tern_submits counter\n"));
    assert!(body.contains("tern_submits_total{client=\"acme\",status=\"ok\"} 1\n"));
    admin.stop().await;
}

#[tokio::test]
async fn api_views_return_the_source_json() {
    let admin = start(1).await;
    let addr = admin.addr;
    assert_eq!(
        get_json(addr, "/api/config").await.expect("config"),
        admin.node.config,
        "config comes back exactly as given"
    );
    assert_eq!(
        get_json(addr, "/api/sessions").await.expect("sessions"),
        admin.node.sessions()
    );
    assert_eq!(
        get_json(addr, "/api/upstreams").await.expect("upstreams"),
        admin.node.upstreams()
    );
    assert_eq!(
        get_json(addr, "/api/queues").await.expect("queues"),
        admin.node.queues()
    );
    assert_eq!(
        get_json(addr, "/api/unmatched").await.expect("unmatched"),
        admin.node.unmatched()
    );
    assert_eq!(
        get_json(addr, "/api/reload").await.expect("reload"),
        admin.node.reload()
    );
    let response = get(addr, "/api/config").await.expect("config");
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    admin.stop().await;
}

#[tokio::test]
async fn messages_by_id() {
    let admin = start(1).await;
    assert_eq!(
        get_json(admin.addr, "/api/messages/m-1")
            .await
            .expect("m-1"),
        json!({ "id": "m-1", "state": "DELIVRD" })
    );

    let response = get(admin.addr, "/api/messages/x").await.expect("x");
    assert_eq!(response.status, 404);
    assert_eq!(response.content_type.as_deref(), Some("application/json"));
    assert_eq!(
        response.json().expect("json"),
        json!({ "error": "no message x" })
    );
    match get_json(admin.addr, "/api/messages/x").await {
        Err(AdminClientError::Status {
            status: 404, body, ..
        }) => assert!(body.contains("no message x"), "{body}"),
        other => panic!("expected 404, got {other:?}"),
    }

    // Percent-encoded ids reach the source decoded.
    let response = get(admin.addr, "/api/messages/a%20b").await.expect("a b");
    assert_eq!(
        response.json().expect("json"),
        json!({ "error": "no message a b" })
    );
    admin.stop().await;
}

#[tokio::test]
async fn a_failing_source_fails_one_request_only() {
    let admin = start(1).await;
    let response = get(admin.addr, "/api/messages/boom").await.expect("boom");
    assert_eq!(response.status, 500);
    assert_eq!(
        response.json().expect("json"),
        json!({ "error": "admin source failed" })
    );
    let response = get(admin.addr, "/health").await.expect("health");
    assert_eq!(response.status, 200);
    admin.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_methods() {
    let admin = start(1).await;
    let response = get(admin.addr, "/nope").await.expect("nope");
    assert_eq!(response.status, 404);
    assert_eq!(
        response.json().expect("json"),
        json!({ "error": "no route /nope" })
    );
    assert_eq!(get(admin.addr, "/api").await.expect("api").status, 404);
    assert_eq!(
        get(admin.addr, "/api/messages/")
            .await
            .expect("empty id")
            .status,
        404
    );

    for method in ["POST", "DELETE", "PUT"] {
        let response = raw_request(
            admin.addr,
            &format!("{method} /health HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 405"), "{method}: {response}");
    }
    admin.stop().await;
}

#[tokio::test]
async fn shutdown_ends_serve_and_closes_the_port() {
    let admin = start(1).await;
    let addr = admin.addr;
    get(addr, "/health").await.expect("up");
    admin.stop().await;
    match get(addr, "/health").await {
        Err(AdminClientError::Connect { .. }) => {}
        other => panic!("expected the port closed, got {other:?}"),
    }
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() {
    let admin = start(1).await;
    *admin.node.queues_delay.lock().expect("lock") = Duration::from_millis(300);
    let addr = admin.addr;
    let slow = tokio::spawn(async move { get_json(addr, "/api/queues").await });
    // Let the request reach the source before shutting down.
    tokio::time::sleep(Duration::from_millis(100)).await;
    admin.stop().await;
    let body = slow
        .await
        .expect("join")
        .expect("the request in progress is answered");
    assert_eq!(body["ready"], json!(3));
}

#[tokio::test]
async fn a_stuck_client_cannot_hold_shutdown() {
    let admin = start(1).await;
    // Half a request, never finished: the connection stays open.
    let mut stuck = TcpStream::connect(admin.addr).await.expect("connect");
    stuck
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.shutdown.cancel();
    let result = tokio::time::timeout(
        tern::admin::SHUTDOWN_GRACE + Duration::from_secs(2),
        admin.task,
    )
    .await
    .expect("serve ends within the grace")
    .expect("serve task did not panic");
    result.expect("serve ends without error");
    drop(stuck);
}
