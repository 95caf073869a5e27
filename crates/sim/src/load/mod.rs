//! The load generator: an ESME that binds N sessions, keeps W submits in
//! flight on each, collects receipts, and measures.
//!
//! Each sending session gets W worker tasks (W = its window, so a worker
//! never waits for a window slot and the submit latency is the round trip
//! alone). Workers take message numbers from one shared counter until the
//! total is reached; with a rate, message `n` is not sent before
//! `start + n / rate`. Every session that can receive answers each
//! deliver_sm with deliver_sm_resp and files receipts in the book (`book.rs`).
//! The run is bounded twice: by the message count and by an overall
//! deadline; after the last answer it waits for receipts at most
//! `receipt_wait`.
//!
//! Files: `message` (the submit_sm), `book` (receipt matching), `latency`
//! (percentiles), `report`.

mod book;
mod latency;
mod message;
mod report;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tern_codec::pdu::{DeliverSm, SmResp};
use tern_codec::receipt::Receipt;
use tern_codec::{Body, CommandStatus};
use tern_session::esme::{self, BindParams, ConnectError};
use tern_session::{BindType, Request, RequestError, Requests, SessionConfig, SessionHandle};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::debug;

pub use latency::LatencySummary;
pub use report::{LoadReport, StopReason};

use book::Book;
use latency::Samples;

/// The text coding of the messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TextCoding {
    /// GSM 03.38, one septet per octet (data_coding 0).
    #[default]
    Gsm7,
    /// UCS-2 (data_coding 8).
    Ucs2,
}

impl TextCoding {
    fn name(self) -> &'static str {
        match self {
            TextCoding::Gsm7 => "gsm7",
            TextCoding::Ucs2 => "ucs2",
        }
    }
}

/// How to load an SMSC.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The SMSC.
    pub addr: SocketAddr,
    /// Further addresses of the same SMSC: session `i` (senders first, then
    /// receivers) binds to the `i`-th of `[addr, more_addrs…]`, round
    /// robin. For a service reached through several front ends, such as
    /// several Tern nodes sharing one store: the receipt book is shared by
    /// all sessions, so a receipt counts whichever session it arrives on.
    /// Empty: every session binds to `addr`.
    pub more_addrs: Vec<SocketAddr>,
    /// Bind credentials.
    pub system_id: String,
    /// Bind credentials.
    pub password: String,
    /// Sending sessions.
    pub sessions: usize,
    /// How the sending sessions bind: transceiver (default) also receives
    /// receipts; transmitter needs `receivers` for them.
    pub bind_type: BindType,
    /// Extra receiver sessions, for receipts with transmitter binds.
    pub receivers: usize,
    /// Submits in flight per sending session.
    pub window: usize,
    /// Messages to send in all.
    pub messages: u64,
    /// The whole run, binds included, ends by this time at the latest.
    pub deadline: Duration,
    /// Messages per second over all sessions; `None` for as fast as
    /// answers come.
    pub rate: Option<u32>,
    /// Text coding.
    pub coding: TextCoding,
    /// Characters per message.
    pub text_len: usize,
    /// Ask for a receipt for every message and wait for them.
    pub registered_delivery: bool,
    /// After the last answer, how long to wait for missing receipts.
    pub receipt_wait: Duration,
    /// source_addr of the messages.
    pub source: String,
    /// destination_addr of the messages.
    pub destination: String,
    /// Settings of every session (`window` is taken from above).
    pub session: SessionConfig,
}

impl LoadConfig {
    /// One transceiver session, window 10, 1,000 GSM messages of 40
    /// characters without receipts, 60 s deadline, to `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            more_addrs: Vec::new(),
            system_id: "load".to_owned(),
            password: "load".to_owned(),
            sessions: 1,
            bind_type: BindType::Transceiver,
            receivers: 0,
            window: 10,
            messages: 1_000,
            deadline: Duration::from_secs(60),
            rate: None,
            coding: TextCoding::Gsm7,
            text_len: 40,
            registered_delivery: false,
            receipt_wait: Duration::from_secs(10),
            source: "Tern".to_owned(),
            destination: "34600000001".to_owned(),
            session: SessionConfig {
                enquire_link_interval: None,
                ..SessionConfig::default()
            },
        }
    }

    fn validate(&self) -> Result<(), LoadError> {
        let invalid = |field, reason: &str| {
            Err(LoadError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.sessions == 0 {
            return invalid("sessions", "at least one sending session is needed");
        }
        if self.window == 0 {
            return invalid("window", "must be at least 1");
        }
        if self.bind_type == BindType::Receiver {
            return invalid("bind_type", "sending sessions cannot bind as receivers");
        }
        if self.rate == Some(0) {
            return invalid("rate", "must be at least 1 message per second");
        }
        if self.registered_delivery
            && self.bind_type == BindType::Transmitter
            && self.receivers == 0
        {
            return invalid(
                "receivers",
                "receipts with transmitter binds need at least one receiver session",
            );
        }
        Ok(())
    }

    /// Where session `index` binds: round robin over `addr` and
    /// `more_addrs`.
    fn target(&self, index: usize) -> SocketAddr {
        (index % (1 + self.more_addrs.len()))
            .checked_sub(1)
            .and_then(|i| self.more_addrs.get(i))
            .copied()
            .unwrap_or(self.addr)
    }
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A setting is out of range.
    #[error("{field}: {reason}")]
    Invalid {
        /// Which setting.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The text cannot be written in the coding.
    #[error("message text: {0}")]
    Text(#[from] tern_codec::text::TextError),
    /// A session could not connect or bind.
    #[error("session {index}: {source}")]
    Bind {
        /// Which session (0-based; receivers follow the senders).
        index: usize,
        /// Why.
        source: ConnectError,
    },
    /// Binding took past the deadline.
    #[error("binding did not finish before the deadline")]
    Deadline,
}

/// What every worker shares.
struct Plan {
    body: Body,
    messages: u64,
    next: AtomicU64,
    start: Instant,
    deadline: Instant,
    rate: Option<u32>,
    registered_delivery: bool,
    book: Arc<Book>,
}

/// One worker's measurements.
#[derive(Default)]
struct Tally {
    latencies: Samples,
    statuses: BTreeMap<u32, u64>,
    submitted: u64,
    timeouts: u64,
    unanswered: u64,
    first_sent: Option<Instant>,
    last_answer: Option<Instant>,
    hit_deadline: bool,
}

/// Runs a load test to its end (all messages answered and receipts in, or
/// the deadline) and reports.
pub async fn run(config: LoadConfig) -> Result<LoadReport, LoadError> {
    config.validate()?;
    let body = message::submit(&config)?;
    let start = Instant::now();
    let deadline = start + config.deadline;

    let mut session_config = config.session.clone();
    session_config.window = config.window;
    let mut senders = Vec::with_capacity(config.sessions);
    let mut listeners = Vec::new();
    let book = Arc::new(Book::default());
    let stop = CancellationToken::new();
    let kinds = std::iter::repeat_n(config.bind_type, config.sessions)
        .chain(std::iter::repeat_n(BindType::Receiver, config.receivers));
    for (index, bind_type) in kinds.enumerate() {
        let bound =
            tokio::time::timeout_at(deadline, bind(&config, index, bind_type, &session_config))
                .await
                .map_err(|_| LoadError::Deadline)?
                .map_err(|source| LoadError::Bind { index, source })?;
        if bind_type.can_send() {
            senders.push(bound.handle.clone());
        }
        listeners.push((
            bound.handle.clone(),
            tokio::spawn(listen(bound.requests, book.clone(), stop.clone())),
        ));
    }

    let plan = Arc::new(Plan {
        body,
        messages: config.messages,
        next: AtomicU64::new(0),
        start: Instant::now(),
        deadline,
        rate: config.rate,
        registered_delivery: config.registered_delivery,
        book: book.clone(),
    });
    let workers: Vec<_> = senders
        .iter()
        .flat_map(|handle| std::iter::repeat_n(handle, config.window))
        .map(|handle| tokio::spawn(work(handle.clone(), plan.clone())))
        .collect();
    let mut tally = Tally::default();
    // A worker that panicked measured nothing; the counts show the gap.
    for t in join_all(workers).await.into_iter().flatten() {
        merge(&mut tally, t);
    }

    let accepted = tally.statuses.get(&0).copied().unwrap_or(0);
    let expected = if config.registered_delivery {
        accepted
    } else {
        0
    };
    let all_sent =
        plan.next.load(Ordering::Relaxed) >= config.messages && tally.submitted >= config.messages;
    let receipts_in = book
        .wait_for(expected, deadline.min(Instant::now() + config.receipt_wait))
        .await;
    // Unbind while the listeners still answer what arrives meanwhile; an
    // unbind waits for requests in flight, so it too ends by the deadline.
    let handles: Vec<SessionHandle> = listeners.iter().map(|(h, _)| h.clone()).collect();
    let unbinds = join_all(handles.iter().map(SessionHandle::unbind));
    let _ = tokio::time::timeout_at(deadline, unbinds).await;
    handles.iter().for_each(SessionHandle::close);
    stop.cancel();
    for (_, listener) in listeners {
        let _ = listener.await;
    }

    let end = Instant::now();
    let stopped_by = if tally.hit_deadline || (!receipts_in && end >= deadline) {
        StopReason::Deadline
    } else if !all_sent {
        StopReason::SessionsLost
    } else if !receipts_in {
        StopReason::ReceiptWait
    } else {
        StopReason::Completed
    };
    let (receipt_latencies, matched, unmatched, mo, last_receipt) = book.close();
    let first = tally.first_sent.unwrap_or(plan.start);
    let secs = |from: Instant, to: Option<Instant>| {
        to.map_or(0.0, |to| to.saturating_duration_since(from).as_secs_f64())
    };
    let per_second = |count: u64, secs: f64| if secs > 0.0 { count as f64 / secs } else { 0.0 };
    let answered: u64 = tally.statuses.values().sum();
    let submit_phase_s = secs(first, tally.last_answer);
    let receipt_phase_s = secs(first, last_receipt);
    let errors = tally
        .statuses
        .iter()
        .filter(|(code, _)| **code != 0)
        .map(|(code, count)| (status_name(*code), *count))
        .collect();
    Ok(LoadReport {
        sessions: config.sessions,
        window: config.window,
        messages: config.messages,
        registered_delivery: config.registered_delivery,
        coding: config.coding.name().to_owned(),
        text_len: config.text_len,
        submitted: tally.submitted,
        accepted,
        refused: answered - accepted,
        timeouts: tally.timeouts,
        unanswered: tally.unanswered,
        errors,
        receipts_expected: expected,
        receipts_matched: matched,
        receipts_unmatched: unmatched,
        mo_received: mo,
        elapsed_s: secs(first, Some(end)),
        submit_phase_s,
        submits_per_s: per_second(answered, submit_phase_s),
        receipts_per_s: per_second(matched, receipt_phase_s),
        submit_latency: tally.latencies.summary(),
        receipt_latency: receipt_latencies.summary(),
        stopped_by,
    })
}

fn status_name(code: u32) -> String {
    let status = CommandStatus::from_code(code);
    status
        .name()
        .map_or_else(|| format!("0x{code:08X}"), str::to_owned)
}

fn merge(into: &mut Tally, t: Tally) {
    into.latencies.extend(t.latencies);
    for (code, count) in t.statuses {
        *into.statuses.entry(code).or_insert(0) += count;
    }
    into.submitted += t.submitted;
    into.timeouts += t.timeouts;
    into.unanswered += t.unanswered;
    into.first_sent = match (into.first_sent, t.first_sent) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    into.last_answer = into.last_answer.max(t.last_answer);
    into.hit_deadline |= t.hit_deadline;
}

/// Connects and binds session `index` (to its round-robin target).
async fn bind(
    config: &LoadConfig,
    index: usize,
    bind_type: BindType,
    session: &SessionConfig,
) -> Result<esme::UpstreamSession, ConnectError> {
    let target = config.target(index);
    let (stream, addr) = esme::connect_tcp(&target.ip().to_string(), target.port()).await?;
    let mut params = BindParams::new(&config.system_id, &config.password).map_err(|err| {
        ConnectError::Connect {
            host: target.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, err.to_string()),
        }
    })?;
    params.bind_type = bind_type;
    esme::bind(stream, Some(addr), &params, session.clone()).await
}

/// Sends messages until the count or the deadline; measures each answer.
async fn work(handle: SessionHandle, plan: Arc<Plan>) -> Tally {
    let mut tally = Tally::default();
    loop {
        let n = plan.next.fetch_add(1, Ordering::Relaxed);
        if n >= plan.messages {
            break;
        }
        if let Some(rate) = plan.rate {
            let due = plan.start + Duration::from_secs_f64(n as f64 / f64::from(rate));
            if due >= plan.deadline {
                tally.hit_deadline = true;
                break;
            }
            tokio::time::sleep_until(due).await;
        }
        let sent = Instant::now();
        if sent >= plan.deadline {
            tally.hit_deadline = true;
            break;
        }
        tally.first_sent.get_or_insert(sent);
        tally.submitted += 1;
        let answer = tokio::select! {
            answer = handle.request(plan.body.clone()) => answer,
            () = tokio::time::sleep_until(plan.deadline) => {
                tally.hit_deadline = true;
                tally.unanswered += 1;
                break;
            }
        };
        let now = Instant::now();
        match answer {
            Ok(resp) => {
                tally.latencies.record(now - sent);
                tally.last_answer = Some(now);
                *tally
                    .statuses
                    .entry(resp.command_status.code())
                    .or_insert(0) += 1;
                if plan.registered_delivery && resp.command_status.is_ok() {
                    if let Body::SubmitSmResp(SmResp { id: Some(id), .. }) = &resp.body {
                        plan.book.submitted(&id.to_string(), sent);
                    }
                }
            }
            Err(RequestError::Timeout { .. }) => tally.timeouts += 1,
            Err(err) => {
                debug!(%err, "session lost; worker stops");
                tally.unanswered += 1;
                break;
            }
        }
    }
    tally
}

/// Answers the SMSC's requests on one session until stopped: receipts are
/// filed in the book, MO counted, every deliver_sm acknowledged.
async fn listen(mut requests: Requests, book: Arc<Book>, stop: CancellationToken) {
    loop {
        let request = tokio::select! {
            request = requests.recv() => request,
            () = stop.cancelled() => None,
        };
        let Some(Request { pdu, responder }) = request else {
            return;
        };
        match &pdu.body {
            Body::DeliverSm(sm) => {
                let arrived = Instant::now();
                // Answer before filing: once the last receipt is filed the
                // run unbinds, and the answer must be queued ahead of the
                // unbind or the SMSC would count the receipt unanswered.
                let _ = responder
                    .respond(CommandStatus::Ok, Body::DeliverSmResp(SmResp::default()))
                    .await;
                if sm.esm_class.is_receipt() {
                    match receipt_id(sm) {
                        Some(id) => book.receipt(&id, arrived),
                        None => debug!("receipt without a readable id"),
                    }
                } else {
                    book.mo();
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
}

/// The message id a receipt is about: the `receipted_message_id` TLV when
/// present (TLVs win over text), else the text's `id:`.
fn receipt_id(sm: &DeliverSm) -> Option<String> {
    if let Some(raw) = sm.tlvs.receipted_message_id() {
        return Some(String::from_utf8_lossy(raw).into_owned());
    }
    Receipt::parse(sm.short_message.as_bytes())
        .ok()
        .map(|r| r.id)
}
