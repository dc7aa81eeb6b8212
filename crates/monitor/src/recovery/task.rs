//! One target's recovery task: runs what its budget asks for (an attempt, or the
//! escalation), logs it, then sleeps until the budget's timeout or a new state.
//!
//! Not here: the budget's rules (the core), running an action (`run`).

use std::sync::Arc;
use std::time::SystemTime;

use tokio::time::Instant;
use vitals_core::machine::State;
use vitals_core::recovery::Action;

use super::log::{log, restore, row};
use super::{Clock, Escalation, EscalationHook, Hold, Slot, run};
use crate::store::{ActionKind, ActionRecord, Store};

/// One target's recovery task: runs what the budget asks for, then sleeps until its timeout
/// or a new state.
pub(super) async fn drive(
    slot: Arc<Slot>,
    store: Option<Arc<Store>>,
    client: reqwest::Client,
    escalate: Option<EscalationHook>,
    initial: (State, std::time::Instant),
) {
    restore(&slot, store.as_ref(), initial).await;
    loop {
        let hold = loop {
            let clock = Clock::read();
            let (action, trigger) = {
                let mut live = slot.lock();
                // Held: the budget is not asked, so nothing is attempted or counted.
                if let Some(hold) = live.hold(clock.wall) {
                    break Some(hold);
                }
                let action = live.budget.poll_action(clock.now.into_std());
                live.running = matches!(action, Some(Action::Attempt { .. }));
                (action, live.state)
            };
            match action {
                None => break None,
                Some(Action::Attempt { attempt }) => {
                    attempt_once(&slot, store.as_ref(), &client, attempt, trigger, clock).await;
                }
                Some(Action::Escalate { attempts }) => {
                    escalate_once(&slot, store.as_ref(), escalate.as_ref(), attempts, trigger)
                        .await;
                }
            }
        };
        log_health_reset(&slot, store.as_ref()).await;
        let next = match hold {
            None => slot.lock().budget.poll_timeout(),
            Some(Hold::Maintenance(until)) => Some(Clock::read().instant_of(until)),
            // Until resumed: `Recoverer::flags` wakes the task.
            Some(Hold::Paused) => None,
        };
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
    let action = vitals_probes::redact_urls_in(&slot.recovery.action.describe());
    tracing::warn!(target = %slot.id, attempt, trigger = trigger.as_str(), %action, "running a recovery action");
    let ran = run(&slot.recovery.action, slot.recovery.timeout, client).await;
    slot.counts.attempt(ran.verdict);
    tracing::info!(target = %slot.id, attempt, result = ran.verdict.as_str(), exit_code = ?ran.exit_code, http_status = ?ran.http_status, "recovery action finished");
    {
        let mut live = slot.lock();
        live.running = false;
        live.logged_attempts = attempt;
        live.last = Some((ran.verdict, ran.output.clone()));
    }
    let record = row(
        slot,
        clock.wall,
        ActionKind::Attempt,
        action,
        attempt,
        ran.verdict.as_str(),
    );
    let record = ActionRecord {
        trigger: Some(trigger.as_str().to_owned()),
        duration: Some(ran.duration),
        exit_code: ran.exit_code,
        http_status: ran.http_status,
        output: ran.output,
        ..record
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
    let action = vitals_probes::redact_urls_in(&slot.recovery.action.describe());
    let last = {
        let mut live = slot.lock();
        live.logged_exhausted = true;
        live.last.clone()
    };
    tracing::error!(target = %slot.id, attempts, state = trigger.as_str(), %action, "recovery budget spent; the target needs a person");
    slot.counts.escalation();
    let window = humantime::format_duration(slot.recovery.policy.window);
    let record = row(
        slot,
        at,
        ActionKind::Escalation,
        action.clone(),
        attempts,
        "escalated",
    );
    let record = ActionRecord {
        trigger: Some(trigger.as_str().to_owned()),
        output: Some(format!(
            "{attempts} attempts within {window} did not bring it back; reset the budget (POST /api/v1/targets/{}/actions/reset) once it is fixed",
            slot.id
        )),
        ..record
    };
    log(store, record).await;
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
        let action = format!(
            "healthy for {}",
            humantime::format_duration(slot.recovery.policy.reset_after)
        );
        row(slot, clock.wall, ActionKind::Reset, action, before, "reset")
    };
    tracing::info!(target = %slot.id, "recovery budget reset: the target stayed healthy");
    log(store, record).await;
}
