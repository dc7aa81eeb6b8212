//! The fleet of vitals' daemons: every target's live state, judged by the core state machine,
//! with the rules that join targets together — timing, heartbeat semantics, isolation, root
//! cause, pause and maintenance.
//!
//! Two layers, as in quinn-proto and quinn:
//! - [`Fleet`] is sans-IO: `handle_*(now, …)` in, `poll_*` out, no clock, no tasks, no
//!   probes run. Every rule lives here and is tested without waiting.
//! - [`Engine`] is the thin async driver: one lock around the fleet, one timer task, a task
//!   per running check under a semaphore, and the [`records`] channel out.
//!
//! Specs come in as [`TargetSpec`]s (made by the monitor from its configuration, and by the
//! load balancer from its pools); what must be stored, told or acted on leaves as
//! [`Record`]s, in order. Live views ([`TargetView`]) are read under the lock.
//!
//! What it is not: storage, alerting, an HTTP server or a configuration reader (`cargo tree
//! -p vitals-engine` shows no SQLite and no axum).

mod clock;
mod driver;
mod expect;
mod fleet;
mod metrics;
mod record;
mod service;
pub mod shards;
mod spec;

#[cfg(test)]
mod driver_tests;

pub use clock::{Clock, Now};
pub use driver::{Engine, Lag, Options, UnknownPing};
pub use expect::Expectation;
pub use fleet::{
    Applied, COLLAPSE_FOR, Command, ConfirmDue, Desired, Due, Fleet, MAX_MAINTENANCE, TargetView,
};
pub use metrics::CheckMetrics;
pub use record::{
    PingRecord, RECORD_BYTES, Record, RecordReceiver, RecordSender, Signal, TimelineState,
    Transition, records, records_within,
};
pub use spec::{Mode, Restored, TargetSpec, Topology};
pub use vitals_core::Cadence;
