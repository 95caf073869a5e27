//! The example configurations shipped in `config/` stay valid: the real
//! binary's `tern check-config` accepts them, and the production example
//! names each vendor upstream with its profile.
//!
//! `config/production.toml` reads its secrets from the environment and from
//! files under /etc/tern/secrets. The test sets the variables, and runs a
//! copy of the file in which /etc/tern/ points at a scratch directory holding
//! the secret files; nothing else in the file is changed. The TLS
//! certificate and key of the listener are not created: check-config
//! records their paths and the listener reads them when it starts.

use tern_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, TERN};

/// The repository's `config/` directory.
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config")
}

/// `env:NAME` secrets of production.toml, with values within SMPP's 8
/// characters.
const ENV_SECRETS: [(&str, &str); 5] = [
    ("TERN_ALERTS_PASSWORD", "al-new1"),
    ("TERN_ALERTS_PASSWORD_OLD", "al-old1"),
    ("TERN_PROBE_PASSWORD", "probe01"),
    ("TERN_MENSATEK_PASSWORD", "mt-pw01"),
    ("TERN_INFOBIP_PASSWORD", "ib-pw01"),
];

/// `file:` secrets of production.toml, relative to /etc/tern.
const FILE_SECRETS: [(&str, &str); 5] = [
    ("secrets/billing.pass", "bi-cur1"),
    ("secrets/billing.next.pass", "bi-nxt1"),
    ("secrets/marketing.pass", "mk-pw01"),
    ("secrets/ovh.pass", "ovh-pw1"),
    ("secrets/telesign.pass", "ts-pw01"),
];

/// `tern check-config FILE` with the production secrets in the environment:
/// (exit code, stdout, stderr).
fn check_config(file: &Path) -> (i32, String, String) {
    common::check_config(file, &ENV_SECRETS)
}

#[test]
fn the_production_example_is_valid_and_names_every_vendor_upstream_with_its_profile() {
    let text = std::fs::read_to_string(config_dir().join("production.toml"))
        .expect("config/production.toml");
    let dir = TempDir::new("prodcfg-production");
    let etc = dir.join("etc/tern");
    for (path, secret) in FILE_SECRETS {
        let path = etc.join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("secrets dir");
        // A trailing newline, as `echo secret > file` leaves it.
        std::fs::write(&path, format!("{secret}\n")).expect("secret file");
    }
    let copy = etc.join("tern.toml");
    std::fs::write(
        &copy,
        text.replace("/etc/tern/", &format!("{}/", etc.display())),
    )
    .expect("write copy");

    let (code, out, err) = check_config(&copy);
    assert_eq!(
        code, 0,
        "check-config refused config/production.toml:\n{err}"
    );
    assert!(out.contains("valid"), "{out}");

    // Each vendor upstream, with its host, port and profile as written.
    for (name, host_port, profile) in [
        ("mensatek-1", "smpp01.mensatek.com:", "mensatek"),
        ("mensatek-2", "smpp02.mensatek.com:", "mensatek"),
        ("ovh", ":", "ovh"),
        ("telesign", "smpp.tsentcloud.com:3550", "telesign"),
        ("infobip", "smpp-ssl.smstools.sk:8887", "infobip"),
    ] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("upstream {name} -> ")))
            .unwrap_or_else(|| panic!("no upstream {name} in:\n{out}"));
        assert!(line.contains(host_port), "{line}");
        assert!(line.contains(&format!("profile {profile}:")), "{line}");
    }
    // The TLS versions the vendors require.
    let upstream = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("upstream {name} -> ")))
            .map(str::to_owned)
            .unwrap_or_default()
    };
    assert!(upstream("ovh").contains("TLS >= TLS 1.3"), "{out}");
    assert!(upstream("telesign").contains("TLS >= TLS 1.2"), "{out}");
    assert!(upstream("infobip").contains("TLS >= TLS 1.2"), "{out}");
    // Within the vendors' session caps, so nothing was silently lowered.
    assert!(
        upstream("infobip").contains("sessions 4 (vendor allows 4)"),
        "{out}"
    );
    assert!(
        upstream("mensatek-1").contains("sessions 1 (vendor allows 1)"),
        "{out}"
    );

    // A TLS client listener, the two-password rotation, the routes.
    assert!(
        out.contains("listener 0.0.0.0:3550 (TLS >= TLS 1.2)"),
        "{out}"
    );
    assert!(out.contains("client billing: 2 password(s)"), "{out}");
    assert!(out.contains("client alerts: 2 password(s)"), "{out}");
    assert!(out.contains("store /var/lib/tern/store (Durable)"), "{out}");
    for route in [
        "otp-spain",
        "spain",
        "france-belgium",
        "slovakia-czechia",
        "marketing-bulk",
        "rest-of-world",
    ] {
        assert!(out.contains(&format!("route {route}: ")), "{out}");
    }

    // No secret is ever printed.
    for (_, secret) in ENV_SECRETS.iter().chain(FILE_SECRETS.iter()) {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{secret} shown"
        );
    }
}

#[test]
fn the_production_example_without_its_secrets_is_refused() {
    // The secrets really are read at check time: a missing one is an error
    // at its line, so an operator learns before `systemctl start`.
    let text = std::fs::read_to_string(config_dir().join("production.toml"))
        .expect("config/production.toml");
    let dir = TempDir::new("prodcfg-no-secrets");
    let copy = dir.join("tern.toml");
    std::fs::write(
        &copy,
        text.replace("/etc/tern/", &format!("{}/", dir.path().display())),
    )
    .expect("write copy");
    let out = Command::new(TERN)
        .arg("check-config")
        .arg(&copy)
        .env_remove("TERN_MENSATEK_PASSWORD")
        .output()
        .expect("run tern check-config");
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("environment variable TERN_MENSATEK_PASSWORD is not set"),
        "{err}"
    );
    assert!(err.contains("ovh.pass"), "{err}");
}

#[test]
fn the_default_example_is_valid() {
    let (code, out, err) = check_config(&config_dir().join("tern.toml"));
    assert_eq!(code, 0, "check-config refused config/tern.toml:\n{err}");
    assert!(out.contains("valid"), "{out}");
}
