//! One bound client session of the simulator: answers its submits under
//! the current [`Behaviour`], queues the receipts they ask for, and runs
//! the session's timers (unbind after, disconnect after).
//!
//! Answers are sent inline when there is no response delay; with one, each
//! answer waits in its own task and counts as unanswered meanwhile, which
//! is what the `window` knob measures. Submits dropped on purpose keep
//! their responder here until the session ends (up to
//! [`HELD_RESPONDERS`]), because a dropped responder makes the engine
//! answer `ESME_RSYSERR`.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tern_codec::pdu::{SmResp, SubmitMultiResp};
use tern_codec::{Body, COctetString, CommandStatus, RegisteredDelivery};
use tern_session::smsc::BoundSession;
use tern_session::throttle::RateLimit;
use tern_session::{Request, Responder};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::behaviour::{chance, Behaviour};
use super::journal::{Arrival, Recorded};
use super::outbox::{Item, Kind, Outbox};
use super::receipt::{self, Accepted};
use super::stats::SimStats;
use super::tap::Junk;
use super::Inner;

/// Unanswered-on-purpose submits kept per session; beyond it the oldest
/// responder is let go (and the engine answers it `ESME_RSYSERR`), so a
/// long run with a drop fraction stays bounded in memory.
pub(crate) const HELD_RESPONDERS: usize = 100_000;

/// What one session keeps between submits.
struct Session {
    inner: Arc<Inner>,
    account: String,
    outbox: Arc<Outbox>,
    /// Answers waiting for their response delay.
    unanswered: Arc<AtomicUsize>,
    /// The throttle, rebuilt when the configured rate changes.
    limiter: Option<(u32, RateLimit)>,
    /// Responders of dropped submits.
    held: VecDeque<Responder>,
}

/// Serves one bound session until it ends or the simulator shuts down.
pub(crate) async fn run(inner: Arc<Inner>, bound: BoundSession, junk: Arc<Junk>) {
    let BoundSession {
        handle,
        mut requests,
        account,
        bind_type,
        ..
    } = bound;
    SimStats::bump(&inner.stats.binds);
    let id = inner.register(&account, bind_type, &handle, junk);
    let outbox = inner.outboxes.get(&account);
    if bind_type.can_receive() {
        outbox.add_receiver(id, handle.clone());
    }
    let behaviour = inner.behaviour.load();
    let mut unbind_at = behaviour.unbind_after.map(|after| Instant::now() + after);
    let mut disconnect_at = behaviour
        .disconnect_after
        .map(|after| Instant::now() + after);
    let mut session = Session {
        inner: inner.clone(),
        account,
        outbox: outbox.clone(),
        unanswered: Arc::default(),
        limiter: None,
        held: VecDeque::new(),
    };
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(request) => session.on_request(request).await,
                None => break,
            },
            () = until(unbind_at) => {
                unbind_at = None;
                SimStats::bump(&inner.stats.unbinds_sent);
                let handle = handle.clone();
                inner.tasks.spawn(async move { handle.unbind().await });
            }
            () = until(disconnect_at) => {
                disconnect_at = None;
                SimStats::bump(&inner.stats.disconnects);
                handle.close();
            }
            () = inner.shutdown.cancelled() => {
                handle.unbind().await;
                break;
            }
        }
    }
    outbox.remove_receiver(id);
    inner.unregister(id);
}

/// Resolves at `at`, or never.
async fn until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How a submit will be answered.
struct Answer {
    responder: Responder,
    status: CommandStatus,
    /// The response body when accepted; rejections use the empty form.
    body: Option<Body>,
    /// What the receipt needs, when accepted and a receipt was asked for.
    accepted: Option<Vec<Accepted>>,
    /// What the journal keeps once the answer is sent, when accepted and
    /// the simulator is recording.
    recorded: Option<Recorded>,
}

impl Session {
    async fn on_request(&mut self, request: Request) {
        match request.pdu.body {
            Body::SubmitSm(_) | Body::DataSm(_) | Body::SubmitMulti(_) => {
                self.on_submit(request).await;
            }
            _ => {
                // query_sm, cancel_sm, replace_sm: not simulated.
                let _ = request
                    .responder
                    .reject(CommandStatus::InvalidCommandId)
                    .await;
            }
        }
    }

    async fn on_submit(&mut self, request: Request) {
        let arrived = std::time::Instant::now();
        let stats = &self.inner.stats;
        SimStats::bump(&stats.submits);
        let behaviour = self.inner.behaviour.load();
        let Request { pdu, responder } = request;
        if chance(behaviour.drop_fraction) {
            SimStats::bump(&stats.dropped);
            if self.held.len() >= HELD_RESPONDERS {
                self.held.pop_front();
            }
            self.held.push_back(responder);
            return;
        }
        let refusal = if !self.within_rate(&behaviour) {
            Some(CommandStatus::Throttled)
        } else if behaviour
            .window
            .is_some_and(|window| self.unanswered.load(Ordering::Relaxed) >= window)
        {
            Some(CommandStatus::MessageQueueFull)
        } else {
            behaviour
                .reject
                .filter(|reject| chance(reject.fraction))
                .map(|reject| reject.status)
        };
        self.inner.journal.arrived(Arrival {
            account: self.account.clone(),
            at: arrived,
            status: refusal.unwrap_or(CommandStatus::Ok),
        });
        let answer = match refusal {
            Some(status) => Answer {
                responder,
                status,
                body: None,
                accepted: None,
                recorded: None,
            },
            None => self.accept(pdu.body, responder),
        };
        if behaviour.response_delay.is_zero() {
            answer.send(&self.inner, &self.outbox).await;
            return;
        }
        let delay = behaviour.response_delay;
        let unanswered = self.unanswered.clone();
        unanswered.fetch_add(1, Ordering::Relaxed);
        let inner = self.inner.clone();
        let outbox = self.outbox.clone();
        self.inner.tasks.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => answer.send(&inner, &outbox).await,
                () = inner.shutdown.cancelled() => {}
            }
            unanswered.fetch_sub(1, Ordering::Relaxed);
        });
    }

    /// Takes a token from the session's throttle, if one is set.
    fn within_rate(&mut self, behaviour: &Behaviour) -> bool {
        let Some(rate) = behaviour.throttle_per_second else {
            self.limiter = None;
            return true;
        };
        if self.limiter.as_ref().is_none_or(|(r, _)| *r != rate) {
            // `validate` refuses a rate of zero; 1/s is the floor regardless.
            let per_second = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
            self.limiter = Some((rate, RateLimit::per_second(per_second)));
        }
        self.limiter
            .as_ref()
            .is_none_or(|(_, limiter)| limiter.try_acquire())
    }

    /// The answer to an accepted submit: a new id, and what its receipts need.
    fn accept(&self, body: Body, responder: Responder) -> Answer {
        let id = self.inner.ids.next();
        let Ok(message_id) = COctetString::<65>::try_from(id.as_str()) else {
            // Ids are at most 32 octets; this cannot happen, but never panic.
            warn!(%id, "message id does not fit; refusing");
            return Answer {
                responder,
                status: CommandStatus::SystemError,
                body: None,
                accepted: None,
                recorded: None,
            };
        };
        let submitted_ms = receipt::now_ms();
        let recorded = self.inner.journal.is_on().then(|| Recorded::Submit {
            account: self.account.clone(),
            message_id: id.clone(),
            text: match &body {
                Body::SubmitSm(sm) => sm.text_octets().to_vec(),
                Body::DataSm(data) => data
                    .tlvs
                    .message_payload()
                    .map_or_else(Vec::new, |p| p.to_vec()),
                Body::SubmitMulti(multi) => multi.short_message.as_bytes().to_vec(),
                _ => Vec::new(),
            },
            destination: match &body {
                Body::SubmitSm(sm) => {
                    String::from_utf8_lossy(sm.destination.addr.as_bytes()).into_owned()
                }
                Body::DataSm(data) => {
                    String::from_utf8_lossy(data.destination.addr.as_bytes()).into_owned()
                }
                Body::SubmitMulti(multi) => match multi.destinations.first() {
                    Some(tern_codec::pdu::Destination::Sme(a)) => {
                        String::from_utf8_lossy(a.addr.as_bytes()).into_owned()
                    }
                    Some(tern_codec::pdu::Destination::DistributionList(name)) => {
                        String::from_utf8_lossy(name.as_bytes()).into_owned()
                    }
                    None => String::new(),
                },
                _ => String::new(),
            },
        });
        let accepted = |source, destination, registered: RegisteredDelivery, preview| Accepted {
            id: id.clone(),
            source,
            destination,
            submitted_ms,
            preview,
            request: registered.receipt(),
        };
        let (body, accepted) = match body {
            Body::SubmitSm(sm) => {
                let preview = receipt::preview(sm.data_coding, sm.text_octets());
                let one = accepted(sm.source, sm.destination, sm.registered_delivery, preview);
                (Body::SubmitSmResp(SmResp::with_id(message_id)), vec![one])
            }
            Body::DataSm(data) => {
                let payload = data.tlvs.message_payload().map_or(&[][..], |p| &p[..]);
                let preview = receipt::preview(data.data_coding, payload);
                let one = accepted(
                    receipt::narrow(&data.source),
                    receipt::narrow(&data.destination),
                    data.registered_delivery,
                    preview,
                );
                (Body::DataSmResp(SmResp::with_id(message_id)), vec![one])
            }
            Body::SubmitMulti(multi) => {
                let preview = receipt::preview(multi.data_coding, multi.short_message.as_bytes());
                // One receipt per SME destination; distribution lists are
                // not expanded.
                let all = multi
                    .destinations
                    .iter()
                    .filter_map(|d| match d {
                        tern_codec::pdu::Destination::Sme(address) => Some(accepted(
                            multi.source.clone(),
                            address.clone(),
                            multi.registered_delivery,
                            preview.clone(),
                        )),
                        tern_codec::pdu::Destination::DistributionList(_) => None,
                    })
                    .collect();
                let resp = SubmitMultiResp {
                    message_id: Some(message_id),
                    ..SubmitMultiResp::default()
                };
                (Body::SubmitMultiResp(resp), all)
            }
            // `on_request` only passes the three submit operations.
            _ => (Body::SubmitSmResp(SmResp::with_id(message_id)), Vec::new()),
        };
        let accepted: Vec<Accepted> = accepted
            .into_iter()
            .filter(|a| a.request != tern_codec::ReceiptRequest::None)
            .collect();
        debug!(account = %self.account, %id, "accepted");
        Answer {
            responder,
            status: CommandStatus::Ok,
            body: Some(body),
            accepted: (!accepted.is_empty()).then_some(accepted),
            recorded,
        }
    }
}

impl Answer {
    /// Sends the answer, then queues the receipts: the answer is in the
    /// session's write queue before its receipt can be due.
    async fn send(self, inner: &Inner, outbox: &Outbox) {
        inner.stats.response(self.status);
        let sent = match self.body {
            Some(body) => self.responder.respond(self.status, body).await,
            None => self.responder.reject(self.status).await,
        };
        if sent.is_err() {
            return;
        }
        if let Some(recorded) = self.recorded {
            inner.journal.push(recorded);
        }
        let Some(accepted) = self.accepted else {
            return;
        };
        let receipts = inner.behaviour.load().receipts;
        for one in &accepted {
            match receipt::receipt(one, &receipts) {
                Ok(Some(pdu)) => {
                    let item = Item {
                        kind: Kind::Receipt,
                        due: Instant::now() + receipts.delay,
                        pdu,
                        attempts: 0,
                        receipt_of: Some(one.id.clone()),
                    };
                    if outbox.push(item) {
                        SimStats::bump(&inner.stats.receipts_queued);
                    } else {
                        SimStats::bump(&inner.stats.receipts_discarded);
                    }
                }
                Ok(None) => {}
                Err(err) => warn!(%err, id = %one.id, "receipt not built"),
            }
        }
    }
}
