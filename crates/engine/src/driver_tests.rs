//! The engine on tokio's paused clock: an active target walks failing → unhealthy → down on
//! schedule and back; a heartbeat target goes overdue and recovers; a real TCP target that is
//! killed is noticed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use vitals_probes::{Tcp, from_fn};

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use vitals_core::machine::{State, Thresholds};
use vitals_core::{Kind, Status};
use vitals_probes::Probe;

use crate::*;

fn cadence() -> Cadence {
    Cadence {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(2),
        jitter: Duration::ZERO,
        interval_changing: Duration::from_secs(5),
        interval_down: Duration::from_secs(60),
    }
}

fn switchable(up: &Arc<AtomicBool>) -> Arc<dyn Probe> {
    let up = Arc::clone(up);
    Arc::new(from_fn(move || {
        let up = up.load(Ordering::SeqCst);
        async move {
            if up {
                vitals_core::Report::pass()
            } else {
                vitals_core::Report::fail("connection refused")
            }
        }
    }))
}

fn drain(rx: &mut RecordReceiver) -> Vec<(State, State)> {
    let mut transitions = Vec::new();
    while let Some(record) = rx.try_recv() {
        if let Record::Transition(Transition { from, to, .. }) = record {
            transitions.push((from, to));
        }
    }
    transitions
}

fn options(restored: HashMap<String, Restored>, topology: Topology) -> Options {
    Options {
        restored,
        topology,
        max_concurrency: 16,
        clock: Clock::system(),
    }
}

async fn at(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}

#[tokio::test(start_paused = true)]
async fn an_active_target_goes_down_on_schedule_and_comes_back() {
    use State::*;
    let up = Arc::new(AtomicBool::new(true));
    let (tx, mut rx) = records(1024);
    let engine = Engine::start(
        vec![TargetSpec {
            id: "api".into(),
            name: "API".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Active {
                probe: switchable(&up),
                cadence: cadence(),
                confirm: None,
            },
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    at(1.0).await;
    assert_eq!(engine.view("api").unwrap().state, Healthy);
    up.store(false, Ordering::SeqCst);
    at(10.0).await; // t=11: the t=10 check failed
    assert_eq!(engine.view("api").unwrap().state, Failing);
    at(5.0).await; // t=16: t=15 (interval while changing: 5 s) failed again
    assert_eq!(engine.view("api").unwrap().state, Unhealthy);
    // Unhealthy is not "changing": back to the 10 s interval; t=25 fails the third time.
    at(10.0).await;
    assert_eq!(engine.view("api").unwrap().state, Down);
    up.store(true, Ordering::SeqCst);
    // Down: checked every 60 s; the t=85 check passes, then every 5 s while recovering.
    at(60.0).await;
    assert_eq!(engine.view("api").unwrap().state, Recovering);
    at(5.0).await;
    assert_eq!(engine.view("api").unwrap().state, Healthy);
    assert_eq!(
        drain(&mut rx),
        [
            (Unknown, Healthy),
            (Healthy, Failing),
            (Failing, Unhealthy),
            (Unhealthy, Down),
            (Down, Recovering),
            (Recovering, Healthy)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_heartbeat_target_goes_overdue_and_recovers_on_the_next_ping() {
    use State::*;
    let (tx, mut rx) = records(1024);
    let thresholds = Thresholds {
        fall: 1,
        rise: 1,
        down_after: 2,
        ..Thresholds::default()
    };
    let engine = Engine::start(
        vec![TargetSpec {
            id: "backup".into(),
            name: "nightly backup".into(),
            thresholds,
            mode: Mode::Passive {
                ping_id: "5a1c".into(),
                trusted_pings: true,
                confirm: None,
                expectation: Expectation::Period {
                    period: Duration::from_secs(60),
                    grace: Duration::from_secs(10),
                },
            },
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    let ping = |signal| PingRecord {
        target: String::new(),
        at: SystemTime::now(),
        signal,
        rid: None,
        body: None,
        duration: None,
        source: None,
    };
    engine.heartbeat("5a1c", ping(Signal::Success)).unwrap();
    assert_eq!(engine.view("backup").unwrap().state, Healthy);
    at(69.0).await;
    assert_eq!(engine.view("backup").unwrap().state, Healthy);
    at(2.0).await; // t=71: past 60 s + 10 s grace
    let view = engine.view("backup").unwrap();
    assert_eq!(view.state, Unhealthy);
    assert_eq!(
        view.last.unwrap().output.as_deref(),
        Some("no heartbeat for 1m 10s")
    );
    at(60.0).await; // still silent a period later: down
    assert_eq!(engine.view("backup").unwrap().state, Down);
    engine.heartbeat("5a1c", ping(Signal::Exit(0))).unwrap();
    assert_eq!(engine.view("backup").unwrap().state, Healthy);
    engine.heartbeat("5a1c", ping(Signal::Exit(3))).unwrap();
    let view = engine.view("backup").unwrap();
    assert_eq!(view.state, Unhealthy);
    assert_eq!(
        view.last.unwrap().output.as_deref(),
        Some("job exited with status 3")
    );
    assert_eq!(
        engine.heartbeat("nope", ping(Signal::Success)),
        Err(UnknownPing("nope".into()))
    );
    let transitions = drain(&mut rx);
    assert_eq!(
        transitions,
        [
            (Unknown, Healthy),
            (Healthy, Unhealthy),
            (Unhealthy, Down),
            (Down, Healthy),
            (Healthy, Unhealthy)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_restored_target_carries_on_from_its_saved_state() {
    let up = Arc::new(AtomicBool::new(false));
    let (tx, _rx) = records(1024);
    let mut restored = HashMap::new();
    restored.insert(
        "api".to_string(),
        Restored {
            state: State::Unhealthy,
            since: Some(SystemTime::now() - Duration::from_secs(30)),
            consecutive_failures: 2,
            consecutive_successes: 0,
            flapping: false,
            paused: false,
            maintenance_until: None,
        },
    );
    let engine = Engine::start(
        vec![TargetSpec {
            id: "api".into(),
            name: "API".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Active {
                probe: switchable(&up),
                cadence: cadence(),
                confirm: None,
            },
        }],
        tx,
        options(restored, Topology::default()),
    );
    assert_eq!(engine.view("api").unwrap().state, State::Unhealthy);
    at(0.5).await; // the first check after the restart is the third failure in a row
    assert_eq!(engine.view("api").unwrap().state, State::Down);
}

/// Real time and a real TCP server: kill the listener and the engine notices.
#[tokio::test]
async fn a_killed_tcp_target_is_noticed() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, _rx) = records(1024);
    let fast = Cadence {
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(50),
        jitter: Duration::ZERO,
        interval_changing: Duration::from_millis(20),
        interval_down: Duration::from_millis(50),
    };
    let engine = Engine::start(
        vec![TargetSpec {
            id: "tcp".into(),
            name: "tcp".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Active {
                probe: Arc::new(Tcp::new(addr.to_string())),
                cadence: fast,
                confirm: None,
            },
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    wait_for(&engine, State::Healthy).await;
    drop(listener);
    wait_for(&engine, State::Down).await;
    let output = engine.view("tcp").unwrap().last.unwrap().output.unwrap();
    assert!(output.contains("refused"), "{output}");
    let _listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    wait_for(&engine, State::Healthy).await;
}

async fn wait_for(engine: &Engine, state: State) {
    for _ in 0..400 {
        if engine.view("tcp").unwrap().state == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("never reached {state:?}: {:?}", engine.view("tcp"));
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_each_state_and_flag_change() {
    let up = Arc::new(AtomicBool::new(true));
    let (tx, _rx) = records(1024);
    let engine = Engine::start(
        vec![TargetSpec {
            id: "api".into(),
            name: "API".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Active {
                probe: switchable(&up),
                cadence: cadence(),
                confirm: None,
            },
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    let mut changes = engine.subscribe();
    at(1.0).await;
    let first = changes.try_recv().unwrap();
    assert_eq!((first.id.as_str(), first.state), ("api", State::Healthy));
    engine.set_paused("api", true);
    assert!(changes.try_recv().unwrap().paused);
    assert!(changes.try_recv().is_err(), "one change, one message");
}

#[tokio::test(start_paused = true)]
async fn pause_and_maintenance_leave_marks_and_maintenance_ends_on_time() {
    let up = Arc::new(AtomicBool::new(true));
    let (tx, mut rx) = records(1024);
    let engine = Engine::start(
        vec![TargetSpec {
            id: "api".into(),
            name: "API".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Active {
                probe: switchable(&up),
                cadence: cadence(),
                confirm: None,
            },
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    let marks = |rx: &mut RecordReceiver| {
        let mut marks = Vec::new();
        while let Some(record) = rx.try_recv() {
            if let Record::Marker {
                from, to, reason, ..
            } = record
            {
                marks.push(format!("{from} -> {to}: {reason}"));
            }
        }
        marks
    };
    at(1.0).await;
    engine.set_paused("api", true);
    engine.set_paused("api", true); // no change, no mark
    engine.set_paused("api", false);
    let until = SystemTime::now() + Duration::from_secs(60);
    engine.set_maintenance("api", Some(until));
    assert_eq!(
        marks(&mut rx)[..3],
        [
            "healthy -> paused: paused by an operator",
            "paused -> healthy: resumed by an operator",
            &format!(
                "healthy -> maintenance: maintenance until {}",
                humantime::format_rfc3339_seconds(until)
            ),
        ]
    );
    at(30.0).await;
    assert!(engine.view("api").unwrap().maintenance_until.is_some());
    at(31.0).await;
    assert_eq!(engine.view("api").unwrap().maintenance_until, None);
    assert_eq!(
        marks(&mut rx),
        ["maintenance -> healthy: maintenance window over"]
    );
    // Ending it by hand leaves one mark; a window already over is no window.
    engine.set_maintenance("api", Some(SystemTime::now() + Duration::from_secs(600)));
    engine.set_maintenance("api", None);
    engine.set_maintenance("api", Some(SystemTime::now() - Duration::from_secs(1)));
    assert_eq!(marks(&mut rx).len(), 2);
    at(700.0).await;
    assert!(
        marks(&mut rx).is_empty(),
        "the cancelled window does not end twice"
    );
}

fn spec(id: &str, probe: Arc<dyn Probe>, interval: u64) -> TargetSpec {
    TargetSpec {
        id: id.into(),
        name: id.into(),
        thresholds: Thresholds::default(),
        mode: Mode::Active {
            probe,
            cadence: Cadence {
                interval: Duration::from_secs(interval),
                interval_changing: Duration::from_secs(interval),
                ..cadence()
            },
            confirm: None,
        },
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_dependency_blocks_its_dependents_and_names_them() {
    let db_up = Arc::new(AtomicBool::new(true));
    let everyone = Arc::new(AtomicBool::new(true));
    let (tx, _rx) = records(1024);
    let topology = Topology {
        depends_on: HashMap::from([
            ("api".to_string(), vec!["db".to_string()]),
            ("web".to_string(), vec!["api".to_string()]),
        ]),
        canaries: Vec::new(),
    };
    let engine = Engine::start(
        vec![
            spec("db", switchable(&db_up), 10),
            spec("api", switchable(&everyone), 10),
            spec("web", switchable(&everyone), 10),
        ],
        tx,
        options(HashMap::new(), topology),
    );
    at(1.0).await;
    db_up.store(false, Ordering::SeqCst);
    everyone.store(false, Ordering::SeqCst);
    at(30.0).await;
    assert_eq!(engine.view("web").unwrap().state, State::Down);
    assert_eq!(engine.blocked_by("web"), ["db"]);
    assert_eq!(engine.view("api").unwrap().blocked_by, ["db"]);
    assert!(
        engine.blocked_by("db").is_empty(),
        "the root is not blocked"
    );
    assert_eq!(engine.blocked_dependents("db"), ["api", "web"]);
    // The root comes back but api stays down: api is the root now, and web blocked by it.
    db_up.store(true, Ordering::SeqCst);
    at(130.0).await;
    assert_eq!(engine.view("db").unwrap().state, State::Healthy);
    assert!(engine.blocked_dependents("db").is_empty());
    assert!(engine.blocked_by("api").is_empty());
    assert_eq!(engine.blocked_by("web"), ["api"]);
    // api is on its own now (web is still api's doing).
    assert_eq!(
        engine.read(|fleet| fleet.unblocked_dependents("db")),
        [("api".to_string(), State::Down)]
    );
}

#[tokio::test(start_paused = true)]
async fn when_every_canary_fails_no_target_is_judged_down() {
    use State::*;
    // The monitor's own network goes away: canaries and targets all fail at once.
    let network = Arc::new(AtomicBool::new(true));
    let (tx, mut rx) = records(1024);
    let topology = Topology {
        depends_on: HashMap::new(),
        canaries: vec!["gateway".to_string(), "dns".to_string()],
    };
    let mut specs = vec![
        spec("gateway", switchable(&network), 2),
        spec("dns", switchable(&network), 2),
    ];
    for i in 0..5 {
        specs.push(spec(&format!("svc{i}"), switchable(&network), 10));
    }
    let engine = Engine::start(specs, tx, options(HashMap::new(), topology));
    at(1.0).await;
    network.store(false, Ordering::SeqCst);
    at(120.0).await;
    assert!(engine.is_isolated());
    let mut isolations = Vec::new();
    let mut target_states = Vec::new();
    while let Some(record) = rx.try_recv() {
        match record {
            Record::Isolation { isolated, .. } => isolations.push(isolated),
            Record::Transition(Transition { target, to, .. }) if target.starts_with("svc") => {
                target_states.push(to)
            }
            _ => {}
        }
    }
    assert_eq!(isolations, [true], "one isolation, declared once");
    assert!(
        target_states
            .iter()
            .all(|state| !matches!(state, Unhealthy | Down)),
        "no target judged down while isolated: {target_states:?}"
    );
    for i in 0..5 {
        assert!(engine.view(&format!("svc{i}")).unwrap().state.is_serving());
    }
    // Connectivity back: no longer isolated, and everything healthy.
    network.store(true, Ordering::SeqCst);
    at(30.0).await;
    assert!(!engine.is_isolated());
    assert_eq!(engine.view("svc0").unwrap().state, Healthy);
}

#[tokio::test(start_paused = true)]
async fn flapping_starts_and_stops_as_records_of_their_own() {
    let up = Arc::new(AtomicBool::new(true));
    let (tx, mut rx) = records(1024);
    let thresholds = Thresholds {
        fall: 1,
        rise: 1,
        down_after: 2,
        flap: Some(vitals_core::machine::FlapRule {
            transitions: 4,
            within: Duration::from_secs(60),
        }),
        ..Thresholds::default()
    };
    let engine = Engine::start(
        vec![TargetSpec {
            thresholds,
            ..spec("api", switchable(&up), 5)
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    // Up and down every check for a while, then steady.
    for _ in 0..6 {
        at(5.0).await;
        up.store(!up.load(Ordering::SeqCst), Ordering::SeqCst);
    }
    up.store(true, Ordering::SeqCst);
    at(300.0).await;
    let mut flaps = Vec::new();
    while let Some(record) = rx.try_recv() {
        if let Record::Flapping { flapping, .. } = record {
            flaps.push(flapping);
        }
    }
    assert_eq!(flaps, [true, false]);
    assert!(!engine.view("api").unwrap().flapping);
}

#[tokio::test(start_paused = true)]
async fn a_fast_heartbeat_keeps_one_passing_result_a_second_and_every_failure() {
    let (tx, mut rx) = records(100_000);
    let engine = Engine::start(
        vec![TargetSpec {
            id: "worker".into(),
            name: "worker".into(),
            thresholds: Thresholds::default(),
            mode: Mode::Passive {
                ping_id: "w".into(),
                trusted_pings: true,
                confirm: None,
                expectation: Expectation::Period {
                    period: Duration::from_millis(10),
                    grace: Duration::from_millis(100),
                },
            },
        }],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    let beat = |status| PingRecord {
        target: String::new(),
        at: SystemTime::now(),
        signal: Signal::Beat(status),
        rid: None,
        body: None,
        duration: None,
        source: None,
    };
    // Three seconds of a beat every 10 ms, one of them a failure.
    for n in 0..300 {
        let status = if n == 150 { Status::Fail } else { Status::Pass };
        engine.heartbeat("w", beat(status)).unwrap();
        at(0.01).await;
    }
    let mut kinds = Vec::new();
    while let Some(record) = rx.try_recv() {
        if let Record::Result { outcome, .. } = record {
            kinds.push(outcome.kind);
        }
    }
    let fails = kinds.iter().filter(|k| **k == Kind::Fail).count();
    assert_eq!(fails, 1, "every failure is kept: {kinds:?}");
    let passes = kinds.len() - fails;
    assert!(
        (3..=5).contains(&passes),
        "about one pass a second: {kinds:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_probe_is_a_failed_outcome_and_the_target_keeps_being_checked() {
    let calls = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    let probe: Arc<dyn Probe> = Arc::new(from_fn(move || {
        let call = counted.fetch_add(1, Ordering::SeqCst);
        async move {
            if call == 1 {
                panic!("index out of bounds");
            }
            vitals_core::Report::pass()
        }
    }));
    let (tx, mut rx) = records(1024);
    let engine = Engine::start(
        vec![spec("api", probe, 10)],
        tx,
        options(HashMap::new(), Topology::default()),
    );
    at(35.0).await; // checks at 0, 10 (panics), 20, 30
    assert_eq!(calls.load(Ordering::SeqCst), 4, "checked after the panic");
    let mut results = Vec::new();
    while let Some(record) = rx.try_recv() {
        if let Record::Result { outcome, .. } = record {
            results.push((outcome.kind, outcome.output));
        }
    }
    assert_eq!(results[1].0, Kind::Fail);
    assert_eq!(
        results[1].1.as_deref(),
        Some("check panicked: index out of bounds")
    );
    assert_eq!(engine.view("api").unwrap().state, State::Healthy);
}
