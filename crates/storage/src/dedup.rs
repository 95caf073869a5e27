//! Duplicate-protection keys.
//!
//! A client that resubmits after losing a `submit_sm_resp` must get the
//! first message's id, not a second message. Per account, the key is either
//! the client's own `user_message_reference`, or the source, the destination
//! and a hash of the text. Keys are stored and compared across restarts and
//! upgrades, so the hash is FNV-1a, fixed by its definition, not `std`'s
//! hasher, which may change between Rust versions.

use bytes::Bytes;

/// The key for a client's `user_message_reference`.
pub fn by_reference(user_message_reference: u16) -> Bytes {
    let mut key = Vec::with_capacity(3);
    key.push(b'R');
    key.extend_from_slice(&user_message_reference.to_be_bytes());
    Bytes::from(key)
}

/// The key for a message's content: source, destination and a 64-bit hash
/// of the text octets (with its data coding, so the same octets meaning
/// different texts differ).
pub fn by_content(source: &[u8], destination: &[u8], data_coding: u8, text: &[u8]) -> Bytes {
    let mut key = Vec::with_capacity(source.len() + destination.len() + 12);
    key.push(b'C');
    key.extend_from_slice(source);
    key.push(0);
    key.extend_from_slice(destination);
    key.push(0);
    key.push(data_coding);
    key.extend_from_slice(&fnv1a64(text).to_be_bytes());
    Bytes::from(key)
}

/// FNV-1a, 64 bits.
fn fnv1a64(data: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    data.iter()
        .fold(OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(PRIME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_its_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn content_keys_tell_apart_what_differs() {
        let base = by_content(b"Tern", b"34600000001", 0, b"hola");
        assert_eq!(base, by_content(b"Tern", b"34600000001", 0, b"hola"));
        assert_ne!(base, by_content(b"Tern", b"34600000002", 0, b"hola"));
        assert_ne!(base, by_content(b"Tern2", b"34600000001", 0, b"hola"));
        assert_ne!(base, by_content(b"Tern", b"34600000001", 8, b"hola"));
        assert_ne!(base, by_content(b"Tern", b"34600000001", 0, b"hola!"));
        // The separator keeps "ab"+"c" apart from "a"+"bc".
        assert_ne!(
            by_content(b"ab", b"c", 0, b""),
            by_content(b"a", b"bc", 0, b"")
        );
    }

    #[test]
    fn reference_and_content_keys_never_collide() {
        assert_ne!(by_reference(0x4300), by_content(b"", b"", 0, b""));
        assert_eq!(by_reference(42), Bytes::from_static(&[b'R', 0, 42]));
    }
}
