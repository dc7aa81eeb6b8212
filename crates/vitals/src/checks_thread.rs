//! Where the checks run: on a thread of their own, away from the probe requests (issue 18).
//!
//! A probe request must not wait for a check, whatever the check does: a burst of reconnects,
//! a slow `/proc` read, a hung dependency's timeouts, the log lines of a state change. On the
//! service's own runtime every check run is a task between probe requests on the same workers
//! (and with the server pinned to one core, tokio starts exactly one worker). So in a
//! multi-threaded runtime the checks get a current-thread runtime on a thread named
//! `vitals-checks`, at a lower scheduling priority (nice +10, Linux), as do its blocking
//! threads (memory and disk reads). The kernel then runs a probe request first when both are
//! ready, and the check still gets its share of a busy core.
//!
//! In a current-thread runtime (tests on tokio's paused clock, services that chose one thread)
//! the checks stay on the caller's runtime: such a service asked for one thread, and the
//! paused clock only governs its own runtime. [`HealthBuilder::checks_thread`] decides
//! explicitly.
//!
//! What it is not: an isolation of memory or of file descriptors, or of the connections a
//! check creates in an application's pool (their drivers then run on this thread).
//!
//! [`HealthBuilder::checks_thread`]: crate::HealthBuilder::checks_thread

use std::future::Future;

use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::watch;

use crate::lifecycle::Phase;

/// Somewhere to spawn the checks' tasks.
#[derive(Debug)]
pub(crate) struct Place {
    handle: Handle,
}

impl Place {
    /// The checks' own thread if `own` says so (by default: when the caller's runtime is
    /// multi-threaded), else the caller's runtime. The thread's runtime lives until the phase
    /// is `Stopped` or the health handle is gone.
    pub(crate) fn choose(own: Option<bool>, phase: watch::Receiver<Phase>) -> Place {
        let caller = Handle::current();
        let own = own.unwrap_or(caller.runtime_flavor() == RuntimeFlavor::MultiThread);
        if !own {
            return Place { handle: caller };
        }
        match own_thread(phase) {
            Ok(handle) => Place { handle },
            Err(error) => {
                tracing::warn!(%error, "cannot start the checks' own thread; running them beside the requests");
                Place { handle: caller }
            }
        }
    }

    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }
}

fn own_thread(mut phase: watch::Receiver<Phase>) -> std::io::Result<Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("vitals-checks-io")
        .on_thread_start(lower_priority)
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("vitals-checks".into())
        .spawn(move || {
            lower_priority();
            // Drives every check task until the service stops (the tasks return then too) or
            // the health handle is dropped (the phase's sender with it).
            runtime.block_on(async move {
                let _ = phase.wait_for(|phase| *phase == Phase::Stopped).await;
            });
        })?;
    Ok(handle)
}

/// Nice +10 for the calling thread (Linux's `setpriority` acts on one thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(%error, "cannot lower the checks' thread priority");
    }
}
