//! Notifications delivered to real receivers on loopback: a webhook receiver (axum) that is
//! down for a while, a Slack-compatible receiver that stays up, a command, and a real SMTP
//! server (Python's aiosmtpd). Alerts go through the real outbox in SQLite.

#![allow(clippy::unwrap_used, missing_debug_implementations)] // test helpers

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::process::Command;
use vitals_core::machine::State;
use vitals_monitor::config;
use vitals_monitor::notify::{Notifier, TransitionInfo};
use vitals_testkit::{Ready, Running, Webhook, reserve_port, until};

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

fn verify(secret: &str, headers: &HeaderMap, body: &str) {
    let timestamp = headers["x-vitals-timestamp"].to_str().unwrap();
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(headers["x-vitals-signature"].to_str().unwrap(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_each_alert_once_and_other_channels_are_not_held_up() {
    let data = tempfile::tempdir().unwrap();
    // Held, not listening: the webhook receiver is down until the test listens on it.
    let hook_port = reserve_port().unwrap();
    let hook_addr = hook_port.addr();
    let chat = Webhook::start().unwrap();
    let chat_addr = chat.addr();
    let config = notify_config(
        data.path(),
        &format!(
            r#"
[[channel]]
id = "hook"
kind = "webhook"
url = "http://{hook_addr}/hook"
secret = "s3cret"

[[channel]]
id = "chat"
kind = "slack"
url = "http://{chat_addr}/hook"

[[rule]]
group_by = ["..."]
channels = ["hook", "chat"]
"#
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    let t0 = SystemTime::now();
    for i in 0..5 {
        notifier
            .transition(&down(&format!("svc{i}"), t0 + Duration::from_millis(i)))
            .await;
    }
    // The chat channel delivers while the webhook receiver is down.
    until(
        "the chat receiver gets 5 alerts",
        Duration::from_secs(10),
        async || chat.len() == 5,
    )
    .await;
    let store = notifier.store();
    // The first webhook row is retried with backoff; the others wait behind it, untried,
    // so that they keep their order and a dead receiver is not hammered once per alert.
    until(
        "the first webhook row fails at least twice",
        Duration::from_secs(10),
        async || {
            let pending = store.outbox(100, true).unwrap();
            pending.len() == 5 && pending.iter().any(|r| r.attempts >= 2)
        },
    )
    .await;
    let pending = store.outbox(100, true).unwrap();
    assert!(pending.iter().all(|r| r.channel == "hook"));
    assert_eq!(
        pending.iter().filter(|r| r.attempts > 0).count(),
        1,
        "only the first row is tried while the channel fails"
    );
    let pending: Vec<_> = pending.into_iter().filter(|r| r.attempts > 0).collect();
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("refused"),
        "{:?}",
        pending[0].last_error
    );

    // The receiver comes back on its port: each alert arrives once, in order.
    let hook = Webhook::on(hook_port.listen().unwrap()).unwrap();
    until(
        "the webhook gets 5 alerts",
        Duration::from_secs(10),
        async || hook.len() >= 5,
    )
    .await;
    // Longer than retry_max: a duplicate would have arrived by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = hook.requests();
    assert_eq!(got.len(), 5, "each alert exactly once");
    let keys: Vec<String> = got
        .iter()
        .map(|r| r.headers["idempotency-key"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.iter().collect::<HashSet<_>>().len(), 5);
    for (i, (request, key)) in got.iter().zip(&keys).enumerate() {
        let body = &request.text();
        verify("s3cret", &request.headers, body);
        let alert: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(alert["target"], format!("svc{i}"), "delivered in order");
        assert_eq!(alert["kind"], "down");
        assert_eq!(*key, format!("{}@hook", alert["key"].as_str().unwrap()));
    }
    assert!(store.outbox(100, true).unwrap().is_empty());

    // Slack body: only "text", naming the target and what happened.
    let body = &chat.requests()[0].text();
    let slack: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(slack.as_object().unwrap().len(), 1, "{slack}");
    let text = slack["text"].as_str().unwrap();
    assert!(text.contains("svc0 is down"), "{text}");
    assert!(text.contains("3 consecutive failures"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_alerts_survive_a_restart_of_the_notifier_and_are_delivered_once() {
    let data = tempfile::tempdir().unwrap();
    let hook_port = reserve_port().unwrap();
    let hook_addr = hook_port.addr();
    let config = notify_config(
        data.path(),
        &format!(
            "[[channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://{hook_addr}/hook\"\n\n[[rule]]\ngroup_by = [\"...\"]\nchannels = [\"hook\"]\n"
        ),
    );
    let first = Notifier::start(&config).unwrap();
    let at = SystemTime::now();
    first.transition(&down("db", at)).await;
    // The same transition handed over twice (a replay) creates nothing new.
    first.transition(&down("db", at)).await;
    assert_eq!(first.store().outbox(10, true).unwrap().len(), 1);
    // Stopped as `vitals serve` stops it: the failing attempt in hand is recorded first.
    first.shutdown().await;
    drop(first);

    let received = Webhook::on(hook_port.listen().unwrap()).unwrap();
    let second = Notifier::start(&config).unwrap();
    until(
        "the alert left pending is delivered",
        Duration::from_secs(10),
        async || received.len() == 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(received.len(), 1);
    assert!(second.store().outbox(10, true).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_gets_the_alert_in_its_environment_and_on_stdin_and_is_killed_at_its_timeout() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let script = format!(
        "cat > {dir}/$VITALS_ALERT_TARGET.json && env | grep ^VITALS_ALERT_ | sort > {dir}/$VITALS_ALERT_TARGET.env",
        dir = out.path().display()
    );
    let config = notify_config(
        data.path(),
        &format!(
            r#"
[[channel]]
id = "run"
kind = "command"
command = ["/bin/sh", "-c", {script:?}]

[[channel]]
id = "slow"
kind = "command"
command = ["sleep", "30"]
timeout = "200ms"

[[rule]]
group_by = ["..."]
channels = ["run", "slow"]
"#
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    notifier.transition(&down("db", SystemTime::now())).await;
    let env_file = out.path().join("db.env");
    until("the command ran", Duration::from_secs(10), async || {
        env_file.exists()
    })
    .await;
    until(
        "the command finished",
        Duration::from_secs(10),
        async || {
            notifier
                .store()
                .outbox(10, false)
                .unwrap()
                .iter()
                .any(|r| r.channel == "run" && r.delivered.is_some())
        },
    )
    .await;
    let env = std::fs::read_to_string(&env_file).unwrap();
    assert!(env.contains("VITALS_ALERT_KIND=down\n"), "{env}");
    assert!(env.contains("VITALS_ALERT_TARGET=db\n"), "{env}");
    assert!(env.contains("VITALS_ALERT_TO=down\n"), "{env}");
    assert!(env.contains("VITALS_ALERT_KEY=db:down:"), "{env}");
    let stdin: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("db.json")).unwrap())
            .unwrap();
    assert_eq!(stdin["target"], "db");

    until(
        "the slow command is cut at its timeout",
        Duration::from_secs(10),
        async || {
            notifier
                .store()
                .outbox(10, true)
                .unwrap()
                .iter()
                .any(|r| r.channel == "slow" && r.attempts >= 1)
        },
    )
    .await;
    let slow = notifier.store().outbox(10, true).unwrap();
    let error = slow[0].last_error.clone().unwrap();
    assert!(error.contains("no answer within 200ms"), "{error}");
}

/// `/usr/bin/python3` with aiosmtpd (Debian's python3-aiosmtpd), or `None`.
fn aiosmtpd() -> Option<&'static str> {
    for python in ["/usr/bin/python3", "python3"] {
        let ok = std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(python);
        }
    }
    None
}

/// An SMTP server on port `argv[1]` that writes each message it accepts to a file in the
/// directory `argv[2]`, and runs until it is killed.
const SMTP_SERVER: &str = r#"
import sys, time, pathlib, threading
from aiosmtpd.controller import Controller
out = pathlib.Path(sys.argv[2])
class Save:
    async def handle_DATA(self, server, session, envelope):
        name = out / f"{time.time_ns()}.eml"
        name.write_bytes(envelope.original_content or envelope.content)
        return "250 OK"
c = Controller(Save(), hostname="127.0.0.1", port=int(sys.argv[1]))
c.start()
print("ready", flush=True)
threading.Event().wait()
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_goes_through_a_real_smtp_server() {
    let Some(python) = aiosmtpd() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "aiosmtpd is missing: scripts/test installs python3-aiosmtpd"
        );
        eprintln!(
            "skipped: install python3-aiosmtpd (apt-get install -y python3-aiosmtpd) to run it"
        );
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let mail = tempfile::tempdir().unwrap();
    let (server, port) = Running::start_on_free_port(
        |port| {
            let mut command = Command::new(python);
            command
                .args(["-c", SMTP_SERVER, &port.to_string()])
                .arg(mail.path());
            command
        },
        |_| Ready::Line("ready"),
    )
    .await
    .unwrap();
    assert_eq!(server.banner(), "ready");

    let config = notify_config(
        data.path(),
        &format!(
            r#"
[[target]]
id = "db"
name = "Orders database"
kind = "tcp"
address = "127.0.0.1:9"

[[channel]]
id = "mail"
kind = "email"
smtp = "127.0.0.1:{port}"
tls = "none"
from = "vitals <vitals@example.com>"
to = ["ops@example.com", "dba@example.com"]

[[rule]]
group_by = ["..."]
channels = ["mail"]
"#
        ),
    );
    let notifier = Notifier::start(&config).unwrap();
    notifier.transition(&down("db", SystemTime::now())).await;
    let files = || std::fs::read_dir(mail.path()).unwrap().count();
    until(
        "the SMTP server got the mail",
        Duration::from_secs(10),
        async || files() == 1,
    )
    .await;
    let file = std::fs::read_dir(mail.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let message = std::fs::read_to_string(file.path()).unwrap();
    assert!(
        message.contains("Subject: [vitals] Orders database (db) is down"),
        "{message}"
    );
    assert!(
        message.contains("To: ops@example.com, dba@example.com"),
        "{message}"
    );
    assert!(message.contains("Message-ID: <db:down:"), "{message}");
    assert!(
        message.contains("reason: 3 consecutive failures"),
        "{message}"
    );
    drop(server); // killed and reaped
}
