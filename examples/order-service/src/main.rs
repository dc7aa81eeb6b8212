//! The seed's order service, in Rust: `POST /api/orders` writes an order to PostgreSQL and
//! queues it in Redis; vitals serves `/health`, `/alive`, `/ready`, `/startup` (and the kube
//! names) from background checks.
//!
//! ```text
//! order-service --listen 127.0.0.1:8000 \
//!     --database-url postgres://postgres@127.0.0.1:5432/postgres \
//!     --redis-url redis://127.0.0.1:6379
//! ```
//!
//! It exists to show the library on a real service and to be tested and benchmarked against
//! real PostgreSQL and Redis; it is not a product.

mod checks;
mod orders;

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

/// The seed's order service, with health checks from vitals.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to serve the API and the probes on.
    #[arg(long, env = "LISTEN", default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// PostgreSQL connection string; orders are stored there (critical).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// Redis connection string; the cache and the task queue (non-critical).
    #[arg(long, env = "REDIS_URL")]
    redis_url: String,
    /// How often each dependency is checked.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    check_interval: Duration,
    /// How long to keep serving after SIGTERM, with readiness failing.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    drain_delay: Duration,
    /// Push a heartbeat with the service's health to this URL.
    #[arg(long)]
    heartbeat_url: Option<String>,
    /// How often to push the heartbeat.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat_every: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Colour codes only on a terminal: the journal and log files get plain text (issue 14).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(ansi)
        .init();
    let args = Args::parse();

    let store = orders::Store::new(&args.database_url, &args.redis_url)?;
    let health = checks::register(&store, &args)?;
    if let Some(url) = &args.heartbeat_url {
        vitals::Heartbeat::new(url.clone())
            .every(args.heartbeat_every)
            .spawn(&health);
    }

    let app = orders::router(store, health.clone()).merge(health.router());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(addr = %args.listen, "order service listening");
    health.serve(listener, app).await.context("server failed")?;
    tracing::info!("drained; bye");
    Ok(())
}
