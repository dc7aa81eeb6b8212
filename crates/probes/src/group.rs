//! Commands in a process group of their own, so that giving up on one kills everything it
//! started: `sh -c 'sleep 3600 & sleep 3600'` cut at its timeout leaves no `sleep` behind
//! (issue 11, item 7). The exec check, recovery commands and the alert command channel all
//! spawn through [`spawn_in_group`].
//!
//! The child is made the leader of a new process group (`setpgid(0, 0)` between fork and
//! exec, std's `process_group(0)`); everything it forks stays in that group unless it asks
//! to leave (`setsid`, as a real daemon does). Dropping the [`GroupChild`] while it is armed
//! sends SIGKILL to the whole group; tokio then reaps the leader, and init reaps the rest.
//!
//! What it is not: a sandbox or a supervisor. A process that leaves the group on purpose is
//! out of reach, and nothing here restarts anything.

use std::io;
use std::process::ExitStatus;

use tokio::process::{Child, Command};

/// A child that leads its own process group, killed with its whole group when dropped
/// (unless [`GroupChild::disarm`]ed).
#[derive(Debug)]
pub struct GroupChild {
    child: Child,
    /// The group's id (the leader's pid); `None` once disarmed or when unknown.
    pgid: Option<i32>,
}

/// Spawns `command` as the leader of a new process group. The command is also set to
/// `kill_on_drop`, so that tokio reaps the leader in the background after the group is
/// killed.
pub fn spawn_in_group(command: &mut Command) -> io::Result<GroupChild> {
    command.process_group(0).kill_on_drop(true);
    let child = command.spawn()?;
    let pgid = child.id().and_then(|id| i32::try_from(id).ok());
    Ok(GroupChild { child, pgid })
}

impl GroupChild {
    /// The leader, to read its pipes and wait for it.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The process group's id (the leader's pid), while armed.
    pub fn pgid(&self) -> Option<i32> {
        self.pgid
    }

    /// Waits for the leader to exit. The group stays armed: what the leader left running is
    /// still killed on drop, until [`GroupChild::disarm`].
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// Leaves whatever the group still runs alone when this is dropped: for a recovery
    /// command that finished in time, the service it started is what it was for.
    pub fn disarm(&mut self) {
        self.pgid = None;
    }

    /// Sends SIGKILL to every process of the group (the leader included). A group that is
    /// already empty is not an error.
    pub fn kill_group(&mut self) {
        let Some(pgid) = self.pgid else { return };
        kill_group(pgid);
    }
}

#[cfg(unix)]
fn kill_group(pgid: i32) {
    use rustix::process::{Pid, Signal, kill_process_group};
    let Some(pid) = Pid::from_raw(pgid) else {
        return;
    };
    match kill_process_group(pid, Signal::KILL) {
        Ok(()) => {}
        // ESRCH: every member has exited already.
        Err(rustix::io::Errno::SRCH) => {}
        Err(error) => tracing::warn!(pgid, %error, "could not kill a command's process group"),
    }
}

#[cfg(not(unix))]
fn kill_group(_pgid: i32) {}

impl Drop for GroupChild {
    fn drop(&mut self) {
        self.kill_group();
        // `kill_on_drop` on the leader: tokio reaps it (already dead) in the background.
    }
}
