//! What sled holds, as the view reads it and a checkpoint writes it.
//!
//! Most keys are sled's own. The keys a message keeps for its whole
//! retention are packed, many to a sled key:
//! - records (`m` id): the records of ids 16n to 16n+15 under `M` n, each
//!   as its slot (id mod 16), its length and its octets, in slot order;
//! - retention entries (`g`), acknowledgements (`k`), ready entries (`q`)
//!   and upstream ids (`u`): ranges of consecutive keys, each range under
//!   its first key (`G`, `K`, `Q`, `U` + the key without its prefix),
//!   holding its keys' rests and values in order, 16 to 32 of them (a
//!   range grown past 32 is split into ranges of 16; one emptied is
//!   removed, the range before it taking over its keys).
//!
//! Why: sled 0.34 keeps a page per 8 to 16 keys in memory whatever its
//! cache size (the page table, and a paged-out page's list of its
//! fragments' places), and a checkpoint pays its tree walk, its node
//! splits and its log reservation per key inserted. Measured (BENCHMARKS.md
//! "Session 20"), sled's share was about 44 octets a key at a million
//! waiting messages (a record and a ready entry each), and the daemon
//! draining that million peaked at 250-290 MB with records, retention
//! entries and upstream ids one to a key, and at 204-214 MB with those
//! packed and the ready entries still one to a key (a drain removed a
//! million sled keys one by one); 124 MB with those ranged too.
//!
//! Above this module nothing changes: readers and writers name every key
//! as before, and the memtable holds those names. Only the sled side of
//! [`super::View`] (its reads) and [`super::Memtable::write_into`] (the
//! checkpoint, the one writer of these keys in sled) go through here.
//!
//! A store written before holds these keys loose. They are read as they
//! are, a checkpoint that writes one of them into its pack removes its
//! loose key, and a key found in both places is read from its pack (the
//! later write: a checkpoint writes the pack before it removes the loose
//! key).

use std::cmp::Ordering;
use std::ops::Bound;

use sled::IVec;

mod packs;
#[cfg(test)]
mod range_tests;
#[cfg(test)]
mod record_tests;
mod scan;

use packs::{
    bucket_key, bucket_of, encode_ranged, encode_records, range_key, record_id, record_key, Ranged,
    Records, Spots,
};
pub(crate) use scan::DiskRange;
use scan::{max_from, min_to, touches, Bounds, Chain, RangeRange, RecordRange, Unpack};

use crate::keys::{
    MESSAGE, PACKED_MESSAGES, PACKED_READY, PACKED_RELAY_ACKS, PACKED_RETENTION,
    PACKED_UPSTREAM_IDS, READY, RELAY_ACK, RETENTION, UPSTREAM_ID,
};

/// Ids per record bucket: `1 << SHIFT`.
const SHIFT: u32 = 4;
/// The slot of an id in its bucket.
const SLOT_MASK: u64 = (1 << SHIFT) - 1;
/// Keys a range holds at most before it is split.
const RANGE_MAX: usize = 32;
/// Keys in each range a split makes (the last takes what is left).
const RANGE_SPLIT: usize = 16;
/// Changes to ranges a checkpoint gathers before writing them.
const CHANGES_AT_ONCE: usize = 1024;

/// How sled holds the keys under one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    /// Sixteen consecutive ids to a key (records).
    ById,
    /// Ranges of consecutive keys.
    Ranged,
}

/// The packed prefixes, in key order: the view's prefix, sled's, how.
const PACKED: [(u8, u8, Packing); 5] = [
    (RETENTION, PACKED_RETENTION, Packing::Ranged),
    (RELAY_ACK, PACKED_RELAY_ACKS, Packing::Ranged),
    (MESSAGE, PACKED_MESSAGES, Packing::ById),
    (READY, PACKED_READY, Packing::Ranged),
    (UPSTREAM_ID, PACKED_UPSTREAM_IDS, Packing::Ranged),
];

/// Where sled holds one key of the view.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Under itself.
    Own,
    /// In the record bucket of this id.
    Record(u64),
    /// In a range: the view's prefix, and sled's for its ranges.
    Range { view: u8, sled: u8 },
}

fn place(key: &[u8]) -> Place {
    let Some(&first) = key.first() else {
        return Place::Own;
    };
    match PACKED.iter().find(|(view, _, _)| *view == first) {
        Some((_, _, Packing::ById)) => record_id(key).map_or(Place::Own, Place::Record),
        Some((view, sled, Packing::Ranged)) => Place::Range {
            view: *view,
            sled: *sled,
        },
        None => Place::Own,
    }
}

/// sled, with the long-lived keys packed (see the module's doc).
#[derive(Debug)]
pub(crate) struct Disk {
    db: sled::Db,
    /// The packed prefixes under which sled may still hold loose keys (a
    /// store written before packing): reads then look there too, and a
    /// checkpoint removes the loose key of each key it packs. Known at
    /// open; a read that fails counts as yes.
    loose: Vec<u8>,
    /// Writes a test lets through before stopping the rest (`stop_here`).
    #[cfg(test)]
    pub(super) writes_left: std::sync::atomic::AtomicUsize,
}

impl Disk {
    pub(crate) fn new(db: sled::Db) -> Self {
        let loose = PACKED
            .iter()
            .map(|(view, _, _)| *view)
            .filter(|&view| db.scan_prefix([view]).next().is_some())
            .collect();
        Self {
            db,
            loose,
            #[cfg(test)]
            writes_left: std::sync::atomic::AtomicUsize::new(usize::MAX),
        }
    }

    /// sled itself: the format and checkpoint marks, its size, counts.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Every write of a checkpoint into sled goes through here and
    /// [`Disk::del`], so tests can stop a checkpoint part way.
    fn put(&self, key: impl AsRef<[u8]>, value: impl Into<IVec>) -> sled::Result<Option<IVec>> {
        #[cfg(test)]
        self.stop_here()?;
        self.db.insert(key, value)
    }

    fn del(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        #[cfg(test)]
        self.stop_here()?;
        self.db.remove(key)
    }

    /// A crash, as far as sled is concerned: every write after the
    /// `writes_left` set by a test fails.
    #[cfg(test)]
    fn stop_here(&self) -> sled::Result<()> {
        use std::sync::atomic::Ordering;
        let left = self.writes_left.load(Ordering::Relaxed);
        if left == 0 {
            return Err(packs::malformed("a test stopped the checkpoint here"));
        }
        self.writes_left.store(left - 1, Ordering::Relaxed);
        Ok(())
    }

    /// One key's value in sled.
    pub(crate) fn get(&self, key: &[u8]) -> sled::Result<Option<IVec>> {
        let packed = match place(key) {
            Place::Own => return self.db.get(key),
            Place::Record(id) => self.get_record(id)?,
            Place::Range { sled, .. } => self.get_ranged(sled, key)?,
        };
        if packed.is_none() && self.loose.contains(&key[0]) {
            return self.db.get(key);
        }
        Ok(packed)
    }

    fn get_record(&self, id: u64) -> sled::Result<Option<IVec>> {
        if let Some(bucket) = self.db.get(bucket_key(id >> SHIFT))? {
            for entry in Records::new(&bucket, id >> SHIFT) {
                let (slot, value) = entry?;
                if u64::from(slot) == id & SLOT_MASK {
                    return Ok(Some(value));
                }
            }
        }
        Ok(None)
    }

    fn get_ranged(&self, sled: u8, key: &[u8]) -> sled::Result<Option<IVec>> {
        let rest = &key[1..];
        let Some(range) = self
            .db
            .range(&[sled][..]..=&range_key(sled, rest)[..])
            .next_back()
        else {
            return Ok(None);
        };
        let (_, value) = range?;
        // In order: the first key past `rest` ends the search (and copies
        // a crashed split left at the range's end are all past it: they
        // start at or after the next range's start, which is above `rest`).
        for spot in Spots::new(&value) {
            let spot = spot?;
            match spot.rest.cmp(rest) {
                Ordering::Less => {}
                Ordering::Equal => return Ok(Some(spot.value_in(&value))),
                Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    /// Whether sled holds `key`.
    pub(crate) fn contains(&self, key: &[u8]) -> sled::Result<bool> {
        match place(key) {
            Place::Own => self.db.contains_key(key),
            _ => Ok(self.get(key)?.is_some()),
        }
    }

    /// The greatest key sled holds whose first octet is `first`, as the
    /// view names keys (none under sled's own packed prefixes).
    pub(crate) fn last_under(&self, first: u8) -> sled::Result<Option<IVec>> {
        let last_raw = |first: u8| -> sled::Result<Option<(IVec, IVec)>> {
            match first.checked_add(1) {
                Some(next) => self.db.range([first]..[next]).next_back(),
                None => self.db.range([first]..).next_back(),
            }
            .transpose()
        };
        if PACKED.iter().any(|(_, sled, _)| *sled == first) {
            return Ok(None);
        }
        let Some(&(_, sled, packing)) = PACKED.iter().find(|(view, _, _)| *view == first) else {
            return Ok(last_raw(first)?.map(|(key, _)| key));
        };
        let loose = last_raw(first)?.map(|(key, _)| key);
        let Some((key, value)) = last_raw(sled)? else {
            return Ok(loose);
        };
        let packed = match packing {
            Packing::ById => {
                let bucket = bucket_of(&key)?;
                let mut last = None;
                for entry in Records::new(&value, bucket) {
                    last = Some(entry?.0);
                }
                last.map(|slot| IVec::from(&record_key(bucket, slot)[..]))
            }
            Packing::Ranged => {
                let mut last = None;
                for entry in Ranged::new(&value) {
                    last = Some(entry?.0);
                }
                last.map(|rest| {
                    let mut key = vec![first];
                    key.extend_from_slice(&rest);
                    IVec::from(key)
                })
            }
        };
        Ok(loose.max(packed))
    }

    /// The keys from `from` to `to` in sled, in order, packed keys
    /// unpacked.
    pub(crate) fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> DiskRange {
        // sled's own packed prefixes are not keys of the view: a range
        // over them reads around them.
        let mut parts = vec![(from, to)];
        for (_, sled, _) in &PACKED {
            let Some(&(a, b)) = parts.last() else { break };
            if !touches(a, b, *sled) {
                continue;
            }
            parts.pop();
            let below = (a, min_to(b, sled_prefix(*sled)));
            let above = (max_from(a, sled_prefix(*sled + 1)), b);
            parts.extend(
                [below, above]
                    .into_iter()
                    .filter(|&(a, b)| !super::is_empty_range(a, b)),
            );
        }
        let loose = parts
            .into_iter()
            .map(|(a, b)| self.db.range::<&[u8], _>((a, b)))
            .collect::<Vec<_>>();
        let packed = PACKED
            .iter()
            .filter(|(view, _, _)| touches(from, to, *view))
            .map(|&(view, sled, packing)| {
                let bounds = Bounds {
                    from: from.map(<[u8]>::to_vec),
                    to: to.map(<[u8]>::to_vec),
                };
                match packing {
                    Packing::ById => Unpack::Records(RecordRange::new(&self.db, bounds)),
                    Packing::Ranged => {
                        Unpack::Ranges(RangeRange::new(&self.db, view, sled, bounds))
                    }
                }
            })
            .collect::<Vec<_>>();
        DiskRange {
            loose: Chain::new(loose).peekable(),
            packed: Chain::new(packed).peekable(),
        }
    }

    /// Writes a checkpoint's entries (in key order): values inserted,
    /// `None` removed, packed keys into their packs. Returns how many sled
    /// keys changed.
    pub(crate) fn write<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<IVec>)>,
    ) -> sled::Result<u64> {
        let mut written = 0;
        // The record bucket and the ranged prefix being gathered, with
        // their changes.
        let mut bucket: Option<(u64, Vec<SlotChange>)> = None;
        let mut ranged: Option<((u8, u8), Vec<RestChange>)> = None;
        for (key, entry) in entries {
            let place = place(key);
            if !matches!(place, Place::Record(id) if bucket.as_ref().is_some_and(|(at, _)| *at == id >> SHIFT))
            {
                if let Some((at, changes)) = bucket.take() {
                    written += self.write_bucket(at, changes)?;
                }
            }
            if !matches!(place, Place::Range { sled, .. } if ranged.as_ref().is_some_and(|(at, _)| at.1 == sled))
            {
                if let Some(((view, sled), changes)) = ranged.take() {
                    written += self.write_ranges(view, sled, changes)?;
                }
            }
            match place {
                Place::Record(id) => bucket
                    .get_or_insert_with(|| (id >> SHIFT, Vec::new()))
                    .1
                    .push(((id & SLOT_MASK) as u8, entry.clone())),
                Place::Range { view, sled } => {
                    let (_, changes) = ranged.get_or_insert_with(|| ((view, sled), Vec::new()));
                    changes.push((key[1..].to_vec(), entry.clone()));
                    // In pieces: a checkpoint of a long run holds tens of
                    // thousands of these keys, and the ranges they fall in
                    // are found again for each piece all the same.
                    if changes.len() >= CHANGES_AT_ONCE {
                        written += self.write_ranges(view, sled, std::mem::take(changes))?;
                    }
                }
                Place::Own => {
                    let changed = match entry {
                        Some(value) => self
                            .put(key.as_slice(), value.clone())?
                            .is_none_or(|old| old != *value),
                        None => self.del(key.as_slice())?.is_some(),
                    };
                    written += u64::from(changed);
                }
            }
        }
        if let Some((at, changes)) = bucket {
            written += self.write_bucket(at, changes)?;
        }
        if let Some(((view, sled), changes)) = ranged {
            written += self.write_ranges(view, sled, changes)?;
        }
        Ok(written)
    }

    /// One record bucket's read-modify-write. Only a checkpoint writes
    /// packs, one at a time, so nothing changes a bucket between its read
    /// and its write; a reader meanwhile finds every key being written in
    /// the frozen memtable, above sled, and every other one unchanged in
    /// either version of the bucket. Applying the same changes twice (a
    /// checkpoint that failed, tried again) gives the same bucket.
    fn write_bucket(&self, bucket: u64, changes: Vec<SlotChange>) -> sled::Result<u64> {
        let key = bucket_key(bucket);
        let old = self.db.get(key)?;
        let mut records: Vec<(u8, IVec)> = match &old {
            Some(value) => Records::new(value, bucket).collect::<sled::Result<_>>()?,
            None => Vec::new(),
        };
        let slots: Vec<u8> = changes.iter().map(|(slot, _)| *slot).collect();
        for (slot, entry) in changes {
            apply(&mut records, slot, entry);
        }
        let mut written = 0;
        if records.is_empty() {
            written += u64::from(old.is_some() && self.del(key)?.is_some());
        } else {
            let value = encode_records(&records);
            if old.as_deref() != Some(&value[..]) {
                self.put(key, value)?;
                written += 1;
            }
        }
        if self.loose.contains(&MESSAGE) {
            for slot in slots {
                written += u64::from(self.del(record_key(bucket, slot))?.is_some());
            }
        }
        Ok(written)
    }

    /// Writes the changes to one packed prefix's ranges (in key order):
    /// each range they fall in read, changed and written once.
    ///
    /// No `sled::Batch` (sled 0.34 seals a log buffer per batch: measured,
    /// a batch per split doubled the drain's system time and raised its
    /// peak memory). Instead every write that touches two sled keys writes
    /// the new key first, so a crash between leaves a key in two ranges,
    /// never in none; readers take a range's keys only below the next
    /// range's start (`scan.rs`, `RangeRange`; lookups use
    /// the last range starting at or below the key), a range rewritten
    /// drops such shadows, and a range is removed only after the one
    /// before it has dropped its shadows of it.
    fn write_ranges(&self, view: u8, sled: u8, changes: Vec<RestChange>) -> sled::Result<u64> {
        let end = sled_prefix(sled + 1);
        let mut written = 0;
        let mut changes = changes.into_iter().peekable();
        while let Some((first, _)) = changes.peek() {
            // The range holding `first`: the last starting at or below it,
            // else the first one (it will start at `first`), else a new one.
            let below = self
                .db
                .range(sled_prefix(sled)..=&range_key(sled, first)[..])
                .next_back();
            let holder = match below {
                Some(found) => Some(found?),
                None => self.db.range(sled_prefix(sled)..end).next().transpose()?,
            };
            let next = match &holder {
                Some((key, _)) => self
                    .db
                    .range::<&[u8], _>((Bound::Excluded(key.as_ref()), Bound::Excluded(end)))
                    .next()
                    .transpose()?
                    .map(|(key, _)| key),
                None => None,
            };
            let start = match &holder {
                Some((key, _)) if key[1..] <= first[..] => key[1..].to_vec(),
                _ => first.clone(),
            };
            let below_next = |rest: &[u8]| next.as_ref().is_none_or(|n| rest < &n[1..]);
            let mut range = match holder {
                Some((key, value)) => {
                    let mut keys: Vec<(IVec, IVec)> =
                        Ranged::new(&value).collect::<sled::Result<_>>()?;
                    keys.retain(|(rest, _)| below_next(rest));
                    Range {
                        keys,
                        start,
                        stored: Some((key, value)),
                    }
                }
                None => Range {
                    keys: Vec::new(),
                    start,
                    stored: None,
                },
            };
            let mut touched = Vec::new();
            while let Some((rest, entry)) = changes.next_if(|(rest, _)| below_next(rest)) {
                apply(&mut range.keys, IVec::from(&rest[..]), entry);
                touched.push(rest);
            }
            written += self.put_range(sled, range)?;
            if self.loose.contains(&view) {
                for rest in touched {
                    let mut key = vec![view];
                    key.extend_from_slice(&rest);
                    written += u64::from(self.del(key)?.is_some());
                }
            }
        }
        Ok(written)
    }

    /// Writes one range: removed if empty (once the range before it holds
    /// none of its keys), rewritten if changed, under a new key first if
    /// it now starts lower. Grown past [`RANGE_MAX`], it is split into
    /// ranges of [`RANGE_SPLIT`]: the new ones written first, from the
    /// last, its own key (holding the first keys) last.
    fn put_range(&self, sled: u8, range: Range) -> sled::Result<u64> {
        let first_key = range_key(sled, &range.start);
        let (old_key, old_value) = range.stored.unzip();
        if range.keys.is_empty() {
            let Some(key) = old_key else { return Ok(0) };
            let mut written = self.drop_shadows_before(sled, &key)?;
            written += u64::from(self.del(key)?.is_some());
            return Ok(written);
        }
        let mut keys = range.keys.as_slice();
        let mut written = 0;
        // Whether a range split off starts where this one started (it
        // then holds that key's keys, so the old key stays).
        let mut old_key_reused = false;
        if keys.len() > RANGE_MAX {
            // Last first: a crash part way leaves the new ranges at the
            // end, and everything before them still in this range.
            for chunk in keys[RANGE_SPLIT..].chunks(RANGE_SPLIT).rev() {
                if let Some((start, _)) = chunk.first() {
                    let key = range_key(sled, start);
                    old_key_reused |= old_key.as_ref().is_some_and(|old| old.as_ref() == &key[..]);
                    self.put(key, encode_ranged(chunk))?;
                    written += 1;
                }
            }
            keys = &keys[..RANGE_SPLIT];
        }
        let value = encode_ranged(keys);
        match old_key {
            Some(key) if key.as_ref() != &first_key[..] => {
                self.put(first_key, value)?;
                if !old_key_reused {
                    self.del(key)?;
                }
                Ok(written + 1 + u64::from(!old_key_reused))
            }
            _ if old_value.as_deref() == Some(&value[..]) => Ok(written),
            _ => {
                self.put(first_key, value)?;
                Ok(written + 1)
            }
        }
    }

    /// Before the range under `key` goes: the range before it keeps only
    /// its keys below `key`'s start (a crash in a split can leave it
    /// copies, which would show again once nothing shadows them).
    fn drop_shadows_before(&self, sled: u8, key: &IVec) -> sled::Result<u64> {
        let Some(before) = self
            .db
            .range::<&[u8], _>((
                Bound::Included(sled_prefix(sled)),
                Bound::Excluded(key.as_ref()),
            ))
            .next_back()
        else {
            return Ok(0);
        };
        let (before_key, value) = before?;
        let keys: Vec<(IVec, IVec)> = Ranged::new(&value).collect::<sled::Result<_>>()?;
        let kept: Vec<(IVec, IVec)> = keys
            .iter()
            .filter(|(rest, _)| rest.as_ref() < &key[1..])
            .cloned()
            .collect();
        if kept.len() == keys.len() {
            return Ok(0);
        }
        // Left in place even if nothing is kept: removing it would need
        // the same care for the range before it, and an empty range reads
        // as no keys until a later checkpoint's changes empty it again.
        self.put(before_key, encode_ranged(&kept))?;
        Ok(1)
    }
}

/// A change to a record in its bucket: its slot, its value or removal.
type SlotChange = (u8, Option<IVec>);
/// A change to a key in its range: its rest, its value or removal.
type RestChange = (Vec<u8>, Option<IVec>);

/// One range being written: its keys (rests) and values, where it
/// starts, and its sled key and value as stored (if it is).
struct Range {
    keys: Vec<(IVec, IVec)>,
    start: Vec<u8>,
    stored: Option<(IVec, IVec)>,
}

/// One change to a pack's sorted keys: set, or removed.
fn apply<K: Ord, T>(keys: &mut Vec<(K, T)>, at: K, entry: Option<T>) {
    match (keys.binary_search_by(|(k, _)| k.cmp(&at)), entry) {
        (Ok(n), Some(value)) => keys[n].1 = value,
        (Ok(n), None) => {
            keys.remove(n);
        }
        (Err(n), Some(value)) => keys.insert(n, (at, value)),
        (Err(_), None) => {}
    }
}

/// A one-octet prefix as a key (sled's packed prefixes and the ones after
/// them are letters, never the last octet).
fn sled_prefix(prefix: u8) -> &'static [u8] {
    const ALL: [u8; 256] = {
        let mut all = [0; 256];
        let mut n = 0;
        while n < 256 {
            all[n] = n as u8;
            n += 1;
        }
        all
    };
    let n = usize::from(prefix);
    &ALL[n..=n]
}
