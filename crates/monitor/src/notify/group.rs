//! [`Groups`]: simultaneous alerts of one rule sent as one notification per group, as
//! Alertmanager's aggregation groups do. Sans-IO like [`AlertPolicy`](super::AlertPolicy),
//! which owns it: members come in with their `now`, notifications go out as
//! [`Effect`]s, and [`Groups::poll_timeout`] says when the next flush is due.
//!
//! The rules, per group (a rule and the values of its `group_by` labels):
//!
//! - The first member opens the group; its first notification is written to the outbox at
//!   once, due `group_wait` later, and every member that joins (or leaves, merged into its
//!   root's alert) before then rewrites it. A `kill -9` during the wait therefore finds one
//!   row listing every member handed over so far.
//! - After that, the group is looked at every `group_interval` (ticks counted from the
//!   first notification): if members joined or recovered since the last notification, one
//!   update lists every member still firing and those resolved since.
//! - With `repeat` (and `reminder` in the rule's `on`), a group with firing members that did
//!   not change is sent again after `repeat`, then twice as long each time, at most
//!   `repeat_max` apart; checked at the ticks, so reminders fall on a tick.
//! - A group whose last members were resolved sends that resolution and closes; the next
//!   failure opens a new group (a new key).
//!
//! Every notification's idempotency key is the group's key and a sequence number
//! (`rule0/group=shop/1764064800123:2`): the key names the group instance (its rule, its
//! labels, when it opened), so a later outage of the same group never reuses a key.
//!
//! What this is not: the decision whether a target alerts (the policy makes it, with
//! root-cause merging first: a blocked dependent never reaches a group), or the payload's
//! wording for people (`GroupAlert::summary`).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use super::alert::{Alert, AlertKind, unix_ms};
use super::policy::Effect;
use crate::config::{GroupLabel, Rule};

/// Member names listed in a one-line summary before "… and N more".
pub const SUMMARY_NAMES: usize = 10;

/// What a group notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupStatus {
    /// Members are failing (some may have been resolved since the last notification).
    Firing,
    /// Every member was resolved: the group closes.
    Resolved,
    /// Nothing changed for `repeat`: the firing members, again.
    Reminder,
}

impl GroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Firing => "firing",
            GroupStatus::Resolved => "resolved",
            GroupStatus::Reminder => "reminder",
        }
    }
}

/// One notification of a group, as channels receive it (docs/ALERTS.md, "Group
/// notifications").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupAlert {
    /// The idempotency key: `<group key>:<sequence>`.
    pub key: String,
    pub status: GroupStatus,
    /// The group instance: `rule<N>/<label>=<value>…/<opened, unix ms>`.
    pub group_key: String,
    /// 1 for the first notification of the group, then 2, 3…
    pub sequence: u32,
    /// The `group_by` labels and this group's values (`{"group": "shop"}`).
    pub labels: BTreeMap<String, String>,
    /// When this notification was made, RFC 3339 in UTC with milliseconds.
    #[serde(with = "super::alert::rfc3339")]
    pub at: SystemTime,
    /// One line for people: "shop: 500 targets down — api-1, api-2, … and 490 more".
    pub summary: String,
    /// Every member still in trouble, by target id: each its own alert, as a target's
    /// notification would carry it (a root's names its dependents).
    pub firing: Vec<Alert>,
    /// Members resolved since the previous notification.
    pub resolved: Vec<Alert>,
    /// The dashboard's page of this group's members.
    pub dashboard: String,
}

impl GroupAlert {
    /// The body of a webhook and the stdin of a command.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Several lines for people: the summary, then every member (a mail's body).
    pub fn text(&self) -> String {
        let mut text = format!("{}\n\n", self.summary);
        for (title, members) in [("firing", &self.firing), ("resolved", &self.resolved)] {
            if members.is_empty() {
                continue;
            }
            text.push_str(&format!("{title} ({}):\n", members.len()));
            for alert in members {
                text.push_str(&format!("- {}", member_line(alert)));
                text.push('\n');
            }
            text.push('\n');
        }
        text.push_str(&format!("dashboard: {}\n", self.dashboard));
        text.push_str(&format!("idempotency key: {}\n", self.key));
        text
    }
}

/// One member for people: `api-1 down (3 consecutive failures) — 2 dependent(s): a, b`.
fn member_line(alert: &Alert) -> String {
    let mut line = format!("{} {}", alert.target, alert.kind.as_str());
    if !alert.reason.is_empty() {
        line.push_str(&format!(" ({})", alert.reason));
    }
    if !alert.dependents.is_empty() {
        line.push_str(&format!(
            " — {} dependent(s): {}",
            alert.dependents.len(),
            alert.dependents.join(", ")
        ));
    }
    if let Some(root) = &alert.root {
        line.push_str(&format!(" (was blocked by {root})"));
    }
    line
}

/// A group as it is remembered, across restarts too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupState {
    pub key: String,
    /// The rule's place in the file.
    pub rule: usize,
    pub labels: BTreeMap<String, String>,
    pub channels: Vec<String>,
    pub opened: SystemTime,
    /// When the first notification is due: `group_wait` after `opened`.
    pub due: SystemTime,
    /// The last sequence number used (the notification in the outbox).
    pub sequence: u32,
    /// Whether the first notification's `group_wait` is over.
    pub flushed: bool,
    /// The next tick at which a changed group is notified.
    pub next_tick: SystemTime,
    /// Members joined or resolved since the last notification.
    pub changed: bool,
    pub firing: BTreeMap<String, Alert>,
    pub resolved: BTreeMap<String, Alert>,
    /// Reminders sent since the last change, and when the next is due.
    pub reminders: u32,
    pub next_repeat: Option<SystemTime>,
    /// A member joined or left within [`LATE`] of the first notification's due time: a
    /// delivery may have started with the row as it was, so the next tick sends an update.
    #[serde(default)]
    pub late: bool,
}

/// See [`GroupState::late`]: far longer than writing a row takes.
const LATE: Duration = Duration::from_secs(1);

impl GroupState {
    /// The first tick at or after `at`.
    fn tick_at_or_after(&self, at: SystemTime, interval: Duration) -> SystemTime {
        let Ok(ahead) = at.duration_since(self.next_tick) else {
            return self.next_tick;
        };
        let interval_ms = interval.as_millis().max(1);
        let ticks = ahead.as_millis().div_ceil(interval_ms);
        let ms = u64::try_from(ticks.saturating_mul(interval_ms)).unwrap_or(u64::MAX);
        self.next_tick
            .checked_add(Duration::from_millis(ms))
            .unwrap_or(self.next_tick)
    }
}

/// What became of an alert handed to [`Groups`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// Listed in this group's notifications.
    Group(String),
    /// Sent nowhere, for this reason (it recovered before its failure was announced).
    Dropped(String),
}

/// The open groups of every grouping rule. See the module documentation.
#[derive(Debug, Default)]
pub struct Groups {
    /// By group label (rule and values), without the opening time.
    open: HashMap<String, GroupState>,
    /// Which group lists a target, by target id.
    member_of: HashMap<String, String>,
    /// The dashboard's public address, or "" for links that are paths.
    dashboard_url: String,
}

impl Groups {
    pub fn new(dashboard_url: Option<String>, saved: impl IntoIterator<Item = GroupState>) -> Self {
        let mut groups = Groups {
            dashboard_url: dashboard_url.unwrap_or_default(),
            ..Groups::default()
        };
        for state in saved {
            let id = id(state.rule, &state.labels);
            for target in state.firing.keys().chain(state.resolved.keys()) {
                groups.member_of.insert(target.clone(), id.clone());
            }
            groups.open.insert(id, state);
        }
        groups
    }

    /// The open groups, for the API and the dashboard, by key.
    pub fn states(&self) -> Vec<&GroupState> {
        let mut states: Vec<&GroupState> = self.open.values().collect();
        states.sort_by(|a, b| a.key.cmp(&b.key));
        states
    }

    /// When [`Groups::handle_timeout`] has something to do.
    pub fn poll_timeout(&self, rules: &[Rule]) -> Option<SystemTime> {
        self.open
            .values()
            .filter_map(|g| {
                let rule = rules.get(g.rule)?;
                if !g.flushed {
                    return Some(g.due);
                }
                let mut due = None;
                if g.changed || g.firing.is_empty() {
                    due = Some(g.next_tick);
                }
                if let Some(repeat) = g.next_repeat {
                    let at = g.tick_at_or_after(repeat, rule.group_interval);
                    due = Some(due.map_or(at, |d: SystemTime| d.min(at)));
                }
                due
            })
            .min()
    }

    /// A problem alert of a target covered by the grouping rule `index`: it joins (or
    /// updates its entry in) its group.
    pub fn fire(
        &mut self,
        now: SystemTime,
        index: usize,
        rule: &Rule,
        labels: BTreeMap<String, String>,
        alert: Alert,
        out: &mut Vec<Effect>,
    ) -> Joined {
        let target = alert.target.clone();
        let group = self.group(now, alert.at, index, rule, labels, out);
        group.resolved.remove(&target);
        group.firing.insert(target.clone(), alert);
        group.changed = true;
        let key = group.key.clone();
        let id = id(index, &group.labels);
        self.member_of.insert(target, id.clone());
        self.rewrite(&id, now, out);
        Joined::Group(key)
    }

    /// A resolution (`recovered`) of a target covered by the grouping rule `index`.
    pub fn resolve(
        &mut self,
        now: SystemTime,
        index: usize,
        rule: &Rule,
        labels: BTreeMap<String, String>,
        alert: Alert,
        out: &mut Vec<Effect>,
    ) -> Joined {
        let target = alert.target.clone();
        if let Some(id) = self.member_of.get(&target).cloned()
            && let Some(group) = self.open.get_mut(&id)
            && !group.flushed
            && group.firing.remove(&target).is_some()
        {
            // Failed and recovered inside the group wait: nobody was told, nobody needs
            // the all-clear.
            self.member_of.remove(&target);
            let key = group.key.clone();
            self.rewrite(&id, now, out);
            return Joined::Dropped(format!("recovered before group {key} was notified"));
        }
        let group = self.group(now, alert.at, index, rule, labels, out);
        group.firing.remove(&target);
        group.resolved.insert(target.clone(), alert);
        group.changed = true;
        let key = group.key.clone();
        let id = id(index, &group.labels);
        self.member_of.insert(target, id.clone());
        self.rewrite(&id, now, out);
        Joined::Group(key)
    }

    /// A member's alert changed before its group's first notification went out (a root
    /// named more dependents): the pending notification says so too. Later, the member's
    /// entry is kept current for the next notification, which it does not cause.
    pub fn update(&mut self, now: SystemTime, alert: &Alert, out: &mut Vec<Effect>) {
        let Some(id) = self.member_of.get(&alert.target).cloned() else {
            return;
        };
        let Some(group) = self.open.get_mut(&id) else {
            return;
        };
        if let Some(entry) = group.firing.get_mut(&alert.target)
            && entry.key == alert.key
        {
            *entry = alert.clone();
            self.rewrite(&id, now, out);
        }
    }

    /// A member turned out to be blocked by a root cause: it leaves its group (the root's
    /// alert names it). A group left empty in its wait is cancelled.
    pub fn leave(&mut self, now: SystemTime, target: &str, reason: &str, out: &mut Vec<Effect>) {
        let Some(id) = self.member_of.remove(target) else {
            return;
        };
        let Some(group) = self.open.get_mut(&id) else {
            return;
        };
        if group.firing.remove(target).is_none() {
            return;
        }
        if !group.flushed && group.firing.is_empty() && group.resolved.is_empty() {
            out.push(Effect::Cancel {
                key: notice_key(group),
                reason: reason.to_owned(),
            });
            let key = group.key.clone();
            self.open.remove(&id);
            out.push(Effect::SaveGroup { key, state: None });
            return;
        }
        if group.flushed {
            group.changed = true;
        }
        self.rewrite(&id, now, out);
    }

    /// Ends group waits and sends what the ticks due at `now` owe.
    pub fn handle_timeout(&mut self, now: SystemTime, rules: &[Rule], out: &mut Vec<Effect>) {
        let mut ids: Vec<String> = self.open.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(mut group) = self.open.remove(&id) else {
                continue;
            };
            let Some(rule) = rules.get(group.rule) else {
                continue;
            };
            let mut keep = true;
            if !group.flushed {
                let due = group.due;
                if due <= now {
                    // The first notification is in the outbox already, due now.
                    group.flushed = true;
                    group.next_tick = due.checked_add(rule.group_interval).unwrap_or(due);
                    sent(&mut group, rule, due, false);
                    group.changed = std::mem::take(&mut group.late);
                    keep = !group.firing.is_empty();
                    out.push(Effect::SaveGroup {
                        key: group.key.clone(),
                        state: keep.then(|| group.clone()),
                    });
                }
            } else if group.next_tick <= now {
                let tick = latest_tick(&group, now, rule.group_interval);
                let reminder = !group.changed
                    && !group.firing.is_empty()
                    && group.next_repeat.is_some_and(|at| at <= now);
                if !group.changed && !reminder && !group.firing.is_empty() {
                    // Nothing to say: the tick passes unrecorded (ticks stay on their grid).
                    self.open.insert(id, group);
                    continue;
                }
                if group.changed || reminder {
                    group.sequence += 1;
                    let status = if group.firing.is_empty() {
                        GroupStatus::Resolved
                    } else if reminder {
                        GroupStatus::Reminder
                    } else {
                        GroupStatus::Firing
                    };
                    let notice = self.notice(&group, now, status);
                    out.push(Effect::Notice {
                        notice,
                        channels: group.channels.clone(),
                        due: now,
                    });
                    sent(&mut group, rule, now, reminder);
                }
                group.next_tick = tick.checked_add(rule.group_interval).unwrap_or(tick);
                keep = !group.firing.is_empty();
                out.push(Effect::SaveGroup {
                    key: group.key.clone(),
                    state: keep.then(|| group.clone()),
                });
            }
            if keep {
                self.open.insert(id, group);
            } else {
                self.member_of.retain(|_, g| *g != id);
            }
        }
    }

    /// The open group for these labels, opened now (its first notification enqueued, due
    /// `group_wait` later) if there is none. Its key carries `stamp`, the time of the alert
    /// that opened it: an alert queued again after a crash (under its own key, made of the
    /// transition's time) opens a group of the same key, whose notification the outbox
    /// already holds.
    fn group(
        &mut self,
        now: SystemTime,
        stamp: SystemTime,
        index: usize,
        rule: &Rule,
        labels: BTreeMap<String, String>,
        out: &mut Vec<Effect>,
    ) -> &mut GroupState {
        let id = id(index, &labels);
        if !self.open.contains_key(&id) {
            let state = GroupState {
                key: format!("{id}/{}", unix_ms(stamp)),
                rule: index,
                labels,
                channels: rule.channels.clone(),
                opened: now,
                due: now.checked_add(rule.group_wait).unwrap_or(now),
                sequence: 1,
                flushed: false,
                next_tick: now,
                changed: false,
                firing: BTreeMap::new(),
                resolved: BTreeMap::new(),
                reminders: 0,
                next_repeat: None,
                late: false,
            };
            let due = state.due;
            out.push(Effect::Notice {
                notice: self.notice(&state, now, GroupStatus::Firing),
                channels: state.channels.clone(),
                due,
            });
            self.open.insert(id.clone(), state);
        }
        self.open
            .get_mut(&id)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Rewrites the group's first notification while it waits, and saves the group.
    fn rewrite(&mut self, id: &str, now: SystemTime, out: &mut Vec<Effect>) {
        let Some(group) = self.open.get_mut(id) else {
            return;
        };
        if !group.flushed && group.due.duration_since(now).is_ok_and(|left| left < LATE) {
            group.late = true;
        }
        let Some(group) = self.open.get(id) else {
            return;
        };
        if !group.flushed {
            let status = if group.firing.is_empty() {
                GroupStatus::Resolved
            } else {
                GroupStatus::Firing
            };
            out.push(Effect::Renotice {
                notice: self.notice(group, now, status),
            });
        }
        out.push(Effect::SaveGroup {
            key: group.key.clone(),
            state: Some(group.clone()),
        });
    }

    fn notice(&self, group: &GroupState, now: SystemTime, status: GroupStatus) -> GroupAlert {
        let firing: Vec<Alert> = group.firing.values().cloned().collect();
        let resolved: Vec<Alert> = group.resolved.values().cloned().collect();
        GroupAlert {
            key: notice_key(group),
            status,
            group_key: group.key.clone(),
            sequence: group.sequence,
            labels: group.labels.clone(),
            at: if group.flushed { now } else { group.opened },
            summary: summary(group, &firing, &resolved),
            firing,
            resolved,
            dashboard: format!(
                "{}/alerts?group={}",
                self.dashboard_url,
                crate::dashboard::segment(&group.key)
            ),
        }
    }
}

/// The idempotency key of the group's latest notification.
fn notice_key(group: &GroupState) -> String {
    format!("{}:{}", group.key, group.sequence)
}

/// The latest tick at or before `now` (`next_tick` is at or before it).
fn latest_tick(group: &GroupState, now: SystemTime, interval: Duration) -> SystemTime {
    let ahead = now.duration_since(group.next_tick).unwrap_or_default();
    let interval_ms = interval.as_millis().max(1);
    let ticks = ahead.as_millis() / interval_ms;
    let ms = u64::try_from(ticks.saturating_mul(interval_ms)).unwrap_or(u64::MAX);
    group
        .next_tick
        .checked_add(Duration::from_millis(ms))
        .unwrap_or(group.next_tick)
}

/// A notification went out at `at`: the resolved are told, the reminder clock restarts.
fn sent(group: &mut GroupState, rule: &Rule, at: SystemTime, reminder: bool) {
    group.changed = false;
    group.resolved.clear();
    group.reminders = if reminder { group.reminders + 1 } else { 0 };
    group.next_repeat = match rule.repeat {
        Some(repeat) if rule.on.contains(&AlertKind::Reminder) && !group.firing.is_empty() => {
            let factor = 2u32.saturating_pow(group.reminders.min(31));
            at.checked_add(repeat.saturating_mul(factor).min(rule.repeat_max))
        }
        _ => None,
    };
}

/// The group's id without its opening time: `rule0/group=shop`.
fn id(rule: usize, labels: &BTreeMap<String, String>) -> String {
    let mut id = format!("rule{rule}");
    for (label, value) in labels {
        id.push_str(&format!("/{label}={value}"));
    }
    id
}

/// The values of `labels` for a target: its group (empty when none), its tags as a set
/// (`a+b`), its kind.
pub fn labels_of(
    labels: &[GroupLabel],
    group: Option<&str>,
    tags: &[String],
    kind: &str,
) -> BTreeMap<String, String> {
    labels
        .iter()
        .map(|label| {
            let value = match label {
                GroupLabel::Group => group.unwrap_or_default().to_owned(),
                GroupLabel::Tags => {
                    let mut tags = tags.to_vec();
                    tags.sort();
                    tags.dedup();
                    tags.join("+")
                }
                GroupLabel::Kind => kind.to_owned(),
            };
            (label.as_str().to_owned(), value)
        })
        .collect()
}

/// "shop: 500 targets down — api-1, api-2, … and 490 more"; with several kinds, "480 down,
/// 20 unhealthy"; resolutions as "; 20 recovered".
fn summary(group: &GroupState, firing: &[Alert], resolved: &[Alert]) -> String {
    let values: Vec<&str> = group
        .labels
        .values()
        .map(|v| if v.is_empty() { "(none)" } else { v.as_str() })
        .collect();
    let title = if values.is_empty() {
        format!("rule[{}]", group.rule)
    } else {
        values.join(", ")
    };
    let targets = |n: usize| {
        if n == 1 {
            "1 target".to_owned()
        } else {
            format!("{n} targets")
        }
    };
    let listed = if firing.is_empty() { resolved } else { firing };
    let mut line = if firing.is_empty() {
        format!("{title}: {} recovered", targets(resolved.len()))
    } else {
        let mut kinds: Vec<(AlertKind, usize)> = Vec::new();
        for alert in firing {
            match kinds.iter_mut().find(|(k, _)| *k == alert.kind) {
                Some((_, n)) => *n += 1,
                None => kinds.push((alert.kind, 1)),
            }
        }
        let what = if let [(kind, _)] = kinds.as_slice() {
            kind.as_str().to_owned()
        } else {
            let each: Vec<String> = kinds
                .iter()
                .map(|(k, n)| format!("{n} {}", k.as_str()))
                .collect();
            format!("({})", each.join(", "))
        };
        let mut line = format!("{title}: {} {what}", targets(firing.len()));
        if !resolved.is_empty() {
            line.push_str(&format!("; {} recovered", resolved.len()));
        }
        line
    };
    let names: Vec<&str> = listed
        .iter()
        .take(SUMMARY_NAMES)
        .map(|a| a.target.as_str())
        .collect();
    line.push_str(&format!(" — {}", names.join(", ")));
    if listed.len() > SUMMARY_NAMES {
        line.push_str(&format!(", … and {} more", listed.len() - SUMMARY_NAMES));
    }
    line
}
