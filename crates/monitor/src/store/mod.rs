//! The monitor's history: SQLite in WAL mode, in one file in the data directory, so
//! `vitals serve` needs no database server.
//!
//! It keeps every transition, every check result in summary (raw for a few days, then as
//! minute, hour and day rollups), healthchecks.io-style pings, and each target's current state
//! and operator flags, and answers uptime over 24 h, 7 d, 30 d and 365 d. `docs/STORAGE.md`
//! has the schema, the retention rules, the durability guarantees and measured sizes.
//!
//! # How the monitor uses it
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use std::sync::Arc;
//! use std::time::SystemTime;
//! use vitals_monitor::store::{Store, Writer};
//!
//! let dir = Path::new("/var/lib/vitals");
//! // One read-write connection, owned by the writer thread: the engine never blocks on it.
//! let writer = Writer::spawn(Store::open(dir)?);
//! // Readers (the API) use their own connection from blocking threads; WAL lets them read
//! // while the writer writes.
//! let reader = Arc::new(Store::open_read_only(dir)?);
//! let uptimes = tokio::task::spawn_blocking({
//!     let reader = Arc::clone(&reader);
//!     move || reader.uptimes(SystemTime::now())
//! })
//! .await??;
//! // Maintenance too gets its own read-write connection, so its reads never hold up writes.
//! let maintenance = Store::open(dir)?;
//! tokio::task::spawn_blocking(move || maintenance.rollup_and_prune(SystemTime::now(), 7, 365));
//! # let _ = (uptimes, writer);
//! # Ok(())
//! # }
//! ```
//!
//! # Guarantees
//!
//! - A write method returns after its transaction committed. With `synchronous=NORMAL` in WAL
//!   mode a committed transaction survives the monitor being killed (even with `SIGKILL`) at
//!   any moment; a power loss or kernel crash may lose the last commits before the next
//!   checkpoint, never corrupt the file.
//! - Reads never see half a transaction.
//! - Nothing here panics on input: bad times, empty target ids and damaged values come back as
//!   [`StoreError`]s.
//!
//! # Two stores, one interface
//!
//! [`HistoryStore`] is what a monitor writes and reads of its targets' history; SQLite
//! ([`SqliteHistory`] over a [`Store`]) and PostgreSQL ([`PgStore`], `server.store =
//! "postgres://…"`, shared by replicas) implement it, and one test suite
//! (`tests/suite.rs`) runs against both. The record loop writes through a [`RecordWriter`]
//! (the SQLite [`Writer`] thread or the [`PgWriter`] task). Rollups, uptime, the outbox and
//! the dashboard's histories are SQLite's only for now.
//!
//! What this is not: the engine (it decides nothing about states; it stores the strings it is
//! given) or the JSON API.

mod actions;
mod codec;
mod error;
mod history_store;
mod outbox;
mod overview;
mod ping_budget;
mod postgres;
mod read;
mod rollup;
mod schema;
mod sink;
mod types;
mod uptime;
mod write;
mod writer;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use rusqlite::Connection;

pub use actions::{ActionKind, ActionRecord};
pub use error::StoreError;
pub use history_store::{HistoryStore, SqliteHistory};
pub use outbox::{AlertRecord, OutboxRow, Silence};
pub use overview::History;
pub use postgres::{
    Fence, Held, MIGRATION_LOCK, PG_CONNECTIONS, PG_SCHEMA_VERSION, PG_TIMEOUT, PgStore, PgWriter,
    Replica,
};
pub use rollup::{KEEP_PINGS, MINUTE_ROLLUP_DAYS, SETTLE};
pub use schema::{BUSY_TIMEOUT, DB_FILE, SCHEMA_VERSION};
pub use sink::RecordWriter;
pub use types::{
    Bucket, CheckResult, Flags, Maintenance, Ping, PingKind, Rollup, TargetState, TimelineState,
    Transition, Uptime,
};
pub use writer::{Writer, WriterConfig, WriterStats};

use write::Batch;

/// One connection to the history database.
///
/// Every method takes `&self` and is safe to call from several threads (calls on one `Store`
/// take turns); methods block on SQLite, so async code calls them through
/// `tokio::task::spawn_blocking` or writes through a [`Writer`].
pub struct Store {
    inner: Mutex<Inner>,
    path: PathBuf,
    read_only: bool,
}

/// The connection and the target ids it has seen committed.
pub(crate) struct Inner {
    pub(crate) conn: Connection,
    pub(crate) ids: HashMap<String, i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `data_dir`, creating the directory and `vitals.db` if needed,
    /// switching to WAL with `synchronous=NORMAL`, and migrating the schema to
    /// [`SCHEMA_VERSION`].
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        let conn = schema::open_read_write(data_dir)?;
        Ok(Self::new(conn, data_dir, false))
    }

    /// Opens a read-only connection to a store that [`Store::open`] has created. Write methods
    /// on it fail with [`StoreError::ReadOnly`].
    pub fn open_read_only(data_dir: &Path) -> Result<Store, StoreError> {
        let conn = schema::open_read_only(data_dir)?;
        Ok(Self::new(conn, data_dir, true))
    }

    fn new(conn: Connection, data_dir: &Path, read_only: bool) -> Store {
        Store {
            inner: Mutex::new(Inner {
                conn,
                ids: HashMap::new(),
            }),
            path: schema::db_path(data_dir),
            read_only,
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this connection was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Records one transition, committed before this returns; returns its id.
    pub fn record_transition(&self, t: &Transition) -> Result<i64, StoreError> {
        self.with_batch(|b| b.transition(t))
    }

    /// Records a batch of results in one transaction: all of them, or none if one is refused.
    pub fn record_results(&self, batch: &[CheckResult]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.with_batch(|b| b.results(batch))
    }

    /// Upserts each target's current state, in one transaction. Flags are not written (see
    /// [`TargetState::flags`]); use [`Store::set_flags`].
    pub fn save_states(&self, states: &[TargetState]) -> Result<(), StoreError> {
        if states.is_empty() {
            return Ok(());
        }
        self.with_batch(|b| b.states(states))
    }

    /// Every target with a saved state or flags, by target id.
    pub fn load_states(&self) -> Result<Vec<TargetState>, StoreError> {
        read::load_states(&self.lock().conn)
    }

    /// The latest `limit` results of `target`, newest first (empty for an unknown target).
    pub fn recent_results(
        &self,
        target: &str,
        limit: usize,
    ) -> Result<Vec<CheckResult>, StoreError> {
        read::recent_results(&self.lock().conn, target, limit)
    }

    /// The latest `limit` transitions of `target`, newest first.
    pub fn transitions(&self, target: &str, limit: usize) -> Result<Vec<Transition>, StoreError> {
        read::transitions(&self.lock().conn, target, limit)
    }

    /// `target`'s time-weighted uptime over the windows ending at `now` (see [`Uptime`]).
    pub fn uptime(&self, target: &str, now: SystemTime) -> Result<Uptime, StoreError> {
        uptime::uptime(&self.lock().conn, target, now)
    }

    /// Every target's uptime in two queries, whatever the number of targets. Targets with no
    /// transition at all are absent (their uptime would be all `None`).
    pub fn uptimes(&self, now: SystemTime) -> Result<HashMap<String, Uptime>, StoreError> {
        uptime::uptimes(&self.lock().conn, now)
    }

    /// Rolls raw results of completed buckets up into minute, hour and day rollups, then
    /// deletes raw results older than `raw_days` (at least 1, and never before all three
    /// widths covered them), hour and day rollups older than `rollup_days`, minute rollups
    /// older than `min(rollup_days, MINUTE_ROLLUP_DAYS)`, transitions older than `rollup_days`
    /// (each target keeps its last older one), pings older than `raw_days` (each target
    /// keeps its latest [`KEEP_PINGS`]), and alerts, delivered or cancelled outbox rows and
    /// recovery log rows older than `rollup_days` (a pending delivery is never deleted).
    ///
    /// Idempotent and crash-safe: run it as often as you like, and a crash in the middle is
    /// repaired by the next run. It works in short transactions; run it on its own `Store`.
    pub fn rollup_and_prune(
        &self,
        now: SystemTime,
        raw_days: u32,
        rollup_days: u32,
    ) -> Result<Maintenance, StoreError> {
        rollup::rollup_and_prune(&mut self.lock().conn, now, raw_days, rollup_days)
    }

    /// `target`'s rollups of width `bucket` that start in `[from, to)`, oldest first.
    pub fn rollups(
        &self,
        target: &str,
        bucket: Bucket,
        from: SystemTime,
        to: SystemTime,
    ) -> Result<Vec<Rollup>, StoreError> {
        read::rollups(&self.lock().conn, target, bucket, from, to)
    }

    /// The up/down history of `targets` in two queries, however many: uptime over 24 h and
    /// 30 d, and `count` cells of width `cell` ending with the one `now` is in (the dashboard's
    /// strips and 90-day bars). Every id asked for is in the answer.
    pub fn histories(
        &self,
        targets: &[String],
        now: SystemTime,
        cell: Bucket,
        count: usize,
    ) -> Result<HashMap<String, History>, StoreError> {
        overview::histories(&self.lock().conn, targets, now, cell, count)
    }

    /// Records one ping, committed before this returns.
    pub fn record_ping(&self, p: &Ping) -> Result<(), StoreError> {
        self.with_batch(|b| b.ping(p))
    }

    /// The latest `limit` pings of `target`, newest first.
    pub fn last_pings(&self, target: &str, limit: usize) -> Result<Vec<Ping>, StoreError> {
        read::last_pings(&self.lock().conn, target, limit)
    }

    /// Sets `target`'s operator flags (a target never saved gets a state of `unknown`).
    pub fn set_flags(&self, target: &str, flags: &Flags) -> Result<(), StoreError> {
        self.with_batch(|b| b.flags(target, flags))
    }

    /// SQLite's `PRAGMA integrity_check`: `"ok"`, or the problems found, one per line.
    pub fn integrity_check(&self) -> Result<String, StoreError> {
        read::integrity_check(&self.lock().conn)
    }

    /// Runs `f` in one write transaction and commits it.
    pub(crate) fn with_batch<T>(
        &self,
        f: impl FnOnce(&mut Batch<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.read_only {
            return Err(StoreError::ReadOnly {
                path: self.path.clone(),
            });
        }
        let mut inner = self.lock();
        let mut batch = Batch::begin(&mut inner)?;
        let value = f(&mut batch)?;
        batch.commit()?;
        Ok(value)
    }

    /// [`Store::with_batch`] for writes that need only the transaction.
    pub(crate) fn with_tx<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.with_batch(|batch| f(batch.tx()))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock dropped its transaction, which rolled back: the
        // connection is consistent, so poisoning carries no information here.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
