//! Heartbeats: what a ping or a beat says, and what silence says.
//!
//! - `/start` remembers when a run began (with its run id); the next success or failure of
//!   the same run id measures the run's duration.
//! - success, exit status 0 and a UDP beat's status are judged as such; `/fail` and a
//!   non-zero exit status fail; `/log` judges nothing.
//! - Each judged beat feeds the target's detector, which says when it next turns suspicious.
//!   When that deadline passes with no beat, the target fails once, then once more per
//!   period while it stays silent ("no heartbeat for 2m"), unless it is paused, or the
//!   monitor is isolated (silence then says more about the monitor's network).
//!
//! - While a target flaps, the changes its beats (and silences) cause are collapsed into at
//!   most one transition per `COLLAPSE_FOR` (`collapse`).
//! - A failure an HTTP ping reports makes recovery act only when the target trusts its pings
//!   (`trusted_pings`: the ping API checked a key, or the operator said so); silence and UDP
//!   beats (verified by key) always may.
//!
//! What it is not: authentication (the UDP verifier and the ping API do that) or storage.

use std::time::Instant;

use vitals_core::Status;

use super::timers::{self, Entry};
use super::{Fleet, Now, overdue};
use crate::record::{PingRecord, Record, Signal};
use crate::spec::Mode;

impl Fleet {
    /// A heartbeat for the target at `index` (an HTTP ping, or a UDP beat already
    /// authenticated), at `now`. Targets that are not heartbeat targets ignore it.
    pub fn handle_beat(&mut self, now: Now, index: usize, mut ping: PingRecord) {
        let Some(Mode::Passive { trusted_pings, .. }) =
            self.specs.get(index).map(|spec| &spec.mode)
        else {
            return;
        };
        // A UDP beat was verified with the target's key; an HTTP ping is trusted as the
        // target says (issue 11, item 1: forged `/fail` pings ran recovery commands).
        let may_act = *trusted_pings || matches!(ping.signal, Signal::Beat(_));
        if ping.signal == Signal::Exited {
            return self.handle_exited(now, index, ping, may_act);
        }
        let mut records = Vec::with_capacity(3);
        let live = &mut self.table[index];
        let status = match ping.signal {
            Signal::Start => {
                live.started = Some((now.mono, ping.rid.clone()));
                None
            }
            Signal::Log => None,
            Signal::Success | Signal::Exit(0) => Some(Status::Pass),
            Signal::Fail | Signal::Exit(_) => Some(Status::Fail),
            Signal::Exited => None,
            Signal::Beat(status) => Some(status),
        };
        if let Some(status) = status {
            // A run's duration is measured from its `/start` (same run id, if any).
            if let Some((started, rid)) = live.started.take() {
                if rid == ping.rid {
                    ping.duration = Some(now.mono.saturating_duration_since(started));
                } else {
                    live.started = Some((started, rid));
                }
            }
            if let Some(detector) = live.detector.as_mut() {
                detector.handle_heartbeat(now.mono);
            }
            if let Some(confirmer) = live.confirmer.as_mut() {
                confirmer.handle_heartbeat(now.mono);
            }
            live.last_beat = Some(now.mono);
            let output = match ping.signal {
                Signal::Exit(code) if code != 0 => format!("job exited with status {code}"),
                Signal::Fail => "job reported failure".to_string(),
                _ => "heartbeat received".to_string(),
            };
            let outcome = vitals_core::Report {
                status,
                output: Some(output),
                observed: ping.duration.map(|d| vitals_core::Observed {
                    value: d.as_secs_f64() * 1000.0,
                    unit: "ms".to_string(),
                }),
            }
            .into_outcome(ping.at, ping.duration.unwrap_or_default());
            // A beat that arrives is evidence even while isolated: it is always judged.
            let id = &self.specs[index].id;
            live.apply(id, now.mono, ping.at, outcome, &self.metrics, &mut records);
            self.arm_deadline(index);
        }
        // UDP beats come by the hundred thousand a second: their history is the results and
        // transitions, not one stored row each.
        if !matches!(ping.signal, Signal::Beat(_)) {
            ping.target = self.specs[index].id.clone();
            records.push(Record::Ping(ping));
        }
        if status.is_some() {
            self.collapse(now, index, &mut records, may_act);
            self.finish(now, index, records, may_act);
        } else {
            self.records.extend(records);
        }
    }

    /// The process behind target `index`'s heartbeats exited, as its supervisor saw it
    /// (`/ping/<id>/exited`, the body saying how): first-hand evidence, so the target is
    /// confirmed dead and down at once (issue 15), whatever its detector thought. A paused
    /// target only records it.
    fn handle_exited(&mut self, now: Now, index: usize, mut ping: PingRecord, may_act: bool) {
        let id = self.specs[index].id.clone();
        let detail = ping
            .body
            .as_deref()
            .map(str::trim)
            .filter(|body| !body.is_empty())
            // The body says how (`exit 3 (seen by vitals supervise)`): the stored ping keeps
            // all of it, the verdict's text a line.
            .map_or_else(
                || "the process exited".to_string(),
                |body| {
                    let how: String = body.chars().take(200).collect();
                    format!("the process exited: {how}")
                },
            );
        let live = &mut self.table[index];
        let mut records = Vec::with_capacity(3);
        let judge = !live.paused && live.machine.state() != vitals_core::State::Down;
        if let Some(confirmer) = live.confirmer.as_mut() {
            confirmer.handle_evidence(
                now.mono,
                now.mono,
                vitals_core::Evidence::Exited(detail.clone()),
            );
        }
        if judge {
            let outcome = vitals_core::Outcome::new(
                vitals_core::Kind::Fail,
                now.wall,
                std::time::Duration::ZERO,
            )
            .with_output(format!("confirmed dead: {detail}"));
            live.machine.handle_confirmed_down(now.mono, &outcome);
            live.judged(
                &id,
                now.mono,
                now.wall,
                outcome,
                &self.metrics,
                &mut records,
            );
        }
        ping.target = id;
        records.push(Record::Ping(ping));
        if judge {
            self.collapse(now, index, &mut records, may_act);
            self.finish(now, index, records, may_act);
        } else {
            self.records.extend(records);
        }
    }

    /// Make sure target `index` has a deadline entry no later than its detector's deadline.
    /// A later deadline than the pending entry waits: the entry moves it on when it fires.
    pub(super) fn arm_deadline(&mut self, index: usize) {
        let live = &mut self.table[index];
        let Some(deadline) = live.deadline() else {
            return;
        };
        if live.armed.is_some_and(|armed| armed <= deadline) {
            return;
        }
        self.arm_at(index, deadline);
    }

    /// Target `index`'s deadline entry, due `at`; it supersedes any pending one.
    fn arm_at(&mut self, index: usize, at: Instant) {
        let live = &mut self.table[index];
        live.timer_generation += 1;
        live.armed = Some(at);
        self.timers
            .push(Entry::deadline(at, index, live.timer_generation));
    }

    /// Target `index`'s deadline entry of `generation` came due.
    pub(super) fn deadline_due(&mut self, now: Now, index: usize, generation: u64) {
        let live = &mut self.table[index];
        if live.timer_generation != generation {
            return; // superseded by a nearer deadline
        }
        live.armed = None;
        // A beat moved the deadline on since this entry was made: wait for that.
        if live.deadline().is_some_and(|deadline| deadline > now.mono) {
            self.arm_deadline(index);
            return;
        }
        if !matches!(self.specs[index].mode, Mode::Passive { .. }) {
            return;
        }
        let suspected = live
            .detector
            .as_ref()
            .is_some_and(|detector| detector.suspicion(now.mono).is_suspected());
        // Silence while the monitor is isolated says more about its network.
        let judged = !self.isolated || self.topology.is_canary(index);
        let mut next = None;
        if live.confirmer.is_some() {
            // Two-level: the silence raises suspicion only; what confirms it is judged.
            let paused = live.paused;
            if let Some(confirmer) = live.confirmer.as_mut() {
                confirmer.handle_suspicion(now.mono, suspected && judged && !paused);
            }
            next = self.ask_confirmation(now, index);
            self.judge_confirmation(now, index);
        } else if suspected && !live.paused && judged {
            let silent = now
                .mono
                .saturating_duration_since(live.last_beat.unwrap_or(live.created));
            let mut records = Vec::with_capacity(2);
            let id = &self.specs[index].id;
            let outcome = overdue(now.wall, silent);
            live.apply(id, now.mono, now.wall, outcome, &self.metrics, &mut records);
            self.collapse(now, index, &mut records, true);
            self.finish(now, index, records, true);
        }
        let Mode::Passive { expectation, .. } = &self.specs[index].mode else {
            return;
        };
        let down = self.table[index].machine.state() == vitals_core::State::Down;
        let recheck = now.mono + timers::recheck_after(expectation, down);
        self.arm_at(index, next.map_or(recheck, |next| next.min(recheck)));
    }
}
