//! The [`Alert`]: what one notification says, as every channel receives it, and the
//! [`TransitionInfo`] the monitor hands the notifier for each stored transition.
//!
//! The JSON form of [`Alert`] is the generic webhook's body and the command channel's stdin;
//! docs/ALERTS.md documents it field by field, so renaming a field breaks receivers. What
//! this is not: the decision whether to send an alert (`policy`) or how (`channel`).

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use vitals_core::machine::State;

pub use vitals_config::AlertKind;

/// One notification, as channels receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The idempotency key: the same alert always has the same key, so receivers that
    /// remember keys never act twice. Channels add `@<channel>` (see docs/ALERTS.md).
    pub key: String,
    pub kind: AlertKind,
    /// The target's id (`monitor` for [`AlertKind::Isolated`]).
    pub target: String,
    /// The target's name, for people.
    pub name: String,
    pub group: Option<String>,
    /// The state before and after, as in `/api/v1/targets` (absent for alerts that are not
    /// transitions).
    pub from: Option<String>,
    pub to: Option<String>,
    /// Which rule fired, for people: "3 consecutive failures (down_after 3)".
    pub reason: String,
    /// When it happened, RFC 3339 in UTC with milliseconds.
    #[serde(with = "rfc3339")]
    pub at: SystemTime,
    /// The root cause this target is blocked by, when it is not its own.
    pub root: Option<String>,
    /// Targets this one's failure took down (filled for a root's alert).
    pub dependents: Vec<String>,
}

impl Alert {
    /// The body of a webhook and the stdin of a command.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// One line for people: subject of an email, text of a chat message.
    pub fn summary(&self) -> String {
        let who = if self.name == self.target {
            self.target.clone()
        } else {
            format!("{} ({})", self.name, self.target)
        };
        let what = match self.kind {
            AlertKind::Down => "is down".to_owned(),
            AlertKind::Unhealthy => "is unhealthy".to_owned(),
            AlertKind::Degraded => "is degraded".to_owned(),
            AlertKind::Recovered => "has recovered".to_owned(),
            AlertKind::Flapping => "is flapping; quiet until it settles".to_owned(),
            AlertKind::Reminder => format!("is still {}", self.to.as_deref().unwrap_or("down")),
            AlertKind::Isolated => {
                "is isolated: its canaries fail, down-verdicts are suspended".to_owned()
            }
            AlertKind::Escalation => "needs a person: automatic recovery gave up".to_owned(),
        };
        let mut line = format!("{who} {what}");
        if !self.dependents.is_empty() {
            line.push_str(&format!(
                " — {} dependent(s) affected: {}",
                self.dependents.len(),
                self.dependents.join(", ")
            ));
        }
        if let Some(root) = &self.root {
            line.push_str(&format!(" (was blocked by {root})"));
        }
        line
    }

    /// Several lines for people: the summary, the reason, and the details.
    pub fn text(&self) -> String {
        let mut text = format!("{}\n\nreason: {}\n", self.summary(), self.reason);
        if let (Some(from), Some(to)) = (&self.from, &self.to) {
            text.push_str(&format!("state: {from} -> {to}\n"));
        }
        if let Some(group) = &self.group {
            text.push_str(&format!("group: {group}\n"));
        }
        text.push_str(&format!("at: {}\n", rfc3339::format(self.at)));
        text.push_str(&format!("idempotency key: {}\n", self.key));
        text
    }
}

/// A stored transition, as the monitor hands it to the notifier. The root-cause code fills
/// `blocked_by` and `dependents`; without it they are `None` and empty.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionInfo {
    pub target: String,
    pub at: SystemTime,
    pub from: State,
    pub to: State,
    pub reason: String,
    /// The machine's flapping flag after this transition.
    pub flapping: bool,
    /// The failing target this one depends on, if its failure is that target's doing: it
    /// gets no alert of its own, and is named in the root's alert.
    pub blocked_by: Option<String>,
    /// Targets known to be blocked by this one now; they are named in its alert.
    pub dependents: Vec<String>,
}

/// Unix milliseconds, for idempotency keys.
pub(crate) fn unix_ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// `SystemTime` as RFC 3339 in JSON.
pub(crate) mod rfc3339 {
    use std::time::SystemTime;

    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn format(t: SystemTime) -> String {
        DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| t.with_timezone(&Utc).into())
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn json_is_the_documented_shape_and_round_trips() {
        let alert = Alert {
            key: "db:down:1764064800123".into(),
            kind: AlertKind::Down,
            target: "db".into(),
            name: "Database".into(),
            group: Some("data".into()),
            from: Some("unhealthy".into()),
            to: Some("down".into()),
            reason: "3 consecutive failures (down_after 3)".into(),
            at: UNIX_EPOCH + Duration::from_millis(1_764_064_800_123),
            root: None,
            dependents: vec!["api".into(), "web".into()],
        };
        let json = alert.to_json();
        assert_eq!(
            json,
            r#"{"key":"db:down:1764064800123","kind":"down","target":"db","name":"Database","group":"data","from":"unhealthy","to":"down","reason":"3 consecutive failures (down_after 3)","at":"2025-11-25T10:00:00.123Z","root":null,"dependents":["api","web"]}"#
        );
        assert_eq!(serde_json::from_str::<Alert>(&json).unwrap(), alert);
        assert_eq!(
            alert.summary(),
            "Database (db) is down — 2 dependent(s) affected: api, web"
        );
    }
}
