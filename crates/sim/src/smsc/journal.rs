//! What reached the simulator, message by message, for tests that must
//! prove nothing was lost on the way: which submits it accepted (with their
//! text, so a test can match them to what its client sent) and which
//! receipts its receivers acknowledged.
//!
//! Counters say how many; only a record says which. It is off until
//! [`SimHandle::start_recording`](crate::SimHandle::start_recording): a
//! sandbox or a benchmark never pays for it, and a record grows with the
//! traffic, so it is meant for tests of bounded length.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One thing the simulator recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A submit (submit_sm, data_sm, submit_multi) answered `ESME_ROK`:
    /// the upstream took the message. Recorded once its response is on the
    /// way, as its receipt is queued then.
    Submit {
        /// The account it came from.
        account: String,
        /// The id given in the response.
        message_id: String,
        /// Its text octets as sent (short_message, or message_payload).
        text: Vec<u8>,
        /// Its destination_addr as sent (the first one of a submit_multi),
        /// lossily decoded: which number the message was for.
        destination: String,
    },
    /// A delivery receipt answered deliver_sm_resp `ESME_ROK`: the
    /// receiver took responsibility for it.
    ReceiptAcked {
        /// The account it went to.
        account: String,
        /// The id of the message it reports.
        message_id: String,
    },
}

/// One submit as it arrived, whatever its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrival {
    /// The account it came from.
    pub account: String,
    /// When it arrived.
    pub at: std::time::Instant,
    /// How the simulator answered it.
    pub status: tern_codec::CommandStatus,
}

/// The record, shared by every session and outbox of a simulator.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    on: AtomicBool,
    entries: Mutex<Vec<Recorded>>,
    arrivals: Mutex<Vec<Arrival>>,
}

impl Journal {
    fn entries(&self) -> MutexGuard<'_, Vec<Recorded>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether anything is recorded now (so callers copy a text only then).
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    /// Forgets what was recorded and records from now on.
    pub(crate) fn start(&self) {
        let mut entries = self.entries();
        entries.clear();
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.on.store(true, Ordering::Relaxed);
    }

    /// Keeps `entry` when recording.
    pub(crate) fn push(&self, entry: Recorded) {
        if self.is_on() {
            self.entries().push(entry);
        }
    }

    /// Keeps a submit's arrival when recording.
    pub(crate) fn arrived(&self, arrival: Arrival) {
        if self.is_on() {
            self.arrivals
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(arrival);
        }
    }

    /// The arrivals recorded, in order.
    pub(crate) fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A copy of the record, in the order things happened.
    pub(crate) fn snapshot(&self) -> Vec<Recorded> {
        self.entries().clone()
    }
}

#[cfg(test)]
mod tests {
    //! The record and the unbind command over a real loopback session.

    use std::time::Duration;

    use tern_codec::pdu::{SmResp, SubmitSm};
    use tern_codec::{Address, Body, CommandStatus, Npi, RegisteredDelivery, ShortMessage, Ton};
    use tern_session::esme::{self, BindParams, UpstreamSession};
    use tern_session::{CloseReason, SessionConfig};
    use tokio::net::TcpStream;

    use super::Recorded;
    use crate::smsc::{Behaviour, Reject, SimConfig, SimHandle, Simulator};

    const WAIT: Duration = Duration::from_secs(10);

    async fn bind(sim: &SimHandle) -> UpstreamSession {
        let stream = TcpStream::connect(sim.addr()).await.expect("connect");
        let params = BindParams::new("acct", "secret").expect("short");
        let config = SessionConfig {
            enquire_link_interval: None,
            close_grace: Duration::from_secs(1),
            ..SessionConfig::default()
        };
        tokio::time::timeout(WAIT, esme::bind(stream, Some(sim.addr()), &params, config))
            .await
            .expect("bind in time")
            .expect("bound")
    }

    async fn submit(session: &UpstreamSession, text: &str) -> CommandStatus {
        let sm = SubmitSm {
            source: Address::new(Ton::INTERNATIONAL, Npi::ISDN, "3491".try_into().expect("s")),
            destination: Address::new(Ton::INTERNATIONAL, Npi::ISDN, "3460".try_into().expect("s")),
            registered_delivery: RegisteredDelivery::ALWAYS,
            short_message: ShortMessage::new(text.as_bytes().to_vec()).expect("short"),
            ..SubmitSm::default()
        };
        tokio::time::timeout(WAIT, session.handle.request(Body::SubmitSm(sm)))
            .await
            .expect("answered in time")
            .expect("answered")
            .command_status
    }

    #[tokio::test]
    async fn only_accepted_submits_and_acknowledged_receipts_are_recorded_once_started() {
        let sim = Simulator::start(SimConfig::default()).await.expect("sim");
        let mut session = bind(&sim).await;
        assert_eq!(submit(&session, "before").await, CommandStatus::Ok);
        // The receipt of "before" is acknowledged before recording starts.
        let early = tokio::time::timeout(WAIT, session.requests.recv())
            .await
            .expect("receipt in time")
            .expect("open");
        let ok = Body::DeliverSmResp(SmResp::with_id(Default::default()));
        early
            .responder
            .respond(CommandStatus::Ok, ok.clone())
            .await
            .expect("ack");
        tokio::time::timeout(WAIT, async {
            while sim.stats().receipts_acked < 1 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the simulator saw the acknowledgement");
        sim.start_recording();

        assert_eq!(submit(&session, "kept").await, CommandStatus::Ok);
        // A refused submit reached nothing.
        sim.update_behaviour(|b| {
            b.reject = Some(Reject {
                fraction: 1.0,
                status: CommandStatus::SystemError,
            });
        })
        .expect("valid");
        assert_eq!(
            submit(&session, "refused").await,
            CommandStatus::SystemError
        );
        sim.set_behaviour(Behaviour::default()).expect("valid");
        // Refused once (not recorded), then taken on the retry (recorded).
        let receipt = tokio::time::timeout(WAIT, session.requests.recv())
            .await
            .expect("receipt in time")
            .expect("open");
        receipt
            .responder
            .reject(CommandStatus::ReceiverTemporaryError)
            .await
            .expect("nack");
        let record = sim.recorded();
        let [Recorded::Submit {
            account,
            message_id,
            text,
            ..
        }] = record.as_slice()
        else {
            panic!("one accepted submit, no receipt yet: {record:?}");
        };
        assert_eq!((account.as_str(), text.as_slice()), ("acct", &b"kept"[..]));
        let message_id = message_id.clone();
        let again = tokio::time::timeout(Duration::from_secs(5), session.requests.recv())
            .await
            .expect("sent again after the redelivery delay")
            .expect("open");
        again
            .responder
            .respond(CommandStatus::Ok, ok)
            .await
            .expect("ack");
        tokio::time::timeout(WAIT, async {
            while sim.recorded().len() < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the acknowledgement recorded");
        assert_eq!(
            sim.recorded()[1],
            Recorded::ReceiptAcked {
                account: "acct".to_owned(),
                message_id,
            }
        );
    }

    /// While an unbind waits for the receiver to answer what it has in
    /// flight, the session takes no new requests; a receipt falling due
    /// then must wait for the next receiver, not be tried (and given up)
    /// against the unbinding one.
    #[tokio::test]
    async fn receipts_due_while_a_session_unbinds_wait_for_the_next_one() {
        let sim = Simulator::start(SimConfig {
            session: SessionConfig {
                close_grace: Duration::from_secs(1),
                ..SimConfig::default().session
            },
            ..SimConfig::default()
        })
        .await
        .expect("sim");
        let mut session = bind(&sim).await;
        assert_eq!(submit(&session, "first").await, CommandStatus::Ok);
        // Taken and not answered: the unbind below waits for it.
        let unanswered = tokio::time::timeout(WAIT, session.requests.recv())
            .await
            .expect("receipt in time")
            .expect("open");
        sim.update_behaviour(|b| b.receipts.delay = Duration::from_millis(200))
            .expect("valid");
        assert_eq!(submit(&session, "second").await, CommandStatus::Ok);
        assert_eq!(sim.unbind(Some("acct")), 1);
        tokio::time::timeout(WAIT, session.handle.closed())
            .await
            .expect("unbound after the grace");
        drop(unanswered);
        tokio::time::timeout(WAIT, async {
            while sim.queued("acct") < 2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("both receipts kept for the next receiver");
        assert_eq!(sim.stats().deliveries_failed, 0, "{:?}", sim.stats());
        let mut next = bind(&sim).await;
        for _ in 0..2 {
            let receipt = tokio::time::timeout(WAIT, next.requests.recv())
                .await
                .expect("receipt in time")
                .expect("open");
            receipt
                .responder
                .respond(
                    CommandStatus::Ok,
                    Body::DeliverSmResp(SmResp::with_id(Default::default())),
                )
                .await
                .expect("ack");
        }
    }

    #[tokio::test]
    async fn unbind_on_command_ends_the_sessions_of_that_account_only() {
        let sim = Simulator::start(SimConfig::default()).await.expect("sim");
        let session = bind(&sim).await;
        assert_eq!(sim.unbind(Some("someone-else")), 0);
        assert_eq!(sim.unbind(Some("acct")), 1);
        tokio::time::timeout(WAIT, session.handle.closed())
            .await
            .expect("unbound in time");
        assert_eq!(
            session.handle.close_reason(),
            Some(CloseReason::PeerUnbound)
        );
        assert_eq!(sim.stats().unbinds_sent, 1);
        assert_eq!(sim.stats().disconnects, 0, "an unbind, not a dropped line");
    }
}
