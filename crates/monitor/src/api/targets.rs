//! `/api/v1/targets`: list targets with state and since when, a page at a time (`pages`); one
//! target with its recent results, transitions and uptime; pause, resume and maintenance.

use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use vitals_core::Outcome;

use super::{Api, error, pages};
use crate::engine::TargetView;

/// The longest maintenance the API starts (the fleet's bound): longer is a 400 naming it (a
/// far-future end made every later listing panic, and a huge one overflowed, issue 11 item
/// 6); a target out of service for longer is better paused.
use crate::engine::MAX_MAINTENANCE;

/// RFC 3339 with milliseconds. humantime panics past the year 9999, which a maintenance end
/// stored by an earlier version could be: such a time is written as the year 9999's end.
fn rfc3339(time: SystemTime) -> String {
    const YEAR_9999_END: Duration = Duration::from_secs(253_402_300_799);
    let time = time.min(SystemTime::UNIX_EPOCH + YEAR_9999_END);
    humantime::format_rfc3339_millis(time).to_string()
}

fn outcome_json(outcome: &Outcome) -> Value {
    json!({
        "kind": outcome.kind.as_str(),
        "status": outcome.status().as_str(),
        "at": rfc3339(outcome.at),
        "duration_ms": outcome.duration.as_secs_f64() * 1000.0,
        "output": outcome.output,
        "observed": outcome.observed.as_ref().map(|o| json!({"value": o.value, "unit": o.unit})),
    })
}

fn view_json(api: &Api, view: &TargetView) -> Value {
    // Automatic recovery gave up on it: say so where people look first.
    let needs_person = api
        .recovery
        .as_ref()
        .and_then(|recovery| recovery.status(&view.id))
        .is_some_and(|budget| budget.needs_person());
    json!({
        "id": view.id,
        "name": view.name,
        "parent": view.parent,
        "blocked_by": view.blocked_by,
        "mode": if view.active { "active" } else { "passive" },
        "state": view.state.as_str(),
        "serving": view.state.is_serving(),
        "since": view.since.map(rfc3339),
        "flapping": view.flapping,
        "paused": view.paused,
        "maintenance_until": view.maintenance_until.map(rfc3339),
        "last": view.last.as_ref().map(outcome_json),
        "needs_person": needs_person,
    })
}

/// `?limit=&cursor=`, both optional; see [`pages`].
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

/// A page of targets by id (see [`pages`]): `next_cursor` in the body and a `Link` header
/// with `rel="next"` lead to the next page; the last page has neither.
pub(super) async fn list(
    State(api): State<Api>,
    query: Result<Query<ListQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    let request = match &query {
        Ok(Query(q)) => pages::request(q.limit.as_deref(), q.cursor.as_deref()),
        Err(rejection) => Err(rejection.body_text()),
    };
    let request = match request {
        Ok(request) => request,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let specs = api.engine.specs();
    let order = pages::order(&api.order, &specs);
    let (rows, next) = pages::page(
        &api.engine,
        &specs,
        &order,
        request.after.as_ref(),
        request.limit,
    );
    let targets: Vec<Value> = rows.iter().map(|view| view_json(&api, view)).collect();
    let body = Json(json!({
        "isolated": api.engine.is_isolated(),
        "targets": targets,
        "next_cursor": next,
    }));
    match next {
        Some(cursor) => {
            let link = format!(
                "</api/v1/targets?limit={}&cursor={cursor}>; rel=\"next\"",
                request.limit
            );
            ([(header::LINK, link)], body).into_response()
        }
        None => body.into_response(),
    }
}

/// One of a service target's own checks: the same as `/api/v1/targets/<id>%2F<check>`.
pub(super) async fn part(
    State(api): State<Api>,
    Path((id, check)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    one(State(api), Path(format!("{id}/{check}")), headers).await
}

pub(super) async fn one(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    let Some(view) = api.engine.view(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no target with id {id:?}"));
    };
    let mut body = view_json(&api, &view);
    // The ping id is the secret that lets one send the target's pings: the API token only.
    if let (Some(ping_id), Some(object)) = (api.pings.ids.load().get(&id), body.as_object_mut())
        && api.access.may_change(&headers).is_ok()
    {
        object.insert("ping_id".into(), json!(ping_id));
    }
    if let Some(store) = api.store.clone() {
        let history = tokio::task::spawn_blocking(move || history(&store, &id)).await;
        match history {
            Ok(Ok(history)) => {
                if let (Some(body), Value::Object(history)) = (body.as_object_mut(), history) {
                    body.extend(history);
                }
            }
            Ok(Err(message)) => return error(StatusCode::INTERNAL_SERVER_ERROR, message),
            Err(join) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("history lookup failed: {join}"),
                );
            }
        }
    }
    Json(body).into_response()
}

/// Recent results, transitions and uptime from the store.
fn history(store: &crate::store::Store, id: &str) -> Result<Value, String> {
    let fail = |error: crate::store::StoreError| format!("reading history of {id:?}: {error}");
    let results = store.recent_results(id, 50).map_err(fail)?;
    let transitions = store.transitions(id, 50).map_err(fail)?;
    let uptime = store.uptime(id, SystemTime::now()).map_err(fail)?;
    Ok(json!({
        "results": results.iter().map(|r| json!({
            "at": rfc3339(r.at),
            "kind": r.kind.as_str(),
            "duration_ms": r.duration.as_secs_f64() * 1000.0,
            "output": r.output,
        })).collect::<Vec<_>>(),
        "transitions": transitions.iter().map(|t| json!({
            "at": rfc3339(t.at),
            "from": t.from.as_str(),
            "to": t.to.as_str(),
            "reason": t.reason,
            "cause": t.cause_output,
        })).collect::<Vec<_>>(),
        "uptime": {"24h": uptime.day, "7d": uptime.week, "30d": uptime.month, "365d": uptime.year},
    }))
}

pub(super) async fn pause(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_paused(api, id, headers, true)
}

pub(super) async fn resume(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    set_paused(api, id, headers, false)
}

fn set_paused(api: Api, id: String, headers: HeaderMap, paused: bool) -> Response {
    if let Err(denied) = api.access.may_change(&headers) {
        return denied.into_response();
    }
    match api.engine.set_paused(&id, paused) {
        Some(view) => Json(view_json(&api, &view)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no target with id {id:?}")),
    }
}

/// `{"for": "2h"}` starts maintenance for a while; `{"for": null}` or `{}` ends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MaintenanceBody {
    #[serde(rename = "for", default)]
    duration: Option<String>,
}

pub(super) async fn maintenance(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<MaintenanceBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(denied) = api.access.may_change(&headers) {
        return denied.into_response();
    }
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, rejection.body_text()),
    };
    let until = match body.duration.as_deref().map(humantime::parse_duration) {
        None => None,
        Some(Ok(duration)) if duration > MAX_MAINTENANCE => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "field \"for\": {} is longer than the limit, 366 days; pause the target instead (POST …/pause)",
                    body.duration.as_deref().unwrap_or_default()
                ),
            );
        }
        Some(Ok(duration)) if duration > Duration::ZERO => {
            match SystemTime::now().checked_add(duration) {
                Some(until) => Some(until),
                None => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "field \"for\": ends past the clock's range; at most 366 days",
                    );
                }
            }
        }
        Some(Ok(_)) => {
            return error(
                StatusCode::BAD_REQUEST,
                "field \"for\": must be longer than zero",
            );
        }
        Some(Err(problem)) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("field \"for\": {problem}; write a duration such as \"2h\" or \"30m\""),
            );
        }
    };
    match api.engine.set_maintenance(&id, until) {
        Some(view) => Json(view_json(&api, &view)).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("no target with id {id:?}")),
    }
}
