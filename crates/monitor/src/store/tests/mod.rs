//! Tests of the store against real SQLite files in temporary directories.
//!
//! Time is always an argument: every test builds its history at fixed instants from [`BASE`]
//! and passes `now` explicitly, so nothing depends on the machine's clock. The crash test
//! (`crash.rs`) runs a child process; the `#[ignore]`d tests in `measure.rs` produce the
//! numbers in `docs/STORAGE.md`.

mod crash;
mod leases;
mod measure;
mod rollups;
mod suite;
mod uptime;
mod writer;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tempfile::TempDir;
use vitals_core::Kind;
use vitals_core::machine::State;

use super::*;

/// 2025-11-24 00:00:00 UTC: a day boundary, so bucket arithmetic in tests is easy to read.
pub(super) const BASE: u64 = 1_763_942_400;

pub(super) const MINUTE: u64 = 60;
pub(super) const HOUR: u64 = 3_600;
pub(super) const DAY: u64 = 86_400;

/// `BASE + secs`.
pub(super) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(BASE + secs)
}

/// `BASE + ms` milliseconds.
pub(super) fn at_ms(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(BASE * 1000 + ms)
}

pub(super) fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

pub(super) fn result(target: &str, at: SystemTime, kind: Kind, ms: u64) -> CheckResult {
    CheckResult {
        target: target.to_owned(),
        at,
        kind,
        duration: Duration::from_millis(ms),
        output: None,
    }
}

pub(super) fn transition(target: &str, at: SystemTime, from: &str, to: &str) -> Transition {
    Transition {
        id: None,
        target: target.to_owned(),
        at,
        from: TimelineState::parse(from).expect("a state name"),
        to: TimelineState::parse(to).expect("a state name"),
        reason: format!("{from} to {to}"),
        cause_kind: None,
        cause_output: None,
    }
}

#[test]
fn open_creates_the_directory_in_wal_mode_with_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let store = Store::open(&data).unwrap();
    assert_eq!(store.path(), data.join("vitals.db"));
    let inner = store.lock();
    let mode: String = inner
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // 1 = NORMAL.
    let sync: i64 = inner
        .conn
        .pragma_query_value(None, "synchronous", |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 1);
    let version: i64 = inner
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

/// Issue 11, item 12: the data directory was created with the default umask (0755), so any
/// user of the machine could read ping bodies and alert payloads.
#[cfg(unix)]
#[test]
fn the_data_directory_is_created_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    Store::open(&data).unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    // Parents are the operator's: made as the umask says.
    assert_ne!(mode(&dir.path().join("nested")), 0o700);
}

#[test]
fn transitions_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    {
        let store = Store::open(dir.path()).unwrap();
        for (i, (from, to)) in [("unknown", "healthy"), ("healthy", "failing")]
            .into_iter()
            .enumerate()
        {
            let mut t = transition("api", at(i as u64 * 10), from, to);
            t.cause_kind = Some("fail".into());
            t.cause_output = Some("connection refused".into());
            ids.push(store.record_transition(&t).unwrap());
        }
    }
    let store = Store::open(dir.path()).unwrap();
    let got = store.transitions("api", 10).unwrap();
    assert_eq!(got.len(), 2);
    // Newest first, with ids.
    assert_eq!(got[0].id, Some(ids[1]));
    assert_eq!(got[0].to.as_str(), "failing");
    assert_eq!(got[0].at, at(10));
    assert_eq!(got[0].cause_output.as_deref(), Some("connection refused"));
    assert_eq!(got[1].id, Some(ids[0]));
    assert_eq!(store.transitions("api", 1).unwrap().len(), 1);
    assert!(store.transitions("nobody", 10).unwrap().is_empty());
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn results_are_recorded_in_batches_and_read_newest_first() {
    let (_dir, store) = temp_store();
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
    store.record_results(&batch).unwrap();
    store.record_results(&[]).unwrap();
    let recent = store.recent_results("db", 3).unwrap();
    assert_eq!(recent.len(), 3);
    assert_eq!(recent[0], batch[499]);
    assert_eq!(recent[2], batch[497]);
    let all = store.recent_results("db", usize::MAX).unwrap();
    assert_eq!(all.len(), 500);
    assert_eq!(all[499], batch[0]);
    assert_eq!(all[99].kind, Kind::Timeout);
    assert_eq!(all[99].output.as_deref(), Some("timed out #400"));
}

#[test]
fn results_in_the_same_millisecond_are_all_kept() {
    let (_dir, store) = temp_store();
    let same = [
        result("a", at(5), Kind::Pass, 1),
        result("a", at(5), Kind::Fail, 2),
    ];
    store.record_results(&same).unwrap();
    store.record_results(&same[..1]).unwrap();
    assert_eq!(store.recent_results("a", 10).unwrap().len(), 3);
}

#[test]
fn a_batch_with_a_bad_result_is_refused_whole() {
    let (_dir, store) = temp_store();
    let batch = [
        result("a", at(1), Kind::Pass, 1),
        result("a", UNIX_EPOCH - Duration::from_secs(1), Kind::Pass, 1),
    ];
    let err = store.record_results(&batch).unwrap_err();
    assert!(matches!(err, StoreError::Time { .. }), "{err}");
    assert!(err.to_string().contains("before 1970"), "{err}");
    let err = store
        .record_results(&[result("", at(1), Kind::Pass, 1)])
        .unwrap_err();
    assert!(matches!(err, StoreError::EmptyTarget { .. }), "{err}");
    assert!(store.recent_results("a", 10).unwrap().is_empty());
    // The failed batches left no target behind either.
    assert_eq!(store.load_states().unwrap(), vec![]);
    store
        .record_results(&[result("a", at(2), Kind::Pass, 1)])
        .unwrap();
    assert_eq!(store.recent_results("a", 10).unwrap().len(), 1);
}

#[test]
fn states_are_upserted_and_flags_are_kept_apart() {
    let (dir, store) = temp_store();
    let mut api = TargetState {
        target: "api".into(),
        state: State::Healthy,
        since: Some(at(100)),
        flapping: false,
        consecutive_failures: 0,
        consecutive_successes: 7,
        flags: Flags::default(),
    };
    store.save_states(std::slice::from_ref(&api)).unwrap();
    let paused = Flags {
        paused: true,
        maintenance_until: Some(at(9_000)),
    };
    store.set_flags("api", &paused).unwrap();
    // A later save of a stale copy (flags all off) must not undo the pause.
    api.state = State::Failing;
    api.consecutive_failures = 1;
    api.flapping = true;
    store.save_states(std::slice::from_ref(&api)).unwrap();
    // Flags for a target never saved create it in `unknown`.
    store.set_flags("cron", &Flags::default()).unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    let states = store.load_states().unwrap();
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

#[test]
fn pings_keep_every_field() {
    let (_dir, store) = temp_store();
    let kinds = [
        PingKind::Start,
        PingKind::Success,
        PingKind::Fail,
        PingKind::Log,
        PingKind::Exit(0),
        PingKind::Exit(137),
    ];
    for (i, kind) in kinds.into_iter().enumerate() {
        store
            .record_ping(&Ping {
                target: "backup".into(),
                at: at(i as u64),
                kind,
                rid: Some(format!("run-{}", i / 2)),
                body: (i % 2 == 1).then(|| format!("log line {i}\nsecond line")),
                duration: (kind != PingKind::Start).then(|| Duration::from_millis(1500)),
                source: Some("127.0.0.1:40000".into()),
            })
            .unwrap();
    }
    let pings = store.last_pings("backup", 10).unwrap();
    assert_eq!(pings.len(), 6);
    assert_eq!(pings[0].kind, PingKind::Exit(137));
    assert_eq!(pings[0].body.as_deref(), Some("log line 5\nsecond line"));
    assert_eq!(pings[5].kind, PingKind::Start);
    assert_eq!(pings[5].duration, None);
    assert_eq!(pings[4].duration, Some(Duration::from_millis(1500)));
    assert_eq!(pings[3].rid.as_deref(), Some("run-1"));
    assert_eq!(pings[3].source.as_deref(), Some("127.0.0.1:40000"));
    assert_eq!(store.last_pings("backup", 2).unwrap(), pings[..2].to_vec());
    assert!(store.last_pings("other", 2).unwrap().is_empty());
}

#[test]
fn read_only_connections_read_and_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    assert!(
        err.to_string().contains("open the store read-write first"),
        "{err}"
    );

    let store = Store::open(dir.path()).unwrap();
    store
        .record_transition(&transition("a", at(0), "unknown", "healthy"))
        .unwrap();
    let reader = Store::open_read_only(dir.path()).unwrap();
    assert!(reader.is_read_only());
    assert_eq!(reader.transitions("a", 5).unwrap().len(), 1);
    let err = reader
        .record_transition(&transition("a", at(1), "healthy", "down"))
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err}");
    assert_eq!(reader.integrity_check().unwrap(), "ok");
}

#[test]
fn a_newer_schema_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path()).unwrap());
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
    assert!(err.to_string().contains("upgrade vitals"), "{err}");
    let err = Store::open_read_only(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![0x42u8; 8192]).unwrap();
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
}

#[test]
fn the_data_directory_must_be_creatable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = Store::open(&file.join("data")).unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err}");
    assert!(err.to_string().contains("a-file/data"), "{err}");
}

#[test]
fn integrity_check_reports_damage() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let batch: Vec<CheckResult> = (0..5_000)
            .map(|i| result("t", at(i), Kind::Pass, i))
            .collect();
        store.record_results(&batch).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
    }
    // Overwrite a page in the middle of the (checkpointed, closed) file with garbage.
    let path = dir.path().join(DB_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(
        bytes.len() > 5 * 4096,
        "the file is only {} bytes",
        bytes.len()
    );
    bytes[4 * 4096..5 * 4096].fill(0xA5);
    std::fs::write(&path, bytes).unwrap();
    let outcome = Store::open(dir.path()).and_then(|s| s.integrity_check());
    match outcome {
        Ok(report) => assert_ne!(report, "ok"),
        // Damage SQLite notices while reading is an error, which is just as good.
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}
