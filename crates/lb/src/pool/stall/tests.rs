//! The stall rules on simulated time.

use std::time::Duration;

use vitals_core::Evidence;

use super::super::tests::{base, healthy, pool};
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A pool of `n` healthy backends, each with 50 answers of 2 ms behind it, by `t`.
fn warmed(n: usize) -> (PoolState, Instant) {
    let mut state = pool(n, |_| {});
    let t0 = base();
    healthy(&mut state, t0);
    let mut t = t0;
    for _ in 0..50 {
        for _ in 0..n {
            let i = state.pick(t, &[]).unwrap();
            state.handle_answer(t + ms(2), i, t);
            state.release(i, t);
        }
        t += ms(10);
    }
    (state, t)
}

#[test]
fn overdue_is_ten_times_the_p99_and_at_least_100_ms() {
    let mut latencies: VecDeque<Duration> = (0..19).map(|_| ms(1)).collect();
    assert_eq!(overdue_after(&latencies), None, "too few answers to say");
    latencies.push_back(ms(1));
    assert_eq!(overdue_after(&latencies), Some(MIN_OVERDUE));
    let slow: VecDeque<Duration> = (0..100).map(|i| ms(if i < 98 { 5 } else { 30 })).collect();
    assert_eq!(overdue_after(&slow), Some(ms(300)));
}

#[test]
fn a_stalled_backend_is_out_in_about_100_ms_and_back_when_it_answers() {
    // Issue 15: a SIGSTOPped backend, 1 s active checks: it was out only after 1.6 s.
    let (mut state, t) = warmed(2);
    // Backend 0 stops answering; backend 1 goes on.
    let stuck = state.pick(t, &[]).unwrap();
    let other = 1 - stuck;
    let mut now = t;
    let mut asked = Vec::new();
    while asked.is_empty() {
        now += TICK;
        let i = state.pick(now, &[stuck]).unwrap();
        state.handle_answer(now + ms(2), i, now);
        state.release(i, now);
        asked = state.handle_stall_timeout(now + ms(2));
        assert!(now - t < ms(200), "not suspected in time");
    }
    assert_eq!(asked, [stuck]);
    assert!(now - t >= MIN_OVERDUE);
    assert!(
        !state.backends[stuck].in_rotation(now),
        "no new requests while suspect"
    );
    assert!(state.backends[other].in_rotation(now));
    assert_eq!(
        state.handle_stall_timeout(now + ms(5)),
        Vec::<usize>::new(),
        "asked once"
    );
    // The kernel of a stopped process completes the handshake: stalled, kept out.
    let ejected =
        state.handle_stall_confirmation(now, stuck, &Evidence::Answered("answered in 0 ms".into()));
    assert_eq!(ejected, None);
    assert!(matches!(
        state.backends[stuck].watch.verdict,
        Verdict::Stalled { .. }
    ));
    for _ in 0..10 {
        assert_ne!(state.pick(now, &[]).unwrap(), stuck);
        state.release(other, now);
    }
    // SIGCONT: its request in flight is answered, and it is back.
    state.handle_answer(now + ms(500), stuck, t);
    state.release(stuck, t);
    assert!(state.backends[stuck].in_rotation(now + ms(500)));
}

#[test]
fn a_gone_backend_is_ejected() {
    let (mut state, t) = warmed(2);
    let stuck = state.pick(t, &[]).unwrap();
    let other = 1 - stuck;
    let now = t + ms(150);
    state.handle_answer(now, other, now - ms(2));
    assert_eq!(state.handle_stall_timeout(now), [stuck]);
    let ejected = state.handle_stall_confirmation(now, stuck, &Evidence::Refused("refused".into()));
    assert_eq!(ejected.map(|e| e.index), Some(stuck));
    assert!(!state.backends[stuck].in_rotation(now));
    assert!(state.backends[stuck].ejected_until.is_some());
}

#[test]
fn a_backend_slow_for_everyone_is_never_suspect() {
    let (mut state, t) = warmed(2);
    // Both backends' requests wait; nobody answers.
    let a = state.pick(t, &[]).unwrap();
    let b = state.pick(t, &[]).unwrap();
    assert_ne!(a, b);
    for step in 1..100 {
        assert_eq!(
            state.handle_stall_timeout(t + TICK * step),
            Vec::<usize>::new()
        );
    }
    assert!(state.backends.iter().all(|b| b.in_rotation(t + ms(2000))));
    // Nor is one answering other requests while one of its requests is slow.
    let (mut state, t) = warmed(2);
    let slow = state.pick(t, &[]).unwrap();
    for step in 1..100 {
        let now = t + TICK * step;
        for i in 0..2 {
            state.start_try(i, now);
            state.handle_answer(now + ms(2), i, now);
            state.forget_try(i, now);
        }
        assert_eq!(state.handle_stall_timeout(now + ms(2)), Vec::<usize>::new());
    }
    assert!(state.backends[slow].in_rotation(t + ms(2000)));
}

#[test]
fn a_passing_readiness_check_ends_a_stall() {
    let (mut state, t) = warmed(2);
    let stuck = state.pick(t, &[]).unwrap();
    let now = t + ms(150);
    state.handle_answer(now, 1 - stuck, now - ms(2));
    state.handle_stall_timeout(now);
    state.handle_stall_confirmation(now, stuck, &Evidence::NoAnswer("none".into()));
    assert!(!state.backends[stuck].in_rotation(now));
    state.handle_check(now + ms(900), stuck, true, false);
    assert!(state.backends[stuck].in_rotation(now + ms(900)));
}

#[test]
fn the_last_backend_in_rotation_is_never_suspect_and_idle_peers_vouch() {
    let (mut state, t) = warmed(1);
    state.pick(t, &[]).unwrap();
    for step in 1..50 {
        assert!(state.handle_stall_timeout(t + TICK * step).is_empty());
    }
    // Two backends, the other idle (no answer lately, nothing waiting): it vouches.
    let (mut state, t) = warmed(2);
    let stuck = state.pick(t, &[]).unwrap();
    assert_eq!(state.handle_stall_timeout(t + ms(500)), [stuck]);
}
