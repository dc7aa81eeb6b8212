//! One `[[pool]]` of the load balancer's configuration: its keys, the schedule and
//! thresholds through the monitor's `[defaults]` inheritance, `[pool.outlier]`, and each
//! `[[pool.backend]]`.
//!
//! Not here: the file's sections, listeners and checks across pools (the parent module).

use std::collections::HashMap;

use toml::Spanned;
use toml::de::DeValue;

use super::super::build::Defaults;
use super::super::error::{Diag, Span};
use super::super::fields::{At, Fields, Reported, Scope, read_table, suggest};
use super::super::inherit::{Layers, schedule, thresholds};
use super::super::keys::{self, ANY, Key, Ty, key};
use super::{Backend, Balance, IDEMPOTENT, Outlier, Pool, defaults};

/// Keys of a pool besides the schedule and thresholds, which are `[defaults]`' own keys
/// (`keys::DEFAULTS`); `outlier` and `backend` are tables read on their own.
const POOL: &[Key] = &[
    key("id", Ty::Id, ANY),
    key("balance", Ty::Str, ANY),
    key("health_path", Ty::Str, ANY),
    key("panic_threshold", Ty::Number, ANY),
    key("slow_start", Ty::Duration, ANY),
    key("connect_timeout", Ty::Duration, ANY),
    key("request_timeout", Ty::Duration, ANY),
    key("retry_budget", Ty::Number, ANY),
    key("retry_min_per_second", Ty::Count, ANY),
    key("idempotent_methods", Ty::List, ANY),
];
const POOL_TABLES: [&str; 2] = ["outlier", "backend"];

const OUTLIER: &[Key] = &[
    key("consecutive_failures", Ty::Count, ANY),
    key("base_ejection", Ty::Duration, ANY),
    key("max_ejection_percent", Ty::Number, ANY),
];

const BACKEND: &[Key] = &[
    key("address", Ty::SocketAddr, ANY),
    key("id", Ty::Id, ANY),
    key("weight", Ty::Count, ANY),
];

/// Methods that may be marked idempotent in `idempotent_methods`.
const MARKABLE: [&str; 2] = ["POST", "PATCH"];
const MAX_WEIGHT: u32 = 1000;

/// The id of pool[i] (when valid), for duplicate and reference checks.
pub(super) type PoolRead = (Result<Pool, Reported>, Option<At<String>>);

pub(super) fn pool(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    defaults: &Defaults,
) -> PoolRead {
    let raw_id = match value.get_ref() {
        DeValue::Table(table) => table.get("id").and_then(|id| match id.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => None,
        }),
        _ => None,
    };
    let path = match &raw_id {
        Some(id) => format!("pool[{index}] ({id:?})"),
        None => format!("pool[{index}]"),
    };
    // The nested tables are read on their own, so the walker sees the pool's plain keys.
    let (plain, nested) = split(value);
    let pool_keys: Vec<Key> = POOL.iter().chain(keys::DEFAULTS).copied().collect();
    let Ok(f) = read_table(diag, &plain, &pool_keys, Scope::Any, &path) else {
        return (Err(Reported), None);
    };
    if !f.has("id") {
        diag.error(
            &f.span,
            format!("{path}.id"),
            "missing id; every pool needs a unique id like \"web\"",
        );
    }
    let id = f.str("id");
    let layers = Layers::target(&f, &path, defaults.fields());
    // A balancer wants a backend back within seconds of recovering: unless set, a down
    // backend is checked as often as any other (HAProxy's `downinter` defaults to `inter`),
    // not once a minute as the monitor does to spare a struggling service.
    let down_set = f.has("interval_down") || defaults.fields().has("interval_down");
    let schedule = schedule(diag, &layers).map(|mut schedule| {
        if !down_set {
            schedule.interval_down = schedule.interval;
        }
        schedule
    });
    let thresholds = thresholds(diag, &layers, defaults.thresholds_error()).map_err(|_| Reported);
    let balance = f.str("balance").and_then(|at| match at {
        None => Ok(Balance::RoundRobin),
        Some(at) => Balance::ALL
            .into_iter()
            .find(|b| b.name() == at.value)
            .ok_or_else(|| {
                let names = Balance::ALL.map(Balance::name);
                let hint = suggest(&at.value, names)
                    .map_or_else(String::new, |c| format!("did you mean {c:?}? "));
                diag.error(
                    &at.span,
                    format!("{path}.balance"),
                    format!(
                        "unknown balance {:?}; {hint}choose {}",
                        at.value,
                        names.join(" or ")
                    ),
                );
                Reported
            }),
    });
    let health_path = f.str("health_path").and_then(|at| match at {
        None => Ok(defaults::HEALTH_PATH.to_string()),
        Some(at) if at.value.starts_with('/') && at.value.parse::<http::uri::PathAndQuery>().is_ok() => {
            Ok(at.value)
        }
        Some(at) => {
            diag.error(
                &at.span,
                format!("{path}.health_path"),
                format!(
                    "{:?} is not a path; write it like \"/readyz\" (the backend's address is added)",
                    at.value
                ),
            );
            Err(Reported)
        }
    });
    let mut percent = |key: &str, default: f64| {
        f.number(key).and_then(|at| match at {
            None => Ok(default),
            Some(at) if (0.0..=100.0).contains(&at.value) => Ok(at.value),
            Some(at) => {
                diag.error(
                    &at.span,
                    format!("{path}.{key}"),
                    format!("{} is not a percentage from 0 to 100", at.value),
                );
                Err(Reported)
            }
        })
    };
    let panic_threshold = percent("panic_threshold", defaults::PANIC_THRESHOLD);
    let retry_budget = percent("retry_budget", defaults::RETRY_BUDGET);
    let methods = f.list("idempotent_methods").and_then(|at| {
        let mut methods = Vec::new();
        let mut failed = false;
        for (i, entry) in at
            .map(|at| at.value)
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            let upper = entry.value.to_ascii_uppercase();
            if MARKABLE.contains(&upper.as_str()) {
                methods.push(upper);
            } else if IDEMPOTENT.contains(&upper.as_str()) {
                diag.error(
                    &entry.span,
                    format!("{path}.idempotent_methods[{i}]"),
                    format!(
                        "{upper} is idempotent already (as are {}); remove it",
                        IDEMPOTENT.join(", ")
                    ),
                );
                failed = true;
            } else {
                diag.error(
                    &entry.span,
                    format!("{path}.idempotent_methods[{i}]"),
                    format!(
                        "{:?} cannot be marked idempotent; only {} can",
                        entry.value,
                        MARKABLE.join(" or ")
                    ),
                );
                failed = true;
            }
        }
        if failed { Err(Reported) } else { Ok(methods) }
    });
    let outlier = outlier(diag, nested.outlier, &path);
    let backends = backends(diag, nested.backend, &path, &f.span);
    let pool = (|| {
        let dur = |key: &str, default| f.duration(key).map(|at| at.map_or(default, |at| at.value));
        let request_timeout = dur("request_timeout", defaults::REQUEST_TIMEOUT);
        let connect_timeout = dur("connect_timeout", defaults::CONNECT_TIMEOUT);
        let slow_start = dur("slow_start", defaults::SLOW_START);
        let retry_min = f.count("retry_min_per_second");
        Ok(Pool {
            id: id.clone()?.ok_or(Reported)?.value,
            balance: balance?,
            health_path: health_path?,
            schedule: schedule?,
            thresholds: thresholds?,
            panic_threshold: panic_threshold?,
            slow_start: slow_start?,
            connect_timeout: positive(diag, &f, &path, "connect_timeout", connect_timeout?)?,
            request_timeout: positive(diag, &f, &path, "request_timeout", request_timeout?)?,
            retry_budget: retry_budget?,
            retry_min_per_second: retry_min?.map_or(defaults::RETRY_MIN_PER_SECOND, |at| at.value),
            idempotent_methods: methods?,
            outlier: outlier?,
            backends: backends?,
        })
    })();
    (pool, id.ok().flatten())
}

fn positive(
    diag: &mut Diag<'_>,
    f: &Fields,
    path: &str,
    key: &str,
    value: std::time::Duration,
) -> Result<std::time::Duration, Reported> {
    if !value.is_zero() {
        return Ok(value);
    }
    diag.error(
        &f.span(key).unwrap_or(f.span.clone()),
        format!("{path}.{key}"),
        "is zero; give it time, like \"1s\"",
    );
    Err(Reported)
}

struct Nested<'v, 'i> {
    outlier: Option<&'v Spanned<DeValue<'i>>>,
    backend: Option<&'v Spanned<DeValue<'i>>>,
}

/// The pool's table without its nested tables, and the nested tables.
fn split<'v, 'i>(value: &'v Spanned<DeValue<'i>>) -> (Spanned<DeValue<'i>>, Nested<'v, 'i>) {
    let DeValue::Table(table) = value.get_ref() else {
        return (
            value.clone(),
            Nested {
                outlier: None,
                backend: None,
            },
        );
    };
    let mut plain = table.clone();
    for name in POOL_TABLES {
        plain.remove(name);
    }
    (
        Spanned::new(value.span(), DeValue::Table(plain)),
        Nested {
            outlier: table.get("outlier"),
            backend: table.get("backend"),
        },
    )
}

fn outlier(
    diag: &mut Diag<'_>,
    value: Option<&Spanned<DeValue<'_>>>,
    pool: &str,
) -> Result<Outlier, Reported> {
    let base = Outlier::default();
    let Some(value) = value else {
        return Ok(base);
    };
    let path = format!("{pool}.outlier");
    let f = read_table(diag, value, OUTLIER, Scope::Any, &path)?;
    let consecutive = f.count("consecutive_failures");
    let ejection = f.duration("base_ejection");
    let percent = f.number("max_ejection_percent").and_then(|at| match at {
        Some(at) if !(0.0..=100.0).contains(&at.value) => {
            diag.error(
                &at.span,
                format!("{path}.max_ejection_percent"),
                format!("{} is not a percentage from 0 to 100", at.value),
            );
            Err(Reported)
        }
        other => Ok(other),
    });
    let ejection = ejection?;
    if let Some(at) = &ejection
        && at.value.is_zero()
    {
        diag.error(
            &at.span,
            format!("{path}.base_ejection"),
            "is zero; an ejection needs a length like \"30s\" (set consecutive_failures = 0 to turn ejection off)",
        );
        return Err(Reported);
    }
    Ok(Outlier {
        consecutive_failures: consecutive?.map_or(base.consecutive_failures, |at| at.value),
        base_ejection: ejection.map_or(base.base_ejection, |at| at.value),
        max_ejection_percent: percent?.map_or(base.max_ejection_percent, |at| at.value),
    })
}

fn backends(
    diag: &mut Diag<'_>,
    value: Option<&Spanned<DeValue<'_>>>,
    pool: &str,
    pool_span: &Span,
) -> Result<Vec<Backend>, Reported> {
    let items = match value.map(|v| (v, v.get_ref())) {
        None => {
            diag.error(
                pool_span,
                format!("{pool}.backend"),
                "no backends; add [[pool.backend]] with address = \"127.0.0.1:9001\" under the pool",
            );
            return Err(Reported);
        }
        Some((_, DeValue::Array(items))) if !items.is_empty() => items,
        Some((value, _)) => {
            diag.error(
                &value.span(),
                format!("{pool}.backend"),
                "expected an array of tables: write [[pool.backend]] (two brackets) above each",
            );
            return Err(Reported);
        }
    };
    let mut built = Vec::new();
    let mut failed = false;
    let mut seen: HashMap<std::net::SocketAddr, usize> = HashMap::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("{pool}.backend[{i}]");
        let Ok(f) = read_table(diag, item, BACKEND, Scope::Any, &path) else {
            failed = true;
            continue;
        };
        let backend = (|| {
            let Some(address) = f.socket_addr("address")? else {
                diag.error(
                    &f.span,
                    format!("{path}.address"),
                    "missing address; write it like address = \"127.0.0.1:9001\"",
                );
                return Err(Reported);
            };
            if let Some(&earlier) = seen.get(&address.value) {
                diag.error(
                    &address.span,
                    format!("{path}.address"),
                    format!(
                        "duplicate address {}: backend[{earlier}] has it already; raise its weight instead",
                        address.value
                    ),
                );
                return Err(Reported);
            }
            seen.insert(address.value, i);
            let weight = match f.count("weight")? {
                None => 1,
                Some(at) if (1..=MAX_WEIGHT).contains(&at.value) => at.value,
                Some(at) => {
                    diag.error(
                        &at.span,
                        format!("{path}.weight"),
                        format!(
                            "{} is outside 1 to {MAX_WEIGHT}; to take a backend out, drain it through the admin API",
                            at.value
                        ),
                    );
                    return Err(Reported);
                }
            };
            let id = f.str("id")?;
            let name = id
                .as_ref()
                .map_or_else(|| address.value.to_string(), |at| at.value.clone());
            if let Some(&earlier) = names.get(&name) {
                let span = id.map_or(address.span, |at| at.span);
                diag.error(
                    &span,
                    format!("{path}.id"),
                    format!("duplicate backend name {name:?}: backend[{earlier}] has it already"),
                );
                return Err(Reported);
            }
            names.insert(name.clone(), i);
            Ok(Backend {
                name,
                address: address.value,
                weight,
            })
        })();
        match backend {
            Ok(backend) => built.push(backend),
            Err(Reported) => failed = true,
        }
    }
    if failed { Err(Reported) } else { Ok(built) }
}
