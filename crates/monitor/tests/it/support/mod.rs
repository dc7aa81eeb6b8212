//! What the monitor's integration tests share: a real `vitals serve` started on a
//! configuration text. Polls, webhook receivers and ports come from `vitals_testkit`.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test file uses some

use std::time::Duration;

use vitals_monitor::{config, serve};
use vitals_testkit::{holds, until};

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

/// A monitor running on a configuration, its API client, and its data directory.
pub struct Monitor {
    pub base: String,
    pub client: reqwest::Client,
    pub _data: tempfile::TempDir,
}

/// `vitals serve` on `targets` (TOML), with an API token and a temporary data directory.
pub async fn start(targets: &str) -> Monitor {
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\napi_token = \"s3cret-token-0123456789\"\nping_body_limit = 1000\n\n{targets}",
        data.path().display().to_string()
    );
    Monitor {
        base: serve(&text).await,
        client: reqwest::Client::new(),
        _data: data,
    }
}

impl Monitor {
    /// The JSON body of GET `path` (`/api/v1/…`).
    pub async fn json(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        self.client
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn target(&self, id: &str) -> serde_json::Value {
        self.json(&format!("/api/v1/targets/{}", id.replace('/', "%2F")))
            .await
    }

    pub async fn wait_for_state(&self, id: &str, state: &str) -> serde_json::Value {
        let what = format!("{id} to become {state}");
        until(what, Duration::from_secs(20), async || {
            holds(self.target(id).await, |target| target["state"] == state)
        })
        .await
    }
}
