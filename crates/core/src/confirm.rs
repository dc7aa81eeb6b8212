//! Two-level failure detection: heartbeats raise suspicion, a second signal confirms death.
//!
//! A heartbeat detector ([`detector`](crate::detector)) can only say "late"; to say "dead"
//! with no false accusation it would have to wait out the longest innocent silence (a GC
//! pause, a stalled CPU, a burst of lost packets), which is seconds. So vitals keeps two
//! verdicts apart (design.md, "Suspicion is cheap; death is confirmed"): the moment a target
//! becomes suspect the driver asks a second, independent question — a TCP connect to the
//! target's `confirm` address, an HTTP probe, or the exit seen by `waitpid` — and
//! [`Confirmer`] turns the answer into one of four facts, each with its evidence:
//!
//! | heartbeats | confirmation | fact | what it does ([`Judgement`]) |
//! |---|---|---|---|
//! | on time | — | [`Fact::Alive`] | pass |
//! | late | not answered yet | [`Fact::Suspected`] | nothing: out of rotation for new work, nothing alerted |
//! | late | refused or reset, or the process exited | [`Fact::Dead`] | down at once: alert and recovery |
//! | late | accepted (a paused process's kernel still completes the handshake) | [`Fact::Stalled`] | warn (degraded); fail once it lasts |
//! | late | no answer | [`Fact::Unreachable`] | warn; fail once it lasts; never dead |
//!
//! The evidence rules, which the property tests pin:
//!
//! - **Dead needs both levels**: a suspicion, and evidence that the process is gone gathered
//!   by a probe *started after* the suspicion began. A refusal seen while heartbeats arrive
//!   says the confirm address is wrong, not that the sender died; a probe's answer from
//!   before the silence is stale. The one exception is an exit the driver saw itself
//!   ([`Evidence::Exited`]): that is first-hand, and confirms at once.
//! - **A heartbeat is always the last word**: it makes the target alive whatever was
//!   concluded before (a restarted process beats again).
//! - **No answer is not death**: a lost path says nothing about the process.
//! - While suspected and not dead, the target is probed again every `reprobe`, so a process
//!   that dies during a stall is confirmed dead then.
//!
//! What it is not: a prober or a timer. It does no I/O and reads no clock; the driver runs
//! the probe [`poll_probe`](Confirmer::poll_probe) asks for and hands back its answer.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

/// What a confirmation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evidence {
    /// Nothing listens: the connection was refused or reset. The process is gone.
    Refused(String),
    /// The process exited, seen first-hand (`waitpid`, an agent's report).
    Exited(String),
    /// The handshake completed (or an HTTP answer came): the process, or at least its kernel,
    /// is there.
    Answered(String),
    /// No answer within the probe's time: the path, the host or the process; unknown.
    NoAnswer(String),
}

impl Evidence {
    pub fn detail(&self) -> &str {
        match self {
            Evidence::Refused(d)
            | Evidence::Exited(d)
            | Evidence::Answered(d)
            | Evidence::NoAnswer(d) => d,
        }
    }
}

/// What is known of a target, with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    /// Heartbeats arrive (or none was expected yet).
    Alive,
    /// Heartbeats are late; no confirmation has answered yet.
    Suspected { since: Instant },
    /// Confirmed dead: suspected, and a second signal says the process is gone.
    Dead { since: Instant, evidence: String },
    /// Heartbeats are late, but the process answers: alive, stalled (or its beats are lost).
    Stalled { since: Instant, evidence: String },
    /// Heartbeats are late and the confirmation got no answer: not dead, not known alive.
    Unreachable { since: Instant, evidence: String },
}

impl Fact {
    pub fn name(&self) -> &'static str {
        match self {
            Fact::Alive => "alive",
            Fact::Suspected { .. } => "suspected",
            Fact::Dead { .. } => "dead",
            Fact::Stalled { .. } => "stalled",
            Fact::Unreachable { .. } => "unreachable",
        }
    }

    pub fn is_dead(&self) -> bool {
        matches!(self, Fact::Dead { .. })
    }

    /// Whether new work should go there: only to the alive.
    pub fn takes_new_work(&self) -> bool {
        matches!(self, Fact::Alive)
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Alive | Fact::Suspected { .. } => f.write_str(self.name()),
            Fact::Dead { evidence, .. }
            | Fact::Stalled { evidence, .. }
            | Fact::Unreachable { evidence, .. } => write!(f, "{}: {evidence}", self.name()),
        }
    }
}

/// What the state machine should be fed for the current fact (see the table above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Nothing: alive (the heartbeat itself is the pass) or merely suspected.
    Nothing,
    /// Degraded: stalled or unreachable, not for long yet.
    Warn(String),
    /// A failure: stalled or unreachable for longer than `lasting`.
    Fail(String),
    /// Down at once: confirmed dead.
    Down(String),
}

/// Tuning of a [`Confirmer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmConfig {
    /// While suspected and not dead, probe again this often.
    pub reprobe: Duration,
    /// A stall or an unreachable target that lasts longer than this fails (and alerts through
    /// the state machine's thresholds as any failure does).
    pub lasting: Duration,
}

impl ConfirmConfig {
    /// For heartbeats every `period`: probe again every period (at least 100 ms, so a
    /// confirmation is not asked faster than a loopback connect is worth), and let a stall
    /// fail after 10 s, longer than the stalls a healthy process takes (seconds of GC or
    /// CPU starvation) and short enough to be told about a hung one.
    pub fn for_period(period: Duration) -> ConfirmConfig {
        ConfirmConfig {
            reprobe: period.max(Duration::from_millis(100)),
            lasting: Duration::from_secs(10),
        }
    }
}

/// One target's second level: suspicion in, confirmation probes out, facts with evidence.
///
/// Call order: tell it every change of suspicion ([`handle_suspicion`](Self::handle_suspicion),
/// from the heartbeat detector) and every heartbeat; after each call and at
/// [`poll_timeout`](Self::poll_timeout), ask [`poll_probe`](Self::poll_probe) whether to start a
/// confirmation and hand its answer to [`handle_evidence`](Self::handle_evidence) with the
/// instant it started; drain [`poll_change`](Self::poll_change). Time only moves forward; an
/// earlier `now` is taken as the latest seen.
#[derive(Debug, Clone)]
pub struct Confirmer {
    config: ConfirmConfig,
    fact: Fact,
    /// When the current suspicion began; `None` while not suspected.
    suspected: Option<Instant>,
    /// A probe is in flight, started then.
    in_flight: Option<Instant>,
    /// When the next probe is due while suspected.
    next_probe: Option<Instant>,
    now: Option<Instant>,
    changes: VecDeque<Fact>,
}

impl Confirmer {
    pub fn new(config: ConfirmConfig) -> Confirmer {
        Confirmer {
            config,
            fact: Fact::Alive,
            suspected: None,
            in_flight: None,
            next_probe: None,
            now: None,
            changes: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &ConfirmConfig {
        &self.config
    }

    pub fn fact(&self) -> &Fact {
        &self.fact
    }

    /// When the current suspicion began, if suspected.
    pub fn suspected_since(&self) -> Option<Instant> {
        self.suspected
    }

    fn advance(&mut self, now: Instant) -> Instant {
        let now = self.now.map_or(now, |latest| latest.max(now));
        self.now = Some(now);
        now
    }

    fn set(&mut self, fact: Fact) {
        if std::mem::discriminant(&fact) != std::mem::discriminant(&self.fact) {
            self.changes.push_back(fact.clone());
        }
        self.fact = fact;
    }

    /// A heartbeat arrived: alive, whatever was concluded before.
    pub fn handle_heartbeat(&mut self, now: Instant) {
        self.advance(now);
        self.suspected = None;
        self.next_probe = None;
        self.set(Fact::Alive);
    }

    /// The heartbeat detector's verdict at `now`. A suspicion starting asks for a probe at
    /// once; one ending (without a heartbeat, as an active check passing) clears it.
    pub fn handle_suspicion(&mut self, now: Instant, suspected: bool) {
        let now = self.advance(now);
        match (suspected, self.suspected) {
            (true, None) => {
                self.suspected = Some(now);
                self.next_probe = Some(now);
                if !self.fact.is_dead() {
                    self.set(Fact::Suspected { since: now });
                }
            }
            (false, Some(_)) => {
                self.suspected = None;
                self.next_probe = None;
                self.set(Fact::Alive);
            }
            _ => {}
        }
    }

    /// Whether to start a confirmation probe at `now`; if so, it is in flight from `now` until
    /// its evidence is handed back (one at a time).
    pub fn poll_probe(&mut self, now: Instant) -> bool {
        let now = self.advance(now);
        let due = self.next_probe.is_some_and(|at| at <= now);
        if !due || self.in_flight.is_some() || self.fact.is_dead() {
            return false;
        }
        self.in_flight = Some(now);
        self.next_probe = now.checked_add(self.config.reprobe);
        true
    }

    /// The answer of the probe started at `started`, arrived at `now`.
    pub fn handle_evidence(&mut self, now: Instant, started: Instant, evidence: Evidence) {
        let now = self.advance(now);
        if self.in_flight == Some(started) {
            self.in_flight = None;
        }
        if let Evidence::Exited(detail) = evidence {
            self.next_probe = None;
            self.set(Fact::Dead {
                since: now,
                evidence: detail,
            });
            return;
        }
        // Only a probe started during this suspicion speaks to it.
        let Some(since) = self.suspected.filter(|&since| started >= since) else {
            return;
        };
        if self.fact.is_dead() {
            return;
        }
        // A stall (or silence) that goes on keeps the instant it was first seen, so that
        // "lasting" counts from there, also when the answer changes between the two.
        let first_seen = match &self.fact {
            Fact::Stalled { since, .. } | Fact::Unreachable { since, .. } => *since,
            _ => since,
        };
        let fact = match evidence {
            Evidence::Refused(detail) | Evidence::Exited(detail) => {
                self.next_probe = None;
                Fact::Dead {
                    since: now,
                    evidence: detail,
                }
            }
            Evidence::Answered(detail) => Fact::Stalled {
                since: first_seen,
                evidence: detail,
            },
            Evidence::NoAnswer(detail) => Fact::Unreachable {
                since: first_seen,
                evidence: detail,
            },
        };
        self.set(fact);
    }

    /// When to call [`poll_probe`](Self::poll_probe) again: the next probe due while
    /// suspected (none while one is in flight).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.in_flight.is_some() || self.fact.is_dead() {
            return None;
        }
        self.next_probe
    }

    /// The next change of fact, oldest first.
    pub fn poll_change(&mut self) -> Option<Fact> {
        self.changes.pop_front()
    }

    /// What the state machine should be fed at `now`.
    pub fn judgement(&self, now: Instant) -> Judgement {
        let lasting = |since: Instant| now.saturating_duration_since(since) > self.config.lasting;
        match &self.fact {
            Fact::Alive | Fact::Suspected { .. } => Judgement::Nothing,
            Fact::Dead { evidence, .. } => Judgement::Down(format!("confirmed dead: {evidence}")),
            Fact::Stalled { since, evidence } | Fact::Unreachable { since, evidence } => {
                let what = if matches!(self.fact, Fact::Stalled { .. }) {
                    "alive but stalled"
                } else {
                    "unreachable"
                };
                let text = format!("{what}: {evidence}");
                if lasting(*since) {
                    Judgement::Fail(text)
                } else {
                    Judgement::Warn(text)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
