//! The async driver around the sans-IO [`Supervisor`]: it spawns the child in a process
//! group of its own, runs the probes the supervisor asks for (cut at their timeout by
//! [`vitals_probes::run_once`]), sends signals, kills the group, listens for the
//! supervisor's own signals, and publishes the supervisor's [`View`] for `/readyz`, the
//! agent check and systemd. It decides nothing: every `if` about the child is the
//! supervisor's.
//!
//! Time comes from tokio's clock (`tokio::time::Instant::now().into_std()`), so the driver
//! would follow a paused clock; the end-to-end tests run it for real, as the `vitals`
//! binary, against real children and signals.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use vitals_core::Status;
use vitals_probes::{GroupChild, RunEnd, run_once, spawn_in_group};

use crate::config::{Plan, ProbePlan};
use crate::machine::{Action, Exit, ProbeKind, Sig, Supervisor, View};

/// What the supervisor publishes: its view of the child, and the child's pid while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    #[serde(flatten)]
    pub view: View,
    pub pid: Option<u32>,
}

/// Why supervision could not begin.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SuperviseError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for {signal}: {source}")]
    Signals {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// Where the supervisor's own endpoints ended up (port 0 picks a free one).
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub http: Option<SocketAddr>,
    pub agent_check: Option<SocketAddr>,
}

/// The environment a child must not inherit: systemd's notification variables are the
/// supervisor's (it speaks for the child), and the reaper's marker is ours.
const NOT_INHERITED: [&str; 4] = [
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    crate::reaper::INIT_MARKER,
];

/// Supervise `plan.command` until the supervisor decides to exit; returns the exit code.
/// `on_listening` is told where the endpoints listen before the child starts.
pub async fn run(plan: Plan, on_listening: impl FnOnce(Bound)) -> Result<i32, SuperviseError> {
    // Listen for signals before the child exists, so none is missed.
    let mut signals = Signals::listen()?;
    let http = bind(plan.listen).await?;
    let agent = bind(plan.agent_check).await?;
    let bound = Bound {
        http: http.as_ref().and_then(|l| l.local_addr().ok()),
        agent_check: agent.as_ref().and_then(|l| l.local_addr().ok()),
    };

    let mut machine = Supervisor::new(plan.settings.clone(), now());
    let (published_tx, published) = watch::channel(Published {
        view: machine.view(now()),
        pid: None,
    });
    if let Some(listener) = http {
        let router = crate::endpoints::router(published.clone());
        tokio::spawn(async move {
            if let Err(error) = vitals::serve_router(listener, router, std::future::pending()).await
            {
                tracing::error!(%error, "the supervisor's HTTP endpoints stopped");
            }
        });
    }
    if let Some(listener) = agent {
        tokio::spawn(crate::endpoints::agent_check(listener, published.clone()));
    }
    let telling = crate::notify::start_from_env(published.clone());
    on_listening(bound);

    let (results_tx, mut results) = mpsc::channel::<ProbeResult>(16);
    let mut child: Option<GroupChild> = None;
    // Exit reports on their way to the monitor: the supervisor waits for them (each bounded
    // by REPORT_TIMEOUT) before it exits itself, so the last exit is told too.
    let reports = tokio_util::task::TaskTracker::new();
    loop {
        while let Some(action) = machine.poll_action() {
            match action {
                Action::Spawn => match spawn(&plan.command) {
                    Ok(spawned) => {
                        let pid = spawned.pgid().unwrap_or_default();
                        tracing::info!(pid, command = %plan.command.join(" "), "child started");
                        child = Some(spawned);
                    }
                    Err(error) => {
                        let error = format!("{}: {error}", plan.command[0]);
                        machine.handle_spawn_failed(now(), &error);
                    }
                },
                Action::Probe {
                    kind,
                    generation,
                    timeout,
                } => {
                    if let Some(probe) = plan.probe(kind).cloned() {
                        let results = results_tx.clone();
                        tokio::spawn(async move {
                            let (success, output) = run_probe(&probe, timeout).await;
                            let _ = results
                                .send(ProbeResult {
                                    kind,
                                    generation,
                                    success,
                                    output,
                                })
                                .await;
                        });
                    }
                }
                Action::Signal(sig) => {
                    if let Some(pid) = child.as_ref().and_then(GroupChild::pgid) {
                        send_signal(pid, sig);
                    }
                }
                Action::KillGroup => {
                    if let Some(child) = child.as_mut() {
                        child.kill_group();
                    }
                }
                Action::Note(note) => tracing::info!("{note}"),
                Action::Exit(code) => {
                    publish(&published_tx, &machine, None);
                    // Let systemd hear the last of it (STOPPING=1) before the process ends.
                    drop(published_tx);
                    if let Some(telling) = telling {
                        let _ = tokio::time::timeout(Duration::from_secs(1), telling).await;
                    }
                    reports.close();
                    reports.wait().await;
                    return Ok(code);
                }
            }
        }
        publish(
            &published_tx,
            &machine,
            child
                .as_ref()
                .and_then(GroupChild::pgid)
                .and_then(|pid| u32::try_from(pid).ok()),
        );
        let deadline = machine.poll_timeout();
        tokio::select! {
            () = sleep_until(deadline) => machine.handle_timeout(now()),
            Some(result) = results.recv() => machine.handle_probe(
                now(),
                result.kind,
                result.generation,
                result.success,
                result.output,
            ),
            status = wait(&mut child) => {
                // Dropping the group child kills what the leader left behind in its group:
                // as in a container, nothing outlives the main process.
                child = None;
                if let Some(url) = &plan.report_exit_to {
                    reports.spawn(report_exit(url.clone(), status));
                }
                machine.handle_exit(now(), status);
            }
            sig = signals.recv() => machine.handle_signal(now(), sig),
        }
    }
}

/// How long a report of an exit may take: it must not outlast the restart it precedes by
/// much, and a monitor that does not answer in this time learns of the death by silence.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Tell the monitor at `url` (`…/ping/<id>/exited`) that the child exited, and how: a death
/// seen first-hand, which the monitor takes down at once (issue 15). Failures are logged;
/// the monitor still sees the silence.
async fn report_exit(url: reqwest::Url, status: Exit) {
    let shown = vitals_probes::redact_url(url.as_str());
    let sent = reqwest::Client::new()
        .post(url)
        .timeout(REPORT_TIMEOUT)
        .body(format!("{status} (seen by vitals supervise)"))
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => {
            tracing::info!(url = %shown, %status, "exit reported to the monitor");
        }
        Ok(answer) => {
            tracing::warn!(url = %shown, status = %answer.status(), "the monitor refused the exit report");
        }
        Err(error) => {
            tracing::warn!(url = %shown, error = %vitals_probes::error_chain(&error), "cannot report the exit to the monitor");
        }
    }
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

fn publish(to: &watch::Sender<Published>, machine: &Supervisor, pid: Option<u32>) {
    let published = Published {
        view: machine.view(now()),
        pid,
    };
    to.send_if_modified(|current| {
        // The back-off countdown in the reason changes every instant; publish it only
        // with the rest.
        let changed = current.view.phase != published.view.phase
            || current.view.ready != published.view.ready
            || current.view.restarts != published.view.restarts
            || current.pid != published.pid
            || current.view.shutting_down != published.view.shutting_down
            || (current.view.phase != "waiting" && current.view.reason != published.view.reason);
        if changed {
            *current = published;
        }
        changed
    });
}

async fn bind(addr: Option<SocketAddr>) -> Result<Option<TcpListener>, SuperviseError> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| SuperviseError::Listen { addr, source })
}

fn spawn(command: &[String]) -> std::io::Result<GroupChild> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| std::io::Error::other("no command"))?;
    let mut cmd = tokio::process::Command::new(program);
    // Standard input closed: the child leads a process group of its own, and a background
    // group that reads the terminal would be stopped by SIGTTIN.
    cmd.args(args).stdin(Stdio::null());
    for name in NOT_INHERITED {
        cmd.env_remove(name);
    }
    spawn_in_group(&mut cmd)
}

async fn wait(child: &mut Option<GroupChild>) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    let Some(child) = child.as_mut() else {
        return std::future::pending().await;
    };
    match child.wait().await {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Code(1),
        },
        Err(error) => {
            tracing::error!(%error, "cannot wait for the child; counting it as failed");
            Exit::Code(1)
        }
    }
}

struct ProbeResult {
    kind: ProbeKind,
    generation: u64,
    success: bool,
    output: String,
}

/// One run, kubelet's way: only a pass is a success (an exec probe's exit 1, a "warning" to
/// Nagios, is a failure to Kubernetes); a run past its timeout is a failure.
async fn run_probe(probe: &ProbePlan, timeout: Duration) -> (bool, String) {
    let check = Arc::clone(&probe.probe);
    let run = run_once(timeout, async move { check.check().await }).await;
    match run.end {
        RunEnd::Finished(report) => {
            let output = report.output.unwrap_or_else(|| report.status.to_string());
            (report.status == Status::Pass, output)
        }
        RunEnd::Panicked(message) => (false, format!("probe panicked: {message}")),
        RunEnd::TimedOut { after } => (
            false,
            format!(
                "{}: no answer within {}",
                probe.what,
                vitals_probes::fmt_duration(after)
            ),
        ),
    }
}

fn send_signal(pid: i32, sig: Sig) {
    use rustix::process::{Pid, Signal, kill_process};
    let signal = match sig {
        Sig::Term => Signal::TERM,
        Sig::Int => Signal::INT,
        Sig::Hup => Signal::HUP,
        Sig::Quit => Signal::QUIT,
        Sig::Usr1 => Signal::USR1,
        Sig::Usr2 => Signal::USR2,
    };
    let Some(pid) = Pid::from_raw(pid) else {
        return;
    };
    match kill_process(pid, signal) {
        Ok(()) => tracing::debug!(
            pid = pid.as_raw_nonzero().get(),
            signal = sig.as_str(),
            "signal sent to the child"
        ),
        // It exited meanwhile; its exit is on its way.
        Err(rustix::io::Errno::SRCH) => {}
        Err(error) => tracing::warn!(%error, signal = sig.as_str(), "cannot signal the child"),
    }
}

/// The signals the supervisor handles, each a stream of its own.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn listen() -> Result<Signals, SuperviseError> {
        let listen = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| SuperviseError::Signals {
                signal: name,
                source,
            })
        };
        Ok(Signals {
            term: listen(SignalKind::terminate(), "SIGTERM")?,
            int: listen(SignalKind::interrupt(), "SIGINT")?,
            hup: listen(SignalKind::hangup(), "SIGHUP")?,
            quit: listen(SignalKind::quit(), "SIGQUIT")?,
            usr1: listen(SignalKind::user_defined1(), "SIGUSR1")?,
            usr2: listen(SignalKind::user_defined2(), "SIGUSR2")?,
        })
    }

    async fn recv(&mut self) -> Sig {
        tokio::select! {
            Some(()) = self.term.recv() => Sig::Term,
            Some(()) = self.int.recv() => Sig::Int,
            Some(()) = self.hup.recv() => Sig::Hup,
            Some(()) = self.quit.recv() => Sig::Quit,
            Some(()) = self.usr1.recv() => Sig::Usr1,
            Some(()) = self.usr2.recv() => Sig::Usr2,
            // Every stream ended (the runtime is shutting down): no signal comes any more.
            else => std::future::pending().await,
        }
    }
}
