//! `vitals serve --store postgres://…` as users run it: the history in a real PostgreSQL
//! (the shared server of `scripts/test`, a schema of its own), a `kill -9` in the middle, and
//! the restarted monitor carrying on from the state PostgreSQL kept, with no transition
//! repeated (issue 12, item 1).

#![allow(clippy::unwrap_used)] // test helpers

mod support;

use std::time::Duration;

use support::{ping, serve_with, vitals};
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
    let output = support::vitals_blocking()
        .args(["serve", "--store", "mysql://root:hunter2@db/vitals"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--store"), "{stderr}");
    assert!(stderr.contains("not a PostgreSQL URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
