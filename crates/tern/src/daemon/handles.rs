//! The typed handles through which one stage of the daemon reaches
//! another: a stage that stored something the dispatcher or the outbox
//! must act on says so through the handle on the shared
//! [`super::node::Node`] (`node.dispatch().wake()`,
//! `node.outbox().news(client)`), and never touches the other stage's
//! state. Each is a wake-up, not a queue: what to act on is in the store.

use std::collections::HashMap;
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
    /// Clients with news since the outbox last looked, and from where in
    /// their outbox that news may lie.
    news: Mutex<HashMap<String, Since>>,
    wake: Notify,
    /// Receiving sessions bound since start: a new one ends the outbox's
    /// backoff (the client that failed may be back).
    receivers_bound: AtomicUsize,
}

/// Where in a client's outbox news may lie: from a place the store
/// handed out, or anywhere (news from another node, an MO, a receiver
/// that bound). The outbox reads again from there, not from the oldest
/// item, to find an item stored behind its cursor: with a thousand items
/// out, a read from the oldest mostly read again what was out already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Anywhere: read from the oldest item.
    Oldest,
    /// At this place or after it.
    Place(u64),
}

impl Since {
    /// The earlier of the two.
    pub fn earliest(self, other: Since) -> Since {
        match (self, other) {
            (Since::Place(a), Since::Place(b)) => Since::Place(a.min(b)),
            _ => Since::Oldest,
        }
    }
}

impl OutboxHandle {
    /// Notes that `client`'s outbox has something new, anywhere in it, and
    /// wakes the outbox.
    pub fn news(&self, client: &str) {
        self.noted(client, Since::Oldest);
    }

    /// Notes that the store put an item for `client` at `place`, and wakes
    /// the outbox.
    pub fn stored(&self, client: &str, place: u64) {
        self.noted(client, Since::Place(place));
    }

    fn noted(&self, client: &str, since: Since) {
        self.news
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(client.to_owned())
            .and_modify(|s| *s = s.earliest(since))
            .or_insert(since);
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

    /// The clients noted by [`OutboxHandle::news`] and
    /// [`OutboxHandle::stored`] since the last call, each with the
    /// earliest place noted.
    pub(super) fn take_news(&self) -> Vec<(String, Since)> {
        let mut news = self.news.lock().unwrap_or_else(|p| p.into_inner());
        let mut clients: Vec<(String, Since)> = news.drain().collect();
        clients.sort_by(|a, b| a.0.cmp(&b.0));
        clients
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// News gathered between two looks keeps, per client, the earliest
    /// place named, and "anywhere" once any news named none.
    #[test]
    fn news_keeps_the_earliest_place_per_client() {
        let handle = OutboxHandle::default();
        handle.stored("acme", 7);
        handle.stored("acme", 3);
        handle.stored("beta", 9);
        assert_eq!(
            handle.take_news(),
            [
                ("acme".to_owned(), Since::Place(3)),
                ("beta".to_owned(), Since::Place(9))
            ]
        );
        handle.stored("acme", 2);
        handle.news("acme");
        handle.stored("acme", 1);
        assert_eq!(handle.take_news(), [("acme".to_owned(), Since::Oldest)]);
        assert!(handle.take_news().is_empty());
    }
}
