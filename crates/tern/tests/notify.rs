//! The sd_notify protocol as systemd sees it, on the real binary: a unix
//! datagram socket stands in for systemd's `NOTIFY_SOCKET`. READY=1 comes
//! once the listeners accept; a reload is framed by RELOADING=1 (with
//! MONOTONIC_USEC) and READY=1; WATCHDOG=1 pings come at half of
//! WATCHDOG_USEC; SIGTERM brings STOPPING=1 and exit 0.

use tern_testkit as common;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Launch, TempDir, LISTENING, TERN};

/// Datagrams received within `limit`, until one contains `want`.
fn until(socket: &UnixDatagram, want: &str, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        if let Ok(n) = socket.recv(&mut buf) {
            let message = String::from_utf8_lossy(&buf[..n]).into_owned();
            let done = message.lines().any(|l| l == want);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
    panic!("no {want} within {limit:?}; got {seen:?}");
}

#[test]
fn ready_reloading_watchdog_and_stopping_reach_systemd() {
    let dir = TempDir::new("notify");
    let socket_path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    let config = r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[simulator]]
name = "sim"
address = "127.0.0.1:0"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "sim"
simulator = "sim"
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["sim"]
"#;
    let path = dir.write("tern.toml", config);
    // systemd sets WATCHDOG_PID to the service's pid: `exec` keeps the
    // shell's pid for tern, so `$$` is it.
    let mut shell = Command::new("sh");
    shell.arg("-c").arg(format!(
        "WATCHDOG_PID=$$ exec '{TERN}' run --config '{}' --listening-file '{}'",
        path.display(),
        dir.join(LISTENING).display()
    ));
    let mut daemon = Launch::new()
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .start_command(dir, shell);

    let ready = until(&socket, "READY=1", Duration::from_secs(20));
    // READY means serving: the client listener accepts now.
    let client = daemon.client_port();
    std::net::TcpStream::connect(("127.0.0.1", client)).expect("listening once READY");
    assert!(ready.concat().contains("STATUS="), "{ready:?}");

    // Pings at half of the 400 ms interval.
    until(&socket, "WATCHDOG=1", Duration::from_secs(2));
    until(&socket, "WATCHDOG=1", Duration::from_secs(2));

    std::fs::write(&path, config.replace("name = \"all\"", "name = \"every\"")).expect("edit");
    daemon.signal("HUP");
    let reload = until(&socket, "RELOADING=1", Duration::from_secs(10));
    let reloading = reload.last().expect("message");
    let usec = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC with RELOADING");
    assert!(usec.parse::<u64>().is_ok_and(|u| u > 0), "{reloading}");
    until(&socket, "READY=1", Duration::from_secs(10));

    daemon.signal("TERM");
    until(&socket, "STOPPING=1", Duration::from_secs(10));
    let status = daemon.wait(Duration::from_secs(30));
    assert!(status.success(), "{status}");
}
