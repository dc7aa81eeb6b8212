//! Two-level detection end to end (issue 15): a real `vitals serve` receiving UDP beats every
//! 100 ms from this test, which also holds the TCP listener the target's `confirm` points at.
//! Beats stop with the listener still open (what a stopped process looks like from outside:
//! its kernel completes the handshake) → stalled, degraded, never down; beats stop and the
//! listener closes (the process is gone) → confirmed dead, down at once.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::support::Monitor;

const KEY: &str = "00112233445566778899aabbccddeeff";

/// Sends a beat for `id` every 100 ms while `beating` holds.
fn sender(port: u16, id: &'static str, beating: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let key = hex::decode(KEY).unwrap();
        let mut datagram = Vec::new();
        let mut ticks = tokio::time::interval(Duration::from_millis(100));
        for seq in 1.. {
            ticks.tick().await;
            if !beating.load(Ordering::Relaxed) {
                continue;
            }
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            vitals_monitor::udp::encode(
                id,
                seq,
                now_ms,
                vitals_core::Status::Pass,
                &key,
                &mut datagram,
            )
            .unwrap();
            let _ = socket.send_to(&datagram, ("127.0.0.1", port)).await;
        }
    });
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stall_is_degraded_and_a_gone_process_is_down_at_once() {
    let udp = vitals_testkit::free_port().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let confirm = listener.local_addr().unwrap();
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nudp_listen = \"127.0.0.1:{udp}\"\ndata_dir = {:?}\n\n[[target]]\nid = \"w\"\nkind = \"heartbeat\"\nperiod = \"100ms\"\nudp_key = \"{KEY}\"\nconfirm = \"tcp://{confirm}\"\n",
        data.path().display().to_string()
    );
    let monitor = Monitor {
        base: crate::support::serve(&text).await,
        client: reqwest::Client::new(),
        _data: data,
    };
    let beating = Arc::new(AtomicBool::new(true));
    sender(udp, "w", Arc::clone(&beating));
    monitor.wait_for_state("w", "healthy").await;

    // Stalled: no beats for 1.5 s, the listener still completes handshakes.
    beating.store(false, Ordering::Relaxed);
    let stalled = monitor.wait_for_state("w", "degraded").await;
    let output = stalled["last"]["output"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(output.contains("alive but stalled"), "{stalled}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(monitor.target("w").await["state"], "degraded");
    beating.store(true, Ordering::Relaxed);
    monitor.wait_for_state("w", "healthy").await;

    // Gone: the beats stop and nothing listens any more.
    drop(listener);
    beating.store(false, Ordering::Relaxed);
    let down = monitor.wait_for_state("w", "down").await;
    let text = monitor.target("w").await.to_string();
    assert!(text.contains("confirmed dead"), "{down}\n{text}");
    assert!(
        !text.contains("\"failing\""),
        "no failing on the way down: {text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_active_target_whose_port_refuses_is_down_at_its_first_failure() {
    // Issue 15: down at once, not after down_after (3) failed checks.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        axum::serve(listener, app).await
    });
    let monitor = crate::support::start(&format!(
        "[[target]]\nid = \"api\"\nkind = \"http\"\nurl = \"http://{addr}/health\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nconfirm = \"tcp://{addr}\"\n"
    ))
    .await;
    monitor.wait_for_state("api", "healthy").await;
    server.abort();
    let _ = server.await;
    monitor.wait_for_state("api", "down").await;
    let target = monitor.target("api").await;
    let text = target.to_string();
    assert!(text.contains("confirmed dead"), "{text}");
    let failures = target["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] != "pass")
        .count();
    assert!(failures < 3, "down before down_after failures: {text}");
}
