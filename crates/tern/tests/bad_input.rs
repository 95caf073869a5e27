//! Bad input end to end, against the real `tern` binary (DESIGN.md,
//! "Contracts: Bad input"): every malformed PDU is answered with the status
//! SMPP 3.4 and the codec prescribe, or, where framing is lost, with
//! `generic_nack ESME_RINVCMDLEN` and a clean close; no input panics a
//! session, and one session's fault never touches another.
//!
//! Each test starts its own daemon, binds a well-behaved client on its own
//! connection, and has it complete a batch of submits (all `ESME_ROK`)
//! while the abuse runs on other connections, then a few more after it.
//! Malformed octets go out through raw `TcpStream` writes; answers are read
//! back with the codec's framing, so the test checks the octets Tern sends.
//! Every wait is bounded by a timeout, every loop by a count.

use tern_testkit as common;

use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use common::{client, connect, message_id, Daemon, Launch, TempDir};
use tern_codec::pdu::{Bind, SubmitSm};
use tern_codec::{
    Body, CommandId, CommandStatus, Frame, InterfaceVersion, Pdu, PduError, RegisteredDelivery,
    SmppCodec, DEFAULT_MAX_COMMAND_LENGTH,
};
use tern_session::esme::UpstreamSession;
use tern_session::{BindType, SessionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds every single wait for an answer.
const WAIT: Duration = Duration::from_secs(10);

/// Submits the well-behaved client completes while another connection
/// misbehaves.
const BATCH: usize = 200;

/// The daemon under test and its client port.
struct Target {
    daemon: Daemon,
    port: u16,
}

impl Target {
    /// A daemon with one client account (`acme` / `pw`) and one sandbox
    /// upstream that takes every destination starting with 34.
    fn start(name: &str) -> Target {
        Target::with_prefixes(name, r#"["34"]"#)
    }

    /// [`Target::start`] with the route taking destinations under these
    /// prefixes (`[]`: every destination).
    fn with_prefixes(name: &str, prefixes: &str) -> Target {
        let config = format!(
            r#"
[[listener]]
address = "127.0.0.1:0"
[storage]
path = "data"
[[simulator]]
name = "sandbox"
address = "127.0.0.1:0"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "sandbox"
simulator = "sandbox"
system_id = "tern"
password = "x"
[[route]]
name = "spain"
prefixes = {prefixes}
upstreams = ["sandbox"]
"#
        );
        // Refused binds and unframeable input are logged at warn; a flood
        // of them would drown the test output.
        let mut daemon = Launch::new()
            .rust_log("error")
            .start(TempDir::new(&format!("bad-input-{name}")), &config);
        let port = daemon.client_port();
        Target { daemon, port }
    }

    /// Connects, retrying while the daemon starts (at most 5 s).
    async fn connect(&self) -> TcpStream {
        connect(self.port).await
    }

    /// The well-behaved client: a transmitter with 10 submits in flight.
    async fn good_client(&self) -> UpstreamSession {
        client(self.port, "acme", "pw")
            .bind_type(BindType::Transmitter)
            .window(10)
            .within(WAIT)
            .try_bind()
            .await
            .expect("the good client binds")
    }

    /// A raw connection for malformed octets.
    async fn raw(&self) -> Raw {
        Raw {
            stream: self.connect().await,
            buf: BytesMut::new(),
        }
    }

    /// Open file descriptors of the daemon (sockets included).
    fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.daemon.child.id()))
            .expect("the daemon's /proc entry")
            .count()
    }
}

/// A submit_sm the sandbox route accepts, without a receipt request (the
/// good client is a transmitter and could not take one).
fn submit(text: &str) -> SubmitSm {
    common::submit_sm("34600000001", text, RegisteredDelivery::NONE)
}

/// Sends `n` submits, 10 in flight, and asserts every one is answered
/// `ESME_ROK` with a message id. Runs as its own task beside the abuse.
fn good_batch(client: &UpstreamSession, n: usize) -> tokio::task::JoinHandle<()> {
    let handle = client.handle.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let mut lanes = Vec::new();
        for lane in 0..10 {
            let handle = handle.clone();
            lanes.push(tokio::spawn(async move {
                for i in (lane..n).step_by(10) {
                    let sm = submit(&format!("good {i}"));
                    let resp = tokio::time::timeout(WAIT, handle.request(Body::SubmitSm(sm)))
                        .await
                        .unwrap_or_else(|_| panic!("submit {i} unanswered for {WAIT:?}"))
                        .unwrap_or_else(|e| panic!("submit {i}: {e}"));
                    assert_eq!(resp.command_status, CommandStatus::Ok, "submit {i}");
                    assert!(!message_id(&resp).is_empty(), "submit {i}");
                }
            }));
        }
        for lane in lanes {
            lane.await.expect("good lane");
        }
        eprintln!("good client: {n} submits in {:?}", started.elapsed());
    })
}

/// Runs the good client's batch beside `abuse`, then a short batch after
/// it on the same session: the abuse neither stalled nor broke it.
async fn alongside<F: std::future::Future<Output = ()>>(client: &UpstreamSession, abuse: F) {
    let during = good_batch(client, BATCH);
    abuse.await;
    tokio::time::timeout(Duration::from_secs(60), during)
        .await
        .expect("the good batch finishes")
        .expect("every good submit answered ESME_ROK");
    good_batch(client, 20).await.expect("after the abuse too");
    assert!(!client.handle.is_closed(), "the good session stays bound");
}

/// One raw connection: writes octets as given, reads PDUs through the
/// codec's framing.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn send(&mut self, octets: &[u8]) {
        self.stream.write_all(octets).await.expect("write");
    }

    async fn send_pdu(&mut self, pdu: Pdu) {
        let octets = pdu.to_bytes();
        self.send(&octets).await;
    }

    /// The next PDU from Tern, or `None` once it closed the connection.
    /// Tern must never send a malformed PDU.
    async fn next(&mut self) -> Option<Pdu> {
        let codec = SmppCodec::new();
        loop {
            match codec.decode_frame(&mut self.buf) {
                Ok(Some(Frame::Pdu(pdu))) => return Some(pdu),
                Ok(Some(Frame::Malformed(m))) => panic!("tern sent a malformed PDU: {m}"),
                Err(err) => panic!("tern sent an unframeable stream: {err}"),
                Ok(None) => {}
            }
            let read = tokio::time::timeout(WAIT, self.stream.read_buf(&mut self.buf))
                .await
                .expect("tern answers or closes in time");
            match read {
                Ok(0) => {
                    assert!(self.buf.is_empty(), "closed inside a PDU: {:?}", self.buf);
                    return None;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The next PDU, which must come.
    async fn expect(&mut self) -> Pdu {
        self.next().await.expect("an answer before the close")
    }

    /// Asserts Tern closes the connection with nothing more to say.
    async fn expect_close(&mut self) {
        if let Some(pdu) = self.next().await {
            panic!("expected a close, got {pdu:?}");
        }
    }

    /// Binds as a transmitter with `password`; returns the answer.
    async fn bind(&mut self, sequence: u32, system_id: &str, password: &str) -> Pdu {
        self.send_pdu(bind_pdu(sequence, system_id, password)).await;
        self.expect().await
    }
}

fn bind_pdu(sequence: u32, system_id: &str, password: &str) -> Pdu {
    let bind = Bind {
        system_id: system_id.try_into().expect("short"),
        password: password.try_into().expect("short"),
        interface_version: InterfaceVersion::V34,
        ..Bind::default()
    };
    Pdu::new(sequence, Body::BindTransmitter(bind))
}

/// A 16-octet header as given, without any check.
fn header(command_length: u32, command_id: u32, sequence: u32) -> [u8; 16] {
    let mut octets = [0u8; 16];
    octets[0..4].copy_from_slice(&command_length.to_be_bytes());
    octets[4..8].copy_from_slice(&command_id.to_be_bytes());
    octets[12..16].copy_from_slice(&sequence.to_be_bytes());
    octets
}

/// A whole PDU from a command id and a raw body (length computed).
fn raw_pdu(command_id: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + body.len()).expect("small");
    let mut octets = header(len, command_id, sequence).to_vec();
    octets.extend_from_slice(body);
    octets
}

/// The body of a submit_sm up to (not including) sm_length, for building
/// ones whose text part is wrong: SMPP 3.4 §4.4.1, field by field.
fn submit_head() -> BytesMut {
    let mut body = BytesMut::new();
    body.put_u8(0); // service_type ""
    body.put_slice(&[5, 0]); // source TON alphanumeric, NPI unknown
    body.put_slice(b"Acme\0");
    body.put_slice(&[1, 1]); // destination TON international, NPI ISDN
    body.put_slice(b"34600000001\0");
    body.put_slice(&[0, 0, 0]); // esm_class, protocol_id, priority_flag
    body.put_slice(&[0, 0]); // schedule_delivery_time "", validity_period ""
    body.put_slice(&[0, 0, 0, 0]); // registered_delivery, replace, data_coding, default id
    body
}

/// The status the codec itself assigns to a complete frame: what Tern
/// must answer with.
fn codec_status(frame: &[u8]) -> CommandStatus {
    match Pdu::decode(bytes::Bytes::copy_from_slice(frame)) {
        Ok(pdu) => panic!("meant to be malformed, decodes as {pdu:?}"),
        Err(PduError::Malformed(m)) => m.command_status(),
        Err(other) => panic!("meant to be a malformed body, got {other}"),
    }
}

/// A raw connection bound as `acme`.
async fn bound_raw(daemon: &Target) -> Raw {
    let mut raw = daemon.raw().await;
    let resp = raw.bind(1, "acme", "pw").await;
    assert_eq!(
        (resp.command_id(), resp.command_status, resp.sequence_number),
        (CommandId::BindTransmitterResp, CommandStatus::Ok, 1)
    );
    raw
}

/// After a bad body the raw session still works: a good submit on it is
/// accepted.
async fn still_serves(raw: &mut Raw, sequence: u32) {
    raw.send_pdu(Pdu::new(sequence, Body::SubmitSm(submit("after"))))
        .await;
    let resp = raw.expect().await;
    assert_eq!(
        (resp.command_id(), resp.command_status, resp.sequence_number),
        (CommandId::SubmitSmResp, CommandStatus::Ok, sequence)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_length_below_the_header_is_nacked_and_closed() {
    let daemon = Target::start("short");
    let client = daemon.good_client().await;
    alongside(&client, async {
        // 0, 8 and 15 are all below the 16-octet header. The header
        // arrives whole, so the nack carries its sequence number.
        for (i, len) in [0u32, 8, 15].into_iter().enumerate() {
            let sequence = 100 + i as u32;
            let mut raw = daemon.raw().await;
            raw.send(&header(len, 0x0000_0015, sequence)).await;
            let nack = raw.expect().await;
            assert_eq!(
                (nack.command_id(), nack.command_status, nack.sequence_number),
                (
                    CommandId::GenericNack,
                    CommandStatus::InvalidCommandLength,
                    sequence
                ),
                "command_length {len}"
            );
            raw.expect_close().await;
        }
        // The same on a bound session: framing is lost, the session ends.
        let mut raw = bound_raw(&daemon).await;
        raw.send(&header(4, 0x0000_0004, 7)).await;
        let nack = raw.expect().await;
        assert_eq!(
            (nack.command_id(), nack.command_status, nack.sequence_number),
            (
                CommandId::GenericNack,
                CommandStatus::InvalidCommandLength,
                7
            )
        );
        raw.expect_close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_length_above_the_maximum_is_nacked_and_closed_without_the_body() {
    let daemon = Target::start("long");
    let client = daemon.good_client().await;
    let max = u32::try_from(DEFAULT_MAX_COMMAND_LENGTH).expect("fits");
    alongside(&client, async {
        // One octet over the maximum, and the largest length there is:
        // answered from the header alone, before any body arrives (none is
        // ever sent), so nothing of that size is waited for or reserved.
        for (i, len) in [max + 1, u32::MAX].into_iter().enumerate() {
            let sequence = 200 + i as u32;
            let mut raw = bound_raw(&daemon).await;
            raw.send(&header(len, 0x0000_0004, sequence)).await;
            let nack = raw.expect().await;
            assert_eq!(
                (nack.command_id(), nack.command_status, nack.sequence_number),
                (
                    CommandId::GenericNack,
                    CommandStatus::InvalidCommandLength,
                    sequence
                ),
                "command_length {len}"
            );
            raw.expect_close().await;
        }
        // Only the length's four octets: too few for a sequence number,
        // so the nack carries 0 (SMPP 3.4 §4.3.1 allows a null sequence).
        let mut raw = daemon.raw().await;
        raw.send(&u32::MAX.to_be_bytes()).await;
        let nack = raw.expect().await;
        assert_eq!(
            (nack.command_id(), nack.command_status, nack.sequence_number),
            (
                CommandId::GenericNack,
                CommandStatus::InvalidCommandLength,
                0
            )
        );
        raw.expect_close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_command_id_gets_generic_nack_invcmdid_and_the_session_goes_on() {
    let daemon = Target::start("cmdid");
    let client = daemon.good_client().await;
    alongside(&client, async {
        // Before bind and after: the command is unknown in any state.
        let mut raw = daemon.raw().await;
        raw.send(&raw_pdu(0x0000_0099, 31, b"whatever")).await;
        let nack = raw.expect().await;
        assert_eq!(
            (nack.command_id(), nack.command_status, nack.sequence_number),
            (CommandId::GenericNack, CommandStatus::InvalidCommandId, 31)
        );
        let resp = raw.bind(32, "acme", "pw").await;
        assert_eq!(resp.command_status, CommandStatus::Ok, "binds after it");
        for (sequence, id) in [(33, 0x0000_0099u32), (34, 0x0001_0200), (35, 0x7FFF_FFFF)] {
            raw.send(&raw_pdu(id, sequence, &[])).await;
            let nack = raw.expect().await;
            assert_eq!(
                (nack.command_id(), nack.command_status, nack.sequence_number),
                (
                    CommandId::GenericNack,
                    CommandStatus::InvalidCommandId,
                    sequence
                ),
                "command_id 0x{id:08X}"
            );
        }
        // An unknown *response* (high bit set) answers no request: it is
        // dropped, not answered (a nack to a nack could loop forever).
        raw.send(&raw_pdu(0x8000_0099, 36, &[])).await;
        still_serves(&mut raw, 37).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_body_gets_the_codec_status_and_the_session_goes_on() {
    let daemon = Target::start("truncated");
    let client = daemon.good_client().await;
    alongside(&client, async {
        let mut raw = bound_raw(&daemon).await;
        // The body ends inside source_addr (no NUL), then inside the
        // fixed fields, then inside short_message (sm_length 20, 5 sent).
        let head = submit_head();
        let mut cases: Vec<Vec<u8>> = vec![head[..5].to_vec(), head[..head.len() - 3].to_vec()];
        let mut text = head.clone();
        text.put_u8(20);
        text.put_slice(b"hello");
        cases.push(text.to_vec());
        for (i, body) in cases.iter().enumerate() {
            let sequence = 40 + i as u32;
            let frame = raw_pdu(0x0000_0004, sequence, body);
            let status = codec_status(&frame);
            // DecodeError::Truncated answers ESME_RINVCMDLEN: the length
            // the header announced does not hold the PDU.
            assert_eq!(status, CommandStatus::InvalidCommandLength, "case {i}");
            raw.send(&frame).await;
            let resp = raw.expect().await;
            assert_eq!(
                (resp.command_id(), resp.command_status, resp.sequence_number),
                (CommandId::SubmitSmResp, status, sequence),
                "case {i}"
            );
        }
        // A bind_transmitter cut short is refused the same way.
        let frame = raw_pdu(0x0000_0002, 45, b"acm");
        raw.send(&frame).await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_id(), resp.command_status, resp.sequence_number),
            (CommandId::BindTransmitterResp, codec_status(&frame), 45)
        );
        still_serves(&mut raw, 46).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_short_message_gets_invmsglen_and_the_session_goes_on() {
    let daemon = Target::start("oversized");
    let client = daemon.good_client().await;
    alongside(&client, async {
        let mut raw = bound_raw(&daemon).await;
        // sm_length 255 with 255 octets: one over SMPP 3.4's 254 (§5.2.21).
        let mut body = submit_head();
        body.put_u8(255);
        body.put_slice(&[b'x'; 255]);
        let frame = raw_pdu(0x0000_0004, 50, &body);
        assert_eq!(codec_status(&frame), CommandStatus::InvalidMessageLength);
        raw.send(&frame).await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_id(), resp.command_status, resp.sequence_number),
            (
                CommandId::SubmitSmResp,
                CommandStatus::InvalidMessageLength,
                50
            )
        );
        // short_message and message_payload together (§5.3.2.32).
        let mut body = submit_head();
        body.put_u8(2);
        body.put_slice(b"hi");
        body.put_slice(&[0x04, 0x24, 0x00, 0x02]);
        body.put_slice(b"hi");
        let frame = raw_pdu(0x0000_0004, 51, &body);
        raw.send(&frame).await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_status, resp.sequence_number),
            (codec_status(&frame), 51)
        );
        assert_eq!(resp.command_status, CommandStatus::InvalidMessageLength);
        // 254 octets, the maximum, is accepted.
        let mut body = submit_head();
        body.put_u8(254);
        body.put_slice(&[b'x'; 254]);
        raw.send(&raw_pdu(0x0000_0004, 52, &body)).await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_status, resp.sequence_number),
            (CommandStatus::Ok, 52)
        );
        still_serves(&mut raw, 53).await;
    })
    .await;
}

/// Deterministic pseudo-random octets (xorshift64), so a failure replays.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_gets_generic_nack_invcmdlen_and_a_clean_close() {
    let daemon = Target::start("garbage");
    let client = daemon.good_client().await;
    alongside(&client, async {
        // What reaches an SMPP port by mistake: an HTTP request, a TLS
        // ClientHello, and noise. Each reads as an impossible
        // command_length. At most 1 KiB each, in one write, so Tern has read
        // all of it when it closes (a close with unread data would reset).
        let mut hello = vec![
            0x16, 0x03, 0x01, 0x00, 0xC8, 0x01, 0x00, 0x00, 0xC4, 0x03, 0x03,
        ];
        hello.extend(noise(7, 189));
        let mut cases = vec![b"GET / HTTP/1.1\r\nHost: tern\r\n\r\n".to_vec(), hello];
        for seed in 1..=20u64 {
            let mut octets = noise(seed, 1024);
            // Noise with a plausible small length would be a (malformed)
            // frame instead; that case is the truncated-body test's.
            octets[0] |= 0x01;
            cases.push(octets);
        }
        for (i, octets) in cases.iter().enumerate() {
            let mut raw = daemon.raw().await;
            raw.send(octets).await;
            let nack = raw.expect().await;
            let sequence = u32::from_be_bytes(octets[12..16].try_into().expect("4 octets"));
            assert_eq!(
                (nack.command_id(), nack.command_status, nack.sequence_number),
                (
                    CommandId::GenericNack,
                    CommandStatus::InvalidCommandLength,
                    sequence
                ),
                "case {i}"
            );
            raw.expect_close().await;
        }
        // Garbage after a bind ends that session alone.
        let mut raw = bound_raw(&daemon).await;
        raw.send(b"\xff\xfe\xfd\xfc garbage after a good bind")
            .await;
        let nack = raw.expect().await;
        assert_eq!(
            (nack.command_id(), nack.command_status),
            (CommandId::GenericNack, CommandStatus::InvalidCommandLength)
        );
        raw.expect_close().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_is_closed_at_the_session_init_timeout_and_holds_nobody_up() {
    let daemon = Target::start("loris");
    let client = daemon.good_client().await;
    // The daemon's client sessions use the engine's defaults; a connection
    // must bind within this time or be closed.
    let init = SessionConfig::default().session_init_timeout;
    let started = Instant::now();
    let mut lorises = Vec::new();
    for i in 0..20u32 {
        let mut raw = daemon.raw().await;
        // Half a header, then silence.
        raw.send(&header(47, 0x0000_0002, i)[..8]).await;
        lorises.push(raw);
    }
    // The good client is served in full while they all hang.
    good_batch(&client, BATCH).await.expect("served meanwhile");
    for (i, raw) in lorises.iter_mut().enumerate() {
        let mut one = [0u8; 1];
        let read = tokio::time::timeout(init + WAIT, raw.stream.read(&mut one))
            .await
            .unwrap_or_else(|_| panic!("loris {i} still open after {:?}", init + WAIT));
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "loris {i}: closed without a word, got {read:?}"
        );
    }
    let elapsed = started.elapsed();
    // Closed by the timer, not earlier for some other reason.
    assert!(
        elapsed >= init - Duration::from_secs(1),
        "closed after {elapsed:?}, before the {init:?} session-init time"
    );
    good_batch(&client, 20).await.expect("still served after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bind_flood_is_refused_bind_by_bind_and_the_bound_client_goes_on() {
    let daemon = Target::start("flood");
    let client = daemon.good_client().await;
    alongside(&client, async {
        // 20 connections from 127.0.0.1, 10 wrong binds each, at once.
        let locked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut floods = Vec::new();
        for c in 0..20u32 {
            let mut raw = daemon.raw().await;
            let locked = locked.clone();
            floods.push(tokio::spawn(async move {
                for b in 0..10u32 {
                    let sequence = c * 100 + b + 1;
                    let (system_id, password, status) = if b % 5 == 4 {
                        ("mallory", "pw", CommandStatus::InvalidSystemId)
                    } else {
                        ("acme", "guess", CommandStatus::InvalidPassword)
                    };
                    let resp = raw.bind(sequence, system_id, password).await;
                    // Each attempt gets the precise refusal until the
                    // failed-bind guard locks the address out (after 20
                    // failures by default); then ESME_RBINDFAIL. Never a bind.
                    assert_eq!(
                        (resp.command_id(), resp.sequence_number),
                        (CommandId::BindTransmitterResp, sequence),
                        "connection {c}, bind {b}"
                    );
                    assert!(
                        resp.command_status == status
                            || resp.command_status == CommandStatus::BindFailed,
                        "connection {c}, bind {b}: {}",
                        resp.command_status
                    );
                    if resp.command_status == CommandStatus::BindFailed {
                        locked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                // A refused bind leaves the connection open and unbound.
                raw.send_pdu(Pdu::new(999, Body::SubmitSm(submit("x"))))
                    .await;
                let resp = raw.expect().await;
                assert_eq!(resp.command_status, CommandStatus::InvalidBindStatus);
            }));
        }
        for flood in floods {
            tokio::time::timeout(Duration::from_secs(60), flood)
                .await
                .expect("flood answered in time")
                .expect("every wrong bind refused precisely");
        }
        // 200 failures from one address: most were refused by the lock-out,
        // and now even the right password is refused from that address
        // until the lock expires, while the client bound before goes on.
        let locked = locked.load(std::sync::atomic::Ordering::Relaxed);
        assert!(locked >= 150, "{locked} of 200 refused by the lock-out");
        let mut raw = daemon.raw().await;
        let resp = raw.bind(7, "acme", "pw").await;
        assert_eq!(resp.command_status, CommandStatus::BindFailed);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submit_before_bind_gets_invbndsts_and_the_connection_may_still_bind() {
    let daemon = Target::start("prebind");
    let client = daemon.good_client().await;
    alongside(&client, async {
        let mut raw = daemon.raw().await;
        raw.send_pdu(Pdu::new(60, Body::SubmitSm(submit("too early"))))
            .await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_id(), resp.command_status, resp.sequence_number),
            (
                CommandId::SubmitSmResp,
                CommandStatus::InvalidBindStatus,
                60
            )
        );
        // Nor query_sm or unbind; enquire_link is allowed in any state.
        raw.send_pdu(Pdu::new(61, Body::QuerySm(Default::default())))
            .await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_id(), resp.command_status, resp.sequence_number),
            (CommandId::QuerySmResp, CommandStatus::InvalidBindStatus, 61)
        );
        raw.send_pdu(Pdu::new(62, Body::Unbind)).await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_id(), resp.command_status, resp.sequence_number),
            (CommandId::UnbindResp, CommandStatus::InvalidBindStatus, 62)
        );
        raw.send_pdu(Pdu::new(63, Body::EnquireLink)).await;
        let resp = raw.expect().await;
        assert_eq!(
            (resp.command_id(), resp.command_status, resp.sequence_number),
            (CommandId::EnquireLinkResp, CommandStatus::Ok, 63)
        );
        let resp = raw.bind(64, "acme", "pw").await;
        assert_eq!(resp.command_status, CommandStatus::Ok);
        still_serves(&mut raw, 65).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_connections_opened_and_dropped_leave_no_descriptor_behind() {
    const CONNECTIONS: usize = 10_000;
    const AT_ONCE: usize = 250;
    let daemon = Target::start("churn");
    let started = Instant::now();
    let client = daemon.good_client().await;
    // Let start-up settle (upstream binds, store files) before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = daemon.fd_count();
    let port = daemon.port;
    alongside(&client, async {
        for batch in 0..CONNECTIONS / AT_ONCE {
            let mut batch_tasks = Vec::with_capacity(AT_ONCE);
            for i in 0..AT_ONCE {
                batch_tasks.push(tokio::spawn(async move {
                    let mut stream = TcpStream::connect(("127.0.0.1", port))
                        .await
                        .expect("tern keeps accepting");
                    // Every other one leaves half a header behind.
                    if i % 2 == 1 {
                        let _ = stream.write_all(&header(16, 0x15, 1)[..6]).await;
                    }
                }));
            }
            for task in batch_tasks {
                tokio::time::timeout(WAIT, task)
                    .await
                    .unwrap_or_else(|_| panic!("batch {batch}: a connect hung"))
                    .expect("connect");
            }
        }
        // The count does see connections: hold one batch open until the
        // daemon has a descriptor for each, then drop it like the others.
        let mut held = Vec::with_capacity(AT_ONCE);
        for _ in 0..AT_ONCE {
            held.push(daemon.connect().await);
        }
        let deadline = Instant::now() + WAIT;
        let mut open = daemon.fd_count();
        while open < before + AT_ONCE && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
            open = daemon.fd_count();
        }
        assert!(
            open >= before + AT_ONCE,
            "{AT_ONCE} open connections, but {open} descriptors (from {before})"
        );
        eprintln!("descriptors: {before} before, {open} with {AT_ONCE} connections held");
    })
    .await;
    // Every dropped connection's descriptor is released, promptly.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut now = daemon.fd_count();
    while now > before + 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = daemon.fd_count();
    }
    assert!(
        now <= before + 8,
        "{before} descriptors before {CONNECTIONS} connections, {now} after"
    );
    eprintln!("descriptors: {now} after all were dropped");
    // And a newcomer still binds and is served.
    let late = daemon.good_client().await;
    good_batch(&late, 20).await.expect("a new client is served");
    eprintln!("churn test: {:?}", started.elapsed());
}

/// A destination that is no number at all (letters, nothing after the
/// '+', more digits than E.164 allows) is refused at once with
/// ESME_RINVDSTADR, even where a catch-all route would take it: nothing
/// could ever send it, so the client hears it now rather than from a
/// failure receipt later. A real number on the same session is accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_no_number_is_refused_invdstadr_at_once() {
    let daemon = Target::with_prefixes("destination", "[]");
    let client = daemon.good_client().await;
    for bad in ["12ab", "+", "Tern", "3460000000000001"] {
        let resp = client
            .handle
            .request(Body::SubmitSm(common::submit_sm(
                bad,
                "never",
                RegisteredDelivery::NONE,
            )))
            .await
            .expect("answered");
        assert_eq!(
            resp.command_status,
            CommandStatus::InvalidDestinationAddress,
            "destination {bad:?}"
        );
    }
    let resp = client
        .handle
        .request(Body::SubmitSm(submit("a real number")))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
}
