//! The heartbeat emitter against a real HTTP receiver on loopback.

#![allow(clippy::unwrap_used)] // helpers of tests, outside #[test] functions

use std::time::Duration;

use axum::http::StatusCode;
use vitals::probes::from_fn;
use vitals::{Check, Health, Heartbeat, Report};
use vitals_testkit::{Webhook, until};

/// A receiver at `…/ping/abc` that answers 500 to the first `fail_first` pushes.
fn receiver(fail_first: usize) -> (String, Webhook) {
    let hook = Webhook::start().unwrap();
    hook.answer_next(vec![StatusCode::INTERNAL_SERVER_ERROR; fail_first]);
    (format!("http://{}/ping/abc", hook.addr()), hook)
}

async fn wait_for_beats(received: &Webhook, count: usize) {
    let what = format!("{count} heartbeats");
    until(what, Duration::from_secs(5), async || {
        received.len() >= count
    })
    .await;
}

#[tokio::test]
async fn pushes_the_health_body_on_schedule_and_survives_refusals() {
    let (url, received) = receiver(1);
    let health = Health::builder()
        .service_id("orders")
        .drain_delay(Duration::from_millis(100))
        .check(
            Check::new(
                "cache",
                from_fn(|| async { Report::fail("connection refused") }),
            )
            .non_critical()
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_millis(50))
            .jitter(Duration::ZERO),
        )
        .start()
        .unwrap();
    let emitter = Heartbeat::new(url)
        .every(Duration::from_millis(100))
        .spawn(&health);
    // The first push is refused (500); the emitter keeps going.
    wait_for_beats(&received, 3).await;
    let beats = received.requests();
    let beat = beats.last().unwrap();
    assert_eq!(beat.path, "/ping/abc");
    assert_eq!(
        beat.header("content-type").unwrap_or_default(),
        "application/health+json"
    );
    let body: serde_json::Value = beat.json().unwrap();
    assert_eq!(body["serviceId"], "orders");
    assert!(body["checks"]["cache"].is_array(), "{body}");

    // It stops when the service stops.
    health.shutdown();
    let drained = tokio::spawn(health.drained());
    assert!(
        tokio::time::timeout(Duration::from_secs(10), drained)
            .await
            .is_ok()
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(2), emitter)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_unreachable_receiver_does_not_stop_the_emitter() {
    // Held with nothing listening: every push is refused.
    let port = vitals_testkit::reserve_port().unwrap();
    let addr = port.addr();
    let health = Health::builder().start().unwrap();
    let emitter = Heartbeat::new(format!("http://{addr}/ping/abc"))
        .every(Duration::from_millis(100))
        .spawn(&health);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!emitter.is_finished(), "still beating after failed pushes");
    emitter.abort();
}
