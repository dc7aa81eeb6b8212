//! The writer thread: batching, group commit, backpressure, closing, and readers meanwhile.
//!
//! The writer is an OS thread doing real I/O, so these tests run on tokio's real clock and
//! wait for it with bounded polls, never fixed sleeps, and assert no timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

/// Polls `cond` every 5 ms for up to 20 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn count(reader: &Store, target: &str) -> usize {
    reader.recent_results(target, usize::MAX).unwrap().len()
}

fn writer_with(config: WriterConfig) -> (TempDir, Writer, Store) {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spawn_with(Store::open(dir.path()).unwrap(), config);
    let reader = Store::open_read_only(dir.path()).unwrap();
    (dir, writer, reader)
}

#[tokio::test]
async fn results_are_committed_in_batches_of_max_batch() {
    // A linger of an hour: only a full batch (or a flush) commits.
    let (_dir, writer, reader) = writer_with(WriterConfig {
        max_batch: 100,
        linger: Duration::from_secs(3600),
        queue_capacity: 10_000,
        ..WriterConfig::default()
    });
    for i in 0..250 {
        writer.result(result("a", at(i), Kind::Pass, 1));
    }
    eventually("two batches are committed", || count(&reader, "a") == 200).await;
    assert_eq!(writer.stats().written_results, 200);
    assert_eq!(writer.stats().commits, 2);
    // The last 50 wait for more company, up to the linger...
    assert_eq!(count(&reader, "a"), 200);
    // ...or a flush.
    writer.flush().await.unwrap();
    assert_eq!(count(&reader, "a"), 250);
    let stats = writer.stats();
    assert_eq!(
        (stats.written_results, stats.dropped_results, stats.commits),
        (250, 0, 3)
    );
}

#[tokio::test]
async fn a_lone_result_is_committed_after_the_linger() {
    let (_dir, writer, reader) = writer_with(WriterConfig {
        linger: Duration::from_millis(20),
        ..WriterConfig::default()
    });
    writer.result(result("a", at(0), Kind::Warn, 3));
    eventually("the result is visible without a flush", || {
        count(&reader, "a") == 1
    })
    .await;
}

#[tokio::test]
async fn a_transition_commits_before_returning_together_with_earlier_results() {
    let (_dir, writer, reader) = writer_with(WriterConfig {
        linger: Duration::from_secs(3600),
        ..WriterConfig::default()
    });
    writer.results((0..10).map(|i| result("a", at(i), Kind::Fail, 1)).collect());
    let id = writer
        .transition(transition("a", at(10), "healthy", "failing"))
        .await
        .unwrap();
    // No flush: the transition's commit carried the results sent before it.
    let got = reader.transitions("a", 1).unwrap();
    assert_eq!(got[0].id, Some(id));
    assert_eq!(count(&reader, "a"), 10);
}

#[tokio::test]
async fn states_flags_and_pings_go_through_the_writer() {
    let (_dir, writer, reader) = writer_with(WriterConfig::default());
    let state = TargetState {
        target: "a".into(),
        state: State::Down,
        since: Some(at(5)),
        flapping: false,
        consecutive_failures: 4,
        consecutive_successes: 0,
        flags: Flags::default(),
    };
    writer.save_states(vec![state.clone()]).await.unwrap();
    let flags = Flags {
        paused: true,
        maintenance_until: None,
    };
    writer.set_flags("a".into(), flags).await.unwrap();
    writer.ping(Ping {
        target: "a".into(),
        at: at(6),
        kind: PingKind::Exit(3),
        rid: None,
        body: Some("exit 3".into()),
        duration: None,
        source: None,
    });
    writer.flush().await.unwrap();
    assert_eq!(
        reader.load_states().unwrap(),
        vec![TargetState { flags, ..state }]
    );
    assert_eq!(
        reader.last_pings("a", 1).unwrap()[0].kind,
        PingKind::Exit(3)
    );
}

#[tokio::test]
async fn bad_input_fails_alone() {
    let (_dir, writer, reader) = writer_with(WriterConfig::default());
    let before_1970 = UNIX_EPOCH - Duration::from_secs(10);
    writer.result(result("a", before_1970, Kind::Pass, 1));
    writer.result(result("a", at(1), Kind::Pass, 1));
    let bad = writer.transition(transition("a", before_1970, "unknown", "healthy"));
    let good = writer.transition(transition("a", at(2), "unknown", "healthy"));
    let (bad, good) = tokio::join!(bad, good);
    assert!(matches!(bad, Err(StoreError::Time { .. })), "{bad:?}");
    assert!(good.is_ok());
    writer.flush().await.unwrap();
    assert_eq!(count(&reader, "a"), 1);
    assert_eq!(writer.stats().failed_results, 1);
    assert_eq!(reader.transitions("a", 10).unwrap().len(), 1);
}

#[tokio::test]
async fn a_full_queue_drops_results_and_counts_them_but_never_transitions() {
    let (dir, writer, reader) = writer_with(WriterConfig {
        max_batch: 1,
        linger: Duration::from_millis(1),
        queue_capacity: 10,
        ..WriterConfig::default()
    });
    // Another connection holds the write lock, so the writer thread blocks in its first
    // commit (for up to the busy timeout) while results pile up.
    let blocker = Store::open(dir.path()).unwrap();
    {
        let inner = blocker.lock();
        inner.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    }
    writer.result(result("a", at(0), Kind::Pass, 1));
    // The thread has taken it (and, with max_batch 1, gone straight to commit).
    eventually("the writer took the first result", || {
        writer.stats().queued == 0
    })
    .await;
    for i in 1..=25 {
        writer.result(result("a", at(i), Kind::Pass, 1));
    }
    let stats = writer.stats();
    assert_eq!((stats.queued, stats.dropped_results), (10, 15));
    let pending = tokio::spawn({
        let writer = writer.clone();
        async move {
            writer
                .transition(transition("a", at(30), "healthy", "down"))
                .await
        }
    });
    blocker.lock().conn.execute_batch("ROLLBACK").unwrap();
    assert!(pending.await.unwrap().is_ok());
    writer.flush().await.unwrap();
    assert_eq!(count(&reader, "a"), 11);
    let stats = writer.stats();
    assert_eq!(
        (stats.written_results, stats.dropped_results, stats.queued),
        (11, 15, 0)
    );
    // Once it caught up, results are accepted again.
    writer.result(result("a", at(40), Kind::Pass, 1));
    writer.flush().await.unwrap();
    assert_eq!(count(&reader, "a"), 12);
}

fn ping_with_body(target: &str, secs: u64, body: usize) -> Ping {
    Ping {
        target: target.into(),
        at: at(secs),
        kind: PingKind::Log,
        rid: None,
        body: Some("x".repeat(body)),
        duration: None,
        source: None,
    }
}

#[tokio::test]
async fn the_byte_budget_drops_large_pings_and_counts_them() {
    let (dir, writer, reader) = writer_with(WriterConfig {
        max_batch: 1,
        linger: Duration::from_millis(1),
        queue_capacity: 1_000,
        queue_bytes: 10_000,
    });
    // As above: the writer blocks in its first commit while pings pile up.
    let blocker = Store::open(dir.path()).unwrap();
    blocker
        .lock()
        .conn
        .execute_batch("BEGIN IMMEDIATE")
        .unwrap();
    writer.ping(ping_with_body("a", 0, 10));
    eventually("the writer took the first ping", || {
        writer.stats().queued == 0
    })
    .await;
    // 3,001 bytes each ("a" and the body): three fit in 10,000, the other seven do not,
    // although the count is far below its limit.
    for i in 1..=10 {
        writer.ping(ping_with_body("a", i, 3_000));
    }
    let stats = writer.stats();
    assert_eq!(
        (stats.queued, stats.queued_bytes, stats.dropped_pings),
        (3, 9_003, 7)
    );
    blocker.lock().conn.execute_batch("ROLLBACK").unwrap();
    writer.flush().await.unwrap();
    assert_eq!(reader.last_pings("a", 100).unwrap().len(), 4);
    let stats = writer.stats();
    assert_eq!(
        (stats.written_pings, stats.dropped_pings, stats.queued_bytes),
        (4, 7, 0)
    );
}

#[tokio::test]
async fn a_closed_writer_refuses_everything_and_says_so() {
    let (dir, writer, _reader) = writer_with(WriterConfig::default());
    let other = writer.clone();
    writer.result(result("a", at(1), Kind::Pass, 1));
    writer.close().await.unwrap();
    let err = other
        .transition(transition("a", at(2), "unknown", "healthy"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::WriterClosed), "{err}");
    assert!(err.to_string().contains("spawn a new Writer"), "{err}");
    other.result(result("a", at(3), Kind::Pass, 1));
    assert_eq!(other.stats().dropped_results, 1);
    // What was queued before close was committed.
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(count(&store, "a"), 1);
}

#[tokio::test]
async fn dropping_every_handle_commits_what_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Writer::spawn_with(
        Store::open(dir.path()).unwrap(),
        WriterConfig {
            linger: Duration::from_secs(3600),
            ..WriterConfig::default()
        },
    );
    writer.results((0..5).map(|i| result("a", at(i), Kind::Pass, 1)).collect());
    drop(writer);
    let reader = Store::open_read_only(dir.path()).unwrap();
    eventually("the queued results are committed", || {
        count(&reader, "a") == 5
    })
    .await;
}

#[tokio::test]
async fn readers_see_consistent_data_while_the_writer_writes() {
    let (_dir, writer, reader) = writer_with(WriterConfig {
        max_batch: 500,
        linger: Duration::from_millis(5),
        queue_capacity: 1_000_000,
        ..WriterConfig::default()
    });
    let reader = Arc::new(reader);
    let stop = Arc::new(AtomicBool::new(false));
    // A blocking reader thread, as the API would use through spawn_blocking.
    let reads = tokio::task::spawn_blocking({
        let reader = Arc::clone(&reader);
        let stop = Arc::clone(&stop);
        move || {
            let mut last = 0;
            let mut passes = 0u32;
            while !stop.load(Ordering::Acquire) || passes == 0 {
                // A transition is committed with (or after) the results sent before it, so
                // counting results after reading transitions never finds fewer.
                let transitions = reader.transitions("busy", usize::MAX).unwrap();
                let n = count(&reader, "busy");
                assert!(n >= last, "results went backwards: {n} < {last}");
                assert!(
                    n >= transitions.len() * 1_000,
                    "{n} results, {} transitions",
                    transitions.len()
                );
                reader.uptimes(at(DAY)).unwrap();
                assert_eq!(reader.integrity_check().unwrap(), "ok");
                last = n;
                passes += 1;
            }
            passes
        }
    });
    let mut from = "unknown";
    for round in 0..20u64 {
        writer.results(
            (0..1_000)
                .map(|i| result("busy", at_ms(round * 1_000 + i), Kind::Pass, i))
                .collect(),
        );
        let to = if round % 2 == 0 { "healthy" } else { "failing" };
        writer
            .transition(transition("busy", at(round), from, to))
            .await
            .unwrap();
        from = to;
        tokio::task::yield_now().await;
    }
    writer.flush().await.unwrap();
    stop.store(true, Ordering::Release);
    let passes = reads.await.unwrap();
    assert!(passes > 0);
    assert_eq!(count(&reader, "busy"), 20_000);
}
