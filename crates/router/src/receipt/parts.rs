//! The parts of a message Tern split upstream, and the outcome over them.
//!
//! A message sent in several parts ends when every part it waits for is
//! final: all of them, or only the first for a vendor that splits a
//! payload itself and reports that part alone (Telesign: "the DLR is
//! returned after all parts of the message are delivered, but also refers
//! to just the reference ID of the first part"). It ends with the worst of
//! them: a failed part fails the message.

use tern_storage::{MessageRecord, PartState};

use super::matching::accepted_attempt;
use super::stored::canonical_of;
use crate::canonical::{Canonical, FinalState};

/// The parts of the message's accepted attempt: as the record knows them,
/// or fresh (nothing heard yet) when the record has none or they belong
/// to an earlier attempt. `first_only(upstream)` says the upstream's
/// vendor reports only the first part of what it split itself.
pub fn parts_of(record: &MessageRecord, first_only: impl Fn(&str) -> bool) -> Vec<PartState> {
    let Some(attempt) = accepted_attempt(record) else {
        return Vec::new();
    };
    let known = record.parts.len() == attempt.upstream_ids.len()
        && record
            .parts
            .iter()
            .zip(&attempt.upstream_ids)
            .all(|(p, id)| p.upstream == attempt.upstream && p.upstream_id == *id);
    if known {
        return record.parts.clone();
    }
    let first = first_only(&attempt.upstream);
    attempt
        .upstream_ids
        .iter()
        .enumerate()
        .map(|(i, id)| PartState {
            upstream: attempt.upstream.clone(),
            upstream_id: id.clone(),
            awaited: i == 0 || !first,
            outcome: None,
            is_final: false,
            updated_ms: 0,
        })
        .collect()
}

/// The outcome of a message Tern split into parts, once every part is
/// final: the first failure if any part failed, else delivered. `None` while
/// a part is still open.
pub fn combined(parts: &[Option<Canonical>]) -> Option<Canonical> {
    let finals: Vec<Canonical> = parts
        .iter()
        .map(|part| part.filter(|c| c.state.is_final()))
        .collect::<Option<_>>()?;
    finals
        .iter()
        .find(|c| c.state != FinalState::Delivrd)
        .or(finals.first())
        .copied()
}

/// The outcome of the whole message from its awaited parts, once every one
/// is final (the worst of them, see [`combined`]), with the vendor code of
/// the part that outcome comes from, so the client's receipt carries the
/// vendor's words for the failure it reports.
pub fn whole_outcome(parts: &[PartState]) -> (Option<Canonical>, Option<String>) {
    let awaited: Vec<&PartState> = parts.iter().filter(|p| p.awaited).collect();
    let whole = combined(
        &awaited
            .iter()
            .map(|p| {
                p.outcome
                    .as_ref()
                    .and_then(canonical_of)
                    .filter(|_| p.is_final)
            })
            .collect::<Vec<_>>(),
    );
    let whole_vendor = whole.and_then(|w| {
        awaited
            .iter()
            .filter_map(|p| p.outcome.as_ref())
            .find(|o| o.stat == w.state.stat() && o.err == w.reason.err())
            .and_then(|o| o.vendor_code.clone())
    });
    (whole, whole_vendor)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{attempt, given_up, record};
    use super::super::stored::stored_outcome;
    use super::*;
    use crate::canonical::{Class, Reason};

    const DELIVRD: (FinalState, Reason) = (FinalState::Delivrd, Reason::None);
    const UNDELIV: (FinalState, Reason) = (FinalState::Undeliv, Reason::AbsentSubscriber);
    const EXPIRED: (FinalState, Reason) = (FinalState::Expired, Reason::Expired);
    const REJECTD: (FinalState, Reason) = (FinalState::Rejectd, Reason::Blacklisted);
    const ENROUTE: (FinalState, Reason) = (FinalState::Enroute, Reason::None);

    /// A part: its latest outcome, and whether the message waits for it.
    fn part(heard: Option<(FinalState, Reason)>, awaited: bool) -> PartState {
        let outcome = heard.map(|(state, reason)| {
            let canonical = Canonical {
                state,
                reason,
                class: Class::Permanent,
            };
            stored_outcome(&canonical, Some(format!("up stat:{}", state.stat())))
        });
        PartState {
            upstream: "up".to_owned(),
            upstream_id: "1".to_owned(),
            awaited,
            is_final: heard.is_some_and(|(state, _)| state.is_final()),
            outcome,
            updated_ms: 1,
        }
    }

    /// SMPP 3.4 §5.2.17 (a receipt tells the message's final state) and
    /// §4.7.15/Appendix B (ENROUTE and ACCEPTD are not final): a message
    /// ends once every part it waits for is final, with a failure if any
    /// part failed, the first in the order sent.
    #[test]
    fn the_outcome_over_the_parts() {
        type Heard = Option<(FinalState, Reason)>;
        type Parts = &'static [(Heard, bool)];
        let cases: &[(&str, Parts, Heard)] = &[
            (
                "all delivered",
                &[(Some(DELIVRD), true), (Some(DELIVRD), true)],
                Some(DELIVRD),
            ),
            (
                "one failed",
                &[(Some(DELIVRD), true), (Some(UNDELIV), true)],
                Some(UNDELIV),
            ),
            (
                "one expired",
                &[(Some(EXPIRED), true), (Some(DELIVRD), true)],
                Some(EXPIRED),
            ),
            (
                "two failed: the first",
                &[
                    (Some(DELIVRD), true),
                    (Some(REJECTD), true),
                    (Some(UNDELIV), true),
                ],
                Some(REJECTD),
            ),
            (
                "one still pending",
                &[(Some(DELIVRD), true), (None, true)],
                None,
            ),
            (
                "a failure waits for the pending part",
                &[(Some(UNDELIV), true), (None, true)],
                None,
            ),
            (
                "an intermediate state is not an end",
                &[(Some(DELIVRD), true), (Some(ENROUTE), true)],
                None,
            ),
            (
                "a part not awaited does not hold the message",
                &[(Some(DELIVRD), true), (None, false), (None, false)],
                Some(DELIVRD),
            ),
            (
                "nor does it fail it",
                &[(Some(DELIVRD), true), (Some(UNDELIV), false)],
                Some(DELIVRD),
            ),
            ("nothing heard", &[(None, true)], None),
        ];
        for (name, parts, expected) in cases {
            let parts: Vec<PartState> = parts.iter().map(|&(h, a)| part(h, a)).collect();
            let (whole, vendor) = whole_outcome(&parts);
            assert_eq!(
                whole.map(|c| (c.state, c.reason)),
                *expected,
                "{name}: {parts:?}"
            );
            assert_eq!(
                vendor,
                expected.map(|(state, _)| format!("up stat:{}", state.stat())),
                "{name}: the vendor's words of the part the outcome comes from"
            );
        }
    }

    #[test]
    fn no_parts_is_no_outcome_for_a_whole_message_but_nothing_open() {
        // `combined` over nothing: nothing is open, nothing ended either.
        assert_eq!(combined(&[]), None);
        assert_eq!(whole_outcome(&[]), (None, None));
    }

    #[test]
    fn the_parts_are_the_accepted_attempts() {
        let mut r = record(&["A1", "A2", "A3"]);
        let fresh = parts_of(&r, |_| false);
        assert_eq!(fresh.len(), 3);
        assert!(fresh.iter().all(|p| p.awaited && p.outcome.is_none()));
        assert_eq!(fresh[2].upstream_id, "A3");
        // A vendor that reports the first part only.
        let first = parts_of(&r, |u| u == "up");
        assert_eq!(
            first.iter().map(|p| p.awaited).collect::<Vec<_>>(),
            [true, false, false]
        );
        // Parts the record knows are kept as they are.
        let mut known = fresh.clone();
        known[1].is_final = true;
        r.parts = known.clone();
        assert_eq!(parts_of(&r, |_| false), known);
        // An attempt given up after does not change them.
        r.attempts.push(given_up("other", &["X1"]));
        assert_eq!(parts_of(&r, |_| false), known);
        // A new accepted attempt (a resubmission) starts fresh.
        r.attempts.push(attempt("other", &["B1"]));
        let again = parts_of(&r, |_| false);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].upstream.as_str(), again[0].is_final),
            ("other", false)
        );
        // Nothing accepted: no parts.
        r.attempts.clear();
        assert!(parts_of(&r, |_| false).is_empty());
    }
}
