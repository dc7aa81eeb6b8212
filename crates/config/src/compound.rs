//! Values that are tables with keys of their own: the window and flap rules, the detector,
//! and (through `recovery`) a target's `recover`. Each reports its own errors, under the
//! field of the inner key that is wrong. [`read`] is the reader for tables that nest them
//! (`[defaults]`, targets, pools), [`table`] reads such a table.
//!
//! Not here: plain values and lists (`value`, `list`), or what these mean together with
//! other keys.

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;
use vitals_core::machine::{FlapRule, Thresholds, WindowRule};

use super::error::Diag;
use super::fields::{Fields, Scope, describe, read_table, suggest};
use super::keys::{Section, Ty, detector, flap, window};
use super::val::{PhiTuning, Reported, Val};
use super::{recovery, value};

/// Reads `value`, a table of `S` that may nest tables with keys of their own, against `S`'s
/// keys.
pub(super) fn table<S: Section>(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    scope: Scope,
    path: &str,
) -> Result<Fields<S>, Reported> {
    read_table(diag, value, scope, path, read)
}

/// Reads `value` as `ty`: the nested tables here, plain values through `value`.
fn read(
    diag: &mut Diag<'_>,
    ty: Ty,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    match ty {
        Ty::Window => self::window(diag, value, field),
        Ty::Flap => self::flap(diag, value, field),
        Ty::Detector => self::detector(diag, value, field),
        Ty::Recover => recovery::read(diag, value, field),
        _ => value::read(diag, ty, value, field),
    }
}

/// `"3 of 10"` or `{ failures = 3, of_last = 10 }`.
fn window(diag: &mut Diag<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<Val, Reported> {
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
    let fields = value::table::<window::Table>(diag, value, Scope::Any, field)?;
    let failures = fields.get(window::FAILURES);
    let of_last = fields.get(window::OF_LAST);
    for key in [window::FAILURES, window::OF_LAST] {
        if !fields.has(key) {
            diag.error(
                &value.span(),
                key.field(field),
                format!(
                    "missing {}; write {{ failures = 3, of_last = 10 }}",
                    key.name()
                ),
            );
        }
    }
    match (failures?, of_last?) {
        (Some(failures), Some(of_last)) => Ok(Val::Window(
            WindowRule {
                failures: failures.value,
                of_last: of_last.value,
            },
            vec![
                (window::FAILURES.name(), failures.span),
                (window::OF_LAST.name(), of_last.span),
            ],
        )),
        _ => Err(Reported),
    }
}

/// `{ transitions = 8, within = "10m" }` (either may be left out), or `false` to turn flap
/// detection off.
fn flap(diag: &mut Diag<'_>, value: &Spanned<DeValue<'_>>, field: &str) -> Result<Val, Reported> {
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
    let fields = value::table::<flap::Table>(diag, value, Scope::Any, field)?;
    let default = Thresholds::default().flap.unwrap_or(FlapRule {
        transitions: 8,
        within: Duration::from_secs(600),
    });
    let transitions = fields.get(flap::TRANSITIONS);
    let within = fields.get(flap::WITHIN);
    let (transitions, within) = (transitions?, within?);
    let mut spans = Vec::new();
    spans.extend(
        transitions
            .as_ref()
            .map(|at| (flap::TRANSITIONS.name(), at.span.clone())),
    );
    spans.extend(
        within
            .as_ref()
            .map(|at| (flap::WITHIN.name(), at.span.clone())),
    );
    Ok(Val::Flap(
        Some(FlapRule {
            transitions: transitions.map_or(default.transitions, |at| at.value),
            within: within.map_or(default.within, |at| at.value),
        }),
        spans,
    ))
}

/// `"deadline"`, `"phi"`, or `{ kind = "phi", threshold = 8, … }`.
fn detector(
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
    let fields = value::table::<detector::Table>(diag, value, Scope::Any, field)?;
    if let Some(kind) = fields.get(detector::KIND)?
        && named(diag, &kind.value, &kind.span)?.is_none()
    {
        diag.error(
            &kind.span,
            detector::KIND.field(field),
            "the deadline detector takes no tuning; write detector = \"deadline\", or kind = \"phi\"",
        );
        return Err(Reported);
    }
    let threshold = fields.get(detector::THRESHOLD);
    let max_samples = fields.get(detector::MAX_SAMPLES);
    let min_std_dev = fields.get(detector::MIN_STD_DEV);
    let acceptable_pause = fields.get(detector::ACCEPTABLE_PAUSE);
    let mut spans = Vec::new();
    for key in [
        detector::THRESHOLD.untyped(),
        detector::MAX_SAMPLES.untyped(),
        detector::MIN_STD_DEV.untyped(),
        detector::ACCEPTABLE_PAUSE.untyped(),
    ] {
        spans.extend(fields.span(key).map(|span| (key.name(), span)));
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
