//! A message record as Redis stores it: the record (postcard, as the
//! sled backend writes it) followed by its **generation**, a counter every
//! write of the record raises by one, and a fixed mark that says the
//! trailer is there.
//!
//! Every change to a record is fenced: it applies only if the record is
//! still the one the change was computed from. The fence compared the
//! record's whole octets, so each write sent the record twice (the octets
//! checked and the octets set) and the script read the whole record back
//! into Lua to compare it: about 600 octets a step of the request and
//! 300 of Lua strings, three steps a message. The generation says as
//! much: each write checks the generation it read and stores the next,
//! all in one script, so two writers that read one generation cannot
//! both write (the second finds the next one), and a generation never
//! comes back (it only grows), so a writer that read long ago is refused
//! as a stale one was by the octets. The script compares the last
//! [`TRAILER`] octets (`GETRANGE key -16 -1`) with the trailer read.
//!
//! A record written before generations has no trailer: its writes are
//! still fenced by its whole octets, and store the first generation.
//! Readers decode the record without the trailer.

use crate::error::StoreError;
use crate::record::MessageRecord;

/// Ends every trailer; a record written before generations ends with
/// these eight octets by chance once in 2^64.
const MARK: [u8; 8] = *b"\xffTgen\x00\x01\xfe";

/// Octets of the trailer: the generation (big-endian) and [`MARK`].
pub(super) const TRAILER: usize = 16;

/// The octets stored for `record` at `generation`.
pub(super) fn encode_at(record: &MessageRecord, generation: u64) -> Result<Vec<u8>, StoreError> {
    let mut raw = postcard::to_stdvec(record).map_err(StoreError::encode::<MessageRecord>)?;
    raw.reserve(TRAILER);
    raw.extend_from_slice(&generation.to_be_bytes());
    raw.extend_from_slice(&MARK);
    Ok(raw)
}

/// The trailer of stored octets, what a write's fence compares; `None`
/// for a record written before generations (fenced by its octets).
pub(super) fn trailer(raw: &[u8]) -> Option<&[u8]> {
    let at = raw.len().checked_sub(TRAILER)?;
    let tail = raw.get(at..)?;
    tail.ends_with(&MARK).then_some(tail)
}

/// The generation of stored octets (0 for a record written before
/// generations).
fn generation(raw: &[u8]) -> u64 {
    trailer(raw)
        .and_then(|t| t.get(..8))
        .and_then(|g| g.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The generation a write over stored octets `raw` stores.
pub(super) fn next(raw: &[u8]) -> u64 {
    generation(raw).saturating_add(1)
}

/// The record in stored octets, trailer or not.
pub(super) fn decode(raw: &[u8]) -> Result<MessageRecord, StoreError> {
    let record = match trailer(raw) {
        Some(_) => &raw[..raw.len() - TRAILER],
        None => raw,
    };
    MessageRecord::from_stored(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::TernId;

    fn record() -> MessageRecord {
        let message = crate::sled_store::NewMessage {
            client: "acme".to_owned(),
            pdu: bytes::Bytes::from_static(b"submit_sm"),
            receipt_requested: true,
            not_before_ms: 1,
            expires_ms: Some(100),
            dedup: None,
            id_format: crate::IdFormat::Hex,
        };
        message.into_record(TernId::from_u64(7), 1, None).0
    }

    #[test]
    fn a_record_keeps_its_generation_and_decodes_without_it() {
        let record = record();
        let raw = encode_at(&record, 41).expect("encodes");
        assert_eq!(decode(&raw).expect("decodes"), record);
        assert_eq!(next(&raw), 42);
        assert_eq!(trailer(&raw).map(<[u8]>::len), Some(TRAILER));
        // Each write stores another trailer: the fence of the next.
        let again = encode_at(&record, next(&raw)).expect("encodes");
        assert_ne!(trailer(&raw), trailer(&again));
    }

    #[test]
    fn a_record_written_before_generations_has_none() {
        let record = record();
        let old = postcard::to_stdvec(&record).expect("encodes");
        assert_eq!(trailer(&old), None);
        assert_eq!(next(&old), 1);
        assert_eq!(decode(&old).expect("decodes"), record);
    }
}
