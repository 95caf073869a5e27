//! What every part of a running node shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tern_router::engine::Router;
use tern_router::Profile;
use tern_session::SessionHandle;
use tern_storage::SledStore;
use tokio::sync::Notify;

/// The running node's shared parts.
#[derive(Debug)]
pub struct Node {
    /// The message store.
    pub store: SledStore,
    /// The routing engine.
    pub router: Router,
    /// Each upstream's profile, for reading its receipts.
    pub profiles: HashMap<String, Arc<Profile>>,
    /// Client sessions that may receive deliver_sm, by account.
    receivers: Mutex<HashMap<String, Vec<SessionHandle>>>,
    /// Wakes the dispatcher when a message was accepted.
    pub dispatch: Notify,
    /// Wakes the outbox when something is owed or a receiver bound.
    pub outbox: Notify,
    /// Striped locks: one task at a time updates a given message (the
    /// store's rule), e.g. when receipts for two parts arrive together.
    message_locks: Vec<tokio::sync::Mutex<()>>,
}

impl Node {
    /// A node over its store and router.
    pub fn new(
        store: SledStore,
        router: Router,
        profiles: HashMap<String, Arc<Profile>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            router,
            profiles,
            receivers: Mutex::default(),
            dispatch: Notify::new(),
            outbox: Notify::new(),
            message_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        })
    }

    fn any_base(&self, upstream: &str) -> bool {
        self.profiles
            .get(upstream)
            .is_some_and(|p| p.message_id.receipt_id_any_base)
    }

    /// The message an upstream's id belongs to, as its profile says ids
    /// may differ between submit_sm_resp and receipts.
    pub fn lookup(
        &self,
        upstream: &str,
        id: &str,
    ) -> Result<Option<tern_storage::TernId>, tern_storage::StoreError> {
        if self.any_base(upstream) {
            self.store.lookup_upstream_any_base(upstream, id)
        } else {
            self.store.lookup_upstream(upstream, id)
        }
    }

    /// The receipt held for an upstream id, if one came early.
    pub async fn take_held(
        &self,
        upstream: &str,
        id: &str,
    ) -> Result<Option<tern_storage::UnmatchedReceipt>, tern_storage::StoreError> {
        if self.any_base(upstream) {
            self.store.take_unmatched_any_base(upstream, id).await
        } else {
            self.store.take_unmatched(upstream, id).await
        }
    }

    /// Holds `id` for one task's read-modify-write.
    pub async fn lock_message(&self, id: tern_storage::TernId) -> tokio::sync::MutexGuard<'_, ()> {
        let stripe = (id.as_u64() % self.message_locks.len() as u64) as usize;
        self.message_locks[stripe].lock().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<SessionHandle>>> {
        self.receivers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a session that can receive (receiver or transceiver).
    pub fn add_receiver(&self, account: &str, session: SessionHandle) {
        self.lock()
            .entry(account.to_owned())
            .or_default()
            .push(session);
        self.outbox.notify_one();
    }

    /// A live receiving session of `account`, if any.
    pub fn receiver(&self, account: &str) -> Option<SessionHandle> {
        let mut receivers = self.lock();
        let sessions = receivers.get_mut(account)?;
        sessions.retain(|s| !s.is_closed());
        sessions.first().cloned()
    }
}
