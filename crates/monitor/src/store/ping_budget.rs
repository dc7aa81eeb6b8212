//! The cap on stored ping bodies per target (issue 11, item 2: 20,000 POSTs of 100 kB grew the
//! database to 2 GB). A retention step, not part of the write path: the writer stores every
//! ping as it comes, and this drops the bodies of a target's oldest pings once its bodies
//! together exceed the budget. The pings themselves (time, kind, run id, duration) stay, so
//! history and run durations are whole; only the logs go, oldest first.
//!
//! What this is not: the per-ping limit (`ping_body_limit`, checked before a ping is
//! accepted) or the rate of pings (the ping API's gate).

use rusqlite::Connection;

use super::{Store, StoreError};

impl Store {
    /// Keeps at most `budget` bytes of ping bodies per target, newest first; returns how many
    /// bodies were dropped.
    pub fn cap_ping_bodies(&self, budget: usize) -> Result<usize, StoreError> {
        if self.is_read_only() {
            return Err(StoreError::ReadOnly {
                path: self.path().to_owned(),
            });
        }
        cap(&self.lock().conn, budget)
    }
}

fn cap(conn: &Connection, budget: usize) -> Result<usize, StoreError> {
    const WHAT: &str = "could not cap the stored ping bodies";
    let budget = i64::try_from(budget).unwrap_or(i64::MAX);
    // Bytes, not characters: a body is TEXT, and LENGTH of TEXT counts characters.
    conn.prepare_cached(
        "UPDATE pings SET body = NULL WHERE id IN (
             SELECT id FROM (
                 SELECT id, SUM(LENGTH(CAST(body AS BLOB))) OVER (
                     PARTITION BY target ORDER BY id DESC ROWS UNBOUNDED PRECEDING
                 ) AS newer
                 FROM pings WHERE body IS NOT NULL
             ) WHERE newer > ?1
         )",
    )
    .and_then(|mut stmt| stmt.execute([budget]))
    .map_err(StoreError::sqlite(WHAT))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{at, temp_store};
    use super::super::{Ping, PingKind};

    /// Issue 11, item 2: a flood of large bodies is cut to the budget, newest kept, per target.
    #[test]
    fn the_oldest_bodies_go_first_and_pings_stay() {
        let (_dir, store) = temp_store();
        for target in ["flooded", "quiet"] {
            let pings = if target == "flooded" { 50 } else { 2 };
            for i in 0..pings {
                store
                    .record_ping(&Ping {
                        target: target.into(),
                        at: at(i),
                        kind: PingKind::Log,
                        rid: None,
                        // 1,000 bytes: 998 ASCII and one two-byte character.
                        body: Some(format!("{i:03}{}é", "x".repeat(995))),
                        duration: Some(Duration::from_millis(1)),
                        source: None,
                    })
                    .unwrap();
            }
        }
        assert_eq!(store.cap_ping_bodies(10_000).unwrap(), 40);
        let flooded = store.last_pings("flooded", 100).unwrap();
        assert_eq!(flooded.len(), 50, "every ping is kept");
        let kept: Vec<_> = flooded
            .iter()
            .filter_map(|p| p.body.as_ref().map(|b| b[..3].to_string()))
            .collect();
        assert_eq!(
            kept,
            (40..50)
                .rev()
                .map(|i| format!("{i:03}"))
                .collect::<Vec<_>>()
        );
        assert!(
            store
                .last_pings("quiet", 10)
                .unwrap()
                .iter()
                .all(|p| p.body.is_some())
        );
        assert_eq!(store.cap_ping_bodies(10_000).unwrap(), 0, "idempotent");
    }
}
