//! The service's lifecycle: starting → ready → draining → stopped.
//!
//! Startup hooks (connect to the database, load configuration) run once, in order, each
//! retried with backoff until it succeeds; the startup probe passes when all have. Draining
//! begins on SIGTERM or a shutdown call: readiness fails at once so load balancers stop
//! sending, liveness keeps passing so nothing kills the process while it finishes its work.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

/// Where the service is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Startup hooks are running; `progress` says which and how it goes.
    Starting { progress: String },
    /// Started: probes answer from the checks.
    Ready,
    /// Shutting down: not ready, still alive, still serving what is in flight.
    Draining,
    /// The drain delay is over; the server is closing.
    Stopped,
}

impl Phase {
    pub fn as_str(&self) -> &'static str {
        match self {
            Phase::Starting { .. } => "starting",
            Phase::Ready => "ready",
            Phase::Draining => "draining",
            Phase::Stopped => "stopped",
        }
    }

    pub fn is_started(&self) -> bool {
        !matches!(self, Phase::Starting { .. })
    }
}

type HookFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One initialization step that must succeed before the service counts as started.
#[derive(Clone)]
pub(crate) struct Hook {
    pub(crate) name: String,
    pub(crate) run: Arc<dyn Fn() -> HookFuture + Send + Sync>,
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hook").field("name", &self.name).finish()
    }
}

impl Hook {
    pub(crate) fn new<F, Fut, E>(name: String, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        Hook {
            name,
            run: Arc::new(move || {
                let fut = hook();
                Box::pin(async move { fut.await.map_err(|error| error.to_string()) })
            }),
        }
    }
}

/// Backoff between attempts of a failing hook: 0.5 s doubling to at most 30 s. Kubernetes'
/// startup probe decides when to give up; the service keeps trying until then.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500)
        .saturating_mul(1 << attempt.min(6))
        .min(Duration::from_secs(30))
}

/// Run the hooks in order, retrying each until it succeeds, reporting progress through the
/// phase, then declare the service ready (unless a shutdown began meanwhile).
pub(crate) async fn run_hooks(hooks: Vec<Hook>, phase: watch::Sender<Phase>) {
    for hook in &hooks {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            match (hook.run)().await {
                Ok(()) => {
                    tracing::info!(hook = %hook.name, attempt, "startup hook succeeded");
                    break;
                }
                Err(error) => {
                    tracing::warn!(hook = %hook.name, attempt, %error, "startup hook failed; retrying");
                    let progress = format!(
                        "startup hook {:?} failed (attempt {attempt}): {error}",
                        hook.name
                    );
                    let starting = phase.send_if_modified(|current| {
                        let starting = matches!(current, Phase::Starting { .. });
                        if starting {
                            *current = Phase::Starting { progress };
                        }
                        starting
                    });
                    if !starting {
                        // A shutdown began while starting: stop trying.
                        return;
                    }
                    tokio::time::sleep(backoff(attempt - 1)).await;
                }
            }
        }
    }
    phase.send_if_modified(|current| {
        if matches!(current, Phase::Starting { .. }) {
            *current = Phase::Ready;
            true
        } else {
            false
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(5), Duration::from_secs(16));
        assert_eq!(backoff(6), Duration::from_secs(30));
        assert_eq!(backoff(60), Duration::from_secs(30));
    }
}
