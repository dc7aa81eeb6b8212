//! Batched reads for the dashboard: the up/down history of many targets at once, as uptime
//! over 24 hours and 30 days plus equal time cells (the overview's strip of hours, the 90-day
//! bar of days).
//!
//! Two queries whatever the number of targets asked for (the state each target starts the
//! range in, then one ordered pass over the range's transitions), so a page of 100 targets or
//! a status page of 10,000 costs the same two statements, never one per target. The rule for
//! "up" is the uptime rule of `uptime` (time-weighted over transitions; unknown, paused and
//! maintenance time not counted), so the dashboard and the API never disagree.
//!
//! What this is not: latency (that is the rollups) or anything that writes.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::{Connection, params};

use super::codec::{self, floor, millis};
use super::uptime::Timeline;
use super::{Bucket, StoreError};

const DAY_MS: i64 = 86_400_000;

/// One target's recent history.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Share (0..=1) of up time over the last 24 hours; `None` when nothing is known.
    pub day: Option<f64>,
    /// The same over the last 30 days.
    pub month: Option<f64>,
    /// One entry per cell, oldest first; the last cell is the one `now` falls in (so it is
    /// partial). Cells are aligned to the unix epoch, so day cells are UTC days.
    pub cells: Vec<Option<f64>>,
}

/// The start (unix ms) of the first of `count` cells of width `cell` ending with the one
/// that holds `now`.
pub(crate) fn first_cell(now: i64, cell: Bucket, count: usize) -> i64 {
    let width = cell.millis();
    let count = i64::try_from(count).unwrap_or(i64::MAX / width);
    floor(now, width) - width * (count - 1).max(0)
}

/// The histories of `targets` (ids; unknown ids and targets with no transition in range come
/// back as [`History::default`] with `count` empty cells). See the module docs.
pub(crate) fn histories(
    conn: &Connection,
    targets: &[String],
    now: SystemTime,
    cell: Bucket,
    count: usize,
) -> Result<HashMap<String, History>, StoreError> {
    const WHAT: &str = "could not read transitions for the dashboard";
    let now = millis(now, "history time")?;
    let width = cell.millis();
    let cells_from = first_cell(now, cell, count);
    let from = cells_from.min(now - 30 * DAY_MS);
    // json_each turns one bound text into a set, so the statement is the same (and cached)
    // whatever the number of targets.
    let ids = serde_json::to_string(targets).map_err(|error| StoreError::Corrupt {
        what: format!("target ids not encodable as JSON: {error}"),
    })?;
    let tx = conn
        .unchecked_transaction()
        .map_err(StoreError::sqlite(WHAT))?;
    let mut timelines: HashMap<String, Timeline> = HashMap::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT t.name,
                        (SELECT x.to_state FROM transitions x
                          WHERE x.target = t.id AND x.at <= ?2
                          ORDER BY x.at DESC, x.id DESC LIMIT 1)
                   FROM targets t
                  WHERE t.name IN (SELECT value FROM json_each(?1))",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        let mut rows = stmt
            .query(params![ids, from])
            .map_err(StoreError::sqlite(WHAT))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(WHAT))? {
            let name: String = row.get(0).map_err(StoreError::sqlite(WHAT))?;
            let before: Option<String> = row.get(1).map_err(StoreError::sqlite(WHAT))?;
            let timeline = match before {
                Some(state) => Timeline::starting_in(from, codec::timeline_state(&state, WHAT)?),
                None => Timeline::default(),
            };
            timelines.insert(name, timeline);
        }
    }
    {
        // CROSS JOIN keeps targets as the outer loop: one range seek in
        // transitions_by_target per target asked for.
        let mut stmt = tx
            .prepare_cached(
                "SELECT t.name, x.at, x.from_state, x.to_state
                   FROM targets t CROSS JOIN transitions x
                  WHERE t.name IN (SELECT value FROM json_each(?1))
                    AND x.target = t.id AND x.at > ?2
                  ORDER BY t.id, x.at, x.id",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        let mut rows = stmt
            .query(params![ids, from])
            .map_err(StoreError::sqlite(WHAT))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(WHAT))? {
            let name: String = row.get(0).map_err(StoreError::sqlite(WHAT))?;
            let at: i64 = row.get(1).map_err(StoreError::sqlite(WHAT))?;
            let from_state: String = row.get(2).map_err(StoreError::sqlite(WHAT))?;
            let to_state: String = row.get(3).map_err(StoreError::sqlite(WHAT))?;
            timelines
                .entry(name)
                .or_default()
                .push_row(at, &from_state, &to_state)?;
        }
    }
    let nothing = Timeline::default();
    Ok(targets
        .iter()
        .map(|id| {
            let timeline = timelines.get(id).unwrap_or(&nothing);
            let cells = (0..count)
                .map(|i| {
                    let start = cells_from + width * i as i64;
                    timeline.fraction(start, (start + width).min(now))
                })
                .collect();
            let history = History {
                day: timeline.fraction(now - DAY_MS, now),
                month: timeline.fraction(now - 30 * DAY_MS, now),
                cells,
            };
            (id.clone(), history)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use vitals_core::machine::State;

    use crate::store::{Store, TimelineState, Transition};

    fn at(ms: i64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    }

    fn transition(target: &str, ms: i64, to: &str) -> Transition {
        Transition {
            id: None,
            target: target.into(),
            at: at(ms),
            from: TimelineState::Judged(State::Unknown),
            to: TimelineState::parse(to).unwrap(),
            reason: "test".into(),
            cause_kind: None,
            cause_output: None,
        }
    }

    #[test]
    fn cells_follow_the_transitions_and_unknown_targets_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let day0 = 1000 * DAY_MS;
        // Up all of day 0, down from the middle of day 1 on.
        store
            .record_transition(&transition("a", day0, "healthy"))
            .unwrap();
        store
            .record_transition(&transition("a", day0 + DAY_MS + DAY_MS / 2, "down"))
            .unwrap();
        let now = at(day0 + 2 * DAY_MS + DAY_MS / 2);
        let ids = vec!["a".to_string(), "never".to_string()];
        let got = store.histories(&ids, now, Bucket::Day, 4).unwrap();
        let a = &got["a"];
        assert_eq!(a.cells, vec![None, Some(1.0), Some(0.5), Some(0.0)]);
        // The last 24 hours: all down. The last 30 days: 1.5 days up out of 2.5.
        assert_eq!(a.day, Some(0.0));
        assert_eq!(a.month, Some(0.6));
        assert_eq!(
            got["never"],
            History {
                cells: vec![None; 4],
                ..History::default()
            }
        );
    }
}
