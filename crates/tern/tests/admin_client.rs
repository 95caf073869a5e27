//! The admin client as the user meets it: `tern status`, `tern trace` and
//! `tern check-config --diff` run as processes against a loopback listener
//! that answers with canned HTTP, the way a daemon (or something that is
//! not one) may frame it: chunked bodies, JSON errors under a 5xx, nothing
//! listening at all. What the commands print must come from the body as
//! sent, and every failure must name the address.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::time::Duration;

const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// How long the canned listener waits on a silent client before giving up
/// on that connection.
const READ_WAIT: Duration = Duration::from_secs(5);

/// A listener on loopback that answers every request with
/// `answer(method, path)`, a whole HTTP response as bytes, then closes the
/// connection. It lives as long as the test process.
fn canned(answer: fn(&str, &str) -> Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            // One connection at a time: the commands ask one after another.
            let _ = serve_one(socket, answer);
        }
    });
    addr
}

/// Reads one request (head, and a body as long as its Content-Length) and
/// writes the canned answer.
fn serve_one(socket: TcpStream, answer: fn(&str, &str) -> Vec<u8>) -> std::io::Result<()> {
    socket.set_read_timeout(Some(READ_WAIT))?;
    let mut reader = BufReader::new(socket);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; content_length];
    reader.read_exact(&mut body)?;
    let mut words = request_line.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let mut socket = reader.into_inner();
    socket.write_all(&answer(method, path))?;
    socket.flush()
}

/// `body` as a chunked 200..599 response, cut into chunks of `cut` bytes so
/// no chunk boundary falls where a JSON token does.
fn chunked(status: &str, body: &str, cut: usize) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(cut) {
        out.extend_from_slice(format!("{:x};ext=1\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\nx-trailer: ignored\r\n\r\n");
    out
}

fn tern(args: &[&str]) -> Output {
    Command::new(TERN).args(args).output().expect("run tern")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An address nothing listens on: bound, then let go.
fn nothing_at() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    addr.to_string()
}

#[test]
fn status_reads_chunked_answers() {
    let addr = canned(|_, path| match path {
        "/ready" => chunked("200 OK", r#"{"ready":true,"store":"ok"}"#, 5),
        "/api/upstreams" => chunked(
            "200 OK",
            r#"[{"name":"carrier-x","profile":"ovh","bound":2,"pool_size":3}]"#,
            7,
        ),
        "/api/queues" => chunked("200 OK", r#"{"dispatch":41,"outbox":0}"#, 3),
        _ => chunked("200 OK", "[]", 1),
    })
    .to_string();
    let out = tern(&["status", "--json", "--admin", &addr]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status --json");
    assert_eq!(json["ready"]["store"], "ok", "{json}");
    assert_eq!(json["upstreams"][0]["name"], "carrier-x", "{json}");
    assert_eq!(json["queues"]["dispatch"], 41, "{json}");
}

#[test]
fn trace_shows_the_json_error_a_failing_endpoint_sends() {
    let addr = canned(|_, _| {
        chunked(
            "500 Internal Server Error",
            r#"{"error":"store read failed: disk gone"}"#,
            6,
        )
    })
    .to_string();
    let out = tern(&["trace", "00000000000000ab", "--admin", &addr]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    for part in [addr.as_str(), "500", "store read failed: disk gone"] {
        assert!(err.contains(part), "{part:?} not in {err:?}");
    }
}

#[test]
fn check_config_diff_shows_the_json_error_a_failing_endpoint_sends() {
    let addr = canned(|method, path| match (method, path) {
        ("POST", "/api/config/diff") => chunked(
            "503 Service Unavailable",
            r#"{"error":"reload in progress"}"#,
            4,
        ),
        _ => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
    })
    .to_string();
    let dir = std::env::temp_dir().join(format!("tern-admin-client-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("candidate.toml");
    std::fs::write(&file, CANDIDATE).expect("write");
    let out = tern(&[
        "check-config",
        "--diff",
        "--admin",
        &addr,
        file.to_str().expect("utf-8 path"),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    for part in [
        addr.as_str(),
        "/api/config/diff",
        "503",
        "reload in progress",
    ] {
        assert!(err.contains(part), "{part:?} not in {err:?}");
    }
}

#[test]
fn an_unreachable_admin_address_is_named_by_every_command() {
    let addr = nothing_at();
    for args in [
        vec!["status", "--admin", &addr],
        vec!["trace", "00000000000000ab", "--admin", &addr],
    ] {
        let out = tern(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("cannot connect to the admin listener at {addr}"))
                || err.contains(&format!("cannot reach the admin endpoint at {addr}")),
            "{args:?}: {err:?}"
        );
    }
}

/// A valid configuration for `check-config --diff`; its contents do not
/// matter, only that it passes the local check so the daemon is asked.
const CANDIDATE: &str = r#"
[[listener]]
address = "127.0.0.1:2775"

[storage]
path = "data"

[[client]]
system_id = "acme"
passwords = ["pw-one"]

[[upstream]]
name = "up"
host = "127.0.0.1"
port = 2776
profile = "generic"
system_id = "tern"
password = "pw-two"

[[route]]
name = "all"
upstreams = ["up"]
"#;
