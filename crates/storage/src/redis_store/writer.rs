//! Writes gathered across messages: the way the sled log groups its
//! writes, each step's writes that arrive together go to Redis in one call
//! of the generic script ([`super::lua::APPLY`]), one round trip for all
//! of them.
//!
//! Every step has its own queue and task. The task takes what is queued
//! (at most [`MAX_GROUPS`] groups), sends it as one call per hash slot
//! (one call on a single server), and answers each writer with its own
//! outcome. While calls are out (at most [`CALLS_IN_FLIGHT`] per step),
//! new writes gather for the next. A write's own groups stay in order in
//! one call, so an index entry written before its record lands before it.
//! The durability policy's WAIT follows each call.

use std::sync::Arc;

use redis::Value;
use tokio::sync::{mpsc, oneshot, Semaphore};

use super::conn::{AsyncPool, Step, STEP};
use super::lua::{Apply, Group};
use super::{settle, RedisDurability};
use crate::error::StoreError;

/// Groups sent in one call at most.
const MAX_GROUPS: usize = 256;

/// Calls of one step out at once at most.
const CALLS_IN_FLIGHT: usize = 4;

/// What became of a write's last group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Written {
    /// Applied, with every group before it.
    Applied,
    /// Not applied: its first check, a record's exact octets, failed. The
    /// record as it is now (`None`: gone), so the writer computes its
    /// change again without another read.
    Stale(Option<Vec<u8>>),
    /// Not applied: a receipt is held under an upstream id the write
    /// checked (`Group::check_absent`).
    Held,
    /// Not applied: another check failed.
    Refused,
}

/// One write: its groups, applied in order in one call.
struct Job {
    groups: Vec<Group>,
    answer: oneshot::Sender<Result<Written, StoreError>>,
}

/// The queues of every step's writes. A clone sends to the same tasks
/// (the coordinator's lease releases go through it).
#[derive(Clone)]
pub(super) struct Writer {
    queues: Vec<(Step, mpsc::UnboundedSender<Job>)>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts a task per step; they end when the writer and its clones
    /// are dropped.
    pub(super) fn start(pool: &AsyncPool, cluster: bool, durability: RedisDurability) -> Self {
        let queues = Step::ALL
            .iter()
            .map(|&step| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(STEP.scope(step, run(rx, pool.clone(), cluster, durability)));
                (step, tx)
            })
            .collect();
        Self { queues }
    }

    /// Applies `groups` in order, in one call shared with the other writes
    /// of `step` queued meanwhile (every group must lie in one slot on a
    /// cluster); what became of the last group.
    pub(super) async fn write(
        &self,
        step: Step,
        groups: Vec<Group>,
    ) -> Result<Written, StoreError> {
        let (answer, answered) = oneshot::channel();
        let queue = self
            .queues
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, q)| q)
            .ok_or_else(|| StoreError::redis("no writer for this step"))?;
        queue
            .send(Job { groups, answer })
            .map_err(|_| StoreError::redis("the store's writer has stopped"))?;
        answered
            .await
            .map_err(|_| StoreError::redis("the store's writer has stopped"))?
    }
}

/// A step's task: gathers queued writes and sends them.
async fn run(
    mut rx: mpsc::UnboundedReceiver<Job>,
    pool: AsyncPool,
    cluster: bool,
    durability: RedisDurability,
) {
    let calls = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
    let step = STEP.try_with(|s| *s).unwrap_or(Step::Other);
    while let Some(first) = rx.recv().await {
        let Ok(permit) = calls.clone().acquire_owned().await else {
            return;
        };
        // Taken after the permit: what queued while every call was out
        // goes together.
        let mut jobs = vec![first];
        let mut groups = jobs[0].groups.len();
        while groups < MAX_GROUPS {
            match rx.try_recv() {
                Ok(job) => {
                    groups += job.groups.len();
                    jobs.push(job);
                }
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(STEP.scope(step, async move {
            for batch in by_slot(jobs, cluster) {
                send(batch, &pool, durability).await;
            }
            drop(permit);
        }));
    }
}

/// The jobs in batches of one slot each (one batch on a single server,
/// where a script may touch any key).
fn by_slot(jobs: Vec<Job>, cluster: bool) -> Vec<Vec<Job>> {
    if !cluster {
        return vec![jobs];
    }
    let mut batches: Vec<(Vec<u8>, Vec<Job>)> = Vec::new();
    for job in jobs {
        let slot = job
            .groups
            .first()
            .and_then(Group::first_key)
            .map(hash_tag)
            .unwrap_or_default()
            .to_vec();
        match batches.iter_mut().find(|(s, _)| *s == slot) {
            Some((_, batch)) => batch.push(job),
            None => batches.push((slot, vec![job])),
        }
    }
    batches.into_iter().map(|(_, batch)| batch).collect()
}

/// The part of `key` that picks its cluster slot: the text between its
/// first `{` and the next `}` when not empty, else the whole key (Redis
/// Cluster's rule). Keys with one tag share one slot.
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// One call for a batch; answers each job.
async fn send(jobs: Vec<Job>, pool: &AsyncPool, durability: RedisDurability) {
    let mut call = Apply::default();
    let mut last = Vec::with_capacity(jobs.len());
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        for group in job.groups {
            call.push(group);
        }
        last.push(call.len().saturating_sub(1));
        answers.push(job.answer);
    }
    let mut conn = pool.get();
    let result: Result<Vec<Value>, StoreError> = async {
        let values: Vec<Value> = call.invocation().invoke_async(&mut conn).await?;
        settle(durability, &mut conn).await?;
        Ok(values)
    }
    .await;
    match result {
        Ok(values) => {
            for (answer, at) in answers.into_iter().zip(last) {
                let _ = answer.send(Ok(written(values.get(at))));
            }
        }
        Err(err) => {
            for answer in answers {
                let _ = answer.send(Err(copy(&err)));
            }
        }
    }
}

/// A group's answer from the script: 1 applied; the current octets of its
/// first checked record when that check failed; 2 a receipt held; else 0.
pub(super) fn written(value: Option<&Value>) -> Written {
    match value {
        Some(Value::Int(1)) => Written::Applied,
        Some(Value::Int(2)) => Written::Held,
        Some(Value::BulkString(current)) => Written::Stale(Some(current.clone())),
        Some(Value::Nil) => Written::Stale(None),
        _ => Written::Refused,
    }
}

/// The same failure for each writer of a call (a refusal for want of
/// room, or of replicas, keeps its kind).
fn copy(err: &StoreError) -> StoreError {
    match err {
        StoreError::Full { what, source } => StoreError::Full {
            what: what.clone(),
            source: source.clone(),
        },
        StoreError::NotReplicated { acked, wanted } => StoreError::NotReplicated {
            acked: *acked,
            wanted: *wanted,
        },
        // The client's error cannot be cloned: each writer gets its text.
        other => StoreError::redis(other.to_string()),
    }
}
