//! The exec probe with real commands: the Nagios exit codes, the output line, a missing
//! program, a flood of output, and a hanging command cancelled the way the runner cancels
//! it (dropping the future at a timeout), after which its process must be gone and reaped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vitals_core::Status;
use vitals_probes::{Exec, Probe};
use vitals_testkit::until;

fn sh(script: &str) -> Exec {
    Exec::new("sh").args(["-c", script])
}

/// A file under the test's own temporary directory, for a command to leave its pid in.
fn pid_file(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("exec-{name}-{}.pid", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

async fn read_pid(path: &Path) -> u32 {
    let what = format!("a pid in {}", path.display());
    until(what, Duration::from_secs(10), async || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        text.trim().parse().map_err(|_| text)
    })
    .await
}

/// `/proc/<pid>` disappears only once the process is dead *and reaped*: a zombie keeps it.
async fn wait_until_gone(pid: u32) {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let what = format!("process {pid} to be gone");
    until(what, Duration::from_secs(10), async || {
        if proc.exists() {
            Err(std::fs::read_to_string(proc.join("stat")).unwrap_or_default())
        } else {
            Ok(())
        }
    })
    .await;
}

#[tokio::test]
async fn exit_codes_map_the_nagios_way() {
    let cases = [
        ("echo 'OK - fine'; exit 0", Status::Pass, "OK - fine"),
        (
            "echo 'WARNING - load 7 | load=7;5;10'; exit 1",
            Status::Warn,
            "WARNING - load 7",
        ),
        (
            "echo 'CRITICAL - gone'; exit 2",
            Status::Fail,
            "CRITICAL - gone",
        ),
        (
            "echo 'cannot parse -w'; exit 3",
            Status::Fail,
            "unknown (exit 3): cannot parse -w",
        ),
        (
            "echo oops; exit 7",
            Status::Fail,
            "exit 7, outside the plugin codes 0-3: oops",
        ),
        (
            "echo 'no such device' >&2; exit 2",
            Status::Fail,
            "no such device",
        ),
        ("exit 1", Status::Warn, "exit 1 (warning), no output"),
    ];
    for (script, status, output) in cases {
        let report = sh(script).check().await;
        assert_eq!(report.status, status, "{script}: {report:?}");
        assert_eq!(report.output.as_deref(), Some(output), "{script}");
        assert_eq!(report.observed.map(|o| o.unit).as_deref(), Some("ms"));
    }
}

#[tokio::test]
async fn a_killed_command_and_a_missing_program_fail_with_the_reason() {
    let report = sh("kill -9 $$").check().await;
    assert_eq!(report.status, Status::Fail);
    let output = report.output.unwrap();
    assert!(output.contains("signal: 9"), "{output}");

    let report = Exec::new("/nonexistent/check_nothing").check().await;
    assert_eq!(report.status, Status::Fail);
    let output = report.output.unwrap();
    assert!(
        output.starts_with("cannot run \"/nonexistent/check_nothing\": "),
        "{output}"
    );
}

#[tokio::test]
async fn a_flood_of_output_is_capped_without_blocking_the_command() {
    // Far more than a pipe holds: the command would block forever if the rest were not read.
    let report = sh("echo 'OK - first'; head -c 2000000 /dev/zero; exit 0")
        .check()
        .await;
    assert_eq!(report.status, Status::Pass, "{report:?}");
    assert_eq!(report.output.as_deref(), Some("OK - first"));
}

#[tokio::test]
async fn a_background_process_holding_the_pipe_does_not_hold_the_check() {
    let file = pid_file("background");
    let script = format!(
        "sleep 30 & echo $! > {}; echo 'OK - started'; exit 0",
        file.display()
    );
    let report = tokio::time::timeout(Duration::from_secs(10), sh(&script).check())
        .await
        .expect("the check ends soon after the command exits");
    assert_eq!(report.status, Status::Pass, "{report:?}");
    assert_eq!(report.output.as_deref(), Some("OK - started"));
    // A check starts nothing that outlives it: the background sleep dies with the check.
    let pid = read_pid(&file).await;
    until(
        format!("the background sleep {pid} to be killed"),
        Duration::from_secs(10),
        async || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Gone, or a zombie waiting for init.
            if stat.is_empty()
                || stat
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
            {
                Ok(())
            } else {
                Err(stat)
            }
        },
    )
    .await;
    let _ = std::fs::remove_file(&file);
}

/// Issue 11, item 7: `sh -c 'sleep 3600 & sleep 3600'` cut at its timeout used to leave both
/// sleeps running, re-parented to init, one pair per run. The whole process group dies now.
#[tokio::test]
async fn a_timed_out_check_leaves_no_process_of_its_group() {
    let file = pid_file("group");
    // The shell leads the group: its pid is the group's id.
    let probe = sh(&format!(
        "echo $$ > {}; sleep 3600 & sleep 3600",
        file.display()
    ));
    let mut check = probe.check();
    let pgid = tokio::select! {
        report = &mut check => panic!("the sleeps ended early: {report:?}"),
        pid = read_pid(&file) => pid,
    };
    until("both sleeps to run", Duration::from_secs(10), async || {
        let alive = vitals_testkit::group_alive(pgid);
        if alive.iter().filter(|(_, name)| name == "sleep").count() == 2 {
            Ok(())
        } else {
            Err(alive)
        }
    })
    .await;
    let cancelled = tokio::time::timeout(Duration::from_millis(100), check).await;
    assert!(
        cancelled.is_err(),
        "sleep 3600 finished within the timeout?"
    );
    until(
        format!("no live process in group {pgid}"),
        Duration::from_secs(10),
        async || {
            let alive = vitals_testkit::group_alive(pgid);
            if alive.is_empty() { Ok(()) } else { Err(alive) }
        },
    )
    .await;
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_cancelled_check_kills_and_reaps_its_process() {
    let file = pid_file("cancelled");
    // `exec` keeps the pid that was written: the sleep is the probe's own child. It sleeps
    // far longer than `wait_until_gone` waits, so only a kill can make this test pass.
    let probe = sh(&format!("echo $$ > {}; exec sleep 60", file.display()));
    let mut check = probe.check();
    // Let it start for real (its pid written) before cancelling, so the test does not
    // depend on how fast the machine spawns a shell.
    let pid = tokio::select! {
        report = &mut check => panic!("sleep 60 ended early: {report:?}"),
        pid = read_pid(&file) => pid,
    };
    // Cancel as the runner does: a tokio timeout drops the check's future.
    let cancelled = tokio::time::timeout(Duration::from_millis(100), check).await;
    assert!(cancelled.is_err(), "sleep 60 finished within the timeout?");
    wait_until_gone(pid).await;
    let _ = std::fs::remove_file(&file);
}
