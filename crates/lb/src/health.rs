//! Active health checks of the backends, through the monitor's own engine: the same
//! scheduler (interval, timeout, faster while changing, slower while down) and the same
//! state machine (fall, rise, down_after) judge a backend here and a target in the monitor.
//!
//! Each backend is an engine target `pool/backend` whose probe is [`Readiness`]: an HTTP GET
//! of the pool's `health_path`, or with `health_check = "grpc"` a `grpc.health.v1` Check of
//! its `grpc_service`. The probe also reports what it saw on a channel, because a 503 (or a
//! gRPC `NOT_SERVING`) means more than "failed": it is the backend asking for no new requests
//! (a service draining before it stops), which takes effect at once instead of after `fall`
//! checks.
//! [`drive`] feeds both the engine's transitions and those observations to the pools,
//! through a [`Routing`] table from target id to pool state that a reload swaps whole: the
//! probes of unchanged backends keep running across a reload and find their backend again
//! by id.
//!
//! Not here: routing decisions (`pool`), or the state machine itself (the core's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;
use vitals_config::lb::{Backend, HealthCheck, Pool};
use vitals_core::Report;
use vitals_engine::{Mode, Record, RecordReceiver, TargetSpec, Transition};
use vitals_probes::{BoxFuture, Grpc, GrpcFailure, Http, Probe};

use crate::metrics::{BackendLabels, CheckLabels, Metrics};
use crate::pool::PoolState;
use crate::{lock, now};

/// What one readiness check saw.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The engine's target id ([`target_id`]).
    pub target: Arc<str>,
    pub passed: bool,
    /// The backend said it takes no new requests: HTTP 503, or gRPC `NOT_SERVING`.
    pub not_ready: bool,
}

/// How a backend is looked at.
enum Look {
    Http(Box<Http>),
    Grpc(Box<Grpc>),
}

/// The readiness probe of one backend: GET `http://address/health_path`, 2xx passes; or a
/// gRPC health Check, `SERVING` passes.
pub struct Readiness {
    look: Look,
    target: Arc<str>,
    seen: mpsc::UnboundedSender<Observation>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Readiness");
        match &self.look {
            Look::Http(http) => f.field("url", &http.url()),
            Look::Grpc(grpc) => f.field("grpc", &**grpc),
        };
        f.finish_non_exhaustive()
    }
}

impl Probe for Readiness {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let (report, passed, not_ready) = match &self.look {
                Look::Http(http) => {
                    let answer = http.observe().await;
                    let passed = answer.failure.is_none();
                    (answer.report, passed, answer.code == Some(503))
                }
                Look::Grpc(grpc) => {
                    let answer = grpc.observe().await;
                    let not_ready = answer.failure == Some(GrpcFailure::NotServing);
                    (answer.report, answer.failure.is_none(), not_ready)
                }
            };
            let _ = self.seen.send(Observation {
                target: Arc::clone(&self.target),
                passed,
                not_ready,
            });
            report
        })
    }

    fn is_external(&self) -> bool {
        true
    }
}

/// The engine's target id of a backend.
pub fn target_id(pool: &str, backend: &str) -> String {
    format!("{pool}/{backend}")
}

/// The engine target of one backend, checked as its pool says (over TLS when the pool
/// speaks TLS to its backends). `client` is shared by the pool's HTTP checks (keep-alive
/// to each backend, so a check costs no handshake); a gRPC check holds one HTTP/2
/// connection per backend.
pub fn spec(
    pool: &Pool,
    backend: &Backend,
    client: &reqwest::Client,
    seen: &mpsc::UnboundedSender<Observation>,
) -> Result<TargetSpec, vitals_probes::GrpcError> {
    let look = match &pool.health_check {
        HealthCheck::Http => {
            let scheme = if pool.tls.is_some() { "https" } else { "http" };
            let url = format!("{scheme}://{}{}", backend.address, pool.health_path);
            Look::Http(Box::new(Http::with_client(client.clone(), url)))
        }
        HealthCheck::Grpc { service } => Look::Grpc(Box::new(Grpc::new(
            backend.address.to_string(),
            service.clone(),
            pool.tls.as_ref().map(|tls| vitals_probes::GrpcTls {
                ca_file: tls.ca_file.clone(),
                server_name: tls.server_name.clone(),
                insecure_skip_verify: false,
            }),
        )?)),
    };
    let id = target_id(&pool.id, &backend.name);
    let probe = Readiness {
        look,
        target: Arc::from(id.as_str()),
        seen: seen.clone(),
    };
    Ok(TargetSpec {
        name: id.clone(),
        id,
        thresholds: pool.thresholds.clone(),
        mode: Mode::Active {
            probe: Arc::new(probe),
            cadence: pool.schedule.clone(),
            confirm: None,
        },
    })
}

/// Whether two pools check their backends the same way: a backend at the same address
/// keeps its probe (and its engine state) across a reload then.
pub fn same_checks(a: &Pool, b: &Pool) -> bool {
    a.health_check == b.health_check
        && a.health_path == b.health_path
        && a.schedule == b.schedule
        && a.thresholds == b.thresholds
        && a.tls == b.tls
}

/// Which pool state and backend each engine target feeds. A reload replaces it whole.
#[derive(Debug, Default)]
pub struct Routing {
    pub targets: HashMap<String, (Arc<Mutex<PoolState>>, usize)>,
}

impl Routing {
    /// The targets of `pools`.
    pub fn of(pools: &[Arc<Mutex<PoolState>>]) -> Routing {
        let mut targets = HashMap::new();
        for pool in pools {
            let state = lock(pool);
            for (b, backend) in state.backends.iter().enumerate() {
                targets.insert(target_id(&state.id, &backend.name), (Arc::clone(pool), b));
            }
        }
        Routing { targets }
    }
}

/// The routing table shared by the driver (reads) and reloads (swaps).
pub type SharedRouting = Arc<RwLock<Routing>>;

/// Reads the routing table; a panic elsewhere leaves plain data behind, which stays usable.
pub fn read(routing: &SharedRouting) -> std::sync::RwLockReadGuard<'_, Routing> {
    routing
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes the routing table (a reload).
pub fn write(routing: &SharedRouting) -> std::sync::RwLockWriteGuard<'_, Routing> {
    routing
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Feeds the engine's transitions and the readiness observations to the pools, until both
/// channels close. Results are only counted; transitions move backends in and out.
pub async fn drive(
    routing: SharedRouting,
    mut records: RecordReceiver,
    mut seen: mpsc::UnboundedReceiver<Observation>,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { break };
                if let Record::Transition(Transition { target, from, to, reason, .. }) = record {
                    let routing = read(&routing);
                    let Some((pool, b)) = routing.targets.get(&target) else { continue };
                    // The engine logs the change itself ("target changed state"); once is enough.
                    tracing::debug!(backend = %target, from = from.as_str(), to = to.as_str(), %reason, "backend state changed");
                    let now = now();
                    lock(pool).handle_state(now, *b, to);
                }
            }
            observation = seen.recv() => {
                let Some(o) = observation else { break };
                let routing = read(&routing);
                let Some((pool, backend)) = routing.targets.get(&*o.target) else { continue };
                let backend = *backend;
                let now = now();
                let said_503 = o.not_ready;
                let (pool_id, name) = {
                    let mut state = lock(pool);
                    let was = state.backends.get(backend).is_some_and(|b| b.not_ready);
                    state.handle_check(now, backend, o.passed, said_503);
                    let name = state.backends.get(backend).map(|b| b.name.clone()).unwrap_or_default();
                    if was != said_503 {
                        tracing::info!(pool = %state.id, backend = %name, not_ready = said_503, "readiness changed");
                    }
                    (state.id.clone(), name)
                };
                let result = match (o.passed, said_503) {
                    (true, _) => "pass",
                    (false, true) => "not_ready",
                    (false, false) => "fail",
                };
                metrics.checks.get_or_create(&CheckLabels { pool: pool_id, backend: name, result }).inc();
            }
        }
    }
}

/// Sets the `backend_up` gauges from the pools' state (at scrape time).
pub fn refresh_up(pools: &[Arc<Mutex<PoolState>>], metrics: &Metrics) {
    let now = now();
    // Backends a reload removed leave the gauge.
    metrics.up.clear();
    for pool in pools {
        let state = lock(pool);
        for b in &state.backends {
            metrics
                .up
                .get_or_create(&BackendLabels {
                    pool: state.id.clone(),
                    backend: b.name.clone(),
                })
                .set(i64::from(b.in_rotation(now)));
        }
    }
}
