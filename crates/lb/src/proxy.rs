//! The data path: an HTTP/1.1 server per listener (hyper) that forwards each request to a
//! backend the pool picks, through a pooled keep-alive client (hyper-util), and retries it
//! on another backend when that is safe and the budget allows.
//!
//! A try may be retried when the request is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, or
//! marked so in the config), its body was small enough to keep (or empty), and no response
//! came back: the connection was refused, reset, or the response headers did not arrive
//! within `request_timeout`. Nothing is retried once response bytes have gone to the client.
//! Each try's result feeds the pool's passive checks; no decision is made here.
//!
//! What the client did is never held against a backend (issue 11, item 3): the request body
//! is watched ([`Watched`]), and a try that failed because the client's body broke off (it
//! announced 99,999 bytes, sent 2 and closed) is answered 400 and not counted, as is a try
//! cut at `request_timeout` while the client was still sending its body (a slow upload,
//! answered 408).
//!
//! Not here: picking, ejection, budgets (`pool`, `budget`), health checks (`health`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::{self, Authority, PathAndQuery};
use http::{Method, Request, Response, StatusCode, Uri, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vitals_config::lb::{IDEMPOTENT, IpNet, Pool, defaults};

use crate::budget::RetryBudget;
use crate::headers::{forwarded_for, strip_hop_by_hop};
use crate::{lock, now};
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{BackendLabels, Metrics, PoolLabels, RequestLabels};
use crate::pool::{PoolState, Tried};

/// Bodies in both directions.
pub type Body = UnsyncBoxBody<Bytes, hyper::Error>;

/// How far a client's streamed request body got, as the backend's connection read it.
const STREAMING: u8 = 0;
const COMPLETE: u8 = 1;
const BROKEN: u8 = 2;

/// A client's request body on its way to a backend, telling whether it ended, broke off, or
/// is still coming: whose fault a failed try was.
struct Watched {
    inner: Body,
    progress: Arc<AtomicU8>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => self.progress.store(COMPLETE, Ordering::Release),
            Poll::Ready(Some(Err(_))) => self.progress.store(BROKEN, Ordering::Release),
            Poll::Ready(Some(Ok(_))) if self.inner.is_end_stream() => {
                self.progress.store(COMPLETE, Ordering::Release);
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A slow client gets this long to send a request's head; slowloris gets nothing more.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle keep-alive connections to backends are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One pool as the data path uses it.
#[derive(Debug)]
pub struct Upstream {
    pub id: String,
    pub state: Arc<Mutex<PoolState>>,
    budget: Mutex<RetryBudget>,
    client: Client<HttpConnector, Body>,
    request_timeout: Duration,
    idempotent: Vec<Method>,
    /// Per backend, in pool order: what the request path needs without a lock or an
    /// allocation (a metric lookup hashes its labels; these are looked up once).
    routes: Vec<Route>,
    metrics: Arc<Metrics>,
}

/// One backend as the data path addresses and counts it.
#[derive(Debug)]
struct Route {
    name: String,
    address: SocketAddr,
    authority: Authority,
    /// Tries by status class: 1xx … 5xx, then "error" (no response).
    tries: [Counter; 6],
}

const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];

impl Upstream {
    pub fn new(pool: &Pool, state: Arc<Mutex<PoolState>>, metrics: Arc<Metrics>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(pool.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        let idempotent = IDEMPOTENT
            .iter()
            .copied()
            .chain(pool.idempotent_methods.iter().map(String::as_str))
            .filter_map(|m| Method::from_bytes(m.as_bytes()).ok())
            .collect();
        let routes = pool
            .backends
            .iter()
            .map(|b| Route {
                name: b.name.clone(),
                address: b.address,
                // An IP address and port is always a valid authority.
                authority: Authority::try_from(b.address.to_string().as_str())
                    .unwrap_or_else(|_| Authority::from_static("invalid")),
                tries: CLASSES.map(|class| {
                    metrics
                        .requests
                        .get_or_create(&RequestLabels {
                            pool: pool.id.clone(),
                            backend: b.name.clone(),
                            class,
                        })
                        .clone()
                }),
            })
            .collect();
        Upstream {
            routes,
            id: pool.id.clone(),
            state,
            budget: Mutex::new(RetryBudget::new(
                pool.retry_budget,
                pool.retry_min_per_second,
                now(),
            )),
            client,
            request_timeout: pool.request_timeout,
            idempotent,
            metrics,
        }
    }
}

/// How the balancer stops: `stop` ends accepting and asks every connection to close once
/// its request in flight is answered; `connections` tracks them until they have.
#[derive(Debug, Clone)]
pub struct Stopping {
    pub stop: CancellationToken,
    pub connections: TaskTracker,
}

/// Accepts connections on `listener` and serves each on its own task until `stopping.stop`.
/// A bad request (a head over `max_header_bytes`, malformed HTTP) gets hyper's 4xx and ends
/// that connection only.
pub async fn serve(
    listener: TcpListener,
    upstream: Arc<Upstream>,
    max_header_bytes: usize,
    trusted_proxies: Arc<[IpNet]>,
    stopping: Stopping,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
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
        let upstream = Arc::clone(&upstream);
        let trusted = Arc::clone(&trusted_proxies);
        let stop = stopping.stop.clone();
        stopping.connections.spawn(async move {
            let service = service_fn(move |request| {
                handle(Arc::clone(&upstream), Arc::clone(&trusted), peer, request)
            });
            let connection = http1::Builder::new()
                .max_buf_size(max_header_bytes.max(8192))
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = stop.cancelled() => {
                    // Finish the request in flight, then close (an idle keep-alive
                    // connection closes at once).
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "client connection ended with an error");
            }
        });
    }
}

/// A short plain-text answer of the balancer's own.
fn answer(status: StatusCode, text: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(text + "\n"))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Counts a try out of flight when the response body is done (or dropped).
struct InFlight {
    state: Arc<Mutex<PoolState>>,
    index: usize,
    /// When it was picked: the try's key in the pool's stall watch.
    started: std::time::Instant,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.state).release(self.index, self.started);
    }
}

async fn handle(
    up: Arc<Upstream>,
    trusted_proxies: Arc<[IpNet]>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let trusted = trusted_proxies.iter().any(|net| net.contains(peer.ip()));
    forwarded_for(&mut parts.headers, peer.ip(), trusted);
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let idempotent = up.idempotent.contains(&parts.method);
    // A small body is kept so the request can be sent again; a large or streamed one goes
    // through once. Most requests have none, which needs no reading at all.
    let size = body.size_hint().exact();
    let (kept, mut stream) = match size {
        Some(0) if idempotent => (Some(Bytes::new()), None),
        Some(n) if idempotent && n <= defaults::RETRY_BODY_BYTES as u64 => {
            match tokio::time::timeout(up.request_timeout, body.collect()).await {
                Ok(Ok(collected)) => (Some(collected.to_bytes()), None),
                Ok(Err(error)) => {
                    up.count_client_fault("aborted");
                    return Ok(answer(
                        StatusCode::BAD_REQUEST,
                        format!("could not read the request body: {error}"),
                    ));
                }
                Err(_elapsed) => {
                    up.count_client_fault("slow");
                    return Ok(answer(
                        StatusCode::REQUEST_TIMEOUT,
                        format!(
                            "the request body did not arrive within {:?}",
                            up.request_timeout
                        ),
                    ));
                }
            }
        }
        _ => (None, Some(body)),
    };
    let progress = Arc::new(AtomicU8::new(STREAMING));
    lock(&up.budget).handle_request(now());
    let mut tried: Vec<usize> = Vec::new();
    let mut failure: Option<Response<Body>> = None;
    loop {
        let started = now();
        let picked = lock(&up.state).pick(started, &tried);
        let index = match picked {
            Ok(index) => index,
            Err(unavailable) => {
                if let Some(failure) = failure {
                    return Ok(failure);
                }
                up.metrics
                    .unavailable
                    .get_or_create(&PoolLabels {
                        pool: up.id.clone(),
                    })
                    .inc();
                return Ok(answer(
                    StatusCode::SERVICE_UNAVAILABLE,
                    unavailable.to_string(),
                ));
            }
        };
        let route = &up.routes[index];
        // Counted out of flight when this try ends, however it ends (the client may go
        // away and this future be dropped mid-try).
        let guard = InFlight {
            state: Arc::clone(&up.state),
            index,
            started,
        };
        let streamed = stream.is_some();
        let body = match (&kept, stream.take()) {
            (Some(bytes), _) if bytes.is_empty() => {
                Empty::new().map_err(|never| match never {}).boxed_unsync()
            }
            (Some(bytes), _) => Full::new(bytes.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
            (None, Some(incoming)) => Watched {
                inner: incoming.boxed_unsync(),
                progress: Arc::clone(&progress),
            }
            .boxed_unsync(),
            (None, None) => Empty::new().map_err(|never| match never {}).boxed_unsync(),
        };
        let mut uri = uri::Parts::default();
        uri.scheme = Some(uri::Scheme::HTTP);
        uri.authority = Some(route.authority.clone());
        uri.path_and_query = Some(path.clone());
        let mut outgoing = Request::new(body);
        *outgoing.method_mut() = parts.method.clone();
        // Scheme, authority and path are all set: the parts always make a URI.
        *outgoing.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *outgoing.headers_mut() = parts.headers.clone();
        let result = tokio::time::timeout(up.request_timeout, up.client.request(outgoing)).await;
        // The client's side of a failed try: its body broke off, or was still coming when
        // the time ran out. Neither says anything about the backend.
        let client_fault = match (&result, progress.load(Ordering::Acquire)) {
            (Err(_) | Ok(Err(_)), BROKEN) if streamed => Some((
                "aborted",
                StatusCode::BAD_REQUEST,
                "the request body ended before its announced length (the client closed or reset the connection)".to_owned(),
            )),
            (Err(_), STREAMING) if streamed => Some((
                "slow",
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the request body did not arrive within {:?}",
                    up.request_timeout
                ),
            )),
            _ => None,
        };
        if let Some((why, status, text)) = client_fault {
            drop(guard);
            up.count_client_fault(why);
            tracing::debug!(pool = %up.id, backend = %route.name, %peer, "{text}; not held against the backend");
            return Ok(answer(status, text));
        }
        let problem = match result {
            Ok(Ok(response)) => {
                let status = response.status();
                let mut state = lock(&up.state);
                state.handle_answer(now(), index, started);
                let ejected = state.handle_result(
                    now(),
                    index,
                    if status.is_server_error() {
                        Tried::ServerError
                    } else {
                        Tried::Answered
                    },
                );
                drop(state);
                if ejected.is_some() {
                    eject(&up, &route.name, "5xx answers in a row");
                }
                route.tries[usize::from(status.as_u16() / 100).clamp(1, 5) - 1].inc();
                let (mut rparts, rbody) = response.into_parts();
                strip_hop_by_hop(&mut rparts.headers);
                let rbody = rbody
                    .map_frame(move |frame| {
                        let _ = &guard;
                        frame
                    })
                    .boxed_unsync();
                return Ok(Response::from_parts(rparts, rbody));
            }
            Ok(Err(error)) => {
                let cause = std::error::Error::source(&error)
                    .map_or_else(|| error.to_string(), |s| format!("{error}: {s}"));
                (
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "backend {} ({}) of pool {:?} failed: {cause}",
                        route.name, route.address, up.id
                    ),
                )
            }
            Err(_elapsed) => (
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "backend {} ({}) of pool {:?} sent no response within {:?}",
                    route.name, route.address, up.id, up.request_timeout
                ),
            ),
        };
        route.tries[5].inc();
        drop(guard);
        let ejected = lock(&up.state).handle_result(now(), index, Tried::NoAnswer);
        if ejected.is_some() {
            eject(&up, &route.name, "requests failed in a row");
        }
        tracing::warn!(pool = %up.id, backend = %route.name, error = %problem.1, "try failed");
        tried.push(index);
        let pool = PoolLabels {
            pool: up.id.clone(),
        };
        if kept.is_some() {
            if lock(&up.budget).try_retry(now()) {
                up.metrics.retries.get_or_create(&pool).inc();
                failure = Some(answer(problem.0, problem.1));
                continue;
            }
            up.metrics.retries_refused.get_or_create(&pool).inc();
        }
        return Ok(answer(problem.0, problem.1));
    }
}

impl Upstream {
    /// A request that failed by the client's doing: `aborted` (its body broke off) or `slow`
    /// (its body did not arrive in time).
    fn count_client_fault(&self, why: &'static str) {
        self.metrics
            .client_faults
            .get_or_create(&crate::metrics::ClientFaultLabels {
                pool: self.id.clone(),
                reason: why,
            })
            .inc();
    }
}

fn eject(up: &Upstream, name: &str, why: &str) {
    tracing::warn!(pool = %up.id, backend = %name, "backend ejected: {why}");
    up.metrics
        .ejections
        .get_or_create(&BackendLabels {
            pool: up.id.clone(),
            backend: name.to_string(),
        })
        .inc();
}
