//! Sending one message: the rule, the upstreams in the strategy's order,
//! the vendor's answer read through its profile, failover.
//!
//! The engine owns no queue: the daemon claims a message from the store,
//! calls [`Router::send`], and records the [`SendOutcome`]. A temporary
//! failure at one upstream (no session, timeout, a temporary status, a
//! message this vendor cannot carry) moves on to the next; a permanent one
//! ends the message with no failover; when every upstream failed for a
//! temporary reason the message goes back to the retry queue.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tern_codec::pdu::SubmitSm;
use tern_codec::{Body, CommandStatus, Pdu};
use tern_session::{RequestError, SessionHandle};
use tracing::{debug, info};

use crate::adapt::{adapt, ClientText};
use crate::canonical::{Canonical, Class, FinalState, Reason};
use crate::profile::Profile;
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
        /// The rule that routed it (kept with the message: a failed receipt
        /// may send it again, see [`Router::resubmits_on`]).
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
        }
    }
}

/// The routing engine over a compiled table and running upstreams.
#[derive(Debug)]
pub struct Router {
    table: Table,
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
            weighted,
            upstreams,
            prices,
            generic,
            config,
        }
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

    /// Whether a final receipt with `canonical` for a message routed by
    /// `rule` sends it again through the next upstream.
    pub fn resubmits_on(&self, rule: &str, canonical: &Canonical) -> bool {
        canonical.state.is_final()
            && canonical.state != FinalState::Delivrd
            && self
                .table
                .rules()
                .iter()
                .find(|r| r.name == rule)
                .is_some_and(|r| r.resubmit_on.contains(&canonical.reason))
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
        for i in order.into_iter().take(self.config.max_attempts.max(1)) {
            if now.elapsed() >= self.config.deadline {
                debug!(client, destination = %destination, "send deadline passed; back to the retry queue");
                break;
            }
            let Some(upstream) = self.upstream(&rule.upstreams[i].name) else {
                continue;
            };
            match self
                .try_upstream(upstream, submit, reference, &mut attempts)
                .await
            {
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
                Tried::Temporary(canonical) => last = canonical,
            }
        }
        SendOutcome::Retry {
            canonical: last,
            attempts,
        }
    }

    async fn try_upstream(
        &self,
        upstream: &Upstream,
        submit: &SubmitSm,
        reference: u16,
        attempts: &mut Vec<AttemptReport>,
    ) -> Tried {
        let mut report = AttemptReport {
            upstream: upstream.name().to_owned(),
            status: None,
            upstream_ids: Vec::new(),
            failure: None,
        };
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let parts = match adapt(
            submit,
            upstream.profile(),
            &self.config.client_text,
            reference,
            now_ms,
        ) {
            Ok(adapted) => adapted.parts,
            Err(err) => {
                report.failure = Some(err.to_string());
                attempts.push(report);
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
                    Class::Temporary => Tried::Temporary(canonical),
                    Class::Permanent => Tried::Permanent(canonical, err.command_status()),
                };
            }
        };
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

enum Tried {
    Accepted(Vec<String>),
    Permanent(Canonical, CommandStatus),
    Temporary(Canonical),
}
