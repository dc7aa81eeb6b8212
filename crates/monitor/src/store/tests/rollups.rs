//! Rollups on known data, retention, and idempotent maintenance.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Minute 0 of BASE: 100 results of 1..=100 ms (shuffled), 3 fails, 2 timeouts, 10 warns.
/// Minute 1: 10 results of 1000 ms.
fn known_data(store: &Store) {
    let mut batch = Vec::new();
    for i in 0..100u64 {
        // 37 is coprime with 100: a permutation of 1..=100.
        let d = (i * 37) % 100 + 1;
        let kind = match i {
            0..3 => Kind::Fail,
            3..5 => Kind::Timeout,
            5..15 => Kind::Warn,
            _ => Kind::Pass,
        };
        batch.push(result("api", at_ms(i * 500), kind, d));
    }
    for i in 0..10u64 {
        batch.push(result("api", at(MINUTE + i), Kind::Pass, 1000));
    }
    store.record_results(&batch).unwrap();
}

#[test]
fn every_width_is_computed_from_raw_results() {
    let (_dir, store) = temp_store();
    known_data(&store);
    let done = store.rollup_and_prune(at(2 * DAY), 7, 365).unwrap();
    // Two minutes, one hour, one day.
    assert_eq!(done.rolled_up, 4);

    let minutes = store
        .rollups("api", Bucket::Minute, at(0), at(DAY))
        .unwrap();
    assert_eq!(
        minutes,
        vec![
            Rollup {
                start: at(0),
                bucket: Bucket::Minute,
                count: 100,
                failures: 5,
                p50: ms(50),
                p95: ms(95),
                max: ms(100),
            },
            Rollup {
                start: at(MINUTE),
                bucket: Bucket::Minute,
                count: 10,
                failures: 0,
                p50: ms(1000),
                p95: ms(1000),
                max: ms(1000),
            },
        ]
    );
    // The hour's percentiles come from all 110 raw values, not from the minutes' summaries:
    // rank ceil(0.95 * 110) = 105 is among the ten 1000 ms results; the median is 55 ms.
    let expected = |bucket| Rollup {
        start: at(0),
        bucket,
        count: 110,
        failures: 5,
        p50: ms(55),
        p95: ms(1000),
        max: ms(1000),
    };
    assert_eq!(
        store.rollups("api", Bucket::Hour, at(0), at(DAY)).unwrap(),
        vec![expected(Bucket::Hour)]
    );
    assert_eq!(
        store.rollups("api", Bucket::Day, at(0), at(DAY)).unwrap(),
        vec![expected(Bucket::Day)]
    );
    // Ranges are half-open on the bucket start.
    assert_eq!(
        store
            .rollups("api", Bucket::Minute, at(MINUTE), at(2 * MINUTE))
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .rollups("api", Bucket::Minute, at(0), at(MINUTE))
            .unwrap()
            .iter()
            .all(|r| r.start == at(0))
    );
    assert!(
        store
            .rollups("other", Bucket::Day, at(0), at(DAY))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn only_completed_and_settled_buckets_are_rolled_up() {
    let (_dir, store) = temp_store();
    known_data(&store);
    // 30 s into minute 2: minute 1 ended 30 s ago, less than SETTLE.
    let done = store.rollup_and_prune(at(2 * MINUTE + 30), 7, 365).unwrap();
    assert_eq!(done.rolled_up, 1);
    assert_eq!(
        store
            .rollups("api", Bucket::Minute, at(0), at(DAY))
            .unwrap()
            .len(),
        1
    );
    assert!(
        store
            .rollups("api", Bucket::Hour, at(0), at(DAY))
            .unwrap()
            .is_empty()
    );
    // Once settled, minute 1 follows; the hour only after the hour (plus SETTLE).
    let done = store.rollup_and_prune(at(3 * MINUTE), 7, 365).unwrap();
    assert_eq!(done.rolled_up, 1);
    let done = store.rollup_and_prune(at(HOUR + MINUTE), 7, 365).unwrap();
    assert_eq!(done.rolled_up, 1);
    assert_eq!(
        store.rollups("api", Bucket::Hour, at(0), at(DAY)).unwrap()[0].count,
        110
    );
}

#[test]
fn maintenance_is_idempotent_even_after_a_crash_between_chunks() {
    let (_dir, store) = temp_store();
    known_data(&store);
    let first = store.rollup_and_prune(at(2 * DAY), 7, 365).unwrap();
    let before = store
        .rollups("api", Bucket::Minute, at(0), at(DAY))
        .unwrap();
    let again = store.rollup_and_prune(at(2 * DAY), 7, 365).unwrap();
    assert_eq!(again, Maintenance::default());
    assert!(first.rolled_up > 0);

    // A crash after the rollups were written but before the progress marks moved: the next
    // run recomputes the same buckets and replaces them with identical rows.
    store
        .lock()
        .conn
        .execute("DELETE FROM rollup_progress", [])
        .unwrap();
    let redo = store.rollup_and_prune(at(2 * DAY), 7, 365).unwrap();
    assert_eq!(redo.rolled_up, first.rolled_up);
    assert_eq!(
        store
            .rollups("api", Bucket::Minute, at(0), at(DAY))
            .unwrap(),
        before
    );
    let rows: i64 = store
        .lock()
        .conn
        .query_row("SELECT COUNT(*) FROM rollups", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 4);
}

#[test]
fn raw_results_are_pruned_only_after_every_width_covered_them() {
    let (_dir, store) = temp_store();
    // Three days, one result every 10 minutes, durations = minute of day.
    let batch: Vec<CheckResult> = (0..3 * 144)
        .map(|i| result("db", at(i * 600), Kind::Pass, i % 144))
        .collect();
    store.record_results(&batch).unwrap();

    // Two hours into day 2 with raw_days = 1: days 0 and 1 are complete, raw results older
    // than 24 h go, and each pruned day kept its day rollup.
    let done = store
        .rollup_and_prune(at(2 * DAY + 2 * HOUR), 1, 365)
        .unwrap();
    assert_eq!(done.pruned_results, 144 + 12);
    let left = store.recent_results("db", usize::MAX).unwrap();
    assert_eq!(left.len(), 3 * 144 - 156);
    assert_eq!(left.last().unwrap().at, at(DAY + 2 * HOUR));
    let days = store
        .rollups("db", Bucket::Day, at(0), at(3 * DAY))
        .unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(days[0].count, 144);
    assert_eq!(days[0].max, ms(143));
    assert_eq!(days[0].p50, ms(71));

    // raw_days = 0 is raised to one day.
    let done = store
        .rollup_and_prune(at(2 * DAY + 3 * HOUR), 0, 365)
        .unwrap();
    assert_eq!(done.pruned_results, 6);
}

#[test]
fn raw_results_wait_for_a_width_that_has_not_caught_up() {
    let (_dir, store) = temp_store();
    let batch: Vec<CheckResult> = (0..2 * 144)
        .map(|i| result("db", at(i * 600), Kind::Pass, 5))
        .collect();
    store.record_results(&batch).unwrap();
    // 30 s after day 1 ended: day 1 is not settled yet, so the day width has covered only
    // day 0. The result at exactly day 1, 00:00 is older than raw_days but must stay.
    let done = store.rollup_and_prune(at(2 * DAY + 30), 1, 365).unwrap();
    assert_eq!(done.pruned_results, 144);
    let oldest = store.recent_results("db", usize::MAX).unwrap();
    assert_eq!(oldest.last().unwrap().at, at(DAY));
    // A minute later day 1 is rolled up and its first result goes.
    let done = store.rollup_and_prune(at(2 * DAY + 90), 1, 365).unwrap();
    assert_eq!(done.pruned_results, 1);
    assert_eq!(
        store
            .rollups("db", Bucket::Day, at(0), at(3 * DAY))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn rollups_expire_by_width() {
    let (_dir, store) = temp_store();
    store
        .record_results(&[result("db", at(10), Kind::Pass, 5)])
        .unwrap();
    store.rollup_and_prune(at(DAY + HOUR), 1, 365).unwrap();
    assert_eq!(
        store
            .rollups("db", Bucket::Minute, at(0), at(DAY))
            .unwrap()
            .len(),
        1
    );
    // After MINUTE_ROLLUP_DAYS the minute rollup is gone; hour and day stay.
    let later = at(u64::from(MINUTE_ROLLUP_DAYS) * DAY + 2 * MINUTE);
    let done = store.rollup_and_prune(later, 1, 365).unwrap();
    assert_eq!(done.pruned_rollups, 1);
    assert!(
        store
            .rollups("db", Bucket::Minute, at(0), at(DAY))
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .rollups("db", Bucket::Hour, at(0), at(DAY))
            .unwrap()
            .len(),
        1
    );
    // After rollup_days, everything.
    let done = store.rollup_and_prune(at(366 * DAY), 1, 365).unwrap();
    assert_eq!(done.pruned_rollups, 2);
    assert!(
        store
            .rollups("db", Bucket::Day, at(0), at(DAY))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn old_transitions_go_but_uptime_keeps_its_starting_state() {
    let (_dir, store) = temp_store();
    let history = [
        (0, "unknown", "healthy"),
        (10 * DAY, "healthy", "down"),
        (20 * DAY, "down", "healthy"),
        (395 * DAY, "healthy", "degraded"),
    ];
    for (when, from, to) in history {
        store
            .record_transition(&transition("api", at(when), from, to))
            .unwrap();
    }
    let now = at(400 * DAY);
    let before = store.uptime("api", now).unwrap();
    let done = store.rollup_and_prune(now, 7, 365).unwrap();
    // Cutoff at day 35: the transitions of days 0 and 10 go, day 20's stays (the state the
    // retained history starts in).
    assert_eq!(done.pruned_transitions, 2);
    let left = store.transitions("api", 10).unwrap();
    assert_eq!(left.len(), 2);
    assert_eq!(left[1].at, at(20 * DAY));
    assert_eq!(store.uptime("api", now).unwrap(), before);
    assert_eq!(
        store
            .rollup_and_prune(now, 7, 365)
            .unwrap()
            .pruned_transitions,
        0
    );
}

#[test]
fn old_pings_go_but_each_target_keeps_its_latest() {
    let (_dir, store) = temp_store();
    let ping = |target: &str, when| Ping {
        target: target.into(),
        at: when,
        kind: PingKind::Success,
        rid: None,
        body: None,
        duration: None,
        source: None,
    };
    // A minutely job for a day, and a weekly one with three runs long ago.
    for i in 0..(24 * 60) {
        store
            .record_ping(&ping("minutely", at(i * MINUTE)))
            .unwrap();
    }
    for week in 0..3 {
        store
            .record_ping(&ping("weekly", at(week * 7 * DAY)))
            .unwrap();
    }
    let done = store.rollup_and_prune(at(30 * DAY), 7, 365).unwrap();
    assert_eq!(done.pruned_pings, 24 * 60 - KEEP_PINGS as u64);
    let kept = store.last_pings("minutely", usize::MAX).unwrap();
    assert_eq!(kept.len(), KEEP_PINGS as usize);
    assert_eq!(kept[0].at, at((24 * 60 - 1) * MINUTE));
    assert_eq!(store.last_pings("weekly", usize::MAX).unwrap().len(), 3);
}

#[test]
fn a_long_gap_is_skipped_and_late_data_is_rolled_up() {
    let (_dir, store) = temp_store();
    store
        .record_results(&[result("db", at(10), Kind::Pass, 5)])
        .unwrap();
    store.rollup_and_prune(at(DAY + HOUR), 30, 365).unwrap();
    // Nothing for 200 days, then one result: maintenance jumps the gap.
    store
        .record_results(&[result("db", at(200 * DAY + 10), Kind::Fail, 7)])
        .unwrap();
    let done = store
        .rollup_and_prune(at(201 * DAY + HOUR), 30, 365)
        .unwrap();
    assert_eq!(done.rolled_up, 3);
    let day = store
        .rollups("db", Bucket::Day, at(200 * DAY), at(201 * DAY))
        .unwrap();
    assert_eq!(day.len(), 1);
    assert_eq!(day[0].failures, 1);
    assert_eq!(done.pruned_results, 1);
}

#[test]
fn rollup_queries_use_the_indexes() {
    let (_dir, store) = temp_store();
    let inner = store.lock();
    let plan = |sql: &str| -> String {
        let mut stmt = inner
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let rows = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        rows.join("\n")
    };
    let compute = plan(
        "SELECT r.target, r.at, r.kind, r.duration_us
           FROM targets t CROSS JOIN results r
          WHERE r.target = t.id AND r.at >= 0 AND r.at < 1
          ORDER BY t.id, r.at",
    );
    assert!(
        compute.contains("SEARCH r USING PRIMARY KEY (target=? AND at>? AND at<?)"),
        "{compute}"
    );
    assert!(!compute.contains("TEMP B-TREE"), "{compute}");
    let uptimes = plan(
        "SELECT x.target, x.at, x.to_state
           FROM targets t CROSS JOIN transitions x
          WHERE x.target = t.id AND x.at > 0
          ORDER BY t.id, x.at, x.id",
    );
    assert!(
        uptimes.contains("USING INDEX transitions_by_target"),
        "{uptimes}"
    );
    let recent = plan(
        "SELECT r.at FROM targets t JOIN results r ON r.target = t.id
          WHERE t.name = 'x' ORDER BY r.at DESC, r.seq DESC LIMIT 5",
    );
    assert!(!recent.contains("TEMP B-TREE"), "{recent}");
    assert!(!recent.contains("SCAN r"), "{recent}");
}

#[test]
fn old_alerts_and_actions_go_but_pending_deliveries_stay() {
    use crate::store::{ActionKind, ActionRecord, AlertRecord};
    let (_dir, store) = temp_store();
    let now = SystemTime::now();
    let alert = |key: &str| AlertRecord {
        key: key.into(),
        target: "api".into(),
        kind: "down".into(),
        at: now,
        payload: "{}".into(),
        muted_by: None,
        group_key: None,
    };
    let hook = ["hook".to_string()];
    store.enqueue_alert(&alert("sent"), &hook, now).unwrap();
    let claimed = store
        .outbox_claim("hook", now, Duration::from_secs(60), 1)
        .unwrap();
    store.outbox_delivered(claimed[0].id, now).unwrap();
    store.enqueue_alert(&alert("pending"), &hook, now).unwrap();
    store
        .record_action(&ActionRecord {
            id: None,
            target: "api".into(),
            at: now,
            kind: ActionKind::Attempt,
            trigger: Some("down".into()),
            action: "systemctl restart api".into(),
            attempt: 1,
            duration: None,
            exit_code: Some(0),
            http_status: None,
            output: None,
            result: "ok".into(),
        })
        .unwrap();

    // A year and more later: the delivered row, its alert and the action are history.
    let later = now + Duration::from_secs(400 * 86_400);
    let done = store.rollup_and_prune(later, 7, 365).unwrap();
    assert_eq!(done.pruned_logs, 3);
    let alerts = store.alerts(10).unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].key, "pending");
    assert_eq!(store.outbox(10, true).unwrap().len(), 1, "still to deliver");
    assert!(store.actions("api", 10).unwrap().is_empty());
}
