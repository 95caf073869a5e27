//! Matching receipts to submits by message id.
//!
//! A receipt can arrive before the worker that submitted has read its
//! `submit_sm_resp` (they travel on different tasks, or on different
//! sessions with RX binds), so the book keeps both sides: ids waiting for
//! a receipt, and receipts waiting for their id. Ids are compared trimmed
//! and lower-cased, as Tern must (VENDORS.md: case varies by vendor).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::latency::Samples;

/// Receipts kept for ids not seen (yet); more are counted as unmatched at
/// once, so a peer flooding unknown receipts cannot grow the book.
const EARLY_LIMIT: usize = 100_000;

/// The id in the form both sides are compared in.
pub(crate) fn normalise(id: &str) -> String {
    id.trim().to_ascii_lowercase()
}

#[derive(Debug, Default)]
struct Pages {
    /// Accepted submits awaiting their receipt: id → when sent.
    awaiting: HashMap<String, Instant>,
    /// Receipts for ids not (yet) known: id → when received.
    early: HashMap<String, Instant>,
    latencies: Samples,
    matched: u64,
    /// Receipts beyond the early limit.
    overflow: u64,
    mo: u64,
    last_receipt: Option<Instant>,
}

/// The book; shared by workers and receipt listeners.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pages: Mutex<Pages>,
    /// Woken at every match.
    progress: Notify,
}

impl Book {
    fn pages(&self) -> MutexGuard<'_, Pages> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A submit sent at `sent` was accepted with `id`.
    pub(crate) fn submitted(&self, id: &str, sent: Instant) {
        let id = normalise(id);
        let mut pages = self.pages();
        match pages.early.remove(&id) {
            Some(at) => {
                pages.latencies.record(at.saturating_duration_since(sent));
                pages.matched += 1;
                drop(pages);
                self.progress.notify_one();
            }
            None => {
                pages.awaiting.insert(id, sent);
            }
        }
    }

    /// A receipt for `id` arrived at `at`.
    pub(crate) fn receipt(&self, id: &str, at: Instant) {
        let id = normalise(id);
        let mut pages = self.pages();
        pages.last_receipt = Some(at);
        match pages.awaiting.remove(&id) {
            Some(sent) => {
                pages.latencies.record(at.saturating_duration_since(sent));
                pages.matched += 1;
                drop(pages);
                self.progress.notify_one();
            }
            None if pages.early.len() < EARLY_LIMIT => {
                pages.early.insert(id, at);
            }
            None => pages.overflow += 1,
        }
    }

    /// A deliver_sm that is not a receipt arrived.
    pub(crate) fn mo(&self) {
        self.pages().mo += 1;
    }

    pub(crate) fn matched(&self) -> u64 {
        self.pages().matched
    }

    /// Waits until `expected` receipts matched, or `until`.
    pub(crate) async fn wait_for(&self, expected: u64, until: Instant) -> bool {
        loop {
            if self.matched() >= expected {
                return true;
            }
            tokio::select! {
                () = self.progress.notified() => {}
                () = tokio::time::sleep_until(until) => return self.matched() >= expected,
            }
        }
    }

    /// What the report needs: latencies, matched, unmatched, MO, last receipt.
    pub(crate) fn close(&self) -> (Samples, u64, u64, u64, Option<Instant>) {
        let mut pages = self.pages();
        let unmatched = pages.early.len() as u64 + pages.overflow;
        (
            std::mem::take(&mut pages.latencies),
            pages.matched,
            unmatched,
            pages.mo,
            pages.last_receipt,
        )
    }
}
