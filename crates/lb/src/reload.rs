//! The running balancer as one value a configuration is applied to: at start (from
//! nothing) and at every reload (SIGHUP, `POST /api/v1/reload`), by the same
//! [`Balancer::apply`], in the shape of the monitor's reload (`monitor/src/serve/reload.rs`).
//!
//! A new configuration is first built aside — pools' data paths, listeners' certificates,
//! new listeners' sockets, new backends' probes — and every error is collected; with any
//! error nothing changes and the answer lists them all. Then it is committed:
//!
//! - a pool whose configuration is equal is kept as it runs (its state, its connections to
//!   backends, its retry budget); a changed pool gets a new data path whose backends carry
//!   their state over from the old one by name and address ([`PoolState::carry`]), under
//!   the routing table's write lock, so that no health change falls between the two;
//! - backends are handed to the monitor's engine as `Fleet::apply` expects: unchanged
//!   (same pool checks, same address) keep their probe and state machine, others get a new
//!   probe and keep their state (`Desired::Spec` of a watched id), removed ones go;
//! - listeners are matched by address: a kept one gets its new route (pool, certificates,
//!   limits) for its next request, a new one starts accepting, a removed one stops
//!   accepting and its connections close once their request in flight is answered.
//!
//! Requests in flight are never cut: they hold the data path they started on until they
//! end. `[admin]` cannot change without a restart; the answer names what would have.
//!
//! Not here: reading the file (`vitals-config`), or the rules of a change (the engine's).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vitals_config::lb::LbConfig;
use vitals_engine::{Desired, Engine, Topology};

use crate::health::{self, Observation, Routing, SharedRouting};
use crate::listen::{Listening, Route};
use crate::metrics::Metrics;
use crate::pool::PoolState;
use crate::proxy::{Stopping, Upstream};
use crate::tls::ServerTls;
use crate::{LbError, lock};

/// Why a configuration was not applied: a message and every error found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}:\n{}", errors.join("\n"))]
pub struct Refused {
    pub message: String,
    pub errors: Vec<String>,
}

/// The balancer that configurations are applied to.
pub struct Balancer {
    /// The file SIGHUP and the API read again; none: started from a configuration in memory.
    path: Option<PathBuf>,
    running: tokio::sync::Mutex<Running>,
    engine: Engine,
    routing: SharedRouting,
    seen: mpsc::UnboundedSender<Observation>,
    /// Shared by every HTTP readiness check.
    checks: reqwest::Client,
    metrics: Arc<Metrics>,
    stopping: Stopping,
    /// Every pool's state in configuration order: what the admin API shows.
    pub pools: Arc<ArcSwap<Vec<Arc<Mutex<PoolState>>>>>,
    seed: u64,
}

impl std::fmt::Debug for Balancer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Balancer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What runs now.
#[derive(Debug, Default)]
struct Running {
    /// None before the first configuration.
    config: Option<LbConfig>,
    /// By pool id.
    upstreams: HashMap<String, Arc<Upstream>>,
    /// By the address configured (`listen`).
    listeners: HashMap<SocketAddr, Running1>,
}

/// One running listener.
#[derive(Debug)]
struct Running1 {
    listening: Listening,
    /// The address it is bound to (the port chosen, when the configuration said 0).
    bound: SocketAddr,
    /// Stops the certificate watcher of the current certificates.
    watch: Option<CancellationToken>,
}

/// A listener built aside, before the commit.
struct Staged {
    index: usize,
    socket: Option<TcpListener>,
    tls: Option<Arc<ServerTls>>,
    tls_new: bool,
}

/// Added, changed and removed, by name.
#[derive(Debug, Default)]
struct Changes {
    added: Vec<String>,
    changed: Vec<String>,
    removed: Vec<String>,
    unchanged: usize,
}

impl Changes {
    fn json(&self) -> Value {
        json!({
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
        })
    }
}

impl Balancer {
    pub(crate) fn new(
        path: Option<PathBuf>,
        engine: Engine,
        routing: SharedRouting,
        seen: mpsc::UnboundedSender<Observation>,
        metrics: Arc<Metrics>,
        stopping: Stopping,
    ) -> Balancer {
        Balancer {
            path,
            running: tokio::sync::Mutex::new(Running::default()),
            engine,
            routing,
            seen,
            checks: reqwest::Client::new(),
            metrics,
            stopping,
            pools: Arc::new(ArcSwap::from_pointee(Vec::new())),
            seed: u64::from(std::process::id()),
        }
    }

    /// Where each listener is bound, in configuration order, with its pool.
    pub(crate) async fn bound(&self) -> Vec<(SocketAddr, String)> {
        let running = self.running.lock().await;
        let Some(config) = &running.config else {
            return Vec::new();
        };
        config
            .listeners
            .iter()
            .filter_map(|l| Some((running.listeners.get(&l.listen)?.bound, l.pool.clone())))
            .collect()
    }

    /// Read the file again and apply it (SIGHUP, the admin API).
    pub async fn reload_file(&self) -> Result<Value, Refused> {
        let Some(path) = self.path.clone() else {
            return Err(Refused {
                message: "this balancer was started without a configuration file: there is nothing to reload".into(),
                errors: Vec::new(),
            });
        };
        let loaded = tokio::task::spawn_blocking(move || vitals_config::lb::load(&path)).await;
        let next = match loaded {
            Ok(Ok(next)) => next,
            Ok(Err(errors)) => {
                return Err(Refused {
                    message: format!(
                        "{} error(s) in the configuration; nothing was changed and the running configuration stays",
                        errors.0.len()
                    ),
                    errors: errors.0.iter().map(ToString::to_string).collect(),
                });
            }
            Err(error) => {
                return Err(Refused {
                    message: format!("reading the configuration panicked: {error}"),
                    errors: Vec::new(),
                });
            }
        };
        self.apply(next).await
    }

    /// Run `next` from now on, or change nothing and say every reason why not.
    pub async fn apply(&self, mut next: LbConfig) -> Result<Value, Refused> {
        let mut running = self.running.lock().await;
        let mut errors: Vec<String> = Vec::new();
        let mut needs_restart = Vec::new();
        if let Some(config) = &running.config {
            let (a, b) = (&config.admin, &next.admin);
            let vitals_config::lb::Admin {
                listen: _,
                token: _,
                hosts: _,
            } = b;
            for (differs, name) in [
                (a.listen != b.listen, "admin.listen"),
                (a.token != b.token, "admin.token"),
                (a.hosts != b.hosts, "admin.hosts"),
            ] {
                if differs {
                    needs_restart.push(name);
                }
            }
            next.admin = config.admin.clone();
        }

        // Pools: kept when equal, else a new data path.
        let mut pools = Changes::default();
        let mut upstreams: HashMap<String, Arc<Upstream>> = HashMap::new();
        let mut fresh: Vec<String> = Vec::new();
        for (i, pool) in next.pools.iter().enumerate() {
            let field = format!("pool[{i}] ({:?})", pool.id);
            match running.upstreams.get(&pool.id) {
                Some(up) if up.config == *pool => {
                    pools.unchanged += 1;
                    upstreams.insert(pool.id.clone(), Arc::clone(up));
                    continue;
                }
                Some(_) => pools.changed.push(pool.id.clone()),
                None => pools.added.push(pool.id.clone()),
            }
            let state = Arc::new(Mutex::new(PoolState::new(
                pool,
                self.seed.wrapping_add(i as u64),
            )));
            match Upstream::new(pool, &field, state, Arc::clone(&self.metrics)) {
                Ok(up) => {
                    fresh.push(pool.id.clone());
                    upstreams.insert(pool.id.clone(), Arc::new(up));
                }
                Err(error) => errors.push(error.to_string()),
            }
        }
        pools.removed = running
            .upstreams
            .keys()
            .filter(|id| !next.pools.iter().any(|p| &p.id == *id))
            .cloned()
            .collect();

        // Listeners: certificates loaded and new addresses bound, aside.
        let mut staged = Vec::new();
        for (i, listener) in next.listeners.iter().enumerate() {
            let old = running.listeners.get(&listener.listen);
            let kept_tls = old.and_then(|old| {
                let route = old.listening.route.load();
                route
                    .tls
                    .as_ref()
                    .filter(|tls| tls.same_files(&listener.tls_certificates))
                    .cloned()
            });
            let (tls, tls_new) = match (kept_tls, listener.tls_certificates.is_empty()) {
                (_, true) => (None, false),
                (Some(tls), false) => (Some(tls), false),
                (None, false) => {
                    match ServerTls::new(
                        &format!("listener[{i}].tls_certificates"),
                        &listener.tls_certificates,
                    ) {
                        Ok(tls) => (Some(Arc::new(tls)), true),
                        Err(error) => {
                            errors.push(error.to_string());
                            (None, false)
                        }
                    }
                }
            };
            let socket = if old.is_some() {
                None
            } else {
                match TcpListener::bind(listener.listen).await {
                    Ok(socket) => Some(socket),
                    Err(source) => {
                        errors.push(
                            LbError::Bind {
                                address: listener.listen,
                                role: format!("listener[{i}] (pool {:?})", listener.pool),
                                source,
                            }
                            .to_string(),
                        );
                        None
                    }
                }
            };
            staged.push(Staged {
                index: i,
                socket,
                tls,
                tls_new,
            });
        }

        // Backends for the engine: unchanged ones keep their probe.
        let mut desired = Vec::new();
        let mut backends = Changes::default();
        let mut wanted: Vec<String> = Vec::new();
        for (i, pool) in next.pools.iter().enumerate() {
            let old = running.upstreams.get(&pool.id).map(|up| &up.config);
            // A TLS pool's checks go over TLS, verified as its data path verifies.
            let checks = match &pool.tls {
                None => self.checks.clone(),
                Some(_) => {
                    match crate::tls::check_client(pool, &format!("pool[{i}] ({:?})", pool.id)) {
                        Ok(client) => client,
                        Err(error) => {
                            errors.push(error.to_string());
                            continue;
                        }
                    }
                }
            };
            for backend in &pool.backends {
                let id = health::target_id(&pool.id, &backend.name);
                wanted.push(id.clone());
                let before = old.and_then(|old| {
                    old.backends
                        .iter()
                        .find(|b| b.name == backend.name)
                        .map(|b| (old, b))
                });
                match before {
                    Some((old, b))
                        if b.address == backend.address && health::same_checks(old, pool) =>
                    {
                        backends.unchanged += 1;
                        desired.push(Desired::Unchanged(id));
                        continue;
                    }
                    Some(_) => backends.changed.push(id.clone()),
                    None => backends.added.push(id.clone()),
                }
                match health::spec(pool, backend, &checks, &self.seen) {
                    Ok(spec) => desired.push(Desired::Spec(spec)),
                    Err(error) => errors.push(format!(
                        "pool {:?} backend {:?}: cannot check it over gRPC: {error}",
                        pool.id, backend.name
                    )),
                }
            }
        }
        if let Some(config) = &running.config {
            for pool in &config.pools {
                for backend in &pool.backends {
                    let id = health::target_id(&pool.id, &backend.name);
                    if !wanted.contains(&id) {
                        backends.removed.push(id);
                    }
                }
            }
        }

        if !errors.is_empty() {
            return Err(Refused {
                message: format!(
                    "{} error(s) in the configuration; nothing was changed and the running configuration stays",
                    errors.len()
                ),
                errors,
            });
        }

        // Commit. Pool states first, carried over under the routing lock so that the health
        // driver applies no change to an old state in between; then the engine, whose new
        // probes find their backends in the new table.
        let states: Vec<Arc<Mutex<PoolState>>> = next
            .pools
            .iter()
            .filter_map(|p| upstreams.get(&p.id).map(|up| Arc::clone(&up.state)))
            .collect();
        {
            let mut routing = health::write(&self.routing);
            for id in &fresh {
                if let (Some(new), Some(old)) = (upstreams.get(id), running.upstreams.get(id)) {
                    lock(&new.state).carry(&lock(&old.state));
                }
            }
            *routing = Routing::of(&states);
        }
        self.engine
            .apply(desired, &Topology::default(), &HashMap::new());

        let mut listeners = Changes::default();
        let mut kept: HashMap<SocketAddr, Running1> = HashMap::new();
        for stage in staged {
            let config = &next.listeners[stage.index];
            let Some(upstream) = upstreams.get(&config.pool) else {
                continue;
            };
            let route = Route::new(config, Arc::clone(upstream), stage.tls.clone());
            let name = config.listen.to_string();
            let mut entry = match running.listeners.remove(&config.listen) {
                Some(old) => {
                    let before = old.listening.route.load();
                    let same = before.config == *config && !stage.tls_new;
                    if same {
                        listeners.unchanged += 1;
                    } else {
                        listeners.changed.push(name);
                    }
                    // A listener of a changed pool is unchanged itself, but sends to the
                    // pool's new data path.
                    if !same || !Arc::ptr_eq(&before.upstream, upstream) {
                        old.listening.route.store(Arc::new(route));
                    }
                    old
                }
                None => {
                    let Some(socket) = stage.socket else { continue };
                    let bound = socket.local_addr().unwrap_or(config.listen);
                    let listening = Listening {
                        route: Arc::new(ArcSwap::from_pointee(route)),
                        stop: self.stopping.stop.child_token(),
                    };
                    tokio::spawn(crate::listen::serve(
                        socket,
                        Arc::clone(&listening.route),
                        listening.stop.clone(),
                        self.stopping.clone(),
                    ));
                    listeners.added.push(name);
                    Running1 {
                        listening,
                        bound,
                        watch: None,
                    }
                }
            };
            if stage.tls_new || (entry.watch.is_none() && stage.tls.is_some()) {
                if let Some(watch) = entry.watch.take() {
                    watch.cancel();
                }
                if let Some(tls) = stage.tls {
                    let stop = entry.listening.stop.child_token();
                    tokio::spawn(tls.watch(stop.clone()));
                    entry.watch = Some(stop);
                }
            } else if stage.tls.is_none()
                && let Some(watch) = entry.watch.take()
            {
                watch.cancel();
            }
            kept.insert(config.listen, entry);
        }
        for (address, old) in running.listeners.drain() {
            // Stops accepting; its connections answer their request in flight and close.
            old.listening.stop.cancel();
            listeners.removed.push(address.to_string());
        }
        running.listeners = kept;
        running.upstreams = upstreams;
        self.pools.store(Arc::new(states));
        running.config = Some(next);
        for field in &needs_restart {
            tracing::warn!(%field, "changed in the file, but applied only at the next restart");
        }
        tracing::info!(
            listeners_added = listeners.added.len(),
            listeners_removed = listeners.removed.len(),
            pools_changed = pools.changed.len() + pools.added.len() + pools.removed.len(),
            backends_added = backends.added.len(),
            backends_changed = backends.changed.len(),
            backends_removed = backends.removed.len(),
            "configuration applied"
        );
        Ok(json!({
            "listeners": listeners.json(),
            "pools": pools.json(),
            "backends": backends.json(),
            "needs_restart": needs_restart,
        }))
    }
}
