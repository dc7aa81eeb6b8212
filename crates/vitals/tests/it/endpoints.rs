//! The probe endpoints through the real router, on tokio's paused clock: hysteresis, degraded
//! versus unhealthy, exclusions, verbose text, per-check paths, details token, lifecycle.

use std::time::Duration;

use crate::common::{Switch, advance, get, get_with};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use vitals::{Check, Health};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A database (critical) and a cache (non-critical), every 5 s, no jitter.
fn service(db: &Switch, cache: &Switch) -> Health {
    Health::builder()
        .service_id("orders")
        .check(
            Check::new("database", db.probe())
                .interval(secs(5))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .check(
            Check::new("cache", cache.probe())
                .non_critical()
                .interval(secs(5))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .start()
        .expect("valid registrations")
}

#[tokio::test(start_paused = true)]
async fn readiness_waits_for_the_first_results_then_passes() {
    let (db, cache) = (Switch::default(), Switch::default());
    let health = service(&db, &cache);
    let router = health.router();
    // Liveness does not wait for checks; nothing is in the liveness group anyway.
    assert_eq!(get(&router, "/livez").await.status, StatusCode::OK);
    advance(0.1).await;
    let answer = get(&router, "/readyz").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.content_type, "application/health+json");
    let body = answer.json();
    assert_eq!(body["status"], "pass");
    assert_eq!(body["serviceId"], "orders");
    assert_eq!(body["checks"]["database"][0]["status"], "pass");
    assert!(body["checks"]["database"][0]["time"].is_string());
}

#[tokio::test(start_paused = true)]
async fn a_critical_failure_fails_readiness_only_after_fall_and_recovers_after_rise() {
    let (db, cache) = (Switch::default(), Switch::default());
    let health = service(&db, &cache);
    let router = health.router();
    advance(0.1).await;
    db.fail();
    // t=5: first failure: failing, still in rotation (warn, 200).
    advance(5.0).await;
    let answer = get(&router, "/ready").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["status"], "warn");
    // t=10: second failure (fall 2): out of rotation.
    advance(5.0).await;
    let answer = get(&router, "/ready").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.body
    );
    let body = answer.json();
    assert_eq!(body["status"], "fail");
    assert_eq!(
        body["checks"]["database"][0]["output"],
        "connection refused"
    );
    db.pass();
    // t=15: one pass: recovering, still out.
    advance(5.0).await;
    assert_eq!(
        get(&router, "/ready").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    // t=20: second pass (rise 2): back.
    advance(5.0).await;
    assert_eq!(get(&router, "/ready").await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn a_non_critical_failure_degrades_but_keeps_serving() {
    let (db, cache) = (Switch::default(), Switch::default());
    cache.fail();
    let health = service(&db, &cache);
    let router = health.router();
    advance(10.1).await;
    let answer = get(&router, "/ready").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.json()["status"], "warn");
    let answer = get(&router, "/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    let body = answer.json();
    assert_eq!(body["status"], "warn");
    assert_eq!(body["checks"]["cache"][0]["status"], "fail");
    let verbose = get(&router, "/health?verbose").await;
    assert!(
        verbose
            .body
            .contains("[-]cache failed (non-critical): connection refused"),
        "{}",
        verbose.body
    );
}

#[tokio::test(start_paused = true)]
async fn verbose_lines_follow_kube_apiserver() {
    let (db, cache) = (Switch::default(), Switch::default());
    cache.fail();
    let health = service(&db, &cache);
    let router = health.router();
    advance(10.1).await;
    let answer = get(&router, "/readyz?verbose").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        "[+]database ok\n[-]cache failed (non-critical): connection refused\nreadyz check passed\n"
    );
    let answer = get(&router, "/readyz?verbose&exclude=cache").await;
    assert_eq!(
        answer.body,
        "[+]database ok\n[+]cache excluded: ok\nreadyz check passed\n"
    );
}

#[tokio::test(start_paused = true)]
async fn exclude_skips_a_check_and_refuses_an_unknown_name() {
    let (db, cache) = (Switch::default(), Switch::default());
    db.fail();
    let health = service(&db, &cache);
    let router = health.router();
    advance(10.1).await;
    assert_eq!(
        get(&router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let answer = get(&router, "/readyz?exclude=database").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.json()["checks"].get("database").is_none());

    let answer = get(&router, "/readyz?exclude=databse").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.json()["error"],
        "unknown check \"databse\" in exclude; known checks: database, cache"
    );
}

#[tokio::test(start_paused = true)]
async fn per_check_paths_answer_for_one_check() {
    let (db, cache) = (Switch::default(), Switch::default());
    cache.fail();
    let health = service(&db, &cache);
    let router = health.router();
    advance(10.1).await;
    let answer = get(&router, "/readyz/database").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "[+]database ok\n")
    );
    let answer = get(&router, "/readyz/cache").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.body,
        "[-]cache failed (non-critical): connection refused\n"
    );
    assert_eq!(
        get(&router, "/readyz/nope").await.status,
        StatusCode::NOT_FOUND
    );
    let answer = get(&router, "/livez/database").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert!(
        answer.body.contains("not part of liveness"),
        "{}",
        answer.body
    );
}

#[tokio::test(start_paused = true)]
async fn details_are_hidden_without_the_token() {
    let db = Switch::default();
    db.fail();
    let health = Health::builder()
        .details_token("s3cret")
        .check(
            Check::new("database", db.probe())
                .interval(secs(5))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .start()
        .unwrap();
    let router = health.router();
    advance(10.1).await;
    let answer = get(&router, "/readyz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(answer.json(), serde_json::json!({"status": "fail"}));
    let verbose = get(&router, "/readyz?verbose").await;
    assert_eq!(verbose.body, "readyz check failed\n");

    let wrong = Request::get("/readyz")
        .header("authorization", "Bearer guess")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        get_with(&router, wrong).await.json(),
        serde_json::json!({"status": "fail"})
    );
    let right = Request::get("/readyz")
        .header("authorization", "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let answer = get_with(&router, right).await;
    assert_eq!(
        answer.json()["checks"]["database"][0]["output"],
        "connection refused"
    );
}

/// Issue 11, item 5: without the token, neither a per-check path, nor `exclude` (its answer or
/// its error), nor `/metrics` may say what the checks are called or what they said; the same
/// 401 whether the name exists or not, so not even existence leaks.
#[tokio::test(start_paused = true)]
async fn the_details_token_guards_per_check_paths_exclude_and_metrics() {
    let db = Switch::default();
    db.fail();
    let health = Health::builder()
        .details_token("s3cret")
        .check(
            Check::new("database", db.probe())
                .interval(secs(5))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .start()
        .unwrap();
    let router = health.router();
    advance(10.1).await;
    for uri in [
        "/readyz/database",
        "/readyz/bogus",
        "/livez/database",
        "/readyz?exclude=bogus",
        "/readyz?exclude=database",
        "/health?exclude=database&verbose",
        "/metrics",
    ] {
        let answer = get(&router, uri).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{uri}: {}",
            answer.body
        );
        assert!(
            !answer.body.contains("database") && !answer.body.contains("refused"),
            "{uri} leaked a name or an output: {}",
            answer.body
        );
        let wrong = Request::get(uri)
            .header("authorization", "Bearer guess")
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            get_with(&router, wrong).await.status,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    let with_token = |uri: &str| {
        Request::get(uri)
            .header("authorization", "Bearer s3cret")
            .body(Body::empty())
            .unwrap()
    };
    let answer = get_with(&router, with_token("/readyz/database")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "[-]database failed: connection refused\n"
        )
    );
    let answer = get_with(&router, with_token("/readyz?exclude=bogus")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.body.contains("known checks: database"),
        "{}",
        answer.body
    );
    let answer = get_with(&router, with_token("/metrics")).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.body.contains("check=\"database\""),
        "{}",
        answer.body
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeat_and_metrics() {
    let (db, cache) = (Switch::default(), Switch::default());
    cache.fail();
    let health = service(&db, &cache);
    let router = health.router();
    advance(10.1).await;
    let answer = get(&router, "/heartbeat").await;
    let body = answer.json();
    assert_eq!(body["status"], "alive");
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));

    let metrics = get(&router, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    let text = metrics.body;
    for expected in [
        "vitals_check_outcomes_total{check=\"cache\",kind=\"fail\"} 3",
        "vitals_check_outcomes_total{check=\"database\",kind=\"pass\"} 3",
        "vitals_check_outcomes_total{check=\"database\",kind=\"timeout\"} 0",
        "vitals_check_status{check=\"cache\"} 2",
        "vitals_check_up{check=\"database\"} 1",
        "vitals_check_transitions_total{check=\"cache\",from=\"unknown\",to=\"unhealthy\"} 1",
        "vitals_check_duration_seconds_count{check=\"database\"} 3",
        "vitals_check_last_success_timestamp_seconds{check=\"database\"}",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn startup_waits_for_hooks_and_shows_their_errors() {
    let db = Switch::default();
    let attempts = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = attempts.clone();
    let health = Health::builder()
        .check(
            Check::new("database", db.probe())
                .interval(secs(5))
                .jitter(Duration::ZERO)
                .timeout(secs(1)),
        )
        .on_startup("load config", move || {
            let attempt = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if attempt < 2 {
                    Err("config key app:config missing")
                } else {
                    Ok(())
                }
            }
        })
        .start()
        .unwrap();
    let router = health.router();
    advance(0.1).await;
    let answer = get(&router, "/startupz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.json()["output"],
        "starting: startup hook \"load config\" failed (attempt 1): config key app:config missing"
    );
    assert_eq!(
        get(&router, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(get(&router, "/livez").await.status, StatusCode::OK);
    // Retries after 0.5 s and 1 s.
    advance(2.0).await;
    assert_eq!(attempts.load(std::sync::atomic::Ordering::SeqCst), 3);
    assert_eq!(get(&router, "/startupz").await.status, StatusCode::OK);
    assert_eq!(get(&router, "/readyz").await.status, StatusCode::OK);
}

#[tokio::test(start_paused = true)]
async fn draining_fails_readiness_at_once_while_liveness_passes() {
    let (db, cache) = (Switch::default(), Switch::default());
    let health = service(&db, &cache);
    let router = health.router();
    advance(0.1).await;
    assert_eq!(get(&router, "/readyz").await.status, StatusCode::OK);
    let drained = tokio::spawn(health.drained());
    health.shutdown();
    let answer = get(&router, "/readyz").await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        answer.json()["output"]
            .as_str()
            .unwrap()
            .starts_with("draining")
    );
    assert_eq!(get(&router, "/livez").await.status, StatusCode::OK);
    assert_eq!(get(&router, "/startupz").await.status, StatusCode::OK);
    // The drain delay (5 s by default) passes, then the future resolves.
    advance(4.9).await;
    assert!(!drained.is_finished());
    advance(0.2).await;
    assert!(drained.is_finished());
    assert_eq!(health.phase(), vitals::Phase::Stopped);
}
