//! Reading from PostgreSQL: what [`HistoryStore`](crate::store::HistoryStore) reads, decoded through the
//! same `codec` as SQLite, so a damaged value is a [`StoreError::Corrupt`], never a panic.
//!
//! What this is not: writes (`write.rs`).

use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

use super::PgStore;
use crate::store::codec;
use crate::store::{CheckResult, Flags, Ping, StoreError, TargetState, Transition};

/// `n` as a SQL `LIMIT` (`usize::MAX` means all).
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize, what: &'static str) -> Result<T, StoreError> {
    row.try_get(i).map_err(StoreError::postgres(what))
}

async fn query(
    store: &PgStore,
    what: &'static str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let client = store.client(what).await?;
    let statement = client
        .prepare_cached(sql)
        .await
        .map_err(StoreError::postgres(what))?;
    client
        .query(&statement, params)
        .await
        .map_err(StoreError::postgres(what))
}

pub(super) async fn recent_results(
    store: &PgStore,
    target: &str,
    n: usize,
) -> Result<Vec<CheckResult>, StoreError> {
    const WHAT: &str = "could not read recent results";
    let rows = query(
        store,
        WHAT,
        "SELECT r.at, r.kind, r.duration_us, r.output
           FROM targets t JOIN results r ON r.target = t.id
          WHERE t.name = $1
          ORDER BY r.at DESC, r.id DESC
          LIMIT $2",
        &[&target, &limit(n)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(CheckResult {
                target: target.to_owned(),
                at: codec::time(col(row, 0, WHAT)?, "results.at")?,
                kind: codec::kind(i64::from(col::<i16>(row, 1, WHAT)?))?,
                duration: codec::duration(col(row, 2, WHAT)?, "results.duration_us")?,
                output: col(row, 3, WHAT)?,
            })
        })
        .collect()
}

pub(super) async fn transitions(
    store: &PgStore,
    target: &str,
    n: usize,
) -> Result<Vec<Transition>, StoreError> {
    const WHAT: &str = "could not read transitions";
    let rows = query(
        store,
        WHAT,
        "SELECT x.id, x.at, x.from_state, x.to_state, x.reason, x.cause_kind, x.cause_output
           FROM targets t JOIN transitions x ON x.target = t.id
          WHERE t.name = $1
          ORDER BY x.at DESC, x.id DESC
          LIMIT $2",
        &[&target, &limit(n)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Transition {
                id: Some(col(row, 0, WHAT)?),
                target: target.to_owned(),
                at: codec::time(col(row, 1, WHAT)?, "transitions.at")?,
                from: codec::timeline_state(col(row, 2, WHAT)?, "transitions.from_state")?,
                to: codec::timeline_state(col(row, 3, WHAT)?, "transitions.to_state")?,
                reason: col(row, 4, WHAT)?,
                cause_kind: col(row, 5, WHAT)?,
                cause_output: col(row, 6, WHAT)?,
            })
        })
        .collect()
}

pub(super) async fn last_pings(
    store: &PgStore,
    target: &str,
    n: usize,
) -> Result<Vec<Ping>, StoreError> {
    const WHAT: &str = "could not read pings";
    let rows = query(
        store,
        WHAT,
        "SELECT p.at, p.kind, p.exit_status, p.rid, p.body, p.duration_us, p.source
           FROM targets t JOIN pings p ON p.target = t.id
          WHERE t.name = $1
          ORDER BY p.at DESC, p.id DESC
          LIMIT $2",
        &[&target, &limit(n)],
    )
    .await?;
    rows.iter()
        .map(|row| {
            let exit: Option<i16> = col(row, 2, WHAT)?;
            let duration: Option<i64> = col(row, 5, WHAT)?;
            Ok(Ping {
                target: target.to_owned(),
                at: codec::time(col(row, 0, WHAT)?, "pings.at")?,
                kind: codec::ping_kind(col(row, 1, WHAT)?, exit.map(i64::from))?,
                rid: col(row, 3, WHAT)?,
                body: col(row, 4, WHAT)?,
                duration: duration
                    .map(|us| codec::duration(us, "pings.duration_us"))
                    .transpose()?,
                source: col(row, 6, WHAT)?,
            })
        })
        .collect()
}

pub(super) async fn load_states(store: &PgStore) -> Result<Vec<TargetState>, StoreError> {
    const WHAT: &str = "could not load target states";
    let rows = query(
        store,
        WHAT,
        "SELECT t.name, s.state, s.since, s.flapping, s.consecutive_failures,
                s.consecutive_successes, s.paused, s.maintenance_until
           FROM states s JOIN targets t ON t.id = s.target
          ORDER BY t.name COLLATE \"C\"",
        &[],
    )
    .await?;
    let count = |v: i64, column: &'static str| {
        u32::try_from(v).map_err(|_| StoreError::Corrupt {
            what: format!("{column} = {v}, not a count"),
        })
    };
    rows.iter()
        .map(|row| {
            let since: Option<i64> = col(row, 2, WHAT)?;
            let until: Option<i64> = col(row, 7, WHAT)?;
            Ok(TargetState {
                target: col(row, 0, WHAT)?,
                state: codec::state(col(row, 1, WHAT)?, "states.state")?,
                since: since
                    .map(|ms| codec::time(ms, "states.since"))
                    .transpose()?,
                flapping: col(row, 3, WHAT)?,
                consecutive_failures: count(col(row, 4, WHAT)?, "states.consecutive_failures")?,
                consecutive_successes: count(col(row, 5, WHAT)?, "states.consecutive_successes")?,
                flags: Flags {
                    paused: col(row, 6, WHAT)?,
                    maintenance_until: until
                        .map(|ms| codec::time(ms, "states.maintenance_until"))
                        .transpose()?,
                },
            })
        })
        .collect()
}
