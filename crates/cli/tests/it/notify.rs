//! Alerts across crashes of the real `vitals serve`: alerts created while the webhook
//! receiver is down are delivered after the monitor is killed with SIGKILL and restarted,
//! and a monitor killed in the middle of a delivery sends that alert again with the same
//! Idempotency-Key, so a receiver that deduplicates by key sees each alert exactly once.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::collections::HashMap;
use std::time::Duration;

use crate::support::{ping, serve};
use vitals_testkit::{ReservedPort, Signal, Webhook, reserve_port, until};

const WAIT: Duration = Duration::from_secs(20);

/// The webhook receiver comes up on the port the config names: it takes `delay` to answer
/// each request.
fn receiver(port: ReservedPort, delay: Duration) -> Webhook {
    let hook = Webhook::on(port.listen().unwrap()).unwrap();
    hook.delay(delay);
    hook
}

/// Requests per Idempotency-Key, and how many arrived in all.
fn seen(hook: &Webhook) -> (HashMap<String, usize>, usize) {
    let requests = hook.requests();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    for request in &requests {
        let key = request.headers["idempotency-key"]
            .to_str()
            .unwrap()
            .to_owned();
        *by_key.entry(key).or_default() += 1;
    }
    (by_key, requests.len())
}

fn pending(data: &std::path::Path) -> Vec<vitals_monitor::store::OutboxRow> {
    vitals_monitor::store::Store::open_read_only(data)
        .unwrap()
        .outbox(100, true)
        .unwrap()
}

/// A temporary directory with a config (see [`write_config`]) for a receiver on a port held
/// for it, where nothing listens yet (connections are refused): (dir, data dir, port, config
/// file).
fn setup() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    ReservedPort,
    std::path::PathBuf,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port = reserve_port().unwrap();
    let config = write_config(dir.path(), &data, port.port());
    (dir, data, port, config)
}

/// A heartbeat target whose outages notify a webhook on `port`, retrying fast.
fn write_config(dir: &std::path::Path, data: &std::path::Path, port: u16) -> std::path::PathBuf {
    let config = dir.join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            r#"[server]
listen = "127.0.0.1:0"
data_dir = {data:?}

[notify]
group_wait = "0s"
retry_min = "50ms"
retry_max = "200ms"

[[target]]
id = "job"
kind = "heartbeat"
# Pinged as /ping/job: a public ping id, accepted as such (issue 11, item 1).
ping_id = "job"
public_ping_id = true
period = "1h"
fall = 1
rise = 1
down_after = 2
flap = false

[[channel]]
id = "hook"
kind = "webhook"
url = "http://127.0.0.1:{port}/hook"
timeout = "5s"

[[rule]]
group_by = ["..."]
on = ["unhealthy", "recovered"]
channels = ["hook"]
"#,
            data = data.display().to_string()
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_pending_at_a_sigkill_are_delivered_after_restart_once_per_key() {
    let (_dir, data, port, config) = setup();
    let client = reqwest::Client::new();

    // 1. The receiver is down: three outages make six alerts, all pending.
    let (mut first, base) = serve(&config).await;
    ping(&client, &base, "job").await;
    for _ in 0..3 {
        ping(&client, &base, "job/fail").await;
        ping(&client, &base, "job").await;
    }
    // The first row fails and is retried; the other five wait behind it, in order.
    until("six alerts pending, the first failing", WAIT, async || {
        let rows = pending(&data);
        rows.len() == 6 && rows.iter().any(|r| r.attempts >= 1)
    })
    .await;
    first.kill().await.unwrap();

    // 2. The receiver is back, but slow: the restarted monitor is killed again while a
    // delivery is in flight.
    let hook = receiver(port, Duration::from_millis(400));
    let (mut second, _) = serve(&config).await;
    until("a delivery is in flight", WAIT, async || !hook.is_empty()).await;
    second.kill().await.unwrap();
    assert_eq!(pending(&data).len(), 6, "nothing was acknowledged yet");

    // 3. A third run delivers everything.
    let (mut third, _) = serve(&config).await;
    until("every alert delivered", WAIT, async || {
        pending(&data).is_empty()
    })
    .await;
    let (by_key, requests) = seen(&hook);
    assert_eq!(by_key.len(), 6, "every alert arrived: {by_key:?}");
    // The one in flight at the kill came twice, with the same key; a receiver that
    // deduplicates by Idempotency-Key acts on each alert once.
    let repeated: Vec<_> = by_key.values().filter(|n| **n > 1).collect();
    assert_eq!(repeated, [&2], "{by_key:?}");
    assert_eq!(requests, 7);
    third.signal(Signal::SIGTERM).unwrap();
    third.wait(Duration::from_secs(30)).await.unwrap();
}

/// The figure docs/ALERTS.md reports: alerts lost or duplicated across many SIGKILLs
/// during delivery. Run with `cargo test -p vitals-cli --test notify -- --ignored
/// --nocapture`; it takes about half a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: many restarts of the real binary"]
async fn crash_loop_during_delivery_loses_nothing() {
    const OUTAGES: usize = 15;
    let (_dir, data, port, config) = setup();
    let client = reqwest::Client::new();
    let (mut first, base) = serve(&config).await;
    ping(&client, &base, "job").await;
    for _ in 0..OUTAGES {
        ping(&client, &base, "job/fail").await;
        ping(&client, &base, "job").await;
    }
    until("every alert pending", WAIT, async || {
        pending(&data).len() == 2 * OUTAGES
    })
    .await;
    first.kill().await.unwrap();

    // A receiver taking 30 ms per alert, and a monitor killed after 0-90 ms, over and
    // over (a fixed sequence, so runs compare), until the outbox is empty.
    let hook = receiver(port, Duration::from_millis(30));
    let mut kills = 0;
    for round in 0.. {
        if pending(&data).is_empty() {
            break;
        }
        assert!(round < 200, "the outbox never emptied");
        let (mut monitor, _) = serve(&config).await;
        tokio::time::sleep(Duration::from_millis((round * 37 % 10) * 10)).await;
        monitor.kill().await.unwrap();
        kills += 1;
    }
    let (by_key, requests) = seen(&hook);
    let created = 2 * OUTAGES;
    let lost = created - by_key.len();
    let repeated: usize = by_key.values().map(|n| n - 1).sum();
    println!(
        "{created} alerts, {kills} SIGKILLs during delivery: {} delivered, {lost} lost, \
         {repeated} repeated deliveries (same Idempotency-Key), {requests} requests in all; \
         after deduplication by key: {lost} lost, 0 duplicated",
        by_key.len()
    );
    assert_eq!(lost, 0);
}

#[test]
fn check_config_refuses_an_unknown_channel_and_a_bad_cron_window_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.toml");
    std::fs::write(
        &path,
        r#"[[target]]
id = "db"
kind = "tcp"
address = "127.0.0.1:5432"

[[channel]]
id = "ops"
kind = "webhook"
url = "http://127.0.0.1:9000/hook"

[[rule]]
channels = ["opps"]

[[maintenance]]
schedule = "0 2 * * funday"
duration = "2h"
"#,
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains(
            "alerts.toml:12:13: rule[0].channels: unknown channel \"opps\"; did you mean \"ops\"?"
        ),
        "{errors}"
    );
    assert!(
        errors.contains("alerts.toml:15:12: maintenance[0].schedule: "),
        "{errors}"
    );
}
