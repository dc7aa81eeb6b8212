//! What the fleet is asked to watch: [`TargetSpec`] (one target and how it is watched),
//! [`Topology`] (what depends on what, which targets are canaries) and [`Restored`] (a saved
//! state to carry on from). Plain data, made by the daemons from their configuration.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use vitals_core::Cadence;
use vitals_core::machine::{State, Thresholds};
use vitals_probes::{Confirm, Probe, VitalsHealth};

use crate::Expectation;

/// How a target is watched.
#[derive(Clone)]
pub enum Mode {
    /// The monitor checks it.
    Active {
        probe: Arc<dyn Probe>,
        cadence: Cadence,
        /// Where a failing check is confirmed (issue 15): refused there, the target is down
        /// at once instead of after `down_after` failures.
        confirm: Option<Arc<Confirm>>,
    },
    /// A vitals-library service: checked like `Active` through its health body, and each
    /// check the body names becomes a row of its own (`<id>/<check>`).
    Service {
        service: Arc<VitalsHealth>,
        cadence: Cadence,
    },
    /// It reports to the monitor (HTTP pings, UDP beats).
    Passive {
        ping_id: String,
        expectation: Expectation,
        /// Whether a failure an HTTP ping reports may make recovery act: the ping API
        /// checked a key, or the operator trusts pings without one. UDP beats (verified)
        /// and silence always may.
        trusted_pings: bool,
        /// Where to confirm a suspicion (issue 15): a silence alone then never fails the
        /// target; a refusal there confirms it dead, an answer says it is stalled.
        confirm: Option<Arc<Confirm>>,
    },
}

impl Mode {
    /// Where its suspicions are confirmed, if anywhere (see `fleet::confirm`).
    pub fn confirm(&self) -> Option<&Arc<Confirm>> {
        match self {
            Mode::Active { confirm, .. } | Mode::Passive { confirm, .. } => confirm.as_ref(),
            Mode::Service { .. } => None,
        }
    }

    /// How often it is checked, when the monitor checks it.
    pub fn cadence(&self) -> Option<&Cadence> {
        match self {
            Mode::Active { cadence, .. } | Mode::Service { cadence, .. } => Some(cadence),
            Mode::Passive { .. } => None,
        }
    }
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mode::Active {
                cadence, confirm, ..
            } => f
                .debug_struct("Active")
                .field("cadence", cadence)
                .field("confirm", &confirm.as_ref().map(|c| c.describe()))
                .finish_non_exhaustive(),
            Mode::Service { service, cadence } => f
                .debug_struct("Service")
                .field("url", &service.url())
                .field("cadence", cadence)
                .finish(),
            Mode::Passive {
                ping_id,
                expectation,
                trusted_pings,
                confirm,
            } => f
                .debug_struct("Passive")
                .field("ping_id", ping_id)
                .field("expectation", expectation)
                .field("trusted_pings", trusted_pings)
                .field("confirm", &confirm.as_ref().map(|c| c.describe()))
                .finish(),
        }
    }
}

/// One target as the fleet runs it.
#[derive(Debug, Clone)]
pub struct TargetSpec {
    pub id: String,
    pub name: String,
    pub thresholds: Thresholds,
    pub mode: Mode,
}

/// Dependencies and canaries by target id, as configured.
///
/// Canaries are targets that should always answer from where the monitor runs (a gateway, a
/// DNS server, a well-known outside service). When every canary is impaired, the monitor is
/// **isolated**: failures it sees say more about its own network than about the targets.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    /// Target id → ids it depends on.
    pub depends_on: HashMap<String, Vec<String>>,
    /// Ids of the canary targets.
    pub canaries: Vec<String>,
}

/// A saved state to carry on from after a restart.
#[derive(Debug, Clone)]
pub struct Restored {
    pub state: State,
    pub since: Option<SystemTime>,
    pub consecutive_failures: u32,
    pub consecutive_successes: u32,
    pub flapping: bool,
    pub paused: bool,
    pub maintenance_until: Option<SystemTime>,
}
