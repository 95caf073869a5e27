//! The messages being sent, kept in memory only.
//!
//! A claim writes nothing: the claimed message keeps its record (queued)
//! and its ready entry in the store, and its id goes into [`Claims`]. The
//! claim skips claimed ids, and the message's next write (its attempt, its
//! end, a receipt's requeue) removes the ready entry and, once applied,
//! the claim. A restart has no claims, so a message claimed but neither
//! attempted nor ended is simply ready again: what recovery did before to
//! every message left in flight, with one log group per message fewer.
//! (Stores and logs written before keep `keys::IN_FLIGHT` entries; the
//! open's recovery still moves those back to ready.)

use std::collections::HashMap;
use std::sync::Mutex;

use crate::id::TernId;

/// Where a claimed message stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Claim {
    /// Being sent; its ready entry is still in the store and goes with its
    /// next write, so the claim may step past it for good.
    Held,
    /// Its releasing write (which removes the ready entry and may put a
    /// new one in, a retry at the same or another time) is on its way: a
    /// claim must neither take it nor step past a key of it for good.
    Releasing,
}

/// The ids claimed and not yet released.
#[derive(Debug, Default)]
pub(super) struct Claims(Mutex<HashMap<TernId, Claim>>);

impl Claims {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TernId, Claim>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `id` claimed (by the claimer, under the queue lock).
    pub(super) fn hold(&self, id: TernId) {
        self.lock().insert(id, Claim::Held);
    }

    /// Whether `id` is claimed, and how.
    pub(super) fn of(&self, id: TernId) -> Option<Claim> {
        self.lock().get(&id).copied()
    }

    /// Messages claimed now.
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }

    /// Starts releasing `id`'s claim: true if it was claimed (the write
    /// about to be made must remove its ready entry, and
    /// [`Claims::released`] ends the release).
    pub(super) fn begin_release(&self, id: TernId) -> bool {
        match self.lock().get_mut(&id) {
            Some(claim) => {
                *claim = Claim::Releasing;
                true
            }
            None => false,
        }
    }

    /// Ends a release begun by [`Claims::begin_release`]: the claim goes
    /// once its write is applied; a write that failed leaves the message
    /// claimed (the ready entry may be there still), until a later write
    /// or a restart.
    pub(super) fn released(&self, id: TernId, applied: bool) {
        let mut claims = self.lock();
        if applied {
            claims.remove(&id);
        } else if let Some(claim) = claims.get_mut(&id) {
            *claim = Claim::Held;
        }
    }
}
