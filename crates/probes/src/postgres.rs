//! `Postgres`: `SELECT 1` through a connection pool.
//!
//! The probe never opens a connection of its own per check: it borrows one from the
//! application's pool (so the check sees what requests see: an exhausted pool fails it) or
//! from a small dedicated pool of at most two connections.

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::time::Instant;
use tokio_postgres::NoTls;
use vitals_core::Report;

use crate::tcp::millis;
use crate::text::error_root;
use crate::{BoxFuture, Probe};

/// Runs `SELECT 1` on a pooled connection.
#[derive(Clone)]
pub struct Postgres {
    pool: Pool,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("pool", &self.pool.status())
            .finish()
    }
}

/// A connection string that could not be understood.
#[derive(Debug, thiserror::Error)]
#[error("invalid postgresql connection string: {0}")]
pub struct InvalidUrl(#[source] tokio_postgres::Error);

impl Postgres {
    /// Check through the application's own pool.
    pub fn from_pool(pool: Pool) -> Self {
        Postgres { pool }
    }

    /// Check through a small dedicated pool (at most two connections) to `url`, such as
    /// `postgres://user@127.0.0.1:5432/shop`. Connects lazily: a database that is down when
    /// the service starts is a failing check, not a start-up error.
    pub fn connect(url: &str) -> Result<Self, InvalidUrl> {
        let config: tokio_postgres::Config = url.parse().map_err(InvalidUrl)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // Fast recycling still drops connections the server closed, which is all a
                // health check needs; a verifying round trip would double its queries.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(2)
            .build()
            .expect("a pool without timeouts or hooks always builds");
        Ok(Postgres { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

impl Probe for Postgres {
    fn check(&self) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let start = Instant::now();
            let client = match self.pool.get().await {
                Ok(client) => client,
                Err(error) => {
                    return Report::fail(format!("no connection: {}", error_root(&error)));
                }
            };
            match client.simple_query("SELECT 1").await {
                Ok(_) => Report::pass()
                    .with_output("SELECT 1 ok")
                    .with_observed(millis(start), "ms"),
                Err(error) => Report::fail(format!("SELECT 1: {}", error_root(&error))),
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
