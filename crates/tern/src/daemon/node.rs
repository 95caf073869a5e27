//! What every part of a running node shares.
//!
//! What a reload may change (routes, profiles, upstreams, accounts) sits
//! behind an [`ArcSwap`]: a task loads the current [`Routing`] once per
//! message and keeps it to the end of that message's step, so one message
//! never sees half of an old config and half of a new one, and nothing
//! waits on a lock while a reload swaps it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tern_router::engine::Router;
use tern_router::Profile;
use tern_session::BindType;
use tern_session::SessionHandle;
use tern_storage::Store;
use tokio_util::task::TaskTracker;

use super::auth::Accounts;
use super::cluster::Cluster;
use super::handles::{DispatchHandle, OutboxHandle};
use super::transaction::Transactions;
use super::writing::AttemptWrites;
use crate::admin::Metrics;

/// Stripes of the per-message locks. A holder keeps its stripe for a few
/// store round trips: microseconds on sled, milliseconds on a Redis that
/// fsyncs each write, so there are enough that hundreds of receipts in
/// flight rarely wait on each other.
const MESSAGE_LOCKS: usize = 4096;

/// The parts of a node a reload replaces together.
#[derive(Debug)]
pub struct Routing {
    /// The routing engine over the running upstreams.
    pub router: Router,
    /// Each upstream's profile, for reading its receipts.
    pub profiles: HashMap<String, Arc<Profile>>,
    /// The generic profile, for a receipt from an upstream no longer
    /// configured (it was removed while messages were out there).
    pub generic: Arc<Profile>,
}

impl Routing {
    /// The profile to read `upstream`'s PDUs with.
    pub fn profile(&self, upstream: &str) -> &Arc<Profile> {
        self.profiles.get(upstream).unwrap_or(&self.generic)
    }
}

/// A bound client session, as the node tracks it.
#[derive(Debug, Clone)]
pub struct ClientSession {
    /// The account it bound as.
    pub account: String,
    /// The authenticator's tag for the password it used.
    pub credential: u64,
    /// How it bound.
    pub bind_type: BindType,
    /// The session.
    pub handle: SessionHandle,
}

/// A task's hold on one message (see [`Node::lock_message`]); the lease,
/// if any, is released when it is dropped.
#[derive(Debug)]
pub struct MessageGuard<'a> {
    _local: tokio::sync::MutexGuard<'a, ()>,
    lease: Option<(Cluster, String)>,
    tasks: &'a TaskTracker,
}

impl Drop for MessageGuard<'_> {
    fn drop(&mut self) {
        if let Some((cluster, name)) = self.lease.take() {
            // Drop cannot wait: release in the background; until then the
            // lease only makes another node's task wait a few ms more.
            self.tasks.spawn(async move {
                let _ = cluster.coordinator.release(&name).await;
            });
        }
    }
}

/// The running node's shared parts.
#[derive(Debug)]
pub struct Node {
    /// The message store.
    store: Store,
    routing: ArcSwap<Routing>,
    /// Client accounts (shared with the listeners' authenticator).
    accounts: Accounts,
    /// Every bound client session.
    clients: Mutex<Vec<ClientSession>>,
    /// Round-robin position among an account's receivers.
    next_receiver: AtomicUsize,
    /// Wakes the dispatcher when a message may be due.
    dispatch: DispatchHandle,
    /// Tells the outbox that something is owed or a receiver bound.
    outbox: OutboxHandle,
    /// The attempts being written here, for receipts that come first.
    attempt_writes: AttemptWrites,
    /// Striped locks: one task at a time updates a given message (the
    /// store's rule), e.g. when receipts for two parts arrive together.
    message_locks: Vec<tokio::sync::Mutex<()>>,
    /// What operators scrape.
    metrics: Arc<Metrics>,
    /// The other nodes, on a shared store.
    cluster: Option<Cluster>,
    /// Submits of transaction-mode clients waiting for their upstream.
    transactions: Transactions,
    /// The node's tasks that belong to no stage.
    tasks: TaskTracker,
}

/// An account's terms for one submit (see [`Node::submit_terms`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct SubmitTerms {
    /// The form its ids are given in, kept on the message.
    pub id_format: tern_storage::IdFormat,
    /// Transaction mode: how long the answer waits for the upstream.
    pub transaction: Option<std::time::Duration>,
}

impl Node {
    /// A node over its store, first routing and accounts.
    pub fn new(
        store: Store,
        routing: Routing,
        accounts: Accounts,
        metrics: Arc<Metrics>,
        cluster: Option<Cluster>,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            routing: ArcSwap::from_pointee(routing),
            accounts,
            clients: Mutex::default(),
            next_receiver: AtomicUsize::new(0),
            dispatch: DispatchHandle::default(),
            outbox: OutboxHandle::default(),
            attempt_writes: AttemptWrites::default(),
            message_locks: (0..MESSAGE_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            metrics,
            cluster,
            transactions: Transactions::default(),
            tasks,
        })
    }

    /// The message store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Client accounts in force (a reload replaces them in place).
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// What operators scrape.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The other nodes, on a shared store; `None` on sled.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Submits of transaction-mode clients waiting for their upstream's
    /// verdict.
    pub fn transactions(&self) -> &Transactions {
        &self.transactions
    }

    /// Where a task that belongs to no stage is spawned, so shutdown waits
    /// for it.
    pub fn tasks(&self) -> &TaskTracker {
        &self.tasks
    }

    /// Wakes the dispatch stage: a message may be due now.
    pub fn dispatch(&self) -> &DispatchHandle {
        &self.dispatch
    }

    /// Tells the outbox stage that a client is owed something new.
    pub fn outbox(&self) -> &OutboxHandle {
        &self.outbox
    }

    /// The attempts this node is writing: the dispatcher enters one from
    /// its submit_sm_resp until the store has it; a receipt that matches
    /// nothing waits for it there instead of being held.
    pub(super) fn attempt_writes(&self) -> &AttemptWrites {
        &self.attempt_writes
    }

    /// How `client` is shown Tern's ids now (hex for an account a reload
    /// removed: its receipts still go out while they wait in its outbox).
    pub fn id_format(&self, client: &str) -> tern_storage::IdFormat {
        self.submit_terms(client).id_format
    }

    /// What a submit from `client` is taken under now: one look at the
    /// accounts in force, so a submit reads its account once and a reload
    /// cannot give one submit the terms of two configurations.
    pub fn submit_terms(&self, client: &str) -> SubmitTerms {
        let accounts = self.accounts.current();
        let account = accounts.iter().find(|a| a.system_id == client);
        SubmitTerms {
            id_format: account.map(|a| a.id_format).unwrap_or_default(),
            transaction: account.and_then(|a| a.transaction),
        }
    }

    /// The id `text` a client of `client` sent (query_sm, cancel_sm,
    /// replace_sm) names, in either form: see [`tern_storage::IdFormat::resolve`]
    /// (a string both forms read is decided by which names a message of
    /// `client`). `None`: not an id in either form.
    ///
    /// The store's read is async, `resolve`'s check is not: the forms are
    /// looked up first (the client's own, then the other only if needed),
    /// and `resolve` decides from what was found.
    pub async fn client_id(&self, client: &str, text: &str) -> Option<tern_storage::TernId> {
        let format = self.id_format(client);
        let mut known = None;
        for id in [format.parse(text), format.other().parse(text)]
            .into_iter()
            .flatten()
        {
            if matches!(self.store.get(id).await, Ok(Some(record)) if record.client == client) {
                known = Some(id);
                break;
            }
        }
        format.resolve(text, |id| known == Some(id))
    }

    /// The routing now in force; keep it for one message's step.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    /// Puts a reloaded routing in force for the next message.
    pub fn set_routing(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    /// The message an upstream's id belongs to, as its profile says ids
    /// may differ between submit_sm_resp and receipts.
    pub async fn lookup(
        &self,
        upstream: &str,
        id: &str,
    ) -> Result<Option<tern_storage::TernId>, tern_storage::StoreError> {
        if self.any_base(upstream) {
            self.store.lookup_upstream_any_base(upstream, id).await
        } else {
            self.store.lookup_upstream(upstream, id).await
        }
    }

    fn any_base(&self, upstream: &str) -> bool {
        self.routing
            .load()
            .profile(upstream)
            .message_id
            .receipt_id_any_base
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

    /// Holds `id` for one task's read-modify-write: this node's stripe
    /// lock, and on a shared store also a lease on the message, so that a
    /// task of another node waits as well (two nodes applying one held
    /// receipt would relay it twice).
    pub async fn lock_message(&self, id: tern_storage::TernId) -> MessageGuard<'_> {
        let mut guard = self.lock_local(id).await;
        self.lease_message(&mut guard, id).await;
        guard
    }

    /// Holds `id` on this node only (its stripe lock): enough for a step
    /// whose write is refused when another node wrote the message since
    /// its read (a receipt's, `Store::record_decided_receipt`), and spares
    /// it the lease's round trip.
    pub async fn lock_local(&self, id: tern_storage::TernId) -> MessageGuard<'_> {
        let stripe = (id.as_u64() % self.message_locks.len() as u64) as usize;
        MessageGuard {
            _local: self.message_locks[stripe].lock().await,
            lease: None,
            tasks: &self.tasks,
        }
    }

    /// Adds the message's lease, on a shared store, to a hold of this
    /// node's lock on it (see [`Node::lock_message`]).
    pub async fn lease_message(&self, guard: &mut MessageGuard<'_>, id: tern_storage::TernId) {
        let Some(cluster) = &self.cluster else {
            return;
        };
        let name = format!("message:{id}");
        // The holder is another node's task between a read and a write;
        // a holder that died frees it when the lease expires.
        let give_up = tokio::time::Instant::now() + cluster.lease_ttl;
        loop {
            match cluster.coordinator.acquire(&name, cluster.lease_ttl).await {
                Ok(true) => {
                    guard.lease = Some((cluster.clone(), name));
                    return;
                }
                Ok(false) if tokio::time::Instant::now() < give_up => {
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                Ok(false) => {
                    tracing::warn!(%id, "message lease still held elsewhere; going on without it");
                    return;
                }
                Err(err) => {
                    // The store's own writes will fail the same way.
                    tracing::warn!(%id, %err, "taking a message lease failed");
                    return;
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ClientSession>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tracks a bound client session until it closes.
    pub fn add_client(&self, session: ClientSession) {
        let receives = session.bind_type.can_receive();
        let account = session.account.clone();
        let mut clients = self.lock();
        clients.retain(|s| !s.handle.is_closed());
        clients.push(session);
        drop(clients);
        if receives {
            self.outbox.receiver_bound(&account);
        }
    }

    /// Every live client session.
    pub fn clients(&self) -> Vec<ClientSession> {
        let mut clients = self.lock();
        clients.retain(|s| !s.handle.is_closed());
        clients.clone()
    }

    /// Every live receiving session of `account`, starting at a different
    /// one each call (round robin over what is delivered).
    pub fn receivers(&self, account: &str) -> Vec<SessionHandle> {
        let mut clients = self.lock();
        clients.retain(|s| !s.handle.is_closed());
        let mut receivers: Vec<SessionHandle> = clients
            .iter()
            .filter(|s| s.account == account && s.bind_type.can_receive())
            .map(|s| s.handle.clone())
            .collect();
        if !receivers.is_empty() {
            let turn = self.next_receiver.fetch_add(1, Ordering::Relaxed) % receivers.len();
            receivers.rotate_left(turn);
        }
        receivers
    }
}
