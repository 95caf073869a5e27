//! The ready queues on Redis, one sorted set per client (`Layout::ready`),
//! and the claim that takes from them in turn: fair between clients,
//! oldest first within each (see `sled_store/ready.rs` for why).
//!
//! Each shard keeps the set of its clients whose queue may hold ids
//! (`Layout::ready_clients`); every write to a queue adds the client in
//! the same script, and the claim's look at the queues drops a client
//! whose queue is empty. On one server the look is one script over every
//! shard that also reads the records the claim needs
//! ([`lua::READY_CLAIM`]), and the claim's write one more: two round
//! trips a claim, however many shards and clients have messages due. A
//! full claim sends the next claim's look beside its write ([`KeptLook`]),
//! so while messages stay due each claim waits for one turn of the
//! server, not two.

use std::collections::{HashMap, HashSet, VecDeque};

use super::conn::STEP;
use super::layout::{client_shard, id_shard, member, parse_member, SHARDS};
use super::lua::{self, Apply, Group};
use super::{bounded, stored, RedisStore, Step, StoreError};
use crate::id::TernId;
use crate::record::{MessageRecord, State};

/// One claim script (per shard on a cluster), and per group the message
/// it claims (with its place in the fair order), or `None` for a stale
/// entry's removal. With the record, the octets the claim stores (kept
/// for the next step).
type ShardClaim = (Apply, Vec<Option<(usize, MessageRecord, Vec<u8>)>>);

/// [`lua::READY_CLAIM`]'s answer for one client: its shard, its name, its
/// due ids and the records of the first of them (`None`: no record).
type ClientHeads = (u64, String, Vec<Vec<u8>>, Vec<Option<Vec<u8>>>);

/// The clients' due ids, and the records read with them by id.
type Heads = (
    Vec<(String, VecDeque<TernId>)>,
    HashMap<TernId, Option<Vec<u8>>>,
);

/// Ids of the one legacy ready queue moved per script at recovery.
const LEGACY_BATCH: usize = 1_000;

/// How long a kept look serves (see [`KeptLook`]): a message that became
/// due or was queued after it waits at most this long for a fresh look.
const KEPT_LOOK_FOR: std::time::Duration = std::time::Duration::from_millis(200);

/// A look at the ready queues made beside a full claim's write, so the
/// next claim on one server starts from it and sends only its write: a
/// claim is then one turn of the server's event loop (its sync included)
/// instead of two in sequence, the look and the write. The look and the
/// write go at once on separate connections, so the look may see ids the
/// write was taking: those are left out of it ([`KeptLook::take`]). What
/// else it may miss or show stale (a message queued after it, one another
/// node claimed or a client cancelled since) the claim's write checks as
/// for any look: the record's exact octets and its place in the queue.
/// Only a look that found something, younger than [`KEPT_LOOK_FOR`],
/// serves; otherwise the claim looks itself.
#[derive(Debug)]
pub(super) struct KeptLook {
    made: std::time::Instant,
    /// The per-client limit it was made for.
    look_at: usize,
    heads: Heads,
    /// The ids the claim it was made beside wrote (claimed or dropped).
    written: HashSet<TernId>,
}

impl KeptLook {
    /// The heads for a claim looking at up to `look_at` ids per client,
    /// without the ids of the claim before; `None` when stale, made for
    /// fewer ids per client, or empty.
    fn take(self, look_at: usize) -> Option<Heads> {
        if self.made.elapsed() > KEPT_LOOK_FOR || self.look_at < look_at {
            return None;
        }
        let (mut queues, mut found) = self.heads;
        for (_, ids) in &mut queues {
            ids.retain(|id| !self.written.contains(id));
        }
        queues.retain(|(_, ids)| !ids.is_empty());
        found.retain(|id, _| !self.written.contains(id));
        (!queues.is_empty()).then_some((queues, found))
    }
}

impl RedisStore {
    /// The writes that put id `m` in `client`'s ready queue at `at`, and
    /// `client` in its shard's set of clients with a queue.
    pub(super) fn enqueue(&self, group: &mut Group, client: &str, at: u64, m: &str) {
        group
            .zadd(self.layout.ready(client), at, m)
            .notice(self.layout.ready_clients(client_shard(client)), client);
    }

    /// Claims up to `limit` messages due at `now`, marking them in flight
    /// for this node: the clients with messages due in turn (one each
    /// round, starting one client further round the ring each claim),
    /// oldest first within each. A message changed meanwhile (cancelled,
    /// replaced, claimed by another node) is skipped.
    pub async fn claim_ready(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        let claim = self.claim_within(now_ms, limit, limit, |_| true);
        STEP.scope(Step::Claim, claim).await
    }

    /// [`RedisStore::claim_ready`], taking only the messages `keep`
    /// accepts; the others stay in the ready queue, untouched, for another
    /// node (one where their upstream is bound). Looks at up to four times
    /// `limit` due messages, so a queue whose head belongs elsewhere does
    /// not starve this node.
    pub async fn claim_ready_where<F>(
        &self,
        now_ms: u64,
        limit: usize,
        keep: F,
    ) -> Result<Vec<MessageRecord>, StoreError>
    where
        F: Fn(&MessageRecord) -> bool,
    {
        let claim = self.claim_within(now_ms, limit, limit.saturating_mul(4), keep);
        STEP.scope(Step::Claim, claim).await
    }

    /// The claim, its round trips counted as [`Step::Claim`]: on one
    /// server two (the look at every queue with the records it needs, then
    /// the claim's write); on a cluster the same steps, each one call per
    /// shard, all at once. The records it claimed are kept as stored (see
    /// `cache.rs`): this node's next steps on them need no read.
    async fn claim_within<F>(
        &self,
        now_ms: u64,
        limit: usize,
        look_at: usize,
        keep: F,
    ) -> Result<Vec<MessageRecord>, StoreError>
    where
        F: Fn(&MessageRecord) -> bool,
    {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let kept = self
            .kept_look
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .and_then(|kept| kept.take(look_at));
        let (queues, mut found) = match kept {
            Some(heads) => heads,
            None => {
                self.ready_heads(now_ms, look_at, limit, &HashSet::new())
                    .await?
            }
        };
        let order = self.fair_order(queues, look_at);
        // Calls of one shard each on a cluster (one script may touch one
        // slot only), each group claiming one message; a call that is
        // full (`Apply::is_full`) gives way to another, all sent at once.
        // The ids are distinct, so no group's checks read what another
        // group of its call writes (`Apply::conflicts`).
        let mut calls: Vec<ShardClaim> = Vec::new();
        let mut open: HashMap<u64, usize> = HashMap::new();
        let mut dropped = Vec::new();
        // Records not brought by the look, read in a round trip of their
        // own: each needs the member check (below).
        let mut read_later: HashSet<TernId> = HashSet::new();
        let mut kept = 0;
        for (at, (client, id)) in order.iter().enumerate() {
            if kept >= limit {
                break;
            }
            if !found.contains_key(id) {
                // Records the look did not bring (a cluster; ids beyond
                // the share of `limit` it read, which a `keep` refusing
                // some reaches): read those still wanted, one call per
                // shard at most.
                let wanted: Vec<TernId> = order[at..]
                    .iter()
                    .map(|(_, id)| *id)
                    .filter(|id| !found.contains_key(id))
                    .take(limit - kept)
                    .collect();
                read_later.extend(wanted.iter().copied());
                found.extend(self.read_raw(&wanted).await?);
            }
            let shard = id_shard(*id);
            let m = member(*id);
            let (call, candidates) =
                open_call(&mut calls, &mut open, if self.cluster { shard } else { 0 });
            let mut group = Group::default();
            let Some(raw) = found.remove(id).flatten() else {
                // An entry without a record: drop it.
                group.zrem(self.layout.ready(client), &m);
                call.push(group);
                candidates.push(None);
                dropped.push(*id);
                continue;
            };
            let mut record = stored::decode(&raw)?;
            if !keep(&record) {
                continue;
            }
            kept += 1;
            record.state = State::InFlight;
            record.updated_ms = now_ms;
            let stored = stored::encode_at(&record, stored::next(&raw))?;
            group.check_record(self.layout.message(*id), &raw);
            // A record the look brought was read in the script that found
            // its id in the queue, and every write that takes an id out of
            // a ready queue rewrites or deletes its record: so the record
            // fence alone shows the id is still there, and the member
            // check (a `ZSCORE`, 3.3 µs of the server's time a message in
            // session 18's profile) would only repeat it. A record read
            // in a round trip of its own (`read_raw`: always on a
            // cluster) may have been cancelled or claimed between the
            // look and that read, and its fence would pass it unchanged
            // since: without the member check `queued_and_mo.rs`
            // `claim_and_cancel_or_replace_never_both_get_a_message`
            // failed 8 runs of 8 on the cluster.
            if read_later.contains(id) {
                group.check_member(self.layout.ready(client), &m);
            }
            group
                .zrem(self.layout.ready(client), &m)
                .zadd(self.layout.in_flight(shard), u64::from(self.node), &m)
                .set(self.layout.message(*id), stored.clone());
            call.push(group);
            candidates.push(Some((at, record, stored)));
        }
        let writes = futures::future::try_join_all(calls.iter().map(|(call, _)| self.apply(call)));
        // A full claim leaves more due, probably: the next claim's look
        // goes beside this write (one server only, see `KeptLook`).
        let applied = if kept >= limit && !self.cluster {
            let written: HashSet<TernId> = calls
                .iter()
                .flat_map(|(_, candidates)| candidates.iter())
                .filter_map(|c| c.as_ref().map(|(_, record, _)| record.id))
                .chain(dropped)
                .collect();
            let (applied, next) =
                futures::future::join(writes, self.ready_heads(now_ms, look_at, limit, &written))
                    .await;
            // A failed look is made again by the next claim.
            *self.kept_look.lock().unwrap_or_else(|p| p.into_inner()) =
                next.ok().map(|heads| KeptLook {
                    made: std::time::Instant::now(),
                    look_at,
                    heads,
                    written,
                });
            applied?
        } else {
            writes.await?
        };
        let mut claimed = Vec::new();
        for ((_, candidates), applied) in calls.into_iter().zip(applied) {
            for (candidate, ok) in candidates.into_iter().zip(applied) {
                if let (Some((at, record, stored)), true) = (candidate, ok) {
                    self.cache.keep(record.clone(), stored);
                    claimed.push((at, record));
                }
            }
        }
        // In the fair order: the dispatcher starts the sends in it.
        claimed.sort_by_key(|(at, _)| *at);
        if let Some((at, _)) = claimed.first() {
            let first = order.get(*at).map(|(client, _)| client.clone());
            *self.last_first.lock().unwrap_or_else(|p| p.into_inner()) = first;
        }
        Ok(claimed.into_iter().map(|(_, record)| record).collect())
    }

    /// Every client's due ids (up to `look_at` each, oldest first), and
    /// the stored octets of those whose records came with them (`None`:
    /// no record): on one server those of about the first `limit` a claim
    /// takes, in one script over every shard ([`lua::READY_CLAIM`]); on a
    /// cluster none, the ids in one script per shard, all at once. On one
    /// server the ids in `pass_over` (a claim being written beside) are
    /// left out, so the records read are those the next claim takes.
    async fn ready_heads(
        &self,
        now_ms: u64,
        look_at: usize,
        limit: usize,
        pass_over: &HashSet<TernId>,
    ) -> Result<Heads, StoreError> {
        let mut queues = Vec::new();
        let mut found = HashMap::new();
        if self.cluster {
            let looks = (0..SHARDS).map(|shard| {
                let mut call = lua::READY_HEADS.key(self.layout.ready_clients(shard));
                call.arg(self.layout.ready_prefix(shard))
                    .arg(now_ms)
                    .arg(look_at);
                async move {
                    let mut conn = self.conn();
                    bounded(call.invoke_async::<Vec<(String, Vec<Vec<u8>>)>>(&mut conn)).await
                }
            });
            for heads in futures::future::try_join_all(looks).await? {
                for (client, members) in heads {
                    let ids = members.iter().filter_map(|m| parse_member(m)).collect();
                    queues.push((client, ids));
                }
            }
            return Ok((queues, found));
        }
        let mut call = lua::READY_CLAIM.prepare_invoke();
        call.arg(now_ms).arg(look_at).arg(limit);
        for shard in 0..SHARDS {
            call.key(self.layout.ready_clients(shard))
                .arg(self.layout.ready_prefix(shard))
                .arg(self.layout.message_prefix(shard));
        }
        for id in pass_over {
            call.arg(member(*id));
        }
        let mut conn = self.conn();
        let heads: Vec<ClientHeads> = bounded(call.invoke_async(&mut conn)).await?;
        for (shard, client, members, records) in heads {
            let ids: VecDeque<TernId> = members.iter().filter_map(|m| parse_member(m)).collect();
            // A record read under the queue's shard is the id's only if
            // the id belongs there (every id does: it is made in its
            // client's shard); any other is read by its own key.
            for (m, raw) in members.iter().zip(records) {
                if let Some(id) = parse_member(m).filter(|id| id_shard(*id) == shard) {
                    found.insert(id, raw);
                }
            }
            queues.push((client, ids));
        }
        Ok((queues, found))
    }

    /// The stored octets of records anywhere (`None`: no record): one
    /// MGET on one server, one per shard at once on a cluster.
    async fn read_raw(&self, ids: &[TernId]) -> Result<Vec<(TernId, Option<Vec<u8>>)>, StoreError> {
        let mut by_shard: HashMap<u64, Vec<TernId>> = HashMap::new();
        for id in ids {
            let shard = if self.cluster { id_shard(*id) } else { 0 };
            by_shard.entry(shard).or_default().push(*id);
        }
        let reads = by_shard.into_values().map(|ids| async move {
            let keys: Vec<Vec<u8>> = ids.iter().map(|id| self.layout.message(*id)).collect();
            let raws: Vec<Option<Vec<u8>>> = self.query(redis::cmd("MGET").arg(keys)).await?;
            Ok::<_, StoreError>(ids.into_iter().zip(raws).collect::<Vec<_>>())
        });
        Ok(futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }

    /// Up to `look_at` due ids, taken from the clients' queues in turn: one
    /// from each client with ids due per round, the clients in name order
    /// from the one after the last claim's first, each client's oldest
    /// first.
    fn fair_order(
        &self,
        mut queues: Vec<(String, VecDeque<TernId>)>,
        look_at: usize,
    ) -> Vec<(String, TernId)> {
        queues.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(last) = &*self.last_first.lock().unwrap_or_else(|p| p.into_inner()) {
            let after = queues.partition_point(|(client, _)| client <= last);
            queues.rotate_left(after);
        }
        let mut order = Vec::new();
        while order.len() < look_at {
            let mut took = false;
            for (client, ids) in &mut queues {
                if order.len() >= look_at {
                    break;
                }
                if let Some(id) = ids.pop_front() {
                    order.push((client.clone(), id));
                    took = true;
                }
            }
            if !took {
                break;
            }
        }
        order
    }

    /// Moves the ids of the one ready queue of older stores
    /// (`Layout::legacy_ready`) into their clients' queues, at their
    /// place. Each id moves only if it is still there, so a repeat (or a
    /// node doing the same) moves nothing twice; an id without a record
    /// is dropped.
    pub(super) async fn migrate_legacy_ready(&self) -> Result<usize, StoreError> {
        let mut moved = 0;
        for shard in 0..SHARDS {
            let legacy = self.layout.legacy_ready(shard);
            loop {
                let batch: Vec<(Vec<u8>, f64)> = self
                    .query(
                        redis::cmd("ZRANGE")
                            .arg(&legacy)
                            .arg(0)
                            .arg(LEGACY_BATCH - 1)
                            .arg("WITHSCORES"),
                    )
                    .await?;
                if batch.is_empty() {
                    break;
                }
                let ids: Vec<TernId> = batch.iter().filter_map(|(m, _)| parse_member(m)).collect();
                let mut records = ids.iter().copied().zip(self.read_many(&ids).await?);
                let mut call = Apply::default();
                for (m, at) in &batch {
                    let m = String::from_utf8_lossy(m).into_owned();
                    let mut group = Group::default();
                    group
                        .check_member(legacy.clone(), &m)
                        .zrem(legacy.clone(), &m);
                    let record = match parse_member(m.as_bytes()) {
                        Some(_) => records.next().and_then(|(_, found)| found),
                        None => None,
                    };
                    if let Some((_, record)) = record {
                        self.enqueue(&mut group, &record.client, *at as u64, &m);
                        moved += 1;
                    }
                    call.push(group);
                }
                self.apply(&call).await?;
            }
        }
        Ok(moved)
    }
}

/// The call of `shard` that takes the next group: its open one, or a new
/// one when it has none or it is full (see `lua::CALL_OCTETS`).
fn open_call<'a>(
    calls: &'a mut Vec<ShardClaim>,
    open: &mut HashMap<u64, usize>,
    shard: u64,
) -> &'a mut ShardClaim {
    let at = match open.get(&shard) {
        Some(&at) if calls.get(at).is_some_and(|(call, _)| !call.is_full()) => at,
        _ => {
            calls.push(ShardClaim::default());
            let at = calls.len() - 1;
            open.insert(shard, at);
            at
        }
    };
    &mut calls[at]
}
