//! Automatic recovery: runs a target's recovery action when it turns unhealthy or down,
//! within its restart budget, records every action, and escalates once the budget is spent.
//!
//! The [`Recoverer`] is told every stored transition ([`Recoverer::transition`]); one task per
//! target with a `[target.recover]` table drives that target's core
//! [`Budget`](vitals_core::recovery::Budget): it sleeps until the budget's `poll_timeout` or a
//! new state, then runs what `poll_action` asks for, one action at a time. The decisions are
//! the budget's; this module only runs actions ([`run`]), writes the recovery log
//! ([`ActionRecord`]s, through its own store connection) and calls the escalation hook.
//!
//! After a restart of the monitor each budget is rebuilt from the log (attempts since the last
//! reset, and a spent budget), so restarting the monitor does not hand a crash-looping service
//! fresh attempts.
//!
//! What this is not: the budget's rules (`vitals_core::recovery`), alert delivery (the
//! escalation hook hands the escalation to whoever sends alerts), or the API
//! (`crate::api::actions`). See docs/RECOVERY.md.

mod run;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::Notify;
use tokio::time::Instant;
use vitals_core::machine::State;
use vitals_core::recovery::{Action, Budget};

pub use run::{OUTPUT_LIMIT, Ran, Verdict, run};

use crate::config::{Recovery, Target};
use crate::store::{ActionKind, ActionRecord, Store};

/// Rows of the recovery log read back per target at start-up to restore its budget.
const RESTORE_ROWS: usize = 1000;

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
}

impl BudgetView {
    /// "down — needs a person" when the budget is spent and the target still fails, else the
    /// state's name.
    pub fn verdict(&self) -> String {
        if self.exhausted && matches!(self.state, State::Unhealthy | State::Down) {
            format!("{} — needs a person", self.state.as_str())
        } else {
            self.state.as_str().to_owned()
        }
    }
}

/// The recovery executor; clone it freely.
#[derive(Clone)]
pub struct Recoverer {
    slots: Arc<HashMap<String, Arc<Slot>>>,
    store: Option<Arc<Store>>,
}

impl std::fmt::Debug for Recoverer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recoverer")
            .field("targets", &self.slots.len())
            .finish_non_exhaustive()
    }
}

/// One target's recovery: its configuration and its live budget.
struct Slot {
    id: String,
    name: String,
    recovery: Recovery,
    live: Mutex<Live>,
    /// Wakes the target's task: a new state, or a reset.
    wake: Notify,
}

struct Live {
    budget: Budget,
    state: State,
    running: bool,
    /// What the log last said of the budget, to notice (and log) a reset by health.
    logged_attempts: u32,
    logged_exhausted: bool,
    last: Option<(Verdict, Option<String>)>,
}

impl Slot {
    fn lock(&self) -> MutexGuard<'_, Live> {
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
        let ago = self.wall.duration_since(wall).unwrap_or_default();
        self.now.checked_sub(ago).unwrap_or(self.now).into_std()
    }
}

impl Recoverer {
    /// Starts one task per target of `targets` that has a recovery action. `initial` gives a
    /// target's state and since when (the engine's, restored after a restart); `store`, a
    /// read-write connection of the recoverer's own, keeps the log (none: nothing is kept);
    /// `escalate` is told each spent budget.
    pub fn start(
        targets: &[Target],
        initial: impl Fn(&str) -> Option<(State, Option<SystemTime>)>,
        store: Option<Arc<Store>>,
        escalate: Option<EscalationHook>,
    ) -> Recoverer {
        let client = reqwest::Client::new();
        let clock = Clock::read();
        let mut slots = HashMap::new();
        for target in targets {
            let Some(recovery) = &target.recover else {
                continue;
            };
            let (state, since) = initial(&target.id).unwrap_or((State::Unknown, None));
            let mut budget = Budget::new(recovery.policy.clone());
            let since = since.map_or(clock.now.into_std(), |since| clock.instant_of(since));
            budget.handle_state(since, state);
            let slot = Arc::new(Slot {
                id: target.id.clone(),
                name: target.name.clone(),
                recovery: recovery.clone(),
                live: Mutex::new(Live {
                    budget,
                    state,
                    running: false,
                    logged_attempts: 0,
                    logged_exhausted: false,
                    last: None,
                }),
                wake: Notify::new(),
            });
            tokio::spawn(drive(
                Arc::clone(&slot),
                store.clone(),
                client.clone(),
                escalate.clone(),
                (state, since),
            ));
            slots.insert(target.id.clone(), slot);
        }
        Recoverer {
            slots: Arc::new(slots),
            store,
        }
    }

    /// Whether `target` has a recovery action.
    pub fn covers(&self, target: &str) -> bool {
        self.slots.contains_key(target)
    }

    /// `target` is now in `to` (call it once the transition is stored). Targets without a
    /// recovery action are ignored.
    pub fn transition(&self, target: &str, to: State) {
        let Some(slot) = self.slots.get(target) else {
            return;
        };
        {
            let mut live = slot.lock();
            live.budget.handle_state(Instant::now().into_std(), to);
            live.state = to;
        }
        slot.wake.notify_one();
    }

    /// `target`'s budget now; `None` when it has no recovery action.
    pub fn status(&self, target: &str) -> Option<BudgetView> {
        let slot = self.slots.get(target)?;
        let live = slot.lock();
        Some(view(slot, &live, Clock::read()))
    }

    /// A person resets `target`'s budget: its attempts and escalation are forgotten, and if
    /// it still fails the action runs again at once. The reset is logged with `who`.
    pub async fn reset(&self, target: &str, who: &str) -> Option<BudgetView> {
        let slot = self.slots.get(target)?;
        let clock = Clock::read();
        let (shown, record) = {
            let mut live = slot.lock();
            let before = live.budget.status(clock.now.into_std()).attempts;
            live.budget.reset(clock.now.into_std());
            live.logged_attempts = 0;
            live.logged_exhausted = false;
            let record = ActionRecord {
                id: None,
                target: slot.id.clone(),
                at: clock.wall,
                kind: ActionKind::Reset,
                trigger: None,
                action: format!("reset by {who}"),
                attempt: before,
                duration: None,
                exit_code: None,
                http_status: None,
                output: None,
                result: "reset".into(),
            };
            (view(slot, &live, clock), record)
        };
        tracing::info!(target = %slot.id, %who, "recovery budget reset");
        log(self.store.as_ref(), record).await;
        slot.wake.notify_one();
        Some(shown)
    }
}

fn view(slot: &Slot, live: &Live, clock: Clock) -> BudgetView {
    let status = live.budget.status(clock.now.into_std());
    BudgetView {
        target: slot.id.clone(),
        action: slot.recovery.action.describe(),
        state: live.state,
        exhausted: status.exhausted_at.is_some(),
        attempts: status.attempts,
        attempts_in_window: status.attempts_in_window,
        max_attempts: status.max_attempts,
        window: slot.recovery.policy.window,
        exhausted_at: status.exhausted_at.map(|at| clock.wall_of(at)),
        next_attempt: status.next_attempt.map(|at| clock.wall_of(at)),
        running: live.running,
    }
}

/// Writes one row of the recovery log on the blocking pool; a failure is logged, not fatal:
/// recovery goes on without its record rather than stopping.
async fn log(store: Option<&Arc<Store>>, record: ActionRecord) {
    let Some(store) = store.cloned() else {
        return;
    };
    let target = record.target.clone();
    match tokio::task::spawn_blocking(move || store.record_action(&record)).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => tracing::error!(%target, %error, "could not record a recovery action"),
        Err(error) => tracing::error!(%target, %error, "recording a recovery action panicked"),
    }
}

/// Rebuilds the budget from the log: attempts since the last reset, and the escalation if it
/// came after them.
async fn restore(slot: &Slot, store: Option<&Arc<Store>>, initial: (State, std::time::Instant)) {
    let Some(store) = store.cloned() else {
        return;
    };
    let id = slot.id.clone();
    let rows = match tokio::task::spawn_blocking(move || store.actions(&id, RESTORE_ROWS)).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(error)) => {
            tracing::error!(target = %slot.id, %error, "could not read the recovery log; the budget starts afresh");
            return;
        }
        Err(error) => {
            tracing::error!(target = %slot.id, %error, "reading the recovery log panicked");
            return;
        }
    };
    let since_reset: Vec<&ActionRecord> = rows
        .iter()
        .take_while(|row| row.kind != ActionKind::Reset)
        .collect();
    if since_reset.is_empty() {
        return;
    }
    let clock = Clock::read();
    let mut live = slot.lock();
    let mut budget = Budget::new(slot.recovery.policy.clone());
    for row in since_reset.iter().rev() {
        let at = clock.instant_of(row.at);
        match row.kind {
            ActionKind::Attempt => budget.handle_past_attempt(at),
            ActionKind::Escalation => budget.handle_past_escalation(at),
            ActionKind::Reset => {}
        }
    }
    let (state, since) = initial;
    budget.handle_state(since, state);
    // A transition may have come while the log was read.
    if live.state != state {
        budget.handle_state(clock.now.into_std(), live.state);
    }
    let status = budget.status(clock.now.into_std());
    live.logged_attempts = status.attempts;
    live.logged_exhausted = status.exhausted_at.is_some();
    live.budget = budget;
    tracing::info!(target = %slot.id, attempts = status.attempts, exhausted = live.logged_exhausted, "recovery budget restored from the log");
}

/// One target's recovery task: runs what the budget asks for, then sleeps until its timeout
/// or a new state.
async fn drive(
    slot: Arc<Slot>,
    store: Option<Arc<Store>>,
    client: reqwest::Client,
    escalate: Option<EscalationHook>,
    initial: (State, std::time::Instant),
) {
    restore(&slot, store.as_ref(), initial).await;
    loop {
        loop {
            let clock = Clock::read();
            let (action, trigger) = {
                let mut live = slot.lock();
                let action = live.budget.poll_action(clock.now.into_std());
                live.running = matches!(action, Some(Action::Attempt { .. }));
                (action, live.state)
            };
            match action {
                None => break,
                Some(Action::Attempt { attempt }) => {
                    attempt_once(&slot, store.as_ref(), &client, attempt, trigger, clock).await;
                }
                Some(Action::Escalate { attempts }) => {
                    escalate_once(&slot, store.as_ref(), escalate.as_ref(), attempts, trigger)
                        .await;
                }
            }
        }
        log_health_reset(&slot, store.as_ref()).await;
        let next = slot.lock().budget.poll_timeout();
        match next {
            Some(next) => {
                tokio::select! {
                    () = slot.wake.notified() => {}
                    () = tokio::time::sleep_until(Instant::from_std(next)) => {}
                }
            }
            None => slot.wake.notified().await,
        }
    }
}

async fn attempt_once(
    slot: &Slot,
    store: Option<&Arc<Store>>,
    client: &reqwest::Client,
    attempt: u32,
    trigger: State,
    clock: Clock,
) {
    let action = slot.recovery.action.describe();
    tracing::warn!(target = %slot.id, attempt, trigger = trigger.as_str(), %action, "running a recovery action");
    let ran = run(&slot.recovery.action, slot.recovery.timeout, client).await;
    tracing::info!(target = %slot.id, attempt, result = ran.verdict.as_str(), exit_code = ?ran.exit_code, http_status = ?ran.http_status, "recovery action finished");
    {
        let mut live = slot.lock();
        live.running = false;
        live.logged_attempts = attempt;
        live.last = Some((ran.verdict, ran.output.clone()));
    }
    let record = ActionRecord {
        id: None,
        target: slot.id.clone(),
        at: clock.wall,
        kind: ActionKind::Attempt,
        trigger: Some(trigger.as_str().to_owned()),
        action,
        attempt,
        duration: Some(ran.duration),
        exit_code: ran.exit_code,
        http_status: ran.http_status,
        output: ran.output,
        result: ran.verdict.as_str().to_owned(),
    };
    log(store, record).await;
}

async fn escalate_once(
    slot: &Slot,
    store: Option<&Arc<Store>>,
    escalate: Option<&EscalationHook>,
    attempts: u32,
    trigger: State,
) {
    let at = SystemTime::now();
    let action = slot.recovery.action.describe();
    let last = {
        let mut live = slot.lock();
        live.logged_exhausted = true;
        live.last.clone()
    };
    tracing::error!(target = %slot.id, attempts, state = trigger.as_str(), %action, "recovery budget spent; the target needs a person");
    let window = humantime::format_duration(slot.recovery.policy.window);
    log(
        store,
        ActionRecord {
            id: None,
            target: slot.id.clone(),
            at,
            kind: ActionKind::Escalation,
            trigger: Some(trigger.as_str().to_owned()),
            action: action.clone(),
            attempt: attempts,
            duration: None,
            exit_code: None,
            http_status: None,
            output: Some(format!(
                "{attempts} attempts within {window} did not bring it back; reset the budget (POST /api/v1/targets/{}/actions/reset) once it is fixed",
                slot.id
            )),
            result: "escalated".into(),
        },
    )
    .await;
    if let Some(escalate) = escalate {
        escalate(Escalation {
            target: slot.id.clone(),
            name: slot.name.clone(),
            at,
            state: trigger,
            attempts,
            action,
            last_result: last
                .as_ref()
                .map(|(verdict, _)| verdict.as_str().to_owned()),
            last_output: last.and_then(|(_, output)| output),
        });
    }
}

/// Logs a budget that reset because the target stayed healthy for `reset_after`.
async fn log_health_reset(slot: &Slot, store: Option<&Arc<Store>>) {
    let clock = Clock::read();
    let record = {
        let mut live = slot.lock();
        let status = live.budget.status(clock.now.into_std());
        let had = live.logged_attempts > 0 || live.logged_exhausted;
        if !had || status.attempts > 0 || status.exhausted_at.is_some() {
            return;
        }
        let before = live.logged_attempts;
        live.logged_attempts = 0;
        live.logged_exhausted = false;
        live.last = None;
        ActionRecord {
            id: None,
            target: slot.id.clone(),
            at: clock.wall,
            kind: ActionKind::Reset,
            trigger: None,
            action: format!(
                "healthy for {}",
                humantime::format_duration(slot.recovery.policy.reset_after)
            ),
            attempt: before,
            duration: None,
            exit_code: None,
            http_status: None,
            output: None,
            result: "reset".into(),
        }
    };
    tracing::info!(target = %slot.id, "recovery budget reset: the target stayed healthy");
    log(store, record).await;
}

#[cfg(test)]
mod tests;
