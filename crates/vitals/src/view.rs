//! The verdict of a probe: which checks count, what each one says now, and the whole answer.
//!
//! Pure functions of (registrations, snapshot, lifecycle phase, now): every endpoint and the
//! heartbeat emitter build their answers here, so they can never disagree.

use std::time::SystemTime;

use tokio::time::Instant;
use vitals_core::machine::State;
use vitals_core::{Observed, Part, Status, aggregate};
use vitals_probes::fmt_duration;

use crate::check::{Check, Group};
use crate::lifecycle::Phase;
use crate::snapshot::{CheckSnapshot, Snapshot};

/// Which checks a verdict covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One probe group (`/livez`, `/readyz`, `/startupz`).
    Group(Group),
    /// Every check (`/health`).
    All,
}

impl Scope {
    pub(crate) fn includes(self, check: &Check) -> bool {
        match self {
            Scope::Group(group) => check.in_group(group),
            Scope::All => true,
        }
    }
}

/// What one check says now, as a probe sees it.
#[derive(Debug, Clone)]
pub struct CheckView<'a> {
    pub name: &'a str,
    pub critical: bool,
    /// The status this check contributes, after hysteresis and staleness.
    pub status: Status,
    pub state: State,
    pub stale: bool,
    pub excluded: bool,
    pub output: Option<String>,
    pub observed: Option<&'a Observed>,
    pub time: Option<SystemTime>,
    pub component_type: &'static str,
}

/// The whole answer of a probe.
#[derive(Debug, Clone)]
pub struct Verdict<'a> {
    pub status: Status,
    /// Why the lifecycle alone decides the answer ("starting: …", "draining"), if it does.
    pub gate: Option<String>,
    pub checks: Vec<CheckView<'a>>,
}

/// What `check` contributes now.
pub fn check_view<'a>(
    check: &'a Check,
    entry: &'a CheckSnapshot,
    scope: Scope,
    now: Instant,
) -> CheckView<'a> {
    let outcome = entry.outcome.as_ref();
    let age = entry
        .recorded
        .map(|recorded| now.saturating_duration_since(recorded));
    let max_age = check.effective_max_age();
    let stale = age.is_some_and(|age| age > max_age);
    let last_output = outcome.and_then(|outcome| outcome.output.clone());

    let (status, output) = if outcome.is_none() {
        // Liveness must not fail a process merely because its first check has not run yet.
        let status = if scope == Scope::Group(Group::Liveness) {
            Status::Pass
        } else {
            Status::Fail
        };
        (status, Some("not checked yet".to_string()))
    } else if stale {
        let age = age.unwrap_or_default();
        (
            Status::Fail,
            Some(format!(
                "stale: latest result is {} old, more than the allowed {}",
                fmt_duration(age),
                fmt_duration(max_age)
            )),
        )
    } else {
        let status = match entry.state {
            State::Healthy => Status::Pass,
            // Degraded serves; failing has seen fewer failures than `fall` and stays in
            // rotation, but says so.
            State::Degraded | State::Failing => Status::Warn,
            State::Unknown if scope == Scope::Group(Group::Liveness) => Status::Pass,
            State::Unknown | State::Unhealthy | State::Down | State::Recovering => Status::Fail,
        };
        let output = match entry.state {
            State::Failing | State::Recovering => Some(format!(
                "{}: {}",
                entry.state.as_str(),
                last_output.as_deref().unwrap_or("no message")
            )),
            _ => last_output,
        };
        (status, output)
    };

    CheckView {
        name: &check.name,
        critical: check.critical,
        status,
        state: entry.state,
        stale,
        excluded: false,
        output,
        observed: outcome.and_then(|outcome| outcome.observed.as_ref()),
        time: outcome.map(|outcome| outcome.at),
        component_type: check.probe.component_type(),
    }
}

/// The lifecycle's say in a scope: readiness fails while starting or draining, startup
/// while starting; liveness and the full health report ignore the lifecycle.
fn gate(scope: Scope, phase: &Phase) -> Option<String> {
    match (scope, phase) {
        (Scope::Group(Group::Readiness | Group::Startup), Phase::Starting { progress }) => {
            Some(format!("starting: {progress}"))
        }
        (Scope::Group(Group::Readiness), Phase::Draining | Phase::Stopped) => {
            Some("draining: shutting down, not accepting new work".to_string())
        }
        _ => None,
    }
}

/// The verdict over `scope`, leaving out the checks at the `excluded` indices (they are
/// listed, marked excluded, and do not count).
pub fn verdict<'a>(
    checks: &'a [Check],
    snapshot: &'a Snapshot,
    scope: Scope,
    excluded: &[usize],
    phase: &Phase,
    now: Instant,
) -> Verdict<'a> {
    let views: Vec<CheckView<'a>> = checks
        .iter()
        .zip(&snapshot.checks)
        .enumerate()
        .filter(|(_, (check, _))| scope.includes(check))
        .map(|(index, (check, entry))| {
            let mut view = check_view(check, entry, scope, now);
            view.excluded = excluded.contains(&index);
            view
        })
        .collect();
    let from_checks = aggregate(views.iter().filter(|view| !view.excluded).map(|view| Part {
        status: view.status,
        critical: view.critical,
    }));
    let gate = gate(scope, phase);
    let status = if gate.is_some() {
        Status::Fail
    } else {
        from_checks
    };
    Verdict {
        status,
        gate,
        checks: views,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vitals_core::{Kind, Outcome};
    use vitals_probes::from_fn;

    use super::*;
    use crate::Report;

    fn check() -> Check {
        Check::new("database", from_fn(|| async { Report::pass() }))
            .interval(Duration::from_secs(5))
            .timeout(Duration::from_secs(1))
            .jitter(Duration::ZERO)
    }

    fn entry(state: State, recorded: Instant) -> CheckSnapshot {
        CheckSnapshot {
            outcome: Some(
                Outcome::new(Kind::Pass, SystemTime::now(), Duration::from_millis(2))
                    .with_output("SELECT 1 ok"),
            ),
            recorded: Some(recorded),
            state,
            state_since: Some(recorded),
            flapping: false,
            runs: 1,
            last_success: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_older_than_its_allowed_age_is_a_failure() {
        let check = check();
        // Default max age: 2 × 5 s + 1 s timeout + 0 jitter = 11 s.
        assert_eq!(check.effective_max_age(), Duration::from_secs(11));
        let recorded = Instant::now();
        let entry = entry(State::Healthy, recorded);
        let scope = Scope::Group(Group::Readiness);
        let fresh = check_view(&check, &entry, scope, recorded + Duration::from_secs(11));
        assert_eq!((fresh.status, fresh.stale), (Status::Pass, false));
        let stale = check_view(&check, &entry, scope, recorded + Duration::from_secs(12));
        assert_eq!((stale.status, stale.stale), (Status::Fail, true));
        assert_eq!(
            stale.output.as_deref(),
            Some("stale: latest result is 12s old, more than the allowed 11s")
        );
        // Staleness fails liveness too: a check that stopped producing results is how a
        // deadlocked process shows.
        let live = check_view(
            &check,
            &entry,
            Scope::Group(Group::Liveness),
            recorded + Duration::from_secs(60),
        );
        assert_eq!(live.status, Status::Fail);
    }

    #[tokio::test(start_paused = true)]
    async fn states_map_to_statuses() {
        let check = check();
        let now = Instant::now();
        let scope = Scope::Group(Group::Readiness);
        for (state, status) in [
            (State::Healthy, Status::Pass),
            (State::Degraded, Status::Warn),
            (State::Failing, Status::Warn),
            (State::Unhealthy, Status::Fail),
            (State::Down, Status::Fail),
            (State::Recovering, Status::Fail),
            (State::Unknown, Status::Fail),
        ] {
            let entry = entry(state, now);
            assert_eq!(
                check_view(&check, &entry, scope, now).status,
                status,
                "{state:?}"
            );
        }
        let never_ran = CheckSnapshot::default();
        let view = check_view(&check, &never_ran, scope, now);
        assert_eq!(
            (view.status, view.output.as_deref()),
            (Status::Fail, Some("not checked yet"))
        );
        let live = check_view(&check, &never_ran, Scope::Group(Group::Liveness), now);
        assert_eq!(live.status, Status::Pass);
    }
}
