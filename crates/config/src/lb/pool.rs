//! One `[[pool]]` of the load balancer's configuration: its keys, the schedule and
//! thresholds through the monitor's `[defaults]` inheritance, `[pool.outlier]`, and each
//! `[[pool.backend]]`.
//!
//! Not here: the file's sections, listeners and checks across pools (the parent module).

use std::collections::HashMap;

use toml::Spanned;
use toml::de::DeValue;

use super::super::build::Defaults;
use super::super::compound;
use super::super::error::{Diag, Span};
use super::super::fields::{Fields, Scope, suggest};
use super::super::inherit::{Layers, schedule, thresholds};
use super::super::keys::lb::NESTED;
use super::super::keys::{TypedKey, backend, defaults as inherited, outlier, pool as key, ty};
use super::super::val::{At, Reported};
use super::super::value;
use super::{
    Backend, BackendTls, Balance, HealthCheck, IDEMPOTENT, Outlier, Pool, Protocol, defaults,
};

/// Methods that may be marked idempotent in `idempotent_methods`.
const MARKABLE: [&str; 2] = ["POST", "PATCH"];
const MAX_WEIGHT: u32 = 1000;

/// The id of `pool[i]` (when valid), for duplicate and reference checks.
pub(super) type PoolRead = (Result<Pool, Reported>, Option<At<String>>);

/// `health_check` and the key that goes with each: `health_path` for http, `grpc_service` for
/// grpc.
fn health_check(
    diag: &mut Diag<'_>,
    f: &Fields<key::Table>,
    path: &str,
) -> Result<HealthCheck, Reported> {
    let service = f.get(key::GRPC_SERVICE)?;
    let check = match f.get(key::HEALTH_CHECK)? {
        None => HealthCheck::Http,
        Some(at) if at.value == "http" => HealthCheck::Http,
        Some(at) if at.value == "grpc" => HealthCheck::Grpc {
            service: service
                .as_ref()
                .map_or_else(String::new, |at| at.value.clone()),
        },
        Some(at) => {
            let hint = suggest(&at.value, HealthCheck::NAMES)
                .map_or_else(String::new, |c| format!("did you mean {c:?}? "));
            diag.error(
                &at.span,
                key::HEALTH_CHECK.field(path),
                format!(
                    "unknown health check {:?}; {hint}choose {}",
                    at.value,
                    HealthCheck::NAMES.join(" or ")
                ),
            );
            return Err(Reported);
        }
    };
    let mut failed = false;
    match &check {
        HealthCheck::Http => {
            if let Some(span) = f.key_span(key::GRPC_SERVICE) {
                diag.error(
                    &span,
                    key::GRPC_SERVICE.field(path),
                    "grpc_service is for gRPC checks: add health_check = \"grpc\", or remove it",
                );
                failed = true;
            }
        }
        HealthCheck::Grpc { service } => {
            if let Some(span) = f.key_span(key::HEALTH_PATH) {
                diag.error(
                    &span,
                    key::HEALTH_PATH.field(path),
                    "health_path is for HTTP checks; a gRPC check names a service: use grpc_service",
                );
                failed = true;
            }
            if service.len() > 256 || service.chars().any(char::is_control) {
                if let Some(span) = f.span(key::GRPC_SERVICE) {
                    diag.error(
                        &span,
                        key::GRPC_SERVICE.field(path),
                        "must be at most 256 bytes without control characters, like \"orders.v1.Orders\"",
                    );
                }
                failed = true;
            }
        }
    }
    if failed { Err(Reported) } else { Ok(check) }
}

pub(super) fn pool(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    defaults: &Defaults,
) -> PoolRead {
    let raw_id = match value.get_ref() {
        DeValue::Table(table) => table.get(key::ID.name()).and_then(|id| match id.get_ref() {
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
    let Ok(f) = compound::table::<key::Table>(diag, &plain, Scope::Any, &path) else {
        return (Err(Reported), None);
    };
    if !f.has(key::ID) {
        diag.error(
            &f.span,
            key::ID.field(&path),
            "missing id; every pool needs a unique id like \"web\"",
        );
    }
    let id = f.get(key::ID);
    let layers = Layers::target(&f, &path, defaults.fields());
    // A balancer wants a backend back within seconds of recovering: unless set, a down
    // backend is checked as often as any other (HAProxy's `downinter` defaults to `inter`),
    // not once a minute as the monitor does to spare a struggling service.
    let down_set =
        f.has(inherited::INTERVAL_DOWN.within()) || defaults.fields().has(inherited::INTERVAL_DOWN);
    let schedule = schedule(diag, &layers).map(|mut schedule| {
        if !down_set {
            schedule.interval_down = schedule.interval;
        }
        schedule
    });
    let thresholds = thresholds(diag, &layers, defaults.thresholds_error()).map_err(|_| Reported);
    let balance = f.get(key::BALANCE).and_then(|at| match at {
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
                    key::BALANCE.field(&path),
                    format!(
                        "unknown balance {:?}; {hint}choose {}",
                        at.value,
                        names.join(" or ")
                    ),
                );
                Reported
            }),
    });
    let health_path = f.get(key::HEALTH_PATH).and_then(|at| match at {
        None => Ok(defaults::HEALTH_PATH.to_string()),
        Some(at) if at.value.starts_with('/') && at.value.parse::<http::uri::PathAndQuery>().is_ok() => {
            Ok(at.value)
        }
        Some(at) => {
            diag.error(
                &at.span,
                key::HEALTH_PATH.field(&path),
                format!(
                    "{:?} is not a path; write it like \"/readyz\" (the backend's address is added)",
                    at.value
                ),
            );
            Err(Reported)
        }
    });
    let health_check = health_check(diag, &f, &path);
    let mut percent = |key: TypedKey<key::Table, ty::Number>, default: f64| {
        f.get(key).and_then(|at| match at {
            None => Ok(default),
            Some(at) if (0.0..=100.0).contains(&at.value) => Ok(at.value),
            Some(at) => {
                diag.error(
                    &at.span,
                    key.field(&path),
                    format!("{} is not a percentage from 0 to 100", at.value),
                );
                Err(Reported)
            }
        })
    };
    let panic_threshold = percent(key::PANIC_THRESHOLD, defaults::PANIC_THRESHOLD);
    let retry_budget = percent(key::RETRY_BUDGET, defaults::RETRY_BUDGET);
    let methods = f.get(key::IDEMPOTENT_METHODS).and_then(|at| {
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
                    format!("{}[{i}]", key::IDEMPOTENT_METHODS.field(&path)),
                    format!(
                        "{upper} is idempotent already (as are {}); remove it",
                        IDEMPOTENT.join(", ")
                    ),
                );
                failed = true;
            } else {
                diag.error(
                    &entry.span,
                    format!("{}[{i}]", key::IDEMPOTENT_METHODS.field(&path)),
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
    let protocol = protocol(diag, &f, &path);
    let tls = backend_tls(diag, &f, &path);
    let outlier = outlier(diag, nested.outlier, &path);
    let backends = backends(diag, nested.backend, &path, &f.span);
    let pool = (|| {
        let dur = |key: TypedKey<key::Table, ty::Duration>, default| {
            f.get(key).map(|at| at.map_or(default, |at| at.value))
        };
        let request_timeout = dur(key::REQUEST_TIMEOUT, defaults::REQUEST_TIMEOUT);
        let connect_timeout = dur(key::CONNECT_TIMEOUT, defaults::CONNECT_TIMEOUT);
        let slow_start = dur(key::SLOW_START, defaults::SLOW_START);
        let retry_min = f.get(key::RETRY_MIN_PER_SECOND);
        Ok(Pool {
            id: id.clone()?.ok_or(Reported)?.value,
            balance: balance?,
            health_path: health_path?,
            health_check: health_check?,
            schedule: schedule?,
            thresholds: thresholds?,
            panic_threshold: panic_threshold?,
            slow_start: slow_start?,
            connect_timeout: positive(diag, &f, &path, key::CONNECT_TIMEOUT, connect_timeout?)?,
            request_timeout: positive(diag, &f, &path, key::REQUEST_TIMEOUT, request_timeout?)?,
            retry_budget: retry_budget?,
            retry_min_per_second: retry_min?.map_or(defaults::RETRY_MIN_PER_SECOND, |at| at.value),
            idempotent_methods: methods?,
            outlier: outlier?,
            protocol: protocol?,
            tls: tls?,
            backends: backends?,
        })
    })();
    (pool, id.ok().flatten())
}

/// `backend_protocol`: `http1` (the default) or `h2`.
fn protocol(diag: &mut Diag<'_>, f: &Fields<key::Table>, path: &str) -> Result<Protocol, Reported> {
    match f.get(key::BACKEND_PROTOCOL)? {
        None => Ok(Protocol::Http1),
        Some(at) if at.value == "http1" => Ok(Protocol::Http1),
        Some(at) if at.value == "h2" => Ok(Protocol::Http2),
        Some(at) => {
            let hint = suggest(&at.value, Protocol::NAMES)
                .map_or_else(String::new, |c| format!("did you mean {c:?}? "));
            diag.error(
                &at.span,
                key::BACKEND_PROTOCOL.field(path),
                format!(
                    "unknown protocol {:?}; {hint}choose {}",
                    at.value,
                    Protocol::NAMES.join(" or ")
                ),
            );
            Err(Reported)
        }
    }
}

/// `backend_tls`, with `backend_ca_file` and `backend_server_name`, which mean nothing
/// without it.
fn backend_tls(
    diag: &mut Diag<'_>,
    f: &Fields<key::Table>,
    path: &str,
) -> Result<Option<BackendTls>, Reported> {
    let on = f.get(key::BACKEND_TLS)?.is_some_and(|at| at.value);
    let ca_file = f.get(key::BACKEND_CA_FILE)?;
    let server_name = f.get(key::BACKEND_SERVER_NAME)?;
    if !on {
        let mut failed = false;
        for (span, field) in [
            (
                ca_file.as_ref().map(|at| at.span.clone()),
                key::BACKEND_CA_FILE.field(path),
            ),
            (
                server_name.as_ref().map(|at| at.span.clone()),
                key::BACKEND_SERVER_NAME.field(path),
            ),
        ] {
            if let Some(span) = span {
                diag.error(
                    &span,
                    field,
                    "is for TLS to backends: add backend_tls = true, or remove it",
                );
                failed = true;
            }
        }
        return if failed { Err(Reported) } else { Ok(None) };
    }
    if let Some(at) = &server_name
        && rustls_name(&at.value).is_none()
    {
        diag.error(
            &at.span,
            key::BACKEND_SERVER_NAME.field(path),
            format!(
                "{:?} is not a DNS name or IP address; write it like \"api.internal\"",
                at.value
            ),
        );
        return Err(Reported);
    }
    Ok(Some(BackendTls {
        ca_file: ca_file.map(|at| std::path::PathBuf::from(at.value)),
        server_name: server_name.map(|at| at.value),
    }))
}

/// A name TLS can ask for: a DNS name (letters, digits, `-`, dots) or an IP address.
fn rustls_name(name: &str) -> Option<()> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some(());
    }
    let labels_ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    labels_ok.then_some(())
}

fn positive(
    diag: &mut Diag<'_>,
    f: &Fields<key::Table>,
    path: &str,
    key: TypedKey<key::Table, ty::Duration>,
    value: std::time::Duration,
) -> Result<std::time::Duration, Reported> {
    if !value.is_zero() {
        return Ok(value);
    }
    diag.error(
        &f.span_or_table(key),
        key.field(path),
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
    for name in NESTED {
        plain.remove(name);
    }
    (
        Spanned::new(value.span(), DeValue::Table(plain)),
        Nested {
            outlier: table.get(NESTED[0]),
            backend: table.get(NESTED[1]),
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
    let f = value::table::<outlier::Table>(diag, value, Scope::Any, &path)?;
    let consecutive = f.get(outlier::CONSECUTIVE_FAILURES);
    let ejection = f.get(outlier::BASE_EJECTION);
    let percent = f
        .get(outlier::MAX_EJECTION_PERCENT)
        .and_then(|at| match at {
            Some(at) if !(0.0..=100.0).contains(&at.value) => {
                diag.error(
                    &at.span,
                    outlier::MAX_EJECTION_PERCENT.field(&path),
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
            outlier::BASE_EJECTION.field(&path),
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
        let Ok(f) = value::table::<backend::Table>(diag, item, Scope::Any, &path) else {
            failed = true;
            continue;
        };
        let backend = (|| {
            let Some(address) = f.get(backend::ADDRESS)? else {
                diag.error(
                    &f.span,
                    backend::ADDRESS.field(&path),
                    "missing address; write it like address = \"127.0.0.1:9001\"",
                );
                return Err(Reported);
            };
            if let Some(&earlier) = seen.get(&address.value) {
                diag.error(
                    &address.span,
                    backend::ADDRESS.field(&path),
                    format!(
                        "duplicate address {}: backend[{earlier}] has it already; raise its weight instead",
                        address.value
                    ),
                );
                return Err(Reported);
            }
            seen.insert(address.value, i);
            let weight = match f.get(backend::WEIGHT)? {
                None => 1,
                Some(at) if (1..=MAX_WEIGHT).contains(&at.value) => at.value,
                Some(at) => {
                    diag.error(
                        &at.span,
                        backend::WEIGHT.field(&path),
                        format!(
                            "{} is outside 1 to {MAX_WEIGHT}; to take a backend out, drain it through the admin API",
                            at.value
                        ),
                    );
                    return Err(Reported);
                }
            };
            let id = f.get(backend::ID)?;
            let name = id
                .as_ref()
                .map_or_else(|| address.value.to_string(), |at| at.value.clone());
            if let Some(&earlier) = names.get(&name) {
                let span = id.map_or(address.span, |at| at.span);
                diag.error(
                    &span,
                    backend::ID.field(&path),
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
