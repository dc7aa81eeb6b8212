//! `vitals serve` end to end on loopback: a real HTTP target that dies and comes back, a
//! vitals service whose checks become rows of their own, the healthchecks.io ping forms sent
//! with curl exactly as their documentation writes them, the JSON API with its tokens, and
//! bad input.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::process::Command;
use std::time::Duration;

use crate::support::{Monitor, start};
use axum::Router;
use axum::routing::get;
use vitals_testkit::until;

fn curl(args: &[&str]) -> (bool, String) {
    let output = Command::new("curl")
        .args(args)
        .output()
        .expect("curl is installed");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_http_target_goes_down_and_comes_back() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let monitor = start(&format!(
        "[[target]]\nid = \"web\"\nkind = \"http\"\nurl = \"http://{addr}/healthz\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\njitter = \"0s\"\ninterval_changing = \"100ms\"\ninterval_down = \"200ms\"\n"
    ))
    .await;
    monitor.wait_for_state("web", "healthy").await;
    server.abort();
    let _ = server.await;
    let down = monitor.wait_for_state("web", "down").await;
    let output = down["last"]["output"].as_str().unwrap().to_lowercase();
    assert!(output.contains("refused"), "{down}");

    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let app = Router::new().route("/healthz", get(|| async { "ok" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let back = monitor.wait_for_state("web", "healthy").await;
    let path: Vec<&str> = back["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(
        path,
        [
            "healthy",
            "failing",
            "unhealthy",
            "down",
            "recovering",
            "healthy"
        ],
        "{back}"
    );
    assert!(back["uptime"]["24h"].as_f64().unwrap() < 1.0, "{back}");

    let metrics = monitor
        .client
        .get(format!("{}/metrics", monitor.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in\n{metrics}"))
    };
    // Three failures took it down, at least two passes brought it back.
    assert!(value(r#"vitals_check_results_total{target="web",result="fail"}"#) >= 3.0);
    assert!(value(r#"vitals_check_results_total{target="web",result="pass"}"#) >= 2.0);
    assert!(value(r#"vitals_check_duration_seconds_count{target="web"}"#) >= 5.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vitals_services_checks_show_up_as_rows_of_their_own() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use vitals::probes::from_fn;
    use vitals::{Check, Health, Report};

    let database_up = Arc::new(AtomicBool::new(true));
    let up = Arc::clone(&database_up);
    let fast = Duration::from_millis(50);
    let health = Health::builder()
        .check(
            Check::new(
                "database",
                from_fn(move || {
                    let up = up.load(Ordering::SeqCst);
                    async move {
                        if up {
                            Report::pass().with_output("SELECT 1 answered")
                        } else {
                            Report::fail("connection refused")
                        }
                    }
                }),
            )
            .interval(fast)
            .timeout(fast),
        )
        .check(
            Check::new("cache", from_fn(|| async { Report::pass() }))
                .interval(fast)
                .timeout(fast)
                .non_critical(),
        )
        .start()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = health.clone();
    tokio::spawn(async move { service.serve(listener, service.router()).await });

    let monitor = start(&format!(
        "[[target]]\nid = \"orders\"\nname = \"Orders\"\nkind = \"vitals\"\nurl = \"http://{addr}/health\"\ninterval = \"200ms\"\ntimeout = \"100ms\"\njitter = \"0s\"\ninterval_changing = \"100ms\"\ninterval_down = \"200ms\"\n"
    ))
    .await;
    monitor.wait_for_state("orders", "healthy").await;
    let database = monitor.wait_for_state("orders/database", "healthy").await;
    assert_eq!(database["parent"], "orders", "{database}");
    assert_eq!(database["name"], "Orders: database", "{database}");
    assert_eq!(
        database["last"]["output"], "SELECT 1 answered",
        "{database}"
    );
    let list = monitor.json("/api/v1/targets").await;
    let ids: Vec<&str> = list["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["orders", "orders/cache", "orders/database"]);
    // A page at a time, the service's checks follow it, and a cursor may stop between them.
    let mut walked = Vec::new();
    let mut path = "/api/v1/targets?limit=1".to_owned();
    loop {
        let page = monitor.json(&path).await;
        walked.extend(
            page["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].clone()),
        );
        let Some(cursor) = page["next_cursor"].as_str() else {
            break;
        };
        path = format!("/api/v1/targets?limit=1&cursor={cursor}");
    }
    assert_eq!(walked, ["orders", "orders/cache", "orders/database"]);

    // The database fails: its own row goes down, the cache's stays healthy, and the path form
    // of the API shows the same row with its history.
    database_up.store(false, Ordering::SeqCst);
    monitor.wait_for_state("orders/database", "down").await;
    monitor.wait_for_state("orders", "down").await;
    let failed = monitor.json("/api/v1/targets/orders/checks/database").await;
    assert_eq!(failed["state"], "down", "{failed}");
    assert_eq!(failed["last"]["output"], "connection refused", "{failed}");
    assert!(
        failed["transitions"].as_array().unwrap().len() >= 2,
        "{failed}"
    );
    assert_eq!(monitor.target("orders/cache").await["state"], "healthy");
    database_up.store(true, Ordering::SeqCst);
    monitor.wait_for_state("orders/database", "healthy").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthchecks_io_ping_forms_work_with_curl() {
    let monitor = start(
        "[[target]]\nid = \"backup\"\nkind = \"heartbeat\"\nping_id = \"5a1c3e2c-8a7d-4c1e-9f7a-2b2f0c7d9e11\"\nperiod = \"1h\"\ngrace = \"5m\"\nfall = 1\nrise = 1\ndown_after = 2\n",
    )
    .await;
    let url = format!("{}/ping/5a1c3e2c-8a7d-4c1e-9f7a-2b2f0c7d9e11", monitor.base);
    // As healthchecks.io documents them.
    assert_eq!(
        curl(&["-fsS", "-m", "10", "--retry", "5", &url]),
        (true, "OK".into())
    );
    assert_eq!(monitor.target("backup").await["state"], "healthy");
    assert!(
        curl(&[
            "-fsS",
            "-m",
            "10",
            "--retry",
            "5",
            "-o",
            "/dev/null",
            &format!("{url}/start?rid=7d0b7a52-1f0e-4f7c-8f0a-5d6f1e2a3b4c")
        ])
        .0
    );
    assert!(
        curl(&[
            "-fsS",
            "-m",
            "10",
            "--retry",
            "5",
            "--data-raw",
            "backup done: 42 files",
            &format!("{url}?rid=7d0b7a52-1f0e-4f7c-8f0a-5d6f1e2a3b4c")
        ])
        .0
    );
    assert!(curl(&["-fsS", "-m", "10", "-I", &url]).0, "HEAD works");
    assert!(
        curl(&[
            "-fsS",
            "-m",
            "10",
            "--data-raw",
            "disk full",
            &format!("{url}/fail")
        ])
        .0
    );
    let failed = monitor.target("backup").await;
    assert_eq!(failed["state"], "unhealthy", "{failed}");
    assert_eq!(failed["last"]["output"], "job reported failure");
    assert!(curl(&["-fsS", "-m", "10", &format!("{url}/0")]).0);
    assert_eq!(monitor.target("backup").await["state"], "healthy");
    assert!(curl(&["-fsS", "-m", "10", &format!("{url}/3")]).0);
    let exited = monitor.target("backup").await;
    assert_eq!(exited["last"]["output"], "job exited with status 3");
    assert!(
        curl(&[
            "-fsS",
            "-m",
            "10",
            "--data-raw",
            "just a note",
            &format!("{url}/log")
        ])
        .0
    );

    // Bad input: unknown id 404, oversized body 413, bad exit status 400; nothing recorded.
    let client = &monitor.client;
    let unknown = client
        .get(format!("{}/ping/nope", monitor.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let big = client
        .post(&url)
        .body(vec![b'x'; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status(), 413);
    let bad = client.get(format!("{url}/256")).send().await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(
        monitor.target("backup").await["last"]["output"],
        "job exited with status 3"
    );

    let metrics = client
        .get(format!("{}/metrics", monitor.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"vitals_heartbeats_total{transport="http",result="unknown_id"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"vitals_target_state{target="backup",state="unhealthy"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn changing_operations_need_the_api_token() {
    let monitor = start("[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nperiod = \"1h\"\n").await;
    let client = &monitor.client;
    let pause = format!("{}/api/v1/targets/job/pause", monitor.base);
    let refused = client.post(&pause).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("api_token"));
    let paused = client
        .post(&pause)
        .bearer_auth("s3cret-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    assert_eq!(monitor.target("job").await["paused"], true);
    let maintenance = format!("{}/api/v1/targets/job/maintenance", monitor.base);
    let bad = client
        .post(&maintenance)
        .bearer_auth("s3cret-token-0123456789")
        .json(&serde_json::json!({"for": "soon"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let ok = client
        .post(&maintenance)
        .bearer_auth("s3cret-token-0123456789")
        .json(&serde_json::json!({"for": "2h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(monitor.target("job").await["maintenance_until"].is_string());
    let missing = client
        .get(format!("{}/api/v1/targets/nope", monitor.base))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The monitor's own probes, from the vitals library.
    let ready = client
        .get(format!("{}/readyz", monitor.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_heartbeats_are_accepted_and_forgeries_counted() {
    let port = vitals_testkit::free_port().unwrap();
    let key = "00112233445566778899aabbccddeeff";
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nudp_listen = \"127.0.0.1:{port}\"\ndata_dir = {:?}\n\n[[target]]\nid = \"worker\"\nkind = \"heartbeat\"\nperiod = \"10s\"\nudp_key = \"{key}\"\n",
        data.path().display().to_string()
    );
    let monitor = Monitor {
        base: crate::support::serve(&text).await,
        client: reqwest::Client::new(),
        _data: data,
    };
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let key = hex::decode(key).unwrap();
    let mut datagram = Vec::new();
    vitals_monitor::udp::encode(
        "worker",
        1,
        now_ms,
        vitals_core::Status::Pass,
        &key,
        &mut datagram,
    )
    .unwrap();
    socket
        .send_to(&datagram, ("127.0.0.1", port))
        .await
        .unwrap();
    monitor.wait_for_state("worker", "healthy").await;
    // The same datagram again is a replay; one signed with another key a forgery; garbage
    // is malformed. None changes the target.
    socket
        .send_to(&datagram, ("127.0.0.1", port))
        .await
        .unwrap();
    let mut forged = Vec::new();
    vitals_monitor::udp::encode(
        "worker",
        2,
        now_ms,
        vitals_core::Status::Fail,
        &[7u8; 16],
        &mut forged,
    )
    .unwrap();
    socket.send_to(&forged, ("127.0.0.1", port)).await.unwrap();
    socket.send_to(b"hello", ("127.0.0.1", port)).await.unwrap();
    until("the udp counters", Duration::from_secs(10), async || {
        let metrics = monitor
            .client
            .get(format!("{}/metrics", monitor.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let counted = [
            "accepted\"} 1",
            "replayed\"} 1",
            "bad_mac\"} 1",
            "malformed\"} 1",
        ]
        .iter()
        .all(|needle| metrics.contains(&format!("transport=\"udp\",result=\"{needle}")));
        if counted { Ok(()) } else { Err(metrics) }
    })
    .await;
    assert_eq!(monitor.target("worker").await["state"], "healthy");
}

/// The library's heartbeat emitter pointed at the monitor: its verdict travels with it.
#[tokio::test(flavor = "multi_thread")]
async fn the_library_heartbeat_emitter_reports_to_the_monitor() {
    let monitor = start(
        "[[target]]\nid = \"orders\"\nkind = \"heartbeat\"\nping_id = \"orders-svc\"\nperiod = \"1s\"\nfall = 1\nrise = 1\ndown_after = 2\n",
    )
    .await;
    let failing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = failing.clone();
    let health = vitals::Health::builder()
        .check(
            vitals::Check::new(
                "database",
                vitals::probes::from_fn(move || {
                    let failing = flag.load(std::sync::atomic::Ordering::SeqCst);
                    async move {
                        if failing {
                            vitals::Report::fail("connection refused")
                        } else {
                            vitals::Report::pass()
                        }
                    }
                }),
            )
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_millis(50))
            .jitter(Duration::ZERO)
            .thresholds(vitals::Thresholds {
                fall: 1,
                rise: 1,
                down_after: 1,
                ..Default::default()
            }),
        )
        .start()
        .unwrap();
    vitals::Heartbeat::new(format!("{}/ping/orders-svc", monitor.base))
        .every(Duration::from_millis(100))
        .spawn(&health);
    monitor.wait_for_state("orders", "healthy").await;
    failing.store(true, std::sync::atomic::Ordering::SeqCst);
    let failed = monitor.wait_for_state("orders", "unhealthy").await;
    assert_eq!(failed["last"]["output"], "job reported failure", "{failed}");
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    monitor.wait_for_state("orders", "healthy").await;
}
