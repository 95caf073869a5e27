//! The Infobip (O2 SMS Connector) profile against its seed
//! (seeds/004_d5216e523ce18d2c.txt). Every expectation here is transcribed
//! from the seed, not from the TOML.

use std::collections::BTreeSet;

use tern_router::profile::{Alphabet, SmppVersion, TimeForm};
use tern_router::{Class, FinalState, Profile, Reason};

fn profile() -> Profile {
    Profile::builtin("infobip")
        .expect("infobip is a built-in profile")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The seed's command_status codes: it mentions "a few proprietary platform
/// command statuses" but lists none.
const COMMAND_STATUS: &[(u32, Reason, Class)] = &[];

/// The seed's receipt `err` codes: "platform specific delivery report error
/// codes" are mentioned, none listed.
const RECEIPT_ERRORS: &[(u32, Reason, Class)] = &[];

#[test]
fn code_tables_are_exactly_the_seed_ones() {
    let profile = profile();
    for &(code, reason, class) in COMMAND_STATUS {
        let entry = profile.status(code).expect("seed command_status listed");
        assert_eq!((entry.reason, entry.class), (reason, class), "0x{code:X}");
    }
    for &(code, reason, class) in RECEIPT_ERRORS {
        let entry = profile.receipt_error(code).expect("seed err listed");
        assert_eq!((entry.reason, entry.class), (reason, class), "err {code}");
    }
    let seed: BTreeSet<u32> = COMMAND_STATUS.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.command_status.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
    let seed: BTreeSet<u32> = RECEIPT_ERRORS.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.receipt_error.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
    // Unlisted codes fall back to SMPP 3.4 (the generic profile).
    assert_eq!(profile.status(0x58), None);
    assert!(
        profile.notes.iter().any(|n| n.contains("proprietary")),
        "the missing proprietary tables are noted"
    );
    // "COMMAND STATUS & GSM ERROR CODES": a receipt's err is a GSM code.
    assert!(profile.receipts.err_is_gsm_map);
}

#[test]
fn version_bind_and_sessions() {
    let profile = profile();
    assert_eq!(profile.name, "infobip");
    // SMPP 3.4; 3.3 is not supported.
    assert_eq!(profile.versions, [SmppVersion::V34]);
    // Nothing but 3.4 is spoken there: a bind_resp without
    // sc_interface_version still means a 3.4 SMSC, which takes TLVs.
    assert!(profile.version.tlvs_without_interface_version);
    let binds: BTreeSet<&str> = profile.bind_types.iter().map(|b| b.as_str()).collect();
    assert_eq!(
        binds,
        BTreeSet::from(["transmitter", "receiver", "transceiver"])
    );
    // 4 sessions by default.
    assert_eq!(profile.limits.sessions_per_credential, Some(4));
    assert!(!profile.limits.per_server_port);
    assert!(!profile.source.is_empty());
}

#[test]
fn keepalive_and_message_timeout_30_seconds() {
    let timers = profile().timers;
    assert_eq!(timers.enquire_link_secs, Some(30));
    assert_eq!(timers.response_timeout_secs, Some(30));
}

#[test]
fn ssl_endpoint_on_port_8887_plain_also_offered() {
    let tls = profile().tls;
    assert!(!tls.required, "plain 8888 is offered too");
    // The SSL host and port go in the upstream entry; the notes say them.
    assert!(profile().notes.iter().any(|n| n.contains("port 8887")));
}

#[test]
fn codings() {
    let coding = profile().coding;
    let accepted: BTreeSet<u8> = coding.accepted.iter().copied().collect();
    // 0/1 GSM7 (or IA5), 3 Latin-1, 8 UCS2.
    assert_eq!(accepted, BTreeSet::from([0, 1, 3, 8]));
    assert_eq!(coding.default_alphabet, Alphabet::Gsm7);
}

#[test]
fn scheduled_delivery_is_relative_only() {
    assert_eq!(profile().times.schedule, TimeForm::Relative);
}

#[test]
fn system_type_flash() {
    let system_type = profile().system_type;
    assert_eq!(system_type.flash.as_deref(), Some("NSMS"));
}

#[test]
fn receipt_format() {
    let receipts = profile().receipts;
    // id: sub: dlvrld: submit date: done date: stat: err:
    assert!(receipts.text);
    // The key's spelling is for people: Tern reads any spelling.
    assert!(profile().notes.iter().any(|n| n.contains("dlvrld:")));
}

#[test]
fn stat_spellings() {
    let profile = profile();
    for (stat, state) in [
        ("DELIVRD", FinalState::Delivrd),
        ("EXPIRED", FinalState::Expired),
        ("DELETED", FinalState::Deleted),
        ("UNDELIV", FinalState::Undeliv),
        ("ACCEPTD", FinalState::Acceptd),
        ("DELIVERY UNKNOWN", FinalState::Unknown),
        ("REJECTED", FinalState::Rejectd),
    ] {
        assert_eq!(profile.stat(stat), Some(state), "{stat}");
    }
}
