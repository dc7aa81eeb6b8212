//! `Health`: the handle a service keeps. It owns the registered checks, the published
//! snapshot and the lifecycle, and is cheap to clone (an `Arc`).
//!
//! [`HealthBuilder`] registers checks and startup hooks and validates them all at once;
//! [`HealthBuilder::start`] spawns one scheduler task per check and the startup hooks.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::check::Check;
use crate::checks_thread::Place;
use crate::error::{BuildError, Problem};
use crate::lifecycle::{Hook, Phase, run_hooks};
use crate::metrics::Metrics;
use crate::scheduler::Task;
use crate::snapshot::{Board, Snapshot};
use crate::view::{Scope, Verdict, verdict};

/// Settings that are not about any one check.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) service_id: Option<String>,
    pub(crate) version: Option<String>,
    pub(crate) details_token: Option<String>,
    pub(crate) drain_delay: Duration,
    pub(crate) fresh_min_interval: Duration,
    pub(crate) serve: crate::serve::ServerLimits,
    /// Run the checks on a thread of their own; `None`: when the runtime is multi-threaded.
    pub(crate) checks_thread: Option<bool>,
    #[cfg(feature = "grpc")]
    pub(crate) grpc: crate::grpc::Options,
}

/// Registers checks and startup hooks, then starts them. See the crate documentation for a
/// whole example.
#[derive(Debug)]
pub struct HealthBuilder {
    checks: Vec<Check>,
    hooks: Vec<Hook>,
    options: Options,
}

impl HealthBuilder {
    fn new() -> Self {
        HealthBuilder {
            checks: Vec::new(),
            hooks: Vec::new(),
            options: Options {
                service_id: None,
                version: None,
                details_token: None,
                drain_delay: Duration::from_secs(5),
                fresh_min_interval: Duration::from_secs(1),
                serve: crate::serve::ServerLimits::default(),
                checks_thread: None,
                #[cfg(feature = "grpc")]
                grpc: crate::grpc::Options::default(),
            },
        }
    }

    pub fn check(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// An initialization step that must succeed before the startup probe passes (the seed:
    /// connect to the database, load the configuration). Hooks run once each, in the order
    /// registered; a failing hook is retried with backoff (0.5 s doubling to 30 s) and its
    /// latest error is shown by `/startupz`.
    pub fn on_startup<F, Fut, E>(mut self, name: impl Into<String>, hook: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: fmt::Display,
    {
        self.hooks.push(Hook::new(name.into(), hook));
        self
    }

    /// `serviceId` in the health+json body.
    pub fn service_id(mut self, id: impl Into<String>) -> Self {
        self.options.service_id = Some(id.into());
        self
    }

    /// `version` in the health+json body.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.options.version = Some(version.into());
        self
    }

    /// Hide check names, outputs and values unless the request carries
    /// `Authorization: Bearer <token>`. The status code and overall status stay visible:
    /// load balancers and kubelets need them and have no token. Per-check paths
    /// (`/readyz/database`), `?exclude=` and `/metrics` answer 401 without it, whatever name
    /// was asked for, so neither an output nor which names exist leaks.
    pub fn details_token(mut self, token: impl Into<String>) -> Self {
        self.options.details_token = Some(token.into());
        self
    }

    /// How long to keep serving after a shutdown begins, with readiness failing, so that load
    /// balancers notice and stop sending before the listener closes. Default 5 s.
    pub fn drain_delay(mut self, delay: Duration) -> Self {
        self.options.drain_delay = delay;
        self
    }

    /// A fresh read (`?fresh=1`) re-runs a check only if its latest result is older than
    /// this. Default 1 s: a storm of fresh reads costs at most one run per check per second.
    pub fn fresh_min_interval(mut self, interval: Duration) -> Self {
        self.options.fresh_min_interval = interval;
        self
    }

    /// [`Health::serve`] closes a connection whose request headers are not complete within
    /// this (counted from the connection's start, or from the previous response on a
    /// kept-alive connection). Default 10 s.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.options.serve.header_read_timeout = timeout;
        self
    }

    /// [`Health::serve`] closes a connection on which no byte moved either way for this long
    /// (a stalled upload, a client that stopped reading). Default 60 s. A handler that stays
    /// silent longer (a long poll) needs a longer one.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.options.serve.idle_timeout = timeout;
        self
    }

    /// At most this many open connections in [`Health::serve`]; a new one beyond it closes
    /// the connection that has waited longest for its next request, so a flood of
    /// half-finished connections cannot lock probes out. Default 512: keep it well below the
    /// process's file-descriptor limit (`ulimit -n`).
    pub fn max_connections(mut self, max: usize) -> Self {
        self.options.serve.max_connections = max;
        self
    }

    /// Run the checks on a thread of their own (a current-thread runtime at lower priority),
    /// so that no check run ever sits between probe requests on the service's workers.
    /// Default: yes in a multi-threaded runtime, no in a current-thread one (where tokio's
    /// paused clock in tests must govern the checks too).
    pub fn checks_thread(mut self, own: bool) -> Self {
        self.options.checks_thread = Some(own);
        self
    }

    /// Answer the gRPC health service name `name` (such as `orders.v1.Orders`) from
    /// `source`: a group's verdict or one check's status. `""`, `liveness`, `readiness` and
    /// `startup` are built in (see [`crate::grpc`]). Checked when the builder starts: the
    /// check must be registered, the name new.
    #[cfg(feature = "grpc")]
    pub fn grpc_service(mut self, name: impl Into<String>, source: crate::grpc::Source) -> Self {
        self.options.grpc.services.push((name.into(), source));
        self
    }

    /// At most this many gRPC Watch streams at once; one more is refused with
    /// `RESOURCE_EXHAUSTED`. Default [`crate::grpc::DEFAULT_MAX_WATCHERS`].
    #[cfg(feature = "grpc")]
    pub fn grpc_max_watchers(mut self, max: usize) -> Self {
        self.options.grpc.max_watchers = max;
        self
    }

    fn problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self.checks.iter().flat_map(Check::problems).collect();
        #[cfg(feature = "grpc")]
        {
            let names: Vec<&str> = self
                .checks
                .iter()
                .map(|check| check.name.as_str())
                .collect();
            problems.extend(crate::grpc::problems(&self.options.grpc, &names));
        }
        let serve = &self.options.serve;
        let mut server = |field: &'static str, message: &str| {
            problems.push(Problem {
                check: String::new(),
                field,
                message: message.into(),
            })
        };
        if serve.max_connections == 0 {
            server(
                "max_connections",
                "is zero; the server could accept nothing",
            );
        }
        if serve.header_read_timeout.is_zero() {
            server(
                "header_read_timeout",
                "is zero; no request could arrive in time",
            );
        }
        if serve.idle_timeout.is_zero() {
            server(
                "idle_timeout",
                "is zero; every connection would close at once",
            );
        }
        for (index, check) in self.checks.iter().enumerate() {
            if self.checks[..index]
                .iter()
                .any(|earlier| earlier.name == check.name)
            {
                problems.push(Problem {
                    check: check.name.clone(),
                    field: "name",
                    message: "is registered twice; check names must be unique".into(),
                });
            }
        }
        problems
    }

    /// Validate every registration, then start the checks and startup hooks in the
    /// background. Must be called within a Tokio runtime.
    ///
    /// Every problem is reported at once, each naming the check and the field.
    pub fn start(self) -> Result<Health, BuildError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(BuildError { problems });
        }
        let initial = if self.hooks.is_empty() {
            Phase::Ready
        } else {
            Phase::Starting {
                progress: format!("running startup hook {:?}", self.hooks[0].name),
            }
        };
        let (phase, _) = watch::channel(initial);
        let board = Arc::new(Board::new(self.checks.len()));
        let metrics = Arc::new(Metrics::new(
            self.checks.iter().map(|check| check.name.clone()).collect(),
        ));
        let run_now: Vec<Arc<Notify>> = self.checks.iter().map(|_| Arc::default()).collect();
        let place = Place::choose(self.options.checks_thread, phase.subscribe());
        for (index, check) in self.checks.iter().enumerate() {
            let task = Task {
                index,
                check: check.clone(),
                board: Arc::clone(&board),
                run_now: Arc::clone(&run_now[index]),
                fresh_min_interval: self.options.fresh_min_interval,
                metrics: Arc::clone(&metrics),
                phase: phase.subscribe(),
            };
            place.spawn(task.run());
        }
        if !self.hooks.is_empty() {
            tokio::spawn(run_hooks(self.hooks, phase.clone()));
        }
        #[cfg(feature = "grpc")]
        let grpc = crate::grpc::Table::new(&self.options.grpc, |name| {
            self.checks.iter().position(|check| check.name == name)
        });
        let health = Health {
            inner: Arc::new(Inner {
                #[cfg(feature = "grpc")]
                grpc,
                checks: self.checks,
                board,
                run_now,
                metrics,
                phase,
                options: self.options,
            }),
        };
        // Under systemd (`NOTIFY_SOCKET`): READY=1, watchdog pings, STOPPING=1, STATUS=.
        #[cfg(unix)]
        crate::systemd::start_from_env(&health);
        Ok(health)
    }
}

/// The running health of a service. Clone it freely; all clones share one state.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    checks: Vec<Check>,
    board: Arc<Board>,
    run_now: Vec<Arc<Notify>>,
    metrics: Arc<Metrics>,
    phase: watch::Sender<Phase>,
    options: Options,
    #[cfg(feature = "grpc")]
    grpc: crate::grpc::Table,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health")
            .field("checks", &self.inner.checks)
            .field("phase", &*self.inner.phase.borrow())
            .finish()
    }
}

impl Health {
    pub fn builder() -> HealthBuilder {
        HealthBuilder::new()
    }

    pub fn checks(&self) -> &[Check] {
        &self.inner.checks
    }

    /// The latest published snapshot of every check.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.board.read()
    }

    pub fn phase(&self) -> Phase {
        self.inner.phase.borrow().clone()
    }

    /// Watch lifecycle changes.
    pub fn subscribe_phase(&self) -> watch::Receiver<Phase> {
        self.inner.phase.subscribe()
    }

    /// Watch snapshot changes (every completed check run publishes one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.inner.board.subscribe()
    }

    pub(crate) fn options(&self) -> &Options {
        &self.inner.options
    }

    #[cfg(feature = "grpc")]
    pub(crate) fn grpc_table(&self) -> &crate::grpc::Table {
        &self.inner.grpc
    }

    /// The index of the check named `name`.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.inner
            .checks
            .iter()
            .position(|check| check.name == name)
    }

    /// Compute a verdict from `snapshot` (take it with [`Health::snapshot`]) now.
    pub fn verdict<'a>(
        &'a self,
        snapshot: &'a Snapshot,
        scope: Scope,
        excluded: &[usize],
    ) -> Verdict<'a> {
        verdict(
            &self.inner.checks,
            snapshot,
            scope,
            excluded,
            &self.inner.phase.borrow(),
            Instant::now(),
        )
    }

    /// Re-run the checks in `scope` whose results are older than the fresh-read interval, and
    /// wait for their results (at most each check's timeout). Concurrent callers share the
    /// same runs.
    pub async fn refresh(&self, scope: Scope) {
        let inner = &self.inner;
        let snapshot = inner.board.read();
        let now = Instant::now();
        let mut waiting = Vec::new();
        let mut longest = Duration::ZERO;
        for (index, check) in inner.checks.iter().enumerate() {
            let entry = &snapshot.checks[index];
            let recent = entry.recorded.is_some_and(|recorded| {
                now.saturating_duration_since(recorded) < inner.options.fresh_min_interval
            });
            if scope.includes(check) && !recent {
                inner.run_now[index].notify_one();
                waiting.push((index, entry.runs));
                longest = longest.max(check.timeout);
            }
        }
        if waiting.is_empty() {
            return;
        }
        let mut updates = inner.board.subscribe();
        let all_ran = updates.wait_for(|snapshot| {
            waiting
                .iter()
                .all(|&(index, runs)| snapshot.checks[index].runs > runs)
        });
        // A little beyond the longest timeout: every run ends by then, one way or another.
        let _ = tokio::time::timeout(longest + Duration::from_millis(100), all_ran).await;
    }

    /// Begin draining: readiness fails from now on while liveness keeps passing.
    pub fn shutdown(&self) {
        let changed = self.inner.phase.send_if_modified(|phase| {
            let draining = matches!(phase, Phase::Starting { .. } | Phase::Ready);
            if draining {
                *phase = Phase::Draining;
            }
            draining
        });
        if changed {
            tracing::info!(
                drain_delay = ?self.inner.options.drain_delay,
                "draining: readiness now fails; still serving until the drain delay is over"
            );
        }
    }

    /// A future for `axum::serve(..).with_graceful_shutdown(..)`: it waits for SIGTERM,
    /// SIGINT or [`Health::shutdown`], begins draining, keeps serving for the drain delay,
    /// then resolves so the server stops accepting and finishes what is in flight. A second
    /// SIGTERM or SIGINT during the drain ends it at once (the impatient Ctrl-C).
    pub fn drained(&self) -> impl Future<Output = ()> + Send + 'static {
        let health = self.clone();
        // Listening from now, not from the first poll: a signal between this call and the
        // server's first run (right after a start-up banner) still drains.
        let mut signals = StopSignals::listen();
        async move {
            let mut phase = health.subscribe_phase();
            tokio::select! {
                _ = signals.next() => {}
                _ = phase.wait_for(|phase| matches!(phase, Phase::Draining | Phase::Stopped)) => {}
            }
            health.shutdown();
            tokio::select! {
                () = tokio::time::sleep(health.inner.options.drain_delay) => {
                    tracing::info!("drain delay over; closing the listener");
                }
                signal = signals.next() => {
                    tracing::info!("second {signal}: drain cut short; closing the listener");
                }
            }
            health.inner.phase.send_replace(Phase::Stopped);
        }
    }

    /// Serve `app` on `listener` until drained (see [`Health::drained`]). Mount
    /// [`Health::router`] in `app` to serve the probes; pass `health.router()` alone for a
    /// standalone probe server.
    ///
    /// With the `grpc` feature it also speaks HTTP/2 (cleartext, as gRPC clients do), so
    /// `app.merge(health.grpc().router())` serves gRPC health on the same port.
    ///
    /// HTTP/1.1 with a header read timeout, an idle timeout and a connection limit (see
    /// [`HealthBuilder::header_read_timeout`], [`HealthBuilder::idle_timeout`],
    /// [`HealthBuilder::max_connections`]): slow or half-open clients cannot hold the port,
    /// and when the limit is reached the connection idle the longest makes room, so probes
    /// keep getting answers under a flood.
    pub async fn serve(
        &self,
        listener: tokio::net::TcpListener,
        app: axum::Router,
    ) -> std::io::Result<()> {
        crate::serve::serve_router_with(listener, app, self.inner.options.serve, self.drained())
            .await
    }

    /// Answer HAProxy's agent checks on `listener` (`agent-check agent-port …`) from the
    /// readiness verdict, with the defaults of [`AgentCheck`](crate::AgentCheck) (which
    /// see, for the replies and settings). Runs until dropped; spawn it beside
    /// [`Health::serve`].
    pub async fn serve_agent_check(
        &self,
        listener: tokio::net::TcpListener,
    ) -> std::io::Result<()> {
        crate::AgentCheck::new(self.clone()).serve(listener).await
    }

    /// The Prometheus text exposition of the checks' metrics.
    pub fn metrics_text(&self) -> String {
        self.inner.metrics.encode()
    }
}

/// SIGTERM and SIGINT, registered when made. A signal that cannot be listened for is logged
/// once and never arrives; the other (and [`Health::shutdown`]) still drain.
struct StopSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    #[cfg(unix)]
    fn listen() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for {name}; it will not drain the server");
                None
            }
        };
        StopSignals {
            term: listen(SignalKind::terminate(), "SIGTERM"),
            int: listen(SignalKind::interrupt(), "SIGINT"),
        }
    }

    #[cfg(not(unix))]
    fn listen() -> Self {
        StopSignals {}
    }

    /// The next SIGTERM or SIGINT, by name.
    #[cfg(unix)]
    async fn next(&mut self) -> &'static str {
        async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        tokio::select! {
            () = recv(&mut self.term) => "SIGTERM",
            () = recv(&mut self.int) => "interrupt",
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> &'static str {
        let _ = tokio::signal::ctrl_c().await;
        "interrupt"
    }
}
