//! Receipts of HTTP API submits by webhook, on the real binary with the
//! sim crate's simulator upstream, a real webhook receiver on loopback
//! (axum) and the sled store: the receipt reaches the callback signed
//! (HMAC-SHA256 over timestamp and body) with Tern's id; a receiver that is
//! down gets it once it is back, across a Tern restart; a callback outside
//! the account's allow-list is refused at submit, https as well as http;
//! an https receiver (rustls, an rcgen certificate) gets the receipt when
//! its certificate chains to the account's `webhook_ca`, and while it does
//! not the receipt stays in the outbox and is tried again.

use tern_testkit as common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::HeaderMap;
use axum::routing::post;
use bytes::Bytes;
use common::{wait_for, wait_until, Daemon, HeldPort, Launch, Pki, TempDir};
use http_body_util::{BodyExt, Full};
use hyper::http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tern_sim::smsc::{SimConfig, SimHandle, Simulator};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);

const SECRET: &str = "whsec-test";

/// What the receiver was sent: each request's signature header and body.
type Calls = Arc<Mutex<Vec<(String, Bytes)>>>;

/// A webhook receiver on `port` answering 200 and recording each call,
/// until the token is cancelled.
async fn receiver(port: HeldPort) -> (Calls, CancellationToken) {
    let calls: Calls = Arc::default();
    let app = hook_app(&calls);
    let listener = port.listen();
    let stop = CancellationToken::new();
    let until = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { until.cancelled().await })
            .await;
    });
    (calls, stop)
}

/// The receiver's one route, `POST /hook`, recording each call in `calls`.
fn hook_app(calls: &Calls) -> axum::Router {
    let seen = calls.clone();
    axum::Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let seen = seen.clone();
            async move {
                let signature = headers
                    .get("tern-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().expect("lock").push((signature, body));
                StatusCode::OK
            }
        }),
    )
}

/// Whether `signature` ("t=..,v1=..") signs `body` with [`SECRET`].
fn signed(signature: &str, body: &[u8]) -> bool {
    let mut parts = signature.split(',');
    let (Some(t), Some(v1)) = (
        parts.next().and_then(|p| p.strip_prefix("t=")),
        parts.next().and_then(|p| p.strip_prefix("v1=")),
    ) else {
        return false;
    };
    let Ok(tag) = (0..v1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(v1.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
    else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let message = [t.as_bytes(), b".", body].concat();
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

/// Tern with HTTP, one simulator upstream and the account `acme`, whose
/// callbacks may go to 127.0.0.1 only; `gamma`'s default callback is
/// port `hook` there; `beta` has no webhook secret.
fn config(upstream: u16, hook: u16) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[http_listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
http_tokens = ["acme-token"]
webhook_secret = "{SECRET}"
callback_allow = ["127.0.0.1"]
[[client]]
system_id = "beta"
passwords = ["pw"]
http_tokens = ["beta-token"]
[[client]]
system_id = "gamma"
passwords = ["pw"]
http_tokens = ["gamma-token"]
webhook_secret = "{SECRET}"
callback_allow = ["127.0.0.0/8"]
callback_url = "http://127.0.0.1:{hook}/hook"
[[upstream]]
name = "up"
host = "127.0.0.1"
port = {upstream}
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = ["34"]
upstreams = ["up"]
"#
    )
}

/// A simulator and Tern bound to it, its HTTP listener up and its port;
/// and the port of gamma's default callback, held for its receiver.
async fn start(label: &str) -> (SimHandle, Daemon, u16, HeldPort) {
    start_with(label, "").await
}

/// [`start`] with `more` config (accounts) after the rest.
async fn start_with(label: &str, more: &str) -> (SimHandle, Daemon, u16, HeldPort) {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let hook = HeldPort::new();
    let mut tern = Daemon::start(
        &format!("http-webhook-{label}"),
        &(config(sim.addr().port(), hook.port) + more),
    );
    let http = tern.listening().http_port();
    wait_until("tern binds to the simulator", WAIT, || async {
        !sim.sessions("tern").is_empty()
    })
    .await;
    http_up(http).await;
    (sim, tern, http, hook)
}

async fn http_up(port: u16) {
    wait_until("the HTTP listener is up", WAIT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
}

/// `POST /v1/messages` with bearer `token`: status and JSON body.
async fn submit(port: u16, token: &str, body: &Value) -> (StatusCode, Value) {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::post("/v1/messages")
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
    };
    let (status, body) = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("answered in time")
        .expect("an answer");
    (status, serde_json::from_slice(&body).expect("JSON"))
}

/// The id of a 202 answer with one destination.
fn id_of(answer: &(StatusCode, Value)) -> String {
    assert_eq!(answer.0, StatusCode::ACCEPTED, "{answer:?}");
    answer.1["messages"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned()
}

/// The first call the receiver got, within [`WAIT`].
async fn first_call(calls: &Calls) -> (String, Bytes) {
    wait_for("the webhook is called", WAIT, || async {
        calls.lock().expect("lock").first().cloned()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_receipt_reaches_the_webhook_signed_with_terns_id() {
    let (_sim, _tern, http, default_hook) = start("signed").await;
    let hook = HeldPort::new();
    let hook_port = hook.port;
    let (calls, _stop) = receiver(hook).await;
    let body = json!({
        "to": "34600000051",
        "from": "Acme",
        "text": "call me back",
        "callback_url": format!("http://127.0.0.1:{hook_port}/hook"),
    });
    let id = id_of(&submit(http, "acme-token", &body).await);
    let (signature, body) = first_call(&calls).await;
    assert!(
        signed(&signature, &body),
        "{signature} does not sign {body:?}"
    );
    let receipt: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(receipt["id"], id.as_str(), "{receipt}");
    assert_eq!(receipt["stat"], "DELIVRD", "{receipt}");
    assert_eq!(receipt["to"], "34600000051");
    assert_eq!(receipt["final"], true);
    assert!(!signed(&signature, b"{}"), "the signature covers the body");

    // Without a callback_url: the account's default one.
    let (calls, _stop) = receiver(default_hook).await;
    let body = json!({"to": "34600000052", "from": "Acme", "text": "default hook"});
    let id = id_of(&submit(http, "gamma-token", &body).await);
    let (signature, body) = first_call(&calls).await;
    assert!(signed(&signature, &body));
    let receipt: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(receipt["id"], id.as_str(), "{receipt}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_outside_the_allow_list_is_refused_at_submit() {
    let (_sim, _tern, http, _) = start("allow-list").await;
    for url in [
        "http://10.1.2.3/hook",
        "http://localhost:8080/hook",
        "https://10.1.2.3/hook",
        "ftp://127.0.0.1/hook",
        "not a url",
    ] {
        let body = json!({"to": "34600000061", "from": "Acme", "text": "x", "callback_url": url});
        let (status, problem) = submit(http, "acme-token", &body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{url}: {problem}");
        assert_eq!(problem["field"], "callback_url", "{url}: {problem}");
        assert_eq!(problem["smpp_status"], "ESME_RINVOPTPARAMVAL");
    }
    // A callback that could never be called: no receipt asked for.
    let body = json!({"to": "34600000061", "from": "Acme", "text": "x", "receipt": "none", "callback_url": "http://127.0.0.1/hook"});
    let (status, problem) = submit(http, "acme-token", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "callback_url");
    // An account without a webhook_secret cannot ask for callbacks.
    let body = json!({"to": "34600000061", "from": "Acme", "text": "x", "callback_url": "http://127.0.0.1/hook"});
    let (status, problem) = submit(http, "beta-token", &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["field"], "callback_url");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_gets_the_receipt_once_back_across_a_tern_restart() {
    let (_sim, mut tern, http, _) = start("down").await;
    // Nothing listens on the callback's port yet.
    let hook = HeldPort::new();
    let body = json!({
        "to": "34600000071",
        "from": "Acme",
        "text": "while you were out",
        "callback_url": format!("http://127.0.0.1:{}/hook", hook.port),
    });
    let id = id_of(&submit(http, "acme-token", &body).await);
    // The receipt is stored (the message is final) and waits in the outbox.
    wait_for("the receipt waits in the outbox", WAIT, || async {
        let answer = status_of(http, &id).await;
        (answer["state"] == "final"
            && !answer["receipts_relayed"][0].is_null()
            && answer["receipts_relayed"][0]["acked_ms"].is_null())
        .then_some(())
    })
    .await;
    // Tried and failed while down for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    tern.signal("TERM");
    tern.restart(&Launch::new());
    http_up(http).await;
    let (calls, _stop) = receiver(hook).await;
    let (signature, body) = first_call(&calls).await;
    assert!(signed(&signature, &body));
    let receipt: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(receipt["id"], id.as_str(), "{receipt}");
    // Taken: acknowledged in the store.
    wait_for("the receipt is acknowledged", WAIT, || async {
        let answer = status_of(http, &id).await;
        answer["receipts_relayed"][0]["acked_ms"]
            .is_u64()
            .then_some(())
    })
    .await;
}

/// `GET /v1/messages/{id}` as acme.
async fn status_of(port: u16, id: &str) -> Value {
    status_as(port, "acme-token", id).await
}

/// `GET /v1/messages/{id}` with bearer `token`.
async fn status_as(port: u16, token: &str, id: &str) -> Value {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::get(format!("/v1/messages/{id}"))
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {token}"))
            .body(Full::new(Bytes::new()))?;
        let response = sender.send_request(request).await?;
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(body)
    };
    let body = tokio::time::timeout(WAIT, exchange)
        .await
        .expect("answered in time")
        .expect("an answer");
    serde_json::from_slice(&body).expect("JSON")
}

/// A webhook receiver over TLS: [`hook_app`] behind a rustls acceptor
/// whose certificate the test can swap; `offered` counts the connections
/// (TLS handshakes tried), `calls` the requests that got through.
struct TlsHook {
    socket: tokio::net::TcpListener,
    tls: Arc<Mutex<tokio_rustls::TlsAcceptor>>,
    offered: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsHook {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.socket.accept().await else {
                continue;
            };
            self.offered.fetch_add(1, Ordering::SeqCst);
            let tls = self.tls.lock().expect("lock").clone();
            // A handshake the caller gives up (an untrusted certificate)
            // ends here; the next connection is a new try.
            if let Ok(Ok(stream)) = tokio::time::timeout(WAIT, tls.accept(stream)).await {
                return (stream, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.socket.local_addr()
    }
}

/// A TLS acceptor with the certificate and key PEM files `cert`, `key`.
fn acceptor(cert: &std::path::Path, key: &std::path::Path) -> tokio_rustls::TlsAcceptor {
    tern_session::tls::ServerTls::new(cert, key)
        .load()
        .expect("receiver TLS loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_gets_the_receipt_only_with_a_trusted_certificate_and_nothing_is_lost() {
    let dir = TempDir::new("http-webhook-tls");
    // A CA `delta` trusts, a certificate it signed, and one nothing trusts.
    let pki = Pki::new(&dir);
    let (untrusted_cert, untrusted_key) = Pki::untrusted(&dir);
    // `delta` trusts the test CA for its callbacks.
    let delta = format!(
        r#"
[[client]]
system_id = "delta"
passwords = ["pw"]
http_tokens = ["delta-token"]
webhook_secret = "{SECRET}"
callback_allow = ["127.0.0.1"]
webhook_ca = "{}"
"#,
        pki.ca.display()
    );
    let (_sim, _tern, http, _) = start_with("tls", &delta).await;
    let socket = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("receiver binds");
    let hook = socket.local_addr().expect("address").port();
    let tls = Arc::new(Mutex::new(acceptor(&untrusted_cert, &untrusted_key)));
    let offered = Arc::new(AtomicUsize::new(0));
    let calls: Calls = Arc::default();
    let listener = TlsHook {
        socket,
        tls: tls.clone(),
        offered: offered.clone(),
    };
    let app = hook_app(&calls);
    let served = tokio::spawn(async move { axum::serve(listener, app).await });

    // An untrusted certificate: the receipt is not sent, and stays in the
    // outbox, tried again.
    let body = json!({
        "to": "34600000091",
        "from": "Acme",
        "text": "over https",
        "callback_url": format!("https://127.0.0.1:{hook}/hook"),
    });
    let id = id_of(&submit(http, "delta-token", &body).await);
    wait_for("the receipt is tried twice", WAIT, || async {
        (offered.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    assert!(
        calls.lock().expect("lock").is_empty(),
        "nothing got through"
    );
    let answer = status_as(http, "delta-token", &id).await;
    assert_eq!(answer["state"], "final", "{answer}");
    assert!(
        !answer["receipts_relayed"][0].is_null()
            && answer["receipts_relayed"][0]["acked_ms"].is_null(),
        "the receipt waits in the outbox: {answer}"
    );

    // The receiver's certificate now chains to delta's webhook_ca: the
    // same receipt arrives, signed, and is acknowledged.
    *tls.lock().expect("lock") = acceptor(&pki.cert, &pki.key);
    let (signature, body) = first_call(&calls).await;
    assert!(signed(&signature, &body));
    let receipt: Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(receipt["id"], id.as_str(), "{receipt}");
    assert_eq!(receipt["stat"], "DELIVRD", "{receipt}");
    wait_for("the receipt is acknowledged", WAIT, || async {
        let answer = status_as(http, "delta-token", &id).await;
        answer["receipts_relayed"][0]["acked_ms"]
            .is_u64()
            .then_some(())
    })
    .await;
    served.abort();
}
