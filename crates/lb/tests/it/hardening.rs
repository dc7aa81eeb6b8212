//! Issue 11 against the real balancer and real backend processes: clients that break off or
//! dawdle over their request bodies are not held against the backend (item 3), the admin API
//! refuses other hosts, cross-site pages and changes without its token, and clients cannot
//! forge `X-Forwarded-For` (item 12).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::{Backend, start_lb, start_lb_with};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals_testkit::until;

const PATIENCE: Duration = Duration::from_secs(15);

/// Checks fast enough to settle in a second; two failed tries in a row eject.
fn fast(request_timeout: &str) -> String {
    format!(
        "interval = \"200ms\"\ntimeout = \"200ms\"\ninterval_changing = \"200ms\"\ninterval_down = \"200ms\"\nfall = 3\nrise = 2\nconnect_timeout = \"200ms\"\nrequest_timeout = \"{request_timeout}\"\n[pool.outlier]\nconsecutive_failures = 2\nbase_ejection = \"30s\"\n"
    )
}

/// Sends `head` and `body` on a new connection to `base`, then `close`s or waits for the
/// answer; returns what came back (possibly nothing).
async fn raw(base: &str, head: &str, body: &[u8], close: bool) -> String {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    if close {
        // The client gives up mid-body: its side of the connection is gone.
        drop(stream);
        return String::new();
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Issue 11, item 3: five POSTs announcing 99,999 bytes that send 2 and close used to eject
/// a backend that reads bodies; a one-backend pool then answered 503 to everyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_break_off_their_uploads_do_not_eject_the_backend() {
    let a = Backend::start("a").await;
    let lb = start_lb(&[&a], &fast("2s")).await;
    let client = reqwest::Client::new();
    until("a is in rotation", PATIENCE, async || {
        lb.in_rotation(&client, "a").await
    })
    .await;
    let head = "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 99999\r\n\r\n";
    for _ in 0..10 {
        raw(&lb.base, head, b"ab", true).await;
    }
    // Each upload ends one way: held against nobody, a try on a, or a 503.
    until(
        "the balancer to be done with every upload",
        PATIENCE,
        async || {
            lb.client_faults(&client, "aborted").await
                + lb.tries(&client, "a").await
                + lb.metric_sum(&client, "vitals_lb_unavailable_total{", "")
                    .await
                >= 10
        },
    )
    .await;
    let view = lb.backend(&client, "a").await;
    assert_eq!(view["ejections"], 0, "{view}");
    assert_eq!(view["in_rotation"], true, "{view}");
    let answer = client.get(&lb.base).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "a");
    // A whole upload still goes through.
    let answer = client
        .post(format!("{}/upload", lb.base))
        .body(vec![b'x'; 99_999])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "a 99999");
}

/// Issue 11, item 3: an upload slower than `request_timeout` is the client's doing: 408, and
/// the backend stays in rotation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_is_answered_408_and_not_held_against_the_backend() {
    let a = Backend::start("a").await;
    let lb = start_lb(&[&a], &fast("300ms")).await;
    let client = reqwest::Client::new();
    until("a is in rotation", PATIENCE, async || {
        lb.in_rotation(&client, "a").await
    })
    .await;
    let head =
        "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 10\r\nConnection: close\r\n\r\n";
    for _ in 0..3 {
        // Two bytes of ten, then nothing: the connection stays open until the balancer
        // gives up.
        let answer = raw(&lb.base, head, b"ab", false).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    let view = lb.backend(&client, "a").await;
    assert_eq!(view["ejections"], 0, "{view}");
    assert_eq!(view["in_rotation"], true, "{view}");
}

/// Issue 11, item 3: with its only backend ejected by failed requests while its checks pass,
/// the pool fails open to it instead of answering 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_whose_only_backend_is_ejected_fails_open() {
    let a = Backend::start("a").await;
    let lb = start_lb(&[&a], &fast("2s")).await;
    let client = reqwest::Client::new();
    until("a is in rotation", PATIENCE, async || {
        lb.in_rotation(&client, "a").await
    })
    .await;
    client
        .post(a.url("/fail/on"))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    for _ in 0..2 {
        assert_eq!(client.get(&lb.base).send().await.unwrap().status(), 500);
    }
    until("a is ejected", PATIENCE, async || {
        lb.backend(&client, "a").await["ejections"] == 1
    })
    .await;
    client.post(a.url("/fail/off")).send().await.unwrap();
    // Ejected for 30 s, and yet served.
    let answer = client.get(&lb.base).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap(), "a");
    let pools: serde_json::Value = client
        .get(format!("{}/api/v1/pools", lb.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(pools[0]["failing_open"], true, "{pools}");
}

/// Issue 11, item 12: the admin API took a drain from anyone who could reach it, a
/// cross-site form or a page whose name resolves to 127.0.0.1 included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_its_token_and_refuses_other_hosts_and_sites() {
    let a = Backend::start("a").await;
    let token = "0123456789abcdef0123";
    let lb = start_lb_with(
        &[&a],
        &fast("2s"),
        &format!("token = \"{token}\"\nhosts = [\"lb.internal\"]"),
        "",
    )
    .await;
    let client = reqwest::Client::new();
    let drain = format!("{}/api/v1/pools/web/backends/a/drain", lb.admin);
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(status(client.post(&drain).send().await.unwrap()), 401);
    assert_eq!(
        status(
            client
                .post(&drain)
                .bearer_auth("0123456789abcdef012X")
                .send()
                .await
                .unwrap()
        ),
        401
    );
    // DNS rebinding: the right token, in a request for another host.
    assert_eq!(
        status(
            client
                .get(format!("{}/api/v1/pools", lb.admin))
                .header("host", "evil.example")
                .send()
                .await
                .unwrap()
        ),
        421
    );
    // A page of another site.
    assert_eq!(
        status(
            client
                .post(&drain)
                .bearer_auth(token)
                .header("origin", "https://evil.example")
                .send()
                .await
                .unwrap()
        ),
        403
    );
    assert_eq!(lb.backend(&client, "a").await["drained"], false);
    // The operator, with the token, by a listed name.
    let answer = client
        .post(&drain)
        .bearer_auth(token)
        .header("host", "lb.internal:9901")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(lb.backend(&client, "a").await["drained"], true);
}

/// Issue 11, item 12: a client's own `X-Forwarded-For` was passed on, so a backend trusting
/// it believed any address; only listed proxies may say whom they forward for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_kept_only_from_trusted_proxies() {
    let a = Backend::start("a").await;
    let client = reqwest::Client::new();
    let forwarded = async |lb: &crate::support::Lb| {
        client
            .get(format!("{}/headers/x-forwarded-for", lb.base))
            .header("x-forwarded-for", "203.0.113.9")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let untrusting = start_lb(&[&a], &fast("2s")).await;
    until("a is in rotation", PATIENCE, async || {
        untrusting.in_rotation(&client, "a").await
    })
    .await;
    assert_eq!(forwarded(&untrusting).await, "127.0.0.1");
    drop(untrusting);
    let trusting = start_lb_with(
        &[&a],
        &fast("2s"),
        "",
        "trusted_proxies = [\"127.0.0.0/8\"]",
    )
    .await;
    until("a is in rotation", PATIENCE, async || {
        trusting.in_rotation(&client, "a").await
    })
    .await;
    assert_eq!(forwarded(&trusting).await, "203.0.113.9, 127.0.0.1");
}

/// The balancer's `/metrics`, with every family in use, is what Prometheus' own linter
/// accepts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_balancers_metrics_pass_promtool() {
    let a = Backend::start("a").await;
    let lb = start_lb(&[&a], &fast("2s")).await;
    let client = reqwest::Client::new();
    until("a is in rotation", PATIENCE, async || {
        lb.in_rotation(&client, "a").await
    })
    .await;
    assert_eq!(client.get(&lb.base).send().await.unwrap().status(), 200);
    let head = "POST /upload HTTP/1.1\r\nHost: app\r\nContent-Length: 99999\r\n\r\n";
    raw(&lb.base, head, b"ab", true).await;
    until("the aborted upload is counted", PATIENCE, async || {
        lb.client_faults(&client, "aborted").await == 1
    })
    .await;
    let text = client
        .get(format!("{}/metrics", lb.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    vitals_testkit::promtool_check(&text);
}
