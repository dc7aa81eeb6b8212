//! `/metrics` of the load balancer, in Prometheus text: requests by pool, backend and status
//! class, retries (made and refused by the budget), answers with no backend, ejections,
//! requests failed by the client's doing (not held against any backend), readiness check
//! results, and whether each backend is in rotation.
//!
//! "Up" gauges are set at scrape time from the pools' state, like the monitor's: a scrape
//! every 15 s costs one pass over the backends, the request path costs a counter increment.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub pool: String,
    pub backend: String,
    /// "2xx" … "5xx", or "error" when no response came (connect error, reset, timeout).
    pub class: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BackendLabels {
    pub pool: String,
    pub backend: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClientFaultLabels {
    pub pool: String,
    /// "aborted" (the body broke off) or "slow" (it did not arrive in time).
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub pool: String,
    pub backend: String,
    /// "pass", "fail", or "not_ready" (503).
    pub result: &'static str,
}

/// Every metric the balancer exports.
#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub retries: Family<PoolLabels, Counter>,
    pub retries_refused: Family<PoolLabels, Counter>,
    pub unavailable: Family<PoolLabels, Counter>,
    pub ejections: Family<BackendLabels, Counter>,
    pub client_faults: Family<ClientFaultLabels, Counter>,
    pub checks: Family<CheckLabels, Counter>,
    pub up: Family<BackendLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vitals_lb");
        let metrics = Metrics {
            requests: Family::default(),
            retries: Family::default(),
            retries_refused: Family::default(),
            unavailable: Family::default(),
            ejections: Family::default(),
            client_faults: Family::default(),
            checks: Family::default(),
            up: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Tries sent to backends, by pool, backend and status class (error: no response)",
            metrics.requests.clone(),
        );
        registry.register(
            "retries",
            "Retries on another backend after a connect error, reset or timeout",
            metrics.retries.clone(),
        );
        registry.register(
            "retries_refused",
            "Retries not made because the pool's retry budget was spent",
            metrics.retries_refused.clone(),
        );
        registry.register(
            "unavailable",
            "Requests answered 503 because no backend of the pool was available",
            metrics.unavailable.clone(),
        );
        registry.register(
            "ejections",
            "Backends ejected by passive checks (failed requests in a row)",
            metrics.ejections.clone(),
        );
        registry.register(
            "client_faults",
            "Requests failed by the client (aborted or too slow a body), held against no backend",
            metrics.client_faults.clone(),
        );
        registry.register(
            "checks",
            "Readiness checks, by result (pass, fail, not_ready for a 503)",
            metrics.checks.clone(),
        );
        registry.register(
            "backend_up",
            "1 while the backend is in rotation (healthy, not drained, not ejected)",
            metrics.up.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }
}
