//! Connections to one Redis server or to a Redis Cluster, behind one async
//! type: every read and write of the store goes through multiplexed async
//! connections, so no runtime thread ever blocks on a round trip.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
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
    pub(super) async fn connect(&self) -> Result<AsyncConn, StoreError> {
        Ok(match self {
            Clients::Single(client) => {
                let config =
                    redis::AsyncConnectionConfig::new().set_connection_timeout(READ_TIMEOUT);
                AsyncConn::Single(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            Clients::Cluster(client) => AsyncConn::Cluster(client.get_async_connection().await?),
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
