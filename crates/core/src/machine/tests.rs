//! Tests of the state machine: data-driven cases through one `check` helper (outcome letters
//! in, states out), event reasons, and property tests of the design's invariants.

use std::time::SystemTime;

use proptest::prelude::*;

use super::*;
use crate::Kind;

#[allow(clippy::disallowed_methods)] // the one clock read: a base for simulated time
fn base() -> Instant {
    Instant::now()
}

fn outcome(letter: char) -> Outcome {
    let kind = match letter {
        'P' => Kind::Pass,
        'W' => Kind::Warn,
        'F' => Kind::Fail,
        'T' => Kind::Timeout,
        other => panic!("unknown outcome letter {other:?}"),
    };
    Outcome::new(kind, SystemTime::UNIX_EPOCH, Duration::from_millis(5))
}

fn th(fall: u32, rise: u32, down_after: u32) -> Thresholds {
    Thresholds {
        fall,
        rise,
        down_after,
        window: None,
        flap: None,
    }
}

fn drain(machine: &mut Machine) -> Vec<Event> {
    std::iter::from_fn(|| machine.poll_event()).collect()
}

/// Feeds `outcomes` (P pass, W warn, F fail, T timeout) ten seconds apart and checks the
/// state after each against `expected`, state names separated by spaces.
fn check(thresholds: Thresholds, outcomes: &str, expected: &str) {
    let mut machine = Machine::new(thresholds).unwrap();
    let start = base();
    let got: Vec<&str> = outcomes
        .chars()
        .enumerate()
        .map(|(i, letter)| {
            machine.handle_outcome(start + Duration::from_secs(10 * i as u64), &outcome(letter));
            machine.state().as_str()
        })
        .collect();
    assert_eq!(got.join(" "), expected, "outcomes: {outcomes}");
}

/// Feeds `outcomes` ten seconds apart and renders every event as one line.
fn events(thresholds: Thresholds, outcomes: &str) -> Vec<String> {
    let mut machine = Machine::new(thresholds).unwrap();
    let start = base();
    let mut lines = Vec::new();
    for (i, letter) in outcomes.chars().enumerate() {
        let now = start + Duration::from_secs(10 * i as u64);
        machine.handle_outcome(now, &outcome(letter));
        for event in drain(&mut machine) {
            assert_eq!(event.at, now);
            assert_eq!(
                event.cause.as_ref().map(|c| c.kind),
                Some(outcome(letter).kind)
            );
            let what = match event.kind {
                EventKind::Transition { from, to } => format!("{from} -> {to}"),
                EventKind::FlappingStarted => "flapping started".into(),
                EventKind::FlappingStopped => "flapping stopped".into(),
            };
            lines.push(format!("{i}: {what}: {}", event.reason));
        }
    }
    lines
}

#[test]
fn seed_workflow() {
    let d = Thresholds::default;
    // Healthy service: 200 at T=0, 10, 20.
    check(d(), "PPP", "healthy healthy healthy");
    // Degrading: 503 at T=20 marks it failing ("give retry chance"), at T=30 it is out.
    check(d(), "PPFF", "healthy healthy failing unhealthy");
    check(d(), "PPFFF", "healthy healthy failing unhealthy down");
    // Recovering: 503, 503, then 200 is recovering and the next 200 is back in.
    check(d(), "FFPP", "unknown unhealthy recovering healthy");
}

#[test]
fn unknown() {
    check(th(2, 2, 3), "P", "healthy");
    check(th(2, 2, 3), "W", "degraded");
    check(th(2, 2, 3), "FP", "unknown healthy");
    check(th(2, 2, 3), "FFF", "unknown unhealthy down");
    check(th(3, 2, 3), "FFF", "unknown unknown down");
    check(th(1, 2, 3), "FFFF", "unhealthy unhealthy down down");
}

#[test]
fn serving() {
    check(th(2, 2, 3), "PWPW", "healthy degraded healthy degraded");
    check(th(2, 2, 3), "PFP", "healthy failing healthy");
    check(th(2, 2, 3), "PFW", "healthy failing degraded");
    check(th(2, 2, 3), "WFF", "degraded failing unhealthy");
    check(
        th(3, 2, 5),
        "PFFPFFF",
        "healthy failing failing healthy failing failing unhealthy",
    );
    check(th(1, 2, 3), "PF", "healthy unhealthy");
}

#[test]
fn timeouts_are_failures() {
    check(th(2, 2, 3), "PTT", "healthy failing unhealthy");
    check(th(2, 2, 3), "PFTF", "healthy failing unhealthy down");
}

#[test]
fn down_counts_failures_from_the_last_pass() {
    check(
        th(2, 2, 4),
        "PFFFF",
        "healthy failing unhealthy unhealthy down",
    );
    check(th(2, 2, 2), "PFF", "healthy failing down");
    check(th(1, 1, 1), "PFP", "healthy down healthy");
    check(
        th(2, 2, 3),
        "PFFFFF",
        "healthy failing unhealthy down down down",
    );
}

#[test]
fn recovering() {
    check(
        th(2, 3, 3),
        "FFPPP",
        "unknown unhealthy recovering recovering healthy",
    );
    check(th(2, 2, 3), "FFPW", "unknown unhealthy recovering degraded");
    check(th(2, 1, 3), "FFP", "unknown unhealthy healthy");
    check(th(2, 1, 3), "FFFW", "unknown unhealthy down degraded");
    // A failure while recovering goes back where the target came from, and the count
    // towards down restarts there.
    check(
        th(2, 2, 3),
        "FFPF",
        "unknown unhealthy recovering unhealthy",
    );
    check(
        th(2, 2, 3),
        "FFPFFF",
        "unknown unhealthy recovering unhealthy unhealthy down",
    );
    check(
        th(2, 2, 3),
        "FFFPF",
        "unknown unhealthy down recovering down",
    );
    check(
        th(2, 2, 3),
        "FFFPFPP",
        "unknown unhealthy down recovering down recovering healthy",
    );
}

#[test]
fn window_rule_catches_scattered_failures() {
    let rule = Thresholds {
        window: Some(WindowRule {
            failures: 3,
            of_last: 5,
        }),
        ..th(2, 2, 3)
    };
    check(
        rule.clone(),
        "PFPFPF",
        "healthy failing healthy failing healthy unhealthy",
    );
    // Spread wider than the window, the same failures are only blips.
    check(
        rule.clone(),
        "PFPPPFPPPF",
        "healthy failing healthy healthy healthy failing healthy healthy healthy failing",
    );
    // Failures from before the target came back do not count against it.
    check(
        rule.clone(),
        "FFPPFPF",
        "unknown unhealthy recovering healthy failing healthy failing",
    );
    assert_eq!(
        events(rule, "PFPFPF").last().unwrap(),
        "5: healthy -> unhealthy: 3 of the last 5 checks failed (window 3 of 5)"
    );
}

#[test]
fn reasons() {
    assert_eq!(
        events(th(2, 2, 3), "PWPFFFPPF"),
        [
            "0: unknown -> healthy: first check passed",
            "1: healthy -> degraded: check warned",
            "2: degraded -> healthy: check passed",
            "3: healthy -> failing: 1 consecutive failure (fall 2)",
            "4: failing -> unhealthy: 2 consecutive failures (fall 2)",
            "5: unhealthy -> down: 3 consecutive failures (down_after 3)",
            "6: down -> recovering: 1 consecutive success (rise 2)",
            "7: recovering -> healthy: 2 consecutive successes (rise 2)",
            "8: healthy -> failing: 1 consecutive failure (fall 2)",
        ]
    );
    assert_eq!(
        events(th(2, 2, 3), "WFWFFPF"),
        [
            "0: unknown -> degraded: first check warned",
            "1: degraded -> failing: 1 consecutive failure (fall 2)",
            "2: failing -> degraded: check warned before fall (2) was reached",
            "3: degraded -> failing: 1 consecutive failure (fall 2)",
            "4: failing -> unhealthy: 2 consecutive failures (fall 2)",
            "5: unhealthy -> recovering: 1 consecutive success (rise 2)",
            "6: recovering -> unhealthy: check failed while recovering (rise 2)",
        ]
    );
    // Thresholds of 1 take several edges on one outcome, one event each.
    assert_eq!(
        events(th(1, 1, 1), "PF"),
        [
            "0: unknown -> healthy: first check passed",
            "1: healthy -> unhealthy: 1 consecutive failure (fall 1)",
            "1: unhealthy -> down: 1 consecutive failure (down_after 1)",
        ]
    );
}

#[test]
fn flapping_starts_and_clears_with_hysteresis() {
    let rule = Thresholds {
        flap: Some(FlapRule {
            transitions: 4,
            within: Duration::from_secs(60),
        }),
        ..th(2, 2, 3)
    };
    // Transitions at 0, 10, 20, 30 and 40 s, then only passes. The flag rises with the
    // fourth and clears once at most two are under 60 s old: at 80 s, leaving 30 and 40 s.
    let lines = events(rule, "PFPFPPPPPP");
    assert_eq!(
        lines[4],
        "3: flapping started: 4 transitions within 60s (flap 4 within 60s)"
    );
    assert_eq!(
        lines[6],
        "8: flapping stopped: 2 transitions within 60s, at most half of flap 4"
    );
    assert_eq!(lines.len(), 7, "{lines:#?}");
}

#[test]
fn flapping_flag_and_accessors() {
    let mut machine = Machine::new(Thresholds {
        flap: Some(FlapRule {
            transitions: 2,
            within: Duration::from_secs(60),
        }),
        ..th(3, 2, 4)
    })
    .unwrap();
    let start = base();
    assert_eq!(
        (machine.state(), machine.since(), machine.is_flapping()),
        (State::Unknown, None, false)
    );
    machine.handle_outcome(start, &outcome('P'));
    machine.handle_outcome(start + Duration::from_secs(1), &outcome('F'));
    machine.handle_outcome(start + Duration::from_secs(2), &outcome('T'));
    assert!(machine.is_flapping());
    assert_eq!(machine.since(), Some(start + Duration::from_secs(1)));
    assert_eq!(
        (
            machine.consecutive_failures(),
            machine.consecutive_successes()
        ),
        (2, 0)
    );
    assert_eq!(machine.thresholds().fall, 3);
    assert_eq!(drain(&mut machine).len(), 3);
    assert_eq!(machine.poll_event(), None);
}

#[test]
fn earlier_time_is_taken_as_the_latest() {
    let mut machine = Machine::new(th(2, 2, 3)).unwrap();
    let start = base();
    machine.handle_outcome(start + Duration::from_secs(10), &outcome('P'));
    machine.handle_outcome(start, &outcome('F'));
    assert_eq!(machine.since(), Some(start + Duration::from_secs(10)));
    assert!(
        drain(&mut machine)
            .iter()
            .all(|e| e.at == start + Duration::from_secs(10))
    );
}

#[test]
fn validation_names_the_field() {
    let bad = |thresholds: Thresholds| thresholds.validate().unwrap_err();
    let window = |failures, of_last| Thresholds {
        window: Some(WindowRule { failures, of_last }),
        ..th(2, 2, 3)
    };
    let flap = |transitions, secs| Thresholds {
        flap: Some(FlapRule {
            transitions,
            within: Duration::from_secs(secs),
        }),
        ..th(2, 2, 3)
    };
    assert_eq!(bad(th(0, 2, 3)).field, "fall");
    assert_eq!(bad(th(2, 0, 3)).field, "rise");
    assert_eq!(
        bad(th(2, 2, 1)).to_string(),
        "down_after (1) must be at least fall (2): a target is unhealthy before it is down"
    );
    assert_eq!(bad(th(2, 2, 1)).field, "down_after");
    assert_eq!(bad(window(0, 5)).field, "window.failures");
    assert_eq!(bad(window(6, 5)).field, "window.of_last");
    assert_eq!(bad(window(1, MAX_REMEMBERED + 1)).field, "window.of_last");
    assert_eq!(bad(flap(1, 60)).field, "flap.transitions");
    assert_eq!(bad(flap(MAX_REMEMBERED + 1, 60)).field, "flap.transitions");
    assert_eq!(bad(flap(2, 0)).field, "flap.within");
    assert!(Machine::new(th(2, 2, 1)).is_err());
    for ok in [Thresholds::default(), th(1, 1, 1), window(5, 5), flap(2, 1)] {
        assert_eq!(ok.validate(), Ok(()));
    }
}

#[test]
fn state_names() {
    let names: Vec<String> = State::ALL.iter().map(State::to_string).collect();
    assert_eq!(
        names.join(" "),
        "unknown healthy degraded failing unhealthy down recovering"
    );
    let serving: Vec<State> = State::ALL.into_iter().filter(|s| s.is_serving()).collect();
    assert_eq!(serving, [State::Healthy, State::Degraded, State::Failing]);
}

// Property tests.

/// The design's diagram, edge by edge, plus the shortcuts the window rule opens.
fn allowed(from: State, to: State, window: bool) -> bool {
    use State::*;
    matches!(
        (from, to),
        (Unknown, Healthy | Degraded | Unhealthy)
            | (Healthy, Degraded | Failing)
            | (Degraded, Healthy | Failing)
            | (Failing, Healthy | Degraded | Unhealthy)
            | (Unhealthy, Down | Recovering)
            | (Down, Recovering)
            | (Recovering, Healthy | Degraded | Unhealthy | Down)
    ) || (window && matches!((from, to), (Healthy | Degraded, Unhealthy)))
}

fn kinds() -> impl Strategy<Value = Vec<(char, u64)>> {
    prop::collection::vec(
        (prop::sample::select(vec!['P', 'W', 'F', 'T']), 0u64..30_000),
        0..120,
    )
}

fn rules(min: u32) -> impl Strategy<Value = Thresholds> {
    let window = prop::option::of((min..6, 0u32..10).prop_map(|(failures, extra)| WindowRule {
        failures,
        of_last: failures + extra,
    }));
    let flap = prop::option::of(
        (2u32..10, 1u64..300_000).prop_map(|(transitions, ms)| FlapRule {
            transitions,
            within: Duration::from_millis(ms),
        }),
    );
    (min..6, min..6, 0u32..5, window, flap).prop_map(move |(fall, rise, extra, window, flap)| {
        Thresholds {
            fall,
            rise,
            // With strict thresholds down_after is above fall, as property (a) needs.
            down_after: fall + extra + u32::from(min > 1),
            window,
            flap,
        }
    })
}

/// Runs the outcomes and returns, per outcome, the state before, the state after and the
/// events it caused.
fn trace(thresholds: Thresholds, outcomes: &[(char, u64)]) -> Vec<(State, State, Vec<Event>)> {
    let mut machine = Machine::new(thresholds).unwrap();
    let mut now = base();
    outcomes
        .iter()
        .map(|&(letter, step_ms)| {
            now += Duration::from_millis(step_ms);
            let before = machine.state();
            machine.handle_outcome(now, &outcome(letter));
            (before, machine.state(), drain(&mut machine))
        })
        .collect()
}

fn transitions(events: &[Event]) -> Vec<(State, State)> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Transition { from, to } => Some((from, to)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) With fall, rise >= 2 and down_after > fall, every transition follows the diagram.
    #[test]
    fn transitions_follow_the_diagram(t in rules(2), outcomes in kinds()) {
        let window = t.window.is_some();
        for (_, _, events) in trace(t, &outcomes) {
            for (from, to) in transitions(&events) {
                prop_assert!(allowed(from, to, window), "{from} -> {to}");
            }
        }
    }

    /// (b) Leaving rotation takes `fall` failures in a row or a tripped window; coming back
    /// from unhealthy or down takes `rise` passes in a row. No single outcome does either.
    #[test]
    fn rotation_changes_need_evidence(t in rules(2), outcomes in kinds()) {
        let failed: Vec<bool> = outcomes.iter().map(|&(l, _)| matches!(l, 'F' | 'T')).collect();
        for (i, (before, after, _)) in trace(t.clone(), &outcomes).into_iter().enumerate() {
            let last = |n: u32| &failed[(i + 1).saturating_sub(n as usize)..=i];
            if before.is_serving() && !after.is_serving() {
                let in_a_row = last(t.fall).len() == t.fall as usize && last(t.fall).iter().all(|&f| f);
                let window = t.window.is_some_and(|w| {
                    last(w.of_last).iter().filter(|&&f| f).count() >= w.failures as usize
                });
                prop_assert!(in_a_row || window, "left rotation at {i}");
            }
            if before != State::Unknown && !before.is_serving() && after.is_serving() {
                prop_assert!(i + 1 >= t.rise as usize && last(t.rise).iter().all(|&f| !f), "back at {i}");
            }
        }
    }

    /// (c) Transition events chain from the state before to the state after, each a real
    /// change; flapping events alternate; `since` is the time of the latest transition.
    #[test]
    fn events_are_the_state_changes(t in rules(1), outcomes in kinds()) {
        let mut flapping = false;
        for (before, after, events) in trace(t, &outcomes) {
            let chain = transitions(&events);
            let mut state = before;
            for (from, to) in chain {
                prop_assert_eq!(from, state);
                prop_assert_ne!(from, to);
                state = to;
            }
            prop_assert_eq!(state, after);
            for event in &events {
                match event.kind {
                    EventKind::FlappingStarted => { prop_assert!(!flapping); flapping = true; }
                    EventKind::FlappingStopped => { prop_assert!(flapping); flapping = false; }
                    EventKind::Transition { .. } => {}
                }
            }
        }
    }

    /// (d) Any valid thresholds and any outcomes at any times, even going backwards.
    #[test]
    fn never_panics(t in rules(1), outcomes in prop::collection::vec((prop::sample::select(vec!['P', 'W', 'F', 'T']), 0u64..1_000_000), 0..200)) {
        let mut machine = Machine::new(t).unwrap();
        let start = base();
        let mut latest = start;
        for (letter, offset) in outcomes {
            let now = start + Duration::from_millis(offset);
            latest = latest.max(now);
            machine.handle_outcome(now, &outcome(letter));
            for event in drain(&mut machine) {
                prop_assert_eq!(event.at, latest);
            }
            prop_assert!(machine.since().is_none_or(|since| since <= latest));
        }
    }
}

#[test]
fn a_restored_machine_carries_on_where_the_saved_one_stopped() {
    let t0 = base();
    let mut original = Machine::new(th(2, 2, 3)).unwrap();
    for (i, letter) in "PFF".chars().enumerate() {
        original.handle_outcome(t0 + Duration::from_secs(i as u64), &outcome(letter));
    }
    assert_eq!(original.state(), State::Unhealthy);
    let saved = original.saved();
    let mut restored = Machine::restore(th(2, 2, 3), saved).unwrap();
    assert_eq!(restored.saved(), saved);
    // The third failure in a row takes both down: the restored one counts on.
    for machine in [&mut original, &mut restored] {
        machine.handle_outcome(t0 + Duration::from_secs(10), &outcome('F'));
        assert_eq!(machine.state(), State::Down);
    }
    let events = drain(&mut restored);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].kind,
        EventKind::Transition {
            from: State::Unhealthy,
            to: State::Down
        }
    );
}

#[test]
fn a_confirmed_death_is_down_at_once_along_the_diagram() {
    // Issue 15: confirmed dead needs no count of failures.
    let transitions = |prefix: &str| {
        let mut machine = Machine::new(Thresholds::default()).unwrap();
        let start = base();
        for (i, letter) in prefix.chars().enumerate() {
            machine.handle_outcome(start + Duration::from_secs(i as u64), &outcome(letter));
        }
        drain(&mut machine);
        machine.handle_confirmed_down(start + Duration::from_secs(60), &outcome('F'));
        let got: Vec<String> = drain(&mut machine)
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::Transition { from, to } => Some(format!("{from}>{to}")),
                _ => None,
            })
            .collect();
        assert_eq!(machine.state(), State::Down);
        assert!(machine.consecutive_failures() >= 3);
        got.join(" ")
    };
    assert_eq!(transitions(""), "unknown>unhealthy unhealthy>down");
    assert_eq!(transitions("P"), "healthy>unhealthy unhealthy>down");
    assert_eq!(transitions("PF"), "failing>unhealthy unhealthy>down");
    assert_eq!(transitions("PFF"), "unhealthy>down");
    assert_eq!(transitions("PFFF"), "");
    assert_eq!(transitions("PFFFP"), "recovering>down");
    assert_eq!(transitions("PFFP"), "recovering>unhealthy unhealthy>down");
    // And it comes back by rise passes, as from any down.
    let mut machine = Machine::new(Thresholds::default()).unwrap();
    let start = base();
    machine.handle_confirmed_down(start, &outcome('F'));
    machine.handle_outcome(start + Duration::from_secs(1), &outcome('P'));
    machine.handle_outcome(start + Duration::from_secs(2), &outcome('P'));
    assert_eq!(machine.state(), State::Healthy);
}
