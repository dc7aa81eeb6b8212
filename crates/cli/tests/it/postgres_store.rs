//! `vitals serve --store postgres://…` as users run it: the history in a real PostgreSQL
//! (the shared server of `scripts/test`, a schema of its own), a `kill -9` in the middle, and
//! the restarted monitor carrying on from the state PostgreSQL kept, with no transition
//! repeated (issue 12, item 1).

#![allow(clippy::unwrap_used)] // test helpers

use std::time::Duration;

use crate::support::{ping, serve_with, vitals};
use vitals_testkit::{Running, Signal, holds, until};

async fn serve_on(config: &std::path::Path, store: &str) -> (Running, String) {
    serve_with(
        vitals()
            .args(["serve", "--config"])
            .arg(config)
            .args(["--store", store]),
    )
    .await
}

/// `(from, to)` of every stored transition of `target`, oldest first, read from PostgreSQL.
async fn stored(url: &str, target: &str) -> Vec<(String, String)> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
        .query(
            "SELECT x.from_state, x.to_state FROM transitions x JOIN targets t ON t.id = x.target
              WHERE t.name = $1 ORDER BY x.id",
            &[&target],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn sigkill_then_restart_carries_on_from_postgresql() {
    let url = vitals_testkit::fresh_schema_url(&vitals_testkit::shared_postgres_url().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nping_id = \"job-0123456789abcdef\"\nperiod = \"1h\"\nfall = 1\nrise = 1\ndown_after = 2\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let (mut first, base) = serve_on(&config, &url).await;
    ping(&client, &base, "job-0123456789abcdef").await;
    ping(&client, &base, "job-0123456789abcdef/fail").await;
    let expected = vec![
        ("unknown".to_owned(), "healthy".to_owned()),
        ("healthy".to_owned(), "unhealthy".to_owned()),
    ];
    until(
        "both transitions in PostgreSQL",
        Duration::from_secs(10),
        async || holds(stored(&url, "job").await, |got| *got == expected),
    )
    .await;
    first.signal(Signal::SIGKILL).unwrap();
    first.wait(Duration::from_secs(10)).await.unwrap();

    // The restarted process is a new replica: the dead one's lease on the job's shard runs
    // out first (4 s), then the job carries on from PostgreSQL.
    let (mut second, base) = serve_on(&config, &url).await;
    until(
        "the job restored from PostgreSQL, unhealthy",
        Duration::from_secs(15),
        async || {
            let target: serde_json::Value = client
                .get(format!("{base}/api/v1/targets/job"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            holds(target, |t| t["state"] == "unhealthy")
        },
    )
    .await;
    // Restoring wrote nothing: the known outage is not a new transition.
    assert_eq!(stored(&url, "job").await, expected);
    ping(&client, &base, "job-0123456789abcdef").await;
    until("the recovery stored", Duration::from_secs(10), async || {
        holds(stored(&url, "job").await, |got| {
            got.len() == 3 && got[2] == ("unhealthy".to_owned(), "healthy".to_owned())
        })
    })
    .await;
    second.signal(Signal::SIGTERM).unwrap();
    let status = second.wait(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_store_that_is_not_postgresql_is_refused_with_advice() {
    let output = crate::support::vitals_blocking()
        .args(["serve", "--store", "mysql://root:hunter2@db/vitals"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--store"), "{stderr}");
    assert!(stderr.contains("not a PostgreSQL URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// PostgreSQL stopped under a running replica: its `/readyz` reports the store failing, it
/// gives up its shards once its lease could not be renewed, and when PostgreSQL is back it
/// holds them again and its `/readyz` passes (issue 12, item 6, as far as it is built).
#[tokio::test]
async fn postgresql_down_fails_readyz_and_drops_shards_until_it_returns() {
    let mut pg = vitals_testkit::Postgres::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nping_id = \"job-0123456789abcdef\"\nperiod = \"1h\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let (mut replica, base) = serve_on(&config, &pg.url()).await;
    let ready = async |base: &str| {
        client
            .get(format!("{base}/readyz?verbose"))
            .send()
            .await
            .unwrap()
    };
    assert_eq!(ready(&base).await.status(), 200);
    let held = async |base: &str| -> serde_json::Value {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("vitals_shards_held "))
            .map(|n| serde_json::json!(n.trim().parse::<i64>().unwrap()))
            .unwrap_or_default()
    };
    assert_eq!(held(&base).await, 256);

    pg.stop().await.unwrap();
    until(
        "/readyz failing on the store",
        Duration::from_secs(60),
        async || {
            let answer = ready(&base).await;
            let status = answer.status();
            let body = answer.text().await.unwrap();
            holds((status, body), |(status, body)| {
                *status == 503 && body.contains("store")
            })
        },
    )
    .await;
    until(
        "every shard given up",
        Duration::from_secs(20),
        async || holds(held(&base).await, |n| *n == 0),
    )
    .await;

    pg.start_again().await.unwrap();
    until(
        "every shard held again",
        Duration::from_secs(30),
        async || holds(held(&base).await, |n| *n == 256),
    )
    .await;
    until("/readyz passing", Duration::from_secs(60), async || {
        holds(ready(&base).await.status(), |s| *s == 200)
    })
    .await;
    // The target runs here again, from the store.
    ping(&client, &base, "job-0123456789abcdef").await;
    replica.signal(Signal::SIGTERM).unwrap();
    assert!(
        replica
            .wait(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
}
