//! What the Debian package ships stays right (deploy/deb/README.md): the
//! configuration it installs as /etc/tern/tern.toml passes check-config as
//! installed, and its commented examples once filled in; it holds no
//! literal secret; the completions and the man page the binary generates
//! name every subcommand; and the package metadata installs every file the
//! service needs. `.ci/package` builds, installs and removes the real
//! package; these checks run in every `cargo test`.

use tern_testkit as common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{TempDir, TERN};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn template() -> String {
    std::fs::read_to_string(repo().join("deploy/deb/tern.toml")).expect("deploy/deb/tern.toml")
}

/// The subcommands an operator types, as `tern --help` lists them.
const SUBCOMMANDS: [&str; 10] = [
    "run",
    "check-config",
    "send",
    "sim",
    "status",
    "bench",
    "trace",
    "check-store",
    "route-test",
    "decode",
];

/// Runs `tern ARGS`; returns its standard output, failing on a non-zero exit.
fn tern(args: &[&str]) -> String {
    let out = Command::new(TERN).args(args).output().expect("run tern");
    assert!(
        out.status.success(),
        "tern {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn the_packaged_config_passes_check_config_as_installed() {
    // No secret, no TLS file, no environment: what `dpkg -i` leaves must be
    // valid before the operator has written anything.
    let dir = TempDir::new("package-template");
    let file = dir.join("tern.toml");
    std::fs::write(&file, template()).expect("write template");
    let (code, out, err) = common::check_config(&file, &[]);
    assert_eq!(code, 0, "check-config refused deploy/deb/tern.toml:\n{err}");
    assert!(out.contains("valid"), "{out}");
    assert!(out.contains("store /var/lib/tern/store"), "{out}");
}

#[test]
fn the_commented_examples_of_the_packaged_config_are_valid_once_filled_in() {
    // Uncomment every commented key and section header; the secrets and
    // TLS paths point into a scratch /etc/tern holding the secret files.
    let dir = TempDir::new("package-examples");
    let etc = dir.join("etc/tern");
    std::fs::create_dir_all(etc.join("secrets")).expect("secrets dir");
    for (name, secret) in [("billing.pass", "bi-pw01"), ("telesign.pass", "ts-pw01")] {
        std::fs::write(etc.join("secrets").join(name), format!("{secret}\n")).expect("secret");
    }
    let filled: String = template()
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if rest.starts_with('[') || rest.split_once(" = ").is_some() => rest,
            _ => line,
        })
        .map(|line| format!("{line}\n"))
        .collect();
    let file = etc.join("tern.toml");
    std::fs::write(
        &file,
        filled.replace("/etc/tern/", &format!("{}/", etc.display())),
    )
    .expect("write filled template");
    let (code, out, err) = common::check_config(&file, &[("TERN_ALERTS_PASSWORD", "al-pw01")]);
    assert_eq!(code, 0, "the examples of deploy/deb/tern.toml:\n{err}");
    for shown in [
        "client billing",
        "client alerts",
        "upstream telesign",
        "route everything",
    ] {
        assert!(out.contains(shown), "{shown:?} missing from:\n{out}");
    }
}

#[test]
fn the_packaged_config_holds_no_literal_secret() {
    // Commented or not, every password names where the secret is.
    for line in template().lines() {
        let line = line.trim_start_matches(['#', ' ']);
        let Some((key, value)) = line.split_once(" = ") else {
            continue;
        };
        if !key.contains("password") {
            continue;
        }
        for secret in value.split('"').skip(1).step_by(2) {
            assert!(
                secret.starts_with("env:") || secret.starts_with("file:"),
                "a literal secret in deploy/deb/tern.toml: {line}"
            );
        }
    }
}

#[test]
fn completions_name_every_subcommand_in_bash_zsh_and_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let script = tern(&["completions", shell]);
        for sub in SUBCOMMANDS {
            assert!(script.contains(sub), "the {shell} completions lack {sub:?}");
        }
    }
}

#[test]
fn the_man_page_is_roff_and_lists_every_subcommand() {
    let page = tern(&["man"]);
    assert!(page.contains(".TH tern 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    for sub in SUBCOMMANDS {
        // roff escapes each hyphen.
        let entry = format!("tern\\-{}(1)", sub.replace('-', "\\-"));
        assert!(page.contains(&entry), "the man page lacks {entry}");
    }
}

#[test]
fn the_package_installs_every_file_the_service_needs_from_files_that_exist() {
    let manifest: toml::Table = std::fs::read_to_string(repo().join("crates/tern/Cargo.toml"))
        .expect("Cargo.toml")
        .parse()
        .expect("Cargo.toml is TOML");
    let deb = &manifest["package"]["metadata"]["deb"];
    let assets = deb["assets"].as_array().expect("assets");
    let mut installed = Vec::new();
    for asset in assets {
        let source = asset[0].as_str().expect("asset source");
        let target = asset[1].as_str().expect("asset target");
        // target/... is built by deploy/deb/build; the rest is in git.
        if !source.starts_with("target/") {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
            assert!(path.is_file(), "asset {source} does not exist");
        }
        installed.push(target.to_owned());
    }
    for wanted in [
        "usr/bin/tern",
        "usr/lib/systemd/system/tern.service",
        "usr/lib/sysusers.d/tern.conf",
        "usr/lib/tmpfiles.d/tern.conf",
        "etc/tern/tern.toml",
        "usr/share/doc/tern/README.md",
        "usr/share/bash-completion/completions/tern",
        "usr/share/zsh/vendor-completions/_tern",
        "usr/share/fish/vendor_completions.d/tern.fish",
        "usr/share/man/man1/tern.1.gz",
    ] {
        assert!(
            installed.iter().any(|t| t == wanted),
            "the package does not install /{wanted}"
        );
    }
    let scripts = deb["maintainer-scripts"]
        .as_str()
        .expect("maintainer-scripts");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join(scripts);
    let postinst = std::fs::read_to_string(scripts.join("postinst")).expect("postinst");
    for step in [
        "systemd-sysusers",
        "systemd-tmpfiles --create",
        "daemon-reload",
    ] {
        assert!(postinst.contains(step), "postinst lacks {step}");
    }
}
