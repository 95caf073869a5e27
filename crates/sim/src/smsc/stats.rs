//! What the simulator saw and did, as counters tests and tools read.
//!
//! Counters are atomics bumped where things happen; answers are also kept
//! per status because "how many got `ESME_RTHROTTLED`" is the question most
//! misbehaviour tests ask. [`SimStats::snapshot`] copies them all at once
//! (each counter is exact; the set is not one atomic picture).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tern_codec::CommandStatus;

macro_rules! counters {
    ($( $(#[$doc:meta])* $name:ident, )*) => {
        /// Live counters of one simulator.
        #[derive(Debug, Default)]
        pub(crate) struct SimStats {
            $( $(#[$doc])* pub(crate) $name: AtomicU64, )*
            /// Answers to submits, by command_status code.
            responses: Mutex<BTreeMap<u32, u64>>,
        }

        /// A copy of the simulator's counters.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct SimSnapshot {
            $( $(#[$doc])* pub $name: u64, )*
            /// Answers to submits, by command_status code (see
            /// [`SimSnapshot::responses_with`]).
            pub responses: BTreeMap<u32, u64>,
        }

        impl SimStats {
            pub(crate) fn snapshot(&self) -> SimSnapshot {
                SimSnapshot {
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                    responses: self
                        .responses
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                }
            }
        }
    };
}

counters! {
    /// TCP connections accepted.
    connections,
    /// Sessions that bound.
    binds,
    /// Binds refused (unknown account, wrong password, too many binds).
    binds_refused,
    /// Binds refused with `ESME_RBINDFAIL` because the account had its
    /// `max_binds` sessions bound already (also in `binds_refused`).
    binds_over_cap,
    /// submit_sm, data_sm and submit_multi received.
    submits,
    /// Submits left unanswered on purpose (`drop_fraction`).
    dropped,
    /// Receipts queued for delivery.
    receipts_queued,
    /// Receipts discarded because the account's queue was full.
    receipts_discarded,
    /// deliver_sm receipts sent (a retry counts again).
    receipts_sent,
    /// Receipts answered with deliver_sm_resp `ESME_ROK`.
    receipts_acked,
    /// MO messages injected.
    mo_injected,
    /// MO deliver_sm sent (a retry counts again).
    mo_sent,
    /// MO messages answered with `ESME_ROK`.
    mo_acked,
    /// deliver_sm (receipt or MO) answered with an error status (each
    /// refusal counts; the item is retried later).
    deliveries_refused,
    /// Receipts and MO given up after 10 refused or unanswered tries.
    deliveries_failed,
    /// Unbinds the simulator started (`unbind_after`).
    unbinds_sent,
    /// Connections the simulator dropped (`disconnect_after`, on command).
    disconnects,
    /// Times garbage was written to a session.
    garbage_sent,
    /// TLS handshakes completed (TLS listeners only).
    tls_handshakes,
    /// TLS handshakes that failed or timed out: a version below the
    /// simulator's floor or above its ceiling, an untrusted certificate.
    tls_failures,
}

impl SimStats {
    /// Counts one answer to a submit.
    pub(crate) fn response(&self, status: CommandStatus) {
        let mut map = self.responses.lock().unwrap_or_else(|p| p.into_inner());
        *map.entry(status.code()).or_insert(0) += 1;
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

impl SimSnapshot {
    /// Answers to submits with this status.
    pub fn responses_with(&self, status: CommandStatus) -> u64 {
        self.responses.get(&status.code()).copied().unwrap_or(0)
    }

    /// All answers to submits, whatever their status.
    pub fn responses_total(&self) -> u64 {
        self.responses.values().sum()
    }
}
