//! The monitor's HTTP face: healthchecks.io-compatible pings (`/ping/…`), the JSON API
//! (`/api/v1/…`) and `/metrics`. Handlers read and nudge the engine; they judge nothing.

mod actions;
pub mod alert_metrics;
pub mod alerts;
mod metrics;
mod pages;
mod ping;
mod targets;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use metrics::Metrics;

use crate::engine::Engine;

/// Who may do what.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// Required (as `Authorization: Bearer …`) for pause, resume and maintenance. Without
    /// one configured, changing operations are refused.
    pub api_token: Option<String>,
    /// When set, reading the API needs this token (or the API token) too.
    pub read_token: Option<String>,
}

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct Api {
    pub(crate) engine: Engine,
    pub(crate) store: Option<Arc<crate::store::Store>>,
    pub(crate) udp: Option<Arc<crate::udp::Counters>>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) access: Access,
    /// Automatic recovery, for `/api/v1/targets/{id}/actions`; none: no target has a budget.
    pub(crate) recovery: Option<crate::recovery::Recoverer>,
    /// The alert path's sources, for `/metrics` (`alert_metrics.rs`).
    pub(crate) alert_path: alert_metrics::AlertPath,
    /// The targets by id, for pages of `/api/v1/targets`: sorted on the first request rather
    /// than here, so start-up does not wait for it.
    pub(crate) order: Arc<OnceLock<Vec<usize>>>,
}

impl Api {
    pub fn new(
        engine: Engine,
        store: Option<Arc<crate::store::Store>>,
        udp: Option<Arc<crate::udp::Counters>>,
        metrics: Arc<Metrics>,
        access: Access,
    ) -> Self {
        Api {
            engine,
            store,
            udp,
            metrics,
            access,
            recovery: None,
            alert_path: alert_metrics::AlertPath::default(),
            order: Arc::default(),
        }
    }

    /// Shows the alert path (outbox, deliveries, recovery, store writes) in `/metrics`.
    pub fn with_alert_path(mut self, path: alert_metrics::AlertPath) -> Self {
        self.alert_path = path;
        self
    }

    /// Serves the recovery budgets and log of `recovery`.
    pub fn with_recovery(mut self, recovery: crate::recovery::Recoverer) -> Self {
        self.recovery = Some(recovery);
        self
    }
}

/// The monitor's routes. `ping_body_limit` caps a ping's body (larger is a 413).
pub fn router(api: Api, ping_body_limit: usize) -> Router {
    let pings = Router::new()
        .route("/ping/{id}", get(ping::success).post(ping::success))
        .route(
            "/ping/{id}/{action}",
            get(ping::with_action).post(ping::with_action),
        )
        .layer(DefaultBodyLimit::max(ping_body_limit));
    Router::new()
        .merge(pings)
        .route("/api/v1/targets", get(targets::list))
        .route("/api/v1/targets/{id}", get(targets::one))
        .route("/api/v1/targets/{id}/checks/{check}", get(targets::part))
        .route("/api/v1/targets/{id}/pause", post(targets::pause))
        .route("/api/v1/targets/{id}/resume", post(targets::resume))
        .route("/api/v1/targets/{id}/actions", get(actions::list))
        .route("/api/v1/targets/{id}/actions/reset", post(actions::reset))
        .route(
            "/api/v1/targets/{id}/maintenance",
            post(targets::maintenance),
        )
        .route("/metrics", get(metrics::scrape))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "no such endpoint; see /api/v1/targets",
            )
        })
        .with_state(api)
}

/// A JSON error: `{"error": "…"}`.
pub(crate) fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (
        code,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// A refused request: small to return, turned into a JSON error response by the handler.
#[derive(Debug)]
pub(crate) struct Denied(StatusCode, &'static str);

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        error(self.0, self.1)
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compare without an early exit, so timing does not reveal how much of a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Access {
    /// Whether `given` is the read token or the API token (the API token may do anything).
    pub(crate) fn accepts_for_read(&self, given: &str) -> bool {
        self.read_token.as_deref().is_some_and(|t| same(given, t))
            || self.api_token.as_deref().is_some_and(|t| same(given, t))
    }

    /// Reads are public unless a read token is configured.
    fn may_read(&self, headers: &HeaderMap) -> Result<(), Denied> {
        if self.read_token.is_none() {
            return Ok(());
        }
        if bearer(headers).is_some_and(|given| self.accepts_for_read(given)) {
            Ok(())
        } else {
            Err(Denied(
                StatusCode::UNAUTHORIZED,
                "reading needs Authorization: Bearer <read_token>",
            ))
        }
    }

    fn may_change(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(api) = &self.api_token else {
            return Err(Denied(
                StatusCode::FORBIDDEN,
                "changing operations are disabled: set server.api_token in the config",
            ));
        };
        if bearer(headers).is_some_and(|given| same(given, api)) {
            Ok(())
        } else {
            Err(Denied(
                StatusCode::UNAUTHORIZED,
                "this needs Authorization: Bearer <api_token>",
            ))
        }
    }
}
