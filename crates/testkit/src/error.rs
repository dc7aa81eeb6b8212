//! The one error type of the testkit.
//!
//! Every failure to find, start, reach or stop a server becomes an [`Error`] whose message says
//! what went wrong and what to do about it (install a package, run `scripts/test`, read the
//! server's log tail that the message carries). It is not meant to be matched on finely by
//! tests: tests usually `?` or `expect` it and let the message explain the failure.

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Everything that can go wrong while running a test server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A server binary could not be found anywhere it was looked for.
    #[error("could not find `{program}` (looked in {looked}); {hint}")]
    BinaryNotFound {
        /// The program's file name, e.g. `postgres`.
        program: &'static str,
        /// Where it was looked for, in order.
        looked: String,
        /// What to do about it.
        hint: &'static str,
    },

    /// An environment variable that the caller relies on is unset or empty.
    #[error("{var} is not set; {hint}")]
    EnvNotSet {
        /// The variable's name.
        var: &'static str,
        /// What to do about it.
        hint: &'static str,
    },

    /// A system user that the server must run as does not exist.
    #[error(
        "running as root but there is no `{user}` user to run the server as; install the \
         server's package (it creates the user) or run the tests as a non-root user"
    )]
    UserNotFound {
        /// The user's name.
        user: &'static str,
    },

    /// An I/O operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, e.g. "could not create a temporary directory".
        what: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// A system call through nix failed (changing ownership, looking up a user).
    #[error("{what}: {source}")]
    Sys {
        /// What was being done.
        what: String,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },

    /// A helper command (such as `initdb`) ran and failed.
    #[error("{what} failed ({status}); its output:\n{output}")]
    CommandFailed {
        /// The command, as it would be typed.
        what: String,
        /// How it exited.
        status: ExitStatus,
        /// Its standard output and error, trimmed.
        output: String,
    },

    /// The server exited while it was expected to start or to keep running.
    #[error("{server} exited early ({status}); last lines of its log {log}:\n{log_tail}")]
    Exited {
        /// Which server, e.g. "postgresql on 127.0.0.1:5433".
        server: String,
        /// How it exited.
        status: ExitStatus,
        /// The log file's path.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },

    /// The server did not accept connections within the allowed time.
    #[error(
        "{server} did not become ready within {waited:?} (last attempt: {last_error}); last \
         lines of its log {log}:\n{log_tail}"
    )]
    NotReady {
        /// Which server.
        server: String,
        /// How long we waited.
        waited: Duration,
        /// What the last readiness attempt reported.
        last_error: String,
        /// The log file's path.
        log: PathBuf,
        /// The last lines of its log.
        log_tail: String,
    },

    /// A process did not exit within the allowed time after it was signalled.
    #[error("process {pid} is still running {waited:?} after it was asked to stop")]
    StillRunning {
        /// The process id.
        pid: u32,
        /// How long we waited.
        waited: Duration,
    },

    /// Sending a signal failed (usually: the process is already gone).
    #[error("could not send {signal} to process {pid}: {source}")]
    Signal {
        /// The process id.
        pid: u32,
        /// The signal's name.
        signal: &'static str,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },

    /// `stop()` on a stopped server, or `start_again()` on a running one.
    #[error("{server} is {state}; {hint}")]
    WrongState {
        /// Which server.
        server: String,
        /// "already stopped" or "still running".
        state: &'static str,
        /// What to call instead.
        hint: &'static str,
    },

    /// A query against the test PostgreSQL server failed.
    #[error("{what}: {source}")]
    Postgres {
        /// What was being done, including the SQL where that helps.
        what: String,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// A body that should have been JSON was not (a [`Webhook`](crate::Webhook)'s request).
    #[error("{what} is not JSON ({source}): {body:?}")]
    NotJson {
        /// Whose body.
        what: String,
        /// The body, as text.
        body: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },

    /// The Redis server answered something unexpected.
    #[error("redis on {addr} answered {answer:?} to PING instead of +PONG")]
    UnexpectedReply {
        /// The server's address.
        addr: String,
        /// What it said.
        answer: String,
    },
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}
