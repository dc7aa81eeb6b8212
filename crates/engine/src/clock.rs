//! [`Clock`]: where the engine's time comes from, read once per event as a [`Now`].
//!
//! The fleet takes time as an argument ([`Now`]: monotonic for deadlines, wall for people and
//! history, from one reading). The driver reads it from a `Clock`, which follows tokio's
//! clock, so a test on tokio's paused clock moves the fleet's time too. What it is not: a
//! timer; the driver sleeps, the fleet only says until when.

use std::time::{Duration, Instant, SystemTime};

/// One reading of the time: `mono` for deadlines and intervals, `wall` for what is stored
/// and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// The wall time at monotonic instant `at`, as seen from this reading.
    pub fn wall_at(&self, at: Instant) -> SystemTime {
        match at.checked_duration_since(self.mono) {
            Some(ahead) => self.wall + ahead,
            None => self.wall - self.mono.duration_since(at),
        }
    }

    /// The monotonic instant of wall time `at` (now, if it is past).
    pub fn mono_at(&self, at: SystemTime) -> Instant {
        let ahead = at.duration_since(self.wall).unwrap_or_default();
        // Checked: a time centuries ahead must not overflow (issue 11, item 6).
        self.mono
            .checked_add(ahead)
            .or_else(|| {
                self.mono
                    .checked_add(Duration::from_secs(u64::from(u32::MAX)))
            })
            .unwrap_or(self.mono)
    }
}

/// The driver's source of [`Now`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Clock {
    /// Wall time derived from tokio's clock from this pairing on; `None` reads the system's.
    base: Option<(tokio::time::Instant, SystemTime)>,
}

impl Clock {
    /// Monotonic time from tokio (paused in tests), wall time from the system.
    pub fn system() -> Clock {
        Clock { base: None }
    }

    /// Wall time that starts at `wall` and moves with tokio's clock: on a paused clock, both
    /// halves of [`Now`] advance together, so a test can say "at 03:00 Berlin time".
    pub fn starting_at(wall: SystemTime) -> Clock {
        Clock {
            base: Some((tokio::time::Instant::now(), wall)),
        }
    }

    pub fn now(&self) -> Now {
        let mono = tokio::time::Instant::now();
        let wall = match self.base {
            None => SystemTime::now(),
            Some((base, wall)) => wall + mono.saturating_duration_since(base),
        };
        Now {
            mono: mono.into_std(),
            wall,
        }
    }
}
