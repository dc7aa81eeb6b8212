//! Response bodies: `application/health+json`, kube-style verbose text, and errors.

use std::collections::BTreeMap;
use std::time::SystemTime;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vitals_core::Status;
use vitals_core::health_json::{self, Component};

use crate::check::Group;
use crate::health::Health;
use crate::view::{CheckView, Scope, Verdict};

fn code(status: Status) -> StatusCode {
    StatusCode::from_u16(status.http_code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

pub(super) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

/// Whether this request may see check names, outputs and values: always, unless a details
/// token is configured, in which case it must come as `Authorization: Bearer <token>`.
pub(super) fn may_see_details(health: &Health, headers: &HeaderMap) -> bool {
    let Some(token) = &health.options().details_token else {
        return true;
    };
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.trim().as_bytes(), token.as_bytes()))
}

/// Compare without an early exit, so response time does not reveal how much of a guessed
/// token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `application/health+json` body as data.
pub(crate) fn health_body(
    health: &Health,
    verdict: &Verdict<'_>,
    details: bool,
) -> health_json::HealthResponse {
    let options = health.options();
    let mut body = health_json::HealthResponse {
        status: verdict.status,
        version: options.version.clone(),
        release_id: None,
        service_id: options.service_id.clone(),
        description: None,
        output: None,
        notes: Vec::new(),
        checks: BTreeMap::new(),
    };
    if details {
        body.output = verdict.gate.clone();
        for view in verdict.checks.iter().filter(|view| !view.excluded) {
            body.checks.insert(
                view.name.to_string(),
                vec![Component {
                    component_id: None,
                    component_type: Some(view.component_type.to_string()),
                    observed_value: view.observed.map(|observed| observed.value),
                    observed_unit: view.observed.map(|observed| observed.unit.clone()),
                    status: view.status,
                    affected_endpoints: None,
                    time: view.time.map(rfc3339),
                    output: view.output.clone(),
                }],
            );
        }
    }
    body
}

/// The `application/health+json` response.
pub(super) fn json(health: &Health, verdict: &Verdict<'_>, details: bool) -> Response {
    let body = health_body(health, verdict, details);
    let mut response = (code(verdict.status), Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(health_json::CONTENT_TYPE),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// One kube-style line for a check: `[+]database ok`, `[-]database failed: connection refused`,
/// `[-]cache failed (non-critical): connection refused`.
pub(super) fn line(view: &CheckView<'_>, details: bool) -> String {
    let mark = if view.excluded || view.status.is_serving() {
        '+'
    } else {
        '-'
    };
    let reason = |word: &str| match (&view.output, details) {
        (Some(output), true) => format!("{word}: {output}"),
        (_, false) if view.status != Status::Pass => format!("{word}: reason withheld"),
        _ => word.to_string(),
    };
    // A non-critical check that fails only degrades the answer: say so, or `[-]cache failed`
    // above `readyz check passed` reads as a contradiction.
    let failed = if view.critical {
        "failed"
    } else {
        "failed (non-critical)"
    };
    let said = match (view.excluded, view.status) {
        (true, _) => "excluded: ok".to_string(),
        (false, Status::Pass) => "ok".to_string(),
        (false, Status::Warn) => reason("degraded"),
        (false, Status::Fail) => reason(failed),
    };
    format!("[{mark}]{} {said}", view.name)
}

/// The `?verbose` text: a line per check, then the overall line.
pub(super) fn verbose(scope: Scope, verdict: &Verdict<'_>, details: bool) -> Response {
    let mut text = String::new();
    if details {
        if let Some(gate) = &verdict.gate {
            text.push_str(&format!("[-]lifecycle failed: {gate}\n"));
        }
        for view in &verdict.checks {
            text.push_str(&line(view, true));
            text.push('\n');
        }
    }
    let name = match scope {
        Scope::Group(Group::Liveness) => "livez",
        Scope::Group(Group::Readiness) => "readyz",
        Scope::Group(Group::Startup) => "startupz",
        Scope::All => "health",
    };
    let result = if verdict.status.is_serving() {
        "passed"
    } else {
        "failed"
    };
    text.push_str(&format!("{name} check {result}\n"));
    let mut response = (code(verdict.status), text).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `/heartbeat`: the seed's `{"status": "alive", "timestamp": …}`.
pub(super) async fn heartbeat() -> Response {
    Json(serde_json::json!({
        "status": "alive",
        "timestamp": rfc3339(SystemTime::now()),
    }))
    .into_response()
}

fn error(code: StatusCode, message: &str) -> Response {
    (code, Json(serde_json::json!({ "error": message }))).into_response()
}

pub(super) fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// 401 for a request that needs the details token and lacks it. `what` names the feature,
/// never a check: the answer must be the same whichever check was asked for.
pub(super) fn unauthorized(what: &str) -> Response {
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        &format!("{what} needs the details token: send Authorization: Bearer <token>"),
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

pub(super) fn not_found(message: &str) -> Response {
    error(StatusCode::NOT_FOUND, message)
}
