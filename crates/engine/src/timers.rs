//! The timer task: one heap of due times for every target, active checks and heartbeat
//! deadlines alike.
//!
//! A single task owns the heap and only dispatches: an active check runs in its own task,
//! bounded by a semaphore and cut at its timeout, so a slow or hanging target never delays
//! another. How late each check starts (schedule lag) is measured.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::mpsc;
use tokio::time::Instant;
use vitals_core::health_json::Health;
use vitals_core::{Kind, Outcome, Report};

use super::{Engine, Expectation, Mode, overdue, service};

/// A due time for one target. `generation` lets a heartbeat supersede a pending deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub(crate) due: Instant,
    pub(crate) index: usize,
    pub(crate) generation: u64,
}

/// Schedule lag of active checks and records dropped under overload.
#[derive(Debug)]
pub struct Lag {
    pub histogram: Histogram,
    pub dropped_records: AtomicU64,
    pub checks: AtomicU64,
}

impl Default for Lag {
    fn default() -> Self {
        Lag {
            // 100 µs to ~13 s.
            histogram: Histogram::new(exponential_buckets(0.0001, 2.0, 18)),
            dropped_records: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }
}

pub(crate) async fn run(engine: Engine, mut incoming: mpsc::UnboundedReceiver<Entry>) {
    let mut heap: BinaryHeap<Reverse<Entry>> = BinaryHeap::new();
    loop {
        let next = heap.peek().map(|Reverse(entry)| entry.due);
        tokio::select! {
            entry = incoming.recv() => match entry {
                Some(entry) => heap.push(Reverse(entry)),
                None => return,
            },
            _ = sleep_until(next) => {
                let now = Instant::now();
                while let Some(Reverse(entry)) = heap.peek().copied() {
                    if entry.due > now {
                        break;
                    }
                    heap.pop();
                    dispatch(&engine, entry, now);
                }
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

fn dispatch(engine: &Engine, entry: Entry, now: Instant) {
    let spec = &engine.shared.specs[entry.index];
    match &spec.mode {
        Mode::Active { cadence, .. } | Mode::Service { cadence, .. } => {
            let engine = engine.clone();
            let mode = spec.mode.clone();
            let cadence = cadence.clone();
            tokio::spawn(async move {
                let Ok(_permit) = engine.shared.concurrency.clone().acquire_owned().await else {
                    return;
                };
                let started = Instant::now();
                let lag = engine.shared.metrics();
                lag.histogram
                    .observe(started.saturating_duration_since(entry.due).as_secs_f64());
                let paused = engine.lock()[entry.index].paused;
                if !paused {
                    let result = tokio::time::timeout(cadence.timeout, check(&mode)).await;
                    let duration = started.elapsed();
                    let wall = SystemTime::now();
                    let (outcome, parts) = match result {
                        Ok((report, health)) => (
                            report.into_outcome(wall, duration),
                            health.map_or_else(Vec::new, |health| service::parts(&health, wall)),
                        ),
                        Err(_) => (
                            Outcome::new(Kind::Timeout, wall, duration).with_output(format!(
                                "timed out after {}",
                                humantime::format_duration(cadence.timeout)
                            )),
                            Vec::new(),
                        ),
                    };
                    lag.checks.fetch_add(1, Ordering::Relaxed);
                    engine.apply(entry.index, outcome, parts);
                }
                let interval = engine.lock()[entry.index].next_interval(&cadence);
                // Fixed rate from the due time, so lag does not accumulate into drift.
                let due = (entry.due + interval + jitter(entry.index, cadence.jitter))
                    .max(Instant::now());
                let _ = engine.shared.timers.send(Entry { due, ..entry });
            });
        }
        Mode::Passive { expectation, .. } => {
            let recheck;
            {
                let mut table = engine.lock();
                let live = &mut table[entry.index];
                if live.timer_generation != entry.generation {
                    return; // a heartbeat moved the deadline
                }
                let suspected = live
                    .detector
                    .as_ref()
                    .is_some_and(|detector| detector.suspicion(now.into_std()).is_suspected());
                recheck = recheck_after(expectation);
                // Silence while the monitor is isolated says more about its network.
                let judged = !engine.is_isolated() || engine.shared.topology.is_canary(entry.index);
                if suspected && !live.paused && judged {
                    let silent = live
                        .last_beat
                        .map_or(now.saturating_duration_since(live.created), |beat| {
                            now.saturating_duration_since(beat)
                        });
                    let mut records = Vec::with_capacity(2);
                    live.apply(
                        &spec.id,
                        now,
                        SystemTime::now(),
                        overdue(SystemTime::now(), silent),
                        &engine.shared.check_metrics,
                        &mut records,
                    );
                    engine.update_isolation(entry.index, &table, SystemTime::now(), &mut records);
                    drop(table);
                    engine.emit(records);
                }
            }
            let _ = engine.shared.timers.send(Entry {
                due: now + recheck,
                ..entry
            });
        }
    }
}

/// One check of an active target: its report, and a service's health body when it has one.
async fn check(mode: &Mode) -> (Report, Option<Health>) {
    match mode {
        Mode::Active { probe, .. } => (probe.check().await, None),
        Mode::Service { service, .. } => service.check_with_body().await,
        Mode::Passive { .. } => (Report::fail("a passive target is not checked"), None),
    }
}

/// While a passive target stays silent, one more failure per period (or per grace for cron
/// schedules, at least a minute), so it walks failing → unhealthy → down at the pace its
/// schedule makes sense of.
fn recheck_after(expectation: &Expectation) -> Duration {
    match expectation {
        Expectation::Period { period, .. } => (*period).max(Duration::from_secs(1)),
        Expectation::Cron { grace, .. } => (*grace).max(Duration::from_secs(60)),
        Expectation::Phi(config) => config.first_heartbeat_estimate.max(Duration::from_secs(1)),
    }
}

/// Up to `max` of extra delay, spread by target index with a multiplicative hash: jitter only
/// needs to keep targets with equal intervals apart, and a deterministic spread keeps tests
/// reproducible.
fn jitter(index: usize, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let spread = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    max.mul_f64(spread as f64 / (1u64 << 53) as f64)
}
