//! Sending one message: the rule, the upstreams in the strategy's order,
//! the vendor's answer read through its profile, failover.
//!
//! The engine owns no queue: the daemon claims a message from the store,
//! calls [`Router::send`], and records the [`SendOutcome`]. A temporary
//! failure at one upstream (no session, timeout, a temporary status, a
//! message this vendor cannot carry) moves on to the next; a permanent one
//! ends the message with no failover; when every upstream failed for a
//! temporary reason the message goes back to the retry queue. A refusal
//! whose profile entry has scope "upstream" (this vendor's codings, limits,
//! tariffs, senders) moves on too, without counting against the upstream's
//! breaker; when every upstream of the route refused so, no later try can
//! help and the message ends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_codec::pdu::SubmitSm;
use tern_codec::{Body, COctetString, CommandStatus, Pdu};
use tern_session::{RequestError, SessionHandle};
use tracing::{debug, info};

use crate::adapt::{adapt_over, AdaptError, Adapted, ClientText, Link};
use crate::canonical::{Canonical, Class, FinalState, Reason, Scope};
use crate::profile::Profile;
use crate::receipt::UpstreamReceipt;
use crate::strategy::{Candidate, WeightedState};
use crate::table::{MessageKey, PriceList, Rule, Table};
use crate::upstream::Upstream;

/// How many times one part is sent again to an upstream that throttled it
/// (each time after the account's pacer has slowed down) before the next
/// upstream of the route, or the retry queue, takes the message.
const THROTTLE_RESENDS: u32 = 8;

/// One try at one upstream, for the store and `tern trace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReport {
    /// The upstream.
    pub upstream: String,
    /// Its answer (`None`: no answer, no session, or not sent).
    pub status: Option<u32>,
    /// Ids it gave the parts it accepted.
    pub upstream_ids: Vec<String>,
    /// Why it was given up, if it was.
    pub failure: Option<String>,
}

/// How sending went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// An upstream accepted every part.
    Submitted {
        /// The rule that routed it (a failed receipt may send the message
        /// again through the rule's next upstream, see [`Router::resubmits`]).
        rule: String,
        /// Which upstream.
        upstream: String,
        /// Its ids, one per part.
        upstream_ids: Vec<String>,
        /// Every try, the successful one last.
        attempts: Vec<AttemptReport>,
    },
    /// A permanent refusal: the message ends here.
    Rejected {
        /// What it means.
        canonical: Canonical,
        /// The status to tell the client, in transaction mode.
        status: CommandStatus,
        /// Every try.
        attempts: Vec<AttemptReport>,
    },
    /// Every upstream failed for a temporary reason (or none was available):
    /// back to the retry queue.
    Retry {
        /// The last reason.
        canonical: Canonical,
        /// Every try.
        attempts: Vec<AttemptReport>,
    },
    /// No rule matches the message: refuse it with `status`.
    NoRoute {
        /// The configured status (ESME_RINVDSTADR by default).
        status: CommandStatus,
    },
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Upstreams tried per send, at most.
    pub max_attempts: usize,
    /// No further upstream is tried once a send has taken this long; the
    /// message goes back to the retry queue.
    pub deadline: Duration,
    /// How long a part waits for a window slot at one upstream before the
    /// next upstream is tried.
    pub window_wait: Duration,
    /// Retry queue delay after the first failed send; doubles per send.
    pub retry_initial: Duration,
    /// The longest retry delay.
    pub retry_max: Duration,
    /// What data_coding 0 means for Tern's clients.
    pub client_text: ClientText,
    /// The status a message no rule matches is refused with.
    pub no_route_status: CommandStatus,
    /// The service_type every submit_sm to these upstreams carries, by
    /// upstream name: Telesign routes a receipt to the data centre the
    /// submit's service_type names, so each node names its own.
    pub submit_service_types: Vec<(String, COctetString<6>)>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            deadline: Duration::from_secs(60),
            window_wait: Duration::from_secs(1),
            retry_initial: Duration::from_secs(5),
            retry_max: Duration::from_secs(600),
            client_text: ClientText::default(),
            no_route_status: CommandStatus::InvalidDestinationAddress,
            submit_service_types: Vec::new(),
        }
    }
}

/// Where the router reads the time for time-window rules. The daemon
/// gives it the system clock; tests give it instants of their own, so a window
/// can be tested at any hour, across a daylight-saving change.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> jiff::Timestamp + Send + Sync>);

impl Clock {
    /// The system's clock.
    pub fn system() -> Clock {
        Clock(Arc::new(jiff::Timestamp::now))
    }

    /// Whatever `now` says (a test that moves time on).
    pub fn from_fn(now: impl Fn() -> jiff::Timestamp + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(now))
    }

    /// The time now, by this clock.
    pub fn now(&self) -> jiff::Timestamp {
        (self.0)()
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Clock({})", self.now())
    }
}

/// The routing engine over a compiled table and running upstreams.
#[derive(Debug)]
pub struct Router {
    table: Table,
    clock: Clock,
    weighted: Vec<WeightedState>,
    upstreams: Vec<Arc<Upstream>>,
    prices: Vec<(String, PriceList)>,
    generic: Profile,
    config: RouterConfig,
}

fn temporary(reason: Reason) -> Canonical {
    Canonical {
        state: FinalState::Undeliv,
        reason,
        class: Class::Temporary,
    }
}

impl Router {
    /// An engine over `table`, sending through `upstreams` (by name).
    pub fn new(
        table: Table,
        upstreams: Vec<Arc<Upstream>>,
        prices: Vec<(String, PriceList)>,
        generic: Profile,
        config: RouterConfig,
    ) -> Self {
        let weighted = table
            .rules()
            .iter()
            .map(|_| WeightedState::default())
            .collect();
        Self {
            table,
            clock: Clock::system(),
            weighted,
            upstreams,
            prices,
            generic,
            config,
        }
    }

    /// The same engine reading the time from `clock` (time windows).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn upstream(&self, name: &str) -> Option<&Arc<Upstream>> {
        self.upstreams.iter().find(|u| u.name() == name)
    }

    /// What a status from `upstream` means: its profile, then SMPP 3.4.
    fn classify(&self, upstream: &Upstream, code: u32) -> Canonical {
        upstream
            .profile()
            .submit_outcome(code)
            .or_else(|| self.generic.submit_outcome(code))
            .unwrap_or(temporary(Reason::Unknown))
    }

    /// Whether a refusal from `upstream` concerns that vendor only (its
    /// profile's entry, then SMPP 3.4's): see [`Scope`].
    fn refusal_scope(&self, upstream: &Upstream, code: u32) -> Scope {
        upstream
            .profile()
            .status(code)
            .or_else(|| self.generic.status(code))
            .map_or(Scope::Message, |e| e.scope)
    }

    /// How long a message waits in the retry queue after its `sends`-th
    /// failed send: doubling from `retry_initial`, at most `retry_max`.
    pub fn retry_delay(&self, sends: u32) -> Duration {
        let doublings = sends.saturating_sub(1).min(31);
        self.config
            .retry_initial
            .saturating_mul(1 << doublings)
            .min(self.config.retry_max)
    }

    /// Whether some rule matches `submit` from `client`: intake refuses a
    /// message with no route at once, with [`RouterConfig::no_route_status`].
    pub fn has_route(&self, client: &str, submit: &SubmitSm) -> bool {
        self.route_of(client, submit).is_some()
    }

    /// Whether this router could send `submit` from `client` now, or
    /// should leave it to a node where its route's upstreams are bound.
    ///
    /// Yes when an upstream of its rule is available here; no when none is,
    /// but one of them is bound elsewhere (`bound_elsewhere` names it); yes
    /// again when none is bound anywhere, so the usual failover and retry
    /// (or no-route) handling takes it. Several nodes sharing one store and
    /// a vendor that allows one bind: only the node holding the bind sends
    /// the messages routed there.
    pub fn serves_here(
        &self,
        client: &str,
        submit: &SubmitSm,
        bound_elsewhere: impl Fn(&str) -> bool,
    ) -> bool {
        let Some((_, rule)) = self.route_of(client, submit) else {
            return true;
        };
        let now = Instant::now();
        let here = rule.upstreams.iter().any(|u| {
            self.upstream(&u.name)
                .is_some_and(|up| up.is_available(now))
        });
        here || !rule.upstreams.iter().any(|u| bound_elsewhere(&u.name))
    }

    /// The rule `submit` from `client` falls under, with its position.
    fn route_of(&self, client: &str, submit: &SubmitSm) -> Option<(usize, &Rule)> {
        // Borrowed unless an address is not UTF-8 (then a lossy copy).
        let source = String::from_utf8_lossy(submit.source.addr.as_bytes());
        let destination = String::from_utf8_lossy(submit.destination.addr.as_bytes());
        let service_type = String::from_utf8_lossy(submit.service_type.as_bytes());
        self.table.lookup_indexed(&MessageKey {
            client,
            destination: &destination,
            source: &source,
            data_coding: submit.data_coding.0,
            service_type: &service_type,
            priority_flag: submit.priority_flag.0,
            esm_class: submit.esm_class.0,
            now: self.clock.now(),
        })
    }

    /// The upstreams it sends through, in config order.
    pub fn upstreams(&self) -> &[Arc<Upstream>] {
        &self.upstreams
    }

    /// The engine's settings.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Whether a final failed `receipt` from `upstream`, for `submit` from
    /// `client`, sends the message again through the next upstream of its
    /// route. Yes when its reason is in the route's `resubmit_on` or the
    /// upstream profile's `receipts.resubmit_on`, or its code is marked
    /// temporary with scope "upstream" (another vendor may deliver); and
    /// an upstream of the route is left that `used` (the upstreams that
    /// already took the message) does not name, within `max_attempts`.
    pub fn resubmits(
        &self,
        client: &str,
        submit: &SubmitSm,
        upstream: &str,
        receipt: &UpstreamReceipt,
        used: &[String],
    ) -> bool {
        let canonical = &receipt.canonical;
        if !may_resubmit(canonical) {
            return false;
        }
        let Some((_, rule)) = self.route_of(client, submit) else {
            return false;
        };
        let listed = rule.resubmit_on.contains(&canonical.reason)
            || self
                .upstream(upstream)
                .is_some_and(|u| u.profile().receipts.resubmit_on.contains(&canonical.reason))
            || (receipt.scope == Scope::Upstream && canonical.class == Class::Temporary);
        let left = rule.upstreams.iter().any(|u| !used.contains(&u.name));
        listed && left && used.len() < self.config.max_attempts.max(1)
    }

    /// Sends `submit` from `client`: `reference` numbers its parts if it
    /// must be split.
    pub async fn send(&self, client: &str, submit: &SubmitSm, reference: u16) -> SendOutcome {
        self.send_skipping(client, submit, reference, &[]).await
    }

    /// [`send`](Self::send), leaving out the upstreams in `skip` (those a
    /// failed receipt already came from).
    pub async fn send_skipping(
        &self,
        client: &str,
        submit: &SubmitSm,
        reference: u16,
        skip: &[String],
    ) -> SendOutcome {
        let destination = String::from_utf8_lossy(submit.destination.addr.as_bytes());
        let Some((index, rule)) = self.route_of(client, submit) else {
            info!(client, destination = %destination, rules = self.table.name(), "no rule matches");
            return SendOutcome::NoRoute {
                status: self.config.no_route_status,
            };
        };
        let now = Instant::now();
        let candidates: Vec<Candidate> = rule
            .upstreams
            .iter()
            .map(|u| match self.upstream(&u.name) {
                Some(up) => Candidate {
                    available: up.is_available(now) && !skip.contains(&u.name),
                    load: up.load(),
                    price: self
                        .prices
                        .iter()
                        .find(|(n, _)| *n == u.name)
                        .and_then(|(_, p)| p.price(&destination)),
                },
                None => Candidate {
                    available: false,
                    load: 1.0,
                    price: None,
                },
            })
            .collect();
        let order = rule
            .strategy
            .order(&rule.upstreams, &candidates, &self.weighted[index]);
        let mut attempts = Vec::new();
        let mut last = temporary(Reason::NoRoute);
        // Upstreams a part was sent to: an upstream that refused to carry
        // the message was sent nothing, and does not use up an attempt.
        let mut sent_to = 0;
        // Attempts that left parts out there: the next one ties its parts
        // under a new concatenation reference.
        let mut placed = 0;
        // Upstreams that refused what only they cannot take (a vendor-scoped
        // status, or a message they cannot carry), the last such status
        // refusal, and whether anything happened that a later try may change.
        let mut refused_here: Vec<&str> = Vec::new();
        let mut not_here: Option<(Canonical, CommandStatus)> = None;
        let mut later_may_help = false;
        for i in order {
            if sent_to >= self.config.max_attempts.max(1) {
                break;
            }
            if now.elapsed() >= self.config.deadline {
                debug!(client, destination = %destination, "send deadline passed; back to the retry queue");
                break;
            }
            let Some(upstream) = self.upstream(&rule.upstreams[i].name) else {
                continue;
            };
            // A new concatenation reference after an attempt that left parts
            // out there: a handset never joins parts of two attempts.
            let reference = concat_reference(reference, placed);
            let mut left_parts = false;
            let tried = self
                .try_upstream(upstream, submit, reference, &mut attempts, &mut left_parts)
                .await;
            if left_parts {
                placed += 1;
            }
            if !matches!(tried, Tried::NotCarried(_)) {
                sent_to += 1;
            }
            match tried {
                Tried::Accepted(upstream_ids) => {
                    return SendOutcome::Submitted {
                        rule: rule.name.clone(),
                        upstream: upstream.name().to_owned(),
                        upstream_ids,
                        attempts,
                    }
                }
                Tried::Permanent(canonical, status) => {
                    return SendOutcome::Rejected {
                        canonical,
                        status,
                        attempts,
                    }
                }
                Tried::Temporary(canonical) => {
                    later_may_help = true;
                    last = canonical;
                }
                Tried::NotCarried(canonical) => {
                    refused_here.push(upstream.name());
                    last = canonical;
                }
                Tried::NotHere(canonical, status) => {
                    refused_here.push(upstream.name());
                    last = canonical;
                    not_here = Some((canonical, status));
                }
            }
        }
        // Every upstream of the rule left open refused what only it cannot
        // take, one of them with a status: no later try changes that, the
        // message ends with that refusal.
        let all_refused = rule
            .upstreams
            .iter()
            .filter(|u| !skip.contains(&u.name))
            .all(|u| refused_here.contains(&u.name.as_str()));
        if let (Some((canonical, status)), false, true) = (not_here, later_may_help, all_refused) {
            return SendOutcome::Rejected {
                canonical: Canonical {
                    state: FinalState::Rejectd,
                    class: Class::Permanent,
                    ..canonical
                },
                status,
                attempts,
            };
        }
        // Asked only when this send found no taker, so a message that goes
        // out pays no second adaptation.
        if let Some(refused) = self.none_can_carry(rule, submit, reference) {
            info!(client, destination = %destination, "no upstream of the route can carry it");
            return refused;
        }
        SendOutcome::Retry {
            canonical: last,
            attempts,
        }
    }

    /// `submit` rewritten for `upstream` as its sessions are bound (`tlvs`
    /// as their bind responses said; pass true for the best case).
    fn adapt_for(
        &self,
        upstream: &Upstream,
        submit: &SubmitSm,
        tlvs: bool,
        reference: u16,
    ) -> Result<Adapted, AdaptError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let link = Link {
            tlvs,
            flash: upstream.is_flash(),
        };
        adapt_over(
            submit,
            upstream.profile(),
            link,
            &self.config.client_text,
            reference,
            now_ms,
        )
    }

    /// The end of a message no upstream of its rule can carry, each for a
    /// reason of its own vendor (a coding, a length, flash): no later try
    /// can change that, so it is refused now (REJECTD, invalid message)
    /// rather than retried for ever. Each upstream's reason goes into the
    /// attempts, for `tern trace`. `None` when one of them can carry it, or
    /// the message itself is at fault (the send loop refuses it then).
    fn none_can_carry(
        &self,
        rule: &Rule,
        submit: &SubmitSm,
        reference: u16,
    ) -> Option<SendOutcome> {
        let mut attempts = Vec::new();
        let mut status = CommandStatus::InvalidDataCoding;
        for u in &rule.upstreams {
            let Some(upstream) = self.upstream(&u.name) else {
                continue;
            };
            // The best case: TLVs as the profile allows them.
            match self.adapt_for(upstream, submit, true, reference) {
                Ok(_) => return None,
                Err(err) if !err.try_next_upstream() => return None,
                Err(err) => {
                    status = err.command_status();
                    attempts.push(not_carried(upstream, &err));
                }
            }
        }
        if attempts.is_empty() {
            return None;
        }
        Some(SendOutcome::Rejected {
            canonical: Canonical {
                state: FinalState::Rejectd,
                reason: Reason::InvalidMessage,
                class: Class::Permanent,
            },
            status,
            attempts,
        })
    }

    async fn try_upstream(
        &self,
        upstream: &Upstream,
        submit: &SubmitSm,
        reference: u16,
        attempts: &mut Vec<AttemptReport>,
        left_parts: &mut bool,
    ) -> Tried {
        let mut report = AttemptReport {
            upstream: upstream.name().to_owned(),
            status: None,
            upstream_ids: Vec::new(),
            failure: None,
        };
        let mut parts = match self.adapt_for(upstream, submit, upstream.takes_tlvs(), reference) {
            Ok(adapted) => adapted.parts,
            Err(err) => {
                attempts.push(not_carried(upstream, &err));
                let canonical = Canonical {
                    state: FinalState::Rejectd,
                    reason: Reason::InvalidMessage,
                    class: if err.try_next_upstream() {
                        Class::Temporary
                    } else {
                        Class::Permanent
                    },
                };
                return match canonical.class {
                    Class::Temporary => Tried::NotCarried(canonical),
                    Class::Permanent => Tried::Permanent(canonical, err.command_status()),
                };
            }
        };
        if let Some((_, service_type)) = self
            .config
            .submit_service_types
            .iter()
            .find(|(name, _)| name == upstream.name())
        {
            for part in &mut parts {
                part.service_type = service_type.clone();
            }
        }
        for part in parts {
            let Some(session) = upstream.session() else {
                report.failure = Some("no bound session".to_owned());
                attempts.push(report);
                return Tried::Temporary(temporary(Reason::SystemFailure));
            };
            match self.request_paced(upstream, session, part).await {
                Ok(resp) if resp.command_status.is_ok() => {
                    upstream.breaker().record_success();
                    let id = match &resp.body {
                        Body::SubmitSmResp(r) => {
                            r.id.as_ref().map(ToString::to_string).unwrap_or_default()
                        }
                        _ => String::new(),
                    };
                    report.status = Some(0);
                    report.upstream_ids.push(id);
                    *left_parts = true;
                }
                Ok(resp) => {
                    let code = resp.command_status.code();
                    let canonical = self.classify(upstream, code);
                    report.status = Some(code);
                    report.failure =
                        Some(format!("{}: {:?}", resp.command_status, canonical.reason));
                    attempts.push(report);
                    debug!(
                        upstream = upstream.name(),
                        status = code,
                        ?canonical,
                        "refused"
                    );
                    return match canonical.class {
                        // A throttle is the vendor pacing us, not a failure.
                        Class::Temporary if canonical.reason == Reason::Throttled => {
                            Tried::Temporary(canonical)
                        }
                        // Only this vendor refuses: the next one is tried;
                        // this one answered and is healthy.
                        Class::Temporary
                            if self.refusal_scope(upstream, code) == Scope::Upstream =>
                        {
                            upstream.breaker().record_success();
                            Tried::NotHere(canonical, resp.command_status)
                        }
                        Class::Temporary => {
                            upstream.breaker().record_failure(Instant::now());
                            Tried::Temporary(canonical)
                        }
                        Class::Permanent => {
                            upstream.breaker().record_success();
                            Tried::Permanent(canonical, resp.command_status)
                        }
                    };
                }
                Err(err) => {
                    if matches!(err, RequestError::Timeout { .. }) {
                        upstream.breaker().record_failure(Instant::now());
                        // Sent and unanswered: the part may be out there.
                        *left_parts = true;
                    }
                    report.failure = Some(err.to_string());
                    attempts.push(report);
                    return Tried::Temporary(temporary(Reason::SystemFailure));
                }
            }
        }
        let ids = report.upstream_ids.clone();
        attempts.push(report);
        Tried::Accepted(ids)
    }
}

impl Router {
    /// Sends one part, and sends it again (up to [`THROTTLE_RESENDS`] times,
    /// on whichever session of the upstream is free, when the upstream has
    /// a pacer) while the vendor
    /// answers with a code its profile calls `throttled`: each throttle
    /// slows the account's pacer first, so the part goes again once paced.
    /// The last answer is returned, throttle or not.
    async fn request_paced(
        &self,
        upstream: &Upstream,
        mut session: SessionHandle,
        part: SubmitSm,
    ) -> Result<Pdu, RequestError> {
        let mut throttles = 0;
        loop {
            let resp = session
                .request_within(Body::SubmitSm(part.clone()), Some(self.config.window_wait))
                .await?;
            let code = resp.command_status.code();
            if resp.command_status.is_ok()
                || self.classify(upstream, code).reason != Reason::Throttled
            {
                return Ok(resp);
            }
            upstream.throttled();
            throttles += 1;
            debug!(
                upstream = upstream.name(),
                status = code,
                throttles,
                "throttled: slowing down"
            );
            // Without a pacer nothing would slow the next try: fail over.
            if upstream.pacer().is_none() || throttles > THROTTLE_RESENDS {
                return Ok(resp);
            }
            if let Some(next) = upstream.session() {
                session = next;
            }
        }
    }
}

/// Whether an outcome may send a message again at all: only a final
/// failure can (not DELIVRD, nor an intermediate state). The cheap half of
/// [`Router::resubmits`], for a caller that can skip its other work when
/// the answer is no.
pub fn may_resubmit(canonical: &Canonical) -> bool {
    canonical.state.is_final() && canonical.state != FinalState::Delivrd
}

enum Tried {
    Accepted(Vec<String>),
    Permanent(Canonical, CommandStatus),
    Temporary(Canonical),
    /// A temporary refusal with scope "upstream": the next upstream now,
    /// never this one again for the message.
    NotHere(Canonical, CommandStatus),
    /// This upstream cannot carry the message (its vendor's rules): nothing
    /// was sent.
    NotCarried(Canonical),
}

/// The attempt of an upstream that cannot carry the message, saying why.
fn not_carried(upstream: &Upstream, err: &AdaptError) -> AttemptReport {
    AttemptReport {
        upstream: upstream.name().to_owned(),
        status: None,
        upstream_ids: Vec::new(),
        failure: Some(format!(
            "not sent, {} cannot carry it: {err}",
            upstream.name()
        )),
    }
}

/// Step between the concatenation references of a message's attempts. Odd
/// in both octets, so 256 attempts pass before an 8-bit reference (the low
/// octet) comes back, and 65536 for a 16-bit one.
const REFERENCE_STEP: u16 = 0x9D9D;

/// The concatenation reference of a message's attempt after `placed`
/// earlier attempts that left parts at an upstream (a part accepted, or sent
/// and unanswered), from its first one `base`. Such an attempt is followed
/// by one under a new reference, so a handset never joins parts from two
/// attempts; an attempt that left nothing out there (refused at its first
/// part, not carried, no session) frees its reference for the next one, so
/// references stay those of consecutive messages as long as possible.
pub fn concat_reference(base: u16, placed: usize) -> u16 {
    base.wrapping_add(REFERENCE_STEP.wrapping_mul(placed as u16))
}

#[cfg(test)]
mod tests {
    use super::concat_reference;

    #[test]
    fn each_attempt_of_a_message_has_its_own_reference_on_the_wire() {
        // Attempts of one send and of later sends number on from the
        // message's recorded attempts: 256 in a row differ in the low
        // octet (an 8-bit UDH reference), and the first is the base.
        for base in [0u16, 0x1234, 0xFFFF] {
            assert_eq!(concat_reference(base, 0), base);
            let low: std::collections::HashSet<u8> = (0..256)
                .map(|n| concat_reference(base, n).to_be_bytes()[1])
                .collect();
            assert_eq!(low.len(), 256, "base {base:#06X}");
            // Within one send, attempt k of a send that follows n recorded
            // attempts is the message's attempt n + k.
            assert_eq!(
                concat_reference(concat_reference(base, 3), 2),
                concat_reference(base, 5)
            );
        }
    }
}
