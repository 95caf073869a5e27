//! A minimal HTTP/1.1 GET client for the admin listener, used by
//! `tern status` and the tests.
//!
//! It speaks only to our own listener, so it stays small: one request per
//! connection (`Connection: close`), the whole exchange under one timeout, the
//! response read into memory up to a cap, and bodies framed by
//! `Content-Length`, chunked encoding or the end of the connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one admin request may take, connect to last byte. The listener
/// answers from memory or a quick store read, so longer means it is stuck.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest response read; a node's JSON views are far smaller, so more
/// means we are not talking to a Tern admin listener.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Most response headers accepted; ours sends a handful.
const MAX_HEADERS: usize = 32;

/// Why an admin request failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The path would not make a valid request line.
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
    /// The connection broke during the exchange.
    #[error("admin request to {addr} failed: {source}")]
    Io {
        /// The listener's address.
        addr: SocketAddr,
        /// The read or write error.
        #[source]
        source: std::io::Error,
    },
    /// No complete answer within the timeout.
    #[error("admin listener at {addr} did not answer within {after:?}")]
    Timeout {
        /// The listener's address.
        addr: SocketAddr,
        /// The timeout that expired.
        after: Duration,
    },
    /// The answer exceeded the response size cap (16 MiB).
    #[error("admin response from {addr} is larger than {limit} bytes")]
    TooLarge {
        /// The listener's address.
        addr: SocketAddr,
        /// The cap.
        limit: usize,
    },
    /// The answer was not a well-formed HTTP/1.x response.
    #[error("malformed HTTP response from {addr}: {reason}")]
    Malformed {
        /// The listener's address.
        addr: SocketAddr,
        /// What was wrong.
        reason: &'static str,
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
    /// The body, de-chunked.
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
}

/// GETs `path` from the admin listener at `addr` and returns the response
/// whatever its status (so `/ready`'s 503 body can still be read).
pub async fn get(addr: SocketAddr, path: &str) -> Result<AdminResponse, AdminClientError> {
    get_within(addr, path, CLIENT_TIMEOUT).await
}

/// GETs `path` and parses the body as JSON. A non-2xx answer is
/// [`AdminClientError::Status`]; use [`get`] to read such bodies as data.
pub async fn get_json(addr: SocketAddr, path: &str) -> Result<serde_json::Value, AdminClientError> {
    let response = get(addr, path).await?;
    if !(200..300).contains(&response.status) {
        return Err(AdminClientError::Status {
            addr,
            path: path.to_owned(),
            status: response.status,
            body: response.text(),
        });
    }
    response.json().map_err(|source| AdminClientError::Json {
        addr,
        path: path.to_owned(),
        source,
    })
}

/// POSTs `body` as JSON to `path` and parses the answer as JSON; a non-2xx
/// answer is [`AdminClientError::Status`].
pub async fn post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, AdminClientError> {
    let response = request_within(addr, path, Some(body.to_string()), CLIENT_TIMEOUT).await?;
    if !(200..300).contains(&response.status) {
        return Err(AdminClientError::Status {
            addr,
            path: path.to_owned(),
            status: response.status,
            body: response.text(),
        });
    }
    response.json().map_err(|source| AdminClientError::Json {
        addr,
        path: path.to_owned(),
        source,
    })
}

async fn get_within(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<AdminResponse, AdminClientError> {
    request_within(addr, path, None, timeout).await
}

/// GET without a body, POST (JSON) with one.
async fn request_within(
    addr: SocketAddr,
    path: &str,
    body: Option<String>,
    timeout: Duration,
) -> Result<AdminResponse, AdminClientError> {
    let valid = path.starts_with('/')
        && !path
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || !b.is_ascii());
    if !valid {
        return Err(AdminClientError::InvalidPath {
            path: path.to_owned(),
        });
    }
    match tokio::time::timeout(timeout, exchange(addr, path, body)).await {
        Ok(result) => result,
        Err(_) => Err(AdminClientError::Timeout {
            addr,
            after: timeout,
        }),
    }
}

async fn exchange(
    addr: SocketAddr,
    path: &str,
    body: Option<String>,
) -> Result<AdminResponse, AdminClientError> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| AdminClientError::Connect { addr, source })?;
    let (method, content) = match &body {
        Some(body) => (
            "POST",
            format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                body.len()
            ),
        ),
        None => ("GET", String::new()),
    };
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json, */*;q=0.5\r\n\
         User-Agent: tern/{}\r\n{content}Connection: close\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
    );
    request.push_str(body.as_deref().unwrap_or(""));
    let io = |source| AdminClientError::Io { addr, source };
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    // One byte over the cap tells "exactly at the cap" from "too large".
    let limit = u64::try_from(MAX_RESPONSE_BYTES).unwrap_or(u64::MAX);
    (&mut stream)
        .take(limit.saturating_add(1))
        .read_to_end(&mut raw)
        .await
        .map_err(io)?;
    if raw.len() > MAX_RESPONSE_BYTES {
        return Err(AdminClientError::TooLarge {
            addr,
            limit: MAX_RESPONSE_BYTES,
        });
    }
    parse_response(&raw).map_err(|reason| AdminClientError::Malformed { addr, reason })
}

/// Parses a complete HTTP/1.x response read until the peer closed.
fn parse_response(raw: &[u8]) -> Result<AdminResponse, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut head = httparse::Response::new(&mut headers);
    let head_len = match head.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Err("connection closed inside the headers"),
        Err(_) => return Err("invalid status line or headers"),
    };
    let status = head.code.ok_or("no status code")?;
    let header = |name: &str| {
        head.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    let content_type = header("content-type");
    let rest = &raw[head_len..];
    let chunked =
        header("transfer-encoding").is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else if let Some(length) = header("content-length") {
        let length: usize = length.parse().map_err(|_| "invalid Content-Length")?;
        rest.get(..length)
            .ok_or("connection closed before Content-Length bytes")?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(AdminResponse {
        status,
        content_type,
        body,
    })
}

/// Decodes a chunked body (RFC 9112 §7.1), ignoring extensions and trailers.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    loop {
        let line_end = find_crlf(rest).ok_or("truncated chunk size")?;
        let line = std::str::from_utf8(&rest[..line_end]).map_err(|_| "invalid chunk size")?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "invalid chunk size")?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("truncated chunk")?;
        body.extend_from_slice(chunk);
        rest = rest
            .get(size..)
            .and_then(|after| after.strip_prefix(b"\r\n"))
            .ok_or("chunk not followed by CRLF")?;
    }
}

fn find_crlf(bytes: &[u8]) -> Option<usize> {
    bytes.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_length_body() {
        let raw = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{\"a\":1}";
        let response = parse_response(raw).expect("parses");
        assert_eq!(response.status, 200);
        assert_eq!(response.content_type.as_deref(), Some("application/json"));
        assert_eq!(response.json().expect("json"), serde_json::json!({"a": 1}));
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3;ext=1\r\n{\"a\r\n4\r\n\":2}\r\n0\r\nx-trailer: 1\r\n\r\n";
        let response = parse_response(raw).expect("parses");
        assert_eq!(response.status, 503);
        assert_eq!(response.text(), "{\"a\":2}");
    }

    #[test]
    fn body_to_end_of_connection() {
        let response = parse_response(b"HTTP/1.0 200 OK\r\n\r\nhello").expect("parses");
        assert_eq!(response.text(), "hello");
    }

    #[test]
    fn broken_responses_are_errors() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-le").is_err());
        assert!(parse_response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nshort").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab")
                .is_err()
        );
        assert!(
            parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n").is_err()
        );
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        // Accept and hold the connection without ever answering.
        let holder = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(socket);
        });
        let err = get_within(addr, "/health", Duration::from_millis(200))
            .await
            .expect_err("times out");
        assert!(
            matches!(err, AdminClientError::Timeout { after, .. } if after == Duration::from_millis(200)),
            "{err}"
        );
        holder.abort();
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let err = get_json(addr, "/health").await.expect_err("refused");
        assert!(matches!(err, AdminClientError::Connect { .. }), "{err}");
    }
}
