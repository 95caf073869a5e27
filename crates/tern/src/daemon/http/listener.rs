//! Accepting HTTP API connections, plain or TLS (rustls, the same keys as
//! the SMPP listeners), for axum.
//!
//! TLS handshakes run in tasks of their own, bounded in time, so a client
//! that connects and sends nothing holds up no one else's connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tern_session::tls::MaybeTlsStream;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections ready for HTTP (handshake done), waiting for axum.
const READY_QUEUE: usize = 64;

/// A connection ready for HTTP.
type Ready = (MaybeTlsStream<TcpStream>, SocketAddr);

/// One `[[http_listener]]`'s connections, as axum takes them.
#[derive(Debug)]
pub struct Accept {
    ready: mpsc::Receiver<Ready>,
    local: io::Result<SocketAddr>,
}

impl Accept {
    /// Accepts on `socket` until `stop`, with TLS when `tls` is set; the
    /// accepting and the handshakes run on `tasks`.
    pub fn new(
        socket: TcpListener,
        tls: Option<TlsAcceptor>,
        stop: CancellationToken,
        tasks: &TaskTracker,
    ) -> Self {
        let local = socket.local_addr();
        let (tx, ready) = mpsc::channel(READY_QUEUE);
        tasks.spawn(accept_loop(socket, tls, tx, stop, tasks.clone()));
        Self { ready, local }
    }
}

/// Accepts TCP connections and hands each on, after its handshake when
/// TLS; a failed accept (out of file descriptors) backs off and is logged
/// once, as on the SMPP listeners.
async fn accept_loop(
    socket: TcpListener,
    tls: Option<TlsAcceptor>,
    ready: mpsc::Sender<Ready>,
    stop: CancellationToken,
    tasks: TaskTracker,
) {
    let mut backoff = tern_session::smsc::AcceptBackoff::new(socket.local_addr().ok());
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                backoff.succeeded();
                accepted
            }
            Err(err) => {
                tokio::time::sleep(backoff.failed(&err)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                if ready
                    .send((MaybeTlsStream::Plain(stream), peer))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Some(acceptor) => {
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tasks.spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send((MaybeTlsStream::ServerTls(stream), peer)).await;
                        }
                        Ok(Err(err)) => debug!(%peer, %err, "HTTP API TLS handshake failed"),
                        Err(_) => debug!(%peer, "HTTP API TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl axum::serve::Listener for Accept {
    type Io = MaybeTlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // Stopped: no more connections; axum's graceful shutdown ends
            // the server.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        match &self.local {
            Ok(addr) => Ok(*addr),
            Err(err) => Err(io::Error::new(err.kind(), err.to_string())),
        }
    }
}

/// The client's address, for `allowed_ips`.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, Accept>> for Peer {
    fn connect_info(stream: IncomingStream<'_, Accept>) -> Self {
        Peer(*stream.remote_addr())
    }
}
