//! Per-target check metrics: how long active checks take (a histogram) and how many results
//! of each kind every target produced (pass, warn, fail, timeout).
//!
//! The handles are made the first time a target produces a result and kept in its live
//! entry, so a check costs a few atomic adds and no label allocation, and a target that never
//! reports (an idle heartbeat target) costs nothing. Exposition is `/metrics`' job.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use vitals_core::Kind;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    target: String,
    result: &'static str,
}

type Constructor = fn() -> Histogram;

fn duration_histogram() -> Histogram {
    // 1 ms to ~16 s: a loopback check takes about a millisecond, a timeout is seconds.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

const KINDS: [Kind; 4] = [Kind::Pass, Kind::Warn, Kind::Fail, Kind::Timeout];

/// The engine's metric families; clones share the same series.
#[derive(Debug, Clone)]
pub struct CheckMetrics {
    durations: Family<TargetLabels, Histogram, Constructor>,
    results: Family<ResultLabels, Counter>,
}

impl Default for CheckMetrics {
    fn default() -> Self {
        CheckMetrics {
            durations: Family::new_with_constructor(duration_histogram),
            results: Family::default(),
        }
    }
}

impl CheckMetrics {
    /// Make (or find) the series of target `id`.
    pub(crate) fn target(&self, id: &str) -> Box<TargetMetrics> {
        let results = KINDS.map(|kind| {
            self.results
                .get_or_create(&ResultLabels {
                    target: id.to_string(),
                    result: kind.as_str(),
                })
                .clone()
        });
        let duration = self
            .durations
            .get_or_create(&TargetLabels {
                target: id.to_string(),
            })
            .clone();
        Box::new(TargetMetrics { duration, results })
    }

    /// Drop the series of target `id`, which is no longer watched (a reload removed it), so
    /// `/metrics` shows no target that is gone.
    pub(crate) fn forget(&self, id: &str) {
        for kind in KINDS {
            self.results.remove(&ResultLabels {
                target: id.to_string(),
                result: kind.as_str(),
            });
        }
        self.durations.remove(&TargetLabels {
            target: id.to_string(),
        });
    }

    /// Add the families to `registry` (prefix it with `vitals`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "check_duration_seconds",
            "How long each active check took, per target",
            self.durations.clone(),
        );
        registry.register(
            "check_results",
            "Results per target by kind: pass, warn, fail, timeout (heartbeats and missed deadlines included)",
            self.results.clone(),
        );
    }
}

/// One target's series, held in its live entry.
#[derive(Debug)]
pub(crate) struct TargetMetrics {
    duration: Histogram,
    results: [Counter; 4],
}

impl TargetMetrics {
    pub(crate) fn count(&self, kind: Kind) {
        if let Some(index) = KINDS.iter().position(|k| *k == kind) {
            self.results[index].inc();
        }
    }

    pub(crate) fn observe(&self, duration: Duration) {
        self.duration.observe(duration.as_secs_f64());
    }
}
