//! Three `vitals serve` replicas on one PostgreSQL, as users run them (issue 12, item 3):
//! real processes sharing the shared server of `scripts/test` (a schema of their own), TCP
//! targets on loopback, one replica killed with SIGKILL and one paused with SIGSTOP.
//!
//! What the store says is the proof: every target's stored chain of transitions, written
//! once, by whichever replica held its shard at the time.

#![allow(clippy::unwrap_used)] // test helpers

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::support::{serve_with, vitals};
use vitals_testkit::{Running, Signal, holds, until};

const TARGETS: usize = 24;

/// A replica and its base URL.
async fn replica(config: &std::path::Path, store: &str, name: &str) -> (Running, String) {
    serve_with(
        vitals()
            .args(["serve", "--config"])
            .arg(config)
            .args(["--store", store])
            .env("VITALS_REPLICA", name),
    )
    .await
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// Every target's stored transitions, `from>to`, oldest first.
async fn chains(db: &tokio_postgres::Client) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in db
        .query(
            "SELECT t.name, x.from_state || '>' || x.to_state FROM transitions x
               JOIN targets t ON t.id = x.target ORDER BY x.id",
            &[],
        )
        .await
        .unwrap()
    {
        out.entry(row.get(0)).or_default().push(row.get(1));
    }
    out
}

/// Live lease holders and how many shards each holds.
async fn holders(db: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    db.query(
        "SELECT owner, count(*) FROM leases
          WHERE owner IS NOT NULL
            AND expires_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint
          GROUP BY owner",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|row| (row.get(0), row.get(1)))
    .collect()
}

/// A TCP server on loopback that accepts and closes, until dropped.
struct Up(tokio::task::JoinHandle<()>);

impl Drop for Up {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn listen(listener: &std::net::TcpListener) -> Up {
    let listener = tokio::net::TcpListener::from_std(listener.try_clone().unwrap()).unwrap();
    Up(tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    }))
}

fn config(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[defaults]\ninterval = \"500ms\"\ntimeout = \"400ms\"\nfall = 2\nrise = 1\ndown_after = 100\n",
        dir.join("data").display().to_string()
    );
    for i in 0..TARGETS {
        text.push_str(&format!(
            "\n[[target]]\nid = \"svc-{i:02}\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n"
        ));
    }
    let path = dir.join("vitals.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_s_targets_carry_on_elsewhere_and_nothing_is_written_twice() {
    let url = vitals_testkit::fresh_schema_url(&vitals_testkit::shared_postgres_url().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let up = listen(&std_listener).await;
    let config = config(dir.path(), port);
    let (r1, r2, r3) = tokio::join!(
        replica(&config, &url, "r1"),
        replica(&config, &url, "r2"),
        replica(&config, &url, "r3")
    );
    let ((mut r1, _), (mut r2, r2_base), (mut r3, r3_base)) = (r1, r2, r3);
    let db = client(&url).await;

    // Every shard held by one of the three, and every target healthy, written once.
    until(
        "256 shards over 3 replicas",
        Duration::from_secs(20),
        async || {
            holds(holders(&db).await, |h| {
                h.len() == 3 && h.values().sum::<i64>() == 256
            })
        },
    )
    .await;
    let healthy = vec!["unknown>healthy".to_owned()];
    until(
        "every target healthy, once",
        Duration::from_secs(20),
        async || {
            holds(chains(&db).await, |c| {
                c.len() == TARGETS && c.values().all(|chain| *chain == healthy)
            })
        },
    )
    .await;

    // Any replica shows the whole fleet.
    let http = reqwest::Client::new();
    let fleet: serde_json::Value = http
        .get(format!("{}/api/v1/replicas", r2_base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fleet["replica"], "r2", "{fleet}");
    assert_eq!(fleet["unowned_shards"], 0, "{fleet}");
    let listed = fleet["replicas"].as_array().unwrap();
    assert_eq!(listed.len(), 3, "{fleet}");
    assert!(listed.iter().all(|r| r["live"] == true), "{fleet}");
    let shards: i64 = listed.iter().map(|r| r["shards"].as_i64().unwrap()).sum();
    assert_eq!(shards, 256, "{fleet}");
    let metrics = http
        .get(format!("{}/metrics", r3_base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("vitals_replicas_live 3"), "{metrics}");
    assert!(
        metrics.contains("vitals_fleet_shards_unowned 0"),
        "{metrics}"
    );
    vitals_testkit::promtool_check(&metrics);

    // kill -9 r1: its shards are taken within the lease (4 s) and a round.
    let killed = Instant::now();
    r1.signal(Signal::SIGKILL).unwrap();
    r1.wait(Duration::from_secs(10)).await.unwrap();
    until(
        "r1's shards taken by r2 and r3",
        Duration::from_secs(20),
        async || {
            holds(holders(&db).await, |h| {
                !h.contains_key("r1") && h.values().sum::<i64>() == 256
            })
        },
    )
    .await;
    let takeover = killed.elapsed();
    assert!(
        takeover <= Duration::from_secs(7),
        "takeover took {takeover:?}"
    );

    // The targets go down: every one is judged by the replica now holding it, from the
    // state the store kept (no second unknown>healthy), each transition written once.
    drop(up);
    drop(std_listener);
    let down = vec![
        "unknown>healthy".to_owned(),
        "healthy>failing".to_owned(),
        "failing>unhealthy".to_owned(),
    ];
    until(
        "every target unhealthy, once",
        Duration::from_secs(30),
        async || {
            holds(chains(&db).await, |c| {
                c.len() == TARGETS && c.values().all(|chain| *chain == down)
            })
        },
    )
    .await;
    eprintln!("takeover after kill -9: {takeover:?}");

    r2.signal(Signal::SIGTERM).unwrap();
    r3.signal(Signal::SIGTERM).unwrap();
    assert!(r2.wait(Duration::from_secs(30)).await.unwrap().success());
    assert!(r3.wait(Duration::from_secs(30)).await.unwrap().success());
    // Both left: no replica holds a shard.
    assert!(holders(&db).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_paused_past_its_lease_writes_nothing_for_the_shards_it_lost() {
    let url = vitals_testkit::fresh_schema_url(&vitals_testkit::shared_postgres_url().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let up = listen(&std_listener).await;
    let config = config(dir.path(), port);
    let (r1, r2) = tokio::join!(replica(&config, &url, "r1"), replica(&config, &url, "r2"));
    let ((mut r1, _), (mut r2, _)) = (r1, r2);
    let db = client(&url).await;
    let healthy = vec!["unknown>healthy".to_owned()];
    until(
        "every target healthy, once",
        Duration::from_secs(20),
        async || {
            holds(chains(&db).await, |c| {
                c.len() == TARGETS && c.values().all(|chain| *chain == healthy)
            })
        },
    )
    .await;
    until(
        "both replicas hold shards",
        Duration::from_secs(20),
        async || {
            holds(holders(&db).await, |h| {
                h.len() == 2 && h.values().sum::<i64>() == 256
            })
        },
    )
    .await;

    // r1 is paused for twice the lease; meanwhile r2 takes every shard, and the targets go
    // down, judged and stored by r2 alone.
    r1.signal(Signal::SIGSTOP).unwrap();
    until(
        "r2 holds every shard",
        Duration::from_secs(20),
        async || holds(holders(&db).await, |h| h.get("r2") == Some(&256)),
    )
    .await;
    drop(up);
    drop(std_listener);
    let down = vec![
        "unknown>healthy".to_owned(),
        "healthy>failing".to_owned(),
        "failing>unhealthy".to_owned(),
    ];
    until(
        "every target unhealthy, once",
        Duration::from_secs(30),
        async || {
            holds(chains(&db).await, |c| {
                c.values().all(|chain| *chain == down)
            })
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // r1 resumes with checks that were due and results it judged before the pause: whatever
    // it concludes, the store takes nothing from it for shards it lost.
    r1.signal(Signal::SIGCONT).unwrap();
    // Long enough for r1's overdue checks to run and be judged (fall 2 at 500 ms) and for its
    // lease loop to notice: a fixed wait, because what is awaited is that nothing happens.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after = chains(&db).await;
    assert_eq!(after.len(), TARGETS);
    for (target, chain) in &after {
        assert_eq!(*chain, down, "{target}: {chain:?}");
    }
    r1.signal(Signal::SIGTERM).unwrap();
    r2.signal(Signal::SIGTERM).unwrap();
    assert!(r1.wait(Duration::from_secs(30)).await.unwrap().success());
    assert!(r2.wait(Duration::from_secs(30)).await.unwrap().success());
}

/// Heartbeats sent to one replica reach the replica holding each target (forwarded), so a
/// sender behind a load balancer loses none (issue 12, item 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pings_at_any_replica_reach_the_holder() {
    let url = vitals_testkit::fresh_schema_url(&vitals_testkit::shared_postgres_url().unwrap())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        dir.path().join("data").display().to_string()
    );
    for i in 0..TARGETS {
        text.push_str(&format!(
            "\n[[target]]\nid = \"job-{i:02}\"\nkind = \"heartbeat\"\nping_id = \"job-{i:02}-0123456789abcdef\"\nperiod = \"1h\"\nfall = 1\nrise = 1\n"
        ));
    }
    let config = dir.path().join("vitals.toml");
    std::fs::write(&config, text).unwrap();
    let (r1, r2) = tokio::join!(replica(&config, &url, "r1"), replica(&config, &url, "r2"));
    let ((mut r1, r1_base), (mut r2, _)) = (r1, r2);
    let db = client(&url).await;
    until(
        "both replicas hold shards",
        Duration::from_secs(20),
        async || {
            holds(holders(&db).await, |h| {
                h.len() == 2 && h.values().sum::<i64>() == 256
            })
        },
    )
    .await;
    // Both replicas announced their API address (a round after listening), and each knows
    // the other's.
    until("both APIs announced", Duration::from_secs(10), async || {
        let rows = db
            .query("SELECT count(*) FROM replicas WHERE api IS NOT NULL", &[])
            .await
            .unwrap();
        holds(rows[0].get::<_, i64>(0), |n| *n == 2)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let http = reqwest::Client::new();
    let at = r1_base;
    for i in 0..TARGETS {
        let answer = http
            .get(format!("{at}/ping/job-{i:02}-0123456789abcdef"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "job-{i:02}");
        let answer = http
            .post(format!("{at}/ping/job-{i:02}-0123456789abcdef/fail"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "job-{i:02}");
    }
    let both = vec!["unknown>healthy".to_owned(), "healthy>unhealthy".to_owned()];
    until(
        "every job judged by its holder, once",
        Duration::from_secs(10),
        async || {
            holds(chains(&db).await, |c| {
                c.len() == TARGETS && c.values().all(|chain| *chain == both)
            })
        },
    )
    .await;
    let unknown = http
        .get(format!("{at}/ping/nobody-0123456789abcdef"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    r1.signal(Signal::SIGTERM).unwrap();
    r2.signal(Signal::SIGTERM).unwrap();
    assert!(r1.wait(Duration::from_secs(30)).await.unwrap().success());
    assert!(r2.wait(Duration::from_secs(30)).await.unwrap().success());
}
