//! The load generator against the simulator over loopback: every message
//! submitted, every receipt matched, the report consistent with what the
//! simulator counted.

mod common;

use std::time::Duration;

use common::*;
use tern_codec::CommandStatus;
use tern_session::BindType;
use tern_sim::load::{self, StopReason, TextCoding};
use tern_sim::{Behaviour, IdFormat, LoadConfig, LoadReport, ReceiptBehaviour, SimHandle};

fn config(sim: &SimHandle, sessions: usize, window: usize, messages: u64) -> LoadConfig {
    LoadConfig {
        system_id: ACCOUNT.to_owned(),
        sessions,
        window,
        messages,
        registered_delivery: true,
        deadline: Duration::from_secs(60),
        receipt_wait: Duration::from_secs(20),
        ..LoadConfig::new(sim.addr())
    }
}

async fn run(config: LoadConfig) -> LoadReport {
    tokio::time::timeout(Duration::from_secs(90), load::run(config))
        .await
        .expect("the run ends by its deadline")
        .expect("the run starts")
}

/// What every complete run with receipts must show.
async fn assert_complete(report: &LoadReport, sim: &SimHandle, messages: u64) {
    assert_eq!(
        report.stopped_by,
        StopReason::Completed,
        "{}",
        report.to_table()
    );
    assert_eq!(report.submitted, messages);
    assert_eq!(report.accepted, messages);
    assert_eq!(report.refused + report.timeouts + report.unanswered, 0);
    assert!(report.errors.is_empty());
    assert_eq!(report.receipts_expected, messages);
    assert_eq!(report.receipts_matched, messages);
    assert_eq!(report.receipts_unmatched, 0);

    for latency in [report.submit_latency, report.receipt_latency] {
        assert_eq!(latency.count, messages);
        assert!(latency.min_us > 0, "{latency:?}");
        assert!(latency.min_us <= latency.p50_us, "{latency:?}");
        assert!(latency.p50_us <= latency.p90_us, "{latency:?}");
        assert!(latency.p90_us <= latency.p99_us, "{latency:?}");
        assert!(latency.p99_us <= latency.p999_us, "{latency:?}");
        assert!(latency.p999_us <= latency.max_us, "{latency:?}");
    }
    // A receipt follows its submit_sm_resp.
    assert!(report.receipt_latency.p50_us >= report.submit_latency.min_us);
    assert!(report.submits_per_s > 0.0 && report.receipts_per_s > 0.0);

    let stats = sim.stats();
    assert_eq!(stats.submits, messages);
    assert_eq!(stats.responses_with(CommandStatus::Ok), messages);
    assert_eq!(stats.receipts_queued, messages);
    // The last deliver_sm_resp may still be on its way to the simulator.
    until(|| sim.stats().receipts_acked == messages).await;
    assert_eq!(sim.stats().deliveries_refused, 0);
    assert_eq!(sim.stats().deliveries_failed, 0);

    let json: serde_json::Value = serde_json::from_str(&report.to_json_line()).expect("JSON");
    assert_eq!(json["accepted"], messages);
    assert_eq!(json["receipts_matched"], messages);
    assert_eq!(json["stopped_by"], "completed");
    assert!(!report.to_json_line().contains('\n'));
    assert!(report.to_table().contains("p99.9"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_session_window_one_gets_every_receipt() {
    let sim = sim(Behaviour::default()).await;
    let report = run(config(&sim, 1, 1, 500)).await;
    assert_complete(&report, &sim, 500).await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_sessions_window_fifty_get_every_receipt() {
    let sim = sim_with(IdFormat::Hex32, Behaviour::default()).await;
    let report = run(config(&sim, 4, 50, 500)).await;
    assert_complete(&report, &sim, 500).await;
    assert_eq!(report.sessions, 4);
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_spread_round_robin_over_more_addrs() {
    // Random-looking ids, so the two simulators' ids cannot collide in the
    // shared book.
    let first = sim_with(IdFormat::Hex32, Behaviour::default()).await;
    let second = sim_with(IdFormat::Hex32, Behaviour::default()).await;
    let report = run(LoadConfig {
        more_addrs: vec![second.addr()],
        ..config(&first, 3, 10, 300)
    })
    .await;
    assert_eq!(
        report.stopped_by,
        StopReason::Completed,
        "{}",
        report.to_table()
    );
    assert_eq!(report.accepted, 300);
    assert_eq!(report.receipts_matched, 300);
    // Sessions 0 and 2 on the first, 1 on the second; both got work.
    assert_eq!((first.stats().binds, second.stats().binds), (2, 1));
    let (a, b) = (first.stats().submits, second.stats().submits);
    assert_eq!(a + b, 300);
    assert!(a > 0 && b > 0, "{a} + {b}");
    first.shutdown().await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transmitters_with_receiver_sessions_and_long_ucs2_text() {
    let sim = sim_with(
        IdFormat::Hex,
        Behaviour {
            receipts: ReceiptBehaviour {
                delay: Duration::from_millis(20),
                ..ReceiptBehaviour::default()
            },
            ..Behaviour::default()
        },
    )
    .await;
    let report = run(LoadConfig {
        bind_type: BindType::Transmitter,
        receivers: 2,
        coding: TextCoding::Ucs2,
        // 400 octets: too long for short_message, sent in message_payload.
        text_len: 200,
        ..config(&sim, 2, 20, 300)
    })
    .await;
    assert_complete(&report, &sim, 300).await;
    assert!(
        report.receipt_latency.min_us >= 20_000,
        "{:?}",
        report.receipt_latency
    );
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_a_deadline_are_reported_not_hidden() {
    let sim = sim(Behaviour {
        throttle_per_second: Some(100),
        ..Behaviour::default()
    })
    .await;
    let report = run(LoadConfig {
        registered_delivery: false,
        ..config(&sim, 1, 10, 1000)
    })
    .await;
    assert_eq!(report.stopped_by, StopReason::Completed);
    let throttled = report.errors.get("ESME_RTHROTTLED").copied().unwrap_or(0);
    assert!(throttled > 0, "{}", report.to_table());
    assert_eq!(report.accepted + throttled, 1000);
    assert_eq!(
        sim.stats().responses_with(CommandStatus::Throttled),
        throttled
    );

    // Answers slower than the deadline: the run stops by itself.
    sim.set_behaviour(Behaviour {
        response_delay: Duration::from_secs(5),
        ..Behaviour::default()
    })
    .expect("valid");
    let report = run(LoadConfig {
        registered_delivery: false,
        deadline: Duration::from_millis(500),
        ..config(&sim, 1, 5, 1000)
    })
    .await;
    assert_eq!(report.stopped_by, StopReason::Deadline);
    assert_eq!(report.accepted, 0);
    assert_eq!(report.unanswered, 5);
    sim.shutdown().await;
}
