//! The files operators load next to Tern, `deploy/prometheus/tern-rules.yml`
//! and `deploy/grafana/tern.json`, against the real `/metrics`: a daemon
//! with a simulator upstream and clients on loopback, then every metric name
//! the alerts and the dashboard use must be one Tern exports. An alert over
//! a metric that does not exist never fires, and nothing else says so.
//!
//! Also the metrics added for those alerts, each shown doing its job:
//! upstream sessions and breakers, the ready queue's and the outbox's age,
//! the store's write latency, its log syncs (`tern_store_sync_seconds`:
//! rising with traffic on sled, without samples on Redis) and the cluster
//! lease renewals.

use tern_testkit as common;

use common::metrics::{sample, total};

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use common::redis::Redis;
use common::{ack, client, submit_id, submit_sm, wait_for, Admin, Daemon, Launch, TempDir};
use serde_json::Value;
use tern_codec::{RegisteredDelivery, TimeString};
use tern_session::esme::UpstreamSession;
use tern_session::BindType;

/// How long the daemon has to show what a test waits for.
const WITHIN: Duration = Duration::from_secs(20);

/// A daemon with a sandbox upstream `sandbox` (or, with `sim` false, an
/// upstream `down` at port 0, where no connection is ever accepted), and
/// two clients: `acme`, which takes its receipts, and `lazy`, which binds
/// as a transmitter only and so never takes them. Every listener on port
/// 0.
fn config(sim: bool) -> String {
    let upstream = if sim {
        "[[simulator]]\nname = \"sandbox\"\naddress = \"127.0.0.1:0\"\n\
         [[upstream]]\nname = \"sandbox\"\nsimulator = \"sandbox\"\n"
    } else {
        "[[upstream]]\nname = \"down\"\nhost = \"127.0.0.1\"\nport = 0\n"
    };
    let route = if sim { "sandbox" } else { "down" };
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
path = "data"
{upstream}system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["{route}"]
[[client]]
system_id = "acme"
passwords = ["pw"]
[[client]]
system_id = "lazy"
passwords = ["pw"]
"#
    )
}

// ------------------------------------------------------- metric names

/// PromQL words that are neither functions (those are followed by `(`)
/// nor metrics: keywords, and the aggregation operators, which may be
/// followed by `by (...)` instead.
const KEYWORDS: [&str; 25] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Words followed by a list of label names in parentheses.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// `expr` without its strings, label matchers (`{...}`) and ranges
/// (`[...]`): what is left names metrics, functions and keywords only.
fn strip_selectors(expr: &str) -> String {
    let mut out = String::with_capacity(expr.len());
    let (mut braces, mut brackets) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in expr.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            _ if braces == 0 && brackets == 0 => out.push(c),
            _ => {}
        }
        if matches!(c, '}' | ']') {
            // Keep tokens apart: `x{a="b"}offset` must not read as one word.
            out.push(' ');
        }
    }
    out
}

/// The metric names a PromQL expression reads: identifiers that are not
/// a function (followed by `(`), a keyword, a label in `by (...)` and the
/// like, or part of a number.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let text: Vec<char> = strip_selectors(expr).chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < text.len() {
        let c = text[i];
        if c.is_ascii_digit() || c == '.' {
            // A number or a duration (1e-3, 0.99, 5m): never a name.
            while i < text.len() && (text[i].is_ascii_alphanumeric() || text[i] == '.') {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len()
            && (text[i].is_ascii_alphanumeric() || text[i] == '_' || text[i] == ':')
        {
            i += 1;
        }
        let word: String = text[start..i].iter().collect();
        let mut next = i;
        while next < text.len() && text[next].is_whitespace() {
            next += 1;
        }
        let opens = text.get(next) == Some(&'(');
        if LABEL_LISTS.contains(&word.as_str()) && opens {
            // Skip the label list: `by (job, le)`.
            while i < text.len() && text[i] != ')' {
                i += 1;
            }
            continue;
        }
        if opens || KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
            continue;
        }
        names.insert(word);
    }
    names
}

/// The `expr:` of every rule in a Prometheus rules file (one line, or a
/// `|`/`>` block indented under it).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if value.is_empty() || value.starts_with('|') || value.starts_with('>') {
            let indent = line.len() - line.trim_start().len();
            let block: Vec<&str> = lines[n + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .copied()
                .collect();
            exprs.push(block.join("\n"));
        } else {
            exprs.push(value.trim_matches(|c| c == '"' || c == '\'').to_owned());
        }
    }
    exprs
}

/// Every query of a Grafana dashboard: each panel's targets (rows
/// included) and the templating variables' `label_values(metric, label)`.
fn dashboard_exprs(dashboard: &Value) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut panels: Vec<&Value> = Vec::new();
    for panel in dashboard["panels"].as_array().into_iter().flatten() {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                exprs.push(expr.to_owned());
            }
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap_or("");
        // label_values(metric, label): only the metric is one.
        if let Some(args) = query.strip_prefix("label_values(") {
            let metric = args.split([',', ')']).next().unwrap_or("");
            exprs.push(metric.trim().to_owned());
        }
    }
    exprs
}

/// The metric names a `/metrics` body carries: each sample's, and for
/// each declared family its name (with `_bucket`, `_sum` and `_count` for a
/// histogram), so a family with no sample yet still counts as exported.
fn exported(metrics: &str) -> HashSet<String> {
    let mut names = HashSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_owned());
        }
    }
    names
}

/// Names used in `exprs` that `metrics` does not export, with the
/// expression using each.
fn missing(exprs: &[String], metrics: &HashSet<String>) -> Vec<(String, String)> {
    exprs
        .iter()
        .flat_map(|expr| {
            metric_names(expr)
                .into_iter()
                .map(move |n| (n, expr.clone()))
        })
        .filter(|(name, _)| !metrics.contains(name))
        .collect()
}

fn deploy_file(path: &str) -> String {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path);
    std::fs::read_to_string(&file).unwrap_or_else(|err| panic!("{}: {err}", file.display()))
}

/// Scrapes `admin` until the [`total`] of `series` has a value `check` accepts; the body.
async fn scrape_until(admin: &Admin, series: &str, check: impl Fn(f64) -> bool) -> String {
    let check = &check;
    wait_for(
        &format!("{series} as expected"),
        WITHIN,
        move || async move {
            // Refused while the daemon starts: poll again.
            let text = tern::admin::get(admin.0, "/metrics").await.ok()?.text();
            total(&text, series).filter(|v| check(*v)).map(|_| text)
        },
    )
    .await
}

#[test]
fn metric_names_skip_functions_keywords_labels_and_numbers() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (job, le) (rate(tern_a_bucket{x="y{z}"}[5m]))) > 1e-3
           or max_over_time(tern_b[$__rate_interval]) offset 5m == bool 0 and on (instance) tern_c
           unless sum(tern_d) without (le) / ignoring(x) group_left (y) tern_e"#,
    );
    let expected: BTreeSet<String> = ["tern_a_bucket", "tern_b", "tern_c", "tern_d", "tern_e"]
        .map(str::to_owned)
        .into();
    assert_eq!(names, expected);
    let rules = "groups:\n  - rules:\n      - alert: A\n        expr: tern_x > 1\n      - alert: B\n        expr: |\n          rate(tern_y[5m])\n            > 0\n        for: 1m\n";
    assert_eq!(rule_exprs(rules).len(), 2);
    let exported: HashSet<String> = ["tern_x".to_owned()].into();
    let gaps = missing(&rule_exprs(rules), &exported);
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0].0, "tern_y");
}

/// Acknowledges every deliver_sm `session` gets, until it closes.
fn take_receipts(mut session: UpstreamSession) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(request) = session.requests.recv().await {
            ack(request).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_alert_rules_and_the_dashboard_is_exported() {
    let mut daemon = Daemon::start("deploy-metrics", &config(true));
    let port = daemon.client_port();
    let admin = daemon.admin();
    let text = scrape_until(&admin, "tern_store_sync_seconds_count", |_| true).await;
    let syncs_before = sample(&text, "tern_store_sync_seconds_count").expect("sync count");
    let acme = client(port, "acme", "pw").bind().await;
    let acme_handle = acme.handle.clone();
    let _taker = take_receipts(acme);
    let lazy = client(port, "lazy", "pw")
        .bind_type(BindType::Transmitter)
        .bind()
        .await;
    // A refused bind, as operators see now and then.
    assert!(client(port, "acme", "wrong").try_bind().await.is_err());
    for n in 0..5 {
        let sm = submit_sm(
            &format!("3460000000{n}"),
            "hello",
            RegisteredDelivery::ALWAYS,
        );
        submit_id(&acme_handle, sm.clone()).await;
        submit_id(&lazy.handle, sm).await;
    }
    // Receipts relayed to acme; lazy's wait in its outbox, getting older.
    scrape_until(
        &admin,
        r#"tern_receipts_relayed_total{client="acme""#,
        |v| v >= 5.0,
    )
    .await;
    let text = scrape_until(&admin, r#"tern_outbox_age_seconds{client="lazy"}"#, |v| {
        v > 0.0
    })
    .await;

    assert_eq!(
        sample(&text, r#"tern_upstream_sessions_bound{upstream="sandbox"}"#),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tern_upstream_breaker{upstream="sandbox",state="closed"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"tern_upstream_breaker{upstream="sandbox",state="open"}"#
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "tern_store_write_latency_seconds_count"),
        Some(10.0)
    );
    // Each durable accept waited for a sync of the store's log.
    let syncs = sample(&text, "tern_store_sync_seconds_count").expect("sync count");
    assert!(
        syncs > syncs_before,
        "tern_store_sync_seconds_count {syncs_before} -> {syncs} under traffic"
    );
    assert!(sample(&text, "tern_store_sync_seconds_sum").is_some_and(|s| s > 0.0));
    assert!(
        sample(&text, r#"tern_outbox_age_seconds{client="acme"}"#).is_none(),
        "acme takes its receipts"
    );

    let metrics = exported(&text);
    let rules = rule_exprs(&deploy_file("prometheus/tern-rules.yml"));
    assert!(rules.len() >= 8, "{rules:?}");
    let dashboard: Value =
        serde_json::from_str(&deploy_file("grafana/tern.json")).expect("tern.json is JSON");
    let queries = dashboard_exprs(&dashboard);
    assert!(queries.len() >= 20, "{queries:?}");
    let gaps: Vec<_> = missing(&rules, &metrics)
        .into_iter()
        .chain(missing(&queries, &metrics))
        .collect();
    assert!(gaps.is_empty(), "not in /metrics: {gaps:#?}\n{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_age_grows_while_no_upstream_is_bound_and_not_for_messages_not_yet_due() {
    let mut daemon = Daemon::start("deploy-ready-age", &config(false));
    let port = daemon.client_port();
    let admin = daemon.admin();
    let acme = client(port, "acme", "pw").bind().await;
    let text = scrape_until(&admin, "tern_ready_age_seconds", |v| v == 0.0).await;
    assert_eq!(
        sample(&text, r#"tern_upstream_sessions_bound{upstream="down"}"#),
        Some(0.0)
    );
    submit_id(
        &acme.handle,
        submit_sm("34600000001", "waits", RegisteredDelivery::default()),
    )
    .await;
    // Nothing bound: nothing is sent, and the wait shows.
    scrape_until(&admin, "tern_ready_age_seconds", |v| v >= 1.5).await;
    drop(daemon);

    // A message scheduled for later is in the ready queue but not due:
    // nothing has waited.
    let mut daemon = Daemon::start("deploy-ready-later", &config(true));
    let port = daemon.client_port();
    let admin = daemon.admin();
    scrape_until(
        &admin,
        r#"tern_upstream_sessions_bound{upstream="sandbox"}"#,
        |v| v == 1.0,
    )
    .await;
    let acme = client(port, "acme", "pw").bind().await;
    let mut later = submit_sm("34600000002", "later", RegisteredDelivery::default());
    later.schedule_delivery_time = TimeString::new(b"000000010000000R".to_vec()).expect("time");
    submit_id(&acme.handle, later).await;
    scrape_until(&admin, r#"tern_queue_depth{queue="ready"}"#, |v| v == 1.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = admin.text("/metrics").await;
    assert_eq!(
        sample(&text, r#"tern_queue_depth{queue="ready"}"#),
        Some(1.0)
    );
    let age = sample(&text, "tern_ready_age_seconds").expect("ready age");
    assert_eq!(age, 0.0, "a message not due yet is not waiting");
}

/// Also: on Redis the store has no log of its own to sync, so
/// `tern_store_sync_seconds` is exported without samples while writes are
/// made durable (by the Redis server's own fsync).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_shared_store_counts_its_lease_renewals() {
    let redis = Redis::start("deploy-lease");
    let text = format!(
        r#"
[node]
id = 1
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.1:0"
[storage]
backend = "redis"
[storage.redis]
addresses = ["{}"]
prefix = "deploy-lease"
lease_ttl = "1500ms"
[[simulator]]
name = "sandbox"
address = "127.0.0.1:0"
[[upstream]]
name = "sandbox"
simulator = "sandbox"
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["sandbox"]
[[client]]
system_id = "acme"
passwords = ["pw"]
"#,
        redis.address()
    );
    let mut daemon = Launch::new().start(TempDir::new("deploy-lease"), &text);
    let (port, admin) = (daemon.client_port(), daemon.admin());
    let acme = client(port, "acme", "pw").bind().await;
    for n in 0..3 {
        let sm = submit_sm(
            &format!("3460000000{n}"),
            "hi",
            RegisteredDelivery::default(),
        );
        submit_id(&acme.handle, sm).await;
    }
    let text = scrape_until(&admin, r#"tern_lease_renewals_total{result="ok"}"#, |v| {
        v >= 2.0
    })
    .await;
    assert_eq!(
        sample(&text, r#"tern_lease_renewals_total{result="lost"}"#),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "tern_store_write_latency_seconds_count"),
        Some(3.0)
    );
    assert_eq!(sample(&text, "tern_store_sync_seconds_count"), Some(0.0));
}
