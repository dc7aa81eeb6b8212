//! Notifications: which alerts a transition creates, written to an outbox in the store
//! before any delivery, then delivered to webhooks, Slack-compatible webhooks, email and
//! commands, with retries, until each channel accepts each alert.
//!
//! - [`AlertPolicy`] (sans-IO, `handle_*(now, …)` in, [`Effect`]s out) decides: rules per target
//!   or group, reminders with backoff, flapping, maintenance windows and silences
//!   ([`Mutes`]), and the group wait in which a root cause's alert collects its dependents.
//!   Its [`Groups`] (sans-IO too) turn the alerts of targets failing together into one
//!   notification per group ([`GroupAlert`]), as Alertmanager's `group_by` does.
//! - [`Notifier`] is the thin async driver: it feeds the policy, applies its actions to the
//!   store (`store/outbox.rs`), and runs one delivery worker per channel (`worker`), so a
//!   channel that stays down holds up no other.
//! - [`Alert`] is what receivers get; docs/ALERTS.md documents its JSON, the webhook
//!   signature, the idempotency key and the delivery guarantees (at least once; exactly
//!   once for receivers that deduplicate by `Idempotency-Key`).
//!
//! What this is not: the state machine (alerts follow the transitions the engine stored),
//! or the root-cause analysis (its caller says which target is blocked by which).

mod alert;
mod channel;
mod counts;
mod group;
mod mute;
mod policy;
mod worker;

#[cfg(test)]
mod group_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::SystemTime;

use tokio::sync::{Mutex, Notify};
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use vitals_core::machine::State;

pub use alert::{Alert, AlertKind, TransitionInfo};
pub use channel::{
    Failure, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, Sender, TIMESTAMP_HEADER, escape_controls,
    is_permanent, sign, slack_body, slack_group_body,
};
pub use counts::{Delivery, DeliveryCounts};
pub use group::{GroupAlert, GroupState, GroupStatus, Groups, SUMMARY_NAMES};
pub use mute::{Mutes, is_open};
pub use policy::{AlertPolicy, AlertTarget, Effect, Track};
pub use worker::backoff;

use crate::config::Config;

/// What alerts say of each configured target, by id.
fn alert_targets(targets: &[crate::config::Target]) -> HashMap<String, AlertTarget> {
    targets
        .iter()
        .map(|t| {
            (
                t.id.clone(),
                AlertTarget {
                    name: t.name.clone(),
                    group: t.group.clone(),
                    tags: t.tags.clone(),
                    kind: t.kind.name().to_owned(),
                },
            )
        })
        .collect()
}

/// A time as alerts write it: RFC 3339 in UTC with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    alert::rfc3339::format(t)
}
use crate::store::{AlertRecord, Silence, Store, StoreError};

/// Why the notifier could not start or do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("notifications: {0}")]
    Store(#[from] StoreError),
    #[error("notifications: a store query panicked: {0}")]
    Panicked(String),
    #[error("notifications: could not build the HTTP client: {0}")]
    Http(String),
}

/// The notifier: cheap to clone; the workers stop when the last clone is dropped.
///
/// Every method takes the time from the system clock; the decisions themselves are made by
/// [`AlertPolicy`], which takes time as an argument. Methods return once the resulting alerts
/// are committed to the outbox, so a crash afterwards cannot lose them.
#[derive(Debug, Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: Mutex<AlertPolicy>,
    store: Arc<Store>,
    wakes: HashMap<String, Arc<Notify>>,
    timer: Arc<Notify>,
    /// Delivery attempts by channel and result, for `/metrics`.
    counts: Arc<DeliveryCounts>,
    /// Tells the delivery workers to stop after the attempt in hand ([`Notifier::shutdown`]).
    stop: CancellationToken,
    tasks: std::sync::Mutex<Vec<AbortHandle>>,
    workers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let tasks = self.tasks.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in tasks.drain(..) {
            task.abort();
        }
        let workers = self.workers.get_mut().unwrap_or_else(|e| e.into_inner());
        for worker in workers.drain(..) {
            worker.abort();
        }
    }
}

impl Notifier {
    /// Opens its own connection to the store in the data directory, restores what the
    /// policy remembered, and starts one delivery worker per channel (rows left pending by
    /// an earlier run are delivered first). Call it inside a tokio runtime.
    pub fn start(config: &Config) -> Result<Notifier, NotifyError> {
        let notify = &config.notify;
        let store = Arc::new(Store::open(&config.server.data_dir)?);
        let released = store.outbox_release_all()?;
        if released > 0 {
            tracing::info!(
                released,
                "alerts in flight when the monitor stopped will be sent again"
            );
        }
        let now = SystemTime::now();
        let saved: Vec<(String, Track)> = store
            .load_notify_states()?
            .into_iter()
            .filter_map(|(target, json)| match serde_json::from_str(&json) {
                Ok(track) => Some((target, track)),
                Err(error) => {
                    tracing::warn!(%target, %error, "forgetting an unreadable notification state");
                    None
                }
            })
            .collect();
        let states = store.load_states()?;
        let flagged = states
            .iter()
            .filter_map(|s| Some((s.target.clone(), s.flags.maintenance_until?)))
            .collect();
        let mutes = Mutes {
            windows: notify.maintenance.clone(),
            silences: store.silences(now)?,
            flagged,
        };
        let targets = alert_targets(&config.targets);
        let groups: Vec<GroupState> = store
            .load_notify_groups()?
            .into_iter()
            .filter_map(|(key, json)| match serde_json::from_str(&json) {
                Ok(group) => Some(group),
                Err(error) => {
                    tracing::warn!(%key, %error, "forgetting an unreadable alert group");
                    None
                }
            })
            .collect();
        let mut policy = AlertPolicy::new(notify.rules.clone(), targets, mutes, saved)
            .with_groups(Groups::new(notify.dashboard_url.clone(), groups));
        // Alerts of transitions stored just before a crash, queued now if they were not.
        for saved in &states {
            if let Some(since) = saved.since {
                policy.handle_restored(now, &saved.target, saved.state, since, saved.flapping);
            }
        }
        let mut restored = Vec::new();
        while let Some(action) = policy.poll_effect() {
            restored.push(action);
        }
        if !restored.is_empty() {
            apply(&store, restored)?;
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("vitals/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| NotifyError::Http(e.to_string()))?;

        let mut wakes = HashMap::new();
        let mut workers = Vec::new();
        let stop = CancellationToken::new();
        let counts = Arc::new(DeliveryCounts::default());
        for channel in &notify.channels {
            let wake = Arc::new(Notify::new());
            wakes.insert(channel.id.clone(), Arc::clone(&wake));
            let worker = worker::Worker {
                sender: Sender::new(channel.clone(), http.clone()),
                store: Arc::clone(&store),
                wake,
                retry_min: notify.retry_min,
                retry_max: notify.retry_max,
                counts: Arc::clone(&counts),
                stop: stop.clone(),
            };
            workers.push(tokio::spawn(worker.run()));
        }
        let inner = Arc::new(Inner {
            policy: Mutex::new(policy),
            store,
            wakes,
            timer: Arc::new(Notify::new()),
            counts,
            stop,
            tasks: std::sync::Mutex::new(Vec::new()),
            workers: std::sync::Mutex::new(workers),
        });
        let timer = tokio::spawn(timer(Arc::downgrade(&inner))).abort_handle();
        *inner.tasks.lock().unwrap_or_else(|e| e.into_inner()) = vec![timer];
        // The start-up line names the channels; this is for debugging.
        tracing::debug!(
            channels = notify.channels.len(),
            rules = notify.rules.len(),
            "notifications started"
        );
        Ok(Notifier { inner })
    }

    /// Stops the delivery workers once the attempts in hand are finished and recorded, so a
    /// delivery that succeeded is not sent again by the next run. Dropping the notifier
    /// instead cuts them where they are (a claimed row is released by the next start).
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        let workers: Vec<_> = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        for worker in workers {
            let _ = worker.await;
        }
    }

    /// Delivery attempts by channel and result since the start, for `/metrics`.
    pub fn deliveries(&self) -> Vec<(String, Delivery, u64)> {
        self.inner.counts.snapshot()
    }

    /// The open alert groups and their members, by key.
    pub async fn groups(&self) -> Vec<GroupState> {
        let policy = self.inner.policy.lock().await;
        policy.groups().into_iter().cloned().collect()
    }

    /// The notifier's store connection, for reading alerts, the outbox and silences.
    pub fn store(&self) -> Arc<Store> {
        Arc::clone(&self.inner.store)
    }

    /// A transition the monitor has stored.
    pub async fn transition(&self, info: &TransitionInfo) {
        self.inner
            .run(|p, now| p.handle_transition(now, info))
            .await;
    }

    /// A reload changed the targets: alerts name and group them as configured now.
    pub async fn set_targets(&self, targets: &[crate::config::Target]) {
        let mut policy = self.inner.policy.lock().await;
        policy.set_targets(alert_targets(targets));
    }

    /// `target` is no longer watched (see [`AlertPolicy::handle_retired`]).
    pub async fn retired(&self, target: &str) {
        self.inner.run(|p, now| p.handle_retired(now, target)).await;
    }

    /// `target`'s flapping flag changed without a transition; `state` is its state now.
    pub async fn flapping(&self, target: &str, state: State, flapping: bool, reason: &str) {
        self.inner
            .run(|p, now| p.handle_flapping(now, target, state, flapping, reason))
            .await;
    }

    /// `target`'s failure is `root`'s doing: cancel its alert if still in its group wait,
    /// and name it in `root`'s.
    pub async fn blocked(&self, target: &str, root: &str) {
        self.inner
            .run(|p, now| p.handle_blocked(now, target, root))
            .await;
    }

    /// The monitor lost its own connectivity: one `isolated` alert.
    pub async fn isolated(&self, reason: &str) {
        self.inner
            .run(|p, now| p.handle_isolation(now, true, reason))
            .await;
    }

    /// The monitor's connectivity is back: the isolation's resolution.
    pub async fn reconnected(&self, reason: &str) {
        self.inner
            .run(|p, now| p.handle_isolation(now, false, reason))
            .await;
    }

    /// Automatic recovery of `target` gave up: an `escalation` alert.
    pub async fn escalation(&self, target: &str, reason: &str) {
        self.inner
            .run(|p, now| p.handle_escalation(now, target, reason))
            .await;
    }

    /// An operator put `target` in maintenance until `until` (or took it out: `None`).
    pub async fn maintenance(&self, target: &str, until: Option<SystemTime>) {
        let mut policy = self.inner.policy.lock().await;
        match until {
            Some(until) => policy.mutes.flagged.insert(target.to_owned(), until),
            None => policy.mutes.flagged.remove(target),
        };
    }

    /// Saves a silence and applies it at once; returns it with its id.
    pub async fn add_silence(&self, mut silence: Silence) -> Result<Silence, NotifyError> {
        let mut policy = self.inner.policy.lock().await;
        let saved = silence.clone();
        silence.id = blocking(&self.inner.store, move |s| s.add_silence(&saved)).await?;
        policy.mutes.silences.push(silence.clone());
        Ok(silence)
    }

    /// Ends a silence now; `false` if there is none with that id.
    pub async fn expire_silence(&self, id: i64) -> Result<bool, NotifyError> {
        let mut policy = self.inner.policy.lock().await;
        let now = SystemTime::now();
        let found = blocking(&self.inner.store, move |s| s.expire_silence(id, now)).await?;
        policy.mutes.silences.retain(|s| s.id != id);
        Ok(found)
    }
}

impl Inner {
    /// Feeds the policy, then commits its actions to the store, in order, before returning.
    async fn run(&self, f: impl FnOnce(&mut AlertPolicy, SystemTime)) {
        // Held across the commit, so that actions reach the store in the order they were
        // decided (an update never overtakes its alert).
        let mut policy = self.policy.lock().await;
        f(&mut policy, SystemTime::now());
        let mut actions = Vec::new();
        while let Some(action) = policy.poll_effect() {
            actions.push(action);
        }
        if actions.is_empty() {
            return;
        }
        match blocking(&self.store, move |s| apply(s, actions)).await {
            Ok(channels) => {
                for channel in channels {
                    if let Some(wake) = self.wakes.get(&channel) {
                        wake.notify_one();
                    }
                }
            }
            Err(error) => tracing::error!(%error, "could not write alerts to the outbox"),
        }
        drop(policy);
        self.timer.notify_one();
    }
}

/// Applies actions to the store; returns the channels that got rows.
fn apply(store: &Store, actions: Vec<Effect>) -> Result<Vec<String>, StoreError> {
    let mut woken = Vec::new();
    for action in actions {
        match action {
            Effect::Enqueue {
                alert,
                channels,
                due,
                muted_by,
                group,
            } => {
                let record = AlertRecord {
                    key: alert.key.clone(),
                    target: alert.target.clone(),
                    kind: alert.kind.as_str().to_owned(),
                    at: alert.at,
                    payload: alert.to_json(),
                    muted_by: muted_by.clone(),
                    group_key: group.clone(),
                };
                store.enqueue_alert(&record, &channels, due)?;
                match (&muted_by, &group) {
                    (Some(why), _) => {
                        tracing::info!(key = %alert.key, muted_by = %why, "alert recorded, muted")
                    }
                    (None, Some(group)) => {
                        tracing::debug!(key = %alert.key, %group, "alert listed in its group")
                    }
                    (None, None) => {
                        tracing::info!(key = %alert.key, ?channels, "alert queued");
                        woken.extend(channels);
                    }
                }
            }
            Effect::Notice {
                notice,
                channels,
                due,
            } => {
                let record = AlertRecord {
                    key: notice.key.clone(),
                    target: notice.group_key.clone(),
                    kind: notice.status.as_str().to_owned(),
                    at: notice.at,
                    payload: notice.to_json(),
                    muted_by: None,
                    group_key: Some(notice.group_key.clone()),
                };
                store.enqueue_alert(&record, &channels, due)?;
                tracing::info!(key = %notice.key, members = notice.firing.len() + notice.resolved.len(), ?channels, "group notification queued");
                woken.extend(channels);
            }
            Effect::Renotice { notice } => {
                store.update_alert_payload(&notice.key, &notice.to_json())?;
            }
            Effect::SaveGroup { key, state } => match state {
                Some(state) => {
                    let json = serde_json::to_string(&state).unwrap_or_default();
                    store.save_notify_group(&key, &json)?;
                }
                None => store.drop_notify_group(&key)?,
            },
            Effect::Update { alert } => store.update_alert_payload(&alert.key, &alert.to_json())?,
            Effect::Cancel { key, reason } => {
                tracing::info!(%key, %reason, "alert merged into its root's");
                store.cancel_alert(&key, &reason)?;
            }
            Effect::Save { target, track } => {
                let json = serde_json::to_string(&track).unwrap_or_default();
                store.save_notify_state(&target, &json)?;
            }
        }
    }
    woken.sort();
    woken.dedup();
    Ok(woken)
}

async fn blocking<T: Send + 'static>(
    store: &Arc<Store>,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, NotifyError> {
    let store = Arc::clone(store);
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(NotifyError::Panicked(e.to_string())),
    }
}

/// Calls the policy back when a group wait ends or a reminder is due.
async fn timer(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let next = strong.policy.lock().await.poll_timeout();
        let wake = Arc::clone(&strong.timer);
        drop(strong);
        match next {
            Some(at) => {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = wake.notified() => continue,
                }
            }
            None => {
                wake.notified().await;
                continue;
            }
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        strong.run(|p, now| p.handle_timeout(now)).await;
    }
}
