//! The phi accrual failure detector (Hayashibara et al., 2004), as Akka and Cassandra run it.
//!
//! It learns the rhythm of the heartbeats (a sliding window of inter-arrival intervals, their
//! mean and standard deviation) and reports, as the silence grows, how unlikely that silence
//! is: phi = -log10(P(a heartbeat comes later than this)). Phi 1 means a 10% chance of being
//! wrong to suspect, phi 8 (the usual threshold) one in a hundred million, under the assumption
//! that intervals are roughly normal. Pauses longer than anything in the window are what that
//! assumption gets wrong, which is why suspicion is only a level (see [`detector`](super)).
//!
//! What it is not: a clock or a timer. It keeps no thread; the driver asks
//! [`poll_timeout`](Detector::poll_timeout) when phi will cross the threshold and looks again then.

use std::collections::VecDeque;
use std::f64::consts::LN_10;
use std::time::{Duration, Instant};

use super::{Detector, Suspicion};

/// The largest phi reported. Phi is -log10 of a probability, so this is already absurd; capping
/// keeps infinity and NaN out of every comparison and chart downstream.
pub const MAX_PHI: f64 = 1e9;

/// The most intervals the window may hold: it is recomputed on every heartbeat.
pub const MAX_SAMPLES: usize = 10_000;

/// Tuning of [`PhiAccrual`]; the defaults are Akka's.
#[derive(Debug, Clone, PartialEq)]
pub struct PhiConfig {
    /// Phi from which the sender is suspected.
    pub threshold: f64,
    /// How many inter-arrival intervals the window keeps.
    pub max_samples: usize,
    /// The least standard deviation assumed: perfectly regular heartbeats would otherwise make
    /// a heartbeat one millisecond late infinitely suspicious.
    pub min_std_dev: Duration,
    /// Added to the mean interval: a pause the sender may take without raising phi, such as a
    /// known GC pause.
    pub acceptable_pause: Duration,
    /// The interval assumed before any is measured: the expected heartbeat period.
    pub first_heartbeat_estimate: Duration,
}

impl Default for PhiConfig {
    /// Akka's tuning, made for its 1 s heartbeat (min_std_dev 100 ms). For any other period
    /// use [`PhiConfig::for_period`]: at 100 ms heartbeats these defaults judge the sender
    /// against a deviation of a whole period and a first estimate ten times too long.
    fn default() -> Self {
        PhiConfig {
            threshold: 8.0,
            max_samples: 200,
            min_std_dev: Duration::from_millis(100),
            acceptable_pause: Duration::ZERO,
            first_heartbeat_estimate: Duration::from_secs(1),
        }
    }
}

impl PhiConfig {
    /// The tuning for heartbeats every `period`: threshold 8 and a window of 200 as in Akka,
    /// the period as the first estimate, and a least standard deviation of a quarter of it
    /// (the deviation Akka seeds its window with), so that a sender beating every 100 ms is
    /// judged on its own rhythm rather than one ten times slower.
    ///
    /// Why a quarter (issue 15, BENCHMARKS.md, `cargo run --release -p vitals-core --example
    /// replay`): at 100 ms heartbeats, min_std_dev 100 ms (one period, as `default()` has)
    /// suspects a crash after 573 ms on a LAN; 25 ms after 181 ms, still with no false
    /// suspicion on the LAN and heavy-tailed (Pareto) traces, where 10 ms (103 ms) makes
    /// dozens an hour. What no min_std_dev fixes is a sender that stalls for longer than
    /// anything in its window: that is what `acceptable_pause` and a confirmation are for.
    pub fn for_period(period: Duration) -> PhiConfig {
        PhiConfig {
            threshold: 8.0,
            max_samples: 200,
            min_std_dev: (period / 4).max(Duration::from_millis(1)),
            acceptable_pause: Duration::ZERO,
            first_heartbeat_estimate: period,
        }
    }
}

/// A detector configuration that cannot work, naming the field so config layers can point
/// at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DetectorError {
    pub field: &'static str,
    /// Lowercase, names the bad value and the fix.
    pub message: String,
}

impl PhiConfig {
    pub fn validate(&self) -> Result<(), DetectorError> {
        let err = |field, message: String| Err(DetectorError { field, message });
        let threshold = self.threshold;
        if !(threshold.is_finite() && threshold > 0.0) {
            return err(
                "threshold",
                format!(
                    "threshold ({threshold}) must be a finite number above 0; Akka and Cassandra use 8"
                ),
            );
        }
        if self.max_samples == 0 {
            return err(
                "max_samples",
                "max_samples must be at least 1: phi learns from a window of intervals".into(),
            );
        }
        if self.max_samples > MAX_SAMPLES {
            return err(
                "max_samples",
                format!(
                    "max_samples ({}) must be at most {MAX_SAMPLES}: the window is recomputed on every heartbeat",
                    self.max_samples
                ),
            );
        }
        if self.min_std_dev.is_zero() {
            return err(
                "min_std_dev",
                "min_std_dev must be longer than zero: with no spread, any late heartbeat is infinitely suspicious".into(),
            );
        }
        if self.first_heartbeat_estimate.is_zero() {
            return err(
                "first_heartbeat_estimate",
                "first_heartbeat_estimate must be longer than zero: set it to the expected heartbeat period".into(),
            );
        }
        Ok(())
    }
}

/// The phi accrual detector of one sender.
///
/// Before the first heartbeat phi is 0 and [`poll_timeout`](Detector::poll_timeout) is `None`.
#[derive(Debug, Clone)]
pub struct PhiAccrual {
    config: PhiConfig,
    /// Inter-arrival intervals in seconds, oldest first; at most `max_samples`.
    intervals: VecDeque<f64>,
    /// Mean interval plus the acceptable pause, in seconds.
    mean: f64,
    /// Standard deviation of the intervals in seconds, at least `min_std_dev`.
    std_dev: f64,
    last: Option<Instant>,
}

impl PhiAccrual {
    pub fn new(config: PhiConfig) -> Result<Self, DetectorError> {
        config.validate()?;
        let estimate = config.first_heartbeat_estimate.as_secs_f64();
        let mut detector = PhiAccrual {
            config,
            intervals: VecDeque::new(),
            mean: 0.0,
            std_dev: 0.0,
            last: None,
        };
        // Akka's seed: two intervals a quarter of the estimate (its assumed deviation) either
        // side of it, so the first real heartbeats are judged against a plausible rhythm.
        detector.record(estimate * 0.75);
        detector.record(estimate * 1.25);
        Ok(detector)
    }

    pub fn config(&self) -> &PhiConfig {
        &self.config
    }

    pub fn last_heartbeat(&self) -> Option<Instant> {
        self.last
    }

    /// How many intervals the window holds (the two seeds included until pushed out).
    pub fn sample_count(&self) -> usize {
        self.intervals.len()
    }

    /// The interval phi expects: the window's mean plus the acceptable pause.
    pub fn mean(&self) -> Duration {
        Duration::try_from_secs_f64(self.mean).unwrap_or(Duration::MAX)
    }

    /// The window's standard deviation, at least `min_std_dev`.
    pub fn std_dev(&self) -> Duration {
        Duration::try_from_secs_f64(self.std_dev).unwrap_or(Duration::MAX)
    }

    /// Phi at `now`: 0 before the first heartbeat, then growing with the silence, at most
    /// [`MAX_PHI`].
    pub fn phi(&self, now: Instant) -> f64 {
        self.last.map_or(0.0, |last| {
            self.phi_after(now.saturating_duration_since(last))
        })
    }

    fn record(&mut self, interval: f64) {
        while self.intervals.len() >= self.config.max_samples {
            self.intervals.pop_front();
        }
        self.intervals.push_back(interval);
        // Never empty here; two passes rather than a running sum of squares, which loses
        // precision as the window slides.
        let n = self.intervals.len() as f64;
        let mean = self.intervals.iter().sum::<f64>() / n;
        let variance = self
            .intervals
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum::<f64>()
            / n;
        self.mean = mean + self.config.acceptable_pause.as_secs_f64();
        self.std_dev = variance.sqrt().max(self.config.min_std_dev.as_secs_f64());
    }

    /// Phi after `elapsed` of silence.
    ///
    /// Akka approximates the normal CDF with a logistic, F(y) = 1 / (1 + e^-k) where
    /// k = y (1.5976 + 0.070566 y²), and takes phi = -log10(1 - F) in two branches. Both are
    /// the one expression log10(1 + e^k), computed here as a softplus that neither overflows
    /// for large k nor cancels for small k; it is non-decreasing in `elapsed`.
    fn phi_after(&self, elapsed: Duration) -> f64 {
        let y = (elapsed.as_secs_f64() - self.mean) / self.std_dev;
        let k = y * (1.5976 + 0.070566 * y * y);
        let phi = (k.max(0.0) + (-k.abs()).exp().ln_1p()) / LN_10;
        if phi.is_nan() {
            MAX_PHI
        } else {
            phi.min(MAX_PHI)
        }
    }

    /// The silence after which phi reaches the threshold, to the nanosecond; `None` if it
    /// never does (a threshold above [`MAX_PHI`]).
    ///
    /// Found by search rather than by inverting the formula, so that it agrees exactly with
    /// [`phi`](Self::phi): suspected at the returned instant, not suspected a nanosecond before.
    fn crossing(&self) -> Option<Duration> {
        let reached = |nanos: u128| self.phi_after(from_nanos(nanos)) >= self.config.threshold;
        if reached(0) {
            return Some(Duration::ZERO);
        }
        // Phi grows without bound, so doubling overshoots the crossing within ~100 steps…
        let mut hi: u128 = 1;
        while !reached(hi) {
            hi = hi
                .checked_mul(2)
                .filter(|&n| n <= Duration::MAX.as_nanos())?;
        }
        // …and bisection closes in on it, keeping `!reached(lo) && reached(hi)`.
        let mut lo = hi / 2;
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if reached(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        Some(from_nanos(hi))
    }
}

fn from_nanos(nanos: u128) -> Duration {
    const NANOS_PER_SEC: u128 = 1_000_000_000;
    let secs = u64::try_from(nanos / NANOS_PER_SEC).unwrap_or(u64::MAX);
    // Below one billion, so it always fits.
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, subsec)
}

impl Detector for PhiAccrual {
    fn handle_heartbeat(&mut self, now: Instant) {
        let now = self.last.map_or(now, |last| last.max(now));
        if let Some(last) = self.last {
            let elapsed = now.duration_since(last);
            // Akka drops an interval that ends after the sender was already suspected: an
            // outage is not the rhythm to learn, and learning it would slow the next detection.
            // But then a sender whose real period exceeds what the window expects is suspected
            // before every heartbeat, forever. So such an interval is learned capped at the
            // crossing: it teaches no more than the detector already tolerated, and a
            // mis-estimated rhythm is still learned within a few heartbeats.
            let learned = if self.phi_after(elapsed) >= self.config.threshold {
                self.crossing()
                    .map_or(elapsed, |crossing| crossing.min(elapsed))
            } else {
                elapsed
            };
            self.record(learned.as_secs_f64());
        }
        self.last = Some(now);
    }

    fn suspicion(&self, now: Instant) -> Suspicion {
        Suspicion {
            level: self.phi(now),
            threshold: self.config.threshold,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.last?.checked_add(self.crossing()?)
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

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A detector fed heartbeats `gaps` apart starting at `t0`; returns it with the last arrival.
    fn fed(
        config: PhiConfig,
        t0: Instant,
        gaps: impl IntoIterator<Item = Duration>,
    ) -> (PhiAccrual, Instant) {
        let mut detector = PhiAccrual::new(config).unwrap();
        let mut now = t0;
        detector.handle_heartbeat(now);
        for gap in gaps {
            now += gap;
            detector.handle_heartbeat(now);
        }
        (detector, now)
    }

    fn regular() -> (PhiAccrual, Instant) {
        fed(
            PhiConfig::default(),
            base(),
            std::iter::repeat_n(ms(1000), 30),
        )
    }

    #[test]
    fn nothing_expected_before_the_first_heartbeat() {
        let detector = PhiAccrual::new(PhiConfig::default()).unwrap();
        let t0 = base();
        assert_eq!(detector.phi(t0 + ms(1_000_000)), 0.0);
        assert!(!detector.suspicion(t0).is_suspected());
        assert_eq!(detector.poll_timeout(), None);
        assert_eq!(detector.last_heartbeat(), None);
        // Akka's seed: the estimate with a quarter of it as deviation.
        assert_eq!((detector.mean(), detector.std_dev()), (ms(1000), ms(250)));
        assert_eq!(detector.sample_count(), 2);
    }

    #[test]
    fn phi_grows_with_the_silence() {
        let (detector, last) = regular();
        let phi = |after: u64| detector.phi(last + ms(after));
        assert!(phi(100) < 1e-6, "{}", phi(100));
        // At the mean interval, a heartbeat is as likely to come as not: phi = -log10(0.5).
        assert!((phi(1000) - 0.5f64.log10().abs()).abs() < 1e-9);
        assert!(phi(500) < phi(1000) && phi(1000) < phi(1500) && phi(1500) < phi(2000));
        assert!(!detector.suspicion(last + ms(1500)).is_suspected());
        assert!(detector.suspicion(last + ms(2000)).is_suspected());
        assert_eq!(detector.suspicion(last).threshold, 8.0);
    }

    #[test]
    fn poll_timeout_agrees_with_suspicion() {
        let (detector, last) = regular();
        let at = detector.poll_timeout().unwrap();
        assert!(
            at > last + ms(1500) && at < last + ms(2000),
            "{:?}",
            at - last
        );
        assert!(
            !detector
                .suspicion(at - Duration::from_nanos(1))
                .is_suspected()
        );
        assert!(detector.suspicion(at).is_suspected());
    }

    #[test]
    fn min_std_dev_is_honored() {
        let config = PhiConfig {
            min_std_dev: ms(500),
            max_samples: 10,
            ..PhiConfig::default()
        };
        // Perfectly regular: no spread at all once the seeds are pushed out.
        let (detector, last) = fed(config, base(), std::iter::repeat_n(ms(1000), 20));
        assert_eq!(detector.std_dev(), ms(500));
        // One deviation late: y = 1.
        let expected = (1.0 + (1.5976f64 + 0.070566).exp()).log10();
        assert!((detector.phi(last + ms(1500)) - expected).abs() < 1e-9);
        // Real spread above the floor is kept as is.
        let jittery = [ms(0), ms(4000)].into_iter().cycle().take(20);
        let (detector, _) = fed(
            PhiConfig {
                max_samples: 10,
                ..PhiConfig::default()
            },
            base(),
            jittery,
        );
        assert_eq!(detector.std_dev(), ms(2000));
    }

    #[test]
    fn window_is_bounded() {
        let config = PhiConfig {
            max_samples: 5,
            ..PhiConfig::default()
        };
        let (detector, _) = fed(config, base(), std::iter::repeat_n(ms(3000), 100));
        assert_eq!(detector.sample_count(), 5);
        assert_eq!(detector.mean(), ms(3000));
    }

    #[test]
    fn acceptable_pause_shifts_the_mean() {
        let config = PhiConfig {
            acceptable_pause: ms(2000),
            ..PhiConfig::default()
        };
        let (detector, last) = fed(config, base(), std::iter::repeat_n(ms(1000), 30));
        assert_eq!(detector.mean(), ms(3000));
        assert!(!detector.suspicion(last + ms(3500)).is_suspected());
    }

    #[test]
    fn an_outage_teaches_little_but_a_slower_rhythm_is_learned() {
        // One minute of silence in a 1 s rhythm is learned as no more than the crossing.
        let (mut detector, last) = regular();
        let crossing = detector.poll_timeout().unwrap() - last;
        detector.handle_heartbeat(last + ms(60_000));
        assert!(detector.mean() < ms(1100), "{:?}", detector.mean());
        assert!(detector.poll_timeout().unwrap() - (last + ms(60_000)) < crossing * 3);
        // Heartbeats every 5 s against a 1 s estimate: suspected at first, then learned.
        let (detector, last) = fed(
            PhiConfig::default(),
            base(),
            std::iter::repeat_n(ms(5000), 10),
        );
        assert!(!detector.suspicion(last + ms(5000)).is_suspected());
    }

    #[test]
    fn earlier_heartbeats_and_huge_silences_do_not_panic() {
        let t0 = base();
        let (mut detector, last) = fed(PhiConfig::default(), t0 + ms(10_000), [ms(1000)]);
        detector.handle_heartbeat(t0);
        assert_eq!(detector.last_heartbeat(), Some(last));
        assert_eq!(detector.phi(t0), detector.phi(last));
        let phi = detector.phi(last + Duration::from_secs(100 * 365 * 86_400));
        assert_eq!(phi, MAX_PHI);
        let unreachable = PhiConfig {
            threshold: 2.0 * MAX_PHI,
            ..PhiConfig::default()
        };
        let (detector, _) = fed(unreachable, t0, [ms(1000)]);
        assert_eq!(detector.poll_timeout(), None);
    }

    #[test]
    fn validation_names_the_field() {
        let bad = |config: PhiConfig| PhiAccrual::new(config).unwrap_err();
        let d = PhiConfig::default;
        assert_eq!(
            bad(PhiConfig {
                threshold: f64::NAN,
                ..d()
            })
            .field,
            "threshold"
        );
        assert_eq!(
            bad(PhiConfig {
                threshold: 0.0,
                ..d()
            })
            .to_string(),
            "threshold (0) must be a finite number above 0; Akka and Cassandra use 8"
        );
        assert_eq!(
            bad(PhiConfig {
                max_samples: 0,
                ..d()
            })
            .field,
            "max_samples"
        );
        assert_eq!(
            bad(PhiConfig {
                max_samples: MAX_SAMPLES + 1,
                ..d()
            })
            .field,
            "max_samples"
        );
        assert_eq!(
            bad(PhiConfig {
                min_std_dev: Duration::ZERO,
                ..d()
            })
            .field,
            "min_std_dev"
        );
        let estimate = PhiConfig {
            first_heartbeat_estimate: Duration::ZERO,
            ..d()
        };
        assert_eq!(bad(estimate).field, "first_heartbeat_estimate");
        assert_eq!(
            PhiConfig {
                max_samples: 1,
                ..d()
            }
            .validate(),
            Ok(())
        );
    }

    #[test]
    fn detectors_are_interchangeable() {
        let t0 = base();
        let mut detectors: Vec<Box<dyn Detector>> = vec![
            Box::new(super::super::Deadline::new(ms(1000), ms(1000))),
            Box::new(PhiAccrual::new(PhiConfig::default()).unwrap()),
        ];
        for detector in &mut detectors {
            detector.handle_heartbeat(t0);
            let at = detector.poll_timeout().unwrap();
            assert!(
                !detector
                    .suspicion(at - Duration::from_nanos(1))
                    .is_suspected()
            );
            assert!(detector.suspicion(at).is_suspected());
        }
    }

    fn history() -> impl Strategy<Value = (PhiConfig, Vec<u64>)> {
        let config = (1usize..50, 1u64..2000, 0u64..3000, 1u64..5000, 0.5f64..20.0).prop_map(
            |(max_samples, min_sd, pause, estimate, threshold)| PhiConfig {
                threshold,
                max_samples,
                min_std_dev: ms(min_sd),
                acceptable_pause: ms(pause),
                first_heartbeat_estimate: ms(estimate),
            },
        );
        (config, prop::collection::vec(0u64..20_000, 0..60))
    }

    #[test]
    fn a_fast_sender_is_judged_on_its_own_period() {
        // Issue 15: the 1 s defaults suspected a crashed 100 ms sender only after ~570 ms.
        let config = PhiConfig::for_period(ms(100));
        assert_eq!(config.first_heartbeat_estimate, ms(100));
        assert_eq!(config.min_std_dev, ms(25));
        assert!(config.validate().is_ok());
        let (detector, last) = fed(config, base(), std::iter::repeat_n(ms(100), 300));
        let crossing = detector.poll_timeout().unwrap() - last;
        assert!(crossing > ms(150) && crossing < ms(250), "{crossing:?}");
        let (slow, last) = fed(
            PhiConfig::default(),
            base(),
            std::iter::repeat_n(ms(100), 300),
        );
        assert!(slow.poll_timeout().unwrap() - last > ms(500));
        // A period too short to divide still has some spread.
        assert_eq!(
            PhiConfig::for_period(Duration::from_nanos(3)).min_std_dev,
            ms(1)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Probed at a random start then steps of a random scale, from nanoseconds (where
        /// float rounding would show) to seconds.
        #[test]
        fn phi_is_monotone_in_the_silence(
            (config, gaps) in history(),
            start in 0u64..30_000_000_000,
            (scale, steps) in (0u32..10).prop_flat_map(|k| (Just(k), prop::collection::vec(0u64..10u64.pow(k + 1), 1..40))),
        ) {
            let (detector, last) = fed(config, base(), gaps.into_iter().map(ms));
            let mut ns = start;
            let mut previous = detector.phi(last + Duration::from_nanos(ns));
            for step in steps {
                ns += step;
                let phi = detector.phi(last + Duration::from_nanos(ns));
                prop_assert!(previous <= phi, "{previous} > {phi} at {ns} ns (scale {scale})");
                prop_assert!((0.0..=MAX_PHI).contains(&phi));
                previous = phi;
            }
        }

        #[test]
        fn poll_timeout_is_where_suspicion_starts((config, gaps) in history()) {
            let (detector, last) = fed(config, base(), gaps.into_iter().map(ms));
            let at = detector.poll_timeout().unwrap();
            prop_assert!(detector.suspicion(at).is_suspected());
            if at > last {
                prop_assert!(!detector.suspicion(at - Duration::from_nanos(1)).is_suspected());
            }
        }
    }
}
