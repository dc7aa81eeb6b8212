//! `vitals lb` and `vitals check-config` on a load balancer file, as users run them: a
//! config full of mistakes is refused with every error named, and a real `vitals lb`
//! process routes to a healthy backend, reports it through its admin API, and on SIGTERM
//! answers the request in flight before it exits.

#![allow(clippy::unwrap_used)] // test helpers

use std::time::Duration;

use crate::support::vitals;
use vitals_testkit::{Ready, Running, Signal, free_port, holds, until};

const BAD: &str = r#"[admin]
listen = "127.0.0.1:9901"

[[listener]]
listen = "127.0.0.1:8080"
pool = "wbe"

[[pool]]
id = "web"
balance = "fastest"
interval = "1s"
timeout = "2s"

[[pool.backend]]
address = "db.internal:9001"

[[pool.backend]]
address = "127.0.0.1:9002"
weight = 0
"#;

fn write(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("lb.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_config_with_mistakes_is_refused_with_every_error_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&dir, BAD);
    let file = path.display().to_string();
    let expected = [
        format!("{file}:6:8: listener[0].pool: no pool has id \"wbe\""),
        format!("{file}:10:11: pool[0] (\"web\").balance: unknown balance \"fastest\""),
        format!("{file}:12:11: pool[0] (\"web\").timeout: 2s is longer than interval 1s"),
        format!(
            "{file}:15:11: pool[0] (\"web\").backend[0].address: \"db.internal:9001\" is not an IP address and port"
        ),
        format!("{file}:19:10: pool[0] (\"web\").backend[1].weight: 0 is outside 1 to 1000"),
    ];
    for args in [vec!["lb", "--config", &file], vec!["check-config", &file]] {
        let output = vitals().args(&args).output().await.unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        for line in &expected {
            assert!(
                stderr.contains(line.as_str()),
                "{args:?}: missing {line:?} in\n{stderr}"
            );
        }
        assert!(stderr.contains("5 error(s)"), "{stderr}");
    }
}

#[tokio::test]
async fn vitals_lb_routes_to_a_healthy_backend_and_shows_it() {
    // The backend: an HTTP server in this test, ready and answering "hello".
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let backend_address = backend.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route(
            "/slow",
            axum::routing::get(|| async {
                tokio::time::sleep(Duration::from_millis(500)).await;
                "slow"
            }),
        )
        .route(
            "/hello",
            axum::routing::get(|headers: axum::http::HeaderMap| async move {
                format!(
                    "hello from behind {}",
                    headers["x-forwarded-for"].to_str().unwrap()
                )
            }),
        );
    tokio::spawn(async move { axum::serve(backend, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port().unwrap(), free_port().unwrap());
    let path = write(
        &dir,
        &format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\npool = \"web\"\n[[pool]]\nid = \"web\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\n[[pool.backend]]\nid = \"one\"\naddress = \"{backend_address}\"\n"
        ),
    );
    let check = vitals()
        .arg("check-config")
        .arg(&path)
        .output()
        .await
        .unwrap();
    assert_eq!(check.status.code(), Some(0));
    assert!(
        String::from_utf8(check.stdout)
            .unwrap()
            .ends_with("ok (load balancer: 1 listeners, 1 pools, 1 backends)\n")
    );

    let mut lb = Running::start(
        vitals().args(["lb", "--config"]).arg(&path),
        Ready::Line("vitals lb on "),
    )
    .await
    .unwrap();
    assert_eq!(
        lb.line(0).await.unwrap(),
        format!("vitals lb on http://127.0.0.1:{listen} (pool web)")
    );
    assert!(lb.line(1).await.unwrap().starts_with("vitals lb admin on"));

    let client = reqwest::Client::new();
    let wait = Duration::from_secs(15);
    let body = until("the backend to come into rotation", wait, async || {
        let response = client
            .get(format!("http://127.0.0.1:{listen}/hello"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            return Some(response.text().await.unwrap());
        }
        // Until the first check passes the backend is `unknown`: a 503 that says so.
        assert_eq!(response.status(), 503);
        assert!(response.text().await.unwrap().contains("1 not checked yet"));
        None
    })
    .await;
    assert_eq!(body, "hello from behind 127.0.0.1");
    let pools: serde_json::Value = client
        .get(format!("http://127.0.0.1:{admin}/api/v1/pools"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pools[0]["backends"][0]["state"], "healthy");
    let metrics = client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vitals_lb_backend_up{pool=\"web\",backend=\"one\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vitals_lb_requests_total{pool=\"web\",backend=\"one\",class=\"2xx\"} 1"),
        "{metrics}"
    );

    // SIGTERM with a request in flight: it is answered, then the balancer exits 0.
    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            let r = client
                .get(format!("http://127.0.0.1:{listen}/slow"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    });
    until("the slow request to start", wait, async || {
        let pools: serde_json::Value = client
            .get(format!("http://127.0.0.1:{admin}/api/v1/pools"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        holds(pools, |pools| pools[0]["backends"][0]["in_flight"] == 1)
    })
    .await;
    lb.signal(Signal::SIGTERM).unwrap();
    assert_eq!(slow.await.unwrap(), (200, "slow".to_string()));
    let status = lb.wait(Duration::from_secs(15)).await.unwrap();
    assert!(status.success(), "{status:?}");
    // The last line says so (issue 17, item 10); standard output is read by a task of its own.
    until("the final line", Duration::from_secs(10), async || {
        holds(lb.stdout(), |lines| {
            lines.last().map(String::as_str) == Some("vitals lb stopped")
        })
    })
    .await;
}

/// A backend in this test: `/readyz` ready, everything else its name.
async fn named_backend(name: &'static str) -> std::net::SocketAddr {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .fallback(move || async move { name });
    tokio::spawn(async move { axum::serve(socket, app).await.unwrap() });
    address
}

/// The errors wrk reports: non-2xx/3xx answers and socket errors of every kind.
fn wrk_failures(report: &str) -> u64 {
    let mut failed = 0;
    for line in report.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            failed += n.trim().parse::<u64>().unwrap();
        }
        if let Some(errors) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            for part in errors.split(',') {
                failed += part
                    .split_whitespace()
                    .last()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap();
            }
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_under_wrk_adds_and_removes_a_backend_without_failing_a_request() {
    let (a, b, c) = (
        named_backend("a").await,
        named_backend("b").await,
        named_backend("c").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let (listen, admin) = (free_port().unwrap(), free_port().unwrap());
    let file = |backends: &[(&str, std::net::SocketAddr)]| {
        let mut text = format!(
            "[admin]\nlisten = \"127.0.0.1:{admin}\"\n[[listener]]\nlisten = \"127.0.0.1:{listen}\"\npool = \"web\"\n[[pool]]\nid = \"web\"\ninterval = \"200ms\"\ntimeout = \"200ms\"\n"
        );
        for (name, address) in backends {
            text.push_str(&format!(
                "[[pool.backend]]\nid = \"{name}\"\naddress = \"{address}\"\n"
            ));
        }
        text
    };
    let path = write(&dir, &file(&[("a", a), ("b", b)]));
    let lb = Running::start(
        vitals().args(["lb", "--config"]).arg(&path),
        Ready::Line("vitals lb admin on "),
    )
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let wait = Duration::from_secs(15);
    let pools = format!("http://127.0.0.1:{admin}/api/v1/pools");
    let in_rotation = async |names: &[&str]| {
        let pools: serde_json::Value = client
            .get(&pools)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let backends = pools[0]["backends"].as_array().unwrap().clone();
        backends.len() == names.len()
            && names.iter().all(|name| {
                backends
                    .iter()
                    .any(|b| b["name"] == *name && b["in_rotation"] == true)
            })
    };
    until("a and b in rotation", wait, async || {
        in_rotation(&["a", "b"]).await
    })
    .await;

    let wrk = tokio::process::Command::new("wrk")
        .args([
            "-t1",
            "-c16",
            "-d6s",
            &format!("http://127.0.0.1:{listen}/"),
        ])
        .output();
    let wrk = tokio::spawn(wrk);
    tokio::time::sleep(Duration::from_secs(1)).await;
    std::fs::write(&path, file(&[("b", b), ("c", c)])).unwrap();
    lb.signal(Signal::SIGHUP).unwrap();
    until("b and c in rotation, a gone", wait, async || {
        in_rotation(&["b", "c"]).await
    })
    .await;
    let output = wrk
        .await
        .unwrap()
        .expect("wrk runs (scripts/test installs it)");
    let report = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{report}");
    assert!(report.contains("requests in"), "{report}");
    assert_eq!(wrk_failures(&report), 0, "{report}");
    let metrics = client
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l
                .starts_with("vitals_lb_requests_total{pool=\"web\",backend=\"c\",class=\"2xx\"}")),
        "c took no traffic after the reload:\n{metrics}"
    );
    lb.print_output();
}
