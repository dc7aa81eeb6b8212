//! Two-level detection for targets with a `confirm` address (issue 15).
//!
//! When the heartbeat detector suspects such a target, its silence is not judged as a
//! failure: the fleet asks the driver for a confirmation ([`Fleet::poll_confirm`]), and what
//! the core's `Confirmer` concludes from the answer ([`Fleet::handle_confirmation`]) is what
//! the state machine is fed: confirmed dead → down at once (alert, recovery); stalled or
//! unreachable → warn (degraded), a failure once it lasts; merely suspected → nothing. While
//! suspected the target is asked again every period, so a process that dies during a stall
//! is confirmed then. A heartbeat ends it all: alive.
//!
//! An active target with a `confirm` address is suspected by its failing checks: the first
//! failure asks for a confirmation (again at most once per interval while they fail), and a
//! refusal takes it down at once instead of after `down_after` failures. An answer changes
//! nothing there: the checks go on judging it; a passing check ends the suspicion.
//!
//! What it is not: the prober (the driver runs `vitals_probes::Confirm`) or the rules (the
//! core's `confirm` module has them, with their property tests).

use std::time::{Duration, Instant};

use vitals_core::{ConfirmConfig, Confirmer, Evidence, Judgement, Kind, Outcome};

use super::timers::recheck_after;
use super::{Fleet, Now};
use crate::spec::{Mode, TargetSpec};

/// A confirmation the driver should run now for target `index`; hand it back to
/// [`Fleet::handle_confirmation`] with the evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmDue {
    pub index: usize,
    /// When it was asked for: the evidence speaks to suspicions begun before.
    pub started: Instant,
    pub incarnation: u64,
    /// How long the driver may wait for an answer.
    pub within: Duration,
}

/// The second level of `spec`, if it has a `confirm` address: asked again every period
/// of a heartbeat target, at most once per check interval of an active one.
pub(super) fn confirmer_for(spec: &TargetSpec) -> Option<Confirmer> {
    match &spec.mode {
        Mode::Passive {
            confirm: Some(_),
            expectation,
            ..
        } => Some(Confirmer::new(ConfirmConfig::for_period(recheck_after(
            expectation,
            false,
        )))),
        Mode::Active {
            confirm: Some(_),
            cadence,
            ..
        } => Some(Confirmer::new(ConfirmConfig {
            reprobe: cadence.interval_changing.min(cadence.interval),
            lasting: Duration::MAX,
        })),
        _ => None,
    }
}

impl Fleet {
    /// An active target's check result, as the second level sees it: a failure is a
    /// suspicion (and may ask for a confirmation), a pass ends it.
    pub(super) fn suspect_by_check(&mut self, now: Now, index: usize, failed: bool) {
        let Some(confirmer) = self.table[index].confirmer.as_mut() else {
            return;
        };
        confirmer.handle_suspicion(now.mono, failed);
        if failed {
            self.ask_confirmation(now, index);
        }
    }

    /// The next confirmation to run, if any is due.
    pub fn poll_confirm(&mut self) -> Option<ConfirmDue> {
        self.confirms.pop_front()
    }

    /// The answer to the confirmation `due`, at `now`.
    pub fn handle_confirmation(&mut self, now: Now, due: ConfirmDue, evidence: Evidence) {
        let live = self.table.get_mut(due.index);
        let Some(live) = live.filter(|live| live.incarnation == due.incarnation) else {
            return; // a reload changed or moved the target meanwhile
        };
        let Some(confirmer) = live.confirmer.as_mut() else {
            return;
        };
        tracing::debug!(target = %self.specs[due.index].id, ?evidence, "confirmation answered");
        confirmer.handle_evidence(now.mono, due.started, evidence);
        self.judge_confirmation(now, due.index);
        self.ask_confirmation(now, due.index);
    }

    /// Start a confirmation of target `index` if its confirmer asks for one; returns when the
    /// confirmer next wants to be asked.
    pub(super) fn ask_confirmation(&mut self, now: Now, index: usize) -> Option<Instant> {
        let live = &mut self.table[index];
        let confirmer = live.confirmer.as_mut()?;
        if confirmer.poll_probe(now.mono) {
            let within = confirmer
                .config()
                .reprobe
                .clamp(Duration::from_millis(250), Duration::from_secs(5));
            self.confirms.push_back(ConfirmDue {
                index,
                started: now.mono,
                incarnation: live.incarnation,
                within,
            });
        }
        confirmer.poll_timeout()
    }

    /// Feed target `index`'s machine what its second level concludes at `now`.
    pub(super) fn judge_confirmation(&mut self, now: Now, index: usize) {
        let live = &mut self.table[index];
        let Some(confirmer) = live.confirmer.as_ref() else {
            return;
        };
        let judgement = confirmer.judgement(now.mono);
        let spec = &self.specs[index];
        let id = &spec.id;
        let mut records = Vec::with_capacity(2);
        // An active target's checks judge it; the confirmation only shortens the way down.
        let active = !matches!(spec.mode, Mode::Passive { .. });
        if live.paused {
            return; // a paused target is not judged, as its silence is not
        }
        match judgement {
            Judgement::Nothing => return,
            Judgement::Warn(_) | Judgement::Fail(_) if active => return,
            // Degraded already: a warning a period would only fill the store.
            Judgement::Warn(_) if live.machine.state() == vitals_core::State::Degraded => {
                return;
            }
            Judgement::Warn(text) => {
                let outcome = Outcome::new(Kind::Warn, now.wall, Duration::ZERO).with_output(text);
                live.apply(id, now.mono, now.wall, outcome, &self.metrics, &mut records);
            }
            Judgement::Fail(text) => {
                let outcome = Outcome::new(Kind::Fail, now.wall, Duration::ZERO).with_output(text);
                live.apply(id, now.mono, now.wall, outcome, &self.metrics, &mut records);
            }
            Judgement::Down(text) => {
                if live.machine.state() == vitals_core::State::Down {
                    return;
                }
                let outcome = Outcome::new(Kind::Fail, now.wall, Duration::ZERO).with_output(text);
                live.machine.handle_confirmed_down(now.mono, &outcome);
                live.judged(id, now.mono, now.wall, outcome, &self.metrics, &mut records);
            }
        }
        self.collapse(now, index, &mut records, true);
        self.finish(now, index, records, true);
    }
}
