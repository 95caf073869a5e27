//! The Lua scripts that make each operation atomic, and [`Apply`], the
//! builder of the generic one.
//!
//! Records are postcard, which Lua cannot read, so most operations read in
//! Rust, compute the new record and its queue entries, and hand them to
//! [`APPLY`] with a check that what they read is still there (the record's
//! exact octets, the id still in the ready queue). A check that fails
//! applies nothing and the caller reads again: optimistic concurrency, so
//! several Tern nodes may share a store without a lock server. Every key of
//! one call shares a hash tag (see `layout`), so a call is one slot on a
//! cluster. Scripts are sent with EVALSHA: the store loads every one of
//! them when it opens ([`scripts`]), so a step never pays the NOSCRIPT
//! answer and the SCRIPT LOAD and retry that redis-rs makes after it
//! (which a server that restarted, or a new cluster primary, still needs).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use redis::Script;

/// Checks and writes, in groups; each group's writes are applied only if
/// all its checks hold. Returns per group 1 (applied); or, when its first
/// check is a record's exact octets (`eq`) or generation (`tail`, see
/// `stored.rs`) and that failed, the record as it is now
/// (nil: gone), so the caller computes its change again without another
/// read; 2 when a check that a hash has no such field (`hnone`: no
/// receipt held under an upstream id) failed; else 0.
///
/// The call runs in three parts, which [`Apply`] builds:
///
/// 1. **The checks** of every group, in order: ARGV is the group count,
///    then per group its tag (its place, from 1), its check count and its
///    checks (kind, key index, value).
/// 2. **The writes, one command per run**: the run count, then per run
///    its command, its key's index ("0" for `MSET` and `PUBLISH`), the
///    arguments per entry and the entry count, then its entries, each the
///    tag of the group it belongs to and its arguments (for `MSET` a key
///    index and a value; for `PUBLISH` a channel and a message). An entry
///    of a group whose checks failed is left out; tag "0" is the call's
///    notices, always applied (see [`Group::notice`]).
/// 3. **The writes that read first** (`del`, `del_if`, `hdel_if`,
///    `srem_if_empty`), in order: their count, then per write its tag,
///    name, key index and two arguments ("" when unused).
///
/// So every group's checks see the store as it was before the call:
/// [`Apply::conflicts`] keeps out of a call a group whose checks read what
/// an earlier group of it writes, or that writes what an earlier group's
/// write of the third part reads, and such a group goes into the next
/// call. Within that rule the effect is the same as the groups applied
/// one after another.
///
/// Why this shape: every `redis.call` costs the server more than its
/// command (the call from Lua, its arguments made into objects, its reply
/// into Lua values, its entry in the append-only file), so a key's writes
/// of a call go as one command (`ZADD q s1 m1 s2 m2 …`, one `MSET` for
/// the records); and every check and op the script reads and dispatches
/// costs about half a microsecond of Lua, so the writes come already
/// grouped by key and command, and the script only filters each entry by
/// its group's outcome. A microbenchmark of a claim's and a receipt's
/// group shapes (session 19) gave 8.3 and 14 µs a group against 11.5 and
/// 22 µs with one parsed and dispatched op per write.
pub(super) static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(APPLY_LUA));

/// The text of [`APPLY`].
const APPLY_LUA: &str = r#"
-- Globals as locals: a global is a look-up in the globals' table each
-- time, a local a register.
local ARGV, KEYS, tonumber, unpack = ARGV, KEYS, tonumber, unpack
local call = redis.call
-- Each key by its index as written in ARGV, filled as indexes are first
-- met: a table look-up instead of a `tonumber` (a strtod) each time.
local key_at = setmetatable({}, {__index = function(t, s)
  local key = KEYS[tonumber(s)]
  t[s] = key
  return key
end})
local out, applied = {}, {['0'] = true}
local pos = 2
-- 1. The checks.
for g = 1, tonumber(ARGV[1]) do
  local tag, nchecks = ARGV[pos], tonumber(ARGV[pos + 1])
  pos = pos + 2
  local ok, stale, isheld = true, nil, false
  for c = 1, nchecks do
    local kind, key, value = ARGV[pos], key_at[ARGV[pos + 1]], ARGV[pos + 2]
    pos = pos + 3
    if ok then
      if kind == 'tail' then
        -- A record's generation (see `stored.rs`): its last 16 octets.
        -- The bounds as strings: a Lua number passed to a command is
        -- formatted anew on every call.
        ok = call('GETRANGE', key, '-16', '-1') == value
        if not ok and c == 1 then stale = {call('GET', key)} end
      elseif kind == 'eq' then
        local current = call('GET', key)
        ok = current == value
        if not ok and c == 1 then stale = {current} end
      elseif kind == 'zhas' then
        ok = call('ZSCORE', key, value) ~= false
      elseif kind == 'hnone' then
        ok = call('HEXISTS', key, value) == 0
        isheld = not ok
      else
        return redis.error_reply('unknown check ' .. kind)
      end
    end
  end
  applied[tag] = ok
  if ok then out[g] = 1 elseif stale then out[g] = stale[1] elseif isheld then out[g] = 2 else out[g] = 0 end
end
-- 2. The runs: a command's arguments in pieces of at most this many
-- (Lua's unpack is bounded by its C stack).
local PIECE = 1000
local nruns = tonumber(ARGV[pos])
pos = pos + 1
for _ = 1, nruns do
  local command, index, width, n = ARGV[pos], ARGV[pos + 1], tonumber(ARGV[pos + 2]), tonumber(ARGV[pos + 3])
  pos = pos + 4
  local args, k = {}, 0
  if command == 'PUBLISH' then
    for _ = 1, n do
      if applied[ARGV[pos]] then call('PUBLISH', ARGV[pos + 1], ARGV[pos + 2]) end
      pos = pos + 3
    end
  elseif command == 'MSET' then
    for _ = 1, n do
      if applied[ARGV[pos]] then
        args[k + 1], args[k + 2] = key_at[ARGV[pos + 1]], ARGV[pos + 2]
        k = k + 2
        if k >= PIECE then
          call('MSET', unpack(args, 1, k))
          k = 0
        end
      end
      pos = pos + 3
    end
    if k > 0 then call('MSET', unpack(args, 1, k)) end
  else
    local key = key_at[index]
    for _ = 1, n do
      if applied[ARGV[pos]] then
        args[k + 1] = ARGV[pos + 1]
        if width == 2 then args[k + 2] = ARGV[pos + 2] end
        k = k + width
        if k >= PIECE then
          call(command, key, unpack(args, 1, k))
          k = 0
        end
      end
      pos = pos + 1 + width
    end
    if k > 0 then call(command, key, unpack(args, 1, k)) end
  end
end
-- 3. The writes that read first.
local nlast = tonumber(ARGV[pos])
pos = pos + 1
for _ = 1, nlast do
  local tag, name, key, a, b = ARGV[pos], ARGV[pos + 1], key_at[ARGV[pos + 2]], ARGV[pos + 3], ARGV[pos + 4]
  pos = pos + 5
  if applied[tag] then
    if name == 'del' then
      call('DEL', key)
    elseif name == 'del_if' then
      if call('GET', key) == a then call('DEL', key) end
    elseif name == 'hdel_if' then
      if call('HGET', key, a) == b then call('HDEL', key, a) end
    elseif name == 'srem_if_empty' then
      -- b is the index of the sorted set whose emptiness decides.
      if call('ZCARD', key_at[b]) == 0 then call('SREM', key, a) end
    else
      return redis.error_reply('unknown op ' .. name)
    end
  end
end
return out
"#;

/// Accept with duplicate protection: the check and the write at once.
///
/// KEYS: record, the client's ready queue, expiry, dedup hash, all-ids
/// set, the shard's set of clients with a ready queue.
/// ARGV: dedup field, id (hex), now, window (ms), record, not-before,
/// expires ("" for none), message key prefix (the first message's record
/// key is that prefix and its hex id, same slot), client, "1" when the
/// id goes in the all-ids set (a cluster's only, see `Layout::all`).
/// Returns the id (hex) the client gets, and 1 if it is a duplicate.
pub(super) static ACCEPT_DEDUP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local entry = redis.call('HGET', KEYS[4], ARGV[1])
if entry then
  local first, at = string.match(entry, '^(%x+):(%d+)$')
  if first and tonumber(ARGV[3]) - tonumber(at) <= tonumber(ARGV[4])
     and redis.call('EXISTS', ARGV[8] .. first) == 1 then
    return {first, 1}
  end
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2] .. ':' .. ARGV[3])
redis.call('SET', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[6], ARGV[2])
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[3], ARGV[7], ARGV[2]) end
if ARGV[10] == '1' then redis.call('SADD', KEYS[5], ARGV[2]) end
redis.call('SADD', KEYS[6], ARGV[9])
return {ARGV[2], 0}
"#,
    )
});

/// The due heads of one shard's client ready queues, for a claim on a
/// cluster (one call per shard, all at once: a script there may touch one
/// slot only).
///
/// KEYS: the shard's set of clients with a ready queue. ARGV: the prefix
/// of a client's ready queue (the client's name completes it, same slot),
/// the claim's time, the most ids wanted from one client.
///
/// Returns {client, {id, id…}, client, …} for each client with ids due,
/// oldest first. A client whose queue is empty leaves the set here,
/// atomically with the look, so never one whose queue just got an id
/// (every write to a queue adds its client in the same script).
pub(super) static READY_HEADS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
for _, client in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local queue = ARGV[1] .. client
  local due = redis.call('ZRANGEBYSCORE', queue, '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
  if #due > 0 then
    out[#out + 1] = client
    out[#out + 1] = due
  elseif redis.call('ZCARD', queue) == 0 then
    redis.call('SREM', KEYS[1], client)
  end
end
return out
"#,
    )
});

/// A claim's look at every shard's client ready queues on one server, with
/// the records it will need: one round trip where [`READY_HEADS`] takes
/// one per shard and a read of the records another.
///
/// KEYS: every shard's set of clients with a ready queue. ARGV: the
/// claim's time, the most ids wanted from one client, the records wanted
/// in all, then per shard (in the order of KEYS) the prefix of its
/// clients' ready queues and of its message records (a member completes
/// either), then the ids to pass over: those of a claim whose write goes
/// beside this look, which would otherwise take the heads (and the
/// records read with them) if the look came first.
///
/// Returns {shard (from 0), client, {id, id…}, {record or nil…}} for each
/// client with ids due, oldest first. The records are those of the
/// client's first ids, as many as it gets when the records wanted are
/// shared out in turns, plus one: the claim shares them out in turns too,
/// from another client first, which moves each client's share by one at
/// most. Clients whose queue is empty leave their set, as in
/// [`READY_HEADS`].
pub(super) static READY_CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(READY_CLAIM_LUA));

/// The text of [`READY_CLAIM`].
const READY_CLAIM_LUA: &str = r#"
local now, each, wanted = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local skip, nskip = {}, 0
for a = 4 + 2 * #KEYS, #ARGV do
  skip[ARGV[a]] = true
  nskip = nskip + 1
end
local found = {}
for s = 1, #KEYS do
  local queues = ARGV[2 + 2 * s]
  for _, client in ipairs(redis.call('SMEMBERS', KEYS[s])) do
    local queue = queues .. client
    local due = redis.call('ZRANGEBYSCORE', queue, '-inf', now, 'LIMIT', 0, each + nskip)
    if nskip > 0 then
      local left = {}
      for _, m in ipairs(due) do
        if not skip[m] and #left < each then left[#left + 1] = m end
      end
      due = left
    end
    if #due > 0 then
      found[#found + 1] = {s, client, due, 0}
    elseif redis.call('ZCARD', queue) == 0 then
      redis.call('SREM', KEYS[s], client)
    end
  end
end
local left, took = wanted, true
while left > 0 and took do
  took = false
  for _, f in ipairs(found) do
    if left > 0 and f[4] < #f[3] then
      f[4] = f[4] + 1
      left = left - 1
      took = true
    end
  end
end
local out = {}
for _, f in ipairs(found) do
  local records = ARGV[3 + 2 * f[1]]
  local keys = {}
  for j = 1, math.min(f[4] + 1, #f[3]) do
    keys[j] = records .. f[3][j]
  end
  -- One MGET, not a GET each: every `redis.call` costs the server more
  -- than the read itself (see APPLY). At most `each` + 1 keys.
  out[#out + 1] = {f[1] - 1, f[2], f[3], redis.call('MGET', unpack(keys))}
end
return out
"#;

/// A record with the acknowledgements of its relayed receipts, in one read.
/// KEYS: record, acks. Returns {record or false, flat hash of acks}.
pub(super) static GET_RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local record = redis.call('GET', KEYS[1])
if not record then return {} end
return {record, redis.call('HGETALL', KEYS[2])}
"#,
    )
});

/// Up to ARGV[1] outbox items placed from ARGV[2] on (a ZRANGEBYSCORE
/// bound: "-inf", or "(seq" for after seq), oldest first, as
/// {seq, item, seq, item…}. A read from the start that finds nothing
/// takes the client (ARGV[3]) out of its shard's set of clients with an
/// outbox: a receipt adds its client there whether or not its write
/// applies (a notice, see [`Group::notice`]), so a write that did not
/// apply may have left one with nothing owed.
/// KEYS: items hash, order set, the shard's clients with an outbox.
///
/// The items are read with one HMGET, not one HGET each: every
/// `redis.call` costs the server more than the command's own work (see
/// [`APPLY`]), and a read of a hundred items was a hundred of them.
pub(super) static OUTBOX_READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
local seqs = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[2], '+inf', 'LIMIT', 0, tonumber(ARGV[1]))
if #seqs == 0 and ARGV[2] == '-inf' then redis.call('SREM', KEYS[3], ARGV[3]) end
-- In pieces of 1000: Lua's unpack is bounded by its C stack.
for from = 1, #seqs, 1000 do
  local to = math.min(from + 999, #seqs)
  local items = redis.call('HMGET', KEYS[1], unpack(seqs, from, to))
  for i = from, to do
    local item = items[i - from + 1]
    if item then
      out[#out + 1] = seqs[i]
      out[#out + 1] = item
    end
  end
end
return out
"#,
    )
});

/// Replaces the receipts held under one id if they are still what the
/// caller read (a compare-and-set: a receipt held or taken meanwhile makes
/// the caller read again). KEYS: held hash, held-by-time set. ARGV: field,
/// value read ('' for none), new value ('' to remove), its time.
/// Returns 1 if replaced.
pub(super) static SWAP_UNMATCHED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then current = '' end
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
end
return 1
"#,
    )
});

/// Removes and returns held receipts that arrived at or before ARGV[1], at
/// most ARGV[2]. KEYS: held hash, held-by-time set.
pub(super) static EXPIRE_UNMATCHED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local out = {}
local fields = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, field in ipairs(fields) do
  local receipt = redis.call('HGET', KEYS[1], field)
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
  if receipt then out[#out + 1] = receipt end
end
return {#fields, out}
"#,
    )
});

/// Holds an MO part. KEYS: group hash, due set. ARGV: header, deadline,
/// group member (in the due set), part number, part.
/// Returns {deadline, flat hash of the group}.
pub(super) static MO_HOLD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HEXISTS', KEYS[1], '0') == 0 then
  redis.call('HSET', KEYS[1], '0', ARGV[1], 'd', ARGV[2])
  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
return redis.call('HGETALL', KEYS[1])
"#,
    )
});

/// Releases an MO group into its client's outbox.
///
/// KEYS: group hash, due set, outbox items, outbox order, outbox clients.
/// ARGV: group member, client, count of part numbers seen, the numbers,
/// then (seq, item) pairs.
///
/// Returns 0 and does nothing if a part seen is gone (another release took
/// the group). Removes only the parts seen: a part that came after the read
/// stays, with the header, and goes out at the group's deadline.
pub(super) static MO_RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local seen = tonumber(ARGV[3])
if redis.call('HEXISTS', KEYS[1], '0') == 0 then return 0 end
for i = 1, seen do
  if redis.call('HEXISTS', KEYS[1], ARGV[3 + i]) == 0 then return 0 end
end
for i = 1, seen do redis.call('HDEL', KEYS[1], ARGV[3 + i]) end
if redis.call('HLEN', KEYS[1]) <= 2 then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], ARGV[1])
end
local pos = 4 + seen
while ARGV[pos] do
  redis.call('HSET', KEYS[3], ARGV[pos], ARGV[pos + 1])
  redis.call('ZADD', KEYS[4], ARGV[pos], ARGV[pos])
  redis.call('SADD', KEYS[5], ARGV[2])
  pos = pos + 2
end
return 1
"#,
    )
});

/// Every script here, loaded when the store opens (`RedisStore::connect`).
pub(super) fn scripts() -> [&'static Script; 10] {
    [
        &APPLY,
        &ACCEPT_DEDUP,
        &READY_HEADS,
        &READY_CLAIM,
        &GET_RECORD,
        &OUTBOX_READ,
        &SWAP_UNMATCHED,
        &EXPIRE_UNMATCHED,
        &MO_HOLD,
        &MO_RELEASE,
    ]
}

/// A write of a group: op name, key, arguments.
type Op = (&'static str, Vec<u8>, Vec<Vec<u8>>);

/// One group of [`APPLY`]: checks, then writes applied only if they hold.
#[derive(Debug, Default)]
pub(super) struct Group {
    checks: Vec<(&'static str, Vec<u8>, Vec<u8>)>,
    ops: Vec<Op>,
    /// Writes that only tell others where to look: see [`Group::notice`].
    notices: Vec<Op>,
}

impl Group {
    /// The record at `key` is still the one stored as `raw`: its
    /// generation's trailer is the same (see `stored.rs`), or, for a
    /// record written before generations, its octets are.
    pub(super) fn check_record(&mut self, key: Vec<u8>, raw: &[u8]) -> &mut Self {
        match super::stored::trailer(raw) {
            Some(trailer) => self.checks.push(("tail", key, trailer.to_vec())),
            None => self.checks.push(("eq", key, raw.to_vec())),
        }
        self
    }
    /// `member` is in the sorted set at `key`.
    pub(super) fn check_member(&mut self, key: Vec<u8>, member: &str) -> &mut Self {
        self.checks.push(("zhas", key, member.as_bytes().to_vec()));
        self
    }
    /// The hash at `key` has no `field` (no receipt held there): a write
    /// that must not pass receipts held before it.
    pub(super) fn check_absent(&mut self, key: Vec<u8>, field: Vec<u8>) -> &mut Self {
        self.checks.push(("hnone", key, field));
        self
    }
    fn op(&mut self, name: &'static str, key: Vec<u8>, args: Vec<Vec<u8>>) -> &mut Self {
        self.ops.push((name, key, args));
        self
    }
    pub(super) fn set(&mut self, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.op("set", key, vec![value])
    }
    pub(super) fn del(&mut self, key: Vec<u8>) -> &mut Self {
        self.op("del", key, vec![])
    }
    /// Deletes the string at `key` if it is exactly `value` (a lease its
    /// holder gives up), else leaves it.
    pub(super) fn del_if(&mut self, key: Vec<u8>, value: &str) -> &mut Self {
        self.op("del_if", key, vec![value.as_bytes().to_vec()])
    }
    pub(super) fn zadd(&mut self, key: Vec<u8>, score: u64, member: &str) -> &mut Self {
        self.op(
            "zadd",
            key,
            vec![score.to_string().into_bytes(), member.as_bytes().to_vec()],
        )
    }
    pub(super) fn zrem(&mut self, key: Vec<u8>, member: &str) -> &mut Self {
        self.op("zrem", key, vec![member.as_bytes().to_vec()])
    }
    pub(super) fn hset(&mut self, key: Vec<u8>, field: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.op("hset", key, vec![field, value])
    }
    pub(super) fn hdel(&mut self, key: Vec<u8>, field: Vec<u8>) -> &mut Self {
        self.op("hdel", key, vec![field])
    }
    /// Removes `field` only if it still holds `value`.
    pub(super) fn hdel_if(&mut self, key: Vec<u8>, field: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.op("hdel_if", key, vec![field, value])
    }
    /// Publishes `message` on `channel` (the outbox's news to the other
    /// nodes, in the write that stores it): a notice, so once per call and
    /// whether or not the group applies (see [`Group::notice`]); a node
    /// woken by news of nothing new reads and finds nothing.
    pub(super) fn publish(&mut self, channel: String, message: &str) -> &mut Self {
        self.notices.push((
            "publish",
            Vec::new(),
            vec![channel.into_bytes(), message.as_bytes().to_vec()],
        ));
        self
    }
    /// Adds `member` to the set at `key` whether or not the group's checks
    /// hold, once per call however many groups ask: for a set that only
    /// tells where to look (the clients with a ready queue, or with an
    /// outbox), whose readers skip a member with nothing there and take
    /// it out. One write per call instead of one per message: every check
    /// and op a group carries costs the server about a microsecond to
    /// read and run, skipped or not.
    pub(super) fn notice(&mut self, key: Vec<u8>, member: &str) -> &mut Self {
        self.notices
            .push(("sadd", key, vec![member.as_bytes().to_vec()]));
        self
    }
    /// The key of the group's first check or write: on a cluster, every
    /// key of a group lies in its slot.
    pub(super) fn first_key(&self) -> Option<&[u8]> {
        self.checks
            .first()
            .map(|(_, key, _)| key.as_slice())
            .or_else(|| {
                self.ops
                    .iter()
                    .chain(&self.notices)
                    .find(|(name, _, _)| *name != "publish")
                    .map(|(_, key, _)| key.as_slice())
            })
    }
    pub(super) fn sadd(&mut self, key: Vec<u8>, member: &str) -> &mut Self {
        self.op("sadd", key, vec![member.as_bytes().to_vec()])
    }
    pub(super) fn srem(&mut self, key: Vec<u8>, member: &str) -> &mut Self {
        self.op("srem", key, vec![member.as_bytes().to_vec()])
    }
    /// Removes `member` from the set at `key` if the sorted set `order` is
    /// empty once the call's runs are written (a write that reads first,
    /// see [`APPLY`]).
    pub(super) fn srem_if_empty(
        &mut self,
        key: Vec<u8>,
        member: &str,
        order: Vec<u8>,
    ) -> &mut Self {
        // The sorted set's index is filled in by `Apply::push`.
        self.op(
            "srem_if_empty",
            key,
            vec![member.as_bytes().to_vec(), order],
        )
    }
}

/// The request octets past which an [`Apply`] is full and the next group
/// goes into another call (see [`Apply::is_full`]).
///
/// Redis reads at most 16 KiB of a client's request per turn of its event
/// loop (`PROTO_IOBUF_LEN`), and under `appendfsync always` every turn
/// that wrote ends with an `fdatasync` of the append-only file. A gathered
/// call of 256 attempts (each group carries the record twice, the octets
/// it checks and the octets it sets: about 600 octets) took 5 to 12 turns
/// just to be read, each with its sync, while the node waited for it; on a
/// 4 × 100 bench a step took 30 to 45 ms from one script call to the next
/// (MONITOR) while the server turned every 5 ms. Calls of at most this
/// size, sent at once on the store's several connections, are each read
/// in one turn.
pub(super) const CALL_OCTETS: usize = 15 * 1024;

/// Octets of RESP framing per argument besides its own: `$`, the length
/// and two CRLFs.
const FRAMING: usize = 8;

/// One call of [`APPLY`]: its keys (each once), its groups' checks, its
/// writes gathered by key and command, and its writes that read first.
///
/// Arguments are kept end to end in buffers ([`Args`]) and go straight
/// into the command ([`Apply::command`]): a call carries about a thousand
/// of them, and holding each in a vector of its own, then copying them
/// all into a `ScriptInvocation`, which copies them again into its
/// command, cost two allocations and three copies per argument.
#[derive(Debug, Default)]
pub(super) struct Apply {
    pub(super) keys: Vec<Vec<u8>>,
    /// Each group's tag, check count and checks.
    checks: Args,
    groups: usize,
    /// The writes, one run per command on one key, in the order the runs
    /// were opened.
    runs: Vec<Run>,
    /// The run each key's writes go to now (by key index; `MSET` and
    /// `PUBLISH` under their own places, [`ANY_KEY`] and 0): another
    /// command on the key opens a new run after it, so a key's writes keep
    /// their order.
    open: HashMap<usize, usize, foldhash::fast::RandomState>,
    /// The writes that read first, [`LAST_ARGS`] arguments each.
    last: Args,
    /// The request's octets so far, framing included (about: the
    /// command's own header is left out).
    octets: usize,
    /// Each key's place in `keys`: a call gathers hundreds of groups of
    /// about five keys each, and a search of the list for every key made
    /// building one quadratic (about 800 000 comparisons for 256
    /// attempts). Hashed with foldhash: the keys are this store's own
    /// names, and SipHash (over all the daemon's maps) was 1.6 % of its
    /// samples on Redis in session 18's profile.
    places: HashMap<Vec<u8>, usize, foldhash::fast::RandomState>,
    /// The notices already in a run (see [`Group::notice`]).
    noticed: HashSet<Op, foldhash::fast::RandomState>,
    /// What the groups so far write (a key, or a key and a member or
    /// field), and what their writes of the third part read or write, by
    /// hash (see [`Apply::conflicts`]; a collision only starts a call
    /// early).
    written: HashSet<u64, foldhash::fast::RandomState>,
    read_last: HashSet<u64, foldhash::fast::RandomState>,
    hasher: foldhash::fast::RandomState,
}

/// The place of the one `MSET` run in [`Apply::open`]: the records' keys
/// go in its entries.
const ANY_KEY: usize = usize::MAX;

/// Arguments end to end in one buffer, each ending at its place in
/// `ends`.
#[derive(Debug, Default)]
struct Args {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Args {
    /// Adds `arg`; its octets on the wire.
    fn push(&mut self, arg: &[u8]) -> usize {
        self.bytes.extend_from_slice(arg);
        self.ends.push(self.bytes.len());
        arg.len() + FRAMING
    }

    /// Adds a number, written in place (a `to_string` each was an
    /// allocation per check and op); its octets on the wire.
    fn number(&mut self, n: usize) -> usize {
        use std::io::Write as _;
        let start = self.bytes.len();
        // Writing into a Vec cannot fail.
        let _ = write!(self.bytes, "{n}");
        self.ends.push(self.bytes.len());
        self.bytes.len() - start + FRAMING
    }

    fn each(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(self.ends.iter().copied())
            .map(|(start, end)| self.bytes.get(start..end).unwrap_or_default())
    }
}

/// One command of the second part of [`APPLY`].
#[derive(Debug)]
struct Run {
    command: &'static str,
    key: usize,
    /// Arguments per entry, the group's tag aside.
    width: usize,
    args: Args,
}

impl Run {
    /// Entries so far: each its group's tag and `width` arguments.
    fn entries(&self) -> usize {
        self.args.ends.len() / (1 + self.width)
    }
}

/// Arguments of each write of the third part of [`APPLY`]: its group's
/// tag, its name, its key's index and two arguments.
const LAST_ARGS: usize = 5;

/// Where a group's write goes in [`APPLY`]: a run of `command` taking
/// `width` arguments an entry, or the third part.
fn command_of(op: &str) -> Option<(&'static str, usize)> {
    Some(match op {
        "set" => ("MSET", 2),
        "zadd" => ("ZADD", 2),
        "zrem" => ("ZREM", 1),
        "hset" => ("HSET", 2),
        "hdel" => ("HDEL", 1),
        "sadd" => ("SADD", 1),
        "srem" => ("SREM", 1),
        "publish" => ("PUBLISH", 2),
        _ => return None,
    })
}

impl Apply {
    /// Adds `key` to the call's keys if it is new; its index in `KEYS`
    /// (from 1).
    fn key(&mut self, key: Vec<u8>) -> usize {
        let index = match self.places.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.keys.len();
                self.octets += key.len() + FRAMING;
                self.places.insert(key.clone(), i);
                self.keys.push(key);
                i
            }
        };
        index + 1
    }

    /// The hash that names a key, or one member or field of it, in
    /// [`Apply::conflicts`]'s sets.
    fn mark(&self, key: &[u8], member: Option<&[u8]>) -> u64 {
        use std::hash::BuildHasher as _;
        self.hasher.hash_one((key, member))
    }

    /// Whether `group` must go into another call: one of its checks reads
    /// what an earlier group of this call writes (its checks run before
    /// any write, see [`APPLY`]), or it writes what an earlier write of
    /// the third part reads or writes (those run after every run). Its
    /// notices are not looked at: they only tell where to look, and the
    /// writes they tell of are the group's own, looked at here.
    pub(super) fn conflicts(&self, group: &Group) -> bool {
        let checks = group.checks.iter().any(|(kind, key, value)| {
            self.written.contains(&self.mark(key, None))
                || (matches!(*kind, "zhas" | "hnone")
                    && self.written.contains(&self.mark(key, Some(value))))
        });
        checks
            || group
                .ops
                .iter()
                .any(|(_, key, _)| self.read_last.contains(&self.mark(key, None)))
    }

    /// Adds a group (after [`Apply::conflicts`], by the caller).
    pub(super) fn push(&mut self, group: Group) {
        if self.groups == 0 {
            // Room for a full call at once, not doubled up to it (each
            // doubling copies what is there).
            self.checks.bytes.reserve(CALL_OCTETS / 2);
            self.checks.ends.reserve(512);
        }
        self.groups += 1;
        let tag = self.groups;
        self.octets += self.checks.number(tag);
        self.octets += self.checks.number(group.checks.len());
        for (kind, key, value) in group.checks {
            let index = self.key(key);
            self.octets += self.checks.push(kind.as_bytes());
            self.octets += self.checks.number(index);
            self.octets += self.checks.push(&value);
        }
        for (name, key, args) in group.ops {
            self.write(tag, name, key, args);
        }
        for notice in group.notices {
            // Cloned only when new: a few a call.
            if !self.noticed.contains(&notice) {
                self.noticed.insert(notice.clone());
                let (name, key, args) = notice;
                self.write(0, name, key, args);
            }
        }
    }

    /// Adds the write `name` on `key` of the group tagged `tag`.
    fn write(&mut self, tag: usize, name: &'static str, key: Vec<u8>, mut args: Vec<Vec<u8>>) {
        let Some((command, width)) = command_of(name) else {
            // A write that reads first: the third part, in order.
            self.read_last.insert(self.mark(&key, None));
            self.written.insert(self.mark(&key, None));
            let order = match name {
                "srem_if_empty" => args.pop().map(|order| {
                    self.read_last.insert(self.mark(&order, None));
                    self.key(order)
                }),
                _ => None,
            };
            let index = self.key(key);
            self.octets += self.last.number(tag);
            self.octets += self.last.push(name.as_bytes());
            self.octets += self.last.number(index);
            let mut args = args.into_iter();
            self.octets += self.last.push(&args.next().unwrap_or_default());
            match order {
                Some(order) => self.octets += self.last.number(order),
                None => self.octets += self.last.push(&args.next().unwrap_or_default()),
            }
            return;
        };
        // What the write changes, for `conflicts`: a record whole, or a
        // member or field (a sorted set's member is its second argument).
        let mark = match command {
            "PUBLISH" => None,
            "MSET" => Some(self.mark(&key, None)),
            "ZADD" => Some(self.mark(&key, args.get(1).map(Vec::as_slice))),
            _ => Some(self.mark(&key, args.first().map(Vec::as_slice))),
        };
        if let Some(mark) = mark {
            self.written.insert(mark);
        }
        // A record's key goes in its entry; another command's is the run's.
        let (place, index, record) = match command {
            "MSET" => (ANY_KEY, 0, Some(self.key(key))),
            "PUBLISH" => (0, 0, None),
            _ => {
                let index = self.key(key);
                (index, index, None)
            }
        };
        let run = match self.open.get(&place) {
            Some(&at) if self.runs.get(at).is_some_and(|r| r.command == command) => at,
            _ => {
                self.runs.push(Run {
                    command,
                    key: index,
                    width,
                    args: Args::default(),
                });
                self.octets += command.len() + 3 * (FRAMING + 4);
                self.open.insert(place, self.runs.len() - 1);
                self.runs.len() - 1
            }
        };
        let Some(run) = self.runs.get_mut(run) else {
            return;
        };
        self.octets += run.args.number(tag);
        if let Some(index) = record {
            self.octets += run.args.number(index);
        }
        for arg in args {
            self.octets += run.args.push(&arg);
        }
    }

    /// Groups added.
    pub(super) fn len(&self) -> usize {
        self.groups
    }

    /// Whether the request has reached [`CALL_OCTETS`]: the next group
    /// goes into another call.
    pub(super) fn is_full(&self) -> bool {
        self.octets >= CALL_OCTETS
    }

    /// The request's octets so far (about).
    #[cfg(test)]
    pub(super) fn octets(&self) -> usize {
        self.octets
    }

    /// The call as one `EVALSHA` command, its arguments copied once.
    fn command(&self) -> redis::Cmd {
        let count = 8
            + self.keys.len()
            + self.checks.ends.len()
            + self
                .runs
                .iter()
                .map(|r| 4 + r.args.ends.len())
                .sum::<usize>()
            + self.last.ends.len();
        let mut cmd = redis::Cmd::with_capacity(count, self.octets + 64);
        cmd.arg("EVALSHA")
            .arg(APPLY.get_hash())
            .arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        cmd.arg(self.groups);
        for arg in self.checks.each() {
            cmd.arg(arg);
        }
        cmd.arg(self.runs.len());
        for run in &self.runs {
            cmd.arg(run.command)
                .arg(run.key)
                .arg(run.width)
                .arg(run.entries());
            for arg in run.args.each() {
                cmd.arg(arg);
            }
        }
        cmd.arg(self.last.ends.len() / LAST_ARGS);
        for arg in self.last.each() {
            cmd.arg(arg);
        }
        cmd
    }

    /// Runs the call on `conn`. The store loads [`APPLY`] when it opens;
    /// a server that lost it since (restarted, or a new primary) answers
    /// NOSCRIPT, and the script is loaded and the call sent again, as
    /// redis-rs's own invocation does.
    pub(super) async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &mut super::conn::AsyncConn,
    ) -> redis::RedisResult<T> {
        let cmd = self.command();
        match cmd.query_async(conn).await {
            Err(err) if err.kind() == redis::ErrorKind::NoScriptError => {
                APPLY.load_async(conn).await?;
                cmd.query_async(conn).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command [`Apply::command`] builds: the checks, then each
    /// key's writes as one run of entries tagged with their group, then
    /// the writes that read first, each argument as pushed.
    #[test]
    fn a_call_is_its_checks_then_its_runs_then_its_reading_writes() {
        let mut group = Group::default();
        group
            .check_record(b"p:{t1}:m:1".to_vec(), &[7; 30])
            .check_member(b"p:{t1}:q:acme".to_vec(), "0001")
            .zrem(b"p:{t1}:q:acme".to_vec(), "0001")
            .zadd(b"p:{t1}:flight".to_vec(), 3, "0001")
            .set(b"p:{t1}:m:1".to_vec(), vec![0, 1, 2, 255])
            .del(b"p:{t1}:a:1".to_vec())
            .publish("p:outbox".to_owned(), "acme");
        let (kind, _, fence) = group.checks[0].clone();
        let mut call = Apply::default();
        call.push(group);
        let mut expected = redis::cmd("EVALSHA");
        expected.arg(APPLY.get_hash()).arg(4);
        for key in ["p:{t1}:m:1", "p:{t1}:q:acme", "p:{t1}:flight", "p:{t1}:a:1"] {
            expected.arg(key);
        }
        // One group, tag 1, two checks.
        expected.arg(1).arg(1).arg(2);
        expected.arg(kind).arg(1).arg(fence);
        expected.arg("zhas").arg(2).arg("0001");
        // Four runs: command, key index, width, entries; then the entries.
        expected.arg(4);
        expected.arg("ZREM").arg(2).arg(1).arg(1).arg(1).arg("0001");
        expected
            .arg("ZADD")
            .arg(3)
            .arg(2)
            .arg(1)
            .arg(1)
            .arg(3)
            .arg("0001");
        expected
            .arg("MSET")
            .arg(0)
            .arg(2)
            .arg(1)
            .arg(1)
            .arg(1)
            .arg(&[0u8, 1, 2, 255][..]);
        // The notice: tag 0, always applied.
        expected
            .arg("PUBLISH")
            .arg(0)
            .arg(2)
            .arg(1)
            .arg(0)
            .arg("p:outbox")
            .arg("acme");
        // One write that reads first.
        expected.arg(1).arg(1).arg("del").arg(4).arg("").arg("");
        assert_eq!(
            String::from_utf8_lossy(&call.command().get_packed_command()),
            String::from_utf8_lossy(&expected.get_packed_command())
        );
    }

    /// A notice many groups of a call give (a client in the set of those
    /// with a ready queue, news of its outbox) goes once, whatever their
    /// checks: each entry a call carries costs the server to read and
    /// filter, and a gathered call holds hundreds of one client's
    /// messages.
    #[test]
    fn a_notice_goes_once_per_call() {
        let mut call = Apply::default();
        for n in 0..3u8 {
            let mut group = Group::default();
            group
                .check_record(format!("p:{{t1}}:m:{n}").into_bytes(), &[n; 30])
                .zadd(b"p:{t1}:q:acme".to_vec(), 3, &format!("000{n}"))
                .notice(b"p:{t1}:qclients".to_vec(), "acme")
                .publish("p:outbox".to_owned(), "acme");
            call.push(group);
        }
        let packed = call.command().get_packed_command();
        let said = |what: &[u8]| packed.windows(what.len()).filter(|w| *w == what).count();
        assert_eq!(said(b"SADD"), 1);
        assert_eq!(said(b"PUBLISH"), 1);
        assert_eq!(
            said(b"\r\nacme\r\n"),
            2,
            "the member and the news, once each"
        );
        assert_eq!(call.len(), 3);
        let entries: Vec<(&str, usize)> =
            call.runs.iter().map(|r| (r.command, r.entries())).collect();
        assert_eq!(entries, [("ZADD", 3), ("SADD", 1), ("PUBLISH", 1)]);
    }

    /// The checks of a call run before its writes, so a group whose check
    /// reads what an earlier group of the call writes waits for the next
    /// call (two receipts of one message gathered together: the second
    /// must see the first's record); a group on other records or members
    /// does not. And a group writing what an earlier write of the third
    /// part reads (an outbox emptied, then filled again) waits too.
    #[test]
    fn a_group_reading_what_the_call_writes_waits_for_the_next() {
        let record = |n: u8| format!("p:{{t1}}:m:{n}").into_bytes();
        let mut call = Apply::default();
        let mut first = Group::default();
        first
            .check_record(record(1), &[1; 30])
            .zrem(b"p:{t1}:q:acme".to_vec(), "0001")
            .set(record(1), vec![2; 30])
            .srem_if_empty(
                b"p:{t1}:oclients".to_vec(),
                "acme",
                b"p:{t1}:oq:acme".to_vec(),
            );
        call.push(first);
        let mut same = Group::default();
        same.check_record(record(1), &[1; 30]);
        assert!(call.conflicts(&same), "the record the first sets");
        let mut member = Group::default();
        member.check_member(b"p:{t1}:q:acme".to_vec(), "0001");
        assert!(call.conflicts(&member), "the member the first removes");
        let mut refill = Group::default();
        refill.zadd(b"p:{t1}:oq:acme".to_vec(), 9, "9");
        assert!(call.conflicts(&refill), "the order the first's srem reads");
        let mut other = Group::default();
        other
            .check_record(record(2), &[1; 30])
            .check_member(b"p:{t1}:q:acme".to_vec(), "0002")
            .zrem(b"p:{t1}:q:acme".to_vec(), "0002")
            .set(record(2), vec![2; 30]);
        assert!(!call.conflicts(&other));
    }
}
