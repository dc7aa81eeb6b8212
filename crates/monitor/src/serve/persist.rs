//! The record loop of `vitals serve`: every record the engine hands out is stored, in
//! order, and then each transition goes to the notifier and the recovery executor with what
//! root-cause analysis says of it. A transition is committed before anyone hears of it.
//!
//! What it is not: a decision maker. The engine judges, the notifier's policy decides who is
//! told, the recovery budget decides what runs.

use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::engine::{Engine, Record, RecordReceiver, Signal};
use crate::recovery::Recoverer;
use crate::store::{CheckResult, Flags, Ping, PingKind, TargetState, Transition, Writer};

/// Hand the engine's records to the store writer, in order, then to the notifier and the
/// recovery executor, with what root-cause analysis says of each transition.
pub(super) async fn persist(
    mut records: RecordReceiver,
    writer: Writer,
    engine: Engine,
    notifier: crate::notify::Notifier,
    recovery: Recoverer,
    stop: CancellationToken,
) {
    loop {
        // Once stopped, what is already queued is still stored (a transition of the last
        // moments is history too), then the loop ends.
        let record = tokio::select! {
            biased;
            record = records.recv() => record,
            () = stop.cancelled() => records.try_recv(),
        };
        let Some(record) = record else {
            return;
        };
        // Stopping: only records of state still matter; a backlog of results and pings
        // (shed under load anyway) must not hold up the exit.
        if stop.is_cancelled() && record.is_droppable() {
            continue;
        }
        match record {
            // Outputs are kept for warnings and failures only: "HTTP 200" thousands of
            // times a day doubles the history (docs/STORAGE.md) and says nothing new; the
            // latest output of every target is in the engine anyway.
            Record::Result { target, outcome } => writer.result(CheckResult {
                target,
                at: outcome.at,
                kind: outcome.kind,
                duration: outcome.duration,
                output: (outcome.kind != vitals_core::Kind::Pass)
                    .then_some(outcome.output)
                    .flatten(),
            }),
            Record::Transition {
                target,
                at,
                from,
                to,
                reason,
                cause,
                saved,
            } => {
                let transition = Transition {
                    id: None,
                    target: target.clone(),
                    at,
                    from: from.as_str().to_string(),
                    to: to.as_str().to_string(),
                    reason: reason.clone(),
                    cause_kind: cause.as_ref().map(|c| c.kind.as_str().to_string()),
                    cause_output: cause.and_then(|c| c.output),
                };
                if let Err(error) = writer.transition(transition).await {
                    tracing::error!(%error, %target, "could not store a transition");
                }
                // Root cause, as the engine sees it now: a target failing because of what it
                // depends on gets no alert (nor recovery action) of its own; a root's alert
                // names its dependents, also those that failed first and wait in their
                // group wait, which are cancelled into it.
                // A canary failing while the monitor is isolated is covered by the one
                // "isolated" alert.
                let blocked_by = engine.blocked_by(&target).into_iter().next().or_else(|| {
                    (engine.is_isolated() && engine.is_canary(&target))
                        .then(|| "monitor".to_string())
                });
                let dependents = if blocked_by.is_none() {
                    engine.blocked_dependents(&target)
                } else {
                    Vec::new()
                };
                // Stored first, then notified: the alert's outbox rows are committed
                // before this returns.
                let info = crate::notify::TransitionInfo {
                    target: target.clone(),
                    at,
                    from,
                    to,
                    reason,
                    flapping: saved.flapping,
                    blocked_by: blocked_by.clone(),
                    dependents: dependents.clone(),
                };
                notifier.transition(&info).await;
                for dependent in &dependents {
                    notifier.blocked(dependent, &target).await;
                }
                // Stored first, then acted on: the recovery log follows the transition.
                // Restarting what is blocked by a failed dependency would not help it.
                if blocked_by.is_none() || to.is_serving() {
                    recovery.transition(&target, to);
                }
                // Back: what depended on it and still fails is its own trouble now.
                if to.is_serving() {
                    for (dependent, state) in engine.unblocked_dependents(&target) {
                        recovery.transition(&dependent, state);
                    }
                }
                let state = TargetState {
                    target: target.clone(),
                    state: saved.state.as_str().to_string(),
                    since: Some(at),
                    flapping: saved.flapping,
                    consecutive_failures: saved.consecutive_failures,
                    consecutive_successes: saved.consecutive_successes,
                    flags: Flags::default(),
                };
                if let Err(error) = writer.save_states(vec![state]).await {
                    tracing::error!(%error, %target, "could not store a state");
                }
            }
            Record::Marker {
                target,
                at,
                from,
                to,
                reason,
            } => {
                if let Err(error) = writer.transition(mark(&target, at, from, to, reason)).await {
                    tracing::error!(%error, %target, "could not store a pause or maintenance mark");
                }
            }
            Record::Flapping {
                target,
                state,
                flapping,
                reason,
            } => notifier.flapping(&target, state, flapping, &reason).await,
            Record::Isolation {
                isolated,
                at,
                canaries,
            } => {
                // Kept in the timeline of each canary, where people look for it, as a mark
                // that leaves its state (and so its uptime) as it is.
                let reason = if isolated {
                    "every canary is failing: the monitor is isolated"
                } else {
                    "a canary answers again: the monitor is connected"
                };
                for canary in canaries {
                    let Some(state) = engine.view(&canary).map(|view| view.state.as_str()) else {
                        continue;
                    };
                    let note = mark(&canary, at, state.into(), state.into(), reason.into());
                    if let Err(error) = writer.transition(note).await {
                        tracing::error!(%error, %canary, "could not store an isolation mark");
                    }
                }
                if isolated {
                    notifier.isolated(reason).await;
                } else {
                    notifier.reconnected(reason).await;
                }
            }
            Record::Flags {
                target,
                paused,
                maintenance_until,
            } => {
                if let Err(error) = writer
                    .set_flags(
                        target.clone(),
                        Flags {
                            paused,
                            maintenance_until,
                        },
                    )
                    .await
                {
                    tracing::error!(%error, %target, "could not store flags");
                }
                notifier.maintenance(&target, maintenance_until).await;
                recovery.flags(&target, paused, maintenance_until);
            }
            Record::Ping(ping) => {
                let kind = match ping.signal {
                    Signal::Start => PingKind::Start,
                    Signal::Success | Signal::Beat(_) => PingKind::Success,
                    Signal::Fail => PingKind::Fail,
                    Signal::Log => PingKind::Log,
                    Signal::Exit(code) => PingKind::Exit(code),
                };
                let stored = Ping {
                    target: ping.target,
                    at: ping.at,
                    kind,
                    rid: ping.rid,
                    body: ping.body,
                    duration: ping.duration,
                    source: ping.source,
                };
                if let Err(error) = writer.ping(stored).await {
                    tracing::error!(%error, "could not store a ping");
                }
            }
        }
    }
}

/// A mark in a target's timeline that is not a judged state change (a pause, maintenance, or
/// the monitor's isolation): no outcome caused it.
fn mark(target: &str, at: SystemTime, from: String, to: String, reason: String) -> Transition {
    Transition {
        id: None,
        target: target.to_string(),
        at,
        from,
        to,
        reason,
        cause_kind: None,
        cause_output: None,
    }
}
