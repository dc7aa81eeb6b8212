//! The generic walk of one TOML table against a key list from `keys`: every key is known,
//! allowed for the target's kind, and of the right type, or it is reported. What survives is
//! a [`Fields`]: typed values with their spans, for `build` to assemble.
//!
//! Not here: the meaning of any one key (`value` and `compound` read single values, `inherit`
//! and `kinds` compare keys). This file only knows "a key, a type, the kinds that accept it".

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use vitals_core::machine::{FlapRule, WindowRule};

use super::error::{Diag, Span};
use super::keys::{Key, Kind, Kinds};
use super::value;

/// Marks a failure that has already been reported to the [`Diag`]: the caller stops
/// building that part, so one mistake does not cascade into several messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) span: Span,
}

/// Spans of the keys inside an inline table, so that a problem found later (by
/// `Thresholds::validate`, say) points at `flap.within` rather than at `flap`.
pub(super) type SubSpans = Vec<(&'static str, Span)>;

/// The tuning of a phi accrual detector as written; what is left out is filled in by `kinds`,
/// which knows the heartbeat's period and grace.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct PhiTuning {
    pub(super) threshold: Option<f64>,
    pub(super) max_samples: Option<u32>,
    pub(super) min_std_dev: Option<Duration>,
    pub(super) acceptable_pause: Option<Duration>,
}

/// A value read and checked on its own.
#[derive(Debug, Clone)]
pub(super) enum Val {
    Str(String),
    Duration(Duration),
    Count(u32),
    Bytes(usize),
    Number(f64),
    List(Vec<At<String>>),
    SocketAddr(SocketAddr),
    Headers(Vec<(String, String)>),
    StatusRange(RangeInclusive<u16>),
    Json(serde_json::Value),
    Cron(Box<croner::Cron>, String),
    TimeZone(chrono_tz::Tz),
    HexKey(Vec<u8>),
    Window(WindowRule, SubSpans),
    /// `None` when flap detection is turned off (`flap = false`).
    Flap(Option<FlapRule>, SubSpans),
    /// `None` for the deadline detector.
    Detector(Option<PhiTuning>, SubSpans),
    Recover(Box<super::recovery::Recovery>),
}

#[derive(Debug)]
struct Entry {
    name: &'static str,
    key_span: Span,
    value_span: Span,
    /// `None` when the value was present but wrong (and reported).
    value: Option<Val>,
}

/// The keys of one table, read.
#[derive(Debug)]
pub(super) struct Fields {
    /// The table's span: its `[header]`, or the inline table.
    pub(super) span: Span,
    entries: Vec<Entry>,
}

/// Which keys of a key list apply while reading a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scope {
    /// Not a target: every key in the list applies.
    Any,
    /// A target of this kind.
    Kind(Kind),
    /// A target whose kind is missing or wrong (already reported): only unknown keys are
    /// reported, since which keys belong cannot be told.
    UnknownKind,
}

impl Fields {
    pub(super) fn empty(span: Span) -> Self {
        Fields {
            span,
            entries: Vec::new(),
        }
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Whether the key was written, valid or not.
    pub(super) fn has(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Where the key's value was written.
    pub(super) fn span(&self, name: &str) -> Option<Span> {
        self.entry(name).map(|e| e.value_span.clone())
    }

    /// Where the key itself was written.
    pub(super) fn key_span(&self, name: &str) -> Option<Span> {
        self.entry(name).map(|e| e.key_span.clone())
    }

    /// The key's value: `Ok(None)` when absent, `Err` when written but wrong (reported).
    fn get(&self, name: &str) -> Result<Option<At<&Val>>, Reported> {
        match self.entry(name) {
            None => Ok(None),
            Some(Entry { value: None, .. }) => Err(Reported),
            Some(Entry {
                value: Some(value),
                value_span,
                ..
            }) => Ok(Some(At {
                value,
                span: value_span.clone(),
            })),
        }
    }

    fn typed<T>(
        &self,
        name: &str,
        pick: impl Fn(&Val) -> Option<T>,
    ) -> Result<Option<At<T>>, Reported> {
        // A value of another variant cannot happen (the key list fixes each key's type);
        // if the tables and this code ever disagree, the key reads as absent rather than
        // panicking on a user's file.
        Ok(self.get(name)?.and_then(|at| {
            pick(at.value).map(|value| At {
                value,
                span: at.span,
            })
        }))
    }
}

/// One typed getter per kind of value: `fields.duration("interval")` is the value if it was
/// written and is valid, `Ok(None)` if absent, `Err` if written but wrong (and reported).
macro_rules! getters {
    ($($method:ident: $t:ty = $pattern:pat => $value:expr;)*) => {
        impl Fields {
            $(pub(super) fn $method(&self, name: &str) -> Result<Option<At<$t>>, Reported> {
                self.typed(name, |v| match v {
                    $pattern => Some($value),
                    _ => None,
                })
            })*
        }
    };
}

getters! {
    str: String = Val::Str(s) => s.clone();
    duration: Duration = Val::Duration(d) => *d;
    count: u32 = Val::Count(n) => *n;
    bytes: usize = Val::Bytes(n) => *n;
    number: f64 = Val::Number(n) => *n;
    list: Vec<At<String>> = Val::List(items) => items.clone();
    socket_addr: SocketAddr = Val::SocketAddr(a) => *a;
    headers: Vec<(String, String)> = Val::Headers(h) => h.clone();
    status_range: RangeInclusive<u16> = Val::StatusRange(r) => r.clone();
    json: serde_json::Value = Val::Json(j) => j.clone();
    cron: (croner::Cron, String) = Val::Cron(c, text) => ((**c).clone(), text.clone());
    time_zone: chrono_tz::Tz = Val::TimeZone(tz) => *tz;
    hex_key: Vec<u8> = Val::HexKey(k) => k.clone();
    window: (WindowRule, SubSpans) = Val::Window(w, spans) => (*w, spans.clone());
    flap: (Option<FlapRule>, SubSpans) = Val::Flap(f, spans) => (*f, spans.clone());
    detector: (Option<PhiTuning>, SubSpans) = Val::Detector(d, spans) => (d.clone(), spans.clone());
    recover: super::recovery::Recovery = Val::Recover(r) => (**r).clone();
}

/// Reads `value`, which must be a table, against `keys`. `path` names the table in messages
/// (`server`, `target[2] ("api")`).
pub(super) fn read_table(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    keys: &[Key],
    scope: Scope,
    path: &str,
) -> Result<Fields, Reported> {
    let DeValue::Table(table) = value.get_ref() else {
        diag.error(
            &value.span(),
            path,
            format!("expected a table, found {}", value::describe(diag, value)),
        );
        return Err(Reported);
    };
    Ok(read_entries(diag, table, value.span(), keys, scope, path))
}

fn read_entries(
    diag: &mut Diag<'_>,
    table: &DeTable<'_>,
    span: Span,
    keys: &[Key],
    scope: Scope,
    path: &str,
) -> Fields {
    let mut fields = Fields::empty(span);
    for (name, value) in table.iter() {
        let field = format!("{path}.{}", name.get_ref());
        let Some(key) = find_key(diag, keys, scope, name, &field) else {
            continue;
        };
        let value_span = value.span();
        // With the kind unknown, the key's type is unknown too (`url` differs by kind).
        let read = if scope == Scope::UnknownKind && key.kinds.names().len() < Kind::ALL.len() {
            None
        } else {
            value::read(diag, key.ty, value, &field).ok()
        };
        fields.entries.push(Entry {
            name: key.name,
            key_span: name.span(),
            value_span,
            value: read,
        });
    }
    fields
}

/// The key entry for `name` in this scope; reports an unknown key or one that belongs to
/// other kinds.
fn find_key(
    diag: &mut Diag<'_>,
    keys: &[Key],
    scope: Scope,
    name: &Spanned<toml::de::DeString<'_>>,
    field: &str,
) -> Option<Key> {
    let text = name.get_ref().as_ref();
    let allowed = |key: &&Key| match scope {
        Scope::Kind(kind) => key.kinds.contains(kind),
        Scope::Any | Scope::UnknownKind => true,
    };
    if let Some(key) = keys.iter().filter(allowed).find(|key| key.name == text) {
        return Some(*key);
    }
    if let Scope::Kind(kind) = scope
        && keys.iter().any(|key| key.name == text)
    {
        let owners = keys
            .iter()
            .filter(|key| key.name == text)
            .fold(Kinds::default(), |all, key| all.union(key.kinds))
            .names();
        diag.error(
            &name.span(),
            field,
            format!(
                "`{text}` does not belong to {} {} target; it is for {} targets: remove it, or change `kind`",
                if kind == Kind::Http { "an" } else { "a" },
                kind.name(),
                join_or(&owners),
            ),
        );
        return None;
    }
    let candidates: Vec<&str> = keys.iter().filter(allowed).map(|key| key.name).collect();
    diag.error(&name.span(), field, unknown("key", text, &candidates));
    None
}

/// "unknown key "listn"; did you mean "listen"?", or the list of keys when none is close.
pub(super) fn unknown(what: &str, text: &str, candidates: &[&str]) -> String {
    match suggest(text, candidates.iter().copied()) {
        Some(close) => format!("unknown {what} `{text}`; did you mean `{close}`?"),
        None => {
            let mut known: Vec<&str> = candidates.to_vec();
            known.dedup();
            format!("unknown {what} `{text}`; known: {}", known.join(", "))
        }
    }
}

/// "a, b or c".
pub(super) fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The candidate closest to `text`, if it is close enough to be a typo of it: within an
/// edit distance of a third of its length (at least 1, at most 3), ignoring case.
pub(super) fn suggest<'c>(
    text: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let text = text.to_lowercase();
    let limit = (text.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|candidate| (edit_distance(&text, &candidate.to_lowercase()), candidate))
        .filter(|&(distance, _)| distance <= limit)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, candidate)| candidate)
}

/// Levenshtein distance in characters. A few lines do not warrant a crate.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_close_typos_only() {
        let keys = ["listen", "udp_listen", "data_dir", "interval", "timeout"];
        assert_eq!(suggest("listn", keys), Some("listen"));
        assert_eq!(suggest("Timeout", keys), Some("timeout"));
        assert_eq!(suggest("intervall", keys), Some("interval"));
        assert_eq!(suggest("datadir", keys), Some("data_dir"));
        assert_eq!(suggest("colour", keys), None);
        assert_eq!(suggest("", keys), None);
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("zürich", "zurich"), 1);
    }
}
