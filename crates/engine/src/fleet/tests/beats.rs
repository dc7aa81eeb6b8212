//! Heartbeat semantics on simulated time: deadlines, silence, runs, logs, throttled storage.

use super::*;

fn secs(n: f64) -> Duration {
    Duration::from_secs_f64(n)
}

fn results(sim: &Sim, id: &str) -> Vec<(Kind, Option<String>)> {
    sim.records
        .iter()
        .filter_map(|r| match r {
            Record::Result { target, outcome } if target == id => {
                Some((outcome.kind, outcome.output.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_silent_target_fails_at_its_deadline_then_once_per_period() {
    use State::*;
    let mut sim = Sim::new(
        vec![passive("job", secs(60.0), secs(10.0))],
        Topology::default(),
    );
    sim.run_until(69.0);
    assert_eq!(sim.state("job"), Unknown);
    sim.run_until(70.0); // never heard of: the first deadline is period + grace
    assert_eq!(sim.state("job"), Unhealthy);
    sim.run_until(130.0); // one more failure a period later
    assert_eq!(sim.state("job"), Down);
    assert_eq!(
        results(&sim, "job"),
        [
            (Kind::Fail, Some("no heartbeat for 1m 10s".into())),
            (Kind::Fail, Some("no heartbeat for 2m 10s".into())),
        ]
    );
    sim.beat("job", Signal::Success, None);
    assert_eq!(sim.state("job"), Healthy);
}

#[test]
fn a_sub_second_silence_is_said_in_milliseconds() {
    let mut sim = Sim::new(
        vec![passive("fast", secs(0.1), secs(0.2))],
        Topology::default(),
    );
    sim.beat("fast", Signal::Beat(vitals_core::Status::Pass), None);
    sim.run_until(0.3);
    let last = results(&sim, "fast").pop().unwrap();
    assert_eq!(last, (Kind::Fail, Some("no heartbeat for 300ms".into())));
}

#[test]
fn a_sub_second_sender_is_judged_at_its_own_pace_until_down() {
    // Issue 15: re-judged only every max(period, 1 s), a 100 ms sender killed at 0 was
    // failing at 0.3 s, unhealthy at 1.3 s and down at 2.3 s.
    use State::*;
    let fast = TargetSpec {
        thresholds: Thresholds::default(), // fall 2, down_after 3
        ..passive("fast", secs(0.1), secs(0.2))
    };
    let mut sim = Sim::new(vec![fast], Topology::default());
    sim.beat("fast", Signal::Beat(vitals_core::Status::Pass), None);
    sim.run_until(0.3);
    assert_eq!(sim.state("fast"), Failing);
    sim.run_until(0.4);
    assert_eq!(sim.state("fast"), Unhealthy);
    sim.run_until(0.5);
    assert_eq!(sim.state("fast"), Down);
    // Down, it is re-judged once a second, not ten times.
    let before = results(&sim, "fast").len();
    sim.run_until(2.5);
    assert_eq!(results(&sim, "fast").len() - before, 2);
}

#[test]
fn beats_keep_a_target_healthy_and_its_deadline_moves_with_them() {
    let mut sim = Sim::new(
        vec![passive("job", secs(10.0), secs(5.0))],
        Topology::default(),
    );
    for t in 1..=100 {
        sim.run_until(f64::from(t) * 10.0);
        sim.beat("job", Signal::Success, None);
    }
    assert_eq!(sim.state("job"), State::Healthy);
    // A hundred beats on time, no missed deadline.
    assert!(
        results(&sim, "job")
            .iter()
            .all(|(kind, _)| *kind == Kind::Pass)
    );
}

#[test]
fn a_target_beating_fast_keeps_one_deadline_entry_not_one_per_beat() {
    let mut sim = Sim::new(
        vec![passive("hb", secs(1.0), secs(1.0))],
        Topology::default(),
    );
    for n in 0..10_000 {
        sim.now = sim.at(f64::from(n) * 0.001);
        sim.beat("hb", Signal::Beat(vitals_core::Status::Pass), None);
    }
    assert!(
        sim.fleet.timers.len() <= 2,
        "{} entries",
        sim.fleet.timers.len()
    );
    // The pending entry moves on rather than judging: 2 s after the last beat, it is due.
    sim.run_until(10.0 + 1.9);
    assert_eq!(sim.state("hb"), State::Healthy);
    sim.run_until(10.0 + 2.1);
    assert_eq!(sim.state("hb"), State::Unhealthy);
}

#[test]
fn a_fast_heartbeat_stores_one_passing_result_a_second_and_every_failure() {
    let mut sim = Sim::new(
        vec![passive("hb", secs(1.0), secs(1.0))],
        Topology::default(),
    );
    for n in 0..500 {
        sim.now = sim.at(f64::from(n) * 0.01);
        let status = if n == 250 {
            vitals_core::Status::Fail
        } else {
            vitals_core::Status::Pass
        };
        sim.beat("hb", Signal::Beat(status), None);
    }
    let kinds: Vec<Kind> = results(&sim, "hb").into_iter().map(|(k, _)| k).collect();
    assert_eq!(kinds.iter().filter(|k| **k == Kind::Fail).count(), 1);
    let passes = kinds.iter().filter(|k| **k == Kind::Pass).count();
    assert_eq!(passes, 5, "one a second over five seconds: {kinds:?}");
    // UDP beats are not stored one row each.
    assert!(!sim.records.iter().any(|r| matches!(r, Record::Ping(_))));
}

#[test]
fn a_run_is_timed_from_its_start_with_the_same_run_id() {
    let mut sim = Sim::new(
        vec![passive("job", secs(3600.0), secs(60.0))],
        Topology::default(),
    );
    sim.beat("job", Signal::Start, Some("r1"));
    sim.now = sim.at(2.5);
    sim.beat("job", Signal::Start, Some("r2"));
    sim.now = sim.at(4.0);
    sim.beat("job", Signal::Success, Some("r1"));
    let pings: Vec<(Signal, Option<Duration>)> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Ping(ping) => Some((ping.signal, ping.duration)),
            _ => None,
        })
        .collect();
    // r2's start replaced r1's: r1's success is not r2's run, so it has no duration.
    assert_eq!(
        pings,
        [
            (Signal::Start, None),
            (Signal::Start, None),
            (Signal::Success, None)
        ]
    );
    sim.now = sim.at(5.0);
    sim.beat("job", Signal::Success, Some("r2"));
    let Some(Record::Ping(ping)) = sim
        .records
        .iter()
        .rev()
        .find(|r| matches!(r, Record::Ping(_)))
    else {
        panic!("a ping record");
    };
    assert_eq!(ping.duration, Some(secs(2.5)));
    assert_eq!(ping.target, "job");
}

#[test]
fn logs_judge_nothing_and_failures_and_exit_codes_fail() {
    use State::*;
    let mut sim = Sim::new(
        vec![passive("job", secs(3600.0), secs(60.0))],
        Topology::default(),
    );
    sim.beat("job", Signal::Success, None);
    sim.beat("job", Signal::Log, None);
    assert_eq!(sim.state("job"), Healthy);
    sim.beat("job", Signal::Exit(3), None);
    assert_eq!(sim.state("job"), Unhealthy);
    assert_eq!(
        results(&sim, "job").last().unwrap(),
        &(Kind::Fail, Some("job exited with status 3".into()))
    );
    sim.beat("job", Signal::Exit(0), None);
    assert_eq!(sim.state("job"), Healthy);
    sim.beat("job", Signal::Fail, None);
    assert_eq!(
        results(&sim, "job").last().unwrap(),
        &(Kind::Fail, Some("job reported failure".into()))
    );
    // Every ping is kept for history, logs included.
    let pings = sim
        .records
        .iter()
        .filter(|r| matches!(r, Record::Ping(_)))
        .count();
    assert_eq!(pings, 5);
}

#[test]
fn silence_while_isolated_or_paused_is_not_judged() {
    let topology = Topology {
        depends_on: HashMap::new(),
        canaries: vec!["gw".into()],
    };
    let mut sim = Sim::new(
        vec![active("gw", 10), passive("job", secs(30.0), secs(0.0))],
        topology,
    );
    sim.set_down("gw", true);
    sim.run_until(100.0);
    assert!(sim.fleet.is_isolated());
    assert_eq!(
        sim.state("job"),
        State::Unknown,
        "silence says more about the monitor"
    );
    // Connected again: the next recheck judges the silence.
    sim.set_down("gw", false);
    sim.run_until(140.0);
    assert_eq!(sim.state("job"), State::Unhealthy);

    let mut sim = Sim::new(
        vec![passive("job", secs(30.0), secs(0.0))],
        Topology::default(),
    );
    let target = sim.fleet.index_of("job").unwrap();
    sim.fleet.handle_command(
        sim.now,
        crate::fleet::Command::Pause {
            target,
            paused: true,
        },
    );
    sim.run_until(300.0);
    assert_eq!(sim.state("job"), State::Unknown);
}

#[test]
fn a_beat_for_an_active_target_is_ignored() {
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    let ping = PingRecord {
        target: String::new(),
        at: sim.now.wall,
        signal: Signal::Fail,
        rid: None,
        body: None,
        duration: None,
        source: None,
    };
    sim.fleet.handle_beat(sim.now, 0, ping.clone());
    sim.fleet.handle_beat(sim.now, 7, ping);
    sim.drain();
    assert!(sim.records.is_empty());
}

/// Issue 11, item 1: four forged `/fail` pings ran a recovery command three times. A
/// failure an untrusted HTTP ping reports is judged (and alerted) but never acted on; the
/// same target's silence, its verified UDP beats and a trusted target's pings are.
#[test]
fn untrusted_pings_never_make_recovery_act() {
    let untrusted = |id: &str| {
        let mut spec = passive(id, secs(60.0), secs(10.0));
        if let Mode::Passive { trusted_pings, .. } = &mut spec.mode {
            *trusted_pings = false;
        }
        spec
    };
    let mut sim = Sim::new(
        vec![
            untrusted("forged"),
            untrusted("silent"),
            untrusted("udp"),
            passive("keyed", secs(60.0), secs(10.0)),
        ],
        Topology::default(),
    );
    for id in ["forged", "silent", "udp", "keyed"] {
        sim.beat(id, Signal::Success, None);
    }
    sim.beat("forged", Signal::Fail, None);
    sim.beat("forged", Signal::Fail, None);
    sim.beat("udp", Signal::Beat(vitals_core::Status::Fail), None);
    sim.beat("udp", Signal::Beat(vitals_core::Status::Fail), None);
    sim.beat("keyed", Signal::Exit(3), None);
    sim.beat("keyed", Signal::Exit(3), None);
    sim.beat("silent", Signal::Success, None);
    sim.run_until(140.0); // two missed deadlines for every target but none beat since
    let acts = |id: &str| {
        sim.judged(id)
            .filter(|t| !t.to.is_serving())
            .map(|t| (t.to, t.act))
            .collect::<Vec<_>>()
    };
    use State::*;
    assert_eq!(acts("forged"), [(Unhealthy, false), (Down, false)]);
    assert_eq!(acts("udp"), [(Unhealthy, true), (Down, true)]);
    assert_eq!(acts("keyed"), [(Unhealthy, true), (Down, true)]);
    assert_eq!(acts("silent"), [(Unhealthy, true), (Down, true)]);
    // Coming back always reaches recovery, so its budget sees the target serve again.
    sim.beat("forged", Signal::Success, None);
    let back = sim.last("forged");
    assert_eq!((back.to, back.act), (Healthy, true));
}

/// Issue 11, item 2: alternating ok/fail pings stored one transition each (64,404 in 30 s).
/// While a heartbeat flaps, its changes go out at most once per `COLLAPSE_FOR`, the chain of
/// states stays unbroken, and the last one handed out is the state it ends in.
#[test]
fn flapping_pings_are_collapsed_into_few_transitions() {
    let mut spec = passive("flappy", secs(60.0), secs(10.0));
    spec.thresholds.flap = Some(vitals_core::machine::FlapRule {
        transitions: 4,
        within: secs(60.0),
    });
    let mut sim = Sim::new(vec![spec], Topology::default());
    // 30 s of alternating pings, ten a second: 300 changes of state, ending healthy.
    for step in 0..=300 {
        sim.run_until(f64::from(step) * 0.1);
        let signal = if step % 2 == 0 {
            Signal::Success
        } else {
            Signal::Fail
        };
        sim.beat("flappy", signal, None);
    }
    sim.run_until(31.0 + crate::COLLAPSE_FOR.as_secs_f64());
    let judged: Vec<_> = sim.judged("flappy").cloned().collect();
    // Four before the flap rule tripped, then one per window at most (none for a window
    // that ends in the state it began with).
    assert!(
        judged.len() <= 4 + 4,
        "{} transitions: {judged:#?}",
        judged.len()
    );
    assert!(
        judged.iter().any(|t| t
            .reason
            .contains("changes while flapping, collapsed into one")),
        "{judged:#?}"
    );
    for pair in judged.windows(2) {
        assert_eq!(pair[0].to, pair[1].from, "an unbroken chain: {judged:#?}");
    }
    assert_eq!(judged.last().map(|t| t.to), Some(sim.state("flappy")));

    // Calm again: changes go out one by one once the flag clears.
    for step in 0..10 {
        sim.run_until(200.0 + f64::from(step) * 30.0);
        sim.beat("flappy", Signal::Success, None);
    }
    sim.beat("flappy", Signal::Fail, None);
    let last = sim.last("flappy");
    assert_eq!((last.from, last.to), (State::Healthy, State::Unhealthy));
    assert!(!last.reason.contains("collapsed"), "{}", last.reason);
}
