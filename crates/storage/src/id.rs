//! Tern message ids.
//!
//! An id is 64 bits: the node id in the top 16, a counter in the low 48.
//! The counter never repeats on a node: blocks of it are reserved durably
//! before use (see `SledStore`), so a restart resumes past every id ever
//! handed out, and two nodes with different node ids never collide. Clients
//! see it as 16 hexadecimal digits, which fits every SMSC's message_id field.

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
}
