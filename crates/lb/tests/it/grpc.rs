//! A pool checked over gRPC (issue 14): `health_check = "grpc"` asks each backend's
//! `grpc.health.v1` service, here real vitals services that answer HTTP/1.1 and gRPC health
//! on one port. `SERVING` keeps a backend in rotation; `NOT_SERVING` (its check failing, or
//! the service draining) takes it out at once, as a 503 from `health_path` does; it comes back
//! when it serves again. No timing is asserted: each step waits for a state.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::Lb;
use vitals::probes::from_fn;
use vitals::{Check, Health, Report, Thresholds};
use vitals_testkit::until;

const PATIENCE: Duration = Duration::from_secs(15);

/// A vitals service answering its `name` on `/` and gRPC health on the same port; its one
/// check passes while `healthy` holds.
async fn backend(name: &'static str, healthy: Arc<AtomicBool>) -> (Health, SocketAddr) {
    let check = Check::new(
        "database",
        from_fn(move || {
            let healthy = Arc::clone(&healthy);
            async move {
                if healthy.load(Ordering::SeqCst) {
                    Report::pass()
                } else {
                    Report::fail("connection refused")
                }
            }
        }),
    )
    .interval(Duration::from_millis(50))
    .timeout(Duration::from_millis(40))
    .jitter(Duration::ZERO)
    .thresholds(Thresholds {
        fall: 1,
        rise: 1,
        ..Thresholds::default()
    });
    let health = Health::builder()
        .check(check)
        .drain_delay(Duration::from_secs(30))
        .start()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/", axum::routing::get(move || async move { name }))
        .merge(health.grpc().router());
    tokio::spawn({
        let health = health.clone();
        async move { health.serve(listener, app).await }
    });
    (health, addr)
}

async fn start(addrs: &[(&str, SocketAddr)]) -> Lb {
    let pool = "health_check = \"grpc\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\ninterval_changing = \"200ms\"\ninterval_down = \"200ms\"\nfall = 3\nrise = 2\n";
    crate::support::start_lb_at(addrs, pool).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_checked_over_grpc_follows_each_backends_serving_status() {
    let (a_ok, b_ok) = (
        Arc::new(AtomicBool::new(true)),
        Arc::new(AtomicBool::new(true)),
    );
    let (_a, a) = backend("a", Arc::clone(&a_ok)).await;
    let (b_health, b) = backend("b", Arc::clone(&b_ok)).await;
    let lb = start(&[("a", a), ("b", b)]).await;
    let client = reqwest::Client::new();
    for name in ["a", "b"] {
        until(&format!("{name} in rotation"), PATIENCE, async || {
            lb.in_rotation(&client, name).await.then_some(())
        })
        .await;
    }

    // b's check fails: NOT_SERVING takes it out, and every request goes to a.
    b_ok.store(false, Ordering::SeqCst);
    until("b out of rotation", PATIENCE, async || {
        (!lb.in_rotation(&client, "b").await).then_some(())
    })
    .await;
    for _ in 0..20 {
        let answer = client.get(&lb.base).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "a");
    }
    b_ok.store(true, Ordering::SeqCst);
    until("b back in rotation", PATIENCE, async || {
        lb.in_rotation(&client, "b").await.then_some(())
    })
    .await;

    // b drains (SIGTERM in real life): every gRPC name turns NOT_SERVING, b leaves at once
    // although its HTTP port still answers.
    b_health.shutdown();
    until("b out of rotation while draining", PATIENCE, async || {
        (!lb.in_rotation(&client, "b").await).then_some(())
    })
    .await;
    let direct = client.get(format!("http://{b}/")).send().await.unwrap();
    assert_eq!(
        direct.text().await.unwrap(),
        "b",
        "b still serves what it has"
    );
    for _ in 0..20 {
        let answer = client.get(&lb.base).send().await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "a");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_grpc_service_keeps_a_backend_out() {
    let ok = Arc::new(AtomicBool::new(true));
    let (_a, a) = backend("a", Arc::clone(&ok)).await;
    let pool = "health_check = \"grpc\"\ngrpc_service = \"no.such.Service\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\ninterval_changing = \"200ms\"\ninterval_down = \"200ms\"\nfall = 1\nrise = 1\n";
    let lb = crate::support::start_lb_at(&[("a", a)], pool).await;
    let client = reqwest::Client::new();
    let seen = until("a's check to have failed", PATIENCE, async || {
        let backend = lb.backend(&client, "a").await;
        (backend["state"] != "unknown").then_some(backend)
    })
    .await;
    assert_ne!(seen["state"], "healthy", "{seen}");
    assert!(!lb.in_rotation(&client, "a").await, "{seen}");
}

/// gRPC through the balancer (issue 16, item 2): a pool that speaks HTTP/2 to its backends
/// passes a gRPC call and its trailers (`grpc-status` comes in them: a client that got none
/// would fail the call), and an HTTP/1.1 request reaches the same HTTP/2 backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_passes_through_the_balancer_with_its_trailers() {
    let (_a, a) = backend("a", Arc::new(AtomicBool::new(true))).await;
    let pool = "health_check = \"grpc\"\nbackend_protocol = \"h2\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\nfall = 3\nrise = 2\n";
    let lb = crate::support::start_lb_at(&[("a", a)], pool).await;
    let client = reqwest::Client::new();
    until("a in rotation", PATIENCE, async || {
        lb.in_rotation(&client, "a").await
    })
    .await;
    let through =
        vitals_probes::Grpc::new(lb.bound.listeners[0].0.to_string(), String::new(), None).unwrap();
    for _ in 0..3 {
        let answer = through.observe().await;
        assert_eq!(answer.failure, None, "{:?}", answer.report);
    }
    let unknown =
        vitals_probes::Grpc::new(lb.bound.listeners[0].0.to_string(), "no.such.Service", None)
            .unwrap()
            .observe()
            .await;
    assert!(unknown.failure.is_some(), "{:?}", unknown.report);
    let body = client.get(&lb.base).send().await.unwrap();
    assert_eq!(body.version(), reqwest::Version::HTTP_11);
    assert_eq!(body.text().await.unwrap(), "a");
}
