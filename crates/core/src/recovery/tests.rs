//! Tests of the restart budget: data-driven scripts through one `check` helper (states and
//! polls at given seconds in, what each poll answered out), policy validation, and property
//! tests of the limits under arbitrary state sequences.

use proptest::prelude::*;

use super::*;

#[allow(clippy::disallowed_methods)] // the one clock read: a base for simulated time
fn base() -> Instant {
    Instant::now()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// 3 attempts in 600 s, 10 s then 20 s then 40 s apart (at most 40 s), reset after 60 s.
fn policy() -> BudgetPolicy {
    BudgetPolicy {
        max_attempts: 3,
        window: secs(600),
        backoff: secs(10),
        backoff_max: secs(40),
        reset_after: secs(60),
    }
}

fn parse_state(name: &str) -> State {
    State::ALL
        .into_iter()
        .find(|state| state.as_str() == name)
        .unwrap_or_else(|| panic!("unknown state {name:?}"))
}

/// Runs `script`, steps separated by commas: `"T state"` tells the budget the target is in
/// `state` at second T, `"T ?"` polls at second T, `"T reset"` is a person's reset. Each poll
/// is rendered `"T attempt N"`, `"T escalate N"` or `"T -"`; the rendered polls, joined by
/// commas, must equal `expected`.
#[track_caller]
fn check(policy: BudgetPolicy, script: &str, expected: &str) {
    let start = base();
    let mut budget = Budget::new(policy);
    let mut got = Vec::new();
    for step in script.split(',').map(str::trim) {
        let (t, what) = step.split_once(' ').expect("T WHAT");
        let t: u64 = t.parse().expect("seconds");
        let now = start + secs(t);
        match what {
            "?" => got.push(match budget.poll_action(now) {
                Some(Action::Attempt { attempt }) => format!("{t} attempt {attempt}"),
                Some(Action::Escalate { attempts }) => format!("{t} escalate {attempts}"),
                None => format!("{t} -"),
            }),
            "reset" => budget.reset(now),
            state => budget.handle_state(now, parse_state(state)),
        }
    }
    assert_eq!(got.join(", "), expected, "script: {script}");
}

#[test]
fn nothing_happens_while_the_target_does_not_need_recovery() {
    check(
        policy(),
        "0 unknown, 0 ?, 1 healthy, 1 ?, 2 degraded, 2 ?, 3 failing, 3 ?, 4 recovering, 4 ?",
        "0 -, 1 -, 2 -, 3 -, 4 -",
    );
}

#[test]
fn the_first_attempt_runs_at_once_on_unhealthy_or_down() {
    check(policy(), "0 unhealthy, 0 ?, 0 ?", "0 attempt 1, 0 -");
    check(policy(), "5 down, 5 ?", "5 attempt 1");
}

#[test]
fn a_target_that_stays_down_is_retried_with_doubling_backoff_then_escalated_once() {
    check(
        policy(),
        "0 down, 0 ?, 9 ?, 10 ?, 29 ?, 30 ?, 69 ?, 70 ?, 71 ?, 5000 ?",
        "0 attempt 1, 9 -, 10 attempt 2, 29 -, 30 attempt 3, 69 -, 70 escalate 3, 71 -, 5000 -",
    );
}

#[test]
fn the_backoff_is_capped_at_backoff_max() {
    let policy = BudgetPolicy {
        max_attempts: 6,
        window: secs(3600),
        ..policy()
    };
    // Waits 10, 20, 40, 40, 40.
    check(
        policy,
        "0 down, 0 ?, 10 ?, 30 ?, 70 ?, 109 ?, 110 ?, 150 ?, 190 ?",
        "0 attempt 1, 10 attempt 2, 30 attempt 3, 70 attempt 4, 109 -, 110 attempt 5, 150 attempt 6, 190 escalate 6",
    );
}

#[test]
fn a_crash_loop_keeps_its_count_through_short_recoveries() {
    // Healthy for 30 s each time, less than reset_after (60 s).
    check(
        policy(),
        "0 down, 0 ?, 5 recovering, 6 healthy, 36 failing, 37 unhealthy, 37 ?, \
         40 recovering, 41 healthy, 71 unhealthy, 71 ?, 80 healthy, 110 down, 150 ?",
        "0 attempt 1, 37 attempt 2, 71 attempt 3, 150 escalate 3",
    );
}

#[test]
fn a_re_failure_waits_out_the_backoff_from_the_last_attempt() {
    check(
        policy(),
        "0 down, 0 ?, 2 healthy, 4 down, 4 ?, 10 ?",
        "0 attempt 1, 4 -, 10 attempt 2",
    );
}

#[test]
fn staying_healthy_for_reset_after_forgets_attempts_and_backoff() {
    check(
        policy(),
        "0 down, 0 ?, 10 ?, 15 healthy, 74 down, 74 ?, 90 healthy, 150 down, 150 ?, 150 ?, 160 ?",
        // At 74 healthy only 59 s: attempt 3 counts on. From 90, 60 s healthy: reset.
        "0 attempt 1, 10 attempt 2, 74 attempt 3, 150 attempt 1, 150 -, 160 attempt 2",
    );
}

#[test]
fn a_break_in_the_healthy_stretch_starts_it_again() {
    check(
        policy(),
        "0 down, 0 ?, 10 healthy, 50 failing, 51 healthy, 100 down, 100 ?",
        "0 attempt 1, 100 attempt 2",
    );
    // Degraded counts as healthy: serving and passing.
    check(
        policy(),
        "0 down, 0 ?, 10 healthy, 40 degraded, 70 down, 70 ?, 70 ?",
        "0 attempt 1, 70 attempt 1, 70 -",
    );
}

#[test]
fn a_spent_budget_waits_for_a_person_or_a_long_healthy_stretch() {
    let spend = "0 down, 0 ?, 10 ?, 30 ?, 70 ?";
    check(
        policy(),
        &format!("{spend}, 100 ?, 100 reset, 100 ?, 110 ?"),
        "0 attempt 1, 10 attempt 2, 30 attempt 3, 70 escalate 3, 100 -, 100 attempt 1, 110 attempt 2",
    );
    check(
        policy(),
        &format!("{spend}, 80 healthy, 139 down, 139 ?, 140 healthy, 200 down, 200 ?"),
        "0 attempt 1, 10 attempt 2, 30 attempt 3, 70 escalate 3, 139 -, 200 attempt 1",
    );
}

#[test]
fn attempts_outside_the_window_do_not_count() {
    let policy = BudgetPolicy {
        max_attempts: 2,
        window: secs(100),
        ..policy()
    };
    // Both attempts are still in the window at 50: spent. The healthy stretch from 55 is
    // too short to reset it.
    check(
        policy,
        "0 down, 0 ?, 10 ?, 15 healthy, 50 down, 50 ?, 55 healthy, 110 down, 110 ?",
        "0 attempt 1, 10 attempt 2, 50 escalate 2, 110 -",
    );
    // Here the first attempt has aged out of the window by 105: the window slides.
    check(
        BudgetPolicy {
            max_attempts: 2,
            window: secs(100),
            reset_after: secs(1000),
            ..self::policy()
        },
        "0 down, 0 ?, 10 healthy, 20 down, 20 ?, 30 healthy, 105 down, 105 ?",
        "0 attempt 1, 20 attempt 2, 105 attempt 3",
    );
}

#[test]
fn poll_timeout_names_the_next_attempt_and_the_reset() {
    let start = base();
    let mut budget = Budget::new(policy());
    assert_eq!(budget.poll_timeout(), None);
    budget.handle_state(start, State::Down);
    assert_eq!(budget.poll_timeout(), None, "nothing holds the first back");
    assert_eq!(
        budget.poll_action(start),
        Some(Action::Attempt { attempt: 1 })
    );
    assert_eq!(budget.poll_timeout(), Some(start + secs(10)));
    budget.handle_state(start + secs(5), State::Healthy);
    assert_eq!(budget.poll_timeout(), Some(start + secs(65)), "the reset");
    budget.handle_state(start + secs(6), State::Recovering);
    assert_eq!(budget.poll_timeout(), None);
}

#[test]
fn status_shows_attempts_exhaustion_and_the_next_attempt() {
    let start = base();
    let mut budget = Budget::new(policy());
    budget.handle_state(start, State::Down);
    let status = budget.status(start);
    assert_eq!(status.next_attempt, Some(start));
    assert_eq!((status.attempts, status.max_attempts), (0, 3));
    for t in [0, 10, 30] {
        assert!(matches!(
            budget.poll_action(start + secs(t)),
            Some(Action::Attempt { .. })
        ));
    }
    let status = budget.status(start + secs(31));
    assert_eq!((status.attempts, status.attempts_in_window), (3, 3));
    assert_eq!(status.next_attempt, Some(start + secs(70)));
    assert!(!budget.is_exhausted(start + secs(31)));
    budget.poll_action(start + secs(70));
    let status = budget.status(start + secs(70));
    assert_eq!(status.exhausted_at, Some(start + secs(70)));
    assert_eq!(status.next_attempt, None);
    assert!(budget.is_exhausted(start + secs(70)));
    assert_eq!(budget.status(start + secs(601)).attempts_in_window, 2);
    // Healthy for reset_after: shown reset even before anything polls.
    budget.handle_state(start + secs(700), State::Healthy);
    assert!(budget.is_exhausted(start + secs(759)));
    assert!(!budget.is_exhausted(start + secs(760)));
    assert_eq!(budget.status(start + secs(760)).attempts, 0);
}

#[test]
fn past_attempts_and_escalations_restore_the_budget() {
    let start = base();
    let mut budget = Budget::new(policy());
    budget.handle_past_attempt(start);
    budget.handle_past_attempt(start + secs(10));
    budget.handle_state(start + secs(12), State::Down);
    assert_eq!(budget.poll_action(start + secs(12)), None);
    assert_eq!(
        budget.poll_action(start + secs(30)),
        Some(Action::Attempt { attempt: 3 })
    );
    let mut spent = Budget::new(policy());
    spent.handle_past_escalation(start);
    spent.handle_state(start, State::Down);
    assert_eq!(spent.poll_action(start + secs(1000)), None);
    assert!(spent.is_exhausted(start));
}

#[test]
fn delays_double_and_saturate() {
    let p = policy();
    let delays: Vec<u64> = (1..=6).map(|k| p.delay(k).as_secs()).collect();
    assert_eq!(delays, [0, 10, 20, 40, 40, 40]);
    let huge = BudgetPolicy {
        backoff_max: Duration::MAX,
        ..p
    };
    assert_eq!(huge.delay(u32::MAX), Duration::MAX);
    assert_eq!(huge.delay(40), Duration::MAX);
    assert_eq!(policy().time_to_spend(), secs(70));
}

#[test]
fn validation_names_the_field_and_the_fix() {
    assert_eq!(BudgetPolicy::default().validate(), Ok(()));
    assert_eq!(policy().validate(), Ok(()));
    let field = |p: BudgetPolicy| p.validate().unwrap_err().field;
    let message = |p: BudgetPolicy| p.validate().unwrap_err().message;
    assert_eq!(
        field(BudgetPolicy {
            max_attempts: 0,
            ..policy()
        }),
        "max_attempts"
    );
    assert!(
        message(BudgetPolicy {
            backoff: Duration::ZERO,
            ..policy()
        })
        .starts_with("backoff is zero")
    );
    assert_eq!(
        field(BudgetPolicy {
            reset_after: Duration::ZERO,
            ..policy()
        }),
        "reset_after"
    );
    assert_eq!(
        message(BudgetPolicy {
            backoff_max: secs(5),
            ..policy()
        }),
        "backoff_max (5s) is shorter than backoff (10s); make it at least backoff"
    );
    let short = message(BudgetPolicy {
        window: secs(70),
        ..policy()
    });
    assert!(
        short.starts_with("window (70s) cannot hold 3 attempts with their backoff, which take 70s"),
        "{short}"
    );
}

/// One step of a property test: wait `dt` seconds, then a state or a poll.
#[derive(Debug, Clone)]
enum Step {
    State(u64, State),
    Poll(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let state = prop::sample::select(State::ALL.to_vec());
    prop_oneof![
        (0u64..40, state).prop_map(|(dt, s)| Step::State(dt, s)),
        (0u64..40).prop_map(Step::Poll),
    ]
}

fn small_policy() -> impl Strategy<Value = BudgetPolicy> {
    (1u32..5, 1u64..20, 1u64..4, 1u64..200).prop_map(|(max, backoff, cap, reset)| {
        let mut p = BudgetPolicy {
            max_attempts: max,
            window: secs(1),
            backoff: secs(backoff),
            backoff_max: secs(backoff * cap),
            reset_after: secs(reset),
        };
        p.window = p.time_to_spend() + secs(1 + backoff);
        p
    })
}

proptest! {
    /// Whatever the target does: never more than max_attempts attempts in any window,
    /// consecutive attempts since a reset at least their backoff apart, one escalation per
    /// spent budget and no attempt after it until a reset.
    #[test]
    fn the_limits_hold_for_any_history(policy in small_policy(), steps in prop::collection::vec(step(), 1..200)) {
        let start = base();
        let mut budget = Budget::new(policy.clone());
        let mut t = 0;
        let mut attempts: Vec<(u64, u32)> = Vec::new();
        let mut escalated = false;
        for step in steps {
            match step {
                Step::State(dt, state) => {
                    t += dt;
                    budget.handle_state(start + secs(t), state);
                }
                Step::Poll(dt) => {
                    t += dt;
                    match budget.poll_action(start + secs(t)) {
                        Some(Action::Attempt { attempt }) => {
                            if attempt == 1 {
                                escalated = false;
                                attempts.clear();
                            }
                            prop_assert!(!escalated, "attempt {attempt} at {t} after an escalation");
                            if let Some(&(prev_t, prev)) = attempts.last()
                                && attempt > 1
                            {
                                prop_assert_eq!(attempt, prev + 1);
                                prop_assert!(t - prev_t >= policy.delay(attempt).as_secs());
                            }
                            attempts.push((t, attempt));
                            let in_window = attempts
                                .iter()
                                .filter(|(at, _)| t - at < policy.window.as_secs())
                                .count();
                            prop_assert!(in_window <= policy.max_attempts as usize);
                        }
                        Some(Action::Escalate { .. }) => {
                            prop_assert!(!escalated, "two escalations without a reset");
                            escalated = true;
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// A target that never recovers, polled whenever the budget asks, gets exactly
    /// max_attempts attempts and one escalation, within the window.
    #[test]
    fn a_target_that_never_recovers_is_escalated(policy in small_policy()) {
        prop_assert_eq!(policy.validate(), Ok(()));
        let start = base();
        let mut budget = Budget::new(policy.clone());
        budget.handle_state(start, State::Down);
        let mut now = start;
        let mut log = Vec::new();
        for _ in 0..(policy.max_attempts + 5) {
            if let Some(action) = budget.poll_action(now) {
                log.push(action);
            }
            match budget.poll_timeout() {
                Some(next) => now = next.max(now),
                None => break,
            }
        }
        let attempts = (1..=policy.max_attempts).map(|attempt| Action::Attempt { attempt });
        let expected: Vec<Action> = attempts
            .chain([Action::Escalate { attempts: policy.max_attempts }])
            .collect();
        prop_assert_eq!(log, expected);
        prop_assert!(now - start < policy.window);
        prop_assert!(budget.is_exhausted(now));
    }
}
