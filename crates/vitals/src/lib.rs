//! Health checks a Rust service embeds: checks of its real dependencies running in the
//! background, Kubernetes-style probes that answer instantly from a snapshot, degraded versus
//! unhealthy, graceful draining, Prometheus metrics and heartbeats.
//!
//! # Quick start
//!
//! ```no_run
//! use std::time::Duration;
//! use vitals::{Check, Health};
//! use vitals::probes::{Memory, Postgres, Redis};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let health = Health::builder()
//!     .service_id("orders")
//!     // Critical: when PostgreSQL is down the service is not ready.
//!     .check(Check::new("database", Postgres::connect("postgres://postgres@127.0.0.1/shop")?)
//!         .interval(Duration::from_secs(5)))
//!     // Non-critical: when Redis is down the service is degraded but keeps serving.
//!     .check(Check::new("cache", Redis::connect("redis://127.0.0.1:6379")?).non_critical())
//!     // Process-local, so it may decide liveness.
//!     .check(Check::new("memory", Memory::default()).liveness())
//!     .on_startup("config", || async { Ok::<_, std::io::Error>(()) })
//!     .start()?;
//!
//! let app = axum::Router::new()
//!     .route("/api/orders", axum::routing::post(|| async { "created" }))
//!     .merge(health.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! // Serves until SIGTERM, then drains: readiness fails at once, liveness keeps passing,
//! // and the listener closes after the drain delay.
//! health.serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! # How it works
//!
//! Each [`Check`] runs on its own schedule in a background task, cut at its timeout, and its
//! outcome goes through a hysteresis state machine (fall 2 / rise 2 by default) from
//! [`vitals_core`]. The latest state of every check is published as one [`Snapshot`]; the
//! probe endpoints only read it, so `/readyz` answers in microseconds and a probe storm adds
//! no query to the database. A result older than its allowed age counts as a failure.
//!
//! The endpoints (see [`Health::router`]): `/livez`, `/readyz`, `/startupz`, `/health`, the
//! seed's `/alive`, `/ready`, `/startup`, `/heartbeat`, per-check paths such as
//! `/readyz/database`, and `/metrics`. `?verbose`, `?exclude=NAME` and `?fresh=1` work as in
//! kube-apiserver.
//!
//! # systemd
//!
//! Started by systemd with `Type=notify`, a service tells it `READY=1` once its startup hooks
//! pass, pings `WatchdogSec=` only while its liveness verdict passes, says `STOPPING=1` when
//! it drains and shows its verdict in `systemctl status`; see [`systemd`]. Nothing to call:
//! [`HealthBuilder::start`] reads `NOTIFY_SOCKET` and `WATCHDOG_USEC`.
//!
//! With the `grpc` feature, the `grpc.health.v1` service answers from the same snapshot
//! (the `grpc` module): `app.merge(health.grpc().router())` serves it beside the HTTP probes on one
//! port.
//!
//! # What it is not
//!
//! Not a monitor of other services (that is `vitals serve`) and not a supervisor: it tells
//! the world how this process is; acting on it is the orchestrator's or load balancer's job.

pub mod agent_check;
mod check;
mod checks_thread;
mod endpoints;
mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
mod health;
mod heartbeat;
mod lifecycle;
mod metrics;
mod scheduler;
pub mod serve;
mod snapshot;
#[cfg(unix)]
pub mod systemd;
mod view;

pub use agent_check::AgentCheck;
pub use check::{Check, Group};
pub use error::{BuildError, Problem};
pub use health::{Health, HealthBuilder};
pub use heartbeat::Heartbeat;
pub use lifecycle::Phase;
pub use serve::{ServerLimits, serve_router, serve_router_with};
pub use snapshot::{CheckSnapshot, Snapshot};
pub use view::{CheckView, Scope, Verdict};

/// The core vocabulary: statuses, outcomes, the state machine's thresholds.
pub use vitals_core as core;
pub use vitals_core::machine::Thresholds;
pub use vitals_core::{Report, Status};
/// The probes vitals ships, re-exported so one dependency is enough.
pub use vitals_probes as probes;

/// The README's code blocks, compiled as doctests so the quick start cannot rot.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
