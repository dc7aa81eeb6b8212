//! The supervisor's own endpoints, answering for the child: `/readyz` (200 while the child
//! is ready, 503 with the reason otherwise), `/livez` (the supervisor itself answers), and
//! `/status` (the whole view as JSON: phase, readiness, reason, restarts, last exit, pid);
//! and the HAProxy agent check, through the library's responder.
//!
//! What it is not: a second opinion. Nothing here probes; every answer reads what the
//! supervisor last published.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;
use vitals::agent_check::{DEFAULT_TIMEOUT, Reply, Request, serve_with};

use crate::driver::Published;

pub(crate) fn router(published: watch::Receiver<Published>) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/livez", get(livez))
        .route("/status", get(status))
        .with_state(published)
}

async fn readyz(State(published): State<watch::Receiver<Published>>) -> Response {
    let view = published.borrow().view.clone();
    let (code, body) = if view.ready {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", view.reason),
        )
    };
    (code, [(CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn livez() -> Response {
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
        .into_response()
}

async fn status(State(published): State<watch::Receiver<Published>>) -> Response {
    let body = published.borrow().clone();
    axum::Json(body).into_response()
}

/// The agent-check reply for what the supervisor published.
pub(crate) fn reply(published: &Published) -> Reply {
    let view = &published.view;
    if view.phase == "exited" {
        Reply::Maint {
            reason: view.reason.clone(),
        }
    } else if view.shutting_down {
        Reply::Drain {
            reason: "supervisor stopping".to_string(),
        }
    } else if view.ready {
        Reply::Up { weight: 100 }
    } else {
        Reply::Down {
            reason: view.reason.clone(),
        }
    }
}

pub(crate) async fn agent_check(listener: TcpListener, published: watch::Receiver<Published>) {
    let answer = move |_: &str| reply(&published.borrow());
    if let Err(error) = serve_with(listener, Request::Ignore, DEFAULT_TIMEOUT, answer).await {
        tracing::error!(%error, "the supervisor's agent-check listener stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::View;

    fn published(phase: &'static str, ready: bool, shutting_down: bool) -> Published {
        Published {
            view: View {
                phase,
                ready,
                shutting_down,
                reason: "readiness probe fails: HTTP 503".to_string(),
                restarts: 0,
                last_exit: None,
            },
            pid: Some(42),
        }
    }

    #[test]
    fn agent_replies_follow_the_childs_readiness() {
        let line = |p: Published| reply(&p).to_string();
        assert_eq!(line(published("running", true, false)), "up ready 100%\n");
        assert_eq!(
            line(published("running", false, false)),
            "down ready #readiness probe fails: HTTP 503\n"
        );
        assert_eq!(
            line(published("stopping", false, true)),
            "up drain #supervisor stopping\n"
        );
        assert_eq!(
            line(published("exited", false, true)),
            "maint #readiness probe fails: HTTP 503\n"
        );
    }
}
