//! The generic walk of one TOML table against a table's key list from `keys`: every key is
//! known, allowed for the target's kind, and of the right type, or it is reported. What
//! survives is a [`Fields`]: typed values with their spans, read back by typed key
//! (`f.get(target::TIMEOUT)`), never by a string.
//!
//! Not here: the meaning of any one key (`value` and `compound` read single values, `inherit`
//! and `kinds` compare keys). This file only knows "a key, a type, the kinds that accept it".
//! It does not read values either: the caller hands it a [`Reader`], so that reading a value
//! that is itself a table (`flap`, `recover`) can walk that table without a cycle between
//! this module and the readers.

use std::marker::PhantomData;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Diag, Span};
use super::keys::{Key, Kind, Kinds, Section, Ty, TypedKey};
use super::val::{At, Pick, Reported, Val};

/// Reads one value as a type, reporting what is wrong under the field it is given:
/// `value::read` for plain values, `compound::read` for tables that nest tables.
pub(super) type Reader =
    fn(&mut Diag<'_>, Ty, &Spanned<DeValue<'_>>, &str) -> Result<Val, Reported>;

#[derive(Debug)]
struct Entry {
    name: &'static str,
    key_span: Span,
    value_span: Span,
    /// `None` when the value was present but wrong (and reported).
    value: Option<Val>,
}

/// The keys of one table of section `S`, read.
#[derive(Debug)]
pub(super) struct Fields<S> {
    /// The table's span: its `[header]`, or the inline table.
    pub(super) span: Span,
    entries: Vec<Entry>,
    section: PhantomData<fn() -> S>,
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

impl<S: Section> Fields<S> {
    pub(super) fn empty(span: Span) -> Self {
        Fields {
            span,
            entries: Vec::new(),
            section: PhantomData,
        }
    }

    /// The entry of a key. Private: the names compared here come from typed keys, which
    /// only the declarations in `keys` make.
    fn entry(&self, name: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Whether the key was written, valid or not.
    pub(super) fn has<T>(&self, key: TypedKey<S, T>) -> bool {
        self.entry(key.name()).is_some()
    }

    /// Where the key's value was written.
    pub(super) fn span<T>(&self, key: TypedKey<S, T>) -> Option<Span> {
        self.entry(key.name()).map(|e| e.value_span.clone())
    }

    /// Where the key's value was written, or the table when it was not.
    pub(super) fn span_or_table<T>(&self, key: TypedKey<S, T>) -> Span {
        self.span(key).unwrap_or(self.span.clone())
    }

    /// Where the key itself was written.
    pub(super) fn key_span<T>(&self, key: TypedKey<S, T>) -> Option<Span> {
        self.entry(key.name()).map(|e| e.key_span.clone())
    }

    /// The key's value, of the type its declaration gives: `Ok(None)` when absent, `Err`
    /// when written but wrong (and reported).
    pub(super) fn get<T: Pick>(&self, key: TypedKey<S, T>) -> Result<Option<At<T::Out>>, Reported> {
        match self.entry(key.name()) {
            None => Ok(None),
            Some(Entry { value: None, .. }) => Err(Reported),
            // A value of another variant cannot happen (the walker read it as the declared
            // type); if it ever did, the key reads as absent rather than panicking on a
            // user's file.
            Some(Entry {
                value: Some(value),
                value_span,
                ..
            }) => Ok(T::pick(value).map(|value| At {
                value,
                span: value_span.clone(),
            })),
        }
    }
}

/// Reads `value`, which must be a table, against `S`'s keys, each value with `read`. `path`
/// names the table in messages (`server`, `target[2] ("api")`).
pub(super) fn read_table<S: Section>(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    scope: Scope,
    path: &str,
    read: Reader,
) -> Result<Fields<S>, Reported> {
    let DeValue::Table(table) = value.get_ref() else {
        diag.error(
            &value.span(),
            path,
            format!("expected a table, found {}", describe(diag, value)),
        );
        return Err(Reported);
    };
    let keys: std::borrow::Cow<'_, [Key]> = if S::INCLUDES.is_empty() {
        S::KEYS.into()
    } else {
        S::KEYS.iter().chain(S::INCLUDES).copied().collect()
    };
    Ok(read_entries(
        diag,
        table,
        value.span(),
        &keys,
        scope,
        path,
        read,
    ))
}

fn read_entries<S: Section>(
    diag: &mut Diag<'_>,
    table: &DeTable<'_>,
    span: Span,
    keys: &[Key],
    scope: Scope,
    path: &str,
    read: Reader,
) -> Fields<S> {
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
            read(diag, key.ty, value, &field).ok()
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

/// "integer 30", "a table": the found value, quoted when short, for type errors.
pub(super) fn describe(diag: &Diag<'_>, value: &Spanned<DeValue<'_>>) -> String {
    let text = diag.text(&value.span());
    let kind = match value.get_ref() {
        DeValue::String(_) => "string",
        DeValue::Integer(_) => "integer",
        DeValue::Float(_) => "number",
        DeValue::Boolean(_) => "boolean",
        DeValue::Datetime(_) => "date-time",
        DeValue::Array(_) => return "a list".into(),
        DeValue::Table(_) => return "a table".into(),
    };
    if text.is_empty() || text.chars().count() > 40 || text.contains('\n') {
        format!("a {kind}")
    } else {
        format!("{kind} {text}")
    }
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
/// edit distance of a third of its length (at least 1, at most 3), ignoring case. The first
/// of equally close candidates wins.
///
/// It is called once per unknown name against every target id, so it must stay cheap per
/// candidate: a candidate whose length alone puts it out of reach is skipped, and the
/// distance is only computed as far as it could still beat the best one so far.
pub(super) fn suggest<'c>(
    text: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let text: Vec<char> = text.to_lowercase().chars().collect();
    let mut bound = (text.len() / 3).clamp(1, 3);
    let mut best: Option<(usize, &str)> = None;
    let mut row = Vec::new();
    for candidate in candidates {
        let distance = if candidate.is_ascii() {
            if candidate.len().abs_diff(text.len()) > bound {
                continue;
            }
            let lower = candidate
                .bytes()
                .map(|b| char::from(b.to_ascii_lowercase()));
            bounded_distance(&text, lower, bound, &mut row)
        } else {
            let lower: Vec<char> = candidate.to_lowercase().chars().collect();
            if lower.len().abs_diff(text.len()) > bound {
                continue;
            }
            bounded_distance(&text, lower.into_iter(), bound, &mut row)
        };
        if let Some(distance) = distance {
            best = Some((distance, candidate));
            if distance == 0 {
                break;
            }
            // Only a strictly closer candidate replaces this one.
            bound = distance - 1;
        }
    }
    best.map(|(_, candidate)| candidate)
}

/// The Levenshtein distance in characters between `a` and `b`, if it is at most `bound`.
/// Gives up as soon as a whole row of the table exceeds `bound`: the distance can only grow
/// from there. `row` is scratch space, reused between calls.
fn bounded_distance(
    a: &[char],
    b: impl Iterator<Item = char>,
    bound: usize,
    row: &mut Vec<usize>,
) -> Option<usize> {
    row.clear();
    row.extend(0..=a.len());
    for (i, cb) in b.enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        let mut smallest = row[0];
        for (j, &ca) in a.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != cb));
            diagonal = above;
            smallest = smallest.min(row[j + 1]);
        }
        if smallest > bound {
            return None;
        }
    }
    row.last().copied().filter(|&distance| distance <= bound)
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

    fn distance(a: &str, b: &str, bound: usize) -> Option<usize> {
        let a: Vec<char> = a.chars().collect();
        bounded_distance(&a, b.chars(), bound, &mut Vec::new())
    }

    #[test]
    fn edit_distance_counts_characters() {
        assert_eq!(distance("", "abc", 3), Some(3));
        assert_eq!(distance("kitten", "sitting", 3), Some(3));
        assert_eq!(distance("zürich", "zurich", 3), Some(1));
        assert_eq!(distance("abc", "", 3), Some(3));
    }

    #[test]
    fn edit_distance_gives_up_past_its_bound() {
        assert_eq!(distance("kitten", "sitting", 2), None);
        assert_eq!(distance("hb-000001", "hb-000001", 0), Some(0));
        assert_eq!(distance("hb-000001", "hb-000002", 0), None);
        assert_eq!(distance("abcdef", "uvwxyz", 3), None);
    }

    #[test]
    fn the_first_of_equally_close_candidates_wins() {
        assert_eq!(
            suggest("api-1", ["api-2", "api-3", "api-1x"]),
            Some("api-2")
        );
        assert_eq!(
            suggest("api-1", ["api-2", "api-1x", "api-1"]),
            Some("api-1")
        );
        // Case is ignored on both sides, outside ASCII too.
        assert_eq!(suggest("ZÜRICH", ["zurich", "Zürich"]), Some("Zürich"));
    }
}
