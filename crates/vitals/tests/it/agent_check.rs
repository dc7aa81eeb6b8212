//! The library's HAProxy agent check against the real HAProxy: as the service's verdict
//! changes (healthy, degraded, failing, draining, stopped), HAProxy itself shows the server
//! UP at full weight, UP at reduced weight, DOWN, DRAIN and MAINT.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use tokio::net::TcpListener;
use vitals::{Check, Health, Thresholds};

use crate::common::Switch;
use vitals_testkit::Haproxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_routes_on_the_services_verdict() {
    let Some(binary) = Haproxy::binary() else {
        return;
    };
    let database = Switch::default();
    let health = Health::builder()
        .service_id("orders")
        .check(
            Check::new("database", database.probe())
                .interval(Duration::from_millis(100))
                .timeout(Duration::from_millis(50))
                .jitter(Duration::ZERO)
                .thresholds(Thresholds::default()),
        )
        // Long enough for HAProxy (agent-inter 100ms) to show DRAIN before the stop.
        .drain_delay(Duration::from_secs(2))
        .start()
        .unwrap();

    // The service itself, which HAProxy's regular check connects to, and its agent port.
    let app = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_addr = app.local_addr().unwrap();
    let serving = tokio::spawn({
        let health = health.clone();
        async move { health.serve(app, health.router()).await }
    });
    let agent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent_port = agent.local_addr().unwrap().port();
    let answering = tokio::spawn({
        let health = health.clone();
        async move { health.serve_agent_check(agent).await }
    });

    // weight 100: HAProxy rounds a percentage of the default weight 1 down to 0.
    let haproxy = Haproxy::start(
        &binary,
        &[format!(
            "server app {app_addr} weight 100 check inter 100ms \
             agent-check agent-addr 127.0.0.1 agent-port {agent_port} agent-inter 100ms"
        )],
    )
    .await;

    haproxy.wait_for("app", "UP", Some(100)).await;

    // Degraded: still serving, at the degraded weight.
    database.warn();
    haproxy.wait_for("app", "UP", Some(50)).await;

    // Failing twice (fall 2): out of rotation, and HAProxy shows which check fails.
    database.fail();
    haproxy.wait_for("app", "DOWN", None).await;
    let (_, _, last_agent) = haproxy.server("app").await;
    assert!(
        last_agent.contains("not ready: database failing"),
        "{last_agent}"
    );

    // Back after rise 2 passes, at full weight.
    database.pass();
    haproxy.wait_for("app", "UP", Some(100)).await;

    // SIGTERM's path: draining, then stopped once the drain delay is over.
    health.shutdown();
    haproxy.wait_for("app", "DRAIN", None).await;
    haproxy.wait_for("app", "MAINT", None).await;
    serving.await.unwrap().unwrap();
    answering.abort();
}
