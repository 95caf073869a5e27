//! `tern route-test`: which route a sample message takes, and why.
//!
//! It compiles the configuration as `tern check-config` does and runs the
//! daemon's own lookup on a message described by flags, at a chosen
//! instant (for time windows). It prints every rule the lookup tried
//! before the one it chose, with the first condition that failed; the
//! chosen rule with the prefix and conditions that matched; and the
//! upstream order its strategy gives when every upstream is available,
//! idle and unpriced. An operator checks a new route without sending
//! anything.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use tern_router::strategy::{Candidate, WeightedState};
use tern_router::table::{MessageKey, Rule, Table};

use crate::config::Config;
use crate::sandbox::{self, Needs};

/// Exit status for an invalid configuration (EX_CONFIG, sysexits.h).
const EX_CONFIG: u8 = 78;

/// `tern route-test`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 a route matches, 1 no route, 2 a bad flag, 78 an invalid configuration."
)]
pub struct RouteTestArgs {
    /// The client's system_id.
    #[arg(long)]
    pub client: String,
    /// The destination address.
    #[arg(long)]
    pub to: String,
    /// The source address.
    #[arg(long, default_value = "")]
    pub from: String,
    /// The priority_flag.
    #[arg(long, default_value = "0", value_parser = parse_octet)]
    pub priority: u8,
    /// The data_coding (decimal, or hex with 0x).
    #[arg(long, default_value = "0", value_parser = parse_octet)]
    pub data_coding: u8,
    /// The esm_class (decimal, or hex with 0x: 0x40 for a UDH).
    #[arg(long, default_value = "0", value_parser = parse_octet)]
    pub esm_class: u8,
    /// The service_type.
    #[arg(long, default_value = "")]
    pub service_type: String,
    /// The instant to route at, RFC 3339 ("2026-03-29T08:30:00+02:00");
    /// now when absent.
    #[arg(long, value_parser = parse_instant)]
    pub at: Option<jiff::Timestamp>,
    /// The configuration file; the embedded default when absent.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// An octet as people write it: decimal or `0x` hex.
fn parse_octet(raw: &str) -> Result<u8, String> {
    let raw = raw.trim();
    match raw.strip_prefix("0x").or_else(|| raw.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16),
        None => raw.parse(),
    }
    .map_err(|_| format!("{raw:?} is not an octet (0 to 255, or 0x00 to 0xff)"))
}

/// An RFC 3339 instant.
fn parse_instant(raw: &str) -> Result<jiff::Timestamp, String> {
    raw.trim().parse().map_err(|e| {
        format!("{raw:?} is not an RFC 3339 instant like 2026-03-29T08:30:00+02:00: {e}")
    })
}

/// Runs `tern route-test`; `default_config` is the embedded default.
pub fn run(args: RouteTestArgs, default_config: &str) -> ExitCode {
    let loaded = match &args.config {
        Some(path) => Config::load(path),
        None => {
            if let Err(missing) = sandbox::require(Needs::DefaultConfig("route-test")) {
                eprintln!("tern: {missing}");
                return ExitCode::from(EX_CONFIG);
            }
            Config::from_text(Path::new("(embedded default)"), default_config)
        }
    };
    let config = match loaded {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let now = args.at.unwrap_or_else(jiff::Timestamp::now);
    let key = MessageKey {
        client: &args.client,
        destination: &args.to,
        source: &args.from,
        data_coding: args.data_coding,
        service_type: &args.service_type,
        priority_flag: args.priority,
        esm_class: args.esm_class,
        now,
    };
    let (text, found) = explain(&config.table, &key);
    print!("{text}");
    if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The report for `key`, and whether a route matched.
pub fn explain(table: &Table, key: &MessageKey<'_>) -> (String, bool) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "message: client {:?}, to {:?}, from {:?}, priority_flag {}, data_coding {}, esm_class 0x{:02x}, service_type {:?}, at {}",
        key.client,
        key.destination,
        key.source,
        key.priority_flag,
        key.data_coding,
        key.esm_class,
        key.service_type,
        key.now
    );
    let tried = table.explain(key);
    let rules = table.rules();
    for t in &tried {
        let rule = &rules[t.index];
        let Some(failed) = t.failed else {
            let _ = writeln!(out, "route: {}", rule.name);
            let _ = writeln!(out, "  matched: {}", matched(rule, &t.prefix));
            let _ = writeln!(out, "  strategy: {:?}", rule.strategy);
            let _ = writeln!(out, "  upstream order: {}", order(rule));
            return (out, true);
        };
        let value = rule
            .conditions()
            .into_iter()
            .find(|(c, _)| *c == failed)
            .map(|(_, v)| v)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "skipped: {} ({}): {} {} does not hold",
            rule.name,
            prefix_text(&t.prefix),
            failed.key(),
            value
        );
    }
    let _ = writeln!(out, "no route: no rule matches this message");
    (out, false)
}

fn prefix_text(prefix: &str) -> String {
    if prefix.is_empty() {
        "any destination".to_owned()
    } else {
        format!("prefix {prefix}")
    }
}

/// The prefix and every condition of the chosen rule (all of them held).
fn matched(rule: &Rule, prefix: &str) -> String {
    let mut parts = vec![prefix_text(prefix)];
    parts.extend(
        rule.conditions()
            .into_iter()
            .map(|(c, v)| format!("{} {v}", c.key())),
    );
    parts.join("; ")
}

/// The rule's upstreams in its strategy's order with all of them
/// available, idle and unpriced (a weighted route: its first pick).
fn order(rule: &Rule) -> String {
    let idle = Candidate {
        available: true,
        load: 0.0,
        price: None,
    };
    let candidates = vec![idle; rule.upstreams.len()];
    let order = rule
        .strategy
        .order(&rule.upstreams, &candidates, &WeightedState::default());
    order
        .iter()
        .map(|&i| {
            let u = &rule.upstreams[i];
            format!("{} (priority {}, weight {})", u.name, u.priority, u.weight)
        })
        .collect::<Vec<_>>()
        .join(", ")
}
