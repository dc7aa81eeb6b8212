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
//! [`drive`] feeds both the engine's transitions and those observations to the pools.
//!
//! Not here: routing decisions (`pool`), or the state machine itself (the core's).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use vitals_config::lb::{HealthCheck, LbConfig};
use vitals_core::Report;
use vitals_engine::{Mode, Record, RecordReceiver, TargetSpec, Transition};
use vitals_probes::{BoxFuture, Grpc, GrpcFailure, Http, Probe};

use crate::metrics::{BackendLabels, CheckLabels, Metrics};
use crate::pool::PoolState;
use crate::{lock, now};

/// What one readiness check saw.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub pool: usize,
    pub backend: usize,
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
    pool: usize,
    backend: usize,
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
                pool: self.pool,
                backend: self.backend,
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

/// One engine target per backend, in pool then backend order, with a shared HTTP client
/// (keep-alive to each backend, so a check costs no handshake), or one HTTP/2 connection per
/// backend for gRPC checks.
pub fn specs(
    config: &LbConfig,
    seen: &mpsc::UnboundedSender<Observation>,
) -> Result<Vec<TargetSpec>, vitals_probes::GrpcError> {
    let client = reqwest::Client::new();
    let mut specs = Vec::new();
    for (p, pool) in config.pools.iter().enumerate() {
        for (b, backend) in pool.backends.iter().enumerate() {
            let look = match &pool.health_check {
                HealthCheck::Http => {
                    let url = format!("http://{}{}", backend.address, pool.health_path);
                    Look::Http(Box::new(Http::with_client(client.clone(), url)))
                }
                HealthCheck::Grpc { service } => Look::Grpc(Box::new(Grpc::new(
                    backend.address.to_string(),
                    service.clone(),
                    None,
                )?)),
            };
            let probe = Readiness {
                look,
                pool: p,
                backend: b,
                seen: seen.clone(),
            };
            let id = target_id(&pool.id, &backend.name);
            specs.push(TargetSpec {
                name: id.clone(),
                id,
                thresholds: pool.thresholds.clone(),
                mode: Mode::Active {
                    probe: Arc::new(probe),
                    cadence: pool.schedule.clone(),
                    confirm: None,
                },
            });
        }
    }
    Ok(specs)
}

/// Feeds the engine's transitions and the readiness observations to the pools, until both
/// channels close. Results are only counted; transitions move backends in and out.
pub async fn drive(
    pools: Vec<Arc<Mutex<PoolState>>>,
    index: HashMap<String, (usize, usize)>,
    mut records: RecordReceiver,
    mut seen: mpsc::UnboundedReceiver<Observation>,
    metrics: Arc<Metrics>,
) {
    loop {
        tokio::select! {
            record = records.recv() => {
                let Some(record) = record else { break };
                if let Record::Transition(Transition { target, from, to, reason, .. }) = record
                    && let Some(&(p, b)) = index.get(&target)
                {
                    // The engine logs the change itself ("target changed state"); once is enough.
                    tracing::debug!(backend = %target, from = from.as_str(), to = to.as_str(), %reason, "backend state changed");
                    let now = now();
                    lock(&pools[p]).handle_state(now, b, to);
                }
            }
            observation = seen.recv() => {
                let Some(o) = observation else { break };
                let Some(pool) = pools.get(o.pool) else { continue };
                let now = now();
                let said_503 = o.not_ready;
                let (pool_id, name) = {
                    let mut state = lock(pool);
                    let was = state.backends.get(o.backend).is_some_and(|b| b.not_ready);
                    state.handle_check(now, o.backend, o.passed, said_503);
                    let name = state.backends.get(o.backend).map(|b| b.name.clone()).unwrap_or_default();
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
