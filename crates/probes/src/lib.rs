//! Probes: the pieces of vitals that look at the outside world and say what they saw.
//!
//! A probe has one job: [`Probe::check`] looks once and returns a [`Report`] (a verdict, a
//! message, maybe a measured value). It does not schedule itself, time itself out, remember
//! past results or decide whether a failure matters: the runner that calls it owns the clock,
//! the deadline (it cancels the future) and the state machine.
//!
//! Probes reuse what they connect with. The PostgreSQL probe borrows from a pool, the Redis
//! probe shares one multiplexed connection manager, the HTTP probe one client: none opens a new
//! connection per check unless the old one broke.
//!
//! | probe | looks at | external |
//! |---|---|---|
//! | [`Tcp`] | a TCP connect to `host:port` | yes |
//! | [`Http`] | an HTTP request: status code, body text, a JSONPath value, response time | yes |
//! | [`VitalsHealth`] | a service's `application/health+json` verdict and its checks | yes |
//! | [`Grpc`] | `grpc.health.v1` Check of a service name (feature `grpc`) | yes |
//! | [`Exec`] | a command's exit code, the Nagios plugin way (0 pass, 1 warn, 2 fail) | yes |
//! | [`Postgres`] | `SELECT 1` through a pool | yes |
//! | [`Redis`] | `PING` through a connection manager | yes |
//! | [`Memory`], [`Disk`] | memory and disk used, against limits | no |
//! | [`Threshold`] | any async number against limits (a queue's length) | your call |
//! | [`from_fn`] | any async function returning a [`Report`] | your call |
//!
//! "External" matters because a check of an external dependency must not decide liveness: a
//! database outage would get every replica restarted at once. The service library refuses
//! such a check in the liveness group unless forced.
//!
//! Beside the probes, two things every runner and probe shares: [`run_once`] runs a check
//! once the way every runner must (cut at its timeout, a panic caught as a failure, timed on
//! tokio's clock), and [`error_chain`], [`error_root`] and [`fmt_duration`] word errors and
//! durations the same way everywhere.

use std::future::Future;
use std::pin::Pin;

pub use vitals_core::Report;

mod confirm;
mod exec;
mod func;
mod group;
#[cfg(feature = "grpc")]
mod grpc;
#[cfg(feature = "http")]
mod http;
mod limits;
#[cfg(feature = "postgres")]
mod postgres;
mod redact;
#[cfg(feature = "redis")]
mod redis;
mod run;
#[cfg(feature = "system")]
mod system;
mod tcp;
mod text;
mod threshold;
#[cfg(feature = "http")]
mod vitals_health;

pub use confirm::Confirm;
pub use exec::{ChildOutput, Exec, OUTPUT_LIMIT as EXEC_OUTPUT_LIMIT, wait_with_output};
pub use func::{FnProbe, from_fn};
pub use group::{GroupChild, spawn_in_group};
#[cfg(feature = "grpc")]
pub use grpc::{Grpc, GrpcAnswer, GrpcError, GrpcFailure, GrpcTls, code_name};
#[cfg(feature = "http")]
pub use http::{Http, HttpAnswer, HttpError, HttpFailure};
pub use limits::{Limits, LimitsError};
#[cfg(feature = "postgres")]
pub use postgres::Postgres;
pub use redact::{redact_url, redact_urls_in, url_origin};
#[cfg(feature = "redis")]
pub use redis::Redis;
pub use run::{Late, Run, RunEnd, in_time, run_once};
#[cfg(feature = "system")]
pub use system::{Disk, Memory};
pub use tcp::Tcp;
pub use text::{error_chain, error_root, fmt_duration};
pub use threshold::Threshold;
/// The generated `grpc.health.v1` types the gRPC probe speaks (from `tonic-health`).
#[cfg(feature = "grpc")]
pub use tonic_health::pb as grpc_health_pb;
#[cfg(feature = "http")]
pub use vitals_health::VitalsHealth;

/// A boxed future, so that probes of different types can sit side by side as `dyn Probe`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// `componentType` values of `application/health+json`.
pub mod component_type {
    pub const DATASTORE: &str = "datastore";
    pub const SYSTEM: &str = "system";
    pub const COMPONENT: &str = "component";
}

/// Something that can be checked.
///
/// Implementations must be cancel-safe: the runner drops the future at its deadline.
pub trait Probe: Send + Sync + 'static {
    /// Look once. Errors are not a separate channel: a probe that could not look says so in a
    /// failing [`Report`] whose output names the cause ("connection refused").
    fn check(&self) -> BoxFuture<'_, Report>;

    /// The `componentType` this probe reports in `application/health+json`.
    fn component_type(&self) -> &'static str {
        component_type::COMPONENT
    }

    /// Whether the probe reaches outside the process (a database, another service). Such a
    /// check is refused in the liveness group unless forced.
    fn is_external(&self) -> bool {
        false
    }
}
