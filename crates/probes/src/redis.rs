//! `Redis`: `PING` through one shared, self-healing connection manager.
//!
//! While Redis is down the manager reconnects with backoff, and a command waits for the
//! reconnection; the probe bounds connecting and `PING` together by the run's answer-by
//! instant ([`in_time`]), so it fails in its own words ("PING: no answer within 900ms") inside
//! the check's timeout rather than being cut as a timeout (issue 11, item 9).

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;
use tokio::time::Instant;
use vitals_core::Report;

use crate::tcp::millis;
use crate::{BoxFuture, Probe, in_time};

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
            let mut manager = match in_time(self.manager()).await {
                Ok(Ok(manager)) => manager,
                Ok(Err(error)) => return Report::fail(format!("connect: {error}")),
                Err(late) => return Report::fail(format!("connect: {late}")),
            };
            match in_time(redis::cmd("PING").query_async::<String>(&mut manager)).await {
                Ok(Ok(_)) => Report::pass()
                    .with_output("PONG")
                    .with_observed(millis(start), "ms"),
                Ok(Err(error)) => Report::fail(format!("PING: {error}")),
                Err(late) => Report::fail(format!("PING: {late}")),
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
