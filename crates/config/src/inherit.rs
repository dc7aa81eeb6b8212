//! Merging `[defaults]` into a target, and the checks that compare keys of one table: the
//! schedule (`0 < timeout <= interval_changing <= interval <= interval_down`, jitter below
//! the interval) and the thresholds (through the core's own `Thresholds::validate`).
//!
//! A value inherited from `[defaults]` is checked where it was written: a problem of
//! `[defaults]` alone is reported once, at `[defaults]`, rather than once per target; a
//! problem that only shows against a target's own keys is reported at the target, saying
//! where the other value came from.
//!
//! Not here: reading single values (`value`) or kind-specific keys (`kinds`).

use std::time::Duration;

use humantime::format_duration;
use vitals_core::machine::{ThresholdError, Thresholds};

use super::error::{Diag, Span};
use super::fields::Fields;
use super::keys::{self, HoldsDefaults, TypedKey, defaults as key};
use super::model::{Cadence, defaults};
use super::val::{Pick, Reported};

/// Where a setting came from, so that each problem is reported once, where it was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Builtin,
    Defaults,
    Target,
}

/// A setting's value and where it came from.
#[derive(Debug, Clone)]
struct Src<T> {
    value: T,
    origin: Origin,
    span: Option<Span>,
}

/// The table being built (`own`, written at `here`) over the one it inherits from. Keys are
/// named as `[defaults]`' (`defaults::INTERVAL`), which every table here holds.
pub(super) struct Layers<'a, S> {
    own: &'a Fields<S>,
    here: Origin,
    path: &'a str,
    inherited: Option<&'a Fields<key::Table>>,
}

/// A key of `[defaults]`.
type Key<T> = TypedKey<key::Table, T>;

impl<'a> Layers<'a, key::Table> {
    /// `[defaults]` itself, over the built-in defaults.
    pub(super) fn defaults(own: &'a Fields<key::Table>) -> Self {
        Layers {
            own,
            here: Origin::Defaults,
            path: "defaults",
            inherited: None,
        }
    }
}

impl<'a, S: HoldsDefaults> Layers<'a, S> {
    /// A target or pool (`path` names it in messages) over `[defaults]`.
    pub(super) fn target(
        own: &'a Fields<S>,
        path: &'a str,
        defaults: &'a Fields<key::Table>,
    ) -> Self {
        Layers {
            own,
            here: Origin::Target,
            path,
            inherited: Some(defaults),
        }
    }

    /// Whether this table itself sets `key`.
    fn sets<T>(&self, key: Key<T>) -> bool {
        self.own.has(key.within::<S>())
    }

    fn pick<T: Pick>(&self, key: Key<T>) -> Result<Option<Src<T::Out>>, Reported> {
        if let Some(at) = self.own.get(key.within::<S>())? {
            return Ok(Some(Src {
                value: at.value,
                origin: self.here,
                span: Some(at.span),
            }));
        }
        if let Some(inherited) = self.inherited
            && let Some(at) = inherited.get(key)?
        {
            return Ok(Some(Src {
                value: at.value,
                origin: Origin::Defaults,
                span: Some(at.span),
            }));
        }
        Ok(None)
    }

    fn pick_or<T: Pick>(&self, key: Key<T>, builtin: T::Out) -> Result<Src<T::Out>, Reported> {
        Ok(self.pick(key)?.unwrap_or(Src {
            value: builtin,
            origin: Origin::Builtin,
            span: None,
        }))
    }

    /// " (from [defaults])" or " (the default)" when `src` was not written here.
    fn note<T>(&self, src: &Src<T>) -> &'static str {
        match src.origin {
            _ if src.origin == self.here => "",
            Origin::Builtin => " (the default)",
            Origin::Defaults => " (from [defaults])",
            Origin::Target => "",
        }
    }

    fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }
}

/// The schedule in `layers`, checked: `0 < timeout <= interval_changing <= interval <=
/// interval_down`, `jitter < interval`. Values inherited from `[defaults]` for
/// `interval_changing` and `interval_down` are clamped into range rather than refused: they
/// are "faster while changing" and "slower while down" by definition.
pub(super) fn schedule<S: HoldsDefaults>(
    diag: &mut Diag<'_>,
    layers: &Layers<'_, S>,
) -> Result<Cadence, Reported> {
    let interval = layers.pick_or(key::INTERVAL, defaults::INTERVAL);
    let timeout = layers.pick(key::TIMEOUT);
    let jitter = layers.pick(key::JITTER);
    let changing = layers.pick(key::INTERVAL_CHANGING);
    let down = layers.pick(key::INTERVAL_DOWN);
    // Without interval and timeout nothing can be compared; a bad jitter or per-state
    // interval only skips its own comparisons.
    let interval = interval?;
    // The built-in timeout fits a short interval rather than being an error against it.
    let timeout = timeout?.unwrap_or(Src {
        value: defaults::TIMEOUT.min(interval.value),
        origin: Origin::Builtin,
        span: None,
    });
    let mut failed = jitter.is_err() || changing.is_err() || down.is_err();
    let (jitter, changing, down) = (
        jitter.unwrap_or(None),
        changing.unwrap_or(None),
        down.unwrap_or(None),
    );
    let fmt = |d: Duration| format_duration(d).to_string();
    // Reports a problem with `blame` if it was written here; a problem of `[defaults]` alone
    // was reported there already.
    let mut report = |blame: &Src<Duration>, key: Key<keys::ty::Duration>, message: String| {
        if blame.origin == layers.here
            && let Some(span) = &blame.span
        {
            diag.error(span, layers.field(key.name()), message);
        }
    };

    if interval.value.is_zero() {
        report(
            &interval,
            key::INTERVAL,
            "is zero; a target needs a positive interval like \"30s\"".into(),
        );
        return Err(Reported);
    }
    if timeout.value.is_zero() {
        report(
            &timeout,
            key::TIMEOUT,
            "is zero; a check needs time to run: set it like \"10s\"".into(),
        );
        return Err(Reported);
    }
    if timeout.value > interval.value {
        let (t, i) = (fmt(timeout.value), fmt(interval.value));
        if timeout.origin == layers.here {
            let note = layers.note(&interval);
            report(
                &timeout,
                key::TIMEOUT,
                format!(
                    "{t} is longer than interval {i}{note}; a check must finish before the next one starts"
                ),
            )
        } else {
            let note = layers.note(&timeout);
            report(
                &interval,
                key::INTERVAL,
                format!(
                    "{i} is shorter than timeout {t}{note}; a check must finish before the next one starts: set a timeout of at most {i} too"
                ),
            )
        };
        failed = true;
    }
    let jitter_value = match jitter {
        Some(jitter) if jitter.value >= interval.value => {
            let (j, i) = (fmt(jitter.value), fmt(interval.value));
            if jitter.origin == layers.here {
                let note = layers.note(&interval);
                report(
                    &jitter,
                    key::JITTER,
                    format!(
                        "{j} is not shorter than interval {i}{note}; jitter delays each run by up to this much, so keep it well below the interval"
                    ),
                )
            } else {
                let note = layers.note(&jitter);
                report(
                    &interval,
                    key::INTERVAL,
                    format!("{i} is not longer than jitter {j}{note}; set a smaller jitter too"),
                )
            };
            failed = true;
            jitter.value
        }
        Some(jitter) => jitter.value,
        None => interval.value / 10,
    };
    let changing_value = match changing {
        Some(c) if c.origin == layers.here => {
            let (cv, note_i, note_t) =
                (fmt(c.value), layers.note(&interval), layers.note(&timeout));
            if c.value > interval.value {
                let i = fmt(interval.value);
                report(
                    &c,
                    key::INTERVAL_CHANGING,
                    format!(
                        "{cv} is longer than interval {i}{note_i}; it is the faster interval used while the state changes"
                    ),
                );
                failed = true;
            } else if c.value < timeout.value {
                let t = fmt(timeout.value);
                report(
                    &c,
                    key::INTERVAL_CHANGING,
                    format!(
                        "{cv} is shorter than timeout {t}{note_t}; a check must finish before the next one starts"
                    ),
                );
                failed = true;
            }
            c.value
        }
        Some(inherited) => inherited.value.min(interval.value).max(timeout.value),
        None => interval
            .value
            .min(defaults::INTERVAL_CHANGING)
            .max(timeout.value),
    };
    let down_value = match down {
        Some(d) if d.origin == layers.here => {
            if d.value < interval.value {
                let (dv, i, note) = (fmt(d.value), fmt(interval.value), layers.note(&interval));
                report(
                    &d,
                    key::INTERVAL_DOWN,
                    format!(
                        "{dv} is shorter than interval {i}{note}; it is the slower interval used while a target is down"
                    ),
                );
                failed = true;
            }
            d.value
        }
        Some(inherited) => inherited.value.max(interval.value),
        None => interval.value.max(defaults::INTERVAL_DOWN),
    };
    if failed {
        return Err(Reported);
    }
    Ok(Cadence {
        interval: interval.value,
        timeout: timeout.value,
        jitter: jitter_value,
        interval_changing: changing_value,
        interval_down: down_value,
    })
}

/// The thresholds in `layers`, checked by the core's own `Thresholds::validate`, whose error
/// is placed on the key it names (or the key inside an inline table).
/// On failure, also returns the core's error (if validation was reached), so that
/// `[defaults]` can tell targets which error is already reported.
pub(super) fn thresholds<S: HoldsDefaults>(
    diag: &mut Diag<'_>,
    layers: &Layers<'_, S>,
    inherited_error: Option<&ThresholdError>,
) -> Result<Thresholds, Option<ThresholdError>> {
    let base = Thresholds::default();
    let fall = layers.pick_or(key::FALL, base.fall);
    let rise = layers.pick_or(key::RISE, base.rise);
    let down_after = layers.pick_or(key::DOWN_AFTER, base.down_after);
    let window = layers.pick(key::FAILURES_IN_WINDOW);
    let flap = layers.pick(key::FLAP);
    let picked = (|| Ok::<_, Reported>((fall?, rise?, down_after?, window?, flap?)))();
    let Ok((fall, rise, down_after, window, flap)) = picked else {
        return Err(None);
    };
    let thresholds = Thresholds {
        fall: fall.value,
        rise: rise.value,
        down_after: down_after.value,
        window: window.as_ref().map(|w| w.value.0),
        flap: flap.as_ref().map_or(base.flap, |f| f.value.0),
    };
    let Err(error) = thresholds.validate() else {
        return Ok(thresholds);
    };
    // The core names the field it blames by string ("window.failures"): the one lookup by
    // name here, among the threshold keys.
    let (name, sub) = match error.field.split_once('.') {
        Some(("window", sub)) => (key::FAILURES_IN_WINDOW.name(), Some(sub)),
        Some((name, sub)) => (name, Some(sub)),
        None => (error.field, None),
    };
    let Some(blamed) = keys::THRESHOLD_KEYS
        .into_iter()
        .find(|key| key.name() == name)
    else {
        // A field the threshold keys do not know (the core grew one): still reported.
        diag.error(&layers.own.span, layers.field(name), error.message.clone());
        return Err(Some(error));
    };
    let written_here = layers.sets(blamed);
    let own_sets_any = keys::THRESHOLD_KEYS.iter().any(|&k| layers.sets(k));
    if !(written_here || own_sets_any && inherited_error != Some(&error)) {
        // Nothing was written here, or what was inherited is wrong on its own: reported
        // where it was written.
        return Err(Some(error));
    }
    let message = error.message.replace("window.", "failures_in_window.");
    let sub_span = |spans: &[(&'static str, Span)]| {
        sub.and_then(|sub| {
            spans
                .iter()
                .find(|(name, _)| *name == sub)
                .map(|(_, span)| span.clone())
        })
    };
    let key = blamed.name();
    let (field, span, message) = if written_here {
        let inner = if blamed == key::FAILURES_IN_WINDOW.untyped() {
            window.as_ref().and_then(|w| sub_span(&w.value.1))
        } else if blamed == key::FLAP.untyped() {
            flap.as_ref().and_then(|f| sub_span(&f.value.1))
        } else {
            None
        };
        let field = match (&inner, sub) {
            (Some(_), Some(sub)) => format!("{key}.{sub}"),
            _ => key.to_owned(),
        };
        let span = inner
            .or_else(|| layers.own.span(blamed.within::<S>()))
            .unwrap_or(layers.own.span.clone());
        (field, span, message)
    } else {
        // The key named by the error comes from [defaults] or the built-in defaults, and
        // clashes with one this target sets: point at the first one it sets.
        let span = keys::THRESHOLD_KEYS
            .iter()
            .find_map(|k| layers.own.key_span(k.within::<S>()))
            .unwrap_or(layers.own.span.clone());
        let origin = if layers.inherited.is_some_and(|d| d.has(blamed)) {
            "[defaults]"
        } else {
            "the built-in defaults"
        };
        (
            key.to_owned(),
            span,
            format!("{message} ({key} comes from {origin}; set it on this target)"),
        )
    };
    diag.error(&span, layers.field(&field), message);
    Err(Some(error))
}
