//! A report on a sled store without opening it for use: `tern check-store`.
//!
//! [`SledStore::open`](crate::SledStore::open) replays the write-ahead log
//! into sled, empties it and requeues interrupted sends: it changes the
//! store. This reads instead: it opens sled (which takes sled's file lock,
//! so a store a daemon holds is refused), compares it with the checkpoint
//! mark, reads the log, and counts what the store holds as the daemon would
//! see it after its replay (sled's records with the log's writes laid over
//! them). Nothing is written, except by [`inspect`]'s `repair`, which cuts
//! a torn log tail as the daemon's own start would. (sled's open may still
//! tidy its own log, as at every open.)

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use crate::commit::Ops;
use crate::error::StoreError;
use crate::keys;
use crate::mark;
use crate::memtable::Disk;
use crate::record::{MessageRecord, State};
use crate::wal;

/// One damaged place in a store's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The file.
    pub file: PathBuf,
    /// Where in it, when known.
    pub offset: Option<u64>,
    /// What is wrong, and what it means for the records.
    pub what: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(offset) => write!(
                f,
                "{} at offset {offset}: {}",
                self.file.display(),
                self.what
            ),
            None => write!(f, "{}: {}", self.file.display(), self.what),
        }
    }
}

/// What [`inspect`] found.
#[derive(Debug, Clone, Default)]
pub struct StoreReport {
    /// Message records, by state.
    pub queued: usize,
    /// Claimed by a send when the store was last used.
    pub in_flight: usize,
    /// Accepted upstream, waiting for a receipt.
    pub submitted: usize,
    /// Final, kept for retention.
    pub finished: usize,
    /// Receipts held because their message was not known yet.
    pub receipts_held: usize,
    /// Receipts and MO owed to clients.
    pub outbox: usize,
    /// The log's files and their sizes on disk.
    pub wal_files: Vec<(PathBuf, u64)>,
    /// Whole records in the log (not yet in sled's last checkpoint).
    pub wal_records: usize,
    /// Octets of those records.
    pub wal_octets: u64,
    /// Damage found and left as it is.
    pub damage: Vec<Damage>,
    /// Damage found and repaired (`repair`: a torn log tail cut off).
    pub repaired: Vec<Damage>,
}

impl StoreReport {
    /// Message records, all states.
    pub fn messages(&self) -> usize {
        self.queued + self.in_flight + self.submitted + self.finished
    }
}

/// Reports on the sled store at `path`; with `repair`, cuts a torn log
/// tail off (the only damage that can be repaired without losing an
/// acknowledged record). An error when there is no store there, or a
/// daemon holds it.
pub fn inspect(path: &Path, repair: bool) -> Result<StoreReport, StoreError> {
    let open_error = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason,
    };
    if !path.join("db").is_file() {
        return Err(open_error(
            "no sled data file `db` here: not a Tern store".to_owned(),
        ));
    }
    let db = sled::Config::new()
        .path(path)
        .flush_every_ms(None)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => Err(open_error(
                "in use: a running daemon holds its lock (stop it, or ask it with `tern status`)"
                    .to_owned(),
            )),
            // Damage sled's checksums caught: a report, not a failure.
            sled::Error::Corruption { at, .. } => Ok(StoreReport {
                damage: vec![Damage {
                    file: path.to_path_buf(),
                    offset: None,
                    what: crate::sled_store::sled_corruption(at),
                }],
                ..StoreReport::default()
            }),
            e => Err(open_error(e.to_string())),
        });
    let db = match db {
        Ok(db) => db,
        Err(report) => return report,
    };
    let mut report = StoreReport::default();
    let data_file = path.join("db");
    match mark::check(&db, path).map_err(open_error)? {
        Ok(_) => {}
        Err(behind) => report.damage.push(Damage {
            file: behind.file.clone(),
            offset: None,
            what: behind.to_string(),
        }),
    }
    match db.get(keys::meta("format")) {
        Ok(Some(_)) => {}
        Ok(None) => report.damage.push(Damage {
            file: data_file.clone(),
            offset: None,
            what: "no Tern format mark: sled holds no Tern store".to_owned(),
        }),
        Err(e) => report.damage.push(Damage {
            file: data_file.clone(),
            offset: None,
            what: format!("sled cannot read it: {e}"),
        }),
    }
    let mut overlay: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    match wal::replay(path, false) {
        Ok(replay) => {
            report.wal_files = replay.files;
            report.wal_records = replay.groups.len();
            report.wal_octets = replay.octets;
            for ops in &replay.groups {
                lay_over(&mut overlay, ops);
            }
            if let Some(torn) = replay.torn {
                let damage = Damage {
                    file: torn.path.clone(),
                    offset: Some(torn.offset),
                    what: format!(
                        "{}: a torn tail, never acknowledged \
                         (repaired by `--repair` or the daemon's next start)",
                        torn.reason
                    ),
                };
                if repair {
                    wal::truncate(&torn).map_err(|e| {
                        open_error(format!(
                            "cutting the torn tail of {}: {e}",
                            torn.path.display()
                        ))
                    })?;
                    report.repaired.push(damage);
                } else {
                    report.damage.push(damage);
                }
            }
        }
        Err(wal::ReplayError::Corrupt(corrupt)) => report.damage.push(Damage {
            file: corrupt.path.clone(),
            offset: Some(corrupt.offset),
            what: format!(
                "{} with acknowledged records after it: not repairable without losing them",
                corrupt.reason
            ),
        }),
        Err(wal::ReplayError::Io(e)) => {
            return Err(open_error(format!("reading the write-ahead log: {e}")))
        }
    }
    let mut undecodable = 0usize;
    // sled as the daemon reads it: records and the other long-lived keys
    // packed many to a sled key (`memtable/disk.rs`).
    let disk = Disk::new(db.clone());
    let scanned =
        merged(
            &disk,
            &overlay,
            keys::MESSAGE,
            |_, value| match MessageRecord::from_stored(value).map(|r| r.state) {
                Ok(State::Queued) => report.queued += 1,
                Ok(State::InFlight) => report.in_flight += 1,
                Ok(State::Submitted) => report.submitted += 1,
                Ok(State::Final) => report.finished += 1,
                Err(_) => undecodable += 1,
            },
        )
        .and_then(|()| {
            merged(&disk, &overlay, keys::UNMATCHED, |_, _| {
                report.receipts_held += 1
            })
        })
        .and_then(|()| merged(&disk, &overlay, keys::OUTBOX, |_, _| report.outbox += 1));
    if let Err(e) = scanned {
        report.damage.push(Damage {
            file: data_file.clone(),
            offset: None,
            what: format!("sled cannot read its records: {e}"),
        });
    }
    if undecodable > 0 {
        report.damage.push(Damage {
            file: data_file,
            offset: None,
            what: format!("{undecodable} message records cannot be decoded"),
        });
    }
    Ok(report)
}

/// Lays a log record's writes over what is laid already (later wins).
fn lay_over(overlay: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>, ops: &Ops) {
    for (key, value) in ops.entries() {
        overlay.insert(key.to_vec(), value.map(<[u8]>::to_vec));
    }
}

/// Calls `each` with every entry under `prefix` as the daemon would see it
/// after replaying the log: sled's, unless the log wrote the key, then the
/// log's last write (a remove hides it).
fn merged(
    disk: &Disk,
    overlay: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: u8,
    mut each: impl FnMut(&[u8], &[u8]),
) -> sled::Result<()> {
    let start = [prefix];
    let end = crate::memtable::prefix_end(&start);
    for entry in disk.range(Bound::Included(&start[..]), crate::memtable::as_ref(&end)) {
        let (key, value) = entry?;
        if !overlay.contains_key(key.as_ref()) {
            each(&key, &value);
        }
    }
    for (key, value) in overlay.range(vec![prefix]..) {
        if key.first() != Some(&prefix) {
            break;
        }
        if let Some(value) = value {
            each(key, value);
        }
    }
    Ok(())
}
