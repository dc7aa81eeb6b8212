//! [`Record`]: what the fleet hands out to be stored, told and acted on, and the channel the
//! driver hands records on ([`records`]).
//!
//! A record carries the fleet's decisions with it (root cause, whether recovery may act, what
//! a mark in the timeline says), so what stores and notifies only follows them. What it is
//! not: storage; `vitals-monitor` writes records, `vitals-lb` reads transitions.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use vitals_core::machine::{Saved, State};
use vitals_core::{Outcome, Status};

/// What the fleet hands to storage, the notifier and the recovery executor, in order.
#[derive(Debug, Clone)]
pub enum Record {
    /// One result. A passing result comes without its output: "HTTP 200" thousands of times a
    /// day doubles the history (docs/STORAGE.md) and says nothing new; the latest output of
    /// every target is in the fleet anyway.
    Result {
        target: String,
        outcome: Outcome,
    },
    Transition(Transition),
    Ping(PingRecord),
    /// A mark in a target's timeline that is not a state change: a pause or maintenance
    /// starting (`<state> → paused`) or ending (`paused → <state>`), or the monitor becoming
    /// isolated or connected (`<state> → <state>` on each canary). Stored with the
    /// transitions, so uptime can leave spans out and people see them in history.
    Marker {
        target: String,
        at: SystemTime,
        from: TimelineState,
        to: TimelineState,
        reason: String,
    },
    /// A target started or stopped flapping (stopping needs no transition: it happens when
    /// the state has been steady long enough).
    Flapping {
        target: String,
        state: State,
        flapping: bool,
        reason: String,
    },
    /// Every canary became impaired (`isolated`), or one answered again. While isolated,
    /// other targets' failures are recorded but not judged. The canaries' marks come just
    /// before this record.
    Isolation {
        isolated: bool,
        at: SystemTime,
        canaries: Vec<String>,
        /// What people are told, as in the canaries' marks.
        reason: String,
    },
    /// A target was paused, resumed, or put in or out of maintenance.
    Flags {
        target: String,
        paused: bool,
        maintenance_until: Option<SystemTime>,
    },
    /// `target` depended on something that is back, and still fails on its own account: its
    /// trouble was not acted on while it was blocked, so recovery may act on it now.
    Unblocked {
        target: String,
        state: State,
    },
    /// `target` is no longer watched: a configuration reload (or discovery) removed it. Its
    /// history stays in the store; what is kept per target elsewhere (alert tracks, open
    /// groups, recovery budgets) is to be forgotten. A mark in its timeline comes first.
    Retired {
        target: String,
    },
}

/// A judged state change, with what root-cause analysis said of it when it happened.
#[derive(Debug, Clone)]
pub struct Transition {
    pub target: String,
    pub at: SystemTime,
    pub from: State,
    pub to: State,
    pub reason: String,
    pub cause: Option<Outcome>,
    pub saved: Saved,
    /// The root that explains this target's trouble (`"monitor"` for a canary failing while
    /// the monitor is isolated): such a transition alerts nobody of its own.
    pub blocked_by: Option<String>,
    /// The impaired targets whose trouble this one explains, for its alert.
    pub dependents: Vec<String>,
    /// Whether the recovery executor should hear of it: not while blocked by a failed
    /// dependency (restarting this would not help it), always when it serves again.
    pub act: bool,
}

/// A state in a target's timeline: a judged state, or the start of a span (pause,
/// maintenance) in which nothing is judged against it. What is stored, and what uptime reads:
/// every stored state name parses back to one of these, and nothing else does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimelineState {
    Judged(State),
    Paused,
    Maintenance,
}

impl TimelineState {
    /// The stored name: `State::as_str()`, `"paused"` or `"maintenance"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TimelineState::Judged(state) => state.as_str(),
            TimelineState::Paused => "paused",
            TimelineState::Maintenance => "maintenance",
        }
    }

    /// The state a stored name stands for; `None` for a name no version of vitals writes.
    pub fn parse(name: &str) -> Option<TimelineState> {
        match name {
            "paused" => Some(TimelineState::Paused),
            "maintenance" => Some(TimelineState::Maintenance),
            _ => State::parse(name).map(TimelineState::Judged),
        }
    }

    /// A pause or maintenance: a span in which nothing counts against the target.
    pub fn is_span(self) -> bool {
        !matches!(self, TimelineState::Judged(_))
    }
}

impl From<State> for TimelineState {
    fn from(state: State) -> Self {
        TimelineState::Judged(state)
    }
}

impl std::fmt::Display for TimelineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Record {
    /// Results and pings may be shed under overload; records of state may not.
    pub fn is_droppable(&self) -> bool {
        matches!(self, Record::Result { .. } | Record::Ping(_))
    }

    /// The bytes of text a droppable record holds (target, output, ping body…), as the
    /// channel's byte budget counts them; 0 for records of state, which are never dropped.
    fn droppable_bytes(&self) -> usize {
        let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Record::Result { target, outcome } => target.len() + len(&outcome.output),
            Record::Ping(p) => p.target.len() + len(&p.rid) + len(&p.body) + len(&p.source),
            _ => 0,
        }
    }
}

/// A heartbeat as received, for history.
#[derive(Debug, Clone)]
pub struct PingRecord {
    pub target: String,
    pub at: SystemTime,
    pub signal: Signal,
    pub rid: Option<String>,
    pub body: Option<String>,
    pub duration: Option<Duration>,
    pub source: Option<String>,
}

/// What a heartbeat says, in healthchecks.io's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Start,
    Success,
    Fail,
    Log,
    /// `/ping/<id>/<exit-status>`: 0 is success, anything else failure.
    Exit(u8),
    /// `/ping/<id>/exited`: the process that sends the heartbeats has exited, seen first-hand
    /// (its supervisor's `waitpid`): a confirmed death, down at once (issue 15).
    Exited,
    /// A UDP beat carrying a status.
    Beat(Status),
}

/// The bytes of droppable records' text that may wait in a [`records`] channel: room for a
/// hundred thousand summaries many times over, while a flood of large ping bodies stops here.
pub const RECORD_BYTES: usize = 64 << 20;

/// Creates the channel the driver hands records out on. Transitions (and the other records of
/// state: markers, flags, isolation) are never dropped and keep their order; results and pings
/// (high volume: a check a second per target, a flood of HTTP pings) are dropped and counted
/// once more than `capacity` records, or [`RECORD_BYTES`] of their text, wait, so a slow disk
/// or a ping flood cannot grow memory without bound.
pub fn records(capacity: usize) -> (RecordSender, RecordReceiver) {
    records_within(capacity, RECORD_BYTES)
}

/// [`records`] with an explicit byte budget.
pub fn records_within(capacity: usize, bytes: usize) -> (RecordSender, RecordReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::new(Pending::default());
    (
        RecordSender {
            tx,
            pending: Arc::clone(&pending),
            capacity,
            bytes,
        },
        RecordReceiver { rx, pending },
    )
}

/// What waits in a [`records`] channel.
#[derive(Debug, Default)]
struct Pending {
    records: AtomicUsize,
    bytes: AtomicUsize,
}

impl Pending {
    fn taken(&self, record: &Record) {
        self.records.fetch_sub(1, Ordering::Relaxed);
        self.bytes
            .fetch_sub(record.droppable_bytes(), Ordering::Relaxed);
    }
}

/// The driver's side of [`records`].
#[derive(Debug, Clone)]
pub struct RecordSender {
    tx: mpsc::UnboundedSender<Record>,
    pending: Arc<Pending>,
    capacity: usize,
    bytes: usize,
}

/// The storage side of [`records`].
#[derive(Debug)]
pub struct RecordReceiver {
    rx: mpsc::UnboundedReceiver<Record>,
    pending: Arc<Pending>,
}

impl RecordReceiver {
    pub async fn recv(&mut self) -> Option<Record> {
        let record = self.rx.recv().await?;
        self.pending.taken(&record);
        Some(record)
    }

    pub fn try_recv(&mut self) -> Option<Record> {
        let record = self.rx.try_recv().ok()?;
        self.pending.taken(&record);
        Some(record)
    }
}

impl RecordSender {
    /// Send `record`; false when a droppable record was dropped.
    pub(crate) fn send(&self, record: Record) -> bool {
        let bytes = record.droppable_bytes();
        let pending = &self.pending;
        if record.is_droppable()
            && (pending.records.load(Ordering::Relaxed) >= self.capacity
                || (pending.bytes.load(Ordering::Relaxed) + bytes > self.bytes
                    // A lone record larger than the budget still gets into an empty channel.
                    && pending.records.load(Ordering::Relaxed) > 0))
        {
            return false;
        }
        pending.records.fetch_add(1, Ordering::Relaxed);
        pending.bytes.fetch_add(bytes, Ordering::Relaxed);
        if let Err(returned) = self.tx.send(record) {
            pending.taken(&returned.0);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn ping(body: usize) -> Record {
        Record::Ping(PingRecord {
            target: "t".to_string(),
            at: UNIX_EPOCH,
            signal: Signal::Log,
            rid: None,
            body: Some("x".repeat(body)),
            duration: None,
            source: None,
        })
    }

    fn marker() -> Record {
        Record::Marker {
            target: "t".to_string(),
            at: UNIX_EPOCH,
            from: TimelineState::Paused,
            to: TimelineState::Judged(State::Unknown),
            reason: "resumed".to_string(),
        }
    }

    #[test]
    fn large_pings_are_shed_by_bytes_but_records_of_state_never_are() {
        let (tx, mut rx) = records_within(1_000, 10_000);
        // 3,001 bytes each: three fit, the fourth would pass 10,000.
        assert!((0..3).all(|_| tx.send(ping(3_000))));
        assert!(!tx.send(ping(3_000)));
        assert!(tx.send(marker()));
        // A small one still fits.
        assert!(tx.send(ping(10)));
        let mut taken = 0;
        while rx.try_recv().is_some() {
            taken += 1;
        }
        assert_eq!(taken, 5);
        // Taking them gave their bytes back.
        assert!((0..3).all(|_| tx.send(ping(3_000))));
    }

    #[test]
    fn a_lone_record_larger_than_the_budget_still_gets_through() {
        let (tx, mut rx) = records_within(1_000, 100);
        assert!(tx.send(ping(1_000)));
        assert!(!tx.send(ping(1)));
        assert!(rx.try_recv().is_some());
        assert!(tx.send(ping(1)));
    }

    #[test]
    fn droppable_records_are_shed_by_count() {
        let (tx, _rx) = records_within(2, RECORD_BYTES);
        assert!(tx.send(ping(0)) && tx.send(ping(0)));
        assert!(!tx.send(ping(0)));
        assert!(tx.send(marker()));
    }
}
