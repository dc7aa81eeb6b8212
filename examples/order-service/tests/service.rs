//! The order service against real PostgreSQL and Redis: orders are stored, a Redis outage
//! degrades without leaving rotation, a PostgreSQL outage leaves rotation and comes back, a
//! probe storm costs the database nothing, SIGTERM drains then exits 0.

mod common;

use std::time::Duration;

use common::{Service, servers};
use futures_util::StreamExt;
use vitals_testkit::{Signal, signal, until, wait_for_exit};

#[tokio::test]
async fn orders_are_stored_in_postgres() {
    let (pg, redis) = servers().await;
    let service = Service::start(&pg, &redis, &[]).await;
    let response = service
        .client
        .post(format!("{}/api/orders", service.base))
        .json(&serde_json::json!({"item": "book", "quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["order_id"].as_i64().unwrap() > 0);
    let client = pg.connect().await.unwrap();
    let row = client
        .query_one("SELECT item, quantity FROM orders", &[])
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("book".to_string(), 2)
    );

    // Bad input gets a precise 4xx, and nothing is stored.
    let response = service
        .client
        .post(format!("{}/api/orders", service.base))
        .json(&serde_json::json!({"item": "book", "quantity": -1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "quantity must be positive");
    let count: i64 = client
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 1);
}

#[tokio::test]
async fn redis_down_degrades_but_stays_ready() {
    let (pg, mut redis) = servers().await;
    let service = Service::start(&pg, &redis, &["--check-interval", "1s"]).await;
    service
        .wait_for("/ready", 200, Duration::from_secs(10))
        .await;
    redis.stop().await.unwrap();

    // Within a couple of intervals the cache is failed; readiness still 200 (warn).
    let health = until("the cache to fail", Duration::from_secs(15), async || {
        let health = service.get("/health").await;
        if health.json()["checks"]["cache"][0]["status"] == "fail" {
            Ok(health)
        } else {
            Err(health.body)
        }
    })
    .await;
    let body = health.json();
    assert_eq!(health.status, 200, "degraded still serves: {}", health.body);
    assert_eq!(body["status"], "warn");
    let output = body["checks"]["cache"][0]["output"].as_str().unwrap();
    assert!(!output.is_empty());
    let ready = service.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["status"], "warn");
    let verbose = service.get("/ready?verbose").await;
    assert!(verbose.body.contains("[-]cache failed"), "{}", verbose.body);
    assert!(verbose.body.contains("[+]database ok"), "{}", verbose.body);
}

/// Issue 11, item 4: with `ulimit -n 1024`, 3,000 connections that send half a header each
/// used to hold every file descriptor, and `/livez` stopped answering. The server now closes
/// the connections idle the longest to make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn livez_answers_through_3000_half_sent_headers_under_ulimit_1024() {
    let (pg, redis) = servers().await;
    let service = Service::start_under(&["prlimit", "--nofile=1024", "--"], &pg, &redis, &[]).await;
    let addr = service.base.trim_start_matches("http://").to_string();
    let connects = (0..3_000).map(|_| {
        let addr = addr.clone();
        async move {
            let connect = tokio::net::TcpStream::connect(addr);
            let mut stream = tokio::time::timeout(Duration::from_secs(3), connect)
                .await
                .ok()?
                .ok()?;
            tokio::io::AsyncWriteExt::write_all(&mut stream, b"GET /livez HTTP/1.1\r\nX-Slow: ")
                .await
                .ok()?;
            Some(stream)
        }
    });
    let flood: Vec<_> = futures_util::future::join_all(connects).await;
    let held = flood.iter().flatten().count();
    assert!(held > 1_024, "only {held} flood connections got through");
    // A new connection per probe, as a kubelet makes (the service's client would reuse the
    // one kept alive since start-up).
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for _ in 0..10 {
        let live = fresh.get(format!("{}/livez", service.base)).send().await;
        assert_eq!(
            live.as_ref().map(|answer| answer.status().as_u16()).ok(),
            Some(200),
            "/livez during the flood of {held} half-sent headers: {live:?}"
        );
    }
    drop(flood);
}

#[tokio::test]
async fn postgres_down_leaves_rotation_and_comes_back() {
    let (mut pg, redis) = servers().await;
    let service = Service::start(&pg, &redis, &["--check-interval", "1s"]).await;
    service
        .wait_for("/ready", 200, Duration::from_secs(10))
        .await;

    pg.stop().await.unwrap();
    // fall 2 at 1 s intervals: out within a few seconds.
    let answer = service
        .wait_for("/ready", 503, Duration::from_secs(15))
        .await;
    let body = answer.json();
    assert_eq!(
        body["checks"]["database"][0]["status"], "fail",
        "{}",
        answer.body
    );
    // Liveness does not depend on the database.
    assert_eq!(service.get("/alive").await.status, 200);
    let health = service.get("/health").await;
    assert_eq!(health.status, 503);

    pg.start_again().await.unwrap();
    // rise 2: back within a few seconds.
    let answer = service
        .wait_for("/ready", 200, Duration::from_secs(15))
        .await;
    assert_eq!(answer.json()["checks"]["database"][0]["status"], "pass");
    let metrics = service.get("/metrics").await.body;
    for transition in [
        r#"from="healthy",to="failing""#,
        r#"from="failing",to="unhealthy""#,
        r#"to="recovering""#,
        r#"from="recovering",to="healthy""#,
    ] {
        assert!(
            metrics.contains(transition),
            "missing {transition} in\n{metrics}"
        );
    }
}

#[tokio::test]
async fn a_probe_storm_adds_no_query_to_postgres() {
    let (pg, redis) = servers().await;
    // A long interval: the background check runs once at start, then not during the storm.
    let service = Service::start(&pg, &redis, &["--check-interval", "60s"]).await;
    service
        .wait_for("/ready", 200, Duration::from_secs(10))
        .await;
    // The startup check ran its SELECT 1: the counter sees the check's queries.
    let before = pg.count_queries("SELECT $1").await.unwrap();
    assert!(before >= 1, "the background check's query is counted");

    // 1,000 requests, 200 at a time: below the server's connection limit (512), beyond which
    // new connections wait a second in the backlog for room, which a loaded machine can push
    // past the client's timeout. The limit has tests of its own (crates/vitals/tests/it/serve.rs).
    let storm = futures_util::stream::iter((0..1000).map(|_| service.get("/readyz")));
    let answers: Vec<_> = storm.buffer_unordered(200).collect().await;
    assert!(answers.iter().all(|answer| answer.status == 200));
    assert_eq!(
        pg.count_queries("SELECT $1").await.unwrap(),
        before,
        "1,000 /readyz requests must not query PostgreSQL"
    );
}

#[tokio::test]
async fn sigterm_drains_then_exits_zero() {
    let (pg, redis) = servers().await;
    let mut service = Service::start(&pg, &redis, &["--drain-delay", "3s"]).await;
    service
        .wait_for("/ready", 200, Duration::from_secs(10))
        .await;

    signal(service.pid(), Signal::SIGTERM).unwrap();
    let answer = service
        .wait_for("/ready", 503, Duration::from_secs(2))
        .await;
    assert!(
        answer.json()["output"]
            .as_str()
            .unwrap()
            .starts_with("draining"),
        "{}",
        answer.body
    );
    // Still alive and still serving during the drain delay.
    assert_eq!(service.get("/alive").await.status, 200);
    assert_eq!(service.get("/livez").await.status, 200);

    let status = wait_for_exit(&mut service.child, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
