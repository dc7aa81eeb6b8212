//! [`AlertPolicy`]: which alerts exist, for whom, when, and which are muted. Sans-IO, in the
//! style of `quinn-proto`: inputs are `handle_*(now, …)`, outputs are [`AlertPolicy::poll_effect`],
//! and [`AlertPolicy::poll_timeout`] says when to call [`AlertPolicy::handle_timeout`]. Time only
//! moves forward as the caller says; nothing here reads a clock, a socket or a file.
//!
//! The rules, per target (the first `[[rule]]` that covers it decides):
//!
//! - A transition into a state whose kind the rule lists (`down`, `unhealthy`, `degraded`)
//!   creates one alert, unless the same kind was the last one sent. A transition back to
//!   healthy creates `recovered` if a problem alert was sent (or the target was blocked by a
//!   root cause, whose alert covered it). Intermediate states (failing, recovering) create
//!   nothing.
//! - Every new alert waits `group_wait` before delivery. Meanwhile [`AlertPolicy::handle_blocked`]
//!   can cancel it (its failure is another target's doing) and names it in the root's alert
//!   instead; a transition that arrives already `blocked_by` a root creates no alert of its
//!   own. Its resolution is still sent.
//! - While down, reminders follow after `repeat`, then twice as long each time, at most
//!   `repeat_max` apart.
//! - A target that starts flapping sends one `flapping` notice and nothing else until the
//!   machine says it settled; then its state is compared with what was last sent.
//! - A muted alert (maintenance flag, window, silence: see `mute`) is recorded with its
//!   reason and sent nowhere. A resolution is sent if its problem alert was, muted or not.
//! - Under a rule that groups (`group_by` other than `["..."]`), problem alerts and
//!   resolutions that would be sent are recorded and handed to [`Groups`], which sends one
//!   notification per group (see `group`); reminders are the group's. Root-cause merging
//!   comes first: a blocked target never joins a group, and one whose alert is cancelled
//!   as blocked leaves its group.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertKind, TransitionInfo, unix_ms};
use super::group::{GroupAlert, GroupState, Groups, Joined, labels_of};
use super::mute::Mutes;
use crate::config::Rule;

/// A target as the policy needs it: its name and group, for alerts and matching; its tags
/// and kind, for `group_by`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertTarget {
    pub name: String,
    pub group: Option<String>,
    pub tags: Vec<String>,
    /// `http`, `tcp`, `heartbeat`…
    pub kind: String,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Record the alert; unless `muted_by`, queue it for `channels`, deliverable at `due`.
    /// `group`: the group whose notifications list it (then `channels` is empty).
    Enqueue {
        alert: Alert,
        channels: Vec<String>,
        due: SystemTime,
        muted_by: Option<String>,
        group: Option<String>,
    },
    /// Record a group's notification and queue it for `channels`, deliverable at `due`.
    Notice {
        notice: GroupAlert,
        channels: Vec<String>,
        due: SystemTime,
    },
    /// A group's notification still in its group wait lists other members now.
    Renotice { notice: GroupAlert },
    /// Save a group (for a restart), or forget it (`None`: it closed).
    SaveGroup {
        key: String,
        state: Option<GroupState>,
    },
    /// An alert still in its group wait names more dependents now.
    Update { alert: Alert },
    /// An alert (or a group's notification) in its group wait was merged into its root's:
    /// deliver it nowhere.
    Cancel { key: String, reason: String },
    /// Save what the policy remembers of a target (for a restart).
    Save { target: String, track: Track },
}

/// What the policy remembers of one target. Saved across restarts, so that a target that
/// went down before a restart sends its resolution after it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Track {
    /// The last problem alert created (`down`, `unhealthy`, `degraded`), until resolved.
    pub open: Option<AlertKind>,
    /// Whether a channel was told of the open problem (it was not muted), so that its
    /// resolution is due.
    pub sent: bool,
    /// The root cause the open problem is blocked by.
    pub blocked_by: Option<String>,
    pub flapping: bool,
    /// Dependents named in (or waiting for) this target's alert.
    pub dependents: Vec<String>,
    /// When the current outage was first alerted, for reminder keys.
    pub down_since: Option<SystemTime>,
    pub reminders: u32,
    pub next_reminder: Option<SystemTime>,
}

/// An alert in its group wait.
#[derive(Debug, Clone)]
struct Pending {
    alert: Alert,
    due: SystemTime,
}

/// The notification policy. See the module documentation for its rules.
#[derive(Debug)]
pub struct AlertPolicy {
    rules: Vec<Rule>,
    targets: HashMap<String, AlertTarget>,
    /// Public so the driver can replace silences and flags as they change.
    pub mutes: Mutes,
    tracks: HashMap<String, Track>,
    pending: HashMap<String, Pending>,
    groups: Groups,
    actions: VecDeque<Effect>,
}

impl AlertPolicy {
    /// A policy for `rules` (each with its own group wait), remembering `saved` targets;
    /// its groups start empty (see [`AlertPolicy::with_groups`]).
    pub fn new(
        rules: Vec<Rule>,
        targets: HashMap<String, AlertTarget>,
        mutes: Mutes,
        saved: impl IntoIterator<Item = (String, Track)>,
    ) -> AlertPolicy {
        AlertPolicy {
            rules,
            targets,
            mutes,
            tracks: saved.into_iter().collect(),
            pending: HashMap::new(),
            groups: Groups::default(),
            actions: VecDeque::new(),
        }
    }

    /// The same, with the groups open before a restart and the dashboard's address for
    /// their links.
    pub fn with_groups(mut self, groups: Groups) -> AlertPolicy {
        self.groups = groups;
        self
    }

    /// The open groups, for the API and the dashboard.
    pub fn groups(&self) -> Vec<&GroupState> {
        self.groups.states()
    }

    /// The next thing to do, oldest first.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.actions.pop_front()
    }

    /// When [`AlertPolicy::handle_timeout`] has something to do: a group wait ends or a reminder
    /// is due.
    pub fn poll_timeout(&self) -> Option<SystemTime> {
        let pending = self.pending.values().map(|p| p.due);
        let reminders = self.tracks.values().filter_map(|t| t.next_reminder);
        let groups = self.groups.poll_timeout(&self.rules);
        pending.chain(reminders).chain(groups).min()
    }

    /// What the policy remembers of `target`.
    pub fn track(&self, target: &str) -> Option<&Track> {
        self.tracks.get(target)
    }

    /// The target's name and group; a check's row (`svc/db`) has its service's group.
    fn info(&self, target: &str) -> AlertTarget {
        if let Some(info) = self.targets.get(target) {
            return info.clone();
        }
        let parent = target
            .split_once('/')
            .and_then(|(parent, _)| self.targets.get(parent))
            .cloned()
            .unwrap_or_default();
        AlertTarget {
            name: target.to_owned(),
            ..parent
        }
    }

    fn rule(&self, target: &str, group: Option<&str>) -> Option<&Rule> {
        self.rule_at(target, group).map(|(_, rule)| rule)
    }

    /// The rule that decides for a target, and its place in the file.
    fn rule_at(&self, target: &str, group: Option<&str>) -> Option<(usize, &Rule)> {
        self.rules
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(target, group))
    }

    /// Whether per-target reminders are the rule's (not its groups').
    fn reminds(rule: &Rule) -> Option<Duration> {
        rule.repeat.filter(|_| rule.group_by.labels().is_none())
    }

    fn alert(&self, kind: AlertKind, target: &str, at: SystemTime, key: String) -> Alert {
        let info = self.info(target);
        Alert {
            key,
            kind,
            target: target.to_owned(),
            name: info.name,
            group: info.group,
            from: None,
            to: None,
            reason: String::new(),
            at,
            root: None,
            dependents: Vec::new(),
        }
    }

    /// Queues an alert for the rule's channels (or records it muted), with `wait` before
    /// delivery; returns whether it will be delivered.
    fn enqueue(
        &mut self,
        alert: Alert,
        channels: Vec<String>,
        muted_by: Option<String>,
        wait: Duration,
    ) -> bool {
        let due = alert.at.checked_add(wait).unwrap_or(alert.at);
        let delivered = muted_by.is_none() && !channels.is_empty();
        if delivered && !wait.is_zero() {
            self.pending.insert(
                alert.key.clone(),
                Pending {
                    alert: alert.clone(),
                    due,
                },
            );
        }
        self.actions.push_back(Effect::Enqueue {
            alert,
            channels,
            due,
            muted_by,
            group: None,
        });
        delivered
    }

    /// A problem alert or a resolution under `rule`: [`AlertPolicy::enqueue`]d on its own,
    /// or, when the rule groups and the alert would be sent, recorded and handed to its
    /// group. Returns whether it will be delivered (alone or in its group).
    fn deliver(
        &mut self,
        now: SystemTime,
        alert: Alert,
        rule: &Rule,
        muted_by: Option<String>,
        wait: Duration,
    ) -> bool {
        let labels = rule.group_by.labels();
        let Some(labels) = labels.filter(|_| muted_by.is_none() && !rule.channels.is_empty())
        else {
            return self.enqueue(alert, rule.channels.clone(), muted_by, wait);
        };
        let info = self.info(&alert.target);
        let index = self
            .rule_at(&alert.target, info.group.as_deref())
            .map_or(0, |(i, _)| i);
        let values = labels_of(labels, info.group.as_deref(), &info.tags, &info.kind);
        let mut out = Vec::new();
        // What fell due before `now` happens first (a first notification past its due
        // time takes no more members).
        self.groups.handle_timeout(now, &self.rules, &mut out);
        let joined = if alert.kind == AlertKind::Recovered {
            self.groups
                .resolve(now, index, rule, values, alert.clone(), &mut out)
        } else {
            self.groups
                .fire(now, index, rule, values, alert.clone(), &mut out)
        };
        let due = alert.at.checked_add(wait).unwrap_or(alert.at);
        let (group, muted_by) = match joined {
            Joined::Group(key) => (Some(key), None),
            Joined::Dropped(why) => (None, Some(why)),
        };
        let delivered = group.is_some();
        if delivered && !wait.is_zero() && alert.kind != AlertKind::Recovered {
            // Still cancellable as blocked by a root during the wait.
            self.pending.insert(
                alert.key.clone(),
                Pending {
                    alert: alert.clone(),
                    due,
                },
            );
        }
        self.actions.push_back(Effect::Enqueue {
            alert,
            channels: Vec::new(),
            due,
            muted_by,
            group,
        });
        self.actions.extend(out);
        delivered
    }

    fn save(&mut self, target: &str) {
        if let Some(track) = self.tracks.get(target) {
            self.actions.push_back(Effect::Save {
                target: target.to_owned(),
                track: track.clone(),
            });
        }
    }

    /// A transition the monitor stored.
    pub fn handle_transition(&mut self, now: SystemTime, t: &TransitionInfo) {
        let info = self.info(&t.target);
        let Some(rule) = self.rule(&t.target, info.group.as_deref()).cloned() else {
            return;
        };
        let mut track = self.tracks.remove(&t.target).unwrap_or_default();
        self.transition(now, t, &rule, &info, &mut track);
        self.tracks.insert(t.target.clone(), track);
        self.save(&t.target);
    }

    fn transition(
        &mut self,
        now: SystemTime,
        t: &TransitionInfo,
        rule: &Rule,
        info: &AlertTarget,
        track: &mut Track,
    ) {
        let muted = self.mutes.reason(&t.target, info.group.as_deref(), now);
        let mut alert = self.alert(AlertKind::Flapping, &t.target, t.at, String::new());
        alert.from = Some(t.from.as_str().to_owned());
        alert.to = Some(t.to.as_str().to_owned());
        alert.reason = t.reason.clone();

        if t.flapping {
            if !track.flapping {
                track.flapping = true;
                track.next_reminder = None;
                if rule.on.contains(&AlertKind::Flapping) {
                    alert.key = format!("{}:flapping:{}", t.target, unix_ms(t.at));
                    self.enqueue(alert, rule.channels.clone(), muted, Duration::ZERO);
                }
            }
            return;
        }
        // Settled (or never flapped): compare the state with what was last sent.
        let settled = std::mem::replace(&mut track.flapping, false);
        let Some(kind) = AlertKind::of_state(t.to) else {
            return;
        };
        if kind == AlertKind::Recovered {
            if track.open.is_none() {
                // A root named by `handle_blocked` before any problem of this target was
                // seen is over now.
                track.blocked_by = None;
                return;
            }
            let due = track.sent || track.blocked_by.is_some();
            alert.kind = AlertKind::Recovered;
            alert.key = format!("{}:recovered:{}", t.target, unix_ms(t.at));
            alert.root = track.blocked_by.take();
            alert.dependents = std::mem::take(&mut track.dependents);
            *track = Track::default();
            if rule.on.contains(&AlertKind::Recovered) {
                let muted_by = if due {
                    None
                } else {
                    Some(muted.unwrap_or_else(|| "its problem alert was muted".to_owned()))
                };
                self.deliver(now, alert, rule, muted_by, Duration::ZERO);
            }
            return;
        }
        if let Some(root) = &t.blocked_by {
            // Blocked: recorded, sent nowhere, named in the root's alert.
            track.open = Some(kind);
            track.sent = false;
            track.blocked_by = Some(root.clone());
            alert.kind = kind;
            alert.key = format!("{}:{}:{}", t.target, kind.as_str(), unix_ms(t.at));
            alert.root = Some(root.clone());
            self.enqueue(
                alert,
                Vec::new(),
                Some(format!("blocked by {root}")),
                Duration::ZERO,
            );
            self.attach(now, root, &t.target);
            return;
        }
        if !rule.on.contains(&kind) || track.open == Some(kind) {
            // Settled down, still down: the reminders stopped while it flapped resume.
            if settled
                && track.open == Some(AlertKind::Down)
                && let Some(repeat) = Self::reminds(rule)
            {
                track.next_reminder = now.checked_add(repeat);
            }
            return;
        }
        for dependent in &t.dependents {
            if !track.dependents.contains(dependent) {
                track.dependents.push(dependent.clone());
            }
        }
        alert.kind = kind;
        alert.key = format!("{}:{}:{}", t.target, kind.as_str(), unix_ms(t.at));
        alert.dependents = track.dependents.clone();
        track.open = Some(kind);
        track.blocked_by = None;
        let sent = self.deliver(now, alert, rule, muted, rule.group_wait);
        track.sent |= sent;
        track.next_reminder = None;
        if kind == AlertKind::Down
            && let Some(repeat) = Self::reminds(rule)
        {
            track.down_since = Some(t.at);
            track.reminders = 0;
            track.next_reminder = t.at.checked_add(repeat);
        }
    }

    /// The state machine's flapping flag changed without a transition (it settles after a
    /// quiet spell): the same as a transition to the state it is in.
    pub fn handle_flapping(
        &mut self,
        now: SystemTime,
        target: &str,
        state: vitals_core::machine::State,
        flapping: bool,
        reason: &str,
    ) {
        let info = TransitionInfo {
            target: target.to_owned(),
            at: now,
            from: state,
            to: state,
            reason: reason.to_owned(),
            flapping,
            blocked_by: None,
            dependents: Vec::new(),
        };
        self.handle_transition(now, &info);
    }

    /// Reconciles with a target's state as the store saved it, at start-up. A monitor
    /// killed between storing a transition and queueing its alert restores the state
    /// without the transition; this creates the alert the transition would have created,
    /// under the same key (the key is made of the transition's time, which the store keeps
    /// as `since`), so an alert that was queued after all is not queued twice.
    pub fn handle_restored(
        &mut self,
        now: SystemTime,
        target: &str,
        state: vitals_core::machine::State,
        since: SystemTime,
        flapping: bool,
    ) {
        let open = self.tracks.get(target).and_then(|t| t.open);
        let wanted = AlertKind::of_state(state);
        let consistent = match wanted {
            None => true,
            Some(AlertKind::Recovered) => open.is_none(),
            Some(kind) => open == Some(kind),
        };
        if consistent || flapping {
            return;
        }
        let info = TransitionInfo {
            target: target.to_owned(),
            at: since,
            from: vitals_core::machine::State::Unknown,
            to: state,
            reason: format!(
                "{} since {} (found after a restart)",
                state.as_str(),
                super::alert::rfc3339::format(since)
            ),
            flapping: false,
            blocked_by: self.tracks.get(target).and_then(|t| t.blocked_by.clone()),
            dependents: Vec::new(),
        };
        self.handle_transition(now, &info);
    }

    /// Names `dependent` in `root`'s alert: the pending one if it is still in its group
    /// wait, else the next one (and its resolution).
    fn attach(&mut self, now: SystemTime, root: &str, dependent: &str) {
        let track = self.tracks.entry(root.to_owned()).or_default();
        if !track.dependents.iter().any(|d| d == dependent) {
            track.dependents.push(dependent.to_owned());
        }
        let dependents = track.dependents.clone();
        if let Some(pending) = self
            .pending
            .values_mut()
            .find(|p| p.alert.target == root && p.alert.kind != AlertKind::Recovered)
        {
            pending.alert.dependents = dependents;
            let alert = pending.alert.clone();
            self.actions.push_back(Effect::Update {
                alert: alert.clone(),
            });
            let mut out = Vec::new();
            self.groups.handle_timeout(now, &self.rules, &mut out);
            self.groups.update(now, &alert, &mut out);
            self.actions.extend(out);
        }
        self.save(root);
    }

    /// The root-cause analysis found that `target`'s failure is `root`'s doing: its alert,
    /// if still in its group wait, is cancelled, and `root`'s alert names it.
    pub fn handle_blocked(&mut self, now: SystemTime, target: &str, root: &str) {
        let keys: Vec<String> = self.pending_keys(target);
        let track = self.tracks.entry(target.to_owned()).or_default();
        track.blocked_by = Some(root.to_owned());
        if !keys.is_empty() {
            // Its own alert never went out: only the blocked resolution is due.
            track.sent = false;
        }
        let reason = format!("blocked by {root}");
        for key in keys {
            self.pending.remove(&key);
            self.actions.push_back(Effect::Cancel {
                key,
                reason: reason.clone(),
            });
            let mut out = Vec::new();
            self.groups.handle_timeout(now, &self.rules, &mut out);
            self.groups.leave(now, target, &reason, &mut out);
            self.actions.extend(out);
        }
        self.save(target);
        self.attach(now, root, target);
    }

    /// The keys of `target`'s alerts still in their group wait.
    fn pending_keys(&self, target: &str) -> Vec<String> {
        self.pending
            .iter()
            .filter(|(_, p)| p.alert.target == target)
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// A reload changed the targets: names, groups, tags and kinds as configured now.
    pub fn set_targets(&mut self, targets: HashMap<String, AlertTarget>) {
        self.targets = targets;
    }

    /// `target` is no longer watched (a reload or discovery removed it): its alerts still in
    /// their group wait are cancelled, it leaves its alert group, and what the policy
    /// remembered of it (reminders included) is forgotten. No resolution is sent: nothing
    /// more will be known of it.
    pub fn handle_retired(&mut self, now: SystemTime, target: &str) {
        let reason = "removed from the configuration".to_owned();
        for key in self.pending_keys(target) {
            self.pending.remove(&key);
            self.actions.push_back(Effect::Cancel {
                key,
                reason: reason.clone(),
            });
        }
        let mut out = Vec::new();
        self.groups.leave(now, target, &reason, &mut out);
        self.actions.extend(out);
        if self.tracks.remove(target).is_some() {
            self.actions.push_back(Effect::Save {
                target: target.to_owned(),
                track: Track::default(),
            });
        }
    }

    /// The monitor lost (`isolated`) or regained its connectivity. Goes to the channels of
    /// every rule whose `on` lists `isolated`, whatever targets it covers.
    pub fn handle_isolation(&mut self, now: SystemTime, isolated: bool, reason: &str) {
        let (kind, name) = if isolated {
            (AlertKind::Isolated, "isolated")
        } else {
            (AlertKind::Recovered, "reconnected")
        };
        let mut channels: Vec<String> = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| r.on.contains(&AlertKind::Isolated))
        {
            for channel in &rule.channels {
                if !channels.contains(channel) {
                    channels.push(channel.clone());
                }
            }
        }
        let key = format!("monitor:{name}:{}", unix_ms(now));
        let mut alert = self.alert(kind, "monitor", now, key);
        alert.reason = reason.to_owned();
        let muted = self.mutes.reason("monitor", None, now);
        self.enqueue(alert, channels, muted, Duration::ZERO);
    }

    /// Automatic recovery of `target` gave up: a person is needed.
    pub fn handle_escalation(&mut self, now: SystemTime, target: &str, reason: &str) {
        let info = self.info(target);
        let Some(rule) = self.rule(target, info.group.as_deref()).cloned() else {
            return;
        };
        if !rule.on.contains(&AlertKind::Escalation) {
            return;
        }
        let key = format!("{target}:escalation:{}", unix_ms(now));
        let mut alert = self.alert(AlertKind::Escalation, target, now, key);
        alert.reason = reason.to_owned();
        let muted = self.mutes.reason(target, info.group.as_deref(), now);
        self.enqueue(alert, rule.channels.clone(), muted, Duration::ZERO);
    }

    /// Ends group waits and sends due reminders.
    pub fn handle_timeout(&mut self, now: SystemTime) {
        self.pending.retain(|_, p| p.due > now);
        self.mutes.prune(now);
        let mut due: Vec<String> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.next_reminder.is_some_and(|at| at <= now))
            .map(|(target, _)| target.clone())
            .collect();
        due.sort();
        for target in due {
            self.remind(now, &target);
        }
        let mut out = Vec::new();
        self.groups.handle_timeout(now, &self.rules, &mut out);
        self.actions.extend(out);
    }

    fn remind(&mut self, now: SystemTime, target: &str) {
        let info = self.info(target);
        let rule = self.rule(target, info.group.as_deref()).cloned();
        let Some(mut track) = self.tracks.remove(target) else {
            return;
        };
        track.next_reminder = None;
        if let Some(rule) = rule.filter(|_| !track.flapping && track.open == Some(AlertKind::Down))
            && let Some(repeat) = rule.repeat
        {
            track.reminders += 1;
            let since = track.down_since.unwrap_or(now);
            let key = format!("{target}:reminder:{}:{}", unix_ms(since), track.reminders);
            let mut alert = self.alert(AlertKind::Reminder, target, now, key);
            alert.to = Some("down".to_owned());
            alert.dependents = track.dependents.clone();
            let minutes = now.duration_since(since).unwrap_or_default().as_secs() / 60;
            alert.reason = format!("down for {minutes} min (reminder {})", track.reminders);
            if rule.on.contains(&AlertKind::Reminder) {
                let muted = self.mutes.reason(target, info.group.as_deref(), now);
                track.sent |= self.enqueue(alert, rule.channels.clone(), muted, Duration::ZERO);
            }
            let factor = 2u32.saturating_pow(track.reminders.min(31));
            let gap = repeat.saturating_mul(factor).min(rule.repeat_max);
            track.next_reminder = now.checked_add(gap);
        }
        self.tracks.insert(target.to_owned(), track);
        self.save(target);
    }
}
