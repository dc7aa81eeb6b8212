//! Targets as people and the API see them: [`TargetView`], one per target and one per check
//! of a service target (`<id>/<check>`, with `parent` set), with the root causes that block it.
//!
//! What it is not: a copy of the fleet's table; a view is made on each call.

use std::time::SystemTime;

use vitals_core::Outcome;
use vitals_core::machine::State;

use super::Fleet;
use super::live::Live;
use crate::spec::{Mode, TargetSpec};

/// One target as the API shows it.
#[derive(Debug, Clone)]
pub struct TargetView {
    pub id: String,
    pub name: String,
    /// For a service's own check: the service target it belongs to.
    pub parent: Option<String>,
    /// The roots that explain this target's trouble (see [`Fleet::blocked_by`]).
    pub blocked_by: Vec<String>,
    pub active: bool,
    pub state: State,
    pub since: Option<SystemTime>,
    pub flapping: bool,
    pub paused: bool,
    pub maintenance_until: Option<SystemTime>,
    pub last: Option<Outcome>,
}

impl Fleet {
    /// Every target as the API shows it, in configuration order; a service's checks follow
    /// it as rows of their own (`<id>/<check>`, with `parent` set).
    pub fn views(&self) -> Vec<TargetView> {
        let mut views = Vec::with_capacity(self.table.len());
        for (index, (spec, live)) in self.specs.iter().zip(&self.table).enumerate() {
            views.push(TargetView {
                blocked_by: self.roots(index),
                ..view(spec, live)
            });
            views.extend(
                live.parts
                    .iter()
                    .map(|(name, part)| part_view(spec, name, part)),
            );
        }
        views
    }

    /// One target, or one of a service's checks by `<id>/<check>`.
    pub fn view(&self, id: &str) -> Option<TargetView> {
        if let Some((parent, name)) = id.split_once('/') {
            let index = self.index_of(parent)?;
            let (name, part) = self.table[index]
                .parts
                .iter()
                .find(|(part, _)| part == name)?;
            return Some(part_view(&self.specs[index], name, part));
        }
        let index = self.index_of(id)?;
        Some(TargetView {
            blocked_by: self.roots(index),
            ..view(&self.specs[index], &self.table[index])
        })
    }
}

/// The id of check `name` of service target `parent`. Configured ids never hold a `/`.
pub(super) fn part_id(parent: &str, name: &str) -> String {
    format!("{parent}/{name}")
}

fn part_view(spec: &TargetSpec, name: &str, part: &Live) -> TargetView {
    TargetView {
        id: part_id(&spec.id, name),
        name: format!("{}: {name}", spec.name),
        parent: Some(spec.id.clone()),
        ..view(spec, part)
    }
}

pub(super) fn view(spec: &TargetSpec, live: &Live) -> TargetView {
    TargetView {
        id: spec.id.clone(),
        name: spec.name.clone(),
        parent: None,
        blocked_by: Vec::new(),
        active: !matches!(spec.mode, Mode::Passive { .. }),
        state: live.machine.state(),
        since: live.since_wall,
        flapping: live.machine.is_flapping(),
        paused: live.paused,
        maintenance_until: live.maintenance_until,
        last: live.last.clone(),
    }
}
