//! Writes `seeds/smsc_session/`: client byte streams built with
//! `tern_codec`, so the fuzzer starts from conversations that reach every
//! state of a server session (before bind, bound, refused bind, unbind)
//! rather than having to discover a valid bind by chance.
//!
//! Run from this directory: `cargo run --example gen_seeds`.

use std::path::Path;

use tern_codec::pdu::{Bind, DataSm, QuerySm, SmResp, SubmitSm};
use tern_codec::{Address, Body, InterfaceVersion, Npi, Pdu, ShortMessage, Ton};

fn bind(sequence: u32, password: &str) -> Pdu {
    let bind = Bind {
        system_id: "fuzz".try_into().expect("short"),
        password: password.try_into().expect("short"),
        interface_version: InterfaceVersion::V34,
        ..Bind::default()
    };
    Pdu::new(sequence, Body::BindTransceiver(bind))
}

fn submit(sequence: u32) -> Pdu {
    let sm = SubmitSm {
        source: Address::new(
            Ton::ALPHANUMERIC,
            Npi::UNKNOWN,
            "Fuzz".try_into().expect("short"),
        ),
        destination: Address::new(
            Ton::INTERNATIONAL,
            Npi::ISDN,
            "34600000001".try_into().expect("short"),
        ),
        short_message: ShortMessage::new(b"hello".to_vec()).expect("short"),
        ..SubmitSm::default()
    };
    Pdu::new(sequence, Body::SubmitSm(sm))
}

/// A raw frame: header with `command_id` and the body as given.
fn raw(command_id: u32, sequence: u32, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(16 + body.len()).expect("small");
    let mut out = Vec::new();
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&command_id.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn stream(pdus: &[Pdu]) -> Vec<u8> {
    pdus.iter().flat_map(|p| p.to_bytes().to_vec()).collect()
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/smsc_session");
    std::fs::create_dir_all(&dir).expect("seed directory");
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    seeds.push((
        "bind_submit_query_unbind",
        stream(&[
            bind(1, "pw"),
            submit(2),
            Pdu::new(3, Body::EnquireLink),
            Pdu::new(4, Body::QuerySm(QuerySm::default())),
            Pdu::new(5, Body::DataSm(DataSm::default())),
            Pdu::new(6, Body::Unbind),
        ]),
    ));

    let mut before_bind = stream(&[submit(1), Pdu::new(2, Body::Unbind), bind(3, "bad")]);
    before_bind.extend(stream(&[bind(4, "pw"), bind(5, "pw")]));
    before_bind.extend(raw(0x0000_0099, 6, b"unknown"));
    before_bind.extend(stream(&[
        Pdu::new(7, Body::GenericNack),
        Pdu::new(8, Body::SubmitSmResp(SmResp::default())),
        submit(9),
    ]));
    seeds.push(("before_and_after_bind", before_bind));

    let mut malformed = stream(&[bind(1, "pw")]);
    malformed.extend(raw(0x0000_0004, 2, b"\x00\x05\x00Acm"));
    malformed.extend(raw(0x0000_0006, 3, b"body on unbind"));
    malformed.extend(stream(&[submit(4)]));
    seeds.push(("malformed_bodies", malformed));

    let mut too_long = stream(&[bind(1, "pw"), submit(2)]);
    too_long.extend(raw(0x0000_0004, 3, &[0u8; 1100]));
    seeds.push(("too_long", too_long));

    let mut too_short = stream(&[bind(1, "pw")]);
    too_short.extend_from_slice(&[0, 0, 0, 8, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 9]);
    seeds.push(("too_short", too_short));

    let mut partial = stream(&[bind(1, "pw"), submit(2)]);
    let tail = submit(3).to_bytes();
    partial.extend_from_slice(&tail[..tail.len() / 2]);
    seeds.push(("partial_tail", partial));

    for (name, octets) in &seeds {
        std::fs::write(dir.join(name), octets).expect("write seed");
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}
