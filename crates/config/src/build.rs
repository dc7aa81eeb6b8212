//! Assembling a [`Config`] from the walked TOML: the sections in order, each target from its
//! table and `[defaults]`, then the checks across targets.
//!
//! Not here: reading single values (`value`), merging `[defaults]` and comparing keys
//! (`inherit`), what each kind of target needs (`kinds`), checks across targets (`cross`).

use std::collections::HashMap;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use vitals_core::machine::ThresholdError;

use super::cross::TargetInfo;
use super::error::Diag;
use super::fields::{Fields, Scope, suggest, unknown};
use super::inherit::{Layers, schedule, thresholds};
use super::keys::{self, Kind, defaults, retention, server, target};
use super::model::{Config, Retention, Server, Target};
use super::val::{At, Reported};
use super::{compound, kinds, value};

/// Ping bodies are stored in SQLite; more than this is a mistake, not a log.
const MAX_PING_BODY_LIMIT: usize = 10 * 1024 * 1024;

pub(super) fn config(diag: &mut Diag<'_>, root: &Spanned<DeTable<'_>>) -> Result<Config, Reported> {
    let mut sections: [Option<&Spanned<DeValue<'_>>>; 9] = [None; 9];
    for (name, value) in root.get_ref().iter() {
        match keys::TOP
            .iter()
            .position(|top| *top == name.get_ref().as_ref())
        {
            Some(i) => sections[i] = Some(value),
            None => {
                let text = name.get_ref().as_ref();
                diag.error(&name.span(), text, unknown("section", text, keys::TOP));
            }
        }
    }
    let [
        server,
        retention,
        defaults,
        targets,
        notify,
        channels,
        rules,
        maintenance,
        discovery,
    ] = sections;
    let server = self::server(diag, server);
    let (server, canaries) = match server {
        Ok((server, canaries)) => (Ok(server), canaries),
        Err(reported) => (Err(reported), Vec::new()),
    };
    let retention = self::retention(diag, retention);
    let discovery = super::discovery::read(diag, discovery, defaults);
    let defaults = Defaults::read(diag, defaults);
    let udp_listen = server.as_ref().is_ok_and(|s| s.udp_listen.is_some());

    let mut built = Vec::new();
    let mut infos = Vec::new();
    if let Some(value) = targets {
        let DeValue::Array(items) = value.get_ref() else {
            diag.error(
                &value.span(),
                "target",
                "targets are an array of tables: write [[target]] (two brackets) above each",
            );
            return Err(Reported);
        };
        for (index, item) in items.iter().enumerate() {
            let (target, info) = target(diag, index, item, &defaults, udp_listen);
            built.push(target);
            infos.push(info);
        }
    }
    super::cross::check(diag, &infos);
    super::cross::canaries(diag, &canaries, &infos);
    // Rules name targets by id (valid ids of broken targets count, so that one mistake is
    // not reported twice) and by group. The groups are looked up by id in a map: searching
    // the built targets for each id made 100,000 targets cost 5·10⁹ string comparisons.
    let mut groups: HashMap<&str, Option<&String>> = HashMap::with_capacity(built.len());
    for target in built.iter().flatten() {
        // The first target with an id has its group, as in file order (a duplicate id is
        // reported by `cross`).
        groups
            .entry(target.id.as_str())
            .or_insert(target.group.as_ref());
    }
    let known: Vec<(String, Option<String>)> = infos
        .iter()
        .filter_map(|info| info.id.as_ref().map(|id| id.value.clone()))
        .map(|id| {
            let group = groups.get(id.as_str()).copied().flatten().cloned();
            (id, group)
        })
        .collect();
    let sections = super::notify::Sections {
        notify,
        channels,
        rules,
        maintenance,
    };
    let notify = super::notify::read(diag, sections, &known);
    Ok(Config {
        server: server?,
        retention: retention?,
        targets: built.into_iter().collect::<Result<_, _>>()?,
        notify: notify?,
        discovery: discovery?,
    })
}

/// `[server]`, and its canaries with their spans (checked against the targets later).
fn server(
    diag: &mut Diag<'_>,
    value: Option<&Spanned<DeValue<'_>>>,
) -> Result<(Server, Vec<At<String>>), Reported> {
    let base = Server::default();
    let Some(value) = value else {
        return Ok((base, Vec::new()));
    };
    let f = value::table::<server::Table>(diag, value, Scope::Any, "server")?;
    let listen = f.get(server::LISTEN);
    let udp_listen = f.get(server::UDP_LISTEN);
    let agent_check_listen = f.get(server::AGENT_CHECK_LISTEN);
    let canaries = f.get(server::CANARIES);
    let data_dir = f.get(server::DATA_DIR);
    let store = f.get(server::STORE).and_then(|at| match at {
        Some(at) if !is_postgres_url(&at.value) => {
            diag.error(
                &at.span,
                server::STORE.field("server"),
                "is not a PostgreSQL URL; write postgres://USER:PASSWORD@HOST:5432/DATABASE, or leave it out to keep SQLite in data_dir",
            );
            Err(Reported)
        }
        other => Ok(other),
    });
    let api_token = f
        .get(server::API_TOKEN)
        .and_then(|at| not_the_example(diag, at, server::API_TOKEN.field("server")));
    let read_token = f
        .get(server::READ_TOKEN)
        .and_then(|at| not_the_example(diag, at, server::READ_TOKEN.field("server")));
    let public_url = f.get(server::PUBLIC_URL);
    let ping_rate = f.get(server::PING_RATE);
    let ping_bytes_per_target = f.get(server::PING_BYTES_PER_TARGET);
    let max_connections = f.get(server::MAX_CONNECTIONS).and_then(|at| {
        at_least(
            diag,
            &server::MAX_CONNECTIONS.field("server"),
            at,
            1,
            "open connections",
        )
    });
    let max_concurrency = f.get(server::MAX_CONCURRENCY).and_then(|at| {
        at_least(
            diag,
            &server::MAX_CONCURRENCY.field("server"),
            at,
            1,
            "checks in flight",
        )
    });
    let ping_body_limit = f.get(server::PING_BODY_LIMIT).and_then(|at| match at {
        Some(at) if at.value > MAX_PING_BODY_LIMIT => {
            diag.error(
                &at.span,
                server::PING_BODY_LIMIT.field("server"),
                format!(
                    "{} bytes is more than {MAX_PING_BODY_LIMIT}; ping bodies are logs kept in the database",
                    at.value
                ),
            );
            Err(Reported)
        }
        other => Ok(other),
    });
    let udp_max_skew = f.get(server::UDP_MAX_SKEW).and_then(|at| match at {
        Some(at) if at.value.is_zero() => {
            diag.error(
                &at.span,
                server::UDP_MAX_SKEW.field("server"),
                "is zero; every heartbeat would be stale: allow the clocks some skew, like \"30s\"",
            );
            Err(Reported)
        }
        other => Ok(other),
    });
    let drain_delay = f.get(server::DRAIN_DELAY).and_then(|at| match at {
        Some(at) if at.value > MAX_DRAIN_DELAY => {
            diag.error(
                &at.span,
                server::DRAIN_DELAY.field("server"),
                "is longer than 10m; a drain only needs to outlast the load balancer's check interval times its fall count",
            );
            Err(Reported)
        }
        other => Ok(other),
    });
    let canaries = canaries?.map(|at| at.value).unwrap_or_default();
    let server = Server {
        agent_check_listen: agent_check_listen?.map(|at| at.value),
        canaries: canaries.iter().map(|at| at.value.clone()).collect(),
        listen: listen?.map_or(base.listen, |at| at.value),
        udp_listen: udp_listen?.map(|at| at.value),
        data_dir: data_dir?.map_or(base.data_dir, |at| at.value.into()),
        store: store?.map(|at| at.value),
        api_token: api_token?.map(|at| at.value),
        read_token: read_token?.map(|at| at.value),
        ping_body_limit: ping_body_limit?.map_or(base.ping_body_limit, |at| at.value),
        ping_bytes_per_target: ping_bytes_per_target?
            .map_or(base.ping_bytes_per_target, |at| at.value),
        ping_rate: ping_rate?.map_or(base.ping_rate, |at| at.value),
        max_connections: max_connections?.map_or(base.max_connections, |at| at.value as usize),
        public_url: public_url?.map(|at| at.value),
        max_concurrency: max_concurrency?.map_or(base.max_concurrency, |at| at.value as usize),
        udp_max_skew: udp_max_skew?.map_or(base.udp_max_skew, |at| at.value),
        drain_delay: drain_delay?.map_or(base.drain_delay, |at| at.value),
    };
    Ok((server, canaries))
}

/// Whether `url` names PostgreSQL (`postgres://` or `postgresql://`, the two schemes libpq
/// reads); the driver reads the rest when the monitor starts.
pub fn is_postgres_url(url: &str) -> bool {
    ["postgres://", "postgresql://"]
        .iter()
        .any(|scheme| url.len() > scheme.len() && url[..scheme.len()].eq_ignore_ascii_case(scheme))
}

/// The longest `drain_delay`: past it, a typo ("10h" for "10s") would hold shutdowns.
const MAX_DRAIN_DELAY: std::time::Duration = std::time::Duration::from_secs(600);

/// Tokens that were shipped in examples/vitals.toml: everyone can read them.
const EXAMPLE_TOKENS: [&str; 2] = [
    "change-me-0123456789abcdef0123456789abcdef",
    "read-only-0123456789abcdef",
];

fn not_the_example(
    diag: &mut Diag<'_>,
    at: Option<At<String>>,
    field: String,
) -> Result<Option<At<String>>, Reported> {
    match at {
        Some(at) if EXAMPLE_TOKENS.contains(&at.value.as_str()) => {
            diag.error(
                &at.span,
                field,
                "is the example's token, which anyone can read; generate one with `openssl rand -hex 32`",
            );
            Err(Reported)
        }
        other => Ok(other),
    }
}

fn at_least(
    diag: &mut Diag<'_>,
    field: &str,
    at: Option<At<u32>>,
    least: u32,
    what: &str,
) -> Result<Option<At<u32>>, Reported> {
    match at {
        Some(at) if at.value < least => {
            diag.error(
                &at.span,
                field,
                format!("is {}; it counts {what}, so at least {least}", at.value),
            );
            Err(Reported)
        }
        other => Ok(other),
    }
}

fn retention(
    diag: &mut Diag<'_>,
    value: Option<&Spanned<DeValue<'_>>>,
) -> Result<Retention, Reported> {
    let base = Retention::default();
    let Some(value) = value else {
        return Ok(base);
    };
    let f = value::table::<retention::Table>(diag, value, Scope::Any, "retention")?;
    let raw = f.get(retention::RAW_DAYS).and_then(|at| {
        at_least(
            diag,
            &retention::RAW_DAYS.field("retention"),
            at,
            1,
            "days of raw results",
        )
    });
    let rollup = f.get(retention::ROLLUP_DAYS);
    let (raw, rollup) = (raw?, rollup?);
    let retention = Retention {
        raw_days: raw.as_ref().map_or(base.raw_days, |at| at.value),
        rollup_days: rollup.as_ref().map_or(base.rollup_days, |at| at.value),
    };
    if retention.rollup_days < retention.raw_days {
        // Blame the one that was written (rollup_days when both were).
        let (field, span) = match (&rollup, &raw) {
            (Some(at), _) | (None, Some(at)) => {
                let field = if rollup.is_some() {
                    retention::ROLLUP_DAYS.field("retention")
                } else {
                    retention::RAW_DAYS.field("retention")
                };
                (field, at.span.clone())
            }
            (None, None) => return Ok(retention),
        };
        diag.error(
            &span,
            field,
            format!(
                "rollup_days ({}) is less than raw_days ({}); rollups keep the summary of raw results for longer, so make rollup_days at least raw_days",
                retention.rollup_days, retention.raw_days
            ),
        );
        return Err(Reported);
    }
    Ok(retention)
}

/// `[defaults]`, read and checked on its own.
pub(super) struct Defaults {
    fields: Fields<defaults::Table>,
    /// What is wrong with the thresholds of `[defaults]` alone, so that targets inheriting
    /// the problem do not repeat it.
    thresholds_error: Option<ThresholdError>,
}

impl Defaults {
    pub(super) fn read(diag: &mut Diag<'_>, value: Option<&Spanned<DeValue<'_>>>) -> Defaults {
        let fields = value
            .and_then(|value| {
                compound::table::<defaults::Table>(diag, value, Scope::Any, "defaults").ok()
            })
            .unwrap_or_else(|| Fields::empty(0..0));
        let layers = Layers::defaults(&fields);
        let _ = schedule(diag, &layers);
        let thresholds_error = thresholds(diag, &layers, None).err().flatten();
        Defaults {
            fields,
            thresholds_error,
        }
    }

    /// The keys of `[defaults]`, for [`Layers::target`].
    pub(super) fn fields(&self) -> &Fields<defaults::Table> {
        &self.fields
    }

    /// What is wrong with the thresholds of `[defaults]` alone, if anything.
    pub(super) fn thresholds_error(&self) -> Option<&ThresholdError> {
        self.thresholds_error.as_ref()
    }
}

/// The label of a target in messages: `target[2] ("api")`, with the id as written if it is
/// a string at all (even an invalid one helps people find the target).
fn label(index: usize, value: &Spanned<DeValue<'_>>) -> (String, Option<At<String>>) {
    let raw_id = match value.get_ref() {
        DeValue::Table(table) => table
            .get(target::ID.name())
            .and_then(|id| match id.get_ref() {
                DeValue::String(s) => Some(At {
                    value: s.to_string(),
                    span: id.span(),
                }),
                _ => None,
            }),
        _ => None,
    };
    let path = match &raw_id {
        Some(id) => format!("target[{index}] ({:?})", id.value),
        None => format!("target[{index}]"),
    };
    (path, raw_id)
}

/// The kind a target declares, reported when missing or unknown.
fn kind_scope(diag: &mut Diag<'_>, value: &Spanned<DeValue<'_>>, path: &str) -> Scope {
    let DeValue::Table(table) = value.get_ref() else {
        return Scope::UnknownKind;
    };
    let names = Kind::ALL.map(Kind::name);
    match table.get(target::KIND.name()) {
        None => {
            diag.error(
                &value.span(),
                target::KIND.field(path),
                format!(
                    "missing kind; set kind = \"http\" (or {})",
                    names[1..].join(", ")
                ),
            );
            Scope::UnknownKind
        }
        Some(kind) => match kind.get_ref() {
            DeValue::String(name) => Kind::parse(name).map_or_else(
                || {
                    let hint = suggest(name, names)
                        .map_or_else(String::new, |c| format!("did you mean {c:?}? "));
                    diag.error(
                        &kind.span(),
                        target::KIND.field(path),
                        format!(
                            "unknown kind {name:?}; {hint}kinds are {}",
                            names.join(", ")
                        ),
                    );
                    Scope::UnknownKind
                },
                Scope::Kind,
            ),
            // The walker reports the type.
            _ => Scope::UnknownKind,
        },
    }
}

fn target(
    diag: &mut Diag<'_>,
    index: usize,
    value: &Spanned<DeValue<'_>>,
    defaults: &Defaults,
    udp_listen: bool,
) -> (Result<Target, Reported>, TargetInfo) {
    let (path, raw_id) = label(index, value);
    let mut info = TargetInfo {
        path: path.clone(),
        raw_id,
        id: None,
        depends_on: Vec::new(),
        ping_id: None,
        name: None,
        public_ping_id: false,
    };
    let scope = kind_scope(diag, value, &path);
    let Ok(f) = compound::table::<target::Table>(diag, value, scope, &path) else {
        return (Err(Reported), info);
    };
    if !f.has(target::ID) {
        diag.error(
            &f.span,
            target::ID.field(&path),
            "missing id; every target needs a unique id like \"api\"",
        );
    }
    let id = f.get(target::ID);
    info.id = id.clone().ok().flatten();
    info.depends_on = f
        .get(target::DEPENDS_ON)
        .ok()
        .flatten()
        .map_or_else(Vec::new, |at| at.value);
    let Scope::Kind(kind) = scope else {
        return (Err(Reported), info);
    };
    info.name = f.get(target::NAME).ok().flatten();
    if kind == Kind::Heartbeat {
        // Checked for duplicates even when the rest of the heartbeat is wrong.
        let public = kinds::ping_id_may_be_public(&f);
        info.ping_id = match f.get(target::PING_ID) {
            Ok(Some(ping_id)) => Some((ping_id, false)),
            Ok(None) if public => info.id.clone().map(|id| (id, true)),
            // Generated by the monitor.
            Ok(None) | Err(Reported) => None,
        };
        info.public_ping_id = public;
    }
    for &key in keys::required(kind) {
        if !f.has(key) {
            diag.error(&f.span, key.field(&path), kinds::missing(kind, key.name()));
        }
    }

    let layers = Layers::target(&f, &path, &defaults.fields);
    let schedule = schedule(diag, &layers);
    let thresholds =
        thresholds(diag, &layers, defaults.thresholds_error.as_ref()).map_err(|_| Reported);
    let spec = kinds::spec(diag, kind, &f, &path, schedule.as_ref().ok(), udp_listen);
    let target = (|| {
        let id = id?.ok_or(Reported)?.value;
        let spec = spec?;
        let strings = |at: At<Vec<At<String>>>| at.value.into_iter().map(|s| s.value).collect();
        Ok(Target {
            name: f
                .get(target::NAME)?
                .map_or_else(|| id.clone(), |at| at.value),
            group: f.get(target::GROUP)?.map(|at| at.value),
            tags: f.get(target::TAGS)?.map_or_else(Vec::new, strings),
            depends_on: f.get(target::DEPENDS_ON)?.map_or_else(Vec::new, strings),
            id,
            kind: spec,
            schedule: schedule?,
            thresholds: thresholds?,
            recover: f.get(target::RECOVER)?.map(|at| at.value),
            confirm: f.get(target::CONFIRM)?.map(|at| at.value),
        })
    })();
    (target, info)
}
