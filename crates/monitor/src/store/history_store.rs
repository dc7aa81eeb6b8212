//! [`HistoryStore`]: the one store interface, with two implementations — SQLite in the data
//! directory ([`SqliteHistory`], the embedded default) and PostgreSQL shared by replicas
//! ([`PgStore`](super::PgStore), `server.store = "postgres://…"`).
//!
//! The interface is what a monitor writes and reads of one target's history: transitions
//! (committed before the call returns), results and pings in batches, saved states and
//! operator flags. It is async because PostgreSQL is reached over the network; the SQLite
//! side runs each call on tokio's blocking pool, as the API already does with [`Store`].
//! The same test suite (`store/tests/suite.rs`) runs against both.
//!
//! What this is not: the SQLite-only parts (rollups and retention, uptime, the outbox, the
//! dashboard's batched histories), which stay methods of [`Store`] until PostgreSQL has them
//! too; or the [`Writer`](super::Writer), the SQLite thread that batches on the engine's
//! behalf.

use std::future::Future;
use std::sync::Arc;

use super::{CheckResult, Flags, Ping, Store, StoreError, TargetState, Transition};

/// A monitor's history, wherever it is kept. Every write returns after it committed.
pub trait HistoryStore: Send + Sync + 'static {
    /// Records one transition; returns its id.
    fn record_transition(
        &self,
        t: Transition,
    ) -> impl Future<Output = Result<i64, StoreError>> + Send;

    /// Records a batch of results in one transaction: all of them, or none if one is refused.
    fn record_results(
        &self,
        batch: Vec<CheckResult>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a batch of pings in one transaction: all of them, or none if one is refused.
    fn record_pings(&self, batch: Vec<Ping>)
    -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Upserts each target's current state; flags are not written (see
    /// [`TargetState::flags`]).
    fn save_states(
        &self,
        states: Vec<TargetState>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Sets `target`'s operator flags (a target never saved gets a state of `unknown`).
    fn set_flags(
        &self,
        target: String,
        flags: Flags,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every target with a saved state or flags, by target id.
    fn load_states(&self) -> impl Future<Output = Result<Vec<TargetState>, StoreError>> + Send;

    /// The latest `limit` transitions of `target`, newest first.
    fn transitions(
        &self,
        target: String,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Transition>, StoreError>> + Send;

    /// The latest `limit` results of `target`, newest first.
    fn recent_results(
        &self,
        target: String,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<CheckResult>, StoreError>> + Send;

    /// The latest `limit` pings of `target`, newest first.
    fn last_pings(
        &self,
        target: String,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Ping>, StoreError>> + Send;
}

/// [`HistoryStore`] on a SQLite [`Store`], each call on tokio's blocking pool.
#[derive(Debug, Clone)]
pub struct SqliteHistory(pub Arc<Store>);

impl SqliteHistory {
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = Arc::clone(&self.0);
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| StoreError::Commit {
                reason: format!("the store's blocking task failed: {e}"),
            })?
    }
}

impl HistoryStore for SqliteHistory {
    async fn record_transition(&self, t: Transition) -> Result<i64, StoreError> {
        self.blocking(move |s| s.record_transition(&t)).await
    }

    async fn record_results(&self, batch: Vec<CheckResult>) -> Result<(), StoreError> {
        self.blocking(move |s| s.record_results(&batch)).await
    }

    async fn record_pings(&self, batch: Vec<Ping>) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        self.blocking(move |s| {
            s.with_batch(|b| {
                let mut first = None;
                b.pings_each(&batch, |e| {
                    first.get_or_insert(e);
                })?;
                first.map_or(Ok(()), Err)
            })
        })
        .await
    }

    async fn save_states(&self, states: Vec<TargetState>) -> Result<(), StoreError> {
        self.blocking(move |s| s.save_states(&states)).await
    }

    async fn set_flags(&self, target: String, flags: Flags) -> Result<(), StoreError> {
        self.blocking(move |s| s.set_flags(&target, &flags)).await
    }

    async fn load_states(&self) -> Result<Vec<TargetState>, StoreError> {
        self.blocking(Store::load_states).await
    }

    async fn transitions(
        &self,
        target: String,
        limit: usize,
    ) -> Result<Vec<Transition>, StoreError> {
        self.blocking(move |s| s.transitions(&target, limit)).await
    }

    async fn recent_results(
        &self,
        target: String,
        limit: usize,
    ) -> Result<Vec<CheckResult>, StoreError> {
        self.blocking(move |s| s.recent_results(&target, limit))
            .await
    }

    async fn last_pings(&self, target: String, limit: usize) -> Result<Vec<Ping>, StoreError> {
        self.blocking(move |s| s.last_pings(&target, limit)).await
    }
}
