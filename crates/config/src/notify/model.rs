//! The notification settings as the monitor runs them: plain data, every value checked.
//! Read from TOML by the sibling modules; built in code by tests and embedders.

use std::time::{Duration, SystemTime};

use crate::AlertKind;

/// Everything about notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifications {
    /// How long a new alert (or a new group's first notification) waits before it is
    /// delivered, so that the alerts of targets that fail because of one root cause are
    /// merged into the root's, and targets failing together into one notification. The
    /// default of every rule's `group_wait`.
    pub group_wait: Duration,
    /// How often a group whose members changed is notified again; the default of every
    /// rule's `group_interval`.
    pub group_interval: Duration,
    /// The dashboard's public address (`https://vitals.example.com`), for links in group
    /// notifications; without it they carry the path alone.
    pub dashboard_url: Option<String>,
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
    ///
    /// 30 s, as Alertmanager's: it is also the default check interval, so a fleet that fails
    /// at one moment, whose checks are spread over the interval, is judged within one
    /// interval and lands in one first notification.
    pub const GROUP_WAIT: Duration = Duration::from_secs(30);
    /// A group that changed is notified again at most this often (Alertmanager's default).
    pub const GROUP_INTERVAL: Duration = Duration::from_secs(300);
    pub const RETRY_MIN: Duration = Duration::from_secs(1);
    pub const RETRY_MAX: Duration = Duration::from_secs(300);
    /// A channel that has not answered after this has failed this attempt.
    pub const TIMEOUT: Duration = Duration::from_secs(10);
    /// Attempts before a row is dead-lettered: with the default backoff (1 s doubling to
    /// 5 min) about an hour of trying.
    pub const MAX_ATTEMPTS: u32 = 20;
    /// Reminders never get further apart than this.
    pub const REPEAT_MAX: Duration = Duration::from_secs(24 * 3600);
}

impl Default for Notifications {
    fn default() -> Self {
        Notifications {
            group_wait: notify_defaults::GROUP_WAIT,
            group_interval: notify_defaults::GROUP_INTERVAL,
            dashboard_url: None,
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
    /// A row that failed this many attempts is dead-lettered, so that the rows behind it go
    /// out; 0 keeps retrying for ever.
    pub max_attempts: u32,
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
    /// Which targets' alerts are sent together, as one notification per group.
    pub group_by: GroupBy,
    /// How long a new group collects members before its first notification (and a new
    /// alert waits for its dependents to be merged into it).
    pub group_wait: Duration,
    /// How often a group whose members changed is notified again.
    pub group_interval: Duration,
}

/// `group_by`: what makes two targets' alerts one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// `["..."]`: no grouping, one notification per alert (as before groups existed).
    Each,
    /// Targets that agree on every label (none: every target the rule covers) share a group.
    Labels(Vec<GroupLabel>),
}

impl GroupBy {
    /// The labels, `None` for [`GroupBy::Each`].
    pub fn labels(&self) -> Option<&[GroupLabel]> {
        match self {
            GroupBy::Each => None,
            GroupBy::Labels(labels) => Some(labels),
        }
    }
}

/// `["group"]`: see docs/ALERTS.md for why.
impl Default for GroupBy {
    fn default() -> Self {
        GroupBy::Labels(vec![GroupLabel::Group])
    }
}

/// One thing targets can be grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupLabel {
    /// The target's `group`.
    Group,
    /// The target's `tags`, as a set.
    Tags,
    /// The target's `kind` (`http`, `tcp`, `heartbeat`…).
    Kind,
}

impl GroupLabel {
    /// Every label, as written in `group_by`.
    pub const ALL: [GroupLabel; 3] = [GroupLabel::Group, GroupLabel::Tags, GroupLabel::Kind];

    pub fn as_str(self) -> &'static str {
        match self {
            GroupLabel::Group => "group",
            GroupLabel::Tags => "tags",
            GroupLabel::Kind => "kind",
        }
    }
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
