//! Files the Debian package installs that are generated from the command
//! line's own definition, so they can never drift from it: shell
//! completions (`tern completions bash|zsh|fish`) and the man page
//! (`tern man`). Both subcommands are hidden; `deploy/deb/build` runs them
//! before `cargo deb` (deploy/deb/README.md).

use std::io::Write;

/// Writes the completion script of `shell` for `command` to `out`.
pub fn completions(mut command: clap::Command, shell: clap_complete::Shell, out: &mut dyn Write) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, out);
}

/// Writes the man page (roff, section 1) of `command` to `out`: the
/// description, options and the list of subcommands.
pub fn man(command: clap::Command, out: &mut dyn Write) -> std::io::Result<()> {
    clap_mangen::Man::new(command).render(out)
}
