//! Fuzzing the health+json reader of vitals targets (issue 11): a real HTTP server on
//! loopback answers each case with a status, a content type and a body chosen at random —
//! arbitrary bytes, JSON of any shape, or health+json with hostile values (unknown statuses,
//! control characters and huge numbers, thousands of checks, deep nesting). 1,500 cases;
//! the probe always comes back with a report, never a panic, and a body it accepted is one
//! whose overall status it reports.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use vitals_probes::VitalsHealth;

const CASES: u32 = 1_500;

/// What the server answers next: status, content type, body.
type Next = Arc<Mutex<(u16, String, Vec<u8>)>>;

async fn answer(State(next): State<Next>) -> impl IntoResponse {
    let (status, content_type, body) = next.lock().unwrap().clone();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, content_type)],
        Bytes::from(body),
    )
}

fn status_word() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!("pass")),
        Just(serde_json::json!("warn")),
        Just(serde_json::json!("fail")),
        Just(serde_json::json!("ok")),
        Just(serde_json::json!("up")),
        Just(serde_json::json!(null)),
        Just(serde_json::json!(1)),
        "[ -~\\x00-\\x1f]{0,8}".prop_map(serde_json::Value::from),
    ]
}

fn component() -> impl Strategy<Value = serde_json::Value> {
    (
        status_word(),
        prop::option::of(prop_oneof![
            any::<f64>().prop_map(|f| serde_json::json!(f)),
            any::<i64>().prop_map(|n| serde_json::json!(n)),
            "[ -~]{0,10}".prop_map(serde_json::Value::from),
            Just(serde_json::json!({"nested": [1, [2, [3]]]})),
        ]),
        prop::option::of("[ -~\\x00-\\x1f\u{80}-\u{10ffff}]{0,40}"),
    )
        .prop_map(|(status, observed, output)| {
            let mut c = serde_json::json!({ "status": status });
            if let Some(observed) = observed {
                c["observedValue"] = observed;
            }
            if let Some(output) = output {
                c["output"] = serde_json::Value::from(output);
            }
            c
        })
}

fn health_json() -> impl Strategy<Value = Vec<u8>> {
    (
        status_word(),
        prop::collection::btree_map(
            "[ -~\\x00-\\x1f]{0,16}",
            prop::collection::vec(component(), 0..4),
            0..12,
        ),
        prop::option::of("[ -~]{0,30}"),
    )
        .prop_map(|(status, checks, output)| {
            let mut body = serde_json::json!({ "status": status, "checks": checks });
            if let Some(output) = output {
                body["output"] = serde_json::Value::from(output);
            }
            body.to_string().into_bytes()
        })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => health_json(),
        1 => prop::collection::vec(any::<u8>(), 0..2048),
        1 => Just(b"{\"status\":\"pass\",\"checks\":".repeat(200)),
        1 => (0usize..5000).prop_map(|n| {
            let checks: Vec<String> = (0..n).map(|i| format!("\"c{i}\":[{{\"status\":\"fail\"}}]")).collect();
            format!("{{\"status\":\"warn\",\"checks\":{{{}}}}}", checks.join(",")).into_bytes()
        }),
        1 => Just(b"[]".to_vec()),
        1 => Just(b"null".to_vec()),
    ]
}

#[test]
fn any_answer_gives_a_report_never_a_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let next: Next = Arc::new(Mutex::new((200, String::new(), Vec::new())));
    let url = runtime.block_on(async {
        let app = Router::new()
            .route("/health", get(answer))
            .with_state(Arc::clone(&next));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}/health")
    });
    let probe = VitalsHealth::new(url);
    let strategy = (
        prop_oneof![
            Just(200u16),
            Just(503),
            Just(500),
            Just(404),
            Just(302),
            100u16..600
        ],
        prop_oneof![
            Just("application/health+json".to_owned()),
            Just("application/json; charset=utf-8".to_owned()),
            Just("text/plain".to_owned()),
            "[ -~]{0,20}",
        ],
        body(),
    );
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(CASES)
    });
    runner
        .run(&strategy, |(status, content_type, body)| {
            *next.lock().unwrap() = (status, content_type, body);
            let (report, health) = runtime.block_on(probe.check_with_body());
            prop_assert!(report.output.is_some_and(|o| !o.is_empty()));
            if let Some(health) = health {
                prop_assert_eq!(report.status, health.status);
            }
            Ok(())
        })
        .unwrap();
}
