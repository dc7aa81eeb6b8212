//! Errors of the service library: what can be wrong with a registration.

use std::fmt;

/// One problem with one check's registration (or, with an empty `check`, with a setting of
/// the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The check's name, as registered; empty for a server setting (`max_connections`…).
    pub check: String,
    /// The field at fault: `name`, `interval`, `timeout`, `max_age`, `thresholds`, `liveness`…
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.check.is_empty() {
            write!(f, "server: {} {}", self.field, self.message)
        } else {
            write!(f, "check {:?}: {} {}", self.check, self.field, self.message)
        }
    }
}

/// Why a [`HealthBuilder`](crate::HealthBuilder) refused to start: every problem found, not
/// only the first, so they can all be fixed in one go.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct BuildError {
    pub problems: Vec<Problem>,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problems.as_slice() {
            [one] => write!(f, "invalid health check registration: {one}"),
            many => {
                write!(f, "{} invalid health check registrations:", many.len())?;
                for problem in many {
                    write!(f, "\n  {problem}")?;
                }
                Ok(())
            }
        }
    }
}
