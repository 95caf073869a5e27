//! Key layout. Everything lives in one sled tree so that one operation is
//! one atomic batch: a record and its index and queue entries are written
//! together or not at all, whatever the moment of a crash.
//!
//! Every key starts with a one-octet prefix naming its kind; numbers are
//! big-endian so that sled's order is time order; strings are followed by a
//! NUL (they never contain one) so that one client's keys never run into
//! another's.

use crate::id::TernId;

/// `m` id → record.
pub const MESSAGE: u8 = b'm';
/// `M` id ÷ 16 → the records of those sixteen ids: how sled holds `m`
/// keys (`memtable/disk.rs`). Only the view's sled side sees it; every
/// reader and writer above it names records by their `m` keys.
pub const PACKED_MESSAGES: u8 = b'M';
/// `q` client NUL not_before id → (): the ready queues, one per client,
/// each oldest first. The claim takes from them in turn, so a client's new
/// message never waits behind another client's backlog.
pub const READY: u8 = b'q';
/// `Q`: the `q` keys in ranges, as [`PACKED_RETENTION`]. A backlog drains
/// in queue order, so a drain empties whole ranges: one sled write for
/// every 16 to 32 messages instead of one each.
pub const PACKED_READY: u8 = b'Q';
/// `r` not_before, id → (): the single ready queue of stores written
/// before the per-client queues; its entries move to [`READY`] at open.
pub const LEGACY_READY: u8 = b'r';
/// `f` id → (): claimed by a router task; back to ready at restart.
pub const IN_FLIGHT: u8 = b'f';
/// `x` expires_at, id → (): validity.
pub const EXPIRY: u8 = b'x';
/// `u` upstream NUL normalised-id → id.
pub const UPSTREAM_ID: u8 = b'u';
/// `d` client NUL dedup key → id.
pub const DEDUP: u8 = b'd';
/// `o` client NUL seq → outbox item.
pub const OUTBOX: u8 = b'o';
/// `h` upstream NUL normalised-id → unmatched receipt.
pub const UNMATCHED: u8 = b'h';
/// `H` received_at, upstream NUL normalised-id → (): the grace queue.
pub const UNMATCHED_BY_TIME: u8 = b'H';
/// `g` finished_at, id → (): retention.
pub const RETENTION: u8 = b'g';
/// `G` first rest → ranges of consecutive `g` keys: how sled holds them
/// (`memtable/disk.rs`). Only the view's sled side sees them.
pub const PACKED_RETENTION: u8 = b'G';
/// `K`: the `k` keys in ranges, as [`PACKED_RETENTION`].
pub const PACKED_RELAY_ACKS: u8 = b'K';
/// `U`: the `u` keys in ranges, as [`PACKED_RETENTION`].
pub const PACKED_UPSTREAM_IDS: u8 = b'U';
/// `z` name → value: the store's own bookkeeping.
pub const META: u8 = b'z';
/// `p` client NUL source NUL destination NUL scheme ref total seq → MO
/// part held for reassembly; seq 0 (never a part's number) holds the
/// group's header.
pub const MO_PART: u8 = b'p';
/// `P` deadline, group → (): held MO groups by the time they go out as
/// they are.
pub const MO_DUE: u8 = b'P';
/// `k` id seq → acknowledged_at: the client took the receipt queued at
/// outbox place `seq` for message `id`. Written once, never rewritten, so
/// it never races the record's own read-modify-write updates.
pub const RELAY_ACK: u8 = b'k';

/// `m` + id.
pub fn message(id: TernId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(MESSAGE);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// prefix + time + id: the shape of every time-ordered queue.
pub fn timed(prefix: u8, at_ms: u64, id: TernId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(prefix);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The id at the end of a `timed` or `message`/`in_flight` key.
pub fn trailing_id(key: &[u8]) -> Option<TernId> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(TernId::from_u64(u64::from_be_bytes(tail)))
}

/// The time after the prefix of a `timed` key.
pub fn time_of(key: &[u8]) -> Option<u64> {
    let bytes: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// `q` client NUL not_before id: a message's place in its client's ready
/// queue.
pub fn ready(client: &str, at_ms: u64, id: TernId) -> Vec<u8> {
    let mut k = owned_room(READY, client, 16);
    k.extend_from_slice(&at_ms.to_be_bytes());
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// The last key of one client's ready queue (`queue`, its prefix up to
/// and including the NUL) due at `until_ms`.
pub fn ready_until(queue: &[u8], until_ms: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(queue.len() + 16);
    k.extend_from_slice(queue);
    k.extend_from_slice(&until_ms.to_be_bytes());
    k.extend_from_slice(&u64::MAX.to_be_bytes());
    k
}

/// The owner part of an owned key: its prefix, the name and the NUL (for a
/// ready key, its client's queue).
pub fn owner_of(key: &[u8]) -> Option<&[u8]> {
    let nul = key.iter().skip(1).position(|&b| b == 0)? + 1;
    key.get(..=nul)
}

/// The due time of a ready key (the 8 octets before its id).
pub fn ready_time(key: &[u8]) -> Option<u64> {
    let end = key.len().checked_sub(8)?;
    let bytes: [u8; 8] = key.get(end.checked_sub(8)?..end)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// `f` + id.
pub fn in_flight(id: TernId) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(IN_FLIGHT);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// prefix + name + NUL: the start of one owner's keys.
pub fn owned(prefix: u8, owner: &str) -> Vec<u8> {
    owned_room(prefix, owner, 0)
}

/// [`owned`] with room for `extra` more octets, so a key built on it is
/// allocated once (ready, outbox and upstream-id keys are built for every
/// message).
fn owned_room(prefix: u8, owner: &str, extra: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + owner.len() + extra);
    k.push(prefix);
    k.extend_from_slice(owner.as_bytes());
    k.push(0);
    k
}

/// prefix + name + NUL + rest.
pub fn owned_with(prefix: u8, owner: &str, rest: &[u8]) -> Vec<u8> {
    let mut k = owned_room(prefix, owner, rest.len());
    k.extend_from_slice(rest);
    k
}

/// `z` + name.
pub fn meta(name: &str) -> Vec<u8> {
    let mut k = vec![META];
    k.extend_from_slice(name.as_bytes());
    k
}

/// The last key with this prefix and a time not after `until`.
pub fn timed_until(prefix: u8, until_ms: u64) -> Vec<u8> {
    timed(prefix, until_ms, TernId::from_u64(u64::MAX))
}

/// `k` + id: the start of one message's relay acknowledgements.
pub fn relay_acks(id: TernId) -> Vec<u8> {
    let mut k = Vec::with_capacity(17);
    k.push(RELAY_ACK);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `k` + id + outbox seq.
pub fn relay_ack(id: TernId, seq: u64) -> Vec<u8> {
    let mut k = relay_acks(id);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys built for every message are allocated once, at their
    /// final size (they grew twice each before).
    #[test]
    fn per_message_keys_are_allocated_at_their_size() {
        let id = TernId::from_u64(42);
        let ready = ready("alpha", 7, id);
        assert_eq!((ready.len(), ready.capacity()), (7 + 16, 7 + 16));
        let outbox = owned_with(OUTBOX, "alpha", &9u64.to_be_bytes());
        assert_eq!(outbox.capacity(), outbox.len());
        let upstream = owned_with(UPSTREAM_ID, "simulator", b"1234567890");
        assert_eq!(upstream.capacity(), upstream.len());
    }
}
