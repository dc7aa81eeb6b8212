//! PID 1's duty: reaping orphans. In a container `vitals supervise` is often PID 1, and every
//! process whose parent dies (a daemon's grandchild, a shell's background job) is handed to
//! it; unreaped, each stays a zombie holding a pid until the container's pid limit is hit.
//!
//! The supervisor cannot reap with `waitpid(-1)` itself: that would also take the exit
//! status of the processes tokio is waiting for (the child, exec probes). So, like tini, the
//! duty goes to a process of its own: when `vitals supervise` runs as PID 1 (or with
//! `--subreaper`, which makes it the reaper of its descendants through
//! `prctl(PR_SET_CHILD_SUBREAPER)`), it starts itself again as its only child, marked with
//! [`INIT_MARKER`], and does nothing but reap everything that exits, forward the signals the
//! supervisor forwards (TERM, INT, HUP, QUIT, USR1, USR2) to that child, and exit with its
//! code. Orphans of the service are reparented to it, and reaped.
//!
//! What it is not: an init system. It starts one process and never restarts it; the
//! supervisor it starts does the supervising.

use std::process::Command;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions, getpid, kill_process, wait};
use tokio::signal::unix::{SignalKind, signal};

/// Set in the environment of the supervisor the reaper starts, so it does not start another.
pub const INIT_MARKER: &str = "VITALS_SUPERVISE_INIT";

/// Why the reaper could not do its job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReaperError {
    #[error("cannot become a child subreaper: {0}")]
    Subreaper(#[source] std::io::Error),
    #[error("cannot listen for signals: {0}")]
    Signals(#[source] std::io::Error),
    #[error("cannot start the supervisor ({exe}): {source}")]
    Start {
        exe: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for children: {0}")]
    Wait(#[source] std::io::Error),
}

/// Whether this process must be the reaper: PID 1, or asked to be a subreaper, and not the
/// supervisor a reaper started.
pub fn needed(subreaper: bool) -> bool {
    std::env::var_os(INIT_MARKER).is_none() && (getpid().is_init() || subreaper)
}

/// Start the supervisor again as the only child, reap every process that exits, and return
/// the supervisor's exit code.
pub async fn run(subreaper: bool) -> Result<i32, ReaperError> {
    if subreaper && !getpid().is_init() {
        rustix::process::set_child_subreaper(Some(getpid()))
            .map_err(|e| ReaperError::Subreaper(e.into()))?;
    }
    // Before the child exists, so no signal and no exit is missed.
    let listen = |kind| signal(kind).map_err(ReaperError::Signals);
    let mut chld = listen(SignalKind::child())?;
    let mut forwarded = [
        (listen(SignalKind::terminate())?, Signal::TERM),
        (listen(SignalKind::interrupt())?, Signal::INT),
        (listen(SignalKind::hangup())?, Signal::HUP),
        (listen(SignalKind::quit())?, Signal::QUIT),
        (listen(SignalKind::user_defined1())?, Signal::USR1),
        (listen(SignalKind::user_defined2())?, Signal::USR2),
    ];
    let exe = std::env::current_exe().map_err(|source| ReaperError::Start {
        exe: "/proc/self/exe".to_string(),
        source,
    })?;
    let mut command = Command::new(&exe);
    command
        .args(std::env::args_os().skip(1))
        .env(INIT_MARKER, "1");
    // Its own process group: a terminal's Ctrl-C reaches the reaper alone, which forwards
    // it once.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let child = command.spawn().map_err(|source| ReaperError::Start {
        exe: exe.display().to_string(),
        source,
    })?;
    let supervisor = i32::try_from(child.id())
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| ReaperError::Wait(std::io::Error::other("the child has no pid")))?;
    // `child` is never waited for through std: `waitpid` below reaps it with the rest.
    drop(child);
    tracing::debug!(
        supervisor = supervisor.as_raw_nonzero().get(),
        "reaping orphans"
    );
    loop {
        if let Some(code) = reap(supervisor)? {
            return Ok(code);
        }
        let [a, b, c, d, e, f] = &mut forwarded;
        let sig = tokio::select! {
            _ = chld.recv() => None,
            // Signals coalesce; look now and then anyway.
            () = tokio::time::sleep(Duration::from_secs(1)) => None,
            _ = a.0.recv() => Some(a.1),
            _ = b.0.recv() => Some(b.1),
            _ = c.0.recv() => Some(c.1),
            _ = d.0.recv() => Some(d.1),
            _ = e.0.recv() => Some(e.1),
            _ = f.0.recv() => Some(f.1),
        };
        if let Some(sig) = sig {
            match kill_process(supervisor, sig) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(error) => tracing::warn!(%error, "cannot forward a signal to the supervisor"),
            }
        }
    }
}

/// Reap every child that has exited; the supervisor's exit code once it is among them.
fn reap(supervisor: Pid) -> Result<Option<i32>, ReaperError> {
    loop {
        // `wait`, not `waitpid(None, …)`: rustix maps None to 0, which is "this process group
        // only", and the supervisor runs in a group of its own.
        match wait(WaitOptions::NOHANG) {
            Ok(Some((pid, status))) if pid == supervisor => {
                let code = status
                    .exit_status()
                    .or_else(|| status.terminating_signal().map(|signal| 128 + signal))
                    .unwrap_or(1);
                return Ok(Some(code));
            }
            Ok(Some((pid, status))) => {
                tracing::debug!(
                    pid = pid.as_raw_nonzero().get(),
                    status = status.as_raw(),
                    "reaped an orphan"
                );
            }
            Ok(None) => return Ok(None),
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => return Err(ReaperError::Wait(error.into())),
        }
    }
}
