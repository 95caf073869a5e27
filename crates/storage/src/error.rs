//! Store errors. Opening failures name the path, so an operator knows which
//! directory to look at; the daemon stops on them rather than start afresh.

use std::path::PathBuf;
use std::sync::Arc;

/// The error underneath a store failure, kept for its source chain. Shared
/// (`Arc`) because one failed group write is reported to each of its
/// writers, and `io::Error` cannot be cloned.
pub type Cause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// `": <cause>"`, or nothing: the messages below name what failed, then
/// what the system said about it, so a log line read alone is enough.
fn cause<E: std::fmt::Display>(source: &Option<E>) -> String {
    source
        .as_ref()
        .map(|e| format!(": {e}"))
        .unwrap_or_default()
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store at `path` could not be opened (unreadable, corrupt, locked
    /// by another process).
    #[error("cannot open the message store at {path}: {reason}")]
    Open {
        /// The store's directory.
        path: PathBuf,
        /// What sled or the file system said.
        reason: String,
    },
    /// `path` holds something that is not a Tern store; it is left alone.
    #[error("{path} is not a Tern message store ({reason}); refusing to use or recreate it")]
    NotAStore {
        /// The directory.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// A file of the store at `store` is damaged in a way that would lose
    /// acknowledged records if the store were used: a checksum that fails
    /// in the middle of the write-ahead log, or a sled data file that
    /// recovered to less than a completed checkpoint. Nothing was changed;
    /// the daemon exits rather than run on what is left.
    #[error(
        "damaged store file {file}: {detail}; nothing was changed          (`tern check-store {store}` reports on the store)"
    )]
    Damaged {
        /// The store's directory.
        store: PathBuf,
        /// The damaged file.
        file: PathBuf,
        /// Where and what (offset, checksum).
        detail: String,
    },
    /// A read or write failed. `what` names the file, database or task it
    /// was about (the write-ahead log's directory, the sled database, the
    /// committer); `source` is what the system said, when it said anything.
    #[error("message store: {what}{}", cause(.source))]
    Io {
        /// What the read or write was about.
        what: String,
        /// The file system's or sled's error.
        #[source]
        source: Option<Cause>,
    },
    /// The store's disk has no room for the write (ENOSPC, a quota, or
    /// less free space than the write-ahead log keeps in reserve so sled
    /// never meets a full disk itself), or a Redis server is at its
    /// `maxmemory` (OOM). Nothing of the write is kept, and
    /// the refusal is temporary: the next write after space returns
    /// succeeds, so clients are told to retry (ESME_RMSGQFUL), not that
    /// Tern is broken.
    #[error("message store: out of space: {what}{}", cause(.source))]
    Full {
        /// What had no room (the write-ahead log's directory, a checkpoint,
        /// the Redis server).
        what: String,
        /// ENOSPC, EDQUOT or Redis's OOM answer, when there was one (a
        /// postponed checkpoint has none: it measured the free space).
        #[source]
        source: Option<Cause>,
    },
    /// A value could not be encoded for storage.
    #[error("message store: cannot encode {what}: {source}")]
    Encode {
        /// Which kind of value.
        what: &'static str,
        /// What the encoder said.
        #[source]
        source: postcard::Error,
    },
    /// A stored value could not be decoded (corruption, or a newer format).
    #[error("message store: undecodable {what} ({reason})")]
    Decode {
        /// Which kind of value.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// No message with this id.
    #[error("no message {0}")]
    NotFound(crate::TernId),
    /// The id counter is exhausted for this node (2^48 ids).
    #[error("message ids exhausted on node {0}")]
    IdsExhausted(u16),
    /// A change decided from a read of the message was refused this many
    /// times in a row, each time because it had been written since (by
    /// another node, or a task that does not take the message's lock).
    #[error("message {id} kept changing under {tries} tries")]
    KeptChanging {
        /// The message.
        id: crate::TernId,
        /// How many times it was read and decided.
        tries: usize,
    },
    /// A value that goes into a key cannot: it holds a NUL, which ends a
    /// name in the key layout, or a number the layout reserves.
    #[error("message store: {what} {value:?} cannot be part of a key")]
    BadKey {
        /// Which value.
        what: &'static str,
        /// The value, as given.
        value: String,
    },
    /// The Redis backend could not reach its server or a command failed
    /// (connection refused or lost, a script error, a cluster that is
    /// down). The write it was part of may or may not have been applied:
    /// nothing was acknowledged, so the caller must not answer OK.
    #[error("message store on Redis: {what}{}", cause(.source))]
    Redis {
        /// What was asked of Redis, or what went wrong without an answer
        /// from it (a read with no answer in time, a message that kept
        /// changing under every try).
        what: String,
        /// The Redis client's error, when there was one.
        #[source]
        source: Option<redis::RedisError>,
    },
    /// A Redis server does not keep writes the way the configured
    /// durability policy requires (e.g. `appendfsync everysec` where
    /// `always` is required): the store refuses to start rather than
    /// acknowledge writes it could lose.
    #[error("Redis at {address} does not meet the durability policy: {reason}")]
    Durability {
        /// The server's address as configured.
        address: String,
        /// What was found.
        reason: String,
    },
    /// Another process holds this node id's membership on the shared Redis
    /// store and kept it past the wait: a live duplicate (two nodes must
    /// never share an id: their message ids and claims would collide), or
    /// one that still renews. A node that was killed frees it on expiry.
    #[error("node id {0} is in use by another live Tern process on this store")]
    NodeIdInUse(u16),
    /// A write reached the primary but not enough replicas in time (the
    /// `WAIT` policy): it is not acknowledged.
    #[error("Redis: {acked} of {wanted} replicas acknowledged a write in time")]
    NotReplicated {
        /// Replicas that acknowledged.
        acked: u64,
        /// Replicas the policy requires.
        wanted: u32,
    },
}

impl StoreError {
    /// Whether the store refused for want of space ([`StoreError::Full`]):
    /// a temporary refusal, which clients are told as ESME_RMSGQFUL.
    pub fn is_full(&self) -> bool {
        matches!(self, StoreError::Full { .. })
    }

    /// A [`StoreError::Redis`] about `what` with no error from the client.
    pub fn redis(what: impl Into<String>) -> Self {
        StoreError::Redis {
            what: what.into(),
            source: None,
        }
    }

    /// A [`StoreError::Encode`] for a value of type `T`.
    pub(crate) fn encode<T: ?Sized>(source: postcard::Error) -> Self {
        StoreError::Encode {
            what: std::any::type_name::<T>(),
            source,
        }
    }
}

impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        // A Redis at its `maxmemory` refuses writes with OOM: as full as a
        // full disk, and as temporary. From a script the code may be ERR
        // with the OOM text inside.
        if err.code() == Some("OOM") || err.to_string().contains("OOM command not allowed") {
            return StoreError::Full {
                what: "the Redis server is at its maxmemory".to_owned(),
                source: Some(Arc::new(err)),
            };
        }
        StoreError::Redis {
            what: "a command failed".to_owned(),
            source: Some(err),
        }
    }
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        let what = "the sled database".to_owned();
        match err {
            sled::Error::Io(e) if no_space(&e) => StoreError::Full {
                what,
                source: Some(Arc::new(e)),
            },
            other => StoreError::Io {
                what,
                source: Some(Arc::new(other)),
            },
        }
    }
}

impl From<crate::commit::Failure> for StoreError {
    fn from(failure: crate::commit::Failure) -> Self {
        let crate::commit::Failure { full, what, source } = failure;
        let source = source.map(|e| -> Cause { e });
        if full {
            StoreError::Full { what, source }
        } else {
            StoreError::Io { what, source }
        }
    }
}

/// Whether `err` says the file system is out of space: ENOSPC, or EDQUOT
/// (a quota is as full as a full disk to the writer).
pub(crate) fn no_space(err: &std::io::Error) -> bool {
    use rustix::io::Errno;
    err.kind() == std::io::ErrorKind::StorageFull
        || err.raw_os_error().is_some_and(|code| {
            code == Errno::NOSPC.raw_os_error() || code == Errno::DQUOT.raw_os_error()
        })
}

impl From<sled::transaction::TransactionError<StoreError>> for StoreError {
    fn from(err: sled::transaction::TransactionError<StoreError>) -> Self {
        match err {
            sled::transaction::TransactionError::Abort(e) => e,
            sled::transaction::TransactionError::Storage(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;
    use crate::commit::Failure;

    #[test]
    fn no_space_is_told_apart_from_other_failures() {
        let enospc = || io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error());
        assert!(no_space(&enospc()));
        assert!(no_space(&io::Error::from_raw_os_error(
            rustix::io::Errno::DQUOT.raw_os_error()
        )));
        assert!(no_space(&io::Error::new(
            io::ErrorKind::StorageFull,
            "reserve"
        )));
        assert!(!no_space(&io::Error::from(io::ErrorKind::PermissionDenied)));
        assert!(!no_space(&io::Error::from_raw_os_error(
            rustix::io::Errno::IO.raw_os_error()
        )));

        assert!(matches!(
            StoreError::from(sled::Error::Io(enospc())),
            StoreError::Full { .. }
        ));
        assert!(matches!(
            StoreError::from(sled::Error::Io(io::Error::from(io::ErrorKind::Other))),
            StoreError::Io { .. }
        ));
        let full = StoreError::from(Failure::io("the log in /s/wal", enospc()));
        assert!(full.is_full());
        // The message names the thing and keeps the system's error under it.
        assert!(full.to_string().contains("/s/wal"), "{full}");
        let source = std::error::Error::source(&full).expect("a source");
        let source = source.downcast_ref::<Cause>().expect("a shared cause");
        assert_eq!(
            source
                .downcast_ref::<io::Error>()
                .and_then(io::Error::raw_os_error),
            Some(rustix::io::Errno::NOSPC.raw_os_error())
        );
        let broken = StoreError::from(Failure::io("the log in /s/wal", io::Error::other("broken")));
        assert!(matches!(broken, StoreError::Io { .. }), "{broken:?}");
        assert!(!broken.is_full());
        assert!(
            broken.to_string().ends_with("the log in /s/wal: broken"),
            "{broken}"
        );
        let oom = redis::RedisError::from((
            redis::ErrorKind::ResponseError,
            "An error was signalled by the server",
            "OOM command not allowed when used memory > 'maxmemory'.".to_owned(),
        ));
        let oom = StoreError::from(oom);
        assert!(oom.is_full(), "{oom:?}");
        assert!(std::error::Error::source(&oom)
            .and_then(|e| e.downcast_ref::<Cause>())
            .is_some_and(|e| e.is::<redis::RedisError>()));
        let other = redis::RedisError::from((redis::ErrorKind::IoError, "connection refused"));
        let other = StoreError::from(other);
        assert!(
            matches!(&other, StoreError::Redis { source: Some(e), .. } if e.is_io_error()),
            "{other:?}"
        );
    }
}
