//! Group commit: one `fdatasync` serves every write that arrived while the
//! previous one ran.
//!
//! Writers do not touch sled themselves: they hand their operation (a set
//! of inserts and removes that must land together) to the logger thread
//! and wait. The logger takes every operation queued so far, appends them
//! to the write-ahead log ([`crate::wal`]) as one record and `fdatasync`s
//! it (in durable mode), then applies the group to the memtable
//! ([`crate::memtable`]), an ordered map in memory, and answers its
//! writers. Applying took a few µs per group beside a sync of about
//! 100 µs, so a second thread for it (a pipeline, until session 13) won
//! no overlap worth having and cost a hand-off per group (a wake-up, a
//! context switch): with 4 writers, whose groups are small, `life_bench`
//! used 306 instead of 371 µs of CPU per message life.
//!
//! sled receives writes only at a checkpoint, on a thread of its own: when the
//! log passes [`CHECKPOINT_BYTES`], when the memtable passes its bound
//! (`StoreOptions::memtable_bytes`), and when the store closes. The logger
//! moves on to a new log file; once the group before that is applied, the
//! checkpointer freezes the memtable (readers still see it, over sled),
//! writes what it holds into sled key by key (a key inserted and removed
//! since the last checkpoint costs sled nothing), flushes sled,
//! `fdatasync`s sled's data file (sled 0.34's own flush only issues
//! `sync_file_range`, which is not enough across a power cut), records the
//! checkpoint in the mark that lets the next open tell a sled that lost
//! durable writes ([`crate::mark`]), drops the frozen memtable and removes
//! the log files it made redundant. Writers and readers go on meanwhile.
//!
//! Key by key, not as a `sled::Batch`: sled 0.34 writes and
//! `sync_file_range`s its log around every batch, on a thread pool whose
//! every idle thread it wakes, about 150 µs of system time each
//! (crates/storage/README.md). Atomicity comes from the log instead: a
//! checkpoint interrupted half way is completed by the replay at the next
//! open, which applies every log file not yet removed.
//!
//! In fast mode the same threads run, but the logger syncs the log only
//! every interval (and when the log goes quiet for that long), not once a
//! group: a write returns once applied, a process crash loses nothing (the
//! log is in the kernel's page cache), and a power cut loses at most the
//! last interval. Writes that must survive even that (the sequence's
//! high-water mark) ask for [`Wait::Durable`] and get a sync.
//!
//! In durable mode, writes whose loss in a power cut costs only work done
//! again (claims, outbox acknowledgements: recovery puts a claimed message
//! back in the ready queue anyway, and an unacknowledged item is delivered
//! again) wait for [`Wait::Applied`] only: their group is appended but not
//! synced, and the next group with a durable write (whose sync covers the
//! whole file), or [`LAZY_SYNC`] of quiet, takes it to disk. A claim then
//! costs no `fdatasync` and the dispatcher does not wait for one.
//!
//! Every write goes through the committer, also the ones whose durability
//! nothing needs (claims, outbox acknowledgements): the log is replayed in
//! order at open, so a write that bypassed it could be undone by the
//! replay of an older one.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::mark::Mark;
use crate::memtable::View;
use crate::wal::Wal;

/// The log size at which the logger asks for a checkpoint: large enough
/// that sled's flush is rare, small enough that a restart replays quickly.
pub(crate) const CHECKPOINT_BYTES: u64 = 64 << 20;

/// The shortest time between two checkpoints the memtable's bound asks
/// for: a checkpoint postponed (disk space) or slow must not make the
/// logger start a new file for every group.
const ASK_EVERY: Duration = Duration::from_millis(250);

/// How often a group held at the memtable's bound looks whether the
/// checkpoint it waits for is done.
const CHECKPOINT_POLL: Duration = Duration::from_millis(1);

/// Inserts and removes that must land together.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Ops(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Ops {
    /// Takes the key and value as owned octets where the caller has them
    /// (an encoded record, a key just built), so they are moved, not
    /// copied again; a slice is copied once.
    pub(crate) fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        self.0.push((key.into(), Some(value.into())));
    }

    pub(crate) fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.0.push((key.into(), None));
    }

    /// The operations in order: a value to insert, or `None` to remove.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_slice(), value.as_deref()))
    }

    /// The operations in order, owned (the memtable keeps the octets).
    pub(crate) fn into_entries(self) -> impl Iterator<Item = (Vec<u8>, Option<Vec<u8>>)> {
        self.0.into_iter()
    }
}

/// Why a group was not written: shared by every writer of the group, so
/// it is cloned to each (the system's error behind an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{what}")]
pub(crate) struct Failure {
    /// The file system had no room (ENOSPC, EDQUOT, or less free space
    /// than the log keeps in reserve, see [`crate::wal::RESERVE`]): a
    /// temporary refusal, which clears once space returns.
    pub(crate) full: bool,
    /// What failed: the file or database written, or the thread that
    /// stopped.
    pub(crate) what: String,
    /// What the file system or sled said, when it said anything.
    #[source]
    pub(crate) source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    /// A failure with no system error under it (a thread that stopped).
    fn other(what: impl Into<String>) -> Self {
        Self {
            full: false,
            what: what.into(),
            source: None,
        }
    }

    /// `err`, met while writing `what`.
    pub(crate) fn io(what: impl Into<String>, err: std::io::Error) -> Self {
        Self {
            full: crate::error::no_space(&err),
            what: what.into(),
            source: Some(Arc::new(err)),
        }
    }

    /// `err`, met while writing `what` into sled.
    pub(crate) fn sled(what: &str, err: sled::Error) -> Self {
        match err {
            sled::Error::Io(err) => Self::io(what, err),
            other => Self {
                full: false,
                what: what.to_owned(),
                source: Some(Arc::new(other)),
            },
        }
    }
}

/// Who waits for a write: a task (every write) or a thread
/// ([`GroupCommit::sync_blocking`], for the daemon's last flush).
enum Waiter {
    Task(oneshot::Sender<Result<(), Failure>>),
    Thread(mpsc::SyncSender<Result<(), Failure>>),
}

impl Waiter {
    fn answer(self, outcome: Result<(), Failure>) {
        match self {
            Self::Task(tx) => drop(tx.send(outcome)),
            Self::Thread(tx) => drop(tx.send(outcome)),
        }
    }
}

/// In durable mode, the longest a group whose writers wait only for its
/// application ([`Wait::Applied`]: claims, outbox acknowledgements) stays
/// in the log unsynced when no durable write comes after it to sync it.
pub(crate) const LAZY_SYNC: Duration = Duration::from_millis(10);

/// When the logger syncs the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncPolicy {
    /// After every group that holds a write waiting for more than its
    /// application, before it is applied (durable mode); a group of
    /// [`Wait::Applied`] writes only is synced with the next such group, or
    /// [`LAZY_SYNC`] after it was appended.
    EachGroup,
    /// At most this long after an unsynced group was appended (fast mode),
    /// and at once for a group that holds a [`Wait::Durable`] write.
    Every(Duration),
}

impl SyncPolicy {
    /// The longest an appended group stays unsynced.
    fn interval(self) -> Duration {
        match self {
            SyncPolicy::EachGroup => LAZY_SYNC,
            SyncPolicy::Every(interval) => interval,
        }
    }
}

/// What a writer waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// In the log and applied; on disk by the [`SyncPolicy`]'s interval.
    Applied,
    /// On disk in the log, and applied: every later read sees it.
    Durable,
    /// On disk in the log, and written into sled by a checkpoint taken
    /// after it: for [`crate::SledStore::checkpoint`] (tests and
    /// benchmarks that show what reaches sled). The daemon never waits
    /// for one.
    Checkpoint,
}

struct Job {
    ops: Ops,
    wait: Wait,
    waiter: Waiter,
}

/// A group logged, on its way to the memtable.
struct Logged {
    jobs: Vec<Job>,
    /// Whether its record was appended, and synced when the policy or one
    /// of its writers asked for it.
    synced: Result<(), Failure>,
    /// The logger moved on to this log generation after this group: a
    /// checkpoint taken once the group is applied makes the older files
    /// redundant.
    checkpoint: Option<u64>,
}

/// Counts that show whether writes are being grouped, and what reaches
/// sled.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Groups logged and applied.
    pub flushes: AtomicU64,
    /// Writes those groups made durable.
    pub writes: AtomicU64,
    /// `fdatasync`s of the log, one per group.
    pub syncs: AtomicU64,
    /// Checkpoints: the memtable written into sled, sled flushed and older
    /// log files removed.
    pub checkpoints: AtomicU64,
    /// Keys checkpoints changed in sled (inserts and removes together; a
    /// key inserted and removed between two checkpoints is not one, nor a
    /// removal of a key sled never had). Shows what the memtable saves:
    /// compare with the operations logged.
    pub sled_keys: AtomicU64,
    /// Operations applied to the memtable (inserts and removes): what
    /// sled received before the memtable.
    pub applied_keys: AtomicU64,
    /// Whether the last group failed for want of disk space: set by a
    /// group refused as full, cleared by the next group written whole (so
    /// the store reports itself full exactly while writes are refused).
    pub full: std::sync::atomic::AtomicBool,
    /// The most the active memtable held after a group was applied while
    /// a checkpoint ran, in its estimated octets: the bound
    /// (`StoreOptions::memtable_bytes`) plus at most one group.
    pub memtable_peak_checkpointing: AtomicU64,
}

/// Told the duration of each `fdatasync` of the write-ahead log, whoever
/// asked for it (a durable group, the lazy sync of applied-only groups, the
/// store's close), failed ones included: what the disk costs the writers
/// waiting on it, which the store's own write latency mixes with queueing.
/// A plain function rather than a metrics type, so the storage crate stays
/// free of any metrics library; the daemon feeds a histogram with it. It
/// runs on the logger thread between two syncs, so it must be cheap and
/// must not block.
#[derive(Clone)]
pub struct SyncObserver(Arc<dyn Fn(Duration) + Send + Sync>);

impl SyncObserver {
    /// An observer calling `observe` with each sync's duration.
    pub fn new(observe: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        Self(Arc::new(observe))
    }
}

impl std::fmt::Debug for SyncObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncObserver")
    }
}

/// Syncs the log, counts it, and tells `observer` how long it took: one
/// `Instant` pair, no allocation, nothing when there is no observer.
fn sync_log(
    wal: &Wal,
    stats: &CommitStats,
    observer: Option<&SyncObserver>,
) -> std::io::Result<()> {
    stats.syncs.fetch_add(1, Ordering::Relaxed);
    let Some(observer) = observer else {
        return wal.sync();
    };
    let start = Instant::now();
    let synced = wal.sync();
    (observer.0)(start.elapsed());
    synced
}

/// The committer's handle. Dropping it stops its threads and waits for
/// them, so the database (and its file lock) is released on return.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: Option<mpsc::Sender<Job>>,
    logger: Option<thread::JoinHandle<()>>,
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
    observer: Option<&SyncObserver>,
) -> Option<Job> {
    let interval = policy.interval();
    loop {
        let Some(since) = *unsynced_since else {
            return jobs.recv().ok();
        };
        match jobs.recv_timeout(interval.saturating_sub(since.elapsed())) {
            Ok(job) => return Some(job),
            Err(RecvTimeoutError::Timeout) => {
                *unsynced_since = match sync_log(wal, stats, observer) {
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

/// The logger thread: appends each group, syncs as `policy` says, and
/// applies it (the [`Applier`]).
/// Moves on to a new log file when the current one passes
/// [`CHECKPOINT_BYTES`] or the applier asks (`rotate`: its memtable passed
/// its bound), and tells the applier, which has a checkpoint taken.
fn log_groups(
    mut wal: Wal,
    jobs: mpsc::Receiver<Job>,
    mut applier: Applier,
    stats: Arc<CommitStats>,
    policy: SyncPolicy,
    rotate: Arc<AtomicBool>,
    observer: Option<SyncObserver>,
) {
    let observer = observer.as_ref();
    let mut unsynced_since = None;
    while let Some(first) = next_job(&jobs, &wal, policy, &mut unsynced_since, &stats, observer) {
        let group: Vec<Job> = std::iter::once(first).chain(jobs.try_iter()).collect();
        let ops: Vec<&Ops> = group.iter().map(|job| &job.ops).collect();
        let mut synced = wal
            .append(&ops)
            .map_err(|e| Failure::io(format!("appending to {}", wal.describe()), e));
        let wanted = group.iter().any(|job| job.wait == Wait::Checkpoint);
        let asked = wanted || rotate.load(Ordering::Relaxed);
        // A new log file starts only after the old one is synced whole:
        // replay takes damage as a torn write only in the last file.
        let sync_now = asked
            || group.iter().any(|job| job.wait != Wait::Applied)
            || wal.len() >= CHECKPOINT_BYTES
            || unsynced_since.is_some_and(|t: Instant| t.elapsed() >= policy.interval());
        if synced.is_ok() {
            if sync_now {
                synced = sync_log(&wal, &stats, observer)
                    .map_err(|e| Failure::io(format!("syncing {}", wal.describe()), e));
                // A failed sync leaves the tail unsynced: fast mode tries
                // again an interval on (this group's writers get the error).
                unsynced_since = synced.is_err().then(Instant::now);
            } else {
                unsynced_since.get_or_insert_with(Instant::now);
            }
        }
        let mut checkpoint = None;
        if synced.is_ok() && (asked || wal.len() >= CHECKPOINT_BYTES) {
            // Later groups go to a new file; the checkpointer removes the
            // older ones once sled holds everything logged in them.
            match wal.start_next() {
                Ok(()) => {
                    checkpoint = Some(wal.generation());
                    rotate.store(false, Ordering::Relaxed);
                }
                Err(err) => {
                    rotate.store(false, Ordering::Relaxed);
                    tracing::warn!(%err, "cannot start a new log file; keeping this one");
                    if wanted {
                        // Still write the memtable into sled: remove nothing.
                        checkpoint = Some(0);
                    }
                }
            }
        }
        applier.take(Logged {
            jobs: group,
            synced,
            checkpoint,
        });
    }
    if unsynced_since.is_some() {
        if let Err(err) = sync_log(&wal, &stats, observer) {
            tracing::warn!(%err, "syncing the write-ahead log at close failed");
        }
    }
    applier.close();
}

/// The checkpoint thread's state: writes frozen memtables into sled.
struct Checkpointer {
    view: Arc<View>,
    data_file: File,
    store: std::path::PathBuf,
    stats: Arc<CommitStats>,
    /// Says how far sled got at each checkpoint ([`crate::mark`]).
    mark: Mark,
    /// Checkpoints asked for and not yet done (the applier asks for no
    /// new log file meanwhile).
    outstanding: Arc<AtomicU64>,
}

impl Checkpointer {
    /// Freezes the memtable, writes it into sled, makes sled durable and
    /// removes the log files before `generation`: they logged nothing
    /// that sled does not now hold. The freeze comes after the applier
    /// applied the last group of those files, so the frozen memtable holds
    /// all of them (and perhaps some groups of the next file, which a
    /// replay applies again harmlessly).
    fn checkpoint(&mut self, generation: u64) -> Result<(), Failure> {
        let frozen = self.view.freeze();
        // sled 0.34 takes a failed write of its files as fatal until it is
        // reopened: the log keeps [`crate::wal::RESERVE`] free for sled,
        // and a checkpoint that would eat into it waits (the frozen
        // memtable stays visible, and is folded into the next freeze).
        let stat = rustix::fs::fstatvfs(&self.data_file)
            .map_err(|e| Failure::io("measuring the free space for a checkpoint", e.into()))?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        let needed = crate::wal::RESERVE + 2 * frozen.bytes() as u64;
        if free < needed {
            return Err(Failure {
                full: true,
                what: format!("checkpoint postponed: {free} octets free, {needed} needed"),
                source: None,
            });
        }
        let written = frozen
            .write_into(self.view.disk())
            .map_err(|e| Failure::sled("a checkpoint into sled", e))?;
        self.stats.sled_keys.fetch_add(written, Ordering::Relaxed);
        // sled holds it all (in its cache, and on disk after the flush
        // below; until then the log still has it).
        self.view.release();
        self.mark.checkpoint(self.view.db(), &self.data_file)?;
        crate::wal::remove_before(&self.store, generation).map_err(|e| {
            Failure::io(
                format!("removing old log files in {}", self.store.display()),
                e,
            )
        })?;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Takes checkpoints as asked, several asked meanwhile as one, and
    /// answers the writers that wait for one; the last one, at close
    /// ([`u64::MAX`]: every log file), when the applier stops.
    fn run(mut self, asked: mpsc::Receiver<Ask>) {
        while let Ok(first) = asked.recv() {
            let mut asks = vec![first];
            asks.extend(asked.try_iter());
            let generation = asks.iter().map(|ask| ask.generation).max().unwrap_or(0);
            let outcome = self.checkpoint(generation);
            if let Err(err) = &outcome {
                if generation == u64::MAX {
                    tracing::warn!(%err, "checkpoint at close failed; the log will be replayed at the next open");
                } else {
                    tracing::warn!(%err, "checkpoint failed; the log is kept and the next one tries again");
                }
            }
            self.outstanding
                .fetch_sub(asks.len() as u64, Ordering::Relaxed);
            for waiter in asks.into_iter().flat_map(|ask| ask.waiters) {
                waiter.answer(outcome.clone());
            }
        }
    }
}

/// A checkpoint asked of the checkpointer: the log generation that the
/// older files end before, and the writers waiting for it.
struct Ask {
    generation: u64,
    waiters: Vec<Waiter>,
}

/// The applier's state: it runs on the logger thread, after each group's
/// append and sync.
struct Applier {
    view: Arc<View>,
    stats: Arc<CommitStats>,
    /// The active memtable's size at which a checkpoint is asked for.
    bound: usize,
    /// Asks the logger for a new log file (and so a checkpoint).
    rotate: Arc<AtomicBool>,
    checkpoints: mpsc::Sender<Ask>,
    outstanding: Arc<AtomicU64>,
    checkpointer: Option<thread::JoinHandle<()>>,
    /// When the memtable's bound last asked for a checkpoint.
    asked_at: Option<Instant>,
}

impl Applier {
    fn apply(&self, jobs: &mut [Job]) {
        let groups: Vec<Ops> = jobs
            .iter_mut()
            .map(|job| std::mem::take(&mut job.ops))
            .collect();
        let keys: usize = groups.iter().map(|ops| ops.0.len()).sum();
        self.view.apply(groups);
        self.stats
            .applied_keys
            .fetch_add(keys as u64, Ordering::Relaxed);
    }

    fn ask_checkpoint(&self, generation: u64, waiters: Vec<Waiter>) {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        let ask = Ask {
            generation,
            waiters,
        };
        if let Err(mpsc::SendError(ask)) = self.checkpoints.send(ask) {
            self.outstanding.fetch_sub(1, Ordering::Relaxed);
            for waiter in ask.waiters {
                waiter.answer(Err(Failure::other("the checkpointer has stopped")));
            }
        }
    }

    /// The memtable's bound holds while a checkpoint runs too: with the
    /// active memtable at its bound and the frozen one still being written
    /// into sled, the next group waits for that checkpoint (its writers
    /// with it). Without this, draining a long outage's backlog (claims
    /// and attempts as fast as the upstreams take them, checkpoints into a
    /// sled of a million messages slower than that) filled the active
    /// memtable to three times its bound, and the daemon's memory with it
    /// (BENCHMARKS.md, "Long outage"). A checkpoint postponed for disk
    /// space or failed is over at once (`outstanding` falls back), so this
    /// never holds writes for longer than one checkpoint's writing.
    fn hold_while_checkpointing(&self) {
        while self.view.active_bytes() >= self.bound && self.outstanding.load(Ordering::Relaxed) > 0
        {
            thread::sleep(CHECKPOINT_POLL);
        }
    }

    /// Applies one logged group and answers its writers. Every writer of a
    /// group is answered after the whole group: answering each as its own
    /// operations land was tried (session 6) and made groups smaller (5
    /// writes instead of 31 with 64 writers), so more syncs and fewer
    /// writes per second (54–58 k against 66 k in `store_bench`).
    fn take(&mut self, mut logged: Logged) {
        let outcome = logged.synced.clone();
        let writes = logged.jobs.len() as u64;
        if outcome.is_ok() {
            self.hold_while_checkpointing();
            self.apply(&mut logged.jobs);
            if self.outstanding.load(Ordering::Relaxed) > 0 {
                self.stats
                    .memtable_peak_checkpointing
                    .fetch_max(self.view.active_bytes() as u64, Ordering::Relaxed);
            }
            if let Some(generation) = logged.checkpoint {
                // Writers waiting for the checkpoint are answered by it.
                let (waiting, answer): (Vec<Job>, Vec<Job>) = std::mem::take(&mut logged.jobs)
                    .into_iter()
                    .partition(|job| job.wait == Wait::Checkpoint);
                logged.jobs = answer;
                let waiters = waiting.into_iter().map(|job| job.waiter).collect();
                self.ask_checkpoint(generation, waiters);
            } else if self.view.active_bytes() >= self.bound
                && self.outstanding.load(Ordering::Relaxed) == 0
                && self.asked_at.is_none_or(|at| at.elapsed() >= ASK_EVERY)
            {
                // The logger moves to a new file with its next group,
                // and the checkpoint follows that group.
                self.rotate.store(true, Ordering::Relaxed);
                self.asked_at = Some(Instant::now());
            }
        }
        let full = matches!(&outcome, Err(f) if f.full);
        if self.stats.full.swap(full, Ordering::Relaxed) != full {
            if full {
                tracing::warn!("message store full: writes are refused until disk space returns");
            } else {
                tracing::info!("message store writable again: disk space returned");
            }
        }
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        self.stats.writes.fetch_add(writes, Ordering::Relaxed);
        for job in logged.jobs {
            job.waiter.answer(outcome.clone());
        }
    }

    /// Takes the last checkpoint and waits for the checkpointer: a clean
    /// close leaves sled complete and the log empty, so the next open has
    /// nothing to replay.
    fn close(self) {
        self.ask_checkpoint(u64::MAX, Vec::new());
        let Self {
            checkpoints,
            checkpointer,
            ..
        } = self;
        drop(checkpoints);
        if let Some(checkpointer) = checkpointer {
            let _ = checkpointer.join();
        }
    }
}

/// How the committer runs.
#[derive(Debug, Clone)]
pub(crate) struct CommitOptions {
    pub(crate) policy: SyncPolicy,
    /// The memtable size (estimated octets) that asks for a checkpoint.
    pub(crate) memtable_bytes: usize,
    /// Told each log sync's duration (`StoreOptions::sync_observer`).
    pub(crate) sync_observer: Option<SyncObserver>,
}

impl GroupCommit {
    /// Starts the logger, the applier and the checkpointer for `view` at
    /// `store`, whose sled data file is `data_file`, with a new log file.
    /// The caller has replayed and cleared any older log.
    pub(crate) fn start(
        view: Arc<View>,
        data_file: File,
        store: &Path,
        options: CommitOptions,
        mark: Mark,
    ) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let (checkpoints, asked) = mpsc::channel::<Ask>();
        let stats = Arc::new(CommitStats::default());
        let outstanding = Arc::new(AtomicU64::new(0));
        let rotate = Arc::new(AtomicBool::new(false));
        let checkpointer = Checkpointer {
            view: view.clone(),
            data_file,
            store: store.to_path_buf(),
            stats: stats.clone(),
            mark,
            outstanding: outstanding.clone(),
        };
        let wal = Wal::create(store)?;
        let checkpointer = thread::Builder::new()
            .name("tern-store-ckpt".to_owned())
            .spawn(move || checkpointer.run(asked))?;
        let applier = Applier {
            view,
            stats: stats.clone(),
            bound: options.memtable_bytes,
            rotate: rotate.clone(),
            checkpoints,
            outstanding,
            checkpointer: Some(checkpointer),
            asked_at: None,
        };
        let logger_stats = stats.clone();
        let (policy, observer) = (options.policy, options.sync_observer);
        let logger = thread::Builder::new()
            .name("tern-store-log".to_owned())
            .spawn(move || {
                log_groups(wal, jobs, applier, logger_stats, policy, rotate, observer)
            })?;
        Ok(Self {
            queue: Some(queue),
            logger: Some(logger),
            stats,
        })
    }

    fn queue(&self, ops: Ops, wait: Wait, waiter: Waiter) -> Result<(), Failure> {
        let stopped = || Failure::other("the committer has stopped");
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Job { ops, wait, waiter })
            .map_err(|_| stopped())
    }

    /// Logs and applies `ops` with the next group and waits for what
    /// `wait` says. Empty `ops` just wait for everything written before.
    pub(crate) async fn write(&self, ops: Ops, wait: Wait) -> Result<(), Failure> {
        let (waiter, rx) = oneshot::channel();
        self.queue(ops, wait, Waiter::Task(waiter))?;
        rx.await
            .map_err(|_| Failure::other("the committer has stopped"))?
    }

    /// Blocks the calling thread until everything written before is on
    /// disk in the log, whatever the mode (for a caller that is not a
    /// task: the daemon's last flush).
    pub(crate) fn sync_blocking(&self) -> Result<(), Failure> {
        let (waiter, rx) = mpsc::sync_channel(1);
        self.queue(Ops::default(), Wait::Durable, Waiter::Thread(waiter))?;
        rx.recv()
            .map_err(|_| Failure::other("the committer has stopped"))?
    }

    pub(crate) fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the logger once it has logged and
        // applied every operation already queued; it then asks for the
        // last checkpoint and waits for the checkpointer.
        self.queue.take();
        if let Some(logger) = self.logger.take() {
            let _ = logger.join();
        }
    }
}
