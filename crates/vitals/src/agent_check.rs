//! HAProxy's agent-check protocol: a TCP port where HAProxy connects every `agent-inter`,
//! reads one line such as `up ready 100%` or `down #database`, and sets the server's state,
//! admin mode and weight from it. Teams that keep HAProxy in front can route on vitals'
//! verdicts this way, with no HTTP check to write.
//!
//! [`AgentCheck`] answers from a [`Health`]'s readiness verdict; [`serve_with`] is the
//! responder itself, which the monitor reuses to answer for its targets. Each answer reads
//! the published snapshot: a connection never runs a check, so HAProxy's polling costs one
//! verdict computation, whatever its interval.
//!
//! What it is not: an HTTP endpoint (HAProxy's `option httpchk` against `/readyz` is the
//! other way), and not a channel for HAProxy to command the service: what HAProxy sends first
//! (`agent-send`) is read only as the name of what to report on.
//!
//! The mapping, documented for operators in `docs/AGENT_CHECK.md`:
//!
//! | vitals | reply | HAProxy shows |
//! |---|---|---|
//! | ready, readiness pass | `up ready 100%` | UP at its configured weight |
//! | ready, readiness warn (degraded) | `up ready 50%` ([`AgentCheck::degraded_weight`]) | UP at half weight |
//! | starting, or readiness fail | `down ready #<failing checks>` | DOWN |
//! | draining | `up drain #draining` | DRAIN: no new connections |
//! | stopped (drain delay over) | `maint #stopped` | MAINT |

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use vitals_core::Status;

use crate::check::Group;
use crate::health::Health;
use crate::lifecycle::Phase;
use crate::view::{Scope, Verdict};

/// How long one connection may take, from accept to close, unless set otherwise. HAProxy's
/// own agent timeout (`timeout check`, else `agent-inter`) usually ends it sooner.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The weight, in percent of the server's configured weight, of a degraded service unless
/// set otherwise: it keeps serving, but a healthy peer takes twice its share.
pub const DEFAULT_DEGRADED_WEIGHT: u8 = 50;

/// At most this many connections are answered at once; more wait in the listen backlog.
/// HAProxy opens one per server per `agent-inter`, so this is only a bound against floods.
const MAX_CONNECTIONS: usize = 256;

/// The longest `agent-send` line read; a longer one is cut here.
const MAX_REQUEST: usize = 256;

/// The longest description sent after `#`; HAProxy shows it on its stats page and in logs.
const MAX_REASON: usize = 200;

/// One agent-check answer. [`fmt::Display`] gives the line HAProxy reads, newline included.
///
/// Every reply sets HAProxy's admin mode as well as the server's state, because HAProxy lets
/// only the agent undo what the agent did: after a `drain` or a `maint`, only a later `ready`
/// puts the server back. (The flip side: `ready` also ends a drain or maintenance that an
/// operator set through HAProxy's own CLI while this agent is enabled.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// In rotation at `weight` percent (0–100) of the server's configured weight.
    Up { weight: u8 },
    /// Alive, finishing what it has, taking nothing new.
    Drain { reason: String },
    /// Out of rotation: cannot serve.
    Down { reason: String },
    /// Out of rotation on purpose (stopped, paused, in maintenance): HAProxy shows MAINT.
    Maint { reason: String },
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Up { weight } => writeln!(f, "up ready {}%", weight.min(&100)),
            Reply::Drain { reason } => writeln!(f, "up drain #{}", clean(reason)),
            Reply::Down { reason } => writeln!(f, "down ready #{}", clean(reason)),
            Reply::Maint { reason } => writeln!(f, "maint #{}", clean(reason)),
        }
    }
}

/// `reason` as one short line: HAProxy stops reading at the first CR or LF, and shows the
/// description in its stats page and logs.
fn clean(reason: &str) -> String {
    let line: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    if line.chars().count() <= MAX_REASON {
        line.to_string()
    } else {
        let mut cut: String = line.chars().take(MAX_REASON - 1).collect();
        cut.push('…');
        cut
    }
}

/// What the responder does with the bytes HAProxy sends when it connects (`agent-send`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Answer at once; whatever arrives is read and discarded after the answer (so that
    /// closing the socket sends a FIN, not a reset that could cost HAProxy the answer).
    Ignore,
    /// Wait for one line (up to `\n`, the end of the stream or the timeout) and pass it,
    /// trimmed, to the answer function: HAProxy's `agent-send "<name>\n"` names what to
    /// report on.
    Line,
}

/// Answers HAProxy's agent checks from a [`Health`]: the readiness verdict, the lifecycle
/// phase, and a reduced weight while degraded (see the module documentation for the
/// mapping).
///
/// ```no_run
/// # async fn run(health: vitals::Health) -> std::io::Result<()> {
/// // haproxy.cfg: server app1 10.0.0.1:8000 agent-check agent-port 8001 agent-inter 1s
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:8001").await?;
/// tokio::spawn(vitals::AgentCheck::new(health.clone()).degraded_weight(25).serve(listener));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AgentCheck {
    health: Health,
    degraded_weight: u8,
    timeout: Duration,
}

impl AgentCheck {
    pub fn new(health: Health) -> Self {
        AgentCheck {
            health,
            degraded_weight: DEFAULT_DEGRADED_WEIGHT,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The weight of a degraded (warn) service, in percent of its configured weight; values
    /// over 100 count as 100. 0 keeps it UP but sends it nothing new. Default 50.
    pub fn degraded_weight(mut self, percent: u8) -> Self {
        self.degraded_weight = percent.min(100);
        self
    }

    /// The longest one connection may take from accept to close. Default 2 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The answer now, from the latest snapshot.
    pub fn reply(&self) -> Reply {
        let snapshot = self.health.snapshot();
        let verdict = self
            .health
            .verdict(&snapshot, Scope::Group(Group::Readiness), &[]);
        let show_details = self.health.options().details_token.is_none();
        reply(
            &verdict,
            &self.health.phase(),
            self.degraded_weight,
            show_details,
        )
    }

    /// Answer every connection on `listener` until the future is dropped. Returns only on an
    /// accept error that no retry can fix (the socket is not listening any more).
    pub async fn serve(self, listener: TcpListener) -> io::Result<()> {
        let timeout = self.timeout;
        serve_with(listener, Request::Ignore, timeout, move |_| self.reply()).await
    }
}

/// The reply for a readiness `verdict` in `phase`. With `show_details` false (the service
/// set a details token), a failure names no check: the agent port has no authentication.
pub fn reply(
    verdict: &Verdict<'_>,
    phase: &Phase,
    degraded_weight: u8,
    show_details: bool,
) -> Reply {
    match phase {
        Phase::Stopped => {
            return Reply::Maint {
                reason: "stopped: shutting down".to_string(),
            };
        }
        Phase::Draining => {
            return Reply::Drain {
                reason: "draining: shutting down".to_string(),
            };
        }
        Phase::Starting { .. } | Phase::Ready => {}
    }
    match verdict.status {
        Status::Pass => Reply::Up { weight: 100 },
        Status::Warn => Reply::Up {
            weight: degraded_weight.min(100),
        },
        Status::Fail => {
            let reason = match (&verdict.gate, show_details) {
                (Some(gate), true) => gate.clone(),
                (Some(_), false) => phase.as_str().to_string(),
                (None, false) => "not ready".to_string(),
                (None, true) => {
                    let failing: Vec<&str> = verdict
                        .checks
                        .iter()
                        .filter(|view| {
                            !view.excluded && view.critical && view.status == Status::Fail
                        })
                        .map(|view| view.name)
                        .collect();
                    format!("not ready: {} failing", failing.join(", "))
                }
            };
            Reply::Down { reason }
        }
    }
}

/// Answer every connection on `listener` with `answer(request)`, where `request` is the
/// trimmed `agent-send` line under [`Request::Line`] and empty under [`Request::Ignore`].
/// Each connection is answered in its own task and closed within `timeout`; at most a few
/// hundred are open at once.
///
/// Runs until the future is dropped. Returns only on an accept error that no retry can fix;
/// a failed connection or a momentary lack of file descriptors is logged and survived.
pub async fn serve_with<F>(
    listener: TcpListener,
    request: Request,
    timeout: Duration,
    answer: F,
) -> io::Result<()>
where
    F: Fn(&str) -> Reply + Send + Sync + 'static,
{
    let answer = Arc::new(answer);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            // The semaphore is never closed; stop cleanly if it somehow is.
            return Ok(());
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) if transient(&error) => {
                tracing::warn!(%error, "agent-check: cannot accept a connection; retrying");
                // Out of file descriptors or memory: give the process a moment to free some.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(error) => return Err(error),
        };
        let answer = Arc::clone(&answer);
        tokio::spawn(async move {
            if let Err(error) = handle(stream, request, timeout, answer.as_ref()).await {
                tracing::debug!(%peer, %error, "agent-check connection failed");
            }
            drop(slot);
        });
    }
}

/// Errors that concern one connection or a passing shortage, after which accepting again
/// makes sense.
fn transient(error: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(
        error.kind(),
        ConnectionAborted
            | ConnectionReset
            | ConnectionRefused
            | Interrupted
            | WouldBlock
            | TimedOut
            | OutOfMemory
    ) || matches!(
        error.raw_os_error(),
        // EMFILE, ENFILE, ENOBUFS, ENOMEM, EPROTO, EPERM (firewall) on Linux.
        Some(24 | 23 | 105 | 12 | 71 | 1)
    )
}

async fn handle<F>(
    mut stream: TcpStream,
    request: Request,
    timeout: Duration,
    answer: &F,
) -> io::Result<()>
where
    F: Fn(&str) -> Reply,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let line = match request {
        Request::Ignore => String::new(),
        // Half the time for the request at most, so that an `agent-send` without its `\n`
        // still gets its answer in time.
        Request::Line => read_line(&mut stream, start + timeout / 2).await?,
    };
    let reply = answer(&line).to_string();
    let exchange = async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        // Read until HAProxy closes: closing with unread bytes (an `agent-send` we ignored)
        // would send a reset, and a reset may destroy the answer before HAProxy reads it.
        let mut sink = [0u8; 512];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), io::Error>(())
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the peer kept the connection open longer than {timeout:?}"),
        )),
    }
}

/// The first line the peer sends, trimmed: up to `\n`, the end of the stream, the deadline
/// or [`MAX_REQUEST`] bytes, whichever comes first. Invalid UTF-8 is replaced, not refused:
/// the answer for an unknown name says so.
async fn read_line(stream: &mut TcpStream, deadline: Instant) -> io::Result<String> {
    let mut buf = Vec::with_capacity(64);
    let mut chunk = [0u8; MAX_REQUEST];
    while !buf.contains(&b'\n') && buf.len() < MAX_REQUEST {
        let room = MAX_REQUEST - buf.len();
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..room])).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(error)) => return Err(error),
        }
    }
    let end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    Ok(String::from_utf8_lossy(&buf[..end]).trim().to_string())
}

#[cfg(test)]
mod tests {
    use vitals_core::machine::State;

    use super::*;
    use crate::view::CheckView;

    fn view(name: &'static str, status: Status, critical: bool) -> CheckView<'static> {
        CheckView {
            name,
            critical,
            status,
            state: State::Healthy,
            stale: false,
            excluded: false,
            output: Some("connection refused".to_string()),
            observed: None,
            time: None,
            component_type: "datastore",
        }
    }

    fn verdict(
        status: Status,
        gate: Option<&str>,
        checks: Vec<CheckView<'static>>,
    ) -> Verdict<'static> {
        Verdict {
            status,
            gate: gate.map(str::to_string),
            checks,
        }
    }

    /// One row of the mapping: (phase, verdict, details shown) → the exact line HAProxy reads.
    fn check(phase: Phase, verdict: Verdict<'_>, show_details: bool, expected: &str) {
        let line = reply(&verdict, &phase, 50, show_details).to_string();
        assert_eq!(line, expected, "{phase:?} {:?}", verdict.status);
    }

    #[test]
    fn verdicts_map_to_agent_replies() {
        let ready = || Phase::Ready;
        check(
            ready(),
            verdict(Status::Pass, None, vec![]),
            true,
            "up ready 100%\n",
        );
        check(
            ready(),
            verdict(Status::Warn, None, vec![]),
            true,
            "up ready 50%\n",
        );
        let failing = || {
            vec![
                view("database", Status::Fail, true),
                view("cache", Status::Fail, false),
                view("queue", Status::Fail, true),
                view("disk", Status::Pass, true),
            ]
        };
        // Only critical failures take a service out; the non-critical one is not named.
        check(
            ready(),
            verdict(Status::Fail, None, failing()),
            true,
            "down ready #not ready: database, queue failing\n",
        );
        check(
            ready(),
            verdict(Status::Fail, None, failing()),
            false,
            "down ready #not ready\n",
        );
        let starting = || Phase::Starting {
            progress: "startup hook \"migrate\" failed (attempt 2): timeout".to_string(),
        };
        let gate = "starting: startup hook \"migrate\" failed (attempt 2): timeout";
        check(
            starting(),
            verdict(Status::Fail, Some(gate), vec![]),
            true,
            "down ready #starting: startup hook \"migrate\" failed (attempt 2): timeout\n",
        );
        check(
            starting(),
            verdict(Status::Fail, Some(gate), vec![]),
            false,
            "down ready #starting\n",
        );
        // The lifecycle wins over the checks: a draining service may still pass them.
        let draining = verdict(Status::Fail, Some("draining"), vec![]);
        check(
            Phase::Draining,
            draining,
            true,
            "up drain #draining: shutting down\n",
        );
        let stopped = verdict(Status::Pass, None, vec![]);
        check(
            Phase::Stopped,
            stopped,
            true,
            "maint #stopped: shutting down\n",
        );
    }

    #[test]
    fn replies_are_one_line_with_a_bounded_description() {
        let reply = Reply::Down {
            reason: format!("line one\r\nline two {}", "x".repeat(500)),
        };
        let line = reply.to_string();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.ends_with("…\n"), "{line}");
        assert!(
            line.starts_with("down ready #line one  line two xxx"),
            "{line}"
        );
        assert_eq!(
            line.trim_end().chars().count(),
            "down ready #".len() + MAX_REASON
        );
        // Weights above 100 % are not ours to send.
        assert_eq!(Reply::Up { weight: 250 }.to_string(), "up ready 100%\n");
    }

    async fn exchange(addr: std::net::SocketAddr, send: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(send).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test]
    async fn the_responder_answers_each_connection_with_the_reply_for_its_request() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_with(
            listener,
            Request::Line,
            Duration::from_secs(5),
            |name: &str| match name {
                "orders" => Reply::Up { weight: 100 },
                other => Reply::Down {
                    reason: format!("unknown target {other:?}"),
                },
            },
        ));
        assert_eq!(exchange(addr, b"orders\n").await, "up ready 100%\n");
        assert_eq!(exchange(addr, b"  orders\r\n").await, "up ready 100%\n");
        // A name without its newline is answered once the peer stops sending.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(b"orders").await.unwrap();
        stream.shutdown().await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "up ready 100%\n");
        assert_eq!(
            exchange(addr, b"nope\nmore bytes the agent ignores").await,
            "down ready #unknown target \"nope\"\n"
        );
        server.abort();
    }

    #[tokio::test]
    async fn ignoring_the_request_answers_at_once() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(serve_with(
            listener,
            Request::Ignore,
            Duration::from_secs(5),
            |_: &str| Reply::Maint {
                reason: "paused".to_string(),
            },
        ));
        // Nothing sent: the answer comes without waiting for a request.
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "maint #paused\n");
        // Something sent: still the same answer, and a clean close.
        assert_eq!(exchange(addr, b"ignored\n").await, "maint #paused\n");
        server.abort();
    }
}
