//! A value as the walker read it: [`Val`], one variant per kind of Rust value, with [`At`]
//! (a value and its span) and [`Reported`] (a failure already told to the `Diag`). [`Pick`]
//! ties each value type of `keys::ty` to the variant it reads into and the Rust type it
//! returns, so that `fields.get(target::TIMEOUT)` is a `Duration`.
//!
//! Not here: reading values (`value`, `compound`), or walking tables (`fields`).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use vitals_core::machine::{FlapRule, WindowRule};

use super::error::Span;
use super::keys::{ValueType, ty};
use super::model::Recovery;

/// Marks a failure that has already been reported to the `Diag`: the caller stops building
/// that part, so one mistake does not cascade into several messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Reported;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct At<T> {
    pub(super) value: T,
    pub(super) span: Span,
}

/// Spans of the keys inside an inline table, so that a problem found later (by
/// `Thresholds::validate`, say) points at `flap.within` rather than at `flap`. The names are
/// the keys' (`window::FAILURES.name()`), matched against the names the core's errors give.
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
    Bool(bool),
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
    Recover(Box<Recovery>),
}

/// What a value type reads into: its Rust type, and how to take it out of a [`Val`].
pub(super) trait Pick: ValueType {
    type Out;

    /// The value, if `val` is of this type. A value of another variant cannot happen (the
    /// declaration fixes each key's type, and the walker reads it as that type).
    fn pick(val: &Val) -> Option<Self::Out>;
}

macro_rules! picks {
    ($($marker:ident: $t:ty = $pattern:pat => $value:expr;)*) => {$(
        impl Pick for ty::$marker {
            type Out = $t;

            fn pick(val: &Val) -> Option<$t> {
                match val {
                    $pattern => Some($value),
                    _ => None,
                }
            }
        }
    )*};
}

picks! {
    Str: String = Val::Str(s) => s.clone();
    Token: String = Val::Str(s) => s.clone();
    Path: String = Val::Str(s) => s.clone();
    Id: String = Val::Str(s) => s.clone();
    PingId: String = Val::Str(s) => s.clone();
    HttpUrl: String = Val::Str(s) => s.clone();
    PostgresUrl: String = Val::Str(s) => s.clone();
    RedisUrl: String = Val::Str(s) => s.clone();
    HostPort: String = Val::Str(s) => s.clone();
    ConfirmUrl: String = Val::Str(s) => s.clone();
    Method: String = Val::Str(s) => s.clone();
    Duration: Duration = Val::Duration(d) => *d;
    Count: u32 = Val::Count(n) => *n;
    Bytes: usize = Val::Bytes(n) => *n;
    Bool: bool = Val::Bool(b) => *b;
    Number: f64 = Val::Number(n) => *n;
    List: Vec<At<String>> = Val::List(items) => items.clone();
    Command: Vec<At<String>> = Val::List(items) => items.clone();
    SocketAddr: SocketAddr = Val::SocketAddr(a) => *a;
    Headers: Vec<(String, String)> = Val::Headers(h) => h.clone();
    StatusRange: RangeInclusive<u16> = Val::StatusRange(r) => r.clone();
    Json: serde_json::Value = Val::Json(j) => j.clone();
    Cron: (croner::Cron, String) = Val::Cron(c, text) => ((**c).clone(), text.clone());
    TimeZone: chrono_tz::Tz = Val::TimeZone(tz) => *tz;
    HexKey: Vec<u8> = Val::HexKey(k) => k.clone();
    Window: (WindowRule, SubSpans) = Val::Window(w, spans) => (*w, spans.clone());
    Flap: (Option<FlapRule>, SubSpans) = Val::Flap(f, spans) => (*f, spans.clone());
    Detector: (Option<PhiTuning>, SubSpans) = Val::Detector(d, spans) => (d.clone(), spans.clone());
    Recover: Recovery = Val::Recover(r) => (**r).clone();
}
