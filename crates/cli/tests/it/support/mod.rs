//! What the `vitals` binary's tests share: `vitals serve` started as users run it (its
//! output kept, killed and reaped when dropped, see `vitals_testkit::Running`) and a
//! healthchecks.io ping.

#![allow(clippy::unwrap_used, dead_code)] // test helpers; each test file uses some

use std::path::Path;
use std::process::Output;

use tokio::process::Command;
use vitals_testkit::{Ready, Running};

/// The `vitals` binary of this build.
pub fn vitals() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitals"))
}

/// `vitals serve --config CONFIG`, once it listens; and its base URL, from its banner
/// (`vitals monitor on http://127.0.0.1:PORT …`).
pub async fn serve(config: &Path) -> (Running, String) {
    serve_with(vitals().args(["serve", "--config"]).arg(config)).await
}

/// `command` (a `vitals serve …`), once it listens; and its base URL, from its banner.
pub async fn serve_with(command: &mut Command) -> (Running, String) {
    const BANNER: &str = "vitals monitor on ";
    let monitor = Running::start(command, Ready::Line(BANNER)).await.unwrap();
    let base = monitor.banner()[BANNER.len()..]
        .split(' ')
        .next()
        .unwrap_or_default()
        .to_owned();
    (monitor, base)
}

/// `GET {base}/ping/{path}`, which must answer 200.
pub async fn ping(client: &reqwest::Client, base: &str, path: &str) {
    let response = client
        .get(format!("{base}/ping/{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// The `vitals` binary, for tests without a runtime.
pub fn vitals_blocking() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_vitals"))
}

/// `GET url` as JSON.
pub async fn get(client: &reqwest::Client, url: String) -> serde_json::Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// Ids of every target the monitor at `base` lists, in its order (by id).
pub async fn ids(client: &reqwest::Client, base: &str) -> Vec<String> {
    let page = get(client, format!("{base}/api/v1/targets?limit=1000")).await;
    page["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The reasons of a target's stored transitions and marks, from `GET /api/v1/targets/<id>`.
pub fn reasons(target: &serde_json::Value) -> Vec<String> {
    target["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["reason"].as_str().map(str::to_owned))
        .collect()
}

/// Run `vitals probe ARGS…`, assert its exit code, and return what it printed.
pub async fn probe(args: &[&str], code: i32) -> Output {
    let output = vitals()
        .arg("probe")
        .args(args)
        .env_remove("RUST_LOG")
        .kill_on_drop(true)
        .output()
        .await
        .expect("run vitals");
    assert_eq!(
        output.status.code(),
        Some(code),
        "vitals probe {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    output
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The exit code of `vitals probe --quiet ARGS…`, for waiting on a state.
pub async fn probe_code(args: &[&str]) -> Option<i32> {
    let output = vitals()
        .args(["probe", "--quiet"])
        .args(args)
        .output()
        .await
        .expect("run vitals");
    output.status.code()
}
