//! Notification settings: `[notify]`, `[[channel]]`, `[[rule]]` and `[[maintenance]]`, read
//! from the walked TOML into [`Notifications`], every problem reported with its line.
//!
//! Checked here: each channel has the keys its kind needs and none of another kind's
//! (`channel`), every rule names existing channels, targets and groups, every maintenance
//! window is either one-off (`from`, `until`) or recurring (`schedule`, `duration`,
//! `timezone`) (`rule`). The result is plain data (`model`). Not here: what the settings do
//! (`crate::notify`), or the key types (`keys`).

mod channel;
mod model;
mod rule;

use std::collections::HashSet;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

pub use model::{
    Channel, ChannelKind, GroupBy, GroupLabel, Notifications, Rule, SmtpTls, Window, WindowTime,
    covers, notify_defaults,
};

use super::error::Diag;
use super::fields::{Fields, Scope, suggest};
use super::keys::{Section, TypedKey, notify, ty};
use super::val::Reported;
use super::value;

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
    let settings = match sections.notify {
        Some(value) => settings(diag, value),
        None => Ok(Settings::default()),
    };
    let mut channels = Vec::new();
    for (index, item) in array(diag, sections.channels, "channel")?
        .iter()
        .enumerate()
    {
        channels.push(channel::channel(diag, index, item));
    }
    let channels: Vec<channel::ReadChannel> = channels;
    channel::unique(diag, &channels);
    let channel_ids = Names::new(
        channels
            .iter()
            .filter_map(|(id, _)| id.as_ref().map(|id| id.value.as_str()))
            .collect(),
    );
    // Once for every rule and window: each of them used to collect the ids again.
    let known = Known::of(targets);
    let mut rules = Vec::new();
    let defaults = settings
        .as_ref()
        .map_or_else(|_| Settings::default(), Clone::clone);
    for (index, item) in array(diag, sections.rules, "rule")?.into_iter().enumerate() {
        rules.push(rule::rule(
            diag,
            index,
            item,
            &channel_ids,
            &known,
            &defaults,
        ));
    }
    let mut windows = Vec::new();
    for (index, item) in array(diag, sections.maintenance, "maintenance")?
        .iter()
        .enumerate()
    {
        windows.push(rule::window(diag, index, item, &known));
    }
    let Settings {
        group_wait,
        group_interval,
        retry_min,
        retry_max,
        dashboard_url,
    } = settings?;
    Ok(Notifications {
        group_wait,
        group_interval,
        dashboard_url,
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

/// `[notify]` as read; the group settings are the rules' defaults.
#[derive(Debug, Clone)]
pub(super) struct Settings {
    pub(super) group_wait: Duration,
    pub(super) group_interval: Duration,
    pub(super) retry_min: Duration,
    pub(super) retry_max: Duration,
    pub(super) dashboard_url: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        let base = Notifications::default();
        Settings {
            group_wait: base.group_wait,
            group_interval: base.group_interval,
            retry_min: base.retry_min,
            retry_max: base.retry_max,
            dashboard_url: base.dashboard_url,
        }
    }
}

fn settings(diag: &mut Diag<'_>, value: &Spanned<DeValue<'_>>) -> Result<Settings, Reported> {
    let base = Notifications::default();
    let f = value::table::<notify::Table>(diag, value, Scope::Any, "notify")?;
    let group_wait = f
        .get(notify::GROUP_WAIT)?
        .map_or(base.group_wait, |at| at.value);
    let group_interval = match f.get(notify::GROUP_INTERVAL)? {
        Some(at) if at.value.is_zero() => {
            diag.error(
                &at.span,
                notify::GROUP_INTERVAL.field("notify"),
                ZERO_INTERVAL,
            );
            return Err(Reported);
        }
        Some(at) => at.value,
        None => base.group_interval,
    };
    let dashboard_url = f
        .get(notify::DASHBOARD_URL)?
        .map(|at| at.value.trim_end_matches('/').to_owned());
    let min = f.get(notify::RETRY_MIN)?;
    let max = f.get(notify::RETRY_MAX)?;
    let retry_min = min.as_ref().map_or(base.retry_min, |at| at.value);
    let retry_max = max.as_ref().map_or(base.retry_max, |at| at.value);
    if let Some(at) = min.as_ref().filter(|at| at.value.is_zero()) {
        diag.error(
            &at.span,
            notify::RETRY_MIN.field("notify"),
            "is zero; a receiver that is down would be hammered: wait at least \"100ms\"",
        );
        return Err(Reported);
    }
    if retry_max < retry_min {
        let span = max.or(min).map_or(f.span.clone(), |at| at.span);
        diag.error(
            &span,
            notify::RETRY_MAX.field("notify"),
            format!(
                "retry_max ({}) is shorter than retry_min ({}); make retry_max at least retry_min",
                humantime::format_duration(retry_max),
                humantime::format_duration(retry_min)
            ),
        );
        return Err(Reported);
    }
    Ok(Settings {
        group_wait,
        group_interval,
        retry_min,
        retry_max,
        dashboard_url,
    })
}

/// Why `group_interval` may not be zero.
pub(super) const ZERO_INTERVAL: &str =
    "is zero; a changed group would be notified on every change: write \"5m\", say";

/// The string id of a table item, for its label: `channel[1] ("ops")`. `id` is the table's
/// id key, looked at before the table is walked.
pub(super) fn label<S, T>(
    kind: &str,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    id: TypedKey<S, T>,
) -> String {
    let id = match value.get_ref() {
        DeValue::Table(table) => table.get(id.name()).and_then(|id| match id.get_ref() {
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

/// Names a list may use: in order, for "did you mean" and "known: …", and as a set, so that
/// a rule naming many of 100,000 target ids does not scan them all for each name.
pub(super) struct Names<'a> {
    list: Vec<&'a str>,
    set: HashSet<&'a str>,
}

impl<'a> Names<'a> {
    pub(super) fn new(list: Vec<&'a str>) -> Self {
        let set = list.iter().copied().collect();
        Names { list, set }
    }
}

/// Reads a list of names that must each be one of `known`.
pub(super) fn names_in<S: Section>(
    diag: &mut Diag<'_>,
    f: &Fields<S>,
    key: TypedKey<S, ty::List>,
    path: &str,
    what: &str,
    known: &Names<'_>,
) -> Result<Vec<String>, Reported> {
    let Some(list) = f.get(key)? else {
        return Ok(Vec::new());
    };
    let mut bad = false;
    for item in &list.value {
        if !known.set.contains(item.value.as_str()) {
            let known = &known.list;
            let hint = match suggest(&item.value, known.iter().copied()) {
                Some(close) => format!("did you mean {close:?}?"),
                None if known.is_empty() => format!("no {what} is configured"),
                None => format!("known: {}", known.join(", ")),
            };
            diag.error(
                &item.span,
                key.field(path),
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
pub(super) struct Known<'a> {
    pub(super) ids: Names<'a>,
    pub(super) groups: Names<'a>,
}

impl<'a> Known<'a> {
    pub(super) fn of(targets: &'a [(String, Option<String>)]) -> Self {
        let ids = targets.iter().map(|(id, _)| id.as_str()).collect();
        let mut groups: Vec<&str> = targets.iter().filter_map(|(_, g)| g.as_deref()).collect();
        groups.sort_unstable();
        groups.dedup();
        Known {
            ids: Names::new(ids),
            groups: Names::new(groups),
        }
    }
}
