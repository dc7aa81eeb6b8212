//! `VitalsHealth`: what does a vitals-library service say about itself on `/health`?
//!
//! The service's own `application/health+json` verdict becomes this probe's verdict, and
//! [`VitalsHealth::fetch`] hands over the whole body so the monitor can show each of the
//! service's checks as a row of its own. This probe does not re-judge the service's checks
//! (the service applied its own hysteresis and criticality already) and does not follow the
//! service's dependencies itself.
//!
//! Any service that speaks the IETF draft (`draft-inadarei-api-health-check`) works, not only
//! vitals ones.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION};
use tokio::time::Instant;
use vitals_core::health_json::{CONTENT_TYPE, HealthResponse};
use vitals_core::{Report, Status};

use crate::http::{BODY_LIMIT, is_json, media_type, read_body};
use crate::redact::redact_url;
use crate::tcp::millis;
use crate::text::error_chain;
use crate::{BoxFuture, Probe};

/// GETs a health+json URL (`http://10.0.0.5:8080/health`) and reports the service's overall
/// status, with a summary of its checks as output ("2 checks: database pass, cache fail") and
/// the response time in milliseconds.
#[derive(Debug, Clone)]
pub struct VitalsHealth {
    client: reqwest::Client,
    url: String,
    /// `url` as messages show it: no userinfo, no query ([`crate::redact_url`]).
    shown: String,
    token: Option<String>,
}

impl VitalsHealth {
    /// A probe of `url` (the service's `/health`) with its own client.
    pub fn new(url: impl Into<String>) -> Self {
        Self::with_client(reqwest::Client::new(), url)
    }

    /// A probe sharing `client` and its connection pool.
    pub fn with_client(client: reqwest::Client, url: impl Into<String>) -> Self {
        let url = url.into();
        VitalsHealth {
            client,
            shown: redact_url(&url),
            url,
            token: None,
        }
    }

    /// The service's `details_token`: without it, a service that has one answers with its
    /// overall status only, and no checks to show.
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The service's whole health body. A failing service answers 503 with a body, which is
    /// parsed like a 200. When there is no readable health body, the error is the failing
    /// report that says why.
    pub async fn fetch(&self) -> Result<HealthResponse, Report> {
        self.fetch_timed(Instant::now()).await
    }

    async fn fetch_timed(&self, start: Instant) -> Result<HealthResponse, Report> {
        let mut request = self.client.get(&self.url).header(ACCEPT, CONTENT_TYPE);
        if let Some(token) = &self.token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = request.send().await.map_err(|error| {
            Report::fail(format!(
                "GET {}: {}",
                self.shown,
                error_chain(&error.without_url())
            ))
        })?;
        let code = response.status();
        let media = media_type(response.headers());
        let fail = |message: String| Report::fail(message).with_observed(millis(start), "ms");
        if !is_json(&media) {
            let said = if media.is_empty() {
                "no content type".to_string()
            } else {
                media.clone()
            };
            return Err(fail(format!(
                "GET {} answered HTTP {} with {said}, not {CONTENT_TYPE}; is this a vitals /health URL?",
                self.shown,
                code.as_u16()
            )));
        }
        let body = read_body(response, BODY_LIMIT)
            .await
            .map_err(|message| fail(format!("GET {}: {message}", self.shown)))?;
        serde_json::from_slice(&body).map_err(|error| {
            let hint = if code == StatusCode::OK || code == StatusCode::SERVICE_UNAVAILABLE {
                String::new()
            } else {
                " (a health endpoint answers 200 or 503)".to_string()
            };
            fail(format!(
                "GET {} answered HTTP {}{hint} with a body that is not health+json: {error}",
                self.shown,
                code.as_u16()
            ))
        })
    }

    /// The probe's report together with the body it was made from (`None` when there was
    /// no readable body): the monitor shows each of the service's checks as a row of its own.
    pub async fn check_with_body(&self) -> (Report, Option<HealthResponse>) {
        let start = Instant::now();
        match self.fetch_timed(start).await {
            Ok(health) => {
                let report = Report {
                    status: health.status,
                    output: Some(summary(&health)),
                    observed: None,
                }
                .with_observed(millis(start), "ms");
                (report, Some(health))
            }
            Err(report) => (report, None),
        }
    }
}

impl Probe for VitalsHealth {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move { self.check_with_body().await.0 })
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// "2 checks: database pass, cache fail", then the service's own output when it gave one
/// ("; starting"). A key with several entries counts as its worst one.
pub(crate) fn summary(health: &HealthResponse) -> String {
    let mut text = match health.checks.len() {
        0 => "no checks shown".to_string(),
        1 => "1 check: ".to_string(),
        n => format!("{n} checks: "),
    };
    let parts: Vec<String> = health
        .checks
        .iter()
        .map(|(name, entries)| {
            let worst = entries
                .iter()
                .map(|entry| entry.status)
                .max()
                .unwrap_or(Status::Pass);
            format!("{name} {worst}")
        })
        .collect();
    text.push_str(&parts.join(", "));
    if let Some(output) = health.output.as_deref().filter(|output| !output.is_empty()) {
        text.push_str("; ");
        text.push_str(output);
    }
    text
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use vitals_core::health_json::Component;

    use super::*;

    fn component(status: Status) -> Component {
        Component {
            component_id: None,
            component_type: None,
            observed_value: None,
            observed_unit: None,
            status,
            affected_endpoints: None,
            time: None,
            output: None,
        }
    }

    #[test]
    fn summary_lists_each_check_at_its_worst() {
        let mut checks = BTreeMap::new();
        checks.insert("database".to_string(), vec![component(Status::Pass)]);
        checks.insert(
            "cache".to_string(),
            vec![component(Status::Pass), component(Status::Fail)],
        );
        let health = HealthResponse {
            status: Status::Fail,
            version: None,
            release_id: None,
            service_id: None,
            description: None,
            output: None,
            notes: Vec::new(),
            checks,
        };
        assert_eq!(summary(&health), "2 checks: cache fail, database pass");
        let hidden = HealthResponse {
            checks: BTreeMap::new(),
            output: Some("starting".to_string()),
            ..health
        };
        assert_eq!(summary(&hidden), "no checks shown; starting");
    }
}
