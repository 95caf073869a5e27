//! TLS end to end through the engine: a client binds to the SMSC listener
//! over TLS; Tern binds upstream over TLS 1.3 (OVH) and TLS 1.2 only
//! (Telesign); versions that do not meet, and an untrusted server, are
//! refused.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::certs::Ca;
use common::*;
use rustls::ServerConfig;
use tern_codec::pdu::SmResp;
use tern_codec::{Body, CommandStatus};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::{ConnectError, EsmeClient, UpstreamTls};
use tern_session::smsc::{SmscConfig, SmscServer};
use tern_session::tls::{acceptor, client_config, connector, server_config, TlsVersion};
use tern_session::BindType;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// An SMSC over TLS with `config`; answers every submit with id "ok".
async fn tls_smsc(config: Arc<ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let smsc = SmscServer::new(
        SmscConfig {
            session: fast_session(),
            ..SmscConfig::default()
        },
        Accounts::default(),
    );
    let (tx, mut sessions) = mpsc::channel(4);
    tokio::spawn(smsc.serve(
        listener,
        Some(acceptor(config)),
        tx,
        CancellationToken::new(),
    ));
    tokio::spawn(async move {
        while let Some(mut bound) = sessions.recv().await {
            tokio::spawn(async move {
                while let Some(req) = bound.requests.recv().await {
                    let id = "ok".try_into().expect("short");
                    let _ = req
                        .responder
                        .respond(CommandStatus::Ok, Body::SubmitSmResp(SmResp::with_id(id)))
                        .await;
                }
            });
        }
    });
    port
}

fn client(port: u16, ca: &Ca, min: TlsVersion) -> EsmeClient {
    let config = client_config(min, vec![ca.der()], false, None, None).expect("client config");
    EsmeClient {
        host: "localhost".to_owned(),
        port,
        tls: Some(UpstreamTls {
            connector: connector(config),
            server_name: None,
        }),
        params: params(BindType::Transceiver, "pass"),
        session: fast_session(),
        backoff: BackoffConfig {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(100),
            multiplier: 2.0,
            jitter: 0.0,
        },
        pacer: None,
        account_window: None,
    }
}

fn server_tls12_only(ca: &Ca) -> Arc<ServerConfig> {
    let leaf = ca.server_leaf(&["localhost"]);
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .expect("TLS 1.2 server")
            .with_no_client_auth()
            .with_single_cert(leaf.chain(), leaf.key_der())
            .expect("server cert");
    Arc::new(config)
}

#[tokio::test]
async fn binds_and_submits_over_tls_1_3_and_tls_1_2() {
    let ca = Ca::new("tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let ovh = tls_smsc(
        server_config(leaf.chain(), leaf.key_der(), TlsVersion::Tls13, None, None).expect("config"),
    )
    .await;
    let upstream = client(ovh, &ca, TlsVersion::Tls13)
        .connect()
        .await
        .expect("TLS 1.3 bind");
    let resp = upstream
        .handle
        .request(submit("over TLS 1.3"))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);

    let telesign = tls_smsc(server_tls12_only(&ca)).await;
    let upstream = client(telesign, &ca, TlsVersion::Tls12)
        .connect()
        .await
        .expect("TLS 1.2 bind");
    let resp = upstream
        .handle
        .request(submit("over TLS 1.2"))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
}

#[tokio::test]
async fn versions_that_do_not_meet_are_refused() {
    let ca = Ca::new("tern test CA");
    let port = tls_smsc(server_tls12_only(&ca)).await;
    let err = client(port, &ca, TlsVersion::Tls13)
        .connect()
        .await
        .expect_err("1.3 minimum vs 1.2-only server");
    assert!(matches!(err, ConnectError::Tls(_)), "{err}");
}

#[tokio::test]
async fn an_untrusted_server_is_refused() {
    let ca = Ca::new("tern test CA");
    let other = Ca::new("someone else");
    let leaf = other.server_leaf(&["localhost"]);
    let port = tls_smsc(
        server_config(leaf.chain(), leaf.key_der(), TlsVersion::Tls12, None, None).expect("config"),
    )
    .await;
    let err = client(port, &ca, TlsVersion::Tls12)
        .connect()
        .await
        .expect_err("unknown issuer");
    assert!(matches!(err, ConnectError::Tls(_)), "{err}");
}

#[tokio::test]
async fn a_plain_client_on_a_tls_listener_never_binds() {
    let ca = Ca::new("tern test CA");
    let leaf = ca.server_leaf(&["localhost"]);
    let port = tls_smsc(
        server_config(leaf.chain(), leaf.key_der(), TlsVersion::Tls12, None, None).expect("config"),
    )
    .await;
    let mut plain = client(port, &ca, TlsVersion::Tls12);
    plain.tls = None;
    let err = plain.connect().await.expect_err("TLS listener");
    assert!(matches!(err, ConnectError::Bind(_)), "{err}");
}
