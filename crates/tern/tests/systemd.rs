//! The files in `systemd/` are checked by systemd's own tools, so that a
//! misspelt directive (which systemd only warns about, then ignores: a
//! hardening option silently lost) or a broken sysusers/tmpfiles line fails
//! the build instead of a production start.
//!
//! The tools must be installed (Debian package `systemd`; `.ci/run` installs
//! it): a missing tool is a failure, not a skip. None of them needs systemd
//! running as PID 1.

use tern_testkit as common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, TERN};

/// The repository's `systemd/` directory.
fn systemd_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../systemd")
}

/// Runs a systemd tool; its absence fails the test with the way to fix it.
fn tool(name: &str, args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(name).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {name} ({e}): install the Debian package `systemd` \
             (apt-get install --no-install-recommends systemd), as .ci/run does"
        )
    });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn read_unit() -> String {
    std::fs::read_to_string(systemd_dir().join("tern.service")).expect("systemd/tern.service")
}

/// The unit as installed, except that ExecStart points at the binary this
/// test suite built: `systemd-analyze verify` insists that the command
/// exists and is executable, and /usr/bin/tern is not installed here.
fn unit_for_this_build(unit: &str) -> String {
    // `%` starts a systemd specifier; a literal one must be doubled.
    let binary = TERN.to_string().replace('%', "%%");
    assert!(
        unit.contains("ExecStart=/usr/bin/tern "),
        "the unit should start /usr/bin/tern"
    );
    unit.replace("ExecStart=/usr/bin/tern ", &format!("ExecStart={binary} "))
}

/// `systemd-analyze verify` on `unit`, written as `tern.service` in a
/// scratch directory. Returns every complaint about the unit: verify exits 0
/// after unknown keys or bad values (it only logs them), so its output is
/// the verdict, not its status.
fn verify(unit: &str, dir: &TempDir) -> Vec<String> {
    let path = dir.join("tern.service");
    std::fs::write(&path, unit).expect("write unit");
    let (ok, text) = tool(
        "systemd-analyze",
        &[
            "verify".as_ref(),
            // No man page lookups for Documentation=, no generators of the
            // host: only the unit itself is judged.
            "--man=no".as_ref(),
            "--generators=no".as_ref(),
            path.as_os_str(),
        ],
    );
    let mut complaints: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    // Lines about other units of the host (if any) are shown but only lines
    // about ours count.
    let (ours, others): (Vec<String>, Vec<String>) = complaints
        .drain(..)
        .partition(|l| l.contains("tern") || l.contains(&*dir.path().to_string_lossy()));
    if !others.is_empty() {
        eprintln!(
            "systemd-analyze verify, about other units:\n{}",
            others.join("\n")
        );
    }
    let mut ours = ours;
    if !ok && ours.is_empty() {
        ours.push(format!("systemd-analyze verify failed:\n{text}"));
    }
    ours
}

#[test]
fn the_unit_passes_systemd_analyze_verify_without_a_single_warning() {
    let dir = TempDir::new("systemd-verify");
    let complaints = verify(&unit_for_this_build(&read_unit()), &dir);
    assert!(
        complaints.is_empty(),
        "systemd-analyze verify systemd/tern.service:\n{}",
        complaints.join("\n")
    );
}

#[test]
fn verify_does_catch_a_misspelt_directive() {
    // The check above must be able to fail: a typo in a hardening option is
    // exactly what systemd would otherwise ignore with a log line.
    let dir = TempDir::new("systemd-verify-typo");
    let unit = unit_for_this_build(&read_unit()).replace("ProtectHome=yes", "ProtectHomme=yes");
    let complaints = verify(&unit, &dir);
    assert!(
        complaints.iter().any(|l| l.contains("ProtectHomme")),
        "{complaints:?}"
    );
}

/// `Key=value` lines of the unit, in order, comments and sections left out.
fn directives(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_unit_keeps_the_daemon_contract_and_its_hardening() {
    // What the daemon relies on (notify protocol, reload by SIGHUP, the
    // config path) and the sandbox the brief asks for: losing one of them
    // is a valid unit to systemd, so verify alone would not notice.
    let all = directives(&read_unit());
    let has = |key: &str, value: &str| all.iter().any(|(k, v)| k == key && v == value);
    for (key, value) in [
        ("Type", "notify"),
        ("NotifyAccess", "main"),
        ("WatchdogSec", "30s"),
        (
            "ExecStart",
            "/usr/bin/tern run --config /etc/tern/tern.toml",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Restart", "on-failure"),
        ("DynamicUser", "no"),
        ("User", "tern"),
        ("Group", "tern"),
        ("StateDirectory", "tern"),
        ("ConfigurationDirectory", "tern"),
        ("WorkingDirectory", "/var/lib/tern"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("LockPersonality", "yes"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallArchitectures", "native"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallFilter", "~@privileged @resources"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("UMask", "0027"),
    ] {
        assert!(has(key, value), "systemd/tern.service lacks {key}={value}");
    }
    for key in ["RestartSec", "TimeoutStopSec", "LimitNOFILE"] {
        assert!(
            all.iter().any(|(k, _)| k == key),
            "systemd/tern.service lacks {key}="
        );
    }
}

#[test]
fn sysusers_creates_the_tern_user_and_tmpfiles_the_private_config_directory() {
    let root = TempDir::new("systemd-root");
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    let sysusers = systemd_dir().join("tern.sysusers");
    let tmpfiles = systemd_dir().join("tern.tmpfiles");
    let root_arg = format!("--root={}", root.path().display());

    // Into an empty root, so the host's own users play no part.
    let (ok, text) = tool(
        "systemd-sysusers",
        &[root_arg.as_ref(), sysusers.as_os_str()],
    );
    assert!(ok, "systemd-sysusers systemd/tern.sysusers:\n{text}");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    let tern = passwd
        .lines()
        .find(|l| l.starts_with("tern:"))
        .unwrap_or_else(|| panic!("no tern user in\n{passwd}\n{text}"));
    let fields: Vec<&str> = tern.split(':').collect();
    assert_eq!(fields.get(5), Some(&"/var/lib/tern"), "{tern}");
    let gid: u32 = fields.get(3).and_then(|g| g.parse().ok()).expect("gid");
    let uid: u32 = fields.get(2).and_then(|u| u.parse().ok()).expect("uid");
    assert!(uid < 1000, "tern must be a system user: {tern}");

    let (ok, text) = tool(
        "systemd-tmpfiles",
        &[root_arg.as_ref(), "--create".as_ref(), tmpfiles.as_os_str()],
    );
    // Only root may hand files to another owner. Unprivileged, the one
    // tolerated complaint is the chown itself; anything else (a syntax
    // error, an unknown user or group) still fails.
    let privileged = std::fs::metadata(root.path()).expect("root").uid() == 0;
    if privileged {
        assert!(ok, "systemd-tmpfiles systemd/tern.tmpfiles:\n{text}");
    } else {
        let other: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("Operation not permitted"))
            .collect();
        assert!(other.is_empty(), "systemd-tmpfiles:\n{text}");
    }
    for (dir, owner) in [
        ("etc/tern", 0),
        ("etc/tern/secrets", 0),
        ("etc/tern/tls", 0),
        ("var/lib/tern", uid),
    ] {
        let meta = std::fs::metadata(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir} not created ({e}):\n{text}"));
        assert!(meta.is_dir(), "{dir}");
        // Nothing for others: the directory holds passwords and keys.
        assert_eq!(meta.mode() & 0o7777, 0o750, "{dir}");
        if privileged {
            assert_eq!((meta.uid(), meta.gid()), (owner, gid), "{dir}");
        }
    }
}
