//! `POST /v1/messages`: a JSON submission becomes, per destination, the
//! submit_sm an SMPP client of the account would have sent (text in GSM
//! 7-bit when it fits the alphabet, else UCS-2; `message_payload` past one
//! short_message, which the router splits per upstream as for any client),
//! stored by the very function intake stores an SMPP submit_sm with
//! (`intake::store_submit`: number check, route check, one durable write,
//! transaction mode) and answered 202 with Tern's id per destination once
//! durable.
//!
//! An `Idempotency-Key` makes each destination's message carry a
//! duplicate-protection key in the store (the store's dedup, see
//! `tern_storage::dedup`): a repeat within [`IDEMPOTENCY_WINDOW`] gets the
//! first ids back and stores nothing new, also when the first answer was
//! lost in a crash after some destinations were stored.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use tern_codec::pdu::SubmitSm;
use tern_codec::text::{self, Encoding, Unrepresentable};
use tern_codec::time::{AbsoluteTime, UtcOffset};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, DataCoding, Npi, Pdu, PriorityFlag,
    RegisteredDelivery, ShortMessage, TimeString, Tlv, Ton,
};
use tern_session::throttle::WindowSlot;
use tern_storage::now_ms;

use super::listener::Peer;
use super::problem::Problem;
use super::HttpState;
use crate::config::ClientAccount;
use crate::daemon::intake::{store_submit, Stored};
use crate::daemon::multi::MAX_DESTINATIONS;

/// How long an `Idempotency-Key` holds: a client retrying a request whose
/// answer it lost does so within a day.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Longest `Idempotency-Key`, characters.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Longest `validity`: what SMPP's relative validity can say (99 days is
/// beyond every vendor's own limit anyway).
const MAX_VALIDITY: Duration = Duration::from_secs(99 * 24 * 3600);

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    to: To,
    from: String,
    text: Option<String>,
    hex: Option<String>,
    data_coding: Option<u8>,
    validity: Option<String>,
    priority: Option<u8>,
    receipt: Option<Receipt>,
    callback_url: Option<String>,
}

/// `to`: one number or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum To {
    One(String),
    Many(Vec<String>),
}

/// `receipt`: which receipts the message asks for.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Receipt {
    None,
    Final,
    All,
}

/// `POST /v1/messages`.
pub async fn post_messages(
    State(state): State<HttpState>,
    ConnectInfo(Peer(peer)): ConnectInfo<Peer>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match submit(&state, peer, &headers, body).await {
        Ok(answer) => answer,
        Err(problem) => problem.into_response(),
    }
}

/// The checks in the order the statuses are documented: draining (503),
/// credentials (401, 403), media type (415), body size (413), fields
/// (400), window and rate (429); then the store.
async fn submit(
    state: &HttpState,
    peer: std::net::SocketAddr,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    if state.draining.is_cancelled() {
        return Err(Problem {
            retry_after: Some(1),
            ..Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                CommandStatus::SystemError,
                "this node is shutting down; submit to another or try again",
            )
        });
    }
    let accounts = state.node.accounts().current();
    let account = super::auth::authenticate(&accounts, headers, peer)?;
    drop(accounts);
    json_media_type(headers)?;
    let body = body.map_err(|rejection| {
        Problem::new(
            rejection.status(),
            CommandStatus::InvalidMessageLength,
            format!("{rejection} (at most {} octets)", super::MAX_BODY),
        )
    })?;
    let parsed = parse(&body)?;
    let mut template = template(&parsed)?;
    callback(&account, &parsed, &mut template)?;
    let destinations = destinations(&parsed.to)?;
    let key = idempotency_key(headers)?;
    // Held until the answer, as an SMPP submit's slot is until its
    // response; taken before the rate, so a refused request spends none.
    let _slot = take_window(state, &account)?;
    take_rate(state, &account, destinations.len())?;
    let client = account.system_id.as_str();
    let results = futures::future::join_all(destinations.iter().enumerate().map(|(n, to)| {
        let dedup = key.as_ref().map(|k| (dedup_key(k, n), IDEMPOTENCY_WINDOW));
        let mut sm = template.clone();
        sm.destination = to.clone();
        let pdu = Pdu::new(0, Body::SubmitSm(sm));
        async move { store_submit(&state.node, client, &pdu, dedup).await }
    }))
    .await;
    answer(&destinations, results)
}

/// 415 unless the body is said to be JSON.
fn json_media_type(headers: &HeaderMap) -> Result<(), Problem> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => Ok(()),
        other => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CommandStatus::InvalidCommandId,
            format!(
                "the body must be application/json, not {}",
                other.unwrap_or("unsaid")
            ),
        )),
    }
}

/// The body as JSON, or 400 naming the field that does not parse.
fn parse(body: &[u8]) -> Result<SubmitBody, Problem> {
    let mut json = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut json).map_err(|err| {
        let message = err.inner().to_string();
        let path = err.path().to_string();
        // Unknown and missing fields are reported at the object holding
        // them: their name is in backquotes in the message.
        let field = if path == "." {
            message
                .split('`')
                .nth(1)
                .map_or_else(|| "body".to_owned(), str::to_owned)
        } else {
            path
        };
        let smpp = field_status(&field);
        Problem::field(&field, smpp, message)
    })
}

/// The SMPP status of a fault in `field`.
fn field_status(field: &str) -> CommandStatus {
    match field.split(['.', '[']).next().unwrap_or(field) {
        "to" => CommandStatus::InvalidDestinationAddress,
        "from" => CommandStatus::InvalidSourceAddress,
        "data_coding" => CommandStatus::InvalidDataCoding,
        "validity" => CommandStatus::InvalidExpiry,
        "priority" => CommandStatus::InvalidPriorityFlag,
        "receipt" => CommandStatus::InvalidRegisteredDelivery,
        "text" | "hex" => CommandStatus::InvalidMessageLength,
        _ => CommandStatus::InvalidTlvValue,
    }
}

/// The submit_sm every destination gets (its destination left empty).
fn template(body: &SubmitBody) -> Result<SubmitSm, Problem> {
    let (data_coding, octets) = content(body)?;
    let mut sm = SubmitSm {
        source: source(&body.from)?,
        // A callback asks for the final receipt unless told otherwise
        // (see `callback`).
        registered_delivery: match body.receipt.unwrap_or(Receipt::None) {
            Receipt::None => RegisteredDelivery(0x00),
            Receipt::Final => RegisteredDelivery(0x01),
            Receipt::All => RegisteredDelivery(0x11),
        },
        data_coding,
        ..SubmitSm::default()
    };
    match body.priority {
        None => {}
        Some(p @ 0..=3) => sm.priority_flag = PriorityFlag(p),
        Some(p) => {
            return Err(Problem::field(
                "priority",
                CommandStatus::InvalidPriorityFlag,
                format!("priority {p}: expected 0 to 3"),
            ))
        }
    }
    if let Some(validity) = &body.validity {
        sm.validity_period = validity_period(validity)?;
    }
    // One short_message when it fits, else the whole in message_payload,
    // as an SMPP client sends a long message it does not split itself.
    if octets.len() <= 254 {
        sm.short_message = ShortMessage::new(octets).map_err(|e| text_problem(body, e))?;
    } else {
        let payload = Tlv::message_payload(octets).map_err(|e| text_problem(body, e))?;
        sm.tlvs.push(payload);
    }
    Ok(sm)
}

fn text_problem(body: &SubmitBody, err: impl std::fmt::Display) -> Problem {
    let field = if body.hex.is_some() { "hex" } else { "text" };
    Problem::field(field, CommandStatus::InvalidMessageLength, err.to_string())
}

/// The message's callback (`callback_url`, else the account's default),
/// kept in the stored submit in Tern's own TLV for the receipt webhook
/// (`webhook`), and the final receipt asked for unless `receipt` says
/// otherwise; 400 when the account cannot sign one, the URL is outside its
/// `callback_allow`, or the request gives one with `receipt: "none"`.
fn callback(account: &ClientAccount, body: &SubmitBody, sm: &mut SubmitSm) -> Result<(), Problem> {
    let given = body.callback_url.as_deref();
    let Some(url) = given.or(account.callback_url.as_deref()) else {
        return Ok(());
    };
    match body.receipt {
        None => sm.registered_delivery = RegisteredDelivery(0x01),
        // The account's default callback, for a message wanting no receipt.
        Some(Receipt::None) if given.is_none() => return Ok(()),
        Some(_) => {}
    }
    let refuse = |why: String| Problem::field("callback_url", CommandStatus::InvalidTlvValue, why);
    if account.webhook_secret.is_none() {
        return Err(refuse(format!(
            "account {} has no webhook_secret to sign callbacks with",
            account.system_id
        )));
    }
    let url = account.callback(url).map_err(refuse)?;
    if given.is_some() && sm.registered_delivery.receipt() == tern_codec::ReceiptRequest::None {
        return Err(refuse(
            "a callback with receipt \"none\" would never be called".to_owned(),
        ));
    }
    sm.tlvs.push(Tlv::Other {
        tag: tern_router::adapt::TERN_CALLBACK_TAG,
        value: Bytes::from(url.to_string()),
    });
    Ok(())
}

/// data_coding and octets: `text` in GSM 7-bit (unpacked, data_coding 0)
/// when every character is in the GSM alphabet, else UCS-2 (8), as `tern
/// send` and most SMPP clients do; or `hex` octets with their
/// `data_coding`, as given.
fn content(body: &SubmitBody) -> Result<(DataCoding, Vec<u8>), Problem> {
    match (&body.text, &body.hex, body.data_coding) {
        (Some(text), None, None) => {
            let gsm = text::unit_count(text, Encoding::Gsm7Unpacked, Unrepresentable::Error);
            let (encoding, coding) = if gsm.is_ok() {
                (Encoding::Gsm7Unpacked, DataCoding::DEFAULT)
            } else {
                (Encoding::Ucs2, DataCoding::UCS2)
            };
            let octets = text::encode(text, encoding, Unrepresentable::Error).map_err(|e| {
                Problem::field("text", CommandStatus::InvalidMessageLength, e.to_string())
            })?;
            Ok((coding, octets.to_vec()))
        }
        (None, Some(hex), Some(coding)) => Ok((DataCoding(coding), decode_hex(hex)?)),
        (None, Some(_), None) => Err(Problem::field(
            "data_coding",
            CommandStatus::InvalidDataCoding,
            "hex needs its data_coding",
        )),
        (Some(_), None, Some(_)) => Err(Problem::field(
            "data_coding",
            CommandStatus::InvalidDataCoding,
            "data_coding goes with hex; text is encoded by Tern",
        )),
        (Some(_), Some(_), _) => Err(Problem::field(
            "hex",
            CommandStatus::InvalidMessageLength,
            "give text or hex, not both",
        )),
        (None, None, _) => Err(Problem::field(
            "text",
            CommandStatus::InvalidMessageLength,
            "text (or hex with data_coding) is required",
        )),
    }
}

/// Octets from hex digits (an even count, no separators).
fn decode_hex(hex: &str) -> Result<Vec<u8>, Problem> {
    let bad = || {
        Problem::field(
            "hex",
            CommandStatus::InvalidMessageLength,
            "hex must be pairs of hexadecimal digits",
        )
    };
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(bad());
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

/// `from`: digits (an optional '+') are an international number, anything
/// else an alphanumeric sender, as `tern send` takes them.
fn source(from: &str) -> Result<Address<21>, Problem> {
    let from = from.trim();
    let digits = from.trim_start_matches('+');
    let (ton, npi, text) = if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        (Ton::INTERNATIONAL, Npi::ISDN, digits)
    } else {
        (Ton::ALPHANUMERIC, Npi::UNKNOWN, from)
    };
    if text.is_empty() {
        return Err(Problem::field(
            "from",
            CommandStatus::InvalidSourceAddress,
            "from is empty",
        ));
    }
    let addr = COctetString::try_from(text)
        .map_err(|e| Problem::field("from", CommandStatus::InvalidSourceAddress, e.to_string()))?;
    Ok(Address::new(ton, npi, addr))
}

/// The destinations, international numbers: 1 to 254 (submit_multi's
/// limit), each digits with an optional '+'.
fn destinations(to: &To) -> Result<Vec<Address<21>>, Problem> {
    let list: Vec<&String> = match to {
        To::One(one) => vec![one],
        To::Many(many) => many.iter().collect(),
    };
    if list.is_empty() || list.len() > MAX_DESTINATIONS {
        return Err(Problem::field(
            "to",
            CommandStatus::InvalidNumberOfDestinations,
            format!("1 to {MAX_DESTINATIONS} destinations, not {}", list.len()),
        ));
    }
    list.iter()
        .enumerate()
        .map(|(n, number)| {
            let field = if matches!(to, To::One(_)) {
                "to".to_owned()
            } else {
                format!("to[{n}]")
            };
            let digits = number.trim().trim_start_matches('+');
            let addr = COctetString::try_from(digits)
                .ok()
                .filter(|_| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()));
            addr.map(|a| Address::new(Ton::INTERNATIONAL, Npi::ISDN, a))
                .ok_or_else(|| {
                    Problem::field(
                        &field,
                        CommandStatus::InvalidDestinationAddress,
                        format!("{number:?} is not a phone number (digits, international)"),
                    )
                })
        })
        .collect()
}

/// `validity` ("30m", "2h", "1d"): an absolute SMPP time that far from
/// now, in UTC.
fn validity_period(validity: &str) -> Result<TimeString, Problem> {
    let bad = |why: String| Problem::field("validity", CommandStatus::InvalidExpiry, why);
    let span = humantime::parse_duration(validity)
        .map_err(|e| bad(format!("{validity:?} is not a duration ({e}); e.g. \"2h\"")))?;
    if span.is_zero() || span > MAX_VALIDITY {
        return Err(bad(format!("{validity:?}: more than 0s, at most 99 days")));
    }
    let until = now_ms() as i64 + span.as_millis() as i64;
    let time =
        AbsoluteTime::from_unix_millis(until, UtcOffset::UTC).map_err(|e| bad(e.to_string()))?;
    TimeString::new(time.to_bytes().to_vec()).map_err(|e| bad(e.to_string()))
}

/// The `Idempotency-Key` header, if any: visible ASCII, 1 to 255
/// characters, else 400.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| !k.is_empty() && k.len() <= MAX_IDEMPOTENCY_KEY)
        .filter(|k| k.bytes().all(|b| b.is_ascii_graphic()));
    key.map(|k| Some(k.to_owned())).ok_or_else(|| {
        Problem::field(
            "Idempotency-Key",
            CommandStatus::InvalidTlvValue,
            "1 to 255 visible ASCII characters",
        )
    })
}

/// The store's duplicate-protection key of destination `n` of a request
/// with idempotency key `key` ('H' apart from the SMPP keys' 'R' and 'C').
fn dedup_key(key: &str, n: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(key.len() + 4);
    bytes.push(b'H');
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&(n as u16).to_be_bytes());
    Bytes::from(bytes)
}

/// A slot of the account's `window` (submits unanswered at once), the
/// one its SMPP sessions take from: a request is in flight from here until
/// its answer, whatever its number of destinations (as one submit_multi
/// is one SMPP request). When every slot is held: 429 with the status an
/// SMPP submit gets there, ESME_RMSGQFUL. 429 and not 503 because the
/// limit is the account's own (it is ahead of Tern, as with its rate),
/// not Tern's: a full store is 503. `None`: the account has no window.
fn take_window(state: &HttpState, account: &ClientAccount) -> Result<Option<WindowSlot>, Problem> {
    let admission = state.node.accounts().admission(account, 0);
    let Some(window) = state.server.window_for(&admission) else {
        return Ok(None);
    };
    if let Some(slot) = window.try_take() {
        return Ok(Some(slot));
    }
    state.node.metrics().submit(
        &account.system_id,
        CommandStatus::MessageQueueFull.name().unwrap_or("vendor"),
    );
    Err(Problem {
        retry_after: Some(1),
        ..Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            CommandStatus::MessageQueueFull,
            format!(
                "the account's window is full: {} submits in flight; wait for an answer",
                window.limit()
            ),
        )
    })
}

/// One cell per destination from the account's rate limiter, the one its
/// SMPP sessions take from; 429 with `Retry-After` when over it.
fn take_rate(state: &HttpState, account: &ClientAccount, messages: usize) -> Result<(), Problem> {
    let Some(rate) = account.rate else {
        return Ok(());
    };
    let mut admission = state.node.accounts().admission(account, 0);
    // The account's limit only: an HTTP request is no session.
    admission.session_rate = None;
    let limits = state.server.limits_for(&admission);
    let admitted = (0..messages)
        .all(|_| tern_session::throttle::try_acquire_all(limits.iter().map(|l| l.as_ref())));
    if admitted {
        return Ok(());
    }
    state.node.metrics().submit(
        &account.system_id,
        CommandStatus::Throttled.name().unwrap_or("vendor"),
    );
    Err(Problem {
        // The time one message's worth of rate takes to come back.
        retry_after: Some(1u64.max(1u64.div_ceil(u64::from(rate.get())))),
        ..Problem::refused(CommandStatus::Throttled)
    })
}

/// 202 with each destination's id (in the account's id form) or SMPP
/// status; when none was stored, the problem of the first refusal.
fn answer(
    destinations: &[Address<21>],
    results: Vec<Result<Stored, CommandStatus>>,
) -> Result<Response, Problem> {
    if let Some(status) = results
        .iter()
        .map(|r| r.as_ref().err().copied())
        .collect::<Option<Vec<_>>>()
        .and_then(|all| all.first().copied())
    {
        return Err(Problem::refused(status));
    }
    let messages: Vec<serde_json::Value> = destinations
        .iter()
        .zip(&results)
        .map(|(to, result)| {
            let to = String::from_utf8_lossy(to.addr.as_bytes()).into_owned();
            match result {
                Ok(stored) => {
                    let id = stored.id_format.render(stored.id);
                    json!({ "to": to, "id": id.as_str() })
                }
                Err(status) => json!({
                    "to": to,
                    "smpp_status": status.name(),
                    "smpp_code": status.code(),
                }),
            }
        })
        .collect();
    Ok((StatusCode::ACCEPTED, Json(json!({ "messages": messages }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(json: &str) -> Result<SubmitBody, Problem> {
        parse(json.as_bytes())
    }

    #[test]
    fn a_bad_field_is_named() {
        let field = |json: &str| body(json).err().and_then(|p| p.field);
        assert_eq!(
            field(r#"{"to":"34600","text":"hi"}"#).as_deref(),
            Some("from")
        );
        assert_eq!(
            field(r#"{"to":"34600","from":"A","text":"hi","colour":1}"#).as_deref(),
            Some("colour")
        );
        assert_eq!(
            field(r#"{"to":"34600","from":"A","text":"hi","priority":"x"}"#).as_deref(),
            Some("priority")
        );
        assert_eq!(
            field(r#"{"to":"34600","from":"A","text":"hi","receipt":"some"}"#).as_deref(),
            Some("receipt")
        );
    }

    #[test]
    fn text_is_gsm_when_it_fits_else_ucs2_and_long_text_goes_in_the_payload() {
        let sm = |text: &str| {
            let body = body(&json!({"to": "34600", "from": "Acme", "text": text}).to_string())
                .expect("parses");
            template(&body).expect("valid")
        };
        let gsm = sm("hello");
        assert_eq!(gsm.data_coding, DataCoding::DEFAULT);
        assert_eq!(gsm.short_message.as_bytes(), b"hello");
        let ucs2 = sm("привет");
        assert_eq!(ucs2.data_coding, DataCoding::UCS2);
        assert_eq!(ucs2.short_message.len(), 12);
        let long = sm(&"a".repeat(300));
        assert!(long.short_message.is_empty());
        assert_eq!(
            long.tlvs.message_payload().map(|p| p.len()),
            Some(300),
            "the whole text in message_payload"
        );
    }

    #[test]
    fn hex_needs_its_data_coding_and_validity_must_parse() {
        let problem = |json: serde_json::Value| {
            body(&json.to_string())
                .and_then(|b| template(&b))
                .err()
                .map(|p| (p.field, p.smpp))
        };
        assert_eq!(
            problem(json!({"to": "1", "from": "A", "hex": "00ff"})),
            Some((
                Some("data_coding".to_owned()),
                CommandStatus::InvalidDataCoding
            ))
        );
        assert_eq!(
            problem(json!({"to": "1", "from": "A", "hex": "0g", "data_coding": 4})),
            Some((Some("hex".to_owned()), CommandStatus::InvalidMessageLength))
        );
        assert_eq!(
            problem(json!({"to": "1", "from": "A", "text": "x", "validity": "soon"})),
            Some((Some("validity".to_owned()), CommandStatus::InvalidExpiry))
        );
        assert_eq!(
            problem(json!({"to": "1", "from": "A", "text": "x", "priority": 4})),
            Some((
                Some("priority".to_owned()),
                CommandStatus::InvalidPriorityFlag
            ))
        );
    }
}
