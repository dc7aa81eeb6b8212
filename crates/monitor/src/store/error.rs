//! The store's one error type, [`StoreError`].
//!
//! Every message says what failed, on which input or file, and what to do about it. What this
//! is not: a place for retry policy. The store never retries on its own (SQLite already waits
//! up to the busy timeout for a lock); the caller decides.

use std::path::PathBuf;

use rusqlite::ErrorCode;

/// Everything that can go wrong while opening, writing or reading the history store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The data directory could not be created.
    #[error(
        "could not create the data directory {path}: {source}; check that its parent exists \
         and is writable, or choose another data directory"
    )]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The database file could not be opened or configured.
    #[error("could not open the database {path}: {source}; {hint}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
        /// What to do about it.
        hint: &'static str,
    },

    /// The file system refused write-ahead logging (some network file systems do).
    #[error(
        "the database {path} could not be switched to WAL mode (SQLite kept {mode:?}); put the \
         data directory on a local file system"
    )]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite reported instead of `wal`.
        mode: String,
    },

    /// The database was written by a newer vitals.
    #[error(
        "the database {path} has schema version {found}, newer than the {supported} this \
         vitals understands; upgrade vitals or point it at another data directory"
    )]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The newest version this build can read and write.
        supported: i64,
    },

    /// A read-only connection found no schema: nobody has opened the store for writing yet.
    #[error(
        "the database {path} has no vitals schema yet (version {found}, want {supported}); \
         open it with Store::open (read-write) before opening read-only connections"
    )]
    NotInitialized {
        /// The database file.
        path: PathBuf,
        /// `PRAGMA user_version` in the file.
        found: i64,
        /// The version a read-only connection expects.
        supported: i64,
    },

    /// A statement failed.
    #[error("{what}: {source}{}", busy_hint(source))]
    Sqlite {
        /// What was being done, e.g. "could not insert a transition".
        what: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },

    /// A grouped commit failed; every write waiting on it gets this error.
    #[error("could not commit to the database: {reason}; the writes in this group are lost")]
    Commit {
        /// The underlying error, as text (one SQLite error cannot be shared by many waiters).
        reason: String,
    },

    /// A time given to the store cannot be kept as unix milliseconds.
    #[error(
        "{field} is {problem}; the store keeps times as milliseconds since 1970-01-01 UTC, so \
         check the system clock or the time computed by the caller"
    )]
    Time {
        /// Which input, e.g. "transition time".
        field: &'static str,
        /// "before 1970-01-01" or "too far in the future".
        problem: &'static str,
    },

    /// A target id was empty.
    #[error("{what} has an empty target id; every row must name the target it belongs to")]
    EmptyTarget {
        /// Which input, e.g. "a check result".
        what: &'static str,
    },

    /// A row holds a value this version cannot have written.
    #[error(
        "the database holds {what}, which vitals never writes; run integrity_check and restore \
         the data directory from a backup if it is damaged"
    )]
    Corrupt {
        /// The offending value and where it was found.
        what: String,
    },

    /// A write was attempted on a connection opened with
    /// [`Store::open_read_only`](super::Store::open_read_only).
    #[error(
        "{path} was opened read-only; write through the Store opened with Store::open (or its \
         Writer)"
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },

    /// The [`Writer`](super::Writer)'s thread has stopped (it was closed, or could not start).
    #[error(
        "the store's writer thread is not running (closed, or it could not be started); \
         nothing was written — spawn a new Writer"
    )]
    WriterClosed,

    /// `server.store` is not a PostgreSQL URL the driver can read.
    #[error(
        "server.store {url:?} is not a PostgreSQL URL ({source}); write it as \
         postgres://USER:PASSWORD@HOST:5432/DATABASE"
    )]
    PostgresUrl {
        /// The URL, with its password taken out.
        url: String,
        /// The driver's reason.
        #[source]
        source: tokio_postgres::Error,
    },

    /// A PostgreSQL statement failed, or the server could not be reached.
    #[error("{what}: {}{}", pg_reason(source), pg_hint(source))]
    Postgres {
        /// What was being done, e.g. "could not insert a transition".
        what: &'static str,
        /// The underlying error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// No pooled PostgreSQL connection could be had in time.
    #[error(
        "{what}: no connection to PostgreSQL ({reason}); check that the server at \
         server.store is up and reachable"
    )]
    Unavailable {
        /// What was being done.
        what: &'static str,
        /// The pool's reason, as text.
        reason: String,
    },

    /// The PostgreSQL schema was written by a newer vitals.
    #[error(
        "the PostgreSQL store has schema version {found}, newer than the {supported} this \
         vitals understands; upgrade every replica to the same vitals"
    )]
    NewerPgSchema {
        /// `schema_version.version` in the database.
        found: i64,
        /// The newest version this build can read and write.
        supported: i64,
    },

    /// A write for a shard carried an epoch the shard's lease no longer has: another replica
    /// owns the shard now, and this write is refused (fencing).
    #[error(
        "shard {shard}'s lease is no longer ours at epoch {epoch} (another replica took it); \
         the write was refused"
    )]
    Fenced {
        /// The shard.
        shard: i32,
        /// The epoch the writer held.
        epoch: i64,
    },
}

impl StoreError {
    pub(crate) fn sqlite(what: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
        move |source| StoreError::Sqlite { what, source }
    }

    pub(crate) fn postgres(what: &'static str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
        move |source| StoreError::Postgres { what, source }
    }

    pub(crate) fn pool(
        what: &'static str,
    ) -> impl FnOnce(deadpool_postgres::PoolError) -> StoreError {
        move |error| match error {
            deadpool_postgres::PoolError::Backend(source) => StoreError::Postgres { what, source },
            other => StoreError::Unavailable {
                what,
                reason: other.to_string(),
            },
        }
    }

    /// Whether the store could not be reached at all (as opposed to refusing the input):
    /// what a spool waits out.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Unavailable { .. } => true,
            StoreError::Postgres { source, .. } => source.is_closed() || source.code().is_none(),
            _ => false,
        }
    }
}

/// The server's own message when it sent one (tokio-postgres' Display says only "db error").
fn pg_reason(source: &tokio_postgres::Error) -> String {
    match source.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => vitals_probes::error_chain(source),
    }
}

/// A hint for the PostgreSQL errors an operator can act on.
fn pg_hint(source: &tokio_postgres::Error) -> &'static str {
    use tokio_postgres::error::SqlState;
    match source.code() {
        Some(c) if *c == SqlState::INSUFFICIENT_PRIVILEGE => {
            "; the user in server.store needs CREATE on the database (for migrations) and \
             read-write access to its tables"
        }
        Some(c) if *c == SqlState::DISK_FULL => "; PostgreSQL's disk is full",
        None if source.is_closed() => "; the connection to PostgreSQL closed",
        _ => "",
    }
}

/// A hint appended to errors that mean "another connection held the lock too long".
fn busy_hint(source: &rusqlite::Error) -> &'static str {
    match source.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            "; another connection held the write lock longer than the busy timeout — is a \
             second monitor using the same data directory?"
        }
        Some(ErrorCode::DiskFull) => "; the disk is full — free space or lower the retention",
        Some(ErrorCode::ReadOnly) => "; the database is read-only — check file permissions",
        _ => "",
    }
}
