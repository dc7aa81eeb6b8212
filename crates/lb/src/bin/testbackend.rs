//! `vitals-lb-testbackend --name a --listen 127.0.0.1:9001`: a small real HTTP server for the
//! load balancer's tests and benchmark. It answers every request with its own name (so a
//! test can count requests per backend), and its readiness can be flipped.
//!
//! - `GET /readyz` — 200 "ready", or 503 "draining" after `POST /ready/off`
//!   (`POST /ready/on` undoes it).
//! - `GET /slow/{ms}` — waits, then answers its name (a request in flight during a drain).
//! - `GET /status/{code}` — answers with that status (a backend returning 5xx).
//! - `POST /fail/on` — from now on answer 500 to everything but `/readyz` (a backend broken
//!   behind a readiness check that still passes; `POST /fail/off` undoes it).
//! - `POST /upload` — reads the whole body, then answers its name and the body's length
//!   (a backend that reads bodies; a client that breaks off mid-body fails the read).
//! - `GET /headers/{name}` — answers the request's header `name` (what the balancer sent on).
//! - `GET /count` — how many requests it answered with its name.
//! - anything else — 200 with its name.
//!
//! It prints `listening on ADDRESS` once bound. Not for production: a test fixture.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};

#[derive(Debug)]
struct Backend {
    name: String,
    ready: AtomicBool,
    failing: AtomicBool,
    served: AtomicU64,
}

type Shared = State<Arc<Backend>>;

fn usage(problem: &str) -> ! {
    eprintln!(
        "vitals-lb-testbackend: {problem}\nusage: vitals-lb-testbackend --name NAME --listen 127.0.0.1:PORT"
    );
    std::process::exit(2)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut name = None;
    let mut listen: Option<SocketAddr> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--name" => name = args.next(),
            "--listen" => {
                let value = args.next().unwrap_or_default();
                listen = Some(value.parse().unwrap_or_else(|_| {
                    usage(&format!("{value:?} is not an address like 127.0.0.1:9001"))
                }));
            }
            "-h" | "--help" => {
                println!(
                    "vitals-lb-testbackend: a test fixture for the load balancer (not for production)\n\
                     usage: vitals-lb-testbackend --name NAME --listen 127.0.0.1:PORT\n\
                     It answers every request with NAME; GET /readyz, POST /ready/off|on,\n\
                     GET /slow/MS, GET /status/CODE, POST /fail/on|off, GET /count.\n\
                     For a demo backend with real probes, use `vitals demo --listen ADDRESS`."
                );
                return;
            }
            other => usage(&format!("unknown argument {other:?}")),
        }
    }
    let name = name.unwrap_or_else(|| usage("--name is required"));
    let listen = listen.unwrap_or_else(|| usage("--listen is required"));
    let backend = Arc::new(Backend {
        name,
        ready: AtomicBool::new(true),
        failing: AtomicBool::new(false),
        served: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/readyz", get(readyz))
        .route(
            "/ready/on",
            post(|s: Shared| async move { s.ready.store(true, Ordering::SeqCst) }),
        )
        .route(
            "/ready/off",
            post(|s: Shared| async move { s.ready.store(false, Ordering::SeqCst) }),
        )
        .route(
            "/fail/on",
            post(|s: Shared| async move { s.failing.store(true, Ordering::SeqCst) }),
        )
        .route(
            "/fail/off",
            post(|s: Shared| async move { s.failing.store(false, Ordering::SeqCst) }),
        )
        .route("/slow/{ms}", get(slow))
        .route(
            "/upload",
            post(|s: Shared, body: axum::body::Bytes| async move {
                let (status, name) = answer(s).await;
                (status, format!("{name} {}", body.len()))
            }),
        )
        .route(
            "/headers/{name}",
            get(
                |Path(name): Path<String>, headers: axum::http::HeaderMap| async move {
                    headers
                        .get_all(name.as_str())
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect::<Vec<_>>()
                        .join(" | ")
                },
            ),
        )
        .route("/status/{code}", get(status))
        .route(
            "/count",
            get(|s: Shared| async move { s.served.load(Ordering::SeqCst).to_string() }),
        )
        .fallback(answer)
        .with_state(backend);
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => listener,
        Err(error) => usage(&format!("cannot listen on {listen}: {error}")),
    };
    println!("listening on {listen}");
    if let Err(error) = axum::serve(listener, app).await {
        eprintln!("vitals-lb-testbackend: {error}");
        std::process::exit(1);
    }
}

async fn readyz(State(backend): Shared) -> (StatusCode, &'static str) {
    if backend.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining")
    }
}

async fn answer(State(backend): Shared) -> (StatusCode, String) {
    backend.served.fetch_add(1, Ordering::SeqCst);
    let status = if backend.failing.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (status, backend.name.clone())
}

async fn slow(State(backend): Shared, Path(ms): Path<u64>) -> (StatusCode, String) {
    tokio::time::sleep(Duration::from_millis(ms)).await;
    answer(State(backend)).await
}

async fn status(State(backend): Shared, Path(code): Path<u16>) -> (StatusCode, String) {
    let code = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (code, answer(State(backend)).await.1)
}
