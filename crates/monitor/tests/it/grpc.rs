//! `kind = "grpc"` targets end to end (issue 14): a real `vitals serve` checking real gRPC
//! health servers on loopback — a vitals service (cleartext, on the port of its HTTP probes)
//! whose check fails and mends, a name it does not know, and gRPC's own Python server over
//! TLS with a CA file and a server name.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::start;
use vitals::probes::from_fn;
use vitals::{Check, Health, Report, Thresholds};
use vitals_testkit::{Signal, grpc_health_server, grpc_python, test_certificates};

const FAST: &str = "interval = \"200ms\"\ntimeout = \"100ms\"\njitter = \"0s\"\ninterval_changing = \"100ms\"\ninterval_down = \"200ms\"\n";

/// A vitals service whose `database` check (also the gRPC name `db`) passes while `healthy`
/// holds, with gRPC health beside its HTTP probes.
async fn service(healthy: Arc<AtomicBool>) -> SocketAddr {
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
        .grpc_service("db", vitals::grpc::Source::Check("database".into()))
        .start()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = health.router().merge(health.grpc().router());
    tokio::spawn(async move { health.serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_targets_follow_the_services_serving_status() {
    let healthy = Arc::new(AtomicBool::new(true));
    let addr = service(Arc::clone(&healthy)).await;
    let monitor = start(&format!(
        "[[target]]\nid = \"orders\"\nkind = \"grpc\"\naddress = \"{addr}\"\n{FAST}\n\
         [[target]]\nid = \"orders-db\"\nkind = \"grpc\"\naddress = \"{addr}\"\nservice = \"db\"\n{FAST}\n\
         [[target]]\nid = \"nope\"\nkind = \"grpc\"\naddress = \"{addr}\"\nservice = \"nope\"\n{FAST}\n\
         [[target]]\nid = \"gone\"\nkind = \"grpc\"\naddress = \"127.0.0.1:1\"\n{FAST}\n"
    ))
    .await;
    let healthy_now = monitor.wait_for_state("orders-db", "healthy").await;
    assert!(
        healthy_now["last"]["output"]
            .as_str()
            .unwrap()
            .contains("\"db\" is SERVING"),
        "{healthy_now}"
    );
    monitor.wait_for_state("orders", "healthy").await;
    let unknown = monitor.wait_for_state("nope", "down").await;
    assert!(
        unknown["last"]["output"]
            .as_str()
            .unwrap()
            .contains("NOT_FOUND"),
        "{unknown}"
    );
    let gone = monitor.wait_for_state("gone", "down").await;
    assert!(
        gone["last"]["output"]
            .as_str()
            .unwrap()
            .starts_with("could not connect to 127.0.0.1:1"),
        "{gone}"
    );

    healthy.store(false, Ordering::SeqCst);
    let down = monitor.wait_for_state("orders-db", "down").await;
    assert!(
        down["last"]["output"]
            .as_str()
            .unwrap()
            .contains("NOT_SERVING"),
        "{down}"
    );
    monitor.wait_for_state("orders", "down").await;
    healthy.store(true, Ordering::SeqCst);
    monitor.wait_for_state("orders-db", "healthy").await;
    monitor.wait_for_state("orders", "healthy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_targets_over_tls_against_grpcs_own_server() {
    let Some(python) = grpc_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let certs = test_certificates(dir.path(), "vitals.test").unwrap();
    let (cert, key) = (
        certs.cert.to_string_lossy().into_owned(),
        certs.key.to_string_lossy().into_owned(),
    );
    let (server, address) = grpc_health_server(&python, &["=SERVING"], Some((&cert, &key)))
        .await
        .unwrap();
    let ca = certs.ca.display().to_string();
    let monitor = start(&format!(
        "[[target]]\nid = \"verified\"\nkind = \"grpc\"\naddress = \"{address}\"\ntls = true\ntls_ca_cert = {ca:?}\ntls_server_name = \"vitals.test\"\n{FAST}\n\
         [[target]]\nid = \"unverified\"\nkind = \"grpc\"\naddress = \"{address}\"\ntls = true\ntls_insecure_skip_verify = true\n{FAST}\n\
         [[target]]\nid = \"wrong-name\"\nkind = \"grpc\"\naddress = \"{address}\"\ntls = true\ntls_ca_cert = {ca:?}\n{FAST}\n"
    ))
    .await;
    monitor.wait_for_state("verified", "healthy").await;
    monitor.wait_for_state("unverified", "healthy").await;
    let wrong = monitor.wait_for_state("wrong-name", "down").await;
    assert!(
        wrong["last"]["output"]
            .as_str()
            .unwrap()
            .contains("certificate"),
        "{wrong}"
    );

    server.signal(Signal::SIGUSR1).unwrap();
    let down = monitor.wait_for_state("verified", "down").await;
    assert!(
        down["last"]["output"]
            .as_str()
            .unwrap()
            .contains("NOT_SERVING"),
        "{down}"
    );
}
