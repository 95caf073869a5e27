//! Files the Debian package installs that are generated from the command
//! line's own definition: shell completions (`tern completions
//! bash|zsh|fish`) and man pages (`tern man` prints `tern(1)`), all
//! written at once by `tern package-files DIR`. The three subcommands are
//! hidden.
//!
//! The package installs copies committed under `deploy/deb/generated/`, so
//! that `cargo deb -p tern` needs no step before it;
//! `crates/tern/tests/package.rs` fails when they no longer match what the
//! binary writes, and names the command that regenerates them
//! ([`REGENERATE`]).
//!
//! They describe the package's build: the hidden subcommands are left out
//! (clap_complete would list them), and so are the subcommands only a build
//! with the `sandbox` feature runs ([`SANDBOX_ONLY`]), which the package's
//! build lacks. What remains does not depend on the feature, so a test of
//! either build checks the same files.

use std::io::Write;
use std::path::Path;

use clap::Command;

/// The command that rewrites `deploy/deb/generated/` from the binary, run
/// at the repository's root.
pub const REGENERATE: &str =
    "rm -rf deploy/deb/generated && cargo run -q -p tern -- package-files deploy/deb/generated";

/// Subcommands that only a build with the `sandbox` feature runs
/// (`crate::sandbox`): not documented in the package.
pub const SANDBOX_ONLY: [&str; 2] = ["sim", "bench"];

/// The shells the package has completions for, with each file's name
/// under `deploy/deb/generated/`.
pub const SHELLS: [(clap_complete::Shell, &str); 3] = [
    (clap_complete::Shell::Bash, "tern.bash"),
    (clap_complete::Shell::Zsh, "_tern"),
    (clap_complete::Shell::Fish, "tern.fish"),
];

/// `command` as the package documents it: without its hidden
/// subcommands and the sandbox-only ones. clap cannot remove a
/// subcommand, so the root is built again around the ones kept.
pub fn documented(command: &Command) -> Command {
    let kept: Vec<Command> = command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && !SANDBOX_ONLY.contains(&sub.get_name()))
        .cloned()
        .collect();
    let mut root = Command::new("tern")
        .version(env!("CARGO_PKG_VERSION"))
        .subcommand_required(command.is_subcommand_required_set())
        .arg_required_else_help(command.is_arg_required_else_help_set())
        .args(command.get_arguments().cloned())
        .subcommands(kept);
    if let Some(about) = command.get_about() {
        root = root.about(about.clone());
    }
    if let Some(about) = command.get_long_about() {
        root = root.long_about(about.clone());
    }
    root
}

/// Writes the completion script of `shell` for `command` to `out`.
pub fn completions(command: &Command, shell: clap_complete::Shell, out: &mut dyn Write) {
    clap_complete::generate(shell, &mut documented(command), "tern", out);
}

/// Every man page (roff, section 1) of `command`, as (file name, page):
/// `tern.1` first, then `tern-SUBCOMMAND.1` for each subcommand it lists
/// (the way clap_mangen names them), so that no page names one that is
/// not there.
pub fn man_pages(command: &Command) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    fn render(command: &Command, pages: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
        // Every page says which release it describes (a subcommand has
        // no version of its own).
        let man = clap_mangen::Man::new(command.clone())
            .source(concat!("tern ", env!("CARGO_PKG_VERSION")));
        let mut page = Vec::new();
        man.render(&mut page)?;
        pages.push((man.get_filename(), page));
        for sub in command.get_subcommands() {
            render(sub, pages)?;
        }
        Ok(())
    }
    // Built, so that subcommands carry their full names (`tern-run`);
    // without the `help` subcommand, which would need a page of its own.
    let mut command = documented(command).disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    render(&command, &mut pages)?;
    Ok(pages)
}

/// Writes `tern(1)` to `out`.
pub fn man(command: &Command, out: &mut dyn Write) -> std::io::Result<()> {
    let pages = man_pages(command)?;
    let (_, page) = pages
        .first()
        .ok_or_else(|| std::io::Error::other("no man page"))?;
    out.write_all(page)
}

/// Writes everything the package installs from `command` into `dir`
/// (created if missing): the completions under their [`SHELLS`] names and
/// the man pages under `man/`.
pub fn write_files(command: &Command, dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("man"))?;
    for (shell, name) in SHELLS {
        let mut script = Vec::new();
        completions(command, shell, &mut script);
        std::fs::write(dir.join(name), script)?;
    }
    for (name, page) in man_pages(command)? {
        std::fs::write(dir.join("man").join(name), page)?;
    }
    Ok(())
}
