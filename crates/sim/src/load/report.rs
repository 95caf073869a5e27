//! What a load run measured, for people ([`LoadReport::to_table`]) and for
//! scripts ([`LoadReport::to_json_line`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::latency::LatencySummary;

/// Why the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// Every message was answered and every expected receipt arrived.
    Completed,
    /// Every message was answered; some receipts did not arrive within the
    /// receipt wait.
    ReceiptWait,
    /// The overall deadline passed first.
    Deadline,
    /// Every sending session ended before all messages were sent.
    SessionsLost,
}

/// The outcome of one load run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadReport {
    /// Sending sessions.
    pub sessions: usize,
    /// Window per sending session.
    pub window: usize,
    /// Messages the run was asked to send.
    pub messages: u64,
    /// Whether receipts were requested.
    pub registered_delivery: bool,
    /// `gsm7` or `ucs2`.
    pub coding: String,
    /// Characters per message.
    pub text_len: usize,
    /// submit_sm sent.
    pub submitted: u64,
    /// Answered `ESME_ROK`.
    pub accepted: u64,
    /// Answered with an error status.
    pub refused: u64,
    /// Not answered within the response timeout.
    pub timeouts: u64,
    /// Lost with their session, or cut by the deadline.
    pub unanswered: u64,
    /// Error statuses by name (`ESME_RTHROTTLED`, or hex for vendor codes).
    pub errors: BTreeMap<String, u64>,
    /// Receipts expected: one per accepted submit when requested.
    pub receipts_expected: u64,
    /// Receipts matched to a submit.
    pub receipts_matched: u64,
    /// Receipts for unknown ids (or duplicates).
    pub receipts_unmatched: u64,
    /// deliver_sm that were not receipts.
    pub mo_received: u64,
    /// From the first submit to the end of the run, seconds.
    pub elapsed_s: f64,
    /// From the first submit to the last answer, seconds.
    pub submit_phase_s: f64,
    /// Answers per second over the submit phase.
    pub submits_per_s: f64,
    /// Matched receipts per second, from the first submit to the last receipt.
    pub receipts_per_s: f64,
    /// submit_sm → submit_sm_resp.
    pub submit_latency: LatencySummary,
    /// submit_sm → its receipt.
    pub receipt_latency: LatencySummary,
    /// Why it ended.
    pub stopped_by: StopReason,
}

impl LoadReport {
    /// The report as one line of JSON (no newline).
    pub fn to_json_line(&self) -> String {
        // Plain numbers, strings and maps with string keys: serialising
        // cannot fail, but an error is still reported rather than panicking.
        serde_json::to_string(self)
            .unwrap_or_else(|err| format!("{{\"error\":\"report not serialised: {err}\"}}"))
    }

    /// The report as a table for a terminal.
    pub fn to_table(&self) -> String {
        let mut t = String::new();
        let ms = |us: u64| us as f64 / 1000.0;
        let _ = writeln!(
            t,
            "load: {} session(s) × window {}, {} message(s), {} × {} chars, receipts {}",
            self.sessions,
            self.window,
            self.messages,
            self.coding,
            self.text_len,
            if self.registered_delivery {
                "on"
            } else {
                "off"
            }
        );
        let _ = writeln!(t, "stopped by      {:?}", self.stopped_by);
        let _ = writeln!(
            t,
            "submitted       {:>10}   accepted {}   refused {}   timeouts {}   unanswered {}",
            self.submitted, self.accepted, self.refused, self.timeouts, self.unanswered
        );
        for (status, count) in &self.errors {
            let _ = writeln!(t, "  {status:<24} {count:>10}");
        }
        if self.registered_delivery || self.receipts_matched > 0 {
            let _ = writeln!(
                t,
                "receipts        {:>10}   of {} expected   unmatched {}",
                self.receipts_matched, self.receipts_expected, self.receipts_unmatched
            );
        }
        if self.mo_received > 0 {
            let _ = writeln!(t, "MO received     {:>10}", self.mo_received);
        }
        let _ = writeln!(
            t,
            "elapsed         {:>10.3} s (submit phase {:.3} s)",
            self.elapsed_s, self.submit_phase_s
        );
        let _ = writeln!(t, "submits/s       {:>10.0}", self.submits_per_s);
        if self.registered_delivery {
            let _ = writeln!(t, "receipts/s      {:>10.0}", self.receipts_per_s);
        }
        let _ = writeln!(
            t,
            "latency (ms)    {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "min", "p50", "p90", "p99", "p99.9", "max", "mean"
        );
        let mut row = |name: &str, l: &LatencySummary| {
            let _ = writeln!(
                t,
                "  {name:<13} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}",
                ms(l.min_us),
                ms(l.p50_us),
                ms(l.p90_us),
                ms(l.p99_us),
                ms(l.p999_us),
                ms(l.max_us),
                ms(l.mean_us)
            );
        };
        row("submit→resp", &self.submit_latency);
        if self.registered_delivery {
            row("submit→dlr", &self.receipt_latency);
        }
        t
    }
}
