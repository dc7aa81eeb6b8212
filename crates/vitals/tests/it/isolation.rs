//! A probe request never waits for a check (issue 18): in a multi-threaded runtime the checks
//! run on a thread of their own, so even a check that blocks its thread (which a check must
//! not do, and a slow `/proc` read or a synchronous client call does) leaves the service's
//! workers to the requests.

#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;

use vitals::probes::from_fn;
use vitals::{Check, Health, Report};

/// One worker, as tokio starts on a server pinned to one core.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_check_that_blocks_its_thread_does_not_stop_probe_answers() {
    let (entered_tx, entered_rx) = mpsc::channel::<String>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = std::sync::Mutex::new(release_rx);
    let probe = from_fn(move || {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        let _ = entered_tx.send(thread);
        // Blocks this thread until the test says so: the worst a check can do.
        let _ = release_rx
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(30));
        async { Report::pass() }
    });
    let health = Health::builder()
        .check(
            Check::new("blocking", probe)
                .liveness()
                .interval(Duration::from_secs(60))
                .timeout(Duration::from_secs(30)),
        )
        .start()
        .unwrap();
    let thread = tokio::task::spawn_blocking(move || entered_rx.recv().unwrap())
        .await
        .unwrap();
    assert_eq!(thread, "vitals-checks", "the check ran beside the requests");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = health.clone();
    tokio::spawn(async move { server.serve(listener, server.router()).await });
    // The check is still blocked: the answer comes from the worker regardless.
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/livez"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("/livez answers while a check blocks its thread");
    assert_eq!(response.status(), 200);
    release_tx.send(()).unwrap();
}
