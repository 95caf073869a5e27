//! Client sessions: what clients submit becomes durable before it is
//! answered (store-and-forward), and query_sm is answered from the store.
//! Never waits for an upstream.

use std::sync::Arc;

use tern_codec::pdu::{QuerySmResp, SmResp};
use tern_codec::{Body, COctetString, CommandStatus, MessageState, ReceiptRequest, TimeString};
use tern_router::FinalState;
use tern_session::smsc::BoundSession;
use tern_storage::{now_ms, NewMessage, State, TernId};
use tokio::sync::Semaphore;
use tracing::warn;

use super::node::Node;

/// Serves one bound client session until it ends.
pub async fn serve_client(node: Arc<Node>, mut bound: BoundSession) {
    if bound.bind_type.can_receive() {
        node.add_receiver(&bound.account, bound.handle.clone());
    }
    let in_flight = Arc::new(Semaphore::new(SUBMITS_IN_FLIGHT));
    while let Some(request) = bound.requests.recv().await {
        let pdu = request.pdu;
        let responder = request.responder;
        match &pdu.body {
            Body::SubmitSm(_) => {
                // Concurrently, so one flush serves many submits (group
                // commit); responses correlate by sequence number, so their
                // order does not matter. Bounded per session.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (node, account) = (node.clone(), bound.account.clone());
                tokio::spawn(async move {
                    submit(&node, &account, pdu, responder).await;
                    drop(permit);
                });
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

/// Submits of one session being stored at once.
const SUBMITS_IN_FLIGHT: usize = 512;

/// Stores one submit_sm and answers it with Tern's id.
async fn submit(
    node: &Node,
    account: &str,
    pdu: tern_codec::Pdu,
    responder: tern_session::Responder,
) {
    let Body::SubmitSm(sm) = &pdu.body else {
        return;
    };
    if !node.router.has_route(account, sm) {
        let _ = responder.reject(node.router.config().no_route_status).await;
        return;
    }
    let now = now_ms();
    let at = |t: &TimeString| {
        t.parse()
            .and_then(Result::ok)
            .and_then(|t| t.to_unix_millis(now as i64).ok())
            .map(|ms| ms.max(0) as u64)
    };
    let message = NewMessage {
        client: account.to_owned(),
        pdu: pdu.to_bytes(),
        receipt_requested: sm.registered_delivery.receipt() != ReceiptRequest::None,
        not_before_ms: at(&sm.schedule_delivery_time).map_or(now, |ms| ms.max(now)),
        expires_ms: at(&sm.validity_period),
        dedup: None,
    };
    match node.store.accept(message, now).await {
        Ok(accepted) => {
            let id = COctetString::try_from(accepted.id.to_string()).unwrap_or_default();
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

/// query_sm from the store: only the account's own messages.
fn query_answer(node: &Node, account: &str, id: &str) -> Option<QuerySmResp> {
    let id: TernId = id.parse().ok()?;
    let record = node.store.get(id).ok()??;
    if record.client != account {
        return None;
    }
    let state = match (&record.state, &record.outcome) {
        (State::Final, Some(outcome)) => outcome
            .stat
            .parse::<FinalState>()
            .map_or(MessageState::UNKNOWN, |s| MessageState(s.message_state())),
        _ => MessageState::ENROUTE,
    };
    Some(QuerySmResp {
        message_id: COctetString::try_from(id.to_string()).unwrap_or_default(),
        final_date: TimeString::empty(),
        message_state: state,
        error_code: record.outcome.as_ref().map_or(0, |o| o.err.min(255) as u8),
    })
}
