//! Coordination between Tern nodes that share one Redis store: named
//! leases, node membership, requeueing what a dead node had claimed, and
//! a notification when something lands in a client's outbox.
//!
//! Every node is a process with its own [`RedisStore`] (its own node id,
//! the same key prefix). Leases are plain Redis strings with an expiry
//! (`SET … PX`), changed only by commands that compare the holder first
//! (`SET … NX`, small Lua scripts, a release's `del_if` in a gathered
//! write), so taking, renewing and releasing are each atomic. The holder is
//! written as `"<node>:<token>"`, where the token is drawn when the
//! [`Coordinator`] is made: a restarted process with the same node id is a
//! different holder, so it cannot mistake its dead predecessor's lease for
//! its own.
//!
//! What a lease guarantees rests on time: a holder that stops renewing
//! (killed, partitioned, paused for longer than the lease) loses it when
//! Redis expires it, and another node may then take it. A holder paused
//! past its expiry may, when it wakes, still act as if it held the lease
//! until its next renewal fails. Leases therefore assume bounded pauses
//! and clock drift; they make overlap rare, not impossible. What the
//! store does with them (requeueing orphans) is written to stay safe
//! under overlap: a message may be sent twice, never lost.

use std::collections::hash_map::RandomState;
use std::collections::BTreeSet;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo, PushKind,
    Script, Value,
};
use tokio::sync::mpsc;

use super::conn::{AsyncConn, AsyncPool, Clients, Step};
use super::layout::{Layout, SHARDS};
use super::lua::Group;
use super::writer::Writer;
use super::{RedisDurability, RedisStore};
use crate::error::StoreError;
use crate::TernId;

/// Takes the lease if free, or extends it if ARGV[1] already holds it.
/// KEYS: lease. ARGV: owner, ttl (ms). Returns 1 if held now, else 0.
static ACQUIRE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local held = redis.call('GET', KEYS[1])
if held and held ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"#,
    )
});

/// Extends the lease only if ARGV[1] holds it: unlike [`ACQUIRE`], a lease
/// that expired is not taken back, so the holder learns it lapsed.
/// KEYS: lease. ARGV: owner, ttl (ms). Returns 1 if extended, else 0.
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"#,
    )
});

/// The lease scripts, loaded when the store opens, as its own are
/// (`lua::scripts`).
pub(super) fn scripts() -> [&'static Script; 3] {
    [&ACQUIRE, &RENEW, &POOL_MEMBERS]
}

/// Says this node runs a pool of sessions (when ARGV[3] is 1) and counts
/// the nodes that do. KEYS: the pool's members (a ZSET of node ids scored
/// by when their word expires, in the server's milliseconds). ARGV: node,
/// ttl (ms), register (1 or 0). Returns the members whose word has not
/// expired. The server's clock, not the nodes', so their drift does not
/// matter; `replicate_commands` lets Redis 6 write after reading TIME (a
/// no-op from Redis 7).
static POOL_MEMBERS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[3] == '1' then
  if redis.replicate_commands then redis.replicate_commands() end
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
end
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"#,
    )
});

/// Notifications queued for a slow reader before new ones are dropped
/// (each is only a hint: the reader also polls the outboxes).
const EVENTS_BUFFER: usize = 1024;

/// How long connecting and subscribing for notifications may take.
const EVENTS_TIMEOUT: Duration = Duration::from_secs(5);

/// How often the notification task wakes without a message, to notice a
/// dropped receiver.
const EVENTS_TICK: Duration = Duration::from_secs(1);

/// Idle ticks between PINGs on the subscription: a half-open TCP
/// connection (the server host vanished) says nothing until written to.
const EVENTS_PING_TICKS: u32 = 10;

/// Waits before resubscribing: the first, and the most.
const EVENTS_BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));

/// The ZSET of the nodes that run the session pool `pool` (see
/// [`Coordinator::pool_members`]); shares the leases' name space and tag,
/// under a name no lease has (lease names never start with `members:`).
fn pool_members_key(pool: &str) -> String {
    format!("members:{pool}")
}

/// The lease that says node `node` is alive.
fn membership(node: u16) -> String {
    format!("node:{node}")
}

/// A token unlikely to repeat across processes and restarts. `RandomState`
/// is seeded from the operating system's randomness, so this needs no
/// random-number crate; time, pid and a counter make two tokens drawn in
/// one process differ too.
fn new_token() -> String {
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut token = String::with_capacity(32);
    for half in 0..2u8 {
        let mut h = RandomState::new().build_hasher();
        h.write_u8(half);
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(DRAWN.fetch_add(1, Ordering::Relaxed));
        token.push_str(&format!("{:016x}", h.finish()));
    }
    token
}

/// The node id in a lease's value, `"<node>:<token>"`.
fn holder_node(value: &[u8]) -> Result<u16, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.split_once(':'))
        .and_then(|(node, _)| node.parse().ok())
        .ok_or_else(|| StoreError::Decode {
            what: "lease holder",
            reason: format!("{:?}", String::from_utf8_lossy(value)),
        })
}

/// A duration as Redis milliseconds, at least 1 (`PX 0` is an error).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Where the notification subscription connects.
#[derive(Clone)]
enum EventsFrom {
    /// The store's one server, with its credentials and TLS settings.
    Server(Box<ConnectionInfo>),
    /// A primary of the cluster, found when subscribing (see
    /// [`Coordinator::cluster_node`]), reached as the first seed address
    /// is: its credentials, and TLS with its trusted CA if it has TLS.
    Cluster(Box<ConnectionInfo>),
}

/// One node's handle on the shared coordination state: its leases, its
/// membership, and the outbox notifications.
///
/// Get it with [`RedisStore::coordinator`] once per process and clone it:
/// each call draws a new owner token, and two coordinators with different
/// tokens are two holders, even with the same node id.
#[derive(Clone)]
pub struct Coordinator {
    conn: AsyncPool,
    layout: Layout,
    node: u16,
    /// `"<node>:<token>"`, the value of every lease this holds.
    owner: String,
    durability: RedisDurability,
    events: EventsFrom,
    /// The pools this node said it runs, left at [`Coordinator::leave`].
    pools: Arc<Mutex<BTreeSet<String>>>,
    /// The store's gathered writes: releases go through it.
    writer: Writer,
}

impl std::fmt::Debug for Coordinator {
    // By hand: the connection settings may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("layout", &self.layout)
            .field("owner", &self.owner)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// This node's coordinator, with a fresh owner token (see
    /// [`Coordinator`]).
    pub fn coordinator(&self) -> Coordinator {
        let events = match &self.clients {
            Clients::Single(client) => {
                EventsFrom::Server(Box::new(client.get_connection_info().clone()))
            }
            Clients::Cluster(_) => EventsFrom::Cluster(Box::new(self.seed.clone())),
        };
        Coordinator {
            conn: self.conn.clone(),
            layout: self.layout.clone(),
            node: self.node,
            owner: format!("{}:{}", self.node, new_token()),
            durability: self.durability,
            events,
            pools: Arc::default(),
            writer: self.writer.clone(),
        }
    }

    /// Puts back in the ready queue the messages claimed by nodes that are
    /// no longer members (their membership lease `node:<id>` expired or was
    /// released); returns how many.
    ///
    /// A node that claims messages without having [joined](Coordinator::join)
    /// counts as dead here: every node sharing the store must join before
    /// it claims. Each message goes back only if its record is unchanged
    /// and still in flight, and a record that changed is left for the next
    /// call. A node that comes back between the membership check and the
    /// requeue can still lose a fresh claim to it; that message is then
    /// sent twice, never lost.
    pub async fn requeue_orphans(&self) -> Result<usize, StoreError> {
        let mut nodes = BTreeSet::new();
        for shard in 0..SHARDS {
            nodes.extend(self.claiming_nodes(shard).await?);
        }
        nodes.remove(&self.node);
        if nodes.is_empty() {
            return Ok(0);
        }
        let nodes: Vec<u16> = nodes.into_iter().collect();
        let keys: Vec<Vec<u8>> = nodes
            .iter()
            .map(|n| self.layout.lease(&membership(*n)))
            .collect();
        let held: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.conn())
            .await?;
        let mut requeued = 0;
        for (node, held) in nodes.into_iter().zip(held) {
            if held.is_none() {
                requeued += self.requeue_claimed_by(node, 1).await?;
            }
        }
        Ok(requeued)
    }

    /// Puts back in the ready queue the message `id` if `node` claimed it
    /// and is no member (see [`RedisStore::requeue_orphans`], which does
    /// this for each message of each such node); whether it went back.
    pub async fn requeue_orphan(&self, node: u16, id: TernId) -> Result<bool, StoreError> {
        if node == self.node {
            return Ok(false);
        }
        self.requeue_one(node, super::layout::id_shard(id), id, 1)
            .await
    }

    /// Whether `id`, read just before, is still `node`'s orphan: its
    /// in-flight entry scored by `node`, and `node` no member. A sweep
    /// lists a dead node's claims once per shard and then puts them back
    /// one by one, some round trips each; meanwhile another sweeping node
    /// may have put one back and a live node claimed it again (its entry
    /// now scored by that node, its record in flight as before), or the
    /// dead node restarted, joined and claimed afresh under the same id.
    /// Putting those back made two nodes send one message. Checked after
    /// the record is read, and the write compares the record, so what is
    /// left is one round trip in which another node must both put the
    /// message back and a live node claim it again (the record then reads
    /// as before): rare, and a message sent twice, never lost.
    pub(super) async fn still_orphaned(
        &self,
        node: u16,
        shard: u64,
        id: TernId,
    ) -> Result<bool, StoreError> {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.layout.in_flight(shard))
            .arg(super::layout::member(id))
            .query_async(&mut self.conn())
            .await?;
        if score != Some(f64::from(node)) {
            return Ok(false);
        }
        let held: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.layout.lease(&membership(node)))
            .query_async(&mut self.conn())
            .await?;
        Ok(held.is_none())
    }

    /// The distinct node ids (scores) in a shard's in-flight set, one
    /// ZRANGEBYSCORE per node rather than one read of every claim.
    async fn claiming_nodes(&self, shard: u64) -> Result<Vec<u16>, StoreError> {
        let key = self.layout.in_flight(shard);
        let mut nodes = Vec::new();
        let mut from = "-inf".to_owned();
        // Scores are node ids, so there are at most 65 536 of them.
        for _ in 0..=u16::MAX as usize {
            let next: Vec<(Vec<u8>, f64)> = redis::cmd("ZRANGEBYSCORE")
                .arg(&key)
                .arg(&from)
                .arg("+inf")
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(1)
                .query_async(&mut self.conn())
                .await?;
            let Some((_, score)) = next.into_iter().next() else {
                break;
            };
            if score.fract() == 0.0 && (0.0..=f64::from(u16::MAX)).contains(&score) {
                nodes.push(score as u16);
            } else {
                tracing::warn!(
                    shard,
                    score,
                    "in-flight entry scored by no node id; left alone"
                );
            }
            from = format!("({score}");
        }
        Ok(nodes)
    }

    /// Tells subscribers that `client`'s outbox has something new. Best
    /// effort: the item is already stored, a lost notification only delays
    /// it until the reader's next poll, so a failure is logged, not
    /// returned (it would make the caller retry a write that succeeded).
    pub(super) async fn notify_outbox(&self, client: &str) {
        let published: Result<i64, redis::RedisError> = redis::cmd("PUBLISH")
            .arg(self.layout.outbox_channel())
            .arg(client)
            .query_async(&mut self.conn())
            .await;
        if let Err(error) = published {
            tracing::warn!(client, %error, "outbox notification not published");
        }
    }
}

impl Coordinator {
    /// This node's id.
    pub fn node(&self) -> u16 {
        self.node
    }

    /// The value this coordinator's leases hold, `"<node>:<token>"`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes the lease `name` for `ttl` if nobody holds it, or extends it
    /// if this coordinator does; `false` if another holder has it. Renew
    /// well within `ttl` (a third of it, say): a late renewal finds the
    /// lease expired and, if someone else took it meanwhile, lost.
    ///
    /// A free lease is taken with a plain `SET … NX PX`, and only a lease
    /// already held (by this coordinator: extended; by another: refused)
    /// goes to the [`ACQUIRE`] script. A message's lease, taken and
    /// released once per receipt, is nearly always free, and a script
    /// costs the server several times the CPU of the command (measured in
    /// BENCHMARKS.md, session 13).
    pub async fn acquire(&self, name: &str, ttl: Duration) -> Result<bool, StoreError> {
        self.acquire_on(self.conn.get(), name, ttl).await
    }

    /// [`Coordinator::acquire`] over `conn`.
    async fn acquire_on(
        &self,
        mut conn: AsyncConn,
        name: &str,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let taken: Option<String> = redis::cmd("SET")
            .arg(self.layout.lease(name))
            .arg(&self.owner)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl))
            .query_async(&mut conn)
            .await?;
        if taken.is_some() {
            super::settle(self.durability, &mut conn).await?;
            return Ok(true);
        }
        self.lease_script(conn, &ACQUIRE, name, Some(ttl)).await
    }

    /// Gives up the lease `name` if this coordinator holds it; otherwise
    /// does nothing (it expired, or someone else holds it now).
    ///
    /// One `del_if` group of the store's gathered writes (`writer.rs`), not
    /// a script call of its own: a message's lease is released once per
    /// receipt, and the releases that come together share one call (one
    /// `GET` and one `DEL` each inside it), where one script each was most
    /// of the server's script calls (BENCHMARKS.md, session 13). Every
    /// lease key has one hash tag, so on a cluster too they share a call.
    pub async fn release(&self, name: &str) -> Result<(), StoreError> {
        let mut group = Group::default();
        group.del_if(self.layout.lease(name), &self.owner);
        self.writer
            .write(Step::Other, vec![group])
            .await
            .map(|_| ())
    }

    /// The node holding the lease `name`, if any.
    pub async fn holder(&self, name: &str) -> Result<Option<u16>, StoreError> {
        let held: Option<Vec<u8>> = redis::cmd("GET")
            .arg(self.layout.lease(name))
            .query_async(&mut self.conn.get())
            .await?;
        held.map(|v| holder_node(&v)).transpose()
    }

    /// The holders of several leases, in order, read at once (one MGET:
    /// every lease key has the same hash tag).
    pub async fn holders(&self, names: &[&str]) -> Result<Vec<Option<u16>>, StoreError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<Vec<u8>> = names.iter().map(|n| self.layout.lease(n)).collect();
        let held: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(keys)
            .query_async(&mut self.conn.get())
            .await?;
        held.into_iter()
            .map(|v| v.map(|v| holder_node(&v)).transpose())
            .collect()
    }

    /// Makes this node a member for `ttl`: takes the lease `node:<id>`.
    ///
    /// If another holder has it, either a process of this node id that
    /// died (killed: its lease runs out) or a live one, waits for it to
    /// expire, polling, for at most `ttl` and a second more. A dead
    /// predecessor's lease (taken with the same `ttl`) expires within that;
    /// a live process renews it, so this fails with
    /// [`StoreError::NodeIdInUse`] rather than let two processes share an
    /// id. Then keep it with [`Coordinator::renew`].
    pub async fn join(&self, ttl: Duration) -> Result<(), StoreError> {
        let name = membership(self.node);
        let deadline = Instant::now() + ttl + Duration::from_secs(1);
        let poll = (ttl / 4).clamp(Duration::from_millis(10), Duration::from_millis(250));
        loop {
            if self.acquire_on(self.conn.membership(), &name, ttl).await? {
                return Ok(());
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::NodeIdInUse(self.node));
            }
            tokio::time::sleep(poll.min(deadline - now)).await;
        }
    }

    /// Extends this node's membership by `ttl`. `false` means it was lost
    /// (it expired, perhaps taken by another process with this id): other
    /// nodes may already have requeued this node's claims, so the caller
    /// should stop sending what it claimed and [`join`](Self::join) again.
    ///
    /// Sent on a connection of its own ([`AsyncPool::membership`]), not
    /// behind the data's commands.
    pub async fn renew(&self, ttl: Duration) -> Result<bool, StoreError> {
        let name = membership(self.node);
        self.lease_script(self.conn.membership(), &RENEW, &name, Some(ttl))
            .await
    }

    /// Ends this node's membership (at shutdown, after its claims are
    /// settled): others then treat what it still had in flight as orphans,
    /// and no longer count it among the nodes running each session pool,
    /// so they take its session slots at once.
    pub async fn leave(&self) -> Result<(), StoreError> {
        let pools = std::mem::take(&mut *self.pools_said());
        for pool in pools {
            let _: i64 = redis::cmd("ZREM")
                .arg(self.layout.lease(&pool_members_key(&pool)))
                .arg(self.node)
                .query_async(&mut self.conn.get())
                .await?;
        }
        self.release(&membership(self.node)).await
    }

    /// How many nodes run the session pool `pool` (an upstream's name),
    /// this one included once it has said so: with `register`, says that
    /// this node runs it for `ttl` more. Each node may then hold its share
    /// of the pool's slots, so the sessions spread over the nodes. A node
    /// that stops saying so (killed, or the upstream removed) drops out of
    /// the count when its word expires; one that leaves drops out at once.
    pub async fn pool_members(
        &self,
        pool: &str,
        ttl: Duration,
        register: bool,
    ) -> Result<usize, StoreError> {
        if register {
            self.pools_said().insert(pool.to_owned());
        }
        let mut invocation = POOL_MEMBERS.key(self.layout.lease(&pool_members_key(pool)));
        invocation
            .arg(self.node)
            .arg(millis(ttl))
            .arg(u8::from(register));
        let count: i64 = invocation.invoke_async(&mut self.conn.get()).await?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    fn pools_said(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        self.pools.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Client names, as their outboxes receive something (from any node).
    ///
    /// Subscribes before it returns, so a push made after this returns is
    /// seen. A task keeps the subscription; if the connection drops, it
    /// subscribes again after a short backoff, and it ends when the
    /// receiver is dropped. Notifications are hints: those published while
    /// the subscription was down are lost, and those that find the
    /// receiver's buffer full are dropped, so the reader must still poll
    /// the outboxes now and then.
    ///
    /// Uses a RESP3 connection (Redis 6 or later) to one server: the
    /// store's server, or on a cluster the first primary the cluster
    /// announces (a cluster passes every PUBLISH to all its nodes).
    pub async fn outbox_events(&self) -> Result<mpsc::Receiver<String>, StoreError> {
        let subscription = self.subscribe().await?;
        let (tx, rx) = mpsc::channel(EVENTS_BUFFER);
        tokio::spawn(self.clone().forward(subscription, tx));
        Ok(rx)
    }

    /// Runs a lease script on `name`; whether it did its change.
    async fn lease_script(
        &self,
        mut conn: AsyncConn,
        script: &Script,
        name: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut invocation = script.key(self.layout.lease(name));
        invocation.arg(&self.owner);
        if let Some(ttl) = ttl {
            invocation.arg(millis(ttl));
        }
        let done: i64 = invocation.invoke_async(&mut conn).await?;
        if done == 1 {
            super::settle(self.durability, &mut conn).await?;
        }
        Ok(done == 1)
    }

    /// A RESP3 connection subscribed to the outbox channel, with the
    /// channel its pushes arrive on.
    async fn subscribe(&self) -> Result<Subscription, StoreError> {
        let mut info = match &self.events {
            EventsFrom::Server(info) => (**info).clone(),
            EventsFrom::Cluster(seed) => self.cluster_node(seed).await?,
        };
        info.redis.protocol = ProtocolVersion::RESP3;
        let client = redis::Client::open(info)?;
        let (push_tx, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(EVENTS_TIMEOUT)
            .set_response_timeout(EVENTS_TIMEOUT)
            .set_push_sender(push_tx);
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(self.events_name())
            .exec_async(&mut conn)
            .await?;
        conn.subscribe(self.layout.outbox_channel()).await?;
        Ok(Subscription { conn, pushes })
    }

    /// The subscription's name in CLIENT LIST, `<channel>:<node>`, so an
    /// operator can tell which node it serves (CLIENT SETNAME refuses
    /// spaces and control characters, so those become `_`).
    fn events_name(&self) -> String {
        format!("{}:{}", self.layout.outbox_channel(), self.node)
            .chars()
            .map(|c| if c.is_ascii_graphic() { c } else { '_' })
            .collect()
    }

    /// The first primary the cluster announces (CLUSTER SLOTS), which is
    /// how the cluster client finds its nodes too, reached as `seed` is
    /// (user, password, TLS): a seed that is down does not stop the
    /// notifications.
    async fn cluster_node(&self, seed: &ConnectionInfo) -> Result<ConnectionInfo, StoreError> {
        let slots: Value = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async(&mut self.conn.get())
            .await?;
        let (host, port) = first_primary(&slots).ok_or_else(|| StoreError::Decode {
            what: "CLUSTER SLOTS answer",
            reason: "no primary with an address".to_owned(),
        })?;
        Ok(ConnectionInfo {
            addr: match &seed.addr {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host,
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host, port),
            },
            redis: seed.redis.clone(),
        })
    }

    /// Forwards client names from `first`, then from each new subscription,
    /// until the receiver is dropped.
    async fn forward(self, first: Subscription, tx: mpsc::Sender<String>) {
        let mut current = Some(first);
        let mut backoff = EVENTS_BACKOFF.0;
        loop {
            let subscription = match current.take() {
                Some(s) => s,
                None => match self.subscribe().await {
                    Ok(s) => {
                        backoff = EVENTS_BACKOFF.0;
                        s
                    }
                    Err(error) => {
                        tracing::warn!(%error, "outbox notifications: cannot subscribe");
                        if tx.is_closed() {
                            return;
                        }
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(EVENTS_BACKOFF.1);
                        continue;
                    }
                },
            };
            match listen(subscription, &tx).await {
                Listened::ReceiverGone => return,
                Listened::ConnectionLost => {
                    tracing::warn!("outbox notifications: connection lost, subscribing again");
                    tokio::time::sleep(backoff).await;
                }
            }
        }
    }
}

/// A live subscription: the connection (kept to hold it open and to PING)
/// and its pushes.
struct Subscription {
    conn: MultiplexedConnection,
    pushes: mpsc::UnboundedReceiver<PushInfo>,
}

/// Why [`listen`] stopped.
enum Listened {
    ReceiverGone,
    ConnectionLost,
}

/// Forwards one subscription's messages until it or the receiver ends.
async fn listen(mut subscription: Subscription, tx: &mpsc::Sender<String>) -> Listened {
    let mut idle = 0;
    loop {
        match tokio::time::timeout(EVENTS_TICK, subscription.pushes.recv()).await {
            Ok(Some(push)) => match push.kind {
                PushKind::Message => {
                    let Some(client) = message_payload(&push.data) else {
                        continue;
                    };
                    match tx.try_send(client) {
                        // Full: the reader is behind and will poll anyway.
                        Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => {}
                        Err(mpsc::error::TrySendError::Closed(_)) => return Listened::ReceiverGone,
                    }
                }
                PushKind::Disconnection => return Listened::ConnectionLost,
                _ => {}
            },
            // The connection's driver ended and dropped its sender.
            Ok(None) => return Listened::ConnectionLost,
            Err(_tick) => {
                if tx.is_closed() {
                    return Listened::ReceiverGone;
                }
                idle += 1;
                if idle >= EVENTS_PING_TICKS {
                    idle = 0;
                    let pong: Result<Value, _> =
                        redis::cmd("PING").query_async(&mut subscription.conn).await;
                    if pong.is_err() {
                        return Listened::ConnectionLost;
                    }
                }
            }
        }
    }
}

/// The text of a pub/sub message push: data is [channel, payload].
fn message_payload(data: &[Value]) -> Option<String> {
    redis::from_redis_value(data.get(1)?).ok()
}

/// Host and port of the first primary in a CLUSTER SLOTS answer: ranges of
/// [start, end, [host, port, id, …] (the primary), replicas…].
fn first_primary(slots: &Value) -> Option<(String, u16)> {
    let Value::Array(ranges) = slots else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(parts) = range else {
            return None;
        };
        let Some(Value::Array(node)) = parts.get(2) else {
            return None;
        };
        let host: String = redis::from_redis_value(node.first()?).ok()?;
        let port: u16 = redis::from_redis_value(node.get(1)?).ok()?;
        (!host.is_empty() && host != "?").then_some((host, port))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_store::{RedisOptions, RedisTopology};

    /// The membership renewal has a connection of its own: with every
    /// data connection of the store held by a blocked command, it is
    /// answered while they still wait. On a shared connection it waited
    /// behind them (here the whole BLPOP; under load, every gathered write
    /// queued on its socket), and a node whose renewal comes after its
    /// lease's expiry stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_membership_renewal_does_not_wait_behind_the_data_connections() {
        let server = tern_testkit::redis::Redis::start("coord-membership");
        let (store, _) = RedisStore::open(RedisOptions {
            topology: RedisTopology::Single(server.address()),
            node: 1,
            prefix: "coordtest".to_owned(),
            durability: RedisDurability::AppendFsyncAlways,
            tls_ca: None,
        })
        .await
        .expect("opens");
        let coordinator = store.coordinator();
        let ttl = Duration::from_secs(30);
        coordinator.join(ttl).await.expect("joins");
        // One blocked BLPOP on each data connection (they are handed out
        // in turn), seen as blocked clients by the server.
        let blocked: Vec<_> = (0..super::super::conn::ASYNC_CONNECTIONS)
            .map(|_| {
                let mut conn = store.conn.get();
                tokio::spawn(async move {
                    redis::cmd("BLPOP")
                        .arg("coordtest-never")
                        .arg(20)
                        .query_async::<Value>(&mut conn)
                        .await
                })
            })
            .collect();
        let mut watch = redis::Client::open(server.address())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("connects");
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let info: String = redis::cmd("INFO")
                .arg("clients")
                .query_async(&mut watch)
                .await
                .expect("INFO");
            let count = info
                .lines()
                .find_map(|l| l.strip_prefix("blocked_clients:"))
                .and_then(|n| n.trim().parse::<usize>().ok());
            if count == Some(blocked.len()) {
                break;
            }
            assert!(Instant::now() < until, "blocked clients: {count:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            coordinator.renew(ttl).await.expect("renews"),
            "still a member"
        );
        let done = blocked.iter().filter(|b| b.is_finished()).count();
        assert_eq!(done, 0, "the renewal waited for a data connection");
        // Free the data connections.
        let _: () = redis::cmd("LPUSH")
            .arg("coordtest-never")
            .arg(vec!["x"; blocked.len()])
            .query_async(&mut watch)
            .await
            .expect("LPUSH");
        for b in blocked {
            let _ = b.await;
        }
    }

    #[test]
    fn tokens_differ_and_holders_parse() {
        assert_ne!(new_token(), new_token());
        assert_eq!(new_token().len(), 32);
        assert_eq!(holder_node(b"7:abc").expect("parses"), 7);
        assert!(holder_node(b"seven:abc").is_err());
        assert!(holder_node(b"70000:abc").is_err());
        assert!(holder_node(b"\xff").is_err());
    }

    #[test]
    fn the_first_announced_primary_is_found() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let slots = Value::Array(vec![Value::Array(vec![
            Value::Int(0),
            Value::Int(5460),
            Value::Array(vec![bulk("10.0.0.1"), Value::Int(7000), bulk("id")]),
        ])]);
        assert_eq!(first_primary(&slots), Some(("10.0.0.1".to_owned(), 7000)));
        assert_eq!(first_primary(&Value::Nil), None);
        assert_eq!(millis(Duration::ZERO), 1);
    }
}
