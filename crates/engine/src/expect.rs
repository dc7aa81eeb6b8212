//! When a passive target's next heartbeat is due: a period plus grace, a cron schedule in a
//! time zone plus grace, or phi accrual learned from arrival times.
//!
//! Every expectation is a [`Detector`] from the core (or one built the same way here for
//! cron), so the engine treats them alike: feed heartbeats, ask when suspicion next crosses
//! its threshold.

use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use vitals_core::detector::{Deadline, Detector, PhiAccrual, PhiConfig, Suspicion};

/// How a passive target is expected to report.
#[derive(Debug, Clone)]
pub enum Expectation {
    /// Every `period`, late by at most `grace`.
    Period { period: Duration, grace: Duration },
    /// At every occurrence of `schedule` in `timezone`, late by at most `grace`.
    Cron {
        schedule: Box<croner::Cron>,
        timezone: Tz,
        grace: Duration,
    },
    /// Phi accrual over observed arrival times.
    Phi(PhiConfig),
}

impl Expectation {
    /// A detector for this expectation, which expects a first heartbeat by the first deadline
    /// counted from `now` (so a job that never reports after the monitor starts is noticed).
    /// `wall` is the wall-clock time at `now`, needed by cron schedules.
    pub fn detector(&self, now: Instant, wall: SystemTime) -> Box<dyn Detector + Send> {
        match self {
            Expectation::Period { period, grace } => {
                Box::new(Deadline::new(*period, *grace).expect_first_by(now + *period + *grace))
            }
            Expectation::Cron {
                schedule,
                timezone,
                grace,
            } => {
                let mut cron = CronDeadline {
                    schedule: (**schedule).clone(),
                    timezone: *timezone,
                    grace: *grace,
                    base: (now, wall),
                    due: None,
                    last: None,
                };
                cron.due = cron.next_due(now);
                Box::new(cron)
            }
            Expectation::Phi(config) => match PhiAccrual::new(config.clone()) {
                Ok(phi) => Box::new(phi),
                // Validated with the config; a default detector is better than none.
                Err(_) => {
                    Box::new(PhiAccrual::new(PhiConfig::default()).expect("defaults are valid"))
                }
            },
        }
    }
}

/// A deadline at the next cron occurrence after the latest heartbeat, plus grace.
#[derive(Debug)]
struct CronDeadline {
    schedule: croner::Cron,
    timezone: Tz,
    grace: Duration,
    /// A fixed pairing of monotonic and wall time, so wall time is a function of `now` and
    /// the detector stays deterministic.
    base: (Instant, SystemTime),
    due: Option<Instant>,
    last: Option<Instant>,
}

impl CronDeadline {
    fn wall(&self, now: Instant) -> SystemTime {
        let (base, wall) = self.base;
        match now.checked_duration_since(base) {
            Some(ahead) => wall + ahead,
            None => wall - base.duration_since(now),
        }
    }

    /// The instant the run after `now` is due, grace included.
    fn next_due(&self, now: Instant) -> Option<Instant> {
        let wall: DateTime<Utc> = self.wall(now).into();
        let local = wall.with_timezone(&self.timezone);
        let next = self.schedule.find_next_occurrence(&local, false).ok()?;
        let ahead = next
            .with_timezone(&Utc)
            .signed_duration_since(wall)
            .to_std()
            .ok()?;
        now.checked_add(ahead + self.grace)
    }
}

impl Detector for CronDeadline {
    fn handle_heartbeat(&mut self, now: Instant) {
        self.last = Some(now);
        self.due = self.next_due(now);
    }

    fn suspicion(&self, now: Instant) -> Suspicion {
        let suspected = self.due.is_some_and(|due| now >= due);
        Suspicion {
            level: if suspected { 1.0 } else { 0.0 },
            threshold: 1.0,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn base() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_period_expects_the_first_beat_too() {
        let now = base();
        let expect = Expectation::Period {
            period: Duration::from_secs(60),
            grace: Duration::from_secs(10),
        };
        let mut detector = expect.detector(now, SystemTime::now());
        assert_eq!(detector.poll_timeout(), Some(now + Duration::from_secs(70)));
        detector.handle_heartbeat(now + Duration::from_secs(30));
        assert_eq!(
            detector.poll_timeout(),
            Some(now + Duration::from_secs(100))
        );
        assert!(
            !detector
                .suspicion(now + Duration::from_secs(99))
                .is_suspected()
        );
        assert!(
            detector
                .suspicion(now + Duration::from_secs(100))
                .is_suspected()
        );
    }

    #[test]
    fn a_cron_deadline_follows_the_schedule_in_its_time_zone() {
        let now = base();
        // 2026-11-25 09:00:00 UTC is 10:00 in Berlin; the job runs daily at 03:00 Berlin time.
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_061_200);
        let expect = Expectation::Cron {
            schedule: Box::new("0 3 * * *".parse().unwrap()),
            timezone: chrono_tz::Europe::Berlin,
            grace: Duration::from_secs(3600),
        };
        let detector = expect.detector(now, wall);
        // Next 03:00 Berlin = 02:00 UTC the next day: 17 h later, plus 1 h grace.
        assert_eq!(
            detector.poll_timeout(),
            Some(now + Duration::from_secs(18 * 3600))
        );
    }
}
