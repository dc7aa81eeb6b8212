//! `Health::serve` on real sockets against slow and many clients (issue 11, item 4): a flood of
//! half-sent headers does not lock probes out, a half-sent header is closed at the header read
//! timeout, and a stalled upload at the idle timeout.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vitals::Health;
use vitals_testkit::until;

const HALF_HEADER: &[u8] = b"GET /livez HTTP/1.1\r\nHost: vitals\r\nX-Slow: ";

/// Serve `health`'s router (plus `POST /upload`, which reads its body) on a free port.
async fn serve(health: &Health) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/upload",
            post(|body: String| async move { body.len().to_string() }),
        )
        .merge(health.router());
    let health = health.clone();
    tokio::spawn(async move { health.serve(listener, app).await });
    addr
}

/// Whether the server closed `stream` (EOF or reset), without waiting.
fn closed(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    match stream.try_read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Wait (bounded) until the server closes `stream`.
async fn wait_closed(stream: &mut TcpStream, within: Duration, what: &str) {
    let mut buf = [0u8; 256];
    let read = tokio::time::timeout(within, stream.read(&mut buf)).await;
    match read {
        Ok(Ok(0) | Err(_)) => {}
        Ok(Ok(n)) => {
            // A 408 or similar before the close is fine; the close must follow.
            let rest = tokio::time::timeout(within, stream.read(&mut buf)).await;
            assert!(
                matches!(rest, Ok(Ok(0) | Err(_))),
                "{what}: the server answered {:?} and kept the connection open",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        Err(_) => panic!("{what}: the connection was still open after {within:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_half_sent_headers_do_not_stop_livez() {
    let health = Health::builder().max_connections(256).start().unwrap();
    let addr = serve(&health).await;
    let mut flood = Vec::with_capacity(3_000);
    for _ in 0..3_000 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(HALF_HEADER).await.unwrap();
        flood.push(stream);
    }
    // The probe gets in and is answered while the flood holds every slot it can.
    let client = reqwest::Client::new();
    for _ in 0..20 {
        let response = client
            .get(format!("http://{addr}/livez"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .expect("/livez answers during the flood");
        assert_eq!(response.status(), 200);
    }
    // At most 256 connections stay open: the rest were closed to make room.
    until(
        "the server to close all but 256 of the flood's connections",
        Duration::from_secs(20),
        async || {
            let open = flood.iter().filter(|stream| !closed(stream)).count();
            if open <= 256 {
                Ok(())
            } else {
                Err(Some(format!("{open} open")))
            }
        },
    )
    .await;
}

#[tokio::test]
async fn a_half_sent_header_is_closed_at_the_header_read_timeout() {
    let health = Health::builder()
        .header_read_timeout(Duration::from_millis(300))
        .start()
        .unwrap();
    let addr = serve(&health).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(HALF_HEADER).await.unwrap();
    wait_closed(&mut stream, Duration::from_secs(5), "half-sent header").await;

    // A whole request on a new connection is answered as usual.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nHost: vitals\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_stalled_upload_is_closed_at_the_idle_timeout() {
    let health = Health::builder()
        .idle_timeout(Duration::from_millis(300))
        .start()
        .unwrap();
    let addr = serve(&health).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"POST /upload HTTP/1.1\r\nHost: vitals\r\nContent-Length: 99999\r\n\r\nab")
        .await
        .unwrap();
    wait_closed(&mut stream, Duration::from_secs(5), "stalled upload").await;
}

#[tokio::test]
async fn zero_limits_are_refused_by_name() {
    let error = Health::builder()
        .max_connections(0)
        .idle_timeout(Duration::ZERO)
        .start()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "2 invalid health check registrations:\n  \
         server: max_connections is zero; the server could accept nothing\n  \
         server: idle_timeout is zero; every connection would close at once"
    );
}
