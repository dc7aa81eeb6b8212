//! One store test suite, run against both implementations of [`HistoryStore`]: SQLite in a
//! temporary directory and PostgreSQL (the shared server of `scripts/test`, a fresh schema
//! per test). Each test is written once, generic over a [`Fixture`]; `suite!` instantiates
//! every one of them for each store, so the two cannot drift apart.
//!
//! What this is not: the SQLite-only tests around it (WAL, file modes, the writer thread,
//! rollups, crashes), or the PostgreSQL-only ones at the bottom (concurrent migrations, URLs,
//! an unreachable server).

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use tempfile::TempDir;
use vitals_core::Kind;
use vitals_core::machine::State;

use super::{at, result, transition};
use crate::store::{
    CheckResult, Flags, HistoryStore, PgStore, Ping, PingKind, SqliteHistory, Store, StoreError,
    TargetState,
};

/// Where a store lives for one test; [`Fixture::open`] may be called again to reopen it.
pub(super) trait Fixture: Sized {
    type Store: HistoryStore;
    async fn new() -> Self;
    async fn open(&self) -> Self::Store;
}

pub(super) struct SqliteFixture(TempDir);

impl Fixture for SqliteFixture {
    type Store = SqliteHistory;
    async fn new() -> Self {
        SqliteFixture(tempfile::tempdir().unwrap())
    }
    async fn open(&self) -> SqliteHistory {
        SqliteHistory(Arc::new(Store::open(self.0.path()).unwrap()))
    }
}

/// A schema of its own in the shared PostgreSQL, reached through `search_path`.
pub(super) struct PgFixture {
    pub(super) url: String,
}

impl PgFixture {
    /// The URL of a new, empty schema in the shared server.
    pub(super) async fn fresh_url() -> String {
        let base = vitals_testkit::shared_postgres_url().unwrap();
        vitals_testkit::fresh_schema_url(&base).await.unwrap()
    }
}

impl Fixture for PgFixture {
    type Store = PgStore;
    async fn new() -> Self {
        PgFixture {
            url: Self::fresh_url().await,
        }
    }
    async fn open(&self) -> PgStore {
        PgStore::connect(&self.url).await.unwrap()
    }
}

pub(super) async fn transitions_survive_reopening<F: Fixture>() {
    let fixture = F::new().await;
    let mut ids = Vec::new();
    {
        let store = fixture.open().await;
        for (i, (from, to)) in [("unknown", "healthy"), ("healthy", "failing")]
            .into_iter()
            .enumerate()
        {
            let mut t = transition("api", at(i as u64 * 10), from, to);
            t.cause_kind = Some("fail".into());
            t.cause_output = Some("connection refused".into());
            ids.push(store.record_transition(t).await.unwrap());
        }
    }
    let store = fixture.open().await;
    let got = store.transitions("api".into(), 10).await.unwrap();
    assert_eq!(got.len(), 2);
    // Newest first, with ids.
    assert_eq!(got[0].id, Some(ids[1]));
    assert_eq!(got[0].to.as_str(), "failing");
    assert_eq!(got[0].at, at(10));
    assert_eq!(got[0].cause_kind.as_deref(), Some("fail"));
    assert_eq!(got[0].cause_output.as_deref(), Some("connection refused"));
    assert_eq!(got[1].id, Some(ids[0]));
    assert_eq!(got[1].from.as_str(), "unknown");
    assert_eq!(store.transitions("api".into(), 1).await.unwrap().len(), 1);
    assert!(
        store
            .transitions("nobody".into(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn results_are_recorded_in_batches_and_read_newest_first<F: Fixture>() {
    let fixture = F::new().await;
    let store = fixture.open().await;
    let batch: Vec<CheckResult> = (0..500)
        .map(|i| {
            let mut r = result("db", at(i * 30), Kind::Pass, i);
            if i % 100 == 0 {
                r.kind = Kind::Timeout;
                r.output = Some(format!("timed out #{i}"));
            }
            r
        })
        .collect();
    store.record_results(batch.clone()).await.unwrap();
    store.record_results(Vec::new()).await.unwrap();
    let recent = store.recent_results("db".into(), 3).await.unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0], batch[499]);
    assert_eq!(recent[2], batch[497]);
    let all = store.recent_results("db".into(), usize::MAX).await.unwrap();
    assert_eq!(all.len(), 500);
    assert_eq!(all[499], batch[0]);
    assert_eq!(all[99].kind, Kind::Timeout);
    assert_eq!(all[99].output.as_deref(), Some("timed out #400"));
    assert!(
        store
            .recent_results("nobody".into(), 3)
            .await
            .unwrap()
            .is_empty()
    );
}

pub(super) async fn results_in_the_same_millisecond_are_all_kept<F: Fixture>() {
    let fixture = F::new().await;
    let store = fixture.open().await;
    let same = vec![
        result("a", at(5), Kind::Pass, 1),
        result("a", at(5), Kind::Fail, 2),
    ];
    store.record_results(same.clone()).await.unwrap();
    store.record_results(same[..1].to_vec()).await.unwrap();
    assert_eq!(store.recent_results("a".into(), 10).await.unwrap().len(), 3);
}

pub(super) async fn a_batch_with_a_bad_row_is_refused_whole<F: Fixture>() {
    let fixture = F::new().await;
    let store = fixture.open().await;
    let batch = vec![
        result("a", at(1), Kind::Pass, 1),
        result("a", UNIX_EPOCH - Duration::from_secs(1), Kind::Pass, 1),
    ];
    let err = store.record_results(batch).await.unwrap_err();
    assert!(matches!(err, StoreError::Time { .. }), "{err}");
    assert!(err.to_string().contains("before 1970"), "{err}");
    let err = store
        .record_results(vec![result("", at(1), Kind::Pass, 1)])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyTarget { .. }), "{err}");
    let mut bad_ping = ping("backup", PingKind::Start, 0);
    bad_ping.at = UNIX_EPOCH - Duration::from_secs(1);
    let err = store
        .record_pings(vec![ping("backup", PingKind::Start, 1), bad_ping])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Time { .. }), "{err}");
    let err = store
        .record_transition(transition("", at(1), "unknown", "healthy"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyTarget { .. }), "{err}");
    assert!(
        store
            .recent_results("a".into(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .last_pings("backup".into(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.load_states().await.unwrap(), vec![]);
    store
        .record_results(vec![result("a", at(2), Kind::Pass, 1)])
        .await
        .unwrap();
    assert_eq!(store.recent_results("a".into(), 10).await.unwrap().len(), 1);
}

pub(super) async fn states_are_upserted_and_flags_are_kept_apart<F: Fixture>() {
    let fixture = F::new().await;
    let store = fixture.open().await;
    let mut api = TargetState {
        target: "api".into(),
        state: State::Healthy,
        since: Some(at(100)),
        flapping: false,
        consecutive_failures: 0,
        consecutive_successes: 7,
        flags: Flags::default(),
    };
    store.save_states(vec![api.clone()]).await.unwrap();
    let paused = Flags {
        paused: true,
        maintenance_until: Some(at(9_000)),
    };
    store.set_flags("api".into(), paused).await.unwrap();
    // A later save of a stale copy (flags all off) must not undo the pause; within one
    // batch, the last state of a target wins.
    let mut older = api.clone();
    older.state = State::Unhealthy;
    api.state = State::Failing;
    api.consecutive_failures = 1;
    api.flapping = true;
    store.save_states(vec![older, api.clone()]).await.unwrap();
    // Flags for a target never saved create it in `unknown`.
    store
        .set_flags("cron".into(), Flags::default())
        .await
        .unwrap();
    drop(store);

    let store = fixture.open().await;
    let states = store.load_states().await.unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(
        states[0],
        TargetState {
            flags: paused,
            ..api
        }
    );
    assert_eq!(states[1].target, "cron");
    assert_eq!(states[1].state, State::Unknown);
    assert_eq!(states[1].since, None);
    assert!(!states[1].flags.paused);
}

fn ping(target: &str, kind: PingKind, i: u64) -> Ping {
    Ping {
        target: target.into(),
        at: at(i),
        kind,
        rid: Some(format!("run-{}", i / 2)),
        body: (i % 2 == 1).then(|| format!("log line {i}\nsecond line")),
        duration: (kind != PingKind::Start).then(|| Duration::from_millis(1500)),
        source: Some("127.0.0.1:40000".into()),
    }
}

pub(super) async fn pings_keep_every_field<F: Fixture>() {
    let fixture = F::new().await;
    let store = fixture.open().await;
    let kinds = [
        PingKind::Start,
        PingKind::Success,
        PingKind::Fail,
        PingKind::Log,
        PingKind::Exit(0),
        PingKind::Exit(137),
    ];
    let batch: Vec<Ping> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| ping("backup", kind, i as u64))
        .collect();
    store.record_pings(batch[..2].to_vec()).await.unwrap();
    store.record_pings(batch[2..].to_vec()).await.unwrap();
    let pings = store.last_pings("backup".into(), 10).await.unwrap();
    assert_eq!(pings.len(), 6);
    assert_eq!(pings[0].kind, PingKind::Exit(137));
    assert_eq!(pings[0].body.as_deref(), Some("log line 5\nsecond line"));
    assert_eq!(pings[5].kind, PingKind::Start);
    assert_eq!(pings[5].duration, None);
    assert_eq!(pings[4].duration, Some(Duration::from_millis(1500)));
    assert_eq!(pings[3].rid.as_deref(), Some("run-1"));
    assert_eq!(pings[3].source.as_deref(), Some("127.0.0.1:40000"));
    assert_eq!(pings.iter().rev().cloned().collect::<Vec<_>>(), batch);
    assert_eq!(
        store.last_pings("backup".into(), 2).await.unwrap(),
        pings[..2].to_vec()
    );
    assert!(
        store
            .last_pings("other".into(), 2)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Writers on several tasks at once (the record loop, the API, a second replica) each get
/// their own rows, and every target one id.
pub(super) async fn concurrent_writers_lose_nothing<F: Fixture>()
where
    F::Store: Clone,
{
    let fixture = F::new().await;
    let store = fixture.open().await;
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25u64 {
                let batch = (0..8)
                    .map(|t| result(&format!("t{t}"), at(w * 1_000 + i), Kind::Pass, i))
                    .collect();
                store.record_results(batch).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for t in 0..8 {
        let got = store
            .recent_results(format!("t{t}"), usize::MAX)
            .await
            .unwrap();
        assert_eq!(got.len(), 100, "target t{t}");
    }
}

/// Instantiates every test of the suite for one fixture.
macro_rules! suite {
    ($fixture:ty) => {
        #[tokio::test]
        async fn transitions_survive_reopening() {
            super::transitions_survive_reopening::<$fixture>().await
        }
        #[tokio::test]
        async fn results_are_recorded_in_batches_and_read_newest_first() {
            super::results_are_recorded_in_batches_and_read_newest_first::<$fixture>().await
        }
        #[tokio::test]
        async fn results_in_the_same_millisecond_are_all_kept() {
            super::results_in_the_same_millisecond_are_all_kept::<$fixture>().await
        }
        #[tokio::test]
        async fn a_batch_with_a_bad_row_is_refused_whole() {
            super::a_batch_with_a_bad_row_is_refused_whole::<$fixture>().await
        }
        #[tokio::test]
        async fn states_are_upserted_and_flags_are_kept_apart() {
            super::states_are_upserted_and_flags_are_kept_apart::<$fixture>().await
        }
        #[tokio::test]
        async fn pings_keep_every_field() {
            super::pings_keep_every_field::<$fixture>().await
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn concurrent_writers_lose_nothing() {
            super::concurrent_writers_lose_nothing::<$fixture>().await
        }
    };
}

mod sqlite {
    suite!(super::SqliteFixture);
}

mod postgres {
    suite!(super::PgFixture);

    use super::PgFixture;
    use crate::store::{PG_SCHEMA_VERSION, PgStore, StoreError};

    /// Two replicas starting at the same moment on an empty database: the advisory lock lets
    /// one migrate while the other waits, and both then work on the same schema.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_starting_together_migrate_once() {
        let url = PgFixture::fresh_url().await;
        let (a, b, c) = tokio::join!(
            PgStore::connect(&url),
            PgStore::connect(&url),
            PgStore::connect(&url)
        );
        let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
        assert_eq!(a.schema_version().await.unwrap(), PG_SCHEMA_VERSION);
        assert_eq!(b.schema_version().await.unwrap(), PG_SCHEMA_VERSION);
        assert_eq!(c.schema_version().await.unwrap(), PG_SCHEMA_VERSION);
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_with_advice() {
        let url = PgFixture::fresh_url().await;
        let store = PgStore::connect(&url).await.unwrap();
        let client = store.client("test").await.unwrap();
        client
            .execute(
                "UPDATE schema_version SET version = $1",
                &[&(PG_SCHEMA_VERSION + 1)],
            )
            .await
            .unwrap();
        drop(client);
        let err = PgStore::connect(&url).await.unwrap_err();
        assert!(matches!(err, StoreError::NewerPgSchema { .. }), "{err}");
        assert!(err.to_string().contains("upgrade every replica"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_url_is_an_error_naming_the_field_without_the_password() {
        let err = PgStore::connect("postgres://vitals:s3cret@127.0.0.1:notaport/db")
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::PostgresUrl { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("server.store"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }

    /// Retention in PostgreSQL: old results and pings go (each target keeps its latest
    /// pings), old transitions go but each target's last older one.
    #[tokio::test]
    async fn prune_keeps_what_retention_says() {
        use super::super::{DAY, at, result, transition};
        use crate::store::{HistoryStore, KEEP_PINGS};
        use vitals_core::Kind;
        let store = PgStore::connect(&PgFixture::fresh_url().await)
            .await
            .unwrap();
        store
            .record_results(vec![
                result("a", at(0), Kind::Pass, 1),
                result("a", at(9 * DAY), Kind::Pass, 1),
            ])
            .await
            .unwrap();
        for (i, (from, to)) in [
            ("unknown", "healthy"),
            ("healthy", "down"),
            ("down", "healthy"),
        ]
        .into_iter()
        .enumerate()
        {
            store
                .record_transition(transition("a", at(i as u64 * DAY), from, to))
                .await
                .unwrap();
        }
        let pings = (0..KEEP_PINGS as u64 + 5)
            .map(|i| super::ping("a", crate::store::PingKind::Success, i))
            .collect();
        store.record_pings(pings).await.unwrap();
        // Raw 7 days, transitions 1 day, seen 10 days after BASE.
        let pruned = store.prune(at(10 * DAY), 7, 1).await.unwrap();
        assert_eq!(pruned, 1 + 5 + 2);
        assert_eq!(store.recent_results("a".into(), 10).await.unwrap().len(), 1);
        let kept = store.transitions("a".into(), 10).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].to.as_str(), "healthy");
        assert_eq!(kept[0].at, at(2 * DAY));
        assert_eq!(
            store
                .last_pings("a".into(), usize::MAX)
                .await
                .unwrap()
                .len(),
            KEEP_PINGS as usize
        );
        // Again: nothing more to do.
        assert_eq!(store.prune(at(10 * DAY), 7, 1).await.unwrap(), 0);
    }

    /// Nothing listens on a reserved port: the store is unavailable, within the timeout.
    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_not_a_hang() {
        let port = vitals_testkit::reserve_port().unwrap();
        let url = format!("postgres://postgres@127.0.0.1:{}/postgres", port.port());
        let err = PgStore::connect(&url).await.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(err.to_string().contains("PostgreSQL"), "{err}");
    }
}
