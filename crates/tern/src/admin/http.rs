//! The admin HTTP listener: routes, handlers and graceful shutdown.
//!
//! Every handler that asks the [`AdminSource`] runs that call on tokio's
//! blocking pool: the source is synchronous and may scan the store, and a
//! slow scrape must not hold a runtime worker that SMPP sessions need.

use std::future::IntoFuture;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::{AdminSource, Metrics, Readiness};

/// How long connections still open at shutdown may take to finish their
/// request. Past it `serve` returns anyway, so one stuck scraper cannot hold
/// the node's shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Content type of the Prometheus text format 0.0.4, the default answer.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the OpenMetrics text format, for scrapers that ask for it.
const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What every handler shares.
#[derive(Clone)]
struct AdminState {
    /// Encoded on `/metrics` after the source refreshed its gauges.
    metrics: Arc<Metrics>,
    /// Answers every question about the node.
    source: Arc<dyn AdminSource>,
    /// What every request must carry when set (`[admin] token`).
    token: Option<Arc<str>>,
}

/// Serves the admin routes on `listener` until `shutdown` is cancelled.
///
/// The caller binds the listener, so the daemon reports bind errors with the
/// rest of its start-up and tests can bind port 0. On shutdown the listener
/// stops accepting at once; requests in progress get [`SHUTDOWN_GRACE`] to
/// finish. Errors are those of the listener itself; a failed request only
/// fails that request.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    source: Arc<dyn AdminSource>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_guarded(listener, metrics, source, None, shutdown).await
}

/// [`serve`], with every route but the probes (console, API, metrics) answering
/// 401 to a request without `token`: as a bearer token
/// (`Authorization: Bearer TOKEN`) or as basic auth's password with any
/// user name, which is what a browser asks an operator for.
pub async fn serve_guarded(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    source: Arc<dyn AdminSource>,
    token: Option<String>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let addr = listener.local_addr()?;
    let token = token.map(Arc::from);
    let app = router(AdminState {
        metrics,
        source,
        token,
    });
    let stop = shutdown.clone();
    let server = axum::serve(BackingOff::new(listener), app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .into_future();
    info!(target: "tern::admin", %addr, "admin listener up");
    let deadline = async {
        shutdown.cancelled().await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server => {
            info!(target: "tern::admin", %addr, "admin listener stopped");
            result
        }
        () = deadline => {
            warn!(
                target: "tern::admin",
                %addr,
                grace = ?SHUTDOWN_GRACE,
                "admin connections still open after the shutdown grace; leaving them"
            );
            Ok(())
        }
    }
}

fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(console))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(scrape))
        .route(
            "/api/sessions",
            get(|State(s): State<AdminState>| view(s, |src| src.sessions())),
        )
        .route(
            "/api/upstreams",
            get(|State(s): State<AdminState>| view(s, |src| src.upstreams())),
        )
        .route(
            "/api/queues",
            get(|State(s): State<AdminState>| view(s, |src| src.queues())),
        )
        .route(
            "/api/unmatched",
            get(|State(s): State<AdminState>| view(s, |src| src.unmatched())),
        )
        .route(
            "/api/config",
            get(|State(s): State<AdminState>| view(s, |src| src.config())),
        )
        .route(
            "/api/reload",
            get(|State(s): State<AdminState>| view(s, |src| src.reload())),
        )
        .route("/api/messages/{id}", get(message))
        .route("/api/config/diff", post(preview))
        .fallback(no_route)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Refuses a request without the configured token (none configured: every
/// request passes, the loopback default). The probes stay open: they tell
/// nothing but "up" and "ready", and an orchestrator's probe carries no
/// credentials.
async fn guard(State(state): State<AdminState>, request: Request, next: Next) -> Response {
    let Some(token) = state.token.as_deref() else {
        return next.run(request).await;
    };
    if matches!(request.uri().path(), "/health" | "/ready") {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get_all(AUTHORIZATION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(presented_token)
        .any(|given| same_secret(given.as_bytes(), token.as_bytes()));
    if presented {
        return next.run(request).await;
    }
    let mut response = error_json(
        StatusCode::UNAUTHORIZED,
        "this admin listener asks for its token".to_owned(),
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Basic realm=\"tern admin\", charset=\"UTF-8\""),
    );
    response
}

/// The token in an `Authorization` value: a bearer token, or the password
/// of basic auth (the user name is not checked).
fn presented_token(value: &str) -> Option<String> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(rest.trim().to_owned());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = String::from_utf8(base64_decode(rest.trim())?).ok()?;
        let (_, password) = decoded.split_once(':')?;
        return Some(password.to_owned());
    }
    None
}

/// Standard base64 (padding optional); `None` on any other character.
pub(crate) fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Compares in time independent of where the two differ, so the answer's
/// timing does not tell a guesser how much of the token was right.
pub(crate) fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    let diff = given
        .iter()
        .zip(expected)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    diff == 0 && given.len() == expected.len()
}

/// The value of `trace` in a query string (`/?trace=ID`, what the search
/// box submits without JavaScript), percent-decoded.
fn trace_param(query: &str) -> Option<String> {
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("trace="))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    let id = String::from_utf8(out).ok()?;
    (!id.trim().is_empty()).then_some(id)
}

/// The console: every table rendered here, so it reads without JavaScript.
async fn console(State(state): State<AdminState>, RawQuery(query): RawQuery) -> Response {
    let trace = query.as_deref().and_then(trace_param);
    let page = on_blocking_pool(&state, move |metrics, source| {
        source.refresh(metrics);
        let snapshot = super::console::Snapshot {
            upstreams: source.upstreams(),
            sessions: source.sessions(),
            queues: source.queues(),
            reload: source.reload(),
            metrics: metrics.encode(),
        };
        let trace = trace.map(|id| {
            let found = source.message(id.trim());
            (id, found)
        });
        super::console::page(&snapshot, trace.as_ref())
    })
    .await;
    match page {
        Ok(html) => (
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (axum::http::header::CACHE_CONTROL, "no-store"),
            ],
            html,
        )
            .into_response(),
        Err(response) => response,
    }
}

/// Liveness: answering at all is the whole test, so this touches nothing
/// that could block.
async fn health() -> impl IntoResponse {
    ([(CONTENT_TYPE, "text/plain; charset=utf-8")], "ok\n")
}

/// `/ready` body: the readiness parts plus the verdict, so a human reading
/// the probe sees why it failed.
#[derive(Serialize)]
struct ReadyBody {
    #[serde(flatten)]
    readiness: Readiness,
    ready: bool,
}

async fn ready(State(state): State<AdminState>) -> Response {
    match on_blocking_pool(&state, |_, source| source.readiness()).await {
        Ok(readiness) => {
            let ready = readiness.ready();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(ReadyBody { readiness, ready })).into_response()
        }
        Err(response) => response,
    }
}

async fn scrape(State(state): State<AdminState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(prefers_openmetrics);
    let encoded = on_blocking_pool(&state, move |metrics, source| {
        source.refresh(metrics);
        if openmetrics {
            metrics.encode_openmetrics()
        } else {
            metrics.encode()
        }
    })
    .await;
    match encoded {
        Ok(body) => {
            let content_type = if openmetrics {
                OPENMETRICS_TEXT
            } else {
                PROMETHEUS_TEXT
            };
            ([(CONTENT_TYPE, content_type)], body).into_response()
        }
        Err(response) => response,
    }
}

async fn view(state: AdminState, ask: fn(&dyn AdminSource) -> serde_json::Value) -> Response {
    match on_blocking_pool(&state, move |_, source| ask(source)).await {
        Ok(value) => Json(value).into_response(),
        Err(response) => response,
    }
}

async fn message(State(state): State<AdminState>, Path(id): Path<String>) -> Response {
    let lookup = id.clone();
    match on_blocking_pool(&state, move |_, source| source.message(&lookup)).await {
        Ok(Some(value)) => Json(value).into_response(),
        Ok(None) => error_json(StatusCode::NOT_FOUND, format!("no message {id}")),
        Err(response) => response,
    }
}

/// A candidate config for [`AdminSource::preview`].
#[derive(serde::Deserialize)]
struct Candidate {
    path: String,
    text: String,
}

async fn preview(State(state): State<AdminState>, Json(candidate): Json<Candidate>) -> Response {
    match on_blocking_pool(&state, move |_, source| {
        source.preview(&candidate.path, &candidate.text)
    })
    .await
    {
        Ok(value) => Json(value).into_response(),
        Err(response) => response,
    }
}

async fn no_route(uri: Uri) -> Response {
    error_json(StatusCode::NOT_FOUND, format!("no route {}", uri.path()))
}

/// Runs `ask` on the blocking pool. A panic in the source becomes a 500 for
/// this request only, logged, instead of a dropped connection.
async fn on_blocking_pool<T, F>(state: &AdminState, ask: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&Metrics, &dyn AdminSource) -> T + Send + 'static,
{
    let metrics = Arc::clone(&state.metrics);
    let source = Arc::clone(&state.source);
    tokio::task::spawn_blocking(move || ask(&metrics, source.as_ref()))
        .await
        .map_err(|err| {
            error!(target: "tern::admin", %err, "admin source failed");
            error_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                "admin source failed".to_owned(),
            )
        })
}

fn error_json(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// True when an `Accept` header ranks OpenMetrics text at least as high as
/// plain text. Prometheus asks for both with q-values; `curl` asks for
/// `*/*` and gets the plain format, which every tool reads.
fn prefers_openmetrics(accept: &str) -> bool {
    let mut openmetrics = 0.0_f32;
    let mut plain = 0.0_f32;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let media = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|param| param.trim().strip_prefix("q="))
            .find_map(|value| value.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if media.eq_ignore_ascii_case("application/openmetrics-text") {
            openmetrics = openmetrics.max(q);
        } else if media.eq_ignore_ascii_case("text/plain") {
            plain = plain.max(q);
        }
    }
    openmetrics > 0.0 && openmetrics >= plain
}

/// The admin listener with the client listeners' accept back-off: out of
/// descriptors, axum alone would log an error every second for as long as
/// it lasts; this logs it once (see `AcceptBackoff`) and retries with the
/// same growing delay.
struct BackingOff {
    listener: TcpListener,
    backoff: tern_session::smsc::AcceptBackoff,
}

impl BackingOff {
    fn new(listener: TcpListener) -> Self {
        let backoff = tern_session::smsc::AcceptBackoff::new(listener.local_addr().ok());
        Self { listener, backoff }
    }
}

impl axum::serve::Listener for BackingOff {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    self.backoff.succeeded();
                    return accepted;
                }
                Err(err) => tokio::time::sleep(self.backoff.failed(&err)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::{base64_decode, prefers_openmetrics, presented_token, same_secret, trace_param};

    #[test]
    fn the_trace_parameter_is_decoded() {
        assert_eq!(trace_param("trace=00ab%20cd").as_deref(), Some("00ab cd"));
        assert_eq!(trace_param("x=1&trace=7f"), Some("7f".to_owned()));
        assert_eq!(trace_param("trace="), None);
        assert_eq!(trace_param("trace=%zz"), None);
    }

    #[test]
    fn tokens_come_as_bearer_or_basic_password() {
        assert_eq!(
            base64_decode("b3A6czNjcjN0").as_deref(),
            Some(&b"op:s3cr3t"[..])
        );
        assert_eq!(
            presented_token("Basic b3A6czNjcjN0").as_deref(),
            Some("s3cr3t")
        );
        assert_eq!(presented_token("Bearer s3cr3t").as_deref(), Some("s3cr3t"));
        assert_eq!(presented_token("Digest s3cr3t"), None);
        assert_eq!(presented_token("Basic !!"), None);
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"ab", b"abc"));
    }

    #[test]
    fn negotiation_follows_q_values() {
        assert!(!prefers_openmetrics("*/*"));
        assert!(!prefers_openmetrics("text/plain"));
        assert!(prefers_openmetrics("application/openmetrics-text"));
        assert!(prefers_openmetrics(
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        ));
        assert!(!prefers_openmetrics(
            "application/openmetrics-text;q=0.2,text/plain;q=0.9"
        ));
        assert!(!prefers_openmetrics("application/openmetrics-text;q=0"));
    }
}
