//! `tern status`: what a running daemon says about itself, read from its
//! admin endpoint and printed as one compact screen (or one JSON object).
//!
//! The admin API's JSON shapes are still moving, so every field is read by
//! name from a `serde_json::Value` and a missing or oddly typed one prints
//! as `-` instead of failing the whole command. Requests go through the
//! admin module's client, which bounds each one in time and size.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use serde_json::{Map, Value};

use crate::admin::{self, AdminClientError};

/// `tern status`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 ready, 1 not ready, 2 the admin endpoint cannot be reached."
)]
pub struct StatusArgs {
    /// The daemon's admin endpoint (`[admin] address` in its configuration).
    #[arg(long, default_value = crate::config::DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Print everything as one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// The endpoints read, in the order shown.
const PATHS: [&str; 5] = [
    "/ready",
    "/api/sessions",
    "/api/upstreams",
    "/api/queues",
    "/api/reload",
];

/// Runs `tern status`.
pub fn run(args: StatusArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(status(args))
}

async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let addr = args.admin;
    // /ready first: if it cannot be reached nothing else can.
    let ready = match get(addr, "/ready").await {
        Ok(answer) => answer,
        Err(Failure::Unreachable(AdminClientError::Connect { source, .. })) => {
            eprintln!("tern status: cannot reach the admin endpoint at {addr}: {source}");
            eprintln!("  is `tern run` running with [admin] address = \"{addr}\"?");
            return Ok(ExitCode::from(2));
        }
        Err(err) => {
            eprintln!("tern status: the admin endpoint at {addr} did not answer /ready: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    let mut answers = vec![(PATHS[0], Ok(ready))];
    for path in &PATHS[1..] {
        answers.push((path, get(addr, path).await));
    }
    let is_ready = answers
        .first()
        .and_then(|(_, a)| a.as_ref().ok())
        .is_some_and(|(status, body)| (200..300).contains(status) && ready_flag(body));
    if args.json {
        let mut all = Map::new();
        all.insert("admin".to_owned(), Value::String(addr.to_string()));
        for (path, answer) in &answers {
            let key = path.trim_start_matches("/api/").trim_start_matches('/');
            let value = match answer {
                Ok((_, body)) => body.clone(),
                Err(err) => serde_json::json!({ "error": err.to_string() }),
            };
            all.insert(key.to_owned(), value);
        }
        println!("{}", Value::Object(all));
    } else {
        print!("{}", render(addr, &answers, is_ready));
    }
    Ok(if is_ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

type Answer = Result<(u16, Value), Failure>;

/// Why one endpoint gave nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The request failed: nothing listening, a timeout, not HTTP.
    #[error("{0}")]
    Unreachable(#[from] AdminClientError),
    /// An answer, but not the JSON this command reads.
    #[error("HTTP {status}: {detail}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// The body or the JSON error.
        detail: String,
    },
}

/// `ready: true` in the body; a body that is just `true` counts too.
fn ready_flag(body: &Value) -> bool {
    match body {
        Value::Bool(b) => *b,
        Value::Object(o) => o.get("ready").and_then(Value::as_bool).unwrap_or(false),
        _ => false,
    }
}

/// The screen: readiness, reload, then one table per collection.
fn render(addr: SocketAddr, answers: &[(&str, Answer)], is_ready: bool) -> String {
    let mut out = String::new();
    write_state(&mut out, addr, answers, is_ready);
    let _ = writeln!(out);
    write_sessions(&mut out, answers);
    write_upstreams(&mut out, answers);
    write_queues(&mut out, answers);
    out
}

/// The body `path` answered, if it answered.
fn body<'a>(answers: &'a [(&str, Answer)], path: &str) -> Option<&'a Value> {
    answers
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, a)| a.as_ref().ok())
        .map(|(_, v)| v)
}

/// Why `path` gave nothing to show, if it did not answer.
fn failure(answers: &[(&str, Answer)], path: &str) -> Option<String> {
    answers
        .iter()
        .find(|(p, _)| *p == path)
        .and_then(|(_, a)| a.as_ref().err())
        .map(ToString::to_string)
}

/// The node's readiness and its last reload: the two lines an operator
/// looks at first.
fn write_state(out: &mut String, addr: SocketAddr, answers: &[(&str, Answer)], is_ready: bool) {
    let ready = body(answers, "/ready");
    let _ = writeln!(
        out,
        "Tern at {addr}: {}   store {}   listeners {}   upstreams bound {}",
        if is_ready { "READY" } else { "NOT READY" },
        field(ready, "store"),
        field(ready, "listeners"),
        field(ready, "upstreams_bound"),
    );
    let reload = body(answers, "/api/reload");
    let _ = writeln!(
        out,
        "Last reload: generation {}   ok {}   at {}{}",
        field(reload, "generation"),
        field(reload, "ok"),
        time(reload.and_then(|r| r.get("at"))),
        match reload.and_then(|r| r.get("error")).filter(|e| !e.is_null()) {
            Some(err) => format!("   error {}", scalar(err)),
            None => String::new(),
        }
    );
}

/// The client sessions, with the account's limits beside each (`-` is no
/// limit).
fn write_sessions(out: &mut String, answers: &[(&str, Answer)]) {
    let rows = body(answers, "/api/sessions").map(|v| {
        list(v, "sessions")
            .into_iter()
            .map(|s| {
                let s = Some(s);
                let limits = s.and_then(|s| s.get("limits"));
                vec![
                    field(s, "account"),
                    field(s, "bind_type"),
                    field(s, "peer"),
                    field(s, "in_flight"),
                    names(limits.and_then(|l| l.get("binds"))),
                    field(limits, "max_binds"),
                    field(limits, "rate"),
                    field(limits, "session_rate"),
                    field(limits, "window"),
                ]
            })
            .collect()
    });
    section(
        out,
        "Client sessions",
        &[
            "ACCOUNT",
            "BIND",
            "PEER",
            "IN FLIGHT",
            "BINDS ALLOWED",
            "MAX BINDS",
            "RATE",
            "SESSION RATE",
            "WINDOW",
        ],
        rows,
        failure(answers, "/api/sessions"),
    );
}

/// The upstreams: pool, breaker and load of each.
fn write_upstreams(out: &mut String, answers: &[(&str, Answer)]) {
    let upstreams = body(answers, "/api/upstreams").map(|v| list(v, "upstreams"));
    let rows = upstreams.map(|items| {
        items
            .iter()
            .map(|u| {
                let u = Some(*u);
                vec![
                    field(u, "name"),
                    field(u, "profile"),
                    format!("{}/{}", field(u, "bound"), field(u, "pool_size")),
                    field(u, "breaker"),
                    field(u, "in_flight"),
                    field(u, "load"),
                ]
            })
            .collect()
    });
    section(
        out,
        "Upstreams",
        &[
            "NAME",
            "PROFILE",
            "BOUND/POOL",
            "BREAKER",
            "IN FLIGHT",
            "LOAD",
        ],
        rows,
        failure(answers, "/api/upstreams"),
    );
}

/// The depth of each queue.
fn write_queues(out: &mut String, answers: &[(&str, Answer)]) {
    let queues = body(answers, "/api/queues").map(|q| match q {
        Value::Object(map) => map
            .iter()
            .map(|(name, depth)| vec![name.clone(), scalar(depth)])
            .collect(),
        other => vec![vec!["(unexpected)".to_owned(), scalar(other)]],
    });
    section(
        out,
        "Queues",
        &["QUEUE", "DEPTH"],
        queues,
        failure(answers, "/api/queues"),
    );
}

/// The objects of an array, or of the array under `key` in an object (in
/// case the API wraps its lists).
fn list<'a>(value: &'a Value, key: &str) -> Vec<&'a Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(o) => o
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A list of names as one cell, comma-separated; `-` when absent.
fn names(value: Option<&Value>) -> String {
    match value {
        Some(Value::Array(items)) => items.iter().map(scalar).collect::<Vec<_>>().join(","),
        Some(other) => scalar(other),
        None => "-".to_owned(),
    }
}

/// A titled table with aligned columns; `-` rows when the endpoint failed.
fn section(
    out: &mut String,
    title: &str,
    header: &[&str],
    rows: Option<Vec<Vec<String>>>,
    failure: Option<String>,
) {
    let Some(rows) = rows else {
        let _ = writeln!(
            out,
            "{title}: - ({})\n",
            failure.unwrap_or_else(|| "no answer".to_owned())
        );
        return;
    };
    let _ = writeln!(out, "{title} ({})", rows.len());
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)\n");
        return;
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (cell, w) in cells.iter().zip(&widths) {
            let _ = write!(s, "  {cell:<w$}");
        }
        s.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
    let _ = writeln!(out);
}

/// A field of an object as text; `-` when absent or null.
fn field(object: Option<&Value>, name: &str) -> String {
    object
        .and_then(|o| o.get(name))
        .filter(|v| !v.is_null())
        .map_or_else(|| "-".to_owned(), scalar)
}

/// A time given as seconds since the Unix epoch, in RFC 3339 (UTC);
/// anything else as written.
fn time(value: Option<&Value>) -> String {
    match value {
        Some(Value::Number(n)) => n.as_u64().map_or_else(
            || n.to_string(),
            |secs| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
                )
                .to_string()
            },
        ),
        Some(other) => scalar(other),
        None => "-".to_owned(),
    }
}

/// A JSON value in one cell: strings bare, numbers and booleans as
/// written, anything nested compact.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// GET `path` from the admin endpoint at `addr`: the HTTP status and the
/// JSON body. `/ready` answers 503 with a JSON body when not ready, so a
/// JSON body is data whatever the status; any other non-2xx is a failure.
async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Value), Failure> {
    let response = admin::get(addr, path).await?;
    match response.json() {
        Ok(value) if (200..300).contains(&response.status) || path == "/ready" => {
            Ok((response.status, value))
        }
        Ok(_) => Err(Failure::Unexpected {
            status: response.status,
            detail: response.text().trim().to_owned(),
        }),
        Err(err) => Err(Failure::Unexpected {
            status: response.status,
            detail: format!("not JSON ({err})"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn missing_fields_print_as_dashes() {
        let ok = Ok((200, json!({"ready": true, "store": "ok"})));
        let upstreams = Ok((
            200,
            json!([{"name": "primary", "profile": "ovh", "bound": 1, "pool_size": 2}]),
        ));
        let queues = Ok((200, json!({"dispatch": 3, "outbox": 0})));
        let answers = vec![
            ("/ready", ok),
            ("/api/sessions", Ok((200, json!([])))),
            ("/api/upstreams", upstreams),
            ("/api/queues", queues),
            (
                "/api/reload",
                Err(Failure::Unexpected {
                    status: 404,
                    detail: "no route".to_owned(),
                }),
            ),
        ];
        let screen = render("127.0.0.1:9775".parse().expect("addr"), &answers, true);
        assert!(screen.contains("READY"), "{screen}");
        assert!(screen.contains("listeners -"), "{screen}");
        assert!(screen.contains("primary  ovh      1/2"), "{screen}");
        assert!(screen.contains("dispatch  3"), "{screen}");
        assert!(screen.contains("generation -"), "{screen}");
        assert!(ready_flag(&json!({"ready": true})));

        let sessions = json!([{
            "account": "acme",
            "bind_type": "transmitter",
            "peer": "127.0.0.1:5000",
            "in_flight": 0,
            "limits": {
                "binds": ["transmitter", "receiver"],
                "max_binds": 2,
                "rate": 50,
                "session_rate": null,
                "window": 8,
            },
        }]);
        let answers = vec![
            ("/ready", Ok((200, json!({"ready": true})))),
            ("/api/sessions", Ok((200, sessions))),
        ];
        let screen = render("127.0.0.1:9775".parse().expect("addr"), &answers, true);
        let row = screen
            .lines()
            .find(|l| l.trim_start().starts_with("acme"))
            .unwrap_or_else(|| panic!("a session row: {screen}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "acme",
                "transmitter",
                "127.0.0.1:5000",
                "0",
                "transmitter,receiver",
                "2",
                "50",
                "-",
                "8"
            ],
            "{screen}"
        );
        assert!(!ready_flag(&json!({"store": "ok"})));
    }
}
