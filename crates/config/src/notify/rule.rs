//! `[[rule]]` and `[[maintenance]]`: what they name exists, and windows are well formed.

use std::time::SystemTime;

use toml::Spanned;
use toml::de::DeValue;

use super::super::error::{Diag, Span};
use super::super::fields::{At, Fields, Reported, Scope, read_table};
use super::super::keys;
use super::model::{Rule, Window, WindowTime, notify_defaults};
use super::{known, label, names_in};
use crate::AlertKind;

pub(super) fn rule(
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

pub(super) fn window(
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
    fn span_or(&self, key: &str) -> Span {
        self.span(key).unwrap_or(self.span.clone())
    }
}
