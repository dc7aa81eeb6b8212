//! Who may read the operator pages: the API's rule (public unless `server.read_token` is set;
//! then the read token or the API token), extended to browsers, which cannot send a bearer
//! header by themselves: `/login` takes the token once in a form and keeps it in an
//! `HttpOnly`, `SameSite=Strict` cookie.
//!
//! What this is not: user accounts, or access to anything that changes a target (the
//! dashboard changes nothing). The status page and badges never ask.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::Dashboard;
use super::page::{self, Nav};
use crate::api::{Access, bearer};

const COOKIE: &str = "vitals_token";

/// The token in our cookie. It is stored hex-encoded: a token may hold characters a cookie
/// value may not (`;`, spaces).
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| hex::decode(value).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

/// `None` when the request may read the operator pages; otherwise the response to send: a
/// login page (browsers follow it; scripts see the 401).
pub(super) fn denied(access: &Access, headers: &HeaderMap, here: &str) -> Option<Response> {
    // No read token configured: reading is public.
    access.read_token.as_ref()?;
    let ok = bearer(headers).is_some_and(|given| access.accepts_for_read(given))
        || cookie(headers).is_some_and(|given| access.accepts_for_read(&given));
    (!ok).then(|| login_page(StatusCode::UNAUTHORIZED, here, None))
}

fn login_page(code: StatusCode, next: &str, problem: Option<&str>) -> Response {
    page::respond(
        code,
        page::layout(
            "Sign in",
            Nav::Other,
            false,
            html! {
                h1 { "Sign in" }
                p { "This monitor's dashboard needs its read token (" code { "server.read_token" } ")." }
                @if let Some(problem) = problem {
                    p.notice.notice-bad role="alert" { (problem) }
                }
                form.login method="post" action="/login" {
                    input type="hidden" name="next" value=(next);
                    label for="token" { "Token" }
                    input #token type="password" name="token" autocomplete="current-password" required;
                    button type="submit" { "Sign in" }
                }
                p { "The public " a href="/status" { "status page" } " needs no token." }
            },
        ),
    )
}

/// Only our own paths: never an absolute URL or `//host`, which would make `/login` an open
/// redirect. Browsers drop tabs and newlines from URLs and read `\` as `/`, so `/\t/evil` is
/// `//evil` to them (issue 11, item 12): a path with a control character, a space or a
/// backslash anywhere is refused.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next
                    .chars()
                    .any(|c| c.is_control() || c.is_whitespace() || c == '\\') =>
        {
            next
        }
        _ => "/",
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

pub(super) async fn login_form(Query(next): Query<Next>) -> Response {
    login_page(StatusCode::OK, safe_next(next.next.as_deref()), None)
}

#[derive(Debug, Deserialize)]
pub(super) struct Login {
    token: String,
    next: Option<String>,
}

pub(super) async fn login(State(dashboard): State<Dashboard>, Form(form): Form<Login>) -> Response {
    let access = &dashboard.inner.access;
    let next = safe_next(form.next.as_deref());
    if access.read_token.is_none() {
        return redirect(next, None);
    }
    if !access.accepts_for_read(&form.token) {
        return login_page(
            StatusCode::UNAUTHORIZED,
            next,
            Some(
                "that token is not the read token or the API token; check server.read_token in the config",
            ),
        );
    }
    let secure = if access.secure_cookie { "; Secure" } else { "" };
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        hex::encode(form.token.as_bytes())
    );
    redirect(next, Some(cookie))
}

fn redirect(to: &str, cookie: Option<String>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(to) {
        headers.insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_host() {
        assert_eq!(safe_next(Some("/targets/a")), "/targets/a");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        // Issue 11, item 12: browsers strip the tab, leaving `//evil.example`.
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/ /evil.example")), "/");
        assert_eq!(safe_next(Some("/targets/a?x=1")), "/targets/a?x=1");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn cookie_token_round_trips_through_hex() {
        let mut headers = HeaderMap::new();
        let value = format!("other=1; {COOKIE}={}", hex::encode("a; b"));
        headers.insert(header::COOKIE, HeaderValue::from_str(&value).unwrap());
        assert_eq!(cookie(&headers).as_deref(), Some("a; b"));
    }
}
