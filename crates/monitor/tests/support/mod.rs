//! What the monitor's integration tests share: a real `vitals serve` started on a
//! configuration text, and a bounded wait.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test file uses some

use std::time::Duration;

use tokio::time::Instant;
use vitals_monitor::{config, serve};

/// Parses `text` (it must be valid) and runs `vitals serve` on it in the background; returns
/// the base URL it listens on (`http://127.0.0.1:PORT`; give `listen = "127.0.0.1:0"`).
pub async fn serve(text: &str) -> String {
    let config = config::parse(text, "test.toml").unwrap_or_else(|errors| panic!("{errors}"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        serve::run(config, move |addr| {
            let _ = tx.send(addr);
        })
        .await
        .unwrap();
    });
    format!("http://{}", rx.await.unwrap())
}

/// Polls `done` every 20 ms until it holds; fails the test naming `what` after `limit`.
pub async fn until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
