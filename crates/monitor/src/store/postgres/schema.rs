//! The PostgreSQL schema and its migrations, applied at start, safe when replicas start
//! together.
//!
//! Versions live in `schema_version` (one row). Every start runs [`migrate`]: in one
//! transaction it takes a transaction-scoped advisory lock ([`MIGRATION_LOCK`]), reads the
//! version, applies the missing migrations in order and writes the new version. A second
//! replica starting at the same moment waits on the lock, then finds the schema current and
//! applies nothing; a crash in the middle rolls the whole upgrade back (PostgreSQL's DDL is
//! transactional). A database whose version is newer than this build's is refused.
//!
//! The tables follow SQLite's (docs/STORAGE.md), with two differences: `results` and `pings`
//! are keyed by an identity column (no `seq` to compute: several results of one target in one
//! millisecond simply get different ids), and times are `BIGINT` unix milliseconds as in
//! SQLite, so the two stores encode everything alike (`store::codec`).
//!
//! What this is not: the queries (`write.rs`, `read.rs`), or the SQLite schema
//! (`store/schema.rs`).

use deadpool_postgres::Client;

use crate::store::StoreError;

/// The key of the advisory lock held while migrating: "vitals" in ASCII, so it is unlikely to
/// collide with another application's lock in a shared database.
pub const MIGRATION_LOCK: i64 = 0x7669_7461_6c73;

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit a released entry:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    // Version 1: the history, as in SQLite.
    "
    CREATE TABLE targets (
        id   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );

    CREATE TABLE transitions (
        id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        target       BIGINT NOT NULL REFERENCES targets(id),
        at           BIGINT NOT NULL,
        from_state   TEXT NOT NULL,
        to_state     TEXT NOT NULL,
        reason       TEXT NOT NULL,
        cause_kind   TEXT,
        cause_output TEXT
    );
    CREATE INDEX transitions_by_target ON transitions (target, at);

    CREATE TABLE results (
        id          BIGINT GENERATED ALWAYS AS IDENTITY,
        target      BIGINT NOT NULL REFERENCES targets(id),
        at          BIGINT NOT NULL,
        kind        SMALLINT NOT NULL,
        duration_us BIGINT NOT NULL,
        output      TEXT,
        PRIMARY KEY (target, at, id)
    );

    CREATE TABLE states (
        target                BIGINT PRIMARY KEY REFERENCES targets(id),
        state                 TEXT NOT NULL,
        since                 BIGINT,
        flapping              BOOLEAN NOT NULL DEFAULT FALSE,
        consecutive_failures  BIGINT NOT NULL DEFAULT 0,
        consecutive_successes BIGINT NOT NULL DEFAULT 0,
        paused                BOOLEAN NOT NULL DEFAULT FALSE,
        maintenance_until     BIGINT
    );

    CREATE TABLE pings (
        id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        target      BIGINT NOT NULL REFERENCES targets(id),
        at          BIGINT NOT NULL,
        kind        TEXT NOT NULL,
        exit_status SMALLINT,
        rid         TEXT,
        body        TEXT,
        duration_us BIGINT,
        source      TEXT
    );
    CREATE INDEX pings_by_target ON pings (target, at);
    ",
    // Version 2: replicas and the leases of their shards (docs/HA.md). Times are the
    // server's clock in unix milliseconds, so replicas' clocks need not agree.
    "
    CREATE TABLE replicas (
        id         TEXT PRIMARY KEY,
        api        TEXT,
        started_ms BIGINT NOT NULL,
        seen_ms    BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL
    );

    CREATE TABLE leases (
        shard      INTEGER PRIMARY KEY,
        owner      TEXT,
        expires_ms BIGINT NOT NULL DEFAULT 0,
        epoch      BIGINT NOT NULL DEFAULT 0
    );
    INSERT INTO leases (shard) SELECT generate_series(0, 255);
    ",
];

/// The schema version this build writes.
pub const PG_SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the schema up to [`PG_SCHEMA_VERSION`] under the migration lock; returns the
/// version found before.
pub(crate) async fn migrate(client: &mut Client) -> Result<i64, StoreError> {
    const WHAT: &str = "could not migrate the PostgreSQL schema";
    let tx = client
        .transaction()
        .await
        .map_err(StoreError::postgres(WHAT))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::postgres(WHAT))?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        .await
        .map_err(StoreError::postgres(WHAT))?;
    let found: i64 = match tx
        .query_opt("SELECT version FROM schema_version", &[])
        .await
        .map_err(StoreError::postgres(WHAT))?
    {
        Some(row) => row.try_get(0).map_err(StoreError::postgres(WHAT))?,
        None => {
            tx.execute("INSERT INTO schema_version (version) VALUES (0)", &[])
                .await
                .map_err(StoreError::postgres(WHAT))?;
            0
        }
    };
    if found > PG_SCHEMA_VERSION {
        return Err(StoreError::NewerPgSchema {
            found,
            supported: PG_SCHEMA_VERSION,
        });
    }
    let from = usize::try_from(found).map_err(|_| StoreError::Corrupt {
        what: format!("schema_version.version = {found}"),
    })?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from) {
        tx.batch_execute(sql)
            .await
            .map_err(StoreError::postgres(WHAT))?;
        tracing::info!(version = i + 1, "migrated the PostgreSQL store");
    }
    tx.execute(
        "UPDATE schema_version SET version = $1",
        &[&PG_SCHEMA_VERSION],
    )
    .await
    .map_err(StoreError::postgres(WHAT))?;
    tx.commit().await.map_err(StoreError::postgres(WHAT))?;
    Ok(found)
}
