//! Running one recovery action: a command (no shell, in its own process group, killed at its
//! timeout) or an HTTP request (cut at its timeout), with output captured up to a bound and
//! the result classified.
//!
//! Not here: deciding whether to run (the budget, `super`), or storing what happened.

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::Instant;
use vitals_probes::{ChildOutput, EXEC_OUTPUT_LIMIT, GroupChild, spawn_in_group, wait_with_output};

use crate::config::RecoveryAction;

/// The most bytes of output kept from one action (stdout and stderr each, or a response
/// body). Enough for a service manager's complaint; the rest is read and thrown away so a
/// chatty command never blocks on a full pipe.
pub const OUTPUT_LIMIT: usize = EXEC_OUTPUT_LIMIT;

/// How an action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Exit 0, or a 2xx answer.
    Ok,
    /// Another exit code, death by a signal, or another HTTP status.
    Failed,
    /// Still running at the timeout: killed, or the request cut.
    Timeout,
    /// It could not run at all (no such program, connection refused).
    Error,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Ended::Ok => "ok",
            Ended::Failed => "failed",
            Ended::Timeout => "timeout",
            Ended::Error => "error",
        }
    }
}

/// What one run of an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ran {
    pub verdict: Ended,
    pub duration: Duration,
    pub exit_code: Option<i32>,
    pub http_status: Option<u16>,
    /// Captured output, bounded; or what went wrong.
    pub output: Option<String>,
}

/// Runs `action`, giving up after `timeout`.
pub async fn run(action: &RecoveryAction, timeout: Duration, client: &reqwest::Client) -> Ran {
    let start = Instant::now();
    let mut ran = match action {
        RecoveryAction::Command(argv) => command(argv, timeout).await,
        RecoveryAction::Http {
            url,
            method,
            headers,
        } => http(client, url, method, headers, timeout).await,
    };
    ran.duration = start.elapsed();
    ran
}

fn ran(verdict: Ended, output: impl Into<String>) -> Ran {
    Ran {
        verdict,
        duration: Duration::ZERO,
        exit_code: None,
        http_status: None,
        output: Some(output.into()),
    }
}

async fn command(argv: &[String], timeout: Duration) -> Ran {
    let Some((program, args)) = argv.split_first() else {
        return ran(Ended::Error, "the command is empty");
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Its own process group: a service the command starts must not die with the monitor's
    // terminal (Ctrl-C reaches a process group, and this is not the monitor's), and at the
    // timeout the whole group is killed, not only the command (issue 11, item 7).
    let group = match spawn_in_group(&mut command) {
        Ok(group) => group,
        Err(error) => {
            return ran(
                Ended::Error,
                format!(
                    "cannot run {program:?}: {error}; give the program's full path, or check that it exists and is executable"
                ),
            );
        }
    };
    match tokio::time::timeout(timeout, run_child(group)).await {
        Ok(done) => done,
        Err(_) => ran(
            Ended::Timeout,
            format!(
                "still running after {}; killed with its process group",
                humantime::format_duration(timeout)
            ),
        ),
    }
}

/// Waits for the command, reading its output; cancelled at the timeout, which drops the
/// group and so kills every process in it. A command that ends in time leaves what it
/// started alone: a restart command's daemon is what it was for.
async fn run_child(mut group: GroupChild) -> Ran {
    let ChildOutput {
        status,
        stdout: out,
        stderr: err,
    } = wait_with_output(group.child()).await;
    group.disarm();
    let output = join_output(&out, &err);
    match status {
        Ok(status) => Ran {
            verdict: if status.success() {
                Ended::Ok
            } else {
                Ended::Failed
            },
            duration: Duration::ZERO,
            exit_code: status.code(),
            http_status: None,
            // No code means a signal: ExitStatus says which ("signal: 9 (SIGKILL)").
            output: match (status.code(), output) {
                (None, Some(output)) => Some(format!("ended by {status}\n{output}")),
                (None, None) => Some(format!("ended by {status}")),
                (_, output) => output,
            },
        },
        Err(error) => ran(Ended::Error, format!("waiting for the command: {error}")),
    }
}

/// stdout, then stderr, as text; `None` when both are empty.
fn join_output(out: &[u8], err: &[u8]) -> Option<String> {
    let out = String::from_utf8_lossy(out);
    let err = String::from_utf8_lossy(err);
    match (out.trim().is_empty(), err.trim().is_empty()) {
        (true, true) => None,
        (false, true) => Some(out.into_owned()),
        (true, false) => Some(err.into_owned()),
        (false, false) => Some(format!("{out}\n[stderr]\n{err}")),
    }
}

async fn http(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Ran {
    let method = match reqwest::Method::from_bytes(method.as_bytes()) {
        Ok(method) => method,
        Err(_) => return ran(Ended::Error, format!("{method:?} is not an HTTP method")),
    };
    let mut request = client.request(method, url).timeout(timeout);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            return ran(
                Ended::Timeout,
                format!("no answer within {}", humantime::format_duration(timeout)),
            );
        }
        // Without the URL: it may carry credentials (the action's description shows it
        // redacted).
        Err(error) => {
            return ran(
                Ended::Error,
                format!(
                    "request failed: {}",
                    vitals_probes::error_chain(&error.without_url())
                ),
            );
        }
    };
    let status = response.status();
    let body = read_body(response).await;
    Ran {
        verdict: if status.is_success() {
            Ended::Ok
        } else {
            Ended::Failed
        },
        duration: Duration::ZERO,
        exit_code: None,
        http_status: Some(status.as_u16()),
        output: (!body.trim().is_empty()).then_some(body),
    }
}

/// The first [`OUTPUT_LIMIT`] bytes of the body, as text; the rest is not read. A body cut
/// by the timeout keeps what arrived.
async fn read_body(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < OUTPUT_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(OUTPUT_LIMIT);
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> RecoveryAction {
        RecoveryAction::Command(words.iter().map(|w| (*w).to_owned()).collect())
    }

    async fn go(action: &RecoveryAction, timeout: Duration) -> Ran {
        run(action, timeout, &reqwest::Client::new()).await
    }

    #[tokio::test]
    async fn a_command_reports_its_exit_code_and_output() {
        let ok = go(
            &argv(&["sh", "-c", "echo restarted"]),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(
            (ok.verdict, ok.exit_code, ok.output.as_deref()),
            (Ended::Ok, Some(0), Some("restarted\n"))
        );
        let failed = go(
            &argv(&["sh", "-c", "echo out; echo 'no unit api' >&2; exit 5"]),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(failed.verdict, Ended::Failed);
        assert_eq!(failed.exit_code, Some(5));
        assert_eq!(
            failed.output.as_deref(),
            Some("out\n\n[stderr]\nno unit api\n")
        );
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let chatty = go(
            &argv(&["sh", "-c", "head -c 1000000 /dev/zero | tr '\\0' x"]),
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(chatty.verdict, Ended::Ok);
        assert_eq!(chatty.output.map(|o| o.len()), Some(OUTPUT_LIMIT));
    }

    #[tokio::test]
    async fn a_hung_command_is_killed_at_its_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("echo $$ > {}; exec sleep 30", pid_file.display());
        let hung = go(&argv(&["sh", "-c", &script]), Duration::from_millis(300)).await;
        assert_eq!(hung.verdict, Ended::Timeout);
        assert!(hung.output.unwrap().contains("killed"));
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Bounded poll: tokio reaps the killed child in the background.
        let deadline = Instant::now() + Duration::from_secs(10);
        while vitals_testkit::is_running(pid) {
            assert!(Instant::now() < deadline, "pid {pid} outlived its timeout");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Issue 11, item 7: only the shell used to be killed; both sleeps outlived it.
    #[tokio::test]
    async fn a_timed_out_command_is_killed_with_its_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let script = format!("echo $$ > {}; sleep 3600 & sleep 3600", pid_file.display());
        let hung = go(&argv(&["sh", "-c", &script]), Duration::from_millis(500)).await;
        assert_eq!(hung.verdict, Ended::Timeout);
        let pgid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        vitals_testkit::until(
            format!("no live process in group {pgid}"),
            Duration::from_secs(10),
            async || {
                let alive = vitals_testkit::group_alive(pgid);
                if alive.is_empty() { Ok(()) } else { Err(alive) }
            },
        )
        .await;
    }

    #[tokio::test]
    async fn what_a_command_that_ended_in_time_started_keeps_running() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // The started "service" keeps no pipe of ours open.
        let script = format!(
            "sleep 30 >/dev/null 2>&1 & echo $! > {}",
            pid_file.display()
        );
        let ok = go(&argv(&["sh", "-c", &script]), Duration::from_secs(10)).await;
        assert_eq!(ok.verdict, Ended::Ok, "{ok:?}");
        let pid: u32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            vitals_testkit::is_running(pid),
            "the started process was killed"
        );
        vitals_testkit::signal(pid, vitals_testkit::Signal::SIGKILL).unwrap();
    }

    #[tokio::test]
    async fn a_missing_program_is_an_error_naming_it() {
        let missing = go(&argv(&["/nonexistent/restart-it"]), Duration::from_secs(1)).await;
        assert_eq!(missing.verdict, Ended::Error);
        assert!(
            missing
                .output
                .unwrap()
                .contains("\"/nonexistent/restart-it\"")
        );
    }

    #[tokio::test]
    async fn an_http_action_reports_status_and_body() {
        use axum::routing::post;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/restart", post(|| async { "restarting" }))
            .route(
                "/broken",
                post(|| async { (axum::http::StatusCode::BAD_GATEWAY, "no backend") }),
            );
        tokio::spawn(async move { axum::serve(listener, app).await });
        let action = |path: &str| RecoveryAction::Http {
            url: format!("http://{addr}{path}"),
            method: "POST".into(),
            headers: vec![("X-Token".into(), "t".into())],
        };
        let ok = go(&action("/restart"), Duration::from_secs(5)).await;
        assert_eq!(
            (ok.verdict, ok.http_status, ok.output.as_deref()),
            (Ended::Ok, Some(200), Some("restarting"))
        );
        let bad = go(&action("/broken"), Duration::from_secs(5)).await;
        assert_eq!((bad.verdict, bad.http_status), (Ended::Failed, Some(502)));
        let refused = go(
            &RecoveryAction::Http {
                url: format!("http://127.0.0.1:{}/", vitals_testkit::free_port().unwrap()),
                method: "POST".into(),
                headers: Vec::new(),
            },
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(refused.verdict, Ended::Error);
    }
}
