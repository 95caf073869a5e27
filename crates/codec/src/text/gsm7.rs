//! The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038
//! §6.2.1 and §6.2.1.1), as septet values — packing lives in `pack.rs`.
//!
//! Invariants: every septet this module produces is below 0x80; ESC (0x1B)
//! is only ever produced directly before an extension code, and no basic
//! character maps to 0x1B, so "the unit before me is ESC" exactly means
//! "I am the second half of an escape sequence".

use super::{Encoding, TextError};

/// Escape to the extension table.
pub const ESC: u8 = 0x1B;

/// The basic table, indexed by septet. Slot 0x1B is ESC, not a character:
/// it holds a space only because 23.038 says to display a space for an
/// escape the receiver cannot resolve; the encoder never looks it up.
const BASIC: [char; 128] = [
    // 0x00
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
    // 0x10
    'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', ' ', 'Æ', 'æ', 'ß', 'É',
    // 0x20
    ' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    // 0x30
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    // 0x40
    '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    // 0x50
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
    // 0x60
    '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    // 0x70
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// The extension table: (code after ESC, character). Codes not listed are
/// undefined; 23.038 tells a receiver to show the basic character instead.
const EXTENSION: [(u8, char); 10] = [
    (0x0A, '\u{0C}'), // form feed (page break)
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

/// Marks an ASCII character with no basic-table code.
const NONE: u8 = 0xFF;

/// Reverse of `BASIC` for ASCII characters, built at compile time from the
/// same table so the two directions cannot disagree.
const ASCII_TO_BASIC: [u8; 128] = build_ascii_to_basic();

const fn build_ascii_to_basic() -> [u8; 128] {
    let mut table = [NONE; 128];
    let mut septet = 0;
    while septet < 128 {
        let ch = BASIC[septet] as u32;
        if septet != ESC as usize && ch < 128 {
            table[ch as usize] = septet as u8;
        }
        septet += 1;
    }
    table
}

/// How a character is written in GSM 7-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Septets {
    /// One septet from the basic table.
    Basic(u8),
    /// ESC followed by this extension code: two septets.
    Extended(u8),
}

/// The septet(s) for `ch`, or `None` if the default alphabet lacks it.
pub fn septets(ch: char) -> Option<Septets> {
    let code = ch as u32;
    if code < 128 {
        let septet = ASCII_TO_BASIC[code as usize];
        if septet != NONE {
            return Some(Septets::Basic(septet));
        }
    } else if let Some(septet) = BASIC.iter().position(|&c| c == ch) {
        // Only non-ASCII characters get here, and the ESC slot holds ASCII.
        return Some(Septets::Basic(septet as u8));
    }
    EXTENSION
        .iter()
        .find(|&&(_, c)| c == ch)
        .map(|&(septet, _)| Septets::Extended(septet))
}

/// Decodes unpacked septets (one per octet) into text.
///
/// ESC + an undefined extension code yields the basic character of that
/// code, ESC ESC and a lone trailing ESC yield a space: what 23.038 tells a
/// receiver to display, so foreign messages still decode.
pub fn from_septets(septets: &[u8]) -> Result<String, TextError> {
    let mut text = String::with_capacity(septets.len());
    let mut iter = septets.iter().copied().enumerate();
    while let Some((position, septet)) = iter.next() {
        let ch = if septet == ESC {
            match iter.next() {
                Some((_, ESC)) | None => ' ',
                Some((position, code)) => extension_char(code, position)?,
            }
        } else {
            basic_char(septet, position)?
        };
        text.push(ch);
    }
    Ok(text)
}

fn basic_char(septet: u8, position: usize) -> Result<char, TextError> {
    BASIC
        .get(usize::from(septet))
        .copied()
        .ok_or(TextError::InvalidOctet {
            value: septet,
            position,
            encoding: Encoding::Gsm7Unpacked,
        })
}

fn extension_char(code: u8, position: usize) -> Result<char, TextError> {
    match EXTENSION.iter().find(|&&(c, _)| c == code) {
        Some(&(_, ch)) => Ok(ch),
        None => basic_char(code, position),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_basic_septet_but_esc_round_trips() {
        for septet in 0u8..128 {
            if septet == ESC {
                continue;
            }
            let ch = BASIC[usize::from(septet)];
            assert_eq!(septets(ch), Some(Septets::Basic(septet)), "{ch:?}");
        }
    }

    #[test]
    fn basic_table_has_no_duplicates() {
        for (i, a) in BASIC.iter().enumerate() {
            for (j, b) in BASIC.iter().enumerate() {
                if i != j && i != usize::from(ESC) && j != usize::from(ESC) {
                    assert_ne!(a, b, "septets {i:#x} and {j:#x}");
                }
            }
        }
    }

    #[test]
    fn extension_chars_are_two_septets() {
        for &(code, ch) in &EXTENSION {
            assert_eq!(septets(ch), Some(Septets::Extended(code)));
            assert_eq!(from_septets(&[ESC, code]), Ok(ch.to_string()));
        }
    }

    #[test]
    fn ascii_lookalikes_at_other_codes() {
        // '$' is 0x02 and '@' 0x00 in GSM; 0x24 is '¤' and 0x40 is '¡'.
        assert_eq!(septets('$'), Some(Septets::Basic(0x02)));
        assert_eq!(septets('@'), Some(Septets::Basic(0x00)));
        assert_eq!(septets('_'), Some(Septets::Basic(0x11)));
        assert_eq!(septets('`'), None);
        assert_eq!(septets('\u{1B}'), None);
        assert_eq!(septets('\t'), None);
    }

    #[test]
    fn unknown_escapes_fall_back_as_the_spec_says() {
        assert_eq!(from_septets(&[ESC, 0x41]), Ok("A".to_string()));
        assert_eq!(from_septets(&[ESC, ESC, 0x41]), Ok(" A".to_string()));
        assert_eq!(from_septets(&[0x41, ESC]), Ok("A ".to_string()));
    }

    #[test]
    fn high_octets_are_rejected() {
        assert_eq!(
            from_septets(&[0x41, 0x80]),
            Err(TextError::InvalidOctet {
                value: 0x80,
                position: 1,
                encoding: Encoding::Gsm7Unpacked
            })
        );
        assert!(from_septets(&[ESC, 0xC1]).is_err());
    }
}
