//! The admin API, on its own listener: pools and backends as JSON, drain and undrain a
//! backend, `/metrics`. It has no authentication: bind it to loopback or a private network.
//!
//! - `GET /api/v1/pools` — every pool, each backend's state.
//! - `POST /api/v1/pools/{pool}/backends/{backend}/drain` (and `/undrain`) — stop (or
//!   resume) sending it new requests; requests in flight finish.
//! - `GET /metrics` — Prometheus text.
//!
//! Not here: any routing decision; handlers read the pools and flip one flag.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Serialize;

use crate::health::refresh_up;
use crate::metrics::Metrics;
use crate::pool::{BackendState, PoolState};
use crate::{lock, now};

#[derive(Debug, Clone)]
pub struct Admin {
    pub pools: Vec<Arc<Mutex<PoolState>>>,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Serialize)]
struct PoolView {
    id: String,
    panicking: bool,
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
    drained: bool,
    /// Its readiness answered 503.
    not_ready: bool,
    /// Milliseconds of ejection left, when ejected.
    ejected_for_ms: Option<u128>,
    ejections: u32,
    in_flight: u32,
}

fn backend_view(b: &BackendState, now: Instant) -> BackendView {
    BackendView {
        name: b.name.clone(),
        address: b.address.to_string(),
        weight: b.weight,
        state: b.health.as_str(),
        in_rotation: b.in_rotation(now),
        drained: b.drained,
        not_ready: b.not_ready,
        ejected_for_ms: b
            .ejected_until
            .filter(|until| *until > now)
            .map(|until| (until - now).as_millis()),
        ejections: b.ejections,
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
        .route("/metrics", get(metrics))
        .with_state(admin)
}

async fn pools(State(admin): State<Admin>) -> Json<Vec<PoolView>> {
    let now = now();
    Json(
        admin
            .pools
            .iter()
            .map(|pool| {
                let state = lock(pool);
                PoolView {
                    id: state.id.clone(),
                    panicking: state.panicking(now),
                    backends: state
                        .backends
                        .iter()
                        .map(|b| backend_view(b, now))
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
    let Some(found) = admin.pools.iter().find(|p| lock(p).id == pool) else {
        let ids: Vec<String> = admin.pools.iter().map(|p| lock(p).id.clone()).collect();
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
    Json(backend_view(&state.backends[index], now())).into_response()
}

async fn metrics(State(admin): State<Admin>) -> Response {
    refresh_up(&admin.pools, &admin.metrics);
    let mut text = String::new();
    if let Err(error) =
        prometheus_client::encoding::text::encode(&mut text, &admin.metrics.registry)
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
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
