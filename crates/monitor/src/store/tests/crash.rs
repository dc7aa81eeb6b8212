//! SIGKILL at a random moment loses no committed transition and leaves a sound file.
//!
//! The parent test runs this very test binary again as a child, selecting only
//! [`crash_child`] (which does nothing unless `VITALS_STORE_CRASH_DIR` is set). The child
//! writes through a [`Writer`] exactly as the engine does, with maintenance running on a
//! second connection, and prints a line after each commit it was told about. The parent kills
//! it with `SIGKILL` after a varying number of lines, reopens the store, and checks that every
//! reported commit is there and `integrity_check` says ok. Three rounds share one directory,
//! so each round also recovers from the previous kill.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncBufReadExt, BufReader};
use vitals_testkit::{Signal, signal, wait_for_exit};

use super::*;

const DIR_VAR: &str = "VITALS_STORE_CRASH_DIR";
const TARGETS: u64 = 10;
const STATES: [&str; 4] = ["healthy", "failing", "unhealthy", "down"];

/// What the child reported before it died.
#[derive(Debug, Default)]
struct Reported {
    /// Transition id -> its iteration.
    transitions: HashMap<i64, u64>,
    /// Target -> the iteration of its last reported state save.
    saved: HashMap<String, u64>,
}

impl Reported {
    fn read(&mut self, line: &str) -> bool {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["committed", id, iteration] => {
                self.transitions
                    .insert(id.parse().unwrap(), iteration.parse().unwrap());
                true
            }
            ["saved", target, iteration] => {
                self.saved
                    .insert((*target).to_owned(), iteration.parse().unwrap());
                false
            }
            _ => false,
        }
    }
}

#[tokio::test]
async fn committed_transitions_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut reported = Reported::default();
    for (round, kill_after) in [150usize, 311, 97].into_iter().enumerate() {
        let mut child = tokio::process::Command::new(&exe)
            .args([
                "store::tests::crash::crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(DIR_VAR, dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        let read_enough = async {
            while seen < kill_after {
                let line = lines.next_line().await.unwrap();
                let line = line.unwrap_or_else(|| {
                    panic!("round {round}: the child exited after {seen} commits")
                });
                if reported.read(&line) {
                    seen += 1;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(120), read_enough)
            .await
            .unwrap_or_else(|_| panic!("round {round}: the child is too slow"));
        signal(pid, Signal::SIGKILL).unwrap();
        let status = wait_for_exit(&mut child, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!status.success(), "round {round}: {status}");
        // Lines the child wrote before it died are still in the pipe.
        while let Some(line) = lines.next_line().await.unwrap() {
            reported.read(&line);
        }

        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok", "round {round}");
        let mut stored: HashMap<i64, Transition> = HashMap::new();
        for t in 0..TARGETS {
            for tr in store.transitions(&format!("t{t}"), usize::MAX).unwrap() {
                stored.insert(tr.id.unwrap(), tr);
            }
        }
        let missing: Vec<_> = reported
            .transitions
            .keys()
            .filter(|id| !stored.contains_key(id))
            .collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} of {} reported transitions are missing, e.g. {:?}",
            missing.len(),
            reported.transitions.len(),
            &missing[..missing.len().min(5)]
        );
        // Each target's state is recovered: at least as new as its last reported save, and
        // the very state its transition of that iteration entered.
        let by_iteration: BTreeMap<u64, &Transition> = stored
            .values()
            .map(|t| (t.reason.parse::<u64>().unwrap(), t))
            .collect();
        let states = store.load_states().unwrap();
        let loaded: HashSet<&str> = states.iter().map(|s| s.target.as_str()).collect();
        for target in reported.saved.keys() {
            assert!(
                loaded.contains(target.as_str()),
                "round {round}: {target} lost"
            );
        }
        for st in &states {
            let i = u64::from(st.consecutive_successes);
            if let Some(min) = reported.saved.get(&st.target) {
                assert!(
                    i >= *min,
                    "round {round}: {} went back to {i} < {min}",
                    st.target
                );
            }
            let t = by_iteration[&i];
            assert_eq!(
                (t.target.as_str(), t.to.as_str()),
                (st.target.as_str(), st.state.as_str())
            );
        }
        // Results and maintenance kept going too, and nothing half-written is visible.
        assert!(!store.recent_results("t0", 1).unwrap().is_empty());
    }
    assert!(reported.transitions.len() >= 150 + 311 + 97);
}

/// The child: writes until killed. Ignored so that it runs only when the parent asks for it.
#[test]
#[ignore = "run by committed_transitions_survive_sigkill as a child process"]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR) else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(&dir).unwrap();
        // Resume after the last iteration a previous (killed) child saved.
        let start = store
            .load_states()
            .unwrap()
            .iter()
            .map(|s| u64::from(s.consecutive_successes) + 1)
            .max()
            .unwrap_or(0)
            + 1_000;
        let writer = Writer::spawn_with(
            store,
            WriterConfig {
                linger: Duration::from_millis(2),
                ..WriterConfig::default()
            },
        );
        // Maintenance on its own connection, racing the writer, so some kills land in it.
        let clock = Arc::new(AtomicU64::new(start));
        std::thread::spawn({
            let maintenance = Store::open(&dir).unwrap();
            let clock = Arc::clone(&clock);
            // Pacing an OS thread in a child process, not waiting for anything: a plain sleep.
            #[allow(clippy::disallowed_methods)]
            move || {
                loop {
                    let i = clock.load(Ordering::Acquire);
                    if let Err(e) = maintenance.rollup_and_prune(at(i * 30 + 120), 1, 365) {
                        eprintln!("maintenance failed: {e}");
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        });
        let mut from: HashMap<u64, &str> = HashMap::new();
        for i in start.. {
            clock.store(i, Ordering::Release);
            writer.results(
                (0..TARGETS)
                    .map(|t| result(&format!("t{t}"), at(i * 30), Kind::Pass, i % 97))
                    .collect(),
            );
            let t = i % TARGETS;
            let target = format!("t{t}");
            let to = STATES[(i / TARGETS % 4) as usize];
            let mut tr = transition(&target, at(i * 30), from.get(&t).unwrap_or(&"unknown"), to);
            tr.reason = i.to_string();
            let id = writer.transition(tr).await.unwrap();
            println!("committed {id} {i}");
            from.insert(t, to);
            let state = TargetState {
                target: target.clone(),
                state: State::parse(to).expect("a state name"),
                since: Some(at(i * 30)),
                flapping: false,
                consecutive_failures: 0,
                consecutive_successes: u32::try_from(i).unwrap(),
                flags: Flags::default(),
            };
            writer.save_states(vec![state]).await.unwrap();
            println!("saved {target} {i}");
        }
    });
}
