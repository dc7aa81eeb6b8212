//! Shard leases and fencing against a real PostgreSQL (the shared server, a schema per
//! test): what the store lets a replica do with a lease, whatever its view of the world.
//! Expiry is made by moving a lease's expiry into the past in SQL, not by sleeping.

use vitals_engine::shards::{self, Plan, SHARDS};

use super::suite::PgFixture;
use super::{at, transition};
use crate::store::{Fence, HistoryStore, PgStore, StoreError};

const LEASE_MS: i64 = 4_000;

async fn store() -> PgStore {
    PgStore::connect(&PgFixture::fresh_url().await)
        .await
        .unwrap()
}

/// One round of `me` as the lease loop runs it: announce, read, plan, carry out.
async fn round(store: &PgStore, me: &str, max_moves: usize) -> crate::store::Held {
    let now = store.announce(me, None, LEASE_MS).await.unwrap();
    let replicas = store.replicas().await.unwrap();
    let live: Vec<&str> = replicas
        .iter()
        .filter(|r| r.expires_ms > now)
        .map(|r| r.id.as_str())
        .collect();
    let leases = store.leases().await.unwrap();
    let plan = shards::plan(me, &live, &leases, now, max_moves);
    store.carry_out(me, &plan, LEASE_MS).await.unwrap()
}

async fn expire(store: &PgStore, sql_where: &str) {
    let client = store.client("test").await.unwrap();
    client
        .batch_execute(&format!(
            "UPDATE leases SET expires_ms = 0 WHERE {sql_where};
             UPDATE replicas SET expires_ms = 0 WHERE id = 'a'"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn three_replicas_share_every_shard_once() {
    let store = store().await;
    for me in ["a", "b", "c"] {
        store.announce(me, None, LEASE_MS).await.unwrap();
    }
    for _ in 0..2 {
        for me in ["a", "b", "c"] {
            round(&store, me, 256).await;
        }
    }
    let leases = store.leases().await.unwrap();
    assert_eq!(leases.len(), SHARDS as usize);
    for lease in &leases {
        let rightful = shards::owner_of(&["a", "b", "c"], lease.shard);
        assert_eq!(lease.owner.as_deref(), rightful, "shard {}", lease.shard);
        assert_eq!(lease.epoch, 1);
    }
}

#[tokio::test]
async fn a_live_lease_cannot_be_taken_and_a_taken_one_fences_its_old_owner() {
    let store = store().await;
    let one = Plan {
        acquire: vec![5],
        ..Plan::default()
    };
    let got = store.carry_out("a", &one, LEASE_MS).await.unwrap();
    assert_eq!(got.acquired, vec![(5, 1)]);
    // b acts on a stale view (it thinks shard 5 free): the store says no.
    let got = store.carry_out("b", &one, LEASE_MS).await.unwrap();
    assert!(got.acquired.is_empty());
    let a = Fence {
        owner: "a".into(),
        shard: 5,
        epoch: 1,
    };
    store
        .record_fenced(&a, &transition("api", at(0), "unknown", "healthy"), None)
        .await
        .unwrap();

    // a pauses past its lease; b takes the shard at a new epoch.
    expire(&store, "shard = 5").await;
    let got = store.carry_out("b", &one, LEASE_MS).await.unwrap();
    assert_eq!(got.acquired, vec![(5, 2)]);
    // a resumes: its renewal finds nothing, and its write under epoch 1 is refused whole.
    let renew = Plan {
        renew: vec![5],
        ..Plan::default()
    };
    assert!(
        store
            .carry_out("a", &renew, LEASE_MS)
            .await
            .unwrap()
            .renewed
            .is_empty()
    );
    let err = store
        .record_fenced(&a, &transition("api", at(1), "healthy", "down"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Fenced { shard: 5, epoch: 1 }),
        "{err}"
    );
    assert!(err.to_string().contains("another replica took it"), "{err}");
    let b = Fence {
        owner: "b".into(),
        shard: 5,
        epoch: 2,
    };
    store
        .record_fenced(&b, &transition("api", at(2), "healthy", "failing"), None)
        .await
        .unwrap();
    let stored = store.transitions("api".into(), 10).await.unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].to.as_str(), "failing");
    assert_eq!(stored[1].to.as_str(), "healthy");
    // An expired lease nobody took yet fences too: no ownership without a renewed lease.
    expire(&store, "shard = 5").await;
    assert!(matches!(
        store
            .record_fenced(&b, &transition("api", at(3), "failing", "healthy"), None)
            .await,
        Err(StoreError::Fenced { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_racing_for_free_shards_never_both_win() {
    let store = store().await;
    let all = Plan {
        acquire: (0..SHARDS).collect(),
        ..Plan::default()
    };
    let (a, b) = tokio::join!(
        store.carry_out("a", &all, LEASE_MS),
        store.carry_out("b", &all, LEASE_MS)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.acquired.len() + b.acquired.len(), SHARDS as usize);
    assert!(store.leases().await.unwrap().iter().all(|l| l.epoch == 1));
}

#[tokio::test]
async fn a_dead_replica_s_shards_go_to_the_survivors_and_a_leaver_frees_its_own() {
    let store = store().await;
    for _ in 0..2 {
        for me in ["a", "b", "c"] {
            round(&store, me, 256).await;
        }
    }
    // a is killed: its presence and leases run out (made so in SQL).
    expire(&store, "owner = 'a'").await;
    for me in ["b", "c"] {
        round(&store, me, 256).await;
    }
    let leases = store.leases().await.unwrap();
    assert!(leases.iter().all(|l| l.owner.as_deref() != Some("a")));
    assert!(leases.iter().all(|l| l.owner.is_some()));
    // c leaves cleanly: its shards are free at once, and b takes them at its next round.
    store.leave("c").await.unwrap();
    round(&store, "b", 256).await;
    let leases = store.leases().await.unwrap();
    assert!(leases.iter().all(|l| l.owner.as_deref() == Some("b")));
    let ids: Vec<String> = store
        .replicas()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, ["a", "b"]);
}
