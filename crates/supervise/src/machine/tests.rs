//! The rows of docs/SUPERVISE.md on simulated time: each test drives the supervisor from
//! timeout to timeout and answers its probes, so seconds and minutes of kubelet's timing
//! are checked exactly, in microseconds.

use std::time::{Duration, Instant};

use super::*;

/// A supervisor on simulated time.
struct Sim {
    sup: Supervisor,
    t0: Instant,
    now: Instant,
    /// Every action so far, with the second it came at.
    log: Vec<(f64, Action)>,
    /// The generation quoted by the latest probe request.
    generation: u64,
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

fn timing(period: f64, failure: u32) -> ProbeTiming {
    ProbeTiming {
        period: secs(period),
        failure_threshold: failure,
        ..ProbeTiming::default()
    }
}

impl Sim {
    // The one clock reading: simulated time starts at an arbitrary instant.
    #[allow(clippy::disallowed_methods)]
    fn new(settings: Settings) -> Sim {
        let t0 = Instant::now();
        let mut sim = Sim {
            sup: Supervisor::new(settings, t0),
            t0,
            now: t0,
            log: Vec::new(),
            generation: 0,
        };
        sim.drain();
        sim
    }

    fn elapsed(&self) -> f64 {
        (self.now - self.t0).as_secs_f64()
    }

    fn drain(&mut self) -> Vec<Action> {
        let mut new = Vec::new();
        while let Some(action) = self.sup.poll_action() {
            if let Action::Probe { generation, .. } = action {
                self.generation = generation;
            }
            self.log.push((self.elapsed(), action.clone()));
            new.push(action);
        }
        new
    }

    /// Jump from timeout to timeout until `second`; the actions on the way, with their
    /// second. Probes asked for are left in flight.
    fn run_until(&mut self, second: f64) -> Vec<(f64, Action)> {
        let end = self.t0 + secs(second);
        let mut seen = Vec::new();
        while let Some(at) = self.sup.poll_timeout().filter(|at| *at <= end) {
            self.now = self.now.max(at);
            self.sup.handle_timeout(self.now);
            let when = self.elapsed();
            seen.extend(self.drain().into_iter().map(|a| (when, a)));
        }
        self.now = self.now.max(end);
        seen
    }

    fn answer(&mut self, kind: ProbeKind, success: bool) -> Vec<Action> {
        let output = if success { "ok" } else { "connection refused" };
        self.sup
            .handle_probe(self.now, kind, self.generation, success, output.to_string());
        self.drain()
    }

    /// Run until the next request for `kind`, answer it, return the second it was asked.
    fn probe(&mut self, kind: ProbeKind, success: bool) -> (f64, Vec<Action>) {
        loop {
            let at = self
                .sup
                .poll_timeout()
                .unwrap_or_else(|| panic!("no timeout while waiting for {kind:?}"));
            self.now = self.now.max(at);
            self.sup.handle_timeout(self.now);
            let asked = self
                .drain()
                .iter()
                .any(|a| matches!(a, Action::Probe { kind: k, .. } if *k == kind));
            if asked {
                let when = self.elapsed();
                return (when, self.answer(kind, success));
            }
        }
    }

    fn exit(&mut self, exit: Exit) -> Vec<Action> {
        self.sup.handle_exit(self.now, exit);
        self.drain()
    }

    fn signal(&mut self, sig: Sig) -> Vec<Action> {
        self.sup.handle_signal(self.now, sig);
        self.drain()
    }

    fn view(&self) -> View {
        self.sup.view(self.now)
    }
}

fn without_notes(actions: Vec<Action>) -> Vec<Action> {
    actions
        .into_iter()
        .filter(|a| !matches!(a, Action::Note(_)))
        .collect()
}

#[test]
fn kubernetes_defaults() {
    let t = ProbeTiming::default();
    assert_eq!(t.initial_delay, Duration::ZERO);
    assert_eq!(t.period, Duration::from_secs(10));
    assert_eq!(t.timeout, Duration::from_secs(1));
    assert_eq!(t.success_threshold, 1);
    assert_eq!(t.failure_threshold, 3);
    let s = Settings::default();
    assert_eq!(s.grace, Duration::from_secs(30));
    assert_eq!(s.restart, RestartPolicy::Always);
    assert_eq!(s.backoff.initial, Duration::from_secs(10));
    assert_eq!(s.backoff.max, Duration::from_secs(300));
    assert_eq!(s.backoff.reset_after, Duration::from_secs(600));
}

#[test]
fn the_child_starts_at_once_and_probes_wait_their_initial_delay_then_every_period() {
    let mut sim = Sim::new(Settings {
        liveness: Some(ProbeTiming {
            initial_delay: secs(5.0),
            ..ProbeTiming::default()
        }),
        ..Settings::default()
    });
    assert_eq!(sim.log[0], (0.0, Action::Spawn));
    let (first, _) = sim.probe(ProbeKind::Liveness, true);
    assert_eq!(first, 5.0);
    let (second, _) = sim.probe(ProbeKind::Liveness, true);
    assert_eq!(second, 15.0);
    let (third, _) = sim.probe(ProbeKind::Liveness, true);
    assert_eq!(third, 25.0);
}

#[test]
fn each_run_is_cut_at_its_timeout() {
    let mut sim = Sim::new(Settings {
        readiness: Some(ProbeTiming {
            timeout: secs(2.5),
            ..ProbeTiming::default()
        }),
        ..Settings::default()
    });
    let asked = sim.run_until(0.0);
    assert!(
        asked.iter().any(|(_, a)| matches!(
            a,
            Action::Probe { kind: ProbeKind::Readiness, timeout, .. } if *timeout == secs(2.5)
        )),
        "{asked:?}"
    );
}

#[test]
fn a_tick_that_finds_the_previous_run_in_flight_is_skipped() {
    let mut sim = Sim::new(Settings {
        liveness: Some(timing(1.0, 3)),
        ..Settings::default()
    });
    // Asked at 0; not answered; ticks at 1, 2, 3 find it in flight.
    let seen = sim.run_until(3.5);
    let asked: Vec<f64> = seen
        .iter()
        .filter(|(_, a)| matches!(a, Action::Probe { .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(asked, vec![0.0], "only the first: {:?}", sim.log);
    sim.answer(ProbeKind::Liveness, true);
    let (next, _) = sim.probe(ProbeKind::Liveness, true);
    assert_eq!(next, 4.0);
}

#[test]
fn liveness_fails_after_failure_threshold_consecutive_failures_then_term_grace_kill() {
    let mut sim = Sim::new(Settings {
        liveness: Some(timing(10.0, 3)),
        grace: secs(30.0),
        ..Settings::default()
    });
    // Two failures, a success: the count starts again.
    for ok in [false, false, true, false, false] {
        let (_, actions) = sim.probe(ProbeKind::Liveness, ok);
        assert!(without_notes(actions).is_empty());
    }
    let (at, actions) = sim.probe(ProbeKind::Liveness, false);
    assert_eq!(at, 50.0);
    assert_eq!(without_notes(actions), vec![Action::Signal(Sig::Term)]);
    assert_eq!(sim.view().phase, "stopping");
    // No probes while stopping; SIGKILL to the group exactly at the end of the grace.
    let seen = sim.run_until(79.9);
    assert!(without_notes(seen.into_iter().map(|(_, a)| a).collect()).is_empty());
    let seen = sim.run_until(80.0);
    assert_eq!(
        without_notes(seen.into_iter().map(|(_, a)| a).collect()),
        vec![Action::KillGroup]
    );
    // Killed, it exits; Always: restarted at once (the first restart has no back-off).
    let actions = sim.exit(Exit::Signal(9));
    assert_eq!(without_notes(actions), vec![Action::Spawn]);
    assert_eq!(sim.view().restarts, 1);
    assert_eq!(sim.view().last_exit, Some(137));
}

#[test]
fn a_child_that_exits_within_its_grace_is_not_killed() {
    let mut sim = Sim::new(Settings {
        liveness: Some(timing(1.0, 1)),
        grace: secs(5.0),
        restart: RestartPolicy::Never,
        ..Settings::default()
    });
    let (_, actions) = sim.probe(ProbeKind::Liveness, false);
    assert_eq!(without_notes(actions), vec![Action::Signal(Sig::Term)]);
    sim.run_until(2.0);
    let actions = sim.exit(Exit::Signal(15));
    assert_eq!(without_notes(actions), vec![Action::Exit(143)]);
    assert!(!sim.log.iter().any(|(_, a)| *a == Action::KillGroup));
    assert_eq!(sim.sup.poll_timeout(), None);
}

#[test]
fn a_probe_level_grace_period_overrides_the_supervisors_for_that_probe() {
    let mut sim = Sim::new(Settings {
        liveness: Some(ProbeTiming {
            grace: Some(secs(2.0)),
            ..timing(1.0, 1)
        }),
        grace: secs(30.0),
        ..Settings::default()
    });
    let (at, _) = sim.probe(ProbeKind::Liveness, false);
    assert_eq!(at, 0.0);
    let seen = sim.run_until(30.0);
    assert_eq!(
        seen.into_iter()
            .filter(|(_, a)| *a == Action::KillGroup)
            .map(|(t, _)| t)
            .collect::<Vec<_>>(),
        vec![2.0]
    );
    // A SIGTERM to the supervisor keeps the supervisor's own grace.
    let mut sim = Sim::new(Settings {
        liveness: Some(ProbeTiming {
            grace: Some(secs(2.0)),
            ..timing(1.0, 1)
        }),
        grace: secs(30.0),
        ..Settings::default()
    });
    sim.signal(Sig::Term);
    assert_eq!(sim.sup.poll_timeout(), Some(sim.t0 + secs(30.0)));
}

#[test]
fn a_zero_grace_kills_at_once() {
    let mut sim = Sim::new(Settings {
        liveness: Some(timing(1.0, 1)),
        grace: Duration::ZERO,
        ..Settings::default()
    });
    let (_, actions) = sim.probe(ProbeKind::Liveness, false);
    assert_eq!(
        without_notes(actions),
        vec![Action::Signal(Sig::Term), Action::KillGroup]
    );
}

#[test]
fn readiness_starts_failed_and_follows_its_thresholds() {
    let mut sim = Sim::new(Settings {
        readiness: Some(ProbeTiming {
            success_threshold: 2,
            failure_threshold: 2,
            period: secs(1.0),
            ..ProbeTiming::default()
        }),
        ..Settings::default()
    });
    assert!(!sim.view().ready, "not ready before the first run");
    sim.probe(ProbeKind::Readiness, true);
    assert!(!sim.view().ready, "one success of two");
    sim.probe(ProbeKind::Readiness, true);
    assert!(sim.view().ready);
    sim.probe(ProbeKind::Readiness, false);
    assert!(sim.view().ready, "one failure of two");
    sim.probe(ProbeKind::Readiness, true);
    sim.probe(ProbeKind::Readiness, false);
    assert!(sim.view().ready, "the count starts again after a success");
    let (_, actions) = sim.probe(ProbeKind::Readiness, false);
    assert!(!sim.view().ready);
    // Readiness never stops or restarts anything.
    assert!(without_notes(actions).is_empty());
    assert_eq!(sim.view().phase, "running");
}

#[test]
fn without_a_readiness_probe_a_started_child_is_ready() {
    let sim = Sim::new(Settings::default());
    assert!(sim.view().ready);
    let mut sim = Sim::new(Settings {
        startup: Some(timing(1.0, 3)),
        ..Settings::default()
    });
    assert!(!sim.view().ready, "not before the startup probe passed");
    sim.probe(ProbeKind::Startup, true);
    assert!(sim.view().ready);
}

#[test]
fn the_startup_probe_gates_liveness_and_readiness_whose_delays_start_when_it_passes() {
    let mut sim = Sim::new(Settings {
        startup: Some(timing(2.0, 10)),
        liveness: Some(ProbeTiming {
            initial_delay: secs(3.0),
            ..timing(5.0, 3)
        }),
        readiness: Some(ProbeTiming {
            initial_delay: secs(1.0),
            ..timing(5.0, 3)
        }),
        ..Settings::default()
    });
    for _ in 0..3 {
        sim.probe(ProbeKind::Startup, false);
    }
    // Startup asked at 0, 2, 4; nothing else asked meanwhile.
    assert!(
        !sim.log.iter().any(|(_, a)| matches!(
            a,
            Action::Probe {
                kind: ProbeKind::Liveness | ProbeKind::Readiness,
                ..
            }
        )),
        "{:?}",
        sim.log
    );
    assert_eq!(sim.view().phase, "starting");
    let (passed, _) = sim.probe(ProbeKind::Startup, true);
    assert_eq!(passed, 6.0);
    let (readiness, _) = sim.probe(ProbeKind::Readiness, true);
    assert_eq!(readiness, 7.0);
    let (liveness, _) = sim.probe(ProbeKind::Liveness, true);
    assert_eq!(liveness, 9.0);
    // The startup probe is not run again for this child.
    sim.run_until(60.0);
    let startups = sim
        .log
        .iter()
        .filter(|(_, a)| {
            matches!(
                a,
                Action::Probe {
                    kind: ProbeKind::Startup,
                    ..
                }
            )
        })
        .count();
    assert_eq!(startups, 4);
}

#[test]
fn a_failed_startup_probe_stops_the_child_like_a_failed_liveness_probe() {
    let mut sim = Sim::new(Settings {
        startup: Some(timing(1.0, 3)),
        restart: RestartPolicy::OnFailure,
        grace: secs(2.0),
        ..Settings::default()
    });
    sim.probe(ProbeKind::Startup, false);
    sim.probe(ProbeKind::Startup, false);
    let (at, actions) = sim.probe(ProbeKind::Startup, false);
    assert_eq!(at, 2.0);
    assert_eq!(without_notes(actions), vec![Action::Signal(Sig::Term)]);
    // It handles SIGTERM and exits 0: still a failure under OnFailure, so restarted.
    let actions = sim.exit(Exit::Code(0));
    assert_eq!(without_notes(actions), vec![Action::Spawn]);
}

#[test]
fn restart_policy_always_restarts_even_after_success() {
    let mut sim = Sim::new(Settings::default());
    assert_eq!(without_notes(sim.exit(Exit::Code(0))), vec![Action::Spawn]);
}

#[test]
fn restart_policy_on_failure_exits_on_success_and_restarts_on_failure() {
    let settings = Settings {
        restart: RestartPolicy::OnFailure,
        ..Settings::default()
    };
    let mut sim = Sim::new(settings.clone());
    assert_eq!(without_notes(sim.exit(Exit::Code(3))), vec![Action::Spawn]);
    assert_eq!(
        without_notes(sim.exit(Exit::Code(0))),
        vec![Action::Exit(0)]
    );
    let mut sim = Sim::new(settings);
    assert_eq!(
        without_notes(sim.exit(Exit::Signal(11))),
        vec![Action::Spawn]
    );
}

#[test]
fn restart_policy_never_exits_with_the_childs_code() {
    for (exit, code) in [
        (Exit::Code(0), 0),
        (Exit::Code(3), 3),
        (Exit::Signal(9), 137),
    ] {
        let mut sim = Sim::new(Settings {
            restart: RestartPolicy::Never,
            ..Settings::default()
        });
        assert_eq!(without_notes(sim.exit(exit)), vec![Action::Exit(code)]);
        assert_eq!(sim.view().phase, "exited");
        assert_eq!(sim.sup.poll_timeout(), None);
    }
}

#[test]
fn crash_loop_back_off_doubles_from_10s_to_5min() {
    let mut sim = Sim::new(Settings::default());
    let mut restarts_at = Vec::new();
    let mut crashed_at = 0.0;
    for _ in 0..9 {
        sim.run_until(crashed_at + 1.0);
        let actions = sim.exit(Exit::Code(1));
        if actions.contains(&Action::Spawn) {
            restarts_at.push(0.0);
        } else {
            assert!(!sim.view().ready);
            assert_eq!(sim.view().phase, "waiting");
            let spawn_at = sim.sup.poll_timeout().expect("a restart is due");
            restarts_at.push((spawn_at - sim.now).as_secs_f64());
            sim.run_until((spawn_at - sim.t0).as_secs_f64());
        }
        crashed_at = sim.elapsed();
    }
    assert_eq!(
        restarts_at,
        vec![0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    );
}

#[test]
fn ten_minutes_of_running_resets_the_back_off() {
    let mut sim = Sim::new(Settings::default());
    sim.exit(Exit::Code(1)); // at once
    sim.run_until(1.0);
    sim.exit(Exit::Code(1)); // 10 s
    sim.run_until(11.0);
    let spawned = sim.log.iter().filter(|(_, a)| *a == Action::Spawn).count();
    assert_eq!(spawned, 3);
    // Runs just under ten minutes: the loop goes on (20 s).
    sim.run_until(11.0 + 599.0);
    sim.exit(Exit::Code(1));
    let due = sim.sup.poll_timeout().unwrap();
    assert_eq!((due - sim.now).as_secs_f64(), 20.0);
    sim.run_until((due - sim.t0).as_secs_f64());
    // Runs ten minutes: restarted at once, and the next crash waits 10 s.
    let started = sim.elapsed();
    sim.run_until(started + 600.0);
    assert_eq!(without_notes(sim.exit(Exit::Code(1))), vec![Action::Spawn]);
    sim.run_until(started + 601.0);
    sim.exit(Exit::Code(1));
    let due = sim.sup.poll_timeout().unwrap();
    assert_eq!((due - sim.now).as_secs_f64(), 10.0);
}

#[test]
fn results_of_a_previous_child_are_ignored() {
    let mut sim = Sim::new(Settings {
        liveness: Some(timing(1.0, 1)),
        ..Settings::default()
    });
    sim.run_until(0.0);
    let old = sim.generation;
    sim.exit(Exit::Code(1)); // restarted at once
    sim.sup
        .handle_probe(sim.now, ProbeKind::Liveness, old, false, "late".into());
    assert!(without_notes(sim.drain()).is_empty());
    assert_eq!(sim.view().phase, "running");
}

#[test]
fn signals_are_forwarded_and_term_ends_supervision_with_the_childs_code() {
    let mut sim = Sim::new(Settings {
        grace: secs(10.0),
        ..Settings::default()
    });
    for sig in [Sig::Hup, Sig::Quit, Sig::Usr1, Sig::Usr2] {
        assert_eq!(without_notes(sim.signal(sig)), vec![Action::Signal(sig)]);
    }
    assert!(sim.view().ready);
    assert_eq!(
        without_notes(sim.signal(Sig::Term)),
        vec![Action::Signal(Sig::Term)]
    );
    assert!(!sim.view().ready, "not ready once stopping");
    assert!(sim.view().shutting_down);
    // Not restarted, whatever the policy: the supervisor exits with the child's code.
    assert_eq!(
        without_notes(sim.exit(Exit::Code(0))),
        vec![Action::Exit(0)]
    );

    let mut sim = Sim::new(Settings {
        grace: secs(10.0),
        ..Settings::default()
    });
    assert_eq!(
        without_notes(sim.signal(Sig::Int)),
        vec![Action::Signal(Sig::Int)]
    );
    let seen = sim.run_until(10.0);
    assert_eq!(
        without_notes(seen.into_iter().map(|(_, a)| a).collect()),
        vec![Action::KillGroup]
    );
    assert_eq!(
        without_notes(sim.exit(Exit::Signal(9))),
        vec![Action::Exit(137)]
    );
}

#[test]
fn term_while_waiting_to_restart_exits_at_once() {
    let mut sim = Sim::new(Settings::default());
    sim.exit(Exit::Code(1));
    sim.run_until(1.0);
    sim.exit(Exit::Code(1));
    assert_eq!(sim.view().phase, "waiting");
    assert_eq!(without_notes(sim.signal(Sig::Term)), vec![Action::Exit(0)]);
}

#[test]
fn term_during_a_probe_kill_keeps_the_kill_and_exits_instead_of_restarting() {
    let mut sim = Sim::new(Settings {
        liveness: Some(timing(1.0, 1)),
        grace: secs(5.0),
        ..Settings::default()
    });
    sim.probe(ProbeKind::Liveness, false);
    assert_eq!(
        without_notes(sim.signal(Sig::Term)),
        vec![Action::Signal(Sig::Term)]
    );
    assert_eq!(
        without_notes(sim.exit(Exit::Signal(15))),
        vec![Action::Exit(143)]
    );
}

#[test]
fn a_command_that_cannot_start_is_exit_127_not_a_crash_loop() {
    let mut sim = Sim::new(Settings::default());
    sim.sup
        .handle_spawn_failed(sim.now, "No such file or directory");
    assert_eq!(without_notes(sim.drain()), vec![Action::Exit(127)]);
}
