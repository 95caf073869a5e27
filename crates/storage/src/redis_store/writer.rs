//! Writes gathered across messages: the way the sled log groups its
//! writes, each step's writes that arrive together go to Redis in one call
//! of the generic script ([`super::lua::APPLY`]), one round trip for all
//! of them.
//!
//! Every step has its own queue and task. The task takes what is queued
//! (at most [`MAX_GROUPS`] groups), sends it per hash slot (all of it on
//! a single server) in calls of at most about 15 KiB each
//! ([`super::lua::CALL_OCTETS`]: the server reads a bigger one over
//! several turns of its event loop, each with its own sync), all at once
//! on the pool's connections, and answers each writer with its own
//! outcome. While a step's batch is out ([`CALLS_IN_FLIGHT`]), its new
//! writes gather for the next. A write's own groups stay in order in
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

/// Batches of one step out at once at most (a batch is one call per
/// ~15 KiB of its writes, see [`send`]).
///
/// One: the writes that come while a step's batch is out gather for its
/// next, instead of going out in calls of a message or two each while
/// the first calls are out. Every call costs the server a script run of
/// its own and Tern a request and an answer, whatever it carries. With
/// four (until session 16) a 4 × 100 bench made ~7 100 script calls for
/// 20 000 messages; with one, the server's CPU per message fell ~5 %,
/// Tern's ~5 %, and receipts per second rose ~20 % (BENCHMARKS.md,
/// session 16).
const CALLS_IN_FLIGHT: usize = 1;

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
    answer: Answer,
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
            // The slots' batches at once: with one batch of a step out,
            // slots one after the other would add up on a cluster.
            let sends = by_slot(jobs, cluster)
                .into_iter()
                .map(|batch| send(batch, &pool, durability));
            futures::future::join_all(sends).await;
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

/// A batch's calls: its jobs in order, a new call started once the last
/// is full ([`Apply::is_full`]) or would see a job's checks read what it
/// already writes ([`Apply::conflicts`]: two receipts of one message, a
/// write after a purge of its keys), a job's groups always in one call
/// (so a job's groups are not checked against each other: none reads what
/// an earlier one of its job writes; an attempt's index group and its
/// message group touch different keys). Each call with, per job, its last
/// group's place and its answer.
fn calls(jobs: Vec<Job>) -> Vec<(Apply, Vec<(usize, Answer)>)> {
    let mut calls: Vec<(Apply, Vec<(usize, Answer)>)> = Vec::new();
    for job in jobs {
        let open = calls.last().is_some_and(|(call, _)| {
            !call.is_full() && !job.groups.iter().any(|group| call.conflicts(group))
        });
        if !open {
            calls.push(Default::default());
        }
        let Some((call, answers)) = calls.last_mut() else {
            continue;
        };
        for group in job.groups {
            call.push(group);
        }
        answers.push((call.len().saturating_sub(1), job.answer));
    }
    calls
}

/// A writer's answer.
type Answer = oneshot::Sender<Result<Written, StoreError>>;

/// Sends a batch's calls at once, each on the next of the pool's
/// connections, so the server reads them in the same turn (see
/// [`super::lua::CALL_OCTETS`]); answers each job. Jobs of one batch were
/// never ordered among themselves: each writer awaits its own, and calls
/// of earlier batches may still be out.
async fn send(jobs: Vec<Job>, pool: &AsyncPool, durability: RedisDurability) {
    futures::future::join_all(
        calls(jobs)
            .into_iter()
            .map(|(call, answers)| send_call(call, answers, pool, durability)),
    )
    .await;
}

/// One call; answers each of its jobs.
async fn send_call(
    call: Apply,
    answers: Vec<(usize, Answer)>,
    pool: &AsyncPool,
    durability: RedisDurability,
) {
    let mut conn = pool.get();
    let result: Result<Vec<Value>, StoreError> = async {
        let values: Vec<Value> = call.run(&mut conn).await?;
        settle(durability, &mut conn).await?;
        Ok(values)
    }
    .await;
    match result {
        Ok(values) => {
            for (at, answer) in answers {
                let _ = answer.send(Ok(written(values.get(at))));
            }
        }
        Err(err) => {
            for (_, answer) in answers {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis_store::lua::CALL_OCTETS;

    /// An attempt's group as the store made it before generations (a
    /// record written before them still makes it): the record's octets
    /// checked and the new ones set, and its in-flight entry removed.
    fn attempt(n: usize) -> Group {
        let key = format!("p:{{t1}}:m:{n:016x}").into_bytes();
        let mut group = Group::default();
        group
            .check_record(key.clone(), &[7; 260])
            .set(key, vec![8; 280])
            .zrem(b"p:{t1}:flight".to_vec(), &format!("{n:016x}"));
        group
    }

    fn job(groups: Vec<Group>) -> Job {
        Job {
            groups,
            answer: oneshot::channel().0,
        }
    }

    /// 256 attempts gathered (about 150 KiB) go in calls of about 15 KiB,
    /// every group once and in order; without the split, one call of all.
    #[test]
    fn a_big_batch_goes_in_calls_the_server_reads_in_one_turn_each() {
        let calls = calls((0..256).map(|n| job(vec![attempt(n)])).collect());
        assert!(calls.len() >= 8, "{} calls", calls.len());
        let mut groups = 0;
        for (call, answers) in &calls {
            assert!(
                call.octets() < CALL_OCTETS + 1024,
                "a call of {} octets",
                call.octets()
            );
            // Each job's answer reads its own group's place.
            let places: Vec<usize> = answers.iter().map(|(at, _)| *at).collect();
            assert_eq!(places, (0..call.len()).collect::<Vec<_>>());
            groups += call.len();
        }
        assert_eq!(groups, 256);
    }

    /// A write's groups stay together in one call, however many: an index
    /// entry written before its record lands before it, atomically.
    #[test]
    fn a_writes_groups_stay_in_one_call() {
        let calls = calls(vec![
            job(vec![attempt(0)]),
            job((1..101).map(attempt).collect()),
            job(vec![attempt(101)]),
        ]);
        let sizes: Vec<usize> = calls.iter().map(|(call, _)| call.len()).collect();
        assert!(sizes.contains(&100) || sizes.contains(&101), "{sizes:?}");
        let (call, answers) = calls
            .iter()
            .find(|(call, _)| call.len() >= 100)
            .expect("the big write's call");
        assert!(answers.iter().any(|(at, _)| *at + 1 == call.len()));
    }
}
