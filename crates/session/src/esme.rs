//! The ESME role: Tern facing an upstream SMSC.
//!
//! [`connect`] resolves the host name at every call (Telesign load-balances
//! behind one name; a cached address outlives the server), tries each
//! address in turn and binds. [`EsmeClient::run`] keeps a session bound:
//! after any loss, and after the peer's unbind (OVH unbinds every 24 hours),
//! it reconnects with exponential backoff and jitter, reset by a successful
//! bind.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tern_codec::pdu::Bind;
use tern_codec::{Body, COctetString, CommandStatus, FieldError, InterfaceVersion, Npi, Ton};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::backoff::{Backoff, BackoffConfig, BackoffError};
use crate::config::SessionConfig;
use crate::ops::{BindType, Role};
use crate::session::{self, RequestError, Requests, SessionHandle};
use crate::throttle::AdaptiveRate;
use crate::tls::{server_name, MaybeTlsStream, TlsError};

/// What Tern sends in its bind to an upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindParams {
    /// Transmitter, receiver or transceiver.
    pub bind_type: BindType,
    /// The account at the upstream.
    pub system_id: COctetString<16>,
    /// Its password (redacted in `Debug` by the codec).
    pub password: COctetString<9>,
    /// Some vendors route on it (Infobip's `NSMS`, `r:<route>`).
    pub system_type: COctetString<13>,
    /// The version Tern announces.
    pub interface_version: InterfaceVersion,
    /// Assumed peer version when the bind response carries no
    /// `sc_interface_version`: the specification says to assume no TLV
    /// support (3.3), some vendors omit it all the same; the profile decides.
    pub peer_version_if_unannounced: InterfaceVersion,
}

impl BindParams {
    /// A transceiver bind with the given credentials, SMPP 3.4.
    pub fn new(system_id: &str, password: &str) -> Result<Self, FieldError> {
        Ok(Self {
            bind_type: BindType::Transceiver,
            system_id: system_id.try_into()?,
            password: password.try_into()?,
            system_type: COctetString::empty(),
            interface_version: InterfaceVersion::V34,
            peer_version_if_unannounced: InterfaceVersion::V33,
        })
    }

    fn body(&self) -> Body {
        let bind = Bind {
            system_id: self.system_id.clone(),
            password: self.password.clone(),
            system_type: self.system_type.clone(),
            interface_version: self.interface_version,
            addr_ton: Ton::UNKNOWN,
            addr_npi: Npi::UNKNOWN,
            address_range: COctetString::empty(),
        };
        match self.bind_type {
            BindType::Transmitter => Body::BindTransmitter(bind),
            BindType::Receiver => Body::BindReceiver(bind),
            BindType::Transceiver => Body::BindTransceiver(bind),
        }
    }
}

/// Why connecting or binding failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The host name did not resolve.
    #[error("resolving {host}: {source}")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        source: std::io::Error,
    },
    /// No address accepted the connection.
    #[error("connecting to {host}: {source}")]
    Connect {
        /// The name.
        host: String,
        /// The last address's error.
        source: std::io::Error,
    },
    /// The TLS handshake failed (version, certificate, cipher suites).
    #[error("TLS handshake: {0}")]
    Tls(std::io::Error),
    /// The TLS settings cannot be used with this host.
    #[error(transparent)]
    TlsConfig(#[from] TlsError),
    /// The upstream refused the bind.
    #[error("bind refused: {0}")]
    Refused(CommandStatus),
    /// The bind got no answer, or the session ended during it.
    #[error("bind failed: {0}")]
    Bind(RequestError),
}

/// A session bound to an upstream.
#[derive(Debug)]
pub struct UpstreamSession {
    /// The session.
    pub handle: SessionHandle,
    /// Requests from the upstream: receipts and MO (deliver_sm), data_sm.
    pub requests: Requests,
    /// The upstream's system_id from its bind response.
    pub peer_system_id: String,
}

/// Resolves `host` now and connects to the first address that answers.
pub async fn connect_tcp(host: &str, port: u16) -> Result<(TcpStream, SocketAddr), ConnectError> {
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .map_err(|source| ConnectError::Resolve {
            host: host.to_owned(),
            source,
        })?;
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok((stream, addr));
            }
            Err(err) => last = err,
        }
    }
    Err(ConnectError::Connect {
        host: host.to_owned(),
        source: last,
    })
}

/// Binds over an established stream.
pub async fn bind<S>(
    io: S,
    peer: Option<SocketAddr>,
    params: &BindParams,
    config: SessionConfig,
) -> Result<UpstreamSession, ConnectError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (handle, requests) = session::spawn(io, Role::Esme, config, peer);
    let resp = match handle.request(params.body()).await {
        Ok(resp) => resp,
        Err(err) => {
            handle.close();
            return Err(ConnectError::Bind(err));
        }
    };
    if !resp.command_status.is_ok() {
        handle.close();
        return Err(ConnectError::Refused(resp.command_status));
    }
    let (peer_system_id, announced) = match &resp.body {
        Body::BindTransmitterResp(r) | Body::BindReceiverResp(r) | Body::BindTransceiverResp(r) => {
            (
                r.id.as_ref().map(ToString::to_string).unwrap_or_default(),
                r.tlvs.sc_interface_version().copied(),
            )
        }
        _ => (String::new(), None),
    };
    let version = announced.map_or(params.peer_version_if_unannounced, InterfaceVersion);
    handle.set_bound(params.bind_type, &peer_system_id, version);
    Ok(UpstreamSession {
        handle,
        requests,
        peer_system_id,
    })
}

/// TLS towards an upstream.
#[derive(Clone)]
pub struct UpstreamTls {
    /// Client configuration: minimum version, trust anchors, client certificate.
    pub connector: TlsConnector,
    /// The name to send as SNI and to verify, when not the host name.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Keeps one session to an upstream bound.
#[derive(Debug, Clone)]
pub struct EsmeClient {
    /// Host name, resolved at each connect.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS, when the upstream requires it (OVH: 1.3, Telesign: 1.2).
    pub tls: Option<UpstreamTls>,
    /// The bind.
    pub params: BindParams,
    /// The session's settings.
    pub session: SessionConfig,
    /// Reconnect delays.
    pub backoff: BackoffConfig,
    /// Paces submits to the upstream's rate, shared by every session of the
    /// account (OVH: 20/s per connection; `None` sends as fast as the window allows).
    pub pacer: Option<Arc<AdaptiveRate>>,
    /// Requests in flight over every session of the vendor account, when
    /// the vendor limits them per account (OVH: 10); `None`: per session only.
    pub account_window: Option<Arc<tokio::sync::Semaphore>>,
}

impl EsmeClient {
    /// Resolves, connects, completes TLS if configured, and binds.
    pub async fn connect(&self) -> Result<UpstreamSession, ConnectError> {
        let (stream, addr) = connect_tcp(&self.host, self.port).await?;
        let io = match &self.tls {
            None => MaybeTlsStream::Plain(stream),
            Some(tls) => {
                let name = server_name(&self.host, tls.server_name.as_deref())?;
                let limit = self.session.response_timeout;
                tokio::time::timeout(limit, MaybeTlsStream::connect(&tls.connector, name, stream))
                    .await
                    .map_err(|_| ConnectError::Tls(std::io::ErrorKind::TimedOut.into()))?
                    .map_err(ConnectError::Tls)?
            }
        };
        let session = bind(io, Some(addr), &self.params, self.session.clone()).await?;
        if let Some(pacer) = &self.pacer {
            session.handle.set_pacer(pacer.clone());
        }
        if let Some(window) = &self.account_window {
            session.handle.set_account_window(window.clone());
        }
        Ok(session)
    }

    /// Binds, hands each bound session to `sessions`, waits for it to end,
    /// and binds again, until `shutdown` (which unbinds the live session).
    /// Fails at once only on an invalid backoff configuration.
    pub async fn run(
        self,
        sessions: mpsc::Sender<UpstreamSession>,
        shutdown: CancellationToken,
    ) -> Result<(), BackoffError> {
        let mut backoff = Backoff::new(self.backoff.clone())?;
        loop {
            let attempt = tokio::select! {
                attempt = self.connect() => attempt,
                () = shutdown.cancelled() => return Ok(()),
            };
            match attempt {
                Ok(session) => {
                    backoff.reset();
                    info!(host = %self.host, port = self.port, "bound to upstream");
                    let handle = session.handle.clone();
                    if sessions.send(session).await.is_err() {
                        handle.unbind().await;
                        return Ok(());
                    }
                    tokio::select! {
                        () = handle.closed() => {
                            warn!(host = %self.host, reason = ?handle.close_reason(), "upstream session ended; reconnecting");
                        }
                        () = shutdown.cancelled() => {
                            handle.unbind().await;
                            return Ok(());
                        }
                    }
                }
                Err(err) => warn!(host = %self.host, port = self.port, %err, "connect failed"),
            }
            let delay: Duration = backoff.next_delay();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown.cancelled() => return Ok(()),
            }
        }
    }
}
