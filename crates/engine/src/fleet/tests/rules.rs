//! Root cause, isolation, recovery gating, pause, maintenance and schedules, each on
//! simulated time.

use super::*;
use crate::fleet::{Command, MAX_MAINTENANCE};
use crate::record::TimelineState;

fn depends(pairs: &[(&str, &[&str])]) -> Topology {
    Topology {
        depends_on: pairs
            .iter()
            .map(|(id, needs)| {
                (
                    id.to_string(),
                    needs.iter().map(|n| n.to_string()).collect(),
                )
            })
            .collect(),
        canaries: Vec::new(),
    }
}

#[test]
fn active_checks_run_on_their_cadence_and_a_failure_walks_the_states() {
    use State::*;
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    sim.run_until(0.0);
    assert_eq!(sim.state("api"), Healthy);
    sim.set_down("api", true);
    sim.run_until(25.0); // checks at 10 and 20
    assert_eq!(
        sim.transitions("api"),
        [(Unknown, Healthy), (Healthy, Unhealthy), (Unhealthy, Down)]
    );
    assert_eq!(sim.checks["api"], 3);
    sim.set_down("api", false);
    sim.run_until(30.0);
    assert_eq!(sim.state("api"), Healthy);
}

#[test]
fn a_dependents_failure_is_blocked_by_its_root_and_gets_no_recovery() {
    let mut sim = Sim::new(
        vec![active("db", 10), active("api", 10), active("web", 10)],
        depends(&[("api", &["db"]), ("web", &["api"])]),
    );
    sim.run_until(1.0);
    sim.set_down("db", true);
    sim.set_down("api", true);
    sim.set_down("web", true);
    sim.run_until(11.0);
    // db is judged first (table order), so its transition names nobody yet; api and web,
    // failing after it, are blocked by the root, not by api.
    let db = sim.last("db");
    assert_eq!(db.blocked_by, None);
    assert!(db.act, "a root's own trouble is acted on");
    for id in ["api", "web"] {
        let judged = sim.last(id);
        assert_eq!(judged.to, State::Unhealthy);
        assert_eq!(judged.blocked_by.as_deref(), Some("db"), "{id}");
        assert!(!judged.act, "{id}: restarting it would not help");
    }
    assert_eq!(sim.fleet.blocked_dependents("db"), ["api", "web"]);
    // The second failure: db goes down and its transition names what it took down.
    sim.run_until(21.0);
    let db = sim.last("db");
    assert_eq!(db.to, State::Down);
    assert_eq!(db.dependents, ["api", "web"]);
}

#[test]
fn a_root_coming_back_releases_what_still_fails_on_its_own() {
    let mut sim = Sim::new(
        vec![active("db", 10), active("api", 10), active("web", 10)],
        depends(&[("api", &["db"]), ("web", &["db"])]),
    );
    sim.run_until(1.0);
    for id in ["db", "api", "web"] {
        sim.set_down(id, true);
    }
    sim.run_until(11.0);
    // db comes back; web with it, api stays broken (its own bug now).
    sim.set_down("db", false);
    sim.set_down("web", false);
    let before = sim.records.len();
    sim.run_until(21.0);
    let released: Vec<(String, State)> = sim.records[before..]
        .iter()
        .filter_map(|record| match record {
            Record::Unblocked { target, state } => Some((target.clone(), *state)),
            _ => None,
        })
        .collect();
    // Released once db is back; web's own pass follows in the same round and needs nothing.
    assert_eq!(
        released,
        [
            ("api".to_string(), State::Unhealthy),
            ("web".to_string(), State::Unhealthy)
        ]
    );
    // A blocked target coming back is always acted on (the executor stands down).
    let web = sim.last("web");
    assert_eq!((web.to, web.act), (State::Healthy, true));
    // api is no longer blocked: its next failure is its own, and recovery may act on it.
    sim.run_until(31.0);
    let api = sim.last("api");
    assert_eq!(api.blocked_by, None);
    assert!(api.act);
}

#[test]
fn while_every_canary_fails_other_failures_are_kept_but_not_judged() {
    let topology = Topology {
        depends_on: HashMap::new(),
        canaries: vec!["gw".into(), "dns".into()],
    };
    let mut sim = Sim::new(
        vec![active("gw", 10), active("dns", 10), active("api", 10)],
        topology,
    );
    sim.run_until(1.0);
    for id in ["gw", "dns", "api"] {
        sim.set_down(id, true);
    }
    sim.run_until(11.0);
    assert!(sim.fleet.is_isolated());
    // The last canary's failure is covered by the one "isolated" notice.
    assert_eq!(sim.last("dns").blocked_by.as_deref(), Some("monitor"));
    // Each canary's timeline gets a mark that keeps its state, then the isolation itself.
    let unhealthy = TimelineState::Judged(State::Unhealthy);
    let marks: Vec<&Record> = sim
        .records
        .iter()
        .filter(|record| matches!(record, Record::Marker { .. } | Record::Isolation { .. }))
        .collect();
    assert!(
        matches!(
            marks.as_slice(),
            [
                Record::Marker { target: gw, from: f1, to: t1, .. },
                Record::Marker { target: dns, .. },
                Record::Isolation { isolated: true, canaries, .. },
            ] if gw == "gw" && dns == "dns" && *f1 == unhealthy && *t1 == unhealthy && canaries.len() == 2
        ),
        "{marks:?}"
    );
    // api's failures are stored but do not move it.
    sim.run_until(41.0);
    assert_eq!(sim.state("api"), State::Healthy);
    let api_fails = sim
        .records
        .iter()
        .filter(|r| matches!(r, Record::Result { target, outcome } if target == "api" && outcome.kind == Kind::Fail))
        .count();
    assert_eq!(api_fails, 4);
    // One canary answers: connected again, and api's next failure counts.
    sim.set_down("gw", false);
    sim.run_until(51.0);
    assert!(!sim.fleet.is_isolated());
    assert!(sim.records.iter().any(|r| matches!(
        r,
        Record::Isolation {
            isolated: false,
            ..
        }
    )));
    assert_eq!(sim.state("api"), State::Unhealthy);
}

#[test]
fn a_paused_target_is_not_checked_and_resumes_on_schedule() {
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    sim.run_until(1.0);
    let target = sim.fleet.index_of("api").unwrap();
    let shown = sim
        .fleet
        .handle_command(
            sim.now,
            Command::Pause {
                target,
                paused: true,
            },
        )
        .unwrap();
    assert!(shown.paused);
    sim.drain();
    sim.run_until(45.0);
    assert_eq!(sim.checks["api"], 1, "no check while paused");
    sim.fleet.handle_command(
        sim.now,
        Command::Pause {
            target,
            paused: false,
        },
    );
    sim.run_until(51.0);
    assert_eq!(
        sim.checks["api"], 2,
        "the schedule carried on: the t=50 check ran"
    );
    let marks: Vec<(&str, &str)> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Marker { from, to, .. } => Some((from.as_str(), to.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(marks, [("healthy", "paused"), ("paused", "healthy")]);
}

#[test]
fn a_maintenance_window_ends_by_itself_at_its_end() {
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    let target = sim.fleet.index_of("api").unwrap();
    let until = sim.at(90.0).wall;
    sim.fleet.handle_command(
        sim.now,
        Command::Maintenance {
            target,
            until: Some(until),
        },
    );
    sim.run_until(89.0);
    assert_eq!(
        sim.fleet.view("api").unwrap().maintenance_until,
        Some(until)
    );
    sim.run_until(90.0);
    assert_eq!(sim.fleet.view("api").unwrap().maintenance_until, None);
    let over = sim.records.iter().rev().find_map(|r| match r {
        Record::Marker { at, reason, .. } => Some((*at, reason.clone())),
        _ => None,
    });
    assert_eq!(over, Some((until, "maintenance window over".to_string())));
}

/// Issue 11, item 6: `{"for": "8000y"}` set an end past the year 9999 (every later listing
/// panicked formatting it), and a longer one overflowed. Windows, new or restored, end at
/// most a year and a day ahead.
#[test]
fn maintenance_windows_are_bounded_new_or_restored() {
    let far = epoch() + Duration::from_secs(8000 * 365 * 86_400);
    let restored = HashMap::from([(
        "db".to_string(),
        Restored {
            state: State::Healthy,
            since: Some(epoch()),
            consecutive_failures: 0,
            consecutive_successes: 1,
            flapping: false,
            paused: false,
            maintenance_until: Some(far),
        },
    )]);
    let mut sim = Sim::restored(
        vec![active("api", 3600), active("db", 3600)],
        Topology::default(),
        &restored,
    );
    let latest = epoch() + MAX_MAINTENANCE;
    assert_eq!(
        sim.fleet.view("db").unwrap().maintenance_until,
        Some(latest)
    );
    let target = sim.fleet.index_of("api").unwrap();
    let view = sim.fleet.handle_command(
        sim.now,
        Command::Maintenance {
            target,
            until: Some(far),
        },
    );
    assert_eq!(view.unwrap().maintenance_until, Some(latest));
    sim.drain();
    // The end is a date people can read, and it comes.
    assert!(sim.records.iter().any(|r| matches!(r,
        Record::Marker { reason, .. } if reason == "maintenance until 2027-01-02T00:00:00Z")));
    sim.run_until(MAX_MAINTENANCE.as_secs_f64());
    assert_eq!(sim.fleet.view("api").unwrap().maintenance_until, None);
}

#[test]
fn a_restored_maintenance_window_that_ended_while_stopped_ends_at_once() {
    let restored = HashMap::from([(
        "api".to_string(),
        Restored {
            state: State::Healthy,
            since: Some(epoch() - Duration::from_secs(3600)),
            consecutive_failures: 0,
            consecutive_successes: 5,
            flapping: false,
            paused: false,
            maintenance_until: Some(epoch() - Duration::from_secs(60)),
        },
    )]);
    let mut sim = Sim::restored(vec![active("api", 10)], Topology::default(), &restored);
    sim.run_until(0.0);
    assert_eq!(sim.fleet.view("api").unwrap().maintenance_until, None);
}

#[test]
fn passing_results_are_stored_without_their_output_and_failures_with_it() {
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    sim.run_until(0.0);
    sim.set_down("api", true);
    sim.run_until(10.0);
    let outputs: Vec<(Kind, Option<String>)> = sim
        .records
        .iter()
        .filter_map(|r| match r {
            Record::Result { outcome, .. } => Some((outcome.kind, outcome.output.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        outputs,
        [
            (Kind::Pass, None),
            (Kind::Fail, Some("connection refused".into()))
        ]
    );
    // The fleet itself still shows the latest output of every target.
    sim.set_down("api", false);
    sim.run_until(20.0);
    let last = sim.fleet.view("api").unwrap().last.unwrap();
    assert_eq!(last.output.as_deref(), Some("HTTP 200"));
}

#[test]
fn a_services_check_carries_on_from_its_saved_state_after_a_restart() {
    let restored = HashMap::from([(
        "orders/database".to_string(),
        Restored {
            state: State::Down,
            since: Some(epoch() - Duration::from_secs(60)),
            consecutive_failures: 3,
            consecutive_successes: 0,
            flapping: false,
            paused: false,
            maintenance_until: None,
        },
    )]);
    let mut sim = Sim::restored(vec![active("orders", 3600)], Topology::default(), &restored);
    sim.result_with_parts(0, Kind::Pass, vec![("database", Kind::Pass)]);
    // From its saved state (not from unknown); rise 1 for a service's checks: one pass.
    assert_eq!(
        sim.transitions("orders/database"),
        [(State::Down, State::Healthy)]
    );
    assert_eq!(sim.state("orders/database"), State::Healthy);
    // A service's own check is not in the dependency graph: never blocked, always acted on.
    let judged = sim.last("orders/database");
    assert_eq!(judged.blocked_by, None);
    assert!(judged.act);
}

#[test]
fn time_only_moves_forward_and_an_idle_fleet_has_nothing_due_but_its_checks() {
    let mut sim = Sim::new(vec![active("a", 5), active("b", 7)], Topology::default());
    let mut last = sim.fleet.poll_timeout().unwrap();
    for _ in 0..50 {
        sim.run_until(sim.elapsed() + 1.0);
        let next = sim.fleet.poll_timeout().unwrap();
        assert!(next >= last);
        last = next;
    }
    assert_eq!(sim.checks["a"], 11); // 0, 5, …, 50
    assert_eq!(sim.checks["b"], 8); // 0, 7, …, 49
}

/// Targets started together are checked at once, then evenly through the interval: over ten
/// seconds from the third on, no 100 ms window has more than 1.3 times its share of the checks
/// due. (Without phases, each target's period being its interval plus its own jitter, the
/// fullest window had 1.8 times its share.)
#[test]
fn targets_started_together_are_checked_evenly_through_the_interval() {
    const TARGETS: usize = 2_000;
    let specs = (0..TARGETS)
        .map(|i| {
            let mut spec = active(&format!("t{i}"), 1);
            if let Mode::Active { cadence, .. } = &mut spec.mode {
                cadence.jitter = Duration::from_millis(100);
            }
            spec
        })
        .collect();
    let mut sim = Sim::new(specs, Topology::default());
    let (from, to) = (sim.at(3.0).mono, sim.at(13.0).mono);
    let mut windows = vec![0u32; 100];
    let mut first = 0;
    while let Some(next) = sim.fleet.poll_timeout() {
        if next >= to {
            break;
        }
        sim.now = sim.at(next.duration_since(sim.start).as_secs_f64());
        sim.fleet.handle_timeout(sim.now);
        while let Some(due) = sim.fleet.poll_check() {
            if due.due == sim.start {
                first += 1;
            } else if due.due >= from {
                let window = due.due.duration_since(from).as_millis() / 100;
                windows[window as usize] += 1;
            }
            let outcome = Outcome::new(Kind::Pass, sim.now.wall, Duration::ZERO);
            sim.fleet.handle_result(sim.now, due, outcome, Vec::new());
        }
        sim.drain();
    }
    assert_eq!(first, TARGETS, "every target is checked at once");
    let total: u32 = windows.iter().sum();
    let share = f64::from(total) / windows.len() as f64;
    let fullest = windows.iter().copied().max().unwrap_or(0);
    assert!(
        f64::from(fullest) <= 1.3 * share,
        "the fullest 100 ms window has {fullest} checks due, {share:.0} on average"
    );
}
