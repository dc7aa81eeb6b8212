//! The vitals load balancer (`vitals lb --config lb.toml`): sends HTTP/1.1 requests only to
//! the healthy backends of a pool, so that a user never hits a dead instance.
//!
//! - Health: each backend is checked by the monitor's own engine (same scheduler, same core
//!   state machine as `vitals serve`), on the pool's readiness path ([`health`]).
//! - Routing: [`pool::PoolState`] decides — rotation by state, drain, 503 readiness, passive
//!   outlier ejection, slow start, panic threshold — and [`balance`] picks (smooth weighted
//!   round robin, or least requests by two random choices). Plain synchronous code with time
//!   as an argument, tested without a clock.
//! - Data path: hyper server and pooled client, retries of idempotent requests on another
//!   backend within a [`budget::RetryBudget`] ([`proxy`]).
//! - Admin API and `/metrics` on a separate listener ([`admin`]).
//!
//! Configuration: `vitals_config::lb` (the monitor's config language). The guide is
//! docs/LB.md.
//!
//! What it is not: TLS termination, HTTP/2, WebSocket upgrades, or a router by host or path
//! (one listener, one pool). HAProxy agent-check answers are another part of vitals.

pub mod admin;
pub mod balance;
pub mod budget;
pub mod headers;
pub mod health;
pub mod metrics;
pub mod pool;
pub mod proxy;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vitals_config::lb::LbConfig;
use vitals_engine::{self as engine, Engine};

use crate::metrics::Metrics;
use crate::pool::PoolState;
use crate::proxy::Upstream;

/// Locks a pool's (or the budget's) state. A panic while holding the lock leaves plain data
/// behind; keep serving it rather than take the balancer down.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Now, from tokio's clock (which tests can pause), as the `std` instant the pool takes.
pub(crate) fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Records waiting for the health driver before results are shed (transitions never are).
const RECORDS_CAPACITY: usize = 4096;
/// Readiness checks in flight at once.
const MAX_CONCURRENT_CHECKS: usize = 256;

/// Why the balancer could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LbError {
    #[error("cannot listen on {address} for {role}: {source}; is another process using it?")]
    Bind {
        address: SocketAddr,
        role: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the admin API stopped: {0}")]
    Admin(#[source] std::io::Error),
    #[error("cannot check backends over gRPC: {0}")]
    Grpc(#[source] vitals_probes::GrpcError),
}

/// Where the balancer listens, once bound.
#[derive(Debug, Clone)]
pub struct Bound {
    /// Each listener's address and pool, in config order.
    pub listeners: Vec<(SocketAddr, String)>,
    pub admin: SocketAddr,
}

async fn bind(address: SocketAddr, role: String) -> Result<TcpListener, LbError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| LbError::Bind {
            address,
            role,
            source,
        })
}

/// How long requests in flight may take to finish once the balancer is asked to stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds every listener, starts the health checks and serves until `shutdown` completes (or
/// an error). `ready` is called once everything listens (with the real ports, when the
/// config asked for port 0). On shutdown it stops accepting, lets the requests in flight
/// finish (for at most 30 s), then returns.
pub async fn run(
    config: LbConfig,
    ready: impl FnOnce(&Bound),
    shutdown: impl Future<Output = ()>,
) -> Result<(), LbError> {
    let metrics = Arc::new(Metrics::default());
    let seed = std::process::id() as u64;
    let pools: Vec<Arc<Mutex<PoolState>>> = config
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| {
            Arc::new(Mutex::new(PoolState::new(
                pool,
                seed.wrapping_add(i as u64),
            )))
        })
        .collect();

    // Bind first: a port in use is an error before anything starts.
    let admin_listener = bind(config.admin.listen, "the admin API".into()).await?;
    let mut listeners = Vec::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        let socket = bind(
            listener.listen,
            format!("listener[{i}] (pool {:?})", listener.pool),
        )
        .await?;
        listeners.push((socket, listener));
    }
    let bound = Bound {
        listeners: listeners
            .iter()
            .map(|(socket, l)| (socket.local_addr().unwrap_or(l.listen), l.pool.clone()))
            .collect(),
        admin: admin_listener.local_addr().unwrap_or(config.admin.listen),
    };

    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let specs = health::specs(&config, &seen_tx).map_err(LbError::Grpc)?;
    let mut index = HashMap::new();
    for (p, pool) in config.pools.iter().enumerate() {
        for (b, backend) in pool.backends.iter().enumerate() {
            index.insert(health::target_id(&pool.id, &backend.name), (p, b));
        }
    }
    let (records_tx, records_rx) = engine::records(RECORDS_CAPACITY);
    let _engine = Engine::start(
        specs,
        records_tx,
        engine::Options {
            max_concurrency: MAX_CONCURRENT_CHECKS,
            ..engine::Options::default()
        },
    );
    tokio::spawn(health::drive(
        pools.clone(),
        index,
        records_rx,
        seen_rx,
        Arc::clone(&metrics),
    ));

    // Two-level detection of stalled backends (issue 15): overdue and silent → suspect,
    // confirmed by a connect.
    let stall_metrics = Arc::clone(&metrics);
    tokio::spawn(pool::stall::drive(pools.clone(), move |pool, backend| {
        tracing::warn!(pool = %pool, backend = %backend, "backend ejected: overdue, and its port refuses connections");
        stall_metrics
            .ejections
            .get_or_create(&metrics::BackendLabels {
                pool: pool.to_string(),
                backend: backend.to_string(),
            })
            .inc();
    }));

    let by_id: HashMap<&str, usize> = config
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.id.as_str(), i))
        .collect();
    let upstreams: Vec<Arc<Upstream>> = config
        .pools
        .iter()
        .zip(&pools)
        .map(|(pool, state)| Arc::new(Upstream::new(pool, Arc::clone(state), Arc::clone(&metrics))))
        .collect();
    let stopping = proxy::Stopping {
        stop: CancellationToken::new(),
        connections: TaskTracker::new(),
    };
    for (socket, listener) in listeners {
        // The config checked every reference; a listener without its pool cannot exist.
        let Some(&p) = by_id.get(listener.pool.as_str()) else {
            continue;
        };
        tokio::spawn(proxy::serve(
            socket,
            Arc::clone(&upstreams[p]),
            listener.max_header_bytes,
            Arc::from(listener.trusted_proxies.clone()),
            stopping.clone(),
        ));
    }
    let router = admin::router(admin::Admin {
        pools,
        metrics,
        token: config.admin.token.clone(),
        hosts: config.admin.hosts.clone(),
        loopback: bound.admin.ip().is_loopback(),
    });
    ready(&bound);
    let admin = axum::serve(admin_listener, router)
        .with_graceful_shutdown(stopping.stop.clone().cancelled_owned());
    tokio::select! {
        result = admin => result.map_err(LbError::Admin),
        () = shutdown => {
            stopping.stop.cancel();
            stopping.connections.close();
            tracing::info!(
                connections = stopping.connections.len(),
                "stopping: no new connections; waiting for the requests in flight"
            );
            if tokio::time::timeout(DRAIN_TIMEOUT, stopping.connections.wait()).await.is_err() {
                tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
            }
            Ok(())
        }
    }
}
