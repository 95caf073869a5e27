//! How many keys each counted queue holds, kept beside the queues.
//!
//! `/metrics`, `/api/queues` and `tern status` report the depth of the
//! ready queue, the in-flight set, the outboxes and the held receipts.
//! Counted by scanning, a scrape at a million waiting messages walked a
//! million keys through sled: 3–5 s, and 50 MB more resident memory while
//! it ran (BENCHMARKS.md, "One million with a 4 MiB sled cache"). So the
//! view keeps the counts itself: it counts sled's keys once at open, and
//! from then on every applied insert of a key that was not there adds one
//! and every removal of a key that was there takes one away. They follow
//! the keys, not the operations that wrote them (an insert of a key
//! present, a removal of a key absent, a replayed group: no change), so
//! they stay exact whatever writes the keys.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::disk::Disk;
use super::{as_ref, prefix_end};

/// Keys per counted first octet, and per owner (`keys::owner_of`) under
/// the one whose owners are kept apart (each client's ready queue).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Counts {
    /// The first octets counted, and how many keys each has.
    totals: BTreeMap<u8, usize>,
    /// The first octet counted per owner too, if any.
    by_owner_of: Option<u8>,
    /// Per owner under `by_owner_of`: only owners with keys.
    owners: BTreeMap<Vec<u8>, usize>,
}

impl Counts {
    /// Nothing counted yet under `prefixes`; `by_owner` (one of them)
    /// also per owner.
    pub(crate) fn new(prefixes: &[u8], by_owner: Option<u8>) -> Self {
        Self {
            totals: prefixes.iter().map(|&p| (p, 0)).collect(),
            by_owner_of: by_owner,
            owners: BTreeMap::new(),
        }
    }

    /// Counts what sled holds under each counted prefix (one pass each,
    /// packed keys unpacked): the starting point at open.
    pub(crate) fn of(disk: &Disk, prefixes: &[u8], by_owner: Option<u8>) -> sled::Result<Self> {
        let mut counts = Self::new(prefixes, by_owner);
        for &prefix in prefixes {
            let end = prefix_end(&[prefix]);
            for entry in disk.range(Bound::Included(&[prefix][..]), as_ref(&end)) {
                counts.added(&entry?.0);
            }
        }
        Ok(counts)
    }

    /// Whether keys starting like `key` are counted.
    pub(crate) fn counts(&self, key: &[u8]) -> bool {
        key.first().is_some_and(|p| self.totals.contains_key(p))
    }

    /// A counted key that was not there is there now.
    pub(crate) fn added(&mut self, key: &[u8]) {
        let Some(total) = key.first().and_then(|p| self.totals.get_mut(p)) else {
            return;
        };
        *total += 1;
        if let Some(owner) = self.owner(key) {
            *self.owners.entry(owner.to_vec()).or_default() += 1;
        }
    }

    /// A counted key that was there is gone.
    pub(crate) fn removed(&mut self, key: &[u8]) {
        let Some(total) = key.first().and_then(|p| self.totals.get_mut(p)) else {
            return;
        };
        *total = total.saturating_sub(1);
        if let Some(owner) = self.owner(key) {
            if let Some(count) = self.owners.get_mut(owner) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    self.owners.remove(owner);
                }
            }
        }
    }

    fn owner<'k>(&self, key: &'k [u8]) -> Option<&'k [u8]> {
        (key.first() == self.by_owner_of.as_ref())
            .then(|| crate::keys::owner_of(key))
            .flatten()
    }

    /// Keys under `prefix` (0 for a prefix not counted).
    pub(crate) fn total(&self, prefix: u8) -> usize {
        self.totals.get(&prefix).copied().unwrap_or(0)
    }

    /// Each owner with keys under the prefix counted per owner, and how
    /// many.
    pub(crate) fn owners(&self) -> &BTreeMap<Vec<u8>, usize> {
        &self.owners
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_keys_per_prefix_and_per_owner() {
        let mut counts = Counts::new(b"qf", Some(b'q'));
        counts.added(b"qalpha\0\x01");
        counts.added(b"qalpha\0\x02");
        counts.added(b"qbravo\0\x01");
        counts.added(b"f\x01");
        counts.added(b"m\x01");
        assert!(!counts.counts(b"m\x01"));
        assert_eq!(
            (counts.total(b'q'), counts.total(b'f'), counts.total(b'm')),
            (3, 1, 0)
        );
        counts.removed(b"qbravo\0\x01");
        let owners: Vec<_> = counts.owners().iter().collect();
        assert_eq!(owners, vec![(&b"qalpha\0".to_vec(), &2)]);
        assert_eq!(counts.total(b'q'), 2);
    }
}
