//! TLS in both roles over real sockets on 127.0.0.1, with certificates made
//! at test time by rcgen. Every network wait is bounded so a regression
//! fails instead of hanging.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::certs::Ca;
use rustls::{AlertDescription, CertificateError, ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::ServerName;
use tern_session::tls::{
    acceptor, client_config, connector, crypto_provider, rustls_error, server_config, server_name,
    supported_cipher_suites, ClientTls, MaybeTlsStream, ServerTls, TlsError, TlsVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// Upper bound for any single network step; generous for a loaded CI box.
const WAIT: Duration = Duration::from_secs(5);

/// The usual server: `localhost` and 127.0.0.1, signed by `ca`.
fn server_for(ca: &Ca, min: TlsVersion) -> Arc<ServerConfig> {
    let leaf = ca.server_leaf(&["localhost", "127.0.0.1"]);
    server_config(leaf.chain(), leaf.key_der(), min, None, None).expect("server config")
}

/// A client trusting only `ca`.
fn client_for(ca: &Ca, min: TlsVersion) -> Arc<ClientConfig> {
    client_config(min, vec![ca.der()], false, None, None).expect("client config")
}

/// A client that speaks TLS 1.2 and nothing else (no `Tern` API offers a
/// maximum, so it is built with rustls directly).
fn client_tls12_only(ca: &Ca) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).expect("add CA");
    let config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("TLS 1.2 client")
            .with_root_certificates(roots)
            .with_no_client_auth();
    Arc::new(config)
}

/// A server that speaks TLS 1.2 and nothing else, like an older SMSC.
fn server_tls12_only(ca: &Ca) -> Arc<ServerConfig> {
    let leaf = ca.server_leaf(&["localhost", "127.0.0.1"]);
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("TLS 1.2 server")
            .with_no_client_auth()
            .with_single_cert(leaf.chain(), leaf.key_der())
            .expect("server cert");
    Arc::new(config)
}

fn ip_name() -> ServerName<'static> {
    server_name("127.0.0.1", None).expect("IP server name")
}

// ---------------------------------------------------------------------------
// Sockets

type Stream = MaybeTlsStream<TcpStream>;

/// Runs one TLS handshake over a real loopback TCP connection: the server
/// side with `server`, the client side with `client` verifying `name`.
/// Returns both outcomes; panics only if a step exceeds [`WAIT`].
async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> (io::Result<Stream>, io::Result<Stream>) {
    handshake_with(acceptor(server), connector(client), name).await
}

async fn handshake_with(
    acceptor: tokio_rustls::TlsAcceptor,
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
) -> (io::Result<Stream>, io::Result<Stream>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let server = async move {
        let (tcp, _) = timeout(WAIT, listener.accept())
            .await
            .expect("accept timed out")
            .expect("accept");
        timeout(WAIT, MaybeTlsStream::accept(&acceptor, tcp))
            .await
            .expect("server handshake timed out")
    };
    let client = async move {
        let tcp = timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        timeout(WAIT, MaybeTlsStream::connect(&connector, name, tcp))
            .await
            .expect("client handshake timed out")
    };
    tokio::join!(server, client)
}

/// Sends bytes client → server and back, through `MaybeTlsStream`'s
/// `AsyncRead`/`AsyncWrite`, including a payload larger than one TLS record.
async fn exchange(server: &mut Stream, client: &mut Stream) {
    let big: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let to_server = async {
        client.write_all(b"bind_transceiver").await.expect("write");
        client.write_all(&big).await.expect("write big");
        client.flush().await.expect("flush");
        let mut reply = [0u8; 8];
        client.read_exact(&mut reply).await.expect("read reply");
        assert_eq!(&reply, b"bind_ok!");
    };
    let at_server = async {
        let mut head = [0u8; 16];
        server.read_exact(&mut head).await.expect("read head");
        assert_eq!(&head, b"bind_transceiver");
        let mut body = vec![0u8; big.len()];
        server.read_exact(&mut body).await.expect("read big");
        assert!(body == big, "large payload corrupted in transit");
        server.write_all(b"bind_ok!").await.expect("write reply");
        server.flush().await.expect("flush reply");
    };
    timeout(WAIT, async { tokio::join!(to_server, at_server) })
        .await
        .expect("exchange timed out");
}

/// After a handshake the server refused, the client must not be able to use
/// the connection: in TLS 1.3 the client may finish its side first and
/// only learn of the refusal on its next read.
async fn assert_client_unusable(client: io::Result<Stream>) -> io::Error {
    match client {
        Err(e) => e,
        Ok(mut stream) => {
            let mut buf = [0u8; 1];
            match timeout(WAIT, stream.read(&mut buf))
                .await
                .expect("client read timed out")
            {
                Err(e) => e,
                Ok(n) => panic!("refused client could still read ({n} bytes)"),
            }
        }
    }
}

fn rustls_err(result: &io::Result<Stream>) -> rustls::Error {
    match result {
        Ok(_) => panic!("handshake unexpectedly succeeded"),
        Err(e) => rustls_error(e)
            .unwrap_or_else(|| panic!("not a rustls error: {e:?}"))
            .clone(),
    }
}

// ---------------------------------------------------------------------------
// Handshakes

#[tokio::test]
async fn tls13_handshake_carries_bytes_both_ways() {
    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost", "127.0.0.1"]);
    let server = server_config(leaf.chain(), leaf.key_der(), TlsVersion::Tls13, None, None)
        .expect("server config");
    let (s, c) = handshake(server, client_for(&ca, TlsVersion::Tls12), ip_name()).await;
    let mut s = s.expect("server handshake");
    let mut c = c.expect("client handshake");

    assert!(s.is_tls() && c.is_tls());
    assert!(matches!(s, MaybeTlsStream::ServerTls(_)));
    assert!(matches!(c, MaybeTlsStream::ClientTls(_)));
    assert_eq!(s.negotiated_version(), Some(TlsVersion::Tls13));
    assert_eq!(c.negotiated_version(), Some(TlsVersion::Tls13));
    let suite = c.cipher_suite_name().expect("cipher suite");
    assert!(suite.starts_with("TLS_"), "IANA name expected, got {suite}");
    assert_eq!(s.cipher_suite_name(), Some(suite));
    assert_eq!(
        c.peer_certificates().expect("server chain"),
        std::slice::from_ref(&leaf.cert)
    );
    assert!(
        s.peer_certificates().is_none(),
        "no client cert was asked for"
    );
    assert_eq!(
        c.get_ref().peer_addr().expect("peer addr"),
        s.get_ref().local_addr().expect("local addr")
    );

    exchange(&mut s, &mut c).await;
    timeout(WAIT, c.shutdown())
        .await
        .expect("shutdown timed out")
        .expect("shutdown");
    let mut rest = Vec::new();
    let n = timeout(WAIT, s.read_to_end(&mut rest))
        .await
        .expect("read to end timed out")
        .expect("clean close_notify");
    assert_eq!(n, 0);
}

#[tokio::test]
async fn plain_stream_carries_bytes_and_reports_no_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (accepted, connected) =
        tokio::join!(async { timeout(WAIT, listener.accept()).await }, async {
            timeout(WAIT, TcpStream::connect(addr)).await
        });
    let mut s = MaybeTlsStream::Plain(accepted.expect("accept timed out").expect("accept").0);
    let mut c = MaybeTlsStream::Plain(connected.expect("connect timed out").expect("connect"));
    assert!(!s.is_tls() && !c.is_tls());
    assert_eq!(c.negotiated_version(), None);
    assert_eq!(c.cipher_suite_name(), None);
    assert!(c.peer_certificates().is_none());
    exchange(&mut s, &mut c).await;
}

#[tokio::test]
async fn server_minimum_tls13_refuses_a_tls12_only_client() {
    let ca = Ca::new("Tern test CA");
    let (s, c) = handshake(
        server_for(&ca, TlsVersion::Tls13),
        client_tls12_only(&ca),
        ip_name(),
    )
    .await;
    let server_err = rustls_err(&s);
    assert!(
        matches!(server_err, rustls::Error::PeerIncompatible(_)),
        "server: {server_err:?}"
    );
    let client_err = rustls_err(&c);
    assert_eq!(
        client_err,
        rustls::Error::AlertReceived(AlertDescription::ProtocolVersion)
    );
}

#[tokio::test]
async fn client_minimum_tls13_refuses_a_tls12_only_server() {
    let ca = Ca::new("Tern test CA");
    let (s, c) = handshake(
        server_tls12_only(&ca),
        client_for(&ca, TlsVersion::Tls13),
        ip_name(),
    )
    .await;
    let server_err = rustls_err(&s);
    assert!(
        matches!(server_err, rustls::Error::PeerIncompatible(_)),
        "server: {server_err:?}"
    );
    let client_err = rustls_err(&c);
    assert_eq!(
        client_err,
        rustls::Error::AlertReceived(AlertDescription::ProtocolVersion)
    );
}

#[tokio::test]
async fn client_minimum_tls12_talks_to_a_tls12_only_server() {
    // Telesign's case: the vendor speaks TLS 1.2 and Tern must accept it.
    let ca = Ca::new("Tern test CA");
    let (s, c) = handshake(
        server_tls12_only(&ca),
        client_for(&ca, TlsVersion::Tls12),
        ip_name(),
    )
    .await;
    let mut s = s.expect("server handshake");
    let mut c = c.expect("client handshake");
    assert_eq!(c.negotiated_version(), Some(TlsVersion::Tls12));
    assert_eq!(s.negotiated_version(), Some(TlsVersion::Tls12));
    exchange(&mut s, &mut c).await;
}

#[tokio::test]
async fn client_refuses_a_server_from_an_untrusted_ca() {
    let real = Ca::new("Real CA");
    let other = Ca::new("Other CA");
    let (s, c) = handshake(
        server_for(&real, TlsVersion::Tls12),
        client_for(&other, TlsVersion::Tls12),
        ip_name(),
    )
    .await;
    assert_eq!(
        rustls_err(&c),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert!(
        matches!(rustls_err(&s), rustls::Error::AlertReceived(_)),
        "the server is told why"
    );
}

#[tokio::test]
async fn server_name_override_verifies_an_ip_connection_by_name() {
    let ca = Ca::new("Tern test CA");
    // The certificate names only "localhost", not 127.0.0.1.
    let leaf = ca.server_leaf(&["localhost"]);
    let server = || {
        server_config(leaf.chain(), leaf.key_der(), TlsVersion::Tls12, None, None)
            .expect("server config")
    };

    // Without the override, verification against 127.0.0.1 must fail…
    let (_, c) = handshake(server(), client_for(&ca, TlsVersion::Tls12), ip_name()).await;
    assert!(
        matches!(
            rustls_err(&c),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
            )
        ),
        "client: {:?}",
        rustls_err(&c)
    );

    // …and with it, the same connection verifies and SNI carries the name.
    let settings = ClientTls {
        server_name: Some("localhost".into()),
        ..ClientTls::default()
    };
    let name = settings.server_name_for("127.0.0.1").expect("override");
    assert_eq!(name, ServerName::try_from("localhost").expect("dns name"));
    let (s, c) = handshake(server(), client_for(&ca, TlsVersion::Tls12), name).await;
    let s = s.expect("server handshake");
    c.expect("client handshake");
    match &s {
        MaybeTlsStream::ServerTls(tls) => {
            assert_eq!(tls.get_ref().1.server_name(), Some("localhost"));
        }
        other => panic!("expected a server TLS stream, got {other:?}"),
    }
}

#[test]
fn server_names_are_checked() {
    assert_eq!(
        server_name("smpp.example.com", None).expect("dns"),
        ServerName::try_from("smpp.example.com").expect("dns")
    );
    assert!(matches!(
        server_name("[::1]", None).expect("bracketed IPv6"),
        ServerName::IpAddress(_)
    ));
    assert_eq!(
        server_name("10.0.0.1", Some("smpp.example.com")).expect("override"),
        ServerName::try_from("smpp.example.com").expect("dns")
    );
    match server_name("smpp.example.com", Some("not a host!")) {
        Err(TlsError::InvalidServerName { name }) => assert_eq!(name, "not a host!"),
        other => panic!("expected InvalidServerName, got {other:?}"),
    }
    // A bad override is found when the config is built, not at connect time.
    let bad = ClientTls {
        server_name: Some("bad name".into()),
        ..ClientTls::default()
    };
    let err = bad.config().expect_err("bad server name");
    assert!(err.to_string().contains("bad name"), "{err}");
}

#[tokio::test]
async fn client_certificates_are_required_when_a_client_ca_is_set() {
    let server_ca = Ca::new("Server CA");
    let client_ca = Ca::new("Client CA");
    let stranger_ca = Ca::new("Stranger CA");
    let leaf = server_ca.server_leaf(&["localhost", "127.0.0.1"]);
    let server = || {
        server_config(
            leaf.chain(),
            leaf.key_der(),
            TlsVersion::Tls12,
            Some(vec![client_ca.der()]),
            None,
        )
        .expect("server config")
    };

    // No certificate: refused.
    let (s, c) = handshake(
        server(),
        client_for(&server_ca, TlsVersion::Tls12),
        ip_name(),
    )
    .await;
    assert_eq!(rustls_err(&s), rustls::Error::NoCertificatesPresented);
    let err = assert_client_unusable(c).await;
    assert!(
        matches!(rustls_error(&err), Some(rustls::Error::AlertReceived(_))),
        "client: {err:?}"
    );

    // A certificate from a CA the server does not trust: refused.
    let stranger = stranger_ca.client_leaf();
    let client = client_config(
        TlsVersion::Tls12,
        vec![server_ca.der()],
        false,
        Some((stranger.chain(), stranger.key_der())),
        None,
    )
    .expect("client config");
    let (s, c) = handshake(server(), client, ip_name()).await;
    assert_eq!(
        rustls_err(&s),
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
    );
    assert_client_unusable(c).await;

    // A certificate from the client CA: accepted, and visible to the server.
    let good = client_ca.client_leaf();
    let client = client_config(
        TlsVersion::Tls12,
        vec![server_ca.der()],
        false,
        Some((good.chain(), good.key_der())),
        None,
    )
    .expect("client config");
    let (s, c) = handshake(server(), client, ip_name()).await;
    let mut s = s.expect("server handshake");
    let mut c = c.expect("client handshake");
    assert_eq!(
        s.peer_certificates().expect("client chain"),
        std::slice::from_ref(&good.cert)
    );
    exchange(&mut s, &mut c).await;
}

// ---------------------------------------------------------------------------
// Files

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "tern-tls-test-{}-{}-{}",
            std::process::id(),
            nanos,
            DIR_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test]
async fn settings_load_pem_files_for_both_roles_with_client_certificates() {
    let dir = TempDir::new();
    let server_ca = Ca::new("Server CA");
    let client_ca = Ca::new("Client CA");
    let server_leaf = server_ca.server_leaf(&["localhost"]);
    let client_leaf = client_ca.client_leaf();

    let server = ServerTls {
        cert_chain_pem: dir.write("server.pem", &server_leaf.cert_pem),
        key_pem: dir.write("server.key", &server_leaf.key_pem()),
        min_version: TlsVersion::Tls13,
        client_ca_pem: Some(dir.write("client-ca.pem", &client_ca.pem())),
        cipher_suites: None,
    };
    let client = ClientTls {
        min_version: TlsVersion::Tls12,
        extra_ca_pem: Some(dir.write("server-ca.pem", &server_ca.pem())),
        use_webpki_roots: false,
        server_name: Some("localhost".into()),
        client_cert: Some((
            dir.write("client.pem", &client_leaf.cert_pem),
            dir.write("client.key", &client_leaf.key_pem()),
        )),
        cipher_suites: None,
    };
    let name = client.server_name_for("127.0.0.1").expect("name");
    let (s, c) = handshake_with(
        server.load().expect("server files"),
        client.load().expect("client files"),
        name,
    )
    .await;
    let mut s = s.expect("server handshake");
    let mut c = c.expect("client handshake");
    assert_eq!(c.negotiated_version(), Some(TlsVersion::Tls13));
    assert_eq!(
        s.peer_certificates().expect("client chain"),
        std::slice::from_ref(&client_leaf.cert)
    );
    exchange(&mut s, &mut c).await;

    // The same client settings trusting the bundled web roots as well still
    // work: the extra CA is added, not replaced.
    let with_roots = ClientTls {
        use_webpki_roots: true,
        ..client.clone()
    };
    let (s, c) = handshake_with(
        server.load().expect("server files"),
        with_roots.load().expect("client files"),
        with_roots.server_name_for("127.0.0.1").expect("name"),
    )
    .await;
    s.expect("server handshake with web roots");
    c.expect("client handshake with web roots");
}

#[test]
fn a_missing_file_is_named() {
    let dir = TempDir::new();
    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let missing = dir.path("does-not-exist.pem");

    let server = ServerTls::new(&missing, dir.write("server.key", &leaf.key_pem()));
    match server.load() {
        Err(TlsError::FileUnreadable { path, source }) => {
            assert_eq!(path, missing);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected FileUnreadable, got {:?}", other.err()),
    }
    let err = server.config().expect_err("error");
    assert!(
        err.to_string().contains(&missing.display().to_string()),
        "{err}"
    );

    let client = ClientTls {
        extra_ca_pem: Some(missing.clone()),
        ..ClientTls::default()
    };
    assert!(
        matches!(client.config(), Err(TlsError::FileUnreadable { path, .. }) if path == missing)
    );
}

#[test]
fn a_key_file_without_a_key_and_a_cert_file_without_a_cert_are_named() {
    let dir = TempDir::new();
    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let cert = dir.write("server.pem", &leaf.cert_pem);
    let key = dir.write("server.key", &leaf.key_pem());

    // The certificate given as the key.
    match ServerTls::new(&cert, &cert).load() {
        Err(TlsError::NoPrivateKey { path }) => assert_eq!(path, cert),
        other => panic!("expected NoPrivateKey, got {:?}", other.err()),
    }
    let err = ServerTls::new(&cert, &cert).config().expect_err("error");
    let text = err.to_string();
    assert!(text.contains("no private key"), "{text}");
    assert!(text.contains(&cert.display().to_string()), "{text}");

    // The key given as the certificate.
    match ServerTls::new(&key, &key).load() {
        Err(TlsError::NoCertificate { path }) => assert_eq!(path, key),
        other => panic!("expected NoCertificate, got {:?}", other.err()),
    }
}

#[test]
fn malformed_pem_is_reported_without_key_material() {
    let dir = TempDir::new();
    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let cert = dir.write("server.pem", &leaf.cert_pem);
    let key_pem = leaf.key_pem();

    // A key whose END line was lost.
    let truncated: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----END"))
        .map(|l| format!("{l}\n"))
        .collect();
    let key = dir.write("truncated.key", &truncated);
    let err = ServerTls::new(&cert, &key).config().expect_err("error");
    assert!(
        matches!(&err, TlsError::BadPem { path, .. } if *path == key),
        "{err:?}"
    );

    // A key with a corrupted base64 body.
    let corrupted = key_pem.replacen('A', "*", 1).replacen('M', "!", 1);
    let key2 = dir.write("corrupted.key", &corrupted);
    let err2 = ServerTls::new(&cert, &key2).config().expect_err("error");
    assert!(matches!(&err2, TlsError::BadPem { .. }), "{err2:?}");

    for err in [err, err2] {
        let shown = format!("{err} / {err:?}");
        for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
            for chunk in line.as_bytes().chunks(8) {
                let chunk = std::str::from_utf8(chunk).expect("ascii");
                assert!(
                    !shown.contains(chunk),
                    "key material {chunk:?} leaked into {shown}"
                );
            }
        }
    }
}

#[test]
fn a_certificate_and_key_that_do_not_match_are_refused_naming_the_files() {
    let dir = TempDir::new();
    let ca = Ca::new("Tern test CA");
    let a = ca.server_leaf(&["localhost"]);
    let b = ca.server_leaf(&["localhost"]);
    let cert = dir.write("a.pem", &a.cert_pem);
    let key = dir.write("b.key", &b.key_pem());
    let err = ServerTls::new(&cert, &key).config().expect_err("mismatch");
    assert!(
        matches!(
            &err,
            TlsError::Rustls {
                source: rustls::Error::InconsistentKeys(_),
                ..
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains(&cert.display().to_string()), "{text}");
    assert!(text.contains(&key.display().to_string()), "{text}");
}

#[test]
fn a_client_must_trust_something() {
    let nothing = ClientTls {
        use_webpki_roots: false,
        ..ClientTls::default()
    };
    assert!(matches!(nothing.config(), Err(TlsError::NoTrustAnchors)));
    // The default trusts the bundled Mozilla roots.
    ClientTls::default()
        .config()
        .expect("default client config with web roots");
}

#[test]
fn an_empty_client_ca_list_is_refused() {
    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let err = server_config(
        leaf.chain(),
        leaf.key_der(),
        TlsVersion::Tls12,
        Some(Vec::new()),
        None,
    )
    .expect_err("empty client CA list");
    assert!(matches!(err, TlsError::ClientVerifier { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------
// Cipher suites

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn unknown_cipher_suites_are_named() {
    let bad = names(&["TLS_AES_128_GCM_SHA256", "TLS_RSA_WITH_RC4_128_MD5"]);
    match crypto_provider(Some(&bad)) {
        Err(TlsError::UnknownCipherSuite { name, .. }) => {
            assert_eq!(name, "TLS_RSA_WITH_RC4_128_MD5")
        }
        other => panic!("expected UnknownCipherSuite, got {:?}", other.err()),
    }

    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let err = server_config(
        leaf.chain(),
        leaf.key_der(),
        TlsVersion::Tls12,
        None,
        Some(&bad),
    )
    .expect_err("server refuses");
    assert!(
        err.to_string().contains("\"TLS_RSA_WITH_RC4_128_MD5\""),
        "{err}"
    );
    let client = ClientTls {
        cipher_suites: Some(names(&["ECDHE-RSA-AES128-GCM-SHA256"])),
        ..ClientTls::default()
    };
    let err = client.config().expect_err("client refuses");
    assert!(
        err.to_string().contains("ECDHE-RSA-AES128-GCM-SHA256"),
        "{err}"
    );
}

#[test]
fn cipher_suite_names_follow_iana_and_must_fit_the_minimum_version() {
    let supported = supported_cipher_suites();
    assert!(supported.contains(&"TLS_AES_128_GCM_SHA256".to_string()));
    assert!(supported.contains(&"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()));
    assert!(!supported.iter().any(|s| s.starts_with("TLS13_")));

    let provider = crypto_provider(Some(&names(&[
        " tls_chacha20_poly1305_sha256 ",
        "TLS13_AES_128_GCM_SHA256",
        "TLS_AES_128_GCM_SHA256",
    ])))
    .expect("case-insensitive and rustls spelling accepted");
    assert_eq!(provider.cipher_suites.len(), 2, "duplicates folded");
    assert_eq!(
        provider.cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "configured order is the preference order"
    );

    let tls12_only = names(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"]);
    let err = client_config(TlsVersion::Tls13, Vec::new(), true, None, Some(&tls12_only))
        .expect_err("no TLS 1.3 suite");
    assert!(
        matches!(
            err,
            TlsError::NoUsableCipherSuite {
                min_version: TlsVersion::Tls13
            }
        ),
        "{err:?}"
    );
    let err = client_config(TlsVersion::Tls12, Vec::new(), true, None, Some(&[]))
        .expect_err("empty list");
    assert!(
        matches!(err, TlsError::NoUsableCipherSuite { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_tls12_suite_restriction_decides_the_negotiated_suite() {
    // Telesign lists TLS 1.2 ciphers: a server restricted to one of them
    // negotiates exactly that suite (and so TLS 1.2), although both sides
    // would otherwise pick TLS 1.3.
    let ca = Ca::new("Tern test CA");
    let leaf = ca.server_leaf(&["localhost", "127.0.0.1"]);
    let only = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256";
    let server = server_config(
        leaf.chain(),
        leaf.key_der(),
        TlsVersion::Tls12,
        None,
        Some(&names(&[only])),
    )
    .expect("restricted server");
    let (s, c) = handshake(server, client_for(&ca, TlsVersion::Tls12), ip_name()).await;
    let mut s = s.expect("server handshake");
    let mut c = c.expect("client handshake");
    assert_eq!(c.cipher_suite_name().as_deref(), Some(only));
    assert_eq!(
        c.cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
    );
    assert_eq!(c.negotiated_version(), Some(TlsVersion::Tls12));
    exchange(&mut s, &mut c).await;

    // Client restricted to a different TLS 1.2 suite: no suite in common.
    let server = server_config(
        leaf.chain(),
        leaf.key_der(),
        TlsVersion::Tls12,
        None,
        Some(&names(&[only])),
    )
    .expect("restricted server");
    let client = client_config(
        TlsVersion::Tls12,
        vec![ca.der()],
        false,
        None,
        Some(&names(&["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"])),
    )
    .expect("restricted client");
    let (s, c) = handshake(server, client, ip_name()).await;
    assert!(
        matches!(rustls_err(&s), rustls::Error::PeerIncompatible(_)),
        "server: {:?}",
        rustls_err(&s)
    );
    assert_eq!(
        rustls_err(&c),
        rustls::Error::AlertReceived(AlertDescription::HandshakeFailure)
    );
}

#[tokio::test]
async fn a_tls13_suite_restriction_on_the_client_is_honoured() {
    let ca = Ca::new("Tern test CA");
    let only = "TLS_CHACHA20_POLY1305_SHA256";
    let client = client_config(
        TlsVersion::Tls13,
        vec![ca.der()],
        false,
        None,
        Some(&names(&[only])),
    )
    .expect("restricted client");
    let (s, c) = handshake(server_for(&ca, TlsVersion::Tls12), client, ip_name()).await;
    let s = s.expect("server handshake");
    c.expect("client handshake");
    // Unrestricted, rustls would prefer AES-256-GCM.
    assert_eq!(s.cipher_suite_name().as_deref(), Some(only));
    assert_eq!(s.negotiated_version(), Some(TlsVersion::Tls13));
}

// ---------------------------------------------------------------------------
// Versions

#[test]
fn tls_versions_parse_order_and_display() {
    for (text, version) in [
        ("1.2", TlsVersion::Tls12),
        ("TLS1.2", TlsVersion::Tls12),
        ("TLSv1.3", TlsVersion::Tls13),
        ("tls 1.3", TlsVersion::Tls13),
    ] {
        assert_eq!(text.parse::<TlsVersion>().expect(text), version);
    }
    match "1.1".parse::<TlsVersion>() {
        Err(TlsError::UnknownVersion { value }) => assert_eq!(value, "1.1"),
        other => panic!("expected UnknownVersion, got {other:?}"),
    }
    assert!(TlsVersion::Tls12 < TlsVersion::Tls13);
    assert_eq!(TlsVersion::default(), TlsVersion::Tls12);
    assert_eq!(TlsVersion::Tls13.to_string(), "TLS 1.3");
}

#[test]
fn server_tls_new_keeps_paths_and_has_safe_defaults() {
    // A guard that ServerTls::new keeps the paths as given.
    let s = ServerTls::new("/etc/tern/a.pem", Path::new("/etc/tern/a.key"));
    assert_eq!(s.cert_chain_pem, PathBuf::from("/etc/tern/a.pem"));
    assert_eq!(s.key_pem, PathBuf::from("/etc/tern/a.key"));
    assert_eq!(s.min_version, TlsVersion::Tls12);
    assert!(s.client_ca_pem.is_none() && s.cipher_suites.is_none());
}
