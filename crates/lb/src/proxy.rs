//! The request path: each request a listener (`listen`) takes is forwarded to a backend the
//! pool picks, through a pooled keep-alive client (hyper-util; HTTP/1.1 or HTTP/2, over TLS
//! when the pool says so), and retried on another backend when that is safe and the budget
//! allows. Trailers pass through (gRPC's status is one); upgrades are spliced (`upgrade`).
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
//! Not here: accepting connections and TLS (`listen`, `tls`), picking, ejection, budgets
//! (`pool`, `budget`), health checks (`health`).

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
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vitals_config::lb::{IDEMPOTENT, IpNet, Pool, Protocol, defaults};

use crate::budget::RetryBudget;
use crate::headers::{forwarded_for, strip_hop_by_hop};
use crate::{lock, now};
use prometheus_client::metrics::counter::Counter;

use crate::metrics::{BackendLabels, Metrics, PoolLabels, RequestLabels};
use crate::pool::{PoolState, Tried};
use crate::tls::TlsError;
use crate::upgrade;

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

/// Idle keep-alive connections to backends are closed after this.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One pool as the data path uses it.
#[derive(Debug)]
pub struct Upstream {
    pub id: String,
    pub state: Arc<Mutex<PoolState>>,
    budget: Mutex<RetryBudget>,
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// `https` when the pool speaks TLS to its backends.
    scheme: uri::Scheme,
    /// The pool as configured, to tell what a reload changes.
    pub config: Pool,
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
    /// The data path of `pool` (`field` names it in errors, like `pool[0] ("web")`). Fails
    /// only when its TLS material does not load.
    pub fn new(
        pool: &Pool,
        field: &str,
        state: Arc<Mutex<PoolState>>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, TlsError> {
        let connector = crate::tls::connector(pool, field)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .http2_only(pool.protocol == Protocol::Http2)
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
        Ok(Upstream {
            routes,
            scheme: if pool.tls.is_some() {
                uri::Scheme::HTTPS
            } else {
                uri::Scheme::HTTP
            },
            config: pool.clone(),
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
        })
    }
}

/// How the balancer stops: `stop` ends accepting and asks every connection to close once
/// its request in flight is answered; `connections` tracks them until they have.
#[derive(Debug, Clone)]
pub struct Stopping {
    pub stop: CancellationToken,
    pub connections: TaskTracker,
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

/// Answers one client request: forwards it (retried when safe), or says why it could not.
/// `tunnels` tracks upgraded connections, so that a stopping balancer waits for them.
pub async fn handle(
    up: Arc<Upstream>,
    trusted_proxies: Arc<[IpNet]>,
    peer: SocketAddr,
    tunnels: TaskTracker,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, body) = request.into_parts();
    let mut upgrade = upgrade::take(&mut parts);
    strip_hop_by_hop(&mut parts.headers);
    if let Some(upgrade) = &upgrade {
        upgrade::ask(&mut parts.headers, upgrade);
    }
    // HTTP/2 (and absolute-form HTTP/1.1) name the host in the URI: backends get it as
    // `Host`, as the client meant it.
    if !parts.headers.contains_key(header::HOST)
        && let Some(host) = parts
            .uri
            .authority()
            .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, host);
    }
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
        uri.scheme = Some(up.scheme.clone());
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
            Ok(Ok(mut response)) => {
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
                if status == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(upgrade) = upgrade.take()
                {
                    let mut answer =
                        Response::new(Empty::new().map_err(|never| match never {}).boxed_unsync());
                    *answer.status_mut() = status;
                    *answer.headers_mut() = response.headers().clone();
                    strip_hop_by_hop(answer.headers_mut());
                    upgrade::ask(answer.headers_mut(), &upgrade);
                    upgrade::splice(upgrade, &mut response, guard, &tunnels);
                    return Ok(answer);
                }
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
