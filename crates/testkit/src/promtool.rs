//! `promtool check metrics` on a `/metrics` body, for the tests of every exporter (the
//! monitor, the balancer, the library): Prometheus' own linter, not our reading of the
//! format. `scripts/test` installs it (Debian's `prometheus` package); where it is missing
//! the check says so and is skipped, never passed silently.

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `promtool check metrics` on `text` and panics with its complaints if it fails.
/// Returns `false` (after printing why) when promtool is not installed.
pub fn promtool_check(text: &str) -> bool {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(error) => {
            eprintln!(
                "skipped `promtool check metrics`: {error}; install it with apt-get install prometheus"
            );
            return false;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .expect("writing to promtool");
    }
    let output = child.wait_with_output().expect("waiting for promtool");
    assert!(
        output.status.success(),
        "promtool check metrics failed:\n{}{}\n--- the metrics ---\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}
