//! The `vitals` binary under systemd (issue 14): `vitals serve` and `vitals supervise` speak
//! sd_notify to a real unix datagram socket given as `NOTIFY_SOCKET`, and the example units
//! in deploy/systemd/ pass `systemd-analyze verify` (skipped with a message where it is not
//! installed).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crate::support::vitals;
use tokio::net::UnixDatagram;
use vitals_testkit::{Ready, Running, Signal};

/// Datagrams until one satisfies `done`; all of them, that one last.
async fn until(socket: &UnixDatagram, done: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), socket.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("no such notification within 20 s; got {seen:?}"))
            .unwrap();
        let message = String::from_utf8(buf[..n].to_vec()).unwrap();
        let stop = done(&message);
        seen.push(message);
        if stop {
            return seen;
        }
    }
}

#[tokio::test]
async fn vitals_serve_notifies_ready_once_listening_pings_the_watchdog_and_says_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let config = dir.path().join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let mut monitor = Running::start(
        vitals()
            .args(["serve", "--config"])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            // 200 ms: a ping every 100 ms.
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID"),
        Ready::Line("vitals monitor on "),
    )
    .await
    .unwrap();
    let base = monitor.banner()["vitals monitor on ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let got = until(&socket, |m| m.contains("READY=1")).await;
    assert!(
        got[..got.len() - 1]
            .iter()
            .all(|m| m == "WATCHDOG=1" || m.starts_with("STATUS=starting")),
        "{got:?}"
    );
    // Its store check has run by now, or will in a moment: then the status is "ready".
    if !got.last().unwrap().contains("STATUS=ready") {
        until(&socket, |m| m == "STATUS=ready").await;
    }
    // READY=1 came once the listener was bound: it answers.
    let answer = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(answer.status(), 200);
    until(&socket, |m| m == "WATCHDOG=1").await;
    until(&socket, |m| m == "WATCHDOG=1").await;

    monitor.signal(Signal::SIGTERM).unwrap();
    let got = until(&socket, |m| m.contains("STOPPING=1")).await;
    assert!(got.last().unwrap().contains("STATUS=draining"), "{got:?}");
    assert!(
        monitor
            .wait(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
}

#[tokio::test]
async fn vitals_supervise_notifies_ready_when_the_child_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    let d = dir.path().display().to_string();
    let config = dir.path().join("svc.toml");
    std::fs::write(
        &config,
        format!(
            "[readinessProbe]\nexec = {{ command = [\"test\", \"-e\", \"{d}/ready\"] }}\nperiodSeconds = 0.1\n"
        ),
    )
    .unwrap();
    // The child must not inherit the socket: it would speak for itself.
    let script = format!("echo \"$NOTIFY_SOCKET\" > {d}/inherited; exec sleep 300");
    let mut supervisor = Running::start(
        vitals()
            .args(["supervise", "--config"])
            .arg(&config)
            .args(["--", "sh", "-c", &script])
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID"),
        Ready::Line("vitals supervise: running "),
    )
    .await
    .unwrap();
    let before = until(&socket, |m| m == "WATCHDOG=1").await;
    assert!(before.iter().all(|m| !m.contains("READY=1")), "{before:?}");
    std::fs::write(dir.path().join("ready"), "").unwrap();
    let got = until(&socket, |m| m.contains("READY=1")).await;
    assert!(
        got.last()
            .unwrap()
            .contains("STATUS=child running: readiness probe passes"),
        "{got:?}"
    );
    let inherited = std::fs::read_to_string(dir.path().join("inherited")).unwrap();
    assert_eq!(inherited.trim(), "", "NOTIFY_SOCKET leaked to the child");
    supervisor.signal(Signal::SIGTERM).unwrap();
    until(&socket, |m| m.contains("STOPPING=1")).await;
    assert_eq!(
        supervisor
            .wait(Duration::from_secs(30))
            .await
            .unwrap()
            .code(),
        Some(143)
    );
}

/// Copies the units to `into` with their programs replaced by ones that exist here
/// (`systemd-analyze verify` checks that `ExecStart=` is executable).
fn units_for_verify(into: &Path) -> Vec<std::path::PathBuf> {
    let vitals = env!("CARGO_BIN_EXE_vitals");
    let units = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/systemd");
    let mut copies = Vec::new();
    for entry in std::fs::read_dir(&units).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "service") {
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("/usr/local/bin/vitals", vitals)
                .replace("/usr/local/bin/order-service", vitals);
            let copy = into.join(path.file_name().unwrap());
            std::fs::write(&copy, text).unwrap();
            copies.push(copy);
        }
    }
    copies.sort();
    copies
}

#[test]
fn the_example_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let units = units_for_verify(dir.path());
    assert!(units.len() >= 3, "{units:?}");
    let output = match std::process::Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&units)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            eprintln!(
                "skipped: systemd-analyze is not available ({error}); install systemd to check the units"
            );
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // It warns (and exits 0) about unknown keys and bad values: none may be printed.
    assert!(stderr.trim().is_empty(), "{stderr}");
}
