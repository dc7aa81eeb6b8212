//! The HTTP face of [`Health`]: an axum `Router` with the probe endpoints.
//!
//! | path | answers |
//! |---|---|
//! | `/livez`, `/alive` | liveness group |
//! | `/readyz`, `/ready` | readiness group and lifecycle (starting, draining) |
//! | `/startupz`, `/startup` | startup hooks and startup group |
//! | `/health` | every check (`application/health+json`) |
//! | `/livez/{check}` (and `readyz`, `startupz`) | one check |
//! | `/heartbeat` | `{"status":"alive","timestamp":…}` |
//! | `/metrics` | Prometheus text |
//!
//! Query parameters: `?verbose` (kube-apiserver-style lines), `?exclude=NAME` (repeatable,
//! or comma-separated), `?fresh=1` (re-run the checks first, coalesced and rate-limited).
//! Handlers only read the snapshot; none runs a check unless `fresh` asks for it.
//!
//! With a details token ([`HealthBuilder::details_token`](crate::HealthBuilder::details_token)),
//! a request without it sees status codes and overall statuses only: per-check paths,
//! `exclude` and `/metrics` answer 401 whatever the name asked for, and no body or error names
//! a check or repeats its output.

mod query;
mod render;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::check::Group;
use crate::health::Health;
use crate::view::{Scope, check_view};
use query::Params;

/// The `application/health+json` body of a verdict, serialized.
pub(crate) fn health_body(
    health: &Health,
    verdict: &crate::view::Verdict<'_>,
    details: bool,
) -> String {
    serde_json::to_string(&render::health_body(health, verdict, details)).unwrap_or_else(|error| {
        format!("{{\"status\":\"fail\",\"output\":\"cannot encode: {error}\"}}")
    })
}

impl Health {
    /// The probe endpoints as a router to merge into an application's own:
    /// `app.merge(health.router())`.
    pub fn router(&self) -> Router {
        self.probes_router().merge(
            Router::new()
                .route("/metrics", get(metrics))
                .with_state(self.clone()),
        )
    }

    /// The probe endpoints without `/metrics`, for an application that serves its own
    /// exposition (include [`Health::metrics_text`] in it).
    pub fn probes_router(&self) -> Router {
        let mut router = Router::new();
        router = probe_route(router, "/health", Scope::All);
        router = router.route("/heartbeat", get(render::heartbeat));
        for group in Group::ALL {
            let seed_name = match group {
                Group::Liveness => "/alive",
                Group::Readiness => "/ready",
                Group::Startup => "/startup",
            };
            let scope = Scope::Group(group);
            router = probe_route(router, &format!("/{}", group.endpoint()), scope);
            router = probe_route(router, seed_name, scope);
            router = router.route(
                &format!("/{}/{{check}}", group.endpoint()),
                get(move |state, path, headers| single(group, state, path, headers)),
            );
        }
        router.with_state(self.clone())
    }
}

/// Mount the handler answering for `scope` at `path`.
fn probe_route(router: Router<Health>, path: &str, scope: Scope) -> Router<Health> {
    router.route(
        path,
        get(move |state, query, headers| probe(scope, state, query, headers)),
    )
}

async fn probe(
    scope: Scope,
    State(health): State<Health>,
    Query(pairs): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let details = render::may_see_details(&health, &headers);
    // `exclude` names checks, and its error lists them: both are details. Refused whatever
    // the names, so that a 400 for an unknown name cannot tell which names exist.
    if !details && pairs.iter().any(|(key, _)| key == "exclude") {
        return render::unauthorized("exclude");
    }
    let params = match Params::parse(&pairs, &health) {
        Ok(params) => params,
        Err(message) => return render::bad_request(&message),
    };
    if params.fresh {
        health.refresh(scope).await;
    }
    let snapshot = health.snapshot();
    let verdict = health.verdict(&snapshot, scope, &params.excluded);
    if params.verbose {
        render::verbose(scope, &verdict, details)
    } else {
        render::json(&health, &verdict, details)
    }
}

/// `/readyz/{check}`: one check's status as plain text, like kube-apiserver's per-check paths.
/// With a details token, only for requests that carry it: the answer is a check's output, and
/// even a 404 would tell which names exist.
async fn single(
    group: Group,
    State(health): State<Health>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !render::may_see_details(&health, &headers) {
        return render::unauthorized("per-check paths");
    }
    let Some(index) = health.position(&name) else {
        return render::not_found(&format!("no check named {name:?}"));
    };
    let check = &health.checks()[index];
    if !check.in_group(group) {
        return render::not_found(&format!("check {name:?} is not part of {}", group.as_str()));
    }
    let snapshot = health.snapshot();
    let view = check_view(
        check,
        &snapshot.checks[index],
        Scope::Group(group),
        tokio::time::Instant::now(),
    );
    let code = if view.status.is_serving() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, render::line(&view, true) + "\n").into_response()
}

/// `/metrics`: every series is labelled with a check's name, so with a details token it asks
/// for the token too (Prometheus sends it with `authorization: {credentials: …}`).
async fn metrics(State(health): State<Health>, headers: HeaderMap) -> Response {
    if !render::may_see_details(&health, &headers) {
        return render::unauthorized("/metrics");
    }
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        health.metrics_text(),
    )
        .into_response()
}
