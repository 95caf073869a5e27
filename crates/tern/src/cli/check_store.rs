//! `tern check-store`: a report on a stopped store's health.
//!
//! It reads the store without starting the daemon and without changing it
//! (see `tern_storage::inspect`): messages by state, receipts held, outbox
//! items, the write-ahead log's size and records, and every damaged place
//! found, file and offset. `--repair` cuts a torn log tail, the one repair
//! that loses nothing acknowledged; the daemon makes the same repair at
//! its start. A store a running daemon holds is refused.

use std::path::PathBuf;
use std::process::ExitCode;

use tern_storage::inspect::{inspect, StoreReport};

/// Damage was found (and not repaired).
const EXIT_DAMAGED: u8 = 1;

/// `tern check-store`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 healthy (or every damage repaired), 1 damage found, \
                  2 no store there, or a running daemon holds it."
)]
pub struct CheckStoreArgs {
    /// The store's directory (`[store] path` in the configuration).
    pub path: PathBuf,
    /// Cut a torn write-ahead log tail (a record cut short or failing its
    /// checksum at the very end: never acknowledged). Other damage is only
    /// reported.
    #[arg(long)]
    pub repair: bool,
}

/// Runs `tern check-store`.
pub fn run(args: CheckStoreArgs) -> anyhow::Result<ExitCode> {
    let report = inspect(&args.path, args.repair)?;
    print!("{}", render(&args.path, &report));
    Ok(if report.damage.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DAMAGED)
    })
}

fn render(path: &std::path::Path, report: &StoreReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "store {}", path.display());
    let _ = writeln!(
        out,
        "messages {} (queued {}, in flight {}, submitted {}, final {})",
        report.messages(),
        report.queued,
        report.in_flight,
        report.submitted,
        report.finished
    );
    let _ = writeln!(out, "receipts held {}", report.receipts_held);
    let _ = writeln!(out, "outbox items {}", report.outbox);
    let size: u64 = report.wal_files.iter().map(|(_, size)| size).sum();
    let _ = writeln!(
        out,
        "write-ahead log {} files, {size} octets on disk, {} records ({} octets) to replay",
        report.wal_files.len(),
        report.wal_records,
        report.wal_octets
    );
    for repaired in &report.repaired {
        let _ = writeln!(out, "repaired {repaired}");
    }
    for damage in &report.damage {
        let _ = writeln!(out, "damaged {damage}");
    }
    let _ = writeln!(
        out,
        "{}",
        if report.damage.is_empty() {
            "healthy"
        } else {
            "DAMAGED"
        }
    );
    out
}
