//! Ranges (`g`, `k`, `q`, `u` keys): read back through splits, removals,
//! keys in no order, older stores and checkpoints stopped part way.

use super::packs::*;
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
    let (db, view) = super::record_tests::older_store_then(
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

/// The ready queues (`q`) are ranged too: a backlog of two clients lands
/// in sled a range per 16 to 32 messages, each client's queue reads back
/// oldest first from its own start, and draining it in queue order (as
/// the claim does) costs a sled write per range emptied, not one per
/// message, and leaves sled nothing.
#[test]
fn a_ready_backlog_is_ranged_and_drains_a_range_at_a_time() {
    use crate::id::TernId;
    use crate::keys::{owned, ready};
    const EACH: u64 = 1_000;
    let db = sled::Config::new().temporary(true).open().expect("sled");
    let view = View::new(db.clone());
    let queued = |client: &str| -> Vec<Vec<u8>> {
        (0..EACH)
            .map(|n| ready(client, 1_000 + n, TernId::from_u64(n)))
            .collect()
    };
    let mut ops = Ops::default();
    for key in queued("one").into_iter().chain(queued("two")) {
        ops.insert(key, Vec::new());
    }
    view.apply([ops]);
    checkpoint(&view);
    assert_eq!(db.scan_prefix([READY]).count(), 0, "no loose ready key");
    let packed = db.scan_prefix([PACKED_READY]).count() as u64;
    assert!(
        (2 * EACH / RANGE_MAX as u64..=2 * EACH / RANGE_SPLIT as u64).contains(&packed),
        "{packed} ranges for {} keys",
        2 * EACH
    );
    let reopened = View::new(db.clone());
    for client in ["one", "two"] {
        let keys: Vec<Vec<u8>> = reopened
            .scan_prefix(owned(READY, client))
            .map(|entry| entry.expect("scan").0.to_vec())
            .collect();
        assert_eq!(keys, queued(client), "{client}'s queue, oldest first");
    }
    // Drained in turns of 100 a client, a checkpoint after each turn.
    let mut written = 0;
    for turn in queued("one").chunks(100).zip(queued("two").chunks(100)) {
        let mut ops = Ops::default();
        for key in turn.0.iter().chain(turn.1) {
            ops.remove(key.clone());
        }
        reopened.apply([ops]);
        written += reopened
            .freeze()
            .write_into(reopened.disk())
            .expect("written");
        reopened.release();
    }
    assert_eq!(db.scan_prefix([PACKED_READY]).count(), 0, "sled holds none");
    assert!(
        written <= packed + 2 * (EACH / 100),
        "{written} sled writes to drain {} messages in {packed} ranges",
        2 * EACH
    );
}
