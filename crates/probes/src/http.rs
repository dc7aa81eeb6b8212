//! `Http`: does a URL answer as expected? Status code, body text, a JSON field, response time.
//!
//! This is the monitor's HTTP target and the `vitals probe` command's engine. It looks once
//! and says what differed, precisely enough to act on ("$.status is \"fail\", expected
//! \"pass\""). It is not a client for a service's API: no retries, no redirects of its own
//! (the client's policy applies), no deadline (the runner cancels the future), no memory of
//! past answers.
//!
//! Bodies are read only when something needs them (a body condition, a failing status, an
//! `application/health+json` answer), and never beyond [`BODY_LIMIT`]: a health endpoint
//! that answers with megabytes is itself a finding.

use std::fmt;
use std::ops::RangeInclusive;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use serde_json_path::JsonPath;
use tokio::time::Instant;
use vitals_core::health_json::HealthResponse;
use vitals_core::{Report, Status};

use crate::redact::redact_url;
use crate::tcp::millis;
use crate::text::error_chain;
use crate::{BoxFuture, Probe};

/// The most bytes of a body that are read. 1 MiB is far beyond any health answer, and small
/// enough that thousands of targets cannot exhaust the monitor's memory.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A bad HTTP probe description, found when it is built rather than on every check.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    #[error(
        "invalid header name {name:?}: a name is letters, digits and `-` with no spaces or colon (e.g. \"X-Api-Key\")"
    )]
    HeaderName { name: String },
    #[error(
        "invalid value for header {name:?}: it must be visible ASCII or spaces, without newlines or other control characters"
    )]
    HeaderValue { name: String },
    #[error("invalid JSONPath {path:?}: {reason} (write it as RFC 9535 does, e.g. \"$.status\")")]
    JsonPath { path: String, reason: String },
}

/// Why an HTTP check did not pass, for callers that act differently on each (the exit codes
/// of `vitals probe`). A warn (slow answer) is not a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpFailure {
    /// No response at all: refused, DNS, TLS, a connection cut before the status line.
    NoResponse,
    /// A response, but not the expected one: status out of range, a body condition unmet,
    /// a body too large or cut short.
    Unexpected,
    /// The service answered that it is unhealthy: an `application/health+json` body with
    /// status `fail`, or a kube-style `?verbose` body ending in "check failed".
    Unhealthy,
}

/// What one look found, with more structure than the [`Report`] it carries.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpAnswer {
    pub report: Report,
    /// `None` when the report passes or warns.
    pub failure: Option<HttpFailure>,
    /// The status code, when there was a response.
    pub code: Option<u16>,
    /// From sending the request to judging the answer (its body included when one was read).
    pub elapsed: Duration,
}

/// A condition on the body; several are all required.
#[derive(Debug, Clone)]
enum Condition {
    Contains(String),
    Json {
        text: String,
        path: JsonPath,
        expected: Option<serde_json::Value>,
    },
}

/// Requests a URL through a shared client and passes when the answer meets every condition:
/// a status code in range (200–299 by default), then any body conditions. Reports the
/// response time in milliseconds.
///
/// ```
/// use std::time::Duration;
/// use vitals_probes::Http;
///
/// # fn main() -> Result<(), vitals_probes::HttpError> {
/// let probe = Http::new("http://127.0.0.1:8080/status")
///     .header("Authorization", "Bearer s3cret")?
///     .json_path("$.status", Some(serde_json::json!("pass")))?
///     .warn_over(Duration::from_millis(500));
/// # let _ = probe; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    url: String,
    /// `url` as messages show it: no userinfo, no query ([`crate::redact_url`]).
    shown: String,
    method: reqwest::Method,
    headers: HeaderMap,
    expect: RangeInclusive<u16>,
    conditions: Vec<Condition>,
    warn_over: Option<Duration>,
}

impl Http {
    /// A probe of `url` with its own client. Prefer [`Http::with_client`] to share the
    /// application's client and its connection pool.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_client(reqwest::Client::new(), url)
    }

    pub fn with_client(client: reqwest::Client, url: impl Into<String>) -> Self {
        let url = url.into();
        Http {
            client,
            shown: redact_url(&url),
            url,
            method: reqwest::Method::GET,
            headers: HeaderMap::new(),
            expect: 200..=299,
            conditions: Vec::new(),
            warn_over: None,
        }
    }

    /// The status codes that count as a pass.
    pub fn expect_status(mut self, expect: RangeInclusive<u16>) -> Self {
        self.expect = expect;
        self
    }

    /// The request method (GET by default). HEAD works too, as long as no body condition is
    /// set: a HEAD answer has no body to look at.
    pub fn method(mut self, method: reqwest::Method) -> Self {
        self.method = method;
        self
    }

    /// Send this header with every request (added to, not replacing, earlier values of the
    /// same name). Checked now, so a typo is an error at start-up rather than a failing check.
    pub fn header(
        mut self,
        name: impl AsRef<str>,
        value: impl AsRef<str>,
    ) -> Result<Self, HttpError> {
        let (name, value) = (name.as_ref(), value.as_ref());
        let header =
            HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| HttpError::HeaderName {
                name: name.to_string(),
            })?;
        let value = HeaderValue::from_str(value).map_err(|_| HttpError::HeaderValue {
            name: name.to_string(),
        })?;
        self.headers.append(header, value);
        Ok(self)
    }

    /// Require the body to contain `text` (bytes compared exactly, case included).
    pub fn body_contains(mut self, text: impl Into<String>) -> Self {
        self.conditions.push(Condition::Contains(text.into()));
        self
    }

    /// Require the body to be JSON in which `path` (RFC 9535 JSONPath, such as `$.status` or
    /// `$.checks[*].status`) matches something and, when `expected` is given, every value it
    /// matches equals `expected`. The path is parsed now.
    pub fn json_path(
        mut self,
        path: impl Into<String>,
        expected: Option<serde_json::Value>,
    ) -> Result<Self, HttpError> {
        let text = path.into();
        let parsed = JsonPath::parse(&text).map_err(|error| HttpError::JsonPath {
            path: text.clone(),
            reason: error.to_string(),
        })?;
        self.conditions.push(Condition::Json {
            text,
            path: parsed,
            expected,
        });
        Ok(self)
    }

    /// Warn (still serving, flagged) when the answer takes longer than `limit`.
    pub fn warn_over(mut self, limit: Duration) -> Self {
        self.warn_over = Some(limit);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Look once and say how it went, with the kind of failure kept apart.
    pub async fn observe(&self) -> HttpAnswer {
        let start = Instant::now();
        let request = self
            .client
            .request(self.method.clone(), &self.url)
            .headers(self.headers.clone());
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => {
                let message = format!(
                    "{} {}: {}",
                    self.method,
                    self.shown,
                    error_chain(&error.without_url())
                );
                return answer(
                    Report::fail(message),
                    Some(HttpFailure::NoResponse),
                    None,
                    start,
                );
            }
        };
        let code = response.status().as_u16();
        let media = media_type(response.headers());
        let in_range = self.expect.contains(&code);
        let needs_body = !self.conditions.is_empty() || !in_range || is_json(&media);
        let body = if needs_body {
            Some(read_body(response, BODY_LIMIT).await)
        } else {
            None
        };
        let elapsed = millis(start);
        let fail = |message: String, failure| {
            let report = Report::fail(message).with_observed(elapsed, "ms");
            answer(report, Some(failure), Some(code), start)
        };

        // The service's own verdict comes first: a 503 that says "fail" is a service
        // reporting itself unhealthy, not a surprise.
        if let Some(Ok(bytes)) = &body
            && let Some(said) = reported_unhealthy(&media, bytes)
        {
            let message = format!(
                "{} {} answered HTTP {code}: {said}",
                self.method, self.shown
            );
            return fail(message, HttpFailure::Unhealthy);
        }
        if !in_range {
            let message = format!(
                "{} {} answered HTTP {code}, expected {}",
                self.method,
                self.shown,
                Expected(&self.expect)
            );
            return fail(message, HttpFailure::Unexpected);
        }
        if !self.conditions.is_empty() {
            let bytes = match body {
                Some(Ok(bytes)) => bytes,
                Some(Err(message)) => return fail(message, HttpFailure::Unexpected),
                None => Vec::new(),
            };
            if let Err(message) = self.judge_body(&bytes) {
                return fail(message, HttpFailure::Unexpected);
            }
        }
        let took = start.elapsed();
        if let Some(limit) = self.warn_over
            && took > limit
        {
            let message = format!(
                "answered in {:.0} ms, over the {} ms warn limit",
                elapsed,
                limit.as_millis()
            );
            let report = Report::warn(message).with_observed(elapsed, "ms");
            return answer(report, None, Some(code), start);
        }
        let report = Report::pass()
            .with_output(format!("HTTP {code}"))
            .with_observed(elapsed, "ms");
        answer(report, None, Some(code), start)
    }

    /// Every body condition in order; the first unmet one is the message.
    fn judge_body(&self, bytes: &[u8]) -> Result<(), String> {
        let mut json: Option<serde_json::Value> = None;
        for condition in &self.conditions {
            match condition {
                Condition::Contains(text) => {
                    if !contains(bytes, text.as_bytes()) {
                        return Err(format!("body does not contain {text:?}"));
                    }
                }
                Condition::Json {
                    text,
                    path,
                    expected,
                } => {
                    let value = match &json {
                        Some(value) => value,
                        None => json.insert(serde_json::from_slice(bytes).map_err(|error| {
                            format!("body is not JSON ({error}), so {text} cannot be read")
                        })?),
                    };
                    check_path(value, text, path, expected.as_ref())?;
                }
            }
        }
        Ok(())
    }
}

fn answer(
    report: Report,
    failure: Option<HttpFailure>,
    code: Option<u16>,
    start: Instant,
) -> HttpAnswer {
    HttpAnswer {
        report,
        failure,
        code,
        elapsed: start.elapsed(),
    }
}

/// `$.status is "fail", expected "pass"`, or `$.status matched nothing`. When the path
/// matches several values, the one that differs is named by its normalized location.
fn check_path(
    value: &serde_json::Value,
    text: &str,
    path: &JsonPath,
    expected: Option<&serde_json::Value>,
) -> Result<(), String> {
    let nodes = path.query_located(value);
    if nodes.is_empty() {
        return Err(format!("{text} matched nothing"));
    }
    let Some(expected) = expected else {
        return Ok(());
    };
    let several = nodes.len() > 1;
    for node in nodes.iter() {
        if node.node() != expected {
            let location = if several {
                node.location().to_string()
            } else {
                text.to_string()
            };
            return Err(format!(
                "{location} is {}, expected {expected}",
                node.node()
            ));
        }
    }
    Ok(())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// `200-299`, or `200` for a range of one.
struct Expected<'a>(&'a RangeInclusive<u16>);

impl fmt::Display for Expected<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.start() == self.0.end() {
            write!(f, "{}", self.0.start())
        } else {
            write!(f, "{}-{}", self.0.start(), self.0.end())
        }
    }
}

/// The media type without parameters, lowercased: `application/health+json`.
pub(crate) fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|media| media.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Health bodies come as `application/health+json`, and from less careful services as plain
/// `application/json`.
pub(crate) fn is_json(media: &str) -> bool {
    media == vitals_core::health_json::CONTENT_TYPE || media == "application/json"
}

/// What the service said about itself when it says it is unhealthy: a health+json body with
/// status `fail`, or kube-apiserver's (and vitals') `?verbose` text, whose last line is
/// "<name> check failed".
fn reported_unhealthy(media: &str, bytes: &[u8]) -> Option<String> {
    if is_json(media) {
        let health: HealthResponse = serde_json::from_slice(bytes).ok()?;
        return (health.status == Status::Fail).then(|| {
            format!(
                "service reports {} ({})",
                health.status,
                crate::vitals_health::summary(&health)
            )
        });
    }
    if media.starts_with("text/") || media.is_empty() {
        let text = std::str::from_utf8(bytes).ok()?;
        let last = text.lines().rev().find(|line| !line.trim().is_empty())?;
        if last.trim_end().ends_with("check failed") {
            let failed: Vec<&str> = text
                .lines()
                .filter_map(|line| line.strip_prefix("[-]"))
                .collect();
            return Some(if failed.is_empty() {
                last.trim().to_string()
            } else {
                format!("{}: {}", last.trim(), failed.join("; "))
            });
        }
    }
    None
}

/// Read at most `limit` bytes of the body. A larger body, or one cut short, is a message
/// saying so: the check cannot judge what it did not read.
pub(crate) async fn read_body(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let over = || {
        format!(
            "body is over the {} KiB limit; point the check at a smaller health endpoint",
            limit / 1024
        )
    };
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(over());
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return Err(over());
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(error) => {
                return Err(format!(
                    "reading the body: {}",
                    error_chain(&error.without_url())
                ));
            }
        }
    }
}

impl Probe for Http {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move { self.observe().await.report })
    }

    fn component_type(&self) -> &'static str {
        crate::component_type::COMPONENT
    }

    fn is_external(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::get;
    use vitals_core::Status;

    use super::*;

    #[tokio::test]
    async fn checks_the_status_code_of_a_real_server() {
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/down", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let ok = Http::new(format!("http://{addr}/ok")).check().await;
        assert_eq!(ok.status, Status::Pass, "{ok:?}");
        let down = Http::new(format!("http://{addr}/down")).check().await;
        assert_eq!(down.status, Status::Fail);
        assert!(down.output.unwrap().contains("HTTP 503, expected 200-299"));
        let accepted = Http::new(format!("http://{addr}/down"))
            .expect_status(200..=503)
            .check()
            .await;
        assert_eq!(accepted.status, Status::Pass);
    }

    #[tokio::test]
    async fn names_the_cause_when_nothing_listens() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let answer = Http::new(format!("http://{addr}/")).observe().await;
        assert_eq!(answer.report.status, Status::Fail);
        assert_eq!(answer.failure, Some(HttpFailure::NoResponse));
        let output = answer.report.output.unwrap();
        assert!(output.to_lowercase().contains("refused"), "{output}");
    }

    #[test]
    fn bad_descriptions_are_typed_errors_naming_the_input() {
        let error = Http::new("http://x").header("Bad Name", "v").unwrap_err();
        assert!(matches!(&error, HttpError::HeaderName { name } if name == "Bad Name"));
        let error = Http::new("http://x").header("X-Ok", "a\nb").unwrap_err();
        assert!(error.to_string().contains("\"X-Ok\""), "{error}");
        let error = Http::new("http://x").json_path("status", None).unwrap_err();
        assert!(
            error.to_string().starts_with("invalid JSONPath \"status\""),
            "{error}"
        );
    }

    #[test]
    fn json_paths_say_what_differed() {
        let body = serde_json::json!({"status": "fail", "checks": [{"status": "pass"}, {"status": "warn"}]});
        let path = |text: &str| JsonPath::parse(text).unwrap();
        let pass = serde_json::json!("pass");
        assert_eq!(
            check_path(&body, "$.status", &path("$.status"), Some(&pass)),
            Err("$.status is \"fail\", expected \"pass\"".to_string())
        );
        assert_eq!(
            check_path(&body, "$.nope", &path("$.nope"), None),
            Err("$.nope matched nothing".to_string())
        );
        assert_eq!(
            check_path(&body, "$.status", &path("$.status"), None),
            Ok(())
        );
        assert_eq!(
            check_path(
                &body,
                "$.checks[*].status",
                &path("$.checks[*].status"),
                Some(&pass)
            ),
            Err("$['checks'][1]['status'] is \"warn\", expected \"pass\"".to_string())
        );
    }

    #[test]
    fn verbose_and_health_json_bodies_are_read_as_the_services_word() {
        let verbose = b"[+]database ok\n[-]cache failed: connection refused\nreadyz check failed\n";
        assert_eq!(
            reported_unhealthy("text/plain", verbose).as_deref(),
            Some("readyz check failed: cache failed: connection refused")
        );
        assert_eq!(
            reported_unhealthy("text/plain", b"readyz check passed\n"),
            None
        );
        let json = br#"{"status":"fail","checks":{"cache":[{"status":"fail"}]}}"#;
        assert_eq!(
            reported_unhealthy("application/health+json", json).as_deref(),
            Some("service reports fail (1 check: cache fail)")
        );
        assert_eq!(
            reported_unhealthy("application/health+json", br#"{"status":"warn"}"#),
            None
        );
        assert_eq!(reported_unhealthy("text/html", b"<p>oops</p>"), None);
    }
}
