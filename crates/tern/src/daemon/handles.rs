//! The typed handles through which one stage of the daemon reaches
//! another: a stage that stored something the dispatcher or the outbox
//! must act on says so through the handle on the shared
//! [`super::node::Node`] (`node.dispatch().wake()`,
//! `node.outbox().news(client)`), and never touches the other stage's
//! state. Each is a wake-up, not a queue: what to act on is in the store.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tokio::sync::Notify;

/// How the other stages tell the dispatcher that a message may be due
/// now (accepted, replaced, taken over from a node that left, a reload):
/// it looks at once instead of at its next poll.
#[derive(Debug, Default)]
pub struct DispatchHandle(Notify);

impl DispatchHandle {
    /// Wakes the dispatcher (one wake-up is kept if it is busy).
    pub fn wake(&self) {
        self.0.notify_one();
    }

    /// Returns at the next [`DispatchHandle::wake`] (or at once, for one
    /// that came while the dispatcher was busy).
    pub(super) async fn woken(&self) {
        self.0.notified().await;
    }
}

/// How the other stages tell the outbox that a client is owed something
/// new (a receipt or MO stored, here or, on a shared store, by another
/// node) or that a receiving session bound: it looks at that client at
/// once instead of at its next listing.
#[derive(Debug, Default)]
pub struct OutboxHandle {
    /// Clients with news since the outbox last looked.
    news: Mutex<HashSet<String>>,
    wake: Notify,
    /// Receiving sessions bound since start: a new one ends the outbox's
    /// backoff (the client that failed may be back).
    receivers_bound: AtomicUsize,
}

impl OutboxHandle {
    /// Notes that `client`'s outbox has something new, and wakes the
    /// outbox.
    pub fn news(&self, client: &str) {
        self.news
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(client.to_owned());
        self.wake.notify_one();
    }

    /// A receiving session of `client` bound: its outbox is read again,
    /// and every client's backoff ends.
    pub fn receiver_bound(&self, client: &str) {
        self.receivers_bound.fetch_add(1, Ordering::Relaxed);
        self.news(client);
    }

    /// Returns at the next news (or at once, for news that came while the
    /// outbox was busy).
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Receiving sessions bound since start.
    pub(super) fn receivers_bound(&self) -> usize {
        self.receivers_bound.load(Ordering::Relaxed)
    }

    /// The clients noted by [`OutboxHandle::news`] since the last call.
    pub(super) fn take_news(&self) -> Vec<String> {
        let mut news = self.news.lock().unwrap_or_else(|p| p.into_inner());
        let mut clients: Vec<String> = news.drain().collect();
        clients.sort();
        clients
    }
}
