//! The operator's tools around the daemon: `tern send` (one message end to
//! end), `tern sim` (a sandbox SMSC), `tern status` (what a running daemon
//! says about itself) and `tern bench` (throughput and latency, direct and
//! through Tern). `sim` and `bench` run the simulator, so they exist only
//! with the `sandbox` feature (crate::sandbox).
//!
//! These are the binary's edge: they report errors to a person, so they use
//! `anyhow` and turn every failure into a sentence and an exit code rather
//! than a typed error. Each module has an `Args` struct for clap and a
//! `run` function that owns its tokio runtime, so `main` stays a dispatcher.

#[cfg(feature = "sandbox")]
pub mod bench;
#[cfg(feature = "sandbox")]
mod bench_http;
pub mod check_store;
pub mod package;
pub mod route_test;
pub mod send;
#[cfg(feature = "sandbox")]
pub mod sim;
pub mod status;
pub mod trace;

use std::time::Duration;

/// A tokio runtime for one tool. Multi-threaded because the load generator
/// and the simulator of `bench` would otherwise share one core with the
/// sessions they measure.
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Logs to standard error at `warn` unless `RUST_LOG` says otherwise: the
/// tools print their results on standard output, and the session engine's
/// `info` lines would bury them. Never panics if a subscriber is already set.
pub(crate) fn init_tool_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on SIGINT or SIGTERM (either is how an operator or a test
/// harness asks a foreground tool to stop and report).
#[cfg(feature = "sandbox")]
pub(crate) async fn shutdown_signal() {
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

/// A duration as people write it: `500ms`, `1s`, `2m`. Used as a clap
/// value parser, hence the `String` error.
pub(crate) fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|err| format!("{raw:?} is not a duration like 500ms, 1s or 2m: {err}"))
}

/// Milliseconds from the load generator's microseconds, for reports.
#[cfg(feature = "sandbox")]
pub(crate) fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_human_units() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration(" 250ms "), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
