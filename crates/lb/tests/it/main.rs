//! The balancer's integration tests, in one binary: one link instead of one per file, and the
//! tests of every file run side by side rather than one file after another. Each module is
//! one area (its own `//!` says which); `support` starts backends and balancers.

mod support;

mod failover;
mod fuzz_requests;
mod grpc;
mod hardening;
mod protocols;
mod reload;
