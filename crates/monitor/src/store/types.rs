//! The plain data the store takes and gives back.
//!
//! These types are the store's public vocabulary: times are [`SystemTime`], durations are
//! [`Duration`], targets are named by their string id, and states are [`TimelineState`]s
//! (stored by name: a name that parses back to none is a corrupt row, never "down"). What this is not: the database encoding (that lives in `codec`) or the wire
//! format of the JSON API (the API layer owns its own serialisation).

use std::time::{Duration, SystemTime};

use vitals_core::Kind;
use vitals_core::machine::State;

pub use crate::engine::TimelineState;

/// One state change of one target, as the engine's state machine reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The row id: `None` when recording (the store assigns it), `Some` when read back.
    pub id: Option<i64>,
    pub target: String,
    pub at: SystemTime,
    /// The state left (a judged state, or a pause or maintenance span ending).
    pub from: TimelineState,
    /// The state entered.
    pub to: TimelineState,
    /// Why, in words (e.g. `"2 failures in a row"`).
    pub reason: String,
    /// The kind of the outcome that caused it (`Kind::as_str()`), if an outcome did.
    pub cause_kind: Option<String>,
    /// That outcome's output.
    pub cause_output: Option<String>,
}

/// The summary of one check run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    pub target: String,
    pub at: SystemTime,
    pub kind: Kind,
    pub duration: Duration,
    pub output: Option<String>,
}

/// What the engine needs to resume a target after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    pub target: String,
    pub state: State,
    /// When the target entered `state`.
    pub since: Option<SystemTime>,
    pub flapping: bool,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    /// Loaded with the state; written only by [`Store::set_flags`](super::Store::set_flags)
    /// ([`Store::save_states`](super::Store::save_states) ignores it, so a periodic save of
    /// a stale copy can never undo a pause).
    pub flags: Flags,
}

/// Operator switches on a target (the pause / resume / maintenance API).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub paused: bool,
    /// Maintenance lasts until this time; `None` when there is none.
    pub maintenance_until: Option<SystemTime>,
}

/// The fraction (0..=1) of time a target was up over the last 24 hours, 7, 30 and 365 days.
///
/// `None` when nothing is known for the window (no known state in it). The rule is
/// time-weighted; see `docs/STORAGE.md` ("Uptime").
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Uptime {
    pub day: Option<f64>,
    pub week: Option<f64>,
    pub month: Option<f64>,
    pub year: Option<f64>,
}

/// The width of a rollup bucket. Buckets are aligned to the unix epoch, so days are UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Minute,
    Hour,
    Day,
}

impl Bucket {
    /// Every bucket width, narrowest first.
    pub const ALL: [Bucket; 3] = [Bucket::Minute, Bucket::Hour, Bucket::Day];

    /// The bucket's width.
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.millis() as u64)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Minute => "minute",
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    pub(crate) fn millis(self) -> i64 {
        match self {
            Bucket::Minute => 60_000,
            Bucket::Hour => 3_600_000,
            Bucket::Day => 86_400_000,
        }
    }
}

/// Summary of the raw results of one target in one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollup {
    /// The bucket's first instant.
    pub start: SystemTime,
    pub bucket: Bucket,
    pub count: u64,
    /// Results whose kind counts as failed (`fail` and `timeout`; `warn` is not a failure).
    pub failures: u64,
    /// Nearest-rank percentiles of the durations in the bucket.
    pub p50: Duration,
    pub p95: Duration,
    pub max: Duration,
}

/// What one [`Store::rollup_and_prune`](super::Store::rollup_and_prune) run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Rollup rows written (all three widths).
    pub rolled_up: u64,
    pub pruned_results: u64,
    pub pruned_rollups: u64,
    /// Transitions older than the rollup retention (each target keeps its last older one, which
    /// says what state the retention window starts in).
    pub pruned_transitions: u64,
    /// Pings older than the raw retention (each target keeps its latest ones).
    pub pruned_pings: u64,
    /// Alerts, delivered or cancelled outbox rows and recovery log rows older than the
    /// rollup retention.
    pub pruned_logs: u64,
}

/// What a healthchecks.io-style ping said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingKind {
    /// `/ping/<id>/start`: a run began.
    Start,
    /// `/ping/<id>`: a run succeeded.
    Success,
    /// `/ping/<id>/fail`: a run failed.
    Fail,
    /// `/ping/<id>/log`: a message, no change of status.
    Log,
    /// `/ping/<id>/<exit-status>`: a run ended with this exit status.
    Exit(u8),
    /// `/ping/<id>/exited`: the process behind the heartbeats exited.
    Exited,
}

impl PingKind {
    /// The name stored in the database (`exit` for every exit status).
    pub fn as_str(self) -> &'static str {
        match self {
            PingKind::Start => "start",
            PingKind::Success => "success",
            PingKind::Fail => "fail",
            PingKind::Log => "log",
            PingKind::Exit(_) => "exit",
            PingKind::Exited => "exited",
        }
    }
}

/// One received ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ping {
    pub target: String,
    pub at: SystemTime,
    pub kind: PingKind,
    /// The `?rid=` run id.
    pub rid: Option<String>,
    /// The request body, already size-limited by the caller.
    pub body: Option<String>,
    /// The run's duration, measured from its `/start`.
    pub duration: Option<Duration>,
    /// The remote address.
    pub source: Option<String>,
}
