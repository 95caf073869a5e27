//! What the Debian package ships stays right (deploy/deb/README.md): the
//! configuration it installs as /etc/tern/tern.toml passes check-config as
//! installed, and its commented examples once filled in; it holds no
//! literal secret; the completions and man pages committed under
//! deploy/deb/generated/ are exactly what the binary writes, name every
//! subcommand an operator types and none that is hidden or missing from
//! the package's build, and no man page names one that is not shipped; and
//! the package metadata installs every file the service needs from files
//! in the repository, so `cargo deb -p tern` needs no step before it.
//! `.ci/package` builds, installs and removes the real package; these
//! checks run in every `cargo test` (and in CI again against the build
//! without the `sandbox` feature, the one the package ships).

use tern_testkit as common;

use std::collections::BTreeMap;
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

/// The subcommands the package documents: those an operator types, in
/// the package's build.
const SUBCOMMANDS: [&str; 8] = [
    "run",
    "check-config",
    "send",
    "status",
    "trace",
    "check-store",
    "route-test",
    "decode",
];

/// Subcommands the package's completions and man pages leave out: hidden
/// ones, and those only a build with the `sandbox` feature runs.
const UNDOCUMENTED: [&str; 5] = ["completions", "man", "package-files", "sim", "bench"];

/// Where the committed completions and man pages are.
fn generated() -> PathBuf {
    repo().join("deploy/deb/generated")
}

/// Every file under `dir`, by its path relative to `dir`.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let body = std::fs::read(&path).expect("read");
                files.insert(
                    path.strip_prefix(root).expect("under root").to_owned(),
                    body,
                );
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// The committed file `name` (relative to deploy/deb/generated/), as text.
fn committed(name: &str) -> String {
    let path = generated().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with: {}",
            path.display(),
            tern::cli::package::REGENERATE
        )
    })
}

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
fn the_committed_completions_and_man_pages_are_what_the_binary_writes() {
    let dir = TempDir::new("package-files");
    let out = dir.join("generated");
    tern(&["package-files", out.to_str().expect("utf-8 path")]);
    let written = files_under(&out);
    let kept = files_under(&generated());
    let regenerate = tern::cli::package::REGENERATE;
    let names = |files: &BTreeMap<PathBuf, Vec<u8>>| files.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&kept),
        names(&written),
        "deploy/deb/generated/ does not hold the files the binary writes; \
         regenerate with: {regenerate}"
    );
    for (name, body) in &written {
        assert!(
            kept[name] == *body,
            "deploy/deb/generated/{} differs from what the binary writes; \
             regenerate with: {regenerate}",
            name.display()
        );
    }
    // The single-file commands write the same.
    for (shell, file) in [
        ("bash", "tern.bash"),
        ("zsh", "_tern"),
        ("fish", "tern.fish"),
    ] {
        assert!(
            tern(&["completions", shell]) == committed(file),
            "`tern completions {shell}` differs from deploy/deb/generated/{file}; \
             regenerate with: {regenerate}"
        );
    }
    assert!(
        tern(&["man"]) == committed("man/tern.1"),
        "`tern man` differs from deploy/deb/generated/man/tern.1; regenerate with: {regenerate}"
    );
}

/// How each shell's completion script offers subcommand `name` at the
/// top level.
fn offered(shell: &str, name: &str) -> String {
    match shell {
        "bash" => format!("tern,{name})"),
        "zsh" => format!("\n'{name}:"),
        _ => format!("-a \"{name}\""),
    }
}

#[test]
fn completions_offer_every_documented_subcommand_and_no_hidden_or_missing_one() {
    for (shell, file) in [
        ("bash", "tern.bash"),
        ("zsh", "_tern"),
        ("fish", "tern.fish"),
    ] {
        let script = committed(file);
        for sub in SUBCOMMANDS {
            assert!(
                script.contains(&offered(shell, sub)),
                "the {shell} completions do not offer {sub:?}"
            );
        }
        for sub in UNDOCUMENTED {
            assert!(
                !script.contains(&offered(shell, sub)),
                "the {shell} completions offer {sub:?}"
            );
        }
    }
}

#[test]
fn the_man_pages_list_every_subcommand_and_name_only_pages_that_are_shipped() {
    let page = committed("man/tern.1");
    assert!(page.contains(".TH tern 1"), "{page}");
    assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
    // roff escapes each hyphen.
    let entry = |sub: &str| format!("tern\\-{}(1)", sub.replace('-', "\\-"));
    for sub in SUBCOMMANDS {
        assert!(page.contains(&entry(sub)), "tern.1 lacks {}", entry(sub));
    }
    for sub in UNDOCUMENTED {
        assert!(!page.contains(&entry(sub)), "tern.1 names {}", entry(sub));
    }
    // Every page another one names is there: `tern\-check\-config(1)` is
    // man/tern-check-config.1.
    let pages = files_under(&generated().join("man"));
    for (name, body) in &pages {
        let body = String::from_utf8_lossy(body);
        for reference in body.split("tern\\-").skip(1) {
            let Some((named, _)) = reference.split_once("(1)") else {
                continue;
            };
            if named.contains(char::is_whitespace) {
                continue;
            }
            let file = PathBuf::from(format!("tern-{}.1", named.replace("\\-", "-")));
            assert!(
                pages.contains_key(&file),
                "{} names {}, which is not in deploy/deb/generated/man/",
                name.display(),
                file.display()
            );
        }
    }
    assert_eq!(pages.len(), SUBCOMMANDS.len() + 1, "{:?}", pages.keys());
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
        // The binary is what `cargo deb` builds; everything else is in
        // git, so `cargo deb -p tern` needs nothing built before it.
        if source == "target/release/tern" {
            installed.push(target.to_owned());
            continue;
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(source);
        if let Some(dir) = source.strip_suffix("/*.1") {
            // Every man page, into the directory `target`.
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
            assert!(target.ends_with('/'), "{target} is not a directory");
            for page in files_under(&dir).keys() {
                installed.push(format!("{target}{}", page.display()));
            }
            continue;
        }
        assert!(path.is_file(), "asset {source} does not exist");
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
        // cargo-deb compresses them: tern.1.gz and so on.
        "usr/share/man/man1/tern.1",
        "usr/share/man/man1/tern-check-config.1",
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
