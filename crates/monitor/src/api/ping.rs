//! healthchecks.io-compatible ping URLs, so an existing cron job needs only a new host:
//! `/ping/<id>`, `/ping/<id>/start`, `/ping/<id>/fail`, `/ping/<id>/log`,
//! `/ping/<id>/<exit-status>`, each by GET, HEAD or POST, with `?rid=` run ids. A POST body
//! (up to the configured limit) is kept as the run's log.

use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Api;
use crate::engine::{PingRecord, Signal};

#[derive(Debug, Deserialize)]
pub(super) struct PingQuery {
    rid: Option<String>,
}

/// Plain-text answers, as healthchecks.io gives them ("OK", "not found").
fn text(code: StatusCode, body: &'static str) -> Response {
    (code, body).into_response()
}

pub(super) async fn success(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Query<PingQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&api, &id, reported(&headers, &body), query, body)
}

/// A plain ping is a success. A body in `application/health+json` (what the vitals
/// library's heartbeat emitter sends) carries the sender's own verdict: `fail` is a failed
/// run, `pass` and `warn` (degraded, still serving) a successful one.
fn reported(headers: &HeaderMap, body: &[u8]) -> Signal {
    let health_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(vitals_core::health_json::CONTENT_TYPE));
    if !health_json {
        return Signal::Success;
    }
    match serde_json::from_slice::<vitals_core::health_json::HealthResponse>(body) {
        Ok(health) if health.status == vitals_core::Status::Fail => Signal::Fail,
        _ => Signal::Success,
    }
}

pub(super) async fn with_action(
    State(api): State<Api>,
    Path((id, action)): Path<(String, String)>,
    query: Query<PingQuery>,
    body: Bytes,
) -> Response {
    let signal = match action.as_str() {
        "start" => Signal::Start,
        "fail" => Signal::Fail,
        "log" => Signal::Log,
        code => match code.parse::<u8>() {
            Ok(code) => Signal::Exit(code),
            Err(_) => return text(StatusCode::BAD_REQUEST, "invalid url format"),
        },
    };
    record(&api, &id, signal, query, body)
}

fn record(
    api: &Api,
    id: &str,
    signal: Signal,
    Query(query): Query<PingQuery>,
    body: Bytes,
) -> Response {
    if let Some(rid) = &query.rid
        && (rid.len() > 64 || !rid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return text(StatusCode::BAD_REQUEST, "invalid rid: use a UUID");
    }
    let ping = PingRecord {
        target: String::new(),
        at: SystemTime::now(),
        signal,
        rid: query.rid,
        body: (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned()),
        duration: None,
        source: None,
    };
    match api.engine.heartbeat(id, ping) {
        Ok(()) => {
            api.metrics.heartbeat("http", "accepted");
            text(StatusCode::OK, "OK")
        }
        Err(_) => {
            api.metrics.heartbeat("http", "unknown_id");
            text(StatusCode::NOT_FOUND, "not found")
        }
    }
}
