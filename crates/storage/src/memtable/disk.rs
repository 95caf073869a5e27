//! What sled holds, as the view reads it and a checkpoint writes it.
//!
//! Most keys are sled's own. The keys a message keeps for its whole
//! retention are packed, many to a sled key:
//! - records (`m` id): the records of ids 16n to 16n+15 under `M` n, each
//!   as its slot (id mod 16), its length and its octets, in slot order;
//! - retention entries (`g`), acknowledgements (`k`) and upstream ids
//!   (`u`): ranges of consecutive keys, each range under its first key
//!   (`G`, `K`, `U` + the key without its prefix), holding its keys'
//!   rests and values in order, 16 to 32 of them (a range grown past 32 is
//!   split into ranges of 16; one emptied is removed, the range before it
//!   taking over its keys).
//!
//! Why: sled 0.34 keeps a page per 8 to 16 keys in memory whatever its
//! cache size (the page table, and a paged-out page's list of its
//! fragments' places), and a checkpoint pays its tree walk, its node
//! splits and its log reservation per key inserted. Measured (BENCHMARKS.md
//! "Session 20"), sled's share was about 44 octets a key at a million
//! waiting messages (a record and a ready entry each), and the daemon
//! draining that million peaked at 250-290 MB with records, retention
//! entries and upstream ids one to a key.
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

use std::iter::Peekable;
use std::ops::Bound;

use sled::IVec;

use crate::keys::{
    MESSAGE, PACKED_MESSAGES, PACKED_RELAY_ACKS, PACKED_RETENTION, PACKED_UPSTREAM_IDS, RELAY_ACK,
    RETENTION, UPSTREAM_ID,
};

/// Ids per record bucket: `1 << SHIFT`.
const SHIFT: u32 = 4;
/// The slot of an id in its bucket.
const SLOT_MASK: u64 = (1 << SHIFT) - 1;
/// A record's head in its bucket: slot (1 octet), length (4, big-endian).
const HEAD: usize = 5;
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
const PACKED: [(u8, u8, Packing); 4] = [
    (RETENTION, PACKED_RETENTION, Packing::Ranged),
    (RELAY_ACK, PACKED_RELAY_ACKS, Packing::Ranged),
    (MESSAGE, PACKED_MESSAGES, Packing::ById),
    (UPSTREAM_ID, PACKED_UPSTREAM_IDS, Packing::Ranged),
];

/// Where sled holds one key of the view.
#[derive(Debug, Clone, Copy)]
enum Place {
    /// Under itself.
    Own,
    /// In the record bucket of this id.
    Record(u64),
    /// In a range under this prefix.
    Range(u8),
}

fn place(key: &[u8]) -> Place {
    let Some(&first) = key.first() else {
        return Place::Own;
    };
    match PACKED.iter().find(|(view, _, _)| *view == first) {
        Some((_, _, Packing::ById)) => record_id(key).map_or(Place::Own, Place::Record),
        Some((_, sled, Packing::Ranged)) => Place::Range(*sled),
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
            return Err(malformed("a test stopped the checkpoint here"));
        }
        self.writes_left.store(left - 1, Ordering::Relaxed);
        Ok(())
    }

    /// One key's value in sled.
    pub(crate) fn get(&self, key: &[u8]) -> sled::Result<Option<IVec>> {
        let packed = match place(key) {
            Place::Own => return self.db.get(key),
            Place::Record(id) => self.get_record(id)?,
            Place::Range(sled) => self.get_ranged(sled, key)?,
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
        for entry in Ranged::new(&value) {
            let (at, value) = entry?;
            if at.as_ref() == rest {
                return Ok(Some(value));
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
        let mut ranged: Option<(u8, Vec<RestChange>)> = None;
        for (key, entry) in entries {
            let place = place(key);
            if !matches!(place, Place::Record(id) if bucket.as_ref().is_some_and(|(at, _)| *at == id >> SHIFT))
            {
                if let Some((at, changes)) = bucket.take() {
                    written += self.write_bucket(at, changes)?;
                }
            }
            if !matches!(place, Place::Range(sled) if ranged.as_ref().is_some_and(|(at, _)| *at == sled))
            {
                if let Some((sled, changes)) = ranged.take() {
                    written += self.write_ranges(sled, changes)?;
                }
            }
            match place {
                Place::Record(id) => bucket
                    .get_or_insert_with(|| (id >> SHIFT, Vec::new()))
                    .1
                    .push(((id & SLOT_MASK) as u8, entry.clone())),
                Place::Range(sled) => {
                    let (_, changes) = ranged.get_or_insert_with(|| (sled, Vec::new()));
                    changes.push((key[1..].to_vec(), entry.clone()));
                    // In pieces: a checkpoint of a long run holds tens of
                    // thousands of these keys, and the ranges they fall in
                    // are found again for each piece all the same.
                    if changes.len() >= CHANGES_AT_ONCE {
                        written += self.write_ranges(sled, std::mem::take(changes))?;
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
        if let Some((sled, changes)) = ranged {
            written += self.write_ranges(sled, changes)?;
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
    /// range's start ([`Ranged`] within [`Unpacking`], and lookups use
    /// the last range starting at or below the key), a range rewritten
    /// drops such shadows, and a range is removed only after the one
    /// before it has dropped its shadows of it.
    fn write_ranges(&self, sled: u8, changes: Vec<RestChange>) -> sled::Result<u64> {
        let view = PACKED
            .iter()
            .find(|(_, s, _)| *s == sled)
            .map_or(sled, |(view, _, _)| *view);
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
                Ok(written + 2)
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

/// The id of a record's key (`m` + 8 octets).
fn record_id(key: &[u8]) -> Option<u64> {
    match key {
        [MESSAGE, id @ ..] => Some(u64::from_be_bytes(id.try_into().ok()?)),
        _ => None,
    }
}

fn record_key(bucket: u64, slot: u8) -> [u8; 9] {
    let mut key = [MESSAGE; 9];
    key[1..].copy_from_slice(&((bucket << SHIFT) | u64::from(slot)).to_be_bytes());
    key
}

fn bucket_key(bucket: u64) -> [u8; 9] {
    let mut key = [PACKED_MESSAGES; 9];
    key[1..].copy_from_slice(&bucket.to_be_bytes());
    key
}

fn bucket_of(key: &[u8]) -> sled::Result<u64> {
    match key {
        [PACKED_MESSAGES, bucket @ ..] => bucket
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| malformed(&format!("a bucket key of {} octets", key.len()))),
        _ => Err(malformed("a bucket key without its prefix")),
    }
}

/// A range's sled key: its prefix and its first key's rest.
fn range_key(sled: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(sled);
    key.extend_from_slice(rest);
    key
}

fn encode_records(records: &[(u8, IVec)]) -> Vec<u8> {
    let size = records.iter().map(|(_, v)| HEAD + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (slot, value) in records {
        out.push(*slot);
        // A record is a few hundred octets; the log refuses far less than
        // 4 GiB in one group.
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// A range: per key, its rest's length (2 octets), the rest, its value's
/// length (4 octets) and the value; all big-endian, in key order.
fn encode_ranged(keys: &[(IVec, IVec)]) -> Vec<u8> {
    let size = keys.iter().map(|(k, v)| 6 + k.len() + v.len()).sum();
    let mut out = Vec::with_capacity(size);
    for (rest, value) in keys {
        // Keys are a prefix, a name and a few numbers; values a time or
        // an id.
        out.extend_from_slice(&(rest.len() as u16).to_be_bytes());
        out.extend_from_slice(rest);
        out.extend_from_slice(&(value.len() as u32).to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

fn malformed(what: &str) -> sled::Error {
    sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("keys packed in sled: {what}"),
    ))
}

/// A record bucket's records in slot order, each a view into the
/// bucket's value (no copy).
struct Records<'a> {
    value: &'a IVec,
    bucket: u64,
    at: usize,
    last: Option<u8>,
}

impl<'a> Records<'a> {
    fn new(value: &'a IVec, bucket: u64) -> Self {
        Self {
            value,
            bucket,
            at: 0,
            last: None,
        }
    }

    fn damaged(&mut self) -> Option<sled::Result<(u8, IVec)>> {
        self.at = self.value.len();
        Some(Err(malformed(&format!(
            "the bucket of records {} to {} is damaged",
            self.bucket << SHIFT,
            (self.bucket << SHIFT) | SLOT_MASK
        ))))
    }
}

impl Iterator for Records<'_> {
    type Item = sled::Result<(u8, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let bytes: &[u8] = self.value;
        if self.at >= bytes.len() {
            return None;
        }
        let Some(&[slot, a, b, c, d]) = bytes.get(self.at..self.at + HEAD) else {
            return self.damaged();
        };
        let start = self.at + HEAD;
        let len = u32::from_be_bytes([a, b, c, d]) as usize;
        let in_order = self.last.is_none_or(|last| last < slot);
        if u64::from(slot) > SLOT_MASK || !in_order || bytes.len() - start < len {
            return self.damaged();
        }
        self.at = start + len;
        self.last = Some(slot);
        Some(Ok((slot, self.value.subslice(start, len))))
    }
}

/// A range's keys (their rests) and values in order, each a view into
/// the range's value.
struct Ranged<'a> {
    value: &'a IVec,
    at: usize,
    last: Option<IVec>,
}

impl<'a> Ranged<'a> {
    fn new(value: &'a IVec) -> Self {
        Self {
            value,
            at: 0,
            last: None,
        }
    }

    /// `len` octets at the cursor, after a big-endian length of `N`.
    fn field<const N: usize>(&mut self) -> Option<IVec> {
        let bytes: &[u8] = self.value;
        let head: [u8; N] = bytes.get(self.at..self.at + N)?.try_into().ok()?;
        let len = head
            .iter()
            .fold(0usize, |len, &octet| (len << 8) | usize::from(octet));
        let start = self.at + N;
        if bytes.len() - start < len {
            return None;
        }
        self.at = start + len;
        Some(self.value.subslice(start, len))
    }
}

impl Iterator for Ranged<'_> {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.value.len() {
            return None;
        }
        let pair = self.field::<2>().zip(self.field::<4>());
        match pair {
            Some((rest, value)) if self.last.as_ref().is_none_or(|last| *last < rest) => {
                self.last = Some(rest.clone());
                Some(Ok((rest, value)))
            }
            _ => {
                self.at = self.value.len();
                Some(Err(malformed("a range of keys is damaged")))
            }
        }
    }
}

/// Whether the range may hold keys starting with `prefix`.
fn touches(from: Bound<&[u8]>, to: Bound<&[u8]>, prefix: u8) -> bool {
    let low_ok = match from {
        Bound::Unbounded => true,
        Bound::Included(k) | Bound::Excluded(k) => k.first().is_none_or(|&f| f <= prefix),
    };
    let high_ok = match to {
        Bound::Unbounded => true,
        Bound::Included(k) => k >= &[prefix][..],
        Bound::Excluded(k) => k > &[prefix][..],
    };
    low_ok && high_ok
}

/// The lower of an upper bound and `Excluded(limit)`.
fn min_to<'a>(to: Bound<&'a [u8]>, limit: &'a [u8]) -> Bound<&'a [u8]> {
    match to {
        Bound::Included(k) if k < limit => to,
        Bound::Excluded(k) if k <= limit => to,
        _ => Bound::Excluded(limit),
    }
}

/// The higher of a lower bound and `Included(limit)`.
fn max_from<'a>(from: Bound<&'a [u8]>, limit: &'a [u8]) -> Bound<&'a [u8]> {
    match from {
        Bound::Included(k) | Bound::Excluded(k) if k >= limit => from,
        _ => Bound::Included(limit),
    }
}

/// Iterators one after the other.
struct Chain<I> {
    parts: std::vec::IntoIter<I>,
    current: Option<I>,
}

impl<I> Chain<I> {
    fn new(parts: Vec<I>) -> Self {
        Self {
            parts: parts.into_iter(),
            current: None,
        }
    }
}

impl<I: Iterator> Iterator for Chain<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.as_mut().and_then(Iterator::next) {
                return Some(item);
            }
            self.current = Some(self.parts.next()?);
        }
    }
}

/// A range's bounds, owned.
struct Bounds {
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
}

impl Bounds {
    fn beyond(&self, key: &[u8]) -> bool {
        match &self.to {
            Bound::Included(end) => key > end.as_slice(),
            Bound::Excluded(end) => key >= end.as_slice(),
            Bound::Unbounded => false,
        }
    }

    fn before(&self, key: &[u8]) -> bool {
        match &self.from {
            Bound::Included(start) => key < start.as_slice(),
            Bound::Excluded(start) => key <= start.as_slice(),
            Bound::Unbounded => false,
        }
    }
}

/// The keys of one packed prefix in a range, unpacked, in order.
enum Unpack {
    Records(RecordRange),
    Ranges(RangeRange),
}

impl Iterator for Unpack {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Unpack::Records(records) => records.next(),
            Unpack::Ranges(ranges) => ranges.next(),
        }
    }
}

/// Packs read one after the other, their keys kept within the bounds.
struct Unpacking {
    packs: Peekable<sled::Iter>,
    bounds: Bounds,
    ready: std::vec::IntoIter<(IVec, IVec)>,
    done: bool,
}

impl Unpacking {
    /// The next key, unpacking the next pack with `unpack` (given its
    /// sled key, its value and the next pack's key) when the last one is
    /// used up.
    fn next_with(
        &mut self,
        unpack: impl Fn(&IVec, &IVec, Option<&IVec>) -> sled::Result<Vec<(Vec<u8>, IVec)>>,
    ) -> Option<sled::Result<(IVec, IVec)>> {
        loop {
            if let Some(pair) = self.ready.next() {
                return Some(Ok(pair));
            }
            if self.done {
                return None;
            }
            let unpacked = match self.packs.next()? {
                Ok((key, value)) => {
                    let next = match self.packs.peek() {
                        Some(Ok((next, _))) => Some(next.clone()),
                        _ => None,
                    };
                    unpack(&key, &value, next.as_ref())
                }
                Err(e) => Err(e),
            };
            let keys = match unpacked {
                Ok(keys) => keys,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let mut ready = Vec::with_capacity(keys.len());
            for (key, value) in keys {
                if self.bounds.beyond(&key) {
                    self.done = true;
                    break;
                }
                if !self.bounds.before(&key) {
                    ready.push((IVec::from(key), value));
                }
            }
            self.ready = ready.into_iter();
        }
    }
}

/// The records of a range, from their buckets.
struct RecordRange(Unpacking);

impl RecordRange {
    fn new(db: &sled::Db, bounds: Bounds) -> Self {
        let low = match &bounds.from {
            Bound::Included(k) | Bound::Excluded(k) => id_bound(k, 0x00),
            Bound::Unbounded => 0,
        };
        let high = match &bounds.to {
            Bound::Included(k) | Bound::Excluded(k) => id_bound(k, 0xFF),
            Bound::Unbounded => u64::MAX,
        };
        Self(Unpacking {
            packs: db
                .range(bucket_key(low >> SHIFT)..=bucket_key(high >> SHIFT))
                .peekable(),
            bounds,
            ready: Vec::new().into_iter(),
            done: false,
        })
    }
}

impl Iterator for RecordRange {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next_with(|key, value, _| {
            let bucket = bucket_of(key)?;
            Records::new(value, bucket)
                .map(|entry| entry.map(|(slot, v)| (record_key(bucket, slot).to_vec(), v)))
                .collect()
        })
    }
}

/// The id a bound names within the records' keys: octets after the `m`,
/// cut or filled with `fill` to eight. A bound below every record key is
/// id 0, one above all of them the greatest id.
fn id_bound(key: &[u8], fill: u8) -> u64 {
    match key.first() {
        None => 0,
        Some(&f) if f < MESSAGE => 0,
        Some(&f) if f > MESSAGE => u64::MAX,
        Some(_) => {
            let mut id = [fill; 8];
            for (to, from) in id.iter_mut().zip(&key[1..]) {
                *to = *from;
            }
            u64::from_be_bytes(id)
        }
    }
}

/// The keys of a range under one ranged prefix, from their ranges.
struct RangeRange {
    view: u8,
    unpacking: Unpacking,
    /// A failure finding the first range, told first.
    failed: Option<sled::Error>,
}

impl RangeRange {
    fn new(db: &sled::Db, view: u8, sled: u8, bounds: Bounds) -> Self {
        // From the range holding the bound's key, if the bound is under
        // this prefix; else from the first range.
        let start = match &bounds.from {
            Bound::Included(k) | Bound::Excluded(k) if k.first() == Some(&view) => db
                .range(sled_prefix(sled)..=&range_key(sled, &k[1..])[..])
                .next_back()
                .transpose()
                .map(|found| found.map_or_else(|| vec![sled], |(key, _)| key.to_vec())),
            _ => Ok(vec![sled]),
        };
        let (start, failed) = match start {
            Ok(start) => (start, None),
            Err(e) => (vec![sled], Some(e)),
        };
        Self {
            view,
            unpacking: Unpacking {
                packs: db.range(start.as_slice()..sled_prefix(sled + 1)).peekable(),
                bounds,
                ready: Vec::new().into_iter(),
                done: false,
            },
            failed,
        }
    }
}

impl Iterator for RangeRange {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.failed.take() {
            self.unpacking.done = true;
            return Some(Err(e));
        }
        let view = self.view;
        self.unpacking.next_with(|_, value, next| {
            // Keys at or past the next range's start are its (copies a
            // crash in a split left here).
            let below_next = |rest: &IVec| next.is_none_or(|n| rest.as_ref() < &n[1..]);
            Ranged::new(value)
                .filter(|entry| entry.as_ref().map_or(true, |(rest, _)| below_next(rest)))
                .map(|entry| {
                    entry.map(|(rest, v)| {
                        let mut key = Vec::with_capacity(1 + rest.len());
                        key.push(view);
                        key.extend_from_slice(&rest);
                        (key, v)
                    })
                })
                .collect()
        })
    }
}

/// sled's keys in a range as the view names them: its own keys merged
/// with the packed ones unpacked.
pub(crate) struct DiskRange {
    loose: Peekable<Chain<sled::Iter>>,
    packed: Peekable<Chain<Unpack>>,
}

impl Iterator for DiskRange {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        match (self.loose.peek(), self.packed.peek()) {
            (Some(Err(_)), _) | (Some(_), None) => self.loose.next(),
            (None, _) | (_, Some(Err(_))) => self.packed.next(),
            (Some(Ok((a, _))), Some(Ok((b, _)))) => {
                if a == b {
                    // A key in both places: its pack's is the later.
                    self.loose.next();
                    self.packed.next()
                } else if a < b {
                    self.loose.next()
                } else {
                    self.packed.next()
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::Ops;
    use crate::memtable::View;

    fn record(id: u64) -> Vec<u8> {
        record_key(id >> SHIFT, (id & SLOT_MASK) as u8).to_vec()
    }

    fn value(id: u64, round: &str) -> Vec<u8> {
        format!("record {id} {round}").into_bytes()
    }

    fn checkpoint(view: &View) {
        view.freeze().write_into(view.disk()).expect("written");
        view.release();
    }

    fn raw(db: &sled::Db, prefix: u8) -> usize {
        db.scan_prefix([prefix]).count()
    }

    fn scan(view: &View, prefix: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        view.scan_prefix(prefix)
            .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<sled::Result<_>>()
            .expect("scan")
    }

    /// sled as an older store left it (`loose` keys, one to a sled key),
    /// and a view over it with `packed` written (not yet checkpointed).
    pub(super) fn older_store_then<const L: usize, const P: usize>(
        loose: [(Vec<u8>, Vec<u8>); L],
        packed: [(Vec<u8>, Vec<u8>); P],
    ) -> (sled::Db, View) {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        for (key, value) in loose {
            db.insert(key, value).expect("insert");
        }
        let view = View::new(db.clone());
        let mut ops = Ops::default();
        for (key, value) in packed {
            ops.insert(key, value);
        }
        view.apply([ops]);
        (db, view)
    }

    #[test]
    fn records_reach_sled_sixteen_to_a_key_and_read_back_one_by_one() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let view = View::new(db.clone());
        let mut ops = Ops::default();
        // 40 ids from 100: buckets 6 (96..=111, from 100), 7, 8 (to 139).
        for id in 100..140 {
            ops.insert(record(id), value(id, "first"));
        }
        ops.insert(b"q-other".to_vec(), b"".to_vec());
        view.apply([ops]);
        checkpoint(&view);
        assert_eq!(raw(&db, MESSAGE), 0, "no loose record in sled");
        assert_eq!(
            raw(&db, PACKED_MESSAGES),
            3,
            "ids 100 to 139 in three buckets"
        );
        assert_eq!(raw(&db, b'q'), 1, "other keys as they are");
        for id in 100..140 {
            let got = view.get(&record(id)).expect("get").expect("present");
            assert_eq!(got.as_ref(), value(id, "first").as_slice(), "id {id}");
        }
        assert_eq!(view.get(&record(99)).expect("get"), None);
        assert_eq!(view.get(&record(140)).expect("get"), None);
        let all = scan(&view, &[MESSAGE]);
        let ids: Vec<u64> = all.iter().filter_map(|(k, _)| record_id(k)).collect();
        assert_eq!(ids, (100..140).collect::<Vec<_>>(), "in order, once each");
        // A range starting and ending inside buckets.
        let part: Vec<u64> = view
            .range(Bound::Excluded(record(103)), Bound::Included(record(120)))
            .map(|e| record_id(&e.expect("range").0).expect("a record key"))
            .collect();
        assert_eq!(part, (104..=120).collect::<Vec<_>>());
        // A range over everything never shows a bucket's own key.
        let everything: Vec<Vec<u8>> = view
            .range(Bound::Unbounded, Bound::Unbounded)
            .map(|e| e.expect("range").0.to_vec())
            .collect();
        assert!(everything.iter().all(|k| k[0] != PACKED_MESSAGES));
        assert_eq!(everything.len(), 41);

        // Rewrite some, remove others, and a whole bucket (112..=127).
        let mut ops = Ops::default();
        for id in [100, 105, 111] {
            ops.insert(record(id), value(id, "second"));
        }
        for id in (112..128).chain([101, 139]) {
            ops.remove(record(id));
        }
        view.apply([ops]);
        checkpoint(&view);
        assert_eq!(raw(&db, PACKED_MESSAGES), 2, "the emptied bucket is gone");
        let after = scan(&view, &[MESSAGE]);
        let expected: Vec<u64> = (100..139)
            .filter(|id| !(112..128).contains(id) && *id != 101)
            .collect();
        let ids: Vec<u64> = after.iter().filter_map(|(k, _)| record_id(k)).collect();
        assert_eq!(ids, expected);
        for (key, got) in after {
            let id = record_id(&key).expect("a record key");
            let round = if [100, 105, 111].contains(&id) {
                "second"
            } else {
                "first"
            };
            assert_eq!(got, value(id, round), "id {id}");
        }
        assert_eq!(view.get(&record(101)).expect("get"), None);
    }

    #[test]
    fn loose_records_of_an_older_store_are_read_and_move_into_buckets() {
        // A checkpoint packs 17 again (rewritten) and 20 (new).
        let (db, view) = older_store_then(
            [3, 17, 18, 40].map(|id| (record(id), value(id, "loose"))),
            [17, 20].map(|id| (record(id), value(id, "packed"))),
        );
        let expect = |view: &View| {
            let ids: Vec<(u64, Vec<u8>)> = scan(view, &[MESSAGE])
                .into_iter()
                .map(|(k, v)| (record_id(&k).expect("a record key"), v))
                .collect();
            assert_eq!(
                ids,
                vec![
                    (3, value(3, "loose")),
                    (17, value(17, "packed")),
                    (18, value(18, "loose")),
                    (20, value(20, "packed")),
                    (40, value(40, "loose")),
                ]
            );
            for id in [3, 18, 40] {
                assert_eq!(
                    view.get(&record(id)).expect("get").as_deref(),
                    Some(value(id, "loose").as_slice())
                );
            }
        };
        expect(&view);
        checkpoint(&view);
        expect(&view);
        assert_eq!(raw(&db, MESSAGE), 3, "17's loose key went with its packing");
        assert_eq!(raw(&db, PACKED_MESSAGES), 1);
        // Reopened: the ceiling of `m` covers loose and packed records.
        let last_record = || {
            View::new(db.clone())
                .disk()
                .last_under(MESSAGE)
                .expect("last")
        };
        expect(&View::new(db.clone()));
        assert_eq!(last_record().as_deref(), Some(&record(40)[..]));
        db.remove(record(40)).expect("remove");
        assert_eq!(
            last_record().as_deref(),
            Some(&record(20)[..]),
            "the last packed record"
        );
        let reopened = View::new(db.clone());
        assert_eq!(
            reopened.disk().last_under(PACKED_MESSAGES).expect("last"),
            None
        );
    }

    #[test]
    fn a_damaged_bucket_is_an_error_naming_its_ids() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        // Slot 2 claims 200 octets and has 3.
        db.insert(bucket_key(5), &[2, 0, 0, 0, 200, 1, 2, 3][..])
            .expect("insert");
        let view = View::new(db);
        let err = view.get(&record(82)).expect_err("damaged");
        assert!(err.to_string().contains("records 80 to 95"), "{err}");
        let scanned: Vec<_> = view.scan_prefix([MESSAGE]).collect();
        assert!(matches!(scanned.as_slice(), [Err(_)]), "{scanned:?}");
    }
}

#[cfg(test)]
mod ranged_tests {
    use super::*;
    use crate::commit::Ops;
    use crate::memtable::View;

    fn key(n: u32) -> Vec<u8> {
        let mut key = vec![RETENTION];
        key.extend_from_slice(&n.to_be_bytes());
        key
    }

    fn value(n: u32, round: &str) -> Vec<u8> {
        format!("{n} {round}").into_bytes()
    }

    fn checkpoint(view: &View) {
        view.freeze().write_into(view.disk()).expect("written");
        view.release();
    }

    fn scanned(view: &View) -> Vec<(u32, Vec<u8>)> {
        view.scan_prefix([RETENTION])
            .map(|entry| {
                let (k, v) = entry.expect("scan");
                let n = u32::from_be_bytes(k[1..].try_into().expect("4 octets"));
                (n, v.to_vec())
            })
            .collect()
    }

    fn ranges(db: &sled::Db) -> Vec<usize> {
        db.scan_prefix([PACKED_RETENTION])
            .map(|entry| {
                let (_, v) = entry.expect("range");
                Ranged::new(&v).count()
            })
            .collect()
    }

    /// Appends (as retention entries come, in time order), a key below
    /// every range, removals that empty ranges, and rewrites: sled holds
    /// ranges of at most 32 keys, every key is read back as written, and
    /// a range is found from any key inside it.
    #[test]
    fn keys_in_ranges_read_back_as_written_through_splits_and_removals() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let view = View::new(db.clone());
        let mut expected: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
        let mut write = |changes: Vec<(u32, Option<&str>)>| {
            let mut ops = Ops::default();
            for (n, round) in changes {
                match round {
                    Some(round) => {
                        ops.insert(key(n), value(n, round));
                        expected.insert(n, value(n, round));
                    }
                    None => {
                        ops.remove(key(n));
                        expected.remove(&n);
                    }
                }
            }
            view.apply([ops]);
            checkpoint(&view);
            expected.clone()
        };
        let check = |view: &View, expected: &std::collections::BTreeMap<u32, Vec<u8>>| {
            let want: Vec<(u32, Vec<u8>)> = expected.iter().map(|(n, v)| (*n, v.clone())).collect();
            assert_eq!(scanned(view), want);
            for n in 0..3_200 {
                assert_eq!(
                    view.get(&key(n)).expect("get").map(|v| v.to_vec()),
                    expected.get(&n).cloned(),
                    "key {n}"
                );
            }
        };
        // Three checkpoints of appends: 100, then 100 more, then 2 300
        // (more than a checkpoint writes at once).
        for (from, to) in [(500, 600), (600, 700), (700, 3_000)] {
            let state = write((from..to).map(|n| (n, Some("first"))).collect());
            check(&view, &state);
        }
        let sizes = ranges(&db);
        assert!(sizes.iter().all(|&n| n <= RANGE_MAX), "{sizes:?}");
        assert!(sizes.len() >= 500 / RANGE_MAX, "{sizes:?}");
        // Below every range, between ranges, and rewrites.
        let state = write(vec![
            (3, Some("low")),
            (10, Some("low")),
            (650, Some("second")),
            (3_100, Some("high")),
        ]);
        check(&view, &state);
        // Empty the first ranges entirely and part of a middle one.
        let mut removals: Vec<(u32, Option<&str>)> = [3, 10].iter().map(|&n| (n, None)).collect();
        removals.extend((500..620).map(|n| (n, None)));
        removals.extend((800..810).map(|n| (n, None)));
        let state = write(removals);
        check(&view, &state);
        // Reopened over the same sled: the same keys, the same last key.
        let reopened = View::new(db.clone());
        check(&reopened, &state);
        assert_eq!(
            reopened
                .disk()
                .last_under(RETENTION)
                .expect("last")
                .as_deref(),
            Some(&key(3_100)[..])
        );
        // A range of the view within the prefix, starting inside a range.
        let part: Vec<u32> = view
            .range(Bound::Included(key(640)), Bound::Excluded(key(660)))
            .map(|e| u32::from_be_bytes(e.expect("range").0[1..].try_into().expect("4")))
            .collect();
        assert_eq!(part, (640..660).collect::<Vec<_>>());
        assert_eq!(db.scan_prefix([RETENTION]).count(), 0, "no loose key");
    }

    /// What a crash between a split's two writes leaves: the range split
    /// still holds the keys already written as the next range. Readers
    /// take them from the next range only, and when that range empties,
    /// the copies go with it instead of showing again.
    #[test]
    fn copies_a_split_left_behind_never_show() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let range = |from: u32, to: u32, round: &str| -> Vec<u8> {
            let keys: Vec<(IVec, IVec)> = (from..to)
                .map(|n| (IVec::from(&key(n)[1..]), IVec::from(value(n, round))))
                .collect();
            encode_ranged(&keys)
        };
        db.insert(
            range_key(PACKED_RETENTION, &key(0)[1..]),
            range(0, 40, "old"),
        )
        .expect("insert");
        db.insert(
            range_key(PACKED_RETENTION, &key(20)[1..]),
            range(20, 40, "new"),
        )
        .expect("insert");
        let view = View::new(db.clone());
        let want: Vec<(u32, Vec<u8>)> = (0..40)
            .map(|n| (n, value(n, if n < 20 { "old" } else { "new" })))
            .collect();
        assert_eq!(scanned(&view), want, "each key once, from its range");
        assert_eq!(
            view.get(&key(25)).expect("get").as_deref(),
            Some(&value(25, "new")[..])
        );
        // Every key of the second range removed: the range goes, and the
        // first one's copies with it.
        let mut ops = Ops::default();
        for n in 20..40 {
            ops.remove(key(n));
        }
        view.apply([ops]);
        checkpoint(&view);
        let want: Vec<(u32, Vec<u8>)> = (0..20).map(|n| (n, value(n, "old"))).collect();
        assert_eq!(scanned(&view), want);
        assert_eq!(view.get(&key(25)).expect("get"), None);
        assert_eq!(ranges(&db), vec![20]);
    }

    /// Keys in no order (upstream ids are whatever the vendor hands out),
    /// over several checkpoints, some removed again: every key reads back.
    #[test]
    fn keys_in_no_order_read_back_through_many_checkpoints() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        let view = View::new(db.clone());
        let mut expected: std::collections::BTreeMap<u32, Vec<u8>> = Default::default();
        let mut x: u32 = 12_345;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x % 5_000
        };
        for round in 0..12 {
            let mut ops = Ops::default();
            for _ in 0..300 {
                let n = next();
                if n % 7 == 0 {
                    ops.remove(key(n));
                    expected.remove(&n);
                } else {
                    ops.insert(key(n), value(n, &format!("r{round}")));
                    expected.insert(n, value(n, &format!("r{round}")));
                }
            }
            view.apply([ops]);
            checkpoint(&view);
            let want: Vec<(u32, Vec<u8>)> = expected.iter().map(|(n, v)| (*n, v.clone())).collect();
            assert_eq!(scanned(&view), want, "round {round}");
            for (n, v) in &expected {
                assert_eq!(
                    view.get(&key(*n)).expect("get").as_deref(),
                    Some(&v[..]),
                    "round {round}: {n}"
                );
            }
        }
        assert!(ranges(&db).iter().all(|&n| n <= RANGE_MAX));
    }

    /// A checkpoint stopped after each of its sled writes in turn (a
    /// crash, for sled): what sled holds still reads every key the last
    /// whole checkpoint wrote (or its new value), and the log's replay
    /// then writes the rest. The checkpoint grows one range into several
    /// (a split) and moves the first range lower.
    #[test]
    fn a_checkpoint_stopped_after_any_write_loses_no_key() {
        use std::sync::atomic::Ordering;
        // One full range (32 keys); the next checkpoint puts 40 keys below
        // it, so its own keys move into the ranges the split makes.
        let round_one: Vec<u32> = (100..132).collect();
        let round_two: Vec<(u32, Option<&str>)> = (60..100)
            .map(|n| (n, Some("two")))
            .chain([(110, Some("two")), (120, None)])
            .chain((0..20).map(|n| (141 + n * 3, Some("two"))))
            .collect();
        let mut stopped = 0;
        for writes in 0.. {
            let db = sled::Config::new().temporary(true).open().expect("sled");
            let view = View::new(db.clone());
            let mut ops = Ops::default();
            for &n in &round_one {
                ops.insert(key(n), value(n, "one"));
            }
            view.apply([ops]);
            checkpoint(&view);
            let two = || {
                let mut ops = Ops::default();
                for &(n, round) in &round_two {
                    match round {
                        Some(round) => ops.insert(key(n), value(n, round)),
                        None => ops.remove(key(n)),
                    }
                }
                ops
            };
            view.apply([two()]);
            view.disk().writes_left.store(writes, Ordering::Relaxed);
            let finished = view.freeze().write_into(view.disk()).is_ok();
            // What sled alone holds now (a restart, before its replay).
            let after = View::new(db.clone());
            for &n in &round_one {
                let got = after.get(&key(n)).expect("get");
                let changed = round_two.iter().any(|&(m, _)| m == n);
                assert!(
                    got.as_deref() == Some(&value(n, "one")[..]) || changed,
                    "stopped after {writes} writes: key {n} reads {got:?}"
                );
            }
            let mut seen: Vec<u32> = scanned(&after).into_iter().map(|(n, _)| n).collect();
            seen.dedup();
            assert_eq!(seen.len(), scanned(&after).len(), "a key twice");
            // The replay writes the whole group again.
            after.apply([two()]);
            checkpoint(&after);
            let mut want: std::collections::BTreeMap<u32, Vec<u8>> =
                round_one.iter().map(|&n| (n, value(n, "one"))).collect();
            for &(n, round) in &round_two {
                match round {
                    Some(round) => want.insert(n, value(n, round)),
                    None => want.remove(&n),
                };
            }
            let want: Vec<(u32, Vec<u8>)> = want.into_iter().collect();
            assert_eq!(scanned(&after), want, "replayed after {writes} writes");
            if finished {
                break;
            }
            stopped += 1;
        }
        assert!(stopped >= 6, "the checkpoint took {stopped} writes");
    }

    #[test]
    fn loose_keys_of_an_older_store_are_read_and_move_into_ranges() {
        let (db, view) = super::tests::older_store_then(
            [5, 7, 9].map(|n| (key(n), value(n, "loose"))),
            [7, 8].map(|n| (key(n), value(n, "packed"))),
        );
        checkpoint(&view);
        let want = vec![
            (5, value(5, "loose")),
            (7, value(7, "packed")),
            (8, value(8, "packed")),
            (9, value(9, "loose")),
        ];
        assert_eq!(scanned(&view), want);
        assert_eq!(
            view.get(&key(9)).expect("get").as_deref(),
            Some(&value(9, "loose")[..])
        );
        assert_eq!(
            db.scan_prefix([RETENTION]).count(),
            2,
            "7 moved into its range"
        );
        assert_eq!(scanned(&View::new(db.clone())), want);
    }
}
