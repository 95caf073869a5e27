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

#[test]
fn every_seed_receipt_error_is_mapped_as_the_seed_means_it() {
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

#[test]
fn the_profile_lists_exactly_the_seed_receipt_errors() {
    let profile = profile();
    let seed: BTreeSet<u32> = RECEIPT_ERRORS.iter().map(|e| e.0).collect();
    assert_eq!(seed.len(), RECEIPT_ERRORS.len(), "table has duplicates");
    assert_eq!(seed.len(), 48);
    let listed: BTreeSet<u32> = profile.receipt_error.iter().map(|e| e.code).collect();
    assert_eq!(listed, seed);
}

#[test]
fn the_seed_gives_no_command_status_table() {
    assert!(profile().command_status.is_empty());
}

#[test]
fn versions_bind_and_sessions() {
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

#[test]
fn senders() {
    let addresses = profile().addresses;
    let alpha = addresses.alphanumeric.expect("alphanumeric sender rule");
    assert_eq!(alpha.max_len, Some(11));
    assert_eq!(alpha.extra_chars, "_");
    let international = addresses.international.expect("international sender rule");
    assert_eq!(international.max_len, Some(15));
    assert!(!international.plus, "digits only");
}

#[test]
fn codings() {
    let coding = profile().coding;
    let accepted: BTreeSet<u8> = coding.accepted.iter().copied().collect();
    assert_eq!(accepted, BTreeSet::from([0, 1, 8]));
    assert_eq!(coding.default_alphabet, Alphabet::Gsm7);
    // Accents outside GSM 03.38 are replaced by the most similar character.
    assert_eq!(coding.unrepresentable, OnUnrepresentable::Replace);
}

#[test]
fn no_tls_nor_timers_in_the_seed() {
    let profile = profile();
    assert!(!profile.tls.required);
    assert_eq!(profile.tls.minimum, None);
    assert_eq!(profile.timers.enquire_link_secs, None);
    assert_eq!(profile.timers.response_timeout_secs, None);
    assert_eq!(profile.system_type.flash, None);
}

#[test]
fn receipt_format() {
    let receipts = profile().receipts;
    // id: sub: dlvr: submit date: done date: stat: err:, err in decimal (000).
    assert_eq!(receipts.err_radix, Radix::Decimal);
    assert!(receipts.text);
}

#[test]
fn stat_spellings() {
    let profile = profile();
    for (stat, state) in [
        ("DELIVRD", FinalState::Delivrd),
        ("EXPIRED", FinalState::Expired),
        ("UNDELIV", FinalState::Undeliv),
        ("ACCEPTD", FinalState::Acceptd),
        ("UNKNOWN", FinalState::Unknown),
        ("ENROUTE", FinalState::Enroute),
        ("REJECTD", FinalState::Rejectd),
    ] {
        assert_eq!(profile.stat(stat), Some(state), "{stat}");
    }
}
