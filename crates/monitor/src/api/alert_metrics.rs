//! `/metrics` of the alert path, so that an operator can trust it (issue 11): outbox depth,
//! the age of the oldest undelivered row, deliveries by channel and result, dead letters,
//! recovery attempts and escalations, store commit latency and the database's size.
//!
//! Built at scrape time from the sources that own the numbers (the store, the notifier's
//! and the recoverer's counters, the writer's statistics) into a registry of its own, so
//! nothing on the alert path touches a metric. What it is not: the targets' metrics
//! (`metrics.rs`).

use std::sync::Arc;
use std::time::SystemTime;

use prometheus_client::encoding::{EncodeLabelSet, prometheus_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::notify::Notifier;
use crate::recovery::Recoverer;
use crate::store::{RecordWriter, Store};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    channel: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Where the alert path's numbers come from; each is optional (a test's API may have none).
#[derive(Debug, Clone, Default)]
pub struct AlertPath {
    pub notifier: Option<Notifier>,
    pub recovery: Option<Recoverer>,
    pub writer: Option<RecordWriter>,
    /// A read connection, for the outbox's depth and the database's size.
    pub store: Option<Arc<Store>>,
}

/// Appends the alert path's metrics to `text` (Prometheus text format).
pub(super) async fn encode(path: &AlertPath, text: &mut String) {
    let mut registry = Registry::with_prefix("vitals");
    if let Some(store) = &path.store {
        let store = Arc::clone(store);
        let read = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((
                store.outbox_backlog()?,
                store.outbox_dead_letters()?,
                store.database_bytes()?,
            ))
        })
        .await;
        match read {
            Ok(Ok(((pending, oldest), dead, bytes))) => {
                let depth = Gauge::<i64>::default();
                depth.set(i64::try_from(pending).unwrap_or(i64::MAX));
                registry.register(
                    "outbox_pending",
                    "Alert deliveries waiting in the outbox (every channel)",
                    depth,
                );
                let age = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
                age.set(oldest.map_or(0.0, |at| {
                    SystemTime::now()
                        .duration_since(at)
                        .unwrap_or_default()
                        .as_secs_f64()
                }));
                registry.register(
                    "outbox_oldest_pending_age_seconds",
                    "Age of the oldest undelivered outbox row; 0 when none waits",
                    age,
                );
                let kept = Gauge::<i64>::default();
                kept.set(i64::try_from(dead).unwrap_or(i64::MAX));
                registry.register(
                    "outbox_dead_letters",
                    "Outbox rows dead-lettered (refused for good or out of attempts) and still kept",
                    kept,
                );
                let size = Gauge::<i64>::default();
                size.set(i64::try_from(bytes).unwrap_or(i64::MAX));
                registry.register(
                    "store_database_bytes",
                    "Size of the SQLite database's pages in use (the WAL not included)",
                    size,
                );
            }
            Ok(Err(error)) => tracing::warn!(%error, "metrics: could not read the outbox"),
            Err(error) => tracing::warn!(%error, "metrics: reading the outbox panicked"),
        }
    }
    if let Some(notifier) = &path.notifier {
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        for (channel, result, n) in notifier.deliveries() {
            deliveries
                .get_or_create(&DeliveryLabels {
                    channel,
                    result: result.as_str(),
                })
                .inc_by(n);
        }
        registry.register(
            "alert_deliveries",
            "Alert delivery attempts by channel and result (delivered, failed, dead_letter)",
            deliveries,
        );
    }
    if let Some(recovery) = &path.recovery {
        let counts = recovery.counts();
        let attempts = Family::<ResultLabels, Counter>::default();
        for (result, n) in counts.attempts() {
            attempts.get_or_create(&ResultLabels { result }).inc_by(n);
        }
        registry.register(
            "recovery_attempts",
            "Recovery actions run, by result (ok, failed, timeout, error)",
            attempts,
        );
        let escalations = Counter::<u64>::default();
        escalations.inc_by(counts.escalations());
        registry.register(
            "recovery_escalations",
            "Recovery budgets spent: targets handed to a person",
            escalations,
        );
    }
    if let Some(writer) = &path.writer {
        let stats = writer.stats();
        let commits = Counter::<u64>::default();
        commits.inc_by(stats.commits);
        registry.register(
            "store_commits",
            "Write transactions committed by the store's writer",
            commits,
        );
        let seconds = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        seconds.inc_by(stats.commit_time.as_secs_f64());
        registry.register(
            "store_commit_seconds",
            "Time spent in those transactions; divided by store_commits_total, the mean write latency",
            seconds,
        );
    }
    let _ = prometheus_text::encode(text, &registry);
}
