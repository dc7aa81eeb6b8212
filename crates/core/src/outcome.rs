//! `Outcome`: what one run of one check observed.
//!
//! An outcome is a fact about the past; it never changes once made. Whether it is still fresh
//! enough to trust is decided by whoever reads it (see `vitals`' snapshot), not here.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::Status;

/// How a check run ended. A timeout is kept apart from an ordinary failure: "the database said
/// no" and "the database did not answer in time" call for different fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Pass,
    Warn,
    Fail,
    /// The check did not finish before its deadline and was cancelled.
    Timeout,
}

impl Kind {
    /// The status this kind counts as: a timeout is a failure.
    pub fn status(self) -> Status {
        match self {
            Kind::Pass => Status::Pass,
            Kind::Warn => Status::Warn,
            Kind::Fail | Kind::Timeout => Status::Fail,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pass => "pass",
            Kind::Warn => "warn",
            Kind::Fail => "fail",
            Kind::Timeout => "timeout",
        }
    }

    /// All kinds, for metrics that pre-register one series per kind.
    pub const ALL: [Kind; 4] = [Kind::Pass, Kind::Warn, Kind::Fail, Kind::Timeout];
}

impl From<Status> for Kind {
    fn from(status: Status) -> Self {
        match status {
            Status::Pass => Kind::Pass,
            Status::Warn => Kind::Warn,
            Status::Fail => Kind::Fail,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A measured value a check reports beside its verdict, such as `87.5` `%` of memory used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    pub value: f64,
    /// The unit, in the words of `application/health+json` (`%`, `ms`, `bytes`, `items`…).
    pub unit: String,
}

/// The result of one check run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub kind: Kind,
    /// Wall-clock time the run finished, for people and JSON bodies. Never used to measure age:
    /// drivers keep a monotonic instant beside it for that.
    pub at: SystemTime,
    /// How long the run took.
    pub duration: Duration,
    /// A short human-readable message: why it failed, or what it saw.
    pub output: Option<String>,
    pub observed: Option<Observed>,
}

impl Outcome {
    /// A new outcome of `kind` at `at` that took `duration`, with no message or value yet.
    pub fn new(kind: Kind, at: SystemTime, duration: Duration) -> Self {
        Outcome {
            kind,
            at,
            duration,
            output: None,
            observed: None,
        }
    }

    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    pub fn with_observed(mut self, value: f64, unit: impl Into<String>) -> Self {
        self.observed = Some(Observed {
            value,
            unit: unit.into(),
        });
        self
    }

    pub fn status(&self) -> Status {
        self.kind.status()
    }
}

/// What a check function returns before the runner stamps time and duration on it: a verdict,
/// an optional message and an optional observed value.
///
/// Checks build one of these; the runner (which owns the clock) turns it into an [`Outcome`].
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub status: Status,
    pub output: Option<String>,
    pub observed: Option<Observed>,
}

impl Report {
    pub fn pass() -> Self {
        Report {
            status: Status::Pass,
            output: None,
            observed: None,
        }
    }

    pub fn warn(output: impl Into<String>) -> Self {
        Report {
            status: Status::Warn,
            output: Some(output.into()),
            observed: None,
        }
    }

    pub fn fail(output: impl Into<String>) -> Self {
        Report {
            status: Status::Fail,
            output: Some(output.into()),
            observed: None,
        }
    }

    pub fn with_output(mut self, output: impl Into<String>) -> Self {
        self.output = Some(output.into());
        self
    }

    pub fn with_observed(mut self, value: f64, unit: impl Into<String>) -> Self {
        self.observed = Some(Observed {
            value,
            unit: unit.into(),
        });
        self
    }

    /// Stamp this report with when it finished and how long it took.
    pub fn into_outcome(self, at: SystemTime, duration: Duration) -> Outcome {
        Outcome {
            kind: self.status.into(),
            at,
            duration,
            output: self.output,
            observed: self.observed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_is_a_failure_but_its_own_kind() {
        assert_eq!(Kind::Timeout.status(), Status::Fail);
        assert_ne!(Kind::Timeout, Kind::Fail);
    }

    #[test]
    fn report_becomes_an_outcome_with_its_message_and_value() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let outcome = Report::warn("memory high")
            .with_observed(85.0, "%")
            .into_outcome(at, Duration::from_millis(3));
        assert_eq!(outcome.kind, Kind::Warn);
        assert_eq!(outcome.output.as_deref(), Some("memory high"));
        assert_eq!(outcome.observed.as_ref().map(|o| o.value), Some(85.0));
        assert_eq!(outcome.duration, Duration::from_millis(3));
    }
}
