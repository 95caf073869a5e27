//! Client sessions: what clients submit becomes durable before it is
//! answered (store-and-forward), query_sm is answered from the store, and
//! cancel_sm and replace_sm change a message only while it still waits in
//! Tern's queue (scheduled for later, or waiting for a retry): once it may
//! have reached an upstream, Tern cannot take it back and says so.
//! Never waits for an upstream.

use std::sync::Arc;

use tern_codec::pdu::{CancelSm, QuerySmResp, ReplaceSm, SmResp, SubmitSm};
use tern_codec::tlv::tags;
use tern_codec::{
    Body, COctetString, CommandStatus, MessageState, Pdu, ReceiptRequest, TimeString, Tlv,
};
use tern_router::receipt::{client_submit, stored_outcome};
use tern_router::{Canonical, Class, FinalState, Reason};
use tern_session::smsc::BoundSession;
use tern_storage::{
    now_ms, MessageRecord, NewMessage, QueuedChange, Replacement, State, StoreError, TernId,
};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tracing::{info, Instrument};

use super::data_sm;
use super::multi;
use super::node::{ClientSession, Node};
use super::receipts::queue_receipt;
use super::transaction::Verdict;

/// The intake stage: every bound client session and the submits it
/// stores, on one tracker it owns.
#[derive(Debug)]
pub struct Intake {
    node: Arc<Node>,
    tasks: TaskTracker,
}

impl Intake {
    /// Intake into `node`.
    pub fn new(node: Arc<Node>) -> Self {
        Self {
            node,
            tasks: TaskTracker::new(),
        }
    }

    /// Serves a session that bound, until it ends.
    pub fn serve(&self, bound: BoundSession) {
        let tasks = self.tasks.clone();
        self.tasks
            .spawn(serve_client(self.node.clone(), bound, tasks));
    }

    /// Shutdown, first stage: the listeners unbind every client session;
    /// each session's submits finish storing and are answered before its
    /// task ends. Waits up to `deadline` for them.
    pub async fn drain(self, deadline: std::time::Duration) {
        let until = std::time::Instant::now() + deadline;
        self.tasks.close();
        if tokio::time::timeout_at(until.into(), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("client sessions still open after {deadline:?}; going on");
        }
    }
}

/// Serves one bound client session until it ends; its submits run on
/// `tasks`, so shutdown can wait until each is stored and answered.
async fn serve_client(node: Arc<Node>, mut bound: BoundSession, tasks: TaskTracker) {
    // Held MO parts go out at their deadline from now on (see `mo`).
    node.add_client(ClientSession {
        account: bound.account.clone(),
        credential: bound.credential,
        bind_type: bound.bind_type,
        handle: bound.handle.clone(),
    });
    let span = bound.handle.span().clone();
    let in_flight = Arc::new(Semaphore::new(SUBMITS_IN_FLIGHT));
    while let Some(request) = bound.requests.recv().await {
        let pdu = request.pdu;
        let responder = request.responder;
        match &pdu.body {
            Body::SubmitSm(_) | Body::DataSm(_) => {
                let (pdu, answer) = match pdu.body {
                    Body::DataSm(data) => match data_sm::as_submit(data, now_ms()) {
                        Ok(sm) => (
                            Pdu::new(pdu.sequence_number, Body::SubmitSm(sm)),
                            Body::DataSmResp as fn(SmResp) -> Body,
                        ),
                        Err(status) => {
                            let _ = responder.reject(status).await;
                            continue;
                        }
                    },
                    body => (Pdu::new(pdu.sequence_number, body), Body::SubmitSmResp as _),
                };
                // Concurrently, so one flush serves many submits (group
                // commit); responses correlate by sequence number, so their
                // order does not matter. Bounded per session.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (node, account) = (node.clone(), bound.account.clone());
                tasks.spawn(
                    async move {
                        // Boxed, so the task stays small (see dispatch).
                        Box::pin(submit(&node, &account, pdu, responder, answer)).await;
                        drop(permit);
                    }
                    .instrument(span.clone()),
                );
            }
            Body::QuerySm(query) => {
                let answer = query_answer(
                    &node,
                    &bound.account,
                    query.message_id.to_str().unwrap_or(""),
                )
                .await;
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
            Body::CancelSm(_) | Body::ReplaceSm(_) => {
                // Each is one store write: concurrently, like submits, so
                // the session goes on reading while it is flushed.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (node, account) = (node.clone(), bound.account.clone());
                tasks.spawn(
                    async move {
                        let (status, ok) = match &pdu.body {
                            Body::CancelSm(c) => {
                                (cancel(&node, &account, c).await, Body::CancelSmResp)
                            }
                            Body::ReplaceSm(r) => {
                                (replace(&node, &account, r).await, Body::ReplaceSmResp)
                            }
                            // Not reached: this arm takes only the two above.
                            _ => (CommandStatus::InvalidCommandId, Body::GenericNack),
                        };
                        let _ = if status.is_ok() {
                            responder.respond(status, ok).await
                        } else {
                            responder.reject(status).await
                        };
                        drop(permit);
                    }
                    .instrument(span.clone()),
                );
            }
            Body::SubmitMulti(_) => {
                // Like a submit: concurrently, bounded per session.
                let Ok(permit) = in_flight.clone().acquire_owned().await else {
                    break;
                };
                let (node, account) = (node.clone(), bound.account.clone());
                tasks.spawn(
                    async move {
                        if let Body::SubmitMulti(m) = &pdu.body {
                            multi::submit_multi(&node, &account, pdu.sequence_number, m, responder)
                                .await;
                        }
                        drop(permit);
                    }
                    .instrument(span.clone()),
                );
            }
            _ => {
                let _ = responder.reject(CommandStatus::InvalidCommandId).await;
            }
        }
    }
}

/// Submits (and cancels, replaces) of one session being stored at once.
const SUBMITS_IN_FLIGHT: usize = 512;

/// Stores one submit_sm and answers it with Tern's id, in the response
/// `answer` makes (submit_sm_resp, or data_sm_resp for a data_sm taken as
/// a submit_sm).
async fn submit(
    node: &Node,
    account: &str,
    pdu: tern_codec::Pdu,
    responder: tern_session::Responder,
    answer: fn(SmResp) -> Body,
) {
    match store_submit(node, account, &pdu, None).await {
        Ok(stored) => {
            let id = stored.id_format.render(stored.id);
            let id = COctetString::try_from(id.as_str()).unwrap_or_default();
            let _ = responder
                .respond(CommandStatus::Ok, answer(SmResp::with_id(id)))
                .await;
            super::crash::point("intake.after_resp");
        }
        Err(status) => {
            let _ = responder.reject(status).await;
        }
    }
}

/// A client's submit_sm once durable: its id (the first one's for a
/// duplicate) and the form the client is shown ids in, read once with the
/// write so the record and the answer agree.
pub(super) struct Stored {
    pub id: TernId,
    pub id_format: tern_storage::IdFormat,
}

/// The one way a client's submit_sm (`pdu`) becomes durable, whether it
/// came over SMPP or the HTTP API, so both are checked, routed and stored
/// alike by construction: a destination that is no number, or that no
/// route of `account` reaches, is refused with the status an SMPP client
/// hears; then one durable write (with the duplicate-protection key
/// `dedup`, if any), the dispatcher woken, and in transaction mode the
/// upstream's verdict awaited (not for a duplicate: the first had its
/// own). Records the submit metrics of every outcome. `Err` is the SMPP
/// status to refuse with.
pub(super) async fn store_submit(
    node: &Node,
    account: &str,
    pdu: &Pdu,
    dedup: Option<(bytes::Bytes, std::time::Duration)>,
) -> Result<Stored, CommandStatus> {
    let Body::SubmitSm(sm) = &pdu.body else {
        return Err(CommandStatus::InvalidCommandId);
    };
    let started = std::time::Instant::now();
    let refuse = |status: CommandStatus| {
        node.metrics()
            .submit(account, status.name().unwrap_or("vendor"));
        status
    };
    // A destination that is no number at all could never be sent: the
    // client hears it now, not from a failure receipt later (the same
    // check a submit_multi's destinations meet).
    if tern_router::adapt::check_destination(&sm.destination).is_err() {
        return Err(refuse(CommandStatus::InvalidDestinationAddress));
    }
    let routing = node.routing();
    if !routing.router.has_route(account, sm) {
        return Err(refuse(routing.router.config().no_route_status));
    }
    drop(routing);
    let now = now_ms();
    let at = |t: &TimeString| {
        t.parse()
            .and_then(Result::ok)
            .and_then(|t| t.to_unix_millis(now as i64).ok())
            .map(|ms| ms.max(0) as u64)
    };
    // Read once: the record keeps the id form, and the answer must agree.
    let terms = node.submit_terms(account);
    let id_format = terms.id_format;
    let message = NewMessage {
        client: account.to_owned(),
        pdu: pdu.to_bytes(),
        receipt_requested: sm.registered_delivery.receipt() != ReceiptRequest::None,
        not_before_ms: at(&sm.schedule_delivery_time).map_or(now, |ms| ms.max(now)),
        expires_ms: at(&sm.validity_period),
        dedup,
        id_format,
    };
    let writing = std::time::Instant::now();
    let stored = node.store().accept(message, now).await;
    node.metrics().observe_store_write(writing.elapsed());
    let accepted = stored.map_err(|err| {
        let status = refusal_status(&err);
        tern_session::warn_limited!("store refused a message", %err, client = account, %status);
        refuse(status)
    })?;
    super::crash::point("intake.after_accept");
    let status = match terms.transaction {
        _ if accepted.duplicate => CommandStatus::Ok,
        None => {
            node.dispatch().wake();
            CommandStatus::Ok
        }
        Some(timeout) => transaction_status(node, accepted.id, timeout).await,
    };
    node.metrics()
        .submit(account, status.name().unwrap_or("vendor"));
    node.metrics().observe_submit(started.elapsed());
    tracing::debug!(id = %accepted.id, client = account, %status, "accepted");
    if status.is_ok() {
        Ok(Stored {
            id: accepted.id,
            id_format,
        })
    } else {
        Err(status)
    }
}

/// What a submit the store refused is answered: ESME_RMSGQFUL when the
/// store is out of space (temporary: the client keeps the message and
/// tries again later, and the first write after space returns succeeds),
/// ESME_RSYSERR for any other failure. Shared with the daemon's other
/// submits (submit_multi) so they all answer alike.
pub(super) fn refusal_status(err: &StoreError) -> CommandStatus {
    match err {
        StoreError::Full { .. } => CommandStatus::MessageQueueFull,
        _ => CommandStatus::SystemError,
    }
}

/// Transaction mode: waits for the upstream's verdict on the stored
/// message `id` (see `transaction`) and says what to answer. On a shared
/// store another node may send it and hand no verdict here, so the store
/// is looked at every [`CLUSTER_POLL`] too.
pub(super) async fn transaction_status(
    node: &Node,
    id: TernId,
    timeout: std::time::Duration,
) -> CommandStatus {
    let waiting = node.transactions().wait_for(id);
    node.dispatch().wake();
    let settled = || async {
        matches!(
            node.store().get(id).await,
            Ok(Some(record)) if matches!(record.state, State::Submitted | State::Final)
        )
    };
    let poll = node.cluster().map(|_| CLUSTER_POLL);
    match node
        .transactions()
        .wait(id, waiting, timeout, poll, settled)
        .await
    {
        Some(Verdict::Refused(status)) => status,
        Some(Verdict::Sent) | None => CommandStatus::Ok,
    }
}

/// How often a transaction-mode submit on a shared store looks whether
/// another node sent its message.
const CLUSTER_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// query_sm from the store: only the account's own messages. The id is
/// read in either form, and answered in the account's. A submit_multi's id
/// answers for all its destinations (see [`multi::aggregate_state`]).
async fn query_answer(node: &Node, account: &str, id: &str) -> Option<QuerySmResp> {
    let id = node.client_id(account, id).await?;
    let record = node.store().get(id).await.ok()??;
    if record.client != account {
        return None;
    }
    let members = multi::client_messages(&record)?;
    let (state, error_code) = if members.len() > 1 {
        multi::aggregate_state(node, &members).await
    } else {
        let (state, error_code, _) = record_state(&record);
        (state, error_code)
    };
    Some(QuerySmResp {
        message_id: COctetString::try_from(record.id_format.render(id).as_str())
            .unwrap_or_default(),
        final_date: TimeString::empty(),
        message_state: state,
        error_code,
    })
}

/// One message's query_sm state and error code, and whether it is final.
pub(super) fn record_state(record: &MessageRecord) -> (MessageState, u8, bool) {
    let state = match (&record.state, &record.outcome) {
        (State::Final, Some(outcome)) => outcome
            .stat
            .parse::<FinalState>()
            .map_or(MessageState::UNKNOWN, |s| MessageState(s.message_state())),
        _ => MessageState::ENROUTE,
    };
    let error_code = record.outcome.as_ref().map_or(0, |o| o.err.min(255) as u8);
    (state, error_code, record.state == State::Final)
}

/// How a message a client cancelled ends: DELETED (SMPP 3.4 message_state
/// 4), with no error, since nothing failed: the client asked.
const CANCELLED: Canonical = Canonical {
    state: FinalState::Deleted,
    reason: Reason::None,
    class: Class::Permanent,
};

/// Messages one cancel_sm by addresses ends at most.
const CANCEL_BY_ADDRESS_LIMIT: usize = 10_000;

/// Whether a message may already be at an upstream: an attempt was
/// accepted, or went unanswered (the upstream may have taken it all the
/// same). Such a message is neither cancelled nor replaced, even while it
/// waits for a retry: Tern could not take back the copy out there. A try
/// that found no upstream available sent nothing, so it does not count:
/// a message held while its upstreams are down can still be cancelled.
fn possibly_sent(record: &MessageRecord) -> bool {
    record.attempts.iter().any(|a| {
        a.upstream != super::dispatch::NO_UPSTREAM
            && (a.status.is_none() || !a.upstream_ids.is_empty())
    })
}

/// Whether `given` (a cancel or replace address) allows `submitted`: empty
/// means "not known" (SMPP 3.4 §4.9.1, §4.10.1) and allows any; otherwise
/// the digits must be the same (TON and NPI are not compared: clients set
/// them inconsistently, and the account already scopes the search).
fn same_address(given: &COctetString<21>, submitted: &COctetString<21>) -> bool {
    given.is_empty() || given == submitted
}

/// The message id of a cancel or replace, when it is one Tern could have
/// given, in either form (the account's first, see [`Node::client_id`]);
/// `None` answers ESME_RINVMSGID.
async fn well_formed_id(node: &Node, account: &str, id: &COctetString<65>) -> Option<TernId> {
    node.client_id(account, id.to_str()?).await
}

/// cancel_sm (SMPP 3.4 §4.9). With a message_id: that message, if it is
/// the account's own, its source matches (when given) and it still waits
/// in Tern's queue. Without one: every waiting message of the account to
/// the given destination (required), from the given source and with the
/// given service_type when those are set. Cancelled messages end DELETED
/// and get a receipt when their submit asked for one.
///
/// Statuses: ESME_ROK when something was cancelled; ESME_RINVMSGID for an
/// id Tern could not have given; ESME_RINVDSTADR for a cancel by addresses
/// without a destination; ESME_RCANCELFAIL for everything else — unknown
/// id, another account's message (indistinguishable from an unknown one, so
/// ids of other accounts are not revealed), a message already being sent,
/// sent, or final, or no waiting message matching the addresses.
async fn cancel(node: &Node, account: &str, cancel: &CancelSm) -> CommandStatus {
    let outcome = stored_outcome(&CANCELLED, None);
    let now = now_ms();
    let ended = if cancel.message_id.is_empty() {
        if cancel.destination.addr.is_empty() {
            return CommandStatus::InvalidDestinationAddress;
        }
        let matches = |record: &MessageRecord| {
            record.client == account
                && !possibly_sent(record)
                && client_submit(record).is_some_and(|sm| {
                    same_address(&cancel.source.addr, &sm.source.addr)
                        && cancel.destination.addr == sm.destination.addr
                        && (cancel.service_type.is_empty()
                            || cancel.service_type == sm.service_type)
                })
        };
        node.store()
            .cancel_queued_matching(matches, outcome, now, CANCEL_BY_ADDRESS_LIMIT)
            .await
    } else {
        let Some(id) = well_formed_id(node, account, &cancel.message_id).await else {
            return CommandStatus::InvalidMessageId;
        };
        // A submit_multi's id stands for each of its destinations.
        let messages = match node.store().get(id).await {
            Ok(Some(record)) if record.client == account => {
                multi::client_messages(&record).unwrap_or_default()
            }
            Ok(_) => Vec::new(),
            Err(err) => {
                tern_session::warn_limited!("store refused a cancel; answering ESME_RSYSERR", %err);
                return CommandStatus::SystemError;
            }
        };
        let (mut done, mut failure) = (Vec::new(), None);
        for message in messages {
            let accept = |record: &MessageRecord| {
                record.client == account
                    && record.client_id() == id
                    && !possibly_sent(record)
                    && client_submit(record).is_some_and(|sm| {
                        same_address(&cancel.source.addr, &sm.source.addr)
                            && same_address(&cancel.destination.addr, &sm.destination.addr)
                    })
            };
            // The store's rule: one task at a time updates a message.
            let _held = node.lock_message(message).await;
            match node
                .store()
                .cancel_queued(message, accept, outcome.clone(), now)
                .await
            {
                Ok(QueuedChange::Done(record)) => done.push(*record),
                Ok(_) => {}
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
        }
        // What was cancelled before a store error stays cancelled and
        // still gets its receipt below.
        match failure {
            Some(err) if done.is_empty() => Err(err),
            Some(err) => {
                tern_session::warn_limited!(
                    "store refused cancelling a destination; the others are cancelled",
                    %err,
                    %id
                );
                Ok(done)
            }
            None => Ok(done),
        }
    };
    let ended = match ended {
        Ok(ended) => ended,
        Err(err) => {
            tern_session::warn_limited!("store refused a cancel; answering ESME_RSYSERR", %err);
            return CommandStatus::SystemError;
        }
    };
    if ended.is_empty() {
        return CommandStatus::CancelFailed;
    }
    for record in &ended {
        info!(id = %record.id, client = account, "cancelled by the client");
        if let Err(err) = queue_receipt(node, record, &CANCELLED, None).await {
            // The cancel itself is stored; only its receipt is missing.
            tern_session::warn_limited!("cancelled, but its receipt could not be stored", %err, id = %record.id);
        }
    }
    CommandStatus::Ok
}

/// replace_sm (SMPP 3.4 §4.10) on a message of the account that still
/// waits in Tern's queue and whose source matches (when given): the new
/// short_message (or message_payload, which SMPP 5.0 allows here),
/// registered_delivery and sm_default_msg_id replace the old ones; a
/// schedule_delivery_time or validity_period left empty keeps the old
/// one. The id stays; esm_class and data_coding, which replace_sm does
/// not carry, stay as submitted.
///
/// Statuses: ESME_ROK; ESME_RINVMSGID for an id Tern could not have
/// given; ESME_RINVSCHED / ESME_RINVEXPIRY for a time that does not parse;
/// ESME_RREPLACEFAIL for an unknown id, another account's message, or one
/// already being sent, sent or final.
async fn replace(node: &Node, account: &str, replace: &ReplaceSm) -> CommandStatus {
    let Some(id) = well_formed_id(node, account, &replace.message_id).await else {
        return CommandStatus::InvalidMessageId;
    };
    let now = now_ms();
    // The times are read before the store is touched: a bad one is the
    // client's mistake, whatever the message's state.
    let schedule = match time_ms(&replace.schedule_delivery_time, now) {
        Ok(at) => at.map(|ms| ms.max(now)),
        Err(()) => return CommandStatus::InvalidScheduleTime,
    };
    let validity = match time_ms(&replace.validity_period, now) {
        Ok(at) => at,
        Err(()) => return CommandStatus::InvalidExpiry,
    };
    let change = |record: &MessageRecord| -> Option<Replacement> {
        // A submit_multi's destinations are not replaced: replace_sm
        // names one message, and its id names them all.
        if record.client != account || possibly_sent(record) || record.multi.is_some() {
            return None;
        }
        let stored = Pdu::decode(record.pdu.clone()).ok()?;
        let Body::SubmitSm(sm) = stored.body else {
            return None;
        };
        if !same_address(&replace.source.addr, &sm.source.addr) {
            return None;
        }
        let sm = replaced(sm, replace)?;
        Some(Replacement {
            pdu: Pdu::new(stored.sequence_number, Body::SubmitSm(sm)).to_bytes(),
            receipt_requested: replace.registered_delivery.receipt() != ReceiptRequest::None,
            not_before_ms: schedule.unwrap_or(record.not_before_ms),
            expires_ms: validity.or(record.expires_ms),
        })
    };
    let _held = node.lock_message(id).await;
    match node.store().replace_queued(id, change, now).await {
        Ok(QueuedChange::Done(_)) => {
            info!(%id, client = account, "replaced by the client");
            // A new schedule may make it due now.
            node.dispatch().wake();
            CommandStatus::Ok
        }
        Ok(_) => CommandStatus::ReplaceFailed,
        Err(err) => {
            tern_session::warn_limited!("store refused a replace; answering ESME_RSYSERR", %err);
            CommandStatus::SystemError
        }
    }
}

/// The submit as replace_sm makes it.
fn replaced(mut sm: SubmitSm, replace: &ReplaceSm) -> Option<SubmitSm> {
    sm.short_message = replace.short_message.clone();
    sm.tlvs.remove(tags::MESSAGE_PAYLOAD);
    if let Some(payload) = replace.tlvs.message_payload() {
        sm.tlvs.push(Tlv::message_payload(payload.clone()).ok()?);
    }
    if !replace.schedule_delivery_time.is_empty() {
        sm.schedule_delivery_time = replace.schedule_delivery_time.clone();
    }
    if !replace.validity_period.is_empty() {
        sm.validity_period = replace.validity_period.clone();
    }
    sm.registered_delivery = replace.registered_delivery;
    sm.sm_default_msg_id = replace.sm_default_msg_id;
    Some(sm)
}

/// An SMPP time as ms since the Unix epoch: `Ok(None)` when empty,
/// `Err` when it does not parse.
fn time_ms(time: &TimeString, now: u64) -> Result<Option<u64>, ()> {
    match time.parse() {
        None => Ok(None),
        Some(parsed) => parsed
            .ok()
            .and_then(|t| t.to_unix_millis(now as i64).ok())
            .map(|ms| Some(ms.max(0) as u64))
            .ok_or(()),
    }
}
