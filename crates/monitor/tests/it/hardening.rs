//! Issue 11, end to end on loopback: what an outsider could do to a running `vitals serve`
//! through its HTTP port, each reproduced against a real monitor and refused now.
//!
//! - item 1: forged heartbeats (guessable ping ids, keys, HTTP for UDP targets, recovery run
//!   by unauthenticated pings);
//! - item 2: a ping flood (per-id rate, 429 counted in /metrics);
//! - item 6: maintenance of 8000 years; item 8: `ping_body_limit = 0`;
//! - item 12: the login redirect and cookie.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::time::Duration;

use vitals_testkit::{holds, until};

const API_TOKEN: &str = "s3cret-token-0123456789";

struct Monitor {
    base: String,
    client: reqwest::Client,
    data: tempfile::TempDir,
}

async fn start(server: &str, targets: &str) -> Monitor {
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\napi_token = \"{API_TOKEN}\"\n{server}\n\n{targets}",
        data.path().display().to_string()
    );
    Monitor {
        base: crate::support::serve(&text).await,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        data,
    }
}

impl Monitor {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }

    async fn text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn target(&self, id: &str, token: Option<&str>) -> serde_json::Value {
        let mut request = self
            .client
            .get(format!("{}/api/v1/targets/{id}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    async fn wait_for_state(&self, id: &str, state: &str) -> serde_json::Value {
        until(
            format!("{id} to become {state}"),
            Duration::from_secs(20),
            async || holds(self.target(id, None).await, |t| t["state"] == state),
        )
        .await
    }

    async fn metrics(&self) -> String {
        self.text("/metrics").await.1
    }
}

/// Item 1: the ping id defaulted to the target id, which the status page, badges and
/// /metrics show. Now a heartbeat without one gets a UUID, kept in the data directory, shown
/// to the API token alone; the target's id is no ping URL.
#[tokio::test(flavor = "multi_thread")]
async fn a_ping_id_cannot_be_learned_from_anything_public() {
    let monitor = start(
        "",
        "[[target]]\nid = \"backup\"\nname = \"Nightly backup\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nfall = 1\n",
    )
    .await;
    // The forged pings of the report: the id as ping id.
    for path in [
        "/ping/backup/fail",
        "/ping/backup",
        "/ping/Nightly%20backup/fail",
    ] {
        assert_eq!(monitor.get(path).await.status(), 404, "{path}");
    }
    let ping_id = monitor.target("backup", Some(API_TOKEN)).await["ping_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(ping_id.len(), 36, "a UUID: {ping_id}");
    assert!(
        monitor
            .target("backup", None)
            .await
            .get("ping_id")
            .is_none(),
        "readers without the API token do not see it"
    );
    let kept = std::fs::read_to_string(monitor.data.path().join("ping_ids")).unwrap();
    assert!(kept.contains(&format!("backup {ping_id}\n")), "{kept}");
    for public in [
        "/status",
        "/badge/backup.svg",
        "/metrics",
        "/api/v1/targets",
        "/",
    ] {
        let (_, body) = monitor.text(public).await;
        assert!(!body.contains(&ping_id), "{public} shows the ping id");
    }
    assert_eq!(
        monitor.text(&format!("/ping/{ping_id}/fail")).await,
        (200, "OK".into())
    );
    monitor.wait_for_state("backup", "unhealthy").await;
}

/// Item 1: per-target ping keys, by query or header; HTTP refused for UDP-keyed targets.
#[tokio::test(flavor = "multi_thread")]
async fn keyed_targets_take_pings_with_their_key_and_udp_targets_take_none_over_http() {
    let monitor = start(
        "udp_listen = \"127.0.0.1:0\"",
        "[[target]]\nid = \"keyed\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_key = \"k3y-0123456789abcdef\"\n\
         [[target]]\nid = \"udp\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nudp_key = \"00112233445566778899aabbccddeeff\"\n",
    )
    .await;
    let (code, reason) = monitor.text("/ping/keyed/fail").await;
    assert_eq!(code, 401);
    assert!(
        reason.contains("?key=<ping_key> or an X-Ping-Key header"),
        "{reason}"
    );
    assert_eq!(
        monitor.text("/ping/keyed?key=k3y-0123456789abcdeX").await.0,
        401
    );
    assert_eq!(
        monitor.text("/ping/keyed?key=k3y-0123456789abcdef").await,
        (200, "OK".into())
    );
    let by_header = monitor
        .client
        .post(format!("{}/ping/keyed/0", monitor.base))
        .header("X-Ping-Key", "k3y-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let (code, reason) = monitor.text("/ping/udp/fail").await;
    assert_eq!(code, 403);
    assert!(
        reason.contains("authenticated UDP heartbeats only"),
        "{reason}"
    );
    monitor.wait_for_state("keyed", "healthy").await;
    assert_eq!(monitor.target("udp", None).await["state"], "unknown");
    let metrics = monitor.metrics().await;
    for line in [
        "vitals_heartbeats_total{transport=\"http\",result=\"bad_key\"} 2",
        "vitals_heartbeats_total{transport=\"http\",result=\"udp_only\"} 1",
        "vitals_heartbeats_total{transport=\"http\",result=\"accepted\"} 2",
    ] {
        assert!(metrics.contains(line), "no {line:?} in\n{metrics}");
    }
}

/// Item 1: four forged `/fail` pings ran a recovery command three times. A failure reported
/// by a ping without a key runs nothing unless the target says it trusts such pings.
#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_pings_never_run_a_recovery_action_unless_trusted() {
    let marks = tempfile::tempdir().unwrap();
    let recover = |name: &str, trust: bool| {
        format!(
            "[target.recover]\ncommand = [\"touch\", {:?}]\nbackoff = \"1s\"\ntrust_unauthenticated_pings = {trust}\n",
            marks.path().join(name).display().to_string()
        )
    };
    let monitor = start(
        "",
        &format!(
            "[[target]]\nid = \"forged\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_id = \"0b6f2c1e-1111-4a6a-9c3e-1d2b3c4d5e6f\"\nfall = 1\ndown_after = 2\n{}\n\
             [[target]]\nid = \"trusted\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_id = \"0b6f2c1e-2222-4a6a-9c3e-1d2b3c4d5e6f\"\nfall = 1\ndown_after = 2\n{}\n",
            recover("forged", false),
            recover("trusted", true),
        ),
    )
    .await;
    for _ in 0..4 {
        for id in ["1111", "2222"] {
            let path = format!("/ping/0b6f2c1e-{id}-4a6a-9c3e-1d2b3c4d5e6f/fail");
            assert_eq!(monitor.text(&path).await.0, 200);
        }
    }
    monitor.wait_for_state("forged", "down").await;
    monitor.wait_for_state("trusted", "down").await;
    // The trusted target's action runs; by then the forged one's would have, had it been
    // handed to recovery (both were judged in the same order).
    until(
        "the trusted target's recovery command",
        Duration::from_secs(20),
        async || marks.path().join("trusted").exists(),
    )
    .await;
    let log = monitor
        .client
        .get(format!("{}/api/v1/targets/forged/actions", monitor.base))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(log["actions"], serde_json::json!([]), "{log}");
    assert_eq!(log["budget"]["attempts"], 0, "{log}");
    assert!(!marks.path().join("forged").exists());
}

/// Item 2: per-id rate, answered 429 with the reason and Retry-After, counted in /metrics.
#[tokio::test(flavor = "multi_thread")]
async fn a_ping_flood_is_answered_429_per_id() {
    let monitor = start(
        "ping_rate = 6",
        "[[target]]\nid = \"a\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_id = \"a-1b2c3d\"\n\
         [[target]]\nid = \"b\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_id = \"b-1b2c3d\"\n",
    )
    .await;
    // Six a minute: a burst of three, then one every ten seconds.
    let mut codes = Vec::new();
    for _ in 0..5 {
        codes.push(monitor.text("/ping/a-1b2c3d").await.0);
    }
    assert_eq!(codes, [200, 200, 200, 429, 429]);
    let response = monitor.get("/ping/a-1b2c3d").await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&retry), "retry-after {retry}");
    let reason = response.text().await.unwrap();
    assert!(reason.contains("server.ping_rate (6 a minute)"), "{reason}");
    // Another id has its own allowance.
    assert_eq!(monitor.text("/ping/b-1b2c3d").await.0, 200);
    let metrics = monitor.metrics().await;
    assert!(
        metrics.contains("vitals_heartbeats_total{transport=\"http\",result=\"rate_limited\"} 3"),
        "{metrics}"
    );
}

/// Item 8: `ping_body_limit = 0` answered 413 and lost the ping; the docs say 0 keeps no
/// body. A health+json verdict still counts.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_limit_of_zero_keeps_the_ping_and_no_body() {
    let monitor = start(
        "ping_body_limit = 0",
        "[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nping_id = \"job-5e6f\"\nfall = 1\nrise = 1\n",
    )
    .await;
    let url = format!("{}/ping/job-5e6f", monitor.base);
    let logged = monitor
        .client
        .post(&url)
        .body("a log line the monitor must not keep")
        .send()
        .await
        .unwrap();
    assert_eq!(logged.status(), 200);
    monitor.wait_for_state("job", "healthy").await;
    let failed = monitor
        .client
        .post(&url)
        .header("content-type", "application/health+json")
        .body(r#"{"status":"fail"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 200);
    monitor.wait_for_state("job", "unhealthy").await;
    let (_, page) = monitor.text("/targets/job").await;
    assert!(!page.contains("a log line the monitor must not keep"));
}

/// Item 6: `{"for":"8000y"}` set the flag and then every listing panicked; a huge one
/// overflowed. Now both are a 400 naming the limit, and the API keeps answering.
#[tokio::test(flavor = "multi_thread")]
async fn maintenance_is_bounded_and_names_its_limit() {
    let monitor = start(
        "",
        "[[target]]\nid = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\ninterval = \"1h\"\n",
    )
    .await;
    for long in ["8000y", "500000000000y", "367d"] {
        let response = monitor
            .client
            .post(format!("{}/api/v1/targets/api/maintenance", monitor.base))
            .bearer_auth(API_TOKEN)
            .json(&serde_json::json!({ "for": long }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{long}");
        let error = response.json::<serde_json::Value>().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains("366 days"),
            "{long}: {error}"
        );
    }
    let ok = monitor
        .client
        .post(format!("{}/api/v1/targets/api/maintenance", monitor.base))
        .bearer_auth(API_TOKEN)
        .json(&serde_json::json!({ "for": "366d" }))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(monitor.get("/api/v1/targets").await.status(), 200);
    assert_eq!(monitor.get("/api/v1/targets/api").await.status(), 200);
}

/// Item 12: `next=/\t/evil.example` passed the redirect check (browsers drop the tab), and
/// the cookie lacked `Secure` behind an https proxy.
#[tokio::test(flavor = "multi_thread")]
async fn login_redirects_stay_home_and_the_cookie_is_secure_behind_https() {
    let monitor = start(
        "read_token = \"r34d-token-0123456789\"\npublic_url = \"https://vitals.example.com\"",
        "",
    )
    .await;
    let (_, form) = monitor.text("/login?next=/%09/evil.example").await;
    assert!(form.contains(r#"name="next" value="/""#), "{form}");
    let login = monitor
        .client
        .post(format!("{}/login", monitor.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=r34d-token-0123456789&next=%2F%09%2Fevil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 303);
    assert_eq!(login.headers()["location"], "/");
    let cookie = login.headers()["set-cookie"].to_str().unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
}

/// Item 4: the monitor held 3,000 connections sending half a header forever and took any
/// number of them. Now a head must arrive within 10 s, and at `max_connections` the
/// connection waiting longest makes room, so `/livez` is answered within about a second.
/// (Refusals with a reason, when every slot is busy, are tested with the server itself in
/// `crates/vitals/tests/it/http_limits.rs`.)
#[tokio::test(flavor = "multi_thread")]
async fn slow_and_excess_connections_do_not_keep_the_monitor_from_answering() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let monitor = start("max_connections = 3", "").await;
    let addr = monitor.base.trim_start_matches("http://").to_owned();
    let mut slow = Vec::new();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Every slot is held by a half-sent header; the one waiting longest makes room (after
    // a second), so the probe is answered rather than refused or kept waiting for the
    // header timeout.
    until(
        "/livez answered beside three slow connections",
        Duration::from_secs(5),
        async || monitor.get("/livez").await.status() == 200,
    )
    .await;
    // The slow ones are closed: evicted for the probe, or at the header timeout.
    for stream in &mut slow {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut rest));
        assert!(read.await.is_ok(), "a half header held past 20 s");
    }
    assert_eq!(monitor.get("/livez").await.status(), 200);
}
