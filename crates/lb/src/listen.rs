//! Listening sockets: accept, TLS when the listener has certificates, then hyper's
//! automatic server — HTTP/1.1 or HTTP/2 (by ALPN over TLS, by the connection preface in
//! cleartext) — with upgrades allowed, each connection on its own task.
//!
//! A listener's [`Route`] (its pool, certificates and limits) sits behind an [`ArcSwap`]:
//! a reload stores a new one and the next request uses it, while connections and requests
//! in flight carry on. Removing a listener stops its accept loop and asks its open
//! connections to close once their request in flight is answered, as at shutdown.
//!
//! Bounds: 30 s for a request head (HTTP/1.1) and 10 s for a TLS handshake, after which
//! the connection is closed; an HTTP/2 connection has at most `max_concurrent_streams`
//! streams and a header list of at most `max_header_bytes`, and one whose client stops
//! answering PINGs (sent after 60 s of silence) is closed. A handshake of garbage or a
//! malformed request ends that one connection.
//!
//! Not here: what a request does (`proxy`), which certificate answers (`tls`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vitals_config::lb::{IpNet, Listener};

use crate::proxy::{Stopping, Upstream, handle};
use crate::tls::ServerTls;

/// A slow client gets this long to send a request's head; slowloris gets nothing more.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An HTTP/2 connection silent this long is sent a PING…
const H2_PING_EVERY: Duration = Duration::from_secs(60);
/// …and closed when the answer does not come within this.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// What a listener does with its connections; replaced whole by a reload.
#[derive(Debug)]
pub struct Route {
    pub upstream: Arc<Upstream>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub tls: Option<Arc<ServerTls>>,
    /// The listener's configuration, to tell what a reload changes.
    pub config: Listener,
    http: auto::Builder<TokioExecutor>,
}

impl Route {
    pub fn new(config: &Listener, upstream: Arc<Upstream>, tls: Option<Arc<ServerTls>>) -> Route {
        let mut http = auto::Builder::new(TokioExecutor::new());
        http.http1()
            .max_buf_size(config.max_header_bytes.max(8192))
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        http.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
            // A client that resets streams faster than it opens them (the "rapid reset"
            // flood) is cut off; hyper's default is 20 pending, which is this.
            .max_pending_accept_reset_streams(20)
            // A client gone without a word (power cut, a dropped NAT entry) is found by a
            // PING unanswered, rather than holding its connection for ever.
            .keep_alive_interval(H2_PING_EVERY)
            .keep_alive_timeout(H2_PING_TIMEOUT);
        Route {
            upstream,
            trusted_proxies: Arc::from(config.trusted_proxies.clone()),
            tls,
            config: config.clone(),
            http,
        }
    }
}

/// One running listener: its route, and the token that stops its accept loop.
#[derive(Debug)]
pub struct Listening {
    pub route: Arc<ArcSwap<Route>>,
    pub stop: CancellationToken,
}

/// Accepts connections on `socket` and serves each on its own task until `stop` (this
/// listener removed, or the balancer stopping: a child of `stopping.stop`). Its open
/// connections then answer the request in flight and close.
pub async fn serve(
    socket: TcpListener,
    route: Arc<ArcSwap<Route>>,
    stop: CancellationToken,
    stopping: Stopping,
) {
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            () = stop.cancelled() => return,
            () = stopping.stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors, usually: wait rather than spin.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let route = Arc::clone(&route);
        let stopping = stopping.clone();
        stopping
            .connections
            .clone()
            .spawn(connection(stream, peer, route, stop.clone(), stopping));
    }
}

/// One client connection, from the TLS handshake (if any) to its last response.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    route: Arc<ArcSwap<Route>>,
    stop: CancellationToken,
    stopping: Stopping,
) {
    let current = route.load_full();
    let tunnels = stopping.connections;
    match &current.tls {
        None => serve_http(TokioIo::new(stream), peer, &current, route, stop, tunnels).await,
        Some(tls) => {
            let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream));
            match handshake.await {
                Ok(Ok(stream)) => {
                    serve_http(TokioIo::new(stream), peer, &current, route, stop, tunnels).await;
                }
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                }
                Err(_elapsed) => {
                    tracing::debug!(%peer, "TLS handshake not finished within {HANDSHAKE_TIMEOUT:?}");
                }
            }
        }
    }
}

/// Serves one connection until it closes, or until `stop` (then the request in flight is
/// answered first). `tunnels` tracks its upgraded connections.
async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    current: &Route,
    route: Arc<ArcSwap<Route>>,
    stop: CancellationToken,
    tunnels: TaskTracker,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        // Each request takes the route as it is now: a reload reaches kept-alive
        // connections at their next request.
        let route = route.load_full();
        handle(
            Arc::clone(&route.upstream),
            Arc::clone(&route.trusted_proxies),
            peer,
            tunnels.clone(),
            request,
        )
    });
    let connection = current.http.serve_connection_with_upgrades(io, service);
    let mut connection = std::pin::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            // Finish the request in flight, then close (an idle keep-alive connection
            // closes at once).
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        tracing::debug!(%peer, %error, "client connection ended with an error");
    }
}
