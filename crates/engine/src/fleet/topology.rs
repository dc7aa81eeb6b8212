//! What the engine knows about targets beyond each one alone: what each depends on (for
//! "blocked by <root>") and which targets are canaries (for telling "the monitor's network is
//! down" from "everything is down").
//!
//! Canaries are targets that should always answer from where the monitor runs (a gateway, a
//! DNS server, a well-known outside service). When every canary is impaired, the monitor is
//! **isolated**: failures it sees say more about its own network than about the targets, so
//! while isolated the engine records failing results of other targets but does not judge
//! them, and no target is declared unhealthy or down on that evidence. Passing results are
//! still judged, and heartbeats that do arrive still count.
//!
//! What it is not: alerting. The fleet marks blocked targets and isolation; the notifier
//! decides who hears about it.

use std::collections::HashMap;
use std::time::SystemTime;

use vitals_core::Outcome;
use vitals_core::graph::Graph;
use vitals_core::machine::State;

use vitals_core::Status;

use super::Fleet;
use crate::record::{Record, TimelineState};
use crate::spec::Topology;

/// [`Topology`] resolved to table indices.
#[derive(Debug, Default)]
pub(super) struct Resolved {
    pub(super) graph: Graph,
    pub(super) canaries: Vec<usize>,
    pub(super) is_canary: Vec<bool>,
}

impl Resolved {
    /// Resolve `topology` against target ids in table order. Unknown ids are ignored and a
    /// cycle leaves the graph empty (the config refuses both before this is reached).
    pub(super) fn new(topology: &Topology, ids: &[&str]) -> Resolved {
        let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let needs = ids
            .iter()
            .map(|id| {
                topology
                    .depends_on
                    .get(*id)
                    .map(|deps| {
                        deps.iter()
                            .filter_map(|d| index.get(d.as_str()).copied())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        let graph = Graph::new(needs).unwrap_or_else(|cycle| {
            tracing::error!(%cycle, "dependency cycle: root-cause analysis is off");
            Graph::default()
        });
        let canaries: Vec<usize> = topology
            .canaries
            .iter()
            .filter_map(|id| index.get(id.as_str()).copied())
            .collect();
        let mut is_canary = vec![false; ids.len()];
        for &canary in &canaries {
            is_canary[canary] = true;
        }
        Resolved {
            graph,
            canaries,
            is_canary,
        }
    }

    pub(super) fn is_canary(&self, index: usize) -> bool {
        self.is_canary.get(index).copied().unwrap_or(false)
    }

    /// Isolated: there are canaries and every one of them is impaired.
    pub(super) fn isolated(&self, state_of: impl Fn(usize) -> State) -> bool {
        !self.canaries.is_empty() && self.canaries.iter().all(|&c| impaired(state_of(c)))
    }
}

/// Impaired: failing, unhealthy or down. What root-cause analysis and isolation look at.
pub(super) fn impaired(state: State) -> bool {
    matches!(state, State::Failing | State::Unhealthy | State::Down)
}

impl Fleet {
    /// Whether `outcome` of target `index` may change its state: not a failure of a
    /// non-canary while the monitor is isolated.
    pub(super) fn judges(&self, index: usize, outcome: &Outcome) -> bool {
        !(self.isolated && !self.topology.is_canary(index) && outcome.kind.status() == Status::Fail)
    }

    /// After target `index` was judged: when it is a canary, see whether the monitor became
    /// isolated or stopped being so. The records to queue: a mark in each canary's timeline
    /// (its state left as it is, so uptime is not touched), then the isolation itself.
    pub(super) fn update_isolation(&mut self, index: usize, at: SystemTime) -> Vec<Record> {
        if !self.topology.is_canary(index) {
            return Vec::new();
        }
        self.refresh_isolation(at)
    }

    /// See whether the monitor is isolated now (after a reload changed the canaries, or a
    /// canary was judged); the records of a change, as [`Fleet::update_isolation`] says.
    pub(super) fn refresh_isolation(&mut self, at: SystemTime) -> Vec<Record> {
        let topology = &self.topology;
        let table = &self.table;
        let isolated = topology.isolated(|canary| table[canary].machine.state());
        if std::mem::replace(&mut self.isolated, isolated) == isolated {
            return Vec::new();
        }
        let canaries: Vec<String> = topology
            .canaries
            .iter()
            .map(|&canary| self.specs[canary].id.clone())
            .collect();
        let reason = if isolated {
            tracing::warn!(
                ?canaries,
                "every canary is failing: the monitor is isolated; failures of other targets are recorded but not judged"
            );
            "every canary is failing: the monitor is isolated"
        } else {
            tracing::info!(
                ?canaries,
                "a canary answers again: the monitor is no longer isolated"
            );
            "a canary answers again: the monitor is connected"
        };
        let mut records: Vec<Record> = topology
            .canaries
            .iter()
            .map(|&canary| {
                let state = TimelineState::Judged(self.table[canary].machine.state());
                Record::Marker {
                    target: self.specs[canary].id.clone(),
                    at,
                    from: state,
                    to: state,
                    reason: reason.to_string(),
                }
            })
            .collect();
        records.push(Record::Isolation {
            isolated,
            at,
            canaries,
            reason: reason.to_string(),
        });
        records
    }

    /// Whether every canary is impaired (see [`Topology`]).
    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// Whether target `id` is one of the canaries.
    pub fn is_canary(&self, id: &str) -> bool {
        self.index_of(id)
            .is_some_and(|index| self.topology.is_canary(index))
    }

    /// The roots that explain target `id`'s trouble (see [`vitals_core::graph`]): empty when
    /// it is not impaired, or impaired on its own account.
    pub fn blocked_by(&self, id: &str) -> Vec<String> {
        self.index_of(id)
            .map(|index| self.roots(index))
            .unwrap_or_default()
    }

    /// The impaired targets whose trouble target `id` explains, for its alert.
    pub fn blocked_dependents(&self, id: &str) -> Vec<String> {
        self.index_of(id)
            .map(|index| self.blocked_dependents_of(index))
            .unwrap_or_default()
    }

    pub(super) fn blocked_dependents_of(&self, index: usize) -> Vec<String> {
        let table = &self.table;
        if !impaired(table[index].machine.state()) {
            return Vec::new();
        }
        self.topology
            .graph
            .blocked_by(index, |i| impaired(table[i].machine.state()))
            .into_iter()
            .map(|i| self.specs[i].id.clone())
            .collect()
    }

    /// Targets that depend on `id` (directly or further), are impaired, and are blocked by
    /// nothing now, with their states: what is left failing on its own account once `id`
    /// is back. Their trouble was not acted on while it was `id`'s doing.
    pub fn unblocked_dependents(&self, id: &str) -> Vec<(String, State)> {
        self.index_of(id)
            .map(|index| self.unblocked_dependents_of(index))
            .unwrap_or_default()
    }

    pub(super) fn unblocked_dependents_of(&self, index: usize) -> Vec<(String, State)> {
        let graph = &self.topology.graph;
        let mut seen = vec![false; self.table.len()];
        let mut stack: Vec<usize> = graph.needed_by(index).to_vec();
        let mut found = Vec::new();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node], true) {
                continue;
            }
            stack.extend_from_slice(graph.needed_by(node));
            let state = self.table[node].machine.state();
            if impaired(state) && self.roots(node).is_empty() {
                found.push((self.specs[node].id.clone(), state));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    pub(super) fn roots(&self, index: usize) -> Vec<String> {
        let table = &self.table;
        if !impaired(table[index].machine.state()) {
            return Vec::new();
        }
        self.topology
            .graph
            .roots_of(index, |i| impaired(table[i].machine.state()))
            .into_iter()
            .map(|i| self.specs[i].id.clone())
            .collect()
    }
}
