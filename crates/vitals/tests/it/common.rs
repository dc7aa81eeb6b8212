//! Helpers shared by the library's integration tests: a switchable probe and a one-shot
//! request through the real router.

#![allow(dead_code, clippy::unwrap_used, missing_debug_implementations)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;
use vitals::Report;
use vitals::probes::{Probe, from_fn};

/// A probe whose verdict the test sets, and which counts its runs.
#[derive(Clone, Default)]
pub struct Switch {
    state: Arc<AtomicU8>,
    runs: Arc<AtomicUsize>,
}

impl Switch {
    pub fn pass(&self) {
        self.state.store(0, Ordering::SeqCst);
    }
    pub fn warn(&self) {
        self.state.store(1, Ordering::SeqCst);
    }
    pub fn fail(&self) {
        self.state.store(2, Ordering::SeqCst);
    }
    pub fn runs(&self) -> usize {
        self.runs.load(Ordering::SeqCst)
    }
    pub fn probe(&self) -> impl Probe + use<> {
        let switch = self.clone();
        from_fn(move || {
            let switch = switch.clone();
            async move {
                switch.runs.fetch_add(1, Ordering::SeqCst);
                match switch.state.load(Ordering::SeqCst) {
                    0 => Report::pass(),
                    1 => Report::warn("slow"),
                    _ => Report::fail("connection refused"),
                }
            }
        })
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }
}

pub async fn get(router: &Router, uri: &str) -> Answer {
    get_with(router, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub async fn get_with(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|value| value.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    Answer {
        status,
        content_type,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// Let the background tasks run until the paused clock reaches `secs` more seconds.
pub async fn advance(secs: f64) {
    tokio::time::sleep(std::time::Duration::from_secs_f64(secs)).await;
}
