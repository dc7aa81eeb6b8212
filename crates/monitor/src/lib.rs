//! The vitals monitor (`vitals serve`): watches many services by active probes and passive
//! heartbeats, judges every target with the core state machine, keeps history in SQLite, and
//! serves a JSON API and Prometheus metrics.
//!
//! - [`config`]: the TOML configuration, validated up front (every error with file, line,
//!   field).
//! - [`store`]: SQLite (WAL) history: transitions, results, rollups, uptime, pings.
//! - [`udp`]: the authenticated UDP heartbeat protocol (see `docs/PROTOCOL.md`).
//! - `engine`: targets, the scheduler for many targets, heartbeat deadlines.
//! - `api`: `/api/v1`, healthchecks.io-compatible `/ping/…`, `/metrics`.
//!
//! What it is not: a load balancer or an alerter (issues 4 and 5 build those on top).

pub use vitals_config as config;
pub use vitals_engine as engine;

pub mod agent_check;
pub mod api;
pub mod dashboard;
pub mod notify;
pub mod recovery;
pub mod serve;
pub mod store;
pub mod targets;
pub mod udp;
