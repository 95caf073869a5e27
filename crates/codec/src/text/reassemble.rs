//! Putting received parts of a long message back together.
//!
//! Parts may come in any order, tied by a concatenation UDH (IEI 0x00 or
//! 0x08, when UDHI is set) or by SAR TLVs; a UDH wins where both are
//! present. Before anything is joined the parts must agree (same kind of
//! header, reference and total), number validly, and cover 1..=total
//! exactly once. Parts are joined as septets or octets *before* decoding,
//! so an escape sequence or surrogate pair that another sender cut across
//! parts still decodes.

use super::encoding::{decode_plain, plain_octets};
use super::pack::fill_bits_for_udh;
use super::udh::Udh;
use super::{ConcatInfo, Encoding, SarInfo, TextError};
use bytes::{Bytes, BytesMut};

/// One received short_message with what the PDU said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedPart<'a> {
    /// The short_message (or message_payload) octets.
    pub short_message: &'a [u8],
    /// esm_class UDHI (0x40): short_message starts with a UDH.
    pub udhi: bool,
    /// SAR TLV values, if the PDU had them.
    pub sar: Option<SarInfo>,
}

impl<'a> ReceivedPart<'a> {
    /// Its concatenation values, from the UDH or else the SAR TLVs.
    pub fn concat_info(&self) -> Result<Option<ConcatInfo>, TextError> {
        Ok(self.parse()?.info)
    }

    /// The user data after any UDH.
    pub fn user_data(&self) -> Result<&'a [u8], TextError> {
        Ok(self.parse()?.user_data)
    }

    fn parse(&self) -> Result<Parsed<'a>, TextError> {
        if !self.udhi {
            return Ok(Parsed {
                info: self.sar.map(ConcatInfo::from),
                user_data: self.short_message,
                fill_bits: 0,
            });
        }
        let (udh, user_data) = Udh::parse(self.short_message)?;
        let info = udh.concat()?.or(self.sar.map(ConcatInfo::from));
        Ok(Parsed {
            info,
            user_data,
            fill_bits: fill_bits_for_udh(self.short_message.len() - user_data.len()),
        })
    }
}

/// A part with its header read.
#[derive(Debug, Clone, Copy)]
struct Parsed<'a> {
    info: Option<ConcatInfo>,
    user_data: &'a [u8],
    /// Fill bits before packed septets that follow the UDH.
    fill_bits: u8,
}

/// Checks and orders the parts, returning them from 1 to total.
fn order<'a>(parts: &[ReceivedPart<'a>]) -> Result<Vec<Parsed<'a>>, TextError> {
    let parsed = parts
        .iter()
        .map(ReceivedPart::parse)
        .collect::<Result<Vec<_>, _>>()?;
    let first = match parsed.as_slice() {
        [] => return Err(TextError::NoParts),
        // A lone part without concatenation values is a whole message.
        [only] if only.info.is_none() => return Ok(parsed),
        [first, ..] => first
            .info
            .ok_or(TextError::MissingConcatInfo { index: 0 })?,
    };
    let mut slots: Vec<Option<Parsed<'a>>> = vec![None; usize::from(first.total)];
    for (index, part) in parsed.into_iter().enumerate() {
        let info = part.info.ok_or(TextError::MissingConcatInfo { index })?;
        if info.total == 0 || info.sequence == 0 || info.sequence > info.total {
            return Err(TextError::BadConcatNumbers {
                total: info.total,
                sequence: info.sequence,
            });
        }
        if (info.kind, info.reference, info.total) != (first.kind, first.reference, first.total) {
            return Err(TextError::ConcatMismatch { index });
        }
        match slots.get_mut(usize::from(info.sequence) - 1) {
            Some(slot @ None) => *slot = Some(part),
            _ => {
                return Err(TextError::DuplicatePart {
                    sequence: info.sequence,
                })
            }
        }
    }
    let mut ordered = Vec::with_capacity(slots.len());
    for (sequence, slot) in (1..=first.total).zip(slots) {
        ordered.push(slot.ok_or(TextError::MissingPart {
            sequence,
            total: first.total,
        })?);
    }
    Ok(ordered)
}

/// Reassembles and decodes the text of `parts`, given in any order.
pub fn reassemble(parts: &[ReceivedPart<'_>], encoding: Encoding) -> Result<String, TextError> {
    let mut plain = Vec::new();
    for part in order(parts)? {
        plain.extend_from_slice(&plain_octets(part.user_data, encoding, part.fill_bits)?);
    }
    decode_plain(&plain, encoding)
}

/// Reassembles the raw user data of `parts` (UDHs removed), for binary
/// messages or codings this module does not decode. Packed septets are
/// not realigned: use `reassemble` for text.
pub fn reassemble_payloads(parts: &[ReceivedPart<'_>]) -> Result<Bytes, TextError> {
    let ordered = order(parts)?;
    let mut out = BytesMut::with_capacity(ordered.iter().map(|p| p.user_data.len()).sum());
    for part in ordered {
        out.extend_from_slice(part.user_data);
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::super::Concat;
    use super::*;

    fn udh_part(short_message: &[u8]) -> ReceivedPart<'_> {
        ReceivedPart {
            short_message,
            udhi: true,
            sar: None,
        }
    }

    #[test]
    fn parts_in_any_order() {
        let one = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, b'a', b'b'];
        let two = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x02, b'c'];
        let parts = [udh_part(&two), udh_part(&one)];
        assert_eq!(reassemble(&parts, Encoding::Latin1), Ok("abc".to_string()));
        assert_eq!(reassemble_payloads(&parts).as_deref(), Ok(&b"abc"[..]));
    }

    #[test]
    fn inconsistent_sets_are_refused() {
        let one = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x01, b'a'];
        let two = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x02, b'b'];
        let other_ref = [0x05, 0x00, 0x03, 0x2B, 0x02, 0x02, b'b'];
        let zero = [0x05, 0x00, 0x03, 0x2A, 0x02, 0x00, b'b'];
        let enc = Encoding::Latin1;
        assert_eq!(reassemble(&[], enc), Err(TextError::NoParts));
        assert_eq!(
            reassemble(&[udh_part(&one)], enc),
            Err(TextError::MissingPart {
                sequence: 2,
                total: 2
            })
        );
        assert_eq!(
            reassemble(&[udh_part(&one), udh_part(&one)], enc),
            Err(TextError::DuplicatePart { sequence: 1 })
        );
        assert_eq!(
            reassemble(&[udh_part(&one), udh_part(&other_ref)], enc),
            Err(TextError::ConcatMismatch { index: 1 })
        );
        assert_eq!(
            reassemble(&[udh_part(&one), udh_part(&zero)], enc),
            Err(TextError::BadConcatNumbers {
                total: 2,
                sequence: 0
            })
        );
        let plain = ReceivedPart {
            short_message: b"b",
            udhi: false,
            sar: None,
        };
        assert_eq!(
            reassemble(&[udh_part(&one), plain], enc),
            Err(TextError::MissingConcatInfo { index: 1 })
        );
        assert_eq!(
            reassemble(&[udh_part(&one), udh_part(&two)], enc),
            Ok("ab".to_string())
        );
    }

    #[test]
    fn sar_and_udh_kinds_do_not_mix() {
        let one = [0x05, 0x00, 0x03, 0x01, 0x02, 0x01, b'a'];
        let sar_two = ReceivedPart {
            short_message: b"b",
            udhi: false,
            sar: Some(SarInfo {
                reference: 1,
                total: 2,
                sequence: 2,
            }),
        };
        assert_eq!(
            sar_two.concat_info().map(|i| i.map(|i| i.kind)),
            Ok(Some(Concat::Sar))
        );
        assert_eq!(
            reassemble(&[udh_part(&one), sar_two], Encoding::Latin1),
            Err(TextError::ConcatMismatch { index: 1 })
        );
    }

    #[test]
    fn escape_cut_by_another_sender_still_decodes() {
        // Part 1 ends with ESC, part 2 starts with 0x65: together '€'.
        let one = [0x05, 0x00, 0x03, 0x07, 0x02, 0x01, 0x41, 0x1B];
        let two = [0x05, 0x00, 0x03, 0x07, 0x02, 0x02, 0x65];
        let parts = [udh_part(&one), udh_part(&two)];
        assert_eq!(
            reassemble(&parts, Encoding::Gsm7Unpacked),
            Ok("A€".to_string())
        );
    }
}
