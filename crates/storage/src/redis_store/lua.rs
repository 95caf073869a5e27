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

/// Checks and writes, in groups; each group is applied only if all its
/// checks hold. Returns per group 1 (applied); or, when its first check
/// is a record's exact octets (`eq`) or generation (`tail`, see
/// `stored.rs`) and that failed, the record as it is now
/// (nil: gone), so the caller computes its change again without another
/// read; 2 when a check that a hash has no such field (`hnone`: no
/// receipt held under an upstream id) failed; else 0.
///
/// ARGV: group count, then per group its check count, its op count, the
/// checks (kind, key index, value) and the ops (name, key index, args).
/// The op `publish` (channel, message) names no key: its key index is 0.
/// When ARGV goes on after the groups, the rest is one more group, of
/// ops only, applied whatever the others found and not answered: the
/// call's notices (see [`Group::notice`]).
///
/// A call gathers the groups of hundreds of messages, and each
/// `redis.call` costs the server more CPU than the command itself (the
/// call from Lua, its arguments made into objects, its reply made into
/// Lua values, its own entry in the append-only file). So the writes to
/// a set, sorted set or hash, and the records' `SET`s, are held back and
/// sent as one command per key (`ZADD q s1 m1 s2 m2 …`, one `MSET` for
/// the records) when the script ends, when the held command reaches
/// `HELD_ARGS` arguments, or before anything reads or writes that key
/// otherwise (a check of a member held back, a `ZCARD`, a `DEL`, another
/// command on the key): the script's effect is the same as one command
/// per write, in the same atomic script, with a handful of commands per
/// call instead of five to twelve per message. An `sadd` of a member this
/// call already added (and did not remove since), or a `publish` of a
/// message this call already published, is skipped.
pub(super) static APPLY: LazyLock<Script> = LazyLock::new(|| Script::new(APPLY_LUA));

/// The text of [`APPLY`].
const APPLY_LUA: &str = r#"
-- Globals as locals: a global is a look-up in the globals' table each
-- time, a local a register; every check and op reads ARGV three or four
-- times and calls redis.call. About a tenth of a gathered claim's and
-- receipt's server time (a microbenchmark of the group shapes).
local ARGV, KEYS, tonumber, unpack = ARGV, KEYS, tonumber, unpack
local call = redis.call
local arity = {set = 1, del = 0, zadd = 2, zrem = 1, hset = 2, hdel = 1,
               sadd = 1, srem = 1, hdel_if = 2, srem_if_empty = 2, publish = 2,
               del_if = 1}
local HELD_ARGS = 1000
local pos = 2
local out = {}
-- Each key by its index as written in ARGV: a table look-up per check and
-- op instead of a `tonumber` (a strtod) and an index; filled as indexes
-- are first met (made whole up front, it formatted a number per key).
local key_at = setmetatable({}, {__index = function(t, s)
  local key = KEYS[tonumber(s)]
  t[s] = key
  return key
end})
-- What this call has already added to each set, and published on each
-- channel (see above): tables of tables, so no string is made to name a
-- member (every string made in Lua is hashed whole).
local done, published = {}, {}
local function within(t, k)
  local inner = t[k]
  if not inner then
    inner = {}
    t[k] = inner
  end
  return inner
end
-- Writes held back, per key: {command, argument count, arguments,
-- members or fields named}; `order` lists the keys as first held.
local held, order = {}, {}
-- Records' SETs held back as one MSET.
local mset, msetn, msetkeys = {}, 0, {}
local function flushm()
  if msetn > 0 then
    call('MSET', unpack(mset, 1, msetn))
    mset, msetn, msetkeys = {}, 0, {}
  end
end
local function flush(key)
  local h = held[key]
  if h then
    held[key] = nil
    call(h[1], key, unpack(h[3], 1, h[2]))
  end
end
-- Before a read of `key` (of its `member` only, when given) or a write
-- not held back: what is held back there and could change it goes first.
local function touch(key, member)
  local h = held[key]
  if h and (member == nil or h[4][member]) then flush(key) end
  if msetkeys[key] then flushm() end
end
-- Holds back `command key a [b]`; `named` is the member or field written.
local function hold(command, key, named, a, b)
  local h = held[key]
  if h and h[1] ~= command then
    flush(key)
    h = nil
  end
  if msetkeys[key] then flushm() end
  if not h then
    h = {command, 0, {}, {}}
    held[key] = h
    order[#order + 1] = key
  end
  local args, n = h[3], h[2] + 1
  args[n] = a
  if b ~= nil then
    n = n + 1
    args[n] = b
  end
  h[2] = n
  h[4][named] = true
  if n >= HELD_ARGS then flush(key) end
end
local ngroups, g = tonumber(ARGV[1]), 0
while ARGV[pos] do
  g = g + 1
  local nchecks, nops = tonumber(ARGV[pos]), tonumber(ARGV[pos + 1])
  pos = pos + 2
  local ok = true
  local stale = nil
  local isheld = false
  for c = 1, nchecks do
    local kind, key, value = ARGV[pos], key_at[ARGV[pos + 1]], ARGV[pos + 2]
    pos = pos + 3
    if ok then
      if kind == 'eq' then
        touch(key)
        local current = call('GET', key)
        ok = current == value
        if not ok and c == 1 then stale = {current} end
      elseif kind == 'tail' then
        -- A record's generation (see `stored.rs`): its last 16 octets.
        touch(key)
        -- The bounds as strings: a Lua number passed to a command is
        -- formatted anew on every call.
        ok = call('GETRANGE', key, '-16', '-1') == value
        if not ok and c == 1 then stale = {call('GET', key)} end
      elseif kind == 'zhas' then
        touch(key, value)
        ok = call('ZSCORE', key, value) ~= false
      elseif kind == 'hnone' then
        touch(key, value)
        ok = call('HEXISTS', key, value) == 0
        isheld = not ok
      else
        return redis.error_reply('unknown check ' .. kind)
      end
    end
  end
  for _ = 1, nops do
    local name, key = ARGV[pos], key_at[ARGV[pos + 1]]
    local a, b = ARGV[pos + 2], ARGV[pos + 3]
    local n = arity[name]
    if n == nil then
      return redis.error_reply('unknown op ' .. name)
    end
    pos = pos + 2 + n
    if ok then
      if name == 'set' then
        if held[key] then flush(key) end
        mset[msetn + 1] = key
        mset[msetn + 2] = a
        msetn = msetn + 2
        msetkeys[key] = true
        if msetn >= HELD_ARGS then flushm() end
      elseif name == 'del' then
        touch(key)
        call('DEL', key)
        done = {}
      elseif name == 'zadd' then hold('ZADD', key, b, a, b)
      elseif name == 'zrem' then hold('ZREM', key, a, a)
      elseif name == 'hset' then hold('HSET', key, a, a, b)
      elseif name == 'hdel' then hold('HDEL', key, a, a)
      elseif name == 'sadd' then
        local added = within(done, key)
        if not added[a] then
          hold('SADD', key, a, a)
          added[a] = true
        end
      elseif name == 'srem' then
        hold('SREM', key, a, a)
        within(done, key)[a] = nil
      elseif name == 'del_if' then
        -- A string (a lease): not a set, so `done` stays as it is.
        touch(key)
        if call('GET', key) == a then call('DEL', key) end
      elseif name == 'hdel_if' then
        touch(key, a)
        if call('HGET', key, a) == b then hold('HDEL', key, a, a) end
      elseif name == 'srem_if_empty' then
        -- b is the index of the sorted set whose emptiness decides.
        local decides = key_at[b]
        touch(decides)
        if call('ZCARD', decides) == 0 then
          hold('SREM', key, a, a)
          within(done, key)[a] = nil
        end
      elseif name == 'publish' then
        local sent = within(published, a)
        if not sent[b] then
          call('PUBLISH', a, b)
          sent[b] = true
        end
      end
    end
  end
  if g > ngroups then
    -- The notices: answered by nothing.
  elseif ok then out[g] = 1 elseif stale then out[g] = stale[1] elseif isheld then out[g] = 2 else out[g] = 0 end
end
for _, key in ipairs(order) do flush(key) end
flushm()
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
    /// empty (after this group's earlier ops).
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

/// One call of [`APPLY`]: its keys (each once) and arguments.
///
/// The arguments are kept end to end in one buffer (`args`, each ending
/// at its place in `ends`) and go straight into the command
/// ([`Apply::command`]): a call carries about a thousand of them, and
/// holding each in a vector of its own, then copying them all into a
/// `ScriptInvocation`, which copies them again into its command, cost
/// two allocations and three copies per argument.
#[derive(Debug, Default)]
pub(super) struct Apply {
    pub(super) keys: Vec<Vec<u8>>,
    args: Vec<u8>,
    ends: Vec<usize>,
    groups: usize,
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
    /// The groups' notices (see [`Group::notice`]), each once, as
    /// (name, key index, arguments): sent after the groups, as one more
    /// group that [`APPLY`] applies whatever the others found.
    notices: Vec<Notice>,
    noticed: HashSet<Notice, foldhash::fast::RandomState>,
}

/// A notice as a call sends it: (name, key index, arguments).
type Notice = (&'static str, usize, Vec<Vec<u8>>);

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

    fn arg(&mut self, arg: &[u8]) {
        self.octets += arg.len() + FRAMING;
        self.args.extend_from_slice(arg);
        self.ends.push(self.args.len());
    }

    /// A number as an argument, written in place (a `to_string` each was
    /// an allocation per check and op).
    fn arg_number(&mut self, n: usize) {
        use std::io::Write as _;
        let start = self.args.len();
        // Writing into a Vec cannot fail.
        let _ = write!(self.args, "{n}");
        self.octets += self.args.len() - start + FRAMING;
        self.ends.push(self.args.len());
    }

    /// Adds a group.
    pub(super) fn push(&mut self, group: Group) {
        if self.groups == 0 {
            // Room for a full call at once, not doubled up to it (each
            // doubling copies what is there).
            self.args.reserve(CALL_OCTETS + 1024);
            self.ends.reserve(1024);
        }
        self.groups += 1;
        self.arg_number(group.checks.len());
        self.arg_number(group.ops.len());
        for (kind, key, value) in group.checks {
            let index = self.key(key);
            self.arg(kind.as_bytes());
            self.arg_number(index);
            self.arg(&value);
        }
        for (name, key, mut args) in group.ops {
            // `publish` names no key (index 0): a channel is no key.
            let index = if name == "publish" { 0 } else { self.key(key) };
            // The sorted set that decides, by its index.
            let order = match name {
                "srem_if_empty" => args.pop().map(|order| self.key(order)),
                _ => None,
            };
            self.arg(name.as_bytes());
            self.arg_number(index);
            for arg in args {
                self.arg(&arg);
            }
            if let Some(order) = order {
                self.arg_number(order);
            }
        }
        for (name, key, args) in group.notices {
            let index = if name == "publish" { 0 } else { self.key(key) };
            let notice = (name, index, args);
            if self.noticed.contains(&notice) {
                continue;
            }
            self.octets += name.len()
                + 2 * FRAMING
                + 4
                + notice.2.iter().map(|a| a.len() + FRAMING).sum::<usize>();
            self.noticed.insert(notice.clone());
            self.notices.push(notice);
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
        let noticed: usize = self.notices.iter().map(|(_, _, args)| 2 + args.len()).sum();
        let count = 6 + self.keys.len() + self.ends.len() + noticed;
        let mut cmd = redis::Cmd::with_capacity(count, self.octets + 64);
        cmd.arg("EVALSHA")
            .arg(APPLY.get_hash())
            .arg(self.keys.len());
        for key in &self.keys {
            cmd.arg(key.as_slice());
        }
        cmd.arg(self.groups);
        let mut start = 0;
        for &end in &self.ends {
            cmd.arg(self.args.get(start..end).unwrap_or_default());
            start = end;
        }
        if !self.notices.is_empty() {
            cmd.arg(0).arg(self.notices.len());
            for (name, index, args) in &self.notices {
                cmd.arg(*name).arg(*index);
                for arg in args {
                    cmd.arg(arg.as_slice());
                }
            }
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

    /// The command [`Apply::command`] builds is the one redis-rs's
    /// invocation of [`APPLY`] with the same keys and arguments sends,
    /// each argument as pushed.
    #[test]
    fn a_call_is_the_command_an_invocation_sends() {
        let mut group = Group::default();
        group
            .check_record(b"p:{t1}:m:1".to_vec(), &[7; 30])
            .check_member(b"p:{t1}:q:acme".to_vec(), "0001")
            .zrem(b"p:{t1}:q:acme".to_vec(), "0001")
            .zadd(b"p:{t1}:flight".to_vec(), 3, "0001")
            .set(b"p:{t1}:m:1".to_vec(), vec![0, 1, 2, 255])
            .publish("p:outbox".to_owned(), "acme");
        let mut call = Apply::default();
        call.push(group);
        // As redis-rs's `ScriptInvocation::eval_cmd` makes it.
        let mut expected = redis::cmd("EVALSHA");
        expected.arg(APPLY.get_hash()).arg(call.keys.len());
        for key in &call.keys {
            expected.arg(key.as_slice());
        }
        expected.arg(call.groups);
        let mut start = 0;
        for &end in &call.ends {
            expected.arg(&call.args[start..end]);
            start = end;
        }
        // Then the notices, as a group of ops only.
        expected
            .arg(0)
            .arg(1)
            .arg("publish")
            .arg(0)
            .arg("p:outbox")
            .arg("acme");
        assert_eq!(
            call.command().get_packed_command(),
            expected.get_packed_command()
        );
        assert_eq!(call.keys.len(), 3);
        assert_eq!(call.ends.len(), 2 + 3 * 2 + 3 + 4 + 3);
    }

    /// A notice many groups of a call give (a client in the set of those
    /// with a ready queue, news of its outbox) goes once, after the
    /// groups, whatever their checks: each check and op costs the server
    /// about a microsecond to read and run, skipped or not, and a gathered
    /// call holds hundreds of one client's messages.
    #[test]
    fn a_notice_goes_once_per_call_after_the_groups() {
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
        assert_eq!(said(b"sadd"), 1);
        assert_eq!(said(b"publish"), 1);
        assert_eq!(
            said(b"\r\nacme\r\n"),
            2,
            "the member and the news, once each"
        );
        // The groups' own arguments come first: 3 groups of a check and
        // an op; the notices after them.
        assert_eq!(call.len(), 3);
        assert_eq!(call.ends.len(), 3 * (2 + 3 + 4));
        assert!(packed.ends_with(b"$7\r\npublish\r\n$1\r\n0\r\n$8\r\np:outbox\r\n$4\r\nacme\r\n"));
    }
}
