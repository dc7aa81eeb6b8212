//! The dependency probes against real PostgreSQL and Redis: pass while up, fail with the
//! cause while down, pass again once back, on the same shared connections throughout.

use vitals_core::Status;
use vitals_probes::{Postgres, Probe, Redis};

#[tokio::test]
async fn postgres_probe_follows_the_server_and_reuses_its_pool() {
    let mut pg = vitals_testkit::Postgres::start().await.unwrap();
    let probe = Postgres::connect(&pg.url()).unwrap();
    for _ in 0..20 {
        let report = probe.check().await;
        assert_eq!(report.status, Status::Pass, "{report:?}");
    }
    // Twenty checks, at most two connections (the dedicated pool's size), one in practice.
    let client = pg.connect().await.unwrap();
    let backends: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(backends, 1, "the probe reuses one pooled connection");
    drop(client);

    pg.stop().await.unwrap();
    let report = probe.check().await;
    assert_eq!(report.status, Status::Fail);
    let output = report.output.unwrap();
    assert!(!output.is_empty());

    pg.start_again().await.unwrap();
    // The broken connection is dropped by the pool and a new one made.
    let mut report = probe.check().await;
    if report.status != Status::Pass {
        // The first use may still find the old connection broken; the next one must pass.
        report = probe.check().await;
    }
    assert_eq!(report.status, Status::Pass, "{report:?}");
}

#[tokio::test]
async fn redis_probe_follows_the_server() {
    let mut redis = vitals_testkit::Redis::start().await.unwrap();
    let probe = Redis::connect(&redis.url()).unwrap();
    let report = probe.check().await;
    assert_eq!(report.status, Status::Pass, "{report:?}");
    assert_eq!(report.output.as_deref(), Some("PONG"));

    redis.stop().await.unwrap();
    let report = probe.check().await;
    assert_eq!(report.status, Status::Fail, "{report:?}");

    redis.start_again().await.unwrap();
    // The connection manager reconnects in the background; a few checks at most.
    let what = "the probe to pass again once redis is back";
    vitals_testkit::until(what, std::time::Duration::from_secs(2), async || {
        vitals_testkit::holds(probe.check().await, |report| report.status == Status::Pass)
    })
    .await;
}

#[tokio::test]
async fn a_redis_that_is_down_at_start_is_a_failing_check_not_an_error() {
    let port = vitals_testkit::free_port().unwrap();
    let probe = Redis::connect(&format!("redis://127.0.0.1:{port}")).unwrap();
    let report = probe.check().await;
    assert_eq!(report.status, Status::Fail);
    assert!(report.output.unwrap().starts_with("connect:"));
    let probe =
        Postgres::connect(&format!("postgres://postgres@127.0.0.1:{port}/postgres")).unwrap();
    let report = probe.check().await;
    assert_eq!(report.status, Status::Fail);
    let output = report.output.unwrap();
    assert!(output.to_lowercase().contains("refused"), "{output}");
}

#[test]
fn a_bad_postgres_url_is_refused_with_the_reason() {
    let error = Postgres::connect("postgres://host:notaport/db").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("invalid postgresql connection string"),
        "{error}"
    );
}

/// Issue 11, item 9: with Redis hung (SIGSTOP), `PING` waited for the connection manager's
/// 2 s response timeout and the run was cut at its 1 s timeout as a timeout. The probe now
/// answers inside the timeout, in its own words.
#[tokio::test]
async fn a_hung_redis_fails_inside_the_check_timeout_in_the_probe_own_words() {
    use std::time::{Duration, SystemTime};
    use vitals_core::Kind;
    use vitals_testkit::{Signal, signal};

    let redis = vitals_testkit::Redis::start().await.unwrap();
    let probe = Redis::connect(&redis.url()).unwrap();
    async fn run(probe: &Redis) -> vitals_core::Outcome {
        vitals_probes::run_once(Duration::from_secs(1), async { probe.check().await })
            .await
            .into_outcome(SystemTime::now())
    }
    assert_eq!(run(&probe).await.kind, Kind::Pass);
    signal(redis.pid(), Signal::SIGSTOP).unwrap();
    for _ in 0..3 {
        let outcome = run(&probe).await;
        assert_eq!(outcome.kind, Kind::Fail, "{outcome:?}");
        assert_eq!(
            outcome.output.as_deref(),
            Some("PING: no answer within 900ms"),
            "{outcome:?}"
        );
    }
    signal(redis.pid(), Signal::SIGCONT).unwrap();
    let what = "the probe to pass again once redis runs";
    vitals_testkit::until(what, Duration::from_secs(5), async || {
        let outcome = run(&probe).await;
        vitals_testkit::holds(outcome, |outcome| outcome.kind == Kind::Pass)
    })
    .await;
}
