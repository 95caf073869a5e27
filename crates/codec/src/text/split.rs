//! Cutting a text into SMS parts and describing how they are tied together.
//!
//! Invariants: a text that fits one message gets one part with neither UDH
//! nor SAR; otherwise parts are filled greedily up to the coding's per-part
//! limit, never cut between ESC and its extension code nor inside a
//! surrogate pair, and a packed GSM part that is not the last never ends
//! with CR or '@' exactly on an octet boundary (the receiver would take it
//! for padding; see `pack.rs`). At most 255 parts. `segments` counts with
//! the same plan, so it always agrees with `split`.

use super::encoding::{is_char_start, to_units, units_to_octets};
use super::pack::fill_bits_for_udh;
use super::udh::Udh;
use super::{Encoding, TextError, Unrepresentable};
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// How the parts of a long message are tied together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Concat {
    /// UDH with IEI 0x00, 8-bit reference: `05 00 03 ref total seq`.
    Udh8,
    /// UDH with IEI 0x08, 16-bit reference: `06 08 04 ref_hi ref_lo total seq`.
    Udh16,
    /// SMPP TLVs sar_msg_ref_num, sar_total_segments, sar_segment_seqnum;
    /// short_message holds text only.
    Sar,
}

impl Concat {
    /// Octets the header takes inside short_message, UDHL included.
    pub const fn udh_len(self) -> usize {
        match self {
            Concat::Udh8 => 6,
            Concat::Udh16 => 7,
            Concat::Sar => 0,
        }
    }

    /// Octets the header takes on the air. For SAR the SMSC builds the UDH
    /// itself; its reference is 16 bits, so room is left for the 7-octet
    /// form, which also covers SMSCs that use the 6-octet one.
    pub const fn air_udh_len(self) -> usize {
        match self {
            Concat::Udh8 => 6,
            Concat::Udh16 | Concat::Sar => 7,
        }
    }
}

/// Concatenation values carried in SAR TLVs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SarInfo {
    /// sar_msg_ref_num: the same for every part of one message.
    pub reference: u16,
    /// sar_total_segments.
    pub total: u8,
    /// sar_segment_seqnum, from 1.
    pub sequence: u8,
}

/// Concatenation values of a received part, whichever way they came.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConcatInfo {
    /// Where they came from; parts of one message all use the same.
    pub kind: Concat,
    /// Reference number (at most 255 for `Udh8`).
    pub reference: u16,
    /// Total parts.
    pub total: u8,
    /// This part's number, from 1.
    pub sequence: u8,
}

impl From<SarInfo> for ConcatInfo {
    fn from(sar: SarInfo) -> Self {
        ConcatInfo {
            kind: Concat::Sar,
            reference: sar.reference,
            total: sar.total,
            sequence: sar.sequence,
        }
    }
}

/// One submit_sm worth of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The whole UDH, UDHL octet included; `None` for SAR or a single part.
    pub udh: Option<Bytes>,
    /// This part's text in the coding; packed GSM after a UDH starts with
    /// the fill bits, so `udh + payload` is the short_message.
    pub payload: Bytes,
    /// SAR TLV values when `Concat::Sar` was asked for and there are
    /// several parts.
    pub sar: Option<SarInfo>,
}

impl Part {
    /// The short_message field: UDH (if any) followed by the payload.
    pub fn short_message(&self) -> Bytes {
        match &self.udh {
            None => self.payload.clone(),
            Some(udh) => {
                let mut out = BytesMut::with_capacity(udh.len() + self.payload.len());
                out.extend_from_slice(udh);
                out.extend_from_slice(&self.payload);
                out.freeze()
            }
        }
    }

    /// Whether esm_class must carry UDHI (0x40): short_message starts with
    /// a UDH.
    pub fn udhi(&self) -> bool {
        self.udh.is_some()
    }
}

/// Splits `text` into parts of `encoding`, tied by `concat` with
/// `reference` (only its low 8 bits for `Udh8`). A text that fits one
/// message yields one part without UDH or SAR.
pub fn split(
    text: &str,
    encoding: Encoding,
    concat: Concat,
    reference: u16,
    policy: Unrepresentable,
) -> Result<Vec<Part>, TextError> {
    let units = to_units(text, encoding, policy)?;
    let ranges = plan(&units, encoding, concat);
    let total = u8::try_from(ranges.len()).map_err(|_| TextError::TooManyParts {
        parts: ranges.len(),
    })?;
    if total == 1 {
        let payload = units_to_octets(&units, encoding, 0)?;
        return Ok(vec![Part {
            udh: None,
            payload: payload.into(),
            sar: None,
        }]);
    }
    let mut parts = Vec::with_capacity(ranges.len());
    for (sequence, range) in (1..=total).zip(ranges) {
        let udh = match concat {
            Concat::Udh8 => Some(Udh::concat8((reference & 0xFF) as u8, total, sequence)),
            Concat::Udh16 => Some(Udh::concat16(reference, total, sequence)),
            Concat::Sar => None,
        };
        let udh = udh.map(|udh| udh.encode()).transpose()?;
        let fill = match (&udh, encoding) {
            (Some(udh), Encoding::Gsm7Packed) => fill_bits_for_udh(udh.len()),
            _ => 0,
        };
        let payload = units_to_octets(units.get(range).unwrap_or_default(), encoding, fill)?;
        let sar = (concat == Concat::Sar).then_some(SarInfo {
            reference,
            total,
            sequence,
        });
        parts.push(Part {
            udh,
            payload: payload.into(),
            sar,
        });
    }
    Ok(parts)
}

/// The number of parts `split` would make, with characters the coding
/// lacks being an error. May exceed 255, which `split` refuses.
pub fn segments(text: &str, encoding: Encoding, concat: Concat) -> Result<usize, TextError> {
    segments_with(text, encoding, concat, Unrepresentable::Error)
}

/// How many parts `units` make: one without planning when they fit one
/// message, which is nearly every message.
pub(super) fn count_parts(units: &[u16], encoding: Encoding, concat: Concat) -> usize {
    if units.len() <= encoding.max_single() {
        return 1;
    }
    plan(units, encoding, concat).len()
}

/// `segments` under a given policy (with `Replace` the count is that of the
/// replaced text, e.g. € in Latin-1 becomes three octets "EUR").
pub fn segments_with(
    text: &str,
    encoding: Encoding,
    concat: Concat,
    policy: Unrepresentable,
) -> Result<usize, TextError> {
    let units = to_units(text, encoding, policy)?;
    Ok(count_parts(&units, encoding, concat))
}

/// Unit ranges of the parts. An empty text is one (empty) part.
fn plan(units: &[u16], encoding: Encoding, concat: Concat) -> Vec<Range<usize>> {
    if units.len() <= encoding.max_single() {
        return std::iter::once(0..units.len()).collect();
    }
    let max = encoding.max_part(concat).max(2);
    let fill = match encoding {
        Encoding::Gsm7Packed => usize::from(fill_bits_for_udh(concat.udh_len())),
        _ => 0,
    };
    let mut ranges = Vec::with_capacity(units.len() / max + 1);
    let mut start = 0;
    while start < units.len() {
        let mut end = (start + max).min(units.len());
        if end < units.len() {
            while end > start + 1 && !is_char_start(units, end, encoding) {
                end -= 1;
            }
            let octet_aligned = (fill + 7 * (end - start)) % 8 == 0;
            let looks_like_padding = matches!(units.get(end - 1), Some(0x00 | 0x0D));
            if encoding == Encoding::Gsm7Packed
                && octet_aligned
                && looks_like_padding
                && end > start + 1
            {
                // CR and '@' are single septets, so `end - 1` is a char start.
                end -= 1;
            }
        }
        ranges.push(start..end);
        start = end;
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gsm_plan(text: &str, encoding: Encoding, concat: Concat) -> Vec<Range<usize>> {
        let units = to_units(text, encoding, Unrepresentable::Error).unwrap_or_default();
        plan(&units, encoding, concat)
    }

    #[test]
    fn boundaries_of_gsm_parts() {
        let ranges = gsm_plan(&"a".repeat(161), Encoding::Gsm7Unpacked, Concat::Udh8);
        assert_eq!(ranges, [0..153, 153..161]);
        let ranges = gsm_plan(&"a".repeat(161), Encoding::Gsm7Unpacked, Concat::Udh16);
        assert_eq!(ranges, [0..152, 152..161]);
    }

    #[test]
    fn escape_is_not_cut() {
        let text = format!("{}€{}", "a".repeat(152), "b".repeat(10));
        let ranges = gsm_plan(&text, Encoding::Gsm7Unpacked, Concat::Udh8);
        // ESC would be septet 153 of part one; the whole € moves on.
        assert_eq!(ranges, [0..152, 152..164]);
    }

    #[test]
    fn packed_part_does_not_end_like_padding() {
        // With one fill bit, 153 septets end exactly on an octet boundary.
        let text = format!("{}@{}", "a".repeat(152), "b".repeat(10));
        let ranges = gsm_plan(&text, Encoding::Gsm7Packed, Concat::Udh8);
        assert_eq!(ranges, [0..152, 152..163]);
        // Unpacked has no such ambiguity.
        let ranges = gsm_plan(&text, Encoding::Gsm7Unpacked, Concat::Udh8);
        assert_eq!(ranges, [0..153, 153..163]);
    }

    #[test]
    fn too_many_parts_is_an_error() {
        let text = "a".repeat(153 * 255);
        assert_eq!(
            segments(&text, Encoding::Gsm7Unpacked, Concat::Udh8),
            Ok(255)
        );
        assert!(split(
            &text,
            Encoding::Gsm7Unpacked,
            Concat::Udh8,
            1,
            Unrepresentable::Error
        )
        .is_ok());
        let text = "a".repeat(153 * 255 + 1);
        assert_eq!(
            split(
                &text,
                Encoding::Gsm7Unpacked,
                Concat::Udh8,
                1,
                Unrepresentable::Error
            ),
            Err(TextError::TooManyParts { parts: 256 })
        );
    }
}
