//! The Telesign profile against its seed (seeds/003_fb744ec241e88aa3.txt,
//! "SMPP Protocol"). Every expectation here is transcribed from the seed, not
//! from the TOML.

use std::collections::BTreeSet;

use tern_router::profile::AddressRule;
use tern_router::profile::{
    IdForm, LongMethod, Radix, ReceiptsFor, SmppVersion, TimeForm, TlsMinimum,
};
use tern_router::{Class, FinalState, Profile, Reason, Scope};

use Class::{Permanent as P, Temporary as T};
use FinalState::{Expired, Rejectd, Undeliv, Unknown};

fn profile() -> Profile {
    Profile::builtin("telesign")
        .expect("telesign is a built-in profile")
        .unwrap_or_else(|e| panic!("{e}"))
}

/// "Error codes": every value of the seed's table for the `err` field (hex,
/// 3 octets), with the state its description implies (if any), the canonical
/// reason and the class.
const RECEIPT_ERRORS: &[(u32, Option<FinalState>, Reason, Class, &str)] = &[
    // The receipt's stat/message_state says the state.
    (0x000, None, Reason::None, P, "Successful Delivery"),
    (0x008, None, Reason::SystemFailure, T, "System Error"),
    // Telesign's sender ids are whitelisted: a sender not registered
    // there; another upstream may take it.
    (
        0x00A,
        None,
        Reason::SenderNotAllowed,
        T,
        "Invalid Source Address",
    ),
    (
        0x00B,
        None,
        Reason::InvalidDestination,
        P,
        "Invalid Destination Address",
    ),
    (0x014, None, Reason::Throttled, T, "Message Queue Full"),
    (0x0FF, None, Reason::Unknown, T, "Unknown Error"),
    (0x401, None, Reason::SystemFailure, T, "Send error"),
    (
        0x402,
        None,
        Reason::AbsentSubscriber,
        T,
        "Other party is not connected",
    ),
    (
        0x403,
        None,
        Reason::SystemFailure,
        T,
        "Unknown provider error",
    ),
    (0x404, None, Reason::Unknown, T, "Unknown user error"),
    (0x405, None, Reason::InvalidMessage, P, "Invalid request"),
    (
        0x407,
        None,
        Reason::AbsentSubscriber,
        T,
        "Absent subscriber error",
    ),
    (
        0x408,
        None,
        Reason::SystemFailure,
        T,
        "Generic error for system exceptions",
    ),
    (
        0x4A0,
        None,
        Reason::DeliveryFailure,
        T,
        "Temporary phone error",
    ),
    (
        0x4A1,
        None,
        Reason::DeliveryFailure,
        P,
        "Permanent phone error",
    ),
    (
        0x4A2,
        None,
        Reason::NoRoute,
        T,
        "Gateway/network cannot route message",
    ),
    (
        0x4A3,
        Some(Expired),
        Reason::Expired,
        P,
        "Message expired before delivery",
    ),
    // The number cannot take SMS (MAP: equipment not SM-equipped).
    (0x4A4, None, Reason::DeliveryFailure, P, "SMS not supported"),
    // "customer": Telesign's customer, i.e. our account's own block list.
    (
        0x4A5,
        None,
        Reason::Blacklisted,
        P,
        "Message blocked by customer request",
    ),
    (
        0x4A6,
        None,
        Reason::RejectedByVendor,
        P,
        "Message blocked by Telesign",
    ),
    (
        0x4A7,
        None,
        Reason::ContentRejected,
        P,
        "Invalid/unsupported message content",
    ),
    (
        0x4A8,
        None,
        Reason::RejectedByVendor,
        T,
        "Transaction not attempted",
    ),
    (
        0x4A9,
        None,
        Reason::UpstreamConfiguration,
        T,
        "Not authorized",
    ),
    (
        0x4AA,
        Some(Unknown),
        Reason::Unknown,
        P,
        "Status not available",
    ),
    (
        0x4AB,
        Some(Unknown),
        Reason::Unknown,
        P,
        "DLR sending could not be guaranteed",
    ),
    (
        0x4AC,
        None,
        Reason::UpstreamConfiguration,
        T,
        "This product is not enabled for this Customer ID",
    ),
    (
        0x4AD,
        None,
        Reason::UpstreamConfiguration,
        T,
        "Not allowed host",
    ),
    // A volume/spending cap on our account.
    (
        0x4AE,
        None,
        Reason::NoCredit,
        T,
        "SMS exceeded transaction hard cap",
    ),
    (
        0x4AF,
        None,
        Reason::InvalidDestination,
        P,
        "Invalid country code",
    ),
    // Campaign registration of our account.
    (
        0x4B0,
        None,
        Reason::UpstreamConfiguration,
        T,
        "Campaign error",
    ),
    (
        0x4B1,
        None,
        Reason::SystemFailure,
        T,
        "Carrier rejected - temporary problem",
    ),
    (
        0x4B2,
        None,
        Reason::RejectedByVendor,
        P,
        "Carrier rejected - permanent error",
    ),
    (
        0x4B3,
        None,
        Reason::SystemFailure,
        T,
        "Error on gateway - temporary error",
    ),
    (
        0x4B4,
        None,
        Reason::SystemFailure,
        P,
        "Error on gateway - permanent error",
    ),
    (0x4B5, None, Reason::InvalidMessage, P, "Parameters problem"),
    (
        0x4B6,
        None,
        Reason::Blacklisted,
        P,
        "Message blocked by subscriber action or request",
    ),
    // The recipient's prepaid balance: operator barring until it is topped up.
    (
        0x4B7,
        None,
        Reason::CallBarred,
        T,
        "Subscriber low on credit",
    ),
    (0x4B8, None, Reason::SystemFailure, T, "Roaming error"),
    (
        0x4B9,
        None,
        Reason::NoRoute,
        T,
        "Mobile number portability error",
    ),
    (0x4BA, None, Reason::ContentRejected, P, "Suspected spam"),
    (
        0x4BC,
        None,
        Reason::RejectedByVendor,
        P,
        "Message blocked due to high risk recommendation",
    ),
    // "only exists for DLRs with a status of EXPIRED"; delivered, so never resend.
    (
        0x4BD,
        Some(Expired),
        Reason::Expired,
        P,
        "delivered, but a final DLR never arrived",
    ),
    // Our account's maximum price: another upstream may be cheaper.
    (
        0x4BF,
        None,
        Reason::UpstreamConfiguration,
        T,
        "price exceeding your set maximum price",
    ),
    // A prefix Telesign will not send to: another upstream may.
    (
        0x4C0,
        None,
        Reason::NoRoute,
        T,
        "Destination blocked by prefix",
    ),
    (
        0x4C1,
        None,
        Reason::ContentRejected,
        P,
        "Content sent is not allowed",
    ),
    // Blocklisted for the country or not yet whitelisted there, at Telesign.
    (0x4C2, None, Reason::SenderNotAllowed, T, "Sender ID"),
];

/// The err codes that describe an outcome rather than a refusal: not
/// command_status values.
const OUTCOME_ONLY: &[u32] = &[0x000, 0x4A3, 0x4AA, 0x4AB, 0x4BD];

/// "Telesign provides error information as part of the command_status ...
/// SMPP-defined error codes as well as some Telesign-specific error codes":
/// every refusal code of the table, plus 0x62, with which a submit_sm whose
/// validity_period fails validation is rejected.
fn command_status_table() -> Vec<(u32, Reason, Class, &'static str)> {
    let mut table: Vec<_> = RECEIPT_ERRORS
        .iter()
        .filter(|e| !OUTCOME_ONLY.contains(&e.0))
        .map(|&(code, _, reason, class, seed)| (code, reason, class, seed))
        .collect();
    table.push((
        0x62,
        Reason::InvalidMessage,
        P,
        "Invalid message validity period",
    ));
    table
}

#[test]
fn every_err_code_of_the_seed_and_no_other() {
    let profile = profile();
    for &(code, state, reason, class, seed) in RECEIPT_ERRORS {
        let entry = profile
            .receipt_error(code)
            .unwrap_or_else(|| panic!("err 0x{code:03X} ({seed}) missing"));
        assert_eq!(entry.state, state, "err 0x{code:03X} ({seed}) state");
        assert_eq!(entry.reason, reason, "err 0x{code:03X} ({seed}) reason");
        assert_eq!(entry.class, class, "err 0x{code:03X} ({seed}) class");
        assert!(
            entry.meaning.to_lowercase().contains(&seed.to_lowercase()),
            "err 0x{code:03X}: meaning {:?} should say {seed:?}",
            entry.meaning
        );
    }
    let seed: BTreeSet<u32> = RECEIPT_ERRORS.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.receipt_error.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
    assert_eq!(seed.len(), 46);
    // The table's range, 3 octets of hex.
    assert_eq!(seed.first(), Some(&0x000));
    assert_eq!(seed.last(), Some(&0x4C2));
}

#[test]
fn every_command_status_of_the_seed_and_no_other() {
    let profile = profile();
    let table = command_status_table();
    for &(code, reason, class, seed) in &table {
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
    let seed: BTreeSet<u32> = table.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.command_status.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
    assert_eq!(seed.len(), 42);
}

/// What only Telesign refuses (a sender not whitelisted there, no route or
/// a blocked prefix there, number portability, our product, campaign and
/// price settings there): the next upstream at once, for a refused submit
/// and for a receipt alike.
#[test]
fn refusals_that_concern_telesign_only_have_scope_upstream() {
    let profile = profile();
    let want = BTreeSet::from([0x00A, 0x4A2, 0x4AC, 0x4B0, 0x4B9, 0x4BF, 0x4C0, 0x4C2]);
    let statuses: BTreeSet<u32> = profile
        .command_status
        .iter()
        .filter(|e| e.scope == Scope::Upstream)
        .map(|e| e.code)
        .collect();
    assert_eq!(statuses, want);
    let errors: BTreeSet<u32> = profile
        .receipt_error
        .iter()
        .filter(|e| e.scope == Scope::Upstream)
        .map(|e| e.code)
        .collect();
    assert_eq!(errors, want);
    // Its receipt TLVs: MCC, MNC, price.
    assert_eq!(profile.receipts.vendor_tlvs, [0x0410, 0x0411, 0x0412]);
}

#[test]
fn refused_submits_normalise_by_class() {
    let profile = profile();
    let validity = profile.submit_outcome(0x62).expect("0x62 listed");
    assert_eq!(
        (validity.state, validity.reason, validity.class),
        (Rejectd, Reason::InvalidMessage, P)
    );
    let carrier = profile.submit_outcome(0x4B1).expect("0x4B1 listed");
    assert_eq!((carrier.state, carrier.class), (Undeliv, T));
    assert_eq!(carrier.err_text(), "034");
}

#[test]
fn message_states_and_stat_spellings() {
    let profile = profile();
    // "message_state Value | state Value": 2-9, standard spellings.
    let table = [
        (2, "DELIVRD"),
        (3, "EXPIRED"),
        (4, "DELETED"),
        (5, "UNDELIV"),
        (6, "ACCEPTD"),
        (7, "UNKNOWN"),
        (8, "REJECTD"),
        (9, "SKIPPED"),
    ];
    for (message_state, stat) in table {
        let state = profile.stat(stat).unwrap_or_else(|| panic!("{stat}"));
        assert_eq!(state.message_state(), message_state, "{stat}");
        assert_eq!(state.stat(), stat);
    }
    assert!(profile.receipt_stat.is_empty());
}

#[test]
fn versions_and_binds() {
    let profile = profile();
    // "compliant with SMPP versions 3.4 and 5.0".
    assert_eq!(profile.versions, [SmppVersion::V34, SmppVersion::V50]);
    // TX, RX, TRX ("persistent TRX binds are preferred").
    let binds: BTreeSet<&str> = profile.bind_types.iter().map(|b| b.as_str()).collect();
    assert_eq!(
        binds,
        BTreeSet::from(["transmitter", "receiver", "transceiver"])
    );
}

#[test]
fn limits() {
    let limits = profile().limits;
    // "Use short_message to send a short message of up to 255 octets".
    assert_eq!(limits.short_message_max, Some(255));
    // System ID: "C-Octet String Maximum Size: 16 octets"; Password:
    // "C-Octet String Maximum Size: 9 octets" - both including the NUL.
    // "sufficient number of binds to support 100% of client traffic": no cap.
    assert_eq!(limits.sessions_per_credential, None);
    assert_eq!(limits.window, None);
    assert_eq!(limits.rate_per_session, None);
    assert_eq!(limits.rate_per_account, None);
    assert_eq!(limits.message_payload_max, None);
}

#[test]
fn timers() {
    let timers = profile().timers;
    // Session Init Timer 10s (Tern binds at once: a note), Enquire Link
    // Timer 30s, Response Timer 30s.
    assert!(profile()
        .notes
        .iter()
        .any(|n| n.contains("session init 10 s")));
    assert_eq!(timers.enquire_link_secs, Some(30));
    assert_eq!(timers.response_timeout_secs, Some(30));
}

#[test]
fn tls_1_2_required_with_the_listed_ciphers() {
    let tls = profile().tls;
    // "Implement Transport Layer Security (TLS) v1.2 encryption for all SMPP
    // communication."
    assert!(tls.required);
    assert_eq!(tls.minimum, Some(TlsMinimum::V12));
    // The listed cipher suites are a fact for people (rustls negotiates
    // from the server's list; four of the five are suites it lacks).
    let notes = profile().notes.join("\n");
    for suite in [
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ] {
        assert!(notes.contains(suite), "{suite} in the notes");
    }
}

#[test]
fn addresses() {
    let addresses = profile().addresses;
    // dest_addr_ton 1 (International), dest_addr_npi 1 (ISDN E163/E164).
    assert_eq!(
        addresses.destination,
        Some(AddressRule {
            ton: Some(1),
            npi: Some(1),
            ..AddressRule::default()
        })
    );
    // No sender TON/NPI rules are given.
    assert_eq!(addresses.alphanumeric, None);
    assert_eq!(addresses.shortcode, None);
    assert_eq!(addresses.international, None);
}

#[test]
fn codings() {
    let coding = profile().coding;
    // "The default value is 0." (the seed's table of other values is missing).
    assert_eq!(coding.accepted, [0]);
}

#[test]
fn long_messages_in_one_message_payload() {
    let long = profile().long_messages;
    // "Use message_payload to send messages longer than 255 octets"; "Let
    // Telesign split it".
    assert_eq!(long.method, LongMethod::Payload);
    // "submit_sm_resp ... only with the reference ID for the first part";
    // "the DLR ... refers to just the reference ID of the first part".
    assert_eq!(long.receipts_for, ReceiptsFor::First);
    assert_eq!(long.max_parts, None);
}

#[test]
fn validity_absolute_or_relative() {
    let times = profile().times;
    // "Validity period can be defined using absolute time format or relative
    // time format."
    assert_eq!(times.validity, TimeForm::Both);
    assert_eq!(times.schedule, TimeForm::Both);
}

#[test]
fn receipt_data_centre_in_submit_service_type() {
    let system_type = profile().system_type;
    // "include the system_type parameter in each submit_sm request to specify
    // the data center the response should be routed back to".
    assert_eq!(
        system_type.submit_service_type.as_deref(),
        Some("receipt_data_centre")
    );
    assert_eq!(system_type.flash, None);
}

#[test]
fn message_id_is_32_hex_digits() {
    // "This is a 32-digit hex value ... randomly generated by Telesign."
    assert_eq!(profile().message_id.form, IdForm::Hex32);
}

#[test]
fn receipts_text_and_tlvs_with_hex_err() {
    let profile = profile();
    let receipts = &profile.receipts;
    // "a hexadecimal value that is 3-octets long".
    assert_eq!(receipts.err_radix, Radix::Hex);
    // "delivery status is provided in two ways each time": short_message
    // (stat, err) and receipted_message_id, message_state, network_error_code.
    assert!(receipts.text);
    assert!(receipts.tlvs);
    // "the client has to setup a transceiver or receiver connection".
    let notes = profile.notes.join("\n");
    for fact in [
        "smpp.tsentcloud.com",
        "3550",
        "0x0410",
        "0x0411",
        "0x0412",
        "two passwords",
    ] {
        assert!(notes.contains(fact), "notes should mention {fact}");
    }
}
