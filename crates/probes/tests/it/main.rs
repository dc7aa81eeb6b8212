//! The probes' integration tests, in one binary: one link instead of one per file, and the
//! tests of every file run side by side rather than one file after another. Each module is
//! one area; its own `//!` says which.

mod exec;
mod fuzz_vitals_health;
mod http;
mod real_servers;
mod vitals_health;
