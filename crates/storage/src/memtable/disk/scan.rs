//! Reading a range of sled's keys as the view names them: its own keys
//! around the packs, and the packed keys unpacked, merged in order.

use std::cmp::Ordering;
use std::iter::Peekable;
use std::ops::Bound;

use sled::IVec;

use super::packs::{bucket_key, bucket_of, range_key, record_key, Records, Spots};
use super::{sled_prefix, SHIFT};
use crate::keys::MESSAGE;

/// Whether the range may hold keys starting with `prefix`.
pub(super) fn touches(from: Bound<&[u8]>, to: Bound<&[u8]>, prefix: u8) -> bool {
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
pub(super) fn min_to<'a>(to: Bound<&'a [u8]>, limit: &'a [u8]) -> Bound<&'a [u8]> {
    match to {
        Bound::Included(k) if k < limit => to,
        Bound::Excluded(k) if k <= limit => to,
        _ => Bound::Excluded(limit),
    }
}

/// The higher of a lower bound and `Included(limit)`.
pub(super) fn max_from<'a>(from: Bound<&'a [u8]>, limit: &'a [u8]) -> Bound<&'a [u8]> {
    match from {
        Bound::Included(k) | Bound::Excluded(k) if k >= limit => from,
        _ => Bound::Included(limit),
    }
}

/// Iterators one after the other.
pub(super) struct Chain<I> {
    parts: std::vec::IntoIter<I>,
    current: Option<I>,
}

impl<I> Chain<I> {
    pub(super) fn new(parts: Vec<I>) -> Self {
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
pub(super) struct Bounds {
    pub(super) from: Bound<Vec<u8>>,
    pub(super) to: Bound<Vec<u8>>,
}

/// Where a key lies against a range's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Against {
    Before,
    Within,
    Beyond,
}

impl Bounds {
    /// Where the key `first` + `rest` lies, compared in place: a range's
    /// keys are told apart before any is built.
    fn place(&self, first: u8, rest: &[u8]) -> Against {
        // The key against a bound, as `[first] + rest` against it would.
        let against = |bound: &[u8]| match bound.split_first() {
            None => Ordering::Greater,
            Some((&b, bound_rest)) => first.cmp(&b).then_with(|| rest.cmp(bound_rest)),
        };
        let beyond = match &self.to {
            Bound::Included(end) => against(end) == Ordering::Greater,
            Bound::Excluded(end) => against(end) != Ordering::Less,
            Bound::Unbounded => false,
        };
        let before = match &self.from {
            Bound::Included(start) => against(start) == Ordering::Less,
            Bound::Excluded(start) => against(start) != Ordering::Greater,
            Bound::Unbounded => false,
        };
        if beyond {
            Against::Beyond
        } else if before {
            Against::Before
        } else {
            Against::Within
        }
    }
}

/// The keys of one packed prefix in a range, unpacked, in order.
pub(super) enum Unpack {
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

/// A pack's keys within the bounds, in order, and whether a key past them
/// was met (then no later pack is read).
type Unpacked = (Vec<(IVec, IVec)>, bool);

impl Unpacking {
    /// The next key, unpacking the next pack with `unpack` (given its
    /// sled key, its value, the next pack's key and the bounds) when the
    /// last one is used up.
    fn next_with(
        &mut self,
        unpack: impl Fn(&IVec, &IVec, Option<&IVec>, &Bounds) -> sled::Result<Unpacked>,
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
                    unpack(&key, &value, next.as_ref(), &self.bounds)
                }
                Err(e) => Err(e),
            };
            match unpacked {
                Ok((keys, past)) => {
                    self.done = past;
                    self.ready = keys.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// The records of a range, from their buckets.
pub(super) struct RecordRange(Unpacking);

impl RecordRange {
    pub(super) fn new(db: &sled::Db, bounds: Bounds) -> Self {
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
        self.0.next_with(|key, value, _, bounds| {
            let bucket = bucket_of(key)?;
            let mut keys = Vec::new();
            for entry in Records::new(value, bucket) {
                let (slot, v) = entry?;
                let key = record_key(bucket, slot);
                match bounds.place(key[0], &key[1..]) {
                    Against::Before => {}
                    Against::Within => keys.push((IVec::from(&key[..]), v)),
                    Against::Beyond => return Ok((keys, true)),
                }
            }
            Ok((keys, false))
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
pub(super) struct RangeRange {
    view: u8,
    unpacking: Unpacking,
    /// A failure finding the first range, told first.
    failed: Option<sled::Error>,
}

impl RangeRange {
    pub(super) fn new(db: &sled::Db, view: u8, sled: u8, bounds: Bounds) -> Self {
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
        self.unpacking.next_with(|_, value, next, bounds| {
            // Keys are compared in place and only those kept are built: a
            // claim's scan starts inside a range of up to 32 keys.
            let mut keys = Vec::new();
            for spot in Spots::new(value) {
                let spot = spot?;
                // Keys at or past the next range's start are its (copies a
                // crash in a split left here), and so is every one after.
                if next.is_some_and(|n| spot.rest >= &n[1..]) {
                    break;
                }
                match bounds.place(view, spot.rest) {
                    Against::Before => {}
                    Against::Within => {
                        let mut key = Vec::with_capacity(1 + spot.rest.len());
                        key.push(view);
                        key.extend_from_slice(spot.rest);
                        keys.push((IVec::from(key), spot.value_in(value)));
                    }
                    Against::Beyond => return Ok((keys, true)),
                }
            }
            Ok((keys, false))
        })
    }
}

/// sled's keys in a range as the view names them: its own keys merged
/// with the packed ones unpacked.
pub(crate) struct DiskRange {
    pub(super) loose: Peekable<Chain<sled::Iter>>,
    pub(super) packed: Peekable<Chain<Unpack>>,
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
