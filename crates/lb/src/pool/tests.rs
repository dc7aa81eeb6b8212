//! The pool's rules on simulated time: rotation by state, drain, 503 readiness, ejection
//! and its limit, slow start, panic, and the "none available" answer.

use std::time::{Duration, Instant};

use vitals_config::lb::{Backend, Balance, Outlier, Pool, defaults};
use vitals_core::machine::{State, Thresholds};

use super::PoolState;
use super::Tried::{Answered, NoAnswer, ServerError};

pub(super) fn base() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(super) fn pool(n: usize, tune: impl FnOnce(&mut Pool)) -> PoolState {
    let mut pool = Pool {
        id: "web".into(),
        balance: Balance::RoundRobin,
        health_path: "/readyz".into(),
        health_check: vitals_config::lb::HealthCheck::Http,
        schedule: vitals_config::default_cadence(),
        thresholds: Thresholds::default(),
        panic_threshold: 0.0,
        slow_start: Duration::ZERO,
        connect_timeout: defaults::CONNECT_TIMEOUT,
        request_timeout: defaults::REQUEST_TIMEOUT,
        retry_budget: defaults::RETRY_BUDGET,
        retry_min_per_second: defaults::RETRY_MIN_PER_SECOND,
        idempotent_methods: Vec::new(),
        outlier: Outlier {
            consecutive_failures: 2,
            base_ejection: Duration::from_secs(10),
            max_ejection_percent: 50.0,
        },
        protocol: vitals_config::lb::Protocol::Http1,
        tls: None,
        backends: (0..n)
            .map(|i| Backend {
                name: format!("b{i}"),
                address: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
                weight: 1,
            })
            .collect(),
    };
    tune(&mut pool);
    PoolState::new(&pool, 1)
}

pub(super) fn healthy(state: &mut PoolState, now: Instant) {
    for i in 0..state.backends.len() {
        state.handle_state(now, i, State::Healthy);
    }
}

/// Which backends `n` picks reach (each try released at once).
fn picks(state: &mut PoolState, now: Instant, n: usize) -> Vec<usize> {
    let mut seen = vec![0; state.backends.len()];
    for _ in 0..n {
        let i = state.pick(now, &[]).unwrap();
        state.release(i, now);
        seen[i] += 1;
    }
    seen
}

#[test]
fn backends_start_unknown_and_out_of_rotation() {
    let t = base();
    let mut state = pool(2, |_| {});
    let error = state.pick(t, &[]).unwrap_err();
    assert_eq!(
        error.to_string(),
        "no backend of pool \"web\" is available: 2 backends: 2 not checked yet"
    );
}

#[test]
fn failing_stays_in_rotation_unhealthy_and_recovering_do_not() {
    let t = base();
    let mut state = pool(3, |_| {});
    healthy(&mut state, t);
    state.handle_state(t, 0, State::Failing);
    state.handle_state(t, 1, State::Unhealthy);
    state.handle_state(t, 2, State::Recovering);
    assert_eq!(picks(&mut state, t, 4), vec![4, 0, 0]);
    state.handle_state(t, 0, State::Down);
    let error = state.pick(t, &[]).unwrap_err().to_string();
    assert!(
        error.ends_with("3 backends: 3 failing their health checks"),
        "{error}"
    );
}

#[test]
fn drained_and_not_ready_backends_get_no_new_requests() {
    let t = base();
    let mut state = pool(3, |_| {});
    healthy(&mut state, t);
    state.set_drained(0, true);
    state.handle_check(t, 1, false, true);
    assert_eq!(picks(&mut state, t, 5), vec![0, 0, 5]);
    state.set_drained(0, false);
    state.handle_check(t, 1, true, false);
    assert_eq!(picks(&mut state, t, 6), vec![2, 2, 2]);
}

#[test]
fn consecutive_failures_eject_for_longer_each_time_until_a_check_passes() {
    let t = base();
    let mut state = pool(4, |_| {});
    healthy(&mut state, t);
    assert_eq!(state.handle_result(t, 0, NoAnswer), None);
    let first = state.handle_result(t, 0, NoAnswer).unwrap();
    assert_eq!(first.duration, Duration::from_secs(10));
    assert_eq!(picks(&mut state, t, 3), vec![0, 1, 1, 1]);
    // The ejection ends on its own...
    let later = t + Duration::from_secs(10);
    assert_eq!(picks(&mut state, later, 4), vec![1, 1, 1, 1]);
    // ...the next one lasts twice as long, unless a passing check ends it.
    state.handle_result(later, 0, NoAnswer);
    let second = state.handle_result(later, 0, NoAnswer).unwrap();
    assert_eq!(second.duration, Duration::from_secs(20));
    state.handle_check(later, 0, true, false);
    assert_eq!(picks(&mut state, later, 4), vec![1, 1, 1, 1]);
    // A success in between resets the count.
    state.handle_result(later, 1, NoAnswer);
    state.handle_result(later, 1, Answered);
    assert_eq!(state.handle_result(later, 1, NoAnswer), None);
}

#[test]
fn at_most_the_configured_share_is_ejected_but_always_one() {
    let t = base();
    let mut state = pool(3, |p| p.outlier.max_ejection_percent = 10.0);
    healthy(&mut state, t);
    for i in 0..3 {
        state.handle_result(t, i, NoAnswer);
        state.handle_result(t, i, NoAnswer);
    }
    assert_eq!(picks(&mut state, t, 4), vec![0, 2, 2]);
}

#[test]
fn slow_start_ramps_a_recovered_backend_up() {
    let t = base();
    let mut state = pool(2, |p| p.slow_start = Duration::from_secs(10));
    healthy(&mut state, t);
    state.handle_state(t, 0, State::Unhealthy);
    state.handle_state(t, 0, State::Healthy);
    // 10 % of the weight at first, half after half the window, all at the end.
    assert_eq!(picks(&mut state, t, 110), vec![10, 100]);
    assert_eq!(
        picks(&mut state, t + Duration::from_secs(5), 30),
        vec![10, 20]
    );
    assert_eq!(
        picks(&mut state, t + Duration::from_secs(10), 30),
        vec![15, 15]
    );
}

#[test]
fn below_the_panic_threshold_traffic_spreads_over_all_but_drained() {
    let t = base();
    let mut state = pool(4, |p| p.panic_threshold = 50.0);
    healthy(&mut state, t);
    state.handle_state(t, 0, State::Unhealthy);
    state.handle_state(t, 1, State::Down);
    // Two of four in rotation: not below 50 %.
    assert!(!state.panicking(t));
    assert_eq!(picks(&mut state, t, 4), vec![0, 0, 2, 2]);
    state.handle_state(t, 2, State::Unhealthy);
    assert!(state.panicking(t));
    state.set_drained(3, false);
    assert_eq!(picks(&mut state, t, 4), vec![1, 1, 1, 1]);
    // None in rotation: no panic, an answer at once.
    state.handle_state(t, 3, State::Unhealthy);
    assert!(state.pick(t, &[]).is_err());
}

#[test]
fn a_retry_goes_to_another_backend() {
    let t = base();
    let mut state = pool(2, |_| {});
    healthy(&mut state, t);
    let first = state.pick(t, &[]).unwrap();
    let second = state.pick(t, &[first]).unwrap();
    assert_ne!(first, second);
    let error = state.pick(t, &[first, second]).unwrap_err().to_string();
    assert!(error.contains("2 already tried"), "{error}");
    assert_eq!(state.backends[first].in_flight, 1);
}

#[test]
fn an_ejection_for_5xx_lasts_its_time_even_when_checks_pass() {
    let t = base();
    let mut state = pool(3, |_| {});
    healthy(&mut state, t);
    state.handle_result(t, 0, ServerError);
    assert!(state.handle_result(t, 0, ServerError).is_some());
    // Ready is not the same as working: the check passing does not bring it back...
    state.handle_check(t, 0, true, false);
    assert_eq!(picks(&mut state, t, 4), vec![0, 2, 2]);
    // ...its time running out does.
    assert_eq!(
        picks(&mut state, t + Duration::from_secs(10), 3),
        vec![1, 1, 1]
    );
}

/// Issue 11, item 3: the ejection count used to grow for ever (the n-th ejection lasting
/// n × base, however long ago the others were).
#[test]
fn the_ejection_count_decays_while_the_backend_serves_and_is_capped() {
    let t = base();
    let mut state = pool(4, |_| {});
    healthy(&mut state, t);
    let mut now = t;
    let mut durations = Vec::new();
    for _ in 0..12 {
        state.handle_result(now, 0, NoAnswer);
        let ejected = state.handle_result(now, 0, NoAnswer).unwrap();
        durations.push(ejected.duration.as_secs());
        now += ejected.duration;
    }
    // Back to back, each lasts one base longer, up to ten bases.
    assert_eq!(
        durations,
        [10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 100, 100]
    );
    assert_eq!(state.ejection_count(0, now), 12);
    // Three bases in rotation forgive three ejections...
    now += Duration::from_secs(30);
    assert_eq!(state.ejection_count(0, now), 9);
    // ...and a long healthy stretch all of them.
    now += Duration::from_secs(3600);
    assert_eq!(state.ejection_count(0, now), 0);
    state.handle_result(now, 0, NoAnswer);
    assert_eq!(
        state.handle_result(now, 0, NoAnswer).unwrap().duration,
        Duration::from_secs(10)
    );
}

/// Issue 11, item 3: a one-backend pool whose backend was ejected answered 503 to everyone
/// although its active checks passed.
#[test]
fn with_every_healthy_backend_ejected_the_pool_fails_open_to_them() {
    let t = base();
    let mut state = pool(1, |_| {});
    healthy(&mut state, t);
    state.handle_result(t, 0, NoAnswer);
    assert!(state.handle_result(t, 0, NoAnswer).is_some());
    assert!(!state.backends[0].in_rotation(t));
    assert!(state.failing_open(t));
    assert_eq!(state.pick(t, &[]), Ok(0));
    state.release(0, t);
    // Not for backends the active checks call unhealthy, nor drained ones.
    let mut state = pool(2, |_| {});
    healthy(&mut state, t);
    state.handle_result(t, 0, NoAnswer);
    state.handle_result(t, 0, NoAnswer);
    state.handle_state(t, 1, State::Unhealthy);
    assert!(state.failing_open(t));
    assert_eq!(picks(&mut state, t, 3), vec![3, 0]);
    state.set_drained(0, true);
    assert!(!state.failing_open(t));
    assert!(state.pick(t, &[]).is_err());
}
