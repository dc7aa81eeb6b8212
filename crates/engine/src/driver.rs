//! [`Engine`]: the thin async driver around the sans-IO [`Fleet`].
//!
//! It holds the fleet behind one lock, reads the time from a [`Clock`], sleeps until the
//! fleet's next timeout, runs the checks the fleet asks for (each in its own task, bounded by
//! a semaphore, cut at its timeout, a panic a failed outcome), and hands the fleet's records
//! on ([`crate::records`]) and its changes to live views ([`Engine::subscribe`]). It decides
//! nothing: every rule is the fleet's. How late each check starts (schedule lag) is measured
//! here, since only the driver sees it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use tokio::sync::{Notify, Semaphore, broadcast};
use vitals_core::{Outcome, Report};
use vitals_probes::{RunEnd, run_once};

use crate::clock::{Clock, Now};
use crate::fleet::{Applied, Command, ConfirmDue, Desired, Due, Fleet, TargetView};
use crate::metrics::CheckMetrics;
use crate::record::{PingRecord, Record, RecordSender};
use crate::service;
use crate::spec::{Mode, Restored, TargetSpec, Topology};

/// How many changes a slow [`Engine::subscribe`] receiver may fall behind.
const CHANGES_CAPACITY: usize = 4096;

/// Schedule lag of active checks and records dropped under overload.
///
/// The lag (due → started) is the sum of three waits, kept apart so that a profile can say
/// which one grows (issue 10): the timer task handing the check out after it was due
/// (`handout`: the task woke late, or was busy), a spawned check task waiting for its first
/// poll behind other ready tasks (`queue`), and waiting for a concurrency permit (`permit`).
#[derive(Debug)]
pub struct Lag {
    pub histogram: Histogram,
    pub handout: Histogram,
    pub queue: Histogram,
    pub permit: Histogram,
    pub dropped_records: AtomicU64,
    pub checks: AtomicU64,
}

impl Default for Lag {
    fn default() -> Self {
        // 100 µs to ~13 s.
        let buckets = || Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        Lag {
            histogram: buckets(),
            handout: buckets(),
            queue: buckets(),
            permit: buckets(),
            dropped_records: AtomicU64::new(0),
            checks: AtomicU64::new(0),
        }
    }
}

/// How the engine runs, beyond its targets.
#[derive(Debug, Clone)]
pub struct Options {
    /// Saved states by target id (service checks as `<id>/<check>`).
    pub restored: HashMap<String, Restored>,
    pub topology: Topology,
    /// Active checks in flight at most.
    pub max_concurrency: usize,
    pub clock: Clock,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            restored: HashMap::new(),
            topology: Topology::default(),
            max_concurrency: 1024,
            clock: Clock::system(),
        }
    }
}

/// A ping for an id nobody configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no heartbeat target has ping id {0:?}")]
pub struct UnknownPing(pub String);

/// The running engine; clone it freely.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("targets", &self.specs().len())
            .finish()
    }
}

struct Shared {
    fleet: Mutex<Fleet>,
    clock: Clock,
    records: RecordSender,
    /// Wakes the timer task when a call made the fleet's next timeout earlier.
    wake: Arc<Notify>,
    concurrency: Arc<Semaphore>,
    lag: Lag,
    changes: broadcast::Sender<TargetView>,
}

impl Engine {
    /// Build the fleet of `specs` and start its timer task; `records` (see
    /// [`crate::records`]) receives what must be stored.
    pub fn start(specs: Vec<TargetSpec>, records: RecordSender, options: Options) -> Engine {
        let fleet = Fleet::new(
            specs,
            &options.restored,
            &options.topology,
            options.clock.now(),
        );
        let engine = Engine {
            shared: Arc::new(Shared {
                fleet: Mutex::new(fleet),
                clock: options.clock,
                records,
                wake: Arc::new(Notify::new()),
                concurrency: Arc::new(Semaphore::new(options.max_concurrency.max(1))),
                lag: Lag::default(),
                changes: broadcast::channel(CHANGES_CAPACITY).0,
            }),
        };
        tokio::spawn(run(
            Arc::downgrade(&engine.shared),
            Arc::clone(&engine.shared.wake),
        ));
        engine
    }

    fn lock(&self) -> MutexGuard<'_, Fleet> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.shared
            .fleet
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Read the fleet.
    pub fn read<T>(&self, read: impl FnOnce(&Fleet) -> T) -> T {
        read(&self.lock())
    }

    /// Feed the fleet at the clock's `now`, then hand on what it produced and wake the timer
    /// task if its next timeout came nearer.
    fn feed<T>(&self, feed: impl FnOnce(&mut Fleet, Now) -> T) -> T {
        let (answer, records, nearer) = {
            let mut fleet = self.lock();
            let before = fleet.poll_timeout();
            let answer = feed(&mut fleet, self.shared.clock.now());
            let records = self.drain(&mut fleet);
            let after = fleet.poll_timeout();
            let nearer = match (before, after) {
                (_, None) => false,
                (None, Some(_)) => true,
                (Some(before), Some(after)) => after < before,
            };
            (answer, records, nearer)
        };
        self.hand_on(records);
        if nearer {
            self.shared.wake.notify_one();
        }
        answer
    }

    /// The fleet's records, with the views live subscribers need (made under the lock).
    fn drain(&self, fleet: &mut Fleet) -> Vec<(Record, Option<TargetView>)> {
        let watched = self.shared.changes.receiver_count() > 0;
        let mut out = Vec::new();
        while let Some(record) = fleet.poll_record() {
            let view = match &record {
                Record::Transition(transition) if watched => fleet.view(&transition.target),
                Record::Flags { target, .. } if watched => fleet.view(target),
                _ => None,
            };
            out.push((record, view));
        }
        out
    }

    fn hand_on(&self, records: Vec<(Record, Option<TargetView>)>) {
        for (record, view) in records {
            if let Some(view) = view {
                let _ = self.shared.changes.send(view);
            }
            if !self.shared.records.send(record) {
                self.shared
                    .lag
                    .dropped_records
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The targets watched now (a reload replaces them; this is a snapshot).
    pub fn specs(&self) -> Arc<[TargetSpec]> {
        self.read(Fleet::shared_specs)
    }

    /// Watch `desired` from now on (see [`Fleet::apply`]): what a configuration reload and
    /// target discovery do. Added targets carry on from `restored` states.
    pub fn apply(
        &self,
        desired: Vec<Desired>,
        topology: &Topology,
        restored: &HashMap<String, Restored>,
    ) -> Applied {
        self.feed(|fleet, now| fleet.apply(now, desired, topology, restored))
    }

    /// The 99th percentile and count of schedule lag (due → started) of active checks.
    pub fn lag(&self) -> &Lag {
        &self.shared.lag
    }

    /// Per-target check durations and results by kind.
    pub fn check_metrics(&self) -> CheckMetrics {
        self.read(|fleet| fleet.check_metrics().clone())
    }

    /// Every change of a target's state or flags from now on, as the target then looks.
    /// For live views (the dashboard): a receiver that falls more than a few thousand
    /// changes behind gets `Lagged` and should reload; storage never depends on this.
    pub fn subscribe(&self) -> broadcast::Receiver<TargetView> {
        self.shared.changes.subscribe()
    }

    /// A heartbeat arrived for `ping_id` (HTTP ping or UDP beat).
    pub fn heartbeat(&self, ping_id: &str, ping: PingRecord) -> Result<(), UnknownPing> {
        self.feed(|fleet, now| {
            let index = fleet
                .index_of_ping(ping_id)
                .ok_or_else(|| UnknownPing(ping_id.to_string()))?;
            fleet.handle_beat(now, index, ping);
            Ok(())
        })
    }

    /// Heartbeats for targets by ping id (UDP beats, already authenticated), under one
    /// lock. By id, not by index: a reload may have moved a target since the beat was
    /// verified; a beat for an id no longer watched is dropped. Returns how many were.
    pub fn heartbeats<S: AsRef<str>>(
        &self,
        beats: impl IntoIterator<Item = (S, PingRecord)>,
    ) -> usize {
        self.feed(|fleet, now| {
            let mut unknown = 0;
            for (ping_id, ping) in beats {
                match fleet.index_of_ping(ping_id.as_ref()) {
                    Some(index) => fleet.handle_beat(now, index, ping),
                    None => unknown += 1,
                }
            }
            unknown
        })
    }

    /// Pause (checks and deadlines stop) or resume a target.
    pub fn set_paused(&self, id: &str, paused: bool) -> Option<TargetView> {
        self.feed(|fleet, now| {
            let target = fleet.index_of(id)?;
            fleet.handle_command(now, Command::Pause { target, paused })
        })
    }

    /// Put a target in maintenance until `until` (None, or a time past, ends it).
    pub fn set_maintenance(&self, id: &str, until: Option<SystemTime>) -> Option<TargetView> {
        self.feed(|fleet, now| {
            let target = fleet.index_of(id)?;
            fleet.handle_command(now, Command::Maintenance { target, until })
        })
    }

    /// Every target as the API shows it (see [`Fleet::views`]).
    pub fn views(&self) -> Vec<TargetView> {
        self.read(Fleet::views)
    }

    /// One target, or one of a service's checks by `<id>/<check>`.
    pub fn view(&self, id: &str) -> Option<TargetView> {
        self.read(|fleet| fleet.view(id))
    }

    pub fn is_isolated(&self) -> bool {
        self.read(Fleet::is_isolated)
    }

    pub fn is_canary(&self, id: &str) -> bool {
        self.read(|fleet| fleet.is_canary(id))
    }

    pub fn blocked_by(&self, id: &str) -> Vec<String> {
        self.read(|fleet| fleet.blocked_by(id))
    }

    pub fn blocked_dependents(&self, id: &str) -> Vec<String> {
        self.read(|fleet| fleet.blocked_dependents(id))
    }

    /// Run the check that is `due` (its target in `specs`, the fleet's when it came due), and
    /// feed its outcome back.
    async fn check(self, due: Due, specs: Arc<[TargetSpec]>, spawned: tokio::time::Instant) {
        let polled = tokio::time::Instant::now();
        let lag = &self.shared.lag;
        let handed_out = spawned.into_std().saturating_duration_since(due.due);
        lag.handout.observe(handed_out.as_secs_f64());
        lag.queue.observe((polled - spawned).as_secs_f64());
        let Ok(_permit) = self.shared.concurrency.clone().acquire_owned().await else {
            return;
        };
        let started = tokio::time::Instant::now();
        lag.permit.observe((started - polled).as_secs_f64());
        let lag = started
            .into_std()
            .saturating_duration_since(due.due)
            .as_secs_f64();
        self.shared.lag.histogram.observe(lag);
        let Some(spec) = specs.get(due.index) else {
            return;
        };
        let (outcome, parts) = run_check(spec, &self.shared.clock).await;
        self.shared.lag.checks.fetch_add(1, Ordering::Relaxed);
        self.feed(|fleet, now| fleet.handle_result(now, due, outcome, parts));
    }
}

impl Engine {
    /// Run the confirmation `due` asks for (issue 15) and feed its evidence back, then start
    /// any the answer calls for. Not under the checks' semaphore: a confirmation is one
    /// connect, and waiting behind a queue of checks would make it late when it matters.
    fn confirm(
        self,
        due: ConfirmDue,
        specs: Arc<[TargetSpec]>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move {
            let Some(confirm) = specs.get(due.index).and_then(|spec| spec.mode.confirm()) else {
                return;
            };
            let evidence = confirm.confirm(due.within).await;
            let more = self.feed(|fleet, now| {
                fleet.handle_confirmation(now, due, evidence);
                std::iter::from_fn(|| fleet.poll_confirm()).collect::<Vec<_>>()
            });
            for due in more {
                tokio::spawn(self.clone().confirm(due, Arc::clone(&specs)));
            }
        })
    }
}

/// One check of an active target, through the probes' one runner: cut at its timeout, a panic
/// a failed outcome. The outcome, and a service's own checks from its health body.
async fn run_check(spec: &TargetSpec, clock: &Clock) -> (Outcome, Vec<(String, Outcome)>) {
    let mode = &spec.mode;
    let timeout = mode
        .cadence()
        .map_or(Duration::ZERO, |cadence| cadence.timeout);
    let check = async {
        match mode {
            Mode::Active { probe, .. } => (probe.check().await, None),
            Mode::Service { service, .. } => service.check_with_body().await,
            Mode::Passive { .. } => (Report::fail("a passive target is not checked"), None),
        }
    };
    let run = run_once(timeout, check).await;
    if let RunEnd::Panicked(message) = &run.end {
        tracing::error!(target = %spec.id, %message, "a check panicked; it counts as failed");
    }
    let wall = clock.now().wall;
    let (outcome, health) = run.into_outcome_and(wall);
    let parts = health.map_or_else(Vec::new, |health| service::parts(&health, wall));
    (outcome, parts)
}

/// The timer task: sleep until the fleet's next timeout (or until a call brings it nearer),
/// let the fleet handle it, and start the checks it asks for. Holds the engine only while
/// awake, so it ends once every [`Engine`] is dropped (dropping wakes it).
async fn run(shared: Weak<Shared>, wake: Arc<Notify>) {
    loop {
        let next = {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let engine = Engine { shared };
            let (due, confirms, specs, next) = engine.feed(|fleet, now| {
                fleet.handle_timeout(now);
                let due: Vec<Due> = std::iter::from_fn(|| fleet.poll_check()).collect();
                let confirms: Vec<ConfirmDue> =
                    std::iter::from_fn(|| fleet.poll_confirm()).collect();
                (due, confirms, fleet.shared_specs(), fleet.poll_timeout())
            });
            let spawned = tokio::time::Instant::now();
            for due in due {
                tokio::spawn(engine.clone().check(due, Arc::clone(&specs), spawned));
            }
            for due in confirms {
                tokio::spawn(engine.clone().confirm(due, Arc::clone(&specs)));
            }
            next
        };
        tokio::select! {
            () = sleep_until(next) => {}
            () = wake.notified() => {}
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await,
        None => std::future::pending().await,
    }
}
