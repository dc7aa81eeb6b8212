//! `vitals probe` as Docker and Kubernetes run it: the real binary against real servers on
//! 127.0.0.1, one exit code per case, as documented in `vitals probe --help`.

use std::net::SocketAddr;

use crate::support::{probe, stderr, stdout};
use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};

/// A server answering 200, 503 with a health+json "fail", 503 plain, and 404 elsewhere.
async fn server() -> SocketAddr {
    let app = Router::new()
        .route("/ok", get(|| async { "all good" }))
        .route(
            "/health-fail",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/health+json")],
                    r#"{"status":"fail","checks":{"database":[{"status":"fail"}]}}"#,
                )
                    .into_response()
            }),
        )
        .route(
            "/plain-fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "maintenance") }),
        )
        .route("/submit", post(|| async { "posted" }))
        .route(
            "/token",
            get(|headers: HeaderMap| async move {
                match headers.get("x-token").and_then(|value| value.to_str().ok()) {
                    Some("s3cret") => StatusCode::OK,
                    _ => StatusCode::UNAUTHORIZED,
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn a_healthy_answer_exits_0_with_one_line() {
    let addr = server().await;
    let ok = probe(&[&format!("http://{addr}/ok")], 0).await;
    let line = stdout(&ok);
    assert!(line.starts_with("healthy: HTTP 200 in "), "{line}");
    assert!(
        line.ends_with(" ms\n") && line.lines().count() == 1,
        "{line}"
    );
    assert_eq!(stderr(&ok), "", "no log output by default");

    let quiet = probe(&["--quiet", &format!("http://{addr}/ok")], 0).await;
    assert_eq!(stdout(&quiet), "");

    probe(&["--expect-status", "200", &format!("http://{addr}/ok")], 0).await;
    probe(
        &["--body-contains", "good", &format!("http://{addr}/ok")],
        0,
    )
    .await;
    probe(&["--method", "post", &format!("http://{addr}/submit")], 0).await;
    probe(
        &[
            "--header",
            "X-Token: s3cret",
            &format!("http://{addr}/token"),
        ],
        0,
    )
    .await;
    probe(
        &["--expect-status", "404", &format!("http://{addr}/nowhere")],
        0,
    )
    .await;
}

#[tokio::test]
async fn an_unexpected_answer_exits_3() {
    let addr = server().await;
    let missing = probe(&[&format!("http://{addr}/nowhere")], 3).await;
    assert!(
        stdout(&missing).starts_with("unexpected response: GET ")
            && stdout(&missing).contains("answered HTTP 404, expected 200-299"),
        "{}",
        stdout(&missing)
    );
    probe(&[&format!("http://{addr}/plain-fail")], 3).await;
    let body = probe(
        &["--body-contains", "great", &format!("http://{addr}/ok")],
        3,
    )
    .await;
    assert!(
        stdout(&body).contains("body does not contain \"great\""),
        "{}",
        stdout(&body)
    );
    probe(&[&format!("http://{addr}/submit")], 3).await; // GET on a POST route: 405
    probe(&[&format!("http://{addr}/token")], 3).await; // no token: 401
}

#[tokio::test]
async fn a_service_reporting_itself_unhealthy_exits_4() {
    let addr = server().await;
    let output = probe(&[&format!("http://{addr}/health-fail")], 4).await;
    assert!(
        stdout(&output).starts_with("unhealthy: ")
            && stdout(&output).contains("service reports fail (1 check: database fail)"),
        "{}",
        stdout(&output)
    );
}

#[tokio::test]
async fn no_connection_exits_2() {
    // A loopback port held with nothing listening on it: connections are refused.
    let port = vitals_testkit::reserve_port().expect("a loopback port");
    let closed = port.addr();
    let http = probe(&[&format!("http://{closed}/")], 2).await;
    assert!(
        stdout(&http).starts_with("could not connect: "),
        "{}",
        stdout(&http)
    );
    probe(&[&format!("tcp://{closed}")], 2).await;

    // A listener that accepts and never answers: the timeout ends the wait.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let silent_addr = silent.local_addr().expect("listener address");
    let output = probe(
        &["--timeout", "200ms", &format!("http://{silent_addr}/")],
        2,
    )
    .await;
    assert_eq!(
        stdout(&output),
        format!("could not connect: no response from http://{silent_addr}/ within 200ms\n")
    );
    drop(silent);
}

#[tokio::test]
async fn a_listening_tcp_port_exits_0() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    let output = probe(&[&format!("tcp://{addr}")], 0).await;
    let line = stdout(&output);
    assert!(
        line.starts_with(&format!("healthy: connected to {addr} in ")),
        "{line}"
    );
}

#[tokio::test]
async fn usage_errors_exit_1_and_name_the_bad_value() {
    let cases: &[(&[&str], &str)] = &[
        (&["ftp://127.0.0.1/"], "bad URL \"ftp://127.0.0.1/\""),
        (&["not a url"], "bad URL \"not a url\""),
        (&["tcp://127.0.0.1"], "needs a host and a port"),
        (
            &["--timeout", "5 parsecs", "http://127.0.0.1:1/"],
            "bad --timeout \"5 parsecs\"",
        ),
        (
            &["--expect-status", "2xx", "http://127.0.0.1:1/"],
            "bad --expect-status \"2xx\"",
        ),
        (
            &["--header", "NoColon", "http://127.0.0.1:1/"],
            "bad --header \"NoColon\"",
        ),
        (
            &["--header", "Bad Name: v", "http://127.0.0.1:1/"],
            "invalid header name",
        ),
        (
            &["--method", "GET POST", "http://127.0.0.1:1/"],
            "bad --method \"GET POST\"",
        ),
        (
            &["--method", "POST", "tcp://127.0.0.1:1"],
            "--method applies to http(s) URLs only",
        ),
    ];
    for (args, message) in cases {
        let output = probe(args, 1).await;
        let text = stderr(&output);
        assert!(
            text.starts_with("vitals probe: ") && text.contains(message),
            "{args:?}: {text}"
        );
        assert_eq!(stdout(&output), "", "{args:?}");
    }
}

#[test]
fn clap_usage_errors_exit_one_and_help_exits_zero() {
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(["probe"])
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(["probe", "--no-such-flag", "http://127.0.0.1:1/"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(["probe", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("4"), "{text}");
}
