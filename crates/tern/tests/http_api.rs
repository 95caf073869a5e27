//! The HTTP API (`[[http_listener]]`) on the real binary, with a real HTTP
//! client (hyper), the sim crate's simulator upstream and the sled store:
//! a submit reaches the simulator and is readable by its owner only; an
//! Idempotency-Key repeat stores nothing new; every error status is a
//! problem document with its SMPP status; an SMPP session and HTTP
//! requests of one account share its rate and its window; submits get
//! 503 while the node drains.

use tern_testkit as common;

use std::time::Duration;

use bytes::Bytes;
use common::{
    accept_submit, bare_smsc, client, next_submit, submit_sm, wait_for, wait_until, Daemon,
};
use http_body_util::{BodyExt, Full};
use hyper::http::{HeaderMap, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tern_codec::{Body, CommandStatus, RegisteredDelivery};
use tern_session::smsc::SmscConfig;
use tern_sim::smsc::{Recorded, SimConfig, SimHandle, Simulator};

const WAIT: Duration = Duration::from_secs(15);

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Sends one request on a new connection to `port`, within [`WAIT`].
async fn call(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Answer {
    let exchange = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", format!("127.0.0.1:{port}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body.into()))
            .expect("a valid request");
        let response = sender.send_request(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(Answer {
            status,
            headers,
            body,
        })
    };
    match tokio::time::timeout(WAIT, exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => panic!("{method} {path}: {err}"),
        Err(_) => panic!("{method} {path}: no answer within {WAIT:?}"),
    }
}

/// `POST /v1/messages` of `body` with bearer `token` and more headers.
async fn post(port: u16, token: &str, body: &Value, more: &[(&str, &str)]) -> Answer {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    headers.extend_from_slice(more);
    call(port, "POST", "/v1/messages", &headers, body.to_string()).await
}

/// `GET /v1/messages/{id}` with bearer `token`.
async fn get_message(port: u16, token: &str, id: &str) -> Answer {
    let bearer = format!("Bearer {token}");
    call(
        port,
        "GET",
        &format!("/v1/messages/{id}"),
        &[("authorization", bearer.as_str())],
        Bytes::new(),
    )
    .await
}

/// The accounts of every test: `acme` (two tokens, as during a rotation,
/// rate `acme_rate` when set), `beta` (another account), `walled` (only
/// from 10.0.0.0/8), `deaf` (may only receive) and `held` (transaction
/// mode, so a submit stays in flight until the upstream answers; window 1).
fn accounts(acme_rate: Option<u32>) -> String {
    let rate = acme_rate
        .map(|r| format!("rate = {r}\n"))
        .unwrap_or_default();
    format!(
        r#"
[[client]]
system_id = "acme"
passwords = ["pw"]
http_tokens = ["acme-old", "acme-new"]
{rate}
[[client]]
system_id = "beta"
passwords = ["pw"]
http_tokens = ["beta-token"]
[[client]]
system_id = "walled"
passwords = ["pw"]
http_tokens = ["walled-token"]
allowed_ips = ["10.0.0.0/8"]
[[client]]
system_id = "deaf"
passwords = ["pw"]
http_tokens = ["deaf-token"]
binds = ["receiver"]
[[client]]
system_id = "held"
passwords = ["pw"]
http_tokens = ["held-token"]
submit_mode = "transaction"
transaction_timeout = "10s"
window = 1
"#
    )
}

/// Tern with an SMPP listener, an HTTP listener and one upstream at
/// `upstream` for numbers starting 34; with the ports its SMPP and HTTP
/// listeners took.
fn start_tern(label: &str, upstream: u16, acme_rate: Option<u32>) -> (Daemon, u16, u16) {
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[http_listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
{accounts}
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
"#,
        accounts = accounts(acme_rate)
    );
    let mut daemon = Daemon::start(&format!("http-api-{label}"), &config);
    let listening = daemon.listening();
    (daemon, listening.client_port(), listening.http_port())
}

/// Waits until Tern's HTTP listener on `port` takes connections (it starts
/// after the upstreams bind).
async fn http_up(port: u16) {
    wait_until("the HTTP listener is up", WAIT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
}

/// A simulator recording what it is sent, and Tern bound to it.
async fn with_simulator(label: &str, acme_rate: Option<u32>) -> (SimHandle, Daemon, u16, u16) {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    sim.start_recording();
    let (tern, smpp, http) = start_tern(label, sim.addr().port(), acme_rate);
    wait_until("tern binds to the simulator", WAIT, || async {
        !sim.sessions("tern").is_empty()
    })
    .await;
    http_up(http).await;
    (sim, tern, smpp, http)
}

/// The destinations the simulator was sent `text` for, in order.
fn sent_to(sim: &SimHandle, text: &str) -> Vec<String> {
    sim.recorded()
        .into_iter()
        .filter_map(|r| match r {
            Recorded::Submit {
                text: t,
                destination,
                ..
            } if t == text.as_bytes() => Some(destination),
            _ => None,
        })
        .collect()
}

/// The ids of a 202 answer, in destination order.
fn ids(answer: &Answer) -> Vec<String> {
    assert_eq!(answer.status, StatusCode::ACCEPTED, "{answer:?}");
    answer.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].as_str().expect("an id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_reaches_the_simulator_and_only_its_account_reads_it() {
    let (sim, _tern, _smpp, http) = with_simulator("submit", None).await;
    let body = json!({"to": ["+34600000001", "34600000002"], "from": "Acme", "text": "hello over http", "receipt": "final"});
    let answer = post(http, "acme-old", &body, &[]).await;
    let ids = ids(&answer);
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    wait_until("both destinations reach the simulator", WAIT, || async {
        sent_to(&sim, "hello over http").len() == 2
    })
    .await;
    let mut to = sent_to(&sim, "hello over http");
    to.sort();
    assert_eq!(to, ["34600000001", "34600000002"]);

    // Its story, with the other token of the rotation: final once the
    // simulator's receipt came, with the canonical receipt and the attempt.
    let message = wait_for("the message is final", WAIT, || async {
        let answer = get_message(http, "acme-new", &ids[0]).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        let message = answer.json();
        (message["state"] == "final").then_some(message)
    })
    .await;
    assert_eq!(message["client_id"], ids[0].as_str());
    assert_eq!(message["receipt"]["stat"], "DELIVRD", "{message}");
    assert_eq!(message["attempts"][0]["upstream"], "up", "{message}");
    assert_eq!(message["destination"], "34600000001");

    // Another account's id is as unknown as one that never was.
    let foreign = get_message(http, "beta-token", &ids[0]).await;
    assert_eq!(foreign.status, StatusCode::NOT_FOUND, "{foreign:?}");
    assert_eq!(foreign.json()["smpp_status"], "ESME_RQUERYFAIL");
    let unknown = get_message(http, "acme-old", "00000000000000ff").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // Basic auth: the system_id and a token; a token of another account
    // under this system_id is refused.
    let basic = |user_password: &str| {
        use std::fmt::Write as _;
        // Standard base64 of a short ASCII string.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let bytes = user_password.as_bytes();
        let mut out = String::from("Basic ");
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= chunk.len() {
                    let _ = write!(
                        out,
                        "{}",
                        ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
                    );
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let path = format!("/v1/messages/{}", ids[1]);
    let good = basic("acme:acme-new");
    let read = call(
        http,
        "GET",
        &path,
        &[("authorization", good.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{read:?}");
    let crossed = basic("acme:beta-token");
    let refused = call(
        http,
        "GET",
        &path,
        &[("authorization", crossed.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_repeat_answers_the_first_ids_and_stores_nothing_new() {
    let (sim, _tern, _smpp, http) = with_simulator("idempotency", None).await;
    let body = json!({"to": ["34600000011", "34600000012"], "from": "Acme", "text": "only once"});
    let key = [("idempotency-key", "order-42")];
    let first = ids(&post(http, "acme-old", &body, &key).await);
    let again = ids(&post(http, "acme-new", &body, &key).await);
    assert_eq!(first, again, "the repeat answers the first ids");
    wait_until("the two messages reach the simulator", WAIT, || async {
        sent_to(&sim, "only once").len() == 2
    })
    .await;
    // Another key is another request.
    let other = ids(&post(http, "acme-old", &body, &[("idempotency-key", "order-43")]).await);
    assert!(other.iter().all(|id| !first.contains(id)), "{other:?}");
    wait_until("the other request's two messages arrive", WAIT, || async {
        sent_to(&sim, "only once").len() == 4
    })
    .await;
    // The repeat's messages would have been sent before the other key's:
    // four in all, two per destination.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut to = sent_to(&sim, "only once");
    to.sort();
    assert_eq!(
        to,
        ["34600000011", "34600000011", "34600000012", "34600000012"]
    );
    // A key of another account is its own.
    let beta = ids(&post(http, "beta-token", &body, &key).await);
    assert!(beta.iter().all(|id| !first.contains(id)), "{beta:?}");
}

/// Asserts a problem document: its status, its SMPP status and the field.
fn assert_problem(answer: &Answer, status: StatusCode, smpp: &str, field: Option<&str>) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json"),
        "{answer:?}"
    );
    let problem = answer.json();
    assert_eq!(problem["status"], status.as_u16(), "{problem}");
    assert_eq!(problem["smpp_status"], smpp, "{problem}");
    assert_eq!(problem["field"].as_str(), field, "{problem}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_status_is_a_problem_with_its_smpp_status() {
    let (_sim, _tern, _smpp, http) = with_simulator("errors", Some(1)).await;
    let good = json!({"to": "34600000021", "from": "Acme", "text": "fine"});

    let no_from = json!({"to": "34600000021", "text": "x"});
    let answer = post(http, "beta-token", &no_from, &[]).await;
    assert_problem(
        &answer,
        StatusCode::BAD_REQUEST,
        "ESME_RINVSRCADR",
        Some("from"),
    );
    let letters = json!({"to": ["34600000021", "34abc"], "from": "Acme", "text": "x"});
    let answer = post(http, "beta-token", &letters, &[]).await;
    assert_problem(
        &answer,
        StatusCode::BAD_REQUEST,
        "ESME_RINVDSTADR",
        Some("to[1]"),
    );
    let no_route = json!({"to": "4915100000001", "from": "Acme", "text": "x"});
    let answer = post(http, "beta-token", &no_route, &[]).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{answer:?}");
    assert_eq!(answer.json()["field"], "to");

    let answer = call(
        http,
        "POST",
        "/v1/messages",
        &[("content-type", "application/json")],
        good.to_string(),
    )
    .await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, "ESME_RINVPASWD", None);
    assert!(answer.header("www-authenticate").is_some(), "{answer:?}");
    let answer = post(http, "nobody", &good, &[]).await;
    assert_problem(&answer, StatusCode::UNAUTHORIZED, "ESME_RINVPASWD", None);

    let answer = post(http, "walled-token", &good, &[]).await;
    assert_problem(&answer, StatusCode::FORBIDDEN, "ESME_RBINDFAIL", None);
    let answer = post(http, "deaf-token", &good, &[]).await;
    assert_problem(&answer, StatusCode::FORBIDDEN, "ESME_RINVBNDSTS", None);

    let huge = json!({"to": "34600000021", "from": "Acme", "text": "a".repeat(70_000)});
    let answer = post(http, "beta-token", &huge, &[]).await;
    assert_problem(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "ESME_RINVMSGLEN",
        None,
    );

    let bearer = "Bearer beta-token";
    let answer = call(
        http,
        "POST",
        "/v1/messages",
        &[("authorization", bearer), ("content-type", "text/plain")],
        good.to_string(),
    )
    .await;
    assert_problem(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "ESME_RINVCMDID",
        None,
    );

    // acme's rate is 1 a second: the first is taken, the next refused
    // with the time one message's worth takes to come back.
    assert_eq!(
        post(http, "acme-old", &good, &[]).await.status,
        StatusCode::ACCEPTED
    );
    let answer = post(http, "acme-old", &good, &[]).await;
    assert_problem(
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "ESME_RTHROTTLED",
        None,
    );
    assert_eq!(answer.header("retry-after"), Some("1"));

    let answer = call(http, "GET", "/v2/anything", &[], Bytes::new()).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_smpp_session_and_http_requests_of_one_account_share_its_rate() {
    let (_sim, _tern, smpp, http) = with_simulator("shared-rate", Some(1)).await;
    let session = client(smpp, "acme", "pw").bind().await;
    let body = json!({"to": "34600000031", "from": "Acme", "text": "shared"});
    // SMPP takes the second's one message: HTTP is refused.
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm(
            "34600000031",
            "smpp first",
            RegisteredDelivery::NONE,
        )))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
    let answer = post(http, "acme-old", &body, &[]).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS, "{answer:?}");
    // HTTP takes the next second's: SMPP is refused.
    let taken = wait_for("HTTP gets the next second's message", WAIT, || async {
        let answer = post(http, "acme-old", &body, &[]).await;
        (answer.status == StatusCode::ACCEPTED).then_some(answer)
    })
    .await;
    assert_eq!(ids(&taken).len(), 1);
    let resp = session
        .handle
        .request(Body::SubmitSm(submit_sm(
            "34600000031",
            "smpp second",
            RegisteredDelivery::NONE,
        )))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Throttled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_request_in_flight_holds_a_slot_of_the_accounts_window() {
    // An upstream answered by hand: `held`'s transaction-mode submit is in
    // flight until the test answers it.
    let mut upstream = bare_smsc(SmscConfig::default()).await;
    let (_tern, smpp, http) = start_tern("window", upstream.port, None);
    let mut session = tokio::time::timeout(WAIT, upstream.sessions.recv())
        .await
        .expect("tern binds in time")
        .expect("a session");
    http_up(http).await;
    let body = json!({"to": "34600000081", "from": "Held", "text": "in flight"});
    let first = {
        let body = body.clone();
        tokio::spawn(async move { post(http, "held-token", &body, &[]).await })
    };
    let (_, responder) = tokio::time::timeout(WAIT, next_submit(&mut session.requests))
        .await
        .expect("the submit reaches the upstream")
        .expect("a submit");

    // The window's one slot is held: HTTP and SMPP are refused alike.
    let answer = post(http, "held-token", &body, &[]).await;
    assert_problem(
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "ESME_RMSGQFUL",
        None,
    );
    assert_eq!(answer.header("retry-after"), Some("1"));
    let smpp_client = client(smpp, "held", "pw").bind().await;
    let resp = smpp_client
        .handle
        .request(Body::SubmitSm(submit_sm(
            "34600000082",
            "over smpp",
            RegisteredDelivery::NONE,
        )))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::MessageQueueFull);

    // Answered: the slot is given back with the 202.
    accept_submit(responder, "up-1").await;
    let first = tokio::time::timeout(WAIT, first)
        .await
        .expect("answered in time")
        .expect("task");
    assert_eq!(ids(&first).len(), 1);
    let next = tokio::spawn(async move { post(http, "held-token", &body, &[]).await });
    let (_, responder) = tokio::time::timeout(WAIT, next_submit(&mut session.requests))
        .await
        .expect("the next submit reaches the upstream")
        .expect("a submit");
    accept_submit(responder, "up-2").await;
    let next = tokio::time::timeout(WAIT, next)
        .await
        .expect("answered in time")
        .expect("task");
    assert_eq!(ids(&next).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submits_are_refused_with_503_while_the_node_drains() {
    // An upstream that never answers keeps a send in flight, so shutdown
    // waits for it, with the HTTP listener still up.
    let mut upstream = bare_smsc(SmscConfig::default()).await;
    let (tern, _smpp, http) = start_tern("draining", upstream.port, None);
    let mut session = tokio::time::timeout(WAIT, upstream.sessions.recv())
        .await
        .expect("tern binds in time")
        .expect("a session");
    http_up(http).await;
    let body = json!({"to": "34600000041", "from": "Acme", "text": "held"});
    assert_eq!(
        post(http, "acme-old", &body, &[]).await.status,
        StatusCode::ACCEPTED
    );
    let (_held, _responder) = tokio::time::timeout(WAIT, next_submit(&mut session.requests))
        .await
        .expect("the submit reaches the upstream")
        .expect("a submit");
    tern.signal("TERM");
    let answer = wait_for("a submit is refused as draining", WAIT, || async {
        let answer = post(http, "acme-old", &body, &[]).await;
        (answer.status != StatusCode::ACCEPTED).then_some(answer)
    })
    .await;
    assert_problem(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "ESME_RSYSERR",
        None,
    );
    assert!(answer.header("retry-after").is_some(), "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_it_serves() {
    let (_sim, _tern, _smpp, http) = with_simulator("openapi", None).await;
    let answer = call(http, "GET", "/v1/openapi.json", &[], Bytes::new()).await;
    assert_eq!(answer.status, StatusCode::OK);
    let document = answer.json();
    let paths = document["paths"].as_object().expect("paths");
    // Each documented operation is served: none falls to the API's
    // "no such route" answer.
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            let concrete = path.replace("{id}", "00000000000000ff");
            let answer = call(http, &method.to_uppercase(), &concrete, &[], Bytes::new()).await;
            let fell_through = answer.status == StatusCode::NOT_FOUND
                && answer.json()["smpp_status"] == "ESME_RINVCMDID";
            assert!(
                !fell_through,
                "{method} {path} is documented but not served"
            );
        }
    }
}
