//! The built-in vendor profiles against their seeds (the vendors' own
//! documents, in shared/seeds/): one table-driven test runs every check of
//! every vendor, and reports every one that fails, not only the first.
//! Each vendor's expectations are transcribed from its seed, not from the
//! profile's TOML; what all vendors are checked for the same way (a code
//! table exactly the seed's, stat spellings) is one helper below.

use std::collections::BTreeSet;

use tern_router::{Class, FinalState, Profile, Reason};

/// Every check, by vendor and name.
const CHECKS: &[(&str, &str, fn())] = &[
    (
        "infobip",
        "code_tables_are_exactly_the_seed_ones",
        infobip::code_tables_are_exactly_the_seed_ones,
    ),
    (
        "infobip",
        "version_bind_and_sessions",
        infobip::version_bind_and_sessions,
    ),
    (
        "infobip",
        "keepalive_and_message_timeout_30_seconds",
        infobip::keepalive_and_message_timeout_30_seconds,
    ),
    (
        "infobip",
        "ssl_endpoint_on_port_8887_plain_also_offered",
        infobip::ssl_endpoint_on_port_8887_plain_also_offered,
    ),
    ("infobip", "codings", infobip::codings),
    (
        "infobip",
        "scheduled_delivery_is_relative_only",
        infobip::scheduled_delivery_is_relative_only,
    ),
    ("infobip", "system_type_flash", infobip::system_type_flash),
    ("infobip", "receipt_format", infobip::receipt_format),
    ("infobip", "stat_spellings", infobip::stat_spellings),
    (
        "mensatek",
        "every_seed_receipt_error_is_mapped_as_the_seed_means_it",
        mensatek::every_seed_receipt_error_is_mapped_as_the_seed_means_it,
    ),
    (
        "mensatek",
        "the_profile_lists_exactly_the_seed_receipt_errors",
        mensatek::the_profile_lists_exactly_the_seed_receipt_errors,
    ),
    (
        "mensatek",
        "the_seed_gives_no_command_status_table",
        mensatek::the_seed_gives_no_command_status_table,
    ),
    (
        "mensatek",
        "versions_bind_and_sessions",
        mensatek::versions_bind_and_sessions,
    ),
    ("mensatek", "senders", mensatek::senders),
    ("mensatek", "codings", mensatek::codings),
    (
        "mensatek",
        "no_tls_nor_timers_in_the_seed",
        mensatek::no_tls_nor_timers_in_the_seed,
    ),
    ("mensatek", "receipt_format", mensatek::receipt_format),
    ("mensatek", "stat_spellings", mensatek::stat_spellings),
    (
        "ovh",
        "every_ptt_code_of_the_seed_and_no_other",
        ovh::every_ptt_code_of_the_seed_and_no_other,
    ),
    (
        "ovh",
        "every_command_status_of_the_seed_and_no_other",
        ovh::every_command_status_of_the_seed_and_no_other,
    ),
    (
        "ovh",
        "refused_submits_normalise_by_class",
        ovh::refused_submits_normalise_by_class,
    ),
    (
        "ovh",
        "refusals_that_concern_ovh_only_have_scope_upstream",
        ovh::refusals_that_concern_ovh_only_have_scope_upstream,
    ),
    ("ovh", "version_and_binds", ovh::version_and_binds),
    ("ovh", "sending_limits", ovh::sending_limits),
    ("ovh", "timers", ovh::timers),
    (
        "ovh",
        "tls_1_3_minimum_plain_also_offered",
        ovh::tls_1_3_minimum_plain_also_offered,
    ),
    ("ovh", "addresses", ovh::addresses),
    ("ovh", "codings", ovh::codings),
    (
        "ovh",
        "long_messages_as_udh_segments",
        ovh::long_messages_as_udh_segments,
    ),
    (
        "ovh",
        "times_system_type_and_message_id",
        ovh::times_system_type_and_message_id,
    ),
    (
        "ovh",
        "receipts_standard_text_with_receipted_message_id",
        ovh::receipts_standard_text_with_receipted_message_id,
    ),
    (
        "seed001",
        "loads_under_its_name_with_a_source",
        seed001::loads_under_its_name_with_a_source,
    ),
    (
        "seed001",
        "the_seed_table_is_transcribed_consistently",
        seed001::the_seed_table_is_transcribed_consistently,
    ),
    (
        "seed001",
        "every_seed_code_has_the_class_and_reason_its_meaning_implies",
        seed001::every_seed_code_has_the_class_and_reason_its_meaning_implies,
    ),
    (
        "seed001",
        "the_profile_lists_exactly_the_seed_codes",
        seed001::the_profile_lists_exactly_the_seed_codes,
    ),
    (
        "seed001",
        "refused_submits_end_or_fail_over_by_class",
        seed001::refused_submits_end_or_fail_over_by_class,
    ),
    (
        "seed001",
        "versions_and_bind_types",
        seed001::versions_and_bind_types,
    ),
    ("seed001", "timers", seed001::timers),
    ("seed001", "limits_and_sender", seed001::limits_and_sender),
    ("seed001", "receipt_format", seed001::receipt_format),
    (
        "seed001",
        "facts_without_a_field_are_noted",
        seed001::facts_without_a_field_are_noted,
    ),
    (
        "telesign",
        "every_err_code_of_the_seed_and_no_other",
        telesign::every_err_code_of_the_seed_and_no_other,
    ),
    (
        "telesign",
        "every_command_status_of_the_seed_and_no_other",
        telesign::every_command_status_of_the_seed_and_no_other,
    ),
    (
        "telesign",
        "refusals_that_concern_telesign_only_have_scope_upstream",
        telesign::refusals_that_concern_telesign_only_have_scope_upstream,
    ),
    (
        "telesign",
        "refused_submits_normalise_by_class",
        telesign::refused_submits_normalise_by_class,
    ),
    (
        "telesign",
        "message_states_and_stat_spellings",
        telesign::message_states_and_stat_spellings,
    ),
    (
        "telesign",
        "versions_and_binds",
        telesign::versions_and_binds,
    ),
    ("telesign", "limits", telesign::limits),
    ("telesign", "timers", telesign::timers),
    (
        "telesign",
        "tls_1_2_required_with_the_listed_ciphers",
        telesign::tls_1_2_required_with_the_listed_ciphers,
    ),
    ("telesign", "addresses", telesign::addresses),
    ("telesign", "codings", telesign::codings),
    (
        "telesign",
        "long_messages_in_one_message_payload",
        telesign::long_messages_in_one_message_payload,
    ),
    (
        "telesign",
        "validity_absolute_or_relative",
        telesign::validity_absolute_or_relative,
    ),
    (
        "telesign",
        "receipt_data_centre_in_submit_service_type",
        telesign::receipt_data_centre_in_submit_service_type,
    ),
    (
        "telesign",
        "message_id_is_32_hex_digits",
        telesign::message_id_is_32_hex_digits,
    ),
    (
        "telesign",
        "receipts_text_and_tlvs_with_hex_err",
        telesign::receipts_text_and_tlvs_with_hex_err,
    ),
];

#[test]
fn every_builtin_profile_matches_its_seed() {
    let failed: Vec<String> = CHECKS
        .iter()
        .filter_map(|&(vendor, name, check)| {
            let panic = std::panic::catch_unwind(check).err()?;
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            Some(format!("{vendor}::{name}: {why}"))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

/// A receipt `err` row of a seed: code, the final state the profile must
/// give it (if any), reason, class, and a word its meaning must contain.
type ReceiptRow = (u32, Option<FinalState>, Reason, Class, &'static str);

/// A command_status row of a seed: code, reason, class, and a word its
/// meaning must contain.
type StatusRow = (u32, Reason, Class, &'static str);

/// `profile`'s receipt errors are exactly `rows`, each as the seed means
/// it; `label` writes a code as the seed does (`PTT 12`, `err 0x4A3`).
fn receipt_errors_are_the_seed(profile: &Profile, rows: &[ReceiptRow], label: fn(u32) -> String) {
    for &(code, state, reason, class, seed) in rows {
        let code_ = label(code);
        let entry = profile
            .receipt_error(code)
            .unwrap_or_else(|| panic!("{code_} ({seed}) missing"));
        assert_eq!(entry.state, state, "{code_} ({seed}) state");
        assert_eq!(entry.reason, reason, "{code_} ({seed}) reason");
        assert_eq!(entry.class, class, "{code_} ({seed}) class");
        assert!(
            entry.meaning.to_lowercase().contains(&seed.to_lowercase()),
            "{code_}: meaning {:?} should say {seed:?}",
            entry.meaning
        );
    }
    let seed: BTreeSet<u32> = rows.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.receipt_error.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
}

/// `profile`'s command_status table is exactly `rows`, each as the seed
/// means it.
fn command_status_is_the_seed(profile: &Profile, rows: &[StatusRow]) {
    for &(code, reason, class, seed) in rows {
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
    let seed: BTreeSet<u32> = rows.iter().map(|e| e.0).collect();
    let listed: BTreeSet<u32> = profile.command_status.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
}

/// Each receipt `stat` spelling reads as its state.
fn stats_read_as(profile: &Profile, table: &[(&str, FinalState)]) {
    for &(stat, state) in table {
        assert_eq!(profile.stat(stat), Some(state), "{stat}");
    }
}

mod infobip {
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

    pub fn code_tables_are_exactly_the_seed_ones() {
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

    pub fn version_bind_and_sessions() {
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

    pub fn keepalive_and_message_timeout_30_seconds() {
        let timers = profile().timers;
        assert_eq!(timers.enquire_link_secs, Some(30));
        assert_eq!(timers.response_timeout_secs, Some(30));
    }

    pub fn ssl_endpoint_on_port_8887_plain_also_offered() {
        let tls = profile().tls;
        assert!(!tls.required, "plain 8888 is offered too");
        // The SSL host and port go in the upstream entry; the notes say them.
        assert!(profile().notes.iter().any(|n| n.contains("port 8887")));
    }

    pub fn codings() {
        let coding = profile().coding;
        let accepted: BTreeSet<u8> = coding.accepted.iter().copied().collect();
        // 0/1 GSM7 (or IA5), 3 Latin-1, 8 UCS2.
        assert_eq!(accepted, BTreeSet::from([0, 1, 3, 8]));
        assert_eq!(coding.default_alphabet, Alphabet::Gsm7);
    }

    pub fn scheduled_delivery_is_relative_only() {
        assert_eq!(profile().times.schedule, TimeForm::Relative);
    }

    pub fn system_type_flash() {
        let system_type = profile().system_type;
        assert_eq!(system_type.flash.as_deref(), Some("NSMS"));
    }

    pub fn receipt_format() {
        let receipts = profile().receipts;
        // id: sub: dlvrld: submit date: done date: stat: err:
        assert!(receipts.text);
        // The key's spelling is for people: Tern reads any spelling.
        assert!(profile().notes.iter().any(|n| n.contains("dlvrld:")));
    }

    pub fn stat_spellings() {
        super::stats_read_as(
            &profile(),
            &[
                ("DELIVRD", FinalState::Delivrd),
                ("EXPIRED", FinalState::Expired),
                ("DELETED", FinalState::Deleted),
                ("UNDELIV", FinalState::Undeliv),
                ("ACCEPTD", FinalState::Acceptd),
                ("DELIVERY UNKNOWN", FinalState::Unknown),
                ("REJECTED", FinalState::Rejectd),
            ],
        );
    }
}

mod mensatek {
    //! The Mensatek profile against its seed (seeds/000_6ca7f4f97e93a029.txt,
    //! Spanish). Every expectation here is transcribed from the seed, not from
    //! the TOML.

    use std::collections::BTreeSet;

    use tern_router::profile::{Alphabet, BindKind, OnUnrepresentable, Radix};
    use tern_router::{Class, FinalState, Profile, Reason, Scope};

    use Class::{Permanent as P, Temporary as T};
    use FinalState::{Deleted, Delivrd, Enroute, Expired, Rejectd};

    fn profile() -> Profile {
        Profile::builtin("mensatek")
            .expect("mensatek is a built-in profile")
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// §5 "Error (message_err)": every RESULTADO of the seed's table, with the
    /// state its label implies (if any), the canonical reason and the class.
    const RECEIPT_ERRORS: &[(u32, Option<FinalState>, Reason, Class)] = &[
        // Esperando entrega; "000 en caso de entrega o en proceso": no state of its own.
        (0, None, Reason::None, T),
        // Programado.
        (1, Some(Enroute), Reason::None, T),
        // Esperando entrega.
        (2, Some(Enroute), Reason::None, T),
        (10, Some(Enroute), Reason::None, T),
        // Entregado al teléfono.
        (11, Some(Delivrd), Reason::None, P),
        (12, Some(Enroute), Reason::None, T),
        (13, Some(Delivrd), Reason::None, P),
        // Entregado y Certificado.
        (14, Some(Delivrd), Reason::None, P),
        // Error Fatal: error indeterminado en la operadora.
        (22, None, Reason::Unknown, P),
        (23, None, Reason::Unknown, P),
        (24, None, Reason::Unknown, P),
        // Error Fatal: problema en el envío de sus mensajes (the account).
        (25, None, Reason::UpstreamConfiguration, T),
        (26, None, Reason::UpstreamConfiguration, T),
        (27, None, Reason::UpstreamConfiguration, T),
        (28, None, Reason::UpstreamConfiguration, T),
        // Mensaje Cancelado.
        (29, Some(Deleted), Reason::None, P),
        // Esperando entrega.
        (31, Some(Enroute), Reason::None, T),
        // La Red responde que el teléfono no existe.
        (50, None, Reason::UnknownSubscriber, P),
        // Falló la entrega al teléfono (after Mensatek's retries).
        (51, None, Reason::DeliveryFailure, P),
        // Falló la entrega a la red.
        (52, None, Reason::SystemFailure, T),
        // El mensaje ha expirado. (El teléfono sigue no operativo): expired
        // because the handset stayed absent, so EXPIRED with MAP 27.
        (53, Some(Expired), Reason::AbsentSubscriber, P),
        // Número en Lista Negra.
        (54, None, Reason::Blacklisted, P),
        // Número Bloqueado.
        (55, None, Reason::Blacklisted, P),
        // Entregado al teléfono. Tiempo de entrega no disponible.
        (70, Some(Delivrd), Reason::None, P),
        (101, Some(Expired), Reason::AbsentSubscriber, P),
        // Usuario dado de baja.
        (102, None, Reason::UnknownSubscriber, P),
        (103, Some(Expired), Reason::AbsentSubscriber, P),
        // El teléfono no es correcto.
        (104, None, Reason::InvalidDestination, P),
        (106, Some(Delivrd), Reason::None, P),
        // El teléfono no existe / dado de baja / sin servicio.
        (110, None, Reason::UnknownSubscriber, P),
        (111, None, Reason::UnknownSubscriber, P),
        (112, None, Reason::UnknownSubscriber, P),
        (113, Some(Expired), Reason::AbsentSubscriber, P),
        // Fallo en el SMSC destino (message held) / congestión (retrying).
        (120, Some(Enroute), Reason::SystemFailure, T),
        (121, Some(Enroute), Reason::SystemFailure, T),
        (122, Some(Enroute), Reason::SystemFailure, T),
        // Error en el Teléfono destino (no longer exists).
        (130, None, Reason::UnknownSubscriber, P),
        // Memoria llena.
        (131, None, Reason::DeliveryFailure, T),
        // El Móvil no puede recibir mensajes.
        (132, None, Reason::DeliveryFailure, T),
        // Fallo en móvil destino (dado de baja).
        (133, None, Reason::UnknownSubscriber, P),
        // Problema en el móvil / la red destino. Reintentando...
        (134, Some(Enroute), Reason::DeliveryFailure, T),
        (135, Some(Enroute), Reason::SystemFailure, T),
        // Teléfono sin servicio / dado de baja.
        (136, None, Reason::UnknownSubscriber, P),
        (137, None, Reason::UnknownSubscriber, P),
        // Error de destino (operadora/país destino).
        (140, None, Reason::NoRoute, T),
        (141, None, Reason::NoRoute, T),
        // La red de destino ha cerrado temporalmente la entrega.
        (150, None, Reason::NoRoute, T),
        // Rechazado por la operadora (créditos devueltos).
        (200, Some(Rejectd), Reason::RejectedByVendor, P),
    ];

    pub fn every_seed_receipt_error_is_mapped_as_the_seed_means_it() {
        let profile = profile();
        for &(code, state, reason, class) in RECEIPT_ERRORS {
            let entry = profile
                .receipt_error(code)
                .unwrap_or_else(|| panic!("err {code} of the seed is missing"));
            assert_eq!(
                (entry.state, entry.reason, entry.class),
                (state, reason, class),
                "err {code}"
            );
            assert!(!entry.meaning.trim().is_empty(), "err {code} has a meaning");
        }
        // "Error de destino" and "la red de destino ha cerrado": a problem
        // sending to that destination through Mensatek; another upstream may
        // reach it (the message is sent again through it).
        let not_here: BTreeSet<u32> = profile
            .receipt_error
            .iter()
            .filter(|e| e.scope == Scope::Upstream)
            .map(|e| e.code)
            .collect();
        assert_eq!(not_here, BTreeSet::from([140, 141, 150]));
    }

    pub fn the_profile_lists_exactly_the_seed_receipt_errors() {
        let profile = profile();
        let seed: BTreeSet<u32> = RECEIPT_ERRORS.iter().map(|e| e.0).collect();
        assert_eq!(seed.len(), RECEIPT_ERRORS.len(), "table has duplicates");
        assert_eq!(seed.len(), 48);
        let listed: BTreeSet<u32> = profile.receipt_error.iter().map(|e| e.code).collect();
        assert_eq!(listed, seed);
    }

    pub fn the_seed_gives_no_command_status_table() {
        assert!(profile().command_status.is_empty());
    }

    pub fn versions_bind_and_sessions() {
        let profile = profile();
        assert_eq!(profile.name, "mensatek");
        let versions: BTreeSet<&str> = profile.versions.iter().map(|v| v.as_str()).collect();
        assert_eq!(versions, BTreeSet::from(["3.3", "3.4"]));
        assert_eq!(profile.bind_types, [BindKind::Transceiver]);
        // One connection per credential per server/port.
        assert_eq!(profile.limits.sessions_per_credential, Some(1));
        assert!(profile.limits.per_server_port);
        assert!(!profile.source.is_empty());
    }

    pub fn senders() {
        let addresses = profile().addresses;
        let alpha = addresses.alphanumeric.expect("alphanumeric sender rule");
        assert_eq!(alpha.max_len, Some(11));
        assert_eq!(alpha.extra_chars, "_");
        let international = addresses.international.expect("international sender rule");
        assert_eq!(international.max_len, Some(15));
        assert!(!international.plus, "digits only");
    }

    pub fn codings() {
        let coding = profile().coding;
        let accepted: BTreeSet<u8> = coding.accepted.iter().copied().collect();
        assert_eq!(accepted, BTreeSet::from([0, 1, 8]));
        assert_eq!(coding.default_alphabet, Alphabet::Gsm7);
        // Accents outside GSM 03.38 are replaced by the most similar character.
        assert_eq!(coding.unrepresentable, OnUnrepresentable::Replace);
    }

    pub fn no_tls_nor_timers_in_the_seed() {
        let profile = profile();
        assert!(!profile.tls.required);
        assert_eq!(profile.tls.minimum, None);
        assert_eq!(profile.timers.enquire_link_secs, None);
        assert_eq!(profile.timers.response_timeout_secs, None);
        assert_eq!(profile.system_type.flash, None);
    }

    pub fn receipt_format() {
        let receipts = profile().receipts;
        // id: sub: dlvr: submit date: done date: stat: err:, err in decimal (000).
        assert_eq!(receipts.err_radix, Radix::Decimal);
        assert!(receipts.text);
    }

    pub fn stat_spellings() {
        super::stats_read_as(
            &profile(),
            &[
                ("DELIVRD", FinalState::Delivrd),
                ("EXPIRED", FinalState::Expired),
                ("UNDELIV", FinalState::Undeliv),
                ("ACCEPTD", FinalState::Acceptd),
                ("UNKNOWN", FinalState::Unknown),
                ("ENROUTE", FinalState::Enroute),
                ("REJECTD", FinalState::Rejectd),
            ],
        );
    }
}

mod ovh {
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

    pub fn every_ptt_code_of_the_seed_and_no_other() {
        super::receipt_errors_are_the_seed(&profile(), RECEIPT_ERRORS, |code| {
            format!("PTT {code}")
        });
        assert_eq!(RECEIPT_ERRORS.len(), 28);
    }

    pub fn every_command_status_of_the_seed_and_no_other() {
        super::command_status_is_the_seed(&profile(), COMMAND_STATUS);
    }

    pub fn refused_submits_normalise_by_class() {
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
    pub fn refusals_that_concern_ovh_only_have_scope_upstream() {
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

    pub fn version_and_binds() {
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

    pub fn sending_limits() {
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

    pub fn timers() {
        let timers = profile().timers;
        // "a 30-second interval between each request".
        assert_eq!(timers.enquire_link_secs, Some(30));
        assert_eq!(timers.response_timeout_secs, None);
        // "OVHcloud SMSC unbinds the connections every 24h": Tern reconnects
        // after any unbind, so this is a fact for people.
        assert!(profile().notes.iter().any(|n| n.contains("every 24 h")));
    }

    pub fn tls_1_3_minimum_plain_also_offered() {
        let tls = profile().tls;
        // "encrypted connection with TLS 1.3 minimum".
        assert_eq!(tls.minimum, Some(TlsMinimum::V13));
        // "Insecure connection ... for backward compatibility".
        assert!(!tls.required);
    }

    pub fn addresses() {
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

    pub fn codings() {
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

    pub fn long_messages_as_udh_segments() {
        let long = profile().long_messages;
        // sar_* and message_payload: "No"; PTT 103 speaks of segments.
        assert_eq!(long.method, LongMethod::Udh);
        assert_eq!(long.receipts_for, ReceiptsFor::All);
        // The number of allowed segments is not given.
        assert_eq!(long.max_parts, None);
    }

    pub fn times_system_type_and_message_id() {
        let profile = profile();
        // schedule_delivery_time and validity_period: "Yes", no format restriction.
        assert_eq!(profile.times.schedule, TimeForm::Both);
        assert_eq!(profile.times.validity, TimeForm::Both);
        // service_type: "No"; no bind system_type.
        assert_eq!(profile.system_type, Default::default());
        // The submit_sm_resp message_id form is not described.
        assert_eq!(profile.message_id.form, IdForm::Opaque);
    }

    pub fn receipts_standard_text_with_receipted_message_id() {
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
}

mod seed001 {
    //! The `seed001` profile against its seed, `shared/seeds/001_8e9274a0ad73bd36.txt`
    //! (a Russian provider's SMPP document). The expectations below are
    //! transcribed from the seed, not from the profile.

    use std::collections::BTreeSet;

    use tern_router::profile::{LongMethod, Radix, SmppVersion};
    use tern_router::{Class, FinalState, Profile, Reason, Scope};

    fn profile() -> Profile {
        Profile::builtin("seed001")
            .expect("seed001 is a built-in profile")
            .unwrap_or_else(|e| panic!("seed001 does not load: {e}"))
    }

    /// One row of the seed's "Зарезервированные коды ошибок" table (plus the one
    /// standard code the seed names).
    struct SeedCode {
        /// The code as the seed writes it in hex.
        hex: u32,
        /// The code as the seed writes it in decimal, in brackets.
        decimal: u32,
        /// The seed's description.
        russian: &'static str,
        /// A word the English meaning must contain.
        keyword: &'static str,
        reason: Reason,
        class: Class,
        /// Whether only this provider refuses it (the next upstream is tried
        /// at once).
        scope: Scope,
    }

    /// The seed's table, transcribed. The class follows one rule: a refusal for
    /// what the message is (its words, a blacklisted address) is permanent; a
    /// refusal for the provider's state (balance, transport, registration
    /// failure) is temporary, since another upstream or a later try can
    /// succeed; what only this provider cannot take (its codings, its 160-byte
    /// limit, its tariffs and routing for our account, a command it lacks) is
    /// temporary with scope "upstream": the next upstream at once. The
    /// duplicate-text limit is a throttle: the same message goes later.
    const SEED_TABLE: &[SeedCode] = &[
        SeedCode {
            hex: 0x0400,
            decimal: 1024,
            russian: "Кодировка не распознана",
            keyword: "coding",
            reason: Reason::InvalidMessage,
            class: Class::Temporary,
            scope: Scope::Upstream,
        },
        SeedCode {
            hex: 0x0401,
            decimal: 1025,
            russian: "Слишком большой текст сообщения. Максимальная длина не должна превышать 160 байт.",
            keyword: "160",
            reason: Reason::InvalidMessage,
            class: Class::Temporary,
            scope: Scope::Upstream,
        },
        SeedCode {
            hex: 0x0402,
            decimal: 1026,
            russian: "Ошибка регистрации сообщения на отправку. При возникновении этой ошибки обратитесь в службу поддержки.",
            keyword: "registering",
            reason: Reason::SystemFailure,
            class: Class::Temporary,
            scope: Scope::Message,
        },
        SeedCode {
            hex: 0x0403,
            decimal: 1027,
            russian: "Не прошла проверка текста сообщения на наличие недопустимых слов и/или фраз",
            keyword: "forbidden words",
            reason: Reason::ContentRejected,
            class: Class::Permanent,
            scope: Scope::Message,
        },
        SeedCode {
            hex: 0x0404,
            decimal: 1028,
            russian: "Отправитель или получатель в черном списке",
            keyword: "blacklist",
            reason: Reason::Blacklisted,
            class: Class::Permanent,
            scope: Scope::Message,
        },
        SeedCode {
            hex: 0x0453,
            decimal: 1107,
            russian: "Сработало ограничение по отправке одинакового текста на один и тот же номер в течение небольшого промежутка времени.",
            keyword: "same text",
            reason: Reason::Throttled,
            class: Class::Temporary,
            scope: Scope::Message,
        },
        SeedCode {
            hex: 0x043C,
            decimal: 1084,
            russian: "Нет доступного тарифа для запрашиваемого направления.",
            keyword: "tariff",
            reason: Reason::NoRoute,
            class: Class::Temporary,
            scope: Scope::Upstream,
        },
        SeedCode {
            hex: 0x043F,
            decimal: 1087,
            russian: "Нет подходящего тарифа у вышестоящего контрагента.",
            keyword: "counterparty",
            reason: Reason::NoRoute,
            class: Class::Temporary,
            scope: Scope::Upstream,
        },
        SeedCode {
            hex: 0x045A,
            decimal: 1114,
            russian: "Политика маршрутизации не найдена.",
            keyword: "Routing policy",
            reason: Reason::NoRoute,
            class: Class::Temporary,
            scope: Scope::Upstream,
        },
        SeedCode {
            hex: 0x0446,
            decimal: 1094,
            russian: "Ошибка транспорта. При возникновении этой ошибки обратитесь в службу поддержки.",
            keyword: "Transport",
            reason: Reason::SystemFailure,
            class: Class::Temporary,
            scope: Scope::Message,
        },
        SeedCode {
            hex: 0x433,
            decimal: 1075,
            russian: "Недостаточно средств на счете.",
            keyword: "funds",
            reason: Reason::NoCredit,
            class: Class::Temporary,
            scope: Scope::Message,
        },
        // "На неподдерживаемые команды будут приходить GENERIC_NAK сообщения с
        // кодом ошибки ESME_RINVCMDID": the command is refused here, not the
        // message, so another upstream may take it.
        SeedCode {
            hex: 0x03,
            decimal: 3,
            russian: "На неподдерживаемые команды будут приходить GENERIC_NAK сообщения с кодом ошибки ESME_RINVCMDID.",
            keyword: "Unsupported command",
            reason: Reason::RejectedByVendor,
            class: Class::Temporary,
            scope: Scope::Upstream,
        },
    ];

    pub fn loads_under_its_name_with_a_source() {
        let p = profile();
        assert_eq!(p.name, "seed001");
        assert!(p.source.contains("001_8e9274a0ad73bd36"), "{}", p.source);
        assert!(!p.description.contains("placeholder"), "{}", p.description);
        assert!(p.description.contains("Russian"), "{}", p.description);
    }

    pub fn the_seed_table_is_transcribed_consistently() {
        for row in SEED_TABLE {
            assert_eq!(row.hex, row.decimal, "{}", row.russian);
        }
        let codes: BTreeSet<u32> = SEED_TABLE.iter().map(|r| r.hex).collect();
        assert_eq!(codes.len(), SEED_TABLE.len(), "a code is transcribed twice");
        assert_eq!(SEED_TABLE.iter().filter(|r| r.hex >= 0x400).count(), 11);
    }

    pub fn every_seed_code_has_the_class_and_reason_its_meaning_implies() {
        let p = profile();
        for row in SEED_TABLE {
            let entry = p.status(row.hex).unwrap_or_else(|| {
                panic!("0x{:X} ({}) missing: {}", row.hex, row.decimal, row.russian)
            });
            assert_eq!(entry.reason, row.reason, "0x{:X}: {}", row.hex, row.russian);
            assert_eq!(entry.class, row.class, "0x{:X}: {}", row.hex, row.russian);
            assert_eq!(entry.scope, row.scope, "0x{:X}: {}", row.hex, row.russian);
            assert!(
                entry
                    .meaning
                    .to_lowercase()
                    .contains(&row.keyword.to_lowercase()),
                "0x{:X}: meaning {:?} should translate {:?}",
                row.hex,
                entry.meaning,
                row.russian
            );
        }
    }

    pub fn the_profile_lists_exactly_the_seed_codes() {
        let p = profile();
        let seed: BTreeSet<u32> = SEED_TABLE.iter().map(|r| r.hex).collect();
        let listed: BTreeSet<u32> = p.command_status.iter().map(|e| e.code).collect();
        assert_eq!(listed.len(), p.command_status.len());
        assert_eq!(listed, seed, "profile codes differ from the seed's");
    }

    pub fn refused_submits_end_or_fail_over_by_class() {
        let p = profile();
        let words = p.submit_outcome(0x403).expect("0x403 listed");
        assert_eq!(
            (words.state, words.reason, words.class),
            (
                FinalState::Rejectd,
                Reason::ContentRejected,
                Class::Permanent
            )
        );
        assert_eq!(words.err_text(), "903");
        let funds = p.submit_outcome(0x433).expect("0x433 listed");
        assert_eq!(
            (funds.state, funds.reason, funds.class),
            (FinalState::Undeliv, Reason::NoCredit, Class::Temporary)
        );
        assert_eq!(funds.err_text(), "904");
        // "Расшифровку ошибок можно найти в спецификации SMPP 3.4": codes
        // outside the seed's table are left to the generic profile.
        assert!(p.status(0x08).is_none());
        assert!(p.submit_outcome(0x58).is_none());
        // The duplicate-text limit: a throttle, not refused content.
        let duplicate = p.submit_outcome(0x453).expect("0x453 listed");
        assert_eq!(
            (duplicate.reason, duplicate.class),
            (Reason::Throttled, Class::Temporary)
        );
    }

    pub fn versions_and_bind_types() {
        let p = profile();
        // "Протокол обмена определяется спецификацией SMPP версии 3.4."
        assert_eq!(p.versions, [SmppVersion::V34]);
        // "отправить команду BIND_TRANSMITTER или BIND_TRANSCEIVER"
        let binds: BTreeSet<&str> = p.bind_types.iter().map(|b| b.as_str()).collect();
        assert_eq!(binds, BTreeSet::from(["transmitter", "transceiver"]));
    }

    pub fn timers() {
        let p = profile();
        // "клиенту дается 10 секунд, что бы отправить команду BIND_...": Tern
        // binds at once, the fact is a note.
        assert!(p.notes.iter().any(|n| n.contains("10 s")));
        // "отвечать на все пакеты ... в течение 1 минуты, иначе соединение будет
        // разорвано без отсылки UNBIND"
        assert_eq!(p.timers.response_timeout_secs, Some(60));
        // The seed gives no enquire_link interval and no periodic unbind.
        assert_eq!(p.timers.enquire_link_secs, None);
    }

    pub fn limits_and_sender() {
        let p = profile();
        // 0x401: "Максимальная длина не должна превышать 160 байт."
        assert_eq!(p.limits.short_message_max, Some(160));
        // No session, window or rate figures in the seed.
        assert_eq!(p.limits.sessions_per_credential, None);
        assert_eq!(p.limits.window, None);
        assert_eq!(p.limits.rate_per_session, None);
        // "любую информацию (11 знаков) в строку номера отправителя.
        // Поддерживаются цифры, символы латинского алфавита, знаки препинания пробел."
        let alpha = p
            .addresses
            .alphanumeric
            .as_ref()
            .expect("alphanumeric sender rule");
        assert_eq!(alpha.max_len, Some(11));
        for c in [' ', '.', ',', '-'] {
            assert!(
                alpha.extra_chars.contains(c),
                "{c:?} in {:?}",
                alpha.extra_chars
            );
        }
        // The 11 characters are an alphanumeric sender's; a numeric one is an
        // E.164 number, up to 15 digits.
        let international = p
            .addresses
            .international
            .as_ref()
            .expect("international sender rule");
        assert_eq!(international.max_len, Some(15));
        assert_eq!(p.long_messages.method, LongMethod::Udh);
        // Nothing about TLS in the seed.
        assert!(!p.tls.required);
    }

    pub fn receipt_format() {
        let p = profile();
        // "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done
        // date:YYMMDDhhmm stat:DDDDDDD err:E Text: . . ."
        assert!(p.receipts.text);
        assert_eq!(p.receipts.err_radix, Radix::Decimal);
        assert!(
            p.notes.iter().any(|n| n.contains("'Text:'")),
            "the capital-T text key is noted"
        );
        // The seed gives no stat or err tables for receipts.
        assert!(p.receipt_error.is_empty());
        assert!(p.receipt_stat.is_empty());
        assert_eq!(p.stat("DELIVRD"), Some(FinalState::Delivrd));
    }

    pub fn facts_without_a_field_are_noted() {
        let p = profile();
        let notes = p.notes.join("\n");
        for needle in [
            "query_sm",               // active status polling
            "registered_delivery",    // passive, preferred
            "generic_nack",           // unsupported commands
            "ESME_RINVCMDID",         // ... with this status
            "8056",                   // port
            "9001",                   // port
            "XXXX.X",                 // system_id form
            "IP addresses",           // registered before use
            "No MO",                  // receiving is not supported
            "SMPP 3.4 specification", // other codes
        ] {
            assert!(
                notes.contains(needle),
                "notes should mention {needle:?}:\n{notes}"
            );
        }
    }
}

mod telesign {
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

    pub fn every_err_code_of_the_seed_and_no_other() {
        super::receipt_errors_are_the_seed(&profile(), RECEIPT_ERRORS, |code| {
            format!("err 0x{code:03X}")
        });
        let seed: BTreeSet<u32> = RECEIPT_ERRORS.iter().map(|e| e.0).collect();
        assert_eq!(seed.len(), 46);
        // The table's range, 3 octets of hex.
        assert_eq!(seed.first(), Some(&0x000));
        assert_eq!(seed.last(), Some(&0x4C2));
    }

    pub fn every_command_status_of_the_seed_and_no_other() {
        let table = command_status_table();
        super::command_status_is_the_seed(&profile(), &table);
        let seed: BTreeSet<u32> = table.iter().map(|e| e.0).collect();
        assert_eq!(seed.len(), 42);
    }

    /// What only Telesign refuses (a sender not whitelisted there, no route or
    /// a blocked prefix there, number portability, our product, campaign and
    /// price settings there): the next upstream at once, for a refused submit
    /// and for a receipt alike.
    pub fn refusals_that_concern_telesign_only_have_scope_upstream() {
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

    pub fn refused_submits_normalise_by_class() {
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

    pub fn message_states_and_stat_spellings() {
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

    pub fn versions_and_binds() {
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

    pub fn limits() {
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

    pub fn timers() {
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

    pub fn tls_1_2_required_with_the_listed_ciphers() {
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

    pub fn addresses() {
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

    pub fn codings() {
        let coding = profile().coding;
        // "The default value is 0." (the seed's table of other values is missing).
        assert_eq!(coding.accepted, [0]);
    }

    pub fn long_messages_in_one_message_payload() {
        let long = profile().long_messages;
        // "Use message_payload to send messages longer than 255 octets"; "Let
        // Telesign split it".
        assert_eq!(long.method, LongMethod::Payload);
        // "submit_sm_resp ... only with the reference ID for the first part";
        // "the DLR ... refers to just the reference ID of the first part".
        assert_eq!(long.receipts_for, ReceiptsFor::First);
        assert_eq!(long.max_parts, None);
    }

    pub fn validity_absolute_or_relative() {
        let times = profile().times;
        // "Validity period can be defined using absolute time format or relative
        // time format."
        assert_eq!(times.validity, TimeForm::Both);
        assert_eq!(times.schedule, TimeForm::Both);
    }

    pub fn receipt_data_centre_in_submit_service_type() {
        let system_type = profile().system_type;
        // "include the system_type parameter in each submit_sm request to specify
        // the data center the response should be routed back to".
        assert_eq!(
            system_type.submit_service_type.as_deref(),
            Some("receipt_data_centre")
        );
        assert_eq!(system_type.flash, None);
    }

    pub fn message_id_is_32_hex_digits() {
        // "This is a 32-digit hex value ... randomly generated by Telesign."
        assert_eq!(profile().message_id.form, IdForm::Hex32);
    }

    pub fn receipts_text_and_tlvs_with_hex_err() {
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
}
