//! Values that are lists or tables: lists of strings (with each entry's span), commands,
//! HTTP headers, the window and flap rules, the detector. Each reports its own errors, under
//! the field of the entry or inner key that is wrong.
//!
//! Not here: single values (`value`), or what these mean together with other keys.

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;
use vitals_core::machine::{FlapRule, Thresholds, WindowRule};

use super::error::{Diag, Span};
use super::fields::{At, PhiTuning, Reported, Scope, Val, read_table, suggest};
use super::keys;
use super::value::describe;

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

/// `"3 of 10"` or `{ failures = 3, of_last = 10 }`.
pub(super) fn window(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    if let DeValue::String(s) = value.get_ref() {
        let words: Vec<&str> = s.split_whitespace().collect();
        if let [failures, "of", of_last] = words[..]
            && let (Ok(failures), Ok(of_last)) = (failures.parse(), of_last.parse())
        {
            return Ok(Val::Window(WindowRule { failures, of_last }, Vec::new()));
        }
        diag.error(
            &value.span(),
            field,
            format!("{s:?} is not a window rule; write \"3 of 10\" (3 failures among the last 10 checks)"),
        );
        return Err(Reported);
    }
    if !matches!(value.get_ref(), DeValue::Table(_)) {
        let found = describe(diag, value);
        diag.error(
            &value.span(),
            field,
            format!("expected \"3 of 10\" or {{ failures = 3, of_last = 10 }}, found {found}"),
        );
        return Err(Reported);
    }
    let fields = read_table(diag, value, keys::WINDOW, Scope::Any, field)?;
    let failures = fields.count("failures");
    let of_last = fields.count("of_last");
    for name in ["failures", "of_last"] {
        if !fields.has(name) {
            diag.error(
                &value.span(),
                format!("{field}.{name}"),
                format!("missing {name}; write {{ failures = 3, of_last = 10 }}"),
            );
        }
    }
    match (failures?, of_last?) {
        (Some(failures), Some(of_last)) => Ok(Val::Window(
            WindowRule {
                failures: failures.value,
                of_last: of_last.value,
            },
            vec![("failures", failures.span), ("of_last", of_last.span)],
        )),
        _ => Err(Reported),
    }
}

/// `{ transitions = 8, within = "10m" }` (either may be left out), or `false` to turn flap
/// detection off.
pub(super) fn flap(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    match value.get_ref() {
        DeValue::Boolean(false) => return Ok(Val::Flap(None, Vec::new())),
        DeValue::Table(_) => {}
        _ => {
            let found = describe(diag, value);
            diag.error(
                &value.span(),
                field,
                format!("expected {{ transitions = 8, within = \"10m\" }}, or false to turn flap detection off; found {found}"),
            );
            return Err(Reported);
        }
    }
    let fields = read_table(diag, value, keys::FLAP, Scope::Any, field)?;
    let default = Thresholds::default().flap.unwrap_or(FlapRule {
        transitions: 8,
        within: Duration::from_secs(600),
    });
    let transitions = fields.count("transitions");
    let within = fields.duration("within");
    let (transitions, within) = (transitions?, within?);
    let mut spans = Vec::new();
    spans.extend(
        transitions
            .as_ref()
            .map(|at| ("transitions", at.span.clone())),
    );
    spans.extend(within.as_ref().map(|at| ("within", at.span.clone())));
    Ok(Val::Flap(
        Some(FlapRule {
            transitions: transitions.map_or(default.transitions, |at| at.value),
            within: within.map_or(default.within, |at| at.value),
        }),
        spans,
    ))
}

/// `"deadline"`, `"phi"`, or `{ kind = "phi", threshold = 8, … }`.
pub(super) fn detector(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    let named = |diag: &mut Diag<'_>, name: &str, span| match name {
        "deadline" => Ok(None),
        "phi" => Ok(Some(PhiTuning::default())),
        other => {
            let hint = suggest(other, ["deadline", "phi"])
                .map_or_else(String::new, |c| format!("did you mean {c:?}? "));
            diag.error(
                span,
                field,
                format!("unknown detector {other:?}; {hint}use \"deadline\" or \"phi\""),
            );
            Err(Reported)
        }
    };
    match value.get_ref() {
        DeValue::String(s) => {
            return named(diag, s, &value.span()).map(|t| Val::Detector(t, Vec::new()));
        }
        DeValue::Table(_) => {}
        _ => {
            let found = describe(diag, value);
            diag.error(&value.span(), field, format!("expected \"deadline\", \"phi\" or {{ kind = \"phi\", threshold = 8 }}, found {found}"));
            return Err(Reported);
        }
    }
    let fields = read_table(diag, value, keys::DETECTOR, Scope::Any, field)?;
    if let Some(kind) = fields.str("kind")?
        && named(diag, &kind.value, &kind.span)?.is_none()
    {
        diag.error(
            &kind.span,
            format!("{field}.kind"),
            "the deadline detector takes no tuning; write detector = \"deadline\", or kind = \"phi\"",
        );
        return Err(Reported);
    }
    let threshold = fields.number("threshold");
    let max_samples = fields.count("max_samples");
    let min_std_dev = fields.duration("min_std_dev");
    let acceptable_pause = fields.duration("acceptable_pause");
    let mut spans = Vec::new();
    for name in [
        "threshold",
        "max_samples",
        "min_std_dev",
        "acceptable_pause",
    ] {
        spans.extend(fields.span(name).map(|span| (name, span)));
    }
    Ok(Val::Detector(
        Some(PhiTuning {
            threshold: threshold?.map(|at| at.value),
            max_samples: max_samples?.map(|at| at.value),
            min_std_dev: min_std_dev?.map(|at| at.value),
            acceptable_pause: acceptable_pause?.map(|at| at.value),
        }),
        spans,
    ))
}
