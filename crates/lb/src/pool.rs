//! One pool's routing state as a plain synchronous struct: which backends are in rotation,
//! passive outlier ejection, slow start, the panic threshold, and the pick. Time is an
//! argument (`now`), so every rule is tested without a clock.
//!
//! Passive ejection forgives (issue 11, item 3): the count that lengthens each ejection
//! decays by one for every `base_ejection` a backend spends back in rotation, and the
//! multiplier is capped, so a backend that failed a few times last week is not ejected for
//! hours today. And passive signals alone never empty a pool: when every backend that its
//! active checks call healthy is ejected, the pick fails open to them (Envoy's panic mode)
//! rather than answer 503 to everyone. What clients do (aborted or slow uploads) is kept out
//! of the pool's inputs by the proxy.
//!
//! Inputs are `handle_*(now, …)`: the active checks' state from the monitor's engine
//! ([`PoolState::handle_state`]), what a readiness probe answered
//! ([`PoolState::handle_check`]), each proxied try's result ([`PoolState::handle_result`]),
//! and the admin's drain. The output is [`PoolState::pick`].
//!
//! Not here: I/O, the engine, HTTP. The proxy holds this behind a mutex for a few hundred
//! nanoseconds per pick.

use std::time::{Duration, Instant};

use vitals_config::lb::{Balance, Outlier, Pool};
use vitals_core::SplitMix64;
use vitals_core::machine::State;

use crate::balance::{self, Candidate};

pub mod stall;

/// While slow start ramps a backend up, it gets at least this share of its weight, so that
/// it sees some traffic at once (Envoy's `min_weight_percent`).
const SLOW_START_FLOOR: f64 = 0.1;
/// Weights are scaled by this so that slow start's fractions stay whole numbers.
const WEIGHT_SCALE: u64 = 1000;
/// The longest ejection is this many `base_ejection`s: the tenth ejection in a row lasts as
/// long as any later one (Envoy caps at `max_ejection_time`, 300 s by default, which is ten
/// of its 30 s base).
const MAX_EJECTION_MULTIPLIER: u32 = 10;

/// One backend as the pool sees it.
#[derive(Debug, Clone)]
pub struct BackendState {
    pub name: String,
    pub address: std::net::SocketAddr,
    pub weight: u32,
    /// From the active checks (the monitor's state machine).
    pub health: State,
    /// Drained through the admin API.
    pub drained: bool,
    /// Its readiness endpoint answered 503: it asks for no new requests.
    pub not_ready: bool,
    pub ejected_until: Option<Instant>,
    /// The last ejection was for answers (5xx), which a passing readiness check cannot
    /// vouch for; it then lasts its full time.
    pub ejected_for_answers: bool,
    /// How many recent ejections count against it; the next ejection lasts one base longer.
    /// One is forgiven for each `base_ejection` spent back in rotation.
    pub ejections: u32,
    pub consecutive_failures: u32,
    pub in_flight: u32,
    /// When it came back into rotation, for slow start.
    pub returned_at: Option<Instant>,
    /// Its tries' waits and answers: suspect, stalled or normal (`stall`, issue 15).
    pub watch: stall::Watch,
}

impl BackendState {
    /// Serves new requests by its health alone: the states the design keeps in rotation.
    fn healthy(&self) -> bool {
        matches!(
            self.health,
            State::Healthy | State::Degraded | State::Failing
        )
    }

    fn ejected(&self, now: Instant) -> bool {
        self.ejected_until.is_some_and(|until| now < until)
    }

    /// Asked to get no new requests, by the admin or by itself.
    fn draining(&self) -> bool {
        self.drained || self.not_ready
    }

    /// In rotation: healthy, not draining, not ejected, not suspected of a stall.
    pub fn in_rotation(&self, now: Instant) -> bool {
        self.healthy() && !self.draining() && !self.ejected(now) && !self.watch.is_out()
    }
}

/// Why no backend could be picked: the 503's body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no backend of pool {pool:?} is available: {reason}")]
pub struct Unavailable {
    pub pool: String,
    pub reason: String,
}

/// How one try on a backend went, for passive checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tried {
    /// A response below 500.
    Answered,
    /// A 5xx response.
    ServerError,
    /// No response: refused, reset, or timed out.
    NoAnswer,
}

/// A backend was ejected by passive checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ejected {
    pub index: usize,
    pub duration: Duration,
}

/// The routing state of one pool.
#[derive(Debug)]
pub struct PoolState {
    pub id: String,
    balance: Balance,
    panic_threshold: f64,
    slow_start: Duration,
    outlier: Outlier,
    pub backends: Vec<BackendState>,
    scores: Vec<i64>,
    rng: SplitMix64,
}

impl PoolState {
    /// Every backend starts `unknown`, out of rotation, until its first check passes.
    pub fn new(pool: &Pool, seed: u64) -> Self {
        PoolState {
            id: pool.id.clone(),
            balance: pool.balance,
            panic_threshold: pool.panic_threshold,
            slow_start: pool.slow_start,
            outlier: pool.outlier.clone(),
            backends: pool
                .backends
                .iter()
                .map(|b| BackendState {
                    name: b.name.clone(),
                    address: b.address,
                    weight: b.weight,
                    health: State::Unknown,
                    drained: false,
                    not_ready: false,
                    ejected_until: None,
                    ejected_for_answers: false,
                    ejections: 0,
                    consecutive_failures: 0,
                    in_flight: 0,
                    returned_at: None,
                    watch: stall::Watch::default(),
                })
                .collect(),
            scores: vec![0; pool.backends.len()],
            rng: SplitMix64::new(seed),
        }
    }

    /// A reload made this pool anew: each backend that `old` had too (same name, same
    /// address) carries on where it was — health, drain, readiness, ejection and its count,
    /// slow start — rather than start `unknown`. Requests in flight stay counted where they
    /// were picked (`old`), so in-flight counts start at zero here.
    pub fn carry(&mut self, old: &PoolState) {
        for b in &mut self.backends {
            let Some(was) = old
                .backends
                .iter()
                .find(|o| o.name == b.name && o.address == b.address)
            else {
                continue;
            };
            *b = BackendState {
                name: std::mem::take(&mut b.name),
                address: b.address,
                weight: b.weight,
                in_flight: 0,
                ..was.clone()
            };
        }
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.name == name)
    }

    /// The engine moved backend `index` to `state`. A backend returning from an outage
    /// (not from `unknown`, at start) is ramped up by slow start.
    pub fn handle_state(&mut self, now: Instant, index: usize, state: State) {
        let Some(b) = self.backends.get_mut(index) else {
            return;
        };
        let was = b.healthy();
        let from_outage = !matches!(b.health, State::Unknown);
        b.health = state;
        if !was && b.healthy() && from_outage {
            b.returned_at = Some(now);
        }
    }

    /// A readiness check answered: `passed`, and whether it said 503 ("do not send me new
    /// requests", as a draining service says). A passing check ends early an ejection for
    /// requests that got no answer — the check has just got one — but not one for 5xx
    /// answers: a backend can be ready and still fail every request.
    pub fn handle_check(&mut self, now: Instant, index: usize, passed: bool, said_503: bool) {
        let Some(b) = self.backends.get_mut(index) else {
            return;
        };
        b.not_ready = said_503;
        if passed {
            // The check got an answer: a stalled backend answers again.
            b.watch.verdict = stall::Verdict::Normal;
        }
        if passed && b.ejected(now) && !b.ejected_for_answers {
            b.ejected_until = None;
            b.consecutive_failures = 0;
            b.returned_at = Some(now);
        }
    }

    /// Drain (no new requests; those in flight finish) or undrain through the admin API.
    pub fn set_drained(&mut self, index: usize, drained: bool) {
        if let Some(b) = self.backends.get_mut(index) {
            b.drained = drained;
        }
    }

    /// The result of one try on backend `index`. Connect errors, resets, timeouts and 5xx
    /// in a row eject it. Returns the ejection it caused.
    pub fn handle_result(&mut self, now: Instant, index: usize, tried: Tried) -> Option<Ejected> {
        let limit = self.max_ejected();
        let ejected_now = self.backends.iter().filter(|b| b.ejected(now)).count();
        let threshold = self.outlier.consecutive_failures;
        let base = self.outlier.base_ejection;
        let b = self.backends.get_mut(index)?;
        if tried == Tried::Answered {
            b.consecutive_failures = 0;
            return None;
        }
        b.consecutive_failures = b.consecutive_failures.saturating_add(1);
        if threshold == 0
            || b.consecutive_failures < threshold
            || b.ejected(now)
            || ejected_now >= limit
        {
            return None;
        }
        b.ejections = forgiven(b, base, now).saturating_add(1);
        b.consecutive_failures = 0;
        b.ejected_for_answers = tried == Tried::ServerError;
        let duration = base.saturating_mul(b.ejections.min(MAX_EJECTION_MULTIPLIER));
        b.ejected_until = Some(now + duration);
        Some(Ejected { index, duration })
    }

    /// The ejections that still count against backend `index` at `now` (the admin's view).
    pub fn ejection_count(&self, index: usize, now: Instant) -> u32 {
        self.backends
            .get(index)
            .map_or(0, |b| forgiven(b, self.outlier.base_ejection, now))
    }

    /// A try on `index`, picked at `started`, ended.
    pub fn release(&mut self, index: usize, started: Instant) {
        if let Some(b) = self.backends.get_mut(index) {
            b.in_flight = b.in_flight.saturating_sub(1);
        }
        self.forget_try(index, started);
    }

    /// How many backends may be ejected at once: the configured share, but always one.
    fn max_ejected(&self) -> usize {
        let share = self.outlier.max_ejection_percent / 100.0 * self.backends.len() as f64;
        (share.floor() as usize).max(1)
    }

    /// A backend's weight now, scaled, lowered while slow start ramps it up.
    fn effective_weight(&self, b: &BackendState, now: Instant) -> u64 {
        let full = u64::from(b.weight) * WEIGHT_SCALE;
        match b.returned_at {
            Some(at) if !self.slow_start.is_zero() => {
                let elapsed = now.saturating_duration_since(at);
                if elapsed >= self.slow_start {
                    full
                } else {
                    let share = (elapsed.as_secs_f64() / self.slow_start.as_secs_f64())
                        .max(SLOW_START_FLOOR);
                    ((full as f64 * share) as u64).max(1)
                }
            }
            _ => full,
        }
    }

    /// Whether the pool is in panic: some backends are in rotation, but fewer than the
    /// threshold's share of those not draining.
    pub fn panicking(&self, now: Instant) -> bool {
        let serving = self.backends.iter().filter(|b| b.in_rotation(now)).count();
        let eligible = self.backends.iter().filter(|b| !b.draining()).count();
        serving > 0 && (serving as f64) * 100.0 < self.panic_threshold * eligible as f64
    }

    /// Whether the pool fails open: no backend is in rotation, but some are out only
    /// because passive ejection took them out (their active checks pass and they are not
    /// draining). Traffic then goes to those rather than nowhere.
    pub fn failing_open(&self, now: Instant) -> bool {
        !self.backends.iter().any(|b| b.in_rotation(now))
            && self
                .backends
                .iter()
                .any(|b| b.healthy() && !b.draining() && b.ejected(now))
    }

    /// Pick a backend for a new try, skipping `tried`, and count it in flight. In panic,
    /// every backend not draining is a candidate, so that the few healthy ones are not
    /// crushed; with none in rotation but some ejected by passive checks alone, those are
    /// ([`PoolState::failing_open`]); with none at all, the answer is [`Unavailable`] at once.
    pub fn pick(&mut self, now: Instant, tried: &[usize]) -> Result<usize, Unavailable> {
        let panic = self.panicking(now);
        let open = !panic && self.failing_open(now);
        let candidates: Vec<Candidate> = self
            .backends
            .iter()
            .enumerate()
            .filter(|(i, b)| {
                !tried.contains(i)
                    && if panic {
                        !b.draining()
                    } else if open {
                        b.healthy() && !b.draining()
                    } else {
                        b.in_rotation(now)
                    }
            })
            .map(|(index, b)| Candidate {
                index,
                weight: self.effective_weight(b, now),
                in_flight: b.in_flight,
            })
            .collect();
        let picked = match self.balance {
            Balance::RoundRobin => balance::round_robin(&candidates, &mut self.scores),
            Balance::LeastRequests => {
                balance::least_requests(&candidates, &mut self.rng).map(|c| c.index)
            }
        };
        let Some(index) = picked else {
            return Err(self.unavailable(now, tried));
        };
        self.backends[index].in_flight += 1;
        self.start_try(index, now);
        Ok(index)
    }

    fn unavailable(&self, now: Instant, tried: &[usize]) -> Unavailable {
        let n = self.backends.len();
        let count =
            |f: &dyn Fn(&BackendState) -> bool| self.backends.iter().filter(|b| f(b)).count();
        let mut parts = Vec::new();
        let unknown = count(&|b| b.health == State::Unknown);
        let unhealthy = count(&|b| !b.healthy() && b.health != State::Unknown);
        let drained = count(&|b| b.drained);
        let not_ready = count(&|b| b.not_ready);
        let ejected = count(&|b| b.ejected(now));
        let stalled = count(&|b| b.watch.is_out());
        for (k, what) in [
            (unhealthy, "failing their health checks"),
            (unknown, "not checked yet"),
            (drained, "drained by the admin"),
            (not_ready, "answering 503 on their readiness path"),
            (ejected, "ejected after failed requests"),
            (
                stalled,
                "suspected of a stall (requests waiting far beyond their usual time)",
            ),
        ] {
            if k > 0 {
                parts.push(format!("{k} {what}"));
            }
        }
        if !tried.is_empty() {
            parts.push(format!("{} already tried for this request", tried.len()));
        }
        Unavailable {
            pool: self.id.clone(),
            reason: format!("{n} backends: {}", parts.join(", ")),
        }
    }
}

/// `b`'s ejection count at `now`, less one for every `base` it has spent back in rotation
/// since its last ejection ended.
fn forgiven(b: &BackendState, base: Duration, now: Instant) -> u32 {
    let Some(until) = b.ejected_until else {
        return b.ejections;
    };
    if now <= until || base.is_zero() {
        return b.ejections;
    }
    let periods = now.saturating_duration_since(until).as_nanos() / base.as_nanos();
    b.ejections
        .saturating_sub(u32::try_from(periods).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests;
