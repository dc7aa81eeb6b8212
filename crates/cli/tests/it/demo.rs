//! `vitals demo` as a user runs it: a real process on loopback, broken and mended over HTTP,
//! stopped with a real SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers

use std::time::Duration;

use vitals_testkit::{Ready, Running, Signal, holds, until};

async fn status(client: &reqwest::Client, url: &str) -> Option<u16> {
    let response = client
        .get(url)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    Some(response.status().as_u16())
}

async fn wait_for(client: &reqwest::Client, url: &str, code: u16) {
    let what = format!("{url} to answer {code}");
    until(what, Duration::from_secs(20), async || {
        holds(status(client, url).await, |seen| *seen == Some(code))
    })
    .await;
}

#[tokio::test]
async fn the_demo_reacts_to_a_broken_dependency_and_drains_on_sigterm() {
    const BANNER: &str = "vitals demo on ";
    let mut demo = Running::start(
        crate::support::vitals().args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "200ms",
            "--drain-delay",
            "1s",
        ]),
        Ready::Line(BANNER),
    )
    .await
    .unwrap();
    assert_eq!(
        demo.line(0).await.as_deref(),
        Some(demo.banner()),
        "the first line"
    );
    let base = demo.banner()[BANNER.len()..].to_string();
    let client = reqwest::Client::new();

    wait_for(&client, &format!("{base}/startupz"), 200).await;
    wait_for(&client, &format!("{base}/readyz"), 200).await;
    // `/` says what there is to try (issue 17, item 13).
    let index = client
        .get(&base)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        index.contains("/readyz") && index.contains("/demo/database/MODE"),
        "{index}"
    );
    // gRPC health on the same port, as the banner says (issue 14).
    let grpc = base.replacen("http://", "grpc://", 1);
    assert_eq!(crate::support::probe_code(&[&grpc]).await, Some(0));
    assert_eq!(
        crate::support::probe_code(&[&format!("{grpc}/demo.Database")]).await,
        Some(0)
    );

    let response = client
        .post(format!("{base}/demo/database/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for(&client, &format!("{base}/readyz"), 503).await;
    assert_eq!(status(&client, &format!("{base}/livez")).await, Some(200));
    assert_eq!(
        crate::support::probe_code(&[&grpc]).await,
        Some(4),
        "NOT_SERVING with the database down"
    );
    assert_eq!(
        crate::support::probe_code(&[&format!("{grpc}/liveness")]).await,
        Some(0)
    );

    client
        .post(format!("{base}/demo/database/up"))
        .send()
        .await
        .unwrap();
    wait_for(&client, &format!("{base}/readyz"), 200).await;

    let response = client
        .post(format!("{base}/demo/database/sideways"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    demo.signal(Signal::SIGTERM).unwrap();
    wait_for(&client, &format!("{base}/readyz"), 503).await;
    let exit = demo.wait(Duration::from_secs(20)).await.unwrap();
    assert_eq!(exit.code(), Some(0));
}

/// README's quick start as written (`examples/quickstart.toml` watching `vitals demo`), with
/// free ports and a fresh data directory in place of 8000, 7070 and ./vitals-data: every
/// target is checked, the demo's broken database shows, the heartbeat takes its ping.
#[tokio::test]
async fn the_quick_start_watches_the_demo_and_takes_a_ping() {
    const BANNER: &str = "vitals demo on ";
    let demo = Running::start(
        crate::support::vitals().args(["demo", "--listen", "127.0.0.1:0", "--interval", "200ms"]),
        Ready::Line(BANNER),
    )
    .await
    .unwrap();
    let demo_base = demo.banner()[BANNER.len()..].to_string();
    let demo_addr = demo_base
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let data = tempfile::tempdir().unwrap();
    let example = include_str!("../../../../examples/quickstart.toml");
    assert!(example.contains("127.0.0.1:8000") && example.contains("127.0.0.1:7070"));
    let config = example
        .replace("127.0.0.1:8000", demo_addr)
        .replace("127.0.0.1:7070", "127.0.0.1:0")
        .replace(
            "\"./vitals-data\"",
            &format!("{:?}", data.path().display().to_string()),
        )
        .replace("interval = \"5s\"", "interval = \"300ms\"")
        .replace("timeout = \"2s\"", "timeout = \"200ms\"")
        .replace(
            "interval_changing = \"2s\"",
            "interval_changing = \"200ms\"",
        );
    let path = data.path().join("quickstart.toml");
    std::fs::write(&path, config).unwrap();
    let (_monitor, base) = crate::support::serve(&path).await;
    let client = reqwest::Client::new();

    let state = async |id: &str| -> Option<String> {
        let target: serde_json::Value = client
            .get(format!("{base}/api/v1/targets/{id}"))
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        target["state"].as_str().map(str::to_owned)
    };
    for id in ["demo", "demo-live"] {
        until(
            format!("{id} healthy"),
            Duration::from_secs(20),
            async || holds(state(id).await, |s| s.as_deref() == Some("healthy")),
        )
        .await;
    }
    client
        .post(format!("{demo_base}/demo/database/down"))
        .send()
        .await
        .unwrap();
    until("demo unhealthy", Duration::from_secs(20), async || {
        holds(state("demo").await, |s| {
            matches!(s.as_deref(), Some("unhealthy" | "down"))
        })
    })
    .await;
    crate::support::ping(&client, &base, "quickstart-job").await;
    until("the job healthy", Duration::from_secs(20), async || {
        holds(state("job").await, |s| s.as_deref() == Some("healthy"))
    })
    .await;
}
