//! What sled holds, as the view reads it and a checkpoint writes it.
//!
//! Every key is sled's own, except message records: sled holds those
//! sixteen to a key, `M` id ÷ 16 → the records of those sixteen ids, each
//! as its slot (id mod 16), its length and its octets, in slot order.
//!
//! Why: sled 0.34 keeps a page per 8 to 16 keys in memory whatever its
//! cache size (the page table, and a paged-out page's list of its
//! fragments' places), and a checkpoint pays its tree walk, its node
//! splits and its log reservation per key inserted. A message keeps its
//! record in sled for its whole retention, and a long outage's backlog is
//! a record and a ready entry per message: measured at a million waiting
//! messages, sled's share was about 88 octets a message. Sixteen records
//! to a key make the records' share a sixteenth, and a checkpoint writes
//! one key where it wrote sixteen (the ids of messages accepted together
//! are consecutive, so their records reach sled in the same checkpoint).
//!
//! Above this module nothing changes: readers and writers name a record by
//! its `m` key, and the memtable holds `m` keys. Only the sled side of
//! [`super::View`] (its reads) and [`super::Memtable::write_into`] (the
//! checkpoint, the one writer of those keys in sled) go through here.
//!
//! A store written before holds loose `m` keys. They are read as they are,
//! a checkpoint that writes a record into its bucket removes its loose
//! key, and a record found in both places is read from its bucket (the
//! later write: a checkpoint inserts the bucket before it removes the
//! loose key).

use std::iter::Peekable;
use std::ops::Bound;

use sled::IVec;

use crate::keys::{MESSAGE, PACKED_MESSAGES};

/// Ids per bucket: `1 << SHIFT`.
const SHIFT: u32 = 4;
/// The slot of an id in its bucket.
const SLOT_MASK: u64 = (1 << SHIFT) - 1;
/// A record's head in its bucket: slot (1 octet), length (4, big-endian).
const HEAD: usize = 5;

/// sled, with message records packed (see the module's doc).
#[derive(Debug)]
pub(crate) struct Disk {
    db: sled::Db,
    /// Whether sled may still hold loose `m` keys (a store written before
    /// records were packed): reads then look there too, and a checkpoint
    /// removes the loose key of each record it writes. Known at open; a
    /// read that fails counts as yes.
    loose: bool,
}

impl Disk {
    pub(crate) fn new(db: sled::Db) -> Self {
        let loose = !matches!(db.scan_prefix([MESSAGE]).next(), None);
        Self { db, loose }
    }

    /// sled itself: the format and checkpoint marks, its size, counts.
    pub(crate) fn db(&self) -> &sled::Db {
        &self.db
    }

    /// One key's value in sled.
    pub(crate) fn get(&self, key: &[u8]) -> sled::Result<Option<IVec>> {
        let Some(id) = record_id(key) else {
            return self.db.get(key);
        };
        if let Some(bucket) = self.db.get(bucket_key(id >> SHIFT))? {
            for entry in Entries::new(&bucket, id >> SHIFT) {
                let (slot, value) = entry?;
                if u64::from(slot) == id & SLOT_MASK {
                    return Ok(Some(value));
                }
            }
        }
        if self.loose {
            return self.db.get(key);
        }
        Ok(None)
    }

    /// Whether sled holds `key`.
    pub(crate) fn contains(&self, key: &[u8]) -> sled::Result<bool> {
        if record_id(key).is_none() {
            return self.db.contains_key(key);
        }
        Ok(self.get(key)?.is_some())
    }

    /// The greatest key sled holds whose first octet is `first`, as the
    /// view names keys (records by their `m` keys; none under `M`).
    pub(crate) fn last_under(&self, first: u8) -> sled::Result<Option<IVec>> {
        let last_raw = |first: u8| match first.checked_add(1) {
            Some(next) => self.db.range([first]..[next]).next_back(),
            None => self.db.range([first]..).next_back(),
        };
        match first {
            PACKED_MESSAGES => Ok(None),
            MESSAGE => {
                let loose = last_raw(MESSAGE).transpose()?.map(|(key, _)| key);
                let Some((key, value)) = last_raw(PACKED_MESSAGES).transpose()? else {
                    return Ok(loose);
                };
                let bucket = bucket_of(&key)?;
                let mut last = None;
                for entry in Entries::new(&value, bucket) {
                    last = Some(entry?.0);
                }
                let packed = last.map(|slot| IVec::from(&record_key(bucket, slot)[..]));
                Ok(loose.max(packed))
            }
            _ => Ok(last_raw(first).transpose()?.map(|(key, _)| key)),
        }
    }

    /// The keys from `from` to `to` in sled, in order, records unpacked.
    pub(crate) fn range(&self, from: Bound<&[u8]>, to: Bound<&[u8]>) -> DiskRange {
        let packed = touches(from, to, MESSAGE).then(|| Packed::new(&self.db, from, to).peekable());
        // Bucket keys are not keys of the view: a range over them reads
        // around them.
        let loose = if touches(from, to, PACKED_MESSAGES) {
            let below = (from, min_to(to, &[PACKED_MESSAGES]));
            let above = (max_from(from, &[PACKED_MESSAGES + 1]), to);
            [below, above]
                .into_iter()
                .filter(|&(a, b)| !super::is_empty_range(a, b))
                .map(|(a, b)| self.db.range::<&[u8], _>((a, b)))
                .collect()
        } else {
            vec![self.db.range::<&[u8], _>((from, to))]
        };
        DiskRange {
            loose: Loose {
                parts: loose.into_iter(),
                current: None,
            }
            .peekable(),
            packed,
        }
    }

    /// Writes a checkpoint's entries (in key order): values inserted,
    /// `None` removed, records into their buckets. Returns how many sled
    /// keys changed.
    pub(crate) fn write<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<IVec>)>,
    ) -> sled::Result<u64> {
        let mut written = 0;
        let mut bucket: Option<(u64, Vec<(u8, Option<IVec>)>)> = None;
        for (key, entry) in entries {
            if let Some(id) = record_id(key) {
                let slot = (id & SLOT_MASK) as u8;
                match &mut bucket {
                    Some((at, changes)) if *at == id >> SHIFT => changes.push((slot, entry.clone())),
                    _ => {
                        if let Some((at, changes)) = bucket.take() {
                            written += self.write_bucket(at, changes)?;
                        }
                        bucket = Some((id >> SHIFT, vec![(slot, entry.clone())]));
                    }
                }
                continue;
            }
            let changed = match entry {
                Some(value) => self
                    .db
                    .insert(key.as_slice(), value.clone())?
                    .is_none_or(|old| old != *value),
                None => self.db.remove(key.as_slice())?.is_some(),
            };
            written += u64::from(changed);
        }
        if let Some((at, changes)) = bucket {
            written += self.write_bucket(at, changes)?;
        }
        Ok(written)
    }

    /// One bucket's read-modify-write. Only a checkpoint writes buckets,
    /// one at a time, so nothing changes a bucket between its read and its
    /// write; a reader meanwhile finds every record being written in the
    /// frozen memtable, above sled, and every other one unchanged in
    /// either version of the bucket. Applying the same changes twice (a
    /// checkpoint that failed, tried again) gives the same bucket.
    fn write_bucket(&self, bucket: u64, changes: Vec<(u8, Option<IVec>)>) -> sled::Result<u64> {
        let key = bucket_key(bucket);
        let old = self.db.get(key)?;
        let mut records: Vec<(u8, IVec)> = match &old {
            Some(value) => Entries::new(value, bucket).collect::<sled::Result<_>>()?,
            None => Vec::new(),
        };
        let slots: Vec<u8> = changes.iter().map(|(slot, _)| *slot).collect();
        for (slot, entry) in changes {
            match (records.binary_search_by_key(&slot, |(s, _)| *s), entry) {
                (Ok(at), Some(value)) => records[at].1 = value,
                (Ok(at), None) => {
                    records.remove(at);
                }
                (Err(at), Some(value)) => records.insert(at, (slot, value)),
                (Err(_), None) => {}
            }
        }
        let mut written = 0;
        if records.is_empty() {
            written += u64::from(old.is_some() && self.db.remove(key)?.is_some());
        } else {
            let value = encode(&records);
            if old.as_deref() != Some(&value[..]) {
                self.db.insert(key, value)?;
                written += 1;
            }
        }
        if self.loose {
            for slot in slots {
                written += u64::from(self.db.remove(record_key(bucket, slot))?.is_some());
            }
        }
        Ok(written)
    }
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

fn encode(records: &[(u8, IVec)]) -> Vec<u8> {
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

fn malformed(what: &str) -> sled::Error {
    sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("message records packed in sled (`M` keys): {what}"),
    ))
}

/// A bucket's records in slot order, each a view into the bucket's value
/// (no copy).
struct Entries<'a> {
    value: &'a IVec,
    bucket: u64,
    at: usize,
    last: Option<u8>,
}

impl<'a> Entries<'a> {
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
            "the bucket of ids {} to {} is damaged",
            self.bucket << SHIFT,
            (self.bucket << SHIFT) | SLOT_MASK
        ))))
    }
}

impl Iterator for Entries<'_> {
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

/// sled's own keys in a range, around the buckets: one or two of sled's
/// ranges, one after the other.
struct Loose {
    parts: std::vec::IntoIter<sled::Iter>,
    current: Option<sled::Iter>,
}

impl Iterator for Loose {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.current.as_mut().and_then(Iterator::next) {
                return Some(item);
            }
            self.current = Some(self.parts.next()?);
        }
    }
}

/// The records of a range, unpacked from their buckets, in key order.
struct Packed {
    buckets: sled::Iter,
    from: Bound<Vec<u8>>,
    to: Bound<Vec<u8>>,
    ready: std::vec::IntoIter<(IVec, IVec)>,
    done: bool,
}

impl Packed {
    fn new(db: &sled::Db, from: Bound<&[u8]>, to: Bound<&[u8]>) -> Self {
        let low = match from {
            Bound::Included(k) | Bound::Excluded(k) => id_bound(k, 0x00),
            Bound::Unbounded => 0,
        };
        let high = match to {
            Bound::Included(k) | Bound::Excluded(k) => id_bound(k, 0xFF),
            Bound::Unbounded => u64::MAX,
        };
        Self {
            buckets: db.range(bucket_key(low >> SHIFT)..=bucket_key(high >> SHIFT)),
            from: from.map(<[u8]>::to_vec),
            to: to.map(<[u8]>::to_vec),
            ready: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Whether `key` is past the range's end.
    fn beyond(&self, key: &[u8]) -> bool {
        match &self.to {
            Bound::Included(end) => key > end.as_slice(),
            Bound::Excluded(end) => key >= end.as_slice(),
            Bound::Unbounded => false,
        }
    }

    /// Whether `key` is before the range's start.
    fn before(&self, key: &[u8]) -> bool {
        match &self.from {
            Bound::Included(start) => key < start.as_slice(),
            Bound::Excluded(start) => key <= start.as_slice(),
            Bound::Unbounded => false,
        }
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

impl Iterator for Packed {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(pair) = self.ready.next() {
                return Some(Ok(pair));
            }
            if self.done {
                return None;
            }
            let (key, value) = match self.buckets.next()? {
                Ok(pair) => pair,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let unpacked = bucket_of(&key).and_then(|bucket| {
                Entries::new(&value, bucket)
                    .map(|entry| entry.map(|(slot, v)| (record_key(bucket, slot), v)))
                    .collect::<sled::Result<Vec<_>>>()
            });
            let records = match unpacked {
                Ok(records) => records,
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            };
            let mut ready = Vec::with_capacity(records.len());
            for (key, value) in records {
                if self.beyond(&key) {
                    self.done = true;
                    break;
                }
                if !self.before(&key) {
                    ready.push((IVec::from(&key[..]), value));
                }
            }
            self.ready = ready.into_iter();
        }
    }
}

/// sled's keys in a range as the view names them: its own keys merged
/// with the records unpacked from their buckets.
pub(crate) struct DiskRange {
    loose: Peekable<Loose>,
    packed: Option<Peekable<Packed>>,
}

impl Iterator for DiskRange {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let Some(packed) = self.packed.as_mut() else {
            return self.loose.next();
        };
        match (self.loose.peek(), packed.peek()) {
            (Some(Err(_)), _) | (Some(_), None) => self.loose.next(),
            (None, _) | (_, Some(Err(_))) => packed.next(),
            (Some(Ok((a, _))), Some(Ok((b, _)))) => {
                if a == b {
                    // A record in both places: the bucket's is the later.
                    self.loose.next();
                    packed.next()
                } else if a < b {
                    self.loose.next()
                } else {
                    packed.next()
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
        assert_eq!(raw(&db, PACKED_MESSAGES), 3, "ids 100 to 139 in three buckets");
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
            let round = if [100, 105, 111].contains(&id) { "second" } else { "first" };
            assert_eq!(got, value(id, round), "id {id}");
        }
        assert_eq!(view.get(&record(101)).expect("get"), None);
    }

    #[test]
    fn loose_records_of_an_older_store_are_read_and_move_into_buckets() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        for id in [3, 17, 18, 40] {
            db.insert(record(id), value(id, "loose")).expect("insert");
        }
        let view = View::new(db.clone());
        // A checkpoint packs 17 again (rewritten) and 20 (new).
        let mut ops = Ops::default();
        ops.insert(record(17), value(17, "packed"));
        ops.insert(record(20), value(20, "packed"));
        view.apply([ops]);
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
        let reopened = View::new(db.clone());
        expect(&reopened);
        assert_eq!(
            reopened.disk().last_under(MESSAGE).expect("last").as_deref(),
            Some(&record(40)[..])
        );
        db.remove(record(40)).expect("remove");
        let reopened = View::new(db.clone());
        assert_eq!(
            reopened.disk().last_under(MESSAGE).expect("last").as_deref(),
            Some(&record(20)[..]),
            "the last packed record"
        );
        assert_eq!(reopened.disk().last_under(PACKED_MESSAGES).expect("last"), None);
    }

    #[test]
    fn a_damaged_bucket_is_an_error_naming_its_ids() {
        let db = sled::Config::new().temporary(true).open().expect("sled");
        // Slot 2 claims 200 octets and has 3.
        db.insert(bucket_key(5), &[2, 0, 0, 0, 200, 1, 2, 3][..])
            .expect("insert");
        let view = View::new(db);
        let err = view.get(&record(82)).expect_err("damaged");
        assert!(err.to_string().contains("ids 80 to 95"), "{err}");
        let scanned: Vec<_> = view.scan_prefix([MESSAGE]).collect();
        assert!(matches!(scanned.as_slice(), [Err(_)]), "{scanned:?}");
    }
}
