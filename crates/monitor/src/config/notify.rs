//! Notification settings: `[notify]`, `[[channel]]`, `[[rule]]` and `[[maintenance]]`, read
//! from the walked TOML into [`Notifications`], every problem reported with its line.
//!
//! Checked here: each channel has the keys its kind needs and none of another kind's, every
//! rule names existing channels, targets and groups, every maintenance window is either
//! one-off (`from`, `until`) or recurring (`schedule`, `duration`, `timezone`). Not here: what
//! the settings do (`crate::notify`), or the key types (`keys`).

use std::time::{Duration, SystemTime};

use toml::Spanned;
use toml::de::DeValue;

use super::error::Diag;
use super::fields::{At, Fields, Reported, Scope, join_or, read_table, suggest, unknown};
use super::keys;
use crate::notify::AlertKind;

/// Everything about notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifications {
    /// How long a new alert waits before it is delivered, so that the alerts of targets
    /// that fail because of one root cause can be merged into the root's.
    pub group_wait: Duration,
    /// The first retry of a failed delivery waits this long; each next one twice as long.
    pub retry_min: Duration,
    /// The longest wait between retries.
    pub retry_max: Duration,
    pub channels: Vec<Channel>,
    /// In file order; the first rule that matches a target decides for it.
    pub rules: Vec<Rule>,
    pub maintenance: Vec<Window>,
}

/// Built-in defaults, documented in docs/ALERTS.md.
pub mod notify_defaults {
    use std::time::Duration;

    /// Long enough for dependents checked every few seconds to fail and be merged into the
    /// root's alert; short next to how fast a person reacts.
    pub const GROUP_WAIT: Duration = Duration::from_secs(5);
    pub const RETRY_MIN: Duration = Duration::from_secs(1);
    pub const RETRY_MAX: Duration = Duration::from_secs(300);
    /// A channel that has not answered after this has failed this attempt.
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// Reminders never get further apart than this.
    pub const REPEAT_MAX: Duration = Duration::from_secs(24 * 3600);
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            group_wait: notify_defaults::GROUP_WAIT,
            retry_min: notify_defaults::RETRY_MIN,
            retry_max: notify_defaults::RETRY_MAX,
            channels: Vec::new(),
            rules: Vec::new(),
            maintenance: Vec::new(),
        }
    }
}

/// Somewhere alerts go.
#[derive(Debug, Clone, PartialEq)]
pub struct Channel {
    /// Unique among channels; rules name it.
    pub id: String,
    pub kind: ChannelKind,
    /// One delivery attempt is cut after this.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChannelKind {
    /// POST the alert's JSON; signed with HMAC-SHA256 when `secret` is set.
    Webhook {
        url: String,
        secret: Option<String>,
        headers: Vec<(String, String)>,
    },
    /// POST `{"text": …}` to a Slack-compatible incoming webhook.
    Slack { url: String },
    /// Mail through an SMTP server.
    Email {
        /// `host:port`.
        smtp: String,
        tls: SmtpTls,
        username: Option<String>,
        password: Option<String>,
        from: String,
        to: Vec<String>,
    },
    /// Run a program (no shell) with the alert in `VITALS_ALERT_*` and its JSON on stdin.
    Command { command: Vec<String> },
}

impl ChannelKind {
    pub fn name(&self) -> &'static str {
        match self {
            ChannelKind::Webhook { .. } => "webhook",
            ChannelKind::Slack { .. } => "slack",
            ChannelKind::Email { .. } => "email",
            ChannelKind::Command { .. } => "command",
        }
    }
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text: only for a relay on the same host.
    None,
    /// STARTTLS, required (the default).
    Starttls,
}

/// Which alerts of which targets go to which channels.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Target ids; with `groups`, the rule applies to a target named in either. Both empty:
    /// every target.
    pub targets: Vec<String>,
    pub groups: Vec<String>,
    /// Which alerts are sent; reminders need `repeat` too.
    pub on: Vec<AlertKind>,
    pub channels: Vec<String>,
    /// While down, remind after this, then after twice as long each time.
    pub repeat: Option<Duration>,
    pub repeat_max: Duration,
}

impl Rule {
    /// What a rule sends unless `on` is set: the states that need a person, the all-clear,
    /// the one flapping notice, and the monitor's own isolation.
    pub const DEFAULT_ON: [AlertKind; 6] = [
        AlertKind::Down,
        AlertKind::Recovered,
        AlertKind::Flapping,
        AlertKind::Reminder,
        AlertKind::Escalation,
        AlertKind::Isolated,
    ];

    /// Whether the rule covers this target.
    pub fn matches(&self, target: &str, group: Option<&str>) -> bool {
        covers(&self.targets, &self.groups, target, group)
    }
}

/// Whether a selection of targets and groups (both empty: everything) covers a target.
/// A target id covers the rows of its checks too (`svc` covers `svc/db`, the row the
/// monitor keeps for the `db` check of the vitals service `svc`).
pub fn covers(targets: &[String], groups: &[String], target: &str, group: Option<&str>) -> bool {
    let parent = target.split_once('/').map(|(parent, _)| parent);
    (targets.is_empty() && groups.is_empty())
        || targets
            .iter()
            .any(|t| t == target || Some(t.as_str()) == parent)
        || group.is_some_and(|g| groups.iter().any(|x| x == g))
}

/// A maintenance window: notifications of the targets it covers are muted while it is open
/// (transitions are still recorded, and resolutions of alerts sent before are still sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// For people and for `muted_by`; `maintenance[N]` unless set.
    pub id: String,
    pub targets: Vec<String>,
    pub groups: Vec<String>,
    pub when: WindowTime,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WindowTime {
    /// From `from` (inclusive) to `until` (exclusive).
    Once { from: SystemTime, until: SystemTime },
    /// Opens at each time of a cron schedule in a time zone, for `duration`.
    Every {
        schedule: Box<croner::Cron>,
        expression: String,
        timezone: chrono_tz::Tz,
        duration: Duration,
    },
}

/// The four sections, as found at the top of the file.
pub(super) struct Sections<'a, 'b> {
    pub(super) notify: Option<&'a Spanned<DeValue<'b>>>,
    pub(super) channels: Option<&'a Spanned<DeValue<'b>>>,
    pub(super) rules: Option<&'a Spanned<DeValue<'b>>>,
    pub(super) maintenance: Option<&'a Spanned<DeValue<'b>>>,
}

/// Reads the sections. `targets` are the valid target ids and their groups.
pub(super) fn read(
    diag: &mut Diag<'_>,
    sections: Sections<'_, '_>,
    targets: &[(String, Option<String>)],
) -> Result<Notifications, Reported> {
    let base = Notifications::default();
    let settings = match sections.notify {
        Some(value) => settings(diag, value),
        None => Ok((base.group_wait, base.retry_min, base.retry_max)),
    };
    let mut channels = Vec::new();
    for (index, item) in array(diag, sections.channels, "channel")?
        .iter()
        .enumerate()
    {
        channels.push(channel(diag, index, item));
    }
    let channels: Vec<ReadChannel> = channels;
    unique_channels(diag, &channels);
    let channel_ids: Vec<&str> = channels
        .iter()
        .filter_map(|(id, _)| id.as_ref().map(|id| id.value.as_str()))
        .collect();
    let mut rules = Vec::new();
    for (index, item) in array(diag, sections.rules, "rule")?.into_iter().enumerate() {
        rules.push(rule(diag, index, item, &channel_ids, targets));
    }
    let mut windows = Vec::new();
    for (index, item) in array(diag, sections.maintenance, "maintenance")?
        .iter()
        .enumerate()
    {
        windows.push(window(diag, index, item, targets));
    }
    let (group_wait, retry_min, retry_max) = settings?;
    Ok(Notifications {
        group_wait,
        retry_min,
        retry_max,
        channels: channels
            .into_iter()
            .map(|(_, c)| c)
            .collect::<Result<_, _>>()?,
        rules: rules.into_iter().collect::<Result<_, _>>()?,
        maintenance: windows.into_iter().collect::<Result<_, _>>()?,
    })
}

fn array<'a, 'b>(
    diag: &mut Diag<'_>,
    value: Option<&'a Spanned<DeValue<'b>>>,
    name: &str,
) -> Result<Vec<&'a Spanned<DeValue<'b>>>, Reported> {
    match value.map(|v| (v, v.get_ref())) {
        None => Ok(Vec::new()),
        Some((_, DeValue::Array(items))) => Ok(items.iter().collect()),
        Some((value, _)) => {
            diag.error(
                &value.span(),
                name,
                format!("{name} is an array of tables: write [[{name}]] (two brackets) above each"),
            );
            Err(Reported)
        }
    }
}

fn settings(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Result<(Duration, Duration, Duration), Reported> {
    let base = Notifications::default();
    let f = read_table(diag, value, keys::NOTIFY, Scope::Any, "notify")?;
    let group_wait = f
        .duration("group_wait")?
        .map_or(base.group_wait, |at| at.value);
    let min = f.duration("retry_min")?;
    let max = f.duration("retry_max")?;
    let retry_min = min.as_ref().map_or(base.retry_min, |at| at.value);
    let retry_max = max.as_ref().map_or(base.retry_max, |at| at.value);
    if let Some(at) = min.as_ref().filter(|at| at.value.is_zero()) {
        diag.error(
            &at.span,
            "notify.retry_min",
            "is zero; a receiver that is down would be hammered: wait at least \"100ms\"",
        );
        return Err(Reported);
    }
    if retry_max < retry_min {
        let span = max.or(min).map_or(f.span.clone(), |at| at.span);
        diag.error(
            &span,
            "notify.retry_max",
            format!(
                "retry_max ({}) is shorter than retry_min ({}); make retry_max at least retry_min",
                humantime::format_duration(retry_max),
                humantime::format_duration(retry_min)
            ),
        );
        return Err(Reported);
    }
    Ok((group_wait, retry_min, retry_max))
}

/// The string id of a table item, for its label: `channel[1] ("ops")`.
fn label(kind: &str, index: usize, value: &Spanned<DeValue<'_>>) -> String {
    let id = match value.get_ref() {
        DeValue::Table(table) => table.get("id").and_then(|id| match id.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        }),
        _ => None,
    };
    match id {
        Some(id) => format!("{kind}[{index}] ({id:?})"),
        None => format!("{kind}[{index}]"),
    }
}

/// Keys each channel kind accepts beyond `id`, `kind` and `timeout`.
const CHANNEL_KEYS: [(&str, &[&str]); 4] = [
    ("webhook", &["url", "secret", "headers"]),
    ("slack", &["url"]),
    (
        "email",
        &["smtp", "tls", "username", "password", "from", "to"],
    ),
    ("command", &["command"]),
];

/// A channel's id as written (for duplicate checks) and the channel, if it is valid.
type ReadChannel = (Option<At<String>>, Result<Channel, Reported>);

fn channel(diag: &mut Diag<'_>, index: usize, value: &Spanned<DeValue<'_>>) -> ReadChannel {
    let path = label("channel", index, value);
    let Ok(f) = read_table(diag, value, keys::CHANNEL, Scope::Any, &path) else {
        return (None, Err(Reported));
    };
    let id = f.str("id").ok().flatten();
    if !f.has("id") {
        diag.error(
            &f.span,
            format!("{path}.id"),
            "missing id; every channel needs an id that rules name, like \"ops-webhook\"",
        );
    }
    let built = (|| {
        let kinds: Vec<&str> = CHANNEL_KEYS.iter().map(|(k, _)| *k).collect();
        let Some(kind) = f.str("kind")? else {
            diag.error(
                &f.span,
                format!("{path}.kind"),
                format!("missing kind; set kind = {}", join_or(&kinds)),
            );
            return Err(Reported);
        };
        let Some((_, own)) = CHANNEL_KEYS.iter().find(|(k, _)| *k == kind.value) else {
            diag.error(
                &kind.span,
                format!("{path}.kind"),
                unknown("channel kind", &kind.value, &kinds),
            );
            return Err(Reported);
        };
        let mut misplaced = false;
        for (other, names) in CHANNEL_KEYS {
            for name in names.iter().filter(|n| !own.contains(n)) {
                if let Some(span) = f.key_span(name).filter(|_| other != kind.value) {
                    // Report each key once, naming the kinds it belongs to.
                    let owners: Vec<&str> = CHANNEL_KEYS
                        .iter()
                        .filter(|(_, n)| n.contains(name))
                        .map(|(k, _)| *k)
                        .collect();
                    if owners.first() == Some(&other) {
                        diag.error(
                            &span,
                            format!("{path}.{name}"),
                            format!(
                                "`{name}` does not belong to {} {} channel; it is for {} channels",
                                if kind.value == "email" { "an" } else { "a" },
                                kind.value,
                                join_or(&owners)
                            ),
                        );
                        misplaced = true;
                    }
                }
            }
        }
        let required: &[&str] = match kind.value.as_str() {
            "webhook" | "slack" => &["url"],
            "email" => &["smtp", "from", "to"],
            _ => &["command"],
        };
        let mut missing = false;
        for key in required {
            if !f.has(key) {
                diag.error(
                    &f.span,
                    format!("{path}.{key}"),
                    format!("missing {key}; a {} channel needs it", kind.value),
                );
                missing = true;
            }
        }
        let channel_kind = kind_of(diag, &f, &path, &kind.value)?;
        let timeout = f.duration("timeout")?;
        if let Some(at) = timeout.as_ref().filter(|at| at.value.is_zero()) {
            diag.error(
                &at.span,
                format!("{path}.timeout"),
                "is zero; every delivery would time out: allow it some time, like \"10s\"",
            );
            return Err(Reported);
        }
        if misplaced || missing {
            return Err(Reported);
        }
        Ok(Channel {
            id: id.clone().ok_or(Reported)?.value,
            kind: channel_kind,
            timeout: timeout.map_or(notify_defaults::TIMEOUT, |at| at.value),
        })
    })();
    (id, built)
}

fn kind_of(
    diag: &mut Diag<'_>,
    f: &Fields,
    path: &str,
    kind: &str,
) -> Result<ChannelKind, Reported> {
    let text = |name: &str| f.str(name).map(|at| at.map(|at| at.value));
    Ok(match kind {
        "webhook" => ChannelKind::Webhook {
            url: text("url")?.unwrap_or_default(),
            secret: text("secret")?,
            headers: f.headers("headers")?.map_or_else(Vec::new, |at| at.value),
        },
        "slack" => ChannelKind::Slack {
            url: text("url")?.unwrap_or_default(),
        },
        "email" => {
            let tls = match f.str("tls")? {
                None => SmtpTls::Starttls,
                Some(at) if at.value == "starttls" => SmtpTls::Starttls,
                Some(at) if at.value == "none" => SmtpTls::None,
                Some(at) => {
                    diag.error(
                        &at.span,
                        format!("{path}.tls"),
                        format!(
                            "unknown tls {:?}; use \"starttls\" (the default) or \"none\" (a relay on this host only)",
                            at.value
                        ),
                    );
                    return Err(Reported);
                }
            };
            let from = f.str("from")?;
            let to = f.list("to")?;
            let mut bad = false;
            for at in from.iter().chain(to.iter().flat_map(|to| to.value.iter())) {
                if let Err(error) = at.value.parse::<lettre::message::Mailbox>() {
                    diag.error(
                        &at.span,
                        format!("{path}.{}", if Some(at) == from.as_ref() { "from" } else { "to" }),
                        format!(
                            "{:?} is not an email address ({error}); write \"ops@example.com\" or \"Ops <ops@example.com>\"",
                            at.value
                        ),
                    );
                    bad = true;
                }
            }
            if bad {
                return Err(Reported);
            }
            ChannelKind::Email {
                smtp: text("smtp")?.unwrap_or_default(),
                tls,
                username: text("username")?,
                password: text("password")?,
                from: from.map(|at| at.value).unwrap_or_default(),
                to: to.map_or_else(Vec::new, |at| {
                    at.value.into_iter().map(|s| s.value).collect()
                }),
            }
        }
        _ => ChannelKind::Command {
            command: f.list("command")?.map_or_else(Vec::new, |at| {
                at.value.into_iter().map(|s| s.value).collect()
            }),
        },
    })
}

fn unique_channels(diag: &mut Diag<'_>, channels: &[ReadChannel]) {
    for (index, (id, _)) in channels.iter().enumerate() {
        let Some(id) = id else { continue };
        if let Some((earlier, Some(first))) = channels[..index]
            .iter()
            .map(|(other, _)| other.as_ref())
            .enumerate()
            .find(|(_, other)| other.is_some_and(|o| o.value == id.value))
        {
            let line = diag.line_of(&first.span);
            diag.error(
                &id.span,
                format!("channel[{index}] ({:?}).id", id.value),
                format!(
                    "duplicate channel id {:?}: channel[{earlier}] on line {line} has it already; ids must be unique",
                    id.value
                ),
            );
        }
    }
}

/// Reads a list of names that must each be one of `known`.
fn names_in(
    diag: &mut Diag<'_>,
    f: &Fields,
    key: &str,
    path: &str,
    what: &str,
    known: &[&str],
) -> Result<Vec<String>, Reported> {
    let Some(list) = f.list(key)? else {
        return Ok(Vec::new());
    };
    let mut bad = false;
    for item in &list.value {
        if !known.contains(&item.value.as_str()) {
            let hint = match suggest(&item.value, known.iter().copied()) {
                Some(close) => format!("did you mean {close:?}?"),
                None if known.is_empty() => format!("no {what} is configured"),
                None => format!("known: {}", known.join(", ")),
            };
            diag.error(
                &item.span,
                format!("{path}.{key}"),
                format!("unknown {what} {:?}; {hint}", item.value),
            );
            bad = true;
        }
    }
    if bad {
        return Err(Reported);
    }
    Ok(list.value.into_iter().map(|at| at.value).collect())
}

/// Target ids and group names, for `names_in`.
fn known(targets: &[(String, Option<String>)]) -> (Vec<&str>, Vec<&str>) {
    let ids = targets.iter().map(|(id, _)| id.as_str()).collect();
    let mut groups: Vec<&str> = targets.iter().filter_map(|(_, g)| g.as_deref()).collect();
    groups.sort_unstable();
    groups.dedup();
    (ids, groups)
}

fn rule(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    channels: &[&str],
    targets: &[(String, Option<String>)],
) -> Result<Rule, Reported> {
    let path = format!("rule[{index}]");
    let f = read_table(diag, value, keys::RULE, Scope::Any, &path)?;
    let (ids, groups) = known(targets);
    let targets = names_in(diag, &f, "targets", &path, "target", &ids);
    let groups = names_in(diag, &f, "groups", &path, "group", &groups);
    if !f.has("channels") {
        diag.error(
            &f.span,
            format!("{path}.channels"),
            "missing channels; name the [[channel]] ids this rule sends to",
        );
    }
    let channels = names_in(diag, &f, "channels", &path, "channel", channels);
    let kinds = [
        "down",
        "unhealthy",
        "degraded",
        "recovered",
        "flapping",
        "reminder",
        "isolated",
        "escalation",
    ];
    let on = names_in(diag, &f, "on", &path, "alert kind", &kinds).map(|names| {
        if f.has("on") {
            names.iter().filter_map(|n| AlertKind::parse(n)).collect()
        } else {
            Rule::DEFAULT_ON.to_vec()
        }
    });
    let repeat = f.duration("repeat")?.map(|at| at.value);
    let repeat_max = f.duration("repeat_max")?;
    if let (Some(first), Some(max)) = (repeat, &repeat_max)
        && max.value < first
    {
        diag.error(
            &max.span,
            format!("{path}.repeat_max"),
            format!(
                "repeat_max ({}) is shorter than repeat ({}); make it at least repeat",
                humantime::format_duration(max.value),
                humantime::format_duration(first)
            ),
        );
        return Err(Reported);
    }
    if let Some(at) = f
        .span("repeat")
        .filter(|_| repeat.is_some_and(|r| r.is_zero()))
    {
        diag.error(
            &at,
            format!("{path}.repeat"),
            "is zero; reminders would never stop: remind after \"1h\", say, or remove repeat",
        );
        return Err(Reported);
    }
    Ok(Rule {
        targets: targets?,
        groups: groups?,
        on: on?,
        channels: channels?,
        repeat,
        repeat_max: repeat_max.map_or(notify_defaults::REPEAT_MAX, |at| at.value),
    })
}

fn window(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    targets: &[(String, Option<String>)],
) -> Result<Window, Reported> {
    let path = label("maintenance", index, value);
    let f = read_table(diag, value, keys::MAINTENANCE, Scope::Any, &path)?;
    let (ids, groups) = known(targets);
    let targets = names_in(diag, &f, "targets", &path, "target", &ids);
    let groups = names_in(diag, &f, "groups", &path, "group", &groups);
    let id = f
        .str("id")?
        .map_or_else(|| format!("maintenance[{index}]"), |at| at.value);
    let once = f.has("from") || f.has("until");
    let every = f.has("schedule") || f.has("duration") || f.has("timezone");
    let when = if once && every {
        let span = f
            .key_span("schedule")
            .or(f.key_span("duration"))
            .unwrap_or(f.span.clone());
        diag.error(
            &span,
            path.clone(),
            "a window is either one-off (from, until) or recurring (schedule, duration, timezone), not both",
        );
        return Err(Reported);
    } else if once {
        let from = instant(diag, &f, &path, "from")?;
        let until = instant(diag, &f, &path, "until")?;
        let (from, until) = (from.ok_or(Reported)?, until.ok_or(Reported)?);
        if until.value <= from.value {
            diag.error(
                &until.span,
                format!("{path}.until"),
                "is not after from; a window must end after it starts",
            );
            return Err(Reported);
        }
        WindowTime::Once {
            from: from.value,
            until: until.value,
        }
    } else if every {
        let schedule = f.cron("schedule")?;
        let duration = f.duration("duration")?;
        let timezone = f
            .time_zone("timezone")?
            .map_or(chrono_tz::UTC, |at| at.value);
        let Some(schedule) = schedule else {
            diag.error(
                &f.span,
                format!("{path}.schedule"),
                "missing schedule; a recurring window opens at each time of a cron schedule, like \"0 2 * * sun\"",
            );
            return Err(Reported);
        };
        let Some(duration) = duration.filter(|d| !d.value.is_zero()) else {
            diag.error(
                &f.span_or("duration"),
                format!("{path}.duration"),
                "missing or zero duration; say how long each window stays open, like \"2h\"",
            );
            return Err(Reported);
        };
        let (schedule, expression) = schedule.value;
        WindowTime::Every {
            schedule: Box::new(schedule),
            expression,
            timezone,
            duration: duration.value,
        }
    } else {
        diag.error(
            &f.span,
            path.clone(),
            "a window needs from and until (one-off) or schedule and duration (recurring)",
        );
        return Err(Reported);
    };
    Ok(Window {
        id,
        targets: targets?,
        groups: groups?,
        when,
    })
}

/// An RFC 3339 time: `"2026-12-24T22:00:00Z"`.
fn instant(
    diag: &mut Diag<'_>,
    f: &Fields,
    path: &str,
    key: &str,
) -> Result<Option<At<SystemTime>>, Reported> {
    let Some(at) = f.str(key)? else {
        diag.error(
            &f.span,
            format!("{path}.{key}"),
            format!("missing {key}; a one-off window needs from and until"),
        );
        return Ok(None);
    };
    match chrono::DateTime::parse_from_rfc3339(&at.value) {
        Ok(t) => Ok(Some(At {
            value: t.with_timezone(&chrono::Utc).into(),
            span: at.span,
        })),
        Err(error) => {
            diag.error(
                &at.span,
                format!("{path}.{key}"),
                format!(
                    "{:?} is not an RFC 3339 time ({error}); write it like \"2026-12-24T22:00:00Z\" or with an offset, \"2026-12-24T23:00:00+01:00\"",
                    at.value
                ),
            );
            Err(Reported)
        }
    }
}

impl Fields {
    /// Where `key`'s value was written, or the table when it was not.
    fn span_or(&self, key: &str) -> super::error::Span {
        self.span(key).unwrap_or(self.span.clone())
    }
}
