//! Opening the database: file location, connection settings, and schema migrations.
//!
//! Every connection gets the same settings (busy timeout; WAL and `synchronous=NORMAL` on
//! read-write connections), and the schema is brought up to date by numbered migrations
//! tracked in `PRAGMA user_version`, each applied in its own transaction so a crash during an
//! upgrade leaves the previous version intact. What this is not: the queries (see `write`,
//! `read`, `uptime`, `rollup`). `docs/STORAGE.md` explains every table.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::StoreError;

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "vitals.db";

/// How long a statement waits for another connection's write lock before failing.
///
/// Every write transaction in the store is short (the writer commits at most a batch of
/// results; maintenance works in chunks), so waiting this long means something else is wrong,
/// typically a second monitor on the same directory, and the error says so.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The WAL file is truncated back to this size after a checkpoint, so one burst does not
/// leave a large file behind for good.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Migration `i` takes the schema from version `i` to `i + 1`. Never edit a released entry:
/// add a new one.
const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    -- Target ids are interned: the large tables store a small integer, not the name.
    CREATE TABLE targets (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );

    CREATE TABLE transitions (
        id           INTEGER PRIMARY KEY,
        target       INTEGER NOT NULL REFERENCES targets(id),
        at           INTEGER NOT NULL,
        from_state   TEXT NOT NULL,
        to_state     TEXT NOT NULL,
        reason       TEXT NOT NULL,
        cause_kind   TEXT,
        cause_output TEXT
    );
    CREATE INDEX transitions_by_target ON transitions(target, at);

    -- The biggest table by far: keyed by (target, at) without a rowid, so the key is the
    -- table and no second index is needed. seq tells apart results of one target stamped in
    -- the same millisecond (almost always 0).
    CREATE TABLE results (
        target      INTEGER NOT NULL REFERENCES targets(id),
        at          INTEGER NOT NULL,
        seq         INTEGER NOT NULL,
        kind        INTEGER NOT NULL,
        duration_us INTEGER NOT NULL,
        output      TEXT,
        PRIMARY KEY (target, at, seq)
    ) WITHOUT ROWID;

    -- bucket is the bucket's width in seconds (60, 3600, 86400).
    CREATE TABLE rollups (
        target   INTEGER NOT NULL REFERENCES targets(id),
        bucket   INTEGER NOT NULL,
        start    INTEGER NOT NULL,
        count    INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        p50_us   INTEGER NOT NULL,
        p95_us   INTEGER NOT NULL,
        max_us   INTEGER NOT NULL,
        PRIMARY KEY (target, bucket, start)
    ) WITHOUT ROWID;

    CREATE TABLE states (
        target                INTEGER PRIMARY KEY REFERENCES targets(id),
        state                 TEXT NOT NULL,
        since                 INTEGER,
        flapping              INTEGER NOT NULL DEFAULT 0,
        consecutive_failures  INTEGER NOT NULL DEFAULT 0,
        consecutive_successes INTEGER NOT NULL DEFAULT 0,
        paused                INTEGER NOT NULL DEFAULT 0,
        maintenance_until     INTEGER
    );

    CREATE TABLE pings (
        id          INTEGER PRIMARY KEY,
        target      INTEGER NOT NULL REFERENCES targets(id),
        at          INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        exit_status INTEGER,
        rid         TEXT,
        body        TEXT,
        duration_us INTEGER,
        source      TEXT
    );
    CREATE INDEX pings_by_target ON pings(target, at);

    -- How far each rollup width has been computed: buckets before rolled_until are done.
    CREATE TABLE rollup_progress (
        bucket        INTEGER PRIMARY KEY,
        rolled_until  INTEGER NOT NULL
    );
    ",
    // Version 2: notifications (see store/outbox.rs and docs/ALERTS.md).
    "
    -- Every alert the policy created, sent or muted; payload is the alert's JSON.
    CREATE TABLE alerts (
        key      TEXT PRIMARY KEY,
        target   TEXT NOT NULL,
        kind     TEXT NOT NULL,
        at       INTEGER NOT NULL,
        payload  TEXT NOT NULL,
        muted_by TEXT
    );
    CREATE INDEX alerts_by_time ON alerts(at);

    -- One row per alert and channel, written before any delivery. key (alert key @ channel)
    -- is the Idempotency-Key receivers see. A row is pending while delivered and cancelled
    -- are both NULL; claimed_until leases it to one delivery attempt.
    CREATE TABLE outbox (
        id            INTEGER PRIMARY KEY,
        key           TEXT NOT NULL UNIQUE,
        alert_key     TEXT NOT NULL,
        channel       TEXT NOT NULL,
        payload       TEXT NOT NULL,
        created       INTEGER NOT NULL,
        due           INTEGER NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0,
        last_error    TEXT,
        claimed_until INTEGER,
        delivered     INTEGER,
        cancelled     TEXT
    );
    CREATE INDEX outbox_pending ON outbox(channel, due)
        WHERE delivered IS NULL AND cancelled IS NULL;
    CREATE INDEX outbox_by_alert ON outbox(alert_key);

    -- Silences created through the API; targets and groups are JSON arrays.
    CREATE TABLE silences (
        id      INTEGER PRIMARY KEY,
        targets TEXT NOT NULL,
        groups_ TEXT NOT NULL,
        created INTEGER NOT NULL,
        until   INTEGER NOT NULL,
        comment TEXT NOT NULL
    );

    -- What the notification policy remembers of each target across restarts, as JSON.
    CREATE TABLE notify_state (
        target TEXT PRIMARY KEY,
        state  TEXT NOT NULL
    );
    ",
    // Version 3: the recovery log (see store/actions.rs and docs/RECOVERY.md).
    "
    -- Every recovery action run (kind 'attempt'), every spent budget ('escalation') and every
    -- reset of a budget ('reset'). Few rows: a handful per outage.
    CREATE TABLE actions (
        id            INTEGER PRIMARY KEY,
        target        TEXT NOT NULL,
        at            INTEGER NOT NULL,
        kind          TEXT NOT NULL,
        trigger_state TEXT,
        action        TEXT NOT NULL,
        attempt       INTEGER NOT NULL,
        duration_us   INTEGER,
        exit_code     INTEGER,
        http_status   INTEGER,
        output        TEXT,
        result        TEXT NOT NULL
    );
    CREATE INDEX actions_by_target ON actions(target, at);
    ",
    // Version 4: dead letters (issue 11, item 11). A row the channel refused for good, or
    // that failed `max_attempts` times, gets `dead` (when) and leaves the pending set, so
    // the rows behind it go out; `last_error` says why.
    "
    ALTER TABLE outbox ADD COLUMN dead INTEGER;
    DROP INDEX outbox_pending;
    CREATE INDEX outbox_pending ON outbox(channel, due)
        WHERE delivered IS NULL AND cancelled IS NULL AND dead IS NULL;
    ",
    // Version 5: alert groups (see notify/group.rs and docs/ALERTS.md, "Groups").
    "
    -- The group whose notifications list an alert (a member), or that a notification is of.
    ALTER TABLE alerts ADD COLUMN group_key TEXT;

    -- The open alert groups, as JSON, so that a restart carries on with their members.
    CREATE TABLE notify_groups (
        key   TEXT PRIMARY KEY,
        state TEXT NOT NULL
    );
    ",
];

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub(crate) fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Opens (creating if needed) the read-write connection and migrates it.
pub(crate) fn open_read_write(data_dir: &Path) -> Result<Connection, StoreError> {
    create_private_dir(data_dir).map_err(|source| StoreError::CreateDir {
        path: data_dir.to_path_buf(),
        source,
    })?;
    let path = db_path(data_dir);
    let open_err = |hint: &'static str| {
        let path = path.clone();
        move |source| StoreError::Open { path, source, hint }
    };
    let mut conn = Connection::open(&path).map_err(open_err(
        "check that the data directory is writable and the file is a SQLite database",
    ))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(open_err("could not set the busy timeout"))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(open_err(
            "is another process holding the database open in a mode other than WAL?",
        ))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::NoWal { path, mode });
    }
    // In WAL mode NORMAL syncs only at checkpoints: a commit is in the OS's page cache when
    // it returns, which survives the process being killed but not the machine losing power.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_err("could not set synchronous=NORMAL"))?;
    conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)
        .map_err(open_err("could not set journal_size_limit"))?;
    // Each target's newest results sit on a leaf page of their own, so a second of results
    // from 10,000 targets touches ~10,000 pages: with SQLite's default 2 MB cache, every
    // insert read its page back from the file (bench/monitor.sh PROFILE=1). The cache grows
    // only as pages are touched; idle heartbeat targets cost nothing here.
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .map_err(open_err("could not set cache_size"))?;
    // The writer prepares more distinct statements than rusqlite's default cache of 16
    // holds; a miss re-parses the SQL.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    migrate(&mut conn, &path)?;
    Ok(conn)
}

/// Creates the data directory readable by the monitor's user alone (0700: it holds ping
/// bodies, alert payloads and the generated ping ids, issue 11 item 12), whatever the umask;
/// its parents as the umask says. An existing directory is left as it is, with a warning when
/// others may read it.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    match builder.create(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(dir)?.permissions().mode();
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        dir = %dir.display(),
                        mode = format!("{:o}", mode & 0o777),
                        "the data directory is readable by other users; `chmod 700` it"
                    );
                }
            }
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The write connection's page cache, in KiB as `PRAGMA cache_size` takes it (negative).
const WRITER_CACHE_KIB: i64 = -64 * 1024;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// Opens a read-only connection to a store that a read-write connection created.
pub(crate) fn open_read_only(data_dir: &Path) -> Result<Connection, StoreError> {
    let path = db_path(data_dir);
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let open_err = |hint: &'static str| {
        let path = path.clone();
        move |source| StoreError::Open { path, source, hint }
    };
    let conn = Connection::open_with_flags(&path, flags).map_err(open_err(
        "a read-only connection needs the database to exist: open the store read-write first",
    ))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(open_err("could not set the busy timeout"))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let found = user_version(&conn, &path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path,
            found,
            supported: SCHEMA_VERSION,
        });
    }
    if found < SCHEMA_VERSION {
        return Err(StoreError::NotInitialized {
            path,
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

fn user_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(|source| StoreError::Open {
            path: path.to_path_buf(),
            source,
            hint: "could not read the schema version; is this a SQLite database?",
        })
}

/// Applies the migrations the file has not seen, one transaction each.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let found = user_version(conn, path)?;
    if found > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    let start = usize::try_from(found).map_err(|_| StoreError::Corrupt {
        what: format!("PRAGMA user_version = {found} in {}", path.display()),
    })?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(start) {
        let version = index as i64 + 1;
        // IMMEDIATE takes the write lock up front: two monitors starting together cannot
        // both read version N and both apply migration N.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("could not start a schema migration"))?;
        let current = user_version(&tx, path)?;
        if current >= version {
            continue;
        }
        tx.execute_batch(sql)
            .map_err(StoreError::sqlite("could not apply a schema migration"))?;
        tx.pragma_update(None, "user_version", version)
            .map_err(StoreError::sqlite("could not record the schema version"))?;
        tx.commit()
            .map_err(StoreError::sqlite("could not commit a schema migration"))?;
        tracing::debug!(path = %path.display(), version, "store schema migrated");
    }
    // One line, and only when an existing store changed: a new store is the start-up line's
    // business, and a line per migration step said nothing an operator acts on (issue 14).
    if found > 0 && found < SCHEMA_VERSION {
        tracing::info!(path = %path.display(), from = found, to = SCHEMA_VERSION, "store schema upgraded");
    }
    Ok(())
}
