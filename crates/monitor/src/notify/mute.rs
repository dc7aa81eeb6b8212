//! Why a notification is muted right now: an operator's maintenance flag on the target, a
//! configured maintenance window (one-off or recurring by cron in a time zone), or a silence
//! created through the API.
//!
//! Pure functions of the configuration, the silences and `now`. What this is not: the
//! decision what a muted alert still does (it is recorded; resolutions of alerts that were
//! sent are still sent); that is `policy`.

use std::collections::HashMap;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

use crate::config::{Window, WindowTime, covers};
use crate::store::Silence;

/// Everything that can mute a target.
#[derive(Debug, Clone, Default)]
pub struct Mutes {
    pub windows: Vec<Window>,
    pub silences: Vec<Silence>,
    /// Targets an operator put in maintenance through the API, until when.
    pub flagged: HashMap<String, SystemTime>,
}

impl Mutes {
    /// Why `target` is muted at `now`, for people (`maintenance nightly`, `silence 3`), or
    /// `None`. A silence or window that names no target and no group mutes every target.
    pub fn reason(&self, target: &str, group: Option<&str>, now: SystemTime) -> Option<String> {
        if self.flagged.get(target).is_some_and(|until| *until > now) {
            return Some(format!("maintenance of {target} (api)"));
        }
        if let Some(window) = self
            .windows
            .iter()
            .find(|w| covers(&w.targets, &w.groups, target, group) && is_open(&w.when, now))
        {
            return Some(format!("maintenance {}", window.id));
        }
        self.silences
            .iter()
            .find(|s| {
                s.until > now && s.created <= now && covers(&s.targets, &s.groups, target, group)
            })
            .map(|s| format!("silence {}", s.id))
    }

    /// Forgets silences that ended before `now`.
    pub fn prune(&mut self, now: SystemTime) {
        self.silences.retain(|s| s.until > now);
        self.flagged.retain(|_, until| *until > now);
    }
}

/// Whether a window is open at `now`: a one-off window in `[from, until)`, a recurring one
/// within `duration` after its latest start at or before `now`.
pub fn is_open(when: &WindowTime, now: SystemTime) -> bool {
    match when {
        WindowTime::Once { from, until } => *from <= now && now < *until,
        WindowTime::Every {
            schedule,
            timezone,
            duration,
            ..
        } => {
            let utc: DateTime<Utc> = now.into();
            let local = utc.with_timezone(timezone);
            // Inclusive: a window opening exactly now is open.
            let Ok(start) = schedule.find_previous_occurrence(&local, true) else {
                return false;
            };
            let start: SystemTime = start.with_timezone(&Utc).into();
            now.duration_since(start)
                .is_ok_and(|since| since < *duration)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(text: &str) -> SystemTime {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
            .into()
    }

    fn nightly(timezone: chrono_tz::Tz) -> WindowTime {
        WindowTime::Every {
            schedule: Box::new("0 2 * * *".parse().unwrap()),
            expression: "0 2 * * *".into(),
            timezone,
            duration: Duration::from_secs(3600),
        }
    }

    #[test]
    fn recurring_windows_open_at_each_start_for_their_duration_in_their_time_zone() {
        let utc = nightly(chrono_tz::UTC);
        assert!(!is_open(&utc, at("2026-11-25T01:59:59Z")));
        assert!(is_open(&utc, at("2026-11-25T02:00:00Z")));
        assert!(is_open(&utc, at("2026-11-25T02:59:59Z")));
        assert!(!is_open(&utc, at("2026-11-25T03:00:00Z")));
        // 02:00 in Berlin is 01:00 UTC in winter.
        let berlin = nightly(chrono_tz::Europe::Berlin);
        assert!(is_open(&berlin, at("2026-11-25T01:30:00Z")));
        assert!(!is_open(&berlin, at("2026-11-25T02:30:00Z")));
    }

    #[test]
    fn one_off_windows_flags_and_silences_mute_what_they_cover() {
        let now = at("2026-11-25T12:00:00Z");
        let mut mutes = Mutes {
            windows: vec![Window {
                id: "upgrade".into(),
                targets: vec![],
                groups: vec!["data".into()],
                when: WindowTime::Once {
                    from: at("2026-11-25T11:00:00Z"),
                    until: at("2026-11-25T13:00:00Z"),
                },
            }],
            silences: vec![Silence {
                id: 7,
                targets: vec!["api".into()],
                groups: vec![],
                created: at("2026-11-25T11:00:00Z"),
                until: at("2026-11-25T12:30:00Z"),
                comment: String::new(),
            }],
            flagged: HashMap::from([("web".to_owned(), at("2026-11-25T12:10:00Z"))]),
        };
        assert_eq!(
            mutes.reason("db", Some("data"), now).as_deref(),
            Some("maintenance upgrade")
        );
        assert_eq!(mutes.reason("api", None, now).as_deref(), Some("silence 7"));
        assert_eq!(
            mutes.reason("web", None, now).as_deref(),
            Some("maintenance of web (api)")
        );
        assert_eq!(mutes.reason("cache", None, now), None);
        let later = at("2026-11-25T12:45:00Z");
        assert_eq!(mutes.reason("api", None, later), None);
        assert_eq!(mutes.reason("web", None, later), None);
        mutes.prune(later);
        assert!(mutes.silences.is_empty() && mutes.flagged.is_empty());
    }
}
