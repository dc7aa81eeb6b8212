//! The hysteresis state machine: a stream of check outcomes in, one long-lived [`State`] and the
//! [`Event`]s that changed it out.
//!
//! This is the seed's failure-detection workflow made exact. One failed check marks a target
//! `failing` (still in rotation, "give it a retry chance"); `fall` consecutive failures take it
//! out (`unhealthy`); `down_after` consecutive failures escalate it (`down`); after that it must
//! pass `rise` times in a row (`recovering`) before it is trusted again. Optional rules sit on
//! top: a [`WindowRule`] catches failures that are frequent but never consecutive, and a
//! [`FlapRule`] flags a target whose state keeps changing.
//!
//! What it is not: it runs no check, reads no clock and decides nothing about traffic or alerts.
//! Active probes and heartbeat detectors both feed it [`Outcome`]s; the balancer, the monitor and
//! the readiness endpoint each read [`State::is_serving`] and the events in their own way.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::{Outcome, Status};

/// The most outcomes a [`WindowRule`] may look back over, and the most transitions a
/// [`FlapRule`] may count: the machine keeps that many entries per target, and one monitor
/// holds thousands of targets.
pub const MAX_REMEMBERED: u32 = 1000;

/// The long-lived health state of one target (a check, a backend, a monitored service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Nothing is known yet: the target starts here, out of rotation.
    Unknown,
    Healthy,
    /// Serving, but the latest check warned.
    Degraded,
    /// Failed fewer than `fall` times in a row: still in rotation, given a retry chance.
    Failing,
    /// Out of rotation: the balancer sends nothing, readiness fails.
    Unhealthy,
    /// Failed `down_after` times in a row: escalate.
    Down,
    /// Passing again, not yet trusted: out of rotation until `rise` passes in a row.
    Recovering,
}

impl State {
    /// Every state, for metrics that pre-register one series per state.
    pub const ALL: [State; 7] = [
        State::Unknown,
        State::Healthy,
        State::Degraded,
        State::Failing,
        State::Unhealthy,
        State::Down,
        State::Recovering,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            State::Unknown => "unknown",
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Failing => "failing",
            State::Unhealthy => "unhealthy",
            State::Down => "down",
            State::Recovering => "recovering",
        }
    }

    /// The state named `name` (as [`State::as_str`] writes it).
    pub fn parse(name: &str) -> Option<State> {
        State::ALL.into_iter().find(|state| state.as_str() == name)
    }

    /// Whether a target in this state receives traffic: healthy, degraded and failing do.
    pub fn is_serving(self) -> bool {
        matches!(self, State::Healthy | State::Degraded | State::Failing)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many outcomes move a target between states.
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    /// Consecutive failures that take a serving target out of rotation.
    pub fall: u32,
    /// Consecutive passes (or warnings) that bring an unhealthy or down target back.
    pub rise: u32,
    /// Consecutive failures, counted from the last pass, after which a target is down. It
    /// counts the `fall` failures too: with fall 2 and down_after 3 the third failure in a row
    /// makes a healthy target down, as in the seed ("if fails 3 times: down").
    pub down_after: u32,
    pub window: Option<WindowRule>,
    pub flap: Option<FlapRule>,
}

/// "At least `failures` of the last `of_last` outcomes failed": when this holds on a failure, a
/// serving target goes unhealthy even though the failures were not consecutive.
///
/// The window only holds outcomes seen since the target last entered rotation: the failures
/// that took it out were judged already, and `rise` passes bought it a clean slate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRule {
    pub failures: u32,
    pub of_last: u32,
}

/// "At least `transitions` state changes within `within`" sets the flapping flag.
///
/// Every transition counts, so one full outage (healthy → failing → unhealthy → recovering →
/// healthy) counts four. The flag clears with hysteresis, once the transitions within the
/// window drop to half the limit or fewer: a target right at the limit would otherwise toggle
/// the flag as often as it toggles its state, which is the noise the flag exists to name.
/// Flapping never changes the state; it tells the monitor to hold alerts and people to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRule {
    pub transitions: u32,
    pub within: Duration,
}

impl Default for Thresholds {
    /// The seed's fall 2, rise 2, down_after 3, no window rule, and flap detection on at eight
    /// transitions within ten minutes: two full outages and recoveries in ten minutes is a
    /// pattern, not bad luck. The flag only informs (it never moves the state), so having it
    /// on by default costs nothing.
    fn default() -> Self {
        Thresholds {
            fall: 2,
            rise: 2,
            down_after: 3,
            window: None,
            flap: Some(FlapRule {
                transitions: 8,
                within: Duration::from_secs(600),
            }),
        }
    }
}

/// Thresholds that cannot work, naming the field so that config layers can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ThresholdError {
    /// The field as config spells it: `fall`, `window.of_last`, `flap.within`…
    pub field: &'static str,
    /// Lowercase, names the bad value and the fix.
    pub message: String,
}

fn ensure(
    ok: bool,
    field: &'static str,
    message: impl FnOnce() -> String,
) -> Result<(), ThresholdError> {
    if ok {
        Ok(())
    } else {
        Err(ThresholdError {
            field,
            message: message(),
        })
    }
}

impl Thresholds {
    pub fn validate(&self) -> Result<(), ThresholdError> {
        ensure(self.fall >= 1, "fall", || {
            "fall must be at least 1: it counts the failures in a row that take a target out of rotation".into()
        })?;
        ensure(self.rise >= 1, "rise", || {
            "rise must be at least 1: it counts the passes in a row that bring a target back".into()
        })?;
        ensure(self.down_after >= self.fall, "down_after", || {
            format!(
                "down_after ({}) must be at least fall ({}): a target is unhealthy before it is down",
                self.down_after, self.fall
            )
        })?;
        if let Some(WindowRule { failures, of_last }) = self.window {
            ensure(failures >= 1, "window.failures", || {
                "window.failures must be at least 1; to turn the rule off, leave the window out"
                    .into()
            })?;
            ensure(failures <= of_last, "window.of_last", || {
                format!(
                    "window.of_last ({of_last}) must be at least window.failures ({failures}): the window cannot hold more failures than outcomes"
                )
            })?;
            ensure(of_last <= MAX_REMEMBERED, "window.of_last", || {
                format!(
                    "window.of_last ({of_last}) must be at most {MAX_REMEMBERED}: the machine keeps that many outcomes per target"
                )
            })?;
        }
        if let Some(FlapRule {
            transitions,
            within,
        }) = self.flap
        {
            ensure(transitions >= 2, "flap.transitions", || {
                format!(
                    "flap.transitions ({transitions}) must be at least 2: one transition is a change, not a flap"
                )
            })?;
            ensure(transitions <= MAX_REMEMBERED, "flap.transitions", || {
                format!(
                    "flap.transitions ({transitions}) must be at most {MAX_REMEMBERED}: the machine keeps that many transition times per target"
                )
            })?;
            ensure(!within.is_zero(), "flap.within", || {
                "flap.within must be longer than zero: it is the window transitions are counted in"
                    .into()
            })?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Transition { from: State, to: State },
    FlappingStarted,
    FlappingStopped,
}

/// Something the monitor stores, alerts on and shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Instant,
    pub kind: EventKind,
    /// Which rule fired, for people: "2 consecutive failures (fall 2)".
    pub reason: String,
    /// The outcome that triggered the event.
    pub cause: Option<Outcome>,
}

/// The hysteresis state machine of one target.
///
/// Call order, in the style of quinn: feed every outcome with
/// [`handle_outcome`](Machine::handle_outcome), then drain [`poll_event`](Machine::poll_event)
/// until it returns `None`. Time only moves forward: a `now` earlier than one already seen is
/// taken as the latest one seen (clocks and threads reorder; that is no reason to panic).
///
/// One outcome can cause several transitions when thresholds of 1 allow it (with fall 1 and
/// down_after 1 a failure takes a healthy target unhealthy and then down). Each is its own event,
/// and each follows an edge of the design's diagram, with two shortcuts that only thresholds of 1
/// (or the window rule) open: `failing` is skipped when one failure already reaches `fall` or
/// trips the window, and `recovering` is skipped when `rise` is 1.
/// The part of a machine worth saving across a restart. See [`Machine::restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub state: State,
    pub since: Option<Instant>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub flapping: bool,
}

#[derive(Debug, Clone)]
pub struct Machine {
    thresholds: Thresholds,
    state: State,
    since: Option<Instant>,
    /// The latest `now` seen.
    now: Option<Instant>,
    failures: u32,
    successes: u32,
    /// Where a recovering target falls back to when a check fails: unhealthy or down.
    recovering_from: State,
    /// Whether each outcome since the target entered rotation failed, newest last; at most
    /// `window.of_last` long.
    recent: VecDeque<bool>,
    /// When the latest transitions happened, oldest first; at most `flap.transitions` long,
    /// which is all that deciding "too many" and "half as many" needs.
    transitions: VecDeque<Instant>,
    flapping: bool,
    events: VecDeque<Event>,
}

impl Machine {
    pub fn new(thresholds: Thresholds) -> Result<Self, ThresholdError> {
        thresholds.validate()?;
        Ok(Machine {
            thresholds,
            state: State::Unknown,
            since: None,
            now: None,
            failures: 0,
            successes: 0,
            recovering_from: State::Unhealthy,
            recent: VecDeque::new(),
            transitions: VecDeque::new(),
            flapping: false,
            events: VecDeque::new(),
        })
    }

    /// A machine that carries on from a saved state, as a daemon does after a restart. The
    /// window and flap histories are not saved: they start empty, so a restart can only make
    /// the machine slower to call a target flapping, never quicker to evict it.
    pub fn restore(thresholds: Thresholds, saved: Saved) -> Result<Self, ThresholdError> {
        let mut machine = Machine::new(thresholds)?;
        machine.state = saved.state;
        machine.since = saved.since;
        machine.now = saved.since;
        machine.failures = saved.consecutive_failures;
        machine.successes = saved.consecutive_successes;
        machine.flapping = saved.flapping;
        // A recovering target fell from unhealthy or down; which one is not saved, and
        // unhealthy is the milder assumption (down_after still counts on from the failures).
        machine.recovering_from = State::Unhealthy;
        Ok(machine)
    }

    /// What [`Machine::restore`] needs to carry on.
    pub fn saved(&self) -> Saved {
        Saved {
            state: self.state,
            since: self.since,
            consecutive_failures: self.failures,
            consecutive_successes: self.successes,
            flapping: self.flapping,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// When the current state was entered; `None` while the target is still `unknown`.
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    pub fn is_flapping(&self) -> bool {
        self.flapping
    }

    /// Failures in a row up to the latest outcome (timeouts included).
    pub fn consecutive_failures(&self) -> u32 {
        self.failures
    }

    /// Passes or warnings in a row up to the latest outcome.
    pub fn consecutive_successes(&self) -> u32 {
        self.successes
    }

    pub fn thresholds(&self) -> &Thresholds {
        &self.thresholds
    }

    /// Feeds one outcome observed at `now`; the events it causes wait in
    /// [`poll_event`](Machine::poll_event).
    pub fn handle_outcome(&mut self, now: Instant, outcome: &Outcome) {
        let now = self.now.map_or(now, |latest| latest.max(now));
        self.now = Some(now);
        let status = outcome.status();
        if status == Status::Fail {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        } else {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        }
        if let Some(rule) = self.thresholds.window {
            while self.recent.len() >= rule.of_last as usize {
                self.recent.pop_front();
            }
            self.recent.push_back(status == Status::Fail);
        }
        // For a given status, `next` only ever moves along a path without cycles (fail leads
        // towards down, pass and warn towards healthy and degraded), so the machine settles in
        // at most three steps; the bound guards against a future edit breaking that.
        for _ in 0..State::ALL.len() {
            let Some((to, reason)) = self.next(status) else {
                break;
            };
            self.enter(now, to, reason, outcome);
        }
        self.update_flapping(now, outcome);
    }

    /// A death confirmed by a second signal ([`confirm`](crate::confirm)): down at once,
    /// whatever `fall` and `down_after` still count, because the evidence is no longer a
    /// count of failures but a fact. A serving or unknown target passes through `unhealthy`
    /// (two events, each along an edge of the diagram, as thresholds of 1 would make them),
    /// a recovering one through the state it fell from. The outcome counts as a failure.
    pub fn handle_confirmed_down(&mut self, now: Instant, outcome: &Outcome) {
        let now = self.now.map_or(now, |latest| latest.max(now));
        self.now = Some(now);
        self.failures = self
            .failures
            .saturating_add(1)
            .max(self.thresholds.down_after);
        self.successes = 0;
        if let Some(rule) = self.thresholds.window {
            while self.recent.len() >= rule.of_last as usize {
                self.recent.pop_front();
            }
            self.recent.push_back(true);
        }
        let reason = || "confirmed dead by a second signal".to_string();
        let path: &[State] = match self.state {
            State::Down => &[],
            State::Unhealthy => &[State::Down],
            State::Recovering if self.recovering_from == State::Down => &[State::Down],
            _ => &[State::Unhealthy, State::Down],
        };
        for &to in path {
            self.enter(now, to, reason(), outcome);
        }
        self.update_flapping(now, outcome);
    }

    /// The next queued event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The transition the counters call for after an outcome of `status`, if any.
    fn next(&self, status: Status) -> Option<(State, String)> {
        use State::*;
        let t = &self.thresholds;
        let serving = if status == Status::Warn {
            Degraded
        } else {
            Healthy
        };
        let fall_reason = || format!("{} (fall {})", in_a_row(self.failures, "failure"), t.fall);
        let rise_reason = || format!("{} (rise {})", in_a_row(self.successes, "success"), t.rise);
        match (self.state, status) {
            // Nothing is known yet, so one pass or warning is all there is to go on.
            (Unknown, Status::Pass | Status::Warn) => {
                Some((serving, format!("first check {}", past(status))))
            }
            // Never through failing: an unknown target was never in rotation to begin with.
            (Unknown, Status::Fail) => {
                (self.failures >= t.fall).then(|| (Unhealthy, fall_reason()))
            }
            (Healthy | Degraded | Failing, Status::Fail) => {
                if self.failures >= t.fall {
                    Some((Unhealthy, fall_reason()))
                } else if let Some(reason) = self.window_tripped() {
                    Some((Unhealthy, reason))
                } else {
                    (self.state != Failing).then(|| (Failing, fall_reason()))
                }
            }
            // A blip never left rotation, so getting over it needs no `rise`.
            (Healthy | Degraded | Failing, _) => (self.state != serving).then(|| {
                let reason = if self.state == Failing {
                    format!(
                        "check {} before fall ({}) was reached",
                        past(status),
                        t.fall
                    )
                } else {
                    format!("check {}", past(status))
                };
                (serving, reason)
            }),
            (Unhealthy, Status::Fail) => (self.failures >= t.down_after).then(|| {
                let count = in_a_row(self.failures, "failure");
                (Down, format!("{count} (down_after {})", t.down_after))
            }),
            (Down, Status::Fail) => None,
            // Back where it came from; the failure count restarts at this failure, because the
            // pass in between broke the run that `down_after` counts.
            (Recovering, Status::Fail) => Some((
                self.recovering_from,
                format!("check failed while recovering (rise {})", t.rise),
            )),
            (Unhealthy | Down | Recovering, _) => {
                if self.successes >= t.rise {
                    Some((serving, rise_reason()))
                } else {
                    (self.state != Recovering).then(|| (Recovering, rise_reason()))
                }
            }
        }
    }

    fn window_tripped(&self) -> Option<String> {
        let rule = self.thresholds.window?;
        let failed = self.recent.iter().filter(|&&failed| failed).count();
        (failed >= rule.failures as usize).then(|| {
            format!(
                "{failed} of the last {} checks failed (window {} of {})",
                self.recent.len(),
                rule.failures,
                rule.of_last
            )
        })
    }

    fn enter(&mut self, now: Instant, to: State, reason: String, outcome: &Outcome) {
        let from = self.state;
        if to == State::Recovering {
            self.recovering_from = from;
        }
        if to.is_serving() && !from.is_serving() {
            self.recent.clear();
        }
        if let Some(rule) = self.thresholds.flap {
            if self.transitions.len() >= rule.transitions as usize {
                self.transitions.pop_front();
            }
            self.transitions.push_back(now);
        }
        self.state = to;
        self.since = Some(now);
        self.push(now, EventKind::Transition { from, to }, reason, outcome);
    }

    fn update_flapping(&mut self, now: Instant, outcome: &Outcome) {
        let Some(FlapRule {
            transitions,
            within,
        }) = self.thresholds.flap
        else {
            return;
        };
        while let Some(&oldest) = self.transitions.front()
            && now.duration_since(oldest) >= within
        {
            self.transitions.pop_front();
        }
        // At most `transitions` (itself at most MAX_REMEMBERED) long, so this never saturates.
        let count = u32::try_from(self.transitions.len()).unwrap_or(u32::MAX);
        if !self.flapping && count >= transitions {
            self.flapping = true;
            let reason = format!(
                "{count} transitions within {within:?} (flap {transitions} within {within:?})"
            );
            self.push(now, EventKind::FlappingStarted, reason, outcome);
        } else if self.flapping && count <= transitions / 2 {
            self.flapping = false;
            let reason = format!(
                "{count} transitions within {within:?}, at most half of flap {transitions}"
            );
            self.push(now, EventKind::FlappingStopped, reason, outcome);
        }
    }

    fn push(&mut self, at: Instant, kind: EventKind, reason: String, outcome: &Outcome) {
        self.events.push_back(Event {
            at,
            kind,
            reason,
            cause: Some(outcome.clone()),
        });
    }
}

/// "1 consecutive failure", "2 consecutive successes".
fn in_a_row(count: u32, what: &str) -> String {
    let plural = match (count, what) {
        (1, _) => "",
        (_, "success") => "es",
        _ => "s",
    };
    format!("{count} consecutive {what}{plural}")
}

fn past(status: Status) -> &'static str {
    match status {
        Status::Pass => "passed",
        Status::Warn => "warned",
        Status::Fail => "failed",
    }
}

#[cfg(test)]
mod tests;
