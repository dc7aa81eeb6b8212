//! Two order-service instances behind a real HAProxy checking `GET /readyz`, and a cache
//! outage (issue 11, item 9): Redis refused, then Redis hung. Neither instance may leave
//! rotation: the cache is non-critical, and the queue-length check that reads from it says it
//! cannot measure rather than failing.

mod common;

use std::time::Duration;

use common::{Service, servers};
use vitals_testkit::{Haproxy, Signal, signal, until};

/// The queue check's outcomes of `kind` so far, from the service's `/metrics`.
async fn queue_outcomes(service: &Service, kind: &str) -> u64 {
    let text = service.get("/metrics").await.body;
    let series = format!("vitals_check_outcomes_total{{check=\"queue\",kind=\"{kind}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

/// Wait until each service has run its queue check `more` times unmeasured (warn) since
/// `since`, which takes as many check intervals as HAProxy needs to see a failing `/readyz`
/// several times over.
/// Fails at once if HAProxy takes either server down meanwhile.
async fn wait_unmeasured(haproxy: &Haproxy, services: &[&Service; 2], since: [u64; 2], more: u64) {
    for (service, before) in services.iter().zip(since) {
        until(
            format!("{more} unmeasured queue checks on {}", service.base),
            Duration::from_secs(60),
            async || {
                for name in ["a", "b"] {
                    let downs = haproxy.stat(name, "chkdown").await;
                    assert_eq!(downs, "0", "haproxy took server {name} out of rotation");
                }
                let now = queue_outcomes(service, "warn").await;
                if now >= before + more {
                    Ok(())
                } else {
                    Err(now)
                }
            },
        )
        .await;
    }
}

/// HAProxy's verdict on both servers: UP, no failed check, never taken down.
async fn assert_both_up(haproxy: &Haproxy, when: &str) {
    for name in ["a", "b"] {
        let seen = (
            haproxy.stat(name, "status").await,
            haproxy.stat(name, "chkfail").await,
            haproxy.stat(name, "chkdown").await,
        );
        assert_eq!(
            (seen.0.as_str(), seen.1.as_str(), seen.2.as_str()),
            ("UP", "0", "0"),
            "{when}: haproxy's (status, failed checks, times down) for server {name}; log:\n{}",
            haproxy.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_outage_takes_no_replica_out_of_haproxy_rotation() {
    let Some(binary) = Haproxy::binary() else {
        return;
    };
    let (pg, mut redis) = servers().await;
    let args = ["--check-interval", "1s"];
    let (a, b) = tokio::join!(
        Service::start(&pg, &redis, &args),
        Service::start(&pg, &redis, &args)
    );
    // Ready before HAProxy looks, so that its counters start at zero.
    for service in [&a, &b] {
        service
            .wait_for("/readyz", 200, Duration::from_secs(10))
            .await;
    }
    let mut lines = vec!["option httpchk GET /readyz".to_string()];
    for (name, service) in [("a", &a), ("b", &b)] {
        let addr = service.base.trim_start_matches("http://");
        lines.push(format!(
            "server {name} {addr} check inter 200ms fall 2 rise 2"
        ));
    }
    let haproxy = Haproxy::start(&binary, &lines).await;
    // HAProxy starts a server as "UP 1/2" until `rise` checks have passed.
    for name in ["a", "b"] {
        until(
            format!("haproxy to show server {name} UP"),
            Haproxy::SETTLE,
            async || {
                let status = haproxy.stat(name, "status").await;
                if status == "UP" { Ok(()) } else { Err(status) }
            },
        )
        .await;
    }
    assert_both_up(&haproxy, "before the outage").await;

    // Redis refuses connections: 8 queue checks each (8 s at 1 s; the issue saw both DOWN
    // within 6-8 s), every one of them seen by HAProxy's 200 ms checks.
    let since = [
        queue_outcomes(&a, "warn").await,
        queue_outcomes(&b, "warn").await,
    ];
    redis.stop().await.unwrap();
    wait_unmeasured(&haproxy, &[&a, &b], since, 8).await;
    for service in [&a, &b] {
        let health = service.get("/health").await.json();
        assert_eq!(health["checks"]["cache"][0]["status"], "fail", "{health}");
        let queue = health["checks"]["queue"][0]["output"].as_str().unwrap();
        assert!(
            queue.starts_with("could not measure queue length"),
            "{queue}"
        );
    }
    assert_both_up(&haproxy, "while redis refused connections").await;

    // Redis hangs (SIGSTOP): connections open, nothing answers; the reconnecting client
    // waits, and the checks must still answer inside their 1 s timeout.
    redis.start_again().await.unwrap();
    let since = [
        queue_outcomes(&a, "warn").await,
        queue_outcomes(&b, "warn").await,
    ];
    signal(redis.pid(), Signal::SIGSTOP).unwrap();
    wait_unmeasured(&haproxy, &[&a, &b], since, 8).await;
    let timeouts = [
        queue_outcomes(&a, "timeout").await,
        queue_outcomes(&b, "timeout").await,
    ];
    assert_eq!(timeouts, [0, 0], "the queue check was cut at its timeout");
    assert_both_up(&haproxy, "while redis hung").await;
    signal(redis.pid(), Signal::SIGCONT).unwrap();
}
