//! submit_multi from clients (SMPP 3.4 §4.5): one message to many
//! destinations, answered with one Tern id.
//!
//! Each destination Tern accepts becomes a message of its own, exactly
//! what a submit_sm to that destination would be (the stored PDU is that
//! submit_sm), so it is routed, sent, retried, failed over and receipted
//! alone by the same code. They are stored in one write before the answer,
//! tied to the id the client was given (see [`tern_storage::MultiLink`]):
//! receipts, query_sm, cancel_sm and `tern trace` find them through it.
//!
//! Destinations refused at intake are listed in submit_multi_resp's
//! `unsuccess_sme` with the status a submit_sm to them would have had (or
//! the SMPP status naming the fault); the others go on. When none is
//! accepted the response's command_status says why: the status they share
//! when all were refused the same way, else ESME_RSUBMITFAIL.

use std::collections::BTreeMap;

use tern_codec::pdu::{Destination, SubmitMulti, SubmitMultiResp, SubmitSm, Unsuccess};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, MessageState, Npi, Pdu, ReceiptRequest, TimeString,
    Ton,
};
use tern_router::adapt::check_destination;
use tern_storage::{now_ms, MessageRecord, NewMessage, TernId};
use tracing::debug;

use super::intake::{record_state, transaction_status};
use super::node::Node;

/// Destinations one submit_multi may carry: SMPP 3.4 §4.5.1 allows 254
/// (`number_of_dests` is one octet, and 255 is beyond the specification).
pub const MAX_DESTINATIONS: usize = 254;

/// One destination as intake sees it: the address it stands for, and the
/// submit_sm it becomes if accepted.
struct Candidate {
    address: Address<21>,
    submit: SubmitSm,
}

/// Stores a client's submit_multi and answers it (see the module doc).
pub async fn submit_multi(
    node: &Node,
    account: &str,
    sequence: u32,
    multi: &SubmitMulti,
    responder: tern_session::Responder,
) {
    let started = std::time::Instant::now();
    if multi.destinations.is_empty() || multi.destinations.len() > MAX_DESTINATIONS {
        let status = CommandStatus::InvalidNumberOfDestinations;
        node.metrics()
            .submit_multi(account, status.name().unwrap_or("vendor"), &[]);
        let _ = responder.reject(status).await;
        return;
    }
    let accounts = node.accounts().current();
    let lists = accounts
        .iter()
        .find(|a| a.system_id == account)
        .map(|a| &a.distribution_lists);
    let (candidates, mut refused) = expand(lists, multi);
    drop(accounts);
    let accepted = screen(node, account, candidates, &mut refused);
    if accepted.is_empty() {
        answer_none_accepted(node, account, responder, refused).await;
        return;
    }
    let now = now_ms();
    // Read once: the records keep the id form, and the answer must agree.
    let terms = node.submit_terms(account);
    let id_format = terms.id_format;
    let messages = new_messages(account, sequence, multi, &accepted, now, id_format);
    let ids = match node.store().accept_multi(messages, now).await {
        Ok(ids) => ids,
        Err(err) => {
            // A full store is temporary (ESME_RMSGQFUL: try again later).
            let status = super::intake::refusal_status(&err);
            tern_session::warn_limited!("store refused a submit_multi", %err, %status);
            node.metrics()
                .submit_multi(account, status.name().unwrap_or("vendor"), &[]);
            let _ = responder.reject(status).await;
            return;
        }
    };
    let Some(&submission) = ids.first() else {
        return;
    };
    let mut sent = ids.len() as u64;
    match terms.transaction {
        None => node.dispatch().wake(),
        Some(timeout) => {
            // Transaction mode: each destination's upstream answer, at
            // once; one refused upstream is listed like one refused here.
            let verdicts = futures::future::join_all(
                ids.iter().map(|id| transaction_status(node, *id, timeout)),
            )
            .await;
            for (candidate, status) in accepted.iter().zip(verdicts) {
                if !status.is_ok() {
                    sent -= 1;
                    refused.push(Unsuccess {
                        address: candidate.address.clone(),
                        error_status_code: status,
                    });
                }
            }
            if sent == 0 {
                answer_none_accepted(node, account, responder, refused).await;
                return;
            }
        }
    }
    let counts = destination_counts(sent, &refused);
    let counts: Vec<(&str, u64)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    node.metrics().submit_multi(account, "ESME_ROK", &counts);
    node.metrics().observe_submit(started.elapsed());
    debug!(id = %submission, client = account, destinations = ids.len(), refused = refused.len(), "submit_multi accepted");
    let resp = SubmitMultiResp {
        message_id: Some(
            COctetString::try_from(id_format.render(submission).as_str()).unwrap_or_default(),
        ),
        unsuccess: refused,
        ..SubmitMultiResp::default()
    };
    let _ = responder
        .respond(CommandStatus::Ok, Body::SubmitMultiResp(resp))
        .await;
}

/// The submit_multi's destinations as single addresses: each SME address,
/// and each member of a distribution list the account has. A list name the
/// account does not have is refused under that name (returned second).
fn expand(
    lists: Option<&BTreeMap<String, Vec<Address<21>>>>,
    multi: &SubmitMulti,
) -> (Vec<Candidate>, Vec<Unsuccess>) {
    let mut refused: Vec<Unsuccess> = Vec::new();
    let mut candidates: Vec<Candidate> = Vec::new();
    for destination in &multi.destinations {
        match destination {
            Destination::Sme(address) => candidates.push(Candidate {
                address: address.clone(),
                submit: submit_to(multi, address.clone()),
            }),
            Destination::DistributionList(name) => {
                let members = name
                    .to_str()
                    .and_then(|n| lists?.get(n))
                    .filter(|_| !name.is_empty());
                match members {
                    Some(members) => {
                        for member in members {
                            candidates.push(Candidate {
                                address: member.clone(),
                                submit: submit_to(multi, member.clone()),
                            });
                        }
                    }
                    // Not a list this account has: the SMPP status for a
                    // destination flag Tern does not serve, under the name.
                    None => refused.push(Unsuccess {
                        address: Address::new(Ton::UNKNOWN, Npi::UNKNOWN, name.clone()),
                        error_status_code: CommandStatus::InvalidDestinationFlag,
                    }),
                }
            }
        }
    }
    (candidates, refused)
}

/// The candidates Tern can take: a destination that is no number, or that
/// no route of the account reaches, is added to `refused` with its status
/// (the checks a submit_sm meets), so the client learns which and why.
fn screen(
    node: &Node,
    account: &str,
    candidates: Vec<Candidate>,
    refused: &mut Vec<Unsuccess>,
) -> Vec<Candidate> {
    let routing = node.routing();
    let no_route = routing.router.config().no_route_status;
    let mut accepted: Vec<Candidate> = Vec::new();
    for candidate in candidates {
        let status = if check_destination(&candidate.address).is_err() {
            Some(CommandStatus::InvalidDestinationAddress)
        } else if !routing.router.has_route(account, &candidate.submit) {
            Some(no_route)
        } else {
            None
        };
        match status {
            Some(status) => refused.push(Unsuccess {
                address: candidate.address,
                error_status_code: status,
            }),
            None => accepted.push(candidate),
        }
    }
    drop(routing);
    accepted
}

/// One message to store per accepted destination, each the submit_sm it
/// stands for, with the submit_multi's receipt request, schedule and
/// validity (read against `now`).
fn new_messages(
    account: &str,
    sequence: u32,
    multi: &SubmitMulti,
    accepted: &[Candidate],
    now: u64,
    id_format: tern_storage::IdFormat,
) -> Vec<NewMessage> {
    let at = |t: &TimeString| {
        t.parse()
            .and_then(Result::ok)
            .and_then(|t| t.to_unix_millis(now as i64).ok())
            .map(|ms| ms.max(0) as u64)
    };
    accepted
        .iter()
        .map(|c| NewMessage {
            client: account.to_owned(),
            pdu: Pdu::new(sequence, Body::SubmitSm(c.submit.clone())).to_bytes(),
            receipt_requested: multi.registered_delivery.receipt() != ReceiptRequest::None,
            not_before_ms: at(&multi.schedule_delivery_time).map_or(now, |ms| ms.max(now)),
            expires_ms: at(&multi.validity_period),
            dedup: None,
            id_format,
        })
        .collect()
}

/// No destination was accepted: the status they share, else
/// ESME_RSUBMITFAIL, with each listed in unsuccess_sme all the same (so
/// the client sees why each failed).
async fn answer_none_accepted(
    node: &Node,
    account: &str,
    responder: tern_session::Responder,
    refused: Vec<Unsuccess>,
) {
    let status = shared_status(&refused);
    let counts = destination_counts(0, &refused);
    let counts: Vec<(&str, u64)> = counts.iter().map(|(s, n)| (s.as_str(), *n)).collect();
    node.metrics()
        .submit_multi(account, status.name().unwrap_or("vendor"), &counts);
    let resp = SubmitMultiResp {
        message_id: Some(COctetString::empty()),
        unsuccess: refused,
        ..SubmitMultiResp::default()
    };
    let _ = responder.respond(status, Body::SubmitMultiResp(resp)).await;
}

/// The status every refusal shares, else ESME_RSUBMITFAIL.
pub fn shared_status(refused: &[Unsuccess]) -> CommandStatus {
    match refused.split_first() {
        Some((first, rest))
            if rest
                .iter()
                .all(|u| u.error_status_code == first.error_status_code) =>
        {
            first.error_status_code
        }
        _ => CommandStatus::SubmitFailed,
    }
}

/// Destinations by status, for the metrics: `ESME_ROK` for those stored.
fn destination_counts(stored: u64, refused: &[Unsuccess]) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = Vec::new();
    if stored > 0 {
        counts.push(("ESME_ROK".to_owned(), stored));
    }
    for u in refused {
        let name = u.error_status_code.name().unwrap_or("vendor").to_owned();
        match counts.iter_mut().find(|(s, _)| *s == name) {
            Some((_, n)) => *n += 1,
            None => counts.push((name, 1)),
        }
    }
    counts
}

/// The submit_sm a submit_multi is for one destination: every field the
/// client gave, with that destination.
pub fn submit_to(multi: &SubmitMulti, destination: Address<21>) -> SubmitSm {
    SubmitSm {
        service_type: multi.service_type.clone(),
        source: multi.source.clone(),
        destination,
        esm_class: multi.esm_class,
        protocol_id: multi.protocol_id,
        priority_flag: multi.priority_flag,
        schedule_delivery_time: multi.schedule_delivery_time.clone(),
        validity_period: multi.validity_period.clone(),
        registered_delivery: multi.registered_delivery,
        replace_if_present_flag: multi.replace_if_present_flag,
        data_coding: multi.data_coding,
        sm_default_msg_id: multi.sm_default_msg_id,
        short_message: multi.short_message.clone(),
        tlvs: multi.tlvs.clone(),
    }
}

/// query_sm on a submission's id: one state for all its destinations.
///
/// While any destination is not final, the least advanced one's state
/// (ENROUTE: Tern reports every message not final as ENROUTE). Once all
/// are final: DELIVERED (error 0) when every one was delivered; else the
/// state and error of the first destination, in submission order, that
/// was not. A destination whose record is gone (purged) counts as UNKNOWN.
pub async fn aggregate_state(node: &Node, members: &[TernId]) -> (MessageState, u8) {
    let mut states: Vec<(MessageState, u8, bool)> = Vec::with_capacity(members.len());
    for id in members {
        states.push(match node.store().get(*id).await {
            Ok(Some(record)) => record_state(&record),
            _ => (MessageState::UNKNOWN, 0, true),
        });
    }
    aggregate(&states)
}

/// The rule of [`aggregate_state`] over each destination's (state, error,
/// final), in submission order.
fn aggregate(states: &[(MessageState, u8, bool)]) -> (MessageState, u8) {
    if let Some(&(state, error, _)) = states.iter().find(|(_, _, is_final)| !is_final) {
        return (state, error);
    }
    states
        .iter()
        .find(|(state, _, _)| *state != MessageState::DELIVERED)
        .map_or((MessageState::DELIVERED, 0), |&(s, e, _)| (s, e))
}

/// The destinations a client id stands for: every one of a submission, or
/// the message itself. `None` for an id the client was never given (a
/// destination's own id inside a submission).
pub fn client_messages(record: &MessageRecord) -> Option<Vec<TernId>> {
    if record.client_id() != record.id {
        return None;
    }
    Some(
        record
            .submission_members()
            .map_or_else(|| vec![record.id], <[TernId]>::to_vec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsuccess(status: CommandStatus) -> Unsuccess {
        Unsuccess {
            address: Address::default(),
            error_status_code: status,
        }
    }

    #[test]
    fn a_submission_is_as_far_as_its_least_advanced_destination() {
        let delivered = (MessageState::DELIVERED, 0, true);
        let waiting = (MessageState::ENROUTE, 0, false);
        let absent = (MessageState::UNDELIVERABLE, 27, true);
        let expired = (MessageState::EXPIRED, 0, true);
        assert_eq!(
            aggregate(&[delivered, waiting, absent]),
            (MessageState::ENROUTE, 0),
            "not final while one waits"
        );
        assert_eq!(
            aggregate(&[delivered, delivered]),
            (MessageState::DELIVERED, 0)
        );
        assert_eq!(
            aggregate(&[delivered, absent, expired]),
            (MessageState::UNDELIVERABLE, 27),
            "the first destination not delivered, with its error"
        );
    }

    #[test]
    fn all_refused_alike_answer_that_status_else_submit_fail() {
        let same = [
            unsuccess(CommandStatus::InvalidDestinationAddress),
            unsuccess(CommandStatus::InvalidDestinationAddress),
        ];
        assert_eq!(
            shared_status(&same),
            CommandStatus::InvalidDestinationAddress
        );
        let mixed = [
            unsuccess(CommandStatus::InvalidDestinationAddress),
            unsuccess(CommandStatus::InvalidDestinationFlag),
        ];
        assert_eq!(shared_status(&mixed), CommandStatus::SubmitFailed);
    }
}
