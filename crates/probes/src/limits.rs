//! `Limits`: the warn / fail thresholds a measured number is judged against.
//!
//! Shared by every probe that measures something (memory, disk, a queue's length), so that
//! "above 80 % warns, above 90 % fails" is written once.

use vitals_core::{Report, Status};

/// Thresholds over a measured value: above `warn` degrades, above `fail` fails.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    warn: Option<f64>,
    fail: f64,
}

/// Limits that cannot be judged against.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LimitsError {
    #[error("limit {0} is not a finite number")]
    NotFinite(f64),
    #[error("warn limit ({warn}) must be below the fail limit ({fail})")]
    WarnNotBelowFail { warn: f64, fail: f64 },
}

impl Limits {
    /// Warn above `warn`, fail above `fail`.
    pub fn new(warn: f64, fail: f64) -> Result<Self, LimitsError> {
        for value in [warn, fail] {
            if !value.is_finite() {
                return Err(LimitsError::NotFinite(value));
            }
        }
        if warn >= fail {
            return Err(LimitsError::WarnNotBelowFail { warn, fail });
        }
        Ok(Limits {
            warn: Some(warn),
            fail,
        })
    }

    /// Fail above `fail`, with no warning level (the seed's queue: over 10,000 means not ready).
    pub fn fail_above(fail: f64) -> Result<Self, LimitsError> {
        if !fail.is_finite() {
            return Err(LimitsError::NotFinite(fail));
        }
        Ok(Limits { warn: None, fail })
    }

    pub fn status(&self, value: f64) -> Status {
        // NaN compares false everywhere; a measurement that is not a number is a failure,
        // not a pass.
        if value.is_nan() || value > self.fail {
            Status::Fail
        } else if self.warn.is_some_and(|warn| value > warn) {
            Status::Warn
        } else {
            Status::Pass
        }
    }

    /// A report for `value`, measured in `unit`, describing what was measured as `what`.
    pub fn judge(&self, what: &str, value: f64, unit: &str) -> Report {
        let shown = format!("{what} {value:.1}{}", spaced(unit));
        let report = match self.status(value) {
            Status::Pass => Report::pass().with_output(shown),
            Status::Warn => Report::warn(format!(
                "{shown} is above the warn limit {}{}",
                self.warn.unwrap_or(self.fail),
                spaced(unit)
            )),
            Status::Fail => Report::fail(format!(
                "{shown} is above the fail limit {}{}",
                self.fail,
                spaced(unit)
            )),
        };
        report.with_observed(value, unit)
    }
}

fn spaced(unit: &str) -> String {
    if unit == "%" || unit.is_empty() {
        unit.to_string()
    } else {
        format!(" {unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_against_both_limits() {
        let limits = Limits::new(80.0, 90.0).unwrap();
        assert_eq!(limits.status(50.0), Status::Pass);
        assert_eq!(limits.status(80.0), Status::Pass);
        assert_eq!(limits.status(85.0), Status::Warn);
        assert_eq!(limits.status(90.5), Status::Fail);
        assert_eq!(limits.status(f64::NAN), Status::Fail);
        let report = limits.judge("memory used", 85.0, "%");
        assert_eq!(
            report.output.as_deref(),
            Some("memory used 85.0% is above the warn limit 80%")
        );
    }

    #[test]
    fn refuses_nonsense() {
        assert_eq!(
            Limits::new(90.0, 80.0),
            Err(LimitsError::WarnNotBelowFail {
                warn: 90.0,
                fail: 80.0
            })
        );
        assert!(Limits::fail_above(f64::INFINITY).is_err());
    }
}
