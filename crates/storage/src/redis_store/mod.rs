//! The message store on Redis: one server, or a Redis Cluster, shared by
//! several Tern nodes.
//!
//! The same records as the sled backend (postcard-encoded
//! [`MessageRecord`]s), kept under the keys of [`layout`]. Each operation is
//! one Lua script over keys of one hash slot, so it is atomic on a single
//! server and on a cluster alike; operations that must touch two slots (an
//! attempt's upstream ids, a purge's index entries) write the index first,
//! so a crash between leaves an extra index entry, never a message that a
//! receipt cannot find.
//!
//! Durability is the server's: see [`RedisDurability`] and the storage
//! README. A write returns once Redis has answered it, which under the
//! policy means it is in the append-only file, fsynced (or on enough
//! replicas).
//!
//! Several nodes: ids carry the node id (see [`crate::id`]), and every
//! change to a record checks that the record is still what was read
//! (optimistic concurrency), so two nodes never both claim one message nor
//! claim one a client cancelled. At open, a node puts back in the ready
//! queue the messages *it* had claimed; those of a node that never comes
//! back are found through node membership leases (see [`coord`]).

mod cache;
mod conn;
pub mod coord;
mod inspect;
pub mod layout;
mod lua;
mod ready;
mod server_cpu;
mod stored;
mod writer;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::{HeldUnder, ReceiptWrite};
use crate::error::StoreError;
use crate::held;
use crate::id::{TernId, MAX_COUNTER};
use crate::mo::{HeldMo, MoGroup, MoHeader, MoPart};
use crate::record::{
    Attempt, MessageRecord, OutboxItem, Outcome, ReceiptUpdate, State, UnmatchedReceipt,
};
use crate::sled_store::{
    multi_records, now_ms, Accepted, NewMessage, QueueDepths, QueuedChange, Recovery, Replacement,
    Verification,
};
use crate::transition::{self, Change, Edit, TransitionError};
use crate::upstream_id::{candidates, forms, normalise};
use cache::Cache;
pub use conn::Step;
use conn::{bounded, AsyncConn, AsyncPool, Clients, READ_TIMEOUT, STEP};
use layout::{
    client_shard, counter_for, glob_escaped, id_shard, member, parse_member, upstream_field,
    upstream_shard, Layout, SHARDS,
};
use lua::{Apply, Group};
pub use server_cpu::server_cpu_seconds;
use writer::{Writer, Written};

/// Ids reserved per round trip to the shard's counter: a restart skips
/// the rest of a block, which costs ids, never uniqueness.
const ID_BLOCK: u64 = 1_000;

/// Outbox places reserved per round trip to a client's counter (as ids
/// are): a restart skips the rest of a block, which leaves a gap, never a
/// place used twice. Within a node places grow in the order handed out;
/// an item another node stores with a lower place lands behind the
/// outbox's cursor, which its news makes the outbox read again from the
/// oldest (see the daemon's outbox).
const SEQ_BLOCK: u64 = 1_000;

/// How often a change that lost a race re-reads and tries again before it
/// gives up with an error (each loss means another writer changed the
/// record in between; the callers keep one writer per message).
const RETRIES: usize = 32;

/// What became of a [`RedisStore::step_unless_held`].
enum Stepped {
    /// Written (the record as written), or nothing to write (`None`).
    Done(Option<Box<MessageRecord>>),
    /// Not written: a receipt is held under one of the ids checked.
    Held,
}

/// Which Redis deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server at this address (`redis://host:port`).
    Single(String),
    /// A Redis Cluster, found from these seed addresses; the durability
    /// check covers every address given, so give every primary.
    Cluster(Vec<String>),
}

/// When a write counts as acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisDurability {
    /// Every server must run with `appendonly yes` and `appendfsync
    /// always` (checked at open with CONFIG GET): Redis fsyncs its
    /// append-only file before it answers a write, so a write that
    /// returned survives a crash of Redis or of its host.
    AppendFsyncAlways,
    /// After each write, `WAIT replicas timeout`: the write is on that many
    /// replicas before it returns, or the call fails with
    /// [`StoreError::NotReplicated`]. Survives the loss of the primary (a
    /// replica with the write is promoted), not of every copy at once.
    /// Single server only for now: on a cluster WAIT must go to the
    /// primary of the slot just written, which this client does not route.
    Wait {
        /// Replicas that must have the write.
        replicas: u32,
        /// How long to wait for them.
        timeout: Duration,
    },
}

/// How to open a Redis store.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// Where.
    pub topology: RedisTopology,
    /// This node's id, the top 16 bits of every message id it makes.
    pub node: u16,
    /// Prefix of every key (no `{` or `}`): several stores, or test runs,
    /// may share a server under different prefixes.
    pub prefix: String,
    /// When a write counts as done.
    pub durability: RedisDurability,
    /// For `rediss://` addresses: the CA certificates (PEM) the servers'
    /// certificates must chain to, when not the system's roots (a private
    /// CA, as managed Redis services and self-run clusters use).
    pub tls_ca: Option<Vec<u8>>,
}

/// The Redis-backed message store.
pub struct RedisStore {
    clients: Clients,
    conn: AsyncPool,
    layout: Layout,
    node: u16,
    durability: RedisDurability,
    /// Per shard, the next id counter index and the end of the reserved
    /// block.
    ids: Vec<tokio::sync::Mutex<(u64, u64)>>,
    /// The first address given, parsed: its credentials serve the
    /// connections the cluster client does not make (notifications).
    seed: redis::ConnectionInfo,
    /// Writes gathered across messages, one call per step and slot.
    writer: Writer,
    /// The records of the messages this node is sending.
    cache: Cache,
    /// Per client, the next outbox place and the end of the reserved
    /// block.
    seqs: tokio::sync::Mutex<HashMap<String, (u64, u64)>>,
    /// Whether this is a cluster (a write's groups in several slots are
    /// separate calls there).
    cluster: bool,
    /// The client whose ready queue this node's last claim served first:
    /// the next claim starts with the one after it (`ready.rs`).
    last_first: std::sync::Mutex<Option<String>>,
    /// The look made beside the last full claim's write, for the next
    /// claim (`ready.rs`, [`ready::KeptLook`]).
    kept_look: std::sync::Mutex<Option<ready::KeptLook>>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("layout", &self.layout)
            .field("node", &self.node)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(value).map_err(StoreError::encode::<T>)
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Decode {
        what,
        reason: e.to_string(),
    })
}

fn bad(what: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Decode {
        what,
        reason: reason.into(),
    }
}

fn parse_u64(what: &'static str, bytes: &[u8]) -> Result<u64, StoreError> {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(what, format!("{:?}", String::from_utf8_lossy(bytes))))
}

/// A flat `HGETALL` answer as (field, value) pairs.
fn pairs(flat: Vec<Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::with_capacity(flat.len() / 2);
    let mut it = flat.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

/// After a write on `conn`: under the WAIT policy, waits until the
/// replicas have it, or fails with [`StoreError::NotReplicated`]. Shared by
/// the store's writes and the coordinator's leases (a lease a failover
/// forgot could be taken twice).
async fn settle(durability: RedisDurability, conn: &mut AsyncConn) -> Result<(), StoreError> {
    if let RedisDurability::Wait { replicas, timeout } = durability {
        let acked: u64 = redis::cmd("WAIT")
            .arg(replicas)
            .arg(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
            .query_async(conn)
            .await?;
        if acked < u64::from(replicas) {
            return Err(StoreError::NotReplicated {
                acked,
                wanted: replicas,
            });
        }
    }
    Ok(())
}

/// Loads every script of the store (on every primary of a cluster: redis-rs
/// sends SCRIPT LOAD to all of them), so the steps' EVALSHAs find them: a
/// script not loaded yet costs its first call two more round trips (the
/// NOSCRIPT answer, then SCRIPT LOAD and the call again), and which ones
/// were loaded would depend on what ran on the server before.
async fn load_scripts(conn: &AsyncPool) -> Result<(), StoreError> {
    let mut c = conn.get();
    for script in lua::scripts().into_iter().chain(coord::scripts()) {
        bounded(script.load_async(&mut c)).await?;
    }
    Ok(())
}

/// `address` without the user and password it may carry, for errors.
fn redacted(address: &str) -> String {
    match (address.split_once("://"), address.rfind('@')) {
        (Some((scheme, _)), Some(at)) => format!("{scheme}://{}", &address[at + 1..]),
        _ => address.to_owned(),
    }
}

/// Checks one server's persistence against the policy.
async fn check_durability(
    address: &str,
    policy: RedisDurability,
    tls_ca: Option<&[u8]>,
) -> Result<(), StoreError> {
    let refuse = |reason: String| StoreError::Durability {
        address: redacted(address),
        reason,
    };
    match policy {
        RedisDurability::AppendFsyncAlways => {
            let client = conn::single_client(address, tls_ca)?;
            let config = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(READ_TIMEOUT)
                .set_response_timeout(READ_TIMEOUT);
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            for (name, wanted) in [("appendonly", "yes"), ("appendfsync", "always")] {
                let answer: HashMap<String, String> = redis::cmd("CONFIG")
                    .arg("GET")
                    .arg(name)
                    .query_async(&mut conn)
                    .await?;
                let found = answer.get(name).map(String::as_str).unwrap_or("");
                if found != wanted {
                    return Err(refuse(format!(
                        "{name} is {found:?}, {wanted:?} is required"
                    )));
                }
            }
        }
        RedisDurability::Wait { .. } => {}
    }
    Ok(())
}

impl RedisStore {
    /// Connects, checks the servers' persistence against the policy, and
    /// recovers: messages this node had claimed go back to the ready queue.
    pub async fn open(options: RedisOptions) -> Result<(Self, Recovery), StoreError> {
        let store = Self::connect(options).await?;
        let recovery = store.recover().await?;
        Ok((store, recovery))
    }

    /// Connects and checks the servers' persistence, without recovering.
    /// A node sharing the store joins first ([`Coordinator::join`], which
    /// refuses a node id another live node has) and recovers after, so a
    /// duplicate start never takes a live node's claims.
    ///
    /// [`Coordinator::join`]: coord::Coordinator::join
    pub async fn connect(options: RedisOptions) -> Result<Self, StoreError> {
        let layout = Layout::new(&options.prefix).ok_or_else(|| StoreError::BadKey {
            what: "Redis key prefix",
            value: options.prefix.clone(),
        })?;
        let (addresses, cluster) = match &options.topology {
            RedisTopology::Single(address) => (vec![address.clone()], false),
            RedisTopology::Cluster(addresses) => (addresses.clone(), true),
        };
        if cluster && matches!(options.durability, RedisDurability::Wait { .. }) {
            return Err(StoreError::Durability {
                address: addresses
                    .iter()
                    .map(|a| redacted(a))
                    .collect::<Vec<_>>()
                    .join(","),
                reason: "the WAIT policy is for a single server; use appendfsync always on every \
                         cluster primary"
                    .to_owned(),
            });
        }
        for address in &addresses {
            check_durability(address, options.durability, options.tls_ca.as_deref()).await?;
        }
        let clients = Clients::new(&addresses, cluster, options.tls_ca.as_deref())?;
        let conn = AsyncPool::open(&clients).await?;
        load_scripts(&conn).await?;
        let writer = Writer::start(&conn, cluster, options.durability);
        // Built as a client is, so a TLS seed carries its trusted CA.
        let seed = match addresses.first() {
            Some(address) => conn::single_client(address, options.tls_ca.as_deref())?
                .get_connection_info()
                .clone(),
            None => return Err(StoreError::redis("no Redis address given")),
        };
        let store = Self {
            clients,
            conn,
            layout,
            node: options.node,
            durability: options.durability,
            ids: (0..SHARDS)
                .map(|_| tokio::sync::Mutex::new((0, 0)))
                .collect(),
            seed,
            writer,
            cache: Cache::default(),
            seqs: tokio::sync::Mutex::new(HashMap::new()),
            cluster,
            last_first: std::sync::Mutex::new(None),
            kept_look: std::sync::Mutex::new(None),
        };
        Ok(store)
    }

    fn conn(&self) -> AsyncConn {
        self.conn.get()
    }

    /// One read command's answer, bounded by [`READ_TIMEOUT`].
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn();
        bounded(cmd.query_async(&mut conn)).await
    }

    /// After a write: under the WAIT policy, waits for the replicas.
    async fn settle(&self, conn: &mut AsyncConn) -> Result<(), StoreError> {
        settle(self.durability, conn).await
    }

    /// Runs one [`Apply`] call; whether each group was applied.
    async fn apply(&self, call: &Apply) -> Result<Vec<bool>, StoreError> {
        if call.len() == 0 {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let applied: Vec<redis::Value> = call.run(&mut conn).await?;
        self.settle(&mut conn).await?;
        Ok(applied
            .iter()
            .map(|a| writer::written(Some(a)) == Written::Applied)
            .collect())
    }

    /// One group, applied or not: in one call with the other writes of the
    /// current step queued meanwhile.
    async fn apply_one(&self, group: Group) -> Result<bool, StoreError> {
        let step = STEP.try_with(|s| *s).unwrap_or(Step::Other);
        Ok(self.writer.write(step, vec![group]).await? == Written::Applied)
    }

    /// The round trips this store made so far, by step of a message's
    /// life (`tern_redis_round_trips_total`).
    pub fn round_trips(&self) -> Vec<(Step, u64)> {
        self.conn.round_trips().snapshot()
    }

    /// The next id for a message of `client`.
    async fn next_id(&self, client: &str) -> Result<TernId, StoreError> {
        let shard = client_shard(client);
        let exhausted = StoreError::IdsExhausted(self.node);
        let slot = self
            .ids
            .get(shard as usize)
            .ok_or(StoreError::IdsExhausted(self.node))?;
        let mut block = slot.lock().await;
        if block.0 >= block.1 {
            let mut conn = self.conn();
            let end: u64 = redis::cmd("INCRBY")
                .arg(self.layout.id_counter(shard, self.node))
                .arg(ID_BLOCK)
                .query_async(&mut conn)
                .await?;
            self.settle(&mut conn).await?;
            *block = (end.saturating_sub(ID_BLOCK), end);
        }
        let n = block.0;
        block.0 += 1;
        let counter = counter_for(shard, n).filter(|c| *c <= MAX_COUNTER);
        counter
            .and_then(|c| TernId::new(self.node, c))
            .ok_or(exhausted)
    }

    /// The record's stored octets and the record (acks not merged).
    async fn read(&self, id: TernId) -> Result<Option<(Vec<u8>, MessageRecord)>, StoreError> {
        let raw: Option<Vec<u8>> = self
            .query(redis::cmd("GET").arg(self.layout.message(id)))
            .await?;
        match raw {
            None => Ok(None),
            Some(raw) => {
                let record = stored::decode(&raw)?;
                Ok(Some((raw, record)))
            }
        }
    }

    /// Reads records of one shard at once (same slot, so one MGET).
    async fn read_many(
        &self,
        ids: &[TernId],
    ) -> Result<Vec<Option<(Vec<u8>, MessageRecord)>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| self.layout.message(*id)).collect();
        let raws: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(keys)).await?;
        raws.into_iter()
            .map(|raw| match raw {
                None => Ok(None),
                Some(raw) => {
                    let record = stored::decode(&raw)?;
                    Ok(Some((raw, record)))
                }
            })
            .collect()
    }

    /// Puts back in the ready queue what this node had claimed (done by
    /// [`RedisStore::open`]; after [`RedisStore::connect`], once joined).
    pub async fn recover(&self) -> Result<Recovery, StoreError> {
        self.migrate_legacy_ready().await?;
        self.drop_id_sets().await?;
        let requeued = self.requeue_claimed_by(self.node, RETRIES).await?;
        Ok(Recovery { requeued })
    }

    /// Puts back in the ready queue the messages `node` had claimed, each
    /// only if its record is unchanged since read and it is still in
    /// flight; a message that changed meanwhile is read again, up to
    /// `tries` times. Returns how many went back.
    ///
    /// For this node's own claims at open, several tries are right: nobody
    /// else claims with our id. For another node's (orphans), pass 1: a
    /// record that changed may mean that node is back and claimed it again,
    /// so it is left for the next pass, which checks membership again.
    pub(super) async fn requeue_claimed_by(
        &self,
        node: u16,
        tries: usize,
    ) -> Result<usize, StoreError> {
        let mut requeued = 0;
        for shard in 0..SHARDS {
            let members: Vec<Vec<u8>> = redis::cmd("ZRANGEBYSCORE")
                .arg(self.layout.in_flight(shard))
                .arg(node)
                .arg(node)
                .query_async(&mut self.conn())
                .await?;
            for m in members {
                let Some(id) = parse_member(&m) else { continue };
                if self.requeue_one(node, shard, id, tries).await? {
                    requeued += 1;
                }
            }
        }
        Ok(requeued)
    }

    /// Puts back `id`, listed as claimed by `node` in `shard`'s in-flight
    /// set, as [`RedisStore::requeue_claimed_by`] says; whether it went.
    /// Another node's claim goes back only while it is still that node's
    /// orphan, checked after each read (`coord::still_orphaned`).
    pub(super) async fn requeue_one(
        &self,
        node: u16,
        shard: u64,
        id: TernId,
        tries: usize,
    ) -> Result<bool, StoreError> {
        for _ in 0..tries {
            let mut group = Group::default();
            let read = self.read(id).await?;
            if node != self.node && !self.still_orphaned(node, shard, id).await? {
                return Ok(false);
            }
            let Some((raw, mut record)) = read else {
                // No record: only the stale entry goes.
                group.zrem(self.layout.in_flight(shard), &member(id));
                self.apply_one(group).await?;
                return Ok(false);
            };
            record.state = State::Queued;
            group
                .check_record(self.layout.message(id), &raw)
                .check_member(self.layout.in_flight(shard), &member(id))
                .zrem(self.layout.in_flight(shard), &member(id))
                .set(
                    self.layout.message(id),
                    stored::encode_at(&record, stored::next(&raw))?,
                );
            self.enqueue(
                &mut group,
                &record.client,
                record.not_before_ms,
                &member(id),
            );
            if self.apply_one(group).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The record of `id` with the times its client took its relayed
    /// receipts: one script, so the two keys are read at one instant.
    ///
    /// A record this node keeps (see [`cache`]) with no relayed receipt
    /// waiting for its client's answer is the stored one: no round trip.
    pub async fn get(&self, id: TernId) -> Result<Option<MessageRecord>, StoreError> {
        if let Some((_, record)) = self.cache.get(id) {
            if record.relayed.iter().all(|r| r.acked_ms.is_some()) {
                return Ok(Some(record));
            }
        }
        let mut call = lua::GET_RECORD.key(self.layout.message(id));
        call.key(self.layout.acks(id));
        let mut conn = self.conn();
        let answer: Vec<redis::Value> = STEP
            .scope(Step::Get, bounded(call.invoke_async(&mut conn)))
            .await?;
        let mut it = answer.into_iter();
        let Some(raw) = it.next() else {
            return Ok(None);
        };
        let raw: Vec<u8> = redis::from_redis_value(&raw)?;
        let acks: Vec<Vec<u8>> = match it.next() {
            Some(v) => redis::from_redis_value(&v)?,
            None => Vec::new(),
        };
        let mut record = stored::decode(&raw)?;
        self.cache.refresh(&record, &raw);
        for (seq, at) in pairs(acks) {
            let (seq, at) = (parse_u64("ack seq", &seq)?, parse_u64("ack time", &at)?);
            if let Some(relayed) = record.relayed.iter_mut().find(|r| r.outbox_seq == seq) {
                relayed.acked_ms = Some(at);
            }
        }
        Ok(Some(record))
    }

    /// Accepts a message: in Redis under the durability policy when this
    /// returns. A resubmission within its dedup window gets the first
    /// message's id and stores nothing.
    pub async fn accept(&self, message: NewMessage, now_ms: u64) -> Result<Accepted, StoreError> {
        STEP.scope(Step::Accept, self.accept_scoped(message, now_ms))
            .await
    }

    async fn accept_scoped(
        &self,
        message: NewMessage,
        now_ms: u64,
    ) -> Result<Accepted, StoreError> {
        let id = self.next_id(&message.client).await?;
        let shard = id_shard(id);
        let (mut record, dedup) = message.into_record(id, now_ms, None);
        let m = member(id);
        let Some((key, window)) = dedup else {
            let mut group = Group::default();
            self.stage(&mut group, transition::accept(record), 1)?;
            if self.cluster {
                group.sadd(self.layout.all(shard), &m);
            }
            self.apply_one(group).await?;
            return Ok(Accepted {
                id,
                duplicate: false,
            });
        };
        record.dedup_key = Some(key.clone());
        let field = dedup_field(&record.client, &key);
        let message_prefix = {
            let mut k = self.layout.message(id);
            k.truncate(k.len() - m.len());
            k
        };
        let mut conn = self.conn();
        let (first, duplicate): (String, i64) = lua::ACCEPT_DEDUP
            .key(self.layout.message(id))
            .key(self.layout.ready(&record.client))
            .key(self.layout.expiry(shard))
            .key(self.layout.dedup(shard))
            .key(self.layout.all(shard))
            .key(self.layout.ready_clients(shard))
            .arg(field)
            .arg(&m)
            .arg(now_ms)
            .arg(window.as_millis() as u64)
            .arg(stored::encode_at(&record, 1)?)
            .arg(record.not_before_ms)
            .arg(record.expires_ms.map(|e| e.to_string()).unwrap_or_default())
            .arg(message_prefix)
            .arg(&record.client)
            .arg(if self.cluster { "1" } else { "" })
            .invoke_async(&mut conn)
            .await?;
        self.settle(&mut conn).await?;
        let first = first
            .parse::<TernId>()
            .map_err(|e| bad("dedup entry", e.to_string()))?;
        Ok(Accepted {
            id: first,
            duplicate: duplicate == 1,
        })
    }

    /// Accepts the destinations of one submit_multi, one message each, in
    /// one atomic script: all are in Redis under the durability policy
    /// when this returns, or none is. Their ids come from the client's
    /// shard, so every key written lies in one slot (see
    /// `SledStore::accept_multi` for the rest).
    pub async fn accept_multi(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> Result<Vec<TernId>, StoreError> {
        STEP.scope(Step::Accept, self.accept_multi_scoped(messages, now_ms))
            .await
    }

    async fn accept_multi_scoped(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> Result<Vec<TernId>, StoreError> {
        let mut ids = Vec::with_capacity(messages.len());
        for message in &messages {
            ids.push(self.next_id(&message.client).await?);
        }
        let mut group = Group::default();
        for record in multi_records(messages, &ids, now_ms) {
            let (shard, m) = (id_shard(record.id), member(record.id));
            self.stage(&mut group, transition::accept(record), 1)?;
            if self.cluster {
                group.sadd(self.layout.all(shard), &m);
            }
        }
        self.apply_one(group).await?;
        Ok(ids)
    }

    /// Up to `limit` (score, id) of every shard's sorted set `key` with a
    /// score not above `until`, merged in (score, id) order.
    async fn due(
        &self,
        key: impl Fn(u64) -> Vec<u8>,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, TernId)>, StoreError> {
        self.due_members(key, until, limit)
            .await?
            .into_iter()
            .map(|(score, m)| {
                let id = parse_member(&m).ok_or_else(|| bad("queue member", "not an id"))?;
                Ok((score, id))
            })
            .collect()
    }

    /// [`RedisStore::due`] with the members as stored (MO groups are not
    /// ids).
    async fn due_members(
        &self,
        key: impl Fn(u64) -> Vec<u8>,
        until: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut all = Vec::new();
        for shard in 0..SHARDS {
            let found: Vec<(Vec<u8>, f64)> = self
                .query(
                    redis::cmd("ZRANGEBYSCORE")
                        .arg(key(shard))
                        .arg("-inf")
                        .arg(until)
                        .arg("WITHSCORES")
                        .arg("LIMIT")
                        .arg(0)
                        .arg(limit),
                )
                .await?;
            all.extend(found.into_iter().map(|(m, s)| (s as u64, m)));
        }
        all.sort();
        all.truncate(limit);
        Ok(all)
    }

    /// Puts a [`Change`] into `group`, the write of the record's slot: the
    /// record under its key and each index edit as this backend's keys.
    /// Upstream-id entries lie in other slots: they go into `index`, one
    /// group per slot, written first (a crash between leaves an entry that
    /// finds the message, never a submitted message that cannot be found).
    /// Persisting and indexing only: the rules are in [`transition`].
    fn stage_all(
        &self,
        group: &mut Group,
        index: &mut Vec<(u64, Group)>,
        change: Change,
        generation: u64,
    ) -> Result<(MessageRecord, Vec<u8>), StoreError> {
        let id = change.record.id;
        let (shard, m) = (id_shard(id), member(id));
        // A retention entry removed and added again in one change (a
        // submitted message that ends) is one ZADD, which moves it: the
        // script sends each key's writes of a call as one command while
        // the command stays the same (`lua::APPLY`), and a ZREM then a
        // ZADD on the retention queue in every receipt would undo that,
        // two commands per message.
        let last_retained = change
            .edits
            .iter()
            .rposition(|e| matches!(e, Edit::RetentionAdd(_)));
        for (at, edit) in change.edits.into_iter().enumerate() {
            match edit {
                Edit::ReadyAdd(at) => {
                    self.enqueue(group, &change.record.client, at, &m);
                    &mut *group
                }
                Edit::ReadyRemove(_) => group.zrem(self.layout.ready(&change.record.client), &m),
                Edit::InFlightRemove => group.zrem(self.layout.in_flight(shard), &m),
                Edit::ExpiryAdd(at) => group.zadd(self.layout.expiry(shard), at, &m),
                Edit::ExpiryRemove(_) => group.zrem(self.layout.expiry(shard), &m),
                Edit::RetentionAdd(at) => group.zadd(self.layout.retention(shard), at, &m),
                Edit::RetentionRemove(_) if last_retained.is_some_and(|added| added > at) => {
                    &mut *group
                }
                Edit::RetentionRemove(_) => group.zrem(self.layout.retention(shard), &m),
                Edit::UpstreamId { upstream, form } => {
                    let s = upstream_shard(&upstream, &form);
                    let at = match index.iter().position(|(k, _)| *k == s) {
                        Some(at) => at,
                        None => {
                            index.push((s, Group::default()));
                            index.len() - 1
                        }
                    };
                    index[at].1.hset(
                        self.layout.upstream_ids(s),
                        upstream_field(&upstream, &form),
                        id.to_be_bytes().to_vec(),
                    )
                }
                Edit::Outbox { seq, item } => {
                    let client = change.record.client.as_str();
                    self.push_item(group, client, seq, &item)?;
                    group.publish(self.layout.outbox_channel(), client)
                }
            };
        }
        let raw = stored::encode_at(&change.record, generation)?;
        group.set(self.layout.message(id), raw.clone());
        Ok((change.record, raw))
    }

    /// [`RedisStore::stage_all`] for a change with no upstream id.
    fn stage(
        &self,
        group: &mut Group,
        change: Change,
        generation: u64,
    ) -> Result<MessageRecord, StoreError> {
        let mut index = Vec::new();
        let (record, _) = self.stage_all(group, &mut index, change, generation)?;
        if index.is_empty() {
            Ok(record)
        } else {
            Err(StoreError::redis(
                "an upstream id outside a write that indexes",
            ))
        }
    }

    /// The record of `id` as this node last wrote it, or as stored.
    async fn base(&self, id: TernId) -> Result<Option<(Vec<u8>, MessageRecord)>, StoreError> {
        match self.cache.get(id) {
            Some(kept) => Ok(Some(kept)),
            None => self.read(id).await,
        }
    }

    /// One step on one record: `make` computes its change from the record
    /// as it is (`Ok(None)`: nothing to write), and the change is written
    /// fenced, applied only if the record is still the one it was computed
    /// from. Usually one round trip, shared with the step's other writes:
    /// the record comes from what this node last wrote, and a write that
    /// finds it changed gets the record as it is in the same answer and
    /// computes again. Returns the record as written, or `None` when
    /// `make` wrote nothing.
    async fn step<F>(
        &self,
        step: Step,
        id: TernId,
        make: F,
    ) -> Result<Option<MessageRecord>, StoreError>
    where
        F: FnMut(MessageRecord) -> Result<Option<Change>, StoreError>,
    {
        match self.step_unless_held(step, id, &[], make, true).await? {
            Stepped::Done(record) => Ok(record.map(|r| *r)),
            Stepped::Held => Err(StoreError::redis(
                "a write that checks no receipt found one",
            )),
        }
    }

    /// [`RedisStore::step`], written only if no receipt is held under any
    /// of `held` (hash key, field; see [`RedisStore::held_fields`]), in
    /// the same script: a step that must come after the receipts held for
    /// its message learns of them without a read of its own. One server
    /// only (the held hashes lie in other slots). The record as written is
    /// returned only when `returning`: the attempt and the receipt do not
    /// need it, and a copy of it is a dozen allocations (record copies were
    /// 2.5 % of the daemon's samples on Redis, session 18's profile).
    async fn step_unless_held<F>(
        &self,
        step: Step,
        id: TernId,
        held: &[(Vec<u8>, Vec<u8>)],
        mut make: F,
        returning: bool,
    ) -> Result<Stepped, StoreError>
    where
        F: FnMut(MessageRecord) -> Result<Option<Change>, StoreError>,
    {
        let Some((mut raw, record)) = self.base(id).await? else {
            return Err(StoreError::NotFound(id));
        };
        let mut record = record;
        for _ in 0..RETRIES {
            let Some(change) = make(record)? else {
                return Ok(Stepped::Done(None));
            };
            let mut group = Group::default();
            group.check_record(self.layout.message(id), &raw);
            for (key, field) in held {
                group.check_absent(key.clone(), field.clone());
            }
            let mut index = Vec::new();
            let generation = stored::next(&raw);
            let (new, new_raw) = self.stage_all(&mut group, &mut index, change, generation)?;
            let mut groups: Vec<Group> = index.into_iter().map(|(_, g)| g).collect();
            if self.cluster {
                // Other slots: written first, each its own call.
                for index in groups.drain(..) {
                    self.writer.write(step, vec![index]).await?;
                }
            }
            groups.push(group);
            match self.writer.write(step, groups).await? {
                Written::Applied => {
                    let written = returning.then(|| Box::new(new.clone()));
                    self.cache.keep(new, new_raw);
                    return Ok(Stepped::Done(written));
                }
                Written::Held => return Ok(Stepped::Held),
                Written::Stale(Some(current)) => {
                    (raw, record) = cache::decoded(current)?;
                    self.cache.refresh(&record, &raw);
                }
                Written::Stale(None) => {
                    self.cache.forget(id);
                    return Err(StoreError::NotFound(id));
                }
                Written::Refused => {
                    (raw, record) = self.read(id).await?.ok_or(StoreError::NotFound(id))?;
                }
            }
        }
        Err(StoreError::KeptChanging { id, tries: RETRIES })
    }

    /// The (hash, field) of every place a receipt for `upstream`'s
    /// `upstream_ids` may be held (each id's forms, across bases with
    /// `any_base`), for [`RedisStore::step_unless_held`].
    fn held_fields(
        &self,
        upstream: &str,
        upstream_ids: &[String],
        any_base: bool,
    ) -> Vec<(Vec<u8>, Vec<u8>)> {
        upstream_ids
            .iter()
            .flat_map(|id| forms(id, any_base))
            .map(|form| {
                (
                    self.layout.unmatched(upstream_shard(upstream, &form)),
                    upstream_field(upstream, &form),
                )
            })
            .collect()
    }

    /// Records an attempt (see [`crate::SledStore::record_attempt`]), with
    /// the index entries of its upstream ids: one round trip on a single
    /// server (one script), two on a cluster (the index's slot first).
    pub async fn record_attempt(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        self.attempt_unless_held(id, attempt, retry_at_ms, now_ms, &[])
            .await
            .map(|_| ())
    }

    /// [`RedisStore::record_attempt`], and whether a receipt is held under
    /// one of its upstream ids (see
    /// [`crate::Store::record_attempt_seeing_held`]). On one server the
    /// look is in the attempt's script, which a held receipt refuses: the
    /// attempt is then written again without it (two round trips, only
    /// when a receipt came before its submit_sm_resp was recorded). On a
    /// cluster, one read after the write.
    pub async fn record_attempt_seeing_held(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
        any_base: bool,
    ) -> Result<bool, StoreError> {
        let (upstream, ids) = (attempt.upstream.clone(), attempt.upstream_ids.clone());
        if self.cluster || ids.is_empty() {
            self.record_attempt(id, attempt, retry_at_ms, now_ms)
                .await?;
            for upstream_id in &ids {
                let peek = self.peek_unmatched(&upstream, upstream_id, any_base);
                if STEP.scope(Step::Attempt, peek).await?.is_some() {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let fields = self.held_fields(&upstream, &ids, any_base);
        let first = self
            .attempt_unless_held(id, attempt.clone(), retry_at_ms, now_ms, &fields)
            .await?;
        if matches!(first, Stepped::Held) {
            self.record_attempt(id, attempt, retry_at_ms, now_ms)
                .await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn attempt_unless_held(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
        held: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<Stepped, StoreError> {
        let step = self.step_unless_held(
            Step::Attempt,
            id,
            held,
            |record| {
                Ok(Some(transition::attempt(
                    record,
                    attempt.clone(),
                    retry_at_ms,
                    now_ms,
                )))
            },
            false,
        );
        STEP.scope(Step::Attempt, step).await
    }

    /// Ends a message: final state, out of every queue, into retention.
    pub async fn finish(
        &self,
        id: TernId,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let step = self.step(Step::Finish, id, |record| {
            match transition::finish(record, outcome.clone(), now_ms) {
                Ok(change) => Ok(Some(change)),
                // Final already: it keeps its outcome.
                Err(_) => Ok(None),
            }
        });
        STEP.scope(Step::Finish, step).await.map(|_| ())
    }

    /// Ends a message still waiting to be sent if `accept` agrees (see
    /// [`crate::SledStore::cancel_queued`]). Instead of a lock, the write
    /// checks that the record is unchanged and still in the ready queue:
    /// a claim that came first makes it answer [`QueuedChange::NotQueued`].
    /// `accept` runs once, on the first read; if a replace changed the
    /// message before the write, its answer stands (it judges who owns the
    /// message, which a replace does not change).
    pub async fn cancel_queued<F>(
        &self,
        id: TernId,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<QueuedChange, StoreError>
    where
        F: FnOnce(&MessageRecord) -> bool,
    {
        let Some((_, record)) = STEP.scope(Step::Finish, self.read(id)).await? else {
            return Ok(QueuedChange::NotFound);
        };
        if !accept(&record) {
            return Ok(QueuedChange::Refused);
        }
        self.queued_step(id, |record| {
            transition::cancel(record, outcome.clone(), now_ms)
        })
        .await
    }

    /// A cancel or replace as one [`RedisStore::step`]: the write is
    /// fenced by the record's octets, which a claim changes (its state),
    /// so a claim that came first makes the step compute again and answer
    /// [`QueuedChange::NotQueued`].
    async fn queued_step<F>(&self, id: TernId, make: F) -> Result<QueuedChange, StoreError>
    where
        F: Fn(MessageRecord) -> Result<Change, TransitionError>,
    {
        let mut refused = None;
        let step = self.step(Step::Finish, id, |record| match make(record) {
            Ok(change) => Ok(Some(change)),
            Err(why) => {
                refused = Some(why);
                Ok(None)
            }
        });
        let done = match STEP.scope(Step::Finish, step).await {
            Err(StoreError::NotFound(_)) => return Ok(QueuedChange::NotFound),
            other => other?,
        };
        Ok(match (done, refused) {
            (Some(record), _) => QueuedChange::Done(Box::new(record)),
            (None, Some(why)) => QueuedChange::from(why),
            (None, None) => QueuedChange::NotQueued(State::Final),
        })
    }

    /// Ends every waiting message `accept` agrees to, at most `limit` (see
    /// [`crate::SledStore::cancel_queued_matching`]); reads the whole ready
    /// queue.
    pub async fn cancel_queued_matching<F>(
        &self,
        mut accept: F,
        outcome: Outcome,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>
    where
        F: FnMut(&MessageRecord) -> bool,
    {
        let mut ended = Vec::new();
        for shard in 0..SHARDS {
            if ended.len() >= limit {
                break;
            }
            let members = self.ready_members(shard).await?;
            let ids: Vec<TernId> = members.iter().filter_map(|m| parse_member(m)).collect();
            let records = self.read_many(&ids).await?;
            let mut call = Apply::default();
            let mut candidates = Vec::new();
            for (id, found) in ids.iter().zip(records) {
                if ended.len() + candidates.len() >= limit {
                    break;
                }
                let Some((raw, record)) = found else {
                    continue;
                };
                if record.state != State::Queued || !accept(&record) {
                    continue;
                }
                let client = record.client.clone();
                let Ok(change) = transition::cancel(record, outcome.clone(), now_ms) else {
                    continue;
                };
                let mut group = Group::default();
                group
                    .check_record(self.layout.message(*id), &raw)
                    .check_member(self.layout.ready(&client), &member(*id));
                candidates.push(self.stage(&mut group, change, stored::next(&raw))?);
                call.push(group);
            }
            let applied = self.apply(&call).await?;
            ended.extend(
                candidates
                    .into_iter()
                    .zip(applied)
                    .filter(|(_, ok)| *ok)
                    .map(|(r, _)| r),
            );
        }
        Ok(ended)
    }

    /// Changes a message still waiting to be sent (see
    /// [`crate::SledStore::replace_queued`]); same checks as
    /// [`RedisStore::cancel_queued`]. `change` runs once; if another
    /// replace won the race, this one's values are applied over it (last
    /// replace wins, as with sled's lock).
    pub async fn replace_queued<F>(
        &self,
        id: TernId,
        change: F,
        now_ms: u64,
    ) -> Result<QueuedChange, StoreError>
    where
        F: FnOnce(&MessageRecord) -> Option<Replacement>,
    {
        let Some((_, record)) = STEP.scope(Step::Finish, self.read(id)).await? else {
            return Ok(QueuedChange::NotFound);
        };
        let Some(new) = change(&record) else {
            return Ok(QueuedChange::Refused);
        };
        self.queued_step(id, |record| {
            transition::replace(record, new.clone(), now_ms)
        })
        .await
    }

    /// The message an upstream id belongs to, case and leading zeros aside.
    pub async fn lookup_upstream(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        let form = normalise(upstream_id);
        if let Some(id) = self.cache.lookup(upstream, &form) {
            return Ok(Some(id));
        }
        STEP.scope(Step::Lookup, self.lookup_forms(upstream, &[form]))
            .await
    }

    /// [`RedisStore::lookup_upstream`], also across hex and decimal.
    pub async fn lookup_upstream_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        let forms = candidates(upstream_id);
        // The first form is tried first in the store too: a kept id that
        // matches it is the store's answer.
        if let Some(first) = forms.first() {
            if let Some(id) = self.cache.lookup(upstream, first) {
                return Ok(Some(id));
            }
        }
        STEP.scope(Step::Lookup, self.lookup_forms(upstream, &forms))
            .await
    }

    async fn lookup_forms(
        &self,
        upstream: &str,
        forms: &[String],
    ) -> Result<Option<TernId>, StoreError> {
        for form in forms {
            let shard = upstream_shard(upstream, form);
            let value: Option<Vec<u8>> = self
                .query(
                    redis::cmd("HGET")
                        .arg(self.layout.upstream_ids(shard))
                        .arg(upstream_field(upstream, form)),
                )
                .await?;
            if let Some(value) = value {
                let bytes: [u8; 8] = value
                    .as_slice()
                    .try_into()
                    .map_err(|_| bad("upstream id entry", format!("{} octets", value.len())))?;
                return Ok(Some(TernId::from_u64(u64::from_be_bytes(bytes))));
            }
        }
        Ok(None)
    }

    /// Ids whose validity ended by `now`, at most `limit`, oldest first.
    pub async fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<TernId>, StoreError> {
        Ok(self
            .due(|s| self.layout.expiry(s), now_ms, limit)
            .await?
            .into_iter()
            .map(|(_, id)| id)
            .collect())
    }

    /// A new place in `client`'s outbox, from the block this node
    /// reserved of the client's counter (see [`SEQ_BLOCK`]).
    async fn next_seq(&self, client: &str) -> Result<u64, StoreError> {
        let mut seqs = self.seqs.lock().await;
        let block = seqs.entry(client.to_owned()).or_insert((0, 0));
        if block.0 >= block.1 {
            let mut conn = self.conn();
            let end: u64 = STEP
                .scope(
                    Step::OutboxPush,
                    redis::cmd("INCRBY")
                        .arg(self.layout.outbox_seq(client))
                        .arg(SEQ_BLOCK)
                        .query_async(&mut conn),
                )
                .await?;
            self.settle(&mut conn).await?;
            // Places start at 1, as they did with one INCR each.
            *block = (end.saturating_sub(SEQ_BLOCK) + 1, end + 1);
        }
        let seq = block.0;
        block.0 += 1;
        Ok(seq)
    }

    fn push_item(
        &self,
        group: &mut Group,
        client: &str,
        seq: u64,
        item: &OutboxItem,
    ) -> Result<(), StoreError> {
        group
            .hset(
                self.layout.outbox(client),
                seq.to_string().into_bytes(),
                encode(item)?,
            )
            .zadd(self.layout.outbox_order(client), seq, &seq.to_string())
            .notice(self.layout.outbox_clients(client_shard(client)), client);
        Ok(())
    }

    /// Stores something owed to `client`; returns its place in the outbox.
    /// One round trip (shared with the pushes queued meanwhile), news to
    /// the other nodes included.
    pub async fn outbox_push(&self, client: &str, item: &OutboxItem) -> Result<u64, StoreError> {
        let seq = self.next_seq(client).await?;
        let mut group = Group::default();
        self.push_item(&mut group, client, seq, item)?;
        group.publish(self.layout.outbox_channel(), client);
        STEP.scope(Step::OutboxPush, self.apply_one(group)).await?;
        Ok(seq)
    }

    /// Up to `limit` items owed to `client`, oldest first; with `after`,
    /// only those placed after it.
    pub async fn outbox_pending(
        &self,
        client: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        let from = after.map_or_else(|| "-inf".to_owned(), |seq| format!("({seq}"));
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut call = lua::OUTBOX_READ.key(self.layout.outbox(client));
        call.key(self.layout.outbox_order(client))
            .key(self.layout.outbox_clients(client_shard(client)))
            .arg(limit)
            .arg(from.as_str())
            .arg(client);
        let mut conn = self.conn();
        let flat: Vec<Vec<u8>> = STEP
            .scope(Step::OutboxRead, bounded(call.invoke_async(&mut conn)))
            .await?;
        pairs(flat)
            .into_iter()
            .map(|(seq, item)| {
                Ok((
                    parse_u64("outbox seq", &seq)?,
                    decode("outbox item", &item)?,
                ))
            })
            .collect()
    }

    /// Removes an item the client acknowledged; for a receipt, the time
    /// goes into its message's history.
    pub async fn outbox_ack(&self, client: &str, seq: u64) -> Result<(), StoreError> {
        self.outbox_ack_many(client, &[seq]).await
    }

    /// Removes many items the client acknowledged in one group (one round
    /// trip); for each receipt, the time goes into its message's history.
    pub async fn outbox_ack_many(&self, client: &str, seqs: &[u64]) -> Result<(), StoreError> {
        STEP.scope(Step::OutboxAck, self.outbox_ack_scoped(client, seqs))
            .await
    }

    async fn outbox_ack_scoped(&self, client: &str, seqs: &[u64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = seqs.iter().map(u64::to_string).collect();
        let raws: Vec<Option<Vec<u8>>> = redis::cmd("HMGET")
            .arg(self.layout.outbox(client))
            .arg(&fields)
            .query_async(&mut self.conn())
            .await?;
        let mut group = Group::default();
        let mut found = false;
        let now = now_ms().to_string().into_bytes();
        for (field, raw) in fields.iter().zip(raws) {
            let Some(raw) = raw else {
                continue;
            };
            found = true;
            let item: OutboxItem = decode("outbox item", &raw)?;
            if let Some(message) = item.message {
                let ack = (
                    self.layout.acks(message),
                    field.clone().into_bytes(),
                    now.clone(),
                );
                if id_shard(message) == client_shard(client) {
                    group.hset(ack.0, ack.1, ack.2);
                } else {
                    // A receipt in another client's outbox (not made by
                    // Tern today): its own slot, written first.
                    let mut own = Group::default();
                    own.hset(ack.0, ack.1, ack.2);
                    self.apply_one(own).await?;
                }
            }
            group
                .hdel(self.layout.outbox(client), field.clone().into_bytes())
                .zrem(self.layout.outbox_order(client), field);
        }
        if !found {
            return Ok(());
        }
        group.srem_if_empty(
            self.layout.outbox_clients(client_shard(client)),
            client,
            self.layout.outbox_order(client),
        );
        self.apply_one(group).await?;
        Ok(())
    }

    /// Clients with something in their outbox, by name.
    ///
    /// One round trip on one server (a pipeline of every shard's set), one
    /// per shard at once on a cluster. The daemon's outbox lists them every
    /// second from its one task: sixteen round trips in sequence held it
    /// off its deliveries and acknowledgements for a tenth of a second or
    /// more each time when the server was busy.
    pub async fn outbox_clients(&self) -> Result<Vec<String>, StoreError> {
        let mut clients: Vec<String> = if self.cluster {
            let reads = (0..SHARDS).map(|shard| async move {
                let mut cmd = redis::cmd("SMEMBERS");
                cmd.arg(self.layout.outbox_clients(shard));
                self.query::<Vec<String>>(&cmd).await
            });
            futures::future::try_join_all(reads)
                .await?
                .into_iter()
                .flatten()
                .collect()
        } else {
            let mut pipe = redis::pipe();
            for shard in 0..SHARDS {
                pipe.cmd("SMEMBERS").arg(self.layout.outbox_clients(shard));
            }
            let found: Vec<Vec<String>> = bounded(pipe.query_async(&mut self.conn())).await?;
            found.into_iter().flatten().collect()
        };
        clients.sort();
        clients.dedup();
        Ok(clients)
    }

    /// Holds a receipt that matched nothing yet: after any others held for
    /// the same id (see `held.rs`).
    pub async fn hold_unmatched(&self, receipt: &UnmatchedReceipt) -> Result<(), StoreError> {
        let form = normalise(&receipt.upstream_id);
        self.swap_held(&receipt.upstream, &form, |earlier| {
            Ok(Some((held::with(earlier, receipt)?, ())))
        })
        .await?;
        Ok(())
    }

    /// Reads what is held under (upstream, form), and replaces it with what
    /// `change` makes of it unless another node or task changed it first
    /// (then reads again). `change` returns the new value (empty: none
    /// held) and what to return, or `None` to leave it as it is.
    async fn swap_held<T>(
        &self,
        upstream: &str,
        form: &str,
        change: impl Fn(&[u8]) -> Result<Option<(Vec<u8>, T)>, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        let shard = upstream_shard(upstream, form);
        let field = upstream_field(upstream, form);
        let mut conn = self.conn();
        loop {
            let current: Option<Vec<u8>> = redis::cmd("HGET")
                .arg(self.layout.unmatched(shard))
                .arg(field.as_slice())
                .query_async(&mut conn)
                .await?;
            let current = current.unwrap_or_default();
            let Some((value, out)) = change(&current)? else {
                return Ok(None);
            };
            // The grace runs from the latest arrival still held.
            let at = held::last_arrival(&value)?.unwrap_or(0);
            let swapped: i64 = lua::SWAP_UNMATCHED
                .key(self.layout.unmatched(shard))
                .key(self.layout.unmatched_by_time(shard))
                .arg(field.as_slice())
                .arg(current)
                .arg(value)
                .arg(at)
                .invoke_async(&mut conn)
                .await?;
            if swapped == 1 {
                self.settle(&mut conn).await?;
                return Ok(Some(out));
            }
        }
    }

    /// Takes the oldest receipt held for this upstream id (case and zeros
    /// aside).
    pub async fn take_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        self.take_forms(upstream, &[normalise(upstream_id)]).await
    }

    /// [`RedisStore::take_unmatched`], also across bases.
    pub async fn take_unmatched_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        self.take_forms(upstream, &candidates(upstream_id)).await
    }

    async fn take_forms(
        &self,
        upstream: &str,
        forms: &[String],
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        for form in forms {
            let taken = self
                .swap_held(upstream, form, |value| {
                    Ok(held::first(value)?.map(|(receipt, rest)| (rest, receipt)))
                })
                .await?;
            if taken.is_some() {
                return Ok(taken);
            }
        }
        Ok(None)
    }

    /// Removes and returns held receipts older than `grace` at `now`.
    pub async fn expire_unmatched(
        &self,
        now_ms: u64,
        grace: Duration,
        limit: usize,
    ) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        let until = now_ms.saturating_sub(grace.as_millis() as u64);
        let mut expired = Vec::new();
        let mut left = limit;
        for shard in 0..SHARDS {
            if left == 0 {
                break;
            }
            let mut conn = self.conn();
            let (removed, raws): (usize, Vec<Vec<u8>>) = lua::EXPIRE_UNMATCHED
                .key(self.layout.unmatched(shard))
                .key(self.layout.unmatched_by_time(shard))
                .arg(until)
                .arg(left)
                .invoke_async(&mut conn)
                .await?;
            if removed > 0 {
                self.settle(&mut conn).await?;
            }
            left = left.saturating_sub(removed);
            for raw in raws {
                expired.extend(held::all(&raw)?);
            }
        }
        Ok(expired)
    }

    /// Removes up to `limit` messages whose retention entry is before
    /// `before_ms` (see [`crate::SledStore::purge_finished`]), with their
    /// index entries (those first, each only if it still points here).
    /// A message waiting or being sent again loses only its stale entry.
    pub async fn purge_finished(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        if limit == 0 || before_ms == 0 {
            return Ok(0);
        }
        let due = self
            .due(|s| self.layout.retention(s), before_ms - 1, limit)
            .await?;
        let mut purged = 0;
        for (_, id) in due {
            let shard = id_shard(id);
            let m = member(id);
            let mut group = Group::default();
            let record = self.read(id).await?.map(|(_, record)| record);
            if record.as_ref().is_some_and(|r| !transition::purgeable(r)) {
                group.zrem(self.layout.retention(shard), &m);
                self.apply_one(group).await?;
                purged += 1;
                continue;
            }
            if let Some(record) = record {
                let mut by_shard: HashMap<u64, Group> = HashMap::new();
                for attempt in &record.attempts {
                    for upstream_id in &attempt.upstream_ids {
                        let form = normalise(upstream_id);
                        let s = upstream_shard(&attempt.upstream, &form);
                        by_shard.entry(s).or_default().hdel_if(
                            self.layout.upstream_ids(s),
                            upstream_field(&attempt.upstream, &form),
                            id.to_be_bytes().to_vec(),
                        );
                    }
                }
                for (_, index) in by_shard {
                    self.apply_one(index).await?;
                }
                if let Some(key) = &record.dedup_key {
                    group.hdel(self.layout.dedup(shard), dedup_field(&record.client, key));
                }
            }
            self.cache.forget(id);
            if self.cluster {
                group.srem(self.layout.all(shard), &m);
            }
            group
                .zrem(self.layout.retention(shard), &m)
                .zrem(self.layout.expiry(shard), &m)
                .del(self.layout.acks(id))
                .del(self.layout.message(id));
            self.apply_one(group).await?;
            purged += 1;
        }
        Ok(purged)
    }

    /// Holds one part of a long MO message (see
    /// [`crate::SledStore::mo_part_hold`]); one script, so two parts
    /// arriving together both see each other.
    pub async fn mo_part_hold(
        &self,
        group: &MoGroup,
        part: &MoPart,
        deadline_ms: u64,
    ) -> Result<HeldMo, StoreError> {
        if part.sequence == 0 || part.sequence > group.total {
            return Err(StoreError::BadKey {
                what: "MO part number",
                value: format!("{} of {}", part.sequence, group.total),
            });
        }
        let group_member = layout::hex(&group.key()?);
        let header = MoHeader {
            group: group.clone(),
            deadline_ms,
        };
        let mut conn = self.conn();
        let flat: Vec<Vec<u8>> = lua::MO_HOLD
            .key(self.layout.mo_group(&group.client, &group_member))
            .key(self.layout.mo_due(client_shard(&group.client)))
            .arg(encode(&header)?)
            .arg(deadline_ms)
            .arg(&group_member)
            .arg(part.sequence)
            .arg(encode(part)?)
            .invoke_async(&mut conn)
            .await?;
        self.settle(&mut conn).await?;
        held_from(pairs(flat))?.ok_or_else(|| bad("MO group", "no header after hold"))
    }

    /// Reads a held group.
    async fn mo_read(&self, key: &[u8]) -> Result<Option<HeldMo>, StoreError> {
        let flat: Vec<Vec<u8>> = self.query(redis::cmd("HGETALL").arg(key)).await?;
        held_from(pairs(flat))
    }

    /// Releases a held group into its client's outbox (see
    /// [`crate::SledStore::mo_group_release`]). `build` sees the parts held
    /// at the read; the script removes only those, and only if all are
    /// still there, so a part that came meanwhile stays held (it goes out
    /// at the group's deadline) and a concurrent release of the same group
    /// makes this one return `false` with nothing done.
    pub async fn mo_group_release<F>(&self, group: &MoGroup, build: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&HeldMo) -> Vec<OutboxItem>,
    {
        let group_member = layout::hex(&group.key()?);
        let key = self.layout.mo_group(&group.client, &group_member);
        let Some(held) = self.mo_read(&key).await? else {
            return Ok(false);
        };
        let items = build(&held);
        let mut seqs = Vec::with_capacity(items.len());
        for _ in &items {
            seqs.push(self.next_seq(&group.client).await?);
        }
        let mut call = lua::MO_RELEASE.prepare_invoke();
        call.key(key)
            .key(self.layout.mo_due(client_shard(&group.client)))
            .key(self.layout.outbox(&group.client))
            .key(self.layout.outbox_order(&group.client))
            .key(self.layout.outbox_clients(client_shard(&group.client)))
            .arg(&group_member)
            .arg(&group.client)
            .arg(held.parts.len());
        for part in &held.parts {
            call.arg(part.sequence);
        }
        for (seq, item) in seqs.iter().zip(&items) {
            call.arg(seq).arg(encode(item)?);
        }
        let mut conn = self.conn();
        let released: i64 = call.invoke_async(&mut conn).await?;
        self.settle(&mut conn).await?;
        if released == 1 {
            self.notify_outbox(&group.client).await;
        }
        Ok(released == 1)
    }

    /// Held groups whose deadline is not after `now`, oldest first.
    pub async fn mo_groups_due(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<HeldMo>, StoreError> {
        let mut due = Vec::new();
        let members = self
            .due_members(|s| self.layout.mo_due(s), now_ms, limit)
            .await?;
        for (_, group_member) in members {
            let group_member =
                String::from_utf8(group_member).map_err(|_| bad("MO due member", "not text"))?;
            // The client is in the header, but the key needs it first: every
            // shard's due set names groups of its own shard, so find the
            // client through the header stored under the member.
            let Some(held) = self.mo_find(&group_member).await? else {
                continue;
            };
            due.push(held);
        }
        Ok(due)
    }

    /// The held group whose key (hex) is `group_member`: the key holds the
    /// client's name, from which its shard and key follow.
    async fn mo_find(&self, group_member: &str) -> Result<Option<HeldMo>, StoreError> {
        let Some(client) = mo_client(group_member) else {
            return Err(bad("MO due member", group_member.to_owned()));
        };
        self.mo_read(&self.layout.mo_group(&client, group_member))
            .await
    }

    /// On one server, removes the sets of every id (`Layout::all`) that
    /// stores written before kept there too: nothing reads or writes them
    /// any more, and their members would stay for ever. `UNLINK`: the
    /// server frees a large set away from its main thread.
    async fn drop_id_sets(&self) -> Result<(), StoreError> {
        if self.cluster {
            return Ok(());
        }
        let keys: Vec<Vec<u8>> = (0..SHARDS).map(|shard| self.layout.all(shard)).collect();
        self.query::<usize>(redis::cmd("UNLINK").arg(keys)).await?;
        Ok(())
    }

    /// The members of every id of `shard` with a record: on a cluster its
    /// set of ids ([`Layout::all`]); on one server the record keys, found
    /// with `SCAN`.
    async fn ids_with_records(&self, shard: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        if self.cluster {
            return self
                .query(redis::cmd("SMEMBERS").arg(self.layout.all(shard)))
                .await;
        }
        let prefix = self.layout.message_prefix(shard);
        let mut pattern = glob_escaped(&prefix);
        pattern.push(b'*');
        let mut members = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .query(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            members.extend(
                keys.into_iter()
                    .filter_map(|k| k.strip_prefix(prefix.as_slice()).map(<[u8]>::to_vec)),
            );
            if next == 0 {
                break;
            }
            cursor = next;
        }
        // SCAN may return a key twice.
        members.sort_unstable();
        members.dedup();
        Ok(members)
    }

    /// Every record checked against the queues (for tests and `tern`).
    pub async fn verify(&self) -> Result<Verification, StoreError> {
        let mut v = Verification::default();
        for shard in 0..SHARDS {
            let ready = self.ready_members(shard).await?;
            let flight = self.whole_set(self.layout.in_flight(shard)).await?;
            let all = self.ids_with_records(shard).await?;
            for m in &all {
                let id = parse_member(m).ok_or_else(|| bad("id set member", "not an id"))?;
                let Some(record) = self.get(id).await? else {
                    v.problems.push(format!("{id} listed but has no record"));
                    continue;
                };
                v.messages += 1;
                let in_ready = ready.contains(m);
                let in_flight = flight.contains(m);
                match record.state {
                    State::Queued if !in_ready || in_flight => v.problems.push(format!(
                        "{id} queued: ready {in_ready}, in flight {in_flight}"
                    )),
                    State::InFlight if in_ready || !in_flight => v.problems.push(format!(
                        "{id} in flight: ready {in_ready}, in flight {in_flight}"
                    )),
                    State::Submitted | State::Final if in_ready || in_flight => v
                        .problems
                        .push(format!("{id} {:?} but still queued", record.state)),
                    _ => {}
                }
                match record.state {
                    State::Queued => v.queued += 1,
                    State::InFlight => v.in_flight += 1,
                    State::Submitted => v.submitted += 1,
                    State::Final => v.finished += 1,
                }
                if record.state != State::Final {
                    v.unfinished += 1;
                }
            }
            for (what, key) in [
                ("in flight", Some(self.layout.in_flight(shard))),
                ("expiry", Some(self.layout.expiry(shard))),
                ("retention", Some(self.layout.retention(shard))),
                ("ready", None),
            ] {
                let members = match key {
                    Some(key) => self.whole_set(key).await?,
                    None => ready.clone(),
                };
                for m in members {
                    if !all.contains(&m) {
                        v.problems.push(format!(
                            "{what} entry {} has no record",
                            String::from_utf8_lossy(&m)
                        ));
                    }
                }
            }
        }
        Ok(v)
    }

    /// Every id in a shard's ready queues (each client's, in order).
    async fn ready_members(&self, shard: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut all = Vec::new();
        for client in self.ready_clients(shard).await? {
            all.extend(self.whole_set(self.layout.ready(&client)).await?);
        }
        Ok(all)
    }

    /// The clients of a shard whose ready queue may hold ids.
    async fn ready_clients(&self, shard: u64) -> Result<Vec<String>, StoreError> {
        self.query(redis::cmd("SMEMBERS").arg(self.layout.ready_clients(shard)))
            .await
    }

    /// Every member of a sorted set, in order.
    async fn whole_set(&self, key: Vec<u8>) -> Result<Vec<Vec<u8>>, StoreError> {
        self.query(redis::cmd("ZRANGE").arg(key).arg(0).arg(-1))
            .await
    }

    /// Messages in the ready queues (due or not).
    pub async fn ready_len(&self) -> Result<usize, StoreError> {
        Ok(self.queue_depths().await?.ready)
    }

    /// How many entries each queue holds (ZCARD/HLEN per shard).
    pub async fn queue_depths(&self) -> Result<QueueDepths, StoreError> {
        let mut d = QueueDepths::default();
        for shard in 0..SHARDS {
            for client in self.ready_clients(shard).await? {
                d.ready += self
                    .query::<usize>(redis::cmd("ZCARD").arg(self.layout.ready(&client)))
                    .await?;
                // Scored by due time: a queue's first is its longest waiting.
                let first: Vec<(String, f64)> = self
                    .query(
                        redis::cmd("ZRANGE")
                            .arg(self.layout.ready(&client))
                            .arg(0)
                            .arg(0)
                            .arg("WITHSCORES"),
                    )
                    .await?;
                if let Some((_, at)) = first.first() {
                    let at = *at as u64;
                    d.oldest_ready_ms = Some(d.oldest_ready_ms.map_or(at, |o| o.min(at)));
                }
            }
            d.in_flight += self
                .query::<usize>(redis::cmd("ZCARD").arg(self.layout.in_flight(shard)))
                .await?;
            d.unmatched += self
                .query::<usize>(redis::cmd("HLEN").arg(self.layout.unmatched(shard)))
                .await?;
        }
        for client in self.outbox_clients().await? {
            d.outbox += self
                .query::<usize>(redis::cmd("ZCARD").arg(self.layout.outbox_order(&client)))
                .await?;
        }
        Ok(d)
    }

    /// Stores what a receipt changed, with the client's receipt and the
    /// news of it to the other nodes, in one script on the client's slot
    /// (see [`crate::SledStore::record_receipt`]): one round trip, shared
    /// with the receipts queued meanwhile, when this node keeps the record.
    /// A record changed meanwhile by another node gets the same update.
    pub async fn record_receipt(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
    ) -> Result<Option<u64>, StoreError> {
        match self
            .receipt_unless_held(id, update, now_ms, &[], Fence::Recompute)
            .await?
        {
            ReceiptWrite::Stored(seq) => Ok(seq),
            ReceiptWrite::HeldFirst | ReceiptWrite::Changed => {
                Err(StoreError::redis("a receipt that checks nothing"))
            }
        }
    }

    /// A receipt's update decided from the record as this node last read
    /// it (see [`crate::Store::record_decided_receipt`]): written only if
    /// no other node wrote the record since, else
    /// [`ReceiptWrite::Changed`]; and with `held`, only if no receipt for
    /// `upstream`'s `upstream_id` is held from before. On one server the
    /// look at the held receipts is in the receipt's own script: still one
    /// round trip. On a cluster they lie in another slot: one read first.
    pub async fn record_decided_receipt(
        &self,
        read: &MessageRecord,
        update: ReceiptUpdate,
        now_ms: u64,
        held: Option<HeldUnder<'_>>,
    ) -> Result<ReceiptWrite, StoreError> {
        let (id, fence) = (read.id, Fence::Decided(read));
        let Some(held) = held else {
            return self
                .receipt_unless_held(id, update, now_ms, &[], fence)
                .await;
        };
        if self.cluster {
            let peek = self.peek_unmatched(held.upstream, held.upstream_id, held.any_base);
            if STEP.scope(Step::Receipt, peek).await?.is_some() {
                return Ok(ReceiptWrite::HeldFirst);
            }
            return self
                .receipt_unless_held(id, update, now_ms, &[], fence)
                .await;
        }
        let ids = [held.upstream_id.to_owned()];
        let fields = self.held_fields(held.upstream, &ids, held.any_base);
        self.receipt_unless_held(id, update, now_ms, &fields, fence)
            .await
    }

    async fn receipt_unless_held(
        &self,
        id: TernId,
        update: ReceiptUpdate,
        now_ms: u64,
        held: &[(Vec<u8>, Vec<u8>)],
        fence: Fence<'_>,
    ) -> Result<ReceiptWrite, StoreError> {
        let receipt = async {
            // The outbox place is taken once, before the first try: a
            // retry reuses it (a place never used is only a gap, as is
            // one taken by a receipt that found others held).
            let seq = match (&update.relay, fence) {
                (None, _) => None,
                (Some(_), Fence::Decided(read)) => Some(self.next_seq(&read.client).await?),
                (Some(_), Fence::Recompute) => {
                    let (_, record) = self.base(id).await?.ok_or(StoreError::NotFound(id))?;
                    Some(self.next_seq(&record.client).await?)
                }
            };
            let mut changed = false;
            let mut update = Some(update);
            let written = self
                .step_unless_held(
                    Step::Receipt,
                    id,
                    held,
                    |record| {
                        let update = match fence {
                            // Decided once: a record that changed since
                            // goes back to the caller, so the update is
                            // used once and moved, not copied.
                            Fence::Decided(read) => match update.take() {
                                Some(update) if record.unchanged_since(read) => update,
                                _ => {
                                    changed = true;
                                    return Ok(None);
                                }
                            },
                            Fence::Recompute => update.clone().unwrap_or_default(),
                        };
                        Ok(Some(transition::receipt(record, update, seq, now_ms)))
                    },
                    false,
                )
                .await?;
            Ok(match written {
                Stepped::Done(_) if changed => ReceiptWrite::Changed,
                Stepped::Done(_) => ReceiptWrite::Stored(seq),
                Stepped::Held => ReceiptWrite::HeldFirst,
            })
        };
        STEP.scope(Step::Receipt, receipt).await
    }
}

/// Whether a receipt's update may be applied to a record other than the
/// one it was decided from.
#[derive(Debug, Clone, Copy)]
enum Fence<'a> {
    /// Yes: the update holds whatever the record says (a receipt for an
    /// outcome Tern decided itself, `RedisStore::record_receipt`).
    Recompute,
    /// No: the caller decided it from this record, as it read it, without
    /// a lease that keeps other nodes out, so a record another node wrote
    /// since goes back to the caller to decide again.
    Decided(&'a MessageRecord),
}

/// The dedup hash field: client NUL key.
fn dedup_field(client: &str, key: &Bytes) -> Vec<u8> {
    let mut f = Vec::with_capacity(client.len() + key.len() + 1);
    f.extend_from_slice(client.as_bytes());
    f.push(0);
    f.extend_from_slice(key);
    f
}

/// The client named in an MO group key (hex of `p` client NUL …).
fn mo_client(group_member: &str) -> Option<String> {
    let bytes: Vec<u8> = (0..group_member.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(group_member.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    let rest = bytes.get(1..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// A held group from its hash: "0" header, "d" deadline, numbers parts.
fn held_from(fields: Vec<(Vec<u8>, Vec<u8>)>) -> Result<Option<HeldMo>, StoreError> {
    let mut header: Option<MoHeader> = None;
    let mut parts: Vec<MoPart> = Vec::new();
    for (field, value) in fields {
        match field.as_slice() {
            b"0" => header = Some(decode("MO group header", &value)?),
            b"d" => {}
            _ => parts.push(decode("MO part", &value)?),
        }
    }
    let Some(header) = header else {
        return Ok(None);
    };
    parts.sort_by_key(|p| p.sequence);
    Ok(Some(HeldMo {
        group: header.group,
        deadline_ms: header.deadline_ms,
        parts,
    }))
}
