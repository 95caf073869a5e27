//! SMS text: codings (GSM 03.38 packed and unpacked, UCS-2/UTF-16BE,
//! Latin-1, IA5), replacement of characters a coding lacks, segment
//! counting, splitting into concatenated parts (UDH or SAR) and
//! reassembling received parts. Pure functions, no I/O.
//!
//! Invariants: no input panics; a character a coding lacks is either an
//! error naming it or replaced per `Unrepresentable::Replace`; parts never
//! cut an escape sequence or a surrogate pair; `segments` and `split` agree.
//!
//! Files: `encoding` (codings, limits, units), `gsm7` (alphabet), `pack`
//! (septet packing), `ucs2`, `latin1` (Latin-1 and IA5), `replace`,
//! `udh`, `split`, `reassemble`, `error`.

mod encoding;
mod error;
mod gsm7;
mod latin1;
mod pack;
mod reassemble;
mod replace;
mod split;
mod ucs2;
mod udh;

pub use encoding::{Encoding, Unrepresentable};
pub use error::TextError;
pub use gsm7::from_septets;
pub use pack::{fill_bits_for_udh, pack_septets, unpack_septets, unpack_septets_padded};
pub use reassemble::{reassemble, reassemble_payloads, ReceivedPart};
pub use split::{segments, segments_with, split, Concat, ConcatInfo, Part, SarInfo};
pub use udh::{InformationElement, Udh, IEI_CONCAT_16, IEI_CONCAT_8};

use bytes::Bytes;
use encoding::{decode_plain, plain_octets, to_units, units_to_octets};

/// Encodes `text` as one short_message body, whatever its length. Packed
/// GSM starts on an octet boundary (no UDH); see `encode_packed` for text
/// after a UDH.
pub fn encode(text: &str, encoding: Encoding, policy: Unrepresentable) -> Result<Bytes, TextError> {
    let units = to_units(text, encoding, policy)?;
    Ok(units_to_octets(&units, encoding, 0)?.into())
}

/// `encode` and `segments_with` from one reading of the text into the
/// coding's units: the router needs both for every message it sends, and
/// reading the text twice was a visible part of a submit's cost.
pub fn encode_counting(
    text: &str,
    encoding: Encoding,
    concat: Concat,
    policy: Unrepresentable,
) -> Result<(Bytes, usize), TextError> {
    let units = to_units(text, encoding, policy)?;
    let octets = units_to_octets(&units, encoding, 0)?;
    Ok((octets.into(), split::count_parts(&units, encoding, concat)))
}

/// Decodes a short_message body (no UDH). For packed GSM the septet count
/// is unknown, so a trailing CR or '@' that exactly fills 7 spare bits is
/// taken as padding; use `decode_packed` when the count is known.
pub fn decode(data: &[u8], encoding: Encoding) -> Result<String, TextError> {
    decode_plain(&plain_octets(data, encoding, 0)?, encoding)
}

/// Packed GSM 7-bit after `fill_bits` fill bits (see `fill_bits_for_udh`).
pub fn encode_packed(
    text: &str,
    fill_bits: u8,
    policy: Unrepresentable,
) -> Result<Bytes, TextError> {
    let units = to_units(text, Encoding::Gsm7Packed, policy)?;
    Ok(units_to_octets(&units, Encoding::Gsm7Packed, fill_bits)?.into())
}

/// Decodes packed GSM 7-bit after `fill_bits` fill bits: exactly `septets`
/// septets when the count is known (as in a TPDU's UDL), else every septet
/// the data holds less trailing padding.
pub fn decode_packed(
    data: &[u8],
    fill_bits: u8,
    septets: Option<usize>,
) -> Result<String, TextError> {
    let septets = match septets {
        Some(count) => unpack_septets(data, fill_bits, count)?,
        None => unpack_septets_padded(data, fill_bits)?,
    };
    from_septets(&septets)
}

/// `text` as unpacked GSM septets, one per octet (escapes as ESC + code).
pub fn to_septets(text: &str, policy: Unrepresentable) -> Result<Vec<u8>, TextError> {
    let units = to_units(text, Encoding::Gsm7Unpacked, policy)?;
    units_to_octets(&units, Encoding::Gsm7Unpacked, 0)
}

/// Length of `text` in units of `encoding`: septets (€ counts 2), UTF-16
/// units (an emoji counts 2) or octets.
pub fn unit_count(
    text: &str,
    encoding: Encoding,
    policy: Unrepresentable,
) -> Result<usize, TextError> {
    Ok(to_units(text, encoding, policy)?.len())
}

/// Of the `allowed` codings that represent `text` exactly, the one needing
/// the fewest parts; ties go to GSM 7-bit, then IA5, Latin-1, UCS-2, then
/// to the order of `allowed`. `None` if none represents it.
pub fn cheapest_encoding(text: &str, allowed: &[Encoding], concat: Concat) -> Option<Encoding> {
    let preference = |encoding: Encoding| match encoding {
        Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => 0,
        Encoding::Ia5 => 1,
        Encoding::Latin1 => 2,
        Encoding::Ucs2 => 3,
    };
    let mut best: Option<((usize, u8, usize), Encoding)> = None;
    for (index, &encoding) in allowed.iter().enumerate() {
        let Ok(parts) = segments(text, encoding, concat) else {
            continue;
        };
        let key = (parts, preference(encoding), index);
        if best.is_none_or(|(best_key, _)| key < best_key) {
            best = Some((key, encoding));
        }
        // One part in GSM 7-bit: nothing later can be cheaper (a later
        // index loses the tie), so the other codings are not read at all.
        // Nearly every message stops here, at its first coding.
        if key.0 == 1 && key.1 == 0 {
            break;
        }
    }
    best.map(|(_, encoding)| encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_and_decode_each_coding() {
        let cases: [(Encoding, &str, &[u8]); 5] = [
            (Encoding::Gsm7Unpacked, "@£€", &[0x00, 0x01, 0x1B, 0x65]),
            (
                Encoding::Gsm7Packed,
                "hello",
                &[0xE8, 0x32, 0x9B, 0xFD, 0x06],
            ),
            (Encoding::Ucs2, "é😀", &[0x00, 0xE9, 0xD8, 0x3D, 0xDE, 0x00]),
            (Encoding::Latin1, "é¿", &[0xE9, 0xBF]),
            (Encoding::Ia5, "[x]", b"[x]"),
        ];
        for (encoding, text, octets) in cases {
            let encoded = encode(text, encoding, Unrepresentable::Error);
            assert_eq!(encoded.as_deref(), Ok(octets), "{encoding}");
            assert_eq!(decode(octets, encoding).as_deref(), Ok(text), "{encoding}");
        }
    }

    #[test]
    fn packed_with_fill_and_count() {
        let packed = encode_packed("hello", 1, Unrepresentable::Error);
        assert_eq!(packed.as_deref(), Ok(&[0xD0, 0x65, 0x36, 0xFB, 0x0D][..]));
        let packed = [0xD0, 0x65, 0x36, 0xFB, 0x0D];
        assert_eq!(decode_packed(&packed, 1, Some(5)).as_deref(), Ok("hello"));
        assert_eq!(decode_packed(&packed, 1, Some(3)).as_deref(), Ok("hel"));
        assert_eq!(decode_packed(&packed, 1, None).as_deref(), Ok("hello"));
        assert!(decode_packed(&packed, 1, Some(6)).is_err());
    }

    #[test]
    fn cheapest_prefers_gsm_then_fewest_parts() {
        let all = Encoding::ALL;
        assert_eq!(
            cheapest_encoding("hola", &all, Concat::Udh8),
            Some(Encoding::Gsm7Unpacked)
        );
        // 'ó' is not GSM: Latin-1 beats UCS-2.
        assert_eq!(
            cheapest_encoding("canción", &all, Concat::Udh8),
            Some(Encoding::Latin1)
        );
        assert_eq!(
            cheapest_encoding("😀", &all, Concat::Udh8),
            Some(Encoding::Ucs2)
        );
        // 141 'a' plus '€': GSM needs 1 part, Latin-1 and IA5 cannot.
        let text = format!("{}€", "a".repeat(141));
        assert_eq!(
            cheapest_encoding(&text, &[Encoding::Ucs2, Encoding::Gsm7Packed], Concat::Udh8),
            Some(Encoding::Gsm7Packed)
        );
        // 150 'ó': Latin-1 takes 2 parts, UCS-2 3.
        let text = "ó".repeat(150);
        assert_eq!(
            cheapest_encoding(&text, &[Encoding::Ucs2, Encoding::Latin1], Concat::Udh8),
            Some(Encoding::Latin1)
        );
        assert_eq!(
            cheapest_encoding("😀", &[Encoding::Latin1], Concat::Udh8),
            None
        );
        assert_eq!(cheapest_encoding("a", &[], Concat::Udh8), None);
    }
}
