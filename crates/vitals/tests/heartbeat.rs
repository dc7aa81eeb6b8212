//! The heartbeat emitter against a real HTTP receiver on loopback.

#![allow(clippy::unwrap_used)] // helpers of tests, outside #[test] functions

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use vitals::probes::from_fn;
use vitals::{Check, Health, Heartbeat, Report};

type Received = Arc<Mutex<Vec<(String, String)>>>;

async fn receiver(fail_first: usize) -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/ping/abc",
            post(
                move |State(received): State<Received>, headers: HeaderMap, body: String| async move {
                    let mut all = received.lock().unwrap();
                    let content_type = headers
                        .get("content-type")
                        .and_then(|value| value.to_str().ok())
                        .unwrap_or_default()
                        .to_string();
                    all.push((content_type, body));
                    if all.len() <= fail_first {
                        StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        StatusCode::OK
                    }
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/ping/abc"), received)
}

async fn wait_for_beats(received: &Received, count: usize) {
    for _ in 0..200 {
        if received.lock().unwrap().len() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("fewer than {count} heartbeats arrived");
}

#[tokio::test]
async fn pushes_the_health_body_on_schedule_and_survives_refusals() {
    let (url, received) = receiver(1).await;
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
    let beats = received.lock().unwrap().clone();
    let (content_type, body) = beats.last().unwrap();
    assert_eq!(content_type, "application/health+json");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
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
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let health = Health::builder().start().unwrap();
    let emitter = Heartbeat::new(format!("http://{addr}/ping/abc"))
        .every(Duration::from_millis(100))
        .spawn(&health);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(!emitter.is_finished(), "still beating after failed pushes");
    emitter.abort();
}
