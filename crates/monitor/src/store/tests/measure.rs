//! Measurements behind `docs/STORAGE.md`: bytes per target per day, write throughput by
//! batch size, and the cost of `uptimes` for many targets. They print numbers and assert
//! only that the data went in; speed is never asserted. Run them in release mode:
//!
//! ```sh
//! CARGO_TARGET_DIR=target-store cargo test -p vitals-monitor --release --lib \
//!     store::tests::measure -- --ignored --nocapture --test-threads=1
//! ```
//!
//! The data comes from a seeded `SplitMix64`, so every run stores the same data.
//!
//! `VITALS_MEASURE_TARGETS` sets the number of targets of the size measurement (default 200).

use vitals_core::SplitMix64;

use super::*;

/// Bytes used by each table and index, from SQLite's `dbstat` (pages actually used).
fn table_bytes(store: &Store) -> Vec<(String, i64)> {
    let inner = store.lock();
    let mut stmt = inner
        .conn
        .prepare("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn bytes_of(tables: &[(String, i64)], name: &str) -> i64 {
    tables
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, b)| *b)
        .sum()
}

fn rows(store: &Store, sql: &str) -> i64 {
    store.lock().conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// One day of results at a 30 s interval for N targets; `output` decides each result's
/// output from (kind, duration in ms).
fn measure_day(label: &str, targets: u64, output: impl Fn(Kind, u64) -> Option<String>) {
    let (_dir, store) = temp_store();
    let mut rng = SplitMix64::new(0x2545_F491_4F6C_DD1D);
    let per_day = DAY / 30;
    let mut batch = Vec::with_capacity(1_000);
    for step in 0..per_day {
        for t in 0..targets {
            // Latency 5..80 ms; 1 % failures, 0.5 % timeouts, 2 % warnings.
            let ms = 5 + rng.next_u64() % 75;
            let kind = match rng.next_u64() % 1000 {
                0..10 => Kind::Fail,
                10..15 => Kind::Timeout,
                15..35 => Kind::Warn,
                _ => Kind::Pass,
            };
            // Targets are checked spread over the interval, not all at once.
            let when = at_ms(step * 30_000 + (t * 30_000) / targets);
            batch.push(CheckResult {
                target: format!("https://service-{t:05}.internal.example/health"),
                at: when,
                kind,
                duration: Duration::from_millis(ms),
                output: output(kind, ms),
            });
            if batch.len() == 1_000 {
                store.record_results(&batch).unwrap();
                batch.clear();
            }
        }
    }
    store.record_results(&batch).unwrap();
    let raw = table_bytes(&store);
    let raw_bytes = bytes_of(&raw, "results");
    assert_eq!(
        rows(&store, "SELECT COUNT(*) FROM results"),
        (per_day * targets) as i64
    );

    // Roll the day up without pruning anything.
    store.rollup_and_prune(at(DAY + HOUR), 30, 365).unwrap();
    let after = table_bytes(&store);
    let rollup_bytes = bytes_of(&after, "rollups");
    let rollup_rows = rows(&store, "SELECT COUNT(*) FROM rollups");
    let per_rollup = rollup_bytes as f64 / rollup_rows as f64;
    let per_target = |bytes: f64| bytes / targets as f64;
    let raw_day = per_target(raw_bytes as f64);
    let minute_day = per_target(per_rollup * 1440.0 * targets as f64);
    let hour_day = per_target(per_rollup * 25.0 * targets as f64);
    // Steady state with raw_days = 7, minute rollups 14 days, hour and day rollups a year.
    let steady = raw_day * 7.0 + minute_day * f64::from(MINUTE_ROLLUP_DAYS) + hour_day * 365.0;
    let file = std::fs::metadata(store.path()).unwrap().len();
    println!(
        "| {label} | {targets} | {:.0} | {:.1} | {:.0} | {:.0} | {:.2} MiB | {:.1} MiB |",
        raw_day,
        raw_bytes as f64 / (per_day * targets) as f64,
        minute_day,
        hour_day,
        file as f64 / 1_048_576.0,
        steady / 1_048_576.0,
    );
    println!("  tables after rollup: {after:?}");
}

/// CPU seconds (user and system) this process has used, from `/proc/self/stat` (Linux; 0
/// elsewhere): the writer thread's cost is what these measurements are after.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the parenthesised command name; utime and stime are the 14th and 15th
    // of the line, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[test]
#[ignore = "measurement for docs/STORAGE.md; run in release mode with --nocapture"]
fn measure_bytes_per_target_per_day() {
    let targets = std::env::var("VITALS_MEASURE_TARGETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200u64);
    println!(
        "| outputs | targets | raw B/target/day | raw B/result | minute rollups B/target/day \
         | hour+day rollups B/target/day | file after 1 day | steady state per target |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    measure_day("none", targets, |_, _| None);
    measure_day("on failure only", targets, |kind, _| match kind {
        Kind::Fail => Some("GET /health: connection refused (os error 111)".to_owned()),
        Kind::Timeout => Some("no response within 5s".to_owned()),
        _ => None,
    });
    measure_day("always (HTTP status line)", targets, |kind, ms| {
        Some(match kind {
            Kind::Pass | Kind::Warn => format!("HTTP 200 OK in {ms} ms"),
            Kind::Fail => "GET /health: connection refused (os error 111)".to_owned(),
            Kind::Timeout => "no response within 5s".to_owned(),
        })
    });
}

#[test]
#[ignore = "measurement for docs/STORAGE.md; run in release mode with --nocapture"]
fn measure_write_throughput_by_batch_size() {
    println!("| results per transaction | results/s |");
    println!("|---|---|");
    for batch_size in [1usize, 10, 100, 1_000, 10_000] {
        let (_dir, store) = temp_store();
        let total = if batch_size == 1 { 5_000 } else { 50_000 };
        let all: Vec<CheckResult> = (0..total as u64)
            .map(|i| {
                result(
                    &format!("target-{}", i % 1_000),
                    at_ms(i * 30),
                    Kind::Pass,
                    i % 80,
                )
            })
            .collect();
        let started = tokio::time::Instant::now();
        for chunk in all.chunks(batch_size) {
            store.record_results(chunk).unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!("| {batch_size} | {:.0} |", total as f64 / secs);
    }
}

#[test]
#[ignore = "measurement for docs/STORAGE.md; run in release mode with --nocapture"]
fn measure_writer_throughput() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (_dir, store) = temp_store();
        let total = 300_000u64;
        // A queue big enough for everything: this measures how fast the thread drains it.
        let writer = Writer::spawn_with(
            store,
            WriterConfig {
                queue_capacity: total as usize,
                ..WriterConfig::default()
            },
        );
        let started = tokio::time::Instant::now();
        let cpu_before = process_cpu_seconds();
        for i in 0..total {
            writer.result(result(
                &format!("target-{}", i % 10_000),
                at_ms(i),
                Kind::Pass,
                i % 80,
            ));
        }
        writer.flush().await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        let stats = writer.stats();
        assert_eq!(stats.written_results, total);
        let cpu = process_cpu_seconds() - cpu_before;
        println!(
            "writer: {total} results sent one by one, all committed in {secs:.2} s = {:.0} \
             results/s, {} commits (mean batch {:.0}), {:.1} µs of CPU per result",
            total as f64 / secs,
            stats.commits,
            stats.written_results as f64 / stats.commits as f64,
            cpu * 1e6 / total as f64
        );
        // Results trickling in (one a millisecond, like 30,000 targets at a 30 s interval):
        // how many commits the linger saves.
        for linger in [
            Duration::ZERO,
            Duration::from_millis(10),
            Duration::from_millis(100),
        ] {
            let (_dir, store) = temp_store();
            let paced = Writer::spawn_with(
                store,
                WriterConfig {
                    linger,
                    ..WriterConfig::default()
                },
            );
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            for i in 0..2_000u64 {
                tick.tick().await;
                paced.result(result("paced", at_ms(i), Kind::Pass, 5));
            }
            paced.flush().await.unwrap();
            let stats = paced.stats();
            println!(
                "writer: 2000 results at ~1/ms with linger {linger:?}: {} commits",
                stats.commits
            );
        }
        let started = tokio::time::Instant::now();
        for i in 0..1_000u64 {
            writer
                .transition(transition("t", at(i), "healthy", "failing"))
                .await
                .unwrap();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "writer: 1000 awaited transitions, one at a time: {:.0} µs each",
            secs * 1e3
        );
    });
}

#[test]
#[ignore = "measurement for docs/STORAGE.md; run in release mode with --nocapture"]
fn measure_uptimes_for_many_targets() {
    let (_dir, store) = temp_store();
    let targets = 10_000u64;
    let per_target = 20u64;
    let mut rng = SplitMix64::new(0x9E37_79B9_7F4A_7C15);
    let mut batch = Vec::new();
    for t in 0..targets {
        let mut when = rng.next_u64() % (30 * DAY);
        for k in 0..per_target {
            let to = if k % 2 == 0 { "healthy" } else { "down" };
            batch.push(transition(&format!("target-{t}"), at(when), "x", to));
            when += rng.next_u64() % (20 * DAY);
        }
    }
    store
        .with_batch(|b| {
            for t in &batch {
                b.transition(t)?;
            }
            Ok(())
        })
        .unwrap();
    let now = at(400 * DAY);
    let started = tokio::time::Instant::now();
    let all = store.uptimes(now).unwrap();
    let all_secs = started.elapsed().as_secs_f64();
    let started = tokio::time::Instant::now();
    for t in 0..100 {
        store.uptime(&format!("target-{t}"), now).unwrap();
    }
    let one_secs = started.elapsed().as_secs_f64() / 100.0;
    assert_eq!(all.len(), targets as usize);
    println!(
        "uptimes: {targets} targets x {per_target} transitions: {:.0} ms for all; \
         {:.0} µs for one",
        all_secs * 1e3,
        one_secs * 1e6
    );
}
