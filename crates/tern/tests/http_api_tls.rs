//! An `[[http_listener]]` with TLS (rustls, the SMPP listeners' keys):
//! the API answers over TLS to a client trusting the test's CA, and a
//! plain-HTTP request on that port gets no HTTP answer.

use tern_testkit as common;

use std::time::Duration;

use bytes::Bytes;
use common::{wait_until, Pki, TempDir};
use http_body_util::{BodyExt, Empty};
use hyper::http::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tern_session::tls::{ClientTls, MaybeTlsStream, TlsVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_over_tls_and_not_in_plain_text_on_a_tls_listener() {
    let dir = TempDir::new("http-api-tls");
    let Pki { ca, cert, key } = Pki::new(&dir);
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[[http_listener]]
address = "127.0.0.1:0"
tls_cert = "{cert}"
tls_key = "{key}"
tls_min_version = "1.3"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
http_tokens = ["t"]
"#,
        cert = cert.display(),
        key = key.display()
    );
    let mut tern = common::Launch::new().start(dir, &config);
    let http = tern.listening().http_port();
    wait_until("the HTTP listener is up", WAIT, || async {
        TcpStream::connect(("127.0.0.1", http)).await.is_ok()
    })
    .await;

    let tls = ClientTls {
        min_version: TlsVersion::Tls12,
        extra_ca_pem: Some(ca),
        use_webpki_roots: false,
        server_name: Some("localhost".to_owned()),
        ..ClientTls::default()
    };
    let connector = tls.load().expect("client TLS");
    let name = tls.server_name_for("127.0.0.1").expect("name");
    let stream = TcpStream::connect(("127.0.0.1", http))
        .await
        .expect("connect");
    let io = tokio::time::timeout(WAIT, MaybeTlsStream::connect(&connector, name, stream))
        .await
        .expect("handshake in time")
        .expect("TLS to the HTTP listener");
    assert_eq!(
        io.negotiated_version(),
        Some(TlsVersion::Tls13),
        "its floor"
    );
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("HTTP over TLS");
    tokio::spawn(connection);
    let request = Request::get("/v1/openapi.json")
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("answered in time")
        .expect("a response");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    assert!(body.starts_with(b"{"), "{body:?}");

    // Plain HTTP is a failed handshake there: the connection closes
    // without an HTTP answer.
    let mut plain = TcpStream::connect(("127.0.0.1", http))
        .await
        .expect("connect");
    plain
        .write_all(b"GET /v1/openapi.json HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, plain.read_to_end(&mut answer))
        .await
        .expect("closed in time");
    assert!(
        !answer.starts_with(b"HTTP/"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}
