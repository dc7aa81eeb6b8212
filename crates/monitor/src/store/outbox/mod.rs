//! The notification tables: the alert log, the outbox (one row per alert and channel, written
//! before any delivery), API silences, and what the notification policy remembers per target.
//!
//! The outbox is what makes delivery survive a crash: the notifier commits a row here before
//! any channel sees the alert, a delivery worker claims due rows, and a row leaves the
//! pending set only when a channel accepted it ([`Store::outbox_delivered`]) or the policy
//! cancelled it before it was due ([`Store::cancel_alert`]). A monitor killed at any moment
//! finds its pending rows here on restart.
//!
//! What this is not: the policy (which alerts exist, who gets them) or the delivery (HTTP,
//! SMTP, commands); both live in `crate::notify`. docs/ALERTS.md explains the guarantees.

use std::time::{Duration, SystemTime};

use rusqlite::{OptionalExtension, Row, params};

use super::codec::{self, millis};
use super::{Store, StoreError, read};

/// One alert as recorded, sent or muted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    /// The alert's idempotency key.
    pub key: String,
    pub target: String,
    /// `down`, `recovered`, `flapping`…
    pub kind: String,
    pub at: SystemTime,
    /// The alert as JSON (the body a webhook receives).
    pub payload: String,
    /// Why no channel was told (`silence 3`, `maintenance nightly`, `blocked by db`…), or
    /// `None` when it was queued for its channels (or listed in its group's notification).
    pub muted_by: Option<String>,
    /// The alert group that lists this alert, or that this notification is of.
    pub group_key: Option<String>,
}

/// One alert for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    /// `<alert key>@<channel>`: the Idempotency-Key the receiver sees.
    pub key: String,
    pub alert_key: String,
    pub channel: String,
    pub payload: String,
    pub created: SystemTime,
    /// Not delivered before this.
    pub due: SystemTime,
    /// Failed deliveries so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered: Option<SystemTime>,
    /// Why the row will never be delivered (the alert was merged into its root's).
    pub cancelled: Option<String>,
    /// When it was dead-lettered: refused for good by the channel, or out of attempts
    /// (`last_error` says which). It is never tried again.
    pub dead: Option<SystemTime>,
}

/// A silence created through the API: mutes the targets and groups it names (every target
/// when both are empty) until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silence {
    /// Assigned by the store; ignored by [`Store::add_silence`].
    pub id: i64,
    pub targets: Vec<String>,
    pub groups: Vec<String>,
    pub created: SystemTime,
    pub until: SystemTime,
    pub comment: String,
}

const ROW: &str = "id, key, alert_key, channel, payload, created, due, attempts, last_error, \
                   delivered, cancelled, dead";

/// A row still waiting for its channel.
const PENDING: &str = "delivered IS NULL AND cancelled IS NULL AND dead IS NULL";

type RawRow = (OutboxRow, i64, i64, Option<i64>, Option<i64>);

fn outbox_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((
        OutboxRow {
            id: row.get(0)?,
            key: row.get(1)?,
            alert_key: row.get(2)?,
            channel: row.get(3)?,
            payload: row.get(4)?,
            created: SystemTime::UNIX_EPOCH,
            due: SystemTime::UNIX_EPOCH,
            attempts: row.get::<_, i64>(7)?.try_into().unwrap_or(u32::MAX),
            last_error: row.get(8)?,
            delivered: None,
            cancelled: row.get(10)?,
            dead: None,
        },
        row.get(5)?,
        row.get(6)?,
        row.get(9)?,
        row.get(11)?,
    ))
}

fn decode(raw: RawRow) -> Result<OutboxRow, StoreError> {
    let (mut row, created, due, delivered, dead) = raw;
    row.dead = dead.map(|ms| codec::time(ms, "outbox.dead")).transpose()?;
    row.created = codec::time(created, "outbox.created")?;
    row.due = codec::time(due, "outbox.due")?;
    row.delivered = delivered
        .map(|ms| codec::time(ms, "outbox.delivered"))
        .transpose()?;
    Ok(row)
}

fn lease_ms(lease: Duration) -> i64 {
    i64::try_from(lease.as_millis()).unwrap_or(i64::MAX)
}

/// The rows of a channel that may go now: none behind the first one that failed (it is
/// retried alone until the channel takes it), so alerts arrive in the order they were made.
const IN_ORDER: &str = "id <= COALESCE((SELECT MIN(f.id) FROM outbox f
                                  WHERE f.channel = ?1 AND f.delivered IS NULL
                                    AND f.cancelled IS NULL AND f.dead IS NULL
                                    AND f.attempts > 0),
                                 9223372036854775807)";

impl Store {
    /// Records `alert` and, unless it is muted, one outbox row per channel due at `due`, in
    /// one transaction. Idempotent: an alert or row whose key exists already is left as it
    /// is. Returns the outbox rows created.
    pub fn enqueue_alert(
        &self,
        alert: &AlertRecord,
        channels: &[String],
        due: SystemTime,
    ) -> Result<usize, StoreError> {
        let at = millis(alert.at, "alert.at")?;
        let due = millis(due, "outbox.due")?;
        let created = millis(SystemTime::now(), "outbox.created")?;
        self.with_tx(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO alerts (key, target, kind, at, payload, muted_by, group_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    alert.key,
                    alert.target,
                    alert.kind,
                    at,
                    alert.payload,
                    alert.muted_by,
                    alert.group_key
                ],
            )
            .map_err(StoreError::sqlite("could not record an alert"))?;
            if alert.muted_by.is_some() {
                return Ok(0);
            }
            let mut made = 0;
            for channel in channels {
                made += tx
                    .execute(
                        "INSERT OR IGNORE INTO outbox (key, alert_key, channel, payload, created, due)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        params![
                            format!("{}@{channel}", alert.key),
                            alert.key,
                            channel,
                            alert.payload,
                            created,
                            due
                        ],
                    )
                    .map_err(StoreError::sqlite("could not write an outbox row"))?;
            }
            Ok(made)
        })
    }

    /// Replaces the payload of an alert and of its rows not delivered yet (dependents were
    /// attached during the group wait).
    pub fn update_alert_payload(&self, alert_key: &str, payload: &str) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE alerts SET payload = ?2 WHERE key = ?1",
                params![alert_key, payload],
            )
            .and_then(|_| {
                tx.execute(
                    "UPDATE outbox SET payload = ?2 WHERE alert_key = ?1 AND delivered IS NULL",
                    params![alert_key, payload],
                )
            })
            .map_err(StoreError::sqlite("could not update an alert's payload"))?;
            Ok(())
        })
    }

    /// Mutes an alert after the fact and cancels its rows not delivered yet (it was merged
    /// into its root's alert during the group wait).
    pub fn cancel_alert(&self, alert_key: &str, reason: &str) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE alerts SET muted_by = ?2 WHERE key = ?1",
                params![alert_key, reason],
            )
            .and_then(|_| {
                tx.execute(
                    "UPDATE outbox SET cancelled = ?2
                     WHERE alert_key = ?1 AND delivered IS NULL AND cancelled IS NULL AND dead IS NULL",
                    params![alert_key, reason],
                )
            })
            .map_err(StoreError::sqlite("could not cancel an alert"))?;
            Ok(())
        })
    }

    /// Claims up to `limit` rows of `channel` that are due at `now` and not claimed by
    /// anyone else, oldest first, for `lease`: a worker that dies holding them releases
    /// them when the lease runs out. Rows behind one that failed are not claimed until it is
    /// delivered ([`IN_ORDER`]): a channel in trouble gets its alerts in order, one retry at a
    /// time.
    pub fn outbox_claim(
        &self,
        channel: &str,
        now: SystemTime,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        let now = millis(now, "now")?;
        let limit = read::limit(limit);
        self.with_tx(|tx| {
            let rows = tx
                .prepare_cached(&format!(
                    "SELECT {ROW} FROM outbox
                     WHERE channel = ?1 AND {PENDING}
                       AND due <= ?2 AND (claimed_until IS NULL OR claimed_until <= ?2)
                       AND {IN_ORDER}
                     ORDER BY id LIMIT ?3"
                ))
                .and_then(|mut s| {
                    s.query_map(params![channel, now, limit], outbox_row)?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .map_err(StoreError::sqlite("could not read due outbox rows"))?;
            let until = now.saturating_add(lease_ms(lease));
            for row in &rows {
                tx.execute(
                    "UPDATE outbox SET claimed_until = ?2 WHERE id = ?1",
                    params![row.0.id, until],
                )
                .map_err(StoreError::sqlite("could not claim an outbox row"))?;
            }
            rows.into_iter().map(decode).collect()
        })
    }

    /// Marks a row delivered: it is never tried again.
    pub fn outbox_delivered(&self, id: i64, at: SystemTime) -> Result<(), StoreError> {
        let at = millis(at, "delivered")?;
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE outbox SET delivered = ?2, claimed_until = NULL WHERE id = ?1",
                params![id, at],
            )
            .map_err(StoreError::sqlite("could not mark an outbox row delivered"))?;
            Ok(())
        })
    }

    /// Records a failed attempt and when to try again.
    pub fn outbox_retry(&self, id: i64, due: SystemTime, error: &str) -> Result<(), StoreError> {
        let due = millis(due, "outbox.due")?;
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, due = ?2, last_error = ?3,
                 claimed_until = NULL WHERE id = ?1",
                params![id, due, error],
            )
            .map_err(StoreError::sqlite("could not reschedule an outbox row"))?;
            Ok(())
        })
    }

    /// Records a last failed attempt and dead-letters the row: it leaves the pending set
    /// (the rows behind it may go) and is never tried again.
    pub fn outbox_dead(&self, id: i64, at: SystemTime, error: &str) -> Result<(), StoreError> {
        let at = millis(at, "outbox.dead")?;
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, dead = ?2, last_error = ?3,
                 claimed_until = NULL WHERE id = ?1",
                params![id, at, error],
            )
            .map_err(StoreError::sqlite("could not dead-letter an outbox row"))?;
            Ok(())
        })
    }

    /// Dead-lettered rows still kept (retention deletes them with other finished rows).
    pub fn outbox_dead_letters(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .lock()
            .conn
            .prepare_cached("SELECT COUNT(*) FROM outbox WHERE dead IS NOT NULL")
            .and_then(|mut s| s.query_row([], |r| r.get(0)))
            .map_err(StoreError::sqlite("could not count dead letters"))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The size of the database file's pages in use (the WAL not included).
    pub fn database_bytes(&self) -> Result<u64, StoreError> {
        let conn = &self.lock().conn;
        let pragma = |name: &str| -> Result<i64, StoreError> {
            conn.pragma_query_value(None, name, |r| r.get(0))
                .map_err(StoreError::sqlite("could not read the database size"))
        };
        let bytes = pragma("page_count")?.saturating_mul(pragma("page_size")?);
        Ok(u64::try_from(bytes).unwrap_or(0))
    }

    /// The pending rows (every channel) and when the oldest of them was created.
    pub fn outbox_backlog(&self) -> Result<(u64, Option<SystemTime>), StoreError> {
        let (count, oldest): (i64, Option<i64>) = self
            .lock()
            .conn
            .prepare_cached(&format!(
                "SELECT COUNT(*), MIN(created) FROM outbox WHERE {PENDING}"
            ))
            .and_then(|mut s| s.query_row([], |r| Ok((r.get(0)?, r.get(1)?))))
            .map_err(StoreError::sqlite("could not count pending outbox rows"))?;
        let oldest = oldest
            .map(|ms| codec::time(ms, "outbox.created"))
            .transpose()?;
        Ok((u64::try_from(count).unwrap_or(0), oldest))
    }

    /// Gives claimed rows back without counting an attempt.
    pub fn outbox_release(&self, ids: &[i64]) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            for id in ids {
                tx.execute(
                    "UPDATE outbox SET claimed_until = NULL WHERE id = ?1",
                    params![id],
                )
                .map_err(StoreError::sqlite("could not release an outbox row"))?;
            }
            Ok(())
        })
    }

    /// Releases every claim: at start-up, claims left by a monitor that was killed
    /// mid-delivery belong to nobody (one monitor owns a SQLite store), so its rows are
    /// retried at once rather than after their lease. Returns the rows released.
    pub fn outbox_release_all(&self) -> Result<usize, StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "UPDATE outbox SET claimed_until = NULL
                 WHERE claimed_until IS NOT NULL AND delivered IS NULL",
                [],
            )
            .map_err(StoreError::sqlite("could not release outbox claims"))
        })
    }

    /// When the next pending row of `channel` may be tried (its due time, or the end of its
    /// claim), or `None` when nothing is pending.
    pub fn outbox_next_due(&self, channel: &str) -> Result<Option<SystemTime>, StoreError> {
        let next: Option<i64> = self
            .lock()
            .conn
            .prepare_cached(&format!(
                "SELECT MIN(MAX(due, COALESCE(claimed_until, 0))) FROM outbox
                     WHERE channel = ?1 AND {PENDING} AND {IN_ORDER}"
            ))
            .and_then(|mut s| s.query_row([channel], |r| r.get(0)))
            .optional()
            .map_err(StoreError::sqlite(
                "could not read the next outbox due time",
            ))?
            .flatten();
        next.map(|ms| codec::time(ms, "outbox.due")).transpose()
    }

    /// The latest `limit` outbox rows, newest first; only the pending ones if `pending`.
    pub fn outbox(&self, limit: usize, pending: bool) -> Result<Vec<OutboxRow>, StoreError> {
        let filter = if pending {
            format!("WHERE {PENDING}")
        } else {
            String::new()
        };
        let limit = read::limit(limit);
        let rows = self
            .lock()
            .conn
            .prepare(&format!(
                "SELECT {ROW} FROM outbox {filter} ORDER BY id DESC LIMIT ?1"
            ))
            .and_then(|mut s| {
                s.query_map([limit], outbox_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sqlite("could not read the outbox"))?;
        rows.into_iter().map(decode).collect()
    }

    /// The latest `limit` alerts, newest first.
    pub fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        let limit = read::limit(limit);
        let rows = self
            .lock()
            .conn
            .prepare_cached(
                "SELECT key, target, kind, at, payload, muted_by, group_key FROM alerts
                 ORDER BY at DESC, rowid DESC LIMIT ?1",
            )
            .and_then(|mut s| {
                s.query_map([limit], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sqlite("could not read alerts"))?;
        rows.into_iter()
            .map(|(key, target, kind, at, payload, muted_by, group_key)| {
                Ok(AlertRecord {
                    key,
                    target,
                    kind,
                    at: codec::time(at, "alerts.at")?,
                    payload,
                    muted_by,
                    group_key,
                })
            })
            .collect()
    }

    /// Saves a silence; returns its id.
    pub fn add_silence(&self, silence: &Silence) -> Result<i64, StoreError> {
        let created = millis(silence.created, "silence.created")?;
        let until = millis(silence.until, "silence.until")?;
        let targets = json_list(&silence.targets);
        let groups = json_list(&silence.groups);
        self.with_tx(|tx| {
            tx.execute(
                "INSERT INTO silences (targets, groups_, created, until, comment)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![targets, groups, created, until, silence.comment],
            )
            .map_err(StoreError::sqlite("could not save a silence"))?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Ends a silence at `now` (it stays listed as expired); `false` if no such silence.
    pub fn expire_silence(&self, id: i64, now: SystemTime) -> Result<bool, StoreError> {
        let now = millis(now, "now")?;
        self.with_tx(|tx| {
            let changed = tx
                .execute(
                    "UPDATE silences SET until = MIN(until, ?2) WHERE id = ?1",
                    params![id, now],
                )
                .map_err(StoreError::sqlite("could not expire a silence"))?;
            Ok(changed > 0)
        })
    }

    /// Silences that end after `after`, oldest first.
    pub fn silences(&self, after: SystemTime) -> Result<Vec<Silence>, StoreError> {
        let after = millis(after, "after")?;
        let rows = self
            .lock()
            .conn
            .prepare_cached(
                "SELECT id, targets, groups_, created, until, comment FROM silences
                 WHERE until > ?1 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map([after], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sqlite("could not read silences"))?;
        rows.into_iter()
            .map(|(id, targets, groups, created, until, comment)| {
                Ok(Silence {
                    id,
                    targets: parse_list(&targets, "silences.targets")?,
                    groups: parse_list(&groups, "silences.groups_")?,
                    created: codec::time(created, "silences.created")?,
                    until: codec::time(until, "silences.until")?,
                    comment,
                })
            })
            .collect()
    }

    /// Saves what the notification policy remembers of `target` (opaque JSON).
    pub fn save_notify_state(&self, target: &str, state: &str) -> Result<(), StoreError> {
        self.with_tx(|tx| {
            tx.execute(
                "INSERT INTO notify_state (target, state) VALUES (?1, ?2)
                 ON CONFLICT(target) DO UPDATE SET state = excluded.state",
                params![target, state],
            )
            .map_err(StoreError::sqlite("could not save a notification state"))?;
            Ok(())
        })
    }

    /// Every saved notification state, as (target, JSON).
    pub fn load_notify_states(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.lock()
            .conn
            .prepare("SELECT target, state FROM notify_state ORDER BY target")
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::sqlite("could not read notification states"))
    }
}

fn json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

fn parse_list(text: &str, column: &'static str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::Corrupt {
        what: format!("{column} = {text:?}, not a JSON list of strings"),
    })
}

mod groups;
#[cfg(test)]
mod tests;
