//! Groups on simulated time: storms of hundreds of targets become one notification per group
//! and channel, waves join the next update, resolutions are grouped too, root causes are
//! merged first, and a restart carries on with the saved groups. No sleeps: every input
//! carries its `now`, and time jumps to [`AlertPolicy::poll_timeout`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vitals_core::machine::State;

use super::alert::{AlertKind, TransitionInfo};
use super::group::{GroupAlert, GroupState, GroupStatus, Groups};
use super::mute::Mutes;
use super::policy::{AlertPolicy, AlertTarget, Effect};
use crate::config::{GroupBy, GroupLabel, Rule};

const WAIT: Duration = Duration::from_secs(10);
const INTERVAL: Duration = Duration::from_secs(300);

fn secs(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000 + n)
}

fn rule(group_by: GroupBy) -> Rule {
    Rule {
        targets: vec![],
        groups: vec![],
        on: Rule::DEFAULT_ON.to_vec(),
        channels: vec!["hook".into(), "mail".into()],
        repeat: None,
        repeat_max: Duration::from_secs(24 * 3600),
        group_by,
        group_wait: WAIT,
        group_interval: INTERVAL,
    }
}

/// `n` targets per group, `api-<group>-<i>`, of kind tcp, tagged by parity.
fn fleet(groups: &[&str], n: usize) -> HashMap<String, AlertTarget> {
    let mut targets = HashMap::new();
    for group in groups {
        for i in 0..n {
            targets.insert(
                format!("{group}-{i:03}"),
                AlertTarget {
                    name: format!("{group} {i}"),
                    group: Some((*group).to_owned()),
                    tags: vec![if i % 2 == 0 { "even" } else { "odd" }.to_owned()],
                    kind: "tcp".into(),
                },
            );
        }
    }
    targets
}

fn policy(rules: Vec<Rule>, targets: HashMap<String, AlertTarget>) -> AlertPolicy {
    AlertPolicy::new(rules, targets, Mutes::default(), [])
}

fn step(target: &str, at: SystemTime, from: State, to: State) -> TransitionInfo {
    TransitionInfo {
        target: target.into(),
        at,
        from,
        to,
        reason: "3 consecutive failures (down_after 3)".into(),
        flapping: false,
        blocked_by: None,
        dependents: vec![],
    }
}

fn down(p: &mut AlertPolicy, target: &str, at: SystemTime) {
    p.handle_transition(at, &step(target, at, State::Unhealthy, State::Down));
}

fn up(p: &mut AlertPolicy, target: &str, at: SystemTime) {
    p.handle_transition(at, &step(target, at, State::Recovering, State::Healthy));
}

/// What the outbox would deliver, per notification key, as its rows would hold it when due:
/// each group notification with its channels and due time (rewrites applied, cancelled ones
/// gone), and the keys of alerts queued on their own.
#[derive(Debug, Default)]
struct Outbox {
    notices: Vec<(GroupAlert, Vec<String>, SystemTime)>,
    cancelled: Vec<String>,
    alone: Vec<String>,
    saved: HashMap<String, Option<GroupState>>,
}

impl Outbox {
    fn drain(&mut self, p: &mut AlertPolicy) {
        while let Some(effect) = p.poll_effect() {
            match effect {
                Effect::Notice {
                    notice,
                    channels,
                    due,
                } => self.notices.push((notice, channels, due)),
                Effect::Renotice { notice } => {
                    let entry = self
                        .notices
                        .iter_mut()
                        .find(|(n, _, _)| n.key == notice.key)
                        .expect("a rewrite of a queued notification");
                    entry.0 = notice;
                }
                Effect::Cancel { key, .. } => {
                    self.notices.retain(|(n, _, _)| n.key != key);
                    self.cancelled.push(key);
                }
                Effect::Enqueue {
                    alert,
                    channels,
                    muted_by: None,
                    ..
                } if !channels.is_empty() => self.alone.push(alert.key),
                Effect::SaveGroup { key, state } => {
                    self.saved.insert(key, state);
                }
                Effect::Enqueue { .. } | Effect::Update { .. } | Effect::Save { .. } => {}
            }
        }
    }

    /// Runs the policy's timeouts up to `until`, draining as it goes.
    fn run_until(&mut self, p: &mut AlertPolicy, until: SystemTime) {
        while let Some(at) = p.poll_timeout().filter(|at| *at <= until) {
            p.handle_timeout(at);
            self.drain(p);
        }
    }

    /// (sequence, status, firing, resolved, due) of every notification, in order.
    fn sent(&self) -> Vec<(u32, GroupStatus, usize, usize, SystemTime)> {
        self.notices
            .iter()
            .map(|(n, _, due)| (n.sequence, n.status, n.firing.len(), n.resolved.len(), *due))
            .collect()
    }
}

#[test]
fn five_hundred_targets_failing_together_make_one_notification_per_channel() {
    let mut p = policy(vec![rule(GroupBy::default())], fleet(&["shop"], 500));
    let mut outbox = Outbox::default();
    for i in 0..500 {
        // Within one second, in the order their checks happened to run.
        let at = secs(0) + Duration::from_millis(i * 2);
        down(&mut p, &format!("shop-{i:03}"), at);
    }
    outbox.drain(&mut p);
    assert!(outbox.alone.is_empty(), "no alert of its own");
    assert_eq!(
        outbox.sent(),
        [(1, GroupStatus::Firing, 500, 0, secs(0) + WAIT)]
    );
    let (notice, channels, _) = &outbox.notices[0];
    assert_eq!(channels, &["hook", "mail"], "one row per channel");
    assert_eq!(
        notice.summary,
        "shop: 500 targets down — shop-000, shop-001, shop-002, shop-003, shop-004, shop-005, \
         shop-006, shop-007, shop-008, shop-009, … and 490 more"
    );
    assert_eq!(notice.key, format!("{}:1", notice.group_key));
    assert_eq!(notice.group_key, "rule0/group=shop/1800000000000");
    assert_eq!(
        notice.dashboard,
        "/alerts?group=rule0%2Fgroup%3Dshop%2F1800000000000"
    );
    assert!(notice.firing.iter().all(|a| a.kind == AlertKind::Down));

    // The group wait ends: nothing new is sent (the notification was due then), nothing
    // more until something changes.
    outbox.run_until(&mut p, secs(20));
    assert_eq!(outbox.notices.len(), 1);
    assert_eq!(p.poll_timeout(), None, "an unchanged group sleeps");

    // 500 recover together: one resolution at the next tick, and the group closes.
    for i in 0..500 {
        up(
            &mut p,
            &format!("shop-{i:03}"),
            secs(60) + Duration::from_millis(i),
        );
    }
    outbox.drain(&mut p);
    assert_eq!(outbox.notices.len(), 1, "resolutions wait for the tick");
    let tick = secs(0) + WAIT + INTERVAL;
    assert_eq!(p.poll_timeout(), Some(tick));
    outbox.run_until(&mut p, secs(10_000));
    assert_eq!(
        outbox.sent()[1..],
        [(2, GroupStatus::Resolved, 0, 500, tick)]
    );
    assert_eq!(
        outbox.notices[1].0.summary,
        "shop: 500 targets recovered — shop-000, shop-001, shop-002, shop-003, shop-004, \
         shop-005, shop-006, shop-007, shop-008, shop-009, … and 490 more"
    );
    assert!(p.groups().is_empty(), "closed");
    assert_eq!(outbox.saved.values().filter(|s| s.is_some()).count(), 0);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn a_second_wave_joins_the_next_update_which_lists_every_member() {
    let mut targets = fleet(&["shop"], 520);
    targets.extend(fleet(&["data"], 1));
    let mut p = policy(vec![rule(GroupBy::default())], targets);
    let mut outbox = Outbox::default();
    for i in 0..500 {
        down(&mut p, &format!("shop-{i:03}"), secs(0));
    }
    outbox.drain(&mut p);
    outbox.run_until(&mut p, secs(20));
    for i in 500..520 {
        down(&mut p, &format!("shop-{i:03}"), secs(30));
    }
    outbox.drain(&mut p);
    assert_eq!(
        outbox.notices.len(),
        1,
        "the first one was sent; the wave waits"
    );
    assert_eq!(
        outbox.notices[0].0.firing.len(),
        500,
        "and it is not rewritten"
    );
    let tick = secs(0) + WAIT + INTERVAL;
    outbox.run_until(&mut p, tick - Duration::from_secs(1));
    assert_eq!(outbox.notices.len(), 1, "nothing before the tick");
    assert_eq!(p.poll_timeout(), Some(tick));
    outbox.run_until(&mut p, secs(3600));
    assert_eq!(
        outbox.sent(),
        [
            (1, GroupStatus::Firing, 500, 0, secs(0) + WAIT),
            (2, GroupStatus::Firing, 520, 0, tick)
        ]
    );
    // Another group's failure is another group's notification.
    down(&mut p, "data-000", secs(4000));
    outbox.drain(&mut p);
    assert_eq!(outbox.notices.len(), 3);
    assert_eq!(
        outbox.notices[2].0.summary,
        "data: 1 target down — data-000"
    );
}

#[test]
fn three_groups_make_three_notifications_and_no_grouping_makes_one_per_target() {
    let targets = fleet(&["shop", "search", "data"], 167);
    let ids: Vec<String> = {
        let mut ids: Vec<String> = targets.keys().cloned().collect();
        ids.sort();
        ids
    };
    let storm = |group_by: GroupBy| {
        let mut p = policy(vec![rule(group_by)], targets.clone());
        let mut outbox = Outbox::default();
        for id in &ids {
            down(&mut p, id, secs(0));
        }
        outbox.drain(&mut p);
        outbox.run_until(&mut p, secs(3600));
        outbox
    };
    let grouped = storm(GroupBy::default());
    assert_eq!(grouped.notices.len(), 3);
    assert!(
        grouped
            .notices
            .iter()
            .all(|(n, _, _)| n.firing.len() == 167)
    );
    assert!(grouped.alone.is_empty());
    let each = storm(GroupBy::Each);
    assert!(each.notices.is_empty());
    assert_eq!(each.alone.len(), 501);
    // One group for the whole rule, and groups by tags.
    assert_eq!(storm(GroupBy::Labels(vec![])).notices.len(), 1);
    let by_tags = storm(GroupBy::Labels(vec![GroupLabel::Tags, GroupLabel::Kind]));
    let labels: Vec<_> = by_tags
        .notices
        .iter()
        .map(|(n, _, _)| n.labels.values().cloned().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(labels, ["tcp even", "tcp odd"]);
}

#[test]
fn root_causes_are_merged_first_and_blocked_dependents_are_no_group_members() {
    let mut targets = fleet(&["shop"], 50);
    targets.extend(fleet(&["data"], 1));
    let mut p = policy(vec![rule(GroupBy::default())], targets);
    let mut outbox = Outbox::default();
    // Half the dependents notice first and open the shop group; the root follows.
    for i in 0..25 {
        down(&mut p, &format!("shop-{i:03}"), secs(1));
    }
    down(&mut p, "data-000", secs(2));
    for i in 0..25 {
        p.handle_blocked(secs(2), &format!("shop-{i:03}"), "data-000");
    }
    // The other half arrive blocked.
    for i in 25..50 {
        let mut t = step(
            &format!("shop-{i:03}"),
            secs(3),
            State::Unhealthy,
            State::Down,
        );
        t.blocked_by = Some("data-000".into());
        p.handle_transition(secs(3), &t);
    }
    outbox.drain(&mut p);
    outbox.run_until(&mut p, secs(3600));
    // The shop group's notification was cancelled before it was due: one notification.
    let groups_cancelled = outbox.cancelled.iter().filter(|k| k.starts_with("rule0/"));
    assert_eq!(groups_cancelled.count(), 1);
    assert_eq!(
        outbox.sent(),
        [(1, GroupStatus::Firing, 1, 0, secs(2) + WAIT)]
    );
    let root = &outbox.notices[0].0.firing[0];
    assert_eq!(root.target, "data-000");
    assert_eq!(
        root.dependents.len(),
        50,
        "every dependent listed under its root"
    );

    // The root and its dependents recover: the root's resolution and the dependents' are
    // grouped too, one notification per group.
    up(&mut p, "data-000", secs(4000));
    for i in 0..50 {
        up(&mut p, &format!("shop-{i:03}"), secs(4001));
    }
    outbox.drain(&mut p);
    outbox.run_until(&mut p, secs(10_000));
    let mut resolutions: Vec<_> = outbox.notices[1..]
        .iter()
        .map(|(n, _, _)| (n.labels["group"].clone(), n.status, n.resolved.len()))
        .collect();
    resolutions.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        resolutions,
        [
            ("data".to_owned(), GroupStatus::Resolved, 1),
            ("shop".to_owned(), GroupStatus::Resolved, 50)
        ]
    );
    let shop = outbox
        .notices
        .iter()
        .find(|(n, _, _)| n.labels["group"] == "shop");
    assert!(
        shop.unwrap()
            .0
            .resolved
            .iter()
            .all(|a| a.root.as_deref() == Some("data-000")),
        "each dependent's resolution names its root"
    );
}

#[test]
fn a_target_that_recovers_inside_the_group_wait_is_not_announced() {
    let mut p = policy(vec![rule(GroupBy::default())], fleet(&["shop"], 3));
    let mut outbox = Outbox::default();
    down(&mut p, "shop-000", secs(0));
    down(&mut p, "shop-001", secs(1));
    up(&mut p, "shop-001", secs(2));
    outbox.drain(&mut p);
    outbox.run_until(&mut p, secs(3600));
    assert_eq!(
        outbox.sent(),
        [(1, GroupStatus::Firing, 1, 0, secs(0) + WAIT)]
    );
    assert_eq!(outbox.notices[0].0.firing[0].target, "shop-000");
}

#[test]
fn an_unchanged_group_is_reminded_at_the_ticks_with_backoff() {
    let mut r = rule(GroupBy::default());
    r.repeat = Some(Duration::from_secs(3600));
    r.repeat_max = Duration::from_secs(4 * 3600);
    let mut p = policy(vec![r], fleet(&["shop"], 2));
    let mut outbox = Outbox::default();
    down(&mut p, "shop-000", secs(0));
    down(&mut p, "shop-001", secs(0));
    outbox.drain(&mut p);
    assert!(
        p.track("shop-000").unwrap().next_reminder.is_none(),
        "no reminder of its own"
    );
    outbox.run_until(&mut p, secs(6 * 3600));
    let at: Vec<(u32, GroupStatus, u64)> = outbox
        .notices
        .iter()
        .map(|(n, _, due)| {
            let at = due.duration_since(secs(0)).unwrap().as_secs();
            (n.sequence, n.status, at)
        })
        .collect();
    // Ticks fall at 10 s + k × 300 s: an hour after 10 s is 3610 s, then two hours after
    // it, 10810 s (both ticks), then four hours (the cap).
    assert_eq!(
        at,
        [
            (1, GroupStatus::Firing, 10),
            (2, GroupStatus::Reminder, 3610),
            (3, GroupStatus::Reminder, 10810)
        ]
    );
}

#[test]
fn a_restart_carries_on_with_the_saved_groups_under_the_same_keys() {
    let targets = fleet(&["shop"], 30);
    let mut p = policy(vec![rule(GroupBy::default())], targets.clone());
    let mut outbox = Outbox::default();
    for i in 0..20 {
        down(&mut p, &format!("shop-{i:03}"), secs(0));
    }
    outbox.drain(&mut p);
    // Killed inside the group wait: the notification in the outbox lists the 20; the saved
    // group (as JSON, as the store keeps it) carries on.
    let saved: Vec<GroupState> = outbox
        .saved
        .values()
        .flatten()
        .map(|s| serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap())
        .collect();
    assert_eq!(saved.len(), 1);
    let mut p = AlertPolicy::new(
        vec![rule(GroupBy::default())],
        targets,
        Mutes::default(),
        [],
    )
    .with_groups(Groups::new(
        Some("https://vitals.example.com".into()),
        saved,
    ));
    assert_eq!(p.poll_timeout(), Some(secs(0) + WAIT));
    for i in 20..30 {
        down(&mut p, &format!("shop-{i:03}"), secs(5));
    }
    outbox.drain(&mut p);
    assert_eq!(
        outbox.notices.len(),
        1,
        "the same group, the same notification"
    );
    assert_eq!(outbox.notices[0].0.firing.len(), 30);
    assert!(
        outbox.notices[0]
            .0
            .dashboard
            .starts_with("https://vitals.example.com/alerts?group=")
    );
    outbox.run_until(&mut p, secs(3600));
    assert_eq!(outbox.notices.len(), 1);
}

#[test]
fn muted_alerts_and_ungrouped_kinds_stay_out_of_groups() {
    let mut p = AlertPolicy::new(
        vec![rule(GroupBy::default())],
        fleet(&["shop"], 2),
        Mutes {
            flagged: HashMap::from([("shop-000".to_owned(), secs(1000))]),
            ..Mutes::default()
        },
        [],
    );
    let mut outbox = Outbox::default();
    down(&mut p, "shop-000", secs(0));
    p.handle_escalation(secs(1), "shop-001", "3 restarts did not help");
    outbox.drain(&mut p);
    assert!(outbox.notices.is_empty(), "muted: recorded, in no group");
    assert_eq!(outbox.alone.len(), 1, "the escalation goes alone");
}

#[test]
fn members_arriving_at_the_due_time_are_never_left_out() {
    let mut p = policy(vec![rule(GroupBy::default())], fleet(&["shop"], 3));
    let mut outbox = Outbox::default();
    down(&mut p, "shop-000", secs(0));
    // Half a second before the first notification is due: listed in it, and, since a
    // delivery may already have taken the row as it was, in an update too.
    down(
        &mut p,
        "shop-001",
        secs(0) + WAIT - Duration::from_millis(500),
    );
    // After it was due, before the driver's timeout ran: not rewritten into the row that
    // may be on its way; the update lists it.
    down(
        &mut p,
        "shop-002",
        secs(0) + WAIT + Duration::from_millis(5),
    );
    outbox.drain(&mut p);
    outbox.run_until(&mut p, secs(3600));
    assert_eq!(
        outbox.sent(),
        [
            (1, GroupStatus::Firing, 2, 0, secs(0) + WAIT),
            (2, GroupStatus::Firing, 3, 0, secs(0) + WAIT + INTERVAL)
        ]
    );
}
