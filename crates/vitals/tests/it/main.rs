//! The library's integration tests, in one binary: one link instead of one per file, and the
//! tests of every file run side by side rather than one file after another. Each module is
//! one area (its own `//!` says which); `common` and `haproxy` are shared helpers.

mod common;

mod agent_check;
mod endpoints;
mod grpc;
mod heartbeat;
mod http_limits;
mod isolation;
mod promtool;
mod scheduling;
mod serve;
mod systemd;
