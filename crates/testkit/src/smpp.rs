//! SMPP clients that bind to Tern over real sockets, the messages they
//! send and the receipts they take.

use std::net::SocketAddr;
use std::time::Duration;

use crate::connect;
use tern_codec::pdu::{DeliverSm, QuerySm, SmResp, SubmitSm};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, MessageState, Npi, Pdu, RegisteredDelivery,
    ShortMessage, Tlv, Ton,
};
use tern_session::esme::{self, BindParams, ConnectError, UpstreamSession};
use tern_session::{BindType, Request, SessionConfig, SessionHandle};
use tokio::io::{AsyncRead, AsyncWrite};

/// A client about to bind to Tern on `port`: a transceiver with the
/// engine's session defaults but no enquire_link, so nothing crosses the
/// wire that the test did not send.
pub fn client(port: u16, system_id: &str, password: &str) -> ClientBind {
    ClientBind {
        port,
        params: BindParams::new(system_id, password).expect("short"),
        config: SessionConfig {
            enquire_link_interval: None,
            ..SessionConfig::default()
        },
        within: None,
    }
}

/// The bind [`client`] prepares; each setting is one some test needs.
#[derive(Debug)]
pub struct ClientBind {
    port: u16,
    params: BindParams,
    config: SessionConfig,
    within: Option<Duration>,
}

impl ClientBind {
    /// Submits this session keeps in flight.
    pub fn window(mut self, window: usize) -> ClientBind {
        self.config.window = window;
        self
    }

    pub fn bind_type(mut self, bind_type: BindType) -> ClientBind {
        self.params.bind_type = bind_type;
        self
    }

    /// Replaces the session settings whole (with the engine's defaults,
    /// say, enquire_link included).
    pub fn session_config(mut self, config: SessionConfig) -> ClientBind {
        self.config = config;
        self
    }

    /// Bounds the bind exchange itself, for tests that put a limit on
    /// every answer.
    pub fn within(mut self, limit: Duration) -> ClientBind {
        self.within = Some(limit);
        self
    }

    /// Connects (see [`connect`]) and binds; must succeed.
    pub async fn bind(self) -> UpstreamSession {
        self.try_bind().await.expect("bound to tern")
    }

    /// Connects and binds; the refusal, if Tern refuses.
    pub async fn try_bind(self) -> Result<UpstreamSession, ConnectError> {
        let stream = connect(self.port).await;
        self.try_bind_over(stream).await
    }

    /// Binds over a connection the test made itself (TLS, say).
    pub async fn try_bind_over<S>(self, io: S) -> Result<UpstreamSession, ConnectError>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let bind = esme::bind(io, Some(addr), &self.params, self.config);
        match self.within {
            Some(limit) => tokio::time::timeout(limit, bind)
                .await
                .expect("bind answered in time"),
            None => bind.await,
        }
    }
}

/// An alphanumeric sender id, as "Acme" is.
pub fn alphanumeric(name: &str) -> Address<21> {
    Address::new(
        Ton::ALPHANUMERIC,
        Npi::UNKNOWN,
        COctetString::try_from(name).expect("short"),
    )
}

/// An international E.164 number.
pub fn international(number: &str) -> Address<21> {
    Address::new(
        Ton::INTERNATIONAL,
        Npi::ISDN,
        COctetString::try_from(number).expect("short"),
    )
}

/// A submit from "Acme" to `to`, as the test clients send them. Up to 160
/// octets the text is the short_message; a longer one goes whole in
/// message_payload, which is how a client hands Tern a message to split.
pub fn submit_sm(
    to: &str,
    text: impl AsRef<[u8]>,
    registered_delivery: RegisteredDelivery,
) -> SubmitSm {
    let text = text.as_ref();
    let mut sm = SubmitSm {
        source: alphanumeric("Acme"),
        destination: international(to),
        registered_delivery,
        ..SubmitSm::default()
    };
    if text.len() <= 160 {
        sm.short_message = ShortMessage::new(text.to_vec()).expect("short");
    } else {
        sm.tlvs
            .push(Tlv::message_payload(text.to_vec()).expect("fits"));
    }
    sm
}

/// Tern's message id in a submit_sm_resp; panics if it has none.
pub fn message_id(resp: &Pdu) -> String {
    let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = &resp.body else {
        panic!("no message id in {resp:?}")
    };
    id.to_string()
}

/// Submits `sm`, which Tern must accept (`ESME_ROK`); returns its id.
pub async fn submit_id(handle: &SessionHandle, sm: SubmitSm) -> String {
    let resp = handle.request(Body::SubmitSm(sm)).await.expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok, "{resp:?}");
    message_id(&resp)
}

/// Asks Tern for the state of message `id` (query_sm): the answer's status
/// and, if it is a query_sm_resp, its message_state.
pub async fn query_sm(handle: &SessionHandle, id: &str) -> (CommandStatus, Option<MessageState>) {
    let (status, answer) = query_sm_answer(handle, id).await;
    (status, answer.map(|(_, state)| state))
}

/// [`query_sm`], with the message_id the query_sm_resp names (the form the
/// client was given: decimal or hex).
pub async fn query_sm_answer(
    handle: &SessionHandle,
    id: &str,
) -> (CommandStatus, Option<(String, MessageState)>) {
    let query = QuerySm {
        message_id: COctetString::try_from(id).expect("short"),
        ..QuerySm::default()
    };
    let resp = handle
        .request(Body::QuerySm(query))
        .await
        .expect("answered");
    let answer = match resp.body {
        Body::QuerySmResp(r) => Some((r.message_id.to_string(), r.message_state)),
        _ => None,
    };
    (resp.command_status, answer)
}

/// Answers a deliver_sm from Tern `ESME_ROK`: only then is a receipt or an
/// MO taken, and Tern stops offering it.
pub async fn ack(request: Request) {
    request
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("ack");
}

/// The id a receipt is for, from its receipted_message_id TLV.
pub fn receipted_id(sm: &DeliverSm) -> String {
    String::from_utf8_lossy(
        sm.tlvs
            .receipted_message_id()
            .expect("receipted_message_id"),
    )
    .into_owned()
}

/// The deliver_sm `request` carries, acknowledged.
pub async fn accept_deliver_sm(request: Request) -> DeliverSm {
    let Body::DeliverSm(sm) = request.pdu.body.clone() else {
        panic!("not a deliver_sm: {:?}", request.pdu)
    };
    ack(request).await;
    sm
}

/// The next deliver_sm Tern sends `session` before `deadline`,
/// acknowledged; `None` if none came, or the session closed.
pub async fn deliver_sm_before(
    session: &mut UpstreamSession,
    deadline: tokio::time::Instant,
) -> Option<DeliverSm> {
    let request = tokio::time::timeout_at(deadline, session.requests.recv())
        .await
        .ok()??;
    Some(accept_deliver_sm(request).await)
}

/// [`deliver_sm_before`] with a limit from now.
pub async fn next_deliver_sm(session: &mut UpstreamSession, within: Duration) -> Option<DeliverSm> {
    deliver_sm_before(session, tokio::time::Instant::now() + within).await
}

/// The next deliver_sm within `within`, which must come; acknowledged.
pub async fn expect_deliver_sm(session: &mut UpstreamSession, within: Duration) -> DeliverSm {
    next_deliver_sm(session, within)
        .await
        .unwrap_or_else(|| panic!("no deliver_sm from tern within {within:?}"))
}

/// The id of the next receipt within `within`; acknowledged.
pub async fn next_receipt(session: &mut UpstreamSession, within: Duration) -> String {
    receipted_id(&expect_deliver_sm(session, within).await)
}
