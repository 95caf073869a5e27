//! Parts of concatenated MO messages held until the whole message is there.
//!
//! A client account that asks for whole MO messages gets the parts of a
//! long one held here until every part has come or a deadline passes. Each
//! part is stored before the upstream is answered, so a part Tern
//! acknowledged is never lost; a group leaves the store in the same atomic
//! write that puts what it became (one message, or the parts as they are)
//! into the client's outbox, so it is never delivered twice nor dropped.
//!
//! Key layout (see [`keys`]): every key of a group starts with
//! `p`, the client, source and destination (each NUL-terminated), then the
//! scheme, reference and total; a last octet is the part's number, 0 for
//! the group's header. The header records the deadline, which also keys the
//! group in the `P` queue.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::keys;

/// Which parts belong together: one client, one sender, one recipient, one
/// concatenation reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MoGroup {
    /// The client account the message goes to.
    pub client: String,
    /// The MO's source_addr (the subscriber).
    pub source: String,
    /// The MO's destination_addr (the short code or long number).
    pub destination: String,
    /// How the parts are tied (UDH with an 8-bit or a 16-bit reference,
    /// SAR TLVs), as the caller numbers them: opaque to the store, but part
    /// of the key, so equal references of two schemes never mix.
    pub scheme: u8,
    /// The concatenation reference.
    pub reference: u16,
    /// How many parts the message has.
    pub total: u8,
}

impl MoGroup {
    /// The key prefix every entry of the group shares (`p` included).
    pub(crate) fn key(&self) -> Result<Vec<u8>, StoreError> {
        let mut k = vec![keys::MO_PART];
        for (what, value) in [
            ("client", &self.client),
            ("source", &self.source),
            ("destination", &self.destination),
        ] {
            // A NUL inside would make one group's keys run into another's.
            if value.as_bytes().contains(&0) {
                return Err(StoreError::BadKey {
                    what,
                    value: value.clone(),
                });
            }
            k.extend_from_slice(value.as_bytes());
            k.push(0);
        }
        k.push(self.scheme);
        k.extend_from_slice(&self.reference.to_be_bytes());
        k.push(self.total);
        Ok(k)
    }

    /// The group's header key: its prefix and part number 0.
    pub(crate) fn header_key(&self) -> Result<Vec<u8>, StoreError> {
        let mut k = self.key()?;
        k.push(0);
        Ok(k)
    }

    /// The group's entry in the deadline queue.
    pub(crate) fn due_key(&self, deadline_ms: u64) -> Result<Vec<u8>, StoreError> {
        let group = self.key()?;
        let mut k = Vec::with_capacity(9 + group.len());
        k.push(keys::MO_DUE);
        k.extend_from_slice(&deadline_ms.to_be_bytes());
        // The group's key without its own prefix octet.
        k.extend_from_slice(&group[1..]);
        Ok(k)
    }
}

/// One part as it came from the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoPart {
    /// The upstream it came from (its profile tells how to read the text).
    pub upstream: String,
    /// Its number in the message, from 1.
    pub sequence: u8,
    /// The upstream's deliver_sm, encoded.
    pub pdu: Bytes,
    /// When it arrived (ms since the Unix epoch).
    pub received_ms: u64,
}

/// What a group's header records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MoHeader {
    /// The group, so the deadline queue leads back to it.
    pub(crate) group: MoGroup,
    /// When the parts go out as they are if the message is not complete.
    pub(crate) deadline_ms: u64,
}

/// A held group and the parts that have come, by number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldMo {
    /// The group.
    pub group: MoGroup,
    /// When its parts go out as they are.
    pub deadline_ms: u64,
    /// The parts held, in order of their numbers.
    pub parts: Vec<MoPart>,
}

impl HeldMo {
    /// Whether every part from 1 to the total is there.
    pub fn is_complete(&self) -> bool {
        usize::from(self.group.total) == self.parts.len()
            && self
                .parts
                .iter()
                .zip(1..=self.group.total)
                .all(|(part, n)| part.sequence == n)
    }
}
