//! `[[rule]]` and `[[maintenance]]`: what they name exists, and windows are well formed.

use std::time::SystemTime;

use toml::Spanned;
use toml::de::DeValue;

use super::super::error::Diag;
use super::super::fields::{Fields, Scope};
use super::super::keys::{TypedKey, maintenance, rule, ty};
use super::super::val::{At, Reported};
use super::super::value;
use super::model::{GroupBy, GroupLabel, Rule, Window, WindowTime, notify_defaults};
use super::{Known, Names, Settings, ZERO_INTERVAL, label, names_in};
use crate::AlertKind;

pub(super) fn rule(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    channels: &Names<'_>,
    known: &Known<'_>,
    defaults: &Settings,
) -> Result<Rule, Reported> {
    let path = format!("rule[{index}]");
    let f = value::table::<rule::Table>(diag, value, Scope::Any, &path)?;
    let targets = names_in(diag, &f, rule::TARGETS, &path, "target", &known.ids);
    let groups = names_in(diag, &f, rule::GROUPS, &path, "group", &known.groups);
    if !f.has(rule::CHANNELS) {
        diag.error(
            &f.span,
            rule::CHANNELS.field(&path),
            "missing channels; name the [[channel]] ids this rule sends to",
        );
    }
    let channels = names_in(diag, &f, rule::CHANNELS, &path, "channel", channels);
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
    let kinds = Names::new(kinds.to_vec());
    let on = names_in(diag, &f, rule::ON, &path, "alert kind", &kinds).map(|names| {
        if f.has(rule::ON) {
            names.iter().filter_map(|n| AlertKind::parse(n)).collect()
        } else {
            Rule::DEFAULT_ON.to_vec()
        }
    });
    let repeat = f.get(rule::REPEAT)?.map(|at| at.value);
    let repeat_max = f.get(rule::REPEAT_MAX)?;
    if let (Some(first), Some(max)) = (repeat, &repeat_max)
        && max.value < first
    {
        diag.error(
            &max.span,
            rule::REPEAT_MAX.field(&path),
            format!(
                "repeat_max ({}) is shorter than repeat ({}); make it at least repeat",
                humantime::format_duration(max.value),
                humantime::format_duration(first)
            ),
        );
        return Err(Reported);
    }
    if let Some(at) = f
        .span(rule::REPEAT)
        .filter(|_| repeat.is_some_and(|r| r.is_zero()))
    {
        diag.error(
            &at,
            rule::REPEAT.field(&path),
            "is zero; reminders would never stop: remind after \"1h\", say, or remove repeat",
        );
        return Err(Reported);
    }
    let group_by = group_by(diag, &f, &path);
    let group_wait = f
        .get(rule::GROUP_WAIT)?
        .map_or(defaults.group_wait, |at| at.value);
    let group_interval = match f.get(rule::GROUP_INTERVAL)? {
        Some(at) if at.value.is_zero() => {
            diag.error(&at.span, rule::GROUP_INTERVAL.field(&path), ZERO_INTERVAL);
            return Err(Reported);
        }
        Some(at) => at.value,
        None => defaults.group_interval,
    };
    Ok(Rule {
        targets: targets?,
        groups: groups?,
        on: on?,
        channels: channels?,
        repeat,
        repeat_max: repeat_max.map_or(notify_defaults::REPEAT_MAX, |at| at.value),
        group_by: group_by?,
        group_wait,
        group_interval,
    })
}

/// `group_by`: `["..."]` alone (no grouping), or labels from [`GroupLabel::ALL`], each once.
fn group_by(diag: &mut Diag<'_>, f: &Fields<rule::Table>, path: &str) -> Result<GroupBy, Reported> {
    let Some(list) = f.get(rule::GROUP_BY)? else {
        return Ok(GroupBy::default());
    };
    let field = rule::GROUP_BY.field(path);
    if list.value.iter().any(|item| item.value == "...") {
        if list.value.len() > 1 {
            diag.error(
                &list.span,
                field,
                "\"...\" (one notification per target) stands alone; remove the other labels or the \"...\"",
            );
            return Err(Reported);
        }
        return Ok(GroupBy::Each);
    }
    let mut labels = Vec::new();
    for item in &list.value {
        let Some(label) = GroupLabel::ALL
            .into_iter()
            .find(|l| l.as_str() == item.value)
        else {
            let known: Vec<&str> = GroupLabel::ALL.iter().map(|l| l.as_str()).collect();
            diag.error(
                &item.span,
                field,
                format!(
                    "unknown label {:?}; group by {}, or write [\"...\"] for one notification per target",
                    item.value,
                    known.join(", ")
                ),
            );
            return Err(Reported);
        };
        if labels.contains(&label) {
            diag.error(
                &item.span,
                field,
                format!("{:?} is listed twice", item.value),
            );
            return Err(Reported);
        }
        labels.push(label);
    }
    Ok(GroupBy::Labels(labels))
}

pub(super) fn window(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    known: &Known<'_>,
) -> Result<Window, Reported> {
    use maintenance::{DURATION, FROM, SCHEDULE, TIMEZONE, UNTIL};
    let path = label("maintenance", index, value, maintenance::ID);
    let f = value::table::<maintenance::Table>(diag, value, Scope::Any, &path)?;
    let targets = names_in(diag, &f, maintenance::TARGETS, &path, "target", &known.ids);
    let groups = names_in(diag, &f, maintenance::GROUPS, &path, "group", &known.groups);
    let id = f
        .get(maintenance::ID)?
        .map_or_else(|| format!("maintenance[{index}]"), |at| at.value);
    let once = f.has(FROM) || f.has(UNTIL);
    let every = f.has(SCHEDULE) || f.has(DURATION) || f.has(TIMEZONE);
    let when = if once && every {
        let span = f
            .key_span(SCHEDULE)
            .or(f.key_span(DURATION))
            .unwrap_or(f.span.clone());
        diag.error(
            &span,
            path.clone(),
            "a window is either one-off (from, until) or recurring (schedule, duration, timezone), not both",
        );
        return Err(Reported);
    } else if once {
        let from = instant(diag, &f, &path, FROM)?;
        let until = instant(diag, &f, &path, UNTIL)?;
        let (from, until) = (from.ok_or(Reported)?, until.ok_or(Reported)?);
        if until.value <= from.value {
            diag.error(
                &until.span,
                UNTIL.field(&path),
                "is not after from; a window must end after it starts",
            );
            return Err(Reported);
        }
        WindowTime::Once {
            from: from.value,
            until: until.value,
        }
    } else if every {
        let schedule = f.get(SCHEDULE)?;
        let duration = f.get(DURATION)?;
        let timezone = f.get(TIMEZONE)?.map_or(chrono_tz::UTC, |at| at.value);
        let Some(schedule) = schedule else {
            diag.error(
                &f.span,
                SCHEDULE.field(&path),
                "missing schedule; a recurring window opens at each time of a cron schedule, like \"0 2 * * sun\"",
            );
            return Err(Reported);
        };
        let Some(duration) = duration.filter(|d| !d.value.is_zero()) else {
            diag.error(
                &f.span_or_table(DURATION),
                DURATION.field(&path),
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
    f: &Fields<maintenance::Table>,
    path: &str,
    key: TypedKey<maintenance::Table, ty::Str>,
) -> Result<Option<At<SystemTime>>, Reported> {
    let Some(at) = f.get(key)? else {
        diag.error(
            &f.span,
            key.field(path),
            format!(
                "missing {}; a one-off window needs from and until",
                key.name()
            ),
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
                key.field(path),
                format!(
                    "{:?} is not an RFC 3339 time ({error}); write it like \"2026-12-24T22:00:00Z\" or with an offset, \"2026-12-24T23:00:00+01:00\"",
                    at.value
                ),
            );
            Err(Reported)
        }
    }
}
