//! The monitor's integration tests, in one binary: one link instead of one per file, and the
//! tests of every file run side by side rather than one file after another. Each module is
//! one area (its own `//!` says which); `support` starts a monitor from a configuration
//! text.

mod support;

mod agent_check;
mod alert_path;
mod confirm;
mod dashboard;
mod dashboard_browser;
mod discovery;
mod fuzz_ping;
mod groups;
mod grpc;
mod hardening;
mod notify_api;
mod notify_config;
mod notify_delivery;
mod pages;
mod recovery;
mod root_cause;
mod serve;
