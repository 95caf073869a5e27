//! ISO-8859-1 (data_coding 3) and IA5 / 7-bit ASCII (data_coding 1): one
//! octet per character, the octet being the character's code point.
//!
//! Latin-1 decodes every octet; IA5 rejects octets above 0x7F.

use super::{Encoding, TextError};

/// The Latin-1 octet for `ch`, if it has one.
pub fn latin1_octet(ch: char) -> Option<u8> {
    u8::try_from(u32::from(ch)).ok()
}

/// The IA5 octet for `ch`, if it is ASCII.
pub fn ia5_octet(ch: char) -> Option<u8> {
    latin1_octet(ch).filter(u8::is_ascii)
}

/// Decodes Latin-1; every octet is a character.
pub fn decode_latin1(data: &[u8]) -> String {
    data.iter().copied().map(char::from).collect()
}

/// Decodes IA5; octets above 0x7F are errors.
pub fn decode_ia5(data: &[u8]) -> Result<String, TextError> {
    match data.iter().position(|octet| !octet.is_ascii()) {
        Some(position) => Err(TextError::InvalidOctet {
            value: data[position],
            position,
            encoding: Encoding::Ia5,
        }),
        None => Ok(decode_latin1(data)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_covers_u00ff_and_no_further() {
        assert_eq!(latin1_octet('ÿ'), Some(0xFF));
        assert_eq!(latin1_octet('é'), Some(0xE9));
        assert_eq!(latin1_octet('€'), None);
        assert_eq!(decode_latin1(&[0x41, 0xE9, 0xFF]), "Aéÿ");
    }

    #[test]
    fn ia5_is_ascii() {
        assert_eq!(ia5_octet('~'), Some(b'~'));
        assert_eq!(ia5_octet('é'), None);
        assert_eq!(
            decode_ia5(&[0x41, 0xE9]),
            Err(TextError::InvalidOctet {
                value: 0xE9,
                position: 1,
                encoding: Encoding::Ia5
            })
        );
    }
}
