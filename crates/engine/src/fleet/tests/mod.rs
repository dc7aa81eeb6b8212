//! The fleet's rules on simulated time: no tokio, no sleeps. [`Sim`] jumps from one
//! `poll_timeout` to the next, answers each due check from a table of which targets are up,
//! and keeps every record, so a test reads like the timeline it checks.

mod beats;
mod confirm;
mod reload;
mod rules;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vitals_core::machine::{State, Thresholds};
use vitals_core::{Cadence, Kind, Outcome, Report};
use vitals_probes::from_fn;

use super::{Due, Fleet};
use crate::Expectation;
use crate::clock::Now;
use crate::record::{PingRecord, Record, Signal, Transition};
use crate::spec::{Mode, Restored, TargetSpec, Topology};

/// 2026-01-01T00:00:00Z: a fixed wall time, so outputs and marks are reproducible.
fn epoch() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600)
}

#[allow(clippy::disallowed_methods)] // the one reading: a base for simulated time
fn base() -> Instant {
    Instant::now()
}

fn cadence(interval: u64) -> Cadence {
    Cadence {
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(1),
        jitter: Duration::ZERO,
        interval_changing: Duration::from_secs(interval),
        interval_down: Duration::from_secs(interval),
    }
}

/// An active target checked every `interval` seconds, thresholds fall 1 / rise 1 /
/// down_after 2 unless changed. Its probe is never run: [`Sim`] answers for it.
fn active(id: &str, interval: u64) -> TargetSpec {
    TargetSpec {
        id: id.into(),
        name: id.to_uppercase(),
        thresholds: Thresholds {
            fall: 1,
            rise: 1,
            down_after: 2,
            window: None,
            flap: None,
        },
        mode: Mode::Active {
            probe: Arc::new(from_fn(|| async {
                Report::fail("not run in a simulation")
            })),
            cadence: cadence(interval),
            confirm: None,
        },
    }
}

/// A heartbeat target expected every `period` seconds with `grace`.
fn passive(id: &str, period: Duration, grace: Duration) -> TargetSpec {
    TargetSpec {
        mode: Mode::Passive {
            ping_id: id.into(),
            trusted_pings: true,
            confirm: None,
            expectation: Expectation::Period { period, grace },
        },
        ..active(id, 1)
    }
}

struct Sim {
    fleet: Fleet,
    start: Instant,
    now: Now,
    /// Whether each target's check passes, by id (targets not named pass).
    down: HashMap<String, bool>,
    records: Vec<Record>,
    /// Checks run, by target id.
    checks: HashMap<String, u32>,
}

impl Sim {
    fn new(specs: Vec<TargetSpec>, topology: Topology) -> Sim {
        Sim::restored(specs, topology, &HashMap::new())
    }

    fn restored(
        specs: Vec<TargetSpec>,
        topology: Topology,
        restored: &HashMap<String, Restored>,
    ) -> Sim {
        let now = Now {
            mono: base(),
            wall: epoch(),
        };
        let mut sim = Sim {
            fleet: Fleet::new(specs, restored, &topology, now),
            start: now.mono,
            now,
            down: HashMap::new(),
            records: Vec::new(),
            checks: HashMap::new(),
        };
        sim.drain();
        sim
    }

    fn set_down(&mut self, id: &str, down: bool) {
        self.down.insert(id.to_string(), down);
    }

    /// Seconds since the start.
    fn elapsed(&self) -> f64 {
        self.now.mono.duration_since(self.start).as_secs_f64()
    }

    fn at(&self, secs: f64) -> Now {
        let ahead = Duration::from_secs_f64(secs);
        Now {
            mono: self.start + ahead,
            wall: epoch() + ahead,
        }
    }

    /// Run every timeout up to `secs` after the start, answering each check at once.
    fn run_until(&mut self, secs: f64) {
        let end = self.at(secs);
        while let Some(next) = self.fleet.poll_timeout() {
            if next > end.mono {
                break;
            }
            self.now = self.at(next.duration_since(self.start).as_secs_f64());
            self.fleet.handle_timeout(self.now);
            self.answer_checks();
            self.drain();
        }
        self.now = end;
    }

    fn answer_checks(&mut self) {
        while let Some(due) = self.fleet.poll_check() {
            let id = self.fleet.specs()[due.index].id.clone();
            *self.checks.entry(id.clone()).or_default() += 1;
            let kind = if self.down.get(&id).copied().unwrap_or(false) {
                Kind::Fail
            } else {
                Kind::Pass
            };
            let outcome = Outcome::new(kind, self.now.wall, Duration::ZERO).with_output(
                if kind == Kind::Pass {
                    "HTTP 200"
                } else {
                    "connection refused"
                },
            );
            self.fleet.handle_result(self.now, due, outcome, Vec::new());
        }
    }

    /// Feed one check result of a service target with its own checks (`parts`).
    fn result_with_parts(&mut self, index: usize, kind: Kind, parts: Vec<(&str, Kind)>) {
        let outcome = |kind| Outcome::new(kind, self.now.wall, Duration::ZERO);
        let parts = parts
            .into_iter()
            .map(|(name, kind)| (name.to_string(), outcome(kind)))
            .collect();
        let due = Due {
            index,
            due: self.now.mono,
            incarnation: self.fleet.table[index].incarnation,
        };
        self.fleet
            .handle_result(self.now, due, outcome(kind), parts);
        self.drain();
    }

    fn beat(&mut self, id: &str, signal: Signal, rid: Option<&str>) {
        let index = self.fleet.index_of_ping(id).expect("a heartbeat target");
        let ping = PingRecord {
            target: String::new(),
            at: self.now.wall,
            signal,
            rid: rid.map(str::to_string),
            body: None,
            duration: None,
            source: None,
        };
        self.fleet.handle_beat(self.now, index, ping);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(record) = self.fleet.poll_record() {
            self.records.push(record);
        }
    }

    fn state(&self, id: &str) -> State {
        self.fleet.view(id).expect("a known target").state
    }

    /// The transitions of `id` so far, as (from, to).
    fn transitions(&self, id: &str) -> Vec<(State, State)> {
        self.judged(id).map(|t| (t.from, t.to)).collect()
    }

    fn judged<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a Transition> + 'a {
        self.records.iter().filter_map(move |record| match record {
            Record::Transition(transition) if transition.target == id => Some(transition),
            _ => None,
        })
    }

    /// The last transition of `id`.
    fn last<'a>(&'a self, id: &'a str) -> &'a Transition {
        self.judged(id).last().expect("a transition")
    }
}
