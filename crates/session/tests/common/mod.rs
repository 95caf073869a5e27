//! Test fixtures: a static authenticator, a server on 127.0.0.1:0, a raw
//! SMPP peer built on the codec alone.

#![allow(dead_code)]

pub mod certs;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tern_codec::pdu::{Bind, SubmitSm};
use tern_codec::{Body, CommandStatus, Frame, InterfaceVersion, Pdu, SmppCodec};
use tern_session::esme::BindParams;
use tern_session::smsc::{
    Admission, Authenticator, BindRequest, BoundSession, SmscConfig, SmscServer,
};
use tern_session::{BindType, SessionConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

/// Bounds every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(5);

/// One account: `user` / `pass` (or `old-pass` during a rotation),
/// `max_binds` sessions, optionally only from `allowed_ip`.
#[derive(Default)]
pub struct Accounts {
    pub max_binds: Option<usize>,
    pub allowed_ip: Option<IpAddr>,
    pub session_rate: Option<std::num::NonZeroU32>,
    pub account_rate: Option<std::num::NonZeroU32>,
    pub bind_types: tern_session::BindTypes,
}

impl Authenticator for Accounts {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        if bind.system_id != "user" {
            return Err(CommandStatus::InvalidSystemId);
        }
        if !["pass", "old-pass"].contains(&bind.password.expose()) {
            return Err(CommandStatus::InvalidPassword);
        }
        if let (Some(allowed), Some(peer)) = (self.allowed_ip, bind.peer) {
            if peer.ip() != allowed {
                return Err(CommandStatus::BindFailed);
            }
        }
        Ok(Admission {
            account: "user".to_owned(),
            max_binds: self.max_binds,
            session_rate: self.session_rate,
            account_rate: self.account_rate,
            bind_types: self.bind_types,
            credential: 0,
            ..Admission::default()
        })
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub server: Arc<SmscServer<Accounts>>,
    pub sessions: mpsc::Receiver<BoundSession>,
    pub shutdown: CancellationToken,
}

pub fn fast_session() -> SessionConfig {
    SessionConfig {
        response_timeout: Duration::from_millis(500),
        enquire_link_interval: None,
        inactivity_timeout: None,
        session_init_timeout: Duration::from_secs(2),
        close_grace: Duration::from_secs(1),
        ..SessionConfig::default()
    }
}

pub async fn server_with(accounts: Accounts, session: SessionConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let config = SmscConfig {
        session,
        ..SmscConfig::default()
    };
    let server = SmscServer::new(config, accounts);
    let (tx, sessions) = mpsc::channel(16);
    let shutdown = CancellationToken::new();
    tokio::spawn(server.clone().serve(listener, None, tx, shutdown.clone()));
    Server {
        addr,
        server,
        sessions,
        shutdown,
    }
}

pub async fn server() -> Server {
    server_with(Accounts::default(), fast_session()).await
}

pub fn params(bind_type: BindType, password: &str) -> BindParams {
    let mut params = BindParams::new("user", password).expect("short credentials");
    params.bind_type = bind_type;
    params
}

/// A raw SMPP peer: the codec over a TCP stream, nothing else.
pub struct Raw(pub Framed<TcpStream, SmppCodec>);

impl Raw {
    /// The next connection to `listener`, framed: a fake SMSC's side.
    pub async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = listener.accept().await.expect("accept");
        Raw(Framed::new(stream, SmppCodec::new()))
    }

    /// As a fake SMSC: reads the bind and accepts it (transceiver).
    pub async fn answer_bind(&mut self) -> Pdu {
        let bind = self.recv().await.expect("bind");
        let resp = Pdu::new(
            bind.sequence_number,
            Body::BindTransceiverResp(Default::default()),
        );
        self.send(resp).await;
        bind
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        Raw(Framed::new(stream, SmppCodec::new()))
    }

    pub async fn send(&mut self, pdu: Pdu) {
        self.0.send(pdu).await.expect("send");
    }

    /// The next PDU, or `None` when the peer closed.
    pub async fn recv(&mut self) -> Option<Pdu> {
        match tokio::time::timeout(WAIT, self.0.next())
            .await
            .expect("peer answered in time")
        {
            Some(Ok(Frame::Pdu(pdu))) => Some(pdu),
            Some(Ok(Frame::Malformed(m))) => panic!("malformed from peer: {m}"),
            Some(Err(e)) => panic!("framing error from peer: {e}"),
            None => None,
        }
    }

    pub async fn bind(&mut self, bind_type: BindType) -> Pdu {
        let bind = Bind {
            system_id: "user".try_into().expect("short"),
            password: "pass".try_into().expect("short"),
            interface_version: InterfaceVersion::V34,
            ..Bind::default()
        };
        let body = match bind_type {
            BindType::Transmitter => Body::BindTransmitter(bind),
            BindType::Receiver => Body::BindReceiver(bind),
            BindType::Transceiver => Body::BindTransceiver(bind),
        };
        self.send(Pdu::new(1, body)).await;
        self.recv().await.expect("bind response")
    }
}

pub fn submit(text: &str) -> Body {
    Body::SubmitSm(SubmitSm {
        destination: tern_codec::Address::new(
            tern_codec::Ton::INTERNATIONAL,
            tern_codec::Npi::ISDN,
            "34600000001".try_into().expect("short"),
        ),
        short_message: tern_codec::ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
        ..SubmitSm::default()
    })
}

/// Answers every request of a bound session with `ESME_ROK` and id "ok".
pub fn answer_all(mut bound: BoundSession) {
    tokio::spawn(async move {
        while let Some(req) = bound.requests.recv().await {
            let id = "ok".try_into().expect("short");
            let body = Body::SubmitSmResp(tern_codec::pdu::SmResp::with_id(id));
            let _ = req.responder.respond(CommandStatus::Ok, body).await;
        }
    });
}
