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
//! What it is not: alerting. The engine marks blocked targets and isolation; the notifier
//! decides who hears about it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use vitals_core::graph::Graph;
use vitals_core::machine::State;
use vitals_core::{Outcome, Status};

use super::live::Live;
use super::{Engine, Record};

/// Dependencies and canaries by target id, as configured.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Target id → ids it depends on.
    pub depends_on: HashMap<String, Vec<String>>,
    /// Ids of the canary targets.
    pub canaries: Vec<String>,
}

/// [`Topology`] resolved to table indices.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    pub(crate) graph: Graph,
    pub(crate) canaries: Vec<usize>,
    pub(crate) is_canary: Vec<bool>,
}

impl Resolved {
    /// Resolve `topology` against target ids in table order. Unknown ids are ignored and a
    /// cycle leaves the graph empty (the config refuses both before this is reached).
    pub(crate) fn new(topology: &Topology, ids: &[&str]) -> Resolved {
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

    pub(crate) fn is_canary(&self, index: usize) -> bool {
        self.is_canary.get(index).copied().unwrap_or(false)
    }

    /// Isolated: there are canaries and every one of them is impaired.
    pub(crate) fn isolated(&self, state_of: impl Fn(usize) -> State) -> bool {
        !self.canaries.is_empty() && self.canaries.iter().all(|&c| impaired(state_of(c)))
    }
}

/// Impaired: failing, unhealthy or down. What root-cause analysis and isolation look at.
pub(crate) fn impaired(state: State) -> bool {
    matches!(state, State::Failing | State::Unhealthy | State::Down)
}

impl Engine {
    /// Whether `outcome` of target `index` may change its state: not a failure of a
    /// non-canary while the monitor is isolated.
    pub(super) fn judges(&self, index: usize, outcome: &Outcome) -> bool {
        !(self.is_isolated()
            && !self.shared.topology.is_canary(index)
            && outcome.kind.status() == Status::Fail)
    }

    /// After target `index` was judged: when it is a canary, see whether the monitor became
    /// isolated or stopped being so.
    pub(super) fn update_isolation(
        &self,
        index: usize,
        table: &[Live],
        wall: SystemTime,
        records: &mut Vec<Record>,
    ) {
        let topology = &self.shared.topology;
        if !topology.is_canary(index) {
            return;
        }
        let isolated = topology.isolated(|canary| table[canary].machine.state());
        if self.shared.isolated.swap(isolated, Ordering::SeqCst) == isolated {
            return;
        }
        let canaries: Vec<String> = topology
            .canaries
            .iter()
            .map(|&canary| self.shared.specs[canary].id.clone())
            .collect();
        if isolated {
            tracing::warn!(
                ?canaries,
                "every canary is failing: the monitor is isolated; failures of other targets are recorded but not judged"
            );
        } else {
            tracing::info!(
                ?canaries,
                "a canary answers again: the monitor is no longer isolated"
            );
        }
        records.push(Record::Isolation {
            isolated,
            at: wall,
            canaries,
        });
    }

    /// Whether every canary is impaired (see [`Topology`]).
    pub fn is_isolated(&self) -> bool {
        self.shared.isolated.load(Ordering::SeqCst)
    }

    /// Whether target `id` is one of the canaries.
    pub fn is_canary(&self, id: &str) -> bool {
        self.index_of(id)
            .is_some_and(|index| self.shared.topology.is_canary(index))
    }

    /// The roots that explain target `id`'s trouble (see [`vitals_core::graph`]): empty when
    /// it is not impaired, or impaired on its own account.
    pub fn blocked_by(&self, id: &str) -> Vec<String> {
        let Some(index) = self.index_of(id) else {
            return Vec::new();
        };
        let table = self.lock();
        self.roots(index, &table)
    }

    /// The impaired targets whose trouble target `id` explains, for its alert.
    pub fn blocked_dependents(&self, id: &str) -> Vec<String> {
        let Some(index) = self.index_of(id) else {
            return Vec::new();
        };
        let table = self.lock();
        if !impaired(table[index].machine.state()) {
            return Vec::new();
        }
        self.shared
            .topology
            .graph
            .blocked_by(index, |i| impaired(table[i].machine.state()))
            .into_iter()
            .map(|i| self.shared.specs[i].id.clone())
            .collect()
    }

    /// Targets that depend on `id` (directly or further), are impaired, and are blocked by
    /// nothing now, with their states: what is left failing on its own account once `id`
    /// is back. Their trouble was not acted on while it was `id`'s doing.
    pub fn unblocked_dependents(&self, id: &str) -> Vec<(String, State)> {
        let Some(index) = self.index_of(id) else {
            return Vec::new();
        };
        let table = self.lock();
        let graph = &self.shared.topology.graph;
        let mut seen = vec![false; table.len()];
        let mut stack: Vec<usize> = graph.needed_by(index).to_vec();
        let mut found = Vec::new();
        while let Some(node) = stack.pop() {
            if std::mem::replace(&mut seen[node], true) {
                continue;
            }
            stack.extend_from_slice(graph.needed_by(node));
            let state = table[node].machine.state();
            if impaired(state) && self.roots(node, &table).is_empty() {
                found.push((self.shared.specs[node].id.clone(), state));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    pub(super) fn roots(&self, index: usize, table: &[Live]) -> Vec<String> {
        if !impaired(table[index].machine.state()) {
            return Vec::new();
        }
        self.shared
            .topology
            .graph
            .roots_of(index, |i| impaired(table[i].machine.state()))
            .into_iter()
            .map(|i| self.shared.specs[i].id.clone())
            .collect()
    }
}
