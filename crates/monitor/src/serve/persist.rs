//! The record loop of `vitals serve`: every record the engine hands out is stored, in
//! order, and then each transition goes to the notifier and the recovery executor as the
//! fleet annotated it (root cause, whether recovery may act). A transition is committed
//! before anyone hears of it.
//!
//! What it is not: a decision maker. The fleet judges and says what blocks what, the
//! notifier's policy decides who is told, the recovery budget decides what runs.

use std::time::SystemTime;

use tokio_util::sync::CancellationToken;

use crate::engine::{Record, RecordReceiver, Signal, Transition as Judged};
use crate::recovery::Recoverer;
use crate::store::{
    CheckResult, Flags, Ping, PingKind, RecordWriter, TargetState, TimelineState, Transition,
};

/// Hand the engine's records to the store writer, in order, then to the notifier and the
/// recovery executor, with what root-cause analysis says of each transition.
pub(super) async fn persist(
    mut records: RecordReceiver,
    writer: RecordWriter,
    notifier: crate::notify::Notifier,
    recovery: Recoverer,
    stop: CancellationToken,
) {
    let mut loose = Loose::default();
    loop {
        // What is queued is taken without waiting; results and pings gather in `loose` and go
        // to the writer in one send when the queue runs dry, before a record of state (which
        // keeps the order), or every `LOOSE_BATCH`.
        let record = match records.try_recv() {
            Some(record) => Some(record),
            None => {
                loose.send(&writer);
                // Once stopped, what is already queued is still stored (a transition of the
                // last moments is history too), then the loop ends.
                tokio::select! {
                    biased;
                    record = records.recv() => record,
                    () = stop.cancelled() => records.try_recv(),
                }
            }
        };
        let Some(record) = record else {
            loose.send(&writer);
            return;
        };
        if record.is_droppable() {
            // Stopping: only records of state still matter; a backlog of results and pings
            // (shed under load anyway) must not hold up the exit.
            if !stop.is_cancelled() && loose.add(record, &writer) {
                // A long backlog is taken without awaiting anything: let other tasks run
                // between batches.
                tokio::task::consume_budget().await;
            }
            continue;
        }
        loose.send(&writer);
        match record {
            // Gathered above.
            Record::Result { .. } | Record::Ping(_) => {}
            Record::Transition(judged) => {
                transition(judged, &writer, &notifier, &recovery).await;
            }
            // Back: what depended on it and still fails is its own trouble now.
            Record::Unblocked { target, state } => recovery.transition(&target, state),
            // Removed by a reload: its history stays; its alerts and group membership go.
            Record::Retired { target } => notifier.retired(&target).await,
            Record::Marker {
                target,
                at,
                from,
                to,
                reason,
            } => {
                match writer.transition(mark(&target, at, from, to, reason)).await {
                    Ok(_) => {}
                    // A shard handed to another replica: its targets leave this one, and
                    // their marks are not this replica's to write.
                    Err(crate::store::StoreError::Fenced { .. }) => {}
                    Err(error) => {
                        tracing::error!(%error, %target, "could not store a pause or maintenance mark")
                    }
                }
            }
            Record::Flapping {
                target,
                state,
                flapping,
                reason,
            } => notifier.flapping(&target, state, flapping, &reason).await,
            // The canaries' marks came just before, as records of their own.
            Record::Isolation {
                isolated, reason, ..
            } => {
                if isolated {
                    notifier.isolated(&reason).await;
                } else {
                    notifier.reconnected(&reason).await;
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
        }
    }
}

/// Results and pings sent to the writer together, at most this many at a time.
const LOOSE_BATCH: usize = 1_024;

/// Results and pings on their way to the writer. Both are fire-and-forget: what a ping does to
/// its target's state is a transition of its own, which is awaited; a flood of pings must not
/// wait for commits one at a time.
#[derive(Default)]
struct Loose {
    results: Vec<CheckResult>,
    pings: Vec<Ping>,
}

impl Loose {
    /// Gathers a result or a ping; true when that filled a batch, which went to the writer.
    fn add(&mut self, record: Record, writer: &RecordWriter) -> bool {
        match record {
            // Passing results come without their output (see `Record::Result`).
            Record::Result { target, outcome } => self.results.push(CheckResult {
                target,
                at: outcome.at,
                kind: outcome.kind,
                duration: outcome.duration,
                output: outcome.output,
            }),
            Record::Ping(ping) => {
                let kind = match ping.signal {
                    Signal::Start => PingKind::Start,
                    Signal::Success | Signal::Beat(_) => PingKind::Success,
                    Signal::Fail => PingKind::Fail,
                    Signal::Log => PingKind::Log,
                    Signal::Exit(code) => PingKind::Exit(code),
                    Signal::Exited => PingKind::Exited,
                };
                self.pings.push(Ping {
                    target: ping.target,
                    at: ping.at,
                    kind,
                    rid: ping.rid,
                    body: ping.body,
                    duration: ping.duration,
                    source: ping.source,
                });
            }
            _ => return false,
        }
        let full = self.results.len() + self.pings.len() >= LOOSE_BATCH;
        if full {
            self.send(writer);
        }
        full
    }

    fn send(&mut self, writer: &RecordWriter) {
        if !self.results.is_empty() {
            writer.results(std::mem::take(&mut self.results));
        }
        if !self.pings.is_empty() {
            writer.pings(std::mem::take(&mut self.pings));
        }
    }
}

/// Store a judged transition, then tell the notifier (a blocked target's alert is merged into
/// its root's, which names its dependents) and, when the fleet says so, the recovery
/// executor; then save the state to carry on from.
async fn transition(
    judged: Judged,
    writer: &RecordWriter,
    notifier: &crate::notify::Notifier,
    recovery: &Recoverer,
) {
    let Judged {
        target,
        at,
        from,
        to,
        reason,
        cause,
        saved,
        blocked_by,
        dependents,
        act,
    } = judged;
    let stored = Transition {
        id: None,
        target: target.clone(),
        at,
        from: from.into(),
        to: to.into(),
        reason: reason.clone(),
        cause_kind: cause.as_ref().map(|c| c.kind.as_str().to_string()),
        cause_output: cause.and_then(|c| c.output),
    };
    match writer.transition(stored).await {
        Ok(_) => {}
        // Its shard is another replica's now: that one judges, stores and alerts.
        Err(error @ crate::store::StoreError::Fenced { .. }) => {
            tracing::info!(%error, %target, "transition not stored nor alerted: the shard moved");
            return;
        }
        Err(error) => tracing::error!(%error, %target, "could not store a transition"),
    }
    // Stored first, then notified: the alert's outbox rows are committed before this
    // returns.
    let info = crate::notify::TransitionInfo {
        target: target.clone(),
        at,
        from,
        to,
        reason,
        flapping: saved.flapping,
        blocked_by,
        dependents: dependents.clone(),
    };
    notifier.transition(&info).await;
    for dependent in &dependents {
        notifier.blocked(dependent, &target).await;
    }
    // Stored first, then acted on: the recovery log follows the transition.
    if act {
        recovery.transition(&target, to);
    }
    let state = TargetState {
        target: target.clone(),
        state: saved.state,
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

/// A mark in a target's timeline that is not a judged state change (a pause, maintenance, or
/// the monitor's isolation): no outcome caused it.
fn mark(
    target: &str,
    at: SystemTime,
    from: TimelineState,
    to: TimelineState,
    reason: String,
) -> Transition {
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
