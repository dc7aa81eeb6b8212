//! `POST /api/v1/reload`: read the configuration file again and apply it, as SIGHUP does.
//! Needs the API token, as every changing operation. A file with errors is refused (400)
//! with every error listed, and the configuration running stays as it was.
//!
//! What this is not: the reload itself (`serve/reload.rs` diffs and applies); this only
//! checks who asks and words the answer.

use std::future::Future;
use std::pin::Pin;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Api, error};

/// Why a reload was refused: a message, and each error found (file:line:column: field…).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub message: String,
    pub errors: Vec<String>,
    /// No file to read (the monitor runs on embedded defaults): 409 rather than 400.
    pub no_file: bool,
}

/// What answers a reload: the monitor's configuration reload.
pub trait Reload: Send + Sync + std::fmt::Debug {
    /// Read the file again and apply it; what changed, as JSON, or why not.
    fn reload(&self) -> Pin<Box<dyn Future<Output = Result<Value, Refused>> + Send + '_>>;
}

pub(super) async fn reload(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(denied) = api.access.may_change(&headers) {
        return denied.into_response();
    }
    let Some(reload) = api.reload.clone() else {
        return error(
            StatusCode::CONFLICT,
            "this monitor was started without a configuration file: there is nothing to reload",
        );
    };
    match reload.reload().await {
        Ok(done) => (StatusCode::OK, Json(done)).into_response(),
        Err(refused) => {
            let code = if refused.no_file {
                StatusCode::CONFLICT
            } else {
                StatusCode::BAD_REQUEST
            };
            (
                code,
                Json(json!({
                    "error": refused.message,
                    "errors": refused.errors,
                })),
            )
                .into_response()
        }
    }
}
