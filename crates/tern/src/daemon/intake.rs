//! Client sessions: what clients submit becomes durable before it is
//! answered (store-and-forward), and query_sm is answered from the store.
//! Never waits for an upstream.

use std::sync::Arc;

use tern_codec::pdu::{QuerySmResp, SmResp};
use tern_codec::{Body, COctetString, CommandStatus, MessageState, ReceiptRequest, TimeString};
use tern_session::smsc::BoundSession;
use tern_storage::{now_ms, NewMessage, State, TernId};
use tracing::warn;

use super::node::Node;

/// Serves one bound client session until it ends.
pub async fn serve_client(node: Arc<Node>, mut bound: BoundSession) {
    if bound.bind_type.can_receive() {
        node.add_receiver(&bound.account, bound.handle.clone());
    }
    while let Some(request) = bound.requests.recv().await {
        let pdu = request.pdu;
        let responder = request.responder;
        match &pdu.body {
            Body::SubmitSm(sm) => {
                if !node.router.has_route(&bound.account, sm) {
                    let _ = responder.reject(node.router.config().no_route_status).await;
                    continue;
                }
                let now = now_ms();
                let expires_ms = sm
                    .validity_period
                    .parse()
                    .and_then(Result::ok)
                    .and_then(|t| t.to_unix_millis(now as i64).ok())
                    .map(|ms| ms.max(0) as u64);
                let not_before_ms = sm
                    .schedule_delivery_time
                    .parse()
                    .and_then(Result::ok)
                    .and_then(|t| t.to_unix_millis(now as i64).ok())
                    .map_or(now, |ms| (ms.max(0) as u64).max(now));
                let message = NewMessage {
                    client: bound.account.clone(),
                    pdu: pdu.to_bytes(),
                    receipt_requested: sm.registered_delivery.receipt() != ReceiptRequest::None,
                    not_before_ms,
                    expires_ms,
                    dedup: None,
                };
                match node.store.accept(message, now).await {
                    Ok(accepted) => {
                        let id =
                            COctetString::try_from(accepted.id.to_string()).unwrap_or_default();
                        let _ = responder
                            .respond(CommandStatus::Ok, Body::SubmitSmResp(SmResp::with_id(id)))
                            .await;
                        node.dispatch.notify_one();
                    }
                    Err(err) => {
                        warn!(%err, "store refused a message; answering ESME_RSYSERR");
                        let _ = responder.reject(CommandStatus::SystemError).await;
                    }
                }
            }
            Body::QuerySm(query) => {
                let answer = query_answer(
                    &node,
                    &bound.account,
                    query.message_id.to_str().unwrap_or(""),
                );
                match answer {
                    Some(resp) => {
                        let _ = responder
                            .respond(CommandStatus::Ok, Body::QuerySmResp(resp))
                            .await;
                    }
                    None => {
                        let _ = responder.reject(CommandStatus::QueryFailed).await;
                    }
                }
            }
            _ => {
                // data_sm, submit_multi, cancel/replace: not offered yet.
                let _ = responder.reject(CommandStatus::InvalidCommandId).await;
            }
        }
    }
}

/// query_sm from the store: only the account's own messages.
fn query_answer(node: &Node, account: &str, id: &str) -> Option<QuerySmResp> {
    let id: TernId = id.parse().ok()?;
    let record = node.store.get(id).ok()??;
    if record.client != account {
        return None;
    }
    let state = match (&record.state, &record.outcome) {
        (State::Final, Some(outcome)) => outcome_state(&outcome.stat),
        _ => MessageState::ENROUTE,
    };
    Some(QuerySmResp {
        message_id: COctetString::try_from(id.to_string()).unwrap_or_default(),
        final_date: TimeString::empty(),
        message_state: state,
        error_code: record.outcome.as_ref().map_or(0, |o| o.err.min(255) as u8),
    })
}

fn outcome_state(stat: &str) -> MessageState {
    match stat {
        "DELIVRD" => MessageState::DELIVERED,
        "EXPIRED" => MessageState::EXPIRED,
        "DELETED" => MessageState::DELETED,
        "UNDELIV" => MessageState::UNDELIVERABLE,
        "ACCEPTD" => MessageState::ACCEPTED,
        "REJECTD" => MessageState::REJECTED,
        _ => MessageState::UNKNOWN,
    }
}
