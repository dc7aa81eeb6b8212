//! Heartbeat failure detectors: arrival times in, a level of suspicion out.
//!
//! A passive target proves it is alive by pushing heartbeats; a detector turns their arrival
//! times into a [`Suspicion`]. Two are here: [`Deadline`] (period plus grace, the obvious one)
//! and [`PhiAccrual`] (Hayashibara et al. 2004, as Akka and Cassandra run it), which learns the
//! rhythm of the heartbeats and grows more suspicious the less likely the silence is.
//!
//! What it is not: a verdict of death. Suspicion is cheap and may be wrong (a GC pause, lost
//! packets); it is a level, not a bool, and the daemons decide what each level does and what
//! confirms it. Nor does a detector know what "never heard from" means: before the first
//! heartbeat the level is 0, because nothing was expected yet (a [`Deadline`] can be told to
//! expect one by a given instant).
//!
//! Every detector speaks the same sans-IO vocabulary: [`Detector::handle_heartbeat`] in,
//! [`Detector::suspicion`] out, and [`Detector::poll_timeout`] telling the driver when to look
//! again. Time only moves forward; an earlier `now` is taken as the latest one seen.

mod deadline;
mod phi;

use std::time::Instant;

pub use deadline::Deadline;
pub use phi::{DetectorError, MAX_PHI, MAX_SAMPLES, PhiAccrual, PhiConfig};

/// How suspicious a silence is, and from which level on it counts as suspected.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Suspicion {
    /// Grows while no heartbeat arrives; 0 when nothing is expected.
    pub level: f64,
    /// The level from which the target is suspected.
    pub threshold: f64,
}

impl Suspicion {
    pub fn is_suspected(&self) -> bool {
        self.level >= self.threshold
    }
}

/// A failure detector fed with heartbeat arrival times.
pub trait Detector {
    /// A heartbeat arrived at `now`.
    fn handle_heartbeat(&mut self, now: Instant);

    /// How suspicious the silence is at `now`. Never decreases as `now` grows, until the next
    /// heartbeat.
    fn suspicion(&self, now: Instant) -> Suspicion;

    /// The instant at which the target becomes suspected if no heartbeat arrives before, so
    /// that the driver knows when to look again; it may already be past. `None` when nothing
    /// is expected (before the first heartbeat, unless told otherwise).
    fn poll_timeout(&self) -> Option<Instant>;
}
