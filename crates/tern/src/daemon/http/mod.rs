//! The HTTP API beside SMPP (`[[http_listener]]`): applications that do
//! not speak SMPP submit with one request and read a message's story.
//! Each request is from one `[[client]]` account (its `http_tokens`, its
//! `allowed_ips`), shares that account's rate limiter with its SMPP
//! sessions, and is routed and stored exactly as that client's submit_sm
//! would be: what differs is the transport and the error vocabulary
//! (RFC 9457 problem details carrying the SMPP status).
//!
//! | route                     | answer                                       |
//! |---------------------------|----------------------------------------------|
//! | `POST /v1/messages`       | 202 with Tern's id per destination ([`submit`]) |
//! | `GET /v1/messages/{id}`   | the message's state, receipts and attempts ([`status`]) |
//! | `GET /v1/openapi.json`    | the OpenAPI document of these routes ([`openapi`]) |

mod auth;
mod listener;
mod openapi;
mod problem;
mod status;
mod submit;
pub(super) mod webhook;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tern_session::smsc::SmscServer;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::auth::Accounts;
use super::node::Node;
use super::DaemonError;
use crate::config::Config;

/// Largest request body read, octets: a message of 254 destinations with
/// a long text fits many times over; more is refused with 413 before it is
/// buffered.
pub const MAX_BODY: usize = 64 * 1024;

/// What every request handler shares.
#[derive(Clone)]
struct HttpState {
    node: Arc<Node>,
    /// The SMPP listeners' server: its per-account rate limiters are the
    /// ones HTTP submits take from, so both sides of an account share one.
    server: Arc<SmscServer<Accounts>>,
    /// Cancelled when the node starts shutting down: submits are answered
    /// 503 from then on, while the listener still answers.
    draining: CancellationToken,
}

/// Binds every `[[http_listener]]` and serves the API on it until `stop`
/// (after the node drained); submits are refused with 503 once `draining`
/// is cancelled. Binding or a TLS key that does not load fails the start.
pub async fn start(
    config: &Config,
    sockets: Vec<tokio::net::TcpListener>,
    node: Arc<Node>,
    server: Arc<SmscServer<Accounts>>,
    draining: CancellationToken,
    stop: CancellationToken,
) -> Result<(), DaemonError> {
    for (spec, socket) in config.http_listeners.iter().zip(sockets) {
        let tls = super::listeners::acceptor(spec)?;
        let address = socket.local_addr().unwrap_or(spec.address);
        info!(%address, tls = tls.is_some(), "accepting HTTP API clients");
        let state = HttpState {
            node: node.clone(),
            server: server.clone(),
            draining: draining.clone(),
        };
        let tasks = node.tasks();
        let accept = listener::Accept::new(socket, tls, stop.clone(), tasks);
        let app = router(state).into_make_service_with_connect_info::<listener::Peer>();
        let stop = stop.clone();
        tasks.spawn(async move {
            let served = axum::serve(accept, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(err) = served {
                warn!(%address, %err, "HTTP listener failed");
            }
        });
    }
    Ok(())
}

/// Every route the API serves, method and path: the OpenAPI document
/// must describe each (a test in [`openapi`] checks).
#[cfg(test)]
pub const ROUTES: &[(&str, &str)] = &[("post", MESSAGES), ("get", MESSAGE), ("get", OPENAPI)];

const MESSAGES: &str = "/v1/messages";
const MESSAGE: &str = "/v1/messages/{id}";
const OPENAPI: &str = "/v1/openapi.json";

/// The API's routes ([`ROUTES`]); bodies above [`MAX_BODY`] are refused
/// with 413.
fn router(state: HttpState) -> Router {
    Router::new()
        .route(MESSAGES, post(submit::post_messages))
        .route(MESSAGE, get(status::get_message))
        .route(OPENAPI, get(openapi::document))
        .fallback(problem::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}
