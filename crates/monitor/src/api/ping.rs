//! healthchecks.io-compatible ping URLs, so an existing cron job needs only a new host:
//! `/ping/<id>`, `/ping/<id>/start`, `/ping/<id>/fail`, `/ping/<id>/log`,
//! `/ping/<id>/<exit-status>`, each by GET, HEAD or POST, with `?rid=` run ids. A POST body
//! (up to `ping_body_limit`; 0 keeps none) is kept as the run's log.
//!
//! Before the engine hears of a ping, `ping_gate` checks its key (`?key=` or `X-Ping-Key`),
//! refuses HTTP for UDP-only targets and applies the per-id rate: 401, 403 and 429 with the
//! reason, each counted in `/metrics` (`vitals_heartbeats_total{transport="http",result=…}`).

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::Api;
use super::ping_gate::Refusal;
use crate::engine::{PingRecord, Signal};

/// The header that may carry a target's `ping_key` instead of `?key=`.
pub(crate) const KEY_HEADER: &str = "x-ping-key";

/// How much of a `health+json` body is read to learn the sender's verdict when
/// `ping_body_limit` is 0 (the body is judged, not kept).
const JUDGED_BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct PingQuery {
    rid: Option<String>,
    key: Option<String>,
}

/// Plain-text answers, as healthchecks.io gives them ("OK", "not found").
fn text(code: StatusCode, body: impl Into<String>) -> Response {
    (code, body.into()).into_response()
}

pub(super) async fn success(
    State(api): State<Api>,
    Path(id): Path<String>,
    query: Query<PingQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = admit(&api, &id, &query, &headers) {
        return refused.into_response();
    }
    let health_json = is_health_json(&headers);
    let body = match read_body(&api, body, health_json).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let signal = if health_json {
        reported(&body)
    } else {
        Signal::Success
    };
    let kept = keep(&api, body.clone());
    match record(&api, &id, signal, query.0.clone(), kept) {
        Recorded::Elsewhere => forward(&api, &id, None, &query, &headers, body).await,
        Recorded::Answer(response) => response,
    }
}

fn is_health_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with(vitals_core::health_json::CONTENT_TYPE))
}

/// A plain ping is a success. A body in `application/health+json` (what the vitals
/// library's heartbeat emitter sends) carries the sender's own verdict: `fail` is a failed
/// run, `pass` and `warn` (degraded, still serving) a successful one.
fn reported(body: &[u8]) -> Signal {
    match serde_json::from_slice::<vitals_core::health_json::HealthResponse>(body) {
        Ok(health) if health.status == vitals_core::Status::Fail => Signal::Fail,
        _ => Signal::Success,
    }
}

pub(super) async fn with_action(
    State(api): State<Api>,
    Path((id, action)): Path<(String, String)>,
    query: Query<PingQuery>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let signal = match action.as_str() {
        "start" => Signal::Start,
        "fail" => Signal::Fail,
        "log" => Signal::Log,
        "exited" => Signal::Exited,
        code => match code.parse::<u8>() {
            Ok(code) => Signal::Exit(code),
            Err(_) => return text(StatusCode::BAD_REQUEST, "invalid url format"),
        },
    };
    if let Err(refused) = admit(&api, &id, &query, &headers) {
        return refused.into_response();
    }
    let body = match read_body(&api, body, false).await {
        Ok(body) => body,
        Err(refused) => return refused.into_response(),
    };
    let kept = keep(&api, body.clone());
    match record(&api, &id, signal, query.0.clone(), kept) {
        Recorded::Elsewhere => forward(&api, &id, Some(&action), &query, &headers, body).await,
        Recorded::Answer(response) => response,
    }
}

/// What became of a ping here: answered, or for a target another replica holds.
enum Recorded {
    Answer(Response),
    Elsewhere,
}

/// Marks a ping one replica forwarded to another, which answers it itself (never forwards
/// it again, so a shard moving in between cannot make a loop).
const FORWARDED: &str = "x-vitals-forwarded";

/// Sends a ping for a target another replica holds to that replica, as it came (path,
/// query, body, content type), and answers with its answer. Pings are small and forwarded
/// at once, so a sender behind a load balancer is told the truth: 200 once the holder took
/// it, 502 when it could not be reached (the sender retries as it would any failed ping).
async fn forward(
    api: &Api,
    id: &str,
    action: Option<&str>,
    Query(query): &Query<PingQuery>,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let Some(fleet) = &api.fleet else {
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let target = api.pings.targets.load().get(id).cloned();
    let holder = target.and_then(|t| fleet.membership.holder_api(crate::replicas::shard_of(&t)));
    let Some(holder) = holder.filter(|_| !headers.contains_key(FORWARDED)) else {
        api.metrics.heartbeat("http", "unknown_id");
        return text(StatusCode::NOT_FOUND, "not found");
    };
    let url = match action {
        Some(action) => format!("{holder}/ping/{id}/{action}"),
        None => format!("{holder}/ping/{id}"),
    };
    let Ok(mut url) = reqwest::Url::parse(&url) else {
        return text(
            StatusCode::BAD_GATEWAY,
            "this target's replica announced a bad address",
        );
    };
    for (name, value) in [("rid", &query.rid), ("key", &query.key)] {
        if let Some(value) = value {
            url.query_pairs_mut().append_pair(name, value);
        }
    }
    let mut request = fleet.http.post(url).header(FORWARDED, "1").body(body);
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, kind.clone());
    }
    if let Some(key) = headers.get(KEY_HEADER) {
        request = request.header(KEY_HEADER, key.clone());
    }
    match request.send().await {
        Ok(answer) => {
            api.metrics.heartbeat("http", "forwarded");
            let code =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            text(code, answer.text().await.unwrap_or_default())
        }
        Err(e) => {
            api.metrics.heartbeat("http", "forward_failed");
            text(
                StatusCode::BAD_GATEWAY,
                format!(
                    "this target's replica could not be reached ({}); retry",
                    vitals_probes::error_root(&e)
                ),
            )
        }
    }
}

/// Why a ping was not taken, as its answer: plain text with the reason, as healthchecks.io
/// answers, and `Retry-After` on a 429.
#[derive(Debug)]
enum Refused {
    Key,
    UdpOnly,
    Rate { retry_after: u64, rate: u32 },
    TooLarge { limit: usize },
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Key => text(
                StatusCode::UNAUTHORIZED,
                "this ping needs its ping_key: add ?key=<ping_key> or an X-Ping-Key header",
            ),
            Refused::UdpOnly => text(
                StatusCode::FORBIDDEN,
                "this target takes authenticated UDP heartbeats only; give it a ping_key to accept HTTP pings",
            ),
            Refused::Rate { retry_after, rate } => {
                let mut response = text(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "too many pings for this id: at most server.ping_rate ({rate} a minute); retry in {retry_after}s"
                    ),
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response
            }
            Refused::TooLarge { limit } => text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("ping body over server.ping_body_limit ({limit} bytes)"),
            ),
        }
    }
}

/// The gate's verdict on this ping, counted in `/metrics` when it is refused.
fn admit(
    api: &Api,
    id: &str,
    Query(query): &Query<PingQuery>,
    headers: &HeaderMap,
) -> Result<(), Refused> {
    let key = query.key.as_deref().or_else(|| {
        headers
            .get(KEY_HEADER)
            .and_then(|value| value.to_str().ok())
    });
    let now = tokio::time::Instant::now().into_std();
    let refused = match api.pings.gate.load().admit(id, key, now) {
        Ok(()) => return Ok(()),
        Err(Refusal::Key) => Refused::Key,
        Err(Refusal::UdpOnly) => Refused::UdpOnly,
        Err(Refusal::Rate(wait)) => Refused::Rate {
            retry_after: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            rate: api.ping_rate,
        },
    };
    let result = match refused {
        Refused::Key => "bad_key",
        Refused::UdpOnly => "udp_only",
        Refused::Rate { .. } => "rate_limited",
        Refused::TooLarge { .. } => "too_large",
    };
    api.metrics.heartbeat("http", result);
    Err(refused)
}

/// The body, read up to `ping_body_limit`: a longer one is a 413. With a limit of 0 nothing
/// is kept, so nothing is read, except a `health+json` body, whose verdict counts (up to
/// [`JUDGED_BODY_LIMIT`]).
async fn read_body(api: &Api, body: Body, judged: bool) -> Result<Bytes, Refused> {
    let limit = match api.ping_body_limit {
        0 if judged => JUDGED_BODY_LIMIT,
        0 => return Ok(Bytes::new()),
        limit => limit,
    };
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        api.metrics.heartbeat("http", "too_large");
        Refused::TooLarge { limit }
    })
}

/// What is kept of a body: nothing when the limit is 0.
fn keep(api: &Api, body: Bytes) -> Bytes {
    if api.ping_body_limit == 0 {
        Bytes::new()
    } else {
        body
    }
}

fn record(api: &Api, id: &str, signal: Signal, query: PingQuery, body: Bytes) -> Recorded {
    if let Some(rid) = &query.rid
        && (rid.len() > 64 || !rid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
    {
        return Recorded::Answer(text(StatusCode::BAD_REQUEST, "invalid rid: use a UUID"));
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
            Recorded::Answer(text(StatusCode::OK, "OK"))
        }
        Err(_) if api.fleet.is_some() => Recorded::Elsewhere,
        Err(_) => {
            api.metrics.heartbeat("http", "unknown_id");
            Recorded::Answer(text(StatusCode::NOT_FOUND, "not found"))
        }
    }
}
