//! [`Fleet`]: every target's live state and every rule that judges it, sans-IO.
//!
//! The fleet is a synchronous state machine in the style of `quinn-proto`: inputs are
//! `handle_*(now, …)`, outputs are `poll_*`, and [`Fleet::poll_timeout`] says when to call
//! [`Fleet::handle_timeout`] next. It reads no clock, spawns nothing and runs no probe: the
//! driver (`crate::driver`) sleeps, runs the checks the fleet asks for
//! ([`Fleet::poll_check`]), feeds their outcomes back ([`Fleet::handle_result`]) and hands on
//! the records ([`Fleet::poll_record`]).
//!
//! Call order: any `handle_*` in any order, with `now` never going backwards; after each,
//! drain `poll_record` and `poll_check`, then sleep until `poll_timeout`.
//!
//! The rules that live here, each tested without waiting (`fleet/tests/`):
//! - every signal (check result, HTTP ping, UDP beat, missed deadline) becomes an `Outcome`
//!   for the target's core `Machine`, so active and passive targets look the same
//!   downstream;
//! - timing: active checks on their cadence (faster while changing, slower while down, with
//!   a fixed per-target jitter), heartbeat deadlines from each target's detector, a silent
//!   target re-judged once per period, maintenance windows that end by themselves;
//! - heartbeat semantics (`beat`): `/start` measures a run, `/fail` and exit codes fail,
//!   logs judge nothing, passing beats are stored at most once a second;
//! - isolation (`topology`): while every canary is impaired, failures of other targets are
//!   recorded but not judged;
//! - root cause: each transition carries what blocks it and what it blocks, and whether
//!   recovery may act on it; a root coming back releases its dependents to recovery.
//!
//! What it is not: storage, alerting policy, or a scheduler of tasks.

mod apply;
mod beat;
mod collapse;
mod confirm;
mod flags;
mod live;
mod timers;
mod topology;
mod views;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vitals_core::machine::{Machine, Saved, Thresholds};
use vitals_core::{Kind, Outcome};

use crate::clock::Now;
use crate::metrics::CheckMetrics;
use crate::record::Record;
use crate::service;
use crate::spec::{Mode, Restored, TargetSpec, Topology};

pub use apply::{Applied, Desired};
pub use collapse::COLLAPSE_FOR;
pub use confirm::ConfirmDue;
pub use flags::{Command, MAX_MAINTENANCE};
use live::Live;
use timers::{Entry, Timers};
use topology::Resolved;
pub use views::TargetView;
use views::part_id;

/// An active check the driver should run now: target `index`, due at `due`. Hand it back to
/// [`Fleet::handle_result`] with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    pub index: usize,
    pub due: Instant,
    /// The watch of the target the check belongs to (see [`Fleet::apply`]): a reload may move
    /// the target to another index, or change it, while its check is in flight.
    pub incarnation: u64,
}

/// Every target, judged. See the module docs for the call order.
pub struct Fleet {
    /// Shared with the driver, which runs the checks: one copy per target, not two.
    specs: Arc<[TargetSpec]>,
    by_id: HashMap<String, usize>,
    by_ping: HashMap<String, usize>,
    table: Vec<Live>,
    topology: Resolved,
    isolated: bool,
    /// Saved states of service checks (`<id>/<check>`), taken when each is first seen again.
    restored_parts: HashMap<String, Restored>,
    timers: Timers,
    records: VecDeque<Record>,
    checks: VecDeque<Due>,
    /// Confirmations the driver should run (see `confirm`).
    confirms: VecDeque<ConfirmDue>,
    metrics: CheckMetrics,
    /// The last incarnation given out (see [`Due::incarnation`]).
    incarnations: u64,
    /// Index by incarnation, made by the first [`Fleet::apply`]: before any reload every
    /// check comes back to the index it left from, and this costs nothing.
    by_incarnation: Option<HashMap<u64, usize>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("targets", &self.specs.len())
            .field("isolated", &self.isolated)
            .field("pending_records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl Fleet {
    /// Watch `specs` from `now`, carrying on from `restored` states (by target id, service
    /// checks as `<id>/<check>`). Active targets are due at once; heartbeat targets by their
    /// first deadline; restored maintenance windows end on time (at once if already over).
    pub fn new(
        specs: Vec<TargetSpec>,
        restored: &HashMap<String, Restored>,
        topology: &Topology,
        now: Now,
    ) -> Fleet {
        let ids: Vec<&str> = specs.iter().map(|spec| spec.id.as_str()).collect();
        let topology = Resolved::new(topology, &ids);
        let table: Vec<Live> = specs
            .iter()
            .zip(1..)
            .map(|(spec, incarnation)| Live {
                incarnation,
                ..new_live(spec, restored.get(&spec.id), now)
            })
            .collect();
        let mut fleet = Fleet {
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
            specs: specs.into(),
            table,
            topology,
            isolated: false,
            restored_parts: restored
                .iter()
                .filter(|(id, _)| id.contains('/'))
                .map(|(id, saved)| (id.clone(), saved.clone()))
                .collect(),
            timers: Timers::default(),
            records: VecDeque::new(),
            checks: VecDeque::new(),
            confirms: VecDeque::new(),
            metrics: CheckMetrics::default(),
            incarnations: 0,
            by_incarnation: None,
        };
        fleet.incarnations = fleet.table.len() as u64;
        for index in 0..fleet.specs.len() {
            match fleet.specs[index].mode {
                Mode::Active { .. } | Mode::Service { .. } => {
                    fleet.timers.push(Entry::check(now.mono, index));
                }
                Mode::Passive { .. } => fleet.arm_deadline(index),
            }
            if let Some(until) = fleet.table[index].maintenance_until {
                fleet
                    .timers
                    .push(Entry::maintenance_end(now.mono_at(until), index, until));
            }
        }
        fleet
    }

    /// When [`Fleet::handle_timeout`] should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_due()
    }

    /// Everything due by `now`: active checks become [`Fleet::poll_check`] outputs (or are
    /// skipped while paused), silent heartbeat targets are judged, maintenance windows end.
    pub fn handle_timeout(&mut self, now: Now) {
        while let Some(entry) = self.timers.pop_due(now.mono) {
            match entry.kind {
                timers::Kind::Check => self.check_due(now, entry),
                timers::Kind::Deadline { generation } => {
                    self.deadline_due(now, entry.index, generation);
                }
                timers::Kind::MaintenanceEnd { until } => {
                    self.maintenance_due(entry.index, until);
                }
                timers::Kind::Collapse { generation } => {
                    self.collapse_due(now, entry.index, generation);
                }
            }
        }
    }

    /// The next active check to run, if any is due.
    pub fn poll_check(&mut self) -> Option<Due> {
        self.checks.pop_front()
    }

    /// The next record to store and hand on, in order.
    pub fn poll_record(&mut self) -> Option<Record> {
        self.records.pop_front()
    }

    /// The outcome of the check that was `due`, and those of a service's own checks
    /// (`parts`), at `now`; the target's next check is scheduled from its due time (fixed
    /// rate: lag does not accumulate into drift).
    pub fn handle_result(
        &mut self,
        now: Now,
        due: Due,
        outcome: Outcome,
        parts: Vec<(String, Outcome)>,
    ) {
        // A check of a target a reload removed or changed meanwhile is dropped: the changed
        // target has a check of its own pending.
        let Some(index) = self.resolve(&due) else {
            return;
        };
        if self
            .specs
            .get(index)
            .and_then(|s| s.mode.cadence())
            .is_none()
        {
            return;
        }
        let mut records = Vec::with_capacity(2 + 2 * parts.len());
        let duration = outcome.duration;
        let failed = outcome.status() == vitals_core::Status::Fail;
        self.judge(now, index, outcome, &mut records);
        if let Some(metrics) = &self.table[index].metrics {
            metrics.observe(duration);
        }
        for (name, outcome) in parts {
            self.judge_part(now, index, name, outcome, &mut records);
        }
        self.schedule_check(now, index, due.due);
        self.finish(now, index, records, true);
        self.suspect_by_check(now, index, failed);
    }

    /// Where the target of check `due` is now: its index, unless a reload moved it, or
    /// None when a reload removed it or changed its definition.
    fn resolve(&self, due: &Due) -> Option<usize> {
        let live = self.table.get(due.index);
        if live.is_some_and(|live| live.incarnation == due.incarnation) {
            return Some(due.index);
        }
        self.by_incarnation.as_ref()?.get(&due.incarnation).copied()
    }

    /// Target `index`'s next check, one interval (for its state) and its jitter after the
    /// check due at `from`, and never in the past.
    ///
    /// Every active target is checked at once when the fleet starts. With a jitter (the
    /// default is a tenth of the interval), its next check also moves it to a phase of its
    /// own within the interval, spread by index, so that targets started together are
    /// checked evenly through the interval from then on (HAProxy spreads first checks the
    /// same way). Jitter alone left them bunched: each target's period is its interval plus
    /// its own jitter, and 10,000 targets at 1 s had 100 ms windows with 1.8 times the mean
    /// number of checks due, 1.1 times with phases (BENCHMARKS.md, issue 10). A jitter of
    /// zero asks for exact times: every target on the grid of its interval from the start.
    fn schedule_check(&mut self, now: Now, index: usize, from: Instant) {
        if let Some(cadence) = self.specs[index].mode.cadence() {
            let live = &mut self.table[index];
            let interval = live.next_interval(cadence);
            let spread = !cadence.jitter.is_zero() && !std::mem::replace(&mut live.phased, true);
            let phase = if spread {
                timers::phase(index, interval)
            } else {
                Duration::ZERO
            };
            let next =
                (from + interval + phase + timers::jitter(index, cadence.jitter)).max(now.mono);
            self.timers.push(Entry::check(next, index));
        }
    }

    fn check_due(&mut self, now: Now, entry: Entry) {
        let index = entry.index;
        if !self.table[index].paused {
            self.checks.push_back(Due {
                index,
                due: entry.due,
                incarnation: self.table[index].incarnation,
            });
            return;
        }
        // Paused: no check, but keep the schedule, so resuming picks it up on time.
        self.schedule_check(now, index, entry.due);
    }

    /// Judge `outcome` of target `index`, unless the monitor is isolated and it is a failure
    /// of a target that is not a canary: then it is kept (stored, shown) but not judged.
    fn judge(&mut self, now: Now, index: usize, outcome: Outcome, records: &mut Vec<Record>) {
        let judged = self.judges(index, &outcome);
        let id = &self.specs[index].id;
        self.table[index].take(judged, id, now, outcome, &self.metrics, records);
    }

    /// Judge `outcome` of a service's own check `name`, a row of its own.
    fn judge_part(
        &mut self,
        now: Now,
        index: usize,
        name: String,
        outcome: Outcome,
        records: &mut Vec<Record>,
    ) {
        let judged = self.judges(index, &outcome);
        let spec = &self.specs[index];
        let id = part_id(&spec.id, &name);
        let live = &mut self.table[index];
        let position = match live.parts.iter().position(|(part, _)| *part == name) {
            Some(position) => position,
            None => {
                // A check seen before a restart carries on from its saved state.
                let restored = self.restored_parts.remove(&id);
                let thresholds = service::part_thresholds(&spec.thresholds);
                live.parts
                    .push((name, restored_live(&thresholds, restored.as_ref(), now)));
                live.parts.len() - 1
            }
        };
        live.parts[position]
            .1
            .take(judged, &id, now, outcome, &self.metrics, records);
    }

    /// After target `index` was judged: see whether isolation changed, fill in what root
    /// cause says of each transition, release what a root coming back unblocks, and queue
    /// the step's records in order.
    ///
    /// `may_act` false (a failure an unauthenticated HTTP ping reported) keeps recovery from
    /// acting on what the step judged, unless the target serves again.
    fn finish(&mut self, now: Now, index: usize, records: Vec<Record>, may_act: bool) {
        let isolation = self.update_isolation(index, now.wall);
        for record in records {
            let Record::Transition(mut transition) = record else {
                self.records.push_back(record);
                continue;
            };
            let target = self.index_of(&transition.target);
            transition.blocked_by = match target {
                Some(target) => self.roots(target).into_iter().next().or_else(|| {
                    (self.isolated && self.topology.is_canary(target)).then(|| "monitor".into())
                }),
                // A service's own check: not in the dependency graph.
                None => None,
            };
            if transition.blocked_by.is_none()
                && let Some(target) = target
            {
                transition.dependents = self.blocked_dependents_of(target);
            }
            transition.act =
                (may_act && transition.blocked_by.is_none()) || transition.to.is_serving();
            let unblocked = match target {
                Some(target) if transition.to.is_serving() => self.unblocked_dependents_of(target),
                _ => Vec::new(),
            };
            self.records.push_back(Record::Transition(transition));
            self.records.extend(
                unblocked
                    .into_iter()
                    .map(|(target, state)| Record::Unblocked { target, state }),
            );
        }
        self.records.extend(isolation);
    }

    /// The fleet's check metrics (durations, results by kind), for `/metrics`.
    pub fn check_metrics(&self) -> &CheckMetrics {
        &self.metrics
    }

    pub fn specs(&self) -> &[TargetSpec] {
        &self.specs
    }

    /// The specs, shared (the driver keeps them to run checks outside the lock).
    pub fn shared_specs(&self) -> Arc<[TargetSpec]> {
        Arc::clone(&self.specs)
    }

    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    pub fn index_of_ping(&self, ping_id: &str) -> Option<usize> {
        self.by_ping.get(ping_id).copied()
    }
}

fn new_live(spec: &TargetSpec, restored: Option<&Restored>, now: Now) -> Live {
    let detector = match &spec.mode {
        Mode::Passive { expectation, .. } => Some(expectation.detector(now.mono, now.wall)),
        Mode::Active { .. } | Mode::Service { .. } => None,
    };
    Live {
        detector,
        confirmer: confirm::confirmer_for(spec),
        ..restored_live(&spec.thresholds, restored, now)
    }
}

/// A target's live entry with no detector: fresh, or carrying on from `restored`.
fn restored_live(thresholds: &Thresholds, restored: Option<&Restored>, now: Now) -> Live {
    let machine = match restored {
        Some(saved) => {
            // Monotonic "since" from the saved wall time: as long ago as it was then.
            let since = saved.since.map(|since| {
                let ago = now.wall.duration_since(since).unwrap_or_default();
                now.mono.checked_sub(ago).unwrap_or(now.mono)
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
        None => Machine::new(thresholds.clone()),
    };
    // Thresholds are validated with the config; fall back to defaults rather than panic.
    let machine = machine
        .or_else(|_| Machine::new(Thresholds::default()))
        .expect("default thresholds are valid");
    Live {
        since_wall: restored.and_then(|saved| saved.since),
        paused: restored.is_some_and(|saved| saved.paused),
        // Bounded as new windows are: an earlier version stored any end it was given.
        maintenance_until: flags::bounded(
            restored.and_then(|saved| saved.maintenance_until),
            now.wall,
        ),
        ..Live::new(machine, now.mono)
    }
}

/// The outcome of a silence of `silent_for` at `wall`.
fn overdue(wall: SystemTime, silent_for: Duration) -> Outcome {
    Outcome::new(Kind::Fail, wall, Duration::ZERO)
        .with_output(format!("no heartbeat for {}", silence(silent_for)))
}

/// A silence as people read it: whole seconds from a second on, milliseconds below (a 100 ms
/// heartbeat's silence of 300 ms is not "0s").
fn silence(silent_for: Duration) -> String {
    if silent_for < Duration::from_secs(1) {
        format!("{}ms", silent_for.as_millis())
    } else {
        humantime::format_duration(Duration::from_secs(silent_for.as_secs())).to_string()
    }
}
