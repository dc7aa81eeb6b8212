//! SVG status badges at `/badge/<id>.svg`, for READMEs: the target's name on the left, its
//! state in words on the right (the colour only repeats the words).
//!
//! Public by design, like the status page: a badge shows a name and a state, nothing else.
//! What this is not: a general badge service; the width is estimated from the text, as
//! shields.io-style badges do, with no font metrics.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};

use super::Dashboard;
use super::page;

/// Roughly the advance of an 11 px sans-serif character.
const CHAR_WIDTH: usize = 7;
const PAD: usize = 6;
/// Longer names are cut with an ellipsis, so a badge stays README-sized.
const MAX_LABEL: usize = 40;

fn colour(class: &str) -> &'static str {
    // Dark enough for white text at 4.5:1 or better.
    match class {
        "good" => "#1a7f37",
        "warn" => "#9a6700",
        "bad" => "#b42318",
        "info" => "#0b5cad",
        _ => "#57606a",
    }
}

fn draw(label: &str, message: &str, class: &str) -> Markup {
    let label: String = if label.chars().count() > MAX_LABEL {
        label.chars().take(MAX_LABEL - 1).chain(['…']).collect()
    } else {
        label.to_string()
    };
    let left = label.chars().count() * CHAR_WIDTH + 2 * PAD;
    let right = message.chars().count() * CHAR_WIDTH + 2 * PAD;
    let width = left + right;
    let text = format!("{label}: {message}");
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height="20" role="img" aria-label=(text) {
            title { (text) }
            rect width=(left) height="20" fill="#3d444d" {}
            rect x=(left) width=(right) height="20" fill=(colour(class)) {}
            g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle" {
                text x=(left / 2) y="14" { (label) }
                text x=(left + right / 2) y="14" { (message) }
            }
        }
    }
}

pub(super) async fn svg(State(dashboard): State<Dashboard>, Path(file): Path<String>) -> Response {
    let view = file
        .strip_suffix(".svg")
        .and_then(|id| dashboard.inner.engine.view(id));
    let (code, markup) = match view {
        Some(view) => {
            let look = page::look(&view);
            (StatusCode::OK, draw(&view.name, look.label, look.class))
        }
        None => (
            StatusCode::NOT_FOUND,
            draw("vitals", "no such target", "none"),
        ),
    };
    let mut response = (code, markup.into_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("image/svg+xml; charset=utf-8"),
    );
    // README hosts proxy and cache images; a minute keeps a badge roughly current.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60, must-revalidate"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // An SVG opened directly is a document: forbid scripts in it outright.
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    response
}
