//! Live updates at `/events`: server-sent events, one `target` event (JSON) each time a
//! target's state or flags change, from [`Engine::subscribe`](crate::engine::Engine::subscribe).
//!
//! A browser that falls too far behind gets one `reload` event and reloads. Streams end when
//! the server drains, and the browser's `EventSource` reconnects on its own; the page shows a
//! "connection lost" notice meanwhile (`assets/dashboard.js`). What this is not: history
//! (pages read that from the store) or a push channel for anything but state changes.

use std::convert::Infallible;
use std::time::{Duration, SystemTime};

use axum::extract::{OriginalUri, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::page;
use super::{Dashboard, access};
use crate::engine::TargetView;

/// How long a browser waits before reconnecting after the stream ends.
const RETRY: Duration = Duration::from_secs(2);

/// The JSON of one change: what the script needs to redraw a state pill, nothing more.
pub(super) fn change(view: &TargetView, now: SystemTime) -> String {
    let look = page::look(view);
    json!({
        "id": view.id,
        "name": view.name,
        "label": look.label,
        "class": look.class,
        "symbol": look.symbol,
        "since": view.since.map(page::rfc3339),
        "ago": view.since.map(|since| page::ago(now, since)),
        "blocked_by": view.blocked_by,
    })
    .to_string()
}

pub(super) async fn events(
    State(dashboard): State<Dashboard>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Some(denied) = access::denied(&dashboard.inner.access, &headers, uri.path()) {
        return denied;
    }
    let changes = dashboard.inner.engine.subscribe();
    let closing = dashboard.inner.closing.clone();
    let first = Event::default().retry(RETRY).comment("connected");
    let stream = futures_util::stream::unfold(
        (Some(first), changes, closing),
        |(first, mut changes, closing)| async move {
            if let Some(first) = first {
                return Some((Ok::<_, Infallible>(first), (None, changes, closing)));
            }
            let next = tokio::select! {
                next = changes.recv() => next,
                () = closing.cancelled() => return None,
            };
            let event = match next {
                Ok(view) => Event::default()
                    .event("target")
                    .data(change(&view, SystemTime::now())),
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, "a dashboard fell behind; asking it to reload");
                    Event::default().event("reload").data(missed.to_string())
                }
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(event), (None, changes, closing)))
        },
    );
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
