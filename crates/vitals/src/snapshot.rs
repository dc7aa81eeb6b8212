//! The snapshot: the latest result and state of every check, published as one value.
//!
//! Writers (one scheduler task per check) replace their own entry; readers (probe requests)
//! take the whole snapshot at once, so a response never mixes two moments. Reading is an
//! `Arc` clone under a briefly held lock: probe requests never wait for a check to run.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::watch;
use tokio::time::Instant;
use vitals_core::Outcome;
use vitals_core::machine::State;

/// What is known about one check right now.
#[derive(Debug, Clone)]
pub struct CheckSnapshot {
    /// The latest outcome, if the check has run.
    pub outcome: Option<Outcome>,
    /// Monotonic time the latest outcome was recorded, to measure its age.
    pub recorded: Option<Instant>,
    /// The hysteresis state after the latest outcome.
    pub state: State,
    /// Monotonic time the current state was entered.
    pub state_since: Option<Instant>,
    pub flapping: bool,
    /// Completed runs so far; a reader waiting for a fresh result waits for this to grow.
    pub runs: u64,
    /// Wall-clock time of the latest passing (or warning) run.
    pub last_success: Option<SystemTime>,
}

impl Default for CheckSnapshot {
    fn default() -> Self {
        CheckSnapshot {
            outcome: None,
            recorded: None,
            state: State::Unknown,
            state_since: None,
            flapping: false,
            runs: 0,
            last_success: None,
        }
    }
}

/// Every check's entry, in registration order.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub checks: Vec<CheckSnapshot>,
}

/// The publishing side: owned by the health handle, written by the scheduler tasks.
#[derive(Debug)]
pub(crate) struct Board {
    tx: watch::Sender<Arc<Snapshot>>,
}

impl Board {
    pub(crate) fn new(checks: usize) -> Self {
        let snapshot = Snapshot {
            checks: vec![CheckSnapshot::default(); checks],
        };
        Board {
            tx: watch::Sender::new(Arc::new(snapshot)),
        }
    }

    /// The whole current snapshot.
    pub(crate) fn read(&self) -> Arc<Snapshot> {
        Arc::clone(&self.tx.borrow())
    }

    /// Replace check `index`'s entry. Copy-on-write: readers holding the previous snapshot
    /// keep it unchanged.
    pub(crate) fn publish(&self, index: usize, entry: CheckSnapshot) {
        self.tx.send_modify(|snapshot| {
            Arc::make_mut(snapshot).checks[index] = entry;
        });
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}
