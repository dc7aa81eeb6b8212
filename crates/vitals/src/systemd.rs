//! systemd's notification protocol (`sd_notify(3)`), so a service started with `Type=notify`
//! tells systemd when it is ready, proves it is alive to `WatchdogSec=`, and says what it is
//! doing in `systemctl status` (issue 14).
//!
//! When systemd starts a unit with `Type=notify` (or `NotifyAccess=`), it sets
//! `NOTIFY_SOCKET` to a unix datagram socket: a path, or an abstract name written with a
//! leading `@`. A message is one datagram of `KEY=VALUE` lines. [`HealthBuilder::start`]
//! (crate::HealthBuilder::start) reads the environment and, when the variable is set, runs
//! [`watch`] beside the checks:
//!
//! | when | message |
//! |---|---|
//! | the startup hooks have passed (phase ready) | `READY=1` |
//! | every half of `WATCHDOG_USEC`, while the liveness verdict is not `fail` | `WATCHDOG=1` |
//! | a drain begins (SIGTERM, [`Health::shutdown`]) | `STOPPING=1` |
//! | the phase or the readiness verdict changes | `STATUS=ready`, `STATUS=not ready: database failing`, … |
//!
//! Withholding `WATCHDOG=1` while liveness fails is the point: a wedged service (a check
//! that stopped producing results goes stale, and a stale result fails) stops pinging, and
//! systemd restarts it after `WatchdogSec=`, as a kubelet would after its liveness probe.
//!
//! Without `NOTIFY_SOCKET` nothing here runs, as with libsystemd's `sd_notify`. What it is
//! not: a binding to libsystemd (no socket activation, no file-descriptor store, no
//! `EXTEND_TIMEOUT_USEC`), and it never unsets the variables for child processes (that
//! needs `unsafe` in Rust 2024); systemd ignores messages from other processes under the
//! default `NotifyAccess=main`.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::Duration;

use vitals_core::Status;

use crate::check::Group;
use crate::health::Health;
use crate::lifecycle::Phase;
use crate::view::{Scope, Verdict};

/// Where the notifications go: `NOTIFY_SOCKET`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Address {
    Path(PathBuf),
    /// The name without the leading `@` (which stands for the NUL byte of the kernel's
    /// abstract namespace).
    Abstract(Vec<u8>),
}

/// A connection-less sender to systemd's notification socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notifier {
    address: Address,
    /// As given, for messages.
    shown: String,
}

/// Why a notification could not be sent, or the socket not understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotifyError {
    #[error(
        "NOTIFY_SOCKET {0:?} is neither an absolute path nor an abstract socket name starting with '@' (vsock addresses are not supported)"
    )]
    BadSocket(String),
    #[error("cannot send {message:?} to NOTIFY_SOCKET {socket}: {source}")]
    Send {
        socket: String,
        message: String,
        #[source]
        source: io::Error,
    },
}

/// How long [`Notifier::send`] keeps trying while the socket's queue is full: systemd reads
/// it at once unless it is very busy, and a service must not hang on it.
const SEND_PATIENCE: Duration = Duration::from_secs(1);

impl Notifier {
    /// A notifier for `socket`, written as `NOTIFY_SOCKET` is: `/run/systemd/notify`, or
    /// `@name` for an abstract socket.
    pub fn new(socket: &str) -> Result<Notifier, NotifyError> {
        let address = if let Some(name) = socket.strip_prefix('@') {
            if cfg!(target_os = "linux") && !name.is_empty() {
                Address::Abstract(name.as_bytes().to_vec())
            } else {
                return Err(NotifyError::BadSocket(socket.to_string()));
            }
        } else if socket.starts_with('/') {
            Address::Path(PathBuf::from(socket))
        } else {
            return Err(NotifyError::BadSocket(socket.to_string()));
        };
        Ok(Notifier {
            address,
            shown: socket.to_string(),
        })
    }

    /// The notifier `NOTIFY_SOCKET` names; `Ok(None)` when it is unset or empty (not started
    /// by systemd, or by a unit that wants no notifications).
    pub fn from_env() -> Result<Option<Notifier>, NotifyError> {
        match std::env::var("NOTIFY_SOCKET") {
            Ok(socket) if !socket.is_empty() => Notifier::new(&socket).map(Some),
            _ => Ok(None),
        }
    }

    /// Sends `message` (one or more `KEY=VALUE` lines) as one datagram. The socket is
    /// non-blocking: a full queue is retried for up to a second, never blocking a thread.
    pub async fn send(&self, message: &str) -> Result<(), NotifyError> {
        let error = |source| NotifyError::Send {
            socket: self.shown.clone(),
            message: message.to_string(),
            source,
        };
        let socket = UnixDatagram::unbound().map_err(error)?;
        socket.set_nonblocking(true).map_err(error)?;
        let deadline = tokio::time::Instant::now() + SEND_PATIENCE;
        loop {
            match self.send_once(&socket, message.as_bytes()) {
                Ok(_) => return Ok(()),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(error(e)),
            }
        }
    }

    fn send_once(&self, socket: &UnixDatagram, bytes: &[u8]) -> io::Result<usize> {
        match &self.address {
            Address::Path(path) => socket.send_to(bytes, path),
            #[cfg(target_os = "linux")]
            Address::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(bytes, &addr)
            }
            #[cfg(not(target_os = "linux"))]
            Address::Abstract(_) => Err(io::Error::from(io::ErrorKind::Unsupported)),
        }
    }
}

/// The watchdog interval systemd asked for: half of `WATCHDOG_USEC`, as `sd_watchdog_enabled`
/// recommends, unless `WATCHDOG_PID` names another process. `None` without a watchdog.
pub fn watchdog_interval_from_env() -> Option<Duration> {
    watchdog_interval(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    if let Some(pid) = pid.filter(|pid| !pid.is_empty())
        && pid.trim().parse::<u32>().ok() != Some(own_pid)
    {
        return None;
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    Some(Duration::from_micros(usec) / 2)
}

/// The watchdog's beat: a tick every interval, or never when systemd set no watchdog.
#[derive(Debug)]
pub struct Watchdog {
    ticks: Option<tokio::time::Interval>,
}

impl Watchdog {
    /// Ticks every `interval` (the first at once); never with `None`.
    pub fn every(interval: Option<Duration>) -> Watchdog {
        Watchdog {
            ticks: interval.map(|every| {
                let mut ticks = tokio::time::interval(every);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            }),
        }
    }

    /// At half of `WATCHDOG_USEC`, as [`watchdog_interval_from_env`] reads it.
    pub fn from_env() -> Watchdog {
        Watchdog::every(watchdog_interval_from_env())
    }

    /// The next tick; pending forever without a watchdog.
    pub async fn tick(&mut self) {
        match &mut self.ticks {
            Some(ticks) => {
                ticks.tick().await;
            }
            None => std::future::pending().await,
        }
    }
}

/// What systemd has been told, so each message is sent once and only on a change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Told {
    ready: bool,
    stopping: bool,
    status: Option<String>,
}

impl Told {
    /// The message to send now for `phase` and the current `status` line, if any: `READY=1`
    /// once the phase is ready, `STOPPING=1` once it drains, `STATUS=` whenever the line
    /// changes. Pure, so that the rules are tested without a socket.
    pub(crate) fn update(&mut self, phase: &Phase, status: String) -> Option<String> {
        let mut lines = Vec::new();
        if matches!(phase, Phase::Ready) && !self.ready && !self.stopping {
            self.ready = true;
            lines.push("READY=1".to_string());
        }
        if matches!(phase, Phase::Draining | Phase::Stopped) && !self.stopping {
            self.stopping = true;
            lines.push("STOPPING=1".to_string());
        }
        if self.status.as_deref() != Some(status.as_str()) {
            lines.push(format!("STATUS={status}"));
            self.status = Some(status);
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }
}

/// The `STATUS=` line: the phase, and when ready, the readiness verdict with what fails; a
/// failing liveness verdict is named too, since it withholds the watchdog pings.
pub(crate) fn status_line(
    phase: &Phase,
    readiness: &Verdict<'_>,
    liveness: &Verdict<'_>,
) -> String {
    let failing = |verdict: &Verdict<'_>, status: Status| {
        verdict
            .checks
            .iter()
            .filter(|view| !view.excluded && view.status == status)
            .map(|view| view.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut line = match phase {
        Phase::Starting { progress } => format!("starting: {progress}"),
        Phase::Draining => "draining: readiness fails, finishing in-flight work".to_string(),
        Phase::Stopped => "stopped".to_string(),
        Phase::Ready => match readiness.status {
            Status::Pass => "ready".to_string(),
            Status::Warn => {
                let degraded = failing(readiness, Status::Warn);
                let degraded = if degraded.is_empty() {
                    failing(readiness, Status::Fail)
                } else {
                    degraded
                };
                format!("ready, degraded: {degraded}")
            }
            Status::Fail => format!("not ready: {} failing", failing(readiness, Status::Fail)),
        },
    };
    if liveness.status == Status::Fail && !matches!(phase, Phase::Stopped) {
        line.push_str(&format!(
            "; liveness failing ({}): watchdog pings withheld",
            failing(liveness, Status::Fail)
        ));
    }
    line
}

/// Tell systemd about `health` through `notifier` until the phase is stopped: readiness,
/// draining and status as they change, and `WATCHDOG=1` every `watchdog` while the liveness
/// verdict is not `fail`. Errors are logged and do not stop it (systemd may be restarting).
pub async fn watch(health: Health, notifier: Notifier, watchdog: Option<Duration>) {
    let mut phases = health.subscribe_phase();
    let mut snapshots = health.subscribe();
    let mut told = Told::default();
    let mut watchdog = Watchdog::every(watchdog);
    loop {
        let phase = health.phase();
        let line = {
            let snapshot = health.snapshot();
            let liveness = health.verdict(&snapshot, Scope::Group(Group::Liveness), &[]);
            let readiness = health.verdict(&snapshot, Scope::Group(Group::Readiness), &[]);
            status_line(&phase, &readiness, &liveness)
        };
        if let Some(message) = told.update(&phase, line) {
            send(&notifier, &message).await;
        }
        if phase == Phase::Stopped {
            return;
        }
        tokio::select! {
            _ = phases.changed() => {}
            _ = snapshots.changed() => {}
            // The liveness verdict is judged again at each tick (a stale result fails
            // without any new snapshot), so the ping reflects the verdict of this moment.
            () = watchdog.tick() => {
                let live = {
                    let snapshot = health.snapshot();
                    health.verdict(&snapshot, Scope::Group(Group::Liveness), &[]).status
                };
                if live != Status::Fail {
                    send(&notifier, "WATCHDOG=1").await;
                } else {
                    tracing::warn!("liveness fails: watchdog ping withheld; systemd restarts the service after WatchdogSec= unless it recovers");
                }
            }
        }
    }
}

async fn send(notifier: &Notifier, message: &str) {
    match notifier.send(message).await {
        Ok(()) => tracing::debug!(notification = message, "told systemd"),
        Err(error) => tracing::warn!(%error, "could not notify systemd"),
    }
}

/// Start [`watch`] when the environment says systemd listens (`NOTIFY_SOCKET`), with the
/// watchdog interval it asks for. Called by [`HealthBuilder::start`](crate::HealthBuilder::start).
pub(crate) fn start_from_env(health: &Health) {
    match Notifier::from_env() {
        Ok(Some(notifier)) => {
            let watchdog = watchdog_interval_from_env();
            tracing::debug!(socket = %notifier.shown, ?watchdog, "notifying systemd");
            tokio::spawn(watch(health.clone(), notifier, watchdog));
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(%error, "not notifying systemd"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_paths_or_abstract_names() {
        assert_eq!(
            Notifier::new("/run/systemd/notify").map(|n| n.address).ok(),
            Some(Address::Path(PathBuf::from("/run/systemd/notify")))
        );
        #[cfg(target_os = "linux")]
        assert_eq!(
            Notifier::new("@/org/freedesktop/systemd1/notify/123")
                .map(|n| n.address)
                .ok(),
            Some(Address::Abstract(
                b"/org/freedesktop/systemd1/notify/123".to_vec()
            ))
        );
        for bad in ["relative/path", "@", "vsock:2:1234"] {
            let error = Notifier::new(bad).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains(bad)),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn the_watchdog_pings_at_half_its_timeout_for_its_own_process_only() {
        let half = |usec, pid| watchdog_interval(usec, pid, 42);
        assert_eq!(half(Some("30000000"), None), Some(Duration::from_secs(15)));
        assert_eq!(
            half(Some("30000000"), Some("42")),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            half(Some("30000000"), Some("")),
            Some(Duration::from_secs(15))
        );
        // The variables were inherited from a parent that systemd watches.
        assert_eq!(half(Some("30000000"), Some("41")), None);
        assert_eq!(half(Some("0"), None), None);
        assert_eq!(half(Some("soon"), None), None);
        assert_eq!(half(None, None), None);
    }

    #[test]
    fn each_fact_is_told_once_and_status_on_change() {
        let mut told = Told::default();
        let starting = Phase::Starting {
            progress: "running startup hook \"migrate\"".to_string(),
        };
        assert_eq!(
            told.update(&starting, "starting: migrate".into())
                .as_deref(),
            Some("STATUS=starting: migrate")
        );
        assert_eq!(told.update(&starting, "starting: migrate".into()), None);
        assert_eq!(
            told.update(&Phase::Ready, "ready".into()).as_deref(),
            Some("READY=1\nSTATUS=ready")
        );
        assert_eq!(told.update(&Phase::Ready, "ready".into()), None);
        assert_eq!(
            told.update(&Phase::Ready, "not ready: database failing".into())
                .as_deref(),
            Some("STATUS=not ready: database failing")
        );
        assert_eq!(
            told.update(&Phase::Draining, "draining".into()).as_deref(),
            Some("STOPPING=1\nSTATUS=draining")
        );
        assert_eq!(
            told.update(&Phase::Stopped, "stopped".into()).as_deref(),
            Some("STATUS=stopped")
        );
        // A service that drains before it was ever ready never claims to be ready.
        let mut told = Told::default();
        assert_eq!(
            told.update(&Phase::Draining, "draining".into()).as_deref(),
            Some("STOPPING=1\nSTATUS=draining")
        );
        assert_eq!(told.update(&Phase::Stopped, "draining".into()), None);
    }
}
