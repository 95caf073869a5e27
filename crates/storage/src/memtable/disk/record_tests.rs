//! Record buckets (`m` keys): read back one by one and in order, older
//! stores, damage.

use super::packs::*;
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
    ops.insert(b"o-other".to_vec(), b"".to_vec());
    view.apply([ops]);
    checkpoint(&view);
    assert_eq!(raw(&db, MESSAGE), 0, "no loose record in sled");
    assert_eq!(
        raw(&db, PACKED_MESSAGES),
        3,
        "ids 100 to 139 in three buckets"
    );
    assert_eq!(raw(&db, b'o'), 1, "other keys as they are");
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
