//! The health+json probe against a real vitals-library service on loopback: its overall
//! status as the verdict, each of its checks through `fetch`, a failing service's 503 read
//! like a 200, and an answer that is not health+json failing with the reason.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use vitals::{Check, Health, Report, Status, Thresholds};
use vitals_probes::{Probe, VitalsHealth, from_fn};
use vitals_testkit::{holds, until};

/// A service with a database check that is up or down as `database_up` says, and a cache
/// check that always fails (non-critical), served on a free loopback port.
async fn service(database_up: Arc<AtomicBool>) -> SocketAddr {
    let fast = |check: Check| {
        check
            .interval(Duration::from_millis(20))
            .jitter(Duration::ZERO)
            .timeout(Duration::from_millis(20))
            .thresholds(Thresholds {
                fall: 1,
                rise: 1,
                ..Thresholds::default()
            })
    };
    let database = from_fn(move || {
        let up = database_up.load(Ordering::SeqCst);
        async move {
            if up {
                Report::pass().with_output("SELECT 1 ok")
            } else {
                Report::fail("connection refused")
            }
        }
    });
    let cache = from_fn(|| async { Report::fail("PING: connection refused") });
    let health = Health::builder()
        .service_id("orders")
        .check(fast(Check::new("database", database)))
        .check(fast(Check::new("cache", cache).non_critical()))
        .start()
        .expect("a valid service");
    let app = Router::new()
        .route("/plain", get(|| async { "I am fine, thanks" }))
        .merge(health.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// Checks run in the background: poll (bounded) until the service reports `status`.
async fn wait_for(probe: &VitalsHealth, status: Status) -> Report {
    let what = format!("the service to report {status}");
    until(what, Duration::from_secs(10), async || {
        holds(probe.check().await, |report| report.status == status)
    })
    .await
}

#[tokio::test]
async fn reports_the_services_verdict_and_each_of_its_checks() {
    let database_up = Arc::new(AtomicBool::new(true));
    let addr = service(database_up.clone()).await;
    let probe = VitalsHealth::new(format!("http://{addr}/health"));

    // Database up, cache (non-critical) down: the service is degraded.
    let report = wait_for(&probe, Status::Warn).await;
    assert_eq!(
        report.output.as_deref(),
        Some("2 checks: cache fail, database pass")
    );
    let health = probe.fetch().await.unwrap();
    assert_eq!(health.service_id.as_deref(), Some("orders"));
    assert_eq!(health.checks["database"][0].status, Status::Pass);
    assert_eq!(
        health.checks["cache"][0].output.as_deref(),
        Some("PING: connection refused")
    );

    // Database down: the service answers 503 with its body, which is still read.
    database_up.store(false, Ordering::SeqCst);
    let report = wait_for(&probe, Status::Fail).await;
    assert_eq!(
        report.output.as_deref(),
        Some("2 checks: cache fail, database fail")
    );
    let health = probe.fetch().await.unwrap();
    assert_eq!(
        health.checks["database"][0].output.as_deref(),
        Some("connection refused")
    );
}

#[tokio::test]
async fn an_answer_that_is_not_health_json_fails_with_the_reason() {
    let addr = service(Arc::new(AtomicBool::new(true))).await;
    let probe = VitalsHealth::new(format!("http://{addr}/plain"));
    let report = probe.check().await;
    assert_eq!(report.status, Status::Fail);
    assert_eq!(
        report.output.as_deref(),
        Some(
            format!(
                "GET http://{addr}/plain answered HTTP 200 with text/plain, not application/health+json; is this a vitals /health URL?"
            )
            .as_str()
        )
    );
    let missing = VitalsHealth::new(format!("http://{addr}/nowhere"))
        .fetch()
        .await
        .unwrap_err();
    assert_eq!(missing.status, Status::Fail);
    assert!(
        missing.output.unwrap().contains("answered HTTP 404"),
        "a 404 names its code"
    );

    // Held with nothing listening: connections are refused.
    let closed = vitals_testkit::reserve_port().unwrap();
    let closed_addr = closed.addr();
    let report = VitalsHealth::new(format!("http://{closed_addr}/health"))
        .check()
        .await;
    assert_eq!(report.status, Status::Fail);
    assert!(report.output.unwrap().contains("refused"));
}
