//! The `tern` command line: `run` (the daemon), `check-config`, `send`,
//! `sim`, `status`, `trace`, `bench`, `route-test`, `check-store` and `decode` (and, hidden, `completions`,
//! `man` and `package-files` for the Debian package). Each subcommand lives in
//! the library; this file only parses arguments, sets up logging for the
//! daemon and maps errors to exit codes.

#![forbid(unsafe_code)]

use tern::{check, config, daemon, decode};

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc instead of glibc's malloc: sled allocates on every write, and
/// the store's durable writes ran 1.5× faster with it (crates/storage/
/// README.md, "Allocator"). Built without transparent huge pages
/// (`no_thp`): with them the daemon held ~146 MB at 10 000 messages in
/// flight instead of ~87 MB, for no gain measured above the noise.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tern: one SMSC for your applications, many upstreams behind it.
#[derive(Debug, Parser)]
#[command(name = "tern", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode SMPP PDUs given in hex (spaces and colons allowed), as copied
    /// from a packet capture or a log; several PDUs may follow each other.
    Decode {
        /// The octets in hex; read from standard input when absent.
        hex: Vec<String>,
    },
    /// Run the broker. Without --config, the embedded default: a `demo`
    /// client on 127.0.0.1:2775, a store in ./data, and two sandbox
    /// upstreams started in-process, one failing over to the other (only in
    /// a build with the `sandbox` feature, the default).
    Run {
        /// The configuration file.
        #[arg(long)]
        config: Option<std::path::PathBuf>,
        /// Once every listener is bound, write where to FILE, one line
        /// each: `client ADDRESS` per [[listener]] in order, then `admin
        /// ADDRESS`, then `http ADDRESS` per [[http_listener]]. For a
        /// configuration with port 0 (any free port), as the end-to-end
        /// tests use.
        #[arg(long, value_name = "FILE")]
        listening_file: Option<std::path::PathBuf>,
    },
    /// Validate a configuration file and print what it means (clients,
    /// upstreams with their effective vendor limits, routes), or every error
    /// with file, line and column. Exits 78 when the file is invalid.
    CheckConfig {
        /// The configuration file.
        file: std::path::PathBuf,
        /// Also show what putting the file in force would change against
        /// the running daemon (accounts, upstreams, routes, and what needs a
        /// restart), asked at its admin listener; nothing is applied.
        #[arg(long)]
        diff: bool,
        /// The running daemon's admin listener (default: the file's
        /// `[admin] address`, else 127.0.0.1:9775).
        #[arg(long, requires = "diff")]
        admin: Option<std::net::SocketAddr>,
    },
    /// Send one message through Tern (or any SMSC) and wait for its
    /// delivery receipt: bind, submit, print the id, the receipt, unbind.
    Send(tern::cli::send::SendArgs),
    /// Run an SMSC simulator, optionally shaped like a vendor, until
    /// Ctrl-C; prints its address, and its counters at exit.
    #[cfg(feature = "sandbox")]
    Sim(tern::cli::sim::SimArgs),
    /// Not in this build (no `sandbox` feature): run an SMSC simulator.
    #[cfg(not(feature = "sandbox"))]
    Sim(WithoutSandbox),
    /// Show a running daemon's readiness, sessions, upstreams, queues and
    /// last reload, read from its admin endpoint.
    Status(tern::cli::status::StatusArgs),
    /// Measure throughput and latency straight to a simulator and through
    /// Tern, with Tern's memory and CPU.
    #[cfg(feature = "sandbox")]
    Bench(tern::cli::bench::BenchArgs),
    /// Not in this build (no `sandbox` feature): measure throughput and
    /// latency against a simulator.
    #[cfg(not(feature = "sandbox"))]
    Bench(WithoutSandbox),
    /// One message's whole story from a running daemon: client, attempts
    /// (upstream, time, status, upstream ids per part), each receipt as
    /// received and as relayed, outcome. Exits 1 if the id is unknown.
    Trace(tern::cli::trace::TraceArgs),
    /// Report on a stopped store without starting the daemon: messages by
    /// state, receipts held, outbox items, the write-ahead log, and any
    /// damage (file, offset). Exits 0 healthy, 1 damaged, 2 no store or in
    /// use by a daemon.
    CheckStore(tern::cli::check_store::CheckStoreArgs),
    /// Which route a sample message takes under a configuration, and why:
    /// the rules tried before it with the condition that failed, the
    /// conditions that matched, the upstream order. Exits 1 on no route.
    RouteTest(tern::cli::route_test::RouteTestArgs),
    /// Print the completion script of a shell, as the Debian package
    /// installs it (deploy/deb/README.md).
    #[command(hide = true)]
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page tern(1), roff, as the Debian package installs it.
    #[command(hide = true)]
    Man,
    /// Write the completions and man pages the Debian package installs
    /// into a directory (deploy/deb/generated/).
    #[command(hide = true)]
    PackageFiles {
        /// Created if missing; files already there are overwritten.
        dir: std::path::PathBuf,
    },
}

/// The arguments of a subcommand this build left out with the `sandbox`
/// feature: taken whatever they are, so that the command explains itself
/// (tern::sandbox::Missing) instead of clap calling it unknown.
#[cfg(not(feature = "sandbox"))]
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
struct WithoutSandbox {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    _args: Vec<std::ffi::OsString>,
}

/// The error of a subcommand this build left out.
#[cfg(not(feature = "sandbox"))]
fn without_sandbox(command: &'static str) -> anyhow::Error {
    tern::sandbox::Missing {
        needs: tern::sandbox::Needs::Command(command),
    }
    .into()
}

/// The embedded default configuration (config/tern.toml).
const DEFAULT_CONFIG: &str = include_str!("../../../config/tern.toml");

fn run(
    path: Option<&std::path::Path>,
    listening_file: Option<&std::path::Path>,
) -> anyhow::Result<ExitCode> {
    let loaded = match path {
        Some(path) => config::Config::load(path),
        None => {
            if let Err(missing) = tern::sandbox::require(tern::sandbox::Needs::DefaultConfig("run"))
            {
                eprintln!("tern: {missing}");
                return Ok(ExitCode::from(EX_CONFIG));
            }
            config::Config::from_text(std::path::Path::new("(embedded default)"), DEFAULT_CONFIG)
        }
    };
    let config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(EX_CONFIG));
        }
    };
    init_logging(&config.log);
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            stop.cancel();
        });
        let listeners = daemon::Listeners::bind(&config).await?;
        // SIGHUP's default action ends the process. The daemon handles it
        // (a reload) only once it serves; one that comes before, from
        // whoever read the listening file or systemd at once, must not
        // kill it: with a handler registered now, it is ignored, and the
        // file watch picks up the changed file.
        let _hangups = hangups();
        if let Some(file) = listening_file {
            write_listening(file, &listeners.describe())?;
        }
        daemon::run(config, listeners, shutdown).await
    });
    if let Err(err) = &outcome {
        if err.store_damaged() {
            tracing::error!(error = %format!("{err:#}"), "refusing to start on a damaged store");
            eprintln!("tern: {err:#}");
            return Ok(ExitCode::from(EX_DATAERR));
        }
    }
    outcome?;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP handled from here on (see [`run`]); `None` where it cannot be.
fn hangups() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}

/// Writes `text` to `file` whole: to a temporary file beside it, renamed
/// over it, so a reader polling for `file` never sees half of it.
fn write_listening(file: &std::path::Path, text: &str) -> Result<(), daemon::DaemonError> {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, file))
        .map_err(|source| daemon::DaemonError::ListeningFile {
            path: file.to_path_buf(),
            source,
        })
}

/// Exit status for a configuration the daemon cannot run with
/// (EX_CONFIG, sysexits.h), as `check-config` uses for an invalid file.
const EX_CONFIG: u8 = 78;

/// Exit status for a damaged store (EX_DATAERR, sysexits.h): like a bad
/// configuration, not worth restarting until an operator looked at it.
const EX_DATAERR: u8 = 65;

/// Logs as the config says; `RUST_LOG` overrides its level.
fn init_logging(log: &config::LogSettings) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if log.json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// SIGINT or SIGTERM.
async fn wait_for_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode { hex } => decode::run(&hex).map_err(anyhow::Error::from),
        Command::CheckConfig {
            file, diff: false, ..
        } => Ok(check::run(&file)),
        Command::CheckConfig {
            file,
            diff: true,
            admin,
        } => Ok(check::run_diff(&file, admin)),
        Command::Run {
            config,
            listening_file,
        } => run(config.as_deref(), listening_file.as_deref()),
        Command::Send(args) => tern::cli::send::run(args),
        #[cfg(feature = "sandbox")]
        Command::Sim(args) => tern::cli::sim::run(args),
        #[cfg(not(feature = "sandbox"))]
        Command::Sim(_) => Err(without_sandbox("sim")),
        Command::Status(args) => tern::cli::status::run(args),
        #[cfg(feature = "sandbox")]
        Command::Bench(args) => tern::cli::bench::run(args),
        #[cfg(not(feature = "sandbox"))]
        Command::Bench(_) => Err(without_sandbox("bench")),
        Command::Trace(args) => tern::cli::trace::run(args),
        Command::CheckStore(args) => tern::cli::check_store::run(args),
        Command::RouteTest(args) => Ok(tern::cli::route_test::run(args, DEFAULT_CONFIG)),
        Command::Completions { shell } => {
            tern::cli::package::completions(&Cli::command(), shell, &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => tern::cli::package::man(&Cli::command(), &mut std::io::stdout())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::PackageFiles { dir } => tern::cli::package::write_files(&Cli::command(), &dir)
            .map(|()| ExitCode::SUCCESS)
            .with_context(|| format!("writing the package's files into {}", dir.display())),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tern: {err:#}");
            ExitCode::from(2)
        }
    }
}
