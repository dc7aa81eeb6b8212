//! The snapshot: the latest result and state of every check, published as one value.
//!
//! Writers (one scheduler task per check) replace their own entry; readers (probe requests)
//! take the whole snapshot at once, so a response never mixes two moments. A read is one
//! lock-free `ArcSwap` load: a probe request never waits for a check to run, nor for a writer
//! that is publishing (issue 18: the `watch` channel's read lock was shared with publishers,
//! which cloned the snapshot while holding the write side). Writers serialize among
//! themselves on a mutex no reader touches, and also send each new snapshot on a `watch`
//! channel for subscribers (fresh reads, the agent check, user code).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
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
    current: ArcSwap<Snapshot>,
    /// Held by writers only, across read-modify-store, so no update is lost.
    writing: Mutex<()>,
    tx: watch::Sender<Arc<Snapshot>>,
}

impl Board {
    pub(crate) fn new(checks: usize) -> Self {
        let snapshot = Arc::new(Snapshot {
            checks: vec![CheckSnapshot::default(); checks],
        });
        Board {
            current: ArcSwap::new(Arc::clone(&snapshot)),
            writing: Mutex::new(()),
            tx: watch::Sender::new(snapshot),
        }
    }

    /// The whole current snapshot, lock-free.
    pub(crate) fn read(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Replace check `index`'s entry. Copy-on-write: readers holding the previous snapshot
    /// keep it unchanged.
    pub(crate) fn publish(&self, index: usize, entry: CheckSnapshot) {
        let _writing = self
            .writing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut next = Snapshot::clone(&self.current.load());
        next.checks[index] = entry;
        let next = Arc::new(next);
        self.current.store(Arc::clone(&next));
        self.tx.send_replace(next);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.tx.subscribe()
    }
}
