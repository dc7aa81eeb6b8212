//! The recovery log: every recovery action the monitor ran (what, why, its output and result),
//! every escalation when a target's restart budget was spent, and every reset of a budget.
//!
//! One table, `actions`, newest rows read first. Rows are few (a handful per outage), so they
//! are written one per transaction on the recovery executor's own connection and kept as long
//! as the database; the target is stored by name, as the alert log does. After a restart the
//! executor reads them back to restore each budget, so restarting the monitor does not grant a
//! crash-looping service fresh attempts.
//!
//! What this is not: the budget's rules (`vitals_core::recovery`) or running actions
//! (`crate::recovery`).

use std::time::{Duration, SystemTime};

use rusqlite::{Row, params};

use super::codec::{self, millis};
use super::{Store, StoreError, read};

/// What a row records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A recovery action ran.
    Attempt,
    /// The budget was spent: the target needs a person.
    Escalation,
    /// The budget was reset: by a person, or after the target stayed healthy.
    Reset,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Attempt => "attempt",
            ActionKind::Escalation => "escalation",
            ActionKind::Reset => "reset",
        }
    }

    fn parse(text: &str) -> Result<ActionKind, StoreError> {
        match text {
            "attempt" => Ok(ActionKind::Attempt),
            "escalation" => Ok(ActionKind::Escalation),
            "reset" => Ok(ActionKind::Reset),
            other => Err(StoreError::Corrupt {
                what: format!("actions.kind = {other:?}"),
            }),
        }
    }
}

/// One row of the recovery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionRecord {
    /// Assigned by the store; ignored by [`Store::record_action`].
    pub id: Option<i64>,
    pub target: String,
    /// When the action started (or the escalation or reset happened).
    pub at: SystemTime,
    pub kind: ActionKind,
    /// The state that triggered it (`unhealthy`, `down`), if a state did.
    pub trigger: Option<String>,
    /// The command line or `METHOD url` of an attempt; who or what reset a budget.
    pub action: String,
    /// Attempts since the budget's last reset, this one included.
    pub attempt: u32,
    pub duration: Option<Duration>,
    /// A command's exit code (`None` when it was killed or never started).
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
    /// Captured output (bounded by the executor), or what went wrong.
    pub output: Option<String>,
    /// `ok`, `failed`, `timeout`, `error` for attempts; `escalated`, `reset` otherwise.
    pub result: String,
}

const COLUMNS: &str = "id, at, kind, trigger_state, action, attempt, duration_us, exit_code, \
                       http_status, output, result";

impl Store {
    /// Appends one row to the recovery log, committed before this returns; returns its id.
    pub fn record_action(&self, a: &ActionRecord) -> Result<i64, StoreError> {
        let target = codec::target_name(&a.target, "a recovery action")?;
        let at = millis(a.at, "recovery action time")?;
        self.with_tx(|tx| {
            tx.prepare_cached(
                "INSERT INTO actions (target, at, kind, trigger_state, action, attempt,
                                      duration_us, exit_code, http_status, output, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .and_then(|mut s| {
                s.insert(params![
                    target,
                    at,
                    a.kind.as_str(),
                    a.trigger,
                    a.action,
                    a.attempt,
                    a.duration.map(codec::micros),
                    a.exit_code,
                    a.http_status,
                    a.output,
                    a.result
                ])
            })
            .map_err(StoreError::sqlite("could not record a recovery action"))
        })
    }

    /// The latest `limit` rows of `target`'s recovery log, newest first.
    pub fn actions(&self, target: &str, limit: usize) -> Result<Vec<ActionRecord>, StoreError> {
        const WHAT: &str = "could not read recovery actions";
        read::collect(
            &self.lock().conn,
            &format!(
                "SELECT {COLUMNS} FROM actions WHERE target = ?1 ORDER BY at DESC, id DESC LIMIT ?2"
            ),
            params![target, read::limit(limit)],
            WHAT,
            |row| decode(target, raw(row).map_err(StoreError::sqlite(WHAT))?),
        )
    }
}

/// A row as SQLite has it, before its values are checked.
struct Raw {
    id: i64,
    at: i64,
    kind: String,
    trigger: Option<String>,
    action: String,
    attempt: i64,
    duration_us: Option<i64>,
    exit_code: Option<i32>,
    http_status: Option<i64>,
    output: Option<String>,
    result: String,
}

fn raw(row: &Row<'_>) -> rusqlite::Result<Raw> {
    Ok(Raw {
        id: row.get(0)?,
        at: row.get(1)?,
        kind: row.get(2)?,
        trigger: row.get(3)?,
        action: row.get(4)?,
        attempt: row.get(5)?,
        duration_us: row.get(6)?,
        exit_code: row.get(7)?,
        http_status: row.get(8)?,
        output: row.get(9)?,
        result: row.get(10)?,
    })
}

fn decode(target: &str, r: Raw) -> Result<ActionRecord, StoreError> {
    let corrupt = |what: String| StoreError::Corrupt { what };
    Ok(ActionRecord {
        id: Some(r.id),
        target: target.to_owned(),
        at: codec::time(r.at, "actions.at")?,
        kind: ActionKind::parse(&r.kind)?,
        trigger: r.trigger,
        action: r.action,
        attempt: u32::try_from(r.attempt)
            .map_err(|_| corrupt(format!("actions.attempt = {}", r.attempt)))?,
        duration: r
            .duration_us
            .map(|us| codec::duration(us, "actions.duration_us"))
            .transpose()?,
        exit_code: r.exit_code,
        http_status: r
            .http_status
            .map(|s| u16::try_from(s).map_err(|_| corrupt(format!("actions.http_status = {s}"))))
            .transpose()?,
        output: r.output,
        result: r.result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(target: &str, secs: u64, kind: ActionKind, attempt: u32) -> ActionRecord {
        ActionRecord {
            id: None,
            target: target.into(),
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs),
            kind,
            trigger: Some("down".into()),
            action: "systemctl restart api".into(),
            attempt,
            duration: Some(Duration::from_millis(12)),
            exit_code: Some(1),
            http_status: None,
            output: Some("Job for api.service failed.\n".into()),
            result: "failed".into(),
        }
    }

    #[test]
    fn actions_round_trip_newest_first_per_target() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let first = row("api", 0, ActionKind::Attempt, 1);
        let escalation = ActionRecord {
            exit_code: None,
            duration: None,
            http_status: Some(503),
            ..row("api", 60, ActionKind::Escalation, 1)
        };
        let id = store.record_action(&first).unwrap();
        store.record_action(&escalation).unwrap();
        store
            .record_action(&row("db", 5, ActionKind::Attempt, 1))
            .unwrap();
        let got = store.actions("api", 10).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, ActionKind::Escalation);
        assert_eq!(got[0].http_status, Some(503));
        assert_eq!(
            got[1],
            ActionRecord {
                id: Some(id),
                ..first
            }
        );
        assert_eq!(store.actions("api", 1).unwrap().len(), 1);
        assert!(store.actions("nobody", 10).unwrap().is_empty());

        let reader = Store::open_read_only(dir.path()).unwrap();
        assert_eq!(reader.actions("db", 10).unwrap().len(), 1);
        assert!(matches!(
            reader.record_action(&row("db", 9, ActionKind::Reset, 0)),
            Err(StoreError::ReadOnly { .. })
        ));
    }

    #[test]
    fn bad_input_is_refused_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let empty = row("", 0, ActionKind::Attempt, 1);
        assert!(matches!(
            store.record_action(&empty),
            Err(StoreError::EmptyTarget { .. })
        ));
        let before_1970 = ActionRecord {
            at: SystemTime::UNIX_EPOCH - Duration::from_secs(1),
            ..row("api", 0, ActionKind::Attempt, 1)
        };
        assert!(matches!(
            store.record_action(&before_1970),
            Err(StoreError::Time { .. })
        ));
        assert!(store.actions("api", 10).unwrap().is_empty());
    }
}
