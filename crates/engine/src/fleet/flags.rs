//! An operator's flags on a target: pause (checks and deadlines stop) and maintenance (checks
//! go on, failures are expected). Each change is a [`Record::Flags`] for storage and, when a
//! span starts or ends, a [`Record::Marker`] in the target's timeline, so uptime can leave the
//! span out. A maintenance window ends by itself at its end time.
//!
//! What it is not: alerting policy (the notifier reads the flags) or scheduling of checks.

use std::time::{Duration, SystemTime};

use super::timers::Entry;
use super::views::view;
use super::{Fleet, Now, TargetView};
use crate::record::{Record, TimelineState};

/// The longest maintenance window: a year and a day. A longer one is cut to it (the API
/// refuses it first): an end past the year 9999 could not be written as a date, and a huge
/// one overflowed the clock's arithmetic (issue 11, item 6).
pub const MAX_MAINTENANCE: Duration = Duration::from_secs(366 * 86_400);

/// `until`, if still ahead of `now`, cut to [`MAX_MAINTENANCE`] from it.
pub(super) fn bounded(until: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    let until = until.filter(|until| *until > now)?;
    Some(match now.checked_add(MAX_MAINTENANCE) {
        Some(latest) => until.min(latest),
        None => until,
    })
}

/// What an operator asks of one target (by index, see [`Fleet::index_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Pause (checks and deadlines stop) or resume.
    Pause { target: usize, paused: bool },
    /// Maintenance until `until` (None, or a time past, ends it). Checks go on and are
    /// recorded; the flag tells alerting and people that failures are expected.
    Maintenance {
        target: usize,
        until: Option<SystemTime>,
    },
}

impl Fleet {
    /// Apply `command` at `now`; the target as it then looks, or None for an unknown index.
    pub fn handle_command(&mut self, now: Now, command: Command) -> Option<TargetView> {
        match command {
            Command::Pause { target, paused } => {
                let live = self.table.get_mut(target)?;
                let was = std::mem::replace(&mut live.paused, paused);
                let shown = view(&self.specs[target], live);
                self.records.push_back(flags(&shown));
                if was != paused {
                    let reason = if paused {
                        "paused by an operator"
                    } else {
                        "resumed by an operator"
                    };
                    let mark = marker(&shown, TimelineState::Paused, paused, now.wall, reason);
                    self.records.push_back(mark);
                }
                Some(shown)
            }
            Command::Maintenance { target, until } => {
                let until = bounded(until, now.wall);
                let live = self.table.get_mut(target)?;
                let was = std::mem::replace(&mut live.maintenance_until, until);
                let shown = view(&self.specs[target], live);
                self.records.push_back(flags(&shown));
                match (was.is_some(), until) {
                    (false, Some(until)) => {
                        let reason = format!(
                            "maintenance until {}",
                            humantime::format_rfc3339_seconds(until)
                        );
                        let mark =
                            marker(&shown, TimelineState::Maintenance, true, now.wall, &reason);
                        self.records.push_back(mark);
                    }
                    (true, None) => {
                        let mark = marker(
                            &shown,
                            TimelineState::Maintenance,
                            false,
                            now.wall,
                            "maintenance ended",
                        );
                        self.records.push_back(mark);
                    }
                    _ => {}
                }
                if let Some(until) = until {
                    let due = now.mono_at(until);
                    self.timers.push(Entry::maintenance_end(due, target, until));
                }
                Some(shown)
            }
        }
    }

    /// Target `index`'s maintenance window ending at `until` came due: end it, unless it was
    /// changed meanwhile.
    pub(super) fn maintenance_due(&mut self, index: usize, until: SystemTime) {
        let live = &mut self.table[index];
        if live.maintenance_until != Some(until) {
            return;
        }
        live.maintenance_until = None;
        let shown = view(&self.specs[index], live);
        self.records.push_back(flags(&shown));
        let over = marker(
            &shown,
            TimelineState::Maintenance,
            false,
            until,
            "maintenance window over",
        );
        self.records.push_back(over);
    }
}

fn flags(view: &TargetView) -> Record {
    Record::Flags {
        target: view.id.clone(),
        paused: view.paused,
        maintenance_until: view.maintenance_until,
    }
}

/// The timeline mark of `span` (paused, maintenance) starting or ending now.
fn marker(
    view: &TargetView,
    span: TimelineState,
    starts: bool,
    at: SystemTime,
    reason: &str,
) -> Record {
    let state = TimelineState::Judged(view.state);
    let (from, to) = if starts { (state, span) } else { (span, state) };
    Record::Marker {
        target: view.id.clone(),
        at,
        from,
        to,
        reason: reason.to_string(),
    }
}
