//! Group commit: one flush serves every write that arrived while the
//! previous flush ran.
//!
//! Writers apply their batch to sled (in memory), then queue a waiter here
//! and await it. The committer thread takes every waiter queued so far,
//! flushes once, and wakes them all; writes arriving meanwhile wait for the
//! next flush. A waiter is queued only after its write is applied, so the
//! flush that answers it covers it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;

use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), String>>;

/// Counts that show whether writes are being grouped.
#[derive(Debug, Default)]
pub struct CommitStats {
    /// Flushes done.
    pub flushes: AtomicU64,
    /// Writes those flushes made durable.
    pub writes: AtomicU64,
}

/// The committer thread's handle. Dropping it stops the thread and waits
/// for it, so the database (and its file lock) is released on return.
#[derive(Debug)]
pub(crate) struct GroupCommit {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<thread::JoinHandle<()>>,
    stats: Arc<CommitStats>,
}

impl GroupCommit {
    /// Starts the committer for `db`.
    pub(crate) fn start(db: sled::Db) -> std::io::Result<Self> {
        let (queue, waiters) = mpsc::channel::<Waiter>();
        let stats = Arc::new(CommitStats::default());
        let thread_stats = stats.clone();
        let thread = thread::Builder::new()
            .name("tern-store-commit".to_owned())
            .spawn(move || {
                // Ends when every sender (the store) is gone.
                while let Ok(first) = waiters.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiters.try_iter());
                    let outcome = db.flush().map(drop).map_err(|e| e.to_string());
                    thread_stats.flushes.fetch_add(1, Ordering::Relaxed);
                    thread_stats
                        .writes
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for waiter in batch {
                        let _ = waiter.send(outcome.clone());
                    }
                }
            })?;
        Ok(Self {
            queue: Some(queue),
            thread: Some(thread),
            stats,
        })
    }

    /// Waits until everything written before this call is on disk.
    pub(crate) async fn durable(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(|| "the committer has stopped".to_owned())?
            .send(tx)
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
        // every waiter already queued.
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
