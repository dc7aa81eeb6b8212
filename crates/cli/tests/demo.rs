//! `vitals demo` as a user runs it: a real process on loopback, broken and mended over HTTP,
//! stopped with a real SIGTERM.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::Instant;
use vitals_testkit::{Signal, signal, wait_for_exit};

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
    let deadline = Instant::now() + Duration::from_secs(20);
    while status(client, url).await != Some(code) {
        assert!(Instant::now() < deadline, "{url} never answered {code}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_demo_reacts_to_a_broken_dependency_and_drains_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args([
            "demo",
            "--listen",
            "127.0.0.1:0",
            "--interval",
            "200ms",
            "--drain-delay",
            "1s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first
        .strip_prefix("vitals demo on ")
        .unwrap_or_else(|| panic!("unexpected banner: {first}"))
        .to_string();
    let client = reqwest::Client::new();

    wait_for(&client, &format!("{base}/startupz"), 200).await;
    wait_for(&client, &format!("{base}/readyz"), 200).await;

    let response = client
        .post(format!("{base}/demo/database/down"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    wait_for(&client, &format!("{base}/readyz"), 503).await;
    assert_eq!(status(&client, &format!("{base}/livez")).await, Some(200));

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

    signal(child.id().unwrap(), Signal::SIGTERM).unwrap();
    wait_for(&client, &format!("{base}/readyz"), 503).await;
    let exit = wait_for_exit(&mut child, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
