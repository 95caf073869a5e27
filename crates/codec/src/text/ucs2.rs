//! UCS-2 as SMSCs really use it: UTF-16 big-endian (data_coding 8).
//! Encoding is `char::encode_utf16` in `encoding.rs`; this is the decoder.
//!
//! Characters beyond the Basic Multilingual Plane (emoji) travel as
//! surrogate pairs and count as two units against the 70-unit limit.
//! Decoding is strict: odd lengths and unpaired surrogates are errors.
//! Reassembly concatenates the parts' octets before decoding, so a pair
//! that another sender split across parts still decodes.

use super::TextError;

/// Decodes UTF-16BE octets.
pub fn decode(data: &[u8]) -> Result<String, TextError> {
    if data.len() % 2 != 0 {
        return Err(TextError::OddLength { len: data.len() });
    }
    let units = data
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let mut text = String::with_capacity(data.len() / 2);
    let mut offset = 0;
    for decoded in char::decode_utf16(units) {
        match decoded {
            Ok(ch) => {
                text.push(ch);
                offset += 2 * ch.len_utf16();
            }
            Err(e) => {
                return Err(TextError::UnpairedSurrogate {
                    unit: e.unpaired_surrogate(),
                    position: offset,
                })
            }
        }
    }
    Ok(text)
}

/// True for the second unit of a surrogate pair: no part may start there.
pub fn is_low_surrogate(unit: u16) -> bool {
    (0xDC00..=0xDFFF).contains(&unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bmp_and_astral_characters() {
        assert_eq!(
            decode(&[0x00, 0x41, 0x00, 0xF1, 0x20, 0xAC]),
            Ok("Añ€".to_string())
        );
        // U+1F600 GRINNING FACE is the pair D83D DE00.
        assert_eq!(decode(&[0xD8, 0x3D, 0xDE, 0x00]), Ok("😀".to_string()));
    }

    #[test]
    fn malformed_data_is_an_error() {
        assert_eq!(decode(&[0x00]), Err(TextError::OddLength { len: 1 }));
        assert_eq!(
            decode(&[0x00, 0x41, 0xDE, 0x00]),
            Err(TextError::UnpairedSurrogate {
                unit: 0xDE00,
                position: 2
            })
        );
        assert!(decode(&[0xD8, 0x3D]).is_err());
        assert!(decode(&[0xD8, 0x3D, 0x00, 0x41]).is_err());
    }
}
