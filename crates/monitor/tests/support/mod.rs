//! What the monitor's integration tests share: a real `vitals serve` started on a
//! configuration text. Polls, webhook receivers and ports come from `vitals_testkit`.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test file uses some

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
