//! `Status`: the three-valued verdict of a check or of a whole service.
//!
//! Not the long-lived state of a target (that is [`crate::machine::State`]); a `Status` is
//! what one look at a thing says right now.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The verdict of one check, or of many checks aggregated.
///
/// Ordered from best to worst, so that `max` picks the worst: `Pass < Warn < Fail`.
/// The serialized names are those of `application/health+json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Healthy: everything works.
    Pass,
    /// Degraded: serving, but something non-critical is wrong.
    Warn,
    /// Unhealthy: should not receive traffic.
    Fail,
}

impl Status {
    /// The name used in JSON bodies and metrics labels: `pass`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
        }
    }

    /// The word people use for it: `healthy`, `degraded` or `unhealthy`.
    pub fn describe(self) -> &'static str {
        match self {
            Status::Pass => "healthy",
            Status::Warn => "degraded",
            Status::Fail => "unhealthy",
        }
    }

    /// The HTTP status code a probe endpoint answers with: a degraded service still serves,
    /// so warn is 200 like pass; fail is 503.
    pub fn http_code(self) -> u16 {
        match self {
            Status::Pass | Status::Warn => 200,
            Status::Fail => 503,
        }
    }

    /// Whether this verdict lets traffic through (pass or warn).
    pub fn is_serving(self) -> bool {
        self != Status::Fail
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordering_puts_the_worst_last() {
        assert!(Status::Pass < Status::Warn);
        assert!(Status::Warn < Status::Fail);
        assert_eq!(
            [Status::Warn, Status::Fail, Status::Pass].iter().max(),
            Some(&Status::Fail)
        );
    }

    #[test]
    fn http_mapping_follows_the_seed() {
        assert_eq!(Status::Pass.http_code(), 200);
        assert_eq!(Status::Warn.http_code(), 200);
        assert_eq!(Status::Fail.http_code(), 503);
    }

    #[test]
    fn serializes_with_health_json_names() {
        assert_eq!(serde_json::to_string(&Status::Warn).unwrap(), "\"warn\"");
        let s: Status = serde_json::from_str("\"fail\"").unwrap();
        assert_eq!(s, Status::Fail);
    }
}
