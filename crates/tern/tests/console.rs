//! The operator console at `/` (issue 21, point 1) against a real daemon:
//! a sandbox upstream, a client sending all along, the admin listener on
//! loopback.
//!
//! - the HTML the server renders (what a browser without JavaScript shows)
//!   names the running upstream, shows the queue depths `/api/queues`
//!   gives, and no secret of the config;
//! - headless Chromium (Debian's `chromium`, installed by `.ci/run`) runs
//!   the page's script: the DOM it leaves shows the upstream up, a send
//!   rate above zero and the queue depth;
//! - `[admin] token`: required off loopback (a config error naming the
//!   place), and when set, the page and the API answer 401 without it.

use tern_testkit as common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{
    check_config, client, submit_id, submit_sm, wait_for, Admin, Daemon, Launch, TempDir,
};
use tern_codec::RegisteredDelivery;
use tern_session::BindType;

/// How long the daemon has to show what a test waits for.
const WITHIN: Duration = Duration::from_secs(20);
/// Where Debian's `chromium` package puts the browser.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Secrets in the config; none may reach the page.
const SECRETS: [&str; 2] = ["upS3cr3t", "clS3cr3t"];

/// A daemon with a sandbox upstream and one client account, `acme`.
fn config(admin: &str, token: Option<&str>) -> String {
    let token = token
        .map(|t| format!("token = \"{t}\"\n"))
        .unwrap_or_default();
    format!(
        r#"
[[listener]]
address = "127.0.0.1:0"
[admin]
address = "{admin}"
{token}[storage]
path = "data"
[[simulator]]
name = "sandbox"
address = "127.0.0.1:0"
[[upstream]]
name = "sandbox"
simulator = "sandbox"
system_id = "tern"
password = "{up}"
[[route]]
name = "all"
upstreams = ["sandbox"]
[[client]]
system_id = "acme"
passwords = ["{cl}"]
"#,
        up = SECRETS[0],
        cl = SECRETS[1],
    )
}

/// A daemon with traffic flowing: `acme` binds as a transmitter (so its
/// receipts wait in the outbox: a queue that is not empty) and keeps
/// submitting until the returned task is aborted; the id of its first
/// message comes last.
async fn busy_daemon(label: &str) -> (Daemon, Admin, tokio::task::JoinHandle<()>, String) {
    let mut daemon = Daemon::start(label, &config("127.0.0.1:0", None));
    let port = daemon.client_port();
    let admin = daemon.admin();
    admin
        .until("/api/upstreams", WITHIN, "the sandbox bound", |v| {
            v[0]["bound"].as_u64().unwrap_or(0) > 0
        })
        .await;
    let acme = client(port, "acme", SECRETS[1])
        .bind_type(BindType::Transmitter)
        .bind()
        .await;
    let first = submit_id(
        &acme.handle,
        submit_sm("34600000000", "first", RegisteredDelivery::ALWAYS),
    )
    .await;
    let traffic = tokio::spawn(async move {
        for n in 0u64.. {
            let sm = submit_sm(
                &format!("346{:08}", n % 100_000_000),
                "hello",
                RegisteredDelivery::ALWAYS,
            );
            submit_id(&acme.handle, sm).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    admin
        .until("/api/queues", WITHIN, "receipts waiting", |q| {
            q["outbox"].as_u64().unwrap_or(0) > 0
        })
        .await;
    (daemon, admin, traffic, first)
}

/// The number in the element with id `id` of an HTML text.
fn cell(html: &str, id: &str) -> Option<u64> {
    let start = html.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    let end = start + html[start..].find('<')?;
    html[start..end].trim().parse().ok()
}

/// The `data-rate` of the row `data-upstream="name"` in the DOM.
fn send_rate(dom: &str, name: &str) -> Option<f64> {
    let row = &dom[dom.find(&format!("data-upstream=\"{name}\""))?..];
    let row = &row[..row.find("</tr>")?];
    let at = row.find("data-rate=\"")? + "data-rate=\"".len();
    row[at..at + row[at..].find('"')?].parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_without_javascript_shows_the_upstream_and_the_queues_and_no_secret() {
    let (_daemon, admin, traffic, first) = busy_daemon("console-html").await;
    let html = admin.text("/").await;
    assert!(html.contains("<meta name=\"viewport\""), "{html}");
    assert!(
        html.contains("data-upstream=\"sandbox\"><td>sandbox</td><td class=\"state up\">up"),
        "{html}"
    );
    assert!(html.contains("data-client=\"acme\""), "{html}");
    assert!(html.contains("id=\"reload-outcome\">ok"), "{html}");
    for secret in SECRETS {
        assert!(!html.contains(secret), "the page shows the secret {secret}");
    }
    // The search box without JavaScript: `/?trace=ID` shows the trace.
    let traced = admin.text(&format!("/?trace={first}")).await;
    assert!(
        traced.contains(&format!("<h2>Trace {first}</h2>")),
        "{traced}"
    );
    assert!(
        traced.contains("&quot;client&quot;: &quot;acme&quot;"),
        "{traced}"
    );
    let unknown = admin.text("/?trace=ffffffffffffffff").await;
    assert!(unknown.contains("No message ffffffffffffffff"), "{unknown}");
    // No CDN, no download: nothing the page loads comes from elsewhere.
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    // The same depths as /api/queues once the traffic stopped and the
    // receipts came back (the outbox stays: acme takes none).
    traffic.abort();
    let (html, queues) = wait_for("the page's depths equal /api/queues", WITHIN, || async {
        let before = admin.get("/api/queues").await;
        let html = admin.text("/").await;
        let after = admin.get("/api/queues").await;
        (before == after && before["outbox"].as_u64() > Some(0)).then_some((html, after))
    })
    .await;
    for queue in ["ready", "in_flight", "outbox", "unmatched"] {
        assert_eq!(
            cell(&html, &format!("q-{queue}")),
            queues[queue].as_u64(),
            "{queue} in {queues} and the page"
        );
    }
}

/// The DOM headless Chromium leaves once the page's script polled the
/// admin listener every 250 ms for 3 s of the browser's virtual time;
/// `fragment` is the URL's `#...` part (or "").
async fn browser_dom(admin: Admin, fragment: &str) -> String {
    let url = format!("http://{}/?every=250{fragment}", admin.0);
    let dir = TempDir::new("console-chromium-profile");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .args(["--virtual-time-budget=3000", "--dump-dom", &url])
            .output()
            .expect("run chromium")
    })
    .await
    .expect("chromium ran");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && dom.contains("data-polls="),
        "chromium failed: {}\n{dom}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The script ran: it polled at least twice (a rate needs two readings),
    // so every table in this DOM is the script's, not the server's.
    let polls: u32 = dom
        .split("data-polls=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(polls >= 2, "the script polled {polls} times:\n{dom}");
    dom
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headless_chromium_sees_the_script_fill_in_upstreams_rates_and_queues() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does)"
    );
    let (_daemon, admin, traffic, first) = busy_daemon("console-chromium").await;
    let dom = browser_dom(admin, "").await;
    assert!(dom.contains("<td class=\"state up\">up</td>"), "{dom}");
    let rate = send_rate(&dom, "sandbox");
    assert!(rate.is_some_and(|r| r > 0.0), "send rate {rate:?}:\n{dom}");
    assert!(dom.contains("<polyline"), "no chart drawn:\n{dom}");
    // The search box's script: `/#trace=ID` shows the trace in place.
    let traced = browser_dom(admin, &format!("#trace={first}")).await;
    assert!(
        traced.contains(&format!("<h2>Trace {first}</h2>")),
        "{traced}"
    );
    assert!(traced.contains("\"client\": \"acme\""), "{traced}");

    // Depths move while traffic flows; once it stopped and they settled,
    // the script's must be /api/queues' exactly.
    traffic.abort();
    let (dom, queues) = wait_for("the browser's depths equal /api/queues", WITHIN, || async {
        let before = admin.get("/api/queues").await;
        let dom = browser_dom(admin, "").await;
        let after = admin.get("/api/queues").await;
        (before == after).then_some((dom, after))
    })
    .await;
    for queue in ["ready", "in_flight", "outbox", "unmatched"] {
        assert_eq!(
            cell(&dom, &format!("q-{queue}")),
            queues[queue].as_u64(),
            "{queue} in {queues} and the DOM"
        );
    }
    assert!(queues["outbox"].as_u64() > Some(0), "{queues}");
}

/// A GET with optional `Authorization`: the status code answered (0 when
/// nothing listens yet).
fn status(port: u16, path: &str, authorization: Option<&str>) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = authorization
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_required_off_loopback_and_asked_for_when_set() {
    let dir = TempDir::new("console-token-config");
    let open = dir.write("open.toml", &config("10.1.2.3:9775", None));
    let (code, _, stderr) = check_config(&open, &[]);
    assert_ne!(code, 0, "a non-loopback admin listener without a token");
    assert!(
        stderr.contains("open.toml:5:11: admin address 10.1.2.3:9775 is not loopback"),
        "{stderr}"
    );
    let guarded = dir.write(
        "guarded.toml",
        &config("10.1.2.3:9775", Some("env:CONSOLE_TEST_TOKEN")),
    );
    let (code, _, stderr) = check_config(&guarded, &[("CONSOLE_TEST_TOKEN", "t0ken-xyz")]);
    assert_eq!(code, 0, "{stderr}");

    // A token on a loopback listener is asked for just the same.
    let text = config("127.0.0.1:0", Some("env:CONSOLE_TEST_TOKEN"));
    let mut daemon = Launch::new()
        .env("CONSOLE_TEST_TOKEN", "t0ken-xyz")
        .start(TempDir::new("console-token"), &text);
    let admin_port = daemon.admin().0.port();
    wait_for("the admin listener up", WITHIN, || async {
        (status(admin_port, "/health", None) == 200).then_some(())
    })
    .await;
    // "op:t0ken-xyz" and "op:wrong", as a browser sends basic auth.
    let basic = "Basic b3A6dDBrZW4teHl6";
    for path in ["/", "/api/queues", "/api/upstreams", "/metrics"] {
        assert_eq!(status(admin_port, path, None), 401, "{path} without");
        assert_eq!(
            status(admin_port, path, Some("Basic b3A6d3Jvbmc=")),
            401,
            "{path} wrong"
        );
        assert_eq!(status(admin_port, path, Some(basic)), 200, "{path} basic");
        assert_eq!(
            status(admin_port, path, Some("Bearer t0ken-xyz")),
            200,
            "{path} bearer"
        );
    }
    let page = {
        let mut stream = TcpStream::connect(("127.0.0.1", admin_port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: x\r\nAuthorization: {basic}\r\nConnection: close\r\n\r\n"
        )
        .expect("send");
        let mut page = String::new();
        let _ = stream.read_to_string(&mut page);
        page
    };
    assert!(page.contains("data-upstream=\"sandbox\""), "{page}");
    // `tern status` sends the token from TERN_ADMIN_TOKEN.
    let upstream_seen = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tern"));
        command.args([
            "status",
            "--json",
            "--admin",
            &format!("127.0.0.1:{admin_port}"),
        ]);
        command.env_remove("TERN_ADMIN_TOKEN");
        if let Some(token) = token {
            command.env("TERN_ADMIN_TOKEN", token);
        }
        let out = command.output().expect("run tern status");
        let answer: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("tern status --json");
        answer["upstreams"][0]["name"] == "sandbox"
    };
    assert!(!upstream_seen(None), "tern status without the token");
    assert!(
        upstream_seen(Some("t0ken-xyz")),
        "tern status with the token"
    );
    assert!(!page.contains("t0ken-xyz"), "the page shows the token");
}
