//! The HTTP server of every vitals port that answers HTTP: [`Health::serve`](crate::Health::serve),
//! `vitals supervise`'s probe port and the monitor's (`vitals serve`). hyper's HTTP/1.1 with the
//! defences a port open to anyone needs against slow clients and many clients (issue 11,
//! item 4: 3,000 connections sending half a header were held forever, and under
//! `ulimit -n 1024` the server stopped answering). One server, so one set of defences to get
//! right; [`ServerLimits`] holds its knobs.
//!
//! - **Header read timeout** (default 10 s): a request's headers must be complete within it,
//!   counted from when the server starts waiting for them: on a new connection, and after the
//!   previous response on a kept-alive one (so a kept-alive connection idle that long between
//!   requests is closed too, as Node's `keepAliveTimeout` does). hyper enforces it.
//! - **Idle timeout** (default 60 s): a connection on which no byte moved either way for this
//!   long is closed, whatever it was doing (a request body that stopped arriving, a client that
//!   stopped reading). Checked every half timeout, so it closes within 1.5 × the timeout.
//! - **Connection limit** (default 512): at the limit the server accepts the next connection
//!   only after closing the one that has waited longest for its next request, once it has
//!   waited at least [`ServerLimits::evict_after`] (default 1 s); until then new connections
//!   wait in the kernel's backlog. A flood of connections that never finish a header
//!   (slowloris) therefore cannot keep a kubelet's probe, which sends its request at once, out
//!   for more than about that long, and a burst of honest clients beyond the limit is delayed,
//!   not refused. Connections in the middle of a request are never evicted: when every slot
//!   is busy for longer than [`BACKLOG_WAIT`], the next connection is answered `503` with the
//!   reason and `retry-after` (at most [`REFUSING`] such answers at once, each within
//!   [`REFUSAL_TIME`]; beyond that it is closed unanswered), so a client learns why rather
//!   than timing out.
//! - **Accept failures** (out of file descriptors) free one by the same eviction and retry
//!   after a pause, never a spin; the first is logged as a warning, the recovery as info.
//! - **Shutdown**: stop accepting, let each connection finish the request it is in (an idle
//!   one closes at once), and wait at most [`ServerLimits::drain`] (default 10 s) before
//!   closing what is left.
//!
//! With the `grpc` feature it also speaks HTTP/2 (cleartext, prior knowledge: what gRPC
//! clients send to a plain port), told apart from HTTP/1.1 by the first bytes, with pings
//! every third of the idle timeout so that a quiet Watch stream keeps its connection. A
//! connection counts as busy only while a request waits for its response's head, so at the
//! connection limit one whose only traffic is an open Watch stream may be evicted like an idle
//! one; its client sees the stream end and watches again, as gRPC clients do.
//!
//! What it is not: a general-purpose server. No TLS (terminate it in front), no
//! per-client rate limits (the monitor's ping routes have their own). `TCP_NODELAY` is set on
//! every connection: answers are small writes, and Nagle's algorithm would only delay them.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::Instant;

/// How long a connection over the limit waits in the backlog for a slot (one closing, or an
/// idle one evicted) before it is answered `503`.
pub const BACKLOG_WAIT: Duration = Duration::from_secs(1);

/// Connections over the limit answered `503` at once; more are closed without an answer, so
/// the answers themselves cannot hold many descriptors.
pub const REFUSING: usize = 64;

/// How long a refused connection may take to send its request head, read the `503` and close.
pub const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// How much of a refused request head is read before the answer.
const REFUSAL_HEAD: usize = 16 * 1024;

/// The pause after a failed `accept` (typically out of descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// The limits of [`serve_router_with`]; see the module documentation for what each one does.
/// [`Default`] gives the values every vitals server uses unless told otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// A request's headers must be complete within this (10 s).
    pub header_read_timeout: Duration,
    /// A connection moving no byte either way for this long is closed (60 s).
    pub idle_timeout: Duration,
    /// Open connections at most (512).
    pub max_connections: usize,
    /// At the limit, a connection that has waited this long for its next request (a head
    /// still trickling in, or a kept-alive one between requests) may be closed to make room
    /// (1 s): long enough for any client that sends its request at once (a burst of
    /// connections is accepted faster than their tasks first run), short enough that a flood
    /// of half-sent headers delays a probe by about this much at most.
    pub evict_after: Duration,
    /// How long shutdown waits for requests in flight before closing their connections (10 s).
    pub drain: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 512,
            evict_after: Duration::from_secs(1),
            drain: Duration::from_secs(10),
        }
    }
}

/// One open connection, as the limit sees it.
#[derive(Debug)]
struct Conn {
    /// Requests being handled now; a busy connection is never evicted.
    busy: AtomicUsize,
    /// Milliseconds since the server started at which the connection last became idle
    /// (accepted, or a response was handed to hyper).
    idle_since: AtomicU64,
    /// Bytes moved either way (reads and writes counted as events), for the idle timeout.
    activity: AtomicU64,
    /// Notified to close the connection now (evicted).
    evict: Notify,
}

/// Every open connection, keyed by a serial number. Locked on accept and close only, never
/// per request.
#[derive(Debug, Default)]
struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
}

impl Table {
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Close the connection idle the longest, if it has been idle for `grace` at least (at
    /// `now`, in milliseconds since the server started). False if none may be closed.
    fn evict_oldest_idle(&self, now: u64, grace: Duration) -> bool {
        let grace = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX);
        let mut conns = self.lock();
        let oldest = conns
            .iter()
            .filter(|(_, conn)| conn.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|(_, conn)| conn.idle_since.load(Ordering::Relaxed))
            .filter(|(_, conn)| {
                now.saturating_sub(conn.idle_since.load(Ordering::Relaxed)) >= grace
            })
            .map(|(serial, _)| *serial);
        // Out of the table at once, so that it is neither counted nor chosen again while its
        // task gets round to closing it.
        match oldest.and_then(|serial| conns.remove(&serial)) {
            Some(conn) => {
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }

    /// Close every connection now (the drain ran out).
    fn close_all(&self) {
        for conn in self.lock().values() {
            conn.evict.notify_one();
        }
    }
}

/// Serve `app` on `listener` with [`ServerLimits::default`] until `shutdown` resolves, then
/// finish what is in flight. For programs that answer probes without a
/// [`Health`](crate::Health) of their own, such as `vitals supervise`, which answers for its
/// child.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    serve_router_with(listener, app, ServerLimits::default(), shutdown).await
}

/// Serve `app` on `listener` within `limits` until `shutdown` resolves; then stop accepting,
/// let each connection finish the request it is in, and return once all have closed or
/// [`ServerLimits::drain`] has passed.
pub async fn serve_router_with(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let started = Instant::now();
    let table = Arc::new(Table::default());
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut serial = 0u64;
    // Since when every slot has been taken with none to evict; None while there is room.
    let mut full_since: Option<Instant> = None;
    let mut accept_failing = false;
    loop {
        // At the limit, make room before accepting: the new connection waits in the backlog,
        // for a while.
        let full = table.len() >= limits.max_connections
            && !table.evict_oldest_idle(millis_since(started), limits.evict_after);
        let over_limit = if full {
            let since = *full_since.get_or_insert_with(Instant::now);
            if since.elapsed() < BACKLOG_WAIT {
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(10)) => continue,
                }
            }
            true
        } else {
            full_since = None;
            false
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) if is_per_connection(&error) => continue,
                Err(error) => {
                    // Most likely out of file descriptors: free one by closing the connection
                    // idle the longest, and try again shortly.
                    if !accept_failing {
                        tracing::warn!(%error, "cannot accept connections; closing idle ones to make room");
                        accept_failing = true;
                    }
                    table.evict_oldest_idle(millis_since(started), limits.evict_after);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        if std::mem::take(&mut accept_failing) {
            tracing::info!("accepting connections again");
        }
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        if over_limit {
            if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
                tokio::spawn(async move {
                    refuse(stream, limits.max_connections).await;
                    drop(permit);
                });
            }
            continue;
        }
        serial += 1;
        let conn = Arc::new(Conn {
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(millis_since(started)),
            activity: AtomicU64::new(0),
            evict: Notify::new(),
        });
        table.lock().insert(serial, Arc::clone(&conn));
        let table = Arc::clone(&table);
        let app = app.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            handle(stream, app, Arc::clone(&conn), limits, started, stop).await;
            table.lock().remove(&serial);
        });
    }
    drop(listener);
    drop(stop_rx);
    let _ = stop_tx.send(true);
    // Every connection task holds a receiver; they are all gone once each has closed.
    if tokio::time::timeout(limits.drain, stop_tx.closed())
        .await
        .is_err()
    {
        tracing::warn!(drain = ?limits.drain, "connections still busy after the drain; closing them");
        table.close_all();
    }
    Ok(())
}

/// A connection over the limit: say why, briefly, and close.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let reason = format!("too many open connections (max_connections = {limit}); retry shortly\n");
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{reason}",
        reason.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, async {
        // Answer the request, not the connection: a client that reads an answer before it
        // has sent its request takes it for a protocol error. A head of any size will do.
        let mut head = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        while head.len() < REFUSAL_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await? {
                0 => return Ok(()),
                n => head.extend_from_slice(&chunk[..n]),
            }
        }
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await?;
        // Read the rest before closing: closing with unread bytes resets the connection,
        // and the client might lose the answer.
        while stream.read(&mut chunk).await? > 0 {}
        std::io::Result::Ok(())
    })
    .await;
}

/// Accept errors that concern one connection only (it was reset before we took it).
fn is_per_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted
    )
}

fn millis_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Serve one connection until it ends, is evicted, goes idle, or the server stops.
async fn handle(
    stream: TcpStream,
    app: Router,
    conn: Arc<Conn>,
    limits: ServerLimits,
    started: Instant,
    mut stop: watch::Receiver<bool>,
) {
    let io = TokioIo::new(Counted {
        inner: stream,
        conn: Arc::clone(&conn),
    });
    let service = {
        let conn = Arc::clone(&conn);
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let busy = Busy::enter(Arc::clone(&conn), started);
            let mut app = app.clone();
            async move {
                let response = tower::Service::call(&mut app, request).await;
                drop(busy);
                response
            }
        })
    };
    #[cfg(not(feature = "grpc"))]
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(io, service);
    #[cfg(feature = "grpc")]
    let builder = http1_and_2(&limits);
    #[cfg(feature = "grpc")]
    let connection = builder.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let idle = idle_watch(&conn, limits.idle_timeout);
    let mut idle = std::pin::pin!(idle);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = conn.evict.notified() => {
                tracing::debug!("connection evicted to make room for a new one");
                return;
            }
            () = &mut idle => {
                tracing::debug!(idle_timeout = ?limits.idle_timeout, "idle connection closed");
                return;
            }
            changed = stop.changed(), if !stopping => {
                // Finish the request in flight, then close (or close now if idle).
                stopping = true;
                if changed.is_ok() {
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// With gRPC: HTTP/1.1 as without, and HTTP/2 (prior knowledge, as gRPC clients speak it
/// over plain TCP) told apart by the connection's first bytes. HTTP/2 pings every third of
/// the idle timeout keep a quiet Watch stream's connection from counting as idle, and find a
/// peer that vanished; the stream limit bounds what one connection can open.
#[cfg(feature = "grpc")]
fn http1_and_2(
    limits: &ServerLimits,
) -> hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor> {
    let mut builder =
        hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval((limits.idle_timeout / 3).max(Duration::from_millis(100)))
        .keep_alive_timeout(limits.header_read_timeout)
        .max_concurrent_streams(MAX_STREAMS);
    builder
}

/// Concurrent HTTP/2 streams on one connection (probes and Watch streams).
#[cfg(feature = "grpc")]
const MAX_STREAMS: u32 = 128;

/// Resolves once no byte has moved on `conn` for `timeout` (checked every half timeout).
async fn idle_watch(conn: &Conn, timeout: Duration) {
    let period = (timeout / 2).max(Duration::from_millis(1));
    let mut seen = conn.activity.load(Ordering::Relaxed);
    let mut quiet = Duration::ZERO;
    loop {
        tokio::time::sleep(period).await;
        let now = conn.activity.load(Ordering::Relaxed);
        if now == seen {
            quiet += period;
            if quiet >= timeout {
                return;
            }
        } else {
            seen = now;
            quiet = Duration::ZERO;
        }
    }
}

/// Marks a connection busy while a request is handled; idle again when dropped (the response
/// was handed to hyper, or the request was cancelled).
struct Busy {
    conn: Arc<Conn>,
    started: Instant,
}

impl Busy {
    fn enter(conn: Arc<Conn>, started: Instant) -> Self {
        conn.busy.fetch_add(1, Ordering::Relaxed);
        Busy { conn, started }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.conn
            .idle_since
            .store(millis_since(self.started), Ordering::Relaxed);
        self.conn.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that counts its reads and writes, for the idle timeout.
struct Counted {
    inner: TcpStream,
    conn: Arc<Conn>,
}

impl Counted {
    fn moved(&self) {
        self.conn.activity.fetch_add(1, Ordering::Relaxed);
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        result
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
