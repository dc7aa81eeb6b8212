//! Reading one TOML value as one [`Ty`]: durations, addresses, URLs, ids, cron expressions,
//! time zones, keys… Each check here needs the value alone; every message names the bad
//! input and how to write it instead.
//!
//! [`table`] reads a table whose values are all plain this way.
//!
//! Not here: tables nested in a value (`compound`), lists and headers (`list`), checks that
//! compare keys (timeout against interval) or targets (duplicate ids).

use std::net::{Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::error::Diag;
use super::fields::{Fields, Scope, describe, join_or, read_table, suggest};
use super::keys::{Section, Ty};
use super::list;
use super::val::{Reported, Val};

/// The longest duration accepted anywhere. Longer ones are typos ("30d" for "30s"), and
/// durations are added to instants, which would overflow somewhere near `Duration::MAX`.
const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// HTTP methods a health check may use. TRACE and CONNECT are no way to ask for health.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"];

/// Reads `value`, a table of `S` whose values are all plain (no table nested in it has keys
/// of its own), against `S`'s keys.
pub(super) fn table<S: Section>(
    diag: &mut Diag<'_>,
    value: &Spanned<DeValue<'_>>,
    scope: Scope,
    path: &str,
) -> Result<Fields<S>, Reported> {
    const {
        assert!(
            S::PLAIN,
            "a table with nested tables is read by compound::table"
        )
    };
    read_table(diag, value, scope, path, read)
}

/// Reads `value` as `ty`, a plain value, reporting what is wrong under `field`.
pub(super) fn read(
    diag: &mut Diag<'_>,
    ty: Ty,
    value: &Spanned<DeValue<'_>>,
    field: &str,
) -> Result<Val, Reported> {
    let span = value.span();
    let result = match ty {
        Ty::Str => string(value).and_then(non_empty).map(Val::Str),
        Ty::Path => string(value).and_then(non_empty).map(Val::Str),
        Ty::Token => string(value).and_then(token).map(Val::Str),
        Ty::Id => string(value).and_then(|s| id(&s).map(|()| Val::Str(s))),
        Ty::PingId => string(value).and_then(|s| ping_id(&s).map(|()| Val::Str(s))),
        Ty::HttpUrl => string(value).and_then(|s| http_url(&s).map(|()| Val::Str(s))),
        Ty::PostgresUrl => string(value).and_then(|s| {
            scheme_url(
                &s,
                &["postgres", "postgresql"],
                "postgres://monitor@127.0.0.1:5432/postgres",
            )
            .map(|()| Val::Str(s))
        }),
        Ty::RedisUrl => string(value).and_then(|s| {
            scheme_url(
                &s,
                &["redis", "rediss", "redis+unix", "unix"],
                "redis://127.0.0.1:6379",
            )
            .map(|()| Val::Str(s))
        }),
        Ty::HostPort => string(value).and_then(|s| host_port(&s).map(|()| Val::Str(s))),
        Ty::ConfirmUrl => string(value).and_then(|s| confirm_url(&s).map(|()| Val::Str(s))),
        Ty::Method => string(value).and_then(|s| method(&s)).map(Val::Str),
        Ty::SocketAddr => string(value)
            .and_then(|s| socket_addr(&s))
            .map(Val::SocketAddr),
        Ty::Duration => duration(value).map(Val::Duration),
        Ty::Count => integer(value, u64::from(u32::MAX))
            .map(|n| Val::Count(u32::try_from(n).unwrap_or(u32::MAX))),
        Ty::Bytes => {
            integer(value, u64::MAX).map(|n| Val::Bytes(usize::try_from(n).unwrap_or(usize::MAX)))
        }
        Ty::Bool => match value.get_ref() {
            DeValue::Boolean(b) => Ok(Val::Bool(*b)),
            _ => Err(Problem::Type("true or false")),
        },
        Ty::Number => number(value).map(Val::Number),
        Ty::StatusRange => status_range(value).map(Val::StatusRange),
        Ty::Json => json(value).map(Val::Json),
        Ty::Cron => string(value).and_then(|s| cron(&s).map(|c| Val::Cron(Box::new(c), s))),
        Ty::TimeZone => string(value).and_then(|s| time_zone(&s)).map(Val::TimeZone),
        Ty::HexKey => string(value).and_then(|s| hex_key(&s)).map(Val::HexKey),
        // Lists and headers report their own errors, under their own fields.
        Ty::List => return list::list(diag, value, field, false).map(Val::List),
        Ty::Command => return list::list(diag, value, field, true).map(Val::List),
        Ty::Headers => return list::headers(diag, value, field),
        // Tables with keys of their own are `compound`'s, and `table` only reads tables
        // without them (a check at compile time), so this is never reached.
        Ty::Window | Ty::Flap | Ty::Detector | Ty::Recover => Err(Problem::Value(
            "cannot be read here; this is a bug in vitals, please report it".into(),
        )),
    };
    result.map_err(|problem| {
        let message = match problem {
            Problem::Type(expected) => {
                format!("expected {expected}, found {}", describe(diag, value))
            }
            Problem::Value(message) => message,
        };
        diag.error(&span, field, message);
        Reported
    })
}

/// What went wrong with a single value.
enum Problem {
    /// The TOML type is wrong; says what was expected ("a duration like \"30s\"").
    Type(&'static str),
    /// The type is right, the value is not: the whole message.
    Value(String),
}

fn bad<T>(message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem::Value(message.into()))
}

fn string(value: &Spanned<DeValue<'_>>) -> Result<String, Problem> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        _ => Err(Problem::Type("a string")),
    }
}

fn non_empty(s: String) -> Result<String, Problem> {
    if s.trim().is_empty() {
        bad("is empty; remove the key or give it a value")
    } else {
        Ok(s)
    }
}

fn token(s: String) -> Result<String, Problem> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        return bad(format!(
            "contains {c:?}; a bearer token is visible ASCII without spaces (generate one with `openssl rand -hex 32`)"
        ));
    }
    let len = s.len();
    if len < 16 {
        return bad(format!(
            "is {len} characters; use at least 16 random characters (e.g. `openssl rand -hex 32`)"
        ));
    }
    Ok(s)
}

/// Target ids: `[a-z0-9][a-z0-9_.-]{0,63}`, so that they work in URLs, metric labels and
/// file names unchanged.
fn id(s: &str) -> Result<(), Problem> {
    let allowed =
        |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-');
    let first_ok = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if first_ok && s.len() <= 64 && s.chars().all(allowed) {
        return Ok(());
    }
    let hint: String = s
        .to_lowercase()
        .chars()
        .map(|c| if allowed(c) { c } else { '-' })
        .skip_while(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .take(64)
        .collect();
    let mut message = format!(
        "id {s:?} must be 1 to 64 characters of a-z, 0-9, '_', '.' and '-', starting with a letter or digit"
    );
    if !hint.is_empty() {
        message.push_str(&format!("; try {hint:?}"));
    }
    bad(message)
}

/// Ping ids: a UUID as healthchecks.io issues them, or a slug. '.' is allowed past the first
/// character (so that every target id is a valid ping id, and as the UDP protocol allows),
/// never first, so "." and ".." cannot reach a URL path.
fn ping_id(s: &str) -> Result<(), Problem> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !s.is_empty() && s.len() <= 64 && !s.starts_with('.') && s.chars().all(allowed) {
        Ok(())
    } else {
        bad(format!(
            "ping_id {s:?} must be a UUID or 1 to 64 characters of A-Z, a-z, 0-9, '_', '-' and '.' (not first), as in /ping/<ping_id>"
        ))
    }
}

fn http_url(s: &str) -> Result<(), Problem> {
    let Some((scheme, _)) = s.split_once("://") else {
        return bad(format!(
            "{s:?} has no scheme; write \"http://{s}\" (or https://)"
        ));
    };
    if scheme != "http" && scheme != "https" {
        return bad(format!(
            "{s:?} is not an http:// or https:// URL; this kind of target speaks HTTP"
        ));
    }
    match http::Uri::from_str(s) {
        Ok(uri) if uri.host().is_some_and(|h| !h.is_empty()) => Ok(()),
        Ok(_) => bad(format!(
            "{s:?} has no host; write it like \"http://127.0.0.1:8080/health\""
        )),
        Err(e) => bad(format!(
            "{s:?} is not a valid URL ({e}); write it like \"http://127.0.0.1:8080/health\""
        )),
    }
}

/// URLs handed to a driver (PostgreSQL, Redis), which parses the rest: the scheme is what
/// tells a URL meant for another kind of target.
fn scheme_url(s: &str, schemes: &[&str], example: &str) -> Result<(), Problem> {
    let scheme = s.split_once("://").map(|(scheme, _)| scheme);
    if scheme.is_some_and(|scheme| schemes.contains(&scheme)) {
        if s.chars().any(char::is_whitespace) {
            return bad(format!(
                "{s:?} contains whitespace; percent-encode it (%20)"
            ));
        }
        return Ok(());
    }
    let schemes: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
    let schemes: Vec<&str> = schemes.iter().map(String::as_str).collect();
    bad(format!(
        "{s:?} must start with {}; write it like {example:?}",
        join_or(&schemes)
    ))
}

/// `host:port`, with IPv6 addresses in brackets.
/// A heartbeat's `confirm`: `tcp://host:port` (a connect tells a gone process from a
/// stalled one), or an HTTP URL (any answer is alive).
fn confirm_url(s: &str) -> Result<(), Problem> {
    match s.split_once("://") {
        Some(("tcp", address)) => host_port(address).map_err(|problem| match problem {
            Problem::Value(message) => Problem::Value(format!("in {s:?}: {message}")),
            other => other,
        }),
        Some(("http" | "https", _)) => http_url(s),
        Some((scheme, _)) => bad(format!(
            "{scheme}:// cannot confirm a suspicion; write \"tcp://host:port\" (a port the process listens on) or an http:// URL"
        )),
        None => bad(format!(
            "{s:?} has no scheme; write \"tcp://{s}\" (a port the process listens on) or an http:// URL"
        )),
    }
}

fn host_port(s: &str) -> Result<(), Problem> {
    if s.contains("://") {
        return bad(format!(
            "{s:?} is an URL; address is a host and port without a scheme, like \"db.internal:5432\""
        ));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return bad(format!("{s:?} has no port; write it like \"{s}:5432\""));
    };
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok());
        if !ok {
            return bad(format!(
                "{host:?} is not an IPv6 address in brackets like \"[::1]\""
            ));
        }
    } else if host.contains(':') {
        return bad(format!(
            "write IPv6 addresses in brackets: \"[{host}]:{port}\""
        ));
    } else if host.is_empty()
        || !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
    {
        return bad(format!(
            "{host:?} is not a host name or IP address; write it like \"127.0.0.1:5432\""
        ));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(()),
        _ => bad(format!("port {port:?} must be a number from 1 to 65535")),
    }
}

fn method(s: &str) -> Result<String, Problem> {
    let upper = s.to_ascii_uppercase();
    if METHODS.contains(&upper.as_str()) {
        Ok(upper)
    } else {
        bad(format!("method {s:?} is not one of {}", METHODS.join(", ")))
    }
}

fn socket_addr(s: &str) -> Result<SocketAddr, Problem> {
    s.parse().or_else(|_| {
        bad(format!(
            "{s:?} is not an IP address and port; write it like \"127.0.0.1:7070\" or \"[::1]:7070\" (host names are not resolved here)"
        ))
    })
}

fn duration(value: &Spanned<DeValue<'_>>) -> Result<Duration, Problem> {
    let no_unit = |n: &str| {
        bad(format!(
            "{n} has no unit; write \"{n}s\" (or \"{n}ms\", \"{n}m\", \"{n}h\")"
        ))
    };
    match value.get_ref() {
        DeValue::Integer(n) => no_unit(n.as_str()),
        DeValue::Float(n) => no_unit(n.as_str()),
        DeValue::String(s) => {
            if s.trim().parse::<f64>().is_ok() {
                return no_unit(s.trim());
            }
            match humantime::parse_duration(s) {
                Ok(d) if d <= MAX_DURATION => Ok(d),
                Ok(_) => bad(format!(
                    "{s:?} is longer than 366 days; that is surely a typo"
                )),
                Err(e) => bad(format!(
                    "{s:?} is not a duration ({e}); write it like \"30s\", \"1m 30s\" or \"500ms\""
                )),
            }
        }
        _ => Err(Problem::Type("a duration like \"30s\"")),
    }
}

/// A whole number from 0 to `max`.
fn integer(value: &Spanned<DeValue<'_>>, max: u64) -> Result<u64, Problem> {
    let DeValue::Integer(n) = value.get_ref() else {
        return Err(Problem::Type("a whole number"));
    };
    match i128::from_str_radix(n.as_str(), n.radix()) {
        Ok(v) if v < 0 => bad(format!(
            "{v} is negative; write a whole number from 0 to {max}"
        )),
        Ok(v) => u64::try_from(v)
            .ok()
            .filter(|&v| v <= max)
            .map_or_else(|| bad(format!("{v} is too large; the most is {max}")), Ok),
        Err(_) => bad(format!("{n} is too large; the most is {max}")),
    }
}

fn number(value: &Spanned<DeValue<'_>>) -> Result<f64, Problem> {
    let parsed = match value.get_ref() {
        DeValue::Integer(n) => i128::from_str_radix(n.as_str(), n.radix())
            .ok()
            .map(|v| v as f64),
        DeValue::Float(n) => n.as_str().parse::<f64>().ok(),
        _ => return Err(Problem::Type("a number")),
    };
    match parsed {
        Some(v) if v.is_finite() => Ok(v),
        _ => bad("must be a finite number"),
    }
}

fn status_range(value: &Spanned<DeValue<'_>>) -> Result<std::ops::RangeInclusive<u16>, Problem> {
    let code = |v: i128| u16::try_from(v).ok().filter(|c| (100..=599).contains(c));
    let as_int = |v: &DeValue<'_>| match v {
        DeValue::Integer(n) => i128::from_str_radix(n.as_str(), n.radix()).ok(),
        _ => None,
    };
    let (low, high) = match value.get_ref() {
        DeValue::Integer(_) => {
            let v = as_int(value.get_ref()).unwrap_or(-1);
            (v, v)
        }
        DeValue::String(s) => {
            let (a, b) = s.split_once('-').unwrap_or((s, s));
            match (a.trim().parse::<i128>(), b.trim().parse::<i128>()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => {
                    return bad(format!(
                        "{s:?} is not a status range; write \"200-299\", 200 or [200, 299]"
                    ));
                }
            }
        }
        DeValue::Array(items) => match items
            .iter()
            .map(|i| as_int(i.get_ref()))
            .collect::<Vec<_>>()[..]
        {
            [Some(a), Some(b)] => (a, b),
            _ => return bad("a status range list has two codes, lowest and highest: [200, 299]"),
        },
        _ => return Err(Problem::Type("a status code or range like \"200-299\"")),
    };
    match (code(low), code(high)) {
        (Some(a), Some(b)) if a <= b => Ok(a..=b),
        (Some(_), Some(_)) => bad(format!(
            "range {low}-{high} is backwards; write {high}-{low}"
        )),
        _ => bad(format!(
            "status codes go from 100 to 599; {low}-{high} is outside"
        )),
    }
}

fn json(value: &Spanned<DeValue<'_>>) -> Result<serde_json::Value, Problem> {
    use serde_json::Value as J;
    Ok(match value.get_ref() {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(n) => match i128::from_str_radix(n.as_str(), n.radix()) {
            Ok(v) => i64::try_from(v)
                .map(J::from)
                .or_else(|_| u64::try_from(v).map(J::from))
                .or_else(|_| bad(format!("{v} does not fit in a JSON number")))?,
            Err(_) => return bad(format!("{n} does not fit in a JSON number")),
        },
        DeValue::Float(n) => {
            let v = n.as_str().parse::<f64>().unwrap_or(f64::NAN);
            serde_json::Number::from_f64(v).map(J::Number).map_or_else(
                || bad(format!("{n} has no JSON form; use a finite number")),
                Ok,
            )?
        }
        DeValue::Boolean(b) => J::Bool(*b),
        // JSON has no dates; services send them as strings.
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(items) => J::Array(items.iter().map(json).collect::<Result<_, _>>()?),
        DeValue::Table(table) => J::Object(
            table
                .iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), json(v)?)))
                .collect::<Result<_, Problem>>()?,
        ),
    })
}

fn cron(s: &str) -> Result<croner::Cron, Problem> {
    croner::Cron::from_str(s).or_else(|e| {
        let reason = lowercase(&e.to_string());
        bad(format!(
            "{s:?} is not a cron expression ({reason}); write five fields, minute hour day month weekday, like \"0 3 * * *\""
        ))
    })
}

/// A dependency's message in our style: "Invalid pattern: Pattern must…." becomes "invalid
/// pattern: pattern must…".
pub(super) fn lowercase(message: &str) -> String {
    let message = message.trim_end_matches('.');
    message
        .split(": ")
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_lowercase().chain(chars).collect())
                .unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(": ")
}

fn time_zone(s: &str) -> Result<chrono_tz::Tz, Problem> {
    s.parse::<chrono_tz::Tz>().or_else(|_| {
        let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
        let hint =
            suggest(s, names).map_or_else(String::new, |close| format!("did you mean {close:?}? "));
        bad(format!(
            "unknown time zone {s:?}; {hint}use an IANA name like \"Europe/Berlin\" or \"UTC\""
        ))
    })
}

fn hex_key(s: &str) -> Result<Vec<u8>, Problem> {
    let key = hex::decode(s).or_else(|e| {
        let reason = lowercase(&e.to_string());
        bad(format!(
            "is not hex ({reason}); generate a key with `openssl rand -hex 32`"
        ))
    })?;
    if key.len() < 16 {
        return bad(format!(
            "is {} bytes; use at least 16 random bytes (32 recommended, `openssl rand -hex 32`)",
            key.len()
        ));
    }
    Ok(key)
}
