//! Writing: one [`Batch`] is one SQLite transaction holding any mix of writes.
//!
//! [`Store`]'s write methods each run one batch; the [`Writer`](super::Writer) thread packs
//! many queued writes into one batch (group commit). Batches begin `IMMEDIATE`, taking the
//! write lock up front, so they wait out another writer within the busy timeout instead of
//! failing when a read upgrades to a write. What this is not: reads, maintenance, or any
//! decision about what to write.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::codec::{self, millis};
use super::{CheckResult, Flags, Inner, Ping, StoreError, TargetState, Transition};

/// An open write transaction plus the target ids it interned.
pub(crate) struct Batch<'a> {
    tx: Transaction<'a>,
    /// Target ids known to be committed.
    ids: &'a mut HashMap<String, i64>,
    /// Target ids created in this transaction: they join `ids` only once it commits, so a
    /// rolled-back batch cannot leave a cached id that the file does not have.
    fresh: HashMap<String, i64>,
}

impl<'a> Batch<'a> {
    pub(crate) fn begin(inner: &'a mut Inner) -> Result<Self, StoreError> {
        let Inner { conn, ids } = inner;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::sqlite("could not begin a write transaction"))?;
        Ok(Batch {
            tx,
            ids,
            fresh: HashMap::new(),
        })
    }

    /// The transaction itself, for writes that need no target ids (alerts, outbox rows).
    pub(crate) fn tx(&self) -> &Transaction<'a> {
        &self.tx
    }

    pub(crate) fn commit(self) -> Result<(), StoreError> {
        self.tx
            .commit()
            .map_err(StoreError::sqlite("could not commit a write transaction"))?;
        self.ids.extend(self.fresh);
        Ok(())
    }

    /// The interned id of `name`, creating it if needed.
    fn target_id(&mut self, name: &str, what: &'static str) -> Result<i64, StoreError> {
        let name = codec::target_name(name, what)?;
        if let Some(id) = self.ids.get(name).or_else(|| self.fresh.get(name)) {
            return Ok(*id);
        }
        let existing: Option<i64> = self
            .tx
            .prepare_cached("SELECT id FROM targets WHERE name = ?1")
            .and_then(|mut s| s.query_row([name], |r| r.get(0)).optional())
            .map_err(StoreError::sqlite("could not look up a target id"))?;
        let id = match existing {
            Some(id) => {
                // Committed by someone (another connection, or an earlier batch): safe to cache.
                self.ids.insert(name.to_owned(), id);
                return Ok(id);
            }
            None => self
                .tx
                .prepare_cached("INSERT INTO targets (name) VALUES (?1)")
                .and_then(|mut s| s.insert([name]))
                .map_err(StoreError::sqlite("could not add a target"))?,
        };
        self.fresh.insert(name.to_owned(), id);
        Ok(id)
    }

    pub(crate) fn transition(&mut self, t: &Transition) -> Result<i64, StoreError> {
        let at = millis(t.at, "transition time")?;
        let target = self.target_id(&t.target, "a transition")?;
        self.tx
            .prepare_cached(
                "INSERT INTO transitions
                   (target, at, from_state, to_state, reason, cause_kind, cause_output)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .and_then(|mut s| {
                s.insert(params![
                    target,
                    at,
                    t.from.as_str(),
                    t.to.as_str(),
                    t.reason,
                    t.cause_kind,
                    t.cause_output
                ])
            })
            .map_err(StoreError::sqlite("could not insert a transition"))
    }

    /// Inserts results, all or none: the first one refused (a time before 1970, an empty
    /// target) fails the call, and the caller's transaction with it.
    pub(crate) fn results(&mut self, batch: &[CheckResult]) -> Result<(), StoreError> {
        let mut first = None;
        self.results_each(batch, |e| {
            first.get_or_insert(e);
        })?;
        first.map_or(Ok(()), Err)
    }

    /// Inserts results; returns how many went in. A result refused as bad input is handed to
    /// `refused` and costs only itself; a database error ends the call.
    ///
    /// One prepared statement serves the whole slice, and it has no subquery: a result goes in
    /// with `seq = 0`, and only when its target already has a result in that very millisecond
    /// (the primary key says so) is it inserted again with the next `seq`.
    pub(crate) fn results_each(
        &mut self,
        batch: &[CheckResult],
        mut refused: impl FnMut(StoreError),
    ) -> Result<u64, StoreError> {
        const WHAT: &str = "could not insert a check result";
        // Ids first: interning needs `&mut self`, the statements below borrow the transaction.
        let mut rows = Vec::with_capacity(batch.len());
        for r in batch {
            let key = millis(r.at, "check result time")
                .and_then(|at| Ok((self.target_id(&r.target, "a check result")?, at)));
            match key {
                Ok((target, at)) => rows.push((target, at, r)),
                Err(e @ StoreError::Sqlite { .. }) => return Err(e),
                Err(e) => refused(e),
            }
        }
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO results (target, at, seq, kind, duration_us, output)
                 VALUES (?1, ?2, 0, ?3, ?4, ?5)",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        for &(target, at, r) in &rows {
            let values = params![
                target,
                at,
                codec::kind_code(r.kind),
                codec::micros(r.duration),
                r.output
            ];
            match insert.execute(values) {
                Ok(_) => {}
                Err(e)
                    if e.sqlite_extended_error_code()
                        == Some(rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY) =>
                {
                    self.tx
                        .prepare_cached(
                            "INSERT INTO results (target, at, seq, kind, duration_us, output)
                             VALUES (?1, ?2,
                               (SELECT MAX(seq) + 1 FROM results WHERE target = ?1 AND at = ?2),
                               ?3, ?4, ?5)",
                        )
                        .and_then(|mut s| s.execute(values))
                        .map_err(StoreError::sqlite(WHAT))?;
                }
                Err(e) => return Err(StoreError::sqlite(WHAT)(e)),
            }
        }
        Ok(rows.len() as u64)
    }

    /// Upserts each target's state; leaves its flags alone.
    pub(crate) fn states(&mut self, states: &[TargetState]) -> Result<(), StoreError> {
        for st in states {
            let since = st.since.map(|t| millis(t, "state since")).transpose()?;
            let target = self.target_id(&st.target, "a target state")?;
            self.tx
                .prepare_cached(
                    "INSERT INTO states (target, state, since, flapping,
                                         consecutive_failures, consecutive_successes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (target) DO UPDATE SET
                       state = excluded.state,
                       since = excluded.since,
                       flapping = excluded.flapping,
                       consecutive_failures = excluded.consecutive_failures,
                       consecutive_successes = excluded.consecutive_successes",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        target,
                        st.state.as_str(),
                        since,
                        st.flapping,
                        st.consecutive_failures,
                        st.consecutive_successes
                    ])
                })
                .map_err(StoreError::sqlite("could not save a target state"))?;
        }
        Ok(())
    }

    /// Sets a target's flags; a target with no saved state gets one in `unknown`.
    pub(crate) fn flags(&mut self, target: &str, flags: &Flags) -> Result<(), StoreError> {
        let until = flags
            .maintenance_until
            .map(|t| millis(t, "maintenance end"))
            .transpose()?;
        let target = self.target_id(target, "a flag change")?;
        self.tx
            .prepare_cached(
                "INSERT INTO states (target, state, paused, maintenance_until)
                 VALUES (?1, 'unknown', ?2, ?3)
                 ON CONFLICT (target) DO UPDATE SET
                   paused = excluded.paused,
                   maintenance_until = excluded.maintenance_until",
            )
            .and_then(|mut s| s.execute(params![target, flags.paused, until]))
            .map_err(StoreError::sqlite("could not set a target's flags"))?;
        Ok(())
    }

    pub(crate) fn ping(&mut self, p: &Ping) -> Result<(), StoreError> {
        let mut first = None;
        self.pings_each(std::slice::from_ref(p), |e| {
            first.get_or_insert(e);
        })?;
        first.map_or(Ok(()), Err)
    }

    /// Inserts pings, like [`Batch::results_each`]: returns how many went in; one refused as
    /// bad input is handed to `refused` and costs only itself.
    pub(crate) fn pings_each(
        &mut self,
        batch: &[Ping],
        mut refused: impl FnMut(StoreError),
    ) -> Result<u64, StoreError> {
        const WHAT: &str = "could not insert a ping";
        let mut rows = Vec::with_capacity(batch.len());
        for p in batch {
            let key = millis(p.at, "ping time")
                .and_then(|at| Ok((self.target_id(&p.target, "a ping")?, at)));
            match key {
                Ok((target, at)) => rows.push((target, at, p)),
                Err(e @ StoreError::Sqlite { .. }) => return Err(e),
                Err(e) => refused(e),
            }
        }
        let mut insert = self
            .tx
            .prepare_cached(
                "INSERT INTO pings
                   (target, at, kind, exit_status, rid, body, duration_us, source)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(StoreError::sqlite(WHAT))?;
        for &(target, at, p) in &rows {
            let (kind, exit) = codec::ping_code(p.kind);
            insert
                .execute(params![
                    target,
                    at,
                    kind,
                    exit,
                    p.rid,
                    p.body,
                    p.duration.map(codec::micros),
                    p.source
                ])
                .map_err(StoreError::sqlite(WHAT))?;
        }
        Ok(rows.len() as u64)
    }
}
