//! `from_fn`: any async function as a probe, for checks vitals has no built-in for.

use std::future::Future;

use vitals_core::Report;

use crate::{BoxFuture, Probe};

/// A probe made from an async function. See [`from_fn`].
pub struct FnProbe<F> {
    f: F,
    external: bool,
}

impl<F> std::fmt::Debug for FnProbe<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FnProbe")
            .field("external", &self.external)
            .finish_non_exhaustive()
    }
}

/// Turn an async function into a probe.
///
/// ```
/// use vitals_probes::{from_fn, Report};
/// let probe = from_fn(|| async { Report::pass().with_output("warm") });
/// ```
pub fn from_fn<F, Fut>(f: F) -> FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Report> + Send + 'static,
{
    FnProbe { f, external: false }
}

impl<F> FnProbe<F> {
    /// Declare that this function reaches an external dependency, so that it is kept out of
    /// the liveness group unless forced.
    pub fn external(mut self) -> Self {
        self.external = true;
        self
    }
}

impl<F, Fut> Probe for FnProbe<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Report> + Send + 'static,
{
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin((self.f)())
    }

    fn is_external(&self) -> bool {
        self.external
    }
}
