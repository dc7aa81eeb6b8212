//! Orders: the service's own work. PostgreSQL stores them; Redis queues each new order for
//! later processing and holds the configuration the seed loads at start-up.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;
use vitals::Health;

const QUEUE: &str = "task_queue";

/// Connections to PostgreSQL (a pool) and Redis (one multiplexed, self-healing connection,
/// made on first use so a Redis that is down at start does not stop the service).
#[derive(Clone)]
pub(crate) struct Store {
    pool: Pool,
    redis: redis::Client,
    cache: Arc<OnceCell<ConnectionManager>>,
}

impl Store {
    pub(crate) fn new(database_url: &str, redis_url: &str) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config = database_url
            .parse()
            .map_err(|error| anyhow::anyhow!("invalid --database-url: {error}"))?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager).max_size(16).build()?;
        let redis = redis::Client::open(redis_url)
            .map_err(|error| anyhow::anyhow!("invalid --redis-url: {error}"))?;
        Ok(Store {
            pool,
            redis,
            cache: Arc::default(),
        })
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    async fn cache(&self) -> Result<ConnectionManager, redis::RedisError> {
        // Short timeouts and one retry: Redis is non-critical, so an order must not wait
        // long for it (the default retries for about a minute while Redis is down).
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_millis(500)))
            .set_response_timeout(Some(Duration::from_millis(500)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = self
            .cache
            .get_or_try_init(|| self.redis.get_connection_manager_with_config(config))
            .await?;
        Ok(manager.clone())
    }

    /// Startup hook: reach the database and make sure the orders table exists.
    pub(crate) async fn migrate(&self) -> anyhow::Result<()> {
        let client = self.pool.get().await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS orders (
                    id BIGSERIAL PRIMARY KEY,
                    item TEXT NOT NULL,
                    quantity INTEGER NOT NULL CHECK (quantity > 0),
                    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            )
            .await?;
        Ok(())
    }

    /// Startup hook: the seed loads `app:config` from Redis and refuses to start without it.
    /// A missing key gets the defaults written, so a fresh Redis works; an unreachable Redis
    /// fails the hook, which is retried.
    pub(crate) async fn load_config(&self) -> anyhow::Result<()> {
        let mut cache = self.cache().await?;
        let config: Option<String> = redis::cmd("GET")
            .arg("app:config")
            .query_async(&mut cache)
            .await?;
        if config.is_none() {
            redis::cmd("SET")
                .arg("app:config")
                .arg(r#"{"max_quantity":1000}"#)
                .arg("NX")
                .query_async::<()>(&mut cache)
                .await?;
            tracing::info!("no app:config in redis; wrote the defaults");
        }
        Ok(())
    }

    pub(crate) async fn queue_length(&self) -> Result<f64, redis::RedisError> {
        let mut cache = self.cache().await?;
        let length: u64 = redis::cmd("LLEN")
            .arg(QUEUE)
            .query_async(&mut cache)
            .await?;
        Ok(length as f64)
    }
}

#[derive(Debug, Deserialize)]
struct NewOrder {
    item: String,
    quantity: i32,
}

#[derive(Clone)]
struct AppState {
    store: Store,
    health: Health,
}

pub(crate) fn router(store: Store, health: Health) -> Router {
    Router::new()
        .route("/api/orders", post(create_order))
        .with_state(AppState { store, health })
}

fn error(code: StatusCode, message: impl Into<String>) -> Response {
    (code, Json(json!({ "error": message.into() }))).into_response()
}

async fn create_order(
    State(state): State<AppState>,
    order: Result<Json<NewOrder>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if !state.health.phase().is_started() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "service not ready: still starting",
        );
    }
    let Json(order) = match order {
        Ok(order) => order,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    if order.item.trim().is_empty() || order.item.len() > 200 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "item must be 1 to 200 characters",
        );
    }
    if order.quantity <= 0 {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "quantity must be positive",
        );
    }
    let client = match state.store.pool.get().await {
        Ok(client) => client,
        Err(err) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("database unavailable: {err}"),
            );
        }
    };
    let row = client
        .query_one(
            "INSERT INTO orders (item, quantity) VALUES ($1, $2) RETURNING id",
            &[&order.item, &order.quantity],
        )
        .await;
    let id: i64 = match row {
        Ok(row) => row.get(0),
        Err(err) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not store the order: {err}"),
            );
        }
    };
    // Queue the order for processing. Redis is non-critical: the order is stored either way.
    match state.store.cache().await {
        Ok(mut cache) => {
            if let Err(err) = redis::cmd("LPUSH")
                .arg(QUEUE)
                .arg(id)
                .query_async::<()>(&mut cache)
                .await
            {
                tracing::warn!(order = id, error = %err, "order stored but not queued");
            }
        }
        Err(err) => tracing::warn!(order = id, error = %err, "order stored but not queued"),
    }
    (StatusCode::CREATED, Json(json!({ "order_id": id }))).into_response()
}
