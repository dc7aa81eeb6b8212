//! Prometheus metrics of the checks: durations, outcomes by kind, current status, last
//! success, transitions.
//!
//! Updated by the scheduler after each run, never by probe requests; `/metrics` encodes them
//! in the Prometheus text format (0.0.4).

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vitals_core::machine::State;
use vitals_core::{Kind, Outcome, Status};

/// The content type `/metrics` answers with.
pub use prometheus_text::CONTENT_TYPE;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    check: String,
    kind: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TransitionLabels {
    check: String,
    from: String,
    to: String,
}

/// Half a millisecond to about 16 s: a `SELECT 1` on loopback sits at the bottom, a timeout at
/// the top.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    names: Vec<String>,
    duration: Family<CheckLabels, Histogram, fn() -> Histogram>,
    outcomes: Family<OutcomeLabels, Counter>,
    status: Family<CheckLabels, Gauge>,
    up: Family<CheckLabels, Gauge>,
    last_success: Family<CheckLabels, Gauge<f64, AtomicU64>>,
    transitions: Family<TransitionLabels, Counter>,
}

impl Metrics {
    pub(crate) fn new(names: Vec<String>) -> Self {
        let mut registry = Registry::with_prefix("vitals_check");
        let duration = Family::new_with_constructor(duration_histogram as fn() -> Histogram);
        let outcomes = Family::<OutcomeLabels, Counter>::default();
        let status = Family::<CheckLabels, Gauge>::default();
        let up = Family::<CheckLabels, Gauge>::default();
        let last_success = Family::<CheckLabels, Gauge<f64, AtomicU64>>::default();
        let transitions = Family::<TransitionLabels, Counter>::default();
        registry.register(
            "duration_seconds",
            "How long each check run took",
            duration.clone(),
        );
        registry.register(
            "outcomes",
            "Check runs by how they ended: pass, warn, fail or timeout",
            outcomes.clone(),
        );
        registry.register(
            "status",
            "Current status of each check after hysteresis: 0 pass, 1 warn, 2 fail",
            status.clone(),
        );
        registry.register(
            "up",
            "1 while the check's state is serving (healthy, degraded or failing), else 0",
            up.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the latest run that passed or warned",
            last_success.clone(),
        );
        registry.register(
            "transitions",
            "State changes of each check",
            transitions.clone(),
        );
        // Every series exists from the start, so a never-failing check still shows a 0
        // failure count and alerts on rate() work from the first scrape.
        for name in &names {
            for kind in Kind::ALL {
                outcomes.get_or_create_owned(&OutcomeLabels {
                    check: name.clone(),
                    kind: kind.as_str().to_string(),
                });
            }
            status.get_or_create(&labels(name)).set(2);
            up.get_or_create(&labels(name)).set(0);
        }
        Metrics {
            registry,
            names,
            duration,
            outcomes,
            status,
            up,
            last_success,
            transitions,
        }
    }

    /// Record one run of check `index`, and the state it left the check in.
    pub(crate) fn outcome(&self, index: usize, outcome: &Outcome, state: State) {
        let name = &self.names[index];
        let labels = labels(name);
        self.duration
            .get_or_create(&labels)
            .observe(outcome.duration.as_secs_f64());
        self.outcomes
            .get_or_create(&OutcomeLabels {
                check: name.clone(),
                kind: outcome.kind.as_str().to_string(),
            })
            .inc();
        let status = match state {
            State::Healthy => Status::Pass,
            State::Degraded | State::Failing => Status::Warn,
            _ => Status::Fail,
        };
        self.status.get_or_create(&labels).set(status as i64);
        self.up
            .get_or_create(&labels)
            .set(i64::from(state.is_serving()));
        if outcome.status() != Status::Fail
            && let Ok(since_epoch) = outcome.at.duration_since(std::time::UNIX_EPOCH)
        {
            self.last_success
                .get_or_create(&labels)
                .set(since_epoch.as_secs_f64());
        }
    }

    pub(crate) fn transition(&self, index: usize, from: State, to: State) {
        self.transitions
            .get_or_create(&TransitionLabels {
                check: self.names[index].clone(),
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

fn labels(name: &str) -> CheckLabels {
    CheckLabels {
        check: name.to_string(),
    }
}
