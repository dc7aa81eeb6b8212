//! What the monitor's integration tests share: a real `vitals serve` started on a
//! configuration text, a webhook receiver that keeps the JSON it gets, and a bounded wait.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test file uses some

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;

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

/// The JSON bodies a [`webhook`] received, in order.
pub type Received = Arc<Mutex<Vec<serde_json::Value>>>;

/// A webhook receiver on a free loopback port: its URL (`http://127.0.0.1:PORT/hook`) and
/// what it has received so far. It answers every POST with 200.
pub async fn webhook() -> (String, Received) {
    let received: Received = Arc::default();
    let app = Router::new()
        .route(
            "/hook",
            post(|State(got): State<Received>, body: String| async move {
                got.lock()
                    .unwrap()
                    .push(serde_json::from_str(&body).unwrap());
                "ok"
            }),
        )
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, received)
}
