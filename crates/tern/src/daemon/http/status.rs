//! `GET /v1/messages/{id}`: one message as `tern trace` shows it (the
//! admin API's story of the message, [`message_json`]): its state, the
//! canonical receipt (`outcome`), every attempt and every receipt received
//! and relayed. Only the account that submitted it may read it; another
//! account's id answers 404 like an unknown one, so ids are not revealed.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;
use tern_codec::CommandStatus;

use super::listener::Peer;
use super::problem::Problem;
use super::HttpState;
use crate::daemon::admin::message_json;

/// `GET /v1/messages/{id}`.
pub async fn get_message(
    State(state): State<HttpState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let accounts = state.node.accounts().current();
    let account = match super::auth::authenticate(&accounts, &headers, peer) {
        Ok(account) => account,
        Err(problem) => return problem.into_response(),
    };
    drop(accounts);
    let not_found = || {
        Problem::new(
            StatusCode::NOT_FOUND,
            CommandStatus::QueryFailed,
            format!("no message {id:?} of account {}", account.system_id),
        )
        .into_response()
    };
    // The id in either form the account may hold, and only its own.
    let Some(tern_id) = state.node.client_id(&account.system_id, id.trim()).await else {
        return not_found();
    };
    let record = match state.node.store().get(tern_id).await {
        Ok(Some(record)) if record.client == account.system_id => record,
        Ok(_) => return not_found(),
        Err(err) => {
            tern_session::warn_limited!("store refused a status read", %err);
            return Problem::refused(CommandStatus::SystemError).into_response();
        }
    };
    let mut message = message_json(&record);
    if let Some(fields) = message.as_object_mut() {
        let client_id = record.id_format.render(record.client_id());
        fields.insert("client_id".to_owned(), Value::from(client_id.as_str()));
        // The canonical receipt under the name the API documents.
        let receipt = fields.get("outcome").cloned().unwrap_or(Value::Null);
        fields.insert("receipt".to_owned(), receipt);
    }
    Json(message).into_response()
}
