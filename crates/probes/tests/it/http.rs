//! The HTTP probe against a real axum server on loopback: methods, headers, body text,
//! JSONPath conditions, the warn limit, the body size cap, and a service's own "unhealthy".

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, get};
use serde_json::json;
use vitals_core::Status;
use vitals_probes::{Http, HttpFailure, Probe};

async fn serve() -> SocketAddr {
    let app = Router::new()
        .route("/text", get(|| async { "all systems nominal" }))
        .route(
            "/json",
            get(|| async {
                axum::Json(json!({
                    "status": "pass",
                    "version": 3,
                    "checks": [{"status": "pass"}, {"status": "warn"}],
                }))
            }),
        )
        .route("/method", any(|method: Method| async move { method.to_string() }))
        .route(
            "/token",
            get(|headers: HeaderMap| async move {
                match headers.get("x-token").and_then(|value| value.to_str().ok()) {
                    Some("s3cret") => (StatusCode::OK, "welcome"),
                    _ => (StatusCode::UNAUTHORIZED, "who are you"),
                }
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(300)).await;
                "late but fine"
            }),
        )
        .route("/big", get(|| async { "x".repeat(2 * 1024 * 1024) }))
        .route(
            "/health-fail",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/health+json")],
                    r#"{"status":"fail","checks":{"database":[{"status":"fail","output":"refused"}]}}"#,
                )
                    .into_response()
            }),
        )
        .route(
            "/verbose-fail",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed\n",
                )
            }),
        )
        .route(
            "/plain-fail",
            get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "upstream is down") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("listener address");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn output(report: &vitals_core::Report) -> &str {
    report.output.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn method_and_headers_are_sent() {
    let addr = serve().await;
    let probe = Http::new(format!("http://{addr}/method"))
        .method(Method::POST)
        .body_contains("POST");
    let report = probe.check().await;
    assert_eq!(report.status, Status::Pass, "{report:?}");

    let anonymous = Http::new(format!("http://{addr}/token")).observe().await;
    assert_eq!(anonymous.code, Some(401));
    assert_eq!(anonymous.failure, Some(HttpFailure::Unexpected));
    assert!(
        output(&anonymous.report).ends_with("answered HTTP 401, expected 200-299"),
        "{anonymous:?}"
    );
    let known = Http::new(format!("http://{addr}/token"))
        .header("X-Token", "s3cret")
        .unwrap()
        .check()
        .await;
    assert_eq!(known.status, Status::Pass, "{known:?}");
}

#[tokio::test]
async fn body_text_conditions_say_what_was_missing() {
    let addr = serve().await;
    let url = format!("http://{addr}/text");
    let found = Http::new(&url).body_contains("nominal").check().await;
    assert_eq!(found.status, Status::Pass, "{found:?}");
    let missing = Http::new(&url).body_contains("ok").observe().await;
    assert_eq!(missing.failure, Some(HttpFailure::Unexpected));
    assert_eq!(output(&missing.report), "body does not contain \"ok\"");
}

#[tokio::test]
async fn json_path_conditions_compare_values_and_presence() {
    let addr = serve().await;
    let url = format!("http://{addr}/json");
    let pass = Http::new(&url)
        .json_path("$.status", Some(json!("pass")))
        .unwrap()
        .json_path("$.version", Some(json!(3)))
        .unwrap()
        .check()
        .await;
    assert_eq!(pass.status, Status::Pass, "{pass:?}");

    let wrong = Http::new(&url)
        .json_path("$.status", Some(json!("fail")))
        .unwrap()
        .check()
        .await;
    assert_eq!(wrong.status, Status::Fail);
    assert_eq!(output(&wrong), "$.status is \"pass\", expected \"fail\"");

    let absent = Http::new(&url)
        .json_path("$.uptime", None)
        .unwrap()
        .check()
        .await;
    assert_eq!(output(&absent), "$.uptime matched nothing");

    let every = Http::new(&url)
        .json_path("$.checks[*].status", Some(json!("pass")))
        .unwrap()
        .check()
        .await;
    assert_eq!(
        output(&every),
        "$['checks'][1]['status'] is \"warn\", expected \"pass\""
    );

    let not_json = Http::new(format!("http://{addr}/text"))
        .json_path("$.status", None)
        .unwrap()
        .check()
        .await;
    assert_eq!(not_json.status, Status::Fail);
    assert!(
        output(&not_json).starts_with("body is not JSON"),
        "{not_json:?}"
    );
}

#[tokio::test]
async fn a_slow_answer_warns_with_its_time_and_the_limit() {
    let addr = serve().await;
    // The handler sleeps 300 ms, so the answer takes at least that long, whatever the machine.
    let answer = Http::new(format!("http://{addr}/slow"))
        .warn_over(Duration::from_millis(100))
        .observe()
        .await;
    assert_eq!(answer.report.status, Status::Warn, "{answer:?}");
    assert_eq!(answer.failure, None);
    let text = output(&answer.report);
    assert!(text.starts_with("answered in "), "{text}");
    assert!(text.ends_with(" ms, over the 100 ms warn limit"), "{text}");
    let observed = answer.report.observed.as_ref().unwrap();
    assert!(observed.value >= 300.0, "{observed:?}");
    assert_eq!(observed.unit, "ms");
}

#[tokio::test]
async fn bodies_are_read_only_up_to_the_limit() {
    let addr = serve().await;
    let report = Http::new(format!("http://{addr}/big"))
        .body_contains("x")
        .check()
        .await;
    assert_eq!(report.status, Status::Fail);
    assert!(
        output(&report).starts_with("body is over the 1024 KiB limit"),
        "{report:?}"
    );
    // Without a body condition, the body is not read, and its size does not matter.
    let report = Http::new(format!("http://{addr}/big")).check().await;
    assert_eq!(report.status, Status::Pass, "{report:?}");
}

#[tokio::test]
async fn a_service_saying_it_is_unhealthy_is_told_from_an_unexpected_answer() {
    let addr = serve().await;
    let health = Http::new(format!("http://{addr}/health-fail"))
        .observe()
        .await;
    assert_eq!(health.failure, Some(HttpFailure::Unhealthy), "{health:?}");
    assert!(
        output(&health.report)
            .ends_with("answered HTTP 503: service reports fail (1 check: database fail)"),
        "{health:?}"
    );

    let verbose = Http::new(format!("http://{addr}/verbose-fail"))
        .observe()
        .await;
    assert_eq!(verbose.failure, Some(HttpFailure::Unhealthy), "{verbose:?}");
    assert!(
        output(&verbose.report).ends_with("readyz check failed: etcd failed: reason withheld"),
        "{verbose:?}"
    );

    let plain = Http::new(format!("http://{addr}/plain-fail"))
        .observe()
        .await;
    assert_eq!(plain.failure, Some(HttpFailure::Unexpected), "{plain:?}");
    assert_eq!(plain.code, Some(503));
}

/// Issue 11, item 10: a target URL with credentials showed them in every failing outcome
/// (ours, and reqwest's "error sending request for url (…)").
#[tokio::test]
async fn credentials_in_the_url_never_reach_the_output() {
    let addr = serve().await;
    let answered = Http::new(format!("http://alice:s3cret@{addr}/missing?token=abc123"))
        .check()
        .await;
    let closed = vitals_testkit::reserve_port().unwrap();
    let unanswered = Http::new(format!(
        "http://alice:s3cret@{}/health?token=abc123",
        closed.addr()
    ))
    .check()
    .await;
    for report in [answered, unanswered] {
        assert_eq!(report.status, Status::Fail);
        let output = report.output.unwrap();
        assert!(
            !output.contains("s3cret") && !output.contains("abc123"),
            "{output}"
        );
        assert!(output.contains("http://***@"), "{output}");
    }
}
