//! [`Fleet::apply`]: targets added, changed and removed on a running fleet, what each keeps,
//! and that no index, check, deadline or dependency of the old set is left behind.

use super::*;
use crate::fleet::{Applied, Desired};
use crate::record::TimelineState;

fn keep(id: &str) -> Desired {
    Desired::Unchanged(id.to_owned())
}

impl Sim {
    fn apply(&mut self, desired: Vec<Desired>, topology: Topology) -> Applied {
        self.apply_restored(desired, topology, &HashMap::new())
    }

    fn apply_restored(
        &mut self,
        desired: Vec<Desired>,
        topology: Topology,
        restored: &HashMap<String, Restored>,
    ) -> Applied {
        let applied = self.fleet.apply(self.now, desired, &topology, restored);
        self.drain();
        applied
    }

    fn marks(&self, id: &str) -> Vec<String> {
        self.records
            .iter()
            .filter_map(|record| match record {
                Record::Marker { target, reason, .. } if target == id => Some(reason.clone()),
                _ => None,
            })
            .collect()
    }

    fn retired(&self) -> Vec<&str> {
        self.records
            .iter()
            .filter_map(|record| match record {
                Record::Retired { target } => Some(target.as_str()),
                _ => None,
            })
            .collect()
    }
}

fn depends_on(id: &str, needs: &str) -> Topology {
    Topology {
        depends_on: [(id.to_owned(), vec![needs.to_owned()])].into(),
        canaries: Vec::new(),
    }
}

#[test]
fn unchanged_targets_keep_their_state_counters_and_schedule_while_others_come_and_go() {
    use State::*;
    let mut sim = Sim::new(
        vec![active("api", 10), active("db", 10), active("old", 10)],
        Topology::default(),
    );
    sim.set_down("db", true);
    sim.run_until(15.0); // api, db, old checked at 0 and 10; db unhealthy then down
    assert_eq!(sim.state("db"), Down);
    let checks_before = sim.checks.clone();

    // db moves to index 0, api to 2, old goes, new comes: nothing unchanged notices.
    let applied = sim.apply(
        vec![keep("db"), Desired::Spec(active("new", 10)), keep("api")],
        Topology::default(),
    );
    assert_eq!(applied.added, ["new"]);
    assert!(applied.changed.is_empty());
    assert_eq!(applied.removed, ["old"]);
    assert_eq!(applied.unchanged, 2);
    assert_eq!(sim.state("db"), Down, "state kept");
    assert_eq!(
        sim.fleet.table[0].machine.consecutive_failures(),
        2,
        "counters kept"
    );
    assert!(sim.fleet.view("old").is_none());
    assert_eq!(sim.retired(), ["old"]);
    assert_eq!(
        sim.marks("old"),
        ["removed from the configuration: no longer watched"]
    );
    assert!(sim.marks("db").is_empty() && sim.marks("api").is_empty());

    // The new target is checked at once; the kept ones on their old schedule (20 s), once.
    sim.run_until(15.0);
    assert_eq!(sim.checks.get("new"), Some(&1));
    assert_eq!(sim.checks["api"], checks_before["api"]);
    sim.run_until(25.0);
    assert_eq!(sim.checks["api"], checks_before["api"] + 1);
    assert_eq!(sim.checks["db"], checks_before["db"] + 1);
    assert_eq!(
        sim.checks["old"], checks_before["old"],
        "a removed target is not checked"
    );
    // No transition of db was repeated: its chain goes on from down.
    assert_eq!(
        sim.transitions("db"),
        [(Unknown, Unhealthy), (Unhealthy, Down)]
    );
    sim.set_down("db", false);
    sim.run_until(35.0);
    assert_eq!(sim.transitions("db")[2].0, Down);
    assert_eq!(sim.state("db"), Healthy);
}

#[test]
fn a_changed_target_keeps_its_state_and_flags_and_starts_its_checks_again() {
    use State::*;
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    sim.set_down("api", true);
    sim.run_until(5.0);
    assert_eq!(sim.state("api"), Unhealthy);
    let paused = sim.fleet.handle_command(
        sim.now,
        crate::fleet::Command::Maintenance {
            target: 0,
            until: Some(sim.now.wall + Duration::from_secs(3600)),
        },
    );
    assert!(paused.is_some());

    // Interval 10 → 60, rise 1 → 3.
    let mut changed = active("api", 60);
    changed.thresholds.rise = 3;
    let checks = sim.checks["api"];
    let applied = sim.apply(vec![Desired::Spec(changed)], Topology::default());
    assert_eq!(applied.changed, ["api"]);
    assert_eq!(sim.state("api"), Unhealthy, "state kept");
    let view = sim.fleet.view("api").expect("watched");
    assert!(view.maintenance_until.is_some(), "flags kept");
    assert_eq!(sim.fleet.table[0].machine.consecutive_failures(), 0);
    assert_eq!(sim.fleet.table[0].machine.thresholds().rise, 3);
    assert_eq!(
        sim.marks("api").last().map(String::as_str),
        Some("its definition changed (configuration reload): checks and counters start again")
    );

    // Checked at once under the new definition, then every 60 s (not at 10 s any more).
    sim.set_down("api", false);
    sim.run_until(5.0);
    assert_eq!(sim.checks["api"], checks + 1);
    sim.run_until(64.0);
    assert_eq!(
        sim.checks["api"],
        checks + 1,
        "no check of the old schedule"
    );
    sim.run_until(65.0);
    assert_eq!(sim.checks["api"], checks + 2);
    assert_eq!(sim.state("api"), Recovering, "rise 3 needs a third pass");
    sim.run_until(125.0);
    assert_eq!(sim.state("api"), Healthy);
    assert_eq!(sim.last("api").from, Recovering);
}

#[test]
fn a_check_in_flight_across_a_reload_lands_on_its_target_or_is_dropped() {
    use State::*;
    let mut sim = Sim::new(
        vec![active("a", 10), active("b", 10), active("c", 10)],
        Topology::default(),
    );
    // Due at 0: take the three checks and hold them, as a driver running them would.
    sim.fleet.handle_timeout(sim.now);
    let due: Vec<Due> = std::iter::from_fn(|| sim.fleet.poll_check()).collect();
    assert_eq!(due.len(), 3);
    // a goes, b moves from index 1 to 0, c changes.
    sim.apply(
        vec![keep("b"), Desired::Spec(active("c", 10))],
        Topology::default(),
    );
    let fail = Outcome::new(Kind::Fail, sim.now.wall, Duration::ZERO);
    for due in due {
        sim.fleet
            .handle_result(sim.now, due, fail.clone(), Vec::new());
    }
    sim.drain();
    // b's result reached b at its new index; c's (old definition) and a's were dropped.
    assert_eq!(sim.transitions("b"), [(Unknown, Unhealthy)]);
    assert!(sim.transitions("c").is_empty());
    assert!(sim.transitions("a").is_empty());
    // c's fresh check runs now and b's next one at 10 s: one pending check each, no more.
    sim.run_until(0.0);
    assert_eq!(sim.checks.get("c"), Some(&1));
    assert_eq!(sim.checks.get("b"), None);
    sim.run_until(10.0);
    assert_eq!(sim.checks.get("b"), Some(&1));
    sim.run_until(19.0);
    assert_eq!((sim.checks["b"], sim.checks["c"]), (1, 2));
    assert_eq!(sim.state("b"), Healthy);
    assert_eq!(sim.state("c"), Healthy);
}

#[test]
fn heartbeat_targets_keep_their_deadline_unless_changed_and_ping_ids_follow_the_set() {
    use State::*;
    let period = Duration::from_secs(60);
    let grace = Duration::from_secs(10);
    let mut sim = Sim::new(
        vec![
            passive("cron", period, grace),
            passive("job", period, grace),
        ],
        Topology::default(),
    );
    sim.run_until(30.0);
    sim.beat("cron", Signal::Success, None);
    sim.beat("job", Signal::Success, None);
    // job's ping id changes (a new definition); cron is unchanged.
    let mut job = passive("job", Duration::from_secs(120), grace);
    job.mode = Mode::Passive {
        ping_id: "job-2".into(),
        trusted_pings: true,
        confirm: None,
        expectation: Expectation::Period {
            period: Duration::from_secs(120),
            grace,
        },
    };
    sim.apply(vec![keep("cron"), Desired::Spec(job)], Topology::default());
    assert_eq!(
        sim.fleet.index_of_ping("job"),
        None,
        "the old ping id is gone"
    );
    assert_eq!(sim.fleet.index_of_ping("job-2"), Some(1));
    assert_eq!(sim.fleet.index_of_ping("cron"), Some(0));
    // cron's deadline is still 30 + 60 + 10; job's is counted from the reload.
    sim.run_until(101.0);
    assert_eq!(sim.state("cron"), Unhealthy);
    assert_eq!(sim.state("job"), Healthy);
    sim.run_until(161.0);
    assert_eq!(sim.state("job"), Unhealthy);
    // Silent since the reload made its new detector (the old beat counts for nothing).
    let last = sim.fleet.view("job").and_then(|view| view.last?.output);
    assert_eq!(last.as_deref(), Some("no heartbeat for 2m 10s"));
}

#[test]
fn dependencies_and_canaries_are_worked_out_again_and_a_removed_root_blocks_nothing() {
    let mut sim = Sim::new(
        vec![active("db", 10), active("api", 10)],
        depends_on("api", "db"),
    );
    sim.set_down("db", true);
    sim.set_down("api", true);
    sim.run_until(1.0);
    assert_eq!(sim.fleet.blocked_by("api"), ["db"]);
    // db goes: api is impaired on its own account now.
    sim.apply(vec![keep("api")], Topology::default());
    assert!(sim.fleet.blocked_by("api").is_empty());
    assert_eq!(sim.retired(), ["db"]);

    // gw becomes the only canary while failing: the monitor is isolated at once.
    sim.set_down("gw", true);
    sim.apply(
        vec![keep("api"), Desired::Spec(active("gw", 10))],
        Topology::default(),
    );
    sim.run_until(2.0);
    assert!(!sim.fleet.is_isolated(), "no canaries configured yet");
    sim.apply(
        vec![keep("api"), keep("gw")],
        Topology {
            depends_on: HashMap::new(),
            canaries: vec!["gw".into()],
        },
    );
    assert!(sim.fleet.is_isolated());
    // Dropping the canaries ends isolation, and says so.
    sim.apply(vec![keep("api"), keep("gw")], Topology::default());
    assert!(!sim.fleet.is_isolated());
    let isolations: Vec<bool> = sim
        .records
        .iter()
        .filter_map(|record| match record {
            Record::Isolation { isolated, .. } => Some(*isolated),
            _ => None,
        })
        .collect();
    assert_eq!(isolations, [true, false]);
}

#[test]
fn a_target_added_back_carries_on_from_its_saved_state() {
    use State::*;
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    sim.run_until(1.0);
    sim.apply(vec![], Topology::default());
    assert!(sim.fleet.views().is_empty());
    let restored: HashMap<String, Restored> = [(
        "api".to_owned(),
        Restored {
            state: Healthy,
            since: Some(sim.now.wall),
            consecutive_failures: 0,
            consecutive_successes: 3,
            flapping: false,
            paused: false,
            maintenance_until: None,
        },
    )]
    .into();
    let applied = sim.apply_restored(
        vec![Desired::Spec(active("api", 10))],
        Topology::default(),
        &restored,
    );
    assert_eq!(applied.added, ["api"]);
    assert_eq!(sim.state("api"), Healthy);
    sim.set_down("api", true);
    sim.run_until(2.0);
    assert_eq!(
        sim.transitions("api"),
        [(Unknown, Healthy), (Healthy, Unhealthy)]
    );
}

#[test]
fn a_service_targets_own_checks_are_retired_with_it() {
    let mut sim = Sim::new(vec![active("orders", 10)], Topology::default());
    sim.result_with_parts(0, Kind::Pass, vec![("database", Kind::Pass)]);
    assert!(sim.fleet.view("orders/database").is_some());
    sim.apply(vec![], Topology::default());
    assert_eq!(sim.retired(), ["orders", "orders/database"]);
    assert!(sim.fleet.view("orders/database").is_none());
    assert_eq!(
        sim.fleet.poll_timeout(),
        None,
        "no timer of a removed target is left"
    );
    let marks: Vec<TimelineState> = sim
        .records
        .iter()
        .filter_map(|record| match record {
            Record::Marker { from, to, .. } => {
                assert_eq!(from, to);
                Some(*to)
            }
            _ => None,
        })
        .collect();
    assert_eq!(marks, [TimelineState::Judged(State::Healthy)]);
}

#[test]
fn a_repeated_id_counts_once_and_an_unknown_unchanged_id_is_ignored() {
    let mut sim = Sim::new(vec![active("api", 10)], Topology::default());
    let applied = sim.apply(
        vec![keep("api"), keep("api"), keep("ghost")],
        Topology::default(),
    );
    assert_eq!(applied.unchanged, 1);
    assert_eq!(sim.fleet.specs().len(), 1);
}
