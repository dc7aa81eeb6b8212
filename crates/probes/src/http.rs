//! `Http`: does a GET to a URL answer with an expected status code?

use std::ops::RangeInclusive;

use tokio::time::Instant;
use vitals_core::Report;

use crate::tcp::millis;
use crate::{BoxFuture, Probe};

/// GETs a URL through a shared client and passes when the status code is in range
/// (200–299 by default). Reports the response time in milliseconds.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
    url: String,
    expect: RangeInclusive<u16>,
}

impl Http {
    /// A probe of `url` with its own client. Prefer [`Http::with_client`] to share the
    /// application's client and its connection pool.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_client(reqwest::Client::new(), url)
    }

    pub fn with_client(client: reqwest::Client, url: impl Into<String>) -> Self {
        Http {
            client,
            url: url.into(),
            expect: 200..=299,
        }
    }

    /// The status codes that count as a pass.
    pub fn expect_status(mut self, expect: RangeInclusive<u16>) -> Self {
        self.expect = expect;
        self
    }
}

impl Probe for Http {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let start = Instant::now();
            let response = match self.client.get(&self.url).send().await {
                Ok(response) => response,
                Err(error) => return Report::fail(format!("GET {}: {}", self.url, chain(&error))),
            };
            let code = response.status().as_u16();
            let elapsed = millis(start);
            if self.expect.contains(&code) {
                Report::pass()
                    .with_output(format!("HTTP {code}"))
                    .with_observed(elapsed, "ms")
            } else {
                Report::fail(format!(
                    "GET {} answered HTTP {code}, expected {}-{}",
                    self.url,
                    self.expect.start(),
                    self.expect.end()
                ))
                .with_observed(elapsed, "ms")
            }
        })
    }

    fn component_type(&self) -> &'static str {
        crate::component_type::COMPONENT
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// reqwest's top-level message ("error sending request") hides the cause people need
/// ("connection refused"); append the sources.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
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
        let report = Http::new(format!("http://{addr}/")).check().await;
        assert_eq!(report.status, Status::Fail);
        let output = report.output.unwrap();
        assert!(output.to_lowercase().contains("refused"), "{output}");
    }
}
