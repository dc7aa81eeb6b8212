//! Maintenance: roll raw results up into minute, hour and day buckets, then prune.
//!
//! Percentiles do not merge (the p95 of 24 hourly p95s is not the day's p95), so every width
//! is computed from raw results, and raw results are deleted only once all three widths have
//! covered them. Progress is a mark per width (`rollup_progress.rolled_until`) committed in
//! the same transaction as the rollups it covers, and rollups are written with
//! `INSERT OR REPLACE`: a crash anywhere repeats at most one chunk, with the same result.
//! Work is done in chunks (time ranges for rollups, groups of targets for pruning), each its
//! own short write transaction, so the engine's writer never waits long for the lock.
//!
//! What this is not: a scheduler. The caller decides how often to run it (every few minutes
//! is plenty) and runs it off the async runtime, ideally on its own [`Store`](super::Store).

use std::time::{Duration, SystemTime};

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::codec::{FIRST_FAILURE_CODE, floor, millis};
use super::{Bucket, Maintenance, StoreError};

const DAY_MS: i64 = 86_400_000;

/// A bucket is rolled up only once it ended this long ago, so results still queued in the
/// writer (it lingers up to 100 ms, longer under load) land before their bucket is summed.
pub const SETTLE: Duration = Duration::from_secs(60);

/// Minute rollups are kept at most this many days (hour and day rollups: `rollup_days`).
///
/// A year of minute buckets is 525,600 rows per target, more than a week of raw results at a
/// 30 s interval; minute detail is wanted for recent incidents, not last spring's. See
/// `docs/STORAGE.md` for the measured sizes behind this number.
pub const MINUTE_ROLLUP_DAYS: u32 = 14;

/// Each target keeps at least its latest this many pings, however old, so a weekly cron job
/// still shows its last runs.
pub const KEEP_PINGS: i64 = 100;

/// Targets pruned per write transaction.
const PRUNE_TARGETS_PER_CHUNK: i64 = 256;

/// Time covered per rollup transaction, per width: bounds the rows held in memory and the
/// time the write lock is held (10,000 targets at a 30 s interval: about 100,000 minute,
/// 60,000 hour or 10,000 day rollups per chunk).
fn chunk_ms(bucket: Bucket) -> i64 {
    match bucket {
        Bucket::Minute => 10 * 60_000,
        Bucket::Hour => 6 * 3_600_000,
        Bucket::Day => DAY_MS,
    }
}

/// A bucket's width as stored in `rollups.bucket` (seconds).
pub(crate) fn bucket_code(bucket: Bucket) -> i64 {
    bucket.millis() / 1000
}

/// One computed rollup row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Row {
    pub(crate) target: i64,
    pub(crate) start: i64,
    pub(crate) count: i64,
    pub(crate) failures: i64,
    pub(crate) p50: i64,
    pub(crate) p95: i64,
    pub(crate) max: i64,
}

/// The nearest-rank percentile `p` (0..=100) of `sorted`: the smallest value with at least
/// `p` % of the values at or below it. `None` for no values.
pub(crate) fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    // ceil(p/100 * n), at least rank 1.
    let rank = (u64::from(p) * n).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(usize::MAX);
    sorted.get(index.min(sorted.len() - 1)).copied()
}

/// Sums one bucket of `(kind, duration_us)` values.
pub(crate) fn summarize(target: i64, start: i64, values: &[(i64, i64)]) -> Option<Row> {
    let failures = values
        .iter()
        .filter(|(kind, _)| *kind >= FIRST_FAILURE_CODE)
        .count();
    let mut durations: Vec<i64> = values.iter().map(|(_, d)| *d).collect();
    durations.sort_unstable();
    Some(Row {
        target,
        start,
        count: i64::try_from(durations.len()).unwrap_or(i64::MAX),
        failures: i64::try_from(failures).unwrap_or(i64::MAX),
        p50: percentile(&durations, 50)?,
        p95: percentile(&durations, 95)?,
        max: *durations.last()?,
    })
}

/// Computes the rollups of width `bucket` for raw results in `[from, to)` (bucket-aligned).
fn compute(conn: &Connection, bucket: Bucket, from: i64, to: i64) -> Result<Vec<Row>, StoreError> {
    const WHAT: &str = "could not read raw results for rollups";
    let width = bucket.millis();
    // Targets are the outer loop (CROSS JOIN fixes the order): one range seek per target in
    // the results key, rows arriving ordered by (target, at) so buckets are consecutive.
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.target, r.at, r.kind, r.duration_us
               FROM targets t CROSS JOIN results r
              WHERE r.target = t.id AND r.at >= ?1 AND r.at < ?2
              ORDER BY t.id, r.at",
        )
        .map_err(StoreError::sqlite(WHAT))?;
    let mut rows = stmt
        .query(params![from, to])
        .map_err(StoreError::sqlite(WHAT))?;
    let mut out = Vec::new();
    let mut key: Option<(i64, i64)> = None;
    let mut values: Vec<(i64, i64)> = Vec::new();
    while let Some(row) = rows.next().map_err(StoreError::sqlite(WHAT))? {
        let target: i64 = row.get(0).map_err(StoreError::sqlite(WHAT))?;
        let at: i64 = row.get(1).map_err(StoreError::sqlite(WHAT))?;
        let kind: i64 = row.get(2).map_err(StoreError::sqlite(WHAT))?;
        let duration: i64 = row.get(3).map_err(StoreError::sqlite(WHAT))?;
        let this = (target, floor(at, width));
        if key != Some(this) {
            if let Some((t, s)) = key {
                out.extend(summarize(t, s, &values));
            }
            values.clear();
            key = Some(this);
        }
        values.push((kind, duration));
    }
    if let Some((t, s)) = key {
        out.extend(summarize(t, s, &values));
    }
    Ok(out)
}

fn progress(conn: &Connection, bucket: Bucket) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT rolled_until FROM rollup_progress WHERE bucket = ?1")
        .and_then(|mut s| s.query_row([bucket_code(bucket)], |r| r.get(0)).optional())
        .map_err(StoreError::sqlite("could not read rollup progress"))
}

/// The earliest raw result at or after `from`: one seek per target.
fn next_result(conn: &Connection, from: i64) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached(
        "SELECT MIN((SELECT MIN(r.at) FROM results r WHERE r.target = t.id AND r.at >= ?1))
           FROM targets t",
    )
    .and_then(|mut s| s.query_row([from], |r| r.get(0)))
    .map_err(StoreError::sqlite("could not find the oldest raw result"))
}

/// Writes one chunk's rollups and moves the width's mark, in one transaction.
fn commit_chunk(
    conn: &mut Connection,
    bucket: Bucket,
    rows: &[Row],
    rolled_until: i64,
) -> Result<(), StoreError> {
    const WHAT: &str = "could not write rollups";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(WHAT))?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR REPLACE INTO rollups
                   (target, bucket, start, count, failures, p50_us, p95_us, max_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        for r in rows {
            insert
                .execute(params![
                    r.target,
                    bucket_code(bucket),
                    r.start,
                    r.count,
                    r.failures,
                    r.p50,
                    r.p95,
                    r.max
                ])
                .map_err(StoreError::sqlite(WHAT))?;
        }
        tx.prepare_cached(
            "INSERT OR REPLACE INTO rollup_progress (bucket, rolled_until) VALUES (?1, ?2)",
        )
        .and_then(|mut s| s.execute(params![bucket_code(bucket), rolled_until]))
        .map_err(StoreError::sqlite(WHAT))?;
    }
    tx.commit().map_err(StoreError::sqlite(WHAT))
}

/// Rolls up every completed, not yet rolled-up bucket of one width. Returns rows written.
fn roll_up(conn: &mut Connection, bucket: Bucket, now: i64) -> Result<u64, StoreError> {
    let width = bucket.millis();
    let settle = i64::try_from(SETTLE.as_millis()).unwrap_or(i64::MAX);
    let end = floor(now.saturating_sub(settle), width);
    let mut from = match progress(conn, bucket)? {
        Some(mark) => mark,
        None => match next_result(conn, i64::MIN)? {
            Some(first) => floor(first, width),
            None => return Ok(0),
        },
    };
    let mut written = 0u64;
    while from < end {
        let to = from.saturating_add(chunk_ms(bucket)).min(end);
        let rows = compute(conn, bucket, from, to)?;
        commit_chunk(conn, bucket, &rows, to)?;
        written += rows.len() as u64;
        from = to;
        if rows.is_empty() {
            // Skip a gap (the monitor was stopped, or the store is new) in one step rather
            // than chunk by empty chunk.
            match next_result(conn, from)? {
                Some(next) if next < end => from = from.max(floor(next, width)),
                _ => {
                    if from < end {
                        commit_chunk(conn, bucket, &[], end)?;
                    }
                    break;
                }
            }
        }
    }
    Ok(written)
}

/// Cutoffs for one maintenance run, all in unix ms.
struct Cutoffs {
    /// Raw results before this go; `None` while some width has not started.
    results: Option<i64>,
    pings: i64,
    transitions: i64,
    /// Per width, in `Bucket::ALL` order.
    rollups: [i64; 3],
}

/// Deletes what the retention says is old, a group of targets per transaction.
fn prune(conn: &mut Connection, cut: &Cutoffs, done: &mut Maintenance) -> Result<(), StoreError> {
    const WHAT: &str = "could not prune old history";
    let max_id: Option<i64> = conn
        .query_row("SELECT MAX(id) FROM targets", [], |r| r.get(0))
        .map_err(StoreError::sqlite(WHAT))?;
    let Some(max_id) = max_id else {
        return Ok(());
    };
    let mut lo = 0i64;
    while lo <= max_id {
        let hi = lo.saturating_add(PRUNE_TARGETS_PER_CHUNK);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite(WHAT))?;
        let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<u64, StoreError> {
            tx.prepare_cached(sql)
                .and_then(|mut s| s.execute(p))
                .map(|n| n as u64)
                .map_err(StoreError::sqlite(WHAT))
        };
        if let Some(cutoff) = cut.results {
            done.pruned_results += run(
                "DELETE FROM results
                  WHERE target IN (SELECT id FROM targets WHERE id >= ?1 AND id < ?2)
                    AND at < ?3",
                &[&lo, &hi, &cutoff],
            )?;
        }
        for (bucket, cutoff) in Bucket::ALL.iter().zip(cut.rollups) {
            done.pruned_rollups += run(
                "DELETE FROM rollups
                  WHERE target IN (SELECT id FROM targets WHERE id >= ?1 AND id < ?2)
                    AND bucket = ?3 AND start < ?4",
                &[&lo, &hi, &bucket_code(*bucket), &cutoff],
            )?;
        }
        // Each target keeps its last transition before the cutoff: the state the retained
        // history starts in, which uptime needs.
        done.pruned_transitions += run(
            "DELETE FROM transitions WHERE id IN (
               SELECT id FROM (
                 SELECT x.id, ROW_NUMBER() OVER (
                          PARTITION BY x.target ORDER BY x.at DESC, x.id DESC) AS newer
                   FROM transitions x
                  WHERE x.target IN (SELECT id FROM targets WHERE id >= ?1 AND id < ?2)
                    AND x.at < ?3)
                WHERE newer > 1)",
            &[&lo, &hi, &cut.transitions],
        )?;
        done.pruned_pings += run(
            "DELETE FROM pings WHERE id IN (
               SELECT id FROM (
                 SELECT p.id, p.at, ROW_NUMBER() OVER (
                          PARTITION BY p.target ORDER BY p.at DESC, p.id DESC) AS newer
                   FROM pings p
                  WHERE p.target IN (SELECT id FROM targets WHERE id >= ?1 AND id < ?2))
                WHERE newer > ?4 AND at < ?3)",
            &[&lo, &hi, &cut.pings, &KEEP_PINGS],
        )?;
        tx.commit().map_err(StoreError::sqlite(WHAT))?;
        lo = hi;
    }
    Ok(())
}

/// Deletes alerts, finished outbox rows and recovery log rows older than `cutoff`: they are
/// history like transitions and keep as long. Pending outbox rows are never deleted.
fn prune_logs(conn: &mut Connection, cutoff: i64) -> Result<u64, StoreError> {
    const WHAT: &str = "could not prune old alerts and actions";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(StoreError::sqlite(WHAT))?;
    let mut pruned = 0;
    for sql in [
        "DELETE FROM outbox WHERE created < ?1 AND (delivered IS NOT NULL OR cancelled IS NOT NULL OR dead IS NOT NULL)",
        "DELETE FROM alerts WHERE at < ?1
            AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_key = alerts.key)",
        "DELETE FROM actions WHERE at < ?1",
    ] {
        pruned += tx
            .prepare_cached(sql)
            .and_then(|mut s| s.execute([cutoff]))
            .map_err(StoreError::sqlite(WHAT))? as u64;
    }
    tx.commit().map_err(StoreError::sqlite(WHAT))?;
    Ok(pruned)
}

/// See [`Store::rollup_and_prune`](super::Store::rollup_and_prune).
pub(crate) fn rollup_and_prune(
    conn: &mut Connection,
    now: SystemTime,
    raw_days: u32,
    rollup_days: u32,
) -> Result<Maintenance, StoreError> {
    let now = millis(now, "maintenance time")?;
    // Raw results are kept at least a day: the day bucket is computed from them.
    let raw_days = i64::from(raw_days.max(1));
    let rollup_days = rollup_days.max(1);
    let minute_days = rollup_days.min(MINUTE_ROLLUP_DAYS);
    let mut done = Maintenance::default();
    for bucket in Bucket::ALL {
        done.rolled_up += roll_up(conn, bucket, now)?;
    }
    let days_ago = |days: i64| now.saturating_sub(days.saturating_mul(DAY_MS));
    // Never prune a raw result that some width has not rolled up yet.
    let mut results = Some(days_ago(raw_days));
    for bucket in Bucket::ALL {
        results = match (results, progress(conn, bucket)?) {
            (Some(c), Some(mark)) => Some(c.min(mark)),
            _ => None,
        };
    }
    let cut = Cutoffs {
        results,
        pings: days_ago(raw_days),
        transitions: days_ago(i64::from(rollup_days)),
        rollups: [
            days_ago(i64::from(minute_days)),
            days_ago(i64::from(rollup_days)),
            days_ago(i64::from(rollup_days)),
        ],
    };
    prune(conn, &cut, &mut done)?;
    done.pruned_logs = prune_logs(conn, days_ago(i64::from(rollup_days)))?;
    tracing::debug!(?done, "store maintenance done");
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        assert_eq!(percentile(&v, 100), Some(100));
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2], 50), Some(1));
        assert_eq!(percentile(&[1, 2], 95), Some(2));
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[1, 2, 3], 0), Some(1));
    }

    proptest::proptest! {
        #[test]
        fn percentiles_are_members_and_ordered(mut v in proptest::collection::vec(0i64..1_000_000, 1..500)) {
            v.sort_unstable();
            let p50 = percentile(&v, 50).unwrap();
            let p95 = percentile(&v, 95).unwrap();
            proptest::prop_assert!(v.contains(&p50) && v.contains(&p95));
            proptest::prop_assert!(p50 <= p95 && p95 <= *v.last().unwrap());
            // At least p % of the values are at or below the p-th percentile.
            let at_or_below = v.iter().filter(|x| **x <= p95).count();
            proptest::prop_assert!(at_or_below * 100 >= 95 * v.len());
        }
    }
}
