//! `Check`: how a service registers one check: its probe, groups, schedule and thresholds.
//!
//! This module only describes checks and validates the description; running them is the
//! scheduler's job.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use vitals_core::machine::Thresholds;
use vitals_probes::{Probe, fmt_duration};

use crate::error::Problem;

/// The probe endpoints a check can count towards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    /// `/livez`: is the process alive? Failing it gets the process restarted.
    Liveness,
    /// `/readyz`: should it receive traffic? Failing it takes it out of rotation.
    Readiness,
    /// `/startupz`: has it finished starting?
    Startup,
}

impl Group {
    pub const ALL: [Group; 3] = [Group::Liveness, Group::Readiness, Group::Startup];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Liveness => "liveness",
            Group::Readiness => "readiness",
            Group::Startup => "startup",
        }
    }

    /// The kube-style endpoint name: `livez`, `readyz`, `startupz`.
    pub fn endpoint(self) -> &'static str {
        match self {
            Group::Liveness => "livez",
            Group::Readiness => "readyz",
            Group::Startup => "startupz",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Group::Liveness => 1,
            Group::Readiness => 2,
            Group::Startup => 4,
        }
    }
}

/// One registered check. Build it with [`Check::new`] and the methods below; it is validated
/// when the [`HealthBuilder`](crate::HealthBuilder) starts.
///
/// Defaults: critical; readiness only; every 10 s with up to 1 s of jitter; a 3 s timeout; a
/// result older than `2 × interval + timeout` counts as failed ("stale"); fall 2, rise 2.
#[derive(Clone)]
pub struct Check {
    pub(crate) name: String,
    pub(crate) probe: Arc<dyn Probe>,
    pub(crate) critical: bool,
    groups: u8,
    pub(crate) interval: Duration,
    pub(crate) jitter: Duration,
    pub(crate) timeout: Duration,
    max_age: Option<Duration>,
    pub(crate) thresholds: Thresholds,
    force_liveness: bool,
}

impl fmt::Debug for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Check")
            .field("name", &self.name)
            .field("critical", &self.critical)
            .field("groups", &self.groups_iter().collect::<Vec<_>>())
            .field("interval", &self.interval)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Check {
    /// A check named `name` (it appears in URLs, JSON keys and metric labels, so it is limited
    /// to letters, digits, `_`, `-` and `.`) that runs `probe`.
    pub fn new(name: impl Into<String>, probe: impl Probe) -> Self {
        Check {
            name: name.into(),
            probe: Arc::new(probe),
            critical: true,
            groups: Group::Readiness.bit(),
            interval: Duration::from_secs(10),
            jitter: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            max_age: None,
            thresholds: Thresholds::default(),
            force_liveness: false,
        }
    }

    /// A failure of this check only degrades the verdict (warn) instead of failing it. The
    /// seed's cache: when Redis is down the service still takes orders.
    pub fn non_critical(mut self) -> Self {
        self.critical = false;
        self
    }

    /// Count this check towards `/livez` as well. A check that reaches an external dependency
    /// is refused here unless [`Check::force_liveness`] is also called.
    pub fn liveness(mut self) -> Self {
        self.groups |= Group::Liveness.bit();
        self
    }

    /// Count this check towards `/startupz` as well.
    pub fn startup(mut self) -> Self {
        self.groups |= Group::Startup.bit();
        self
    }

    /// Set exactly the groups this check counts towards (replacing the default, readiness).
    pub fn groups(mut self, groups: impl IntoIterator<Item = Group>) -> Self {
        self.groups = groups.into_iter().fold(0, |bits, group| bits | group.bit());
        self
    }

    /// Allow an external dependency in the liveness group. Think twice: when that dependency
    /// goes down, every replica fails liveness and is restarted at the same moment, which
    /// fixes nothing and adds a thundering herd.
    pub fn force_liveness(mut self) -> Self {
        self.force_liveness = true;
        self
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Up to this much random delay is added to each interval, so that replicas started
    /// together do not check a shared database in lockstep. Zero makes runs exactly periodic.
    pub fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// A hard deadline: a run still going after it is cancelled and recorded as a timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How old the latest result may be before it counts as a failure ("stale").
    pub fn max_age(mut self, max_age: Duration) -> Self {
        self.max_age = Some(max_age);
        self
    }

    /// Consecutive failures before the check counts as failed (fall), and passes before it
    /// counts as passing again (rise). Defaults to the seed's 2 and 2.
    pub fn thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn is_critical(&self) -> bool {
        self.critical
    }

    pub fn in_group(&self, group: Group) -> bool {
        self.groups & group.bit() != 0
    }

    pub fn groups_iter(&self) -> impl Iterator<Item = Group> + '_ {
        Group::ALL.into_iter().filter(|group| self.in_group(*group))
    }

    pub fn effective_max_age(&self) -> Duration {
        self.max_age
            .unwrap_or(self.interval * 2 + self.timeout + self.jitter)
    }

    /// Every problem with this check's description, each naming the field.
    pub(crate) fn problems(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut problem = |field: &'static str, message: String| {
            problems.push(Problem {
                check: self.name.clone(),
                field,
                message,
            })
        };
        if self.name.is_empty() {
            problem("name", "is empty; give the check a name".into());
        } else if let Some(bad) = self
            .name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            problem(
                "name",
                format!(
                    "contains {bad:?}; use letters, digits, '_', '-' or '.' (the name appears in URLs and metric labels)"
                ),
            );
        }
        if self.groups == 0 {
            problem(
                "groups",
                "is empty; add the check to liveness, readiness or startup".into(),
            );
        }
        if self.interval.is_zero() {
            problem(
                "interval",
                "is zero; a check needs a positive interval".into(),
            );
        }
        if self.timeout.is_zero() {
            problem("timeout", "is zero; a check needs time to run".into());
        } else if !self.interval.is_zero() && self.timeout > self.interval {
            problem(
                "timeout",
                format!(
                    "({}) is longer than interval ({}); a run must end before the next one starts",
                    fmt_duration(self.timeout),
                    fmt_duration(self.interval)
                ),
            );
        }
        if let Some(max_age) = self.max_age
            && max_age < self.interval
        {
            problem(
                "max_age",
                format!(
                    "({}) is shorter than interval ({}); every result would be stale before the next run",
                    fmt_duration(max_age),
                    fmt_duration(self.interval)
                ),
            );
        }
        if let Err(error) = self.thresholds.validate() {
            problem("thresholds", error.to_string());
        }
        if self.in_group(Group::Liveness) && self.probe.is_external() && !self.force_liveness {
            problem(
                "liveness",
                "checks an external dependency; when it goes down every replica would fail liveness and be restarted at once. Put it in readiness, or call force_liveness() if you really mean it".into(),
            );
        }
        problems
    }
}
