//! Two-level detection on simulated time (issue 15): a heartbeat target's silence, or an
//! active target's failing check, is a suspicion; a refused confirmation takes the target
//! down at once, an answer says stalled (heartbeats) or changes nothing (active checks).

use super::*;

fn confirmed_active(id: &str) -> TargetSpec {
    let mut spec = TargetSpec {
        thresholds: Thresholds::default(), // fall 2, down_after 3
        ..active(id, 10)
    };
    if let Mode::Active { confirm, .. } = &mut spec.mode {
        *confirm = Some(Arc::new(vitals_probes::Confirm::tcp("127.0.0.1:9")));
    }
    spec
}

/// Answer every confirmation asked so far with `evidence`.
fn answer_all(sim: &mut Sim, evidence: &vitals_core::Evidence) {
    while let Some(due) = sim.fleet.poll_confirm() {
        let now = sim.now;
        sim.fleet.handle_confirmation(now, due, evidence.clone());
        sim.drain();
    }
}

fn answer(sim: &mut Sim, evidence: vitals_core::Evidence) {
    let due = sim.fleet.poll_confirm().expect("a confirmation is asked");
    let now = sim.now;
    sim.fleet.handle_confirmation(now, due, evidence);
    sim.drain();
}

#[test]
fn a_failing_active_target_whose_port_refuses_is_down_at_once() {
    use State::*;
    let mut sim = Sim::new(vec![confirmed_active("api")], Topology::default());
    sim.run_until(0.0);
    assert_eq!(sim.state("api"), Healthy);
    assert_eq!(
        sim.fleet.poll_confirm(),
        None,
        "nothing to confirm while it passes"
    );
    sim.set_down("api", true);
    sim.run_until(10.0);
    assert_eq!(sim.state("api"), Failing);
    answer(
        &mut sim,
        vitals_core::Evidence::Refused("tcp://127.0.0.1:9 refused the connection".into()),
    );
    assert_eq!(sim.state("api"), Down, "not after down_after (3) failures");
    assert_eq!(
        sim.transitions("api"),
        [
            (Unknown, Healthy),
            (Healthy, Failing),
            (Failing, Unhealthy),
            (Unhealthy, Down)
        ]
    );
    // It comes back by its checks, as from any down.
    sim.set_down("api", false);
    sim.run_until(300.0);
    assert_eq!(sim.state("api"), Healthy);
}

#[test]
fn a_failing_active_target_that_answers_follows_its_thresholds() {
    use State::*;
    let mut sim = Sim::new(vec![confirmed_active("api")], Topology::default());
    sim.run_until(0.0);
    sim.set_down("api", true);
    sim.run_until(10.0);
    answer(
        &mut sim,
        vitals_core::Evidence::Answered("tcp://127.0.0.1:9 answered in 0 ms".into()),
    );
    assert_eq!(sim.state("api"), Failing, "an answer changes nothing");
    sim.run_until(11.0);
    assert_eq!(sim.state("api"), Failing);
    // The next failures go the usual way (fall 2 → unhealthy, down_after 3 → down),
    // each asking again at most once per interval.
    let mut states = Vec::new();
    for t in [15.0, 20.0, 25.0, 30.0, 40.0] {
        sim.run_until(t);
        answer_all(
            &mut sim,
            &vitals_core::Evidence::Answered("answered".into()),
        );
        states.push(sim.state("api"));
    }
    assert!(
        states.contains(&Unhealthy) && states.last() == Some(&Down),
        "{states:?}"
    );
}

fn confirmed_passive(id: &str) -> TargetSpec {
    let mut spec = TargetSpec {
        thresholds: Thresholds::default(),
        ..passive(id, Duration::from_millis(100), Duration::from_millis(100))
    };
    if let Mode::Passive { confirm, .. } = &mut spec.mode {
        *confirm = Some(Arc::new(vitals_probes::Confirm::tcp("127.0.0.1:9")));
    }
    spec
}

#[test]
fn a_suspected_sender_that_refuses_is_down_at_once() {
    // Issue 15: with `confirm`, silence only raises suspicion; a refusal confirms it dead.
    use State::*;
    let mut sim = Sim::new(vec![confirmed_passive("w")], Topology::default());
    sim.beat("w", Signal::Beat(vitals_core::Status::Pass), None);
    sim.run_until(0.2);
    assert_eq!(sim.state("w"), Healthy, "suspected: nothing judged yet");
    let due = sim
        .fleet
        .poll_confirm()
        .expect("a confirmation at the suspicion");
    assert_eq!(due.started, sim.at(0.2).mono);
    sim.run_until(0.201);
    assert_eq!(sim.fleet.poll_confirm(), None, "one at a time");
    let now = sim.now;
    sim.fleet.handle_confirmation(
        now,
        due,
        vitals_core::Evidence::Refused("tcp://127.0.0.1:9 refused the connection".into()),
    );
    sim.drain();
    assert_eq!(sim.state("w"), Down);
    let reasons: Vec<String> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Transition(t) => Some(format!("{}>{} {}", t.from, t.to, t.reason)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons[1..],
        [
            "healthy>unhealthy confirmed dead by a second signal",
            "unhealthy>down confirmed dead by a second signal"
        ]
    );
    sim.run_until(5.0);
    assert_eq!(sim.fleet.poll_confirm(), None, "no more asking once dead");
    sim.beat("w", Signal::Beat(vitals_core::Status::Pass), None);
    assert_eq!(sim.state("w"), Recovering);
}

#[test]
fn a_stalled_sender_is_degraded_then_back_and_never_down() {
    use State::*;
    let mut sim = Sim::new(vec![confirmed_passive("w")], Topology::default());
    sim.beat("w", Signal::Beat(vitals_core::Status::Pass), None);
    // A 1.5 s SIGSTOP: every confirmation is answered by the kernel.
    let mut t = 0.2;
    while t < 1.5 {
        sim.run_until(t);
        answer_all(
            &mut sim,
            &vitals_core::Evidence::Answered("tcp://127.0.0.1:9 answered in 0 ms".into()),
        );
        assert_ne!(sim.state("w"), Down);
        t += 0.05;
    }
    assert_eq!(sim.state("w"), Degraded);
    sim.beat("w", Signal::Beat(vitals_core::Status::Pass), None);
    assert_eq!(sim.state("w"), Healthy);
    let states: Vec<State> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Transition(t) => Some(t.to),
            _ => None,
        })
        .collect();
    assert_eq!(states, [Healthy, Degraded, Healthy]);
    // One warning stored for the stall, not one a period.
    let warnings = sim
        .records
        .iter()
        .filter(|r| matches!(r, Record::Result { outcome, .. } if outcome.kind == Kind::Warn))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn a_paused_target_is_not_confirmed_dead() {
    use State::*;
    let mut sim = Sim::new(vec![confirmed_passive("w")], Topology::default());
    sim.beat("w", Signal::Beat(vitals_core::Status::Pass), None);
    let now = sim.now;
    sim.fleet
        .handle_command(
            now,
            super::super::Command::Pause {
                target: 0,
                paused: true,
            },
        )
        .unwrap();
    sim.drain();
    sim.run_until(0.2);
    if let Some(due) = sim.fleet.poll_confirm() {
        let now = sim.now;
        sim.fleet
            .handle_confirmation(now, due, vitals_core::Evidence::Refused("refused".into()));
        sim.drain();
    }
    assert_ne!(sim.state("w"), Down);
}

/// A supervisor saw the process behind a heartbeat target exit (`/ping/<id>/exited`): that
/// is first-hand, so the target is down at once, with or without a `confirm` address, and
/// its next beat brings it back as any beat does.
#[test]
fn an_exit_seen_by_its_supervisor_takes_a_heartbeat_target_down_at_once() {
    use State::*;
    let mut sim = Sim::new(
        vec![passive(
            "job",
            Duration::from_secs(60),
            Duration::from_secs(10),
        )],
        Topology::default(),
    );
    sim.run_until(0.0);
    sim.beat("job", Signal::Success, None);
    assert_eq!(sim.state("job"), Healthy);
    sim.run_until(5.0);
    sim.beat("job", Signal::Exited, None);
    assert_eq!(
        sim.state("job"),
        Down,
        "not after the deadline and the thresholds"
    );
    // Along the diagram's edges, at once (a heartbeat target falls after one failure).
    assert_eq!(
        sim.transitions("job"),
        [(Unknown, Healthy), (Healthy, Unhealthy), (Unhealthy, Down)]
    );
    // A second report of the same death changes nothing.
    sim.beat("job", Signal::Exited, None);
    assert_eq!(sim.transitions("job").len(), 3);
    // Restarted, it beats again: healthy by its thresholds, as from any down.
    for t in 6..12 {
        sim.run_until(f64::from(t));
        sim.beat("job", Signal::Success, None);
    }
    assert_eq!(sim.state("job"), Healthy);
}
