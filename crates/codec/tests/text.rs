//! Spec vectors and properties of `tern_codec::text`: GSM 03.38 tables and
//! packing (3GPP TS 23.038), UDH concatenation (TS 23.040 §9.2.3.24), the
//! segment limits, Mensatek's replacement rules, and round trips.

use proptest::prelude::*;
use tern_codec::text::{
    cheapest_encoding, decode, decode_packed, encode, encode_counting, encode_packed, reassemble,
    reassemble_payloads, segments, segments_with, split, unit_count, Concat, Encoding, Part,
    ReceivedPart, SarInfo, TextError, Udh, Unrepresentable,
};

/// The 23.038 basic table in septet order, written out from the spec;
/// ESC (0x1B) is left out since it is not a character.
const BASIC_TABLE: &str = concat!(
    "@£$¥èéùìòÇ\nØø\rÅå",
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ",
    " !\"#¤%&'()*+,-./",
    "0123456789:;<=>?",
    "¡ABCDEFGHIJKLMNO",
    "PQRSTUVWXYZÄÖÑÜ§",
    "¿abcdefghijklmno",
    "pqrstuvwxyzäöñüà",
);

/// The extension table from 23.038: (code after ESC, character).
const EXTENSION_TABLE: [(u8, char); 10] = [
    (0x0A, '\u{0C}'),
    (0x14, '^'),
    (0x28, '{'),
    (0x29, '}'),
    (0x2F, '\\'),
    (0x3C, '['),
    (0x3D, '~'),
    (0x3E, ']'),
    (0x40, '|'),
    (0x65, '€'),
];

const STRICT: Unrepresentable = Unrepresentable::Error;

fn gsm_septets_of_table() -> Vec<u8> {
    (0u8..128).filter(|&s| s != 0x1B).collect()
}

fn received(part: &Part) -> (bytes::Bytes, bool, Option<SarInfo>) {
    (part.short_message(), part.udhi(), part.sar)
}

fn reassemble_parts(parts: &[Part], encoding: Encoding) -> Result<String, TextError> {
    let owned: Vec<_> = parts.iter().map(received).collect();
    let borrowed: Vec<_> = owned
        .iter()
        .map(|(sm, udhi, sar)| ReceivedPart {
            short_message: sm,
            udhi: *udhi,
            sar: *sar,
        })
        .collect();
    reassemble(&borrowed, encoding)
}

// ---- GSM 03.38 tables -------------------------------------------------

#[test]
fn basic_table_decodes_and_encodes_septet_for_septet() {
    let septets = gsm_septets_of_table();
    assert_eq!(BASIC_TABLE.chars().count(), 127);
    assert_eq!(
        decode(&septets, Encoding::Gsm7Unpacked).as_deref(),
        Ok(BASIC_TABLE)
    );
    assert_eq!(
        encode(BASIC_TABLE, Encoding::Gsm7Unpacked, STRICT).as_deref(),
        Ok(&septets[..])
    );
}

#[test]
fn every_extension_character_is_esc_plus_code() {
    for (code, ch) in EXTENSION_TABLE {
        let text = ch.to_string();
        assert_eq!(
            encode(&text, Encoding::Gsm7Unpacked, STRICT).as_deref(),
            Ok(&[0x1B, code][..]),
            "{ch:?}"
        );
        assert_eq!(
            decode(&[0x1B, code], Encoding::Gsm7Unpacked).as_deref(),
            Ok(text.as_str())
        );
        assert_eq!(unit_count(&text, Encoding::Gsm7Packed, STRICT), Ok(2));
    }
}

#[test]
fn euro_costs_two_septets() {
    assert_eq!(unit_count("5€", Encoding::Gsm7Unpacked, STRICT), Ok(3));
    // 80 euro signs are exactly 160 septets: one message; one more needs two.
    let euros = "€".repeat(80);
    assert_eq!(
        segments(&euros, Encoding::Gsm7Unpacked, Concat::Udh8),
        Ok(1)
    );
    let euros = format!("{euros}a");
    assert_eq!(
        segments(&euros, Encoding::Gsm7Unpacked, Concat::Udh8),
        Ok(2)
    );
}

#[test]
fn characters_outside_gsm_are_rejected_with_their_position() {
    assert_eq!(
        encode("hola á", Encoding::Gsm7Packed, STRICT),
        Err(TextError::Unrepresentable {
            ch: 'á',
            position: 5,
            encoding: Encoding::Gsm7Packed
        })
    );
    assert!(encode("`", Encoding::Gsm7Unpacked, STRICT).is_err());
}

// ---- Packing ----------------------------------------------------------

#[test]
fn packed_vectors() {
    assert_eq!(
        encode("hello", Encoding::Gsm7Packed, STRICT).as_deref(),
        Ok(&[0xE8, 0x32, 0x9B, 0xFD, 0x06][..])
    );
    assert_eq!(
        encode("hellohello", Encoding::Gsm7Packed, STRICT).as_deref(),
        Ok(&[0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37][..])
    );
    assert_eq!(
        decode(
            &[0xE8, 0x32, 0x9B, 0xFD, 0x46, 0x97, 0xD9, 0xEC, 0x37],
            Encoding::Gsm7Packed
        )
        .as_deref(),
        Ok("hellohello")
    );
}

#[test]
fn seven_spare_bits_are_cr_padding_not_at_signs() {
    // 7 septets leave 7 spare bits in the 7th octet: CR (0x0D << 1 = 0x1A).
    let packed = [0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x1A];
    assert_eq!(
        encode("1234567", Encoding::Gsm7Packed, STRICT).as_deref(),
        Ok(&packed[..])
    );
    assert_eq!(
        decode(&packed, Encoding::Gsm7Packed).as_deref(),
        Ok("1234567")
    );
    // A sender that pads with zero bits: no '@' is invented.
    let zero_padded = [0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x00];
    assert_eq!(
        decode(&zero_padded, Encoding::Gsm7Packed).as_deref(),
        Ok("1234567")
    );
    // Given the septet count, decoding is exact.
    assert_eq!(
        decode_packed(&zero_padded, 0, Some(8)).as_deref(),
        Ok("1234567@")
    );
    assert_eq!(
        decode_packed(&zero_padded, 0, Some(7)).as_deref(),
        Ok("1234567")
    );
}

#[test]
fn packed_text_after_a_udh_starts_after_fill_bits() {
    let parts = split(
        &"hello".repeat(33),
        Encoding::Gsm7Packed,
        Concat::Udh8,
        0x42,
        STRICT,
    )
    .expect("ASCII text splits");
    assert_eq!(parts.len(), 2);
    let second = parts[1].short_message();
    // 165 septets: part 1 holds 153, part 2 the last 12 = "lohellohello".
    assert_eq!(&second[..6], &[0x05, 0x00, 0x03, 0x42, 0x02, 0x02]);
    assert_eq!(
        decode_packed(&second[6..], 1, Some(12)).as_deref(),
        Ok("lohellohello")
    );
    // "hello" after a 6-octet UDH, worked by hand: one fill bit, then
    // 'h' (0x68) << 1 = 0xD0, 'e' = 0x65, ...
    assert_eq!(
        encode_packed("hello", 1, STRICT).as_deref(),
        Ok(&[0xD0, 0x65, 0x36, 0xFB, 0x0D][..])
    );
    // A 7-octet UDH (16-bit reference) needs no fill bits.
    assert_eq!(tern_codec::text::fill_bits_for_udh(7), 0);
    let parts = split(
        &"hello".repeat(33),
        Encoding::Gsm7Packed,
        Concat::Udh16,
        0x4243,
        STRICT,
    )
    .expect("ASCII text splits");
    let second = parts[1].short_message();
    assert_eq!(&second[..7], &[0x06, 0x08, 0x04, 0x42, 0x43, 0x02, 0x02]);
    // Part 1 holds 152 septets, so part 2 starts with "llohello...".
    assert_eq!(
        decode_packed(&second[7..], 0, Some(13)).as_deref(),
        Ok("llohellohello")
    );
}

// ---- Latin-1 and IA5 --------------------------------------------------

#[test]
fn latin1_and_ia5_reject_what_they_lack() {
    assert_eq!(
        encode("5 €", Encoding::Latin1, STRICT),
        Err(TextError::Unrepresentable {
            ch: '€',
            position: 2,
            encoding: Encoding::Latin1
        })
    );
    assert_eq!(
        encode("año", Encoding::Ia5, STRICT),
        Err(TextError::Unrepresentable {
            ch: 'ñ',
            position: 1,
            encoding: Encoding::Ia5
        })
    );
    assert_eq!(
        encode("año", Encoding::Latin1, STRICT).as_deref(),
        Ok(&[b'a', 0xF1, b'o'][..])
    );
    assert!(decode(&[b'a', 0xF1], Encoding::Ia5).is_err());
    assert_eq!(decode(&[b'a', 0xF1], Encoding::Latin1).as_deref(), Ok("añ"));
}

// ---- Mensatek's replacement rules (seed 000, annex 1) ------------------

fn gsm_replace(text: &str) -> String {
    let octets = encode(text, Encoding::Gsm7Unpacked, Unrepresentable::Replace)
        .expect("Replace never fails");
    decode(&octets, Encoding::Gsm7Unpacked).expect("own output decodes")
}

#[test]
fn closed_accents_become_the_plain_letter_except_e_acute() {
    // Words from the seed itself.
    assert_eq!(
        gsm_replace("Sólo letras y números"),
        "Solo letras y numeros"
    );
    assert_eq!(
        gsm_replace("NO APLICABLE SI ENVÍA EN UNICODE"),
        "NO APLICABLE SI ENVIA EN UNICODE"
    );
    assert_eq!(
        gsm_replace("CONFIGURACIÓN DE LA CONEXIÓN"),
        "CONFIGURACION DE LA CONEXION"
    );
    assert_eq!(
        gsm_replace("el carácter más similar"),
        "el caracter mas similar"
    );
    assert_eq!(
        gsm_replace("operadora/país destino"),
        "operadora/pais destino"
    );
    // é is in GSM 03.38 and is kept, as the seed says.
    assert_eq!(gsm_replace("teléfono"), "teléfono");
    assert_eq!(gsm_replace("créditos devueltos"), "créditos devueltos");
    // Other Latin letters.
    assert_eq!(gsm_replace("Úrsula Ínigo ÁLVARO"), "Ursula Inigo ALVARO");
    assert_eq!(gsm_replace("garçon être château"), "garÇon etre chateau");
    // What GSM has is untouched: ñ, ü, ¿, ¡, à, è, Ç.
    assert_eq!(
        gsm_replace("¿Año pingüino? ¡Sí! à è Ç"),
        "¿Año pingüino? ¡Si! à è Ç"
    );
    // No sensible replacement: '?'.
    assert_eq!(gsm_replace("日本 😀"), "?? ?");
}

#[test]
fn euro_is_kept_and_costs_two_in_replace_mode() {
    // "el € ocupa dos caracteres"
    let text = "el € ocupa dos caracteres";
    assert_eq!(gsm_replace(text), text);
    assert_eq!(
        unit_count(text, Encoding::Gsm7Unpacked, Unrepresentable::Replace),
        Ok(text.chars().count() + 1)
    );
}

#[test]
fn replace_mode_counts_the_replaced_text() {
    assert_eq!(
        segments("canción", Encoding::Gsm7Unpacked, Concat::Udh8),
        Err(TextError::Unrepresentable {
            ch: 'ó',
            position: 5,
            encoding: Encoding::Gsm7Unpacked
        })
    );
    let text = "ó".repeat(160);
    assert_eq!(
        segments_with(
            &text,
            Encoding::Gsm7Unpacked,
            Concat::Udh8,
            Unrepresentable::Replace
        ),
        Ok(1)
    );
    assert_eq!(
        unit_count("€", Encoding::Latin1, Unrepresentable::Replace),
        Ok(3)
    );
}

// ---- Segment limits ---------------------------------------------------

#[test]
fn gsm_segment_boundaries() {
    let count = |n: usize, concat| segments(&"a".repeat(n), Encoding::Gsm7Unpacked, concat);
    assert_eq!(count(160, Concat::Udh8), Ok(1));
    assert_eq!(count(161, Concat::Udh8), Ok(2));
    assert_eq!(count(153 * 2, Concat::Udh8), Ok(2));
    assert_eq!(count(153 * 2 + 1, Concat::Udh8), Ok(3));
    assert_eq!(count(152 * 2, Concat::Udh16), Ok(2));
    assert_eq!(count(152 * 2 + 1, Concat::Udh16), Ok(3));
    assert_eq!(count(152 * 2 + 1, Concat::Sar), Ok(3));
    assert_eq!(count(0, Concat::Udh8), Ok(1));
}

#[test]
fn ucs2_and_latin1_segment_boundaries() {
    let ucs2 = |text: String| segments(&text, Encoding::Ucs2, Concat::Udh8);
    assert_eq!(ucs2("ж".repeat(70)), Ok(1));
    assert_eq!(ucs2("ж".repeat(71)), Ok(2));
    assert_eq!(ucs2("ж".repeat(67 * 2)), Ok(2));
    assert_eq!(ucs2("ж".repeat(67 * 2 + 1)), Ok(3));
    // An emoji is a surrogate pair: two units.
    assert_eq!(ucs2("😀".repeat(35)), Ok(1));
    assert_eq!(ucs2("😀".repeat(36)), Ok(2));
    let latin1 = |n: usize| segments(&"é".repeat(n), Encoding::Latin1, Concat::Udh8);
    assert_eq!(latin1(140), Ok(1));
    assert_eq!(latin1(141), Ok(2));
    assert_eq!(latin1(134 * 2 + 1), Ok(3));
}

#[test]
fn an_escape_sequence_is_never_cut() {
    // 152 'a' + '€' + 152 'a' is 306 septets, which would fit 2 × 153,
    // but the € cannot straddle parts.
    let text = format!("{}€{}", "a".repeat(152), "a".repeat(152));
    assert_eq!(unit_count(&text, Encoding::Gsm7Unpacked, STRICT), Ok(306));
    assert_eq!(segments(&text, Encoding::Gsm7Unpacked, Concat::Udh8), Ok(3));
    let parts =
        split(&text, Encoding::Gsm7Unpacked, Concat::Udh8, 9, STRICT).expect("GSM text splits");
    assert_eq!(parts[0].payload.len(), 152);
    assert_eq!(&parts[1].payload[..2], &[0x1B, 0x65]);
    assert_eq!(parts[0].payload.last(), Some(&b'a'));
}

#[test]
fn a_surrogate_pair_is_never_cut() {
    let text = format!("{}😀{}", "a".repeat(66), "b".repeat(10));
    let parts = split(&text, Encoding::Ucs2, Concat::Udh8, 9, STRICT).expect("any text is UCS-2");
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0].payload.len(), 132);
    assert_eq!(&parts[1].payload[..4], &[0xD8, 0x3D, 0xDE, 0x00]);
}

// ---- Splitting --------------------------------------------------------

#[test]
fn concatenation_headers_on_the_wire() {
    let text = "x".repeat(200);
    let parts = split(&text, Encoding::Gsm7Unpacked, Concat::Udh8, 0x1234, STRICT)
        .expect("GSM text splits");
    assert_eq!(parts.len(), 2);
    // 8-bit reference: only the low octet of 0x1234 is used.
    assert_eq!(
        parts[0].udh.as_deref(),
        Some(&[0x05, 0x00, 0x03, 0x34, 0x02, 0x01][..])
    );
    assert_eq!(
        parts[1].udh.as_deref(),
        Some(&[0x05, 0x00, 0x03, 0x34, 0x02, 0x02][..])
    );
    assert!(parts.iter().all(Part::udhi));
    assert_eq!(parts[0].short_message().len(), 6 + 153);
    assert_eq!(&parts[1].short_message()[6..], "x".repeat(47).as_bytes());

    let parts = split(&text, Encoding::Gsm7Unpacked, Concat::Udh16, 0x1234, STRICT)
        .expect("GSM text splits");
    assert_eq!(
        parts[1].udh.as_deref(),
        Some(&[0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02][..])
    );
    assert_eq!(parts[0].payload.len(), 152);
}

#[test]
fn sar_parts_carry_no_udh() {
    let parts = split(
        &"y".repeat(200),
        Encoding::Latin1,
        Concat::Sar,
        0xBEEF,
        STRICT,
    )
    .expect("ASCII is Latin-1");
    assert_eq!(parts.len(), 2);
    assert!(parts.iter().all(|p| p.udh.is_none() && !p.udhi()));
    assert_eq!(
        parts[1].sar,
        Some(SarInfo {
            reference: 0xBEEF,
            total: 2,
            sequence: 2
        })
    );
    assert_eq!(parts[0].payload.len(), 133);
    assert_eq!(parts[1].short_message(), parts[1].payload);
}

#[test]
fn a_single_part_has_no_header() {
    for concat in [Concat::Udh8, Concat::Udh16, Concat::Sar] {
        let parts = split(&"z".repeat(160), Encoding::Gsm7Packed, concat, 1, STRICT)
            .expect("GSM text splits");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].udh, None);
        assert_eq!(parts[0].sar, None);
        assert!(!parts[0].udhi());
        assert_eq!(parts[0].payload.len(), 140);
    }
}

#[test]
fn more_than_255_parts_is_an_error() {
    let text = "q".repeat(153 * 255 + 1);
    assert_eq!(
        split(&text, Encoding::Gsm7Unpacked, Concat::Udh8, 1, STRICT),
        Err(TextError::TooManyParts { parts: 256 })
    );
}

// ---- UDH and reassembly -----------------------------------------------

#[test]
fn udh_parse_and_encode() {
    let sm = [0x05, 0x00, 0x03, 0x7F, 0x03, 0x02, b'h', b'i'];
    let (udh, rest) = Udh::parse(&sm).expect("well-formed UDH");
    assert_eq!(rest, b"hi");
    let info = udh.concat().expect("valid element").expect("present");
    assert_eq!(
        (info.kind, info.reference, info.total, info.sequence),
        (Concat::Udh8, 0x7F, 3, 2)
    );
    assert_eq!(udh.encode().as_deref(), Ok(&sm[..6]));
    assert_eq!(udh.encoded_len(), 6);
    assert!(matches!(
        Udh::parse(&[0x09, 0x00, 0x03]),
        Err(TextError::UdhLengthExceedsData { .. })
    ));
}

#[test]
fn reassembly_checks_the_set() {
    let parts =
        split(&"w".repeat(400), Encoding::Ia5, Concat::Udh8, 5, STRICT).expect("ASCII is IA5");
    assert_eq!(parts.len(), 3);
    let sms: Vec<_> = parts.iter().map(Part::short_message).collect();
    let part = |i: usize| ReceivedPart {
        short_message: &sms[i],
        udhi: true,
        sar: None,
    };
    assert_eq!(
        reassemble(&[part(2), part(0), part(1)], Encoding::Ia5),
        Ok("w".repeat(400))
    );
    assert_eq!(
        reassemble(&[part(2), part(0)], Encoding::Ia5),
        Err(TextError::MissingPart {
            sequence: 2,
            total: 3
        })
    );
    assert_eq!(
        reassemble(&[part(0), part(1), part(1), part(2)], Encoding::Ia5),
        Err(TextError::DuplicatePart { sequence: 2 })
    );
    assert_eq!(
        reassemble_payloads(&[part(1), part(0), part(2)]).map(|p| p.len()),
        Ok(400)
    );
    // UDHI not set: the header is taken as text and the parts lack concat info.
    let no_udhi = ReceivedPart {
        udhi: false,
        ..part(0)
    };
    assert_eq!(
        reassemble(&[no_udhi, part(1), part(2)], Encoding::Ia5),
        Err(TextError::MissingConcatInfo { index: 0 })
    );
}

#[test]
fn a_lone_part_without_header_is_a_whole_message() {
    let only = ReceivedPart {
        short_message: &[0xE8, 0x32, 0x9B, 0xFD, 0x06],
        udhi: false,
        sar: None,
    };
    assert_eq!(
        reassemble(&[only], Encoding::Gsm7Packed).as_deref(),
        Ok("hello")
    );
}

// ---- Encoding choice --------------------------------------------------

#[test]
fn cheapest_encoding_prefers_gsm_when_it_fits() {
    let all = Encoding::ALL;
    assert_eq!(
        cheapest_encoding("Hola, ¿qué tal? 5€", &all, Concat::Udh8),
        Some(Encoding::Gsm7Unpacked)
    );
    assert_eq!(
        cheapest_encoding("Hola, ¿cómo estás?", &all, Concat::Udh8),
        Some(Encoding::Latin1)
    );
    assert_eq!(
        cheapest_encoding("Привет", &all, Concat::Udh8),
        Some(Encoding::Ucs2)
    );
    assert_eq!(
        cheapest_encoding("[x]", &[Encoding::Ia5, Encoding::Latin1], Concat::Udh8),
        Some(Encoding::Ia5)
    );
}

// ---- Properties -------------------------------------------------------

/// Every character of GSM 03.38, basic and extension.
fn gsm_chars() -> Vec<char> {
    BASIC_TABLE
        .chars()
        .chain(EXTENSION_TABLE.iter().map(|&(_, c)| c))
        .collect()
}

fn gsm_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(gsm_chars()), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn latin1_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::range('\u{0}', '\u{FF}'), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn ia5_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::char::range('\u{0}', '\u{7F}'), 0..max)
        .prop_map(|chars| chars.into_iter().collect())
}

fn any_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..max).prop_map(|chars| chars.into_iter().collect())
}

fn text_for(encoding: Encoding, max: usize) -> BoxedStrategy<String> {
    match encoding {
        Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => gsm_text(max).boxed(),
        Encoding::Ucs2 => any_text(max).boxed(),
        Encoding::Latin1 => latin1_text(max).boxed(),
        Encoding::Ia5 => ia5_text(max).boxed(),
    }
}

/// Packed GSM without a septet count cannot tell a final CR or '@' that
/// ends exactly on an octet boundary from padding; that one character may
/// be lost, nothing else.
fn packed_tail_may_drop(text: &str, decoded: &str) -> bool {
    let mut shorter = text.chars();
    matches!(shorter.next_back(), Some('@' | '\r')) && decoded == shorter.as_str()
}

fn encoding_strategy() -> impl Strategy<Value = Encoding> {
    prop::sample::select(Encoding::ALL.to_vec())
}

fn concat_strategy() -> impl Strategy<Value = Concat> {
    prop::sample::select(vec![Concat::Udh8, Concat::Udh16, Concat::Sar])
}

proptest! {
    /// Stopping at the first one-part GSM coding picks what taking the
    /// minimum over every allowed coding picks.
    #[test]
    fn cheapest_encoding_is_the_minimum_over_all_codings(
        allowed in prop::collection::vec(encoding_strategy(), 0..6),
        concat in concat_strategy(),
        text in prop_oneof![gsm_text(400), latin1_text(200), any_text(200)],
    ) {
        let preference = |encoding: Encoding| match encoding {
            Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => 0,
            Encoding::Ia5 => 1,
            Encoding::Latin1 => 2,
            Encoding::Ucs2 => 3,
        };
        let minimum = allowed
            .iter()
            .enumerate()
            .filter_map(|(index, &encoding)| {
                let parts = segments(&text, encoding, concat).ok()?;
                Some(((parts, preference(encoding), index), encoding))
            })
            .min_by_key(|&(key, _)| key)
            .map(|(_, encoding)| encoding);
        prop_assert_eq!(cheapest_encoding(&text, &allowed, concat), minimum);
    }

    /// One reading of the text gives what `encode` and `segments_with`
    /// give apart, errors included (any text, so unrepresentable
    /// characters under both policies).
    #[test]
    fn encode_counting_is_encode_and_segments(
        encoding in encoding_strategy(),
        concat in concat_strategy(),
        text in prop_oneof![gsm_text(400), any_text(400)],
        replace in any::<bool>(),
    ) {
        let policy = if replace { Unrepresentable::Replace } else { STRICT };
        let apart = encode(&text, encoding, policy)
            .and_then(|octets| Ok((octets, segments_with(&text, encoding, concat, policy)?)));
        prop_assert_eq!(encode_counting(&text, encoding, concat, policy), apart);
    }

    #[test]
    fn encode_decode_round_trip(
        (encoding, text) in encoding_strategy().prop_flat_map(|e| (Just(e), text_for(e, 300)))
    ) {
        let octets = encode(&text, encoding, STRICT).expect("text is in the alphabet");
        let decoded = decode(&octets, encoding).expect("own output decodes");
        if encoding == Encoding::Gsm7Packed && decoded != text {
            prop_assert!(packed_tail_may_drop(&text, &decoded), "{text:?} -> {decoded:?}");
            let septets = unit_count(&text, encoding, STRICT).expect("counted");
            prop_assert_eq!(septets % 8, 0);
        } else {
            prop_assert_eq!(decoded, text);
        }
    }

    #[test]
    fn packed_round_trip_is_exact_with_count_and_any_fill(text in gsm_text(300), fill in 0u8..7) {
        let octets = encode_packed(&text, fill, STRICT).expect("text is in the alphabet");
        let septets = unit_count(&text, Encoding::Gsm7Packed, STRICT).expect("counted");
        prop_assert_eq!(octets.len(), (usize::from(fill) + 7 * septets).div_ceil(8));
        prop_assert_eq!(decode_packed(&octets, fill, Some(septets)).expect("decodes"), text);
    }

    #[test]
    fn split_then_reassemble_gives_the_text_back(
        (encoding, text) in encoding_strategy().prop_flat_map(|e| (Just(e), text_for(e, 700))),
        concat in concat_strategy(),
        reference in any::<u16>(),
        rotate in any::<usize>(),
    ) {
        let mut parts = split(&text, encoding, concat, reference, STRICT).expect("splits");
        prop_assert_eq!(Ok(parts.len()), segments(&text, encoding, concat));
        let limit = if parts.len() == 1 { encoding.max_single() } else { encoding.max_part(concat) };
        for part in &parts {
            let plain = decode_part_units(part, encoding);
            prop_assert!(plain <= limit, "{} units > {}", plain, limit);
            if !matches!(encoding, Encoding::Gsm7Unpacked | Encoding::Ia5) {
                prop_assert!(part.short_message().len() <= 140);
            }
        }
        let len = parts.len();
        parts.rotate_left(rotate % len);
        let decoded = reassemble_parts(&parts, encoding).expect("reassembles");
        if encoding == Encoding::Gsm7Packed && decoded != text {
            prop_assert!(packed_tail_may_drop(&text, &decoded), "{text:?} -> {decoded:?}");
        } else {
            prop_assert_eq!(decoded, text);
        }
    }

    #[test]
    fn replace_never_fails_and_yields_encodable_text(
        encoding in encoding_strategy(),
        text in any_text(200),
    ) {
        let octets = encode(&text, encoding, Unrepresentable::Replace).expect("Replace never fails");
        let decoded = decode(&octets, encoding);
        prop_assert!(decoded.is_ok());
    }

    #[test]
    fn decoders_never_panic(data in prop::collection::vec(any::<u8>(), 0..400), fill in 0u8..10, count in 0usize..500) {
        for encoding in Encoding::ALL {
            let _ = decode(&data, encoding);
        }
        let _ = decode_packed(&data, fill, Some(count));
        let _ = decode_packed(&data, fill, None);
        if let Ok((udh, rest)) = Udh::parse(&data) {
            prop_assert!(rest.len() < data.len());
            let _ = udh.concat();
            let encoded = udh.encode().expect("a parsed UDH fits");
            prop_assert_eq!(&encoded[..], &data[..data.len() - rest.len()]);
        }
    }

    #[test]
    fn reassemble_never_panics(
        raw in prop::collection::vec(
            (
                prop::collection::vec(any::<u8>(), 0..40),
                any::<bool>(),
                prop::option::of((any::<u16>(), any::<u8>(), any::<u8>())),
            ),
            0..6,
        )
    ) {
        let parts: Vec<_> = raw
            .iter()
            .map(|(sm, udhi, sar)| ReceivedPart {
                short_message: sm,
                udhi: *udhi,
                sar: sar.map(|(reference, total, sequence)| SarInfo { reference, total, sequence }),
            })
            .collect();
        for encoding in Encoding::ALL {
            let _ = reassemble(&parts, encoding);
        }
        let _ = reassemble_payloads(&parts);
    }
}

/// Units a part carries: septets, UTF-16 units or octets.
fn decode_part_units(part: &Part, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7Packed => {
            let fill = part
                .udh
                .as_ref()
                .map_or(0, |udh| tern_codec::text::fill_bits_for_udh(udh.len()));
            tern_codec::text::unpack_septets_padded(&part.payload, fill)
                .expect("own output unpacks")
                .len()
        }
        Encoding::Ucs2 => part.payload.len() / 2,
        _ => part.payload.len(),
    }
}
