//! `/metrics` of the monitor, in Prometheus text: each target's state and up, check
//! durations and results by kind, heartbeats accepted and rejected by reason, schedule lag of active checks.
//!
//! Per-target gauges are set from the engine at scrape time rather than on every change:
//! a scrape every 15 s costs one pass over the targets, a busy monitor's changes cost nothing.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use vitals_core::machine::State as TargetState;

use super::Api;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HeartbeatLabels {
    transport: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DiscoveryLabels {
    discovery: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    target: String,
    state: &'static str,
}

/// Counters the HTTP and UDP front ends update, and the registry they are exposed from.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    heartbeats: Family<HeartbeatLabels, Counter>,
    up: Family<TargetLabels, Gauge>,
    state: Family<StateLabels, Gauge>,
    checks: Counter,
    dropped: Counter,
    /// The targets `up` and `state` have series of: a reload or discovery that removes a
    /// target removes its series at the next scrape. Held through a scrape's update.
    shown: Mutex<HashSet<String>>,
    discovered: Family<DiscoveryLabels, Gauge>,
    discovery_errors: Family<DiscoveryLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("vitals");
        let heartbeats = Family::default();
        let up = Family::default();
        let state = Family::default();
        let checks = Counter::default();
        let dropped = Counter::default();
        let discovered = Family::default();
        let discovery_errors = Family::default();
        registry.register(
            "discovered_targets",
            "Targets each discovery found at its last successful look",
            discovered.clone(),
        );
        registry.register(
            "discovery_errors",
            "Looks of each discovery that failed (the targets found before stay)",
            discovery_errors.clone(),
        );
        registry.register(
            "heartbeats",
            "Heartbeats received, by transport and result (accepted or why rejected)",
            heartbeats.clone(),
        );
        registry.register(
            "target_up",
            "1 while the target is in a serving state (healthy, degraded, failing)",
            up.clone(),
        );
        registry.register(
            "target_state",
            "1 for the target's current state, 0 for the others",
            state.clone(),
        );
        registry.register("checks", "Active checks run", checks.clone());
        registry.register(
            "dropped_records",
            "Results not stored because storage fell behind (transitions are never dropped)",
            dropped.clone(),
        );
        Metrics {
            registry,
            heartbeats,
            up,
            state,
            checks,
            dropped,
            shown: Mutex::default(),
            discovered,
            discovery_errors,
        }
    }
}

impl Metrics {
    pub fn heartbeat(&self, transport: &'static str, result: &'static str) {
        self.heartbeats
            .get_or_create(&HeartbeatLabels { transport, result })
            .inc();
    }

    /// Each target's `up` and `state` series as `views` say; the series of targets no
    /// longer watched (a reload or discovery removed them) go.
    fn show_targets(&self, views: Vec<crate::engine::TargetView>) {
        let metrics = self;
        let mut shown = metrics.shown.lock().unwrap_or_else(|e| e.into_inner());
        let now: HashSet<String> = views.iter().map(|view| view.id.clone()).collect();
        for gone in shown.difference(&now) {
            metrics.up.remove(&TargetLabels {
                target: gone.clone(),
            });
            for state in TargetState::ALL {
                metrics.state.remove(&StateLabels {
                    target: gone.clone(),
                    state: state.as_str(),
                });
            }
        }
        for view in views {
            metrics
                .up
                .get_or_create(&TargetLabels {
                    target: view.id.clone(),
                })
                .set(i64::from(view.state.is_serving()));
            for state in TargetState::ALL {
                metrics
                    .state
                    .get_or_create(&StateLabels {
                        target: view.id.clone(),
                        state: state.as_str(),
                    })
                    .set(i64::from(state == view.state));
            }
        }
        *shown = now;
    }

    /// Discovery `name` found `targets` targets.
    pub fn discovered(&self, name: &str, targets: usize) {
        let labels = DiscoveryLabels {
            discovery: name.to_owned(),
        };
        self.discovered
            .get_or_create(&labels)
            .set(i64::try_from(targets).unwrap_or(i64::MAX));
    }

    /// A look of discovery `name` failed.
    pub fn discovery_failed(&self, name: &str) {
        let labels = DiscoveryLabels {
            discovery: name.to_owned(),
        };
        self.discovery_errors.get_or_create(&labels).inc();
    }

    /// Discovery `name` was removed by a reload: its series go.
    pub fn discovery_removed(&self, name: &str) {
        let labels = DiscoveryLabels {
            discovery: name.to_owned(),
        };
        self.discovered.remove(&labels);
        self.discovery_errors.remove(&labels);
    }

    /// Add `count` to a heartbeat counter (the UDP listener reports in batches).
    pub fn heartbeats(&self, transport: &'static str, result: &'static str, count: u64) {
        self.heartbeats
            .get_or_create(&HeartbeatLabels { transport, result })
            .inc_by(count);
    }
}

pub(super) async fn scrape(State(api): State<Api>, headers: HeaderMap) -> Response {
    if let Err(denied) = api.access.may_read(&headers) {
        return denied.into_response();
    }
    let metrics = &api.metrics;
    metrics.show_targets(api.engine.views());
    if let Some(udp) = &api.udp {
        let accepted = udp.accepted.load(Ordering::Relaxed);
        let mut counts = vec![("accepted", accepted)];
        counts.extend(udp.rejected_by_reason());
        for (result, total) in counts {
            let counter = metrics.heartbeats.get_or_create(&HeartbeatLabels {
                transport: "udp",
                result,
            });
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }
    let lag = api.engine.lag();
    let checks = lag.checks.load(Ordering::Relaxed);
    metrics
        .checks
        .inc_by(checks.saturating_sub(metrics.checks.get()));
    let dropped = lag.dropped_records.load(Ordering::Relaxed);
    metrics
        .dropped
        .inc_by(dropped.saturating_sub(metrics.dropped.get()));

    let mut text = String::new();
    let _ = prometheus_text::encode(&mut text, &metrics.registry);
    // The schedule-lag histogram and the per-target check series are owned by the engine;
    // encode them from registries of their own.
    let mut scheduler_registry = Registry::with_prefix("vitals_scheduler");
    scheduler_registry.register(
        "lag_seconds",
        "How late active checks start after they are due",
        lag.histogram.clone(),
    );
    // The lag's parts, to tell which wait grows under load.
    for (name, help, histogram) in [
        (
            "handout_seconds",
            "How late the scheduler hands a check out after it is due",
            &lag.handout,
        ),
        (
            "queue_seconds",
            "How long a started check task waits for its first poll behind other ready tasks",
            &lag.queue,
        ),
        (
            "permit_seconds",
            "How long a check waits for a slot under server.max_concurrency",
            &lag.permit,
        ),
    ] {
        scheduler_registry.register(name, help, histogram.clone());
    }
    let _ = prometheus_text::encode(&mut text, &scheduler_registry);
    let mut checks_registry = Registry::with_prefix("vitals");
    api.engine.check_metrics().register(&mut checks_registry);
    let _ = prometheus_text::encode(&mut text, &checks_registry);
    super::alert_metrics::encode(&api.alert_path, &mut text).await;
    if let Some(fleet) = &api.fleet {
        super::replicas::encode(fleet, &mut text).await;
    }
    (
        [(header::CONTENT_TYPE, prometheus_text::CONTENT_TYPE)],
        text,
    )
        .into_response()
}
