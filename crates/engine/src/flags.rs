//! An operator's flags on a target: pause (checks and deadlines stop) and maintenance (checks
//! go on, failures are expected). Each change is a [`Record::Flags`] for storage and, when a
//! span starts or ends, a [`Record::Marker`] in the target's timeline, so uptime can leave the
//! span out. A maintenance window ends by itself at its end time.
//!
//! What it is not: alerting policy (the notifier reads the flags) or scheduling of checks.

use std::sync::Arc;
use std::time::SystemTime;

use super::views::view;
use super::{Engine, Record, TargetView};

impl Engine {
    /// Pause (checks and deadlines stop) or resume a target.
    pub fn set_paused(&self, id: &str, paused: bool) -> Option<TargetView> {
        let index = self.index_of(id)?;
        let (shown, was) = {
            let mut live = self.lock();
            let was = std::mem::replace(&mut live[index].paused, paused);
            (view(&self.shared.specs[index], &live[index]), was)
        };
        let mut records = vec![flags(&shown)];
        if was != paused {
            let reason = if paused {
                "paused by an operator"
            } else {
                "resumed by an operator"
            };
            records.push(marker(&shown, PAUSED, paused, SystemTime::now(), reason));
        }
        self.emit(records);
        Some(shown)
    }

    /// Put a target in maintenance until `until` (None, or a time past, ends it). Checks go
    /// on and are recorded; the flag tells alerting and people that failures are expected.
    /// The window ends by itself at `until`.
    pub fn set_maintenance(&self, id: &str, until: Option<SystemTime>) -> Option<TargetView> {
        let index = self.index_of(id)?;
        let wall = SystemTime::now();
        let until = until.filter(|until| *until > wall);
        let (shown, was) = {
            let mut live = self.lock();
            let was = std::mem::replace(&mut live[index].maintenance_until, until);
            (view(&self.shared.specs[index], &live[index]), was)
        };
        let mut records = vec![flags(&shown)];
        match (was.is_some(), until) {
            (false, Some(until)) => {
                let reason = format!(
                    "maintenance until {}",
                    humantime::format_rfc3339_seconds(until)
                );
                records.push(marker(&shown, MAINTENANCE, true, wall, &reason));
            }
            (true, None) => {
                records.push(marker(
                    &shown,
                    MAINTENANCE,
                    false,
                    wall,
                    "maintenance ended",
                ));
            }
            _ => {}
        }
        self.emit(records);
        if let Some(until) = until {
            self.end_maintenance_at(index, until);
        }
        Some(shown)
    }

    /// End target `index`'s maintenance at `until`, unless it was changed meanwhile.
    pub(super) fn end_maintenance_at(&self, index: usize, until: SystemTime) {
        let shared = Arc::downgrade(&self.shared);
        let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let engine = Engine { shared };
            let shown = {
                let mut live = engine.lock();
                if live[index].maintenance_until != Some(until) {
                    return;
                }
                live[index].maintenance_until = None;
                view(&engine.shared.specs[index], &live[index])
            };
            let over = marker(&shown, MAINTENANCE, false, until, "maintenance window over");
            engine.emit(vec![flags(&shown), over]);
        });
    }
}

const PAUSED: &str = "paused";
const MAINTENANCE: &str = "maintenance";

fn flags(view: &TargetView) -> Record {
    Record::Flags {
        target: view.id.clone(),
        paused: view.paused,
        maintenance_until: view.maintenance_until,
    }
}

/// The timeline mark of `span` (paused, maintenance) starting or ending now.
fn marker(view: &TargetView, span: &str, starts: bool, at: SystemTime, reason: &str) -> Record {
    let state = view.state.as_str().to_string();
    let (from, to) = if starts {
        (state, span.to_string())
    } else {
        (span.to_string(), state)
    };
    Record::Marker {
        target: view.id.clone(),
        at,
        from,
        to,
        reason: reason.to_string(),
    }
}
