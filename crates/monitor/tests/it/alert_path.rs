//! Issue 11 on the alert path, with real receivers on loopback and the real outbox: a row
//! the receiver refuses for good, or that runs out of attempts, is dead-lettered and the rows
//! behind it go out (item 11); names with control characters still reach a webhook and a
//! command (item 11); no channel URL's secret lands in `last_error` (item 10); the outbox API
//! needs the token and `/metrics` shows the alert path, in a form `promtool` accepts.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::path::Path;
use std::time::{Duration, SystemTime};

use axum::http::StatusCode;
use serde_json::Value;
use vitals_core::machine::State;
use vitals_monitor::config;
use vitals_monitor::notify::{Notifier, TransitionInfo};
use vitals_testkit::{Webhook, reserve_port, until};

const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "s3cret-token-0123456789";

fn notify_config(data: &Path, rest: &str) -> config::Config {
    let text = format!(
        "[server]\ndata_dir = {:?}\n\n[notify]\ngroup_wait = \"0s\"\nretry_min = \"50ms\"\nretry_max = \"200ms\"\n\n{rest}",
        data.display().to_string()
    );
    config::parse(&text, "test.toml").unwrap_or_else(|errors| panic!("{errors}"))
}

fn down(target: &str, at: SystemTime) -> TransitionInfo {
    TransitionInfo {
        target: target.into(),
        at,
        from: State::Unhealthy,
        to: State::Down,
        reason: "3 consecutive failures (down_after 3)".into(),
        flapping: false,
        blocked_by: None,
        dependents: vec![],
    }
}

/// Issue 11, item 11: a receiver that answered 409 to a resent key held its channel for
/// ever (rows go in order, and the first was retried without end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_refused_for_good_is_dead_lettered_and_the_rows_behind_it_are_delivered() {
    let data = tempfile::tempdir().unwrap();
    let hook = Webhook::start().unwrap();
    hook.answer_next([StatusCode::CONFLICT]);
    let config = notify_config(
        data.path(),
        &format!(
            "[[channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n[[rule]]\ngroup_by = [\"...\"]\nchannels = [\"hook\"]\n",
            hook.url()
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    let t0 = SystemTime::now();
    for i in 0..3 {
        notifier
            .transition(&down(&format!("svc{i}"), t0 + Duration::from_millis(i)))
            .await;
    }
    let store = notifier.store();
    until("nothing is pending", WAIT, async || {
        store.outbox(10, true).unwrap().is_empty()
    })
    .await;
    // Three requests: the refused one was not tried again.
    assert_eq!(hook.len(), 3);
    let rows = store.outbox(10, false).unwrap();
    let dead: Vec<_> = rows.iter().filter(|r| r.dead.is_some()).collect();
    assert_eq!(dead.len(), 1, "{rows:?}");
    assert_eq!(dead[0].attempts, 1);
    let error = dead[0].last_error.as_deref().unwrap();
    assert!(
        error.starts_with("dead letter (refused for good): HTTP 409"),
        "{error}"
    );
    assert_eq!(rows.iter().filter(|r| r.delivered.is_some()).count(), 2);
    let deliveries = notifier.deliveries();
    let count = |result: &str| {
        deliveries
            .iter()
            .filter(|(c, r, _)| c == "hook" && r.as_str() == result)
            .map(|(_, _, n)| *n)
            .sum::<u64>()
    };
    assert_eq!((count("delivered"), count("dead_letter")), (2, 1));
}

/// Issue 11, item 11: a receiver that keeps failing gets `max_attempts` tries per row, then
/// the row is dead-lettered; 503 is worth retrying, so it is not dead at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_out_of_attempts_is_dead_lettered() {
    let data = tempfile::tempdir().unwrap();
    let hook = Webhook::start().unwrap();
    hook.answer(StatusCode::SERVICE_UNAVAILABLE);
    let config = notify_config(
        data.path(),
        &format!(
            "[[channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\nmax_attempts = 3\n\n[[rule]]\ngroup_by = [\"...\"]\nchannels = [\"hook\"]\n",
            hook.url()
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    notifier.transition(&down("svc", SystemTime::now())).await;
    let store = notifier.store();
    until("the row is dead-lettered", WAIT, async || {
        store
            .outbox(10, false)
            .unwrap()
            .iter()
            .any(|r| r.dead.is_some())
    })
    .await;
    let row = store.outbox(10, false).unwrap().remove(0);
    assert_eq!(row.attempts, 3);
    let error = row.last_error.unwrap();
    assert!(
        error.starts_with("dead letter (3 attempts failed): HTTP 503"),
        "{error}"
    );
    assert_eq!(hook.len(), 3);
}

/// Issue 11, item 11: a name with a NUL or a line break made every attempt fail (an invalid
/// header for a webhook, "nul byte found" for a command's environment), for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_control_characters_reach_a_webhook_and_a_command() {
    let data = tempfile::tempdir().unwrap();
    let hook = Webhook::start().unwrap();
    let seen = data.path().join("seen");
    let config = notify_config(
        data.path(),
        &format!(
            r#"
[[channel]]
id = "hook"
kind = "webhook"
url = "{}"

[[channel]]
id = "cmd"
kind = "command"
command = ["sh", "-c", "printf '%s' \"$VITALS_ALERT_TARGET\" > {}"]

[[rule]]
group_by = ["..."]
channels = ["hook", "cmd"]
"#,
            hook.url(),
            seen.display()
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    let name = "orders/data\u{0}base\r\nX-Injected: 1";
    notifier.transition(&down(name, SystemTime::now())).await;
    let store = notifier.store();
    until("both rows are delivered", WAIT, async || {
        let rows = store.outbox(10, false).unwrap();
        rows.len() == 2 && rows.iter().all(|r| r.delivered.is_some())
    })
    .await;
    let request = &hook.requests()[0];
    assert!(request.header("x-injected").is_none());
    let key = request.header("idempotency-key").unwrap();
    assert!(!key.chars().any(char::is_control), "{key}");
    assert_eq!(request.json().unwrap()["target"], name);
    let got = std::fs::read_to_string(&seen).unwrap();
    assert_eq!(got, r"orders/data\u{0}base\u{d}\u{a}X-Injected: 1");
}

/// Issue 11, item 7: the command channel killed only its command at the timeout; what the
/// command started lived on, one orphan per attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_cut_at_its_timeout_leaves_no_process_of_its_group() {
    let data = tempfile::tempdir().unwrap();
    let pid_file = data.path().join("pgid");
    let config = notify_config(
        data.path(),
        &format!(
            "[[channel]]\nid = \"cmd\"\nkind = \"command\"\ntimeout = \"300ms\"\nmax_attempts = 1\ncommand = [\"sh\", \"-c\", \"echo $$ > {}; sleep 3600 & sleep 3600\"]\n\n[[rule]]\ngroup_by = [\"...\"]\nchannels = [\"cmd\"]\n",
            pid_file.display()
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    notifier.transition(&down("svc", SystemTime::now())).await;
    let store = notifier.store();
    until("the attempt is cut at its timeout", WAIT, async || {
        store
            .outbox(10, false)
            .unwrap()
            .iter()
            .any(|r| r.dead.is_some())
    })
    .await;
    let pgid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    until(
        format!("no live process in group {pgid}"),
        WAIT,
        async || {
            let alive = vitals_testkit::group_alive(pgid);
            if alive.is_empty() { Ok(()) } else { Err(alive) }
        },
    )
    .await;
}

/// Issue 11, item 10: reqwest's errors carry the URL, so a Slack webhook's secret path and a
/// webhook's password ended up in `last_error`, which `/api/v1/outbox` shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_channel_secret_lands_in_the_outbox() {
    let data = tempfile::tempdir().unwrap();
    // Held, not listening: every attempt fails with a connection error.
    let down_port = reserve_port().unwrap();
    let addr = down_port.addr();
    let config = notify_config(
        data.path(),
        &format!(
            r#"
[[channel]]
id = "chat"
kind = "slack"
url = "http://{addr}/services/T0001/B0002/SLACKSECRET"

[[channel]]
id = "hook"
kind = "webhook"
url = "http://alice:pa55w0rd@{addr}/hook?token=QUERYSECRET"

[[rule]]
group_by = ["..."]
channels = ["chat", "hook"]
"#
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    notifier.transition(&down("svc", SystemTime::now())).await;
    let store = notifier.store();
    until("both rows failed once", WAIT, async || {
        let rows = store.outbox(10, true).unwrap();
        rows.len() == 2 && rows.iter().all(|r| r.last_error.is_some())
    })
    .await;
    for row in store.outbox(10, true).unwrap() {
        let error = row.last_error.unwrap();
        for secret in ["SLACKSECRET", "T0001", "pa55w0rd", "QUERYSECRET"] {
            assert!(!error.contains(secret), "{}: {error}", row.channel);
        }
        assert!(!error.is_empty());
    }
}

/// Issue 11, items 10 and 11 and the alert path's metrics, through a real `vitals serve`: a
/// heartbeat fails, its alert is refused for good and dead-lettered; the outbox API needs the
/// token; `/metrics` shows depth, deliveries, dead letters and the store, and promtool takes
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_needs_the_token_and_metrics_show_the_alert_path() {
    let data = tempfile::tempdir().unwrap();
    let hook = Webhook::start().unwrap();
    hook.answer(StatusCode::CONFLICT);
    let text = format!(
        r#"[server]
listen = "127.0.0.1:0"
data_dir = {data:?}
api_token = "{TOKEN}"

[notify]
group_wait = "0s"

[[target]]
id = "job"
kind = "heartbeat"
period = "1h"
public_ping_id = true
fall = 1
rise = 1
down_after = 2
flap = false

[[channel]]
id = "hook"
kind = "webhook"
url = "{url}"

[[rule]]
group_by = ["..."]
targets = ["job"]
on = ["unhealthy"]
channels = ["hook"]
"#,
        data = data.path().display().to_string(),
        url = hook.url()
    );
    let base = crate::support::serve(&text).await;
    let client = reqwest::Client::new();
    for path in ["job", "job/fail"] {
        let status = client
            .get(format!("{base}/ping/{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let outbox = format!("{base}/api/v1/outbox");
    until("the alert is dead-lettered", WAIT, async || {
        let rows: Value = client
            .get(&outbox)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        rows["outbox"][0]["dead"].is_string()
    })
    .await;
    let denied = client.get(&outbox).send().await.unwrap();
    assert_eq!(denied.status(), 401);

    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "vitals_outbox_pending 0",
        "vitals_outbox_oldest_pending_age_seconds 0.0",
        "vitals_outbox_dead_letters 1",
        "vitals_alert_deliveries_total{channel=\"hook\",result=\"dead_letter\"} 1",
        "vitals_recovery_escalations_total 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in:\n{metrics}"
        );
    }
    for name in [
        "vitals_store_database_bytes ",
        "vitals_store_commits_total ",
        "vitals_store_commit_seconds_total ",
    ] {
        assert!(
            metrics.lines().any(|l| l.starts_with(name)),
            "no {name} in:\n{metrics}"
        );
    }
    vitals_testkit::promtool_check(&metrics);
}
