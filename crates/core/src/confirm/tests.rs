//! The second level's evidence rules, by example and as properties.

use proptest::prelude::*;

use super::*;

#[allow(clippy::disallowed_methods)] // the one clock read: a base for simulated time
fn base() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn confirmer() -> Confirmer {
    Confirmer::new(ConfirmConfig::for_period(ms(100)))
}

fn refused() -> Evidence {
    Evidence::Refused("connect to 127.0.0.1:9 refused".into())
}

fn answered() -> Evidence {
    Evidence::Answered("connected to 127.0.0.1:9 in 0 ms".into())
}

#[test]
fn a_crash_is_confirmed_by_a_refusal_after_the_suspicion() {
    let t0 = base();
    let mut c = confirmer();
    c.handle_heartbeat(t0);
    assert!(!c.poll_probe(t0), "nothing to confirm while alive");
    c.handle_suspicion(t0 + ms(300), true);
    assert_eq!(
        c.fact(),
        &Fact::Suspected {
            since: t0 + ms(300)
        }
    );
    assert_eq!(c.judgement(t0 + ms(300)), Judgement::Nothing);
    assert!(c.poll_probe(t0 + ms(300)));
    assert!(!c.poll_probe(t0 + ms(300)), "one probe at a time");
    c.handle_evidence(t0 + ms(301), t0 + ms(300), refused());
    assert!(c.fact().is_dead());
    assert_eq!(
        c.judgement(t0 + ms(301)),
        Judgement::Down("confirmed dead: connect to 127.0.0.1:9 refused".into())
    );
    assert_eq!(c.poll_timeout(), None, "no more probes once dead");
    let changes: Vec<&str> = std::iter::from_fn(|| c.poll_change())
        .map(|f| f.name())
        .collect();
    assert_eq!(changes, ["suspected", "dead"]);
    // A restarted process beats again: alive.
    c.handle_heartbeat(t0 + ms(5000));
    assert_eq!(c.fact(), &Fact::Alive);
}

#[test]
fn an_answer_means_stalled_which_fails_only_once_it_lasts() {
    let t0 = base();
    let mut c = confirmer();
    c.handle_suspicion(t0, true);
    assert!(c.poll_probe(t0));
    c.handle_evidence(t0 + ms(1), t0, answered());
    assert_eq!(c.fact().name(), "stalled");
    assert!(matches!(c.judgement(t0 + ms(1)), Judgement::Warn(_)));
    // Probed again every period while it lasts; the stall keeps its start.
    assert_eq!(c.poll_timeout(), Some(t0 + ms(100)));
    assert!(c.poll_probe(t0 + ms(100)));
    c.handle_evidence(t0 + ms(101), t0 + ms(100), answered());
    assert_eq!(
        c.fact(),
        &Fact::Stalled {
            since: t0,
            evidence: "connected to 127.0.0.1:9 in 0 ms".into()
        }
    );
    assert!(matches!(c.judgement(t0 + ms(10_001)), Judgement::Fail(_)));
    // A process that dies during its stall is confirmed then.
    assert!(c.poll_probe(t0 + ms(10_100)));
    c.handle_evidence(t0 + ms(10_101), t0 + ms(10_100), refused());
    assert!(c.fact().is_dead());
}

#[test]
fn no_answer_is_unreachable_never_dead() {
    let t0 = base();
    let mut c = confirmer();
    c.handle_suspicion(t0, true);
    for i in 0..100 {
        let at = t0 + ms(100 * i);
        assert!(c.poll_probe(at));
        c.handle_evidence(
            at + ms(50),
            at,
            Evidence::NoAnswer("no answer in 50 ms".into()),
        );
        assert_eq!(c.fact().name(), "unreachable");
    }
}

#[test]
fn a_refusal_without_suspicion_or_from_before_it_confirms_nothing() {
    let t0 = base();
    let mut c = confirmer();
    c.handle_heartbeat(t0);
    // Heartbeats arrive and the confirm address refuses: the address is wrong, not the sender.
    c.handle_evidence(t0 + ms(1), t0, refused());
    assert_eq!(c.fact(), &Fact::Alive);
    // A probe of the last suspicion answers during the next one: stale.
    c.handle_suspicion(t0 + ms(300), true);
    assert!(c.poll_probe(t0 + ms(300)));
    c.handle_heartbeat(t0 + ms(310));
    c.handle_suspicion(t0 + ms(700), true);
    c.handle_evidence(t0 + ms(701), t0 + ms(300), refused());
    assert_eq!(
        c.fact(),
        &Fact::Suspected {
            since: t0 + ms(700)
        }
    );
    // The stale probe no longer holds the slot: a new one starts.
    assert!(c.poll_probe(t0 + ms(701)));
}

#[test]
fn an_exit_seen_first_hand_confirms_at_once() {
    let t0 = base();
    let mut c = confirmer();
    c.handle_heartbeat(t0);
    c.handle_evidence(
        t0 + ms(5),
        t0 + ms(5),
        Evidence::Exited("exited with status 137".into()),
    );
    assert!(c.fact().is_dead());
}

#[test]
fn a_suspicion_lifted_without_a_heartbeat_is_alive_again() {
    let t0 = base();
    let mut c = confirmer();
    c.handle_suspicion(t0, true);
    c.handle_suspicion(t0 + ms(50), false);
    assert_eq!(c.fact(), &Fact::Alive);
    assert_eq!(c.poll_timeout(), None);
}

#[derive(Debug, Clone)]
enum Step {
    Beat,
    Suspect(bool),
    Probe,
    Answer(u8),
    Wait(u16),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        Just(Step::Beat),
        any::<bool>().prop_map(Step::Suspect),
        Just(Step::Probe),
        (0u8..4).prop_map(Step::Answer),
        (0u16..2000).prop_map(Step::Wait),
    ]
}

proptest! {
    /// Dead only ever follows a refusal, gathered by a probe started while the current
    /// suspicion held, or an exit; a heartbeat always makes the target alive; probes are one
    /// at a time; nothing panics.
    #[test]
    fn the_evidence_rules_hold(steps in prop::collection::vec(step(), 0..200)) {
        let t0 = base();
        let mut now = t0;
        let mut c = confirmer();
        let mut probes: Vec<Instant> = Vec::new();
        for s in steps {
            let was_dead = c.fact().is_dead();
            let suspected_since = c.suspected_since();
            match s {
                Step::Beat => {
                    c.handle_heartbeat(now);
                    prop_assert_eq!(c.fact(), &Fact::Alive);
                }
                Step::Suspect(on) => c.handle_suspicion(now, on),
                Step::Probe => {
                    let in_flight = !probes.is_empty() && c.poll_timeout().is_none() && !was_dead;
                    if c.poll_probe(now) {
                        prop_assert!(!in_flight);
                        prop_assert!(c.suspected_since().is_some());
                        probes.push(now);
                    }
                }
                Step::Answer(kind) => {
                    let started = probes.pop().unwrap_or(now);
                    let evidence = match kind {
                        0 => refused(),
                        1 => answered(),
                        2 => Evidence::NoAnswer("none".into()),
                        _ => Evidence::Exited("status 1".into()),
                    };
                    c.handle_evidence(now, started, evidence);
                    if c.fact().is_dead() && !was_dead {
                        let valid_refusal = kind == 0
                            && suspected_since.is_some_and(|since| started >= since);
                        prop_assert!(kind == 3 || valid_refusal, "dead without evidence");
                    }
                }
                Step::Wait(n) => now += ms(u64::from(n)),
            }
            if !c.fact().is_dead() && was_dead {
                prop_assert_eq!(c.fact(), &Fact::Alive, "only a heartbeat revives");
            }
        }
    }
}
