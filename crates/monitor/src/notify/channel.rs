//! Delivering one outbox row to one channel: a signed webhook, a Slack-compatible incoming
//! webhook, an email over SMTP, or a command. Each attempt either is accepted (`Ok`) or
//! fails with a [`Failure`]: a message for the outbox's `last_error` (URLs redacted: a
//! webhook's shows its origin only), and whether trying again can help (a 4xx other than
//! 408 and 429 cannot); retrying and dead-lettering are the worker's business.
//!
//! Names from outside (a vitals service's check names become targets' names) may hold
//! control characters: they are escaped before they go into a header or the command's
//! environment, where a NUL or a newline would make every attempt fail.
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
use vitals_probes::{error_chain, redact_urls_in, spawn_in_group, url_origin, wait_with_output};

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

    /// Delivers `row` once. `Err` says why it was not accepted, with every URL redacted.
    pub async fn deliver(&self, row: &OutboxRow) -> Result<(), Failure> {
        let timeout = self.channel.timeout;
        let result = match tokio::time::timeout(timeout, self.attempt(row)).await {
            Ok(result) => result,
            Err(_) => Err(Failure::retry(format!(
                "no answer within {} (the channel's timeout)",
                humantime::format_duration(timeout)
            ))),
        };
        result.map_err(|failure| Failure {
            message: self.redact(&failure.message),
            permanent: failure.permanent,
        })
    }

    /// `message` with the channel's URL shown as its origin (a Slack or webhook URL's path is
    /// its secret) and any other URL without userinfo or query.
    fn redact(&self, message: &str) -> String {
        let message = match &self.channel.kind {
            ChannelKind::Webhook { url, .. } | ChannelKind::Slack { url } => {
                message.replace(url.as_str(), &url_origin(url))
            }
            _ => message.to_owned(),
        };
        redact_urls_in(&message)
    }

    async fn attempt(&self, row: &OutboxRow) -> Result<(), Failure> {
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
                    .header(IDEMPOTENCY_HEADER, escape_controls(&row.key));
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
                    .header(IDEMPOTENCY_HEADER, escape_controls(&row.key))
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

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// For the outbox's `last_error` and the log.
    pub message: String,
    /// Trying again cannot help: the receiver refused the alert itself (a 4xx other than
    /// 408 and 429), or the alert cannot be sent as it is. The row is dead-lettered at once.
    pub permanent: bool,
}

impl Failure {
    fn retry(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            permanent: false,
        }
    }

    fn permanent(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            permanent: true,
        }
    }
}

/// Whether an HTTP status refuses the alert for good: a 4xx, except 408 (Request Timeout)
/// and 429 (Too Many Requests), which ask to be tried again later.
pub fn is_permanent(status: u16) -> bool {
    (400..500).contains(&status) && status != 408 && status != 429
}

/// `text` with every control character (NUL, newline, DEL…) written as `\u{..}`: what goes
/// into a header value or an environment variable, where they are not allowed.
pub fn escape_controls(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// What an outbox row holds: a group's notification or one alert.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum Payload {
    Group(GroupAlert),
    One(Alert),
}

fn parse(row: &OutboxRow) -> Result<Payload, Failure> {
    serde_json::from_str(&row.payload).map_err(|e| {
        Failure::permanent(format!(
            "the outbox row {} holds no alert JSON: {e}",
            row.key
        ))
    })
}

async fn post(request: reqwest::RequestBuilder) -> Result<(), Failure> {
    // reqwest's Display hides the cause ("error sending request"); the chain tells. The
    // URL is left out: the caller names the channel, and the URL may be its secret.
    let response = request.send().await.map_err(|e| {
        let permanent = e.is_builder();
        Failure {
            message: error_chain(&e.without_url()),
            permanent,
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(200).collect();
    Err(Failure {
        message: format!("HTTP {status}: {body}"),
        permanent: is_permanent(status.as_u16()),
    })
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
) -> Result<(), Failure> {
    let mailbox = |text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| Failure::permanent(format!("bad address {text:?}: {e}")))
    };
    let mut message = Message::builder()
        .from(mailbox(from)?)
        .subject(format!("[vitals] {}", escape_controls(&mail.summary)))
        // Receivers that deduplicate do it by Message-ID: the same row, the same id.
        .message_id(Some(format!(
            "<{}@vitals>",
            escape_controls(mail.key).replace(['@', ' ', '\\', '/'], ".")
        )))
        .header(ContentType::TEXT_PLAIN);
    for address in to {
        message = message.to(mailbox(address)?);
    }
    let message = message
        .body(mail.text)
        .map_err(|e| Failure::permanent(format!("could not build the email: {e}")))?;
    let (host, port) = smtp
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
        .ok_or_else(|| Failure::permanent(format!("smtp {smtp:?} is not host:port")))?;
    let mut builder = match tls {
        SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
            .map_err(|e| Failure::retry(format!("STARTTLS to {host}: {e}")))?,
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
        .map_err(|e| Failure {
            permanent: e.is_permanent(),
            message: format!("SMTP {smtp}: {e}"),
        })
}

/// Runs the command (no shell) with the alert in `VITALS_ALERT_*` and its JSON on stdin;
/// exit status 0 accepts it. It runs in a process group of its own, killed whole when the
/// attempt is cut at the timeout (issue 11, item 7). Values from outside are escaped
/// ([`escape_controls`]; the reason keeps its newlines, only a NUL is escaped).
async fn run(command: &[String], row: &OutboxRow) -> Result<(), Failure> {
    let payload = parse(row)?;
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Failure::permanent("the command is empty"))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env("VITALS_ALERT_KEY", escape_controls(&row.key));
    match payload {
        Payload::One(alert) => one_env(&mut cmd, &alert),
        Payload::Group(group) => group_env(&mut cmd, &group),
    }
    let mut group = spawn_in_group(&mut cmd)
        .map_err(|e| Failure::retry(format!("could not start {program:?}: {e}")))?;
    if let Some(mut stdin) = group.child().stdin.take() {
        // A command that ignores stdin may close it early: that is its right.
        let _ = stdin.write_all(row.payload.as_bytes()).await;
    }
    let output = wait_with_output(group.child()).await;
    // It finished in time: what it started is its own business.
    group.disarm();
    let status = output
        .status
        .map_err(|e| Failure::retry(format!("waiting for {program:?}: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr: String = stderr.trim().chars().take(200).collect();
    Err(Failure::retry(format!(
        "{program:?} exited with {status}: {stderr}"
    )))
}

/// A group's environment: `VITALS_ALERT_KIND` is the status (`firing`, `resolved`,
/// `reminder`); the members' ids are in `_FIRING` and `_RESOLVED`, comma-separated. Values
/// from outside are escaped ([`escape_controls`]).
fn group_env(cmd: &mut tokio::process::Command, group: &GroupAlert) {
    let ids = |alerts: &[Alert]| {
        let ids: Vec<&str> = alerts.iter().map(|a| a.target.as_str()).collect();
        escape_controls(&ids.join(","))
    };
    cmd.env("VITALS_ALERT_KIND", group.status.as_str())
        .env("VITALS_ALERT_GROUP_KEY", escape_controls(&group.group_key))
        .env("VITALS_ALERT_SEQUENCE", group.sequence.to_string())
        .env("VITALS_ALERT_FIRING", ids(&group.firing))
        .env("VITALS_ALERT_RESOLVED", ids(&group.resolved))
        .env("VITALS_ALERT_AT", super::alert::rfc3339::format(group.at))
        .env("VITALS_ALERT_DASHBOARD", escape_controls(&group.dashboard))
        .env("VITALS_ALERT_SUMMARY", escape_controls(&group.summary));
}

/// One alert's environment; the reason keeps its newlines, only a NUL is escaped.
fn one_env(cmd: &mut tokio::process::Command, alert: &Alert) {
    let name = |text: &str| escape_controls(text);
    cmd.env("VITALS_ALERT_KIND", alert.kind.as_str())
        .env("VITALS_ALERT_TARGET", name(&alert.target))
        .env("VITALS_ALERT_NAME", name(&alert.name))
        .env(
            "VITALS_ALERT_GROUP",
            name(alert.group.as_deref().unwrap_or("")),
        )
        .env("VITALS_ALERT_FROM", alert.from.as_deref().unwrap_or(""))
        .env("VITALS_ALERT_TO", alert.to.as_deref().unwrap_or(""))
        .env("VITALS_ALERT_REASON", alert.reason.replace('\0', "\\u{0}"))
        .env("VITALS_ALERT_AT", super::alert::rfc3339::format(alert.at))
        .env(
            "VITALS_ALERT_ROOT",
            name(alert.root.as_deref().unwrap_or("")),
        )
        .env("VITALS_ALERT_DEPENDENTS", name(&alert.dependents.join(",")))
        .env("VITALS_ALERT_SUMMARY", name(&alert.summary()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_for_good_are_permanent() {
        for (status, permanent) in [
            (400, true),
            (401, true),
            (404, true),
            (409, true),
            (408, false),
            (429, false),
            (500, false),
            (503, false),
            (302, false),
        ] {
            assert_eq!(is_permanent(status), permanent, "{status}");
        }
    }

    #[test]
    fn control_characters_are_escaped_for_headers_and_the_environment() {
        assert_eq!(escape_controls("db"), "db");
        assert_eq!(escape_controls("a\0b\nc\u{7f}"), "a\\u{0}b\\u{a}c\\u{7f}");
        let value = escape_controls("down@hook\r\nX-Injected: 1");
        assert!(
            reqwest::header::HeaderValue::from_str(&value).is_ok(),
            "{value}"
        );
    }

    #[test]
    fn signatures_follow_the_documented_recipe() {
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac s3cret
        assert_eq!(
            sign("s3cret", 1_700_000_000, r#"{"a":1}"#),
            "v1=1698a50bc74d1ff1db85c4e0a5297c2ad9fdba245d5737cdb789e4cc6e098940"
        );
    }

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
            dead: None,
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
}
