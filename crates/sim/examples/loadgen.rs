//! Benchmark: the load generator against an in-process simulator over
//! loopback. Bounded by the message count and a deadline.
//!
//! ```text
//! cargo run --release -p tern-sim --example loadgen -- --sessions 1 --window 1 --messages 20000
//! cargo run --release -p tern-sim --example loadgen -- --sessions 4 --window 100 --messages 200000 --receipts
//! ```
//!
//! Prints the table, then the report as one JSON line.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use tern_sim::load::{self, StopReason, TextCoding};
use tern_sim::{IdFormat, LoadConfig, SimConfig, Simulator};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Coding {
    Gsm7,
    Ucs2,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Ids {
    Decimal,
    Hex,
    Hex32,
}

/// Load an in-process SMSC simulator over loopback and report.
#[derive(Debug, Parser)]
struct Args {
    /// Sending sessions (transceivers).
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Submits in flight per session.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Messages in all.
    #[arg(long, default_value_t = 20_000)]
    messages: u64,
    /// Ask for receipts and wait for them.
    #[arg(long)]
    receipts: bool,
    /// Messages per second over all sessions (default: as fast as possible).
    #[arg(long)]
    rate: Option<u32>,
    /// Text coding.
    #[arg(long, value_enum, default_value_t = Coding::Gsm7)]
    coding: Coding,
    /// Characters per message.
    #[arg(long, default_value_t = 40)]
    text_len: usize,
    /// Message id format of the simulator.
    #[arg(long, value_enum, default_value_t = Ids::Decimal)]
    ids: Ids,
    /// The whole run ends by this many seconds at the latest.
    #[arg(long, default_value_t = 300)]
    deadline_secs: u64,
    /// Load this SMSC (e.g. a running Tern, 127.0.0.1:2775) instead of an
    /// in-process simulator.
    #[arg(long)]
    target: Option<std::net::SocketAddr>,
    /// system_id to bind with at --target.
    #[arg(long, default_value = "demo")]
    system_id: String,
    /// Password to bind with at --target.
    #[arg(long, default_value = "demo")]
    password: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(bench(args))
}

async fn bench(args: Args) -> ExitCode {
    if let Some(target) = args.target {
        let config = LoadConfig {
            system_id: args.system_id.clone(),
            password: args.password.clone(),
            ..load_config(&args, target)
        };
        return report(load::run(config).await, None);
    }
    let sim = match Simulator::start(SimConfig {
        id_format: match args.ids {
            Ids::Decimal => IdFormat::Decimal,
            Ids::Hex => IdFormat::Hex,
            Ids::Hex32 => IdFormat::Hex32,
        },
        ..SimConfig::default()
    })
    .await
    {
        Ok(sim) => sim,
        Err(err) => {
            eprintln!("simulator: {err}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = load::run(load_config(&args, sim.addr())).await;
    let stats = sim.stats();
    sim.shutdown().await;
    report(outcome, Some(stats))
}

fn load_config(args: &Args, addr: std::net::SocketAddr) -> LoadConfig {
    LoadConfig {
        sessions: args.sessions,
        window: args.window,
        messages: args.messages,
        registered_delivery: args.receipts,
        rate: args.rate,
        coding: match args.coding {
            Coding::Gsm7 => TextCoding::Gsm7,
            Coding::Ucs2 => TextCoding::Ucs2,
        },
        text_len: args.text_len,
        deadline: Duration::from_secs(args.deadline_secs),
        ..LoadConfig::new(addr)
    }
}

fn report(
    outcome: Result<load::LoadReport, load::LoadError>,
    stats: Option<tern_sim::smsc::SimSnapshot>,
) -> ExitCode {
    match outcome {
        Ok(report) => {
            print!("{}", report.to_table());
            if let Some(stats) = stats {
                println!(
                    "simulator: submits {} receipts sent {} acked {}",
                    stats.submits, stats.receipts_sent, stats.receipts_acked
                );
            }
            println!("{}", report.to_json_line());
            if report.stopped_by == StopReason::Completed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(err) => {
            eprintln!("load: {err}");
            ExitCode::FAILURE
        }
    }
}
