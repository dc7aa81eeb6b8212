//! Flapping heartbeats collapsed (issue 11, item 2: alternating ok/fail pings from 8
//! threads for 30 s stored 64,404 transitions, one per ping).
//!
//! While a heartbeat target is flapping (its machine's flap rule), the state changes its
//! beats cause after the one that raised the flag are held rather than handed out one by one: the first held change opens a
//! window of [`COLLAPSE_FOR`], and when it closes one transition goes out, from the last
//! state handed out to the state the target is in then, saying how many changes it stands
//! for. A target that stops flapping hands out what it held at once, before anything newer,
//! so the stored chain of states stays unbroken (each `from` is the previous `to`). A window
//! that ends where it began hands out nothing: nothing changed, as far as history can tell.
//!
//! So a flood of flapping pings costs at most one stored transition (and one alert) per
//! target per [`COLLAPSE_FOR`]. What a `kill -9` inside a window loses is the held changes
//! (at most that long of them); the state restored is the last one handed out.
//!
//! What it is not: flap detection (the core machine's), or active checks, which a target's
//! interval already bounds.

use std::time::Duration;

use vitals_core::machine::State;

use super::timers::Entry;
use super::{Fleet, Now};
use crate::record::{Record, Transition};

/// How long held changes of a flapping heartbeat target wait to go out as one.
pub const COLLAPSE_FOR: Duration = Duration::from_secs(10);

/// The changes held for one target.
#[derive(Debug)]
pub(crate) struct Held {
    /// The state last handed out: where the collapsed transition starts.
    from: State,
    /// The latest held change: its time, reason, cause and saved counters go out.
    last: Transition,
    changes: u32,
    /// Whether every held change came from input that may make recovery act.
    may_act: bool,
    generation: u64,
}

impl Fleet {
    /// Target `index` was just judged on a beat: hold its transitions while it flaps, or
    /// hand out what it held before them once it has stopped. `may_act` is the beat's.
    pub(super) fn collapse(
        &mut self,
        now: Now,
        index: usize,
        records: &mut Vec<Record>,
        may_act: bool,
    ) {
        let live = &mut self.table[index];
        // The change that raised the flag goes out: it is the news. Those after it wait.
        let raised = records
            .iter()
            .any(|record| matches!(record, Record::Flapping { flapping: true, .. }));
        let flapping = live.machine.is_flapping() && !raised;
        if !flapping && live.held.is_none() {
            return;
        }
        let mut out = Vec::with_capacity(records.len() + 1);
        if !flapping && let Some(held) = live.held.take() {
            out.extend(collapsed(held).map(Record::Transition));
        }
        for record in records.drain(..) {
            match record {
                Record::Transition(transition) if flapping => {
                    let live = &mut self.table[index];
                    match &mut live.held {
                        Some(held) => {
                            held.changes += 1;
                            held.may_act &= may_act;
                            held.last = transition;
                        }
                        None => {
                            live.collapse_generation += 1;
                            let generation = live.collapse_generation;
                            live.held = Some(Held {
                                from: transition.from,
                                last: transition,
                                changes: 1,
                                may_act,
                                generation,
                            });
                            self.timers.push(Entry::collapse(
                                now.mono + COLLAPSE_FOR,
                                index,
                                generation,
                            ));
                        }
                    }
                }
                other => out.push(other),
            }
        }
        *records = out;
    }

    /// The window of target `index`'s held changes (of `generation`) closed.
    pub(super) fn collapse_due(&mut self, now: Now, index: usize, generation: u64) {
        let live = &mut self.table[index];
        if live
            .held
            .as_ref()
            .is_none_or(|held| held.generation != generation)
        {
            return; // handed out already, when the target stopped flapping
        }
        self.flush_held(now, index);
    }

    /// Hand out what target `index` holds at once (its window closed, or a reload changes
    /// or removes it), so the stored chain of states ends where the target is.
    pub(super) fn flush_held(&mut self, now: Now, index: usize) {
        let Some(held) = self.table[index].held.take() else {
            return;
        };
        let may_act = held.may_act;
        if let Some(transition) = collapsed(held) {
            self.finish(now, index, vec![Record::Transition(transition)], may_act);
        }
    }
}

/// The one transition that stands for `held`, unless it ends where it began.
fn collapsed(held: Held) -> Option<Transition> {
    let Held {
        from,
        mut last,
        changes,
        ..
    } = held;
    if last.to == from {
        return None;
    }
    if changes > 1 {
        last.reason = format!(
            "{} ({changes} changes while flapping, collapsed into one)",
            last.reason
        );
    }
    last.from = from;
    Some(last)
}
