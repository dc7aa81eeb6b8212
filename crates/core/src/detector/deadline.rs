//! The deadline detector: a heartbeat is due every `period`, and late after `grace` more.
//!
//! The simplest detector and the one people expect from a cron job's ping ("every 5 minutes,
//! with 1 minute of grace"). It does not learn; for senders whose rhythm varies, see
//! [`PhiAccrual`](super::PhiAccrual). Nor does it know calendars: a cron schedule is a deadline
//! whose period changes from run to run, which needs a calendar this crate does not have.

use std::time::{Duration, Instant};

use super::{Detector, Suspicion};

/// Suspected once `period + grace` has passed since the last heartbeat.
///
/// The level is the silence measured in deadlines: `elapsed / (period + grace)`, so the
/// threshold is 1.0, half-way is 0.5 and twice too late is 2.0. At the deadline itself the
/// target is suspected: the heartbeat was due and has not come.
#[derive(Debug, Clone)]
pub struct Deadline {
    period: Duration,
    grace: Duration,
    last: Option<Instant>,
    /// When the level reaches 1.0; `None` while nothing is expected.
    due: Option<Instant>,
}

impl Deadline {
    pub fn new(period: Duration, grace: Duration) -> Self {
        Deadline {
            period,
            grace,
            last: None,
            due: None,
        }
    }

    /// Expect the first heartbeat by `by` (for example, start-up time plus a deadline): until
    /// one arrives, the level rises to 1.0 at `by` as if the last heartbeat had come one
    /// deadline before. A heartbeat replaces the expectation.
    pub fn expect_first_by(mut self, by: Instant) -> Self {
        if self.last.is_none() {
            self.due = Some(by);
        }
        self
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn grace(&self) -> Duration {
        self.grace
    }

    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    /// `period + grace` in seconds, never zero: a zero deadline makes every silence late at
    /// once instead of dividing by zero.
    fn span(&self) -> f64 {
        self.period
            .saturating_add(self.grace)
            .max(Duration::from_nanos(1))
            .as_secs_f64()
    }

    fn level(&self, now: Instant) -> f64 {
        let Some(due) = self.due else {
            return 0.0;
        };
        // Measured from `due` rather than from the last heartbeat, so that an expected first
        // heartbeat and a real one share one formula, with 1.0 exactly at the deadline.
        if now >= due {
            1.0 + now.duration_since(due).as_secs_f64() / self.span()
        } else {
            (1.0 - due.duration_since(now).as_secs_f64() / self.span()).max(0.0)
        }
    }
}

impl Detector for Deadline {
    fn handle_heartbeat(&mut self, now: Instant) {
        let now = self.last.map_or(now, |last| last.max(now));
        self.last = Some(now);
        // Past the end of time nothing is ever late.
        self.due = now.checked_add(self.period.saturating_add(self.grace));
    }

    fn suspicion(&self, now: Instant) -> Suspicion {
        Suspicion {
            level: self.level(now),
            threshold: 1.0,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[allow(clippy::disallowed_methods)] // the one clock read: a base for simulated time
    fn base() -> Instant {
        Instant::now()
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn level_counts_deadlines() {
        let t0 = base();
        let mut d = Deadline::new(secs(10.0), secs(5.0));
        assert_eq!(d.suspicion(t0).level, 0.0);
        assert_eq!(d.poll_timeout(), None);
        d.handle_heartbeat(t0);
        assert_eq!(d.last_heartbeat(), Some(t0));
        assert_eq!((d.period(), d.grace()), (secs(10.0), secs(5.0)));
        let level = |s: f64| d.suspicion(t0 + secs(s)).level;
        assert_eq!(level(0.0), 0.0);
        assert!((level(7.5) - 0.5).abs() < 1e-12);
        assert_eq!(level(15.0), 1.0);
        assert!((level(30.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn suspected_from_the_deadline_on() {
        let t0 = base();
        let mut d = Deadline::new(secs(10.0), secs(5.0));
        d.handle_heartbeat(t0);
        let due = d.poll_timeout().unwrap();
        assert_eq!(due, t0 + secs(15.0));
        assert!(!d.suspicion(due - Duration::from_nanos(1)).is_suspected());
        assert!(d.suspicion(due).is_suspected());
        // A heartbeat moves the deadline.
        d.handle_heartbeat(t0 + secs(14.0));
        assert!(!d.suspicion(due).is_suspected());
        assert_eq!(d.poll_timeout(), Some(t0 + secs(29.0)));
    }

    #[test]
    fn expecting_the_first_heartbeat() {
        let t0 = base();
        let mut d = Deadline::new(secs(10.0), secs(0.0)).expect_first_by(t0 + secs(60.0));
        assert_eq!(d.poll_timeout(), Some(t0 + secs(60.0)));
        assert_eq!(d.suspicion(t0).level, 0.0);
        assert!((d.suspicion(t0 + secs(55.0)).level - 0.5).abs() < 1e-12);
        assert!(d.suspicion(t0 + secs(60.0)).is_suspected());
        d.handle_heartbeat(t0 + secs(5.0));
        assert_eq!(d.poll_timeout(), Some(t0 + secs(15.0)));
        // Once heartbeats came, an expectation changes nothing.
        let d = d.expect_first_by(t0);
        assert_eq!(d.poll_timeout(), Some(t0 + secs(15.0)));
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let t0 = base();
        let mut d = Deadline::new(Duration::ZERO, Duration::ZERO);
        d.handle_heartbeat(t0 + secs(1.0));
        d.handle_heartbeat(t0);
        assert_eq!(d.last_heartbeat(), Some(t0 + secs(1.0)));
        assert!(d.suspicion(t0 + secs(1.0)).is_suspected());
        assert!(d.suspicion(t0 + secs(2.0)).level.is_finite());
        let mut forever = Deadline::new(Duration::MAX, Duration::MAX);
        forever.handle_heartbeat(t0);
        assert_eq!(forever.poll_timeout(), None);
        assert_eq!(forever.suspicion(t0 + secs(1e9)).level, 0.0);
    }

    proptest! {
        #[test]
        fn level_is_monotone(
            period_ms in 0u64..100_000,
            grace_ms in 0u64..100_000,
            beats in prop::collection::vec(0u64..200_000, 0..20),
            mut probes in prop::collection::vec(0u64..1_000_000, 2..20),
        ) {
            let t0 = base();
            let mut d = Deadline::new(Duration::from_millis(period_ms), Duration::from_millis(grace_ms));
            let mut now = t0;
            for gap in beats {
                now += Duration::from_millis(gap);
                d.handle_heartbeat(now);
            }
            probes.sort_unstable();
            let levels: Vec<f64> = probes.iter().map(|&ms| d.suspicion(t0 + Duration::from_millis(ms)).level).collect();
            prop_assert!(levels.windows(2).all(|w| w[0] <= w[1]), "{levels:?}");
            prop_assert!(levels.iter().all(|l| l.is_finite() && *l >= 0.0));
        }
    }
}
