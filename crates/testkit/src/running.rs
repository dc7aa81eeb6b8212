//! Any program a test starts (the `vitals` binary, a backend, a browser driver): started,
//! waited for until it listens, its output kept, and killed and reaped when the test is done.
//!
//! [`Running::start`] spawns a command with standard input closed, standard error written to
//! a file in its own temporary directory, and standard output read line by line into memory;
//! then waits (30 s at most) until the program is [`Ready`]: it printed its banner line, or
//! accepts TCP connections. If it exits or stays silent instead, the error carries the tail of
//! its standard error. Afterwards the test can read further lines ([`Running::line`]), signal
//! it by PID, kill it ([`Running::kill`]) or wait for it ([`Running::wait`]). A program that
//! binds a port itself is started with [`Running::start_on_free_port`], which tries another
//! port when the first was taken.
//!
//! Output is never lost and never in the way: while the test passes it stays in the file and
//! in memory; when the test panics, dropping the `Running` prints the program's standard error
//! and output, so the failure shows what the program said. [`Running::stderr`] reads it on
//! demand.
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), vitals_testkit::Error> {
//! use tokio::process::Command;
//! use vitals_testkit::{Ready, Running};
//!
//! let monitor = Running::start(
//!     Command::new("target/debug/vitals").args(["serve", "--config", "vitals.toml"]),
//!     Ready::Line("vitals monitor on "),
//! )
//! .await?;
//! let base = monitor.banner()["vitals monitor on ".len()..].split(' ').next();
//! # Ok(()) }
//! ```
//!
//! What it is not: a supervisor (nothing restarts), or a way to run the test's own servers
//! (those run in-process, or as [`Postgres`](crate::Postgres) and [`Redis`](crate::Redis)).
//! Dropping a `Running` blocks its thread for up
//! to two seconds while it reaps the program.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::Error;
use crate::port::free_port;
use crate::process::{
    READY_TIMEOUT, Signal, check_child, log_tail, signal, stop_now, wait_for_exit,
};

/// When a started program counts as up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Ready {
    /// It printed a line starting with this on standard output (the banner a server prints
    /// once it listens); [`Running::banner`] is that line.
    Line(&'static str),
    /// A TCP connection to this address succeeds.
    Connects(SocketAddr),
    /// Started is enough.
    Spawned,
}

/// A program the test started: see the [module docs](self).
#[derive(Debug)]
pub struct Running {
    name: String,
    child: Option<Child>,
    pid: u32,
    stdout: watch::Receiver<Stdout>,
    stderr: PathBuf,
    banner: String,
    // Last: removed after the program is gone.
    _dir: TempDir,
}

/// What the program printed on standard output so far.
#[derive(Debug, Default)]
struct Stdout {
    lines: Vec<String>,
    closed: bool,
}

impl Running {
    /// Spawns `command` and waits until it is `ready`; see the [module docs](self).
    pub async fn start(command: &mut Command, ready: Ready) -> Result<Self, Error> {
        let program = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let dir = tempfile::Builder::new()
            .prefix("vitals-running.")
            .tempdir()
            .map_err(|e| Error::io("could not create a temporary directory", e))?;
        let stderr = dir.path().join("stderr.log");
        let file = File::create(&stderr)
            .map_err(|e| Error::io(format!("could not create {}", stderr.display()), e))?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| Error::io(format!("could not start {program}"), e))?;
        let pid = child.id().unwrap_or(0);
        let (tx, rx) = watch::channel(Stdout::default());
        if let Some(out) = child.stdout.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(out).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tx.send_modify(|out| out.lines.push(line));
                }
                tx.send_modify(|out| out.closed = true);
            });
        }
        let mut running = Self {
            name: format!("{program} (pid {pid})"),
            child: Some(child),
            pid,
            stdout: rx,
            stderr,
            banner: String::new(),
            _dir: dir,
        };
        running.wait_ready(&ready).await?;
        Ok(running)
    }

    /// Starts a program that binds a port of its own choosing from [`free_port`]: `command`
    /// makes the command for a port, `ready` says when it is up on `127.0.0.1:PORT`. When
    /// the program exits before it is ready (another process took the port first, the race
    /// [`free_port`] describes), it is tried again on another port, three times in all.
    /// Returns it and its port.
    pub async fn start_on_free_port(
        mut command: impl FnMut(u16) -> Command,
        ready: impl Fn(SocketAddr) -> Ready,
    ) -> Result<(Self, u16), Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_port()?;
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            match Self::start(&mut command(port), ready(addr)).await {
                Ok(running) => return Ok((running, port)),
                Err(Error::Exited { .. }) if attempts < 3 => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn wait_ready(&mut self, ready: &Ready) -> Result<(), Error> {
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;
        loop {
            self.check_running()?;
            let waiting = match ready {
                Ready::Spawned => return Ok(()),
                Ready::Line(prefix) => {
                    let seen = self.stdout.borrow();
                    if let Some(line) = seen.lines.iter().find(|l| l.starts_with(prefix)) {
                        let line = line.clone();
                        drop(seen);
                        self.banner = line;
                        return Ok(());
                    }
                    format!(
                        "no line starting with {prefix:?} on its standard output, which says {:?}",
                        seen.lines
                    )
                }
                Ready::Connects(addr) => {
                    let attempt = tokio::time::timeout(
                        Duration::from_secs(2),
                        tokio::net::TcpStream::connect(addr),
                    );
                    match attempt.await {
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(e)) => format!("connecting to {addr}: {e}"),
                        Err(_) => format!("connecting to {addr} timed out after 2s"),
                    }
                }
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::NotReady {
                    server: self.name.clone(),
                    waited: READY_TIMEOUT,
                    last_error: waiting,
                    log: self.stderr.clone(),
                    log_tail: log_tail(&self.stderr),
                });
            }
            // A new line or 20 ms, whichever comes first.
            let pause = Duration::from_millis(20);
            if let Ok(Err(_)) = tokio::time::timeout(pause, self.stdout.changed()).await {
                // Standard output is closed: nothing will wake us early any more.
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Fails with [`Error::Exited`] if the program has exited (and reaps it).
    fn check_running(&mut self) -> Result<(), Error> {
        check_child(&mut self.child, &self.name, &self.stderr, "start it again")
    }

    /// The program's PID.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The line that made it [`Ready::Line`] (empty for the other kinds of readiness).
    pub fn banner(&self) -> &str {
        &self.banner
    }

    /// Line `n` (from 0) of its standard output, waiting up to 30 s for it; `None` if the
    /// program closed its standard output first or the time ran out.
    pub async fn line(&self, n: usize) -> Option<String> {
        let mut stdout = self.stdout.clone();
        let seen = tokio::time::timeout(
            READY_TIMEOUT,
            stdout.wait_for(|out| out.lines.len() > n || out.closed),
        )
        .await;
        match seen {
            Ok(Ok(out)) => out.lines.get(n).cloned(),
            _ => None,
        }
    }

    /// Every line of standard output so far.
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.borrow().lines.clone()
    }

    /// Its standard error so far.
    pub fn stderr(&self) -> String {
        std::fs::read(&self.stderr)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(could not read {}: {e})", self.stderr.display()))
    }

    /// Prints what the program said (standard error, then output) to the test's standard
    /// error, which the test harness shows when the test fails.
    pub fn print_output(&self) {
        eprintln!(
            "--- standard error of {} ---\n{}--- standard output of {} ---\n{}",
            self.name,
            self.stderr(),
            self.name,
            self.stdout().join("\n")
        );
    }

    /// Sends `sig` to the program (and only to it).
    pub fn signal(&self, sig: Signal) -> Result<(), Error> {
        signal(self.pid, sig)
    }

    /// Waits up to `timeout` for the program to exit (after a signal, say) and reaps it.
    pub async fn wait(&mut self, timeout: Duration) -> Result<ExitStatus, Error> {
        let Some(child) = self.child.as_mut() else {
            return Err(Error::WrongState {
                server: self.name.clone(),
                state: "already stopped",
                hint: "wait for it only once",
            });
        };
        let status = wait_for_exit(child, timeout).await?;
        self.child = None;
        Ok(status)
    }

    /// Kills the program with `SIGKILL` (as a crash would) and reaps it.
    pub async fn kill(&mut self) -> Result<ExitStatus, Error> {
        self.signal(Signal::SIGKILL)?;
        self.wait(Duration::from_secs(10)).await
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_now(&mut child, self.pid, Signal::SIGKILL);
        }
        if std::thread::panicking() {
            self.print_output();
        }
    }
}
