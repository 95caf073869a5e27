//! Packing GSM septets into octets and back (3GPP TS 23.038 §6.1.2.1).
//!
//! Septets are laid out least significant bit first. `fill_bits` zero bits
//! come first: text that follows a UDH starts on a septet boundary counted
//! from the start of the user data, so after a UDH of `n` octets there are
//! `fill_bits_for_udh(n)` fill bits in the low end of the first text octet.
//!
//! The octet length of SMPP's short_message loses the septet count. When
//! the last octet has 7 spare bits the packer writes a CR there (23.038
//! §6.1.2.3.1) and the padded unpacker drops a trailing CR or `@` (zero
//! septet, from senders that pad with zeros) found in exactly that place,
//! so no '@' is invented. Where the septet count is known, `unpack_septets`
//! is exact.

use super::{Encoding, TextError};

/// Carriage return, the padding septet.
const CR: u8 = 0x0D;

/// Fill bits needed after a UDH of `udh_len` octets (UDHL octet included)
/// so the text starts on a septet boundary: 1 after a 6-octet UDH, 0 after
/// a 7-octet one.
pub fn fill_bits_for_udh(udh_len: usize) -> u8 {
    ((7 - (udh_len * 8) % 7) % 7) as u8
}

/// Packs septets after `fill_bits` zero bits. If exactly 7 bits of the last
/// octet are unused, they hold a CR so receivers do not read an '@'.
pub fn pack_septets(septets: &[u8], fill_bits: u8) -> Result<Vec<u8>, TextError> {
    check_fill(fill_bits)?;
    let fill = usize::from(fill_bits);
    let bits = fill + 7 * septets.len();
    let mut out = vec![0u8; bits.div_ceil(8)];
    for (i, &septet) in septets.iter().enumerate() {
        if septet > 0x7F {
            return Err(TextError::InvalidOctet {
                value: septet,
                position: i,
                encoding: Encoding::Gsm7Unpacked,
            });
        }
        put(&mut out, fill + 7 * i, septet);
    }
    if out.len() * 8 - bits == 7 {
        put(&mut out, bits, CR);
    }
    Ok(out)
}

/// Writes a septet at bit position `bit`; callers size `out` to hold it.
fn put(out: &mut [u8], bit: usize, septet: u8) {
    let (index, shift) = (bit / 8, bit % 8);
    let wide = u16::from(septet) << shift;
    if let Some(octet) = out.get_mut(index) {
        *octet |= (wide & 0xFF) as u8;
    }
    if let Some(octet) = out.get_mut(index + 1) {
        *octet |= (wide >> 8) as u8;
    }
}

/// Reads the septet at bit position `bit`; missing octets read as zero.
fn get(data: &[u8], bit: usize) -> u8 {
    let (index, shift) = (bit / 8, bit % 8);
    let low = u16::from(data.get(index).copied().unwrap_or(0));
    let high = u16::from(data.get(index + 1).copied().unwrap_or(0));
    (((high << 8 | low) >> shift) & 0x7F) as u8
}

/// Unpacks exactly `count` septets that follow `fill_bits` fill bits.
pub fn unpack_septets(data: &[u8], fill_bits: u8, count: usize) -> Result<Vec<u8>, TextError> {
    check_fill(fill_bits)?;
    let fill = usize::from(fill_bits);
    // No septets need no bits, not even the fill.
    let needed = match count {
        0 => Some(0),
        _ => count.checked_mul(7).and_then(|bits| bits.checked_add(fill)),
    };
    if needed.is_none_or(|bits| bits > data.len().saturating_mul(8)) {
        return Err(TextError::SeptetsExceedData {
            septets: count,
            octets: data.len(),
        });
    }
    Ok((0..count).map(|i| get(data, fill + 7 * i)).collect())
}

/// Unpacks every septet the data holds when the count is unknown (SMPP
/// gives only octets): a CR or zero septet filling exactly the last 7 bits
/// is padding and is dropped.
pub fn unpack_septets_padded(data: &[u8], fill_bits: u8) -> Result<Vec<u8>, TextError> {
    check_fill(fill_bits)?;
    let bits = (data.len() * 8).saturating_sub(usize::from(fill_bits));
    let mut septets = unpack_septets(data, fill_bits, bits / 7)?;
    if bits % 7 == 0 && matches!(septets.last(), Some(&(0 | CR))) {
        septets.pop();
    }
    Ok(septets)
}

fn check_fill(fill_bits: u8) -> Result<(), TextError> {
    if fill_bits > 6 {
        return Err(TextError::InvalidFillBits { fill_bits });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HELLO: [u8; 5] = [0x68, 0x65, 0x6C, 0x6C, 0x6F];

    #[test]
    fn fill_bits_after_common_udhs() {
        assert_eq!(fill_bits_for_udh(6), 1);
        assert_eq!(fill_bits_for_udh(7), 0);
        assert_eq!(fill_bits_for_udh(0), 0);
        assert_eq!(fill_bits_for_udh(1), 6);
    }

    #[test]
    fn hello_packs_to_the_textbook_vector() {
        assert_eq!(
            pack_septets(&HELLO, 0),
            Ok(vec![0xE8, 0x32, 0x9B, 0xFD, 0x06])
        );
    }

    #[test]
    fn one_fill_bit_shifts_everything_left() {
        // Worked by hand: 'h' = 0x68 at bit 1 gives 0xD0, 'e' fills octet 1, ...
        assert_eq!(
            pack_septets(&HELLO, 1),
            Ok(vec![0xD0, 0x65, 0x36, 0xFB, 0x0D])
        );
        assert_eq!(
            unpack_septets(&[0xD0, 0x65, 0x36, 0xFB, 0x0D], 1, 5),
            Ok(HELLO.to_vec())
        );
    }

    #[test]
    fn seven_spare_bits_hold_cr() {
        // "1234567": the 7th septet ends at bit 49, so octet 6 has 7 spare bits.
        let packed = pack_septets(b"1234567", 0);
        assert_eq!(packed, Ok(vec![0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x1A]));
        assert_eq!(
            unpack_septets_padded(&[0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x1A], 0),
            Ok(b"1234567".to_vec())
        );
        // A zero-padding sender: still no '@'.
        assert_eq!(
            unpack_septets_padded(&[0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x00], 0),
            Ok(b"1234567".to_vec())
        );
        // With the count known, the padding is just another septet.
        assert_eq!(
            unpack_septets(&[0x31, 0xD9, 0x8C, 0x56, 0xB3, 0xDD, 0x00], 0, 8),
            Ok(b"1234567\0".to_vec())
        );
    }

    #[test]
    fn eight_septets_fill_seven_octets_exactly() {
        let packed = pack_septets(b"12345678", 0);
        assert_eq!(packed.as_ref().map(Vec::len), Ok(7));
        assert_eq!(
            unpack_septets_padded(&packed.unwrap_or_default(), 0),
            Ok(b"12345678".to_vec())
        );
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert_eq!(
            pack_septets(&[0x41], 7),
            Err(TextError::InvalidFillBits { fill_bits: 7 })
        );
        assert!(pack_septets(&[0x80], 0).is_err());
        assert_eq!(
            unpack_septets(&[0xFF], 0, 2),
            Err(TextError::SeptetsExceedData {
                septets: 2,
                octets: 1
            })
        );
        assert!(unpack_septets(&[0xFF], 0, usize::MAX).is_err());
        assert_eq!(unpack_septets_padded(&[], 3), Ok(vec![]));
    }
}
