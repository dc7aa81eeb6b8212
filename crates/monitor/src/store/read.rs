//! Reading: recent results, transitions, pings, rollups, saved states, the integrity check.
//!
//! Every query here is served by an index (`docs/STORAGE.md` lists which) and names targets
//! by joining `targets`, so reads work on read-only connections and never create a target.
//! Lists of recent things come newest first; rollups come oldest first (they are drawn as a
//! time series). What this is not: uptime (see `uptime`) or anything that writes.

use std::time::SystemTime;

use rusqlite::{Connection, Row, params};

use super::codec::{self, millis};
use super::{Bucket, CheckResult, Flags, Ping, Rollup, StoreError, TargetState, Transition};

/// SQLite takes limits as i64; a `usize` beyond that is "everything".
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Runs `sql` with `params` and decodes each row with `decode`.
pub(super) fn collect<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    what: &'static str,
    decode: impl Fn(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(sql).map_err(StoreError::sqlite(what))?;
    let mut rows = stmt.query(params).map_err(StoreError::sqlite(what))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(what))? {
        out.push(decode(row)?);
    }
    Ok(out)
}

/// Reads column `i` of `row`, naming the query in the error.
fn col<T: rusqlite::types::FromSql>(
    row: &Row<'_>,
    i: usize,
    what: &'static str,
) -> Result<T, StoreError> {
    row.get(i).map_err(StoreError::sqlite(what))
}

pub(crate) fn recent_results(
    conn: &Connection,
    target: &str,
    n: usize,
) -> Result<Vec<CheckResult>, StoreError> {
    const WHAT: &str = "could not read recent results";
    collect(
        conn,
        "SELECT r.at, r.kind, r.duration_us, r.output
           FROM targets t JOIN results r ON r.target = t.id
          WHERE t.name = ?1
          ORDER BY r.at DESC, r.seq DESC
          LIMIT ?2",
        params![target, limit(n)],
        WHAT,
        |row| {
            Ok(CheckResult {
                target: target.to_owned(),
                at: codec::time(col(row, 0, WHAT)?, "results.at")?,
                kind: codec::kind(col(row, 1, WHAT)?)?,
                duration: codec::duration(col(row, 2, WHAT)?, "results.duration_us")?,
                output: col(row, 3, WHAT)?,
            })
        },
    )
}

pub(crate) fn transitions(
    conn: &Connection,
    target: &str,
    n: usize,
) -> Result<Vec<Transition>, StoreError> {
    const WHAT: &str = "could not read transitions";
    collect(
        conn,
        "SELECT x.id, x.at, x.from_state, x.to_state, x.reason, x.cause_kind, x.cause_output
           FROM targets t JOIN transitions x ON x.target = t.id
          WHERE t.name = ?1
          ORDER BY x.at DESC, x.id DESC
          LIMIT ?2",
        params![target, limit(n)],
        WHAT,
        |row| {
            Ok(Transition {
                id: Some(col(row, 0, WHAT)?),
                target: target.to_owned(),
                at: codec::time(col(row, 1, WHAT)?, "transitions.at")?,
                from: codec::timeline_state(
                    &col::<String>(row, 2, WHAT)?,
                    "transitions.from_state",
                )?,
                to: codec::timeline_state(&col::<String>(row, 3, WHAT)?, "transitions.to_state")?,
                reason: col(row, 4, WHAT)?,
                cause_kind: col(row, 5, WHAT)?,
                cause_output: col(row, 6, WHAT)?,
            })
        },
    )
}

pub(crate) fn last_pings(
    conn: &Connection,
    target: &str,
    n: usize,
) -> Result<Vec<Ping>, StoreError> {
    const WHAT: &str = "could not read pings";
    collect(
        conn,
        "SELECT p.at, p.kind, p.exit_status, p.rid, p.body, p.duration_us, p.source
           FROM targets t JOIN pings p ON p.target = t.id
          WHERE t.name = ?1
          ORDER BY p.at DESC, p.id DESC
          LIMIT ?2",
        params![target, limit(n)],
        WHAT,
        |row| {
            let kind: String = col(row, 1, WHAT)?;
            let duration: Option<i64> = col(row, 5, WHAT)?;
            Ok(Ping {
                target: target.to_owned(),
                at: codec::time(col(row, 0, WHAT)?, "pings.at")?,
                kind: codec::ping_kind(&kind, col(row, 2, WHAT)?)?,
                rid: col(row, 3, WHAT)?,
                body: col(row, 4, WHAT)?,
                duration: duration
                    .map(|us| codec::duration(us, "pings.duration_us"))
                    .transpose()?,
                source: col(row, 6, WHAT)?,
            })
        },
    )
}

pub(crate) fn rollups(
    conn: &Connection,
    target: &str,
    bucket: Bucket,
    from: SystemTime,
    to: SystemTime,
) -> Result<Vec<Rollup>, StoreError> {
    const WHAT: &str = "could not read rollups";
    let from = millis(from, "rollup range start")?;
    let to = millis(to, "rollup range end")?;
    collect(
        conn,
        "SELECT u.start, u.count, u.failures, u.p50_us, u.p95_us, u.max_us
           FROM targets t JOIN rollups u ON u.target = t.id
          WHERE t.name = ?1 AND u.bucket = ?2 AND u.start >= ?3 AND u.start < ?4
          ORDER BY u.start",
        params![target, bucket.millis() / 1000, from, to],
        WHAT,
        |row| {
            let count: i64 = col(row, 1, WHAT)?;
            let failures: i64 = col(row, 2, WHAT)?;
            let count_of = |v: i64, column: &str| {
                u64::try_from(v).map_err(|_| StoreError::Corrupt {
                    what: format!("rollups.{column} = {v}"),
                })
            };
            Ok(Rollup {
                start: codec::time(col(row, 0, WHAT)?, "rollups.start")?,
                bucket,
                count: count_of(count, "count")?,
                failures: count_of(failures, "failures")?,
                p50: codec::duration(col(row, 3, WHAT)?, "rollups.p50_us")?,
                p95: codec::duration(col(row, 4, WHAT)?, "rollups.p95_us")?,
                max: codec::duration(col(row, 5, WHAT)?, "rollups.max_us")?,
            })
        },
    )
}

pub(crate) fn load_states(conn: &Connection) -> Result<Vec<TargetState>, StoreError> {
    const WHAT: &str = "could not load target states";
    collect(
        conn,
        "SELECT t.name, s.state, s.since, s.flapping, s.consecutive_failures,
                s.consecutive_successes, s.paused, s.maintenance_until
           FROM states s JOIN targets t ON t.id = s.target
          ORDER BY t.name",
        [],
        WHAT,
        |row| {
            let since: Option<i64> = col(row, 2, WHAT)?;
            let until: Option<i64> = col(row, 7, WHAT)?;
            Ok(TargetState {
                target: col(row, 0, WHAT)?,
                state: codec::state(&col::<String>(row, 1, WHAT)?, "states.state")?,
                since: since
                    .map(|ms| codec::time(ms, "states.since"))
                    .transpose()?,
                flapping: col(row, 3, WHAT)?,
                consecutive_failures: col(row, 4, WHAT)?,
                consecutive_successes: col(row, 5, WHAT)?,
                flags: Flags {
                    paused: col(row, 6, WHAT)?,
                    maintenance_until: until
                        .map(|ms| codec::time(ms, "states.maintenance_until"))
                        .transpose()?,
                },
            })
        },
    )
}

/// `PRAGMA integrity_check`'s rows joined by newlines: `"ok"` when the file is sound.
pub(crate) fn integrity_check(conn: &Connection) -> Result<String, StoreError> {
    const WHAT: &str = "could not run the integrity check";
    let lines = collect(conn, "PRAGMA integrity_check", [], WHAT, |row| {
        col::<String>(row, 0, WHAT)
    })?;
    Ok(lines.join("\n"))
}
