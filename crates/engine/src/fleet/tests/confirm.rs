//! Two-level detection of active targets on simulated time (issue 15): a failing check is
//! a suspicion; a refused confirmation takes the target down at once.

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
        while let Some(due) = sim.fleet.poll_confirm() {
            let now = sim.now;
            sim.fleet.handle_confirmation(
                now,
                due,
                vitals_core::Evidence::Answered("answered".into()),
            );
            sim.drain();
        }
        states.push(sim.state("api"));
    }
    assert!(
        states.contains(&Unhealthy) && states.last() == Some(&Down),
        "{states:?}"
    );
}
