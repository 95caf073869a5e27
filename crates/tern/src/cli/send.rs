//! `tern send`: one message, sent the way an application sends it, to check
//! a setup end to end — bind, submit, the message id, and the delivery
//! receipt that comes back for it.
//!
//! It binds as a transceiver so the receipt arrives on the same session.
//! The text goes as GSM 7-bit when every character is in the GSM default
//! alphabet, else as UCS-2; a text too long for one SMS is split into
//! concatenated parts (8-bit reference UDH), each with its own id and
//! receipt. Exit codes: 0 every part DELIVRD, 1 a part reached another final
//! state, 2 an error or the timeout (the reason is printed).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use tern_codec::pdu::{DeliverSm, SmResp, SubmitSm};
use tern_codec::receipt::{Receipt, Stat};
use tern_codec::text::{self, Concat, Encoding, Unrepresentable};
use tern_codec::{
    Address, Body, COctetString, CommandStatus, DataCoding, EsmClass, MessageState, Npi,
    RegisteredDelivery, ShortMessage, Tlv, Ton,
};
use tern_session::backoff::BackoffConfig;
use tern_session::esme::{BindParams, ConnectError, EsmeClient, UpstreamSession, UpstreamTls};
use tern_session::tls::ClientTls;
use tern_session::{Request, SessionConfig};
use tokio::time::Instant;

/// A password from the command line. Its `Debug` is redacted because clap
/// structures are `Debug` and may end up in a log or a panic message.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

fn password(raw: &str) -> Result<Password, String> {
    Ok(Password(raw.to_owned()))
}

/// `tern send`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: 0 when every part is DELIVRD, 1 when a part reached another \
                  final state (UNDELIV, EXPIRED, REJECTD…), 2 on an error or the timeout.\n\
                  Receipts for other messages of the account that arrive meanwhile are \
                  acknowledged (SMPP requires an answer) and noted on standard error."
)]
pub struct SendArgs {
    /// Destination number, international format (a leading + is dropped).
    #[arg(long)]
    pub to: String,
    /// The message text; GSM 7-bit when it fits the alphabet, else UCS-2;
    /// split into concatenated parts when too long for one SMS.
    #[arg(long)]
    pub text: String,
    /// Sender: digits for a number, anything else is sent as alphanumeric.
    #[arg(long, default_value = "TERN")]
    pub from: String,
    /// Tern's (or any SMSC's) host.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Its SMPP port.
    #[arg(long, default_value_t = 2775)]
    pub port: u16,
    /// The account to bind as.
    #[arg(long, default_value = "demo")]
    pub system_id: String,
    /// The account's password; default: $TERN_PASSWORD, else "demo".
    /// Prefer the environment: a command line is visible to other users.
    #[arg(long, value_parser = password)]
    pub password: Option<Password>,
    /// Connect with TLS (verified against the Mozilla roots and --tls-ca).
    #[arg(long)]
    pub tls: bool,
    /// Extra CA certificate (PEM) to trust with --tls, e.g. a test CA.
    #[arg(long, requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// Name to verify the certificate against, when not --host.
    #[arg(long, requires = "tls")]
    pub tls_server_name: Option<String>,
    /// Do not ask for a delivery receipt: exit once the submit is answered.
    #[arg(long)]
    pub no_receipt: bool,
    /// Give up (exit 2) when bind, submit and receipt take longer than this.
    #[arg(long, default_value = "60s", value_parser = super::parse_duration)]
    pub timeout: Duration,
}

/// Runs `tern send`.
pub fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    super::init_tool_logging();
    super::runtime()?.block_on(send(args))
}

/// One submitted part and what became of it.
struct Part {
    id: String,
    outcome: Option<Stat>,
}

async fn send(args: SendArgs) -> anyhow::Result<ExitCode> {
    let deadline = Instant::now() + args.timeout;
    let (submits, encoding) = submits(&args)?;
    let target = format!("{}:{}", args.host, args.port);
    let mut session = bind(&args, &target, deadline).await?;
    println!(
        "bound to {target} as {} (peer system_id {:?})",
        args.system_id, session.peer_system_id
    );
    let result = exchange(&args, &target, &mut session, submits, encoding, deadline).await;
    // Unbind whatever happened; a peer that does not answer gets a bounded wait.
    let _ = tokio::time::timeout(Duration::from_secs(5), session.handle.unbind()).await;
    session.handle.close();
    result
}

/// Submits every part, prints the ids, then waits for their receipts.
async fn exchange(
    args: &SendArgs,
    target: &str,
    session: &mut UpstreamSession,
    submits: Vec<SubmitSm>,
    encoding: Encoding,
    deadline: Instant,
) -> anyhow::Result<ExitCode> {
    let total = submits.len();
    println!(
        "text: {} character(s) as {}, {total} part(s)",
        args.text.chars().count(),
        if encoding == Encoding::Ucs2 {
            "UCS-2"
        } else {
            "GSM 7-bit"
        }
    );
    let mut parts = Vec::with_capacity(total);
    for (index, sm) in submits.into_iter().enumerate() {
        let answer = tokio::time::timeout_at(deadline, session.handle.request(Body::SubmitSm(sm)))
            .await
            .map_err(|_| anyhow!("no submit_sm_resp from {target} within {:?}", args.timeout))?
            .with_context(|| format!("submit_sm to {target}"))?;
        if !answer.command_status.is_ok() {
            bail!(
                "submit refused by {target}: {}{}",
                answer.command_status,
                hint(answer.command_status)
            );
        }
        let id = match &answer.body {
            Body::SubmitSmResp(SmResp { id: Some(id), .. }) if !id.to_string().is_empty() => {
                id.to_string()
            }
            _ => bail!("{target} accepted the submit but gave no message id"),
        };
        if total == 1 {
            println!("message id: {id}");
        } else {
            println!("message id (part {}/{total}): {id}", index + 1);
        }
        parts.push(Part { id, outcome: None });
    }
    if args.no_receipt {
        return Ok(ExitCode::SUCCESS);
    }
    println!("waiting for the delivery receipt(s)…");
    while parts.iter().any(|p| p.outcome.is_none()) {
        let request = match tokio::time::timeout_at(deadline, session.requests.recv()).await {
            Err(_) => {
                let missing: Vec<&str> = parts
                    .iter()
                    .filter(|p| p.outcome.is_none())
                    .map(|p| p.id.as_str())
                    .collect();
                bail!(
                    "no final receipt within {:?} for {}",
                    args.timeout,
                    missing.join(", ")
                );
            }
            Ok(None) => bail!(
                "{target} closed the session before the receipt arrived ({:?})",
                session.handle.close_reason()
            ),
            Ok(Some(request)) => request,
        };
        handle_request(request, &mut parts).await;
    }
    let delivered = parts
        .iter()
        .all(|p| matches!(p.outcome, Some(Stat::Delivered)));
    Ok(if delivered {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Answers one request from the SMSC; a receipt for one of our parts is
/// printed and recorded when it reports a final state.
async fn handle_request(request: Request, parts: &mut [Part]) {
    let Request { pdu, responder } = request;
    match pdu.body {
        Body::DeliverSm(sm) => {
            // Answer first: the SMSC keeps a receipt until it is taken.
            let _ = responder
                .respond(CommandStatus::Ok, Body::DeliverSmResp(SmResp::default()))
                .await;
            if !sm.esm_class.is_receipt() {
                eprintln!(
                    "note: MO message from {} acknowledged (not a receipt)",
                    sm.source.addr
                );
                return;
            }
            let view = ReceiptView::read(&sm);
            let Some(id) = view.id.clone() else {
                eprintln!("note: a receipt without a readable id was acknowledged");
                return;
            };
            let Some(part) = parts.iter_mut().find(|p| same_id(&p.id, &id)) else {
                eprintln!(
                    "note: receipt for another message ({id}, {}) acknowledged",
                    view.stat_text()
                );
                return;
            };
            view.print();
            if view.stat.as_ref().is_some_and(is_final) {
                part.outcome = view.stat;
            }
        }
        Body::DataSm(_) => {
            let _ = responder
                .respond(CommandStatus::Ok, Body::DataSmResp(SmResp::default()))
                .await;
        }
        _ => {
            let _ = responder.reject(CommandStatus::InvalidCommandId).await;
        }
    }
}

/// Ids compare without regard to case or surrounding blanks: some SMSCs
/// write hex ids in the other case in their receipts.
fn same_id(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

fn is_final(stat: &Stat) -> bool {
    stat.message_state()
        .is_some_and(|state| MessageState(state).is_final())
}

/// What a receipt says, read from its text and TLVs (TLVs win where both
/// carry a value, as SMPP 3.4 intends).
struct ReceiptView {
    id: Option<String>,
    stat: Option<Stat>,
    err: Option<String>,
    text: String,
    tlvs: Vec<String>,
}

impl ReceiptView {
    fn read(sm: &DeliverSm) -> Self {
        let raw = sm.short_message.as_bytes();
        let parsed = Receipt::parse(raw).ok();
        let text = String::from_utf8_lossy(raw).into_owned();
        let tlv_id = sm.tlvs.receipted_message_id().map(|raw| {
            String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_owned()
        });
        let tlv_stat = sm
            .tlvs
            .message_state()
            .and_then(|state| Stat::from_message_state(state.0));
        ReceiptView {
            id: tlv_id.or_else(|| parsed.as_ref().map(|r| r.id.clone())),
            stat: tlv_stat.or_else(|| parsed.as_ref().and_then(Receipt::status)),
            err: parsed.as_ref().and_then(|r| r.err.clone()),
            text,
            tlvs: sm.tlvs.iter().map(describe_tlv).collect(),
        }
    }

    fn stat_text(&self) -> String {
        self.stat
            .as_ref()
            .map_or_else(|| "no stat".to_owned(), |s| s.code().to_owned())
    }

    fn print(&self) {
        println!(
            "receipt for {}: stat {} err {}",
            self.id.as_deref().unwrap_or("?"),
            self.stat_text(),
            self.err.as_deref().unwrap_or("-")
        );
        if !self.text.is_empty() {
            println!("  text: {}", visible(&self.text));
        }
        if self.tlvs.is_empty() {
            println!("  TLVs: none");
        } else {
            println!("  TLVs: {}", self.tlvs.join(", "));
        }
    }
}

/// Text for a terminal: control characters (a UDH or UCS-2 octets quoted
/// in a receipt's `text:` field) shown escaped rather than sent raw.
fn visible(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// One TLV for people: the receipt TLVs by name and meaning, the rest by
/// tag with their value as text when printable, else hex.
fn describe_tlv(tlv: &Tlv) -> String {
    match tlv {
        Tlv::ReceiptedMessageId(raw) => format!(
            "receipted_message_id={}",
            String::from_utf8_lossy(raw).trim_end_matches('\0')
        ),
        Tlv::MessageState(state) => format!(
            "message_state={} ({})",
            state.0,
            Stat::from_message_state(state.0).map_or("?".to_owned(), |s| s.code().to_owned())
        ),
        Tlv::NetworkErrorCode(code) => format!(
            "network_error_code=type {} code {}",
            code.network_type, code.error_code
        ),
        Tlv::Other { tag, value } => format!("0x{tag:04X}={}", printable(value)),
        other => format!("0x{:04X}={other:?}", other.tag()),
    }
}

fn printable(value: &[u8]) -> String {
    let trimmed = value.strip_suffix(&[0]).unwrap_or(value);
    if trimmed.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        String::from_utf8_lossy(trimmed).into_owned()
    } else {
        trimmed.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// A hint for the statuses a person can act on.
fn hint(status: CommandStatus) -> &'static str {
    match status {
        CommandStatus::InvalidPassword => " — wrong password (--password or $TERN_PASSWORD)",
        CommandStatus::InvalidSystemId => " — unknown account (--system-id)",
        CommandStatus::BindFailed => {
            " — bind not allowed (source address, bind count or a lock-out)"
        }
        CommandStatus::AlreadyBound => " — already bound",
        CommandStatus::InvalidDestinationAddress => " — no route or an invalid --to",
        CommandStatus::InvalidSourceAddress => " — sender not allowed (--from)",
        CommandStatus::Throttled => " — throttled: try again later",
        _ => "",
    }
}

/// Connects (TLS if asked) and binds as a transceiver, all before `deadline`.
async fn bind(args: &SendArgs, target: &str, deadline: Instant) -> anyhow::Result<UpstreamSession> {
    let password = match &args.password {
        Some(Password(p)) => p.clone(),
        None => std::env::var("TERN_PASSWORD").unwrap_or_else(|_| "demo".to_owned()),
    };
    // Checked here so the error names the field and never echoes the value.
    if COctetString::<16>::try_from(args.system_id.as_str()).is_err() {
        bail!("--system-id must be at most 15 characters of ASCII without NUL");
    }
    if COctetString::<9>::try_from(password.as_str()).is_err() {
        bail!("the password must be at most 8 characters without NUL (SMPP limit)");
    }
    let params = BindParams::new(&args.system_id, &password)
        .map_err(|_| anyhow!("--system-id or password does not fit SMPP"))?;
    let tls = if args.tls {
        let settings = ClientTls {
            extra_ca_pem: args.tls_ca.clone(),
            server_name: args.tls_server_name.clone(),
            ..ClientTls::default()
        };
        Some(UpstreamTls {
            connector: settings.load().context("TLS settings")?,
            server_name: args.tls_server_name.clone(),
        })
    } else {
        None
    };
    let client = EsmeClient {
        host: args.host.clone(),
        port: args.port,
        tls,
        params,
        session: SessionConfig {
            response_timeout: args.timeout.min(Duration::from_secs(30)),
            ..SessionConfig::default()
        },
        // Not used: `connect` binds once and never reconnects.
        backoff: BackoffConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(1),
            multiplier: 1.0,
            jitter: 0.0,
        },
        pacer: None,
        account_window: None,
    };
    match tokio::time::timeout_at(deadline, client.connect()).await {
        Err(_) => bail!("no bind answer from {target} within {:?}", args.timeout),
        Ok(Ok(session)) => Ok(session),
        Ok(Err(ConnectError::Refused(status))) => bail!(
            "bind refused by {target} for {}: {status}{}",
            args.system_id,
            hint(status)
        ),
        Ok(Err(err)) => Err(anyhow!(err).context(format!("cannot bind to {target}"))),
    }
}

/// The submit_sm of each part: GSM 7-bit (unpacked, data_coding 0) when
/// the whole text is in the GSM alphabet, else UCS-2 (data_coding 8); a
/// long text in UDH-concatenated parts.
fn submits(args: &SendArgs) -> anyhow::Result<(Vec<SubmitSm>, Encoding)> {
    let to = args.to.trim().trim_start_matches('+');
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--to must be a phone number in international format (digits), not {to:?}");
    }
    let destination = Address::new(
        Ton::INTERNATIONAL,
        Npi::ISDN,
        COctetString::try_from(to).map_err(|e| anyhow!("--to: {e}"))?,
    );
    let from = args.from.trim().trim_start_matches('+');
    let (ton, npi) = if !from.is_empty() && from.bytes().all(|b| b.is_ascii_digit()) {
        (Ton::INTERNATIONAL, Npi::ISDN)
    } else {
        (Ton::ALPHANUMERIC, Npi::UNKNOWN)
    };
    let source = Address::new(
        ton,
        npi,
        COctetString::try_from(from).map_err(|e| anyhow!("--from: {e}"))?,
    );
    let gsm = text::unit_count(&args.text, Encoding::Gsm7Unpacked, Unrepresentable::Error).is_ok();
    let (encoding, data_coding) = if gsm {
        (Encoding::Gsm7Unpacked, DataCoding::DEFAULT)
    } else {
        (Encoding::Ucs2, DataCoding::UCS2)
    };
    // The concatenation reference only has to differ from the recipient's
    // other recent long messages; the clock's low bits are enough.
    let reference = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() >> 8) as u16;
    let parts = text::split(
        &args.text,
        encoding,
        Concat::Udh8,
        reference,
        Unrepresentable::Error,
    )
    .map_err(|e| anyhow!("--text: {e}"))?;
    let registered_delivery = if args.no_receipt {
        RegisteredDelivery::NONE
    } else {
        RegisteredDelivery::ALWAYS
    };
    let submits = parts
        .iter()
        .map(|part| {
            Ok(SubmitSm {
                source: source.clone(),
                destination: destination.clone(),
                esm_class: EsmClass::DEFAULT.with_udhi(part.udhi()),
                registered_delivery,
                data_coding,
                short_message: ShortMessage::new(part.short_message())
                    .map_err(|e| anyhow!("--text part: {e}"))?,
                ..SubmitSm::default()
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok((submits, encoding))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> SendArgs {
        SendArgs {
            to: "+34600000001".to_owned(),
            text: text.to_owned(),
            from: "TERN".to_owned(),
            host: "127.0.0.1".to_owned(),
            port: 2775,
            system_id: "demo".to_owned(),
            password: None,
            tls: false,
            tls_ca: None,
            tls_server_name: None,
            no_receipt: false,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn gsm_text_is_one_gsm_part_and_the_plus_is_dropped() {
        let (parts, encoding) = submits(&args("hello")).expect("builds");
        assert_eq!(encoding, Encoding::Gsm7Unpacked);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].data_coding, DataCoding::DEFAULT);
        assert_eq!(parts[0].destination.addr.to_string(), "34600000001");
        assert_eq!(parts[0].source.ton, Ton::ALPHANUMERIC);
        assert_eq!(parts[0].registered_delivery, RegisteredDelivery::ALWAYS);
        assert!(!parts[0].esm_class.udhi());
    }

    #[test]
    fn non_gsm_text_is_ucs2_and_long_text_is_split_with_udh() {
        let (parts, encoding) = submits(&args("Привет")).expect("builds");
        assert_eq!((encoding, parts.len()), (Encoding::Ucs2, 1));
        assert_eq!(parts[0].data_coding, DataCoding::UCS2);

        let (parts, _) = submits(&args(&"x".repeat(300))).expect("builds");
        assert_eq!(parts.len(), 2, "153 + 147 septets");
        assert!(parts.iter().all(|p| p.esm_class.udhi()));
    }

    #[test]
    fn a_destination_that_is_not_a_number_is_refused() {
        assert!(submits(&SendArgs {
            to: "nobody".to_owned(),
            ..args("hi")
        })
        .is_err());
    }

    #[test]
    fn ids_match_across_case() {
        assert!(same_id("00ab", "00AB "));
        assert!(!same_id("00ab", "00ac"));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(visible("a\u{5}b\n"), "a\\u{5}b\\n");
    }

    #[test]
    fn password_debug_is_redacted() {
        let shown = format!("{:?}", Password("hunter2".to_owned()));
        assert!(!shown.contains("hunter2"));
    }
}
