//! Tern message ids.
//!
//! An id is 64 bits: the node id in the top 16, a counter in the low 48.
//! The counter never repeats on a node: blocks of it are reserved durably
//! before use (see `SledStore`), so a restart resumes past every id ever
//! handed out, and two nodes with different node ids never collide. Clients
//! see it as 16 hexadecimal digits, or, for clients configured with
//! `id_format = "decimal"`, as the 64-bit value in decimal (at most 20
//! digits): both fit SMPP's 65-octet message_id. [`IdFormat`] is the one
//! place that writes and reads those forms, so every PDU a client sees
//! (submit_sm_resp, data_sm_resp, receipts, query_sm_resp) agrees.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Bits of the counter part.
const COUNTER_BITS: u32 = 48;
/// The largest counter value.
pub const MAX_COUNTER: u64 = (1 << COUNTER_BITS) - 1;

/// A message id, unique across restarts and across nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TernId(u64);

impl TernId {
    /// The id of `counter` on `node`; `None` past the counter's range.
    pub const fn new(node: u16, counter: u64) -> Option<Self> {
        if counter > MAX_COUNTER {
            return None;
        }
        Some(Self(((node as u64) << COUNTER_BITS) | counter))
    }

    /// The node that made it.
    pub const fn node(self) -> u16 {
        (self.0 >> COUNTER_BITS) as u16
    }

    /// Its counter on that node.
    pub const fn counter(self) -> u64 {
        self.0 & MAX_COUNTER
    }

    /// The 64-bit value.
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// From the 64-bit value.
    pub const fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// Big-endian octets: ids sort by node, then by counter.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for TernId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A string that is not a Tern id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Tern message id: {0:?} (16 hexadecimal digits expected)")]
pub struct ParseIdError(pub String);

impl FromStr for TernId {
    type Err = ParseIdError;

    /// Reads the 16 hex digits clients were given, in either case.
    fn from_str(s: &str) -> Result<Self, ParseIdError> {
        if s.len() != 16 {
            return Err(ParseIdError(s.to_owned()));
        }
        u64::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| ParseIdError(s.to_owned()))
    }
}

/// How a client sees Tern ids: the form it was given is the form it gets
/// back (its receipts and query_sm answers use it too), and ids it sends
/// (query_sm, cancel_sm, replace_sm) are read in either form, its own first
/// (see [`IdFormat::resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum IdFormat {
    /// 16 hexadecimal digits, lower case, zero-padded: Tern's historical
    /// form, which clients already hold in their databases.
    #[default]
    Hex,
    /// The 64-bit value in decimal, unpadded (1 to 20 digits), for
    /// applications that keep message ids in numeric columns.
    Decimal,
}

/// Longest id text: `u64::MAX` in decimal.
const MAX_ID_TEXT: usize = 20;

impl IdFormat {
    /// Both forms, for listing.
    pub const ALL: [IdFormat; 2] = [IdFormat::Hex, IdFormat::Decimal];

    /// Its name in the config (`id_format`).
    pub const fn name(self) -> &'static str {
        match self {
            IdFormat::Hex => "hex",
            IdFormat::Decimal => "decimal",
        }
    }

    /// The form named `name` in the config; `None` for any other name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The other form.
    pub const fn other(self) -> Self {
        match self {
            IdFormat::Hex => IdFormat::Decimal,
            IdFormat::Decimal => IdFormat::Hex,
        }
    }

    /// `id` as this form's text, on the stack: a submit's answer costs no
    /// allocation for it.
    pub fn render(self, id: TernId) -> IdText {
        let mut text = IdText {
            bytes: [0; MAX_ID_TEXT],
            len: 0,
        };
        match self {
            IdFormat::Hex => {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                for (i, byte) in text.bytes[..16].iter_mut().enumerate() {
                    *byte = DIGITS[((id.0 >> (60 - 4 * i)) & 0xF) as usize];
                }
                text.len = 16;
            }
            IdFormat::Decimal => {
                // Digits from the right, then moved to the front.
                let mut value = id.0;
                let mut at = MAX_ID_TEXT;
                loop {
                    at -= 1;
                    text.bytes[at] = b'0' + (value % 10) as u8;
                    value /= 10;
                    if value == 0 {
                        break;
                    }
                }
                text.bytes.copy_within(at.., 0);
                text.len = (MAX_ID_TEXT - at) as u8;
            }
        }
        text
    }

    /// Reads `text` as this form exactly: hex is 16 hexadecimal digits in
    /// either case; decimal is 1 to 20 digits without sign or leading zero
    /// (as [`render`](Self::render) writes them), within 64 bits. `None`
    /// for anything else.
    pub fn parse(self, text: &str) -> Option<TernId> {
        match self {
            IdFormat::Hex => text.parse().ok(),
            IdFormat::Decimal => {
                // u64's own parse takes a sign and leading zeros: refused.
                let canonical = text.bytes().all(|b| b.is_ascii_digit())
                    && (text == "0" || !text.starts_with('0'));
                if !canonical {
                    return None;
                }
                text.parse::<u64>().ok().map(TernId)
            }
        }
    }

    /// The id a client using this form means by `text`: its own form
    /// first, the other if that does not parse or `known` says the id it
    /// names is not one of the client's messages. A string both forms read
    /// (16 digits 0-9 without a leading zero: hex whose digits are all
    /// decimal, and a decimal id of 16 digits) is thus decided by lookup,
    /// the client's own form winning when both name one of its messages.
    /// When neither is known, the id of the first form that parses (so the
    /// caller answers "unknown message" rather than "not an id"); `None`
    /// when neither parses.
    pub fn resolve(self, text: &str, mut known: impl FnMut(TernId) -> bool) -> Option<TernId> {
        let own = self.parse(text);
        if let Some(id) = own {
            if known(id) {
                return Some(id);
            }
        }
        match self.other().parse(text) {
            Some(id) if own != Some(id) && known(id) => Some(id),
            other => own.or(other),
        }
    }
}

impl fmt::Display for IdFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An id as a client sees it ([`IdFormat::render`]): at most 20 ASCII
/// characters, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdText {
    bytes: [u8; MAX_ID_TEXT],
    len: u8,
}

impl IdText {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits and a-f are ever written.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl std::ops::Deref for IdText {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for IdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_counter_round_trip_through_text() {
        let id = TernId::new(7, 123_456).expect("in range");
        assert_eq!((id.node(), id.counter()), (7, 123_456));
        assert_eq!(id.to_string(), "000700000001e240");
        assert_eq!("000700000001E240".parse::<TernId>(), Ok(id));
        assert!("1e240".parse::<TernId>().is_err());
        assert!(TernId::new(1, MAX_COUNTER + 1).is_none());
    }

    #[test]
    fn ids_of_different_nodes_differ() {
        assert_ne!(TernId::new(1, 5), TernId::new(2, 5));
    }

    #[test]
    fn hex_renders_as_display_does_and_parses_back() {
        for value in [0, 1, 0x42, 0x0007_0000_0001_e240, u64::MAX] {
            let id = TernId::from_u64(value);
            let text = IdFormat::Hex.render(id);
            assert_eq!(text.as_str(), id.to_string());
            assert_eq!(text.len(), 16);
            assert_eq!(IdFormat::Hex.parse(&text), Some(id));
        }
        assert_eq!(
            IdFormat::Hex.parse("FFFFFFFFFFFFFFFF"),
            Some(TernId(u64::MAX))
        );
        assert_eq!(IdFormat::Hex.parse("1e240"), None);
    }

    #[test]
    fn decimal_is_unpadded_at_most_twenty_digits_and_parses_back() {
        let max = IdFormat::Decimal.render(TernId::from_u64(u64::MAX));
        assert_eq!(max.as_str(), "18446744073709551615");
        assert_eq!(max.len(), 20);
        assert_eq!(IdFormat::Decimal.render(TernId::from_u64(0)).as_str(), "0");
        let id = TernId::new(7, 123_456).expect("in range");
        assert_eq!(IdFormat::Decimal.render(id).as_str(), "1970324837098048");
        for value in [0, 9, 10, 123_456, 1 << 48, u64::MAX - 1, u64::MAX] {
            let id = TernId::from_u64(value);
            let text = IdFormat::Decimal.render(id);
            assert_eq!(text.as_str(), value.to_string());
            assert_eq!(IdFormat::Decimal.parse(&text), Some(id));
        }
    }

    #[test]
    fn decimal_refuses_what_it_never_writes() {
        for bad in [
            "",
            "+5",
            "-5",
            "007",
            "12a",
            "18446744073709551616",
            " 5",
            "1.0",
        ] {
            assert_eq!(IdFormat::Decimal.parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_config_names_are_the_only_names() {
        assert_eq!(IdFormat::from_name("hex"), Some(IdFormat::Hex));
        assert_eq!(IdFormat::from_name("decimal"), Some(IdFormat::Decimal));
        assert_eq!(IdFormat::from_name("Decimal"), None);
        assert_eq!(IdFormat::default(), IdFormat::Hex);
    }

    #[test]
    fn an_id_in_the_other_form_is_resolved() {
        let id = TernId::new(1, 5).expect("in range");
        let hex = IdFormat::Hex.render(id);
        let dec = IdFormat::Decimal.render(id);
        let known = |candidate: TernId| candidate == id;
        for form in IdFormat::ALL {
            assert_eq!(form.resolve(&hex, known), Some(id), "{form}");
            assert_eq!(form.resolve(&dec, known), Some(id), "{form}");
        }
        // Neither form reads it: not an id.
        assert_eq!(IdFormat::Decimal.resolve("xyz", known), None);
        // Unknown in both forms: the own form's reading, for "unknown".
        let text = "1000000000000000";
        assert_eq!(
            IdFormat::Decimal.resolve(text, |_| false),
            IdFormat::Decimal.parse(text)
        );
        assert_eq!(
            IdFormat::Hex.resolve(text, |_| false),
            IdFormat::Hex.parse(text)
        );
    }

    #[test]
    fn sixteen_decimal_digits_are_decided_by_lookup() {
        // Both forms read it, as different ids.
        let text = "1970324837098048";
        let as_hex = IdFormat::Hex.parse(text).expect("hex");
        let as_dec = IdFormat::Decimal.parse(text).expect("decimal");
        assert_ne!(as_hex, as_dec);
        // Only one of them is the client's: that one, whichever its form.
        for form in IdFormat::ALL {
            assert_eq!(form.resolve(text, |id| id == as_hex), Some(as_hex));
            assert_eq!(form.resolve(text, |id| id == as_dec), Some(as_dec));
        }
        // Both are: the client's own form wins.
        assert_eq!(IdFormat::Hex.resolve(text, |_| true), Some(as_hex));
        assert_eq!(IdFormat::Decimal.resolve(text, |_| true), Some(as_dec));
        // A leading zero is never decimal: hex, without a lookup.
        assert_eq!(IdFormat::Decimal.parse("0001000000000005"), None);
    }
}
