//! Uptime: the time-weighted share of "up" over the last 24 hours, 7, 30 and 365 days.
//!
//! The rule (also in `docs/STORAGE.md`): a target's timeline is its transitions; from each
//! transition's time until the next one it is in that transition's `to` state. Time in a
//! serving state (`healthy`, `degraded`, `failing`) is up. Time in `unknown` is not counted
//! at all (neither up nor down): nothing was known. `paused` and `maintenance` are markers an
//! operator's action writes (`<state> → paused` when it starts, `paused → <state>` when it
//! ends): between the two nothing is counted, whatever real transitions happen meanwhile
//! (checks go on in maintenance, and are recorded). Every other state (`unhealthy`, `down`, `recovering`, and any
//! name the store does not know) is down, so a new state can never inflate uptime. Windows are
//! clipped to their start and to the target's first transition; the last state lasts until
//! `now`. Uptime is up / (up + down), or `None` when that is zero.
//!
//! What this is not: a count of passing results (a target checked every 5 s and one checked
//! every 5 min weigh the same per hour), nor an SLA calculator with business hours.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::{Connection, params};

use vitals_core::machine::State;

use super::codec::{self, millis};
use super::{StoreError, TimelineState, Uptime};

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The four windows, in the order of [`Uptime`]'s fields.
const WINDOWS_MS: [i64; 4] = [DAY_MS, 7 * DAY_MS, 30 * DAY_MS, 365 * DAY_MS];

/// The longest window: transitions before its start matter only as the state it starts in.
const LONGEST_MS: i64 = WINDOWS_MS[3];

/// How time in a state counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    Up,
    Down,
    /// Neither up nor down: left out of the fraction.
    Unknown,
}

/// Up, down or neither: every state says which, and nothing else is ever classified (a
/// stored name that parses to no state is a corrupt row, not a down target).
pub(crate) fn classify(state: TimelineState) -> Class {
    match state {
        TimelineState::Judged(State::Healthy | State::Degraded | State::Failing) => Class::Up,
        TimelineState::Judged(State::Unhealthy | State::Down | State::Recovering) => Class::Down,
        TimelineState::Judged(State::Unknown)
        | TimelineState::Paused
        | TimelineState::Maintenance => Class::Unknown,
    }
}

/// Builds a `(since_ms, class)` timeline from transitions in time order, keeping track of
/// open pause and maintenance spans (they may nest: paused during maintenance).
#[derive(Debug, Default)]
pub(crate) struct Timeline {
    changes: Vec<(i64, Class)>,
    open_overlays: u32,
    underlying: Option<Class>,
}

impl Timeline {
    /// The state at the window's start, from the last transition before it (only its `to` is
    /// known there: a span opened earlier counts as open if that transition opened it).
    pub(crate) fn starting_in(at: i64, to: TimelineState) -> Timeline {
        let mut timeline = Timeline::default();
        timeline.push(at, TimelineState::Judged(State::Unknown), to);
        timeline
    }

    /// [`Timeline::push`] of a row's stored names.
    pub(crate) fn push_row(&mut self, at: i64, from: &str, to: &str) -> Result<(), StoreError> {
        let from = codec::timeline_state(from, "transitions.from_state")?;
        let to = codec::timeline_state(to, "transitions.to_state")?;
        self.push(at, from, to);
        Ok(())
    }

    pub(crate) fn push(&mut self, at: i64, from: TimelineState, to: TimelineState) {
        if to.is_span() {
            self.open_overlays += 1;
        } else {
            if from.is_span() {
                self.open_overlays = self.open_overlays.saturating_sub(1);
            }
            self.underlying = Some(classify(to));
        }
        let class = match self.underlying {
            Some(class) if self.open_overlays == 0 => class,
            _ => Class::Unknown,
        };
        self.changes.push((at, class));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub(crate) fn uptime(&self, now: i64) -> Uptime {
        uptime_of(&self.changes, now)
    }

    /// The share of up time in `[from, to)` (see [`fraction`]).
    pub(crate) fn fraction(&self, from: i64, to: i64) -> Option<f64> {
        fraction(&self.changes, from, to)
    }
}

/// The share of up time in `[from, to)` given a timeline of `(since_ms, class)` changes,
/// sorted by time. Changes at or before `from` only set the state the window starts in.
pub(crate) fn fraction(changes: &[(i64, Class)], from: i64, to: i64) -> Option<f64> {
    let (mut up, mut known) = (0i64, 0i64);
    let mut add = |since: i64, until: i64, class: Class| {
        let span = until.min(to) - since.max(from);
        if span > 0 {
            match class {
                Class::Up => {
                    up += span;
                    known += span;
                }
                Class::Down => known += span,
                Class::Unknown => {}
            }
        }
    };
    let mut current: Option<(i64, Class)> = None;
    for &(at, class) in changes {
        if let Some((since, c)) = current {
            add(since, at, c);
        }
        current = Some((at, class));
    }
    if let Some((since, c)) = current {
        add(since, to, c);
    }
    (known > 0).then(|| up as f64 / known as f64)
}

/// All four windows from one timeline.
pub(crate) fn uptime_of(changes: &[(i64, Class)], now: i64) -> Uptime {
    let [day, week, month, year] = WINDOWS_MS.map(|w| fraction(changes, now - w, now));
    Uptime {
        day,
        week,
        month,
        year,
    }
}

/// One target's uptime. Reads inside one transaction so both queries see the same snapshot.
pub(crate) fn uptime(
    conn: &Connection,
    target: &str,
    now: SystemTime,
) -> Result<Uptime, StoreError> {
    const WHAT: &str = "could not read transitions for uptime";
    let now = millis(now, "uptime time")?;
    let start = now - LONGEST_MS;
    let tx = conn
        .unchecked_transaction()
        .map_err(StoreError::sqlite(WHAT))?;
    let before: Option<String> = tx
        .prepare_cached(
            "SELECT x.to_state FROM targets t JOIN transitions x ON x.target = t.id
              WHERE t.name = ?1 AND x.at <= ?2
              ORDER BY x.at DESC, x.id DESC LIMIT 1",
        )
        .and_then(|mut s| {
            let mut rows = s.query(params![target, start])?;
            rows.next()?.map(|r| r.get(0)).transpose()
        })
        .map_err(StoreError::sqlite(WHAT))?;
    let mut timeline = match before {
        Some(state) => Timeline::starting_in(start, codec::timeline_state(&state, WHAT)?),
        None => Timeline::default(),
    };
    let mut stmt = tx
        .prepare_cached(
            "SELECT x.at, x.from_state, x.to_state FROM targets t JOIN transitions x ON x.target = t.id
              WHERE t.name = ?1 AND x.at > ?2
              ORDER BY x.at, x.id",
        )
        .map_err(StoreError::sqlite(WHAT))?;
    let mut rows = stmt
        .query(params![target, start])
        .map_err(StoreError::sqlite(WHAT))?;
    while let Some(row) = rows.next().map_err(StoreError::sqlite(WHAT))? {
        let at: i64 = row.get(0).map_err(StoreError::sqlite(WHAT))?;
        let from: String = row.get(1).map_err(StoreError::sqlite(WHAT))?;
        let to: String = row.get(2).map_err(StoreError::sqlite(WHAT))?;
        timeline.push_row(at, &from, &to)?;
    }
    Ok(timeline.uptime(now))
}

/// Every target's uptime with two queries, however many targets there are: one index seek
/// per target for the state each window starts in, then one ordered pass over the last
/// year's transitions. Targets that never had a transition are absent.
pub(crate) fn uptimes(
    conn: &Connection,
    now: SystemTime,
) -> Result<HashMap<String, Uptime>, StoreError> {
    const WHAT: &str = "could not read transitions for uptimes";
    let now = millis(now, "uptime time")?;
    let start = now - LONGEST_MS;
    let tx = conn
        .unchecked_transaction()
        .map_err(StoreError::sqlite(WHAT))?;

    // id -> (name, timeline)
    let mut timelines: HashMap<i64, (String, Timeline)> = HashMap::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT t.id, t.name,
                        (SELECT x.to_state FROM transitions x
                          WHERE x.target = t.id AND x.at <= ?1
                          ORDER BY x.at DESC, x.id DESC LIMIT 1)
                   FROM targets t",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        let mut rows = stmt.query([start]).map_err(StoreError::sqlite(WHAT))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(WHAT))? {
            let id: i64 = row.get(0).map_err(StoreError::sqlite(WHAT))?;
            let name: String = row.get(1).map_err(StoreError::sqlite(WHAT))?;
            let before: Option<String> = row.get(2).map_err(StoreError::sqlite(WHAT))?;
            let timeline = match before {
                Some(state) => Timeline::starting_in(start, codec::timeline_state(&state, WHAT)?),
                None => Timeline::default(),
            };
            timelines.insert(id, (name, timeline));
        }
    }
    {
        // CROSS JOIN keeps targets as the outer loop, so each target is one range seek in
        // transitions_by_target rather than a scan of the whole table.
        let mut stmt = tx
            .prepare_cached(
                "SELECT x.target, x.at, x.from_state, x.to_state
                   FROM targets t CROSS JOIN transitions x
                  WHERE x.target = t.id AND x.at > ?1
                  ORDER BY t.id, x.at, x.id",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        let mut rows = stmt.query([start]).map_err(StoreError::sqlite(WHAT))?;
        while let Some(row) = rows.next().map_err(StoreError::sqlite(WHAT))? {
            let id: i64 = row.get(0).map_err(StoreError::sqlite(WHAT))?;
            let at: i64 = row.get(1).map_err(StoreError::sqlite(WHAT))?;
            let from: String = row.get(2).map_err(StoreError::sqlite(WHAT))?;
            let to: String = row.get(3).map_err(StoreError::sqlite(WHAT))?;
            if let Some((_, timeline)) = timelines.get_mut(&id) {
                timeline.push_row(at, &from, &to)?;
            }
        }
    }
    Ok(timelines
        .into_values()
        .filter(|(_, timeline)| !timeline.is_empty())
        .map(|(name, timeline)| {
            let up = timeline.uptime(now);
            (name, up)
        })
        .collect())
}
