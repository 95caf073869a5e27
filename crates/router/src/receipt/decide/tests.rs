use tern_codec::{Body, Pdu, Tlv};
use tern_storage::{Attempt, RelayedReceipt};

use super::super::fixtures::{attempt, given_up, receipt, record, record_asking};
use super::*;
use crate::canonical::{FinalState, Reason};

const HOW: Receiving<'static> = Receiving {
    upstream: "up",
    any_base: false,
    per_part: false,
    vendor_tlvs: false,
    now: 10,
};

/// What the store does with an update (`record_receipt`).
fn store(record: &mut MessageRecord, update: ReceiptUpdate) {
    record.received.extend(update.received);
    if let Some(parts) = update.parts {
        record.parts = parts;
    }
    if let Some(outcome) = update.outcome {
        if record.state != State::Final {
            record.state = State::Final;
            record.outcome = Some(outcome);
        }
    }
    if let Some((_, entry)) = update.relay {
        record.relayed.push(RelayedReceipt {
            outbox_seq: record.relayed.len() as u64,
            ..entry
        });
    }
    if update.requeue_at_ms.is_some() && record.state != State::Final {
        record.state = State::Queued;
    }
}

/// Decides on `receipt` with no resubmission, applies the update as the
/// store would, and returns it.
fn step(
    record: &mut MessageRecord,
    receipt: &UpstreamReceipt,
    how: Receiving<'_>,
    first_only: bool,
) -> ReceiptUpdate {
    let Decision::Record { update, .. } = on_receipt(record, receipt, &how, |_| first_only, never)
    else {
        panic!("not decided: {record:?}")
    };
    store(record, update.clone());
    update
}

fn never(_: &SubmitSm, _: &UpstreamReceipt, _: &[String]) -> bool {
    false
}

/// The client receipt's text and TLVs.
fn relayed(update: &ReceiptUpdate) -> (String, Vec<Tlv>) {
    let (item, _) = update.relay.as_ref().expect("a client receipt");
    match Pdu::decode(item.pdu.clone()).map(|p| p.body) {
        Ok(Body::DeliverSm(sm)) => (
            String::from_utf8_lossy(sm.short_message.as_bytes()).into_owned(),
            sm.tlvs.iter().cloned().collect(),
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_split_message_ends_with_its_worst_part_once_every_part_is_final() {
    let mut r = record(&["A1", "A2"]);
    let first = step(
        &mut r,
        &receipt("a1", FinalState::Delivrd, Reason::None),
        HOW,
        false,
    );
    assert_eq!(
        (first.outcome, first.relay),
        (None, None),
        "part 2 is still open"
    );
    assert_eq!(first.received.and_then(|x| x.part), Some(0));
    let second = step(
        &mut r,
        &receipt("A2", FinalState::Undeliv, Reason::AbsentSubscriber),
        HOW,
        false,
    );
    let outcome = second.outcome.clone().expect("final");
    assert_eq!((outcome.stat.as_str(), outcome.err), ("UNDELIV", 27));
    assert_eq!(
        outcome.vendor_code.as_deref(),
        Some("up stat:UNDELIV err:000")
    );
    let (text, _) = relayed(&second);
    assert!(
        text.contains("stat:UNDELIV") && text.contains("err:027"),
        "{text}"
    );
    let (_, entry) = second.relay.expect("one receipt for the message");
    assert_eq!(
        (entry.stat.as_str(), entry.err, entry.part),
        ("UNDELIV", 27, None)
    );
    assert_eq!(r.received.len(), 2);
    // A repeat after the end: history only.
    let repeat = step(
        &mut r,
        &receipt("A2", FinalState::Undeliv, Reason::AbsentSubscriber),
        HOW,
        false,
    );
    assert!(repeat.received.is_some() && repeat.relay.is_none() && repeat.outcome.is_none());
    assert_eq!(r.received.len(), 3);
}

/// Over the parts of one message, receipts in the order given: the
/// message's end and the one receipt its client gets (it asked for final
/// receipts, SMPP 3.4 §5.2.17).
#[test]
fn the_end_of_a_split_message_over_its_receipts() {
    use FinalState::*;
    type Said = &'static [(&'static str, FinalState, Reason)];
    let cases: &[(&str, Said, Option<&str>)] = &[
        (
            "all delivered",
            &[
                ("P1", Delivrd, Reason::None),
                ("P2", Delivrd, Reason::None),
                ("P3", Delivrd, Reason::None),
            ],
            Some("DELIVRD"),
        ),
        (
            "one failed",
            &[
                ("P1", Delivrd, Reason::None),
                ("P2", Undeliv, Reason::UnknownSubscriber),
                ("P3", Delivrd, Reason::None),
            ],
            Some("UNDELIV"),
        ),
        (
            "one expired",
            &[
                ("P3", Expired, Reason::Expired),
                ("P1", Delivrd, Reason::None),
                ("P2", Delivrd, Reason::None),
            ],
            Some("EXPIRED"),
        ),
        (
            "parts still pending",
            &[("P1", Delivrd, Reason::None), ("P2", Undeliv, Reason::None)],
            None,
        ),
        (
            "an intermediate state is no end",
            &[
                ("P1", Delivrd, Reason::None),
                ("P2", Delivrd, Reason::None),
                ("P3", Enroute, Reason::None),
            ],
            None,
        ),
        (
            "a late intermediate state does not reopen a part",
            &[
                ("P1", Delivrd, Reason::None),
                ("P2", Delivrd, Reason::None),
                ("P2", Enroute, Reason::None),
                ("P3", Delivrd, Reason::None),
            ],
            Some("DELIVRD"),
        ),
        (
            "ids in another case and with leading zeros",
            &[
                ("p1", Delivrd, Reason::None),
                ("0P2", Delivrd, Reason::None),
                ("00p3", Delivrd, Reason::None),
            ],
            Some("DELIVRD"),
        ),
    ];
    for (name, said, expected) in cases {
        let mut r = record(&["P1", "P2", "P3"]);
        let mut ends = Vec::new();
        for &(id, state, reason) in *said {
            let update = step(&mut r, &receipt(id, state, reason), HOW, false);
            if let Some(outcome) = &update.outcome {
                let (_, entry) = update.relay.as_ref().expect("the client's receipt");
                assert_eq!(entry.stat, outcome.stat, "{name}");
                ends.push(outcome.stat.clone());
            } else {
                assert!(update.relay.is_none(), "{name}: no receipt before the end");
            }
        }
        assert_eq!(
            ends,
            expected.map(str::to_owned).into_iter().collect::<Vec<_>>(),
            "{name}"
        );
        assert_eq!(r.received.len(), said.len(), "{name}: all in the history");
    }
}

#[test]
fn a_vendor_reporting_one_part_ends_the_message_on_that_part() {
    let mut r = record(&["T1", "T2"]);
    let update = step(
        &mut r,
        &receipt("T1", FinalState::Delivrd, Reason::None),
        HOW,
        true,
    );
    assert!(!r.parts[1].awaited);
    assert_eq!(update.outcome.map(|o| o.stat), Some("DELIVRD".to_owned()));
    assert!(update.relay.is_some());
}

#[test]
fn a_final_part_keeps_its_end_against_a_late_intermediate() {
    let mut r = record_asking(&["B1", "B2"], 0x11);
    step(
        &mut r,
        &receipt("B1", FinalState::Undeliv, Reason::UnknownSubscriber),
        HOW,
        false,
    );
    let late = step(
        &mut r,
        &receipt("B1", FinalState::Enroute, Reason::None),
        HOW,
        false,
    );
    assert!(late.relay.is_none() && late.parts.is_none());
    assert!(r.parts[0].is_final);
    assert_eq!(r.parts[0].outcome.as_ref().map(|o| o.err), Some(1));
}

#[test]
fn per_part_receipts_say_which_part_and_the_message_ends_with_the_worst() {
    let how = Receiving {
        per_part: true,
        ..HOW
    };
    let mut r = record(&["P1", "P2"]);
    let one = step(
        &mut r,
        &receipt("P1", FinalState::Delivrd, Reason::None),
        how,
        false,
    );
    let (item, entry) = one.relay.expect("part 1's receipt");
    assert_eq!(entry.part, Some(0));
    assert!(one.outcome.is_none());
    let pdu = Pdu::decode(item.pdu).expect("decodes");
    let Body::DeliverSm(sm) = pdu.body else {
        panic!("{pdu:?}")
    };
    let sar = sm.tlvs.sar().expect("SAR");
    assert_eq!((sar.reference, sar.total, sar.sequence), (0x42, 2, 1));
    let two = step(
        &mut r,
        &receipt("P2", FinalState::Expired, Reason::Expired),
        how,
        false,
    );
    assert_eq!(two.relay.map(|(_, e)| e.part), Some(Some(1)));
    assert_eq!(two.outcome.map(|o| o.stat), Some("EXPIRED".to_owned()));
}

#[test]
fn an_intermediate_state_goes_once_and_only_to_clients_that_asked() {
    let mut asked = record_asking(&["E1"], 0x11);
    let first = step(
        &mut asked,
        &receipt("E1", FinalState::Enroute, Reason::None),
        HOW,
        false,
    );
    assert_eq!(first.relay.map(|(_, e)| e.stat), Some("ENROUTE".to_owned()));
    let again = step(
        &mut asked,
        &receipt("E1", FinalState::Enroute, Reason::None),
        HOW,
        false,
    );
    assert!(again.relay.is_none(), "the same state is not told twice");
    let mut not_asked = record(&["E2"]);
    let none = step(
        &mut not_asked,
        &receipt("E2", FinalState::Acceptd, Reason::None),
        HOW,
        false,
    );
    assert!(none.relay.is_none() && none.outcome.is_none());
    let done = step(
        &mut not_asked,
        &receipt("E2", FinalState::Delivrd, Reason::None),
        HOW,
        false,
    );
    assert_eq!(done.relay.map(|(_, e)| e.stat), Some("DELIVRD".to_owned()));
}

#[test]
fn receipts_about_an_attempt_left_behind_are_history_only() {
    // Resubmitted after "up"'s failed receipt: queued again.
    let mut r = record(&["A1", "A2"]);
    r.state = State::Queued;
    let late = step(
        &mut r,
        &receipt("A2", FinalState::Undeliv, Reason::AbsentSubscriber),
        HOW,
        false,
    );
    assert!(late.received.is_some());
    assert!(late.outcome.is_none() && late.relay.is_none() && late.parts.is_none());
    // Sent again through "other": a receipt from "up" naming none of
    // the new attempt's parts does not speak for the message.
    r.state = State::Submitted;
    r.attempts.push(Attempt {
        upstream: "other".to_owned(),
        at_ms: 2,
        status: Some(0),
        upstream_ids: vec!["B1".to_owned()],
        failure: None,
    });
    let update = step(
        &mut r,
        &receipt("A9", FinalState::Undeliv, Reason::AbsentSubscriber),
        HOW,
        false,
    );
    assert!(update.outcome.is_none() && update.relay.is_none());
}

#[test]
fn a_part_of_an_attempt_given_up_decides_nothing() {
    let mut r = record(&["A1"]);
    r.attempts.insert(0, given_up("up", &["X1"]));
    let update = step(
        &mut r,
        &receipt("X1", FinalState::Undeliv, Reason::UnknownSubscriber),
        HOW,
        false,
    );
    assert!(update.received.is_some_and(|h| h.part.is_none()));
    assert!(update.outcome.is_none() && update.relay.is_none() && update.parts.is_none());
    assert_eq!(r.state, State::Submitted);
}

/// A receipt naming the message by an id the record does not list among
/// its parts (the vendor's own id for what it split itself) speaks for the
/// whole message, when it comes from the upstream that has it.
#[test]
fn an_id_of_the_current_upstream_outside_the_parts_speaks_for_the_message() {
    let mut r = record(&["A1", "A2"]);
    let update = step(
        &mut r,
        &receipt("Z9", FinalState::Delivrd, Reason::None),
        HOW,
        false,
    );
    assert_eq!(update.outcome.map(|o| o.stat), Some("DELIVRD".to_owned()));
    assert!(update.relay.is_some() && update.parts.is_none());
    let from_elsewhere = Receiving {
        upstream: "other",
        ..HOW
    };
    let mut r = record(&["A1"]);
    let update = step(
        &mut r,
        &receipt("Z9", FinalState::Delivrd, Reason::None),
        from_elsewhere,
        false,
    );
    assert!(update.outcome.is_none() && update.relay.is_none());
}

/// A receipt whose id the record of a message still being sent does not
/// have yet waits: the dispatcher records the submit_sm_resp first. Across
/// bases only for a vendor whose profile says so.
#[test]
fn a_receipt_before_its_attempt_is_recorded_is_not_yet_decided() {
    let mut r = record(&[]);
    r.state = State::InFlight;
    let early = receipt("4711", FinalState::Delivrd, Reason::None);
    assert_eq!(
        on_receipt(&r, &early, &HOW, |_| false, never),
        Decision::NotYet
    );
    r.attempts = vec![attempt("up", &["1267"])];
    // 0x1267 is 4711: the same id only where the base may differ.
    assert_eq!(
        on_receipt(&r, &early, &HOW, |_| false, never),
        Decision::NotYet
    );
    let any_base = Receiving {
        any_base: true,
        ..HOW
    };
    assert!(matches!(
        on_receipt(&r, &early, &any_base, |_| false, never),
        Decision::Record { .. }
    ));
    // A submitted message decides, known id or not.
    r.state = State::Submitted;
    assert!(matches!(
        on_receipt(&r, &early, &HOW, |_| false, never),
        Decision::Record { .. }
    ));
}

/// A failed receipt the route resubmits on requeues the message instead
/// of ending it; the client hears nothing yet. Asked with the outcome of
/// the whole message and the upstreams that took it.
#[test]
fn a_failed_receipt_the_route_resubmits_on_requeues_the_message() {
    let r = record(&["A1", "A2"]);
    let mut r = {
        let mut r = r;
        r.attempts.insert(0, attempt("first", &["F1"]));
        r
    };
    let part1 = receipt("A1", FinalState::Undeliv, Reason::AbsentSubscriber);
    let asked = std::cell::RefCell::new(Vec::new());
    let ask = |submit: &SubmitSm, said: &UpstreamReceipt, used: &[String]| {
        asked.borrow_mut().push((
            submit.destination.addr.as_bytes().to_vec(),
            said.canonical.reason,
            said.scope,
            used.to_vec(),
        ));
        true
    };
    let Decision::Record {
        update,
        resubmitted,
    } = on_receipt(&r, &part1, &HOW, |_| false, ask)
    else {
        panic!("decided")
    };
    assert!(
        !resubmitted && update.requeue_at_ms.is_none(),
        "part 2 is open"
    );
    assert!(asked.borrow().is_empty(), "no end, nothing to ask");
    store(&mut r, update);
    // Part 2 delivered: the message fails with part 1's reason.
    let part2 = UpstreamReceipt {
        scope: Scope::Upstream,
        ..receipt("A2", FinalState::Delivrd, Reason::None)
    };
    let Decision::Record {
        update,
        resubmitted,
    } = on_receipt(&r, &part2, &HOW, |_| false, ask)
    else {
        panic!("decided")
    };
    assert!(resubmitted);
    assert_eq!(update.requeue_at_ms, Some(HOW.now));
    assert!(update.outcome.is_none() && update.relay.is_none());
    assert!(update.received.is_some() && update.parts.is_some());
    assert_eq!(
        *asked.borrow(),
        [(
            b"3360".to_vec(),
            Reason::AbsentSubscriber,
            Scope::Message,
            vec!["first".to_owned(), "up".to_owned()]
        )]
    );
    // A route that does not resubmit: the message ends, the client hears.
    let Decision::Record {
        update,
        resubmitted,
    } = on_receipt(&r, &part2, &HOW, |_| false, never)
    else {
        panic!("decided")
    };
    assert!(!resubmitted && update.requeue_at_ms.is_none());
    assert_eq!(update.outcome.map(|o| o.err), Some(27));
    assert!(update.relay.is_some());
}

#[test]
fn a_delivered_message_is_never_resubmitted() {
    let r = record(&["A1"]);
    let delivered = receipt("A1", FinalState::Delivrd, Reason::None);
    let Decision::Record {
        update,
        resubmitted,
    } = on_receipt(
        &r,
        &delivered,
        &HOW,
        |_| false,
        |_, _, _| panic!("no route asked for a delivered message"),
    )
    else {
        panic!("decided")
    };
    assert!(!resubmitted && update.outcome.is_some());
}

/// Telesign's receipt TLVs (0x0410 MCC, 0x0411 MNC, 0x0412 price, seed
/// 003) reach a client that asked for them, last; a message ending on a
/// part whose receipt carries none gets those of the latest that did.
#[test]
fn vendor_tlvs_reach_the_clients_that_asked_for_them() {
    let how = Receiving {
        vendor_tlvs: true,
        ..HOW
    };
    let tlvs = vec![(0x0410, b"208".to_vec()), (0x0412, b"0.05".to_vec())];
    let mut r = record(&["T1", "T2"]);
    let first = UpstreamReceipt {
        vendor_tlvs: tlvs.clone(),
        ..receipt("T1", FinalState::Delivrd, Reason::None)
    };
    step(&mut r, &first, how, false);
    let last = step(
        &mut r,
        &receipt("T2", FinalState::Delivrd, Reason::None),
        how,
        false,
    );
    let (_, carried) = relayed(&last);
    let tail: Vec<(u16, Vec<u8>)> = carried
        .iter()
        .rev()
        .take(2)
        .rev()
        .filter_map(|t| match t {
            Tlv::Other { tag, value } => Some((*tag, value.to_vec())),
            _ => None,
        })
        .collect();
    assert_eq!(tail, tlvs);
    // A client that did not ask gets Tern's TLVs only.
    let mut r = record(&["T1"]);
    let plain = step(&mut r, &first, HOW, false);
    let (_, carried) = relayed(&plain);
    assert!(carried.iter().all(|t| !matches!(t,
        Tlv::Other { tag, .. } if *tag == 0x0410 || *tag == 0x0412)));
}
