//! `tern check-config` on real files: a valid configuration is explained
//! (never its secrets); an invalid one is refused with every error at its
//! file, line and column, and exit status 78.

use tern_testkit as common;

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
allowed_ips = ["127.0.0.1", "10.20.0.0/16"]
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
window = 25
tls = true

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
    assert!(out.contains("from 127.0.0.1/32, 10.20.0.0/16"), "{out}");
    // OVH allows one TX/RX pair or one TRX per zone: 5 asked, the profile caps it.
    assert!(
        out.contains("upstream ovh -> smpp.example.net:2775"),
        "{out}"
    );
    assert!(out.contains("sessions 1 (vendor allows 1)"), "{out}");
    // The window: OVH's profile says 10; Telesign's says nothing, 25 asked.
    assert!(out.contains("(vendor allows 1), window 10,"), "{out}");
    assert!(out.contains("(vendor allows any), window 25,"), "{out}");
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
fn an_allowed_network_with_host_bits_or_not_an_address_is_refused_at_its_value() {
    let dir = TempDir::new("config-allowed-ips");
    let path = dir.write(
        "ips.toml",
        "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\nallowed_ips = [\"10.1.2.3/8\", \"intranet\", \"fd00::/8\"]\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:4:16: \"10.1.2.3/8\" has host bits set; the network is 10.0.0.0/8"),
        format!("{file}:4:30: \"intranet\" is not an IP address or network"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn a_window_above_the_vendors_or_of_zero_is_refused_at_its_value() {
    let dir = TempDir::new("config-window");
    let path = dir.write(
        "window.toml",
        "[[upstream]]\nname = \"ovh\"\nprofile = \"ovh\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nwindow = 50\n\n\
         [[upstream]]\nname = \"other\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nwindow = 0\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:8:10: window 50: profile \"ovh\" allows at most 10 per session"),
        format!("{file}:16:10: window 0"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn a_rate_above_the_vendors_or_not_a_rate_is_refused_at_its_value() {
    let dir = TempDir::new("config-rate");
    let path = dir.write(
        "rate.toml",
        "[[upstream]]\nname = \"ovh\"\nprofile = \"ovh\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nrate = 25\n\n\
         [[upstream]]\nname = \"other\"\nhost = \"h\"\nport = 2\nsystem_id = \"tern\"\npassword = \"x\"\nrate = 0\n\n\
         [[upstream]]\nname = \"ovh-at-limit\"\nprofile = \"ovh\"\nhost = \"h\"\nport = 3\nsystem_id = \"tern\"\npassword = \"x\"\nrate = 20\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:8:8: rate 25: profile \"ovh\" allows at most 20 messages per second with 1 session(s)"),
        format!("{file}:16:8: rate 0: expected at least 0.001 messages per second"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        err.contains("2 error(s)"),
        "the vendor's own rate is allowed: {err}"
    );
}

#[test]
fn a_receipt_data_centre_is_refused_where_the_profile_has_none_or_too_long() {
    let dir = TempDir::new("config-data-centre");
    let path = dir.write(
        "centre.toml",
        "[[upstream]]\nname = \"ovh\"\nprofile = \"ovh\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nreceipt_data_centre = \"eu\"\n\n\
         [[upstream]]\nname = \"ts\"\nprofile = \"telesign\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nreceipt_data_centre = \"europe\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:8:23: upstream ovh: receipt_data_centre: profile \"ovh\" does not route receipts by the submit's service_type"),
        format!("{file}:17:23: upstream ts: receipt_data_centre:"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn a_client_vendor_tlvs_that_is_not_a_boolean_is_refused_at_its_value() {
    let dir = TempDir::new("config-vendor-tlvs");
    let path = dir.write(
        "tlvs.toml",
        "[[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\nvendor_tlvs = \"yes\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let expected = format!("{}:4:15:", path.display());
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn a_vendor_that_requires_tls_refuses_a_plain_entry_at_its_profile() {
    // Telesign: "Implement TLS v1.2 encryption for all SMPP communication."
    // Plain TCP to this machine (a simulator, a local TLS tunnel) is allowed.
    let dir = TempDir::new("config-tls-required");
    let path = dir.write(
        "tls.toml",
        "[[upstream]]\nname = \"ts\"\nprofile = \"telesign\"\nhost = \"smpp.example.org\"\nport = 3550\nsystem_id = \"tern\"\npassword = \"x\"\n\n\
         [[upstream]]\nname = \"ts-local\"\nprofile = \"telesign\"\nhost = \"127.0.0.1\"\nport = 3550\nsystem_id = \"tern\"\npassword = \"x\"\n\n\
         [[upstream]]\nname = \"ovh\"\nprofile = \"ovh\"\nhost = \"smpp.example.net\"\nport = 2775\nsystem_id = \"tern\"\npassword = \"x\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    let expected = format!(
        "{file}:3:11: upstream ts: profile \"telesign\" requires TLS (the vendor refuses plain TCP): set tls = true"
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    assert!(!err.contains("ts-local"), "loopback is allowed:\n{err}");
    // OVH offers plain TCP too ("for backward compatibility").
    assert!(!err.contains("upstream ovh"), "OVH allows plain:\n{err}");
    assert!(err.contains("1 error(s)"), "{err}");
}

#[test]
fn a_tls_minimum_below_the_vendors_is_refused_at_its_value() {
    // OVH: "encrypted connection with TLS 1.3 minimum".
    let dir = TempDir::new("config-tls-minimum");
    let path = dir.write(
        "tls.toml",
        "[[upstream]]\nname = \"ovh\"\nprofile = \"ovh\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\ntls = true\ntls_min_version = \"1.2\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    let expected =
        format!("{file}:9:19: tls_min_version \"1.2\": profile \"ovh\" requires TLS 1.3 at least");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    // Above the vendor's minimum is welcome: Telesign (1.2) asked for 1.3.
    let path = dir.write(
        "higher.toml",
        "[[upstream]]\nname = \"ts\"\nprofile = \"telesign\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\ntls = true\ntls_min_version = \"1.3\"\n\n\
         [[upstream]]\nname = \"ovh\"\nprofile = \"ovh\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\ntls = true\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{out}{err}");
    let line = |name: &str| {
        out.lines()
            .skip_while(|l| !l.starts_with(&format!("upstream {name} ")))
            .take(2)
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert!(line("ts").contains("TLS >= TLS 1.3"), "{out}");
    assert!(line("ovh").contains("TLS >= TLS 1.3"), "{out}");
}

#[test]
fn each_upstream_shows_the_vendor_limits_in_force() {
    // The vendor's timers within Tern's own, and the lengths Tern splits
    // and refuses by; facts Tern decides nothing by are not shown.
    let dir = TempDir::new("config-limits");
    dir.write(
        "quick.toml",
        "name = \"quick\"\ndescription = \"a vendor that waits 5 s\"\nversions = [\"3.4\"]\nbind_types = [\"transceiver\"]\n\
         [timers]\nenquire_link_secs = 15\nresponse_timeout_secs = 5\n[long_messages]\nmethod = \"udh\"\nmax_parts = 4\n",
    );
    let upstream = |name: &str, profile: &str| {
        format!("[[upstream]]\nname = \"{name}\"\nprofile = \"{profile}\"\nhost = \"127.0.0.1\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nbind = \"transceiver\"\n\n")
    };
    let text = format!(
        "profiles = [\"quick.toml\"]\n\n{}{}{}",
        upstream("q", "quick"),
        upstream("ru", "seed001"),
        upstream("ts", "telesign"),
    );
    let path = dir.write("limits.toml", &text);
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{out}{err}");
    let limits = |name: &str| {
        let mut lines = out
            .lines()
            .skip_while(|l| !l.starts_with(&format!("upstream {name} ")));
        lines.nth(1).unwrap_or_default().to_owned()
    };
    // Tern gives up no later than the vendor's response timer.
    assert_eq!(
        limits("q"),
        "  limits: enquire_link every 15s, response timeout 5s, at most 4 parts",
        "{out}"
    );
    // seed 001 waits 60 s; Tern's own 30 s is shorter. 160 bytes of text.
    assert_eq!(
        limits("ru"),
        "  limits: enquire_link every 30s, response timeout 30s, short_message at most 160 octets, message_payload at most 160 octets",
        "{out}"
    );
    assert_eq!(
        limits("ts"),
        "  limits: enquire_link every 30s, response timeout 30s, short_message at most 255 octets",
        "{out}"
    );
}

#[test]
fn a_bind_type_the_vendor_does_not_take_is_refused_at_its_value() {
    // Mensatek's seed: transceiver binds only; seed 001: no receiver.
    let dir = TempDir::new("config-bind-type");
    let path = dir.write(
        "bind.toml",
        "[[upstream]]\nname = \"mensatek\"\nprofile = \"mensatek\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nbind = \"transmitter\"\n\n\
         [[upstream]]\nname = \"ru\"\nprofile = \"seed001\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nbind = \"receiver\"\n\n\
         [[upstream]]\nname = \"ru-tx\"\nprofile = \"seed001\"\nhost = \"h\"\nport = 1\nsystem_id = \"tern\"\npassword = \"x\"\nbind = \"transmitter\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:8:8: upstream mensatek: bind \"transmitter\": profile \"mensatek\" takes only [\"transceiver\"]"),
        format!("{file}:17:8: upstream ru: bind \"receiver\""),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(
        !err.contains("ru-tx"),
        "transmitter is allowed at seed001:\n{err}"
    );
}

#[test]
fn client_session_settings_are_shown_and_bad_ones_refused_at_their_value() {
    let dir = TempDir::new("config-client-sessions");
    let path = dir.write(
        "sessions.toml",
        "[client_sessions]\nwindow = 40\nenquire_link_interval = \"off\"\ninactivity_timeout = \"5m\"\nmax_command_length = 4096\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("client sessions: window 40, response timeout 30s, enquire_link off, inactivity timeout 5m, bind within 10s, max command_length 4096"),
        "{out}"
    );
    let path = dir.write(
        "bad.toml",
        "[client_sessions]\nwindow = 0\nenquire_link_interval = \"60s\"\ninactivity_timeout = \"30s\"\nresponse_timeout = \"0s\"\nbind_timeout = \"soon\"\nmax_command_length = 100\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:2:10: client_sessions.window 0"),
        format!("{file}:4:22: client_sessions.inactivity_timeout 30s: must be longer than enquire_link_interval (1m)"),
        format!("{file}:5:20: client_sessions.response_timeout: must be more than 0s"),
        format!("{file}:6:16: client_sessions.bind_timeout: \"soon\" is not a duration"),
        format!("{file}:7:22: client_sessions.max_command_length 100: must be 1024 to 131072 octets"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("5 error(s)"), "{err}");
}

#[test]
fn submit_mode_is_shown_and_a_bad_one_refused_at_its_value() {
    let dir = TempDir::new("config-submit-mode");
    let path = dir.write(
        "modes.toml",
        "[[client]]\nsystem_id = \"txn\"\npasswords = [\"pw\"]\nsubmit_mode = \"transaction\"\n\n\
         [[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("transaction mode (answered within 10s)"),
        "{out}"
    );
    assert!(out.contains("from anywhere, store-and-forward"), "{out}");
    let path = dir.write(
        "bad.toml",
        "[[client]]\nsystem_id = \"a\"\npasswords = [\"pw\"]\nsubmit_mode = \"sync\"\n\n\
         [[client]]\nsystem_id = \"b\"\npasswords = [\"pw\"]\ntransaction_timeout = \"5s\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:4:15: client.submit_mode \"sync\": expected \"store_and_forward\" or \"transaction\""),
        format!("{file}:9:23: client.transaction_timeout: only for submit_mode = \"transaction\""),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
}

#[test]
fn id_format_is_shown_and_a_bad_one_refused_at_its_value() {
    let dir = TempDir::new("config-id-format");
    let path = dir.write(
        "ids.toml",
        "[[client]]\nsystem_id = \"num\"\npasswords = [\"pw\"]\nid_format = \"decimal\"\n\n\
         [[client]]\nsystem_id = \"hexa\"\npasswords = [\"pw\"]\nid_format = \"hex\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("client num: message ids in decimal"), "{out}");
    assert!(!out.contains("client hexa: message ids"), "{out}");
    let path = dir.write(
        "bad.toml",
        "[[client]]\nsystem_id = \"a\"\npasswords = [\"pw\"]\nid_format = \"Decimal\"\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let expected = format!(
        "{}:4:13: client.id_format \"Decimal\": expected \"hex\" or \"decimal\"",
        path.display()
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn client_binds_and_window_are_shown_and_bad_ones_refused_at_their_value() {
    let dir = TempDir::new("config-client-binds");
    let path = dir.write(
        "binds.toml",
        "[[client]]\nsystem_id = \"sender\"\npasswords = [\"pw\"]\nbinds = [\"transmitter\"]\nwindow = 20\n\n\
         [[client]]\nsystem_id = \"acme\"\npasswords = [\"pw\"]\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("client sender: 1 password(s), binds unlimited, as transmitter, "),
        "{out}"
    );
    assert!(out.contains("window 20, from anywhere"), "{out}");
    assert!(
        out.contains(
            "client acme: 1 password(s), binds unlimited, as transmitter, receiver, transceiver, "
        ),
        "all three unless set: {out}"
    );
    assert!(out.contains("window -, from anywhere"), "{out}");
    let path = dir.write(
        "bad.toml",
        "[[client]]\nsystem_id = \"a\"\npasswords = [\"pw\"]\nbinds = [\"transmitter\", \"reciever\"]\n\n\
         [[client]]\nsystem_id = \"b\"\npasswords = [\"pw\"]\nbinds = []\nwindow = 0\n",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 78, "{out}{err}");
    let file = path.display().to_string();
    for expected in [
        format!("{file}:4:25: client.binds \"reciever\": expected \"transmitter\", \"receiver\" or \"transceiver\""),
        format!("{file}:9:9: client.binds: an empty list allows no bind at all"),
        format!("{file}:10:10: client.window 0: at least 1 submit must be allowed unanswered"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
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

// ------------------------------------------------------------ Redis store

/// The Redis password of the valid Redis files, from the environment: a
/// string distinctive enough that finding it anywhere in the output means
/// it was shown.
const REDIS_PASSWORD: &str = "redis-pw-Qz7!unshown";

/// `tern check-config FILE` with [`REDIS_PASSWORD`] in the environment.
fn check_redis(path: &std::path::Path) -> (i32, String, String) {
    common::check_config(path, &[("TERN_TEST_REDIS_PASSWORD", REDIS_PASSWORD)])
}

/// Writes `text` as `label.toml` in a scratch dir and checks it, expecting
/// a refusal: (the file's name as errors show it, stderr).
fn refused(label: &str, text: &str) -> (String, String) {
    let dir = TempDir::new(label);
    let path = dir.write(&format!("{label}.toml"), text);
    let (code, out, err) = check_redis(&path);
    assert_eq!(code, 78, "{out}{err}");
    (path.display().to_string(), err)
}

#[test]
fn a_redis_server_is_explained_without_its_password() {
    let dir = TempDir::new("config-redis-server");
    let path = dir.write(
        "tern.toml",
        r#"[storage]
backend = "redis"
retention = "3d"

[storage.redis]
addresses = ["redis://10.0.0.5:6379"]
prefix = "tern-eu"
username = "tern"
password = "env:TERN_TEST_REDIS_PASSWORD"
durability = "wait"
wait_replicas = 2
wait_timeout = "500ms"
lease_ttl = "15s"
"#,
    );
    let (code, out, err) = check_redis(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "store Redis server redis://10.0.0.5:6379 (prefix \"tern-eu\", \
             Wait { replicas: 2, timeout: 500ms }, password set), leases 15s, \
             finished messages kept 3days\n"
        ),
        "{out}"
    );
    assert!(
        !out.contains(REDIS_PASSWORD) && !err.contains(REDIS_PASSWORD),
        "password shown:\n{out}{err}"
    );
    // Nor in its encoded form, as the connection addresses carry it.
    assert!(!out.contains("redis-pw-Qz7%21unshown"), "{out}");
}

#[test]
fn a_redis_cluster_is_explained_with_every_address() {
    let dir = TempDir::new("config-redis-cluster");
    let path = dir.write(
        "tern.toml",
        r#"[storage]
backend = "redis"

[storage.redis]
addresses = ["redis://10.0.0.5:7000", "rediss://10.0.0.6:7000"]
cluster = true
"#,
    );
    let (code, out, err) = check_redis(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(
            "store Redis cluster redis://10.0.0.5:7000, rediss://10.0.0.6:7000 \
             (prefix \"tern\", AppendFsyncAlways, no password), leases 10s, \
             finished messages kept 7days\n"
        ),
        "{out}"
    );
}

#[test]
fn a_redis_cluster_with_a_password_from_the_environment_never_shows_it() {
    let dir = TempDir::new("config-redis-cluster-password");
    let path = dir.write(
        "tern.toml",
        r#"[storage]
backend = "redis"

[storage.redis]
addresses = ["redis://10.0.0.5:7000", "redis://10.0.0.6:7000"]
cluster = true
password = "env:TERN_TEST_REDIS_PASSWORD"
"#,
    );
    let (code, out, err) = check_redis(&path);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("store Redis cluster redis://10.0.0.5:7000, redis://10.0.0.6:7000 ("),
        "{out}"
    );
    assert!(out.contains("AppendFsyncAlways, password set)"), "{out}");
    assert!(
        !out.contains(REDIS_PASSWORD) && !err.contains(REDIS_PASSWORD),
        "password shown:\n{out}{err}"
    );
}

#[test]
fn the_redis_backend_without_its_table_is_refused_at_the_backend() {
    let (file, err) = refused("config-redis-no-table", "[storage]\nbackend = \"redis\"\n");
    let expected =
        format!("{file}:2:11: storage.backend = \"redis\" needs [storage.redis] with addresses");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    assert!(err.contains("1 error(s); nothing applied"), "{err}");
}

#[test]
fn a_redis_table_without_the_redis_backend_is_refused_at_the_table() {
    let (file, err) = refused(
        "config-redis-no-backend",
        "[storage]\npath = \"data\"\n\n[storage.redis]\naddresses = [\"redis://127.0.0.1:6379\"]\n",
    );
    let expected =
        format!("{file}:4:1: [storage.redis] is set but storage.backend is not \"redis\"");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    assert!(err.contains("1 error(s); nothing applied"), "{err}");

    let (file, err) = refused(
        "config-redis-sled-backend",
        "[storage]\nbackend = \"sled\"\n\n[storage.redis]\naddresses = [\"redis://127.0.0.1:6379\"]\n",
    );
    let expected = format!("{file}:4:1: [storage.redis] is set but storage.backend is \"sled\"");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn an_unknown_storage_backend_is_refused() {
    let (file, err) = refused(
        "config-unknown-backend",
        "[storage]\nbackend = \"postgres\"\n",
    );
    let expected =
        format!("{file}:2:11: storage.backend \"postgres\": expected \"sled\" or \"redis\"");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn every_redis_setting_error_is_reported_at_its_value() {
    let (file, err) = refused(
        "config-redis-invalid",
        r#"[storage]
backend = "redis"

[storage.redis]
addresses = ["127.0.0.1:6379", "redis://tern:hunter2@10.0.0.5:6379"]
cluster = true
prefix = "tern{eu}"
durability = "wait"
lease_ttl = "500ms"
"#,
    );
    for expected in [
        format!(
            "{file}:5:14: \"127.0.0.1:6379\": expected an address like \"redis://127.0.0.1:6379\""
        ),
        format!(
            "{file}:5:32: put credentials in storage.redis.username/password, not in the address"
        ),
        format!("{file}:7:10: storage.redis.prefix must be non-empty and without {{ or }}"),
        format!(
            "{file}:8:14: durability = \"wait\" is for a single server; a cluster needs \"appendfsync-always\""
        ),
        format!("{file}:9:13: storage.redis.lease_ttl must be at least 1s"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("5 error(s); nothing applied"), "{err}");
    // The credentials written in the address are not repeated back.
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn an_unknown_redis_durability_is_refused() {
    let (file, err) = refused(
        "config-redis-durability",
        "[storage]\nbackend = \"redis\"\n\n[storage.redis]\naddresses = [\"redis://127.0.0.1:6379\"]\ndurability = \"fsync\"\n",
    );
    let expected = format!(
        "{file}:6:14: storage.redis.durability \"fsync\": expected \"appendfsync-always\" or \"wait\""
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn several_redis_addresses_need_cluster_true() {
    let (file, err) = refused(
        "config-redis-several",
        "[storage]\nbackend = \"redis\"\n\n[storage.redis]\naddresses = [\"redis://10.0.0.5:6379\", \"redis://10.0.0.6:6379\"]\n",
    );
    let expected = format!(
        "{file}:4:1: several storage.redis.addresses are for a cluster: set cluster = true"
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    assert!(err.contains("1 error(s); nothing applied"), "{err}");
}

#[test]
fn empty_redis_addresses_are_refused() {
    let (file, err) = refused(
        "config-redis-empty",
        "[storage]\nbackend = \"redis\"\n\n[storage.redis]\naddresses = []\n",
    );
    let expected = format!("{file}:4:1: storage.redis.addresses is empty");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn an_unknown_key_in_the_redis_table_is_an_error() {
    let (file, err) = refused(
        "config-redis-unknown-key",
        "[storage]\nbackend = \"redis\"\n\n[storage.redis]\naddresses = [\"redis://127.0.0.1:6379\"]\nclustered = true\n",
    );
    let expected = format!("{file}:6:1: unknown field `clustered`");
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}

#[test]
fn credentials_in_an_address_without_a_scheme_are_not_repeated_back() {
    let (file, err) = refused(
        "config-redis-bare-credentials",
        "[storage]\nbackend = \"redis\"\n\n[storage.redis]\naddresses = [\"tern:hunter2@10.0.0.5:6379\"]\n",
    );
    for expected in [
        format!(
            "{file}:5:14: put credentials in storage.redis.username/password, not in the address"
        ),
        format!(
            "{file}:5:14: storage.redis address: expected an address like \"redis://127.0.0.1:6379\""
        ),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("2 error(s); nothing applied"), "{err}");
    assert!(!err.contains("hunter2"), "password shown:\n{err}");
}

#[test]
fn a_redis_tls_ca_that_is_missing_or_not_pem_is_refused_at_its_value() {
    let dir = TempDir::new("config-redis-tls-ca");
    dir.write("not-a-cert.pem", "hello\n");
    let text = "[storage]\nbackend = \"redis\"\n\n[storage.redis]\naddresses = [\"rediss://10.0.0.5:6380\"]\ntls_ca = \"absent.pem\"\n";
    let path = dir.write("missing.toml", text);
    let (code, out, err) = check_redis(&path);
    assert_eq!(code, 78, "{out}{err}");
    let expected = format!(
        "{}:6:10: storage.redis.tls_ca: cannot read {}",
        path.display(),
        dir.join("absent.pem").display()
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");

    let path = dir.write(
        "garbage.toml",
        &text.replace("absent.pem", "not-a-cert.pem"),
    );
    let (code, out, err) = check_redis(&path);
    assert_eq!(code, 78, "{out}{err}");
    let expected = format!(
        "{}:6:10: storage.redis.tls_ca: {} holds no PEM certificate",
        path.display(),
        dir.join("not-a-cert.pem").display()
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
}
