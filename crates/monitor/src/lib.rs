//! The vitals monitor (`vitals serve`): watches many services by active probes and passive
//! heartbeats, judges every target with the core state machine, keeps history in SQLite, and
//! serves a JSON API and Prometheus metrics.
//!
//! - [`config`]: the TOML configuration (`vitals-config`, re-exported), validated up front
//!   (every error with file, line, field).
//! - [`store`]: SQLite (WAL) history: transitions, results, rollups, uptime, pings.
//! - [`udp`]: the authenticated UDP heartbeat protocol (see `docs/PROTOCOL.md`).
//! - [`engine`]: the fleet (`vitals-engine`, re-exported): targets, their schedules,
//!   heartbeat deadlines, isolation and root cause; `serve/persist.rs` stores what it decides.
//! - `api`: `/api/v1`, healthchecks.io-compatible `/ping/…`, `/metrics`.
//! - [`discovery`]: targets found in `file_sd` files and DNS, applied like a reload.
//!
//! What it is not: a load balancer (`vitals-lb`) or the place where targets are judged
//! (`vitals-engine`).

pub use vitals_config as config;
pub use vitals_engine as engine;

pub mod agent_check;
pub mod api;
pub mod dashboard;
pub mod discovery;
pub mod notify;
pub mod ping_ids;
pub mod recovery;
pub mod replicas;
pub mod serve;
pub mod store;
pub mod targets;
pub mod udp;
