//! The server every vitals HTTP port runs (`vitals::serve_router_with`: `Health::serve`,
//! `vitals supervise`, `vitals serve`) against slow clients and many clients (issue 11,
//! item 4: connections that sent half a header were held forever, until the server ran out
//! of descriptors and stopped answering). Real sockets on loopback with short limits.

#![allow(clippy::unwrap_used)] // test code

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use vitals::{ServerLimits, serve_router_with};

const LIMITS: ServerLimits = ServerLimits {
    max_connections: 3,
    header_read_timeout: Duration::from_millis(300),
    idle_timeout: Duration::from_millis(600),
    drain: Duration::from_secs(1),
    // Longer than any test: these see the refusal, not eviction.
    evict_after: Duration::from_secs(60),
};

/// A server with `/livez` and `/slow` (answers after 3 s), and the sender that stops it; the
/// handle ends when the server has returned.
async fn server_with(
    limits: ServerLimits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/livez", get(|| async { "ok" })).route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "slow"
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        serve_router_with(listener, app, limits, async move {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, stop, served)
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

/// A connection that has sent `GET path`, to be read with [`until_closed`].
async fn request(addr: std::net::SocketAddr, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    stream
}

async fn livez(addr: std::net::SocketAddr) -> String {
    let mut stream = request(addr, "/livez").await;
    until_closed(&mut stream, Duration::from_secs(5))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn half_a_header_is_cut_at_the_header_timeout() {
    let (addr, _stop, _) = server_with(LIMITS).await;
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
    let (addr, _stop, _) = server_with(LIMITS).await;
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

/// Every slot held and none old enough to evict: a new connection waits in the backlog for
/// a while, then is told why.
#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_limit_are_told_why_and_closed() {
    let (addr, _stop, _) = server_with(ServerLimits {
        header_read_timeout: Duration::from_secs(4),
        idle_timeout: Duration::from_secs(8),
        ..LIMITS
    })
    .await;
    // Three connections that send nothing hold every slot.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
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
        refused.contains("too many open connections (max_connections = 3)"),
        "{refused}"
    );
    assert!(refused.contains("retry-after: 1"), "{refused}");
    // The silent ones are cut at the header timeout, and their slots serve again.
    for stream in &mut held {
        assert!(until_closed(stream, Duration::from_secs(8)).await.is_some());
    }
    vitals_testkit::until("a slot to free up", Duration::from_secs(5), async || {
        livez(addr).await.starts_with("HTTP/1.1 200 OK")
    })
    .await;
}

/// A connection in the middle of a request is never evicted, however short `evict_after`.
#[tokio::test(flavor = "multi_thread")]
async fn a_busy_connection_is_never_evicted() {
    let (addr, _stop, _) = server_with(ServerLimits {
        max_connections: 1,
        evict_after: Duration::from_millis(50),
        // Longer than `/slow` takes to answer.
        idle_timeout: Duration::from_secs(8),
        ..LIMITS
    })
    .await;
    let mut slow = request(addr, "/slow").await;
    // While `/slow` is in flight, a new connection is refused rather than making room.
    vitals_testkit::until(
        "a refusal while the only slot is busy",
        Duration::from_secs(3),
        async || livez(addr).await.starts_with("HTTP/1.1 503"),
    )
    .await;
    let answer = until_closed(&mut slow, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(answer.ends_with("slow"), "{answer}");
}

/// Slow connections hold every slot for up to the header timeout; at the limit the one that
/// has waited longest for its next request makes room once it has waited `evict_after`, so a
/// new request is served rather than refused.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_limit_the_longest_idle_connection_makes_room() {
    let (addr, _stop, _) = server_with(ServerLimits {
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(30),
        evict_after: Duration::from_secs(3),
        ..LIMITS
    })
    .await;
    // A kept-alive connection, answered and idle since: the longest idle of the three.
    let mut answered = TcpStream::connect(addr).await.unwrap();
    answered
        .write_all(b"GET /livez HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 17];
    answered.read_exact(&mut first).await.unwrap();
    // The server counts idleness in milliseconds: make the kept-alive one distinctly older.
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Two connections trickling a request head.
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /livez HTTP/1.1\r\nx-slow: ")
            .await
            .unwrap();
        slow.push(stream);
    }
    // While they are young, a new connection waits and is then refused…
    vitals_testkit::until(
        "a refusal while every connection is young",
        Duration::from_secs(5),
        async || livez(addr).await.starts_with("HTTP/1.1 503"),
    )
    .await;
    // …and once they have waited long enough, one makes room.
    vitals_testkit::until(
        "an idle connection evicted for a new one",
        Duration::from_secs(8),
        async || livez(addr).await.starts_with("HTTP/1.1 200 OK"),
    )
    .await;
    // The one evicted first is the kept-alive connection, idle since its answer.
    assert!(
        until_closed(&mut answered, Duration::from_secs(5))
            .await
            .is_some(),
        "the longest idle connection was not closed"
    );
}

/// Shutdown lets a request in flight finish within the drain, and closes one that would
/// outlast it.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_waits_for_the_drain_and_no_longer() {
    let (addr, stop, served) = server_with(ServerLimits {
        drain: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(8),
        ..LIMITS
    })
    .await;
    let mut slow = request(addr, "/slow").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    let answer = until_closed(&mut slow, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .unwrap()
        .unwrap();

    let (addr, stop, served) = server_with(ServerLimits {
        drain: Duration::from_millis(300),
        idle_timeout: Duration::from_secs(8),
        ..LIMITS
    })
    .await;
    let mut slow = request(addr, "/slow").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();
    // Returns after the drain, well before `/slow` would answer, and the connection is cut.
    tokio::time::timeout(Duration::from_secs(2), served)
        .await
        .expect("the server outlasted its drain")
        .unwrap();
    let answer = until_closed(&mut slow, Duration::from_secs(2))
        .await
        .expect("the busy connection was left open after the drain");
    assert!(!answer.contains("200 OK"), "{answer}");
}
