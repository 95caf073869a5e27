//! `tern check-config` on real files: a valid configuration is explained
//! (never its secrets); an invalid one is refused with every error at its
//! file, line and column, and exit status 78.

mod common;

use common::TempDir;

/// `tern check-config FILE` with one secret in the environment, for the
/// `env:` password of [`VALID`]: (exit code, stdout, stderr).
fn check(path: &std::path::Path) -> (i32, String, String) {
    common::check_config(path, &[("TERN_TEST_SECRET", "from-the-environment")])
}

const VALID: &str = r#"
[node]
id = 3
system_id = "tern-eu"

[[listener]]
address = "127.0.0.1:2775"

[storage]
path = "data"
durability = "durable"
retention = "3d"

[[client]]
system_id = "acme"
passwords = ["s3cret-one", "env:TERN_TEST_SECRET"]
allowed_ips = ["127.0.0.1"]
max_binds = 4
rate = 100

[[upstream]]
name = "ovh"
host = "smpp.example.net"
port = 2775
profile = "ovh"
system_id = "tern"
password = "file:ovh.pass"
sessions = 5
tls = true

[[upstream]]
name = "telesign"
host = "smpp.example.org"
port = 3550
profile = "telesign"
system_id = "tern"
password = "hunter2"

[[route]]
name = "spain"
prefixes = ["+34"]
upstreams = ["ovh", { name = "telesign", priority = 5 }]
resubmit_on = ["no_route"]

[[route]]
name = "rest"
strategy = "weighted"
upstreams = [{ name = "ovh", weight = 3 }, { name = "telesign", weight = 1 }]

[router]
deadline = "30s"
"#;

#[test]
fn a_valid_file_is_explained_without_its_secrets() {
    let dir = TempDir::new("config-valid");
    dir.write("ovh.pass", "pw-file\n");
    let path = dir.write("tern.toml", VALID);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("valid"), "{out}");
    assert!(out.contains("node 3 (system_id tern-eu)"), "{out}");
    assert!(out.contains("client acme: 2 password(s)"), "{out}");
    // OVH allows one TX/RX pair or one TRX per zone: 5 asked, the profile caps it.
    assert!(
        out.contains("upstream ovh -> smpp.example.net:2775"),
        "{out}"
    );
    assert!(out.contains("sessions 1 (vendor allows 1)"), "{out}");
    assert!(
        out.contains("TLS >= TLS 1.3"),
        "the profile's TLS minimum applies: {out}"
    );
    assert!(out.contains("route spain: +34 -> ovh (priority 0, weight 1), telesign (priority 5, weight 1) [Failover]"), "{out}");
    assert!(out.contains("[Weighted]"), "{out}");
    for secret in ["s3cret-one", "from-the-environment", "pw-file", "hunter2"] {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown"
        );
    }
}

#[test]
fn every_error_is_reported_with_file_line_and_column() {
    let dir = TempDir::new("config-invalid");
    let path = dir.write(
        "bad.toml",
        r#"[storage]
retention = "a week"

[[client]]
system_id = "acme"
passwords = ["env:TERN_NOT_SET_ANYWHERE"]

[[upstream]]
name = "ovh"
host = "h"
port = 1
profile = "ovhh"
system_id = "tern"
password = "x"

[[route]]
name = "r"
strategy = "cheapest"
upstreams = ["nowhere"]
"#,
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:2:13: storage.retention"),
        format!(
            "{file}:6:14: client password: environment variable TERN_NOT_SET_ANYWHERE is not set"
        ),
        format!("{file}:12:11: unknown profile \"ovhh\""),
        format!("{file}:18:12: strategy \"cheapest\""),
        format!("{file}:19:14: route \"r\": unknown upstream \"nowhere\""),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("5 error(s); nothing applied"), "{err}");
}

#[test]
fn an_upstream_password_too_long_for_smpp_is_refused_at_its_line_without_showing_it() {
    let dir = TempDir::new("config-long-password");
    let path = dir.write(
        "long.toml",
        "[[upstream]]\nname = \"ovh\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"much-too-long-secret\"\n",
    );
    let (code, _, err) = check(&path);
    assert_eq!(code, 78);
    assert!(
        err.contains(&format!("{}:6:12: upstream ovh: password", path.display())),
        "{err}"
    );
    assert!(!err.contains("much-too-long-secret"), "{err}");
}

#[test]
fn an_unknown_key_is_an_error_not_ignored() {
    let dir = TempDir::new("config-unknown-key");
    let path = dir.write(
        "typo.toml",
        "[[client]]\nsystem_id = \"acme\"\npasswords = [\"x\"]\nmax_bind = 3\n",
    );
    let (code, _, err) = check(&path);
    assert_eq!(code, 78);
    assert!(
        err.contains(&format!("{}:4:1: unknown field `max_bind`", path.display())),
        "{err}"
    );
}
