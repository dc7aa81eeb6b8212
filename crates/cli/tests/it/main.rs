//! The `vitals` binary's tests, in one binary: one link instead of one per file, and the
//! tests of every file run side by side rather than one file after another. Each module is
//! one area (its own `//!` says which); `support` starts the real binary.

mod support;

mod demo;
mod discovery;
mod groups;
mod help;
mod kubernetes;
mod lb;
mod logs;
mod notify;
mod postgres_store;
mod probe;
mod probe_grpc;
mod reload;
mod replicas;
mod serve;
mod supervise;
mod systemd;
