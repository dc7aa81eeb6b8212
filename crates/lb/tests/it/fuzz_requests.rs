//! Fuzzing the balancer's request handling (issue 11): 600 raw requests over TCP with random
//! methods, targets, headers (Content-Length that lies, repeats or overflows, chunked
//! bodies with bad chunks, hop-by-hop and forwarding headers) and bodies, sent to a real
//! balancer in front of a real backend. No panic anywhere in the process, never a 5xx other
//! than the balancer's own 502/503/504, and the balancer still serves afterwards.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use crate::support::{Backend, start_lb};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals_testkit::until;

const CASES: u32 = 600;

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("HEAD".to_owned()),
        Just("CONNECT".to_owned()),
        "[A-Z]{1,10}",
        "[ -~]{0,12}",
    ]
}

fn target() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("/".to_owned()),
        Just("/upload".to_owned()),
        Just("*".to_owned()),
        Just("http://evil.example/".to_owned()),
        "/[ -~]{0,40}",
        "[\\x21-\\x7e]{0,40}",
    ]
}

fn header() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..200).prop_map(|n| format!("Content-Length: {n}")),
        Just("Content-Length: -1".to_owned()),
        Just("Content-Length: 18446744073709551616".to_owned()),
        Just("Content-Length: 5, 6".to_owned()),
        Just("Transfer-Encoding: chunked".to_owned()),
        Just("Transfer-Encoding: gzip, chunked".to_owned()),
        Just("Connection: close, x-forwarded-for".to_owned()),
        Just("Connection: upgrade".to_owned()),
        Just("Upgrade: websocket".to_owned()),
        Just("Expect: 100-continue".to_owned()),
        "X-Forwarded-For: [ -~]{0,30}",
        "Host: [ -~]{0,30}",
        "[A-Za-z-]{1,20}: [ -~]{0,40}",
        "[ -~]{0,40}",
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        Just(b"5\r\nhello\r\n0\r\n\r\n".to_vec()),
        Just(b"zz\r\nhello\r\n".to_vec()),
        Just(b"ffffffffffffffffff\r\n".to_vec()),
    ]
}

/// Sends `bytes`, closes the writing half, and reads the answer's status line (if any).
async fn send(address: &str, bytes: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let _ = stream.write_all(bytes).await;
    let _ = stream.shutdown().await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

#[test]
fn random_requests_never_panic_the_balancer() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (backend, lb) = runtime.block_on(async {
        let backend = Backend::start("a").await;
        let lb = start_lb(
            &[&backend],
            "interval = \"200ms\"\ntimeout = \"200ms\"\nrequest_timeout = \"2s\"\n",
        )
        .await;
        let client = reqwest::Client::new();
        until("a is in rotation", Duration::from_secs(15), async || {
            lb.in_rotation(&client, "a").await
        })
        .await;
        (backend, lb)
    });
    let address = lb.base.trim_start_matches("http://").to_owned();
    let before = vitals_testkit::panics();
    let strategy = (
        token(),
        target(),
        prop::collection::vec(header(), 0..6),
        body(),
    );
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let mut runner = TestRunner::new(Config {
        failure_persistence: None,
        ..Config::with_cases(CASES)
    });
    runner
        .run(&strategy, |(method, target, headers, body)| {
            let mut bytes = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
            for header in &headers {
                bytes.extend_from_slice(header.as_bytes());
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&body);
            let status = runtime.block_on(send(&address, &bytes));
            if let Some(status) = status {
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert!(
                    status < 500 || matches!(status, 502..=504),
                    "{status} for {:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        vitals_testkit::panics() - before,
        0,
        "the balancer panicked"
    );
    // Not a test that cannot fail: most requests got an answer to judge.
    let answered = answered.into_inner();
    assert!(answered > CASES as usize / 2, "only {answered} answers");
    let answer = runtime.block_on(async {
        let answer = reqwest::get(&lb.base).await.unwrap();
        (answer.status(), answer.text().await.unwrap())
    });
    assert_eq!(answer, (reqwest::StatusCode::OK, "a".to_owned()));
    drop((lb, backend));
}
