//! Automatic recovery end to end with `vitals serve` on loopback: a real HTTP server (Python's
//! http.server) that the recovery command starts and the test kills with SIGKILL, again and
//! again. Within its budget it is restarted; then it is left alone, the target shows "needs a
//! person", and an escalation alert reaches a real webhook receiver. A server that stays up
//! long enough gets its budget back. Every action, its output and result is read through the
//! API.
//!
//! Real processes, real signals, real time with short durations; every wait is a bounded poll.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use vitals_testkit::{Signal, Webhook, free_port, holds, is_running, signal, until};

const TOKEN: &str = "s3cret-token-0123456789";

struct Monitor {
    base: String,
    client: reqwest::Client,
}

/// The server's pids, one line per start, appended by the recovery command.
struct Service {
    port: u16,
    pids: PathBuf,
}

impl Service {
    fn new(dir: &Path) -> Service {
        Service {
            port: free_port().unwrap(),
            pids: dir.join("pids"),
        }
    }

    /// The recovery command: start the server in the background and note its pid. Its output
    /// goes to /dev/null so the command ends at once; "started" is what the log records.
    fn command(&self) -> String {
        let script = format!(
            "python3 -m http.server {} --bind 127.0.0.1 >/dev/null 2>&1 & echo $! >> {}; echo started",
            self.port,
            self.pids.display()
        );
        format!("[\"sh\", \"-c\", {script:?}]")
    }

    fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(&self.pids)
            .unwrap_or_default()
            .lines()
            .map(|line| line.trim().parse().unwrap())
            .collect()
    }

    fn kill_latest(&self) {
        let pid = *self.pids().last().expect("a started server");
        signal(pid, Signal::SIGKILL).unwrap();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for pid in self.pids() {
            if is_running(pid) {
                let _ = signal(pid, Signal::SIGKILL);
            }
        }
    }
}

/// Starts `vitals serve` with one HTTP target `web` on `service`, checked every 100 ms, with
/// `recover` (extra keys of `[target.recover]`), and a webhook channel for escalations to
/// `hook`.
async fn start(data: &Path, service: &Service, recover: &str, hook: &str) -> Monitor {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = {data:?}
api_token = "{TOKEN}"

[notify]
group_wait = "0s"
retry_min = "50ms"
retry_max = "200ms"

[[channel]]
id = "hook"
kind = "webhook"
url = "{hook}"

[[rule]]
group_by = ["..."]
on = ["escalation"]
channels = ["hook"]

[[target]]
id = "web"
kind = "http"
url = "http://127.0.0.1:{port}/"
interval = "200ms"
timeout = "100ms"
jitter = "0s"
interval_changing = "100ms"
interval_down = "200ms"

[target.recover]
command = {command}
timeout = "5s"
{recover}
"#,
        data = data.display().to_string(),
        port = service.port,
        command = service.command(),
    );
    serve_text(&text).await
}

/// Starts `vitals serve` on the configuration `text`.
async fn serve_text(text: &str) -> Monitor {
    Monitor {
        base: crate::support::serve(text).await,
        client: reqwest::Client::new(),
    }
}

impl Monitor {
    async fn get(&self, path: &str) -> Value {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    async fn actions(&self) -> Value {
        self.get("/api/v1/targets/web/actions").await
    }

    /// Polls `path` until `done` holds of its JSON (30 s at most).
    async fn poll(&self, path: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        until(what, Duration::from_secs(30), async || {
            holds(self.get(path).await, &done)
        })
        .await
    }

    /// Polls the actions endpoint until `done` holds.
    async fn until(&self, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        self.poll("/api/v1/targets/web/actions", what, done).await
    }

    async fn until_state(&self, state: &str) {
        let what = format!("web to become {state}");
        self.poll("/api/v1/targets/web", &what, |t| t["state"] == state)
            .await;
    }
}

fn attempts(actions: &Value) -> Vec<&Value> {
    actions["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| row["kind"] == "attempt")
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_repeatedly_is_restarted_within_its_budget_then_left_to_a_person() {
    let data = tempfile::tempdir().unwrap();
    let service = Service::new(data.path());
    let alerts = Webhook::start().unwrap();
    let hook = alerts.url();
    let monitor = start(
        data.path(),
        &service,
        "max_attempts = 3\nwindow = \"10m\"\nbackoff = \"3s\"\nbackoff_max = \"3s\"\nreset_after = \"10m\"",
        &hook,
    )
    .await;

    // Nothing listens at first: the monitor's first attempt starts the server. Each kill
    // after it costs one more attempt, until the budget is spent. The backoff (3 s) gives a
    // restarted server time to come up before the next attempt could run.
    for attempt in 1..=3 {
        monitor
            .until(&format!("attempt {attempt}"), |a| {
                attempts(a).len() == attempt
            })
            .await;
        monitor.until_state("healthy").await;
        assert_eq!(service.pids().len(), attempt);
        service.kill_latest();
    }
    let spent = monitor
        .until("the escalation", |a| a["needs_person"] == true)
        .await;
    // Unhealthy or down by now, depending on how the backoff fell.
    let verdict = spent["verdict"].as_str().unwrap();
    assert!(verdict.ends_with(" — needs a person"), "{spent:#}");
    let budget = &spent["budget"];
    assert_eq!(budget["exhausted"], true);
    assert_eq!(budget["attempts"], 3);
    assert_eq!(budget["max_attempts"], 3);
    assert!(budget["exhausted_at"].is_string());
    assert!(budget["next_attempt"].is_null());

    // Every action is in the log with its output and result, newest first.
    let rows = spent["actions"].as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["escalation", "attempt", "attempt", "attempt"]);
    for (row, attempt) in rows[1..].iter().zip([3, 2, 1]) {
        assert_eq!(row["attempt"], attempt, "{row:#}");
        assert_eq!(row["result"], "ok");
        assert_eq!(row["exit_code"], 0);
        assert_eq!(row["output"], "started\n");
        assert!(row["action"].as_str().unwrap().starts_with("sh -c "));
        assert!(matches!(
            row["trigger"].as_str(),
            Some("unhealthy" | "down")
        ));
    }
    assert_eq!(rows[0]["result"], "escalated");
    assert!(
        rows[0]["output"].as_str().unwrap().contains("3 attempts"),
        "{:#}",
        rows[0]
    );

    // Left alone: down, and no fourth server, however long it stays down.
    monitor.until_state("down").await;
    let down = monitor.actions().await;
    assert_eq!(down["verdict"], "down — needs a person");
    monitor
        .poll("/api/v1/targets/web", "the target to say so", |t| {
            t["needs_person"] == true
        })
        .await;
    // That a spent budget attempts nothing more, however long the target stays down, is the
    // core budget's rule, tested on simulated time (`vitals_core::recovery`).
    assert_eq!(service.pids().len(), 3);
    assert_eq!(attempts(&monitor.actions().await).len(), 3);

    // One escalation alert reached the webhook.
    until("an escalation alert", Duration::from_secs(10), async || {
        !alerts.is_empty()
    })
    .await;
    let got = alerts.json().unwrap();
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0]["kind"], "escalation");
    assert_eq!(got[0]["target"], "web");
    assert!(
        got[0]["reason"]
            .as_str()
            .unwrap()
            .contains("needs a person")
    );

    // A person resets the budget (with the API token): the server is started again at once.
    let url = format!("{}/api/v1/targets/web/actions/reset", monitor.base);
    let refused = monitor.client.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let reset = monitor
        .client
        .post(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), 200);
    monitor
        .until("the attempt after the reset", |a| attempts(a).len() == 4)
        .await;
    monitor.until_state("healthy").await;
    assert_eq!(service.pids().len(), 4);
    let after = monitor.actions().await;
    assert_eq!(after["needs_person"], false);
    assert_eq!(after["budget"]["attempts"], 1);
    let rows = after["actions"].as_array().unwrap();
    assert_eq!(rows[1]["kind"], "reset");
    assert_eq!(rows[1]["action"], "reset by api");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stays_up_gets_its_budget_back_after_the_healthy_period() {
    let data = tempfile::tempdir().unwrap();
    let service = Service::new(data.path());
    let alerts = Webhook::start().unwrap();
    let hook = alerts.url();
    let monitor = start(
        data.path(),
        &service,
        "max_attempts = 2\nwindow = \"10m\"\nbackoff = \"3s\"\nreset_after = \"1500ms\"",
        &hook,
    )
    .await;
    monitor
        .until("the first start", |a| attempts(a).len() == 1)
        .await;
    monitor.until_state("healthy").await;
    let reset = monitor
        .until("the reset after the healthy period", |a| {
            a["actions"][0]["kind"] == "reset"
        })
        .await;
    assert_eq!(reset["actions"][0]["action"], "healthy for 1s 500ms");
    assert_eq!(reset["budget"]["attempts"], 0);

    // Two more deaths, two more restarts: with the budget reset, neither is the third
    // attempt of a budget of two.
    for round in 0..2 {
        service.kill_latest();
        monitor
            .until("a restart", |a| attempts(a).len() == 2 + round)
            .await;
        monitor.until_state("healthy").await;
        let log = monitor.actions().await;
        assert_eq!(attempts(&log)[0]["attempt"], 1, "{log:#}");
        monitor
            .until("the reset", |a| a["actions"][0]["kind"] == "reset")
            .await;
    }
    assert_eq!(service.pids().len(), 3);
    assert_eq!(monitor.actions().await["needs_person"], false);
    assert!(alerts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actions_endpoint_answers_for_targets_without_recovery_and_refuses_unknown_ones() {
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\napi_token = \"{TOKEN}\"\n\n[[target]]\nid = \"plain\"\nkind = \"tcp\"\naddress = \"127.0.0.1:{}\"\n",
        data.path().display().to_string(),
        free_port().unwrap()
    );
    let monitor = serve_text(&text).await;
    let (base, client) = (&monitor.base, &monitor.client);
    let plain: Value = client
        .get(format!("{base}/api/v1/targets/plain/actions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(plain["budget"], Value::Null);
    assert_eq!(plain["needs_person"], false);
    assert_eq!(plain["actions"], serde_json::json!([]));
    let unknown = client
        .get(format!("{base}/api/v1/targets/nope/actions"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let no_budget = client
        .post(format!("{base}/api/v1/targets/plain/actions/reset"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(no_budget.status(), 409);
    let body: Value = no_budget.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("[target.recover]"));
}
