//! How packed keys are laid out in sled: the keys of record buckets and
//! ranges, and their values (see `disk.rs`).

use sled::IVec;

use super::{SHIFT, SLOT_MASK};
use crate::keys::{MESSAGE, PACKED_MESSAGES};

/// A record's head in its bucket: slot (1 octet), length (4, big-endian).
const HEAD: usize = 5;

/// The id of a record's key (`m` + 8 octets).
pub(super) fn record_id(key: &[u8]) -> Option<u64> {
    match key {
        [MESSAGE, id @ ..] => Some(u64::from_be_bytes(id.try_into().ok()?)),
        _ => None,
    }
}

pub(super) fn record_key(bucket: u64, slot: u8) -> [u8; 9] {
    let mut key = [MESSAGE; 9];
    key[1..].copy_from_slice(&((bucket << SHIFT) | u64::from(slot)).to_be_bytes());
    key
}

pub(super) fn bucket_key(bucket: u64) -> [u8; 9] {
    let mut key = [PACKED_MESSAGES; 9];
    key[1..].copy_from_slice(&bucket.to_be_bytes());
    key
}

pub(super) fn bucket_of(key: &[u8]) -> sled::Result<u64> {
    match key {
        [PACKED_MESSAGES, bucket @ ..] => bucket
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| malformed(&format!("a bucket key of {} octets", key.len()))),
        _ => Err(malformed("a bucket key without its prefix")),
    }
}

/// A range's sled key: its prefix and its first key's rest.
pub(super) fn range_key(sled: u8, rest: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + rest.len());
    key.push(sled);
    key.extend_from_slice(rest);
    key
}

pub(super) fn encode_records(records: &[(u8, IVec)]) -> Vec<u8> {
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
pub(super) fn encode_ranged(keys: &[(IVec, IVec)]) -> Vec<u8> {
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

pub(super) fn malformed(what: &str) -> sled::Error {
    sled::Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("keys packed in sled: {what}"),
    ))
}

/// A record bucket's records in slot order, each a view into the
/// bucket's value (no copy).
pub(super) struct Records<'a> {
    value: &'a IVec,
    bucket: u64,
    at: usize,
    last: Option<u8>,
}

impl<'a> Records<'a> {
    pub(super) fn new(value: &'a IVec, bucket: u64) -> Self {
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

/// Where one key of a range lies in the range's value: its rest, and the
/// offsets and lengths of that rest and of its value.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spot<'a> {
    pub(super) rest: &'a [u8],
    rest_at: usize,
    value: (usize, usize),
}

impl Spot<'_> {
    /// The rest, a view into `of` (the range's value).
    pub(super) fn rest_in(&self, of: &IVec) -> IVec {
        of.subslice(self.rest_at, self.rest.len())
    }

    /// The value, a view into `of` (the range's value).
    pub(super) fn value_in(&self, of: &IVec) -> IVec {
        of.subslice(self.value.0, self.value.1)
    }
}

/// A range's keys in order, read in place: lookups and scans compare
/// rests without making a view of each (an `IVec` view of a large value
/// counts a reference up and down), and only the keys kept become views.
/// Checked as read: every length within the value, rests rising.
pub(super) struct Spots<'a> {
    bytes: &'a [u8],
    at: usize,
    last: Option<&'a [u8]>,
}

impl<'a> Spots<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            last: None,
        }
    }

    /// The offset and length of the `len` octets at the cursor, after a
    /// big-endian length of `N` octets.
    fn field<const N: usize>(&mut self) -> Option<(usize, usize)> {
        let head: [u8; N] = self.bytes.get(self.at..self.at + N)?.try_into().ok()?;
        let len = head
            .iter()
            .fold(0usize, |len, &octet| (len << 8) | usize::from(octet));
        let start = self.at + N;
        if self.bytes.len() - start < len {
            return None;
        }
        self.at = start + len;
        Some((start, len))
    }
}

impl<'a> Iterator for Spots<'a> {
    type Item = sled::Result<Spot<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let bytes = self.bytes;
        match self.field::<2>().zip(self.field::<4>()) {
            Some(((rest_at, len), value))
                if self
                    .last
                    .is_none_or(|last| last < &bytes[rest_at..rest_at + len]) =>
            {
                let rest = &bytes[rest_at..rest_at + len];
                self.last = Some(rest);
                Some(Ok(Spot {
                    rest,
                    rest_at,
                    value,
                }))
            }
            _ => {
                self.at = self.bytes.len();
                Some(Err(malformed("a range of keys is damaged")))
            }
        }
    }
}

/// A range's keys (their rests) and values in order, each a view into
/// the range's value.
pub(super) struct Ranged<'a> {
    value: &'a IVec,
    spots: Spots<'a>,
}

impl<'a> Ranged<'a> {
    pub(super) fn new(value: &'a IVec) -> Self {
        Self {
            value,
            spots: Spots::new(value),
        }
    }
}

impl Iterator for Ranged<'_> {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        let value = self.value;
        self.spots
            .next()
            .map(|spot| spot.map(|spot| (spot.rest_in(value), spot.value_in(value))))
    }
}
