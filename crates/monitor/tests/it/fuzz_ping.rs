//! Fuzzing the ping URLs and bodies of a real `vitals serve` (issue 11): 1,000 requests with
//! random methods, path segments (percent-encoded arbitrary bytes, numbers at the edges of
//! the exit codes, the real id and verbs), run ids, content types and bodies (arbitrary
//! bytes, health+json shapes with hostile values). Every answer is below 500, no panic
//! happens anywhere in the process, and the monitor still answers `/livez` afterwards.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const CASES: u32 = 1_000;

fn segment() -> impl Strategy<Value = String> {
    let encoded = prop::collection::vec(any::<u8>(), 0..24).prop_map(|bytes| {
        bytes
            .iter()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (*b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect::<String>()
    });
    prop_oneof![
        Just("job".to_owned()),
        Just("start".to_owned()),
        Just("fail".to_owned()),
        Just("log".to_owned()),
        Just("0".to_owned()),
        Just("255".to_owned()),
        Just("256".to_owned()),
        Just("-1".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("..".to_owned()),
        Just("%00".to_owned()),
        encoded,
    ]
}

fn body() -> impl Strategy<Value = (Option<&'static str>, Vec<u8>)> {
    let json = (
        prop_oneof![
            Just("pass"),
            Just("warn"),
            Just("fail"),
            Just("FAIL"),
            Just(""),
            Just("\u{0}")
        ],
        prop::collection::vec(("[ -~\\x00-\\x1f]{0,12}", any::<i64>()), 0..4),
    )
        .prop_map(|(status, checks)| {
            let checks: serde_json::Map<String, serde_json::Value> = checks
                .into_iter()
                .map(|(name, n)| {
                    (
                        name,
                        serde_json::json!([{ "status": status, "observedValue": n }]),
                    )
                })
                .collect();
            serde_json::json!({ "status": status, "checks": checks })
                .to_string()
                .into_bytes()
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..4096).prop_map(|b| (None, b)),
        json.clone()
            .prop_map(|b| (Some("application/health+json"), b)),
        json.prop_map(|b| (Some("application/json"), b)),
        prop::collection::vec(any::<u8>(), 0..512)
            .prop_map(|b| (Some("application/health+json"), b)),
    ]
}

#[test]
fn random_pings_never_get_a_5xx_nor_panic_the_monitor() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = {:?}
ping_body_limit = 2048

[[target]]
id = "job"
kind = "heartbeat"
period = "1h"
"#,
        data.path().display().to_string()
    );
    let base = runtime.block_on(crate::support::serve(&text));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let before = vitals_testkit::panics();
    let methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"];
    let strategy = (
        0..methods.len(),
        prop::collection::vec(segment(), 0..4),
        prop::option::of("[ -~]{0,16}"),
        body(),
    );
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(CASES)
    });
    runner
        .run(
            &strategy,
            |(method, segments, rid, (content_type, body))| {
                let mut url = format!("{base}/ping/{}", segments.join("/"));
                if let Some(rid) = rid {
                    url.push_str("?rid=");
                    url.push_str(&rid.replace(['#', ' ', '&'], "_"));
                }
                let method = reqwest::Method::from_bytes(methods[method].as_bytes()).unwrap();
                let mut request = client.request(method, &url).body(body);
                if let Some(content_type) = content_type {
                    request = request.header("content-type", content_type);
                }
                let status =
                    runtime.block_on(async move { request.send().await.map(|r| r.status()) });
                match status {
                    Ok(status) => prop_assert!(status.as_u16() < 500, "{status} for {url}"),
                    // reqwest refused to build it (a URL it cannot parse): not the monitor's doing.
                    Err(error) if error.is_builder() => {}
                    Err(error) => prop_assert!(false, "{url}: {error}"),
                }
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(vitals_testkit::panics() - before, 0, "the monitor panicked");
    let livez = runtime
        .block_on(async { client.get(format!("{base}/livez")).send().await })
        .unwrap();
    assert_eq!(livez.status(), 200);
}
