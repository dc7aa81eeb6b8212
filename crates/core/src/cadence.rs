//! [`Cadence`]: how often an active check runs, and how long it may take.
//!
//! One type for the library's checks' schedules, the monitor's targets and the balancer's
//! backends, so a schedule read from a file is the one the engine runs. What it is not: a
//! timer. Something else sleeps; this only says for how long.

use std::time::Duration;

/// The interval while the state is changing is at most this (and never below the timeout).
pub const INTERVAL_CHANGING: Duration = Duration::from_secs(5);
/// The interval while down is at least this (and never below the interval).
pub const INTERVAL_DOWN: Duration = Duration::from_secs(60);

/// When an active target is checked.
///
/// Invariant (checked by the configuration): `0 < timeout <= interval_changing <= interval
/// <= interval_down`, and `jitter < interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cadence {
    pub interval: Duration,
    /// A check still running after this is cut and counts as failed (a timeout).
    pub timeout: Duration,
    /// Up to this much delay is added to each interval, so that targets configured together
    /// do not fire together.
    pub jitter: Duration,
    /// The interval while the state is changing (failing or recovering), to confirm a change
    /// sooner. Default: `min(interval, 5s)`, but never below `timeout`.
    pub interval_changing: Duration,
    /// The interval while down, to stop hammering what is known to be broken. Default:
    /// `max(interval, 60s)`.
    pub interval_down: Duration,
}

impl Cadence {
    /// The cadence of a target that sets nothing but its interval and timeout: jitter a tenth
    /// of the interval, faster while changing, slower while down.
    pub fn with_interval(interval: Duration, timeout: Duration) -> Cadence {
        Cadence {
            interval,
            timeout,
            jitter: interval / 10,
            interval_changing: interval.min(INTERVAL_CHANGING).max(timeout),
            interval_down: interval.max(INTERVAL_DOWN),
        }
    }
}
