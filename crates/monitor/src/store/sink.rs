//! [`RecordWriter`]: where the record loop writes — the SQLite [`Writer`] thread, or the
//! PostgreSQL [`PgWriter`] task — behind one set of methods, so `serve/persist.rs` does not
//! know which store it feeds.
//!
//! What this is not: reads (see [`HistoryStore`](super::HistoryStore)), or a choice of store
//! (`serve.rs` makes it from `server.store`).

use super::WriterStats;
use super::{CheckResult, Flags, PgWriter, Ping, StoreError, TargetState, Transition, Writer};

/// The record loop's writer, whichever store is configured.
#[derive(Debug, Clone)]
pub enum RecordWriter {
    /// SQLite in the data directory.
    Sqlite(Writer),
    /// PostgreSQL shared by replicas.
    Postgres(PgWriter),
}

impl RecordWriter {
    /// Records a transition and waits for the commit.
    pub async fn transition(&self, t: Transition) -> Result<i64, StoreError> {
        match self {
            RecordWriter::Sqlite(w) => w.transition(t).await,
            RecordWriter::Postgres(w) => w.transition(t).await,
        }
    }

    /// Saves states (flags untouched) and waits for the commit.
    pub async fn save_states(&self, states: Vec<TargetState>) -> Result<(), StoreError> {
        match self {
            RecordWriter::Sqlite(w) => w.save_states(states).await,
            RecordWriter::Postgres(w) => w.save_states(states).await,
        }
    }

    /// Sets a target's flags and waits for the commit.
    pub async fn set_flags(&self, target: String, flags: Flags) -> Result<(), StoreError> {
        match self {
            RecordWriter::Sqlite(w) => w.set_flags(target, flags).await,
            RecordWriter::Postgres(w) => w.set_flags(target, flags).await,
        }
    }

    /// Queues results; never blocks.
    pub fn results(&self, batch: Vec<CheckResult>) {
        match self {
            RecordWriter::Sqlite(w) => w.results(batch),
            RecordWriter::Postgres(w) => w.results(batch),
        }
    }

    /// Queues pings; never blocks.
    pub fn pings(&self, batch: Vec<Ping>) {
        match self {
            RecordWriter::Sqlite(w) => w.pings(batch),
            RecordWriter::Postgres(w) => w.pings(batch),
        }
    }

    /// Waits until everything sent before is written.
    pub async fn flush(&self) -> Result<(), StoreError> {
        match self {
            RecordWriter::Sqlite(w) => w.flush().await,
            RecordWriter::Postgres(w) => w.flush().await,
        }
    }

    /// What became of results and pings so far.
    pub fn stats(&self) -> WriterStats {
        match self {
            RecordWriter::Sqlite(w) => w.stats(),
            RecordWriter::Postgres(w) => w.stats(),
        }
    }
}
