//! `vitals demo` as a user runs it: a real process on loopback, broken and mended over HTTP,
//! stopped with a real SIGTERM.

#![allow(clippy::unwrap_used)] // test helpers

mod support;

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
        support::vitals().args([
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
    // gRPC health on the same port, as the banner says (issue 14).
    let grpc = base.replacen("http://", "grpc://", 1);
    assert_eq!(support::probe_code(&[&grpc]).await, Some(0));
    assert_eq!(
        support::probe_code(&[&format!("{grpc}/demo.Database")]).await,
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
        support::probe_code(&[&grpc]).await,
        Some(4),
        "NOT_SERVING with the database down"
    );
    assert_eq!(
        support::probe_code(&[&format!("{grpc}/liveness")]).await,
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
