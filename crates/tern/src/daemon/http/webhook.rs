//! Receipts of HTTP API submits by webhook: the canonical receipt POSTed as
//! JSON to the message's callback URL, signed with the account's
//! `webhook_secret`.
//!
//! The receipt goes through the same durable outbox as SMPP receipts (see
//! `daemon::outbox`): it is stored with the message's other receipt
//! records, read by the outbox's task, and acknowledged (removed) only
//! once the target answered 2xx; a failure backs the account off (1 s
//! doubling to 60 s) and it is tried again, across restarts, until
//! `outbox_max_age`. The callback URL travels in the stored submit, in
//! Tern's own TLV ([`TERN_CALLBACK_TAG`], never sent upstream); a message
//! without one has its receipts delivered to SMPP receivers as before.
//!
//! Callbacks are `http://` or `https://` (rustls; the receiver's
//! certificate must chain to the public roots or to the account's
//! `webhook_ca`, and name the URL's host).
//!
//! Signature: `Tern-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>">`, so a receiver checks the body and refuses replays
//! older than it tolerates.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tern_codec::receipt::Receipt;
use tern_codec::{Body, Pdu};
use tern_router::adapt::TERN_CALLBACK_TAG;
use tern_storage::OutboxItem;
use tokio_rustls::rustls::ClientConfig;
use tracing::{debug, warn};

use crate::config::ClientAccount;
use crate::daemon::node::Node;

/// How long one webhook call may take, connect to answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The signature header.
pub const SIGNATURE_HEADER: &str = "tern-signature";

/// An account's webhook settings, read once per outbox look.
#[derive(Debug)]
pub struct Hooks {
    account: ClientAccount,
    /// What its https callbacks connect with: the public roots, and the
    /// account's `webhook_ca` when it has one.
    tls: Option<Arc<ClientConfig>>,
}

/// The TLS configuration of https callbacks of accounts without a
/// `webhook_ca`: the bundled public roots (webpki-roots, Mozilla's
/// programme, as for upstreams), built once.
fn public_tls() -> Option<Arc<ClientConfig>> {
    static PUBLIC: OnceLock<Option<Arc<ClientConfig>>> = OnceLock::new();
    PUBLIC
        .get_or_init(|| {
            let tls = tern_session::tls::ClientTls::default().config();
            tls.map_err(|err| warn!(%err, "no TLS for https callbacks"))
                .ok()
        })
        .clone()
}

impl Hooks {
    /// The webhooks of `client`, when it has a `webhook_secret`; `None`
    /// costs the SMPP path one look at the accounts.
    pub fn of(node: &Node, client: &str) -> Option<Arc<Hooks>> {
        let accounts = node.accounts().current();
        let account = accounts
            .iter()
            .find(|a| a.system_id == client && a.webhook_secret.is_some())?;
        let tls = match &account.webhook_ca {
            Some(ca) => Some(ca.tls.clone()),
            None => public_tls(),
        };
        Some(Arc::new(Hooks {
            account: account.clone(),
            tls,
        }))
    }
}

/// One receipt on its way to a callback.
#[derive(Debug)]
pub struct Call {
    url: url::Url,
    body: Bytes,
    stat: String,
}

/// Where an outbox item goes: `Some` for a receipt of a message with a
/// callback (a call; or `None` inside when the URL is no longer allowed,
/// e.g. after a reload: the item is dropped with a warning, as nothing
/// may be called outside the allow-list); `None` for the SMPP receivers.
pub async fn route(node: &Node, hooks: &Hooks, item: &OutboxItem) -> Option<Option<Call>> {
    let record = node.store().get(item.message?).await.ok()??;
    let submit = tern_router::receipt::client_submit(&record)?;
    let url = match submit.tlvs.get(TERN_CALLBACK_TAG)? {
        tern_codec::Tlv::Other { value, .. } => String::from_utf8_lossy(value).into_owned(),
        _ => return None,
    };
    let url = match hooks.account.callback(&url) {
        Ok(url) => url,
        Err(why) => {
            warn!(client = %record.client, id = %record.id, %why, "receipt webhook no longer allowed; dropped");
            return Some(None);
        }
    };
    let Ok(Pdu {
        body: Body::DeliverSm(receipt),
        ..
    }) = Pdu::decode(item.pdu.clone())
    else {
        return Some(None);
    };
    let read = Receipt::parse(receipt.short_message.as_bytes()).ok();
    let stat = read
        .as_ref()
        .and_then(|r| r.stat.clone())
        .unwrap_or_default();
    let err = read
        .as_ref()
        .and_then(|r| r.err.clone())
        .unwrap_or_default();
    let address =
        |a: &tern_codec::Address<21>| String::from_utf8_lossy(a.addr.as_bytes()).into_owned();
    let body = json!({
        "id": record.id_format.render(record.client_id()).as_str(),
        "to": address(&submit.destination),
        "from": address(&submit.source),
        "stat": stat,
        "err": err,
        "final": record.outcome.is_some(),
        "vendor": record.outcome.as_ref().and_then(|o| o.vendor_code.clone()),
        "submitted_ms": record.accepted_ms,
        "at_ms": item.stored_ms,
    });
    Some(Some(Call {
        url,
        body: Bytes::from(body.to_string()),
        stat,
    }))
}

/// `Tern-Signature`'s value for `body` at `timestamp` (unix seconds).
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut context = ring::hmac::Context::with_key(&key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    let tag = context.sign();
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// POSTs one receipt. Returns whether the target took it (2xx): only then
/// does the outbox remove it.
pub async fn deliver(node: &Node, client: &str, hooks: &Hooks, call: Call) -> bool {
    let Some(secret) = &hooks.account.webhook_secret else {
        return false;
    };
    let timestamp = tern_storage::now_ms() / 1000;
    let signed = signature(secret.expose(), timestamp, &call.body);
    match tokio::time::timeout(CALL_TIMEOUT, post(&call, hooks.tls.as_ref(), &signed)).await {
        Ok(Ok(status)) if (200..300).contains(&status) => {
            node.metrics()
                .receipt_relayed(client, receipt_stat(&call.stat));
            true
        }
        Ok(Ok(status)) => {
            debug!(client, url = %call.url, status, "receipt webhook refused; kept for later");
            false
        }
        Ok(Err(err)) => {
            debug!(client, url = %call.url, %err, "receipt webhook failed; kept for later");
            false
        }
        Err(_) => {
            debug!(client, url = %call.url, "receipt webhook timed out; kept for later");
            false
        }
    }
}

/// The stat as the metrics label it (one of the final states, else "-").
fn receipt_stat(stat: &str) -> &'static str {
    tern_router::FinalState::ALL
        .iter()
        .find(|s| stat.starts_with(s.stat()))
        .map_or("-", |s| s.stat())
}

type CallError = Box<dyn std::error::Error + Send + Sync>;

/// One POST over HTTP/1.1, in TLS for `https` (`tls`, the certificate
/// checked against the URL's host, name or address); the answer's status.
/// A receiver whose certificate does not verify is a failed call: the
/// receipt stays in the outbox and is tried again.
async fn post(
    call: &Call,
    tls: Option<&Arc<ClientConfig>>,
    signed: &str,
) -> Result<u16, CallError> {
    let host = call.url.host_str().ok_or("no host")?;
    let port = call.url.port_or_known_default().ok_or("no port")?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    if call.url.scheme() == "https" {
        let tls = tls.ok_or("no TLS configuration for https callbacks")?;
        let name = tern_session::tls::server_name(host, None)?;
        let stream = tokio_rustls::TlsConnector::from(tls.clone())
            .connect(name, stream)
            .await?;
        exchange(stream, call, host, signed).await
    } else {
        exchange(stream, call, host, signed).await
    }
}

/// The request and its answer's status on a connected `stream`.
async fn exchange<S>(stream: S, call: &Call, host: &str, signed: &str) -> Result<u16, CallError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection is driven in this task, beside the exchange: no task
    // of its own, and it ends (is dropped) with the exchange.
    tokio::pin!(connection);
    let path = match call.url.query() {
        Some(query) => format!("{}?{query}", call.url.path()),
        None => call.url.path().to_owned(),
    };
    let authority = match call.url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let request = Request::post(path)
        .header(header::HOST, authority)
        .header(header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signed)
        .body(Full::new(call.body.clone()))?;
    let response = tokio::select! {
        response = sender.send_request(request) => response?,
        Err(err) = &mut connection => return Err(err.into()),
    };
    let status = response.status().as_u16();
    // Read the (small) answer so the connection ends cleanly.
    tokio::select! {
        _ = response.into_body().collect() => {}
        _ = &mut connection => {}
    }
    Ok(status)
}
