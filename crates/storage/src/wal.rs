//! The write-ahead log that makes durable writes durable.
//!
//! sled 0.34 writes and `sync_file_range`s its log around every batch and
//! every flush, on a thread pool whose every idle thread it wakes: about
//! 180 µs of system CPU and twenty context switches per durable write,
//! whether a group carries one write or fifty (crates/storage/README.md,
//! "Durable writes: the write-ahead log"). So the committer writes each
//! group's operations here, one appended record and one `fdatasync`, and
//! applies them to sled key by key, without batches and without flushing
//! it. sled is flushed only at a checkpoint, after which the log's older
//! files are no longer needed.
//!
//! A log is a directory of files named by a generation number
//! (`0000000000000001.wal`), each a sequence of records:
//!
//! ```text
//! length: u32 LE | crc32 of the payload: u32 LE | payload
//! payload: (1 | key length u32 LE | key | value length u32 LE | value
//!          | 0 | key length u32 LE | key)*          insert or remove, in order
//! ```
//!
//! Replaying is idempotent: every operation is a blind insert or remove of
//! one key, so applying the whole log in order over any state sled reached
//! by applying a prefix of it gives the same result.
//!
//! Space is allocated ahead of the records, [`CHUNK`] at a time, and
//! records are written in place: an `fdatasync` of a file that did not grow
//! writes the data only, where one that grew also writes the inode (its
//! size) — measured on this machine's ext4, 100 µs against 70 µs per
//! sync. So a file is longer than what was logged in it, and ends in
//! zeros: a header of zeros ends its records (no record is empty).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::commit::Ops;

/// The log's directory inside the store's.
pub(crate) const DIR: &str = "wal";

const INSERT: u8 = 1;
const REMOVE: u8 = 0;
const HEADER: usize = 8;

/// Space allocated at a time, ahead of the records.
const CHUNK: u64 = 4 << 20;

/// Free space the log leaves on the store's file system: a group that
/// would leave less is refused as full ([`std::io::ErrorKind::StorageFull`])
/// before anything of it is written.
///
/// Why: sled 0.34 treats a failed write of its own files (ENOSPC too) as
/// fatal for the process's lifetime (its "global error" is sticky: every
/// later operation fails until the database is opened again). So the log,
/// which every write passes first, must meet the full disk before sled
/// does: what sled writes after a group was logged (its segments, 512 KiB
/// each, and what a checkpoint flushes) comes out of this reserve. Then a
/// full disk refuses writes cleanly, and the first write after space
/// returns succeeds, without a restart.
pub(crate) const RESERVE: u64 = 8 << 20;

/// The most octets of records the log appends on one free-space check.
///
/// Why: an `fstatfs` per group was one system call in every seven of the
/// daemon's (0.43 per message at 1 session × window 10). Records written in
/// space allocated ahead take nothing from the file system until sled
/// copies them at a checkpoint, so a check that found `free` octets covers
/// the next `(free - RESERVE) / 2` octets of records (while nothing else
/// fills the disk, a group that the per-group check would have refused is
/// still refused), capped here so that another process filling the disk is
/// noticed within this many octets of records: it can take at most this
/// much of sled's reserve.
const SPACE_CHECK_EVERY: u64 = 1 << 20;

/// A record that cannot be read back.
#[derive(Debug, thiserror::Error)]
#[error("{path}: record at offset {offset}: {reason}")]
pub(crate) struct Corrupt {
    pub(crate) path: PathBuf,
    pub(crate) offset: u64,
    pub(crate) reason: &'static str,
}

/// The file being appended to.
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    generation: u64,
    file: File,
    /// Octets of records written.
    len: u64,
    /// Octets allocated (zeros past `len`).
    allocated: u64,
    /// Octets of records the last free-space check still covers
    /// ([`SPACE_CHECK_EVERY`]); 0 after a refusal, so every group checks
    /// again until space returns.
    unchecked: u64,
    /// The last allocation of the next chunk was refused for want of
    /// space: every append tries it again first, even one that would
    /// still fit the allocated tail. Without this a small group (the full
    /// store's one-a-second space probe) slipped into the tail, reported
    /// the store writable again, and the next ordinary group was refused:
    /// `tern_store_full` and `/ready` flapped while no space returned.
    starved: bool,
    /// How free space is read: `f_bavail` of the log's file system;
    /// replaced in tests.
    free_space: fn(&File) -> io::Result<u64>,
}

impl Wal {
    /// Starts a new, empty file after every existing one.
    pub(crate) fn create(store: &Path) -> io::Result<Self> {
        let dir = store.join(DIR);
        std::fs::create_dir_all(&dir)?;
        let generation = generations(&dir)?.last().map_or(1, |g| g + 1);
        let file = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(dir.join(file_name(generation)))?;
        let mut wal = Self {
            dir,
            generation,
            file,
            len: 0,
            allocated: 0,
            unchecked: 0,
            starved: false,
            free_space,
        };
        wal.allocate(CHUNK)?;
        wal.file.sync_all()?;
        // The file's name must survive a crash as well as its contents.
        File::open(&wal.dir)?.sync_all()?;
        Ok(wal)
    }

    /// Makes room for `more` octets past the records. The next sync also
    /// writes the new size; the ones after it, the data only.
    fn allocate(&mut self, more: u64) -> io::Result<()> {
        let to = (self.len + more.max(CHUNK)).max(self.allocated);
        let len = to - self.allocated;
        self.starved = true;
        self.room(len + RESERVE)?;
        if len > 0 {
            let flags = rustix::fs::FallocateFlags::empty();
            match rustix::fs::fallocate(&self.file, flags, self.allocated, len) {
                Ok(()) => {}
                // A file system without it: the zeros are written instead.
                Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => {
                    let zeros = vec![0; usize::try_from(len).map_err(io::Error::other)?];
                    self.file.write_all_at(&zeros, self.allocated)?;
                }
                Err(err) => return Err(err.into()),
            }
        }
        self.allocated = to;
        self.starved = false;
        Ok(())
    }

    /// Appends one record holding `ops`, in order; nothing when they hold
    /// no operation. Not yet durable: [`Wal::sync`] for that.
    pub(crate) fn append(&mut self, ops: &[&Ops]) -> io::Result<()> {
        let mut record = vec![0u8; HEADER];
        for ops in ops {
            for (key, value) in ops.entries() {
                match value {
                    Some(value) => {
                        record.push(INSERT);
                        put_bytes(&mut record, key);
                        put_bytes(&mut record, value);
                    }
                    None => {
                        record.push(REMOVE);
                        put_bytes(&mut record, key);
                    }
                }
            }
        }
        if record.len() == HEADER {
            return Ok(());
        }
        // Even in space already allocated: sled's copy of the group needs
        // room of its own.
        self.room_for_record(record.len() as u64)?;
        let payload_len = u32::try_from(record.len() - HEADER)
            .map_err(|_| io::Error::other("a write group over 4 GiB"))?;
        let crc = crc32fast::hash(&record[HEADER..]);
        record[..4].copy_from_slice(&payload_len.to_le_bytes());
        record[4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let end = self.len + record.len() as u64;
        if end > self.allocated || self.starved {
            self.allocate(record.len() as u64)?;
        }
        if let Err(err) = self.file.write_all_at(&record, self.len) {
            // Zero whatever part of the record went in, so the next record
            // follows a whole one and the replay does not take the log for
            // corrupt. (The space is allocated: zeros fit.)
            let _ = self.file.write_all_at(&vec![0; record.len()], self.len);
            return Err(err);
        }
        self.len = end;
        Ok(())
    }

    /// `Err` (StorageFull) when the file system has less than [`RESERVE`]
    /// free for a record of `octets`: checked again only once the records
    /// appended since the last check pass what it covered
    /// ([`SPACE_CHECK_EVERY`]).
    fn room_for_record(&mut self, octets: u64) -> io::Result<()> {
        if let Some(left) = self.unchecked.checked_sub(octets) {
            self.unchecked = left;
            return Ok(());
        }
        self.unchecked = 0;
        let free = self.room(RESERVE)?;
        self.unchecked = ((free - RESERVE) / 2).min(SPACE_CHECK_EVERY);
        Ok(())
    }

    /// The octets free when the file system has at least `needed` free for
    /// this process (`f_bavail`: what root keeps back is not ours to count
    /// on); `Err` (StorageFull) when it has less.
    fn room(&self, needed: u64) -> io::Result<u64> {
        let free = (self.free_space)(&self.file)?;
        if free >= needed {
            return Ok(free);
        }
        Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "{free} octets free on the store's file system, {needed} needed \
                 ({RESERVE} kept free for sled)"
            ),
        ))
    }

    /// Puts everything appended so far on disk.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Octets of records in the current file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Moves on to a new file; the older ones stay until
    /// [`remove_before`] says sled holds what they logged.
    pub(crate) fn start_next(&mut self) -> io::Result<()> {
        let store = self.dir.parent().unwrap_or(Path::new(".")).to_path_buf();
        *self = Self::create(&store)?;
        Ok(())
    }

    /// The current file, for errors: the thing a failed write was about.
    pub(crate) fn describe(&self) -> String {
        format!(
            "the write-ahead log {}",
            self.dir.join(file_name(self.generation)).display()
        )
    }

    /// The current file's generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }
}

/// Removes the log files older than `generation`: once sled holds, durably,
/// everything logged in them.
pub(crate) fn remove_before(store: &Path, generation: u64) -> io::Result<()> {
    let dir = store.join(DIR);
    let mut removed = false;
    for old in generations(&dir)? {
        if old < generation {
            std::fs::remove_file(dir.join(file_name(old)))?;
            removed = true;
        }
    }
    if removed {
        File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

/// Octets free for this process on `file`'s file system.
fn free_space(file: &File) -> io::Result<u64> {
    let stat = rustix::fs::fstatvfs(file)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

fn put_bytes(record: &mut Vec<u8>, bytes: &[u8]) {
    // Keys and values are a message record at most: far below 4 GiB.
    record.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    record.extend_from_slice(bytes);
}

fn file_name(generation: u64) -> String {
    format!("{generation:016}.wal")
}

/// The generations present, oldest first.
fn generations(dir: &Path) -> io::Result<Vec<u64>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".wal")) else {
            continue;
        };
        if let Ok(generation) = stem.parse() {
            found.push(generation);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// What a replay found.
#[derive(Debug)]
pub(crate) enum ReplayError {
    Io(io::Error),
    Corrupt(Corrupt),
}

/// A damaged end of the last log file: the group being written when the
/// process or the machine stopped. Its writers were never answered, so
/// dropping it loses nothing that was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The log file.
    pub path: PathBuf,
    /// Where the last whole record ends: everything from here on is dropped.
    pub offset: u64,
    /// What was found there.
    pub reason: &'static str,
}

impl std::fmt::Display for TornTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: torn tail at offset {}: {}",
            self.path.display(),
            self.offset,
            self.reason
        )
    }
}

/// The log as a replay read it.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Every whole record, oldest first, as operations to apply in order.
    pub(crate) groups: Vec<Ops>,
    /// The log's files, oldest first, with their sizes on disk.
    pub(crate) files: Vec<(PathBuf, u64)>,
    /// Octets of whole records, all files together.
    pub(crate) octets: u64,
    /// The damaged end of the last file, left out of `groups`.
    pub(crate) torn: Option<TornTail>,
}

/// Every record of every file under `store`, oldest first, as operations to
/// apply in order. A file's records end at a header of zeros (the space
/// allocated ahead) or at its end. The last file may end in a record cut
/// short or damaged by a crash (its writer was never answered): it is left
/// out and reported as [`Replay::torn`]. A bad record anywhere else, or
/// data after the zeros that end a file that is not the last, is
/// corruption: a crash cannot make it (a group is written only after the
/// one before it was synced, and a new file only after the old one was
/// synced whole), so the records after it were acknowledged and cannot be
/// dropped.
///
/// With `unsynced_tail` (a store opened in fast mode, whose log is synced
/// only on an interval) a power cut may have kept some of the last
/// interval's pages and lost others, so the first damaged record of the
/// last file ends the replay, whatever follows it: those writes are the
/// loss fast mode allows.
pub(crate) fn replay(store: &Path, unsynced_tail: bool) -> Result<Replay, ReplayError> {
    let dir = store.join(DIR);
    let mut replay = Replay::default();
    if !dir.exists() {
        return Ok(replay);
    }
    let generations = generations(&dir).map_err(ReplayError::Io)?;
    for (n, generation) in generations.iter().enumerate() {
        let path = dir.join(file_name(*generation));
        let mut bytes = Vec::new();
        File::open(&path)
            .and_then(|mut file| file.read_to_end(&mut bytes))
            .map_err(ReplayError::Io)?;
        replay.files.push((path.clone(), bytes.len() as u64));
        let last = n + 1 == generations.len();
        let mut at = 0usize;
        let torn = |at: usize, reason| {
            Some(TornTail {
                path: path.clone(),
                offset: at as u64,
                reason,
            })
        };
        while at < bytes.len() {
            let corrupt = |reason| {
                ReplayError::Corrupt(Corrupt {
                    path: path.clone(),
                    offset: at as u64,
                    reason,
                })
            };
            if bytes[at..].len() >= HEADER && zeros(&bytes[at..at + HEADER]) {
                // The end of what was logged in this file. In the last file
                // a crash may have left parts of an unanswered group past
                // it; anywhere else it must be zeros to the end.
                if !zeros(&bytes[at..]) {
                    if !last {
                        return Err(corrupt("data after the end of the records"));
                    }
                    replay.torn = torn(at, "data after the end of the records");
                }
                break;
            }
            match read_record(&bytes[at..]) {
                Ok((ops, used)) => {
                    replay.groups.push(ops);
                    replay.octets += used as u64;
                    at += used;
                }
                // A torn tail: the crash came while this group was written.
                Err(Bad::Short) if last => {
                    replay.torn = torn(at, "the last record is cut short");
                    break;
                }
                Err(Bad::Short) => return Err(corrupt("cut short")),
                // A checksum that fails on the last record of the last file
                // is a torn write too (its octets reached the disk only in
                // part); one followed by more records is corruption.
                Err(Bad::Checksum(used)) if last && bytes.get(at + used..).is_none_or(zeros) => {
                    replay.torn = torn(at, "checksum mismatch in the last record");
                    break;
                }
                Err(Bad::Checksum(_)) if last && unsynced_tail => {
                    tracing::warn!(
                        path = %path.display(),
                        offset = at,
                        "damaged record in the unsynced tail of the write-ahead log; \
                         the writes from there on are dropped (fast mode)"
                    );
                    replay.torn = torn(at, "checksum mismatch in the unsynced tail (fast mode)");
                    break;
                }
                Err(Bad::Checksum(_)) => return Err(corrupt("checksum mismatch")),
                Err(Bad::Malformed) => return Err(corrupt("malformed operations")),
            }
        }
    }
    Ok(replay)
}

/// Cuts the last log file at the end of its last whole record, durably:
/// the torn group is gone from the disk, and every record before it stays.
pub(crate) fn truncate(torn: &TornTail) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(&torn.path)?;
    file.set_len(torn.offset)?;
    file.sync_all()
}

fn zeros(bytes: &[u8]) -> bool {
    bytes.iter().all(|b| *b == 0)
}

enum Bad {
    Short,
    Checksum(usize),
    Malformed,
}

fn read_record(bytes: &[u8]) -> Result<(Ops, usize), Bad> {
    let header = bytes.get(..HEADER).ok_or(Bad::Short)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = bytes.get(HEADER..HEADER + len).ok_or(Bad::Short)?;
    if crc32fast::hash(payload) != crc {
        return Err(Bad::Checksum(HEADER + len));
    }
    let mut ops = Ops::default();
    let mut rest = payload;
    while let Some((&tag, tail)) = rest.split_first() {
        let (key, tail) = take_bytes(tail).ok_or(Bad::Malformed)?;
        rest = match tag {
            INSERT => {
                let (value, tail) = take_bytes(tail).ok_or(Bad::Malformed)?;
                ops.insert(key, value);
                tail
            }
            REMOVE => {
                ops.remove(key);
                tail
            }
            _ => return Err(Bad::Malformed),
        };
    }
    Ok((ops, HEADER + len))
}

fn take_bytes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = bytes.get(..4)?;
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let value = bytes.get(4..4 + len)?;
    Some((value, &bytes[4 + len..]))
}

/// Removes every log file: after a replay, once sled holds it all durably.
pub(crate) fn clear(store: &Path) -> io::Result<()> {
    if !store.join(DIR).exists() {
        return Ok(());
    }
    remove_before(store, u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory, removed on drop (also when the test fails).
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("tern-wal-{name}-"))
            .tempdir()
            .expect("temp dir")
    }

    fn ops(n: u8) -> Ops {
        let mut ops = Ops::default();
        ops.insert([b'k', n], vec![n; 300]);
        ops.remove([b'r', n]);
        ops
    }

    /// What one record holding `ns` reads back as: their operations, in
    /// order, as one group.
    fn group(ns: &[u8]) -> Ops {
        let mut all = Ops::default();
        for n in ns {
            for (key, value) in ops(*n).entries() {
                match value {
                    Some(value) => all.insert(key, value),
                    None => all.remove(key),
                }
            }
        }
        all
    }

    fn current_file(dir: &Path) -> PathBuf {
        let wal = dir.join(DIR);
        let last = generations(&wal).expect("list").pop().expect("a file");
        wal.join(file_name(last))
    }

    thread_local! {
        /// What the fake file system reports free, and how often it was asked.
        static FREE: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
        static CHECKS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn fake_free(_: &File) -> io::Result<u64> {
        CHECKS.with(|c| c.set(c.get() + 1));
        Ok(FREE.with(std::cell::Cell::get))
    }

    fn checks() -> u64 {
        CHECKS.with(std::cell::Cell::get)
    }

    #[test]
    fn free_space_is_checked_once_per_octets_covered_and_a_full_disk_still_refuses() {
        let tmp = temp_dir("space");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.free_space = fake_free;
        FREE.with(|f| f.set(RESERVE + (1 << 30)));
        // Plenty free: one check covers a mebibyte of records, not one.
        let appends = 3_000u64;
        for n in 0..appends {
            wal.append(&[&ops(n as u8)]).expect("room");
        }
        let bound = 1 + wal.len() / SPACE_CHECK_EVERY;
        assert!(
            checks() <= bound,
            "{} checks for {appends} groups ({} octets), at most {bound} expected",
            checks(),
            wal.len()
        );
        // Another process fills the disk to below the reserve: noticed
        // within SPACE_CHECK_EVERY octets of records, and then refused.
        FREE.with(|f| f.set(RESERVE - 1));
        let from = wal.len();
        let refused = loop {
            match wal.append(&[&ops(1)]) {
                Ok(()) => assert!(
                    wal.len() - from <= SPACE_CHECK_EVERY,
                    "still appending {} octets after the disk filled",
                    wal.len() - from
                ),
                Err(err) => break err,
            }
        };
        assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
        // While full, every group checks again: refused until space returns,
        // then the very next group is written.
        let before = checks();
        for _ in 0..3 {
            assert!(wal.append(&[&ops(2)]).is_err(), "still full");
        }
        assert_eq!(checks() - before, 3, "one check per group while full");
        let len = wal.len();
        FREE.with(|f| f.set(RESERVE));
        wal.append(&[&ops(3)]).expect("space returned");
        assert!(wal.len() > len);
        // Near the reserve, with only the log's own records taking space,
        // a group is refused exactly when the per-group check would refuse
        // it: each check covers half of what is left above the reserve.
        FREE.with(|f| f.set(RESERVE + 40_000));
        wal.unchecked = 0;
        loop {
            let taken = wal.len() - len;
            let free = (RESERVE + 40_000).saturating_sub(taken);
            FREE.with(|f| f.set(free));
            match wal.append(&[&ops(4)]) {
                Ok(()) => assert!(free >= RESERVE, "appended with {free} free"),
                Err(_) => {
                    assert!(free < RESERVE + 1_000, "refused with {free} free");
                    break;
                }
            }
        }
    }

    /// A full store's space probe writes one small group a second. While
    /// the next chunk cannot be allocated, it must be refused like any
    /// other group, though it would fit what is left of the chunk:
    /// otherwise the store reports itself writable, and the next ordinary
    /// group is refused again.
    #[test]
    fn a_small_group_is_refused_while_the_next_chunk_is_though_it_fits_the_tail() {
        let tmp = temp_dir("starved");
        let mut wal = Wal::create(tmp.path()).expect("create");
        wal.free_space = fake_free;
        // Room above the reserve for records in the chunk allocated at
        // create, not for another.
        FREE.with(|f| f.set(RESERVE + 1));
        let mut big = Ops::default();
        big.insert(*b"big", vec![7; 100_000]);
        let refused = loop {
            assert!(wal.len() <= CHUNK, "appended past the chunk allocated");
            if let Err(err) = wal.append(&[&big]) {
                break err;
            }
        };
        assert_eq!(refused.kind(), io::ErrorKind::StorageFull, "{refused}");
        let tail = wal.allocated - wal.len;
        assert!(
            tail > 1_000,
            "{tail} octets left in the chunk: room for ops(1)"
        );
        for _ in 0..3 {
            let small = wal.append(&[&ops(1)]).expect_err("refused while full");
            assert_eq!(small.kind(), io::ErrorKind::StorageFull, "{small}");
        }
        assert_eq!(wal.allocated - wal.len, tail, "nothing went into the tail");
        // Space returns: the small group goes, and the chunk after it.
        FREE.with(|f| f.set(RESERVE + CHUNK));
        wal.append(&[&ops(1)]).expect("space returned");
        wal.append(&[&big]).expect("the next chunk is allocated");
    }

    #[test]
    fn records_read_back_in_order_across_files() {
        let tmp = temp_dir("order");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.append(&[&ops(1), &ops(2)]).expect("append");
        wal.append(&[&ops(3)]).expect("append");
        wal.start_next().expect("next file");
        wal.append(&[&ops(4)]).expect("append");
        assert_eq!(
            replay(&dir, false).expect("replay").groups,
            vec![group(&[1, 2]), ops(3), ops(4)]
        );
        // Once sled holds the first file's groups, it goes.
        remove_before(&dir, wal.generation()).expect("remove");
        drop(wal);
        let mut second = Wal::create(&dir).expect("a later file");
        second.append(&[&ops(5)]).expect("append");
        let groups = replay(&dir, false).expect("replay").groups;
        assert_eq!(groups, vec![ops(4), ops(5)]);
        clear(&dir).expect("clear");
        assert!(replay(&dir, false).expect("replay").groups.is_empty());
    }

    #[test]
    fn a_torn_tail_is_dropped_and_the_rest_kept() {
        let tmp = temp_dir("torn");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.append(&[&ops(1)]).expect("append");
        wal.append(&[&ops(2)]).expect("append");
        let path = current_file(&dir);
        let full = wal.len();
        assert!(
            std::fs::metadata(&path).expect("size").len() > full,
            "space is allocated ahead of the records"
        );
        // Every tear inside the last record loses that record only, whether
        // the rest of it is zeros (allocated space) or gone (a cut file).
        let original = std::fs::read(&path).expect("read");
        for tear in [full - 1, full - 100, full - 300] {
            let mut torn = original.clone();
            torn[tear as usize..full as usize].fill(0);
            std::fs::write(&path, &torn).expect("write");
            assert_eq!(
                replay(&dir, false).expect("replay").groups,
                vec![ops(1)],
                "zeros from {tear}"
            );
            std::fs::write(&path, &original[..tear as usize]).expect("write");
            assert_eq!(
                replay(&dir, false).expect("replay").groups,
                vec![ops(1)],
                "cut at {tear}"
            );
        }
    }

    #[test]
    fn a_torn_tail_is_named_and_truncated_to_the_last_whole_record() {
        let tmp = temp_dir("repair");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.append(&[&ops(1)]).expect("append");
        wal.append(&[&ops(2)]).expect("append");
        let whole = wal.len();
        let path = current_file(&dir);
        let clean = replay(&dir, false).expect("replay");
        assert_eq!(clean.torn, None, "a whole log has no torn tail");
        assert_eq!(clean.octets, whole);
        // Half of a third record, as a crash leaves a group being written.
        let original = std::fs::read(&path).expect("read");
        let record = &original[..(whole / 2) as usize];
        for (cut, reason) in [
            (record.len() / 2, "cut short"),
            (HEADER + 2, "cut short"),
            (HEADER - 3, "cut short"),
        ] {
            let mut bytes = original[..whole as usize].to_vec();
            bytes.extend_from_slice(&record[..cut]);
            std::fs::write(&path, &bytes).expect("write");
            let found = replay(&dir, false).expect("replay");
            assert_eq!(found.groups, vec![ops(1), ops(2)], "cut at {cut}");
            let torn = found.torn.expect("the tail is reported");
            assert_eq!((torn.path.as_path(), torn.offset), (path.as_path(), whole));
            assert!(torn.reason.contains(reason), "{torn}");
            truncate(&torn).expect("repair");
            assert_eq!(std::fs::metadata(&path).expect("size").len(), whole);
            let repaired = replay(&dir, false).expect("replay");
            assert_eq!(repaired.torn, None, "the repair leaves no tail");
            assert_eq!(repaired.groups, vec![ops(1), ops(2)]);
        }
        // Garbage over the allocated zeros: a checksum that fails on the
        // last record.
        let mut bytes = original.clone();
        bytes[whole as usize..whole as usize + HEADER + 20].fill(0x5a);
        bytes[whole as usize..whole as usize + 4].copy_from_slice(&20u32.to_le_bytes());
        std::fs::write(&path, &bytes).expect("write");
        let torn = replay(&dir, false).expect("replay").torn.expect("reported");
        assert_eq!(torn.offset, whole);
        assert!(torn.reason.contains("checksum"), "{torn}");
    }

    #[test]
    fn records_are_written_in_place_and_end_at_the_zeros() {
        let tmp = temp_dir("in-place");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.append(&[&ops(1)]).expect("append");
        // A group of nothing (a checkpoint's own job) writes no record:
        // an empty one would read as the zeros that end the file.
        wal.append(&[&Ops::default()]).expect("append nothing");
        let len = wal.len();
        wal.append(&[&ops(2)]).expect("append");
        assert!(wal.len() > len);
        let path = current_file(&dir);
        let size = std::fs::metadata(&path).expect("size").len();
        // Records past the first chunk make room for themselves.
        let big = {
            let mut big = Ops::default();
            big.insert(*b"big", vec![7u8; CHUNK as usize]);
            big
        };
        wal.append(&[&big]).expect("append past the allocation");
        assert!(std::fs::metadata(&path).expect("size").len() > size);
        wal.append(&[&ops(3)]).expect("append");
        assert_eq!(
            replay(&dir, false).expect("replay").groups,
            vec![ops(1), ops(2), big, ops(3)]
        );
        // Parts of an unanswered group left past the zeros of the last file
        // are a torn write; past those of an earlier file, corruption.
        let mut bytes = std::fs::read(&path).expect("read");
        let past = wal.len() as usize + 64;
        bytes[past] = 0x5a;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(replay(&dir, false).expect("replay").groups.len(), 4);
        wal.start_next().expect("next file");
        wal.append(&[&ops(4)]).expect("append");
        match replay(&dir, false) {
            Err(ReplayError::Corrupt(err)) => {
                assert!(err.to_string().contains("after the end"), "{err}")
            }
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn a_damaged_record_before_others_is_corruption_naming_the_file() {
        let tmp = temp_dir("damaged");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.append(&[&ops(1)]).expect("append");
        wal.append(&[&ops(2)]).expect("append");
        let path = current_file(&dir);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        match replay(&dir, false) {
            Err(ReplayError::Corrupt(err)) => {
                assert!(
                    err.to_string().contains(&path.display().to_string()),
                    "{err}"
                );
                assert!(err.to_string().contains("checksum"), "{err}");
            }
            other => panic!("expected corruption, got {other:?}"),
        }
        // The same damage in the last record of the last file is a torn
        // write: the record is dropped.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[20] ^= 0xff;
        let last = wal.len() as usize - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert_eq!(replay(&dir, false).expect("replay").groups, vec![ops(1)]);
    }

    #[test]
    fn in_an_unsynced_tail_the_first_damaged_record_ends_the_replay() {
        let tmp = temp_dir("unsynced");
        let dir = tmp.path().to_path_buf();
        let mut wal = Wal::create(&dir).expect("create");
        wal.append(&[&ops(1)]).expect("append");
        let second = wal.len() as usize;
        wal.append(&[&ops(2)]).expect("append");
        wal.append(&[&ops(3)]).expect("append");
        let path = current_file(&dir);
        // A page of the second record lost by a power cut, the third kept.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[second + HEADER + 2] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert!(matches!(replay(&dir, false), Err(ReplayError::Corrupt(_))));
        assert_eq!(replay(&dir, true).expect("replay").groups, vec![ops(1)]);
        // Only in the last file: an earlier one was synced whole before
        // the next was started.
        wal.start_next().expect("next");
        wal.append(&[&ops(4)]).expect("append");
        assert!(matches!(replay(&dir, true), Err(ReplayError::Corrupt(_))));
    }
}
