//! `tern trace ID`: one message's whole story, read from a running
//! daemon's admin endpoint (`/api/messages/{id}`): who sent it and when,
//! every upstream it was tried at (time, answer, the upstream's id for each
//! part), what each part's receipts said, every receipt as received and as
//! relayed to the client (queued when, taken when), and how it ended. It
//! answers "where is my receipt?" in one command.
//!
//! Like `tern status`, every field is read by name from the JSON, so a
//! field the daemon does not send prints as `-` rather than failing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

use crate::admin::{self, AdminClientError};

/// `tern trace`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 found, 1 no such message, 2 the admin endpoint cannot be reached."
)]
pub struct TraceArgs {
    /// The message id Tern gave the client: 16 hex digits, or decimal for
    /// a client with `id_format = "decimal"`.
    pub id: String,
    /// The daemon's admin endpoint (`[admin] address` in its configuration).
    #[arg(long, default_value = crate::config::DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Print the message's JSON as the daemon gives it.
    #[arg(long)]
    pub json: bool,
}

/// Runs `tern trace`.
pub fn run(args: TraceArgs) -> anyhow::Result<ExitCode> {
    super::runtime()?.block_on(trace(args))
}

async fn trace(args: TraceArgs) -> anyhow::Result<ExitCode> {
    let id = args.id.trim();
    // The id goes into the path: only what an id can hold.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        eprintln!(
            "tern trace: {id:?} is not a message id (Tern's ids are 16 hex digits, or decimal)"
        );
        return Ok(ExitCode::from(1));
    }
    let addr = args.admin;
    let answer = match admin::get(addr, &format!("/api/messages/{id}")).await {
        Ok(answer) => answer,
        Err(err @ AdminClientError::Connect { .. }) => {
            eprintln!("tern trace: {err}");
            eprintln!("  is `tern run` running with [admin] address = \"{addr}\"?");
            return Ok(ExitCode::from(2));
        }
        Err(err) => {
            eprintln!("tern trace: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    if answer.status == 404 {
        eprintln!("tern trace: no message {id} at {addr} (unknown, or purged after retention)");
        return Ok(ExitCode::from(1));
    }
    if !(200..300).contains(&answer.status) {
        eprintln!(
            "tern trace: the admin endpoint at {addr} answered {}: {}",
            answer.status,
            answer.text()
        );
        return Ok(ExitCode::from(2));
    }
    let message = match answer.json() {
        Ok(message) => message,
        Err(err) => {
            eprintln!("tern trace: the answer from {addr} is not JSON: {err}");
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&message)?);
    } else {
        print!("{}", render(&message));
    }
    Ok(ExitCode::SUCCESS)
}

/// A field as text, `-` when absent or null.
fn text(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn get<'a>(value: &'a Value, key: &str) -> Option<&'a Value> {
    value.get(key).filter(|v| !v.is_null())
}

fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// Milliseconds since the Unix epoch as an RFC 3339 time (UTC).
fn time(value: Option<&Value>) -> String {
    match value.and_then(Value::as_u64) {
        Some(ms) => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        None => "-".to_owned(),
    }
}

/// `+1.234s` after `since`, for how long a step took.
fn after(at: Option<&Value>, since: Option<&Value>) -> String {
    match (at.and_then(Value::as_u64), since.and_then(Value::as_u64)) {
        (Some(at), Some(since)) if at >= since => {
            format!(" (+{:.3}s)", (at - since) as f64 / 1000.0)
        }
        _ => String::new(),
    }
}

/// A stored outcome: `UNDELIV err 027 (ovh stat:UNDELIV err:003)`.
fn outcome(value: Option<&Value>) -> String {
    let vendor = match value.and_then(|o| get(o, "vendor")) {
        Some(v) => format!(" ({})", text(Some(v))),
        None => String::new(),
    };
    format!("{}{vendor}", canonical(value))
}

/// A canonical outcome alone: `UNDELIV err 027`.
fn canonical(value: Option<&Value>) -> String {
    let Some(o) = value.filter(|v| !v.is_null()) else {
        return "-".to_owned();
    };
    let err = o
        .get("err")
        .and_then(Value::as_u64)
        .map_or_else(|| "-".to_owned(), |e| format!("{e:03}"));
    format!("{} err {err}", text(get(o, "stat")))
}

/// A command_status with its SMPP name when it has one.
fn status(value: Option<&Value>) -> String {
    match value
        .and_then(Value::as_u64)
        .and_then(|c| u32::try_from(c).ok())
    {
        Some(code) => match tern_codec::CommandStatus::from_code(code).name() {
            Some(name) => format!("0x{code:08X} {name}"),
            None => format!("0x{code:08X}"),
        },
        None => "no answer".to_owned(),
    }
}

/// "part 2" (1-based) or nothing.
fn part(value: Option<&Value>) -> String {
    value
        .and_then(Value::as_u64)
        .map_or_else(String::new, |p| format!(" part {}", p + 1))
}

/// The whole story, in the order it happened; for a submit_multi's id,
/// the submission, then each destination's own story in order.
pub fn render(m: &Value) -> String {
    let destinations = list(m, "destinations");
    if destinations.is_empty() {
        return render_message(m);
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Submission {} (submit_multi)   client {}   {} destinations",
        text(get(m, "id")),
        text(get(m, "client")),
        destinations.len(),
    );
    for (n, d) in destinations.iter().enumerate() {
        let _ = writeln!(
            out,
            "\n=== Destination {} of {}: {} ===",
            n + 1,
            destinations.len(),
            text(get(d, "destination")),
        );
        out.push_str(&render_message(d));
    }
    out
}

/// One message's story, in the order it happened: what the client sent,
/// where Tern sent it, what came back from upstream, what the client was
/// told, and how it ended.
fn render_message(m: &Value) -> String {
    let mut out = String::new();
    let accepted = get(m, "accepted_ms");
    write_header(&mut out, m);
    write_attempts(&mut out, m);
    write_parts(&mut out, m);
    write_received(&mut out, m, accepted);
    write_relayed(&mut out, m, accepted);
    write_outcome(&mut out, m);
    out
}

/// Whether the client asked for a receipt (`None`: the record does not
/// say).
fn receipt_requested(m: &Value) -> Option<bool> {
    get(m, "receipt_requested").and_then(Value::as_bool)
}

/// The message's identity and what the client asked for: ids, times and
/// whether it wants a receipt.
fn write_header(out: &mut String, m: &Value) {
    let accepted = get(m, "accepted_ms");
    let _ = writeln!(
        out,
        "Message {}   client {}   state {}",
        text(get(m, "id")),
        text(get(m, "client")),
        text(get(m, "state")),
    );
    // Shown when the client was given the id in another form (decimal).
    if let Some(client_id) = get(m, "client_id").filter(|c| Some(*c) != get(m, "id")) {
        let _ = writeln!(out, "  client's id   {}", text(Some(client_id)));
    }
    if let Some(submission) = get(m, "submission") {
        let _ = writeln!(
            out,
            "  destination   {} of submit_multi {}",
            text(get(m, "destination")),
            text(Some(submission))
        );
    }
    let _ = writeln!(out, "  accepted      {}", time(accepted));
    if let Some(expires) = get(m, "expires_ms") {
        let _ = writeln!(out, "  expires       {}", time(Some(expires)));
    }
    let wants = receipt_requested(m);
    let _ = writeln!(
        out,
        "  receipt       {}",
        match wants {
            Some(true) => "requested",
            Some(false) => "not requested",
            None => "-",
        }
    );
}

/// Each attempt: when, to which upstream, its answer and the ids the
/// upstream gave (or why it was given up).
fn write_attempts(out: &mut String, m: &Value) {
    let attempts = list(m, "attempts");
    let _ = writeln!(out, "\nRoute and attempts ({})", attempts.len());
    if attempts.is_empty() {
        let _ = writeln!(out, "  none yet: the message waits in the queue");
    }
    for (n, a) in attempts.iter().enumerate() {
        let ids = list(a, "upstream_ids");
        let ids = if ids.is_empty() {
            "no ids (not accepted)".to_owned()
        } else {
            ids.iter()
                .enumerate()
                .map(|(i, id)| format!("part {} = {}", i + 1, text(Some(id))))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let failure = get(a, "failure");
        // An attempt given up before anything was sent has no answer to show.
        let answer = match (get(a, "status"), failure) {
            (None, Some(_)) => "not answered".to_owned(),
            (code, _) => status(code),
        };
        let _ = writeln!(
            out,
            "  {}. {}  upstream {}  {answer}  upstream ids: {ids}",
            n + 1,
            time(get(a, "at_ms")),
            text(get(a, "upstream")),
        );
        if let Some(why) = failure {
            let _ = writeln!(out, "     given up: {}", text(Some(why)));
        }
    }
}

/// The parts of a split message and the receipt state of each; nothing for
/// a message sent whole.
fn write_parts(out: &mut String, m: &Value) {
    let parts = list(m, "parts");
    if !parts.is_empty() {
        let _ = writeln!(out, "\nParts ({})", parts.len());
        for (n, p) in parts.iter().enumerate() {
            let awaited = match get(p, "awaited").and_then(Value::as_bool) {
                Some(false) => "  (not awaited: the vendor reports another part)",
                _ => "",
            };
            let state = match (get(p, "outcome"), get(p, "final").and_then(Value::as_bool)) {
                (None, _) => "no receipt yet".to_owned(),
                (Some(o), Some(true)) => format!("final: {}", outcome(Some(o))),
                (Some(o), _) => format!("intermediate: {}", outcome(Some(o))),
            };
            let _ = writeln!(
                out,
                "  {}. {} {}  {state}{awaited}",
                n + 1,
                text(get(p, "upstream")),
                text(get(p, "upstream_id")),
            );
        }
    }
}

/// Every receipt the upstreams sent for the message, with the time since it
/// was accepted; when there is none, whether one is still awaited.
fn write_received(out: &mut String, m: &Value, accepted: Option<&Value>) {
    let received = list(m, "receipts_received");
    let _ = writeln!(out, "\nReceipts received ({})", received.len());
    if received.is_empty() {
        let submitted = !list(m, "attempts")
            .iter()
            .all(|a| list(a, "upstream_ids").is_empty());
        let _ = writeln!(
            out,
            "  {}",
            if submitted {
                "none yet: waiting for the upstream's receipt"
            } else {
                "none"
            }
        );
    }
    for r in received {
        let network = get(r, "network_error").map_or_else(String::new, |n| {
            format!(
                " network_error_code {}/{}",
                text(get(n, "type")),
                text(get(n, "code"))
            )
        });
        let _ = writeln!(
            out,
            "  {}{}  from {}  id {}{}  stat:{} err:{}{network}  -> {}{}",
            time(get(r, "received_ms")),
            after(get(r, "received_ms"), accepted),
            text(get(r, "upstream")),
            text(get(r, "upstream_id")),
            part(get(r, "part")),
            text(get(r, "vendor_stat")),
            text(get(r, "vendor_err")),
            canonical(get(r, "canonical")),
            match get(r, "final").and_then(Value::as_bool) {
                Some(false) => " (intermediate)",
                _ => "",
            },
        );
    }
}

/// Every receipt queued for the client and whether the client took it;
/// when there is none, why.
fn write_relayed(out: &mut String, m: &Value, accepted: Option<&Value>) {
    let relayed = list(m, "receipts_relayed");
    let _ = writeln!(out, "\nReceipts relayed to the client ({})", relayed.len());
    if relayed.is_empty() {
        let why = match (receipt_requested(m), text(get(m, "state")).as_str()) {
            (Some(false), _) => "none: the client did not ask for a receipt",
            (_, "final") => "none: the client's registered_delivery did not ask for this outcome",
            _ => "none yet: the message has not ended",
        };
        let _ = writeln!(out, "  {why}");
    }
    for r in relayed {
        let err = r
            .get("err")
            .and_then(Value::as_u64)
            .map_or_else(|| "-".to_owned(), |e| format!("{e:03}"));
        let taken = match get(r, "acked_ms") {
            Some(at) => format!(
                "taken by the client {}{}",
                time(Some(at)),
                after(Some(at), get(r, "queued_ms"))
            ),
            None => "NOT YET TAKEN: waiting in the outbox for a bound receiver".to_owned(),
        };
        let _ = writeln!(
            out,
            "  {}{}  stat:{} err:{}{}  outbox #{}  {taken}",
            time(get(r, "queued_ms")),
            after(get(r, "queued_ms"), accepted),
            text(get(r, "stat")),
            err,
            part(get(r, "part")),
            text(get(r, "outbox_seq")),
        );
    }
}

/// The message's final outcome, or that it has none yet.
fn write_outcome(out: &mut String, m: &Value) {
    let _ = writeln!(out, "\nOutcome");
    match get(m, "outcome") {
        Some(o) => {
            let _ = writeln!(
                out,
                "  {}  at {}",
                outcome(Some(o)),
                time(get(m, "updated_ms"))
            );
        }
        None => {
            let _ = writeln!(out, "  not final yet ({})", text(get(m, "state")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_section_is_rendered_and_missing_fields_print_as_dashes() {
        let message = json!({
            "id": "0000000000000007",
            "client": "acme",
            "state": "final",
            "accepted_ms": 1_700_000_000_000u64,
            "receipt_requested": true,
            "attempts": [{"upstream": "generic", "at_ms": 1_700_000_000_005u64, "status": null,
                          "upstream_ids": [],
                          "failure": "not sent, generic cannot carry it: data_coding 0x04"},
                         {"upstream": "ovh", "at_ms": 1_700_000_000_010u64, "status": 0,
                          "upstream_ids": ["A1", "A2"]}],
            "parts": [{"upstream": "ovh", "upstream_id": "A1", "awaited": true,
                       "outcome": {"stat": "DELIVRD", "err": 0, "vendor": null}, "final": true}],
            "receipts_received": [{"upstream": "ovh", "upstream_id": "a1", "part": 0,
                "vendor_stat": "DELIVRD", "vendor_err": "000",
                "canonical": {"stat": "DELIVRD", "err": 0}, "final": true,
                "received_ms": 1_700_000_001_000u64}],
            "receipts_relayed": [{"outbox_seq": 9, "part": null, "stat": "UNDELIV", "err": 27,
                "queued_ms": 1_700_000_001_005u64, "acked_ms": null}],
            "outcome": {"stat": "UNDELIV", "err": 27, "vendor": "ovh stat:UNDELIV err:003"},
        });
        let out = render(&message);
        for needle in [
            "Message 0000000000000007   client acme   state final",
            "upstream ovh  0x00000000 ESME_ROK  upstream ids: part 1 = A1, part 2 = A2",
            "upstream generic  not answered  upstream ids: no ids (not accepted)\n     given up: not sent, generic cannot carry it: data_coding 0x04",
            "1. ovh A1  final: DELIVRD err 000",
            "from ovh  id a1 part 1  stat:DELIVRD err:000  -> DELIVRD err 000",
            "stat:UNDELIV err:027  outbox #9  NOT YET TAKEN",
            "UNDELIV err 027 (ovh stat:UNDELIV err:003)",
            "2023-11-14T22:13:20.000Z",
        ] {
            assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
        }
        // A submit_multi: each destination under its own heading.
        let multi = json!({
            "id": "0000000000000007", "client": "acme",
            "destinations": [
                {"id": "0000000000000007", "destination": "34600000001", "submission": "0000000000000007", "state": "queued"},
                {"id": "0000000000000008", "destination": "34600000002", "submission": "0000000000000007", "state": "final"},
            ],
        });
        let out = render(&multi);
        for needle in [
            "Submission 0000000000000007 (submit_multi)   client acme   2 destinations",
            "=== Destination 1 of 2: 34600000001 ===",
            "=== Destination 2 of 2: 34600000002 ===\nMessage 0000000000000008   client -   state final",
            "destination   34600000002 of submit_multi 0000000000000007",
        ] {
            assert!(out.contains(needle), "{needle:?} missing from:\n{out}");
        }
        // An empty object still renders every heading.
        let out = render(&json!({}));
        assert!(out.contains("Route and attempts (0)") && out.contains("Outcome"));
    }
}
