//! `vitals serve` and `vitals check-config` as users run them: a real process, killed with
//! SIGKILL mid-run and restarted, losing no transition; a config full of mistakes refused
//! with every error.

#![allow(clippy::unwrap_used)] // test helpers

use std::time::Duration;

use crate::support::{ping, serve};
use vitals_testkit::{Signal, holds, until};

async fn target(client: &reqwest::Client, base: &str, id: &str) -> serde_json::Value {
    client
        .get(format!("{base}/api/v1/targets/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn sigkill_mid_run_loses_no_transition_and_state_is_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n\n[[target]]\nid = \"job\"\nkind = \"heartbeat\"\nperiod = \"1h\"\nfall = 1\nrise = 1\ndown_after = 2\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let client = reqwest::Client::new();
    let (mut first, base) = serve(&config).await;
    // The job has no ping_id: the monitor generated one and keeps it beside the database
    // (issue 11, item 1); the target's id is no ping URL.
    let kept = std::fs::read_to_string(dir.path().join("data/ping_ids")).unwrap();
    let ping_id = kept
        .lines()
        .find_map(|line| line.strip_prefix("job "))
        .unwrap()
        .to_owned();
    let status = client
        .get(format!("{base}/ping/job/fail"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let fail = format!("{ping_id}/fail");
    // Eight transitions: healthy, unhealthy, healthy, … ending unhealthy.
    for _ in 0..4 {
        ping(&client, &base, &ping_id).await;
        ping(&client, &base, &fail).await;
    }
    let before = target(&client, &base, "job").await;
    assert_eq!(before["state"], "unhealthy");
    // Transitions are committed before they show in the API's history.
    until(
        "the 8 transitions in the store",
        Duration::from_secs(10),
        async || {
            holds(target(&client, &base, "job").await, |t| {
                t["transitions"].as_array().unwrap().len() >= 8
            })
        },
    )
    .await;
    first.kill().await.unwrap();

    let (mut second, base) = serve(&config).await;
    let after = target(&client, &base, "job").await;
    assert_eq!(after["state"], "unhealthy", "state recovered: {after}");
    let transitions = after["transitions"].as_array().unwrap();
    assert_eq!(transitions.len(), 8, "{after}");
    // And the recovered machine carries on, pinged at the same generated id: one success
    // makes it healthy (rise 1).
    ping(&client, &base, &ping_id).await;
    assert_eq!(target(&client, &base, "job").await["state"], "healthy");
    second.signal(Signal::SIGTERM).unwrap();
    let status = second.wait(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status:?}");

    let store = vitals_monitor::store::Store::open(&dir.path().join("data")).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn check_config_reports_every_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[server]\nlisten = \"nowhere\"\n\n[[target]]\nid = \"api\"\nkind = \"http\"\nurl = \"ftp://example\"\ninterval = \"10s\"\ntimeout = \"30s\"\n\n[[target]]\nid = \"api\"\nkind = \"tcp\"\naddress = \"127.0.0.1:1\"\ndepends_on = [\"nope\"]\n",
    )
    .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let errors = String::from_utf8_lossy(&output.stderr);
    for line in [
        "bad.toml:2:",
        "bad.toml:7:",
        "bad.toml:9:",
        "bad.toml:12:",
        "bad.toml:15:",
    ] {
        assert!(errors.contains(line), "missing {line} in:\n{errors}");
    }
    // serve refuses the same config with the same messages.
    let serve = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(serve.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&serve.stderr).contains("bad.toml:9:"));

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[target]]\nid = \"db\"\nkind = \"tcp\"\naddress = \"127.0.0.1:5432\"\n",
    )
    .unwrap();
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

/// Programs the file would run but this machine lacks are warned about by name and place;
/// `--strict` refuses the file for them; programs that exist pass quietly (issue 17, item 4).
#[test]
fn check_config_warns_of_programs_this_machine_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("commands.toml");
    std::fs::write(
        &path,
        "[[channel]]\nid = \"pager\"\nkind = \"command\"\ncommand = [\"/nonexistent/page-oncall\"]\n\n\
         [[target]]\nid = \"disk\"\nkind = \"exec\"\ncommand = [\"check_disk_not_installed\", \"-w\", \"10%\"]\n\
         recover = { command = [\"sh\", \"-c\", \"true\"] }\n",
    )
    .unwrap();
    let check = |strict: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vitals"));
        command.arg("check-config");
        if strict {
            command.arg("--strict");
        }
        command.arg(&path).output().unwrap()
    };
    let output = check(false);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: target \"disk\", command: \"check_disk_not_installed\" is not found on PATH here"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "warning: channel \"pager\", command: \"/nonexistent/page-oncall\" is not an executable file here"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("recover"), "sh is found: {stderr}");
    let strict = check(true);
    assert_eq!(strict.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&strict.stderr).contains("2 warning(s), refused by --strict"));
}

/// Ctrl-C drains for `drain_delay` with `/readyz` failing; a second Ctrl-C cuts the drain
/// short; the last line says the monitor stopped (issue 17, item 10). The drain here is 10
/// minutes, so only the second signal can have ended it within the wait.
#[tokio::test]
async fn a_second_interrupt_cuts_the_drain_short_and_the_monitor_says_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\ndrain_delay = \"10m\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let (mut monitor, base) = serve(&path).await;
    let client = reqwest::Client::new();
    let ready = async || {
        client
            .get(format!("{base}/readyz"))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .ok()
    };
    until("ready", Duration::from_secs(20), async || {
        holds(ready().await, |code| *code == Some(200))
    })
    .await;
    monitor.signal(Signal::SIGINT).unwrap();
    until("draining", Duration::from_secs(20), async || {
        holds(ready().await, |code| *code == Some(503))
    })
    .await;
    monitor.signal(Signal::SIGINT).unwrap();
    let status = monitor.wait(Duration::from_secs(60)).await.unwrap();
    assert!(status.success(), "{status:?}\n{}", monitor.stderr());
    // Standard output is read by a task of its own: wait for it to catch up with the exit.
    until("the final line", Duration::from_secs(10), async || {
        holds(monitor.stdout(), |lines| {
            lines.last().map(String::as_str) == Some("vitals monitor stopped")
        })
    })
    .await;
}

/// A SIGTERM the moment the banner appears still drains and stops cleanly: the signal
/// handlers are in place before anyone is told the monitor listens.
#[tokio::test]
async fn a_sigterm_right_after_the_banner_stops_the_monitor_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("early.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\ndrain_delay = \"0s\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let (mut monitor, _base) = serve(&path).await;
    monitor.signal(Signal::SIGTERM).unwrap();
    let status = monitor.wait(Duration::from_secs(30)).await.unwrap();
    assert!(
        status.success(),
        "killed rather than drained: {status:?}\n{}",
        monitor.stderr()
    );
}
