//! `/api/v1/alerts`, `/api/v1/outbox` and `/api/v1/silences`: what the notifier created,
//! sent and muted, what is still waiting for a channel, and silences to create and end.
//!
//! Handlers read the notifier's store and hand silences to the notifier; they decide
//! nothing. What this is not: the notification policy (`crate::notify`).

use std::time::{Duration, SystemTime};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Access, error};
use crate::notify::{GroupState, Notifier};
use crate::store::{OutboxRow, Silence, Store, StoreError};

/// The longest silence: longer ones are forgotten maintenance, not silences.
const MAX_SILENCE: Duration = Duration::from_secs(30 * 24 * 3600);
const MAX_LIMIT: usize = 1000;

#[derive(Debug, Clone)]
struct Alerts {
    notifier: Notifier,
    access: Access,
}

/// The routes, to merge with [`super::router`]'s.
pub fn router(notifier: Notifier, access: Access) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/outbox", get(outbox))
        .route("/api/v1/silences", get(silences).post(create))
        .route("/api/v1/silences/{id}", delete(expire))
        .with_state(Alerts { notifier, access })
}

#[derive(Debug, Deserialize)]
struct Listing {
    limit: Option<usize>,
    /// `/api/v1/outbox?pending=true`: only rows not delivered yet.
    #[serde(default)]
    pending: bool,
}

fn time(t: SystemTime) -> String {
    crate::notify::rfc3339(t)
}

async fn read<T: Send + 'static>(
    api: &Alerts,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, Response> {
    let store = api.notifier.store();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        Err(e) => Err(error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
    }
}

async fn alerts(
    State(api): State<Alerts>,
    headers: HeaderMap,
    Query(q): Query<Listing>,
) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    let limit = q.limit.unwrap_or(100).min(MAX_LIMIT);
    let groups = api.notifier.groups().await;
    match read(&api, move |s| s.alerts(limit)).await {
        Ok(rows) => Json(json!({
            "groups": groups.iter().map(group).collect::<Vec<_>>(),
            "alerts": rows.into_iter().map(|a| json!({
                "key": a.key,
                "target": a.target,
                "kind": a.kind,
                "at": time(a.at),
                "muted_by": a.muted_by,
                "group_key": a.group_key,
                "alert": serde_json::from_str::<Value>(&a.payload).unwrap_or(Value::Null),
            })).collect::<Vec<_>>()
        }))
        .into_response(),
        Err(response) => response,
    }
}

/// An open alert group: its labels, where its notifications stand, and its members.
fn group(g: &GroupState) -> Value {
    json!({
        "key": g.key,
        "rule": g.rule,
        "labels": g.labels,
        "channels": g.channels,
        "opened": time(g.opened),
        "sequence": g.sequence,
        "waiting": !g.flushed,
        "changed": g.changed,
        "firing": g.firing.values().map(|a| json!({
            "target": a.target, "kind": a.kind, "at": time(a.at), "key": a.key,
            "dependents": a.dependents,
        })).collect::<Vec<_>>(),
        "resolved": g.resolved.values().map(|a| json!({
            "target": a.target, "at": time(a.at), "key": a.key, "root": a.root,
        })).collect::<Vec<_>>(),
    })
}

fn row(r: OutboxRow) -> Value {
    json!({
        "id": r.id,
        "key": r.key,
        "alert_key": r.alert_key,
        "channel": r.channel,
        "created": time(r.created),
        "due": time(r.due),
        "attempts": r.attempts,
        "last_error": r.last_error,
        "delivered": r.delivered.map(time),
        "cancelled": r.cancelled,
        "dead": r.dead.map(time),
    })
}

/// The outbox holds what receivers get and why they refused it: it needs a token whenever
/// the monitor has one, the read token or the API token, even where other reads are public
/// (issue 11, item 10). Its errors are redacted anyway; a monitor with no token at all shows
/// it like everything else.
fn may_read_outbox(access: &Access, headers: &HeaderMap) -> bool {
    (access.api_token.is_none() && access.read_token.is_none())
        || super::bearer(headers).is_some_and(|given| access.accepts_for_read(given))
}

async fn outbox(
    State(api): State<Alerts>,
    headers: HeaderMap,
    Query(q): Query<Listing>,
) -> Response {
    if !may_read_outbox(&api.access, &headers) {
        return error(
            StatusCode::UNAUTHORIZED,
            "the outbox needs Authorization: Bearer <api_token> (or <read_token>)",
        );
    }
    let limit = q.limit.unwrap_or(100).min(MAX_LIMIT);
    let pending = q.pending;
    match read(&api, move |s| s.outbox(limit, pending)).await {
        Ok(rows) => {
            Json(json!({ "outbox": rows.into_iter().map(row).collect::<Vec<_>>() })).into_response()
        }
        Err(response) => response,
    }
}

fn silence(s: &Silence) -> Value {
    json!({
        "id": s.id,
        "targets": s.targets,
        "groups": s.groups,
        "created": time(s.created),
        "until": time(s.until),
        "comment": s.comment,
    })
}

async fn silences(State(api): State<Alerts>, headers: HeaderMap) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    match read(&api, |s| s.silences(SystemTime::now())).await {
        Ok(rows) => Json(json!({ "silences": rows.iter().map(silence).collect::<Vec<_>>() }))
            .into_response(),
        Err(response) => response,
    }
}

/// `POST /api/v1/silences`: `{"targets": […], "groups": […], "duration": "2h", "comment": …}`
/// (or `"until": "<RFC 3339>"` instead of `duration`). No targets and no groups: everything.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    duration: Option<String>,
    until: Option<String>,
    #[serde(default)]
    comment: String,
}

fn until(body: &NewSilence, now: SystemTime) -> Result<SystemTime, String> {
    let until = match (&body.duration, &body.until) {
        (Some(d), None) => {
            let d = humantime::parse_duration(d)
                .map_err(|e| format!("duration {d:?}: {e}; write it like \"2h\" or \"30m\""))?;
            now.checked_add(d)
                .ok_or_else(|| format!("duration {d:?} is too long"))?
        }
        (None, Some(u)) => chrono::DateTime::parse_from_rfc3339(u)
            .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)))
            .map_err(|e| format!("until {u:?}: {e}; write it like \"2026-12-24T22:00:00Z\""))?,
        _ => return Err("give either duration (\"2h\") or until (an RFC 3339 time)".into()),
    };
    if until <= now {
        return Err("the silence would end before it starts: until must be in the future".into());
    }
    if until.duration_since(now).unwrap_or_default() > MAX_SILENCE {
        return Err(
            "a silence lasts at most 30 days; use a [[maintenance]] window for longer".into(),
        );
    }
    Ok(until)
}

async fn create(
    State(api): State<Alerts>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(denied) = api.access.may_change(&headers) {
        return denied.into_response();
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let now = SystemTime::now();
    let until = match until(&body, now) {
        Ok(until) => until,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let new = Silence {
        id: 0,
        targets: body.targets,
        groups: body.groups,
        created: now,
        until,
        comment: body.comment,
    };
    match api.notifier.add_silence(new).await {
        Ok(saved) => (StatusCode::CREATED, Json(silence(&saved))).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn expire(State(api): State<Alerts>, headers: HeaderMap, Path(id): Path<i64>) -> Response {
    if let Err(denied) = api.access.may_change(&headers) {
        return denied.into_response();
    }
    match api.notifier.expire_silence(id).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no silence {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
