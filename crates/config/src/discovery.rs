//! `[[discovery]]`: targets the monitor finds rather than lists — in a Prometheus-style
//! `file_sd` file, or in DNS (A/AAAA, SRV: a Kubernetes headless Service) — each made from a
//! template, the discovery's `target` table, which is a `[[target]]` without an id, with
//! `{address}` (`host:port`), `{host}` and `{port}` in its strings.
//!
//! The template is checked when the file is read, as a target found at `127.0.0.1:8000`
//! would be: its mistakes are reported at the template's own lines. What is kept is its
//! text ([`Discovery::instantiate`] reads it again for each address found), so a discovered
//! target is read by the same rules, `[defaults]` included, as a listed one.
//!
//! Each address found becomes a target whose id is the discovery's name and the address
//! (`orders-10.1.2.3-8000`), stable as long as the address is, so its history is kept when it
//! goes and comes back.
//!
//! What it is not: looking anything up. The monitor reads files and asks DNS.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::compound;
use super::error::Diag;
use super::fields::Scope;
use super::keys::discovery;
use super::model::{Target, TargetKind};
use super::val::Reported;

/// How often a file is looked at, and DNS asked again, unless `refresh` says.
pub const DEFAULT_FILE_REFRESH: Duration = Duration::from_secs(10);
pub const DEFAULT_DNS_REFRESH: Duration = Duration::from_secs(30);

/// Where a discovery finds addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoverySource {
    /// A JSON or YAML file (by its extension) of `[{"targets": ["host:port", …],
    /// "labels": {…}}]`, read again when it changes.
    File(PathBuf),
    Dns {
        /// The name to ask for.
        name: String,
        record: DnsRecord,
        /// The port of every address (A/AAAA); SRV records carry their own.
        port: Option<u16>,
        /// Ask this server instead of the system's (`/etc/resolv.conf`).
        nameserver: Option<SocketAddr>,
    },
}

/// Which DNS records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsRecord {
    /// A and AAAA (the default): every address of the name.
    Ip,
    A,
    Aaaa,
    /// SRV: a host name and port per record, each name then resolved to its addresses.
    Srv,
}

/// One `[[discovery]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// `[a-z0-9][a-z0-9_.-]{0,63}`, unique among discoveries; prefixes the ids it makes.
    pub name: String,
    pub source: DiscoverySource,
    pub refresh: Duration,
    /// `[defaults]` and one `[[target]]` with placeholders, as TOML.
    template: String,
    /// Whether the template names its targets (else: "<name> <address>").
    named: bool,
}

/// An address a discovery found, with its labels (file_sd) as `key=value` tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Found {
    pub host: String,
    pub port: u16,
    pub labels: Vec<(String, String)>,
}

impl Found {
    /// `host:port`, an IPv6 host in brackets.
    pub fn address(&self) -> String {
        format!("{}:{}", self.url_host(), self.port)
    }

    /// The host as a URL writes it: an IPv6 address in brackets.
    pub fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// `host:port` as file_sd writes it (`[v6]:port` too), checked: a host name or an IP
    /// address, a port from 1 to 65535.
    pub fn parse(text: &str) -> Result<Found, String> {
        let bad = |why: &str| Err(format!("{text:?} is not host:port: {why}"));
        if let Ok(addr) = text.parse::<SocketAddr>() {
            if addr.port() == 0 {
                return bad("port 0");
            }
            return Ok(Found {
                host: addr.ip().to_string(),
                port: addr.port(),
                labels: Vec::new(),
            });
        }
        let Some((host, port)) = text.rsplit_once(':') else {
            return bad("no port");
        };
        let Ok(port) = port.parse::<u16>() else {
            return bad("the port is not a number from 1 to 65535");
        };
        if port == 0 {
            return bad("port 0");
        }
        Found::host(host, port)
    }

    /// A host name (letters, digits, dots and dashes) or IP address, and a port.
    pub fn host(host: &str, port: u16) -> Result<Found, String> {
        let host = host.trim_end_matches('.');
        let name_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if !name_ok && host.parse::<IpAddr>().is_err() {
            return Err(format!(
                "{host:?} is not a host name or an IP address (letters, digits, dots and dashes)"
            ));
        }
        Ok(Found {
            host: host.to_ascii_lowercase(),
            port,
            labels: Vec::new(),
        })
    }
}

impl Discovery {
    /// The target for `found`: the template read again with its address, `[defaults]`
    /// applied, and its labels added as tags. An error says what was wrong, as the
    /// configuration would.
    pub fn instantiate(&self, found: &Found) -> Result<Target, String> {
        let text = fill(&self.template, &self.name, found);
        let file = format!("discovery {:?} at {}", self.name, found.address());
        let mut config = super::parse(&text, &file).map_err(|errors| errors.to_string())?;
        let mut target = config
            .targets
            .pop()
            .ok_or_else(|| format!("{file}: the template made no target"))?;
        if !self.named {
            target.name = format!("{} {}", self.name, found.address());
        }
        target.tags.extend(
            found
                .labels
                .iter()
                .map(|(key, value)| format!("{key}={value}")),
        );
        Ok(target)
    }
}

/// `template` with the placeholders of the target discovery `name` makes for `found`.
fn fill(template: &str, name: &str, found: &Found) -> String {
    template
        .replace("{id}", &instance_id(name, &found.host, found.port))
        .replace("{address}", &found.address())
        .replace("{host}", &found.url_host())
        .replace("{port}", &found.port.to_string())
}

/// The id of the target a discovery `name` made for `host:port`: `name-host-port`, with
/// every character an id may not hold as `-`, cut to 64 with a hash of the whole when longer.
pub fn instance_id(name: &str, host: &str, port: u16) -> String {
    let full: String = format!("{name}-{host}-{port}")
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if full.len() <= 64 {
        return full;
    }
    // FNV-1a: stable across builds, unlike std's hasher.
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    format!("{}-{:08x}", &full[..55], hash as u32)
}

/// Every `[[discovery]]`: the sources checked, the templates checked as a target found at
/// `127.0.0.1:8000`. `defaults` is the file's `[defaults]`, which templates inherit.
pub(super) fn read(
    diag: &mut Diag<'_>,
    value: Option<&Spanned<DeValue<'_>>>,
    defaults: Option<&Spanned<DeValue<'_>>>,
) -> Result<Vec<Discovery>, Reported> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let DeValue::Array(items) = value.get_ref() else {
        diag.error(
            &value.span(),
            "discovery",
            "discoveries are an array of tables: write [[discovery]] (two brackets) above each",
        );
        return Err(Reported);
    };
    let defaults = defaults.map_or_else(String::new, |d| render_pairs(diag, d));
    let mut read = Vec::with_capacity(items.len());
    let mut failed = false;
    let mut names: Vec<String> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match one(diag, index, item, &defaults) {
            Ok(discovery) => {
                if names.contains(&discovery.name) {
                    diag.error(
                        &item.span(),
                        format!("discovery[{index}].name"),
                        format!(
                            "{:?} names another discovery too; each needs a name of its own (it prefixes the ids it makes)",
                            discovery.name
                        ),
                    );
                    failed = true;
                }
                names.push(discovery.name.clone());
                read.push(discovery);
            }
            Err(Reported) => failed = true,
        }
    }
    if failed { Err(Reported) } else { Ok(read) }
}

fn one(
    diag: &mut Diag<'_>,
    index: usize,
    item: &Spanned<DeValue<'_>>,
    defaults: &str,
) -> Result<Discovery, Reported> {
    let path = format!("discovery[{index}]");
    let DeValue::Table(table) = item.get_ref() else {
        diag.error(
            &item.span(),
            &path,
            "a discovery is a table: write [[discovery]]",
        );
        return Err(Reported);
    };
    // `target` is a template, read below; the rest against the discovery's keys.
    let template = table.get("target").cloned();
    let mut rest: DeTable<'_> = table.clone();
    rest.remove("target");
    let rest = Spanned::new(item.span(), DeValue::Table(rest));
    let f = compound::table::<discovery::Table>(diag, &rest, Scope::Any, &path)?;
    let name = f.get(discovery::NAME);
    let file_sd = f.get(discovery::FILE_SD);
    let dns = f.get(discovery::DNS);
    let record = f.get(discovery::TYPE);
    let port = f.get(discovery::PORT);
    let nameserver = f.get(discovery::NAMESERVER);
    let refresh = f.get(discovery::REFRESH);
    let (Ok(name), Ok(file_sd), Ok(dns), Ok(record), Ok(port), Ok(nameserver), Ok(refresh)) =
        (name, file_sd, dns, record, port, nameserver, refresh)
    else {
        return Err(Reported);
    };
    let Some(name) = name else {
        diag.error(
            &f.span,
            discovery::NAME.field(&path),
            "missing name; it prefixes the ids of the targets found, like \"orders\"",
        );
        return Err(Reported);
    };
    let path = format!("discovery[{index}] ({:?})", name.value);
    let record = match record {
        None => None,
        Some(at) => match at.value.to_ascii_uppercase().as_str() {
            "A" => Some(DnsRecord::A),
            "AAAA" => Some(DnsRecord::Aaaa),
            "SRV" => Some(DnsRecord::Srv),
            _ => {
                diag.error(
                    &at.span,
                    discovery::TYPE.field(&path),
                    format!("{:?} is not a record type; write \"A\", \"AAAA\" or \"SRV\" (neither: A and AAAA)", at.value),
                );
                return Err(Reported);
            }
        },
    };
    let port = match port {
        Some(at) if at.value == 0 || at.value > 65_535 => {
            diag.error(
                &at.span,
                discovery::PORT.field(&path),
                format!("{} is not a port; write one from 1 to 65535", at.value),
            );
            return Err(Reported);
        }
        other => other.map(|at| (at.value as u16, at.span)),
    };
    let source = match (file_sd, dns) {
        (Some(file), None) => {
            for (span, key) in [
                (
                    record.as_ref().map(|_| f.span.clone()),
                    discovery::TYPE.name(),
                ),
                (port.as_ref().map(|p| p.1.clone()), discovery::PORT.name()),
                (
                    nameserver.as_ref().map(|n| n.span.clone()),
                    discovery::NAMESERVER.name(),
                ),
            ] {
                if let Some(span) = span {
                    diag.error(
                        &span,
                        format!("{path}.{key}"),
                        "is for DNS discovery; a file_sd file names each target's host:port",
                    );
                    return Err(Reported);
                }
            }
            DiscoverySource::File(PathBuf::from(file.value))
        }
        (None, Some(dns)) => {
            let record = record.unwrap_or(DnsRecord::Ip);
            match (record, &port) {
                (DnsRecord::Srv, Some((_, span))) => {
                    diag.error(
                        span,
                        discovery::PORT.field(&path),
                        "SRV records carry each target's port; leave port out",
                    );
                    return Err(Reported);
                }
                (DnsRecord::Ip | DnsRecord::A | DnsRecord::Aaaa, None) => {
                    diag.error(
                        &dns.span,
                        discovery::PORT.field(&path),
                        "missing port; A and AAAA records carry addresses only (or use type = \"SRV\")",
                    );
                    return Err(Reported);
                }
                _ => {}
            }
            DiscoverySource::Dns {
                name: dns.value,
                record,
                port: port.map(|(port, _)| port),
                nameserver: nameserver.map(|at| at.value),
            }
        }
        (Some(file), Some(_)) => {
            diag.error(
                &file.span,
                &path,
                "has both file_sd and dns; a discovery reads one source (write two discoveries)",
            );
            return Err(Reported);
        }
        (None, None) => {
            diag.error(
                &f.span,
                &path,
                "says nowhere to look: give file_sd = \"targets.json\" or dns = \"name\"",
            );
            return Err(Reported);
        }
    };
    let refresh = refresh.map(|at| at.value).unwrap_or(match source {
        DiscoverySource::File(_) => DEFAULT_FILE_REFRESH,
        DiscoverySource::Dns { .. } => DEFAULT_DNS_REFRESH,
    });
    if refresh < Duration::from_secs(1) {
        diag.error(
            &f.span,
            discovery::REFRESH.field(&path),
            "is under a second; discovery is not a probe: \"10s\" or more",
        );
        return Err(Reported);
    }
    let Some(template) = template else {
        diag.error(
            &f.span,
            format!("{path}.target"),
            "missing target: the template of each target found, like [discovery.target] with kind = \"http\" and url = \"http://{address}/readyz\"",
        );
        return Err(Reported);
    };
    let DeValue::Table(table) = template.get_ref() else {
        diag.error(
            &template.span(),
            format!("{path}.target"),
            "is a table: [discovery.target], a [[target]] without an id",
        );
        return Err(Reported);
    };
    for (key, why) in [
        (
            "id",
            "the id of each target found is made from the discovery's name and its address",
        ),
        (
            "depends_on",
            "discovered targets cannot name dependencies yet; list the target instead",
        ),
    ] {
        if let Some(value) = table.get(key) {
            diag.error(&value.span(), format!("{path}.target.{key}"), why);
            return Err(Reported);
        }
    }
    let named = table.get("name").is_some();
    let mut text = String::new();
    if !defaults.is_empty() {
        let _ = writeln!(text, "[defaults]\n{defaults}");
    }
    text.push_str("[[target]]\nid = \"{id}\"\n");
    text.push_str(&render_pairs(diag, &template));
    let discovery = Discovery {
        name: name.value,
        source,
        refresh,
        template: text,
        named,
    };
    // Checked as a target found at 127.0.0.1:8000 would be; its mistakes reported at the
    // template's lines.
    let sample = Found {
        host: "127.0.0.1".into(),
        port: 8000,
        labels: Vec::new(),
    };
    let text = fill(&discovery.template, &discovery.name, &sample);
    match super::parse(&text, "template") {
        Ok(config) => {
            if let Some(target) = config.targets.first()
                && matches!(target.kind, TargetKind::Heartbeat(_))
            {
                let span = table.get("kind").map_or(template.span(), Spanned::span);
                diag.error(
                    &span,
                    format!("{path}.target.kind"),
                    "heartbeat targets are not found, they ping: discover what the monitor checks (http, tcp, vitals…)",
                );
                return Err(Reported);
            }
            Ok(discovery)
        }
        Err(errors) => {
            for error in errors.0 {
                // `target[0] ("orders-…").url` → `url`; `[defaults]` was reported already.
                if error.field.starts_with("defaults") {
                    continue;
                }
                let key = error
                    .field
                    .split_once(").")
                    .map_or(error.field.as_str(), |(_, key)| key);
                let head = key.split(['.', '[']).next().unwrap_or(key);
                let span = table.get(head).map_or(template.span(), Spanned::span);
                diag.error(&span, format!("{path}.target.{key}"), error.message);
            }
            Err(Reported)
        }
    }
}

/// A table's pairs as TOML, one `key = value` a line: scalars as written, tables and arrays
/// rebuilt inline from their items (so nothing but `[defaults]` and `[[target]]` can come out
/// as a section of its own).
fn render_pairs(diag: &Diag<'_>, value: &Spanned<DeValue<'_>>) -> String {
    let DeValue::Table(table) = value.get_ref() else {
        return String::new();
    };
    let mut out = String::new();
    for (key, value) in table.iter() {
        let _ = writeln!(out, "{} = {}", toml_key(key.get_ref()), render(diag, value));
    }
    out
}

fn render(diag: &Diag<'_>, value: &Spanned<DeValue<'_>>) -> String {
    match value.get_ref() {
        DeValue::Table(table) => {
            let pairs: Vec<String> = table
                .iter()
                .map(|(key, value)| {
                    format!("{} = {}", toml_key(key.get_ref()), render(diag, value))
                })
                .collect();
            format!("{{ {} }}", pairs.join(", "))
        }
        DeValue::Array(items) => {
            let items: Vec<String> = items.iter().map(|item| render(diag, item)).collect();
            format!("[{}]", items.join(", "))
        }
        // A scalar: its text as written, which is well-formed TOML on its own.
        _ => diag.text(&value.span()).to_owned(),
    }
}

fn toml_key(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}
