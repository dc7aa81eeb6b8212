//! Values that are lists or flat tables of strings: lists of strings (with each entry's
//! span), commands, HTTP headers. Each reports its own errors, under the field of the entry
//! that is wrong. They hold no table with keys of their own, so reading them walks nothing.
//!
//! Not here: single values (`value`), tables with keys (`compound`).

use toml::Spanned;
use toml::de::DeValue;

use super::error::{Diag, Span};
use super::fields::describe;
use super::val::{At, Reported, Val};

/// A list of non-empty strings, each with its span (depends_on errors point at one entry).
/// A `command` must have at least the program.
pub(super) fn list(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
    command: bool,
) -> Result<Vec<At<String>>, Reported> {
    fn fail(diag: &mut Diag<'_>, span: &Span, field: &str, message: String) -> Reported {
        diag.error(span, field, message);
        Reported
    }
    let items = match value.get_ref() {
        DeValue::Array(items) => items,
        DeValue::String(s) if command => {
            let words: Vec<String> = s.split_whitespace().map(|w| format!("{w:?}")).collect();
            let message = format!(
                "command is a list, the program then its arguments (no shell runs it): write [{}]",
                words.join(", ")
            );
            return Err(fail(diag, &value.span(), field, message));
        }
        DeValue::String(s) => {
            let message = format!("expected a list of strings; write [{s:?}]");
            return Err(fail(diag, &value.span(), field, message));
        }
        _ => {
            let message = format!(
                "expected a list of strings, found {}",
                describe(diag, value)
            );
            return Err(fail(diag, &value.span(), field, message));
        }
    };
    let mut out = Vec::new();
    let mut failed = false;
    for (i, item) in items.iter().enumerate() {
        let item_field = format!("{field}[{i}]");
        match item.get_ref() {
            DeValue::String(s) if !s.trim().is_empty() => out.push(At {
                value: s.to_string(),
                span: item.span(),
            }),
            DeValue::String(_) => {
                fail(
                    diag,
                    &item.span(),
                    &item_field,
                    "is empty; remove it or give it a value".into(),
                );
                failed = true;
            }
            _ => {
                let message = format!("expected a string, found {}", describe(diag, item));
                fail(diag, &item.span(), &item_field, message);
                failed = true;
            }
        }
    }
    if failed {
        return Err(Reported);
    }
    if command && out.is_empty() {
        let message = "is empty; give the program and its arguments, like [\"/usr/bin/check_thing\", \"-w\", \"5\"]";
        return Err(fail(diag, &value.span(), field, message.into()));
    }
    Ok(out)
}

pub(super) fn headers(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    let DeValue::Table(table) = value.get_ref() else {
        let found = describe(diag, value);
        diag.error(
            &value.span(),
            field,
            format!("expected a table of header names to values, like {{ Authorization = \"Bearer …\" }}, found {found}"),
        );
        return Err(Reported);
    };
    let mut out = Vec::new();
    let mut failed = false;
    for (name, v) in table.iter() {
        let name_text = name.get_ref().to_string();
        let field = format!("{field}.{name_text}");
        if http::HeaderName::from_bytes(name_text.as_bytes()).is_err() {
            diag.error(
                &name.span(),
                &field,
                format!("{name_text:?} is not a header name: letters, digits and '-', like \"X-Api-Key\""),
            );
            failed = true;
            continue;
        }
        match v.get_ref() {
            DeValue::String(s) if http::HeaderValue::from_str(s).is_ok() => {
                out.push((name_text, s.to_string()));
            }
            DeValue::String(_) => {
                diag.error(&v.span(), &field, "a header value is visible ASCII and spaces, without newlines or control characters");
                failed = true;
            }
            _ => {
                let found = describe(diag, v);
                diag.error(
                    &v.span(),
                    &field,
                    format!("expected a string, found {found}"),
                );
                failed = true;
            }
        }
    }
    if failed {
        Err(Reported)
    } else {
        Ok(Val::Headers(out))
    }
}
