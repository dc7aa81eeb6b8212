//! Automatic recovery: runs a target's recovery action when it turns unhealthy or down,
//! within its restart budget, records every action, and escalates once the budget is spent.
//!
//! The [`Recoverer`] is told every stored transition ([`Recoverer::transition`]); one task per
//! target with a `[target.recover]` table drives that target's core
//! [`Budget`]: it sleeps until the budget's `poll_timeout` or a
//! new state, then runs what `poll_action` asks for, one action at a time. The decisions are
//! the budget's; this module only runs actions ([`run`]), writes the recovery log
//! ([`ActionRecord`](crate::store::ActionRecord)s, on the read-write connection it is given)
//! and calls the escalation hook. `task` is one target's loop, `log` the rows and the rebuild.
//!
//! After a restart of the monitor each budget is rebuilt from the log (attempts since the last
//! reset, and a spent budget), so restarting the monitor does not hand a crash-looping service
//! fresh attempts.
//!
//! What this is not: the budget's rules (`vitals_core::recovery`), alert delivery (the
//! escalation hook hands the escalation to whoever sends alerts), or the API
//! (`crate::api::actions`). See docs/RECOVERY.md.

mod log;
mod run;
mod task;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vitals_core::machine::State;
use vitals_core::recovery::Budget;

pub use run::{Ended, OUTPUT_LIMIT, Ran, run};

use crate::config::{Recovery, Target};
use crate::store::{ActionKind, Store};

/// A spent budget: what the escalation alert says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Escalation {
    pub target: String,
    pub name: String,
    pub at: SystemTime,
    /// The state the target is in (unhealthy or down).
    pub state: State,
    /// Attempts made since the budget's last reset.
    pub attempts: u32,
    /// The action as people read it (`systemctl restart api`, `POST http://…`).
    pub action: String,
    /// What the last attempt said, and how it ended.
    pub last_result: Option<String>,
    pub last_output: Option<String>,
}

/// Called once per spent budget, from the target's recovery task. It must not block: hand
/// the escalation on (to the notifier's outbox) and return.
pub type EscalationHook = Arc<dyn Fn(Escalation) + Send + Sync>;

/// A target's budget as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetView {
    pub target: String,
    pub action: String,
    /// The target's state as the recoverer last heard it.
    pub state: State,
    /// The budget is spent: nothing more is attempted until a person resets it or the target
    /// stays healthy for `reset_after`.
    pub exhausted: bool,
    pub attempts: u32,
    pub attempts_in_window: u32,
    pub max_attempts: u32,
    pub window: Duration,
    pub exhausted_at: Option<SystemTime>,
    /// When the next attempt runs if the target is still failing then.
    pub next_attempt: Option<SystemTime>,
    /// An action is running now.
    pub running: bool,
    /// Why nothing is attempted for now whatever the budget says: `paused`, or `maintenance
    /// until <time>`.
    pub held: Option<String>,
}

/// Where a target stands when the recoverer starts: the engine's view, restored after a
/// restart of the monitor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initial {
    pub state: State,
    pub since: Option<SystemTime>,
    pub paused: bool,
    pub maintenance_until: Option<SystemTime>,
}

impl BudgetView {
    /// "down — needs a person" when the budget is spent and the target still fails, else the
    /// state's name.
    /// The budget is spent and the target still fails: a person must look.
    pub fn needs_person(&self) -> bool {
        self.exhausted && matches!(self.state, State::Unhealthy | State::Down)
    }

    pub fn verdict(&self) -> String {
        if self.needs_person() {
            format!("{} — needs a person", self.state.as_str())
        } else {
            self.state.as_str().to_owned()
        }
    }
}

/// Recovery attempts by result (`ok`, `failed`, `timeout`, `error`) and escalations since
/// the monitor started, for `/metrics`.
#[derive(Debug, Default)]
pub struct RecoveryCounts {
    attempts: [std::sync::atomic::AtomicU64; 4],
    escalations: std::sync::atomic::AtomicU64,
}

impl RecoveryCounts {
    const RESULTS: [run::Ended; 4] = [
        run::Ended::Ok,
        run::Ended::Failed,
        run::Ended::Timeout,
        run::Ended::Error,
    ];

    fn attempt(&self, ended: run::Ended) {
        if let Some(i) = Self::RESULTS.iter().position(|e| *e == ended) {
            self.attempts[i].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn escalation(&self) {
        self.escalations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Attempts by result, in a fixed order.
    pub fn attempts(&self) -> Vec<(&'static str, u64)> {
        Self::RESULTS
            .iter()
            .zip(&self.attempts)
            .map(|(e, n)| (e.as_str(), n.load(std::sync::atomic::Ordering::Relaxed)))
            .collect()
    }

    pub fn escalations(&self) -> u64 {
        self.escalations.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The recovery executor; clone it freely.
#[derive(Clone)]
pub struct Recoverer {
    /// By target id; a reload replaces slots ([`Recoverer::apply`]).
    slots: Arc<RwLock<HashMap<String, Arc<Slot>>>>,
    store: Option<Arc<Store>>,
    counts: Arc<RecoveryCounts>,
    client: reqwest::Client,
    escalate: Option<EscalationHook>,
}

impl std::fmt::Debug for Recoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recoverer")
            .field("targets", &self.read().len())
            .finish_non_exhaustive()
    }
}

/// One target's recovery: its configuration and its live budget.
struct Slot {
    id: String,
    name: String,
    recovery: Recovery,
    /// Shared by every target's slot: what recovery did, for `/metrics`.
    counts: Arc<RecoveryCounts>,
    live: Mutex<RecoveryState>,
    /// Wakes the target's task: a new state, or a reset.
    wake: Notify,
    /// Stops the target's task: a reload removed the target or changed its recovery.
    retired: CancellationToken,
}

struct RecoveryState {
    budget: Budget,
    state: State,
    running: bool,
    /// Paused targets are not checked, so their last state says nothing about now; targets
    /// in maintenance fail on purpose. Neither is acted on, nor counted against its budget.
    paused: bool,
    maintenance_until: Option<SystemTime>,
    /// What the log last said of the budget, to notice (and log) a reset by health.
    logged_attempts: u32,
    logged_exhausted: bool,
    last: Option<(Ended, Option<String>)>,
}

/// Why a target's recovery waits regardless of its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hold {
    Paused,
    Maintenance(SystemTime),
}

impl RecoveryState {
    fn hold(&self, wall: SystemTime) -> Option<Hold> {
        if self.paused {
            return Some(Hold::Paused);
        }
        self.maintenance_until
            .filter(|until| *until > wall)
            .map(Hold::Maintenance)
    }
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, RecoveryState> {
        // Plain data: a panic elsewhere leaves nothing half-written worth refusing.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Monotonic and wall clocks read together, to turn one into the other.
#[derive(Clone, Copy)]
struct Clock {
    now: Instant,
    wall: SystemTime,
}

impl Clock {
    fn read() -> Clock {
        Clock {
            now: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn wall_of(self, at: std::time::Instant) -> SystemTime {
        let at = Instant::from_std(at);
        if at >= self.now {
            self.wall + (at - self.now)
        } else {
            self.wall
                .checked_sub(self.now - at)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    fn instant_of(self, wall: SystemTime) -> std::time::Instant {
        let at = match wall.duration_since(self.wall) {
            // A year is "never" for a timer, and cannot overflow an Instant.
            Ok(ahead) => self
                .now
                .checked_add(ahead)
                .unwrap_or(self.now + Duration::from_secs(365 * 24 * 3600)),
            Err(behind) => self.now.checked_sub(behind.duration()).unwrap_or(self.now),
        };
        at.into_std()
    }
}

impl Recoverer {
    /// Starts one task per target of `targets` that has a recovery action. `initial` says
    /// where a target stands (unknown when `None`); `store`, a read-write connection, keeps
    /// the log (none: nothing is kept); `escalate` is told each spent budget.
    pub fn start(
        targets: &[Target],
        initial: impl Fn(&str) -> Option<Initial>,
        store: Option<Arc<Store>>,
        escalate: Option<EscalationHook>,
    ) -> Recoverer {
        let recoverer = Recoverer {
            slots: Arc::new(RwLock::new(HashMap::new())),
            store,
            counts: Arc::new(RecoveryCounts::default()),
            client: reqwest::Client::new(),
            escalate,
        };
        recoverer.apply(targets, initial);
        recoverer
    }

    /// The targets with a recovery action are now `targets` (a reload): a target whose
    /// recovery is unchanged keeps its task and budget; a new one, or one whose recovery
    /// changed, starts afresh from `initial` (its budget rebuilt from the log, as after a
    /// restart); a target no longer there, or without a recovery action now, stops (an action
    /// in hand is cut, its process group killed).
    pub fn apply(&self, targets: &[Target], initial: impl Fn(&str) -> Option<Initial>) {
        let clock = Clock::read();
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let mut old = std::mem::take(&mut *slots);
        for target in targets {
            let Some(recovery) = &target.recover else {
                continue;
            };
            if let Some(slot) = old.remove(&target.id) {
                if slot.recovery == *recovery && slot.name == target.name {
                    slots.insert(target.id.clone(), slot);
                    continue;
                }
                slot.retired.cancel();
            }
            let slot = self.spawn(target, recovery, initial(&target.id), clock);
            slots.insert(target.id.clone(), slot);
        }
        for (id, slot) in old {
            tracing::info!(target = %id, "recovery stopped: the target or its recovery action was removed");
            slot.retired.cancel();
        }
    }

    fn spawn(
        &self,
        target: &Target,
        recovery: &Recovery,
        initial: Option<Initial>,
        clock: Clock,
    ) -> Arc<Slot> {
        let Initial {
            state,
            since,
            paused,
            maintenance_until,
        } = initial.unwrap_or(Initial {
            state: State::Unknown,
            since: None,
            paused: false,
            maintenance_until: None,
        });
        let mut budget = Budget::new(recovery.policy.clone());
        let since = since.map_or(clock.now.into_std(), |since| clock.instant_of(since));
        budget.handle_state(since, state);
        let slot = Arc::new(Slot {
            id: target.id.clone(),
            name: target.name.clone(),
            recovery: recovery.clone(),
            counts: Arc::clone(&self.counts),
            live: Mutex::new(RecoveryState {
                budget,
                state,
                running: false,
                paused,
                maintenance_until,
                logged_attempts: 0,
                logged_exhausted: false,
                last: None,
            }),
            wake: Notify::new(),
            retired: CancellationToken::new(),
        });
        let driving = task::drive(
            Arc::clone(&slot),
            self.store.clone(),
            self.client.clone(),
            self.escalate.clone(),
            (state, since),
        );
        let retired = slot.retired.clone();
        tokio::spawn(async move {
            tokio::select! {
                biased;
                () = retired.cancelled() => {}
                () = driving => {}
            }
        });
        slot
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Slot>>> {
        // Plain data: a panic elsewhere leaves nothing half-written worth refusing.
        self.slots.read().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, target: &str) -> Option<Arc<Slot>> {
        self.read().get(target).cloned()
    }

    /// What recovery did since the start, for `/metrics`.
    pub fn counts(&self) -> &RecoveryCounts {
        &self.counts
    }

    /// Whether `target` has a recovery action.
    pub fn covers(&self, target: &str) -> bool {
        self.read().contains_key(target)
    }

    /// `target` is now in `to` (call it once the transition is stored). Targets without a
    /// recovery action are ignored.
    pub fn transition(&self, target: &str, to: State) {
        let Some(slot) = self.slot(target) else {
            return;
        };
        {
            let mut live = slot.lock();
            live.budget.handle_state(Instant::now().into_std(), to);
            live.state = to;
        }
        slot.wake.notify_one();
    }

    /// `target` was paused or resumed, or put in or out of maintenance (call it once the
    /// change is stored). While paused or in maintenance nothing is attempted.
    pub fn flags(&self, target: &str, paused: bool, maintenance_until: Option<SystemTime>) {
        let Some(slot) = self.slot(target) else {
            return;
        };
        {
            let mut live = slot.lock();
            live.paused = paused;
            live.maintenance_until = maintenance_until;
        }
        slot.wake.notify_one();
    }

    /// `target`'s budget now; `None` when it has no recovery action.
    pub fn status(&self, target: &str) -> Option<BudgetView> {
        let slot = self.slot(target)?;
        let live = slot.lock();
        Some(view(&slot, &live, Clock::read()))
    }

    /// A person resets `target`'s budget: its attempts and escalation are forgotten, and if
    /// it still fails the action runs again at once. The reset is logged with `who`.
    pub async fn reset(&self, target: &str, who: &str) -> Option<BudgetView> {
        let slot = self.slot(target)?;
        let clock = Clock::read();
        let (shown, record) = {
            let mut live = slot.lock();
            let before = live.budget.status(clock.now.into_std()).attempts;
            live.budget.reset(clock.now.into_std());
            live.logged_attempts = 0;
            live.logged_exhausted = false;
            let action = format!("reset by {who}");
            let record = log::row(
                &slot,
                clock.wall,
                ActionKind::Reset,
                action,
                before,
                "reset",
            );
            (view(&slot, &live, clock), record)
        };
        tracing::info!(target = %slot.id, %who, "recovery budget reset");
        log::log(self.store.as_ref(), record).await;
        slot.wake.notify_one();
        Some(shown)
    }
}

fn view(slot: &Slot, live: &RecoveryState, clock: Clock) -> BudgetView {
    let status = live.budget.status(clock.now.into_std());
    BudgetView {
        target: slot.id.clone(),
        action: vitals_probes::redact_urls_in(&slot.recovery.action.describe()),
        state: live.state,
        exhausted: status.exhausted_at.is_some(),
        attempts: status.attempts,
        attempts_in_window: status.attempts_in_window,
        max_attempts: status.max_attempts,
        window: slot.recovery.policy.window,
        exhausted_at: status.exhausted_at.map(|at| clock.wall_of(at)),
        next_attempt: status.next_attempt.map(|at| clock.wall_of(at)),
        running: live.running,
        held: live.hold(clock.wall).map(|hold| match hold {
            Hold::Paused => "paused".to_owned(),
            Hold::Maintenance(until) => format!(
                "maintenance until {}",
                humantime::format_rfc3339_seconds(until)
            ),
        }),
    }
}

#[cfg(test)]
mod tests;
