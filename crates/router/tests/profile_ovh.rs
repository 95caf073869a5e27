//! The OVHcloud profile against its seed (seeds/002_c8ffbbdad3fd97e4.txt,
//! "SMPP Technical Specifications (EN)"). Every expectation here is
//! transcribed from the seed, not from the TOML.

use std::collections::BTreeSet;

use tern_router::profile::AddressRule;
use tern_router::profile::{
    Alphabet, Carriage, IdForm, LongMethod, OnUnrepresentable, Radix, ReceiptsFor, SmppVersion,
    TimeForm, TlsMinimum,
};
use tern_router::{Class, FinalState, Profile, Reason, Scope};

use Class::{Permanent as P, Temporary as T};
use FinalState::{Deleted, Enroute, Expired, Rejectd, Undeliv, Unknown};

fn profile() -> Profile {
    Profile::builtin("ovh")
        .expect("ovh is a built-in profile")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// "Acknowledgement Error Codes (DLR)": every PTT code of the seed's table,
/// with the state its description implies (if any), the canonical reason and
/// the class.
const RECEIPT_ERRORS: &[(u32, Option<FinalState>, Reason, Class, &str)] = &[
    (0, None, Reason::None, P, "No Error"),
    (1, None, Reason::SystemFailure, T, "Internal Error"),
    (2, None, Reason::SystemFailure, T, "Network Error"),
    (
        3,
        None,
        Reason::AbsentSubscriber,
        T,
        "Unreachable Destination",
    ),
    (4, None, Reason::DeliveryFailure, T, "Equipment Error"),
    // Account or sender invalid, or recipient unreachable: a mixed bag that
    // names no single cause; none of its causes is final for the message.
    (
        5,
        None,
        Reason::RejectedByVendor,
        T,
        "Subscriber / Credit Related",
    ),
    (6, None, Reason::SystemFailure, T, "Timeout"),
    (7, None, Reason::SystemFailure, T, "Operator Related"),
    (8, None, Reason::CallBarred, P, "Parental Lock"),
    (9, Some(Undeliv), Reason::Unknown, P, "Undeliverable"),
    (10, None, Reason::NoCredit, T, "Account Credit"),
    (50, None, Reason::SystemFailure, T, "Internal Error"),
    (51, None, Reason::SystemFailure, T, "Internal Error"),
    // US destinations require approved templates: our account's registration.
    (
        52,
        None,
        Reason::UpstreamConfiguration,
        T,
        "Missing Template",
    ),
    // A STOP sent by the recipient.
    (53, None, Reason::Blacklisted, P, "Blacklisted"),
    // A destination OVHcloud will not send to: another upstream may.
    (54, None, Reason::NoRoute, T, "Forbidden destination"),
    (
        55,
        None,
        Reason::Throttled,
        T,
        "Sender Temporarily Ratelimited",
    ),
    (
        100,
        None,
        Reason::InvalidDestination,
        P,
        "Invalid Destination Numbering Plan",
    ),
    (101, None, Reason::ContentRejected, P, "Invalid Content"),
    // "error with packed/unpacked GSM7": the account's GSM7 format, which
    // OVHcloud support changes (Data Coding Scheme).
    (
        102,
        None,
        Reason::UpstreamConfiguration,
        T,
        "Invalid GSM7 Coding",
    ),
    // OVH's segment limit: another upstream may take the length.
    (
        103,
        None,
        Reason::InvalidMessage,
        T,
        "Message too long for the number of allowed segments",
    ),
    (254, Some(Enroute), Reason::None, T, "Pending"),
    (255, None, Reason::Unknown, T, "Unknown Error"),
    (800, Some(Undeliv), Reason::Unknown, P, "Undeliverable"),
    (801, Some(Expired), Reason::Expired, P, "Expired"),
    (802, Some(Deleted), Reason::RejectedByVendor, P, "Deleted"),
    (803, Some(Rejectd), Reason::RejectedByVendor, P, "Rejected"),
    (804, Some(Unknown), Reason::Unknown, P, "Unknown"),
];

/// "Response PDU Statuses": the statuses OVHcloud uses in the SMSC range.
const COMMAND_STATUS: &[(u32, Reason, Class, &str)] = &[
    // ESME_RBINDTHROTTLED: "Too many bind authentication".
    (0x400, Reason::Throttled, T, "Too many bind authentication"),
    // ESME_RUNSDATACODING: OVH's codings; another upstream may carry it.
    (0x401, Reason::InvalidMessage, T, "Data Coding unsupported"),
    // ESME_RINVGSM7CODING: "encoding issues, contact support" - the account's
    // GSM7 format (packed/unpacked) is what support changes.
    (
        0x402,
        Reason::UpstreamConfiguration,
        T,
        "GSM7 (GSM 03.38) encoding issues",
    ),
];

#[test]
fn every_ptt_code_of_the_seed_and_no_other() {
    let profile = profile();
    for &(code, state, reason, class, seed) in RECEIPT_ERRORS {
        let entry = profile
            .receipt_error(code)
            .unwrap_or_else(|| panic!("PTT {code} ({seed}) missing"));
        assert_eq!(entry.state, state, "PTT {code} ({seed}) state");
        assert_eq!(entry.reason, reason, "PTT {code} ({seed}) reason");
        assert_eq!(entry.class, class, "PTT {code} ({seed}) class");
        assert!(
            entry.meaning.to_lowercase().contains(&seed.to_lowercase()),
            "PTT {code}: meaning {:?} should say {seed:?}",
            entry.meaning
        );
    }
    let seed: BTreeSet<u32> = RECEIPT_ERRORS.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.receipt_error.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
    assert_eq!(seed.len(), 28);
}

#[test]
fn every_command_status_of_the_seed_and_no_other() {
    let profile = profile();
    for &(code, reason, class, seed) in COMMAND_STATUS {
        let entry = profile
            .status(code)
            .unwrap_or_else(|| panic!("0x{code:X} ({seed}) missing"));
        assert_eq!(entry.reason, reason, "0x{code:X} ({seed}) reason");
        assert_eq!(entry.class, class, "0x{code:X} ({seed}) class");
        assert!(
            entry.meaning.to_lowercase().contains(&seed.to_lowercase()),
            "0x{code:X}: meaning {:?} should say {seed:?}",
            entry.meaning
        );
    }
    let seed: BTreeSet<u32> = COMMAND_STATUS.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.command_status.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
}

#[test]
fn refused_submits_normalise_by_class() {
    let profile = profile();
    let throttled = profile.submit_outcome(0x400).expect("0x400 listed");
    assert_eq!(
        (throttled.state, throttled.reason, throttled.class),
        (Undeliv, Reason::Throttled, T)
    );
    assert_eq!(throttled.err_text(), "905");
    let coding = profile.submit_outcome(0x401).expect("0x401 listed");
    assert_eq!((coding.reason, coding.class), (Reason::InvalidMessage, T));
}

/// What only OVH refuses (its codings, its GSM7 account setting, its
/// segment limit, its destinations and templates): the next upstream is
/// tried at once (scope "upstream"); nothing else is.
#[test]
fn refusals_that_concern_ovh_only_have_scope_upstream() {
    let profile = profile();
    let statuses: BTreeSet<u32> = profile
        .command_status
        .iter()
        .filter(|e| e.scope == Scope::Upstream)
        .map(|e| e.code)
        .collect();
    assert_eq!(statuses, BTreeSet::from([0x401, 0x402]));
    let errors: BTreeSet<u32> = profile
        .receipt_error
        .iter()
        .filter(|e| e.scope == Scope::Upstream)
        .map(|e| e.code)
        .collect();
    assert_eq!(errors, BTreeSet::from([52, 54, 102, 103]));
}

#[test]
fn version_and_binds() {
    let profile = profile();
    // "The protocol version is 3.4."
    assert_eq!(profile.versions, [SmppVersion::V34]);
    // "Transmitter, Receiver, Transceiver"; outbind not supported.
    let binds: BTreeSet<&str> = profile.bind_types.iter().map(|b| b.as_str()).collect();
    assert_eq!(
        binds,
        BTreeSet::from(["transmitter", "receiver", "transceiver"])
    );
}

#[test]
fn sending_limits() {
    let limits = profile().limits;
    // "only one pair of Transmitter/Receiver or one Transceiver per zone".
    assert_eq!(limits.sessions_per_credential, Some(1));
    assert!(limits.per_server_port);
    // "up to 10 messages simultaneously".
    assert_eq!(limits.window, Some(10));
    // "up to 20 messages per second per connection".
    assert_eq!(limits.rate_per_session, Some(20));
    // No account-wide rate, no field lengths or credential lengths stated.
    assert_eq!(limits.rate_per_account, None);
    assert_eq!(limits.short_message_max, None);
    assert_eq!(limits.message_payload_max, None);
}

#[test]
fn timers() {
    let timers = profile().timers;
    // "a 30-second interval between each request".
    assert_eq!(timers.enquire_link_secs, Some(30));
    assert_eq!(timers.response_timeout_secs, None);
    // "OVHcloud SMSC unbinds the connections every 24h": Tern reconnects
    // after any unbind, so this is a fact for people.
    assert!(profile().notes.iter().any(|n| n.contains("every 24 h")));
}

#[test]
fn tls_1_3_minimum_plain_also_offered() {
    let tls = profile().tls;
    // "encrypted connection with TLS 1.3 minimum".
    assert_eq!(tls.minimum, Some(TlsMinimum::V13));
    // "Insecure connection ... for backward compatibility".
    assert!(!tls.required);
}

#[test]
fn addresses() {
    let addresses = profile().addresses;
    let rule = |ton, npi| AddressRule {
        ton: Some(ton),
        npi: Some(npi),
        ..AddressRule::default()
    };
    // alphanumeric: source_addr_ton = 5, source_addr_npi = 0.
    assert_eq!(addresses.alphanumeric, Some(rule(5, 0)));
    // shortcode: "between 3 and 8 numbers", TON 3 / NPI 1.
    assert_eq!(
        addresses.shortcode,
        Some(AddressRule {
            min_len: Some(3),
            max_len: Some(8),
            ..rule(3, 1)
        })
    );
    // international: "country identifier and usual number without the first
    // 0 (e.g. 33601020304)" - digits only, TON 1 / NPI 1.
    assert_eq!(addresses.international, Some(rule(1, 1)));
    // destination_addr "must be an international number (e.g. 33600000001)".
    assert_eq!(addresses.destination, Some(rule(1, 1)));
}

#[test]
fn codings() {
    let coding = profile().coding;
    // "GSM 03.38 (GSM 7 bits)" and "UCS2".
    assert_eq!(coding.accepted, [0, 8]);
    assert_eq!(coding.default_alphabet, Alphabet::Gsm7);
    // "some SMPP clients represent it on a byte ... your SMPP account is
    // configured on this format by default".
    assert_eq!(coding.gsm7_carriage, Carriage::Unpacked);
    // 0x401 / 0x402 refuse what cannot be carried.
    assert_eq!(coding.unrepresentable, OnUnrepresentable::Error);
}

#[test]
fn long_messages_as_udh_segments() {
    let long = profile().long_messages;
    // sar_* and message_payload: "No"; PTT 103 speaks of segments.
    assert_eq!(long.method, LongMethod::Udh);
    assert_eq!(long.receipts_for, ReceiptsFor::All);
    // The number of allowed segments is not given.
    assert_eq!(long.max_parts, None);
}

#[test]
fn times_system_type_and_message_id() {
    let profile = profile();
    // schedule_delivery_time and validity_period: "Yes", no format restriction.
    assert_eq!(profile.times.schedule, TimeForm::Both);
    assert_eq!(profile.times.validity, TimeForm::Both);
    // service_type: "No"; no bind system_type.
    assert_eq!(profile.system_type, Default::default());
    // The submit_sm_resp message_id form is not described.
    assert_eq!(profile.message_id.form, IdForm::Opaque);
}

#[test]
fn receipts_standard_text_with_receipted_message_id() {
    let profile = profile();
    let receipts = &profile.receipts;
    // PTT codes are decimal.
    assert_eq!(receipts.err_radix, Radix::Decimal);
    assert!(receipts.text);
    // receipted_message_id: "Yes" (message_state, network_error_code: "No").
    assert!(receipts.tlvs);
    // Standard stat spellings only.
    assert!(profile.receipt_stat.is_empty());
    assert_eq!(profile.stat("DELIVRD"), Some(FinalState::Delivrd));
    let notes = profile.notes.join("\n");
    for fact in ["0x1401", "0x1402", "7 days", "message_state"] {
        assert!(notes.contains(fact), "notes should mention {fact}");
    }
}
