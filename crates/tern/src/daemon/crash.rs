//! Named crash points, for tests that must stop Tern exactly between two
//! steps of the message pipeline, as a SIGKILL landing there would.
//!
//! A SIGKILL from outside lands wherever the process happens to be, so a
//! test that kills at random proves little about one window (chaos.rs
//! finds them by luck and a seed). Each point here names one gap between
//! two steps (`stage.after_step`); `TERN_CRASH_AT=NAME` or
//! `TERN_CRASH_AT=NAME:N` makes the process abort the first (or the Nth)
//! time it passes NAME: one line to stderr, then `std::process::abort()`:
//! no destructor runs, no buffer or store is flushed, nothing is answered,
//! exactly what a kill leaves. The variable is read once, when the daemon
//! starts; unset (production), a point costs one load and one compare.
//! crates/tern/tests/crash_points.rs runs every point.
//!
//! `TERN_STALL_AT=NAME:MILLIS` instead makes the daemon wait MILLIS at
//! NAME, every time, so a test can hold a window open that is otherwise a
//! few milliseconds wide (a receipt arriving while its attempt's write is
//! out). Only the points in [`STALL_POINTS`] can stall.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable naming the point to crash at.
pub(crate) const VARIABLE: &str = "TERN_CRASH_AT";

/// Every point the daemon has, in pipeline order: a name outside this
/// list is refused at start, so a misspelt one fails a test at once
/// instead of never crashing.
pub(crate) const POINTS: [&str; 13] = [
    // The submit is stored, its submit_sm_resp not yet written.
    "intake.after_accept",
    // The submit_sm_resp is handed to the client's session.
    "intake.after_resp",
    // Messages are claimed (in flight), none sent yet.
    "dispatch.after_claim",
    // The upstream's submit_sm_resp arrived, not yet recorded.
    "dispatch.after_submit_resp",
    // The upstream's answer is recorded; held receipts not yet settled.
    "dispatch.after_attempt",
    // A receipt found its message; nothing stored yet.
    "receipts.after_match",
    // A receipt is stored (applied, or held); no deliver_sm_resp yet.
    "receipts.after_store",
    // The deliver_sm_resp is handed to the upstream's session.
    "receipts.after_resp",
    // A receipt that came before its submit_sm_resp was recorded is held.
    "receipts.after_hold",
    // A held receipt is applied to its message, still held too.
    "receipts.after_held_apply",
    // ... and no longer held.
    "receipts.after_held_take",
    // The client answered a deliver_sm ESME_ROK; its ack not yet stored.
    "outbox.after_resp",
    // The item has left the outbox.
    "outbox.after_ack",
];

/// The environment variable naming a point to wait at, and how long.
pub(crate) const STALL_VARIABLE: &str = "TERN_STALL_AT";

/// The points a test can make the daemon wait at.
pub(crate) const STALL_POINTS: [&str; 1] = [
    // The upstream's submit_sm_resp arrived and its ids are entered as
    // being written (`writing.rs`); the attempt is not written yet.
    "dispatch.after_submit_resp",
];

/// Why `TERN_CRASH_AT` or `TERN_STALL_AT` was refused.
#[derive(Debug, thiserror::Error)]
pub enum CrashPointError {
    #[error("{STALL_VARIABLE}={0:?}: expected NAME:MILLIS, NAME one of {known}", known = STALL_POINTS.join(", "))]
    Stall(String),
    #[error("{VARIABLE}={0:?}: no such crash point (known: {known})", known = POINTS.join(", "))]
    Unknown(String),
    #[error("{VARIABLE}={0:?}: the count after `:` must be a whole number from 1")]
    Count(String),
}

/// The point to crash at, and how many times it was passed.
#[derive(Debug)]
struct Target {
    name: &'static str,
    nth: u64,
    passed: AtomicU64,
}

/// Set once by [`init`]; `None` inside when the variable is unset.
static TARGET: OnceLock<Option<Target>> = OnceLock::new();

/// Set once by [`init`]: the point to wait at and for how long.
static STALL: OnceLock<Option<(&'static str, std::time::Duration)>> = OnceLock::new();

/// Reads `TERN_CRASH_AT` once, at the daemon's start.
pub(crate) fn init() -> Result<(), CrashPointError> {
    let target = match std::env::var(VARIABLE) {
        Ok(value) if !value.trim().is_empty() => Some(parse(value.trim())?),
        _ => None,
    };
    if let Some(target) = &target {
        tracing::warn!(
            point = target.name,
            nth = target.nth,
            "{VARIABLE} is set: this process aborts at that crash point (for tests only)"
        );
    }
    // A second start in one process (tests of the library) keeps the first.
    let _ = TARGET.set(target);
    let stall = match std::env::var(STALL_VARIABLE) {
        Ok(value) if !value.trim().is_empty() => Some(parse_stall(value.trim())?),
        _ => None,
    };
    if let Some((point, wait)) = stall {
        tracing::warn!(
            point,
            ?wait,
            "{STALL_VARIABLE} is set: this process waits at that point (for tests only)"
        );
    }
    let _ = STALL.set(stall);
    Ok(())
}

fn parse_stall(value: &str) -> Result<(&'static str, std::time::Duration), CrashPointError> {
    let refused = || CrashPointError::Stall(value.to_owned());
    let (name, millis) = value.split_once(':').ok_or_else(refused)?;
    let millis = millis.parse::<u64>().map_err(|_| refused())?;
    let name = STALL_POINTS
        .iter()
        .find(|p| **p == name)
        .ok_or_else(refused)?;
    Ok((name, std::time::Duration::from_millis(millis)))
}

/// Passes the point `name`, waiting there if `TERN_STALL_AT` names it.
pub(crate) async fn stall(name: &'static str) {
    if let Some(Some((point, wait))) = STALL.get() {
        if *point == name {
            tokio::time::sleep(*wait).await;
        }
    }
}

fn parse(value: &str) -> Result<Target, CrashPointError> {
    let (name, nth) = match value.split_once(':') {
        Some((name, count)) => match count.parse::<u64>() {
            Ok(n) if n >= 1 => (name, n),
            _ => return Err(CrashPointError::Count(value.to_owned())),
        },
        None => (value, 1),
    };
    let name = POINTS
        .iter()
        .find(|p| **p == name)
        .ok_or_else(|| CrashPointError::Unknown(value.to_owned()))?;
    Ok(Target {
        name,
        nth,
        passed: AtomicU64::new(0),
    })
}

/// Passes the crash point `name`: aborts the process here if
/// `TERN_CRASH_AT` names it (and this is the time it counts).
#[inline]
pub(crate) fn point(name: &'static str) {
    if let Some(Some(target)) = TARGET.get() {
        if target.name == name {
            reached(target);
        }
    }
}

#[cold]
fn reached(target: &Target) {
    let n = target.passed.fetch_add(1, Ordering::SeqCst) + 1;
    if n == target.nth {
        // stderr is unbuffered: the line is out before the abort.
        eprintln!(
            "tern: crash point {} reached (time {n}): aborting ({VARIABLE})",
            target.name
        );
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_with_or_without_a_count_is_read_and_anything_else_refused() {
        let t = parse("dispatch.after_attempt").expect("known");
        assert_eq!((t.name, t.nth), ("dispatch.after_attempt", 1));
        let t = parse("outbox.after_ack:50").expect("known");
        assert_eq!((t.name, t.nth), ("outbox.after_ack", 50));
        assert!(matches!(
            parse("dispatch.after_atempt"),
            Err(CrashPointError::Unknown(_))
        ));
        for bad in [
            "outbox.after_ack:0",
            "outbox.after_ack:x",
            "outbox.after_ack:",
        ] {
            assert!(
                matches!(parse(bad), Err(CrashPointError::Count(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_stall_needs_a_known_point_and_its_millis() {
        let (name, wait) = parse_stall("dispatch.after_submit_resp:250").expect("known");
        assert_eq!(name, "dispatch.after_submit_resp");
        assert_eq!(wait, std::time::Duration::from_millis(250));
        for bad in [
            "dispatch.after_submit_resp",
            "dispatch.after_submit_resp:x",
            "outbox.after_ack:10",
        ] {
            assert!(
                matches!(parse_stall(bad), Err(CrashPointError::Stall(_))),
                "{bad}"
            );
        }
    }
}
