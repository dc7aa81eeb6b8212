//! How values are encoded in the database, in one place.
//!
//! Times are unix milliseconds (`INTEGER`), durations are microseconds (`INTEGER`), a check's
//! kind is a small integer (`0` pass, `1` warn, `2` fail, `3` timeout), and ping kinds are
//! their names. What this is not: SQL. Every function here is pure, and every decode of a
//! value read from the file checks it instead of trusting it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vitals_core::Kind;
use vitals_core::machine::State;

use super::{PingKind, StoreError, TimelineState};

/// A time as unix milliseconds; `field` names it in the error.
pub(crate) fn millis(t: SystemTime, field: &'static str) -> Result<i64, StoreError> {
    let since = t.duration_since(UNIX_EPOCH).map_err(|_| StoreError::Time {
        field,
        problem: "before 1970-01-01",
    })?;
    i64::try_from(since.as_millis()).map_err(|_| StoreError::Time {
        field,
        problem: "too far in the future",
    })
}

/// The inverse of [`millis`], for values read back from the file.
pub(crate) fn time(ms: i64, column: &'static str) -> Result<SystemTime, StoreError> {
    u64::try_from(ms)
        .ok()
        .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        .ok_or_else(|| StoreError::Corrupt {
            what: format!("{column} = {ms}, not a time after 1970"),
        })
}

/// A duration as microseconds. Durations beyond 292,000 years saturate: nothing measured by
/// a monitor gets there, and saturating beats refusing a whole batch.
pub(crate) fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The inverse of [`micros`].
pub(crate) fn duration(us: i64, column: &'static str) -> Result<Duration, StoreError> {
    u64::try_from(us)
        .map(Duration::from_micros)
        .map_err(|_| StoreError::Corrupt {
            what: format!("{column} = {us}, a negative duration"),
        })
}

/// A stored state name, read back from `column`.
pub(crate) fn timeline_state(
    name: &str,
    column: &'static str,
) -> Result<TimelineState, StoreError> {
    TimelineState::parse(name).ok_or_else(|| StoreError::Corrupt {
        what: format!("{column} = {name:?}, not a state vitals writes"),
    })
}

/// A judged state (the saved state of a target), read back from `column`.
pub(crate) fn state(name: &str, column: &'static str) -> Result<State, StoreError> {
    match timeline_state(name, column)? {
        TimelineState::Judged(state) => Ok(state),
        span => Err(StoreError::Corrupt {
            what: format!("{column} = {span:?}, a span, not a judged state"),
        }),
    }
}

pub(crate) fn kind_code(kind: Kind) -> i64 {
    match kind {
        Kind::Pass => 0,
        Kind::Warn => 1,
        Kind::Fail => 2,
        Kind::Timeout => 3,
    }
}

/// Codes at or above this count as failures in rollups (`fail`, `timeout`).
pub(crate) const FIRST_FAILURE_CODE: i64 = 2;

pub(crate) fn kind(code: i64) -> Result<Kind, StoreError> {
    match code {
        0 => Ok(Kind::Pass),
        1 => Ok(Kind::Warn),
        2 => Ok(Kind::Fail),
        3 => Ok(Kind::Timeout),
        other => Err(StoreError::Corrupt {
            what: format!("results.kind = {other} (known: 0 to 3)"),
        }),
    }
}

/// A ping kind as `(name, exit status)`.
pub(crate) fn ping_code(kind: PingKind) -> (&'static str, Option<i64>) {
    match kind {
        PingKind::Exit(code) => ("exit", Some(i64::from(code))),
        other => (other.as_str(), None),
    }
}

pub(crate) fn ping_kind(name: &str, exit: Option<i64>) -> Result<PingKind, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: format!("pings.kind = {name:?} with exit status {exit:?}"),
    };
    match (name, exit) {
        ("start", None) => Ok(PingKind::Start),
        ("success", None) => Ok(PingKind::Success),
        ("fail", None) => Ok(PingKind::Fail),
        ("log", None) => Ok(PingKind::Log),
        ("exited", None) => Ok(PingKind::Exited),
        ("exit", Some(code)) => u8::try_from(code)
            .map(PingKind::Exit)
            .map_err(|_| corrupt()),
        _ => Err(corrupt()),
    }
}

/// The start of the bucket of width `width` ms that holds `ms`.
pub(crate) fn floor(ms: i64, width: i64) -> i64 {
    ms.div_euclid(width) * width
}

pub(crate) fn target_name<'a>(name: &'a str, what: &'static str) -> Result<&'a str, StoreError> {
    if name.is_empty() {
        Err(StoreError::EmptyTarget { what })
    } else {
        Ok(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_and_refuse_the_unrepresentable() {
        let t = UNIX_EPOCH + Duration::from_millis(1_764_000_000_123);
        assert_eq!(time(millis(t, "t").unwrap(), "c").unwrap(), t);
        assert!(matches!(
            millis(UNIX_EPOCH - Duration::from_secs(1), "t"),
            Err(StoreError::Time { .. })
        ));
        assert!(matches!(time(-1, "c"), Err(StoreError::Corrupt { .. })));
    }

    #[test]
    fn kinds_and_ping_kinds_round_trip() {
        for k in Kind::ALL {
            assert_eq!(kind(kind_code(k)).unwrap(), k);
        }
        assert!(kind(4).is_err());
        for p in [
            PingKind::Start,
            PingKind::Success,
            PingKind::Fail,
            PingKind::Log,
            PingKind::Exit(0),
            PingKind::Exit(255),
            PingKind::Exited,
        ] {
            let (name, exit) = ping_code(p);
            assert_eq!(ping_kind(name, exit).unwrap(), p);
        }
        assert!(ping_kind("exit", Some(256)).is_err());
        assert!(ping_kind("start", Some(1)).is_err());
    }

    #[test]
    fn floor_aligns_to_the_bucket() {
        assert_eq!(floor(125_000, 60_000), 120_000);
        assert_eq!(floor(120_000, 60_000), 120_000);
        assert_eq!(micros(Duration::MAX), i64::MAX);
    }
}
