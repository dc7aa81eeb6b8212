//! A new set of targets for a running fleet: [`Fleet::apply`], what a configuration reload
//! and target discovery both come down to.
//!
//! Targets are matched by id:
//! - **unchanged** ([`Desired::Unchanged`]) keep everything: state machine and counters,
//!   flap history, last result, heartbeat detector and deadline, pending check, flags, their
//!   service checks, and their ping id;
//! - **changed** (a [`Desired::Spec`] whose id is watched) keep what history says about them —
//!   their state and since, flags (pause, maintenance), last result, their service checks'
//!   rows — and start again what belonged to the old definition: the state machine's
//!   counters and windows (new thresholds), the heartbeat detector (a new expectation), the
//!   schedule (checked at once), and any check still in flight of the old definition is
//!   dropped when it comes back. A mark in the timeline says so;
//! - **added** start as at start-up: from their saved state if the store has one (a target
//!   that comes back keeps its history and carries on from where it was), else unknown;
//! - **removed** leave the table after a mark in their timeline and a [`Record::Retired`],
//!   which tells what keeps per-target state elsewhere (alert tracks and groups, recovery
//!   budgets) to forget them. Their history stays in the store; their metric series go.
//!
//! A flapping heartbeat's held changes are handed out before its target changes or goes, so
//! the stored chain of states stays unbroken. The dependency graph, canaries and isolation are
//! worked out again from the new topology.
//!
//! What it is not: a diff of configurations. The caller says which targets are unchanged
//! (the monitor compares its configured targets); the fleet cannot compare probes.

use std::collections::{HashMap, HashSet};

use vitals_core::machine::{Machine, Saved, Thresholds};

use super::live::Live;
use super::timers::{Entry, Kind};
use super::topology::Resolved;
use super::views::part_id;
use super::{Fleet, Now, new_live};
use crate::record::{Record, TimelineState};
use crate::spec::{Mode, Restored, TargetSpec, Topology};

/// One target of the set to watch.
#[derive(Debug, Clone)]
pub enum Desired {
    /// The target of this id, as it is watched now: nothing about it changed.
    Unchanged(String),
    /// A target as it is to be watched: new, or a new definition of a watched id.
    Spec(TargetSpec),
}

impl Desired {
    fn id(&self) -> &str {
        match self {
            Desired::Unchanged(id) => id,
            Desired::Spec(spec) => &spec.id,
        }
    }
}

/// What [`Fleet::apply`] did, by target id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

/// What becomes of a watched target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Kept,
    Changed,
    Removed,
}

impl Fleet {
    /// Watch `desired` from `now` on, in that order, with `topology`; added targets carry on
    /// from `restored` states (by id, a service's checks as `<id>/<check>`), as at start-up.
    /// See the module docs for what each kind of change keeps. A repeated id counts once (the
    /// first); an [`Desired::Unchanged`] id the fleet does not watch is ignored.
    pub fn apply(
        &mut self,
        now: Now,
        desired: Vec<Desired>,
        topology: &Topology,
        restored: &HashMap<String, Restored>,
    ) -> Applied {
        let mut seen = HashSet::with_capacity(desired.len());
        let desired: Vec<Desired> = desired
            .into_iter()
            .filter(|want| seen.insert(want.id().to_owned()))
            .filter(|want| match want {
                Desired::Unchanged(id) => {
                    let known = self.by_id.contains_key(id);
                    if !known {
                        tracing::warn!(target = %id, "an unchanged target the fleet does not watch; ignored");
                    }
                    known
                }
                Desired::Spec(_) => true,
            })
            .collect();
        let mut fates = vec![Fate::Removed; self.table.len()];
        for want in &desired {
            if let Some(&index) = self.by_id.get(want.id()) {
                fates[index] = match want {
                    Desired::Unchanged(_) => Fate::Kept,
                    Desired::Spec(_) => Fate::Changed,
                };
            }
        }
        // What the old definitions still hold goes out under them, in order.
        for (index, fate) in fates.iter().enumerate() {
            if *fate != Fate::Kept {
                self.flush_held(now, index);
            }
        }
        let mut applied = Applied::default();
        for (index, fate) in fates.iter().enumerate() {
            let id = &self.specs[index].id;
            let state = TimelineState::Judged(self.table[index].machine.state());
            let reason = match fate {
                Fate::Kept => continue,
                Fate::Changed => {
                    applied.changed.push(id.clone());
                    "its definition changed (configuration reload): checks and counters start again"
                }
                Fate::Removed => {
                    applied.removed.push(id.clone());
                    "removed from the configuration: no longer watched"
                }
            };
            self.records.push_back(Record::Marker {
                target: id.clone(),
                at: now.wall,
                from: state,
                to: state,
                reason: reason.to_owned(),
            });
            if *fate == Fate::Removed {
                tracing::info!(target = %id, "target removed by a reload; its history is kept");
                let parts: Vec<String> = self.table[index]
                    .parts
                    .iter()
                    .map(|(name, _)| part_id(id, name))
                    .collect();
                for target in std::iter::once(id.clone()).chain(parts) {
                    self.metrics.forget(&target);
                    self.records.push_back(Record::Retired { target });
                }
            }
        }

        // The new table, in the desired order.
        let old_specs: Vec<TargetSpec> = self.specs.to_vec();
        let mut old_table: Vec<Option<Live>> = std::mem::take(&mut self.table)
            .into_iter()
            .map(Some)
            .collect();
        let mut moved: Vec<Option<usize>> = vec![None; old_table.len()];
        // Per new index: whether its schedule starts afresh (added or changed).
        let mut fresh = Vec::with_capacity(desired.len());
        let mut specs = Vec::with_capacity(desired.len());
        let mut table = Vec::with_capacity(desired.len());
        for want in desired {
            let old = self.by_id.get(want.id()).copied();
            let taken = old.and_then(|index| old_table[index].take().map(|live| (index, live)));
            let new_index = table.len();
            match (want, taken) {
                (Desired::Unchanged(_), Some((index, live))) => {
                    moved[index] = Some(new_index);
                    specs.push(old_specs[index].clone());
                    table.push(live);
                    fresh.push(false);
                    applied.unchanged += 1;
                }
                (Desired::Unchanged(_), None) => {} // filtered out above
                (Desired::Spec(spec), Some((index, live))) => {
                    moved[index] = Some(new_index);
                    self.incarnations += 1;
                    table.push(rework(live, &spec, self.incarnations, now));
                    specs.push(spec);
                    fresh.push(true);
                }
                (Desired::Spec(spec), None) => {
                    self.incarnations += 1;
                    let live = Live {
                        incarnation: self.incarnations,
                        ..new_live(&spec, restored.get(&spec.id), now)
                    };
                    let prefix = format!("{}/", spec.id);
                    self.restored_parts.extend(
                        restored
                            .iter()
                            .filter(|(id, _)| id.starts_with(&prefix))
                            .map(|(id, saved)| (id.clone(), saved.clone())),
                    );
                    applied.added.push(spec.id.clone());
                    tracing::info!(target = %spec.id, "target added by a reload");
                    specs.push(spec);
                    table.push(live);
                    fresh.push(true);
                }
            }
        }

        self.by_id = specs
            .iter()
            .enumerate()
            .map(|(index, spec)| (spec.id.clone(), index))
            .collect();
        self.by_ping = specs
            .iter()
            .enumerate()
            .filter_map(|(index, spec)| match &spec.mode {
                Mode::Passive { ping_id, .. } => Some((ping_id.clone(), index)),
                Mode::Active { .. } | Mode::Service { .. } => None,
            })
            .collect();
        self.by_incarnation = Some(
            table
                .iter()
                .enumerate()
                .map(|(index, live)| (live.incarnation, index))
                .collect(),
        );
        let ids: Vec<&str> = specs.iter().map(|spec| spec.id.as_str()).collect();
        self.topology = Resolved::new(topology, &ids);
        self.specs = specs.into();
        self.table = table;

        // Pending entries follow their targets; a changed target's old check and deadline
        // give way to fresh ones (deadlines and held windows are dropped by generation).
        self.timers.remap(|entry| {
            let index = moved[entry.index]?;
            (!(fresh[index] && entry.kind == Kind::Check)).then_some(Entry { index, ..entry })
        });
        let checks = std::mem::take(&mut self.checks);
        self.checks = checks
            .into_iter()
            .filter_map(|mut due| {
                let index = moved[due.index]?;
                due.index = index;
                (!fresh[index]).then_some(due)
            })
            .collect();
        for (index, _) in fresh.iter().enumerate().filter(|(_, fresh)| **fresh) {
            match self.specs[index].mode {
                Mode::Active { .. } | Mode::Service { .. } => {
                    self.timers.push(Entry::check(now.mono, index));
                }
                Mode::Passive { .. } => self.arm_deadline(index),
            }
            if let Some(until) = self.table[index].maintenance_until {
                self.timers
                    .push(Entry::maintenance_end(now.mono_at(until), index, until));
            }
        }
        let isolation = self.refresh_isolation(now.wall);
        self.records.extend(isolation);
        applied
    }
}

/// A watched target's live entry under a new definition `spec`: what the old definition
/// counted starts again, what history says stays (see the module docs).
fn rework(mut live: Live, spec: &TargetSpec, incarnation: u64, now: Now) -> Live {
    let saved = live.machine.saved();
    let restart = Saved {
        consecutive_failures: 0,
        consecutive_successes: 0,
        ..saved
    };
    // Thresholds are validated with the config; fall back to defaults rather than panic.
    live.machine = Machine::restore(spec.thresholds.clone(), restart)
        .or_else(|_| Machine::restore(Thresholds::default(), restart))
        .or_else(|_| Machine::new(Thresholds::default()))
        .expect("default thresholds are valid");
    live.incarnation = incarnation;
    live.detector = match &spec.mode {
        Mode::Passive { expectation, .. } => Some(expectation.detector(now.mono, now.wall)),
        Mode::Active { .. } | Mode::Service { .. } => None,
    };
    live.confirmer = super::confirm::confirmer_for(spec);
    // Stale deadline and held-window entries are dropped by generation.
    live.timer_generation += 1;
    live.collapse_generation += 1;
    live.armed = None;
    live.held = None;
    live.started = None;
    live.last_beat = None;
    live.created = now.mono;
    live
}
