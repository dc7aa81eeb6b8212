//! The recovery log as the executor uses it: one row written per action, escalation or
//! reset (on the blocking pool, never failing recovery), and each budget rebuilt from the
//! rows at start-up.
//!
//! Not here: the table itself (`crate::store::actions`).

use std::sync::Arc;
use std::time::SystemTime;

use vitals_core::machine::State;
use vitals_core::recovery::Budget;

use super::{Clock, Slot};
use crate::store::{ActionKind, ActionRecord, Store};

/// Rows of the recovery log read back per target at start-up to restore its budget.
const RESTORE_ROWS: usize = 1000;

/// Writes one row of the recovery log on the blocking pool; a failure is logged, not fatal:
/// recovery goes on without its record rather than stopping.
pub(super) async fn log(store: Option<&Arc<Store>>, record: ActionRecord) {
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
pub(super) async fn restore(
    slot: &Slot,
    store: Option<&Arc<Store>>,
    initial: (State, std::time::Instant),
) {
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

/// A row with only what every row has; the caller fills in the rest.
pub(super) fn row(
    slot: &Slot,
    at: SystemTime,
    kind: ActionKind,
    action: String,
    attempt: u32,
    result: &str,
) -> ActionRecord {
    ActionRecord {
        id: None,
        target: slot.id.clone(),
        at,
        kind,
        trigger: None,
        action,
        attempt,
        duration: None,
        exit_code: None,
        http_status: None,
        output: None,
        result: result.to_owned(),
    }
}
