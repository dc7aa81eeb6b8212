//! The demo service: a service embedding the vitals library, with simulated dependencies
//! that can be broken and mended over HTTP, so the probes can be watched reacting. Run as
//! `vitals-demo` (this crate's binary: the quickest first build, the library and nothing
//! else) or `vitals demo` (the same [`run`] inside the full command).
//!
//! The simulation lives here, outside the library, because it is a toy: the library and its
//! tests use real servers. Not a template for a real service (see `examples/order-service`).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use vitals::probes::{Disk, Memory, Probe, from_fn};
use vitals::{Check, Health, Report};

/// What a simulated dependency does when checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Up = 0,
    Down = 1,
    Slow = 2,
    Hang = 3,
}

impl Mode {
    fn parse(text: &str) -> Option<Mode> {
        match text {
            "up" => Some(Mode::Up),
            "down" => Some(Mode::Down),
            "slow" => Some(Mode::Slow),
            "hang" => Some(Mode::Hang),
            _ => None,
        }
    }

    fn from_u8(value: u8) -> Mode {
        match value {
            1 => Mode::Down,
            2 => Mode::Slow,
            3 => Mode::Hang,
            _ => Mode::Up,
        }
    }
}

/// A simulated dependency whose behaviour is switched over HTTP.
#[derive(Debug, Clone, Default)]
struct Simulated {
    mode: Arc<AtomicU8>,
}

impl Simulated {
    fn probe(&self, what: &'static str) -> impl Probe + use<> {
        let mode = Arc::clone(&self.mode);
        from_fn(move || {
            let mode = Mode::from_u8(mode.load(Ordering::Relaxed));
            async move {
                match mode {
                    Mode::Up => Report::pass().with_output(format!("{what} answered")),
                    Mode::Down => Report::fail(format!("{what}: connection refused")),
                    Mode::Slow => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        Report::warn(format!("{what} answered slowly")).with_observed(300.0, "ms")
                    }
                    Mode::Hang => std::future::pending().await,
                }
            }
        })
    }
}

#[derive(Debug, Clone)]
struct Dependencies {
    database: Simulated,
    cache: Simulated,
}

/// `/`: what the demo serves, so that a browser pointed at it learns where to look.
const INDEX: &str = "A service embedding the vitals library, with a simulated database and cache.\n\
     \n\
     GET  /livez /readyz /startupz    Kubernetes-style probes (add ?verbose for a line per check)\n\
     GET  /health                     every check, as application/health+json\n\
     GET  /metrics                    Prometheus metrics\n\
     POST /demo/database/MODE         MODE: up, down, slow, hang (also /demo/cache/MODE;\n\
     \x20                                the cache is non-critical: down only degrades)\n";

async fn switch(
    State(deps): State<Dependencies>,
    Path((name, mode)): Path<(String, String)>,
) -> (StatusCode, String) {
    let Some(mode) = Mode::parse(&mode) else {
        return (
            StatusCode::BAD_REQUEST,
            format!("unknown mode {mode:?}; use up, down, slow or hang\n"),
        );
    };
    let target = match name.as_str() {
        "database" => &deps.database,
        "cache" => &deps.cache,
        _ => {
            return (
                StatusCode::NOT_FOUND,
                format!("no simulated dependency {name:?}; use database or cache\n"),
            );
        }
    };
    target.mode.store(mode as u8, Ordering::Relaxed);
    tracing::info!(dependency = %name, ?mode, "simulated dependency switched");
    (StatusCode::OK, format!("{name} is now {mode:?}\n"))
}

/// The demo's options, shared by `vitals-demo` and `vitals demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Address to serve on.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub listen: SocketAddr,
    /// How often the demo's checks run.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// How long to keep serving after Ctrl-C or SIGTERM, with readiness failing.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub drain_delay: Duration,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("invalid demo checks: {0}")]
    Checks(#[from] vitals::BuildError),
    #[error(
        "cannot listen on {listen} (is another demo running? try --listen 127.0.0.1:0): {source}"
    )]
    Listen {
        listen: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// Serve the demo until Ctrl-C or SIGTERM, then drain and return.
pub async fn run(args: Args) -> Result<(), DemoError> {
    let Args {
        listen,
        interval,
        drain_delay,
    } = args;
    let deps = Dependencies {
        database: Simulated::default(),
        cache: Simulated::default(),
    };
    let timeout = (interval / 2).max(Duration::from_millis(100));
    let every = |check: Check| {
        check
            .interval(interval)
            .timeout(timeout)
            .jitter(interval / 10)
    };
    let health = Health::builder()
        .service_id("vitals-demo")
        .version(env!("CARGO_PKG_VERSION"))
        .drain_delay(drain_delay)
        .check(every(Check::new(
            "database",
            deps.database.probe("database"),
        )))
        .check(every(Check::new("cache", deps.cache.probe("cache"))).non_critical())
        .check(
            every(Check::new("memory", Memory::default()))
                .liveness()
                .non_critical(),
        )
        .check(every(Check::new("disk", Disk::new(std::env::temp_dir()))).non_critical())
        // gRPC health on the same port: "" follows readiness, and one name per dependency.
        .grpc_service(
            "demo.Database",
            vitals::grpc::Source::Check("database".into()),
        )
        .on_startup("warm-up", || async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Ok::<_, std::convert::Infallible>(())
        })
        .start()?;

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| DemoError::Listen { listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| DemoError::Listen { listen, source })?;
    // `/` names this instance first, so requests through a balancer show which one answered.
    let index = format!("vitals demo on {addr}\n\n{INDEX}");
    let app = Router::new()
        .route("/", get(move || std::future::ready(index.clone())))
        .route("/demo/{dependency}/{mode}", post(switch))
        .with_state(deps)
        .merge(health.router())
        .merge(health.grpc().router());
    // Written, not `println!`ed: with its reader gone (`vitals-demo | head -1`) the demo
    // goes on serving rather than panicking on a closed pipe.
    let _ = writeln!(
        std::io::stdout(),
        "vitals demo on http://{addr}\n\
         \n  probes:   curl -i 'http://{addr}/readyz?verbose'   (also /livez /startupz /health /metrics)\
         \n  gRPC:     vitals probe grpc://{addr}                (also /liveness /demo.Database)\
         \n  break:    curl -X POST http://{addr}/demo/database/down   (modes: up down slow hang; also cache)\
         \n  mend:     curl -X POST http://{addr}/demo/database/up\
         \n  stop:     Ctrl-C (readiness fails at once, the server drains for {}, then exits)\n",
        humantime::format_duration(drain_delay)
    );
    health.serve(listener, app).await.map_err(DemoError::Serve)
}
