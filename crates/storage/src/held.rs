//! The receipts held under one upstream id, as both backends store them:
//! each encoded on its own, back to back, in arrival order.
//!
//! An upstream may send more than one receipt for a message before Tern
//! knows the message (an intermediate ENROUTE, then the final DELIVRD, both
//! ahead of the submit_sm_resp being recorded). Each was acknowledged once
//! held, so each must be kept until it is applied: one entry per id holding
//! only the latest would drop the earlier ones. A value written when only
//! one was kept is a sequence of one, so old stores read unchanged.

use crate::error::StoreError;
use crate::record::UnmatchedReceipt;

/// The receipts in a held value, each with where it ends in the value.
fn split(value: &[u8]) -> Result<Vec<(UnmatchedReceipt, usize)>, StoreError> {
    let mut out = Vec::new();
    let mut rest = value;
    while !rest.is_empty() {
        let (receipt, after) =
            postcard::take_from_bytes::<UnmatchedReceipt>(rest).map_err(|e| {
                StoreError::Decode {
                    what: "unmatched receipt",
                    reason: e.to_string(),
                }
            })?;
        rest = after;
        out.push((receipt, value.len() - rest.len()));
    }
    Ok(out)
}

fn encode(receipt: &UnmatchedReceipt) -> Result<Vec<u8>, StoreError> {
    postcard::to_stdvec(receipt).map_err(StoreError::encode::<UnmatchedReceipt>)
}

/// Every receipt in a held value, in arrival order.
pub(crate) fn all(value: &[u8]) -> Result<Vec<UnmatchedReceipt>, StoreError> {
    Ok(split(value)?.into_iter().map(|(r, _)| r).collect())
}

/// The time a held value's grace runs from: its latest arrival.
pub(crate) fn last_arrival(value: &[u8]) -> Result<Option<u64>, StoreError> {
    Ok(split(value)?.iter().map(|(r, _)| r.received_ms).max())
}

/// Whether two receipts are the same one sent again: the same deliver_sm
/// apart from its header (a resend has a new sequence number).
fn same(a: &UnmatchedReceipt, b: &UnmatchedReceipt) -> bool {
    a.pdu.get(16..) == b.pdu.get(16..)
}

/// `value` (empty when nothing is held) with `receipt` added after the
/// others; the same receipt sent again replaces the first in its place, so
/// it is applied once and its grace runs from its last arrival.
pub(crate) fn with(value: &[u8], receipt: &UnmatchedReceipt) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::with_capacity(value.len() + receipt.pdu.len() + 32);
    let mut replaced = false;
    for held in all(value)? {
        if !replaced && same(&held, receipt) {
            out.extend(encode(receipt)?);
            replaced = true;
        } else {
            out.extend(encode(&held)?);
        }
    }
    if !replaced {
        out.extend(encode(receipt)?);
    }
    Ok(out)
}

/// The first (earliest) receipt of a held value and what stays held after
/// it is taken (empty: nothing).
pub(crate) fn first(value: &[u8]) -> Result<Option<(UnmatchedReceipt, Vec<u8>)>, StoreError> {
    let Some((receipt, end)) = split(value)?.into_iter().next() else {
        return Ok(None);
    };
    Ok(Some((receipt, value[end..].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn receipt(pdu: &'static [u8], at: u64) -> UnmatchedReceipt {
        UnmatchedReceipt {
            upstream: "up".to_owned(),
            upstream_id: "42".to_owned(),
            pdu: Bytes::from_static(pdu),
            received_ms: at,
        }
    }

    #[test]
    fn receipts_are_kept_in_arrival_order_and_a_resend_replaces_its_first() {
        let enroute = receipt(b"0123456789abcdefENROUTE", 1);
        let delivered = receipt(b"0123456789abcdefDELIVRD", 2);
        let one = with(&[], &enroute).expect("one");
        // A value from before: one receipt, encoded alone.
        assert_eq!(one, encode(&enroute).expect("encodes"));
        let two = with(&one, &delivered).expect("two");
        assert_eq!(
            all(&two).expect("reads"),
            [enroute.clone(), delivered.clone()]
        );
        // ENROUTE sent again (another header): still first, once, later.
        let mut again = enroute.clone();
        again.pdu = Bytes::from([&b"fedcba9876543210"[..], b"ENROUTE"].concat());
        again.received_ms = 3;
        let three = with(&two, &again).expect("again");
        assert_eq!(
            all(&three).expect("reads"),
            [again.clone(), delivered.clone()]
        );
        assert_eq!(last_arrival(&three).expect("reads"), Some(3));
        let (head, rest) = first(&three).expect("reads").expect("held");
        assert_eq!(head, again);
        let (head, rest) = first(&rest).expect("reads").expect("held");
        assert_eq!(head, delivered);
        assert!(rest.is_empty());
        assert!(first(&rest).expect("reads").is_none());
    }
}
