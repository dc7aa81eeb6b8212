//! `Redis`: `PING` through one shared, self-healing connection manager.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use vitals_core::Report;

use crate::tcp::millis;
use crate::{BoxFuture, Probe};

/// Sends `PING` over a [`ConnectionManager`], which multiplexes one connection and reconnects
/// when it breaks.
pub struct Redis {
    client: Option<redis::Client>,
    manager: OnceCell<ConnectionManager>,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("connected", &self.manager.initialized())
            .finish()
    }
}

impl Redis {
    /// Check through the application's own connection manager.
    pub fn from_manager(manager: ConnectionManager) -> Self {
        Redis {
            client: None,
            manager: OnceCell::new_with(Some(manager)),
        }
    }

    /// Check through a connection manager of its own to `url` (`redis://127.0.0.1:6379`),
    /// created on the first check, so a Redis that is down at start-up is a failing check
    /// rather than a start-up error.
    pub fn connect(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Redis {
            client: Some(redis::Client::open(url)?),
            manager: OnceCell::new(),
        })
    }

    async fn manager(&self) -> Result<ConnectionManager, redis::RedisError> {
        let manager =
            self.manager
                .get_or_try_init(|| async {
                    let client = self.client.clone().ok_or_else(|| {
                        redis::RedisError::from(std::io::Error::other("no client"))
                    })?;
                    client
                        .get_connection_manager_with_config(manager_config())
                        .await
                })
                .await?;
        Ok(manager.clone())
    }
}

/// Reconnect quickly and give up on a request quickly: a health check wants to learn "down"
/// within its own timeout, not after the default minute of retries.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(2)))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

impl Probe for Redis {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let start = Instant::now();
            let mut manager = match self.manager().await {
                Ok(manager) => manager,
                Err(error) => return Report::fail(format!("connect: {error}")),
            };
            match redis::cmd("PING").query_async::<String>(&mut manager).await {
                Ok(_) => Report::pass()
                    .with_output("PONG")
                    .with_observed(millis(start), "ms"),
                Err(error) => Report::fail(format!("PING: {error}")),
            }
        })
    }

    fn component_type(&self) -> &'static str {
        crate::component_type::DATASTORE
    }

    fn is_external(&self) -> bool {
        true
    }
}
