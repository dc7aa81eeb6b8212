//! The retry budget: retries may add at most a share of the load (linkerd's retry ratio),
//! plus a small allowance per second so that a quiet pool can still ride out one dead
//! backend. Without a budget, a pool in trouble would get every failed request twice — the
//! retry storm that turns a partial outage into a full one.
//!
//! Plain data, time as an argument; not here: which failures may be retried (the proxy
//! decides that).

use std::time::{Duration, Instant};

/// How far back requests and retries are counted.
const WINDOW: Duration = Duration::from_secs(10);
/// The window is kept as this many buckets, so it slides a second at a time.
const BUCKETS: usize = 10;

/// Counts requests and retries over the last ten seconds.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    /// Extra load retries may add, as a fraction (0.2 is 20 %).
    ratio: f64,
    min_per_second: u32,
    start: Instant,
    /// (second since `start`, requests, retries), one per second of the window.
    buckets: [(u64, u64, u64); BUCKETS],
}

impl RetryBudget {
    /// `percent` of extra load (0–100), at least `min_per_second` retries a second.
    pub fn new(percent: f64, min_per_second: u32, now: Instant) -> Self {
        RetryBudget {
            ratio: percent / 100.0,
            min_per_second,
            start: now,
            buckets: [(u64::MAX, 0, 0); BUCKETS],
        }
    }

    fn bucket(&mut self, now: Instant) -> &mut (u64, u64, u64) {
        let second = now.saturating_duration_since(self.start).as_secs();
        let slot = &mut self.buckets[(second % BUCKETS as u64) as usize];
        if slot.0 != second {
            *slot = (second, 0, 0);
        }
        slot
    }

    fn totals(&self, now: Instant) -> (u64, u64) {
        let second = now.saturating_duration_since(self.start).as_secs();
        self.buckets
            .iter()
            .filter(|(at, _, _)| *at != u64::MAX && second.saturating_sub(*at) < BUCKETS as u64)
            .fold((0, 0), |(req, ret), (_, r, t)| (req + r, ret + t))
    }

    /// A request arrived (its first try).
    pub fn handle_request(&mut self, now: Instant) {
        self.bucket(now).1 += 1;
    }

    /// Whether one more retry fits the budget; if so it is counted.
    pub fn try_retry(&mut self, now: Instant) -> bool {
        let (requests, retries) = self.totals(now);
        let allowed = u64::from(self.min_per_second) * WINDOW.as_secs()
            + (requests as f64 * self.ratio) as u64;
        if retries >= allowed {
            return false;
        }
        self.bucket(now).2 += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A base for simulated time (tokio's clock, which clippy allows).
    fn base() -> Instant {
        tokio::time::Instant::now().into_std()
    }

    #[test]
    fn retries_are_bounded_by_the_ratio_plus_the_minimum() {
        let t0 = base();
        let mut budget = RetryBudget::new(20.0, 1, t0);
        for _ in 0..100 {
            budget.handle_request(t0);
        }
        // 1/s over 10 s, plus 20 % of 100.
        let granted = (0..100).filter(|_| budget.try_retry(t0)).count();
        assert_eq!(granted, 30);
    }

    #[test]
    fn the_window_slides() {
        let t0 = base();
        let mut budget = RetryBudget::new(0.0, 1, t0);
        assert_eq!((0..20).filter(|_| budget.try_retry(t0)).count(), 10);
        // Nine seconds later the first second's retries still count...
        assert!(!budget.try_retry(t0 + Duration::from_secs(9)));
        // ...and ten seconds later they are gone.
        assert!(budget.try_retry(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn a_zero_budget_refuses_every_retry() {
        let t0 = base();
        let mut budget = RetryBudget::new(0.0, 0, t0);
        budget.handle_request(t0);
        assert!(!budget.try_retry(t0));
    }
}
