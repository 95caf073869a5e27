//! Message ids in the shapes upstreams use, unique within one simulator run.
//!
//! Uniqueness comes from one counter per simulator; the shape from how the
//! counter is written. Telesign's 32 hex digits look random: the counter is
//! passed through a bijection of `u64` (multiplication by an odd constant,
//! then an exclusive-or with a per-run key), so the ids look scattered and
//! still never repeat.

use std::sync::atomic::{AtomicU64, Ordering};

/// How the simulator writes the message ids of its `submit_sm_resp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IdFormat {
    /// Decimal digits counting from 1 (`1`, `2`, …), as many SMSCs do.
    #[default]
    Decimal,
    /// Upper-case hex digits, counting from a per-run random base, so the
    /// ids have letters and Tern's matching must cope with their case.
    Hex,
    /// 32 lower-case hex digits that look random, like Telesign's reference
    /// ids.
    Hex32,
}

/// Multiplier of the bijection: odd, so invertible modulo 2^64 (the golden
/// ratio constant, which spreads consecutive counters well).
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// Hands out the ids of one simulator.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    format: IdFormat,
    counter: AtomicU64,
    /// Random per run: the base of `Hex`, the first half and the key of `Hex32`.
    salt: u64,
}

impl IdGenerator {
    pub(crate) fn new(format: IdFormat) -> Self {
        Self {
            format,
            counter: AtomicU64::new(1),
            salt: rand::random(),
        }
    }

    /// The next id. Never repeats within this generator (the counter would
    /// need 2^64 submits to wrap).
    pub(crate) fn next(&self) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        match self.format {
            IdFormat::Decimal => n.to_string(),
            // 32 bits of base leave 2^32 ids before the 16-digit width grows.
            IdFormat::Hex => format!("{:X}", (self.salt >> 32) + n),
            IdFormat::Hex32 => {
                let scattered = n.wrapping_mul(SPREAD) ^ self.salt;
                format!("{:016x}{scattered:016x}", self.salt.rotate_left(17))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn hex32_ids_are_32_hex_digits_and_distinct() {
        let ids = IdGenerator::new(IdFormat::Hex32);
        let seen: HashSet<String> = (0..10_000).map(|_| ids.next()).collect();
        assert_eq!(seen.len(), 10_000);
        assert!(seen
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
