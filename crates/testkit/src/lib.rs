//! Test support for vitals: real PostgreSQL and Redis servers on loopback, and the plumbing
//! every end-to-end test needs (bounded polls, a webhook receiver, programs started and
//! reaped, ports without races).
//!
//! vitals checks real dependencies, so its tests run real servers from the distribution's
//! packages (there is no Docker engine on these machines, and mocks would not tell a refused
//! connection from a paused server). Two ways to get one:
//!
//! - **A private server** that the test may stop, start again, pause or count queries on:
//!   [`Postgres::start`] and [`Redis::start`]. Each makes its own temporary directory and free
//!   port, and dropping it kills the server and removes the directory.
//! - **The shared servers** that `scripts/test` starts once per run, for tests that only need
//!   a server that stays up: [`shared_postgres_url`] and [`shared_redis_url`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), vitals_testkit::Error> {
//! use vitals_testkit::{Postgres, Signal, signal};
//!
//! let mut pg = Postgres::start().await?;
//! pg.execute("SELECT 1").await?;
//! assert_eq!(pg.count_queries("SELECT $1").await?, 1); // normalized by pg_stat_statements
//! signal(pg.pid(), Signal::SIGSTOP)?; // paused: accepts TCP, answers nothing
//! signal(pg.pid(), Signal::SIGCONT)?;
//! pg.stop().await?; // refused from now on
//! pg.start_again().await?; // same port, same data
//! # Ok(())
//! # }
//! ```
//!
//! The plumbing, for tests of any crate:
//!
//! - [`until`]: poll a condition up to a deadline; on timeout the panic names what was
//!   awaited and the last value seen ([`until_blocking`] without a runtime).
//! - [`Webhook`]: a real HTTP receiver on loopback that records method, path, headers and
//!   body of each request and answers the status (and delay) the test chooses.
//! - [`Running`]: any program (the `vitals` binary, a backend, a browser driver) started with
//!   its output kept, waited for until it listens, printed when the test fails, killed and
//!   reaped on drop.
//! - [`DnsServer`]: a small authoritative DNS server on a loopback UDP port, with A, AAAA and
//!   SRV records the test sets and changes (DNS discovery against a real resolver).
//! - [`grpc_python`] and [`grpc_health_server`]: gRPC's own health client and server
//!   (PyPI's `grpcio-health-checking`), to test vitals' gRPC server and client against.
//! - [`reserve_port`]: a loopback port held by a bound, non-listening socket (connections
//!   refused) until the test listens on it; [`free_port`] for programs that bind a port
//!   themselves.
//!
//! Process hygiene: every server is stopped by its own PID, never by name; as root PostgreSQL
//! runs as the `postgres` user through `setpriv`, which execs in place, so the PID held is the
//! server's. A test binary killed with `SIGKILL` cannot clean up after itself; its servers then
//! outlive it (they are in its process group, so Ctrl-C reaches them).
//!
//! What it is not: a mock, a container runner, or anything for production code. Its servers
//! and programs must not be used under tokio's paused clock (`start_paused = true`): waiting
//! for real servers takes real time ([`until`] alone works there). Timeouts are generous (30 s to become ready, 30 s to stop) because CI machines have two
//! cores and may be compiling at the same time.

mod dns;
mod error;
mod grpc_python;
mod haproxy;
mod panics;
mod port;
mod postgres;
mod process;
mod promtool;
mod redis;
mod running;
mod shared;
mod until;
mod webhook;

pub use dns::{DnsRecord, DnsServer};
pub use error::Error;
pub use grpc_python::{
    Certificates, grpc_health_command, grpc_health_once, grpc_health_script, grpc_health_server,
    grpc_python, test_certificates,
};
pub use haproxy::Haproxy;
pub use panics::panics;
pub use port::{ReservedPort, free_port, reserve_port};
pub use postgres::{Postgres, fresh_schema_url};
pub use process::{
    ProcStat, Signal, children_of, group_alive, is_running, proc_stat, signal, wait_for_exit,
};
pub use promtool::promtool_check;
pub use redis::Redis;
pub use running::{Ready, Running};
pub use shared::{shared_postgres_url, shared_redis_url};
pub use until::{Condition, POLL_EVERY, holds, until, until_blocking, until_every};
pub use webhook::{Request, Webhook};
