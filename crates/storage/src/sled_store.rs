//! The embedded store on sled.
//!
//! One tree, prefixed keys (see [`keys`](crate::keys)), each operation one
//! atomic set of writes, so a crash leaves either all of an operation or
//! none of it. In `durable` mode every write returns once the group that
//! carries it is in the write-ahead log on disk and applied to the
//! memtable (see `commit`, `wal` and `memtable`); in `fast` mode writes
//! return once applied and the log is synced on an interval. sled receives
//! what the memtable still holds at each checkpoint; every read goes
//! through the merged view ([`View`]), memtable over sled.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::commit::{CommitOptions, CommitStats, GroupCommit, Ops, SyncObserver, SyncPolicy, Wait};
use crate::error::StoreError;
use crate::held;
use crate::id::{IdFormat, TernId, MAX_COUNTER};
use crate::keys;
use crate::mark::{self, Mark};
use crate::memtable::{prefix_end, View};
use crate::mo::{HeldMo, MoGroup, MoHeader, MoPart};
use crate::record::{
    Attempt, MessageRecord, MultiLink, OutboxItem, Outcome, State, UnmatchedReceipt,
};
use crate::transition::{self, Change, Edit, TransitionError};
use crate::upstream_id::{candidates, forms, normalise};
use crate::wal;
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

mod claims;
mod history;
mod ready;

use claims::Claims;

use ready::{migrate_legacy_ready, ready_queues, ClaimCursors, LEGACY_CHUNK};

/// When a write counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// On disk before the call returns (group commit).
    Durable,
    /// Applied before the call returns, on disk within `interval`: a
    /// process crash loses nothing, a power cut at most the last interval.
    Fast {
        /// How often the write-ahead log is synced while writes come in.
        interval: Duration,
    },
}

/// How to open a store.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// This node's id, the top 16 bits of every message id it makes.
    pub node: u16,
    /// When a write counts as done.
    pub durability: Durability,
    /// sled's page cache, in bytes.
    pub cache_bytes: u64,
    /// The memtable's size (estimated octets of keys, values and map
    /// overhead) at which a checkpoint writes it into sled: the bound on
    /// the memory recent writes take (twice it while a checkpoint drains
    /// a frozen memtable and the next one fills). See
    /// [`DEFAULT_MEMTABLE_BYTES`].
    pub memtable_bytes: usize,
    /// Told the duration of every `fdatasync` of the write-ahead log (the
    /// daemon's `tern_store_sync_seconds`); none by default.
    pub sync_observer: Option<SyncObserver>,
}

/// 16 MiB: with the frozen memtable of a checkpoint in progress, recent
/// writes take 32 MiB at most, which leaves room under the daemon's
/// 100 MB at 10 000 messages in flight (measured: 43 MB peak with
/// `tern bench --messages 10000 --receipt-delay 10s`). Larger saves sled
/// little more: a checkpoint comes every few tens of thousands of
/// messages already, far longer than most take to be sent, and the log's
/// own bound (64 MiB) asks for one about as often.
pub const DEFAULT_MEMTABLE_BYTES: usize = 16 << 20;

/// sled's page cache. Reads of recent writes come from the memtable, and
/// the claim, the hot reads and the outbox mostly touch keys written
/// seconds ago, so a large cache buys little. sled counts only a node's key
/// and value octets against it, and a ready-queue node (short keys, empty
/// values) takes about three times that in memory, so each MiB here cost
/// about 3 MB of the daemon's RSS. Measured (2026-12-06, release,
/// BENCHMARKS.md "Long outage"), peak RSS while 1 000 000 messages waited:
/// 489 MB with 256 MiB, 166 MB with 16 MiB, 143 MB with 8 MiB, 129 MB with
/// 4 MiB, the bound being 150 MB; `tern bench --sessions 4
/// --window 100` spent the same CPU per message with 4 and 16 MiB within
/// the noise of a loaded machine.
pub const DEFAULT_CACHE_BYTES: u64 = 4 << 20;

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            node: 0,
            durability: Durability::Durable,
            cache_bytes: DEFAULT_CACHE_BYTES,
            memtable_bytes: DEFAULT_MEMTABLE_BYTES,
            sync_observer: None,
        }
    }
}

/// A message to accept.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// The client account.
    pub client: String,
    /// The client's PDU, encoded.
    pub pdu: Bytes,
    /// The client asked for a receipt.
    pub receipt_requested: bool,
    /// Not to be sent before (scheduled delivery); `now` for at once.
    pub not_before_ms: u64,
    /// Validity.
    pub expires_ms: Option<u64>,
    /// Duplicate protection: a key (the client's user_message_reference, or
    /// source, destination and a hash of the text) and how long it holds.
    pub dedup: Option<(Bytes, Duration)>,
    /// The form the client is given the id in (kept on the record: see
    /// [`MessageRecord::id_format`]).
    pub id_format: IdFormat,
}

impl NewMessage {
    /// The record of this message accepted as `id`: queued, never tried.
    /// The one place either backend builds it (submit_sm and each
    /// submit_multi destination alike); the duplicate-protection key and
    /// window come back beside it, for the backend's own check.
    pub(crate) fn into_record(
        self,
        id: TernId,
        now_ms: u64,
        multi: Option<MultiLink>,
    ) -> (MessageRecord, Option<(Bytes, Duration)>) {
        let record = MessageRecord {
            id,
            client: self.client,
            pdu: self.pdu,
            receipt_requested: self.receipt_requested,
            state: State::Queued,
            attempts: Vec::new(),
            outcome: None,
            accepted_ms: now_ms,
            updated_ms: now_ms,
            not_before_ms: self.not_before_ms,
            expires_ms: self.expires_ms,
            dedup_key: None,
            parts: Vec::new(),
            received: Vec::new(),
            relayed: Vec::new(),
            multi,
            id_format: self.id_format,
        };
        (record, self.dedup)
    }
}

/// The records of a submit_multi's destinations, with their ids (see
/// [`SledStore::accept_multi`]); shared with the Redis backend so both
/// tie destinations to their submission the same way.
pub(crate) fn multi_records(
    messages: Vec<NewMessage>,
    ids: &[TernId],
    now_ms: u64,
) -> Vec<MessageRecord> {
    let Some(&submission) = ids.first() else {
        return Vec::new();
    };
    messages
        .into_iter()
        .zip(ids)
        .enumerate()
        .map(|(n, (message, &id))| {
            let link = MultiLink {
                submission,
                members: if n == 0 { ids.to_vec() } else { Vec::new() },
            };
            message.into_record(id, now_ms, Some(link)).0
        })
        .collect()
}

/// What `accept` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The id to answer the client with.
    pub id: TernId,
    /// The message is a resubmission of `id`: nothing new was stored and it
    /// is not to be sent again.
    pub duplicate: bool,
}

/// What became of a change asked for a message still waiting to be sent
/// ([`SledStore::cancel_queued`], [`SledStore::replace_queued`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueuedChange {
    /// Done; the record as it now is (boxed: the other answers carry
    /// next to nothing).
    Done(Box<MessageRecord>),
    /// The caller's check refused the message (another client's, another
    /// source); nothing changed.
    Refused,
    /// The message is no longer waiting: it is being sent, was sent or
    /// has ended. Nothing changed.
    NotQueued(State),
    /// No message has this id.
    NotFound,
}

impl From<TransitionError> for QueuedChange {
    /// A cancel or replace the record's state refuses. (A final record is
    /// not waiting either: the same answer as `NotQueued(Final)`.)
    fn from(refused: TransitionError) -> Self {
        match refused {
            TransitionError::NotQueued(state) => QueuedChange::NotQueued(state),
            TransitionError::Final => QueuedChange::NotQueued(State::Final),
        }
    }
}

/// What replace_sm makes of a waiting message: the new values of every
/// field it may change (the caller carries over the ones the client left
/// unset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The client's PDU with the new text and fields, encoded.
    pub pdu: Bytes,
    /// Whether the client now asks for a receipt.
    pub receipt_requested: bool,
    /// Not to be sent before.
    pub not_before_ms: u64,
    /// Validity.
    pub expires_ms: Option<u64>,
}

/// What recovery found at open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Messages that were being sent when the process stopped, back in the
    /// ready queue. On sled only those a store or log written before
    /// claims were kept in memory holds in flight: a claim now writes
    /// nothing, so a message being sent is in the ready queue already.
    pub requeued: usize,
}

/// Numbers reserved at a time by [`SledStore::sequence`].
const SEQUENCE_BLOCK: u64 = 10_000;

/// The meta key of the sequence's high-water mark: no number at or above
/// it has been handed out.
const SEQUENCE_MARK: &str = "sequence";

/// The metadata key [`SledStore::probe_space`] writes: the time of the
/// last probe, read by nothing.
const SPACE_PROBE: &str = "space_probe";

/// The next number to hand out and the end of the reserved block.
#[derive(Debug)]
struct SequenceBlock {
    next: u64,
    limit: u64,
}

/// Locks the duplicate-protection check is spread over (by key).
const DEDUP_LOCKS: usize = 64;

/// The queues whose keys the view counts as it applies writes
/// ([`SledStore::queue_depths`] reads them; the ready queue per client
/// too): what a scrape reports without scanning.
const COUNTED: [u8; 4] = [keys::READY, keys::IN_FLIGHT, keys::OUTBOX, keys::UNMATCHED];

/// The format this code writes; a store of another format is refused.
/// Format 2 packed records sixteen to a sled key, format 3 the ready
/// queues in ranges too (`memtable/disk.rs`), which older code would not
/// find: a store opened here is marked 3, so an older Tern refuses it
/// instead of reading its queues as empty.
const FORMAT: &[u8] = b"tern-storage/3";

/// The formats before: read as they are (their loose keys move into packs
/// as checkpoints write them again) and marked [`FORMAT`] at open.
const FORMATS_LOOSER: [&[u8]; 2] = [b"tern-storage/1", b"tern-storage/2"];

/// The sled-backed message store.
pub struct SledStore {
    path: PathBuf,
    /// Every key read: memtable over sled (see `memtable.rs`).
    view: Arc<View>,
    node: u16,
    durability: Durability,
    committer: GroupCommit,
    /// Held by an accept with a duplicate-protection key from its check to
    /// its write, chosen by the key's hash: two resubmissions of one
    /// message at once store it once, and different keys rarely wait for
    /// each other.
    dedup_locks: Vec<tokio::sync::Mutex<()>>,
    /// See [`SledStore::sequence`].
    sequence: tokio::sync::Mutex<SequenceBlock>,
    /// Held by [`SledStore::claim_ready`] and by every change to a waiting
    /// message (cancel, replace) from its read to its write: claiming and
    /// changing both read a message as queued and then write it, so without
    /// it a message could be claimed for sending and cancelled at once.
    /// Exactly one of them gets a given message; the other sees what the
    /// first did.
    queue_lock: tokio::sync::Mutex<()>,
    /// Where the next claim stands in each client's ready queue. Only the
    /// claimer (under `queue_lock`) reads or moves it.
    claim_from: std::sync::Mutex<ClaimCursors>,
    /// The messages being sent: in memory only (`claims.rs`).
    claims: Claims,
    /// Held by the MO reassembly operations from their read to their write,
    /// so two parts arriving together both see each other, and a group is
    /// released once.
    mo_lock: tokio::sync::Mutex<()>,
    /// Held by the held-receipt operations from their read to their write:
    /// a receipt held for an id while another for it is taken stays held.
    unmatched_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("node", &self.node)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

/// Room an encode starts with: a message record with its client's PDU
/// fits (an empty `Vec` grew five times on the way to one).
const ENCODE_ROOM: usize = 256;

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    postcard::to_extend(value, Vec::with_capacity(ENCODE_ROOM)).map_err(StoreError::encode::<T>)
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    postcard::from_bytes(bytes).map_err(|e| StoreError::Decode {
        what,
        reason: e.to_string(),
    })
}

/// Applies what the write-ahead log holds beyond sled's last checkpoint
/// to the memtable, puts back in the ready queue what was being sent
/// ([`recover`]), writes the memtable into sled and makes it durable there
/// (a checkpoint), and empties the log. A key the log wrote and removed
/// again costs sled nothing. A torn tail (the group being written when the
/// process stopped, never answered) is named in the log and cut off first;
/// every whole record before it is applied. A log damaged anywhere else
/// stops the open with the file and offset: the store is never used
/// without its acknowledged records.
fn replay_log(
    view: &View,
    data_file: &std::fs::File,
    path: &Path,
    durability: Durability,
    mark: &mut Mark,
) -> Result<Recovery, StoreError> {
    let unsynced_tail = matches!(durability, Durability::Fast { .. });
    let replay = wal::replay(path, unsynced_tail).map_err(|e| match e {
        wal::ReplayError::Io(e) => StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("reading the write-ahead log: {e}"),
        },
        wal::ReplayError::Corrupt(corrupt) => StoreError::Damaged {
            store: path.to_path_buf(),
            file: corrupt.path.clone(),
            detail: format!(
                "write-ahead log record at offset {}: {}, with acknowledged records after it",
                corrupt.offset, corrupt.reason
            ),
        },
    })?;
    if let Some(torn) = &replay.torn {
        wal::truncate(torn).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: format!("cutting the torn tail of {}: {e}", torn.path.display()),
        })?;
        tracing::warn!(
            file = %torn.path.display(),
            offset = torn.offset,
            reason = torn.reason,
            replayed = replay.groups.len(),
            "write-ahead log: torn tail repaired (truncated to the last whole record; \
             its writes were never acknowledged), every whole record before it replayed"
        );
    }
    view.apply(replay.groups);
    let (requeue, recovery) = recover(view)?;
    view.apply([requeue]);
    let checkpoint_error = |reason: String| StoreError::Open {
        path: path.to_path_buf(),
        reason: format!("checkpointing the replayed log: {reason}"),
    };
    while let Some(moved) = migrate_legacy_ready(view, LEGACY_CHUNK)? {
        view.apply([moved]);
        view.freeze()
            .write_into(view.disk())
            .map_err(|e| checkpoint_error(e.to_string()))?;
        view.release();
    }
    view.freeze()
        .write_into(view.disk())
        .map_err(|e| checkpoint_error(e.to_string()))?;
    view.release();
    mark.checkpoint(view.db(), data_file)
        .map_err(|e| checkpoint_error(e.to_string()))?;
    wal::clear(path).map_err(|e| StoreError::Open {
        path: path.to_path_buf(),
        reason: format!("clearing the write-ahead log: {e}"),
    })?;
    Ok(recovery)
}

/// The writes that move messages claimed but not finished back to ready
/// (the process stopped while they were being sent), and how many.
fn recover(view: &View) -> Result<(Ops, Recovery), StoreError> {
    let mut ops = Ops::default();
    let mut requeued = 0;
    for entry in view.scan_prefix([keys::IN_FLIGHT]) {
        let (key, _) = entry?;
        let Some(id) = keys::trailing_id(&key) else {
            continue;
        };
        ops.remove(&key[..]);
        if let Some(bytes) = view.get(&keys::message(id))? {
            let mut record = MessageRecord::from_stored(&bytes)?;
            record.state = State::Queued;
            ops.insert(keys::ready(&record.client, record.not_before_ms, id), []);
            ops.insert(keys::message(id), encode(&record)?);
            requeued += 1;
        }
    }
    Ok((ops, Recovery { requeued }))
}

/// What sled's own checksums caught at open, for an operator: sled names
/// no file, only an offset in its data file when it has one.
pub(crate) fn sled_corruption(at: Option<sled::DiskPtr>) -> String {
    match at {
        Some(at) => format!("sled found corrupted data in its data file `db` ({at:?})"),
        None => "sled found corrupted data in its `conf` file or a snapshot (`snap.*`): \
                 one fails its checksum"
            .to_owned(),
    }
}

/// How long `open` waits for sled's file lock to be released.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// Opens the database, waiting up to [`LOCK_WAIT`] while its file lock is
/// held. sled releases the lock when the last handle of a closed database
/// goes, and its background flusher may still hold one for a moment after
/// the store was dropped: a restart in the same process (or right after a
/// previous process exited) would otherwise fail for nothing. A lock held
/// longer is another live store, and the error says so.
/// sled's configuration for a store at `path`: the page cache `options`
/// ask for (sled's own default is 1 GiB), and no flush timer, since the
/// committer flushes sled at checkpoints, in both modes, and sled's timer
/// would only add flushes.
fn sled_config(path: &Path, options: &StoreOptions) -> sled::Config {
    sled::Config::new()
        .path(path)
        .cache_capacity(options.cache_bytes)
        .mode(sled::Mode::HighThroughput)
        .flush_every_ms(None)
}

fn open_locked(config: &sled::Config) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match config.open() {
            // sled reports it as ErrorKind::Other with this text.
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Whether `path` holds anything besides the files sled writes when it
/// creates a database (`conf`, `db`, `blobs/`, `snap.*`). A first start
/// killed after sled created those but before Tern's format mark reached
/// disk leaves only them, with nothing for sled to recover: the next start
/// must finish creating the store, not refuse a directory it made itself.
fn holds_more_than_sled(path: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(path) else {
        return false;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        !(matches!(name.as_ref(), "conf" | "db" | "blobs") || name.starts_with("snap."))
    })
}

impl SledStore {
    /// Opens (or creates) the store at `path` and recovers it: messages that
    /// were being sent go back to the ready queue.
    ///
    /// A directory that holds something other than a Tern store, or a store
    /// sled cannot read, is an error naming the path; it is never replaced.
    pub fn open(
        path: impl AsRef<Path>,
        options: StoreOptions,
    ) -> Result<(Self, Recovery), StoreError> {
        let path = path.as_ref().to_path_buf();
        let existed = std::fs::read_dir(&path)
            .map(|mut entries| entries.next().is_some())
            .unwrap_or(false);
        let foreign = holds_more_than_sled(&path);
        let config = sled_config(&path, &options);
        let policy = match options.durability {
            Durability::Durable => SyncPolicy::EachGroup,
            Durability::Fast { interval } => SyncPolicy::Every(interval),
        };
        let db = open_locked(&config).map_err(|e| match e {
            sled::Error::Corruption { at, .. } => StoreError::Damaged {
                store: path.clone(),
                file: path.clone(),
                detail: sled_corruption(at),
            },
            e => StoreError::Open {
                path: path.clone(),
                reason: e.to_string(),
            },
        })?;
        // Before anything reads or writes: a sled that dropped durable
        // writes must not be taken for a store (or a directory) to start
        // afresh in.
        let last = match mark::check(&db, &path) {
            Ok(Ok(last)) => last,
            Ok(Err(behind)) => {
                return Err(StoreError::Damaged {
                    store: path.clone(),
                    file: behind.file.clone(),
                    detail: behind.to_string(),
                })
            }
            Err(reason) => return Err(StoreError::Open { path, reason }),
        };
        match db.get(keys::meta("format"))? {
            Some(format) if format.as_ref() == FORMAT => {}
            Some(format) if FORMATS_LOOSER.contains(&format.as_ref()) => {
                db.insert(keys::meta("format"), FORMAT)?;
                db.flush()?;
            }
            Some(other) => {
                return Err(StoreError::NotAStore {
                    path,
                    reason: format!("format {:?}", String::from_utf8_lossy(&other)),
                })
            }
            None if existed && db.was_recovered() && !db.is_empty() => {
                return Err(StoreError::NotAStore {
                    path,
                    reason: "a sled database without Tern's format mark".to_owned(),
                })
            }
            None if foreign && !db.was_recovered() => {
                return Err(StoreError::NotAStore {
                    path,
                    reason: "the directory is not empty".to_owned(),
                })
            }
            None => {
                db.insert(keys::meta("format"), FORMAT)?;
                db.flush()?;
            }
        }
        // sled keeps its pages in one file, `db`; checkpoints fdatasync it.
        let data_file = std::fs::File::open(path.join("db")).map_err(|e| StoreError::Open {
            path: path.clone(),
            reason: format!("opening sled's data file: {e}"),
        })?;
        let mut checkpoints = Mark::open(&path, last).map_err(|e| StoreError::Open {
            path: path.clone(),
            reason: format!("opening the checkpoint mark: {e}"),
        })?;
        let view = Arc::new(
            View::watching(db.clone(), keys::READY).counting(&COUNTED, Some(keys::READY))?,
        );
        let recovery = replay_log(
            &view,
            &data_file,
            &path,
            options.durability,
            &mut checkpoints,
        )?;
        // A store from before the mark existed counted with sled's
        // generator, which persisted itself then (every write flushed sled).
        let mark = match view.get(&keys::meta(SEQUENCE_MARK))? {
            Some(mark) => <[u8; 8]>::try_from(mark.as_ref())
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::NotAStore {
                    path: path.clone(),
                    reason: "a malformed sequence mark".to_owned(),
                })?,
            None => db.generate_id()?,
        };
        let commit = CommitOptions {
            policy,
            memtable_bytes: options.memtable_bytes,
            sync_observer: options.sync_observer,
        };
        let committer = GroupCommit::start(view.clone(), data_file, &path, commit, checkpoints)
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                reason: format!("starting the committer: {e}"),
            })?;
        let queues = ready_queues(&view)?;
        let store = Self {
            path,
            view,
            node: options.node,
            durability: options.durability,
            committer,
            dedup_locks: (0..DEDUP_LOCKS)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
            sequence: tokio::sync::Mutex::new(SequenceBlock {
                next: mark,
                limit: mark,
            }),
            queue_lock: tokio::sync::Mutex::new(()),
            claim_from: std::sync::Mutex::new(ClaimCursors {
                queues,
                last_first: None,
            }),
            claims: Claims::default(),
            mo_lock: tokio::sync::Mutex::new(()),
            unmatched_lock: tokio::sync::Mutex::new(()),
        };
        Ok((store, recovery))
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How well writes are being grouped.
    pub fn commit_stats(&self) -> &CommitStats {
        self.committer.stats()
    }

    /// Whether the last write was refused for want of disk space
    /// ([`StoreError::Full`]); false again once a write succeeds.
    pub fn is_full(&self) -> bool {
        self.committer
            .stats()
            .full
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// While the store is full, tries one small durable write (a mark in
    /// the store's metadata), so that a store nobody writes to (clients
    /// told to wait, a load balancer that took the node out because it was
    /// not ready) still notices that space returned. Does nothing when
    /// the store is not full.
    pub async fn probe_space(&self) -> Result<(), StoreError> {
        if !self.is_full() {
            return Ok(());
        }
        let mut ops = Ops::default();
        ops.insert(keys::meta(SPACE_PROBE), now_ms().to_be_bytes());
        self.committer
            .write(ops, Wait::Durable)
            .await
            .map_err(StoreError::from)
    }

    /// Applies one operation atomically; returns when it counts as done for
    /// the mode (durable: with the next group, on disk; fast: applied, on
    /// disk within the interval).
    async fn write(&self, ops: Ops) -> Result<(), StoreError> {
        let wait = match self.durability {
            Durability::Durable => Wait::Durable,
            Durability::Fast { .. } => Wait::Applied,
        };
        self.committer
            .write(ops, wait)
            .await
            .map_err(StoreError::from)
    }

    /// Applies a write whose loss in a power cut costs nothing but work
    /// done again (an attempt, an outbox acknowledgement: the message is
    /// claimed and sent again, the item delivered again, which
    /// at-least-once allows). It returns once applied, in both modes, without waiting
    /// for the log's sync: in durable mode the next durable write's sync
    /// takes it to disk, or the logger's own within
    /// [`LAZY_SYNC`](crate::commit::LAZY_SYNC). A process crash loses
    /// nothing: the log is written before a group is applied.
    async fn write_lazy(&self, ops: Ops) -> Result<(), StoreError> {
        self.committer
            .write(ops, Wait::Applied)
            .await
            .map_err(StoreError::from)
    }

    /// One key's value, never from a write group half applied.
    fn read_key(&self, key: impl AsRef<[u8]>) -> Result<Option<sled::IVec>, StoreError> {
        Ok(self.view.get(key.as_ref())?)
    }

    /// Puts every write made so far on disk (in the log), whatever the
    /// mode; blocks the calling thread until then. sled itself receives
    /// them at the next checkpoint, at the latest when the store closes.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.committer.sync_blocking().map_err(StoreError::from)
    }

    /// Writes the memtable into sled now, and returns once sled holds it
    /// durably (a checkpoint, as the log's and the memtable's bounds ask
    /// for by themselves). For tests and benchmarks that show what reaches
    /// sled; the daemon never needs it.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        self.committer
            .write(Ops::default(), Wait::Checkpoint)
            .await
            .map_err(StoreError::from)
    }

    /// Keys in memory (memtable entries, values and removals, active and
    /// frozen): what the next checkpoint may write into sled.
    pub fn memtable_len(&self) -> usize {
        self.view.memtable_len()
    }

    /// The values sled itself holds (not the memtable) under keys starting
    /// with `prefix`: for tests and benchmarks that show what reached sled.
    /// Records are named by their `m` keys, as everywhere above sled
    /// (sled holds them sixteen to a key: [`SledStore::sled_raw_keys`]).
    pub fn sled_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        let end = crate::memtable::prefix_end(prefix);
        self.view
            .disk()
            .range(Bound::Included(prefix), crate::memtable::as_ref(&end))
            .map(|entry| Ok(entry?.0.to_vec()))
            .collect()
    }

    /// The keys sled itself holds under `prefix`, as it holds them
    /// (records packed sixteen to an `M` key): what a checkpoint wrote.
    pub fn sled_raw_keys(&self, prefix: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
        self.view
            .db()
            .scan_prefix(prefix)
            .keys()
            .map(|key| Ok(key?.to_vec()))
            .collect()
    }

    /// A number never handed out before, in this process or any earlier
    /// one: message id counters and outbox places come from here.
    ///
    /// Numbers come from blocks of [`SEQUENCE_BLOCK`]; the store's
    /// high-water mark moves past a block, durably, before the first number
    /// of it is used. (sled's own `generate_id` is not used: it counts on
    /// sled's flush to persist its mark, and durable writes no longer flush
    /// sled, so after a SIGKILL it handed out ids again.)
    async fn sequence(&self) -> Result<u64, StoreError> {
        let mut block = self.sequence.lock().await;
        if block.next >= block.limit {
            let limit = block.limit + SEQUENCE_BLOCK;
            let mut ops = Ops::default();
            ops.insert(keys::meta(SEQUENCE_MARK), limit.to_be_bytes());
            // On disk in both modes: after a power cut, even in fast mode,
            // no number may be handed out twice.
            self.committer
                .write(ops, Wait::Durable)
                .await
                .map_err(StoreError::from)?;
            block.limit = limit;
        }
        let n = block.next;
        block.next += 1;
        Ok(n)
    }

    async fn next_id(&self) -> Result<TernId, StoreError> {
        let counter = self.sequence().await?;
        if counter > MAX_COUNTER {
            return Err(StoreError::IdsExhausted(self.node));
        }
        TernId::new(self.node, counter).ok_or(StoreError::IdsExhausted(self.node))
    }

    /// The record of `id`, whichever layout stored it, with the times its
    /// client took its relayed receipts; in flight while it is claimed
    /// (the claim is in memory only, and the stored record says queued).
    pub fn get(&self, id: TernId) -> Result<Option<MessageRecord>, StoreError> {
        let Some(bytes) = self.read_key(keys::message(id))? else {
            return Ok(None);
        };
        let mut record = MessageRecord::from_stored(&bytes)?;
        if record.state == State::Queued && self.claims.of(id).is_some() {
            record.state = State::InFlight;
        }
        self.merge_acks(&mut record)?;
        Ok(Some(record))
    }

    /// Makes a change to a message that may be claimed fit sled's claims,
    /// kept in memory only (`claims.rs`): a record that stays in flight is
    /// stored queued, with its ready entry and its claim kept; a claimed
    /// message that moves on (submitted, requeued, ended) has its ready
    /// entry (due at `queued_at`, the record's time before the change)
    /// removed in the same write, and the claim released once that write
    /// is applied ([`SledStore::write_releasing`]). Returns whether a
    /// release began.
    fn settle_claim(&self, queued_at: u64, change: &mut Change) -> bool {
        if change.record.state == State::InFlight {
            change.record.state = State::Queued;
            return false;
        }
        if !self.claims.begin_release(change.record.id) {
            return false;
        }
        let entry = Edit::ReadyRemove(queued_at);
        if !change.edits.contains(&entry) {
            // First: a retry may put the entry back at the same time.
            change.edits.insert(0, entry);
        }
        true
    }

    /// Writes a change staged after [`SledStore::settle_claim`] (lazily or
    /// not) and ends the release it began, if any.
    async fn write_releasing(
        &self,
        id: TernId,
        releasing: bool,
        batch: Ops,
        lazy: bool,
    ) -> Result<(), StoreError> {
        let written = if lazy {
            self.write_lazy(batch).await
        } else {
            self.write(batch).await
        };
        if releasing {
            self.claims.released(id, written.is_ok());
        }
        written
    }

    fn require(&self, id: TernId) -> Result<MessageRecord, StoreError> {
        self.get(id)?.ok_or(StoreError::NotFound(id))
    }

    /// Accepts a message: durable (in `durable` mode) when this returns. A
    /// resubmission within its dedup window gets the first message's id and
    /// stores nothing.
    pub async fn accept(&self, message: NewMessage, now_ms: u64) -> Result<Accepted, StoreError> {
        let id = self.next_id().await?;
        let (mut record, dedup) = message.into_record(id, now_ms, None);
        match dedup {
            None => {
                self.write(Self::accept_batch(&record)?).await?;
                Ok(Accepted {
                    id,
                    duplicate: false,
                })
            }
            Some((key, window)) => {
                record.dedup_key = Some(key.clone());
                self.accept_deduplicated(&record, &key, window, now_ms)
                    .await
            }
        }
    }

    /// Accepts the destinations of one submit_multi, one message each, in
    /// one write: all are durable when this returns, or none is stored.
    /// The first's id is the submission's (see [`MultiLink`]); the ids are
    /// returned in the order given. Duplicate protection does not apply
    /// (`dedup` is ignored): submit_multi has no such key.
    pub async fn accept_multi(
        &self,
        messages: Vec<NewMessage>,
        now_ms: u64,
    ) -> Result<Vec<TernId>, StoreError> {
        let mut ids = Vec::with_capacity(messages.len());
        for _ in &messages {
            ids.push(self.next_id().await?);
        }
        let mut batch = Ops::default();
        for record in multi_records(messages, &ids, now_ms) {
            for (key, value) in Self::accept_batch(&record)?.into_entries() {
                match value {
                    Some(value) => batch.insert(key, value),
                    None => batch.remove(key),
                }
            }
        }
        self.write(batch).await?;
        Ok(ids)
    }

    fn accept_batch(record: &MessageRecord) -> Result<Ops, StoreError> {
        let mut batch = Ops::default();
        Self::stage(&mut batch, transition::accept(record.clone()))?;
        Ok(batch)
    }

    /// Puts a [`Change`] into a write group: the record under its key and
    /// each index edit as this backend's keys. Returns the new record.
    /// Persisting and indexing only: the rules are in [`transition`].
    fn stage(batch: &mut Ops, change: Change) -> Result<MessageRecord, StoreError> {
        let id = change.record.id;
        for edit in change.edits {
            match edit {
                Edit::ReadyAdd(at) => batch.insert(keys::ready(&change.record.client, at, id), []),
                Edit::ReadyRemove(at) => batch.remove(keys::ready(&change.record.client, at, id)),
                // Claims are in memory (`claims.rs`): the open's recovery
                // removed every in-flight entry older code wrote, and
                // nothing writes one since.
                Edit::InFlightRemove => {}
                Edit::ExpiryAdd(at) => batch.insert(keys::timed(keys::EXPIRY, at, id), []),
                Edit::ExpiryRemove(at) => batch.remove(keys::timed(keys::EXPIRY, at, id)),
                Edit::RetentionAdd(at) => batch.insert(keys::timed(keys::RETENTION, at, id), []),
                Edit::RetentionRemove(at) => batch.remove(keys::timed(keys::RETENTION, at, id)),
                Edit::UpstreamId { upstream, form } => batch.insert(
                    keys::owned_with(keys::UPSTREAM_ID, &upstream, form.as_bytes()),
                    id.to_be_bytes(),
                ),
                Edit::Outbox { seq, item } => batch.insert(
                    keys::owned_with(keys::OUTBOX, &change.record.client, &seq.to_be_bytes()),
                    encode(&item)?,
                ),
            }
        }
        batch.insert(keys::message(id), encode(&change.record)?);
        Ok(change.record)
    }

    /// The dedup check and the write under the key's lock, so two
    /// concurrent resubmissions cannot both be stored: the second checks
    /// once the first's write is applied, and sees it.
    async fn accept_deduplicated(
        &self,
        record: &MessageRecord,
        key: &[u8],
        window: Duration,
        now_ms: u64,
    ) -> Result<Accepted, StoreError> {
        let dedup_key = keys::owned_with(keys::DEDUP, &record.client, key);
        let lock = crc32fast::hash(&dedup_key) as usize % self.dedup_locks.len();
        let _checking = self.dedup_locks[lock].lock().await;
        if let Some(existing) = self.read_key(&dedup_key)? {
            let (first, at_ms): (u64, u64) = decode("dedup entry", &existing)?;
            let first = TernId::from_u64(first);
            if now_ms.saturating_sub(at_ms) <= window.as_millis() as u64
                && self.has(keys::message(first))?
            {
                return Ok(Accepted {
                    id: first,
                    duplicate: true,
                });
            }
        }
        let mut ops = Self::accept_batch(record)?;
        ops.insert(dedup_key, encode(&(record.id.as_u64(), now_ms))?);
        self.write(ops).await?;
        Ok(Accepted {
            id: record.id,
            duplicate: false,
        })
    }

    /// Records an attempt. When the upstream accepted it (ids given), the
    /// message is submitted and each upstream id is indexed; otherwise it
    /// goes back to the ready queue at `retry_at_ms`, or stays in flight for
    /// the caller to finish it.
    ///
    /// A claimed message's attempt also removes the ready entry the claim
    /// left and releases the claim (`claims.rs`), unless the message stays
    /// in flight. Returns once applied, without waiting for the log's sync
    /// ([`SledStore::write_lazy`]): an attempt lost in a power cut leaves
    /// the message ready in the store (sent again: at least once). Anything that
    /// depends on the attempt (the receipt stored against its upstream id)
    /// is a durable write logged after it, whose sync takes it to disk too.
    pub async fn record_attempt(
        &self,
        id: TernId,
        attempt: Attempt,
        retry_at_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let record = self.require(id)?;
        let queued_at = record.not_before_ms;
        let mut change = transition::attempt(record, attempt, retry_at_ms, now_ms);
        let releasing = self.settle_claim(queued_at, &mut change);
        let mut batch = Ops::default();
        Self::stage(&mut batch, change)?;
        self.write_releasing(id, releasing, batch, true).await
    }

    /// Ends a message: final state, out of every queue, into retention.
    pub async fn finish(
        &self,
        id: TernId,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let record = self.require(id)?;
        let queued_at = record.not_before_ms;
        let Ok(mut change) = transition::finish(record, outcome, now_ms) else {
            // Final already: it keeps its outcome.
            return Ok(());
        };
        let releasing = self.settle_claim(queued_at, &mut change);
        let mut batch = Ops::default();
        Self::stage(&mut batch, change)?;
        self.write_releasing(id, releasing, batch, false).await
    }

    /// Ends a message that is still waiting to be sent (scheduled for
    /// later, or back in the queue for a retry) if `accept` agrees: final
    /// with `outcome`, out of the queues, into retention, as
    /// [`SledStore::finish`] does. `accept` sees the record first, so it can
    /// refuse another client's message whatever its state.
    ///
    /// Safe against the dispatcher: it runs under the lock
    /// [`SledStore::claim_ready`] takes, so a message is either claimed
    /// first (this answers [`QueuedChange::NotQueued`] and the send goes on)
    /// or ended here first (and never claimed). A message in flight,
    /// submitted or final is left alone.
    pub async fn cancel_queued<F>(
        &self,
        id: TernId,
        accept: F,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<QueuedChange, StoreError>
    where
        F: FnOnce(&MessageRecord) -> bool,
    {
        let _queue = self.queue_lock.lock().await;
        let Some(record) = self.get(id)? else {
            return Ok(QueuedChange::NotFound);
        };
        if !accept(&record) {
            return Ok(QueuedChange::Refused);
        }
        let change = match transition::cancel(record, outcome, now_ms) {
            Ok(change) => change,
            Err(refused) => return Ok(QueuedChange::from(refused)),
        };
        let mut batch = Ops::default();
        let ended = Self::stage(&mut batch, change)?;
        self.write(batch).await?;
        Ok(QueuedChange::Done(Box::new(ended)))
    }

    /// Ends every waiting message `accept` agrees to, at most `limit`, in
    /// one atomic write (cancel_sm by source and destination), and returns
    /// them as they now are. Same lock and rules as
    /// [`SledStore::cancel_queued`]. It reads every waiting message (the
    /// whole ready queue, due or not), so its cost grows with the queue:
    /// meant for the rare cancel by addresses, not for a hot path.
    pub async fn cancel_queued_matching<F>(
        &self,
        mut accept: F,
        outcome: Outcome,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<MessageRecord>, StoreError>
    where
        F: FnMut(&MessageRecord) -> bool,
    {
        let _queue = self.queue_lock.lock().await;
        let mut batch = Ops::default();
        let mut ended = Vec::new();
        for entry in self.view.scan_prefix([keys::READY]) {
            if ended.len() >= limit {
                break;
            }
            let (key, _) = entry?;
            let Some(id) = keys::trailing_id(&key) else {
                continue;
            };
            let Some(record) = self.get(id)? else {
                continue;
            };
            if record.state != State::Queued || !accept(&record) {
                continue;
            }
            if let Ok(change) = transition::cancel(record, outcome.clone(), now_ms) {
                ended.push(Self::stage(&mut batch, change)?);
            }
        }
        if !ended.is_empty() {
            self.write(batch).await?;
        }
        Ok(ended)
    }

    /// Changes a message that is still waiting to be sent (replace_sm):
    /// `change` sees the record and returns its new values, or `None` to
    /// refuse. The message keeps its id and its place in the queues moves
    /// to the new times. Same lock and rules as [`SledStore::cancel_queued`]:
    /// the dispatcher sends either the old message (claimed first) or the
    /// new one, never a mix.
    pub async fn replace_queued<F>(
        &self,
        id: TernId,
        change: F,
        now_ms: u64,
    ) -> Result<QueuedChange, StoreError>
    where
        F: FnOnce(&MessageRecord) -> Option<Replacement>,
    {
        let _queue = self.queue_lock.lock().await;
        let Some(record) = self.get(id)? else {
            return Ok(QueuedChange::NotFound);
        };
        let Some(new) = change(&record) else {
            return Ok(QueuedChange::Refused);
        };
        let change = match transition::replace(record, new, now_ms) {
            Ok(change) => change,
            Err(refused) => return Ok(QueuedChange::from(refused)),
        };
        let mut batch = Ops::default();
        let record = Self::stage(&mut batch, change)?;
        self.write(batch).await?;
        Ok(QueuedChange::Done(Box::new(record)))
    }

    /// The message an upstream's id belongs to, whatever its case or
    /// leading zeros. Not across bases: with sequential ids, "12" read as hex
    /// is another message's "18" (see [`SledStore::lookup_upstream_any_base`]).
    pub fn lookup_upstream(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        self.lookup_forms(upstream, &[normalise(upstream_id)])
    }

    /// [`SledStore::lookup_upstream`], also trying the same number in the
    /// other base: for a vendor whose receipts write the id in another base
    /// than its submit_sm_resp (a profile setting).
    pub fn lookup_upstream_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<TernId>, StoreError> {
        self.lookup_forms(upstream, &candidates(upstream_id))
    }

    fn lookup_forms(&self, upstream: &str, forms: &[String]) -> Result<Option<TernId>, StoreError> {
        for form in forms {
            if let Some(value) = self.read_key(keys::owned_with(
                keys::UPSTREAM_ID,
                upstream,
                form.as_bytes(),
            ))? {
                let bytes: [u8; 8] = value.as_ref().try_into().map_err(|_| StoreError::Decode {
                    what: "upstream id entry",
                    reason: format!("{} octets", value.len()),
                })?;
                return Ok(Some(TernId::from_u64(u64::from_be_bytes(bytes))));
            }
        }
        Ok(None)
    }

    /// Ids whose validity ended by `now`, at most `limit`.
    pub fn expired(&self, now_ms: u64, limit: usize) -> Result<Vec<TernId>, StoreError> {
        self.view
            .range(
                Bound::Included(vec![keys::EXPIRY]),
                Bound::Included(keys::timed_until(keys::EXPIRY, now_ms)),
            )
            .take(limit)
            .map(|entry| {
                let (key, _) = entry?;
                keys::trailing_id(&key).ok_or(StoreError::Decode {
                    what: "expiry key",
                    reason: "too short".to_owned(),
                })
            })
            .collect()
    }

    /// Stores something owed to `client`; returns its place in the outbox.
    pub async fn outbox_push(&self, client: &str, item: &OutboxItem) -> Result<u64, StoreError> {
        let seq = self.sequence().await?;
        let mut ops = Ops::default();
        ops.insert(
            keys::owned_with(keys::OUTBOX, client, &seq.to_be_bytes()),
            encode(item)?,
        );
        self.write(ops).await?;
        Ok(seq)
    }

    /// Up to `limit` items owed to `client`, oldest first; with `after`,
    /// only those placed after it (a deliverer with items out reads only
    /// what came since).
    pub fn outbox_pending(
        &self,
        client: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, OutboxItem)>, StoreError> {
        let prefix = keys::owned(keys::OUTBOX, client);
        let from = match after {
            Some(seq) => {
                Bound::Excluded(keys::owned_with(keys::OUTBOX, client, &seq.to_be_bytes()))
            }
            None => Bound::Included(prefix.clone()),
        };
        self.view
            .range(from, prefix_end(&prefix))
            .take_while(|entry| {
                entry
                    .as_ref()
                    .map_or(true, |(key, _)| key.starts_with(&prefix))
            })
            .take(limit)
            .map(|entry| {
                let (key, value) = entry?;
                let seq: [u8; 8] =
                    key[prefix.len()..]
                        .try_into()
                        .map_err(|_| StoreError::Decode {
                            what: "outbox key",
                            reason: format!("{} octets", key.len()),
                        })?;
                Ok((u64::from_be_bytes(seq), decode("outbox item", &value)?))
            })
            .collect()
    }

    /// Removes an item the client has acknowledged; for a receipt, the
    /// time goes into its message's history.
    pub async fn outbox_ack(&self, client: &str, seq: u64) -> Result<(), StoreError> {
        let mut ops = Ops::default();
        self.ack_ops(client, seq, &mut ops)?;
        ops.remove(keys::owned_with(keys::OUTBOX, client, &seq.to_be_bytes()));
        self.write_lazy(ops).await
    }

    /// Removes many acknowledged items in one write: what [`outbox_ack`]
    /// does for each, at the cost of one log record, with no sync of its
    /// own ([`SledStore::write_lazy`]; the outbox gathers its clients'
    /// answers while the previous batch is written).
    ///
    /// [`outbox_ack`]: Self::outbox_ack
    pub async fn outbox_ack_many(&self, client: &str, seqs: &[u64]) -> Result<(), StoreError> {
        if seqs.is_empty() {
            return Ok(());
        }
        let mut ops = Ops::default();
        for &seq in seqs {
            self.ack_ops(client, seq, &mut ops)?;
            ops.remove(keys::owned_with(keys::OUTBOX, client, &seq.to_be_bytes()));
        }
        self.write_lazy(ops).await
    }

    /// Clients with something in their outbox (to resume after a restart).
    pub fn outbox_clients(&self) -> Result<Vec<String>, StoreError> {
        let mut clients: Vec<String> = Vec::new();
        let mut from: Vec<u8> = vec![keys::OUTBOX];
        while let Some(entry) = self
            .view
            .range(Bound::Included(from.clone()), Bound::Unbounded)
            .next()
        {
            let (key, _) = entry?;
            if key.first() != Some(&keys::OUTBOX) {
                break;
            }
            let Some(end) = key.iter().skip(1).position(|&b| b == 0) else {
                break;
            };
            let client = String::from_utf8_lossy(&key[1..1 + end]).into_owned();
            // Skip past this client's keys: its name, then the octet after NUL.
            from = keys::owned(keys::OUTBOX, &client);
            if let Some(last) = from.last_mut() {
                *last = 1;
            }
            clients.push(client);
        }
        Ok(clients)
    }

    /// Holds one part of a long MO message until the rest of `group` comes
    /// or `deadline_ms` passes (the deadline of the group's first part
    /// stays). Durable when this returns, so the part may be acknowledged
    /// upstream then. A part that comes again (the upstream resent it)
    /// replaces its copy. Returns the group as now held: every part so far.
    pub async fn mo_part_hold(
        &self,
        group: &MoGroup,
        part: &MoPart,
        deadline_ms: u64,
    ) -> Result<HeldMo, StoreError> {
        if part.sequence == 0 || part.sequence > group.total {
            // Number 0 is the header's place; past the total, no part.
            return Err(StoreError::BadKey {
                what: "MO part number",
                value: format!("{} of {}", part.sequence, group.total),
            });
        }
        let prefix = group.key()?;
        let header_key = group.header_key()?;
        let _mo = self.mo_lock.lock().await;
        let mut ops = Ops::default();
        let deadline_ms = match self.read_key(&header_key)? {
            Some(header) => decode::<MoHeader>("MO group header", &header)?.deadline_ms,
            None => {
                let header = MoHeader {
                    group: group.clone(),
                    deadline_ms,
                };
                ops.insert(header_key.as_slice(), encode(&header)?);
                ops.insert(group.due_key(deadline_ms)?, []);
                deadline_ms
            }
        };
        let mut part_key = prefix.clone();
        part_key.push(part.sequence);
        ops.insert(part_key, encode(part)?);
        self.write(ops).await?;
        Ok(HeldMo {
            group: group.clone(),
            deadline_ms,
            parts: self.mo_parts(&prefix)?,
        })
    }

    /// The parts held under a group's key prefix, by number.
    fn mo_parts(&self, prefix: &[u8]) -> Result<Vec<MoPart>, StoreError> {
        let mut parts = Vec::new();
        for entry in self.view.scan_prefix(prefix) {
            let (key, value) = entry?;
            // The header (number 0) is not a part.
            if key.len() == prefix.len() + 1 && key[prefix.len()] != 0 {
                parts.push(decode("MO part", &value)?);
            }
        }
        Ok(parts)
    }

    /// Releases a held group: `build` sees the group with every part held
    /// at this moment and says what it becomes (one whole message, or the
    /// parts as they are); the group leaves and those items enter its
    /// client's outbox in one atomic write. `build` runs under the same
    /// exclusion as [`SledStore::mo_part_hold`], so a part that arrives
    /// meanwhile is either in what `build` sees or starts a new group:
    /// never removed unseen. `false`, with nothing done, when the group is
    /// no longer held (a concurrent call released it first: its last part
    /// and its deadline came together).
    pub async fn mo_group_release<F>(&self, group: &MoGroup, build: F) -> Result<bool, StoreError>
    where
        F: FnOnce(&HeldMo) -> Vec<OutboxItem>,
    {
        let prefix = group.key()?;
        let header_key = group.header_key()?;
        let _mo = self.mo_lock.lock().await;
        let Some(header) = self.read_key(&header_key)? else {
            return Ok(false);
        };
        let header: MoHeader = decode("MO group header", &header)?;
        let held = HeldMo {
            parts: self.mo_parts(&prefix)?,
            group: header.group,
            deadline_ms: header.deadline_ms,
        };
        let items = build(&held);
        let mut ops = Ops::default();
        for entry in self.view.scan_prefix(&prefix) {
            let (key, _) = entry?;
            ops.remove(&key[..]);
        }
        ops.remove(group.due_key(header.deadline_ms)?);
        for item in &items {
            let seq = self.sequence().await?;
            ops.insert(
                keys::owned_with(keys::OUTBOX, &group.client, &seq.to_be_bytes()),
                encode(item)?,
            );
        }
        self.write(ops).await?;
        Ok(true)
    }

    /// Held groups whose deadline is not after `now`, at most `limit`,
    /// oldest deadline first, with their parts.
    pub fn mo_groups_due(&self, now_ms: u64, limit: usize) -> Result<Vec<HeldMo>, StoreError> {
        let mut end = vec![keys::MO_DUE];
        end.extend_from_slice(&now_ms.saturating_add(1).to_be_bytes());
        let mut due = Vec::new();
        for entry in self
            .view
            .range(Bound::Included(vec![keys::MO_DUE]), Bound::Excluded(end))
            .take(limit)
        {
            let (key, _) = entry?;
            let Some(group) = key.get(9..) else {
                continue;
            };
            let mut header_key = vec![keys::MO_PART];
            header_key.extend_from_slice(group);
            header_key.push(0);
            let Some(header) = self.read_key(&header_key)? else {
                continue;
            };
            let header: MoHeader = decode("MO group header", &header)?;
            let parts = self.mo_parts(&header.group.key()?)?;
            due.push(HeldMo {
                group: header.group,
                deadline_ms: header.deadline_ms,
                parts,
            });
        }
        Ok(due)
    }

    /// Holds a receipt that matched nothing, for when its submit_sm_resp
    /// comes: after any others held for the same id (see `held.rs`).
    pub async fn hold_unmatched(&self, receipt: &UnmatchedReceipt) -> Result<(), StoreError> {
        let _held = self.unmatched_lock.lock().await;
        let form = normalise(&receipt.upstream_id);
        let key = keys::owned_with(keys::UNMATCHED, &receipt.upstream, form.as_bytes());
        let earlier = self.read_key(&key)?;
        let earlier = earlier.unwrap_or_default();
        let value = held::with(&earlier, receipt)?;
        let mut batch = Ops::default();
        // The grace runs from the latest arrival: the time entry moves
        // there, or the earlier one would end the newer receipts early.
        if let Some(at) = held::last_arrival(&earlier)? {
            batch.remove(unmatched_by_time(at, &receipt.upstream, &form));
        }
        if let Some(at) = held::last_arrival(&value)? {
            batch.insert(unmatched_by_time(at, &receipt.upstream, &form), []);
        }
        batch.insert(key, value);
        self.write(batch).await
    }

    /// Whether any receipt may be held: false only when none is, so a
    /// caller looking for held receipts can skip its look-ups. Every
    /// message looks twice (after its submit_sm_resp is recorded, before
    /// its receipt is applied) and almost always finds none; the count of
    /// `h` keys the view keeps (`memtable/counts.rs`) answers without a
    /// read. It changes where the key is applied, under the same lock as
    /// the key, so a look that reads 0 could not have read the key either.
    pub fn may_hold_unmatched(&self) -> bool {
        self.view.total(keys::UNMATCHED) > 0
    }

    /// Takes the oldest receipt held for this upstream id (case and
    /// leading zeros aside), if one came early.
    pub async fn take_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        self.take_forms(upstream, &[normalise(upstream_id)]).await
    }

    /// [`SledStore::take_unmatched`], also across bases.
    pub async fn take_unmatched_any_base(
        &self,
        upstream: &str,
        upstream_id: &str,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        self.take_forms(upstream, &candidates(upstream_id)).await
    }

    async fn take_forms(
        &self,
        upstream: &str,
        forms: &[String],
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        // Under the lock: the receipt handler and the dispatcher may both
        // look for it (each sees the other's write, see `receipts.rs`), and
        // only one may take it, or the message's history would show the
        // receipt twice; and a receipt held meanwhile must stay.
        let _held = self.unmatched_lock.lock().await;
        for form in forms {
            let key = keys::owned_with(keys::UNMATCHED, upstream, form.as_bytes());
            let Some(value) = self.read_key(&key)? else {
                continue;
            };
            let Some((receipt, rest)) = held::first(&value)? else {
                continue;
            };
            let mut batch = Ops::default();
            let (before, after) = (held::last_arrival(&value)?, held::last_arrival(&rest)?);
            if before != after {
                if let Some(at) = before {
                    batch.remove(unmatched_by_time(at, upstream, form));
                }
                if let Some(at) = after {
                    batch.insert(unmatched_by_time(at, upstream, form), []);
                }
            }
            let last = rest.is_empty();
            if last {
                batch.remove(key);
            } else {
                batch.insert(key, rest);
            }
            self.write(batch).await?;
            return Ok(Some(receipt));
        }
        Ok(None)
    }

    /// The oldest receipt held for this upstream id, left in place: the
    /// caller applies it first and takes it after, so a crash between the
    /// two leaves it held (and applied again later, which is harmless)
    /// rather than lost. `any_base` also tries the id's other bases.
    pub fn peek_unmatched(
        &self,
        upstream: &str,
        upstream_id: &str,
        any_base: bool,
    ) -> Result<Option<UnmatchedReceipt>, StoreError> {
        if !self.may_hold_unmatched() {
            return Ok(None);
        }
        for form in forms(upstream_id, any_base) {
            let key = keys::owned_with(keys::UNMATCHED, upstream, form.as_bytes());
            if let Some(value) = self.read_key(&key)? {
                if let Some((first, _)) = held::first(&value)? {
                    return Ok(Some(first));
                }
            }
        }
        Ok(None)
    }

    /// Up to `limit` held receipts (by upstream and id, then in arrival
    /// order), left in place.
    pub fn held_receipts(&self, limit: usize) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        let mut out = Vec::new();
        for entry in self.view.scan_prefix([keys::UNMATCHED]) {
            if out.len() >= limit {
                break;
            }
            let (_, value) = entry?;
            out.extend(held::all(&value)?);
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Removes and returns held receipts older than `grace` at `now`: they
    /// will match nothing (counted and logged by the caller).
    pub async fn expire_unmatched(
        &self,
        now_ms: u64,
        grace: Duration,
        limit: usize,
    ) -> Result<Vec<UnmatchedReceipt>, StoreError> {
        let _held = self.unmatched_lock.lock().await;
        let until = now_ms.saturating_sub(grace.as_millis() as u64);
        let mut end = vec![keys::UNMATCHED_BY_TIME];
        end.extend_from_slice(&until.to_be_bytes());
        end.push(0xFF);
        let mut batch = Ops::default();
        let mut expired = Vec::new();
        let mut removed = 0;
        for entry in self
            .view
            .range(
                Bound::Included(vec![keys::UNMATCHED_BY_TIME]),
                Bound::Excluded(end),
            )
            .take(limit)
        {
            let (key, _) = entry?;
            removed += 1;
            batch.remove(&key[..]);
            let Some(rest) = key.get(9..) else { continue };
            let mut key = vec![keys::UNMATCHED];
            key.extend_from_slice(rest);
            if let Some(value) = self.read_key(&key)? {
                expired.extend(held::all(&value)?);
                batch.remove(key);
            }
        }
        if removed > 0 {
            self.write(batch).await?;
        }
        Ok(expired)
    }

    /// Removes up to `limit` messages whose retention entry is before
    /// `before_ms` (finished then, or accepted upstream then and never
    /// ended: see [`transition::purgeable`]), with their index entries.
    /// Returns how many entries it took. Small batches, so the hot path is
    /// never stalled long.
    pub async fn purge_finished(&self, before_ms: u64, limit: usize) -> Result<usize, StoreError> {
        let mut batch = Ops::default();
        let mut purged = 0;
        let end = keys::timed(keys::RETENTION, before_ms, TernId::from_u64(0));
        for entry in self
            .view
            .range(Bound::Included(vec![keys::RETENTION]), Bound::Excluded(end))
            .take(limit)
        {
            let (key, _) = entry?;
            batch.remove(&key[..]);
            let Some(id) = keys::trailing_id(&key) else {
                continue;
            };
            if let Some(record) = self.get(id)?.filter(transition::purgeable) {
                if let Some(expires) = record.expires_ms {
                    batch.remove(keys::timed(keys::EXPIRY, expires, id));
                }
                for attempt in &record.attempts {
                    for upstream_id in &attempt.upstream_ids {
                        let k = keys::owned_with(
                            keys::UPSTREAM_ID,
                            &attempt.upstream,
                            normalise(upstream_id).as_bytes(),
                        );
                        // Only if it still points here (an id may be reused by the upstream).
                        if self.read_key(&k)?.as_deref() == Some(&id.to_be_bytes()[..]) {
                            batch.remove(k);
                        }
                    }
                }
                if let Some(dedup) = &record.dedup_key {
                    batch.remove(keys::owned_with(keys::DEDUP, &record.client, dedup));
                }
                self.purge_acks(id, &mut batch)?;
                batch.remove(keys::message(id));
            }
            purged += 1;
        }
        if purged > 0 {
            self.write(batch).await?;
        }
        Ok(purged)
    }

    /// Counts by kind, and every way the indexes disagree with the records.
    /// Used after crashes in tests; `tern` can run it on a stopped store.
    pub fn verify(&self) -> Result<Verification, StoreError> {
        let mut v = Verification::default();
        for entry in self.view.scan_prefix([keys::MESSAGE]) {
            let (key, value) = entry?;
            let record = MessageRecord::from_stored(&value)?;
            let id = record.id;
            if keys::message(id) != key.as_ref() {
                v.problems
                    .push(format!("record under {key:?} says it is {id}"));
            }
            v.messages += 1;
            let ready = self.has(keys::ready(&record.client, record.not_before_ms, id))?;
            let flight = self.has(keys::in_flight(id))?;
            match record.state {
                State::Queued if !ready || flight => v
                    .problems
                    .push(format!("{id} queued: ready {ready}, in flight {flight}")),
                State::InFlight if ready || !flight => v
                    .problems
                    .push(format!("{id} in flight: ready {ready}, in flight {flight}")),
                State::Submitted | State::Final if ready || flight => v
                    .problems
                    .push(format!("{id} {:?} but still queued", record.state)),
                _ => {}
            }
            match record.state {
                // Claimed: in memory only, its record queued (`claims.rs`).
                State::Queued if self.claims.of(id).is_some() => v.in_flight += 1,
                State::Queued => v.queued += 1,
                State::InFlight => v.in_flight += 1,
                State::Submitted => v.submitted += 1,
                State::Final => v.finished += 1,
            }
            if record.state != State::Final {
                v.unfinished += 1;
            }
        }
        for (prefix, what) in [
            (keys::READY, "ready"),
            (keys::IN_FLIGHT, "in flight"),
            (keys::EXPIRY, "expiry"),
            (keys::RETENTION, "retention"),
        ] {
            for entry in self.view.scan_prefix([prefix]) {
                let (key, _) = entry?;
                match keys::trailing_id(&key) {
                    Some(id) if self.has(keys::message(id))? => {}
                    _ => v
                        .problems
                        .push(format!("{what} entry {key:?} has no record")),
                }
            }
        }
        for entry in self
            .view
            .scan_prefix([keys::UPSTREAM_ID])
            .chain(self.view.scan_prefix([keys::DEDUP]))
        {
            let (key, value) = entry?;
            let id = if key[0] == keys::UPSTREAM_ID {
                value.as_ref().try_into().ok().map(u64::from_be_bytes)
            } else {
                decode::<(u64, u64)>("dedup entry", &value)
                    .ok()
                    .map(|(id, _)| id)
            };
            match id {
                Some(id) if self.has(keys::message(TernId::from_u64(id)))? => {}
                _ => v
                    .problems
                    .push(format!("index entry {key:?} has no record")),
            }
        }
        let (scanned, per_client) = self.queue_depths_scanned()?;
        let (kept, kept_per_client) = (self.queue_depths(), self.ready_per_client());
        if kept != scanned || kept_per_client != per_client {
            v.problems.push(format!(
                "queue counts kept {kept:?}, ready per client {kept_per_client:?}; \
                 counted {scanned:?}, ready per client {per_client:?}"
            ));
        }
        Ok(v)
    }

    fn has(&self, key: Vec<u8>) -> Result<bool, StoreError> {
        Ok(self.read_key(key)?.is_some())
    }

    /// Messages waiting in the ready queue (due or not), not claimed. A
    /// claimed message keeps its ready entry until its next write
    /// (`claims.rs`), so the claims are taken off the entries.
    pub fn ready_len(&self) -> usize {
        self.view
            .total(keys::READY)
            .saturating_sub(self.claims.len())
    }

    /// How many entries each queue holds, for metrics and `tern status`:
    /// from the counts the store keeps beside its queues (exact as of the
    /// last write applied; see `memtable/counts.rs`), so a scrape costs
    /// the same with a million messages waiting as with none. The oldest
    /// ready message is one seek per client with messages waiting.
    pub fn queue_depths(&self) -> QueueDepths {
        let counts = self.view.counts();
        // Each client's ready queue is ordered by due time: the earliest
        // of their first unclaimed keys is the message that has waited
        // longest (or will be due first). One seek per client, and a step
        // over each of its messages being sent.
        let oldest_ready_ms = counts
            .owners()
            .keys()
            .filter_map(|queue| {
                let (key, _) =
                    self.view
                        .scan_prefix(queue)
                        .filter_map(Result::ok)
                        .find(|(key, _)| {
                            keys::trailing_id(key).is_some_and(|id| self.claims.of(id).is_none())
                        })?;
                keys::ready_time(&key)
            })
            .min();
        // A claimed message keeps its ready entry (`claims.rs`): it counts
        // as in flight, not as ready.
        let claimed = self.claims.len();
        QueueDepths {
            ready: counts.total(keys::READY).saturating_sub(claimed),
            in_flight: counts.total(keys::IN_FLIGHT) + claimed,
            outbox: counts.total(keys::OUTBOX),
            unmatched: counts.total(keys::UNMATCHED),
            oldest_ready_ms,
        }
    }

    /// Messages in each client's ready queue (due or not), clients with
    /// none left out: from the kept counts, like
    /// [`SledStore::queue_depths`].
    pub fn ready_per_client(&self) -> BTreeMap<String, usize> {
        self.view
            .counts()
            .owners()
            .iter()
            .map(|(queue, n)| (client_of_queue(queue), *n))
            .collect()
    }

    /// [`SledStore::queue_depths`] and [`SledStore::ready_per_client`]
    /// counted the slow way, by scanning every queue's keys: what the kept
    /// counts must equal on a quiet store ([`SledStore::verify`] compares
    /// them).
    pub fn queue_depths_scanned(
        &self,
    ) -> Result<(QueueDepths, BTreeMap<String, usize>), StoreError> {
        let count = |prefix: u8| -> Result<usize, StoreError> {
            let mut n = 0;
            for entry in self.view.scan_prefix([prefix]) {
                entry?;
                n += 1;
            }
            Ok(n)
        };
        let mut per_client = BTreeMap::new();
        let mut oldest_ready_ms: Option<u64> = None;
        for entry in self.view.scan_prefix([keys::READY]) {
            let (key, _) = entry?;
            if let Some(queue) = keys::owner_of(&key) {
                *per_client.entry(client_of_queue(queue)).or_default() += 1;
            }
            let claimed = keys::trailing_id(&key).is_some_and(|id| self.claims.of(id).is_some());
            if let Some(at) = keys::ready_time(&key).filter(|_| !claimed) {
                oldest_ready_ms = Some(oldest_ready_ms.map_or(at, |o| o.min(at)));
            }
        }
        // As in `queue_depths`: a claimed message's ready entry counts as
        // in flight.
        let claimed = self.claims.len();
        let depths = QueueDepths {
            ready: per_client.values().sum::<usize>().saturating_sub(claimed),
            in_flight: count(keys::IN_FLIGHT)? + claimed,
            outbox: count(keys::OUTBOX)?,
            unmatched: count(keys::UNMATCHED)?,
            oldest_ready_ms,
        };
        Ok((depths, per_client))
    }

    /// Octets the store takes on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.view.db().size_on_disk()?)
    }
}

/// The client a ready queue's prefix (`q` client NUL) belongs to.
fn client_of_queue(queue: &[u8]) -> String {
    let name = queue
        .get(1..queue.len().saturating_sub(1))
        .unwrap_or_default();
    String::from_utf8_lossy(name).into_owned()
}

fn unmatched_by_time(received_ms: u64, upstream: &str, form: &str) -> Vec<u8> {
    let mut k = vec![keys::UNMATCHED_BY_TIME];
    k.extend_from_slice(&received_ms.to_be_bytes());
    k.extend_from_slice(upstream.as_bytes());
    k.push(0);
    k.extend_from_slice(form.as_bytes());
    k
}

/// Entries per queue ([`SledStore::queue_depths`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct QueueDepths {
    /// Messages waiting to be sent (due or not).
    pub ready: usize,
    /// Messages claimed by a send in progress.
    pub in_flight: usize,
    /// Receipts and MO owed to clients, all clients together.
    pub outbox: usize,
    /// Receipts held because their message is not known yet.
    pub unmatched: usize,
    /// When the first message in the ready queue is (or was) due, ms
    /// since the Unix epoch: in the past, how long the oldest due message
    /// has waited; `None` when the queue is empty.
    pub oldest_ready_ms: Option<u64>,
}

/// What [`SledStore::verify`] found.
#[derive(Debug, Default, Clone)]
pub struct Verification {
    /// Records.
    pub messages: usize,
    /// Records not final.
    pub unfinished: usize,
    /// Records waiting in the ready queue.
    pub queued: usize,
    /// Records claimed by a router task.
    pub in_flight: usize,
    /// Records accepted upstream, waiting for a receipt.
    pub submitted: usize,
    /// Final records still kept.
    pub finished: usize,
    /// Every disagreement, described.
    pub problems: Vec<String>,
}

impl Verification {
    /// True when indexes and records agree.
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }
}

/// The store's clock: milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Shared handle type the daemon passes around.
pub type SharedStore = Arc<SledStore>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores and logs written before claims were kept in memory hold
    /// claimed messages as in-flight records with an in-flight entry: the
    /// open puts them back in the ready queue, and counts them.
    #[tokio::test]
    async fn an_in_flight_entry_of_an_older_store_is_ready_again_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let message = || NewMessage {
            client: "acme".to_owned(),
            pdu: Bytes::from_static(b"pdu"),
            receipt_requested: false,
            not_before_ms: 1,
            expires_ms: None,
            dedup: None,
            id_format: IdFormat::Hex,
        };
        {
            let (store, _) = SledStore::open(dir.path(), StoreOptions::default()).expect("opens");
            let mut legacy = Ops::default();
            for _ in 0..2 {
                let id = store.accept(message(), 1).await.expect("accepts").id;
                // What a claim wrote before.
                let mut record = store.get(id).expect("reads").expect("kept");
                record.state = State::InFlight;
                legacy.remove(keys::ready("acme", 1, id));
                legacy.insert(keys::in_flight(id), []);
                legacy.insert(keys::message(id), encode(&record).expect("encodes"));
            }
            store.accept(message(), 1).await.expect("accepts");
            store.write(legacy).await.expect("writes");
            assert_eq!(store.ready_len(), 1);
        }
        let (store, recovery) =
            SledStore::open(dir.path(), StoreOptions::default()).expect("opens");
        assert_eq!(recovery.requeued, 2);
        assert_eq!(store.ready_len(), 3);
        assert!(store.verify().expect("verifies").is_consistent());
        assert_eq!(store.claim_ready(2, 10).await.expect("claims").len(), 3);
    }

    /// The daemon opens its store with `StoreOptions::default()`: sled's
    /// cache must be the small bound, not sled's 1 GiB, nor the 16 MiB
    /// that let a 1 000 000-message backlog take the daemon past 150 MB
    /// (BENCHMARKS.md "Long outage").
    #[test]
    fn sleds_page_cache_is_bounded_by_default() {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = sled_config(dir.path(), &StoreOptions::default());
        assert_eq!(config.cache_capacity, DEFAULT_CACHE_BYTES);
        assert!(
            config.cache_capacity <= 4 << 20,
            "sled's cache: {} octets",
            config.cache_capacity
        );
        let asked = StoreOptions {
            cache_bytes: 1 << 20,
            ..StoreOptions::default()
        };
        assert_eq!(sled_config(dir.path(), &asked).cache_capacity, 1 << 20);
    }
}
