//! The scheduler: one task per check, running it on its own interval, cutting it at its
//! deadline, feeding the outcome to the check's state machine and publishing the result.
//!
//! Checks never wait for each other: a hanging check is cancelled at its own timeout while
//! the others keep their schedule. Nothing here answers probe requests; they only read what
//! this publishes.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};
use tokio::time::Instant;
use vitals_core::machine::{EventKind, Machine, State};
use vitals_core::{Outcome, SplitMix64, Status};
use vitals_probes::RunEnd;

use crate::check::Check;
use crate::lifecycle::Phase;
use crate::metrics::Metrics;
use crate::snapshot::{Board, CheckSnapshot};

/// Everything one check's task needs.
pub(crate) struct Task {
    pub(crate) index: usize,
    pub(crate) check: Check,
    pub(crate) board: Arc<Board>,
    /// Notified to run now (a fresh read); `Notify` keeps at most one permit, so any number
    /// of concurrent fresh reads coalesce into one run.
    pub(crate) run_now: Arc<Notify>,
    /// A run asked for by a fresh read is skipped if the latest result is younger than this.
    pub(crate) fresh_min_interval: Duration,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) phase: watch::Receiver<Phase>,
}

impl Task {
    pub(crate) async fn run(mut self) {
        let mut machine = Machine::new(self.check.thresholds.clone())
            .expect("thresholds are validated before any task starts");
        let mut jitter = Jitter::new(self.check.jitter);
        let mut entry = CheckSnapshot::default();
        let mut next = Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.run_now.notified() => {
                    // A permit left over from a fresh read that arrived during the previous
                    // run: that run already answered it.
                    let recent = entry.recorded.is_some_and(|recorded| {
                        recorded.elapsed() < self.fresh_min_interval
                    });
                    if recent {
                        continue;
                    }
                }
                _ = self.phase.wait_for(|phase| *phase == Phase::Stopped) => return,
            }
            let started = Instant::now();
            let outcome = run_check(&self.check).await;
            let now = Instant::now();

            machine.handle_outcome(now.into_std(), &outcome);
            while let Some(event) = machine.poll_event() {
                match &event.kind {
                    EventKind::Transition { from, to } => {
                        // A check's first pass is what start-up is for, not news (issue 14).
                        if (*from, *to) == (State::Unknown, State::Healthy) {
                            tracing::debug!(check = %self.check.name, "check passed for the first time");
                        } else {
                            tracing::info!(
                                check = %self.check.name, from = from.as_str(), to = to.as_str(),
                                reason = %event.reason, "check changed state"
                            );
                        }
                        self.metrics.transition(self.index, *from, *to);
                    }
                    EventKind::FlappingStarted => {
                        tracing::warn!(check = %self.check.name, reason = %event.reason, "check is flapping");
                    }
                    EventKind::FlappingStopped => {
                        tracing::info!(check = %self.check.name, "check stopped flapping");
                    }
                }
            }
            self.metrics.outcome(self.index, &outcome, machine.state());

            if outcome.status() != Status::Fail {
                entry.last_success = Some(outcome.at);
            }
            if entry.state != machine.state() || entry.state_since.is_none() {
                entry.state_since = Some(now);
            }
            entry.state = machine.state();
            entry.flapping = machine.is_flapping();
            entry.outcome = Some(outcome);
            entry.recorded = Some(now);
            entry.runs += 1;
            self.board.publish(self.index, entry.clone());

            // Fixed rate from the start of the run, so a slow check does not drift; the
            // timeout is never longer than the interval, so `next` is not in the past by
            // more than scheduling noise.
            next = (started + self.check.interval + jitter.next()).max(now);
        }
    }
}

/// Run `check` once through [`vitals_probes::run_once`] (cut at its timeout, a panic caught
/// as a failure, duration on tokio's clock), log a panic with the check's name, and stamp the
/// outcome with the system's wall time.
async fn run_check(check: &Check) -> Outcome {
    // The async block calls `check()` at its first poll, inside `run_once`'s panic catch, so
    // a probe that panics before returning its future is caught too.
    let run = vitals_probes::run_once(check.timeout, async { check.probe.check().await }).await;
    if let RunEnd::Panicked(message) = &run.end {
        tracing::error!(check = %check.name, %message, "check panicked");
    }
    run.into_outcome(SystemTime::now())
}

/// Random extra delay in `[0, max)`, from a generator seeded once per check. Jitter only
/// needs to spread replicas apart, not to be unpredictable.
struct Jitter {
    max: Duration,
    rng: SplitMix64,
}

impl Jitter {
    fn new(max: Duration) -> Self {
        Jitter {
            max,
            // A random seed per check, so that replicas started together spread apart.
            rng: SplitMix64::new(RandomState::new().hash_one(0u8)),
        }
    }

    fn next(&mut self) -> Duration {
        if self.max.is_zero() {
            return Duration::ZERO;
        }
        self.max.mul_f64(self.rng.fraction())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_below_its_maximum() {
        let mut jitter = Jitter::new(Duration::from_secs(1));
        for _ in 0..1000 {
            assert!(jitter.next() < Duration::from_secs(1));
        }
        assert_eq!(Jitter::new(Duration::ZERO).next(), Duration::ZERO);
    }
}
