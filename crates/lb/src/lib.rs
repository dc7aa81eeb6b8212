//! The vitals load balancer (`vitals lb --config lb.toml`): sends HTTP/1.1 and HTTP/2
//! requests (over TLS, or not; WebSockets and other upgrades too) only to the healthy
//! backends of a pool, so that a user never hits a dead instance.
//!
//! - Health: each backend is checked by the monitor's own engine (same scheduler, same core
//!   state machine as `vitals serve`), on the pool's readiness path ([`health`]).
//! - Routing: [`pool::PoolState`] decides — rotation by state, drain, 503 readiness, passive
//!   outlier ejection, slow start, panic threshold — and [`balance`] picks (smooth weighted
//!   round robin, or least requests by two random choices). Plain synchronous code with time
//!   as an argument, tested without a clock.
//! - Data path: listeners with TLS by SNI and hyper's HTTP/1.1 + HTTP/2 server ([`listen`],
//!   [`tls`]); a pooled client to backends, retries of idempotent requests on another
//!   backend within a [`budget::RetryBudget`] ([`proxy`]); upgrades spliced ([`upgrade`]).
//! - Reload: a configuration applied to the running balancer without dropping a request,
//!   on SIGHUP or through the admin API ([`reload`]).
//! - Admin API and `/metrics` on a separate listener ([`admin`]).
//!
//! Configuration: `vitals_config::lb` (the monitor's config language). The guide is
//! docs/LB.md.
//!
//! What it is not: a router by host or path (one listener, one pool), or a TLS client-
//! certificate checker. HAProxy agent-check answers are another part of vitals.

pub mod admin;
pub mod balance;
pub mod budget;
pub mod headers;
pub mod health;
pub mod listen;
pub mod metrics;
pub mod pool;
pub mod proxy;
pub mod reload;
pub mod tls;
pub mod upgrade;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use vitals_config::lb::LbConfig;
use vitals_engine::{self as engine, Engine};

use crate::metrics::Metrics;
use crate::reload::Balancer;

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
    /// The configuration could not be put to work: certificates that do not load, ports
    /// taken, probes that cannot be built. Every error, one per line.
    #[error("{}", .0.errors.join("\n"))]
    Start(#[source] reload::Refused),
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

/// Loads what the configuration names besides itself — each listener's certificates, each
/// pool's CA file — and says every problem, naming the field and the file (`vitals lb
/// --check`, `vitals check-config`). Empty: it would start (ports aside).
pub fn check(config: &LbConfig) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, listener) in config.listeners.iter().enumerate() {
        if !listener.tls_certificates.is_empty()
            && let Err(error) = tls::ServerTls::new(
                &format!("listener[{i}].tls_certificates"),
                &listener.tls_certificates,
            )
        {
            errors.push(error.to_string());
        }
    }
    for (i, pool) in config.pools.iter().enumerate() {
        if let Err(error) = tls::connector(pool, &format!("pool[{i}] ({:?})", pool.id)) {
            errors.push(error.to_string());
        }
    }
    errors
}

/// How long requests in flight (and upgraded connections) may take to finish once the
/// balancer is asked to stop.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Binds every listener, starts the health checks and serves until `shutdown` completes (or
/// an error). `ready` is called once everything listens (with the real ports, when the
/// config asked for port 0). On shutdown it stops accepting, lets the requests in flight
/// finish (for at most 30 s), then returns. Without a file there is nothing to reload:
/// see [`run_file`].
pub async fn run(
    config: LbConfig,
    ready: impl FnOnce(&Bound),
    shutdown: impl Future<Output = ()>,
) -> Result<(), LbError> {
    run_with(None, config, ready, shutdown).await
}

/// [`run`] from the configuration read from `path`, which SIGHUP and
/// `POST /api/v1/reload` read again and apply ([`reload`]).
pub async fn run_file(
    path: PathBuf,
    config: LbConfig,
    ready: impl FnOnce(&Bound),
    shutdown: impl Future<Output = ()>,
) -> Result<(), LbError> {
    run_with(Some(path), config, ready, shutdown).await
}

async fn run_with(
    path: Option<PathBuf>,
    config: LbConfig,
    ready: impl FnOnce(&Bound),
    shutdown: impl Future<Output = ()>,
) -> Result<(), LbError> {
    let metrics = Arc::new(Metrics::default());
    // Bind first: a port in use is an error before anything starts.
    let admin_listener = bind(config.admin.listen, "the admin API".into()).await?;
    let admin_config = config.admin.clone();

    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let (records_tx, records_rx) = engine::records(RECORDS_CAPACITY);
    let engine = Engine::start(
        Vec::new(),
        records_tx,
        engine::Options {
            max_concurrency: MAX_CONCURRENT_CHECKS,
            ..engine::Options::default()
        },
    );
    let routing = health::SharedRouting::default();
    tokio::spawn(health::drive(
        Arc::clone(&routing),
        records_rx,
        seen_rx,
        Arc::clone(&metrics),
    ));
    let stopping = proxy::Stopping {
        stop: CancellationToken::new(),
        connections: TaskTracker::new(),
    };
    let reloadable = path.is_some();
    let balancer = Arc::new(Balancer::new(
        path,
        engine,
        routing,
        seen_tx,
        Arc::clone(&metrics),
        stopping.clone(),
    ));
    balancer.apply(config).await.map_err(LbError::Start)?;

    // Two-level detection of stalled backends (issue 15): overdue and silent → suspect,
    // confirmed by a connect. It reads the pools a reload put in place at every tick.
    let stall_metrics = Arc::clone(&metrics);
    tokio::spawn(pool::stall::drive(
        Arc::downgrade(&balancer.pools),
        move |pool, backend| {
            tracing::warn!(pool = %pool, backend = %backend, "backend ejected: overdue, and its port refuses connections");
            stall_metrics
                .ejections
                .get_or_create(&metrics::BackendLabels {
                    pool: pool.to_string(),
                    backend: backend.to_string(),
                })
                .inc();
        },
    ));
    let bound = Bound {
        listeners: balancer.bound().await,
        admin: admin_listener.local_addr().unwrap_or(admin_config.listen),
    };
    if reloadable {
        tokio::spawn(on_hangup(Arc::clone(&balancer), stopping.stop.clone()));
    }
    let router = admin::router(admin::Admin {
        pools: Arc::clone(&balancer.pools),
        metrics,
        token: admin_config.token.clone(),
        hosts: admin_config.hosts.clone(),
        loopback: bound.admin.ip().is_loopback(),
        balancer: Arc::clone(&balancer),
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

/// Each SIGHUP reads the file again and applies it; what changed, or every error, is logged.
async fn on_hangup(balancer: Arc<Balancer>, stop: CancellationToken) {
    let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(signal) => signal,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reload through the admin API instead");
            return;
        }
    };
    loop {
        tokio::select! {
            received = hangups.recv() => if received.is_none() { return },
            () = stop.cancelled() => return,
        }
        match balancer.reload_file().await {
            Ok(applied) => tracing::info!(%applied, "SIGHUP: configuration reloaded"),
            Err(refused) => {
                tracing::error!(message = %refused.message, "SIGHUP: configuration refused");
                for error in &refused.errors {
                    tracing::error!("{error}");
                }
            }
        }
    }
}
