//! `/api/v1/targets/{id}/actions`: a target's recovery log (every action with its output and
//! result, escalations, resets) and its restart budget, including "down — needs a person";
//! `POST …/actions/reset` lets a person give a spent budget back (API token).
//!
//! Not here: running actions or deciding when (`crate::recovery`).

use std::time::SystemTime;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Api, error};
use crate::recovery::BudgetView;
use crate::store::ActionRecord;

/// Rows of the log returned, newest first.
const LOG_ROWS: usize = 50;

fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_millis(time).to_string()
}

fn budget_json(view: &BudgetView) -> Value {
    json!({
        "action": view.action,
        "state": view.state.as_str(),
        "exhausted": view.exhausted,
        "attempts": view.attempts,
        "attempts_in_window": view.attempts_in_window,
        "max_attempts": view.max_attempts,
        "window_seconds": view.window.as_secs_f64(),
        "exhausted_at": view.exhausted_at.map(rfc3339),
        "next_attempt": view.next_attempt.map(rfc3339),
        "running": view.running,
        "held": view.held,
    })
}

fn action_json(row: &ActionRecord) -> Value {
    json!({
        "id": row.id,
        "at": rfc3339(row.at),
        "kind": row.kind.as_str(),
        "trigger": row.trigger,
        "action": row.action,
        "attempt": row.attempt,
        "duration_ms": row.duration.map(|d| d.as_secs_f64() * 1000.0),
        "exit_code": row.exit_code,
        "http_status": row.http_status,
        "output": row.output,
        "result": row.result,
    })
}

/// The budget, then the log. A target without a recovery action has `"budget": null` (its
/// log may still hold rows from an earlier configuration).
pub(super) async fn list(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    let Some(target) = api.engine.view(&id) else {
        return error(StatusCode::NOT_FOUND, format!("no target with id {id:?}"));
    };
    let budget = api.recovery.as_ref().and_then(|r| r.status(&id));
    let actions = match api.store.clone() {
        None => Vec::new(),
        Some(store) => {
            let read = tokio::task::spawn_blocking(move || store.actions(&id, LOG_ROWS)).await;
            match read {
                Ok(Ok(rows)) => rows.iter().map(action_json).collect(),
                Ok(Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
                Err(join) => {
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("reading the recovery log failed: {join}"),
                    );
                }
            }
        }
    };
    let verdict = budget
        .as_ref()
        .map_or_else(|| target.state.as_str().to_owned(), BudgetView::verdict);
    Json(json!({
        "target": target.id,
        "verdict": verdict,
        "needs_person": budget.as_ref().is_some_and(|b| b.exhausted),
        "budget": budget.as_ref().map(budget_json),
        "actions": actions,
    }))
    .into_response()
}

/// A person gives a spent budget back: attempts and escalation are forgotten, and a target
/// that still fails is tried again at once.
pub(super) async fn reset(
    State(api): State<Api>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(denied) = api.access.may_change(&headers) {
        return denied.into_response();
    }
    if api.engine.view(&id).is_none() {
        return error(StatusCode::NOT_FOUND, format!("no target with id {id:?}"));
    }
    let reset = match &api.recovery {
        Some(recovery) => recovery.reset(&id, "api").await,
        None => None,
    };
    match reset {
        Some(view) => Json(budget_json(&view)).into_response(),
        None => error(
            StatusCode::CONFLICT,
            format!(
                "target {id:?} has no recovery action, so no budget to reset; add a [target.recover] table to its configuration"
            ),
        ),
    }
}
