//! User data header (3GPP TS 23.040 §9.2.3.24): UDHL octet, then
//! information elements `IEI, IEDL, data`.
//!
//! Parsing trusts nothing: UDHL is checked against the data and every
//! element's length against the UDH, so malformed input is an error, never
//! a panic or an over-read. Unknown elements are kept as they are, so a
//! parsed UDH encodes back to the same octets.

use super::{Concat, ConcatInfo, TextError};
use bytes::{BufMut, Bytes, BytesMut};

/// IEI of concatenation with an 8-bit reference.
pub const IEI_CONCAT_8: u8 = 0x00;
/// IEI of concatenation with a 16-bit reference.
pub const IEI_CONCAT_16: u8 = 0x08;

/// A user data header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Udh {
    /// Elements in wire order.
    pub elements: Vec<InformationElement>,
}

/// One information element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InformationElement {
    /// The IEI.
    pub id: u8,
    /// Its data, without IEI and length.
    pub data: Bytes,
}

impl Udh {
    /// Parses the UDH at the start of `short_message` (sent with UDHI set)
    /// and returns it with the user data that follows.
    pub fn parse(short_message: &[u8]) -> Result<(Udh, &[u8]), TextError> {
        let (&udhl, after) = short_message.split_first().ok_or(TextError::MissingUdh)?;
        let udhl = usize::from(udhl);
        if udhl > after.len() {
            return Err(TextError::UdhLengthExceedsData {
                udhl,
                available: after.len(),
            });
        }
        let (mut body, rest) = after.split_at(udhl);
        let mut elements = Vec::new();
        while !body.is_empty() {
            let offset = udhl - body.len();
            let (iei, len, tail) = match body {
                [iei, len, tail @ ..] => (*iei, usize::from(*len), tail),
                [iei] => return Err(TextError::ElementTruncated { iei: *iei, offset }),
                [] => break,
            };
            if len > tail.len() {
                return Err(TextError::ElementTruncated { iei, offset });
            }
            let (data, next) = tail.split_at(len);
            elements.push(InformationElement {
                id: iei,
                data: Bytes::copy_from_slice(data),
            });
            body = next;
        }
        Ok((Udh { elements }, rest))
    }

    /// The concatenation header for part `sequence` of `total`, 8-bit reference.
    pub fn concat8(reference: u8, total: u8, sequence: u8) -> Udh {
        Udh {
            elements: vec![InformationElement {
                id: IEI_CONCAT_8,
                data: Bytes::copy_from_slice(&[reference, total, sequence]),
            }],
        }
    }

    /// The concatenation header for part `sequence` of `total`, 16-bit reference.
    pub fn concat16(reference: u16, total: u8, sequence: u8) -> Udh {
        let [high, low] = reference.to_be_bytes();
        Udh {
            elements: vec![InformationElement {
                id: IEI_CONCAT_16,
                data: Bytes::copy_from_slice(&[high, low, total, sequence]),
            }],
        }
    }

    /// Concatenation values from IEI 0x00 or 0x08, if present. As 23.040
    /// says for non-repeatable elements, the last one wins. The numbers are
    /// returned as found; `reassemble` checks them.
    pub fn concat(&self) -> Result<Option<ConcatInfo>, TextError> {
        let Some(element) = self
            .elements
            .iter()
            .rev()
            .find(|e| e.id == IEI_CONCAT_8 || e.id == IEI_CONCAT_16)
        else {
            return Ok(None);
        };
        let bad = |expected| TextError::BadConcatElement {
            iei: element.id,
            len: element.data.len(),
            expected,
        };
        let info = if element.id == IEI_CONCAT_8 {
            match *element.data {
                [reference, total, sequence] => ConcatInfo {
                    kind: Concat::Udh8,
                    reference: reference.into(),
                    total,
                    sequence,
                },
                _ => return Err(bad(3)),
            }
        } else {
            match *element.data {
                [high, low, total, sequence] => ConcatInfo {
                    kind: Concat::Udh16,
                    reference: u16::from_be_bytes([high, low]),
                    total,
                    sequence,
                },
                _ => return Err(bad(4)),
            }
        };
        Ok(Some(info))
    }

    /// Octets of the encoded UDH, UDHL included.
    pub fn encoded_len(&self) -> usize {
        1 + self.body_len()
    }

    fn body_len(&self) -> usize {
        self.elements.iter().map(|e| 2 + e.data.len()).sum()
    }

    /// Encodes UDHL and the elements.
    pub fn encode(&self) -> Result<Bytes, TextError> {
        let body_len = self.body_len();
        let udhl = u8::try_from(body_len).map_err(|_| TextError::UdhTooLong { len: body_len })?;
        let mut out = BytesMut::with_capacity(1 + body_len);
        out.put_u8(udhl);
        for element in &self.elements {
            // The body fits 255 octets, so every element's data does too.
            out.put_u8(element.id);
            out.put_u8((element.data.len() & 0xFF) as u8);
            out.extend_from_slice(&element.data);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_headers_on_the_wire() {
        assert_eq!(
            Udh::concat8(0xCC, 3, 1).encode().as_deref(),
            Ok(&[0x05, 0x00, 0x03, 0xCC, 0x03, 0x01][..])
        );
        assert_eq!(
            Udh::concat16(0x1234, 2, 2).encode().as_deref(),
            Ok(&[0x06, 0x08, 0x04, 0x12, 0x34, 0x02, 0x02][..])
        );
    }

    #[test]
    fn parse_returns_the_rest_and_concat_info() {
        let data = [0x06, 0x08, 0x04, 0xAB, 0xCD, 0x05, 0x04, b'h', b'i'];
        let (udh, rest) = Udh::parse(&data).unwrap_or_default();
        assert_eq!(rest, b"hi");
        assert_eq!(
            udh.concat(),
            Ok(Some(ConcatInfo {
                kind: Concat::Udh16,
                reference: 0xABCD,
                total: 5,
                sequence: 4
            }))
        );
        assert_eq!(udh.encode().as_deref(), Ok(&data[..7]));
    }

    #[test]
    fn unknown_elements_survive_and_last_concat_wins() {
        // Port addressing (0x05) then two concatenation elements.
        let data = [
            0x10, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0, 0x00, 0x03, 0x01, 0x02, 0x01, 0x00, 0x03,
            0x07, 0x02, 0x02,
        ];
        let (udh, rest) = Udh::parse(&data).unwrap_or_default();
        assert!(rest.is_empty());
        assert_eq!(udh.elements.len(), 3);
        assert_eq!(udh.concat().map(|c| c.map(|c| c.reference)), Ok(Some(7)));
        assert_eq!(udh.encode().as_deref(), Ok(&data[..]));
    }

    #[test]
    fn malformed_headers_are_errors() {
        assert_eq!(Udh::parse(&[]), Err(TextError::MissingUdh));
        assert_eq!(
            Udh::parse(&[0x05, 0x00, 0x03]),
            Err(TextError::UdhLengthExceedsData {
                udhl: 5,
                available: 2
            })
        );
        assert_eq!(
            Udh::parse(&[0x03, 0x00, 0x03, 0x01]),
            Err(TextError::ElementTruncated { iei: 0, offset: 0 })
        );
        assert_eq!(
            Udh::parse(&[0x03, 0x00, 0x00, 0x08]),
            Err(TextError::ElementTruncated { iei: 8, offset: 2 })
        );
        let (udh, _) = Udh::parse(&[0x04, 0x00, 0x02, 0x01, 0x02]).unwrap_or_default();
        assert_eq!(
            udh.concat(),
            Err(TextError::BadConcatElement {
                iei: 0,
                len: 2,
                expected: 3
            })
        );
    }

    #[test]
    fn oversized_headers_do_not_encode() {
        let element = InformationElement {
            id: 0x70,
            data: Bytes::from(vec![0; 256]),
        };
        let udh = Udh {
            elements: vec![element],
        };
        assert_eq!(udh.encode(), Err(TextError::UdhTooLong { len: 258 }));
        let element = InformationElement {
            id: 0x70,
            data: Bytes::from(vec![0; 200]),
        };
        let udh = Udh {
            elements: vec![element.clone(), element],
        };
        assert!(matches!(udh.encode(), Err(TextError::UdhTooLong { .. })));
    }
}
