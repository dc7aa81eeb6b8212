//! A vitals-library service as a target: its overall verdict is the target's outcome, and each
//! check its health body names becomes a row of its own, `<target>/<check>`, with its own
//! state machine and history.
//!
//! The service has already judged each check with its own thresholds, so a part's machine
//! follows the reported status at once (fall 1, rise 1); only `down_after` is the target's.
//! What this is not: a second opinion on the service's checks, or a way to reach its
//! dependencies directly.

use std::time::{Duration, SystemTime};

use vitals_core::health_json::HealthResponse;
use vitals_core::machine::Thresholds;
use vitals_core::{Kind, Observed, Outcome, Status};

/// The thresholds of a part: the service's status counts at once.
pub(crate) fn part_thresholds(target: &Thresholds) -> Thresholds {
    Thresholds {
        fall: 1,
        rise: 1,
        ..target.clone()
    }
}

/// One outcome per check key of `health`, at its worst entry.
pub(crate) fn parts(health: &HealthResponse, at: SystemTime) -> Vec<(String, Outcome)> {
    health
        .checks
        .iter()
        .filter_map(|(name, entries)| {
            let worst = entries.iter().max_by_key(|entry| entry.status)?;
            let kind = match worst.status {
                Status::Pass => Kind::Pass,
                Status::Warn => Kind::Warn,
                Status::Fail => Kind::Fail,
            };
            let output = worst
                .output
                .clone()
                .unwrap_or_else(|| format!("the service reports {}", worst.status));
            let mut outcome = Outcome::new(kind, at, Duration::ZERO).with_output(output);
            if let Some(value) = worst.observed_value {
                outcome.observed = Some(Observed {
                    value,
                    unit: worst.observed_unit.clone().unwrap_or_default(),
                });
            }
            Some((name.clone(), outcome))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_check_key_becomes_an_outcome_at_its_worst_entry() {
        let health: HealthResponse = serde_json::from_str(
            r#"{"status":"warn","checks":{
                "database":[{"status":"pass","observedValue":3.5,"observedUnit":"ms"}],
                "disk:free":[{"status":"pass"},{"status":"warn","output":"12% free"}]}}"#,
        )
        .unwrap();
        let parts = parts(&health, SystemTime::UNIX_EPOCH);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, "database");
        assert_eq!(parts[0].1.kind, Kind::Pass);
        assert_eq!(parts[0].1.observed.as_ref().unwrap().value, 3.5);
        assert_eq!(parts[1].0, "disk:free");
        assert_eq!(parts[1].1.kind, Kind::Warn);
        assert_eq!(parts[1].1.output.as_deref(), Some("12% free"));
    }
}
