//! TLS on the simulator's listener, so it can stand in for vendors that
//! only speak SMPP over TLS: OVHcloud (TLS 1.3 minimum) and Telesign
//! (TLS 1.2). A test pins both ends of the version range to see that Tern
//! connects to each, and that it refuses a peer below the floor it was
//! configured with.
//!
//! The simulator builds its rustls configuration through
//! `tern_session::tls`, the same code Tern's own listener uses, so the
//! sandbox exercises the product's TLS, not a look-alike. That module only
//! knows a *minimum* version (a real listener never wants a maximum); the
//! maximum is applied here by leaving out the cipher suites of TLS 1.3: a
//! rustls server offers a version only when it has a suite for it.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use tern_session::tls::{supported_cipher_suites, MaybeTlsStream, ServerTls, TlsError, TlsVersion};
use tokio::net::TcpStream;

/// The simulator's TLS: a certificate and the range of versions offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimTls {
    /// PEM file: the certificate first, then any intermediates.
    pub cert_chain_pem: PathBuf,
    /// PEM file: the certificate's private key.
    pub key_pem: PathBuf,
    /// Lowest version offered (OVHcloud-like: `Tls13`).
    pub min_version: TlsVersion,
    /// Highest version offered (Telesign-like: `Tls12`), so a client whose
    /// floor is above it is refused during the handshake.
    pub max_version: TlsVersion,
}

impl SimTls {
    /// TLS 1.2 and 1.3 with this certificate and key.
    pub fn new(cert_chain_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        Self {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }
    }

    /// Reads the files and returns the server side of the handshake.
    /// Fails on unreadable or unusable files, and on a range whose minimum
    /// is above its maximum: both at start, never at the first connection.
    pub(crate) fn handshake(&self) -> Result<Handshake, SimTlsError> {
        if self.min_version > self.max_version {
            return Err(SimTlsError::EmptyRange {
                min: self.min_version,
                max: self.max_version,
            });
        }
        let mut server = ServerTls::new(&self.cert_chain_pem, &self.key_pem);
        server.min_version = self.min_version;
        if self.max_version < TlsVersion::Tls13 {
            server.cipher_suites = Some(tls12_suites());
        }
        let acceptor = server.load()?;
        Ok(Arc::new(move |stream| {
            let acceptor = acceptor.clone();
            Box::pin(async move { MaybeTlsStream::accept(&acceptor, stream).await })
        }))
    }
}

/// The server side of a TLS handshake over an accepted connection. A
/// closure over the acceptor, so this crate needs no direct dependency on
/// tokio-rustls to hold one.
pub(crate) type Handshake = Arc<
    dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = io::Result<MaybeTlsStream<TcpStream>>> + Send>>
        + Send
        + Sync,
>;

/// The cipher suites of TLS 1.2 this build supports, by IANA name. TLS 1.2
/// names follow RFC 5246's `TLS_<key exchange>_WITH_<cipher>_<hash>`; TLS
/// 1.3 names (RFC 8446 §B.4) have no key exchange and so no `_WITH_`.
fn tls12_suites() -> Vec<String> {
    supported_cipher_suites()
        .into_iter()
        .filter(|name| name.contains("_WITH_"))
        .collect()
}

/// Why the simulator's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimTlsError {
    /// The minimum version is above the maximum.
    #[error("TLS minimum version {min} is above the maximum {max}")]
    EmptyRange {
        /// As configured.
        min: TlsVersion,
        /// As configured.
        max: TlsVersion,
    },
    /// The certificate, the key or the suites could not be used.
    #[error(transparent)]
    Config(#[from] TlsError),
}
