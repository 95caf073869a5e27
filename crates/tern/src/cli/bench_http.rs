//! `tern bench --http`: run (c), the HTTP API's `POST /v1/messages`
//! beside the SMPP path, on the same daemon right after run (b).
//!
//! `sessions × window` requests are in flight at once, as many as the
//! SMPP run keeps unanswered: each of that many workers holds one
//! keep-alive HTTP/1.1 connection and sends its next request when the last
//! is answered. Each request is one message to one destination, asking for
//! no receipt: this measures submits (auth, JSON, encoding, the durable
//! write, the 202), not webhook delivery. Tern's CPU is read from `/proc`
//! around the run, as for run (b), so the two CPU-per-message figures sit
//! side by side; with receipts on, (b)'s figure also carries its receipts,
//! so `--no-receipts` compares like with like.
//!
//! Bounded like the rest of the bench: by the message count and the
//! overall deadline; a connection that fails is counted and replaced.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tern_sim::load::LatencySummary;
use tokio::time::Instant;

/// The account HTTP submits are made as (the SMPP run's is `bench`).
pub const ACCOUNT: &str = "bench-http";
/// Its bearer token.
const TOKEN: &str = "bench-http-token";

/// The daemon configuration run (c) needs, appended to the node's: an
/// HTTP listener on `port` and the account it submits as (any route of
/// the bench takes it).
pub fn config(port: u16) -> String {
    format!(
        r#"
[[http_listener]]
address = "127.0.0.1:{port}"

[[client]]
system_id = "{ACCOUNT}"
passwords = ["{ACCOUNT}"]
http_tokens = ["{TOKEN}"]
"#
    )
}

/// What run (c) measured.
#[derive(Debug, Clone, Serialize)]
pub struct HttpRun {
    /// Requests in flight at once (sessions × window).
    pub concurrency: usize,
    /// Requests to send, one message each.
    pub messages: u64,
    /// Requests sent.
    pub submitted: u64,
    /// Answered 202.
    pub accepted: u64,
    /// Answered otherwise, by HTTP status.
    pub refused: BTreeMap<u16, u64>,
    /// Requests lost with their connection, or cut by the deadline.
    pub failed: u64,
    /// From the first request to the last answer, seconds.
    pub wall_s: f64,
    /// 202s per second over `wall_s`.
    pub submits_per_s: f64,
    /// Request → 202, ms: p50, p90, p99, max.
    pub latency_ms: [f64; 4],
    /// Tern's CPU seconds (user + system) during the run, all nodes.
    pub tern_cpu_s: Option<f64>,
    /// `tern_cpu_s` per accepted message, µs.
    pub tern_cpu_us_per_message: Option<f64>,
    /// Every message was answered 202.
    pub completed: bool,
}

/// One worker's tally.
#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    accepted: u64,
    refused: BTreeMap<u16, u64>,
    failed: u64,
}

/// Runs (c) against the HTTP listener at `addr`: `messages` requests of
/// `text_len` characters, `concurrency` at once, until `deadline`;
/// `cpu` reads Tern's CPU seconds (before and after the run).
pub async fn run(
    addr: SocketAddr,
    messages: u64,
    concurrency: usize,
    text_len: usize,
    deadline: Instant,
    cpu: impl Fn() -> Option<f64>,
) -> anyhow::Result<HttpRun> {
    wait_listening(addr, deadline).await?;
    let body = Bytes::from(
        serde_json::json!({
            "to": "34600000000",
            "from": "Bench",
            "text": "x".repeat(text_len),
        })
        .to_string(),
    );
    let next = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu();
    let started = Instant::now();
    let workers = (0..concurrency.max(1)).map(|_| {
        let (next, body) = (next.clone(), body.clone());
        tokio::spawn(async move { worker(addr, next, messages, body, deadline).await })
    });
    let mut all = Tally::default();
    for tally in futures::future::join_all(workers).await {
        let tally = tally.unwrap_or_default();
        all.latencies_us.extend(tally.latencies_us);
        all.accepted += tally.accepted;
        all.failed += tally.failed;
        for (status, n) in tally.refused {
            *all.refused.entry(status).or_default() += n;
        }
    }
    let wall_s = started.elapsed().as_secs_f64();
    let tern_cpu_s = match (cpu_before, cpu()) {
        (Some(before), Some(after)) => Some(after - before),
        _ => None,
    };
    let submitted = all.accepted + all.refused.values().sum::<u64>() + all.failed;
    let latency = LatencySummary::of_micros(std::mem::take(&mut all.latencies_us));
    let ms = |us: u64| us as f64 / 1000.0;
    Ok(HttpRun {
        concurrency: concurrency.max(1),
        messages,
        submitted,
        accepted: all.accepted,
        refused: all.refused,
        failed: all.failed,
        wall_s,
        submits_per_s: all.accepted as f64 / wall_s.max(1e-9),
        latency_ms: [
            ms(latency.p50_us),
            ms(latency.p90_us),
            ms(latency.p99_us),
            ms(latency.max_us),
        ],
        tern_cpu_s,
        tern_cpu_us_per_message: tern_cpu_s
            .filter(|_| all.accepted > 0)
            .map(|cpu| 1e6 * cpu / all.accepted as f64),
        completed: all.accepted == messages,
    })
}

/// Waits for the HTTP listener (it starts once the upstreams are bound).
async fn wait_listening(addr: SocketAddr, deadline: Instant) -> anyhow::Result<()> {
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        if Instant::now() >= deadline {
            anyhow::bail!("tern's HTTP listener at {addr} did not answer before the deadline");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// One connection's requests, one at a time, while messages are left.
async fn worker(
    addr: SocketAddr,
    next: Arc<AtomicU64>,
    messages: u64,
    body: Bytes,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally::default();
    let mut sender: Option<Sender> = None;
    while next.fetch_add(1, Ordering::Relaxed) < messages {
        if Instant::now() >= deadline {
            tally.failed += 1;
            continue;
        }
        if sender.is_none() {
            sender = connect(addr).await;
        }
        let Some(open) = sender.as_mut() else {
            tally.failed += 1;
            continue;
        };
        let sent = Instant::now();
        let left = deadline.saturating_duration_since(sent);
        match tokio::time::timeout(left, post(open, addr, body.clone())).await {
            Ok(Some(202)) => {
                tally.accepted += 1;
                let us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.latencies_us.push(us);
            }
            Ok(Some(status)) => *tally.refused.entry(status).or_default() += 1,
            Ok(None) | Err(_) => {
                tally.failed += 1;
                sender = None;
            }
        }
    }
    tally
}

/// A keep-alive HTTP/1.1 connection to `addr`.
async fn connect(addr: SocketAddr) -> Option<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// One submit; its answer's status, `None` when the connection failed.
async fn post(sender: &mut Sender, addr: SocketAddr, body: Bytes) -> Option<u16> {
    sender.ready().await.ok()?;
    let request = Request::post("/v1/messages")
        .header(header::HOST, addr.to_string())
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(body))
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

/// Run (c) for people, beside (b)'s submits/s and CPU per message.
pub fn write(t: &mut String, run: &HttpRun, smpp_submits_per_s: f64, smpp_cpu_us: Option<f64>) {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    let refused: Vec<String> = run
        .refused
        .iter()
        .map(|(status, n)| format!("{n}×{status}"))
        .collect();
    let _ = writeln!(
        t,
        "(c) HTTP API, POST /v1/messages, {} in flight, one message each, no receipts: \
         202 {}/{}{}{}",
        run.concurrency,
        run.accepted,
        run.messages,
        if refused.is_empty() {
            String::new()
        } else {
            format!(", refused {}", refused.join(" "))
        },
        if run.failed > 0 {
            format!(", failed {}", run.failed)
        } else {
            String::new()
        },
    );
    let [p50, p90, p99, max] = run.latency_ms;
    let _ = writeln!(
        t,
        "  submits/s: (c) HTTP {:.0}, (b) SMPP {:.0}; request→202 ms p50 {p50:.3} p90 {p90:.3} \
         p99 {p99:.3} max {max:.3}",
        run.submits_per_s, smpp_submits_per_s
    );
    let _ = writeln!(
        t,
        "  Tern CPU per message: (c) HTTP {} µs ({} s over {:.3} s), (b) SMPP {} µs",
        opt(run.tern_cpu_us_per_message),
        run.tern_cpu_s
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
        run.wall_s,
        opt(smpp_cpu_us),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_run_is_printed_beside_the_smpp_one() {
        let run = HttpRun {
            concurrency: 400,
            messages: 1000,
            submitted: 1000,
            accepted: 998,
            refused: BTreeMap::from([(429, 2)]),
            failed: 0,
            wall_s: 0.5,
            submits_per_s: 1996.0,
            latency_ms: [1.0, 2.0, 3.0, 4.0],
            tern_cpu_s: Some(0.25),
            tern_cpu_us_per_message: Some(250.5),
            completed: false,
        };
        let mut t = String::new();
        write(&mut t, &run, 5000.0, Some(150.0));
        assert!(t.contains("400 in flight"), "{t}");
        assert!(t.contains("202 998/1000, refused 2×429"), "{t}");
        assert!(t.contains("(c) HTTP 1996, (b) SMPP 5000"), "{t}");
        assert!(t.contains("(c) HTTP 250.5 µs"), "{t}");
        assert!(t.contains("(b) SMPP 150.0 µs"), "{t}");
    }
}
