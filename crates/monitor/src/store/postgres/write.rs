//! Writing to PostgreSQL: one statement per kind of row whatever the batch's size, its
//! parameters arrays unnested into rows, so the statement stays prepared.
//!
//! Every input is checked before anything is sent (times after 1970, non-empty target ids),
//! so a bad row refuses its whole batch without a round trip. What this is not: reads, or a
//! retry loop (the caller decides what an unavailable server means).

use std::collections::HashMap;

use super::PgStore;
use crate::store::codec::{self, millis};
use crate::store::{CheckResult, Flags, Ping, StoreError, TargetState, Transition};

/// Interns target names: inserts the missing ones (committed on their own) and returns every
/// name's id. A name inserted concurrently by another replica after this statement's snapshot
/// is found by a second look.
pub(super) async fn target_ids<'a>(
    store: &PgStore,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, i64>, StoreError> {
    const WHAT: &str = "could not intern target names";
    let mut found = HashMap::new();
    let mut missing: Vec<String> = Vec::new();
    {
        let cache = store.cached_ids();
        for name in names {
            match cache.get(name) {
                Some(id) => {
                    found.insert(name.to_owned(), *id);
                }
                None if !found.contains_key(name) && !missing.iter().any(|m| m == name) => {
                    missing.push(name.to_owned())
                }
                None => {}
            }
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    let client = store.client(WHAT).await?;
    let statement = client
        .prepare_cached(
            "WITH input AS (SELECT DISTINCT unnest($1::text[]) AS name),
                  added AS (INSERT INTO targets (name) SELECT name FROM input
                            ON CONFLICT (name) DO NOTHING RETURNING id, name)
             SELECT id, name FROM added
             UNION ALL
             SELECT t.id, t.name FROM targets t JOIN input USING (name)",
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    for _ in 0..3 {
        let rows = client
            .query(&statement, &[&missing])
            .await
            .map_err(StoreError::postgres(WHAT))?;
        let mut cache = store.cached_ids();
        for row in rows {
            let id: i64 = row.try_get(0).map_err(StoreError::postgres(WHAT))?;
            let name: String = row.try_get(1).map_err(StoreError::postgres(WHAT))?;
            cache.insert(name.clone(), id);
            found.insert(name, id);
        }
        missing.retain(|name| !found.contains_key(name));
        if missing.is_empty() {
            return Ok(found);
        }
    }
    Err(StoreError::Corrupt {
        what: format!("no id for target names {missing:?} after inserting them"),
    })
}

/// One transition in, its id out: the same statement fenced or not.
pub(super) const INSERT_TRANSITION: &str = "INSERT INTO transitions
   (target, at, from_state, to_state, reason, cause_kind, cause_output)
 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id";

/// The parameters of [`INSERT_TRANSITION`].
pub(super) fn transition_params<'a>(
    target: &'a i64,
    at: &'a i64,
    t: &'a Transition,
    states: &'a (&'a str, &'a str),
) -> [&'a (dyn tokio_postgres::types::ToSql + Sync); 7] {
    [
        target,
        at,
        &states.0,
        &states.1,
        &t.reason,
        &t.cause_kind,
        &t.cause_output,
    ]
}

pub(super) async fn transition(store: &PgStore, t: &Transition) -> Result<i64, StoreError> {
    const WHAT: &str = "could not insert a transition";
    let at = millis(t.at, "transition time")?;
    let name = codec::target_name(&t.target, "a transition")?;
    let target = target_ids(store, [name]).await?[name];
    let client = store.client(WHAT).await?;
    let statement = client
        .prepare_cached(INSERT_TRANSITION)
        .await
        .map_err(StoreError::postgres(WHAT))?;
    let states = (t.from.as_str(), t.to.as_str());
    let row = client
        .query_one(&statement, &transition_params(&target, &at, t, &states))
        .await
        .map_err(StoreError::postgres(WHAT))?;
    row.try_get(0).map_err(StoreError::postgres(WHAT))
}

pub(super) async fn results(store: &PgStore, batch: &[CheckResult]) -> Result<(), StoreError> {
    const WHAT: &str = "could not insert results";
    if batch.is_empty() {
        return Ok(());
    }
    let mut at = Vec::with_capacity(batch.len());
    for r in batch {
        at.push(millis(r.at, "result time")?);
        codec::target_name(&r.target, "a check result")?;
    }
    let ids = target_ids(store, batch.iter().map(|r| r.target.as_str())).await?;
    let target: Vec<i64> = batch.iter().map(|r| ids[&r.target]).collect();
    let kind: Vec<i16> = batch
        .iter()
        .map(|r| codec::kind_code(r.kind) as i16)
        .collect();
    let duration: Vec<i64> = batch.iter().map(|r| codec::micros(r.duration)).collect();
    let output: Vec<Option<&str>> = batch.iter().map(|r| r.output.as_deref()).collect();
    let client = store.client(WHAT).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO results (target, at, kind, duration_us, output)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::bigint[],
                                  $5::text[])",
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    client
        .execute(&statement, &[&target, &at, &kind, &duration, &output])
        .await
        .map_err(StoreError::postgres(WHAT))?;
    Ok(())
}

pub(super) async fn pings(store: &PgStore, batch: &[Ping]) -> Result<(), StoreError> {
    const WHAT: &str = "could not insert pings";
    if batch.is_empty() {
        return Ok(());
    }
    let mut at = Vec::with_capacity(batch.len());
    for p in batch {
        at.push(millis(p.at, "ping time")?);
        codec::target_name(&p.target, "a ping")?;
    }
    let ids = target_ids(store, batch.iter().map(|p| p.target.as_str())).await?;
    let target: Vec<i64> = batch.iter().map(|p| ids[&p.target]).collect();
    let (kind, exit): (Vec<&str>, Vec<Option<i16>>) = batch
        .iter()
        .map(|p| {
            let (kind, exit) = codec::ping_code(p.kind);
            (kind, exit.map(|e| e as i16))
        })
        .unzip();
    let rid: Vec<Option<&str>> = batch.iter().map(|p| p.rid.as_deref()).collect();
    let body: Vec<Option<&str>> = batch.iter().map(|p| p.body.as_deref()).collect();
    let duration: Vec<Option<i64>> = batch
        .iter()
        .map(|p| p.duration.map(codec::micros))
        .collect();
    let source: Vec<Option<&str>> = batch.iter().map(|p| p.source.as_deref()).collect();
    let client = store.client(WHAT).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO pings (target, at, kind, exit_status, rid, body, duration_us, source)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::smallint[],
                                  $5::text[], $6::text[], $7::bigint[], $8::text[])",
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    client
        .execute(
            &statement,
            &[&target, &at, &kind, &exit, &rid, &body, &duration, &source],
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    Ok(())
}

pub(super) async fn states(store: &PgStore, states: &[TargetState]) -> Result<(), StoreError> {
    const WHAT: &str = "could not save target states";
    if states.is_empty() {
        return Ok(());
    }
    let mut since = Vec::with_capacity(states.len());
    for st in states {
        since.push(st.since.map(|t| millis(t, "state since")).transpose()?);
        codec::target_name(&st.target, "a target state")?;
    }
    let ids = target_ids(store, states.iter().map(|s| s.target.as_str())).await?;
    // One row per target: a second row for the same target in one statement would be an
    // error in PostgreSQL ("ON CONFLICT DO UPDATE command cannot affect row a second time");
    // the last one wins, as it would in a loop of upserts.
    let mut last: HashMap<i64, usize> = HashMap::new();
    for (i, st) in states.iter().enumerate() {
        last.insert(ids[&st.target], i);
    }
    let mut rows: Vec<usize> = last.into_values().collect();
    rows.sort_unstable();
    let target: Vec<i64> = rows.iter().map(|&i| ids[&states[i].target]).collect();
    let state: Vec<&str> = rows.iter().map(|&i| states[i].state.as_str()).collect();
    let since: Vec<Option<i64>> = rows.iter().map(|&i| since[i]).collect();
    let flapping: Vec<bool> = rows.iter().map(|&i| states[i].flapping).collect();
    let failures: Vec<i64> = rows
        .iter()
        .map(|&i| i64::from(states[i].consecutive_failures))
        .collect();
    let successes: Vec<i64> = rows
        .iter()
        .map(|&i| i64::from(states[i].consecutive_successes))
        .collect();
    let client = store.client(WHAT).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO states (target, state, since, flapping, consecutive_failures,
                                 consecutive_successes)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::boolean[],
                                  $5::bigint[], $6::bigint[])
             ON CONFLICT (target) DO UPDATE SET
               state = excluded.state,
               since = excluded.since,
               flapping = excluded.flapping,
               consecutive_failures = excluded.consecutive_failures,
               consecutive_successes = excluded.consecutive_successes",
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    client
        .execute(
            &statement,
            &[&target, &state, &since, &flapping, &failures, &successes],
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    Ok(())
}

pub(super) async fn flags(store: &PgStore, target: &str, flags: &Flags) -> Result<(), StoreError> {
    const WHAT: &str = "could not set a target's flags";
    let until = flags
        .maintenance_until
        .map(|t| millis(t, "maintenance end"))
        .transpose()?;
    let name = codec::target_name(target, "a flag change")?;
    let id = target_ids(store, [name]).await?[name];
    let client = store.client(WHAT).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO states (target, state, paused, maintenance_until)
             VALUES ($1, 'unknown', $2, $3)
             ON CONFLICT (target) DO UPDATE SET
               paused = excluded.paused,
               maintenance_until = excluded.maintenance_until",
        )
        .await
        .map_err(StoreError::postgres(WHAT))?;
    client
        .execute(&statement, &[&id, &flags.paused, &until])
        .await
        .map_err(StoreError::postgres(WHAT))?;
    Ok(())
}
