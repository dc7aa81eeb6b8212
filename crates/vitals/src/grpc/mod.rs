//! The `grpc.health.v1.Health` service (Check, Watch, List), answered from the same published
//! snapshot and lifecycle as the HTTP probes: a call never runs a check, so gRPC health
//! checks cost what a `/readyz` costs, whatever their rate.
//!
//! Which gRPC service names exist is fixed when the [`HealthBuilder`](crate::HealthBuilder)
//! starts. Always: `""` (the server as a whole) follows readiness, lifecycle included, and
//! `liveness`, `readiness` and `startup` follow their groups (what a Kubernetes `grpc` probe
//! names in its `service` field). More with
//! [`HealthBuilder::grpc_service`](crate::HealthBuilder::grpc_service): a name such as
//! `orders.v1.Orders` for a group or for one check.
//!
//! Semantics, as `grpc/doc/health-checking.md`, the A90 proposal (List) and grpc-go's server:
//! - `Check` answers `SERVING` or `NOT_SERVING`; a name that is not configured is `NOT_FOUND`.
//! - `Watch` sends the current status at once, then one message per change, never the same
//!   status twice in a row. A name that is not configured gets `SERVICE_UNKNOWN` and the
//!   stream stays open (the names never change, so nothing follows until the server stops).
//!   A reader that does not keep up gets the latest status when it reads again, not every
//!   change in between: a stream holds no queue, only the last status sent. At most
//!   [`DEFAULT_MAX_WATCHERS`] streams at once
//!   ([`HealthBuilder::grpc_max_watchers`](crate::HealthBuilder::grpc_max_watchers)); one more
//!   is refused with `RESOURCE_EXHAUSTED`.
//! - `List` gives every configured name and its status; more than [`MAX_LISTED`] names is
//!   `RESOURCE_EXHAUSTED` (the builder refuses more, so it cannot happen).
//! - Draining (SIGTERM, [`Health::shutdown`]) turns every name `NOT_SERVING` at once, liveness
//!   included, as grpc-go's `Shutdown`. When the drain delay is over, Watch streams end with
//!   `OK`, so that the server can close (clients retry a Watch that ends).
//!
//! Serving: [`Health::serve`] speaks HTTP/2 beside HTTP/1.1 when this feature is on, so
//! `app.merge(health.grpc().router())` puts gRPC health and the HTTP probes on one port. On a
//! tonic server: `Server::builder().add_service(health.grpc().service())`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use vitals::grpc::Source;
//! use vitals::{Check, Group, Health};
//! use vitals::probes::Postgres;
//!
//! let health = Health::builder()
//!     .check(Check::new("database", Postgres::connect("postgres://postgres@127.0.0.1/shop")?))
//!     .grpc_service("orders.v1.Orders", Source::Group(Group::Readiness))
//!     .grpc_service("orders.Database", Source::Check("database".into()))
//!     .start()?;
//! let app = axum::Router::new()
//!     .merge(health.router())
//!     .merge(health.grpc().router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
//! // `vitals probe grpc://127.0.0.1:8000` and `curl http://127.0.0.1:8000/readyz` both work.
//! health.serve(listener, app).await?;
//! # Ok(()) }
//! ```
//!
//! What it is not: a registry of gRPC services that a program sets by hand (grpc-go's
//! `SetServingStatus`): statuses come from checks only, so they cannot disagree with `/readyz`.

mod list;
mod watch;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use tonic::codegen::{Body, BoxFuture, Context, Poll, Service, StdError, http};
use tonic::{Request, Response, Status};

use crate::check::Group;
use crate::health::Health;
use crate::lifecycle::Phase;
use crate::snapshot::Snapshot;
use crate::view::{Scope, check_view};

pub use list::{HealthListRequest, HealthListResponse, list};
use pb::HealthCheckResponse;
use pb::health_check_response::ServingStatus;
/// The generated `grpc.health.v1` messages, client and server (from `tonic-health`).
pub use tonic_health::pb;

/// The gRPC name of the service.
pub const SERVICE_NAME: &str = "grpc.health.v1.Health";

/// Watch streams open at once unless set otherwise.
pub const DEFAULT_MAX_WATCHERS: usize = 1024;

/// The most names `List` returns (A90); the builder refuses more.
pub const MAX_LISTED: usize = 100;

/// The longest service name the builder accepts, and the largest request decoded (a request
/// is one name).
pub(crate) const MAX_NAME: usize = 256;
const MAX_REQUEST_BYTES: usize = 4 * 1024;

/// How often a Watch stream looks again when nothing was published: a check result ages
/// into staleness without any publish, and a stale check must show.
const RECHECK: Duration = Duration::from_secs(1);

/// What a gRPC service name reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A probe group's verdict (`/livez`, `/readyz`, `/startupz`), lifecycle included.
    Group(Group),
    /// One registered check, by name: `SERVING` while it passes or warns.
    Check(String),
}

/// The names the builder configured, resolved: each to a group or a check's index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolved {
    Group(Group),
    Check(usize),
}

/// The gRPC settings a [`HealthBuilder`](crate::HealthBuilder) collects.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) services: Vec<(String, Source)>,
    pub(crate) max_watchers: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            services: Vec::new(),
            max_watchers: DEFAULT_MAX_WATCHERS,
        }
    }
}

/// The names every server has, and what they follow.
pub(crate) const BUILT_IN: [(&str, Group); 4] = [
    ("", Group::Readiness),
    ("liveness", Group::Liveness),
    ("readiness", Group::Readiness),
    ("startup", Group::Startup),
];

/// The state the gRPC service reads: the health handle, the names and the Watch budget.
/// Made once by [`HealthBuilder::start`](crate::HealthBuilder::start).
#[derive(Debug)]
pub(crate) struct Table {
    pub(crate) names: BTreeMap<String, Resolved>,
    pub(crate) watchers: Arc<Semaphore>,
    pub(crate) max_watchers: usize,
}

impl Table {
    /// The names resolved against the registered checks; the builder has validated them.
    pub(crate) fn new(options: &Options, position: impl Fn(&str) -> Option<usize>) -> Table {
        let mut names: BTreeMap<String, Resolved> = BUILT_IN
            .iter()
            .map(|(name, group)| ((*name).to_string(), Resolved::Group(*group)))
            .collect();
        for (name, source) in &options.services {
            let resolved = match source {
                Source::Group(group) => Resolved::Group(*group),
                Source::Check(check) => match position(check) {
                    Some(index) => Resolved::Check(index),
                    None => continue,
                },
            };
            names.insert(name.clone(), resolved);
        }
        Table {
            names,
            watchers: Arc::new(Semaphore::new(options.max_watchers)),
            max_watchers: options.max_watchers,
        }
    }
}

/// The problems of the gRPC settings, each naming the service and why (checked with the
/// checks, by [`HealthBuilder::start`](crate::HealthBuilder::start)). They are server
/// settings: `server: grpc_service "db" names "databse", which is not a registered check …`.
pub(crate) fn problems(options: &Options, check_names: &[&str]) -> Vec<crate::Problem> {
    let mut problems = Vec::new();
    let mut problem = |field: &'static str, message: String| {
        problems.push(crate::Problem {
            check: String::new(),
            field,
            message,
        });
    };
    for (index, (name, source)) in options.services.iter().enumerate() {
        if let Some((_, group)) = BUILT_IN
            .iter()
            .find(|(built_in, _)| *built_in == name.as_str())
        {
            problem(
                "grpc_service",
                format!(
                    "{name:?} is built in and follows {}; choose another name",
                    group.as_str()
                ),
            );
        } else if name.len() > MAX_NAME || name.chars().any(char::is_control) {
            problem(
                "grpc_service",
                format!("{name:?} must be at most {MAX_NAME} bytes without control characters"),
            );
        }
        if options.services[..index]
            .iter()
            .any(|(earlier, _)| earlier == name)
        {
            problem(
                "grpc_service",
                format!("{name:?} is configured twice; each name reports one thing"),
            );
        }
        if let Source::Check(check) = source
            && !check_names.contains(&check.as_str())
        {
            problem(
                "grpc_service",
                format!(
                    "{name:?} names {check:?}, which is not a registered check (registered: {})",
                    check_names.join(", ")
                ),
            );
        }
    }
    if options.max_watchers == 0 {
        problem(
            "grpc_max_watchers",
            "is zero; every Watch would be refused".into(),
        );
    }
    let total = BUILT_IN.len()
        + options
            .services
            .iter()
            .filter(|(name, _)| {
                !BUILT_IN
                    .iter()
                    .any(|(built_in, _)| *built_in == name.as_str())
            })
            .count();
    if total > MAX_LISTED {
        problem(
            "grpc_service",
            format!(
                "{total} names (with the {} built in) is more than List may return ({MAX_LISTED})",
                BUILT_IN.len()
            ),
        );
    }
    problems
}

/// The `grpc.health.v1.Health` service of a [`Health`]. Get it with [`Health::grpc`]; clone
/// it freely.
#[derive(Debug, Clone)]
pub struct GrpcHealth {
    health: Health,
}

impl Health {
    /// The `grpc.health.v1.Health` service answering from this handle's snapshot.
    pub fn grpc(&self) -> GrpcHealth {
        GrpcHealth {
            health: self.clone(),
        }
    }
}

impl GrpcHealth {
    fn table(&self) -> &Table {
        self.health.grpc_table()
    }

    /// The status of `service` now, or `None` if no such name is configured.
    pub fn status(&self, service: &str) -> Option<ServingStatus> {
        let resolved = *self.table().names.get(service)?;
        let snapshot = self.health.snapshot();
        Some(self.status_of(resolved, &snapshot, &self.health.phase()))
    }

    /// Every configured name and its status now.
    pub fn statuses(&self) -> BTreeMap<String, ServingStatus> {
        let snapshot = self.health.snapshot();
        let phase = self.health.phase();
        self.table()
            .names
            .iter()
            .map(|(name, resolved)| (name.clone(), self.status_of(*resolved, &snapshot, &phase)))
            .collect()
    }

    fn status_of(&self, resolved: Resolved, snapshot: &Snapshot, phase: &Phase) -> ServingStatus {
        serving(&self.health, resolved, snapshot, phase, Instant::now())
    }

    /// A tower service to mount on a tonic server:
    /// `Server::builder().add_service(health.grpc().service())`.
    pub fn service(self) -> HealthService {
        HealthService {
            inner: pb::health_server::HealthServer::new(self.clone())
                .max_decoding_message_size(MAX_REQUEST_BYTES),
            grpc: self,
        }
    }

    /// The service as an axum router, to merge with the application's:
    /// `app.merge(health.grpc().router())`; [`Health::serve`] then answers both on one port.
    /// It routes `/grpc.health.v1.Health/…` only and sets no fallback, so it merges with any
    /// router (a method it does not know is answered `UNIMPLEMENTED`).
    pub fn router(self) -> axum::Router {
        axum::Router::new().route_service(&format!("/{SERVICE_NAME}/{{*method}}"), self.service())
    }
}

/// The status a resolved name has at `now`: `NOT_SERVING` for everything while draining;
/// otherwise its group's verdict or its check's status, `SERVING` while it passes or warns.
pub(crate) fn serving(
    health: &Health,
    resolved: Resolved,
    snapshot: &Snapshot,
    phase: &Phase,
    now: Instant,
) -> ServingStatus {
    if matches!(phase, Phase::Draining | Phase::Stopped) {
        return ServingStatus::NotServing;
    }
    let status = match resolved {
        Resolved::Group(group) => {
            crate::view::verdict(
                health.checks(),
                snapshot,
                Scope::Group(group),
                &[],
                phase,
                now,
            )
            .status
        }
        Resolved::Check(index) => {
            let (Some(check), Some(entry)) =
                (health.checks().get(index), snapshot.checks.get(index))
            else {
                return ServingStatus::NotServing;
            };
            check_view(check, entry, Scope::All, now).status
        }
    };
    if status.is_serving() {
        ServingStatus::Serving
    } else {
        ServingStatus::NotServing
    }
}

fn response(status: ServingStatus) -> HealthCheckResponse {
    HealthCheckResponse {
        status: status as i32,
    }
}

#[tonic::async_trait]
impl pb::health_server::Health for GrpcHealth {
    async fn check(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = request.into_inner().service;
        match self.status(&service) {
            Some(status) => Ok(Response::new(response(status))),
            None => Err(Status::not_found(format!("unknown service {service:?}"))),
        }
    }

    type WatchStream = watch::WatchStream;

    async fn watch(
        &self,
        request: Request<pb::HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let table = self.table();
        let Ok(permit) = Arc::clone(&table.watchers).try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "too many Watch streams (at most {}); retry with backoff",
                table.max_watchers
            )));
        };
        let service = request.into_inner().service;
        let resolved = table.names.get(&service).copied();
        Ok(Response::new(watch::stream(
            self.health.clone(),
            resolved,
            permit,
        )))
    }
}

/// The tower service of [`GrpcHealth::service`]: the generated Check and Watch, and List.
#[derive(Debug, Clone)]
pub struct HealthService {
    inner: pb::health_server::HealthServer<GrpcHealth>,
    grpc: GrpcHealth,
}

impl tonic::server::NamedService for HealthService {
    const NAME: &'static str = SERVICE_NAME;
}

impl<B> Service<http::Request<B>> for HealthService
where
    B: Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() == list::PATH {
            let method = list::ListSvc(self.grpc.clone());
            Box::pin(async move {
                let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                    .apply_max_message_size_config(Some(MAX_REQUEST_BYTES), None);
                Ok(grpc.unary(method, request).await)
            })
        } else {
            self.inner.call(request)
        }
    }
}
