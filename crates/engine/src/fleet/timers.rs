//! The fleet's one heap of due times: active checks, heartbeat deadlines and the ends of
//! maintenance windows, for every target.
//!
//! What it is not: a timer. The driver sleeps until [`Timers::next_due`]; entries only say
//! what is due when. A heartbeat target keeps at most one live deadline entry (see
//! `Live::armed`), so a target beating a hundred times a second adds nothing here.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant, SystemTime};

use vitals_core::SplitMix64;

use crate::Expectation;

/// What comes due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
    /// An active target's next check.
    Check,
    /// A heartbeat target's deadline; `generation` lets a nearer deadline supersede it.
    Deadline { generation: u64 },
    /// A maintenance window ending at wall time `until`, unless changed meanwhile.
    MaintenanceEnd { until: SystemTime },
    /// The window of a flapping heartbeat's held changes closes (see `collapse`).
    Collapse { generation: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Entry {
    pub(super) due: Instant,
    pub(super) index: usize,
    pub(super) kind: Kind,
}

impl Entry {
    pub(super) fn check(due: Instant, index: usize) -> Entry {
        Entry {
            due,
            index,
            kind: Kind::Check,
        }
    }

    pub(super) fn deadline(due: Instant, index: usize, generation: u64) -> Entry {
        Entry {
            due,
            index,
            kind: Kind::Deadline { generation },
        }
    }

    pub(super) fn collapse(due: Instant, index: usize, generation: u64) -> Entry {
        Entry {
            due,
            index,
            kind: Kind::Collapse { generation },
        }
    }

    pub(super) fn maintenance_end(due: Instant, index: usize, until: SystemTime) -> Entry {
        Entry {
            due,
            index,
            kind: Kind::MaintenanceEnd { until },
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Timers {
    pub(super) fn push(&mut self, entry: Entry) {
        self.heap.push(Reverse(entry));
    }

    /// Entries pending, stale ones included.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.heap.len()
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(entry)| entry.due)
    }

    /// Every entry through `remap`: a new index, or None to drop it (a configuration reload
    /// moved or removed its target). O(n), once per reload.
    pub(super) fn remap(&mut self, remap: impl Fn(Entry) -> Option<Entry>) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter_map(|Reverse(entry)| remap(entry).map(Reverse))
            .collect();
    }

    /// The earliest entry due by `now`, taken off the heap.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<Entry> {
        if self.next_due()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }
}

/// While a passive target stays silent, one more failure per period (or per grace for cron
/// schedules, at least a minute), so it walks failing → unhealthy → down at the pace its
/// schedule makes sense of. A sub-second sender is judged at its own pace until it is down
/// (a 100 ms sender used to take 2 s from failing to down, issue 15), and then at most once
/// a second: a dead fast sender is not worth ten failed results a second in the store.
pub(super) fn recheck_after(expectation: &Expectation, down: bool) -> Duration {
    let floor = if down {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    match expectation {
        Expectation::Period { period, .. } => (*period).max(floor),
        Expectation::Cron { grace, .. } => (*grace).max(Duration::from_secs(60)),
        Expectation::Phi(config) => config.first_heartbeat_estimate.max(floor),
    }
}

/// Up to `max` of extra delay, spread by target index with a multiplicative hash: jitter only
/// needs to keep targets with equal intervals apart, and a deterministic spread keeps tests
/// reproducible.
pub(super) fn jitter(index: usize, max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let spread = (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    max.mul_f64(spread as f64 / (1u64 << 53) as f64)
}

/// Target `index`'s phase within `interval`: where in each interval it is checked, spread
/// evenly over targets. Drawn from the index through `SplitMix64` rather than the jitter's
/// multiplicative hash, so that phase and jitter are unrelated: were they proportional, the
/// jitter would pile phases up again round by round.
pub(super) fn phase(index: usize, interval: Duration) -> Duration {
    let spread = SplitMix64::new(index as u64).next_u64() >> 11;
    interval.mul_f64(spread as f64 / (1u64 << 53) as f64)
}
