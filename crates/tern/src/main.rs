//! The `tern` command line.
//!
//! Today it has `decode` and `check-config`; `tern run` (the daemon),
//! `tern sim`, `tern send`, `tern bench` and `tern status` come with the
//! crates they drive.

#![forbid(unsafe_code)]

use tern::{check, decode};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Validate a configuration file and print what it means (clients,
    /// upstreams with their effective vendor limits, routes), or every error
    /// with file, line and column. Exits 78 when the file is invalid.
    CheckConfig {
        /// The configuration file.
        file: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode { hex } => decode::run(&hex),
        Command::CheckConfig { file } => Ok(check::run(&file)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("tern: {err:#}");
            ExitCode::from(2)
        }
    }
}
