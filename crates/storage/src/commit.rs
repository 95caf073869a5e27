//! Group commit: one flush serves every write that arrived while the
//! previous flush ran.
//!
//! In durable mode writers do not touch sled themselves: they hand their
//! operation (a set of inserts and removes that must land together) to the
//! committer thread and wait. The committer takes every operation queued so
//! far, applies them as one sled batch (atomic, so each operation is all or
//! nothing) and flushes; a second thread, the syncer, then `fdatasync`s
//! sled's data file and only then answers them all. Applying per operation
//! would make sled write and sync its log once per operation; flushing
//! without `fdatasync` would leave the data in the page cache, safe from a
//! killed process but not from a power cut (sled 0.34 flushes with
//! `sync_file_range`).
//!
//! The two threads form a pipeline: while the syncer waits for the disk,
//! the committer applies and flushes the next group, and one `fdatasync`
//! answers every group flushed before it began. Writers do not apply to
//! sled themselves: sled 0.34's writers spin (`sched_yield`) while a flush
//! holds its log buffer, and measured that way durable writes with 64
//! writers fell to a third.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use sled::Batch;
use tokio::sync::oneshot;

/// Inserts and removes that must land together.
#[derive(Debug, Default)]
pub(crate) struct Ops(Vec<(Vec<u8>, Option<Vec<u8>>)>);

impl Ops {
    pub(crate) fn insert(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.0
            .push((key.as_ref().to_vec(), Some(value.as_ref().to_vec())));
    }

    pub(crate) fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.0.push((key.as_ref().to_vec(), None));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
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

type Waiter = oneshot::Sender<Result<(), String>>;

/// Counts that show whether writes are being grouped.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Flushes done.
    pub flushes: AtomicU64,
    /// Writes those flushes made durable.
    pub writes: AtomicU64,
    /// `fdatasync`s done; one may cover several flushes.
    pub syncs: AtomicU64,
}

/// The committer thread's handle. Dropping it stops the thread and waits
/// for it, so the database (and its file lock) is released on return.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: Option<mpsc::Sender<(Ops, Waiter)>>,
    thread: Option<thread::JoinHandle<()>>,
    syncer: Option<thread::JoinHandle<()>>,
    stats: Arc<CommitStats>,
}

impl GroupCommit {
    /// Starts the committer for `db`, whose data file is `data_file`.
    pub(crate) fn start(db: sled::Db, data_file: File) -> std::io::Result<Self> {
        let (queue, jobs) = mpsc::channel::<(Ops, Waiter)>();
        let (flushed, to_sync) = mpsc::channel::<(Result<(), String>, Vec<Waiter>)>();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let syncer_stats = stats.clone();
        let syncer = thread::Builder::new()
            .name("tern-store-sync".to_owned())
            .spawn(move || {
                // Ends when the committer is gone and every group is answered.
                while let Ok(first) = to_sync.recv() {
                    let groups: Vec<_> = std::iter::once(first).chain(to_sync.try_iter()).collect();
                    // Data flushed before this call is on disk when it returns.
                    let synced = data_file.sync_data().map_err(|e| e.to_string());
                    syncer_stats.syncs.fetch_add(1, Ordering::Relaxed);
                    for (flushed, waiters) in groups {
                        let outcome = flushed.and_then(|()| synced.clone());
                        for waiter in waiters {
                            let _ = waiter.send(outcome.clone());
                        }
                    }
                }
            })?;
        let thread = thread::Builder::new()
            .name("tern-store-commit".to_owned())
            .spawn(move || {
                // Ends when every sender (the store) is gone.
                while let Ok(first) = jobs.recv() {
                    let mut batch = Batch::default();
                    let mut waiters = Vec::new();
                    for (ops, waiter) in std::iter::once(first).chain(jobs.try_iter()) {
                        ops.into_batch(&mut batch);
                        waiters.push(waiter);
                    }
                    let outcome = db
                        .apply_batch(batch)
                        .and_then(|()| db.flush())
                        .map(|_| ())
                        .map_err(|e| e.to_string());
                    thread_stats.flushes.fetch_add(1, Ordering::Relaxed);
                    thread_stats
                        .writes
                        .fetch_add(waiters.len() as u64, Ordering::Relaxed);
                    if flushed.send((outcome, waiters)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            syncer: Some(syncer),
            stats,
        })
    }

    /// Applies `ops` with the next group and waits until they are on disk.
    /// Empty `ops` just wait for everything written before this call.
    pub(crate) async fn write(&self, ops: Ops) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| "the committer has stopped".to_owned())?
            .send((ops, tx))
            .map_err(|_| "the committer has stopped".to_owned())?;
        rx.await
            .map_err(|_| "the committer has stopped".to_owned())?
    }

    pub(crate) fn stats(&self) -> &CommitStats {
        &self.stats
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        // Closing the queue ends the thread's loop once it has answered
        // every operation already queued.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The committer's end closes the syncer's queue in turn.
        if let Some(syncer) = self.syncer.take() {
            let _ = syncer.join();
        }
    }
}
