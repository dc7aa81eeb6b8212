//! The restart budget: when a failing target's recovery action may run, and when to stop
//! trying and call a person.
//!
//! A [`Budget`] is told the target's state as it changes ([`Budget::handle_state`]) and is
//! asked what to do ([`Budget::poll_action`]); [`Budget::poll_timeout`] says when asking again
//! could give a different answer. Every call takes `now`; time only moves forward.
//!
//! The rules ([`BudgetPolicy`]):
//!
//! - A target that is `unhealthy` or `down` needs recovery. The first attempt runs at once.
//! - Attempt `k` (k ≥ 2) waits `backoff · 2^(k-2)` after attempt `k-1`, at most `backoff_max`,
//!   and runs only if the target still needs recovery then. So an action has time to work,
//!   and a target that stays down is retried, ever more slowly.
//! - At most `max_attempts` attempts within any `window`. When the next attempt is due but
//!   the window already holds `max_attempts`, the budget is **spent**: [`Action::Escalate`]
//!   comes out once, and nothing more is attempted. The target needs a person.
//! - The attempt count, the backoff and a spent budget are forgotten only once the target has
//!   stayed healthy (or degraded: serving and passing) for `reset_after` without a break, or
//!   when a person calls [`Budget::reset`]. A target that comes back for a moment and falls
//!   again keeps its count: that is the crash loop the budget exists to stop.
//!
//! [`BudgetPolicy::validate`] refuses a window too short to hold `max_attempts` attempts with their
//! backoff: attempts would age out of it before the budget could be spent, and a target that
//! never recovers would be retried forever without anyone being told.
//!
//! What it is not: it runs nothing, reads no clock and stores nothing. The monitor's executor
//! runs the action, records it, and sends the escalation.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::machine::State;

/// How often and how fast a recovery action may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetPolicy {
    /// Attempts allowed within `window`; at least 1.
    pub max_attempts: u32,
    /// The sliding window attempts are counted in.
    pub window: Duration,
    /// The wait between the first and the second attempt; each later wait doubles.
    pub backoff: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// How long the target must stay healthy before its attempts are forgotten.
    pub reset_after: Duration,
}

impl Default for BudgetPolicy {
    /// Three attempts in an hour, 30 s then 60 s apart (at most 10 min), forgotten after
    /// 10 min of health: a target that stays down is escalated 3.5 min after the first
    /// attempt, and a service that fails once a day gets its three attempts every day.
    fn default() -> Self {
        BudgetPolicy {
            max_attempts: 3,
            window: Duration::from_secs(3600),
            backoff: Duration::from_secs(30),
            backoff_max: Duration::from_secs(600),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// A policy that cannot work, naming the field (as config spells it) and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BudgetPolicyError {
    /// `max_attempts`, `window`, `backoff`, `backoff_max` or `reset_after`.
    pub field: &'static str,
    /// Lowercase, names the bad value and the fix.
    pub message: String,
}

impl BudgetPolicy {
    /// The wait before attempt `attempt` (counting from 1 since the last reset): none before
    /// the first, then `backoff`, doubling, at most `backoff_max`.
    pub fn delay(&self, attempt: u32) -> Duration {
        if attempt <= 1 {
            return Duration::ZERO;
        }
        // 2^(attempt-2), saturating: past 2^31 the cap has long been reached.
        match 1u32.checked_shl(attempt - 2) {
            Some(factor) => self
                .backoff
                .checked_mul(factor)
                .unwrap_or(Duration::MAX)
                .min(self.backoff_max),
            None => self.backoff_max,
        }
    }

    /// How long after the first attempt the budget is found spent when every attempt fails:
    /// the waits before attempts 2 to `max_attempts + 1`.
    pub fn time_to_spend(&self) -> Duration {
        (2..=self.max_attempts.saturating_add(1))
            .map(|attempt| self.delay(attempt))
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    pub fn validate(&self) -> Result<(), BudgetPolicyError> {
        let fail = |field, message: String| Err(BudgetPolicyError { field, message });
        if self.max_attempts == 0 {
            return fail(
                "max_attempts",
                "max_attempts is 0; allow at least 1 attempt, or remove the recovery action to turn recovery off".into(),
            );
        }
        for (field, value) in [
            ("window", self.window),
            ("backoff", self.backoff),
            ("reset_after", self.reset_after),
        ] {
            if value.is_zero() {
                let why = match field {
                    "backoff" => "an action needs time to work before it is tried again",
                    "window" => "attempts are counted within it",
                    _ => {
                        "the target must stay healthy for a while before its attempts are forgotten"
                    }
                };
                return fail(
                    field,
                    format!("{field} is zero; {why}: set it like \"30s\""),
                );
            }
        }
        if self.backoff_max < self.backoff {
            return fail(
                "backoff_max",
                format!(
                    "backoff_max ({}) is shorter than backoff ({}); make it at least backoff",
                    show(self.backoff_max),
                    show(self.backoff)
                ),
            );
        }
        let needed = self.time_to_spend();
        if self.window <= needed {
            return fail(
                "window",
                format!(
                    "window ({}) cannot hold {} attempts with their backoff, which take {}; attempts would age out and a target that never recovers would be retried forever without escalation: make window longer than {} or lower backoff",
                    show(self.window),
                    self.max_attempts,
                    show(needed),
                    show(needed)
                ),
            );
        }
        Ok(())
    }
}

/// A duration for messages: whole seconds as "90s", else milliseconds.
fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// What the driver should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Run the recovery action; `attempt` counts from 1 since the last reset.
    Attempt { attempt: u32 },
    /// The budget is spent: mark the target "needs a person" and send one escalation.
    /// `attempts` were made since the last reset.
    Escalate { attempts: u32 },
}

/// The budget as people see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetStatus {
    /// Attempts since the last reset (they set the backoff).
    pub attempts: u32,
    /// Of those, the ones inside the window ending now (what the limit counts).
    pub attempts_in_window: u32,
    pub max_attempts: u32,
    /// When the budget was found spent; `None` while it is not.
    pub exhausted_at: Option<Instant>,
    /// When the next attempt may run, if one is waiting (the target needs recovery and the
    /// budget is not spent). At or before `now` means at once.
    pub next_attempt: Option<Instant>,
    /// When the current unbroken healthy stretch began.
    pub healthy_since: Option<Instant>,
}

/// One target's restart budget. See the module docs for the rules.
#[derive(Debug, Clone)]
pub struct Budget {
    policy: BudgetPolicy,
    /// Attempt times since the last reset, oldest first; pruned to the window lazily.
    recent: VecDeque<Instant>,
    /// Attempts since the last reset.
    attempts: u32,
    last_attempt: Option<Instant>,
    exhausted_at: Option<Instant>,
    /// The target is unhealthy or down.
    needs_recovery: bool,
    healthy_since: Option<Instant>,
}

impl Budget {
    /// A fresh budget. The policy should have passed [`BudgetPolicy::validate`]; a policy that did
    /// not still never panics, it only behaves as written.
    pub fn new(policy: BudgetPolicy) -> Budget {
        Budget {
            policy,
            recent: VecDeque::new(),
            attempts: 0,
            last_attempt: None,
            exhausted_at: None,
            needs_recovery: false,
            healthy_since: None,
        }
    }

    pub fn policy(&self) -> &BudgetPolicy {
        &self.policy
    }

    /// The target is now in `state` (call it on every transition, and once at start).
    pub fn handle_state(&mut self, now: Instant, state: State) {
        self.expire(now);
        match state {
            State::Unhealthy | State::Down => {
                self.needs_recovery = true;
                self.healthy_since = None;
            }
            State::Healthy | State::Degraded => {
                self.needs_recovery = false;
                self.healthy_since.get_or_insert(now);
            }
            // Failing breaks a healthy stretch; recovering means the action may be working.
            State::Unknown | State::Failing | State::Recovering => {
                self.needs_recovery = false;
                self.healthy_since = None;
            }
        }
    }

    /// Restores an attempt made before a restart of the monitor (from stored history), so a
    /// crash loop is not granted a fresh budget by restarting the monitor. Oldest first.
    pub fn handle_past_attempt(&mut self, at: Instant) {
        self.recent.push_back(at);
        self.attempts = self.attempts.saturating_add(1);
        self.last_attempt = Some(self.last_attempt.map_or(at, |last| last.max(at)));
    }

    /// Restores a spent budget from stored history.
    pub fn handle_past_escalation(&mut self, at: Instant) {
        self.exhausted_at = Some(at);
    }

    /// A person says "try again": forget every attempt and the escalation. If the target
    /// still needs recovery, the next [`Budget::poll_action`] attempts at once.
    /// `now` is taken like every other input, though a reset does not depend on it: a
    /// healthy stretch in progress goes on counting.
    pub fn reset(&mut self, _now: Instant) {
        self.clear();
    }

    /// What to do now, if anything. An [`Action::Attempt`] is counted as made when it is
    /// returned; an [`Action::Escalate`] comes out once per spent budget.
    pub fn poll_action(&mut self, now: Instant) -> Option<Action> {
        self.expire(now);
        if !self.needs_recovery || self.exhausted_at.is_some() {
            return None;
        }
        if self.next_allowed().is_some_and(|next| now < next) {
            return None;
        }
        self.prune(now);
        if self.recent.len() >= self.policy.max_attempts as usize {
            self.exhausted_at = Some(now);
            return Some(Action::Escalate {
                attempts: self.attempts,
            });
        }
        self.recent.push_back(now);
        self.attempts = self.attempts.saturating_add(1);
        self.last_attempt = Some(now);
        Some(Action::Attempt {
            attempt: self.attempts,
        })
    }

    /// When [`Budget::poll_action`] or the reset may next change their answer without a new
    /// state: the next attempt's time, or the end of the healthy stretch that resets.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let attempt = (self.needs_recovery && self.exhausted_at.is_none())
            .then(|| self.next_allowed())
            .flatten();
        let reset = self
            .healthy_since
            .filter(|_| self.attempts > 0 || self.exhausted_at.is_some())
            .and_then(|since| since.checked_add(self.policy.reset_after));
        match (attempt, reset) {
            (Some(a), Some(r)) => Some(a.min(r)),
            (a, r) => a.or(r),
        }
    }

    /// Whether the budget is spent and the target waits for a person.
    pub fn is_exhausted(&self, now: Instant) -> bool {
        self.exhausted_at.is_some() && !self.reset_due(now)
    }

    pub fn status(&self, now: Instant) -> BudgetStatus {
        if self.reset_due(now) {
            return BudgetStatus {
                attempts: 0,
                attempts_in_window: 0,
                max_attempts: self.policy.max_attempts,
                exhausted_at: None,
                next_attempt: None,
                healthy_since: self.healthy_since,
            };
        }
        let in_window = self
            .recent
            .iter()
            .filter(|&&at| !self.aged_out(at, now))
            .count();
        BudgetStatus {
            attempts: self.attempts,
            attempts_in_window: u32::try_from(in_window).unwrap_or(u32::MAX),
            max_attempts: self.policy.max_attempts,
            exhausted_at: self.exhausted_at,
            next_attempt: (self.needs_recovery && self.exhausted_at.is_none())
                .then(|| self.next_allowed().unwrap_or(now)),
            healthy_since: self.healthy_since,
        }
    }

    /// The earliest time of the next attempt; `None` when nothing holds it back.
    fn next_allowed(&self) -> Option<Instant> {
        let last = self.last_attempt?;
        let wait = self.policy.delay(self.attempts.saturating_add(1));
        Some(last.checked_add(wait).unwrap_or(last))
    }

    fn reset_due(&self, now: Instant) -> bool {
        self.healthy_since
            .is_some_and(|since| now.saturating_duration_since(since) >= self.policy.reset_after)
    }

    /// Forgets the history once the target has been healthy long enough.
    fn expire(&mut self, now: Instant) {
        if self.reset_due(now) && (self.attempts > 0 || self.exhausted_at.is_some()) {
            self.clear();
        }
    }

    fn clear(&mut self) {
        self.recent.clear();
        self.attempts = 0;
        self.last_attempt = None;
        self.exhausted_at = None;
    }

    fn aged_out(&self, at: Instant, now: Instant) -> bool {
        now.saturating_duration_since(at) >= self.policy.window
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&oldest) = self.recent.front() {
            if !self.aged_out(oldest, now) {
                break;
            }
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests;
