//! `Threshold`: any async number judged against [`Limits`] (a queue's length, a pool's
//! waiters, a lag).
//!
//! A number that cannot be measured is not a number above the limit. When the measurement
//! fails, or does not answer before the run's answer-by instant ([`in_time`]), the report says
//! so ("could not measure queue length: no answer within 900ms; limits not judged") and warns
//! by default: the dependency the measurement reads from has a check of its own that says
//! whether it is down. A critical threshold over a non-critical dependency (the seed's queue in
//! its cache) would otherwise take every replica out of rotation when the cache goes down
//! (issue 11, item 9). [`Threshold::when_unmeasurable`] chooses another status on purpose.

use std::fmt::Display;
use std::future::Future;

use vitals_core::{Report, Status};

use crate::{BoxFuture, Limits, Probe, in_time};

/// A probe that measures a number with an async function and judges it against limits.
///
/// ```
/// use vitals_probes::{Limits, Threshold};
/// # async fn queue_len() -> Result<f64, std::io::Error> { Ok(12.0) }
/// // The seed's rule: more than 10,000 queued tasks means not ready.
/// let probe = Threshold::new("queue length", "items", Limits::fail_above(10_000.0).unwrap(), queue_len);
/// ```
pub struct Threshold<F> {
    what: String,
    unit: String,
    limits: Limits,
    measure: F,
    external: bool,
    unmeasurable: Status,
}

impl<F> std::fmt::Debug for Threshold<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Threshold")
            .field("what", &self.what)
            .field("unit", &self.unit)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<F> Threshold<F> {
    /// `what` names the measured thing in messages ("queue length"); `unit` is its unit.
    pub fn new(
        what: impl Into<String>,
        unit: impl Into<String>,
        limits: Limits,
        measure: F,
    ) -> Self {
        Threshold {
            what: what.into(),
            unit: unit.into(),
            limits,
            measure,
            external: false,
            unmeasurable: Status::Warn,
        }
    }

    /// The status to report when the number cannot be measured (default: warn). An unknown
    /// backlog is not a known one, and the dependency it is read from has its own check; say
    /// `Status::Fail` only when not knowing the number must take the service out of rotation.
    pub fn when_unmeasurable(mut self, status: Status) -> Self {
        self.unmeasurable = status;
        self
    }

    /// Declare that measuring reaches an external dependency (the queue lives in Redis).
    pub fn external(mut self) -> Self {
        self.external = true;
        self
    }
}

impl<F, Fut, E> Probe for Threshold<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<f64, E>> + Send + 'static,
    E: Display,
{
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let unmeasurable = |why: String| Report {
                status: self.unmeasurable,
                output: Some(format!(
                    "could not measure {}: {why}; limits not judged",
                    self.what
                )),
                observed: None,
            };
            match in_time((self.measure)()).await {
                Ok(Ok(value)) => self.limits.judge(&self.what, value, &self.unit),
                Ok(Err(error)) => unmeasurable(error.to_string()),
                Err(late) => unmeasurable(late.to_string()),
            }
        })
    }

    fn is_external(&self) -> bool {
        self.external
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn judges_the_measured_number_and_reports_measuring_errors() {
        let limits = Limits::fail_above(10_000.0).unwrap();
        let full = Threshold::new("queue length", "items", limits, || async {
            Ok::<_, std::io::Error>(12_000.0)
        });
        let report = full.check().await;
        assert_eq!(report.status, Status::Fail);
        assert_eq!(report.observed.map(|o| o.value), Some(12_000.0));

        let broken = Threshold::new("queue length", "items", limits, || async {
            Err::<f64, _>("connection refused")
        });
        let report = broken.check().await;
        assert_eq!(report.status, Status::Warn);
        assert_eq!(
            report.output.as_deref(),
            Some("could not measure queue length: connection refused; limits not judged")
        );
        let strict = Threshold::new("queue length", "items", limits, || async {
            Err::<f64, _>("connection refused")
        })
        .when_unmeasurable(Status::Fail);
        assert_eq!(strict.check().await.status, Status::Fail);
    }

    /// Issue 11, item 9: a measurement that hangs (a Redis client reconnecting) used to run
    /// into the check's timeout and fail as a timeout, critical. It now answers before the
    /// timeout that it could not measure.
    #[tokio::test(start_paused = true)]
    async fn a_hanging_measurement_is_unmeasured_before_the_timeout_not_timed_out() {
        let limits = Limits::fail_above(10_000.0).unwrap();
        let hangs = Threshold::new("queue length", "items", limits, || {
            std::future::pending::<Result<f64, std::io::Error>>()
        });
        let run = crate::run_once(Duration::from_secs(1), async { hangs.check().await }).await;
        let outcome = run.into_outcome(std::time::SystemTime::now());
        assert_eq!(outcome.kind, vitals_core::Kind::Warn, "{outcome:?}");
        assert_eq!(
            outcome.output.as_deref(),
            Some("could not measure queue length: no answer within 900ms; limits not judged")
        );
        assert_eq!(outcome.duration, Duration::from_millis(900));
    }
}
