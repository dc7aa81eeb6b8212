//! Assembling a [`Config`] from the walked TOML: the sections in order, each target from its
//! table and `[defaults]`, then the checks across targets.
//!
//! Not here: reading single values (`value`), merging `[defaults]` and comparing keys
//! (`inherit`), what each kind of target needs (`kinds`), checks across targets (`cross`).

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use vitals_core::machine::ThresholdError;

use super::cross::TargetInfo;
use super::error::Diag;
use super::fields::{At, Fields, Reported, Scope, read_table, suggest, unknown};
use super::inherit::{Layers, schedule, thresholds};
use super::keys::{self, Kind};
use super::kinds;
use super::model::{Config, Retention, Server, Target};

/// Ping bodies are stored in SQLite; more than this is a mistake, not a log.
const MAX_PING_BODY_LIMIT: usize = 10 * 1024 * 1024;

pub(super) fn config(diag: &mut Diag<'_>, root: &Spanned<DeTable<'_>>) -> Result<Config, Reported> {
    let mut sections: [Option<&Spanned<DeValue<'_>>>; 8] = [None; 8];
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
    ] = sections;
    let server = self::server(diag, server);
    let (server, canaries) = match server {
        Ok((server, canaries)) => (Ok(server), canaries),
        Err(reported) => (Err(reported), Vec::new()),
    };
    let retention = self::retention(diag, retention);
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
    // not reported twice) and by group.
    let known: Vec<(String, Option<String>)> = infos
        .iter()
        .filter_map(|info| info.id.as_ref().map(|id| id.value.clone()))
        .map(|id| {
            let group = built
                .iter()
                .flatten()
                .find(|t: &&Target| t.id == id)
                .and_then(|t| t.group.clone());
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
    let f = read_table(diag, value, keys::SERVER, Scope::Any, "server")?;
    let listen = f.socket_addr("listen");
    let udp_listen = f.socket_addr("udp_listen");
    let agent_check_listen = f.socket_addr("agent_check_listen");
    let canaries = f.list("canaries");
    let data_dir = f.str("data_dir");
    let api_token = f.str("api_token");
    let read_token = f.str("read_token");
    let max_concurrency = f
        .count("max_concurrency")
        .and_then(|at| at_least(diag, "server.max_concurrency", at, 1, "checks in flight"));
    let ping_body_limit = f.bytes("ping_body_limit").and_then(|at| match at {
        Some(at) if at.value > MAX_PING_BODY_LIMIT => {
            diag.error(
                &at.span,
                "server.ping_body_limit",
                format!(
                    "{} bytes is more than {MAX_PING_BODY_LIMIT}; ping bodies are logs kept in the database",
                    at.value
                ),
            );
            Err(Reported)
        }
        other => Ok(other),
    });
    let udp_max_skew = f.duration("udp_max_skew").and_then(|at| match at {
        Some(at) if at.value.is_zero() => {
            diag.error(
                &at.span,
                "server.udp_max_skew",
                "is zero; every heartbeat would be stale: allow the clocks some skew, like \"30s\"",
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
        api_token: api_token?.map(|at| at.value),
        read_token: read_token?.map(|at| at.value),
        ping_body_limit: ping_body_limit?.map_or(base.ping_body_limit, |at| at.value),
        max_concurrency: max_concurrency?.map_or(base.max_concurrency, |at| at.value as usize),
        udp_max_skew: udp_max_skew?.map_or(base.udp_max_skew, |at| at.value),
    };
    Ok((server, canaries))
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
    let f = read_table(diag, value, keys::RETENTION, Scope::Any, "retention")?;
    let raw = f
        .count("raw_days")
        .and_then(|at| at_least(diag, "retention.raw_days", at, 1, "days of raw results"));
    let rollup = f.count("rollup_days");
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
                    "retention.rollup_days"
                } else {
                    "retention.raw_days"
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
    fields: Fields,
    /// What is wrong with the thresholds of `[defaults]` alone, so that targets inheriting
    /// the problem do not repeat it.
    thresholds_error: Option<ThresholdError>,
}

impl Defaults {
    pub(super) fn read(diag: &mut Diag<'_>, value: Option<&Spanned<DeValue<'_>>>) -> Defaults {
        let fields = value
            .and_then(|value| read_table(diag, value, keys::DEFAULTS, Scope::Any, "defaults").ok())
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
    pub(super) fn fields(&self) -> &Fields {
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
        DeValue::Table(table) => table.get("id").and_then(|id| match id.get_ref() {
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
    match table.get("kind") {
        None => {
            diag.error(
                &value.span(),
                format!("{path}.kind"),
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
                        format!("{path}.kind"),
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
    };
    let scope = kind_scope(diag, value, &path);
    let Ok(f) = read_table(diag, value, keys::TARGET, scope, &path) else {
        return (Err(Reported), info);
    };
    if !f.has("id") {
        diag.error(
            &f.span,
            format!("{path}.id"),
            "missing id; every target needs a unique id like \"api\"",
        );
    }
    let id = f.str("id");
    info.id = id.clone().ok().flatten();
    info.depends_on = f
        .list("depends_on")
        .ok()
        .flatten()
        .map_or_else(Vec::new, |at| at.value);
    let Scope::Kind(kind) = scope else {
        return (Err(Reported), info);
    };
    if kind == Kind::Heartbeat {
        // Checked for duplicates even when the rest of the heartbeat is wrong.
        info.ping_id = match f.str("ping_id") {
            Ok(Some(ping_id)) => Some((ping_id, false)),
            Ok(None) => info.id.clone().map(|id| (id, true)),
            Err(Reported) => None,
        };
    }
    for key in keys::required(kind) {
        if !f.has(key) {
            diag.error(&f.span, format!("{path}.{key}"), kinds::missing(kind, key));
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
            name: f.str("name")?.map_or_else(|| id.clone(), |at| at.value),
            group: f.str("group")?.map(|at| at.value),
            tags: f.list("tags")?.map_or_else(Vec::new, strings),
            depends_on: f.list("depends_on")?.map_or_else(Vec::new, strings),
            id,
            kind: spec,
            schedule: schedule?,
            thresholds: thresholds?,
            recover: f.recover("recover")?.map(|at| at.value),
        })
    })();
    (target, info)
}
