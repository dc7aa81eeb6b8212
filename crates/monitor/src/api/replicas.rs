//! `GET /api/v1/replicas` and the fleet's gauges in `/metrics` (issue 12): every replica
//! sharing the PostgreSQL store, whether it is live, where its API answers, and how many
//! shards it holds; answered by any replica from the store, so every one shows the whole
//! fleet.
//!
//! What it is not: the lease loop (`replicas.rs`), or a way to move shards by hand.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use vitals_engine::shards::SHARDS;

use super::{Api, error};
use crate::replicas::Membership;
use crate::store::{PgStore, StoreError};

/// What the replicas' views read: the shared store and this replica's membership.
#[derive(Debug, Clone)]
pub struct Fleet {
    pub store: PgStore,
    pub membership: Arc<Membership>,
    /// Forwards pings to the replica holding their target (`ping.rs`).
    pub http: reqwest::Client,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
}

/// The store's view of the fleet: replicas, shards held by each live one, and the store's
/// time.
async fn read(
    fleet: &Fleet,
) -> Result<(i64, Vec<crate::store::Replica>, HashMap<String, i64>), StoreError> {
    let now = fleet.store.now_ms().await?;
    let replicas = fleet.store.replicas().await?;
    let mut held: HashMap<String, i64> = HashMap::new();
    for lease in fleet.store.leases().await? {
        if lease.is_live(now)
            && let Some(owner) = lease.owner
        {
            *held.entry(owner).or_default() += 1;
        }
    }
    Ok((now, replicas, held))
}

pub(super) async fn list(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    let Some(fleet) = &api.fleet else {
        return error(
            StatusCode::NOT_FOUND,
            "this monitor runs alone on SQLite; replicas share server.store = \"postgres://…\" (docs/HA.md)",
        );
    };
    match read(fleet).await {
        Ok((now, replicas, held)) => {
            let listed: Vec<_> = replicas
                .iter()
                .map(|r| {
                    json!({
                        "id": r.id,
                        "self": r.id == fleet.membership.me,
                        "live": r.expires_ms > now,
                        "api": r.api,
                        "started_ms": r.started_ms,
                        "seen_ms_ago": now - r.seen_ms,
                        "shards": held.get(&r.id).copied().unwrap_or(0),
                    })
                })
                .collect();
            let unowned = i64::from(SHARDS) - held.values().sum::<i64>();
            (
                StatusCode::OK,
                Json(json!({
                    "replica": fleet.membership.me,
                    "lease_ms": fleet.membership.lease.as_millis() as u64,
                    "shards": SHARDS,
                    "unowned_shards": unowned,
                    "targets_here": api.engine.views().len(),
                    "replicas": listed,
                })),
            )
                .into_response()
        }
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("could not read the fleet from the store: {e}"),
        ),
    }
}

/// Appends the fleet's gauges to `text`: shards held by this replica, live replicas and
/// shards held by each, and shards no live replica holds. Nothing when the store cannot be
/// read (the `store` check says why).
pub(super) async fn encode(fleet: &Fleet, text: &mut String) {
    let mut registry = Registry::with_prefix("vitals");
    let here = Gauge::<i64>::default();
    here.set(fleet.membership.held().len() as i64);
    registry.register(
        "shards_held",
        "Shards whose targets this replica checks (their leases renewed)",
        here,
    );
    if let Ok((now, replicas, held)) = read(fleet).await {
        let live = Gauge::<i64>::default();
        live.set(replicas.iter().filter(|r| r.expires_ms > now).count() as i64);
        registry.register(
            "replicas_live",
            "Replicas whose presence in the shared store is unexpired",
            live,
        );
        let by = Family::<ReplicaLabels, Gauge<i64>>::default();
        for (replica, n) in &held {
            by.get_or_create(&ReplicaLabels {
                replica: replica.clone(),
            })
            .set(*n);
        }
        registry.register(
            "fleet_shards_held",
            "Shards held by each replica, as the shared store says",
            by,
        );
        let unowned = Gauge::<i64>::default();
        unowned.set(i64::from(SHARDS) - held.values().sum::<i64>());
        registry.register(
            "fleet_shards_unowned",
            "Shards no live replica holds: their targets are not checked until one takes them",
            unowned,
        );
    }
    let _ = prometheus_text::encode(text, &registry);
}
