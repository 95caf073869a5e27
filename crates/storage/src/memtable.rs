//! The memtable: the store's recent writes in memory, over sled.
//!
//! A message's life is about five write groups (accept, claim, attempt,
//! receipt with its outbox item, the client's acknowledgement), and most
//! of the keys they write (ready and in-flight entries, outbox items,
//! intermediate records) are removed again within seconds. Applying each
//! group to sled cost about 30 % of the daemon's CPU per message (sled's
//! page cache, its LRU, its allocations). So the applier applies logged
//! groups here, to an ordered map where a key holds a value or a tombstone,
//! and sled receives only what is still there at a checkpoint: a key
//! inserted and removed between two checkpoints never reaches it, and a
//! record rewritten five times is written once.
//!
//! Durability does not move: every group is in the write-ahead log before
//! it is applied here, and the log files are removed only once a
//! checkpoint has written the memtable into sled and flushed it.
//!
//! Readers see one merged view ([`View`]): the active memtable, then the
//! frozen one (being written into sled by a checkpoint), then sled; a
//! tombstone hides what is below it. A group is applied under the write
//! lock, so no reader sees it half applied. A checkpoint freezes the active
//! memtable (swapping in an empty one under the write lock, a pointer
//! swap), writes the frozen one into sled while readers and writers go on,
//! and drops it once sled holds it.

use std::collections::btree_map::{self, BTreeMap};
use std::collections::VecDeque;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use sled::IVec;

use crate::commit::Ops;
use crate::keys::META;

mod counts;
mod disk;

pub(crate) use counts::Counts;
pub(crate) use disk::Disk;

/// What a memtable holds for a key: a value, or `None` for a removal
/// (a tombstone, which hides sled's value until a checkpoint removes it).
type Entry = Option<IVec>;

/// What one entry costs beyond its key and value octets: the map's node
/// share, the key's `Vec` and the value's `IVec` headers and `Arc`. An
/// estimate, to keep [`Memtable::bytes`] near the memory it takes.
const ENTRY_OVERHEAD: usize = 80;

/// Entries read under the lock at a time by a scan's first page; later
/// pages double up to [`PAGE_MAX`]. Small first pages keep a `take(1)`
/// cheap; the cap bounds how long a scan holds the applier off.
const PAGE_FIRST: usize = 32;
const PAGE_MAX: usize = 1024;

/// An ordered map of recent writes.
#[derive(Debug, Default)]
pub(crate) struct Memtable {
    map: BTreeMap<Vec<u8>, Entry>,
    bytes: usize,
}

fn entry_size(key: &[u8], entry: &Entry) -> usize {
    key.len() + entry.as_ref().map_or(0, |v| v.len()) + ENTRY_OVERHEAD
}

impl Memtable {
    fn put(&mut self, key: Vec<u8>, entry: Entry) {
        let size = entry_size(&key, &entry);
        match self.map.entry(key) {
            btree_map::Entry::Occupied(mut slot) => {
                let old = entry_size(slot.key(), slot.get());
                self.bytes = self.bytes - old + size;
                slot.insert(entry);
            }
            btree_map::Entry::Vacant(slot) => {
                self.bytes += size;
                slot.insert(entry);
            }
        }
    }

    /// Estimated memory taken, in octets (keys, values and overhead).
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Keys held, values and tombstones.
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    fn range<'a>(
        &'a self,
        from: Bound<&'a [u8]>,
        to: Bound<&'a [u8]>,
    ) -> btree_map::Range<'a, Vec<u8>, Entry> {
        self.map.range::<[u8], _>((from, to))
    }

    /// Writes every entry into sled: values inserted, tombstones removed,
    /// the keys a message keeps packed many to a sled key ([`Disk`]).
    /// Returns how many sled keys actually changed (a removal of a key sled
    /// never had, or an insert of the value it holds, is no write: sled
    /// short-cuts both).
    ///
    /// One `insert`/`remove` per sled key, not a `sled::Batch`: in sled 0.34 a
    /// batch takes its global write lock (after which every sled read and
    /// write in the process goes through that `RwLock`) and holds one
    /// epoch guard for the whole batch, so the old nodes of every insert
    /// pile up until it ends. Measured (`life_bench --writers 64`,
    /// BENCHMARKS.md "Session 13: store side", "checkpoint"), the
    /// checkpoint cost 15-18 µs per life with single inserts, 20-25 with
    /// batches of 256 and 39-42 with one batch.
    pub(crate) fn write_into(&self, disk: &Disk) -> sled::Result<u64> {
        disk.write(&self.map)
    }
}

/// The active memtable and the frozen one a checkpoint is writing.
#[derive(Debug, Default)]
struct Layers {
    active: Memtable,
    frozen: Option<Arc<Memtable>>,
    /// The lowest key inserted under the watched prefix since
    /// [`View::take_lowest`] last looked, per owner (see there).
    lowest: BTreeMap<Vec<u8>, Vec<u8>>,
    /// What sled may hold, per first octet (see [`Ceilings`]).
    ceilings: Ceilings,
    /// Keys per counted queue, as readers see them (see [`Counts`]).
    counts: Counts,
}

/// Per first octet of a key, the greatest key sled may hold under it
/// (`None`: none at all): the keys there at open, raised by each
/// checkpoint's release. A key above its ceiling is not in sled, so a read
/// that missed the memtables, a removal's "does a layer below hold it?",
/// or a scan starting above the ceiling asks sled nothing. Most of the
/// store's keys grow (message ids, due times, outbox places), so nearly
/// every such question about a recent key is answered here: measured, the
/// applier's sled look-up per removal alone was 2.1 % of the daemon's CPU
/// (4 sessions x window 100).
///
/// A ceiling is never lowered (a removal leaves it as it was): it only
/// has to be at or above every key sled holds. Keys under [`META`] are
/// written into sled directly (the sequence mark), not by a checkpoint, so
/// reads under it always ask sled.
#[derive(Debug)]
struct Ceilings(Vec<Ceiling>);

/// What sled may hold under one first octet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ceiling {
    /// No key.
    Nothing,
    /// No key above this one.
    Upto(Vec<u8>),
    /// Unknown (sled failed to tell at open): any key.
    Any,
}

impl Default for Ceilings {
    fn default() -> Self {
        Ceilings(vec![Ceiling::Nothing; 256])
    }
}

impl Ceilings {
    /// What sled holds now.
    fn of(disk: &Disk) -> Self {
        let mut ceilings = Ceilings::default();
        for first in 0..=u8::MAX {
            ceilings.0[usize::from(first)] = match disk.last_under(first) {
                Ok(None) => Ceiling::Nothing,
                Ok(Some(key)) => Ceiling::Upto(key.to_vec()),
                Err(_) => Ceiling::Any,
            };
        }
        ceilings
    }

    /// Whether sled may hold `key`.
    fn may_hold(&self, key: &[u8]) -> bool {
        match key.first() {
            None => true,
            Some(&META) => true,
            Some(&first) => match &self.0[usize::from(first)] {
                Ceiling::Nothing => false,
                Ceiling::Upto(ceiling) => key <= ceiling.as_slice(),
                Ceiling::Any => true,
            },
        }
    }

    /// Whether sled may hold a key in the range: `false` only for a range
    /// within one first octet's keys that starts above its ceiling.
    fn may_hold_range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
        let (Bound::Included(low) | Bound::Excluded(low)) = from else {
            return true;
        };
        let Some(&first) = low.first() else {
            return true;
        };
        let within = match (to, first.checked_add(1)) {
            (Bound::Excluded(high), Some(next)) => high <= &[next][..],
            (Bound::Included(high), Some(next)) => high < &[next][..],
            _ => false,
        };
        !within || self.may_hold(low)
    }

    /// Raises the ceilings to a checkpointed memtable's greatest values.
    fn raise(&mut self, written: &Memtable) {
        for first in 0..=u8::MAX {
            let last = match first.checked_add(1) {
                Some(next) => written.map.range::<[u8], _>((
                    Bound::Included(&[first][..]),
                    Bound::Excluded(&[next][..]),
                )),
                None => written
                    .map
                    .range::<[u8], _>((Bound::Included(&[first][..]), Bound::Unbounded)),
            }
            .rev()
            .find(|(_, entry)| entry.is_some());
            let Some((key, _)) = last else { continue };
            let slot = &mut self.0[usize::from(first)];
            let higher = match slot {
                Ceiling::Nothing => true,
                Ceiling::Upto(ceiling) => ceiling.as_slice() < key.as_slice(),
                Ceiling::Any => false,
            };
            if higher {
                *slot = Ceiling::Upto(key.clone());
            }
        }
    }
}

/// The store's keys as readers see them: active memtable over frozen
/// memtable over sled. Every read of the sled store goes through here.
#[derive(Debug)]
pub(crate) struct View {
    disk: Disk,
    layers: RwLock<Layers>,
    /// The first octet of the keys whose lowest insert is kept per owner
    /// (the ready queues, one per client), so a scan that consumes an
    /// owner's range from its start can resume where it stopped instead of
    /// stepping again over every removed key still in sled.
    watched: Option<u8>,
    /// Entries scans copied out, pages read ahead included: what the
    /// tests of page sizes count.
    #[cfg(test)]
    pub(crate) paged: std::sync::atomic::AtomicUsize,
}

/// A key and its value, as scans yield them.
pub(crate) type KeyValue = (IVec, IVec);

impl View {
    pub(crate) fn new(db: sled::Db) -> Self {
        let disk = Disk::new(db);
        let layers = Layers {
            ceilings: Ceilings::of(&disk),
            ..Layers::default()
        };
        Self {
            disk,
            layers: RwLock::new(layers),
            watched: None,
            #[cfg(test)]
            paged: Default::default(),
        }
    }

    /// A view that keeps the lowest key inserted under `prefix` (one
    /// octet), per owner (`keys::owner_of`), for [`View::take_lowest`].
    pub(crate) fn watching(db: sled::Db, prefix: u8) -> Self {
        Self {
            watched: Some(prefix),
            ..Self::new(db)
        }
    }

    /// A view that also keeps how many keys it holds under each of
    /// `prefixes` (`by_owner`, one of them, per owner too), counting what
    /// sled holds now: one pass over those keys, at open.
    pub(crate) fn counting(self, prefixes: &[u8], by_owner: Option<u8>) -> sled::Result<Self> {
        let counts = Counts::of(&self.disk, prefixes, by_owner)?;
        self.write().counts = counts;
        Ok(self)
    }

    /// The counts kept (see [`View::counting`]): exact as of the last
    /// group applied.
    pub(crate) fn counts(&self) -> Counts {
        self.read().counts.clone()
    }

    /// Keys under one counted `prefix` (see [`View::counting`]), without
    /// copying the per-owner counts: cheap enough for the hot path.
    pub(crate) fn total(&self, prefix: u8) -> usize {
        self.read().counts.total(prefix)
    }

    /// The lowest key inserted under the watched prefix since the last
    /// call, per owner, and forgets them. A scan that removes every key it
    /// visits (the claim, in each client's queue) resumes after the last
    /// one it removed, unless an insert came below that point meanwhile:
    /// this tells it, and names the owners that got keys (a client whose
    /// queue was empty).
    pub(crate) fn take_lowest(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        std::mem::take(&mut self.write().lowest)
    }

    /// sled itself, for what is not a key read: checkpoint marks, its size.
    pub(crate) fn db(&self) -> &sled::Db {
        self.disk.db()
    }

    /// sled as the view reads it (records unpacked), for checkpoints and
    /// what reached sled.
    pub(crate) fn disk(&self) -> &Disk {
        &self.disk
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Layers> {
        self.layers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Layers> {
        self.layers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// One key's value.
    pub(crate) fn get(&self, key: &[u8]) -> sled::Result<Option<IVec>> {
        {
            let layers = self.read();
            if let Some(entry) = layers.active.map.get(key) {
                return Ok(entry.clone());
            }
            if let Some(entry) = layers.frozen.as_ref().and_then(|f| f.map.get(key)) {
                return Ok(entry.clone());
            }
            if !layers.ceilings.may_hold(key) {
                return Ok(None);
            }
        }
        // Not in memory: sled's value is the key's. sled changes only by a
        // checkpoint writing a frozen memtable, which holds only keys
        // written after this read looked.
        self.disk.get(key)
    }

    /// Applies whole groups, under the write lock: no reader sees one half
    /// applied. Removals leave tombstones only where they hide something
    /// ([`View::apply_remove`]).
    pub(crate) fn apply(&self, groups: impl IntoIterator<Item = Ops>) {
        let mut layers = self.write();
        let layers = &mut *layers;
        for ops in groups {
            for (key, value) in ops.into_entries() {
                let counted = layers.counts.counts(&key);
                match value {
                    Some(value) => self.apply_insert(layers, counted, key, IVec::from(value)),
                    None => self.apply_remove(layers, counted, key),
                }
            }
        }
    }

    /// One insert. The active map is searched once, for both questions
    /// (did a reader see the key? where does it go?): the applier's map
    /// searches (key comparisons, most of them) were about a third of its
    /// CPU in `life_bench`.
    fn apply_insert(&self, layers: &mut Layers, counted: bool, key: Vec<u8>, value: IVec) {
        if self.watched.is_some() && key.first() == self.watched.as_ref() {
            if let Some(owner) = crate::keys::owner_of(&key) {
                match layers.lowest.get_mut(owner) {
                    Some(lowest) if lowest.as_slice() <= key.as_slice() => {}
                    Some(lowest) => lowest.clone_from(&key),
                    None => {
                        layers.lowest.insert(owner.to_vec(), key.clone());
                    }
                }
            }
        }
        let entry = Some(value);
        let size = entry_size(&key, &entry);
        match layers.active.map.entry(key) {
            btree_map::Entry::Occupied(mut slot) => {
                if counted && slot.get().is_none() {
                    layers.counts.added(slot.key());
                }
                let old = entry_size(slot.key(), slot.get());
                layers.active.bytes = layers.active.bytes - old + size;
                slot.insert(entry);
            }
            btree_map::Entry::Vacant(slot) => {
                if counted && !self.below_holds(&layers.frozen, &layers.ceilings, slot.key()) {
                    layers.counts.added(slot.key());
                }
                layers.active.bytes += size;
                slot.insert(entry);
            }
        }
    }

    /// One removal. A removal leaves a tombstone only where a layer below
    /// (the frozen memtable, sled) holds the key. Otherwise the key is
    /// simply forgotten: a ready, in-flight or outbox entry that came and
    /// went since the last checkpoint, or a blind removal of a key that is
    /// no longer anywhere (finishing a message removes its ready entry,
    /// which its claim already removed). Tombstones that hide nothing
    /// would cost memory, and every scan would step over them: a claim
    /// scans the ready queue from its start, and measured (`life_bench`),
    /// with every message's tombstones kept until the checkpoint, claims
    /// took most of the CPU and a message life cost 430 µs instead of
    /// 130 µs. The check costs a sled read (not a write), under the lock,
    /// where no checkpoint can move the key between the layers; the active
    /// map is searched once, and again only to leave a tombstone.
    fn apply_remove(&self, layers: &mut Layers, counted: bool, key: Vec<u8>) {
        // One sled read at most, shared by both questions.
        let mut in_sled = None;
        let seen = match layers.active.map.remove_entry(key.as_slice()) {
            Some((held, entry)) => {
                layers.active.bytes -= entry_size(&held, &entry);
                entry.is_some()
            }
            None => match layers.frozen.as_ref().and_then(|f| f.map.get(&key)) {
                Some(entry) => entry.is_some(),
                None => self.sled_holds(&layers.ceilings, &key, &mut in_sled),
            },
        };
        if counted && seen {
            layers.counts.removed(&key);
        }
        let below = layers
            .frozen
            .as_ref()
            .is_some_and(|f| f.map.contains_key(key.as_slice()))
            || self.sled_holds(&layers.ceilings, &key, &mut in_sled);
        if below {
            layers.active.put(key, None);
        }
    }

    /// Whether a reader sees `key` below the active memtable: the frozen
    /// one's entry decides, else sled.
    fn below_holds(&self, frozen: &Option<Arc<Memtable>>, ceilings: &Ceilings, key: &[u8]) -> bool {
        match frozen.as_ref().and_then(|f| f.map.get(key)) {
            Some(entry) => entry.is_some(),
            None => self.sled_holds(ceilings, key, &mut None),
        }
    }

    /// Whether sled holds `key` (a read it failed counts as yes: a
    /// tombstone too many hides nothing), asked once per operation.
    fn sled_holds(&self, ceilings: &Ceilings, key: &[u8], in_sled: &mut Option<bool>) -> bool {
        *in_sled.get_or_insert_with(|| {
            ceilings.may_hold(key) && !matches!(self.disk.contains(key), Ok(false))
        })
    }

    /// The active memtable's estimated size, in octets.
    pub(crate) fn active_bytes(&self) -> usize {
        self.read().active.bytes()
    }

    /// Entries in memory, active and frozen (values and tombstones).
    pub(crate) fn memtable_len(&self) -> usize {
        let layers = self.read();
        layers.active.len() + layers.frozen.as_ref().map_or(0, |f| f.len())
    }

    /// Freezes the active memtable for a checkpoint and starts an empty
    /// one. Readers see the frozen one until [`View::release`].
    ///
    /// A previous frozen memtable still held (its checkpoint failed before
    /// it was written) is folded under the new one first, so nothing is
    /// ever hidden.
    pub(crate) fn freeze(&self) -> Arc<Memtable> {
        let mut layers = self.write();
        let mut active = std::mem::take(&mut layers.active);
        if let Some(older) = layers.frozen.take() {
            for (key, entry) in &older.map {
                if !active.map.contains_key(key) {
                    active.put(key.clone(), entry.clone());
                }
            }
        }
        let frozen = Arc::new(active);
        layers.frozen = Some(frozen.clone());
        frozen
    }

    /// Drops the frozen memtable: sled holds everything in it.
    pub(crate) fn release(&self) {
        let mut layers = self.write();
        if let Some(frozen) = layers.frozen.take() {
            layers.ceilings.raise(&frozen);
        }
    }

    /// The keys from `from` to `to`, in order, merged across the layers.
    pub(crate) fn range(&self, from: Bound<Vec<u8>>, to: Bound<Vec<u8>>) -> Scan<'_> {
        self.range_paged(from, to, PAGE_FIRST)
    }

    /// [`View::range`] whose first page reads at most `first` entries (at
    /// least one; later pages double as usual): for a caller that knows it
    /// takes few, such as a claim of one message from a long queue, which
    /// with the usual first page copied 32 keys and values to use one.
    pub(crate) fn range_paged(
        &self,
        from: Bound<Vec<u8>>,
        to: Bound<Vec<u8>>,
        first: usize,
    ) -> Scan<'_> {
        Scan {
            view: self,
            next: from,
            end: to,
            buffer: VecDeque::new(),
            page: first.clamp(1, PAGE_MAX),
            done: false,
        }
    }

    /// The keys that start with `prefix`, in order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Scan<'_> {
        let prefix = prefix.as_ref();
        self.range(Bound::Included(prefix.to_vec()), prefix_end(prefix))
    }

    /// Up to `limit` keys in the range, merged, read under the read lock
    /// (sled's part too, so a checkpoint's release cannot slip between).
    fn page(
        &self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
        limit: usize,
    ) -> sled::Result<Vec<KeyValue>> {
        let mut out = Vec::with_capacity(limit.min(PAGE_FIRST));
        if is_empty_range(from, to) {
            return Ok(out);
        }
        let layers = self.read();
        let frozen = layers.frozen.as_deref();
        let mut memory = Merge {
            first: layers.active.range(from, to).peekable(),
            second: frozen.map(|f| f.range(from, to).peekable()),
        }
        .peekable();
        let mut disk = if layers.ceilings.may_hold_range(from, to) {
            Some(self.disk.range(from, to).peekable())
        } else {
            None
        };
        while out.len() < limit {
            let disk_key = match disk.as_mut().and_then(Peekable::peek) {
                Some(Ok((key, _))) => Some(key.clone()),
                Some(Err(_)) => {
                    if let Some(Err(e)) = disk.as_mut().and_then(Iterator::next) {
                        return Err(e);
                    }
                    continue;
                }
                None => None,
            };
            let take_memory = match (memory.peek(), &disk_key) {
                (None, None) => break,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (Some((mem_key, _)), Some(disk_key)) => {
                    if mem_key.as_slice() == disk_key.as_ref() {
                        // The memtable's entry replaces sled's.
                        disk.as_mut().and_then(Iterator::next);
                    }
                    mem_key.as_slice() <= disk_key.as_ref()
                }
            };
            if take_memory {
                if let Some((key, Some(value))) = memory.next() {
                    out.push((IVec::from(key.as_slice()), value.clone()));
                }
            } else if let Some(Ok(pair)) = disk.as_mut().and_then(Iterator::next) {
                out.push(pair);
            }
        }
        #[cfg(test)]
        self.paged
            .fetch_add(out.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(out)
    }
}

/// A range's entries in order, read a page at a time: the lock is held
/// for one page, not for the whole scan (which may run over a million
/// keys). Like sled's own iterators, a scan is not a snapshot: a group
/// applied between two pages shows in the later ones.
pub(crate) struct Scan<'a> {
    view: &'a View,
    next: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    buffer: VecDeque<KeyValue>,
    page: usize,
    done: bool,
}

impl Iterator for Scan<'_> {
    type Item = sled::Result<KeyValue>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.buffer.is_empty() && !self.done {
            let page = self
                .view
                .page(as_ref(&self.next), as_ref(&self.end), self.page);
            match page {
                Ok(page) => {
                    self.done = page.len() < self.page;
                    if let Some((key, _)) = page.last() {
                        self.next = Bound::Excluded(key.to_vec());
                    }
                    self.buffer.extend(page);
                    self.page = (self.page * 2).min(PAGE_MAX);
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        self.buffer.pop_front().map(Ok)
    }
}

pub(crate) fn as_ref(bound: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(key) => Bound::Included(key.as_slice()),
        Bound::Excluded(key) => Bound::Excluded(key.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The first key after every key that starts with `prefix`.
pub(crate) fn prefix_end(prefix: &[u8]) -> Bound<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Bound::Excluded(end);
        }
    }
    Bound::Unbounded
}

/// A range no key is in (`BTreeMap::range` panics on some of them).
fn is_empty_range(from: Bound<&[u8]>, to: Bound<&[u8]>) -> bool {
    match (from, to) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a), Bound::Excluded(b))
        | (Bound::Excluded(a), Bound::Included(b))
        | (Bound::Excluded(a), Bound::Excluded(b)) => a >= b,
        _ => false,
    }
}

type MemRange<'a> = Peekable<btree_map::Range<'a, Vec<u8>, Entry>>;

/// Two memtables' ranges in key order; on the same key, `first`'s entry
/// (the newer memtable) wins.
struct Merge<'a> {
    first: MemRange<'a>,
    second: Option<MemRange<'a>>,
}

impl<'a> Iterator for Merge<'a> {
    type Item = (&'a Vec<u8>, &'a Entry);

    fn next(&mut self) -> Option<Self::Item> {
        let Some(second) = self.second.as_mut() else {
            return self.first.next();
        };
        match (self.first.peek(), second.peek()) {
            (Some((a, _)), Some((b, _))) if a == b => {
                second.next();
                self.first.next()
            }
            (Some((a, _)), Some((b, _))) if b < a => second.next(),
            (Some(_), _) => self.first.next(),
            (None, _) => second.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(writes: &[(&str, Option<&str>)]) -> Ops {
        let mut ops = Ops::default();
        for (key, value) in writes {
            match value {
                Some(value) => ops.insert(*key, *value),
                None => ops.remove(*key),
            }
        }
        ops
    }

    fn scan(view: &View, prefix: &str) -> Vec<(String, String)> {
        view.scan_prefix(prefix)
            .map(|e| {
                let (k, v) = e.expect("reads");
                (
                    String::from_utf8_lossy(&k).into_owned(),
                    String::from_utf8_lossy(&v).into_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn the_view_lays_active_over_frozen_over_sled() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        for key in ["a1", "a2", "a3", "a5", "b1"] {
            db.insert(key, "sled").expect("insert");
        }
        let view = View::new(db.clone());
        view.apply([ops(&[
            ("a2", None),
            ("a4", Some("frozen")),
            ("a5", Some("frozen")),
        ])]);
        let frozen = view.freeze();
        view.apply([ops(&[
            ("a1", Some("active")),
            ("a5", None),
            ("a4", Some("active")),
        ])]);
        let expected = vec![
            ("a1".to_owned(), "active".to_owned()),
            ("a3".to_owned(), "sled".to_owned()),
            ("a4".to_owned(), "active".to_owned()),
        ];
        assert_eq!(scan(&view, "a"), expected);
        assert_eq!(view.get(b"a2").expect("get"), None);
        assert_eq!(view.get(b"a5").expect("get"), None);
        assert_eq!(view.get(b"a3").expect("get").as_deref(), Some(&b"sled"[..]));
        // Pages: a scan longer than a page sees every key once.
        let many: Vec<(String, Option<&str>)> =
            (0..3000).map(|n| (format!("c{n:05}"), Some("x"))).collect();
        let many: Vec<(&str, Option<&str>)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        view.apply([ops(&many)]);
        assert_eq!(view.scan_prefix("c").count(), 3000);
        // The checkpoint writes the frozen layer: the answers stay.
        assert_eq!(
            frozen.write_into(view.disk()).expect("written"),
            3,
            "a2 removed, a4 and a5 set"
        );
        view.release();
        assert_eq!(scan(&view, "a"), expected);
        let frozen = view.freeze();
        frozen.write_into(view.disk()).expect("written");
        view.release();
        assert_eq!(scan(&view, "a"), expected);
        assert_eq!(view.memtable_len(), 0);
    }

    #[test]
    fn a_key_that_came_and_went_costs_sled_nothing() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let view = View::new(db.clone());
        view.apply([
            ops(&[("m1", Some("v1")), ("r1", Some(""))]),
            ops(&[("r1", None), ("f1", Some(""))]),
            ops(&[("f1", None), ("m1", Some("v2"))]),
            // A blind removal of a key nothing holds.
            ops(&[("x1", None)]),
        ]);
        assert_eq!(view.memtable_len(), 1, "no tombstone that hides nothing");
        let frozen = view.freeze();
        assert_eq!(
            frozen.write_into(view.disk()).expect("written"),
            1,
            "only m1"
        );
        view.release();
        assert_eq!(db.len(), 1);
    }

    /// The counts follow the keys through each case the applier meets
    /// with one search of the active map: an insert of a new key, of a key
    /// the active map holds, of a key its tombstone hides (sled holds it),
    /// and removals of keys held in the active map, the frozen one and
    /// sled, and of a key nothing holds.
    #[test]
    fn counts_follow_the_keys_through_every_layer() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        db.insert("q1", "").expect("insert");
        db.insert("q2", "").expect("insert");
        let view = View::new(db.clone()).counting(b"q", None).expect("counts");
        let total = || view.total(b'q');
        assert_eq!(total(), 2, "what sled holds at open");
        view.apply([ops(&[("q3", Some(""))])]);
        let frozen = view.freeze();
        assert_eq!(total(), 3, "a new key");
        view.apply([ops(&[("q4", Some("")), ("q4", Some("again"))])]);
        assert_eq!(total(), 4, "a key the active map holds, set again");
        view.apply([ops(&[("q1", None)])]);
        assert_eq!(total(), 3, "sled's key removed: a tombstone");
        view.apply([ops(&[("q1", Some(""))])]);
        assert_eq!(total(), 4, "the key under its tombstone set again");
        view.apply([ops(&[
            ("q3", None),
            ("q4", None),
            ("q2", None),
            ("q9", None),
        ])]);
        assert_eq!(total(), 1, "held in frozen, active, sled; and nothing");
        assert_eq!(scan(&view, "q"), vec![("q1".to_owned(), String::new())]);
        frozen.write_into(view.disk()).expect("written");
        view.release();
        assert_eq!(total(), 1);
        assert_eq!(
            view.counts(),
            Counts::of(&Disk::new(db_after(&view)), b"q", None).expect("counts")
        );
    }

    /// sled as a checkpoint would leave it: the view's memtables written.
    fn db_after(view: &View) -> sled::Db {
        view.freeze().write_into(view.disk()).expect("written");
        view.release();
        view.db().clone()
    }

    #[test]
    fn sled_is_asked_only_at_or_below_its_ceilings() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        db.insert("a3", "sled").expect("insert");
        let view = View::new(db.clone());
        let may_hold = |key: &str| view.read().ceilings.may_hold(key.as_bytes());
        // At open: what sled holds.
        assert!(may_hold("a2") && may_hold("a3"));
        assert!(!may_hold("a4") && !may_hold("m1") && !may_hold("b"));
        // In memory only: sled still holds nothing under "m".
        view.apply([ops(&[("m5", Some("v")), ("m3", Some("v"))])]);
        assert!(!may_hold("m1"));
        assert_eq!(view.get(b"m5").expect("get").as_deref(), Some(&b"v"[..]));
        assert_eq!(view.get(b"m6").expect("get"), None);
        // A checkpoint raises the ceiling to what it wrote.
        let frozen = view.freeze();
        frozen.write_into(view.disk()).expect("written");
        view.release();
        assert!(may_hold("m3") && may_hold("m5") && !may_hold("m6"));
        assert_eq!(view.get(b"m5").expect("get").as_deref(), Some(&b"v"[..]));
        assert_eq!(scan(&view, "m").len(), 2);
        // A removal below the ceiling leaves a tombstone; above, none.
        view.apply([ops(&[("m5", None), ("m7", None)])]);
        assert_eq!(view.memtable_len(), 1);
        assert_eq!(view.get(b"m5").expect("get"), None);
        // Ranges: one starting above the ceiling of its first octet only.
        let ceilings = &view.read().ceilings;
        let range = |from: &'static str, to: Bound<&'static str>| {
            ceilings.may_hold_range(Bound::Included(from.as_bytes()), to.map(str::as_bytes))
        };
        assert!(!range("m6", Bound::Excluded("n")));
        assert!(range("m4", Bound::Excluded("n")));
        assert!(range("m6", Bound::Excluded("n1")), "reaches past \"m\"");
        assert!(range("m6", Bound::Unbounded));
        // The sequence mark's keys are written into sled directly: asked.
        db.insert(crate::keys::meta("mark"), "1").expect("insert");
        assert!(ceilings.may_hold(&crate::keys::meta("mark")));
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"a"), Bound::Excluded(b"b".to_vec()));
        assert_eq!(prefix_end(&[1, 0xFF]), Bound::Excluded(vec![2]));
        assert_eq!(prefix_end(&[0xFF]), Bound::Unbounded);
        assert!(is_empty_range(Bound::Excluded(b"a"), Bound::Excluded(b"a")));
    }
}
