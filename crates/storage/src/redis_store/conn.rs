//! Connections to one Redis server or to a Redis Cluster, behind one type
//! each for async and for blocking use.
//!
//! The store needs both: the writes of [`MessageStore`](crate::MessageStore)
//! are async, but some of its reads (`get`, `lookup_upstream`, …) are plain
//! functions, so they use a blocking connection from a small pool.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::cluster::{ClusterClient, ClusterConnection as SyncClusterConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::error::StoreError;

/// How long a blocking read may wait for its answer before it fails: a
/// stuck server must turn into an error, not a hung receipt handler.
const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

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
                .connection_timeout(SYNC_TIMEOUT)
                .response_timeout(SYNC_TIMEOUT);
            if let Some(ca) = tls_ca {
                builder = builder.certs(certificates(ca));
            }
            Ok(Clients::Cluster(builder.build()?))
        } else {
            let [address] = addresses else {
                return Err(StoreError::Redis(format!(
                    "one address expected for a single Redis server, {} given",
                    addresses.len()
                )));
            };
            Ok(Clients::Single(single_client(address, tls_ca)?))
        }
    }

    /// An async connection, shared by every task (both kinds multiplex
    /// concurrent commands on their sockets).
    pub(super) async fn connect(&self) -> Result<AsyncConn, StoreError> {
        Ok(match self {
            Clients::Single(client) => {
                AsyncConn::Single(client.get_multiplexed_async_connection().await?)
            }
            Clients::Cluster(client) => AsyncConn::Cluster(client.get_async_connection().await?),
        })
    }

    fn connect_sync(&self) -> Result<SyncConn, StoreError> {
        Ok(match self {
            Clients::Single(client) => {
                let conn = client.get_connection_with_timeout(SYNC_TIMEOUT)?;
                conn.set_read_timeout(Some(SYNC_TIMEOUT))?;
                conn.set_write_timeout(Some(SYNC_TIMEOUT))?;
                SyncConn::Single(conn)
            }
            Clients::Cluster(client) => SyncConn::Cluster(Box::new(client.get_connection()?)),
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
}

/// Connections in an [`AsyncPool`].
const ASYNC_CONNECTIONS: usize = 8;

impl AsyncPool {
    /// Opens the pool's connections.
    pub(super) async fn open(clients: &Clients) -> Result<Self, StoreError> {
        let mut conns = Vec::with_capacity(ASYNC_CONNECTIONS);
        for _ in 0..ASYNC_CONNECTIONS {
            conns.push(clients.connect().await?);
        }
        Ok(Self {
            conns: conns.into(),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next connection in turn (a clone shares its socket).
    pub(super) fn get(&self) -> AsyncConn {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        self.conns[n % self.conns.len()].clone()
    }
}

/// An async connection to either kind of deployment.
#[derive(Clone)]
pub(super) enum AsyncConn {
    /// One server.
    Single(MultiplexedConnection),
    /// A cluster: commands go to the node that owns their keys' slot.
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for AsyncConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            AsyncConn::Single(c) => c.req_packed_command(cmd),
            AsyncConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            AsyncConn::Single(c) => c.req_packed_commands(cmd, offset, count),
            AsyncConn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            AsyncConn::Single(c) => c.get_db(),
            AsyncConn::Cluster(c) => c.get_db(),
        }
    }
}

/// A blocking connection to either kind of deployment.
pub(super) enum SyncConn {
    Single(redis::Connection),
    Cluster(Box<SyncClusterConnection>),
}

impl SyncConn {
    fn as_dyn(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            SyncConn::Single(c) => c,
            SyncConn::Cluster(c) => c.as_mut(),
        }
    }
}

/// Blocking connections kept for reuse; one is opened when none is free.
pub(super) struct SyncPool {
    free: Mutex<Vec<SyncConn>>,
}

/// Connections kept idle; more may be open while readers run at once.
const POOL_KEEP: usize = 8;

impl SyncPool {
    pub(super) fn new() -> Self {
        Self {
            free: Mutex::new(Vec::new()),
        }
    }

    /// Runs `f` on a free connection. A connection whose command failed is
    /// dropped rather than reused: it may be out of step with its server.
    pub(super) fn with<T>(
        &self,
        clients: &Clients,
        f: impl FnOnce(&mut dyn redis::ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let taken = self.free.lock().map(|mut free| free.pop()).unwrap_or(None);
        let mut conn = match taken {
            Some(conn) => conn,
            None => clients.connect_sync()?,
        };
        let result = f(conn.as_dyn())?;
        if let Ok(mut free) = self.free.lock() {
            if free.len() < POOL_KEEP {
                free.push(conn);
            }
        }
        Ok(result)
    }
}
