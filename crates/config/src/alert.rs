//! What an alert is about: [`AlertKind`], the vocabulary of rules' `on` lists and of every
//! notification. It lives with the configuration because rules name it; the notifier in
//! `vitals-monitor` decides when each kind is sent.

use serde::{Deserialize, Serialize};
use vitals_core::machine::State;

/// What happened. The JSON names are the lowercase variant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    /// Failed `down_after` times in a row: someone should look.
    Down,
    /// Out of rotation.
    Unhealthy,
    /// Serving, but warning.
    Degraded,
    /// Healthy again after an alert was sent (or after being blocked by a root cause).
    Recovered,
    /// Changing state too often; no more alerts for it until it settles.
    Flapping,
    /// Still down: a repeat, with growing gaps.
    Reminder,
    /// The monitor lost its own connectivity (its canaries fail).
    Isolated,
    /// Automatic recovery gave up: a person is needed.
    Escalation,
}

impl AlertKind {
    /// The name as in JSON and in rules' `on` lists.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Down => "down",
            AlertKind::Unhealthy => "unhealthy",
            AlertKind::Degraded => "degraded",
            AlertKind::Recovered => "recovered",
            AlertKind::Flapping => "flapping",
            AlertKind::Reminder => "reminder",
            AlertKind::Isolated => "isolated",
            AlertKind::Escalation => "escalation",
        }
    }

    /// The kind a rule's `on` entry names.
    pub fn parse(name: &str) -> Option<AlertKind> {
        [
            AlertKind::Down,
            AlertKind::Unhealthy,
            AlertKind::Degraded,
            AlertKind::Recovered,
            AlertKind::Flapping,
            AlertKind::Reminder,
            AlertKind::Isolated,
            AlertKind::Escalation,
        ]
        .into_iter()
        .find(|kind| kind.as_str() == name)
    }

    /// The problem kind a state announces, if any: intermediate states (failing,
    /// recovering, unknown) announce nothing.
    pub fn of_state(state: State) -> Option<AlertKind> {
        match state {
            State::Down => Some(AlertKind::Down),
            State::Unhealthy => Some(AlertKind::Unhealthy),
            State::Degraded => Some(AlertKind::Degraded),
            State::Healthy => Some(AlertKind::Recovered),
            State::Unknown | State::Failing | State::Recovering => None,
        }
    }
}
