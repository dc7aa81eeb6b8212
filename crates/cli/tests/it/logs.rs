//! Logs as the journal and log shippers read them (issue 14, item 6): no colour codes when
//! standard error is not a terminal, `--log-format json` one JSON object per line, and one
//! start-up line saying what listens where on which store, instead of a line per schema
//! migration step.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use crate::support::vitals;
use vitals_testkit::{Ready, Running, Signal};

fn config(dir: &Path) -> std::path::PathBuf {
    let config = dir.join("vitals.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
            dir.join("data").display().to_string()
        ),
    )
    .unwrap();
    config
}

/// Runs `vitals ARGS serve --config …` (standard error to a file, as under systemd or a
/// shipper), stops it with SIGTERM and returns what it wrote on standard error.
async fn serve_and_stop(args: &[&str], dir: &Path) -> String {
    let mut monitor = Running::start(
        vitals()
            .args(args)
            .args(["serve", "--config"])
            .arg(config(dir))
            .env_remove("NO_COLOR")
            .env("RUST_LOG", "info"),
        Ready::Line("vitals monitor on "),
    )
    .await
    .unwrap();
    // Its SIGTERM handler is in place once it answers (the banner comes a moment earlier).
    let base = monitor.banner()["vitals monitor on ".len()..]
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    vitals_testkit::until(
        "the monitor to answer",
        Duration::from_secs(20),
        async || reqwest::get(format!("{base}/livez")).await.is_ok(),
    )
    .await;
    monitor.signal(Signal::SIGTERM).unwrap();
    let status = monitor.wait(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status:?}: {}", monitor.stderr());
    monitor.stderr()
}

#[tokio::test]
async fn text_logs_off_a_terminal_have_no_colour_codes_and_one_start_up_line() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = serve_and_stop(&[], dir.path()).await;
    assert!(!stderr.contains('\u{1b}'), "escape codes in:\n{stderr}");
    let listening: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("vitals monitor listening on http://127.0.0.1:"))
        .collect();
    assert_eq!(listening.len(), 1, "{stderr}");
    let line = listening[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("vitals.db"), "the store is named: {line}");
    assert!(line.contains("targets=0"), "{line}");
    // A new store's three migrations are not news at INFO.
    assert!(!stderr.contains("schema migrated"), "{stderr}");
    // Start-up says one thing at INFO before the listening line.
    let before: Vec<&str> = stderr
        .lines()
        .take_while(|line| !line.contains("vitals monitor listening"))
        .filter(|line| line.contains(" INFO "))
        .collect();
    assert!(
        before.is_empty(),
        "noise before the start-up line: {before:?}"
    );
}

#[tokio::test]
async fn json_logs_are_one_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = serve_and_stop(&["--log-format", "json"], dir.path()).await;
    let mut messages = Vec::new();
    for line in stderr.lines().filter(|line| !line.trim().is_empty()) {
        let object: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {line}\n{stderr}"));
        assert!(object["level"].is_string(), "{line}");
        assert!(object["timestamp"].is_string(), "{line}");
        messages.push(
            object["fields"]["message"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("vitals monitor listening on http://")),
        "{messages:?}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[tokio::test]
async fn an_unknown_log_format_is_a_usage_error() {
    let output = vitals()
        .args(["--log-format", "xml", "check-config", "nothing.toml"])
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("xml"), "{stderr}");
}
