//! The testkit's own tests, in one binary: one link instead of one per file, and the tests
//! of every file run side by side. Each module is one area; its own `//!` says which.

mod plumbing;
mod servers;
