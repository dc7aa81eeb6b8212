//! The load balancer's configuration (`vitals lb --config lb.toml`): the monitor's config
//! language and machinery — spanned TOML, the same value readers, the same schedule and
//! threshold checks and `[defaults]` inheritance — so every error names the file, line,
//! column and field, and every error is reported in one pass.
//!
//! ```
//! let errors = vitals_monitor::config::lb::parse(
//!     r#"
//!     [[listener]]
//!     listen = "127.0.0.1:8080"
//!     pool = "webb"
//!
//!     [[pool]]
//!     id = "web"
//!     [[pool.backend]]
//!     address = "127.0.0.1:9001"
//!     "#,
//!     "lb.toml",
//! )
//! .unwrap_err()
//! .to_string();
//! assert_eq!(
//!     errors,
//!     "lb.toml:4:12: listener[0].pool: no pool has id \"webb\"; did you mean \"web\"?"
//! );
//! ```
//!
//! A file is a load balancer configuration when it has `[[listener]]` or `[[pool]]`
//! ([`is_lb`]); `vitals check-config` uses that to pick the parser.
//!
//! What it is not: it opens no socket and resolves no host name (backends are IP addresses).

mod model;

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use model::{Admin, Backend, Balance, LbConfig, Listener, Outlier, Pool, defaults};

use super::build::Defaults;
use super::error::{self, ConfigErrors, Diag};
use super::fields::{At, Fields, Reported, Scope, read_table, suggest, unknown};
use super::inherit::{Layers, schedule, thresholds};
use super::keys::{ANY, Key, Ty, key};

const TOP: &[&str] = &["admin", "defaults", "listener", "pool"];

const ADMIN: &[Key] = &[key("listen", Ty::SocketAddr, ANY)];

const LISTENER: &[Key] = &[
    key("listen", Ty::SocketAddr, ANY),
    key("pool", Ty::Str, ANY),
    key("max_header_bytes", Ty::Bytes, ANY),
];

/// Keys of a pool; `outlier` and `backend` are tables read on their own.
const POOL: &[Key] = &[
    key("id", Ty::Id, ANY),
    key("balance", Ty::Str, ANY),
    key("health_path", Ty::Str, ANY),
    key("interval", Ty::Duration, ANY),
    key("timeout", Ty::Duration, ANY),
    key("jitter", Ty::Duration, ANY),
    key("interval_changing", Ty::Duration, ANY),
    key("interval_down", Ty::Duration, ANY),
    key("fall", Ty::Count, ANY),
    key("rise", Ty::Count, ANY),
    key("down_after", Ty::Count, ANY),
    key("failures_in_window", Ty::Window, ANY),
    key("flap", Ty::Flap, ANY),
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

/// Methods safe to repeat by definition (RFC 9110 §9.2.2), retried without being listed.
pub const IDEMPOTENT: [&str; 5] = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"];
/// Methods that may be marked idempotent in `idempotent_methods`.
const MARKABLE: [&str; 2] = ["POST", "PATCH"];
const MAX_WEIGHT: u32 = 1000;
/// hyper's smallest read buffer, which holds a request's head.
const MIN_HEADER_BYTES: usize = 8192;

/// Reads and validates the load balancer configuration at `path`.
pub fn load(path: &Path) -> Result<LbConfig, ConfigErrors> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| error::file_error(&file, format!("cannot read the configuration: {e}")))?;
    parse(&text, &file)
}

/// Validates load balancer configuration text; `file` names it in messages.
pub fn parse(text: &str, file: &str) -> Result<LbConfig, ConfigErrors> {
    let root = DeTable::parse(text).map_err(|e| super::syntax_error(file, text, &e))?;
    let mut diag = Diag::new(file, text);
    let config = config(&mut diag, &root);
    let errors = diag.finish();
    match config {
        Ok(config) if errors.is_empty() => Ok(config),
        _ if !errors.is_empty() => Err(ConfigErrors(errors)),
        _ => Err(error::file_error(
            file,
            "the configuration was refused without a reason; this is a bug in vitals, please report it".into(),
        )),
    }
}

/// Whether `text` looks like a load balancer configuration (it has `[[listener]]` or
/// `[[pool]]`) rather than a monitor's. Text that is not TOML is neither: false.
pub fn is_lb(text: &str) -> bool {
    DeTable::parse(text).is_ok_and(|root| {
        root.get_ref()
            .iter()
            .any(|(name, _)| matches!(name.get_ref().as_ref(), "listener" | "pool"))
    })
}

fn config(diag: &mut Diag<'_>, root: &Spanned<DeTable<'_>>) -> Result<LbConfig, Reported> {
    let mut sections: [Option<&Spanned<DeValue<'_>>>; 4] = [None; 4];
    for (name, value) in root.get_ref().iter() {
        let text = name.get_ref().as_ref();
        match TOP.iter().position(|top| *top == text) {
            Some(i) => sections[i] = Some(value),
            None => diag.error(&name.span(), text, unknown("section", text, TOP)),
        }
    }
    let [admin, defaults, listeners, pools] = sections;
    let admin = self::admin(diag, admin);
    let defaults = Defaults::read(diag, defaults);
    let whole = root.span();
    let pools = array(diag, pools, "pool", &whole).map(|items| {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| pool(diag, i, item, &defaults))
            .collect::<Vec<_>>()
    });
    let listeners = array(diag, listeners, "listener", &whole).map(|items| {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| listener(diag, i, item))
            .collect::<Vec<_>>()
    });
    let (pools, listeners) = (pools?, listeners?);
    unique_pools(diag, &pools);
    let ids: Vec<&str> = pools
        .iter()
        .filter_map(|(_, id)| id.as_ref().map(|id| id.value.as_str()))
        .collect();
    let mut addresses: HashMap<std::net::SocketAddr, String> = HashMap::new();
    if let Ok(admin) = &admin {
        addresses.insert(admin.listen, "admin.listen".into());
    }
    for (i, (listener, pool_ref, listen)) in listeners.iter().enumerate() {
        if let Some(pool) = pool_ref
            && !ids.contains(&pool.value.as_str())
        {
            let hint = suggest(&pool.value, ids.iter().copied())
                .map_or_else(String::new, |close| format!("; did you mean {close:?}?"));
            diag.error(
                &pool.span,
                format!("listener[{i}].pool"),
                format!("no pool has id {:?}{hint}", pool.value),
            );
        }
        if let Some(listen) = listen {
            if let Some(other) = addresses.get(&listen.value) {
                diag.error(
                    &listen.span,
                    format!("listener[{i}].listen"),
                    format!(
                        "{} is already used by {other}; each listener needs its own address",
                        listen.value
                    ),
                );
            } else {
                addresses.insert(listen.value, format!("listener[{i}].listen"));
            }
        }
        let _ = listener;
    }
    let admin = admin?;
    let listeners = listeners
        .into_iter()
        .map(|(listener, _, _)| listener)
        .collect::<Result<Vec<_>, _>>()?;
    let pools = pools
        .into_iter()
        .map(|(pool, _)| pool)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(LbConfig {
        admin,
        listeners,
        pools,
    })
}

/// The entries of `[[name]]`, which must be present and an array of tables.
fn array<'v, 'i>(
    diag: &mut Diag<'_>,
    value: Option<&'v Spanned<DeValue<'i>>>,
    name: &str,
    whole: &super::error::Span,
) -> Result<&'v [Spanned<DeValue<'i>>], Reported> {
    let Some(value) = value else {
        diag.error(
            &(whole.start..whole.start),
            name,
            format!("no [[{name}]]; a load balancer needs at least one (see examples/lb.toml)"),
        );
        return Err(Reported);
    };
    match value.get_ref() {
        DeValue::Array(items) if !items.is_empty() => Ok(items),
        _ => {
            diag.error(
                &value.span(),
                name,
                format!("expected an array of tables: write [[{name}]] (two brackets) above each"),
            );
            Err(Reported)
        }
    }
}

fn admin(diag: &mut Diag<'_>, value: Option<&Spanned<DeValue<'_>>>) -> Result<Admin, Reported> {
    let base = Admin::default();
    let Some(value) = value else {
        return Ok(base);
    };
    let f = read_table(diag, value, ADMIN, Scope::Any, "admin")?;
    Ok(Admin {
        listen: f.socket_addr("listen")?.map_or(base.listen, |at| at.value),
    })
}

type ListenerRead = (
    Result<Listener, Reported>,
    Option<At<String>>,
    Option<At<std::net::SocketAddr>>,
);

fn listener(diag: &mut Diag<'_>, index: usize, value: &Spanned<DeValue<'_>>) -> ListenerRead {
    let path = format!("listener[{index}]");
    let Ok(f) = read_table(diag, value, LISTENER, Scope::Any, &path) else {
        return (Err(Reported), None, None);
    };
    for required in ["listen", "pool"] {
        if !f.has(required) {
            let example = if required == "listen" {
                "listen = \"127.0.0.1:8080\""
            } else {
                "pool = \"web\""
            };
            diag.error(
                &f.span,
                format!("{path}.{required}"),
                format!("missing {required}; write it like {example}"),
            );
        }
    }
    let listen = f.socket_addr("listen").ok().flatten();
    let pool = f.str("pool").ok().flatten();
    let built = (|| {
        Ok(Listener {
            listen: f.socket_addr("listen")?.ok_or(Reported)?.value,
            pool: f.str("pool")?.ok_or(Reported)?.value,
            max_header_bytes: f
                .bytes("max_header_bytes")?
                .map_or(defaults::MAX_HEADER_BYTES, |at| at.value),
        })
    })();
    let built = match (built, f.bytes("max_header_bytes")) {
        (Ok(_), Ok(Some(at))) if !(MIN_HEADER_BYTES..=1024 * 1024).contains(&at.value) => {
            diag.error(
                &at.span,
                format!("{path}.max_header_bytes"),
                format!(
                    "{} bytes is outside {MIN_HEADER_BYTES} to 1048576; requests need room for their headers, and more than 1 MiB invites abuse",
                    at.value
                ),
            );
            Err(Reported)
        }
        (built, _) => built,
    };
    (built, pool, listen)
}

/// The id of pool[i] (when valid), for duplicate and reference checks.
type PoolRead = (Result<Pool, Reported>, Option<At<String>>);

fn pool(
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
    let Ok(f) = read_table(diag, &plain, POOL, Scope::Any, &path) else {
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
    let schedule = schedule(diag, &layers);
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
        Some(at) if at.value.starts_with('/') && at.value.parse::<axum::http::uri::PathAndQuery>().is_ok() => {
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
    pool_span: &super::error::Span,
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

fn unique_pools(diag: &mut Diag<'_>, pools: &[PoolRead]) {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (index, (_, id)) in pools.iter().enumerate() {
        let Some(id) = id else { continue };
        match first.get(id.value.as_str()) {
            Some(&earlier) => {
                let line = pools[earlier]
                    .1
                    .as_ref()
                    .map_or(0, |e| diag.line_of(&e.span));
                diag.error(
                    &id.span,
                    format!("pool[{index}] ({:?}).id", id.value),
                    format!(
                        "duplicate id {:?}: pool[{earlier}] on line {line} has it already; pool ids must be unique",
                        id.value
                    ),
                );
            }
            None => {
                first.insert(&id.value, index);
            }
        }
    }
}

#[cfg(test)]
mod tests;
