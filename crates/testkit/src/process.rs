//! Processes by PID: signals, waiting for exit, finding binaries, and the one
//! supervised-child type that [`Postgres`](crate::Postgres) and [`Redis`](crate::Redis) share.
//!
//! Servers are always stopped by their own PID, never by name, so a test can never touch a
//! server it did not start (another test's, a developer's, or the shared ones that
//! `scripts/test` runs). What this is not: a general process supervisor. It keeps exactly one
//! child per server and assumes that child *is* the server (as root, `setpriv` execs in place,
//! so the PID we hold is the server's own).

use std::ffi::OsString;
use std::fs::File;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::kill;
use nix::unistd::{Gid, Pid, Uid, User};
use tokio::process::{Child, Command};

use crate::Error;

pub use nix::sys::signal::Signal;

/// How long a server gets to exit after its stop signal before [`Error::StillRunning`].
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server gets to accept connections after it was spawned.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How many lines of a server's log an error message carries.
const LOG_TAIL_LINES: usize = 30;

/// Sends `sig` to the process `pid` (and only to it: never to a group, never by name).
///
/// Use it to pause a server (`Signal::SIGSTOP`), resume it (`Signal::SIGCONT`), or kill it
/// (`Signal::SIGKILL`, `Signal::SIGTERM`, `Signal::SIGINT`) behind the back of the code under
/// test.
pub fn signal(pid: u32, sig: Signal) -> Result<(), Error> {
    let signal_error = |source| Error::Signal {
        pid,
        signal: sig.as_str(),
        source,
    };
    // PIDs above i32::MAX do not exist; 0 and negative values would address process groups.
    let raw = i32::try_from(pid).map_err(|_| signal_error(nix::Error::ESRCH))?;
    if raw <= 0 {
        return Err(signal_error(nix::Error::ESRCH));
    }
    kill(Pid::from_raw(raw), sig).map_err(signal_error)
}

/// Whether a process with this PID exists (a zombie that nobody has reaped yet counts).
pub fn is_running(pid: u32) -> bool {
    match i32::try_from(pid) {
        Ok(raw) if raw > 0 => kill(Pid::from_raw(raw), None).is_ok(),
        _ => false,
    }
}

/// One process as `/proc/PID/stat` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: u32,
    /// The command name (`comm`), at most 15 bytes.
    pub name: String,
    /// `R`, `S`, `D`, `Z` (zombie: exited, not reaped yet), …
    pub state: String,
    pub parent: u32,
    pub group: u32,
}

/// What `/proc/PID/stat` says of `pid`; `None` once it is gone (reaped).
pub fn proc_stat(pid: u32) -> Option<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(pid, &stat)
}

/// "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
fn parse_stat(pid: u32, stat: &str) -> Option<ProcStat> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    Some(ProcStat {
        pid,
        name: stat.get(open + 1..close)?.to_string(),
        state: (*rest.first()?).to_string(),
        parent: rest.get(1)?.parse().ok()?,
        group: rest.get(2)?.parse().ok()?,
    })
}

/// Every process on the machine, from `/proc`.
fn all_processes() -> Vec<ProcStat> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .collect()
}

/// The live (not zombie) processes of process group `pgid`, as (pid, command name), read
/// from `/proc/*/stat`. A zombie has done all it will do, and reaping it is its parent's (or
/// init's) business, so it does not count.
pub fn group_alive(pgid: u32) -> Vec<(u32, String)> {
    all_processes()
        .into_iter()
        .filter(|p| p.state != "Z" && p.group == pgid)
        .map(|p| (p.pid, p.name))
        .collect()
}

/// The children of `parent`, zombies included (a reaper's test looks for them).
pub fn children_of(parent: u32) -> Vec<ProcStat> {
    all_processes()
        .into_iter()
        .filter(|p| p.parent == parent)
        .collect()
}

/// Waits up to `timeout` for `child` to exit and reaps it.
///
/// On timeout the child is left running and [`Error::StillRunning`] is returned; the caller
/// decides whether to escalate (for example to `SIGKILL` through [`signal`]).
pub async fn wait_for_exit(child: &mut Child, timeout: Duration) -> Result<ExitStatus, Error> {
    let pid = child.id().unwrap_or(0);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Ok(status),
        Ok(Err(e)) => Err(Error::io(format!("could not wait for process {pid}"), e)),
        Err(_) => Err(Error::StillRunning {
            pid,
            waited: timeout,
        }),
    }
}

/// Looks `program` up in `PATH`, like a shell would.
pub(crate) fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file that someone may execute.
pub(crate) fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Reads an environment variable, treating empty as unset.
pub(crate) fn env_nonempty(var: &str) -> Option<OsString> {
    std::env::var_os(var).filter(|v| !v.is_empty())
}

/// The last lines of a log file, or a note saying why there are none.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(LOG_TAIL_LINES);
            if lines.is_empty() {
                "(the log is empty)".to_owned()
            } else {
                lines[start..].join("\n")
            }
        }
        Err(e) => format!("(could not read the log: {e})"),
    }
}

/// A system user a server runs as when the tests run as root.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub(crate) name: &'static str,
    pub(crate) uid: Uid,
    pub(crate) gid: Gid,
    setpriv: PathBuf,
}

impl RunAs {
    /// `Some(user)` when running as root (servers such as PostgreSQL refuse root), else `None`.
    pub(crate) fn when_root(name: &'static str) -> Result<Option<Self>, Error> {
        if !nix::unistd::geteuid().is_root() {
            return Ok(None);
        }
        let user = User::from_name(name)
            .map_err(|source| Error::Sys {
                what: format!("could not look up the `{name}` user"),
                source,
            })?
            .ok_or(Error::UserNotFound { user: name })?;
        let setpriv = find_in_path("setpriv").ok_or(Error::BinaryNotFound {
            program: "setpriv",
            looked: "PATH".to_owned(),
            hint: "install util-linux (`apt-get install util-linux`)",
        })?;
        Ok(Some(Self {
            name,
            uid: user.uid,
            gid: user.gid,
            setpriv,
        }))
    }

    /// Gives `path` to this user, so that the server can write there.
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        nix::unistd::chown(path, Some(self.uid), Some(self.gid)).map_err(|source| Error::Sys {
            what: format!(
                "could not give {} to the `{}` user",
                path.display(),
                self.name
            ),
            source,
        })
    }
}

/// A command that runs `program` directly, or as `run_as` through `setpriv`, which execs in
/// place: the child's PID is the program's own.
pub(crate) fn command(run_as: Option<&RunAs>, program: &Path) -> Command {
    match run_as {
        None => Command::new(program),
        Some(user) => {
            let mut cmd = Command::new(&user.setpriv);
            cmd.arg(format!("--reuid={}", user.name))
                .arg(format!("--regid={}", user.name))
                .arg("--init-groups")
                .arg("--")
                .arg(program);
            cmd
        }
    }
}

/// How to run and stop one server process.
#[derive(Debug)]
pub(crate) struct Spec {
    /// Names the server in messages, e.g. "postgresql on 127.0.0.1:5433".
    pub(crate) name: String,
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) run_as: Option<RunAs>,
    pub(crate) cwd: PathBuf,
    /// Standard output and error go here (appended, so restarts keep earlier lines).
    pub(crate) log: PathBuf,
    /// The signal `stop()` sends: the server's clean, fast shutdown.
    pub(crate) stop_signal: Signal,
    /// The signal `Drop` sends first, if not `SIGKILL`; `SIGKILL` follows if it is ignored.
    pub(crate) drop_signal: Signal,
}

/// One running (or stopped) server process.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    spec: Spec,
    child: Option<Child>,
    pid: u32,
}

impl ServerProcess {
    pub(crate) fn new(spec: Spec) -> Self {
        Self {
            spec,
            child: None,
            pid: 0,
        }
    }

    pub(crate) fn log(&self) -> &Path {
        &self.spec.log
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn set_port(&mut self, name: String, args: Vec<OsString>) {
        self.spec.name = name;
        self.spec.args = args;
    }

    /// Spawns the server. It is not ready yet: follow with [`Self::wait_ready`].
    pub(crate) fn spawn(&mut self) -> Result<(), Error> {
        if self.child.is_some() {
            return Err(Error::WrongState {
                server: self.spec.name.clone(),
                state: "still running",
                hint: "call stop() before start_again()",
            });
        }
        let open_log = || {
            File::options()
                .create(true)
                .append(true)
                .open(&self.spec.log)
                .map_err(|e| {
                    Error::io(
                        format!("could not open the log file {}", self.spec.log.display()),
                        e,
                    )
                })
        };
        let mut cmd = command(self.spec.run_as.as_ref(), &self.spec.program);
        cmd.args(&self.spec.args)
            .current_dir(&self.spec.cwd)
            .stdin(Stdio::null())
            .stdout(open_log()?)
            .stderr(open_log()?)
            .kill_on_drop(false);
        let child = cmd.spawn().map_err(|e| {
            Error::io(
                format!("could not start {}", self.spec.program.display()),
                e,
            )
        })?;
        self.pid = child.id().unwrap_or(0);
        self.child = Some(child);
        Ok(())
    }

    /// Polls `probe` until it succeeds, the server exits, or [`READY_TIMEOUT`] passes.
    ///
    /// `probe` returns a short description of why the server is not ready yet; the last one
    /// goes into the error message together with the server's log tail.
    pub(crate) async fn wait_ready<F, Fut>(&mut self, mut probe: F) -> Result<(), Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let started = tokio::time::Instant::now();
        loop {
            self.check_running()?;
            let last_error = match tokio::time::timeout(Duration::from_secs(2), probe()).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => "the attempt timed out after 2s".to_owned(),
            };
            if started.elapsed() >= READY_TIMEOUT {
                return Err(Error::NotReady {
                    server: self.spec.name.clone(),
                    waited: READY_TIMEOUT,
                    last_error,
                    log: self.spec.log.clone(),
                    log_tail: log_tail(&self.spec.log),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fails with [`Error::Exited`] if the server has exited (and reaps it).
    pub(crate) fn check_running(&mut self) -> Result<(), Error> {
        check_child(
            &mut self.child,
            &self.spec.name,
            &self.spec.log,
            "call start_again() first",
        )
    }

    /// Sends the stop signal by PID and waits until the process is gone.
    pub(crate) async fn stop(&mut self) -> Result<(), Error> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::WrongState {
                server: self.spec.name.clone(),
                state: "already stopped",
                hint: "call start_again() before stopping it again",
            });
        };
        if let Ok(Some(_)) = child.try_wait() {
            // It died on its own (or a test killed it by PID): stopping is already done.
            self.child = None;
            return Ok(());
        }
        signal(self.pid, self.spec.stop_signal)?;
        // A test may have paused the server with SIGSTOP; a stopped process acts on no signal
        // but SIGKILL until it is continued. Continuing a running process does nothing.
        let _ = signal(self.pid, Signal::SIGCONT);
        wait_for_exit(child, STOP_TIMEOUT).await?;
        self.child = None;
        Ok(())
    }

    /// Stops the server from `Drop`, where nothing can be awaited: see [`stop_now`].
    fn kill_now(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_now(&mut child, self.pid, self.spec.drop_signal);
        }
    }
}

/// Fails with [`Error::Exited`] if `child` has exited (and reaps it, leaving `None`), or with
/// [`Error::WrongState`] (saying `hint`) if there is none. `name` names it in messages; the
/// tail of `log` goes into the error.
pub(crate) fn check_child(
    child: &mut Option<Child>,
    name: &str,
    log: &Path,
    hint: &'static str,
) -> Result<(), Error> {
    let Some(running) = child.as_mut() else {
        return Err(Error::WrongState {
            server: name.to_owned(),
            state: "already stopped",
            hint,
        });
    };
    match running.try_wait() {
        Ok(None) => Ok(()),
        Ok(Some(status)) => {
            *child = None;
            Err(Error::Exited {
                server: name.to_owned(),
                status,
                log: log.to_owned(),
                log_tail: log_tail(log),
            })
        }
        Err(e) => Err(Error::io(
            format!("could not check whether {name} is running"),
            e,
        )),
    }
}

/// Stops `child` (whose PID is `pid`) where nothing can be awaited, and reaps it.
///
/// Sends `first`, polls for up to two seconds, then `SIGKILL`s and reaps (unless `first` was
/// `SIGKILL` already). Blocking a thread here is deliberate: the alternative is leaving the
/// process (and, for PostgreSQL killed with `SIGKILL`, its shared memory segment) behind.
#[allow(clippy::disallowed_methods)]
pub(crate) fn stop_now(child: &mut Child, pid: u32, first: Signal) {
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    if first != Signal::SIGKILL && signal(pid, first).is_ok() {
        let _ = signal(pid, Signal::SIGCONT);
        for _ in 0..200 {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let _ = signal(pid, Signal::SIGKILL);
    for _ in 0..200 {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}
