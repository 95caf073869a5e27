//! Receipts at the edges, on the real binary with an upstream written in
//! the test: one that matches no message is acknowledged, counted, kept for
//! inspection and dropped after its grace period; one the client refuses is
//! sent again after a wait, and leaves the outbox only when taken; one the
//! client has not answered yet does not hold back the next; many taken
//! are each delivered once, and their acknowledgements written in batches;
//! one that comes while its attempt's write is out waits for that write
//! and is applied, not held (on sled and on Redis).

use tern_testkit as common;

use common::metrics::sample;

use std::time::{Duration, Instant};

use common::redis::Redis;
use common::{
    accept_submit, bare_smsc, client, next_submit, receipted_id, submit_id, submit_sm, Admin,
    BareSmsc, Daemon, Launch, TempDir,
};
use tern_codec::pdu::{DeliverSm, SmResp};
use tern_codec::{Body, CommandStatus, EsmClass, RegisteredDelivery, ShortMessage};
use tern_session::smsc::{BoundSession, SmscConfig};

/// A config with one client `acme` and one upstream `bare` at `upstream`.
fn config(client_port: u16, admin: u16, upstream: u16) -> String {
    format!(
        r#"
[[listener]]
address = "127.0.0.1:{client_port}"
[admin]
address = "127.0.0.1:{admin}"
[storage]
path = "data"
unmatched_grace = "2s"
[[client]]
system_id = "acme"
passwords = ["pw"]
[[upstream]]
name = "bare"
host = "127.0.0.1"
port = {upstream}
system_id = "tern"
password = "x"
[[route]]
name = "all"
upstreams = ["bare"]
"#
    )
}

/// A receipt for upstream id `id` in the SMPP 3.4 text form.
fn receipt(id: &str) -> DeliverSm {
    let text = format!(
        "id:{id} sub:001 dlvrd:001 submit date:2611220300 done date:2611220301 stat:DELIVRD err:000 text:hello"
    );
    DeliverSm {
        esm_class: EsmClass::DELIVERY_RECEIPT,
        short_message: ShortMessage::new(text.into_bytes()).expect("short"),
        ..DeliverSm::default()
    }
}

/// A daemon whose upstream, written in the test, Tern has bound.
struct Setup {
    _upstream: BareSmsc,
    _daemon: Daemon,
    admin: Admin,
    /// Tern's session at the upstream, for the test to serve.
    tern: BoundSession,
    client_port: u16,
}

impl Setup {
    async fn start(name: &str) -> Setup {
        Setup::launch(name, Launch::new(), None).await
    }

    /// With `launch`'s environment, on `redis` instead of sled if given.
    async fn launch(name: &str, launch: Launch, redis: Option<&Redis>) -> Setup {
        Setup::launch_leasing(name, launch, redis, Duration::from_secs(10)).await
    }

    /// [`Setup::launch`], its leases on `redis` lasting `lease_ttl`.
    async fn launch_leasing(
        name: &str,
        launch: Launch,
        redis: Option<&Redis>,
        lease_ttl: Duration,
    ) -> Setup {
        let mut upstream = bare_smsc(SmscConfig::default()).await;
        let mut config = config(0, 0, upstream.port);
        if let Some(redis) = redis {
            let store = format!(
                "[storage]\nbackend = \"redis\"\nunmatched_grace = \"2s\"\n[storage.redis]\naddresses = [\"{}\"]\nprefix = \"{name}\"\nlease_ttl = \"{}s\"\n",
                redis.address(),
                lease_ttl.as_secs()
            );
            config = config.replace("[storage]\npath = \"data\"\nunmatched_grace = \"2s\"\n", "");
            config.push_str(&store);
        }
        let mut daemon = launch.start(TempDir::new(name), &config);
        let (client_port, admin) = (daemon.client_port(), daemon.admin());
        let tern = tokio::time::timeout(Duration::from_secs(20), upstream.sessions.recv())
            .await
            .expect("tern binds its upstream")
            .expect("session");
        Setup {
            _upstream: upstream,
            _daemon: daemon,
            admin,
            tern,
            client_port,
        }
    }
}

/// The next deliver_sm the client gets within `within` (`what` names it
/// when it does not come), with the Tern id it receipts.
async fn next_receipt(
    requests: &mut tern_session::Requests,
    within: Duration,
    what: &str,
) -> (tern_session::Request, String) {
    let request = tokio::time::timeout(within, requests.recv())
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing within {within:?}"))
        .expect("session open");
    let Body::DeliverSm(sm) = &request.pdu.body else {
        panic!("{what}: {:?}", request.pdu)
    };
    let id = receipted_id(sm);
    (request, id)
}

/// The upstream sends Tern a receipt for `upstream_id`, which Tern takes
/// (ESME_ROK: stored, so the upstream need not send it again).
async fn upstream_sends(tern: &tern_session::SessionHandle, upstream_id: &str) {
    let resp = tern
        .request(Body::DeliverSm(receipt(upstream_id)))
        .await
        .expect("answered");
    assert_eq!(resp.command_status, CommandStatus::Ok);
}

/// The client's next delivery is the receipt for `tern_id`, within 10 s,
/// and it takes it.
async fn takes_receipt_for(requests: &mut tern_session::Requests, tern_id: &str) {
    let (request, id) = next_receipt(requests, Duration::from_secs(10), "the receipt").await;
    assert_eq!(id, tern_id);
    take(request).await;
}

/// The client takes a delivery (deliver_sm_resp, ESME_ROK).
async fn take(delivery: tern_session::Request) {
    delivery
        .responder
        .respond(
            CommandStatus::Ok,
            Body::DeliverSmResp(SmResp::with_id(Default::default())),
        )
        .await
        .expect("taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_matching_nothing_is_acknowledged_counted_kept_then_dropped() {
    let Setup {
        _upstream,
        _daemon,
        admin,
        tern,
        ..
    } = Setup::start("unmatched").await;

    let resp = tern
        .handle
        .request(Body::DeliverSm(receipt("nope-42")))
        .await
        .expect("answered");
    assert_eq!(
        resp.command_status,
        CommandStatus::Ok,
        "acknowledged, so the upstream does not send it again"
    );
    admin
        .until(
            "/api/queues",
            Duration::from_secs(5),
            "the receipt kept for inspection",
            |q| q["unmatched"].as_u64() == Some(1),
        )
        .await;
    let metrics = admin.text("/metrics").await;
    assert_eq!(
        sample(&metrics, "tern_receipts_unmatched_total{upstream=\"bare\"}"),
        Some(1.0),
        "{metrics}"
    );
    let held = admin.get("/api/unmatched").await;
    assert_eq!(held.as_array().map(Vec::len), Some(1), "{held}");
    assert_eq!(held[0]["upstream"], "bare", "{held}");
    assert_eq!(held[0]["upstream_id"], "nope-42", "{held}");
    // After the 2 s grace it is dropped (with a warning in the log).
    admin
        .until(
            "/api/queues",
            Duration::from_secs(10),
            "the unmatched receipt dropped after its grace",
            |q| q["unmatched"].as_u64() == Some(0),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_the_client_refuses_is_sent_again_after_a_wait() {
    let Setup {
        _upstream,
        _daemon,
        admin,
        mut tern,
        client_port,
    } = Setup::start("refused").await;
    let mut session = client(client_port, "acme", "pw").bind().await;

    let id = submit_id(
        &session.handle,
        submit_sm("34600000001", "hello", RegisteredDelivery::ALWAYS),
    )
    .await;
    let (_, responder) = next_submit(&mut tern.requests)
        .await
        .expect("tern sends the submit");
    accept_submit(responder, "77").await;
    upstream_sends(&tern.handle, "77").await;

    // The client refuses the first delivery with a temporary error.
    let (first, receipted) =
        next_receipt(&mut session.requests, Duration::from_secs(10), "a receipt").await;
    let refused_at = Instant::now();
    assert_eq!(receipted, id);
    first
        .responder
        .reject(CommandStatus::ReceiverTemporaryError)
        .await
        .expect("refused");

    // The same receipt comes again, after the outbox's first wait (1 s).
    let (again, receipted) =
        next_receipt(&mut session.requests, Duration::from_secs(10), "sent again").await;
    let waited = refused_at.elapsed();
    assert_eq!(receipted, id);
    assert!(
        waited >= Duration::from_millis(900),
        "sent again after {waited:?}, without waiting"
    );
    take(again).await;
    admin
        .until(
            "/api/queues",
            Duration::from_secs(5),
            "the outbox emptied once taken",
            |q| q["outbox"].as_u64() == Some(0),
        )
        .await;
    // Taken once: nothing more comes.
    assert!(
        tokio::time::timeout(Duration::from_secs(2), session.requests.recv())
            .await
            .is_err(),
        "nothing after the client took it"
    );
}

/// The outbox is a pipeline: a receipt the client has not answered yet does
/// not hold back the next one (deliveries went in rounds once, and a round
/// waited for every answer before the next item was read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_waiting_for_its_answer_does_not_hold_back_the_next() {
    let Setup {
        _upstream,
        _daemon,
        admin,
        mut tern,
        client_port,
    } = Setup::start("pipeline").await;
    let mut session = client(client_port, "acme", "pw").bind().await;

    let mut ids = Vec::new();
    for (n, upstream_id) in ["81", "82"].into_iter().enumerate() {
        let to = format!("3460000000{n}");
        ids.push(
            submit_id(
                &session.handle,
                submit_sm(&to, "hello", RegisteredDelivery::ALWAYS),
            )
            .await,
        );
        let (_, responder) = next_submit(&mut tern.requests)
            .await
            .expect("tern sends the submit");
        accept_submit(responder, upstream_id).await;
    }

    // The first receipt reaches the client, which does not answer yet.
    upstream_sends(&tern.handle, "81").await;
    let (first, receipted) = next_receipt(
        &mut session.requests,
        Duration::from_secs(10),
        "the first receipt",
    )
    .await;
    assert_eq!(receipted, ids[0]);

    // The second comes while the first is still unanswered.
    upstream_sends(&tern.handle, "82").await;
    let (second, receipted) = next_receipt(
        &mut session.requests,
        Duration::from_secs(3),
        "the second receipt, without waiting for the first's answer",
    )
    .await;
    assert_eq!(receipted, ids[1]);

    take(second).await;
    take(first).await;
    admin
        .until(
            "/api/queues",
            Duration::from_secs(5),
            "the outbox emptied once both were taken",
            |q| q["outbox"].as_u64() == Some(0),
        )
        .await;
}

/// Many receipts taken together: each reaches the client once (an item
/// whose acknowledgement is still being written is not sent again), the
/// outbox empties, and the acknowledgements took fewer store writes than
/// receipts (gathered per client while the previous batch is written).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_receipts_taken_are_delivered_once_and_acknowledged_in_batches() {
    const N: usize = 60;
    let Setup {
        _upstream,
        _daemon,
        admin,
        mut tern,
        client_port,
    } = Setup::start("ack-batches").await;
    let mut session = client(client_port, "acme", "pw").bind().await;
    let mut ids = std::collections::HashSet::new();
    for n in 0..N {
        let sm = submit_sm(&format!("346{n:08}"), "hello", RegisteredDelivery::ALWAYS);
        ids.insert(submit_id(&session.handle, sm).await);
        let (_, responder) = next_submit(&mut tern.requests)
            .await
            .expect("tern sends the submit");
        accept_submit(responder, &format!("u{n}")).await;
    }
    for n in 0..N {
        upstream_sends(&tern.handle, &format!("u{n}")).await;
    }
    // The client answers what it has at once, as a busy client does.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    while seen.values().sum::<usize>() < N {
        let (first, id) =
            next_receipt(&mut session.requests, Duration::from_secs(10), "a receipt").await;
        let mut batch = vec![(first, id)];
        while let Ok(request) = session.requests.try_recv() {
            let Body::DeliverSm(sm) = &request.pdu.body else {
                panic!("{:?}", request.pdu)
            };
            let id = receipted_id(sm);
            batch.push((request, id));
        }
        let mut answers = Vec::new();
        for (request, id) in batch {
            *seen.entry(id).or_default() += 1;
            answers.push(tokio::spawn(take(request)));
        }
        for answer in answers {
            answer.await.expect("answered");
        }
    }
    admin
        .until(
            "/api/queues",
            Duration::from_secs(10),
            "the outbox emptied once all were taken",
            |q| q["outbox"].as_u64() == Some(0),
        )
        .await;
    // Past a full listing of the outboxes (every second): nothing again.
    let again = tokio::time::timeout(Duration::from_millis(1500), session.requests.recv()).await;
    assert!(again.is_err(), "a receipt delivered again: {again:?}");
    assert_eq!(
        seen.keys()
            .cloned()
            .collect::<std::collections::HashSet<_>>(),
        ids
    );
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let metrics = admin.text("/metrics").await;
    let writes = sample(&metrics, "tern_outbox_ack_writes_total").expect("counted");
    assert!(
        (1.0..=(N / 2) as f64).contains(&writes),
        "{writes} acknowledgement writes for {N} receipts"
    );
}

/// `tern_receipt_latency_seconds` observes each receipt relayed to its
/// client once, from the message's acceptance: receipts sent a while
/// after their submits land above that wait, and a receipt that matches
/// no message is not observed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipt_latency_is_observed_once_per_receipt_relayed_from_acceptance() {
    const N: usize = 3;
    const WAIT: Duration = Duration::from_millis(600);
    let Setup {
        _upstream,
        _daemon,
        admin,
        mut tern,
        client_port,
    } = Setup::start("receipt-latency").await;
    let mut session = client(client_port, "acme", "pw").bind().await;
    for n in 0..N {
        let sm = submit_sm(&format!("346{n:08}"), "hello", RegisteredDelivery::ALWAYS);
        submit_id(&session.handle, sm).await;
        let (_, responder) = next_submit(&mut tern.requests)
            .await
            .expect("tern sends the submit");
        accept_submit(responder, &format!("u{n}")).await;
    }
    tokio::time::sleep(WAIT).await;
    upstream_sends(&tern.handle, "nobody").await;
    for n in 0..N {
        upstream_sends(&tern.handle, &format!("u{n}")).await;
    }
    for _ in 0..N {
        let (request, _) =
            next_receipt(&mut session.requests, Duration::from_secs(10), "a receipt").await;
        take(request).await;
    }
    let metrics = admin.text("/metrics").await;
    let count = sample(&metrics, "tern_receipt_latency_seconds_count");
    assert_eq!(count, Some(N as f64), "{metrics}");
    // Every one waited at least WAIT (0.6 s) since its acceptance.
    let under = sample(&metrics, "tern_receipt_latency_seconds_bucket{le=\"0.5\"}");
    assert_eq!(under, Some(0.0), "{metrics}");
    let within = sample(&metrics, "tern_receipt_latency_seconds_bucket{le=\"30.0\"}");
    assert_eq!(within, Some(N as f64), "{metrics}");
    let sum = sample(&metrics, "tern_receipt_latency_seconds_sum").expect("summed");
    assert!(sum >= N as f64 * WAIT.as_secs_f64(), "{sum} s for {N}");
}

/// How long the daemon waits between the upstream's submit_sm_resp and
/// writing its attempt (`TERN_STALL_AT`): far longer than the receipt
/// takes to come, far shorter than the receipt's wait for the write.
const STALL_MS: u64 = 500;

/// How long after the submit_sm_resp the upstream sends its receipt.
const RECEIPT_AFTER_MS: u64 = 50;

/// Receipts sent the moment their submit_sm_resp is, while the daemon is
/// made to wait before writing the attempt, are answered and relayed
/// without one being held (`tern_receipts_unmatched_total` stays 0). On
/// Redis they wait for the write before their lookup, which then finds the
/// record the write kept: no lookup round trip (before, each asked the
/// server for an index entry the write had not made yet).
async fn receipts_during_the_attempt_write(name: &str, redis: Option<&Redis>) {
    const N: usize = 3;
    let launch = Launch::new().env(
        "TERN_STALL_AT",
        format!("dispatch.after_submit_resp:{STALL_MS}"),
    );
    let Setup {
        _upstream,
        _daemon,
        admin,
        mut tern,
        client_port,
    } = Setup::launch(name, launch, redis).await;
    let mut session = client(client_port, "acme", "pw").bind().await;
    let lookups = |metrics: &str| {
        sample(metrics, "tern_redis_round_trips_total{step=\"lookup\"}").unwrap_or(0.0)
    };
    let lookups_before = lookups(&admin.text("/metrics").await);
    for n in 0..N {
        let sm = submit_sm(&format!("346{n:08}"), "hello", RegisteredDelivery::ALWAYS);
        let tern_id = submit_id(&session.handle, sm).await;
        let (_, responder) = next_submit(&mut tern.requests)
            .await
            .expect("tern sends the submit");
        accept_submit(responder, &format!("w{n}")).await;
        // The receipt comes a little later, as a vendor's does (the bench's
        // simulator: 10 ms), while the attempt's write is held back.
        tokio::time::sleep(Duration::from_millis(RECEIPT_AFTER_MS)).await;
        let started = Instant::now();
        // Answered only once stored: after the attempt's write.
        upstream_sends(&tern.handle, &format!("W{n}")).await;
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "answered within its wait"
        );
        takes_receipt_for(&mut session.requests, &tern_id).await;
    }
    let metrics = admin.text("/metrics").await;
    assert_eq!(
        sample(&metrics, "tern_receipts_unmatched_total{upstream=\"bare\"}"),
        Some(0.0),
        "no receipt was held: each waited for its attempt's write\n{metrics}"
    );
    let queues = admin.get("/api/queues").await;
    assert_eq!(queues["unmatched"].as_u64(), Some(0), "{queues}");
    assert_eq!(
        lookups(&metrics) - lookups_before,
        0.0,
        "no receipt asked Redis for its upstream id\n{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_during_its_attempt_write_waits_for_it_instead_of_being_held_on_sled() {
    receipts_during_the_attempt_write("write-wait-sled", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_during_its_attempt_write_waits_for_it_instead_of_being_held_on_redis() {
    let redis = Redis::start("write-wait-redis");
    receipts_during_the_attempt_write("write-wait-redis", Some(&redis)).await;
}

/// On Redis a receipt is applied under this node's lock only: its write is
/// refused, and decided again, if another node wrote the message after its
/// read (`Store::record_decided_receipt`), so it takes no message lease and
/// pays no lease round trip. Shown with the message's lease held by
/// another node for a minute: the receipt is still answered and relayed
/// at once. Fails (the upstream's deliver_sm waits out the minute) when a
/// receipt takes the message's lease again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_receipt_waits_for_no_message_lease() {
    const NAME: &str = "no-lease";
    const HELD: Duration = Duration::from_secs(60);
    let redis = Redis::start(NAME);
    let Setup {
        _upstream,
        _daemon,
        admin: _,
        mut tern,
        client_port,
    } = Setup::launch_leasing(NAME, Launch::new(), Some(&redis), HELD).await;
    let mut session = client(client_port, "acme", "pw").bind().await;
    let sm = submit_sm("34600000001", "hello", RegisteredDelivery::ALWAYS);
    let tern_id = submit_id(&session.handle, sm).await;
    let (_, responder) = next_submit(&mut tern.requests)
        .await
        .expect("tern sends the submit");
    accept_submit(responder, "w1").await;
    // The daemon's own membership lease is named as the message's would
    // be: a lease named wrongly here would hold nothing, and the test pass
    // whatever the daemon does.
    let membership = format!("{NAME}:{{l}}:lease:node:0");
    assert_eq!(
        redis
            .cli(&["EXISTS", &membership])
            .as_deref()
            .map(str::trim),
        Some("1"),
        "the leases' names"
    );
    // Another node (9) holds the message's lease, as between its read and
    // its write, for longer than the test waits. The id the client got is
    // the one the store names the message by.
    let id = tern_id.to_lowercase();
    let record = redis.cli(&["KEYS", &format!("{NAME}:*:m:{id}")]);
    assert_eq!(
        record.as_deref().map(|keys| keys.lines().count()),
        Some(1),
        "the message's record is named by {id}"
    );
    let lease = format!("{NAME}:{{l}}:lease:message:{id}");
    let held = redis.cli(&["SET", &lease, "9", "PX", &HELD.as_millis().to_string()]);
    assert_eq!(held.as_deref().map(str::trim), Some("OK"), "lease set");
    tokio::time::timeout(Duration::from_secs(10), upstream_sends(&tern.handle, "w1"))
        .await
        .expect("the receipt is answered without the message's lease");
    takes_receipt_for(&mut session.requests, &tern_id).await;
    assert_eq!(
        redis.cli(&["GET", &lease]).as_deref().map(str::trim),
        Some("9"),
        "the other node's lease was left alone"
    );
}
