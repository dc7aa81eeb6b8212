//! `Threshold`: any async number judged against [`Limits`] (a queue's length, a pool's
//! waiters, a lag).

use std::fmt::Display;
use std::future::Future;

use vitals_core::{Report, Status};

use crate::{BoxFuture, Limits, Probe};

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
            unmeasurable: Status::Fail,
        }
    }

    /// The status to report when the number cannot be measured (default: fail). The seed's
    /// queue check lets readiness pass when the queue's Redis is down: the cache check
    /// already reports that, and an unknown backlog is not a known one.
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
            match (self.measure)().await {
                Ok(value) => self.limits.judge(&self.what, value, &self.unit),
                Err(error) => Report {
                    status: self.unmeasurable,
                    output: Some(format!("could not measure {}: {error}", self.what)),
                    observed: None,
                },
            }
        })
    }

    fn is_external(&self) -> bool {
        self.external
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(report.status, Status::Fail);
        assert_eq!(
            report.output.as_deref(),
            Some("could not measure queue length: connection refused")
        );
        let lenient = Threshold::new("queue length", "items", limits, || async {
            Err::<f64, _>("connection refused")
        })
        .when_unmeasurable(Status::Warn);
        assert_eq!(lenient.check().await.status, Status::Warn);
    }
}
