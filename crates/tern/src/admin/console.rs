//! The operator console at `/`: one page, HTML, CSS and a small script
//! embedded in the binary at build time (no CDN, no build step).
//!
//! The server renders every table (upstreams, clients, queues, receipts by
//! state, last reload) into the HTML it sends, so the page reads the same
//! with JavaScript off, in a terminal browser or on a phone. The script
//! only polls the JSON routes and `/metrics` to refresh those tables, add
//! rates (which need two readings) and draw 15 minutes of small charts kept
//! in the page's memory. Nothing shown comes from the config's secrets: the
//! views it reads never carry a password or a token.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

/// The page around the tables; `{{...}}` marks what [`page`] fills in.
const PAGE: &str = include_str!("console/page.html");
/// The page's style sheet, inlined so the page is one response.
const CSS: &str = include_str!("console/console.css");
/// The refresh and chart script, inlined too.
const SCRIPT: &str = include_str!("console/console.js");

/// What the node says at one moment, as the JSON routes and `/metrics`
/// say it; the tables are rendered from this alone.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// `/api/upstreams`.
    pub upstreams: Value,
    /// `/api/sessions`.
    pub sessions: Value,
    /// `/api/queues`.
    pub queues: Value,
    /// `/api/reload`.
    pub reload: Value,
    /// `/metrics` in the Prometheus text format.
    pub metrics: String,
}

/// A message trace asked for with `/?trace=ID`: the id, and what
/// `/api/messages/{id}` answers (`None`: no such message).
pub type Trace = (String, Option<Value>);

/// The whole page: tables from `snapshot`, and the trace when one was asked
/// for (the search box without JavaScript submits `?trace=`).
pub fn page(snapshot: &Snapshot, trace: Option<&Trace>) -> String {
    let (trace_id, trace_html) = match trace {
        None => (String::new(), String::new()),
        Some((id, found)) => {
            let body = match found {
                Some(value) => format!(
                    "<h2>Trace {}</h2><pre>{}</pre>",
                    escape(id),
                    escape(&serde_json::to_string_pretty(value).unwrap_or_default())
                ),
                None => format!("<h2 class=\"bad\">No message {}</h2>", escape(id)),
            };
            (escape(id), body)
        }
    };
    PAGE.replace("{{CSS}}", CSS)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{TRACE_ID}}", &trace_id)
        .replace("{{TRACE}}", &trace_html)
        .replace("{{TABLES}}", &tables(snapshot))
}

/// The five tables. `console.js` renders the same markup from the same
/// sources, so a refresh changes numbers, not layout.
pub fn tables(snapshot: &Snapshot) -> String {
    let mut out = String::new();
    upstreams_table(&mut out, snapshot);
    clients_table(&mut out, snapshot);
    queues_table(&mut out, snapshot);
    receipts_table(&mut out, snapshot);
    reload_table(&mut out, &snapshot.reload);
    out
}

fn upstreams_table(out: &mut String, snapshot: &Snapshot) {
    let sent = sums_by(&snapshot.metrics, "tern_upstream_submits_total", "upstream");
    out.push_str(
        "<h2>Upstreams</h2><div class=\"wrap\"><table id=\"upstreams\"><tr><th>upstream</th>\
         <th>state</th><th>breaker</th><th class=\"n\">sessions</th><th class=\"n\">in flight</th>\
         <th class=\"n\">submits</th><th class=\"n\">send rate /s</th></tr>",
    );
    for u in snapshot.upstreams.as_array().into_iter().flatten() {
        let name = text(&u["name"]);
        let bound = u["bound"].as_u64().unwrap_or(0);
        let state = if bound > 0 { "up" } else { "down" };
        let breaker = text(&u["breaker"]);
        let _ = write!(
            out,
            "<tr data-upstream=\"{n}\"><td>{n}</td><td class=\"state {state}\">{state}</td>\
             <td class=\"breaker {b}\">{b}</td><td class=\"n sessions\">{bound}/{pool}</td>\
             <td class=\"n\">{flight}</td><td class=\"n submits\">{sent}</td>\
             <td class=\"n rate\">-</td></tr>",
            n = escape(&name),
            b = escape(&breaker),
            pool = u["pool_size"].as_u64().unwrap_or(0),
            flight = u["in_flight"].as_u64().unwrap_or(0),
            sent = sent.get(&name).copied().unwrap_or(0.0),
        );
    }
    out.push_str("</table></div>");
}

fn clients_table(out: &mut String, snapshot: &Snapshot) {
    let submits = sums_by(&snapshot.metrics, "tern_submits_total", "client");
    let mut clients: BTreeMap<String, (u64, u64)> = submits
        .keys()
        .map(|client| (client.clone(), (0, 0)))
        .collect();
    for s in snapshot.sessions.as_array().into_iter().flatten() {
        let entry = clients.entry(text(&s["account"])).or_default();
        entry.0 += 1;
        entry.1 += s["in_flight"].as_u64().unwrap_or(0);
    }
    out.push_str(
        "<h2>Clients</h2><div class=\"wrap\"><table id=\"clients\"><tr><th>client</th>\
         <th class=\"n\">sessions</th><th class=\"n\">in flight</th><th class=\"n\">submits</th>\
         <th class=\"n\">submit rate /s</th></tr>",
    );
    for (client, (sessions, in_flight)) in &clients {
        let _ = write!(
            out,
            "<tr data-client=\"{c}\"><td>{c}</td><td class=\"n sessions\">{sessions}</td>\
             <td class=\"n\">{in_flight}</td><td class=\"n submits\">{s}</td>\
             <td class=\"n rate\">-</td></tr>",
            c = escape(client),
            s = submits.get(client).copied().unwrap_or(0.0),
        );
    }
    out.push_str("</table></div>");
}

fn queues_table(out: &mut String, snapshot: &Snapshot) {
    let q = &snapshot.queues;
    let age = samples(&snapshot.metrics, "tern_ready_age_seconds")
        .next()
        .map(|(_, v)| v)
        .unwrap_or(0.0);
    out.push_str(
        "<h2>Queues</h2><div class=\"wrap\"><table id=\"queues\"><tr><th class=\"n\">ready</th>\
         <th class=\"n\">in flight</th><th class=\"n\">outbox</th><th class=\"n\">unmatched</th>\
         <th class=\"n\">oldest ready (s)</th></tr><tr>",
    );
    for queue in ["ready", "in_flight", "outbox", "unmatched"] {
        let depth = q[queue].as_u64().map(|d| d.to_string());
        let _ = write!(
            out,
            "<td class=\"n\" id=\"q-{queue}\">{}</td>",
            depth.as_deref().unwrap_or("?")
        );
    }
    let _ = write!(out, "<td class=\"n\" id=\"q-age\">{age:.1}</td></tr>");
    if let Some(err) = q["error"].as_str() {
        let _ = write!(
            out,
            "<tr><td colspan=\"5\" class=\"bad\">{}</td></tr>",
            escape(err)
        );
    }
    out.push_str("</table></div>");
}

fn receipts_table(out: &mut String, snapshot: &Snapshot) {
    let by_state = sums_by(&snapshot.metrics, "tern_receipts_total", "state");
    out.push_str(
        "<h2>Receipts by state</h2><div class=\"wrap\"><table id=\"receipts\"><tr><th>state</th>\
         <th class=\"n\">received</th></tr>",
    );
    for (state, count) in &by_state {
        let _ = write!(
            out,
            "<tr data-state=\"{s}\"><td>{s}</td><td class=\"n\">{count}</td></tr>",
            s = escape(state)
        );
    }
    out.push_str("</table></div>");
}

fn reload_table(out: &mut String, reload: &Value) {
    let ok = reload["ok"].as_bool().unwrap_or(false);
    let outcome = if ok {
        "ok".to_owned()
    } else {
        format!("failed: {}", text(&reload["error"]))
    };
    let _ = write!(
        out,
        "<h2>Last reload</h2><div class=\"wrap\"><table id=\"reload\"><tr><th>generation</th>\
         <th>at</th><th>outcome</th><th class=\"n\">changes</th></tr><tr><td>{gen}</td>\
         <td class=\"at\" data-at=\"{at}\">{at}</td><td class=\"{class}\" id=\"reload-outcome\">\
         {outcome}</td><td class=\"n\">{changes}</td></tr></table></div>",
        gen = reload["generation"].as_u64().unwrap_or(0),
        at = reload["at"]
            .as_u64()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        class = if ok { "up" } else { "bad" },
        outcome = escape(&outcome),
        changes = reload["changes"].as_array().map_or(0, Vec::len),
    );
}

/// A JSON string as text (other values as JSON, null as nothing).
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// `raw` safe inside HTML text and quoted attributes.
pub fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The samples of `name` in a Prometheus text exposition: labels, value.
fn samples<'a>(
    metrics: &'a str,
    name: &'a str,
) -> impl Iterator<Item = (BTreeMap<String, String>, f64)> + 'a {
    metrics.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labels, value) = match rest.strip_prefix('{') {
            Some(rest) => {
                let end = rest.rfind('}')?;
                (labels(&rest[..end]), &rest[end + 1..])
            }
            None if rest.starts_with(' ') => (BTreeMap::new(), rest),
            None => return None,
        };
        let value = value.split_whitespace().next()?.parse().ok()?;
        Some((labels, value))
    })
}

/// `a="x",b="y"` as a map; `\"`, `\\` and `\n` unescaped.
fn labels(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = text.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() || chars.next() != Some('"') {
            return out;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(other) => value.push(other),
                    None => break,
                },
                c => value.push(c),
            }
        }
        out.insert(key.trim().to_owned(), value);
        if chars.next() != Some(',') {
            return out;
        }
    }
}

/// The sum of `name`'s samples for each value of the label `by`.
fn sums_by(metrics: &str, name: &str, by: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (labels, value) in samples(metrics, name) {
        if let Some(key) = labels.get(by) {
            *out.entry(key.clone()).or_insert(0.0) += value;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_sums_by_label() {
        let text = "# HELP x\ntern_receipts_total{upstream=\"a\",state=\"DELIVRD\"} 3\n\
                    tern_receipts_total{upstream=\"b\",state=\"DELIVRD\"} 2\n\
                    tern_receipts_total{upstream=\"a\",state=\"UNDELIV\"} 1\n\
                    tern_receipts_totally 9\n";
        let sums = sums_by(text, "tern_receipts_total", "state");
        assert_eq!(sums.get("DELIVRD"), Some(&5.0));
        assert_eq!(sums.get("UNDELIV"), Some(&1.0));
        assert_eq!(sums.len(), 2);
        let weird = labels(r#"client="we\"ird\\name",status="ok""#);
        assert_eq!(
            weird.get("client").map(String::as_str),
            Some("we\"ird\\name")
        );
    }

    #[test]
    fn names_are_escaped() {
        let snapshot = Snapshot {
            upstreams: serde_json::json!([{ "name": "<b>x", "bound": 1, "pool_size": 2 }]),
            ..Snapshot::default()
        };
        let html = tables(&snapshot);
        assert!(html.contains("&lt;b&gt;x"));
        assert!(!html.contains("<b>x"));
    }
}
