//! Replicas and shard leases in PostgreSQL, and the fenced writes they guard (issue 12).
//!
//! A replica announces itself in `replicas` (its presence expires like a lease); each of the
//! 256 shards has one row in `leases` (owner, expiry, epoch). The store only carries out
//! what the sans-IO [`plan`](vitals_engine::shards::plan) decided, each step conditional in
//! SQL, so two replicas acting on stale views still cannot both hold a shard:
//!
//! - renew: only a lease still ours and unexpired, same epoch;
//! - acquire: only a free or expired lease, and the epoch goes up;
//! - release: only a lease that is ours.
//!
//! Every time is the server's clock (`clock_timestamp()`), so replicas need no clock
//! agreement. A fenced write checks, in its own transaction and under `FOR SHARE` (so a
//! takeover waits for it to commit), that the shard is still ours at that epoch and
//! unexpired; otherwise it is refused with [`StoreError::Fenced`] and writes nothing.
//!
//! What this is not: the decisions (the engine's `shards` module) or the loop that runs
//! them.

use vitals_engine::shards::{Lease, Plan, Shard};

use super::PgStore;
use crate::store::codec::{self, millis};
use crate::store::{StoreError, TargetState, Transition};

/// The server's clock in unix milliseconds, as SQL.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// A replica as the store lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    /// Where its API answers, as it announced.
    pub api: Option<String>,
    pub started_ms: i64,
    pub seen_ms: i64,
    pub expires_ms: i64,
}

/// The right to write for one shard: held by `owner` at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub owner: String,
    pub shard: Shard,
    pub epoch: i64,
}

/// What one round did: the leases now held, each with its epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    pub renewed: Vec<(Shard, i64)>,
    pub acquired: Vec<(Shard, i64)>,
    pub released: Vec<Shard>,
}

fn shards(list: &[Shard]) -> Vec<i32> {
    list.iter().map(|s| i32::from(*s)).collect()
}

fn shard(v: i32) -> Result<Shard, StoreError> {
    Shard::try_from(v).map_err(|_| StoreError::Corrupt {
        what: format!("leases.shard = {v}"),
    })
}

impl PgStore {
    /// The server's clock, unix milliseconds.
    pub async fn now_ms(&self) -> Result<i64, StoreError> {
        const WHAT: &str = "could not read PostgreSQL's clock";
        let client = self.client(WHAT).await?;
        let row = client
            .query_one(&format!("SELECT {NOW_MS}"), &[])
            .await
            .map_err(StoreError::postgres(WHAT))?;
        row.try_get(0).map_err(StoreError::postgres(WHAT))
    }

    /// Announces (or renews) replica `id`'s presence for `lease_ms`; returns the server's
    /// time of it.
    pub async fn announce(
        &self,
        id: &str,
        api: Option<&str>,
        lease_ms: i64,
    ) -> Result<i64, StoreError> {
        const WHAT: &str = "could not announce this replica";
        let client = self.client(WHAT).await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO replicas (id, api, started_ms, seen_ms, expires_ms)
                 VALUES ($1, $2, {NOW_MS}, {NOW_MS}, {NOW_MS} + $3)
                 ON CONFLICT (id) DO UPDATE SET api = excluded.api,
                   seen_ms = excluded.seen_ms, expires_ms = excluded.expires_ms
                 RETURNING seen_ms"
            ))
            .await
            .map_err(StoreError::postgres(WHAT))?;
        let row = client
            .query_one(&statement, &[&id, &api, &lease_ms])
            .await
            .map_err(StoreError::postgres(WHAT))?;
        row.try_get(0).map_err(StoreError::postgres(WHAT))
    }

    /// Removes replica `id` and frees its leases (a clean shutdown: the others take its
    /// shards at their next round instead of after the lease). Tried twice: it is the last
    /// call a replica makes, and a pooled connection may be found closed (the pool's fast
    /// recycling sees a closure only once the connection's task has; one was, once, in the
    /// replicas test), which the second try, on a new connection, gets past.
    pub async fn leave(&self, id: &str) -> Result<(), StoreError> {
        match self.leave_once(id).await {
            Err(StoreError::Postgres { source, .. }) if source.is_closed() => {
                tracing::debug!("a pooled connection was closed; leaving on a new one");
                self.leave_once(id).await
            }
            result => result,
        }
    }

    async fn leave_once(&self, id: &str) -> Result<(), StoreError> {
        const WHAT: &str = "could not leave the fleet";
        let mut client = self.client(WHAT).await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::postgres(WHAT))?;
        tx.execute(
            "UPDATE leases SET owner = NULL, expires_ms = 0 WHERE owner = $1",
            &[&id],
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
        tx.execute("DELETE FROM replicas WHERE id = $1", &[&id])
            .await
            .map_err(StoreError::postgres(WHAT))?;
        tx.commit().await.map_err(StoreError::postgres(WHAT))
    }

    /// Every replica that announced itself, live or not, by id.
    pub async fn replicas(&self) -> Result<Vec<Replica>, StoreError> {
        const WHAT: &str = "could not list replicas";
        let client = self.client(WHAT).await?;
        let rows = client
            .query(
                "SELECT id, api, started_ms, seen_ms, expires_ms FROM replicas ORDER BY id",
                &[],
            )
            .await
            .map_err(StoreError::postgres(WHAT))?;
        rows.iter()
            .map(|row| {
                Ok(Replica {
                    id: row.try_get(0).map_err(StoreError::postgres(WHAT))?,
                    api: row.try_get(1).map_err(StoreError::postgres(WHAT))?,
                    started_ms: row.try_get(2).map_err(StoreError::postgres(WHAT))?,
                    seen_ms: row.try_get(3).map_err(StoreError::postgres(WHAT))?,
                    expires_ms: row.try_get(4).map_err(StoreError::postgres(WHAT))?,
                })
            })
            .collect()
    }

    /// Every shard's lease, by shard.
    pub async fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        const WHAT: &str = "could not read the leases";
        let client = self.client(WHAT).await?;
        let rows = client
            .query(
                "SELECT shard, owner, expires_ms, epoch FROM leases ORDER BY shard",
                &[],
            )
            .await
            .map_err(StoreError::postgres(WHAT))?;
        rows.iter()
            .map(|row| {
                Ok(Lease {
                    shard: shard(row.try_get(0).map_err(StoreError::postgres(WHAT))?)?,
                    owner: row.try_get(1).map_err(StoreError::postgres(WHAT))?,
                    expires_ms: row.try_get(2).map_err(StoreError::postgres(WHAT))?,
                    epoch: row.try_get(3).map_err(StoreError::postgres(WHAT))?,
                })
            })
            .collect()
    }

    /// Carries out `plan` for replica `me`, each step only where the lease still allows it
    /// (see the module docs); returns what it did.
    pub async fn carry_out(
        &self,
        me: &str,
        plan: &Plan,
        lease_ms: i64,
    ) -> Result<Held, StoreError> {
        const WHAT: &str = "could not update the leases";
        let client = self.client(WHAT).await?;
        let held = |rows: Vec<tokio_postgres::Row>| -> Result<Vec<(Shard, i64)>, StoreError> {
            rows.iter()
                .map(|row| {
                    Ok((
                        shard(row.try_get(0).map_err(StoreError::postgres(WHAT))?)?,
                        row.try_get(1).map_err(StoreError::postgres(WHAT))?,
                    ))
                })
                .collect()
        };
        let mut out = Held::default();
        if !plan.renew.is_empty() {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE leases SET expires_ms = {NOW_MS} + $3
                      WHERE shard = ANY($1) AND owner = $2 AND expires_ms > {NOW_MS}
                      RETURNING shard, epoch"
                ))
                .await
                .map_err(StoreError::postgres(WHAT))?;
            let rows = client
                .query(&statement, &[&shards(&plan.renew), &me, &lease_ms])
                .await
                .map_err(StoreError::postgres(WHAT))?;
            out.renewed = held(rows)?;
        }
        if !plan.acquire.is_empty() {
            let statement = client
                .prepare_cached(&format!(
                    "UPDATE leases SET owner = $2, expires_ms = {NOW_MS} + $3, epoch = epoch + 1
                      WHERE shard = ANY($1) AND (owner IS NULL OR expires_ms <= {NOW_MS})
                      RETURNING shard, epoch"
                ))
                .await
                .map_err(StoreError::postgres(WHAT))?;
            let rows = client
                .query(&statement, &[&shards(&plan.acquire), &me, &lease_ms])
                .await
                .map_err(StoreError::postgres(WHAT))?;
            out.acquired = held(rows)?;
        }
        if !plan.release.is_empty() {
            let statement = client
                .prepare_cached(
                    "UPDATE leases SET owner = NULL, expires_ms = 0
                      WHERE shard = ANY($1) AND owner = $2 RETURNING shard",
                )
                .await
                .map_err(StoreError::postgres(WHAT))?;
            let rows = client
                .query(&statement, &[&shards(&plan.release), &me])
                .await
                .map_err(StoreError::postgres(WHAT))?;
            out.released = rows
                .iter()
                .map(|row| shard(row.try_get(0).map_err(StoreError::postgres(WHAT))?))
                .collect::<Result<_, _>>()?;
        }
        Ok(out)
    }

    /// Saves `state` only if `fence` still holds (see [`PgStore::record_fenced`]).
    pub async fn save_state_fenced(
        &self,
        fence: &Fence,
        state: &TargetState,
    ) -> Result<(), StoreError> {
        const WHAT: &str = "could not save a fenced state";
        let since = state.since.map(|t| millis(t, "state since")).transpose()?;
        let name = codec::target_name(&state.target, "a target state")?;
        let target = super::write::target_ids(self, [name]).await?[name];
        let client = self.client(WHAT).await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO states (target, state, since, flapping, consecutive_failures,
                                     consecutive_successes)
                 SELECT $1, $2, $3, $4, $5, $6 FROM leases
                  WHERE shard = $7 AND owner = $8 AND epoch = $9 AND expires_ms > {NOW_MS}
                 ON CONFLICT (target) DO UPDATE SET
                   state = excluded.state, since = excluded.since,
                   flapping = excluded.flapping,
                   consecutive_failures = excluded.consecutive_failures,
                   consecutive_successes = excluded.consecutive_successes"
            ))
            .await
            .map_err(StoreError::postgres(WHAT))?;
        let written = client
            .execute(
                &statement,
                &[
                    &target,
                    &state.state.as_str(),
                    &since,
                    &state.flapping,
                    &i64::from(state.consecutive_failures),
                    &i64::from(state.consecutive_successes),
                    &i32::from(fence.shard),
                    &fence.owner,
                    &fence.epoch,
                ],
            )
            .await
            .map_err(StoreError::postgres(WHAT))?;
        if written == 0 {
            return Err(StoreError::Fenced {
                shard: i32::from(fence.shard),
                epoch: fence.epoch,
            });
        }
        Ok(())
    }

    /// Records a transition and then its target's state, in one transaction, only if
    /// `fence` still holds (the shard's lease is `fence.owner`'s, at `fence.epoch`,
    /// unexpired): otherwise [`StoreError::Fenced`] and nothing is written.
    pub async fn record_fenced(
        &self,
        fence: &Fence,
        t: &Transition,
        state: Option<&TargetState>,
    ) -> Result<i64, StoreError> {
        const WHAT: &str = "could not record a fenced transition";
        let at = millis(t.at, "transition time")?;
        let name = codec::target_name(&t.target, "a transition")?;
        let since = state
            .and_then(|s| s.since)
            .map(|t| millis(t, "state since"))
            .transpose()?;
        let target = super::write::target_ids(self, [name]).await?[name];
        let mut client = self.client(WHAT).await?;
        let tx = client
            .transaction()
            .await
            .map_err(StoreError::postgres(WHAT))?;
        let holds = tx
            .query_opt(
                &format!(
                    "SELECT 1 FROM leases WHERE shard = $1 AND owner = $2 AND epoch = $3
                       AND expires_ms > {NOW_MS} FOR SHARE"
                ),
                &[&i32::from(fence.shard), &fence.owner, &fence.epoch],
            )
            .await
            .map_err(StoreError::postgres(WHAT))?;
        if holds.is_none() {
            return Err(StoreError::Fenced {
                shard: i32::from(fence.shard),
                epoch: fence.epoch,
            });
        }
        let states = (t.from.as_str(), t.to.as_str());
        let row = tx
            .query_one(
                super::write::INSERT_TRANSITION,
                &super::write::transition_params(&target, &at, t, &states),
            )
            .await
            .map_err(StoreError::postgres(WHAT))?;
        let id: i64 = row.try_get(0).map_err(StoreError::postgres(WHAT))?;
        if let Some(st) = state {
            tx.execute(
                "INSERT INTO states (target, state, since, flapping, consecutive_failures,
                                     consecutive_successes)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (target) DO UPDATE SET
                   state = excluded.state, since = excluded.since,
                   flapping = excluded.flapping,
                   consecutive_failures = excluded.consecutive_failures,
                   consecutive_successes = excluded.consecutive_successes",
                &[
                    &target,
                    &st.state.as_str(),
                    &since,
                    &st.flapping,
                    &i64::from(st.consecutive_failures),
                    &i64::from(st.consecutive_successes),
                ],
            )
            .await
            .map_err(StoreError::postgres(WHAT))?;
        }
        tx.commit().await.map_err(StoreError::postgres(WHAT))?;
        Ok(id)
    }
}
