//! MO end to end, on the real binary over real sockets: Tern binds to two
//! upstreams — the simulator from crates/sim (MO injected with
//! `inject_mo`) and a bare SMSC built here from the session engine, which
//! sends exactly the deliver_sm a test wants (UDH or SAR parts, in any
//! order) and sees the status Tern answers. Clients bind to Tern and get
//! what the `[[mo_route]]` rules give them.

use tern_testkit as common;

use std::time::Duration;

use common::{
    bare_smsc, client, expect_deliver_sm, international, next_deliver_sm, wait_until, BareSmsc,
    Daemon,
};
use tern_codec::pdu::DeliverSm;
use tern_codec::tlv::Sar;
use tern_codec::{Body, CommandStatus, DataCoding, EsmClass, ShortMessage};
use tern_session::esme::UpstreamSession;
use tern_session::smsc::{BoundSession, SmscConfig};
use tern_session::BindType;
use tern_sim::smsc::{SimConfig, SimHandle, Simulator};

/// Everything one test runs against.
struct Setup {
    _daemon: Daemon,
    /// Where clients bind.
    port: u16,
    /// The simulator upstream ("sim" in Tern's config).
    sim: SimHandle,
    /// Tern's session at the bare upstream ("raw").
    raw: BoundSession,
    _raw_stop: tokio_util::sync::DropGuard,
}

/// Tern with two upstreams and three MO rules:
/// - "7777…" from any upstream → acme;
/// - "88…" from raw → beta (which reassembles, with a 1 s timeout);
/// - "88…" from anywhere else → acme.
async fn setup(name: &str) -> Setup {
    let sim = Simulator::start(SimConfig::default())
        .await
        .expect("simulator starts");
    let BareSmsc {
        port: raw_port,
        mut sessions,
        stop,
    } = bare_smsc(SmscConfig::default()).await;

    let port = 0;
    let config = format!(
        r#"
[[listener]]
address = "127.0.0.1:{port}"
[storage]
path = "data"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[client]]
system_id = "beta"
passwords = ["pw"]
mo_reassemble = true
mo_reassembly_timeout = "1s"
[[upstream]]
name = "sim"
host = "127.0.0.1"
port = {sim_port}
system_id = "tern"
password = "x"
[[upstream]]
name = "raw"
host = "127.0.0.1"
port = {raw_port}
system_id = "tern"
password = "x"
[[mo_route]]
name = "acme-short-code"
destinations = ["7777"]
client = "acme"
[[mo_route]]
name = "beta-via-raw"
destinations = ["88"]
upstreams = ["raw"]
client = "beta"
[[mo_route]]
name = "acme-rest-of-88"
destinations = ["88"]
client = "acme"
"#,
        sim_port = sim.addr().port(),
    );
    let mut daemon = Daemon::start(&format!("mo-{name}"), &config);
    let port = daemon.client_port();
    let raw = tokio::time::timeout(Duration::from_secs(10), sessions.recv())
        .await
        .expect("tern binds to the bare upstream")
        .expect("server running");
    wait_until(
        "tern binds to the simulator",
        Duration::from_secs(5),
        || async { !sim.sessions("tern").is_empty() },
    )
    .await;
    Setup {
        _daemon: daemon,
        port,
        sim,
        raw,
        _raw_stop: stop,
    }
}

/// Binds to Tern as `system_id`.
async fn bind(port: u16, system_id: &str, bind_type: BindType) -> UpstreamSession {
    client(port, system_id, "pw")
        .bind_type(bind_type)
        .bind()
        .await
}

/// The next MO, which must come within 10 s; acknowledged.
async fn expect_mo(session: &mut UpstreamSession) -> DeliverSm {
    expect_deliver_sm(session, Duration::from_secs(10)).await
}

/// An MO from the subscriber 34600111222 to `to`.
fn mo(to: &str, short_message: &[u8]) -> DeliverSm {
    DeliverSm {
        source: international("34600111222"),
        destination: international(to),
        short_message: ShortMessage::new(short_message.to_vec()).expect("fits"),
        ..DeliverSm::default()
    }
}

/// Part `sequence` of `total` with an 8-bit concatenation UDH.
fn udh_part(to: &str, reference: u8, total: u8, sequence: u8, text: &[u8]) -> DeliverSm {
    let mut octets = vec![0x05, 0x00, 0x03, reference, total, sequence];
    octets.extend_from_slice(text);
    let mut sm = mo(to, &octets);
    sm.esm_class = EsmClass::DEFAULT.with_udhi(true);
    sm
}

/// Sends `sm` from the bare upstream; returns Tern's answer.
async fn send(raw: &BoundSession, sm: DeliverSm) -> CommandStatus {
    raw.handle
        .request(Body::DeliverSm(sm))
        .await
        .expect("tern answers")
        .command_status
}

fn text(sm: &DeliverSm) -> String {
    String::from_utf8_lossy(sm.text_octets()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mo_reaches_the_client_its_rule_names() {
    let setup = setup("route").await;
    let mut acme = bind(setup.port, "acme", BindType::Transceiver).await;
    let mut beta_tx = bind(setup.port, "beta", BindType::Transmitter).await;

    setup
        .sim
        .inject_mo("tern", "34600111222", "7777", "hello acme")
        .expect("injected");
    let sm = expect_mo(&mut acme).await;
    assert_eq!(sm.source.addr.to_string(), "34600111222");
    assert_eq!(sm.destination.addr.to_string(), "7777");
    assert_eq!(text(&sm), "hello acme");
    assert!(!sm.esm_class.is_receipt(), "an MO, not a receipt");
    assert_eq!(sm.tlvs.receipted_message_id(), None);

    // "88…" from the simulator: the rule for raw does not apply, the next does.
    setup
        .sim
        .inject_mo("tern", "34600111333", "8899", "not via raw")
        .expect("injected");
    let sm = expect_mo(&mut acme).await;
    assert_eq!(
        (sm.source.addr.to_string(), text(&sm)),
        ("34600111333".to_owned(), "not via raw".to_owned())
    );

    // "88…" from raw goes to beta, whose only session is a transmitter:
    // stored and acknowledged, but nothing is sent to a transmitter.
    assert_eq!(
        send(&setup.raw, mo("8800", b"for beta")).await,
        CommandStatus::Ok
    );
    assert!(
        next_deliver_sm(&mut beta_tx, Duration::from_secs(1))
            .await
            .is_none(),
        "a transmitter gets no MO"
    );
    // Beta binds to receive: the MO was kept for it.
    let mut beta_rx = bind(setup.port, "beta", BindType::Receiver).await;
    let sm = expect_mo(&mut beta_rx).await;
    assert_eq!(
        (sm.destination.addr.to_string(), text(&sm)),
        ("8800".to_owned(), "for beta".to_owned())
    );

    // No rule for this destination: refused for good, not retried forever.
    assert_eq!(
        send(&setup.raw, mo("5555", b"nobody's")).await,
        CommandStatus::ReceiverPermanentError
    );
    assert!(next_deliver_sm(&mut acme, Duration::from_millis(500))
        .await
        .is_none());
    assert!(setup.sim.stats().mo_acked >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concatenated_mo_is_joined_for_a_reassembling_account_only() {
    let setup = setup("join").await;
    let mut acme = bind(setup.port, "acme", BindType::Transceiver).await;
    let mut beta = bind(setup.port, "beta", BindType::Transceiver).await;
    let chunks: [&[u8]; 3] = [b"The first part, ", b"the second part, ", b"and the end."];
    let whole: String = chunks.iter().map(|c| String::from_utf8_lossy(c)).collect();

    // To beta (reassembles), out of order: one message once all are in.
    for sequence in [3u8, 1, 2] {
        let part = udh_part("8801", 0x2A, 3, sequence, chunks[usize::from(sequence) - 1]);
        assert_eq!(send(&setup.raw, part).await, CommandStatus::Ok);
    }
    let sm = expect_mo(&mut beta).await;
    assert_eq!(text(&sm), whole);
    assert!(!sm.esm_class.udhi(), "the whole message has no UDH");
    assert_eq!(sm.destination.addr.to_string(), "8801");
    assert!(next_deliver_sm(&mut beta, Duration::from_millis(500))
        .await
        .is_none());

    // The same parts to acme (does not reassemble): three deliver_sm, as sent.
    for sequence in [2u8, 1, 3] {
        let part = udh_part("7777", 0x2B, 3, sequence, chunks[usize::from(sequence) - 1]);
        assert_eq!(send(&setup.raw, part).await, CommandStatus::Ok);
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let sm = expect_mo(&mut acme).await;
        assert!(sm.esm_class.udhi());
        let octets = sm.short_message.as_bytes();
        assert_eq!(&octets[..5], &[0x05, 0x00, 0x03, 0x2B, 3]);
        got.push(octets[5]);
    }
    assert_eq!(got, vec![2, 1, 3], "each part as it came");

    // SAR parts in UCS-2, longer than short_message holds once joined:
    // one deliver_sm with message_payload, data_coding kept.
    let long: String = "ñ".repeat(150);
    let octets = tern_codec::text::encode(
        &long,
        tern_codec::text::Encoding::Ucs2,
        tern_codec::text::Unrepresentable::Error,
    )
    .expect("encodes");
    assert_eq!(octets.len(), 300);
    for (n, chunk) in octets.chunks(100).enumerate().rev() {
        let mut sm = mo("8802", chunk);
        sm.data_coding = DataCoding::UCS2;
        sm.tlvs.set_sar(Sar {
            reference: 0x1234,
            total: 3,
            sequence: n as u8 + 1,
        });
        assert_eq!(send(&setup.raw, sm).await, CommandStatus::Ok);
    }
    let sm = expect_mo(&mut beta).await;
    assert_eq!(sm.data_coding, DataCoding::UCS2);
    assert!(sm.short_message.is_empty());
    assert_eq!(sm.tlvs.message_payload(), Some(&octets));
    assert!(sm.tlvs.sar().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parts_still_missing_at_the_timeout_go_out_as_they_are() {
    let setup = setup("timeout").await;
    let mut beta = bind(setup.port, "beta", BindType::Receiver).await;
    for sequence in [1u8, 3] {
        let part = udh_part(
            "8803",
            0x07,
            3,
            sequence,
            format!("part {sequence}").as_bytes(),
        );
        assert_eq!(send(&setup.raw, part).await, CommandStatus::Ok);
    }
    // Held, not delivered, before the timeout (1 s).
    assert!(next_deliver_sm(&mut beta, Duration::from_millis(300))
        .await
        .is_none());
    let mut got = Vec::new();
    for _ in 0..2 {
        let sm = next_deliver_sm(&mut beta, Duration::from_secs(5))
            .await
            .expect("parts after the timeout");
        assert!(sm.esm_class.udhi(), "each part with its UDH");
        got.push(sm.short_message.as_bytes()[5]);
    }
    got.sort_unstable();
    assert_eq!(got, vec![1, 3]);
    // The missing part arriving later is held alone and, in time, goes too.
    let part = udh_part("8803", 0x07, 3, 2, b"part 2");
    assert_eq!(send(&setup.raw, part).await, CommandStatus::Ok);
    let sm = next_deliver_sm(&mut beta, Duration::from_secs(5))
        .await
        .expect("the late part");
    assert_eq!(sm.short_message.as_bytes()[5], 2);
}

/// A config with the given MO rules after two accounts and one upstream
/// (lines 1–14), for locating errors.
fn mo_config(rules: &str) -> String {
    format!(
        r#"[[client]]
system_id = "acme"
passwords = ["pw"]
mo_reassemble = true
[[client]]
system_id = "beta"
passwords = ["pw"]
mo_reassembly_timeout = "30s"
[[upstream]]
name = "ovh"
host = "127.0.0.1"
port = 2775
system_id = "tern"
password = "x"
{rules}"#
    )
}

#[test]
fn mo_rules_compile_into_their_accounts_and_bad_ones_are_located() {
    let path = std::path::Path::new("/etc/tern/mo.toml");
    let good = mo_config(
        r#"[[mo_route]]
name = "first"
destinations = ["7777", "34"]
client = "beta"
[[mo_route]]
name = "second"
upstreams = ["ovh"]
client = "acme"
"#,
    );
    let config = tern::config::Config::from_text(path, &good).expect("valid");
    let (acme, beta) = (&config.clients[0], &config.clients[1]);
    assert!(acme.mo_reassemble && !beta.mo_reassemble);
    assert_eq!(acme.mo_reassembly_timeout, Duration::from_secs(600));
    assert_eq!(beta.mo_reassembly_timeout, Duration::from_secs(30));
    assert_eq!(
        (beta.mo_routes[0].name.as_str(), beta.mo_routes[0].order),
        ("first", 0)
    );
    assert_eq!(
        (acme.mo_routes[0].name.as_str(), acme.mo_routes[0].order),
        ("second", 1)
    );
    assert!(beta.mo_routes[0].matches("anything", "77771234"));
    assert!(!beta.mo_routes[0].matches("ovh", "4477"));
    assert!(acme.mo_routes[0].matches("ovh", "4477"));
    assert!(!acme.mo_routes[0].matches("other", "4477"));

    // Every mistake at once, each at its line and column.
    let bad = mo_config(
        r#"[[mo_route]]
name = "dup"
destinations = ["77a"]
upstreams = ["nowhere"]
client = "gamma"
[[mo_route]]
name = "dup"
client = "acme"
"#,
    )
    .replace(
        r#"mo_reassembly_timeout = "30s""#,
        r#"mo_reassembly_timeout = "0s""#,
    );
    let errors = tern::config::Config::from_text(path, &bad)
        .expect_err("invalid")
        .0;
    let found: Vec<(usize, usize, &str)> = errors
        .iter()
        .map(|e| (e.line, e.column, e.message.as_str()))
        .collect();
    let expect = |line: usize, column: usize, needle: &str| {
        assert!(
            found
                .iter()
                .any(|&(l, c, m)| l == line && c == column && m.contains(needle)),
            "no error at {line}:{column} with {needle:?} in {found:#?}"
        );
    };
    expect(8, 25, "more than 0s");
    expect(17, 17, "expected 1 to 20 digits");
    expect(18, 14, "unknown upstream \"nowhere\"");
    expect(19, 10, "unknown client \"gamma\"");
    expect(21, 8, "defined twice");
    assert_eq!(errors.len(), 5, "{found:#?}");
    assert!(errors[0].to_string().starts_with("/etc/tern/mo.toml:"));

    // A misspelt key is refused too.
    let misspelt =
        mo_config("[[mo_route]]\nname = \"x\"\ndestination = [\"1\"]\nclient = \"acme\"\n");
    let errors = tern::config::Config::from_text(path, &misspelt)
        .expect_err("invalid")
        .0;
    assert!(errors[0].message.contains("destination"), "{errors:?}");
}
