//! The executor with real commands on real time (short durations, bounded polls): attempts
//! and their log, escalation once with the hook called, a person's reset, and a budget
//! restored from the log after a restart.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::config::{RecoveryAction, parse};

/// A target `t` whose recovery appends a line to `file` and exits with `code`.
fn target(file: &std::path::Path, code: i32) -> Target {
    let text = format!(
        "[[target]]\nid = \"t\"\nkind = \"tcp\"\naddress = \"127.0.0.1:9\"\n[target.recover]\ncommand = [\"sh\", \"-c\", \"echo ran >> {}; echo tried; exit {code}\"]\nmax_attempts = 2\nwindow = \"1m\"\nbackoff = \"200ms\"\nreset_after = \"300ms\"\n",
        file.display()
    );
    let config = parse(&text, "t.toml").unwrap_or_else(|e| panic!("{e}"));
    config.targets[0].clone()
}

fn initial(state: State) -> Initial {
    Initial {
        state,
        since: None,
        paused: false,
        maintenance_until: None,
    }
}

fn runs(file: &std::path::Path) -> usize {
    std::fs::read_to_string(file).map_or(0, |text| text.lines().count())
}

/// Polls `check` every 20 ms for up to 10 s.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_target_that_stays_down_gets_its_attempts_then_one_escalation() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let escalations = Arc::new(StdMutex::new(Vec::new()));
    let hook: EscalationHook = {
        let escalations = Arc::clone(&escalations);
        Arc::new(move |e| escalations.lock().unwrap().push(e))
    };
    let recoverer = Recoverer::start(
        &[target(&file, 3)],
        |_| Some(initial(State::Healthy)),
        Some(Arc::clone(&store)),
        Some(hook),
    );
    assert!(recoverer.covers("t") && !recoverer.covers("other"));
    assert_eq!(recoverer.status("t").unwrap().attempts, 0);
    recoverer.transition("t", State::Unhealthy);
    until("an escalation", || !escalations.lock().unwrap().is_empty()).await;
    assert_eq!(runs(&file), 2);
    let escalation = escalations.lock().unwrap()[0].clone();
    assert_eq!(
        (
            escalation.attempts,
            escalation.state,
            escalation.last_result.as_deref()
        ),
        (2, State::Unhealthy, Some("failed"))
    );
    assert_eq!(escalation.last_output.as_deref(), Some("tried\n"));
    let view = recoverer.status("t").unwrap();
    assert!(view.exhausted);
    assert_eq!(view.verdict(), "unhealthy — needs a person");
    recoverer.transition("t", State::Down);
    assert_eq!(
        recoverer.status("t").unwrap().verdict(),
        "down — needs a person"
    );

    let log = store.actions("t", 10).unwrap();
    let kinds: Vec<(ActionKind, u32, &str)> = log
        .iter()
        .rev()
        .map(|row| (row.kind, row.attempt, row.result.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ActionKind::Attempt, 1, "failed"),
            (ActionKind::Attempt, 2, "failed"),
            (ActionKind::Escalation, 2, "escalated"),
        ]
    );
    assert_eq!(log[2].exit_code, Some(3));
    assert_eq!(log[2].trigger.as_deref(), Some("unhealthy"));
    assert_eq!(log[2].output.as_deref(), Some("tried\n"));

    // Nothing more runs, whatever the time; a person's reset runs it again at once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&file), 2);
    let view = recoverer.reset("t", "api").await.unwrap();
    assert!(!view.exhausted);
    until("the attempt after the reset", || runs(&file) == 3).await;
    assert_eq!(escalations.lock().unwrap().len(), 1);
    let log = store.actions("t", 10).unwrap();
    assert!(
        log.iter()
            .any(|row| row.kind == ActionKind::Reset && row.action == "reset by api")
    );
}

#[tokio::test]
async fn a_recovered_target_resets_its_budget_after_reset_after() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let recoverer = Recoverer::start(
        &[target(&file, 0)],
        |_| None,
        Some(Arc::clone(&store)),
        None,
    );
    recoverer.transition("t", State::Down);
    until("the first attempt", || runs(&file) == 1).await;
    recoverer.transition("t", State::Recovering);
    recoverer.transition("t", State::Healthy);
    until("the reset", || {
        store
            .actions("t", 10)
            .unwrap()
            .first()
            .is_some_and(|row| row.kind == ActionKind::Reset)
    })
    .await;
    let log = store.actions("t", 10).unwrap();
    assert_eq!(log[0].action, "healthy for 300ms");
    assert_eq!(log[1].result, "ok");
    // A fresh budget: the next failure is attempt 1 again, at once.
    recoverer.transition("t", State::Down);
    until("a new first attempt", || runs(&file) == 2).await;
    until("its record", || {
        store.actions("t", 1).unwrap()[0].kind == ActionKind::Attempt
    })
    .await;
    assert_eq!(store.actions("t", 1).unwrap()[0].attempt, 1);
}

#[tokio::test]
async fn a_restarted_monitor_restores_a_spent_budget_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    let store = Arc::new(Store::open(dir.path()).unwrap());
    let first = Recoverer::start(
        &[target(&file, 1)],
        |_| None,
        Some(Arc::clone(&store)),
        None,
    );
    first.transition("t", State::Down);
    until("the escalation", || {
        first.status("t").is_some_and(|v| v.exhausted)
    })
    .await;
    until("its record", || {
        store.actions("t", 1).unwrap()[0].kind == ActionKind::Escalation
    })
    .await;
    drop(first);

    let again = Recoverer::start(
        &[target(&file, 1)],
        |_| {
            Some(Initial {
                since: Some(SystemTime::now()),
                ..initial(State::Down)
            })
        },
        Some(Arc::clone(&store)),
        None,
    );
    until("the restored budget", || {
        again.status("t").is_some_and(|v| v.exhausted)
    })
    .await;
    let view = again.status("t").unwrap();
    assert_eq!(
        (view.attempts, view.verdict().as_str()),
        (2, "down — needs a person")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(runs(&file), 2, "no attempt after the restart");
}

#[test]
fn actions_describe_themselves() {
    let http = RecoveryAction::Http {
        url: "http://127.0.0.1:9/restart".into(),
        method: "POST".into(),
        headers: Vec::new(),
    };
    assert_eq!(http.describe(), "POST http://127.0.0.1:9/restart");
    let command = RecoveryAction::Command(vec!["sh".into(), "-c".into(), "kill -HUP 1".into()]);
    assert_eq!(command.describe(), "sh -c \"kill -HUP 1\"");
}

#[tokio::test]
async fn nothing_is_attempted_while_paused_or_in_maintenance() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("runs");
    let recoverer = Recoverer::start(
        &[target(&file, 3)],
        |_| {
            Some(Initial {
                paused: true,
                ..initial(State::Healthy)
            })
        },
        None,
        None,
    );
    recoverer.transition("t", State::Down);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(runs(&file), 0, "a paused target's state is stale");
    let view = recoverer.status("t").unwrap();
    assert_eq!((view.held.as_deref(), view.attempts), (Some("paused"), 0));

    // Resumed into maintenance: still nothing, until the maintenance ends.
    let ends = SystemTime::now() + Duration::from_millis(500);
    recoverer.flags("t", false, Some(ends));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(runs(&file), 0, "failures in maintenance are expected");
    let held = recoverer.status("t").unwrap().held.unwrap();
    assert!(held.starts_with("maintenance until "), "{held}");
    until("the attempt after the maintenance", || runs(&file) == 1).await;
    assert!(SystemTime::now() >= ends);
    assert_eq!(recoverer.status("t").unwrap().held, None);
}
