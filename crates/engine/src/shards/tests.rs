//! The shard rules on plain data: stable shards, balanced and minimal rendezvous
//! assignment, and rounds of [`plan`] run against a simulated lease table until the fleet
//! settles.

use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

fn names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("replica-{i}")).collect()
}

fn owners(live: &[&str]) -> Vec<&'static str> {
    // Leaked only in tests: the owners outlive the borrowed slice.
    (0..SHARDS)
        .map(|s| &*Box::leak(owner_of(live, s).unwrap().to_owned().into_boxed_str()))
        .collect()
}

/// A lease table the rounds act on, as the store would (acquire only free or expired, renew
/// only one's own, release only one's own).
struct Table {
    leases: Vec<Lease>,
    lease_ms: i64,
}

impl Table {
    fn new(lease_ms: i64) -> Self {
        let leases = (0..SHARDS)
            .map(|shard| Lease {
                shard,
                owner: None,
                expires_ms: 0,
                epoch: 0,
            })
            .collect();
        Table { leases, lease_ms }
    }

    fn round(&mut self, me: &str, live: &[&str], now: i64, max_moves: usize) -> Plan {
        let plan = plan(me, live, &self.leases, now, max_moves);
        for &s in &plan.renew {
            let l = &mut self.leases[s as usize];
            assert_eq!(l.owner.as_deref(), Some(me));
            assert!(l.expires_ms > now, "renewed an expired lease");
            l.expires_ms = now + self.lease_ms;
        }
        for &s in &plan.acquire {
            let l = &mut self.leases[s as usize];
            assert!(!l.is_live(now), "acquired a live lease of {:?}", l.owner);
            l.owner = Some(me.to_owned());
            l.expires_ms = now + self.lease_ms;
            l.epoch += 1;
        }
        for &s in &plan.release {
            let l = &mut self.leases[s as usize];
            assert_eq!(l.owner.as_deref(), Some(me));
            l.owner = None;
            l.expires_ms = 0;
        }
        plan
    }

    fn held_by(&self, me: &str, now: i64) -> usize {
        self.leases
            .iter()
            .filter(|l| l.is_live(now) && l.owner.as_deref() == Some(me))
            .count()
    }
}

#[test]
fn shards_are_stable_and_spread() {
    // Pinned: a change here would move every target of every running fleet.
    assert_eq!(
        [shard_of(""), shard_of("api"), shard_of("orders/database")],
        [37, 7, 52]
    );
    let mut counts = [0u32; SHARDS as usize];
    for i in 0..25_600 {
        counts[shard_of(&format!("https://service-{i:05}.internal/health")) as usize] += 1;
    }
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(*min > 50 && *max < 150, "min {min} max {max}");
}

#[test]
fn three_replicas_split_the_shards_in_thirds() {
    let names = names(3);
    let live: Vec<&str> = names.iter().map(String::as_str).collect();
    let owners = owners(&live);
    for name in &live {
        let n = owners.iter().filter(|o| *o == name).count();
        assert!((60..=110).contains(&n), "{name} owns {n} of 256");
    }
    assert_eq!(owner_of(&[], 7), None);
}

#[test]
fn three_replicas_starting_together_settle_without_contention() {
    let names = names(3);
    let live: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut table = Table::new(4_000);
    let mut now = 1_000;
    for _ in 0..3 {
        for me in &live {
            table.round(me, &live, now, 64);
        }
        now += 1_000;
    }
    let total: usize = live.iter().map(|me| table.held_by(me, now)).sum();
    assert_eq!(total, SHARDS as usize, "every shard held once");
    let owners = owners(&live);
    for l in &table.leases {
        assert_eq!(l.owner.as_deref(), Some(owners[l.shard as usize]));
        assert_eq!(l.epoch, 1, "each shard acquired once, never fought over");
    }
}

#[test]
fn a_dead_replica_s_shards_are_taken_after_its_lease_and_nothing_else_moves() {
    let names = names(3);
    let live: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut table = Table::new(4_000);
    let mut now = 0;
    for _ in 0..3 {
        for me in &live {
            table.round(me, &live, now, 256);
        }
        now += 1_000;
    }
    let before = table.leases.clone();
    // replica-2 is killed: it renews nothing; the others see it gone from `live` once its
    // presence expires, at the same time as its leases.
    let survivors = &live[..2];
    let died_at = now;
    let mut taken_at = None;
    while taken_at.is_none() {
        for me in survivors {
            table.round(me, survivors, now, 256);
        }
        if table
            .leases
            .iter()
            .all(|l| l.is_live(now) && l.owner.as_deref() != Some("replica-2"))
        {
            taken_at = Some(now);
        }
        now += 1_000;
        assert!(now < died_at + 20_000, "never taken over");
    }
    // Taken within the lease plus one round.
    assert!(taken_at.unwrap() - died_at <= 4_000 + 1_000);
    for (b, a) in before.iter().zip(&table.leases) {
        if b.owner.as_deref() != Some("replica-2") {
            assert_eq!(a.owner, b.owner, "shard {} moved", a.shard);
            assert_eq!(a.epoch, b.epoch);
        } else {
            assert_eq!(a.epoch, b.epoch + 1, "a taken shard has a new epoch");
        }
    }
}

#[test]
fn a_joining_replica_receives_its_share_in_steps_through_releases() {
    let names = names(3);
    let first: Vec<&str> = names[..2].iter().map(String::as_str).collect();
    let all: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut table = Table::new(4_000);
    let mut now = 0;
    for me in &first {
        table.round(me, &first, now, 256);
    }
    now += 1_000;
    let mut rounds = 0;
    let mut most_moved = 0;
    loop {
        rounds += 1;
        for me in &all {
            let plan = table.round(me, &all, now, 16);
            most_moved = most_moved.max(plan.release.len()).max(plan.acquire.len());
        }
        now += 1_000;
        let owners = owners(&all);
        if table
            .leases
            .iter()
            .all(|l| l.is_live(now) && l.owner.as_deref() == Some(owners[l.shard as usize]))
        {
            break;
        }
        assert!(rounds < 30, "never settled");
    }
    assert!(most_moved <= 16);
    assert!(
        rounds > 2,
        "the joiner's ~85 shards came in steps of 16, in {rounds} rounds"
    );
}

#[test]
fn a_replica_that_is_not_live_decides_nothing() {
    let mut table = Table::new(4_000);
    table.round("a", &["a", "b"], 0, 256);
    let plan = plan("a", &["b"], &table.leases, 1_000, 256);
    assert_eq!(plan, Plan::default());
}

#[test]
fn an_expired_lease_of_ours_is_acquired_anew_not_renewed() {
    let mut table = Table::new(4_000);
    table.round("a", &["a"], 0, 256);
    // Paused past the lease: its leases ran out though nobody took them.
    let plan = table.round("a", &["a"], 10_000, 256);
    assert!(plan.renew.is_empty());
    assert_eq!(plan.acquire.len(), SHARDS as usize);
    assert!(table.leases.iter().all(|l| l.epoch == 2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Removing a replica moves only its shards; adding one moves shards only to it.
    #[test]
    fn rendezvous_moves_the_minimum(n in 1usize..8, extra in 0usize..8) {
        let names: Vec<String> = (0..n + 1).map(|i| format!("r{}-{extra}", i * 7 + extra)).collect();
        let with: Vec<&str> = names.iter().map(String::as_str).collect();
        let without = &with[..n];
        let joiner = with[n];
        for shard in 0..SHARDS {
            let before = owner_of(without, shard).unwrap();
            let after = owner_of(&with, shard).unwrap();
            prop_assert!(after == before || after == joiner);
        }
    }

    /// Whatever the lease table, one round by every live replica never gives a shard to two
    /// of them, and never acquires a live lease.
    #[test]
    fn a_round_never_doubles_an_owner(
        owners in prop::collection::vec(prop::option::of(0usize..4), SHARDS as usize),
        expired in prop::collection::vec(any::<bool>(), SHARDS as usize),
        live_mask in 1u8..16,
    ) {
        let names = names(4);
        let live: Vec<&str> = names.iter().enumerate()
            .filter(|(i, _)| live_mask & (1 << i) != 0)
            .map(|(_, n)| n.as_str())
            .collect();
        let now = 10_000;
        let mut table = Table::new(4_000);
        for (l, (o, e)) in table.leases.iter_mut().zip(owners.iter().zip(&expired)) {
            l.owner = o.map(|i| names[i].clone());
            l.expires_ms = if *e { now - 1 } else { now + 2_000 };
        }
        let mut holders: HashMap<Shard, usize> = HashMap::new();
        for me in &live {
            // Table::round asserts the store's rules for each action.
            table.round(me, &live, now, 64);
        }
        for l in &table.leases {
            if l.is_live(now) {
                *holders.entry(l.shard).or_default() += 1;
            }
        }
        prop_assert!(holders.values().all(|n| *n == 1));
    }
}
