//! `vitals probe grpc://…` (issue 14): the real binary against real gRPC health servers on
//! 127.0.0.1 — the vitals library's own (cleartext, on the port of its HTTP probes) and
//! gRPC's own Python server over TLS — with grpc_health_probe's exit codes: 0 SERVING,
//! 1 usage, 2 no connection, 3 the call failed, 4 not serving.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::{probe, probe_code, stdout};
use vitals::probes::from_fn;
use vitals::{Check, Health, Report, Thresholds};
use vitals_testkit::{Signal, grpc_health_server, grpc_python, test_certificates, until};

/// A vitals service whose one check (`database`, also the gRPC name `db`) passes while
/// `healthy` holds; gRPC health and the HTTP probes on one port, and an app without gRPC on
/// another (for UNIMPLEMENTED).
async fn service(healthy: Arc<AtomicBool>) -> (SocketAddr, SocketAddr) {
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
        .expect("start health");
    let bind = || async {
        tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port")
    };
    let (with, without) = (bind().await, bind().await);
    let addrs = (
        with.local_addr().expect("address"),
        without.local_addr().expect("address"),
    );
    let app = health.router().merge(health.grpc().router());
    tokio::spawn({
        let health = health.clone();
        async move { health.serve(with, app).await }
    });
    tokio::spawn(async move { health.serve(without, health.router()).await });
    addrs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_probe_exit_codes_against_a_vitals_service() {
    let healthy = Arc::new(AtomicBool::new(true));
    let (addr, no_grpc) = service(Arc::clone(&healthy)).await;
    let url = format!("grpc://{addr}");
    until(
        "the service to be SERVING",
        Duration::from_secs(20),
        async || (probe_code(&[&url]).await == Some(0)).then_some(()),
    )
    .await;
    let ok = probe(&[&url], 0).await;
    assert!(
        stdout(&ok).starts_with(&format!("healthy: \"\" is SERVING at {addr} in ")),
        "{}",
        stdout(&ok)
    );
    probe(&[&format!("{url}/db")], 0).await;
    probe(&[&format!("{url}/liveness")], 0).await;

    let unknown = probe(&[&format!("{url}/nope")], 3).await;
    assert!(
        stdout(&unknown).contains("the server knows no service \"nope\" (NOT_FOUND)"),
        "{}",
        stdout(&unknown)
    );
    let unimplemented = probe(&[&format!("grpc://{no_grpc}")], 3).await;
    assert!(
        stdout(&unimplemented).contains("UNIMPLEMENTED"),
        "{}",
        stdout(&unimplemented)
    );
    let refused = probe(&["grpc://127.0.0.1:1"], 2).await;
    assert!(
        stdout(&refused).starts_with("could not connect to 127.0.0.1:1"),
        "{}",
        stdout(&refused)
    );

    healthy.store(false, Ordering::SeqCst);
    let db = format!("{url}/db");
    until(
        "the service to be NOT_SERVING",
        Duration::from_secs(20),
        async || (probe_code(&[&db]).await == Some(4)).then_some(()),
    )
    .await;
    let unhealthy = probe(&[&url], 4).await;
    assert_eq!(
        stdout(&unhealthy),
        format!("unhealthy: \"\" is NOT_SERVING at {addr}\n")
    );
    // Liveness has no database in it.
    probe(&[&format!("{url}/liveness")], 0).await;
    probe(&["--quiet", &url], 4).await;
}

/// TLS against gRPC's own Python server: a CA file and a server name, a wrong name, the
/// system's roots (which do not know the test CA), and skipping verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_over_tls_against_grpcs_own_server() {
    let Some(python) = grpc_python() else {
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = test_certificates(dir.path(), "vitals.test").expect("certificates");
    let (cert, key, ca) = (
        certs.cert.to_string_lossy().into_owned(),
        certs.key.to_string_lossy().into_owned(),
        certs.ca.to_string_lossy().into_owned(),
    );
    let (server, address) = grpc_health_server(
        &python,
        &["=SERVING", "orders.v1.Orders=SERVING"],
        Some((&cert, &key)),
    )
    .await
    .expect("start the Python gRPC server");
    let url = format!("grpc://{address}");
    let trusted = [
        "--tls",
        "--tls-ca-cert",
        &ca,
        "--tls-server-name",
        "vitals.test",
    ];

    probe(&[&trusted[..], &[&url]].concat(), 0).await;
    probe(
        &[&trusted[..], &[&format!("{url}/orders.v1.Orders")]].concat(),
        0,
    )
    .await;
    let grpcs = format!("grpcs://{address}");
    probe(
        &[
            "--tls-ca-cert",
            &ca,
            "--tls-server-name",
            "vitals.test",
            &grpcs,
        ],
        0,
    )
    .await;
    let unknown = probe(&[&trusted[..], &[&format!("{url}/nope")]].concat(), 3).await;
    assert!(
        stdout(&unknown).contains("NOT_FOUND"),
        "{}",
        stdout(&unknown)
    );

    // The certificate names vitals.test, not 127.0.0.1.
    let wrong_name = probe(&["--tls", "--tls-ca-cert", &ca, &url], 2).await;
    assert!(
        stdout(&wrong_name).contains("certificate"),
        "{}",
        stdout(&wrong_name)
    );
    // The system's roots do not include the test CA.
    let unknown_ca = probe(&["--tls", "--tls-server-name", "vitals.test", &url], 2).await;
    assert!(
        stdout(&unknown_ca).contains("certificate"),
        "{}",
        stdout(&unknown_ca)
    );
    probe(&["--tls", "--tls-insecure-skip-verify", &url], 0).await;

    // SIGUSR1 flips every name to NOT_SERVING.
    server.signal(Signal::SIGUSR1).expect("signal the server");
    assert!(
        server
            .line(1)
            .await
            .is_some_and(|line| line.starts_with("flipped"))
    );
    let unhealthy = probe(&[&trusted[..], &[&url]].concat(), 4).await;
    assert!(
        stdout(&unhealthy).contains("is NOT_SERVING"),
        "{}",
        stdout(&unhealthy)
    );
}

#[tokio::test]
async fn grpc_usage_errors_exit_1_and_name_the_bad_value() {
    let cases: &[(&[&str], &str)] = &[
        (&["grpc://127.0.0.1"], "needs a host and a port"),
        (&["grpc://127.0.0.1:1/a/b"], "one service name"),
        (&["grpc://127.0.0.1:1/?x=1"], "has no query"),
        (
            &["--tls-ca-cert", "ca.pem", "grpc://127.0.0.1:1"],
            "--tls-ca-cert needs --tls",
        ),
        (
            &["--tls", "http://127.0.0.1:1/"],
            "--tls applies to grpc:// URLs only",
        ),
        (
            &[
                "--tls",
                "--tls-insecure-skip-verify",
                "--tls-ca-cert",
                "ca.pem",
                "grpc://127.0.0.1:1",
            ],
            "contradict each other",
        ),
        (
            &[
                "--tls",
                "--tls-ca-cert",
                "/nonexistent/ca.pem",
                "grpc://127.0.0.1:1",
            ],
            "cannot read CA file /nonexistent/ca.pem",
        ),
        (
            &["--header", "a: b", "grpc://127.0.0.1:1"],
            "--header applies to http(s) URLs only",
        ),
    ];
    for (args, message) in cases {
        let output = probe(args, 1).await;
        let text = String::from_utf8_lossy(&output.stderr);
        assert!(
            text.starts_with("vitals probe: ") && text.contains(message),
            "{args:?}: {text}"
        );
    }
}

#[test]
fn help_documents_the_grpc_exit_codes() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(["probe", "--help"])
        .output()
        .expect("run vitals");
    let text = String::from_utf8_lossy(&help.stdout);
    for expected in [
        "grpc_health_probe",
        "NOT_FOUND",
        "NOT_SERVING",
        "--tls-ca-cert",
        "--tls-server-name",
        "--tls-insecure-skip-verify",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} missing from:\n{text}"
        );
    }
}

/// A server that accepts connections and never says a word: over cleartext HTTP/2 the
/// connection is made and the call times out (3, DEADLINE_EXCEEDED); over TLS the handshake
/// never completes, so there is no connection (2), as grpc_health_probe tells them apart.
#[tokio::test]
async fn a_silent_server_is_a_failed_call_in_cleartext_and_no_connection_over_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let url = format!("grpc://{addr}");
    let silent = probe(&["--timeout", "500ms", &url], 3).await;
    assert!(
        stdout(&silent).ends_with("no answer within 500ms (DEADLINE_EXCEEDED)\n"),
        "{}",
        stdout(&silent)
    );
    let tls = probe(
        &[
            "--timeout",
            "500ms",
            "--tls",
            "--tls-insecure-skip-verify",
            &url,
        ],
        2,
    )
    .await;
    assert_eq!(
        stdout(&tls),
        format!("could not connect: no connection to {addr} within 500ms\n")
    );
}
