//! Notifications: alerts decided by rules, written to an outbox, delivered to channels.
//! (Being built in steps; docs/ALERTS.md describes the whole.)
mod alert;
pub use alert::{Alert, AlertKind, TransitionInfo};
