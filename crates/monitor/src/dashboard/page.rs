//! What every dashboard page shares: the HTML frame (header, navigation, the live-connection
//! notice), the response headers, error pages, and how states, times, durations and shares
//! are written for people.
//!
//! Everything goes through maud, which escapes every interpolated value; nothing here builds
//! HTML by string concatenation. What this is not: any one page's content.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};
use vitals_core::machine::State;

use crate::engine::TargetView;

/// Bumped into asset URLs so a new build is never served an old cached script.
const ASSET_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Scripts and styles come only from our own `/assets/`; no inline script or style is ever
/// emitted, so even a missed escape could not run code.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Nav {
    Overview,
    Alerts,
    Target,
    Status,
    Other,
}

/// A whole page: `title`, the navigation (operator pages only), and `main`. `live` turns
/// on the server-sent-events script for this page.
pub(super) fn layout(title: &str, nav: Nav, live: bool, main: Markup) -> Markup {
    let operator = nav != Nav::Status;
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · vitals" }
                link rel="stylesheet" href={ "/assets/dashboard.css?v=" (ASSET_VERSION) };
                @if live {
                    script src={ "/assets/dashboard.js?v=" (ASSET_VERSION) } defer {}
                }
            }
            body data-live=[live.then_some("/events")] {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href=(if operator { "/" } else { "/status" }) { "vitals" }
                    @if operator {
                        nav aria-label="Main" {
                            a href="/" aria-current=[(nav == Nav::Overview).then_some("page")] { "Overview" }
                            a href="/alerts" aria-current=[(nav == Nav::Alerts).then_some("page")] { "Alerts" }
                            a href="/status" { "Public status" }
                        }
                    }
                }
                // Shown by the script when the event stream drops; role=alert reads it out.
                div #connection .notice.notice-bad role="alert" hidden {
                    "Connection to the monitor lost: states shown may be stale. Reconnecting…"
                }
                div #announce .visually-hidden aria-live="polite" {}
                main #main tabindex="-1" { (main) }
            }
        }
    }
}

/// An HTML response with the dashboard's security headers.
pub(super) fn respond(code: StatusCode, markup: Markup) -> Response {
    let mut response = (code, markup).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An error page saying what was wrong and what to do.
pub(super) fn error(code: StatusCode, message: &str) -> Response {
    let title = code.canonical_reason().unwrap_or("error");
    respond(
        code,
        layout(
            title,
            Nav::Other,
            false,
            html! {
                h1 { (title) }
                p.notice.notice-bad { (message) }
                p { a href="/" { "Back to the overview" } }
            },
        ),
    )
}

/// How a target's state is shown: a CSS class, a symbol, and words. The words always carry
/// the meaning (the colour and the symbol only repeat it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Look {
    pub(super) class: &'static str,
    pub(super) symbol: &'static str,
    pub(super) label: &'static str,
}

/// The look of a plain state.
pub(super) fn look_of(state: State) -> Look {
    let (class, symbol) = match state {
        State::Down => ("bad", "✖"),
        State::Unhealthy => ("bad", "✖"),
        State::Failing => ("warn", "!"),
        State::Degraded => ("warn", "▲"),
        State::Recovering => ("info", "↻"),
        State::Unknown => ("none", "?"),
        State::Healthy => ("good", "✔"),
    };
    Look {
        class,
        symbol,
        label: state.as_str(),
    }
}

/// The look of a target: paused outranks its (frozen) state.
pub(super) fn look(view: &TargetView) -> Look {
    if view.paused {
        Look {
            class: "none",
            symbol: "⏸",
            label: "paused",
        }
    } else {
        look_of(view.state)
    }
}

/// Sort rank: what needs a person first. Root causes that are down or unhealthy lead, then
/// the targets they block (impaired because a dependency is), then the rest; healthy and
/// paused come last.
pub(super) fn rank(view: &TargetView) -> u8 {
    if view.paused {
        return 8;
    }
    if !view.blocked_by.is_empty() {
        return 2;
    }
    match view.state {
        State::Down => 0,
        State::Unhealthy => 1,
        State::Failing => 3,
        State::Recovering => 4,
        State::Degraded => 5,
        State::Unknown => 6,
        State::Healthy => 7,
    }
}

/// "blocked by a, b" beside a state, or an empty placeholder the live script can fill.
pub(super) fn blocked(view: &TargetView) -> Markup {
    html! {
        span.flag.blocked data-blocked hidden[view.blocked_by.is_empty()] {
            "blocked by " (view.blocked_by.join(", "))
        }
    }
}

/// Run a store read on the blocking pool; an error becomes a 500 page saying `what` failed.
pub(super) async fn blocking<T: Send + 'static>(
    what: &str,
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            tracing::error!(%error, what, "dashboard: store read failed");
            Err(error_page(what, &error.to_string()))
        }
        Err(error) => {
            tracing::error!(%error, what, "dashboard: store read panicked");
            Err(error_page(what, &error.to_string()))
        }
    }
}

fn error_page(what: &str, detail: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        &format!("could not read {what} from the store: {detail}"),
    )
}

/// The state pill: symbol (hidden from screen readers, it repeats the words) and words.
pub(super) fn pill(look: Look) -> Markup {
    html! {
        span class={ "state st-" (look.class) } {
            span.state-icon aria-hidden="true" { (look.symbol) }
            " "
            span.state-text { (look.label) }
        }
    }
}

/// `2026-11-25 09:00:01 UTC`.
pub(super) fn when(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

/// RFC 3339, for `<time datetime>` and JSON.
pub(super) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// "just now", "5 min ago", "3 h ago", "12 days ago".
pub(super) fn ago(now: SystemTime, then: SystemTime) -> String {
    let secs = now.duration_since(then).unwrap_or_default().as_secs();
    match secs {
        0..60 => "just now".to_string(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

/// A `<time>` element: relative words, the exact time on hover and for machines.
pub(super) fn time_ago(now: SystemTime, then: Option<SystemTime>) -> Markup {
    match then {
        Some(then) => html! {
            time datetime=(rfc3339(then)) title=(when(then)) data-since { (ago(now, then)) }
        },
        None => html! { span.muted data-since { "—" } },
    }
}

/// `12.3 ms`, `1.20 s`.
pub(super) fn millis(duration: Duration) -> String {
    let ms = duration.as_secs_f64() * 1000.0;
    if ms < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.2} s", ms / 1000.0)
    }
}

/// `99.95 %`, or a dash when nothing is known. Never rounds a shortfall up to 100 %.
pub(super) fn percent(share: Option<f64>) -> String {
    match share {
        Some(share) if share >= 1.0 => "100 %".to_string(),
        Some(share) => format!("{:.2} %", (share * 10_000.0).floor() / 100.0),
        None => "—".to_string(),
    }
}

/// A target id as one URL path segment. Config ids are already URL-safe; this keeps code-built
/// configs from breaking links.
pub(crate) fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for byte in id.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A link to a target's page.
pub(super) fn target_href(id: &str) -> String {
    format!("/targets/{}", segment(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_never_rounds_up_to_a_full_hundred() {
        assert_eq!(percent(Some(0.99999)), "99.99 %");
        assert_eq!(percent(Some(1.0)), "100 %");
        assert_eq!(percent(None), "—");
    }

    #[test]
    fn segment_encodes_what_is_not_url_safe() {
        assert_eq!(segment("api.v1_x-y"), "api.v1_x-y");
        assert_eq!(segment("a/b c\"<"), "a%2Fb%20c%22%3C");
    }
}
