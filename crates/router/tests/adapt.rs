//! `adapt` against each vendor's seed: the expectations are the seeds' words
//! (quoted or translated beside each test), not the profiles' TOML. A last
//! block covers the rules every profile shares: errors, TLVs, times, parts
//! the client split itself, and inputs that must not panic.

use tern_codec::pdu::SubmitSm;
use tern_codec::text::Encoding;
use tern_codec::tlv::{tags, Sar};
use tern_codec::{
    Address, COctetString, CommandStatus, DataCoding, EsmClass, Npi, RegisteredDelivery,
    ShortMessage, TimeString, Tlv, Ton,
};
use tern_router::adapt::{adapt, adapt_over, is_flash, AdaptError, Adapted, ClientText, Link};
use tern_router::profile::{Carriage, LongMethod, SmppVersion, TimeForm};
use tern_router::Profile;

/// 2024-03-01 12:00:00 UTC.
const NOW: i64 = 1_709_294_400_000;

fn profile(name: &str) -> Profile {
    Profile::builtin(name)
        .expect("built-in profile")
        .unwrap_or_else(|e| panic!("{e}"))
}

fn address(ton: u8, npi: u8, addr: &str) -> Address<21> {
    Address::new(
        Ton(ton),
        Npi(npi),
        COctetString::try_from(addr).expect("test address fits"),
    )
}

/// A client submit: unknown TON/NPI (the client leaves them to Tern), a
/// receipt requested, the text in `data_coding` (in message_payload when
/// short_message cannot hold it).
fn submit(source: &str, destination: &str, data_coding: u8, text: &[u8]) -> SubmitSm {
    let mut sm = SubmitSm {
        source: address(0, 0, source),
        destination: address(0, 0, destination),
        registered_delivery: RegisteredDelivery::ALWAYS,
        data_coding: DataCoding(data_coding),
        ..SubmitSm::default()
    };
    match ShortMessage::new(text.to_vec()) {
        Ok(short_message) => sm.short_message = short_message,
        Err(_) => sm
            .tlvs
            .push(Tlv::message_payload(text.to_vec()).expect("test text fits")),
    }
    sm
}

fn gsm(text: &str) -> SubmitSm {
    submit("Tern", "33600000001", 0, text.as_bytes())
}

fn ucs2(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

fn latin1(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).expect("Latin-1 test text"))
        .collect()
}

fn run(sm: &SubmitSm, name: &str) -> Result<Adapted, AdaptError> {
    adapt(sm, &profile(name), &ClientText::default(), 0x1234, NOW)
}

fn ok(sm: &SubmitSm, name: &str) -> Adapted {
    run(sm, name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn one(sm: &SubmitSm, name: &str) -> SubmitSm {
    let adapted = ok(sm, name);
    assert_eq!(adapted.parts.len(), 1, "{name}: one submit_sm expected");
    adapted.parts.into_iter().next().expect("one part")
}

fn err(sm: &SubmitSm, name: &str) -> AdaptError {
    match run(sm, name) {
        Ok(adapted) => panic!("{name}: expected an error, got {adapted:?}"),
        Err(e) => e,
    }
}

fn ton_npi_addr(address: &Address<21>) -> (u8, u8, String) {
    (address.ton.0, address.npi.0, address.addr.to_string())
}

fn no_concat_tlvs(sm: &SubmitSm) {
    for tag in [
        tags::SAR_MSG_REF_NUM,
        tags::SAR_TOTAL_SEGMENTS,
        tags::SAR_SEGMENT_SEQNUM,
        tags::MESSAGE_PAYLOAD,
    ] {
        assert!(sm.tlvs.get(tag).is_none(), "tag 0x{tag:04X} in {sm:?}");
    }
}

// ---------------------------------------------------------------- OVHcloud
// seeds/002: "source_addr can be an international number, an alphanumeric
// number or a shortcode number: alphanumeric ... (e.g. ovh123)
// source_addr_ton = 5 source_addr_npi = 0; shortcode: those phone numbers
// contain between 3 and 8 numbers (e.g. 38069) source_addr_ton = 3
// source_addr_npi = 1; international: ... country identifier and usual number
// without the first 0 (e.g. 33601020304) source_addr_ton = 1
// source_addr_npi = 1. destination_addr must be an international number
// (e.g. 33600000001). dest_addr_ton = 1 dest_addr_npi = 1".

#[test]
fn ovh_sender_kinds_get_their_ton_npi() {
    let cases = [
        ("ovh123", (5, 0, "ovh123")),
        ("38069", (3, 1, "38069")),
        ("123", (3, 1, "123")),
        ("12345678", (3, 1, "12345678")),
        ("+33612345678", (1, 1, "33612345678")),
        ("33601020304", (1, 1, "33601020304")),
    ];
    for (source, (ton, npi, addr)) in cases {
        let sm = one(&submit(source, "33600000001", 0, b"hi"), "ovh");
        assert_eq!(
            ton_npi_addr(&sm.source),
            (ton, npi, addr.to_owned()),
            "{source}"
        );
    }
}

#[test]
fn ovh_refuses_senders_outside_its_kinds() {
    // Alphanumeric: "composed of letters and numbers"; shortcodes have at
    // least 3 numbers.
    for source in ["ovh 123", "ovh-123", "12"] {
        let e = err(&submit(source, "33600000001", 0, b"hi"), "ovh");
        assert_eq!(
            e.command_status(),
            CommandStatus::InvalidSourceAddress,
            "{source}"
        );
        assert!(
            e.try_next_upstream(),
            "{source}: another vendor may take it"
        );
    }
}

#[test]
fn ovh_destination_is_international_without_plus() {
    for destination in ["+33600000001", "0033600000001", "33600000001"] {
        let sm = one(&submit("ovh123", destination, 0, b"hi"), "ovh");
        assert_eq!(
            ton_npi_addr(&sm.destination),
            (1, 1, "33600000001".to_owned()),
            "{destination}"
        );
    }
}

#[test]
fn ovh_long_gsm_text_goes_as_udh_parts_one_char_per_octet() {
    // "GSM 03.38 ... one character per byte (unpacked) by default"; SAR TLVs
    // and message_payload: "Supported: No". So Tern splits with a UDH.
    let text: String = (0..200)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let adapted = ok(&gsm(&text), "ovh");
    assert_eq!(adapted.parts.len(), 2);
    assert_eq!(adapted.reference, Some(0x34));
    let mut rebuilt = Vec::new();
    for (index, part) in adapted.parts.iter().enumerate() {
        let octets = part.short_message.as_bytes();
        let sequence = u8::try_from(index + 1).expect("small");
        assert_eq!(octets[..6], [0x05, 0x00, 0x03, 0x34, 0x02, sequence]);
        assert!(part.esm_class.udhi());
        assert_eq!(part.data_coding, DataCoding(0));
        assert_eq!(part.registered_delivery, RegisteredDelivery::ALWAYS);
        assert_eq!(part.destination.ton, Ton(1));
        no_concat_tlvs(part);
        rebuilt.extend_from_slice(&octets[6..]);
    }
    // Unpacked: one octet per character, 153 in the first part.
    assert_eq!(adapted.parts[0].short_message.len(), 6 + 153);
    assert_eq!(rebuilt, text.as_bytes());
}

#[test]
fn ovh_long_text_from_a_payload_client_is_split_too() {
    let mut sm = gsm("");
    sm.tlvs
        .push(Tlv::message_payload(vec![b'x'; 300]).expect("fits"));
    let adapted = ok(&sm, "ovh");
    assert_eq!(adapted.parts.len(), 2);
    for part in &adapted.parts {
        no_concat_tlvs(part);
        assert!(part.esm_class.udhi());
    }
}

#[test]
fn ovh_client_sar_parts_become_udh_parts() {
    // No SAR at OVH: a part the client tied with SAR TLVs keeps its numbers
    // in a UDH.
    let mut sm = gsm("part two");
    sm.tlvs.set_sar(Sar {
        reference: 0x0102,
        total: 3,
        sequence: 2,
    });
    let adapted = ok(&sm, "ovh");
    let part = &adapted.parts[0];
    assert_eq!(
        part.short_message.as_bytes(),
        b"\x05\x00\x03\x02\x03\x02part two"
    );
    assert!(part.esm_class.udhi());
    no_concat_tlvs(part);
}

#[test]
fn ovh_non_gsm_text_goes_as_ucs2() {
    // OVH takes GSM 03.38 and UCS2 only.
    let sm = one(&submit("ovh123", "33600000001", 8, &ucs2("Привет")), "ovh");
    assert_eq!(sm.data_coding, DataCoding::UCS2);
    assert_eq!(sm.short_message.as_bytes(), ucs2("Привет"));
    // A Latin-1 client's "ó" is not GSM: UCS2 too (OVH does not replace).
    let sm = one(
        &submit("ovh123", "33600000001", 3, &latin1("camión")),
        "ovh",
    );
    assert_eq!(sm.data_coding, DataCoding::UCS2);
    assert_eq!(sm.short_message.as_bytes(), ucs2("camión"));
    // Plain text stays GSM even from a UCS2 client.
    let sm = one(&submit("ovh123", "33600000001", 8, &ucs2("hello")), "ovh");
    assert_eq!(sm.data_coding, DataCoding(0));
    assert_eq!(sm.short_message.as_bytes(), b"hello");
}

// ---------------------------------------------------------------- Telesign
// seeds/003: "Use short_message to send a short message of up to 255 octets
// ... Use message_payload to send messages longer than 255 octets; in this
// case, the sm_length field should be set to 0." "Let Telesign split it:
// Send one submit_sm command, with a message that exceeds the limit."
// "set the destination TON value (dest_addr_ton) ... to 1 ... and the
// destination NPI value (dest_addr_npi) to 1".

#[test]
fn telesign_long_text_is_one_submit_with_message_payload() {
    let text = "x".repeat(300);
    let mut sm = gsm("");
    sm.tlvs
        .push(Tlv::message_payload(text.clone().into_bytes()).expect("fits"));
    let adapted = ok(&sm, "telesign");
    assert_eq!(adapted.parts.len(), 1);
    assert_eq!(adapted.reference, None);
    let part = &adapted.parts[0];
    assert_eq!(part.short_message.len(), 0, "sm_length 0");
    assert_eq!(
        part.tlvs.message_payload().map(|p| p.to_vec()),
        Some(text.into_bytes())
    );
    assert!(!part.esm_class.udhi());
    assert_eq!(part.data_coding, DataCoding(0));
    assert_eq!(part.registered_delivery, RegisteredDelivery::ALWAYS);

    // Longer than one SMS but within short_message: still one payload.
    let adapted = ok(&gsm(&"y".repeat(200)), "telesign");
    assert_eq!(adapted.parts.len(), 1);
    assert_eq!(adapted.parts[0].short_message.len(), 0);
    assert_eq!(
        adapted.parts[0].tlvs.message_payload().map(|p| p.len()),
        Some(200)
    );
}

// SMPP 3.4 §5.3.2.25: a bind response without sc_interface_version means
// the SMSC takes no TLVs. Telesign's seed offers "Split it yourself ... make
// use of the User Data Header (UDH)" as the other way to send long text.

fn over(sm: &SubmitSm, name: &str, link: Link) -> Result<Adapted, AdaptError> {
    adapt_over(
        sm,
        &profile(name),
        link,
        &ClientText::default(),
        0x1234,
        NOW,
    )
}

/// The text of 8-bit-reference UDH parts, checking each part's numbers.
fn reassembled(adapted: &Adapted) -> Vec<u8> {
    let total = u8::try_from(adapted.parts.len()).expect("few parts");
    let mut text = Vec::new();
    for (index, part) in adapted.parts.iter().enumerate() {
        let octets = part.short_message.as_bytes();
        let sequence = u8::try_from(index + 1).expect("few parts");
        assert!(part.esm_class.udhi(), "part {sequence} has no UDHI");
        assert_eq!(octets[..3], [0x05, 0x00, 0x03], "part {sequence}");
        assert_eq!(octets[4..6], [total, sequence], "part {sequence}");
        assert!(octets.len() > 6, "part {sequence} is empty");
        no_concat_tlvs(part);
        assert!(part.tlvs.message_payload().is_none(), "part {sequence}");
        text.extend_from_slice(&octets[6..]);
    }
    text
}

#[test]
fn telesign_without_tlvs_splits_with_udh_and_loses_nothing() {
    let no_tlvs = Link {
        tlvs: false,
        flash: false,
    };
    let text: String = (0..400)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let adapted = over(&gsm(&text), "telesign", no_tlvs).expect("UDH parts");
    assert_eq!(adapted.parts.len(), 3);
    assert_eq!(reassembled(&adapted), text.as_bytes());
    // A client's payload too.
    let mut sm = gsm("");
    sm.tlvs
        .push(Tlv::message_payload(text.clone().into_bytes()).expect("fits"));
    let adapted = over(&sm, "telesign", no_tlvs).expect("UDH parts");
    assert_eq!(reassembled(&adapted), text.as_bytes());
    // Binary too, split by octets.
    let adapted = over(
        &submit("Tern", "33600000001", 0, &[7u8; 300]),
        "telesign",
        no_tlvs,
    )
    .expect("UDH parts");
    assert!(adapted.parts.len() > 1);
    assert_eq!(reassembled(&adapted), [7u8; 300]);
    // A profile that splits with SAR gets UDH parts too.
    let mut sar = profile("generic");
    sar.long_messages.method = LongMethod::Sar;
    let adapted = adapt_over(
        &gsm(&text),
        &sar,
        no_tlvs,
        &ClientText::default(),
        0x1234,
        NOW,
    )
    .expect("UDH parts");
    assert_eq!(reassembled(&adapted), text.as_bytes());
}

// Infobip: "In order to use Flash notifications ... setting system_type =
// “NSMS” in Bind PDU. Procedure for submitting Flash notifications is exactly
// the same as for normal SMS ... Long SMS feature is not supported for Flash
// notifications."

#[test]
fn flash_is_message_class_0() {
    for dc in [0x10, 0x14, 0x18, 0xF0, 0xF4] {
        assert!(is_flash(dc), "0x{dc:02X}");
    }
    for dc in [0x00, 0x03, 0x04, 0x08, 0x11, 0x19, 0xF1, 0xC0] {
        assert!(!is_flash(dc), "0x{dc:02X}");
    }
}

#[test]
fn infobip_flash_goes_over_nsms_sessions_only_as_a_normal_sms() {
    let flash = Link {
        tlvs: true,
        flash: true,
    };
    let normal = Link::default();
    let hello = submit("Tern", "33600000001", 0x10, b"Hello");
    let adapted = over(&hello, "infobip", flash).expect("flash over NSMS");
    assert_eq!(adapted.parts.len(), 1);
    assert_eq!(adapted.parts[0].data_coding, DataCoding(0));
    assert_eq!(adapted.parts[0].short_message.as_bytes(), b"Hello");
    let wide = submit("Tern", "33600000001", 0x18, &ucs2("Привет"));
    let adapted = over(&wide, "infobip", flash).expect("UCS-2 flash over NSMS");
    assert_eq!(adapted.parts[0].data_coding, DataCoding(8));
    assert!(matches!(
        over(&hello, "infobip", normal),
        Err(AdaptError::FlashNeedsSession { .. })
    ));
    assert!(matches!(
        over(&gsm("Hello"), "infobip", flash),
        Err(AdaptError::NotFlash { .. })
    ));
    let long = submit("Tern", "33600000001", 0x10, "x".repeat(200).as_bytes());
    let err = over(&long, "infobip", flash).expect_err("no long flash");
    assert_eq!(err, AdaptError::LongFlash { parts: 2 });
    assert!(err.try_next_upstream());
    assert_eq!(err.command_status(), CommandStatus::InvalidMessageLength);
    // Where the profile names no flash system_type, class 0 is a coding
    // like any other: sent as it is where accepted.
    let mut generic = profile("generic");
    generic.coding.accepted.push(0x10);
    let adapted = adapt_over(
        &hello,
        &generic,
        normal,
        &ClientText::default(),
        0x1234,
        NOW,
    )
    .expect("accepted");
    assert_eq!(adapted.parts[0].data_coding, DataCoding(0x10));
}

#[test]
fn telesign_short_text_stays_in_short_message() {
    let part = one(&gsm("Your code is 1234"), "telesign");
    assert_eq!(part.short_message.as_bytes(), b"Your code is 1234");
    assert!(part.tlvs.message_payload().is_none());
}

#[test]
fn telesign_destination_is_ton_1_npi_1() {
    let part = one(&submit("Tern", "+14155550100", 0, b"hi"), "telesign");
    assert_eq!(
        ton_npi_addr(&part.destination),
        (1, 1, "14155550100".to_owned())
    );
}

// ---------------------------------------------------------------- Mensatek
// seeds/000, anexo 1: "los acentos cerrados no están en el estándar
// (excepto el de la é) por lo que, si se incluyen, se cambiarán por el
// carácter más similar"; "el € ocupa dos caracteres"; "NO APLICABLE SI
// ENVÍA EN UNICODE". Sender: "Sólo números (un móvil o fijo en formato
// internacional, p.e. +34600000000) hasta 15 números" or "Sólo letras y
// números y carácter subrayado hasta 11 caracteres. P.e. MiRemitente".

#[test]
fn mensatek_replaces_acute_accents_but_keeps_e_acute() {
    // A Latin-1 client: Mensatek takes GSM7 (0/1) and Unicode (8).
    let sm = one(
        &submit("MiRemitente", "34600000000", 3, &latin1("camión café")),
        "mensatek",
    );
    assert_eq!(sm.data_coding, DataCoding(0));
    // GSM 03.38: é is 0x05; ó is not in the alphabet and becomes o.
    assert_eq!(sm.short_message.as_bytes(), b"camion caf\x05");
    let sm = one(
        &submit("MiRemitente", "34600000000", 3, &latin1("ÁRBOL árbol")),
        "mensatek",
    );
    assert_eq!(sm.short_message.as_bytes(), b"ARBOL arbol");
}

#[test]
fn mensatek_keeps_unicode_when_the_client_sends_unicode() {
    // "NO APLICABLE SI ENVÍA EN UNICODE": replacement is for GSM7 only.
    let sm = one(
        &submit("MiRemitente", "34600000000", 8, &ucs2("camión")),
        "mensatek",
    );
    assert_eq!(sm.data_coding, DataCoding::UCS2);
    assert_eq!(sm.short_message.as_bytes(), ucs2("camión"));
}

#[test]
fn mensatek_counts_the_euro_as_two_characters() {
    // 158 + € = 160 septets: one message, € as ESC 0x65.
    let mut octets = vec![b'a'; 158];
    octets.extend_from_slice(&[0x1B, 0x65]);
    let adapted = ok(
        &submit("MiRemitente", "34600000000", 0, &octets),
        "mensatek",
    );
    assert_eq!(adapted.parts.len(), 1);
    assert_eq!(adapted.parts[0].short_message.as_bytes(), octets);
    // 159 + € = 161 septets: two parts.
    let mut octets = vec![b'a'; 159];
    octets.extend_from_slice(&[0x1B, 0x65]);
    let adapted = ok(
        &submit("MiRemitente", "34600000000", 0, &octets),
        "mensatek",
    );
    assert_eq!(adapted.parts.len(), 2);
    // The same from a UCS2 client: € is GSM, so GSM it is, 2 septets.
    let text = format!("{}€", "a".repeat(158));
    let adapted = ok(
        &submit("MiRemitente", "34600000000", 8, &ucs2(&text)),
        "mensatek",
    );
    assert_eq!(adapted.parts.len(), 1);
    assert_eq!(adapted.parts[0].data_coding, DataCoding(0));
    assert_eq!(adapted.parts[0].short_message.len(), 160);
}

#[test]
fn mensatek_sender_rules() {
    for source in [
        "MiRemitente",
        "Mi_Remite",
        "+34600000000",
        "+346000000001234",
    ] {
        assert!(
            run(&submit(source, "34600000000", 0, b"hola"), "mensatek").is_ok(),
            "{source} is allowed"
        );
    }
    // 15 digits in international form go without the '+'.
    let sm = one(
        &submit("+346000000001234", "34600000000", 0, b"hola"),
        "mensatek",
    );
    assert_eq!(sm.source.addr.to_string(), "346000000001234");
    for source in [
        "MiRemitente1",
        "Mi-Remite",
        "Mi Remite",
        "+3460000000012345",
    ] {
        let e = err(&submit(source, "34600000000", 0, b"hola"), "mensatek");
        assert_eq!(
            e.command_status(),
            CommandStatus::InvalidSourceAddress,
            "{source}"
        );
    }
}

// ---------------------------------------------------------------- Infobip
// seeds/004: "Scheduled delivery is supported over SMPP protocol using the
// relative time format. Example: "070605040302100R""; "For Latin1
// (ISO-8859-1) please use DCS 3".

#[test]
fn infobip_schedule_becomes_relative() {
    // NOW is 2024-03-01 12:00:00 UTC; 2024-03-02 14:03:04 UTC is 1 day,
    // 2 hours, 3 minutes and 4 seconds later.
    for absolute in ["240302140304000+", "240302150304004+", "240302130304004-"] {
        let mut sm = gsm("later");
        sm.schedule_delivery_time = TimeString::try_from(absolute).expect("16 characters");
        let part = one(&sm, "infobip");
        assert_eq!(
            part.schedule_delivery_time.as_bytes(),
            b"000001020304000R",
            "{absolute}"
        );
    }
    // Already relative: unchanged.
    let mut sm = gsm("later");
    sm.schedule_delivery_time = TimeString::try_from("070605040302100R").expect("16");
    let part = one(&sm, "infobip");
    assert_eq!(part.schedule_delivery_time.as_bytes(), b"070605040302100R");
}

#[test]
fn infobip_takes_latin1() {
    let part = one(
        &submit("Tern", "421900000000", 3, &latin1("camión")),
        "infobip",
    );
    assert_eq!(part.data_coding, DataCoding::LATIN1);
    assert_eq!(part.short_message.as_bytes(), latin1("camión"));
}

// ---------------------------------------------------------------- seed001
// seeds/001: "Слишком большой текст сообщения. Максимальная длина не должна
// превышать 160" (0x401: the text must not exceed 160); the sender field
// takes "любую информацию (11 знаков) ... цифры, символы латинского
// алфавита, знаки препинания пробел".

#[test]
fn seed001_splits_above_160_bytes() {
    let adapted = ok(&gsm(&"a".repeat(160)), "seed001");
    assert_eq!(adapted.parts.len(), 1);
    assert_eq!(adapted.parts[0].short_message.len(), 160);
    assert!(!adapted.parts[0].esm_class.udhi());

    let adapted = ok(&gsm(&"a".repeat(161)), "seed001");
    assert_eq!(adapted.parts.len(), 2);
    for part in &adapted.parts {
        assert!(part.short_message.len() <= 160);
        assert!(part.esm_class.udhi());
    }
}

#[test]
fn seed001_sender_is_11_characters_or_an_international_number_of_15_digits() {
    // The 11 characters are an alphanumeric sender's; a number is E.164.
    for source in [
        "ABCDEFGHIJK",
        "SMS Info.",
        "79161234567",
        "+79161234567",
        "791612345678901",
    ] {
        assert!(
            run(&submit(source, "79160000000", 0, b"privet"), "seed001").is_ok(),
            "{source} is allowed"
        );
    }
    for source in ["ABCDEFGHIJKL", "7916123456789012"] {
        let e = err(&submit(source, "79160000000", 0, b"privet"), "seed001");
        assert_eq!(
            e.command_status(),
            CommandStatus::InvalidSourceAddress,
            "{source}"
        );
    }
}

// ---------------------------------------------------------------- all

#[test]
fn a_malformed_destination_is_wrong_for_every_upstream() {
    for destination in ["abc", "", "+", "+33 6 00 00 00 01", "1234567890123456"] {
        for name in [
            "ovh", "telesign", "mensatek", "infobip", "seed001", "generic",
        ] {
            let e = err(&submit("Tern", destination, 0, b"hi"), name);
            assert_eq!(
                e.command_status(),
                CommandStatus::InvalidDestinationAddress,
                "{destination:?} at {name}"
            );
            assert!(!e.try_next_upstream(), "{destination:?} at {name}");
        }
    }
}

#[test]
fn text_no_accepted_coding_carries_may_go_elsewhere() {
    // Telesign's profile accepts data_coding 0 only (its table of codings
    // is missing from the seed).
    let e = err(
        &submit("Tern", "14155550100", 8, &ucs2("Привет")),
        "telesign",
    );
    assert_eq!(e.command_status(), CommandStatus::InvalidDataCoding);
    assert!(e.try_next_upstream());
    assert!(
        matches!(
            e,
            AdaptError::NoCoding {
                missing: Some('П'),
                ..
            }
        ),
        "{e:?}"
    );
    // An emoji has no similar character in GSM: Mensatek's "replace" does
    // not turn it into '?', it goes as UCS2.
    let part = one(
        &submit("Tern", "34600000000", 8, &ucs2("ok 😀")),
        "mensatek",
    );
    assert_eq!(part.data_coding, DataCoding::UCS2);
}

#[test]
fn binary_passes_through_only_where_accepted() {
    let data = [0x00, 0xFF, 0x10, 0x80];
    let e = err(&submit("Tern", "33600000001", 4, &data), "ovh");
    assert_eq!(e.command_status(), CommandStatus::InvalidDataCoding);
    assert!(e.try_next_upstream());

    let mut binary = profile("generic");
    binary.coding.accepted.push(4);
    let sm = submit("Tern", "33600000001", 4, &data);
    let part = adapt(&sm, &binary, &ClientText::default(), 7, NOW).expect("accepted");
    assert_eq!(part.parts[0].short_message.as_bytes(), data);
    assert_eq!(part.parts[0].data_coding, DataCoding(4));

    // 200 octets of binary: two UDH parts, split by octets.
    let big: Vec<u8> = (0..200u8).collect();
    let adapted = adapt(
        &submit("Tern", "33600000001", 4, &big),
        &binary,
        &ClientText::default(),
        7,
        NOW,
    )
    .expect("split");
    assert_eq!(adapted.parts.len(), 2);
    let mut rebuilt = Vec::new();
    for part in &adapted.parts {
        assert_eq!(part.short_message.as_bytes()[..4], [0x05, 0x00, 0x03, 7]);
        rebuilt.extend_from_slice(&part.short_message.as_bytes()[6..]);
    }
    assert_eq!(rebuilt, big);
}

#[test]
fn client_udh_parts_are_sent_as_they_are() {
    let mut octets = vec![0x05, 0x00, 0x03, 0x42, 0x02, 0x01];
    octets.extend_from_slice(b"first half");
    let mut sm = submit("ovh123", "+33600000001", 0, &octets);
    sm.esm_class = EsmClass::UDHI;
    let adapted = ok(&sm, "ovh");
    assert_eq!(adapted.reference, Some(0x42));
    let part = &adapted.parts[0];
    assert_eq!(part.short_message.as_bytes(), octets);
    assert!(part.esm_class.udhi());
    assert_eq!(
        ton_npi_addr(&part.destination),
        (1, 1, "33600000001".into())
    );

    // A UDH longer than the data is the client's fault.
    let mut bad = submit("ovh123", "33600000001", 0, &[0x09, 0x00]);
    bad.esm_class = EsmClass::UDHI;
    let e = err(&bad, "ovh");
    assert!(!e.try_next_upstream());
    assert_eq!(e.command_status(), CommandStatus::InvalidEsmClass);

    // Packed GSM at the upstream means other octets: refused, not mangled.
    let mut packed = profile("ovh");
    packed.coding.gsm7_carriage = Carriage::Packed;
    let e = adapt(&sm, &packed, &ClientText::default(), 1, NOW).expect_err("packed");
    assert_eq!(e.command_status(), CommandStatus::InvalidDataCoding);
    assert!(e.try_next_upstream());
}

#[test]
fn client_sar_parts_keep_their_numbers() {
    let numbers = Sar {
        reference: 0x0BCD,
        total: 2,
        sequence: 1,
    };
    // Where the upstream takes SAR: the same TLVs, the text re-coded.
    let mut sar = profile("generic");
    sar.long_messages.method = LongMethod::Sar;
    let mut sm = submit("Tern", "33600000001", 8, &ucs2("half"));
    sm.tlvs.set_sar(numbers);
    let adapted = adapt(&sm, &sar, &ClientText::default(), 1, NOW).expect("sar");
    assert_eq!(adapted.reference, Some(0x0BCD));
    assert_eq!(adapted.parts[0].tlvs.sar(), Some(numbers));
    assert_eq!(adapted.parts[0].short_message.as_bytes(), b"half");
    assert!(!adapted.parts[0].esm_class.udhi());

    // Binary parts too, in a UDH where the upstream takes no SAR.
    let mut binary = profile("generic");
    binary.coding.accepted.push(4);
    let mut sm = submit("Tern", "33600000001", 4, &[1, 2, 3]);
    sm.tlvs.set_sar(numbers);
    let adapted = adapt(&sm, &binary, &ClientText::default(), 1, NOW).expect("udh");
    assert_eq!(
        adapted.parts[0].short_message.as_bytes(),
        [0x05, 0x00, 0x03, 0xCD, 0x02, 0x01, 1, 2, 3]
    );
    assert!(adapted.parts[0].tlvs.sar().is_none());

    // Impossible numbers are the client's fault.
    let mut sm = gsm("x");
    sm.tlvs.set_sar(Sar {
        reference: 1,
        total: 2,
        sequence: 3,
    });
    let e = err(&sm, "ovh");
    assert_eq!(e.command_status(), CommandStatus::InvalidTlvValue);
    assert!(!e.try_next_upstream());
}

#[test]
fn tlvs_are_dropped_for_33_and_kept_otherwise() {
    let mut sm = gsm("hi");
    sm.tlvs.push(Tlv::UserMessageReference(9));
    let part = one(&sm, "infobip");
    assert_eq!(part.tlvs.user_message_reference(), Some(&9));

    let mut v33 = profile("generic");
    v33.versions = vec![SmppVersion::V33];
    let adapted = adapt(&sm, &v33, &ClientText::default(), 1, NOW).expect("3.3");
    assert!(adapted.parts[0].tlvs.is_empty());
}

#[test]
fn sar_udh16_and_max_parts() {
    let text = "b".repeat(400);
    let mut sar = profile("generic");
    sar.long_messages.method = LongMethod::Sar;
    let adapted = adapt(&gsm(&text), &sar, &ClientText::default(), 0x1234, NOW).expect("sar");
    assert_eq!(adapted.reference, Some(0x1234));
    assert_eq!(adapted.parts.len(), 3);
    for (index, part) in adapted.parts.iter().enumerate() {
        assert!(!part.esm_class.udhi());
        assert_eq!(
            part.tlvs.sar(),
            Some(Sar {
                reference: 0x1234,
                total: 3,
                sequence: u8::try_from(index + 1).expect("small"),
            })
        );
    }

    let mut udh16 = profile("generic");
    udh16.long_messages.method = LongMethod::Udh16;
    let adapted = adapt(&gsm(&text), &udh16, &ClientText::default(), 0x1234, NOW).expect("udh16");
    assert_eq!(
        adapted.parts[0].short_message.as_bytes()[..7],
        [0x06, 0x08, 0x04, 0x12, 0x34, 0x03, 0x01]
    );

    let mut two = profile("generic");
    two.long_messages.max_parts = Some(2);
    let e = adapt(&gsm(&text), &two, &ClientText::default(), 1, NOW).expect_err("3 > 2");
    assert_eq!(e, AdaptError::TooManyParts { parts: 3, max: 2 });
    assert_eq!(e.command_status(), CommandStatus::InvalidMessageLength);
    assert!(e.try_next_upstream());

    let mut none = profile("generic");
    none.long_messages.method = LongMethod::None;
    let e = adapt(&gsm(&text), &none, &ClientText::default(), 1, NOW).expect_err("none");
    assert_eq!(e.command_status(), CommandStatus::InvalidMessageLength);

    let mut small = profile("telesign");
    small.limits.message_payload_max = Some(100);
    let e = adapt(
        &gsm(&"c".repeat(200)),
        &small,
        &ClientText::default(),
        1,
        NOW,
    )
    .expect_err("payload too long");
    assert_eq!(e.command_status(), CommandStatus::InvalidMessageLength);
}

#[test]
fn times_convert_or_are_refused() {
    // Unparseable: wrong for everyone.
    let mut sm = gsm("x");
    sm.schedule_delivery_time = TimeString::try_from("240230120000000+").expect("16");
    let e = err(&sm, "ovh");
    assert_eq!(e.command_status(), CommandStatus::InvalidScheduleTime);
    assert!(!e.try_next_upstream());
    let mut sm = gsm("x");
    sm.validity_period = TimeString::try_from("00000100000000XR").expect("16");
    let e = err(&sm, "ovh");
    assert_eq!(e.command_status(), CommandStatus::InvalidExpiry);

    // Relative to absolute (UTC) where the upstream wants absolute.
    let mut absolute = profile("generic");
    absolute.times.validity = TimeForm::Absolute;
    let mut sm = gsm("x");
    sm.validity_period = TimeString::try_from("000002000000000R").expect("16");
    let adapted = adapt(&sm, &absolute, &ClientText::default(), 1, NOW).expect("absolute");
    assert_eq!(
        adapted.parts[0].validity_period.as_bytes(),
        b"240303120000000+"
    );

    // A validity already past cannot be made relative; a schedule already
    // past means "now".
    let mut relative = profile("generic");
    relative.times.validity = TimeForm::Relative;
    relative.times.schedule = TimeForm::Relative;
    let mut sm = gsm("x");
    sm.validity_period = TimeString::try_from("240229120000000+").expect("16");
    let e = adapt(&sm, &relative, &ClientText::default(), 1, NOW).expect_err("past");
    assert_eq!(e.command_status(), CommandStatus::InvalidExpiry);
    let mut sm = gsm("x");
    sm.schedule_delivery_time = TimeString::try_from("240229120000000+").expect("16");
    let adapted = adapt(&sm, &relative, &ClientText::default(), 1, NOW).expect("now");
    assert!(adapted.parts[0].schedule_delivery_time.is_empty());
}

#[test]
fn a_client_whose_default_alphabet_is_latin1() {
    let client = ClientText {
        default_alphabet: Encoding::Latin1,
    };
    let sm = submit("MiRemitente", "34600000000", 0, &latin1("camión"));
    let adapted = adapt(&sm, &profile("mensatek"), &client, 1, NOW).expect("replaced");
    assert_eq!(adapted.parts[0].short_message.as_bytes(), b"camion");
    // The same octets read as GSM are not GSM (0xF3 > 0x7F): wrong for all.
    let e = run(&sm, "mensatek").expect_err("not GSM");
    assert_eq!(e.command_status(), CommandStatus::InvalidDataCoding);
    assert!(!e.try_next_upstream());
}

#[test]
fn no_input_panics() {
    let names = [
        "ovh", "telesign", "mensatek", "infobip", "seed001", "generic",
    ];
    let profiles: Vec<Profile> = names.iter().map(|n| profile(n)).collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let alphabet = b"0+aZ_ 9\xC3\xFF\x1B";
    for round in 0..3000 {
        let len = (next() % 260) as usize;
        let data: Vec<u8> = (0..len.min(254)).map(|_| next() as u8).collect();
        // Raw octets, not always UTF-8, at most 20 (the field's limit).
        let addr = |next: &mut dyn FnMut() -> u64| -> Address<21> {
            let n = (next() % 21) as usize;
            let octets: Vec<u8> = (0..n).map(|_| alphabet[(next() % 10) as usize]).collect();
            Address::new(
                Ton((next() % 7) as u8),
                Npi(1),
                COctetString::new(octets).expect("20 octets, no NUL"),
            )
        };
        let mut sm = submit("", "", (next() % 10) as u8, &data);
        sm.source = addr(&mut next);
        sm.destination = addr(&mut next);
        sm.esm_class = EsmClass((next() % 2) as u8 * 0x40);
        if round % 7 == 0 {
            sm.tlvs.set_sar(Sar {
                reference: next() as u16,
                total: next() as u8,
                sequence: next() as u8,
            });
        }
        if round % 5 == 0 {
            sm.short_message = ShortMessage::default();
            sm.tlvs
                .push(Tlv::message_payload(vec![b'q'; (next() % 2000) as usize]).expect("fits"));
        }
        for profile in &profiles {
            let _ = adapt(&sm, profile, &ClientText::default(), next() as u16, NOW);
            let _ = adapt(
                &sm,
                profile,
                &ClientText {
                    default_alphabet: Encoding::Gsm7Packed,
                },
                1,
                i64::MIN,
            );
        }
    }
}

/// The callback URL an HTTP API submit keeps in Tern's own TLV stays in
/// Tern: no upstream is sent it, whatever TLVs the upstream takes.
#[test]
fn the_tern_callback_tlv_never_goes_upstream() {
    let mut sm = gsm("hello");
    sm.tlvs.push(tern_codec::Tlv::Other {
        tag: tern_router::adapt::TERN_CALLBACK_TAG,
        value: bytes::Bytes::from_static(b"http://hooks.example/receipts"),
    });
    for name in ["generic", "infobip", "ovh", "telesign"] {
        let sent = one(&sm, name);
        assert!(
            sent.tlvs
                .get(tern_router::adapt::TERN_CALLBACK_TAG)
                .is_none(),
            "{name} was sent the callback: {sent:?}"
        );
    }
}
