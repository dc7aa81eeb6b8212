//! The monitor's HTTP server: its router on hyper's HTTP/1, with the limits `axum::serve`
//! does not have (issue 11, item 4: 3,000 connections sending half a header were held
//! forever, and under `ulimit -n 1024` the monitor stopped answering):
//!
//! - **a connection limit**: past [`Limits::max_connections`] open connections, a new one
//!   has its request answered `503` with the reason and is closed, within 2 s (at most
//!   [`REFUSING`] such answers at once; beyond that it is closed unanswered), so descriptors
//!   stay bounded;
//! - **a header read timeout**: a request head not complete within
//!   [`Limits::header_timeout`] closes the connection (slowloris);
//! - **an idle timeout**: a connection that moves no byte either way for
//!   [`Limits::idle_timeout`] is closed once no response is in flight;
//! - **eviction**: at the limit, the oldest connection that has been answered nothing for
//!   [`Limits::evict_after`] (a head still trickling in) is closed to make room, so slow
//!   connections cannot keep new ones out for the whole header timeout;
//! - accept errors (out of descriptors) are logged and retried after a pause, never a spin.
//!
//! On `shutdown` it stops accepting, lets each connection finish the request it is serving,
//! and waits at most [`Limits::drain`] for them.
//!
//! What this is not: TLS (put a proxy in front), HTTP/2, or the routes (`api`, `dashboard`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::Service;

/// Connections over the limit answered `503` at once; more are closed without an answer, so
/// the answers themselves cannot hold many descriptors.
pub const REFUSING: usize = 64;

/// How long a connection over the limit may take to send its request head, read the `503`
/// and close.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// How much of a refused request head is read before the answer.
const REFUSAL_HEAD: usize = 16 * 1024;

/// The pause after a failed `accept` (typically out of descriptors) before the next.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// A request head must arrive within this.
    pub header_timeout: Duration,
    /// A connection moving no byte for this long is closed (between requests).
    pub idle_timeout: Duration,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
    /// At the limit, a connection this old that has not been answered anything yet (a
    /// request head still trickling in, slowloris) is closed to make room for a new one.
    pub evict_after: Duration,
}

impl Limits {
    /// The monitor's: `max_connections` from the config; a request head within 10 s (the
    /// slowest honest client on a bad link sends one in well under a second); 60 s idle
    /// (keep-alive senders that ping every few seconds keep theirs); 10 s to drain; at the
    /// limit, a connection unanswered after 1 s makes room for a new one (as the library's
    /// server: an honest client sends its request head at once; with 5 s, 1,000 slowloris
    /// connections kept 17 % of `/livez` probes out, bench/fault.sh).
    pub fn monitor(max_connections: usize) -> Limits {
        Limits {
            max_connections,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            drain: Duration::from_secs(10),
            evict_after: Duration::from_secs(1),
        }
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let slots = Arc::new(Slots::default());
    let refusing = Arc::new(Semaphore::new(REFUSING));
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; trying again shortly");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Answers are small writes; Nagle's algorithm would only delay them.
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let mut permit = Arc::clone(&open).try_acquire_owned().ok();
        if permit.is_none() && slots.evict(limits.evict_after) {
            // The evicted connection's task lets its permit go as soon as it runs.
            let freed = tokio::time::timeout(EVICTION_WAIT, Arc::clone(&open).acquire_owned());
            permit = freed.await.ok().and_then(Result::ok);
        }
        if let Some(permit) = permit {
            let (app, stop, slots) = (app.clone(), stop.clone(), Arc::clone(&slots));
            tokio::spawn(async move {
                let (id, evicted, activity) = slots.open();
                connection(stream, app, limits, stop, evicted, activity).await;
                slots.close(id);
                drop(permit);
            });
        } else if let Ok(permit) = Arc::clone(&refusing).try_acquire_owned() {
            tokio::spawn(async move {
                refuse(stream, limits.max_connections).await;
                drop(permit);
            });
        } else {
            drop(stream);
        }
    }
    stop.cancel();
    // Every connection holds a permit until it ends: all of them back means all ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.drain, open.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after {:?}; closing them",
            limits.drain
        );
    }
    Ok(())
}

/// One connection: hyper's HTTP/1 with the header timeout, closed when idle or stopping,
/// dropped when evicted.
async fn connection(
    stream: TcpStream,
    app: Router,
    limits: Limits,
    stop: CancellationToken,
    evicted: CancellationToken,
    activity: Arc<Activity>,
) {
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: Arc::clone(&activity),
    });
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let mut app = app.clone();
        async move { app.call(request.map(Body::new)).await }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "http connection ended with an error");
                }
                return;
            }
            () = evicted.cancelled() => return,
            () = stop.cancelled(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.idle_for(limits.idle_timeout), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// A connection over the limit: say why, briefly, and close.
async fn refuse(mut stream: TcpStream, limit: usize) {
    let reason =
        format!("too many open connections (server.max_connections = {limit}); retry shortly\n");
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

/// How long the accept loop waits for an evicted connection's slot.
const EVICTION_WAIT: Duration = Duration::from_millis(100);

/// The open connections, so that at the limit the oldest unanswered one can be evicted.
#[derive(Debug, Default)]
struct Slots {
    next: AtomicU64,
    open: std::sync::Mutex<std::collections::HashMap<u64, (Arc<Activity>, CancellationToken)>>,
}

impl Slots {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<u64, (Arc<Activity>, CancellationToken)>>
    {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new connection's id, eviction token and activity.
    fn open(&self) -> (u64, CancellationToken, Arc<Activity>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (activity, evicted) = (Arc::new(Activity::new()), CancellationToken::new());
        self.lock()
            .insert(id, (Arc::clone(&activity), evicted.clone()));
        (id, evicted, activity)
    }

    fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Evict the oldest connection open at least `after` that has been answered nothing;
    /// whether there was one.
    fn evict(&self, after: Duration) -> bool {
        let open = self.lock();
        let oldest = open
            .values()
            .filter(|(activity, evicted)| {
                !activity.answered.load(Ordering::Relaxed)
                    && !evicted.is_cancelled()
                    && activity.opened.elapsed() >= after
            })
            .min_by_key(|(activity, _)| activity.opened);
        match oldest {
            Some((_, evicted)) => {
                evicted.cancel();
                true
            }
            None => false,
        }
    }
}

/// When a connection last moved a byte, as milliseconds since it opened, and whether it has
/// been answered anything.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    last_ms: AtomicU64,
    answered: std::sync::atomic::AtomicBool,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            opened: Instant::now(),
            last_ms: AtomicU64::new(0),
            answered: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once no byte has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.opened + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that notes every byte it moves in its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
            self.activity.answered.store(true, Ordering::Relaxed);
        }
        poll
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
            self.activity.answered.store(true, Ordering::Relaxed);
        }
        poll
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
