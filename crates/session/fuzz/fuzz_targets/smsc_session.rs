//! A real SMSC-side session — `tern_session::smsc::SmscServer`, the code
//! that faces Tern's clients — fed the octets a client might send, over an
//! in-memory duplex, in a fresh tokio runtime per input whose clock is
//! paused (timers run in virtual time, so waiting costs nothing).
//!
//! The input is the client's byte stream. The driver cuts it where the
//! stream's own `command_length`s say, writes one frame at a time, and
//! after each reads what the server says, so every answer is tied to the
//! frame that caused it. Properties:
//! - nothing panics, in any task (libfuzzer-sys aborts on a panic);
//! - the server writes only well-formed PDUs, and only responses (keep-alive
//!   is off and nothing is delivered, so it has no request of its own);
//! - every request frame is answered exactly once, before the next frame is
//!   sent, with its sequence number and its own `*_resp` (or generic_nack):
//!   a malformed body with the codec's status, an operation the bind state
//!   forbids with the operation matrix's status, enquire_link with
//!   `ESME_ROK`; responses, outbind and alert_notification get no answer;
//! - a `command_length` below 16 or above the maximum gets one generic_nack
//!   `ESME_RINVCMDLEN` (with the sequence number once the header is whole),
//!   then the connection closes; so does an unbind once bound, after its
//!   unbind_resp; a stream that ends, on a frame boundary or inside one, is
//!   closed without a word; the session closes for no other reason.
#![no_main]

use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tern_codec::pdu::SmResp;
use tern_codec::{
    Body, COctetString, CommandId, CommandStatus, Frame, Header, Pdu, SmppCodec, HEADER_LEN,
};
use tern_session::ops::{check_inbound, BindType, Role, SessionState};
use tern_session::smsc::{
    Admission, Authenticator, BindRequest, BoundSession, SmscConfig, SmscServer,
};
use tern_session::SessionConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

/// The largest `command_length` the server accepts: small, so the fuzzer
/// reaches the limit easily.
const MAX: usize = 1024;

/// How long (virtual time) the driver waits for an answer that must come.
const ANSWER: Duration = Duration::from_secs(5);

/// How long (virtual time) nothing more may arrive after an answer.
const QUIET: Duration = Duration::from_millis(100);

/// Accepts every bind except with the password `bad`.
struct Auth;

impl Authenticator for Auth {
    fn authenticate(&self, bind: &BindRequest) -> Result<Admission, CommandStatus> {
        if bind.password.expose() == "bad" {
            return Err(CommandStatus::InvalidPassword);
        }
        Ok(Admission {
            account: bind.system_id.clone(),
            ..Admission::default()
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a runtime");
    runtime.block_on(drive(data));
});

/// Session settings: only the timers that would close a healthy session
/// are off, so any close the driver sees has a reason it can name.
fn config() -> SmscConfig {
    SmscConfig {
        session: SessionConfig {
            enquire_link_interval: None,
            inactivity_timeout: None,
            session_init_timeout: Duration::from_secs(24 * 3600),
            max_command_length: MAX,
            ..SessionConfig::default()
        },
        ..SmscConfig::default()
    }
}

/// Answers a bound client's requests the way Tern's intake does: submits
/// and data_sm accepted, the rest refused with `ESME_RINVCMDID`.
async fn serve(mut bound: BoundSession) {
    let id = COctetString::try_from("1").unwrap_or_default();
    while let Some(request) = bound.requests.recv().await {
        let body = match &request.pdu.body {
            Body::SubmitSm(_) => Some(Body::SubmitSmResp(SmResp::with_id(id.clone()))),
            Body::DataSm(_) => Some(Body::DataSmResp(SmResp::with_id(id.clone()))),
            _ => None,
        };
        let _ = match body {
            Some(body) => request.responder.respond(CommandStatus::Ok, body).await,
            None => {
                request
                    .responder
                    .reject(CommandStatus::InvalidCommandId)
                    .await
            }
        };
    }
}

async fn drive(data: &[u8]) {
    let (client, server_io) = tokio::io::duplex(64 * 1024);
    let server = SmscServer::new(config(), Auth);
    tokio::spawn(async move {
        if let Some(bound) = server.handshake(server_io, None).await {
            serve(bound).await;
        }
    });
    let mut peer = Peer {
        io: client,
        buf: BytesMut::new(),
    };
    let codec = SmppCodec::new().with_max_command_length(MAX);
    let mut state = SessionState::Open;
    let mut input = data;
    loop {
        let Some(prefix) = input.get(..4) else {
            // The stream ends on a frame boundary or inside a length.
            peer.end(input).await;
            return;
        };
        let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if !(HEADER_LEN..=MAX).contains(&len) {
            // Framing is lost: the rest of the stream cannot be trusted.
            let _ = peer.io.write_all(input).await;
            let sequence = Header::peek(input).map_or(0, |h| h.sequence_number);
            let nack = peer
                .answer()
                .await
                .unwrap_or_else(|| panic!("command_length {len}: closed without generic_nack"));
            assert_eq!(
                (nack.command_id(), nack.command_status, nack.sequence_number),
                (
                    CommandId::GenericNack,
                    CommandStatus::InvalidCommandLength,
                    sequence
                ),
                "command_length {len}"
            );
            peer.expect_close("after an impossible command_length")
                .await;
            return;
        }
        if input.len() < len {
            peer.end(input).await;
            return;
        }
        let (frame, rest) = input.split_at(len);
        input = rest;
        let Some(header) = Header::peek(frame) else {
            unreachable!("a frame has at least 16 octets")
        };
        let decoded = codec
            .decode_frame(&mut BytesMut::from(frame))
            .ok()
            .flatten()
            .expect("the driver cut a whole, valid-length frame");
        peer.io
            .write_all(frame)
            .await
            .unwrap_or_else(|e| panic!("writing {}: the session is gone ({e})", header.command_id));

        let id = header.command_id;
        let answered =
            !id.is_response() && !matches!(id, CommandId::Outbind | CommandId::AlertNotification);
        if !answered {
            peer.expect_silence(id).await;
            continue;
        }
        let answer = peer.answer().await.unwrap_or_else(|| {
            panic!(
                "{id} (sequence {}): closed instead of answering",
                header.sequence_number
            )
        });
        let expected = id
            .response()
            .expect("every answered request has a response");
        assert!(
            answer.command_id() == expected || answer.command_id() == CommandId::GenericNack,
            "{id} answered with {}",
            answer.command_id()
        );
        assert_eq!(answer.sequence_number, header.sequence_number, "{id}");
        match decoded {
            Frame::Malformed(malformed) => {
                assert_eq!(
                    answer.command_status,
                    malformed.command_status(),
                    "{malformed}"
                );
            }
            Frame::Pdu(_) => {
                let bound = matches!(state, SessionState::Bound(_));
                if id == CommandId::EnquireLink {
                    assert_eq!(answer.command_status, CommandStatus::Ok);
                } else if id == CommandId::Unbind && bound {
                    assert_eq!(
                        (answer.command_id(), answer.command_status),
                        (CommandId::UnbindResp, CommandStatus::Ok)
                    );
                    peer.expect_close("after unbind_resp").await;
                    return;
                } else if let Err(status) = check_inbound(Role::Smsc, state, id) {
                    assert_eq!(answer.command_status, status, "{id} in {state:?}");
                } else if let (SessionState::Open, Some(bind)) = (state, BindType::of(id)) {
                    if answer.command_status == CommandStatus::Ok {
                        state = SessionState::Bound(bind);
                    }
                }
            }
        }
        peer.expect_silence(id).await;
    }
}

/// The client's end of the duplex.
struct Peer {
    io: DuplexStream,
    /// What the server wrote and was not parsed yet.
    buf: BytesMut,
}

impl Peer {
    /// Writes the last octets (maybe none, maybe part of a frame), closes
    /// the write side, and expects the server to close without a word.
    async fn end(&mut self, tail: &[u8]) {
        let _ = self.io.write_all(tail).await;
        let _ = self.io.shutdown().await;
        self.expect_close("after the stream ended").await;
    }

    /// The next PDU from the server (a response, well formed), or `None`
    /// if it closed first. Panics if neither happens within `ANSWER`.
    async fn answer(&mut self) -> Option<Pdu> {
        let codec = SmppCodec::new();
        loop {
            match codec.decode_frame(&mut self.buf) {
                Ok(Some(Frame::Pdu(pdu))) => {
                    assert!(pdu.command_id().is_response(), "server sent {pdu:?}");
                    return Some(pdu);
                }
                Ok(Some(Frame::Malformed(m))) => panic!("server sent a malformed PDU: {m}"),
                Err(err) => panic!("server sent an unframeable stream: {err}"),
                Ok(None) => {}
            }
            match tokio::time::timeout(ANSWER, self.io.read_buf(&mut self.buf)).await {
                Err(_) => panic!("neither an answer nor a close within {ANSWER:?}"),
                Ok(Ok(0)) | Ok(Err(_)) => {
                    assert!(self.buf.is_empty(), "closed inside a PDU: {:?}", self.buf);
                    return None;
                }
                Ok(Ok(_)) => {}
            }
        }
    }

    /// Nothing more arrives for `QUIET`, and the session stays open.
    async fn expect_silence(&mut self, after: CommandId) {
        assert!(
            self.buf.is_empty(),
            "after {after}: stray octets {:?}",
            self.buf
        );
        match tokio::time::timeout(QUIET, self.io.read_buf(&mut self.buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => panic!("after {after}: the session closed"),
            Ok(Ok(_)) => panic!("after {after}: unexpected output {:?}", self.buf),
        }
    }

    /// The server closes within `ANSWER` with nothing (more) to say.
    async fn expect_close(&mut self, when: &str) {
        if let Some(pdu) = self.answer().await {
            panic!("{when}: expected a close, got {pdu:?}");
        }
    }
}
