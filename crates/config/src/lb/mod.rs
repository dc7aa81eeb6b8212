//! The load balancer's configuration (`vitals lb --config lb.toml`): the monitor's config
//! language and machinery — spanned TOML, the same value readers, the same schedule and
//! threshold checks and `[defaults]` inheritance — so every error names the file, line,
//! column and field, and every error is reported in one pass.
//!
//! ```
//! let errors = vitals_config::lb::parse(
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
mod pool;

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use model::{
    Admin, Backend, BackendTls, Balance, HealthCheck, IpNet, LbConfig, Listener, Outlier, Pool,
    Protocol, defaults,
};

use super::build::Defaults;
use super::error::{self, ConfigErrors, Diag};
use super::fields::{Scope, suggest, unknown};
use super::keys::lb::TOP;
use super::keys::{admin, listener};
use super::val::{At, Reported};
use super::value;
use pool::{PoolRead, pool};

/// Methods safe to repeat by definition (RFC 9110 §9.2.2), retried without being listed.
pub const IDEMPOTENT: [&str; 5] = ["GET", "HEAD", "PUT", "DELETE", "OPTIONS"];
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
    let f = value::table::<admin::Table>(diag, value, Scope::Any, "admin")?;
    let hosts = f.get(admin::HOSTS)?.map_or_else(Vec::new, |at| {
        at.value
            .into_iter()
            .map(|h| h.value.to_ascii_lowercase())
            .collect()
    });
    Ok(Admin {
        listen: f.get(admin::LISTEN)?.map_or(base.listen, |at| at.value),
        token: f.get(admin::TOKEN)?.map(|at| at.value),
        hosts,
    })
}

/// `trusted_proxies`: each an IP address or network, every bad one reported.
fn trusted_proxies(
    diag: &mut Diag<'_>,
    path: &str,
    items: Option<At<Vec<At<String>>>>,
) -> Result<Vec<IpNet>, Reported> {
    let Some(items) = items else {
        return Ok(Vec::new());
    };
    let mut nets = Vec::new();
    let mut bad = false;
    for item in items.value {
        match IpNet::parse(item.value.trim()) {
            Some(net) => nets.push(net),
            None => {
                diag.error(
                    &item.span,
                    listener::TRUSTED_PROXIES.field(path),
                    format!(
                        "{:?} is not an IP address or network; write it like \"10.0.0.0/8\" or \"127.0.0.1\"",
                        item.value
                    ),
                );
                bad = true;
            }
        }
    }
    if bad { Err(Reported) } else { Ok(nets) }
}

type ListenerRead = (
    Result<Listener, Reported>,
    Option<At<String>>,
    Option<At<std::net::SocketAddr>>,
);

fn listener(diag: &mut Diag<'_>, index: usize, value: &Spanned<DeValue<'_>>) -> ListenerRead {
    let path = format!("listener[{index}]");
    let Ok(f) = value::table::<listener::Table>(diag, value, Scope::Any, &path) else {
        return (Err(Reported), None, None);
    };
    let required = [
        (listener::LISTEN.untyped(), "listen = \"127.0.0.1:8080\""),
        (listener::POOL.untyped(), "pool = \"web\""),
    ];
    for (required, example) in required {
        if !f.has(required) {
            diag.error(
                &f.span,
                required.field(&path),
                format!("missing {}; write it like {example}", required.name()),
            );
        }
    }
    let listen = f.get(listener::LISTEN).ok().flatten();
    let pool = f.get(listener::POOL).ok().flatten();
    let built = (|| {
        Ok(Listener {
            listen: f.get(listener::LISTEN)?.ok_or(Reported)?.value,
            pool: f.get(listener::POOL)?.ok_or(Reported)?.value,
            max_header_bytes: f
                .get(listener::MAX_HEADER_BYTES)?
                .map_or(defaults::MAX_HEADER_BYTES, |at| at.value),
            trusted_proxies: trusted_proxies(diag, &path, f.get(listener::TRUSTED_PROXIES)?)?,
            tls_certificates: f
                .get(listener::TLS_CERTIFICATES)?
                .map_or_else(Vec::new, |at| {
                    at.value
                        .into_iter()
                        .map(|p| std::path::PathBuf::from(p.value))
                        .collect()
                }),
            max_concurrent_streams: match f.get(listener::MAX_CONCURRENT_STREAMS)? {
                None => defaults::MAX_CONCURRENT_STREAMS,
                Some(at) if (1..=10_000).contains(&at.value) => at.value,
                Some(at) => {
                    diag.error(
                        &at.span,
                        listener::MAX_CONCURRENT_STREAMS.field(&path),
                        format!(
                            "{} is outside 1 to 10000; each open stream holds a request in the balancer",
                            at.value
                        ),
                    );
                    return Err(Reported);
                }
            },
        })
    })();
    let built = match (built, f.get(listener::MAX_HEADER_BYTES)) {
        (Ok(_), Ok(Some(at))) if !(MIN_HEADER_BYTES..=1024 * 1024).contains(&at.value) => {
            diag.error(
                &at.span,
                listener::MAX_HEADER_BYTES.field(&path),
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
