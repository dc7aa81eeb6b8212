//! The monitor's HTTP face: healthchecks.io-compatible pings (`/ping/…`), the JSON API
//! (`/api/v1/…`) and `/metrics`. Handlers read and nudge the engine; they judge nothing.

mod actions;
pub mod alert_metrics;
pub mod alerts;
mod metrics;
mod pages;
mod ping;
mod ping_gate;
pub mod reload;
pub mod replicas;
mod targets;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use axum::Router;
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
    /// Mark the dashboard's login cookie `Secure`: people reach the monitor over https
    /// (`server.public_url`), through a proxy that terminates TLS.
    pub secure_cookie: bool,
}

/// Who may ping and as whom: ping keys, UDP-only targets, rates (`ping_gate`) and each
/// heartbeat target's ping id (shown to the API token only). Clones share them; a reload
/// replaces them ([`Pings::reload`]). Empty: every ping passes.
#[derive(Debug, Clone, Default)]
pub struct Pings {
    pub(crate) gate: Arc<ArcSwap<ping_gate::PingGate>>,
    pub(crate) ids: Arc<ArcSwap<std::collections::HashMap<String, String>>>,
    /// The target of each ping id, for forwarding a ping to the replica holding it.
    pub(crate) targets: Arc<ArcSwap<std::collections::HashMap<String, String>>>,
}

impl Pings {
    /// As `config` says now (ping ids resolved). A ping id that stays keeps its rate's
    /// bucket, so a reload hands no sender a fresh burst.
    pub fn reload(&self, config: &crate::config::Config) {
        let now = tokio::time::Instant::now().into_std();
        let gate = ping_gate::PingGate::new(config, now).keeping_buckets(&self.gate.load());
        self.gate.store(Arc::new(gate));
        self.targets.store(Arc::new(
            config
                .targets
                .iter()
                .filter_map(|target| match &target.kind {
                    crate::config::TargetKind::Heartbeat(h) => {
                        Some((h.ping_id.clone()?, target.id.clone()))
                    }
                    _ => None,
                })
                .collect(),
        ));
        self.ids.store(Arc::new(
            config
                .targets
                .iter()
                .filter_map(|target| match &target.kind {
                    crate::config::TargetKind::Heartbeat(h) => {
                        Some((target.id.clone(), h.ping_id.clone()?))
                    }
                    _ => None,
                })
                .collect(),
        ));
    }
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
    /// The targets by id, for pages of `/api/v1/targets`, with the set of targets it was
    /// sorted for: sorted on the first request after start-up or a reload rather than there,
    /// so neither waits for it.
    pub(crate) order: Arc<Mutex<Option<pages::Order>>>,
    /// Ping keys, UDP-only targets, rates and ping ids; a reload replaces them.
    pub(crate) pings: Pings,
    /// Bytes of a ping body kept; 0 keeps none.
    pub(crate) ping_body_limit: usize,
    /// Pings a minute per ping id, for the 429's reason.
    pub(crate) ping_rate: u32,
    /// What `POST /api/v1/reload` calls; none: the endpoint answers that reload is off.
    pub(crate) reload: Option<Arc<dyn reload::Reload>>,
    /// The replicas sharing PostgreSQL; none: this monitor runs alone.
    pub(crate) fleet: Option<replicas::Fleet>,
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
            pings: Pings::default(),
            ping_body_limit: crate::config::defaults::PING_BODY_LIMIT,
            ping_rate: 0,
            reload: None,
            fleet: None,
        }
    }

    /// Shows the replicas sharing `fleet.store` (`/api/v1/replicas`, fleet gauges).
    pub fn with_fleet(mut self, fleet: replicas::Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Answers `POST /api/v1/reload` with `reload` (the monitor's configuration reload).
    pub fn with_reload(mut self, reload: Arc<dyn reload::Reload>) -> Self {
        self.reload = Some(reload);
        self
    }

    /// Pings as `config` says: keys, UDP-only targets, rates, the body limit; and the ping
    /// ids the API shows to the API token. Ping ids must be resolved (`ping_ids::resolve`).
    pub fn with_pings(mut self, config: &crate::config::Config) -> Self {
        self.ping_body_limit = config.server.ping_body_limit;
        self.ping_rate = config.server.ping_rate;
        self.pings.reload(config);
        self
    }

    /// The pings' rules, to replace on a reload.
    pub fn pings(&self) -> Pings {
        self.pings.clone()
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

/// The monitor's routes. Ping bodies are read up to the API's `ping_body_limit` (larger is
/// a 413), by the ping handlers themselves.
pub fn router(api: Api) -> Router {
    let pings = Router::new()
        .route("/ping/{id}", get(ping::success).post(ping::success))
        .route(
            "/ping/{id}/{action}",
            get(ping::with_action).post(ping::with_action),
        );
    Router::new()
        .merge(pings)
        .route("/api/v1/targets", get(targets::list))
        .route("/api/v1/targets/{id}", get(targets::one))
        .route("/api/v1/targets/{id}/checks/{check}", get(targets::part))
        .route("/api/v1/reload", post(reload::reload))
        .route("/api/v1/replicas", get(replicas::list))
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

/// Compare secrets so that timing tells nothing: neither how much of a guess was right (no
/// early exit) nor the secret's length (both sides are hashed to 32 bytes first; comparing
/// the raw bytes returned at once on a length mismatch, issue 11 item 12).
pub(crate) fn same(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
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

    pub(crate) fn may_change(&self, headers: &HeaderMap) -> Result<(), Denied> {
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

#[cfg(test)]
mod tests {
    use super::same;

    /// Issue 11, item 12: the comparison returned at once on a length mismatch, so timing told
    /// a token's length. Both sides are hashed first now; timing is measured in bench, not
    /// asserted here: this pins what the comparison answers, for every length.
    #[test]
    fn tokens_compare_equal_only_when_equal_whatever_their_lengths() {
        let token = "s3cret-token-0123456789";
        assert!(same(token, token));
        for guess in [
            "",
            "s",
            "s3cret-token-012345678",
            "s3cret-token-01234567890",
            "S3cret-token-0123456789",
        ] {
            assert!(!same(guess, token), "{guess:?}");
            assert!(!same(token, guess), "{guess:?}");
        }
    }
}
