//! Issue 11, item 4: the monitor's HTTP server held connections that sent half a header
//! forever and took any number of them, until it ran out of descriptors and stopped
//! answering. Real sockets on loopback against `serve::http::serve` with short limits.

#![allow(clippy::unwrap_used)] // test code

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals_monitor::serve::http::{Limits, serve};

const LIMITS: Limits = Limits {
    max_connections: 3,
    header_timeout: Duration::from_millis(300),
    idle_timeout: Duration::from_millis(600),
    drain: Duration::from_secs(1),
    // Longer than the header timeout: these tests see the refusal, not eviction.
    evict_after: Duration::from_secs(60),
};

async fn server() -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    server_with(LIMITS).await
}

async fn server_with(limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/livez", get(|| async { "ok" }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve(listener, app, limits, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Everything the server sends until it closes the connection, or None if it is still open
/// after `within`.
async fn until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut got = Vec::new();
    tokio::time::timeout(within, stream.read_to_end(&mut got))
        .await
        .ok()
        .map(|read| {
            read.ok();
            String::from_utf8_lossy(&got).into_owned()
        })
}

async fn livez(addr: std::net::SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    until_closed(&mut stream, Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn half_a_header_is_cut_at_the_header_timeout() {
    let (addr, _stop) = server().await;
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\nx-slow: ")
        .await
        .unwrap();
    // Closed by the server (with a 408 or nothing), well before a test timeout.
    let answer = until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(answer.is_some(), "still open after 5 s");
    assert!(!answer.unwrap().contains("200 OK"));
    assert!(livez(addr).await.starts_with("HTTP/1.1 200 OK"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keep_alive_connection_is_closed() {
    let (addr, _stop) = server().await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 17];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200 OK\r\n");
    // Kept alive after its answer, then closed for idleness.
    assert!(
        until_closed(&mut idle, Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_are_told_why_and_closed() {
    let (addr, _stop) = server().await;
    // Three connections that send nothing hold every slot.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    // Once the server has accepted them, a fourth is refused.
    let refused = vitals_testkit::until(
        "a connection over the limit to be refused",
        Duration::from_secs(5),
        async || {
            let answer = livez(addr).await;
            answer
                .starts_with("HTTP/1.1 503 Service Unavailable")
                .then_some(answer)
        },
    )
    .await;
    assert!(
        refused.contains("too many open connections (server.max_connections = 3)"),
        "{refused}"
    );
    // The silent ones are cut at the header timeout, and their slots serve again.
    for stream in &mut held {
        assert!(until_closed(stream, Duration::from_secs(5)).await.is_some());
    }
    vitals_testkit::until("a slot to free up", Duration::from_secs(5), async || {
        livez(addr).await.starts_with("HTTP/1.1 200 OK")
    })
    .await;
}

/// Slow connections hold every slot for up to the header timeout; at the limit the oldest
/// one that has been answered nothing for `evict_after` makes room, so a new request is
/// served rather than refused.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_limit_the_oldest_unanswered_connection_makes_room() {
    let (addr, _stop) = server_with(Limits {
        header_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        evict_after: Duration::from_secs(1),
        ..LIMITS
    })
    .await;
    // One keep-alive connection that was answered: never evicted.
    let mut answered = TcpStream::connect(addr).await.unwrap();
    answered
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 17];
    answered.read_exact(&mut first).await.unwrap();
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // Young slow connections are not evicted: the new one is refused…
    vitals_testkit::until(
        "a refusal while the slow ones are young",
        Duration::from_secs(5),
        async || livez(addr).await.starts_with("HTTP/1.1 503"),
    )
    .await;
    // …and once they are old enough, one makes room.
    vitals_testkit::until(
        "a slow connection evicted for a new one",
        Duration::from_secs(5),
        async || livez(addr).await.starts_with("HTTP/1.1 200 OK"),
    )
    .await;
    // The server ages a connection from when its task first ran, and on a multi-thread
    // runtime the two slow ones (accepted a moment apart) may start in either order: one of
    // them, the older as the server saw them, is closed.
    let (first, second) = slow.split_at_mut(1);
    let evicted = tokio::select! {
        closed = until_closed(&mut first[0], Duration::from_secs(5)) => closed,
        closed = until_closed(&mut second[0], Duration::from_secs(5)) => closed,
    };
    assert!(evicted.is_some(), "neither slow connection was closed");
    // The answered connection is still served.
    answered
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let rest = until_closed(&mut answered, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(rest.contains("HTTP/1.1 200 OK"), "{rest}");
}
