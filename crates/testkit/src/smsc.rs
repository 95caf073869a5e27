//! A bare SMSC in the test process, for tests that script an upstream PDU
//! by PDU.

use tern_codec::pdu::{SmResp, SubmitSm};
use tern_codec::{Body, COctetString, CommandStatus};
use tern_session::smsc::{
    Admission, Authenticator, BindRequest, BoundSession, SmscConfig, SmscServer,
};
use tern_session::{Requests, Responder};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

/// Accepts every bind: a fake upstream trusts Tern, the tests are about
/// what comes after the bind.
#[derive(Debug)]
pub struct AnyBind;

impl Authenticator for AnyBind {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        Ok(Admission {
            account: bind.system_id.clone(),
            ..Admission::default()
        })
    }
}

/// An SMSC built from the session engine in the test process, for tests
/// that must send Tern exactly the PDUs they want and see exactly what Tern
/// sends (the simulator decides too much on its own for that).
#[derive(Debug)]
pub struct BareSmsc {
    /// Where Tern's `[[upstream]]` should point.
    pub port: u16,
    /// Each session Tern binds, for the test to serve.
    pub sessions: mpsc::Receiver<BoundSession>,
    /// Stops the server when dropped.
    pub stop: DropGuard,
}

/// The next submit_sm Tern sends a [`BareSmsc`] session, with the
/// responder that answers it; anything else is refused
/// `ESME_RINVCMDID`, as an SMSC that only takes submits refuses it. `None`
/// once the session ended.
pub async fn next_submit(requests: &mut Requests) -> Option<(SubmitSm, Responder)> {
    while let Some(request) = requests.recv().await {
        match request.pdu.body {
            Body::SubmitSm(sm) => return Some((sm, request.responder)),
            _ => {
                let _ = request
                    .responder
                    .reject(CommandStatus::InvalidCommandId)
                    .await;
            }
        }
    }
    None
}

/// Accepts a submit under the SMSC's own message `id`. A failure to answer
/// means Tern went away, which the test notices elsewhere.
pub async fn accept_submit(responder: Responder, id: &str) {
    let resp = SmResp::with_id(COctetString::try_from(id).expect("id fits"));
    let _ = responder
        .respond(CommandStatus::Ok, Body::SubmitSmResp(resp))
        .await;
}

/// Starts a [`BareSmsc`] on a free loopback port, accepting any bind.
pub async fn bare_smsc(config: SmscConfig) -> BareSmsc {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = SmscServer::new(config, AnyBind);
    let (sessions_tx, sessions) = mpsc::channel(8);
    let stop = CancellationToken::new();
    tokio::spawn(server.serve(listener, None, sessions_tx, stop.clone()));
    BareSmsc {
        port,
        sessions,
        stop: stop.drop_guard(),
    }
}
