//! The policy's rules, run deterministically: every input carries its `now`, and the
//! actions that come out are checked one by one.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vitals_core::machine::State;

use super::alert::{AlertKind, TransitionInfo};
use super::mute::Mutes;
use super::policy::{AlertPolicy, AlertTarget, Effect};
use crate::config::{GroupBy, Rule, Window, WindowTime};

const WAIT: Duration = Duration::from_secs(5);

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn secs(n: u64) -> SystemTime {
    t0() + Duration::from_secs(n)
}

fn rule(on: &[AlertKind], repeat: Option<u64>) -> Rule {
    Rule {
        targets: vec![],
        groups: vec![],
        on: on.to_vec(),
        channels: vec!["hook".into()],
        repeat: repeat.map(Duration::from_secs),
        repeat_max: Duration::from_secs(3600),
        // These tests are of one alert per target; `group_tests.rs` tests groups.
        group_by: GroupBy::Each,
        group_wait: WAIT,
        group_interval: Duration::from_secs(300),
    }
}

fn policy(rules: Vec<Rule>, mutes: Mutes) -> AlertPolicy {
    let targets = HashMap::from([(
        "db".to_owned(),
        AlertTarget {
            name: "Database".into(),
            group: Some("data".into()),
            ..AlertTarget::default()
        },
    )]);
    AlertPolicy::new(rules, targets, mutes, [])
}

fn step(target: &str, at: u64, from: State, to: State) -> TransitionInfo {
    TransitionInfo {
        target: target.into(),
        at: secs(at),
        from,
        to,
        reason: format!("{} -> {}", from.as_str(), to.as_str()),
        flapping: false,
        blocked_by: None,
        dependents: vec![],
    }
}

/// The alerts enqueued (kind, target, muted reason, dependents), saves skipped.
fn drain(policy: &mut AlertPolicy) -> Vec<(AlertKind, String, Option<String>, Vec<String>)> {
    let mut out = Vec::new();
    while let Some(action) = policy.poll_effect() {
        match action {
            Effect::Enqueue {
                alert, muted_by, ..
            } => out.push((alert.kind, alert.target, muted_by, alert.dependents)),
            Effect::Update { alert } => out.push((
                alert.kind,
                format!("update {}", alert.target),
                None,
                alert.dependents,
            )),
            Effect::Cancel { key, reason } => out.push((
                AlertKind::Down,
                format!("cancel {key}"),
                Some(reason),
                vec![],
            )),
            Effect::Save { .. }
            | Effect::Notice { .. }
            | Effect::Renotice { .. }
            | Effect::SaveGroup { .. } => {}
        }
    }
    out
}

fn kinds(policy: &mut AlertPolicy) -> Vec<(AlertKind, Option<String>)> {
    drain(policy)
        .into_iter()
        .map(|(kind, _, muted, _)| (kind, muted))
        .collect()
}

fn outage(policy: &mut AlertPolicy, target: &str, start: u64) {
    policy.handle_transition(
        secs(start),
        &step(target, start, State::Healthy, State::Failing),
    );
    policy.handle_transition(
        secs(start + 1),
        &step(target, start + 1, State::Failing, State::Unhealthy),
    );
    policy.handle_transition(
        secs(start + 2),
        &step(target, start + 2, State::Unhealthy, State::Down),
    );
}

fn recovery(policy: &mut AlertPolicy, target: &str, start: u64) {
    policy.handle_transition(
        secs(start),
        &step(target, start, State::Down, State::Recovering),
    );
    policy.handle_transition(
        secs(start + 1),
        &step(target, start + 1, State::Recovering, State::Healthy),
    );
}

#[test]
fn an_outage_sends_the_listed_states_and_one_resolution() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    outage(&mut p, "db", 0);
    // Unhealthy is not in the default `on`: only down.
    assert_eq!(kinds(&mut p), [(AlertKind::Down, None)]);
    recovery(&mut p, "db", 100);
    assert_eq!(kinds(&mut p), [(AlertKind::Recovered, None)]);
    // Healthy again from unknown (a start) or a second recovery says nothing.
    p.handle_transition(secs(200), &step("db", 200, State::Unknown, State::Healthy));
    assert!(kinds(&mut p).is_empty());
}

#[test]
fn a_target_no_rule_covers_sends_nothing_and_degraded_needs_listing() {
    let mut only_api = rule(&[AlertKind::Degraded, AlertKind::Recovered], None);
    only_api.targets = vec!["api".into()];
    let mut p = policy(vec![only_api], Mutes::default());
    outage(&mut p, "db", 0);
    assert!(kinds(&mut p).is_empty());
    // A rule naming a vitals service covers the rows of its checks.
    p.handle_transition(secs(5), &step("api/db", 5, State::Healthy, State::Degraded));
    p.handle_transition(secs(6), &step("api/db", 6, State::Degraded, State::Healthy));
    assert_eq!(
        kinds(&mut p),
        [(AlertKind::Degraded, None), (AlertKind::Recovered, None)]
    );
    p.handle_transition(secs(10), &step("api", 10, State::Healthy, State::Degraded));
    p.handle_transition(secs(11), &step("api", 11, State::Degraded, State::Healthy));
    assert_eq!(
        kinds(&mut p),
        [(AlertKind::Degraded, None), (AlertKind::Recovered, None)]
    );
}

#[test]
fn alerts_wait_the_group_wait_and_the_key_is_stable() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    p.handle_transition(secs(2), &step("db", 2, State::Unhealthy, State::Down));
    let mut enqueued = None;
    while let Some(action) = p.poll_effect() {
        if let Effect::Enqueue { alert, due, .. } = action {
            enqueued = Some((alert, due));
        }
    }
    let (alert, due) = enqueued.unwrap();
    assert_eq!(due, secs(2) + WAIT);
    assert_eq!(alert.key, format!("db:down:{}", (1_800_000_002u128) * 1000));
    assert_eq!(alert.name, "Database");
    assert_eq!(alert.group.as_deref(), Some("data"));
    assert_eq!(p.poll_timeout(), Some(secs(2) + WAIT));
    p.handle_timeout(secs(7));
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn one_alert_for_a_root_names_its_fifty_dependents_and_every_resolution_is_sent() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    // Half the dependents notice before the root does: their alerts wait, then are
    // cancelled as blocked; the other half arrive already blocked.
    for i in 0..25 {
        p.handle_transition(
            secs(1),
            &step(&format!("svc{i}"), 1, State::Unhealthy, State::Down),
        );
    }
    p.handle_transition(secs(2), &step("db", 2, State::Unhealthy, State::Down));
    for i in 0..25 {
        p.handle_blocked(secs(2), &format!("svc{i}"), "db");
    }
    for i in 25..50 {
        let mut t = step(&format!("svc{i}"), 3, State::Unhealthy, State::Down);
        t.blocked_by = Some("db".into());
        p.handle_transition(secs(3), &t);
    }
    let actions = drain(&mut p);
    let sent: Vec<_> = actions
        .iter()
        .filter(|(_, target, muted, _)| muted.is_none() && !target.starts_with("update"))
        .collect();
    // 25 early alerts were enqueued (then cancelled) plus the root's.
    assert_eq!(sent.len(), 26);
    let cancelled = actions
        .iter()
        .filter(|(_, t, _, _)| t.starts_with("cancel"))
        .count();
    assert_eq!(cancelled, 25);
    let blocked = actions
        .iter()
        .filter(|(_, _, muted, _)| muted.as_deref() == Some("blocked by db"))
        .count();
    assert_eq!(blocked, 25 + 25, "25 cancelled and 25 recorded as blocked");
    let last_update = actions
        .iter()
        .rev()
        .find(|(_, t, _, _)| t == "update db")
        .unwrap();
    assert_eq!(last_update.3.len(), 50);
    // What is delivered once the group wait ends: exactly one alert, naming all 50.
    let undelivered: usize = 25;
    assert_eq!(sent.len() - undelivered, 1);

    recovery(&mut p, "db", 100);
    for i in 0..50 {
        recovery(&mut p, &format!("svc{i}"), 101);
    }
    let resolutions = drain(&mut p);
    assert_eq!(resolutions.len(), 51);
    assert!(
        resolutions
            .iter()
            .all(|(k, _, muted, _)| *k == AlertKind::Recovered && muted.is_none())
    );
    assert_eq!(
        resolutions[0].3.len(),
        50,
        "the root's resolution names its dependents"
    );
}

#[test]
fn reminders_back_off_to_the_cap_and_stop_on_recovery() {
    let mut r = rule(&Rule::DEFAULT_ON, Some(600));
    r.repeat_max = Duration::from_secs(2400);
    let mut p = policy(vec![r], Mutes::default());
    outage(&mut p, "db", 0);
    drain(&mut p);
    // The group wait ends first.
    assert_eq!(p.poll_timeout(), Some(secs(2) + WAIT));
    p.handle_timeout(secs(2) + WAIT);
    let mut at = Vec::new();
    while let Some(next) = p.poll_timeout() {
        if next > secs(10_000) {
            break;
        }
        p.handle_timeout(next);
        at.push(next.duration_since(t0()).unwrap().as_secs());
        assert_eq!(kinds(&mut p), [(AlertKind::Reminder, None)]);
    }
    // Down at 2 s, then 600 s, 1200 s, 2400 s (capped), 2400 s… after it.
    assert_eq!(at, [602, 1802, 4202, 6602, 9002]);
    recovery(&mut p, "db", 9100);
    assert_eq!(kinds(&mut p), [(AlertKind::Recovered, None)]);
    assert_eq!(p.poll_timeout(), None);
}

#[test]
fn a_flapping_target_sends_one_notice_then_nothing_until_it_settles() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    outage(&mut p, "db", 0);
    assert_eq!(kinds(&mut p), [(AlertKind::Down, None)]);
    for i in 0..10 {
        let mut up = step("db", 10 + 2 * i, State::Recovering, State::Healthy);
        up.flapping = true;
        let mut down = step("db", 11 + 2 * i, State::Unhealthy, State::Down);
        down.flapping = true;
        p.handle_transition(up.at, &up);
        p.handle_transition(down.at, &down);
    }
    assert_eq!(kinds(&mut p), [(AlertKind::Flapping, None)]);
    // Settles while down (the machine says so without a transition): down was sent
    // already, so nothing new.
    p.handle_flapping(secs(50), "db", State::Down, false, "quiet for 10m");
    assert!(kinds(&mut p).is_empty());
    assert!(!p.track("db").unwrap().flapping);
    // Then recovers for good: the resolution.
    recovery(&mut p, "db", 60);
    assert_eq!(kinds(&mut p), [(AlertKind::Recovered, None)]);
}

#[test]
fn maintenance_mutes_alerts_records_them_and_still_sends_resolutions_of_sent_ones() {
    let window = Window {
        id: "upgrade".into(),
        targets: vec!["db".into()],
        groups: vec![],
        when: WindowTime::Once {
            from: secs(100),
            until: secs(200),
        },
    };
    let mutes = Mutes {
        windows: vec![window],
        ..Mutes::default()
    };
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, Some(300))], mutes);
    // Down before the window: sent. Recovered inside it: the resolution is still sent.
    outage(&mut p, "db", 0);
    assert_eq!(kinds(&mut p), [(AlertKind::Down, None)]);
    p.handle_timeout(secs(10));
    recovery(&mut p, "db", 150);
    assert_eq!(kinds(&mut p), [(AlertKind::Recovered, None)]);
    // Down inside the window: recorded, muted; the reminder after the window is sent and
    // makes the later resolution due.
    outage(&mut p, "db", 160);
    let muted = Some("maintenance upgrade".to_owned());
    assert_eq!(kinds(&mut p), [(AlertKind::Down, muted.clone())]);
    let reminder = p.poll_timeout().unwrap();
    assert_eq!(reminder, secs(462));
    p.handle_timeout(reminder);
    assert_eq!(kinds(&mut p), [(AlertKind::Reminder, None)]);
    recovery(&mut p, "db", 500);
    assert_eq!(kinds(&mut p), [(AlertKind::Recovered, None)]);
    // Down and up inside a window: both recorded, neither sent.
    let mut p = policy(
        vec![rule(&Rule::DEFAULT_ON, None)],
        Mutes {
            flagged: HashMap::from([("db".to_owned(), secs(1000))]),
            ..Mutes::default()
        },
    );
    outage(&mut p, "db", 0);
    recovery(&mut p, "db", 10);
    let all = kinds(&mut p);
    assert_eq!(all.len(), 2);
    assert!(all.iter().all(|(_, muted)| muted.is_some()));
}

#[test]
fn a_restart_keeps_what_was_sent_so_the_resolution_follows() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    outage(&mut p, "db", 0);
    let mut saved = None;
    while let Some(action) = p.poll_effect() {
        if let Effect::Save { target, track } = action {
            saved = Some((target, track));
        }
    }
    let saved = saved.unwrap();
    let json = serde_json::to_string(&saved.1).unwrap();
    let track = serde_json::from_str(&json).unwrap();
    let mut p = AlertPolicy::new(
        vec![rule(&Rule::DEFAULT_ON, None)],
        HashMap::new(),
        Mutes::default(),
        [(saved.0, track)],
    );
    recovery(&mut p, "db", 100);
    assert_eq!(kinds(&mut p), [(AlertKind::Recovered, None)]);
}

#[test]
fn isolation_and_escalation_go_to_the_rules_that_list_them() {
    let mut all = rule(&[AlertKind::Isolated, AlertKind::Escalation], None);
    all.channels = vec!["pager".into()];
    let mut p = policy(vec![all], Mutes::default());
    p.handle_isolation(secs(1), true, "2 of 2 canaries fail");
    p.handle_isolation(secs(60), false, "canaries pass");
    p.handle_escalation(secs(70), "db", "3 restarts in 10m did not help");
    let out = drain(&mut p);
    let got: Vec<_> = out
        .iter()
        .map(|(k, t, m, _)| (*k, t.as_str(), m.is_none()))
        .collect();
    assert_eq!(
        got,
        [
            (AlertKind::Isolated, "monitor", true),
            (AlertKind::Recovered, "monitor", true),
            (AlertKind::Escalation, "db", true)
        ]
    );
}

#[test]
fn a_transition_stored_but_not_notified_before_a_crash_is_notified_at_start_under_its_key() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    outage(&mut p, "db", 0);
    let mut keys = Vec::new();
    while let Some(action) = p.poll_effect() {
        if let Effect::Enqueue { alert, .. } = action {
            keys.push(alert.key);
        }
    }
    // The restarted policy knows nothing of the outage; the store says down since 2 s.
    let mut restarted = policy(vec![rule(&Rule::DEFAULT_ON, None)], Mutes::default());
    restarted.handle_restored(secs(100), "db", State::Down, secs(2), false);
    let mut again = Vec::new();
    while let Some(action) = restarted.poll_effect() {
        if let Effect::Enqueue { alert, .. } = action {
            again.push(alert.key);
        }
    }
    assert_eq!(
        again, keys,
        "the same key: queued once, whichever run queued it"
    );
    // Consistent states create nothing.
    restarted.handle_restored(secs(101), "db", State::Down, secs(2), false);
    restarted.handle_restored(secs(101), "web", State::Healthy, secs(2), false);
    restarted.handle_restored(secs(101), "api", State::Failing, secs(2), false);
    assert!(drain(&mut restarted).is_empty());
    // Recovered before the crash, resolution not queued: it is now.
    restarted.handle_restored(secs(102), "db", State::Healthy, secs(90), false);
    assert_eq!(kinds(&mut restarted), [(AlertKind::Recovered, None)]);
}

#[test]
fn reminders_stop_while_flapping_and_resume_when_it_settles_down() {
    let mut p = policy(vec![rule(&Rule::DEFAULT_ON, Some(600))], Mutes::default());
    outage(&mut p, "db", 0);
    p.handle_timeout(secs(10));
    drain(&mut p);
    assert_eq!(p.poll_timeout(), Some(secs(602)));
    p.handle_flapping(secs(100), "db", State::Down, true, "8 transitions in 10m");
    assert_eq!(kinds(&mut p), [(AlertKind::Flapping, None)]);
    assert_eq!(p.poll_timeout(), None, "no reminders while flapping");
    p.handle_flapping(secs(1000), "db", State::Down, false, "quiet for 10m");
    assert!(kinds(&mut p).is_empty());
    assert_eq!(p.poll_timeout(), Some(secs(1600)));
}
