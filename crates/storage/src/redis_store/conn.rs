//! Connections to one Redis server or to a Redis Cluster, behind one async
//! type: every read and write of the store goes through multiplexed async
//! connections, so no runtime thread ever blocks on a round trip. A single
//! server's connections are redis-rs `ConnectionManager`s: a connection
//! the server dropped (a restart, a failover) is made again in the
//! background, so the store fails the commands caught by the drop and
//! serves the next ones, instead of failing for ever. The cluster client
//! reconnects to its nodes by itself.
//!
//! Every round trip is counted by the step of a message's life it serves
//! ([`Step`], set for a task with [`STEP`]), for the
//! `tern_redis_round_trips_total` metric.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::error::StoreError;

/// How long a read (and the cluster client's connect and each of its
/// commands) may wait for its answer before it fails: a stuck server must
/// turn into an error, not a hung receipt handler. A single server's
/// multiplexed connection has no timeout of its own; [`bounded`] gives it
/// one.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs a read, failing with [`StoreError::Redis`] if no answer comes
/// within [`READ_TIMEOUT`]. The command left on the multiplexed socket is
/// not lost: its late answer is read and dropped, so the connection stays
/// in step for the commands after it.
pub(super) async fn bounded<T>(
    read: impl Future<Output = RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(READ_TIMEOUT, read).await {
        Ok(answer) => Ok(answer?),
        Err(_) => Err(StoreError::redis(format!(
            "no answer to a read within {READ_TIMEOUT:?}"
        ))),
    }
}

/// The step of a message's life a round trip serves, the label of
/// `tern_redis_round_trips_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// Accepting a message (and reserving ids).
    Accept,
    /// Claiming due messages (the ready-queue scan, the reads, the claim).
    Claim,
    /// Recording an attempt (the submit_sm_resp).
    Attempt,
    /// Ending a message, cancelling or replacing one.
    Finish,
    /// Finding a message by an upstream id.
    Lookup,
    /// Reading a record.
    Get,
    /// Storing a receipt with the client's receipt.
    Receipt,
    /// Putting an item into an outbox (MO), reserving outbox places.
    OutboxPush,
    /// Reading what a client is owed.
    OutboxRead,
    /// Removing what a client acknowledged.
    OutboxAck,
    /// Receipts held before their message is known.
    Held,
    /// Anything else: leases, recovery, purges, queue depths, tools.
    Other,
}

impl Step {
    /// Every step, in the order of [`Step::index`].
    pub const ALL: [Step; 12] = [
        Step::Accept,
        Step::Claim,
        Step::Attempt,
        Step::Finish,
        Step::Lookup,
        Step::Get,
        Step::Receipt,
        Step::OutboxPush,
        Step::OutboxRead,
        Step::OutboxAck,
        Step::Held,
        Step::Other,
    ];

    /// The metric's label.
    pub fn name(self) -> &'static str {
        match self {
            Step::Accept => "accept",
            Step::Claim => "claim",
            Step::Attempt => "attempt",
            Step::Finish => "finish",
            Step::Lookup => "lookup",
            Step::Get => "get",
            Step::Receipt => "receipt",
            Step::OutboxPush => "outbox_push",
            Step::OutboxRead => "outbox_read",
            Step::OutboxAck => "outbox_ack",
            Step::Held => "held",
            Step::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

tokio::task_local! {
    /// The step the current task's round trips are counted under
    /// ([`Step::Other`] outside any).
    pub(super) static STEP: Step;
}

/// Round trips made so far, by step.
#[derive(Debug, Default)]
pub(super) struct RoundTrips([AtomicU64; Step::ALL.len()]);

impl RoundTrips {
    fn count(&self) {
        let step = STEP.try_with(|s| *s).unwrap_or(Step::Other);
        self.0[step.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Each step's count.
    pub(super) fn snapshot(&self) -> Vec<(Step, u64)> {
        Step::ALL
            .iter()
            .map(|s| (*s, self.0[s.index()].load(Ordering::Relaxed)))
            .collect()
    }
}

/// The clients a store opens connections from.
pub(super) enum Clients {
    /// One server.
    Single(redis::Client),
    /// A cluster, found from its seed addresses.
    Cluster(ClusterClient),
}

impl Clients {
    /// Clients for `addresses` (`redis://host:port`, or `rediss://` for
    /// TLS); one address unless `cluster`. `tls_ca` (PEM) is what a TLS
    /// server's certificate must chain to; without it, the system's roots.
    pub(super) fn new(
        addresses: &[String],
        cluster: bool,
        tls_ca: Option<&[u8]>,
    ) -> Result<Self, StoreError> {
        if cluster {
            let mut builder = ClusterClient::builder(addresses.to_vec())
                .connection_timeout(READ_TIMEOUT)
                .response_timeout(READ_TIMEOUT);
            if let Some(ca) = tls_ca {
                builder = builder.certs(certificates(ca));
            }
            Ok(Clients::Cluster(builder.build()?))
        } else {
            let [address] = addresses else {
                return Err(StoreError::redis(format!(
                    "one address expected for a single Redis server, {} given",
                    addresses.len()
                )));
            };
            Ok(Clients::Single(single_client(address, tls_ca)?))
        }
    }

    /// An async connection, shared by every task (both kinds multiplex
    /// concurrent commands on their sockets). Connecting gives up after
    /// [`READ_TIMEOUT`], as a read does.
    async fn connect(&self, trips: &Arc<RoundTrips>) -> Result<AsyncConn, StoreError> {
        let inner = match self {
            Clients::Single(client) => {
                // A dropped connection is made again at once, tried twice
                // (each try bounded by READ_TIMEOUT); if both fail, the next
                // command starts over, so a restarted server is used again
                // as soon as it answers, and a hung one fails an open in
                // about two timeouts instead of hanging it.
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(READ_TIMEOUT)
                    .set_number_of_retries(RECONNECT_RETRIES)
                    .set_factor(RECONNECT_FACTOR_MS)
                    .set_max_delay(RECONNECT_MAX_DELAY_MS);
                Inner::Single(client.get_connection_manager_with_config(config).await?)
            }
            Clients::Cluster(client) => Inner::Cluster(client.get_async_connection().await?),
        };
        Ok(AsyncConn {
            inner,
            trips: trips.clone(),
        })
    }
}

/// A client for one server, trusting `tls_ca` (PEM) for `rediss://`.
pub(super) fn single_client(
    address: &str,
    tls_ca: Option<&[u8]>,
) -> Result<redis::Client, StoreError> {
    Ok(match tls_ca {
        Some(ca) => redis::Client::build_with_tls(address, certificates(ca))?,
        None => redis::Client::open(address)?,
    })
}

fn certificates(ca: &[u8]) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    }
}

/// Async connections shared by every task, used in turn.
///
/// One multiplexed connection would carry every command, but Redis reads
/// a bounded amount from one client per event-loop turn, and under
/// `appendfsync always` each turn ends with an fsync: with hundreds of
/// commands in flight on one socket they queue for many turns (tens of ms
/// each measured with `tern bench`). Several connections are read in the
/// same turn.
#[derive(Clone)]
pub(super) struct AsyncPool {
    conns: Arc<[AsyncConn]>,
    next: Arc<AtomicUsize>,
    /// One more connection, for this node's membership lease alone: a
    /// renewal sent on a data connection queues behind every command
    /// already on its socket (hundreds under load, many event-loop turns
    /// of large gathered writes), and a renewal late past the lease's
    /// expiry stops the node. Here it waits for one turn at most.
    membership: AsyncConn,
    trips: Arc<RoundTrips>,
}

/// Connections in an [`AsyncPool`].
pub(super) const ASYNC_CONNECTIONS: usize = 8;

/// Tries after the first to make a connection (at open or after a drop)
/// before the commands waiting for it fail.
const RECONNECT_RETRIES: usize = 1;

/// The first wait before a dropped connection is made again (ms; doubled
/// at each failure).
const RECONNECT_FACTOR_MS: u64 = 50;

/// The longest wait between two tries to make a dropped connection again
/// (ms).
const RECONNECT_MAX_DELAY_MS: u64 = 1_000;

impl AsyncPool {
    /// Opens the pool's connections.
    pub(super) async fn open(clients: &Clients) -> Result<Self, StoreError> {
        let trips = Arc::new(RoundTrips::default());
        let mut conns = Vec::with_capacity(ASYNC_CONNECTIONS);
        for _ in 0..ASYNC_CONNECTIONS {
            conns.push(clients.connect(&trips).await?);
        }
        Ok(Self {
            conns: conns.into(),
            next: Arc::new(AtomicUsize::new(0)),
            membership: clients.connect(&trips).await?,
            trips,
        })
    }

    /// The connection kept for this node's membership lease (its round
    /// trips counted with the others').
    pub(super) fn membership(&self) -> AsyncConn {
        self.membership.clone()
    }

    /// The round trips made on these connections so far.
    pub(super) fn round_trips(&self) -> &RoundTrips {
        &self.trips
    }

    /// The next connection in turn (a clone shares its socket).
    pub(super) fn get(&self) -> AsyncConn {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns[n % self.conns.len()].clone()
    }
}

/// An async connection to either kind of deployment, counting its round
/// trips.
#[derive(Clone)]
pub(super) struct AsyncConn {
    inner: Inner,
    trips: Arc<RoundTrips>,
}

#[derive(Clone)]
enum Inner {
    /// One server.
    Single(ConnectionManager),
    /// A cluster: commands go to the node that owns their keys' slot.
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for AsyncConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.trips.count();
        match &mut self.inner {
            Inner::Single(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.trips.count();
        match &mut self.inner {
            Inner::Single(c) => c.req_packed_commands(cmd, offset, count),
            Inner::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            Inner::Single(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}
