//! The checkpoint mark: how far sled must have got.
//!
//! sled 0.34 checksums every record of its log, and at open it stops
//! reading at the first record whose checksum fails and carries on as if
//! the log ended there: no error, no warning. A flipped byte in its data
//! file silently drops every write logged after it; one near the start
//! opens an empty database (measured: crates/storage/README.md, "Damaged
//! files"). The write-ahead log cannot make up for it: its files are
//! removed at each checkpoint, once sled holds what they logged.
//!
//! So each checkpoint writes a counter into sled (the meta key
//! `checkpoint`, the last write before sled's flush) and, once sled's
//! flush and `fdatasync` returned, the same counter into the file
//! `checkpoint` beside sled's. At open, sled must hold at least the
//! counter the file holds: a crash can leave sled one checkpoint ahead of
//! the file, never behind it. Behind it, sled lost durable writes, and the
//! store refuses to open rather than run on what is left.
//!
//! The file holds two slots, written in turn, each a counter and its
//! CRC-32: a write torn by a power cut spoils one slot, and the other
//! still holds the previous checkpoint. A file with no valid slot (one
//! created by a checkpoint the power cut interrupted) asks for nothing.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::keys;

/// The file's name in the store's directory.
pub(crate) const FILE: &str = "checkpoint";

/// The meta key sled holds the counter under.
const KEY: &str = "checkpoint";

/// Octets between the slots' starts: one disk sector each.
const SLOT: u64 = 512;

/// sled holds less than a completed checkpoint put in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Behind {
    /// sled's data file.
    pub(crate) file: PathBuf,
    /// The checkpoint sled holds (0: none).
    pub(crate) held: u64,
    /// The checkpoint the mark file says was completed.
    pub(crate) completed: u64,
}

impl std::fmt::Display for Behind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sled recovered to checkpoint {} but checkpoint {} was completed: \
             its data file {} is damaged, and sled dropped every write logged \
             after the damage",
            self.held,
            self.completed,
            self.file.display()
        )
    }
}

/// The counter the mark file holds, if any slot is valid.
pub(crate) fn completed(store: &Path) -> io::Result<Option<u64>> {
    let bytes = match std::fs::read(store.join(FILE)) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err),
    };
    let slot = |at: usize| -> Option<u64> {
        let slot = bytes.get(at..at + 12)?;
        let (counter, crc) = slot.split_at(8);
        let crc = u32::from_le_bytes(crc.try_into().ok()?);
        if crc32fast::hash(counter) != crc {
            return None;
        }
        Some(u64::from_le_bytes(counter.try_into().ok()?))
    };
    Ok(slot(0).into_iter().chain(slot(SLOT as usize)).max())
}

/// The counter sled holds (0: none).
pub(crate) fn held(db: &sled::Db) -> sled::Result<u64> {
    Ok(db
        .get(keys::meta(KEY))?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map_or(0, u64::from_be_bytes))
}

/// Compares sled with the mark file; the counter to continue from.
pub(crate) fn check(db: &sled::Db, store: &Path) -> Result<Result<u64, Behind>, String> {
    let held = held(db).map_err(|e| format!("reading sled's checkpoint: {e}"))?;
    let completed = completed(store)
        .map_err(|e| format!("reading {}: {e}", store.join(FILE).display()))?
        .unwrap_or(0);
    if held < completed {
        return Ok(Err(Behind {
            file: store.join("db"),
            held,
            completed,
        }));
    }
    Ok(Ok(held))
}

/// The writer of checkpoints.
#[derive(Debug)]
pub(crate) struct Mark {
    file: File,
    last: u64,
}

impl Mark {
    /// Opens (or creates) the mark file; `last` is what [`check`] returned.
    pub(crate) fn open(store: &Path, last: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(store.join(FILE))?;
        Ok(Self { file, last })
    }

    /// A checkpoint: everything applied to `db` so far is on disk in
    /// `data_file` once this returns, and the mark says so.
    pub(crate) fn checkpoint(
        &mut self,
        db: &sled::Db,
        data_file: &File,
    ) -> Result<(), crate::commit::Failure> {
        let next = self.last + 1;
        use crate::commit::Failure;
        db.insert(keys::meta(KEY), &next.to_be_bytes())
            .map_err(|e| Failure::sled("recording a checkpoint in sled", e))?;
        db.flush()
            .map_err(|e| Failure::sled("flushing sled at a checkpoint", e))?;
        data_file
            .sync_data()
            .map_err(|e| Failure::io("syncing sled's data file", e))?;
        let mut slot = [0u8; 12];
        slot[..8].copy_from_slice(&next.to_le_bytes());
        slot[8..].copy_from_slice(&crc32fast::hash(&next.to_le_bytes()).to_le_bytes());
        self.file
            .write_all_at(&slot, (next % 2) * SLOT)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| Failure::io("writing the checkpoint mark", e))?;
        self.last = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mark_survives_a_torn_slot_and_catches_a_sled_behind_it() {
        let tmp = tempfile::Builder::new()
            .prefix("tern-mark-")
            .tempdir()
            .expect("temp dir");
        let dir = tmp.path().join("store");
        let db = sled::Config::new().path(&dir).open().expect("sled");
        let data = File::open(dir.join("db")).expect("data file");
        assert_eq!(check(&db, &dir).expect("check"), Ok(0), "a new store");
        let mut mark = Mark::open(&dir, 0).expect("mark");
        for _ in 0..3 {
            mark.checkpoint(&db, &data).expect("checkpoint");
        }
        assert_eq!(completed(&dir).expect("read"), Some(3));
        assert_eq!(check(&db, &dir).expect("check"), Ok(3));
        // A spoilt slot (3's): the other still says 2.
        let path = dir.join(FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[SLOT as usize + 2] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(completed(&dir).expect("read"), Some(2));
        // sled behind the file: damage, named.
        db.insert(keys::meta(KEY), &1u64.to_be_bytes())
            .expect("insert");
        let behind = check(&db, &dir).expect("check").expect_err("behind");
        assert_eq!((behind.held, behind.completed), (1, 2));
        assert!(behind
            .to_string()
            .contains(&dir.join("db").display().to_string()));
    }
}
