//! The sans-IO heart of vitals.
//!
//! This crate owns the vocabulary every other part of vitals speaks, as plain data and
//! synchronous state machines:
//!
//! - [`Cadence`], how often an active check runs and how long it may take;
//! - [`Status`] (pass / warn / fail) and [`aggregate()`] of many checks into one verdict;
//! - [`Outcome`], what one check run observed, and [`Report`], what a check returns before the
//!   runner stamps time on it;
//! - [`machine`], the hysteresis state machine (unknown, healthy, degraded, failing, unhealthy,
//!   down, recovering) with fall / rise / down_after thresholds and flap detection;
//! - [`detector`], heartbeat failure detectors (deadline and phi accrual);
//! - [`confirm`], the second level: a suspicion confirmed (dead) or explained (stalled,
//!   unreachable) by an independent signal;
//! - [`graph`], the dependency graph between targets and its root-cause rule;
//! - [`recovery`], the restart budget: when a recovery action may run, and when to escalate;
//! - [`SplitMix64`], the seeded pseudo-random generator behind jitter and random choices;
//! - [`health_json`], the `application/health+json` body.
//!
//! What it is not: it does no I/O, reads no clock and knows nothing of tokio. Every function
//! that depends on time takes `now` as an argument, so the whole crate is deterministic and
//! tested without waiting.

pub mod aggregate;
pub mod cadence;
pub mod confirm;
pub mod detector;
pub mod graph;
pub mod health_json;
pub mod machine;
mod outcome;
pub mod random;
pub mod recovery;
mod status;

pub use aggregate::{Part, aggregate};
pub use cadence::Cadence;
pub use confirm::{ConfirmConfig, Confirmer, Evidence, Fact, Judgement};
pub use detector::{Deadline, Detector, PhiAccrual, PhiConfig, Suspicion};
pub use machine::{Event, EventKind, Machine, Saved, State, Thresholds};
pub use outcome::{Kind, Observed, Outcome, Report};
pub use random::SplitMix64;
pub use status::Status;
