//! Transaction mode (`submit_mode = "transaction"` on a client): a submit
//! is answered once an upstream has answered it, with the upstream's
//! verdict in Tern's vocabulary, instead of as soon as it is stored.
//!
//! The message is stored first all the same, so nothing is lost: the
//! dispatcher sends it as any other and, when the send ends (an upstream
//! took it, or it ended for good), hands the verdict to the waiting submit
//! through [`Transactions`]. A refusal answered to the client this way has
//! no receipt: the client never had the id. When no verdict comes within
//! the client's `transaction_timeout` (an upstream slow to answer, a
//! temporary error being retried later) the submit is answered `ESME_ROK`
//! with Tern's id, as in store-and-forward mode, and the receipt follows.
//!
//! Who answers is decided once, under one lock: the dispatcher takes the
//! waiter out of the map to hand it a verdict, the submit takes itself
//! out when it stops waiting; whichever comes second finds it gone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tern_codec::CommandStatus;
use tern_router::{Canonical, Reason};
use tern_storage::TernId;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How a send ended, for the submit waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// An upstream took the message.
    Sent,
    /// It ended for good without being sent; the client gets this status.
    Refused(CommandStatus),
}

/// Submits of transaction-mode clients waiting for their verdict.
#[derive(Debug, Default)]
pub struct Transactions(Mutex<HashMap<TernId, oneshot::Sender<Verdict>>>);

impl Transactions {
    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<TernId, oneshot::Sender<Verdict>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts waiting for the verdict on `id`.
    pub fn wait_for(&self, id: TernId) -> oneshot::Receiver<Verdict> {
        let (tx, rx) = oneshot::channel();
        self.waiting().insert(id, tx);
        rx
    }

    /// Hands `verdict` to the submit waiting on `id`. True when one took
    /// it: that client is answered with it, so no receipt must follow a
    /// refusal. False when nobody waits (store-and-forward, or it stopped
    /// waiting): the message goes on as in store-and-forward mode.
    pub fn settle(&self, id: TernId, verdict: Verdict) -> bool {
        let Some(waiter) = self.waiting().remove(&id) else {
            return false;
        };
        waiter.send(verdict).is_ok()
    }

    /// Stops waiting on `id`. True when no verdict was handed out, so the
    /// caller answers by itself; false when one is on its way to it.
    pub fn abandon(&self, id: TernId) -> bool {
        self.waiting().remove(&id).is_some()
    }

    /// Waits on `id` for its verdict, for at most `timeout`. `None` says
    /// to answer as in store-and-forward mode: no verdict came in time, or
    /// `settled` (the store shows the message sent or ended, looked at
    /// once at the start and then every `poll`, if given) says the
    /// dispatcher found nobody waiting, so a refusal went out as a receipt.
    /// `settled` is async: it reads the store.
    pub async fn wait<F: std::future::Future<Output = bool>>(
        &self,
        id: TernId,
        mut waiting: oneshot::Receiver<Verdict>,
        timeout: Duration,
        poll: Option<Duration>,
        settled: impl Fn() -> F,
    ) -> Option<Verdict> {
        let deadline = Instant::now() + timeout;
        let mut look = true;
        loop {
            if look && settled().await && self.abandon(id) {
                return None;
            }
            let wake = poll.map_or(deadline, |poll| deadline.min(Instant::now() + poll));
            tokio::select! {
                verdict = &mut waiting => return verdict.ok(),
                () = tokio::time::sleep_until(wake) => {}
            }
            if Instant::now() >= deadline {
                // Out of time, unless the dispatcher took it out just now.
                return if self.abandon(id) {
                    None
                } else {
                    waiting.await.ok()
                };
            }
            look = poll.is_some();
        }
    }
}

/// The status a transaction-mode client gets for a message that ended for
/// good with `canonical`: the SMPP status that says the same, and
/// `ESME_RSUBMITFAIL` for what SMPP has no word for (the receipt-style
/// reason is in Tern's log and store).
pub fn client_status(canonical: &Canonical, no_route: CommandStatus) -> CommandStatus {
    match canonical.reason {
        Reason::InvalidDestination | Reason::UnknownSubscriber => {
            CommandStatus::InvalidDestinationAddress
        }
        Reason::SenderNotAllowed => CommandStatus::InvalidSourceAddress,
        Reason::Throttled => CommandStatus::Throttled,
        Reason::NoRoute => no_route,
        Reason::Expired => CommandStatus::InvalidExpiry,
        Reason::SystemFailure | Reason::UpstreamConfiguration => CommandStatus::SystemError,
        Reason::None
        | Reason::CallBarred
        | Reason::AbsentSubscriber
        | Reason::SubscriberBusy
        | Reason::DeliveryFailure
        | Reason::RejectedByVendor
        | Reason::Blacklisted
        | Reason::ContentRejected
        | Reason::NoCredit
        | Reason::InvalidMessage
        | Reason::Unknown => CommandStatus::SubmitFailed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u64) -> TernId {
        TernId::new(1, n).expect("valid")
    }

    #[tokio::test]
    async fn a_verdict_handed_out_reaches_its_waiter_once() {
        let transactions = Transactions::default();
        let waiting = transactions.wait_for(id(1));
        assert!(transactions.settle(id(1), Verdict::Sent));
        assert!(!transactions.settle(id(1), Verdict::Sent), "taken once");
        assert_eq!(
            transactions
                .wait(id(1), waiting, Duration::from_secs(5), None, || async {
                    false
                })
                .await,
            Some(Verdict::Sent)
        );
        assert!(!transactions.settle(id(2), Verdict::Sent), "nobody waits");
    }

    #[tokio::test]
    async fn a_waiter_that_timed_out_takes_no_verdict() {
        let transactions = Transactions::default();
        let waiting = transactions.wait_for(id(1));
        assert_eq!(
            transactions
                .wait(id(1), waiting, Duration::from_millis(10), None, || async {
                    false
                })
                .await,
            None
        );
        // The dispatcher then finds nobody and goes on store-and-forward.
        assert!(!transactions.settle(id(1), Verdict::Refused(CommandStatus::SubmitFailed)));
    }

    #[tokio::test]
    async fn a_message_the_store_shows_settled_is_answered_at_once() {
        let transactions = Transactions::default();
        let waiting = transactions.wait_for(id(1));
        // Sent by another node: seen at the second look, long before the
        // timeout.
        let looks = std::sync::atomic::AtomicU32::new(0);
        let settled = || {
            let seen = looks.fetch_add(1, std::sync::atomic::Ordering::Relaxed) >= 1;
            async move { seen }
        };
        let verdict = tokio::time::timeout(
            Duration::from_secs(5),
            transactions.wait(
                id(1),
                waiting,
                Duration::from_secs(60),
                Some(Duration::from_millis(10)),
                settled,
            ),
        )
        .await
        .expect("answered when the store shows it settled");
        assert_eq!(verdict, None);
        assert!(
            !transactions.settle(id(1), Verdict::Sent),
            "no longer waiting"
        );
    }

    #[test]
    fn reasons_map_to_the_smpp_status_that_says_the_same() {
        let canonical = |reason| Canonical {
            state: tern_router::FinalState::Rejectd,
            reason,
            class: tern_router::Class::Permanent,
        };
        let no_route = CommandStatus::InvalidDestinationAddress;
        for (reason, status) in [
            (
                Reason::InvalidDestination,
                CommandStatus::InvalidDestinationAddress,
            ),
            (
                Reason::SenderNotAllowed,
                CommandStatus::InvalidSourceAddress,
            ),
            (Reason::Throttled, CommandStatus::Throttled),
            (Reason::NoCredit, CommandStatus::SubmitFailed),
            (Reason::UpstreamConfiguration, CommandStatus::SystemError),
        ] {
            assert_eq!(
                client_status(&canonical(reason), no_route),
                status,
                "{reason:?}"
            );
        }
        assert_eq!(
            client_status(&canonical(Reason::NoRoute), CommandStatus::Throttled),
            CommandStatus::Throttled,
            "no route answers as the router is configured to"
        );
    }
}
