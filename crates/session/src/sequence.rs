//! Sequence numbers (SMPP 3.4 §3.2: 0x00000001–0x7FFFFFFF, then wrap).
//!
//! One counter per session, never shared between connections: a peer
//! correlates responses per session, and a global counter would make one
//! busy session's wrap-around collide with another's in-flight requests.

use std::sync::atomic::{AtomicU32, Ordering};

/// The largest sequence number the specification allows.
pub const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

/// Hands out 1, 2, …, 0x7FFFFFFF, 1, … (never 0).
#[derive(Debug)]
pub struct SequenceNumbers {
    next: AtomicU32,
}

impl Default for SequenceNumbers {
    fn default() -> Self {
        Self::starting_at(1)
    }
}

impl SequenceNumbers {
    /// A counter whose first number is `first` (clamped into 1..=0x7FFFFFFF).
    pub fn starting_at(first: u32) -> Self {
        Self {
            next: AtomicU32::new(first.clamp(1, MAX_SEQUENCE)),
        }
    }

    /// The next number.
    pub fn next(&self) -> u32 {
        let mut current = self.next.load(Ordering::Relaxed);
        loop {
            let following = if current >= MAX_SEQUENCE {
                1
            } else {
                current + 1
            };
            match self.next.compare_exchange_weak(
                current,
                following,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return current,
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wraps_from_the_maximum_to_one() {
        let seq = SequenceNumbers::starting_at(MAX_SEQUENCE - 1);
        assert_eq!(seq.next(), MAX_SEQUENCE - 1);
        assert_eq!(seq.next(), MAX_SEQUENCE);
        assert_eq!(seq.next(), 1);
        assert_eq!(seq.next(), 2);
    }

    #[test]
    fn zero_is_never_handed_out() {
        assert_eq!(SequenceNumbers::starting_at(0).next(), 1);
    }

    proptest! {
        #[test]
        fn always_in_range_and_consecutive(start in any::<u32>(), n in 1usize..500) {
            let seq = SequenceNumbers::starting_at(start);
            let mut prev = seq.next();
            for _ in 0..n {
                let x = seq.next();
                prop_assert!((1..=MAX_SEQUENCE).contains(&x));
                prop_assert_eq!(x, if prev == MAX_SEQUENCE { 1 } else { prev + 1 });
                prev = x;
            }
        }
    }
}
