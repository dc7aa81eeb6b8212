//! Which replica checks which target, decided sans-IO (issue 12): targets fall into
//! [`SHARDS`] shards by a stable hash of their id, each shard goes to one live replica by
//! rendezvous hashing, and [`plan`] turns what the shared store says about leases into what
//! this replica should renew, acquire and release now.
//!
//! The rules, in order:
//!
//! 1. **A target's shard never changes**: FNV-1a of its id, modulo [`SHARDS`]. Every replica,
//!    of every version, computes the same.
//! 2. **Each shard's rightful owner is the live replica with the highest weight** for it
//!    (rendezvous or "highest random weight" hashing, Thaler and Ravishankar 1998). When a
//!    replica joins it takes about `1/n` of the shards, from every other replica alike; when
//!    one leaves only its own shards move, spread over the others. Nothing else moves.
//! 3. **A lease is the right to write**: held leases still ours and unexpired are renewed; a
//!    lease that expired is acquired anew (its epoch goes up, so writes under the old epoch
//!    are refused by the store), never renewed.
//! 4. **Only the rightful owner acquires** a free or expired shard, so replicas never race
//!    for one; a shard held by a replica that is no longer its rightful owner is released by
//!    that replica (a graceful handoff) rather than taken from it.
//! 5. **No thundering herd**: at most `max_moves` acquisitions and at most `max_moves`
//!    releases per round. Three replicas starting together each take their own third; a
//!    joining replica's shards arrive over a few rounds instead of all at once.
//!
//! Time is an argument (`now_ms`, the store's clock, so replicas' clocks need not agree).
//! What this is not: the lease loop that reads and writes the leases (the monitor's), or
//! the store's fencing (it refuses stale epochs whatever this says).

#[cfg(test)]
mod tests;

/// Shards targets are spread over. A power of two well above any replica count: with 3
/// replicas the largest share is within a few shards of a third.
pub const SHARDS: u16 = 256;

/// A shard number, `0..SHARDS`.
pub type Shard = u16;

/// FNV-1a, 64 bits: stable across Rust versions and platforms, unlike `DefaultHasher`.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// SplitMix64's finaliser: spreads the bits of `x` so nearby inputs get unrelated weights.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The shard of the target with id `target`.
pub fn shard_of(target: &str) -> Shard {
    (fnv1a(target.as_bytes()) % u64::from(SHARDS)) as Shard
}

/// The rendezvous weight of `replica` for `shard`.
fn weight(replica: &str, shard: Shard) -> u64 {
    mix(fnv1a(replica.as_bytes()) ^ mix(u64::from(shard) + 1))
}

/// The rightful owner of `shard` among `live` replicas (ties, which need equal ids, go to
/// the smaller id); `None` when no replica is live.
pub fn owner_of<'a>(live: &[&'a str], shard: Shard) -> Option<&'a str> {
    live.iter()
        .copied()
        .max_by(|a, b| weight(a, shard).cmp(&weight(b, shard)).then(b.cmp(a)))
}

/// One shard's lease as the store has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub shard: Shard,
    /// The replica holding it, if any.
    pub owner: Option<String>,
    /// When it runs out, in the store's clock (unix milliseconds).
    pub expires_ms: i64,
    /// Goes up at every acquisition; writes carry it.
    pub epoch: i64,
}

impl Lease {
    /// Whether the lease is still held at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.owner.is_some() && self.expires_ms > now_ms
    }
}

/// What one replica should do with the leases in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Held, unexpired and still rightfully ours: extend them (same epoch).
    pub renew: Vec<Shard>,
    /// Free or expired and rightfully ours: take them (a new epoch).
    pub acquire: Vec<Shard>,
    /// Held by us but rightfully another live replica's: let go.
    pub release: Vec<Shard>,
}

/// The round's plan for replica `me`, given the `live` replicas (those whose presence in
/// the store is unexpired; `me` among them when its own presence was renewed) and every
/// shard's lease, at `now_ms` in the store's clock. At most `max_moves` acquisitions and
/// `max_moves` releases, lowest shards first.
///
/// When `me` is not live (its presence could not be renewed) the plan is empty: a replica
/// that cannot write to the store decides nothing about ownership.
pub fn plan(me: &str, live: &[&str], leases: &[Lease], now_ms: i64, max_moves: usize) -> Plan {
    let mut out = Plan::default();
    if !live.contains(&me) {
        return out;
    }
    for lease in leases {
        let rightful = owner_of(live, lease.shard) == Some(me);
        let mine = lease.owner.as_deref() == Some(me);
        let held = lease.is_live(now_ms);
        match (mine && held, rightful) {
            (true, true) => out.renew.push(lease.shard),
            (true, false) => {
                // The rightful owner is live (it is in `live`), so handing over leaves the
                // shard unwatched for at most one of its rounds.
                if out.release.len() < max_moves {
                    out.release.push(lease.shard);
                } else {
                    out.renew.push(lease.shard);
                }
            }
            (false, true) if !held && out.acquire.len() < max_moves => {
                out.acquire.push(lease.shard)
            }
            _ => {}
        }
    }
    out
}
