//! Which attempt and which part of a message a receipt's id names.
//!
//! An upstream may write an id in its receipt otherwise than in its
//! submit_sm_resp: case and leading zeros never matter, and for a vendor
//! whose profile says so (`message_id.receipt_id_any_base`) the id may be
//! the same number in the other base (VENDORS.md: Telesign's 32 hex
//! digits, others decimal or opaque). The normal forms are the store's
//! (`tern_storage::upstream_id`), since it indexes ids by them; here they
//! decide against one record.

use tern_storage::upstream_id::{candidates, normalise};
use tern_storage::{Attempt, MessageRecord, PartState};

/// The normal forms a receipt's `id` may match: its own, and with
/// `any_base` the same number in the other base.
fn wanted(id: &str, any_base: bool) -> Vec<String> {
    if any_base {
        candidates(id)
    } else {
        vec![normalise(id)]
    }
}

/// Whether one of the record's attempts gave `upstream_id` at `upstream`:
/// a message being sent whose record does not know it yet is not the
/// receipt's to decide (the submit_sm_resp is not recorded yet).
pub fn knows(record: &MessageRecord, upstream: &str, upstream_id: &str, any_base: bool) -> bool {
    let wanted = wanted(upstream_id, any_base);
    record.attempts.iter().any(|a| {
        a.upstream == upstream
            && a.upstream_ids
                .iter()
                .any(|u| wanted.contains(&normalise(u)))
    })
}

/// Whether a receipt's id names this part (case, leading zeros and, for
/// vendors whose profile says so, the base aside).
pub fn names(part: &PartState, upstream: &str, id: &str, any_base: bool) -> bool {
    part.upstream == upstream && wanted(id, any_base).contains(&normalise(&part.upstream_id))
}

/// Whether a receipt's id is that of a part placed by an attempt given up
/// after it (a later part refused): the message's fate is its accepted
/// attempt's. Only case and leading zeros are set aside here.
pub fn abandoned(record: &MessageRecord, upstream: &str, upstream_id: &str) -> bool {
    let id = normalise(upstream_id);
    record.attempts.iter().any(|a| {
        a.failure.is_some()
            && a.upstream == upstream
            && a.upstream_ids.iter().any(|u| normalise(u) == id)
    })
}

/// The attempt whose parts the message's receipts are about: the latest
/// one an upstream accepted whole.
pub fn accepted_attempt(record: &MessageRecord) -> Option<&Attempt> {
    record.attempts.iter().rev().find(|a| took(a))
}

/// The upstream the message went to last (its latest attempt that placed
/// a part, accepted whole or not).
pub fn current_upstream(record: &MessageRecord) -> Option<&str> {
    record
        .attempts
        .iter()
        .rev()
        .find(|a| !a.upstream_ids.is_empty())
        .map(|a| a.upstream.as_str())
}

/// Whether an upstream took an attempt: it accepted every part.
fn took(attempt: &Attempt) -> bool {
    !attempt.upstream_ids.is_empty() && attempt.failure.is_none()
}

/// The upstreams that took the message (accepted a whole attempt), in
/// order, each once: a resubmission leaves them out. An attempt given up
/// midway (some parts accepted, then a refusal) does not count: the
/// message goes again whole, and that upstream may take it then.
pub fn used_upstreams(record: &MessageRecord) -> Vec<String> {
    let mut used: Vec<String> = Vec::new();
    for attempt in record.attempts.iter().filter(|a| took(a)) {
        if !used.contains(&attempt.upstream) {
            used.push(attempt.upstream.clone());
        }
    }
    used
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{attempt, given_up, record};
    use super::*;

    /// The id forms of the store's normal form and VENDORS.md ("a
    /// receipt's id may differ in case or base from submit_sm_resp"):
    /// case and leading zeros always, the base only where the profile
    /// says so.
    #[test]
    fn a_receipt_id_names_its_part_across_forms() {
        let cases: &[(&str, &str, bool, bool)] = &[
            // (id in submit_sm_resp, id in the receipt, any_base, names it)
            ("4711", "4711", false, true),
            ("4711", "004711", false, true),
            ("00ABCDEF", "abcdef", false, true),
            ("abcdef", " ABCDEF ", false, true),
            ("0", "000", false, true),
            ("4711", "4712", false, false),
            // The same number in the other base: only with any_base.
            ("2748", "abc", false, false),
            ("2748", "ABC", true, true),
            ("abc", "2748", true, true),
            ("1f", "31", true, true),
            ("1f", "32", true, false),
            // Telesign: 32 hex digits, any case.
            (
                "0123456789ABCDEF0123456789ABCDEF",
                "0123456789abcdef0123456789abcdef",
                false,
                true,
            ),
            // An opaque id is only itself.
            ("msg-42", "MSG-42", true, true),
            ("msg-42", "msg-43", true, false),
        ];
        for &(given, said, any_base, expected) in cases {
            let part = PartState {
                upstream: "up".to_owned(),
                upstream_id: given.to_owned(),
                awaited: true,
                outcome: None,
                is_final: false,
                updated_ms: 0,
            };
            assert_eq!(
                names(&part, "up", said, any_base),
                expected,
                "{given} / {said} / any_base {any_base}"
            );
            assert!(
                !names(&part, "other", said, any_base),
                "another upstream's id never names the part"
            );
            let r = record(&[given]);
            assert_eq!(
                knows(&r, "up", said, any_base),
                expected,
                "{given} / {said}"
            );
            assert!(!knows(&r, "other", said, any_base));
        }
    }

    #[test]
    fn a_message_not_sent_yet_knows_no_id() {
        let mut r = record(&[]);
        r.attempts.clear();
        assert!(!knows(&r, "up", "4711", true));
        assert_eq!(accepted_attempt(&r), None);
        assert_eq!(current_upstream(&r), None);
        assert!(used_upstreams(&r).is_empty());
    }

    #[test]
    fn an_attempt_given_up_midway_is_abandoned_not_used() {
        let mut r = record(&["A1", "A2"]);
        r.attempts.insert(0, given_up("up", &["X1"]));
        r.attempts.insert(0, given_up("far", &["F1"]));
        assert!(abandoned(&r, "up", "x1"));
        assert!(abandoned(&r, "up", "00X1"));
        assert!(!abandoned(&r, "up", "A1"), "the accepted attempt's part");
        assert!(!abandoned(&r, "other", "X1"), "another upstream's id");
        assert_eq!(used_upstreams(&r), ["up"]);
        assert_eq!(current_upstream(&r), Some("up"));
        assert_eq!(
            accepted_attempt(&r).map(|a| a.upstream_ids.clone()),
            Some(vec!["A1".to_owned(), "A2".to_owned()])
        );
    }

    #[test]
    fn the_upstreams_that_took_a_message_are_listed_once_in_order() {
        let mut r = record(&["A1"]);
        r.attempts.push(attempt("other", &["B1"]));
        r.attempts.push(given_up("third", &["C1"]));
        r.attempts.push(attempt("up", &["A9"]));
        assert_eq!(used_upstreams(&r), ["up", "other"]);
        assert_eq!(current_upstream(&r), Some("up"));
        r.attempts.push(given_up("third", &["C2"]));
        assert_eq!(current_upstream(&r), Some("third"));
        assert_eq!(
            accepted_attempt(&r).map(|a| a.upstream.as_str()),
            Some("up")
        );
    }
}
