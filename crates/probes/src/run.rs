//! `run_once`: the one place that runs a check once, for every runner in vitals.
//!
//! A runner (the library's scheduler, the monitor's engine) calls [`run_once`] with the
//! check's future and its timeout, and gets back a [`Run`]: how the run ended and how long it
//! took. Three endings, each kept apart because each calls for a different fix:
//!
//! - it finished, with whatever the future returned (a [`Report`], or a report and a health
//!   body);
//! - it panicked: the panic is caught and becomes a failure naming the panic's message
//!   (`check panicked: index out of bounds`), not a dead task whose check goes stale with the
//!   reason lost;
//! - it did not finish within its timeout: the future is dropped there (probes are
//!   cancel-safe) and the run is an outcome of kind [`Kind::Timeout`] (`timed out after 2s`).
//!
//! The duration is measured on tokio's clock, so paused-clock tests see exact durations.
//!
//! A probe that waits on something that may hang (a reconnecting Redis client, a measurement)
//! can finish in its own words instead of being cut: while it runs, [`in_time`] bounds a
//! future by the run's *answer-by* instant, a little before the hard timeout (a tenth of the
//! timeout early, at most 100 ms), and says how long it waited ("no answer within 900ms").
//! Which verdict that is stays the probe's call: the Redis probe fails, a [`Threshold`]
//! (crate::Threshold) whose number cannot be measured says so without failing.
//!
//! What it is not: a scheduler (when to run is the caller's business), a logger (the caller
//! knows the check's name and logs a panic with it), or a clock for wall time. The wall time of
//! [`Outcome::at`] is passed in by the caller, which owns its clock (the library reads the
//! system's, the engine its own), to [`Run::into_outcome`] or [`Run::into_outcome_and`].

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, SystemTime};

use futures_util::FutureExt;
use tokio::time::Instant;
use vitals_core::{Kind, Outcome, Report};

use crate::text::fmt_duration;

/// How one run of a check ended, and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Run<T> {
    pub end: RunEnd<T>,
    /// From the first poll to the end, on tokio's clock. A timed-out run took its timeout
    /// (give or take scheduling noise).
    pub duration: Duration,
}

/// The three ways a run ends.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd<T> {
    /// The future finished with this value.
    Finished(T),
    /// The future panicked with this message (`"unknown panic"` if the payload was neither a
    /// `&str` nor a `String`).
    Panicked(String),
    /// The future did not finish within `after` and was dropped.
    TimedOut { after: Duration },
}

tokio::task_local! {
    /// The answer-by instant of the run being polled, and the time it allows.
    static ANSWER_BY: (Instant, Duration);
}

/// A future that did not finish by its run's answer-by instant (see [`in_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("no answer within {}", fmt_duration(*.allowed))]
pub struct Late {
    /// From the start of the run to its answer-by instant.
    pub allowed: Duration,
}

/// `future`, bounded by the answer-by instant of the [`run_once`] it runs in: a little before
/// the run is cut, so the probe can still report why in its own words. Outside a run (a test
/// calling `check()` directly), unbounded.
pub async fn in_time<F: Future>(future: F) -> Result<F::Output, Late> {
    match ANSWER_BY.try_with(|bound| *bound) {
        Ok((at, allowed)) => tokio::time::timeout_at(at, future)
            .await
            .map_err(|_| Late { allowed }),
        Err(_) => Ok(future.await),
    }
}

/// How much earlier than the hard timeout a probe should answer: a tenth of the timeout, at
/// most 100 ms (the rest of the runner's work after an answer takes microseconds).
fn answer_margin(timeout: Duration) -> Duration {
    (timeout / 10).min(Duration::from_millis(100))
}

/// Run `check` once, cut at `timeout`, with a panic caught as [`RunEnd::Panicked`].
///
/// `check` is any future: a probe's `check()`, or one that also returns a health body. A
/// panic is caught only while the future is polled; a caller that makes the future by calling
/// code that might panic first should wrap the call in an `async` block
/// (`run_once(timeout, async { probe.check().await })`) so that the call happens at the first
/// poll, inside the catch.
pub async fn run_once<F>(timeout: Duration, check: F) -> Run<F::Output>
where
    F: Future,
{
    let start = Instant::now();
    // `AssertUnwindSafe`: after a panic the future is dropped, never polled again, so no state
    // it broke halfway is observed afterwards.
    let allowed = timeout - answer_margin(timeout);
    let bounded = ANSWER_BY.scope(
        (start + allowed, allowed),
        AssertUnwindSafe(check).catch_unwind(),
    );
    let result = tokio::time::timeout(timeout, bounded).await;
    let duration = start.elapsed();
    let end = match result {
        Ok(Ok(value)) => RunEnd::Finished(value),
        Ok(Err(panic)) => RunEnd::Panicked(panic_message(panic.as_ref())),
        Err(_) => RunEnd::TimedOut { after: timeout },
    };
    Run { end, duration }
}

impl<T> Run<T> {
    /// The outcome at wall time `at`: a finished run's [`Report`] (with the value `split` puts
    /// beside it handed back), or a failure or timeout saying what happened.
    pub fn into_outcome_with<E>(
        self,
        at: SystemTime,
        split: impl FnOnce(T) -> (Report, E),
    ) -> (Outcome, Option<E>) {
        match self.end {
            RunEnd::Finished(value) => {
                let (report, extra) = split(value);
                (report.into_outcome(at, self.duration), Some(extra))
            }
            RunEnd::Panicked(message) => (
                Outcome::new(Kind::Fail, at, self.duration)
                    .with_output(format!("check panicked: {message}")),
                None,
            ),
            RunEnd::TimedOut { after } => (
                Outcome::new(Kind::Timeout, at, self.duration)
                    .with_output(format!("timed out after {}", fmt_duration(after))),
                None,
            ),
        }
    }
}

impl Run<Report> {
    /// The outcome of a probe's run at wall time `at`.
    pub fn into_outcome(self, at: SystemTime) -> Outcome {
        self.into_outcome_with(at, |report| (report, ())).0
    }
}

impl<E> Run<(Report, Option<E>)> {
    /// The outcome at wall time `at` of a run that returns a report and maybe something beside
    /// it (the engine's service targets: a report and the service's health body), and that
    /// something if the run finished with one.
    pub fn into_outcome_and(self, at: SystemTime) -> (Outcome, Option<E>) {
        let (outcome, extra) = self.into_outcome_with(at, |pair| pair);
        (outcome, extra.flatten())
    }
}

/// What `panic!` was called with: a `&str` for a literal message, a `String` for a formatted
/// one; anything else (`panic_any`) has no text to show.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use vitals_core::Status;

    use super::*;
    use crate::{BoxFuture, Probe, from_fn};

    fn at() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    #[tokio::test(start_paused = true)]
    async fn a_passing_probe_passes_with_its_duration() {
        let probe = from_fn(|| async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            Report::pass().with_output("fine")
        });
        let run = run_once(Duration::from_secs(2), probe.check()).await;
        assert_eq!(run.duration, Duration::from_millis(300));
        let outcome = run.into_outcome(at());
        assert_eq!(outcome.kind, Kind::Pass);
        assert_eq!(outcome.at, at());
        assert_eq!(outcome.duration, Duration::from_millis(300));
        assert_eq!(outcome.output.as_deref(), Some("fine"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_is_cut_at_its_timeout() {
        let probe = from_fn(std::future::pending::<Report>);
        let run = run_once(Duration::from_secs(2), probe.check()).await;
        assert_eq!(
            run.end,
            RunEnd::TimedOut {
                after: Duration::from_secs(2)
            }
        );
        assert_eq!(run.duration, Duration::from_secs(2));
        let outcome = run.into_outcome(at());
        assert_eq!(outcome.kind, Kind::Timeout);
        assert_eq!(outcome.status(), Status::Fail);
        assert_eq!(outcome.output.as_deref(), Some("timed out after 2s"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_probe_fails_naming_the_panic() {
        let probe = from_fn(|| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            panic!("driver bug: {} connections", 3)
        });
        let run = run_once(Duration::from_secs(2), probe.check()).await;
        assert_eq!(
            run.end,
            RunEnd::Panicked("driver bug: 3 connections".into())
        );
        let outcome = run.into_outcome(at());
        assert_eq!(outcome.kind, Kind::Fail);
        assert_eq!(outcome.duration, Duration::from_millis(10));
        assert_eq!(
            outcome.output.as_deref(),
            Some("check panicked: driver bug: 3 connections")
        );
    }

    /// A probe that panics in `check()` itself, before it has a future to return.
    struct PanicsEarly;

    impl Probe for PanicsEarly {
        fn check(&self) -> BoxFuture<'_, Report> {
            panic!("no future for you")
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_panic_while_making_the_future_is_caught_inside_an_async_block() {
        let probe = PanicsEarly;
        let run = run_once(Duration::from_secs(2), async { probe.check().await }).await;
        assert_eq!(run.end, RunEnd::Panicked("no future for you".into()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_report_and_a_body_come_apart_only_when_the_run_finished() {
        let finished = run_once(Duration::from_secs(1), async { (Report::pass(), Some(7)) }).await;
        let (outcome, body) = finished.into_outcome_and(at());
        assert_eq!((outcome.kind, body), (Kind::Pass, Some(7)));

        let hung = run_once(
            Duration::from_millis(1500),
            std::future::pending::<(Report, Option<u8>)>(),
        )
        .await;
        let (outcome, body) = hung.into_outcome_and(at());
        assert_eq!(outcome.kind, Kind::Timeout);
        assert_eq!(outcome.output.as_deref(), Some("timed out after 1.5s"));
        assert_eq!(body, None);
    }
}
