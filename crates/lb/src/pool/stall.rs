//! Two-level detection in the balancer (issue 15): a backend that stops answering while its
//! requests wait far beyond its own recent latency is suspect — no new requests — and a
//! confirmation connect decides between gone (ejected) and stalled (kept out until it
//! answers again). A SIGSTOPped backend is out within a few hundred milliseconds instead of
//! waiting for its active checks to fail `fall` times.
//!
//! The rules, sans-IO (`now` is an argument):
//!
//! - **Suspect**: the oldest try in flight on a backend has waited longer than
//!   [`overdue_after`] — 10 × the backend's p99 over its last [`SAMPLES`] answers, at least
//!   [`MIN_OVERDUE`] — and the backend answered nothing in that time; and some other backend
//!   in rotation is not overdue itself (it answered in that time, or has nothing waiting). A
//!   backend slow for everyone (every peer overdue too) is never suspect: taking it out would
//!   only move the load onto peers that are no better; nor is the last one in rotation. Nor
//!   is one with fewer than [`MIN_SAMPLES`] answers: there is no "recent latency" yet.
//! - **Confirmed**: a connect to the backend's address. Refused or reset → gone: ejected for
//!   the pool's base ejection, as a failed request would have it. Accepted (a stopped
//!   process's kernel still completes the handshake) or no answer → stalled: out of rotation
//!   until it answers again — a request in flight completing, or a readiness check passing.
//! - Any answer makes it normal again.
//!
//! What it is not: outlier ejection by failed requests (`pool.rs`) or the active checks (the
//! engine); this only watches time. The driver (`drive`) looks every [`TICK`] and runs the
//! connects.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vitals_core::Evidence;

use super::PoolState;

/// Answers remembered per backend for its p99.
pub const SAMPLES: usize = 128;
/// Answers needed before a backend can be suspected.
pub const MIN_SAMPLES: usize = 20;
/// The least wait that makes a try overdue, however fast the backend usually is: below it,
/// scheduling noise on a busy machine would suspect healthy backends.
pub const MIN_OVERDUE: Duration = Duration::from_millis(100);
/// How far beyond its p99 a try must wait.
pub const P99_FACTOR: u32 = 10;
/// How often the driver looks.
pub const TICK: Duration = Duration::from_millis(20);
/// How long a confirmation connect may take.
pub const CONFIRM_WITHIN: Duration = Duration::from_millis(250);

/// Where a backend stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verdict {
    #[default]
    Normal,
    /// Overdue, no answer; a confirmation is (to be) asked.
    Suspect { since: Instant, asked: bool },
    /// The confirmation says it is there but not answering: out until it answers.
    Stalled { since: Instant },
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Normal => "normal",
            Verdict::Suspect { .. } => "suspect",
            Verdict::Stalled { .. } => "stalled",
        }
    }
}

/// One backend's watch: when its tries started, how fast it answered lately.
#[derive(Debug, Clone, Default)]
pub struct Watch {
    /// Start times of the tries in flight, oldest first.
    started: VecDeque<Instant>,
    /// Latencies of the latest answers, newest last.
    latencies: VecDeque<Duration>,
    last_answer: Option<Instant>,
    pub verdict: Verdict,
}

impl Watch {
    /// Whether the watch keeps the backend out of rotation.
    pub fn is_out(&self) -> bool {
        !matches!(self.verdict, Verdict::Normal)
    }

    /// The wait after which a try on this backend is overdue; `None` while too few answers
    /// were seen to say.
    pub fn overdue_after(&self) -> Option<Duration> {
        overdue_after(&self.latencies)
    }

    fn answered(&mut self, now: Instant) {
        self.last_answer = Some(self.last_answer.map_or(now, |last| last.max(now)));
        self.verdict = Verdict::Normal;
    }
}

/// 10 × the p99 of `latencies` (nearest rank), at least [`MIN_OVERDUE`]; `None` with fewer
/// than [`MIN_SAMPLES`].
pub fn overdue_after(latencies: &VecDeque<Duration>) -> Option<Duration> {
    if latencies.len() < MIN_SAMPLES {
        return None;
    }
    let mut sorted: Vec<Duration> = latencies.iter().copied().collect();
    sorted.sort_unstable();
    let rank = (sorted.len() * 99).div_ceil(100).clamp(1, sorted.len());
    Some((sorted[rank - 1] * P99_FACTOR).max(MIN_OVERDUE))
}

impl PoolState {
    /// A try on backend `index`, picked at `started`, got a response at `now`.
    pub fn handle_answer(&mut self, now: Instant, index: usize, started: Instant) {
        let Some(b) = self.backends.get_mut(index) else {
            return;
        };
        let watch = &mut b.watch;
        while watch.latencies.len() >= SAMPLES {
            watch.latencies.pop_front();
        }
        watch
            .latencies
            .push_back(now.saturating_duration_since(started));
        watch.answered(now);
    }

    /// Which backends to confirm now; each is asked once per suspicion.
    pub fn handle_stall_timeout(&mut self, now: Instant) -> Vec<usize> {
        let overdue: Vec<Option<Duration>> = self
            .backends
            .iter()
            .map(|b| {
                // Only a backend with a try waiting is worth the p99's sort.
                let oldest = *b.watch.started.front()?;
                let limit = b.watch.overdue_after()?;
                let quiet = b
                    .watch
                    .last_answer
                    .is_none_or(|last| now.saturating_duration_since(last) > limit);
                (now.saturating_duration_since(oldest) > limit && quiet).then_some(limit)
            })
            .collect();
        let mut ask = Vec::new();
        for (index, limit) in overdue.into_iter().enumerate() {
            let Some(limit) = limit else {
                continue;
            };
            // Slow for everyone? Then nobody is suspect. A peer vouches for the pool when it
            // is in rotation and not overdue by this backend's measure: it answered lately,
            // or nothing of it is waiting that long.
            let peer_answers = self.backends.iter().enumerate().any(|(other, b)| {
                let waiting = b
                    .watch
                    .started
                    .front()
                    .is_some_and(|&oldest| now.saturating_duration_since(oldest) > limit);
                let answered = b
                    .watch
                    .last_answer
                    .is_some_and(|last| now.saturating_duration_since(last) <= limit);
                other != index && b.in_rotation(now) && (answered || !waiting)
            });
            let watch = &mut self.backends[index].watch;
            match watch.verdict {
                Verdict::Normal if peer_answers => {
                    watch.verdict = Verdict::Suspect {
                        since: now,
                        asked: true,
                    };
                    ask.push(index);
                }
                Verdict::Suspect {
                    since,
                    asked: false,
                } => {
                    watch.verdict = Verdict::Suspect { since, asked: true };
                    ask.push(index);
                }
                _ => {}
            }
        }
        ask
    }

    /// The confirmation of backend `index` answered; returns the ejection when it is gone.
    pub fn handle_stall_confirmation(
        &mut self,
        now: Instant,
        index: usize,
        evidence: &Evidence,
    ) -> Option<super::Ejected> {
        let base = self.outlier.base_ejection;
        let b = self.backends.get_mut(index)?;
        let Verdict::Suspect { since, .. } = b.watch.verdict else {
            return None; // it answered meanwhile
        };
        match evidence {
            Evidence::Refused(_) | Evidence::Exited(_) => {
                b.watch.verdict = Verdict::Normal;
                b.ejections = super::forgiven(b, base, now).saturating_add(1);
                b.ejected_for_answers = false;
                let duration = base.saturating_mul(b.ejections.min(super::MAX_EJECTION_MULTIPLIER));
                b.ejected_until = Some(now + duration);
                Some(super::Ejected { index, duration })
            }
            Evidence::Answered(_) | Evidence::NoAnswer(_) => {
                b.watch.verdict = Verdict::Stalled { since };
                None
            }
        }
    }

    /// A try on backend `index`, picked at `started`, is over (answered or not).
    pub(super) fn forget_try(&mut self, index: usize, started: Instant) {
        if let Some(b) = self.backends.get_mut(index)
            && let Some(position) = b.watch.started.iter().position(|&at| at == started)
        {
            b.watch.started.remove(position);
        }
    }

    pub(super) fn start_try(&mut self, index: usize, started: Instant) {
        if let Some(b) = self.backends.get_mut(index) {
            b.watch.started.push_back(started);
        }
    }
}

/// The driver: every [`TICK`], ask each pool which backends to confirm, connect to them
/// (outside the lock) and hand the answers back. It reads the pools anew at every tick (a
/// reload replaces them) and ends when they are dropped.
pub async fn drive(
    pools: std::sync::Weak<arc_swap::ArcSwap<Vec<Arc<Mutex<PoolState>>>>>,
    on_eject: impl Fn(&str, &str) + Send + Sync + 'static,
) {
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let on_eject = Arc::new(on_eject);
    loop {
        ticks.tick().await;
        let Some(pools) = pools.upgrade() else {
            return;
        };
        for pool in pools.load().iter() {
            let now = tokio::time::Instant::now().into_std();
            let asked: Vec<(usize, std::net::SocketAddr, String)> = {
                let mut state = crate::lock(pool);
                let ask = state.handle_stall_timeout(now);
                ask.into_iter()
                    .map(|i| (i, state.backends[i].address, state.backends[i].name.clone()))
                    .collect()
            };
            for (index, address, name) in asked {
                let pool = Arc::clone(pool);
                let on_eject = Arc::clone(&on_eject);
                tokio::spawn(async move {
                    let evidence = vitals_probes::Confirm::tcp(address.to_string())
                        .confirm(CONFIRM_WITHIN)
                        .await;
                    let now = tokio::time::Instant::now().into_std();
                    let (id, ejected) = {
                        let mut state = crate::lock(&pool);
                        (
                            state.id.clone(),
                            state.handle_stall_confirmation(now, index, &evidence),
                        )
                    };
                    if ejected.is_some() {
                        on_eject(&id, &name);
                    }
                    tracing::info!(pool = %id, backend = %name, evidence = evidence.detail(), gone = ejected.is_some(), "a backend overdue with no answer was confirmed");
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
