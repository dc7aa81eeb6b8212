//! The engine: every target's live state, fed by active checks, HTTP pings and UDP beats
//! alike, judged by the core state machine.
//!
//! One table of targets behind one lock; every signal becomes an [`Outcome`] applied to a
//! target's [`Machine`](vitals_core::Machine), so active and passive targets look the same
//! downstream. What must be stored leaves as [`Record`]s on a channel; the engine itself does
//! no storage I/O and no HTTP. Timing lives in [`timers`].

mod expect;
mod flags;
mod live;
mod metrics;
mod service;
mod timers;
mod topology;
mod views;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::{Semaphore, broadcast, mpsc};
use tokio::time::Instant;
pub use vitals_core::Cadence;
use vitals_core::machine::{Machine, Saved, State, Thresholds};
use vitals_core::{Kind, Outcome, Status};
use vitals_probes::{Probe, VitalsHealth};

pub use expect::Expectation;
use live::Live;
pub use metrics::CheckMetrics;
use topology::Resolved;
pub use topology::Topology;
pub use views::TargetView;
use views::part_id;

/// How many changes a slow [`Engine::subscribe`] receiver may fall behind.
const CHANGES_CAPACITY: usize = 4096;

/// How a target is watched.
#[derive(Clone)]
pub enum Mode {
    /// The monitor checks it.
    Active {
        probe: Arc<dyn Probe>,
        cadence: Cadence,
    },
    /// A vitals-library service: checked like `Active` through its health body, and each
    /// check the body names becomes a row of its own (`<id>/<check>`).
    Service {
        service: Arc<VitalsHealth>,
        cadence: Cadence,
    },
    /// It reports to the monitor (HTTP pings, UDP beats).
    Passive {
        ping_id: String,
        expectation: Expectation,
    },
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Active { cadence, .. } => f
                .debug_struct("Active")
                .field("cadence", cadence)
                .finish_non_exhaustive(),
            Mode::Service { service, cadence } => f
                .debug_struct("Service")
                .field("url", &service.url())
                .field("cadence", cadence)
                .finish(),
            Mode::Passive {
                ping_id,
                expectation,
            } => f
                .debug_struct("Passive")
                .field("ping_id", ping_id)
                .field("expectation", expectation)
                .finish(),
        }
    }
}

/// One target as the engine runs it.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub id: String,
    pub name: String,
    pub thresholds: Thresholds,
    pub mode: Mode,
}

/// What the engine hands to storage.
#[derive(Debug, Clone)]
pub enum Record {
    Result {
        target: String,
        outcome: Outcome,
    },
    Transition {
        target: String,
        at: SystemTime,
        from: State,
        to: State,
        reason: String,
        cause: Option<Outcome>,
        saved: Saved,
    },
    Ping(PingRecord),
    /// A mark in a target's timeline that is not a state change: a pause or maintenance
    /// starting (`<state> → paused`) or ending (`paused → <state>`). Stored with the
    /// transitions, so uptime can leave those spans out and people see them in history.
    Marker {
        target: String,
        at: SystemTime,
        from: String,
        to: String,
        reason: String,
    },
    /// A target started or stopped flapping (stopping needs no transition: it happens when
    /// the state has been steady long enough).
    Flapping {
        target: String,
        state: State,
        flapping: bool,
        reason: String,
    },
    /// Every canary became impaired (`isolated`), or one answered again: see
    /// [`Topology`]. While isolated, other targets' failures are recorded but not judged.
    Isolation {
        isolated: bool,
        at: SystemTime,
        canaries: Vec<String>,
    },
    /// A target was paused, resumed, or put in or out of maintenance.
    Flags {
        target: String,
        paused: bool,
        maintenance_until: Option<SystemTime>,
    },
}

/// Creates the channel the engine hands records out on. Transitions (and the other records of
/// state: markers, flags, isolation) are never dropped and keep their order; results and pings
/// (high volume: a check a second per target, a flood of HTTP pings) are dropped and counted
/// once more than `capacity` records wait, so a slow disk or a ping flood cannot grow memory
/// without bound.
pub fn records(capacity: usize) -> (RecordSender, RecordReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::new(AtomicUsize::new(0));
    (
        RecordSender {
            tx,
            pending: Arc::clone(&pending),
            capacity,
        },
        RecordReceiver { rx, pending },
    )
}

/// The engine's side of [`records`].
#[derive(Debug, Clone)]
pub struct RecordSender {
    tx: mpsc::UnboundedSender<Record>,
    pending: Arc<AtomicUsize>,
    capacity: usize,
}

/// The storage side of [`records`].
#[derive(Debug)]
pub struct RecordReceiver {
    rx: mpsc::UnboundedReceiver<Record>,
    pending: Arc<AtomicUsize>,
}

impl RecordReceiver {
    pub async fn recv(&mut self) -> Option<Record> {
        let record = self.rx.recv().await?;
        self.pending.fetch_sub(1, AtomicOrdering::Relaxed);
        Some(record)
    }

    pub fn try_recv(&mut self) -> Option<Record> {
        let record = self.rx.try_recv().ok()?;
        self.pending.fetch_sub(1, AtomicOrdering::Relaxed);
        Some(record)
    }
}

impl Record {
    /// Results and pings may be shed under overload; records of state may not.
    pub fn is_droppable(&self) -> bool {
        matches!(self, Record::Result { .. } | Record::Ping(_))
    }
}

impl RecordSender {
    /// Send `record`; false when a droppable record was dropped.
    fn send(&self, record: Record) -> bool {
        let droppable = record.is_droppable();
        if droppable && self.pending.load(AtomicOrdering::Relaxed) >= self.capacity {
            return false;
        }
        self.pending.fetch_add(1, AtomicOrdering::Relaxed);
        if self.tx.send(record).is_err() {
            self.pending.fetch_sub(1, AtomicOrdering::Relaxed);
        }
        true
    }
}

/// A heartbeat as received, for history.
#[derive(Debug, Clone)]
pub struct PingRecord {
    pub target: String,
    pub at: SystemTime,
    pub signal: Signal,
    pub rid: Option<String>,
    pub body: Option<String>,
    pub duration: Option<Duration>,
    pub source: Option<String>,
}

/// What a heartbeat says, in healthchecks.io's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Start,
    Success,
    Fail,
    Log,
    /// `/ping/<id>/<exit-status>`: 0 is success, anything else failure.
    Exit(u8),
    /// A UDP beat carrying a status.
    Beat(Status),
}

/// A saved state to carry on from after a restart.
#[derive(Debug, Clone)]
pub struct Restored {
    pub state: State,
    pub since: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub flapping: bool,
    pub paused: bool,
    pub maintenance_until: Option<SystemTime>,
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
            .field("targets", &self.shared.specs.len())
            .finish()
    }
}

struct Shared {
    specs: Vec<TargetSpec>,
    by_id: HashMap<String, usize>,
    by_ping: HashMap<String, usize>,
    live: Mutex<Vec<Live>>,
    records: RecordSender,
    timers: mpsc::UnboundedSender<timers::Entry>,
    concurrency: Arc<Semaphore>,
    metrics: timers::Lag,
    changes: broadcast::Sender<TargetView>,
    check_metrics: CheckMetrics,
    topology: Resolved,
    isolated: AtomicBool,
    /// Saved states of service checks (`<id>/<check>`), taken when each is first seen again.
    restored_parts: Mutex<HashMap<String, Restored>>,
}

impl Shared {
    fn metrics(&self) -> &timers::Lag {
        &self.metrics
    }
}

impl Engine {
    /// Build the engine and start its timer task. `restored` carries saved states by target
    /// id; `records` (see [`records`]) receives what must be stored. `max_concurrency` bounds active checks in flight.
    pub fn start(
        specs: Vec<TargetSpec>,
        restored: &HashMap<String, Restored>,
        records: RecordSender,
        max_concurrency: usize,
    ) -> Engine {
        Engine::start_with(
            specs,
            restored,
            records,
            max_concurrency,
            &Topology::default(),
        )
    }

    /// [`Engine::start`] with dependencies and canaries.
    pub fn start_with(
        specs: Vec<TargetSpec>,
        restored: &HashMap<String, Restored>,
        records: RecordSender,
        max_concurrency: usize,
        topology: &Topology,
    ) -> Engine {
        let ids: Vec<&str> = specs.iter().map(|spec| spec.id.as_str()).collect();
        let topology = Resolved::new(topology, &ids);
        let now = Instant::now();
        let wall = SystemTime::now();
        let live: Vec<Live> = specs
            .iter()
            .map(|spec| new_live(spec, restored.get(&spec.id), now, wall))
            .collect();
        let (timer_tx, timer_rx) = mpsc::unbounded_channel();
        // Active targets are checked at once; passive ones when their first beat is due.
        for (index, (spec, live)) in specs.iter().zip(&live).enumerate() {
            let due = match spec.mode {
                Mode::Active { .. } | Mode::Service { .. } => Some(now),
                Mode::Passive { .. } => live.deadline(),
            };
            if let Some(due) = due {
                let _ = timer_tx.send(timers::Entry {
                    due,
                    index,
                    generation: live.timer_generation,
                });
            }
        }
        let engine = Engine {
            shared: Arc::new(Shared {
                by_id: specs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.id.clone(), i))
                    .collect(),
                by_ping: specs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, s)| match &s.mode {
                        Mode::Passive { ping_id, .. } => Some((ping_id.clone(), i)),
                        Mode::Active { .. } | Mode::Service { .. } => None,
                    })
                    .collect(),
                specs,
                live: Mutex::new(live),
                records,
                timers: timer_tx,
                concurrency: Arc::new(Semaphore::new(max_concurrency.max(1))),
                metrics: timers::Lag::default(),
                changes: broadcast::channel(CHANGES_CAPACITY).0,
                check_metrics: CheckMetrics::default(),
                topology,
                isolated: AtomicBool::new(false),
                restored_parts: Mutex::new(
                    restored
                        .iter()
                        .filter(|(id, _)| id.contains('/'))
                        .map(|(id, saved)| (id.clone(), saved.clone()))
                        .collect(),
                ),
            }),
        };
        tokio::spawn(timers::run(engine.clone(), timer_rx));
        // Restored maintenance windows end on time, or at once if they ended while stopped.
        let windows: Vec<(usize, SystemTime)> = engine
            .lock()
            .iter()
            .enumerate()
            .filter_map(|(index, live)| Some((index, live.maintenance_until?)))
            .collect();
        for (index, until) in windows {
            engine.end_maintenance_at(index, until);
        }
        engine
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Live>> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.shared
            .live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn specs(&self) -> &[TargetSpec] {
        &self.shared.specs
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.shared.by_id.get(id).copied()
    }

    pub fn index_of_ping(&self, ping_id: &str) -> Option<usize> {
        self.shared.by_ping.get(ping_id).copied()
    }

    /// The 99th percentile and count of schedule lag (due → started) of active checks.
    pub fn lag(&self) -> &timers::Lag {
        &self.shared.metrics
    }

    /// Per-target check durations and results by kind.
    pub fn check_metrics(&self) -> &CheckMetrics {
        &self.shared.check_metrics
    }

    /// Apply the outcome of an active check to target `index`, and those of its `parts` (a
    /// service's own checks) to their rows, and hand on the records.
    pub(crate) fn apply(&self, index: usize, outcome: Outcome, parts: Vec<(String, Outcome)>) {
        let mut records = Vec::with_capacity(2 + 2 * parts.len());
        {
            let mut table = self.lock();
            let spec = &self.shared.specs[index];
            let live = &mut table[index];
            let duration = outcome.duration;
            let (now, wall) = (Instant::now(), SystemTime::now());
            let metrics = &self.shared.check_metrics;
            if self.judges(index, &outcome) {
                live.apply(&spec.id, now, wall, outcome, metrics, &mut records);
            } else {
                live.keep(&spec.id, now, outcome, metrics, &mut records);
            }
            if let Some(metrics) = &live.metrics {
                metrics.observe(duration);
            }
            for (name, outcome) in parts {
                let id = part_id(&spec.id, &name);
                let position = match live.parts.iter().position(|(part, _)| *part == name) {
                    Some(position) => position,
                    None => {
                        // A check seen before a restart carries on from its saved state.
                        let restored = self
                            .shared
                            .restored_parts
                            .lock()
                            .map_or(None, |mut saved| saved.remove(&id));
                        let part = restored_live(
                            &service::part_thresholds(&spec.thresholds),
                            restored.as_ref(),
                            now,
                            wall,
                        );
                        live.parts.push((name, part));
                        live.parts.len() - 1
                    }
                };
                let part = &mut live.parts[position].1;
                if self.judges(index, &outcome) {
                    part.apply(&id, now, wall, outcome, metrics, &mut records);
                } else {
                    part.keep(&id, now, outcome, metrics, &mut records);
                }
            }
            self.update_isolation(index, &table, wall, &mut records);
        }
        self.emit(records);
    }

    /// Every change of a target's state or flags from now on, as the target then looks.
    /// For live views (the dashboard): a receiver that falls more than a few thousand
    /// changes behind gets `Lagged` and should reload; storage never depends on this.
    pub fn subscribe(&self) -> broadcast::Receiver<TargetView> {
        self.shared.changes.subscribe()
    }

    fn emit(&self, records: Vec<Record>) {
        for record in records {
            if self.shared.changes.receiver_count() > 0
                && let Record::Transition { target, .. } | Record::Flags { target, .. } = &record
                && let Some(view) = self.view(target)
            {
                let _ = self.shared.changes.send(view);
            }
            if !self.shared.records.send(record) {
                self.shared
                    .metrics
                    .dropped_records
                    .fetch_add(1, AtomicOrdering::Relaxed);
            }
        }
    }

    /// A heartbeat arrived for `ping_id` (HTTP ping or UDP beat).
    pub fn heartbeat(&self, ping_id: &str, ping: PingRecord) -> Result<(), UnknownPing> {
        let index = self
            .index_of_ping(ping_id)
            .ok_or_else(|| UnknownPing(ping_id.to_string()))?;
        self.heartbeat_at(index, ping);
        Ok(())
    }

    /// A heartbeat for the target at `index` (a UDP beat, already authenticated).
    pub fn heartbeat_at(&self, index: usize, mut ping: PingRecord) {
        if !matches!(self.shared.specs[index].mode, Mode::Passive { .. }) {
            return;
        }
        let now = Instant::now();
        let spec = &self.shared.specs[index];
        let mut records = Vec::with_capacity(3);
        let reschedule;
        {
            let mut table = self.lock();
            let live = &mut table[index];
            let status = match ping.signal {
                Signal::Start => {
                    live.started = Some((now, ping.rid.clone()));
                    None
                }
                Signal::Log => None,
                Signal::Success | Signal::Exit(0) => Some(Status::Pass),
                Signal::Fail | Signal::Exit(_) => Some(Status::Fail),
                Signal::Beat(status) => Some(status),
            };
            if let Some(status) = status {
                // A run's duration is measured from its `/start` (same run id, if any).
                if let Some((started, rid)) = live.started.take() {
                    if rid == ping.rid {
                        ping.duration = Some(now.saturating_duration_since(started));
                    } else {
                        live.started = Some((started, rid));
                    }
                }
                if let Some(detector) = live.detector.as_mut() {
                    detector.handle_heartbeat(now.into_std());
                }
                live.last_beat = Some(now);
                let output = match ping.signal {
                    Signal::Exit(code) if code != 0 => format!("job exited with status {code}"),
                    Signal::Fail => "job reported failure".to_string(),
                    _ => "heartbeat received".to_string(),
                };
                let outcome = vitals_core::Report {
                    status,
                    output: Some(output),
                    observed: ping.duration.map(|d| vitals_core::Observed {
                        value: d.as_secs_f64() * 1000.0,
                        unit: "ms".to_string(),
                    }),
                }
                .into_outcome(ping.at, ping.duration.unwrap_or_default());
                live.apply(
                    &spec.id,
                    now,
                    ping.at,
                    outcome,
                    &self.shared.check_metrics,
                    &mut records,
                );
                live.timer_generation += 1;
                reschedule = live.deadline().map(|due| (due, live.timer_generation));
                self.update_isolation(index, &table, ping.at, &mut records);
            } else {
                reschedule = None;
            }
        }
        // UDP beats come by the hundred thousand a second: their history is the results and
        // transitions, not one stored row each.
        if !matches!(ping.signal, Signal::Beat(_)) {
            ping.target = spec.id.clone();
            records.push(Record::Ping(ping));
        }
        self.emit(records);
        if let Some((due, generation)) = reschedule {
            let _ = self.shared.timers.send(timers::Entry {
                due,
                index,
                generation,
            });
        }
    }
}

fn new_live(
    spec: &TargetSpec,
    restored: Option<&Restored>,
    now: Instant,
    wall: SystemTime,
) -> Live {
    let detector = match &spec.mode {
        Mode::Passive { expectation, .. } => Some(expectation.detector(now.into_std(), wall)),
        Mode::Active { .. } | Mode::Service { .. } => None,
    };
    Live {
        detector,
        ..restored_live(&spec.thresholds, restored, now, wall)
    }
}

/// A target's live entry with no detector: fresh, or carrying on from `restored`.
fn restored_live(
    thresholds: &Thresholds,
    restored: Option<&Restored>,
    now: Instant,
    wall: SystemTime,
) -> Live {
    let fresh = || Machine::new(thresholds.clone());
    let machine = match restored {
        Some(saved) => {
            // Monotonic "since" from the saved wall time: as long ago as it was then.
            let since = saved.since.map(|since| {
                let ago = wall.duration_since(since).unwrap_or_default();
                now.checked_sub(ago).unwrap_or(now).into_std()
            });
            Machine::restore(
                thresholds.clone(),
                Saved {
                    state: saved.state,
                    since,
                    consecutive_failures: saved.consecutive_failures,
                    consecutive_successes: saved.consecutive_successes,
                    flapping: saved.flapping,
                },
            )
        }
        None => fresh(),
    };
    // Thresholds are validated with the config; fall back to defaults rather than panic.
    let machine = machine
        .or_else(|_| Machine::new(Thresholds::default()))
        .expect("default thresholds are valid");
    Live {
        since_wall: restored.and_then(|saved| saved.since),
        paused: restored.is_some_and(|saved| saved.paused),
        maintenance_until: restored.and_then(|saved| saved.maintenance_until),
        ..Live::new(machine, now)
    }
}

/// The outcome a missed deadline produces.
pub(crate) fn overdue(wall: SystemTime, silent_for: Duration) -> Outcome {
    Outcome::new(Kind::Fail, wall, Duration::ZERO).with_output(format!(
        "no heartbeat for {}",
        humantime::format_duration(Duration::from_secs(silent_for.as_secs()))
    ))
}

#[cfg(test)]
mod tests;
