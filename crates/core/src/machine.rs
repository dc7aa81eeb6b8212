//! The hysteresis state machine: a stream of outcomes in, a long-lived state and events out.
//!
//! STUB: the public API below is the contract the rest of vitals codes against; the bodies
//! are being written (see the issue for the semantics).

use std::time::{Duration, Instant};

use crate::Outcome;

/// The long-lived health state of one target (a check, a backend, a monitored service).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Unknown,
    Healthy,
    Degraded,
    Failing,
    Unhealthy,
    Down,
    Recovering,
}

impl State {
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

    /// Whether a target in this state receives traffic: healthy, degraded and failing do.
    pub fn is_serving(self) -> bool {
        matches!(self, State::Healthy | State::Degraded | State::Failing)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    pub fall: u32,
    pub rise: u32,
    pub down_after: u32,
    pub window: Option<WindowRule>,
    pub flap: Option<FlapRule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRule {
    pub failures: u32,
    pub of_last: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapRule {
    pub transitions: u32,
    pub within: Duration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            fall: 2,
            rise: 2,
            down_after: 3,
            window: None,
            flap: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid thresholds: {0}")]
pub struct ThresholdError(pub String);

impl Thresholds {
    pub fn validate(&self) -> Result<(), ThresholdError> {
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    Transition { from: State, to: State },
    FlappingStarted,
    FlappingStopped,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Instant,
    pub kind: EventKind,
    pub reason: String,
    pub cause: Option<Outcome>,
}

#[derive(Debug, Clone)]
pub struct Machine {
    state: State,
    since: Option<Instant>,
}

impl Machine {
    pub fn new(thresholds: Thresholds) -> Result<Self, ThresholdError> {
        thresholds.validate()?;
        Ok(Machine {
            state: State::Unknown,
            since: None,
        })
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn since(&self) -> Option<Instant> {
        self.since
    }
    pub fn is_flapping(&self) -> bool {
        false
    }
    pub fn handle_outcome(&mut self, now: Instant, outcome: &Outcome) {
        let _ = (now, outcome);
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        None
    }
}
