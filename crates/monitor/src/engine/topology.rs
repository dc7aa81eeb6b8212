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

use vitals_core::graph::Graph;
use vitals_core::machine::State;

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
