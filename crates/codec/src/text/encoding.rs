//! The five codings, their size limits, and the bridge between text and
//! code units.
//!
//! A *unit* is what the 140-octet user data limit is counted in: a septet
//! for GSM 7-bit and IA5 (which SMSCs transcode to GSM on the air), a
//! UTF-16 code unit for UCS-2, an octet for Latin-1. A character costs one
//! unit, or two for a GSM escape sequence or a UTF-16 surrogate pair.
//! Invariant: parts are only ever cut where `is_char_start` holds.

use super::{gsm7, latin1, pack, replace, ucs2, Concat, TextError};
use std::borrow::Cow;
use std::fmt;

/// A text coding for short_message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, one septet per octet: what data_coding 0
    /// means on most SMPP accounts (OVH's default).
    Gsm7Unpacked,
    /// GSM 03.38 default alphabet, 8 septets packed in 7 octets, as on the
    /// air interface; some SMSCs want it on SMPP too.
    Gsm7Packed,
    /// UCS-2 big-endian, in practice UTF-16BE: characters outside the BMP
    /// are surrogate pairs (data_coding 8).
    Ucs2,
    /// ISO-8859-1, one octet per character (data_coding 3).
    Latin1,
    /// IA5 / 7-bit ASCII, one octet per character (data_coding 1). SMSCs
    /// carry it as GSM 7-bit on the air, hence the septet limits.
    Ia5,
}

/// What to do with a character the target coding lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unrepresentable {
    /// Fail with `TextError::Unrepresentable`.
    #[default]
    Error,
    /// Replace it by the most similar text the coding has (the unaccented
    /// letter, straight quotes…), else '?'. See `replace.rs`.
    Replace,
}

/// The user data of one SMS, in octets.
const USER_DATA_OCTETS: usize = 140;

impl Encoding {
    /// All codings, for iterating.
    pub const ALL: [Encoding; 5] = [
        Encoding::Gsm7Unpacked,
        Encoding::Gsm7Packed,
        Encoding::Ucs2,
        Encoding::Latin1,
        Encoding::Ia5,
    ];

    /// True for both GSM 7-bit forms.
    pub const fn is_gsm7(self) -> bool {
        matches!(self, Encoding::Gsm7Unpacked | Encoding::Gsm7Packed)
    }

    /// Bits one unit takes in the 140 octets of user data on the air.
    pub const fn unit_bits(self) -> usize {
        match self {
            Encoding::Gsm7Unpacked | Encoding::Gsm7Packed | Encoding::Ia5 => 7,
            Encoding::Latin1 => 8,
            Encoding::Ucs2 => 16,
        }
    }

    /// The SMPP data_coding value. GSM 7-bit packed and unpacked share 0
    /// ("SMSC default alphabet"): which one applies is an account setting.
    pub const fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => 0x00,
            Encoding::Ia5 => 0x01,
            Encoding::Latin1 => 0x03,
            Encoding::Ucs2 => 0x08,
        }
    }

    /// Units that fit beside a UDH of `udh_len` octets (UDHL included):
    /// septets skip the fill bits, so 6 octets leave 153 septets, 7 leave 152.
    pub const fn max_units(self, udh_len: usize) -> usize {
        USER_DATA_OCTETS.saturating_sub(udh_len) * 8 / self.unit_bits()
    }

    /// Units of a single, unconcatenated message: 160 septets, 70 UCS-2
    /// units, 140 octets.
    pub const fn max_single(self) -> usize {
        self.max_units(0)
    }

    /// Units of one part of a concatenated message: 153/67/134 with an
    /// 8-bit reference, 152/66/133 with a 16-bit one or SAR.
    pub const fn max_part(self, concat: Concat) -> usize {
        self.max_units(concat.air_udh_len())
    }

    /// Whether the coding has `ch` (GSM: in either table).
    pub fn represents(self, ch: char) -> bool {
        match self {
            Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => gsm7::septets(ch).is_some(),
            Encoding::Ucs2 => true,
            Encoding::Latin1 => latin1::latin1_octet(ch).is_some(),
            Encoding::Ia5 => latin1::ia5_octet(ch).is_some(),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Gsm7Unpacked => "GSM 7-bit (unpacked)",
            Encoding::Gsm7Packed => "GSM 7-bit (packed)",
            Encoding::Ucs2 => "UCS-2",
            Encoding::Latin1 => "Latin-1",
            Encoding::Ia5 => "IA5",
        })
    }
}

/// `text` as units of `encoding` (septets, UTF-16 units or octets, all
/// widened to u16), applying `policy` to characters the coding lacks.
pub(super) fn to_units(
    text: &str,
    encoding: Encoding,
    policy: Unrepresentable,
) -> Result<Vec<u16>, TextError> {
    let mut units = Vec::with_capacity(text.len());
    for (position, ch) in text.chars().enumerate() {
        if push_units(ch, encoding, &mut units) {
            continue;
        }
        match policy {
            Unrepresentable::Error => {
                return Err(TextError::Unrepresentable {
                    ch,
                    position,
                    encoding,
                })
            }
            Unrepresentable::Replace => {
                for replacement in replace::substitute(ch, encoding).chars() {
                    if !push_units(replacement, encoding, &mut units) {
                        // `substitute` promises representable text; stay safe anyway.
                        push_units('?', encoding, &mut units);
                    }
                }
            }
        }
    }
    Ok(units)
}

/// Appends the units of `ch`; false (and nothing appended) if it has none.
fn push_units(ch: char, encoding: Encoding, units: &mut Vec<u16>) -> bool {
    match encoding {
        Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => match gsm7::septets(ch) {
            Some(gsm7::Septets::Basic(septet)) => units.push(septet.into()),
            Some(gsm7::Septets::Extended(code)) => {
                units.extend([u16::from(gsm7::ESC), u16::from(code)]);
            }
            None => return false,
        },
        Encoding::Ucs2 => {
            let mut buffer = [0u16; 2];
            units.extend_from_slice(ch.encode_utf16(&mut buffer));
        }
        Encoding::Latin1 | Encoding::Ia5 => {
            let octet = if encoding == Encoding::Latin1 {
                latin1::latin1_octet(ch)
            } else {
                latin1::ia5_octet(ch)
            };
            match octet {
                Some(octet) => units.push(octet.into()),
                None => return false,
            }
        }
    }
    true
}

/// Whether a part may start at unit `index`: not between ESC and its
/// extension code, not inside a surrogate pair.
pub(super) fn is_char_start(units: &[u16], index: usize, encoding: Encoding) -> bool {
    match encoding {
        Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => {
            index == 0 || units.get(index - 1) != Some(&u16::from(gsm7::ESC))
        }
        Encoding::Ucs2 => !units.get(index).is_some_and(|&u| ucs2::is_low_surrogate(u)),
        Encoding::Latin1 | Encoding::Ia5 => true,
    }
}

/// The octets of `units`; packed septets start after `fill_bits`.
pub(super) fn units_to_octets(
    units: &[u16],
    encoding: Encoding,
    fill_bits: u8,
) -> Result<Vec<u8>, TextError> {
    // Units of the one-octet codings are below 0x100 by construction.
    let narrow = || units.iter().map(|&u| (u & 0xFF) as u8);
    match encoding {
        Encoding::Gsm7Packed => pack::pack_septets(&narrow().collect::<Vec<_>>(), fill_bits),
        Encoding::Gsm7Unpacked | Encoding::Latin1 | Encoding::Ia5 => Ok(narrow().collect()),
        Encoding::Ucs2 => Ok(units.iter().flat_map(|u| u.to_be_bytes()).collect()),
    }
}

/// Received octets in "plain" form: packed septets unpacked to one per
/// octet (padding dropped), other codings unchanged.
pub(super) fn plain_octets(
    data: &[u8],
    encoding: Encoding,
    fill_bits: u8,
) -> Result<Cow<'_, [u8]>, TextError> {
    match encoding {
        Encoding::Gsm7Packed => Ok(Cow::Owned(pack::unpack_septets_padded(data, fill_bits)?)),
        _ => Ok(Cow::Borrowed(data)),
    }
}

/// Decodes plain octets (see `plain_octets`); packed GSM is read as
/// unpacked septets.
pub(super) fn decode_plain(plain: &[u8], encoding: Encoding) -> Result<String, TextError> {
    match encoding {
        Encoding::Gsm7Unpacked | Encoding::Gsm7Packed => gsm7::from_septets(plain),
        Encoding::Ucs2 => ucs2::decode(plain),
        Encoding::Latin1 => Ok(latin1::decode_latin1(plain)),
        Encoding::Ia5 => latin1::decode_ia5(plain),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_from_the_spec() {
        let single: Vec<_> = Encoding::ALL.iter().map(|e| e.max_single()).collect();
        assert_eq!(single, [160, 160, 70, 140, 160]);
        let udh8: Vec<_> = Encoding::ALL
            .iter()
            .map(|e| e.max_part(Concat::Udh8))
            .collect();
        assert_eq!(udh8, [153, 153, 67, 134, 153]);
        for concat in [Concat::Udh16, Concat::Sar] {
            let part: Vec<_> = Encoding::ALL.iter().map(|e| e.max_part(concat)).collect();
            assert_eq!(part, [152, 152, 66, 133, 152]);
        }
    }

    #[test]
    fn data_coding_values() {
        let dcs: Vec<_> = Encoding::ALL.iter().map(|e| e.data_coding()).collect();
        assert_eq!(dcs, [0, 0, 8, 3, 1]);
    }

    #[test]
    fn cut_points_respect_escapes_and_pairs() {
        let gsm = to_units("a€", Encoding::Gsm7Unpacked, Unrepresentable::Error);
        assert_eq!(gsm, Ok(vec![0x61, 0x1B, 0x65]));
        let gsm = gsm.unwrap_or_default();
        let starts: Vec<_> = (0..=3)
            .map(|i| is_char_start(&gsm, i, Encoding::Gsm7Unpacked))
            .collect();
        assert_eq!(starts, [true, true, false, true]);

        let utf16 = to_units("a😀", Encoding::Ucs2, Unrepresentable::Error).unwrap_or_default();
        let starts: Vec<_> = (0..=3)
            .map(|i| is_char_start(&utf16, i, Encoding::Ucs2))
            .collect();
        assert_eq!(starts, [true, true, false, true]);
    }

    #[test]
    fn errors_name_the_character_and_its_index() {
        assert_eq!(
            to_units("añ€x", Encoding::Latin1, Unrepresentable::Error),
            Err(TextError::Unrepresentable {
                ch: '€',
                position: 2,
                encoding: Encoding::Latin1
            })
        );
    }
}
