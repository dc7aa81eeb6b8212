//! [`PgStore`]: the monitor's history in PostgreSQL, shared by every replica of a fleet
//! (`server.store = "postgres://…"`, docs/HA.md).
//!
//! Connections come from a deadpool pool over tokio-postgres, the driver the probes already
//! build (no second driver, no macros checking queries against a live database at compile
//! time, as sqlx would want). Every statement is prepared once per connection
//! (`prepare_cached`); results, pings and states go in batches of any size through one
//! statement each, whose parameters are arrays (`INSERT … SELECT * FROM unnest($1, $2, …)`:
//! a multi-row insert whose text never changes, so it stays prepared). Every write returns
//! after PostgreSQL committed it.
//!
//! Target names are interned in `targets`, as in SQLite; the ids are cached once committed
//! (interning commits on its own, before the batch that needs them), so a rolled-back batch
//! can only leave a harmless name behind.
//!
//! What this is not: the SQLite store's maintenance (rollups, retention), uptime, or outbox,
//! which PostgreSQL does not have yet; or a spool for when PostgreSQL is down (a call fails
//! with [`StoreError::Unavailable`] or [`StoreError::Postgres`], and the caller decides).

mod leases;
mod read;
mod schema;
mod write;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

pub use leases::{Fence, Held, Replica};
pub use schema::{MIGRATION_LOCK, PG_SCHEMA_VERSION};
pub use writer::PgWriter;

use super::history_store::HistoryStore;
use super::{CheckResult, Flags, Ping, StoreError, TargetState, Transition};

/// How long a call waits for a pooled connection, and a new connection for the server: past
/// it, PostgreSQL counts as unavailable and the call fails instead of hanging.
pub const PG_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per replica: the record loop, the API's reads and the lease loop each need
/// one at a time; more would only queue inside PostgreSQL.
pub const PG_CONNECTIONS: usize = 8;

/// The monitor's history in PostgreSQL. Cheap to clone (every clone shares the pool and the
/// cache of target ids); every method takes `&self` and may run concurrently.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// Target ids known to be committed, by name.
    ids: Arc<Mutex<HashMap<String, i64>>>,
    /// The URL without its password, for messages.
    url: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:5432/database`) and migrates the
    /// schema to [`PG_SCHEMA_VERSION`] under an advisory lock, so replicas may start together.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let shown = vitals_probes::redact_url(url);
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|source| StoreError::PostgresUrl {
                url: shown.clone(),
                source,
            })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(PG_TIMEOUT);
        }
        config.application_name("vitals");
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A verifying round trip per checkout would double the queries; a connection
                // the server closed is still dropped.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(PG_CONNECTIONS)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(PG_TIMEOUT))
            .create_timeout(Some(PG_TIMEOUT))
            .recycle_timeout(Some(PG_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Unavailable {
                what: "could not build the PostgreSQL pool",
                reason: e.to_string(),
            })?;
        let store = PgStore {
            pool,
            ids: Arc::new(Mutex::new(HashMap::new())),
            url: shown,
        };
        let mut client = store.client("could not connect to PostgreSQL").await?;
        schema::migrate(&mut client).await?;
        Ok(store)
    }

    /// The URL without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool, for the lease loop and the outbox, which share it.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The schema version in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        const WHAT: &str = "could not read the schema version";
        let client = self.client(WHAT).await?;
        let row = client
            .query_one("SELECT version FROM schema_version", &[])
            .await
            .map_err(StoreError::postgres(WHAT))?;
        row.try_get(0).map_err(StoreError::postgres(WHAT))
    }

    /// One round trip (`SELECT 1`): the monitor's own `store` check.
    pub async fn ping(&self) -> Result<(), StoreError> {
        const WHAT: &str = "could not reach PostgreSQL";
        let client = self.client(WHAT).await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(StoreError::postgres(WHAT))?;
        Ok(())
    }

    /// Deletes results older than `raw_days` (at least 1), pings older than that except each
    /// target's latest [`KEEP_PINGS`](crate::store::KEEP_PINGS), and transitions older than
    /// `rollup_days` except each target's last older one (it says what state the kept
    /// history starts in). Returns the rows deleted. Idempotent, so replicas may run it at
    /// the same time.
    pub async fn prune(
        &self,
        now: std::time::SystemTime,
        raw_days: u32,
        rollup_days: u32,
    ) -> Result<u64, StoreError> {
        const WHAT: &str = "could not prune the PostgreSQL store";
        let day = 86_400_000_i64;
        let now = super::codec::millis(now, "maintenance time")?;
        let raw = now - i64::from(raw_days.max(1)) * day;
        let kept = now - i64::from(rollup_days.max(1)) * day;
        let keep_pings = super::KEEP_PINGS;
        let client = self.client(WHAT).await?;
        let mut pruned = 0;
        for (sql, cutoff) in [
            ("DELETE FROM results WHERE at < $1", raw),
            (
                "DELETE FROM pings WHERE id IN (
                   SELECT id FROM (
                     SELECT id, at, row_number() OVER (PARTITION BY target ORDER BY at DESC, id DESC) AS n
                       FROM pings) p
                    WHERE p.at < $1 AND p.n > $2)",
                raw,
            ),
            (
                "DELETE FROM transitions t WHERE t.at < $1 AND EXISTS (
                   SELECT 1 FROM transitions l
                    WHERE l.target = t.target AND l.at < $1 AND (l.at, l.id) > (t.at, t.id))",
                kept,
            ),
        ] {
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(StoreError::postgres(WHAT))?;
            let done = if sql.contains("$2") {
                client.execute(&statement, &[&cutoff, &keep_pings]).await
            } else {
                client.execute(&statement, &[&cutoff]).await
            };
            pruned += done.map_err(StoreError::postgres(WHAT))?;
        }
        Ok(pruned)
    }

    pub(crate) async fn client(&self, what: &'static str) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(StoreError::pool(what))
    }

    fn cached_ids(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        // The map only ever holds committed ids; a panic elsewhere cannot make it wrong.
        self.ids.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HistoryStore for PgStore {
    async fn record_transition(&self, t: Transition) -> Result<i64, StoreError> {
        write::transition(self, &t).await
    }

    async fn record_results(&self, batch: Vec<CheckResult>) -> Result<(), StoreError> {
        write::results(self, &batch).await
    }

    async fn record_pings(&self, batch: Vec<Ping>) -> Result<(), StoreError> {
        write::pings(self, &batch).await
    }

    async fn save_states(&self, states: Vec<TargetState>) -> Result<(), StoreError> {
        write::states(self, &states).await
    }

    async fn set_flags(&self, target: String, flags: Flags) -> Result<(), StoreError> {
        write::flags(self, &target, &flags).await
    }

    async fn load_states(&self) -> Result<Vec<TargetState>, StoreError> {
        read::load_states(self).await
    }

    async fn transitions(
        &self,
        target: String,
        limit: usize,
    ) -> Result<Vec<Transition>, StoreError> {
        read::transitions(self, &target, limit).await
    }

    async fn recent_results(
        &self,
        target: String,
        limit: usize,
    ) -> Result<Vec<CheckResult>, StoreError> {
        read::recent_results(self, &target, limit).await
    }

    async fn last_pings(&self, target: String, limit: usize) -> Result<Vec<Ping>, StoreError> {
        read::last_pings(self, &target, limit).await
    }
}
