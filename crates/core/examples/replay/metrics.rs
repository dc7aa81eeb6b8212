//! Chen, Toueg and Aguilera's (2002) quality of service of a failure detector, measured on a
//! trace: how fast a crash is detected (T_D, mean and 99th percentile) and how often a live
//! sender is wrongly suspected (the mistake rate, per hour).
//!
//! A crash at `c` is replayed by feeding the detector every beat sent before `c` (those in
//! flight at `c` still arrive) and none after; T_D is from `c` until the detector suspects for
//! good, that is the first crossing of its threshold after the last arrival (zero if it already
//! suspected at `c`). False suspicions are counted on the whole trace, without a crash: every
//! silence between two arrivals that crossed the threshold is one mistake.
//!
//! What it is not: a judge of the second level; `two_level.rs` replays that one.

use std::time::{Duration, Instant};

use vitals_core::Detector;

use crate::trace::Trace;

/// What one detector scored on one trace.
#[derive(Debug, Clone, Copy, Default)]
pub struct Score {
    /// Mean time from crash to suspicion, seconds.
    pub td_mean: f64,
    /// 99th percentile of it, seconds.
    pub td_p99: f64,
    /// Wrong suspicions of a live sender per hour.
    pub false_suspicions: f64,
    /// Time from crash to a confirmed death, seconds (mean, p99); for a heartbeat-only
    /// detector the suspicion is the only verdict, so these equal the above.
    pub confirmed_mean: f64,
    pub confirmed_p99: f64,
    /// Wrong confirmed deaths per hour (for a heartbeat-only detector: every suspicion).
    pub false_deaths: f64,
    /// Of the false suspicions, how many a confirmation found the sender stalled, and how
    /// many found it unreachable, per hour.
    pub stalled: f64,
    pub unreachable: f64,
}

/// Simulated time: seconds since the trace began, as an `Instant`.
#[derive(Debug, Clone, Copy)]
pub struct Clock(pub Instant);

impl Clock {
    pub fn at(self, t: f64) -> Instant {
        self.0 + Duration::from_secs_f64(t.max(0.0))
    }

    pub fn secs(self, at: Instant) -> f64 {
        at.saturating_duration_since(self.0).as_secs_f64()
    }
}

/// Scores a heartbeat-only detector made by `make` on `trace`, with crashes at `crashes`
/// (sorted).
pub fn heartbeat_only<D: Detector + Clone>(
    clock: Clock,
    trace: &Trace,
    crashes: &[f64],
    make: impl Fn() -> D,
) -> Score {
    let hours = trace.seconds / 3600.0;
    let mut detector = make();
    let mut mistakes = 0u64;
    let mut delays = Vec::with_capacity(crashes.len());
    let mut crash = crashes.iter().copied().peekable();
    for (i, &(arrival, _)) in trace.arrivals.iter().enumerate() {
        while let Some(c) = crash.next_if(|&c| c <= arrival) {
            delays.push(detect_after_crash(clock, trace, i, c, detector.clone()));
        }
        detector.handle_heartbeat(clock.at(arrival));
        if let (Some(timeout), Some(&(next, _))) =
            (detector.poll_timeout(), trace.arrivals.get(i + 1))
            && clock.secs(timeout) < next
        {
            mistakes += 1;
        }
    }
    let (td_mean, td_p99) = mean_p99(&mut delays);
    let false_suspicions = mistakes as f64 / hours;
    Score {
        td_mean,
        td_p99,
        false_suspicions,
        confirmed_mean: td_mean,
        confirmed_p99: td_p99,
        false_deaths: false_suspicions,
        ..Score::default()
    }
}

/// T_D of a crash at `c`, given the detector as it was before arrival `i` (the first at or
/// after `c`).
fn detect_after_crash<D: Detector>(
    clock: Clock,
    trace: &Trace,
    i: usize,
    c: f64,
    mut detector: D,
) -> f64 {
    for &(arrival, sent) in trace.arrivals[i..]
        .iter()
        .take_while(|(a, _)| *a < c + 60.0)
    {
        if sent < c {
            detector.handle_heartbeat(clock.at(arrival));
        }
    }
    let suspect = detector
        .poll_timeout()
        .map_or(f64::INFINITY, |t| clock.secs(t));
    (suspect - c).max(0.0)
}

/// Mean and 99th percentile (nearest rank) of `values`, which it sorts.
pub fn mean_p99(values: &mut [f64]) -> (f64, f64) {
    if values.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    values.sort_by(f64::total_cmp);
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let rank = ((values.len() as f64 * 0.99).ceil() as usize).clamp(1, values.len());
    (mean, values[rank - 1])
}
