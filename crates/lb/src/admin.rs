//! The admin API, on its own listener: pools and backends as JSON, drain and undrain a
//! backend, reload the configuration, `/metrics`.
//!
//! Guarded (issue 11, item 12), because a browser on the operator's desk can reach a
//! loopback port too:
//! - every request must name, in `Host`, an IP address, `localhost`, or one of
//!   `[admin] hosts`: a page whose name resolves to 127.0.0.1 (DNS rebinding) is refused;
//! - drain, undrain and reload need `Authorization: Bearer <token>` when `[admin] token` is set
//!   (compared in constant time); without a token they are taken only on a loopback listener,
//!   and never from a browser page of another site (an `Origin` that is not this host, or
//!   `Sec-Fetch-Site: cross-site`), so a cross-site form cannot drain backends.
//!
//! - `GET /api/v1/pools` — every pool, each backend's state.
//! - `POST /api/v1/pools/{pool}/backends/{backend}/drain` (and `/undrain`) — stop (or
//!   resume) sending it new requests; requests in flight finish.
//! - `POST /api/v1/reload` — read the configuration file again and apply it, as SIGHUP
//!   does; 400 with every error when the file is refused (the running one stays), 409 when
//!   the balancer was started without a file.
//! - `GET /metrics` — Prometheus text.
//!
//! Not here: any routing decision; handlers read the pools and flip one flag.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::health::refresh_up;
use crate::metrics::Metrics;
use crate::pool::PoolState;
use crate::reload::Balancer;
use crate::{lock, now};

#[derive(Debug, Clone)]
pub struct Admin {
    /// Every pool's state, as the last configuration applied made them.
    pub pools: Arc<ArcSwap<Vec<Arc<Mutex<PoolState>>>>>,
    /// What a reload is applied to.
    pub balancer: Arc<Balancer>,
    pub metrics: Arc<Metrics>,
    /// `[admin] token`: needed to drain and undrain.
    pub token: Option<String>,
    /// `[admin] hosts`: names accepted in `Host` besides IP addresses and `localhost`.
    pub hosts: Vec<String>,
    /// The admin listener is on a loopback address: without a token, changes are taken.
    pub loopback: bool,
}

#[derive(Debug, Serialize)]
struct PoolView {
    id: String,
    panicking: bool,
    /// No backend in rotation, but some out only by passive ejection: they get the traffic.
    failing_open: bool,
    backends: Vec<BackendView>,
}

#[derive(Debug, Serialize)]
struct BackendView {
    name: String,
    address: String,
    weight: u32,
    /// The state machine's state from the active checks.
    state: &'static str,
    in_rotation: bool,
    /// The stall watch (issue 15): "normal", "suspect" or "stalled".
    stall: &'static str,
    drained: bool,
    /// Its readiness answered 503.
    not_ready: bool,
    /// Milliseconds of ejection left, when ejected.
    ejected_for_ms: Option<u128>,
    ejections: u32,
    in_flight: u32,
}

fn backend_view(state: &PoolState, index: usize, now: Instant) -> BackendView {
    let b = &state.backends[index];
    BackendView {
        name: b.name.clone(),
        address: b.address.to_string(),
        weight: b.weight,
        state: b.health.as_str(),
        in_rotation: b.in_rotation(now),
        stall: b.watch.verdict.as_str(),
        drained: b.drained,
        not_ready: b.not_ready,
        ejected_for_ms: b
            .ejected_until
            .filter(|until| *until > now)
            .map(|until| (until - now).as_millis()),
        ejections: state.ejection_count(index, now),
        in_flight: b.in_flight,
    }
}

pub fn router(admin: Admin) -> Router {
    Router::new()
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/pools/{pool}/backends/{backend}/drain", post(drain))
        .route(
            "/api/v1/pools/{pool}/backends/{backend}/undrain",
            post(undrain),
        )
        .route("/api/v1/reload", post(reload))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(admin.clone(), guard))
        .with_state(admin)
}

/// A refusal: status and a line saying what to do.
fn refuse(status: StatusCode, text: &str) -> Response {
    (status, format!("{text}\n")).into_response()
}

/// The host part of a `Host` header: `[::1]:9901` → `::1`, `lb.internal:9901` →
/// `lb.internal`.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    host.rsplit_once(':').map_or(host, |(name, _)| name)
}

/// Whether the admin API answers to `host`.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host).to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok() || name == "localhost" || allowed.contains(&name)
}

/// Equal, in time that depends on the expected token's length only (never on how much of a
/// guess was right, nor on the guess's length).
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != expected.len());
    for (i, e) in expected.iter().enumerate() {
        diff |= e ^ given.get(i).copied().unwrap_or(0);
    }
    diff == 0
}

/// The checks of the module doc, before any handler.
async fn guard(State(admin): State<Admin>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !host_allowed(host, &admin.hosts) {
        return refuse(
            StatusCode::MISDIRECTED_REQUEST,
            &format!(
                "the admin API does not answer to host {host:?}; use an IP address or localhost, or list the name in [admin] hosts"
            ),
        );
    }
    if request.method() == Method::GET || request.method() == Method::HEAD {
        return next.run(request).await;
    }
    match &admin.token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .unwrap_or_default();
            if !same_token(given.as_bytes(), token.as_bytes()) {
                return refuse(
                    StatusCode::UNAUTHORIZED,
                    "this needs Authorization: Bearer <token> (the [admin] token)",
                );
            }
        }
        None if !admin.loopback => {
            return refuse(
                StatusCode::FORBIDDEN,
                "changes through an admin API off loopback need a token: set [admin] token",
            );
        }
        None => {}
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes() == b"cross-site")
        || headers
            .get(header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|origin| {
                let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
                !origin_host.eq_ignore_ascii_case(host)
            });
    if cross_site {
        return refuse(
            StatusCode::FORBIDDEN,
            "a page of another site cannot change the balancer; use curl or the API from a script",
        );
    }
    next.run(request).await
}

async fn pools(State(admin): State<Admin>) -> Json<Vec<PoolView>> {
    let now = now();
    Json(
        admin
            .pools
            .load()
            .iter()
            .map(|pool| {
                let state = lock(pool);
                PoolView {
                    id: state.id.clone(),
                    panicking: state.panicking(now),
                    failing_open: state.failing_open(now),
                    backends: (0..state.backends.len())
                        .map(|i| backend_view(&state, i, now))
                        .collect(),
                }
            })
            .collect(),
    )
}

async fn drain(state: State<Admin>, path: Path<(String, String)>) -> Response {
    set_drained(state, path, true)
}

async fn undrain(state: State<Admin>, path: Path<(String, String)>) -> Response {
    set_drained(state, path, false)
}

fn set_drained(
    State(admin): State<Admin>,
    Path((pool, backend)): Path<(String, String)>,
    drained: bool,
) -> Response {
    let pools = admin.pools.load();
    let Some(found) = pools.iter().find(|p| lock(p).id == pool) else {
        let ids: Vec<String> = pools.iter().map(|p| lock(p).id.clone()).collect();
        return (
            StatusCode::NOT_FOUND,
            format!("no pool {pool:?}; pools are {}\n", ids.join(", ")),
        )
            .into_response();
    };
    let mut state = lock(found);
    let Some(index) = state.index_of(&backend) else {
        let names: Vec<&str> = state.backends.iter().map(|b| b.name.as_str()).collect();
        return (
            StatusCode::NOT_FOUND,
            format!(
                "pool {pool:?} has no backend {backend:?}; its backends are {}\n",
                names.join(", ")
            ),
        )
            .into_response();
    };
    state.set_drained(index, drained);
    tracing::info!(%pool, %backend, drained, "drain changed by the admin API");
    Json(backend_view(&state, index, now())).into_response()
}

/// Reads the file again and applies it, as SIGHUP does.
async fn reload(State(admin): State<Admin>) -> Response {
    match admin.balancer.reload_file().await {
        Ok(applied) => Json(applied).into_response(),
        Err(refused) => {
            tracing::warn!(message = %refused.message, errors = ?refused.errors, "reload refused");
            let code = if refused.errors.is_empty() {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            (
                code,
                Json(serde_json::json!({
                    "error": refused.message,
                    "errors": refused.errors,
                })),
            )
                .into_response()
        }
    }
}

async fn metrics(State(admin): State<Admin>) -> Response {
    refresh_up(&admin.pools.load(), &admin.metrics);
    let mut text = String::new();
    if let Err(error) =
        // Prometheus' text format, as the monitor's: what `promtool check metrics` reads.
        prometheus_client::encoding::prometheus_text::encode(
            &mut text,
            &admin.metrics.registry,
        )
    {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("could not encode metrics: {error}\n"),
        )
            .into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        )],
        text,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_api_answers_to_addresses_localhost_and_listed_names() {
        let listed = vec!["lb.internal".to_owned()];
        for (host, allowed) in [
            ("127.0.0.1:9901", true),
            ("[::1]:9901", true),
            ("localhost:9901", true),
            ("LB.internal", true),
            ("evil.example:9901", false),
            ("", false),
        ] {
            assert_eq!(host_allowed(host, &listed), allowed, "{host}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdeX", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!same_token(b"", b"0123456789abcdef"));
        assert!(!same_token(b"0123456789abcde", b"0123456789abcdef"));
    }
}
