//! The heartbeat emitter: push "alive, and this is my status" to a URL every N seconds.
//!
//! The push side of liveness: a monitor that stops hearing from a service knows it is gone
//! even when nothing can reach the service to probe it. The body is the same
//! `application/health+json` that `/health` serves, so the receiver sees the status and each
//! check. It reads the snapshot like any probe request; it never runs a check itself.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::health::Health;
use crate::lifecycle::Phase;
use crate::view::Scope;

/// Builds and spawns a heartbeat emitter. See [`Heartbeat::spawn`].
#[derive(Debug, Clone)]
pub struct Heartbeat {
    url: String,
    every: Duration,
    client: reqwest::Client,
}

impl Heartbeat {
    /// Push to `url` (for example a vitals monitor's `/ping/<uuid>`) every 10 s.
    pub fn new(url: impl Into<String>) -> Self {
        Heartbeat {
            url: url.into(),
            every: Duration::from_secs(10),
            client: reqwest::Client::new(),
        }
    }

    pub fn every(mut self, every: Duration) -> Self {
        self.every = every.max(Duration::from_millis(100));
        self
    }

    /// Send through the application's own client.
    pub fn client(mut self, client: reqwest::Client) -> Self {
        self.client = client;
        self
    }

    /// Start pushing in the background, the first beat at once, until the service stops.
    /// A failed push is logged and the next one goes out on schedule: a monitor that is
    /// down must not slow the service.
    pub fn spawn(self, health: &Health) -> JoinHandle<()> {
        let health = health.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now(), self.every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut phase = health.subscribe_phase();
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = phase.wait_for(|phase| *phase == Phase::Stopped) => return,
                }
                let body = body(&health);
                let sent = self
                    .client
                    .post(&self.url)
                    .timeout(self.every.min(Duration::from_secs(10)))
                    .header("content-type", vitals_core::health_json::CONTENT_TYPE)
                    .body(body)
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().is_success() => {
                        tracing::debug!(url = %self.url, "heartbeat sent");
                    }
                    Ok(response) => {
                        tracing::warn!(url = %self.url, status = %response.status(), "heartbeat refused");
                    }
                    Err(error) => tracing::warn!(url = %self.url, %error, "heartbeat not sent"),
                }
            }
        })
    }
}

/// The health+json body of every check, with details: the receiver is our own monitor.
fn body(health: &Health) -> String {
    let snapshot = health.snapshot();
    let verdict = health.verdict(&snapshot, Scope::All, &[]);
    crate::endpoints::health_body(health, &verdict, true)
}
