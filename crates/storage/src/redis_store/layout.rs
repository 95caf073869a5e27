//! Key layout on Redis, chosen so that every atomic operation touches keys
//! of one hash slot (a Lua script may only do that on a cluster).
//!
//! Two families of hash tags, [`SHARDS`] of each:
//!
//! - `{tK}`, the *client shard* K = FNV-1a(client) mod [`SHARDS`]: every
//!   key about a client's messages. A message's record, its place in the
//!   ready, in-flight, expiry and retention queues, the client's
//!   duplicate-protection entries, its outbox, the acknowledgements of its
//!   relayed receipts and its held MO parts. So accepting, claiming,
//!   finishing, cancelling a message, storing a receipt *together with* the
//!   deliver_sm owed to the client, and releasing an MO group into the
//!   outbox are each one script on one slot. A client's outbox stays on one
//!   slot; clients spread over the shards.
//! - `{uJ}`, the *upstream shard* J = FNV-1a(upstream NUL normalised id)
//!   mod [`SHARDS`]: the upstream-id → Tern-id index and the receipts held
//!   until their message is known. A receipt names only the upstream and
//!   its id, so these are found without knowing the client.
//!
//! The shard of a message is part of its id: the counter of every id made
//! for shard K is K modulo [`SHARDS`] (see [`counter_for`]), so an
//! operation given only an id (finish, cancel, get) knows its slot.

use crate::id::TernId;

/// Tags of each family. Fixed forever for a store: it is part of every id.
pub const SHARDS: u64 = 16;

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike
/// `std`'s hasher, because shards are stored (in ids).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            // A NUL between parts: ("ab", "c") and ("a", "bc") differ.
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for &b in *part {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    hash
}

/// The client shard of `client`.
pub fn client_shard(client: &str) -> u64 {
    fnv1a(&[client.as_bytes()]) % SHARDS
}

/// The client shard a message id belongs to.
pub fn id_shard(id: TernId) -> u64 {
    id.counter() % SHARDS
}

/// The counter of the `n`th id of shard `shard` (`n` from 0).
pub fn counter_for(shard: u64, n: u64) -> Option<u64> {
    n.checked_mul(SHARDS)?.checked_add(shard)
}

/// The upstream shard of an upstream id in normal form.
pub fn upstream_shard(upstream: &str, form: &str) -> u64 {
    fnv1a(&[upstream.as_bytes(), form.as_bytes()]) % SHARDS
}

/// The field naming an upstream id in the upstream shard's hashes.
pub fn upstream_field(upstream: &str, form: &str) -> Vec<u8> {
    let mut f = Vec::with_capacity(upstream.len() + form.len() + 1);
    f.extend_from_slice(upstream.as_bytes());
    f.push(0);
    f.extend_from_slice(form.as_bytes());
    f
}

/// The key names of one store (one prefix).
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
    /// `prefix:{tK}` for each client shard K, then `prefix:{uJ}` for each
    /// upstream shard J: made once, since a message's steps name a dozen
    /// keys each (formatting each afresh was 3 % of the daemon's CPU on
    /// a 4 × 100 bench).
    heads: Vec<Vec<u8>>,
}

impl Layout {
    /// Keys under `prefix`, which must not hold `{` or `}` (it would
    /// become the hash tag).
    pub fn new(prefix: &str) -> Option<Self> {
        if prefix.contains(['{', '}']) {
            return None;
        }
        let heads = ['t', 'u']
            .iter()
            .flat_map(|family| {
                (0..SHARDS).map(move |shard| format!("{prefix}:{{{family}{shard}}}").into_bytes())
            })
            .collect();
        Some(Self {
            prefix: prefix.to_owned(),
            heads,
        })
    }

    fn key(&self, family: char, shard: u64, rest: &[&[u8]]) -> Vec<u8> {
        let at = match family {
            'u' => SHARDS + shard,
            _ => shard,
        };
        let head = usize::try_from(at)
            .ok()
            .filter(|_| shard < SHARDS)
            .and_then(|at| self.heads.get(at));
        let Some(head) = head else {
            // A shard out of range (never made here): named as before.
            return self.named(family, shard, rest);
        };
        let len = head.len() + rest.iter().map(|p| p.len() + 1).sum::<usize>();
        let mut k = Vec::with_capacity(len);
        k.extend_from_slice(head);
        for part in rest {
            k.push(b':');
            k.extend_from_slice(part);
        }
        k
    }

    /// [`Layout::key`] formatted afresh.
    fn named(&self, family: char, shard: u64, rest: &[&[u8]]) -> Vec<u8> {
        let mut k = format!("{}:{{{family}{shard}}}", self.prefix).into_bytes();
        for part in rest {
            k.push(b':');
            k.extend_from_slice(part);
        }
        k
    }

    fn t(&self, shard: u64, rest: &[&[u8]]) -> Vec<u8> {
        self.key('t', shard, rest)
    }

    /// STRING: a message's record (postcard, as the sled backend writes it).
    pub fn message(&self, id: TernId) -> Vec<u8> {
        self.t(id_shard(id), &[b"m", member(id).as_bytes()])
    }

    /// What [`Layout::message`] puts before the id of a message of
    /// `shard`, for a script that reads records of ids it found there.
    pub fn message_prefix(&self, shard: u64) -> Vec<u8> {
        let mut k = self.t(shard, &[b"m"]);
        k.push(b':');
        k
    }

    /// HASH outbox seq → acknowledged at (ms): the client took the receipt
    /// queued there for this message.
    pub fn acks(&self, id: TernId) -> Vec<u8> {
        self.t(id_shard(id), &[b"a", member(id).as_bytes()])
    }

    /// ZSET of ids by not-before time: one client's ready queue. The claim
    /// takes from the clients' queues in turn, so one client's backlog
    /// never holds another's new messages back.
    pub fn ready(&self, client: &str) -> Vec<u8> {
        self.t(client_shard(client), &[b"q", client.as_bytes()])
    }

    /// What [`Layout::ready`] puts before the client's name, for a script
    /// that names a queue from [`Layout::ready_clients`].
    pub fn ready_prefix(&self, shard: u64) -> Vec<u8> {
        let mut k = self.t(shard, &[b"q"]);
        k.push(b':');
        k
    }

    /// SET of the clients of a shard whose ready queue may hold ids: every
    /// write to a ready queue adds its client, and the claim removes a
    /// client whose queue it finds empty (in one script, so never one that
    /// just got an id).
    pub fn ready_clients(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"qclients"])
    }

    /// ZSET of ids by not-before time: the one ready queue of a shard over
    /// all its clients, in stores written before the per-client queues;
    /// its ids move to their clients' queues when a node recovers.
    pub fn legacy_ready(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"ready"])
    }

    /// ZSET of ids claimed for sending, scored by the claiming node.
    pub fn in_flight(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"flight"])
    }

    /// ZSET of ids by validity end.
    pub fn expiry(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"expiry"])
    }

    /// ZSET of final ids by when they ended.
    pub fn retention(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"retention"])
    }

    /// SET of every id with a record, on a cluster only: lets `verify`
    /// walk a shard without SCAN, which a cluster answers per node. One
    /// server is walked with SCAN instead, which saves each accept a write
    /// (and each purge another) for a walk that only tests make.
    pub fn all(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"all"])
    }

    /// HASH client NUL key → "<id hex>:<accepted ms>": duplicate protection.
    pub fn dedup(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"dedup"])
    }

    /// STRING counter: blocks of ids reserved by `node` in a shard.
    pub fn id_counter(&self, shard: u64, node: u16) -> Vec<u8> {
        self.t(shard, &[b"ids", node.to_string().as_bytes()])
    }

    /// HASH seq → outbox item of a client.
    pub fn outbox(&self, client: &str) -> Vec<u8> {
        self.t(client_shard(client), &[b"o", client.as_bytes()])
    }

    /// ZSET of a client's outbox seqs, in order.
    pub fn outbox_order(&self, client: &str) -> Vec<u8> {
        self.t(client_shard(client), &[b"oq", client.as_bytes()])
    }

    /// STRING counter of a client's outbox places.
    pub fn outbox_seq(&self, client: &str) -> Vec<u8> {
        self.t(client_shard(client), &[b"oseq", client.as_bytes()])
    }

    /// SET of the shard's clients whose outbox is not empty.
    pub fn outbox_clients(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"clients"])
    }

    /// HASH of a held MO group: "0" its header, "d" its deadline, "<n>" part n.
    pub fn mo_group(&self, client: &str, group_member: &str) -> Vec<u8> {
        self.t(client_shard(client), &[b"mo", group_member.as_bytes()])
    }

    /// ZSET of held MO groups by deadline.
    pub fn mo_due(&self, shard: u64) -> Vec<u8> {
        self.t(shard, &[b"modue"])
    }

    /// STRING `"<node>:<token>"` with an expiry: who holds the lease `name`.
    /// Every lease shares the one tag `{l}`, so reading many (a node's view
    /// of which others are alive) is one MGET on one slot. A name may hold
    /// anything: the tag is the key's first `{…}`, which comes before it.
    pub fn lease(&self, name: &str) -> Vec<u8> {
        let mut k = format!("{}:{{l}}:lease:", self.prefix).into_bytes();
        k.extend_from_slice(name.as_bytes());
        k
    }

    /// The pub/sub channel naming a client whose outbox just got something.
    /// Channels are not keys (no slot), so it needs no tag.
    pub fn outbox_channel(&self) -> String {
        format!("{}:outbox", self.prefix)
    }

    /// HASH upstream NUL form → id (8 octets, big-endian).
    pub fn upstream_ids(&self, shard: u64) -> Vec<u8> {
        self.key('u', shard, &[b"up"])
    }

    /// HASH upstream NUL form → receipt that matched nothing yet.
    pub fn unmatched(&self, shard: u64) -> Vec<u8> {
        self.key('u', shard, &[b"held"])
    }

    /// ZSET of held receipts' fields by arrival.
    pub fn unmatched_by_time(&self, shard: u64) -> Vec<u8> {
        self.key('u', shard, &[b"heldq"])
    }
}

/// An id as a sorted-set member: 16 hex digits, so members of equal score
/// sort by id as sled's keys do.
pub fn member(id: TernId) -> String {
    // As `TernId`'s Display (`{:016x}`), without the formatter's growth
    // of an empty string: one allocation of its final size.
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let value = id.as_u64();
    (0..16)
        .rev()
        .map(|nibble| char::from(DIGITS[((value >> (nibble * 4)) & 0xf) as usize]))
        .collect()
}

/// The id of a sorted-set member.
pub fn parse_member(member: &[u8]) -> Option<TernId> {
    std::str::from_utf8(member).ok()?.parse().ok()
}

/// A hex string of octets, for binary keys in key names.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `key` as a pattern of `SCAN … MATCH` that matches only itself: the
/// prefix is the operator's, and may hold the pattern's `*`, `?`, `[` or
/// `\`.
pub fn glob_escaped(key: &[u8]) -> Vec<u8> {
    let mut pattern = Vec::with_capacity(key.len() + 4);
    for &b in key {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            pattern.push(b'\\');
        }
        pattern.push(b);
    }
    pattern
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_of_a_shard_carry_it() {
        for shard in 0..SHARDS {
            let counter = counter_for(shard, 12_345).expect("fits");
            let id = TernId::new(9, counter).expect("in range");
            assert_eq!(id_shard(id), shard);
        }
    }

    #[test]
    fn keys_of_one_shard_share_one_hash_tag() {
        let layout = Layout::new("tern").expect("valid");
        let client = "acme";
        let shard = client_shard(client);
        let id = TernId::new(1, counter_for(shard, 7).expect("fits")).expect("in range");
        let tag = format!("{{t{shard}}}");
        for key in [
            layout.message(id),
            layout.ready(client),
            layout.ready_clients(shard),
            layout.outbox(client),
            layout.acks(id),
            layout.dedup(shard),
        ] {
            let key = String::from_utf8(key).expect("text");
            assert!(key.starts_with(&format!("tern:{tag}:")), "{key}");
        }
        let mut prefixed = layout.message_prefix(shard);
        prefixed.extend_from_slice(member(id).as_bytes());
        assert_eq!(prefixed, layout.message(id));
        assert!(Layout::new("a{b").is_none());
    }

    #[test]
    fn keys_made_from_the_heads_are_the_keys_formatted() {
        let layout = Layout::new("tern").expect("valid");
        for shard in 0..SHARDS {
            for family in ['t', 'u'] {
                let rest: [&[u8]; 2] = [b"m", b"00010000000000ab"];
                assert_eq!(
                    layout.key(family, shard, &rest),
                    layout.named(family, shard, &rest)
                );
            }
        }
        assert_eq!(
            layout.upstream_ids(3),
            b"tern:{u3}:up".to_vec(),
            "an upstream shard's key"
        );
        assert_eq!(
            layout.key('t', SHARDS + 5, &[b"x"]),
            b"tern:{t21}:x".to_vec()
        );
    }

    #[test]
    fn a_member_is_the_ids_sixteen_hex_digits() {
        for value in [
            0,
            1,
            0xab,
            0x0001_0000_0000_00ab,
            u64::MAX,
            0x8000_0000_0000_0000,
        ] {
            let id = TernId::from_u64(value);
            assert_eq!(member(id), format!("{value:016x}"));
            assert_eq!(member(id), id.to_string());
            assert_eq!(parse_member(member(id).as_bytes()), Some(id));
        }
    }

    #[test]
    fn a_pattern_escapes_what_glob_would_read() {
        assert_eq!(glob_escaped(b"tern:{t3}:m:"), b"tern:{t3}:m:");
        assert_eq!(glob_escaped(b"a*b?[c]\\"), b"a\\*b\\?\\[c\\]\\\\");
    }

    #[test]
    fn leases_share_one_hash_tag() {
        let layout = Layout::new("tern").expect("valid");
        for name in ["node:1", "node:65535", "router", "a{b}c"] {
            let key = String::from_utf8(layout.lease(name)).expect("text");
            assert_eq!(key, format!("tern:{{l}}:lease:{name}"));
        }
        assert_eq!(layout.outbox_channel(), "tern:outbox");
    }

    #[test]
    fn upstream_and_form_are_kept_apart() {
        assert_ne!(fnv1a(&[b"ab", b"c"]), fnv1a(&[b"a", b"bc"]));
        assert_ne!(upstream_field("ab", "c"), upstream_field("a", "bc"));
        // The one-part hash is FNV-1a itself (published vector).
        assert_eq!(fnv1a(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
    }
}
