//! `[notify]`, `[[channel]]`, `[[rule]]` and `[[maintenance]]`: what a good file becomes, and
//! every mistake refused with its file, line, column and field.

#![allow(clippy::unwrap_used)] // test helpers

use std::time::Duration;

use vitals_monitor::config::{self, ChannelKind, SmtpTls, WindowTime};
use vitals_monitor::notify::AlertKind;

const TARGETS: &str = r#"
[[target]]
id = "db"
kind = "tcp"
address = "127.0.0.1:5432"
group = "data"
"#;

fn errors(text: &str) -> String {
    config::parse(&format!("{TARGETS}{text}"), "vitals.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn a_full_notification_setup_is_read() {
    let text = format!(
        r#"{TARGETS}
[notify]
group_wait = "3s"
retry_min = "2s"
retry_max = "1m"

[[channel]]
id = "hook"
kind = "webhook"
url = "https://hooks.example.com/vitals"
secret = "s3cret"
headers = {{ "X-Team" = "ops" }}

[[channel]]
id = "mail"
kind = "email"
smtp = "mail.example.com:587"
from = "vitals@example.com"
to = ["ops@example.com"]
username = "vitals"
password = "pw"

[[rule]]
groups = ["data"]
on = ["down", "degraded", "recovered"]
channels = ["hook", "mail"]
repeat = "30m"
repeat_max = "4h"

[[maintenance]]
id = "nightly"
targets = ["db"]
schedule = "0 2 * * sun"
timezone = "Europe/Berlin"
duration = "2h"

[[maintenance]]
from = "2026-12-24T22:00:00Z"
until = "2026-12-25T06:00:00+01:00"
"#
    );
    let notify = config::parse(&text, "vitals.toml").unwrap().notify;
    assert_eq!(notify.group_wait, Duration::from_secs(3));
    assert_eq!(notify.retry_max, Duration::from_secs(60));
    assert!(matches!(
        &notify.channels[0].kind,
        ChannelKind::Webhook { secret: Some(s), headers, .. } if s == "s3cret" && headers.len() == 1
    ));
    assert!(matches!(
        &notify.channels[1].kind,
        ChannelKind::Email { tls: SmtpTls::Starttls, to, .. } if to == &["ops@example.com"]
    ));
    let rule = &notify.rules[0];
    assert_eq!(
        rule.on,
        [AlertKind::Down, AlertKind::Degraded, AlertKind::Recovered]
    );
    assert_eq!(rule.repeat, Some(Duration::from_secs(1800)));
    assert!(matches!(
        &notify.maintenance[0].when,
        WindowTime::Every { timezone, duration, .. }
            if *timezone == chrono_tz::Europe::Berlin && *duration == Duration::from_secs(7200)
    ));
    assert_eq!(notify.maintenance[1].id, "maintenance[1]");
    assert!(matches!(
        notify.maintenance[1].when,
        WindowTime::Once { .. }
    ));
}

#[test]
fn an_unknown_channel_in_a_rule_is_refused_with_its_line() {
    let text = r#"
[[channel]]
id = "ops-hook"
kind = "slack"
url = "http://127.0.0.1:9000/hook"

[[rule]]
targets = ["db"]
channels = ["ops-hok"]
"#;
    assert_eq!(
        errors(text),
        "vitals.toml:15:13: rule[0].channels: unknown channel \"ops-hok\"; did you mean \"ops-hook\"?"
    );
}

#[test]
fn unknown_targets_groups_and_kinds_in_a_rule_are_refused() {
    let text = r#"
[[channel]]
id = "hook"
kind = "webhook"
url = "http://127.0.0.1:9000/hook"

[[rule]]
targets = ["dbb"]
groups = ["web"]
on = ["downn"]
channels = ["hook"]
"#;
    let text = errors(text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "vitals.toml:14:12: rule[0].targets: unknown target \"dbb\"; did you mean \"db\"?",
            "vitals.toml:15:11: rule[0].groups: unknown group \"web\"; known: data",
            "vitals.toml:16:7: rule[0].on: unknown alert kind \"downn\"; did you mean \"down\"?",
        ]
    );
}

#[test]
fn a_bad_cron_window_is_refused_with_its_line() {
    let text = r#"
[[maintenance]]
id = "nightly"
schedule = "0 25 * * *"
duration = "1h"
"#;
    let text = errors(text);
    assert!(
        text.starts_with("vitals.toml:10:12: maintenance[0] (\"nightly\").schedule: "),
        "{text}"
    );
}

#[test]
fn windows_must_be_one_off_or_recurring_and_well_formed() {
    let both = errors(
        "\n[[maintenance]]\nfrom = \"2026-12-24T22:00:00Z\"\nuntil = \"2026-12-25T06:00:00Z\"\nschedule = \"0 2 * * *\"\nduration = \"1h\"\n",
    );
    assert!(
        both.contains("either one-off (from, until) or recurring"),
        "{both}"
    );
    let backwards = errors(
        "\n[[maintenance]]\nfrom = \"2026-12-24T22:00:00Z\"\nuntil = \"2026-12-24T21:00:00Z\"\n",
    );
    assert_eq!(
        backwards,
        "vitals.toml:10:9: maintenance[0].until: is not after from; a window must end after it starts"
    );
    let not_a_time =
        errors("\n[[maintenance]]\nfrom = \"tomorrow\"\nuntil = \"2026-12-24T21:00:00Z\"\n");
    assert!(
        not_a_time.starts_with(
            "vitals.toml:9:8: maintenance[0].from: \"tomorrow\" is not an RFC 3339 time"
        ),
        "{not_a_time}"
    );
    let no_duration = errors("\n[[maintenance]]\nschedule = \"0 2 * * *\"\n");
    assert!(
        no_duration.contains("missing or zero duration"),
        "{no_duration}"
    );
}

#[test]
fn channels_need_their_keys_and_only_theirs() {
    let text = r#"
[[channel]]
id = "mail"
kind = "email"
smtp = "127.0.0.1:25"
url = "http://127.0.0.1:9000/hook"
to = ["not an address"]
from = "vitals@example.com"

[[channel]]
id = "mail"
kind = "pager"
"#;
    let text = errors(text);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        "vitals.toml:12:1: channel[0] (\"mail\").url: `url` does not belong to an email channel; it is for webhook or slack channels"
    );
    assert!(
        lines[1].starts_with(
            "vitals.toml:13:7: channel[0] (\"mail\").to: \"not an address\" is not an email address"
        ),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        "vitals.toml:17:6: channel[1] (\"mail\").id: duplicate channel id \"mail\": channel[0] on line 9 has it already; ids must be unique"
    );
    assert_eq!(
        lines[3],
        "vitals.toml:18:8: channel[1] (\"mail\").kind: unknown channel kind `pager`; known: webhook, slack, email, command"
    );
}

#[test]
fn retry_limits_are_checked() {
    let text = errors("\n[notify]\nretry_min = \"10s\"\nretry_max = \"1s\"\n");
    assert_eq!(
        text,
        "vitals.toml:10:13: notify.retry_max: retry_max (1s) is shorter than retry_min (10s); make retry_max at least retry_min"
    );
}

#[test]
fn group_settings_are_read_with_notify_s_as_defaults() {
    use vitals_monitor::config::{GroupBy, GroupLabel};
    let text = format!(
        r#"{TARGETS}
[notify]
group_wait = "20s"
group_interval = "10m"
dashboard_url = "https://vitals.example.com/"

[[channel]]
id = "hook"
kind = "webhook"
url = "https://hooks.example.com/vitals"

[[rule]]
targets = ["db"]
channels = ["hook"]
group_by = ["..."]

[[rule]]
channels = ["hook"]
group_by = ["tags", "kind"]
group_wait = "1m"
group_interval = "1h"

[[rule]]
channels = ["hook"]
"#
    );
    let notify = config::parse(&text, "vitals.toml").unwrap().notify;
    assert_eq!(
        notify.dashboard_url.as_deref(),
        Some("https://vitals.example.com")
    );
    let [each, labels, default] = &notify.rules[..] else {
        panic!("three rules")
    };
    assert_eq!(each.group_by, GroupBy::Each);
    assert_eq!(each.group_wait, Duration::from_secs(20));
    assert_eq!(each.group_interval, Duration::from_secs(600));
    assert_eq!(
        labels.group_by,
        GroupBy::Labels(vec![GroupLabel::Tags, GroupLabel::Kind])
    );
    assert_eq!(labels.group_wait, Duration::from_secs(60));
    assert_eq!(labels.group_interval, Duration::from_secs(3600));
    // The default: by group, as the Alertmanager example routes group by their service.
    assert_eq!(default.group_by, GroupBy::Labels(vec![GroupLabel::Group]));
    let defaults = config::parse(TARGETS, "vitals.toml").unwrap().notify;
    assert_eq!(defaults.group_wait, Duration::from_secs(30));
    assert_eq!(defaults.group_interval, Duration::from_secs(300));
}

#[test]
fn bad_group_settings_are_refused_with_their_lines() {
    let rule = |keys: &str| {
        errors(&format!(
            "\n[[channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9000/hook\"\n\n[[rule]]\nchannels = [\"hook\"]\n{keys}\n"
        ))
    };
    assert_eq!(
        rule("group_by = [\"group\", \"team\"]"),
        "vitals.toml:15:22: rule[0].group_by: unknown label \"team\"; group by group, tags, kind, or write [\"...\"] for one notification per target"
    );
    assert_eq!(
        rule("group_by = [\"...\", \"group\"]"),
        "vitals.toml:15:12: rule[0].group_by: \"...\" (one notification per target) stands alone; remove the other labels or the \"...\""
    );
    assert_eq!(
        rule("group_by = [\"kind\", \"kind\"]"),
        "vitals.toml:15:21: rule[0].group_by: \"kind\" is listed twice"
    );
    assert_eq!(
        rule("group_interval = \"0s\""),
        "vitals.toml:15:18: rule[0].group_interval: is zero; a changed group would be notified on every change: write \"5m\", say"
    );
    assert_eq!(
        errors("\n[notify]\ngroup_interval = \"0s\"\n"),
        "vitals.toml:9:18: notify.group_interval: is zero; a changed group would be notified on every change: write \"5m\", say"
    );
}
