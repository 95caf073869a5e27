//! TLS for SMPP sessions, in both roles.
//!
//! Tern speaks SMPP over TLS on both sides: as a server towards its clients
//! (ESMEs binding to Tern's listener) and as a client towards upstream SMSCs.
//! SMPP has no STARTTLS; a TLS session starts with the first byte on the
//! socket, so TLS is a property of the connection, decided before any PDU is
//! read or written. The engine therefore works on [`MaybeTlsStream`], which is
//! a plain socket or a TLS stream in either role behind one `AsyncRead` +
//! `AsyncWrite` type.
//!
//! The knobs here exist because the vendors in `VENDORS.md` differ:
//! - OVH requires **TLS 1.3 minimum**: [`TlsVersion`] is a *minimum* and a
//!   peer that cannot reach it is refused during the handshake;
//! - Telesign requires **TLS 1.2 with listed ciphers**: suites can be
//!   restricted by IANA name (`cipher_suites`), and an unknown name is a
//!   configuration error, never silently dropped;
//! - Infobip serves TLS on its own host and port: nothing special beyond
//!   the ordinary client config, and a `server_name` override for when the
//!   address connected to is not the name on the certificate.
//!
//! Invariants:
//! - the cryptography is always rustls' *ring* provider, passed explicitly
//!   (`builder_with_provider`), never a process-wide default, so two
//!   configurations can never influence each other and nothing depends on
//!   which provider some other crate installed;
//! - everything that can be wrong in a configuration (unreadable files,
//!   missing keys, unknown cipher names, an empty trust store, a bad server
//!   name) fails when the config is built, before a port is bound or a
//!   connection attempted;
//! - error messages name the file, entry or name at fault but never contain
//!   key material (PEM parse errors are reduced to a fixed reason).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::SupportedProtocolVersion;
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, ServerConfig, SupportedCipherSuite};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The lowest TLS version a session accepts.
///
/// It is a minimum, not an exact version: vendors state floors ("TLS 1.3
/// minimum", "TLS 1.2 required") and a higher version than asked is always
/// welcome. rustls implements nothing below TLS 1.2, so that is the floor of
/// the floor and the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum TlsVersion {
    /// TLS 1.2 or 1.3 (Telesign requires 1.2; most peers offer both).
    #[default]
    Tls12,
    /// TLS 1.3 only (OVH's minimum).
    Tls13,
}

impl TlsVersion {
    /// The rustls protocol versions allowed by this minimum.
    fn protocol_versions(self) -> &'static [&'static SupportedProtocolVersion] {
        static TLS12_AND_UP: &[&SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static TLS13_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            TlsVersion::Tls12 => TLS12_AND_UP,
            TlsVersion::Tls13 => TLS13_ONLY,
        }
    }

    /// Maps a negotiated rustls version back; `None` for anything rustls
    /// might report that is not one of ours.
    fn from_protocol(version: ProtocolVersion) -> Option<Self> {
        match version {
            ProtocolVersion::TLSv1_2 => Some(TlsVersion::Tls12),
            ProtocolVersion::TLSv1_3 => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        })
    }
}

impl FromStr for TlsVersion {
    type Err = TlsError;

    /// Accepts the spellings operators write in config files: `1.2`,
    /// `TLS1.2`, `TLSv1.2`, `tls 1.3`… (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm: String = s
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase();
        let digits = norm
            .strip_prefix("tlsv")
            .or_else(|| norm.strip_prefix("tls"))
            .unwrap_or(&norm);
        match digits {
            "1.2" => Ok(TlsVersion::Tls12),
            "1.3" => Ok(TlsVersion::Tls13),
            _ => Err(TlsError::UnknownVersion {
                value: s.to_owned(),
            }),
        }
    }
}

/// Everything that can go wrong while building a TLS configuration.
///
/// Each variant names what is at fault (a path, a cipher name, a server
/// name) so an operator can fix the config without reading code. No variant
/// carries key material: PEM problems are reduced to a fixed reason.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate or key file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    FileUnreadable {
        /// The file that could not be read.
        path: PathBuf,
        /// Why the operating system refused.
        #[source]
        source: io::Error,
    },
    /// A file meant to hold certificates holds no `CERTIFICATE` section.
    #[error("no certificate found in {} (expected PEM `-----BEGIN CERTIFICATE-----` sections)", path.display())]
    NoCertificate {
        /// The file without certificates.
        path: PathBuf,
    },
    /// A file meant to hold a private key holds no key section.
    #[error("no private key found in {} (expected a PEM PKCS#8, PKCS#1 or SEC1 private key)", path.display())]
    NoPrivateKey {
        /// The file without a key.
        path: PathBuf,
    },
    /// A file is not well-formed PEM.
    #[error("malformed PEM in {}: {reason}", path.display())]
    BadPem {
        /// The malformed file.
        path: PathBuf,
        /// A fixed description; never the offending bytes, which may be key
        /// material.
        reason: &'static str,
    },
    /// rustls refused part of the configuration (a certificate it cannot
    /// parse, a key that does not match its certificate…).
    #[error("{what}: {source}")]
    Rustls {
        /// Which part of the configuration was refused, and from where.
        what: String,
        /// rustls' reason.
        #[source]
        source: rustls::Error,
    },
    /// The client-certificate verifier could not be built from the CA list
    /// (for instance an empty list).
    #[error("client CA certificates{origin} cannot be used: {source}")]
    ClientVerifier {
        /// Where the CA list came from: empty, or `" in /path/to/ca.pem"`.
        origin: String,
        /// rustls' reason.
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    /// A cipher-suite name matches none of the suites this build supports.
    #[error("unknown or unsupported cipher suite {name:?} (supported: {supported})")]
    UnknownCipherSuite {
        /// The entry as written in the configuration.
        name: String,
        /// The IANA names that would have been accepted.
        supported: String,
    },
    /// The cipher-suite list leaves nothing usable at the minimum version
    /// (e.g. only TLS 1.2 suites with a TLS 1.3 minimum, or an empty list).
    #[error("none of the configured cipher suites can be used with {min_version} or later")]
    NoUsableCipherSuite {
        /// The minimum version the suites were checked against.
        min_version: TlsVersion,
    },
    /// A client configuration trusts no certificate authority at all, so
    /// every handshake would fail.
    #[error("no trust anchors: set an extra CA file or enable the bundled web PKI roots")]
    NoTrustAnchors,
    /// A host or override is not a valid DNS name or IP address for
    /// certificate verification.
    #[error("invalid TLS server name {name:?}")]
    InvalidServerName {
        /// The name as given.
        name: String,
    },
    /// A TLS version string is not one we know.
    #[error("unknown TLS version {value:?} (expected 1.2 or 1.3)")]
    UnknownVersion {
        /// The value as given.
        value: String,
    },
}

impl TlsError {
    /// Adds the files a configuration was loaded from to errors that would
    /// otherwise only say which part was refused.
    fn with_files(self, files: &[&Path]) -> Self {
        let list = files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            TlsError::Rustls { what, source } => TlsError::Rustls {
                what: format!("{what} (from {list})"),
                source,
            },
            other => other,
        }
    }
}

// ---------------------------------------------------------------------------
// PEM files

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::FileUnreadable {
        path: path.to_owned(),
        source,
    })
}

/// Reduces a PEM error to a fixed reason: the error's own text may quote
/// bytes of the file, which may be a private key.
fn bad_pem(path: &Path, err: &pem::Error) -> TlsError {
    let reason = match err {
        pem::Error::MissingSectionEnd { .. } => "a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a section is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        pem::Error::NoItemsFound => "no usable section",
        _ => "unreadable PEM",
    };
    TlsError::BadPem {
        path: path.to_owned(),
        reason,
    }
}

/// Reads every certificate in a PEM file, in file order (leaf first for a
/// chain). A file with none is an error: an empty chain or CA list is never
/// what the operator meant.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read_file(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad_pem(path, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read_file(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        other => bad_pem(path, &other),
    })
}

// ---------------------------------------------------------------------------
// Crypto provider and cipher suites

/// The IANA name of a suite. rustls spells TLS 1.3 suites `TLS13_…`; IANA
/// (and vendors' documentation) spell them `TLS_…`.
fn iana_name(suite: &SupportedCipherSuite) -> String {
    let name = suite.suite().as_str().unwrap_or("UNKNOWN");
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name.to_owned(),
    }
}

/// The IANA names of every cipher suite this build can negotiate, in
/// rustls' preference order.
pub fn supported_cipher_suites() -> Vec<String> {
    rustls::crypto::ring::ALL_CIPHER_SUITES
        .iter()
        .map(iana_name)
        .collect()
}

/// The *ring* crypto provider, optionally restricted to the named cipher
/// suites (IANA names such as `TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`,
/// case-insensitive; rustls' own `TLS13_…` spelling is accepted too).
///
/// The order of `cipher_suites` becomes the preference order. An unknown
/// name is an error naming it: a typo must not silently widen or narrow
/// what a vendor agreed to.
pub fn crypto_provider(cipher_suites: Option<&[String]>) -> Result<Arc<CryptoProvider>, TlsError> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = cipher_suites {
        let all = rustls::crypto::ring::ALL_CIPHER_SUITES;
        let mut chosen: Vec<SupportedCipherSuite> = Vec::with_capacity(names.len());
        for name in names {
            let wanted = name.trim();
            let found = all.iter().find(|s| {
                iana_name(s).eq_ignore_ascii_case(wanted)
                    || s.suite()
                        .as_str()
                        .is_some_and(|n| n.eq_ignore_ascii_case(wanted))
            });
            match found {
                Some(suite) => {
                    if !chosen.iter().any(|c| c.suite() == suite.suite()) {
                        chosen.push(*suite);
                    }
                }
                None => {
                    return Err(TlsError::UnknownCipherSuite {
                        name: name.clone(),
                        supported: supported_cipher_suites().join(", "),
                    })
                }
            }
        }
        provider.cipher_suites = chosen;
    }
    Ok(Arc::new(provider))
}

/// Checks that at least one suite can run at `min_version` or above, so the
/// problem is reported as a cipher/version mismatch rather than as rustls'
/// generic "no usable cipher suites".
fn check_suites(provider: &CryptoProvider, min_version: TlsVersion) -> Result<(), TlsError> {
    let versions = min_version.protocol_versions();
    let usable = provider
        .cipher_suites
        .iter()
        .any(|s| versions.iter().any(|v| v.version == s.version().version));
    if usable {
        Ok(())
    } else {
        Err(TlsError::NoUsableCipherSuite { min_version })
    }
}

fn root_store<'a>(
    certs: impl IntoIterator<Item = CertificateDer<'a>>,
    what: &str,
) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|source| TlsError::Rustls {
            what: format!("{what}: certificate #{}", i + 1),
            source,
        })?;
    }
    Ok(roots)
}

// ---------------------------------------------------------------------------
// Server role

/// TLS settings of a listener towards Tern's clients, from files.
///
/// Files rather than bytes because operators rotate certificates on disk;
/// [`ServerTls::load`] re-reads them each time it is called, so a reload is
/// just a second call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    /// PEM file with the server certificate first, then any intermediates,
    /// so clients that only know the root can still build the chain.
    pub cert_chain_pem: PathBuf,
    /// PEM file with the private key of the first certificate.
    pub key_pem: PathBuf,
    /// Lowest version a client may negotiate.
    pub min_version: TlsVersion,
    /// When set, clients must present a certificate signed by one of the
    /// CAs in this PEM file (mutual TLS as a second factor besides the
    /// SMPP password); when unset, no client certificate is asked for.
    pub client_ca_pem: Option<PathBuf>,
    /// Optional restriction to these cipher suites (IANA names), for
    /// clients whose contracts list them.
    pub cipher_suites: Option<Vec<String>>,
}

impl ServerTls {
    /// Settings with the given certificate chain and key, TLS 1.2 minimum,
    /// no client certificates and rustls' default cipher suites.
    pub fn new(cert_chain_pem: impl Into<PathBuf>, key_pem: impl Into<PathBuf>) -> Self {
        ServerTls {
            cert_chain_pem: cert_chain_pem.into(),
            key_pem: key_pem.into(),
            min_version: TlsVersion::default(),
            client_ca_pem: None,
            cipher_suites: None,
        }
    }

    /// Reads the files and builds the rustls server configuration.
    pub fn config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let chain = load_certs(&self.cert_chain_pem)?;
        let key = load_private_key(&self.key_pem)?;
        let client_ca = match &self.client_ca_pem {
            Some(path) => Some(load_certs(path)?),
            None => None,
        };
        server_config(
            chain,
            key,
            self.min_version,
            client_ca,
            self.cipher_suites.as_deref(),
        )
        .map_err(|e| match (e, &self.client_ca_pem) {
            (TlsError::ClientVerifier { source, .. }, Some(path)) => TlsError::ClientVerifier {
                origin: format!(" in {}", path.display()),
                source,
            },
            (e, ca) => {
                let mut files = vec![self.cert_chain_pem.as_path(), self.key_pem.as_path()];
                files.extend(ca.as_deref());
                e.with_files(&files)
            }
        })
    }

    /// Reads the files and returns an acceptor for incoming connections.
    pub fn load(&self) -> Result<TlsAcceptor, TlsError> {
        Ok(acceptor(self.config()?))
    }
}

/// Builds a server configuration from certificates and key already in
/// memory (tests, or certificates fetched from elsewhere).
///
/// `cert_chain` is leaf first. With `client_ca` set, clients must present a
/// certificate that chains to one of those CAs.
pub fn server_config(
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    min_version: TlsVersion,
    client_ca: Option<Vec<CertificateDer<'static>>>,
    cipher_suites: Option<&[String]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider(cipher_suites)?;
    check_suites(&provider, min_version)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(min_version.protocol_versions())
        .map_err(|source| TlsError::Rustls {
            what: "server protocol versions".into(),
            source,
        })?;
    let builder = match client_ca {
        Some(cas) => {
            let roots = root_store(cas, "client CA list")?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::ClientVerifier {
                    origin: String::new(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(cert_chain, key)
        .map_err(|source| TlsError::Rustls {
            what: "server certificate chain and private key".into(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Wraps a server configuration for tokio.
pub fn acceptor(config: Arc<ServerConfig>) -> TlsAcceptor {
    TlsAcceptor::from(config)
}

// ---------------------------------------------------------------------------
// Client role

/// TLS settings of a connection from Tern to an upstream SMSC, from files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    /// Lowest version Tern will accept from the upstream (OVH: 1.3).
    pub min_version: TlsVersion,
    /// PEM file of extra CAs to trust, for vendors whose certificates come
    /// from a private CA, and for test upstreams.
    pub extra_ca_pem: Option<PathBuf>,
    /// Trust the bundled Mozilla root programme (webpki-roots). On by
    /// default because public vendors use public CAs; off to trust only
    /// `extra_ca_pem` (pinning a private CA).
    pub use_webpki_roots: bool,
    /// Name sent as SNI and checked against the certificate. Default: the
    /// host connected to. Needed when connecting by IP address, or through
    /// a name that is not the one on the vendor's certificate.
    pub server_name: Option<String>,
    /// Client certificate chain and key PEM files, for vendors that
    /// authenticate binds by certificate as well.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// Optional restriction to these cipher suites (IANA names), for
    /// vendors that list the ciphers they accept (Telesign).
    pub cipher_suites: Option<Vec<String>>,
}

impl Default for ClientTls {
    fn default() -> Self {
        ClientTls {
            min_version: TlsVersion::default(),
            extra_ca_pem: None,
            use_webpki_roots: true,
            server_name: None,
            client_cert: None,
            cipher_suites: None,
        }
    }
}

impl ClientTls {
    /// Reads the files and builds the rustls client configuration. Also
    /// validates `server_name`, so a bad override is found at startup and
    /// not at the first connection.
    pub fn config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        if let Some(name) = &self.server_name {
            server_name(name, None)?;
        }
        let extra = match &self.extra_ca_pem {
            Some(path) => load_certs(path)?,
            None => Vec::new(),
        };
        let client_cert = match &self.client_cert {
            Some((chain, key)) => Some((load_certs(chain)?, load_private_key(key)?)),
            None => None,
        };
        let mut files: Vec<&Path> = Vec::new();
        files.extend(self.extra_ca_pem.as_deref());
        if let Some((chain, key)) = &self.client_cert {
            files.push(chain);
            files.push(key);
        }
        client_config(
            self.min_version,
            extra,
            self.use_webpki_roots,
            client_cert,
            self.cipher_suites.as_deref(),
        )
        .map_err(|e| e.with_files(&files))
    }

    /// Reads the files and returns a connector for outgoing connections.
    pub fn load(&self) -> Result<TlsConnector, TlsError> {
        Ok(connector(self.config()?))
    }

    /// The name to verify when connecting to `host`: the configured
    /// override if any, else `host`.
    pub fn server_name_for(&self, host: &str) -> Result<ServerName<'static>, TlsError> {
        server_name(host, self.server_name.as_deref())
    }
}

/// Builds a client configuration from certificates already in memory.
///
/// `extra_roots` are trusted in addition to the bundled Mozilla roots when
/// `use_webpki_roots` is set, or alone otherwise. `client_cert` is a chain
/// (leaf first) and its key. Trusting nothing at all is an error.
pub fn client_config(
    min_version: TlsVersion,
    extra_roots: Vec<CertificateDer<'static>>,
    use_webpki_roots: bool,
    client_cert: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    cipher_suites: Option<&[String]>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = crypto_provider(cipher_suites)?;
    check_suites(&provider, min_version)?;
    let mut roots = root_store(extra_roots, "extra CA list")?;
    if use_webpki_roots {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    if roots.is_empty() {
        return Err(TlsError::NoTrustAnchors);
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(min_version.protocol_versions())
        .map_err(|source| TlsError::Rustls {
            what: "client protocol versions".into(),
            source,
        })?
        .with_root_certificates(roots);
    let config = match client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|source| TlsError::Rustls {
                what: "client certificate chain and private key".into(),
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Wraps a client configuration for tokio.
pub fn connector(config: Arc<ClientConfig>) -> TlsConnector {
    TlsConnector::from(config)
}

/// The name to send as SNI and verify the certificate against: `override_`
/// if given, else `host`. IP addresses (also `[::1]` in brackets) are
/// verified against the certificate's IP SANs; names against its DNS SANs.
pub fn server_name(host: &str, override_: Option<&str>) -> Result<ServerName<'static>, TlsError> {
    let name = override_.unwrap_or(host).trim();
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare)
        .map(|n| n.to_owned())
        .map_err(|_| TlsError::InvalidServerName {
            name: name.to_owned(),
        })
}

/// The rustls error behind a failed handshake or TLS read/write, if any.
///
/// tokio-rustls reports TLS failures as `io::Error`s wrapping a
/// [`rustls::Error`]; this digs it out so callers can classify a failure
/// by type (bad certificate, version mismatch, alert from the peer) rather
/// than by message text.
pub fn rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    err.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
}

// ---------------------------------------------------------------------------
// Streams

/// A connection that is plain TCP or TLS in either role, so the session
/// engine has one stream type whatever the listener or upstream profile
/// says.
///
/// All variants are `Unpin` when `S` is, so the I/O traits delegate with
/// `Pin::new` and need no pin projection.
#[derive(Debug)]
pub enum MaybeTlsStream<S> {
    /// No TLS (vendors that offer plain SMPP, local tests).
    Plain(S),
    /// Tern is the TLS client (towards an upstream SMSC).
    ClientTls(tokio_rustls::client::TlsStream<S>),
    /// Tern is the TLS server (a client bound to Tern's listener).
    ServerTls(tokio_rustls::server::TlsStream<S>),
}

impl<S> MaybeTlsStream<S> {
    /// Whether the connection is encrypted.
    pub fn is_tls(&self) -> bool {
        !matches!(self, MaybeTlsStream::Plain(_))
    }

    fn common_state(&self) -> Option<&rustls::CommonState> {
        match self {
            MaybeTlsStream::Plain(_) => None,
            MaybeTlsStream::ClientTls(s) => Some(s.get_ref().1),
            MaybeTlsStream::ServerTls(s) => Some(s.get_ref().1),
        }
    }

    /// The TLS version in use; `None` for plain connections. Logged per
    /// session so an operator can check a vendor's floor is honoured.
    pub fn negotiated_version(&self) -> Option<TlsVersion> {
        self.common_state()
            .and_then(|c| c.protocol_version())
            .and_then(TlsVersion::from_protocol)
    }

    /// The cipher suite in use; `None` for plain connections.
    pub fn cipher_suite(&self) -> Option<SupportedCipherSuite> {
        self.common_state()
            .and_then(|c| c.negotiated_cipher_suite())
    }

    /// The IANA name of the cipher suite in use, for logs.
    pub fn cipher_suite_name(&self) -> Option<String> {
        self.cipher_suite().map(|s| iana_name(&s))
    }

    /// The certificates the peer presented (leaf first): the upstream's
    /// server chain, or a client's certificate when client certificates are
    /// required.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.common_state().and_then(|c| c.peer_certificates())
    }

    /// The underlying transport, e.g. to read the peer address.
    pub fn get_ref(&self) -> &S {
        match self {
            MaybeTlsStream::Plain(s) => s,
            MaybeTlsStream::ClientTls(s) => s.get_ref().0,
            MaybeTlsStream::ServerTls(s) => s.get_ref().0,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> MaybeTlsStream<S> {
    /// Performs the client handshake over `stream`. Not bounded in time:
    /// the caller wraps it in its connect/bind timeout.
    pub async fn connect(
        connector: &TlsConnector,
        name: ServerName<'static>,
        stream: S,
    ) -> io::Result<Self> {
        connector
            .connect(name, stream)
            .await
            .map(MaybeTlsStream::ClientTls)
    }

    /// Performs the server handshake over `stream`. Not bounded in time:
    /// the caller wraps it in its bind timeout so a silent client cannot
    /// hold a connection slot.
    pub async fn accept(acceptor: &TlsAcceptor, stream: S) -> io::Result<Self> {
        acceptor.accept(stream).await.map(MaybeTlsStream::ServerTls)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for MaybeTlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::ClientTls(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTlsStream::ServerTls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for MaybeTlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::ClientTls(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTlsStream::ServerTls(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTlsStream::ClientTls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MaybeTlsStream::ServerTls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MaybeTlsStream::Plain(s) => s.is_write_vectored(),
            MaybeTlsStream::ClientTls(s) => s.is_write_vectored(),
            MaybeTlsStream::ServerTls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::ClientTls(s) => Pin::new(s).poll_flush(cx),
            MaybeTlsStream::ServerTls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTlsStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::ClientTls(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTlsStream::ServerTls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
