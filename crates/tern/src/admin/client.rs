//! The admin listener's client, used by `tern status`, `tern trace`,
//! `tern check-config --diff` and the tests.
//!
//! It is hyper's HTTP/1 client (the hyper that axum already links) on one
//! tokio connection per request, so framing (`Content-Length`, chunked,
//! close-delimited) is hyper's. What stays here is the policy: one request per
//! connection, the whole exchange under one timeout, the body read into memory
//! up to a cap, and errors that name the address and path.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::header;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long one admin request may take, connect to last byte. The listener
/// answers from memory or a quick store read, so longer means it is stuck.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response body read; a node's JSON views are far smaller, so
/// more means we are not talking to a Tern admin listener.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The path would not make a valid request target.
    #[error("admin path {path:?} must start with '/' and contain no spaces or control characters")]
    InvalidPath {
        /// The path given.
        path: String,
    },
    /// Nothing accepted the connection: the node is down or the address is
    /// wrong.
    #[error("cannot connect to the admin listener at {addr}: {source}")]
    Connect {
        /// Where we tried.
        addr: SocketAddr,
        /// The connect error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed after connecting: the connection broke, or
    /// the answer was not a well-formed HTTP/1.x response.
    #[error("admin request to {addr} for {path} failed: {source}")]
    Http {
        /// The listener's address.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// hyper's account of what went wrong.
        #[source]
        source: hyper::Error,
    },
    /// No complete answer within the timeout.
    #[error("admin listener at {addr} did not answer {path} within {after:?}")]
    Timeout {
        /// The listener's address.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The body exceeded the response size cap (16 MiB).
    #[error("admin response from {addr} for {path} is larger than {limit} bytes")]
    TooLarge {
        /// The listener's address.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// The cap.
        limit: usize,
    },
    /// The listener answered with a status other than 2xx.
    #[error("admin listener at {addr} answered {status} for {path}: {body}")]
    Status {
        /// The listener's address.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// The HTTP status code.
        status: u16,
        /// The body as text, lossily decoded (the JSON error, usually).
        body: String,
    },
    /// A 2xx answer whose body is not JSON.
    #[error("admin response from {addr} for {path} is not JSON: {source}")]
    Json {
        /// The listener's address.
        addr: SocketAddr,
        /// The path asked for.
        path: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// One response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminResponse {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The body, as sent before transfer coding.
    pub body: Vec<u8>,
}

impl AdminResponse {
    /// The body as text, invalid UTF-8 replaced.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The body as JSON if the status is 2xx: the shape every caller but
    /// `/ready`'s wants, with the error naming `addr` and `path`.
    fn into_json(
        self,
        addr: SocketAddr,
        path: &str,
    ) -> Result<serde_json::Value, AdminClientError> {
        if !(200..300).contains(&self.status) {
            return Err(AdminClientError::Status {
                addr,
                path: path.to_owned(),
                status: self.status,
                body: self.text(),
            });
        }
        self.json().map_err(|source| AdminClientError::Json {
            addr,
            path: path.to_owned(),
            source,
        })
    }
}

/// GETs `path` from the admin listener at `addr` and returns the response
/// whatever its status (so `/ready`'s 503 body can still be read).
pub async fn get(addr: SocketAddr, path: &str) -> Result<AdminResponse, AdminClientError> {
    request_within(addr, path, None, CLIENT_TIMEOUT).await
}

/// GETs `path` and parses the body as JSON. A non-2xx answer is
/// [`AdminClientError::Status`]; use [`get`] to read such bodies as data.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, AdminClientError> {
    get(addr, path).await?.into_json(addr, path)
}

/// POSTs `body` as JSON to `path` and parses the answer as JSON; a non-2xx
/// answer is [`AdminClientError::Status`].
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, AdminClientError> {
    let body = Bytes::from(body.to_string());
    request_within(addr, path, Some(body), CLIENT_TIMEOUT)
        .await?
        .into_json(addr, path)
}

/// GET without a body, POST (JSON) with one, all of it within `timeout`.
async fn request_within(
    addr: SocketAddr,
    path: &str,
    body: Option<Bytes>,
    timeout: Duration,
) -> Result<AdminResponse, AdminClientError> {
    let request = build_request(addr, path, body)?;
    match tokio::time::timeout(timeout, exchange(addr, path, request)).await {
        Ok(result) => result,
        Err(_) => Err(AdminClientError::Timeout {
            addr,
            path: path.to_owned(),
            after: timeout,
        }),
    }
}

/// The request for `path`. The path is checked here, not left to the URI
/// parser, so that a message id or a typo cannot add a query or a header.
/// The environment variable the admin client takes the listener's token
/// from, when it has `[admin] token` (an environment variable rather than
/// an argument, so the token is not in the process list).
pub const ADMIN_TOKEN_ENV: &str = "TERN_ADMIN_TOKEN";

fn build_request(
    addr: SocketAddr,
    path: &str,
    body: Option<Bytes>,
) -> Result<Request<Full<Bytes>>, AdminClientError> {
    let invalid = || AdminClientError::InvalidPath {
        path: path.to_owned(),
    };
    let valid = path.starts_with('/')
        && !path
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii());
    if !valid {
        return Err(invalid());
    }
    let builder = Request::builder()
        .uri(path)
        // hyper's connection-level client does not add Host; HTTP/1.1 wants it.
        .header(header::HOST, addr.to_string())
        .header(header::ACCEPT, "application/json, */*;q=0.5")
        .header(
            header::USER_AGENT,
            concat!("tern/", env!("CARGO_PKG_VERSION")),
        )
        // One request per connection: the listener need not keep it open.
        .header(header::CONNECTION, "close");
    // A listener with `[admin] token` asks for it (`tern status`, `tern
    // trace` and `check-config --diff` against a remote node).
    let builder = match std::env::var(ADMIN_TOKEN_ENV) {
        Ok(token) if !token.is_empty() => {
            builder.header(header::AUTHORIZATION, format!("Bearer {token}"))
        }
        _ => builder,
    };
    let builder = match &body {
        Some(_) => builder
            .method(Method::POST)
            .header(header::CONTENT_TYPE, "application/json"),
        None => builder.method(Method::GET),
    };
    builder
        .body(Full::new(body.unwrap_or_default()))
        .map_err(|_| invalid())
}

/// Connects, sends `request` and reads the whole answer. hyper's connection
/// future is driven alongside on this task (no spawned task outlives a
/// timed-out request), and ends once the answer is read.
async fn exchange(
    addr: SocketAddr,
    path: &str,
    request: Request<Full<Bytes>>,
) -> Result<AdminResponse, AdminClientError> {
    let http = |source| AdminClientError::Http {
        addr,
        path: path.to_owned(),
        source,
    };
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| AdminClientError::Connect { addr, source })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let answer = async move {
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).trim().to_owned());
        let body = read_capped(response.into_body(), addr, path).await?;
        Ok(AdminResponse {
            status,
            content_type,
            body,
        })
    };
    // The connection's own error, if any, is also the answer's; the answer's
    // names the path.
    let (answer, _connection) = tokio::join!(answer, connection);
    answer
}

/// Reads `body` to its end, refusing more than [`MAX_RESPONSE_BYTES`].
async fn read_capped(
    mut body: hyper::body::Incoming,
    addr: SocketAddr,
    path: &str,
) -> Result<Vec<u8>, AdminClientError> {
    let mut read = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|source| AdminClientError::Http {
            addr,
            path: path.to_owned(),
            source,
        })?;
        // Trailers are not data; only data frames count.
        if let Ok(data) = frame.into_data() {
            if read.len().saturating_add(data.len()) > MAX_RESPONSE_BYTES {
                return Err(AdminClientError::TooLarge {
                    addr,
                    path: path.to_owned(),
                    limit: MAX_RESPONSE_BYTES,
                });
            }
            read.extend_from_slice(&data);
        }
    }
    Ok(read.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A listener on loopback that answers one connection with `answer`,
    /// written as given once the request head has arrived, then closes.
    async fn answering(answer: &'static [u8]) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            read_head(&mut socket).await;
            // The client may hang up first (a refused answer); that is fine.
            let _ = socket.write_all(answer).await;
            let _ = socket.shutdown().await;
        });
        addr
    }

    /// Reads until the blank line that ends a request head (our GETs have
    /// no body), or the peer stops.
    async fn read_head(socket: &mut TcpStream) -> Vec<u8> {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match socket.read(&mut byte).await {
                Ok(1) => head.push(byte[0]),
                _ => break,
            }
        }
        head
    }

    #[tokio::test]
    async fn a_chunked_answer_is_read_whole_with_its_status() {
        let addr = answering(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
              transfer-encoding: chunked\r\n\r\n\
              3;ext=1\r\n{\"a\r\n4\r\n\":2}\r\n0\r\nx-trailer: 1\r\n\r\n",
        )
        .await;
        let response = get(addr, "/ready").await.expect("answered");
        assert_eq!(response.status, 503);
        assert_eq!(response.content_type.as_deref(), Some("application/json"));
        assert_eq!(response.json().expect("json"), serde_json::json!({"a": 2}));
    }

    #[tokio::test]
    async fn a_close_delimited_answer_is_read_to_the_end() {
        let addr = answering(b"HTTP/1.0 200 OK\r\n\r\nhello").await;
        let response = get(addr, "/health").await.expect("answered");
        assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    }

    #[tokio::test]
    async fn a_json_error_answer_names_address_path_status_and_body() {
        let addr = answering(
            b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\n\
              transfer-encoding: chunked\r\n\r\n\
              f\r\n{\"error\":\"store\r\n7\r\n down\"}\r\n0\r\n\r\n",
        )
        .await;
        let err = get_json(addr, "/api/queues").await.expect_err("a 500");
        let AdminClientError::Status { status, body, .. } = &err else {
            panic!("not a status error: {err}");
        };
        assert_eq!((*status, body.as_str()), (500, r#"{"error":"store down"}"#));
        let shown = err.to_string();
        for part in [
            addr.to_string().as_str(),
            "/api/queues",
            "500",
            "store down",
        ] {
            assert!(shown.contains(part), "{part:?} not in {shown:?}");
        }
    }

    #[tokio::test]
    async fn a_broken_answer_is_an_http_error_naming_address_and_path() {
        let broken: [&'static [u8]; 4] = [
            b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-le",
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab",
        ];
        for answer in broken {
            let addr = answering(answer).await;
            let err = get(addr, "/api/sessions").await.expect_err("refused");
            assert!(
                matches!(&err, AdminClientError::Http { path, .. } if path == "/api/sessions"),
                "{}: {err}",
                String::from_utf8_lossy(answer)
            );
            assert!(err.to_string().contains(&addr.to_string()), "{err}");
        }
    }

    #[tokio::test]
    async fn an_answer_over_the_cap_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            read_head(&mut socket).await;
            let head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
            let mut chunk = b"100000\r\n".to_vec(); // 1 MiB, in hex
            chunk.resize(chunk.len() + (1 << 20), b' ');
            chunk.extend_from_slice(b"\r\n");
            if socket.write_all(head).await.is_err() {
                return;
            }
            // One MiB over the cap, then the end; the client stops first.
            for _ in 0..=(MAX_RESPONSE_BYTES >> 20) {
                if socket.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = socket.write_all(b"0\r\n\r\n").await;
        });
        let err = get(addr, "/metrics").await.expect_err("too large");
        assert!(
            matches!(err, AdminClientError::TooLarge { limit, .. } if limit == MAX_RESPONSE_BYTES),
            "{err}"
        );
        server.abort();
    }

    #[tokio::test]
    async fn a_complete_answer_does_not_wait_for_the_peer_to_close() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Answers in full, then holds the connection open.
        let holder = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            read_head(&mut socket).await;
            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}";
            let _ = socket.write_all(answer).await;
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let response = request_within(addr, "/health", None, Duration::from_secs(2))
            .await
            .expect("answered before the timeout");
        assert_eq!(response.text(), "{}");
        holder.abort();
    }

    #[tokio::test]
    async fn bad_paths_are_refused_before_connecting() {
        let addr: SocketAddr = "127.0.0.1:9".parse().expect("addr");
        for path in ["api", "/a b", "/a\r\nX: y", "/é"] {
            let err = get(addr, path).await.expect_err("refused");
            assert!(
                matches!(err, AdminClientError::InvalidPath { .. }),
                "{path}: {err}"
            );
        }
    }

    #[tokio::test]
    async fn a_silent_listener_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accept and hold the connection without ever answering.
        let holder = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let after = Duration::from_millis(200);
        let err = request_within(addr, "/health", None, after)
            .await
            .expect_err("times out");
        assert!(
            matches!(&err, AdminClientError::Timeout { after: a, path, .. } if *a == after && path == "/health"),
            "{err}"
        );
        holder.abort();
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error_naming_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = get_json(addr, "/health").await.expect_err("refused");
        assert!(matches!(err, AdminClientError::Connect { .. }), "{err}");
        assert!(err.to_string().contains(&addr.to_string()), "{err}");
    }
}
