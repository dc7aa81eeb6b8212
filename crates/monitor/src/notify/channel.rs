//! Delivering one outbox row to one channel: a signed webhook, a Slack-compatible incoming
//! webhook, an email over SMTP, or a command. Each attempt either is accepted (`Ok`) or
//! fails with a message for the outbox's `last_error`; retrying is the worker's business.
//!
//! What this is not: a queue, a retry loop or a policy. It is told what to send and sends
//! it once, cut at the channel's timeout.

use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use vitals_probes::error_chain;

use super::alert::Alert;
use super::group::{GroupAlert, GroupStatus};
use crate::config::{Channel, ChannelKind, SmtpTls};
use crate::store::OutboxRow;

/// The header carrying the receiver's deduplication key (`<alert key>@<channel>`).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Unix seconds when the attempt was signed.
pub const TIMESTAMP_HEADER: &str = "X-Vitals-Timestamp";
/// `v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub const SIGNATURE_HEADER: &str = "X-Vitals-Signature";

/// A channel ready to deliver: the configuration and the clients it reuses.
#[derive(Debug, Clone)]
pub struct Sender {
    pub channel: Channel,
    http: reqwest::Client,
}

impl Sender {
    pub fn new(channel: Channel, http: reqwest::Client) -> Sender {
        Sender { channel, http }
    }

    /// Delivers `row` once. `Err` says why it was not accepted.
    pub async fn deliver(&self, row: &OutboxRow) -> Result<(), String> {
        let timeout = self.channel.timeout;
        match tokio::time::timeout(timeout, self.attempt(row)).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "no answer within {} (the channel's timeout)",
                humantime::format_duration(timeout)
            )),
        }
    }

    async fn attempt(&self, row: &OutboxRow) -> Result<(), String> {
        match &self.channel.kind {
            ChannelKind::Webhook {
                url,
                secret,
                headers,
            } => {
                let mut request = self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(IDEMPOTENCY_HEADER, &row.key);
                for (name, value) in headers {
                    request = request.header(name, value);
                }
                if let Some(secret) = secret {
                    let timestamp = unix_seconds(SystemTime::now());
                    request = request
                        .header(TIMESTAMP_HEADER, timestamp.to_string())
                        .header(SIGNATURE_HEADER, sign(secret, timestamp, &row.payload));
                }
                post(request.body(row.payload.clone())).await
            }
            ChannelKind::Slack { url } => {
                let body = match parse(row)? {
                    Payload::Group(group) => slack_group_body(&group),
                    Payload::One(alert) => slack_body(&alert),
                };
                let request = self
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header(IDEMPOTENCY_HEADER, &row.key)
                    .body(body.to_string());
                post(request).await
            }
            ChannelKind::Email {
                smtp,
                tls,
                username,
                password,
                from,
                to,
            } => {
                let (summary, text) = match parse(row)? {
                    Payload::Group(group) => (group.summary.clone(), group.text()),
                    Payload::One(alert) => (alert.summary(), alert.text()),
                };
                let mail = Mail {
                    summary,
                    text,
                    key: &row.key,
                };
                email(mail, smtp, *tls, username, password, from, to).await
            }
            ChannelKind::Command { command } => run(command, row).await,
        }
    }
}

/// The signature of a webhook body: `v1=` and the hex HMAC-SHA256 of `"<timestamp>.<body>"`
/// under the channel's secret. Receivers recompute it and compare, and refuse timestamps
/// far from their clock (replays).
pub fn sign(secret: &str, timestamp: u64, body: &str) -> String {
    // HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What an outbox row holds: a group's notification or one alert.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Payload {
    Group(GroupAlert),
    One(Alert),
}

fn parse(row: &OutboxRow) -> Result<Payload, String> {
    serde_json::from_str(&row.payload)
        .map_err(|e| format!("the outbox row {} holds no alert JSON: {e}", row.key))
}

async fn post(request: reqwest::RequestBuilder) -> Result<(), String> {
    // reqwest's Display hides the cause ("error sending request"); the chain tells.
    let response = request.send().await.map_err(|e| error_chain(&e))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(format!("HTTP {status}: {body}"))
}

/// `{"text": …}`: what every Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat,
/// Teams' Slack endpoint) accepts.
pub fn slack_body(alert: &Alert) -> serde_json::Value {
    let icon = match alert.kind {
        super::AlertKind::Recovered => ":large_green_circle:",
        super::AlertKind::Degraded | super::AlertKind::Flapping => ":large_yellow_circle:",
        _ => ":red_circle:",
    };
    let mut text = format!("{icon} *{}*", alert.summary());
    if !alert.reason.is_empty() {
        text.push_str(&format!("\n{}", alert.reason));
    }
    serde_json::json!({ "text": text })
}

/// A group's `{"text": …}`: its summary, then the dashboard link.
pub fn slack_group_body(group: &GroupAlert) -> serde_json::Value {
    let icon = match group.status {
        GroupStatus::Resolved => ":large_green_circle:",
        GroupStatus::Firing | GroupStatus::Reminder => ":red_circle:",
    };
    let mut text = format!("{icon} *{}*", group.summary);
    if group.status == GroupStatus::Reminder {
        text.push_str(" (reminder)");
    }
    text.push_str(&format!("\n{}", group.dashboard));
    serde_json::json!({ "text": text })
}

/// A mail's subject line, body and the row's key (its `Message-ID`).
struct Mail<'a> {
    summary: String,
    text: String,
    key: &'a str,
}
async fn email(
    mail: Mail<'_>,
    smtp: &str,
    tls: SmtpTls,
    username: &Option<String>,
    password: &Option<String>,
    from: &str,
    to: &[String],
) -> Result<(), String> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| format!("bad address {text:?}: {e}"))
    };
    let mut message = Message::builder()
        .from(mailbox(from)?)
        .subject(format!("[vitals] {}", mail.summary))
        // Receivers that deduplicate do it by Message-ID: the same row, the same id.
        .message_id(Some(format!(
            "<{}@vitals>",
            mail.key.replace(['@', ' ', '/'], ".")
        )))
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        message = message.to(mailbox(address)?);
    }
    let message = message
        .body(mail.text)
        .map_err(|e| format!("could not build the email: {e}"))?;
    let (host, port) = smtp
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| format!("smtp {smtp:?} is not host:port"))?;
    let mut builder = match tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| format!("STARTTLS to {host}: {e}"))?,
    }
    .port(port)
    .timeout(Some(Duration::from_secs(30)));
    if let (Some(user), Some(pass)) = (username, password) {
        builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
    }
    builder
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {smtp}: {e}"))
}

/// Runs the command (no shell) with the alert in `VITALS_ALERT_*` and its JSON on stdin;
/// exit status 0 accepts it. Killed when the attempt is cut at the timeout.
async fn run(command: &[String], row: &OutboxRow) -> Result<(), String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "the command is empty".to_owned())?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("VITALS_ALERT_KEY", &row.key);
    match parse(row)? {
        Payload::One(alert) => one_env(&mut cmd, &alert),
        Payload::Group(group) => group_env(&mut cmd, &group),
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not start {program:?}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A command that ignores stdin may close it early: that is its right.
        let _ = stdin.write_all(row.payload.as_bytes()).await;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("waiting for {program:?}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: String = stderr.trim().chars().take(200).collect();
    Err(format!(
        "{program:?} exited with {}: {stderr}",
        output.status
    ))
}

/// A group's environment: `VITALS_ALERT_KIND` is the status (`firing`, `resolved`,
/// `reminder`); the members' ids are in `_FIRING` and `_RESOLVED`, comma-separated.
fn group_env(cmd: &mut tokio::process::Command, group: &GroupAlert) {
    let ids = |alerts: &[Alert]| {
        alerts
            .iter()
            .map(|a| a.target.as_str())
            .collect::<Vec<_>>()
            .join(",")
    };
    cmd.env("VITALS_ALERT_KIND", group.status.as_str())
        .env("VITALS_ALERT_GROUP_KEY", &group.group_key)
        .env("VITALS_ALERT_SEQUENCE", group.sequence.to_string())
        .env("VITALS_ALERT_FIRING", ids(&group.firing))
        .env("VITALS_ALERT_RESOLVED", ids(&group.resolved))
        .env("VITALS_ALERT_AT", super::alert::rfc3339::format(group.at))
        .env("VITALS_ALERT_DASHBOARD", &group.dashboard)
        .env("VITALS_ALERT_SUMMARY", &group.summary);
}

/// One alert's environment.
fn one_env(cmd: &mut tokio::process::Command, alert: &Alert) {
    cmd.env("VITALS_ALERT_KIND", alert.kind.as_str())
        .env("VITALS_ALERT_TARGET", &alert.target)
        .env("VITALS_ALERT_NAME", &alert.name)
        .env("VITALS_ALERT_GROUP", alert.group.as_deref().unwrap_or(""))
        .env("VITALS_ALERT_FROM", alert.from.as_deref().unwrap_or(""))
        .env("VITALS_ALERT_TO", alert.to.as_deref().unwrap_or(""))
        .env("VITALS_ALERT_REASON", &alert.reason)
        .env("VITALS_ALERT_AT", super::alert::rfc3339::format(alert.at))
        .env("VITALS_ALERT_ROOT", alert.root.as_deref().unwrap_or(""))
        .env("VITALS_ALERT_DEPENDENTS", alert.dependents.join(","))
        .env("VITALS_ALERT_SUMMARY", alert.summary());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_holds_a_group_notification_or_one_alert_and_each_is_worded_for_people() {
        use std::collections::BTreeMap;
        use std::time::{Duration, UNIX_EPOCH};

        let at = UNIX_EPOCH + Duration::from_millis(1_764_064_800_123);
        let member = |target: &str| Alert {
            key: format!("{target}:down:1764064800123"),
            kind: super::super::AlertKind::Down,
            target: target.into(),
            name: target.into(),
            group: Some("shop".into()),
            from: Some("unhealthy".into()),
            to: Some("down".into()),
            reason: "3 consecutive failures (down_after 3)".into(),
            at,
            root: None,
            dependents: vec![],
        };
        let group = GroupAlert {
            key: "rule0/group=shop/1764064800123:1".into(),
            status: GroupStatus::Firing,
            group_key: "rule0/group=shop/1764064800123".into(),
            sequence: 1,
            labels: BTreeMap::from([("group".to_owned(), "shop".to_owned())]),
            at,
            summary: "shop: 2 targets down — api-1, api-2".into(),
            firing: vec![member("api-1"), member("api-2")],
            resolved: vec![],
            dashboard: "/alerts?group=rule0%2Fgroup%3Dshop%2F1764064800123".into(),
        };
        let row = |payload: String| OutboxRow {
            id: 1,
            key: "k@hook".into(),
            alert_key: "k".into(),
            channel: "hook".into(),
            payload,
            created: at,
            due: at,
            attempts: 0,
            last_error: None,
            delivered: None,
            cancelled: None,
        };
        assert!(matches!(parse(&row(group.to_json())), Ok(Payload::Group(g)) if g == group));
        assert!(
            matches!(parse(&row(member("db").to_json())), Ok(Payload::One(a)) if a.target == "db")
        );
        assert_eq!(
            slack_group_body(&group)["text"],
            ":red_circle: *shop: 2 targets down — api-1, api-2*\n/alerts?group=rule0%2Fgroup%3Dshop%2F1764064800123"
        );
        let text = group.text();
        assert!(
            text.contains("firing (2):\n- api-1 down (3 consecutive failures (down_after 3))\n"),
            "{text}"
        );
        assert!(text.ends_with("idempotency key: rule0/group=shop/1764064800123:1\n"));
    }

    #[test]
    fn signatures_follow_the_documented_recipe() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            sign("s3cret", 1_700_000_000, r#"{"a":1}"#),
            "v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }
}
