//! Replicas sharing one PostgreSQL (issue 12, docs/HA.md): which shards this replica holds
//! ([`Membership`]), and the lease loop that keeps them ([`lease_loop`]).
//!
//! Every [`ROUND`](Membership::round) the loop announces this replica, reads the replicas
//! and leases, asks the sans-IO [`plan`](vitals_engine::shards::plan) what to renew, acquire
//! and release, has the store carry it out (each step conditional in SQL), publishes the
//! shards now held with their epochs, and, when that set changed, has the reloader run the
//! targets of exactly those shards. Targets of a shard fall by their id (a service's checks,
//! `orders/database`, by their service's id).
//!
//! **No ownership without a renewed lease**: when rounds fail (PostgreSQL unreachable) for a
//! whole lease, this replica drops every shard and stops checking them; by then the others
//! may have taken them. Writes are fenced by the store whatever this replica believes.
//!
//! What this is not: the decisions (`vitals_engine::shards`) or the fenced writes
//! (`store::postgres::leases`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vitals_engine::shards::{self, Shard};

use crate::store::{Fence, PgStore, StoreError};

/// How long a lease and a replica's presence last without renewal. A killed replica's
/// shards are taken within it plus one round.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(4);

/// Shards acquired or released per round at most: a joining replica takes its share over a
/// few rounds instead of all at once.
pub const MAX_MOVES: usize = 64;

/// This replica's name and the shards it holds, with their epochs.
#[derive(Debug)]
pub struct Membership {
    pub me: String,
    pub lease: Duration,
    held: RwLock<BTreeMap<Shard, i64>>,
    /// Each shard's live holder's API address, as of the last round: where a heartbeat for
    /// a target this replica does not hold is forwarded.
    elsewhere: RwLock<HashMap<Shard, String>>,
}

/// The shard a target id falls in: a service's checks (`service/check`) fall with their
/// service.
pub fn shard_of(target: &str) -> Shard {
    shards::shard_of(target.split('/').next().unwrap_or(target))
}

impl Membership {
    pub fn new(me: String, lease: Duration) -> Self {
        Membership {
            me,
            lease,
            held: RwLock::new(BTreeMap::new()),
            elsewhere: RwLock::new(HashMap::new()),
        }
    }

    /// The time between rounds: a quarter of the lease, so three rounds may fail before a
    /// lease runs out.
    pub fn round(&self) -> Duration {
        self.lease / 4
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Whether this replica runs `target` now.
    pub fn owns(&self, target: &str) -> bool {
        self.held_map().contains_key(&shard_of(target))
    }

    /// The fence a write for `target` carries, or `None` when its shard is not held.
    pub fn fence(&self, target: &str) -> Option<Fence> {
        let shard = shard_of(target);
        self.held_map().get(&shard).map(|&epoch| Fence {
            owner: self.me.clone(),
            shard,
            epoch,
        })
    }

    /// The API address of the live replica holding `target`'s shard, when that is another
    /// replica.
    pub fn holder_api(&self, target_shard: Shard) -> Option<String> {
        self.elsewhere
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&target_shard)
            .cloned()
    }

    /// The shards held now, with their epochs.
    pub fn held(&self) -> BTreeMap<Shard, i64> {
        self.held_map().clone()
    }

    fn held_map(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Shard, i64>> {
        self.held
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replaces the held set; true when the shards (not only epochs) changed.
    fn publish(&self, next: BTreeMap<Shard, i64>) -> bool {
        let mut held = self
            .held
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = !held.keys().eq(next.keys());
        *held = next;
        changed
    }

    /// One round against the store; returns whether the held shards changed.
    pub async fn run_round(&self, store: &PgStore, api: Option<&str>) -> Result<bool, StoreError> {
        let now = store.announce(&self.me, api, self.lease_ms()).await?;
        let replicas = store.replicas().await?;
        let live: Vec<&str> = replicas
            .iter()
            .filter(|r| r.expires_ms > now)
            .map(|r| r.id.as_str())
            .collect();
        let leases = store.leases().await?;
        let apis: HashMap<&str, &str> = replicas
            .iter()
            .filter(|r| r.expires_ms > now && r.id != self.me)
            .filter_map(|r| Some((r.id.as_str(), r.api.as_deref()?)))
            .collect();
        let elsewhere = leases
            .iter()
            .filter(|l| l.is_live(now))
            .filter_map(|l| Some((l.shard, apis.get(l.owner.as_deref()?)?.to_string())))
            .collect();
        *self
            .elsewhere
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = elsewhere;
        let plan = shards::plan(&self.me, &live, &leases, now, MAX_MOVES);
        let done = store.carry_out(&self.me, &plan, self.lease_ms()).await?;
        if !done.acquired.is_empty() || !done.released.is_empty() {
            tracing::info!(
                acquired = done.acquired.len(),
                released = done.released.len(),
                held = done.renewed.len() + done.acquired.len(),
                live = live.len(),
                "shards moved"
            );
        }
        let next = done.renewed.into_iter().chain(done.acquired).collect();
        Ok(self.publish(next))
    }

    /// The first rounds of a replica that starts: as many as it takes to hold its whole
    /// share (at most `MAX_MOVES` shards come per round), so it checks its targets from the
    /// start rather than a slice more every round.
    pub async fn join(&self, store: &PgStore) -> Result<(), StoreError> {
        for _ in 0..=(usize::from(shards::SHARDS) / MAX_MOVES) {
            let before = self.held_map().len();
            self.run_round(store, None).await?;
            if self.held_map().len() == before {
                break;
            }
        }
        Ok(())
    }

    /// Drops every shard (a lease not renewed in time); true when any was held.
    fn drop_all(&self) -> bool {
        self.publish(BTreeMap::new())
    }
}

/// Keeps this replica's leases until `stop`, then leaves the fleet (its shards free at
/// once). `changed` is called after every change of the held shards.
pub async fn lease_loop<F, Fut>(
    store: PgStore,
    membership: Arc<Membership>,
    api: Option<String>,
    stop: CancellationToken,
    changed: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ticks = tokio::time::interval(membership.round());
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        match membership.run_round(&store, api.as_deref()).await {
            Ok(moved) => {
                renewed = tokio::time::Instant::now();
                if moved {
                    changed().await;
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not renew this replica's leases");
                if renewed.elapsed() >= membership.lease && membership.drop_all() {
                    tracing::error!(
                        "no lease renewed for {:?}: this replica holds no shard until PostgreSQL answers",
                        membership.lease
                    );
                    changed().await;
                }
            }
        }
    }
    if let Err(error) = store.leave(&membership.me).await {
        tracing::warn!(%error, "could not leave the fleet; the others take this replica's shards when its leases run out");
    }
}
