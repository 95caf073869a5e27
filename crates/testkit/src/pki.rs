//! Certificates for the TLS tests: a CA made per test and a server
//! certificate it signed, written as PEM files into the test's scratch
//! directory, so nothing on disk is shared between tests or runs.

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::TempDir;

/// The names every test server certificate is for.
fn server_names() -> Vec<String> {
    vec!["localhost".to_owned(), "127.0.0.1".to_owned()]
}

/// A server certificate's parameters, before it is signed.
fn server_params() -> CertificateParams {
    let mut params = CertificateParams::new(server_names()).expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "tern test server");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params
}

/// A CA of the test's own and one server certificate it signed, for
/// `localhost` and 127.0.0.1: `ca.pem`, `server.pem` and `server.key` in
/// the directory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate a client trusts.
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// The server certificate's private key.
    pub key: PathBuf,
}

impl Pki {
    pub fn new(dir: &TempDir) -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Tern test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
            .expect("CA");
        let key = KeyPair::generate().expect("server key");
        let cert = server_params()
            .signed_by(&key, &ca)
            .expect("server certificate");
        Pki {
            ca: dir.write("ca.pem", &ca.pem()),
            cert: dir.write("server.pem", &cert.pem()),
            key: dir.write("server.key", &key.serialize_pem()),
        }
    }

    /// A self-signed server certificate for the same names, which no
    /// client trusting [`Pki::ca`] accepts: `untrusted.pem` and
    /// `untrusted.key` in the directory, as (certificate, key).
    pub fn untrusted(dir: &TempDir) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("key");
        let cert = server_params().self_signed(&key).expect("self-signed");
        (
            dir.write("untrusted.pem", &cert.pem()),
            dir.write("untrusted.key", &key.serialize_pem()),
        )
    }
}
