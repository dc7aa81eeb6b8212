//! A webhook receiver: a real HTTP server on loopback that records every request it gets
//! and answers what the test tells it to.
//!
//! Alert channels, heartbeat emitters and recovery actions send HTTP requests to someone
//! else's server; tests point them at a [`Webhook`] and read back what arrived, in order:
//! method, path, headers and body ([`Request`]). The test chooses the answer: 200 by default,
//! any status from now on ([`Webhook::answer`]), a scripted status for the next few requests
//! ([`Webhook::answer_next`], e.g. "the first push fails"), and a delay before answering
//! ([`Webhook::delay`], a slow receiver). A receiver that is *down* is not a status: start it
//! later on a [`ReservedPort`](crate::ReservedPort), which refuses connections until then,
//! with [`Webhook::on`].
//!
//! ```no_run
//! # #[tokio::main] async fn main() -> Result<(), vitals_testkit::Error> {
//! use vitals_testkit::{Webhook, reserve_port};
//!
//! let port = reserve_port()?; // refused for now
//! let url = format!("http://{}/hook", port.addr()); // goes into the config under test
//! // … the code under test fails to deliver …
//! let hook = Webhook::on(port.listen()?)?; // the receiver comes back on the same port
//! // … and delivers: hook.json()?[0]["kind"] …
//! # Ok(()) }
//! ```
//!
//! What it is not: an implementation of any receiver's protocol (it does not check
//! signatures or answer Slack's way), nor TLS. Every path and method is accepted; `url()`
//! names `/hook` by convention. It must be started inside a tokio runtime, and it stops when
//! dropped.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};

use crate::Error;
use crate::port::reserve_port;

/// One request a [`Webhook`] received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST`, usually.
    pub method: Method,
    /// The path and query, e.g. `/hook` or `/ping/abc?rid=1`.
    pub path: String,
    /// Every header as sent.
    pub headers: HeaderMap,
    /// The body as sent.
    pub body: Bytes,
}

impl Request {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, Error> {
        serde_json::from_slice(&self.body).map_err(|source| Error::NotJson {
            what: format!("the body of {} {}", self.method, self.path),
            body: self.text(),
            source,
        })
    }

    /// A header's value as text, if it was sent and is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }
}

/// A webhook receiver on 127.0.0.1: see the [module docs](self).
#[derive(Debug)]
pub struct Webhook {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    answers: Mutex<Answers>,
}

#[derive(Debug)]
struct Answers {
    /// Statuses for the next requests, in order, before `status`.
    next: VecDeque<StatusCode>,
    status: StatusCode,
    delay: Duration,
}

impl Webhook {
    /// Starts a receiver on a free loopback port, answering 200 at once.
    pub fn start() -> Result<Self, Error> {
        Self::on(reserve_port()?.listen()?)
    }

    /// Starts a receiver on `listener` (for a port the test held until now, typically from
    /// [`ReservedPort::listen`](crate::ReservedPort::listen)).
    pub fn on(listener: std::net::TcpListener) -> Result<Self, Error> {
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("could not read the receiver's address", e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("could not make the receiver's socket non-blocking", e))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::io("could not hand the receiver's socket to tokio", e))?;
        let shared = Arc::new(Shared {
            requests: Mutex::default(),
            answers: Mutex::new(Answers {
                next: VecDeque::new(),
                status: StatusCode::OK,
                delay: Duration::ZERO,
            }),
        });
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            // It only ends with an error when accepting fails for good; the test then sees
            // its requests missing, which says more than a panic in a detached task.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            shared,
            server,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT/hook`: the URL to configure (any other path works as well).
    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// Every request received so far, in order of arrival.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests arrived so far.
    pub fn len(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Whether nothing arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bodies received so far, each parsed as JSON, in order.
    pub fn json(&self) -> Result<Vec<serde_json::Value>, Error> {
        lock(&self.shared.requests)
            .iter()
            .map(Request::json)
            .collect()
    }

    /// Answers `status` to every request from now on (after any [`answer_next`](Self::answer_next)).
    pub fn answer(&self, status: StatusCode) {
        lock(&self.shared.answers).status = status;
    }

    /// Answers the next requests with `statuses`, one each in order, then as before.
    pub fn answer_next(&self, statuses: impl IntoIterator<Item = StatusCode>) {
        lock(&self.shared.answers).next.extend(statuses);
    }

    /// Waits `delay` before answering each request from now on (it is recorded on arrival).
    pub fn delay(&self, delay: Duration) {
        lock(&self.shared.answers).delay = delay;
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), ToString::to_string);
    lock(&shared.requests).push(Request {
        method,
        path,
        headers,
        body,
    });
    let (status, delay) = {
        let mut answers = lock(&shared.answers);
        let status = answers.next.pop_front().unwrap_or(answers.status);
        (status, answers.delay)
    };
    tokio::time::sleep(delay).await;
    (status, "ok")
}

/// Locks `mutex`, going on after a panic elsewhere: the data are plain records.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
