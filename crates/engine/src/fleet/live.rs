//! One target's live state: its state machine, its latest outcome, its heartbeat detector and
//! its flags, and the one function that applies an outcome to it.

use std::time::{Duration, Instant, SystemTime};

use vitals_core::Cadence;
use vitals_core::detector::Detector;
use vitals_core::machine::{EventKind, Machine, State};
use vitals_core::{Confirmer, Kind, Outcome};

use crate::metrics::{CheckMetrics, TargetMetrics};
use crate::record::{Record, Transition};

/// The least time between two stored passing beats of one heartbeat target.
pub(crate) const KEEP_BEATS_EVERY: Duration = Duration::from_secs(1);

/// Mutable state of one target. Lives in the engine's table, behind its lock.
pub(crate) struct Live {
    /// Which watch of the target this is: new with each definition (a reload that changes
    /// it makes a new one), so a check of the old definition still in flight is recognised
    /// and dropped. Unique in the fleet's lifetime; 0 for a service's own checks.
    pub(crate) incarnation: u64,
    pub(crate) machine: Machine,
    pub(crate) last: Option<Outcome>,
    /// Wall time the current state was entered, for people and the API.
    pub(crate) since_wall: Option<SystemTime>,
    pub(crate) detector: Option<Box<dyn Detector + Send>>,
    /// The second level of a heartbeat target with a `confirm` address.
    pub(crate) confirmer: Option<Confirmer>,
    /// Bumped whenever the target's pending deadline is superseded (a heartbeat brought it
    /// forward), so stale timer entries are dropped.
    pub(crate) timer_generation: u64,
    /// When the pending deadline entry is due, if one is. A heartbeat that moves the
    /// deadline later leaves it there: when it fires, it is moved on (one entry per target,
    /// not one per beat).
    pub(crate) armed: Option<Instant>,
    pub(crate) paused: bool,
    /// Whether an active target has moved to its own phase of the interval (see
    /// `Fleet::schedule_check`).
    pub(crate) phased: bool,
    pub(crate) maintenance_until: Option<SystemTime>,
    /// When a heartbeat job said `/start`, to measure its run.
    pub(crate) started: Option<(Instant, Option<String>)>,
    /// When the latest heartbeat arrived (passive targets).
    pub(crate) last_beat: Option<Instant>,
    /// When the engine started watching, to say how long a never-heard target was silent.
    pub(crate) created: Instant,
    /// Made with the first result (see [`CheckMetrics`]).
    pub(crate) metrics: Option<Box<TargetMetrics>>,
    /// A service target's own checks, by name, as rows of their own (see `service`).
    pub(crate) parts: Vec<(String, Live)>,
    /// When a result of this target was last handed to storage (see [`Live::keep`]).
    pub(crate) result_kept: Option<Instant>,
    /// A flapping heartbeat's state changes not handed out yet (see `collapse`).
    pub(crate) held: Option<super::collapse::Held>,
    /// Bumped with each window of held changes, so a stale window's timer is dropped.
    pub(crate) collapse_generation: u64,
}

impl Live {
    /// A target never heard of yet, watched from `now`.
    pub(crate) fn new(machine: Machine, now: Instant) -> Live {
        Live {
            incarnation: 0,
            machine,
            last: None,
            since_wall: None,
            detector: None,
            confirmer: None,
            timer_generation: 0,
            armed: None,
            paused: false,
            phased: false,
            maintenance_until: None,
            started: None,
            last_beat: None,
            created: now,
            metrics: None,
            parts: Vec::new(),
            result_kept: None,
            held: None,
            collapse_generation: 0,
        }
    }

    /// Judge one outcome with the state machine and keep it; push what must be stored to
    /// `records`.
    pub(crate) fn apply(
        &mut self,
        target: &str,
        now: Instant,
        wall: SystemTime,
        outcome: Outcome,
        metrics: &CheckMetrics,
        records: &mut Vec<Record>,
    ) {
        self.machine.handle_outcome(now, &outcome);
        self.judged(target, now, wall, outcome, metrics, records);
    }

    /// After the machine judged `outcome` (by [`Live::apply`], or as a confirmed death,
    /// `Machine::handle_confirmed_down`): its events as records, and the outcome kept.
    pub(crate) fn judged(
        &mut self,
        target: &str,
        now: Instant,
        wall: SystemTime,
        outcome: Outcome,
        metrics: &CheckMetrics,
        records: &mut Vec<Record>,
    ) {
        while let Some(event) = self.machine.poll_event() {
            match event.kind {
                EventKind::Transition { from, to } => {
                    self.since_wall = Some(wall);
                    tracing::info!(target = %target, from = from.as_str(), to = to.as_str(), reason = %event.reason, "target changed state");
                    // Root cause and recovery gating are filled in once the whole step is
                    // judged (`Fleet::finish`).
                    records.push(Record::Transition(Transition {
                        target: target.to_string(),
                        at: wall,
                        from,
                        to,
                        reason: event.reason,
                        cause: event.cause,
                        saved: self.machine.saved(),
                        blocked_by: None,
                        dependents: Vec::new(),
                        act: false,
                    }));
                }
                EventKind::FlappingStarted | EventKind::FlappingStopped => {
                    tracing::warn!(target = %target, reason = %event.reason, "flapping changed");
                    records.push(Record::Flapping {
                        target: target.to_string(),
                        state: self.machine.state(),
                        flapping: matches!(event.kind, EventKind::FlappingStarted),
                        reason: event.reason,
                    });
                }
            }
        }
        self.keep(target, now, outcome, metrics, records);
    }

    /// [`Live::apply`] when `judged`, else [`Live::keep`] (the monitor is isolated and this is
    /// a failure of a target that is not a canary).
    pub(crate) fn take(
        &mut self,
        judged: bool,
        target: &str,
        now: crate::clock::Now,
        outcome: Outcome,
        metrics: &CheckMetrics,
        records: &mut Vec<Record>,
    ) {
        if judged {
            self.apply(target, now.mono, now.wall, outcome, metrics, records);
        } else {
            self.keep(target, now.mono, outcome, metrics, records);
        }
    }

    /// Count, store and show an outcome without judging it (the monitor is isolated: the
    /// state stays as it was).
    ///
    /// A heartbeat target's passing beats are stored at most one a second
    /// ([`KEEP_BEATS_EVERY`]): a sender beating a hundred times a second says nothing new
    /// with each beat, and the history (rollups, uptime) needs no more. Failures, warnings
    /// and every active check's result are all stored.
    pub(crate) fn keep(
        &mut self,
        target: &str,
        now: Instant,
        outcome: Outcome,
        metrics: &CheckMetrics,
        records: &mut Vec<Record>,
    ) {
        self.metrics
            .get_or_insert_with(|| metrics.target(target))
            .count(outcome.kind);
        let routine_beat = self.detector.is_some()
            && outcome.kind == Kind::Pass
            && self
                .result_kept
                .is_some_and(|kept| now.saturating_duration_since(kept) < KEEP_BEATS_EVERY);
        if !routine_beat {
            self.result_kept = Some(now);
            let mut kept = outcome.clone();
            if kept.kind == Kind::Pass {
                kept.output = None;
            }
            records.push(Record::Result {
                target: target.to_string(),
                outcome: kept,
            });
        }
        self.last = Some(outcome);
    }

    /// When the heartbeat detector next turns suspicious, if it ever will.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.detector
            .as_ref()
            .and_then(|detector| detector.poll_timeout())
    }

    /// How long until the next active check: faster while the state is changing, slower
    /// while down.
    pub(crate) fn next_interval(&self, cadence: &Cadence) -> Duration {
        match self.machine.state() {
            State::Failing | State::Recovering => cadence.interval_changing,
            State::Unknown if self.machine.consecutive_failures() > 0 => cadence.interval_changing,
            State::Down => cadence.interval_down,
            _ => cadence.interval,
        }
    }
}
