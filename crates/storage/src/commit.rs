//! Group commit: one `fdatasync` serves every write that arrived while the
//! previous one ran.
//!
//! In durable mode writers do not touch sled themselves: they hand their
//! operation (a set of inserts and removes that must land together) to the
//! logger thread and wait. The logger takes every operation queued so far,
//! appends them to the write-ahead log ([`crate::wal`]) as one record and
//! `fdatasync`s it. The applier thread then applies the group to sled and
//! answers its writers. The two form a pipeline: while the applier works
//! on one group, the logger writes and syncs the next.
//!
//! The applier inserts and removes key by key, not as a `sled::Batch`:
//! sled 0.34 writes and `sync_file_range`s its log around every batch, on
//! a thread pool whose every idle thread it wakes, about 150 µs of system
//! time each (crates/storage/README.md). Atomicity comes from the log
//! instead: a group is applied only once its record is on disk, and a
//! crash in the middle of applying it is completed by the replay at the
//! next open. Readers do not see a group half applied: the applier holds
//! the [`Gate`] for writing while it applies, and the store's point reads
//! take it for reading.
//!
//! sled itself is flushed only at a checkpoint: when the log passes
//! [`CHECKPOINT_BYTES`], when a write made outside the committer must
//! become durable (a sled transaction), and when the store closes. A
//! checkpoint flushes sled, `fdatasync`s sled's data file (sled 0.34's own
//! flush only issues `sync_file_range`, which is not enough across a power
//! cut), records the checkpoint in the mark that lets the next open
//! tell a sled that lost durable writes ([`crate::mark`]) and removes the
//! log files it made redundant.
//!
//! In fast mode the same two threads run, but the logger syncs the log
//! only every interval (and when the log goes quiet for that long), not
//! once a group: a write returns once applied, a process crash loses
//! nothing (the log is in the kernel's page cache), and a power cut loses
//! at most the last interval. Writes that must survive even that (the
//! sequence's high-water mark) ask for [`Wait::Durable`] and get a sync.
//!
//! Every write to sled goes through the committer, also the ones whose
//! durability nothing needs (claims, outbox acknowledgements): the log is
//! replayed in order over whatever sled recovered, so a write that
//! bypassed it could be undone by the replay of an older one.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{mpsc, Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use sled::Batch;
use tokio::sync::oneshot;

use crate::mark::Mark;
use crate::wal::Wal;

/// The log size at which the logger asks for a checkpoint: large enough
/// that sled's flush is rare, small enough that a restart replays quickly.
pub(crate) const CHECKPOINT_BYTES: u64 = 64 << 20;

/// Held for writing while a group is applied, for reading by each point
/// read, so no read sees a group half applied.
pub(crate) type Gate = Arc<RwLock<()>>;

/// Inserts and removes that must land together.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Ops(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Ops {
    pub(crate) fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .push((key.as_ref().to_vec(), Some(value.as_ref().to_vec())));
    }

    pub(crate) fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.0.push((key.as_ref().to_vec(), None));
    }

    /// The operations in order: a value to insert, or `None` to remove.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    /// Adds these operations to `batch`; later ones win on the same key, as
    /// they would applied one after the other.
    pub(crate) fn into_batch(self, batch: &mut Batch) {
        for (key, value) in self.0 {
            match value {
                Some(value) => batch.insert(key, value),
                None => batch.remove(key),
            }
        }
    }
}

/// Why a group was not written: shared by every writer of the group, so
/// it is cloned to each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub(crate) struct Failure {
    /// The file system had no room (ENOSPC, EDQUOT, or less free space
    /// than the log keeps in reserve, see [`crate::wal::RESERVE`]): a
    /// temporary refusal, which clears once space returns.
    pub(crate) full: bool,
    /// What the file system or sled said.
    pub(crate) reason: String,
}

impl Failure {
    fn other(reason: impl Into<String>) -> Self {
        Self {
            full: false,
            reason: reason.into(),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Self {
        Self {
            full: crate::error::no_space(&err),
            reason: err.to_string(),
        }
    }
}

impl From<sled::Error> for Failure {
    fn from(err: sled::Error) -> Self {
        match err {
            sled::Error::Io(err) => err.into(),
            other => Self::other(other.to_string()),
        }
    }
}

type Waiter = oneshot::Sender<Result<(), Failure>>;

/// When the logger syncs the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncPolicy {
    /// After every group, before it is applied (durable mode).
    EachGroup,
    /// At most this long after an unsynced group was appended (fast mode),
    /// and at once for a group that holds a [`Wait::Durable`] write.
    Every(Duration),
}

/// What a writer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// In the log and applied; on disk by the [`SyncPolicy`]'s interval.
    Applied,
    /// On disk in the log, and applied: every later read sees it.
    Durable,
    /// On disk in sled itself: for writes made straight to sled, which the
    /// log does not hold. Costs a checkpoint.
    Checkpoint,
}

struct Job {
    ops: Ops,
    wait: Wait,
    waiter: Waiter,
}

/// A group on its way from the logger to the applier.
struct Logged {
    jobs: Vec<Job>,
    /// Whether its record was appended, and synced when the policy or one
    /// of its writers asked for it.
    synced: Result<(), Failure>,
    /// Checkpoint after applying it, then remove the log files before
    /// this generation (the logger has moved on to it).
    checkpoint: Option<u64>,
}

/// Counts that show whether writes are being grouped.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Groups logged and applied.
    pub flushes: AtomicU64,
    /// Writes those groups made durable.
    pub writes: AtomicU64,
    /// `fdatasync`s of the log, one per group.
    pub syncs: AtomicU64,
    /// Checkpoints: sled flushed and older log files removed.
    pub checkpoints: AtomicU64,
    /// Whether the last group failed for want of disk space: set by a
    /// group refused as full, cleared by the next group written whole (so
    /// the store reports itself full exactly while writes are refused).
    pub full: std::sync::atomic::AtomicBool,
}

/// The committer's handle. Dropping it stops its threads and waits for
/// them, so the database (and its file lock) is released on return.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: Option<mpsc::Sender<Job>>,
    logger: Option<thread::JoinHandle<()>>,
    applier: Option<thread::JoinHandle<()>>,
    stats: Arc<CommitStats>,
}

/// The next group's first job, or `None` once every sender (the store) is
/// gone. While appended records wait for their sync (`unsynced_since`),
/// waits no longer than the policy's interval and syncs when it passes.
fn next_job(
    jobs: &mpsc::Receiver<Job>,
    wal: &Wal,
    policy: SyncPolicy,
    unsynced_since: &mut Option<Instant>,
    stats: &CommitStats,
) -> Option<Job> {
    loop {
        let (SyncPolicy::Every(interval), Some(since)) = (policy, *unsynced_since) else {
            return jobs.recv().ok();
        };
        match jobs.recv_timeout(interval.saturating_sub(since.elapsed())) {
            Ok(job) => return Some(job),
            Err(RecvTimeoutError::Timeout) => {
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                *unsynced_since = match wal.sync() {
                    Ok(()) => None,
                    Err(err) => {
                        // Nobody waits on this sync: try again an interval on.
                        tracing::warn!(%err, "syncing the write-ahead log failed");
                        Some(Instant::now())
                    }
                };
            }
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

/// The logger thread: appends each group, and syncs as `policy` says.
fn log_groups(
    mut wal: Wal,
    jobs: mpsc::Receiver<Job>,
    applier: mpsc::Sender<Logged>,
    stats: Arc<CommitStats>,
    policy: SyncPolicy,
) {
    let mut unsynced_since = None;
    while let Some(first) = next_job(&jobs, &wal, policy, &mut unsynced_since, &stats) {
        let group: Vec<Job> = std::iter::once(first).chain(jobs.try_iter()).collect();
        let ops: Vec<&Ops> = group.iter().map(|job| &job.ops).collect();
        let wanted = group.iter().any(|job| job.wait == Wait::Checkpoint);
        let mut synced = wal.append(&ops).map_err(Failure::from);
        let sync_now = match policy {
            SyncPolicy::EachGroup => true,
            // A new log file starts only after the old one is synced whole:
            // replay takes damage as a torn write only in the last file.
            SyncPolicy::Every(interval) => {
                wanted
                    || group.iter().any(|job| job.wait == Wait::Durable)
                    || wal.len() >= CHECKPOINT_BYTES
                    || unsynced_since.is_some_and(|t: Instant| t.elapsed() >= interval)
            }
        };
        if synced.is_ok() {
            if sync_now {
                synced = wal.sync().map_err(Failure::from);
                stats.syncs.fetch_add(1, Ordering::Relaxed);
                // A failed sync leaves the tail unsynced: fast mode tries
                // again an interval on (this group's writers get the error).
                unsynced_since = synced.is_err().then(Instant::now);
            } else {
                unsynced_since.get_or_insert_with(Instant::now);
            }
        }
        let mut checkpoint = None;
        if synced.is_ok() && (wanted || wal.len() >= CHECKPOINT_BYTES) {
            // Later groups go to a new file; the applier removes the older
            // ones once sled holds everything logged in them.
            match wal.start_next() {
                Ok(()) => checkpoint = Some(wal.generation()),
                Err(err) => tracing::warn!(%err, "cannot start a new log file; keeping this one"),
            }
            if wanted && checkpoint.is_none() {
                // The transaction still needs sled flushed: remove nothing.
                checkpoint = Some(0);
            }
        }
        let logged = Logged {
            jobs: group,
            synced,
            checkpoint,
        };
        if applier.send(logged).is_err() {
            break;
        }
    }
    if unsynced_since.is_some() {
        if let Err(err) = wal.sync() {
            tracing::warn!(%err, "syncing the write-ahead log at close failed");
        }
    }
}

/// The applier's state.
struct Applier {
    db: sled::Db,
    data_file: File,
    store: std::path::PathBuf,
    gate: Gate,
    stats: Arc<CommitStats>,
    /// Says how far sled got at each checkpoint ([`crate::mark`]).
    mark: Mark,
}

impl Applier {
    /// sled's own durability point: everything applied so far is in its
    /// files, so the log files before `generation` are redundant.
    fn checkpoint(&mut self, generation: u64) -> Result<(), Failure> {
        self.mark.checkpoint(&self.db, &self.data_file)?;
        crate::wal::remove_before(&self.store, generation)?;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn apply(&self, jobs: &[Job]) -> Result<(), Failure> {
        let _writing = self.gate.write().unwrap_or_else(|p| p.into_inner());
        for job in jobs {
            for (key, value) in job.ops.entries() {
                match value {
                    Some(value) => self.db.insert(key, value).map(drop),
                    None => self.db.remove(key).map(drop),
                }?;
            }
        }
        Ok(())
    }

    /// Every writer of a group is answered after the whole group: answering
    /// each as its own operations land was tried (session 6) and made groups
    /// smaller (5 writes instead of 31 with 64 writers), so more syncs and
    /// fewer writes per second (54–58 k against 66 k in `store_bench`).
    fn run(mut self, groups: mpsc::Receiver<Logged>) {
        while let Ok(logged) = groups.recv() {
            let mut outcome = logged.synced.and_then(|()| self.apply(&logged.jobs));
            if let (Ok(()), Some(generation)) = (&outcome, logged.checkpoint) {
                outcome = self.checkpoint(generation);
            }
            let full = matches!(&outcome, Err(f) if f.full);
            if self.stats.full.swap(full, Ordering::Relaxed) != full {
                if full {
                    tracing::warn!(
                        "message store full: writes are refused until disk space returns"
                    );
                } else {
                    tracing::info!("message store writable again: disk space returned");
                }
            }
            self.stats.flushes.fetch_add(1, Ordering::Relaxed);
            self.stats
                .writes
                .fetch_add(logged.jobs.len() as u64, Ordering::Relaxed);
            for job in logged.jobs {
                let _ = job.waiter.send(outcome.clone());
            }
        }
        // A clean close leaves sled complete and the log empty, so the
        // next open has nothing to replay.
        if let Err(err) = self.checkpoint(u64::MAX) {
            tracing::warn!(%err, "checkpoint at close failed; the log will be replayed at the next open");
        }
    }
}

impl GroupCommit {
    /// Starts the logger and the applier for `db` at `store`, whose data
    /// file is `data_file`, with a new log file. The caller has replayed
    /// and cleared any older log.
    pub(crate) fn start(
        db: sled::Db,
        data_file: File,
        store: &Path,
        gate: Gate,
        policy: SyncPolicy,
        mark: Mark,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (to_apply, groups) = mpsc::channel::<Logged>();
        let stats = Arc::new(CommitStats::default());
        let applier = Applier {
            db,
            data_file,
            store: store.to_path_buf(),
            gate,
            stats: stats.clone(),
            mark,
        };
        let wal = Wal::create(store)?;
        let applier = thread::Builder::new()
            .name("tern-store-apply".to_owned())
            .spawn(move || applier.run(groups))?;
        let logger_stats = stats.clone();
        let logger = thread::Builder::new()
            .name("tern-store-log".to_owned())
            .spawn(move || log_groups(wal, jobs, to_apply, logger_stats, policy))?;
        Ok(Self {
            queue: Some(queue),
            logger: Some(logger),
            applier: Some(applier),
            stats,
        })
    }

    /// Logs and applies `ops` with the next group and waits for what
    /// `wait` says. Empty `ops` just wait for everything written before.
    pub(crate) async fn write(&self, ops: Ops, wait: Wait) -> Result<(), Failure> {
        let stopped = || Failure::other("the committer has stopped");
        let (waiter, rx) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { ops, wait, waiter })
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    pub(crate) fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the logger once it has logged every
        // operation already queued; its end ends the applier's loop in turn.
        self.queue.take();
        if let Some(logger) = self.logger.take() {
            let _ = logger.join();
        }
        if let Some(applier) = self.applier.take() {
            let _ = applier.join();
        }
    }
}
