//! The scheduler on tokio's paused clock: timeouts cut hanging checks, checks keep their own
//! schedules, fresh reads coalesce and are rate-limited, registrations are validated.

use std::future::pending;
use std::time::Duration;

use crate::common::{Switch, advance, get};
use axum::http::StatusCode;
use vitals::probes::{Tcp, from_fn};
use vitals::{Check, Health, Report, Thresholds};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[tokio::test(start_paused = true)]
async fn a_hanging_check_is_cut_at_its_timeout_and_others_keep_their_schedule() {
    let steady = Switch::default();
    let hangs = from_fn(|| async {
        pending::<()>().await;
        Report::pass()
    });
    let health = Health::builder()
        .check(
            Check::new("hangs", hangs)
                .interval(secs(10))
                .jitter(Duration::ZERO)
                .timeout(secs(2)),
        )
        .check(
            Check::new("steady", steady.probe())
                .interval(secs(1))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .start()
        .unwrap();
    let router = health.router();
    // Runs at t = 0, 1, 2, …, 10: eleven by t = 10.5, whatever the other check does.
    advance(10.5).await;
    assert_eq!(steady.runs(), 11);
    let body = get(&router, "/health").await.json();
    let hung = &body["checks"]["hangs"][0];
    assert_eq!(hung["status"], "fail");
    assert!(
        hung["output"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s"),
        "{hung}"
    );
    let snapshot = health.snapshot();
    let outcome = snapshot.checks[0].outcome.as_ref().unwrap();
    assert_eq!(outcome.kind, vitals::core::Kind::Timeout);
    assert_eq!(outcome.duration, secs(2));
    let metrics = health.metrics_text();
    assert!(
        metrics.contains("vitals_check_outcomes_total{check=\"hangs\",kind=\"timeout\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_panicking_check_is_a_failure_not_a_dead_task() {
    let health = Health::builder()
        .check(
            Check::new("boom", from_fn(|| async { panic!("index out of bounds") }))
                .interval(secs(1))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .start()
        .unwrap();
    advance(3.5).await;
    let snapshot = health.snapshot();
    assert_eq!(snapshot.checks[0].runs, 4);
    let output = snapshot.checks[0]
        .outcome
        .as_ref()
        .unwrap()
        .output
        .clone()
        .unwrap();
    assert_eq!(output, "check panicked: index out of bounds");
}

#[tokio::test(start_paused = true)]
async fn fresh_reads_coalesce_into_one_run_and_are_rate_limited() {
    let db = Switch::default();
    let health = Health::builder()
        .check(
            Check::new("database", db.probe())
                .interval(secs(60))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .start()
        .unwrap();
    let router = health.router();
    advance(5.0).await;
    assert_eq!(db.runs(), 1);
    db.fail();
    let storm: Vec<_> = (0..100)
        .map(|_| {
            let router = router.clone();
            tokio::spawn(async move { get(&router, "/readyz?fresh=1").await })
        })
        .collect();
    for request in storm {
        let answer = request.await.unwrap();
        // Everyone sees the new result (failing: one failure, still serving).
        assert_eq!(
            answer.json()["checks"]["database"][0]["output"],
            "failing: connection refused"
        );
    }
    assert_eq!(db.runs(), 2, "100 concurrent fresh reads make one run");
    // Within the fresh interval (1 s) a fresh read runs nothing.
    get(&router, "/readyz?fresh=1").await;
    assert_eq!(db.runs(), 2);
    advance(1.5).await;
    get(&router, "/readyz?fresh").await;
    assert_eq!(db.runs(), 3);
    // Plain reads never run a check.
    for _ in 0..100 {
        get(&router, "/readyz").await;
    }
    assert_eq!(db.runs(), 3);
}

#[tokio::test]
async fn registrations_are_validated_each_problem_named() {
    let db = Switch::default();
    let error = Health::builder()
        .check(Check::new("database", db.probe()).interval(Duration::ZERO))
        .check(
            Check::new("cache", db.probe())
                .interval(secs(5))
                .timeout(secs(10)),
        )
        .check(Check::new("cache", db.probe()))
        .check(Check::new("bad name!", db.probe()))
        .check(Check::new("upstream", Tcp::new("127.0.0.1:1")).liveness())
        .check(Check::new("rise", db.probe()).thresholds(Thresholds {
            rise: 0,
            ..Thresholds::default()
        }))
        .start()
        .unwrap_err();
    let text = error.to_string();
    let fields: Vec<(&str, &str)> = error
        .problems
        .iter()
        .map(|problem| (problem.check.as_str(), problem.field))
        .collect();
    assert_eq!(
        fields,
        [
            ("database", "interval"),
            ("cache", "timeout"),
            ("bad name!", "name"),
            ("upstream", "liveness"),
            ("rise", "thresholds"),
            ("cache", "name"),
        ],
        "{text}"
    );
    assert!(
        text.contains("check \"cache\": timeout (10s) is longer than interval (5s)"),
        "{text}"
    );
    assert!(
        text.contains("check \"cache\": name is registered twice"),
        "{text}"
    );
    assert!(text.contains("external dependency"), "{text}");

    // Forced, the external liveness check is accepted.
    let forced = Health::builder()
        .check(
            Check::new("upstream", Tcp::new("127.0.0.1:1"))
                .liveness()
                .force_liveness(),
        )
        .start();
    assert!(forced.is_ok());
}

#[tokio::test]
async fn a_fresh_read_waits_at_most_the_timeout_of_a_hanging_check() {
    let health = Health::builder()
        .check(
            Check::new("hangs", from_fn(|| async { pending::<Report>().await }))
                .interval(secs(60))
                .timeout(Duration::from_millis(200)),
        )
        .start()
        .unwrap();
    let router = health.router();
    let started = tokio::time::Instant::now();
    let answer = get(&router, "/readyz?fresh=1").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    // Bounded: the fresh read cannot hang forever on a hanging check (generous bound; the
    // point is "not forever", not a timing).
    assert!(started.elapsed() < secs(30));
}
